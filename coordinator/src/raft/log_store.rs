//! Raft log in RocksDB: entries in `logs` keyed by big-endian index, vote,
//! committed id and last purged id in `store`.
//!
//! Durability: `append` writes the batch and fsyncs RocksDB's WAL *before*
//! reporting the entries persisted, because openraft counts a flushed entry
//! towards the commit quorum. (openraft 0.9's raft-kv-rocksdb example omits
//! the flush; this store does not.)

// openraft's storage traits fix the error type (`StorageError`, ~224 bytes).
#![allow(clippy::result_large_err)]

use super::{NodeId, TypeConfig, CF_LOGS, CF_STORE};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{Entry, LogId, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote};
use std::fmt::Debug;
use std::ops::RangeBounds;
use std::sync::Arc;

#[derive(Clone)]
pub struct LogStore {
    db: Arc<rocksdb::DB>,
}

type StorageResult<T> = Result<T, StorageError<NodeId>>;

fn idx(i: u64) -> [u8; 8] {
    i.to_be_bytes()
}

impl LogStore {
    pub fn new(db: Arc<rocksdb::DB>) -> LogStore {
        LogStore { db }
    }

    fn logs(&self) -> &rocksdb::ColumnFamily {
        self.db.cf_handle(CF_LOGS).expect("logs column family")
    }

    fn store(&self) -> &rocksdb::ColumnFamily {
        self.db.cf_handle(CF_STORE).expect("store column family")
    }

    fn get_meta<T: serde::de::DeserializeOwned>(&self, key: &str) -> StorageResult<Option<T>> {
        let v = self
            .db
            .get_cf(self.store(), key)
            .map_err(|e| StorageIOError::read(&e))?;
        v.map(|b| serde_json::from_slice(&b).map_err(|e| StorageIOError::read(&e).into()))
            .transpose()
    }

    fn put_meta<T: serde::Serialize>(&self, key: &str, v: &T) -> StorageResult<()> {
        let b = serde_json::to_vec(v).map_err(|e| StorageIOError::write(&e))?;
        self.db
            .put_cf(self.store(), key, b)
            .map_err(|e| StorageIOError::write(&e))?;
        self.db.flush_wal(true).map_err(|e| StorageIOError::write(&e))?;
        Ok(())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> StorageResult<Vec<Entry<TypeConfig>>> {
        use std::ops::Bound;
        let start = match range.start_bound() {
            Bound::Included(s) => *s,
            Bound::Excluded(s) => s + 1,
            Bound::Unbounded => 0,
        };
        let mut out = Vec::new();
        let iter = self.db.iterator_cf(
            self.logs(),
            rocksdb::IteratorMode::From(&idx(start), rocksdb::Direction::Forward),
        );
        for item in iter {
            let (k, v) = item.map_err(|e| StorageIOError::read_logs(&e))?;
            let i = u64::from_be_bytes(k.as_ref().try_into().expect("8-byte key"));
            if !range.contains(&i) {
                break;
            }
            out.push(serde_json::from_slice(&v).map_err(|e| StorageIOError::read_logs(&e))?);
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> StorageResult<LogState<TypeConfig>> {
        let last = self.db.iterator_cf(self.logs(), rocksdb::IteratorMode::End).next();
        let last_log_id = match last {
            Some(item) => {
                let (_, v) = item.map_err(|e| StorageIOError::read_logs(&e))?;
                let e: Entry<TypeConfig> = serde_json::from_slice(&v).map_err(|e| StorageIOError::read_logs(&e))?;
                Some(e.log_id)
            }
            None => None,
        };
        let last_purged: Option<LogId<NodeId>> = self.get_meta("last_purged")?;
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last_log_id.or(last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> StorageResult<()> {
        self.put_meta("vote", vote)
    }

    async fn read_vote(&mut self) -> StorageResult<Option<Vote<NodeId>>> {
        self.get_meta("vote")
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> StorageResult<()> {
        self.put_meta("committed", &committed)
    }

    async fn read_committed(&mut self) -> StorageResult<Option<LogId<NodeId>>> {
        Ok(self.get_meta::<Option<LogId<NodeId>>>("committed")?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StorageResult<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = rocksdb::WriteBatch::default();
        for e in entries {
            let v = serde_json::to_vec(&e).map_err(|e| StorageIOError::write_logs(&e))?;
            batch.put_cf(self.logs(), idx(e.log_id.index), v);
        }
        let res = self
            .db
            .write(batch)
            .and_then(|_| self.db.flush_wal(true))
            .map_err(std::io::Error::other);
        let failed = res.as_ref().err().map(|e| e.to_string());
        callback.log_io_completed(res);
        match failed {
            Some(e) => Err(StorageIOError::write_logs(&std::io::Error::other(e)).into()),
            None => Ok(()),
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> StorageResult<()> {
        self.db
            .delete_range_cf(self.logs(), idx(log_id.index), idx(u64::MAX))
            .and_then(|_| self.db.flush_wal(true))
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> StorageResult<()> {
        self.put_meta("last_purged", &Some(log_id))?;
        self.db
            .delete_range_cf(self.logs(), idx(0), idx(log_id.index + 1))
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }
}
