//! A CDC stream at its stop position (`--cdc-stop-position`).
//!
//! The engines' streams check each source transaction as it begins: one
//! that commits after the stop (`CdcStop::passed`) is the first not to be
//! applied, and the stream hands its applier to [`halt`] before any of that
//! transaction reaches a batch. Every transaction before it was received
//! whole (a log delivers transactions in commit order, each one's changes
//! between its begin and its commit), so committing the open batch leaves
//! the target exactly at the stop: the applied position is the last
//! transaction before it, from which `ferry task start` resumes, the first
//! transaction it applies being the one the stream stopped at.
//!
//! The stream then reports `stop_reached` until the coordinator, having
//! stored it, stops the task and revokes the assignment (the future is
//! dropped; a report after the revocation is fenced and ends it too). It
//! applies nothing more meanwhile.
//!
//! A position stop the target is already past (a stream stopped while it
//! was still applying, then given a stop behind what it applied) cannot be
//! honoured: [`check_not_past`] fails the stream then rather than report a
//! stop the target does not hold. A time stop is checked against commit
//! times, which the target's position does not carry.

use super::apply::Applier;
use crate::engine::ConnectorError;
use crate::report::Reporter;
use ferry_common::position::Position;
use ferry_common::stop::CdcStop;
use ferry_common::work::{ProgressDetail, WorkResult};
use std::time::Duration;

/// Fails when the target's applied position is already past a position
/// stop.
pub fn check_not_past(applied: Option<&Position>, stop: Option<&CdcStop>) -> Result<(), ConnectorError> {
    match (applied, stop) {
        (Some(at), Some(CdcStop::Position(p))) if at > p => Err(ConnectorError::Definite(format!(
            "the target already holds changes past the CDC stop position {p} (applied through {at}); give a later stop, or none"
        ))),
        _ => Ok(()),
    }
}

/// Commits what precedes the stop and reports it until revoked.
pub async fn halt(applier: &mut Applier, reporter: &Reporter, stop: &CdcStop) -> Result<WorkResult, ConnectorError> {
    applier.commit_batch().await?;
    let at = applier.applied.clone();
    applier.finish_drops(at.as_ref()).await?;
    tracing::info!(%stop, applied = ?at, "CDC stop position reached: the stream applies nothing more");
    let started = std::time::Instant::now();
    loop {
        let mut progress = applier.progress(at.clone(), true, 0, started.elapsed().as_secs_f64());
        progress.stop_reached = true;
        match reporter.report(&ProgressDetail::Cdc(progress)).await {
            Ok(_) => applier.reported(),
            Err(e @ ConnectorError::Definite(_)) => return Err(e),
            Err(e) => tracing::warn!(error = %e, "the stop is not stored yet; reporting it again"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
