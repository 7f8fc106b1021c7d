//! KEDA's external scaler API over the desired capacity, so a KEDA
//! `ScaledObject` scales the worker Deployment (deploy/kubernetes/).
//!
//! The metric is the cluster's desired capacity in capacity units (after
//! the scale-down cooldown, see `capacity`), or one task's when the
//! trigger's metadata names `task`. KEDA sets replicas to
//! ceil(metric / targetSize); targetSize is the trigger's `unitsPerReplica`
//! (default 1: each worker pod runs one slot). Any node answers from its
//! replica, so KEDA may point at the coordinators' Service.

use crate::node::Node;
use ferry_common::externalscaler as ks;
use ferry_common::externalscaler::external_scaler_server::ExternalScaler;
use std::collections::HashMap;
use std::pin::Pin;
use std::time::Duration;
use tonic::{Request, Response, Status};

/// The metric's name, as KEDA and an HPA see it.
pub const METRIC: &str = "ferry_desired_capacity";

#[derive(Clone)]
pub struct ScalerService {
    pub node: Node,
}

impl ScalerService {
    /// The figure the trigger `meta` asks for.
    fn figure(&self, meta: &HashMap<String, String>) -> Result<u32, Status> {
        let c = self.node.capacity();
        match meta.get("task").filter(|t| !t.is_empty()) {
            None => Ok(c.desired),
            Some(name) => c
                .tasks
                .iter()
                .find(|t| &t.task == name)
                .map(|t| t.desired)
                .ok_or_else(|| Status::not_found(format!("scaler metadata task: task {name} not found"))),
        }
    }
}

fn metadata(r: Option<&ks::ScaledObjectRef>) -> HashMap<String, String> {
    r.map(|r| r.scaler_metadata.clone()).unwrap_or_default()
}

fn units_per_replica(meta: &HashMap<String, String>) -> Result<i64, Status> {
    match meta.get("unitsPerReplica") {
        None => Ok(1),
        Some(v) => v.parse::<i64>().ok().filter(|n| (1..=1024).contains(n)).ok_or_else(|| {
            Status::invalid_argument(format!(
                "scaler metadata unitsPerReplica: expected 1..1024 capacity units per worker pod, got '{v}'"
            ))
        }),
    }
}

type ActiveStream = Pin<Box<dyn futures::Stream<Item = Result<ks::IsActiveResponse, Status>> + Send>>;

#[tonic::async_trait]
impl ExternalScaler for ScalerService {
    async fn is_active(&self, req: Request<ks::ScaledObjectRef>) -> Result<Response<ks::IsActiveResponse>, Status> {
        let meta = metadata(Some(req.get_ref()));
        Ok(Response::new(ks::IsActiveResponse {
            result: self.figure(&meta)? > 0,
        }))
    }

    type StreamIsActiveStream = ActiveStream;

    /// Sends the activity once, then whenever it changes (checked every
    /// second), until KEDA hangs up.
    async fn stream_is_active(
        &self,
        req: Request<ks::ScaledObjectRef>,
    ) -> Result<Response<Self::StreamIsActiveStream>, Status> {
        let meta = metadata(Some(req.get_ref()));
        self.figure(&meta)?;
        let start = (self.clone(), meta, None::<bool>);
        let stream = futures::stream::unfold(start, |(svc, meta, last)| async move {
            loop {
                if last.is_some() {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                match svc.figure(&meta) {
                    Ok(f) if last == Some(f > 0) => continue,
                    Ok(f) => return Some((Ok(ks::IsActiveResponse { result: f > 0 }), (svc, meta, Some(f > 0)))),
                    // The task went away: say so once and end the stream.
                    Err(e) if last.is_some() => return Some((Err(e), (svc, meta, None))),
                    Err(_) => return None,
                }
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get_metric_spec(
        &self,
        req: Request<ks::ScaledObjectRef>,
    ) -> Result<Response<ks::GetMetricSpecResponse>, Status> {
        let meta = metadata(Some(req.get_ref()));
        let target = units_per_replica(&meta)?;
        Ok(Response::new(ks::GetMetricSpecResponse {
            metric_specs: vec![ks::MetricSpec {
                metric_name: METRIC.into(),
                target_size: target,
                target_size_float: target as f64,
            }],
        }))
    }

    async fn get_metrics(
        &self,
        req: Request<ks::GetMetricsRequest>,
    ) -> Result<Response<ks::GetMetricsResponse>, Status> {
        let meta = metadata(req.get_ref().scaled_object_ref.as_ref());
        let figure = self.figure(&meta)?;
        Ok(Response::new(ks::GetMetricsResponse {
            metric_values: vec![ks::MetricValue {
                metric_name: METRIC.into(),
                metric_value: figure as i64,
                metric_value_float: figure as f64,
            }],
        }))
    }
}
