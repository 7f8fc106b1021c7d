//! PostgreSQL connector: introspection, target preparation, segment load,
//! change data capture.

mod array;
pub(crate) mod catalog;
pub(crate) mod cdc;
mod cleartext;
pub(crate) mod connect;
pub(crate) mod cutover;
pub(crate) mod encode;
mod filter;
pub(crate) mod introspect;
pub(crate) mod load;
pub(crate) mod read;
pub(crate) mod schema;
mod snapshot;
pub(crate) mod target;
pub(crate) mod trial;
pub(crate) mod validate;

use super::source::{ChangeSource, ChangeStream, Segmenting, Source};
use super::target::{AnyChangeTarget, Segment, Target};
use super::{ConnectorError, Progress, Run};
use crate::pipeline::rows::Rows;
use crate::report::Reporter;
use crate::schema::catalog::Catalog;
use crate::schema::check::Check;
use crate::schema::convert::Conversion;
use crate::schema::trial::Trial;
pub use connect::connect;
use ferry_common::endpoint::Endpoint;
use ferry_common::mapping::TableMappings;
use ferry_common::plan::SegmentBounds;
use ferry_common::position::Position;
use ferry_common::schema::{Constraint, SourceSchema, TableSchema};
use ferry_common::settings::TargetTablePrepMode;
use ferry_common::work::{CdcNames, TableRef, WorkResult};

/// PostgreSQL behind the engine seams.
pub struct Postgres;

impl Source for Postgres {
    async fn introspect(
        &self,
        ep: &Endpoint,
        mappings: &TableMappings,
        segmenting: Segmenting,
        only: Option<&TableRef>,
    ) -> Result<SourceSchema, ConnectorError> {
        introspect::introspect(ep, mappings, segmenting.target_bytes, segmenting.max_per_table, only).await
    }

    async fn catalog(&self, ep: &Endpoint, mappings: &TableMappings) -> Result<Catalog, ConnectorError> {
        catalog::catalog(ep, mappings).await
    }

    async fn read_segment(
        &self,
        ep: &Endpoint,
        table: &TableSchema,
        columns: Vec<String>,
        bounds: &SegmentBounds,
        snapshot: Option<&str>,
        own_text: bool,
    ) -> Result<(Rows, Option<Position>), ConnectorError> {
        // An exported snapshot is the position: nothing to report per segment.
        Ok((
            read::read_segment(ep, table, columns, bounds, snapshot, own_text).await?,
            None,
        ))
    }

    async fn freeze(&self, ep: &Endpoint, freeze: bool) -> Result<(), ConnectorError> {
        cutover::freeze(ep, freeze).await
    }

    fn cdc_checks(&self, source: &Catalog) -> Vec<Check> {
        catalog::cdc_checks(source)
    }

    fn read_checks(&self, source: &Catalog) -> Vec<Check> {
        catalog::read_checks(source)
    }
}

impl ChangeSource for Postgres {
    async fn create_slot(
        &self,
        ep: &Endpoint,
        cdc: &CdcNames,
        tables: &[TableSchema],
        existing_slot: bool,
    ) -> Result<WorkResult, ConnectorError> {
        cdc::slot::create(ep, cdc, tables, existing_slot).await
    }

    async fn hold_snapshot(
        &self,
        ep: &Endpoint,
        slot: Option<&str>,
        reporter: &Reporter,
    ) -> Result<WorkResult, ConnectorError> {
        match slot {
            Some(slot) => cdc::slot::hold_snapshot(ep, slot, reporter).await,
            None => snapshot::hold(ep, reporter).await,
        }
    }

    async fn publish_table(&self, ep: &Endpoint, cdc: &CdcNames, table: &TableRef) -> Result<(), ConnectorError> {
        cdc::slot::publish_table(ep, cdc, table).await
    }

    async fn stream(&self, s: ChangeStream<'_>, run: &Run, reporter: &Reporter) -> Result<WorkResult, ConnectorError> {
        cdc::apply::run(run, s, reporter).await
    }

    async fn drop_slot(&self, ep: &Endpoint, cdc: &CdcNames, keep_slot: bool) -> Result<WorkResult, ConnectorError> {
        cdc::slot::drop(ep, cdc, keep_slot).await
    }
}

impl Target for Postgres {
    async fn prepare(
        &self,
        run: &Run,
        ep: &Endpoint,
        schema: &SourceSchema,
        mode: TargetTablePrepMode,
        defer_primary_key: bool,
        pre_data_sql: Option<&str>,
    ) -> Result<(), ConnectorError> {
        schema::prepare(run, ep, schema, mode, defer_primary_key, pre_data_sql).await
    }

    async fn copy_segment(
        &self,
        run: &Run,
        source: &Endpoint,
        target: &Endpoint,
        table: &TableSchema,
        seg: Segment<'_>,
        progress: Progress,
    ) -> Option<Result<WorkResult, ConnectorError>> {
        Some(load::load_segment(run, source, target, table, seg, progress).await)
    }

    async fn load_rows(
        &self,
        run: &Run,
        ep: &Endpoint,
        table: &TableSchema,
        seg: Segment<'_>,
        rows: Rows,
        progress: Progress,
    ) -> Result<WorkResult, ConnectorError> {
        load::load_rows(run, ep, table, seg, rows, progress).await
    }

    async fn count_rows(&self, ep: &Endpoint, table: &TableSchema) -> Result<u64, ConnectorError> {
        let what = format!("table {}: counting its rows on the target", table.display_name());
        let n: i64 = connect(ep)
            .await?
            .query_one(&format!("SELECT count(*) FROM {}", own_rows(table)), &[])
            .await
            .map_err(|e| classify(&what, e))?
            .get(0);
        Ok(n as u64)
    }

    async fn post_data(
        &self,
        source: &Endpoint,
        target: &Endpoint,
        table: &TableSchema,
        defer_primary_key: bool,
    ) -> Result<(), ConnectorError> {
        schema::post_data(source, target, table, defer_primary_key).await
    }

    async fn finalize(
        &self,
        run: &Run,
        ep: &Endpoint,
        foreign_keys: &[(String, Constraint)],
        validate: bool,
        post_data_sql: Option<&str>,
    ) -> Result<WorkResult, ConnectorError> {
        schema::finalize(run, ep, foreign_keys, validate, post_data_sql).await
    }

    async fn reset_table(
        &self,
        run: &Run,
        ep: &Endpoint,
        table: &TableSchema,
        gen: u64,
        previous: Option<&TableSchema>,
        replace: bool,
    ) -> Result<WorkResult, ConnectorError> {
        load::reset_table(run, ep, table, gen, previous, replace).await
    }

    async fn sync_sequences(
        &self,
        source: &Endpoint,
        target: &Endpoint,
        tables: &[TableSchema],
    ) -> Result<(), ConnectorError> {
        schema::sync_sequences(source, target, tables).await
    }

    async fn fence_stream(&self, run: &Run, ep: &Endpoint) -> Result<(), ConnectorError> {
        target::fence(&connect(ep).await?, run).await
    }

    fn target_checks(&self, target: &Catalog) -> Vec<Check> {
        catalog::target_checks(target)
    }

    async fn trial(&self, conv: &Conversion, ep: &Endpoint) -> Result<Trial, ConnectorError> {
        trial::run(conv, ep).await
    }

    async fn change_target(
        &self,
        ep: &Endpoint,
        control: &ferry_common::control::ControlTables,
    ) -> Result<AnyChangeTarget, ConnectorError> {
        Ok(AnyChangeTarget::Postgres(
            target::PgChangeTarget::open(ep, control).await?,
        ))
    }
}

/// Classifies a driver error: SQLSTATE classes 08 (connection), 40
/// (serialization/deadlock), 53 (resources), 57 (operator intervention, e.g.
/// shutdown) and I/O without a SQLSTATE are transient; the rest are definite.
/// The table's own rows in a FROM clause: `ONLY t` unless it is a
/// partitioned parent (whose rows are its partitions'). A table with
/// inheritance children (not partitions) is read without them: each child
/// is a table of the task in its own right, and reading the parent whole
/// would copy the children's rows twice.
pub(crate) fn own_rows(t: &TableSchema) -> String {
    if t.is_partitioned() {
        t.qualified()
    } else {
        format!("ONLY {}", t.qualified())
    }
}

pub(crate) fn classify(context: impl std::fmt::Display, e: tokio_postgres::Error) -> ConnectorError {
    let msg = match e.as_db_error() {
        Some(db) => {
            let mut m = format!("{context}: {}", db.message());
            if let Some(d) = db.detail() {
                m.push_str(&format!(" ({d})"));
            }
            if let Some(w) = db.where_() {
                m.push_str(&format!(" [{}]", w.lines().next().unwrap_or_default()));
            }
            m
        }
        None => format!("{context}: {}", ferry_common::error_chain(&e)),
    };
    let transient = match e.code() {
        Some(c) => {
            let c = c.code();
            c.starts_with("08") || c.starts_with("40") || c.starts_with("53") || c.starts_with("57")
        }
        None => true,
    };
    if transient {
        ConnectorError::Transient(msg)
    } else {
        ConnectorError::Definite(msg)
    }
}
