//! Everything of a MySQL / MariaDB database besides the table definitions
//! the data path reads (see `introspect`): comments, ON UPDATE columns, CHECK
//! constraints, partitioning, storage engines and collations per table;
//! views, triggers, functions and procedures; and the settings the
//! premigration checks look at. information_schema is the source of truth
//! for structure; SHOW CREATE gives the text the report quotes.

use super::{query_text, quote};
use crate::engine::ConnectorError;
use crate::schema::catalog::*;
use crate::schema::check::{check, Check, CheckStatus};
use ferry_common::endpoint::{Endpoint, Engine};
use ferry_common::mapping::TableMappings;
use ferry_common::schema::{Constraint, ConstraintKind};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

/// The text column of a `SHOW CREATE ...` row.
async fn show_create(c: &mut Conn, what: &str, name: &str, column: usize) -> String {
    let rows: Result<Vec<mysql_async::Row>, _> = c.query(format!("SHOW CREATE {what} {name}")).await;
    rows.ok()
        .and_then(|rows| rows.into_iter().next())
        .and_then(|r| r.get_opt::<Option<String>, _>(column).and_then(Result::ok).flatten())
        .unwrap_or_default()
}

pub async fn catalog(ep: &Endpoint, mappings: &TableMappings) -> Result<Catalog, ConnectorError> {
    let schema = super::introspect(ep, mappings, u64::MAX, 1, None).await?;
    let mut c = super::connect(ep).await?;
    let db = ep.dbname.clone();
    let what = format!("reading the catalog of {ep}");
    let s = |r: &[Option<String>], i: usize| r.get(i).cloned().flatten().unwrap_or_default();

    let mut details = Vec::new();
    for t in &schema.tables {
        let args = || (db.clone(), t.name.clone());
        let mut d = TableDetails::default();
        if let Some(r) = query_text(
            &mut c,
            "SELECT TABLE_COMMENT, ENGINE, TABLE_COLLATION, AUTO_INCREMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            args(),
            &what,
        )
        .await?
        .first()
        {
            d.comment = Some(s(r, 0)).filter(|c| !c.is_empty());
            d.storage_engine = r[1].clone();
            d.table_collation = r[2].clone();
            let generator = t.columns.iter().find(|c| c.identity.is_some());
            if let (Some(col), Some(n)) = (generator, r[3].as_deref().and_then(|v| v.parse().ok())) {
                d.next_values.push((col.name.clone(), n));
            }
        }
        for r in query_text(
            &mut c,
            "SELECT COLUMN_NAME, COLUMN_COMMENT, EXTRA, CHARACTER_SET_NAME, COLLATION_NAME
               FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            args(),
            &what,
        )
        .await?
        {
            let col = s(&r, 0);
            if !s(&r, 1).is_empty() {
                d.column_comments.push((col.clone(), s(&r, 1)));
            }
            if s(&r, 2).to_ascii_lowercase().contains("on update") {
                d.on_update.push(col.clone());
            }
            // JSON (LONGTEXT utf8mb4_bin on MariaDB) declares none.
            let json = t.column(&col).is_some_and(|c| c.type_sql == "json");
            if let (Some(cs), Some(coll), false) = (r[3].clone(), r[4].clone(), json) {
                if d.table_collation.as_deref() != Some(coll.as_str()) {
                    d.column_collations.push((col, cs, coll));
                }
            }
        }
        // MariaDB names the table here; column-level checks (LEVEL = Column)
        // and table-level ones look alike to a target.
        let checks = query_text(
            &mut c,
            "SELECT CONSTRAINT_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS
              WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ? ORDER BY CONSTRAINT_NAME",
            args(),
            &what,
        )
        .await
        .unwrap_or_default();
        for r in checks {
            let clause = s(&r, 1);
            // MariaDB's JSON columns are LONGTEXT with json_valid(): the
            // target's json type does that job.
            if clause.trim().starts_with("json_valid(") {
                continue;
            }
            d.checks.push(Constraint {
                name: s(&r, 0),
                kind: ConstraintKind::Check,
                definition: clause,
            });
        }
        let parts = query_text(
            &mut c,
            "SELECT PARTITION_NAME, PARTITION_METHOD, PARTITION_EXPRESSION, PARTITION_DESCRIPTION
               FROM information_schema.PARTITIONS
              WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND PARTITION_NAME IS NOT NULL
              ORDER BY PARTITION_ORDINAL_POSITION",
            args(),
            &what,
        )
        .await?;
        if let Some(first) = parts.first() {
            d.partitioning = Some(MysqlPartitioning {
                method: s(first, 1),
                expression: s(first, 2),
                partitions: parts.iter().map(|r| (s(r, 0), s(r, 3))).collect(),
            });
        }
        details.push(d);
    }

    let mut views = Vec::new();
    for r in query_text(
        &mut c,
        "SELECT TABLE_NAME, VIEW_DEFINITION FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME",
        (db.clone(),),
        &what,
    )
    .await?
    {
        let name = s(&r, 0);
        if !mappings.selects(&db, &name) {
            continue;
        }
        let definition = show_create(&mut c, "VIEW", &format!("{}.{}", quote(&db), quote(&name)), 1).await;
        views.push(View {
            schema: db.clone(),
            name,
            materialized: false,
            query: s(&r, 1),
            definition,
        });
    }

    let mut triggers = Vec::new();
    for r in query_text(
        &mut c,
        "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, ACTION_STATEMENT, ACTION_ORIENTATION
           FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? ORDER BY EVENT_OBJECT_TABLE, ACTION_ORDER, TRIGGER_NAME",
        (db.clone(),),
        &what,
    )
    .await?
    {
        let name = s(&r, 0);
        let definition = show_create(&mut c, "TRIGGER", &format!("{}.{}", quote(&db), quote(&name)), 2).await;
        triggers.push(Trigger {
            schema: db.clone(),
            name,
            table: s(&r, 1),
            timing: s(&r, 2),
            events: vec![s(&r, 3)],
            for_each_row: s(&r, 5).eq_ignore_ascii_case("ROW"),
            body: s(&r, 4),
            function: None,
            condition: None,
            definition,
        });
    }

    let mut routines = Vec::new();
    for r in query_text(
        &mut c,
        "SELECT ROUTINE_NAME, ROUTINE_TYPE, DTD_IDENTIFIER, ROUTINE_DEFINITION, IS_DETERMINISTIC
           FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ? ORDER BY ROUTINE_TYPE, ROUTINE_NAME",
        (db.clone(),),
        &what,
    )
    .await?
    {
        let (name, kind) = (s(&r, 0), s(&r, 1));
        let params = query_text(
            &mut c,
            "SELECT PARAMETER_NAME, PARAMETER_MODE, DTD_IDENTIFIER FROM information_schema.PARAMETERS
              WHERE SPECIFIC_SCHEMA = ? AND SPECIFIC_NAME = ? AND ROUTINE_TYPE = ? AND ORDINAL_POSITION > 0
              ORDER BY ORDINAL_POSITION",
            (db.clone(), name.clone(), kind.clone()),
            &what,
        )
        .await?
        .iter()
        .map(|p| Param {
            name: s(p, 0),
            mode: s(p, 1),
            type_sql: s(p, 2),
        })
        .collect();
        let procedure = kind.eq_ignore_ascii_case("PROCEDURE");
        let definition = show_create(
            &mut c,
            if procedure { "PROCEDURE" } else { "FUNCTION" },
            &format!("{}.{}", quote(&db), quote(&name)),
            2,
        )
        .await;
        routines.push(Routine {
            schema: db.clone(),
            name,
            kind: if procedure {
                RoutineKind::Procedure
            } else {
                RoutineKind::Function
            },
            language: "sql".into(),
            params,
            returns: r[2].clone().filter(|_| !procedure),
            body: s(&r, 3),
            deterministic: s(&r, 4) == "YES",
            definition,
        });
    }

    let mut settings = Vec::new();
    for name in [
        "log_bin",
        "binlog_format",
        "binlog_row_image",
        "binlog_row_metadata",
        "server_id",
        "character_set_server",
        "lower_case_table_names",
        "local_infile",
    ] {
        let rows = query_text(
            &mut c,
            "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_VARIABLES WHERE VARIABLE_NAME = ?",
            (name.to_ascii_uppercase(),),
            &what,
        )
        .await
        .unwrap_or_default();
        if let Some(v) = rows.first().and_then(|r| r[0].clone()) {
            settings.push((name.to_string(), v));
        }
    }
    let grants: Vec<String> = c.query("SHOW GRANTS").await.map_err(|e| super::classify(&what, e))?;
    let grants = grants.join("\n").to_ascii_uppercase();
    let replication = grants.contains("ALL PRIVILEGES ON *.*")
        || (grants.contains("REPLICATION SLAVE") || grants.contains("REPLICATION REPLICA"));
    settings.push(("replication_privilege".into(), replication.to_string()));
    let client = grants.contains("ALL PRIVILEGES ON *.*")
        || ["REPLICATION CLIENT", "BINLOG MONITOR", "SUPER"]
            .iter()
            .any(|p| grants.contains(p));
    settings.push(("replication_client_privilege".into(), client.to_string()));
    // Privileges can be per database, table or column: asking each table
    // is the one answer that is always right (`ferry endpoint test`).
    let mut unreadable = vec![];
    for t in &schema.tables {
        let probe = format!("SELECT 1 FROM {} LIMIT 0", super::quote_table(t));
        if c.query_drop(probe).await.is_err() {
            unreadable.push(t.display_name());
        }
    }
    settings.push(("unreadable_tables".into(), unreadable.join(", ")));
    let version: Vec<String> = c
        .query("SELECT VERSION()")
        .await
        .map_err(|e| super::classify(&what, e))?;

    Ok(Catalog {
        engine: Engine::Mysql,
        version: version.into_iter().next().unwrap_or_default(),
        database: db,
        tables: schema.tables,
        details,
        types: vec![],
        sequences: vec![],
        views,
        triggers,
        routines,
        settings,
    })
}

/// What change data capture needs of a source (`ferry assess`).
pub(crate) fn cdc_checks(source: &Catalog) -> Vec<Check> {
    let mut out = vec![];
    let set = |n: &str| source.setting(n).unwrap_or("").to_string();
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
        set("replication_privilege") == "true" && set("replication_client_privilege") == "true",
        CheckStatus::Failed,
        "REPLICATION SLAVE and REPLICATION CLIENT granted".into(),
        format!(
            "the user lacks {}: GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO the user (MariaDB 10.5+: BINLOG MONITOR for REPLICATION CLIENT)",
            if set("replication_privilege") != "true" { "REPLICATION SLAVE" } else { "REPLICATION CLIENT" }
        ),
    ));
    out
}

/// What a full load needs of a source (`ferry endpoint test`).
pub(crate) fn read_checks(source: &Catalog) -> Vec<Check> {
    vec![crate::schema::checks::every_table_readable(
        source,
        "no SELECT",
        "GRANT SELECT ON db.* TO the user",
    )]
}

/// What the full load needs of a target (`ferry assess --target`).
pub(crate) fn target_checks(t: &Catalog) -> Vec<Check> {
    let infile = t.setting("local_infile").unwrap_or("");
    vec![check(
        "TARGET-LOCAL-INFILE",
        "local_infile is ON on the target",
        infile == "ON",
        CheckStatus::Failed,
        "local_infile = ON".into(),
        format!("local_infile = {infile}: the full load writes with LOAD DATA LOCAL INFILE"),
    )]
}
