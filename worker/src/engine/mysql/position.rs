//! Binlog positions: the source's current end, a binlog file's number, and
//! the position a consistent snapshot corresponds to — what both the
//! segment reader (`read`) and the binlog reader (`binlog`) need.

use super::{classify, query_text};
use crate::engine::ConnectorError;
use ferry_common::position::{Binlog, Position};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::fmt;

/// A binlog file number and byte offset: what the binlog reader compares on
/// every event (a [`Position`] with its GTID set is built only where a
/// position leaves the engine).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Coord {
    pub file: u32,
    pub offset: u64,
}

impl Coord {
    pub fn new(file: u32, offset: u64) -> Coord {
        Coord { file, offset }
    }

    /// The coordinate of a position that must be a binlog one (a task's
    /// positions all come from its source's log).
    pub fn of(p: &Position) -> Result<Coord, ConnectorError> {
        let b = p.as_binlog().map_err(ConnectorError::Definite)?;
        Ok(Coord::new(b.file, b.offset))
    }

    /// [`Coord::of`] for an optional position; none is the log's origin.
    pub fn of_opt(p: Option<&Position>) -> Result<Coord, ConnectorError> {
        p.map_or(Ok(Coord::default()), Coord::of)
    }
}

impl From<Coord> for Position {
    fn from(c: Coord) -> Position {
        Position::Binlog(Binlog::new(c.file, c.offset))
    }
}

impl fmt::Display for Coord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Position::from(*self).fmt(f)
    }
}

/// The number a binlog file name ends with (`mysql-bin.000042` → 42).
pub fn file_seq(name: &str) -> Result<u32, ConnectorError> {
    name.rsplit_once('.')
        .and_then(|(_, n)| n.parse().ok())
        .ok_or_else(|| ConnectorError::Definite(format!("'{name}' is not a binlog file name (expected name.NNNNNN)")))
}

/// A byte offset in binlog `file`, as the server printed it.
fn offset(file: &str, pos: &str) -> Result<u64, ConnectorError> {
    pos.trim()
        .parse()
        .map_err(|_| ConnectorError::Definite(format!("'{pos}' is not a byte offset in binlog {file}")))
}

/// The source's current binlog end.
pub async fn current_position(c: &mut Conn) -> Result<(String, Coord), ConnectorError> {
    let rows = match query_text(c, "SHOW MASTER STATUS", (), "reading the binlog position").await {
        Ok(r) => r,
        // MySQL 8.4 renamed it.
        Err(_) => query_text(c, "SHOW BINARY LOG STATUS", (), "reading the binlog position").await?,
    };
    let row = rows
        .first()
        .ok_or_else(|| ConnectorError::Definite("the source has no binlog (SHOW MASTER STATUS is empty)".into()))?;
    let file = row.first().cloned().flatten().unwrap_or_default();
    let pos = row.get(1).cloned().flatten().unwrap_or_default();
    Ok((file.clone(), Coord::new(file_seq(&file)?, offset(&file, &pos)?)))
}

/// Opens a consistent-snapshot transaction on `c` and returns the binlog
/// position it corresponds to (see the module comment).
pub async fn begin_snapshot(c: &mut Conn) -> Result<Coord, ConnectorError> {
    let q = |e| classify("opening a consistent snapshot on the source", e);
    c.query_drop(
        "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ; START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
    )
    .await
    .map_err(q)?;
    let status = query_text(
        c,
        "SHOW STATUS LIKE 'binlog_snapshot_%'",
        (),
        "reading the snapshot's binlog position",
    )
    .await?;
    let get = |k: &str| {
        status
            .iter()
            .find(|r| r.first().cloned().flatten().is_some_and(|n| n.eq_ignore_ascii_case(k)))
            .and_then(|r| r.get(1).cloned().flatten())
    };
    if let (Some(file), Some(pos)) = (get("Binlog_snapshot_file"), get("Binlog_snapshot_position")) {
        if !file.is_empty() {
            return Ok(Coord::new(file_seq(&file)?, offset(&file, &pos)?));
        }
    }
    // MySQL has no snapshot position: hold writes still while the snapshot
    // opens and the position is read.
    c.query_drop("ROLLBACK; FLUSH TABLES WITH READ LOCK; START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        .await
        .map_err(q)?;
    let pos = current_position(c).await;
    c.query_drop("UNLOCK TABLES").await.map_err(q)?;
    Ok(pos?.1)
}
