//! LoadSegment: copy one segment from source to target, exactly once.
//!
//! ```text
//!  source: COPY (SELECT cols FROM t WHERE <segment>) TO STDOUT (FORMAT binary)
//!            │  CopyData messages, forwarded one at a time (bounded memory)
//!            ▼
//!  target: BEGIN
//!          INSERT INTO ferry.segment_loads (task-table-segment, epoch)   ← fence
//!          COPY t (cols) FROM STDIN (FORMAT binary)
//!          UPDATE ferry.segment_loads SET rows = n
//!          COMMIT
//! ```
//! Into a table that may hold rows of its own (DO_NOTHING) a keyed segment
//! is copied into a temporary stage instead, then replaces the target rows
//! with the same keys (`DELETE ... USING stage`, `INSERT ... SELECT`).
//! Why no row is lost or doubled, whatever dies when: the segment and
//! load-generation fences (`pipeline::fence`, whose argument covers retries,
//! zombies, killed workers and reset snapshots), and:
//! - Nothing is deleted by key range on the target: the range was cut in
//!   the source's order, and the target may order the same keys otherwise
//!   (another collation, another engine), so its range could hold rows of
//!   other segments. Prepare created or emptied the table, so the range is
//!   empty but for this segment's committed attempt, which the marker
//!   catches. Rows that existed before the task (DO_NOTHING) are replaced
//!   key by key through the stage, which compares keys for equality only.
//!
//! Memory: tokio-postgres reads the source with a one-message channel (it
//! stops reading the socket while a message is unconsumed); rows are gathered
//! into 256 KiB messages for the target, so a worker holds about 256 KiB
//! plus one row per segment in flight.

use super::{classify, connect};
use crate::engine::target::Segment;
use crate::engine::{on_target, ConnectorError, Progress, Run};
use crate::failpoint;
use crate::pipeline::fence::{self, Attempt, Committed, Marker, SegmentFence};
use crate::pipeline::rows::{exception_limit, too_many_exceptions, Rows};
use ferry_common::endpoint::{Endpoint, Engine};
use ferry_common::plan::{KeyColumn, SegmentBounds};
use ferry_common::position::Position;
use ferry_common::schema::{quote_ident, quote_literal, CopyFormat, TableSchema};
use ferry_common::work::WorkResult;
use futures::{SinkExt, StreamExt};
use std::sync::atomic::Ordering;
use tracing::Instrument;

fn tuple(cols: &[KeyColumn]) -> String {
    let c: Vec<String> = cols.iter().map(|k| quote_ident(&k.name)).collect();
    if c.len() == 1 {
        return c[0].clone();
    }
    format!("({})", c.join(", "))
}

fn values(cols: &[KeyColumn], vals: &[String]) -> String {
    let v: Vec<String> = cols
        .iter()
        .zip(vals)
        .map(|(k, v)| format!("{}::{}", quote_literal(v), k.type_sql))
        .collect();
    if v.len() == 1 {
        return v[0].clone();
    }
    format!("ROW({})", v.join(", "))
}

/// The segment's row predicate. Over NOT NULL keys it is a plain (indexable)
/// row comparison; over nullable user-given columns each comparison is made
/// NULL-safe so that a row with NULLs lands in exactly one segment (the first
/// segment takes what no lower bound definitely admits).
pub fn predicate(bounds: &SegmentBounds) -> String {
    match bounds {
        SegmentBounds::All => "true".into(),
        SegmentBounds::Ctid {
            lower_block,
            upper_block,
        } => {
            let mut p = vec![];
            if let Some(l) = lower_block {
                p.push(format!("ctid >= '({l},0)'::tid"));
            }
            if let Some(u) = upper_block {
                p.push(format!("ctid < '({u},0)'::tid"));
            }
            if p.is_empty() {
                "true".into()
            } else {
                p.join(" AND ")
            }
        }
        SegmentBounds::Key { columns, lower, upper } => {
            let nullable = columns.iter().any(|c| c.nullable);
            let t = tuple(columns);
            let mut p = vec![];
            if let Some(l) = lower {
                let ge = format!("{t} >= {}", values(columns, l));
                p.push(if nullable { format!("({ge}) IS TRUE") } else { ge });
            }
            if let Some(u) = upper {
                let ge = format!("{t} >= {}", values(columns, u));
                p.push(if nullable {
                    format!("NOT (({ge}) IS TRUE)")
                } else {
                    format!("{t} < {}", values(columns, u))
                });
            }
            if p.is_empty() {
                "true".into()
            } else {
                p.join(" AND ")
            }
        }
    }
}

impl Segment<'_> {
    /// A whole table that this task created (no range to clear) is loaded
    /// with `COPY ... FREEZE` after a `TRUNCATE` in the same subtransaction:
    /// its rows are written frozen and all-visible, so the primary key build
    /// that follows and later reads set no hint bits and VACUUM has nothing
    /// to freeze (measured: the load 10-25 % faster and the key build 1 s
    /// faster on 10M rows). The TRUNCATE takes the table's exclusive lock,
    /// which only this segment wants. Partitioned tables cannot be frozen.
    fn freezes(&self, t: &TableSchema) -> bool {
        self.fresh && *self.bounds == SegmentBounds::All && !t.is_partitioned()
    }

    /// The key columns rows are replaced by, when they go through a stage.
    fn staged_key(&self) -> Option<&[KeyColumn]> {
        match self.bounds {
            SegmentBounds::Key { columns, .. } if self.replace => Some(columns),
            _ => None,
        }
    }

    /// The table the segment's COPY writes into.
    fn copy_into(&self, t: &TableSchema) -> String {
        if self.staged_key().is_some() {
            STAGE.to_string()
        } else {
            t.qualified()
        }
    }
}

/// The temporary table a replacing segment is copied into.
const STAGE: &str = "ferry_segment_stage";

/// Empties a table for a reload in snapshot generation `gen`, reshaping its
/// columns first when they changed on the source (`previous`: the table as
/// the target has it; `replace`: whatever the target has of that name goes). In the same transaction the reset takes the CDC
/// apply state over with its own epoch (see `cdc::apply`): a stream revoked
/// for the reload, still running somewhere, can commit nothing after this,
/// so it cannot write into the emptied table before the reload's snapshot.
pub async fn reset_table(
    run: &Run,
    target: &Endpoint,
    t: &TableSchema,
    gen: u64,
    previous: Option<&TableSchema>,
    replace: bool,
) -> Result<WorkResult, ConnectorError> {
    let task = &run.task;
    let name = t.display_name();
    let mut dst = connect(target).await?;
    let ctx = |what: &str| format!("table {name}: {what}");
    let on = on_target(t, Engine::Postgres)?;
    // A previous definition without columns: the target has no such table.
    let (mut create, reshape) = match previous {
        Some(p) if p.columns.is_empty() => (super::schema::creation(&on), vec![]),
        Some(p) => (vec![], super::schema::reshape(&on, &on_target(p, Engine::Postgres)?)?),
        None => (vec![], vec![]),
    };
    let t = &on;
    if replace {
        create.insert(0, format!("DROP TABLE IF EXISTS {} CASCADE", t.qualified()));
    }
    let tx = dst
        .transaction()
        .await
        .map_err(|e| classify(ctx("BEGIN on target"), e))?;
    super::target::fence(&tx, run).await?;
    tx.execute(
        &format!(
            "INSERT INTO {} AS l (task, table_name, gen) VALUES ($1, $2, $3)
         ON CONFLICT (task, table_name) DO UPDATE SET gen = greatest(l.gen, EXCLUDED.gen)",
            run.control.table("table_loads")
        ),
        &[&task, &t.qualified(), &(gen as i64)],
    )
    .await
    .map_err(|e| classify(ctx("raising its load generation"), e))?;
    for stmt in &create {
        tx.batch_execute(stmt)
            .await
            .map_err(|e| classify(ctx(&format!("creating it ({stmt})")), e))?;
    }
    // TRUNCATE refuses a table other tables' foreign keys reference (they
    // exist once a task is past its full load); a DELETE with the keys'
    // triggers off empties it all the same.
    let referenced: bool = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE contype = 'f' AND confrelid = $1::text::regclass)",
            &[&t.qualified()],
        )
        .await
        .map_err(|e| classify(ctx("reading foreign keys"), e))?
        .get(0);
    let empty = if referenced {
        format!(
            "SET LOCAL session_replication_role = replica; DELETE FROM {}",
            t.qualified()
        )
    } else {
        format!("TRUNCATE {}", t.qualified())
    };
    tx.batch_execute(&empty)
        .await
        .map_err(|e| classify(ctx("emptying for reload"), e))?;
    for stmt in &reshape {
        tx.batch_execute(stmt)
            .await
            .map_err(|e| classify(ctx(&format!("reshaping for the source's columns ({stmt})")), e))?;
    }
    tx.execute(
        &format!(
            "DELETE FROM {} WHERE task = $1 AND table_name = $2",
            run.control.table("segment_loads")
        ),
        &[&task, &t.qualified()],
    )
    .await
    .map_err(|e| classify(ctx("clearing segment markers"), e))?;
    tx.commit().await.map_err(|e| classify(ctx("COMMIT of reset"), e))?;
    tracing::info!(table = %name, gen, reshaped = reshape.len(), "table emptied for reload in a new snapshot");
    Ok(WorkResult::Done)
}

/// A segment load's target transaction once its fence is in place.
enum Begun<'a> {
    Fresh(tokio_postgres::Transaction<'a>),
    /// An earlier attempt committed this segment: its result.
    AlreadyLoaded(WorkResult),
}

/// Opens the target transaction and takes the segment's fences (load
/// generation, then the segment marker), then clears the range.
async fn begin<'a>(
    run: &Run,
    dst: &'a mut tokio_postgres::Client,
    t: &TableSchema,
    seg: &Segment<'_>,
) -> Result<Begun<'a>, ConnectorError> {
    let (segment, name) = (seg.number, t.display_name());
    let ctx = |what: &str| format!("table {name} segment {segment}: {what}");
    let (task, epoch) = (&run.task, run.epoch);
    let mut tx = dst
        .transaction()
        .await
        .map_err(|e| classify(ctx("BEGIN on target"), e))?;
    let attempt = fence::Attempt {
        task,
        control: &run.control,
        table: &t.qualified(),
        segment,
        epoch,
        gen: seg.gen,
        position: seg.position.clone(),
    };
    if let fence::Fenced::AlreadyLoaded(done) = fence::take(&mut tx, &attempt).await? {
        return Ok(Begun::AlreadyLoaded(done));
    }
    if seg.freezes(t) {
        // Empty already (the table was created by this task and a failed
        // attempt rolled back); truncated in this subtransaction so that
        // the COPY may write its rows frozen.
        tx.batch_execute(&format!("TRUNCATE {}", t.qualified()))
            .await
            .map_err(|e| classify(ctx("truncating the new table for a frozen load"), e))?;
    } else if seg.staged_key().is_some() {
        tx.batch_execute(&format!(
            "CREATE TEMPORARY TABLE {STAGE} (LIKE {}) ON COMMIT DROP",
            t.qualified()
        ))
        .await
        .map_err(|e| classify(ctx("creating the segment's stage"), e))?;
    } else if seg.replace && *seg.bounds == SegmentBounds::All {
        tx.batch_execute(&format!("DELETE FROM {}", t.qualified()))
            .await
            .map_err(|e| classify(ctx("clearing the table on the target"), e))?;
    }
    Ok(Begun::Fresh(tx))
}

/// Moves a staged segment into the table: the target's rows with the
/// segment's keys go, the segment's rows come. Returns the rows inserted.
async fn unstage(
    tx: &tokio_postgres::Transaction<'_>,
    t: &TableSchema,
    seg: &Segment<'_>,
) -> Result<Option<u64>, ConnectorError> {
    let Some(key) = seg.staged_key() else { return Ok(None) };
    let ctx = |what: &str| format!("table {} segment {}: {what}", t.display_name(), seg.number);
    let same: Vec<String> = key
        .iter()
        .map(|k| {
            let c = quote_ident(&k.name);
            let op = if k.nullable { "IS NOT DISTINCT FROM" } else { "=" };
            format!("t.{c} {op} s.{c}")
        })
        .collect();
    tx.batch_execute(&format!(
        "DELETE FROM {} t USING {STAGE} s WHERE {}",
        t.qualified(),
        same.join(" AND ")
    ))
    .await
    .map_err(|e| classify(ctx("replacing the target's rows with the segment's keys"), e))?;
    let cols: Vec<String> = t.copy_columns().map(|c| quote_ident(&c.name)).collect();
    let cols = cols.join(", ");
    let n = tx
        .execute(
            &format!(
                "INSERT INTO {} ({cols}) OVERRIDING SYSTEM VALUE SELECT {cols} FROM {STAGE}",
                t.qualified()
            ),
            &[],
        )
        .await
        .map_err(|e| classify(ctx("moving the segment's rows from its stage"), e))?;
    Ok(Some(n))
}

/// Records the counts in the marker and commits data and marker together:
/// `rows` loaded, `recorded` (exceptions, cut rows) in the exceptions table.
async fn finish(
    run: &Run,
    tx: tokio_postgres::Transaction<'_>,
    t: &TableSchema,
    seg: &Segment<'_>,
    (rows, recorded): (u64, (u64, u64)),
    position: Option<Position>,
) -> Result<WorkResult, ConnectorError> {
    let (exceptions, truncated) = recorded;
    let segment = seg.number;
    let ctx = |what: &str| format!("table {} segment {segment}: {what}", t.display_name());
    if let Some(moved) = unstage(&tx, t, seg).await? {
        if moved != rows {
            return Err(ConnectorError::Definite(ctx(&format!(
                "{rows} rows were copied into the stage but {moved} reached the table"
            ))));
        }
    }
    tx.execute(
        &format!(
            "UPDATE {} SET rows = $4, exceptions = $5, truncated = $6
              WHERE task = $1 AND table_name = $2 AND segment = $3",
            run.control.table("segment_loads")
        ),
        &[
            &run.task,
            &t.qualified(),
            &(segment as i32),
            &(rows as i64),
            &(exceptions as i64),
            &(truncated as i64),
        ],
    )
    .await
    .map_err(|e| classify(ctx("updating segment marker"), e))?;
    failpoint::pause("before-commit").await;
    tx.commit()
        .instrument(tracing::info_span!("commit"))
        .await
        .map_err(|e| classify(ctx("COMMIT on target"), e))?;
    failpoint::pause("after-commit").await;
    Ok(WorkResult::Loaded {
        rows,
        already_loaded: false,
        exceptions,
        truncated,
        position,
    })
}

/// Bytes gathered from the source before they go to the target as one
/// CopyData message.
const GATHER_BYTES: usize = 256 * 1024;

/// PostgreSQL to PostgreSQL: COPY bytes pass through unparsed.
pub async fn load_segment(
    run: &Run,
    source: &Endpoint,
    target: &Endpoint,
    t: &TableSchema,
    seg: Segment<'_>,
    progress: Progress,
) -> Result<WorkResult, ConnectorError> {
    let (segment, bounds) = (seg.number, seg.bounds);
    let name = t.display_name();
    let ctx = |what: &str| format!("table {name} segment {segment}: {what}");
    // The source side reads `t` by its names; the target side writes its
    // target form (renamed by the task's rules), with the segment's key as
    // the target names it.
    let on = on_target(t, Engine::Postgres)?;
    // Bandwidth is counted by the table's target name, as the value path does.
    let on_name = on.display_name();
    let target_bounds = crate::engine::bounds_on_target(t, bounds, Engine::Postgres)?;
    let seg = Segment {
        bounds: &target_bounds,
        ..seg
    };
    let mut dst = connect(target).await?;
    let mut src = connect(source).await?;
    let tx = match begin(run, &mut dst, &on, &seg).await? {
        Begun::Fresh(tx) => tx,
        Begun::AlreadyLoaded(done) => return Ok(done),
    };
    let pred = super::filter::rows_where(t, bounds)?;
    let out_cols: Vec<String> = on
        .copy_columns()
        .map(|c| quote_ident(t.source_column(&c.name)))
        .collect();
    let in_cols: Vec<String> = on.copy_columns().map(|c| quote_ident(&c.name)).collect();
    let format = match t.copy_format {
        CopyFormat::Binary => "binary",
        CopyFormat::Text => "text",
    };
    let out_sql = format!(
        "COPY (SELECT {} FROM {} WHERE {pred}) TO STDOUT (FORMAT {format})",
        out_cols.join(", "),
        super::own_rows(t)
    );
    let freeze = if seg.freezes(&on) { ", FREEZE" } else { "" };
    let in_sql = format!(
        "COPY {} ({}) FROM STDIN (FORMAT {format}{freeze})",
        seg.copy_into(&on),
        in_cols.join(", ")
    );
    // The source side reads in the table's snapshot when there is one.
    let src_tx = src
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(|e| classify(ctx("BEGIN on source"), e))?;
    if let Some(snap) = seg.snapshot {
        src_tx
            .batch_execute(&format!("SET TRANSACTION SNAPSHOT {}", quote_literal(snap)))
            .await
            .map_err(|e| {
                let e = classify(ctx("importing the load snapshot"), e);
                // A snapshot whose holder died is gone for good; the
                // coordinator starts a new generation once it notices.
                ConnectorError::Transient(e.to_string())
            })?;
    }
    let sink = tx
        .copy_in(&in_sql)
        .await
        .map_err(|e| classify(ctx("COPY FROM STDIN on target"), e))?;
    let stream = src_tx
        .copy_out(&out_sql)
        .await
        .map_err(|e| classify(ctx("COPY TO STDOUT on source"), e))?;
    futures::pin_mut!(sink);
    futures::pin_mut!(stream);
    // The source sends a message per row; the target gets them gathered
    // into large messages, so its backend reads and parses in bulk instead
    // of waking for every few kilobytes.
    let mut messages = 0u64;
    let mut gathered = bytes::BytesMut::with_capacity(GATHER_BYTES);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| classify(ctx("reading from source"), e))?;
        // A large row (a LOB value) goes on as it came: copying it into
        // the gather buffer would hold it twice.
        let large = chunk.len() >= GATHER_BYTES;
        if !large {
            gathered.extend_from_slice(&chunk);
        }
        if large || gathered.len() >= GATHER_BYTES {
            if !gathered.is_empty() {
                crate::health::copied(&run.task, &on_name, gathered.len());
                sink.feed(gathered.split().freeze())
                    .await
                    .map_err(|e| classify(ctx("target refused a row"), e))?;
                gathered.reserve(GATHER_BYTES);
            }
            if large {
                crate::health::copied(&run.task, &on_name, chunk.len());
                sink.feed(chunk)
                    .await
                    .map_err(|e| classify(ctx("target refused a row"), e))?;
            }
        }
        messages += 1;
        if messages.is_multiple_of(1024) {
            progress.store(messages, Ordering::Relaxed);
        }
    }
    if !gathered.is_empty() {
        crate::health::copied(&run.task, &on_name, gathered.len());
        sink.feed(gathered.freeze())
            .await
            .map_err(|e| classify(ctx("target refused a row"), e))?;
    }
    let rows = sink
        .as_mut()
        .finish()
        .await
        .map_err(|e| classify(ctx("target refused a row"), e))?;
    // The server sends one CopyData message per row (a documented
    // guarantee of the protocol); binary COPY adds the trailer as one more
    // (its header travels with the first row). So the messages count the
    // rows the source sent, and the target must have stored each of them:
    // a target trigger that drops rows, say, fails the segment.
    let sent = match t.copy_format {
        CopyFormat::Binary => messages.saturating_sub(1),
        CopyFormat::Text => messages,
    };
    if sent != rows {
        return Err(ConnectorError::Definite(ctx(&format!(
            "the source sent {sent} rows for this range but the target stored {rows}"
        ))));
    }
    progress.store(rows, Ordering::Relaxed);
    finish(run, tx, &on, &seg, (rows, (0, 0)), None).await
}

/// Another engine to PostgreSQL: rows of the value model, encoded as text
/// COPY. `t` is the table as the target has it (converted). A row with a
/// value PostgreSQL cannot hold goes to `ferry.apply_exceptions` with the
/// reason, in the same transaction.
pub async fn load_rows(
    run: &Run,
    target: &Endpoint,
    t: &TableSchema,
    seg: Segment<'_>,
    mut rows: Rows,
    progress: Progress,
) -> Result<WorkResult, ConnectorError> {
    let segment = seg.number;
    let name = t.display_name();
    let ctx = |what: &str| format!("table {name} segment {segment}: {what}");
    let mut dst = connect(target).await?;
    let tx = match begin(run, &mut dst, t, &seg).await? {
        Begun::Fresh(tx) => tx,
        Begun::AlreadyLoaded(done) => return Ok(done),
    };
    let cols: Vec<String> = t.copy_columns().map(|c| quote_ident(&c.name)).collect();
    let freeze = if seg.freezes(t) { ", FREEZE" } else { "" };
    let in_sql = format!(
        "COPY {} ({}) FROM STDIN (FORMAT text{freeze})",
        seg.copy_into(t),
        cols.join(", ")
    );
    let sink = tx
        .copy_in(&in_sql)
        .await
        .map_err(|e| classify(ctx("COPY FROM STDIN on target"), e))?;
    futures::pin_mut!(sink);
    let mut buf: Vec<u8> = Vec::with_capacity(256 * 1024);
    let mut exceptions: Vec<(String, String)> = vec![];
    let mut sent = 0u64;
    while let Some(batch) = rows.next().await {
        for row in batch? {
            match crate::pipeline::rows::encode_row(&mut buf, &row, super::encode::row) {
                Ok(()) => sent += 1,
                Err(r) => {
                    if exceptions.len() >= exception_limit(seg.data_errors) {
                        let why = ctx(&too_many_exceptions(seg.data_errors, &r));
                        return Err(ConnectorError::stopped_by(seg.data_errors, why));
                    }
                    exceptions.push((r.image, r.reason));
                }
            }
        }
        if buf.len() >= 128 * 1024 {
            crate::health::loaded(&run.task, &name, buf.len());
            sink.feed(bytes::Bytes::from(std::mem::take(&mut buf)))
                .await
                .map_err(|e| classify(ctx("target refused a row"), e))?;
            progress.store(sent, Ordering::Relaxed);
        }
    }
    if !buf.is_empty() {
        crate::health::loaded(&run.task, &name, buf.len());
        sink.feed(bytes::Bytes::from(buf))
            .await
            .map_err(|e| classify(ctx("target refused a row"), e))?;
    }
    let copied = sink
        .as_mut()
        .finish()
        .await
        .map_err(|e| classify(ctx("target refused a row"), e))?;
    // Every row the source sent for this range is stored or an exception;
    // a target that drops rows on its own (a trigger returning NULL) fails.
    if copied != sent {
        return Err(ConnectorError::Definite(ctx(&format!(
            "the source sent {sent} storable rows for this range but the target stored {copied}"
        ))));
    }
    progress.store(copied, Ordering::Relaxed);
    for (row, reason) in &exceptions {
        tracing::warn!(table = %name, segment, %reason, "row cannot be stored on the target; recorded in the control schema's apply_exceptions");
        tx.execute(
            &format!(
                "INSERT INTO {} (task, table_name, phase, reason, row_image) VALUES ($1, $2, 'full load', $3, $4)",
                run.control.table("apply_exceptions")
            ),
            &[&run.task, &t.display_name(), reason, row],
        )
        .await
        .map_err(|e| classify(ctx("recording an exception"), e))?;
    }
    let cuts = crate::pipeline::rows::take_cuts(&seg.cuts);
    for (key, reason) in &cuts {
        tx.execute(
            &format!(
                "INSERT INTO {} (task, table_name, phase, reason, row_image) VALUES ($1, $2, 'full load', $3, $4)",
                run.control.table("apply_exceptions")
            ),
            &[&run.task, &t.display_name(), reason, key],
        )
        .await
        .map_err(|e| classify(ctx("recording a cut LOB value"), e))?;
    }
    if !cuts.is_empty() {
        tracing::warn!(table = %name, segment, rows = cuts.len(), "LOB values cut to the task's limit; recorded in the control schema's apply_exceptions");
    }
    let recorded = (exceptions.len() as u64, cuts.len() as u64);
    finish(run, tx, t, &seg, (copied, recorded), seg.position.clone()).await
}

/// The segment fence's primitives in a PostgreSQL target transaction.
impl SegmentFence for tokio_postgres::Transaction<'_> {
    async fn table_generation(&mut self, a: &Attempt<'_>) -> Result<u64, ConnectorError> {
        let (task, table, loads) = (a.task, a.table, a.control.table("table_loads"));
        let ctx = |what: &str| format!("table {table}: {what}");
        self.execute(
            &format!("INSERT INTO {loads} (task, table_name, gen) VALUES ($1, $2, 0) ON CONFLICT DO NOTHING"),
            &[&task, &table],
        )
        .await
        .map_err(|e| classify(ctx("registering the table load"), e))?;
        let gen: i64 = self
            .query_one(
                &format!("SELECT gen FROM {loads} WHERE task = $1 AND table_name = $2 FOR SHARE"),
                &[&task, &table],
            )
            .await
            .map_err(|e| classify(ctx("reading the table's load generation"), e))?
            .get(0);
        Ok(gen as u64)
    }

    async fn insert_marker(&mut self, a: &Attempt<'_>) -> Result<Marker, ConnectorError> {
        let (task, table, segment) = (a.task, a.table, a.segment);
        let ctx = |what: &str| format!("table {table} segment {segment}: {what}");
        self.batch_execute("SAVEPOINT fence")
            .await
            .map_err(|e| classify(ctx("SAVEPOINT on target"), e))?;
        let inserted = self
            .execute(
                &format!(
                    "INSERT INTO {} (task, table_name, segment, epoch, position) VALUES ($1, $2, $3, $4, $5)",
                    a.control.table("segment_loads")
                ),
                &[
                    &task,
                    &table,
                    &(segment as i32),
                    &(a.epoch as i64),
                    &a.position.as_ref().map(|p| p.to_string()),
                ],
            )
            .await;
        match inserted {
            Ok(_) => Ok(Marker::Inserted),
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
                self.batch_execute("ROLLBACK TO SAVEPOINT fence")
                    .await
                    .map_err(|e| classify(ctx("ROLLBACK TO SAVEPOINT"), e))?;
                Ok(Marker::Taken)
            }
            Err(e) => Err(classify(ctx("writing segment marker"), e)),
        }
    }

    async fn read_marker(&mut self, a: &Attempt<'_>) -> Result<Committed, ConnectorError> {
        let (task, table, segment, markers) = (a.task, a.table, a.segment, a.control.table("segment_loads"));
        let marker = self
            .query_one(
                &format!(
                    "SELECT rows, position, exceptions, truncated FROM {markers}
                      WHERE task = $1 AND table_name = $2 AND segment = $3"
                ),
                &[&task, &table, &(segment as i32)],
            )
            .await
            .map_err(|e| classify(format!("table {table} segment {segment}: reading segment marker"), e))?;
        let rows: Option<i64> = marker.get(0);
        let position = crate::engine::stored_position(
            marker.get(1),
            format_args!("table {table} segment {segment}: {markers}.position"),
        )?;
        Ok(Committed {
            rows: rows.map(|r| r as u64),
            exceptions: marker.get::<_, i64>(2) as u64,
            truncated: marker.get::<_, i64>(3) as u64,
            position,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(n: &str, nullable: bool) -> KeyColumn {
        KeyColumn {
            name: n.into(),
            type_sql: "integer".into(),
            nullable,
        }
    }

    #[test]
    fn key_predicates() {
        let b = SegmentBounds::Key {
            columns: vec![col("a", false), col("B", false)],
            lower: Some(vec!["1".into(), "2".into()]),
            upper: Some(vec!["3".into(), "it's".into()]),
        };
        assert_eq!(
            predicate(&b),
            "(\"a\", \"B\") >= ROW('1'::integer, '2'::integer) AND (\"a\", \"B\") < ROW('3'::integer, 'it''s'::integer)"
        );
        let n = SegmentBounds::Key {
            columns: vec![col("a", true)],
            lower: None,
            upper: Some(vec!["5".into()]),
        };
        assert_eq!(predicate(&n), "NOT ((\"a\" >= '5'::integer) IS TRUE)");
        assert_eq!(
            predicate(&SegmentBounds::Ctid {
                lower_block: Some(4),
                upper_block: None
            }),
            "ctid >= '(4,0)'::tid"
        );
    }
}
