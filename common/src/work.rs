//! Units of work the coordinator assigns and workers carry out, and what a
//! worker reports back. Carried as JSON inside the `Assignment` message.

use crate::endpoint::Endpoint;
use crate::lob::LobSettings;
use crate::mapping::TableMappings;
use crate::plan::{ChangeTracking, SegmentBounds};
use crate::position::Position;
use crate::schema::{Constraint, SourceSchema, TableSchema};
use crate::settings::{ApplyConflicts, ErrorAction, TargetTablePrepMode};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Work {
    /// Read the source catalog for the selected tables, with size estimates
    /// and key samples for tables larger than `segment_target_bytes`.
    Introspect {
        source: Endpoint,
        mappings: TableMappings,
        segment_target_bytes: u64,
        max_segments_per_table: u32,
        /// The task's LOB settings, resolved per table with the mappings'
        /// `lob-settings` (see [`crate::lob`]).
        #[serde(default)]
        lob: LobSettings,
    },
    /// `ferry task reload-table`: read one table's definition again (if the
    /// mappings still select it), after making sure the CDC source publishes
    /// it (a table dropped and created again left the publication). First
    /// it takes the target's CDC apply state over: the stream revoked for
    /// the reload may still be running, and must commit nothing after the
    /// reload's snapshot is taken (which is after this), or the resumed
    /// stream would start past changes of the table that the old one
    /// skipped while the table was stopped.
    Reintrospect {
        source: Endpoint,
        target: Endpoint,
        mappings: TableMappings,
        table: TableRef,
        cdc: CdcNames,
        #[serde(default)]
        lob: LobSettings,
    },
    /// Pre-data: create schemas, types, tables with primary keys, partitions.
    Prepare {
        target: Endpoint,
        schema: SourceSchema,
        prep_mode: TargetTablePrepMode,
        /// Create tables without their primary key; PostData adds it. Set
        /// for full-load-only tasks that create their tables: building the
        /// key once after the load beats maintaining it row by row.
        #[serde(default)]
        defer_primary_key: bool,
        /// `pre-data.sql` of a reviewed `ferry schema convert` output: run
        /// instead of creating the tables from the introspected schema.
        #[serde(default)]
        pre_data_sql: Option<String>,
    },
    /// Copy one segment, idempotently. With CDC, every segment of a table is
    /// read in the same exported snapshot (`snapshot`, generation `gen`).
    LoadSegment {
        source: Endpoint,
        target: Endpoint,
        table: TableSchema,
        segment: u32,
        bounds: SegmentBounds,
        #[serde(default)]
        snapshot: Option<String>,
        #[serde(default)]
        gen: u64,
        /// The table was created by this task without its key (see
        /// Prepare): a whole-table segment may be copied FROZEN.
        #[serde(default)]
        defer_primary_key: bool,
        /// The target table may hold rows this task did not load
        /// (TargetTablePrepMode DO_NOTHING): the segment replaces the rows
        /// with its keys. Otherwise Prepare created or emptied the table and
        /// a segment's range on the target is empty (an attempt's rows
        /// commit with its marker or not at all), so nothing is deleted —
        /// a range delete on the target would compare keys in the target's
        /// collation, which need not order them as the source did.
        #[serde(default)]
        target_may_hold_rows: bool,
        /// What a row the target cannot store does (DataErrorPolicy).
        #[serde(default)]
        data_errors: ErrorAction,
    },
    /// Empty a table on the target before it is loaded again in snapshot
    /// generation `gen` (the snapshot its first segments used died, or
    /// `ferry task reload-table`). Takes the CDC apply state over, so a
    /// stream that was revoked cannot write into the emptied table.
    ResetTable {
        target: Endpoint,
        table: TableSchema,
        gen: u64,
        /// The table as the target has it, when its columns changed on the
        /// source since (reload after DDL, in DROP_AND_CREATE mode): the
        /// target table's columns are reshaped to `table`'s. Without any
        /// columns: the target has no such table yet (one created on the
        /// source joined the task), and it is created.
        #[serde(default)]
        previous: Option<TableSchema>,
        /// The table is one created again on the source after a drop: a
        /// target table of its name (kept after the drop) is replaced.
        #[serde(default)]
        replace: bool,
    },
    /// Source-side CDC setup: the task's publications and logical slot.
    CreateSlot {
        source: Endpoint,
        cdc: CdcNames,
        tables: Vec<TableSchema>,
        /// Use a slot the user created (`--slot-name`) instead of creating one.
        existing_slot: bool,
    },
    /// Open a snapshot that segment readers import, and keep it open until
    /// the coordinator revokes the assignment.
    HoldSnapshot {
        source: Endpoint,
        /// Name of the temporary slot whose creation exports the snapshot
        /// (CDC tasks: its position is where the table's changes start);
        /// none for a full load, which needs the snapshot alone.
        slot: Option<String>,
    },
    /// Stream the slot and apply changes to the target, until revoked.
    Cdc {
        source: Endpoint,
        target: Endpoint,
        cdc: CdcNames,
        tables: Vec<CdcTable>,
        /// Where to start when the target has no applied position yet
        /// (none: where the source's slot is).
        start: Option<Position>,
        /// The task's selection rules, when tables created on the source
        /// join the task: the stream looks for selected tables it does not
        /// have every few seconds and reports them (`new_tables`).
        #[serde(default)]
        discover: Option<TableMappings>,
        /// Apply the source's TRUNCATEs (HandleSourceTableTruncated).
        #[serde(default = "yes")]
        apply_truncates: bool,
        /// Drop a table dropped on the source on the target as well
        /// (HandleSourceTableDropped).
        #[serde(default = "yes")]
        drop_dropped: bool,
        /// An update of a row the target lacks inserts it
        /// (ApplyErrorUpdatePolicy INSERT_RECORD).
        #[serde(default)]
        insert_missing: bool,
        /// What an update or delete of a row the target lacks does
        /// (ApplyErrorUpdatePolicy / ApplyErrorDeletePolicy).
        #[serde(default)]
        missing_rows: ApplyConflicts,
        /// Target sessions each batch's rows are spread over
        /// (TargetMetadata.ParallelApplyThreads).
        #[serde(default = "one")]
        lanes: u32,
        /// What a change the target cannot store does (DataErrorPolicy).
        #[serde(default)]
        data_errors: ErrorAction,
        /// What a table whose apply stops does (TableErrorPolicy).
        #[serde(default = "suspend_table")]
        table_errors: ErrorAction,
        /// Stop before the first transaction committed after this
        /// (`--cdc-stop-position`, see `stop`).
        #[serde(default)]
        stop: Option<crate::stop::CdcStop>,
        /// How long a batch stays open (ChangeProcessingTuning).
        #[serde(default)]
        batch_timing: crate::settings::BatchTiming,
        /// Tables in error (left out of `tables`), with the reason, for the
        /// suspended-tables control table (see [`crate::control`]).
        #[serde(default)]
        suspended: Vec<(String, String)>,
    },
    /// Drop the task's slot and publications (task deletion).
    DropSlot {
        source: Endpoint,
        cdc: CdcNames,
        /// The slot was the user's (`--slot-name`): drop the publications only.
        keep_slot: bool,
    },
    /// Post-data for one loaded table: indexes, unique/check/exclusion
    /// constraints, sequence values, statistics.
    PostData {
        source: Endpoint,
        target: Endpoint,
        table: TableSchema,
        /// Add the primary key first (see Prepare).
        #[serde(default)]
        defer_primary_key: bool,
        /// The rows the table's segments loaded, when it was loaded in
        /// several segments and the target holds no other rows: the
        /// target's row count must equal it before the table counts as
        /// loaded (a segment that touched another's rows would show here).
        #[serde(default)]
        expected_rows: Option<u64>,
    },
    /// Compare one segment's rows on source and target (checksums, then
    /// drill-down to rows) and record the differences on the target.
    ValidateSegment {
        /// The task's name: failures are recorded under it.
        task: String,
        source: Endpoint,
        target: Endpoint,
        table: TableSchema,
        segment: u32,
        bounds: SegmentBounds,
        /// Ranges of at most this many rows are compared row by row
        /// (DMS ValidationSettings.PartitionSize).
        partition_size: u64,
        /// The task runs CDC: a difference may be a change not applied yet,
        /// so differing rows are compared again once the stream caught up.
        #[serde(default)]
        settle: bool,
    },
    /// Cutover: make the source refuse writes (`freeze`) or accept them again.
    FreezeSource { source: Endpoint, freeze: bool },
    /// Cutover: move the target's sequences / identities / AUTO_INCREMENT
    /// past the source's current values and the target's largest key.
    SyncSequences {
        source: Endpoint,
        target: Endpoint,
        tables: Vec<TableSchema>,
    },
    /// Foreign keys, once every table is complete.
    Finalize {
        target: Endpoint,
        foreign_keys: Vec<(String, Constraint)>,
        /// Check the loaded rows against the keys. Not while CDC follows:
        /// tables read at different moments need not agree until it has
        /// caught up (the keys are then added without checking).
        #[serde(default = "yes")]
        validate: bool,
        /// `post-data.sql` of a reviewed conversion, run in place of the
        /// foreign keys (it holds them and the rest of post-data).
        #[serde(default)]
        post_data_sql: Option<String>,
    },
}

fn suspend_table() -> ErrorAction {
    ErrorAction::SuspendTable
}

fn yes() -> bool {
    true
}

fn one() -> u32 {
    1
}

/// A one-shot job for any idle worker, outside every task: it runs where
/// the credentials are. Handed out as an Assignment of kind
/// [`Errand::KIND`]; its answer goes back by `CompleteErrand`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Errand {
    /// `ferry endpoint test`: the endpoint's readiness report.
    TestEndpoint { endpoint: Endpoint },
}

impl Errand {
    pub const KIND: &'static str = "Errand";
}

impl Work {
    /// The databases this work talks to (for liveness probes).
    pub fn endpoints(&self) -> Vec<&Endpoint> {
        match self {
            Work::Introspect { source, .. }
            | Work::CreateSlot { source, .. }
            | Work::HoldSnapshot { source, .. }
            | Work::DropSlot { source, .. }
            | Work::FreezeSource { source, .. } => vec![source],
            Work::Prepare { target, .. } | Work::ResetTable { target, .. } | Work::Finalize { target, .. } => {
                vec![target]
            }
            Work::LoadSegment { source, target, .. }
            | Work::Reintrospect { source, target, .. }
            | Work::Cdc { source, target, .. }
            | Work::PostData { source, target, .. }
            | Work::ValidateSegment { source, target, .. }
            | Work::SyncSequences { source, target, .. } => vec![source, target],
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Work::Introspect { .. } => "Introspect",
            Work::Reintrospect { .. } => "Reintrospect",
            Work::Prepare { .. } => "Prepare",
            Work::LoadSegment { .. } => "LoadSegment",
            Work::PostData { .. } => "PostData",
            Work::Finalize { .. } => "Finalize",
            Work::ResetTable { .. } => "ResetTable",
            Work::CreateSlot { .. } => "CreateSlot",
            Work::HoldSnapshot { .. } => "HoldSnapshot",
            Work::Cdc { .. } => "Cdc",
            Work::DropSlot { .. } => "DropSlot",
            Work::ValidateSegment { .. } => "ValidateSegment",
            Work::FreezeSource { .. } => "FreezeSource",
            Work::SyncSequences { .. } => "SyncSequences",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkResult {
    Introspected(SourceSchema),
    /// `already_loaded`: the target had this segment committed by an earlier
    /// attempt (see the worker's `load` module), so nothing was copied again.
    Loaded {
        rows: u64,
        already_loaded: bool,
        /// Rows the target could not store, recorded in its
        /// `ferry.apply_exceptions` table (heterogeneous pairs).
        #[serde(default)]
        exceptions: u64,
        /// Rows stored with a LOB value cut to the task's limit, recorded
        /// in `ferry.apply_exceptions` (see [`crate::lob`]).
        #[serde(default)]
        truncated: u64,
        /// MySQL sources with CDC: the binlog position of the segment's
        /// consistent snapshot (every transaction before it is in the rows).
        #[serde(default)]
        position: Option<Position>,
    },
    Done,
    /// Foreign keys and a reviewed post-data.sql applied; `failed_objects`
    /// are the file's objects the target refused, `(object, error)`: the
    /// loaded rows stay, the objects are reported.
    Finalized {
        #[serde(default)]
        failed_objects: Vec<(String, String)>,
    },
    /// A segment compared: `rows` source rows looked at, `failures`
    /// differences found (all in the target's `ferry.validation_failures`),
    /// the first few of them in `sample`.
    Validated {
        rows: u64,
        failures: u64,
        sample: Vec<ValidationFailure>,
    },
    /// The slot exists; `consistent_point` is where its stream begins.
    /// `insert_only` names tables whose updates and deletes cannot be
    /// captured (no primary key, no replica identity), with the reason.
    SlotReady {
        consistent_point: Position,
        insert_only: Vec<(String, String)>,
    },
}

/// Names of a task's source-side CDC objects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CdcNames {
    pub slot: String,
    /// Tables with a replica identity: every change is published.
    pub publication: String,
    /// Tables without one publish inserts and truncates only, so the
    /// source never refuses an UPDATE or DELETE on them because of Ferry.
    pub publication_insert_only: String,
}

impl CdcNames {
    pub fn publications(&self) -> [&str; 2] {
        [&self.publication, &self.publication_insert_only]
    }
}

/// A table as the CDC stream applies it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CdcTable {
    pub table: TableSchema,
    /// Transactions whose commit LSN is below this are already in the
    /// table's full-load snapshot and are skipped (none: every change is
    /// applied, as in CDC-only tasks).
    pub apply_from: Option<Position>,
    /// Which validated ranges the stream reports as changed.
    #[serde(default)]
    pub changes: ChangeTracking,
}

/// Segments of one table that applied changes touched (see
/// [`ChangeTracking`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangedSegments {
    /// Every segment (a truncate, or a key Ferry cannot place).
    pub all: bool,
    pub segments: BTreeSet<u32>,
}

impl ChangedSegments {
    pub fn add(&mut self, o: &ChangedSegments) {
        self.all |= o.all;
        if !self.all {
            self.segments.extend(&o.segments);
        } else {
            self.segments.clear();
        }
    }

    pub fn contains(&self, segment: u32) -> bool {
        self.all || self.segments.contains(&segment)
    }
}

/// Structured progress an assignment reports besides its row count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProgressDetail {
    /// The snapshot holder's exported snapshot and its consistent point.
    Snapshot {
        name: String,
        lsn: Position,
    },
    Cdc(CdcProgress),
}

/// Changes applied to one table, as DMS's table statistics count them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableCounters {
    pub inserts: u64,
    pub updates: u64,
    pub deletes: u64,
    pub truncates: u64,
    /// Changes the target could not store (see `ferry.apply_exceptions`).
    #[serde(default)]
    pub exceptions: u64,
    /// Changes stored with a LOB value cut to the task's limit.
    #[serde(default)]
    pub truncated: u64,
    /// CDC updates and deletes of rows the target lacked (each recorded
    /// in `ferry.apply_exceptions`; ApplyErrorUpdatePolicy/DeletePolicy).
    #[serde(default)]
    pub conflicts: u64,
}

impl TableCounters {
    pub fn add(&mut self, o: &TableCounters) {
        self.inserts += o.inserts;
        self.updates += o.updates;
        self.deletes += o.deletes;
        self.truncates += o.truncates;
        self.exceptions += o.exceptions;
        self.truncated += o.truncated;
        self.conflicts += o.conflicts;
    }
}

/// A CDC stream's state, reported after every target commit (and at least
/// every few seconds). `applied` is committed on the target; the worker
/// confirms it to the source only after the coordinator has stored it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CdcProgress {
    /// None until the stream's first commit on the target.
    pub applied: Option<Position>,
    /// Highest `pg_logical_emit_message` mark committed on the target.
    pub marks_reached: u64,
    /// CDCLatencySource: now minus the commit time of the newest source
    /// transaction received (0 when caught up and idle).
    pub latency_source_ms: u64,
    /// CDCLatencyTarget: now minus the commit time of the oldest source
    /// transaction received but not yet committed on the target (0 when none).
    pub latency_target_ms: u64,
    /// CDCIncomingChanges: changes received, not yet committed on the target.
    pub incoming_changes: u64,
    /// Rows applied per second over the last report interval.
    pub throughput_rows_per_s: f64,
    /// WAL the slot holds back on the source (pg_current_wal_lsn - restart_lsn).
    pub retained_wal_bytes: u64,
    /// Per table (`schema.table`): changes applied since the previous report.
    pub applied_delta: Vec<(String, TableCounters)>,
    /// Tables whose apply stopped, with the reason (e.g. a column layout
    /// the target does not have).
    pub table_errors: Vec<(String, String)>,
    /// Tables whose apply stopped because their columns changed on the
    /// source, with the change: the coordinator reloads them in their new
    /// shape (HandleSourceTableAltered) or reports them as table errors.
    #[serde(default)]
    pub tables_altered: Vec<(String, String)>,
    /// Tables the selection rules select that the stream does not have
    /// (created on the source since): the coordinator adds them to the task.
    #[serde(default)]
    pub new_tables: Vec<TableRef>,
    /// Tables dropped on the source (or renamed away) whose every earlier
    /// change is committed on the target: they leave the task's stream
    /// (and, with HandleSourceTableDropped, were dropped on the target).
    #[serde(default)]
    pub tables_dropped: Vec<String>,
    /// Per table: the validated segments changes committed since the
    /// previous report touched.
    #[serde(default)]
    pub changed: Vec<(String, ChangedSegments)>,
    /// MySQL sources: the GTID of the last transaction read (MariaDB
    /// `domain-server-seq`, MySQL `uuid:n`), for the operator.
    #[serde(default)]
    pub source_gtid: String,
    /// The stream reached its stop position (`--cdc-stop-position`): every
    /// transaction before it is committed on the target, none after it.
    #[serde(default)]
    pub stop_reached: bool,
}

/// How a row differs between source and target (DMS's failure types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FailureType {
    /// Both hold the key; some column differs.
    RecordDiff,
    /// The target holds a row the source does not.
    MissingSource,
    /// The source holds a row the target does not.
    MissingTarget,
}

impl FailureType {
    pub fn as_str(&self) -> &'static str {
        match self {
            FailureType::RecordDiff => "RECORD_DIFF",
            FailureType::MissingSource => "MISSING_SOURCE",
            FailureType::MissingTarget => "MISSING_TARGET",
        }
    }
}

/// One differing row, by its primary key (the values as text, comma-separated).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationFailure {
    pub key: String,
    pub failure_type: FailureType,
    pub details: String,
}

/// The DDL files of a reviewed `ferry schema convert` output that a task
/// runs instead of converting the schema itself (`--schema-dir`). DDL
/// holds no secrets, so it travels in the task's spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaFiles {
    pub pre_data: String,
    pub post_data: String,
    /// Foreign keys and triggers: run after post-data by full-load tasks;
    /// left to the cutover (`ferry cutover --hook`) when CDC follows.
    #[serde(default)]
    pub cutover: String,
}

/// A source table by schema (MySQL: database) and name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableRef {
    pub schema: String,
    pub name: String,
}

impl TableRef {
    pub fn is(&self, schema: &str, name: &str) -> bool {
        self.schema == schema && self.name == name
    }
}
