//! The coordinator's Raft group: type configuration, the RocksDB-backed log
//! store and state machine, and the gRPC network between nodes.

pub mod log_store;
pub mod network;
pub mod state_machine;

use crate::state::{Request, Response};
use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;

openraft::declare_raft_types!(
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
);

pub type NodeId = u64;
pub type Raft = openraft::Raft<TypeConfig>;

pub const CF_LOGS: &str = "logs";
pub const CF_STORE: &str = "store";
pub const CF_SM: &str = "sm";

/// Opens (or creates) the node's RocksDB with the column families the log
/// store and state machine use.
pub fn open_db(dir: &Path) -> Result<Arc<rocksdb::DB>, rocksdb::Error> {
    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    let cfs = [CF_LOGS, CF_STORE, CF_SM]
        .into_iter()
        .map(|n| rocksdb::ColumnFamilyDescriptor::new(n, rocksdb::Options::default()));
    Ok(Arc::new(rocksdb::DB::open_cf_descriptors(&opts, dir, cfs)?))
}
