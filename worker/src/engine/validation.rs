//! The validation seam: what the engine-neutral comparison
//! (`pipeline::validate`) asks of each side — range checksums, the range's
//! rows as text, key samples to split a range at, text decoded into the
//! value model — and where differences are recorded, each dispatched to its
//! engine here.

use crate::engine::{with_engine, ConnectorError};
use ferry_common::control::ControlTables;
use ferry_common::endpoint::Endpoint;
use ferry_common::plan::SegmentBounds;
use ferry_common::schema::TableSchema;
use ferry_common::typemap::{kind, Kind};
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
        with_engine!(self.ep.engine, |e| e
            .checksum(self.ep, &self.table, columns, bounds)
            .await)
    }

    /// Reads the range's rows as text, each field decoded into the value
    /// model where it can be, and calls `row` with (raw fields, values).
    pub async fn rows(
        &self,
        columns: &[String],
        bounds: &SegmentBounds,
        row: &mut (dyn FnMut(Vec<Option<Vec<u8>>>) + Send),
    ) -> Result<(), ConnectorError> {
        with_engine!(self.ep.engine, |e| e
            .read_text(self.ep, &self.table, columns, bounds, row)
            .await)
    }

    /// See [`ValidationReader::carries_own_text`].
    pub fn carries_own_text(&self) -> bool {
        with_engine!(self.ep.engine, |e| e.carries_own_text())
    }

    pub fn decode(&self, how: &Decoder, raw: &[u8]) -> Result<Value<'static>, ValueError> {
        with_engine!(self.ep.engine, |e| match how {
            Decoder::Type(t) => e.decode_type(t, raw),
            Decoder::Kind(k) => e.decode_kind(*k, raw),
        })
    }
}

/// What validation reads and writes on one engine.
pub(crate) trait ValidationReader {
    /// Row count and hash sum of `columns` over the rows in `bounds`.
    async fn checksum(
        &self,
        ep: &Endpoint,
        table: &TableSchema,
        columns: &[String],
        bounds: &SegmentBounds,
    ) -> Result<Checksum, ConnectorError>;

    /// The rows in `bounds`, `columns` as text, in key order.
    async fn read_text(
        &self,
        ep: &Endpoint,
        table: &TableSchema,
        columns: &[String],
        bounds: &SegmentBounds,
        row: &mut (dyn FnMut(Vec<Option<Vec<u8>>>) + Send),
    ) -> Result<(), ConnectorError>;

    /// This engine's text of a column of its type `type_sql`.
    fn decode_type(&self, type_sql: &str, raw: &[u8]) -> Result<Value<'static>, ValueError>;

    /// This engine's text of a value loaded from a source column of kind
    /// `kind`, read back into that kind.
    fn decode_kind(&self, kind: Kind, raw: &[u8]) -> Result<Value<'static>, ValueError>;

    /// Whether a load and a change stream into a target of this same
    /// engine carry values in the engine's own text form (see
    /// `Source::read_segment`) rather than decoded: computed columns are
    /// then computed from that text, and validation must do the same.
    fn carries_own_text(&self) -> bool;

    /// Keys about every `every` rows within `range`, to split it at.
    async fn split_points(
        &self,
        ep: &Endpoint,
        table: &TableSchema,
        range: &SegmentBounds,
        every: u64,
    ) -> Result<Vec<Vec<String>>, ConnectorError>;

    /// Records a segment's differences on this (target) engine.
    async fn record_failures(
        &self,
        ep: &Endpoint,
        task: &str,
        control: &ControlTables,
        table: &TableSchema,
        segment: u32,
        failures: &[ValidationFailure],
    ) -> Result<(), ConnectorError>;
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
    /// Decoders for the column pairs `columns` (source name, target name).
    pub fn for_columns(
        source: &TableSchema,
        target: &TableSchema,
        columns: &[(String, String)],
    ) -> (Vec<Decoder>, Vec<Decoder>) {
        let ty = |t: &TableSchema, c: &str| t.column(c).map(|c| c.type_sql.clone()).unwrap_or_default();
        let same = source.engine == target.engine;
        columns
            .iter()
            .map(|(sc, tc)| {
                let s = ty(source, sc);
                let t = if same {
                    Decoder::Type(ty(target, tc))
                } else {
                    Decoder::Kind(kind(source.engine, &s))
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
    with_engine!(source.ep.engine, |e| e
        .split_points(source.ep, &source.table, range, every)
        .await)
}

pub(crate) async fn record_failures(
    target: &Endpoint,
    task: &str,
    control: &ControlTables,
    table: &TableSchema,
    segment: u32,
    failures: &[ValidationFailure],
) -> Result<(), ConnectorError> {
    with_engine!(target.engine, |e| e
        .record_failures(target, task, control, table, segment, failures)
        .await)
}
