//! The coordinator's replicated state and its transitions.
//!
//! Every change is a [`Request`] committed to the Raft log and applied here by
//! every node in log order; `apply` is deterministic (time comes from the
//! request, stamped by the leader), so all nodes agree.
//!
//! Life of a full-load task:
//! ```text
//!   Created --start--> Running: Introspect -> Prepare -> LoadSegment x N (parallel)
//!                                   -> PostData per table (when its segments are done)
//!                                   -> Finalize (foreign keys) -> Completed
//!   Running --stop--> Stopped --start--> Running (resumes: done units stay done)
//!   any unit failing definitely (or 5 transient times) -> Failed --start--> Running
//! ```
//! Life of a full-load-and-cdc task adds, on the source side, a logical slot
//! (CreateSlot) created before anything is read, and a snapshot holder
//! (HoldSnapshot) whose exported snapshot every segment of a table is read
//! in; the table's changes are applied from that snapshot's consistent
//! point on (see the worker's `cdc` module for why that is exact). If the
//! holder dies mid-load its snapshot is gone: tables partly loaded in it are
//! emptied (ResetTable) and loaded again in the next snapshot generation.
//! When every table is loaded, one Cdc unit streams the slot for good.
//!
//! Fencing: each grant of a unit to a worker gets a fresh epoch from a global
//! counter. Renewals, progress and completion must quote the current epoch of
//! the unit; a worker whose lease expired (and whose unit was re-granted)
//! quotes a superseded epoch and is refused. The data path adds its own fence
//! on the target (see the worker's `load` module), so even a refused zombie
//! cannot double-apply a segment.

use crate::cutover::{Switch, SwitchPlan};
use crate::planner;
use ferry_common::access::Role;
use ferry_common::endpoint::Endpoint;
use ferry_common::mapping::TableMappings;
use ferry_common::plan::{ChangeTracking, SegmentBounds, SegmentLocator};
use ferry_common::position::Position;
use ferry_common::schema::{ConstraintKind, SourceSchema, TableSchema};
use ferry_common::settings::{CachedChanges, ErrorAction, Escalation, TaskSettings};
use ferry_common::stop::CdcStop;
use ferry_common::typemap::{self, Kind};
use ferry_common::work::{
    CdcNames, CdcProgress, CdcTable, ChangedSegments, Errand, ProgressDetail, TableCounters, TableRef,
    ValidationFailure, Work, WorkResult,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MigrationType {
    FullLoad,
    Cdc,
    FullLoadAndCdc,
}

impl MigrationType {
    pub fn parse(s: &str) -> Option<MigrationType> {
        match s {
            "full-load" => Some(MigrationType::FullLoad),
            "cdc" => Some(MigrationType::Cdc),
            "full-load-and-cdc" => Some(MigrationType::FullLoadAndCdc),
            _ => None,
        }
    }
    pub fn as_str(&self) -> &'static str {
        match self {
            MigrationType::FullLoad => "full-load",
            MigrationType::Cdc => "cdc",
            MigrationType::FullLoadAndCdc => "full-load-and-cdc",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSpec {
    pub name: String,
    pub source: Endpoint,
    pub target: Endpoint,
    pub migration_type: MigrationType,
    pub mappings: TableMappings,
    pub settings: TaskSettings,
    /// CDC: start at this position of an existing slot (`--cdc-start-position`).
    #[serde(default)]
    pub cdc_start_position: Option<Position>,
    /// CDC: use this existing slot instead of creating `ferry_<task>`.
    #[serde(default)]
    pub slot_name: Option<String>,
    /// `--schema-dir`: the task runs these files instead of its own DDL.
    #[serde(default)]
    pub schema_files: Option<ferry_common::work::SchemaFiles>,
    /// The named endpoints (`--source NAME`) the source and target came
    /// from, if they did: such an endpoint is not deleted under the task.
    #[serde(default)]
    pub source_endpoint: Option<String>,
    #[serde(default)]
    pub target_endpoint: Option<String>,
}

impl TaskSpec {
    pub fn endpoint_names(&self) -> [Option<&str>; 2] {
        [self.source_endpoint.as_deref(), self.target_endpoint.as_deref()]
    }
    pub fn has_cdc(&self) -> bool {
        self.migration_type != MigrationType::FullLoad
    }
    pub fn has_load(&self) -> bool {
        self.migration_type != MigrationType::Cdc && !self.settings.validation.only
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskState {
    Created,
    Running,
    Stopped,
    Completed,
    Failed,
    /// Dropping the slot and publications on the source before removal.
    Deleting,
}

impl TaskState {
    pub fn as_str(&self) -> &'static str {
        match self {
            TaskState::Created => "created",
            TaskState::Running => "running",
            TaskState::Stopped => "stopped",
            TaskState::Completed => "completed",
            TaskState::Failed => "failed",
            TaskState::Deleting => "deleting",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum UnitKind {
    Introspect,
    Prepare,
    Load {
        table: usize,
        segment: u32,
    },
    PostData {
        table: usize,
    },
    Finalize,
    CreateSlot,
    Snapshot,
    Reset {
        table: usize,
    },
    Cdc,
    DropSlot,
    /// Compare a loaded segment with the source (ValidationSettings).
    Validate {
        table: usize,
        segment: u32,
    },
    /// A cutover step an operator asked for (`ferry cutover`).
    Step(StepKind),
    /// `ferry task reload-table`: read the table's definition again, then
    /// empty, reshape and reload it (see [`Task::reload`]).
    Reintrospect {
        table: usize,
    },
}

/// Cutover steps carried out by a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum StepKind {
    FreezeSource,
    UnfreezeSource,
    /// Rollback: the reverse task's target is the original source, frozen
    /// by the cutover; it takes writes again.
    UnfreezeTarget,
    SyncSequences,
}

impl UnitKind {
    /// Long-lived units that hold a source connection rather than a worker's
    /// capacity: the snapshot holder.
    fn is_background(&self) -> bool {
        *self == UnitKind::Snapshot
    }
    /// Per-segment units, which share MaxFullLoadSubTasks.
    fn is_segment_work(&self) -> bool {
        matches!(self, UnitKind::Load { .. } | UnitKind::Validate { .. })
    }
    fn is_stream(&self) -> bool {
        matches!(self, UnitKind::Cdc | UnitKind::Snapshot)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum UnitState {
    Pending { not_before_ms: u64 },
    Running { assignment: u64, epoch: u64 },
    Done,
    Failed { error: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unit {
    pub kind: UnitKind,
    pub state: UnitState,
    pub attempts: u32,
    /// Rows copied (Load units): in-flight progress, final when Done.
    pub rows: u64,
    /// Rows the target could not store (Load units, when Done).
    #[serde(default)]
    pub exceptions: u64,
    /// Rows stored with a LOB value cut to the task's limit (Load units).
    #[serde(default)]
    pub truncated: u64,
    /// Validate units, when Done: differences found, and the first few.
    #[serde(default)]
    pub failures: u64,
    #[serde(default)]
    pub sample: Vec<ValidationFailure>,
    /// Validate units: CDC changed the segment while it was being compared;
    /// compare it again when this run completes.
    #[serde(default)]
    pub rerun: bool,
    /// Validate units: times the segment was queued again because CDC
    /// changed it after it was compared.
    #[serde(default)]
    pub revalidations: u32,
    /// Validate units: where the segment is in a cutover's final validation.
    #[serde(default)]
    pub cutover_check: CutoverCheck,
}

/// A Validate unit's part in `ferry cutover`'s final validation: every
/// segment not known to be clean must complete a comparison that *started*
/// after the cutover asked (once the source's last change was applied), so
/// that comparison has seen every change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum CutoverCheck {
    #[default]
    None,
    /// Asked for; the next comparison to start satisfies it.
    Requested,
    /// A comparison that started after the request is running.
    Started,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TablePlan {
    pub segments: Vec<SegmentBounds>,
    pub load_started_at_ms: u64,
    pub load_finished_at_ms: u64,
    /// Snapshot generation the table's segments are read in (CDC tasks).
    #[serde(default)]
    pub gen: Option<u64>,
    /// That snapshot's consistent point: CDC applies commits from here on.
    #[serde(default)]
    pub apply_from: Option<Position>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    pub gen: u64,
    pub name: String,
    pub lsn: Position,
}

/// A CDC task's replication state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CdcState {
    pub names: CdcNames,
    /// Where the task's slot begins (set by CreateSlot).
    pub consistent_point: Option<Position>,
    /// Applied and committed on the target; the source may discard WAL
    /// before it. None until the stream's first commit.
    pub checkpoint: Option<Position>,
    pub marks_requested: u64,
    /// The latest report of the stream (its per-table deltas folded into
    /// `counters`).
    pub progress: CdcProgress,
    pub progress_at_ms: u64,
    /// Tables whose updates/deletes are not captured, with the reason.
    pub insert_only: BTreeMap<String, String>,
    pub table_errors: BTreeMap<String, String>,
    pub counters: BTreeMap<String, TableCounters>,
    /// Tables reloaded because they were altered on the source, with the
    /// change that caused it (see [`Task::altered`]).
    #[serde(default)]
    pub reloaded_for: BTreeMap<String, String>,
    /// Tables that left the task because the source dropped them (or they
    /// were renamed away), with what became of the target table (see
    /// [`Task::source_dropped`]).
    #[serde(default)]
    pub dropped: BTreeMap<String, String>,
}

impl CdcState {
    fn new(spec: &TaskSpec) -> CdcState {
        let base = object_name(&spec.name);
        CdcState {
            names: CdcNames {
                slot: spec.slot_name.clone().unwrap_or_else(|| base.clone()),
                publication: base.clone(),
                publication_insert_only: format!("{base}_insert_only"),
            },
            consistent_point: None,
            checkpoint: None,
            marks_requested: 0,
            progress: CdcProgress::default(),
            progress_at_ms: 0,
            insert_only: BTreeMap::new(),
            table_errors: BTreeMap::new(),
            counters: BTreeMap::new(),
            reloaded_for: BTreeMap::new(),
            dropped: BTreeMap::new(),
        }
    }
}

/// A table as work carries it: without the key samples only planning needs.
fn for_work(t: &TableSchema) -> TableSchema {
    let mut t = t.clone();
    t.key_samples.clear();
    t
}

/// A table's validation (see [`Task::table_validation`]).
pub struct TableValidation {
    pub state: &'static str,
    /// Source rows compared.
    pub rows: u64,
    pub failures: u64,
    /// Segments not compared yet (or changed since).
    pub pending: u32,
    /// Times segments were queued again because CDC changed them.
    pub revalidated: u64,
    pub sample: Vec<ValidationFailure>,
}

/// The task that replicates `name`'s target back to its source after a
/// cutover (`ferry cutover`, `ferry rollback`).
pub fn reverse_name(name: &str) -> String {
    format!("{name}-reverse")
}

impl TaskSpec {
    /// CDC from this task's target back to its source, for the same tables.
    /// DO_NOTHING: the source's tables are there and must not be touched.
    pub fn reversed(&self) -> TaskSpec {
        TaskSpec {
            name: reverse_name(&self.name),
            source: self.target.clone(),
            target: self.source.clone(),
            migration_type: MigrationType::Cdc,
            mappings: self.mappings.clone(),
            settings: TaskSettings {
                prep_mode: ferry_common::settings::TargetTablePrepMode::DoNothing,
                capacity: self.settings.capacity,
                ..TaskSettings::default()
            },
            cdc_start_position: None,
            slot_name: None,
            schema_files: None,
            source_endpoint: self.target_endpoint.clone(),
            target_endpoint: self.source_endpoint.clone(),
        }
    }
}

/// `ferry_<task>` as a replication slot / publication name: lower case
/// letters, digits and underscores, at most 63 bytes; a hash keeps names
/// apart when sanitizing made two tasks' names equal.
pub fn object_name(task: &str) -> String {
    let clean: String = task
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if clean == task && clean.len() <= 40 {
        return format!("ferry_{clean}");
    }
    let h = task.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    let cut: String = clean.chars().take(32).collect();
    format!("ferry_{cut}_{:08x}", h as u32)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub spec: TaskSpec,
    pub state: TaskState,
    pub error: Option<String>,
    pub schema: Option<SourceSchema>,
    pub plans: Vec<TablePlan>,
    pub units: Vec<Unit>,
    pub created_at_ms: u64,
    pub started_at_ms: u64,
    pub finished_at_ms: u64,
    #[serde(default)]
    pub cdc: Option<CdcState>,
    /// The snapshot the task's segments are read in, while a holder keeps
    /// it open (see [`Task::needs_load_snapshot`]).
    #[serde(default)]
    pub snapshot: Option<SnapshotInfo>,
    /// Generation the next snapshot holder exports.
    #[serde(default)]
    pub next_gen: u64,
    /// Objects of a reviewed post-data.sql the target refused, `(object,
    /// error)`: reported, while the loaded rows stand.
    #[serde(default)]
    pub failed_objects: Vec<(String, String)>,
    /// Tables being reloaded whose columns changed on the source: the
    /// definition the target table has, until its Reset reshapes it.
    #[serde(default)]
    pub reshape_from: BTreeMap<usize, TableSchema>,
    /// Tables created again on the source after a drop, until their Reset
    /// replaces the target table of their name.
    #[serde(default)]
    pub recreated: BTreeSet<usize>,
    /// The cutover (or, on a `-reverse` task, the rollback) in progress or
    /// last run (see [`crate::cutover`]).
    #[serde(default)]
    pub switch: Option<Switch>,
    /// FullLoadSettings.StopTaskCachedChanges*: where the stop after the
    /// full load stands (see [`Task::stop_after_load`]).
    #[serde(default)]
    pub load_stop: LoadStop,
    /// `--cdc-stop-position`: the stream stops before the first
    /// transaction committed after it, and the task with it (cleared then).
    #[serde(default)]
    pub cdc_stop: Option<CdcStop>,
    /// Tables a SUSPEND_TABLE policy stopped during their full load, with
    /// the reason (see [`Task::suspend_load`]).
    #[serde(default)]
    pub load_errors: BTreeMap<usize, String>,
}

/// The progress of a stop after the full load
/// (`StopTaskCachedChangesNotApplied` / `Applied`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum LoadStop {
    /// Not reached yet (or not asked for).
    #[default]
    Ahead,
    /// The stream runs until it reaches this caught-up mark, requested
    /// when it first started.
    AtMark(u64),
    /// Stopped once; the task goes on when started again.
    Done,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerInfo {
    pub name: String,
    pub slots: u32,
    pub last_seen_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub task: String,
    pub unit: usize,
    pub worker: u64,
    pub epoch: u64,
    pub expires_ms: u64,
}

/// Everything the coordinator knows. Keyed so that applying an entry touches
/// few keys (see `raft::state_machine` for how it is persisted).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub next_worker_id: u64,
    pub next_assignment_id: u64,
    pub next_epoch: u64,
    pub workers: BTreeMap<u64, WorkerInfo>,
    pub tasks: BTreeMap<String, Task>,
    /// Live assignments by id.
    pub leases: BTreeMap<u64, Lease>,
    /// API tokens by name: their digests only (see `ferry_common::access`).
    #[serde(default)]
    pub tokens: BTreeMap<String, TokenRecord>,
    /// Named endpoints (`ferry endpoint`): where a secret may be sent.
    #[serde(default)]
    pub endpoints: BTreeMap<String, EndpointRecord>,
    /// One-shot jobs for any idle worker, by id (see [`ErrandState`]).
    #[serde(default)]
    pub errands: BTreeMap<u64, ErrandState>,
}

/// A job for any idle worker outside every task (`ferry endpoint test`):
/// queued by the node that was asked, taken by the first worker to pull
/// (through the log, so two workers never both take it), answered by that
/// worker, and removed by the asker once read — or, if the asker is gone,
/// when it is [`ERRAND_TTL_MS`] old. It lives in the replicated state so a
/// worker polling any node can take it and a leader change loses nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrandState {
    pub errand: Errand,
    pub queued_ms: u64,
    /// The worker that took it.
    pub worker: Option<u64>,
    /// Its answer (JSON) or why it failed, once done.
    pub outcome: Option<Result<String, String>>,
}

pub const ERRAND_TTL_MS: u64 = 5 * 60 * 1000;

/// An endpoint an admin registered: its URL binds the secret reference it
/// names to its server, user and transport (see `Endpoint::uses_secret_of`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointRecord {
    pub endpoint: Endpoint,
    pub created_ms: u64,
}

/// A token the admin API issued. The token itself is shown once, to the
/// admin who created it; the coordinator keeps its SHA-256 digest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub role: Role,
    pub digest: String,
    pub created_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    QueueErrand {
        errand: Errand,
        now_ms: u64,
    },
    TakeErrand {
        worker: u64,
    },
    FinishErrand {
        id: u64,
        worker: u64,
        outcome: Result<String, String>,
    },
    DropErrand {
        id: u64,
    },
    CreateEndpoint {
        name: String,
        endpoint: Endpoint,
        now_ms: u64,
    },
    DeleteEndpoint {
        name: String,
    },
    CreateToken {
        name: String,
        role: Role,
        digest: String,
        now_ms: u64,
    },
    RevokeToken {
        name: String,
    },
    CreateTask {
        spec: Box<TaskSpec>,
        now_ms: u64,
        /// `--cdc-stop-position`.
        #[serde(default)]
        cdc_stop: Option<CdcStop>,
    },
    StartTask {
        name: String,
        now_ms: u64,
        /// `--cdc-stop-position`: replaces the task's stop, if any.
        #[serde(default)]
        cdc_stop: Option<CdcStop>,
    },
    StopTask {
        name: String,
    },
    DeleteTask {
        name: String,
        /// Remove at once, leaving the source's slot and publications.
        #[serde(default)]
        force: bool,
    },
    /// `ferry task wait --for caught-up`: ask the stream to emit a mark.
    Mark {
        name: String,
    },
    /// `ferry task reload-table`: load `table` again from a new snapshot
    /// and have CDC carry on from there.
    ReloadTable {
        name: String,
        table: String,
    },
    /// `ferry cutover` / `ferry rollback`: record the switch and enter its
    /// first step (see [`crate::cutover`]).
    StartSwitch {
        name: String,
        plan: SwitchPlan,
        now_ms: u64,
    },
    /// The leader saw step `at` of the switch complete.
    AdvanceSwitch {
        name: String,
        at: usize,
        note: String,
        now_ms: u64,
    },
    /// Step `at` of the switch cannot complete.
    FailSwitch {
        name: String,
        at: usize,
        error: String,
    },
    /// `--resume`: enter a failed step again.
    ResumeSwitch {
        name: String,
        now_ms: u64,
    },
    /// `ferry cutover --unfreeze-source`: give up and unfreeze the source.
    AbandonSwitch {
        name: String,
        now_ms: u64,
    },
    RegisterWorker {
        name: String,
        slots: u32,
        now_ms: u64,
    },
    Grant {
        worker: u64,
        now_ms: u64,
        lease_ms: u64,
    },
    Renew {
        worker: u64,
        assignments: Vec<(u64, u64)>,
        now_ms: u64,
        lease_ms: u64,
    },
    Progress {
        assignment: u64,
        epoch: u64,
        rows: u64,
        #[serde(default)]
        detail: Option<Box<ProgressDetail>>,
        #[serde(default)]
        now_ms: u64,
    },
    Complete {
        assignment: u64,
        epoch: u64,
        result: Box<WorkResult>,
        now_ms: u64,
    },
    Fail {
        assignment: u64,
        epoch: u64,
        error: String,
        retryable: bool,
        /// A SUSPEND_TABLE policy stopped the unit's table (see
        /// [`Task::suspend_load`]).
        #[serde(default)]
        suspend_table: bool,
        now_ms: u64,
    },
    ExpireLeases {
        now_ms: u64,
    },
    /// A draining worker hands an assignment back unfinished: its unit is
    /// pending again at once, without counting as a failed attempt.
    Release {
        assignment: u64,
        epoch: u64,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub enum Response {
    #[default]
    Ok,
    Error(String),
    /// Epoch superseded or assignment unknown.
    Fenced(String),
    Worker(u64),
    Granted(Option<GrantedWork>),
    Renewed {
        revoked: Vec<u64>,
        unknown_worker: bool,
    },
    /// Progress stored; the highest mark the CLI has asked for.
    Progressed {
        mark_requested: u64,
    },
    Mark(u64),
    /// The unit index of an added cutover step.
    Step(u32),
    /// Segments queued for comparison.
    Queued(u32),
    /// The task was removed at once (no source-side cleanup needed).
    Deleted,
    /// A queued errand's id.
    Errand(u64),
    /// The errand a worker took, if one was waiting.
    TakenErrand(Option<(u64, Box<Errand>)>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GrantedWork {
    pub id: u64,
    pub epoch: u64,
    pub task: String,
    pub work: Box<Work>,
    /// The task's control tables on its target (ControlTablesSettings).
    #[serde(default)]
    pub control: ferry_common::control::ControlTables,
}

/// What the apply changed, so the store persists only those keys.
#[derive(Debug, Default)]
pub struct Dirty {
    pub tasks: Vec<String>,
    pub deleted_tasks: Vec<String>,
    pub meta: bool,
}

impl State {
    pub fn apply(&mut self, req: Request, dirty: &mut Dirty) -> Response {
        dirty.meta = true; // counters, workers and leases live under the meta key
        match req {
            Request::QueueErrand { errand, now_ms } => {
                self.next_assignment_id += 1;
                let id = self.next_assignment_id;
                self.errands.insert(
                    id,
                    ErrandState {
                        errand,
                        queued_ms: now_ms,
                        worker: None,
                        outcome: None,
                    },
                );
                Response::Errand(id)
            }
            Request::TakeErrand { worker } => {
                if !self.workers.contains_key(&worker) {
                    return Response::Fenced(format!("worker {worker} is not registered"));
                }
                let taken = self
                    .errands
                    .iter_mut()
                    .find(|(_, e)| e.worker.is_none())
                    .map(|(id, e)| {
                        e.worker = Some(worker);
                        (*id, Box::new(e.errand.clone()))
                    });
                Response::TakenErrand(taken)
            }
            Request::FinishErrand { id, worker, outcome } => match self.errands.get_mut(&id) {
                Some(e) if e.worker == Some(worker) => {
                    e.outcome = Some(outcome);
                    Response::Ok
                }
                // Its asker gave up and removed it: nobody waits for it.
                _ => Response::Fenced(format!("errand {id} is not held by worker {worker}")),
            },
            Request::DropErrand { id } => {
                self.errands.remove(&id);
                Response::Ok
            }
            Request::CreateToken {
                name,
                role,
                digest,
                now_ms,
            } => {
                if self.tokens.contains_key(&name) {
                    return Response::Error(format!("token {name} already exists"));
                }
                self.tokens.insert(
                    name,
                    TokenRecord {
                        role,
                        digest,
                        created_ms: now_ms,
                    },
                );
                Response::Ok
            }
            Request::CreateEndpoint { name, endpoint, now_ms } => {
                if self.endpoints.contains_key(&name) {
                    return Response::Error(format!("endpoint {name} already exists"));
                }
                self.endpoints.insert(
                    name,
                    EndpointRecord {
                        endpoint,
                        created_ms: now_ms,
                    },
                );
                Response::Ok
            }
            Request::DeleteEndpoint { name } => {
                if !self.endpoints.contains_key(&name) {
                    return Response::Error(format!("endpoint {name} not found"));
                }
                // As DMS: an endpoint in use stays until its tasks go.
                let users: Vec<&str> = self
                    .tasks
                    .values()
                    .filter(|t| t.spec.endpoint_names().contains(&Some(name.as_str())))
                    .map(|t| t.spec.name.as_str())
                    .collect();
                if !users.is_empty() {
                    return Response::Error(format!(
                        "endpoint {name} is used by task(s) {}; delete them first",
                        users.join(", ")
                    ));
                }
                self.endpoints.remove(&name);
                Response::Ok
            }
            Request::RevokeToken { name } => match self.tokens.remove(&name) {
                Some(_) => Response::Ok,
                None => Response::Error(format!("token {name} not found")),
            },
            Request::CreateTask { spec, now_ms, cdc_stop } => {
                if self.tasks.contains_key(&spec.name) {
                    return Response::Error(format!("task {} already exists", spec.name));
                }
                // Checked again here: the endpoint may have been deleted
                // since the service resolved it.
                if let Some(gone) = spec
                    .endpoint_names()
                    .into_iter()
                    .flatten()
                    .find(|n| !self.endpoints.contains_key(*n))
                {
                    return Response::Error(format!("endpoint {gone} not found"));
                }
                dirty.tasks.push(spec.name.clone());
                self.tasks.insert(
                    spec.name.clone(),
                    Task {
                        spec: *spec,
                        state: TaskState::Created,
                        error: None,
                        schema: None,
                        plans: vec![],
                        units: vec![],
                        created_at_ms: now_ms,
                        started_at_ms: 0,
                        finished_at_ms: 0,
                        cdc: None,
                        snapshot: None,
                        next_gen: 0,
                        failed_objects: vec![],
                        reshape_from: BTreeMap::new(),
                        recreated: BTreeSet::new(),
                        switch: None,
                        load_stop: LoadStop::Ahead,
                        load_errors: BTreeMap::new(),
                        cdc_stop,
                    },
                );
                Response::Ok
            }
            Request::StartTask { name, now_ms, cdc_stop } => {
                // While the reverse stream writes into this task's source,
                // this task's slot would carry those writes straight back.
                let reverse = reverse_name(&name);
                if self.tasks.get(&reverse).is_some_and(|r| r.state == TaskState::Running) {
                    return Response::Error(format!(
                        "task {reverse} replicates {name}'s target back to its source: `ferry rollback {name}` or stop it first"
                    ));
                }
                let Some(task) = self.tasks.get_mut(&name) else {
                    return Response::Error(format!("task {name} not found"));
                };
                dirty.tasks.push(name.clone());
                if cdc_stop.is_some() {
                    if !task.spec.has_cdc() {
                        return Response::Error(format!(
                            "--cdc-stop-position: task {name} is a full-load task; it has no CDC to stop"
                        ));
                    }
                    if task.state == TaskState::Running {
                        return Response::Error(format!(
                            "--cdc-stop-position: task {name} is running; `ferry task stop {name}` first, then start it with the stop position"
                        ));
                    }
                }
                match task.state {
                    TaskState::Running => return Response::Ok,
                    TaskState::Deleting => return Response::Error(format!("task {name} is being deleted")),
                    TaskState::Completed => {
                        return Response::Error(format!(
                            "task {name} has already completed; delete and create it again to reload"
                        ))
                    }
                    _ => {}
                }
                if cdc_stop.is_some() {
                    task.cdc_stop = cdc_stop;
                }
                if task.units.is_empty() {
                    task.units.push(Unit::new(UnitKind::Introspect));
                }
                if task.spec.has_cdc() && task.cdc.is_none() {
                    task.cdc = Some(CdcState::new(&task.spec));
                }
                for u in task.units.iter_mut() {
                    if matches!(u.state, UnitState::Failed { .. }) {
                        u.state = UnitState::Pending { not_before_ms: 0 };
                        u.attempts = 0;
                    }
                }
                task.state = TaskState::Running;
                task.error = None;
                if task.started_at_ms == 0 {
                    task.started_at_ms = now_ms;
                }
                Response::Ok
            }
            Request::StopTask { name } => {
                let Some(task) = self.tasks.get_mut(&name) else {
                    return Response::Error(format!("task {name} not found"));
                };
                dirty.tasks.push(name.clone());
                if task.state == TaskState::Running {
                    task.state = TaskState::Stopped;
                }
                self.revoke_task(&name);
                Response::Ok
            }
            Request::DeleteTask { name, force } => {
                let Some(task) = self.tasks.get_mut(&name) else {
                    return Response::Error(format!("task {name} not found"));
                };
                // A slot left behind pins WAL on the source forever: a task
                // that may have created one is deleted by a DropSlot unit.
                let source_objects = task.cdc.is_some() && task.units.iter().any(|u| u.kind == UnitKind::CreateSlot);
                if force || !source_objects {
                    self.tasks.remove(&name);
                    self.leases.retain(|_, l| l.task != name);
                    dirty.deleted_tasks.push(name);
                    return Response::Deleted;
                }
                task.state = TaskState::Deleting;
                task.error = None;
                if !task.units.iter().any(|u| u.kind == UnitKind::DropSlot) {
                    task.units.push(Unit::new(UnitKind::DropSlot));
                }
                dirty.tasks.push(name.clone());
                self.revoke_task(&name);
                Response::Ok
            }
            Request::StartSwitch { name, plan, now_ms } => self.start_switch(&name, plan, now_ms, dirty),
            Request::AdvanceSwitch { name, at, note, now_ms } => self.advance_switch(&name, at, note, now_ms, dirty),
            Request::FailSwitch { name, at, error } => self.fail_switch(&name, at, error, dirty),
            Request::ResumeSwitch { name, now_ms } => self.resume_switch(&name, now_ms, dirty),
            Request::AbandonSwitch { name, now_ms } => self.abandon_switch(&name, now_ms, dirty),
            Request::ReloadTable { name, table } => {
                let Some(task) = self.tasks.get_mut(&name) else {
                    return Response::Error(format!("task {name} not found"));
                };
                let t = match task.reload(&table) {
                    Ok(t) => t,
                    Err(e) => return Response::Error(format!("task {name}: {e}")),
                };
                dirty.tasks.push(name.clone());
                // The stream stops until the table is loaded again (it
                // resumes from its checkpoint, so nothing is skipped).
                let stream = self.leases.iter().find_map(|(id, l)| {
                    (l.task == name && self.tasks[&name].units[l.unit].kind == UnitKind::Cdc).then_some(*id)
                });
                if let Some(id) = stream {
                    self.release_lease(id);
                }
                Response::Step(t as u32)
            }
            Request::Mark { name } => {
                let Some(task) = self.tasks.get_mut(&name) else {
                    return Response::Error(format!("task {name} not found"));
                };
                let Some(cdc) = task.cdc.as_mut() else {
                    return Response::Error(format!("task {name} has no change data capture"));
                };
                cdc.marks_requested += 1;
                dirty.tasks.push(name);
                Response::Mark(cdc.marks_requested)
            }
            Request::RegisterWorker { name, slots, now_ms } => {
                self.next_worker_id += 1;
                let id = self.next_worker_id;
                self.workers.insert(
                    id,
                    WorkerInfo {
                        name,
                        slots,
                        last_seen_ms: now_ms,
                    },
                );
                Response::Worker(id)
            }
            Request::Grant {
                worker,
                now_ms,
                lease_ms,
            } => {
                if !self.workers.contains_key(&worker) {
                    return Response::Fenced(format!("worker {worker} is not registered"));
                }
                Response::Granted(self.grant(worker, now_ms, lease_ms, dirty))
            }
            Request::Renew {
                worker,
                assignments,
                now_ms,
                lease_ms,
            } => {
                let Some(w) = self.workers.get_mut(&worker) else {
                    return Response::Renewed {
                        revoked: assignments.iter().map(|a| a.0).collect(),
                        unknown_worker: true,
                    };
                };
                w.last_seen_ms = now_ms;
                let mut revoked = vec![];
                for (id, epoch) in assignments {
                    match self.leases.get_mut(&id) {
                        Some(l) if l.epoch == epoch && l.worker == worker => l.expires_ms = now_ms + lease_ms,
                        _ => revoked.push(id),
                    }
                }
                Response::Renewed {
                    revoked,
                    unknown_worker: false,
                }
            }
            Request::Progress {
                assignment,
                epoch,
                rows,
                detail,
                now_ms,
            } => match self.lease(assignment, epoch) {
                Err(e) => e,
                Ok(l) => {
                    let (task, unit) = (l.task.clone(), l.unit);
                    let mut mark_requested = 0;
                    let mut restart = false;
                    let mut revoke = vec![];
                    if let Some(t) = self.tasks.get_mut(&task) {
                        t.units[unit].rows = rows;
                        if let Some(d) = detail {
                            (restart, revoke) = t.apply_progress(unit, *d, now_ms);
                        }
                        mark_requested = t.cdc.as_ref().map_or(0, |c| c.marks_requested);
                        dirty.tasks.push(task.clone());
                    }
                    if restart {
                        // A table is reloaded: the stream waits for it.
                        self.release_lease(assignment);
                    }
                    for id in revoke {
                        // Work on a dropped table: its unit is done already.
                        self.leases.remove(&id);
                    }
                    if self
                        .tasks
                        .get(&task)
                        .is_some_and(|t| matches!(t.state, TaskState::Stopped | TaskState::Failed))
                    {
                        // StopTaskCachedChangesApplied or the CDC stop
                        // position reached, or an error escalation.
                        self.revoke_task(&task);
                    }
                    Response::Progressed { mark_requested }
                }
            },
            Request::Complete {
                assignment,
                epoch,
                result,
                now_ms,
            } => match self.lease(assignment, epoch) {
                Err(e) => e,
                Ok(l) => {
                    let (task, unit) = (l.task.clone(), l.unit);
                    self.leases.remove(&assignment);
                    dirty.tasks.push(task.clone());
                    let t = self.tasks.get_mut(&task).expect("lease of a known task");
                    if !t.units[unit].runs(assignment) {
                        // Settled meanwhile (its table was dropped).
                        return Response::Ok;
                    }
                    t.complete_unit(unit, *result, now_ms);
                    if let Some(holder) = t.release_snapshot_if_loaded() {
                        self.leases.remove(&holder);
                    }
                    let failed = t.state == TaskState::Failed;
                    if t.state == TaskState::Deleting && t.done(|k| *k == UnitKind::DropSlot) {
                        self.tasks.remove(&task);
                        self.leases.retain(|_, l| l.task != task);
                        dirty.deleted_tasks.push(task);
                    } else if failed {
                        // An escalation failed it: its other work stops.
                        self.revoke_task(&task);
                    }
                    Response::Ok
                }
            },
            Request::Fail {
                assignment,
                epoch,
                error,
                retryable,
                suspend_table,
                now_ms,
            } => match self.lease(assignment, epoch) {
                Err(e) => e,
                Ok(l) => {
                    let (task, unit) = (l.task.clone(), l.unit);
                    self.leases.remove(&assignment);
                    dirty.tasks.push(task.clone());
                    let t = self.tasks.get_mut(&task).expect("lease of a known task");
                    if !t.units[unit].runs(assignment) {
                        return Response::Ok;
                    }
                    let what = t.unit_subject(unit);
                    let u = &mut t.units[unit];
                    u.attempts += 1;
                    let backoff = t.spec.settings.retry.backoff_ms(u.kind.is_stream(), u.attempts);
                    let snapshot_holder = u.kind == UnitKind::Snapshot;
                    if let Some(backoff) = backoff.filter(|_| retryable) {
                        u.state = UnitState::Pending {
                            not_before_ms: now_ms + backoff,
                        };
                        if snapshot_holder {
                            self.snapshot_lost(&task);
                        }
                    } else if matches!(u.kind, UnitKind::Step(_)) {
                        // The operator sees it in `ferry cutover`; the
                        // migration itself goes on.
                        u.state = UnitState::Failed { error: error.clone() };
                    } else if let (true, UnitKind::Load { table, .. }) = (suspend_table, u.kind) {
                        let mut ended = t.suspend_load(table, format!("{what}: {error}"), now_ms);
                        ended.extend(t.release_snapshot_if_loaded());
                        for id in ended {
                            self.leases.remove(&id);
                        }
                        if t.state == TaskState::Failed {
                            self.revoke_task(&task);
                        }
                    } else {
                        u.state = UnitState::Failed { error: error.clone() };
                        t.state = TaskState::Failed;
                        t.error = Some(format!("{what}: {error}"));
                        t.finished_at_ms = now_ms;
                        self.revoke_task(&task);
                    }
                    Response::Ok
                }
            },
            Request::Release { assignment, epoch } => match self.lease(assignment, epoch) {
                Err(e) => e,
                Ok(_) => {
                    if let Some(task) = self.release_lease(assignment) {
                        tracing::info!(
                            task,
                            assignment,
                            "assignment handed back (a draining worker, or work waiting on work without a worker)"
                        );
                        dirty.tasks.push(task);
                    }
                    Response::Ok
                }
            },
            Request::ExpireLeases { now_ms } => {
                let expired: Vec<u64> = self
                    .leases
                    .iter()
                    .filter(|(_, l)| l.expires_ms <= now_ms)
                    .map(|(id, _)| *id)
                    .collect();
                for id in expired {
                    if let Some(task) = self.release_lease(id) {
                        dirty.tasks.push(task);
                    }
                }
                // Errands whose asker is gone.
                self.errands.retain(|_, e| e.queued_ms + ERRAND_TTL_MS > now_ms);
                Response::Ok
            }
        }
    }

    /// Whether any running task has a unit that could be granted now.
    /// Whether an errand waits for a worker (read-only, for idle polls).
    pub fn errand_waiting(&self) -> bool {
        self.errands.values().any(|e| e.worker.is_none())
    }

    pub fn may_grant(&self, now_ms: u64) -> bool {
        self.tasks
            .values()
            .any(|t| t.is_active() && t.next_runnable(now_ms).is_some())
    }

    fn lease(&self, assignment: u64, epoch: u64) -> Result<&Lease, Response> {
        match self.leases.get(&assignment) {
            Some(l) if l.epoch == epoch => Ok(l),
            Some(l) => Err(Response::Fenced(format!(
                "assignment {assignment}: epoch {epoch} superseded by {}",
                l.epoch
            ))),
            None => Err(Response::Fenced(format!(
                "assignment {assignment} (epoch {epoch}) is no longer held: lease expired, task stopped or deleted"
            ))),
        }
    }

    fn revoke_task(&mut self, name: &str) {
        let ids: Vec<u64> = self
            .leases
            .iter()
            .filter(|(_, l)| l.task == name)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.release_lease(id);
        }
    }

    /// Takes a lease away before its unit finished (expiry, stop): the unit
    /// becomes pending again. Returns the lease's task.
    fn release_lease(&mut self, id: u64) -> Option<String> {
        let l = self.leases.remove(&id)?;
        let t = self.tasks.get_mut(&l.task)?;
        let u = &mut t.units[l.unit];
        if matches!(u.state, UnitState::Running { assignment, .. } if assignment == id) {
            u.state = UnitState::Pending { not_before_ms: 0 };
            u.rows = 0;
            if u.kind == UnitKind::Snapshot {
                self.snapshot_lost(&l.task);
            }
        }
        Some(l.task)
    }

    /// The snapshot holder is gone, and with it the snapshot: a table with
    /// segments read in it but not all of them committed can no longer be
    /// completed consistently. Such tables are emptied and loaded again in
    /// the next generation; tables already complete keep their snapshot's
    /// consistent point, which the slot (older than any snapshot) covers.
    fn snapshot_lost(&mut self, name: &str) {
        let Some(t) = self.tasks.get_mut(name) else { return };
        let Some(snap) = t.snapshot.take() else {
            return;
        };
        let mut orphaned = vec![];
        for table in 0..t.plans.len() {
            let is_load = |k: &UnitKind| matches!(k, UnitKind::Load { table: x, .. } if *x == table);
            if t.plans[table].gen != Some(snap.gen) || t.done(is_load) {
                continue;
            }
            t.plans[table].gen = None;
            t.plans[table].apply_from = None;
            for u in t.units.iter_mut().filter(|u| is_load(&u.kind)) {
                if let UnitState::Running { assignment, .. } = u.state {
                    orphaned.push(assignment);
                }
                u.state = UnitState::Pending { not_before_ms: 0 };
                u.rows = 0;
            }
            let reset_pending = t
                .units
                .iter()
                .any(|u| u.kind == (UnitKind::Reset { table }) && u.state != UnitState::Done);
            if !reset_pending {
                t.units.push(Unit::new(UnitKind::Reset { table }));
            }
            tracing::warn!(
                task = name,
                table,
                gen = snap.gen,
                "snapshot lost mid-load: the table will be reloaded"
            );
        }
        for id in orphaned {
            self.leases.remove(&id);
        }
    }

    /// Picks the next runnable unit, oldest task first. Deterministic.
    fn grant(&mut self, worker: u64, now_ms: u64, lease_ms: u64, dirty: &mut Dirty) -> Option<GrantedWork> {
        let held = self
            .leases
            .values()
            .filter(|l| l.worker == worker)
            .filter(|l| {
                !self
                    .tasks
                    .get(&l.task)
                    .is_some_and(|t| t.units[l.unit].kind.is_background())
            })
            .count() as u32;
        let slots = self.workers.get(&worker).map_or(1, |w| w.slots.max(1));
        if held >= slots {
            return None;
        }
        let mut names: Vec<&String> = self.tasks.keys().collect();
        names.sort_by_key(|n| (self.tasks[*n].created_at_ms, (*n).clone()));
        let names: Vec<String> = names.into_iter().cloned().collect();
        // Streams whose holder stopped renewing (renewals come every
        // quarter lease): likely dead, the lease not yet expired. Their
        // validation, which waits for the stream, is not handed out
        // meanwhile: it would sit in the slot the stream needs next.
        let fading: BTreeSet<String> = self
            .leases
            .values()
            .filter(|l| l.expires_ms < now_ms + lease_ms / 2)
            .filter(|l| {
                self.tasks
                    .get(&l.task)
                    .is_some_and(|t| t.units[l.unit].kind == UnitKind::Cdc)
            })
            .map(|l| l.task.clone())
            .collect();
        for name in names {
            let task = self.tasks.get_mut(&name).expect("listed");
            if !task.is_active() {
                continue;
            }
            let Some(unit) = task.next_runnable(now_ms) else {
                continue;
            };
            if fading.contains(&name) && matches!(task.units[unit].kind, UnitKind::Validate { .. }) {
                continue;
            }
            if task.units[unit].kind == UnitKind::Cdc && task.stop_after_load() {
                dirty.tasks.push(name.clone());
                continue;
            }
            task.on_grant(unit, now_ms);
            let work = task.work_for(unit);
            self.next_assignment_id += 1;
            self.next_epoch += 1;
            let (id, epoch) = (self.next_assignment_id, self.next_epoch);
            let u = &mut task.units[unit];
            u.state = UnitState::Running { assignment: id, epoch };
            u.rows = 0;
            if let UnitKind::Load { table, .. } = u.kind {
                let p = &mut task.plans[table];
                if p.load_started_at_ms == 0 {
                    p.load_started_at_ms = now_ms;
                }
            }
            self.leases.insert(
                id,
                Lease {
                    task: name.clone(),
                    unit,
                    worker,
                    epoch,
                    expires_ms: now_ms + lease_ms,
                },
            );
            dirty.tasks.push(name.clone());
            let control = task.spec.settings.control.clone();
            return Some(GrantedWork {
                id,
                epoch,
                task: name,
                work: Box::new(work),
                control,
            });
        }
        None
    }
}

impl Unit {
    /// Whether assignment `id` is running this unit (a report from one that
    /// is not belongs to work settled or started over meanwhile).
    fn runs(&self, id: u64) -> bool {
        matches!(self.state, UnitState::Running { assignment, .. } if assignment == id)
    }

    pub(crate) fn new(kind: UnitKind) -> Unit {
        Unit {
            kind,
            state: UnitState::Pending { not_before_ms: 0 },
            attempts: 0,
            rows: 0,
            exceptions: 0,
            truncated: 0,
            failures: 0,
            sample: vec![],
            rerun: false,
            revalidations: 0,
            cutover_check: CutoverCheck::None,
        }
    }
}

impl Task {
    fn done(&self, pred: impl Fn(&UnitKind) -> bool) -> bool {
        self.units
            .iter()
            .filter(|u| pred(&u.kind))
            .all(|u| u.state == UnitState::Done)
    }

    /// FullLoadSettings.StopTaskCachedChanges*, when the stream is about
    /// to start for the first time (the full load is complete): NotApplied
    /// stops the task here (true: the stream is not started); Applied asks
    /// for a caught-up mark, at which the stream's progress stops the task
    /// (every change committed before the mark is applied by then).
    fn stop_after_load(&mut self) -> bool {
        let (Some(stop), LoadStop::Ahead) = (self.spec.settings.stop_after_load, self.load_stop) else {
            return false;
        };
        match (stop, self.cdc.as_mut()) {
            (CachedChanges::NotApplied, _) => {
                self.load_stop = LoadStop::Done;
                self.state = TaskState::Stopped;
                self.error = Some(format!(
                    "stopped after the full load, before applying the changes made during it ({}); `ferry task start` applies them and goes on",
                    stop.setting()
                ));
                true
            }
            (CachedChanges::Applied, Some(cdc)) => {
                cdc.marks_requested += 1;
                self.load_stop = LoadStop::AtMark(cdc.marks_requested);
                false
            }
            (CachedChanges::Applied, None) => false,
        }
    }

    pub(crate) fn is_active(&self) -> bool {
        matches!(self.state, TaskState::Running | TaskState::Deleting)
    }

    /// Capacity units the task holds: its running units, less the snapshot
    /// holder (which idles on a connection, not on a slot).
    pub fn granted(&self) -> u32 {
        self.units
            .iter()
            .filter(|u| matches!(u.state, UnitState::Running { .. }) && !u.kind.is_background())
            .count() as u32
    }

    /// The task runs as much at once as its MaxCapacityUnits allows.
    fn at_max_capacity(&self) -> bool {
        self.spec.settings.capacity.max.is_some_and(|max| self.granted() >= max)
    }

    /// Tables Ferry creates for a full load only get their primary key after
    /// the load (CDC needs keys while tables load; other modes keep the
    /// user's table as it is).
    /// Whether target tables may hold rows the task did not load (see
    /// `Work::LoadSegment`).
    fn target_may_hold_rows(&self) -> bool {
        self.spec.settings.prep_mode == ferry_common::settings::TargetTablePrepMode::DoNothing
    }

    fn defer_primary_key(&self) -> bool {
        // Schema files create the keys themselves, before the load.
        self.spec.schema_files.is_none()
            && !self.spec.has_cdc()
            && self.spec.settings.prep_mode == ferry_common::settings::TargetTablePrepMode::DropAndCreate
    }

    /// Whether a full load (without CDC) must read its segments in one
    /// exported snapshot. Key ranges need not: each reads its own rows in a
    /// snapshot of its own, and a row stays in its range when updated (unless
    /// its key changes, which a full load without CDC does not promise to
    /// capture). Block ranges do: an update writes the row's new version
    /// wherever the heap has room, so a row updated between two segments'
    /// snapshots could be read by both or by neither.
    fn needs_load_snapshot(plans: &[TablePlan]) -> bool {
        plans
            .iter()
            .any(|p| p.segments.len() > 1 && p.segments.iter().any(|s| matches!(s, SegmentBounds::Ctid { .. })))
    }

    fn snapshot(&self) -> Option<&SnapshotInfo> {
        self.snapshot.as_ref()
    }

    /// Whether table `table`'s segments are read in the task's shared
    /// snapshot: every table a CDC task loads (a cdc-only task's: those that
    /// joined it), whose changes apply from that snapshot's position; in a
    /// full load only tables cut into block ranges, so that a lost holder
    /// reloads those and nothing else.
    fn reads_in_snapshot(&self, table: usize) -> bool {
        self.units.iter().any(|u| u.kind == UnitKind::Snapshot)
            && (self.spec.has_cdc() || Task::needs_load_snapshot(&self.plans[table..=table]))
    }

    /// Unit dependencies: Prepare and CreateSlot after Introspect (implicit:
    /// created then), loads after Prepare (and, with CDC, inside a live
    /// snapshot of the table's generation, after any reset of the table), a
    /// table's PostData after its loads, Finalize after every PostData, the
    /// CDC stream after everything but the snapshot holder.
    pub(crate) fn runnable(&self, kind: &UnitKind) -> bool {
        let prepared = || self.done(|k| *k == UnitKind::Prepare);
        match kind {
            UnitKind::Introspect
            | UnitKind::Prepare
            | UnitKind::CreateSlot
            | UnitKind::Step(_)
            | UnitKind::Reintrospect { .. } => true,
            // A ValidationOnly task has nothing else; otherwise the table
            // is compared once the load is complete with its constraints.
            // With CDC, only once the stream runs: validation waits for it
            // to apply what differs (and must not take its worker slot).
            UnitKind::Validate { .. } => {
                self.spec.settings.validation.only
                    || self.done(|k| *k == UnitKind::Finalize)
                        && (!self.spec.has_cdc()
                            || self
                                .units
                                .iter()
                                .any(|u| u.kind == UnitKind::Cdc && matches!(u.state, UnitState::Running { .. })))
            }
            UnitKind::DropSlot => self.state == TaskState::Deleting,
            UnitKind::Snapshot => {
                self.done(|k| *k == UnitKind::CreateSlot)
                    && self
                        .units
                        .iter()
                        .any(|u| matches!(u.kind, UnitKind::Load { .. }) && u.state != UnitState::Done)
            }
            UnitKind::Reset { table } => {
                prepared() && self.snapshot().is_some() && self.done(|k| *k == UnitKind::Reintrospect { table: *table })
            }
            UnitKind::Load { table, .. } => {
                prepared()
                    && (!self.reads_in_snapshot(*table)
                        || self
                            .snapshot()
                            .is_some_and(|s| self.plans[*table].gen.is_none_or(|g| g == s.gen))
                            && self.done(|k| *k == UnitKind::Reset { table: *table }))
            }
            UnitKind::PostData { table } => {
                prepared() && self.done(|k| matches!(k, UnitKind::Load { table: t, .. } if t == table))
            }
            UnitKind::Finalize => self.done(|k| {
                !matches!(
                    k,
                    UnitKind::Finalize
                        | UnitKind::Cdc
                        | UnitKind::Snapshot
                        | UnitKind::DropSlot
                        | UnitKind::Validate { .. }
                        | UnitKind::Step(_)
                )
            }),
            UnitKind::Cdc => self.done(|k| {
                !matches!(
                    k,
                    UnitKind::Cdc
                        | UnitKind::Snapshot
                        | UnitKind::DropSlot
                        | UnitKind::Validate { .. }
                        | UnitKind::Step(_)
                )
            }),
        }
    }

    /// Bookkeeping at grant time: a table's first segment fixes its snapshot
    /// generation; a snapshot holder gets the next generation.
    fn on_grant(&mut self, unit: usize, now_ms: u64) {
        let kind = self.units[unit].kind;
        let snap = self.snapshot().cloned();
        match kind {
            // A stream that takes over cannot know what its predecessor
            // applied but did not report: every segment is compared again.
            UnitKind::Cdc => {
                let all = ChangedSegments {
                    all: true,
                    ..Default::default()
                };
                for t in 0..self.plans.len() {
                    self.revalidate(t, &all, now_ms);
                }
            }
            UnitKind::Validate { .. } => {
                let u = &mut self.units[unit];
                // This run sees every change reported so far.
                u.rerun = false;
                if u.cutover_check == CutoverCheck::Requested {
                    u.cutover_check = CutoverCheck::Started;
                }
            }
            UnitKind::Load { table, .. } => {
                if let Some(s) = snap.filter(|_| self.reads_in_snapshot(table)) {
                    let p = &mut self.plans[table];
                    if p.gen.is_none() {
                        p.gen = Some(s.gen);
                        p.apply_from = Some(s.lsn.clone());
                    }
                }
            }
            UnitKind::Snapshot => self.next_gen += 1,
            _ => {}
        }
    }

    /// CDC applied changes to `segments` of table `table`: a segment compared
    /// before is compared again once the change is applied (after the
    /// task's RevalidateDelaySeconds); one being compared is compared again
    /// when that run ends, since it may have read the rows before the change.
    fn revalidate(&mut self, table: usize, segments: &ChangedSegments, now_ms: u64) {
        let delay_ms = self.spec.settings.validation.revalidate_delay_s * 1000;
        for u in self.units.iter_mut() {
            let UnitKind::Validate { table: t, segment } = u.kind else {
                continue;
            };
            if t != table || !segments.contains(segment) {
                continue;
            }
            match u.state {
                UnitState::Done => {
                    u.revalidations += 1;
                    u.state = UnitState::Pending {
                        not_before_ms: now_ms + delay_ms,
                    };
                }
                UnitState::Running { .. } => u.rerun = true,
                UnitState::Pending { .. } | UnitState::Failed { .. } => {}
            }
        }
    }

    /// `ferry cutover`'s final validation: every segment waiting to be
    /// compared (never compared, or changed since) is compared now, and
    /// one being compared is compared again unless its run started after
    /// this call. Returns how many segments that is.
    pub(crate) fn validate_changed(&mut self) -> u32 {
        let mut n = 0;
        for u in self.units.iter_mut() {
            if !matches!(u.kind, UnitKind::Validate { .. }) {
                continue;
            }
            match u.state {
                UnitState::Pending { .. } => u.state = UnitState::Pending { not_before_ms: 0 },
                UnitState::Running { .. } => {}
                UnitState::Done | UnitState::Failed { .. } => continue,
            }
            u.cutover_check = CutoverCheck::Requested;
            n += 1;
        }
        n
    }

    /// Segments the cutover's final validation still waits for.
    pub fn cutover_validation_remaining(&self) -> u32 {
        self.units
            .iter()
            .filter(|u| u.cutover_check != CutoverCheck::None)
            .count() as u32
    }

    /// When the last segment is committed, the snapshot holder may let go.
    /// Returns the holder's assignment, whose lease the caller removes (the
    /// worker sees it revoked at its next heartbeat and closes the snapshot).
    fn release_snapshot_if_loaded(&mut self) -> Option<u64> {
        if !self.units.iter().any(|u| u.kind == UnitKind::Snapshot)
            || !self.done(|k| matches!(k, UnitKind::Load { .. } | UnitKind::Reset { .. }))
        {
            return None;
        }
        self.snapshot = None;
        let mut holder = None;
        for u in self.units.iter_mut().filter(|u| u.kind == UnitKind::Snapshot) {
            if let UnitState::Running { assignment, .. } = u.state {
                holder = Some(assignment);
            }
            u.state = UnitState::Done;
        }
        holder
    }

    /// Stores a work's progress report. Returns whether the CDC stream must
    /// stop because a table altered on the source is being reloaded, and
    /// the assignments (of work on dropped tables) to revoke.
    fn apply_progress(&mut self, unit: usize, detail: ProgressDetail, now_ms: u64) -> (bool, Vec<u64>) {
        let kind = self.units[unit].kind;
        let mut reload = false;
        let mut revoke = vec![];
        if let ProgressDetail::Snapshot { name, lsn } = detail {
            if kind == UnitKind::Snapshot {
                self.snapshot = Some(SnapshotInfo {
                    gen: self.next_gen,
                    name,
                    lsn,
                });
            }
            return (false, revoke);
        }
        let Some(cdc) = self.cdc.as_mut() else {
            return (false, revoke);
        };
        match detail {
            ProgressDetail::Cdc(mut p) if kind == UnitKind::Cdc => {
                let changed = std::mem::take(&mut p.changed);
                cdc.checkpoint = cdc.checkpoint.take().max(p.applied.clone());
                for (table, delta) in std::mem::take(&mut p.applied_delta) {
                    cdc.counters.entry(table).or_default().add(&delta);
                }
                for (table, error) in std::mem::take(&mut p.table_errors) {
                    cdc.table_errors.insert(table, error);
                }
                let altered = std::mem::take(&mut p.tables_altered);
                let created = std::mem::take(&mut p.new_tables);
                let dropped = std::mem::take(&mut p.tables_dropped);
                cdc.progress = p;
                cdc.progress_at_ms = now_ms;
                if cdc.progress.stop_reached {
                    if let Some(stop) = self.cdc_stop.take() {
                        self.state = TaskState::Stopped;
                        self.error = Some(format!(
                            "stopped at the CDC stop position ({stop}): every change committed before it is applied{}; `ferry task start` streams on",
                            cdc.progress.applied.as_ref().map(|p| format!(" (through {p})")).unwrap_or_default()
                        ));
                    }
                }
                if let LoadStop::AtMark(m) = self.load_stop {
                    if cdc.progress.marks_reached >= m {
                        self.load_stop = LoadStop::Done;
                        self.state = TaskState::Stopped;
                        self.error = Some(format!(
                            "stopped after the full load, with the changes made during it applied ({}); `ferry task start` goes on streaming",
                            CachedChanges::Applied.setting()
                        ));
                    }
                }
                // A stream that reports is healthy again: reset its retries.
                self.units[unit].attempts = 0;
                for (name, segments) in changed {
                    if let Some(t) = self.table_index(&name) {
                        self.revalidate(t, &segments, now_ms);
                    }
                }
                for table in dropped {
                    let note = if self.spec.settings.drop_dropped_tables {
                        "dropped on the source after its last change was applied; dropped on the target too (HandleSourceTableDropped)"
                    } else {
                        "dropped on the source after its last change was applied; the target keeps it (HandleSourceTableDropped is false)"
                    };
                    revoke.extend(self.source_dropped(&table, note));
                }
                for (table, change) in altered {
                    reload |= self.altered(&table, change);
                }
                for t in created {
                    reload |= self.add_table(t);
                }
                reload |= self.escalate(true, now_ms);
            }
            _ => {}
        }
        (reload, revoke)
    }

    /// A table left the task because the source no longer has it: dropped
    /// (the stream applied every change before the drop, and with
    /// HandleSourceTableDropped dropped it on the target), or renamed away.
    /// Nothing follows the source for it any more, so it holds up neither
    /// caught-up, nor validation, nor cutover; its outstanding work is
    /// settled as done, and the assignments running it are returned to be
    /// revoked. A table created again under its name joins the task anew
    /// ([`Task::add_table`]).
    fn source_dropped(&mut self, name: &str, note: &str) -> Vec<u64> {
        let Some(table) = self.table_index(name) else {
            return vec![];
        };
        let Some(cdc) = self.cdc.as_mut() else {
            return vec![];
        };
        if cdc.dropped.contains_key(name) {
            return vec![];
        }
        tracing::warn!(task = %self.spec.name, table = name, note, "table left the task: no longer on the source");
        cdc.dropped.insert(name.to_string(), note.to_string());
        cdc.table_errors.remove(name);
        let mut revoke = vec![];
        for u in self.units.iter_mut() {
            let ours = match u.kind {
                UnitKind::Load { table: t, .. }
                | UnitKind::PostData { table: t }
                | UnitKind::Validate { table: t, .. }
                | UnitKind::Reset { table: t }
                | UnitKind::Reintrospect { table: t } => t == table,
                _ => false,
            };
            if ours && u.state != UnitState::Done {
                if let UnitState::Running { assignment, .. } = u.state {
                    revoke.push(assignment);
                }
                u.state = UnitState::Done;
                u.rerun = false;
                u.cutover_check = CutoverCheck::None;
            }
        }
        revoke
    }

    /// The index of the task table shown as `name` (`schema.table`).
    fn table_index(&self, name: &str) -> Option<usize> {
        self.schema
            .as_ref()?
            .tables
            .iter()
            .position(|t| t.display_name() == name)
    }

    /// Whether table `name` left the task because the source dropped it.
    pub fn is_dropped(&self, name: &str) -> bool {
        self.cdc.as_ref().is_some_and(|c| c.dropped.contains_key(name))
    }

    /// A table's columns changed on the source (the stream stopped its
    /// apply): with HandleSourceTableAltered it is reloaded in its new
    /// shape, the one exact way to carry any such change (a new column's
    /// value in existing rows, or a retype's USING expression, is in no
    /// change record). Otherwise, or when the reload cannot start, or when
    /// the same change comes back right after a reload (Ferry would loop),
    /// the table stays in error. True when a reload was queued.
    fn altered(&mut self, table: &str, change: String) -> bool {
        let repeated = self
            .cdc
            .as_ref()
            .and_then(|c| c.reloaded_for.get(table))
            .is_some_and(|c| *c == change);
        let outcome = if !self.spec.settings.reload_altered_tables {
            Err(format!(
                "{change} (HandleSourceTableAltered is false: `ferry task reload-table` reloads it)"
            ))
        } else if repeated {
            Err(format!("{change}, again after the table was reloaded for it"))
        } else {
            self.reload(table)
                .map_err(|e| format!("{change}; it cannot be reloaded: {e}"))
        };
        let Some(cdc) = self.cdc.as_mut() else { return false };
        match outcome {
            Ok(_) => {
                tracing::warn!(task = %self.spec.name, table, %change, "table altered on the source: reloading it");
                cdc.reloaded_for.insert(table.to_string(), change);
                true
            }
            Err(e) => {
                cdc.table_errors.insert(table.to_string(), e);
                false
            }
        }
    }

    /// The slot name of a snapshot holder of generation `gen`.
    fn holder_slot(&self, gen: u64) -> String {
        let base = object_name(&self.spec.name);
        format!("{base}_snap_{gen}")
    }

    fn next_runnable(&self, now_ms: u64) -> Option<usize> {
        let loads_running = self
            .units
            .iter()
            .filter(|u| u.kind.is_segment_work() && matches!(u.state, UnitState::Running { .. }))
            .count() as u32;
        let deleting = self.state == TaskState::Deleting;
        // At MaxCapacityUnits only cutover steps (and the slot's drop) are
        // granted: they take a moment, and a task whose stream fills its
        // capacity must still be able to freeze its source.
        let capped = self.at_max_capacity();
        // Cutover steps run one at a time, in the order they were added: an
        // unfreeze added while a freeze is still queued or running must not
        // overtake it.
        let step_ahead = |i: usize| {
            self.units[..i].iter().any(|u| {
                matches!(u.kind, UnitKind::Step(_))
                    && matches!(u.state, UnitState::Pending { .. } | UnitState::Running { .. })
            })
        };
        self.units.iter().enumerate().position(|(i, u)| {
            matches!(u.state, UnitState::Pending { not_before_ms } if not_before_ms <= now_ms)
                && deleting == (u.kind == UnitKind::DropSlot)
                && self.runnable(&u.kind)
                && !(u.kind.is_segment_work() && loads_running >= self.spec.settings.max_full_load_subtasks)
                && !(matches!(u.kind, UnitKind::Step(_)) && step_ahead(i))
                && (!capped || matches!(u.kind, UnitKind::Step(_) | UnitKind::DropSlot))
        })
    }

    fn work_for(&self, unit: usize) -> Work {
        let spec = &self.spec;
        let schema = self.schema.clone().unwrap_or_default();
        match self.units[unit].kind {
            UnitKind::Introspect => Work::Introspect {
                source: spec.source.clone(),
                mappings: spec.mappings.clone(),
                segment_target_bytes: spec.settings.segment_target_bytes,
                max_segments_per_table: spec.settings.max_segments_per_table,
                lob: spec.settings.lob,
            },
            UnitKind::Reintrospect { table } => {
                let t = &schema.tables[table];
                Work::Reintrospect {
                    source: spec.source.clone(),
                    target: spec.target.clone(),
                    mappings: spec.mappings.clone(),
                    table: TableRef {
                        schema: t.schema.clone(),
                        name: t.name.clone(),
                    },
                    cdc: self.cdc_names(),
                    lob: spec.settings.lob,
                }
            }
            UnitKind::Prepare => {
                let mut schema = schema;
                for t in schema.tables.iter_mut() {
                    t.key_samples.clear();
                }
                Work::Prepare {
                    target: spec.target.clone(),
                    schema,
                    prep_mode: spec.settings.prep_mode,
                    defer_primary_key: self.defer_primary_key(),
                    pre_data_sql: spec.schema_files.as_ref().map(|f| f.pre_data.clone()),
                }
            }
            UnitKind::Load { table, segment } => {
                let t = for_work(&schema.tables[table]);
                Work::LoadSegment {
                    source: spec.source.clone(),
                    target: spec.target.clone(),
                    table: t,
                    segment,
                    bounds: self.plans[table].segments[segment as usize].clone(),
                    snapshot: self
                        .snapshot()
                        .filter(|_| self.reads_in_snapshot(table))
                        .map(|s| s.name.clone()),
                    gen: self.plans[table].gen.unwrap_or(0),
                    defer_primary_key: self.defer_primary_key(),
                    target_may_hold_rows: self.target_may_hold_rows(),
                    data_errors: spec.settings.data_errors,
                }
            }
            UnitKind::Reset { table } => {
                let t = for_work(&schema.tables[table]);
                Work::ResetTable {
                    target: spec.target.clone(),
                    table: t,
                    gen: self.snapshot().map_or(0, |s| s.gen),
                    previous: self.reshape_from.get(&table).map(for_work),
                    replace: self.recreated.contains(&table),
                }
            }
            UnitKind::CreateSlot => Work::CreateSlot {
                source: spec.source.clone(),
                cdc: self.cdc_names(),
                tables: schema.tables.iter().map(for_work).collect(),
                existing_slot: spec.slot_name.is_some(),
            },
            UnitKind::Snapshot => Work::HoldSnapshot {
                source: spec.source.clone(),
                // A full load only needs the snapshot, not a slot's position.
                slot: self.spec.has_cdc().then(|| self.holder_slot(self.next_gen)),
            },
            UnitKind::Cdc => {
                let cdc = self.cdc.as_ref().expect("CDC units exist only in CDC tasks");
                let origin = spec.cdc_start_position.clone().or_else(|| cdc.consistent_point.clone());
                Work::Cdc {
                    source: spec.source.clone(),
                    target: spec.target.clone(),
                    cdc: cdc.names.clone(),
                    // A dropped table's every change is applied already.
                    tables: schema
                        .tables
                        .iter()
                        .zip(&self.plans)
                        .enumerate()
                        // Nor is a table in error: its changes stay
                        // unapplied until `task reload-table` reloads it.
                        .filter(|(_, (t, _))| {
                            let name = t.display_name();
                            !cdc.dropped.contains_key(&name) && !cdc.table_errors.contains_key(&name)
                        })
                        .map(|(i, (t, p))| CdcTable {
                            table: for_work(t),
                            apply_from: p.apply_from.clone(),
                            changes: self.change_tracking(i),
                        })
                        .collect(),
                    start: cdc.checkpoint.clone().max(origin),
                    // A new table is loaded before its changes, in a cdc-only
                    // task too: every row it has was written since the task
                    // began.
                    discover: Some(spec.mappings.clone()),
                    apply_truncates: spec.settings.apply_truncates,
                    drop_dropped: spec.settings.drop_dropped_tables,
                    insert_missing: spec.settings.update_inserts_missing,
                    missing_rows: spec.settings.missing_rows,
                    lanes: spec.settings.apply_lanes,
                    data_errors: spec.settings.data_errors,
                    table_errors: spec.settings.table_errors,
                    stop: self.cdc_stop.clone(),
                    batch_timing: spec.settings.batch_timing,
                    suspended: cdc.table_errors.iter().map(|(t, e)| (t.clone(), e.clone())).collect(),
                }
            }
            UnitKind::DropSlot => Work::DropSlot {
                source: spec.source.clone(),
                cdc: self.cdc_names(),
                keep_slot: spec.slot_name.is_some(),
            },
            UnitKind::PostData { table } => {
                let mut t = for_work(&schema.tables[table]);
                if spec.schema_files.is_some() {
                    // post-data.sql builds them (at Finalize); sequences and
                    // statistics are still this unit's.
                    t.indexes.clear();
                    t.index_list.clear();
                    t.constraints.clear();
                }
                let loaded = || {
                    self.units
                        .iter()
                        .filter(|u| matches!(u.kind, UnitKind::Load { table: x, .. } if x == table))
                        .map(|u| u.rows)
                        .sum()
                };
                Work::PostData {
                    source: spec.source.clone(),
                    target: spec.target.clone(),
                    table: t,
                    defer_primary_key: self.defer_primary_key(),
                    // One segment's rows commit with the count it copied;
                    // several can interfere (see `Work::PostData`).
                    expected_rows: (!self.target_may_hold_rows() && self.plans[table].segments.len() > 1).then(loaded),
                }
            }
            UnitKind::Validate { table, segment } => {
                let t = for_work(&schema.tables[table]);
                Work::ValidateSegment {
                    task: spec.name.clone(),
                    source: spec.source.clone(),
                    target: spec.target.clone(),
                    table: t,
                    segment,
                    bounds: self.plans[table].segments[segment as usize].clone(),
                    partition_size: spec.settings.validation.partition_size,
                    settle: spec.has_cdc(),
                }
            }
            UnitKind::Step(step) => match step {
                StepKind::FreezeSource | StepKind::UnfreezeSource => Work::FreezeSource {
                    source: spec.source.clone(),
                    freeze: step == StepKind::FreezeSource,
                },
                StepKind::UnfreezeTarget => Work::FreezeSource {
                    source: spec.target.clone(),
                    freeze: false,
                },
                StepKind::SyncSequences => Work::SyncSequences {
                    source: spec.source.clone(),
                    target: spec.target.clone(),
                    tables: schema.tables.iter().map(for_work).collect(),
                },
            },
            UnitKind::Finalize => Work::Finalize {
                target: spec.target.clone(),
                foreign_keys: schema
                    .tables
                    .iter()
                    .filter(|_| spec.schema_files.is_none())
                    .flat_map(|t| {
                        // As the target names it: the worker checked at
                        // introspection that the task's rules apply.
                        let t = ferry_common::transform::renamed(t).unwrap_or_else(|e| {
                            tracing::error!(task = %spec.name, error = %e, "transformation rules no longer apply");
                            t.clone()
                        });
                        let fks: Vec<_> = t
                            .constraints
                            .iter()
                            .filter(|c| c.kind == ConstraintKind::ForeignKey)
                            .map(|c| {
                                (
                                    t.qualified(),
                                    ferry_common::convert::foreign_key_for(&t, c, spec.target.engine),
                                )
                            })
                            .collect();
                        fks
                    })
                    .collect(),
                // A full load ends here, so keys and triggers come now; with
                // CDC they wait for the cutover (applied changes must not
                // fire triggers, and tables only agree once caught up).
                post_data_sql: spec.schema_files.as_ref().map(|f| {
                    if spec.has_cdc() {
                        f.post_data.clone()
                    } else {
                        format!("{}\n{}", f.post_data, f.cutover)
                    }
                }),
                // A table set aside (SUSPEND_TABLE) holds part of its rows:
                // keys onto or from it are added without checking them.
                validate: spec.migration_type == MigrationType::FullLoad && self.load_errors.is_empty(),
            },
        }
    }

    /// What the CDC stream reports about changes to table `table`: the
    /// segments they touch when Ferry can place a key in them (integer range
    /// keys), else just that the table changed; nothing unless validated.
    fn change_tracking(&self, table: usize) -> ChangeTracking {
        // Validated tables: those with a key, when validation is on (the
        // Validate units made at introspection).
        let keyed = self
            .schema
            .as_ref()
            .is_some_and(|s| s.tables[table].primary_key.is_some());
        if !self.spec.settings.validation.enabled || !keyed {
            return ChangeTracking::Off;
        }
        let engine = self.spec.source.engine;
        let integer = |ty: &str| matches!(typemap::kind(engine, ty), Kind::Int | Kind::UInt);
        match SegmentLocator::new(&self.plans[table].segments, integer) {
            Some(l) => ChangeTracking::Segments(l),
            None => ChangeTracking::Table,
        }
    }

    fn cdc_names(&self) -> CdcNames {
        self.cdc
            .as_ref()
            .map_or_else(|| CdcState::new(&self.spec).names, |c| c.names.clone())
    }

    fn unit_subject(&self, unit: usize) -> String {
        let table = |i: usize| {
            self.schema
                .as_ref()
                .and_then(|s| s.tables.get(i))
                .map_or_else(|| format!("table #{i}"), |t| format!("table {}", t.display_name()))
        };
        match self.units[unit].kind {
            UnitKind::Introspect => "introspection of the source".into(),
            UnitKind::Prepare => "target preparation".into(),
            UnitKind::Load { table: t, segment } => format!("{} segment {segment}", table(t)),
            UnitKind::PostData { table: t } => format!("{} post-load (indexes, constraints)", table(t)),
            UnitKind::Finalize => "foreign keys".into(),
            UnitKind::CreateSlot => "creating the replication slot and publications on the source".into(),
            UnitKind::Snapshot => "holding the load snapshot on the source".into(),
            UnitKind::Reset { table: t } => format!("{} reset for reload", table(t)),
            UnitKind::Cdc => "change data capture".into(),
            UnitKind::DropSlot => "dropping the replication slot and publications on the source".into(),
            UnitKind::Validate { table: t, segment } => format!("{} segment {segment} validation", table(t)),
            UnitKind::Step(StepKind::FreezeSource) => "cutover: freezing writes on the source".into(),
            UnitKind::Step(StepKind::UnfreezeSource) => "cutover: allowing writes on the source again".into(),
            UnitKind::Step(StepKind::UnfreezeTarget) => "rollback: allowing writes on the target again".into(),
            UnitKind::Step(StepKind::SyncSequences) => "cutover: setting sequences on the target".into(),
            UnitKind::Reintrospect { table: t } => format!("{} reload: reading its definition again", table(t)),
        }
    }

    fn complete_unit(&mut self, unit: usize, result: WorkResult, now_ms: u64) {
        self.units[unit].state = UnitState::Done;
        match (self.units[unit].kind, result) {
            (UnitKind::Introspect, WorkResult::Introspected(schema)) => {
                let mut plans = Vec::with_capacity(schema.tables.len());
                let whole = self.defer_primary_key() && self.spec.target.engine.copies_frozen();
                for t in &schema.tables {
                    match planner::plan_table(t, &self.spec.mappings, &self.spec.settings, whole) {
                        Ok(segments) => plans.push(TablePlan {
                            segments,
                            load_started_at_ms: 0,
                            load_finished_at_ms: 0,
                            gen: None,
                            apply_from: None,
                        }),
                        Err(e) => {
                            self.state = TaskState::Failed;
                            self.error = Some(format!("planning table {}: {e}", t.display_name()));
                            self.finished_at_ms = now_ms;
                            return;
                        }
                    }
                }
                if schema.tables.is_empty() && self.spec.settings.fail_on_no_tables {
                    self.state = TaskState::Failed;
                    self.error = Some("the table mappings select no table of the source".into());
                    self.finished_at_ms = now_ms;
                    return;
                }
                let validation = self.spec.settings.validation;
                if validation.enabled {
                    // Tables without a key are not validated ("No primary key").
                    for (i, (t, p)) in schema.tables.iter().zip(&plans).enumerate() {
                        if t.primary_key.is_some() {
                            for s in 0..p.segments.len() as u32 {
                                self.units.push(Unit::new(UnitKind::Validate { table: i, segment: s }));
                            }
                        }
                    }
                }
                if validation.only {
                    self.plans = plans;
                    self.schema = Some(schema);
                    if self.units.iter().all(|u| u.state == UnitState::Done) {
                        self.state = TaskState::Completed;
                        self.finished_at_ms = now_ms;
                    }
                    return;
                }
                if self.spec.has_cdc() {
                    self.units.push(Unit::new(UnitKind::CreateSlot));
                }
                self.units.push(Unit::new(UnitKind::Prepare));
                if self.spec.has_load() {
                    if self.spec.has_cdc() || Task::needs_load_snapshot(&plans) {
                        self.units.push(Unit::new(UnitKind::Snapshot));
                    }
                    for (i, p) in plans.iter().enumerate() {
                        for s in 0..p.segments.len() as u32 {
                            self.units.push(Unit::new(UnitKind::Load { table: i, segment: s }));
                        }
                    }
                }
                for i in 0..plans.len() {
                    self.units.push(Unit::new(UnitKind::PostData { table: i }));
                }
                self.units.push(Unit::new(UnitKind::Finalize));
                if self.spec.has_cdc() {
                    self.units.push(Unit::new(UnitKind::Cdc));
                }
                self.plans = plans;
                self.schema = Some(schema);
            }
            (
                UnitKind::CreateSlot,
                WorkResult::SlotReady {
                    consistent_point,
                    insert_only,
                },
            ) => {
                if let Some(c) = self.cdc.as_mut() {
                    c.consistent_point.get_or_insert(consistent_point);
                    c.insert_only = insert_only.into_iter().collect();
                }
            }
            (
                UnitKind::Load { table, .. },
                WorkResult::Loaded {
                    rows,
                    exceptions,
                    truncated,
                    position,
                    ..
                },
            ) => {
                self.units[unit].rows = rows;
                self.units[unit].exceptions = exceptions;
                self.units[unit].truncated = truncated;
                // A table read in one segment in its own snapshot (MySQL
                // sources) applies changes from exactly that snapshot's
                // position; see the worker's `mysql/binlog`.
                if let Some(p) = position {
                    if self.plans[table].segments.len() == 1 {
                        self.plans[table].apply_from = Some(p);
                    }
                }
                if self.done(|k| matches!(k, UnitKind::Load { table: t, .. } if *t == table)) {
                    self.plans[table].load_finished_at_ms = now_ms;
                }
                self.escalate(false, now_ms);
            }
            (UnitKind::Reintrospect { table }, WorkResult::Introspected(found)) => {
                self.reintrospected(table, found);
            }
            (UnitKind::Reset { table }, _) => {
                self.reshape_from.remove(&table);
                self.recreated.remove(&table);
            }
            (UnitKind::Finalize, WorkResult::Finalized { failed_objects }) => {
                self.failed_objects = failed_objects;
            }
            (UnitKind::Validate { .. }, WorkResult::Validated { rows, failures, sample }) => {
                let delay_ms = self.spec.settings.validation.revalidate_delay_s * 1000;
                let u = &mut self.units[unit];
                u.rows = rows;
                u.failures = failures;
                u.sample = sample;
                match u.cutover_check {
                    // Started before the cutover asked: compare again now.
                    CutoverCheck::Requested => {
                        u.state = UnitState::Pending { not_before_ms: 0 };
                        u.rerun = false;
                    }
                    CutoverCheck::Started => u.cutover_check = CutoverCheck::None,
                    CutoverCheck::None => {}
                }
                if u.rerun {
                    u.rerun = false;
                    u.revalidations += 1;
                    u.state = UnitState::Pending {
                        not_before_ms: now_ms + delay_ms,
                    };
                }
            }
            _ => {}
        }
        if self.units.iter().all(|u| u.state == UnitState::Done) {
            self.state = TaskState::Completed;
            self.finished_at_ms = now_ms;
        }
    }

    /// `ferry task reload-table`: queues the table's re-introspection, which
    /// then queues the reload ([`Task::reintrospected`]). Returns the unit.
    ///
    /// Why the reloaded table rejoins the stream exactly: the stream stops
    /// (the caller revokes it; `Cdc` is runnable only once every unit but
    /// validation is done) and later resumes from its checkpoint, which no
    /// later than the stop. The table is read in a new snapshot whose
    /// consistent point becomes its `apply_from`, exactly as in the first
    /// load (see the worker's `cdc::apply`): changes before it are in the
    /// rows, changes from it on are applied. That needs the resumed stream
    /// to start at or before that point, though the revoked stream may
    /// still be running (it learns of the revocation at its next renewal)
    /// and skipping the stopped table's changes: so the re-introspection
    /// first takes the target's apply state over with a newer epoch, before
    /// the new snapshot exists, and the old stream commits nothing after
    /// it (`Work::Reintrospect`).
    fn reload(&mut self, name: &str) -> Result<usize, String> {
        if !(self.spec.has_cdc() && self.spec.has_load()) {
            return Err("reload-table needs a task with a full load and CDC (--type full-load-and-cdc)".into());
        }
        if self.state != TaskState::Running {
            return Err(format!("is {}, not running", self.state.as_str()));
        }
        let Some(schema) = self.schema.as_ref() else {
            return Err("has not read the source's tables yet".into());
        };
        let matches: Vec<usize> = schema
            .tables
            .iter()
            .enumerate()
            .filter(|(_, t)| t.display_name() == name || format!("{}.{}", t.schema, t.name) == name || t.name == name)
            .map(|(i, _)| i)
            .collect();
        let table = match matches[..] {
            [t] => t,
            [] => return Err(format!("has no table {name}")),
            _ => return Err(format!("has several tables named {name}: give it as schema.table")),
        };
        let shown = schema.tables[table].display_name();
        if self.is_dropped(&shown) {
            return Err(format!("table {shown} was dropped on the source"));
        }
        let reloaded = self.units.iter().any(|u| u.kind == UnitKind::Reintrospect { table });
        let loaded = self.done(|k| {
            *k == UnitKind::PostData { table }
                || *k == UnitKind::Reintrospect { table }
                || *k == UnitKind::Reset { table }
        });
        if !loaded && reloaded {
            return Err(format!("table {shown} is already being reloaded"));
        }
        if !loaded {
            return Err(format!("table {shown} is still loading"));
        }
        self.units.push(Unit::new(UnitKind::Reintrospect { table }));
        tracing::info!(task = %self.spec.name, table = %shown, "reload requested");
        Ok(self.units.len() - 1)
    }

    /// A table created on the source that the selection rules select joins
    /// the task: it is read (a `Reintrospect` unit, which also adds it to
    /// the publication), created on the target, loaded in a new snapshot and
    /// then streamed, exactly as a reload (see [`Task::reload`]). True when
    /// it was added (the stream must stop for it).
    fn add_table(&mut self, t: TableRef) -> bool {
        let engine = self.spec.source.engine;
        let Some(schema) = self.schema.as_mut() else {
            return false;
        };
        if let Some(table) = schema.tables.iter().position(|x| t.is(&x.schema, &x.name)) {
            return self.table_created_again(table);
        }
        // Not read yet: the re-introspection fills it in. As the target's
        // definition for the Reset, no columns means "create it".
        let unread = TableSchema::bare(engine, &t.schema, &t.name, vec![]);
        if !schema.schemas.contains(&t.schema) {
            schema.schemas.push(t.schema.clone());
        }
        schema.tables.push(unread.clone());
        let table = schema.tables.len() - 1;
        self.ensure_snapshot_unit();
        self.plans.push(TablePlan {
            segments: vec![SegmentBounds::All],
            load_started_at_ms: 0,
            load_finished_at_ms: 0,
            gen: None,
            apply_from: None,
        });
        self.reshape_from.insert(table, unread);
        self.units.push(Unit::new(UnitKind::Reintrospect { table }));
        tracing::info!(task = %self.spec.name, table = %format!("{}.{}", t.schema, t.name), "table created on the source joins the task");
        true
    }

    /// A cdc-only task has no snapshot holder until a table joins it.
    fn ensure_snapshot_unit(&mut self) {
        if !self.units.iter().any(|u| u.kind == UnitKind::Snapshot) {
            self.units.push(Unit::new(UnitKind::Snapshot));
        }
    }

    /// A table of the name of one the source dropped exists again: it
    /// joins anew, as a reload does (its units start over), whatever its
    /// shape and key: its Reset replaces what the target has of that name
    /// (the table kept after the drop, HandleSourceTableDropped false).
    /// True when it joins.
    fn table_created_again(&mut self, table: usize) -> bool {
        let Some(schema) = self.schema.as_ref() else {
            return false;
        };
        let old = &schema.tables[table];
        let shown = old.display_name();
        // No columns: the Reset creates it.
        let unread = TableSchema::bare(old.engine, &old.schema, &old.name, vec![]);
        let Some(cdc) = self.cdc.as_mut() else { return false };
        if cdc.dropped.remove(&shown).is_none() {
            return false;
        }
        cdc.reloaded_for.remove(&shown);
        self.reshape_from.insert(table, unread);
        self.recreated.insert(table);
        self.ensure_snapshot_unit();
        self.units.push(Unit::new(UnitKind::Reintrospect { table }));
        tracing::info!(task = %self.spec.name, table = %shown, "table created again on the source joins the task");
        true
    }

    /// A reload's re-introspection finished: the table takes its current
    /// definition, and is emptied, reshaped (see `Work::ResetTable`) and
    /// loaded in the next snapshot. What cannot be reloaded so stays a
    /// table error, with the reason.
    fn reintrospected(&mut self, table: usize, found: SourceSchema) {
        let Some(old) = self.schema.as_ref().map(|s| s.tables[table].clone()) else {
            return;
        };
        let shown = old.display_name();
        let refuse = |t: &mut Task, why: String| {
            tracing::warn!(task = %t.spec.name, table = %shown, "reload refused: {why}");
            if let Some(c) = t.cdc.as_mut() {
                c.table_errors.insert(shown.clone(), format!("reload-table: {why}"));
            }
        };
        let Some(mut new) = found
            .tables
            .into_iter()
            .find(|t| t.schema == old.schema && t.name == old.name)
        else {
            // Renamed away (a rename is DDL naming it, so it was being
            // reloaded), or dropped before the stream saw it go. The stream
            // was stopped for the reload: the target is left as it is.
            tracing::warn!(task = %self.spec.name, table = %shown, "table to reload is no longer on the source");
            // Its stream is stopped for the reload; other work still running
            // on it reports to settled units, which is ignored.
            self.source_dropped(
                &shown,
                "no longer on the source (renamed away, or dropped) when it was to be reloaded; the target keeps it",
            );
            return;
        };
        // A table that joined (or, in a cdc-only task, one never loaded).
        let adding = !self
            .units
            .iter()
            .any(|u| matches!(u.kind, UnitKind::Load { table: t, .. } if t == table));
        // Created again after a drop: a new table, whatever its key.
        let recreated = self.recreated.contains(&table);
        let key = |t: &TableSchema| t.primary_key.as_ref().map(|k| k.columns.clone());
        if !adding && !recreated && key(&new) != key(&old) {
            return refuse(
                self,
                format!(
                    "its primary key changed on the source ({} -> {}); delete the task and create it again",
                    key(&old).map_or("none".into(), |k| k.join(", ")),
                    key(&new).map_or("none".into(), |k| k.join(", "))
                ),
            );
        }
        new.key_samples.clear();
        let reshape = self.spec.settings.prep_mode == ferry_common::settings::TargetTablePrepMode::DropAndCreate
            && !new.column_changes(&old).is_empty();
        if adding {
            // Loaded in one segment, with the units any table has.
            self.units.push(Unit::new(UnitKind::Load { table, segment: 0 }));
            self.units.push(Unit::new(UnitKind::PostData { table }));
            if self.spec.settings.validation.enabled && new.primary_key.is_some() {
                self.units.push(Unit::new(UnitKind::Validate { table, segment: 0 }));
            }
        }
        if let Some(schema) = self.schema.as_mut() {
            schema.tables[table] = new;
        }
        if reshape {
            // A reshape not carried out yet keeps the target's definition.
            self.reshape_from.entry(table).or_insert(old);
        }
        let plan = &mut self.plans[table];
        plan.gen = None;
        plan.apply_from = None;
        plan.load_started_at_ms = 0;
        plan.load_finished_at_ms = 0;
        if recreated {
            // The old segments are ranges of another table's key: it is
            // loaded (and validated) in one segment, and the rest stay done
            // with nothing in them.
            plan.segments = vec![SegmentBounds::All];
        }
        for u in self.units.iter_mut() {
            let ours = match u.kind {
                UnitKind::Load { table: t, segment } | UnitKind::Validate { table: t, segment }
                    if recreated && segment > 0 =>
                {
                    if t == table {
                        u.state = UnitState::Done;
                        u.rows = 0;
                        u.sample.clear();
                        u.failures = 0;
                    }
                    false
                }
                UnitKind::Load { table: t, .. }
                | UnitKind::PostData { table: t }
                | UnitKind::Validate { table: t, .. } => t == table,
                UnitKind::Snapshot => !matches!(u.state, UnitState::Running { .. }),
                _ => false,
            };
            if ours {
                u.state = UnitState::Pending { not_before_ms: 0 };
                u.attempts = 0;
                u.rows = 0;
                u.exceptions = 0;
                u.truncated = 0;
                u.failures = 0;
                u.sample.clear();
                u.rerun = false;
                u.cutover_check = CutoverCheck::None;
            }
        }
        self.units.push(Unit::new(UnitKind::Reset { table }));
        if let Some(c) = self.cdc.as_mut() {
            c.table_errors.remove(&shown);
        }
        self.load_errors.remove(&table);
        tracing::info!(task = %self.spec.name, table = %shown, reshape, "table queued for reload");
    }

    /// DataErrorPolicy or DataTruncationErrorPolicy SUSPEND_TABLE stopped a
    /// segment of `table` during the full load: the table's load stops
    /// where it is (segments committed so far stay on the target), the
    /// table is in `Table error` with `why`, and the task goes on without
    /// it — its PostData and validation are skipped, and with CDC its
    /// changes are held back, as for a table suspended in CDC, until `ferry
    /// task reload-table` loads it again. Under TableErrorPolicy STOP_TASK
    /// the task fails instead. Returns the assignments of the table's
    /// units that were still running, whose leases end (the caller then
    /// releases the snapshot holder if nothing else loads).
    fn suspend_load(&mut self, table: usize, why: String, now_ms: u64) -> Vec<u64> {
        if self.spec.settings.table_errors == ErrorAction::StopTask {
            self.fail(format!("{why} (TableErrorPolicy STOP_TASK stops the task)"), now_ms);
            return vec![];
        }
        let name = self
            .schema
            .as_ref()
            .and_then(|s| s.tables.get(table))
            .map(|t| t.display_name())
            .unwrap_or_default();
        let mut running = vec![];
        for u in self.units.iter_mut() {
            let ours = match u.kind {
                UnitKind::Load { table: t, .. }
                | UnitKind::PostData { table: t }
                | UnitKind::Validate { table: t, .. } => t == table,
                _ => false,
            };
            if ours && u.state != UnitState::Done {
                if let UnitState::Running { assignment, .. } = u.state {
                    running.push(assignment);
                }
                u.state = UnitState::Done;
            }
        }
        tracing::warn!(task = %self.spec.name, table = %name, error = %why, "table suspended during its full load");
        if let Some(c) = self.cdc.as_mut() {
            c.table_errors.insert(name, why.clone());
        }
        self.load_errors.insert(table, why);
        self.escalate(false, now_ms);
        // Finalize, at least, is still to come: it waited for this load.
        running
    }

    /// ErrorBehavior escalations, checked whenever rows the target could not
    /// store or tables in error are counted (a load's result, a stream's
    /// report). `DataErrorEscalationCount`: a table with that many rows in
    /// the exceptions table is suspended (SUSPEND_TABLE: `Table error`, and
    /// the stream, restarted, leaves it out — true is returned for that;
    /// from a load's result, [`Task::suspend_load`]) or fails the task
    /// (STOP_TASK).
    /// `ApplyErrorEscalationCount`: the same for CDC changes of rows the
    /// target lacked.
    /// `TableErrorEscalationCount`: that many tables in error fail the task.
    fn escalate(&mut self, streaming: bool, now_ms: u64) -> bool {
        if !self.is_active() {
            return false;
        }
        let settings = &self.spec.settings;
        let (data, tables) = (settings.data_escalation, settings.table_escalation);
        let exceptions_table = settings.control.table("apply_exceptions");
        let mut restart = false;
        // Per-table counts: rows the target could not store, and CDC
        // changes of rows the target lacked (both in the exceptions table).
        type CountOf = fn(&Task, usize) -> u64;
        let per_table: [(Option<Escalation>, &str, &str, CountOf); 2] = [
            (
                data,
                "DataErrorEscalation",
                "rows the target could not store",
                Task::table_exceptions,
            ),
            (
                settings.apply_escalation,
                "ApplyErrorEscalation",
                "changes of rows the target lacked",
                Task::table_conflicts,
            ),
        ];
        for (esc, setting, what, count_of) in per_table {
            let (Some(esc), Some(schema)) = (esc, self.schema.as_ref()) else {
                continue;
            };
            let over: Vec<(usize, String, u64)> = (0..schema.tables.len())
                .map(|t| (t, schema.tables[t].display_name(), count_of(self, t)))
                .filter(|(t, name, n)| {
                    *n >= esc.count
                        && !self.load_errors.contains_key(t)
                        && !self.cdc.as_ref().is_some_and(|c| c.table_errors.contains_key(name))
                })
                .collect();
            for (table, name, n) in over {
                let why = format!(
                    "table {name}: {n} {what} (see {exceptions_table}) reached {setting}Count {} ({setting}Policy {})",
                    esc.count,
                    esc.action.name()
                );
                match (esc.action, self.cdc.as_mut()) {
                    (ErrorAction::SuspendTable, Some(cdc)) if streaming => {
                        tracing::warn!(task = %self.spec.name, table = %name, "{why}: table suspended");
                        cdc.table_errors.insert(name, why);
                        restart = true;
                    }
                    // From a load's result: its table's load is set aside.
                    // Its segments still running finish unheard (their
                    // units are settled); their leases end when they report.
                    (ErrorAction::SuspendTable, _) if !streaming => {
                        self.suspend_load(table, why, now_ms);
                        if !self.is_active() {
                            return false;
                        }
                    }
                    _ => {
                        self.fail(why, now_ms);
                        return false;
                    }
                }
            }
        }
        if let (Some(esc), Some(cdc)) = (tables, self.cdc.as_ref()) {
            let errored = cdc.table_errors.len() as u64;
            if errored >= esc.count {
                let names: Vec<&str> = cdc.table_errors.keys().map(String::as_str).collect();
                let why = format!(
                    "{errored} tables in error ({}) reached TableErrorEscalationCount {} (TableErrorEscalationPolicy STOP_TASK)",
                    names.join(", "),
                    esc.count
                );
                self.fail(why, now_ms);
                return false;
            }
        }
        restart
    }

    fn fail(&mut self, why: String, now_ms: u64) {
        tracing::warn!(task = %self.spec.name, error = %why, "task failed");
        self.state = TaskState::Failed;
        self.error = Some(why);
        self.finished_at_ms = now_ms;
    }

    /// Per-table view for status: (state, rows, segments done, total, error).
    /// Rows of a table that went to the target's exceptions table.
    pub fn table_exceptions(&self, table: usize) -> u64 {
        self.load_exceptions(table) + self.cdc_counters(table).map_or(0, |c| c.exceptions)
    }

    /// CDC updates and deletes of rows the target lacked, for a table.
    pub fn table_conflicts(&self, table: usize) -> u64 {
        self.cdc_counters(table).map_or(0, |c| c.conflicts)
    }

    /// What CDC applied to a table so far.
    fn cdc_counters(&self, table: usize) -> Option<&TableCounters> {
        let t = self.schema.as_ref()?.tables.get(table)?;
        self.cdc.as_ref()?.counters.get(&t.display_name())
    }

    /// Rows of a table stored with a LOB value cut to the task's limit
    /// (full load and CDC), each recorded in the exceptions table.
    pub fn table_truncations(&self, table: usize) -> u64 {
        let load: u64 = self
            .units
            .iter()
            .filter(|u| matches!(u.kind, UnitKind::Load { table: t, .. } if t == table))
            .map(|u| u.truncated)
            .sum();
        load + self.cdc_counters(table).map_or(0, |c| c.truncated)
    }

    /// Rows of a table's full load that went to the exceptions table.
    pub fn load_exceptions(&self, table: usize) -> u64 {
        self.units
            .iter()
            .filter(|u| matches!(u.kind, UnitKind::Load { table: t, .. } if t == table))
            .map(|u| u.exceptions)
            .sum()
    }

    pub fn table_progress(&self, table: usize) -> (String, u64, u32, u32, Option<String>) {
        let mut rows = 0;
        let (mut done, mut total) = (0, 0);
        let mut error = None;
        let mut post = None;
        for u in &self.units {
            match u.kind {
                UnitKind::Load { table: t, .. } if t == table => {
                    total += 1;
                    rows += u.rows;
                    if u.state == UnitState::Done {
                        done += 1;
                    }
                    if let UnitState::Failed { error: e } = &u.state {
                        error = Some(e.clone());
                    }
                }
                UnitKind::PostData { table: t } if t == table => {
                    if let UnitState::Failed { error: e } = &u.state {
                        error = Some(e.clone());
                    }
                    post = Some(u.state.clone());
                }
                _ => {}
            }
        }
        if let Some(why) = self.load_errors.get(&table) {
            error = Some(why.clone());
        }
        let state = if self.spec.settings.validation.only {
            "Validation only"
        } else if error.is_some() {
            "Table error"
        } else if post == Some(UnitState::Done) {
            "Table completed"
        } else if done == total && total > 0 {
            "Building indexes"
        } else if self.units.iter().any(|u| {
            matches!(u.kind, UnitKind::Load { table: t, .. } if t == table)
                && u.state != (UnitState::Pending { not_before_ms: 0 })
        }) {
            "Full load"
        } else {
            "Before load"
        };
        (state.to_string(), rows, done, total, error)
    }

    /// A table's validation as DMS shows it.
    pub fn table_validation(&self, table: usize) -> TableValidation {
        let mut v = TableValidation {
            state: "Not enabled",
            rows: 0,
            failures: 0,
            pending: 0,
            revalidated: 0,
            sample: vec![],
        };
        if !self.spec.settings.validation.enabled {
            return v;
        }
        let mut units = 0;
        let mut error = false;
        for u in &self.units {
            if !matches!(u.kind, UnitKind::Validate { table: t, .. } if t == table) {
                continue;
            }
            units += 1;
            v.revalidated += u64::from(u.revalidations);
            match &u.state {
                UnitState::Done => {
                    v.rows += u.rows;
                    v.failures += u.failures;
                    v.sample.extend(u.sample.iter().cloned());
                }
                UnitState::Failed { .. } => error = true,
                _ => v.pending += 1,
            }
        }
        v.state = if self.load_errors.contains_key(&table) {
            // Its units were set aside, not run.
            "Suspended"
        } else if units == 0 {
            if self.schema.is_some() {
                "No primary key"
            } else {
                "Pending records"
            }
        } else if error {
            "Error"
        } else if v.pending > 0 {
            "Pending records"
        } else if v.failures > 0 {
            "Mismatched records"
        } else {
            "Validated"
        };
        v
    }

    /// Whether the full load (with its indexes and constraints) is done.
    pub fn full_load_done(&self) -> bool {
        !self.units.is_empty()
            && self.schema.is_some()
            && self.done(|k| {
                matches!(
                    k,
                    UnitKind::Load { .. } | UnitKind::PostData { .. } | UnitKind::Finalize | UnitKind::Reset { .. }
                )
            })
    }

    pub fn phase(&self) -> &'static str {
        if self.state == TaskState::Completed {
            return "Done";
        }
        if self.state == TaskState::Deleting {
            return "Deleting";
        }
        if self.units.iter().any(|u| u.kind == UnitKind::Cdc) && self.runnable(&UnitKind::Cdc) {
            return "CDC";
        }
        let pending =
            |pred: &dyn Fn(&UnitKind) -> bool| self.units.iter().any(|u| pred(&u.kind) && u.state != UnitState::Done);
        if self.units.is_empty() || pending(&|k| *k == UnitKind::Introspect) {
            "Introspect"
        } else if pending(&|k| *k == UnitKind::Prepare) {
            "Prepare"
        } else if pending(&|k| matches!(k, UnitKind::Load { .. })) {
            "Load"
        } else if pending(&|k| matches!(k, UnitKind::PostData { .. })) {
            "PostData"
        } else if pending(&|k| *k == UnitKind::Finalize) {
            "Finalize"
        } else {
            "Validate"
        }
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
