//! The coordinator's HTTP listener (`--metrics-listen`): Kubernetes'
//! liveness and readiness probes and, in Prometheus text, the capacity
//! figures an HPA on external metrics can scale workers on and the tasks'
//! progress.
//!
//! - `/healthz`: 200 while the process serves (liveness).
//! - `/readyz`: 200 once this node knows a leader, 503 before (a node
//!   still joining, or a minority cut off from it, is not sent clients).
//! - `/`: the web dashboard (see `dashboard`).
//! - `/metrics`: `ferry_desired_capacity` (the figure KEDA gets),
//!   `ferry_desired_capacity_now`, `ferry_granted_capacity`, and per task
//!   `ferry_task_desired_capacity` / `ferry_task_granted_capacity`; the
//!   tasks' and tables' DMS-named series (see `task_metrics`); this node's
//!   Raft series (see `raft_metrics`).
//!
//! Nothing here is secret (task names and counts), but it is the
//! migration's business: `/metrics` and the dashboard ask for a viewer's
//! token (the admin API's tokens) when the listener is off loopback on a
//! secured coordinator, and are open on loopback and in laptop mode. The probes
//! stay open everywhere (a kubelet asks them, and they say only "ok").

use crate::access::Gate;
use crate::node::Node;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::Arc;

/// What the listener serves, and to whom.
#[derive(Clone)]
pub struct Listener {
    pub node: Node,
    /// The gate `/metrics` readers must pass (None: open).
    pub readers: Option<Arc<Gate>>,
    /// `ferry up`'s workers, whose series `/metrics` merges in.
    pub workers: Option<crate::fleet_metrics::Workers>,
    /// The dashboard's charts.
    pub history: crate::dashboard::History,
}

/// Serves the probes and `/metrics` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shared: Listener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let app = axum::Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .route("/", get(dashboard))
        .with_state(shared);
    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
        tracing::error!(error = %e, "the metrics listener failed");
    }
}

async fn ready(State(Listener { node, .. }): State<Listener>) -> (StatusCode, String) {
    match node.raft.current_leader().await {
        Some(leader) => (StatusCode::OK, format!("ready: leader is node {leader}\n")),
        None => (StatusCode::SERVICE_UNAVAILABLE, "no leader known\n".into()),
    }
}

/// The refusal of a reader the gate does not admit (None: admitted, or
/// no gate). A 401 invites a browser to ask for the token (Basic).
fn refused(readers: &Option<Arc<Gate>>, headers: &HeaderMap) -> Option<Response> {
    let refused = readers.as_ref()?.admit_reader(headers).err()?;
    let body = format!("{}\n", refused.message());
    Some(match refused.code() {
        tonic::Code::PermissionDenied => (StatusCode::FORBIDDEN, body).into_response(),
        _ => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"ferry\", charset=\"UTF-8\"")],
            body,
        )
            .into_response(),
    })
}

async fn dashboard(State(l): State<Listener>, headers: HeaderMap) -> Response {
    if let Some(r) = refused(&l.readers, &headers) {
        return r;
    }
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        crate::dashboard::render(&l.node, &l.history),
    )
        .into_response()
}

async fn metrics(
    State(Listener {
        node, readers, workers, ..
    }): State<Listener>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = refused(&readers, &headers) {
        return r;
    }
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
    crate::raft_metrics::register(&mut reg, &node.raft);
    crate::worker_calls::register(&mut reg);
    let mut body = String::new();
    let encoded = encode(&mut body, &reg);
    if let (Ok(()), Some(workers)) = (&encoded, workers) {
        // The workers' families go before the closing `# EOF`.
        let own = body.trim_end().strip_suffix("# EOF").unwrap_or(&body).to_string();
        body = own + &workers.scrape().await + "# EOF\n";
    }
    match encoded {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("encoding metrics: {e}\n")).into_response(),
    }
}
