//! Segment reads into the common value model, for targets of another
//! engine: `COPY (SELECT ...) TO STDOUT` in text format, in a session whose
//! settings fix every text form (UTC, ISO dates, hex bytea, shortest exact
//! floats), parsed row by row into [`Value`]s by each column's [`Kind`].
//! Arrays leave the server as JSON (`to_json`), money as numeric.

use super::{classify, connect};
use crate::engine::ConnectorError;
use crate::pipeline::rows::{row_channel, Rejected, Row, Rows};
use ferry_common::endpoint::Endpoint;
use ferry_common::plan::SegmentBounds;
use ferry_common::schema::{quote_ident, quote_literal, TableSchema};
use ferry_common::typemap::{postgres_kind, Kind};
use ferry_common::value::{self, Value, ValueError};
use futures::StreamExt;
use std::borrow::Cow;

/// Undoes text COPY escaping; `None` is `\N`.
fn unescape(field: &[u8]) -> Option<Vec<u8>> {
    if field == b"\\N" {
        return None;
    }
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let b = field[i];
        if b != b'\\' || i + 1 == field.len() {
            out.push(b);
            i += 1;
            continue;
        }
        let e = field[i + 1];
        i += 2;
        match e {
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut v = (e - b'0') as u32;
                for _ in 0..2 {
                    match field.get(i) {
                        Some(d @ b'0'..=b'7') => {
                            v = v * 8 + (d - b'0') as u32;
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push(v as u8);
            }
            b'x' => {
                let mut v = 0u32;
                let mut n = 0;
                while n < 2 {
                    match field.get(i).and_then(|d| (*d as char).to_digit(16)) {
                        Some(d) => {
                            v = v * 16 + d;
                            i += 1;
                            n += 1;
                        }
                        None => break,
                    }
                }
                out.push(v as u8);
            }
            other => out.push(other),
        }
    }
    Some(out)
}

fn hex(s: &str) -> Result<Vec<u8>, ValueError> {
    let h = s
        .strip_prefix("\\x")
        .ok_or_else(|| ValueError(format!("bytea not in hex form: '{s}'")))?;
    (0..h.len() / 2)
        .map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16))
        .collect::<Result<_, _>>()
        .map_err(|_| ValueError(format!("bad bytea hex: '{s}'")))
}

fn bits(s: &str, len: u32) -> Result<Value<'static>, ValueError> {
    let mut bytes = vec![0u8; s.len().div_ceil(8)];
    let pad = bytes.len() * 8 - s.len();
    for (i, c) in s.bytes().enumerate() {
        match c {
            b'1' => bytes[(pad + i) / 8] |= 0x80 >> ((pad + i) % 8),
            b'0' => {}
            _ => return Err(ValueError(format!("not a bit string: '{s}'"))),
        }
    }
    Ok(Value::Bit {
        len,
        bytes: Cow::Owned(bytes),
    })
}

/// Decodes one field of a column of `kind` (its text COPY form, unescaped).
pub fn decode(kind: Kind, raw: Option<Vec<u8>>) -> Result<Value<'static>, ValueError> {
    let Some(raw) = raw else { return Ok(Value::Null) };
    let s = String::from_utf8(raw).map_err(|_| ValueError("text that is not valid UTF-8".into()))?;
    let bad = |what: &str| ValueError(format!("not a valid {what}: '{s}'"));
    let infinite = |v: &str| v.contains("infinity") || v.ends_with(" BC");
    Ok(match kind {
        Kind::Bool => Value::Bool(s == "t"),
        Kind::Int => Value::Int(s.parse().map_err(|_| bad("integer"))?),
        Kind::UInt => Value::UInt(s.parse().map_err(|_| bad("unsigned integer"))?),
        Kind::Decimal if s == "NaN" || s.contains("Infinity") => {
            return Err(ValueError(format!("numeric {s} has no MySQL equivalent")))
        }
        Kind::Decimal => Value::Decimal(Cow::Owned(s)),
        Kind::Float => Value::Float(s.parse().map_err(|_| bad("real"))?),
        Kind::Double => Value::Double(s.parse().map_err(|_| bad("double"))?),
        Kind::Bytes => Value::Bytes(Cow::Owned(hex(&s)?)),
        Kind::Bit(len) => bits(&s, len)?,
        Kind::Date | Kind::DateTime | Kind::Timestamp if infinite(&s) => {
            return Err(ValueError(format!("date {s} has no MySQL equivalent")))
        }
        Kind::Date => Value::Date(value::parse_date(&s)?.ok_or_else(|| bad("date"))?),
        Kind::DateTime => {
            let (d, t) = value::parse_datetime(&s)?.ok_or_else(|| bad("timestamp"))?;
            Value::DateTime(d, t)
        }
        // The session is in UTC, so the offset is always +00.
        Kind::Timestamp => {
            let local = s.strip_suffix("+00").ok_or_else(|| bad("UTC timestamp"))?;
            let (d, t) = value::parse_datetime(local)?.ok_or_else(|| bad("timestamp"))?;
            Value::Timestamp(d, t)
        }
        Kind::Duration => Value::Duration(value::parse_duration(&s)?),
        Kind::Json => Value::Json(Cow::Owned(s)),
        Kind::Text => Value::Text(Cow::Owned(s)),
    })
}

/// A value of a column of type `type_sql` as the server's text output
/// writes it under the replication session's settings (UTC, ISO dates, hex
/// bytea, `lc_monetary=C`), into the value model: the CDC stream's
/// counterpart of the full load's reads, landing the same values.
pub fn decode_text(type_sql: &str, text: &[u8]) -> Result<Value<'static>, ValueError> {
    if type_sql.ends_with("[]") {
        let s = std::str::from_utf8(text).map_err(|_| ValueError("array text that is not valid UTF-8".into()))?;
        return Ok(Value::Json(Cow::Owned(super::array::to_json(
            s,
            super::array::Element::of(type_sql),
        )?)));
    }
    if type_sql == "money" {
        // `-$1,234.56` in the C locale.
        let s = String::from_utf8_lossy(text);
        let digits: String = s.chars().filter(|c| c.is_ascii_digit() || *c == '.').collect();
        if digits.is_empty() {
            return Err(ValueError(format!("not a valid money amount: '{s}'")));
        }
        let sign = if s.starts_with('-') || s.starts_with('(') {
            "-"
        } else {
            ""
        };
        return Ok(Value::Decimal(Cow::Owned(format!("{sign}{digits}"))));
    }
    decode(postgres_kind(type_sql), Some(text.to_vec()))
}

/// Session settings (for one transaction) that fix every text form the
/// value model decodes: UTC, ISO dates, hex bytea, shortest exact floats,
/// C-locale money.
pub(crate) const TEXT_FORMS: &str = "SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO, YMD'; \
     SET LOCAL IntervalStyle = 'postgres'; SET LOCAL extra_float_digits = 1; SET LOCAL bytea_output = 'hex'; \
     SET LOCAL lc_monetary = 'C'";

/// A text COPY line's fields, unescaped (`None` is NULL).
pub(crate) fn split_fields(line: &[u8]) -> Vec<Option<Vec<u8>>> {
    line.split(|b| *b == b'\t').map(unescape).collect()
}

fn parse_line(line: &[u8], kinds: &[Kind]) -> Row {
    parse_fields(line, kinds).map_err(|e| Rejected {
        image: String::from_utf8_lossy(line).into_owned(),
        reason: e.to_string(),
    })
}

fn parse_fields(line: &[u8], kinds: &[Kind]) -> Result<Vec<Value<'static>>, ValueError> {
    let fields: Vec<&[u8]> = line.split(|b| *b == b'\t').collect();
    if fields.len() != kinds.len() {
        return Err(ValueError(format!(
            "COPY row has {} fields, expected {}",
            fields.len(),
            kinds.len()
        )));
    }
    fields
        .into_iter()
        .zip(kinds)
        .map(|(f, k)| decode(*k, unescape(f)))
        .collect()
}

/// Streams the segment's rows, columns in the order of `columns`.
pub async fn read_segment(
    source: &Endpoint,
    t: &TableSchema,
    columns: Vec<String>,
    bounds: &SegmentBounds,
    snapshot: Option<&str>,
    own_text: bool,
) -> Result<Rows, ConnectorError> {
    let snapshot = snapshot.map(str::to_string);
    let name = t.display_name();
    let mut kinds = vec![];
    let mut select = vec![];
    for c in &columns {
        let col = t
            .column(c)
            .ok_or_else(|| ConnectorError::Definite(format!("table {name}: column {c} missing on the source")))?;
        // For a PostgreSQL target every value stays in its text form (bytea
        // in hex), as pgoutput sends it: exact for every type, and the same
        // form CDC carries, so the load and the stream cut and compute alike.
        let kind = if own_text {
            Kind::Text
        } else {
            postgres_kind(&col.type_sql)
        };
        let q = quote_ident(c);
        select.push(if own_text {
            q
        } else if col.type_sql.ends_with("[]") {
            format!("to_json({q})")
        } else if col.type_sql == "money" {
            format!("{q}::numeric")
        } else {
            q
        });
        kinds.push(kind);
    }
    let sql = format!(
        "COPY (SELECT {} FROM {} WHERE {}) TO STDOUT",
        select.join(", "),
        super::own_rows(t),
        super::filter::rows_where(t, bounds)?
    );
    let mut client = connect(source).await?;
    let (mut out, rows) = row_channel();
    tokio::spawn(async move {
        let what = format!("reading table {name} from the source");
        let run = async {
            let txn = client
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await
                .map_err(|e| classify(&what, e))?;
            // A CDC task's table is read in its exported snapshot (see
            // `cdc/apply`); the import must come before anything else.
            if let Some(snap) = &snapshot {
                txn.batch_execute(&format!("SET TRANSACTION SNAPSHOT {}", quote_literal(snap)))
                    .await
                    // A snapshot whose holder died is gone for good; the
                    // coordinator starts a new generation once it notices.
                    .map_err(|e| ConnectorError::Transient(classify("importing the load snapshot", e).to_string()))?;
            }
            txn.batch_execute(TEXT_FORMS).await.map_err(|e| classify(&what, e))?;
            let stream = txn.copy_out(&sql).await.map_err(|e| classify(&what, e))?;
            futures::pin_mut!(stream);
            let mut lines = Lines::default();
            while let Some(chunk) = stream.next().await {
                lines.feed(&chunk.map_err(|e| classify(&what, e))?);
                while let Some(line) = lines.next_line() {
                    if !out.push(parse_line(line, &kinds), line.len()).await {
                        return Ok(());
                    }
                }
            }
            Ok::<(), ConnectorError>(())
        };
        let result = run.await;
        out.finish(result).await;
    });
    Ok(rows)
}

/// Cuts a text COPY stream into rows: a row may span messages, and a
/// message may hold several rows.
#[derive(Default)]
pub struct Lines {
    buf: Vec<u8>,
    /// Where the next row starts in `buf`.
    start: usize,
}

impl Lines {
    /// The capacity kept between rows.
    const KEEP: usize = 4 << 20;

    pub fn feed(&mut self, chunk: &[u8]) {
        self.buf.drain(..self.start);
        self.start = 0;
        // A large row (a LOB value) grew the buffer; give that memory back
        // once it is parsed rather than hold it for the rest of the segment.
        if self.buf.capacity() > Self::KEEP && self.buf.len() + chunk.len() <= Self::KEEP {
            self.buf.shrink_to(Self::KEEP);
        }
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete row, without its newline.
    pub fn next_line(&mut self) -> Option<&[u8]> {
        let end = self.buf[self.start..].iter().position(|b| *b == b'\n')?;
        let line = &self.buf[self.start..self.start + end];
        self.start += end + 1;
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_rows_across_messages() {
        let mut l = Lines::default();
        l.feed(b"a\tb\nc");
        assert_eq!(l.next_line(), Some(&b"a\tb"[..]));
        assert_eq!(l.next_line(), None);
        l.feed(b"d\ne\n");
        assert_eq!(l.next_line(), Some(&b"cd"[..]));
        assert_eq!(l.next_line(), Some(&b"e"[..]));
        assert_eq!(l.next_line(), None);
    }

    #[test]
    fn parses_text_copy() {
        assert_eq!(unescape(b"a\\tb\\\\c\\nd\\101\\x41"), Some(b"a\tb\\c\ndAA".to_vec()));
        assert_eq!(unescape(b"\\N"), None);
        let row = parse_fields(
            b"t\t-5\t\\\\x00ff\t2038-01-19 03:14:08.5+00\t0101\t\\N",
            &[
                Kind::Bool,
                Kind::Int,
                Kind::Bytes,
                Kind::Timestamp,
                Kind::Bit(4),
                Kind::Text,
            ],
        )
        .unwrap();
        assert!(parse_line(b"x", &[Kind::Int]).is_err());
        assert_eq!(row[0], Value::Bool(true));
        assert_eq!(row[2], Value::Bytes(Cow::Owned(vec![0, 255])));
        assert_eq!(
            row[4],
            Value::Bit {
                len: 4,
                bytes: Cow::Owned(vec![5])
            }
        );
        assert_eq!(row[5], Value::Null);
        assert!(decode(Kind::Date, Some(b"infinity".to_vec())).is_err());
        assert!(decode(Kind::Decimal, Some(b"NaN".to_vec())).is_err());
        assert_eq!(
            decode_text("money", b"-$1,234.50").unwrap(),
            Value::Decimal(Cow::Borrowed("-1234.50"))
        );
        assert_eq!(
            decode_text("integer[]", b"{1,NULL}").unwrap(),
            Value::Json(Cow::Borrowed("[1,null]"))
        );
        assert_eq!(decode_text("bigint", b"-7").unwrap(), Value::Int(-7));
    }
}
