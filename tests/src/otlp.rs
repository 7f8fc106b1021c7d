//! An OTLP/gRPC trace receiver for the tests (the OpenTelemetry
//! collector's TraceService): it keeps every span it is sent, with the
//! service that sent it.

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use std::sync::{Arc, Mutex};

/// A span as received.
#[derive(Debug, Clone)]
pub struct Span {
    pub service: String,
    pub name: String,
    pub trace_id: Vec<u8>,
    pub span_id: Vec<u8>,
    /// Empty for a trace's root.
    pub parent_span_id: Vec<u8>,
    /// String attributes (tracing's fields).
    pub attributes: Vec<(String, String)>,
}

impl Span {
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Span>>>,
}

fn text(v: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        _ => String::new(),
    }
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut got = vec![];
        for rs in req.into_inner().resource_spans {
            let service = rs
                .resource
                .as_ref()
                .and_then(|r| r.attributes.iter().find(|a| a.key == "service.name"))
                .map(|a| text(&a.value))
                .unwrap_or_default();
            for ss in rs.scope_spans {
                for s in ss.spans {
                    got.push(Span {
                        service: service.clone(),
                        name: s.name,
                        trace_id: s.trace_id,
                        span_id: s.span_id,
                        parent_span_id: s.parent_span_id,
                        attributes: s.attributes.iter().map(|a| (a.key.clone(), text(&a.value))).collect(),
                    });
                }
            }
        }
        self.spans.lock().expect("spans lock").extend(got);
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// The receiver, serving on 127.0.0.1:`port` until dropped.
pub struct Receiver {
    pub port: u16,
    collector: Collector,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Receiver {
    pub async fn start() -> anyhow::Result<Receiver> {
        let port = crate::free_port();
        let collector = Collector::default();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_shutdown(([127, 0, 0, 1], port).into(), async {
                let _ = stopped.await;
            });
        tokio::spawn(server);
        Ok(Receiver {
            port,
            collector,
            _stop: stop,
        })
    }

    /// `OTEL_EXPORTER_OTLP_ENDPOINT` for processes exporting to it.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn spans(&self) -> Vec<Span> {
        self.collector.spans.lock().expect("spans lock").clone()
    }
}
