//! Source-side CDC objects: publications, the task's logical slot, the
//! snapshot holder's temporary slot, and their removal.

use super::replication::ReplicationClient;
use crate::engine::postgres::{classify, connect};
use crate::engine::ConnectorError;
use crate::report::Reporter;
use ferry_common::endpoint::Endpoint;
use ferry_common::position::Lsn;
use ferry_common::schema::{quote_ident, TableSchema};
use ferry_common::work::{CdcNames, TableRef, WorkResult};
use std::time::Duration;

fn lsn(s: &str, what: &str) -> Result<Lsn, ConnectorError> {
    s.parse().map_err(|e| ConnectorError::Definite(format!("{what}: {e}")))
}

/// Creates (or brings up to date) the publications and the slot. Tables
/// that could not publish updates and deletes without making them fail on
/// the source go into the insert-only publication and are reported.
pub async fn create(
    source: &Endpoint,
    names: &CdcNames,
    tables: &[TableSchema],
    existing_slot: bool,
) -> Result<WorkResult, ConnectorError> {
    let c = connect(source).await?;
    let wal_level: String = c
        .query_one("SHOW wal_level", &[])
        .await
        .map_err(|e| classify("reading wal_level on the source", e))?
        .get(0);
    if wal_level != "logical" {
        return Err(ConnectorError::Definite(format!(
            "{source}: wal_level is '{wal_level}'; change data capture needs wal_level=logical (set it and restart the server)"
        )));
    }
    let mut full = vec![];
    let mut insert_only = vec![];
    for t in tables {
        // 'd' uses the primary key, 'i' an index, 'f' the whole row.
        let ident: Option<String> = c
            .query_opt(
                "SELECT c.relreplident::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname = $1 AND c.relname = $2",
                &[&t.schema, &t.name],
            )
            .await
            .map_err(|e| classify(format!("reading the replica identity of {}", t.display_name()), e))?
            .map(|r| r.get(0));
        let has_identity = match ident.as_deref() {
            Some("f") | Some("i") => true,
            Some("d") => t.primary_key.is_some(),
            _ => false,
        };
        // ONLY: an inheritance parent's publication would otherwise take
        // in its children, keyless ones too, whose UPDATEs the source would
        // then refuse (each child is published as a table of its own).
        if has_identity {
            full.push(crate::engine::postgres::own_rows(t));
        } else {
            insert_only.push(t);
        }
    }
    let publish = |name: &str, list: &[String], options: &str| {
        let tables = if list.is_empty() {
            String::new()
        } else {
            format!(" FOR TABLE {}", list.join(", "))
        };
        format!(
            "DO $$BEGIN
               IF EXISTS (SELECT 1 FROM pg_publication WHERE pubname = '{name}') THEN
                 EXECUTE 'DROP PUBLICATION {q}';
               END IF;
             END$$;
             CREATE PUBLICATION {q}{tables} WITH ({options})",
            q = quote_ident(name),
        )
    };
    let only: Vec<String> = insert_only
        .iter()
        .map(|t| crate::engine::postgres::own_rows(t))
        .collect();
    // Publications come before the slot: pgoutput reads them as of each
    // change's position, and changes from before a publication existed fail.
    // So with a user's slot the user's publications (created before it) are
    // kept as they are; Ferry only creates them when missing.
    let existing_pubs: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_publication WHERE pubname = ANY($1)",
            &[&names.publications().map(String::from).to_vec()],
        )
        .await
        .map_err(|e| classify("reading pg_publication on the source", e))?
        .get(0);
    if existing_slot && existing_pubs == 2 {
        tracing::info!(slot = %names.slot, "using the existing publications of the user's slot");
    } else {
        c.batch_execute(&format!(
            "{}; {}",
            publish(&names.publication, &full, "publish_via_partition_root = true"),
            publish(
                &names.publication_insert_only,
                &only,
                "publish = 'insert, truncate', publish_via_partition_root = true"
            )
        ))
        .await
        .map_err(|e| classify("creating publications on the source", e))?;
    }

    let slot = c
        .query_opt(
            "SELECT plugin::text, confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1 AND database = current_database()",
            &[&names.slot],
        )
        .await
        .map_err(|e| classify("reading pg_replication_slots on the source", e))?;
    let consistent_point = match slot {
        Some(r) => {
            let plugin: Option<String> = r.get(0);
            if plugin.as_deref() != Some("pgoutput") {
                return Err(ConnectorError::Definite(format!(
                    "replication slot {} on {source} uses plugin {}; Ferry needs a pgoutput slot",
                    names.slot,
                    plugin.unwrap_or_default()
                )));
            }
            let l: Option<String> = r.get(1);
            lsn(&l.unwrap_or_else(|| "0/0".into()), "slot position")?
        }
        None if existing_slot => {
            return Err(ConnectorError::Definite(format!(
                "replication slot {} does not exist in {source} (--slot-name names an existing logical slot)",
                names.slot
            )))
        }
        None => {
            let r = c
                .query_one(
                    "SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput')",
                    &[&names.slot],
                )
                .await
                .map_err(|e| classify(format!("creating replication slot {} on the source", names.slot), e))?;
            lsn(&r.get::<_, String>(0), "slot position")?
        }
    };
    tracing::info!(slot = %names.slot, %consistent_point, insert_only = only.len(), "replication slot ready");
    Ok(WorkResult::SlotReady {
        consistent_point: consistent_point.into(),
        insert_only: insert_only
            .iter()
            .map(|t| {
                (
                    t.display_name(),
                    "no primary key or replica identity: inserts and truncates are replicated, updates and deletes are not (ALTER TABLE ... REPLICA IDENTITY FULL on the source, then restart the task, to capture them)".to_string(),
                )
            })
            .collect(),
    })
}

/// Exports a snapshot by creating a temporary slot, reports it, and keeps
/// the connection silent (a snapshot lives only while its exporting
/// connection issues no other command) until the assignment is revoked,
/// which drops this future and the connection with it.
pub async fn hold_snapshot(source: &Endpoint, slot: &str, reporter: &Reporter) -> Result<WorkResult, ConnectorError> {
    let mut rc = ReplicationClient::connect(source).await?;
    let rows = rc
        .simple_query(&format!(
            "CREATE_REPLICATION_SLOT {slot} TEMPORARY LOGICAL pgoutput (SNAPSHOT 'export')"
        ))
        .await?;
    let row = rows
        .first()
        .ok_or_else(|| ConnectorError::Transient("CREATE_REPLICATION_SLOT returned no row".into()))?;
    let lsn = lsn(
        row.get(1).cloned().flatten().as_deref().unwrap_or(""),
        "snapshot position",
    )?;
    let name = row
        .get(2)
        .cloned()
        .flatten()
        .ok_or_else(|| ConnectorError::Transient("CREATE_REPLICATION_SLOT exported no snapshot".into()))?;
    tracing::info!(snapshot = %name, %lsn, "holding the load snapshot");
    crate::engine::postgres::snapshot::publish(reporter, name, lsn).await?;
    Err(rc.closed().await)
}

/// Drops the slot (unless it was the user's) and the publications. A slot
/// still held by a dying stream is released by ending that session first.
pub async fn drop(source: &Endpoint, names: &CdcNames, keep_slot: bool) -> Result<WorkResult, ConnectorError> {
    let c = connect(source).await?;
    if !keep_slot {
        let mut gone = false;
        for _ in 0..20 {
            let active: Option<bool> = c
                .query_opt(
                    "SELECT active FROM pg_replication_slots WHERE slot_name = $1 AND database = current_database()",
                    &[&names.slot],
                )
                .await
                .map_err(|e| classify("reading pg_replication_slots", e))?
                .map(|r| r.get(0));
            let step = match active {
                None => {
                    gone = true;
                    break;
                }
                Some(false) => ("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active", "dropping the replication slot"),
                Some(true) => ("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active", "ending the session that holds the slot"),
            };
            c.execute(step.0, &[&names.slot])
                .await
                .map_err(|e| classify(format!("{} {}", step.1, names.slot), e))?;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        if !gone {
            return Err(ConnectorError::Transient(format!(
                "replication slot {} is still in use; retrying",
                names.slot
            )));
        }
    } else {
        // The user's slot stays, but the delete completes only once Ferry's
        // stream has let go of it, so the user can use or drop it at once.
        // Ferry's own walsender (by application name) is ended if it lingers.
        let app = source.application_name.clone().unwrap_or_else(|| "ferry".into());
        let mut released = false;
        for i in 0..40 {
            let holder: Option<Option<String>> = c
                .query_opt(
                    "SELECT a.application_name FROM pg_replication_slots s
                       LEFT JOIN pg_stat_activity a ON a.pid = s.active_pid
                      WHERE s.slot_name = $1 AND s.active",
                    &[&names.slot],
                )
                .await
                .map_err(|e| classify("reading pg_replication_slots", e))?
                .map(|r| r.get(0));
            match holder {
                None => {
                    released = true;
                    break;
                }
                Some(Some(a)) if a == app && i >= 8 => {
                    c.execute(
                        "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active",
                        &[&names.slot],
                    )
                    .await
                    .map_err(|e| classify(format!("ending Ferry's stream on {}", names.slot), e))?;
                }
                Some(_) => {}
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        if !released {
            return Err(ConnectorError::Transient(format!(
                "replication slot {} is still streaming; retrying",
                names.slot
            )));
        }
    }
    for p in names.publications() {
        c.batch_execute(&format!("DROP PUBLICATION IF EXISTS {}", quote_ident(p)))
            .await
            .map_err(|e| classify(format!("dropping publication {p}"), e))?;
    }
    tracing::info!(slot = %names.slot, "replication slot and publications dropped");
    Ok(WorkResult::Done)
}

/// Makes the task's publications include `table` again (a table dropped
/// and created on the source left them with the old one). Run before a
/// reload's snapshot: pgoutput reads publications as of each change's
/// position, so every change after the snapshot is published.
pub async fn publish_table(source: &Endpoint, names: &CdcNames, table: &TableRef) -> Result<(), ConnectorError> {
    let c = connect(source).await?;
    let shown = format!("{}.{}", table.schema, table.name);
    let row = c
        .query_opt(
            "SELECT c.relreplident::text,
                    EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary),
                    EXISTS (SELECT 1 FROM pg_publication_tables pt
                             WHERE pt.pubname = ANY($3) AND pt.schemaname = $1 AND pt.tablename = $2),
                    c.relkind = 'p'
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = $1 AND c.relname = $2",
            &[
                &table.schema,
                &table.name,
                &names.publications().map(String::from).to_vec(),
            ],
        )
        .await
        .map_err(|e| classify(format!("reading the publications of {shown}"), e))?;
    // Gone from the source: introspection says so.
    let Some(row) = row else { return Ok(()) };
    let (ident, keyed, published, partitioned): (String, bool, bool, bool) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    if published {
        return Ok(());
    }
    let full = matches!(ident.as_str(), "f" | "i") || (ident == "d" && keyed);
    let publication = if full {
        &names.publication
    } else {
        &names.publication_insert_only
    };
    // ONLY for all but a partitioned parent, as when the publication was created.
    let qualified = format!(
        "{}{}.{}",
        if partitioned { "" } else { "ONLY " },
        quote_ident(&table.schema),
        quote_ident(&table.name)
    );
    c.batch_execute(&format!(
        "ALTER PUBLICATION {} ADD TABLE {qualified}",
        quote_ident(publication)
    ))
    .await
    .map_err(|e| classify(format!("adding {shown} to publication {publication}"), e))?;
    tracing::info!(table = %shown, %publication, "table added to the task's publication again");
    Ok(())
}
