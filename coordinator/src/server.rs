//! Starting one coordinator node: the RocksDB store, Raft, the gRPC
//! listener (admin, worker and Raft services over one `Node` handle), and
//! the leader's lease reaper and cutover driver.

use crate::access::{Audit, Gate, GateLayer};
use crate::node::Node;
use crate::raft::log_store::LogStore;
use crate::raft::network::{Network, RaftService};
use crate::raft::state_machine::StateMachine;
use crate::raft::{open_db, NodeId, Raft};
use crate::service::{AdminService, WorkerService};
use crate::state::Request;
use anyhow::Context;
use ferry_common::externalscaler::external_scaler_server::ExternalScalerServer;
use ferry_common::proto::{admin_server::AdminServer, raft_server::RaftServer, worker_server::WorkerServer};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub struct NodeConfig {
    pub node_id: NodeId,
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// host:port the other nodes reach this one at.
    pub advertise: String,
    /// Nodes of an existing cluster to join (`--join`); empty: this node
    /// starts a cluster if its data dir holds none.
    pub join: Vec<String>,
    pub join_token: Option<String>,
    pub lease_ms: u64,
    /// Snapshot and purge the log every this many entries.
    pub snapshot_logs: u64,
    /// How long the desired capacity stays up after the work falls
    /// (docs/capacity.md).
    pub scale_down_cooldown: Duration,
    /// The HTTP listener for probes and /metrics (`--metrics-listen`).
    pub metrics_listen: Option<SocketAddr>,
    /// `ferry up`'s workers, whose series its `/metrics` merges in.
    pub worker_series: Option<crate::fleet_metrics::Workers>,
    pub security: Security,
}

/// The scale-down cooldown unless `--scale-down-cooldown` says otherwise.
pub const SCALE_DOWN_COOLDOWN_S: u64 = 60;

/// Entries between snapshots by default: at the one report per second per
/// stream that workers send, a snapshot every few minutes under load.
pub const SNAPSHOT_LOGS: u64 = 5000;

impl NodeConfig {
    /// Node 1 of a cluster of its own (`ferry up`, `ferry demo`).
    pub fn single(data_dir: PathBuf, listen: SocketAddr, lease_ms: u64, security: Security) -> NodeConfig {
        NodeConfig {
            node_id: 1,
            data_dir,
            listen,
            advertise: listen.to_string(),
            join: vec![],
            join_token: None,
            lease_ms,
            snapshot_logs: SNAPSHOT_LOGS,
            scale_down_cooldown: Duration::from_secs(SCALE_DOWN_COOLDOWN_S),
            metrics_listen: None,
            worker_series: None,
            security,
        }
    }
}

/// How a coordinator protects its listener (docs/security.md).
#[derive(Clone, Debug, Default)]
pub struct Security {
    pub tls: Option<ServerTls>,
    /// A file holding the bootstrap admin token.
    pub admin_token_file: Option<PathBuf>,
    /// Serve a non-loopback address without TLS and tokens.
    pub insecure: bool,
}

/// The node's certificate and key, and the CA whose certificates it
/// accepts from clients and peers (PEM files).
#[derive(Clone, Debug)]
pub struct ServerTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

impl ServerTls {
    /// The files `ferry certs init DIR` writes.
    pub fn in_dir(dir: &std::path::Path) -> ServerTls {
        ServerTls {
            cert: dir.join(crate::certs::NODE.0),
            key: dir.join(crate::certs::NODE.1),
            ca: dir.join(crate::certs::CA.0),
        }
    }
}

impl Security {
    /// Laptop mode (everyone admitted) or not. A loopback listener with no
    /// TLS and no token is the laptop mode; any other address needs TLS and
    /// an admin token, or `--insecure`.
    pub fn open(&self, listen: SocketAddr) -> anyhow::Result<bool> {
        let secured = self.tls.is_some() || self.admin_token_file.is_some();
        if listen.ip().is_loopback() || self.insecure {
            if self.insecure && !listen.ip().is_loopback() && !secured {
                tracing::warn!(%listen, "--insecure: anyone who can reach this address can create tasks and receive endpoint URLs");
            }
            return Ok(!secured);
        }
        anyhow::ensure!(
            self.tls.is_some() && self.admin_token_file.is_some(),
            "refusing to listen on {listen} without TLS and an admin token: give --tls-dir (see `ferry certs init`) and --admin-token-file, listen on 127.0.0.1, or pass --insecure"
        );
        Ok(false)
    }

    fn admin_digest(&self) -> anyhow::Result<Option<String>> {
        let Some(f) = &self.admin_token_file else {
            return Ok(None);
        };
        let token =
            std::fs::read_to_string(f).with_context(|| format!("reading the admin token file {}", f.display()))?;
        anyhow::ensure!(
            token.trim().len() >= 16,
            "the admin token in {} is shorter than 16 characters",
            f.display()
        );
        Ok(Some(ferry_common::access::token_digest(&token)))
    }

    fn server_tls(&self) -> anyhow::Result<Option<tonic::transport::ServerTlsConfig>> {
        use tonic::transport::{Certificate, Identity, ServerTlsConfig};
        let Some(t) = &self.tls else { return Ok(None) };
        let read =
            |p: &PathBuf, what: &str| std::fs::read(p).with_context(|| format!("reading {what} {}", p.display()));
        Ok(Some(
            ServerTlsConfig::new()
                .identity(Identity::from_pem(
                    read(&t.cert, "TLS certificate")?,
                    read(&t.key, "TLS key")?,
                ))
                .client_ca_root(Certificate::from_pem(read(&t.ca, "TLS CA certificate")?))
                // A token or a certificate: a client may present either.
                .client_auth_optional(true),
        ))
    }
}

pub async fn run(
    mut cfg: NodeConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // Every pod of a StatefulSet gets the same --join (its first pod): the
    // node it names is that pod itself, and it starts the cluster.
    let advertise = cfg.advertise.clone();
    cfg.join.retain(|u| !names_node(u, &advertise));
    // Refuse an unprotected listener before touching anything.
    let open = cfg.security.open(cfg.listen)?;
    let admin_digest = cfg.security.admin_digest()?;
    let server_tls = cfg.security.server_tls()?;
    let probes = match cfg.metrics_listen {
        Some(a) => Some(
            tokio::net::TcpListener::bind(a)
                .await
                .with_context(|| format!("listening for probes and metrics on {a}"))?,
        ),
        None => None,
    };
    std::fs::create_dir_all(&cfg.data_dir).with_context(|| format!("creating data dir {}", cfg.data_dir.display()))?;
    // The Raft log and state hold task definitions and endpoints (no
    // secrets, but hosts and paths): readable by the coordinator's user only.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&cfg.data_dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting data dir {} to its owner", cfg.data_dir.display()))?;
    }
    let db = open_db(&cfg.data_dir.join("raft"))
        .with_context(|| format!("opening RocksDB in {}", cfg.data_dir.display()))?;
    let log_store = LogStore::new(db.clone());
    let sm = StateMachine::open(db).map_err(|e| anyhow::anyhow!("loading state machine: {e}"))?;
    let state = sm.state.clone();
    let config = openraft::Config {
        cluster_name: "ferry".into(),
        heartbeat_interval: 250,
        election_timeout_min: 1000,
        election_timeout_max: 2000,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(cfg.snapshot_logs.max(2)),
        // Kept past the snapshot so a briefly lagging follower catches up
        // from the log rather than a snapshot.
        max_in_snapshot_log_to_keep: cfg.snapshot_logs / 5,
        ..Default::default()
    };
    let network = Network::new(cfg.security.tls.as_ref())?;
    let raft = Raft::new(cfg.node_id, Arc::new(config.validate()?), network, log_store, sm)
        .await
        .context("starting raft")?;
    // A node started with --join never initializes (two clusters must not
    // be born from one deployment); it asks to be added once it serves.
    let mut joining = None;
    if !raft.is_initialized().await? {
        if cfg.join.is_empty() {
            let mut members = BTreeMap::new();
            members.insert(cfg.node_id, openraft::BasicNode::new(cfg.advertise.clone()));
            raft.initialize(members)
                .await
                .context("bootstrapping single-node raft cluster")?;
            tracing::info!(node_id = cfg.node_id, "bootstrapped a new single-node cluster");
        } else {
            let tls = cfg.security.tls.as_ref();
            joining = Some(ferry_common::access::ClientLink {
                url: String::new(),
                token: cfg.join_token.clone(),
                ca: tls.map(|t| t.ca.clone()),
                cert: tls.map(|t| t.cert.clone()),
                key: tls.map(|t| t.key.clone()),
            });
        }
    }
    let node = Node {
        raft: raft.clone(),
        state,
        lease_ms: cfg.lease_ms,
        capacity: Arc::new(crate::capacity::Cooldown::new(cfg.scale_down_cooldown)),
    };
    tokio::spawn(reap_leases(node.clone()));
    tokio::spawn(sample_capacity(node.clone()));
    tokio::spawn(crate::cutover::drive(node.clone()));
    if let Some(link) = joining {
        tokio::spawn(crate::cluster::join_via(
            cfg.join.clone(),
            link,
            cfg.node_id,
            cfg.advertise.clone(),
        ));
    }
    let gate = Arc::new(Gate {
        open,
        admin_digest,
        state: node.state.clone(),
        audit: Arc::new(
            Audit::open(cfg.data_dir.join("audit.log"))
                .with_context(|| format!("opening the audit log in {}", cfg.data_dir.display()))?,
        ),
    });
    if let Some(l) = probes {
        // On loopback (or in laptop mode, where the gate admits everyone)
        // /metrics is open; elsewhere it asks the gate for a reader.
        let loopback = l.local_addr().is_ok_and(|a| a.ip().is_loopback());
        let readers = (!open && !loopback).then(|| gate.clone());
        let history = crate::dashboard::History::default();
        tokio::spawn(history.clone().sample(node.clone()));
        let listener = crate::probes::Listener {
            node: node.clone(),
            readers,
            workers: cfg.worker_series.clone(),
            history,
        };
        tokio::spawn(crate::probes::serve(l, listener, std::future::pending()));
    }
    tracing::info!(
        listen = %cfg.listen,
        data_dir = %cfg.data_dir.display(),
        tls = server_tls.is_some(),
        credentials = if open { "none (laptop mode)" } else { "required" },
        "coordinator listening"
    );
    let mut server = tonic::transport::Server::builder();
    if let Some(tls) = server_tls {
        server = server.tls_config(tls).context("configuring TLS")?;
    }
    server
        .layer(GateLayer(gate))
        .add_service(AdminServer::new(AdminService {
            node: node.clone(),
            secured: !open,
        }))
        .add_service(WorkerServer::new(WorkerService { node: node.clone() }))
        .add_service(RaftServer::new(RaftService { raft: raft.clone() }))
        .add_service(ExternalScalerServer::new(crate::scaler::ScalerService {
            node: node.clone(),
        }))
        .serve_with_shutdown(cfg.listen, shutdown)
        .await
        .with_context(|| format!("serving gRPC on {}", cfg.listen))?;
    let _ = raft.shutdown().await;
    Ok(())
}

/// Whether `url` (scheme://host:port[/]) names the node advertised as
/// `advertise` (host:port).
fn names_node(url: &str, advertise: &str) -> bool {
    let host_port = url.split_once("://").map_or(url, |(_, rest)| rest);
    host_port.trim_end_matches('/') == advertise
}

/// Feeds the cooldown window every second, so scale-down waits for a quiet
/// window even when nobody asked for the figure meanwhile.
async fn sample_capacity(node: Node) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        node.capacity();
    }
}

/// The leader returns expired assignments to the queue. Followers skip: only
/// the leader schedules.
async fn reap_leases(node: Node) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        let leader = node.raft.current_leader().await;
        if leader != Some(node.raft.metrics().borrow().id) {
            continue;
        }
        let now = ferry_common::now_ms();
        let any_expired = {
            let s = node.state.read().expect("state lock");
            s.leases.values().any(|l| l.expires_ms <= now)
                || s.errands
                    .values()
                    .any(|e| e.queued_ms + crate::state::ERRAND_TTL_MS <= now)
        };
        if any_expired {
            match node.write(Request::ExpireLeases { now_ms: now }).await {
                Ok(_) => tracing::info!("expired leases returned to the queue"),
                Err(e) => tracing::warn!(error = %e, "could not expire leases"),
            }
        }
    }
}
