//! The segment fence: why a segment's rows reach the target exactly once,
//! whichever attempts run, die or linger. Written once here; each target
//! engine supplies the primitives ([`SegmentFence`]) inside the transaction
//! that will also hold the segment's rows.
//!
//! ```text
//!  BEGIN
//!  ferry.table_loads (task, table): gen, read under a shared lock  ← generation fence
//!  INSERT ferry.segment_loads (task, table, segment, epoch)         ← segment fence
//!  <the segment's rows>
//!  UPDATE ferry.segment_loads SET rows = n
//!  COMMIT
//! ```
//! - The marker row and the data commit in one transaction, so the target
//!   holds a segment's rows iff it holds its marker.
//! - The marker's primary key is (task, table, segment). A second attempt —
//!   a retry, or a zombie worker whose lease expired while it kept copying —
//!   inserts the same key: if the first committed, the insert fails at once
//!   with a unique violation and the attempt reports "already loaded" with
//!   the first one's row count; if the first is still open, the insert
//!   waits for it and then does the same (or proceeds, if it rolled back).
//!   Two attempts never both commit. The insert runs in a savepoint so the
//!   transaction stays usable to read the earlier attempt's count.
//! - A worker killed mid-copy leaves an open transaction that the server
//!   rolls back when the connection drops: nothing of it remains.
//! - With CDC, a table is loaded inside one snapshot generation. If that
//!   snapshot dies mid-table, the coordinator empties the table (ResetTable)
//!   and reloads it in a newer generation; the reset raises
//!   `ferry.table_loads.gen` under an exclusive row lock, and a load reads it
//!   under a shared one and proceeds only if it is not newer than its own.
//!   So a straggler of the old generation either committed before the reset
//!   (and is emptied by it) or finds itself superseded and rolls back.

use crate::engine::ConnectorError;
use ferry_common::position::Position;
use ferry_common::work::WorkResult;

/// Whether an attempt's segment marker went in.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Marker {
    /// This attempt owns the segment until its transaction ends.
    Inserted,
    /// An earlier attempt committed it; the savepoint was rolled back and
    /// the transaction is still usable.
    Taken,
}

/// The fence's primitives on one target transaction, for attempt `a`.
pub(crate) trait SegmentFence {
    /// Registers the table's load (generation 0) if it has none and returns
    /// its generation, locked shared until the transaction ends.
    async fn table_generation(&mut self, a: &Attempt<'_>) -> Result<u64, ConnectorError>;
    /// Inserts the segment's marker in a savepoint (see [`Marker`]).
    async fn insert_marker(&mut self, a: &Attempt<'_>) -> Result<Marker, ConnectorError>;
    /// The committed marker's row count and snapshot position.
    async fn read_marker(&mut self, a: &Attempt<'_>) -> Result<Committed, ConnectorError>;
}

/// What a committed segment marker holds: the rows the attempt loaded, the
/// rows it recorded as exceptions and with a cut LOB value (so that a retry
/// reports the same counts), and the snapshot position.
#[derive(Debug, Default)]
pub(crate) struct Committed {
    pub rows: Option<u64>,
    pub exceptions: u64,
    pub truncated: u64,
    pub position: Option<Position>,
}

/// One segment attempt, as the fence sees it.
pub(crate) struct Attempt<'a> {
    pub task: &'a str,
    /// Where the task's control tables are.
    pub control: &'a ferry_common::control::ControlTables,
    /// The table as `ferry.*` bookkeeping names it (qualified on the target).
    pub table: &'a str,
    pub segment: u32,
    pub epoch: u64,
    /// The snapshot generation the segment is read in.
    pub gen: u64,
    /// MySQL sources with CDC: the binlog position of the segment's snapshot.
    pub position: Option<Position>,
}

/// What the fence decided.
#[derive(Debug, PartialEq)]
pub(crate) enum Fenced {
    /// Go on: copy the rows, set the count, commit.
    Proceed,
    /// Nothing to copy: this is what the committed attempt loaded.
    AlreadyLoaded(WorkResult),
}

/// Takes both fences for `a` in the open transaction `f`.
pub(crate) async fn take(f: &mut impl SegmentFence, a: &Attempt<'_>) -> Result<Fenced, ConnectorError> {
    let current = f.table_generation(a).await?;
    if current > a.gen {
        return Err(ConnectorError::Transient(format!(
            "table {} segment {}: superseded: the table was reset for snapshot generation {current} (this load is of {})",
            a.table, a.segment, a.gen
        )));
    }
    match f.insert_marker(a).await? {
        Marker::Inserted => Ok(Fenced::Proceed),
        Marker::Taken => {
            let done = f.read_marker(a).await?;
            tracing::info!(
                table = a.table,
                segment = a.segment,
                "segment already committed by an earlier attempt; not copying again"
            );
            Ok(Fenced::AlreadyLoaded(WorkResult::Loaded {
                rows: done.rows.unwrap_or(0),
                already_loaded: true,
                exceptions: done.exceptions,
                truncated: done.truncated,
                position: done.position,
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    //! The protocol against the in-memory engine (`engine::mock`), whose
    //! transactions commit or vanish, as a worker's do when it dies.
    use super::*;
    use crate::engine::mock::{Db, Mock, Txn};

    fn attempt(gen: u64, epoch: u64) -> Attempt<'static> {
        static CONTROL: std::sync::LazyLock<ferry_common::control::ControlTables> =
            std::sync::LazyLock::new(Default::default);
        Attempt {
            task: "t",
            control: &CONTROL,
            table: "s.t",
            segment: 0,
            epoch,
            gen,
            position: None,
        }
    }

    fn held(m: &Mock) -> usize {
        m.db.lock().unwrap().target.len()
    }

    #[tokio::test]
    async fn an_already_loaded_segment_is_skipped_with_its_count() {
        let m = Mock::default();
        let mut first = Txn::begin(&m);
        assert_eq!(take(&mut first, &attempt(0, 1)).await.unwrap(), Fenced::Proceed);
        first.commit((0..42).collect(), 42);
        // A retry, or the zombie of the first attempt's expired lease.
        let mut again = Txn::begin(&m);
        match take(&mut again, &attempt(0, 2)).await.unwrap() {
            Fenced::AlreadyLoaded(WorkResult::Loaded {
                rows, already_loaded, ..
            }) => assert!(already_loaded && rows == 42),
            other => panic!("{other:?}"),
        }
        assert_eq!(again.marker(), None, "the zombie holds no marker to commit");
        assert_eq!(held(&m), 42, "rows loaded once");
    }

    #[tokio::test]
    async fn an_attempt_that_died_leaves_nothing_and_the_next_one_loads() {
        let m = Mock::default();
        {
            // Its connection drops before COMMIT: rolled back.
            let mut dead = Txn::begin(&m);
            assert_eq!(take(&mut dead, &attempt(0, 1)).await.unwrap(), Fenced::Proceed);
        }
        let mut next = Txn::begin(&m);
        assert_eq!(take(&mut next, &attempt(0, 2)).await.unwrap(), Fenced::Proceed);
        next.commit((0..7).collect(), 7);
        assert_eq!(held(&m), 7);
    }

    #[tokio::test]
    async fn a_load_of_a_superseded_generation_is_refused() {
        let m = Mock::default();
        *m.db.lock().unwrap() = Db {
            gen: 3,
            ..Db::default()
        };
        let mut stale = Txn::begin(&m);
        let e = take(&mut stale, &attempt(2, 9)).await.unwrap_err();
        assert!(e.retryable() && e.to_string().contains("superseded"), "{e}");
        assert!(stale.marker().is_none(), "no marker taken");
    }
}
