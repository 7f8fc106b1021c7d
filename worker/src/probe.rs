//! Liveness probes: a database that stops answering fails the assignment
//! within a bounded time, instead of holding its lease (and the task's
//! progress) forever.
//!
//! Why probes and not socket timeouts: a server whose process is frozen or
//! wedged (SIGSTOP, a stuck storage layer) still has a kernel that ACKs TCP
//! and answers keepalives, so neither TCP keepalive nor TCP_USER_TIMEOUT
//! notices; and a read timeout on the work's own connections cannot tell a
//! hung server from a legitimately long statement (an index build sends
//! nothing for minutes). A probe on a connection of its own asks the server
//! a trivial question every few seconds: a busy server answers it, a hung one
//! does not. When one endpoint leaves a probe unanswered for the timeout, the
//! assignment is abandoned — its connections drop, so its target transaction
//! rolls back when the server resumes — and reported as a retryable failure;
//! the coordinator hands it out again, and the fences make the retry exact.

use crate::engine::{self, ConnectorError};
use ferry_common::endpoint::Endpoint;
use std::time::Duration;

/// How often each endpoint is asked.
const EVERY: Duration = Duration::from_secs(2);

/// Resolves with the error once one of `endpoints` has not answered a probe
/// within `timeout`; never resolves while they answer. A probe that fails
/// outright (connection refused, authentication) is left to the work's own
/// connections to report.
pub async fn watch(endpoints: Vec<Endpoint>, timeout: Duration) -> ConnectorError {
    if endpoints.is_empty() {
        return std::future::pending().await;
    }
    let probes = endpoints.into_iter().map(|ep| Box::pin(watch_one(ep, timeout)));
    let (e, _, _) = futures::future::select_all(probes).await;
    e
}

async fn watch_one(ep: Endpoint, timeout: Duration) -> ConnectorError {
    let mut probe = engine::probe::Probe::default();
    loop {
        tokio::time::sleep(EVERY).await;
        match tokio::time::timeout(timeout, probe.ask(&ep)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(endpoint = %ep, error = %e, "liveness probe failed; the work's own connections will tell");
                probe = engine::probe::Probe::default();
            }
            Err(_) => {
                return ConnectorError::Transient(format!(
                    "{ep} did not answer a liveness probe within {} s (the server is hung or unreachable); the assignment was abandoned and will be retried",
                    timeout.as_secs()
                ))
            }
        }
    }
}
