//! The node handle the gRPC services share: Raft writes through the state
//! machine, linearizable reads, the lease length. Starting a node (store,
//! Raft, listener) is `server`'s; this module knows no service.

use crate::raft::state_machine::SharedState;
use crate::raft::Raft;
use crate::state::{Request, Response};

/// What the gRPC services share.
#[derive(Clone)]
pub struct Node {
    pub raft: Raft,
    pub state: SharedState,
    pub lease_ms: u64,
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
            Err(openraft::error::RaftError::APIError(openraft::error::ClientWriteError::ForwardToLeader(f))) => Err(
                WriteError::NotLeader(f.leader_node.map_or_else(|| "unknown".to_string(), |n| n.addr)),
            ),
            Err(e) => Err(WriteError::Raft(e.to_string())),
        }
    }

    /// Linearizable read barrier: confirms leadership before a read.
    pub async fn read_barrier(&self) -> Result<(), WriteError> {
        self.raft
            .ensure_linearizable()
            .await
            .map(|_| ())
            .map_err(|e| WriteError::NotLeader(e.to_string()))
    }
}
