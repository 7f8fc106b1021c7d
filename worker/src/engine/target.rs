//! The change-target seam: what the engine-neutral applier
//! (`pipeline::apply`) needs of a target engine, in two parts.
//!
//! - [`ApplyDialect`]: pure SQL generation — every SQL difference between
//!   targets the applier meets (upserts, one-row matches, truncation,
//!   literals), in the shape of Debezium's JDBC sink `DatabaseDialect`. No
//!   I/O, so each engine's dialect has golden tests.
//! - [`ChangeTarget`]: a session batches run on, and the task's apply-state
//!   row that fences them. The exactly-once argument is the applier's (see
//!   `pipeline::apply`); each engine supplies the primitives it rests on:
//!   `take_over` raises the row's epoch and waits for a predecessor's open
//!   batch; `record_position` checks the epoch inside the batch and moves
//!   the position, holding the row's lock until COMMIT.
//!
//! [`AnyChangeTarget`] is the one place that picks an engine for them.

use crate::engine::{mysql, postgres, ConnectorError};
use ferry_common::endpoint::{Endpoint, Engine};
use ferry_common::position::Lsn;
use ferry_common::value::{Value, ValueError};

/// The SQL a target engine speaks for applying changes. Identifiers come
/// quoted and tables qualified; literals come from [`ApplyDialect::literal`].
pub(crate) trait ApplyDialect: Send + Sync {
    /// Opens a transaction.
    fn begin(&self) -> &'static str;
    /// `v` as a literal of a column of target type `type_sql`.
    fn literal(&self, v: &Value, type_sql: &str) -> Result<String, ValueError>;
    /// A string literal.
    fn text_literal(&self, s: &str) -> String;
    /// A comparison of `column` with `literal` that holds when both are NULL
    /// (matching a row of a table without a key).
    fn null_safe_eq(&self, column: &str, literal: &str) -> String;
    /// The clause that makes `INSERT INTO t (columns) VALUES ...` an upsert
    /// on the key (`key`: indexes into `columns`, not empty).
    fn upsert_suffix(&self, columns: &[&str], key: &[usize]) -> String;
    /// `WHERE ...` matching the one row `cond` selects in `table`; without a
    /// key (`keyed` false) one of possibly several equal rows.
    fn one_row(&self, table: &str, cond: &str, keyed: bool) -> String;
    /// Statements that empty `tables` inside an open transaction.
    fn truncate(&self, tables: &[&str], restart_identity: bool, cascade: bool) -> Vec<String>;
}

/// A target session change batches are applied on, fenced by the task's
/// apply state (`ferry.apply_state(task, lsn, epoch, mark)`).
pub(crate) trait ChangeTarget {
    fn dialect(&self) -> &'static dyn ApplyDialect;
    /// Takes the task's apply state over for `epoch` and returns the
    /// committed position and mark; waits for a predecessor's open batch.
    /// Fails when a newer epoch owns it.
    async fn take_over(&mut self, task: &str, epoch: i64) -> Result<(Lsn, u64), ConnectorError>;
    /// Sends statements (`what` names them in errors).
    async fn execute(&mut self, sql: String, what: &str) -> Result<(), ConnectorError>;
    /// Inside the open batch: records `end` and `mark` if `epoch` still owns
    /// the apply state, keeping its row locked until COMMIT. False when a
    /// newer stream took over.
    async fn record_position(&mut self, task: &str, epoch: i64, end: Lsn, mark: i64) -> Result<bool, ConnectorError>;
    async fn commit(&mut self) -> Result<(), ConnectorError>;
    /// Best effort: the batch is discarded with the session anyway.
    async fn rollback(&mut self);
    /// Drops `table` (a table the source dropped) if `epoch` still owns the
    /// apply state.
    async fn drop_table(&mut self, task: &str, epoch: i64, table: &str) -> Result<(), ConnectorError>;
}

/// The change target of an endpoint's engine.
pub(crate) enum AnyChangeTarget {
    Postgres(postgres::target::PgChangeTarget),
    Mysql(mysql::target::MysqlChangeTarget),
}

impl AnyChangeTarget {
    /// Connects to the target, with the session set up for applying.
    pub async fn open(target: &Endpoint) -> Result<AnyChangeTarget, ConnectorError> {
        Ok(match target.engine {
            Engine::Postgres => AnyChangeTarget::Postgres(postgres::target::PgChangeTarget::open(target).await?),
            Engine::Mysql => AnyChangeTarget::Mysql(mysql::target::MysqlChangeTarget::open(target).await?),
        })
    }
}

impl ChangeTarget for AnyChangeTarget {
    fn dialect(&self) -> &'static dyn ApplyDialect {
        match self {
            AnyChangeTarget::Postgres(t) => t.dialect(),
            AnyChangeTarget::Mysql(t) => t.dialect(),
        }
    }
    async fn take_over(&mut self, task: &str, epoch: i64) -> Result<(Lsn, u64), ConnectorError> {
        match self {
            AnyChangeTarget::Postgres(t) => t.take_over(task, epoch).await,
            AnyChangeTarget::Mysql(t) => t.take_over(task, epoch).await,
        }
    }
    async fn execute(&mut self, sql: String, what: &str) -> Result<(), ConnectorError> {
        match self {
            AnyChangeTarget::Postgres(t) => t.execute(sql, what).await,
            AnyChangeTarget::Mysql(t) => t.execute(sql, what).await,
        }
    }
    async fn record_position(&mut self, task: &str, epoch: i64, end: Lsn, mark: i64) -> Result<bool, ConnectorError> {
        match self {
            AnyChangeTarget::Postgres(t) => t.record_position(task, epoch, end, mark).await,
            AnyChangeTarget::Mysql(t) => t.record_position(task, epoch, end, mark).await,
        }
    }
    async fn commit(&mut self) -> Result<(), ConnectorError> {
        match self {
            AnyChangeTarget::Postgres(t) => t.commit().await,
            AnyChangeTarget::Mysql(t) => t.commit().await,
        }
    }
    async fn rollback(&mut self) {
        match self {
            AnyChangeTarget::Postgres(t) => t.rollback().await,
            AnyChangeTarget::Mysql(t) => t.rollback().await,
        }
    }
    async fn drop_table(&mut self, task: &str, epoch: i64, table: &str) -> Result<(), ConnectorError> {
        match self {
            AnyChangeTarget::Postgres(t) => t.drop_table(task, epoch, table).await,
            AnyChangeTarget::Mysql(t) => t.drop_table(task, epoch, table).await,
        }
    }
}
