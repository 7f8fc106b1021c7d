//! Where a CDC stream stops on its own (`--cdc-stop-position`, DMS's
//! `CdcStopPosition`).
//!
//! The stop is a cut through the source's commit order: a transaction is
//! applied when it commits before the stop, and the stream stops at the
//! first one that does not, before applying any of it. The target then
//! holds exactly the source as of the stop, and `ferry task start` goes on
//! from there (the stopping transaction is the first one applied).
//!
//! Two forms, as DMS's:
//! - `server_time:2026-12-03T12:00:00` (or `commit_time:`, the same here):
//!   transactions committed at or before that UTC time of the source's
//!   clock are applied. The commit time is what the source's log records
//!   (PostgreSQL: microseconds; MySQL/MariaDB: whole seconds, so a MySQL
//!   transaction of 12:00:00.7 counts as 12:00:00).
//! - a log position (`0/16B3748`; `mysql-bin.000003:1234`): transactions
//!   whose commit lies before the position are applied — a position read
//!   with `pg_current_wal_insert_lsn()` or `SHOW MASTER STATUS` at some
//!   moment stops the stream exactly after every transaction committed by
//!   then (`pg_current_wal_lsn()` lags behind asynchronous commits).
//!
//! An idle source has no later transaction to show the stream that the
//! stop has passed, so each engine's stream, when idle, asks its source
//! whether the stop lies in the past, and if it does makes or finds a point
//! in its log after it (see the engines' streams).

use crate::endpoint::Engine;
use crate::position::Position;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CdcStop {
    /// Unix milliseconds of the source's clock; `form` is the prefix the
    /// user wrote (`server_time` or `commit_time`), kept for display.
    Time {
        ms: u64,
        form: String,
    },
    Position(Position),
}

impl CdcStop {
    /// Parses DMS's forms for a source of `engine`; the error says what
    /// was expected.
    pub fn parse(text: &str, engine: Engine) -> Result<CdcStop, String> {
        let text = text.trim();
        for form in ["server_time", "commit_time"] {
            if let Some(rest) = text
                .strip_prefix(form)
                .and_then(|r| r.strip_prefix(':').or_else(|| r.strip_prefix('=')))
            {
                return Ok(CdcStop::Time {
                    ms: parse_utc(rest)?,
                    form: form.into(),
                });
            }
        }
        let position = text.strip_prefix("position:").unwrap_or(text);
        engine
            .parse_position(position)
            .map(CdcStop::Position)
            .map_err(|e| format!("{e}; or a time as server_time:YYYY-MM-DDTHH:MM:SS (UTC)"))
    }

    /// Whether a transaction committed at `commit_ms` (the source's clock)
    /// with its commit at `commit` in the log lies beyond the stop.
    pub fn passed(&self, commit_ms: u64, commit: &Position) -> bool {
        match self {
            CdcStop::Time { ms, .. } => commit_ms > *ms,
            CdcStop::Position(p) => commit >= p,
        }
    }

    /// The stop time, for a time stop.
    pub fn time_ms(&self) -> Option<u64> {
        match self {
            CdcStop::Time { ms, .. } => Some(*ms),
            CdcStop::Position(_) => None,
        }
    }
}

impl fmt::Display for CdcStop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CdcStop::Time { ms, form } => {
                let (y, mo, d, h, mi, s) = crate::civil_utc((*ms / 1000) as i64);
                write!(f, "{form}:{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}")?;
                match ms % 1000 {
                    0 => Ok(()),
                    frac => write!(f, ".{frac:03}"),
                }
            }
            CdcStop::Position(p) => write!(f, "position {p}"),
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fff]` (a space for the `T`, a trailing `Z`
/// allowed) as Unix milliseconds, UTC.
fn parse_utc(text: &str) -> Result<u64, String> {
    let bad = || format!("'{text}' is not a time (expected YYYY-MM-DDTHH:MM:SS, UTC)");
    let t = text.trim().trim_end_matches('Z');
    let (date, time) = t.split_once(['T', ' ']).ok_or_else(bad)?;
    let num = |s: &str, len: usize| -> Result<i64, String> {
        if s.len() == len && s.bytes().all(|b| b.is_ascii_digit()) {
            s.parse().map_err(|_| bad())
        } else {
            Err(bad())
        }
    };
    let d: Vec<&str> = date.split('-').collect();
    let (time, frac) = match time.split_once('.') {
        Some((t, f)) if !f.is_empty() && f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) => {
            (t, format!("{f:0<3}")[..3].parse::<i64>().map_err(|_| bad())?)
        }
        Some(_) => return Err(bad()),
        None => (time, 0),
    };
    let c: Vec<&str> = time.split(':').collect();
    let ([y, mo, da], [h, mi, s]) = (d.as_slice(), c.as_slice()) else {
        return Err(bad());
    };
    let (y, mo, da, h, mi, s) = (
        num(y, 4)?,
        num(mo, 2)?,
        num(da, 2)?,
        num(h, 2)?,
        num(mi, 2)?,
        num(s, 2)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&da) || h > 23 || mi > 59 || s > 59 || y < 1970 {
        return Err(bad());
    }
    // Days since 1970-01-01 of a civil date (H. Hinnant's algorithm, the
    // inverse of `civil_utc`).
    let yy = if mo <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + da - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + s;
    // 2026-02-31 would silently become March 3rd: refuse what does not
    // come back as written.
    if crate::civil_utc(secs) != (y, mo, da, h, mi, s) {
        return Err(bad());
    }
    Ok(secs as u64 * 1000 + frac as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_utc() {
        let s = CdcStop::parse("server_time:2018-02-09T12:12:12", Engine::Postgres).unwrap();
        assert_eq!(s.time_ms(), Some(1_518_178_332_000));
        assert_eq!(s.to_string(), "server_time:2018-02-09T12:12:12");
        let c = CdcStop::parse("commit_time:2000-03-01 00:00:00.25Z", Engine::Mysql).unwrap();
        assert_eq!(c.time_ms(), Some(951_868_800_250));
        assert_eq!(c.to_string(), "commit_time:2000-03-01T00:00:00.250");
        for bad in [
            "server_time:2018-02-30T00:00:00",
            "server_time:2018-2-09T12:12:12",
            "server_time:2018-02-09",
            "server_time:2018-02-09T25:00:00",
            "server_time:yesterday",
            "server_time:2018-02-09T12:12:12.",
        ] {
            let e = CdcStop::parse(bad, Engine::Postgres).unwrap_err();
            assert!(e.contains("is not a time"), "{bad}: {e}");
        }
    }

    #[test]
    fn positions_parse_per_engine() {
        let p = CdcStop::parse("0/16B3748", Engine::Postgres).unwrap();
        assert_eq!(p, CdcStop::Position("0/16B3748".parse().unwrap()));
        let b = CdcStop::parse("position:mysql-bin.000003:1234", Engine::Mysql).unwrap();
        assert_eq!(b, CdcStop::Position(Position::binlog(3, 1234)));
        let e = CdcStop::parse("mysql-bin.000003:1234", Engine::Postgres).unwrap_err();
        assert!(e.contains("not a PostgreSQL LSN") && e.contains("server_time:"), "{e}");
    }

    #[test]
    fn a_transaction_passes_the_stop_after_it() {
        let t = CdcStop::parse("server_time:2018-02-09T12:12:12", Engine::Postgres).unwrap();
        let at = Position::Wal(crate::position::Lsn(1));
        assert!(!t.passed(1_518_178_332_000, &at));
        assert!(t.passed(1_518_178_332_001, &at));
        let p = CdcStop::parse("0/100", Engine::Postgres).unwrap();
        assert!(!p.passed(u64::MAX, &Position::Wal(crate::position::Lsn(0xff))));
        assert!(p.passed(0, &Position::Wal(crate::position::Lsn(0x100))));
    }
}
