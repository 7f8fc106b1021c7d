//! The engine boundary. Everything engine-specific lives in one folder per
//! engine (`postgres/`, `mysql/`); the rest of the worker calls through
//! [`run_work`] and the engine-neutral data path in `crate::pipeline`.

pub(crate) mod credentials;
pub mod mysql;
pub mod postgres;
pub(crate) mod target;
pub(crate) mod validation;

use crate::pipeline::{apply, validate};

use ferry_common::endpoint::{Endpoint, Engine};
use ferry_common::plan::SegmentBounds;
use ferry_common::schema::TableSchema;
use ferry_common::work::{Work, WorkResult};
use ferry_common::{convert, typemap};
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

/// A row in the common value model, columns in the target table's order.
/// A row the source could read but whose values have no exact form in the
/// value model (MySQL year 0, PostgreSQL NaN or infinity on the way to MySQL)
/// travels as `Err`: the target records it as an exception with the reason.
pub type Row = Result<Vec<ferry_common::value::Value<'static>>, Rejected>;

#[derive(Debug, Clone)]
pub struct Rejected {
    /// The source row as text, for the exceptions table.
    pub image: String,
    pub reason: String,
}

/// One line of tab-separated fields (the shape of both PostgreSQL's text
/// COPY and MySQL's LOAD DATA), each written by the target's `field`; on a
/// refused value the buffer is left as it was.
pub fn tab_separated_row(
    out: &mut Vec<u8>,
    values: &[ferry_common::value::Value],
    field: fn(&mut Vec<u8>, &ferry_common::value::Value) -> Result<(), ferry_common::value::ValueError>,
) -> Result<(), ferry_common::value::ValueError> {
    let start = out.len();
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(b'\t');
        }
        if let Err(e) = field(out, v) {
            out.truncate(start);
            return Err(e);
        }
    }
    out.push(b'\n');
    Ok(())
}

/// Encodes a row for a target, or says why it cannot be stored there.
pub fn encode_row(
    out: &mut Vec<u8>,
    row: &Row,
    encode: impl Fn(&mut Vec<u8>, &[ferry_common::value::Value]) -> Result<(), ferry_common::value::ValueError>,
) -> Result<(), Rejected> {
    match row {
        Ok(values) => encode(out, values).map_err(|e| Rejected {
            image: format!("{values:?}"),
            reason: e.to_string(),
        }),
        Err(r) => Err(r.clone()),
    }
}

/// A segment's rows on their way from a source to a target of another
/// engine, in batches; the stream ends after the last row.
pub type Rows = std::pin::Pin<Box<dyn futures::Stream<Item = Result<Vec<Row>, ConnectorError>> + Send>>;

/// Most rows one segment records as exceptions before it fails instead: a
/// column that no row can cross is a mapping problem, not a few bad rows.
pub const MAX_EXCEPTIONS: usize = 1000;

/// The reading side of [`Rows`]: a source connector's reader task gathers
/// rows into batches (at most 1000 rows or 1 MiB) and hands them over a
/// channel of two batches, so memory stays bounded and the hand-over stays
/// off the per-row path.
pub struct RowSender {
    tx: tokio::sync::mpsc::Sender<Result<Vec<Row>, ConnectorError>>,
    batch: Vec<Row>,
    bytes: usize,
}

const BATCH_ROWS: usize = 1000;
const BATCH_BYTES: usize = 1 << 20;

/// A channel for one segment's rows: the reader task gets the sender, the
/// target writer the stream.
pub fn row_channel() -> (RowSender, Rows) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(2);
    let sender = RowSender {
        tx,
        batch: Vec::with_capacity(BATCH_ROWS),
        bytes: 0,
    };
    (sender, Box::pin(futures::stream::poll_fn(move |cx| rx.poll_recv(cx))))
}

impl RowSender {
    /// Adds a row of about `bytes` bytes; false once the writer has gone
    /// (its error is the one reported).
    pub async fn push(&mut self, row: Row, bytes: usize) -> bool {
        self.batch.push(row);
        self.bytes += bytes;
        if self.batch.len() < BATCH_ROWS && self.bytes < BATCH_BYTES {
            return true;
        }
        self.bytes = 0;
        let full = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH_ROWS));
        self.tx.send(Ok(full)).await.is_ok()
    }

    /// Ends the stream: the last rows, or the reader's error.
    pub async fn finish(self, result: Result<(), ConnectorError>) {
        let last = match result {
            Err(e) => Err(e),
            Ok(()) if self.batch.is_empty() => return,
            Ok(()) => Ok(self.batch),
        };
        let _ = self.tx.send(last).await;
    }
}

/// Progress sink: rows copied so far in the current assignment.
pub type Progress = std::sync::Arc<std::sync::atomic::AtomicU64>;

/// What a running assignment can report through.
pub struct WorkContext {
    pub progress: Progress,
    pub reporter: crate::report::Reporter,
}

/// A source table as the target engine declares it (itself for a same-engine
/// pair); a type without an exact equivalent stops the table.
pub fn on_target(t: &TableSchema, target: Engine) -> Result<TableSchema, ConnectorError> {
    convert::convert_table(t, target).map_err(|e| ConnectorError::Definite(format!("table {}: {e}", t.display_name())))
}

/// Raises the target's CDC apply-state epoch to this assignment's: a stream
/// revoked for a reload commits nothing after this (see
/// `Work::Reintrospect`).
async fn fence_stream(target: &Endpoint) -> Result<(), ConnectorError> {
    let (task, epoch) = (crate::current_task(), crate::current_epoch() as i64);
    match target.engine {
        Engine::Postgres => postgres::target::fence(&postgres::connect(target).await?, &task, epoch).await?,
        Engine::Mysql => mysql::target::fence(&mut mysql::write::target(target).await?, &task, epoch).await?,
    }
    tracing::info!(epoch, "CDC apply state fenced: the stopped stream commits nothing more");
    Ok(())
}

/// Segment bounds with key types in the target engine's dialect (for
/// validation's range queries on the target).
pub(crate) fn bounds_on_target(b: &SegmentBounds, from: Engine, to: Engine) -> Result<SegmentBounds, ConnectorError> {
    let mut b = b.clone();
    if let SegmentBounds::Key { columns, .. } = &mut b {
        for c in columns {
            c.type_sql =
                typemap::convert_type(from, to, &c.type_sql).map_err(|e| ConnectorError::Definite(e.to_string()))?;
        }
    }
    Ok(b)
}

/// A segment between engines (or out of MySQL): the source connector reads
/// rows into the value model and the target connector writes them.
async fn load_through_value_model(work: &Work, progress: Progress) -> Result<WorkResult, ConnectorError> {
    let Work::LoadSegment {
        source,
        target,
        table,
        segment,
        bounds,
        snapshot,
        gen,
        defer_primary_key,
        target_may_hold_rows,
    } = work
    else {
        unreachable!("called for LoadSegment only");
    };
    let converted = on_target(table, target.engine)?;
    let columns: Vec<String> = converted.copy_columns().map(|c| c.name.clone()).collect();
    let (rows, position) = match source.engine {
        Engine::Mysql => mysql::read::read_segment(source, table, columns, bounds, snapshot.is_some()).await?,
        Engine::Postgres => (
            postgres::read::read_segment(source, table, columns, bounds, snapshot.as_deref()).await?,
            None,
        ),
    };
    // The snapshot position travels with the result (from the segment's
    // marker when an earlier attempt committed it).
    match target.engine {
        Engine::Postgres => {
            let seg = postgres::load::Segment {
                number: *segment,
                bounds,
                snapshot: None,
                gen: *gen,
                replace: *target_may_hold_rows,
                fresh: *defer_primary_key,
                position,
            };
            postgres::load::load_rows(target, &converted, seg, rows, progress).await
        }
        Engine::Mysql => {
            let seg = mysql::write::Segment {
                number: *segment,
                bounds,
                gen: *gen,
                replace: *target_may_hold_rows,
                position,
            };
            mysql::write::load_rows(target, &converted, seg, rows, progress).await
        }
    }
}

/// A connection kept for liveness probes (see `crate::probe`), opened on
/// first use.
#[derive(Default)]
pub enum Probe {
    #[default]
    Unopened,
    Postgres(tokio_postgres::Client),
    Mysql(mysql_async::Conn),
}

impl Probe {
    /// Asks the server a trivial question.
    pub async fn ask(&mut self, ep: &Endpoint) -> Result<(), ConnectorError> {
        if matches!(self, Probe::Unopened) {
            *self = match ep.engine {
                Engine::Postgres => Probe::Postgres(postgres::connect(ep).await?),
                Engine::Mysql => Probe::Mysql(mysql::connect(ep).await?),
            };
        }
        match self {
            Probe::Unopened => Ok(()),
            Probe::Postgres(c) => c
                .simple_query("SELECT 1")
                .await
                .map(|_| ())
                .map_err(|e| postgres::classify(format!("liveness probe of {ep}"), e)),
            Probe::Mysql(c) => mysql_async::prelude::Queryable::query_drop(c, "SELECT 1")
                .await
                .map_err(|e| mysql::classify(format!("liveness probe of {ep}"), e)),
        }
    }
}

/// A table's rows on the target against what its segments loaded, once
/// every segment committed and before anything else writes to it: a
/// difference means rows were lost or doubled on the way (a segment that
/// touched another's rows, say), and the table must not count as loaded.
async fn check_loaded_rows(target: &Endpoint, t: &TableSchema, expected: u64) -> Result<(), ConnectorError> {
    let on = on_target(t, target.engine)?;
    let what = format!("table {}: counting its rows on the target", t.display_name());
    let held: u64 = match target.engine {
        Engine::Postgres => {
            let c = postgres::connect(target).await?;
            let n: i64 = c
                .query_one(&format!("SELECT count(*) FROM {}", on.qualified()), &[])
                .await
                .map_err(|e| postgres::classify(&what, e))?
                .get(0);
            n as u64
        }
        Engine::Mysql => {
            let mut c = mysql::connect(target).await?;
            let sql = format!(
                "SELECT COUNT(*) FROM {}.{}",
                mysql::quote(&on.schema),
                mysql::quote(&on.name)
            );
            mysql_async::prelude::Queryable::query_first::<u64, _>(&mut c, sql)
                .await
                .map_err(|e| mysql::classify(&what, e))?
                .unwrap_or(0)
        }
    };
    if held != expected {
        return Err(ConnectorError::Definite(format!(
            "table {}: the target holds {held} rows after the full load, but its segments loaded {expected}: rows were lost or doubled; the table is not complete",
            t.display_name()
        )));
    }
    tracing::info!(table = %t.display_name(), rows = held, "loaded row count checked on the target");
    Ok(())
}

pub async fn run_work(work: Work, ctx: WorkContext) -> Result<WorkResult, ConnectorError> {
    // PostgreSQL to PostgreSQL passes COPY bytes through (postgres::run);
    // every other pair goes through the value model.
    if let Work::LoadSegment { source, target, .. } = &work {
        if source.engine != target.engine || source.engine == Engine::Mysql {
            return load_through_value_model(&work, ctx.progress).await;
        }
    }
    if let Work::ValidateSegment {
        task,
        source,
        target,
        table,
        segment,
        bounds,
        partition_size,
        settle,
    } = &work
    {
        return validate::validate_segment(validate::Job {
            task,
            source,
            target,
            table,
            segment: *segment,
            bounds,
            partition_size: *partition_size,
            settle: settle.then_some(&ctx.reporter),
        })
        .await;
    }
    if let Work::PostData {
        target,
        table,
        expected_rows: Some(expected),
        ..
    } = &work
    {
        check_loaded_rows(target, table, *expected).await?;
    }
    if let Work::Reintrospect { target, .. } = &work {
        fence_stream(target).await?;
    }
    // Cutover steps.
    match &work {
        Work::FreezeSource { source, freeze } => {
            return match source.engine {
                Engine::Postgres => postgres::cutover::freeze(source, *freeze).await,
                Engine::Mysql => mysql::cutover::freeze(source, *freeze).await,
            }
            .map(|_| WorkResult::Done)
        }
        Work::SyncSequences { source, target, tables } => {
            return match target.engine {
                Engine::Postgres => postgres::schema::sync_sequences(source, target, tables).await,
                Engine::Mysql => mysql::cutover::sync_auto_increment(target, tables).await,
            }
            .map(|_| WorkResult::Done)
        }
        _ => {}
    }
    let engine = match &work {
        Work::FreezeSource { source, .. } | Work::SyncSequences { source, .. } => source.engine,
        Work::ValidateSegment { source, .. }
        | Work::Introspect { source, .. }
        | Work::Reintrospect { source, .. }
        | Work::CreateSlot { source, .. }
        | Work::HoldSnapshot { source, .. }
        | Work::DropSlot { source, .. }
        | Work::Cdc { source, .. }
        | Work::LoadSegment { source, .. } => source.engine,
        Work::Prepare { target, .. }
        | Work::Finalize { target, .. }
        | Work::ResetTable { target, .. }
        | Work::PostData { target, .. } => target.engine,
    };
    match (engine, work) {
        (Engine::Postgres, work) => postgres::run(work, ctx).await,
        (
            Engine::Mysql,
            Work::Introspect {
                source,
                mappings,
                segment_target_bytes,
                max_segments_per_table,
            },
        ) => mysql::introspect(&source, &mappings, segment_target_bytes, max_segments_per_table, None)
            .await
            .map(WorkResult::Introspected),
        (
            Engine::Mysql,
            Work::Reintrospect {
                source,
                mappings,
                table,
                ..
            },
        ) => mysql::introspect(&source, &mappings, u64::MAX, 1, Some(&table))
            .await
            .map(WorkResult::Introspected),
        (
            Engine::Mysql,
            Work::Prepare {
                target,
                schema,
                prep_mode,
                pre_data_sql,
                ..
            },
        ) => mysql::write::prepare(&target, &schema, prep_mode, pre_data_sql.as_deref())
            .await
            .map(|_| WorkResult::Done),
        (Engine::Mysql, Work::PostData { target, table, .. }) => {
            mysql::write::post_data(&target, &table).await.map(|_| WorkResult::Done)
        }
        // MySQL adds keys without checking rows (foreign_key_checks=0).
        (
            Engine::Mysql,
            Work::Finalize {
                target,
                foreign_keys,
                post_data_sql,
                ..
            },
        ) => mysql::write::finalize(&target, &foreign_keys, post_data_sql.as_deref()).await,
        (
            Engine::Mysql,
            Work::ResetTable {
                target,
                table,
                gen,
                previous,
                replace,
            },
        ) => mysql::write::reset_table(&target, &table, gen, previous.as_ref(), replace).await,
        (Engine::Mysql, Work::CreateSlot { source, .. }) => mysql::binlog::create(&source).await,
        (Engine::Mysql, Work::HoldSnapshot { source, .. }) => mysql::binlog::hold(&source, &ctx.reporter).await,
        (
            Engine::Mysql,
            Work::Cdc {
                source,
                target,
                tables,
                start,
                discover,
                apply_truncates,
                drop_dropped,
                ..
            },
        ) => {
            let policy = apply::TablePolicy {
                discover: discover.as_ref(),
                apply_truncates,
                drop_dropped,
            };
            mysql::binlog::run(&source, &target, &tables, start, policy, &ctx.reporter).await
        }
        // The binlog is the server's: nothing to drop.
        (Engine::Mysql, Work::DropSlot { .. }) => Ok(WorkResult::Done),
        (Engine::Mysql, work) => Err(ConnectorError::Definite(format!(
            "{} on MySQL is not supported yet",
            work.kind()
        ))),
    }
}
