//! MySQL / MariaDB change data capture from the binary log: prerequisite
//! checks, binlog positions, the snapshot handoff, and the stream that
//! decodes ROW events into the value model and hands them to the applier
//! (`pipeline/apply`).
//!
//! ## Positions
//! A binlog position `name.NNNNNN:offset` is a [`Coord`] (file number,
//! offset), a `Position::Binlog` outside this engine. A transaction's
//! position is where its first event (GTID, or BEGIN) starts; its end is
//! where the next one starts. The target's `apply_state.position` is the end of the last
//! applied transaction, and a resumed stream starts reading there.
//!
//! ## Handoff from the full load — why it is exact
//! MySQL cannot share a snapshot between connections, so each segment is
//! read in its own `START TRANSACTION WITH CONSISTENT SNAPSHOT` and notes
//! the binlog position of that snapshot (MariaDB: `binlog_snapshot_file` /
//! `_position`, taken atomically with the snapshot; MySQL 8: read under a
//! brief `FLUSH TABLES WITH READ LOCK`). InnoDB commits in binlog order, so
//! the snapshot holds exactly the transactions that end at or before that
//! position.
//! - A table read in one segment (every table without a primary key) gets
//!   that position as its `apply_from`: transactions starting at or after it
//!   are applied, earlier ones are in the rows. A cut by transaction, exact
//!   even for duplicate rows.
//! - A table read in several segments applies from the position noted before
//!   any of them was read, which precedes every segment's snapshot. A change
//!   replayed onto a row whose segment already holds it is harmless because
//!   the applier's writes are idempotent per key (upserts, deletes by key):
//!   after the replay each key holds what its last change left, which is the
//!   source's row.
//!
//! ## DDL
//! A statement in the binlog that names a replicated table (ALTER, DROP,
//! RENAME, CREATE ... LIKE, ...) stops that table's apply with the statement
//! as the reason; so does a TABLE_MAP whose column count differs from the
//! introspected table, at the first row that would be applied. Rows are
//! never applied against a stale column layout. Except after DROP TABLE,
//! the stop is reported as the table being altered, and the coordinator may
//! reload it in its new shape (HandleSourceTableAltered). After DROP TABLE
//! the table leaves the stream at that very event (what follows under its
//! name is another table's), dropped on the target or kept
//! (HandleSourceTableDropped). Either way everything before the statement
//! is committed and the coordinator has stored the news before the
//! committed position passes it: a stream restarted past a DDL the
//! coordinator never heard of would decode rows with a stale layout.
//! TRUNCATE is applied.

use super::charset::{self, Charset};
use super::position::{current_position, Coord};
use super::{classify, connect, query_text, tablemap};
use crate::engine::source::ChangeStream;
use crate::engine::{ConnectorError, Run};
use crate::pipeline::apply::{whole, Applier, Op, TargetTable};
use crate::report::Reporter;
use ferry_common::endpoint::Endpoint;
use ferry_common::position::Position;
use ferry_common::stop::CdcStop;
use ferry_common::typemap::{mysql_kind, Kind, MysqlType};
use ferry_common::value::{Value, ValueError};
use ferry_common::work::{ProgressDetail, TableRef, WorkResult};
use futures::{FutureExt, StreamExt};
use mysql_async::binlog::events::{EventData, RowsEventData, TableMapEvent};
use mysql_async::binlog::value::BinlogValue;
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStreamRequest, Conn};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Binlog event type codes handled by number (MariaDB's are not decoded by
/// mysql_common).
const QUERY: u8 = 2;
const ROTATE: u8 = 4;
const XID: u8 = 16;
const TABLE_MAP: u8 = 19;
const MYSQL_GTID: u8 = 33;
const MYSQL_ANONYMOUS_GTID: u8 = 34;
const MARIADB_GTID: u8 = 162;
const HEARTBEAT: u8 = 27;

/// The row events the stream decodes (v1, v2, MySQL's partial JSON update).
/// Only these and the types matched by name are handed to the library's
/// decoder: it aborts the process on some malformed events of other types
/// (a PREVIOUS_GTIDS count it allocates for unchecked, found by fuzzing),
/// and an abort, unlike a panic, cannot be caught.
fn is_rows_event(ty: u8) -> bool {
    matches!(ty, 23..=25 | 30..=32 | 39)
}

/// Server variables the binlog reader depends on.
async fn variables(c: &mut Conn) -> Result<HashMap<String, String>, ConnectorError> {
    let rows = query_text(
        c,
        "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('log_bin', 'binlog_format', 'binlog_row_image',
           'server_id', 'expire_logs_days', 'binlog_expire_logs_seconds', 'log_bin_basename', 'version')",
        (),
        "reading the source's binlog settings",
    )
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            Some((
                r.first()?.clone()?.to_ascii_lowercase(),
                r.get(1)?.clone().unwrap_or_default(),
            ))
        })
        .collect())
}

/// Binlog CDC's prerequisites on the source, each failure a one-line error
/// saying what to change.
pub async fn check_prerequisites(c: &mut Conn) -> Result<(), ConnectorError> {
    let v = variables(c).await?;
    let get = |k: &str| v.get(k).map(String::as_str).unwrap_or("");
    let mut problems = vec![];
    if !get("log_bin").eq_ignore_ascii_case("ON") {
        problems.push("binary logging is off (log_bin=OFF): start the server with --log-bin".to_string());
    }
    if !get("binlog_format").eq_ignore_ascii_case("ROW") {
        problems.push(format!("binlog_format is {}, ROW is required", get("binlog_format")));
    }
    if !get("binlog_row_image").eq_ignore_ascii_case("FULL") {
        problems.push(format!(
            "binlog_row_image is {}, FULL is required",
            get("binlog_row_image")
        ));
    }
    if get("server_id") == "0" {
        problems.push("server_id is 0: a server that writes a binlog needs a non-zero server_id".into());
    }
    // Retention: 0 means binlogs never expire.
    let days: f64 = get("expire_logs_days").parse().unwrap_or(0.0);
    let secs: f64 = get("binlog_expire_logs_seconds").parse().unwrap_or(0.0);
    let retention = if secs > 0.0 { secs } else { days * 86400.0 };
    if retention > 0.0 && retention < 3600.0 {
        problems.push(format!(
            "binlogs expire after {retention:.0} s, too soon to outlive a full load: set binlog_expire_logs_seconds to at least 86400 (or 0)"
        ));
    } else if retention > 0.0 && retention < 86400.0 {
        tracing::warn!(
            retention_s = retention,
            "binlogs expire in less than a day; a long full load or pause may outlive them"
        );
    }
    let grants = query_text(c, "SHOW GRANTS", (), "reading the source user's privileges").await?;
    let grants: String = grants
        .into_iter()
        .flatten()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_uppercase();
    let all = grants.contains("ALL PRIVILEGES ON *.*");
    if !all && !grants.contains("REPLICATION SLAVE") && !grants.contains("REPLICATION REPLICA") {
        problems.push("the source user lacks REPLICATION SLAVE (needed to read the binlog)".into());
    }
    if !all
        && !["REPLICATION CLIENT", "BINLOG MONITOR", "SUPER"]
            .iter()
            .any(|p| grants.contains(p))
    {
        problems.push("the source user lacks REPLICATION CLIENT (needed to read binlog positions)".into());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ConnectorError::Definite(format!(
            "the source is not ready for binlog CDC: {}",
            problems.join("; ")
        )))
    }
}

/// The file number in a rotate event's name. The decoded name can run on
/// into the event's checksum bytes (mysql_async #189), so it is read as the
/// server's base name, a dot and exactly as many digits as its files have.
fn rotated_seq(name: &str, base: &str, digits: usize) -> Result<u32, ConnectorError> {
    name.strip_prefix(base)
        .and_then(|rest| rest.strip_prefix('.'))
        .and_then(|rest| rest.get(..digits))
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| {
            ConnectorError::Definite(format!(
                "binlog rotate to '{}', not a file of this server ({base}.{})",
                name.escape_debug(),
                "N".repeat(digits)
            ))
        })
}

/// CreateSlot for a MySQL source: nothing to create (the binlog is the
/// server's), only the prerequisites and the position changes start from.
pub async fn create(source: &Endpoint) -> Result<WorkResult, ConnectorError> {
    let mut c = connect(source).await?;
    check_prerequisites(&mut c).await?;
    let (file, consistent_point) = current_position(&mut c).await?;
    tracing::info!(%file, position = %consistent_point, "binlog CDC starts here");
    Ok(WorkResult::SlotReady {
        consistent_point: consistent_point.into(),
        insert_only: vec![],
    })
}

/// HoldSnapshot for a MySQL source: segments open their own snapshots, so
/// the holder only publishes the position every segment's snapshot follows
/// (multi-segment tables apply from it) and waits to be revoked.
pub async fn hold(source: &Endpoint, reporter: &Reporter) -> Result<WorkResult, ConnectorError> {
    let mut c = connect(source).await?;
    let (_, lsn) = current_position(&mut c).await?;
    drop(c);
    reporter
        .report(&ProgressDetail::Snapshot {
            name: String::new(),
            lsn: lsn.into(),
        })
        .await?;
    std::future::pending().await
}

/// The value model form of one binlog column value, through the text form
/// the full load decodes (so both paths agree on every edge: zero dates,
/// YEAR, TIMESTAMP in UTC).
fn decode_value(column: &Column, v: Option<BinlogValue>) -> Result<Value<'static>, ValueError> {
    use mysql_async::Value as M;
    let (t, kind) = (MysqlType::parse(&column.type_sql), column.kind);
    let text = |s: String| Some(M::Bytes(s.into_bytes()));
    let mut raw = match v {
        None => {
            return Err(ValueError(
                "column missing from the row image (binlog_row_image is not FULL)".into(),
            ))
        }
        Some(BinlogValue::Jsonb(j)) => {
            let json = serde_json::Value::try_from(j).map_err(|e| ValueError(format!("binary JSON: {e}")))?;
            text(json.to_string())
        }
        Some(BinlogValue::JsonDiff(_)) => {
            return Err(ValueError(
                "partial JSON update in the binlog (binlog_row_value_options=PARTIAL_JSON) cannot be replayed".into(),
            ))
        }
        Some(BinlogValue::Value(v)) => match v {
            M::NULL => return Ok(Value::Null),
            M::Int(i) => match t.base.as_str() {
                "enum" => text(enum_label(&t, i as u64)?),
                "timestamp" => text(utc_text(i, 0)),
                // Without binlog_row_metadata=FULL the server does not say
                // which columns are unsigned: widen by the declared type.
                _ if t.unsigned && i < 0 => text(unsigned(&t.base, i).to_string()),
                // mysql_common reads a signed 3-byte integer without its sign.
                "mediumint" if !t.unsigned && i >= 1 << 23 => text((i - (1 << 24)).to_string()),
                _ => text(i.to_string()),
            },
            M::UInt(u) => text(u.to_string()),
            M::Float(f) => return Ok(Value::Float(f)),
            M::Double(d) => {
                return Ok(if kind == Kind::Float {
                    Value::Float(d as f32)
                } else {
                    Value::Double(d)
                })
            }
            M::Date(y, mo, d, h, mi, s, us) => {
                if t.base == "date" {
                    text(format!("{y:04}-{mo:02}-{d:02}"))
                } else {
                    text(format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{us:06}"))
                }
            }
            M::Time(neg, days, h, m, s, us) => {
                let hours = days as u64 * 24 + h as u64;
                text(format!("{}{hours}:{m:02}:{s:02}.{us:06}", if neg { "-" } else { "" }))
            }
            M::Bytes(b) => match t.base.as_str() {
                "timestamp" => {
                    let s = String::from_utf8_lossy(&b).into_owned();
                    let (sec, frac) = s.split_once('.').unwrap_or((&s, "0"));
                    let sec: i64 = sec.parse().map_err(|_| ValueError(format!("TIMESTAMP '{s}'")))?;
                    let us: u32 = format!("{frac:0<6}")[..6].parse().unwrap_or(0);
                    text(utc_text(sec, us))
                }
                "set" => text(set_labels(&t, &b)?),
                // The binlog drops BINARY(n)'s trailing zero bytes; the
                // column holds them, and the full load reads them.
                "binary" => {
                    let mut b = b;
                    let n = t.args.and_then(|a| a.trim().parse::<usize>().ok()).unwrap_or(1);
                    if b.len() < n {
                        b.resize(n, 0);
                    }
                    Some(M::Bytes(b))
                }
                _ if kind == Kind::Text => match &column.charset {
                    Some(cs) => text(cs.decode(&b)?),
                    None => Some(M::Bytes(b)),
                },
                // mysql_common adds 1900 to YEAR's byte; the byte 0 is year 0000.
                "year" if b == b"1900" => text("0".into()),
                _ => Some(M::Bytes(b)),
            },
        },
    };
    super::read::decode(kind, &mut raw)
}

fn unsigned(base: &str, i: i64) -> u64 {
    match base {
        "tinyint" => i as u8 as u64,
        "smallint" => i as u16 as u64,
        "mediumint" => (i as u32 & 0xff_ffff) as u64,
        "int" | "integer" => i as u32 as u64,
        _ => i as u64,
    }
}

/// The labels of an ENUM or SET column type, in declaration order.
fn labels(t: &MysqlType) -> Vec<String> {
    let mut out = vec![];
    let args = t.args.unwrap_or("");
    let mut chars = args.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\'' {
            continue;
        }
        let mut s = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\'' if chars.peek() == Some(&'\'') => {
                    chars.next();
                    s.push('\'');
                }
                '\'' => break,
                '\\' => {
                    if let Some(n) = chars.next() {
                        s.push(n);
                    }
                }
                c => s.push(c),
            }
        }
        out.push(s);
    }
    out
}

fn enum_label(t: &MysqlType, index: u64) -> Result<String, ValueError> {
    // Index 0 is the empty string MySQL stores for an invalid value.
    if index == 0 {
        return Ok(String::new());
    }
    labels(t).into_iter().nth(index as usize - 1).ok_or_else(|| {
        ValueError(format!(
            "ENUM index {index} is beyond the column's labels (DDL not seen?)"
        ))
    })
}

fn set_labels(t: &MysqlType, mask: &[u8]) -> Result<String, ValueError> {
    let labels = labels(t);
    let mut out = vec![];
    for (i, l) in labels.iter().enumerate() {
        if mask.get(i / 8).is_some_and(|b| b >> (i % 8) & 1 == 1) {
            out.push(l.as_str());
        }
    }
    Ok(out.join(","))
}

/// Unix seconds as MySQL's text for a TIMESTAMP in a +00:00 session
/// (0 is the zero timestamp).
fn utc_text(secs: i64, us: u32) -> String {
    if secs == 0 && us == 0 {
        return "0000-00-00 00:00:00".into();
    }
    let (y, m, d, hh, mi, ss) = ferry_common::civil_utc(secs);
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mi:02}:{ss:02}.{us:06}")
}

/// A source column as the stream decodes it.
struct Column {
    type_sql: String,
    kind: Kind,
    /// The column's character set when it is not UTF-8.
    charset: Option<Arc<Charset>>,
}

/// A replicated table as the stream decodes it.
struct Source {
    columns: Vec<Column>,
    apply_from: Coord,
}

/// Decodes a row image; `times` are the TIME columns whose bytes the table
/// map handed over raw (see `tablemap`).
fn decode_row(
    s: &Source,
    times: &[Option<tablemap::Time>],
    row: Option<mysql_async::binlog::row::BinlogRow>,
) -> Result<Vec<Value<'static>>, ValueError> {
    use mysql_async::Value as M;
    let mut row = row.ok_or_else(|| ValueError("row image missing".into()))?;
    if row.len() != s.columns.len() {
        return Err(ValueError(format!(
            "the binlog row has {} columns, the table {}",
            row.len(),
            s.columns.len()
        )));
    }
    (0..row.len())
        .map(|i| {
            let mut v = row.take(i).map(BinlogValue::into_owned);
            if let (Some(layout), Some(BinlogValue::Value(M::Bytes(b)))) = (times.get(i).copied().flatten(), &v) {
                v = Some(BinlogValue::Value(M::Bytes(
                    layout.text(b).map_err(ValueError)?.into_bytes(),
                )));
            }
            decode_value(&s.columns[i], v)
        })
        .collect()
}

/// Identifiers a statement names, unquoted and lower-cased, each with the
/// one before it when they are joined by a dot (`db.t`).
fn named_tables(sql: &str) -> Vec<(Option<String>, String)> {
    let mut idents: Vec<(String, bool)> = vec![]; // (name, preceded by '.')
    let mut chars = sql.chars().peekable();
    let mut dot = false;
    while let Some(c) = chars.next() {
        match c {
            '`' | '"' => {
                let mut s = String::new();
                while let Some(n) = chars.next() {
                    if n == c {
                        if chars.peek() == Some(&c) {
                            chars.next();
                            s.push(c);
                            continue;
                        }
                        break;
                    }
                    s.push(n);
                }
                idents.push((s.to_lowercase(), dot));
                dot = false;
            }
            '\'' => {
                // Skip string literals.
                while let Some(n) = chars.next() {
                    if n == '\\' {
                        chars.next();
                    } else if n == '\'' {
                        break;
                    }
                }
                dot = false;
            }
            '.' => dot = true,
            c if c.is_alphanumeric() || c == '_' || c == '$' => {
                let mut s = c.to_string();
                while let Some(&n) = chars.peek() {
                    if n.is_alphanumeric() || n == '_' || n == '$' {
                        s.push(n);
                        chars.next();
                    } else {
                        break;
                    }
                }
                idents.push((s.to_lowercase(), dot));
                dot = false;
            }
            c if c.is_whitespace() => {}
            _ => dot = false,
        }
    }
    let mut out = vec![];
    for i in 0..idents.len() {
        let (name, after_dot) = &idents[i];
        if *after_dot && i > 0 {
            out.push((Some(idents[i - 1].0.clone()), name.clone()));
        } else {
            out.push((None, name.clone()));
        }
    }
    out
}

/// A TABLE_MAP as rows are decoded with it: the replicated table it maps
/// (none: a table not in the task), and its TIME columns' layouts (see
/// `tablemap`).
struct Mapped {
    table: Option<usize>,
    map: TableMapEvent<'static>,
    times: Vec<Option<tablemap::Time>>,
    /// Why rows of this map cannot be applied to the table, if they cannot.
    /// The table stops at the first row that would be applied: a stream
    /// resumed after `reload-table` replays older maps (before the table's
    /// `apply_from`) of a layout the reloaded table no longer has.
    mismatch: Option<String>,
}

/// The transaction being read.
struct Txn {
    start: Coord,
    /// Applied by an earlier stream (starts before the resume position).
    skip: bool,
}

/// The next row image of a rows event. The library's decoders panic on
/// some malformed images (DECIMAL with impossible metadata: found by
/// fuzzing); that is an undecodable row, reported as such.
fn next_row<I: Iterator<Item = std::io::Result<T>>, T>(images: &mut I) -> Option<std::io::Result<T>> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| images.next())).unwrap_or_else(|_| {
        Some(Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the row image cannot be decoded with its table map",
        )))
    })
}

/// Whether another event is already buffered. A panic in the library's
/// reader counts as "yes": the next `stream.next()` meets it again and
/// fails the stream (see the comment there).
fn next_ready<S: futures::Stream>(stream: std::pin::Pin<&mut futures::stream::Peekable<S>>) -> bool {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        stream.peek().now_or_never().flatten().is_some()
    }))
    .unwrap_or(true)
}

/// How long the oldest InnoDB transaction that changed rows has been open,
/// in milliseconds (0: none, or no PROCESS privilege to see it). The
/// source latency keeps growing while one stays open, as DMS's does,
/// though the binlog holds nothing of it until it commits.
async fn open_transaction_ms(c: &mut Conn) -> u64 {
    c.query_first::<Option<i64>, _>(
        "SELECT TIMESTAMPDIFF(MICROSECOND, MIN(trx_started), NOW(6)) DIV 1000
           FROM information_schema.INNODB_TRX
          WHERE trx_rows_modified > 0 AND trx_mysql_thread_id <> CONNECTION_ID()",
    )
    .await
    .ok()
    .flatten()
    .flatten()
    .map_or(0, |ms| ms.max(0) as u64)
}

fn server_id_for(task: &str) -> u32 {
    // Stable per task, so a second stream of the same task makes the server
    // drop the first one's dump thread; high bit set to stay clear of the
    // small ids servers are usually given.
    let mut h: u32 = 0x811c_9dc5;
    for b in task.bytes() {
        h = (h ^ b as u32).wrapping_mul(0x0100_0193);
    }
    0x8000_0000 | (h & 0x7fff_ffff)
}

/// Streams the binlog from `start` (or the target's committed position,
/// whichever is later) and applies the selected tables' changes, until
/// revoked.
pub async fn run(run: &Run, stream: ChangeStream<'_>, reporter: &Reporter) -> Result<WorkResult, ConnectorError> {
    let ChangeStream {
        source,
        target,
        tables,
        start,
        policy,
        lanes,
        stop,
        ..
    } = stream;
    let task = run.task.clone();
    let targets = tables
        .iter()
        .map(|t| TargetTable::new(&t.table, target.engine).map(|m| m.tracked(t.changes.clone())))
        .collect::<Result<Vec<_>, _>>()?;
    let mut sql = connect(source).await?;
    let names: Vec<(String, String)> = tables
        .iter()
        .map(|t| (t.table.schema.clone(), t.table.name.clone()))
        .collect();
    let charsets = charset::of_tables(&mut sql, &names).await?;
    let sources: Vec<Source> = tables
        .iter()
        .map(|t| -> Result<Source, ConnectorError> {
            Ok(Source {
                columns: t
                    .table
                    .columns
                    .iter()
                    .map(|c| Column {
                        type_sql: c.type_sql.clone(),
                        kind: mysql_kind(&c.type_sql),
                        charset: charsets
                            .get(&(
                                t.table.schema.to_lowercase(),
                                t.table.name.to_lowercase(),
                                c.name.to_lowercase(),
                            ))
                            .cloned(),
                    })
                    .collect(),
                apply_from: Coord::of_opt(t.apply_from.as_ref())?,
            })
        })
        .collect::<Result<_, _>>()?;
    let by_name: HashMap<(String, String), usize> = tables
        .iter()
        .enumerate()
        .map(|(i, t)| ((t.table.schema.to_lowercase(), t.table.name.to_lowercase()), i))
        .collect();
    let mut applier = Applier::open(run, target, targets, lanes).await?;
    applier.set_policy(&policy);
    crate::pipeline::stop::check_not_past(applier.applied.as_ref(), stop.as_ref())?;
    let from = Coord::of_opt(applier.applied.as_ref())?.max(Coord::of_opt(start.as_ref())?);

    let (current_file, _) = current_position(&mut sql).await?;
    let (base, digits) = match current_file.rsplit_once('.') {
        Some((b, n)) => (b.to_string(), n.len()),
        None => {
            return Err(ConnectorError::Definite(format!(
                "'{current_file}' is not a binlog file name"
            )))
        }
    };
    let (mut seq, offset) = (from.file, from.offset);
    let file = format!("{base}.{seq:0digits$}");
    let mut conn = connect(source).await?;
    // GTID events instead of BEGIN (MariaDB), and a heartbeat every second
    // when the binlog is idle, so a dead server is noticed.
    conn.query_drop("SET @mariadb_slave_capability = 4, @master_heartbeat_period = 1000000000")
        .await
        .map_err(|e| classify("preparing the binlog connection", e))?;
    let stream = conn
        .get_binlog_stream(
            BinlogStreamRequest::new(server_id_for(&task))
                .with_filename(file.as_bytes())
                .with_pos(offset.max(4)),
        )
        .await
        .map_err(|e| classify(format!("requesting the binlog from {file}:{offset}"), e))?;
    let mut stream = Box::pin(stream.peekable());
    tracing::info!(%file, offset, set_based = applier.set_based(), lanes = applier.lanes(), "binlog stream started");

    let mut table_maps: HashMap<u64, Mapped> = HashMap::new();
    let mut txn: Option<Txn> = None;
    // End of the last event read outside a transaction: every transaction
    // before it has been handed to the applier.
    let mut seen = from;
    let mut latency_source_ms = 0;
    // Binlog bytes received since the last report (handed to the worker's
    // series once per report, off the per-event path).
    let mut received: usize = 0;
    let mut last_gtid = String::new();
    let mut emitted_mark = applier.marks_reached;
    let mut marks: Vec<(u64, Coord)> = vec![];
    let mut last_report = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(1000));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Selected tables created on the source since, reported until stored.
    let mut new_tables: Vec<TableRef> = vec![];
    let mut last_discovery = Instant::now() - Duration::from_secs(60);
    let mut marks_reported = applier.marks_reached;
    let mut marks_wanted = reporter.mark_requests();
    // The end of the binlog once the source passed the stop position: an
    // idle stream that has read to it has every transaction before the stop
    // (one after it stops the stream at its GTID event first).
    let mut stop_at: Option<Coord> = match &stop {
        Some(CdcStop::Position(p)) => Some(Coord::of(p)?),
        _ => None,
    };
    // The stop, when a transaction beginning at `begin` (its events stamped
    // `secs`) that will be applied lies past it.
    let stop_before = |applies: bool, secs: u32, begin: Coord| {
        stop.as_ref()
            .filter(|st| applies && st.passed(u64::from(secs) * 1000, &begin.into()))
    };
    loop {
        // A mark just reached is reported at once (see `postgres/cdc/apply`),
        // and one whose position was read past is recorded at once.
        let idle = txn.is_none() && !applier.pending();
        if applier.marks_reached > marks_reported || idle && marks.iter().any(|(_, p)| *p <= seen) {
            marks_reported = applier.marks_reached;
            tick.reset_immediately();
        }
        tokio::select! {
            // mysql_common's event reader panics on some malformed events
            // (a truncated event, a short one with a checksum: found by
            // fuzzing, see `mod fuzz`); a panic is the source's bad input,
            // not Ferry's, and fails the stream with that said.
            ev = std::panic::AssertUnwindSafe(stream.next()).catch_unwind() => {
                let ev = match ev {
                    Err(_) => return Err(ConnectorError::Definite(format!(
                        "the binlog after {seen} holds an event the reader cannot parse (malformed or truncated)"
                    ))),
                    Ok(ev) => ev,
                };
                let ev = match ev {
                    None => return Err(ConnectorError::Transient("the source closed the binlog stream".into())),
                    Some(Err(e)) => return Err(classify("reading the binlog", e)),
                    Some(Ok(ev)) => ev,
                };
                let h = ev.header();
                received += h.event_size() as usize;
                let ty = h.event_type_raw();
                let end = Coord::new(seq, h.log_pos().into());
                let begin = Coord::new(seq, h.log_pos().saturating_sub(h.event_size()).into());
                match ty {
                    // Its position is the server's, not what was read.
                    HEARTBEAT => continue,
                    ROTATE => {
                        if let Ok(Some(EventData::RotateEvent(r))) = ev.read_data() {
                            seq = rotated_seq(&r.name(), &base, digits)?;
                        }
                        continue;
                    }
                    MYSQL_GTID | MYSQL_ANONYMOUS_GTID | MARIADB_GTID => {
                        if ty == MARIADB_GTID {
                            let d = ev.data();
                            if d.len() >= 13 {
                                let seq_no = u64::from_le_bytes(d[0..8].try_into().expect("8 bytes"));
                                let domain = u32::from_le_bytes(d[8..12].try_into().expect("4 bytes"));
                                last_gtid = format!("{domain}-{}-{seq_no}", h.server_id());
                            }
                        } else if let Ok(Some(EventData::GtidEvent(g))) = ev.read_data() {
                            let sid = g.sid();
                            let hex: String = sid.iter().map(|b| format!("{b:02x}")).collect();
                            last_gtid = format!("{}-{}-{}-{}-{}:{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..], g.gno());
                        }
                        latency_source_ms = ferry_common::now_ms().saturating_sub(h.timestamp() as u64 * 1000);
                        let skip = begin < from;
                        if let Some(stop) = stop_before(!skip, h.timestamp(), begin) {
                            return crate::pipeline::stop::halt(&mut applier, reporter, stop).await;
                        }
                        if !skip {
                            applier.begin_txn(h.timestamp() as u64 * 1000);
                        }
                        txn = Some(Txn { start: begin, skip });
                    }
                    TABLE_MAP => {
                        if let Ok(Some(EventData::TableMapEvent(tm))) = ev.read_data() {
                            let key = (tm.database_name().to_lowercase(), tm.table_name().to_lowercase());
                            let t = by_name.get(&key).copied();
                            let mismatch = t.and_then(|t| {
                                let width = sources[t].columns.len() as u64;
                                (tm.columns_count() != width).then(|| format!(
                                    "column layout changed on the source: the binlog has {} columns, the table had {width}",
                                    tm.columns_count()
                                ))
                            });
                            let id = tm.table_id();
                            let (tm, times) = tablemap::decodable(&ev, tm).map_err(|e| ConnectorError::Definite(format!(
                                "binlog table map of {}.{} at {end}: {e}", key.0, key.1
                            )))?;
                            table_maps.insert(id, Mapped { table: t, map: tm, times, mismatch });
                        }
                    }
                    QUERY => {
                        let Ok(Some(EventData::QueryEvent(q))) = ev.read_data() else { continue };
                        let stmt = q.query();
                        let head = stmt.trim_start().to_ascii_uppercase();
                        if head.starts_with("BEGIN") {
                            if txn.is_none() {
                                let skip = begin < from;
                                if let Some(stop) = stop_before(!skip, h.timestamp(), begin) {
                                    return crate::pipeline::stop::halt(&mut applier, reporter, stop).await;
                                }
                                if !skip {
                                    applier.begin_txn(h.timestamp() as u64 * 1000);
                                }
                                txn = Some(Txn { start: begin, skip });
                            }
                        } else if head.starts_with("COMMIT") {
                            if let Some(t) = txn.take() {
                                if !t.skip {
                                    let more = next_ready(stream.as_mut());
                                    applier.end_txn(end.into(), more).await?;
                                }
                            }
                        } else if head.starts_with("SAVEPOINT") || head.starts_with("ROLLBACK TO") || head.starts_with("RELEASE") {
                        } else {
                            // DDL (or another statement logged as text).
                            // DDL (MariaDB: a standalone GTID; MySQL: a GTID without BEGIN)
                            // is a transaction of its own; it also ends an open one.
                            let t = txn.take().unwrap_or(Txn { start: begin, skip: begin < from });
                            if !t.skip {
                                let schema = q.schema().to_lowercase();
                                let truncate = head.starts_with("TRUNCATE");
                                let mut hit = vec![];
                                for (db, name) in named_tables(&stmt) {
                                    let db = db.unwrap_or_else(|| schema.clone());
                                    if let Some(&i) = by_name.get(&(db, name)) {
                                        if !hit.contains(&i) {
                                            hit.push(i);
                                        }
                                    }
                                }
                                for i in hit {
                                    if t.start < sources[i].apply_from {
                                        continue;
                                    }
                                    if truncate {
                                        applier.truncate(&[i], false, false).await?;
                                    } else {
                                        let shown: String = stmt.chars().take(200).collect();
                                        let change = format!("DDL on the source: {shown}");
                                        // A dropped table leaves the stream
                                        // here (what follows under its name
                                        // is another table's). After any
                                        // other DDL naming it (ALTER, RENAME,
                                        // CREATE INDEX, ...) it may be
                                        // reloaded in its new shape, exact
                                        // whatever the statement did; a
                                        // table renamed away is then found
                                        // gone, and dropped.
                                        if head.starts_with("DROP TABLE") {
                                            applier.table_dropped(i, end.into(), true);
                                        } else {
                                            applier.table_altered(i, change);
                                        }
                                    }
                                }
                                if applier.structure_changed() {
                                    // Before the committed position passes
                                    // this statement: commit what precedes
                                    // it, carry out the drops, and have the
                                    // coordinator store the news. A stream
                                    // restarted past a DDL the coordinator
                                    // never heard of would decode the
                                    // table's rows with its old columns, or
                                    // apply a new table's rows to a dropped one.
                                    applier.commit_batch().await?;
                                    applier.finish_drops(Some(&end.into())).await?;
                                    let progress = applier.progress(applier.applied.clone(), false, latency_source_ms, last_report.elapsed().as_secs_f64());
                                    reporter.report(&ProgressDetail::Cdc(progress)).await?;
                                    applier.reported();
                                    last_report = Instant::now();
                                }
                                let more = next_ready(stream.as_mut());
                                applier.end_txn(end.into(), more).await?;
                            }
                        }
                    }
                    XID => {
                        if let Some(t) = txn.take() {
                            if !t.skip {
                                let more = next_ready(stream.as_mut());
                                applier.end_txn(end.into(), more).await?;
                            }
                        }
                    }
                    _ => {
                        let Some(t) = txn.as_ref() else {
                            if h.log_pos() > 0 {
                                seen = seen.max(end);
                            }
                            continue;
                        };
                        if t.skip {
                            continue;
                        }
                        if !is_rows_event(ty) {
                            continue;
                        }
                        let start = t.start;
                        let Ok(Some(EventData::RowsEvent(rows))) = ev.read_data() else { continue };
                        let Some(Mapped { table: Some(ti), map: tm, times, mismatch }) = table_maps.get(&rows.table_id()) else { continue };
                        let ti = *ti;
                        if start < sources[ti].apply_from || applier.tables[ti].stopped.is_some() {
                            continue;
                        }
                        if let Some(change) = mismatch {
                            applier.table_altered(ti, change.clone());
                            continue;
                        }
                        let mut ops = vec![];
                        let mut images = rows.rows(tm);
                        while let Some(r) = next_row(&mut images) {
                            let (before, after) = r.map_err(|e| ConnectorError::Definite(format!(
                                "table {}: undecodable row event at {end}: {e}", applier.tables[ti].display
                            )))?;
                            let decoded = match &rows {
                                RowsEventData::WriteRowsEventV1(_) | RowsEventData::WriteRowsEvent(_) => {
                                    decode_row(&sources[ti], times, after).map(Op::Insert)
                                }
                                RowsEventData::DeleteRowsEventV1(_) | RowsEventData::DeleteRowsEvent(_) => {
                                    decode_row(&sources[ti], times, before).map(|b| Op::Delete(whole(b)))
                                }
                                _ => decode_row(&sources[ti], times, before)
                                    .and_then(|b| Ok(Op::Update { before: whole(b), after: whole(decode_row(&sources[ti], times, after)?) })),
                            };
                            match decoded {
                                Ok(op) => ops.push(op),
                                Err(e) => {
                                    applier.stop_table(ti, format!("binlog row at {end} cannot be decoded: {e}"));
                                    ops.clear();
                                    break;
                                }
                            }
                        }
                        for op in ops {
                            applier.apply(ti, op).await?;
                        }
                        continue;
                    }
                }
                if txn.is_none() && h.log_pos() > 0 {
                    seen = seen.max(end);
                }
            }
            Ok(()) = marks_wanted.changed() => {
                // A mark was asked for: report now; the answer places it.
                if *marks_wanted.borrow_and_update() > emitted_mark {
                    tick.reset_immediately();
                }
            }
            _ = tick.tick() => {
                if applier.due() && txn.is_none() {
                    applier.commit_batch().await?;
                }
                let idle = txn.is_none() && !applier.pending();
                if let Some(CdcStop::Time { ms, .. }) = stop.as_ref().filter(|_| stop_at.is_none()) {
                    let now = query_text(&mut sql, "SELECT CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS UNSIGNED)", (), "reading the source's clock").await?;
                    let now: u64 = now.first().and_then(|r| r.first().cloned().flatten()).and_then(|v| v.parse().ok()).unwrap_or(0);
                    if now > *ms {
                        stop_at = Some(current_position(&mut sql).await?.1);
                    }
                }
                if let Some(stop) = stop.as_ref().filter(|_| idle && stop_at.is_some_and(|p| seen >= p)) {
                    return crate::pipeline::stop::halt(&mut applier, reporter, stop).await;
                }
                if idle {
                    let reached: Vec<u64> = marks.iter().filter(|(_, p)| *p <= seen).map(|(n, _)| *n).collect();
                    if let Some(&n) = reached.iter().max() {
                        applier.mark(n);
                        applier.commit_batch().await?;
                        marks.retain(|(m, _)| *m > n);
                    }
                }
                let applied = applier.applied.as_ref().map(Coord::of).transpose()?;
                let checkpoint = if idle { applied.max(Some(seen)) } else { applied }.map(Position::from);
                if last_discovery.elapsed() >= Duration::from_secs(5) {
                    last_discovery = Instant::now();
                    // The DROP's own event says exactly where a table left;
                    // this finds one whose event came before a restart.
                    let present = super::introspect::base_tables(&mut sql, &source.dbname).await?;
                    let db = source.dbname.to_lowercase();
                    let missing: Vec<usize> = (0..tables.len())
                        .filter(|&i| {
                            let t = &tables[i].table;
                            t.schema.to_lowercase() == db
                                && !applier.is_dropped(i)
                                && !present.iter().any(|p| p.name.eq_ignore_ascii_case(&t.name))
                        })
                        .collect();
                    if !missing.is_empty() {
                        let (_, now) = current_position(&mut sql).await?;
                        for i in missing {
                            applier.table_dropped(i, now.into(), false);
                        }
                    }
                    if let Some(m) = policy.discover {
                        new_tables = present
                            .into_iter()
                            .filter(|t| m.selects(&source.dbname, &t.name))
                            .filter(|t| {
                                by_name
                                    .get(&(db.clone(), t.name.to_lowercase()))
                                    .is_none_or(|&i| applier.is_dropped(i))
                            })
                            .map(|t| TableRef { schema: source.dbname.clone(), name: t.name })
                            .collect();
                    }
                }
                if idle {
                    applier.finish_drops(checkpoint.as_ref()).await?;
                }
                let mut progress = applier.progress(checkpoint, idle, latency_source_ms, last_report.elapsed().as_secs_f64());
                progress.latency_source_ms = progress.latency_source_ms.max(open_transaction_ms(&mut sql).await);
                crate::health::received(&task, std::mem::take(&mut received));
                progress.source_gtid = last_gtid.clone();
                progress.new_tables = new_tables.clone();
                match reporter.report(&ProgressDetail::Cdc(progress)).await {
                    Ok(requested) => {
                        applier.reported();
                        last_report = Instant::now();
                        if requested > emitted_mark {
                            let (_, pos) = current_position(&mut sql).await?;
                            marks.push((requested, pos));
                            emitted_mark = requested;
                        }
                    }
                    Err(e @ ConnectorError::Definite(_)) => return Err(e),
                    Err(e) => tracing::warn!(error = %e, "checkpoint not stored yet"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        assert_eq!(super::super::position::file_seq("mysql-bin.000042").unwrap(), 42);
        assert_eq!(rotated_seq("mysql-bin.0000425zbQ", "mysql-bin", 6).unwrap(), 42);
        assert!(rotated_seq("other.000042", "mysql-bin", 6).is_err());
        assert!(super::super::position::file_seq("nonsense").is_err());
    }

    #[test]
    fn enum_and_set_labels() {
        let t = MysqlType::parse("enum('a','it''s','c')");
        assert_eq!(enum_label(&t, 2).unwrap(), "it's");
        assert_eq!(enum_label(&t, 0).unwrap(), "");
        assert!(enum_label(&t, 4).is_err());
        let s = MysqlType::parse("set('x','y','z')");
        assert_eq!(set_labels(&s, &[0b101]).unwrap(), "x,z");
    }

    #[test]
    fn timestamps_in_utc() {
        assert_eq!(utc_text(0, 0), "0000-00-00 00:00:00");
        assert_eq!(utc_text(2_147_483_647, 1), "2038-01-19 03:14:07.000001");
        assert_eq!(utc_text(951_782_400, 0), "2000-02-29 00:00:00.000000");
    }

    #[test]
    fn unsigned_widening() {
        assert_eq!(unsigned("tinyint", -1), 255);
        assert_eq!(unsigned("int", -1), 4_294_967_295);
        assert_eq!(unsigned("bigint", -1), u64::MAX);
    }

    #[test]
    fn tables_named_by_ddl() {
        let n = named_tables("ALTER TABLE `shop`.`Orders` ADD COLUMN x int DEFAULT 'a.b'");
        assert!(n.contains(&(Some("shop".into()), "orders".into())));
        assert!(!n.iter().any(|(_, t)| t == "b"));
        let n = named_tables("rename table t1 to t2");
        assert!(n.contains(&(None, "t1".into())));
    }
}

/// Binlog events from outside: a binlog file MariaDB 10.11 wrote (ROW
/// format, full images and metadata, a table of every type family; see
/// `worker/fuzz/README.md`), mutated, read event by event as the stream
/// reads them — table maps through `tablemap::decodable`, row images
/// through `decode_row`, statements through `named_tables`.
#[cfg(test)]
mod fuzz {
    use super::*;
    use mysql_common::binlog::{consts::BinlogVersion, BinlogFile};

    /// The seed table's columns (`worker/fuzz/README.md`).
    const TYPES: [&str; 23] = [
        "int(11)",
        "varchar(20)",
        "text",
        "blob",
        "decimal(12,3)",
        "double",
        "float",
        "datetime(6)",
        "timestamp(3)",
        "date",
        "time(6)",
        "time",
        "year(4)",
        "enum('a','b','c')",
        "set('x','y','z')",
        "bit(10)",
        "bigint(20) unsigned",
        "smallint(6)",
        "longtext",
        "binary(4)",
        "varbinary(8)",
        "tinyint(3) unsigned",
        "mediumint(9)",
    ];

    fn read_all(bytes: &[u8], source: &Source) -> usize {
        let Ok(file) = BinlogFile::new(BinlogVersion::Version4, bytes) else {
            return 0;
        };
        let mut maps: HashMap<u64, (TableMapEvent<'static>, Vec<Option<tablemap::Time>>)> = HashMap::new();
        let mut rows_seen = 0;
        let mut events = file.take(1000);
        loop {
            // As the stream does: a panic in the library's event reader is
            // a malformed event (see the comment at `stream.next()`).
            let Ok(Some(Ok(ev))) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| events.next())) else {
                break;
            };
            // Decoded as the stream decodes: only the types it reads.
            let ty = ev.header().event_type_raw();
            if !(matches!(ty, ROTATE | MYSQL_GTID | MYSQL_ANONYMOUS_GTID | TABLE_MAP | QUERY) || is_rows_event(ty)) {
                continue;
            }
            match ev.read_data() {
                Ok(Some(EventData::TableMapEvent(tm))) => {
                    let id = tm.table_id();
                    if let Ok(decodable) = tablemap::decodable(&ev, tm) {
                        maps.insert(id, decodable);
                    }
                }
                Ok(Some(EventData::QueryEvent(q))) => {
                    let _ = named_tables(&q.query());
                }
                Ok(Some(EventData::RowsEvent(rows))) => {
                    let Some((tm, times)) = maps.get(&rows.table_id()) else {
                        continue;
                    };
                    let mut images = rows.rows(tm).take(1000);
                    while let Some(r) = next_row(&mut images) {
                        let Ok((before, after)) = r else { break };
                        let _ = decode_row(source, times, before);
                        let _ = decode_row(source, times, after);
                        rows_seen += 1;
                    }
                }
                _ => {}
            }
        }
        rows_seen
    }

    #[test]
    fn fuzz_binlog_events() {
        let seed = include_bytes!("../../../fuzz/seed.binlog").to_vec();
        let source = Source {
            columns: TYPES
                .iter()
                .map(|t| Column {
                    type_sql: t.to_string(),
                    kind: mysql_kind(t),
                    charset: None,
                })
                .collect(),
            apply_from: Coord::new(0, 0),
        };
        // The seed itself decodes: the fuzzer starts from real rows.
        assert!(read_all(&seed, &source) >= 4, "the seed has rows");
        let r = ferry_common::fuzz::run("binlog-events", &[seed], ferry_common::fuzz::budget(), |b| {
            read_all(b, &source);
        });
        assert!(r.crashes.is_empty(), "{r}");
    }
}
