//! Applying row changes in the common value model to a PostgreSQL or MySQL
//! target, exactly once. Both log readers drive it — the binlog reader
//! (`mysql/binlog`) and the pgoutput stream (`postgres/cdc/apply`): a source
//! decodes its log into [`Op`]s and tells it where transactions end. Into a
//! PostgreSQL target a PostgreSQL source's values stay text
//! ([`Value::Text`], cast to the column's type), so they never leave
//! PostgreSQL's own forms.
//!
//! ## Why nothing is lost or applied twice
//!
//! *Exactly once.* The target holds `ferry.apply_state(task, lsn, epoch,
//! mark)`. Many source transactions are applied in one target transaction
//! that ends by moving `lsn` to the end position of the last source
//! transaction it contains, under the epoch check: rows and position commit
//! together or not at all. A new stream first takes the row over (raising
//! `epoch`, waiting for a predecessor's open batch, which holds the row's
//! lock only from its closing update to its COMMIT) and resumes from the
//! committed `lsn`; the source skips every transaction that starts before
//! it. A stale stream's closing check finds a newer epoch: it rolls back and
//! stops. On PostgreSQL the check is `UPDATE ... WHERE epoch = mine` (one
//! row or none); on MySQL it is `SELECT epoch ... FOR UPDATE` in the batch's
//! transaction, since MySQL's affected-row count does not count a row that
//! matched but did not change.
//!
//! *Idempotent rows.* Inserts are upserts on the primary key and updates are
//! "delete the old key if it changed, upsert the new image": replaying a
//! change the target already holds (a MySQL table loaded in several segments,
//! each in its own snapshot, has its changes replayed from the earliest of
//! them) leaves the row as the source had it after that change, and the
//! changes that follow in log order bring it to its final state. A table
//! without a key cannot be replayed this way; it is loaded in one segment,
//! whose snapshot position is an exact cut (see `mysql/binlog`).
//! Past an exact cut (every PostgreSQL source table; see
//! [`TargetTable::replay`]) there is no replay, and an update changes the
//! row it names instead, so a row missing on the target is not recreated.
//! An update whose image lacks columns (unchanged TOAST) or whose table has
//! no key becomes `UPDATE ... SET <sent columns> WHERE <one row equal to the
//! old image>`; such changes are only ever applied past an exact cut (every
//! PostgreSQL source table has one), never replayed.
//!
//! *Set-based batches.* Where the target session checks nothing between
//! rows beyond each table's own keys (PostgreSQL with
//! `session_replication_role = replica`: no triggers, no foreign keys;
//! MySQL with `foreign_key_checks = 0` and no trigger on the target) and
//! a table has a key and no other unique or exclusion constraint, its
//! changes in a batch are folded into one net effect per key — upsert this
//! image, update the row to this image if it exists, or delete — and
//! written as a few set statements (`DELETE ... WHERE key IN`, `UPDATE ...
//! FROM (VALUES ...)`, multi-row upserts) when the batch is sent. This
//! gives the same rows at COMMIT as applying every change in order: the
//! batch is one target transaction, so no intermediate state is ever
//! visible; each key's changes are folded in source order, and the fold is
//! exact (insert/upsert then update = upsert of the new image; anything then
//! delete = delete; delete then insert = upsert); and changes to different
//! keys commute, because nothing but the key relates two rows of the table
//! and nothing relates rows of different tables. Every change that does not
//! fold (a key-changing or partial update, a value the target refuses, a
//! truncate, a layout change) first writes out what its table holds, then
//! goes in order. On a busy source a batch touches hot rows many times
//! (pgbench's branches and tellers); the target sees each once.
//!
//! *Parallel lanes.* A set-based batch is applied on several target
//! sessions at once: lane 0 is the fenced session, and each key of a table
//! whose batch stayed set-based goes to the lane its hash picks. Everything
//! that goes in order (tables that are not independent, keyless tables, a
//! set-based table once one of its changes in the batch did not fold,
//! exceptions, a truncate or a batch sent before it ended: the whole batch)
//! stays on lane 0. Where sessions writing disjoint keys can still wait on
//! each other ([`ChangeTarget::disjoint_keys_wait`]: InnoDB's next-key
//! locks), lane 0 takes no share of a spread table: a table is then either
//! wholly on lane 0 or wholly on lanes 1.., so no lane waits on lane 0,
//! which waits for them. The lanes run their statements at the same time; each
//! other lane opens its transaction by reading the apply state `FOR SHARE`
//! with our epoch and commits on its own; only when every lane has
//! committed does lane 0 record the batch's end position and mark and
//! commit. Why this keeps every row exact:
//! - No deadlock that stalls: lanes touch disjoint keys, and lane 0's
//!   row lock on the apply state is taken after the lanes released their
//!   share locks. Where disjoint keys can wait on each other, lanes can
//!   wait on lanes (never on lane 0, which holds other tables); the server
//!   breaks a cycle among them by failing one, and a lane that fails with a
//!   transient error is rolled back and run again, a few times
//!   ([`LANE_ATTEMPTS`]): a lane holds only absolute effects on keys no
//!   other session of the stream writes, so running it again, even after a
//!   COMMIT whose outcome was lost, gives the same rows.
//! - A crash between a lane's commit and lane 0's leaves effects of the
//!   batch after the committed position. Every such effect is absolute and
//!   idempotent (upsert a whole image, delete a key, give an existing row a
//!   whole image): the next stream resumes at the committed position,
//!   which is where that batch began, and applying the same effects again
//!   over them gives the same rows. In-order changes, which are not
//!   idempotent (a keyless insert, a partial update), only ever commit
//!   with the position.
//! - A superseded stream cannot write behind its successor: a take-over's
//!   `UPDATE` waits for every lane holding the share lock, and a lane that
//!   starts after it finds the new epoch and rolls back; lane 0's fenced
//!   update fails the same way.
//! - Visibility: while the stream runs, a source transaction spread over
//!   lanes can be visible on the target in part for the moment between
//!   the lanes' commits (as with DMS's batch apply). A caught-up mark is
//!   recorded with lane 0's commit, after every lane's, so `task wait
//!   --for caught-up` and a cutover see every transaction before the mark
//!   whole.
//!
//! *Pipelining.* While a batch is committing, in its own task, the stream
//! decodes and folds the next one; the next batch is sent only after the
//! one before it committed, and `applied` moves only then.
//!
//! *Values.* A value the target cannot hold (a NUL in PostgreSQL text, NaN in
//! MySQL) sends its row to `ferry.apply_exceptions` in the same transaction
//! and is counted, exactly as in the full load. TRUNCATE becomes `DELETE`
//! on MySQL, whose TRUNCATE would commit the batch half-way.

use super::conflict::{Checks, Conflict, Found, Recorder};
use crate::engine::target::{AnyChangeTarget, ApplyDialect, BatchNote, ChangeTarget};
use crate::engine::{ConnectorError, Run};
use ferry_common::control::ControlTables;
use ferry_common::endpoint::{Endpoint, Engine};
use ferry_common::expression::DataType;
use ferry_common::filter::BoundFilter;
use ferry_common::lob::{key_image, RowCut};
use ferry_common::plan::ChangeTracking;
use ferry_common::position::Position;
use ferry_common::schema::{quote_ident, ConstraintKind, TableSchema};
use ferry_common::settings::{ApplyConflicts, BatchTiming, ErrorAction};
use ferry_common::transform::AddedColumn;
use ferry_common::value::{Value, ValueError};
use ferry_common::work::{CdcProgress, ChangedSegments, TableCounters};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

/// Target SQL buffered before it is sent.
const FLUSH_BYTES: usize = 1 << 20;

/// While more is ready, a batch commits after this many source
/// transactions (or `BatchTiming::max_ms`).
const BATCH_TXNS: u64 = 1000;
const MAX_VALUES_PER_INSERT: usize = 500;
/// Runs of a parallel lane's statements before its transient error (a
/// deadlock the server broke by failing it) ends the stream.
const LANE_ATTEMPTS: u32 = 5;

/// A row image as a log sends it, in its columns' order (see
/// [`TargetTable::with_image`]); `None` is a column the log left out
/// (PostgreSQL's unchanged TOAST values), which is neither written nor
/// compared.
pub type Image = Vec<Option<Value<'static>>>;

/// An image that carries every column.
pub fn whole(row: Vec<Value<'static>>) -> Image {
    row.into_iter().map(Some).collect()
}

/// One row change.
#[derive(Debug)]
pub enum Op {
    Insert(Vec<Value<'static>>),
    Update { before: Image, after: Image },
    Delete(Image),
}

/// A replicated table as the applier writes it.
pub struct TargetTable {
    /// `schema.table` of the source, for statistics and errors.
    pub display: String,
    qualified: String,
    /// Quoted target column and, on PostgreSQL, the type literals are cast to.
    columns: Vec<(String, String)>,
    /// For each target column, its index in the source row image.
    source_index: Vec<usize>,
    /// Target column indexes of the primary key (empty: no key).
    key: Vec<usize>,
    /// Width of the source row image the columns were mapped from.
    pub source_width: usize,
    /// Why this table's apply stopped (e.g. DDL on the source).
    pub stopped: Option<String>,
    /// Dropped on the source, every earlier change committed.
    dropped: bool,
    /// Changes may be replayed over rows that already hold them (a MySQL
    /// table loaded in several snapshots): a keyed update then upserts its
    /// new image. Without replay (PostgreSQL's exact cut) an update changes
    /// the row it names, and a row the target lacks stays missing, as it
    /// would in DMS; ApplyErrorUpdatePolicy INSERT_RECORD sets it for every
    /// table, so such a row is inserted.
    pub replay: bool,
    /// The row image's column names (source names).
    image: Vec<String>,
    /// No unique constraint but the key binds its rows (nor an exclusion
    /// constraint): changes to different keys commute, and a batch may
    /// apply the table's net changes as sets.
    independent: bool,
    /// Which validated segments changes are reported against.
    tracking: ChangeTracking,
    /// Image positions of the tracking locator's columns; `None` when the
    /// image lacks one (every change then counts for the whole table).
    track_at: Option<Vec<usize>>,
    /// The table's source filter, over its row images.
    filter: Option<ImageFilter>,
    /// The table's LOB limit over its row images (see `ferry_common::lob`).
    lob: Option<RowCut>,
    /// Columns `add-column` rules add: the last of `columns`, after the
    /// `source_index` ones, each computed from the image.
    computed: Vec<Computed>,
    /// Per `source_index` column: the type a `change-data-type` rule
    /// converts its values to.
    retype: Vec<Option<DataType>>,
    /// Before-image columns, the last of `columns`: the image position of
    /// the column whose old value each holds (an update writes its old
    /// image's value, an insert NULL).
    before: Vec<usize>,
}

/// An added column bound to a table's row images.
struct Computed {
    column: AddedColumn,
    /// Image positions of the source columns its expression reads.
    at: Vec<(String, usize)>,
}

impl Computed {
    /// The value over an image (`None`: a column it reads was not sent,
    /// so the value did not change either).
    fn eval<'v>(&self, value: impl Fn(usize) -> Option<&'v Value<'v>>) -> Result<Option<Value<'static>>, ValueError> {
        let get = |name: &str| self.at.iter().find(|(n, _)| n == name).and_then(|(_, i)| value(*i));
        self.column.expression.eval(&self.column.data_type, get).map_err(|e| {
            ValueError(format!(
                "column {} of rule {}: {e}",
                self.column.name, self.column.rule_id
            ))
        })
    }
}

/// A source filter bound to a table's row images: each filtered column's
/// position in the image (`None`: the log never sends it).
struct ImageFilter {
    bound: BoundFilter,
    at: Vec<Option<usize>>,
}

impl ImageFilter {
    /// Whether the row `value_at` reads passes; `Ok(None)` when a filtered
    /// value is absent.
    fn test<'v>(&self, value_at: impl Fn(usize) -> Option<&'v Value<'static>>) -> Result<Option<bool>, String> {
        self.bound.test(|i| self.at[i].and_then(&value_at))
    }

    /// The changes that keep the target holding exactly the source rows the
    /// filter passes, whatever the log carries of the old row (see
    /// `ferry_common::filter`):
    /// - an insert is applied if its row passes;
    /// - an update is judged by its new image, completed from the old one
    ///   where the log left values out: one that passes is applied as a
    ///   delete of the old row and an insert of the new one (the row may be
    ///   moving in, and a row the target lacks is never recreated by an
    ///   update past an exact cut), unless the old image is known and passed
    ///   too, when it is a plain update; one that fails deletes the old row
    ///   (it may be moving out; deleting a row the target lacks changes
    ///   nothing), unless the old image is known and failed too, when it is
    ///   skipped. A new image without a filtered value (an unchanged value
    ///   the log left out) kept its membership: the update is applied as
    ///   sent, changing the row only if the target has it;
    /// - a delete is applied unless its known old image failed.
    ///
    /// The one change this cannot apply exactly is an update that passes,
    /// whose old image is unknown and whose new image lacks values: the row
    /// may be moving in with values the log did not send. That is an error
    /// (the table stops), naming the fix: on PostgreSQL, REPLICA IDENTITY
    /// FULL, whose old image completes the new one.
    fn narrow(&self, op: Op) -> Result<[Option<Op>; 2], String> {
        let image = |row: &Image| self.test(|i| row.get(i)?.as_ref());
        Ok(match op {
            Op::Insert(row) => match self.test(|i| row.get(i))? {
                Some(true) => [Some(Op::Insert(row)), None],
                _ => [None, None],
            },
            Op::Update { before, after } => {
                // A log without the old image repeats the new one (see add_net).
                let was = if before != after { image(&before)? } else { None };
                let merged: Image = after
                    .into_iter()
                    .enumerate()
                    .map(|(i, a)| a.or_else(|| before.get(i).cloned().flatten()))
                    .collect();
                match (image(&merged)?, was) {
                    (None, _) | (Some(true), Some(true)) => [Some(Op::Update { before, after: merged }), None],
                    (Some(false), Some(false)) => [None, None],
                    (Some(false), _) => [Some(Op::Delete(before)), None],
                    (Some(true), _) => match merged.into_iter().collect::<Option<Vec<_>>>() {
                        Some(row) => [Some(Op::Delete(before)), Some(Op::Insert(row))],
                        None => {
                            return Err(
                                "an update passes it but the log left values out of the new row and sent \
                                        no old row to complete it, so a row moving into the filter cannot be \
                                        written whole; on PostgreSQL run ALTER TABLE ... REPLICA IDENTITY FULL \
                                        and reload the table"
                                    .into(),
                            )
                        }
                    },
                }
            }
            Op::Delete(before) => match image(&before)? {
                Some(false) => [None, None],
                _ => [Some(Op::Delete(before)), None],
            },
        })
    }
}

impl TargetTable {
    /// Maps the source table onto its form on `engine` (the same conversion
    /// the full load used, so the target table is the one Prepare created),
    /// for row images of every source column in table order.
    pub fn new(source: &TableSchema, engine: Engine) -> Result<TargetTable, ConnectorError> {
        let image: Vec<&str> = source.columns.iter().map(|c| c.name.as_str()).collect();
        Self::with_image(source, engine, &image, None)
    }

    /// As [`TargetTable::new`], for row images of the columns named in
    /// `image` (a log that leaves some out, such as pgoutput's generated
    /// columns). A target column the image lacks is not written. `key`
    /// overrides the primary key (a replica identity index).
    pub fn with_image(
        source: &TableSchema,
        engine: Engine,
        image: &[&str],
        key: Option<&[String]>,
    ) -> Result<TargetTable, ConnectorError> {
        let t = crate::engine::on_target(source, engine)?;
        let mut columns = vec![];
        let mut source_index = vec![];
        let mut names = vec![];
        let mut retype = vec![];
        for c in t.copy_columns() {
            if source.is_computed(&c.name) {
                continue;
            }
            let from = source.source_column(&c.name);
            if let Some(i) = image.iter().position(|s| *s == from) {
                columns.push((quote_ident(&c.name), c.type_sql.clone()));
                source_index.push(i);
                retype.push(source.retyped(from).copied());
                names.push(c.name.as_str());
            }
        }
        // Added columns last, as the target form has them.
        let mut computed = vec![];
        for a in source.added_columns() {
            let at = a
                .expression
                .columns()
                .map(|c| {
                    let i = image.iter().position(|s| *s == c).ok_or_else(|| {
                        ConnectorError::Definite(format!(
                            "table {}: column {c}, which the expression of rule {} reads, is not in the change's row image",
                            source.display_name(),
                            a.rule_id
                        ))
                    })?;
                    Ok((c.to_string(), i))
                })
                .collect::<Result<Vec<_>, ConnectorError>>()?;
            let c = t.column(&a.name).ok_or_else(|| {
                ConnectorError::Definite(format!(
                    "table {}: the target form lacks the added column {}",
                    source.display_name(),
                    a.name
                ))
            })?;
            columns.push((quote_ident(&c.name), c.type_sql.clone()));
            computed.push(Computed { column: a.clone(), at });
        }
        // Before-image columns after them: each the old value of a column.
        let mut before = vec![];
        for b in source.before_image_columns() {
            let at = image.iter().position(|s| *s == b.source).ok_or_else(|| {
                ConnectorError::Definite(format!(
                    "table {}: column {}, whose old value rule {} keeps, is not in the change's row image",
                    source.display_name(),
                    b.source,
                    b.rule_id
                ))
            })?;
            let c = t.column(&b.name).ok_or_else(|| {
                ConnectorError::Definite(format!(
                    "table {}: the target form lacks the before-image column {}",
                    source.display_name(),
                    b.name
                ))
            })?;
            columns.push((quote_ident(&c.name), c.type_sql.clone()));
            before.push(at);
        }
        // A replica identity index names source columns.
        let identity: Option<Vec<String>> = key.map(|k| {
            k.iter()
                .map(|c| source.target_column(c).unwrap_or(c.as_str()).to_string())
                .collect()
        });
        let key_names = identity
            .as_deref()
            .or(t.primary_key.as_ref().map(|pk| pk.columns.as_slice()))
            .unwrap_or(&[]);
        let key = key_names
            .iter()
            .map(|k| {
                names.iter().position(|c| c == k).ok_or_else(|| {
                    ConnectorError::Definite(format!(
                        "table {}: key column {k} is not in the change's row image",
                        source.display_name()
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        // A before-image column needs each update's own old image, which
        // folding a key's changes into one would lose.
        let independent = !key.is_empty()
            && before.is_empty()
            && !t.index_list.iter().any(|i| i.unique)
            && !t.indexes.iter().any(|d| d.to_ascii_uppercase().contains("UNIQUE"))
            && !t
                .constraints
                .iter()
                .any(|c| matches!(c.kind, ConstraintKind::Unique | ConstraintKind::Exclusion));
        let filter = match &source.filter {
            None => None,
            Some(f) => {
                let bound = f.bind(source).map_err(|e| ConnectorError::Definite(e.to_string()))?;
                let at = bound
                    .columns
                    .iter()
                    .map(|c| image.iter().position(|s| *s == c.column))
                    .collect();
                Some(ImageFilter { bound, at })
            }
        };
        Ok(TargetTable {
            display: source.display_name(),
            qualified: t.qualified(),
            columns,
            source_index,
            key,
            source_width: image.len(),
            stopped: None,
            dropped: false,
            replay: true,
            independent,
            image: image.iter().map(|s| s.to_string()).collect(),
            tracking: ChangeTracking::Off,
            track_at: None,
            filter,
            lob: RowCut::new(source.lob.as_ref(), image.iter().copied()),
            computed,
            retype,
            before,
        })
    }

    /// Reports changes against the table's validated segments (see
    /// [`ChangeTracking`]).
    pub fn tracked(mut self, tracking: ChangeTracking) -> TargetTable {
        self.track_at = match &tracking {
            ChangeTracking::Segments(l) => l
                .columns
                .iter()
                .map(|c| self.image.iter().position(|i| i == c))
                .collect(),
            _ => None,
        };
        self.tracking = tracking;
        self
    }

    /// The segment `row` falls in; `None` when it cannot be told (the
    /// table is tracked as a whole, or the image lacks a key value).
    fn segment_of(&self, row: &Image) -> Option<u32> {
        let ChangeTracking::Segments(l) = &self.tracking else {
            return None;
        };
        let key: Option<Vec<i128>> = self
            .track_at
            .as_ref()?
            .iter()
            .map(|&i| match row.get(i)? {
                Some(Value::Int(v)) => Some(*v as i128),
                Some(Value::UInt(v)) => Some(*v as i128),
                Some(Value::Text(s) | Value::Decimal(s)) => s.parse().ok(),
                _ => None,
            })
            .collect();
        Some(l.locate(&key?))
    }
}

/// A multi-row INSERT still open at the end of the buffer.
struct OpenInsert {
    table: usize,
    rows: usize,
    /// Rows whose key the target holds stay as they are (else they take
    /// the new image).
    keep: bool,
    /// Its conflict clause, appended when it is closed.
    suffix: String,
    /// Key literals of its rows.
    keys: HashSet<String>,
}

/// What the open batch leaves of one row of a set-based table.
#[derive(Debug, Clone, PartialEq)]
enum Net {
    /// The row holds this image, whether or not it existed.
    Upsert(Vec<String>),
    /// The row, if it exists, takes this image (an update past an exact
    /// cut: a row the target lacks stays missing, and is a conflict, so the
    /// key is always checked; see `conflict`).
    Update(Vec<String>),
    /// The row is gone.
    Delete,
    /// The row is new: it takes this image if the target lacks it; a row
    /// the target holds already stays as it is, and is a conflict (an
    /// insert past an exact cut under an ApplyErrorInsertPolicy other than
    /// INSERT_RECORD: the key is always checked; see `conflict`).
    Insert(Vec<String>),
}

impl Net {
    /// The net effect of `self` followed by `next`; none where the source
    /// never sends `next` after `self` (an update of a row the batch
    /// deleted, a checked insert of a row the batch holds): if it did, it
    /// goes in order.
    fn then(&self, next: Net) -> Option<Net> {
        match (self, next) {
            (Net::Delete, Net::Update(_)) => None,
            (Net::Upsert(_) | Net::Update(_) | Net::Insert(_), Net::Insert(_)) => None,
            // The row is there after the first change (inserted, or held
            // already: then the insert was a conflict and changed nothing),
            // and the update gives it its whole image.
            (Net::Upsert(_) | Net::Insert(_), Net::Update(image)) => Some(Net::Upsert(image)),
            // Deleted, then new: whatever the target held, the row ends
            // with this image.
            (Net::Delete, Net::Insert(image)) => Some(Net::Upsert(image)),
            (_, next) => Some(next),
        }
    }
}

/// One key's net effect in the open batch.
struct NetRow {
    key: Vec<String>,
    net: Net,
    /// The key's first change in the batch expected the row (an update or a
    /// delete past an exact cut), or expected it absent (a checked insert):
    /// it is checked (see `conflict`).
    checked: Option<Conflict>,
}

/// A set-based table's changes in the open batch: one net effect per key
/// (by the key's literals), in the order the keys were first changed.
#[derive(Default)]
struct NetRows {
    at: HashMap<Vec<String>, usize>,
    rows: Vec<NetRow>,
    /// Literal bytes held (superseded images included).
    bytes: usize,
}

/// A batch sent to the target whose commit is not yet known: the stream
/// decodes the next batch meanwhile.
struct Flight<T> {
    /// Gives the sessions back with the batch's outcome.
    run: tokio::task::JoinHandle<(Vec<T>, Result<Found, ConnectorError>)>,
    end: Option<Position>,
    mark: u64,
    counters: BTreeMap<String, TableCounters>,
    changed: BTreeMap<usize, ChangedSegments>,
}

/// Applies changes to one target (`T`: the engine's, or a test's).
pub struct Applier<T: ChangeTarget = AnyChangeTarget> {
    /// Target sessions; the first holds the apply state's fence, the others
    /// are parallel lanes (see "Parallel lanes"). Empty while a batch is in
    /// flight.
    lanes: Vec<T>,
    flight: Option<Flight<T>>,
    dialect: &'static dyn ApplyDialect,
    task: String,
    epoch: i64,
    /// Where the task's control tables are, and which optional ones it keeps.
    control: ControlTables,
    pub tables: Vec<TargetTable>,
    sql: String,
    batch_open: bool,
    batch_started: Instant,
    batch_txns: u64,
    /// Changes received since the last commit on the target.
    pub batch_changes: u64,
    /// Oldest source commit time in the open batch (target latency).
    pub batch_oldest_commit_ms: u64,
    /// Newest source commit time in the open batch (the status table).
    batch_newest_commit_ms: u64,
    /// The multi-row INSERT the buffer ends with.
    open_insert: Option<OpenInsert>,
    /// The target lets independent tables' changes be applied as sets.
    set_based: bool,
    /// Net changes not yet in `sql`, by table (set-based tables only).
    net: BTreeMap<usize, NetRows>,
    /// Set-based tables with a change in the open batch that went in order
    /// (on the fenced session): the rest of their batch stays there.
    ordered: HashSet<usize>,
    /// The open batch runs on the fenced session alone (a truncate, or
    /// statements sent before the batch ended).
    sequential: bool,
    batch_end: Option<Position>,
    batch_mark: u64,
    batch_counters: BTreeMap<String, TableCounters>,
    /// Validated segments the open batch changes, by table index.
    batch_changed: BTreeMap<usize, ChangedSegments>,
    /// Committed on the target (none before the task's first commit).
    pub applied: Option<Position>,
    pub marks_reached: u64,
    unreported: BTreeMap<String, TableCounters>,
    unreported_changed: BTreeMap<usize, ChangedSegments>,
    rows_since_report: u64,
    table_errors: Vec<(String, String)>,
    tables_altered: Vec<(String, String)>,
    /// Tables dropped on the source, each with the position from which
    /// none of its changes can follow (see [`Applier::table_dropped`]).
    dropping: Vec<(usize, Position)>,
    tables_dropped: Vec<String>,
    /// Source TRUNCATEs are applied (HandleSourceTableTruncated).
    pub apply_truncates: bool,
    /// Tables dropped on the source are dropped on the target
    /// (HandleSourceTableDropped).
    pub drop_dropped: bool,
    /// What a change the target cannot store does (DataErrorPolicy).
    data_error_policy: ErrorAction,
    /// What a table whose apply stops does (TableErrorPolicy).
    table_error_policy: ErrorAction,
    /// ChangeProcessingTuning.BatchApplyTimeoutMin / Max.
    batch_min: Duration,
    batch_max: Duration,
    /// Set by a policy that stops the task: the batch holding the change
    /// that set it is not committed, and the stream fails with this.
    fatal: Option<String>,
    /// ApplyErrorUpdatePolicy INSERT_RECORD: a keyed update with a whole
    /// image upserts it, as on a replayed table.
    insert_missing: bool,
    /// What updates and deletes of rows the target lacks, and inserts of
    /// keys it holds, do.
    missing: ApplyConflicts,
    /// The open batch's checks for such rows (see `conflict`).
    checks: Checks,
}

/// The lane of `lanes` a key's changes go to: the same for every change of
/// the key in a batch.
fn lane_of(key: &[String], lanes: usize) -> usize {
    use std::hash::{Hash, Hasher};
    // Fixed keys: a key's lane depends on nothing but the key.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    (h.finish() % lanes as u64) as usize
}

/// What a batch commits on the fenced session besides its rows.
struct Fence {
    task: String,
    epoch: i64,
    end: Option<Position>,
    mark: i64,
    note: BatchNote,
    /// The batch's checks, and where the rows they find go.
    checks: Checks,
    recorder: Recorder,
}

/// Runs one batch: `first` on the fenced session (lane 0), `rest[i]` on
/// lane `i + 1`, and gives the sessions back with the outcome.
async fn fly<T: ChangeTarget>(
    mut lanes: Vec<T>,
    first: String,
    rest: Vec<String>,
    fence: Fence,
    what: String,
) -> (Vec<T>, Result<Found, ConnectorError>) {
    let outcome = fly_on(&mut lanes, first, rest, &fence, &what).await;
    (lanes, outcome)
}

/// The lanes run at once; each checks the epoch and commits on its own.
/// Only when all have committed does the fenced session record the rows
/// the batch's checks found missing, the batch's end, and commit (see
/// "Parallel lanes" above, and `conflict`, for why).
async fn fly_on<T: ChangeTarget>(
    lanes: &mut [T],
    first: String,
    rest: Vec<String>,
    fence: &Fence,
    what: &str,
) -> Result<Found, ConnectorError> {
    let superseded = || {
        ConnectorError::Definite(format!(
            "task {}: another worker took over the CDC stream (epoch {} superseded); stopping",
            fence.task, fence.epoch
        ))
    };
    let bytes = first.len() + rest.iter().map(String::len).sum::<usize>();
    let (fenced, others) = lanes.split_first_mut().expect("an applier has a session");
    let lanes_used = rest.iter().filter(|sql| !sql.is_empty()).count();
    let lanes_run = futures::future::join_all(others.iter_mut().zip(rest).filter(|(_, sql)| !sql.is_empty()).map(
        |(lane, sql)| async move {
            let mut attempt = 1;
            loop {
                let run = async {
                    if !lane.begin_lane(&fence.task, fence.epoch).await? {
                        return Ok(None);
                    }
                    let missing = lane.execute(&sql, what).await?;
                    lane.commit().await.map(|()| Some(missing))
                };
                match run.await {
                    Ok(Some(missing)) => return Ok(missing),
                    Ok(None) => {
                        lane.rollback().await;
                        return Err(superseded());
                    }
                    Err(e) if e.retryable() && attempt < LANE_ATTEMPTS => {
                        lane.rollback().await;
                        tracing::info!(attempt, error = %e, "a parallel apply lane failed; running it again");
                        tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt))).await;
                        attempt += 1;
                    }
                    Err(e) => {
                        lane.rollback().await;
                        return Err(e);
                    }
                }
            }
        },
    ));
    let first_run = async {
        if first.is_empty() {
            Ok(vec![])
        } else {
            fenced.execute(&first, what).await
        }
    };
    let (first_done, lanes_done) = futures::join!(first_run, lanes_run);
    let missing = first_done.and_then(|mut missing| {
        for lane in lanes_done {
            missing.extend(lane?);
        }
        Ok(missing)
    });
    let found = match missing {
        Ok(missing) if missing.is_empty() => Found::default(),
        Ok(missing) => match fence.checks.found(&missing, &fence.recorder, fenced.dialect()) {
            Ok(found) => found,
            Err(why) => {
                fenced.rollback().await;
                return Err(ConnectorError::Definite(why));
            }
        },
        Err(e) => {
            fenced.rollback().await;
            return Err(e);
        }
    };
    if let Some(why) = &found.fatal {
        fenced.rollback().await;
        return Err(ConnectorError::Definite(why.clone()));
    }
    if !found.records.is_empty() {
        if let Err(e) = fenced.execute(&found.records.join(";"), what).await {
            fenced.rollback().await;
            return Err(e);
        }
    }
    crate::health::applied(&fence.task, bytes);
    if !fenced
        .record_position(&fence.task, fence.epoch, fence.end.as_ref(), fence.mark, &fence.note)
        .await?
    {
        fenced.rollback().await;
        return Err(superseded());
    }
    if crate::failpoint::is_armed("cdc-before-commit") {
        tracing::warn!(
            lanes_committed = lanes_used,
            "lanes committed; the fenced session has not"
        );
    }
    crate::failpoint::pause("cdc-before-commit").await;
    fenced.commit().await?;
    Ok(found)
}

/// How a stream treats what the source does to its tables beyond rows
/// (from the task's ChangeProcessingDdlHandlingPolicy and mappings).
#[derive(Clone, Copy)]
pub struct TablePolicy<'a> {
    /// The selection rules, when tables created on the source join the task.
    pub discover: Option<&'a ferry_common::mapping::TableMappings>,
    /// Apply the source's TRUNCATEs (HandleSourceTableTruncated).
    pub apply_truncates: bool,
    /// Drop on the target what the source dropped (HandleSourceTableDropped).
    pub drop_dropped: bool,
    /// An update past an exact cut of a row the target lacks inserts the
    /// new row when the log sent it whole (ApplyErrorUpdatePolicy
    /// INSERT_RECORD): keyed updates are upserts, as on a replayed table
    /// ([`TargetTable::replay`]).
    pub insert_missing: bool,
    /// What other updates, and deletes, of rows the target lacks do, and
    /// inserts of keys it holds.
    pub missing_rows: ApplyConflicts,
    /// DataErrorPolicy and TableErrorPolicy.
    pub data_errors: ErrorAction,
    pub table_errors: ErrorAction,
    /// How long a batch stays open (ChangeProcessingTuning).
    pub batch_timing: BatchTiming,
    /// Tables the coordinator holds in error (`Table error`), with the
    /// reason: the suspended-tables control table is set to them.
    pub suspended: &'a [(String, String)],
}

impl Applier {
    /// Connects to the target and takes the task's apply state over for this
    /// assignment's epoch; `applied` is then the committed position. With
    /// set-based batches, `lanes` sessions in all apply them.
    pub async fn open(
        run: &Run,
        target: &Endpoint,
        tables: Vec<TargetTable>,
        lanes: usize,
    ) -> Result<Applier, ConnectorError> {
        let first = AnyChangeTarget::open(target, &run.control).await?;
        let mut applier = Applier::with_target(first, run.task.clone(), run.epoch as i64, tables).await?;
        applier.control = run.control.clone();
        if applier.set_based {
            let mut more = vec![];
            for _ in 1..lanes {
                more.push(AnyChangeTarget::open(target, &run.control).await?);
            }
            applier.add_lanes(more);
        }
        Ok(applier)
    }
}

/// Appends `(lit, lit, ...)` to `sql`, dropping each literal once it is
/// copied: a row holding a LOB value is in memory about twice, not four
/// times (joined, formatted, appended).
fn push_row(sql: &mut String, lits: Vec<String>) {
    sql.reserve(lits.iter().map(|l| l.len() + 2).sum::<usize>() + 2);
    sql.push('(');
    for (i, l) in lits.into_iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&l);
    }
    sql.push(')');
}

impl<T: ChangeTarget> Applier<T> {
    /// Takes the task's apply state on `target` over for `epoch`.
    pub async fn with_target(
        mut target: T,
        task: String,
        epoch: i64,
        tables: Vec<TargetTable>,
    ) -> Result<Applier<T>, ConnectorError> {
        let (applied, mark) = target.take_over(&task, epoch).await?;
        Ok(Applier {
            // FERRY_APPLY_IN_ORDER (any value) turns set-based batches off:
            // a diagnostic switch, and the benchmarks' baseline.
            set_based: target.set_based() && std::env::var_os("FERRY_APPLY_IN_ORDER").is_none(),
            net: BTreeMap::new(),
            ordered: HashSet::new(),
            sequential: false,
            dialect: target.dialect(),
            lanes: vec![target],
            flight: None,
            task,
            epoch,
            control: ControlTables::default(),
            tables,
            sql: String::new(),
            batch_open: false,
            batch_started: Instant::now(),
            batch_txns: 0,
            batch_changes: 0,
            batch_oldest_commit_ms: 0,
            batch_newest_commit_ms: 0,
            open_insert: None,
            batch_end: applied.clone(),
            batch_mark: mark,
            batch_counters: BTreeMap::new(),
            batch_changed: BTreeMap::new(),
            applied,
            marks_reached: mark,
            unreported: BTreeMap::new(),
            unreported_changed: BTreeMap::new(),
            rows_since_report: 0,
            table_errors: vec![],
            tables_altered: vec![],
            dropping: vec![],
            tables_dropped: vec![],
            apply_truncates: true,
            drop_dropped: true,
            data_error_policy: ErrorAction::LogError,
            table_error_policy: ErrorAction::SuspendTable,
            batch_min: Duration::ZERO,
            batch_max: Duration::from_millis(BatchTiming::default().max_ms),
            fatal: None,
            insert_missing: false,
            missing: ApplyConflicts::default(),
            checks: Checks::default(),
        })
    }

    /// Whether batches apply independent tables' net changes as sets.
    pub fn set_based(&self) -> bool {
        self.set_based
    }

    /// Sessions beside the fenced one that set-based batches spread their
    /// rows over; each must check as little as the first (else unused).
    pub fn add_lanes(&mut self, more: Vec<T>) {
        if self.set_based && more.iter().all(|l| l.set_based()) {
            self.lanes.extend(more);
        }
    }

    /// Target sessions a batch is applied on.
    pub fn lanes(&self) -> usize {
        self.lanes.len().max(1)
    }

    /// Replaces table `t`'s mapping (the log announced its row layout); a
    /// stopped table stays stopped. Closes an open INSERT built on the old one.
    pub fn remap(&mut self, t: usize, mut table: TargetTable) {
        self.flush_net(t);
        if self.open_insert.as_ref().is_some_and(|o| o.table == t) {
            self.close_insert();
        }
        table.stopped = self.tables[t].stopped.take();
        table.dropped = self.tables[t].dropped;
        let tracking = std::mem::take(&mut self.tables[t].tracking);
        self.tables[t] = table.tracked(tracking);
    }

    /// Stops a table's apply for good, with the reason shown in its status.
    pub fn stop_table(&mut self, t: usize, reason: String) {
        let table = &mut self.tables[t];
        if table.stopped.is_none() {
            tracing::error!(table = %table.display, error = %reason, "table apply stopped");
            if self.table_error_policy == ErrorAction::StopTask && self.fatal.is_none() {
                self.fatal = Some(format!(
                    "table {}: {reason} (TableErrorPolicy STOP_TASK stops the task)",
                    table.display
                ));
            }
            self.table_errors.push((table.display.clone(), reason.clone()));
            let name = table.display.clone();
            table.stopped = Some(reason.clone());
            self.suspend(Some(&name), &[(name.clone(), reason)]);
        }
    }

    /// Sets the suspended-tables control table's rows of this task (of
    /// table `only`, or all of them) to `tables`, in the open batch: they
    /// commit with the changes that stopped those tables.
    fn suspend(&mut self, only: Option<&str>, tables: &[(String, String)]) {
        if self.control.suspended {
            self.begin_batch();
            for stmt in self.suspended_rows(only, tables) {
                self.push_stmt(&stmt);
            }
        }
    }

    /// Statements that set the suspended-tables control table's rows of
    /// this task (of table `only`, or all of them) to `tables`.
    fn suspended_rows(&self, only: Option<&str>, tables: &[(String, String)]) -> Vec<String> {
        let t = self.control.table("suspended_tables");
        let task = self.text_literal(&self.task);
        let mut out = vec![match only {
            Some(name) => format!(
                "DELETE FROM {t} WHERE task = {task} AND table_name = {}",
                self.text_literal(name)
            ),
            None => format!("DELETE FROM {t} WHERE task = {task}"),
        }];
        if !tables.is_empty() {
            let rows: Vec<String> = tables
                .iter()
                .map(|(name, reason)| format!("({task}, {}, {})", self.text_literal(name), self.text_literal(reason)))
                .collect();
            out.push(format!(
                "INSERT INTO {t} (task, table_name, reason) VALUES {}",
                rows.join(", ")
            ));
        }
        out
    }

    /// Stops a table's apply because its columns changed on the source
    /// (`change` says how); the coordinator decides whether it is reloaded
    /// in its new shape or stays stopped (HandleSourceTableAltered).
    pub fn table_altered(&mut self, t: usize, change: String) {
        let table = &mut self.tables[t];
        if table.stopped.is_none() {
            tracing::warn!(table = %table.display, %change, "table altered on the source: apply stopped");
            self.tables_altered.push((table.display.clone(), change.clone()));
            let name = table.display.clone();
            table.stopped = Some(change.clone());
            // A reload restarts the stream, whose first batch sets the
            // rows to the coordinator's tables in error, so it leaves again.
            self.suspend(Some(&name), &[(name.clone(), change)]);
        }
    }

    /// The source's policy for what happens to tables beyond their rows.
    pub fn set_policy(&mut self, policy: &TablePolicy<'_>) {
        self.apply_truncates = policy.apply_truncates;
        self.drop_dropped = policy.drop_dropped;
        self.data_error_policy = policy.data_errors;
        self.table_error_policy = policy.table_errors;
        self.insert_missing = policy.insert_missing;
        self.missing = policy.missing_rows;
        self.batch_min = Duration::from_millis(policy.batch_timing.min_ms);
        self.batch_max = Duration::from_millis(policy.batch_timing.max_ms);
        // The coordinator's view at the stream's start: a table it
        // reloaded since leaves the control table with the first batch.
        self.suspend(None, policy.suspended);
    }

    /// Table `t` was dropped on the source (or renamed away). `at` is a
    /// source position no change of the table follows: the DROP's own
    /// position in a log that says so, or the source's current log position
    /// read after the catalog no longer had the table (the drop committed
    /// before it). Changes before `at` still apply; `stop_now` stops the
    /// table at once (the caller is at `at`, and what follows under that
    /// name belongs to another table). The drop completes in
    /// [`Applier::finish_drops`] once everything before `at` is committed.
    pub fn table_dropped(&mut self, t: usize, at: Position, stop_now: bool) {
        let table = &mut self.tables[t];
        if table.dropped || self.dropping.iter().any(|(x, _)| *x == t) {
            return;
        }
        tracing::warn!(table = %table.display, %at, "table dropped on the source");
        if stop_now && table.stopped.is_none() {
            table.stopped = Some("dropped on the source".into());
        }
        self.dropping.push((t, at));
    }

    /// Whether tables were altered or dropped on the source since the last
    /// report.
    pub fn structure_changed(&self) -> bool {
        !self.tables_altered.is_empty() || !self.dropping.is_empty() || !self.tables_dropped.is_empty()
    }

    /// Whether table `t` was dropped on the source (a table of its name that
    /// appears again is a new one).
    pub fn is_dropped(&self, t: usize) -> bool {
        self.tables[t].dropped || self.dropping.iter().any(|(x, _)| *x == t)
    }

    /// Completes the drops that `checkpoint` (committed, nothing pending)
    /// has passed: with HandleSourceTableDropped the target table is
    /// dropped, under the apply state's epoch fence, so a superseded stream
    /// cannot drop a table a newer one created again; then the table is
    /// reported dropped. Idempotent: a stream that restarts before the
    /// report finds the drop again and finds the target table gone.
    pub async fn finish_drops(&mut self, checkpoint: Option<&Position>) -> Result<(), ConnectorError> {
        if self.pending() {
            return Ok(());
        }
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.dropping)
            .into_iter()
            .partition(|(_, at)| checkpoint.is_some_and(|c| at <= c));
        self.dropping = waiting;
        for (t, at) in done {
            if self.drop_dropped {
                let qualified = self.tables[t].qualified.clone();
                self.lanes[0].drop_table(&self.task, self.epoch, &qualified).await?;
            }
            let table = &mut self.tables[t];
            tracing::warn!(table = %table.display, %at, dropped_on_target = self.drop_dropped, "table dropped on the source leaves the stream");
            table.stopped.get_or_insert_with(|| "dropped on the source".into());
            table.dropped = true;
            self.tables_dropped.push(table.display.clone());
        }
        Ok(())
    }

    /// Whether received transactions wait for `commit_batch`: an open target
    /// batch, or transactions with nothing to write whose position (and
    /// caught-up mark) must still move on.
    pub fn pending(&self) -> bool {
        self.batch_open || self.batch_txns > 0 || self.flight.is_some()
    }

    /// Notes the start of a source transaction that will be applied.
    pub fn begin_txn(&mut self, commit_ms: u64) {
        if self.batch_oldest_commit_ms == 0 {
            self.batch_oldest_commit_ms = commit_ms;
        }
        self.batch_newest_commit_ms = self.batch_newest_commit_ms.max(commit_ms);
    }

    /// A source transaction ended at `end`; `more_buffered` says whether the
    /// source has more ready. Commits when the stream has nothing more ready
    /// (low latency), or the batch is large or old.
    pub async fn end_txn(&mut self, end: Position, more_buffered: bool) -> Result<(), ConnectorError> {
        self.batch_end = self.batch_end.take().max(Some(end));
        self.batch_txns += 1;
        if !more_buffered && self.due() {
            self.commit_batch().await?;
        } else if self.batch_txns >= BATCH_TXNS
            || self.batch_started.elapsed() >= self.batch_max
            || self.sql.len() >= FLUSH_BYTES
        {
            // More is ready: decode it while this batch runs.
            self.dispatch().await?;
        }
        Ok(())
    }

    /// Whether received transactions wait to commit and may now: the batch
    /// is `BatchApplyTimeoutMin` old (at once without it). The streams
    /// commit a due batch when nothing more is ready, and at each tick.
    pub fn due(&self) -> bool {
        self.pending() && (!self.batch_open || self.batch_started.elapsed() >= self.batch_min)
    }

    /// A caught-up mark reached once the batch commits.
    pub fn mark(&mut self, n: u64) {
        self.batch_mark = self.batch_mark.max(n);
    }

    fn begin_batch(&mut self) {
        if !self.batch_open {
            self.sql.push_str(self.dialect.begin());
            self.sql.push(';');
            self.batch_open = true;
            self.batch_started = Instant::now();
        }
    }

    fn close_insert(&mut self) {
        if let Some(open) = self.open_insert.take() {
            self.sql.push_str(&open.suffix);
            self.sql.push(';');
        }
    }

    fn push_stmt(&mut self, stmt: &str) {
        self.close_insert();
        self.sql.push_str(stmt);
        self.sql.push(';');
    }

    /// Sends what the open batch holds before it ends (it grew large), on
    /// the fenced session; the rest of the batch stays there.
    async fn send(&mut self) -> Result<(), ConnectorError> {
        self.settle().await?;
        self.sequential = true;
        self.flush_nets();
        self.close_insert();
        if self.sql.is_empty() {
            return Ok(());
        }
        let sql = std::mem::take(&mut self.sql);
        let what = self.batch_what();
        let missing = self.lanes[0].execute(&sql, &what).await?;
        crate::health::applied(&self.task, sql.len());
        if !missing.is_empty() {
            // Recorded in the batch these rows are in, counted with it.
            let found = self
                .checks
                .found(&missing, &self.recorder(), self.dialect)
                .map_err(ConnectorError::Definite)?;
            for stmt in &found.records {
                self.push_stmt(stmt);
            }
            for (&t, (_, n)) in &found.counts {
                self.counters(t).conflicts += n;
            }
            self.land(found);
        }
        Ok(())
    }

    /// The open batch, in errors.
    fn batch_what(&self) -> String {
        match &self.batch_end {
            Some(end) => format!(
                "task {}: applying changes to the target (batch ending after {end})",
                self.task
            ),
            None => format!("task {}: applying changes to the target (first batch)", self.task),
        }
    }

    fn literal(&self, t: usize, col: usize, v: &Value) -> Result<String, ValueError> {
        self.dialect.literal(v, &self.tables[t].columns[col].1)
    }

    /// The literal of an image value for column `col`, converted first
    /// when a `change-data-type` rule retypes the column.
    fn converted_literal(&self, t: usize, col: usize, v: &Value) -> Result<String, ValueError> {
        match &self.tables[t].retype[col] {
            Some(dt) => {
                let v = dt.convert(v).map_err(|e| {
                    ValueError(format!(
                        "column {} retyped by change-data-type: {e}",
                        self.tables[t].columns[col].0
                    ))
                })?;
                self.literal(t, col, &v)
            }
            None => self.literal(t, col, v),
        }
    }

    /// A row image must have the width the table was mapped from.
    fn check_width(&self, t: usize, len: usize) -> Result<&TargetTable, ValueError> {
        let table = &self.tables[t];
        if len != table.source_width {
            return Err(ValueError(format!(
                "row image has {len} columns, the table {}",
                table.source_width
            )));
        }
        Ok(table)
    }

    /// The target-ordered literals of a row image (`None`: not sent).
    fn literals(&self, t: usize, row: &[Option<Value>]) -> Result<Vec<Option<String>>, ValueError> {
        let table = self.check_width(t, row.len())?;
        let mut lits = (0..table.source_index.len())
            .map(|i| {
                row[table.source_index[i]]
                    .as_ref()
                    .map(|v| self.converted_literal(t, i, v))
                    .transpose()
            })
            .collect::<Result<Vec<_>, _>>()?;
        for (j, c) in table.computed.iter().enumerate() {
            let v = c.eval(|i| row[i].as_ref())?;
            lits.push(
                v.map(|v| self.literal(t, table.source_index.len() + j, &v))
                    .transpose()?,
            );
        }
        // Before-image columns: not part of an image (an update fills them
        // from its old one, see `before_image`).
        lits.extend(table.before.iter().map(|_| None));
        Ok(lits)
    }

    fn text_literal(&self, s: &str) -> String {
        self.dialect.text_literal(s)
    }

    /// Records a change the target cannot take in `ferry.apply_exceptions`,
    /// in the open batch, and counts it.
    pub fn exception(&mut self, t: usize, reason: &str, row: &dyn std::fmt::Debug) {
        self.begin_batch();
        let name = self.tables[t].display.clone();
        tracing::warn!(table = %name, %reason, "change cannot be applied on the target; recorded in the control schema's apply_exceptions");
        let stmt = format!(
            "INSERT INTO {} (task, table_name, phase, reason, row_image) VALUES ({}, {}, 'cdc', {}, {})",
            self.control.table("apply_exceptions"),
            self.text_literal(&self.task),
            self.text_literal(&name),
            self.text_literal(reason),
            self.text_literal(&format!("{row:?}").replace('\0', "\\0")),
        );
        self.push_stmt(&stmt);
        self.counters(t).exceptions += 1;
        match self.data_error_policy {
            ErrorAction::SuspendTable => {
                self.stop_table(t, format!("a change cannot be stored on the target ({reason}); DataErrorPolicy SUSPEND_TABLE stops the table"))
            }
            ErrorAction::StopTask if self.fatal.is_none() => {
                self.fatal = Some(format!(
                    "table {name}: a change cannot be stored on the target ({reason}); DataErrorPolicy STOP_TASK stops the task"
                ))
            }
            _ => {}
        }
    }

    /// Notes that a change to table `t` touched the rows `images` (all of
    /// them when empty, as a truncate does).
    fn note_change(&mut self, t: usize, images: &[&Image]) {
        let table = &self.tables[t];
        if table.tracking == ChangeTracking::Off {
            return;
        }
        let mut changed = ChangedSegments {
            all: images.is_empty(),
            ..Default::default()
        };
        for row in images {
            match table.segment_of(row) {
                Some(s) => {
                    changed.segments.insert(s);
                }
                None => changed.all = true,
            }
        }
        self.batch_changed.entry(t).or_default().add(&changed);
    }

    fn counters(&mut self, t: usize) -> &mut TableCounters {
        let name = &self.tables[t].display;
        if !self.batch_counters.contains_key(name) {
            self.batch_counters.insert(name.clone(), TableCounters::default());
        }
        self.batch_counters.get_mut(name).expect("inserted above")
    }

    /// `col = lit AND ...` over the key, or null-safe over every sent
    /// column for a table without one.
    fn row_match(&self, t: usize, lits: &[Option<String>]) -> String {
        let table = &self.tables[t];
        let cols: Vec<usize> = if table.key.is_empty() {
            (0..table.columns.len()).collect()
        } else {
            table.key.clone()
        };
        let parts: Vec<String> = cols
            .iter()
            .filter_map(|&i| {
                let name = &table.columns[i].0;
                let lit = lits[i].as_ref()?;
                Some(if table.key.is_empty() {
                    self.dialect.null_safe_eq(name, lit)
                } else {
                    format!("{name} = {lit}")
                })
            })
            .collect();
        parts.join(" AND ")
    }

    /// `WHERE ...` matching one row: by key, or for a table without a key
    /// one row equal to the old image (duplicates stay duplicates).
    fn one_row(&self, t: usize, lits: &[Option<String>]) -> String {
        let cond = self.row_match(t, lits);
        let table = &self.tables[t];
        self.dialect.one_row(&table.qualified, &cond, !table.key.is_empty())
    }

    /// Adds a check that `keys` (key literals) of table `t` exist, for
    /// changes that expect them (see `conflict`), and returns its number.
    fn check_keys(&mut self, t: usize, conflict: Conflict, keys: &[Vec<String>]) -> u64 {
        let table = &self.tables[t];
        let names = table.key.iter().map(|&i| table.columns[i].0.clone()).collect();
        self.checks.add(t, &table.display, conflict, names, keys.to_vec())
    }

    /// The query of check `check` of `keys` of table `t`, apart from the
    /// statement applying them: it finds the keys the table lacks
    /// (`expected`) or holds.
    fn keys_check(&self, t: usize, check: u64, keys: &[Vec<String>], expected: bool) -> String {
        let table = &self.tables[t];
        let key_cols: Vec<(String, String)> = table.key.iter().map(|&i| table.columns[i].clone()).collect();
        self.dialect
            .rows_check(check, &table.qualified, &key_cols, keys, expected)
    }

    /// Puts a check of the row `row` names into the batch, before a change
    /// in order that expects it to exist, or (an insert) not to (see
    /// `conflict`).
    fn check_row(&mut self, t: usize, conflict: Conflict, row: &[Option<String>]) {
        let cond = self.row_match(t, row);
        let table = &self.tables[t];
        let check = self
            .checks
            .add(t, &table.display, conflict, vec![], vec![vec![cond.clone()]]);
        let stmt = self
            .dialect
            .row_check(check, 0, &table.qualified, &cond, conflict.expects_row());
        self.push_stmt(&stmt);
    }

    fn recorder(&self) -> Recorder {
        Recorder {
            task: self.task.clone(),
            exceptions_table: self.control.table("apply_exceptions"),
            policy: self.missing,
        }
    }

    /// Acts on conflicts found: stops the tables their policy stops, and
    /// fails the stream where it stops the task (counts are the caller's).
    fn land(&mut self, found: Found) {
        for (t, why) in found.stops {
            self.stop_table(t, why);
        }
        if let Some(why) = found.fatal {
            self.fatal.get_or_insert(why);
        }
    }

    /// Whether inserts into table `t` are checked for a key the target
    /// holds: a keyed table past an exact cut, under an
    /// ApplyErrorInsertPolicy other than INSERT_RECORD (see `conflict`).
    fn checks_inserts(&self, t: usize) -> bool {
        let table = &self.tables[t];
        !table.key.is_empty() && !table.replay && self.missing.insert.is_some()
    }

    /// Writes a row that takes image `lits` whether or not the target holds
    /// its key.
    fn upsert(&mut self, t: usize, lits: Vec<String>) {
        self.insert_row(t, lits, false);
    }

    /// Writes a row that takes image `lits` unless the target holds its key
    /// already (a checked insert: see `conflict`).
    fn insert_new(&mut self, t: usize, lits: Vec<String>) {
        self.insert_row(t, lits, true);
    }

    fn insert_row(&mut self, t: usize, lits: Vec<String>, keep: bool) {
        let key: Vec<&str> = self.tables[t].key.iter().map(|&i| lits[i].as_str()).collect();
        let key = key.join("\u{1f}");
        if let Some(open) = &mut self.open_insert {
            // A key already in this statement starts a new one: PostgreSQL's
            // ON CONFLICT cannot update a row twice in one statement.
            if open.table == t
                && open.keep == keep
                && open.rows < MAX_VALUES_PER_INSERT
                && (key.is_empty() || open.keys.insert(key.clone()))
            {
                open.rows += 1;
                self.sql.push(',');
                push_row(&mut self.sql, lits);
                return;
            }
        }
        self.close_insert();
        let table = &self.tables[t];
        let cols: Vec<&str> = table.columns.iter().map(|c| c.0.as_str()).collect();
        let suffix = if table.key.is_empty() {
            String::new()
        } else if keep {
            self.dialect.keep_suffix(&cols, &table.key)
        } else {
            self.dialect.upsert_suffix(&cols, &table.key)
        };
        self.sql.push_str(&format!(
            "INSERT INTO {} ({}) VALUES ",
            table.qualified,
            cols.join(", ")
        ));
        push_row(&mut self.sql, lits);
        self.open_insert = Some(OpenInsert {
            table: t,
            rows: 1,
            keep,
            suffix,
            keys: if key.is_empty() {
                HashSet::new()
            } else {
                HashSet::from([key])
            },
        });
    }

    /// The literals of a whole row, in target column order.
    fn row_literals(&self, t: usize, row: &[Value]) -> Result<Vec<String>, ValueError> {
        let table = self.check_width(t, row.len())?;
        let mut lits = (0..table.source_index.len())
            .map(|i| self.converted_literal(t, i, &row[table.source_index[i]]))
            .collect::<Result<Vec<_>, _>>()?;
        for (j, c) in table.computed.iter().enumerate() {
            let v = c.eval(|i| row.get(i))?.unwrap_or(Value::Null);
            lits.push(self.literal(t, table.source_index.len() + j, &v)?);
        }
        lits.extend(table.before.iter().map(|_| "NULL".to_string()));
        Ok(lits)
    }

    /// Folds a change of set-based table `t` into the batch's net changes
    /// and counts it. Gives the change back when it must be applied in
    /// order: a value the target cannot take (the exception path), an
    /// update that changes the key or leaves columns out, an update of a
    /// row the batch deleted.
    fn add_net(&mut self, t: usize, op: Op) -> Result<(), Op> {
        let table = &self.tables[t];
        let key_of =
            |lits: &[Option<String>]| -> Option<Vec<String>> { table.key.iter().map(|&i| lits[i].clone()).collect() };
        let (key, net) = match &op {
            Op::Insert(row) => {
                let Ok(lits) = self.row_literals(t, row) else {
                    return Err(op);
                };
                let key = table.key.iter().map(|&i| lits[i].clone()).collect();
                if self.checks_inserts(t) {
                    (key, Net::Insert(lits))
                } else {
                    (key, Net::Upsert(lits))
                }
            }
            Op::Update { before, after } => {
                let Ok(new) = self.literals(t, after) else {
                    return Err(op);
                };
                // A log without the old image (PostgreSQL, key unchanged)
                // repeats the new one as `before`: encoded once.
                let old = if before == after {
                    None
                } else {
                    let Ok(old) = self.literals(t, before) else {
                        return Err(op);
                    };
                    Some(old)
                };
                let key = match (key_of(old.as_ref().unwrap_or(&new)), key_of(&new)) {
                    (Some(o), Some(n)) if o == n => n,
                    _ => return Err(op),
                };
                let Some(image) = new.into_iter().collect::<Option<Vec<String>>>() else {
                    return Err(op);
                };
                (
                    key,
                    if table.replay || self.insert_missing {
                        Net::Upsert(image)
                    } else {
                        Net::Update(image)
                    },
                )
            }
            Op::Delete(row) => {
                let Ok(old) = self.literals(t, row) else { return Err(op) };
                let Some(key) = key_of(&old) else { return Err(op) };
                (key, Net::Delete)
            }
        };
        let bytes: usize = match &net {
            Net::Upsert(i) | Net::Update(i) | Net::Insert(i) => i.iter().map(String::len).sum(),
            Net::Delete => key.iter().map(String::len).sum(),
        };
        let checked = match &net {
            _ if table.replay => None,
            Net::Update(_) => Some(Conflict::Update),
            Net::Delete => Some(Conflict::Delete),
            Net::Insert(_) => Some(Conflict::Insert),
            // An insert, or INSERT_RECORD's upsert of an update.
            Net::Upsert(_) => None,
        };
        let rows = self.net.entry(t).or_default();
        match rows.at.get(&key) {
            Some(&i) => match rows.rows[i].net.then(net) {
                Some(n) => rows.rows[i].net = n,
                None => return Err(op),
            },
            None => {
                rows.at.insert(key.clone(), rows.rows.len());
                rows.rows.push(NetRow { key, net, checked });
            }
        }
        rows.bytes += bytes;
        let c = self.counters(t);
        match op {
            Op::Insert(_) => c.inserts += 1,
            Op::Update { .. } => c.updates += 1,
            Op::Delete(_) => c.deletes += 1,
        }
        Ok(())
    }

    /// Writes table `t`'s net changes into the batch on the fenced session,
    /// before a change of the table that goes in order: the rest of the
    /// table's batch stays on that session.
    fn flush_net(&mut self, t: usize) {
        self.ordered.insert(t);
        if let Some(net) = self.net.remove(&t) {
            self.write_net(t, net.rows);
        }
    }

    /// Writes net changes `rows` of table `t` into `sql`: the checks, then
    /// deletes, updates, upserts and inserts, each as few statements as the
    /// dialect allows. Every key is in one of the four, so their order
    /// changes nothing.
    fn write_net(&mut self, t: usize, rows: Vec<NetRow>) {
        let (mut deletes, mut upserts, mut inserts) = (vec![], vec![], vec![]);
        let (mut update_keys, mut updates) = (vec![], vec![]);
        // Keys checked apart from their statement, by what they expected.
        let mut checked: [Vec<Vec<String>>; 3] = [vec![], vec![], vec![]];
        for NetRow { key, net, checked: c } in rows {
            if let Net::Update(image) = net {
                // Checked with its statement, below.
                update_keys.push(key);
                updates.push(image);
                continue;
            }
            match c {
                Some(Conflict::Update) => checked[0].push(key.clone()),
                Some(Conflict::Delete) => checked[1].push(key.clone()),
                Some(Conflict::Insert) => checked[2].push(key.clone()),
                None => {}
            }
            match net {
                Net::Delete => deletes.push(key),
                Net::Upsert(image) => upserts.push(image),
                Net::Insert(image) => inserts.push(image),
                Net::Update(_) => unreachable!("taken above"),
            }
        }
        let mut stmts = vec![];
        for (conflict, keys) in [Conflict::Update, Conflict::Delete, Conflict::Insert]
            .into_iter()
            .zip(checked)
        {
            for chunk in keys.chunks(MAX_VALUES_PER_INSERT) {
                let check = self.check_keys(t, conflict, chunk);
                stmts.push(self.keys_check(t, check, chunk, conflict.expects_row()));
            }
        }
        let table = &self.tables[t];
        let key_cols: Vec<&str> = table.key.iter().map(|&i| table.columns[i].0.as_str()).collect();
        for chunk in deletes.chunks(MAX_VALUES_PER_INSERT) {
            let (cols, keys): (String, Vec<String>) = if key_cols.len() == 1 {
                (key_cols[0].to_string(), chunk.iter().map(|k| k[0].clone()).collect())
            } else {
                (
                    format!("({})", key_cols.join(", ")),
                    chunk.iter().map(|k| format!("({})", k.join(", "))).collect(),
                )
            };
            stmts.push(format!(
                "DELETE FROM {} WHERE {cols} IN ({})",
                table.qualified,
                keys.join(", ")
            ));
        }
        // With only key columns, an update that keeps the key changes
        // nothing, but its row is still checked.
        let key_only = table.columns.len() == table.key.len();
        for (chunk, keys) in updates
            .chunks(MAX_VALUES_PER_INSERT)
            .zip(update_keys.chunks(MAX_VALUES_PER_INSERT))
        {
            let check = self.check_keys(t, Conflict::Update, keys);
            let table = &self.tables[t];
            let set_form = (!key_only)
                .then(|| {
                    self.dialect
                        .update_rows(check, &table.qualified, &table.columns, &table.key, chunk)
                })
                .flatten();
            if let Some(stmt) = set_form {
                stmts.push(stmt);
                continue;
            }
            stmts.push(self.keys_check(t, check, keys, true));
            if key_only {
                continue;
            }
            for image in chunk {
                // `col = literal` over the key columns or the others.
                let pairs = |key_columns: bool, sep: &str| {
                    table
                        .columns
                        .iter()
                        .zip(image)
                        .enumerate()
                        .filter(|(i, _)| table.key.contains(i) == key_columns)
                        .map(|(_, (c, l))| format!("{} = {l}", c.0))
                        .collect::<Vec<_>>()
                        .join(sep)
                };
                stmts.push(format!(
                    "UPDATE {} SET {} WHERE {}",
                    table.qualified,
                    pairs(false, ", "),
                    pairs(true, " AND ")
                ));
            }
        }
        for stmt in stmts {
            self.push_stmt(&stmt);
        }
        for image in upserts {
            self.upsert(t, image);
        }
        self.close_insert();
        for image in inserts {
            self.insert_new(t, image);
        }
        self.close_insert();
    }

    /// Writes every table's net changes into the batch on the fenced
    /// session, where the rest of the batch stays.
    fn flush_nets(&mut self) {
        self.sequential = true;
        while let Some(&t) = self.net.keys().next() {
            self.flush_net(t);
        }
    }

    /// Writes the ended batch's net changes out and returns the statements
    /// of lanes `1..`: each key goes to the lane its hash picks, except the
    /// tables that must stay on the fenced session (`ordered`, or the whole
    /// batch when `sequential`).
    fn spread_nets(&mut self) -> Vec<String> {
        let n = self.lanes.len();
        let mut rest = vec![String::new(); n.saturating_sub(1)];
        if n <= 1 || self.sequential {
            self.flush_nets();
            self.close_insert();
            return rest;
        }
        // An INSERT left open belongs to the fenced session's statements.
        self.close_insert();
        for (t, net) in std::mem::take(&mut self.net) {
            // A checked key that ends deleted, and a checked insert, commit
            // with the position (see `conflict`).
            let unrepeatable = net
                .rows
                .iter()
                .any(|r| r.checked == Some(Conflict::Insert) || (r.checked.is_some() && r.net == Net::Delete));
            if self.ordered.contains(&t) || unrepeatable {
                self.write_net(t, net.rows);
                continue;
            }
            let mut parts: Vec<Vec<NetRow>> = (0..n).map(|_| vec![]).collect();
            // Lane 0 keeps no share where disjoint keys can wait on each
            // other (see "Parallel lanes" above).
            let first = usize::from(self.lanes[0].disjoint_keys_wait());
            for row in net.rows {
                parts[first + lane_of(&row.key, n - first)].push(row);
            }
            for (lane, part) in parts.into_iter().enumerate() {
                if part.is_empty() {
                    continue;
                }
                if lane == 0 {
                    self.write_net(t, part);
                } else {
                    // `write_net` leaves no INSERT open: the swap is whole.
                    std::mem::swap(&mut self.sql, &mut rest[lane - 1]);
                    self.write_net(t, part);
                    std::mem::swap(&mut self.sql, &mut rest[lane - 1]);
                }
            }
        }
        rest
    }

    /// Applies one change to table `t` inside the open batch.
    pub async fn apply(&mut self, t: usize, op: Op) -> Result<(), ConnectorError> {
        if self.tables[t].stopped.is_some() {
            return Ok(());
        }
        let table = &self.tables[t];
        let Some(filter) = &table.filter else {
            return self.apply_op(t, op).await;
        };
        match filter.narrow(op) {
            Ok(ops) => {
                for op in ops.into_iter().flatten() {
                    self.apply_op(t, op).await?;
                }
            }
            // A change the filter cannot judge: the table stops (its status
            // says why) rather than guess which rows it holds.
            Err(e) => {
                let reason = format!("table {}: source filter: {e}", table.display);
                self.stop_table(t, reason);
            }
        }
        Ok(())
    }

    /// Fills an update's before-image columns in its new literals from its
    /// old ones (NULL where the change did not carry the old value).
    fn before_image(&self, t: usize, old: &[Option<String>], new: &mut [Option<String>]) {
        let table = &self.tables[t];
        let start = table.source_index.len() + table.computed.len();
        for (k, &at) in table.before.iter().enumerate() {
            let lit = table
                .source_index
                .iter()
                .position(|&i| i == at)
                .and_then(|j| old[j].clone())
                .unwrap_or_else(|| "NULL".into());
            new[start + k] = Some(lit);
        }
    }

    /// Cuts a change's LOB values to the table's limit: the new image's cut
    /// is recorded and counted in the open batch; an old image is cut
    /// silently, so that it names the row as the target holds it. `None`
    /// when DataTruncationErrorPolicy stops the table or the task instead.
    fn cut_lobs(&mut self, t: usize, mut op: Op) -> Option<Op> {
        let table = &self.tables[t];
        let cut = table.lob.as_ref()?;
        let cuts = match &mut op {
            Op::Insert(row) => cut.row(row),
            Op::Update { before, after } => {
                cut.image(before);
                cut.image(after)
            }
            Op::Delete(row) => {
                cut.image(row);
                vec![]
            }
        };
        if cuts.is_empty() {
            return Some(op);
        }
        // The row's key names it; a keyless table's other columns do.
        let at: Vec<usize> = if table.key.is_empty() {
            (0..table.image.len()).filter(|i| !cut.covers(*i)).collect()
        } else {
            table.key.iter().map(|&k| table.source_index[k]).collect()
        };
        let key = {
            let value = |i: usize| match &op {
                Op::Insert(row) => row.get(i),
                Op::Update { after, .. } => after.get(i).and_then(Option::as_ref),
                Op::Delete(_) => None,
            };
            key_image(at.iter().filter_map(|&i| Some((table.image[i].as_str(), value(i)?))))
        };
        let (reason, policy, name) = (cut.reason(&cuts), cut.on_truncation, table.display.clone());
        let stop = cut.stop_reason(&cuts, &key);
        match policy {
            ErrorAction::SuspendTable => {
                self.stop_table(t, stop);
                None
            }
            ErrorAction::StopTask => {
                if self.fatal.is_none() {
                    self.fatal = Some(format!("table {name}: {stop}"));
                }
                None
            }
            ErrorAction::LogError | ErrorAction::IgnoreRecord => {
                self.begin_batch();
                tracing::warn!(table = %name, %key, %reason, "LOB value cut to the task's limit; recorded in the control schema's apply_exceptions");
                let stmt = format!(
                    "INSERT INTO {} (task, table_name, phase, reason, row_image) VALUES ({}, {}, 'cdc', {}, {})",
                    self.control.table("apply_exceptions"),
                    self.text_literal(&self.task),
                    self.text_literal(&name),
                    self.text_literal(&reason),
                    self.text_literal(&key.replace('\0', "\\0")),
                );
                self.push_stmt(&stmt);
                self.counters(t).truncated += 1;
                Some(op)
            }
        }
    }

    async fn apply_op(&mut self, t: usize, op: Op) -> Result<(), ConnectorError> {
        let op = match self.tables[t].lob {
            Some(_) => match self.cut_lobs(t, op) {
                Some(op) => op,
                None => return Ok(()),
            },
            None => op,
        };
        self.begin_batch();
        self.batch_changes += 1;
        let has_key = !self.tables[t].key.is_empty();
        match &op {
            Op::Insert(_) => {}
            Op::Update { before, after } => self.note_change(t, &[before, after]),
            Op::Delete(row) => self.note_change(t, &[row]),
        }
        let op = if self.set_based && self.tables[t].independent {
            match self.add_net(t, op) {
                Ok(()) => return self.flush_if_full().await,
                Err(op) => {
                    // In order, after what the batch holds for the table.
                    self.flush_net(t);
                    op
                }
            }
        } else {
            op
        };
        match op {
            Op::Insert(row) => {
                let image: Image = row.into_iter().map(Some).collect();
                self.note_change(t, &[&image]);
                match self.literals(t, &image) {
                    Ok(lits) => {
                        let checked = self.checks_inserts(t);
                        if checked {
                            self.check_row(t, Conflict::Insert, &lits);
                        }
                        let lits = lits.into_iter().map(|l| l.unwrap_or_else(|| "NULL".into())).collect();
                        self.insert_row(t, lits, checked);
                        self.counters(t).inserts += 1;
                    }
                    Err(e) => self.exception(t, &e.0, &image),
                }
            }
            Op::Update { before, after } => match (self.literals(t, &before), self.literals(t, &after)) {
                (Ok(old), Ok(mut new)) => {
                    self.before_image(t, &old, &mut new);
                    let whole = new.iter().all(Option::is_some);
                    let key_changed = self.tables[t].key.iter().any(|&i| new[i].is_some() && old[i] != new[i]);
                    if has_key && whole && (self.tables[t].replay || self.insert_missing) {
                        // Idempotent: delete the old key if it changed, upsert the new image.
                        if key_changed {
                            let stmt = format!("DELETE FROM {} {}", self.tables[t].qualified, self.one_row(t, &old));
                            self.push_stmt(&stmt);
                        }
                        self.upsert(t, new.into_iter().flatten().collect());
                    } else {
                        // No key, columns left out, or no replay: write what was sent.
                        if !self.tables[t].replay {
                            self.check_row(t, Conflict::Update, &old);
                        }
                        let table = &self.tables[t];
                        let sets: Vec<String> = table
                            .columns
                            .iter()
                            .zip(&new)
                            .filter_map(|(c, v)| Some(format!("{} = {}", c.0, v.as_ref()?)))
                            .collect();
                        if !sets.is_empty() {
                            let stmt = format!(
                                "UPDATE {} SET {} {}",
                                table.qualified,
                                sets.join(", "),
                                self.one_row(t, &old)
                            );
                            self.push_stmt(&stmt);
                        }
                    }
                    self.counters(t).updates += 1;
                }
                (Err(e), _) => self.exception(t, &e.0, &before),
                (_, Err(e)) => self.exception(t, &e.0, &after),
            },
            Op::Delete(row) => match self.literals(t, &row) {
                Ok(old) => {
                    if !self.tables[t].replay {
                        self.check_row(t, Conflict::Delete, &old);
                    }
                    let stmt = format!("DELETE FROM {} {}", self.tables[t].qualified, self.one_row(t, &old));
                    self.push_stmt(&stmt);
                    self.counters(t).deletes += 1;
                }
                Err(e) => self.exception(t, &e.0, &row),
            },
        }
        self.flush_if_full().await
    }

    /// Empties tables `ts` together, as one source TRUNCATE did (tables
    /// linked by foreign keys can only be truncated together).
    pub async fn truncate(
        &mut self,
        ts: &[usize],
        restart_identity: bool,
        cascade: bool,
    ) -> Result<(), ConnectorError> {
        let ts: Vec<usize> = ts
            .iter()
            .copied()
            .filter(|&t| self.tables[t].stopped.is_none())
            .collect();
        if ts.is_empty() {
            return Ok(());
        }
        if !self.apply_truncates {
            for &t in &ts {
                tracing::info!(table = %self.tables[t].display, "TRUNCATE on the source not applied (HandleSourceTableTruncated is false)");
            }
            return Ok(());
        }
        self.begin_batch();
        self.batch_changes += 1;
        for &t in &ts {
            self.note_change(t, &[]);
        }
        self.push_truncate(&ts, restart_identity, cascade);
        self.flush_if_full().await
    }

    fn push_truncate(&mut self, ts: &[usize], restart_identity: bool, cascade: bool) {
        // CASCADE reaches tables beyond `ts`: everything before goes first.
        self.flush_nets();
        let names: Vec<&str> = ts.iter().map(|&t| self.tables[t].qualified.as_str()).collect();
        let stmts = self.dialect.truncate(&names, restart_identity, cascade);
        for stmt in stmts {
            self.push_stmt(&stmt);
        }
        for &t in ts {
            self.counters(t).truncates += 1;
        }
    }

    async fn flush_if_full(&mut self) -> Result<(), ConnectorError> {
        let held: usize = self.net.values().map(|n| n.bytes).sum();
        if self.sql.len() + held >= FLUSH_BYTES {
            self.send().await?;
        }
        Ok(())
    }

    /// Commits the open batch with its position, fenced by epoch, and
    /// waits until it is committed.
    pub async fn commit_batch(&mut self) -> Result<(), ConnectorError> {
        self.dispatch().await?;
        self.settle().await
    }

    /// Sends the open batch off to commit with its position, after the
    /// batch before it committed; [`Applier::settle`] learns the outcome.
    async fn dispatch(&mut self) -> Result<(), ConnectorError> {
        if let Some(why) = self.fatal.take() {
            return Err(ConnectorError::Definite(why));
        }
        self.settle().await?;
        if !self.batch_open {
            // Nothing to write, but the position still moves on.
            self.applied = self.applied.take().max(self.batch_end.clone());
            self.marks_reached = self.marks_reached.max(self.batch_mark);
            self.end_batch();
            return Ok(());
        }
        let rest = self.spread_nets();
        let first = std::mem::take(&mut self.sql);
        let what = self.batch_what();
        let note = BatchNote {
            changes: self
                .batch_counters
                .values()
                .map(|c| c.inserts + c.updates + c.deletes)
                .sum(),
            transactions: self.batch_txns,
            source_commit_secs: (self.batch_newest_commit_ms > 0)
                .then_some((self.batch_newest_commit_ms / 1000) as i64),
            now_secs: (ferry_common::now_ms() / 1000) as i64,
        };
        let run = tokio::spawn(fly(
            std::mem::take(&mut self.lanes),
            first,
            rest,
            Fence {
                task: self.task.clone(),
                epoch: self.epoch,
                end: self.batch_end.clone(),
                mark: self.batch_mark as i64,
                note,
                checks: std::mem::take(&mut self.checks),
                recorder: self.recorder(),
            },
            what,
        ));
        self.flight = Some(Flight {
            run,
            end: self.batch_end.clone(),
            mark: self.batch_mark,
            counters: std::mem::take(&mut self.batch_counters),
            changed: std::mem::take(&mut self.batch_changed),
        });
        self.batch_open = false;
        self.end_batch();
        Ok(())
    }

    fn end_batch(&mut self) {
        self.batch_txns = 0;
        self.batch_changes = 0;
        self.batch_oldest_commit_ms = 0;
        self.batch_newest_commit_ms = 0;
        self.ordered.clear();
        self.sequential = false;
    }

    /// Waits for the batch in flight, if any: once committed, its position,
    /// mark and counts are the stream's.
    async fn settle(&mut self) -> Result<(), ConnectorError> {
        let Some(f) = self.flight.take() else {
            return Ok(());
        };
        let (lanes, outcome) = f.run.await.map_err(|e| {
            ConnectorError::Definite(format!("task {}: the task applying a batch failed: {e}", self.task))
        })?;
        self.lanes = lanes;
        let found = outcome?;
        self.applied = f.end;
        self.marks_reached = self.marks_reached.max(f.mark);
        let mut counters = f.counters;
        for (name, n) in found.counts.values() {
            counters.entry(name.clone()).or_default().conflicts += n;
        }
        self.land(found);
        for (t, c) in counters {
            self.rows_since_report += c.inserts + c.updates + c.deletes;
            self.unreported.entry(t).or_default().add(&c);
        }
        for (t, c) in f.changed {
            self.unreported_changed.entry(t).or_default().add(&c);
        }
        Ok(())
    }

    /// The stream's state for the coordinator; `reported` clears what it
    /// carried once stored.
    pub fn progress(
        &self,
        checkpoint: Option<Position>,
        idle: bool,
        latency_source_ms: u64,
        elapsed_s: f64,
    ) -> CdcProgress {
        CdcProgress {
            applied: checkpoint,
            marks_reached: self.marks_reached,
            latency_source_ms: if idle { 0 } else { latency_source_ms },
            latency_target_ms: if self.batch_oldest_commit_ms == 0 {
                0
            } else {
                ferry_common::now_ms().saturating_sub(self.batch_oldest_commit_ms)
            },
            incoming_changes: self.batch_changes,
            throughput_rows_per_s: self.rows_since_report as f64 / elapsed_s.max(0.001),
            retained_wal_bytes: 0,
            applied_delta: self.unreported.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            table_errors: self.table_errors.clone(),
            tables_altered: self.tables_altered.clone(),
            new_tables: vec![],
            tables_dropped: self.tables_dropped.clone(),
            changed: self
                .unreported_changed
                .iter()
                .map(|(&t, c)| (self.tables[t].display.clone(), c.clone()))
                .collect(),
            source_gtid: String::new(),
            stop_reached: false,
        }
    }

    pub fn reported(&mut self) {
        self.unreported.clear();
        self.unreported_changed.clear();
        self.table_errors.clear();
        self.tables_altered.clear();
        self.tables_dropped.clear();
        self.rows_since_report = 0;
    }
}

#[cfg(test)]
mod tests {
    //! The applier against an in-memory target: the SQL it sends through
    //! each dialect, and the epoch fence it commits under.
    use super::*;
    use crate::engine::mysql::target::MysqlDialect;
    use crate::engine::postgres::target::PgDialect;
    use ferry_common::schema::{Column, PrimaryKey};
    use std::sync::{Arc, Mutex};

    /// A WAL position, for short.
    fn at(lsn: u64) -> Position {
        Position::Wal(ferry_common::position::Lsn(lsn))
    }

    /// The apply-state row, shared by the streams of one target.
    #[derive(Default)]
    struct State {
        position: Option<Position>,
        epoch: i64,
        mark: u64,
        committed: Vec<String>,
        /// Each commit: the session's id, its statements, whether it
        /// recorded a position.
        commits: Vec<(usize, Vec<String>, bool)>,
        /// What each recorded position told the optional control tables.
        notes: Vec<BatchNote>,
        /// What the next execute holding a check answers (rows missing).
        missing: Vec<(u64, u64)>,
    }

    /// A target session: what it sent since its last commit, and the shared
    /// apply state it commits into.
    struct MockTarget {
        dialect: &'static dyn ApplyDialect,
        state: Arc<Mutex<State>>,
        open: Vec<String>,
        staged: Option<(Option<Position>, u64)>,
        set_based: bool,
        id: usize,
        /// Disjoint keys wait on each other here (as on InnoDB).
        keys_wait: bool,
        /// Executes that fail as a deadlock victim does, before one passes.
        deadlocks: u32,
    }

    impl MockTarget {
        fn new(dialect: &'static dyn ApplyDialect, state: &Arc<Mutex<State>>) -> MockTarget {
            MockTarget {
                dialect,
                state: state.clone(),
                open: vec![],
                staged: None,
                set_based: false,
                id: 0,
                keys_wait: false,
                deadlocks: 0,
            }
        }
    }

    impl ChangeTarget for MockTarget {
        fn dialect(&self) -> &'static dyn ApplyDialect {
            self.dialect
        }
        fn set_based(&self) -> bool {
            self.set_based
        }
        fn disjoint_keys_wait(&self) -> bool {
            self.keys_wait
        }
        async fn take_over(&mut self, task: &str, epoch: i64) -> Result<(Option<Position>, u64), ConnectorError> {
            let mut s = self.state.lock().unwrap();
            if s.epoch > epoch {
                return Err(ConnectorError::Definite(format!(
                    "task {task}: epoch {epoch} superseded"
                )));
            }
            s.epoch = epoch;
            Ok((s.position.clone(), s.mark))
        }
        async fn begin_lane(&mut self, _task: &str, epoch: i64) -> Result<bool, ConnectorError> {
            Ok(self.state.lock().unwrap().epoch == epoch)
        }
        async fn execute(&mut self, sql: &str, _what: &str) -> Result<Vec<(u64, u64)>, ConnectorError> {
            if self.deadlocks > 0 {
                self.deadlocks -= 1;
                return Err(ConnectorError::Transient("Deadlock found (MySQL error 1213)".into()));
            }
            self.open.push(sql.to_string());
            if sql.contains("SELECT ") {
                return Ok(std::mem::take(&mut self.state.lock().unwrap().missing));
            }
            Ok(vec![])
        }
        async fn record_position(
            &mut self,
            _task: &str,
            epoch: i64,
            end: Option<&Position>,
            mark: i64,
            note: &BatchNote,
        ) -> Result<bool, ConnectorError> {
            if self.state.lock().unwrap().epoch != epoch {
                return Ok(false);
            }
            self.state.lock().unwrap().notes.push(*note);
            self.staged = Some((end.cloned(), mark as u64));
            Ok(true)
        }
        async fn commit(&mut self) -> Result<(), ConnectorError> {
            let mut s = self.state.lock().unwrap();
            let fenced = self.staged.is_some();
            if let Some((position, mark)) = self.staged.take() {
                s.position = position;
                s.mark = s.mark.max(mark);
            }
            s.commits.push((self.id, self.open.clone(), fenced));
            s.committed.append(&mut self.open);
            Ok(())
        }
        async fn rollback(&mut self) {
            self.open.clear();
            self.staged = None;
        }
        async fn drop_table(&mut self, _task: &str, epoch: i64, table: &str) -> Result<(), ConnectorError> {
            if self.state.lock().unwrap().epoch != epoch {
                return Err(ConnectorError::Definite("superseded".into()));
            }
            self.state
                .lock()
                .unwrap()
                .committed
                .push(format!("DROP TABLE IF EXISTS {table}"));
            Ok(())
        }
    }

    fn table(engine: Engine, keyed: bool) -> TargetTable {
        let mut t = TableSchema::bare(
            engine,
            "s",
            "t",
            vec![Column::plain("id", "integer"), Column::plain("v", "text")],
        );
        if keyed {
            t.primary_key = Some(PrimaryKey {
                name: "t_pkey".into(),
                columns: vec!["id".into()],
            });
        }
        let mut m = TargetTable::new(&t, engine).expect("maps onto its own engine");
        m.replay = keyed;
        m
    }

    /// An applier of epoch 1 onto one keyed PostgreSQL table past an exact
    /// cut (its changes are checked), set-based unless `in_order`.
    async fn exact_cut_applier(state: &Arc<Mutex<State>>, in_order: bool) -> Applier<MockTarget> {
        let mut target = MockTarget::new(&PgDialect, state);
        target.set_based = !in_order;
        let mut t = table(Engine::Postgres, true);
        t.replay = false;
        Applier::with_target(target, "t1".into(), 1, vec![t]).await.unwrap()
    }

    /// An applier of epoch 1 onto one keyed PostgreSQL table.
    async fn pg_applier(state: &Arc<Mutex<State>>) -> Applier<MockTarget> {
        Applier::with_target(
            MockTarget::new(&PgDialect, state),
            "t1".into(),
            1,
            vec![table(Engine::Postgres, true)],
        )
        .await
        .unwrap()
    }

    fn text(s: &str) -> Value<'static> {
        Value::Text(s.to_string().into())
    }

    /// One batch of every kind of change; the SQL the target received.
    async fn one_batch(engine: Engine, dialect: &'static dyn ApplyDialect) -> Vec<String> {
        let state = Arc::new(Mutex::new(State::default()));
        let tables = vec![table(engine, true), table(engine, false)];
        let mut a = Applier::with_target(MockTarget::new(dialect, &state), "t1".into(), 1, tables)
            .await
            .unwrap();
        a.begin_txn(1);
        a.apply(0, Op::Insert(vec![Value::Int(1), text("it's \\ here")]))
            .await
            .unwrap();
        a.apply(0, Op::Insert(vec![Value::Int(2), Value::Null])).await.unwrap();
        a.apply(
            0,
            Op::Update {
                before: whole(vec![Value::Int(2), Value::Null]),
                after: whole(vec![Value::Int(3), text("moved")]),
            },
        )
        .await
        .unwrap();
        a.apply(1, Op::Delete(whole(vec![Value::Int(9), Value::Null])))
            .await
            .unwrap();
        a.truncate(&[1], false, false).await.unwrap();
        a.end_txn(at(100), false).await.unwrap();
        assert_eq!(
            state.lock().unwrap().position,
            Some(at(100)),
            "the position commits with the batch"
        );
        let sent = state.lock().unwrap().committed.join("\n");
        sent.split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    }

    #[tokio::test]
    async fn golden_sql_postgres() {
        let sql = one_batch(Engine::Postgres, &PgDialect).await;
        assert_eq!(
            sql,
            [
                "BEGIN",
                r#"INSERT INTO "s"."t" ("id", "v") VALUES ('1'::integer, 'it''s \ here'::text),('2'::integer, NULL) ON CONFLICT ("id") DO UPDATE SET "v" = EXCLUDED."v""#,
                r#"DELETE FROM "s"."t" WHERE "id" = '2'::integer"#,
                r#"INSERT INTO "s"."t" ("id", "v") VALUES ('3'::integer, 'moved'::text) ON CONFLICT ("id") DO UPDATE SET "v" = EXCLUDED."v""#,
                // Keyless: past an exact cut, checked as the row it names.
                r#"SELECT 0::int8, 0::int8 WHERE NOT EXISTS (SELECT 1 FROM "s"."t" WHERE "id" IS NOT DISTINCT FROM '9'::integer AND "v" IS NOT DISTINCT FROM NULL)"#,
                r#"DELETE FROM "s"."t" WHERE ctid = (SELECT ctid FROM "s"."t" WHERE "id" IS NOT DISTINCT FROM '9'::integer AND "v" IS NOT DISTINCT FROM NULL LIMIT 1)"#,
                r#"TRUNCATE "s"."t""#,
            ]
        );
    }

    #[tokio::test]
    async fn golden_sql_mysql() {
        // Identifiers in ANSI quotes: the target session runs with ANSI_QUOTES.
        let sql = one_batch(Engine::Mysql, &MysqlDialect).await;
        assert_eq!(
            sql,
            [
                "START TRANSACTION",
                r#"INSERT INTO "s"."t" ("id", "v") VALUES (1, 'it''s \\ here'),(2, NULL) ON DUPLICATE KEY UPDATE "v" = VALUES("v")"#,
                r#"DELETE FROM "s"."t" WHERE "id" = 2"#,
                r#"INSERT INTO "s"."t" ("id", "v") VALUES (3, 'moved') ON DUPLICATE KEY UPDATE "v" = VALUES("v")"#,
                r#"SELECT 0, 0 FROM DUAL WHERE NOT EXISTS (SELECT 1 FROM "s"."t" WHERE "id" <=> 9 AND "v" <=> NULL)"#,
                r#"DELETE FROM "s"."t" WHERE "id" <=> 9 AND "v" <=> NULL LIMIT 1"#,
                r#"DELETE FROM "s"."t""#,
            ]
        );
    }

    #[tokio::test]
    async fn a_value_the_target_cannot_hold_goes_to_the_exceptions_table() {
        let state = Arc::new(Mutex::new(State::default()));
        let mut a = pg_applier(&state).await;
        a.begin_txn(1);
        a.apply(0, Op::Insert(vec![Value::Int(1), text("nul\0byte")]))
            .await
            .unwrap();
        a.end_txn(at(7), false).await.unwrap();
        let sent = state.lock().unwrap().committed.join("\n");
        assert!(sent.contains("INSERT INTO ferry.apply_exceptions"), "{sent}");
        assert!(!sent.contains(r#"INSERT INTO "s"."t""#), "{sent}");
    }

    /// ControlTablesSettings: control tables in their schema; the
    /// suspended-tables rows set to the coordinator's at the start and a
    /// table the stream stops added in the batch that stops it; each
    /// batch's changes and source transactions told to the fence.
    #[tokio::test]
    async fn control_tables_follow_the_control_schema() {
        let state = Arc::new(Mutex::new(State::default()));
        let mut a = pg_applier(&state).await;
        a.control = ControlTables {
            schema: "dms".into(),
            suspended: true,
            ..Default::default()
        };
        let held = [("s.old".to_string(), "reload-table: gone".to_string())];
        a.set_policy(&TablePolicy {
            discover: None,
            apply_truncates: true,
            drop_dropped: true,
            insert_missing: false,
            missing_rows: ApplyConflicts::default(),
            data_errors: ErrorAction::SuspendTable,
            table_errors: ErrorAction::SuspendTable,
            batch_timing: BatchTiming::default(),
            suspended: &held,
        });
        a.begin_txn(1_700_000_000_000);
        a.apply(0, Op::Insert(vec![Value::Int(1), text("ok")])).await.unwrap();
        a.apply(0, Op::Insert(vec![Value::Int(2), text("nul\0byte")]))
            .await
            .unwrap();
        a.end_txn(at(7), false).await.unwrap();
        let sent = state.lock().unwrap().committed.join("\n");
        let at_ = |needle: &str| sent.find(needle).unwrap_or_else(|| panic!("{needle} not in {sent}"));
        let cleared = at_("DELETE FROM dms.suspended_tables WHERE task = 't1'");
        let held_row = at_(
            "INSERT INTO dms.suspended_tables (task, table_name, reason) VALUES ('t1', 's.old', 'reload-table: gone')",
        );
        let exception = at_("INSERT INTO dms.apply_exceptions");
        let stopped = at_("DELETE FROM dms.suspended_tables WHERE task = 't1' AND table_name = 's.t'");
        assert!(
            cleared < held_row && held_row < exception && exception < stopped,
            "{sent}"
        );
        assert!(sent.contains("DataErrorPolicy SUSPEND_TABLE"), "{sent}");
        assert!(!sent.contains("ferry."), "{sent}");
        let notes = state.lock().unwrap().notes.clone();
        assert_eq!(notes.len(), 1);
        assert_eq!((notes[0].changes, notes[0].transactions), (1, 1));
        assert_eq!(notes[0].source_commit_secs, Some(1_700_000_000));
    }

    /// Limited LOB mode: a new image's long value is cut and the cut row
    /// recorded with its key in the same batch; an old image is cut without
    /// a record; under STOP_TASK the batch is not committed.
    #[tokio::test]
    async fn a_long_value_is_cut_recorded_and_counted() {
        use ferry_common::lob::{LobColumn, LobLimit};
        let limited = |policy: ErrorAction| {
            let mut t = TableSchema::bare(
                Engine::Postgres,
                "s",
                "t",
                vec![Column::plain("id", "integer"), Column::plain("v", "text")],
            );
            t.primary_key = Some(PrimaryKey {
                name: "t_pkey".into(),
                columns: vec!["id".into()],
            });
            t.lob = Some(LobLimit {
                max_bytes: 4,
                columns: vec![LobColumn {
                    name: "v".into(),
                    binary: false,
                }],
                on_truncation: policy,
                origin: "LobMaxSize 4 B".into(),
            });
            TargetTable::new(&t, Engine::Postgres).unwrap()
        };
        let state = Arc::new(Mutex::new(State::default()));
        let mut a = Applier::with_target(
            MockTarget::new(&PgDialect, &state),
            "t1".into(),
            1,
            vec![limited(ErrorAction::LogError)],
        )
        .await
        .unwrap();
        a.begin_txn(1);
        a.apply(0, Op::Insert(vec![Value::Int(1), text("abcdefgh")]))
            .await
            .unwrap();
        a.apply(
            0,
            Op::Update {
                before: whole(vec![Value::Int(1), text("abcdefgh")]),
                after: whole(vec![Value::Int(1), text("xy")]),
            },
        )
        .await
        .unwrap();
        a.end_txn(at(7), false).await.unwrap();
        let sent = state.lock().unwrap().committed.join("\n");
        assert!(sent.contains("'abcd'"), "{sent}");
        assert!(!sent.contains("abcdefgh"), "{sent}");
        assert_eq!(sent.matches("INSERT INTO ferry.apply_exceptions").count(), 1, "{sent}");
        assert!(
            sent.contains("'LOB truncated (LobMaxSize 4 B): column v cut from 8 to 4 bytes', 'id=1'"),
            "{sent}"
        );
        assert_eq!(a.unreported["s.t"].truncated, 1);

        let state = Arc::new(Mutex::new(State::default()));
        let mut a = Applier::with_target(
            MockTarget::new(&PgDialect, &state),
            "t1".into(),
            1,
            vec![limited(ErrorAction::StopTask)],
        )
        .await
        .unwrap();
        a.begin_txn(1);
        a.apply(0, Op::Insert(vec![Value::Int(2), text("ok")])).await.unwrap();
        a.apply(0, Op::Insert(vec![Value::Int(1), text("abcdefgh")]))
            .await
            .unwrap();
        let e = a.end_txn(at(7), false).await.unwrap_err().to_string();
        assert!(
            e.contains("id=1") && e.contains("DataTruncationErrorPolicy STOP_TASK"),
            "{e}"
        );
        assert!(state.lock().unwrap().committed.is_empty(), "the batch must not commit");
    }

    /// A stream that lost the apply state to a newer one commits nothing
    /// more, and the newer one resumes from the older one's last commit.
    #[tokio::test]
    async fn a_superseded_stream_commits_nothing() {
        let state = Arc::new(Mutex::new(State::default()));
        let tables = || vec![table(Engine::Postgres, true)];
        let mut old = Applier::with_target(MockTarget::new(&PgDialect, &state), "t1".into(), 1, tables())
            .await
            .unwrap();
        old.begin_txn(1);
        old.apply(0, Op::Insert(vec![Value::Int(1), text("a")])).await.unwrap();
        old.end_txn(at(10), false).await.unwrap();

        let new = Applier::with_target(MockTarget::new(&PgDialect, &state), "t1".into(), 2, tables())
            .await
            .unwrap();
        assert_eq!(new.applied, Some(at(10)), "resumes from the committed position");

        old.begin_txn(2);
        old.apply(0, Op::Insert(vec![Value::Int(2), text("b")])).await.unwrap();
        let e = old.end_txn(at(20), false).await.unwrap_err();
        assert!(e.to_string().contains("superseded"), "{e}");
        assert_eq!(state.lock().unwrap().position, Some(at(10)));
        assert!(
            !state.lock().unwrap().committed.join("").contains("'b'"),
            "the zombie's rows committed"
        );
        let late = Applier::with_target(MockTarget::new(&PgDialect, &state), "t1".into(), 1, tables()).await;
        assert!(late.is_err(), "an older epoch took the state back");
    }

    /// BatchApplyTimeoutMin: a transaction that ends with nothing more
    /// ready waits in its batch until the batch is that old; the stream's
    /// tick commits it then, with the next transactions in the same batch.
    #[tokio::test]
    async fn a_batch_stays_open_for_batch_apply_timeout_min() {
        let state = Arc::new(Mutex::new(State::default()));
        let mut a = pg_applier(&state).await;
        a.batch_min = Duration::from_millis(300);
        a.begin_txn(1);
        a.apply(0, Op::Insert(vec![Value::Int(1), text("a")])).await.unwrap();
        a.end_txn(at(10), false).await.unwrap();
        assert_eq!(state.lock().unwrap().position, None, "committed before its minimum");
        assert!(a.pending() && !a.due());
        a.begin_txn(2);
        a.apply(0, Op::Insert(vec![Value::Int(2), text("b")])).await.unwrap();
        a.end_txn(at(20), false).await.unwrap();
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert!(a.due());
        a.commit_batch().await.unwrap();
        assert_eq!(state.lock().unwrap().position, Some(at(20)));
        assert_eq!(state.lock().unwrap().commits.len(), 1, "both transactions in one batch");
    }

    /// A dropped table is dropped on the target only once everything before
    /// the drop is committed.
    #[tokio::test]
    async fn a_drop_waits_for_the_changes_before_it() {
        let state = Arc::new(Mutex::new(State::default()));
        let mut a = pg_applier(&state).await;
        a.table_dropped(0, at(50), false);
        a.begin_txn(1);
        a.apply(0, Op::Insert(vec![Value::Int(1), text("before the drop")]))
            .await
            .unwrap();
        a.end_txn(at(40), false).await.unwrap();
        a.finish_drops(Some(&at(40))).await.unwrap();
        assert!(!state.lock().unwrap().committed.join("").contains("DROP"));
        a.finish_drops(Some(&at(60))).await.unwrap();
        let sent = state.lock().unwrap().committed.join("\n");
        assert!(sent.ends_with(r#"DROP TABLE IF EXISTS "s"."t""#), "{sent}");
        assert!(a.progress(Some(at(60)), true, 0, 1.0).tables_dropped == ["s.t"]);
    }

    /// A set-based batch: each key's changes folded into one effect, the
    /// table's effects written as set statements (deletes, updates,
    /// upserts) before a change that goes in order (a key change).
    #[tokio::test]
    async fn golden_sql_set_based() {
        let state = Arc::new(Mutex::new(State::default()));
        let mut target = MockTarget::new(&PgDialect, &state);
        target.set_based = true;
        let mut t = table(Engine::Postgres, true);
        t.replay = false;
        let mut a = Applier::with_target(target, "t1".into(), 1, vec![t]).await.unwrap();
        let row = |id: i64, v: &str| vec![Value::Int(id), text(v)];
        let update = |id: i64, from: &str, to: &str| Op::Update {
            before: whole(row(id, from)),
            after: whole(row(id, to)),
        };
        a.begin_txn(1);
        for op in [
            Op::Insert(row(1, "a")),
            update(1, "a", "b"),
            update(2, "w", "x"),
            update(2, "x", "y"),
            Op::Delete(whole(row(3, "c"))),
            Op::Insert(row(4, "d")),
            Op::Delete(whole(row(4, "d"))),
            Op::Delete(whole(row(5, "e"))),
            Op::Insert(row(5, "z")),
            Op::Update {
                before: whole(row(6, "f")),
                after: whole(row(7, "f")),
            },
        ] {
            a.apply(0, op).await.unwrap();
        }
        a.end_txn(at(100), false).await.unwrap();
        let sent = state.lock().unwrap().committed.join("\n");
        let sql: Vec<&str> = sent.split(";").map(str::trim).filter(|s| !s.is_empty()).collect();
        assert_eq!(
            sql,
            [
                "BEGIN",
                // Keys whose first change expected the row are checked
                // first (3, 5: delete; not 1 and 4, inserted) ...
                r#"SELECT 0::int8, ferry_v.ferry_n FROM (VALUES (0, '3'::integer), (1, '5'::integer)) AS ferry_v (ferry_n, "id") WHERE NOT EXISTS (SELECT 1 FROM "s"."t" AS ferry_t WHERE ferry_t."id" = ferry_v."id"::integer)"#,
                r#"DELETE FROM "s"."t" WHERE "id" IN ('3'::integer, '4'::integer)"#,
                // ... or by the update itself (2).
                r#"WITH ferry_u AS (UPDATE "s"."t" AS ferry_t SET "v" = ferry_v."v"::text FROM (VALUES (0, '2'::integer, 'y'::text)) AS ferry_v (ferry_n, "id", "v") WHERE ferry_t."id" = ferry_v."id"::integer RETURNING ferry_v.ferry_n) SELECT 1::int8, ferry_i FROM generate_series(0, 0) AS ferry_i WHERE ferry_i NOT IN (SELECT ferry_n FROM ferry_u)"#,
                r#"INSERT INTO "s"."t" ("id", "v") VALUES ('1'::integer, 'b'::text),('5'::integer, 'z'::text) ON CONFLICT ("id") DO UPDATE SET "v" = EXCLUDED."v""#,
                r#"SELECT 2::int8, 0::int8 WHERE NOT EXISTS (SELECT 1 FROM "s"."t" WHERE "id" = '6'::integer)"#,
                r#"UPDATE "s"."t" SET "id" = '7'::integer, "v" = 'f'::text WHERE "id" = '6'::integer"#,
            ]
        );
        assert!(a.batch_counters.is_empty(), "counted into the committed batch");
        assert_eq!(
            a.unreported["s.t"],
            TableCounters {
                inserts: 3,
                updates: 4,
                deletes: 3,
                ..Default::default()
            }
        );
    }

    /// An update or delete of a row the target lacks (the check's rows come
    /// back from the target) is recorded in the exceptions table with the
    /// batch, counted, and acts by its policy.
    #[tokio::test]
    async fn a_change_of_a_row_the_target_lacks_is_recorded_counted_and_acts() {
        let row = |id: i64, v: &str| vec![Value::Int(id), text(v)];
        let run = async |missing: ApplyConflicts, in_order: bool| {
            let state = Arc::new(Mutex::new(State::default()));
            let mut a = exact_cut_applier(&state, in_order).await;
            a.missing = missing;
            // The target lacks the row the update names (check 0, row 0).
            state.lock().unwrap().missing = vec![(0, 0)];
            a.begin_txn(1);
            a.apply(
                0,
                Op::Update {
                    before: whole(row(2, "w")),
                    after: whole(row(2, "x")),
                },
            )
            .await
            .unwrap();
            let outcome = a.end_txn(at(100), false).await;
            let committed = state.lock().unwrap().committed.join(";");
            (a, outcome, committed)
        };
        for in_order in [false, true] {
            let (a, outcome, committed) = run(ApplyConflicts::default(), in_order).await;
            outcome.unwrap();
            assert!(
                committed.contains(r#"INSERT INTO ferry.apply_exceptions (task, table_name, phase, reason, row_image) VALUES ('t1', 's.t', 'cdc', 'update of a row the target lacks (ApplyErrorUpdatePolicy LOG_ERROR)', '"id" = ''2''::integer')"#),
                "{committed}"
            );
            assert_eq!(a.unreported["s.t"].conflicts, 1);
            assert_eq!(a.unreported["s.t"].updates, 1);
            assert!(a.tables[0].stopped.is_none());

            let suspend = ApplyConflicts {
                update: ErrorAction::SuspendTable,
                ..ApplyConflicts::default()
            };
            let (a, outcome, _) = run(suspend, in_order).await;
            outcome.unwrap();
            assert!(a.tables[0]
                .stopped
                .as_deref()
                .unwrap()
                .contains("ApplyErrorUpdatePolicy SUSPEND_TABLE"));

            let stop = ApplyConflicts {
                update: ErrorAction::StopTask,
                ..ApplyConflicts::default()
            };
            let (a, outcome, committed) = run(stop, in_order).await;
            let e = outcome.unwrap_err().to_string();
            assert!(
                e.contains("table s.t: update of a row the target lacks") && e.contains("STOP_TASK"),
                "{e}"
            );
            assert!(committed.is_empty(), "the batch is not committed: {committed}");
            assert!(a.applied.is_none());
        }
    }

    /// Under ApplyErrorInsertPolicy other than INSERT_RECORD an insert is
    /// checked: a key the target holds already keeps the target's row, is
    /// recorded and counted; without the key, inserts stay upserts.
    #[tokio::test]
    async fn an_insert_of_a_row_the_target_holds_is_recorded_and_keeps_the_row() {
        let run = async |insert: Option<ErrorAction>, in_order: bool| {
            let state = Arc::new(Mutex::new(State::default()));
            let mut a = exact_cut_applier(&state, in_order).await;
            a.missing.insert = insert;
            // The target holds the key of the first insert (check 0, row 0).
            state.lock().unwrap().missing = vec![(0, 0)];
            a.begin_txn(1);
            for id in [7, 8] {
                a.apply(0, Op::Insert(vec![Value::Int(id), text("n")])).await.unwrap();
            }
            let outcome = a.end_txn(at(100), false).await;
            let committed = state.lock().unwrap().committed.join(";");
            (a, outcome, committed)
        };
        for in_order in [false, true] {
            let (a, outcome, committed) = run(Some(ErrorAction::LogError), in_order).await;
            outcome.unwrap();
            assert!(committed.contains("WHERE EXISTS"), "{committed}");
            assert!(
                committed.contains(r#"ON CONFLICT ("id") DO NOTHING"#) && !committed.contains("DO UPDATE"),
                "{committed}"
            );
            assert!(
                committed.contains(r#"'insert of a row the target holds already (ApplyErrorInsertPolicy LOG_ERROR)', '"id" = ''7''::integer')"#),
                "{committed}"
            );
            assert_eq!(a.unreported["s.t"].conflicts, 1);
            assert_eq!(a.unreported["s.t"].inserts, 2);

            let (_, outcome, committed) = run(Some(ErrorAction::StopTask), in_order).await;
            let e = outcome.unwrap_err().to_string();
            assert!(e.contains("table s.t: insert of a row the target holds already"), "{e}");
            assert!(committed.is_empty(), "{committed}");

            let (a, outcome, committed) = run(None, in_order).await;
            outcome.unwrap();
            assert!(
                committed.contains("DO UPDATE") && !committed.contains("EXISTS"),
                "INSERT_RECORD: {committed}"
            );
            assert_eq!(a.unreported["s.t"].conflicts, 0);
        }
    }

    /// Lanes: a set-based table's keys are spread over the sessions, every
    /// lane commits before the fenced session records the position, what
    /// goes in order stays on the fenced session, and a superseded stream's
    /// lanes commit nothing.
    #[tokio::test]
    async fn parallel_lanes_spread_keys_and_commit_the_fence_last() {
        let state = Arc::new(Mutex::new(State::default()));
        let session = |id: usize| {
            let mut t = MockTarget::new(&PgDialect, &state);
            t.set_based = true;
            t.id = id;
            t
        };
        let mut keyed = table(Engine::Postgres, true);
        keyed.replay = false;
        let keyless = table(Engine::Postgres, false);
        let mut a = Applier::with_target(session(0), "t1".into(), 1, vec![keyed, keyless])
            .await
            .unwrap();
        a.add_lanes(vec![session(1), session(2)]);
        assert_eq!(a.lanes(), 3);
        let row = |id: i64| vec![Value::Int(id), text("v")];

        a.begin_txn(1);
        for id in 1..=30 {
            a.apply(0, Op::Insert(row(id))).await.unwrap();
        }
        a.apply(1, Op::Insert(row(0))).await.unwrap();
        a.end_txn(at(10), false).await.unwrap();
        {
            let s = state.lock().unwrap();
            assert_eq!(s.position, Some(at(10)));
            let (last, others) = s.commits.split_last().unwrap();
            assert!(
                last.0 == 0 && last.2,
                "the fenced session commits last: {:?}",
                s.commits
            );
            assert!(others.iter().all(|c| c.0 != 0 && !c.2));
            assert!(!others.is_empty(), "no key went to another lane");
            let all = s.committed.join(";");
            for id in 1..=30 {
                assert_eq!(all.matches(&format!("('{id}'::integer,")).count(), 1, "key {id}: {all}");
            }
            // The keyless table's insert goes in order, on the fenced session.
            assert!(last.1.join(";").contains("('0'::integer, 'v'::text)"), "{:?}", last.1);
        }

        // A key-changing update keeps the table's batch on the fenced session.
        let before = state.lock().unwrap().commits.len();
        a.begin_txn(2);
        a.apply(0, Op::Insert(row(31))).await.unwrap();
        a.apply(
            0,
            Op::Update {
                before: whole(row(31)),
                after: whole(row(32)),
            },
        )
        .await
        .unwrap();
        for id in 33..=60 {
            a.apply(0, Op::Insert(row(id))).await.unwrap();
        }
        a.end_txn(at(20), false).await.unwrap();
        {
            let s = state.lock().unwrap();
            assert_eq!(s.commits[before..].len(), 1, "{:?}", &s.commits[before..]);
            assert_eq!(s.commits[before].0, 0);
        }

        // Superseded: no lane commits, the position stays.
        state.lock().unwrap().epoch = 2;
        let before = state.lock().unwrap().commits.len();
        a.begin_txn(3);
        for id in 61..=90 {
            a.apply(0, Op::Insert(row(id))).await.unwrap();
        }
        let e = a.end_txn(at(30), false).await.unwrap_err();
        assert!(e.to_string().contains("superseded"), "{e}");
        let s = state.lock().unwrap();
        assert_eq!(s.commits.len(), before, "{:?}", &s.commits[before..]);
        assert_eq!(s.position, Some(at(20)));
    }

    /// Where disjoint keys wait on each other, a spread table's keys go to
    /// lanes 1.. only (lane 0, which waits for them, holds none), and a lane
    /// the server fails as a deadlock victim runs again: every key is
    /// committed exactly once, the fence last.
    #[tokio::test]
    async fn lanes_keep_off_the_fenced_session_where_keys_wait_and_a_deadlocked_lane_runs_again() {
        let state = Arc::new(Mutex::new(State::default()));
        let session = |id: usize| {
            let mut t = MockTarget::new(&MysqlDialect, &state);
            t.set_based = true;
            t.keys_wait = true;
            t.id = id;
            t
        };
        let mut keyed = table(Engine::Mysql, true);
        keyed.replay = false;
        let mut a = Applier::with_target(session(0), "t1".into(), 1, vec![keyed, table(Engine::Mysql, false)])
            .await
            .unwrap();
        let mut victim = session(1);
        victim.deadlocks = 2;
        a.add_lanes(vec![victim, session(2), session(3)]);
        a.begin_txn(1);
        for id in 1..=40 {
            a.apply(0, Op::Insert(vec![Value::Int(id), text("v")])).await.unwrap();
        }
        a.apply(1, Op::Insert(vec![Value::Int(0), text("keyless")]))
            .await
            .unwrap();
        a.end_txn(at(10), false).await.unwrap();
        let s = state.lock().unwrap();
        assert_eq!(s.position, Some(at(10)));
        let (last, others) = s.commits.split_last().unwrap();
        assert!(
            last.0 == 0 && last.2,
            "the fenced session commits last: {:?}",
            s.commits
        );
        let fenced = last.1.join(";");
        assert!(fenced.contains("'keyless'") && !fenced.contains("'v'"), "{fenced}");
        assert!(
            others.iter().any(|c| c.0 == 1),
            "the deadlocked lane never committed: {:?}",
            s.commits
        );
        let all = s.committed.join(";");
        for id in 1..=40 {
            assert_eq!(all.matches(&format!("({id}, 'v')")).count(), 1, "key {id}: {all}");
        }
    }

    /// A dialect without a set UPDATE form gets one UPDATE per folded row.
    #[tokio::test]
    async fn set_based_without_a_set_update_form() {
        let state = Arc::new(Mutex::new(State::default()));
        let mut target = MockTarget::new(&MysqlDialect, &state);
        target.set_based = true;
        let mut t = table(Engine::Mysql, true);
        t.replay = false;
        let mut a = Applier::with_target(target, "t1".into(), 1, vec![t]).await.unwrap();
        let row = |id: i64, v: &str| whole(vec![Value::Int(id), text(v)]);
        a.begin_txn(1);
        a.apply(
            0,
            Op::Update {
                before: row(2, "w"),
                after: row(2, "x"),
            },
        )
        .await
        .unwrap();
        a.apply(
            0,
            Op::Update {
                before: row(2, "x"),
                after: row(2, "y"),
            },
        )
        .await
        .unwrap();
        a.apply(0, Op::Delete(row(3, "c"))).await.unwrap();
        a.apply(0, Op::Delete(row(4, "d"))).await.unwrap();
        a.end_txn(at(9), false).await.unwrap();
        let sent = state.lock().unwrap().committed.join("\n");
        let sql: Vec<&str> = sent.split(";").map(str::trim).filter(|s| !s.is_empty()).collect();
        assert_eq!(
            sql,
            [
                "START TRANSACTION",
                r#"SELECT 0, 0 FROM DUAL WHERE NOT EXISTS (SELECT 1 FROM "s"."t" WHERE "id" = 3) UNION ALL SELECT 0, 1 FROM DUAL WHERE NOT EXISTS (SELECT 1 FROM "s"."t" WHERE "id" = 4)"#,
                r#"DELETE FROM "s"."t" WHERE "id" IN (3, 4)"#,
                r#"SELECT 1, 0 FROM DUAL WHERE NOT EXISTS (SELECT 1 FROM "s"."t" WHERE "id" = 2)"#,
                r#"UPDATE "s"."t" SET "v" = 'y' WHERE "id" = 2"#,
            ]
        );
    }

    /// Folding a key's changes gives the row applying them one by one
    /// gives, for every sequence of up to four changes from either start
    /// (row absent or present), with and without replay, with inserts
    /// checked or not. The model: a row is `Some(image)`; an insert (or a
    /// replayed update) upserts, a checked insert leaves a row that exists,
    /// an update past an exact cut changes a row that exists, a delete
    /// removes.
    #[test]
    fn folding_a_keys_changes_is_exact() {
        #[derive(Clone, Copy, Debug)]
        enum Change {
            Insert(u8),
            Update(u8),
            Delete,
        }
        let step = |row: Option<u8>, c: Change, replay: bool, checked: bool| match c {
            Change::Insert(v) if checked => row.or(Some(v)),
            Change::Insert(v) => Some(v),
            Change::Update(v) if replay => Some(v),
            Change::Update(v) => row.map(|_| v),
            Change::Delete => None,
        };
        let effect = |row: Option<u8>, n: &Net| match n {
            Net::Upsert(i) => Some(i[0].parse().unwrap()),
            Net::Update(i) => row.map(|_| i[0].parse().unwrap()),
            Net::Insert(i) => row.or(Some(i[0].parse().unwrap())),
            Net::Delete => None,
        };
        let all = [
            Change::Insert(1),
            Change::Insert(2),
            Change::Update(3),
            Change::Update(4),
            Change::Delete,
        ];
        let mut seqs: Vec<Vec<Change>> = vec![vec![]];
        for _ in 0..4 {
            let longer: Vec<Vec<Change>> = seqs
                .iter()
                .filter(|s| s.len() == seqs.last().unwrap().len())
                .flat_map(|s| all.iter().map(move |c| [s.clone(), vec![*c]].concat()))
                .collect();
            seqs.extend(longer);
        }
        for (replay, checked) in [(false, false), (false, true), (true, false)] {
            for start in [None, Some(0u8)] {
                for seq in &seqs {
                    let expected = seq.iter().fold(start, |row, &c| step(row, c, replay, checked));
                    // The applier's way: fold while it folds; a change that
                    // does not goes in order after what was folded.
                    let (mut row, mut net): (Option<u8>, Option<Net>) = (start, None);
                    for &c in seq {
                        let n = match c {
                            Change::Insert(v) if checked => Net::Insert(vec![v.to_string()]),
                            Change::Insert(v) => Net::Upsert(vec![v.to_string()]),
                            Change::Update(v) if replay => Net::Upsert(vec![v.to_string()]),
                            Change::Update(v) => Net::Update(vec![v.to_string()]),
                            Change::Delete => Net::Delete,
                        };
                        net = match &net {
                            None => Some(n),
                            Some(prev) => match prev.then(n) {
                                Some(folded) => Some(folded),
                                None => {
                                    row = step(effect(row, prev), c, replay, checked);
                                    None
                                }
                            },
                        };
                    }
                    let got = net.as_ref().map_or(row, |n| effect(row, n));
                    assert_eq!(
                        got, expected,
                        "{seq:?} from {start:?}, replay {replay}, inserts checked {checked}"
                    );
                }
            }
        }
    }
}
