//! A full load's exported snapshot: every segment of the task imports it
//! (`SET TRANSACTION SNAPSHOT`), so block-range segments read one image of
//! the table however many workers read them and whenever they start.
//!
//! A CDC task exports its snapshot by creating a temporary slot (see
//! `cdc::slot::hold_snapshot`): its changes must start exactly where the
//! snapshot ends. A full load has no changes to follow, so a plain
//! `pg_export_snapshot()` in a REPEATABLE READ transaction is enough; it
//! needs no replication privilege and leaves no slot behind. The snapshot
//! lives as long as that transaction: the connection stays open, pinging
//! so a lost connection is noticed (unlike a replication connection's
//! export, a transaction's exported snapshot survives further queries),
//! until the coordinator revokes the assignment, which drops this future
//! and ends the transaction.

use super::{classify, connect};
use crate::engine::ConnectorError;
use crate::report::Reporter;
use ferry_common::endpoint::Endpoint;
use ferry_common::position::Lsn;
use ferry_common::work::{ProgressDetail, WorkResult};
use std::time::Duration;

pub async fn hold(source: &Endpoint, reporter: &Reporter) -> Result<WorkResult, ConnectorError> {
    let c = connect(source).await?;
    // The session's timeouts must not end the holding transaction.
    c.batch_execute(
        "SET idle_in_transaction_session_timeout = 0; SET statement_timeout = 0;
         BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
    )
    .await
    .map_err(|e| classify("opening the load snapshot's transaction", e))?;
    // A standby exports snapshots too; its position is what it replayed.
    let row = c
        .query_one(
            "SELECT pg_export_snapshot(),
                    (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text",
            &[],
        )
        .await
        .map_err(|e| classify("exporting the load snapshot", e))?;
    let (name, lsn): (String, String) = (row.get(0), row.get(1));
    let lsn: Lsn = lsn
        .parse()
        .map_err(|e| ConnectorError::Definite(format!("the load snapshot's position '{lsn}': {e}")))?;
    tracing::info!(snapshot = %name, %lsn, "holding the load snapshot");
    publish(reporter, name, lsn).await?;
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        // A dead connection took the snapshot with it: failing tells the
        // coordinator, which reloads what was read in it.
        c.simple_query("SELECT 1")
            .await
            .map_err(|e| classify("keeping the load snapshot open", e))?;
    }
}

/// Tells the coordinator the snapshot's name, retrying until it hears.
pub(super) async fn publish(reporter: &Reporter, name: String, lsn: Lsn) -> Result<(), ConnectorError> {
    let detail = ProgressDetail::Snapshot { name, lsn: lsn.into() };
    loop {
        match reporter.report(&detail).await {
            Ok(_) => return Ok(()),
            Err(e @ ConnectorError::Definite(_)) => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}
