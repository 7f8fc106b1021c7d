//! Capacity: how many Ferry capacity units (FCUs, one worker slot each) the
//! tasks could use now, and how many the cluster should run.
//!
//! A task's *desired* capacity is read off its units, which already say
//! what work exists and what waits on what:
//!
//! - segment work (loads, validation ranges) pending or running, at most
//!   `MaxFullLoadSubTasks` of it — more units than that would idle;
//! - one unit for the CDC stream while it runs or can start: a task's
//!   changes are one ordered stream, applied on parallel lanes inside one
//!   slot, so its backlog (latency, incoming changes, retained log) is
//!   reported in the reason but cannot use a second unit;
//! - one unit per other step that can run now (introspection, post-data,
//!   cutover steps…);
//!
//! clamped to the task's `MinCapacityUnits`..`MaxCapacityUnits` while it
//! runs (0 when it does not). The cluster's figure is the sum. Scaling up
//! follows it at once; scaling down follows the highest figure seen over
//! the cooldown ([`Cooldown`]), so a lull between two phases (the last
//! segment done, post-data not yet granted) does not stop workers that are
//! needed a second later. The figure is computed from replicated state, so
//! any node answers, leader or not.

use crate::state::{Task, UnitKind, UnitState};
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One task's capacity figures (`ferry capacity`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TaskCapacity {
    pub task: String,
    pub min: u32,
    pub max: Option<u32>,
    pub desired: u32,
    /// Units the task holds now.
    pub granted: u32,
    /// What the desired figure comes from, in words.
    pub reason: String,
}

/// A task's desired capacity and the reason for it.
pub fn of_task(t: &Task) -> TaskCapacity {
    let limits = t.spec.settings.capacity;
    let granted = t.granted();
    let figure = |desired: u32, reason: String| TaskCapacity {
        task: t.spec.name.clone(),
        min: limits.min,
        max: limits.max,
        desired,
        granted,
        reason,
    };
    if !t.is_active() {
        return figure(0, format!("task {}", t.state.as_str()));
    }
    let (mut waiting, mut running, mut stream, mut steps) = (0u32, 0u32, 0u32, 0u32);
    for u in &t.units {
        let live = match u.state {
            UnitState::Running { .. } => true,
            UnitState::Pending { .. } => false,
            UnitState::Done | UnitState::Failed { .. } => continue,
        };
        match u.kind {
            UnitKind::Load { .. } | UnitKind::Validate { .. } if live => running += 1,
            // Waiting segments count before they can run (the load waits for
            // the target's tables): capacity asked for early is there when
            // they can.
            UnitKind::Load { .. } | UnitKind::Validate { .. } => waiting += 1,
            UnitKind::Snapshot => {}
            UnitKind::Cdc if live || t.runnable(&u.kind) => stream = 1,
            _ if live || t.runnable(&u.kind) => steps += 1,
            _ => {}
        }
    }
    let segments = (waiting + running).min(t.spec.settings.max_full_load_subtasks);
    let raw = segments + stream + steps;
    let plural = |n: u32, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let mut reason = vec![];
    if waiting > 0 {
        reason.push(format!("{} waiting", plural(waiting, "segment")));
    }
    if running > 0 {
        reason.push(format!("{running} running"));
    }
    let left = rows_left(t);
    if left > 0 {
        reason.push(format!("~{left} rows to load"));
    }
    if stream == 1 {
        let p = t.cdc.as_ref().map(|c| &c.progress);
        let latency = p.map_or(0, |p| p.latency_source_ms.max(p.latency_target_ms));
        let mut s = format!("CDC stream (latency {} s", latency / 1000);
        if let Some(p) = p.filter(|p| p.incoming_changes > 0) {
            s.push_str(&format!(", {} changes incoming", p.incoming_changes));
        }
        if let Some(p) = p.filter(|p| p.retained_wal_bytes >= 1 << 20) {
            s.push_str(&format!(", {} MiB of log retained", p.retained_wal_bytes >> 20));
        }
        s.push(')');
        reason.push(s);
    }
    if steps > 0 {
        reason.push(plural(steps, "step"));
    }
    let mut desired = raw.max(limits.min);
    if desired > raw {
        reason.push(format!("MinCapacityUnits {}", limits.min));
    }
    if let Some(max) = limits.max.filter(|m| desired > *m) {
        desired = max;
        reason.push(format!("capped at MaxCapacityUnits {max}"));
    }
    if reason.is_empty() {
        reason.push("idle".into());
    }
    figure(desired, reason.join(", "))
}

/// Rows the source's estimates say are still to be loaded.
fn rows_left(t: &Task) -> u64 {
    let Some(schema) = &t.schema else { return 0 };
    // One pass over the units (this runs every second under the state
    // lock): rows copied per table, and whether any of its loads remain.
    let mut tables = vec![(0u64, false); schema.tables.len()];
    for u in &t.units {
        if let UnitKind::Load { table, .. } = u.kind {
            if let Some((rows, loading)) = tables.get_mut(table) {
                *rows += u.rows;
                *loading |= matches!(u.state, UnitState::Pending { .. } | UnitState::Running { .. });
            }
        }
    }
    tables
        .iter()
        .zip(&schema.tables)
        .filter(|((_, loading), _)| *loading)
        .map(|((rows, _), table)| table.rows_estimate.saturating_sub(*rows))
        .sum()
}

/// The cluster's figures: every task's and their sums.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ClusterCapacity {
    pub tasks: Vec<TaskCapacity>,
    /// The sum of the tasks' desired capacity now.
    pub desired_now: u32,
    /// What to run: `desired_now`, or the highest figure of the cooldown
    /// window when that is higher.
    pub desired: u32,
    pub granted: u32,
    pub cooldown_s: u64,
}

/// Remembers the figures of the last cooldown window: scale-down follows
/// the highest of them.
pub struct Cooldown {
    window: Duration,
    seen: Mutex<VecDeque<(Instant, u32)>>,
}

impl Cooldown {
    pub fn new(window: Duration) -> Cooldown {
        Cooldown {
            window,
            seen: Mutex::new(VecDeque::new()),
        }
    }

    /// Records `now_figure` and returns what to run: the highest figure
    /// seen within the window (the current one included).
    pub fn observe(&self, now_figure: u32, now: Instant) -> u32 {
        let mut seen = self.seen.lock().expect("cooldown lock");
        while seen
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > self.window)
        {
            seen.pop_front();
        }
        // Only rises and the latest value matter for a running maximum:
        // drop what the new figure overshadows.
        while seen.back().is_some_and(|(_, f)| *f <= now_figure) {
            seen.pop_back();
        }
        seen.push_back((now, now_figure));
        seen.front().map_or(now_figure, |(_, f)| *f)
    }

    /// The figures of every task in `tasks`, and the cluster's.
    pub fn cluster<'a>(&self, tasks: impl Iterator<Item = &'a Task>) -> ClusterCapacity {
        let tasks: Vec<TaskCapacity> = tasks.map(of_task).collect();
        let desired_now = tasks.iter().map(|t| t.desired).sum();
        ClusterCapacity {
            desired: self.observe(desired_now, Instant::now()),
            granted: tasks.iter().map(|t| t.granted).sum(),
            desired_now,
            tasks,
            cooldown_s: self.window.as_secs(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_down_waits_for_the_cooldown_and_scale_up_does_not() {
        let c = Cooldown::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(c.observe(2, at(0)), 2);
        assert_eq!(c.observe(6, at(1)), 6, "up at once");
        assert_eq!(c.observe(1, at(2)), 6, "down waits");
        assert_eq!(c.observe(3, at(5)), 6);
        assert_eq!(c.observe(1, at(12)), 3, "the 6 of t=1 left the window");
        assert_eq!(c.observe(1, at(16)), 1);
        assert_eq!(c.observe(0, at(30)), 0);
    }
}
