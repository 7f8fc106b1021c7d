//! Structured progress to the coordinator from inside a running assignment
//! (snapshot ready, CDC checkpoints), tagged with the assignment's epoch.

use crate::engine::ConnectorError;
use ferry_common::access::Link;
use ferry_common::proto::{self as pb, admin_client::AdminClient, worker_client::WorkerClient};
use ferry_common::work::ProgressDetail;

/// How long a waiter tolerates a task without a running stream: the gap
/// between one stream's lease running out and the next grant is shorter.
const STREAMLESS_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

#[derive(Clone)]
pub struct Reporter {
    client: WorkerClient<Link>,
    /// For waiting on a task's CDC stream (validation during CDC).
    admin: AdminClient<Link>,
    assignment: pb::AssignmentRef,
}

impl Reporter {
    pub fn new(client: WorkerClient<Link>, admin: AdminClient<Link>, assignment: pb::AssignmentRef) -> Reporter {
        Reporter {
            client,
            admin,
            assignment,
        }
    }

    /// Waits until the task's CDC stream has applied everything its source
    /// committed before this call: a caught-up mark, as `ferry task wait
    /// --for caught-up` uses.
    /// Gives up (see [`ConnectorError::HandBack`]) once the task's stream
    /// has had no worker for [`STREAMLESS_GRACE`].
    pub async fn wait_applied(&self, task: &str, timeout: std::time::Duration) -> Result<(), ConnectorError> {
        let mut admin = self.admin.clone();
        let name = || pb::TaskName {
            name: task.to_string(),
            ..Default::default()
        };
        let transient =
            |what: &str, s: tonic::Status| ConnectorError::Transient(format!("task {task}: {what}: {}", s.message()));
        let mark = admin
            .request_mark(name())
            .await
            .map_err(|s| transient("requesting a caught-up mark", s))?
            .into_inner()
            .mark;
        let deadline = std::time::Instant::now() + timeout;
        let mut streamless_since: Option<std::time::Instant> = None;
        loop {
            let st = admin
                .task_status(name())
                .await
                .map_err(|s| transient("reading the CDC position", s))?
                .into_inner();
            let cdc = serde_json::from_str::<serde_json::Value>(&st.cdc_json).unwrap_or_default();
            if cdc["marks_reached"].as_u64().unwrap_or(0) >= mark {
                return Ok(());
            }
            // No worker runs the stream (its worker died and the lease ran
            // out): waiting here would hold the slot it needs to resume.
            if cdc["streaming"].as_bool() == Some(false) {
                let since = *streamless_since.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() >= STREAMLESS_GRACE {
                    return Err(ConnectorError::HandBack(format!(
                        "task {task}: its CDC stream has no worker; handing this assignment back so the stream can run"
                    )));
                }
            } else {
                streamless_since = None;
            }
            if std::time::Instant::now() > deadline {
                return Err(ConnectorError::Transient(format!(
                    "task {task}: the CDC stream did not catch up within {timeout:?}"
                )));
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Watches for caught-up marks requested for this assignment's task
    /// (`task wait --for caught-up`, a cutover's drain, validation), so a
    /// CDC stream emits one within ~100 ms instead of at its next report.
    /// The poller stops when the receiver is dropped.
    pub fn mark_requests(&self) -> tokio::sync::watch::Receiver<u64> {
        let (tx, rx) = tokio::sync::watch::channel(0);
        let mut client = self.client.clone();
        let assignment = self.assignment;
        tokio::spawn(async move {
            let mut poll = tokio::time::interval(std::time::Duration::from_millis(100));
            while !tx.is_closed() {
                poll.tick().await;
                if let Ok(r) = client.mark_requested(assignment).await {
                    let mark = r.into_inner().mark;
                    tx.send_if_modified(|m| std::mem::replace(m, mark) != mark);
                }
            }
        });
        rx
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
