//! The target seams.
//!
//! - [`Target`]: the bulk side — pre-data, a segment's rows written under
//!   the segment fence (`pipeline::fence`), post-data, finalize, resets,
//!   sequences, and the change target for CDC.
//!
//! What the engine-neutral applier (`pipeline::apply`) needs of a target
//! engine comes in two parts:
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

use crate::engine::{mysql, postgres, ConnectorError, Progress, Run};
use crate::pipeline::rows::Rows;
use crate::schema::catalog::Catalog;
use crate::schema::check::Check;
use crate::schema::convert::Conversion;
use crate::schema::trial::Trial;
use ferry_common::control::ControlTables;
use ferry_common::endpoint::Endpoint;
use ferry_common::plan::SegmentBounds;
use ferry_common::position::Position;
use ferry_common::schema::{Constraint, SourceSchema, TableSchema};
use ferry_common::settings::TargetTablePrepMode;
use ferry_common::value::{Value, ValueError};
use ferry_common::work::WorkResult;
use std::future::Future;

/// One segment's load into a target table.
#[derive(Clone)]
pub(crate) struct Segment<'a> {
    pub number: u32,
    pub bounds: &'a SegmentBounds,
    /// Exported snapshot to read in (a same-engine copy of a CDC task).
    pub snapshot: Option<&'a str>,
    pub gen: u64,
    /// The target table may hold rows this task did not load
    /// (DO_NOTHING): the segment's rows replace those with the same keys,
    /// never a key range, which the target could order otherwise than the
    /// source did.
    pub replace: bool,
    /// The table was created by this task without its key (which implies
    /// DROP_AND_CREATE, so never `replace`): the engine may load a
    /// whole-table segment in its fastest way (PostgreSQL: `COPY FREEZE`).
    pub fresh: bool,
    /// The source position the rows were read at (sources whose snapshots
    /// are per reader), kept in the segment's marker so a retry that finds
    /// the segment committed still reports it.
    pub position: Option<Position>,
    /// What a row the target cannot store does (DataErrorPolicy): under a
    /// policy that stops, the first such row fails the segment.
    pub data_errors: ferry_common::settings::ErrorAction,
    /// Rows the value path stored with a cut LOB value, for the writer to
    /// record with the segment (see `pipeline::rows::Cuts`).
    pub cuts: crate::pipeline::rows::Cuts,
}

pub(crate) trait Target {
    /// Pre-data: schemas, tables (with their keys unless
    /// `defer_primary_key`), or a reviewed `pre-data.sql` instead.
    async fn prepare(
        &self,
        run: &Run,
        ep: &Endpoint,
        schema: &SourceSchema,
        mode: TargetTablePrepMode,
        defer_primary_key: bool,
        pre_data_sql: Option<&str>,
    ) -> Result<(), ConnectorError>;

    /// A segment copied from a source of this same engine without the
    /// value model, when the engine can (PostgreSQL's COPY bytes pass
    /// through unparsed); `None` sends it through the value model.
    async fn copy_segment(
        &self,
        _run: &Run,
        _source: &Endpoint,
        _target: &Endpoint,
        _table: &TableSchema,
        _seg: Segment<'_>,
        _progress: Progress,
    ) -> Option<Result<WorkResult, ConnectorError>> {
        None
    }

    /// A segment's rows of the value model into `table` (as this engine
    /// declares it), committed with the segment's marker or not at all.
    async fn load_rows(
        &self,
        run: &Run,
        ep: &Endpoint,
        table: &TableSchema,
        seg: Segment<'_>,
        rows: Rows,
        progress: Progress,
    ) -> Result<WorkResult, ConnectorError>;

    /// The rows `table` (as this engine declares it) holds.
    async fn count_rows(&self, ep: &Endpoint, table: &TableSchema) -> Result<u64, ConnectorError>;

    /// Post-data for one loaded table: the deferred key, indexes,
    /// constraints, statistics.
    async fn post_data(
        &self,
        source: &Endpoint,
        target: &Endpoint,
        table: &TableSchema,
        defer_primary_key: bool,
    ) -> Result<(), ConnectorError>;

    /// Foreign keys once every table is loaded (`validate`: check existing
    /// rows), or a reviewed `post-data.sql` instead.
    async fn finalize(
        &self,
        run: &Run,
        ep: &Endpoint,
        foreign_keys: &[(String, Constraint)],
        validate: bool,
        post_data_sql: Option<&str>,
    ) -> Result<WorkResult, ConnectorError>;

    /// Empties a table for a reload in generation `gen`, reshaping it from
    /// `previous` (or creating it, or replacing it), after taking the CDC
    /// apply state over.
    async fn reset_table(
        &self,
        run: &Run,
        ep: &Endpoint,
        table: &TableSchema,
        gen: u64,
        previous: Option<&TableSchema>,
        replace: bool,
    ) -> Result<WorkResult, ConnectorError>;

    /// Cutover: key generators (sequences, AUTO_INCREMENT) past every
    /// value the source used.
    async fn sync_sequences(
        &self,
        source: &Endpoint,
        target: &Endpoint,
        tables: &[TableSchema],
    ) -> Result<(), ConnectorError>;

    /// Raises the CDC apply state's epoch to `run`'s: a stopped stream
    /// commits nothing after this.
    async fn fence_stream(&self, run: &Run, ep: &Endpoint) -> Result<(), ConnectorError>;

    /// A session to apply changes on, keeping the task's control tables in
    /// `control`.
    async fn change_target(&self, ep: &Endpoint, control: &ControlTables) -> Result<AnyChangeTarget, ConnectorError>;

    /// What the full load needs of this target, checked against its
    /// catalog (`ferry assess --target`).
    fn target_checks(&self, target: &Catalog) -> Vec<Check>;

    /// Runs a conversion's DDL on the target and leaves nothing behind
    /// (see `schema::trial`).
    async fn trial(&self, conv: &Conversion, ep: &Endpoint) -> Result<Trial, ConnectorError>;
}

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
    /// One statement giving each existing row of `table` named by its key
    /// the image in `rows` (literals in `columns` order; `columns` are
    /// quoted names with their target types; `key` indexes into them); a
    /// row the table lacks stays missing, and the statement returns
    /// `(check, i)` for each such `rows[i]` (a check of `pipeline/conflict`).
    /// None: the engine has no such form and the rows are checked and
    /// updated one statement each.
    fn update_rows(
        &self,
        check: u64,
        table: &str,
        columns: &[(String, String)],
        key: &[usize],
        rows: &[Vec<String>],
    ) -> Option<String>;
    /// A query returning `(check, i)` when no row of `table` meets `cond`
    /// (`expected`: the change expects the row), or when one does (not
    /// `expected`: an insert) — a check of `pipeline/conflict`.
    fn row_check(&self, check: u64, i: usize, table: &str, cond: &str, expected: bool) -> String;
    /// A query returning `(check, i)` for each `keys[i]` (literals of the
    /// `key` columns: quoted names with their target types) that names no
    /// row of `table` (`expected`), or that names one (not `expected`). By
    /// default one [`ApplyDialect::row_check`] per key.
    fn rows_check(
        &self,
        check: u64,
        table: &str,
        key: &[(String, String)],
        keys: &[Vec<String>],
        expected: bool,
    ) -> String {
        keys.iter()
            .enumerate()
            .map(|(i, lits)| {
                let cond: Vec<String> = key.iter().zip(lits).map(|(c, l)| format!("{} = {l}", c.0)).collect();
                self.row_check(check, i, table, &cond.join(" AND "), expected)
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL ")
    }
    /// The clause that makes `INSERT INTO t (columns) VALUES ...` leave a
    /// row whose key the table holds already as it is (`key`: indexes into
    /// `columns`, not empty).
    fn keep_suffix(&self, columns: &[&str], key: &[usize]) -> String;
}

/// What a committing batch tells the optional control tables (see
/// `ferry_common::control`) besides its position.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct BatchNote {
    /// Row changes and source transactions the batch applies.
    pub changes: u64,
    pub transactions: u64,
    /// Commit time (Unix seconds) of the last source transaction in it,
    /// when the log said.
    pub source_commit_secs: Option<i64>,
    /// The worker's clock, which picks the history time slot.
    pub now_secs: i64,
}

/// A target session change batches are applied on, fenced by the task's
/// apply state (`ferry.apply_state(task, lsn, epoch, mark)`). A batch runs
/// in a task of its own while the stream decodes the next one, so the
/// session and what a batch awaits on it are `Send`.
pub(crate) trait ChangeTarget: Send + 'static {
    fn dialect(&self) -> &'static dyn ApplyDialect;
    /// Takes the task's apply state over for `epoch` and returns the
    /// committed position and mark; waits for a predecessor's open batch.
    /// Fails when a newer epoch owns it.
    async fn take_over(&mut self, task: &str, epoch: i64) -> Result<(Option<Position>, u64), ConnectorError>;
    /// Opens a transaction on a session beside the fenced one (a parallel
    /// apply lane) and holds the apply state in share mode until COMMIT, so
    /// that no stream can take the state over while the lane's rows are
    /// uncommitted. False when a newer stream took over.
    fn begin_lane(&mut self, task: &str, epoch: i64) -> impl Future<Output = Result<bool, ConnectorError>> + Send;
    /// Sends statements (`what` names them in errors) and returns the rows
    /// of the checks among them: `(check, row)` for each row a check found
    /// missing (see `pipeline/conflict`).
    fn execute(
        &mut self,
        sql: &str,
        what: &str,
    ) -> impl Future<Output = Result<Vec<(u64, u64)>, ConnectorError>> + Send;
    /// Inside the open batch: records `end` and `mark` if `epoch` still owns
    /// the apply state, keeping its row locked until COMMIT. False when a
    /// newer stream took over.
    fn record_position(
        &mut self,
        task: &str,
        epoch: i64,
        end: Option<&Position>,
        mark: i64,
        note: &BatchNote,
    ) -> impl Future<Output = Result<bool, ConnectorError>> + Send;
    fn commit(&mut self) -> impl Future<Output = Result<(), ConnectorError>> + Send;
    /// Best effort: the batch is discarded with the session anyway.
    fn rollback(&mut self) -> impl Future<Output = ()> + Send;
    /// Drops `table` (a table the source dropped) if `epoch` still owns the
    /// apply state.
    async fn drop_table(&mut self, task: &str, epoch: i64, table: &str) -> Result<(), ConnectorError>;
    /// Whether this session checks nothing between rows beyond each table's
    /// own keys (no foreign-key checks, no triggers), so that a batch may
    /// apply each table's net changes as sets (see `pipeline/apply`).
    fn set_based(&self) -> bool;
    /// Whether sessions of this target writing disjoint keys of one table
    /// can still wait on each other (locks on the gaps between keys): then
    /// the fenced session takes no share of a table spread over parallel
    /// lanes, so that no lane ever waits on it (see `pipeline/apply`).
    fn disjoint_keys_wait(&self) -> bool;
}

/// The change target of an endpoint's engine.
pub(crate) enum AnyChangeTarget {
    Postgres(postgres::target::PgChangeTarget),
    Mysql(mysql::target::MysqlChangeTarget),
}

impl AnyChangeTarget {
    /// Connects to the target, with the session set up for applying.
    pub async fn open(target: &Endpoint, control: &ControlTables) -> Result<AnyChangeTarget, ConnectorError> {
        crate::engine::with_engine!(target.engine, |e| e.change_target(target, control).await)
    }
}

impl ChangeTarget for AnyChangeTarget {
    fn set_based(&self) -> bool {
        match self {
            AnyChangeTarget::Postgres(t) => t.set_based(),
            AnyChangeTarget::Mysql(t) => t.set_based(),
        }
    }
    fn disjoint_keys_wait(&self) -> bool {
        match self {
            AnyChangeTarget::Postgres(t) => t.disjoint_keys_wait(),
            AnyChangeTarget::Mysql(t) => t.disjoint_keys_wait(),
        }
    }
    fn dialect(&self) -> &'static dyn ApplyDialect {
        match self {
            AnyChangeTarget::Postgres(t) => t.dialect(),
            AnyChangeTarget::Mysql(t) => t.dialect(),
        }
    }
    async fn take_over(&mut self, task: &str, epoch: i64) -> Result<(Option<Position>, u64), ConnectorError> {
        match self {
            AnyChangeTarget::Postgres(t) => t.take_over(task, epoch).await,
            AnyChangeTarget::Mysql(t) => t.take_over(task, epoch).await,
        }
    }
    async fn begin_lane(&mut self, task: &str, epoch: i64) -> Result<bool, ConnectorError> {
        match self {
            AnyChangeTarget::Postgres(t) => t.begin_lane(task, epoch).await,
            AnyChangeTarget::Mysql(t) => t.begin_lane(task, epoch).await,
        }
    }
    async fn execute(&mut self, sql: &str, what: &str) -> Result<Vec<(u64, u64)>, ConnectorError> {
        match self {
            AnyChangeTarget::Postgres(t) => t.execute(sql, what).await,
            AnyChangeTarget::Mysql(t) => t.execute(sql, what).await,
        }
    }
    async fn record_position(
        &mut self,
        task: &str,
        epoch: i64,
        end: Option<&Position>,
        mark: i64,
        note: &BatchNote,
    ) -> Result<bool, ConnectorError> {
        match self {
            AnyChangeTarget::Postgres(t) => t.record_position(task, epoch, end, mark, note).await,
            AnyChangeTarget::Mysql(t) => t.record_position(task, epoch, end, mark, note).await,
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
