//! The worker's HTTP listener (`--metrics-listen`): Kubernetes' probes and
//! a few Prometheus gauges.
//!
//! - `/healthz`: 200 while the process serves (liveness).
//! - `/readyz`: 200 once a slot registered with the coordinator, 503 before
//!   and while draining (a draining pod takes no new work).
//! - `/metrics`: `ferry_worker_slots`, `ferry_worker_assignments_running`,
//!   `ferry_worker_draining`.

use axum::http::StatusCode;
use axum::routing::get;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

/// Process-wide facts the probes report.
pub struct Health {
    pub slots: AtomicI64,
    pub registered: AtomicBool,
    pub draining: AtomicBool,
    pub running: AtomicI64,
}

pub static HEALTH: Health = Health {
    slots: AtomicI64::new(0),
    registered: AtomicBool::new(false),
    draining: AtomicBool::new(false),
    running: AtomicI64::new(0),
};

/// Counts an assignment as running while the guard lives.
pub struct Running;

impl Running {
    pub fn start() -> Running {
        HEALTH.running.fetch_add(1, Ordering::Relaxed);
        Running
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        HEALTH.running.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves the probes on `listener` for the life of the process.
pub async fn serve(listener: tokio::net::TcpListener) {
    let app = axum::Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics));
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "the metrics listener failed");
    }
}

async fn ready() -> (StatusCode, &'static str) {
    if HEALTH.draining.load(Ordering::Relaxed) {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n")
    } else if HEALTH.registered.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not registered with a coordinator yet\n",
        )
    }
}

async fn metrics() -> (StatusCode, String) {
    let mut reg = Registry::default();
    let gauge = |v: i64| {
        let g: Gauge = Gauge::default();
        g.set(v);
        g
    };
    let h = &HEALTH;
    reg.register(
        "ferry_worker_slots",
        "Assignments this worker runs at once (capacity units)",
        gauge(h.slots.load(Ordering::Relaxed)),
    );
    reg.register(
        "ferry_worker_assignments_running",
        "Assignments running now",
        gauge(h.running.load(Ordering::Relaxed)),
    );
    reg.register(
        "ferry_worker_draining",
        "1 while the worker drains (SIGTERM)",
        gauge(h.draining.load(Ordering::Relaxed) as i64),
    );
    let mut body = String::new();
    match encode(&mut body, &reg) {
        Ok(()) => (StatusCode::OK, body),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("encoding metrics: {e}\n")),
    }
}
