//! MySQL as a change target: the task's apply state
//! (`ferry.apply_state`), the fence a reset or re-introspection raises on
//! it, and the applier's session and SQL dialect (see `engine::target`).

use super::classify;
use super::connect::{exec, target_session};
use super::encode;
use crate::engine::target::{ApplyDialect, BatchNote, ChangeTarget};
use crate::engine::{ConnectorError, Run};
use ferry_common::control::ControlTables;
use ferry_common::endpoint::Endpoint;
use ferry_common::position::Position;
use ferry_common::value::{Value, ValueError};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

/// Ferry's bookkeeping on the target (segments, load generations,
/// exceptions, the CDC apply state) and the optional control tables (see
/// `ferry_common::control`), in the control schema.
pub(crate) fn control_ddl(c: &ControlTables) -> Vec<String> {
    let s = &c.schema;
    let mut ddl = vec![
        format!("CREATE DATABASE IF NOT EXISTS {s} CHARACTER SET utf8mb4"),
        format!(
            "CREATE TABLE IF NOT EXISTS {s}.segment_loads (
        task VARCHAR(128) NOT NULL, table_name VARCHAR(512) NOT NULL, segment INT NOT NULL,
        epoch BIGINT NOT NULL, `rows` BIGINT NULL, position TEXT NULL,
        loaded_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
        exceptions BIGINT NOT NULL DEFAULT 0, truncated BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (task, table_name, segment)) ENGINE=InnoDB"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {s}.table_loads (
        task VARCHAR(128) NOT NULL, table_name VARCHAR(512) NOT NULL, gen BIGINT NOT NULL,
        PRIMARY KEY (task, table_name)) ENGINE=InnoDB"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {s}.apply_exceptions (
        id BIGINT AUTO_INCREMENT PRIMARY KEY, task VARCHAR(128) NOT NULL, table_name VARCHAR(512) NOT NULL,
        phase VARCHAR(32) NOT NULL, reason TEXT NOT NULL, row_image LONGTEXT,
        at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)) ENGINE=InnoDB"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {s}.apply_state (
        task VARCHAR(128) NOT NULL PRIMARY KEY, position TEXT NULL, epoch BIGINT NOT NULL,
        mark BIGINT NOT NULL DEFAULT 0,
        updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)) ENGINE=InnoDB"
        ),
    ];
    // Times in the optional tables are UTC (DATETIME has no zone).
    if c.status {
        ddl.push(format!(
            "CREATE TABLE IF NOT EXISTS {s}.task_status (
        task VARCHAR(128) NOT NULL PRIMARY KEY, status VARCHAR(32) NOT NULL,
        status_time DATETIME(6) NOT NULL, applied_position TEXT NULL, source_commit_time DATETIME(6) NULL) ENGINE=InnoDB"
        ));
    }
    if c.suspended {
        ddl.push(format!(
            "CREATE TABLE IF NOT EXISTS {s}.suspended_tables (
        task VARCHAR(128) NOT NULL, table_name VARCHAR(512) NOT NULL, reason TEXT NOT NULL,
        suspended_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), PRIMARY KEY (task, table_name)) ENGINE=InnoDB"
        ));
    }
    if c.history_minutes.is_some() {
        ddl.push(format!(
            "CREATE TABLE IF NOT EXISTS {s}.history (
        task VARCHAR(128) NOT NULL, timeslot DATETIME NOT NULL, timeslot_minutes INT NOT NULL,
        changes BIGINT NOT NULL, transactions BIGINT NOT NULL, PRIMARY KEY (task, timeslot)) ENGINE=InnoDB"
        ));
    }
    ddl
}

/// Raises the task's apply-state epoch to `epoch`, so a stream of an older
/// epoch commits nothing more (it waits for such a stream's open batch);
/// an epoch already higher fences it as well. Prepare created the table.
pub(crate) async fn fence(c: &mut Conn, run: &Run) -> Result<(), ConnectorError> {
    let (task, epoch) = (&run.task, run.epoch as i64);
    c.exec_drop(
        format!(
            "UPDATE {} SET epoch = ? WHERE task = ? AND epoch < ?",
            run.control.table("apply_state")
        ),
        (epoch, task, epoch),
    )
    .await
    .map_err(|e| classify(format!("task {task}: fencing the CDC stream on the target"), e))
}

/// Takes the task's CDC apply state over for `epoch` (see `pipeline/apply`)
/// and returns the committed position and mark. Waits for a predecessor's
/// open batch, which holds the row's lock from its closing check to COMMIT.
async fn take_over(
    c: &mut Conn,
    control: &ControlTables,
    task: &str,
    epoch: i64,
) -> Result<(Option<Position>, u64), ConnectorError> {
    for ddl in control_ddl(control) {
        exec(c, &ddl, "creating Ferry's control tables on the target").await?;
    }
    let state = control.table("apply_state");
    let q = |e| classify(format!("taking over {state} on the target"), e);
    let mut tx = c.start_transaction(mysql_async::TxOpts::default()).await.map_err(q)?;
    tx.exec_drop(
        format!("INSERT IGNORE INTO {state} (task, epoch) VALUES (?, ?)"),
        (task, epoch),
    )
    .await
    .map_err(q)?;
    let row: Option<(Option<String>, i64, i64)> = tx
        .exec_first(
            format!("SELECT position, epoch, mark FROM {state} WHERE task = ? FOR UPDATE"),
            (task,),
        )
        .await
        .map_err(q)?;
    let (position, current, mark) =
        row.ok_or_else(|| ConnectorError::Definite(format!("task {task}: apply state row vanished")))?;
    if current > epoch {
        return Err(ConnectorError::Definite(format!(
            "task {task}: a newer CDC stream owns the target (epoch {epoch} superseded)"
        )));
    }
    tx.exec_drop(format!("UPDATE {state} SET epoch = ? WHERE task = ?"), (epoch, task))
        .await
        .map_err(q)?;
    tx.commit().await.map_err(q)?;
    let applied = crate::engine::stored_position(position, format_args!("task {task}: {state}.position"))?;
    Ok((applied, mark as u64))
}

/// Inside an open batch: checks that `epoch` still owns the apply state
/// (locking its row until COMMIT) and records the batch's end position.
/// False when a newer stream took over.
async fn record_position(
    c: &mut Conn,
    control: &ControlTables,
    (task, epoch): (&str, i64),
    end: Option<&Position>,
    mark: i64,
    note: &BatchNote,
) -> Result<bool, ConnectorError> {
    let q = |e| classify("recording the applied position on the target", e);
    let state = control.table("apply_state");
    let owner: Option<i64> = c
        .exec_first(format!("SELECT epoch FROM {state} WHERE task = ? FOR UPDATE"), (task,))
        .await
        .map_err(q)?;
    if owner != Some(epoch) {
        return Ok(false);
    }
    c.exec_drop(
        format!("UPDATE {state} SET position = COALESCE(?, position), mark = GREATEST(mark, ?) WHERE task = ?"),
        (end.map(|p| p.to_string()), mark, task),
    )
    .await
    .map_err(q)?;
    if control.status {
        c.exec_drop(
            format!(
                "INSERT INTO {} (task, status, status_time, applied_position, source_commit_time)
                 VALUES (?, 'CHANGE PROCESSING', UTC_TIMESTAMP(6), ?, ?)
                 ON DUPLICATE KEY UPDATE status = VALUES(status), status_time = VALUES(status_time),
                   applied_position = COALESCE(VALUES(applied_position), applied_position),
                   source_commit_time = COALESCE(VALUES(source_commit_time), source_commit_time)",
                control.table("task_status")
            ),
            (
                task,
                end.map(|p| p.to_string()),
                note.source_commit_secs.map(ferry_common::utc_datetime),
            ),
        )
        .await
        .map_err(q)?;
    }
    if let (Some(slot), Some(minutes)) = (control.history_slot(note.now_secs), control.history_minutes) {
        if note.changes > 0 || note.transactions > 0 {
            c.exec_drop(
                format!(
                    "INSERT INTO {} (task, timeslot, timeslot_minutes, changes, transactions) VALUES (?, ?, ?, ?, ?)
                     ON DUPLICATE KEY UPDATE changes = changes + VALUES(changes), transactions = transactions + VALUES(transactions)",
                    control.table("history")
                ),
                (task, ferry_common::utc_datetime(slot), minutes, note.changes, note.transactions),
            )
            .await
            .map_err(q)?;
        }
    }
    Ok(true)
}

/// Runs `drop` (a DROP TABLE of a table the source dropped) if `epoch`
/// still owns the task's apply state. MySQL commits before any DDL, so the
/// ownership check cannot share the drop's transaction: the row lock is
/// held from the check to that implicit commit, and the drop follows at
/// once. A newer stream raises the epoch before it (re)creates anything,
/// and only after a coordinator round trip, so the window is the
/// microseconds between that commit and the drop.
async fn drop_table_fenced(
    c: &mut Conn,
    control: &ControlTables,
    (task, epoch): (&str, i64),
    drop: &str,
) -> Result<(), ConnectorError> {
    let q = |e| classify(format!("task {task}: {drop} on the target"), e);
    c.query_drop("START TRANSACTION").await.map_err(q)?;
    let owner: Option<i64> = c
        .exec_first(
            format!(
                "SELECT epoch FROM {} WHERE task = ? FOR UPDATE",
                control.table("apply_state")
            ),
            (task,),
        )
        .await
        .map_err(q)?;
    if owner != Some(epoch) {
        let _ = c.query_drop("ROLLBACK").await;
        return Err(ConnectorError::Definite(format!(
            "task {task}: another worker took over the CDC stream (epoch {epoch} superseded); stopping"
        )));
    }
    c.query_drop(drop).await.map_err(q)
}

/// MySQL's SQL for applying changes.
pub(crate) struct MysqlDialect;

impl ApplyDialect for MysqlDialect {
    fn begin(&self) -> &'static str {
        "START TRANSACTION"
    }
    fn literal(&self, v: &Value, _type_sql: &str) -> Result<String, ValueError> {
        encode::literal(v)
    }
    fn text_literal(&self, s: &str) -> String {
        encode::quoted(s)
    }
    fn null_safe_eq(&self, column: &str, literal: &str) -> String {
        format!("{column} <=> {literal}")
    }
    fn upsert_suffix(&self, columns: &[&str], key: &[usize]) -> String {
        let sets: Vec<String> = (0..columns.len())
            .filter(|i| !key.contains(i))
            .map(|i| format!("{0} = VALUES({0})", columns[i]))
            .collect();
        if sets.is_empty() {
            self.keep_suffix(columns, key)
        } else {
            format!(" ON DUPLICATE KEY UPDATE {}", sets.join(", "))
        }
    }
    fn one_row(&self, _table: &str, cond: &str, keyed: bool) -> String {
        if keyed {
            format!("WHERE {cond}")
        } else {
            format!("WHERE {cond} LIMIT 1")
        }
    }
    /// MySQL's TRUNCATE would commit the batch half-way.
    fn truncate(&self, tables: &[&str], _restart_identity: bool, _cascade: bool) -> Vec<String> {
        tables.iter().map(|t| format!("DELETE FROM {t}")).collect()
    }
    fn update_rows(&self, _: u64, _: &str, _: &[(String, String)], _: &[usize], _: &[Vec<String>]) -> Option<String> {
        None
    }
    fn row_check(&self, check: u64, i: usize, table: &str, cond: &str, expected: bool) -> String {
        let not = if expected { "NOT " } else { "" };
        format!("SELECT {check}, {i} FROM DUAL WHERE {not}EXISTS (SELECT 1 FROM {table} WHERE {cond})")
    }
    /// A no-op assignment keeps the row (`INSERT IGNORE` would also turn
    /// data errors into warnings).
    fn keep_suffix(&self, columns: &[&str], key: &[usize]) -> String {
        format!(" ON DUPLICATE KEY UPDATE {0} = {0}", columns[key[0]])
    }
}

/// The applier's session on a MySQL target.
pub(crate) struct MysqlChangeTarget {
    c: Conn,
    /// The target had no trigger when the session opened.
    no_triggers: bool,
    control: ControlTables,
}

impl MysqlChangeTarget {
    pub async fn open(ep: &Endpoint, control: &ControlTables) -> Result<MysqlChangeTarget, ConnectorError> {
        let mut c = target_session(ep).await?;
        let triggers: Option<u64> = c
            .exec_first(
                "SELECT COUNT(*) FROM information_schema.TRIGGERS
                  WHERE TRIGGER_SCHEMA NOT IN ('mysql', 'sys', 'information_schema', 'performance_schema', ?)",
                (&control.schema,),
            )
            .await
            .map_err(|e| classify(format!("listing the triggers of {ep}"), e))?;
        let no_triggers = triggers == Some(0);
        if !no_triggers {
            tracing::info!(target = %ep, "the target has triggers, which fire on the applier's writes: changes are applied row by row in source order");
        }
        Ok(MysqlChangeTarget {
            c,
            no_triggers,
            control: control.clone(),
        })
    }
}

impl ChangeTarget for MysqlChangeTarget {
    /// The session checks no foreign keys (`target_session`); triggers
    /// cannot be switched off per session, so a target that has any
    /// applies in source order.
    fn set_based(&self) -> bool {
        self.no_triggers
    }
    /// InnoDB's duplicate-key checks take next-key locks even under READ
    /// COMMITTED: upserts of disjoint keys on two sessions can wait on each
    /// other, and deadlock (the server picks a victim; its lane retries).
    fn disjoint_keys_wait(&self) -> bool {
        true
    }
    fn dialect(&self) -> &'static dyn ApplyDialect {
        &MysqlDialect
    }
    async fn take_over(&mut self, task: &str, epoch: i64) -> Result<(Option<Position>, u64), ConnectorError> {
        take_over(&mut self.c, &self.control, task, epoch).await
    }
    async fn begin_lane(&mut self, task: &str, epoch: i64) -> Result<bool, ConnectorError> {
        let q = |e| classify("opening a parallel apply lane on the target", e);
        self.c.query_drop("START TRANSACTION").await.map_err(q)?;
        let owner: Option<i64> = self
            .c
            .exec_first(
                format!(
                    "SELECT epoch FROM {} WHERE task = ? LOCK IN SHARE MODE",
                    self.control.table("apply_state")
                ),
                (task,),
            )
            .await
            .map_err(q)?;
        Ok(owner == Some(epoch))
    }
    async fn execute(&mut self, sql: &str, what: &str) -> Result<Vec<(u64, u64)>, ConnectorError> {
        let mut result = self.c.query_iter(sql).await.map_err(|e| classify(what, e))?;
        let mut found = vec![];
        // Every statement's result, in order: an error in any ends the batch.
        while !result.is_empty() {
            let rows: Vec<mysql_async::Row> = result.collect().await.map_err(|e| classify(what, e))?;
            for row in rows {
                let pair = mysql_async::from_row_opt::<(u64, u64)>(row).map_err(|_| {
                    ConnectorError::Definite(format!("{what}: the target returned a row no check asked for"))
                })?;
                found.push(pair);
            }
        }
        Ok(found)
    }
    async fn record_position(
        &mut self,
        task: &str,
        epoch: i64,
        end: Option<&Position>,
        mark: i64,
        note: &BatchNote,
    ) -> Result<bool, ConnectorError> {
        record_position(&mut self.c, &self.control, (task, epoch), end, mark, note).await
    }
    async fn commit(&mut self) -> Result<(), ConnectorError> {
        self.c
            .query_drop("COMMIT")
            .await
            .map_err(|e| classify("COMMIT of applied changes on the target", e))
    }
    async fn rollback(&mut self) {
        let _ = self.c.query_drop("ROLLBACK").await;
    }
    async fn drop_table(&mut self, task: &str, epoch: i64, table: &str) -> Result<(), ConnectorError> {
        let drop = format!("DROP TABLE IF EXISTS {table}");
        drop_table_fenced(&mut self.c, &self.control, (task, epoch), &drop).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_sql() {
        let d = MysqlDialect;
        let cols = ["\"id\"", "\"v\""];
        assert_eq!(
            d.upsert_suffix(&cols, &[0]),
            " ON DUPLICATE KEY UPDATE \"v\" = VALUES(\"v\")"
        );
        assert_eq!(
            d.upsert_suffix(&cols[..1], &[0]),
            " ON DUPLICATE KEY UPDATE \"id\" = \"id\""
        );
        assert_eq!(d.one_row("s.t", "\"a\" <=> 1", false), "WHERE \"a\" <=> 1 LIMIT 1");
        assert_eq!(
            d.truncate(&["s.a", "s.b"], true, true),
            ["DELETE FROM s.a", "DELETE FROM s.b"]
        );
    }

    #[test]
    fn literals_escape_quotes_backslashes_and_nul() {
        let d = MysqlDialect;
        assert_eq!(d.text_literal("it's \\ a\0b"), "'it''s \\\\ a\\0b'");
        assert_eq!(d.literal(&Value::Int(-5), "int").unwrap(), "-5");
        assert_eq!(d.literal(&Value::Null, "int").unwrap(), "NULL");
    }
}
