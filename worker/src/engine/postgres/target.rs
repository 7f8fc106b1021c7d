//! PostgreSQL as a change target: the task's apply state
//! (`ferry.apply_state`), the fence a reset or re-introspection raises on
//! it, and the applier's session and SQL dialect (see `engine::target`).

use super::{classify, connect, encode};
use crate::engine::target::{ApplyDialect, BatchNote, ChangeTarget};
use crate::engine::{ConnectorError, Run};
use ferry_common::control::ControlTables;
use ferry_common::endpoint::Endpoint;
use ferry_common::position::Position;
use ferry_common::schema::quote_literal;
use ferry_common::value::{Value, ValueError};

/// The CDC apply state: one row per task, its committed position (the
/// source's, in its text form; NULL before the first commit), the epoch
/// that owns it and the last caught-up mark reached; and the optional
/// control tables a stream keeps (see `ferry_common::control`).
fn control_ddl(c: &ControlTables) -> String {
    let mut ddl = format!(
        "CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.apply_state (
    task text PRIMARY KEY, position text, epoch bigint NOT NULL,
    mark bigint NOT NULL DEFAULT 0, updated_at timestamptz NOT NULL DEFAULT now());",
        s = c.schema
    );
    if c.status {
        ddl.push_str(&format!(
            "CREATE TABLE IF NOT EXISTS {}.task_status (
    task text PRIMARY KEY, status text NOT NULL, status_time timestamptz NOT NULL DEFAULT now(),
    applied_position text, source_commit_time timestamptz);",
            c.schema
        ));
    }
    if c.suspended {
        ddl.push_str(&format!(
            "CREATE TABLE IF NOT EXISTS {}.suspended_tables (
    task text NOT NULL, table_name text NOT NULL, reason text NOT NULL,
    suspended_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (task, table_name));",
            c.schema
        ));
    }
    if c.history_minutes.is_some() {
        ddl.push_str(&format!(
            "CREATE TABLE IF NOT EXISTS {}.history (
    task text NOT NULL, timeslot timestamptz NOT NULL, timeslot_minutes int NOT NULL,
    changes bigint NOT NULL, transactions bigint NOT NULL, PRIMARY KEY (task, timeslot));",
            c.schema
        ));
    }
    ddl
}

/// Raises the task's apply-state epoch to `epoch`, so a stream of an older
/// epoch commits nothing more (it waits for such a stream's open batch).
/// An epoch already higher fences it as well; no apply state at all means
/// no stream ever ran, and none is created here (concurrent resets would
/// race creating it).
pub(crate) async fn fence(c: &impl tokio_postgres::GenericClient, run: &Run) -> Result<(), ConnectorError> {
    let (task, epoch) = (&run.task, run.epoch as i64);
    let q = |e| classify(format!("task {task}: fencing the CDC stream on the target"), e);
    let state = run.control.table("apply_state");
    let streamed: bool = c
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&state])
        .await
        .map_err(q)?
        .get(0);
    if streamed {
        c.execute(
            &format!("UPDATE {state} SET epoch = $2 WHERE task = $1 AND epoch < $2"),
            &[&task, &epoch],
        )
        .await
        .map_err(q)?;
    }
    Ok(())
}

/// Takes the task's apply-state row over for this epoch and returns the
/// committed position and mark. Waits for a predecessor's open batch.
async fn take_over(
    c: &tokio_postgres::Client,
    control: &ControlTables,
    task: &str,
    epoch: i64,
) -> Result<(Option<Position>, u64), ConnectorError> {
    let state = control.table("apply_state");
    c.batch_execute(&control_ddl(control))
        .await
        .map_err(|e| classify(format!("creating {state} on the target"), e))?;
    let row = c
        .query_opt(
            &format!(
                "INSERT INTO {state} AS s (task, epoch) VALUES ($1, $2)
             ON CONFLICT (task) DO UPDATE SET epoch = EXCLUDED.epoch WHERE s.epoch <= EXCLUDED.epoch
             RETURNING s.position, s.mark"
            ),
            &[&task, &epoch],
        )
        .await
        .map_err(|e| classify(format!("taking over {state} on the target"), e))?
        .ok_or_else(|| {
            ConnectorError::Definite(format!(
                "task {task}: a newer CDC stream owns the target (epoch {epoch} superseded)"
            ))
        })?;
    let applied = crate::engine::stored_position(row.get(0), format_args!("task {task}: {state}.position"))?;
    Ok((applied, row.get::<_, i64>(1) as u64))
}

/// The optional control tables' rows for a committing batch (see
/// `ferry_common::control`), in its transaction.
fn control_notes(c: &ControlTables, task: &str, end: Option<&Position>, note: &BatchNote) -> String {
    let mut sql = String::new();
    let task = quote_literal(task);
    if c.status {
        let position = end.map_or("NULL".into(), |p| quote_literal(&p.to_string()));
        let source_time = match note.source_commit_secs {
            Some(s) => format!("{}::timestamptz", quote_literal(&utc_text(s))),
            None => "NULL".into(),
        };
        sql.push_str(&format!(
            "INSERT INTO {t} AS s (task, status, status_time, applied_position, source_commit_time)
             VALUES ({task}, 'CHANGE PROCESSING', now(), {position}, {source_time})
             ON CONFLICT (task) DO UPDATE SET status = EXCLUDED.status, status_time = now(),
               applied_position = coalesce(EXCLUDED.applied_position, s.applied_position),
               source_commit_time = coalesce(EXCLUDED.source_commit_time, s.source_commit_time);",
            t = c.table("task_status")
        ));
    }
    if let (Some(slot), Some(minutes)) = (c.history_slot(note.now_secs), c.history_minutes) {
        if note.changes > 0 || note.transactions > 0 {
            sql.push_str(&format!(
                "INSERT INTO {t} AS h (task, timeslot, timeslot_minutes, changes, transactions)
                 VALUES ({task}, {slot}::timestamptz, {minutes}, {changes}, {txns})
                 ON CONFLICT (task, timeslot) DO UPDATE SET changes = h.changes + EXCLUDED.changes,
                   transactions = h.transactions + EXCLUDED.transactions;",
                t = c.table("history"),
                slot = quote_literal(&utc_text(slot)),
                changes = note.changes,
                txns = note.transactions,
            ));
        }
    }
    sql
}

/// Unix seconds as UTC text PostgreSQL reads as a `timestamptz`.
fn utc_text(secs: i64) -> String {
    format!("{}+00", ferry_common::utc_datetime(secs))
}

/// PostgreSQL's SQL for applying changes.
pub(crate) struct PgDialect;

impl ApplyDialect for PgDialect {
    fn begin(&self) -> &'static str {
        "BEGIN"
    }
    fn literal(&self, v: &Value, type_sql: &str) -> Result<String, ValueError> {
        encode::literal(v, type_sql)
    }
    fn text_literal(&self, s: &str) -> String {
        quote_literal(s)
    }
    fn null_safe_eq(&self, column: &str, literal: &str) -> String {
        format!("{column} IS NOT DISTINCT FROM {literal}")
    }
    fn upsert_suffix(&self, columns: &[&str], key: &[usize]) -> String {
        let keys: Vec<&str> = key.iter().map(|&i| columns[i]).collect();
        let sets: Vec<String> = (0..columns.len())
            .filter(|i| !key.contains(i))
            .map(|i| format!("{0} = EXCLUDED.{0}", columns[i]))
            .collect();
        if sets.is_empty() {
            self.keep_suffix(columns, key)
        } else {
            format!(" ON CONFLICT ({}) DO UPDATE SET {}", keys.join(", "), sets.join(", "))
        }
    }
    fn one_row(&self, table: &str, cond: &str, keyed: bool) -> String {
        if keyed {
            format!("WHERE {cond}")
        } else {
            // PostgreSQL's DELETE and UPDATE take no LIMIT.
            format!("WHERE ctid = (SELECT ctid FROM {table} WHERE {cond} LIMIT 1)")
        }
    }
    fn truncate(&self, tables: &[&str], restart_identity: bool, cascade: bool) -> Vec<String> {
        vec![format!(
            "TRUNCATE {}{}{}",
            tables.join(", "),
            if restart_identity { " RESTART IDENTITY" } else { "" },
            if cascade { " CASCADE" } else { "" }
        )]
    }
    /// `UPDATE ... FROM (VALUES ...)`: the values are cast to the columns'
    /// types where they are used (a column of NULLs only would be text).
    /// The rows it updated come back from the CTE, and those it did not are
    /// selected: the check costs no second look-up of the keys.
    fn update_rows(
        &self,
        check: u64,
        table: &str,
        columns: &[(String, String)],
        key: &[usize],
        rows: &[Vec<String>],
    ) -> Option<String> {
        let sets: Vec<String> = (0..columns.len())
            .filter(|i| !key.contains(i))
            .map(|i| format!("{0} = ferry_v.{0}::{1}", columns[i].0, columns[i].1))
            .collect();
        if sets.is_empty() || rows.is_empty() {
            return None;
        }
        let names: Vec<&str> = columns.iter().map(|c| c.0.as_str()).collect();
        let matches: Vec<String> = key
            .iter()
            .map(|&i| format!("ferry_t.{0} = ferry_v.{0}::{1}", columns[i].0, columns[i].1))
            .collect();
        // Written into one string: a row's literals (a LOB value) are
        // copied once.
        let literals: usize = rows.iter().flatten().map(|l| l.len() + 2).sum();
        let mut out = String::with_capacity(literals + 512);
        out.push_str(&format!(
            "WITH ferry_u AS (UPDATE {table} AS ferry_t SET {} FROM (VALUES ",
            sets.join(", ")
        ));
        for (i, r) in rows.iter().enumerate() {
            out.push_str(&format!("{}({i}", if i == 0 { "" } else { ", " }));
            for l in r {
                out.push_str(", ");
                out.push_str(l);
            }
            out.push(')');
        }
        out.push_str(&format!(
            ") AS ferry_v (ferry_n, {}) WHERE {} RETURNING ferry_v.ferry_n) SELECT {check}::int8, ferry_i \
             FROM generate_series(0, {}) AS ferry_i WHERE ferry_i NOT IN (SELECT ferry_n FROM ferry_u)",
            names.join(", "),
            matches.join(" AND "),
            rows.len() - 1
        ));
        Some(out)
    }
    fn row_check(&self, check: u64, i: usize, table: &str, cond: &str, expected: bool) -> String {
        let not = if expected { "NOT " } else { "" };
        format!("SELECT {check}::int8, {i}::int8 WHERE {not}EXISTS (SELECT 1 FROM {table} WHERE {cond})")
    }
    /// A (anti-)join of `(VALUES ...)` with the table, cast as in
    /// [`ApplyDialect::update_rows`].
    fn rows_check(
        &self,
        check: u64,
        table: &str,
        key: &[(String, String)],
        keys: &[Vec<String>],
        expected: bool,
    ) -> String {
        let names: Vec<&str> = key.iter().map(|c| c.0.as_str()).collect();
        let matches: Vec<String> = key
            .iter()
            .map(|(c, ty)| format!("ferry_t.{c} = ferry_v.{c}::{ty}"))
            .collect();
        let values: Vec<String> = keys
            .iter()
            .enumerate()
            .map(|(i, lits)| format!("({i}, {})", lits.join(", ")))
            .collect();
        let not = if expected { "NOT " } else { "" };
        format!(
            "SELECT {check}::int8, ferry_v.ferry_n FROM (VALUES {}) AS ferry_v (ferry_n, {}) \
             WHERE {not}EXISTS (SELECT 1 FROM {table} AS ferry_t WHERE {})",
            values.join(", "),
            names.join(", "),
            matches.join(" AND ")
        )
    }
    fn keep_suffix(&self, columns: &[&str], key: &[usize]) -> String {
        let keys: Vec<&str> = key.iter().map(|&i| columns[i]).collect();
        format!(" ON CONFLICT ({}) DO NOTHING", keys.join(", "))
    }
}

/// The applier's session on a PostgreSQL target.
pub(crate) struct PgChangeTarget {
    c: tokio_postgres::Client,
    control: ControlTables,
    /// `session_replication_role = replica` took: no trigger or foreign
    /// key fires on the applier's writes.
    replica: bool,
}

impl PgChangeTarget {
    pub async fn open(target: &Endpoint, control: &ControlTables) -> Result<PgChangeTarget, ConnectorError> {
        let c = connect(target).await?;
        c.batch_execute("SET standard_conforming_strings = on")
            .await
            .map_err(|e| classify("configuring the target session", e))?;
        // As DMS does: the source already ran triggers and FK checks.
        let replica = match c.batch_execute("SET session_replication_role = replica").await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "cannot set session_replication_role=replica on the target; triggers and foreign keys stay active during apply, which then goes row by row in source order");
                false
            }
        };
        Ok(PgChangeTarget {
            c,
            replica,
            control: control.clone(),
        })
    }
}

impl ChangeTarget for PgChangeTarget {
    fn set_based(&self) -> bool {
        self.replica
    }
    /// Writes to disjoint keys take no locks the other lanes wait on
    /// (row locks only; no predicate locks below SERIALIZABLE).
    fn disjoint_keys_wait(&self) -> bool {
        false
    }
    fn dialect(&self) -> &'static dyn ApplyDialect {
        &PgDialect
    }
    async fn take_over(&mut self, task: &str, epoch: i64) -> Result<(Option<Position>, u64), ConnectorError> {
        take_over(&self.c, &self.control, task, epoch).await
    }
    /// `FOR SHARE` conflicts with the `UPDATE` of a take-over (and of
    /// the fenced session's `record_position`, which runs once every lane
    /// has committed), not with other lanes.
    async fn begin_lane(&mut self, task: &str, epoch: i64) -> Result<bool, ConnectorError> {
        let q = |e| classify("opening a parallel apply lane on the target", e);
        self.c.batch_execute("BEGIN").await.map_err(q)?;
        let owner = self
            .c
            .query_opt(
                &format!(
                    "SELECT epoch FROM {} WHERE task = $1 FOR SHARE",
                    self.control.table("apply_state")
                ),
                &[&task],
            )
            .await
            .map_err(q)?;
        Ok(owner.is_some_and(|r| r.get::<_, i64>(0) == epoch))
    }
    async fn execute(&mut self, sql: &str, what: &str) -> Result<Vec<(u64, u64)>, ConnectorError> {
        let messages = self.c.simple_query(sql).await.map_err(|e| classify(what, e))?;
        messages
            .iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(row) => Some(row),
                _ => None,
            })
            .map(|row| {
                let n = |i| row.get(i).and_then(|v: &str| v.parse::<u64>().ok());
                n(0).zip(n(1)).ok_or_else(|| {
                    ConnectorError::Definite(format!("{what}: the target returned a row no check asked for"))
                })
            })
            .collect()
    }
    /// `UPDATE ... WHERE epoch = mine` updates one row or none.
    async fn record_position(
        &mut self,
        task: &str,
        epoch: i64,
        end: Option<&Position>,
        mark: i64,
        note: &BatchNote,
    ) -> Result<bool, ConnectorError> {
        let q = |e| classify("recording the applied position on the target", e);
        let n = self
            .c
            .execute(
                &format!(
                    "UPDATE {} SET position = coalesce($1, position), mark = greatest(mark, $2), updated_at = now()
                  WHERE task = $3 AND epoch = $4",
                    self.control.table("apply_state")
                ),
                &[&end.map(|p| p.to_string()), &mark, &task, &epoch],
            )
            .await
            .map_err(q)?;
        if n == 1 {
            let sql = control_notes(&self.control, task, end, note);
            if !sql.is_empty() {
                self.c.batch_execute(&sql).await.map_err(q)?;
            }
        }
        Ok(n == 1)
    }
    async fn commit(&mut self) -> Result<(), ConnectorError> {
        self.c
            .batch_execute("COMMIT")
            .await
            .map_err(|e| classify("COMMIT of applied changes on the target", e))
    }
    async fn rollback(&mut self) {
        let _ = self.c.batch_execute("ROLLBACK").await;
    }
    /// Transactional DDL: the drop commits only under the epoch check.
    async fn drop_table(&mut self, task: &str, epoch: i64, table: &str) -> Result<(), ConnectorError> {
        let q = |e| classify(format!("task {task}: DROP TABLE {table} on the target"), e);
        let tx = self.c.transaction().await.map_err(q)?;
        let owned = tx
            .execute(
                &format!(
                    "UPDATE {} SET updated_at = now() WHERE task = $1 AND epoch = $2",
                    self.control.table("apply_state")
                ),
                &[&task, &epoch],
            )
            .await
            .map_err(q)?;
        if owned != 1 {
            return Err(ConnectorError::Definite(format!(
                "task {task}: another worker took over the CDC stream (epoch {epoch} superseded); stopping"
            )));
        }
        tx.batch_execute(&format!("DROP TABLE IF EXISTS {table}"))
            .await
            .map_err(q)?;
        tx.commit().await.map_err(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_sql() {
        let d = PgDialect;
        let cols = ["\"id\"", "\"v\""];
        assert_eq!(
            d.upsert_suffix(&cols, &[0]),
            " ON CONFLICT (\"id\") DO UPDATE SET \"v\" = EXCLUDED.\"v\""
        );
        assert_eq!(d.upsert_suffix(&cols[..1], &[0]), " ON CONFLICT (\"id\") DO NOTHING");
        assert_eq!(
            d.one_row("public.t", "a IS NOT DISTINCT FROM 1", false),
            "WHERE ctid = (SELECT ctid FROM public.t WHERE a IS NOT DISTINCT FROM 1 LIMIT 1)"
        );
        assert_eq!(d.one_row("public.t", "id = 1", true), "WHERE id = 1");
        assert_eq!(
            d.truncate(&["public.a", "public.b"], true, true),
            ["TRUNCATE public.a, public.b RESTART IDENTITY CASCADE"]
        );
        assert_eq!(d.null_safe_eq("a", "NULL"), "a IS NOT DISTINCT FROM NULL");
    }

    #[test]
    fn literals_keep_quotes_backslashes_and_refuse_nul() {
        let d = PgDialect;
        assert_eq!(d.text_literal("it's \\ x"), "'it''s \\ x'");
        assert_eq!(d.literal(&Value::Null, "text").unwrap(), "NULL");
        let nul = d.literal(&Value::Text("a\0b".into()), "text");
        assert!(nul.is_err(), "{nul:?}");
    }
}
