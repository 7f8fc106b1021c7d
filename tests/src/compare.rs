//! Value-by-value comparison across engines: each side renders a column as
//! text with its own SQL (the pairs a test lists, following the documented
//! type mapping), and the texts are compared as text, as exact floats, or
//! as JSON documents.

use anyhow::Result;
use mysql_async::prelude::Queryable;

#[derive(Clone, Copy, Debug)]
pub enum Cmp {
    Text,
    /// Both sides print the same binary value; parsed, compared exactly.
    Float,
    /// Equal as JSON documents (key order and spacing aside).
    Json,
}

pub fn same(cmp: Cmp, a: &Option<String>, b: &Option<String>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => match cmp {
            Cmp::Text => a == b,
            Cmp::Float => a
                .parse::<f64>()
                .ok()
                .zip(b.parse::<f64>().ok())
                .is_some_and(|(x, y)| x == y),
            Cmp::Json => {
                serde_json::from_str::<serde_json::Value>(a).ok() == serde_json::from_str::<serde_json::Value>(b).ok()
            }
        },
        (None, None) => true,
        _ => false,
    }
}

pub type TextRows = Vec<Vec<Option<String>>>;

/// A MySQL query's rows as the bytes the text protocol returns (same-engine
/// comparisons, byte for byte).
pub async fn mysql_byte_rows(c: &mut mysql_async::Conn, sql: &str) -> Result<Vec<Vec<Option<Vec<u8>>>>> {
    let rows: Vec<mysql_async::Row> = c.query(sql).await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            r.unwrap_raw()
                .into_iter()
                .map(|v| match v {
                    Some(mysql_async::Value::Bytes(b)) => Some(b),
                    _ => None,
                })
                .collect()
        })
        .collect())
}

/// A MySQL query's rows as text (every column must come back as a string).
pub async fn mysql_rows(c: &mut mysql_async::Conn, sql: &str) -> Result<TextRows> {
    Ok(mysql_byte_rows(c, sql)
        .await?
        .into_iter()
        .map(|r| {
            r.into_iter()
                .map(|v| v.map(|b| String::from_utf8(b).expect("utf8")))
                .collect()
        })
        .collect())
}

/// A PostgreSQL query's rows as text (every column must be `text`).
pub async fn pg_rows(c: &tokio_postgres::Client, sql: &str) -> Result<TextRows> {
    Ok(c.query(sql, &[])
        .await?
        .iter()
        .map(|r| (0..r.len()).map(|i| r.get::<_, Option<String>>(i)).collect())
        .collect())
}

/// Asserts that two renderings of a table agree column by column; `columns`
/// names each column and how to compare it, in select-list order.
pub fn assert_same_rows(source: &TextRows, target: &TextRows, columns: &[(&str, Cmp)]) {
    assert_eq!(source.len(), target.len(), "row counts differ");
    for (ra, rb) in source.iter().zip(target) {
        for (i, (name, cmp)) in columns.iter().enumerate() {
            assert!(
                same(*cmp, &ra[i], &rb[i]),
                "row {:?} column {name}: source {:?} target {:?}",
                ra[0],
                ra[i],
                rb[i]
            );
        }
    }
}
