//! Values of the common model as fields of `LOAD DATA ... CHARACTER SET
//! binary` with the default field format (tab-separated, `\N` for NULL,
//! backslash escapes). Bytes pass raw, so binary and BIT values need no
//! text form. A value MySQL cannot hold exactly is refused here, so the row
//! goes to the exceptions table instead of being silently truncated (LOAD
//! DATA LOCAL turns data errors into warnings).

use ferry_common::value::{format_duration, Value, ValueError};

/// MySQL TIME's range, in microseconds.
const MAX_TIME_US: i64 = ((838 * 60 + 59) * 60 + 59) * 1_000_000;

fn escaped(out: &mut Vec<u8>, s: &[u8]) {
    for &b in s {
        match b {
            0 => out.extend_from_slice(b"\\0"),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b => out.push(b),
        }
    }
}

fn finite(v: f64) -> Result<(), ValueError> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(ValueError(format!("{v} has no MySQL equivalent (no NaN or infinity)")))
    }
}

pub fn field(out: &mut Vec<u8>, v: &Value) -> Result<(), ValueError> {
    match v {
        Value::Null => out.extend_from_slice(b"\\N"),
        Value::Bool(b) => out.push(if *b { b'1' } else { b'0' }),
        Value::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
        Value::UInt(u) => out.extend_from_slice(u.to_string().as_bytes()),
        Value::Float(f) => {
            finite(*f as f64)?;
            out.extend_from_slice(format!("{f:?}").as_bytes())
        }
        Value::Double(f) => {
            finite(*f)?;
            out.extend_from_slice(format!("{f:?}").as_bytes())
        }
        Value::Decimal(d) => out.extend_from_slice(d.as_bytes()),
        Value::Text(s) | Value::Json(s) => escaped(out, s.as_bytes()),
        Value::Bytes(b) => escaped(out, b),
        Value::Bit { bytes, .. } => escaped(out, bytes),
        Value::Date(d) => out.extend_from_slice(d.to_string().as_bytes()),
        Value::DateTime(d, t) | Value::Timestamp(d, t) => out.extend_from_slice(format!("{d} {t}").as_bytes()),
        Value::Duration(us) => {
            if us.abs() > MAX_TIME_US {
                return Err(ValueError(format!(
                    "duration {} is outside MySQL TIME's range (±838:59:59)",
                    format_duration(*us)
                )));
            }
            out.extend_from_slice(format_duration(*us).as_bytes())
        }
    }
    Ok(())
}

pub(crate) fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(3 + 2 * b.len());
    s.push_str("X'");
    ferry_common::value::push_hex(&mut s, b, true);
    s.push('\'');
    s
}

/// A value as an SQL literal for a session with the default backslash
/// escapes, utf8mb4 and time_zone +00:00 (CDC apply). Refuses what the
/// full load refuses.
pub fn literal(v: &Value) -> Result<String, ValueError> {
    Ok(match v {
        Value::Null => "NULL".into(),
        Value::Bool(b) => if *b { "1" } else { "0" }.into(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Decimal(d) => quoted(d),
        Value::Text(s) | Value::Json(s) => quoted(s),
        Value::Bytes(b) => hex(b),
        Value::Bit { bytes, .. } => {
            let bits: String = bytes.iter().map(|x| format!("{x:08b}")).collect();
            format!("b'{bits}'")
        }
        // The rest have plain text forms; the LOAD DATA field is that text.
        _ => {
            let mut out = vec![];
            field(&mut out, v)?;
            let text = String::from_utf8(out).map_err(|_| ValueError("value is not UTF-8 text".into()))?;
            match v {
                Value::Float(_) | Value::Double(_) => text,
                _ => format!("'{text}'"),
            }
        }
    })
}

/// Appends a whole row and its newline; on a refused value the buffer is
/// left as it was.
pub fn row(out: &mut Vec<u8>, values: &[Value]) -> Result<(), ValueError> {
    crate::pipeline::rows::tab_separated_row(out, values, field)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    #[test]
    fn encodes_fields() {
        let mut out = vec![];
        row(
            &mut out,
            &[
                Value::Bytes(Cow::Borrowed(&[0, b'\t', 0xff])),
                Value::Null,
                Value::Text(Cow::Borrowed("a\\b\nc")),
                Value::Duration(-3_020_399_000_000),
            ],
        )
        .unwrap();
        assert_eq!(out, b"\\0\\t\xff\t\\N\ta\\\\b\\nc\t-838:59:59\n");
        assert!(row(&mut out, &[Value::Double(f64::NAN)]).is_err());
        assert_eq!(
            literal(&Value::Text(Cow::Borrowed("it's\\\0"))).unwrap(),
            "'it''s\\\\\\0'"
        );
        assert_eq!(literal(&Value::Bytes(Cow::Borrowed(&[1, 171]))).unwrap(), "X'01AB'");
        assert_eq!(
            literal(&Value::Bit {
                len: 10,
                bytes: Cow::Borrowed(&[2, 1])
            })
            .unwrap(),
            "b'0000001000000001'"
        );
        assert_eq!(literal(&Value::Duration(-1_500_000)).unwrap(), "'-0:00:01.500000'");
        assert!(literal(&Value::Float(f32::NAN)).is_err());
        assert!(row(&mut out, &[Value::Duration(MAX_TIME_US + 1_000_000)]).is_err());
    }
}
