//! Changes that meet their row other than the source left it. An update or
//! delete applied past an exact cut ([`TargetTable::replay`] false: every
//! PostgreSQL source table) names a row the source held, and an insert
//! there names a key the source did not hold; so a target without the
//! updated row, or already holding the inserted key, differs from the
//! source — someone wrote to it, or a row was lost before Ferry. DMS calls
//! these apply conflicts and lets ApplyErrorUpdatePolicy /
//! ApplyErrorDeletePolicy / ApplyErrorInsertPolicy say what they do; Ferry
//! never lets one pass unseen: whatever the policy, the change changes
//! nothing (an inserted key keeps the target's row), its row (by key) goes
//! to the exceptions table and is counted ([`TableCounters::conflicts`]);
//! SUSPEND_TABLE stops the table's apply once the batch commits, STOP_TASK
//! fails the stream without committing the batch's position (a parallel
//! lane's rows may be committed already, as after a crash; a resumed task
//! applies them again, idempotently). (INSERT_RECORD instead upserts the
//! change's whole new image, as replayed tables do, and is no conflict; it
//! is what an absent ApplyErrorInsertPolicy does, so inserts are checked
//! only when a task asks.)
//!
//! ## How they are found, and why each exactly once
//!
//! The applier puts a *check* before the statement that applies such a
//! change, on the same session, in the same transaction: a query returning
//! `(check, i)` for each row `i` of the check that the target lacks, or
//! for an insert holds ([`ApplyDialect::rows_check`],
//! [`ApplyDialect::row_check`]), or makes the statement itself the check
//! where the dialect can ([`ApplyDialect::update_rows`]: PostgreSQL's set
//! update returns the rows it updated, so the common case costs no second
//! look-up). The session hands those rows back when the batch's SQL has
//! run. A checked insert is written so that a key the target holds keeps
//! its row ([`ApplyDialect::keep_suffix`]).
//!
//! - *The check sees what the change saw.* A change in order is checked
//!   right before its statement. In a set-based batch a key's changes are
//!   folded into one net effect; the key is checked when its first change
//!   in the batch expected the row (an update or a delete) or expected it
//!   absent (a checked insert), and is recorded as that change's conflict
//!   — once per key and batch, where changes applied in order are each
//!   checked. (A later change of the key in the batch met what the first
//!   left, as the source said, and needs no check; a checked insert of a
//!   key the batch already holds goes in order.) The check precedes the
//!   table's net statements on the key's session and follows the table's
//!   earlier in-order statements of the batch, and no other session of the
//!   stream writes that key in the batch: it sees the key as the first
//!   change did.
//! - *Recorded with the position.* The exceptions rows are written on the
//!   fenced session right before the batch's position, so they commit with
//!   it or not at all. A batch that did not commit is applied again by the
//!   next stream, from where it began, and its checks meet the same rows
//!   — except where a parallel lane committed before the fenced session
//!   failed (see "Parallel lanes" in `apply`): its effects stay, and a
//!   delete among them would make its own check find the row gone the
//!   second time, an insert find its own row there. So a table whose batch
//!   holds a checked key that ends deleted, or a checked insert, is not
//!   spread over lanes: its checks, statements and records all commit with
//!   the position. A checked update on a lane is safe to repeat: updating a
//!   row leaves it there, and a missing row stays missing.
//!
//! [`TargetTable::replay`]: super::apply::TargetTable::replay
//! [`TableCounters::conflicts`]: ferry_common::work::TableCounters::conflicts
//! [`ApplyDialect::rows_check`]: crate::engine::target::ApplyDialect::rows_check
//! [`ApplyDialect::row_check`]: crate::engine::target::ApplyDialect::row_check
//! [`ApplyDialect::keep_suffix`]: crate::engine::target::ApplyDialect::keep_suffix
//! [`ApplyDialect::update_rows`]: crate::engine::target::ApplyDialect::update_rows

use crate::engine::target::ApplyDialect;
use ferry_common::settings::{ApplyConflicts, ErrorAction};
use std::collections::BTreeMap;

/// What a change that met its row other than the source left it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Conflict {
    /// An update of a row the target lacks.
    Update,
    /// A delete of a row the target lacks.
    Delete,
    /// An insert of a key the target holds already.
    Insert,
}

impl Conflict {
    /// Whether the change expects the row to exist: its check finds the
    /// rows that do not (else the rows that do).
    pub fn expects_row(self) -> bool {
        self != Conflict::Insert
    }

    fn what(self) -> &'static str {
        match self {
            Conflict::Update => "update of a row the target lacks",
            Conflict::Delete => "delete of a row the target lacks",
            Conflict::Insert => "insert of a row the target holds already",
        }
    }

    fn setting(self) -> &'static str {
        match self {
            Conflict::Update => "ApplyErrorUpdatePolicy",
            Conflict::Delete => "ApplyErrorDeletePolicy",
            Conflict::Insert => "ApplyErrorInsertPolicy",
        }
    }

    fn action(self, policy: &ApplyConflicts) -> ErrorAction {
        match self {
            Conflict::Update => policy.update,
            Conflict::Delete => policy.delete,
            // Checked only under a policy other than INSERT_RECORD.
            Conflict::Insert => policy.insert.unwrap_or_default(),
        }
    }
}

/// One check query of the open batch.
struct Check {
    table: usize,
    /// The table's display name.
    name: String,
    conflict: Conflict,
    /// The key columns' names, or none when `rows` are conditions.
    columns: Vec<String>,
    /// Each checked row: its key's literals, or one condition naming it.
    rows: Vec<Vec<String>>,
}

impl Check {
    /// Row `i` as recorded: `key = literal` conditions. Formatted only for
    /// a row found missing, not for every row checked.
    fn describe(&self, i: usize) -> Option<String> {
        let row = self.rows.get(i)?;
        if self.columns.is_empty() {
            return row.first().cloned();
        }
        let conds: Vec<String> = self
            .columns
            .iter()
            .zip(row)
            .map(|(c, l)| format!("{c} = {l}"))
            .collect();
        Some(conds.join(" AND "))
    }
}

/// The open batch's checks; a check's number is its index.
#[derive(Default)]
pub(crate) struct Checks {
    list: Vec<Check>,
}

/// What the rows the checks found missing do, once known.
#[derive(Debug, Default)]
pub(crate) struct Found {
    /// Statements recording each row in the exceptions table.
    pub records: Vec<String>,
    /// Conflicts by table index, with the table's display name.
    pub counts: BTreeMap<usize, (String, u64)>,
    /// Tables a SUSPEND_TABLE policy stops, with why.
    pub stops: Vec<(usize, String)>,
    /// Why a STOP_TASK policy fails the stream.
    pub fatal: Option<String>,
}

/// Where found rows are recorded: the task and its exceptions table.
#[derive(Clone)]
pub(crate) struct Recorder {
    pub task: String,
    pub exceptions_table: String,
    pub policy: ApplyConflicts,
}

impl Checks {
    /// Adds a check of table `table`'s rows with keys `rows` (literals of
    /// `columns`; with no columns, each row is one condition) and returns
    /// its number.
    pub fn add(
        &mut self,
        table: usize,
        name: &str,
        conflict: Conflict,
        columns: Vec<String>,
        rows: Vec<Vec<String>>,
    ) -> u64 {
        self.list.push(Check {
            table,
            name: name.to_string(),
            conflict,
            columns,
            rows,
        });
        (self.list.len() - 1) as u64
    }

    /// What the rows `missing` (`(check, row)` pairs a target returned)
    /// do under `rec`'s policy, with `dialect`'s literals.
    pub fn found(&self, missing: &[(u64, u64)], rec: &Recorder, dialect: &dyn ApplyDialect) -> Result<Found, String> {
        let mut out = Found::default();
        for &(check, row) in missing {
            let c = usize::try_from(check).ok().and_then(|i| self.list.get(i));
            let Some((c, key)) = c.and_then(|c| Some((c, c.describe(usize::try_from(row).ok()?)?))) else {
                return Err(format!(
                    "task {}: the target answered a check of missing rows with ({check}, {row}), which no check asked",
                    rec.task
                ));
            };
            let action = c.conflict.action(&rec.policy);
            let reason = format!("{} ({} {})", c.conflict.what(), c.conflict.setting(), action.name());
            out.records.push(format!(
                "INSERT INTO {} (task, table_name, phase, reason, row_image) VALUES ({}, {}, 'cdc', {}, {})",
                rec.exceptions_table,
                dialect.text_literal(&rec.task),
                dialect.text_literal(&c.name),
                dialect.text_literal(&reason),
                dialect.text_literal(&key),
            ));
            out.counts.entry(c.table).or_insert_with(|| (c.name.clone(), 0)).1 += 1;
            let why = || {
                format!(
                    "table {}: {} ({key}); {} {}",
                    c.name,
                    c.conflict.what(),
                    c.conflict.setting(),
                    action.name()
                )
            };
            match action {
                ErrorAction::SuspendTable if !out.stops.iter().any(|(t, _)| *t == c.table) => {
                    out.stops.push((c.table, format!("{} stops the table", why())))
                }
                ErrorAction::StopTask if out.fatal.is_none() => out.fatal = Some(format!("{} stops the task", why())),
                _ => {}
            }
        }
        // One line per table; the keys are in the exceptions table (row
        // data stays out of the log).
        for (name, n) in out.counts.values() {
            tracing::warn!(task = %rec.task, table = %name, rows = n, "changes that met rows other than the source left them; recorded in the control schema's apply_exceptions");
        }
        Ok(out)
    }
}
