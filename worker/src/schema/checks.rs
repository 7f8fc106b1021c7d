//! Premigration checks (DMS runs similar ones before a task): does the
//! source allow what the intended task needs, and is anything in the schema
//! going to make the migration slower or lossy. Each check passes, warns or
//! fails with the reason.

use super::catalog::Catalog;
use ferry_common::endpoint::Engine;
use ferry_common::typemap::{convert_type, kind, Kind};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Passed,
    Warning,
    Failed,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub id: &'static str,
    pub name: String,
    pub status: CheckStatus,
    pub detail: String,
}

fn check(id: &'static str, name: &str, ok: bool, bad: CheckStatus, pass: String, fail: String) -> Check {
    Check {
        id,
        name: name.into(),
        status: if ok { CheckStatus::Passed } else { bad },
        detail: if ok { pass } else { fail },
    }
}

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

/// The task types `ferry task create --type` takes.
pub fn needs_cdc(migration_type: &str) -> bool {
    migration_type.contains("cdc")
}

pub fn run(source: &Catalog, to: Engine, migration_type: &str, target: Option<&Catalog>) -> Vec<Check> {
    let mut out = vec![];
    let set = |n: &str| source.setting(n).unwrap_or("").to_string();
    if needs_cdc(migration_type) {
        match source.engine {
            Engine::Postgres => {
                out.push(check(
                    "PG-WAL-LEVEL",
                    "wal_level is logical",
                    set("wal_level") == "logical",
                    CheckStatus::Failed,
                    "wal_level = logical".into(),
                    format!(
                        "wal_level = {}: logical decoding needs wal_level = logical (restart required)",
                        set("wal_level")
                    ),
                ));
                let max: i64 = set("max_replication_slots").parse().unwrap_or(0);
                let used: i64 = set("replication_slots_used").parse().unwrap_or(0);
                out.push(check(
                    "PG-SLOTS",
                    "a free replication slot",
                    max > used,
                    CheckStatus::Failed,
                    format!("{} of {max} slots in use", used),
                    format!("all {max} replication slots are in use (max_replication_slots)"),
                ));
                let senders: i64 = set("max_wal_senders").parse().unwrap_or(0);
                out.push(check(
                    "PG-WAL-SENDERS",
                    "a free WAL sender",
                    senders > used,
                    CheckStatus::Failed,
                    format!("max_wal_senders = {senders}"),
                    format!("max_wal_senders = {senders} leaves none for Ferry"),
                ));
                out.push(check(
                    "PG-REPLICATION-ROLE",
                    "the user may replicate",
                    set("replication_privilege") == "true",
                    CheckStatus::Failed,
                    "the user has REPLICATION (or is superuser)".into(),
                    "the user lacks the REPLICATION attribute: ALTER ROLE ... REPLICATION".into(),
                ));
            }
            Engine::Mysql => {
                out.push(check(
                    "MY-LOG-BIN",
                    "binary log enabled",
                    set("log_bin") == "ON",
                    CheckStatus::Failed,
                    "log_bin = ON".into(),
                    "the binary log is off: start the server with --log-bin".into(),
                ));
                out.push(check(
                    "MY-BINLOG-FORMAT",
                    "binlog_format is ROW",
                    set("binlog_format") == "ROW",
                    CheckStatus::Failed,
                    "binlog_format = ROW".into(),
                    format!("binlog_format = {}: CDC needs ROW", set("binlog_format")),
                ));
                out.push(check(
                    "MY-ROW-IMAGE",
                    "binlog_row_image is FULL",
                    set("binlog_row_image") == "FULL",
                    CheckStatus::Failed,
                    "binlog_row_image = FULL".into(),
                    format!("binlog_row_image = {}: CDC needs FULL images", set("binlog_row_image")),
                ));
                let meta = set("binlog_row_metadata");
                out.push(check(
                    "MY-ROW-METADATA",
                    "binlog_row_metadata is FULL",
                    meta == "FULL",
                    CheckStatus::Warning,
                    "binlog_row_metadata = FULL".into(),
                    format!(
                        "binlog_row_metadata = {}: FULL lets CDC match columns by name after DDL",
                        if meta.is_empty() { "unset" } else { &meta }
                    ),
                ));
                out.push(check(
                    "MY-SERVER-ID",
                    "server_id is set",
                    set("server_id") != "0" && !set("server_id").is_empty(),
                    CheckStatus::Failed,
                    format!("server_id = {}", set("server_id")),
                    "server_id = 0: binary log replication needs a non-zero server_id".into(),
                ));
                out.push(check(
                    "MY-REPLICATION-GRANT",
                    "the user may read the binary log",
                    set("replication_privilege") == "true",
                    CheckStatus::Failed,
                    "REPLICATION SLAVE and REPLICATION CLIENT granted".into(),
                    "grant REPLICATION SLAVE, REPLICATION CLIENT (MariaDB: also BINLOG MONITOR) to the user".into(),
                ));
            }
        }
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
        if t.engine == Engine::Mysql {
            let infile = t.setting("local_infile").unwrap_or("");
            out.push(check(
                "TARGET-LOCAL-INFILE",
                "local_infile is ON on the target",
                infile == "ON",
                CheckStatus::Failed,
                "local_infile = ON".into(),
                format!("local_infile = {infile}: the full load writes with LOAD DATA LOCAL INFILE"),
            ));
        } else {
            out.push(check(
                "TARGET-CREATE",
                "the user may create schemas on the target",
                t.setting("create_privilege") == Some("true"),
                CheckStatus::Failed,
                "CREATE on the database".into(),
                "the target user lacks CREATE on the database".into(),
            ));
        }
    }
    out
}
