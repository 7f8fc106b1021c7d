//! The source seams: what the engine-neutral pipeline asks of a database it
//! reads from.
//!
//! - [`Source`]: the catalog and the rows — introspection into segments, a
//!   segment's rows in the value model, the catalog the schema converter
//!   reads, and the cutover freeze.
//! - [`ChangeSource`]: the change log — a slot (or the engine's equivalent)
//!   that keeps changes from a position on, a snapshot held open for the
//!   full load to read in, and the stream of changes into the applier.
//!
//! Each engine implements both on a unit type (`postgres::Postgres`,
//! `mysql::Mysql`); `engine::with_engine!` picks one.

use super::{ConnectorError, Run};
use crate::pipeline::apply::TablePolicy;
use crate::pipeline::rows::Rows;
use crate::report::Reporter;
use crate::schema::catalog::Catalog;
use crate::schema::check::Check;
use ferry_common::endpoint::Endpoint;
use ferry_common::mapping::TableMappings;
use ferry_common::plan::SegmentBounds;
use ferry_common::position::Position;
use ferry_common::schema::{SourceSchema, TableSchema};
use ferry_common::stop::CdcStop;
use ferry_common::work::{CdcNames, CdcTable, TableRef, WorkResult};

/// What introspection divides the selected tables into.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Segmenting {
    /// Tables larger than this are split into range segments.
    pub target_bytes: u64,
    pub max_per_table: u32,
}

impl Segmenting {
    /// One segment per table (re-introspection of a single table).
    pub const WHOLE: Segmenting = Segmenting {
        target_bytes: u64::MAX,
        max_per_table: 1,
    };
}

pub(crate) trait Source {
    /// The tables `mappings` selects (or only `only`), with size estimates
    /// and their segments.
    async fn introspect(
        &self,
        ep: &Endpoint,
        mappings: &TableMappings,
        segmenting: Segmenting,
        only: Option<&TableRef>,
    ) -> Result<SourceSchema, ConnectorError>;

    /// The schema objects the converter reads (`ferry schema convert`,
    /// `ferry assess`).
    async fn catalog(&self, ep: &Endpoint, mappings: &TableMappings) -> Result<Catalog, ConnectorError>;

    /// The rows of `table`'s segment `bounds`, `columns` in that order, read
    /// in the exported `snapshot` when one is given (or, for an engine that
    /// cannot import one, in a consistent read of its own). The position is
    /// the change-log position the rows were read at, for an engine whose
    /// snapshots are per reader. `own_text`: the target is of this engine,
    /// so values may travel in the engine's own text form (as its change
    /// stream sends them to such a target) rather than decoded.
    async fn read_segment(
        &self,
        ep: &Endpoint,
        table: &TableSchema,
        columns: Vec<String>,
        bounds: &SegmentBounds,
        snapshot: Option<&str>,
        own_text: bool,
    ) -> Result<(Rows, Option<Position>), ConnectorError>;

    /// Cutover: stops (`freeze`) or allows again the application's writes.
    async fn freeze(&self, ep: &Endpoint, freeze: bool) -> Result<(), ConnectorError>;

    /// What change data capture needs of this source, checked against its
    /// catalog's settings (`ferry assess`).
    fn cdc_checks(&self, source: &Catalog) -> Vec<Check>;

    /// What a full load needs of this source: every selected table readable
    /// (`ferry endpoint test`).
    fn read_checks(&self, source: &Catalog) -> Vec<Check>;
}

pub(crate) trait ChangeSource {
    /// Sets up what keeps the task's changes (publications and slot, or a
    /// check that the binlog is usable) and reports the start position.
    async fn create_slot(
        &self,
        ep: &Endpoint,
        cdc: &CdcNames,
        tables: &[TableSchema],
        existing_slot: bool,
    ) -> Result<WorkResult, ConnectorError>;

    /// Exports a snapshot for the segment readers and keeps it open until
    /// the assignment is revoked; `slot` (CDC tasks) names a temporary slot
    /// whose start the snapshot must match.
    async fn hold_snapshot(
        &self,
        ep: &Endpoint,
        slot: Option<&str>,
        reporter: &Reporter,
    ) -> Result<WorkResult, ConnectorError>;

    /// Makes sure changes of `table` reach the stream (a table created again
    /// after a drop left the publication).
    async fn publish_table(&self, ep: &Endpoint, cdc: &CdcNames, table: &TableRef) -> Result<(), ConnectorError>;

    /// Streams changes from the target's applied position (or `start`) into
    /// the applier on `target`, until revoked.
    async fn stream(
        &self,
        stream: ChangeStream<'_>,
        run: &Run,
        reporter: &Reporter,
    ) -> Result<WorkResult, ConnectorError>;

    /// Removes what `create_slot` set up (task deletion).
    async fn drop_slot(&self, ep: &Endpoint, cdc: &CdcNames, keep_slot: bool) -> Result<WorkResult, ConnectorError>;
}

/// A CDC assignment: where changes come from and go to.
pub(crate) struct ChangeStream<'a> {
    pub source: &'a Endpoint,
    pub target: &'a Endpoint,
    pub cdc: &'a CdcNames,
    pub tables: &'a [CdcTable],
    /// Where to start when the target has no applied position yet.
    pub start: Option<Position>,
    pub policy: TablePolicy<'a>,
    /// Target sessions a batch's rows are spread over (see `pipeline/apply`).
    pub lanes: usize,
    /// Where the stream stops on its own (see `pipeline/stop`).
    pub stop: Option<CdcStop>,
}
