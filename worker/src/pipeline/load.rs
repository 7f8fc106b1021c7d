//! A segment's load, from whichever source engine into whichever target
//! engine. The exactly-once argument is the segment fence's
//! (`pipeline::fence`), which every target's writer takes; this module
//! chooses the path the rows travel and checks a loaded table's row count.
//!
//! Two paths, chosen here only: a target may copy a segment from a source of
//! its own engine without the value model (PostgreSQL passes COPY bytes
//! through unparsed); every other pair reads rows into the value model
//! (`pipeline::rows`) and the target encodes them.

use crate::engine::source::Source;
use crate::engine::target::{Segment, Target};
use crate::engine::{bounds_on_target, on_target, with_engine, ConnectorError, Progress, Run};
use crate::pipeline::rows::{Cuts, Rejected, Rows};
use ferry_common::endpoint::Endpoint;
use ferry_common::expression::DataType;
use ferry_common::lob::{key_image, RowCut};
use ferry_common::schema::TableSchema;
use ferry_common::transform::AddedColumn;
use ferry_common::value::Value;
use ferry_common::work::WorkResult;
use tracing::Instrument;

/// One `Work::LoadSegment`: `table` (as the source declares it) from
/// `source` to `target`.
pub(crate) struct Load<'a> {
    pub source: &'a Endpoint,
    pub target: &'a Endpoint,
    pub table: &'a TableSchema,
    pub seg: Segment<'a>,
}

pub(crate) async fn load_segment(run: &Run, job: Load<'_>, progress: Progress) -> Result<WorkResult, ConnectorError> {
    with_engine!(job.source.engine, |from| with_engine!(job.target.engine, |to| {
        load_with(&from, &to, run, job, progress).await
    }))
}

/// [`load_segment`] between the engines' implementations `from` and `to`.
async fn load_with(
    from: &impl Source,
    to: &impl Target,
    run: &Run,
    job: Load<'_>,
    progress: Progress,
) -> Result<WorkResult, ConnectorError> {
    let Load {
        source,
        target,
        table,
        seg,
    } = job;
    // A table whose values change on the way (a LOB limit; added, retyped
    // or before-image columns) takes the value path, where they are changed.
    if source.engine == target.engine && !table.transforms_values() {
        // Read and write in one: the source's COPY bytes go to the target.
        let copied = to
            .copy_segment(run, source, target, table, seg.clone(), progress.clone())
            .instrument(tracing::info_span!("copy", table = %table.display_name(), segment = seg.number))
            .await;
        if let Some(result) = copied {
            return result;
        }
    }
    let converted = on_target(table, target.engine)?;
    // Read by the source's names, in the target's column order; the
    // columns rules add come last and are computed from the row.
    let columns: Vec<String> = converted
        .copy_columns()
        .filter(|c| !table.is_computed(&c.name))
        .map(|c| table.source_column(&c.name).to_string())
        .collect();
    let cut = RowCut::new(table.lob.as_ref(), columns.iter().map(String::as_str));
    let retyped: Vec<(usize, String, DataType)> = columns
        .iter()
        .enumerate()
        .filter_map(|(i, c)| Some((i, c.clone(), *table.retyped(c)?)))
        .collect();
    let (rows, position) = from
        .read_segment(
            source,
            table,
            columns.clone(),
            seg.bounds,
            seg.snapshot,
            source.engine == target.engine,
        )
        .instrument(tracing::info_span!("read", table = %table.display_name(), segment = seg.number))
        .await?;
    let (task, name) = (run.task.clone(), converted.display_name());
    let rows: Rows = Box::pin(futures::StreamExt::inspect(rows, move |batch| {
        if let Ok(batch) = batch {
            crate::health::read(&task, &name, batch.iter().map(row_bytes).sum());
        }
    }));
    // LOB values are cut first: added columns compute from the values the
    // target holds, as CDC (which cuts each change first) computes them.
    let rows = match cut {
        Some(cut) => cut_lobs(rows, cut, table, &converted, seg.number, seg.cuts.clone()),
        None => rows,
    };
    let added = table.added_columns();
    let before = table.before_image_columns().len();
    let rows = if added.is_empty() && before == 0 {
        rows
    } else {
        add_columns(rows, added.to_vec(), before, columns)
    };
    let rows = if retyped.is_empty() {
        rows
    } else {
        retype(rows, retyped)
    };
    // The snapshot position travels with the result (from the segment's
    // marker when an earlier attempt committed it).
    let bounds = bounds_on_target(table, seg.bounds, target.engine)?;
    let seg = Segment {
        snapshot: None,
        position,
        bounds: &bounds,
        ..seg
    };
    let span = tracing::info_span!("write", table = %converted.display_name(), segment = seg.number);
    to.load_rows(run, target, &converted, seg, rows, progress)
        .instrument(span)
        .await
}

/// Appends the values of the columns `add-column` rules add, computed from
/// each row's source values (`columns`, by source name), then NULL for its
/// `before` before-image columns (a loaded row has no earlier image); a
/// value that does not fit its data type makes the row one the target
/// cannot store.
fn add_columns(rows: Rows, added: Vec<AddedColumn>, before: usize, columns: Vec<String>) -> Rows {
    Box::pin(futures::StreamExt::map(rows, move |batch| {
        let mut batch = batch?;
        for row in batch.iter_mut() {
            let Ok(values) = row else { continue };
            let computed: Result<Vec<Value<'static>>, Rejected> = added
                .iter()
                .map(|a| {
                    let get = |name: &str| columns.iter().position(|c| c == name).map(|i| &values[i]);
                    match a.expression.eval(&a.data_type, get) {
                        Ok(v) => Ok(v.unwrap_or(Value::Null)),
                        Err(e) => Err(Rejected {
                            image: format!("{values:?}"),
                            reason: format!("column {} of rule {}: {e}", a.name, a.rule_id),
                        }),
                    }
                })
                .collect();
            match computed {
                Ok(more) => {
                    values.extend(more);
                    values.extend(std::iter::repeat_n(Value::Null, before));
                }
                Err(r) => *row = Err(r),
            }
        }
        Ok(batch)
    }))
}

/// Converts the values of columns a `change-data-type` rule retypes (at
/// row positions `at`); a value the new type cannot hold makes the row one
/// the target cannot store.
fn retype(rows: Rows, at: Vec<(usize, String, DataType)>) -> Rows {
    Box::pin(futures::StreamExt::map(rows, move |batch| {
        let mut batch = batch?;
        for row in batch.iter_mut() {
            let Ok(values) = row else { continue };
            for (i, name, dt) in &at {
                match dt.convert(&values[*i]) {
                    Ok(v) => values[*i] = v,
                    Err(e) => {
                        *row = Err(Rejected {
                            image: format!("{values:?}"),
                            reason: format!("column {name} retyped by change-data-type: {e}"),
                        });
                        break;
                    }
                }
            }
        }
        Ok(batch)
    }))
}

/// Cuts the LOB values of a segment's rows (read by `source`'s columns,
/// written to its target form `t`) to the table's limit (see
/// `ferry_common::lob`), noting each cut row's key in `cuts` for the writer
/// to record with the segment; under a DataTruncationErrorPolicy that stops,
/// the first cut ends the stream with the error instead.
fn cut_lobs(rows: Rows, cut: RowCut, source: &TableSchema, t: &TableSchema, segment: u32, cuts: Cuts) -> Rows {
    // The columns read (an added column is computed later), by target name.
    let names: Vec<String> = t
        .copy_columns()
        .filter(|c| !source.is_computed(&c.name))
        .map(|c| c.name.clone())
        .collect();
    // The row's key columns name it; a keyless table's non-LOB columns do.
    let key: Vec<usize> = match &t.primary_key {
        Some(pk) => pk
            .columns
            .iter()
            .filter_map(|k| names.iter().position(|n| n == k))
            .collect(),
        None => (0..names.len()).filter(|i| !cut.covers(*i)).collect(),
    };
    let ctx = format!("table {} segment {segment}", t.display_name());
    Box::pin(futures::StreamExt::map(rows, move |batch| {
        let mut batch = batch?;
        for row in batch.iter_mut() {
            let Ok(values) = row else { continue };
            let done = cut.row(values);
            if done.is_empty() {
                continue;
            }
            let image = key_image(key.iter().map(|&i| (names[i].as_str(), &values[i])));
            if cut.on_truncation.stops() {
                let why = format!("{ctx}: {}", cut.stop_reason(&done, &image));
                return Err(ConnectorError::stopped_by(cut.on_truncation, why));
            }
            cuts.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((image, cut.reason(&done)));
        }
        Ok(batch)
    }))
}

/// A table's rows on the target against what its segments loaded, once
/// every segment committed and before anything else writes to it: a
/// difference means rows were lost or doubled on the way (a segment that
/// touched another's rows, say), and the table must not count as loaded.
pub(crate) async fn check_loaded_rows(target: &Endpoint, t: &TableSchema, expected: u64) -> Result<(), ConnectorError> {
    with_engine!(target.engine, |to| check_loaded_rows_with(&to, target, t, expected)
        .await)
}

async fn check_loaded_rows_with(
    to: &impl Target,
    target: &Endpoint,
    t: &TableSchema,
    expected: u64,
) -> Result<(), ConnectorError> {
    let on = on_target(t, target.engine)?;
    let held = to.count_rows(target, &on).await?;
    if held != expected {
        return Err(ConnectorError::Definite(format!(
            "table {}: the target holds {held} rows after the full load, but its segments loaded {expected}: rows were lost or doubled; the table is not complete",
            t.display_name()
        )));
    }
    tracing::info!(table = %t.display_name(), rows = held, "loaded row count checked on the target");
    Ok(())
}

/// About how many bytes a row's values are (text and binary by length,
/// the rest by their width): the source side of the bandwidth figures.
fn row_bytes(row: &crate::pipeline::rows::Row) -> usize {
    use ferry_common::value::Value;
    let Ok(values) = row else { return 0 };
    values
        .iter()
        .map(|v| match v {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Float(_) => 4,
            Value::Text(s) | Value::Decimal(s) | Value::Json(s) => s.len(),
            Value::Bytes(b) | Value::Bit { bytes: b, .. } => b.len(),
            _ => 8,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    //! The load path against the in-memory engine (`engine::mock`): rows
    //! arrive once whatever attempts run, and the row-count check catches
    //! a writer that doubles them.
    use super::*;
    use crate::engine::mock::{Db, Mock};
    use ferry_common::plan::{KeyColumn, SegmentBounds};
    use ferry_common::position::Position;
    use ferry_common::schema::Column;

    fn endpoint() -> Endpoint {
        Endpoint::parse("postgres://u@localhost/db").unwrap()
    }

    fn table() -> TableSchema {
        TableSchema::bare(
            ferry_common::endpoint::Engine::Postgres,
            "s",
            "t",
            vec![Column::plain("id", "bigint")],
        )
    }

    fn bounds(lower: Option<i64>, upper: Option<i64>) -> SegmentBounds {
        SegmentBounds::Key {
            columns: vec![KeyColumn {
                name: "id".into(),
                type_sql: "bigint".into(),
                nullable: false,
            }],
            lower: lower.map(|l| vec![l.to_string()]),
            upper: upper.map(|u| vec![u.to_string()]),
        }
    }

    fn run() -> Run {
        Run {
            task: "t1".into(),
            epoch: 1,
            control: Default::default(),
        }
    }

    async fn load(mock: &Mock, segment: u32, b: &SegmentBounds) -> Result<WorkResult, ConnectorError> {
        let (ep, t) = (endpoint(), table());
        let job = Load {
            source: &ep,
            target: &ep,
            table: &t,
            seg: Segment {
                number: segment,
                bounds: b,
                snapshot: Some("snap"),
                gen: 0,
                replace: false,
                fresh: false,
                position: None,
                data_errors: Default::default(),
                cuts: Default::default(),
            },
        };
        load_with(mock, mock, &run(), job, Progress::default()).await
    }

    fn mock(keys: std::ops::Range<i64>) -> Mock {
        let m = Mock::default();
        m.db.lock().unwrap().source = keys.collect();
        m
    }

    fn segments() -> Vec<SegmentBounds> {
        vec![
            bounds(None, Some(10)),
            bounds(Some(10), Some(20)),
            bounds(Some(20), None),
        ]
    }

    #[tokio::test]
    async fn every_row_once_when_an_attempt_repeats() {
        let m = mock(0..25);
        for (i, b) in segments().iter().enumerate() {
            let r = load(&m, i as u32, b).await.unwrap();
            let WorkResult::Loaded {
                already_loaded,
                position,
                ..
            } = r
            else {
                panic!("{r:?}")
            };
            assert!(!already_loaded);
            assert_eq!(position, Some(Position::binlog(1, 7)));
        }
        // A retry (or a zombie) of segment 1 copies nothing and reports
        // what the committed attempt loaded, with its position.
        let again = load(&m, 1, &segments()[1]).await.unwrap();
        assert_eq!(
            again,
            WorkResult::Loaded {
                rows: 10,
                already_loaded: true,
                exceptions: 0,
                truncated: 0,
                position: Some(Position::binlog(1, 7)),
            }
        );
        let mut held = m.db.lock().unwrap().target.clone();
        held.sort();
        assert_eq!(held, (0..25).collect::<Vec<_>>());
        check_loaded_rows_with(&m, &endpoint(), &table(), 25).await.unwrap();
    }

    #[tokio::test]
    async fn an_attempt_that_dies_leaves_nothing_and_its_retry_loads() {
        let m = mock(0..25);
        m.db.lock().unwrap().dies = true;
        assert!(load(&m, 0, &segments()[0]).await.unwrap_err().retryable());
        assert!(m.db.lock().unwrap().target.is_empty());
        m.db.lock().unwrap().dies = false;
        let r = load(&m, 0, &segments()[0]).await.unwrap();
        assert!(matches!(
            r,
            WorkResult::Loaded {
                rows: 10,
                already_loaded: false,
                ..
            }
        ));
    }

    #[tokio::test]
    async fn a_superseded_generation_commits_nothing() {
        let m = mock(0..25);
        *m.db.lock().unwrap() = Db {
            source: (0..25).collect(),
            gen: 3,
            ..Db::default()
        };
        let e = load(&m, 0, &segments()[0]).await.unwrap_err();
        assert!(e.to_string().contains("superseded"), "{e}");
        assert!(m.db.lock().unwrap().target.is_empty());
    }

    #[tokio::test]
    async fn the_row_count_check_catches_doubled_rows() {
        let m = mock(0..25);
        m.db.lock().unwrap().doubles = Some(2);
        let mut loaded = 0;
        for (i, b) in segments().iter().enumerate() {
            if let WorkResult::Loaded { rows, .. } = load(&m, i as u32, b).await.unwrap() {
                loaded += rows;
            }
        }
        // The segments report 25 rows (what the coordinator expects); the
        // target holds 30.
        assert_eq!(loaded, 25);
        let e = check_loaded_rows_with(&m, &endpoint(), &table(), loaded)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("rows were lost or doubled"), "{e}");
    }
}
