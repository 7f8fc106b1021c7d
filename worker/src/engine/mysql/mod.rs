//! MySQL / MariaDB connector: connections, introspection from
//! information_schema, and segment reads into the common value model.

pub(crate) mod binlog;
pub(crate) mod catalog;
pub(crate) mod charset;
pub(crate) mod connect;
pub(crate) mod cutover;
pub(crate) mod encode;
mod filter;
mod introspect;
pub(crate) mod position;
pub(crate) mod read;
pub(crate) mod tablemap;
pub(crate) mod target;
pub(crate) mod trial;
pub(crate) mod validate;
pub(crate) mod write;

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
use mysql_async::prelude::Queryable;

/// MySQL and MariaDB behind the engine seams.
pub struct Mysql;

impl Source for Mysql {
    async fn introspect(
        &self,
        ep: &Endpoint,
        mappings: &TableMappings,
        segmenting: Segmenting,
        only: Option<&TableRef>,
    ) -> Result<SourceSchema, ConnectorError> {
        introspect(ep, mappings, segmenting.target_bytes, segmenting.max_per_table, only).await
    }

    async fn catalog(&self, ep: &Endpoint, mappings: &TableMappings) -> Result<Catalog, ConnectorError> {
        catalog::catalog(ep, mappings).await
    }

    /// MySQL cannot import another session's snapshot: a segment of a CDC
    /// task (`snapshot` given) is read in a consistent snapshot of its own,
    /// whose binlog position comes back with the rows.
    async fn read_segment(
        &self,
        ep: &Endpoint,
        table: &TableSchema,
        columns: Vec<String>,
        bounds: &SegmentBounds,
        snapshot: Option<&str>,
        _own_text: bool,
    ) -> Result<(Rows, Option<Position>), ConnectorError> {
        read::read_segment(ep, table, columns, bounds, snapshot.is_some()).await
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

impl ChangeSource for Mysql {
    /// The binlog is the server's: this checks that it can serve the task.
    async fn create_slot(
        &self,
        ep: &Endpoint,
        _cdc: &CdcNames,
        _tables: &[TableSchema],
        _existing_slot: bool,
    ) -> Result<WorkResult, ConnectorError> {
        binlog::create(ep).await
    }

    /// Only CDC tasks ask (a MySQL table is cut by key ranges, which a full
    /// load reads without a shared snapshot).
    async fn hold_snapshot(
        &self,
        ep: &Endpoint,
        _slot: Option<&str>,
        reporter: &Reporter,
    ) -> Result<WorkResult, ConnectorError> {
        binlog::hold(ep, reporter).await
    }

    /// The binlog holds every table's changes.
    async fn publish_table(&self, _ep: &Endpoint, _cdc: &CdcNames, _table: &TableRef) -> Result<(), ConnectorError> {
        Ok(())
    }

    async fn stream(&self, s: ChangeStream<'_>, run: &Run, reporter: &Reporter) -> Result<WorkResult, ConnectorError> {
        binlog::run(run, s, reporter).await
    }

    /// The binlog is the server's: nothing to drop.
    async fn drop_slot(&self, _ep: &Endpoint, _cdc: &CdcNames, _keep_slot: bool) -> Result<WorkResult, ConnectorError> {
        Ok(WorkResult::Done)
    }
}

impl Target for Mysql {
    /// Tables are created with their keys (`defer_primary_key` is a
    /// PostgreSQL optimisation).
    async fn prepare(
        &self,
        run: &Run,
        ep: &Endpoint,
        schema: &SourceSchema,
        mode: TargetTablePrepMode,
        _defer_primary_key: bool,
        pre_data_sql: Option<&str>,
    ) -> Result<(), ConnectorError> {
        write::prepare(run, ep, schema, mode, pre_data_sql).await
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
        write::load_rows(run, ep, table, seg, rows, progress).await
    }

    async fn count_rows(&self, ep: &Endpoint, table: &TableSchema) -> Result<u64, ConnectorError> {
        let what = format!("table {}: counting its rows on the target", table.display_name());
        let sql = format!("SELECT COUNT(*) FROM {}", quote_table(table));
        Ok(connect(ep)
            .await?
            .query_first::<u64, _>(sql)
            .await
            .map_err(|e| classify(&what, e))?
            .unwrap_or(0))
    }

    async fn post_data(
        &self,
        _source: &Endpoint,
        target: &Endpoint,
        table: &TableSchema,
        _defer_primary_key: bool,
    ) -> Result<(), ConnectorError> {
        write::post_data(target, table).await
    }

    /// MySQL adds keys without checking rows (foreign_key_checks=0).
    async fn finalize(
        &self,
        run: &Run,
        ep: &Endpoint,
        foreign_keys: &[(String, Constraint)],
        _validate: bool,
        post_data_sql: Option<&str>,
    ) -> Result<WorkResult, ConnectorError> {
        write::finalize(run, ep, foreign_keys, post_data_sql).await
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
        write::reset_table(run, ep, table, gen, previous, replace).await
    }

    async fn sync_sequences(
        &self,
        _source: &Endpoint,
        target: &Endpoint,
        tables: &[TableSchema],
    ) -> Result<(), ConnectorError> {
        cutover::sync_auto_increment(target, tables).await
    }

    async fn fence_stream(&self, run: &Run, ep: &Endpoint) -> Result<(), ConnectorError> {
        target::fence(&mut connect::target_session(ep).await?, run).await
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
        Ok(AnyChangeTarget::Mysql(
            target::MysqlChangeTarget::open(ep, control).await?,
        ))
    }
}

/// Server errors that pass with time are transient: lock wait timeout
/// (1205), deadlock (1213), too many connections (1040), shutdown in
/// progress (1053), server gone (2006, 2013); so is any I/O error.
pub(crate) fn classify(context: impl std::fmt::Display, e: mysql_async::Error) -> ConnectorError {
    match &e {
        mysql_async::Error::Server(s) => {
            let msg = format!("{context}: {} (MySQL error {})", s.message, s.code);
            if matches!(s.code, 1205 | 1213 | 1040 | 1053 | 2006 | 2013 | 1927) {
                ConnectorError::Transient(msg)
            } else {
                ConnectorError::Definite(msg)
            }
        }
        // With the cause chain: an I/O error's TLS or socket cause is the
        // part that says what to fix.
        mysql_async::Error::Io(_) | mysql_async::Error::Driver(_) => {
            ConnectorError::Transient(format!("{context}: {}", ferry_common::error_chain(&e)))
        }
        _ => ConnectorError::Definite(format!("{context}: {}", ferry_common::error_chain(&e))),
    }
}

/// Quotes a MySQL identifier with backticks.
pub(crate) fn quote(s: &str) -> String {
    format!("`{}`", s.replace('`', "``"))
}

/// `database`.`table`, quoted.
pub(crate) fn quote_table(t: &TableSchema) -> String {
    format!("{}.{}", quote(&t.schema), quote(&t.name))
}

/// Runs a prepared statement and returns its rows as text.
pub(crate) async fn query_text<P: Into<mysql_async::Params> + Send>(
    c: &mut mysql_async::Conn,
    sql: &str,
    params: P,
    what: &str,
) -> Result<Vec<Vec<Option<String>>>, ConnectorError> {
    let rows: Vec<mysql_async::Row> = c.exec(sql, params).await.map_err(|e| classify(what, e))?;
    Ok(rows
        .into_iter()
        .map(|r| {
            r.unwrap_raw()
                .into_iter()
                .map(|v| match v {
                    Some(mysql_async::Value::Bytes(b)) => Some(String::from_utf8_lossy(&b).into_owned()),
                    Some(mysql_async::Value::NULL) | None => None,
                    Some(mysql_async::Value::Int(i)) => Some(i.to_string()),
                    Some(mysql_async::Value::UInt(u)) => Some(u.to_string()),
                    Some(v) => Some(v.as_sql(true).trim_matches('\'').to_string()),
                })
                .collect()
        })
        .collect())
}

pub use introspect::introspect;
