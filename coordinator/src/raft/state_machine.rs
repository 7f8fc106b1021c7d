//! The state machine in RocksDB.
//!
//! The [`State`] lives in memory and is persisted in the `sm` column family:
//! one key per task (`task/<name>`) and one `meta` key for counters, workers
//! and leases. Each applied batch is written as one WriteBatch together with
//! `last_applied` and the membership, so a crash never leaves the state
//! ahead of or behind the log position it claims.
//!
//! Snapshots: the state is copied (serialized) when openraft asks for a
//! builder, between two applied batches, so a snapshot holds exactly the
//! entries up to the `last_applied` it names — building it concurrently
//! with later applies would let a follower that installs it apply those
//! entries a second time. The newest snapshot (built or installed) is kept
//! in RocksDB beside the state and shared by every handle: after the log
//! is purged behind it, it is the only way a lagging or new node catches
//! up, so it must survive restarts.

use super::{NodeId, TypeConfig, CF_SM};
use crate::state::{Dirty, Response, State, Task};
use openraft::storage::RaftStateMachine;
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::{Arc, Mutex, RwLock};

type StorageResult<T> = Result<T, StorageError<NodeId>>;

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Meta {
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
    next_worker_id: u64,
    next_assignment_id: u64,
    next_epoch: u64,
    workers: BTreeMap<u64, crate::state::WorkerInfo>,
    leases: BTreeMap<u64, crate::state::Lease>,
    #[serde(default)]
    tokens: BTreeMap<String, crate::state::TokenRecord>,
    #[serde(default)]
    endpoints: BTreeMap<String, crate::state::EndpointRecord>,
    #[serde(default)]
    errands: BTreeMap<u64, crate::state::ErrandState>,
}

impl Meta {
    fn into_state(self, tasks: BTreeMap<String, Task>) -> State {
        State {
            next_worker_id: self.next_worker_id,
            next_assignment_id: self.next_assignment_id,
            next_epoch: self.next_epoch,
            workers: self.workers,
            tasks,
            leases: self.leases,
            tokens: self.tokens,
            endpoints: self.endpoints,
            errands: self.errands,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct SnapshotBody {
    meta: Meta,
    tasks: BTreeMap<String, Task>,
}

/// Shared, read-mostly handle: gRPC services read the state directly.
pub type SharedState = Arc<RwLock<State>>;

type StoredSnapshot = (SnapshotMeta<NodeId, BasicNode>, Vec<u8>);

pub struct StateMachine {
    db: Arc<rocksdb::DB>,
    pub state: SharedState,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
    /// The newest snapshot, as stored under `snapshot_meta` / `snapshot_data`.
    snapshot: Arc<Mutex<Option<StoredSnapshot>>>,
}

/// A copy of the state at one applied position, made into a snapshot.
pub struct SnapshotBuilder {
    db: Arc<rocksdb::DB>,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
    data: Vec<u8>,
    snapshot: Arc<Mutex<Option<StoredSnapshot>>>,
}

/// Stores `snap` as the newest snapshot.
fn keep_snapshot(db: &rocksdb::DB, slot: &Mutex<Option<StoredSnapshot>>, snap: StoredSnapshot) -> Result<(), String> {
    let cf = db.cf_handle(CF_SM).expect("sm column family");
    let mut batch = rocksdb::WriteBatch::default();
    batch.put_cf(
        cf,
        "snapshot_meta",
        serde_json::to_vec(&snap.0).map_err(|e| e.to_string())?,
    );
    batch.put_cf(cf, "snapshot_data", &snap.1);
    db.write(batch).map_err(|e| e.to_string())?;
    *slot.lock().expect("snapshot lock") = Some(snap);
    Ok(())
}

impl StateMachine {
    pub fn open(db: Arc<rocksdb::DB>) -> Result<StateMachine, String> {
        let cf = db.cf_handle(CF_SM).expect("sm column family");
        let meta: Meta = match db.get_cf(cf, "meta").map_err(|e| e.to_string())? {
            Some(b) => serde_json::from_slice(&b).map_err(|e| format!("state machine meta: {e}"))?,
            None => Meta::default(),
        };
        let mut tasks = BTreeMap::new();
        for item in db.prefix_iterator_cf(cf, "task/") {
            let (k, v) = item.map_err(|e| e.to_string())?;
            if !k.starts_with(b"task/") {
                break;
            }
            let t: Task = serde_json::from_slice(&v).map_err(|e| format!("state machine task: {e}"))?;
            tasks.insert(t.spec.name.clone(), t);
        }
        let (last_applied, membership) = (meta.last_applied, meta.membership.clone());
        let snapshot = match (
            db.get_cf(cf, "snapshot_meta").map_err(|e| e.to_string())?,
            db.get_cf(cf, "snapshot_data").map_err(|e| e.to_string())?,
        ) {
            (Some(m), Some(data)) => Some((
                serde_json::from_slice(&m).map_err(|e| format!("stored snapshot meta: {e}"))?,
                data,
            )),
            _ => None,
        };
        Ok(StateMachine {
            db,
            state: Arc::new(RwLock::new(meta.into_state(tasks))),
            last_applied,
            membership,
            snapshot: Arc::new(Mutex::new(snapshot)),
        })
    }

    fn meta(&self, s: &State) -> Meta {
        Meta {
            last_applied: self.last_applied,
            membership: self.membership.clone(),
            next_worker_id: s.next_worker_id,
            next_assignment_id: s.next_assignment_id,
            next_epoch: s.next_epoch,
            workers: s.workers.clone(),
            leases: s.leases.clone(),
            tokens: s.tokens.clone(),
            endpoints: s.endpoints.clone(),
            errands: s.errands.clone(),
        }
    }

    fn persist(&self, s: &State, dirty: &Dirty, full: bool) -> Result<(), String> {
        let cf = self.db.cf_handle(CF_SM).expect("sm column family");
        let mut batch = rocksdb::WriteBatch::default();
        if full {
            batch.delete_range_cf(cf, "task/", "task0");
        }
        let names: Vec<&String> = if full {
            s.tasks.keys().collect()
        } else {
            dirty.tasks.iter().collect()
        };
        for name in names {
            if let Some(t) = s.tasks.get(name) {
                batch.put_cf(
                    cf,
                    format!("task/{name}"),
                    serde_json::to_vec(t).map_err(|e| e.to_string())?,
                );
            }
        }
        for name in &dirty.deleted_tasks {
            batch.delete_cf(cf, format!("task/{name}"));
        }
        batch.put_cf(
            cf,
            "meta",
            serde_json::to_vec(&self.meta(s)).map_err(|e| e.to_string())?,
        );
        self.db.write(batch).map_err(|e| e.to_string())?;
        Ok(())
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> StorageResult<Snapshot<TypeConfig>> {
        let meta = SnapshotMeta {
            last_log_id: self.last_applied,
            last_membership: self.membership.clone(),
            snapshot_id: format!(
                "{}-{}",
                self.last_applied.map_or(0, |l| l.index),
                ferry_common::now_ms()
            ),
        };
        let data = std::mem::take(&mut self.data);
        keep_snapshot(&self.db, &self.snapshot, (meta.clone(), data.clone()))
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &std::io::Error::other(e)))?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> StorageResult<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>)> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> StorageResult<Vec<Response>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut out = Vec::new();
        let mut dirty = Dirty::default();
        let state = self.state.clone();
        let mut s = state.write().expect("state lock");
        for e in entries {
            self.last_applied = Some(e.log_id);
            match e.payload {
                EntryPayload::Blank => out.push(Response::Ok),
                EntryPayload::Normal(req) => out.push(s.apply(req, &mut dirty)),
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(e.log_id), m);
                    out.push(Response::Ok);
                }
            }
        }
        self.persist(&s, &dirty, false)
            .map_err(|e| StorageIOError::write_state_machine(&std::io::Error::other(e)))?;
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        // Copied now, between applied batches: see the module comment.
        let body = {
            let s = self.state.read().expect("state lock");
            serde_json::to_vec(&SnapshotBody {
                meta: self.meta(&s),
                tasks: s.tasks.clone(),
            })
            .expect("the state serializes")
        };
        SnapshotBuilder {
            db: self.db.clone(),
            last_applied: self.last_applied,
            membership: self.membership.clone(),
            data: body,
            snapshot: self.snapshot.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> StorageResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> StorageResult<()> {
        let data = snapshot.into_inner();
        let body: SnapshotBody =
            serde_json::from_slice(&data).map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        let state = self.state.clone();
        let mut s = state.write().expect("state lock");
        *s = body.meta.into_state(body.tasks);
        self.persist(&s, &Dirty::default(), true)
            .map_err(|e| StorageIOError::write_state_machine(&std::io::Error::other(e)))?;
        keep_snapshot(&self.db, &self.snapshot, (meta.clone(), data))
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &std::io::Error::other(e)))?;
        tracing::info!(snapshot = %meta.snapshot_id, last_log_index = meta.last_log_id.map_or(0, |l| l.index), "installed a snapshot from the leader");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> StorageResult<Option<Snapshot<TypeConfig>>> {
        let current = self.snapshot.lock().expect("snapshot lock").clone();
        Ok(current.map(|(meta, data)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}
