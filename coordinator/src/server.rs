//! Starting one coordinator node: the RocksDB store, Raft, the gRPC
//! listener (admin, worker and Raft services over one `Node` handle), and
//! the leader's lease reaper.

use crate::node::Node;
use crate::raft::log_store::LogStore;
use crate::raft::network::{Network, RaftService};
use crate::raft::state_machine::StateMachine;
use crate::raft::{open_db, NodeId, Raft};
use crate::service::{AdminService, WorkerService};
use crate::state::Request;
use anyhow::Context;
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
    pub lease_ms: u64,
}

pub async fn run(
    cfg: NodeConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
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
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(5000),
        max_in_snapshot_log_to_keep: 1000,
        ..Default::default()
    };
    let raft = Raft::new(cfg.node_id, Arc::new(config.validate()?), Network, log_store, sm)
        .await
        .context("starting raft")?;
    if !raft.is_initialized().await? {
        let mut members = BTreeMap::new();
        members.insert(cfg.node_id, openraft::BasicNode::new(cfg.listen.to_string()));
        raft.initialize(members)
            .await
            .context("bootstrapping single-node raft cluster")?;
        tracing::info!(node_id = cfg.node_id, "bootstrapped a new single-node cluster");
    }
    let node = Node {
        raft: raft.clone(),
        state,
        lease_ms: cfg.lease_ms,
    };
    tokio::spawn(reap_leases(node.clone()));
    tracing::info!(listen = %cfg.listen, data_dir = %cfg.data_dir.display(), "coordinator listening");
    tonic::transport::Server::builder()
        .add_service(AdminServer::new(AdminService { node: node.clone() }))
        .add_service(WorkerServer::new(WorkerService { node: node.clone() }))
        .add_service(RaftServer::new(RaftService { raft: raft.clone() }))
        .serve_with_shutdown(cfg.listen, shutdown)
        .await
        .with_context(|| format!("serving gRPC on {}", cfg.listen))?;
    let _ = raft.shutdown().await;
    Ok(())
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
        let any_expired = node
            .state
            .read()
            .expect("state lock")
            .leases
            .values()
            .any(|l| l.expires_ms <= now);
        if any_expired {
            match node.write(Request::ExpireLeases { now_ms: now }).await {
                Ok(_) => tracing::info!("expired leases returned to the queue"),
                Err(e) => tracing::warn!(error = %e, "could not expire leases"),
            }
        }
    }
}
