//! An in-memory engine for the pipeline's unit tests. Its source holds one
//! table of integer keys; its target keeps rows and segment markers and
//! writes a segment the way every real target does — the segment fence
//! (`pipeline::fence`) taken in a transaction that commits the rows with the
//! marker or, when the attempt dies, leaves nothing.
//!
//! Only what the load path uses is implemented; the rest of the seams
//! answer with an error naming the mock.

use super::source::Source;
use super::target::{AnyChangeTarget, Segment, Target};
use super::{ConnectorError, Progress, Run};
use crate::pipeline::fence::{self, Attempt, Committed, Fenced, Marker, SegmentFence};
use crate::pipeline::rows::{row_channel, Rows};
use crate::schema::catalog::Catalog;
use crate::schema::check::Check;
use crate::schema::convert::Conversion;
use crate::schema::trial::Trial;
use ferry_common::endpoint::Endpoint;
use ferry_common::mapping::TableMappings;
use ferry_common::plan::SegmentBounds;
use ferry_common::position::Position;
use ferry_common::schema::{Constraint, SourceSchema, TableSchema};
use ferry_common::settings::TargetTablePrepMode;
use ferry_common::value::Value;
use ferry_common::work::{TableRef, WorkResult};
use futures::StreamExt;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

#[derive(Default)]
pub(crate) struct Db {
    /// The source table's keys.
    pub source: Vec<i64>,
    /// The target table's committed rows.
    pub target: Vec<i64>,
    /// Committed segment markers: segment → rows.
    pub markers: BTreeMap<u32, u64>,
    /// The table's load generation.
    pub gen: u64,
    /// A faulty writer: every row of this segment is written twice (and
    /// counted once), as a segment touching rows it does not own would.
    pub doubles: Option<u32>,
    /// The attempt dies before COMMIT (its transaction vanishes).
    pub dies: bool,
}

#[derive(Clone, Default)]
pub(crate) struct Mock {
    pub db: Arc<Mutex<Db>>,
}

impl Mock {
    fn db(&self) -> std::sync::MutexGuard<'_, Db> {
        self.db.lock().expect("mock database lock")
    }
}

fn unsupported<T>(what: &str) -> Result<T, ConnectorError> {
    Err(ConnectorError::Definite(format!("{what} is not in the mock engine")))
}

/// The key bounds of a segment over the first column, as integers.
fn in_bounds(bounds: &SegmentBounds, key: i64) -> bool {
    let bound = |b: &Option<Vec<String>>| b.as_ref().map(|v| v[0].parse::<i64>().expect("integer bound"));
    match bounds {
        SegmentBounds::Key { lower, upper, .. } => {
            bound(lower).is_none_or(|l| key >= l) && bound(upper).is_none_or(|u| key < u)
        }
        _ => true,
    }
}

impl Source for Mock {
    async fn introspect(
        &self,
        _ep: &Endpoint,
        _mappings: &TableMappings,
        _segmenting: super::source::Segmenting,
        _only: Option<&TableRef>,
    ) -> Result<SourceSchema, ConnectorError> {
        unsupported("introspection")
    }

    async fn catalog(&self, _ep: &Endpoint, _mappings: &TableMappings) -> Result<Catalog, ConnectorError> {
        unsupported("a catalog")
    }

    async fn read_segment(
        &self,
        _ep: &Endpoint,
        _table: &TableSchema,
        _columns: Vec<String>,
        bounds: &SegmentBounds,
        _snapshot: Option<&str>,
        _own_text: bool,
    ) -> Result<(Rows, Option<Position>), ConnectorError> {
        let keys: Vec<i64> = self
            .db()
            .source
            .iter()
            .copied()
            .filter(|k| in_bounds(bounds, *k))
            .collect();
        let (mut tx, rows) = row_channel();
        tokio::spawn(async move {
            for k in keys {
                if !tx.push(Ok(vec![Value::Int(k)]), 8).await {
                    return;
                }
            }
            tx.finish(Ok(())).await;
        });
        Ok((rows, Some(Position::binlog(1, 7))))
    }

    async fn freeze(&self, _ep: &Endpoint, _freeze: bool) -> Result<(), ConnectorError> {
        unsupported("freezing")
    }

    fn cdc_checks(&self, _source: &Catalog) -> Vec<Check> {
        vec![]
    }

    fn read_checks(&self, _source: &Catalog) -> Vec<Check> {
        vec![]
    }
}

/// One attempt's open transaction on the mock target: what it wrote is
/// applied at COMMIT; dropped uncommitted, it leaves nothing (a worker
/// killed mid-copy).
pub(crate) struct Txn<'a> {
    mock: &'a Mock,
    marker: Option<u32>,
}

impl<'a> Txn<'a> {
    pub fn begin(mock: &'a Mock) -> Txn<'a> {
        Txn { mock, marker: None }
    }

    /// The segment whose marker this transaction inserted.
    pub fn marker(&self) -> Option<u32> {
        self.marker
    }

    /// COMMIT: the rows and the marker (with the count the writer reports)
    /// together.
    pub fn commit(self, rows: Vec<i64>, counted: u64) {
        let mut db = self.mock.db();
        let segment = self.marker.expect("commits only after its marker");
        assert!(
            db.markers.insert(segment, counted).is_none(),
            "a segment committed twice"
        );
        db.target.extend(rows);
    }
}

impl SegmentFence for Txn<'_> {
    async fn table_generation(&mut self, _a: &Attempt<'_>) -> Result<u64, ConnectorError> {
        Ok(self.mock.db().gen)
    }

    async fn insert_marker(&mut self, a: &Attempt<'_>) -> Result<Marker, ConnectorError> {
        let segment = a.segment;
        if self.mock.db().markers.contains_key(&segment) {
            return Ok(Marker::Taken);
        }
        self.marker = Some(segment);
        Ok(Marker::Inserted)
    }

    async fn read_marker(&mut self, a: &Attempt<'_>) -> Result<Committed, ConnectorError> {
        Ok(Committed {
            rows: self.mock.db().markers.get(&a.segment).copied(),
            position: Some(Position::binlog(1, 7)),
            ..Committed::default()
        })
    }
}

impl Target for Mock {
    async fn prepare(
        &self,
        _run: &Run,
        _ep: &Endpoint,
        _schema: &SourceSchema,
        _mode: TargetTablePrepMode,
        _defer_primary_key: bool,
        _pre_data_sql: Option<&str>,
    ) -> Result<(), ConnectorError> {
        unsupported("pre-data")
    }

    async fn load_rows(
        &self,
        run: &Run,
        _ep: &Endpoint,
        table: &TableSchema,
        seg: Segment<'_>,
        mut rows: Rows,
        progress: Progress,
    ) -> Result<WorkResult, ConnectorError> {
        let mut txn = Txn::begin(self);
        let attempt = Attempt {
            task: &run.task,
            control: &run.control,
            table: &table.qualified(),
            segment: seg.number,
            epoch: run.epoch,
            gen: seg.gen,
            position: seg.position.clone(),
        };
        if let Fenced::AlreadyLoaded(done) = fence::take(&mut txn, &attempt).await? {
            return Ok(done);
        }
        let (mut written, mut n) = (vec![], 0u64);
        while let Some(batch) = rows.next().await {
            for row in batch? {
                let Ok(values) = row else { continue };
                let Value::Int(k) = values[0] else {
                    return unsupported("a non-integer key");
                };
                written.push(k);
                n += 1;
                if self.db().doubles == Some(seg.number) {
                    written.push(k);
                }
                progress.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        if self.db().dies {
            return Err(ConnectorError::Transient("the mock worker died before COMMIT".into()));
        }
        txn.commit(written, n);
        Ok(WorkResult::Loaded {
            rows: n,
            already_loaded: false,
            exceptions: 0,
            truncated: crate::pipeline::rows::take_cuts(&seg.cuts).len() as u64,
            position: seg.position.clone(),
        })
    }

    async fn count_rows(&self, _ep: &Endpoint, _table: &TableSchema) -> Result<u64, ConnectorError> {
        Ok(self.db().target.len() as u64)
    }

    async fn post_data(
        &self,
        _source: &Endpoint,
        _target: &Endpoint,
        _table: &TableSchema,
        _defer_primary_key: bool,
    ) -> Result<(), ConnectorError> {
        unsupported("post-data")
    }

    async fn finalize(
        &self,
        _run: &Run,
        _ep: &Endpoint,
        _foreign_keys: &[(String, Constraint)],
        _validate: bool,
        _post_data_sql: Option<&str>,
    ) -> Result<WorkResult, ConnectorError> {
        unsupported("finalize")
    }

    async fn reset_table(
        &self,
        _run: &Run,
        _ep: &Endpoint,
        _table: &TableSchema,
        gen: u64,
        _previous: Option<&TableSchema>,
        _replace: bool,
    ) -> Result<WorkResult, ConnectorError> {
        let mut db = self.db();
        db.gen = db.gen.max(gen);
        db.target.clear();
        db.markers.clear();
        Ok(WorkResult::Done)
    }

    async fn sync_sequences(
        &self,
        _source: &Endpoint,
        _target: &Endpoint,
        _tables: &[TableSchema],
    ) -> Result<(), ConnectorError> {
        unsupported("sequences")
    }

    async fn fence_stream(&self, _run: &Run, _ep: &Endpoint) -> Result<(), ConnectorError> {
        unsupported("a change target")
    }

    async fn change_target(
        &self,
        _ep: &Endpoint,
        _control: &ferry_common::control::ControlTables,
    ) -> Result<AnyChangeTarget, ConnectorError> {
        unsupported("a change target")
    }

    fn target_checks(&self, _target: &Catalog) -> Vec<Check> {
        vec![]
    }

    async fn trial(&self, _conv: &Conversion, _ep: &Endpoint) -> Result<Trial, ConnectorError> {
        unsupported("a trial")
    }
}
