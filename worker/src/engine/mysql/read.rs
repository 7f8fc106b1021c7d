//! Segment reads: `SELECT cols FROM t WHERE <key range>` streamed row by
//! row over the text protocol (the client reads a packet at a time, so
//! memory is one row whatever the table size), decoded into the common
//! value model by each column's [`Kind`].
//!
//! Key ranges are keyset predicates (`k >= lo AND k < hi`, expanded into
//! OR/AND form for composite keys, which every MySQL optimizer turns into
//! an index range), never OFFSET.

use super::{classify, quote};
use crate::engine::ConnectorError;
use crate::pipeline::rows::{row_channel, Rejected, Row, Rows};
use ferry_common::plan::{KeyColumn, SegmentBounds};
use ferry_common::schema::TableSchema;
use ferry_common::typemap::{mysql_kind, Kind};
use ferry_common::value::{self, Value, ValueError};
use futures::StreamExt;
use mysql_async::prelude::Queryable;
use std::borrow::Cow;

/// A MySQL literal for a key value: numbers bare (a quoted string compared
/// with a BIGINT would go through DOUBLE and lose precision past 2^53).
fn literal(col: &KeyColumn, v: &str) -> String {
    let numeric = matches!(mysql_kind(&col.type_sql), Kind::Int | Kind::UInt | Kind::Decimal)
        && !v.is_empty()
        && v.bytes()
            .enumerate()
            .all(|(i, b)| b.is_ascii_digit() || b == b'.' || (i == 0 && b == b'-'));
    if numeric {
        v.to_string()
    } else {
        // Hex keeps any bytes intact whatever the session's escaping mode;
        // the column's collation then compares it as a string.
        format!("CONVERT(X'{}' USING utf8mb4)", hex(v.as_bytes()))
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `(c1, c2) >= (v1, v2)` as `c1 > v1 OR (c1 = v1 AND c2 >= v2)`.
fn tuple_ge(cols: &[KeyColumn], vals: &[String]) -> String {
    let (c, v) = (&cols[0], &vals[0]);
    let (qc, lit) = (quote(&c.name), literal(c, v));
    if cols.len() == 1 {
        return format!("{qc} >= {lit}");
    }
    format!(
        "({qc} > {lit} OR ({qc} = {lit} AND {}))",
        tuple_ge(&cols[1..], &vals[1..])
    )
}

pub fn predicate(bounds: &SegmentBounds) -> Result<String, ConnectorError> {
    match bounds {
        SegmentBounds::All => Ok("TRUE".into()),
        SegmentBounds::Ctid { .. } => Err(ConnectorError::Definite(
            "CTID segments are a PostgreSQL notion; a MySQL table is cut by key ranges".into(),
        )),
        SegmentBounds::Key { columns, lower, upper } => {
            let mut p = vec![];
            if let Some(l) = lower {
                p.push(format!("({}) IS TRUE", tuple_ge(columns, l)));
            }
            if let Some(u) = upper {
                p.push(format!("NOT (({}) IS TRUE)", tuple_ge(columns, u)));
            }
            Ok(if p.is_empty() { "TRUE".into() } else { p.join(" AND ") })
        }
    }
}

/// Decodes one text-protocol value of a column of `kind`. The value is
/// taken out of `raw` only when it decodes, so a refused row can still be
/// shown whole (without formatting every row in advance).
pub fn decode(kind: Kind, raw: &mut Option<mysql_async::Value>) -> Result<Value<'static>, ValueError> {
    let bytes = match raw {
        None | Some(mysql_async::Value::NULL) => return Ok(Value::Null),
        Some(mysql_async::Value::Bytes(b)) => b,
        Some(other) => return Err(ValueError(format!("unexpected binary-protocol value {other:?}"))),
    };
    let text = |b: &mut Vec<u8>| match String::from_utf8(std::mem::take(b)) {
        Ok(s) => Ok(s),
        Err(e) => {
            *b = e.into_bytes();
            Err(ValueError("text that is not valid UTF-8".into()))
        }
    };
    Ok(match kind {
        Kind::Bytes => Value::Bytes(Cow::Owned(std::mem::take(bytes))),
        Kind::Bit(len) => Value::Bit {
            len,
            bytes: Cow::Owned(std::mem::take(bytes)),
        },
        Kind::Text => Value::Text(Cow::Owned(text(bytes)?)),
        Kind::Json => Value::Json(Cow::Owned(text(bytes)?)),
        Kind::Decimal => Value::Decimal(Cow::Owned(text(bytes)?)),
        kind => {
            let s = std::str::from_utf8(bytes).map_err(|_| ValueError("value is not ASCII text".into()))?;
            let bad = |what: &str| ValueError(format!("not a valid {what}: '{s}'"));
            match kind {
                Kind::Bool => Value::Bool(s != "0"),
                Kind::Int => Value::Int(s.parse().map_err(|_| bad("integer"))?),
                Kind::UInt => Value::UInt(s.parse().map_err(|_| bad("unsigned integer"))?),
                // Read as DOUBLE (see `read_segment`): exact, and a FLOAT value.
                Kind::Float => Value::Float(s.parse::<f64>().map_err(|_| bad("float"))? as f32),
                Kind::Double => Value::Double(s.parse().map_err(|_| bad("double"))?),
                // Zero dates have no equivalent: the policy is NULL.
                Kind::Date => value::parse_date(s)?.map_or(Value::Null, Value::Date),
                Kind::DateTime => value::parse_datetime(s)?.map_or(Value::Null, |(d, t)| Value::DateTime(d, t)),
                Kind::Timestamp => value::parse_datetime(s)?.map_or(Value::Null, |(d, t)| Value::Timestamp(d, t)),
                Kind::Duration => Value::Duration(value::parse_duration(s)?),
                _ => unreachable!("handled above"),
            }
        }
    })
}

/// A column as the value model reads it: FLOAT's text form keeps 6 digits,
/// as a DOUBLE it is exact.
pub(crate) fn select_expr(column: &str, kind: Kind) -> String {
    match kind {
        Kind::Float => format!("CAST({} AS DOUBLE)", quote(column)),
        _ => quote(column),
    }
}

/// Streams the segment's rows, columns in the order of `columns`. With
/// `consistent` (CDC tasks) the rows are read in a consistent snapshot whose
/// binlog position is returned (see `binlog`).
pub async fn read_segment(
    source: &ferry_common::endpoint::Endpoint,
    t: &TableSchema,
    columns: Vec<String>,
    bounds: &SegmentBounds,
    consistent: bool,
) -> Result<(Rows, Option<ferry_common::position::Position>), ConnectorError> {
    let name = t.display_name();
    let kinds: Vec<Kind> = columns
        .iter()
        .map(|c| t.column(c).map(|c| mysql_kind(&c.type_sql)))
        .collect::<Option<_>>()
        .ok_or_else(|| ConnectorError::Definite(format!("table {name}: column list does not match the source")))?;
    let list: Vec<String> = columns.iter().zip(&kinds).map(|(c, k)| select_expr(c, *k)).collect();
    let sql = format!(
        "SELECT {} FROM {}.{} WHERE {}",
        list.join(", "),
        quote(&t.schema),
        quote(&t.name),
        super::filter::rows_where(t, bounds)?
    );
    let mut conn = super::connect(source).await?;
    // The rows wait while the target is slow (see STREAM_STALL_S).
    conn.query_drop(format!(
        "SET SESSION net_write_timeout = {}",
        super::connect::STREAM_STALL_S
    ))
    .await
    .map_err(|e| classify(format!("setting up a read of table {name}"), e))?;
    let position = if consistent {
        Some(super::position::begin_snapshot(&mut conn).await?.into())
    } else {
        None
    };
    let (mut out, rows) = row_channel();
    // The connection must outlive the result stream that borrows it, so the
    // read runs in a task of its own.
    tokio::spawn(async move {
        let what = format!("reading table {name} from the source");
        let run = async {
            let mut result = conn.query_iter(sql).await.map_err(|e| classify(&what, e))?;
            let Some(mut stream) = result
                .stream::<mysql_async::Row>()
                .await
                .map_err(|e| classify(&what, e))?
            else {
                return Ok(());
            };
            while let Some(row) = stream.next().await {
                let mut raw = row.map_err(|e| classify(&what, e))?.unwrap_raw();
                let bytes = raw
                    .iter()
                    .map(|v| match v {
                        Some(mysql_async::Value::Bytes(b)) => b.len(),
                        _ => 8,
                    })
                    .sum();
                if !out.push(decode_row(&mut raw, &kinds), bytes).await {
                    return Ok(());
                }
            }
            Ok(())
        };
        let result = run.await;
        out.finish(result).await;
    });
    Ok((rows, position))
}

/// Decodes a row; a refused one keeps its image: the values decoded so far,
/// then the raw rest from the failing column on.
fn decode_row(raw: &mut [Option<mysql_async::Value>], kinds: &[Kind]) -> Row {
    let mut values = Vec::with_capacity(raw.len());
    for (v, k) in raw.iter_mut().zip(kinds) {
        match decode(*k, v) {
            Ok(x) => values.push(x),
            Err(e) => {
                return Err(Rejected {
                    image: format!("{values:?} {:?}", &raw[values.len()..]),
                    reason: e.to_string(),
                })
            }
        }
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(n: &str, t: &str) -> KeyColumn {
        KeyColumn {
            name: n.into(),
            type_sql: t.into(),
            nullable: false,
        }
    }

    #[test]
    fn keyset_predicates() {
        let b = SegmentBounds::Key {
            columns: vec![k("a", "bigint(20) unsigned"), k("b", "varchar(10)")],
            lower: Some(vec!["18446744073709551615".into(), "x".into()]),
            upper: None,
        };
        assert_eq!(
            predicate(&b).unwrap(),
            "((`a` > 18446744073709551615 OR (`a` = 18446744073709551615 AND `b` >= CONVERT(X'78' USING utf8mb4)))) IS TRUE"
        );
    }

    #[test]
    fn decodes_text_values() {
        let b = |s: &str| Some(mysql_async::Value::Bytes(s.as_bytes().to_vec()));
        assert_eq!(
            decode(Kind::UInt, &mut b("18446744073709551615")).unwrap(),
            Value::UInt(u64::MAX)
        );
        assert_eq!(decode(Kind::Date, &mut b("0000-00-00")).unwrap(), Value::Null);
        assert_eq!(
            decode(Kind::Duration, &mut b("-838:59:59")).unwrap(),
            Value::Duration(-3_020_399_000_000)
        );
        assert!(decode(Kind::Int, &mut b("x")).is_err());
        let mut row = vec![b("1"), Some(mysql_async::Value::Bytes(vec![0xff])), b("2")];
        let refused = decode_row(&mut row, &[Kind::Int, Kind::Text, Kind::Int]).unwrap_err();
        assert!(
            refused.image.contains("Int(1)") && refused.image.matches("Bytes(").count() == 2,
            "{}",
            refused.image
        );
    }
}
