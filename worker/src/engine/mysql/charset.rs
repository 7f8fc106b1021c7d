//! Text columns of other character sets in the binlog.
//!
//! A full load reads text over a utf8mb4 connection, so the server converts
//! every column to UTF-8. The binlog has no connection character set: a row
//! image holds each column's bytes in the column's own set (latin1, cp1251,
//! ucs2, ...). CDC decodes them here, to the same text the full load got:
//! - single-byte sets through a table of all 256 bytes that the source
//!   server itself converts once per stream (so Ferry agrees with the server
//!   byte for byte, MySQL's latin1 being cp1252 with its own holes included);
//! - UCS-2, UTF-16 and UTF-32 by their definitions;
//! - other multi-byte sets (big5, gbk, sjis, ...) are not decoded: a table
//!   with such a column stops at its first change with the reason, rather
//!   than receive text decoded by a guess.

use super::{classify, query_text};
use crate::engine::ConnectorError;
use ferry_common::value::ValueError;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// How a column's bytes become text.
#[derive(Debug)]
pub enum Charset {
    /// Byte `b` is character `map[b]`.
    SingleByte(Box<[char; 256]>),
    Ucs2OrUtf16Be,
    Utf16Le,
    Utf32,
    Unsupported(String),
}

impl Charset {
    pub fn decode(&self, b: &[u8]) -> Result<String, ValueError> {
        let units = |b: &[u8], le: bool| -> Result<String, ValueError> {
            if !b.len().is_multiple_of(2) {
                return Err(ValueError("UTF-16 text of an odd number of bytes".into()));
            }
            let it = b.chunks_exact(2).map(|c| {
                if le {
                    u16::from_le_bytes([c[0], c[1]])
                } else {
                    u16::from_be_bytes([c[0], c[1]])
                }
            });
            char::decode_utf16(it)
                .collect::<Result<String, _>>()
                .map_err(|e| ValueError(format!("invalid UTF-16 text: {e}")))
        };
        match self {
            Charset::SingleByte(map) => Ok(b.iter().map(|x| map[*x as usize]).collect()),
            Charset::Ucs2OrUtf16Be => units(b, false),
            Charset::Utf16Le => units(b, true),
            Charset::Utf32 => {
                if !b.len().is_multiple_of(4) {
                    return Err(ValueError("UTF-32 text of a length not a multiple of 4".into()));
                }
                b.chunks_exact(4)
                    .map(|c| {
                        let u = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
                        char::from_u32(u).ok_or_else(|| ValueError(format!("invalid UTF-32 code point {u:#x}")))
                    })
                    .collect()
            }
            Charset::Unsupported(name) => Err(ValueError(format!(
                "text in character set {name}, which binlog CDC does not decode (convert the column to utf8mb4)"
            ))),
        }
    }
}

/// Whether text in this set arrives as UTF-8 already.
fn is_utf8(name: &str) -> bool {
    matches!(name, "utf8mb4" | "utf8mb3" | "utf8" | "binary")
}

/// The character sets of the given tables' text columns that are not
/// UTF-8, keyed by lower-cased (schema, table, column).
pub async fn of_tables(
    c: &mut Conn,
    tables: &[(String, String)],
) -> Result<HashMap<(String, String, String), Arc<Charset>>, ConnectorError> {
    let schemas: BTreeSet<&str> = tables.iter().map(|(s, _)| s.as_str()).collect();
    let wanted: BTreeSet<(String, String)> = tables
        .iter()
        .map(|(s, t)| (s.to_lowercase(), t.to_lowercase()))
        .collect();
    let mut out = HashMap::new();
    let mut sets: HashMap<String, Arc<Charset>> = HashMap::new();
    for schema in schemas {
        let rows = query_text(
            c,
            "SELECT TABLE_NAME, COLUMN_NAME, CHARACTER_SET_NAME FROM information_schema.COLUMNS
              WHERE TABLE_SCHEMA = ? AND CHARACTER_SET_NAME IS NOT NULL",
            (schema,),
            "reading the source's column character sets",
        )
        .await?;
        for r in rows {
            let (Some(table), Some(column), Some(set)) = (r[0].clone(), r[1].clone(), r[2].clone()) else {
                continue;
            };
            let set = set.to_lowercase();
            if is_utf8(&set) || !wanted.contains(&(schema.to_lowercase(), table.to_lowercase())) {
                continue;
            }
            let cs = match sets.get(&set) {
                Some(cs) => cs.clone(),
                None => {
                    let cs = Arc::new(load(c, &set).await?);
                    sets.insert(set.clone(), cs.clone());
                    cs
                }
            };
            out.insert((schema.to_lowercase(), table.to_lowercase(), column.to_lowercase()), cs);
        }
    }
    Ok(out)
}

async fn load(c: &mut Conn, name: &str) -> Result<Charset, ConnectorError> {
    match name {
        "ucs2" | "utf16" => return Ok(Charset::Ucs2OrUtf16Be),
        "utf16le" => return Ok(Charset::Utf16Le),
        "utf32" => return Ok(Charset::Utf32),
        _ => {}
    }
    let maxlen: Option<u32> = c
        .exec_first(
            "SELECT MAXLEN FROM information_schema.CHARACTER_SETS WHERE CHARACTER_SET_NAME = ?",
            (name,),
        )
        .await
        .map_err(|e| classify(format!("reading character set {name}"), e))?;
    if maxlen != Some(1) || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Ok(Charset::Unsupported(name.to_string()));
    }
    // Each byte converted by the server, as hex so that no conversion of
    // the connection's own touches it.
    let exprs: Vec<String> = (0..=255u8)
        .map(|b| format!("HEX(CONVERT(CONVERT(X'{b:02X}' USING {name}) USING utf8mb4))"))
        .collect();
    let row = query_text(
        c,
        &format!("SELECT {}", exprs.join(", ")),
        (),
        &format!("reading character set {name}'s characters"),
    )
    .await?;
    let row = row.into_iter().next().unwrap_or_default();
    let mut map = Box::new(['\u{fffd}'; 256]);
    for (i, hex) in row.iter().enumerate().take(256) {
        let bytes: Vec<u8> = hex
            .as_deref()
            .unwrap_or("")
            .as_bytes()
            .chunks(2)
            .filter_map(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok())
            .collect();
        let mut chars = std::str::from_utf8(&bytes).unwrap_or("").chars();
        if let (Some(ch), None) = (chars.next(), chars.next()) {
            map[i] = ch;
        }
    }
    Ok(Charset::SingleByte(map))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_sets() {
        assert_eq!(Charset::Ucs2OrUtf16Be.decode(&[0, b'a', 0x20, 0xac]).unwrap(), "a€");
        assert_eq!(Charset::Utf16Le.decode(&[0x3d, 0xd8, 0x80, 0xde]).unwrap(), "🚀");
        assert_eq!(Charset::Utf32.decode(&[0, 1, 0xf6, 0x80]).unwrap(), "🚀");
        assert!(Charset::Ucs2OrUtf16Be.decode(&[0]).is_err());
        assert!(Charset::Unsupported("big5".into()).decode(b"x").is_err());
    }
}
