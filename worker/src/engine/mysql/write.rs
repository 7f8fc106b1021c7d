//! MySQL / MariaDB as a target: pre-data (databases, tables with primary
//! keys, Ferry's control tables), segment loads with `LOAD DATA LOCAL
//! INFILE` streamed from the value model, post-data (secondary indexes) and
//! foreign keys.
//!
//! A segment load is exactly-once by the segment fence (`pipeline::fence`):
//! in one InnoDB transaction it takes the table's load generation `LOCK IN
//! SHARE MODE` and inserts the segment's marker row (whose primary key a
//! second attempt collides with), loads the rows, and commits marker and
//! rows together. Reset uses DELETE, not TRUNCATE, because TRUNCATE commits
//! implicitly in MySQL.
//!
//! Memory: rows are encoded into chunks of about 128 KiB (a larger row is a
//! chunk of its own) that go to the server through a channel of four
//! chunks, as the server asks for them, in packets of at most 1 MiB.

use super::connect::{exec, target_session, STREAM_STALL_S};
use super::target::control_ddl;
use super::{classify, encode};
use crate::engine::target::Segment;
use crate::engine::{on_target, ConnectorError, Progress, Run};
use crate::pipeline::fence::{self, Attempt, Committed, Marker, SegmentFence};
use crate::pipeline::rows::{exception_limit, too_many_exceptions, Rows};
use ferry_common::endpoint::{Endpoint, Engine};
use ferry_common::plan::SegmentBounds;
use ferry_common::schema::*;
use ferry_common::settings::TargetTablePrepMode;
use ferry_common::work::WorkResult;
use futures::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use tracing::Instrument;

/// The largest piece of a LOAD DATA LOCAL stream sent as one packet: well
/// under the servers' default max_allowed_packet (16 MiB in MariaDB, 64 MiB
/// in MySQL), which a packet may not exceed whatever rows it holds.
const INFILE_PIECE: usize = 1 << 20;

fn column_def(col: &Column) -> String {
    let mut d = format!("{} {}", quote_ident(&col.name), col.type_sql);
    if let Some(g) = &col.generated {
        d.push_str(&format!(" GENERATED ALWAYS AS ({g}) STORED"));
        return d;
    }
    if col.not_null {
        d.push_str(" NOT NULL");
    }
    if let Some(def) = &col.default {
        d.push_str(&format!(" DEFAULT {def}"));
    }
    if col.identity.is_some() {
        d.push_str(" AUTO_INCREMENT");
    }
    d
}

fn create_table(t: &TableSchema) -> String {
    let mut parts: Vec<String> = t.columns.iter().map(column_def).collect();
    let pk: &[String] = t.primary_key.as_ref().map_or(&[], |p| &p.columns);
    if !pk.is_empty() {
        let cols: Vec<String> = pk.iter().map(|c| quote_ident(c)).collect();
        parts.push(format!("PRIMARY KEY ({})", cols.join(", ")));
    }
    // AUTO_INCREMENT needs an index at creation; the key leads with it.
    for c in t.columns.iter().filter(|c| c.identity.is_some()) {
        if pk.first() != Some(&c.name) {
            parts.push(format!("KEY ({})", quote_ident(&c.name)));
        }
    }
    format!(
        "CREATE TABLE IF NOT EXISTS {} (\n  {}\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
        t.qualified(),
        parts.join(",\n  ")
    )
}

pub async fn prepare(
    run: &Run,
    ep: &Endpoint,
    s: &SourceSchema,
    mode: TargetTablePrepMode,
    pre_data_sql: Option<&str>,
) -> Result<(), ConnectorError> {
    let mut c = target_session(ep).await?;
    // Checked before anything is created: otherwise every segment would fail
    // with the server's less helpful refusal.
    let infile: Option<i64> = c
        .query_first("SELECT @@GLOBAL.local_infile")
        .await
        .map_err(|e| classify(format!("checking local_infile on {ep}"), e))?;
    if infile != Some(1) {
        return Err(ConnectorError::Definite(format!(
            "target {ep} has local_infile=OFF; Ferry loads MySQL targets with LOAD DATA LOCAL INFILE: run SET GLOBAL local_infile = ON (or start the server with --local-infile=1)"
        )));
    }
    for ddl in control_ddl(&run.control) {
        exec(&mut c, &ddl, "creating Ferry's control tables on the target").await?;
    }
    upgrade_control_tables(&mut c, &run.control).await?;
    for schema in &s.schemas {
        exec(
            &mut c,
            &format!(
                "CREATE DATABASE IF NOT EXISTS {} CHARACTER SET utf8mb4",
                quote_ident(schema)
            ),
            &format!("creating database {schema}"),
        )
        .await?;
    }
    // A reviewed pre-data.sql creates the tables; CREATE TABLE IF NOT
    // EXISTS below then finds them.
    if let Some(sql) = pre_data_sql {
        if mode == TargetTablePrepMode::DropAndCreate {
            for t in &s.tables {
                let t = crate::engine::on_target(t, ferry_common::endpoint::Engine::Mysql)?;
                exec(
                    &mut c,
                    &format!("DROP TABLE IF EXISTS {}", t.qualified()),
                    "dropping tables",
                )
                .await?;
            }
        }
        run_script(ep, "pre-data.sql", sql).await?;
    }
    let task = &run.task;
    for t in &s.tables {
        let t = crate::engine::on_target(t, ferry_common::endpoint::Engine::Mysql)?;
        let what = format!("creating table {}", t.display_name());
        if mode == TargetTablePrepMode::DropAndCreate && pre_data_sql.is_none() {
            exec(&mut c, &format!("DROP TABLE IF EXISTS {}", t.qualified()), &what).await?;
        }
        exec(&mut c, &create_table(&t), &what).await?;
        if mode == TargetTablePrepMode::TruncateBeforeLoad {
            exec(&mut c, &format!("TRUNCATE TABLE {}", t.qualified()), &what).await?;
        }
        let (loads, markers) = (run.control.table("table_loads"), run.control.table("segment_loads"));
        c.exec_drop(
            format!("INSERT INTO {loads} (task, table_name, gen) VALUES (?, ?, 0) ON DUPLICATE KEY UPDATE gen = 0"),
            (task.clone(), t.qualified()),
        )
        .await
        .map_err(|e| classify(format!("writing {loads}"), e))?;
        if mode != TargetTablePrepMode::DoNothing {
            c.exec_drop(format!("DELETE FROM {markers} WHERE table_name = ?"), (t.qualified(),))
                .await
                .map_err(|e| classify(format!("clearing {markers}"), e))?;
        }
    }
    Ok(())
}

/// Adds what later versions keep in the control tables to tables an earlier
/// one created (MySQL 8 has no `ADD COLUMN IF NOT EXISTS`).
async fn upgrade_control_tables(
    c: &mut Conn,
    control: &ferry_common::control::ControlTables,
) -> Result<(), ConnectorError> {
    let has: Option<u64> = c
        .exec_first(
            "SELECT COUNT(*) FROM information_schema.COLUMNS
              WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'segment_loads' AND COLUMN_NAME = 'exceptions'",
            (&control.schema,),
        )
        .await
        .map_err(|e| classify("reading Ferry's control tables on the target", e))?;
    if has == Some(0) {
        let alter = format!(
            "ALTER TABLE {} ADD COLUMN exceptions BIGINT NOT NULL DEFAULT 0, ADD COLUMN truncated BIGINT NOT NULL DEFAULT 0",
            control.table("segment_loads")
        );
        exec(c, &alter, "adding the exception counts to Ferry's segment markers").await?;
    }
    Ok(())
}

/// What the encoder task hands back once the server has read the stream.
#[derive(Default)]
struct Encoded {
    /// Rows sent to the server (exceptions not counted).
    sent: u64,
    exceptions: Vec<(String, String)>,
    source_error: Option<ConnectorError>,
}

/// Rows of the value model into `t` (as the target declares it).
pub async fn load_rows(
    run: &Run,
    ep: &Endpoint,
    t: &TableSchema,
    seg: Segment<'_>,
    mut rows: Rows,
    progress: Progress,
) -> Result<WorkResult, ConnectorError> {
    let (segment, name) = (seg.number, t.display_name());
    let ctx = |what: &str| format!("table {name} segment {segment}: {what}");
    let (task, epoch) = (&run.task, run.epoch);
    let table_key = t.qualified();
    let mut c = target_session(ep).await?;
    let q = |what: &'static str| move |e| classify(ctx(what), e);
    // The LOAD's stream pauses while the source is slow or a large value
    // is read and encoded (see STREAM_STALL_S).
    c.query_drop(format!(
        "SET SESSION net_read_timeout = {STREAM_STALL_S}; START TRANSACTION"
    ))
    .await
    .map_err(q("BEGIN on target"))?;
    let attempt = fence::Attempt {
        task,
        control: &run.control,
        table: &table_key,
        segment,
        epoch,
        gen: seg.gen,
        position: seg.position.clone(),
    };
    if let fence::Fenced::AlreadyLoaded(done) = fence::take(&mut c, &attempt).await? {
        return Ok(done);
    }
    if seg.replace && *seg.bounds == SegmentBounds::All {
        exec(
            &mut c,
            &format!("DELETE FROM {}", t.qualified()),
            &ctx("clearing the table on the target"),
        )
        .await?;
    }
    let replace = if seg.replace { " REPLACE" } else { "" };

    // The encoder runs beside the LOAD: it pulls source batches, encodes
    // them, and hands chunks to the server through a bounded channel.
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
    let result = Arc::new(Mutex::new(Encoded::default()));
    let limit = exception_limit(seg.data_errors);
    let encoder = {
        let result = result.clone();
        let progress = progress.clone();
        let (task, name) = (task.clone(), name.clone());
        tokio::spawn(async move {
            let mut buf: Vec<u8> = Vec::with_capacity(160 * 1024);
            let mut sent = 0u64;
            let mut exceptions = vec![];
            let mut failed = None;
            while let Some(batch) = rows.next().await {
                let batch = match batch {
                    Ok(b) => b,
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                };
                for row in batch {
                    match crate::pipeline::rows::encode_row(&mut buf, &row, encode::row) {
                        Ok(()) => sent += 1,
                        Err(r) => exceptions.push((r.image, r.reason)),
                    }
                    // Handed over row by row once large: two LOB values of
                    // a batch are not held encoded at once.
                    if buf.len() >= 128 * 1024 {
                        progress.store(sent, Ordering::Relaxed);
                        crate::health::loaded(&task, &name, buf.len());
                        if tx.send(Ok(bytes::Bytes::from(std::mem::take(&mut buf)))).await.is_err() {
                            return;
                        }
                    }
                }
                if exceptions.len() > limit {
                    break;
                }
            }
            let abort = failed.is_some() || exceptions.len() > limit;
            let last = if abort {
                // Make the server fail the LOAD rather than commit a part.
                Err(std::io::Error::other("source stream failed"))
            } else {
                crate::health::loaded(&task, &name, buf.len());
                Ok(bytes::Bytes::from(buf))
            };
            let _ = tx.send(last).await;
            let mut r = result.lock().unwrap_or_else(|p| p.into_inner());
            r.sent = sent;
            r.exceptions = exceptions;
            r.source_error = failed;
        })
    };
    c.set_infile_handler(async move {
        // Each item the stream yields goes out as one protocol packet, which
        // the server refuses over its max_allowed_packet (dropping the
        // connection): a chunk holding a 1 GB row is cut into pieces, each
        // a view of the chunk, not a copy.
        let stream: mysql_async::InfileData = Box::pin(futures::stream::unfold(
            (rx, bytes::Bytes::new()),
            |(mut rx, mut rest)| async move {
                if rest.is_empty() {
                    match rx.recv().await? {
                        Ok(chunk) => rest = chunk,
                        Err(e) => return Some((Err(e), (rx, rest))),
                    }
                }
                let piece = rest.split_to(rest.len().min(INFILE_PIECE));
                Some((Ok(piece), (rx, rest)))
            },
        ));
        Ok(stream)
    });
    // The stream is read as bytes (binary and spatial values pass as they
    // are); text is UTF-8 in the value model, so the text columns of another
    // character set (latin1, ...) take it through CONVERT, which the server
    // then stores in the column's own set. A YEAR read from text takes '0'
    // for 2000, so YEAR columns take a number (0 is the year 0000). Asked
    // once per segment, so that the usual columns cost nothing per row.
    let special: Vec<(String, String)> = c
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS
              WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?
                AND (DATA_TYPE = 'year' OR CHARACTER_SET_NAME IS NOT NULL AND CHARACTER_SET_NAME NOT IN ('utf8mb4', 'binary'))",
            (t.schema.clone(), t.name.clone()),
        )
        .await
        .map_err(q("reading the target's column character sets"))?;
    let mut cols: Vec<String> = vec![];
    let mut sets: Vec<String> = vec![];
    for (i, col) in t.copy_columns().enumerate() {
        match special.iter().find(|(n, _)| *n == col.name) {
            Some((_, ty)) => {
                cols.push(format!("@v{i}"));
                let value = if ty.eq_ignore_ascii_case("year") {
                    format!("@v{i} + 0")
                } else {
                    format!("CONVERT(@v{i} USING utf8mb4)")
                };
                sets.push(format!("{} = {value}", quote_ident(&col.name)));
            }
            None => cols.push(quote_ident(&col.name)),
        }
    }
    let set = if sets.is_empty() {
        String::new()
    } else {
        format!(" SET {}", sets.join(", "))
    };
    let load = c
        .query_iter(format!(
            "LOAD DATA LOCAL INFILE 'ferry'{replace} INTO TABLE {} CHARACTER SET binary ({}){set}",
            t.qualified(),
            cols.join(", ")
        ))
        .await;
    let _ = encoder.await;
    let (sent, mut exceptions, source_error) = {
        let mut r = result.lock().unwrap_or_else(|p| p.into_inner());
        (r.sent, std::mem::take(&mut r.exceptions), r.source_error.take())
    };
    if let Some(e) = source_error {
        return Err(e);
    }
    if exceptions.len() > exception_limit(seg.data_errors) {
        let (image, reason) = exceptions.pop().unwrap_or_default();
        let last = crate::pipeline::rows::Rejected { image, reason };
        return Err(ConnectorError::stopped_by(
            seg.data_errors,
            ctx(&too_many_exceptions(seg.data_errors, &last)),
        ));
    }
    let load = load.map_err(q("LOAD DATA on target"))?;
    // REPLACE counts a replaced row twice in the affected rows; the info
    // line's "Records" counts the rows read.
    let records = load
        .info()
        .split("Records:")
        .nth(1)
        .and_then(|r| r.split_whitespace().next()?.parse::<u64>().ok());
    let (loaded, warnings) = (records.unwrap_or(load.affected_rows()), load.warnings());
    load.drop_result().await.map_err(q("LOAD DATA on target"))?;
    if warnings > 0 {
        // LOCAL loads turn data errors into warnings: any is a refusal.
        let w: Vec<(String, u32, String)> = c
            .query("SHOW WARNINGS LIMIT 3")
            .await
            .map_err(q("reading LOAD DATA warnings"))?;
        let shown: Vec<String> = w.into_iter().map(|(_, code, m)| format!("{m} ({code})")).collect();
        return Err(ConnectorError::Definite(ctx(&format!(
            "the target changed or refused {warnings} values: {}",
            shown.join("; ")
        ))));
    }
    // Every row the source sent for this range is stored or an exception.
    if loaded != sent {
        return Err(ConnectorError::Definite(ctx(&format!(
            "the source sent {sent} storable rows for this range but the target stored {loaded}"
        ))));
    }
    progress.store(loaded, Ordering::Relaxed);
    for (row, reason) in &exceptions {
        tracing::warn!(table = %name, segment, %reason, "row cannot be stored on the target; recorded in the control schema's apply_exceptions");
        c.exec_drop(
            format!(
                "INSERT INTO {} (task, table_name, phase, reason, row_image) VALUES (?, ?, 'full load', ?, ?)",
                run.control.table("apply_exceptions")
            ),
            (task.clone(), t.display_name(), reason.clone(), row.clone()),
        )
        .await
        .map_err(q("recording an exception"))?;
    }
    let cuts = crate::pipeline::rows::take_cuts(&seg.cuts);
    for (key, reason) in &cuts {
        c.exec_drop(
            format!(
                "INSERT INTO {} (task, table_name, phase, reason, row_image) VALUES (?, ?, 'full load', ?, ?)",
                run.control.table("apply_exceptions")
            ),
            (task.clone(), t.display_name(), reason.clone(), key.clone()),
        )
        .await
        .map_err(q("recording a cut LOB value"))?;
    }
    if !cuts.is_empty() {
        tracing::warn!(table = %name, segment, rows = cuts.len(), "LOB values cut to the task's limit; recorded in the control schema's apply_exceptions");
    }
    c.exec_drop(
        format!(
            "UPDATE {} SET `rows` = ?, exceptions = ?, truncated = ? WHERE task = ? AND table_name = ? AND segment = ?",
            run.control.table("segment_loads")
        ),
        (
            loaded,
            exceptions.len() as u64,
            cuts.len() as u64,
            task.clone(),
            table_key.clone(),
            segment,
        ),
    )
    .await
    .map_err(q("updating segment marker"))?;
    crate::failpoint::pause("before-commit").await;
    c.query_drop("COMMIT")
        .instrument(tracing::info_span!("commit"))
        .await
        .map_err(q("COMMIT on target"))?;
    crate::failpoint::pause("after-commit").await;
    Ok(WorkResult::Loaded {
        rows: loaded,
        already_loaded: false,
        exceptions: exceptions.len() as u64,
        truncated: cuts.len() as u64,
        position: seg.position.clone(),
    })
}

/// The statements that turn the target table `previous` (as Ferry created
/// it) into `t`, both already in MySQL's types, given the columns the
/// target has now (`existing`): MySQL commits each ALTER by itself, so a
/// retry finds some of them done.
fn reshape(t: &TableSchema, previous: &TableSchema, existing: &[String]) -> Vec<String> {
    let table = t.qualified();
    let has = |c: &str| existing.iter().any(|e| e.eq_ignore_ascii_case(c));
    let changes = t.column_changes(previous);
    let mut out = vec![];
    for c in changes.dropped.into_iter().filter(|c| has(c)) {
        out.push(format!("ALTER TABLE {table} DROP COLUMN {}", quote_ident(c)));
    }
    for c in changes.added.into_iter().filter(|c| !has(&c.name)) {
        out.push(format!("ALTER TABLE {table} ADD COLUMN {}", column_def(c)));
    }
    for c in changes.changed {
        out.push(format!("ALTER TABLE {table} MODIFY COLUMN {}", column_def(c)));
    }
    out
}

/// Empties a table for a reload in generation `gen`, reshaping its columns
/// afterwards when they changed on the source (`previous`: the table as the
/// target has it; `replace`: whatever the target has of that name goes). Like the PostgreSQL reset it first takes the CDC apply
/// state over with its own epoch, so a revoked stream commits nothing more.
pub async fn reset_table(
    run: &Run,
    ep: &Endpoint,
    t: &TableSchema,
    gen: u64,
    previous: Option<&TableSchema>,
    replace: bool,
) -> Result<WorkResult, ConnectorError> {
    let task = &run.task;
    let name = t.display_name();
    // Everything here touches the target: its names are the target form's.
    let target_name = on_target(t, Engine::Mysql)?.qualified();
    let mut c = target_session(ep).await?;
    let q = |what: &str| {
        let what = format!("table {name}: {what}");
        move |e| classify(what, e)
    };
    // Prepare created Ferry's control tables, ferry.apply_state among them.
    // A previous definition without columns: the target has no such table.
    if replace {
        let drop = format!("DROP TABLE IF EXISTS {}", target_name.clone());
        exec(&mut c, &drop, &format!("table {name}: replacing it")).await?;
    }
    if previous.is_some_and(|p| p.columns.is_empty()) {
        let now = on_target(t, Engine::Mysql)?;
        let db = format!("CREATE DATABASE IF NOT EXISTS {}", quote_ident(&now.schema));
        exec(&mut c, &db, &format!("creating database {}", now.schema)).await?;
        exec(&mut c, &create_table(&now), &format!("table {name}: creating it")).await?;
    }
    c.query_drop("START TRANSACTION").await.map_err(q("BEGIN"))?;
    super::target::fence(&mut c, run).await?;
    c.exec_drop(
        format!(
            "INSERT INTO {} (task, table_name, gen) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE gen = GREATEST(gen, VALUES(gen))",
            run.control.table("table_loads")
        ),
        (task.clone(), target_name.clone(), gen),
    )
    .await
    .map_err(q("raising its load generation"))?;
    c.query_drop(format!("DELETE FROM {}", target_name.clone()))
        .await
        .map_err(q("emptying for reload"))?;
    c.exec_drop(
        format!(
            "DELETE FROM {} WHERE task = ? AND table_name = ?",
            run.control.table("segment_loads")
        ),
        (task, target_name.clone()),
    )
    .await
    .map_err(q("clearing segment markers"))?;
    c.query_drop("COMMIT").await.map_err(q("COMMIT of reset"))?;
    if let Some(previous) = previous.filter(|p| !p.columns.is_empty()) {
        let (now, was) = (on_target(t, Engine::Mysql)?, on_target(previous, Engine::Mysql)?);
        let existing: Vec<String> = c
            .exec(
                "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (now.schema.clone(), now.name.clone()),
            )
            .await
            .map_err(q("reading its columns"))?;
        for stmt in reshape(&now, &was, &existing) {
            exec(
                &mut c,
                &stmt,
                &format!("table {name}: reshaping for the source's columns ({stmt})"),
            )
            .await?;
        }
    }
    Ok(WorkResult::Done)
}

/// Secondary indexes after the load (in one ALTER, so InnoDB sorts once
/// per index without rebuilding the table for each).
pub async fn post_data(ep: &Endpoint, t: &TableSchema) -> Result<(), ConnectorError> {
    let t = crate::engine::on_target(t, ferry_common::endpoint::Engine::Mysql)?;
    let mut c = target_session(ep).await?;
    let existing: Vec<String> = c
        .exec(
            "SELECT DISTINCT INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (t.schema.clone(), t.name.clone()),
        )
        .await
        .map_err(|e| classify(format!("reading indexes of {}", t.display_name()), e))?;
    let mut adds = vec![];
    for idx in t.index_list.iter().filter(|i| !existing.contains(&i.name)) {
        let cols: Vec<String> = idx
            .columns
            .iter()
            .map(|c| match c.prefix {
                Some(p) => format!("{}({p})", quote_ident(&c.name)),
                None => quote_ident(&c.name),
            })
            .collect();
        let kind = match (idx.method.as_str(), idx.unique) {
            ("FULLTEXT", _) => "FULLTEXT INDEX",
            ("SPATIAL", _) => "SPATIAL INDEX",
            (_, true) => "UNIQUE INDEX",
            _ => "INDEX",
        };
        adds.push(format!("ADD {kind} {} ({})", quote_ident(&idx.name), cols.join(", ")));
    }
    if !adds.is_empty() {
        exec(
            &mut c,
            &format!("ALTER TABLE {} {}", t.qualified(), adds.join(", ")),
            &format!("building indexes on {}", t.display_name()),
        )
        .await?;
    }
    exec(
        &mut c,
        &format!("ANALYZE TABLE {}", t.qualified()),
        &format!("analyzing {}", t.display_name()),
    )
    .await
}

/// Runs a reviewed DDL file statement by statement on a plain session (no
/// ANSI_QUOTES: the file sets what it needs), naming the object that fails.
async fn run_script(ep: &Endpoint, file: &str, sql: &str) -> Result<(), ConnectorError> {
    let mut c = super::connect(ep).await?;
    for (object, chunk) in crate::schema::script::chunks(file, sql) {
        for stmt in crate::schema::script::mysql_statements(chunk) {
            c.query_drop(stmt)
                .await
                .map_err(|e| classify(format!("{file}, object {object}"), e))?;
        }
    }
    Ok(())
}

/// Runs a reviewed post-data file object by object: an object the target
/// refuses is recorded in `ferry.apply_exceptions` and returned, and the
/// rest still run (the loaded rows do not depend on a view or a trigger).
async fn run_post_data(run: &Run, ep: &Endpoint, sql: &str) -> Result<Vec<(String, String)>, ConnectorError> {
    let file = "post-data.sql";
    let mut c = super::connect(ep).await?;
    let mut failed = vec![];
    for (object, chunk) in crate::schema::script::chunks(file, sql) {
        for stmt in crate::schema::script::mysql_statements(chunk) {
            if let Err(e) = c.query_drop(stmt).await {
                let mysql_async::Error::Server(s) = &e else {
                    return Err(classify(format!("{file}, object {object}"), e));
                };
                let error = format!("{} (MySQL error {})", s.message, s.code);
                tracing::warn!(%object, %error, "post-data object refused by the target; the load stands");
                c.exec_drop(
                    format!(
                        "INSERT INTO {} (task, table_name, phase, reason, row_image) VALUES (?, ?, 'post-data', ?, ?)",
                        run.control.table("apply_exceptions")
                    ),
                    (run.task.clone(), object.clone(), error.clone(), chunk.to_string()),
                )
                .await
                .map_err(|e| classify("recording a refused post-data object", e))?;
                failed.push((object.clone(), error));
                break;
            }
        }
    }
    Ok(failed)
}

/// Foreign keys, once every table is loaded (or a reviewed post-data.sql).
pub async fn finalize(
    run: &Run,
    ep: &Endpoint,
    fks: &[(String, Constraint)],
    post_data_sql: Option<&str>,
) -> Result<WorkResult, ConnectorError> {
    let failed_objects = match post_data_sql {
        Some(sql) => run_post_data(run, ep, sql).await?,
        None => vec![],
    };
    let mut c = target_session(ep).await?;
    for (table, con) in fks {
        if con.definition.contains("DEFERRABLE") || con.definition.contains("MATCH ") {
            tracing::warn!(table = %table, constraint = %con.name, "foreign key not created: MySQL cannot declare a deferrable or MATCH FULL key");
            continue;
        }
        let found: Option<u8> = c
            .exec_first(
                "SELECT 1 FROM information_schema.TABLE_CONSTRAINTS WHERE CONSTRAINT_TYPE = 'FOREIGN KEY' AND CONSTRAINT_NAME = ? AND CONCAT('\"', TABLE_SCHEMA, '\".\"', TABLE_NAME, '\"') = ?",
                (con.name.clone(), table.clone()),
            )
            .await
            .map_err(|e| classify("reading target catalog", e))?;
        if found.is_none() {
            exec(
                &mut c,
                &format!(
                    "ALTER TABLE {table} ADD CONSTRAINT {} {}",
                    quote_ident(&con.name),
                    con.definition
                ),
                &format!("adding foreign key {} on {table}", con.name),
            )
            .await?;
        }
    }
    Ok(WorkResult::Finalized { failed_objects })
}

/// The segment fence's primitives in a MySQL target transaction (InnoDB,
/// READ COMMITTED; see `pipeline::fence`).
impl SegmentFence for Conn {
    async fn table_generation(&mut self, a: &Attempt<'_>) -> Result<u64, ConnectorError> {
        let (task, table, loads) = (a.task, a.table, a.control.table("table_loads"));
        let q = |what: &str| {
            let what = format!("table {table}: {what}");
            move |e| classify(what, e)
        };
        self.exec_drop(
            format!("INSERT IGNORE INTO {loads} (task, table_name, gen) VALUES (?, ?, 0)"),
            (task, table),
        )
        .await
        .map_err(q("registering the table load"))?;
        let gen: Option<i64> = self
            .exec_first(
                format!("SELECT gen FROM {loads} WHERE task = ? AND table_name = ? LOCK IN SHARE MODE"),
                (task, table),
            )
            .await
            .map_err(q("reading the table's load generation"))?;
        Ok(gen.unwrap_or(0) as u64)
    }

    async fn insert_marker(&mut self, a: &Attempt<'_>) -> Result<Marker, ConnectorError> {
        let (task, table, segment) = (a.task, a.table, a.segment);
        let q = |what: &str| {
            let what = format!("table {table} segment {segment}: {what}");
            move |e| classify(what, e)
        };
        self.query_drop("SAVEPOINT fence").await.map_err(q("SAVEPOINT"))?;
        let inserted = self
            .exec_drop(
                format!(
                    "INSERT INTO {} (task, table_name, segment, epoch, position) VALUES (?, ?, ?, ?, ?)",
                    a.control.table("segment_loads")
                ),
                (
                    task,
                    table,
                    segment,
                    a.epoch,
                    a.position.as_ref().map(|p| p.to_string()),
                ),
            )
            .await;
        match inserted {
            Ok(()) => Ok(Marker::Inserted),
            // ER_DUP_ENTRY
            Err(mysql_async::Error::Server(s)) if s.code == 1062 => {
                self.query_drop("ROLLBACK TO SAVEPOINT fence")
                    .await
                    .map_err(q("ROLLBACK TO SAVEPOINT"))?;
                Ok(Marker::Taken)
            }
            Err(e) => Err(q("writing segment marker")(e)),
        }
    }

    async fn read_marker(&mut self, a: &Attempt<'_>) -> Result<Committed, ConnectorError> {
        let (task, table, segment, markers) = (a.task, a.table, a.segment, a.control.table("segment_loads"));
        let marker: Option<(Option<i64>, Option<String>, i64, i64)> = self
            .exec_first(
                format!(
                    "SELECT `rows`, position, exceptions, truncated FROM {markers} WHERE task = ? AND table_name = ? AND segment = ?"
                ),
                (task, table, segment),
            )
            .await
            .map_err(|e| classify(format!("table {table} segment {segment}: reading segment marker"), e))?;
        let (rows, position, exceptions, truncated) = marker.unwrap_or((None, None, 0, 0));
        let position = crate::engine::stored_position(
            position,
            format_args!("table {table} segment {segment}: {markers}.position"),
        )?;
        Ok(Committed {
            rows: rows.map(|r| r as u64),
            exceptions: exceptions as u64,
            truncated: truncated as u64,
            position,
        })
    }
}
