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
//! Fencing: each grant of a unit to a worker gets a fresh epoch from a global
//! counter. Renewals, progress and completion must quote the current epoch of
//! the unit; a worker whose lease expired (and whose unit was re-granted)
//! quotes a superseded epoch and is refused. The data path adds its own fence
//! on the target (see the worker's `load` module), so even a refused zombie
//! cannot double-apply a segment.

use crate::planner;
use ferry_common::endpoint::Endpoint;
use ferry_common::mapping::TableMappings;
use ferry_common::plan::SegmentBounds;
use ferry_common::schema::{ConstraintKind, SourceSchema};
use ferry_common::settings::TaskSettings;
use ferry_common::work::{Work, WorkResult};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const MAX_TRANSIENT_ATTEMPTS: u32 = 5;

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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskState {
    Created,
    Running,
    Stopped,
    Completed,
    Failed,
}

impl TaskState {
    pub fn as_str(&self) -> &'static str {
        match self {
            TaskState::Created => "created",
            TaskState::Running => "running",
            TaskState::Stopped => "stopped",
            TaskState::Completed => "completed",
            TaskState::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum UnitKind {
    Introspect,
    Prepare,
    Load { table: usize, segment: u32 },
    PostData { table: usize },
    Finalize,
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
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TablePlan {
    pub segments: Vec<SegmentBounds>,
    pub load_started_at_ms: u64,
    pub load_finished_at_ms: u64,
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
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    CreateTask {
        spec: Box<TaskSpec>,
        now_ms: u64,
    },
    StartTask {
        name: String,
        now_ms: u64,
    },
    StopTask {
        name: String,
    },
    DeleteTask {
        name: String,
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
        now_ms: u64,
    },
    ExpireLeases {
        now_ms: u64,
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
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GrantedWork {
    pub id: u64,
    pub epoch: u64,
    pub task: String,
    pub work: Box<Work>,
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
            Request::CreateTask { spec, now_ms } => {
                if self.tasks.contains_key(&spec.name) {
                    return Response::Error(format!("task {} already exists", spec.name));
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
                    },
                );
                Response::Ok
            }
            Request::StartTask { name, now_ms } => {
                let Some(task) = self.tasks.get_mut(&name) else {
                    return Response::Error(format!("task {name} not found"));
                };
                dirty.tasks.push(name.clone());
                match task.state {
                    TaskState::Running => return Response::Ok,
                    TaskState::Completed => {
                        return Response::Error(format!(
                            "task {name} has already completed; delete and create it again to reload"
                        ))
                    }
                    _ => {}
                }
                if task.units.is_empty() {
                    task.units.push(Unit::new(UnitKind::Introspect));
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
            Request::DeleteTask { name } => {
                if self.tasks.remove(&name).is_none() {
                    return Response::Error(format!("task {name} not found"));
                }
                self.leases.retain(|_, l| l.task != name);
                dirty.deleted_tasks.push(name);
                Response::Ok
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
            } => match self.lease(assignment, epoch) {
                Err(e) => e,
                Ok(l) => {
                    let (task, unit) = (l.task.clone(), l.unit);
                    if let Some(t) = self.tasks.get_mut(&task) {
                        t.units[unit].rows = rows;
                        dirty.tasks.push(task);
                    }
                    Response::Ok
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
                    t.complete_unit(unit, *result, now_ms);
                    Response::Ok
                }
            },
            Request::Fail {
                assignment,
                epoch,
                error,
                retryable,
                now_ms,
            } => match self.lease(assignment, epoch) {
                Err(e) => e,
                Ok(l) => {
                    let (task, unit) = (l.task.clone(), l.unit);
                    self.leases.remove(&assignment);
                    dirty.tasks.push(task.clone());
                    let t = self.tasks.get_mut(&task).expect("lease of a known task");
                    let what = t.unit_subject(unit);
                    let u = &mut t.units[unit];
                    u.attempts += 1;
                    if retryable && u.attempts < MAX_TRANSIENT_ATTEMPTS {
                        let backoff = 1000u64 << u.attempts.min(5);
                        u.state = UnitState::Pending {
                            not_before_ms: now_ms + backoff,
                        };
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
            Request::ExpireLeases { now_ms } => {
                let expired: Vec<u64> = self
                    .leases
                    .iter()
                    .filter(|(_, l)| l.expires_ms <= now_ms)
                    .map(|(id, _)| *id)
                    .collect();
                for id in expired {
                    let l = self.leases.remove(&id).expect("listed above");
                    if let Some(t) = self.tasks.get_mut(&l.task) {
                        let u = &mut t.units[l.unit];
                        if matches!(u.state, UnitState::Running { assignment, .. } if assignment == id) {
                            u.state = UnitState::Pending { not_before_ms: 0 };
                            u.rows = 0;
                        }
                        dirty.tasks.push(l.task.clone());
                    }
                }
                Response::Ok
            }
        }
    }

    /// Whether any running task has a unit that could be granted now.
    pub fn may_grant(&self, now_ms: u64) -> bool {
        self.tasks
            .values()
            .any(|t| t.state == TaskState::Running && t.next_runnable(now_ms).is_some())
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
            let l = self.leases.remove(&id).expect("listed above");
            if let Some(t) = self.tasks.get_mut(name) {
                let u = &mut t.units[l.unit];
                if matches!(u.state, UnitState::Running { .. }) {
                    u.state = UnitState::Pending { not_before_ms: 0 };
                    u.rows = 0;
                }
            }
        }
    }

    /// Picks the next runnable unit, oldest task first. Deterministic.
    fn grant(&mut self, worker: u64, now_ms: u64, lease_ms: u64, dirty: &mut Dirty) -> Option<GrantedWork> {
        let held = self.leases.values().filter(|l| l.worker == worker).count() as u32;
        let slots = self.workers.get(&worker).map_or(1, |w| w.slots.max(1));
        if held >= slots {
            return None;
        }
        let mut names: Vec<&String> = self.tasks.keys().collect();
        names.sort_by_key(|n| (self.tasks[*n].created_at_ms, (*n).clone()));
        let names: Vec<String> = names.into_iter().cloned().collect();
        for name in names {
            let task = self.tasks.get_mut(&name).expect("listed");
            if task.state != TaskState::Running {
                continue;
            }
            let Some(unit) = task.next_runnable(now_ms) else {
                continue;
            };
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
            return Some(GrantedWork {
                id,
                epoch,
                task: name,
                work: Box::new(work),
            });
        }
        None
    }
}

impl Unit {
    fn new(kind: UnitKind) -> Unit {
        Unit {
            kind,
            state: UnitState::Pending { not_before_ms: 0 },
            attempts: 0,
            rows: 0,
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

    /// Unit dependencies: Prepare after Introspect (implicit: created then),
    /// loads after Prepare, a table's PostData after its loads, Finalize
    /// after every PostData.
    fn runnable(&self, kind: &UnitKind) -> bool {
        match kind {
            UnitKind::Introspect | UnitKind::Prepare => true,
            UnitKind::Load { .. } => self.done(|k| *k == UnitKind::Prepare),
            UnitKind::PostData { table } => {
                self.done(|k| *k == UnitKind::Prepare)
                    && self.done(|k| matches!(k, UnitKind::Load { table: t, .. } if t == table))
            }
            UnitKind::Finalize => self.done(|k| !matches!(k, UnitKind::Finalize)),
        }
    }

    fn next_runnable(&self, now_ms: u64) -> Option<usize> {
        let loads_running = self
            .units
            .iter()
            .filter(|u| matches!(u.kind, UnitKind::Load { .. }) && matches!(u.state, UnitState::Running { .. }))
            .count() as u32;
        self.units.iter().position(|u| {
            matches!(u.state, UnitState::Pending { not_before_ms } if not_before_ms <= now_ms)
                && self.runnable(&u.kind)
                && !(matches!(u.kind, UnitKind::Load { .. })
                    && loads_running >= self.spec.settings.max_full_load_subtasks)
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
            },
            UnitKind::Prepare => {
                let mut schema = schema;
                for t in schema.tables.iter_mut() {
                    t.key_samples.clear();
                }
                Work::Prepare {
                    target: spec.target.clone(),
                    schema,
                    prep_mode: spec.settings.prep_mode,
                }
            }
            UnitKind::Load { table, segment } => {
                let mut t = schema.tables[table].clone();
                t.key_samples.clear();
                Work::LoadSegment {
                    source: spec.source.clone(),
                    target: spec.target.clone(),
                    table: t,
                    segment,
                    bounds: self.plans[table].segments[segment as usize].clone(),
                }
            }
            UnitKind::PostData { table } => {
                let mut t = schema.tables[table].clone();
                t.key_samples.clear();
                Work::PostData {
                    source: spec.source.clone(),
                    target: spec.target.clone(),
                    table: t,
                }
            }
            UnitKind::Finalize => Work::Finalize {
                target: spec.target.clone(),
                foreign_keys: schema
                    .tables
                    .iter()
                    .flat_map(|t| {
                        t.constraints
                            .iter()
                            .filter(|c| c.kind == ConstraintKind::ForeignKey)
                            .map(move |c| (t.qualified(), c.clone()))
                    })
                    .collect(),
            },
        }
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
        }
    }

    fn complete_unit(&mut self, unit: usize, result: WorkResult, now_ms: u64) {
        self.units[unit].state = UnitState::Done;
        match (self.units[unit].kind, result) {
            (UnitKind::Introspect, WorkResult::Introspected(schema)) => {
                let mut plans = Vec::with_capacity(schema.tables.len());
                for t in &schema.tables {
                    match planner::plan_table(t, &self.spec.mappings, &self.spec.settings) {
                        Ok(segments) => plans.push(TablePlan {
                            segments,
                            load_started_at_ms: 0,
                            load_finished_at_ms: 0,
                        }),
                        Err(e) => {
                            self.state = TaskState::Failed;
                            self.error = Some(format!("planning table {}: {e}", t.display_name()));
                            self.finished_at_ms = now_ms;
                            return;
                        }
                    }
                }
                if schema.tables.is_empty() {
                    self.state = TaskState::Failed;
                    self.error = Some("the table mappings select no table of the source".into());
                    self.finished_at_ms = now_ms;
                    return;
                }
                self.units.push(Unit::new(UnitKind::Prepare));
                for (i, p) in plans.iter().enumerate() {
                    for s in 0..p.segments.len() as u32 {
                        self.units.push(Unit::new(UnitKind::Load { table: i, segment: s }));
                    }
                }
                for i in 0..plans.len() {
                    self.units.push(Unit::new(UnitKind::PostData { table: i }));
                }
                self.units.push(Unit::new(UnitKind::Finalize));
                self.plans = plans;
                self.schema = Some(schema);
            }
            (UnitKind::Load { table, .. }, WorkResult::Loaded { rows, .. }) => {
                self.units[unit].rows = rows;
                if self.done(|k| matches!(k, UnitKind::Load { table: t, .. } if *t == table)) {
                    self.plans[table].load_finished_at_ms = now_ms;
                }
            }
            _ => {}
        }
        if self.units.iter().all(|u| u.state == UnitState::Done) {
            self.state = TaskState::Completed;
            self.finished_at_ms = now_ms;
        }
    }

    /// Per-table view for status: (state, rows, segments done, total, error).
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
        let state = if error.is_some() {
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

    pub fn phase(&self) -> &'static str {
        if self.state == TaskState::Completed {
            return "Done";
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
        } else {
            "Finalize"
        }
    }
}
