//! Structured progress to the coordinator from inside a running assignment
//! (snapshot ready, CDC checkpoints), tagged with the assignment's epoch.

use crate::connectors::ConnectorError;
use ferry_common::proto::{self as pb, worker_client::WorkerClient};
use ferry_common::work::ProgressDetail;
use tonic::transport::Channel;

#[derive(Clone)]
pub struct Reporter {
    client: WorkerClient<Channel>,
    assignment: pb::AssignmentRef,
}

impl Reporter {
    pub fn new(client: WorkerClient<Channel>, assignment: pb::AssignmentRef) -> Reporter {
        Reporter { client, assignment }
    }

    /// Stores `detail` in the coordinator's Raft state. Returns the highest
    /// caught-up mark requested for the task. A superseded epoch is a
    /// definite error (this worker must stop); an unreachable coordinator a
    /// transient one (the caller retries later).
    pub async fn report(&self, detail: &ProgressDetail) -> Result<u64, ConnectorError> {
        let detail_json = serde_json::to_vec(detail).expect("serializable progress");
        let mut client = self.client.clone();
        match client
            .report_progress(pb::ProgressRequest {
                assignment: Some(self.assignment),
                rows: 0,
                detail_json,
            })
            .await
        {
            Ok(r) => Ok(r.into_inner().mark_requested),
            Err(s) if s.code() == tonic::Code::FailedPrecondition => Err(ConnectorError::Definite(format!(
                "fenced by the coordinator: {}",
                s.message()
            ))),
            Err(s) => Err(ConnectorError::Transient(format!(
                "reporting progress to the coordinator: {}",
                s.message()
            ))),
        }
    }
}
