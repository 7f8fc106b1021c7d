//! The coordinator's HTTP listener (`--metrics-listen`): Kubernetes'
//! liveness and readiness probes and, in Prometheus text, the capacity
//! figures an HPA on external metrics can scale workers on and the tasks'
//! progress.
//!
//! - `/healthz`: 200 while the process serves (liveness).
//! - `/readyz`: 200 once this node knows a leader, 503 before (a node
//!   still joining, or a minority cut off from it, is not sent clients).
//! - `/metrics`: `ferry_desired_capacity` (the figure KEDA gets),
//!   `ferry_desired_capacity_now`, `ferry_granted_capacity`, and per task
//!   `ferry_task_desired_capacity` / `ferry_task_granted_capacity`; the
//!   tasks' and tables' DMS-named series (see `task_metrics`).
//!
//! Nothing here is secret (task names and counts), so no credentials are
//! asked; the gRPC listener stays the only door to anything else.

use crate::node::Node;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Serves the probes on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    node: Node,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let app = axum::Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .with_state(node);
    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
        tracing::error!(error = %e, "the metrics listener failed");
    }
}

async fn ready(State(node): State<Node>) -> (StatusCode, String) {
    match node.raft.current_leader().await {
        Some(leader) => (StatusCode::OK, format!("ready: leader is node {leader}\n")),
        None => (StatusCode::SERVICE_UNAVAILABLE, "no leader known\n".into()),
    }
}

async fn metrics(State(node): State<Node>) -> (StatusCode, [(&'static str, &'static str); 1], String) {
    let c = node.capacity();
    let mut reg = Registry::default();
    let gauge = |v: u32| {
        let g: Gauge = Gauge::default();
        g.set(v as i64);
        g
    };
    reg.register(
        "ferry_desired_capacity",
        "Capacity units to run: the tasks' desired sum, held through the scale-down cooldown",
        gauge(c.desired),
    );
    reg.register(
        "ferry_desired_capacity_now",
        "The tasks' desired capacity units now, before the cooldown",
        gauge(c.desired_now),
    );
    reg.register(
        "ferry_granted_capacity",
        "Capacity units the tasks hold",
        gauge(c.granted),
    );
    let desired = Family::<Vec<(String, String)>, Gauge>::default();
    let granted = Family::<Vec<(String, String)>, Gauge>::default();
    for t in &c.tasks {
        let labels = vec![("task".to_string(), t.task.clone())];
        desired.get_or_create(&labels).set(t.desired as i64);
        granted.get_or_create(&labels).set(t.granted as i64);
    }
    reg.register(
        "ferry_task_desired_capacity",
        "A task's desired capacity units",
        desired,
    );
    reg.register("ferry_task_granted_capacity", "Capacity units a task holds", granted);
    {
        let s = node.state.read().expect("state lock");
        crate::task_metrics::register(&mut reg, s.tasks.values(), ferry_common::now_ms());
    }
    let mut body = String::new();
    match encode(&mut body, &reg) {
        Ok(()) => (
            StatusCode::OK,
            [(
                "content-type",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [("content-type", "text/plain")],
            format!("encoding metrics: {e}\n"),
        ),
    }
}
