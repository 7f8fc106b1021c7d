//! The common value model: what a column value is between a source connector
//! that decodes it and a target connector that encodes it, for pairs of
//! different engines. Every variant keeps its value exactly: integers keep
//! their sign and width (`UInt` reaches 2^64-1), decimals stay decimal text,
//! temporal values keep microseconds, MySQL `TIME` keeps its sign and its
//! hours past 24. Values borrow from the decoder's buffer where they can, so
//! a row costs no allocation per column.
//!
//! Which variant a column's values take is decided once per column by
//! [`crate::typemap`], from the source type.

use std::borrow::Cow;
use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f32),
    Double(f64),
    /// Exact decimal text: an optional sign, digits, an optional fraction.
    Decimal(Cow<'a, str>),
    /// Valid UTF-8 text (may contain NUL, which PostgreSQL cannot store).
    Text(Cow<'a, str>),
    Bytes(Cow<'a, [u8]>),
    /// A bit string of `len` bits, most significant first, left-padded to
    /// whole bytes (MySQL `BIT(n)`).
    Bit {
        len: u32,
        bytes: Cow<'a, [u8]>,
    },
    Date(Date),
    /// A civil date and time with no zone (MySQL DATETIME, PostgreSQL timestamp).
    DateTime(Date, TimeOfDay),
    /// A point in time, as the civil time in UTC (MySQL TIMESTAMP, timestamptz).
    Timestamp(Date, TimeOfDay),
    /// A signed duration in microseconds (MySQL TIME: -838:59:59 .. 838:59:59).
    Duration(i64),
    /// JSON document text.
    Json(Cow<'a, str>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Date {
    pub year: i32,
    pub month: u8,
    pub day: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeOfDay {
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    pub micros: u32,
}

/// Why a source value has no exact form in the model or on the target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValueError(pub String);

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl fmt::Display for TimeOfDay {
    /// `HH:MM:SS[.ffffff]`, the fraction only when non-zero.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}:{:02}", self.hour, self.minute, self.second)?;
        if self.micros != 0 {
            write!(f, ".{:06}", self.micros)?;
        }
        Ok(())
    }
}

/// Appends `bytes` as hexadecimal digits (two per byte, lower or upper
/// case): binary values of any size, without formatting machinery per byte.
pub fn push_hex(out: &mut String, bytes: &[u8], upper: bool) {
    let digits: &[u8; 16] = if upper {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    out.reserve(2 * bytes.len());
    for b in bytes {
        out.push(digits[(b >> 4) as usize] as char);
        out.push(digits[(b & 15) as usize] as char);
    }
}

/// A value as plain text, as SQLite's concatenation renders it (NULL as
/// empty, booleans as 1/0, binary as its bytes): the input of DMS
/// expressions and data-type conversions.
pub fn plain_text(v: &Value<'_>) -> String {
    match v {
        Value::Null => String::new(),
        Value::Bool(b) => (if *b { "1" } else { "0" }).into(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Double(d) => d.to_string(),
        Value::Decimal(s) | Value::Text(s) | Value::Json(s) => s.to_string(),
        Value::Bytes(b) | Value::Bit { bytes: b, .. } => String::from_utf8_lossy(b).into_owned(),
        Value::Date(d) => d.to_string(),
        Value::DateTime(d, t) | Value::Timestamp(d, t) => format!("{d} {t}"),
        Value::Duration(us) => format_duration(*us),
    }
}

/// A decimal number's text (`-12.50`, `.5`, `7`) as `Value::Decimal`
/// holds it (a leading zero before a bare fraction), or `None` when it is
/// not one.
pub fn parse_decimal_text(s: &str) -> Option<String> {
    let (sign, body) = match s.strip_prefix('-') {
        Some(b) => ("-", b),
        None => ("", s),
    };
    let (whole, frac) = match body.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (body, None),
    };
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !frac.is_none_or(digits) || (whole.is_empty() && frac.is_none_or(str::is_empty)) {
        return None;
    }
    let whole = if whole.is_empty() { "0" } else { whole };
    Some(match frac {
        Some(f) if !f.is_empty() => format!("{sign}{whole}.{f}"),
        _ => format!("{sign}{whole}"),
    })
}

/// `[-]H:MM:SS[.ffffff]` with hours unbounded, as MySQL and PostgreSQL's
/// interval input both read it.
pub fn format_duration(us: i64) -> String {
    let sign = if us < 0 { "-" } else { "" };
    let a = us.unsigned_abs();
    let (secs, micros) = (a / 1_000_000, a % 1_000_000);
    let mut s = format!("{sign}{}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    if micros != 0 {
        s.push_str(&format!(".{micros:06}"));
    }
    s
}

fn num<T: std::str::FromStr>(s: &str, what: &str, whole: &str) -> Result<T, ValueError> {
    s.parse()
        .map_err(|_| ValueError(format!("not a valid {what}: '{whole}'")))
}

/// Microseconds from a fraction's digits (`"5"` is 500000 µs).
fn fraction(digits: &str, whole: &str) -> Result<u32, ValueError> {
    if digits.len() > 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ValueError(format!("not a valid time fraction: '{whole}'")));
    }
    let mut us: u32 = if digits.is_empty() {
        0
    } else {
        num(digits, "time fraction", whole)?
    };
    for _ in digits.len()..6 {
        us *= 10;
    }
    Ok(us)
}

/// `YYYY-MM-DD`. `Ok(None)` for MySQL's zero date or a date with a zero
/// month or day (`0000-00-00`, `2024-00-10`), which no other engine has.
pub fn parse_date(s: &str) -> Result<Option<Date>, ValueError> {
    let mut p = s.splitn(3, '-');
    let (y, m, d) = match (p.next(), p.next(), p.next()) {
        (Some(y), Some(m), Some(d)) => (y, m, d),
        _ => return Err(ValueError(format!("not a valid date: '{s}'"))),
    };
    let date = Date {
        year: num(y, "date", s)?,
        month: num(m, "date", s)?,
        day: num(d, "date", s)?,
    };
    if date.month == 0 || date.day == 0 {
        return Ok(None);
    }
    if date.month > 12 || date.day > 31 {
        return Err(ValueError(format!("not a valid date: '{s}'")));
    }
    Ok(Some(date))
}

/// `HH:MM:SS[.f]` within a day.
pub fn parse_time_of_day(s: &str) -> Result<TimeOfDay, ValueError> {
    let (hms, frac) = s.split_once('.').unwrap_or((s, ""));
    let mut p = hms.splitn(3, ':');
    let (h, m, sec) = match (p.next(), p.next(), p.next()) {
        (Some(h), Some(m), Some(x)) => (h, m, x),
        _ => return Err(ValueError(format!("not a valid time: '{s}'"))),
    };
    let t = TimeOfDay {
        hour: num(h, "time", s)?,
        minute: num(m, "time", s)?,
        second: num(sec, "time", s)?,
        micros: fraction(frac, s)?,
    };
    if t.hour > 23 || t.minute > 59 || t.second > 59 {
        return Err(ValueError(format!("not a valid time of day: '{s}'")));
    }
    Ok(t)
}

/// `YYYY-MM-DD HH:MM:SS[.f]`; `Ok(None)` for a zero date part.
pub fn parse_datetime(s: &str) -> Result<Option<(Date, TimeOfDay)>, ValueError> {
    let (d, t) = s
        .split_once([' ', 'T'])
        .ok_or_else(|| ValueError(format!("not a valid datetime: '{s}'")))?;
    match parse_date(d)? {
        None => Ok(None),
        Some(d) => Ok(Some((d, parse_time_of_day(t)?))),
    }
}

/// `[-]H+:MM:SS[.f]` (MySQL TIME text) to signed microseconds.
pub fn parse_duration(s: &str) -> Result<i64, ValueError> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s),
    };
    let (hms, frac) = body.split_once('.').unwrap_or((body, ""));
    let mut p = hms.splitn(3, ':');
    let (h, m, sec) = match (p.next(), p.next(), p.next()) {
        (Some(h), Some(m), Some(x)) => (h, m, x),
        _ => return Err(ValueError(format!("not a valid time: '{s}'"))),
    };
    let (h, m, sec): (i64, i64, i64) = (num(h, "time", s)?, num(m, "time", s)?, num(sec, "time", s)?);
    let us = h
        .checked_mul(60)
        .and_then(|x| x.checked_add(m))
        .and_then(|x| x.checked_mul(60))
        .and_then(|x| x.checked_add(sec))
        .and_then(|x| x.checked_mul(1_000_000))
        .and_then(|x| x.checked_add(fraction(frac, s).ok()? as i64))
        .ok_or_else(|| ValueError(format!("time out of range: '{s}'")))?;
    Ok(if neg { -us } else { us })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_digits() {
        let mut s = "x".to_string();
        push_hex(&mut s, &[0, 9, 171, 255], false);
        push_hex(&mut s, &[171], true);
        assert_eq!(s, "x0009abffAB");
    }

    #[test]
    fn temporal_text_round_trips() {
        assert_eq!(parse_date("0000-00-00").unwrap(), None);
        assert_eq!(parse_date("2024-02-00").unwrap(), None);
        let d = parse_date("2024-02-29").unwrap().unwrap();
        assert_eq!(d.to_string(), "2024-02-29");
        let (d, t) = parse_datetime("1999-12-31 23:59:59.000001").unwrap().unwrap();
        assert_eq!(format!("{d} {t}"), "1999-12-31 23:59:59.000001");
        assert_eq!(parse_time_of_day("10:00:00.5").unwrap().micros, 500_000);
        assert_eq!(parse_datetime("0000-00-00 00:00:00").unwrap(), None);
        assert!(parse_date("2024-13-01").is_err());
        // Found by fuzzing: an hour count that overflows is an error, not a
        // wrapped (wrong) duration.
        assert!(parse_duration("-838999999999999999:59:59").is_err());
        assert_eq!(parse_duration("-838:59:59").unwrap(), -3_020_399_000_000);
        assert!(parse_time_of_day("24:00:00").is_err());
    }

    #[test]
    fn durations_keep_sign_and_long_hours() {
        for s in [
            "838:59:59",
            "-838:59:59",
            "-00:00:01.250000",
            "0:00:00",
            "25:00:00.000001",
        ] {
            let us = parse_duration(s).unwrap();
            assert_eq!(parse_duration(&format_duration(us)).unwrap(), us, "{s}");
        }
        assert_eq!(parse_duration("-00:00:01.25").unwrap(), -1_250_000);
        assert_eq!(format_duration(-1_250_000), "-0:00:01.250000");
    }
}
