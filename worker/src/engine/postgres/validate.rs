//! PostgreSQL's side of validation (see `pipeline/validate`): range
//! checksums computed by the server, split points in key order, rows as
//! text, and the `ferry.validation_failures` control table.

use super::read::TEXT_FORMS;
use super::{classify, connect};
use crate::engine::validation::{Checksum, ValidationReader};
use crate::engine::ConnectorError;
use ferry_common::control::ControlTables;
use ferry_common::endpoint::Endpoint;
use ferry_common::plan::SegmentBounds;
use ferry_common::schema::{quote_ident, TableSchema};
use ferry_common::typemap::Kind;
use ferry_common::value::{Value, ValueError};
use ferry_common::work::ValidationFailure;
use futures::StreamExt;

fn failures_ddl(c: &ControlTables) -> String {
    format!(
        "CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.validation_failures (
    task text NOT NULL, table_owner text NOT NULL, table_name text NOT NULL, segment int NOT NULL,
    key text NOT NULL, failure_type text NOT NULL, details text NOT NULL,
    failure_time timestamptz NOT NULL DEFAULT now());
CREATE INDEX IF NOT EXISTS validation_failures_task ON {s}.validation_failures (task, table_owner, table_name, segment);",
        s = c.schema
    )
}

/// Advisory lock key serializing the control table's creation.
const DDL_LOCK: i64 = 0x6665_7272_7976;

/// A read-only transaction whose text forms are fixed, so both sides of a
/// same-engine pair print a value identically.
async fn reading<'a>(
    client: &'a mut tokio_postgres::Client,
    what: &str,
) -> Result<tokio_postgres::Transaction<'a>, ConnectorError> {
    let txn = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(|e| classify(what, e))?;
    txn.batch_execute(TEXT_FORMS).await.map_err(|e| classify(what, e))?;
    Ok(txn)
}

fn key_list(bounds: &SegmentBounds) -> Vec<String> {
    match bounds {
        SegmentBounds::Key { columns, .. } => columns.iter().map(|c| quote_ident(&c.name)).collect(),
        _ => vec![],
    }
}

impl ValidationReader for super::Postgres {
    /// `(count, sum of the first 64 bits of md5(row text))` over the range.
    async fn checksum(
        &self,
        ep: &Endpoint,
        t: &TableSchema,
        columns: &[String],
        bounds: &SegmentBounds,
    ) -> Result<Checksum, ConnectorError> {
        let what = format!("checksumming table {} on {ep}", t.display_name());
        let cols: Vec<String> = columns.iter().map(|c| quote_ident(c)).collect();
        let sql = format!(
            "SELECT count(*), coalesce(sum(('x' || left(md5(ROW({})::text), 16))::bit(64)::bigint::numeric), 0)::text \
             FROM {} WHERE {}",
            cols.join(", "),
            super::own_rows(t),
            super::filter::rows_where(t, bounds)?
        );
        let mut client = connect(ep).await?;
        let txn = reading(&mut client, &what).await?;
        let row = txn.query_one(&sql, &[]).await.map_err(|e| classify(&what, e))?;
        Ok(Checksum {
            rows: row.get::<_, i64>(0) as u64,
            sum: row.get(1),
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
        let as_text: Vec<String> = keys.iter().map(|k| format!("{k}::text")).collect();
        let sql = format!(
            "SELECT {} FROM (SELECT {}, row_number() OVER (ORDER BY {}) AS ferry_rn FROM {} WHERE {}) s \
             WHERE ferry_rn % {every} = 1 AND ferry_rn > 1 ORDER BY ferry_rn",
            as_text.join(", "),
            keys.join(", "),
            keys.join(", "),
            super::own_rows(t),
            super::filter::rows_where(t, bounds)?
        );
        let mut client = connect(ep).await?;
        let txn = reading(&mut client, &what).await?;
        let rows = txn.query(&sql, &[]).await.map_err(|e| classify(&what, e))?;
        Ok(rows
            .iter()
            .map(|r| (0..keys.len()).map(|i| r.get::<_, String>(i)).collect())
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
        let cols: Vec<String> = columns.iter().map(|c| quote_ident(c)).collect();
        let sql = format!(
            "COPY (SELECT {} FROM {} WHERE {}) TO STDOUT",
            cols.join(", "),
            super::own_rows(t),
            super::filter::rows_where(t, bounds)?
        );
        let mut client = connect(ep).await?;
        let txn = reading(&mut client, &what).await?;
        let stream = txn.copy_out(&sql).await.map_err(|e| classify(&what, e))?;
        futures::pin_mut!(stream);
        let mut lines = super::read::Lines::default();
        while let Some(chunk) = stream.next().await {
            lines.feed(&chunk.map_err(|e| classify(&what, e))?);
            while let Some(line) = lines.next_line() {
                row(super::read::split_fields(line));
            }
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
        let mut client = connect(ep).await?;
        // Parallel segments create the table at once; concurrent CREATE ... IF
        // NOT EXISTS can still collide in the catalog, so they take turns.
        client
            .batch_execute(&format!(
                "BEGIN; SELECT pg_advisory_xact_lock({DDL_LOCK}); {} COMMIT;",
                failures_ddl(control)
            ))
            .await
            .map_err(|e| classify(&what, e))?;
        let txn = client.transaction().await.map_err(|e| classify(&what, e))?;
        let seg = segment as i32;
        txn.execute(
            &format!(
                "DELETE FROM {} WHERE task = $1 AND table_owner = $2 AND table_name = $3 AND segment = $4",
                control.table("validation_failures")
            ),
            &[&task, &table.schema, &table.name, &seg],
        )
        .await
        .map_err(|e| classify(&what, e))?;
        let insert = txn
            .prepare(&format!(
                "INSERT INTO {} (task, table_owner, table_name, segment, key, failure_type, details) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                control.table("validation_failures")
            ))
            .await
            .map_err(|e| classify(&what, e))?;
        for f in failures {
            txn.execute(
                &insert,
                &[
                    &task,
                    &table.schema,
                    &table.name,
                    &seg,
                    &f.key,
                    &f.failure_type.as_str(),
                    &f.details,
                ],
            )
            .await
            .map_err(|e| classify(&what, e))?;
        }
        txn.commit().await.map_err(|e| classify(&what, e))
    }

    fn decode_type(&self, type_sql: &str, raw: &[u8]) -> Result<Value<'static>, ValueError> {
        super::read::decode_text(type_sql, raw)
    }

    /// pgoutput sends text, which a PostgreSQL target takes as it is.
    fn carries_own_text(&self) -> bool {
        true
    }

    fn decode_kind(&self, kind: Kind, raw: &[u8]) -> Result<Value<'static>, ValueError> {
        super::read::decode(kind, Some(raw.to_vec()))
    }
}
