//! The node handle the gRPC services share: Raft writes through the state
//! machine, linearizable reads, the lease length. Starting a node (store,
//! Raft, listener) is `server`'s; this module knows no service.

use crate::capacity::Cooldown;
use crate::raft::state_machine::SharedState;
use crate::raft::Raft;
use crate::state::{Request, Response};

/// What the gRPC services share.
#[derive(Clone)]
pub struct Node {
    pub raft: Raft,
    pub state: SharedState,
    pub lease_ms: u64,
    /// The cluster's desired capacity over the scale-down cooldown.
    pub capacity: std::sync::Arc<Cooldown>,
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("this coordinator is not the leader (leader: {0})")]
    NotLeader(String),
    #[error("raft: {0}")]
    Raft(String),
}

impl From<WriteError> for tonic::Status {
    fn from(e: WriteError) -> tonic::Status {
        tonic::Status::unavailable(e.to_string())
    }
}

impl Node {
    /// Proposes a request through Raft and returns what the state machine
    /// answered once it is committed and applied.
    pub async fn write(&self, req: Request) -> Result<Response, WriteError> {
        match self.raft.client_write(req).await {
            Ok(r) => Ok(r.data),
            Err(openraft::error::RaftError::APIError(openraft::error::ClientWriteError::ForwardToLeader(f))) => {
                Err(not_leader(f))
            }
            Err(e) => Err(WriteError::Raft(e.to_string())),
        }
    }

    /// Every task's capacity figures and the cluster's, from this node's
    /// replica of the state (any node answers).
    pub fn capacity(&self) -> crate::capacity::ClusterCapacity {
        let s = self.state.read().expect("state lock");
        self.capacity.cluster(s.tasks.values())
    }

    /// Linearizable read barrier: confirms leadership before a read.
    pub async fn read_barrier(&self) -> Result<(), WriteError> {
        match self.raft.ensure_linearizable().await {
            Ok(_) => Ok(()),
            Err(openraft::error::RaftError::APIError(openraft::error::CheckIsLeaderError::ForwardToLeader(f))) => {
                Err(not_leader(f))
            }
            // A leader that cannot reach a quorum may have been deposed: the
            // client should look for the leader elsewhere, as for a follower.
            Err(e) => {
                tracing::debug!(error = %e, "read barrier refused");
                Err(WriteError::NotLeader("unknown".to_string()))
            }
        }
    }
}

/// The client-facing refusal of a follower. Its text is a contract:
/// `common::leader` reads the leader's `host:port` (or `unknown`) out of it,
/// so only the address — never openraft's own wording — goes in.
fn not_leader(f: openraft::error::ForwardToLeader<crate::raft::NodeId, openraft::BasicNode>) -> WriteError {
    WriteError::NotLeader(f.leader_node.map_or_else(|| "unknown".to_string(), |n| n.addr))
}
