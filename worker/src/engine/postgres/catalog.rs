//! Everything of a PostgreSQL database besides the table definitions the
//! data path reads (see `introspect`): user types, free sequences, views and
//! materialized views, triggers, functions and procedures, comments, and the
//! settings the premigration checks look at.

use super::{classify, connect};
use crate::engine::ConnectorError;
use crate::schema::catalog::*;
use crate::schema::check::{check, Check, CheckStatus};
use ferry_common::endpoint::{Endpoint, Engine};
use ferry_common::mapping::TableMappings;
use ferry_common::schema::{quote_ident, TypeDef};

/// Schemas that hold user objects.
const USER_NAMESPACE: &str =
    "n.nspname NOT IN ('pg_catalog','information_schema','ferry') AND n.nspname NOT LIKE 'pg\\_%'";

pub async fn catalog(ep: &Endpoint, mappings: &TableMappings) -> Result<Catalog, ConnectorError> {
    // No key samples: conversion reads structure only.
    let schema = super::introspect::introspect(ep, mappings, u64::MAX, 1, None).await?;
    let c = connect(ep).await?;
    let q = |e| classify(format!("reading the catalog of {ep}"), e);
    let text = |r: &tokio_postgres::Row, i: usize| r.get::<_, Option<String>>(i).unwrap_or_default();

    let mut details = Vec::new();
    for t in &schema.tables {
        let qn = t.qualified();
        let comment: Option<String> = c
            .query_one("SELECT obj_description($1::text::regclass, 'pg_class')", &[&qn])
            .await
            .map_err(q)?
            .get(0);
        let column_comments = c
            .query(
                "SELECT a.attname::text, d.description FROM pg_attribute a
                   JOIN pg_description d ON d.objoid = a.attrelid AND d.objsubid = a.attnum AND d.classoid = 'pg_class'::regclass
                  WHERE a.attrelid = $1::text::regclass ORDER BY a.attnum",
                &[&qn],
            )
            .await
            .map_err(q)?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let mut next_values = vec![];
        for s in &t.sequences {
            let next: Option<i64> = c
                .query_opt(
                    "SELECT COALESCE(last_value + increment_by, start_value) FROM pg_sequences
                      WHERE schemaname = $1 AND sequencename = $2",
                    &[&s.schema, &s.name],
                )
                .await
                .map_err(q)?
                .and_then(|r| r.get(0));
            if let Some(n) = next {
                next_values.push((s.column.clone(), n));
            }
        }
        // Defaults drawing from a sequence no column owns.
        for col in &t.columns {
            let Some(seq) = col
                .default
                .as_deref()
                .and_then(|d| d.strip_prefix("nextval('"))
                .and_then(|d| d.split_once("'::regclass)"))
                .map(|(name, _)| name.replace("''", "'"))
            else {
                continue;
            };
            if next_values.iter().any(|(c, _)| c == &col.name) {
                continue;
            }
            let r = c
                .query_one(
                    "SELECT COALESCE(pg_sequence_last_value($1::text::regclass) + seqincrement, seqstart)
                       FROM pg_sequence WHERE seqrelid = $1::text::regclass",
                    &[&seq],
                )
                .await
                .map_err(q)?;
            next_values.push((col.name.clone(), r.get(0)));
        }
        details.push(TableDetails {
            comment,
            column_comments,
            next_values,
            ..Default::default()
        });
    }

    let mut types = Vec::new();
    for r in c
        .query(
            &format!(
                "SELECT n.nspname::text, t.typname::text, t.typtype::text, format_type(t.typbasetype, t.typtypmod),
                        (SELECT array_agg(e.enumlabel::text ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid),
                        (SELECT array_agg(a.attname::text || ' ' || format_type(a.atttypid, a.atttypmod) ORDER BY a.attnum)
                           FROM pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped),
                        (SELECT string_agg(' CONSTRAINT ' || quote_ident(k.conname) || ' ' || pg_get_constraintdef(k.oid), '' ORDER BY k.conname)
                           FROM pg_constraint k WHERE k.contypid = t.oid),
                        t.typnotnull, pg_get_expr(t.typdefaultbin, 0)
                   FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
                  WHERE {USER_NAMESPACE}
                    AND (t.typtype IN ('e','d') OR (t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c'))
                    AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = t.oid AND d.deptype = 'e')
                  ORDER BY t.oid"
            ),
            &[],
        )
        .await
        .map_err(q)?
    {
        let (schema, name, kind): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        let qn = format!("{}.{}", quote_ident(&schema), quote_ident(&name));
        let labels: Vec<String> = r.get::<_, Option<Vec<String>>>(4).unwrap_or_default();
        let attrs: Vec<String> = r.get::<_, Option<Vec<String>>>(5).unwrap_or_default();
        let attributes: Vec<(String, String)> = attrs
            .iter()
            .filter_map(|a| a.split_once(' ').map(|(n, t)| (n.to_string(), t.to_string())))
            .collect();
        let (kind, ddl) = match kind.as_str() {
            "e" => (
                UserTypeKind::Enum,
                format!(
                    "CREATE TYPE {qn} AS ENUM ({})",
                    labels.iter().map(|l| ferry_common::schema::quote_literal(l)).collect::<Vec<_>>().join(", ")
                ),
            ),
            "d" => {
                let d = super::introspect::domain_ddl(&qn, &r.get::<_, String>(3), r.get(8), r.get(7), &text(&r, 6));
                (UserTypeKind::Domain, d)
            }
            _ => (
                UserTypeKind::Composite,
                format!(
                    "CREATE TYPE {qn} AS ({})",
                    attributes
                        .iter()
                        .map(|(n, t)| format!("{} {t}", quote_ident(n)))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
        };
        types.push(UserType {
            def: TypeDef { schema, name, ddl },
            kind,
            labels,
        });
    }

    let mut sequences = Vec::new();
    for r in c
        .query(
            &format!(
                "SELECT n.nspname::text, s.relname::text,
                        format('AS %s INCREMENT BY %s MINVALUE %s MAXVALUE %s START WITH %s CACHE %s%s',
                               format_type(q.seqtypid, NULL), q.seqincrement, q.seqmin, q.seqmax, q.seqstart, q.seqcache,
                               CASE WHEN q.seqcycle THEN ' CYCLE' ELSE '' END),
                        q.seqstart, q.seqincrement,
                        COALESCE((SELECT CASE WHEN p.last_value IS NULL THEN q.seqstart ELSE p.last_value + q.seqincrement END
                                    FROM pg_sequences p WHERE p.schemaname = n.nspname AND p.sequencename = s.relname), q.seqstart)
                   FROM pg_class s JOIN pg_namespace n ON n.oid = s.relnamespace JOIN pg_sequence q ON q.seqrelid = s.oid
                  WHERE s.relkind = 'S' AND {USER_NAMESPACE}
                    AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = s.oid AND d.deptype IN ('a','i','e'))
                  ORDER BY 1, 2"
            ),
            &[],
        )
        .await
        .map_err(q)?
    {
        sequences.push(FreeSequence {
            schema: r.get(0),
            name: r.get(1),
            options: r.get(2),
            increment: r.get(4),
            next: r.get(5),
        });
    }

    let mut views = Vec::new();
    for r in c
        .query(
            &format!(
                "SELECT n.nspname::text, c.relname::text, c.relkind = 'm', pg_get_viewdef(c.oid)
                   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE c.relkind IN ('v','m') AND {USER_NAMESPACE}
                    AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')
                  ORDER BY c.oid"
            ),
            &[],
        )
        .await
        .map_err(q)?
    {
        let (schema, name, materialized, query): (String, String, bool, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        let query = query.trim().trim_end_matches(';').trim().to_string();
        views.push(View {
            definition: format!(
                "CREATE {}VIEW {}.{} AS\n{query};",
                if materialized { "MATERIALIZED " } else { "" },
                quote_ident(&schema),
                quote_ident(&name)
            ),
            schema,
            name,
            materialized,
            query,
        });
    }

    let mut triggers = Vec::new();
    for r in c
        .query(
            &format!(
                "SELECT n.nspname::text, t.tgname::text, c.relname::text, t.tgtype::int, pg_get_triggerdef(t.oid),
                        fn.nspname::text || '.' || p.proname::text, p.prosrc, t.tgqual IS NOT NULL OR t.tgattr::text <> ''
                   FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
                   JOIN pg_proc p ON p.oid = t.tgfoid JOIN pg_namespace fn ON fn.oid = p.pronamespace
                  WHERE NOT t.tgisinternal AND {USER_NAMESPACE}
                  ORDER BY 1, 3, 2"
            ),
            &[],
        )
        .await
        .map_err(q)?
    {
        // tgtype bits: 0 row, 1 before, 2 insert, 3 delete, 4 update, 5 truncate, 6 instead.
        let bits: i32 = r.get(3);
        let timing = if bits & 64 != 0 {
            "INSTEAD OF"
        } else if bits & 2 != 0 {
            "BEFORE"
        } else {
            "AFTER"
        };
        let events = [(4, "INSERT"), (16, "UPDATE"), (8, "DELETE"), (32, "TRUNCATE")]
            .iter()
            .filter(|(b, _)| bits & b != 0)
            .map(|(_, e)| e.to_string())
            .collect();
        let definition: String = r.get(4);
        let conditional: bool = r.get(7);
        triggers.push(Trigger {
            schema: r.get(0),
            name: r.get(1),
            table: r.get(2),
            timing: timing.into(),
            events,
            for_each_row: bits & 1 != 0,
            body: r.get(6),
            function: r.get(5),
            condition: conditional.then(|| definition.clone()),
            definition,
        });
    }

    let mut routines = Vec::new();
    for r in c
        .query(
            &format!(
                "SELECT n.nspname::text, p.proname::text, p.prokind::text, l.lanname::text,
                        COALESCE(p.proargnames, '{{}}'::text[]),
                        COALESCE(p.proargmodes::text[], '{{}}'::text[]),
                        ARRAY(SELECT format_type(t, NULL) FROM unnest(COALESCE(p.proallargtypes, p.proargtypes::oid[])) t),
                        CASE WHEN p.prokind = 'f' THEN pg_get_function_result(p.oid) END,
                        p.prosrc, p.provolatile = 'i', pg_get_functiondef(p.oid)
                   FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang
                  WHERE {USER_NAMESPACE} AND p.prokind IN ('f','p')
                    AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
                  ORDER BY 1, 2"
            ),
            &[],
        )
        .await
        .map_err(q)?
    {
        let names: Vec<String> = r.get(4);
        let modes: Vec<String> = r.get(5);
        let types: Vec<String> = r.get(6);
        let params = types
            .iter()
            .enumerate()
            .map(|(i, t)| Param {
                name: names.get(i).cloned().unwrap_or_default(),
                mode: match modes.get(i).map(String::as_str) {
                    Some("o") => "OUT",
                    Some("b") => "INOUT",
                    Some("t") => "TABLE",
                    Some("v") => "VARIADIC",
                    _ => "IN",
                }
                .into(),
                type_sql: t.clone(),
            })
            .collect();
        routines.push(Routine {
            schema: r.get(0),
            name: r.get(1),
            kind: if r.get::<_, String>(2) == "p" {
                RoutineKind::Procedure
            } else {
                RoutineKind::Function
            },
            language: r.get(3),
            params,
            returns: r.get(7),
            body: r.get(8),
            deterministic: r.get(9),
            definition: r.get(10),
        });
    }

    let mut settings = Vec::new();
    for name in [
        "wal_level",
        "max_replication_slots",
        "max_wal_senders",
        "server_encoding",
        "lc_collate",
    ] {
        let v: String = c
            .query_one("SELECT current_setting($1)", &[&name])
            .await
            .map_err(q)?
            .get(0);
        settings.push((name.to_string(), v));
    }
    let r = c
        .query_one(
            "SELECT version(), current_database()::text,
                    (SELECT count(*) FROM pg_replication_slots)::text,
                    (SELECT rolsuper OR rolreplication FROM pg_roles WHERE rolname = current_user)::text,
                    has_database_privilege(current_database(), 'CREATE')::text",
            &[],
        )
        .await
        .map_err(q)?;
    settings.push(("replication_slots_used".into(), r.get(2)));
    settings.push(("replication_privilege".into(), r.get(3)));
    settings.push(("create_privilege".into(), r.get(4)));
    // What the endpoint test reports: tables the user cannot read, or
    // cannot publish (CREATE PUBLICATION ... FOR TABLE needs their owner),
    // and the target-side privileges loads and CDC use.
    let privileges = c
        .query_one(
            "SELECT has_database_privilege(current_database(), 'TEMP')::text,
                    (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
                      OR (current_setting('server_version_num')::int >= 150000
                          AND has_parameter_privilege('session_replication_role', 'SET'))",
            &[],
        )
        .await;
    // has_parameter_privilege is PostgreSQL 15+: older servers answer with
    // an error, and only a superuser may set the role there.
    let (temp, replica_role) = match privileges {
        Ok(r) => (r.get::<_, String>(0), r.get::<_, Option<bool>>(1).unwrap_or(false)),
        Err(_) => {
            let old = c
                .query_one(
                    "SELECT has_database_privilege(current_database(), 'TEMP')::text,
                            (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)",
                    &[],
                )
                .await
                .map_err(q)?;
            (old.get(0), old.get::<_, Option<bool>>(1).unwrap_or(false))
        }
    };
    settings.push(("temp_privilege".into(), temp));
    settings.push(("replica_role_privilege".into(), replica_role.to_string()));
    let rows = c
        .query(
            "SELECT n.nspname, c.relname,
                    has_schema_privilege(n.oid, 'USAGE') AND has_table_privilege(c.oid, 'SELECT'),
                    pg_has_role(c.relowner, 'USAGE')
                      OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind IN ('r', 'p')",
            &[],
        )
        .await
        .map_err(q)?;
    let selected: std::collections::HashSet<(&str, &str)> = schema
        .tables
        .iter()
        .map(|x| (x.schema.as_str(), x.name.as_str()))
        .collect();
    let mut unreadable = vec![];
    let mut unpublishable = vec![];
    for r in rows {
        let (s, t): (String, String) = (r.get(0), r.get(1));
        if !selected.contains(&(s.as_str(), t.as_str())) {
            continue;
        }
        let name = format!("{}.{}", quote_ident(&s), quote_ident(&t));
        if !r.get::<_, bool>(2) {
            unreadable.push(name.clone());
        }
        if !r.get::<_, Option<bool>>(3).unwrap_or(false) {
            unpublishable.push(name);
        }
    }
    settings.push(("unreadable_tables".into(), unreadable.join(", ")));
    settings.push(("unpublishable_tables".into(), unpublishable.join(", ")));

    Ok(Catalog {
        engine: Engine::Postgres,
        version: r.get(0),
        database: r.get(1),
        tables: schema.tables,
        details,
        types,
        sequences,
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
        if max == 0 {
            "max_replication_slots = 0: raise it (restart required)".to_string()
        } else {
            format!("all {max} replication slots are in use: drop unused ones or raise max_replication_slots (restart required)")
        },
    ));
    let senders: i64 = set("max_wal_senders").parse().unwrap_or(0);
    out.push(check(
        "PG-WAL-SENDERS",
        "a free WAL sender",
        senders > used,
        CheckStatus::Failed,
        format!("max_wal_senders = {senders}"),
        format!("max_wal_senders = {senders} leaves none for Ferry: raise it (restart required)"),
    ));
    out.push(check(
        "PG-REPLICATION-ROLE",
        "the user may replicate",
        set("replication_privilege") == "true",
        CheckStatus::Failed,
        "the user has REPLICATION (or is superuser)".into(),
        "the user lacks the REPLICATION attribute: ALTER ROLE ... REPLICATION".into(),
    ));
    let unpublishable = set("unpublishable_tables");
    out.push(check(
        "PG-PUBLICATION",
        "the user may publish the tables",
        unpublishable.is_empty() && set("create_privilege") == "true",
        CheckStatus::Failed,
        "CREATE on the database, and every table owned by the user's roles".into(),
        if set("create_privilege") != "true" {
            "the user lacks CREATE on the database, which CREATE PUBLICATION needs: GRANT CREATE ON DATABASE ... TO the user".into()
        } else {
            format!("CREATE PUBLICATION needs each table's owner; owned by another role: {unpublishable} (GRANT the owning role TO the user, or run CDC as the owner)")
        },
    ));
    out
}

/// What a full load needs of a source (`ferry endpoint test`).
pub(crate) fn read_checks(source: &Catalog) -> Vec<Check> {
    vec![crate::schema::checks::every_table_readable(
        source,
        "no SELECT (or no USAGE on the schema)",
        "GRANT USAGE ON SCHEMA ..., SELECT ON ALL TABLES IN SCHEMA ... TO the user",
    )]
}

/// What the full load needs of a target (`ferry assess --target`).
pub(crate) fn target_checks(t: &Catalog) -> Vec<Check> {
    vec![
        check(
            "TARGET-CREATE",
            "the user may create schemas on the target",
            t.setting("create_privilege") == Some("true"),
            CheckStatus::Failed,
            "CREATE on the database".into(),
            "the target user lacks CREATE on the database: GRANT CREATE ON DATABASE ... TO the user".into(),
        ),
        check(
            "TARGET-TEMP",
            "the user may create temporary tables",
            t.setting("temp_privilege") == Some("true"),
            CheckStatus::Warning,
            "TEMP on the database".into(),
            "no TEMP on the database: loads into tables that keep their rows (DO_NOTHING) stage rows in a temporary table and fail: GRANT TEMP ON DATABASE ... TO the user".into(),
        ),
        check(
            "TARGET-REPLICA-ROLE",
            "CDC may apply without triggers and foreign keys",
            t.setting("replica_role_privilege") == Some("true"),
            CheckStatus::Warning,
            "may SET session_replication_role".into(),
            "the user may not SET session_replication_role: CDC then applies row by row in source order with the target's triggers and foreign keys active (GRANT SET ON PARAMETER session_replication_role TO the user, PostgreSQL 15+)".into(),
        ),
    ]
}
