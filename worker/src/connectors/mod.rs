//! Database connectors. Everything engine-specific lives in one folder per
//! engine; the rest of the worker calls through [`run_work`].

pub mod postgres;

use ferry_common::endpoint::Engine;
use ferry_common::work::{Work, WorkResult};
use thiserror::Error;

/// Errors in two tiers: transient ones (connection lost, deadlock) retry the
/// assignment; definite ones (a row the target refuses, a missing table) stop
/// the table with the reason.
#[derive(Debug, Error)]
pub enum ConnectorError {
    #[error("{0}")]
    Transient(String),
    #[error("{0}")]
    Definite(String),
}

impl ConnectorError {
    pub fn retryable(&self) -> bool {
        matches!(self, ConnectorError::Transient(_))
    }
}

/// Progress sink: rows copied so far in the current assignment.
pub type Progress = std::sync::Arc<std::sync::atomic::AtomicU64>;

/// What a running assignment can report through.
pub struct WorkContext {
    pub progress: Progress,
    pub reporter: crate::report::Reporter,
}

pub async fn run_work(work: Work, ctx: WorkContext) -> Result<WorkResult, ConnectorError> {
    let engine = match &work {
        Work::Introspect { source, .. }
        | Work::CreateSlot { source, .. }
        | Work::HoldSnapshot { source, .. }
        | Work::DropSlot { source, .. }
        | Work::Cdc { source, .. } => source.engine,
        Work::Prepare { target, .. } | Work::Finalize { target, .. } | Work::ResetTable { target, .. } => target.engine,
        Work::LoadSegment { source, .. } | Work::PostData { source, .. } => source.engine,
    };
    match engine {
        Engine::Postgres => postgres::run(work, ctx).await,
    }
}
