//! The CDC stream: reads the task's slot with pgoutput and applies changes to
//! the target in source commit order, exactly once.
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
//! *Exactly-once apply.* The target holds `ferry.apply_state(task, lsn,
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

use super::pgoutput::{self, Message, OldTuple, Relation, Value};
use super::replication::{pg_time_to_unix_ms, ReplicationClient, ReplicationMessage};
use crate::connectors::postgres::{classify, connect};
use crate::connectors::ConnectorError;
use crate::report::Reporter;
use ferry_common::endpoint::Endpoint;
use ferry_common::position::Lsn;
use ferry_common::schema::{quote_ident, quote_literal};
use ferry_common::work::{CdcNames, CdcProgress, CdcTable, ProgressDetail, TableCounters, WorkResult};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

pub const MARK_PREFIX: &str = "ferry_mark";

/// Target SQL buffered before it is sent (statements of one open batch).
const FLUSH_BYTES: usize = 1 << 20;
/// A batch commits after this many source transactions or this long: under
/// a steady write load, latency is about BATCH_TIME plus the batch's apply.
const BATCH_TXNS: u64 = 1000;
const BATCH_TIME: Duration = Duration::from_millis(100);
const MAX_VALUES_PER_INSERT: usize = 500;

pub const CONTROL_DDL: &str = "CREATE SCHEMA IF NOT EXISTS ferry;
CREATE TABLE IF NOT EXISTS ferry.apply_state (
    task text PRIMARY KEY, lsn pg_lsn NOT NULL, epoch bigint NOT NULL,
    mark bigint NOT NULL DEFAULT 0, updated_at timestamptz NOT NULL DEFAULT now());";

/// A relation as the stream maps it onto the target table.
struct Rel {
    /// `schema.table`, for statistics and errors.
    display: String,
    qualified: String,
    /// Index into the work's table list, or None when not selected.
    table: Option<usize>,
    /// Per relation column: quoted name and the type to cast literals to.
    columns: Vec<(String, String)>,
    /// Columns that identify a row: the target's primary key, else the
    /// source's replica identity index. Empty for REPLICA IDENTITY FULL
    /// tables without a key (rows are then matched by their whole image).
    key: Vec<bool>,
    /// Why this table's apply stopped (column layout the target lacks).
    stopped: Option<String>,
}

/// The source transaction being received.
struct Txn {
    final_lsn: Lsn,
    /// Already applied by an earlier stream (commit precedes the position).
    skip: bool,
}

struct Stream<'a> {
    task: String,
    epoch: i64,
    tables: &'a [CdcTable],
    by_name: HashMap<(String, String), usize>,
    rels: HashMap<u32, Rel>,
    target: tokio_postgres::Client,
    /// SQL of the open target batch not yet sent.
    sql: String,
    batch_open: bool,
    batch_started: Instant,
    batch_txns: u64,
    batch_changes: u64,
    /// The oldest commit time in the open batch (target latency).
    batch_oldest_commit_ms: u64,
    /// Table of the INSERT statement the buffer ends with, and its row count.
    open_insert: Option<(u32, usize)>,
    /// End LSN of the last source commit in the open batch.
    batch_end: Lsn,
    batch_mark: u64,
    batch_counters: BTreeMap<String, TableCounters>,
    txn: Option<Txn>,
    /// Committed on the target.
    applied: Lsn,
    marks_reached: u64,
    /// Counters committed on the target, not yet reported.
    unreported: BTreeMap<String, TableCounters>,
    rows_since_report: u64,
    table_errors: Vec<(String, String)>,
    latency_source_ms: u64,
}

fn literal(v: &[u8], ty: &str) -> String {
    format!("{}::{ty}", quote_literal(&String::from_utf8_lossy(v)))
}

/// `col <eq> value AND ...` over the row image's columns (only the key's
/// when `only_key`). NULLs compare with IS NULL.
fn where_clause(rel: &Rel, values: &[Value], only_key: bool, eq: &str) -> String {
    let mut parts = vec![];
    for (i, v) in values.iter().enumerate() {
        if only_key && !rel.key[i] {
            continue;
        }
        let (name, ty) = &rel.columns[i];
        match v {
            Value::Text(b) => parts.push(format!("{name} {eq} {}", literal(b, ty))),
            Value::Null => parts.push(format!("{name} IS NULL")),
            // Unchanged TOAST in an old row image cannot be compared.
            Value::UnchangedToast => {}
        }
    }
    parts.join(" AND ")
}

/// Statement matching one row: by key when the table has one, else (a
/// REPLICA IDENTITY FULL table without a key) one row equal to the old image.
fn row_target(rel: &Rel, values: &[Value], by_key: bool) -> String {
    if by_key {
        format!("WHERE {}", where_clause(rel, values, true, "="))
    } else {
        let cond = where_clause(rel, values, false, "IS NOT DISTINCT FROM");
        format!("WHERE ctid = (SELECT ctid FROM {} WHERE {cond} LIMIT 1)", rel.qualified)
    }
}

impl<'a> Stream<'a> {
    fn counters(&mut self, rel: u32) -> &mut TableCounters {
        let name = &self.rels[&rel].display;
        // Clone the name only for a table's first change in a batch.
        if !self.batch_counters.contains_key(name) {
            self.batch_counters.insert(name.clone(), TableCounters::default());
        }
        self.batch_counters.get_mut(name).expect("inserted above")
    }

    /// Whether a change to `rel` in the current transaction is applied.
    fn wanted(&self, rel: u32) -> bool {
        let Some(txn) = &self.txn else { return false };
        if txn.skip {
            return false;
        }
        let Some(r) = self.rels.get(&rel) else { return false };
        let Some(t) = r.table else { return false };
        r.stopped.is_none() && txn.final_lsn >= self.tables[t].apply_from
    }

    /// Source transactions received whole but not yet committed through
    /// `commit_batch`: an open target batch, or transactions with nothing to
    /// write whose position (and caught-up mark) must still move on. A
    /// commit deferred because more data was buffered is completed by the
    /// next keepalive or tick, which check this, not just `batch_open`.
    fn pending(&self) -> bool {
        self.batch_open || self.batch_txns > 0
    }

    fn begin_batch(&mut self) {
        if !self.batch_open {
            self.sql.push_str("BEGIN;");
            self.batch_open = true;
            self.batch_started = Instant::now();
        }
    }

    async fn send(&mut self) -> Result<(), ConnectorError> {
        if self.sql.is_empty() {
            return Ok(());
        }
        let sql = std::mem::take(&mut self.sql);
        self.open_insert = None;
        self.target.batch_execute(&sql).await.map_err(|e| {
            classify(
                format!("applying changes to the target (batch ending after {})", self.batch_end),
                e,
            )
        })
    }

    /// Ends a multi-row INSERT the buffer may end with.
    fn close_insert(&mut self) {
        if self.open_insert.take().is_some() {
            self.sql.push(';');
        }
    }

    fn push_stmt(&mut self, stmt: String) {
        self.close_insert();
        self.sql.push_str(&stmt);
        self.sql.push(';');
    }

    async fn change(&mut self, m: Message) -> Result<(), ConnectorError> {
        match m {
            Message::Insert { relation, new } => {
                if !self.wanted(relation) {
                    return Ok(());
                }
                self.begin_batch();
                let rel = &self.rels[&relation];
                let vals: Vec<String> = new
                    .iter()
                    .zip(&rel.columns)
                    .map(|(v, (_, ty))| match v {
                        Value::Text(b) => literal(b, ty),
                        _ => "NULL".into(),
                    })
                    .collect();
                let row = format!("({})", vals.join(", "));
                match self.open_insert {
                    Some((r, n)) if r == relation && n < MAX_VALUES_PER_INSERT => {
                        self.sql.push(',');
                        self.sql.push_str(&row);
                        self.open_insert = Some((r, n + 1));
                    }
                    _ => {
                        let cols: Vec<&str> = rel.columns.iter().map(|c| c.0.as_str()).collect();
                        let stmt = format!("INSERT INTO {} ({}) VALUES {row}", rel.qualified, cols.join(", "));
                        self.close_insert();
                        self.sql.push_str(&stmt);
                        self.open_insert = Some((relation, 1));
                    }
                }
                self.counters(relation).inserts += 1;
            }
            Message::Update { relation, old, new } => {
                if !self.wanted(relation) {
                    return Ok(());
                }
                self.begin_batch();
                let rel = &self.rels[&relation];
                let has_key = rel.key.iter().any(|k| *k);
                // Without an old image the key did not change and needs no
                // write; unchanged TOAST must not be touched at all.
                let key_may_change = old.is_some();
                let mut sets = vec![];
                for (i, v) in new.iter().enumerate() {
                    if has_key && rel.key[i] && !key_may_change {
                        continue;
                    }
                    let (name, ty) = &rel.columns[i];
                    match v {
                        Value::Text(b) => sets.push(format!("{name} = {}", literal(b, ty))),
                        Value::Null => sets.push(format!("{name} = NULL")),
                        Value::UnchangedToast => {}
                    }
                }
                if sets.is_empty() {
                    self.counters(relation).updates += 1;
                    return Ok(());
                }
                let target = match &old {
                    Some(OldTuple::Key(k)) => row_target(rel, k, true),
                    Some(OldTuple::Full(o)) => row_target(rel, o, has_key),
                    None => row_target(rel, &new, true),
                };
                let stmt = format!("UPDATE {} SET {} {target}", rel.qualified, sets.join(", "));
                self.push_stmt(stmt);
                self.counters(relation).updates += 1;
            }
            Message::Delete { relation, old } => {
                if !self.wanted(relation) {
                    return Ok(());
                }
                self.begin_batch();
                let rel = &self.rels[&relation];
                let has_key = rel.key.iter().any(|k| *k);
                let target = match &old {
                    OldTuple::Key(k) => row_target(rel, k, true),
                    OldTuple::Full(o) => row_target(rel, o, has_key),
                };
                let stmt = format!("DELETE FROM {} {target}", rel.qualified);
                self.push_stmt(stmt);
                self.counters(relation).deletes += 1;
            }
            Message::Truncate {
                relations,
                cascade,
                restart_identity,
            } => {
                let wanted: Vec<u32> = relations.into_iter().filter(|r| self.wanted(*r)).collect();
                if wanted.is_empty() {
                    return Ok(());
                }
                self.begin_batch();
                let names: Vec<String> = wanted.iter().map(|r| self.rels[r].qualified.clone()).collect();
                let stmt = format!(
                    "TRUNCATE {}{}{}",
                    names.join(", "),
                    if restart_identity { " RESTART IDENTITY" } else { "" },
                    if cascade { " CASCADE" } else { "" }
                );
                self.push_stmt(stmt);
                for r in wanted {
                    self.counters(r).truncates += 1;
                }
            }
            _ => {}
        }
        self.batch_changes += 1;
        if self.sql.len() >= FLUSH_BYTES {
            self.send().await?;
        }
        Ok(())
    }

    /// Maps a Relation message onto the target table; a column the target
    /// table does not have stops that table's apply (never apply rows
    /// against a stale column layout).
    fn relation(&mut self, r: Relation) {
        let display = format!("{}.{}", r.schema, r.name);
        let table = self.by_name.get(&(r.schema.clone(), r.name.clone())).copied();
        let mut columns = vec![];
        let mut stopped = None;
        let mut key: Vec<bool> = match table.and_then(|t| self.tables[t].table.primary_key.as_ref()) {
            Some(pk) => r.columns.iter().map(|c| pk.columns.contains(&c.name)).collect(),
            None if r.replica_identity == b'i' => r.columns.iter().map(|c| c.key).collect(),
            None => vec![false; r.columns.len()],
        };
        if key.len() != r.columns.len() {
            key.resize(r.columns.len(), false);
        }
        if let Some(t) = table {
            let schema = &self.tables[t].table;
            for c in &r.columns {
                match schema.column(&c.name).filter(|col| col.generated.is_none()) {
                    Some(col) => columns.push((quote_ident(&c.name), col.type_sql.clone())),
                    None => {
                        stopped = Some(format!(
                            "column layout changed on the source: column \"{}\" is not in the target table; apply stopped for this table (DDL is not propagated yet)",
                            c.name
                        ));
                        columns.push((quote_ident(&c.name), "text".into()));
                    }
                }
            }
            if let Some(e) = &stopped {
                tracing::error!(table = %r.name, error = %e, "table apply stopped");
                self.table_errors.push((display.clone(), e.clone()));
            }
        }
        let qualified = table.map_or_else(String::new, |t| self.tables[t].table.qualified());
        self.rels.insert(
            r.id,
            Rel {
                display,
                qualified,
                table,
                key,
                columns,
                stopped,
            },
        );
    }

    /// Commits the open batch with its position, fenced by epoch.
    async fn commit_batch(&mut self) -> Result<(), ConnectorError> {
        if !self.batch_open {
            // Nothing to write (skipped or filtered transactions), but the
            // position still moves on.
            self.applied = self.applied.max(self.batch_end);
            self.marks_reached = self.marks_reached.max(self.batch_mark);
            self.batch_txns = 0;
            self.batch_changes = 0;
            self.batch_oldest_commit_ms = 0;
            return Ok(());
        }
        self.close_insert();
        self.send().await?;
        let n = self
            .target
            .execute(
                "UPDATE ferry.apply_state SET lsn = $1::text::pg_lsn, mark = greatest(mark, $2), updated_at = now()
                  WHERE task = $3 AND epoch = $4",
                &[
                    &self.batch_end.to_string(),
                    &(self.batch_mark as i64),
                    &self.task,
                    &self.epoch,
                ],
            )
            .await
            .map_err(|e| classify("recording the applied position on the target", e))?;
        if n != 1 {
            let _ = self.target.batch_execute("ROLLBACK").await;
            return Err(ConnectorError::Definite(format!(
                "task {}: another worker took over the CDC stream (epoch {} superseded); stopping",
                self.task, self.epoch
            )));
        }
        crate::failpoint::pause("cdc-before-commit").await;
        self.target
            .batch_execute("COMMIT")
            .await
            .map_err(|e| classify("COMMIT of applied changes on the target", e))?;
        self.batch_open = false;
        self.applied = self.batch_end;
        self.marks_reached = self.marks_reached.max(self.batch_mark);
        for (t, c) in std::mem::take(&mut self.batch_counters) {
            self.rows_since_report += c.inserts + c.updates + c.deletes;
            self.unreported.entry(t).or_default().add(&c);
        }
        self.batch_txns = 0;
        self.batch_changes = 0;
        self.batch_oldest_commit_ms = 0;
        Ok(())
    }
}

/// Takes the task's apply-state row over for this epoch and returns the
/// committed position and mark. Waits for a predecessor's open batch.
pub(crate) async fn take_over(
    c: &tokio_postgres::Client,
    task: &str,
    epoch: i64,
) -> Result<(Lsn, u64), ConnectorError> {
    c.batch_execute(CONTROL_DDL)
        .await
        .map_err(|e| classify("creating ferry.apply_state on the target", e))?;
    let row = c
        .query_opt(
            "INSERT INTO ferry.apply_state AS s (task, lsn, epoch) VALUES ($1, '0/0', $2)
             ON CONFLICT (task) DO UPDATE SET epoch = EXCLUDED.epoch WHERE s.epoch <= EXCLUDED.epoch
             RETURNING s.lsn::text, s.mark",
            &[&task, &epoch],
        )
        .await
        .map_err(|e| classify("taking over ferry.apply_state on the target", e))?
        .ok_or_else(|| {
            ConnectorError::Definite(format!(
                "task {task}: a newer CDC stream owns the target (epoch {epoch} superseded)"
            ))
        })?;
    let lsn: Lsn = row
        .get::<_, String>(0)
        .parse()
        .map_err(|e: String| ConnectorError::Definite(e))?;
    Ok((lsn, row.get::<_, i64>(1) as u64))
}

pub async fn run(
    source: &Endpoint,
    target: &Endpoint,
    names: &CdcNames,
    tables: &[CdcTable],
    start: Lsn,
    reporter: &Reporter,
) -> Result<WorkResult, ConnectorError> {
    let task = crate::current_task();
    let epoch = crate::current_epoch() as i64;
    let target_client = connect(target).await?;
    target_client
        .batch_execute("SET standard_conforming_strings = on")
        .await
        .map_err(|e| classify("configuring the target session", e))?;
    // Like DMS: no triggers or foreign-key checks on replicated rows (the
    // source already ran them). Needs superuser; without it they stay on.
    if let Err(e) = target_client
        .batch_execute("SET session_replication_role = replica")
        .await
    {
        tracing::warn!(error = %e, "cannot set session_replication_role=replica on the target; triggers and foreign keys stay active during apply");
    }
    let (target_lsn, mark) = take_over(&target_client, &task, epoch).await?;
    let applied = target_lsn.max(start);
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
    tracing::info!(slot = %names.slot, from = %applied, "CDC stream started");

    let mut s = Stream {
        task: task.clone(),
        epoch,
        tables,
        by_name: tables
            .iter()
            .enumerate()
            .map(|(i, t)| ((t.table.schema.clone(), t.table.name.clone()), i))
            .collect(),
        rels: HashMap::new(),
        target: target_client,
        sql: String::new(),
        batch_open: false,
        batch_started: Instant::now(),
        batch_txns: 0,
        batch_changes: 0,
        batch_oldest_commit_ms: 0,
        open_insert: None,
        batch_end: applied,
        batch_mark: mark,
        batch_counters: BTreeMap::new(),
        txn: None,
        applied,
        marks_reached: mark,
        unreported: BTreeMap::new(),
        rows_since_report: 0,
        table_errors: vec![],
        latency_source_ms: 0,
    };
    // Position the source may discard up to (confirmed after Raft stored it).
    let mut confirmed = Lsn(0);
    // A keepalive position safe to confirm while idle.
    let mut idle_position = Lsn(0);
    let mut emitted_mark = mark;
    let mut retained: u64 = 0;
    let mut last_retained_check = Instant::now() - Duration::from_secs(60);
    let mut last_report = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(1000));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            m = rc.recv() => match m.map_err(explain)? {
                ReplicationMessage::Keepalive { wal_end, reply_requested } => {
                    // A batch left open because more data was buffered, when
                    // that data was only this keepalive: commit it now, not
                    // at the next tick.
                    if s.pending() && s.txn.is_none() && !rc.has_buffered() {
                        s.commit_batch().await?;
                    }
                    if s.txn.is_none() && !s.pending() {
                        idle_position = idle_position.max(wal_end);
                    }
                    if reply_requested {
                        rc.send_status(confirmed, false).await?;
                    }
                }
                ReplicationMessage::XLogData { data, .. } => {
                    let msg = pgoutput::decode(data).map_err(|e| ConnectorError::Transient(format!("slot {}: {e}", names.slot)))?;
                    match msg {
                        Message::Begin { final_lsn, commit_time, .. } => {
                            let commit_ms = pg_time_to_unix_ms(commit_time);
                            s.latency_source_ms = ferry_common::now_ms().saturating_sub(commit_ms);
                            let skip = final_lsn < s.applied;
                            // Already applied transactions never enter a batch.
                            if s.batch_oldest_commit_ms == 0 && !skip {
                                s.batch_oldest_commit_ms = commit_ms;
                            }
                            s.txn = Some(Txn { final_lsn, skip });
                        }
                        Message::Commit { end_lsn, .. } => {
                            let txn = s.txn.take();
                            if txn.as_ref().is_some_and(|t| !t.skip) {
                                s.batch_end = end_lsn;
                                s.batch_txns += 1;
                            }
                            // Commit when the stream has nothing more ready
                            // (low latency), or the batch is large or old.
                            if !rc.has_buffered()
                                || s.batch_txns >= BATCH_TXNS
                                || s.batch_started.elapsed() >= BATCH_TIME
                                || s.sql.len() >= FLUSH_BYTES
                            {
                                s.commit_batch().await?;
                            }
                        }
                        Message::Relation(r) => s.relation(r),
                        Message::Logical { prefix, content, transactional, .. } if prefix == MARK_PREFIX => {
                            let text = String::from_utf8_lossy(&content);
                            if let Some((t, n)) = text.rsplit_once(':') {
                                if t == task && transactional && !s.txn.as_ref().is_some_and(|t| t.skip) {
                                    if let Ok(n) = n.parse::<u64>() {
                                        s.batch_mark = s.batch_mark.max(n);
                                    }
                                }
                            }
                        }
                        Message::Origin { .. } | Message::Type { .. } | Message::Logical { .. } => {}
                        change => s.change(change).await?,
                    }
                }
            },
            _ = tick.tick() => {
                if s.pending() && s.txn.is_none() {
                    s.commit_batch().await?;
                }
                if last_retained_check.elapsed() >= Duration::from_secs(5) {
                    last_retained_check = Instant::now();
                    if let Ok(r) = source_sql.query_opt(
                        "SELECT (pg_current_wal_lsn() - restart_lsn)::bigint FROM pg_replication_slots WHERE slot_name = $1",
                        &[&names.slot],
                    ).await {
                        retained = r.and_then(|r| r.get::<_, Option<i64>>(0)).unwrap_or(0).max(0) as u64;
                    }
                }
                let idle = s.txn.is_none() && !s.pending();
                let checkpoint = if idle { s.applied.max(idle_position) } else { s.applied };
                let elapsed = last_report.elapsed().as_secs_f64().max(0.001);
                let progress = CdcProgress {
                    applied: checkpoint,
                    marks_reached: s.marks_reached,
                    latency_source_ms: if idle { 0 } else { s.latency_source_ms },
                    latency_target_ms: if s.batch_oldest_commit_ms == 0 { 0 } else { ferry_common::now_ms().saturating_sub(s.batch_oldest_commit_ms) },
                    incoming_changes: s.batch_changes,
                    throughput_rows_per_s: s.rows_since_report as f64 / elapsed,
                    retained_wal_bytes: retained,
                    applied_delta: s.unreported.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                    table_errors: s.table_errors.clone(),
                    source_gtid: String::new(),
                };
                match reporter.report(&ProgressDetail::Cdc(progress)).await {
                    Ok(requested) => {
                        s.unreported.clear();
                        s.table_errors.clear();
                        s.rows_since_report = 0;
                        last_report = Instant::now();
                        // Stored in Raft: now the source may let it go.
                        confirmed = checkpoint;
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
