//! Source log positions, one totally ordered 64-bit form for both engines so
//! that the coordinator's Raft state, `apply_from` and the target's
//! `apply_state` need not know the engine. PostgreSQL's is the WAL LSN,
//! printed `X/Y` (high and low 32 bits in hex). A MySQL/MariaDB binlog
//! position `name.NNNNNN:offset` is the file's sequence number in the high
//! half and the byte offset in the low half (binlog files stay below 4 GiB:
//! max_binlog_size is at most 1 GiB), so it orders like the binlog itself
//! across rotations and prints as `NNNNNN/offset` in hex.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A PostgreSQL WAL location. Serialized in the `X/Y` form users know from
/// `pg_current_wal_lsn()`, so status JSON and the Raft log stay readable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(pub u64);

impl Lsn {
    /// The position of byte `offset` in binlog file number `seq`.
    pub fn binlog(seq: u32, offset: u32) -> Lsn {
        Lsn(((seq as u64) << 32) | offset as u64)
    }

    /// (file sequence number, byte offset) of a binlog position.
    pub fn binlog_parts(self) -> (u32, u32) {
        ((self.0 >> 32) as u32, self.0 as u32)
    }
}

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

impl Serialize for Lsn {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Lsn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Lsn, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let l: Lsn = "16/B374D848".parse().unwrap();
        assert_eq!(l.0, 0x16_B374_D848);
        assert_eq!(l.to_string(), "16/B374D848");
        assert_eq!(serde_json::to_string(&l).unwrap(), "\"16/B374D848\"");
        assert!("16-B3".parse::<Lsn>().is_err());
        assert!("1FFFFFFFF/0".parse::<Lsn>().is_err());
        let b = Lsn::binlog(3, 1234);
        assert_eq!(b.binlog_parts(), (3, 1234));
        assert!(Lsn::binlog(2, u32::MAX) < Lsn::binlog(3, 4));
    }
}
