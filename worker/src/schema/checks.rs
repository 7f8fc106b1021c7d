//! Premigration checks (DMS runs similar ones before a task): does the
//! source allow what the intended task needs, and is anything in the schema
//! going to make the migration slower or lossy. Each check passes, warns or
//! fails with the reason.

use super::catalog::Catalog;
use crate::engine::source::Source;
use crate::engine::target::Target;
use crate::engine::with_engine;
use ferry_common::endpoint::Engine;
use ferry_common::typemap::{convert_type, kind, Kind};

use super::check::{check, Check, CheckStatus};

/// Columns that hold large objects (text, blob, bytea, JSON), which DMS
/// calls LOBs: copied whole, and what makes rows big.
pub fn lob_columns(engine: Engine, t: &ferry_common::schema::TableSchema) -> Vec<String> {
    t.columns
        .iter()
        .filter(|c| {
            let ty = c.type_sql.to_ascii_lowercase();
            matches!(kind(engine, &c.type_sql), Kind::Bytes | Kind::Json)
                || ty.contains("text") && !ty.starts_with("varchar")
        })
        .map(|c| c.name.clone())
        .collect()
}

/// `SOURCE-SELECT`: every table of the catalog readable. Engines record
/// the others in the `unreadable_tables` setting; `missing` says what is
/// missing and `fix` how to grant it, in the engine's terms.
pub(crate) fn every_table_readable(source: &Catalog, missing: &str, fix: &str) -> Check {
    let unreadable = source.setting("unreadable_tables").unwrap_or("");
    check(
        "SOURCE-SELECT",
        "the user may read every table",
        unreadable.is_empty(),
        CheckStatus::Failed,
        format!("SELECT on all {} tables", source.tables.len()),
        format!("{missing} on: {unreadable} ({fix})"),
    )
}

/// The task types `ferry task create --type` takes.
pub fn needs_cdc(migration_type: &str) -> bool {
    migration_type.contains("cdc")
}

pub fn run(source: &Catalog, to: Engine, migration_type: &str, target: Option<&Catalog>) -> Vec<Check> {
    let mut out = vec![];
    if needs_cdc(migration_type) {
        out.extend(with_engine!(source.engine, |e| e.cdc_checks(source)));
    }
    let no_pk: Vec<String> = source
        .tables
        .iter()
        .filter(|t| t.primary_key.is_none())
        .map(|t| t.display_name())
        .collect();
    out.push(check("TABLES-WITHOUT-KEY", "every table has a primary key", no_pk.is_empty(), CheckStatus::Warning,
        format!("{} tables, all keyed", source.tables.len()),
        format!("{} without a primary key (loaded in one segment; CDC matches rows by every column, and PostgreSQL sources need REPLICA IDENTITY FULL): {}", no_pk.len(), no_pk.join(", "))));
    let lobs: Vec<String> = source
        .tables
        .iter()
        .filter(|t| !lob_columns(source.engine, t).is_empty())
        .map(|t| t.display_name())
        .collect();
    out.push(check("LOB-COLUMNS", "tables with large objects", lobs.is_empty(), CheckStatus::Warning,
        "no text, blob, bytea or JSON columns".into(),
        format!("{} tables hold LOB columns (text/blob/bytea/JSON), copied whole in full-LOB mode; big values slow the load and CDC: {}", lobs.len(), lobs.join(", "))));
    let unsupported: Vec<String> = source
        .tables
        .iter()
        .flat_map(|t| {
            t.columns
                .iter()
                .filter(|c| convert_type(source.engine, to, &c.type_sql).is_err())
                .map(move |c| format!("{}.{} {}", t.display_name(), c.name, c.type_sql))
        })
        .collect();
    out.push(check(
        "UNSUPPORTED-TYPES",
        "every column type has a target type",
        unsupported.is_empty(),
        CheckStatus::Failed,
        "all column types map".into(),
        format!("no {} type holds: {}", to.name(), unsupported.join(", ")),
    ));
    if let Some(t) = target {
        out.push(Check {
            id: "TARGET-REACHABLE",
            name: "the target answers".into(),
            status: CheckStatus::Passed,
            detail: t.version.clone(),
        });
        let existing: Vec<String> = source
            .tables
            .iter()
            .filter(|s| t.tables.iter().any(|x| x.schema == s.schema && x.name == s.name))
            .map(|s| s.display_name())
            .collect();
        out.push(check(
            "TARGET-TABLES-EXIST",
            "the target has none of the tables yet",
            existing.is_empty(),
            CheckStatus::Warning,
            "no table of the source exists on the target".into(),
            format!(
                "{} exist on the target already (DROP_AND_CREATE replaces them, DO_NOTHING loads into them): {}",
                existing.len(),
                existing.join(", ")
            ),
        ));
        out.extend(with_engine!(t.engine, |e| e.target_checks(t)));
    }
    out
}
