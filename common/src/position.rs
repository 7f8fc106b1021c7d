//! Source log positions, tagged with the log they belong to, so that the
//! coordinator's Raft state, `apply_from` and the target's `apply_state`
//! carry any engine's position without knowing the engine.
//!
//! Each variant orders like its own log. Positions of one task always come
//! from one log, so comparing two variants never decides anything; the
//! derived order between variants only keeps `Ord` total.
//!
//! The text form (Raft state, status JSON, the target's control tables) says
//! which log a position is in: PostgreSQL's `X/Y` (as `pg_current_wal_lsn()`
//! prints it), a binlog's `NNNNNN:offset`, optionally followed by
//! `;gtid=<set>`. An engine with a wider position (SQL Server's 10-byte LSN,
//! Oracle's SCN) adds a variant and a text form here.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;
use std::sync::Arc;

/// A PostgreSQL WAL location (`X/Y`: the high and low 32 bits in hex).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(pub u64);

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xffff_ffff)
    }
}

impl FromStr for Lsn {
    type Err = String;
    fn from_str(s: &str) -> Result<Lsn, String> {
        let bad = || format!("'{s}' is not a PostgreSQL LSN (expected the X/Y form, e.g. 0/16B3748)");
        let (hi, lo) = s.trim().split_once('/').ok_or_else(bad)?;
        let hi = u64::from_str_radix(hi, 16).map_err(|_| bad())?;
        let lo = u64::from_str_radix(lo, 16).map_err(|_| bad())?;
        if hi > u32::MAX as u64 || lo > u32::MAX as u64 {
            return Err(bad());
        }
        Ok(Lsn((hi << 32) | lo))
    }
}

/// A MySQL/MariaDB binlog position: the file's sequence number (the
/// `NNNNNN` of `mysql-bin.NNNNNN`), the byte offset in it, and, when the
/// server has GTIDs, the GTID set executed at that point. The set is what
/// lets a stream resume on another server of the same topology; the file
/// and offset alone order positions (the set is a function of the point).
#[derive(Debug, Clone)]
pub struct Binlog {
    pub file: u32,
    pub offset: u64,
    pub gtid: Option<Arc<str>>,
}

impl Binlog {
    pub fn new(file: u32, offset: u64) -> Binlog {
        Binlog {
            file,
            offset,
            gtid: None,
        }
    }

    fn key(&self) -> (u32, u64) {
        (self.file, self.offset)
    }
}

impl PartialEq for Binlog {
    fn eq(&self, o: &Binlog) -> bool {
        self.key() == o.key()
    }
}
impl Eq for Binlog {}
impl PartialOrd for Binlog {
    fn partial_cmp(&self, o: &Binlog) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Binlog {
    fn cmp(&self, o: &Binlog) -> Ordering {
        self.key().cmp(&o.key())
    }
}
impl Hash for Binlog {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.key().hash(h)
    }
}

/// A position in some source's change log.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Position {
    /// PostgreSQL's write-ahead log.
    Wal(Lsn),
    /// MySQL/MariaDB's binary log.
    Binlog(Binlog),
}

impl Position {
    /// The position of byte `offset` in binlog file number `file`.
    pub fn binlog(file: u32, offset: u64) -> Position {
        Position::Binlog(Binlog::new(file, offset))
    }

    /// The WAL location, or an error naming the position that is not one.
    pub fn wal(&self) -> Result<Lsn, String> {
        match self {
            Position::Wal(l) => Ok(*l),
            other => Err(format!("position {other} is not a PostgreSQL WAL location")),
        }
    }

    /// The binlog position, or an error naming the position that is not one.
    pub fn as_binlog(&self) -> Result<&Binlog, String> {
        match self {
            Position::Binlog(b) => Ok(b),
            other => Err(format!("position {other} is not a binlog position")),
        }
    }
}

impl From<Lsn> for Position {
    fn from(l: Lsn) -> Position {
        Position::Wal(l)
    }
}

const GTID_TAG: &str = ";gtid=";

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Wal(l) => l.fmt(f),
            Position::Binlog(b) => {
                write!(f, "{:06}:{}", b.file, b.offset)?;
                match &b.gtid {
                    Some(g) => write!(f, "{GTID_TAG}{g}"),
                    None => Ok(()),
                }
            }
        }
    }
}

impl FromStr for Position {
    type Err = String;
    fn from_str(s: &str) -> Result<Position, String> {
        let s = s.trim();
        // A GTID set has ':' in it (MySQL's uuid:1-5), so it is split off
        // first; the rest tells the log apart ('/' or ':').
        let (coord, gtid) = match s.split_once(GTID_TAG) {
            Some((c, g)) => (c, Some(g)),
            None => (s, None),
        };
        if let Some((file, offset)) = coord.split_once(':') {
            let bad = || format!("'{s}' is not a binlog position (expected NNNNNN:offset[;gtid=set])");
            return Ok(Position::Binlog(Binlog {
                file: file.parse().map_err(|_| bad())?,
                offset: offset.parse().map_err(|_| bad())?,
                gtid: gtid.filter(|g| !g.is_empty()).map(Arc::from),
            }));
        }
        if gtid.is_some() {
            return Err(format!("'{s}': only a binlog position carries a GTID set"));
        }
        coord.parse::<Lsn>().map(Position::Wal)
    }
}

macro_rules! serde_as_text {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<$t, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

serde_as_text!(Lsn);
serde_as_text!(Position);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsn_round_trip() {
        let l: Lsn = "16/B374D848".parse().unwrap();
        assert_eq!(l.0, 0x16_B374_D848);
        assert_eq!(l.to_string(), "16/B374D848");
        assert_eq!(serde_json::to_string(&l).unwrap(), "\"16/B374D848\"");
        assert!("16-B3".parse::<Lsn>().is_err());
        assert!("1FFFFFFFF/0".parse::<Lsn>().is_err());
    }

    #[test]
    fn position_text_says_which_log() {
        let wal: Position = "16/B374D848".parse().unwrap();
        assert_eq!(wal, Position::Wal(Lsn(0x16_B374_D848)));
        assert_eq!(serde_json::to_string(&wal).unwrap(), "\"16/B374D848\"");

        let b: Position = "000003:1234".parse().unwrap();
        assert_eq!(b, Position::binlog(3, 1234));
        assert_eq!(b.to_string(), "000003:1234");

        // A MySQL GTID set has ':' and ','; it survives the round trip.
        let set = "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5:7,4E11FA47-71CA-11E1-9E33-C80AA9429562:1-3";
        let g: Position = format!("000012:99;gtid={set}").parse().unwrap();
        let Position::Binlog(gb) = &g else { panic!("{g:?}") };
        assert_eq!((gb.file, gb.offset, gb.gtid.as_deref()), (12, 99, Some(set)));
        let json = serde_json::to_string(&g).unwrap();
        let back: Position = serde_json::from_str(&json).unwrap();
        assert_eq!(back.to_string(), g.to_string());

        assert!("0/1;gtid=0-1-2".parse::<Position>().is_err());
        assert!("x:1".parse::<Position>().is_err());
        assert!("3:".parse::<Position>().is_err());
        assert!("nonsense".parse::<Position>().is_err());
    }

    #[test]
    fn binlog_orders_like_the_log() {
        // Across a rotation, and with offsets past 4 GiB.
        assert!(Position::binlog(2, u64::from(u32::MAX) + 10) < Position::binlog(3, 4));
        assert!(Position::binlog(3, 4) < Position::binlog(3, 5));
        // The GTID set is a function of the point: it does not order.
        let mut with = Binlog::new(3, 4);
        with.gtid = Some(Arc::from("0-1-9"));
        assert_eq!(Position::Binlog(with), Position::binlog(3, 4));
        assert!(Position::Wal(Lsn(5)).wal().is_ok());
        assert!(Position::binlog(1, 1).wal().unwrap_err().contains("000001:1"));
    }
}
