//! The worker's HTTP listener (`--metrics-listen`): Kubernetes' probes and
//! a few Prometheus gauges.
//!
//! - `/healthz`: 200 while the process serves (liveness).
//! - `/readyz`: 200 once a slot registered with the coordinator, 503 before
//!   and while draining (a draining pod takes no new work).
//! - `/metrics` (off loopback: for callers the coordinator admits as
//!   viewers, see [`Readers`]): `ferry_worker_slots`, `ferry_worker_assignments_running`,
//!   `ferry_worker_draining`, and the process's `ferry_worker_cpu_seconds_total`
//!   and `ferry_worker_resident_memory_bytes` (Linux, from `/proc/self`);
//!   the bytes this worker sent to targets, by task and table for loads
//!   (`ferry_worker_full_load_bytes_target_total`) and by task for CDC
//!   (`ferry_worker_cdc_bytes_target_total`), and read from sources
//!   (`..._bytes_source_total`): their rates are DMS's
//!   FullLoadThroughputBandwidthTarget/Source and CDCThroughputBandwidthTarget/Source.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use ferry_common::access::{presented_token, token_digest, ClientLink};
use ferry_common::proto::{admin_client::AdminClient, ListTasksRequest};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// Bytes moved, counted by label values: the bandwidth series.
struct Bytes {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    counts: Mutex<BTreeMap<Vec<String>, u64>>,
}

impl Bytes {
    const fn new(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Bytes {
        Bytes {
            name,
            help,
            labels,
            counts: Mutex::new(BTreeMap::new()),
        }
    }

    fn add(&self, values: &[&str], bytes: usize) {
        let key = values.iter().map(|v| v.to_string()).collect();
        let mut m = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry(key).or_default() += bytes as u64;
    }

    fn register(&self, reg: &mut Registry) {
        let family = Family::<Vec<(String, String)>, Counter>::default();
        for (values, n) in self.counts.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let labels = self
                .labels
                .iter()
                .map(|l| l.to_string())
                .zip(values.iter().cloned())
                .collect();
            family.get_or_create(&labels).inc_by(*n);
        }
        reg.register(self.name, self.help, family);
    }
}

static LOAD_READ: Bytes = Bytes::new(
    "ferry_worker_full_load_bytes_source",
    "Bytes this worker's loads read from the source (rate: DMS FullLoadThroughputBandwidthSource)",
    &["task", "table"],
);
static LOAD_SENT: Bytes = Bytes::new(
    "ferry_worker_full_load_bytes_target",
    "Bytes this worker's loads sent to the target (rate: DMS FullLoadThroughputBandwidthTarget)",
    &["task", "table"],
);
static CDC_RECEIVED: Bytes = Bytes::new(
    "ferry_worker_cdc_bytes_source",
    "Bytes of log this worker's CDC streams received from the source (rate: DMS CDCThroughputBandwidthSource)",
    &["task"],
);
static CDC_SENT: Bytes = Bytes::new(
    "ferry_worker_cdc_bytes_target",
    "Bytes of statements this worker's CDC streams sent to the target (rate: DMS CDCThroughputBandwidthTarget)",
    &["task"],
);

/// A load of `table` read `bytes` from its source (COPY text, or the
/// values read).
pub fn read(task: &str, table: &str, bytes: usize) {
    LOAD_READ.add(&[task, table], bytes);
}

/// A CDC stream received `bytes` of log (pgoutput messages, binlog events).
pub fn received(task: &str, bytes: usize) {
    CDC_RECEIVED.add(&[task], bytes);
}

/// A same-engine copy of `table` passed `bytes` from its source to its
/// target unchanged: read and sent alike.
pub fn copied(task: &str, table: &str, bytes: usize) {
    LOAD_READ.add(&[task, table], bytes);
    LOAD_SENT.add(&[task, table], bytes);
}

/// A load of `table` sent `bytes` (COPY text or LOAD DATA rows) to its target.
pub fn loaded(task: &str, table: &str, bytes: usize) {
    LOAD_SENT.add(&[task, table], bytes);
}

/// A CDC stream sent `bytes` of statements to its target.
pub fn applied(task: &str, bytes: usize) {
    CDC_SENT.add(&[task], bytes);
}

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

/// Who may read `/metrics` when the listener is off loopback: a caller
/// the coordinator's admin API admits for a viewer's read. The worker
/// holds no tokens, so it asks the coordinator (`ListTasks` with the token
/// presented, as Bearer or as a Basic password) and remembers a yes for
/// [`ADMITTED_FOR`]; a coordinator in laptop mode admits everyone, as its
/// own listener does.
pub struct Readers {
    /// The worker's link to the coordinators, without its own credentials.
    link: ClientLink,
    admitted: Mutex<HashMap<String, Instant>>,
}

const ADMITTED_FOR: Duration = Duration::from_secs(60);

impl Readers {
    pub fn new(worker: &ClientLink) -> Readers {
        Readers {
            link: ClientLink {
                token: None,
                cert: None,
                key: None,
                ..worker.clone()
            },
            admitted: Mutex::new(HashMap::new()),
        }
    }

    async fn admit(&self, headers: &HeaderMap) -> Result<(), (StatusCode, String)> {
        let token = headers
            .get("authorization")
            .and_then(|h| h.to_str().ok())
            .and_then(presented_token);
        let key = token.as_deref().map(token_digest).unwrap_or_default();
        {
            let mut admitted = self.admitted.lock().unwrap_or_else(|p| p.into_inner());
            admitted.retain(|_, until| *until > Instant::now());
            if admitted.contains_key(&key) {
                return Ok(());
            }
        }
        let link = ClientLink {
            token,
            ..self.link.clone()
        };
        let unavailable = |why: String| {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("cannot check the credentials with the coordinator: {why}\n"),
            )
        };
        let channel = link
            .connect_lazy(Duration::from_secs(3), Duration::from_secs(5))
            .map_err(|e| unavailable(e.to_string()))?;
        let mut admin = AdminClient::new(channel);
        // A follower names the leader; the next call goes there.
        let mut last = None;
        for _ in 0..=link.url.split(',').count() {
            match admin.list_tasks(ListTasksRequest {}).await {
                Ok(_) => {
                    let mut admitted = self.admitted.lock().unwrap_or_else(|p| p.into_inner());
                    admitted.insert(key, Instant::now() + ADMITTED_FOR);
                    return Ok(());
                }
                Err(s) if s.code() == tonic::Code::Unauthenticated => return Err((
                    StatusCode::UNAUTHORIZED,
                    "this worker's metrics need a viewer's token (authorization: Bearer): unknown, revoked or none\n"
                        .into(),
                )),
                Err(s) if s.code() == tonic::Code::PermissionDenied => {
                    return Err((
                        StatusCode::FORBIDDEN,
                        "this token's role may not read metrics; a viewer's may\n".into(),
                    ))
                }
                Err(s) => last = Some(s.message().to_string()),
            }
        }
        Err(unavailable(last.unwrap_or_default()))
    }
}

/// Serves the probes on `listener` for the life of the process; `/metrics`
/// readers must pass `readers` when given.
pub async fn serve(listener: tokio::net::TcpListener, readers: Option<Arc<Readers>>) {
    let app = axum::Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .with_state(readers);
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

async fn metrics(State(readers): State<Option<Arc<Readers>>>, headers: HeaderMap) -> (StatusCode, String) {
    if let Some(r) = readers {
        if let Err(refused) = r.admit(&headers).await {
            return refused;
        }
    }
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
    for bytes in [&LOAD_READ, &LOAD_SENT, &CDC_RECEIVED, &CDC_SENT] {
        bytes.register(&mut reg);
    }
    if let Some(p) = Process::read() {
        reg.register(
            "ferry_worker_cpu_seconds",
            "CPU time this worker process used, user and system",
            ConstCounter::new(p.cpu_seconds),
        );
        reg.register(
            "ferry_worker_resident_memory_bytes",
            "Resident memory of this worker process",
            gauge(p.rss_bytes as i64),
        );
    }
    let mut body = String::new();
    match encode(&mut body, &reg) {
        Ok(()) => (StatusCode::OK, body),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("encoding metrics: {e}\n")),
    }
}

/// The process's CPU time and resident memory, from `/proc/self` (None
/// where there is no procfs).
struct Process {
    cpu_seconds: f64,
    rss_bytes: u64,
}

impl Process {
    fn read() -> Option<Process> {
        Some(Process {
            cpu_seconds: Self::cpu_seconds(&std::fs::read_to_string("/proc/self/stat").ok()?)?,
            rss_bytes: Self::rss_bytes(&std::fs::read_to_string("/proc/self/status").ok()?)?,
        })
    }

    /// utime + stime (fields 14 and 15 of `/proc/self/stat`), in clock
    /// ticks of USER_HZ, which Linux fixes at 100 for user space.
    fn cpu_seconds(stat: &str) -> Option<f64> {
        // The command name (field 2) is in parentheses and may hold spaces.
        let rest = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // `rest` starts at field 3 (state): utime is field 14.
        let utime: u64 = fields.get(11)?.parse().ok()?;
        let stime: u64 = fields.get(12)?.parse().ok()?;
        Some((utime + stime) as f64 / 100.0)
    }

    /// `VmRSS:   1234 kB` of `/proc/self/status`.
    fn rss_bytes(status: &str) -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_figures_parse_from_procfs_text() {
        let stat = "4242 (ferry worker) S 1 4242 4242 0 -1 4194304 900 0 0 0 250 75 0 0 20 0 9 0 100 0 0";
        assert_eq!(Process::cpu_seconds(stat), Some(3.25));
        assert_eq!(
            Process::rss_bytes("Name:\tferry\nVmRSS:\t   2048 kB\n"),
            Some(2 * 1024 * 1024)
        );
        assert_eq!(Process::cpu_seconds("garbage"), None);
    }

    #[test]
    fn bytes_are_counted_by_their_labels() {
        let b = Bytes::new("x_bytes", "moved", &["task", "table"]);
        b.add(&["t1", "s.a"], 10);
        b.add(&["t1", "s.a"], 5);
        b.add(&["t2", "s.b"], 1);
        let mut reg = Registry::default();
        b.register(&mut reg);
        let mut out = String::new();
        encode(&mut out, &reg).unwrap();
        assert!(out.contains(r#"x_bytes_total{task="t1",table="s.a"} 15"#), "{out}");
        assert!(out.contains(r#"x_bytes_total{task="t2",table="s.b"} 1"#), "{out}");
    }

    #[test]
    fn this_process_has_cpu_time_and_memory() {
        let p = Process::read().expect("procfs on Linux");
        assert!(p.rss_bytes > 0);
        assert!(p.cpu_seconds >= 0.0);
    }
}
