//! The binlog's TABLE_MAP events as Ferry decodes rows with them.
//!
//! mysql_common decodes row images by the column types a TABLE_MAP
//! declares. For TIME it gets two things wrong: a negative TIME(1) / TIME(2)
//! with a fraction underflows (a panic in debug builds, garbage otherwise),
//! and the pre-5.6 TIME format loses its sign. So before a table map is used,
//! every TIME column is re-declared as a BIT column of the same byte width:
//! mysql_common then hands over the column's bytes untouched, and [`Time`]
//! decodes them as the server wrote them. The row image itself is unchanged
//! (a BIT of n bytes occupies exactly n bytes), so no other column shifts.

use mysql_common::binlog::events::{Event, TableMapEvent};
use mysql_common::binlog::BinlogCtx;
use mysql_common::io::ParseBuf;
use mysql_common::proto::{MyDeserialize, MySerialize};
use std::io;

const MYSQL_TYPE_TIME: u8 = 11;
const MYSQL_TYPE_BIT: u8 = 16;
const MYSQL_TYPE_TIME2: u8 = 19;
const TABLE_MAP: u8 = 19;

/// How a TIME column's bytes are laid out in a row image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Time {
    /// MySQL 5.6+ / MariaDB `mysql56_temporal_format`: big-endian, offset
    /// binary, with this many fractional digits.
    Packed(u8),
    /// The old format: HHMMSS as a signed 3-byte little-endian integer.
    Old,
}

impl Time {
    fn width(self) -> u8 {
        match self {
            Time::Packed(dec) => 3 + dec.div_ceil(2),
            Time::Old => 3,
        }
    }

    /// The value as MySQL's text protocol shows it (`-838:59:59.000000`).
    pub fn text(self, b: &[u8]) -> Result<String, String> {
        if b.len() != self.width() as usize {
            return Err(format!("TIME of {} bytes, expected {}", b.len(), self.width()));
        }
        let be = |b: &[u8]| b.iter().fold(0i64, |acc, x| acc << 8 | *x as i64);
        let (neg, hours, minutes, seconds, micros) = match self {
            Time::Old => {
                let raw = b[0] as i64 | (b[1] as i64) << 8 | (b[2] as i64) << 16;
                let v = if raw & 0x80_0000 != 0 { raw - 0x100_0000 } else { raw };
                let a = v.abs();
                (v < 0, a / 10000, a / 100 % 100, a % 100, 0)
            }
            Time::Packed(dec) => {
                // MySQL's my_time_packed_from_binary: the integer part and
                // the fraction are stored apart, the fraction borrowing from
                // the integer part when the value is negative.
                let packed = match dec {
                    0 => (be(&b[..3]) - 0x80_0000) << 24,
                    1..=4 => {
                        let mut int = be(&b[..3]) - 0x80_0000;
                        let mut frac = be(&b[3..]);
                        let (span, scale) = if dec <= 2 { (0x100, 10_000) } else { (0x1_0000, 100) };
                        if int < 0 && frac > 0 {
                            int += 1;
                            frac -= span;
                        }
                        (int << 24) + frac * scale
                    }
                    _ => be(b) - 0x8000_0000_0000,
                };
                let a = packed.abs();
                let hms = a >> 24;
                (packed < 0, (hms >> 12) % 1024, (hms >> 6) % 64, hms % 64, a % (1 << 24))
            }
        };
        let sign = if neg { "-" } else { "" };
        Ok(format!("{sign}{hours}:{minutes:02}:{seconds:02}.{micros:06}"))
    }
}

/// A length-encoded integer at the start of `b`: its value and its size.
fn lenenc(b: &[u8]) -> io::Result<(u64, usize)> {
    let short = || io::Error::new(io::ErrorKind::InvalidData, "table map ends inside a length");
    let n = |len: usize| -> io::Result<u64> {
        let bytes = b.get(1..1 + len).ok_or_else(short)?;
        Ok(bytes.iter().rev().fold(0u64, |acc, x| acc << 8 | *x as u64))
    };
    match *b.first().ok_or_else(short)? {
        x @ 0..=250 => Ok((x as u64, 1)),
        0xfc => Ok((n(2)?, 3)),
        0xfd => Ok((n(3)?, 4)),
        0xfe => Ok((n(8)?, 9)),
        _ => Err(io::Error::new(io::ErrorKind::InvalidData, "bad length in table map")),
    }
}

fn put_lenenc(out: &mut Vec<u8>, v: u64) {
    match v {
        0..=250 => out.push(v as u8),
        251..=0xffff => {
            out.push(0xfc);
            out.extend_from_slice(&(v as u16).to_le_bytes());
        }
        0x1_0000..=0xff_ffff => {
            out.push(0xfd);
            out.extend_from_slice(&(v as u32).to_le_bytes()[..3]);
        }
        _ => {
            out.push(0xfe);
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
}

/// The table map with its TIME columns re-declared (see the module
/// comment), and each column's TIME layout (`None` for other columns).
pub fn decodable(ev: &Event, tm: TableMapEvent<'_>) -> io::Result<(TableMapEvent<'static>, Vec<Option<Time>>)> {
    let n = tm.columns_count() as usize;
    let ty = |i: usize| -> io::Result<u8> {
        Ok(tm
            .get_raw_column_type(i)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?
            .map(|t| t as u8)
            .unwrap_or(0))
    };
    let meta_of = |i: usize| tm.get_column_metadata(i).unwrap_or(&[]);
    let times = (0..n)
        .map(|i| {
            Ok(match ty(i)? {
                MYSQL_TYPE_TIME2 => Some(Time::Packed(meta_of(i).first().copied().unwrap_or(0).min(6))),
                MYSQL_TYPE_TIME => Some(Time::Old),
                _ => None,
            })
        })
        .collect::<io::Result<Vec<_>>>()?;
    // Every transaction maps its tables again: most have no TIME column.
    if times.iter().all(Option::is_none) {
        return Ok((tm.into_owned(), times));
    }
    let mut types = Vec::with_capacity(n);
    let mut meta = Vec::new();
    for (i, time) in times.iter().enumerate() {
        match time {
            Some(t) => {
                types.push(MYSQL_TYPE_BIT);
                // BIT metadata: bits beyond whole bytes, then whole bytes.
                meta.extend_from_slice(&[0, t.width()]);
            }
            None => {
                types.push(ty(i)?);
                meta.extend_from_slice(meta_of(i));
            }
        }
    }
    // The event as bytes: table id (6), flags (2), schema and table names
    // (length, bytes, NUL), column count, types, metadata, then the null
    // bitmap and optional metadata, which stay as they are.
    let mut raw = Vec::new();
    tm.serialize(&mut raw);
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "table map shorter than its header");
    let mut at = 8;
    for _ in 0..2 {
        at += 1 + *raw.get(at).ok_or_else(bad)? as usize + 1;
    }
    let (count, len) = lenenc(raw.get(at..).ok_or_else(bad)?)?;
    at += len;
    let types_at = at;
    at += count as usize;
    let (meta_len, len) = lenenc(raw.get(at..).ok_or_else(bad)?)?;
    let rest = at + len + meta_len as usize;
    if count as usize != n || rest > raw.len() {
        return Err(bad());
    }
    let mut out = raw[..types_at].to_vec();
    out.extend_from_slice(&types);
    put_lenenc(&mut out, meta.len() as u64);
    out.extend_from_slice(&meta);
    out.extend_from_slice(&raw[rest..]);
    let ctx = BinlogCtx::new(out.len(), ev.fde(), TABLE_MAP);
    let patched = TableMapEvent::deserialize(ctx, &mut ParseBuf(&out))?;
    Ok((patched.into_owned(), times))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TIME2 bytes as MySQL's my_time_packed_to_binary writes them (C's
    /// `>>` and `%` behave as Rust's on i64).
    fn packed(neg: bool, h: i64, m: i64, s: i64, us: i64, dec: u8) -> Vec<u8> {
        let nr = ((h << 12 | m << 6 | s) << 24) + us;
        let nr = if neg { -nr } else { nr };
        let (int_part, frac_part) = (nr >> 24, nr % (1 << 24));
        let mut b = ((int_part + 0x80_0000) as u32).to_be_bytes()[1..].to_vec();
        match dec {
            0 => {}
            1 | 2 => b.push((frac_part / 10_000) as i8 as u8),
            3 | 4 => b.extend_from_slice(&((frac_part / 100) as i16 as u16).to_be_bytes()),
            _ => return ((nr + 0x8000_0000_0000) as u64).to_be_bytes()[2..].to_vec(),
        }
        b
    }

    #[test]
    fn packed_times() {
        let t = |neg, h, m, s, us, dec| Time::Packed(dec).text(&packed(neg, h, m, s, us, dec)).unwrap();
        assert_eq!(t(false, 838, 59, 59, 0, 0), "838:59:59.000000");
        assert_eq!(t(true, 838, 59, 59, 0, 0), "-838:59:59.000000");
        assert_eq!(t(true, 0, 0, 1, 500_000, 1), "-0:00:01.500000");
        assert_eq!(t(true, 12, 34, 56, 990_000, 2), "-12:34:56.990000");
        assert_eq!(t(false, 12, 34, 56, 990_000, 2), "12:34:56.990000");
        assert_eq!(t(true, 1, 2, 3, 456_700, 4), "-1:02:03.456700");
        assert_eq!(t(true, 0, 0, 0, 1, 6), "-0:00:00.000001");
        assert_eq!(t(false, 838, 59, 58, 999_999, 6), "838:59:58.999999");
    }

    #[test]
    fn old_times() {
        let b = |v: i32| v.to_le_bytes()[..3].to_vec();
        assert_eq!(Time::Old.text(&b(-8385959)).unwrap(), "-838:59:59.000000");
        assert_eq!(Time::Old.text(&b(10203)).unwrap(), "1:02:03.000000");
        assert!(Time::Old.text(&[0, 0]).is_err());
    }

    #[test]
    fn lengths_round_trip() {
        for v in [0u64, 250, 251, 65535, 65536, 16_777_216] {
            let mut b = vec![];
            put_lenenc(&mut b, v);
            assert_eq!(lenenc(&b).unwrap(), (v, b.len()));
        }
    }
}
