//! Values of the common model as fields of PostgreSQL's text COPY format
//! (`\N` for NULL; backslash, newline, carriage return and tab escaped).
//! A value PostgreSQL cannot hold exactly is refused here, before it reaches
//! the server, so that one bad row goes to the exceptions table instead of
//! failing the whole segment.

use ferry_common::value::{format_duration, push_hex, Value, ValueError};
use std::io::Write as _;

fn special(b: u8) -> bool {
    matches!(b, 0 | b'\\' | b'\n' | b'\r' | b'\t')
}

fn nul() -> ValueError {
    ValueError("text contains a NUL byte, which PostgreSQL cannot store".into())
}

/// Refuses JSON with a `\u0000` escape (jsonb refuses it).
fn json_storable(s: &str) -> Result<(), ValueError> {
    match s.contains("\\u0000") {
        true => Err(ValueError("JSON contains \\u0000, which jsonb cannot store".into())),
        false => Ok(()),
    }
}

/// Refuses text PostgreSQL cannot store: a NUL byte, or in JSON a
/// `\u0000` escape.
fn storable(v: &Value) -> Result<(), ValueError> {
    if let Value::Json(s) = v {
        json_storable(s)?;
    }
    match v {
        Value::Text(s) | Value::Json(s) if s.as_bytes().contains(&0) => Err(nul()),
        _ => Ok(()),
    }
}

fn escaped(out: &mut Vec<u8>, s: &str) -> Result<(), ValueError> {
    let bytes = s.as_bytes();
    // Most values need no escaping: runs between special bytes go whole.
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !special(b) {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        start = i + 1;
        match b {
            0 => return Err(nul()),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.extend_from_slice(b"\\t"),
        }
    }
    out.extend_from_slice(&bytes[start..]);
    Ok(())
}

fn float(out: &mut Vec<u8>, v: f64, debug: String) {
    let s = if v.is_nan() {
        "NaN".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "Infinity" } else { "-Infinity" }.to_string()
    } else {
        debug
    };
    out.extend_from_slice(s.as_bytes());
}

fn date_ok(year: i32) -> Result<(), ValueError> {
    // PostgreSQL has no year 0 (1 BC follows AD 1); MySQL allows 0000.
    if year < 1 {
        return Err(ValueError(format!("year {year} has no PostgreSQL equivalent")));
    }
    Ok(())
}

/// Appends one field (without the separator).
pub fn field(out: &mut Vec<u8>, v: &Value) -> Result<(), ValueError> {
    match v {
        Value::Null => out.extend_from_slice(b"\\N"),
        Value::Bool(b) => out.push(if *b { b't' } else { b'f' }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::UInt(u) => {
            let _ = write!(out, "{u}");
        }
        Value::Float(f) => float(out, *f as f64, format!("{f:?}")),
        Value::Double(f) => float(out, *f, format!("{f:?}")),
        Value::Decimal(d) => out.extend_from_slice(d.as_bytes()),
        Value::Text(s) => escaped(out, s)?,
        Value::Json(s) => {
            // `escaped` refuses a NUL as it copies; no second pass for it.
            json_storable(s)?;
            escaped(out, s)?
        }
        Value::Bytes(b) => {
            let mut s = String::with_capacity(3 + 2 * b.len());
            s.push_str("\\\\x");
            push_hex(&mut s, b, false);
            out.extend_from_slice(s.as_bytes());
        }
        Value::Bit { len, bytes } => {
            let total = bytes.len() * 8;
            let len = *len as usize;
            if len > total && bytes.len() < len.div_ceil(8) {
                return Err(ValueError(format!("BIT({len}) value has only {} bytes", bytes.len())));
            }
            for i in total.saturating_sub(len)..total {
                let bit = bytes[i / 8] >> (7 - i % 8) & 1;
                out.push(b'0' + bit);
            }
        }
        Value::Date(d) => {
            date_ok(d.year)?;
            out.extend_from_slice(d.to_string().as_bytes())
        }
        Value::DateTime(d, t) => {
            date_ok(d.year)?;
            out.extend_from_slice(format!("{d} {t}").as_bytes())
        }
        Value::Timestamp(d, t) => {
            date_ok(d.year)?;
            out.extend_from_slice(format!("{d} {t}+00").as_bytes())
        }
        Value::Duration(us) => out.extend_from_slice(format_duration(*us).as_bytes()),
    }
    Ok(())
}

/// The longest piece of a string literal Ferry writes. PostgreSQL's
/// scanner cannot take a literal of 512 MiB or more (its buffer doubles up
/// to the 1 GB allocation limit), so a longer value is written as a
/// concatenation of literals of at most this many bytes.
const LITERAL_PIECE: usize = 256 << 20;

/// A value as an SQL literal cast to the target column's type (CDC apply).
/// The text is the COPY field's, unescaped; a value PostgreSQL cannot hold
/// is refused exactly as the full load refuses it.
pub fn literal(v: &Value, ty: &str) -> Result<String, ValueError> {
    literal_in_pieces(v, ty, LITERAL_PIECE)
}

fn literal_in_pieces(v: &Value, ty: &str, piece: usize) -> Result<String, ValueError> {
    if matches!(v, Value::Null) {
        return Ok("NULL".into());
    }
    // Built in one string: a LOB value is copied once, not once per step.
    let mut out = String::new();
    match v {
        Value::Text(s) | Value::Json(s) => {
            storable(v)?;
            let mut pieces = vec![];
            let mut rest = s.as_ref();
            loop {
                let mut end = rest.len().min(piece);
                while !rest.is_char_boundary(end) {
                    end -= 1;
                }
                if end == 0 {
                    end = rest.chars().next().map_or(0, char::len_utf8);
                }
                let (head, tail) = rest.split_at(end);
                pieces.push(head);
                rest = tail;
                if rest.is_empty() {
                    break;
                }
            }
            out.reserve(s.len() + ty.len() + 8 + 6 * pieces.len());
            concatenation(&mut out, &pieces, |out, p| {
                out.push('\'');
                for (i, part) in p.split('\'').enumerate() {
                    if i > 0 {
                        out.push_str("''");
                    }
                    out.push_str(part);
                }
                out.push('\'');
            });
        }
        Value::Bytes(b) => {
            let pieces: Vec<&[u8]> = if b.is_empty() {
                vec![&[]]
            } else {
                b.chunks(piece / 2).collect()
            };
            out.reserve(2 * b.len() + ty.len() + 8 + 16 * pieces.len());
            let cast = if pieces.len() > 1 { "::bytea" } else { "" };
            concatenation(&mut out, &pieces, |out, p| {
                out.push_str("'\\x");
                push_hex(out, p, false);
                out.push('\'');
                out.push_str(cast);
            });
        }
        _ => {
            let mut text = vec![];
            field(&mut text, v)?;
            let text = String::from_utf8(text).map_err(|_| ValueError("value is not UTF-8 text".into()))?;
            out = ferry_common::schema::quote_literal(&text);
        }
    }
    out.push_str("::");
    out.push_str(ty);
    Ok(out)
}

/// Appends `pieces` written by `piece`, joined by `||` in parentheses
/// when there are several.
fn concatenation<T>(out: &mut String, pieces: &[T], piece: impl Fn(&mut String, &T)) {
    let several = pieces.len() > 1;
    if several {
        out.push('(');
    }
    for (i, p) in pieces.iter().enumerate() {
        if i > 0 {
            out.push_str(" || ");
        }
        piece(out, p);
    }
    if several {
        out.push(')');
    }
}

/// Appends a whole row and its newline; on a refused value the buffer is
/// left as it was.
pub fn row(out: &mut Vec<u8>, values: &[Value]) -> Result<(), ValueError> {
    crate::pipeline::rows::tab_separated_row(out, values, field)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_common::value::{Date, TimeOfDay};
    use std::borrow::Cow;

    fn enc(v: Value) -> String {
        let mut out = vec![];
        field(&mut out, &v).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn encodes_fields() {
        assert_eq!(enc(Value::UInt(u64::MAX)), "18446744073709551615");
        assert_eq!(enc(Value::Text(Cow::Borrowed("a\tb\\c\nd"))), "a\\tb\\\\c\\nd");
        assert_eq!(enc(Value::Bytes(Cow::Borrowed(&[0, 255]))), "\\\\x00ff");
        assert_eq!(
            enc(Value::Bit {
                len: 10,
                bytes: Cow::Borrowed(&[0b10, 0b0000_0001])
            }),
            "1000000001"
        );
        assert_eq!(enc(Value::Double(1e300)), "1e300");
        assert_eq!(enc(Value::Float(f32::NEG_INFINITY)), "-Infinity");
        let d = Date {
            year: 2038,
            month: 1,
            day: 19,
        };
        let t = TimeOfDay {
            hour: 3,
            minute: 14,
            second: 8,
            micros: 1,
        };
        assert_eq!(enc(Value::Timestamp(d, t)), "2038-01-19 03:14:08.000001+00");
        assert_eq!(enc(Value::Duration(-3_020_399_000_000)), "-838:59:59");
        assert_eq!(
            literal(&Value::Text(Cow::Borrowed("it's\\")), "text").unwrap(),
            "'it''s\\'::text"
        );
        assert_eq!(
            literal(&Value::Bytes(Cow::Borrowed(&[1, 171])), "bytea").unwrap(),
            "'\\x01ab'::bytea"
        );
        assert_eq!(literal(&Value::Null, "int").unwrap(), "NULL");
        assert_eq!(literal(&Value::Text(Cow::Borrowed("")), "text").unwrap(), "''::text");
        // Past the scanner's limit, a value is a concatenation of pieces
        // (cut at character boundaries).
        assert_eq!(
            literal_in_pieces(&Value::Text(Cow::Borrowed("ab'cdé")), "text", 4).unwrap(),
            "('ab''c' || 'dé')::text"
        );
        assert_eq!(
            literal_in_pieces(&Value::Text(Cow::Borrowed("abcd")), "text", 4).unwrap(),
            "'abcd'::text"
        );
        assert_eq!(
            literal_in_pieces(&Value::Bytes(Cow::Borrowed(&[1, 2, 3])), "bytea", 4).unwrap(),
            "('\\x0102'::bytea || '\\x03'::bytea)::bytea"
        );
        assert!(literal(&Value::Text(Cow::Borrowed("a\0")), "text").is_err());
        let mut out = b"x".to_vec();
        assert!(row(&mut out, &[Value::Int(1), Value::Text(Cow::Borrowed("a\0b"))]).is_err());
        assert_eq!(out, b"x");
    }
}
