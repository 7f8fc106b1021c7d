//! Per-task and per-table series for `/metrics`, named after DMS's
//! CloudWatch task metrics and table statistics (`ferry_` + the DMS name in
//! snake_case) so a DMS user finds them, read from the Raft state at each
//! scrape: what `ferry task status` shows, as series.
//!
//! The CDC figures are the stream's last report; `ferry_cdc_report_age_seconds`
//! says how old that is, so an alert can tell a quiet stream from a dead one.

use crate::state::{Task, UnitKind, UnitState};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

type Labels = Vec<(String, String)>;
type Ints = Family<Labels, Gauge>;
type Floats = Family<Labels, Gauge<f64, AtomicU64>>;

fn task_label(t: &Task) -> Labels {
    vec![("task".into(), t.spec.name.clone())]
}

fn table_labels(t: &Task, table: &str) -> Labels {
    vec![("task".into(), t.spec.name.clone()), ("table".into(), table.into())]
}

/// Registers the task series of `tasks` in `reg`, as of `now_ms`.
pub fn register<'a>(reg: &mut Registry, tasks: impl Iterator<Item = &'a Task>, now_ms: u64) {
    let info = Ints::default();
    let full_load_rows = Ints::default();
    let full_load_error_rows = Ints::default();
    let segments = Ints::default();
    let inserts = Ints::default();
    let updates = Ints::default();
    let deletes = Ints::default();
    let apply_exceptions = Ints::default();
    let lob_truncations = Ints::default();
    let apply_conflicts = Ints::default();
    let tables_errored = Ints::default();
    let validation_attempted = Ints::default();
    let validation_failed = Ints::default();
    let validation_succeeded = Ints::default();
    let validation_pending = Ints::default();
    let retries = Ints::default();
    let latency_source = Floats::default();
    let latency_target = Floats::default();
    let incoming = Ints::default();
    let throughput = Floats::default();
    let retained = Ints::default();
    let report_age = Floats::default();
    for t in tasks {
        let mut labels = task_label(t);
        labels.push(("type".into(), t.spec.migration_type.as_str().into()));
        labels.push(("state".into(), t.state.as_str().into()));
        info.get_or_create(&labels).set(1);
        let task = task_label(t);
        let tables = t.schema.as_ref().map(|s| s.tables.as_slice()).unwrap_or_default();
        for (i, tb) in tables.iter().enumerate() {
            let name = tb.display_name();
            let l = table_labels(t, &name);
            let (_, rows, _, _, _) = t.table_progress(i);
            full_load_rows.get_or_create(&l).set(rows as i64);
            full_load_error_rows.get_or_create(&l).set(t.load_exceptions(i) as i64);
            lob_truncations.get_or_create(&l).set(t.table_truncations(i) as i64);
            apply_conflicts.get_or_create(&l).set(t.table_conflicts(i) as i64);
            let (mut compared, mut failed) = (0, 0);
            for u in &t.units {
                if matches!(u.kind, UnitKind::Validate { table, .. } if table == i) && u.state == UnitState::Done {
                    compared += u.rows;
                    failed += u.failures;
                }
            }
            validation_attempted.get_or_create(&l).set(compared as i64);
            validation_failed.get_or_create(&l).set(failed as i64);
            validation_succeeded
                .get_or_create(&l)
                .set(compared.saturating_sub(failed) as i64);
            validation_pending
                .get_or_create(&l)
                .set(t.table_validation(i).pending as i64);
            if let Some(c) = t.cdc.as_ref().and_then(|c| c.counters.get(&name)) {
                inserts.get_or_create(&l).set(c.inserts as i64);
                updates.get_or_create(&l).set(c.updates as i64);
                deletes.get_or_create(&l).set(c.deletes as i64);
                apply_exceptions.get_or_create(&l).set(c.exceptions as i64);
            }
        }
        // Each unit counts its failed attempts (a transient error, a lost
        // worker) until it succeeds; their sum is the task's recoveries
        // under way or behind it.
        let again: u64 = t.units.iter().map(|u| u.attempts as u64).sum();
        retries.get_or_create(&task).set(again as i64);
        let mut by_state = [0i64; 4];
        for u in t.units.iter().filter(|u| matches!(u.kind, UnitKind::Load { .. })) {
            by_state[match u.state {
                UnitState::Pending { .. } => 0,
                UnitState::Running { .. } => 1,
                UnitState::Done => 2,
                UnitState::Failed { .. } => 3,
            }] += 1;
        }
        for (state, n) in ["waiting", "running", "done", "failed"].iter().zip(by_state) {
            let mut l = task.clone();
            l.push(("state".into(), state.to_string()));
            segments.get_or_create(&l).set(n);
        }
        if let Some(c) = &t.cdc {
            tables_errored.get_or_create(&task).set(c.table_errors.len() as i64);
            let p = &c.progress;
            latency_source
                .get_or_create(&task)
                .set(p.latency_source_ms as f64 / 1000.0);
            latency_target
                .get_or_create(&task)
                .set(p.latency_target_ms as f64 / 1000.0);
            incoming.get_or_create(&task).set(p.incoming_changes as i64);
            throughput.get_or_create(&task).set(p.throughput_rows_per_s);
            retained.get_or_create(&task).set(p.retained_wal_bytes as i64);
            if c.progress_at_ms > 0 {
                report_age
                    .get_or_create(&task)
                    .set(now_ms.saturating_sub(c.progress_at_ms) as f64 / 1000.0);
            }
        }
    }
    reg.register(
        "ferry_task_info",
        "A task, its migration type and state (always 1)",
        info,
    );
    reg.register(
        "ferry_full_load_rows",
        "Rows the full load copied into a table (DMS FullLoadRows)",
        full_load_rows,
    );
    reg.register(
        "ferry_full_load_error_rows",
        "Rows of a table's full load the target could not store, in ferry.apply_exceptions (DMS FullLoadErrorRows)",
        full_load_error_rows,
    );
    reg.register(
        "ferry_lob_truncations",
        "Rows of a table (full load and CDC) stored with a LOB value cut to the task's limit (limited LOB mode), each in ferry.apply_exceptions",
        lob_truncations,
    );
    reg.register(
        "ferry_apply_conflicts",
        "CDC updates and deletes of rows a table's target lacked (ApplyErrorUpdatePolicy / ApplyErrorDeletePolicy), each in ferry.apply_exceptions",
        apply_conflicts,
    );
    reg.register(
        "ferry_full_load_segments",
        "A task's full-load segments by state: waiting, running, done, failed",
        segments,
    );
    reg.register(
        "ferry_cdc_inserts",
        "Inserts CDC applied to a table (DMS Inserts)",
        inserts,
    );
    reg.register(
        "ferry_cdc_updates",
        "Updates CDC applied to a table (DMS Updates)",
        updates,
    );
    reg.register(
        "ferry_cdc_deletes",
        "Deletes CDC applied to a table (DMS Deletes)",
        deletes,
    );
    reg.register(
        "ferry_cdc_apply_exceptions",
        "Changes of a table the target could not store, in ferry.apply_exceptions",
        apply_exceptions,
    );
    reg.register(
        "ferry_tables_errored",
        "A task's tables in Table error (DMS TablesErrored)",
        tables_errored,
    );
    reg.register(
        "ferry_validation_attempted_records",
        "Rows compared by completed validation segments (DMS ValidationAttemptedRecords)",
        validation_attempted,
    );
    reg.register(
        "ferry_validation_failed_records",
        "Rows found different by completed validation segments (DMS ValidationFailedRecords)",
        validation_failed,
    );
    reg.register(
        "ferry_validation_succeeded_records",
        "Rows found equal by completed validation segments (DMS ValidationSucceededRecordCount)",
        validation_succeeded,
    );
    reg.register(
        "ferry_validation_pending_segments",
        "A table's validation segments not compared yet, or to compare again (DMS ValidationPendingRecordCount, in segments)",
        validation_pending,
    );
    reg.register(
        "ferry_task_recoveries",
        "Failed attempts of a task's units, each retried or to be (transient errors, lost workers), counted per unit until it succeeds",
        retries,
    );
    reg.register(
        "ferry_cdc_latency_source_seconds",
        "Now minus the commit time of the newest source transaction the stream received, 0 when caught up (DMS CDCLatencySource)",
        latency_source,
    );
    reg.register(
        "ferry_cdc_latency_target_seconds",
        "Now minus the commit time of the oldest received transaction not yet committed on the target (DMS CDCLatencyTarget)",
        latency_target,
    );
    reg.register(
        "ferry_cdc_incoming_changes",
        "Changes received and not yet committed on the target (DMS CDCIncomingChanges)",
        incoming,
    );
    reg.register(
        "ferry_cdc_throughput_rows_target",
        "Rows per second the stream applied over its last report interval (DMS CDCThroughputRowsTarget)",
        throughput,
    );
    reg.register(
        "ferry_cdc_retained_wal_bytes",
        "WAL the task's slot holds back on a PostgreSQL source",
        retained,
    );
    reg.register(
        "ferry_cdc_report_age_seconds",
        "Seconds since the stream last reported (the CDC figures are that old)",
        report_age,
    );
}
