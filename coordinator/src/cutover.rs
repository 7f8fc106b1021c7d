//! The cutover and the rollback as coordinator state: a plan of steps
//! recorded in Raft and advanced by the leader.
//!
//! `ferry cutover NAME` asks the coordinator to start a [`Switch`] on the
//! task; from then on the coordinator, not the CLI, carries it: each step is
//! *entered* inside the Raft state machine (a worker unit queued, a mark
//! requested, segments queued for comparison, the reverse task created and
//! started) and *left* when the leader's driver sees its condition met (the
//! unit done, the mark reached, no segment left to compare and none
//! differing, the reverse stream running). The CLI only follows the record,
//! prints each step, and runs the operator's hook — which runs where the
//! operator is — reporting back when it ran.
//!
//! Why this is safe across crashes and leader changes:
//! - Every transition is one Raft entry that names the step it leaves
//!   (`at`); an entry whose `at` is not the record's current step is a
//!   no-op. A driver on a deposed leader, or two drivers racing across an
//!   election, can therefore advance a step at most once.
//! - A driver decides from its own applied state, a prefix of the committed
//!   log, and every condition it waits for is monotone (a unit once done
//!   stays done, `marks_reached` only grows, a queued comparison only
//!   completes): what held in a prefix holds in the log the entry lands in.
//! - Entering a step is idempotent in effect, so `--resume` may enter a
//!   failed step again: freezing a frozen source, a second mark, setting
//!   sequences past the same values, comparing a segment again, and starting
//!   an existing reverse task change nothing that matters.
//! - Nothing in the record depends on the CLI: a CLI killed at any step
//!   leaves the cutover where the coordinator has it, and `--resume`
//!   attaches to it (running the hook if it had not reported running).
//!   The hook's command line is never recorded (it may carry secrets): the
//!   operator gives `--hook` again to `--resume`.

use crate::state::{Dirty, Request, Response, State, StepKind, Task, TaskState, Unit, UnitKind, UnitState};
use serde::{Deserialize, Serialize};

/// Which way the switch goes: the forward cutover (recorded on the task) or
/// the rollback (recorded on its `-reverse` task).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    Cutover,
    Rollback,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Cutover => "cutover",
            Direction::Rollback => "rollback",
        }
    }
}

/// One step of a switch. The task holding the record is "the task"; its
/// source is the side being left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Step {
    /// The task's source refuses writes.
    Freeze,
    /// The target has applied everything the source committed before the
    /// step began (a mark through the source's log).
    Drain,
    /// The target's sequences are past the source's.
    Sequences,
    /// Every segment changed since its last comparison compares equal.
    Validate,
    /// The task stopped, its reverse started and streaming.
    Reverse,
    /// Rollback: the original source (the task's target) accepts writes
    /// again, and the reverse task stops.
    Reopen,
    /// The operator's hook ran (reported by the CLI).
    Hook,
    /// Abandoning a cutover: the source accepts writes again.
    Unfreeze,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Freeze => "freeze",
            Step::Drain => "drain",
            Step::Sequences => "sequences",
            Step::Validate => "validate",
            Step::Reverse => "reverse",
            Step::Reopen => "reopen",
            Step::Hook => "hook",
            Step::Unfreeze => "unfreeze",
        }
    }
}

/// What the step in progress waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Waiting {
    /// A worker unit of the task (its index).
    Unit(u32),
    /// `marks_reached` to reach this mark.
    Mark(u64),
    /// The segments queued for the cutover's comparison (how many).
    Validation(u32),
    /// The reverse task's stream to run.
    Streaming(String),
    /// The CLI to report the hook ran.
    Hook,
    Nothing,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepDone {
    pub step: Step,
    pub took_ms: u64,
    pub note: String,
}

/// A cutover or rollback in progress or finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Switch {
    pub direction: Direction,
    /// The steps, chosen when the switch starts (an abandon replaces what
    /// is left with [`Step::Unfreeze`]).
    pub plan: Vec<Step>,
    /// Index of the step in progress; `plan.len()` once finished.
    pub at: usize,
    pub waiting: Waiting,
    pub done: Vec<StepDone>,
    pub started_ms: u64,
    pub step_started_ms: u64,
    /// 0 while in progress.
    pub finished_ms: u64,
    /// Why the step in progress stopped; the source stays as it is until
    /// `--resume` or `--unfreeze-source`.
    pub failed: Option<String>,
    /// `--unfreeze-source` abandoned it.
    pub abandoned: bool,
    /// The source was (or may have been) frozen by this switch.
    pub frozen: bool,
    pub dry_run: bool,
}

impl Switch {
    fn new(direction: Direction, plan: Vec<Step>, now_ms: u64) -> Switch {
        Switch {
            direction,
            plan,
            at: 0,
            waiting: Waiting::Nothing,
            done: vec![],
            started_ms: now_ms,
            step_started_ms: now_ms,
            finished_ms: 0,
            failed: None,
            abandoned: false,
            frozen: false,
            dry_run: false,
        }
    }

    pub fn finished(&self) -> bool {
        self.at >= self.plan.len()
    }

    pub fn step(&self) -> Option<Step> {
        self.plan.get(self.at).copied()
    }

    /// Past the point of no return: the target has taken over (a rollback,
    /// not an abandon, goes back).
    fn reversed(&self) -> bool {
        self.plan[..self.at.min(self.plan.len())].contains(&Step::Reverse) || self.step() == Some(Step::Reverse)
    }

    /// "running", "awaiting-hook", "failed", "done", "abandoning", "abandoned".
    pub fn state(&self) -> &'static str {
        match (self.finished(), self.abandoned) {
            (true, true) => "abandoned",
            (true, false) => "done",
            _ if self.failed.is_some() => "failed",
            (false, true) => "abandoning",
            _ if self.waiting == Waiting::Hook => "awaiting-hook",
            _ => "running",
        }
    }

    /// The record as `ferry task status` shows it (docs/cli.md).
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "direction": self.direction.as_str(),
            "state": self.state(),
            "plan": self.plan.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            "step": self.step().map(Step::as_str),
            "step_index": self.at,
            "error": self.failed,
            "frozen": self.frozen,
            "dry_run": self.dry_run,
            "started_at_ms": self.started_ms,
            "step_started_at_ms": self.step_started_ms,
            "finished_at_ms": self.finished_ms,
            "steps_done": self.done.iter().map(|d| serde_json::json!({
                "step": d.step.as_str(),
                "seconds": d.took_ms as f64 / 1000.0,
                "note": d.note,
            })).collect::<Vec<_>>(),
        })
    }
}

/// What `ferry cutover` / `ferry rollback` asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchPlan {
    pub direction: Direction,
    pub freeze: bool,
    pub dry_run: bool,
    pub hook: bool,
}

impl State {
    /// `StartSwitch`: records the plan and enters its first step.
    pub(crate) fn start_switch(&mut self, name: &str, ask: SwitchPlan, now_ms: u64, dirty: &mut Dirty) -> Response {
        let Some(t) = self.tasks.get(name) else {
            return Response::Error(format!("task {name} not found"));
        };
        if let Some(s) = t.switch.as_ref().filter(|s| !s.finished()) {
            return Response::Error(format!(
                "task {name}: a {} is in progress at step {} ({}): follow it with --resume or abandon it with `ferry cutover {} --unfreeze-source`",
                s.direction.as_str(),
                s.step().map_or("-", Step::as_str),
                s.state(),
                name.strip_suffix("-reverse").unwrap_or(name),
            ));
        }
        if t.state != TaskState::Running {
            return Response::Error(format!("task {name} is {}, not running", t.state.as_str()));
        }
        if t.cdc.is_none() || t.schema.is_none() {
            return Response::Error(format!("task {name} is not streaming changes yet"));
        }
        if let Some(e) = tables_in_error(t) {
            return Response::Error(format!("task {name} is degraded, it cannot be cut over: {e}"));
        }
        let validated = (0..t.plans.len()).any(|i| t.table_validation(i).state != "Not enabled");
        let live = !ask.dry_run;
        let plan: Vec<Step> = match ask.direction {
            Direction::Cutover => [
                (Step::Freeze, ask.freeze && live),
                (Step::Drain, true),
                (Step::Sequences, true),
                (Step::Validate, validated),
                (Step::Reverse, live),
                (Step::Hook, ask.hook && live),
            ]
            .into_iter()
            .filter_map(|(s, on)| on.then_some(s))
            .collect(),
            Direction::Rollback => [
                (Step::Freeze, ask.freeze),
                (Step::Drain, true),
                (Step::Sequences, true),
                (Step::Reopen, true),
                (Step::Hook, ask.hook),
            ]
            .into_iter()
            .filter_map(|(s, on)| on.then_some(s))
            .collect(),
        };
        let t = self.tasks.get_mut(name).expect("checked above");
        let mut switch = Switch::new(ask.direction, plan, now_ms);
        switch.dry_run = ask.dry_run;
        t.switch = Some(switch);
        dirty.tasks.push(name.to_string());
        self.enter_step(name, now_ms, dirty);
        Response::Ok
    }

    /// `AdvanceSwitch`: the step `at` is done; leave it and enter the next.
    /// A stale `at` (a step already left) changes nothing.
    pub(crate) fn advance_switch(
        &mut self,
        name: &str,
        at: usize,
        note: String,
        now_ms: u64,
        dirty: &mut Dirty,
    ) -> Response {
        let Some(s) = self.tasks.get_mut(name).and_then(|t| t.switch.as_mut()) else {
            return Response::Error(format!("task {name} has no cutover"));
        };
        if s.at != at || s.finished() || s.failed.is_some() {
            return Response::Ok;
        }
        let step = s.plan[at];
        s.done.push(StepDone {
            step,
            took_ms: now_ms.saturating_sub(s.step_started_ms),
            note,
        });
        s.at += 1;
        s.step_started_ms = now_ms;
        s.waiting = Waiting::Nothing;
        if step == Step::Unfreeze {
            s.frozen = false;
        }
        dirty.tasks.push(name.to_string());
        if step == Step::Reopen {
            // Back on the original source: the reverse stream has nothing
            // more to carry, and must not carry the source's new writes.
            self.apply(Request::StopTask { name: name.to_string() }, dirty);
        }
        let s = self
            .tasks
            .get_mut(name)
            .and_then(|t| t.switch.as_mut())
            .expect("present");
        if s.finished() {
            s.finished_ms = now_ms;
        } else {
            self.enter_step(name, now_ms, dirty);
        }
        Response::Ok
    }

    /// `FailSwitch`: the step `at` cannot complete; the record waits for
    /// `--resume` or `--unfreeze-source`.
    pub(crate) fn fail_switch(&mut self, name: &str, at: usize, error: String, dirty: &mut Dirty) -> Response {
        if let Some(s) = self.tasks.get_mut(name).and_then(|t| t.switch.as_mut()) {
            if s.at == at && !s.finished() && s.failed.is_none() {
                s.failed = Some(error);
                dirty.tasks.push(name.to_string());
            }
        }
        Response::Ok
    }

    /// `ResumeSwitch`: a failed step is entered again; anything else goes on
    /// as it is.
    pub(crate) fn resume_switch(&mut self, name: &str, now_ms: u64, dirty: &mut Dirty) -> Response {
        let Some(s) = self.tasks.get_mut(name).and_then(|t| t.switch.as_mut()) else {
            return Response::Error(format!("task {name} has no cutover to resume"));
        };
        if s.failed.take().is_some() {
            s.step_started_ms = now_ms;
            dirty.tasks.push(name.to_string());
            self.enter_step(name, now_ms, dirty);
        }
        Response::Ok
    }

    /// `AbandonSwitch` (`ferry cutover NAME --unfreeze-source`): whatever
    /// is left of the cutover is replaced by unfreezing the source; the
    /// forward stream keeps running. Refused once the target has taken
    /// over.
    pub(crate) fn abandon_switch(&mut self, name: &str, now_ms: u64, dirty: &mut Dirty) -> Response {
        let Some(t) = self.tasks.get(name) else {
            return Response::Error(format!("task {name} not found"));
        };
        // A reverse step that failed has stopped the forward task but not
        // handed over: the forward task runs again, its reverse stops.
        let mut restart_forward = false;
        if let Some(s) = &t.switch {
            restart_forward = s.step() == Some(Step::Reverse) && s.failed.is_some();
            if s.direction == Direction::Cutover && s.reversed() && !restart_forward {
                return Response::Error(format!(
                    "task {name}: the cutover has started the reverse stream (the target has taken over): `ferry rollback {name}` returns to the source"
                ));
            }
        }
        if restart_forward {
            let reverse = t.spec.reversed().name;
            if self.tasks.contains_key(&reverse) {
                self.apply(Request::StopTask { name: reverse }, dirty);
            }
            if let Response::Error(e) = self.apply(
                Request::StartTask {
                    name: name.to_string(),
                    now_ms,
                    cdc_stop: None,
                },
                dirty,
            ) {
                return Response::Error(e);
            }
        }
        let t = self.tasks.get_mut(name).expect("checked above");
        if t.state != TaskState::Running {
            return Response::Error(format!("task {name} is {}, not running", t.state.as_str()));
        }
        let s = t.switch.get_or_insert_with(|| {
            // Nothing on record (a freeze left from before): undo it anyway.
            let mut s = Switch::new(Direction::Cutover, vec![], now_ms);
            s.frozen = true;
            s
        });
        if s.finished() {
            // A finished rehearsal or abandon: a fresh record.
            s.direction = Direction::Cutover;
            s.done.clear();
            s.plan.clear();
            s.at = 0;
            s.started_ms = now_ms;
            s.dry_run = false;
        }
        s.plan.truncate(s.at);
        s.plan.push(Step::Unfreeze);
        s.abandoned = true;
        s.failed = None;
        s.finished_ms = 0;
        s.step_started_ms = now_ms;
        dirty.tasks.push(name.to_string());
        self.enter_step(name, now_ms, dirty);
        Response::Ok
    }

    /// Starts the step the record is at, inside the same log entry that
    /// moved it there.
    fn enter_step(&mut self, name: &str, now_ms: u64, dirty: &mut Dirty) {
        let t = self.tasks.get_mut(name).expect("switch task");
        let s = t.switch.as_ref().expect("switch");
        let (step, direction) = (s.step().expect("a step to enter"), s.direction);
        let waiting = match step {
            Step::Freeze => Ok(Waiting::Unit(push_step(t, StepKind::FreezeSource))),
            Step::Unfreeze => Ok(Waiting::Unit(push_step(t, StepKind::UnfreezeSource))),
            Step::Sequences => Ok(Waiting::Unit(push_step(t, StepKind::SyncSequences))),
            Step::Reopen => Ok(Waiting::Unit(push_step(t, StepKind::UnfreezeTarget))),
            Step::Drain => match t.cdc.as_mut() {
                Some(c) => {
                    c.marks_requested += 1;
                    Ok(Waiting::Mark(c.marks_requested))
                }
                None => Err(format!("task {name} has no change data capture")),
            },
            Step::Validate => Ok(Waiting::Validation(t.validate_changed())),
            Step::Hook => Ok(Waiting::Hook),
            Step::Reverse => {
                debug_assert_eq!(direction, Direction::Cutover);
                self.start_reverse(name, now_ms, dirty).map(Waiting::Streaming)
            }
        };
        let s = self
            .tasks
            .get_mut(name)
            .and_then(|t| t.switch.as_mut())
            .expect("switch");
        if step == Step::Freeze {
            s.frozen = true;
        }
        match waiting {
            Ok(w) => s.waiting = w,
            Err(e) => s.failed = Some(e),
        }
        dirty.tasks.push(name.to_string());
    }

    /// Stops the task (the target has everything) and starts its reverse.
    /// The forward task stops first, so nothing it applies can be read back
    /// by the reverse slot: no change bounces.
    fn start_reverse(&mut self, name: &str, now_ms: u64, dirty: &mut Dirty) -> Result<String, String> {
        let answer = |r: Response| match r {
            Response::Error(e) => Err(e),
            _ => Ok(()),
        };
        answer(self.apply(Request::StopTask { name: name.to_string() }, dirty))?;
        let spec = self.tasks[name].spec.reversed();
        let reverse = spec.name.clone();
        match self.tasks.get(&reverse) {
            Some(existing) if existing.spec.source != spec.source || existing.spec.target != spec.target => {
                return Err(format!(
                    "task {reverse} exists and does not replicate {name}'s target back to its source"
                ))
            }
            Some(_) => {}
            None => answer(self.apply(
                Request::CreateTask {
                    spec: Box::new(spec),
                    now_ms,
                    cdc_stop: None,
                },
                dirty,
            ))?,
        }
        answer(self.apply(
            Request::StartTask {
                name: reverse.clone(),
                now_ms,
                cdc_stop: None,
            },
            dirty,
        ))?;
        Ok(reverse)
    }
}

fn push_step(t: &mut Task, step: StepKind) -> u32 {
    t.units.push(Unit::new(UnitKind::Step(step)));
    t.units.len() as u32 - 1
}

/// Tables whose changes stopped, named with why (a cutover over them would
/// lose their changes).
fn tables_in_error(t: &Task) -> Option<String> {
    let c = t.cdc.as_ref()?;
    (!c.table_errors.is_empty()).then(|| {
        let list: Vec<String> = c.table_errors.iter().map(|(t, e)| format!("{t} ({e})")).collect();
        format!("{} table(s) in error: {}", list.len(), list.join("; "))
    })
}

/// What the leader's driver proposes for one task's switch, judged from the
/// applied state: `None` while the step in progress still waits.
pub fn next_move(state: &State, name: &str) -> Option<Request> {
    let t = state.tasks.get(name)?;
    let s = t.switch.as_ref()?;
    if s.finished() || s.failed.is_some() {
        return None;
    }
    let at = s.at;
    let fail = |error: String| {
        Some(Request::FailSwitch {
            name: name.to_string(),
            at,
            error,
        })
    };
    let advance = |note: String| {
        Some(Request::AdvanceSwitch {
            name: name.to_string(),
            at,
            note,
            now_ms: ferry_common::now_ms(),
        })
    };
    let watching_stream = matches!(s.waiting, Waiting::Mark(_) | Waiting::Validation(_));
    if watching_stream && t.state == TaskState::Failed {
        return fail(format!(
            "task {name} failed: {}",
            t.error.as_deref().unwrap_or("(no error recorded)")
        ));
    }
    match &s.waiting {
        Waiting::Unit(i) => match &t.units.get(*i as usize)?.state {
            UnitState::Done => advance(String::new()),
            UnitState::Failed { error } => fail(error.clone()),
            _ => None,
        },
        Waiting::Mark(mark) => {
            if let Some(e) = tables_in_error(t) {
                return fail(format!(
                    "task {name} is degraded, its target does not have every change: {e}"
                ));
            }
            let c = t.cdc.as_ref()?;
            if c.progress.marks_reached < *mark {
                return None;
            }
            let applied = c.checkpoint.as_ref().map_or_else(|| "-".to_string(), |p| p.to_string());
            advance(format!("at {applied}"))
        }
        Waiting::Validation(segments) => {
            if t.cutover_validation_remaining() > 0 {
                return None;
            }
            let differ: u64 = (0..t.plans.len()).map(|i| t.table_validation(i).failures).sum();
            if differ > 0 {
                return fail(format!(
                    "validation: {differ} rows differ between source and target (`ferry validate {name}` lists them)"
                ));
            }
            advance(format!("{segments} segments compared, no differences"))
        }
        Waiting::Streaming(reverse) => {
            let r = state.tasks.get(reverse)?;
            if r.state == TaskState::Failed {
                return fail(format!(
                    "the reverse stream {reverse} failed: {}",
                    r.error.as_deref().unwrap_or("(no error recorded)")
                ));
            }
            let streaming = r
                .units
                .iter()
                .any(|u| u.kind == UnitKind::Cdc && matches!(u.state, UnitState::Running { .. }));
            if !streaming {
                return None;
            }
            advance(format!("task {reverse}"))
        }
        Waiting::Hook | Waiting::Nothing => None,
    }
}

/// The leader advances every switch in progress; followers skip (only the
/// leader proposes, and a stale proposal is a no-op anyway).
pub async fn drive(node: crate::node::Node) {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if node.raft.current_leader().await != Some(node.raft.metrics().borrow().id) {
            continue;
        }
        let moves: Vec<Request> = {
            let s = node.state.read().expect("state lock");
            s.tasks
                .iter()
                .filter(|(_, t)| t.switch.as_ref().is_some_and(|s| !s.finished()))
                .filter_map(|(name, _)| next_move(&s, name))
                .collect()
        };
        for m in moves {
            if let Err(e) = node.write(m).await {
                tracing::warn!(error = %e, "could not advance a cutover");
            }
        }
    }
}
