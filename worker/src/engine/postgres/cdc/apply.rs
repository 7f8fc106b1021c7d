//! The CDC stream from PostgreSQL: reads the task's slot with pgoutput and
//! hands the changes, in source commit order, to the engine-neutral
//! [`Applier`] (`pipeline/apply`), which writes them to a PostgreSQL or
//! MySQL target exactly once.
//!
//! ## Why nothing is lost or applied twice
//!
//! *Handoff from the full load.* The slot is created before anything is read,
//! so it holds every transaction committed after its consistent point P0.
//! Each table is read (all of its segments, on any workers) inside one
//! exported snapshot whose consistent point is P_T >= P0. Logical decoding
//! and the exported snapshot split history at that point exactly: a
//! transaction whose commit record lies before P_T is visible in the
//! snapshot, one at or after it is decoded by a slot created there. So for
//! table T the stream applies exactly the transactions with commit LSN >=
//! P_T (`apply_from`) and skips older ones, which the load already holds.
//! PostgreSQL's own table synchronisation relies on the same property. It
//! works for tables without a key too, since it never has to recognise a
//! row: the cut is by transaction, not by row.
//!
//! *Exactly-once apply* (carried out by the [`Applier`]). The target holds `ferry.apply_state(task, lsn,
//! epoch)`. A batch of source transactions is applied in one target
//! transaction that ends by setting `lsn` to the end LSN of the last source
//! commit it contains, `WHERE epoch = <this assignment's epoch>`: the
//! changes and the position commit together or not at all. On start the
//! stream takes the row over (`SET epoch = mine WHERE epoch <= mine`, which
//! waits for any open batch of a predecessor to end and then reads its
//! committed `lsn`) and skips every transaction whose commit precedes `lsn`.
//!
//! *Fencing.* Epochs grow with every grant, so after a takeover the stale
//! worker's closing `UPDATE ... WHERE epoch = <old>` matches no row; it rolls
//! back and stops. Two streams can never both commit the same transaction.
//!
//! *Source retention.* The position is confirmed to the source (standby
//! status `flush`) only after the target committed it and the coordinator
//! stored it in its Raft state, so WAL the target might still need is never
//! released. When the selected tables are idle while others are busy, a
//! keepalive's position is confirmed the same way once nothing is in flight:
//! the walsender has sent every transaction committed before it.
//!
//! *Memory.* pgoutput v1 sends a transaction only once it has committed (the
//! server spills large ones to disk); this side streams its statements into
//! the open target transaction in bounded batches, so a 1 GB source
//! transaction needs no more worker memory than a small one.
//!
//! *Values.* Into PostgreSQL a value travels as the source's text, cast to
//! the column's type, so it never leaves PostgreSQL's own forms. Into MySQL
//! it is decoded into the value model by the same rules the full load reads
//! with (the walsender session's output settings are fixed for this, see
//! `replication`), and a value MySQL cannot hold goes to the exceptions
//! table. Unchanged TOAST values are left out of the row image and so left
//! alone on the target.

use super::pgoutput::{self, Message, OldTuple, Relation, Value};
use super::replication::{pg_time_to_unix_ms, ReplicationClient, ReplicationMessage};
use crate::engine::postgres::{classify, connect, read};
use crate::engine::source::ChangeStream;
use crate::engine::{ConnectorError, Run};
use crate::pipeline::apply::{Applier, Image, Op, TargetTable};
use crate::report::Reporter;
use ferry_common::endpoint::Engine;
use ferry_common::position::{Lsn, Position};
use ferry_common::stop::CdcStop;
use ferry_common::value::{Value as ModelValue, ValueError};
use ferry_common::work::{CdcNames, CdcTable, ProgressDetail, TableRef, WorkResult};
use std::borrow::Cow;
use std::collections::HashMap;
use std::time::{Duration, Instant};

pub const MARK_PREFIX: &str = "ferry_mark";
/// The prefix of the logical message written after a CDC stop position.
const STOP_PREFIX: &str = "ferry_stop";

/// A relation as the stream maps it onto its target table.
struct Rel {
    /// Index into the work's table list, or None when not selected.
    table: Option<usize>,
    /// Source type of each relation column, when values are decoded into the
    /// value model (a target of another engine); empty for text passthrough.
    types: Vec<String>,
    /// Why this layout cannot be applied to the table, if it cannot. The
    /// table stops at the first change that would be applied, not here: a
    /// stream resumed after `reload-table` replays older layouts (before
    /// the table's `apply_from`) that the reloaded table no longer has.
    mismatch: Option<String>,
    /// Which relation columns make up its replica identity: an old *key*
    /// tuple sends the others as NULL, which are not their values.
    identity: Vec<bool>,
}

/// The source transaction being received.
struct Txn {
    final_lsn: Lsn,
    /// Already applied by an earlier stream (commit precedes the position).
    skip: bool,
}

struct Stream<'a> {
    tables: &'a [CdcTable],
    /// Each table's `apply_from` as a WAL location (see [`CdcTable`]).
    apply_from: Vec<Lsn>,
    by_name: HashMap<(String, String), usize>,
    rels: HashMap<u32, Rel>,
    applier: Applier,
    txn: Option<Txn>,
    latency_source_ms: u64,
}

impl Stream<'_> {
    /// The selected table a change to `rel` in the current transaction is
    /// applied to, if it is.
    fn wanted(&mut self, rel: u32) -> Option<usize> {
        let txn = self.txn.as_ref()?;
        let r = self.rels.get(&rel)?;
        let t = r.table?;
        if txn.skip || txn.final_lsn < self.apply_from[t] {
            return None;
        }
        if let Some(change) = &r.mismatch {
            self.applier.table_altered(t, change.clone());
            return None;
        }
        Some(t)
    }

    /// A pgoutput row image in the value model (`None`: unchanged TOAST).
    fn image(&self, rel: u32, values: Vec<Value>) -> Result<Image, ValueError> {
        let types = &self.rels[&rel].types;
        values
            .into_iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::Null => Ok(Some(ModelValue::Null)),
                Value::UnchangedToast => Ok(None),
                Value::Text(b) if types.is_empty() => {
                    let text =
                        String::from_utf8(b.to_vec()).map_err(|_| ValueError("text that is not valid UTF-8".into()))?;
                    Ok(Some(ModelValue::Text(Cow::Owned(text))))
                }
                Value::Text(b) => read::decode_text(&types[i], &b).map(Some),
            })
            .collect()
    }

    /// An old row image: a key tuple carries only the identity columns
    /// (the rest are absent, not NULL), a full one every column.
    fn old_image(&self, rel: u32, old: OldTuple) -> Result<Image, ValueError> {
        match old {
            OldTuple::Full(values) => self.image(rel, values),
            OldTuple::Key(values) => {
                let mut image = self.image(rel, values)?;
                for (v, key) in image.iter_mut().zip(&self.rels[&rel].identity) {
                    if !key {
                        *v = None;
                    }
                }
                Ok(image)
            }
        }
    }

    async fn change(&mut self, m: Message) -> Result<(), ConnectorError> {
        let (relation, op) = match m {
            Message::Insert { relation, new } => {
                let Some(t) = self.wanted(relation) else { return Ok(()) };
                match self.image(relation, new) {
                    Ok(row) => (
                        t,
                        Op::Insert(row.into_iter().map(|v| v.unwrap_or(ModelValue::Null)).collect()),
                    ),
                    Err(e) => return self.reject(t, e),
                }
            }
            Message::Update { relation, old, new } => {
                let Some(t) = self.wanted(relation) else { return Ok(()) };
                let after = match self.image(relation, new) {
                    Ok(after) => after,
                    Err(e) => return self.reject(t, e),
                };
                // Without an old image the key did not change: the new
                // image, decoded once, is the old one's key too.
                let before = match old {
                    Some(old) => match self.old_image(relation, old) {
                        Ok(before) => before,
                        Err(e) => return self.reject(t, e),
                    },
                    None => after.clone(),
                };
                (t, Op::Update { before, after })
            }
            Message::Delete { relation, old } => {
                let Some(t) = self.wanted(relation) else { return Ok(()) };
                match self.old_image(relation, old) {
                    Ok(before) => (t, Op::Delete(before)),
                    Err(e) => return self.reject(t, e),
                }
            }
            Message::Truncate {
                relations,
                cascade,
                restart_identity,
            } => {
                let ts: Vec<usize> = relations.into_iter().filter_map(|r| self.wanted(r)).collect();
                return self.applier.truncate(&ts, restart_identity, cascade).await;
            }
            _ => return Ok(()),
        };
        self.applier.apply(relation, op).await
    }

    fn reject(&mut self, t: usize, e: ValueError) -> Result<(), ConnectorError> {
        self.applier.exception(t, &e.0, &"(row image not decodable)");
        Ok(())
    }

    /// Maps a Relation message onto the target table; a column the source
    /// table did not have at introspection, or one whose type changed since
    /// (`now`: each column's type as `format_type` spells it, the form
    /// introspection recorded), stops that table's apply: rows are never
    /// applied against a stale column layout, nor values of a new type
    /// squeezed into the old one (a wider numeric would be rounded).
    fn relation(&mut self, r: Relation, now: &[String], engine: Engine) -> Result<(), ConnectorError> {
        let table = self.by_name.get(&(r.schema.clone(), r.name.clone())).copied();
        let mut types = vec![];
        let mut mismatch = None;
        if let Some(t) = table {
            let schema = &self.tables[t].table;
            let unknown = r
                .columns
                .iter()
                .find(|c| schema.column(&c.name).is_none_or(|col| col.generated.is_some()));
            let retyped = r.columns.iter().zip(now).find_map(|(c, now)| {
                let was = &schema.column(&c.name)?.type_sql;
                (was != now).then(|| (c.name.clone(), was.clone(), now.clone()))
            });
            let missing = schema
                .columns
                .iter()
                .filter(|c| c.generated.is_none())
                .find(|c| !r.columns.iter().any(|rc| rc.name == c.name));
            if let Some(c) = unknown {
                mismatch = Some(format!(
                    "column layout changed on the source: column \"{}\" is not in the target table",
                    c.name
                ));
            } else if let Some(c) = missing {
                mismatch = Some(format!(
                    "column layout changed on the source: column \"{}\" is gone",
                    c.name
                ));
            } else if let Some((name, was, now)) = retyped {
                mismatch = Some(format!("column \"{name}\" changed type on the source ({was} -> {now})"));
            } else {
                let image: Vec<&str> = r.columns.iter().map(|c| c.name.as_str()).collect();
                // Without a primary key, rows are found by the replica
                // identity index, else by their whole old image.
                let identity: Vec<String> = r.columns.iter().filter(|c| c.key).map(|c| c.name.clone()).collect();
                let key = (schema.primary_key.is_none() && r.replica_identity == b'i').then_some(identity.as_slice());
                let mut mapped = TargetTable::with_image(schema, engine, &image, key)?;
                // The snapshot cut is exact: nothing is replayed.
                mapped.replay = false;
                self.applier.remap(t, mapped);
                if engine != Engine::Postgres {
                    types = r
                        .columns
                        .iter()
                        .map(|c| {
                            schema
                                .column(&c.name)
                                .map(|col| col.type_sql.clone())
                                .unwrap_or_default()
                        })
                        .collect();
                }
            }
        }
        let identity = r.columns.iter().map(|c| c.key).collect();
        self.rels.insert(
            r.id,
            Rel {
                table,
                types,
                mismatch,
                identity,
            },
        );
        Ok(())
    }
}

/// What became of a task table on the source that pgoutput does not say.
enum Gone {
    /// No table of that name any more; no change of it follows the WAL
    /// insert position read in the same statement (the drop had committed).
    Dropped(Lsn),
    /// A table of that name that the task's publications do not hold: it
    /// was dropped and created again, and its changes are not decoded.
    Unpublished,
}

/// Task tables dropped on the source, or created again outside the
/// publications: pgoutput sends nothing for either, so the catalog is
/// asked (every few seconds). `pg_publication_tables` expands FOR ALL
/// TABLES and FOR TABLES IN SCHEMA publications (a user's, `--slot-name`).
async fn gone_or_unpublished(
    c: &tokio_postgres::Client,
    names: &CdcNames,
    tables: &[CdcTable],
) -> Result<Vec<(usize, Gone)>, ConnectorError> {
    let schemas: Vec<&str> = tables.iter().map(|t| t.table.schema.as_str()).collect();
    let relnames: Vec<&str> = tables.iter().map(|t| t.table.name.as_str()).collect();
    let pubs: Vec<String> = names.publications().map(String::from).to_vec();
    let rows = c
        .query(
            "SELECT t.i, c.oid IS NULL,
                    c.oid IS NOT NULL
                    AND NOT EXISTS (SELECT 1 FROM pg_publication_tables pt
                                     WHERE pt.pubname = ANY($3) AND pt.schemaname = t.s AND pt.tablename = t.n),
                    pg_current_wal_insert_lsn()::text
               FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS t(s, n, i)
               LEFT JOIN pg_namespace ns ON ns.nspname = t.s
               LEFT JOIN pg_class c ON c.relnamespace = ns.oid AND c.relname = t.n AND c.relkind IN ('r', 'p')",
            &[&schemas, &relnames, &pubs],
        )
        .await
        .map_err(|e| classify("checking the task's tables on the source", e))?;
    let mut gone = vec![];
    for r in &rows {
        let t = r.get::<_, i64>(0) as usize - 1;
        if r.get::<_, bool>(1) {
            let at: Lsn = r.get::<_, String>(3).parse().map_err(ConnectorError::Definite)?;
            gone.push((t, Gone::Dropped(at)));
        } else if r.get::<_, bool>(2) {
            gone.push((t, Gone::Unpublished));
        }
    }
    Ok(gone)
}

/// Each column's type in a Relation message, as `format_type` spells it.
async fn relation_types(c: &tokio_postgres::Client, r: &Relation) -> Result<Vec<String>, ConnectorError> {
    let oids: Vec<u32> = r.columns.iter().map(|c| c.type_oid).collect();
    let mods: Vec<i32> = r.columns.iter().map(|c| c.type_modifier).collect();
    let rows = c
        .query(
            "SELECT format_type(o, m) FROM unnest($1::oid[], $2::int4[]) WITH ORDINALITY AS u(o, m, n) ORDER BY n",
            &[&oids, &mods],
        )
        .await
        .map_err(|e| classify(format!("reading the column types of {}.{}", r.schema, r.name), e))?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// Once the source is past `stop` (its clock after the stop time, or its
/// WAL beyond the stop position), writes a transaction there: a
/// transactional logical message, committed after the stop by
/// construction. The stream stops at its Begin at the latest, so a stop in
/// an idle source's past is reached without waiting for the application's
/// next write. True once written.
/// How long the oldest writing transaction in the source's database has
/// been open, in milliseconds (0: none, or none this role may see). The
/// source latency keeps growing while one stays open, as DMS's does,
/// though pgoutput sends nothing of it until it commits. Seeing other
/// roles' transactions takes `pg_read_all_stats`.
async fn open_transaction_ms(c: &tokio_postgres::Client) -> u64 {
    c.query_one(
        "SELECT COALESCE((EXTRACT(EPOCH FROM clock_timestamp() - min(xact_start)) * 1000)::bigint, 0)
           FROM pg_stat_activity
          WHERE datname = current_database() AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()",
        &[],
    )
    .await
    .map_or(0, |r| r.get::<_, i64>(0).max(0) as u64)
}

async fn stop_probe(c: &tokio_postgres::Client, task: &str, stop: &CdcStop) -> Result<bool, ConnectorError> {
    let (past, at) = match stop {
        CdcStop::Time { ms, .. } => ("now() > to_timestamp($2::text::float8 / 1000)", ms.to_string()),
        CdcStop::Position(p) => ("pg_current_wal_insert_lsn() >= $2::text::pg_lsn", p.to_string()),
    };
    let row = c
        .query_opt(
            &format!("SELECT pg_logical_emit_message(true, $1, $3) WHERE {past}"),
            &[&STOP_PREFIX, &at, &task],
        )
        .await
        .map_err(|e| classify("writing a transaction after the CDC stop position on the source", e))?;
    Ok(row.is_some())
}

/// The WAL location of a task position (none: the log's origin).
fn wal_of(p: Option<&Position>) -> Result<Lsn, ConnectorError> {
    p.map_or(Ok(Lsn(0)), |p| p.wal().map_err(ConnectorError::Definite))
}

pub async fn run(run: &Run, stream: ChangeStream<'_>, reporter: &Reporter) -> Result<WorkResult, ConnectorError> {
    let ChangeStream {
        source,
        target,
        cdc: names,
        tables,
        start,
        policy,
        lanes,
        stop,
    } = stream;
    let task = run.task.clone();
    let targets = tables
        .iter()
        .map(|t| {
            TargetTable::new(&t.table, target.engine).map(|mut m| {
                m.replay = false;
                m.tracked(t.changes.clone())
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut applier = Applier::open(run, target, targets, lanes).await?;
    applier.set_policy(&policy);
    crate::pipeline::stop::check_not_past(applier.applied.as_ref(), stop.as_ref())?;
    let applied = wal_of(applier.applied.as_ref())?.max(wal_of(start.as_ref())?);
    let mut emitted_mark = applier.marks_reached;
    // Writable even while a cutover freezes the source (see `connect`):
    // marks must still be written.
    let source_sql = connect(source).await?;
    let mut rc = ReplicationClient::connect(source).await?;
    let pubs = names.publications().join(",");
    rc.start_replication(&format!(
        "START_REPLICATION SLOT {} LOGICAL {applied} (proto_version '1', publication_names '{pubs}', messages 'true')",
        names.slot
    ))
    .await?;
    let explain = |e: ConnectorError| {
        match e {
        ConnectorError::Definite(m) if m.contains("publication") && m.contains("does not exist") => {
            ConnectorError::Definite(format!(
                "{m}: the slot's position precedes the publications; with --slot-name, create publications {} and {} before the slot",
                names.publication, names.publication_insert_only
            ))
        }
        e => e,
    }
    };
    tracing::info!(slot = %names.slot, from = %applied, set_based = applier.set_based(), lanes = applier.lanes(), "CDC stream started");

    let mut s = Stream {
        tables,
        apply_from: tables
            .iter()
            .map(|t| wal_of(t.apply_from.as_ref()))
            .collect::<Result<_, _>>()?,
        by_name: tables
            .iter()
            .enumerate()
            .map(|(i, t)| ((t.table.schema.clone(), t.table.name.clone()), i))
            .collect(),
        rels: HashMap::new(),
        applier,
        txn: None,
        latency_source_ms: 0,
    };
    // Transactions that commit before this were applied by an earlier stream.
    let resume = applied;
    // Position the source may discard up to (confirmed after Raft stored it).
    let mut confirmed = Lsn(0);
    // A keepalive position safe to confirm while idle.
    let mut idle_position = Lsn(0);
    let mut retained: u64 = 0;
    // Log bytes received since the last report (counted per message here,
    // handed to the worker's series once per report, off the hot path).
    let mut received: usize = 0;
    let mut last_retained_check = Instant::now() - Duration::from_secs(60);
    let mut last_report = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(1000));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut marks_reported = s.applier.marks_reached;
    let mut marks_wanted = reporter.mark_requests();
    // Selected tables created on the source since, reported until stored.
    let mut new_tables: Vec<TableRef> = vec![];
    // A transaction written after the stop position once the source has
    // passed it (see `stop_probe`), so an idle stream still reaches it.
    let mut stop_probed = false;
    loop {
        // A mark just committed on the target is reported at once: someone
        // (`task wait --for caught-up`, a cutover) is waiting for it.
        if s.applier.marks_reached > marks_reported {
            marks_reported = s.applier.marks_reached;
            tick.reset_immediately();
        }
        tokio::select! {
            m = rc.recv() => match m.map_err(explain)? {
                ReplicationMessage::Keepalive { wal_end, reply_requested } => {
                    // A batch left open because more data was buffered, when
                    // that data was only this keepalive: commit it now, not
                    // at the next tick.
                    if s.applier.due() && s.txn.is_none() && !rc.has_buffered() {
                        s.applier.commit_batch().await?;
                    }
                    if s.txn.is_none() && !s.applier.pending() {
                        idle_position = idle_position.max(wal_end);
                    }
                    if reply_requested {
                        rc.send_status(confirmed, false).await?;
                    }
                }
                ReplicationMessage::XLogData { data, .. } => {
                    received += data.len();
                    let msg = pgoutput::decode(data).map_err(|e| ConnectorError::Transient(format!("slot {}: {e}", names.slot)))?;
                    match msg {
                        Message::Begin { final_lsn, commit_time, .. } => {
                            let commit_ms = pg_time_to_unix_ms(commit_time);
                            s.latency_source_ms = ferry_common::now_ms().saturating_sub(commit_ms);
                            let skip = final_lsn < resume.max(wal_of(s.applier.applied.as_ref())?);
                            if let Some(stop) = stop.as_ref().filter(|st| !skip && st.passed(commit_ms, &final_lsn.into())) {
                                return crate::pipeline::stop::halt(&mut s.applier, reporter, stop).await;
                            }
                            // Already applied transactions never enter a batch.
                            if !skip {
                                s.applier.begin_txn(commit_ms);
                            }
                            s.txn = Some(Txn { final_lsn, skip });
                        }
                        Message::Commit { end_lsn, .. } => {
                            if s.txn.take().is_some_and(|t| !t.skip) {
                                // Commits when the stream has nothing more ready
                                // (low latency), or the batch is large or old.
                                s.applier.end_txn(end_lsn.into(), rc.has_buffered()).await?;
                            }
                        }
                        Message::Relation(r) => {
                            let now = if s.by_name.contains_key(&(r.schema.clone(), r.name.clone())) {
                                relation_types(&source_sql, &r).await?
                            } else {
                                vec![]
                            };
                            s.relation(r, &now, target.engine)?
                        }
                        Message::Logical { prefix, content, transactional, .. } if prefix == MARK_PREFIX => {
                            let text = String::from_utf8_lossy(&content);
                            if let Some((t, n)) = text.rsplit_once(':') {
                                if t == task && transactional && !s.txn.as_ref().is_some_and(|t| t.skip) {
                                    if let Ok(n) = n.parse::<u64>() {
                                        s.applier.mark(n);
                                    }
                                }
                            }
                        }
                        Message::Origin { .. } | Message::Type { .. } | Message::Logical { .. } => {}
                        change => s.change(change).await?,
                    }
                }
            },
            Ok(()) = marks_wanted.changed() => {
                // A mark was asked for: report now; the answer emits it.
                if *marks_wanted.borrow_and_update() > emitted_mark {
                    tick.reset_immediately();
                }
            }
            _ = tick.tick() => {
                if s.applier.due() && s.txn.is_none() {
                    s.applier.commit_batch().await?;
                }
                if let Some(stop) = stop.as_ref().filter(|_| !stop_probed) {
                    stop_probed = stop_probe(&source_sql, &task, stop).await?;
                }
                if last_retained_check.elapsed() >= Duration::from_secs(5) {
                    last_retained_check = Instant::now();
                    if let Ok(r) = source_sql.query_opt(
                        "SELECT (pg_current_wal_lsn() - restart_lsn)::bigint FROM pg_replication_slots WHERE slot_name = $1",
                        &[&names.slot],
                    ).await {
                        retained = r.and_then(|r| r.get::<_, Option<i64>>(0)).unwrap_or(0).max(0) as u64;
                    }
                    for (t, change) in gone_or_unpublished(&source_sql, names, tables).await? {
                        match change {
                            Gone::Dropped(at) => s.applier.table_dropped(t, at.into(), false),
                            Gone::Unpublished => s.applier.table_altered(
                                t,
                                "no longer in the task's publication (dropped and created again on the source?)".into(),
                            ),
                        }
                    }
                    if let Some(m) = policy.discover {
                        let found = crate::engine::postgres::introspect::selected_tables(&source_sql, m)
                            .await
                            .map_err(|e| classify("listing the source's tables", e))?;
                        new_tables = found
                            .into_iter()
                            .filter(|(_, schema, name)| {
                                s.by_name
                                    .get(&(schema.clone(), name.clone()))
                                    .is_none_or(|&i| s.applier.is_dropped(i))
                            })
                            .map(|(_, schema, name)| TableRef { schema, name })
                            .collect();
                    }
                }
                let idle = s.txn.is_none() && !s.applier.pending();
                let applied = s.applier.applied.as_ref().map(Position::wal).transpose().map_err(ConnectorError::Definite)?;
                let checkpoint = if idle { applied.max(Some(idle_position)) } else { applied };
                let at = checkpoint.map(Position::Wal);
                if idle {
                    s.applier.finish_drops(at.as_ref()).await?;
                }
                let mut progress = s.applier.progress(at, idle, s.latency_source_ms, last_report.elapsed().as_secs_f64());
                progress.latency_source_ms = progress.latency_source_ms.max(open_transaction_ms(&source_sql).await);
                crate::health::received(&task, std::mem::take(&mut received));
                progress.retained_wal_bytes = retained;
                progress.new_tables = new_tables.clone();
                match reporter.report(&ProgressDetail::Cdc(progress)).await {
                    Ok(requested) => {
                        s.applier.reported();
                        last_report = Instant::now();
                        // Stored in Raft: now the source may let it go.
                        confirmed = checkpoint.unwrap_or(confirmed);
                        if requested > emitted_mark {
                            source_sql
                                .execute(
                                    "SELECT pg_logical_emit_message(true, $1, $2)",
                                    &[&MARK_PREFIX, &format!("{task}:{requested}")],
                                )
                                .await
                                .map_err(|e| classify("writing a caught-up mark on the source", e))?;
                            emitted_mark = requested;
                        }
                    }
                    Err(e @ ConnectorError::Definite(_)) => return Err(e),
                    Err(e) => tracing::warn!(error = %e, "checkpoint not stored yet; the source keeps the WAL"),
                }
                rc.send_status(confirmed, false).await?;
            }
        }
    }
}
