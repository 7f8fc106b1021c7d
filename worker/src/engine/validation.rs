//! The validation seam: what the engine-neutral comparison
//! (`pipeline::validate`) asks of each side — range checksums, the range's
//! rows as text, key samples to split a range at, text decoded into the
//! value model — and where differences are recorded, each dispatched to its
//! engine here.

use crate::engine::{mysql, postgres, ConnectorError};
use ferry_common::endpoint::{Endpoint, Engine};
use ferry_common::plan::SegmentBounds;
use ferry_common::schema::TableSchema;
use ferry_common::typemap::{mysql_kind, postgres_kind, Kind};
use ferry_common::value::{Value, ValueError};
use ferry_common::work::ValidationFailure;

/// What a database says about a key range: its row count and the sum of
/// its rows' hashes (as decimal text; only compared within one engine).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksum {
    pub rows: u64,
    pub sum: String,
}

/// One side of the comparison: an endpoint and the table as that side's
/// engine declares it, with the range predicate's key types in its dialect.
pub(crate) struct Side<'a> {
    pub ep: &'a Endpoint,
    pub table: TableSchema,
}

impl Side<'_> {
    pub async fn checksum(&self, columns: &[String], bounds: &SegmentBounds) -> Result<Checksum, ConnectorError> {
        match self.ep.engine {
            Engine::Postgres => postgres::validate::checksum(self.ep, &self.table, columns, bounds).await,
            Engine::Mysql => mysql::validate::checksum(self.ep, &self.table, columns, bounds).await,
        }
    }

    /// Reads the range's rows as text, each field decoded into the value
    /// model where it can be, and calls `row` with (raw fields, values).
    pub async fn rows(
        &self,
        columns: &[String],
        bounds: &SegmentBounds,
        row: &mut (dyn FnMut(Vec<Option<Vec<u8>>>) + Send),
    ) -> Result<(), ConnectorError> {
        match self.ep.engine {
            Engine::Postgres => postgres::validate::read_text(self.ep, &self.table, columns, bounds, row).await,
            Engine::Mysql => mysql::validate::read_text(self.ep, &self.table, columns, bounds, row).await,
        }
    }

    pub fn decode(&self, how: &Decoder, raw: &[u8]) -> Result<Value<'static>, ValueError> {
        match (self.ep.engine, how) {
            (Engine::Postgres, Decoder::Type(t)) => postgres::read::decode_text(t, raw),
            (Engine::Postgres, Decoder::Kind(k)) => postgres::read::decode(*k, Some(raw.to_vec())),
            (Engine::Mysql, Decoder::Type(t)) => mysql::validate::decode(mysql_kind(t), raw),
            (Engine::Mysql, Decoder::Kind(k)) => mysql::validate::decode(*k, raw),
        }
    }
}

/// How a side decodes a column's text into the value model.
pub(crate) enum Decoder {
    /// By the column's own type (a source column, or a target column of
    /// the same engine, whose type is the source's).
    Type(String),
    /// As the value-model kind of the source column it was loaded from: the
    /// target engine's text of the mapped type, read back into the kind the
    /// source value had (MySQL TIME → PostgreSQL interval → a duration).
    Kind(Kind),
}

impl Decoder {
    pub fn for_columns(source: &TableSchema, target: &TableSchema, columns: &[String]) -> (Vec<Decoder>, Vec<Decoder>) {
        let ty = |t: &TableSchema, c: &str| t.column(c).map(|c| c.type_sql.clone()).unwrap_or_default();
        let same = source.engine == target.engine;
        columns
            .iter()
            .map(|c| {
                let s = ty(source, c);
                let t = if same {
                    Decoder::Type(ty(target, c))
                } else {
                    Decoder::Kind(match source.engine {
                        Engine::Mysql => mysql_kind(&s),
                        Engine::Postgres => postgres_kind(&s),
                    })
                };
                (Decoder::Type(s), t)
            })
            .unzip()
    }
}

pub(crate) async fn split_points(
    source: &Side<'_>,
    range: &SegmentBounds,
    every: u64,
) -> Result<Vec<Vec<String>>, ConnectorError> {
    match source.ep.engine {
        Engine::Postgres => postgres::validate::split_points(source.ep, &source.table, range, every).await,
        Engine::Mysql => mysql::validate::split_points(source.ep, &source.table, range, every).await,
    }
}

pub(crate) async fn record_failures(
    target: &Endpoint,
    task: &str,
    table: &TableSchema,
    segment: u32,
    failures: &[ValidationFailure],
) -> Result<(), ConnectorError> {
    match target.engine {
        Engine::Postgres => postgres::validate::record_failures(target, task, table, segment, failures).await,
        Engine::Mysql => mysql::validate::record_failures(target, task, table, segment, failures).await,
    }
}
