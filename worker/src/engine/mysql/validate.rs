//! MySQL's side of validation (see `pipeline/validate`): range checksums
//! computed by the server, split points in key order, rows as text, and the
//! `ferry.validation_failures` control table.

use super::{classify, connect, quote, quote_table};
use crate::engine::validation::{Checksum, ValidationReader};
use crate::engine::ConnectorError;
use ferry_common::control::ControlTables;
use ferry_common::endpoint::Endpoint;
use ferry_common::plan::SegmentBounds;
use ferry_common::schema::TableSchema;
use ferry_common::typemap::{mysql_kind, Kind};
use ferry_common::value::{Value, ValueError};
use ferry_common::work::ValidationFailure;
use futures::StreamExt;
use mysql_async::prelude::Queryable;

fn failures_ddl(c: &ControlTables) -> [String; 2] {
    [
        format!("CREATE DATABASE IF NOT EXISTS {}", c.schema),
        format!(
            "CREATE TABLE IF NOT EXISTS {}.validation_failures (
    task VARCHAR(255) NOT NULL, table_owner VARCHAR(255) NOT NULL, table_name VARCHAR(255) NOT NULL,
    segment INT NOT NULL, `key` TEXT NOT NULL, failure_type VARCHAR(16) NOT NULL, details TEXT NOT NULL,
    failure_time TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    KEY (task, table_owner, table_name, segment)) CHARACTER SET utf8mb4",
            c.schema
        ),
    ]
}

fn key_list(bounds: &SegmentBounds) -> Vec<String> {
    match bounds {
        SegmentBounds::Key { columns, .. } => columns.iter().map(|c| quote(&c.name)).collect(),
        _ => vec![],
    }
}

/// Decodes a text field as the full load does (FLOAT columns are read
/// through DOUBLE, see `read::select_expr`, as there).
pub fn decode(kind: Kind, raw: &[u8]) -> Result<Value<'static>, ValueError> {
    super::read::decode(kind, &mut Some(mysql_async::Value::Bytes(raw.to_vec())))
}

impl ValidationReader for super::Mysql {
    /// `(count, sum of the first 64 bits of md5(row bytes))` over the range.
    async fn checksum(
        &self,
        ep: &Endpoint,
        t: &TableSchema,
        columns: &[String],
        bounds: &SegmentBounds,
    ) -> Result<Checksum, ConnectorError> {
        let what = format!("checksumming table {} on {ep}", t.display_name());
        // HEX of each value's bytes, 'N' for NULL (not a hex digit), so
        // neither separators nor NULLs are ambiguous.
        let fields: Vec<String> = columns
            .iter()
            .map(|c| format!("IFNULL(HEX(CAST({} AS BINARY)), 'N')", quote(c)))
            .collect();
        let sql = format!(
            "SELECT COUNT(*), CAST(COALESCE(SUM(CAST(CONV(LEFT(MD5(CONCAT_WS('#', {})), 16), 16, 10) AS DECIMAL(65,0))), 0) AS CHAR) \
             FROM {} WHERE {}",
            fields.join(", "),
            quote_table(t),
            super::filter::rows_where(t, bounds)?
        );
        let mut conn = connect(ep).await?;
        let rows = super::query_text(&mut conn, &sql, (), &what).await?;
        let row = rows
            .first()
            .ok_or_else(|| ConnectorError::Definite(format!("{what}: no result")))?;
        let rows = row[0].as_deref().unwrap_or("0").parse().unwrap_or(0);
        Ok(Checksum {
            rows,
            sum: row[1].clone().unwrap_or_default(),
        })
    }

    /// Keys (as text) that cut the range into parts of `every` rows, in key order.
    async fn split_points(
        &self,
        ep: &Endpoint,
        t: &TableSchema,
        bounds: &SegmentBounds,
        every: u64,
    ) -> Result<Vec<Vec<String>>, ConnectorError> {
        let what = format!("sampling keys of table {} on {ep}", t.display_name());
        let keys = key_list(bounds);
        let sql = format!(
            "SELECT {} FROM (SELECT {}, ROW_NUMBER() OVER (ORDER BY {}) AS ferry_rn FROM {} WHERE {}) s \
             WHERE MOD(ferry_rn, {every}) = 1 AND ferry_rn > 1 ORDER BY ferry_rn",
            keys.join(", "),
            keys.join(", "),
            keys.join(", "),
            quote_table(t),
            super::filter::rows_where(t, bounds)?
        );
        let mut conn = connect(ep).await?;
        let rows = super::query_text(&mut conn, &sql, (), &what).await?;
        Ok(rows
            .into_iter()
            .map(|r| r.into_iter().map(Option::unwrap_or_default).collect())
            .collect())
    }

    /// Streams the range's rows as text fields (`None` is NULL).
    async fn read_text(
        &self,
        ep: &Endpoint,
        t: &TableSchema,
        columns: &[String],
        bounds: &SegmentBounds,
        row: &mut (dyn FnMut(Vec<Option<Vec<u8>>>) + Send),
    ) -> Result<(), ConnectorError> {
        let what = format!("reading table {} on {ep} for validation", t.display_name());
        let list: Vec<String> = columns
            .iter()
            .map(|c| {
                let kind = t.column(c).map_or(Kind::Text, |col| mysql_kind(&col.type_sql));
                super::read::select_expr(c, kind)
            })
            .collect();
        let sql = format!(
            "SELECT {} FROM {} WHERE {}",
            list.join(", "),
            quote_table(t),
            super::filter::rows_where(t, bounds)?
        );
        let mut conn = connect(ep).await?;
        let mut result = conn.query_iter(sql).await.map_err(|e| classify(&what, e))?;
        let Some(mut stream) = result
            .stream::<mysql_async::Row>()
            .await
            .map_err(|e| classify(&what, e))?
        else {
            return Ok(());
        };
        while let Some(r) = stream.next().await {
            let raw = r.map_err(|e| classify(&what, e))?.unwrap_raw();
            row(raw
                .into_iter()
                .map(|v| match v {
                    None | Some(mysql_async::Value::NULL) => None,
                    Some(mysql_async::Value::Bytes(b)) => Some(b),
                    Some(other) => Some(other.as_sql(true).trim_matches('\'').as_bytes().to_vec()),
                })
                .collect());
        }
        Ok(())
    }

    /// Replaces the segment's recorded failures with `failures`, atomically.
    async fn record_failures(
        &self,
        ep: &Endpoint,
        task: &str,
        control: &ControlTables,
        table: &TableSchema,
        segment: u32,
        failures: &[ValidationFailure],
    ) -> Result<(), ConnectorError> {
        let what = format!(
            "recording validation failures of table {} on {ep}",
            table.display_name()
        );
        let mut conn = connect(ep).await?;
        for ddl in failures_ddl(control) {
            conn.query_drop(ddl).await.map_err(|e| classify(&what, e))?;
        }
        let mut txn = conn
            .start_transaction(mysql_async::TxOpts::default())
            .await
            .map_err(|e| classify(&what, e))?;
        txn.exec_drop(
            format!(
                "DELETE FROM {} WHERE task = ? AND table_owner = ? AND table_name = ? AND segment = ?",
                control.table("validation_failures")
            ),
            (task, &table.schema, &table.name, segment),
        )
        .await
        .map_err(|e| classify(&what, e))?;
        txn.exec_batch(
            format!(
                "INSERT INTO {} (task, table_owner, table_name, segment, `key`, failure_type, details) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
                control.table("validation_failures")
            ),
            failures.iter().map(|f| {
                (
                    task,
                    &table.schema,
                    &table.name,
                    segment,
                    &f.key,
                    f.failure_type.as_str(),
                    &f.details,
                )
            }),
        )
        .await
        .map_err(|e| classify(&what, e))?;
        txn.commit().await.map_err(|e| classify(&what, e))
    }

    fn decode_type(&self, type_sql: &str, raw: &[u8]) -> Result<Value<'static>, ValueError> {
        decode(mysql_kind(type_sql), raw)
    }

    fn carries_own_text(&self) -> bool {
        false
    }

    fn decode_kind(&self, kind: Kind, raw: &[u8]) -> Result<Value<'static>, ValueError> {
        decode(kind, raw)
    }
}
