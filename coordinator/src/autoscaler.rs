//! The local capacity provider: `ferry up`'s workers, a fixed number or as
//! many as the desired capacity asks for (`--autoscale`), each a direct
//! child process with one slot.
//!
//! Scaling up starts workers at once. Scaling down follows the figure the
//! coordinator already held through its cooldown, and drains rather than
//! kills: the worker gets SIGTERM, hands a CDC stream back at once (the
//! next worker resumes it from the checkpoint on the target) and finishes
//! other work within its grace period. Idle workers are chosen first, so a
//! scale-down during a quiet CDC tail stops the workers that hold nothing.

use ferry_common::access::ClientLink;
use ferry_common::proto::{admin_client::AdminClient, CapacityRequest};
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::time::Instant;

/// How often the fleet looks at the desired capacity.
const TICK: Duration = Duration::from_secs(1);

struct Member {
    index: u32,
    pid: u32,
    child: Child,
    /// When it was told to drain.
    draining_since: Option<Instant>,
}

/// `ferry up`'s worker processes.
pub struct Fleet {
    bin: PathBuf,
    args: Vec<OsString>,
    grace: Duration,
    members: Vec<Member>,
    started: u32,
    /// Where each worker serves its metrics, for `ferry up`'s `/metrics`.
    metrics: Option<crate::fleet_metrics::Workers>,
}

impl Fleet {
    pub fn new(bin: PathBuf, args: Vec<OsString>, grace: Duration) -> Fleet {
        Fleet {
            bin,
            args,
            grace,
            members: vec![],
            started: 0,
            metrics: None,
        }
    }

    /// Each worker serves `/metrics` on a loopback port recorded in
    /// `workers`.
    pub fn with_metrics(mut self, workers: crate::fleet_metrics::Workers) -> Fleet {
        self.metrics = Some(workers);
        self
    }

    /// Keeps `n` workers running, starting again any that exit.
    pub async fn run_fixed(mut self, n: u32, mut stop: watch::Receiver<bool>) {
        loop {
            self.reap();
            while self.active() < n as usize && self.start() {}
            tokio::select! {
                _ = tokio::time::sleep(TICK) => {}
                _ = stop.changed() => break,
            }
        }
        self.stop_all().await;
    }

    /// Follows the cluster's desired capacity, clamped to `min..=max`.
    pub async fn autoscale(mut self, link: ClientLink, min: u32, max: u32, mut stop: watch::Receiver<bool>) {
        let admin = match link.connect_lazy(Duration::from_secs(3), Duration::from_secs(5)) {
            Ok(ch) => Some(AdminClient::new(ch)),
            Err(e) => {
                tracing::error!(error = %e, "autoscaler cannot reach the coordinators; keeping the minimum");
                None
            }
        };
        let mut last_target = None;
        loop {
            self.reap();
            self.kill_overdue();
            let capacity = match &admin {
                Some(a) => match a.clone().capacity(CapacityRequest {}).await {
                    Ok(r) => Some(r.into_inner()),
                    Err(s) => {
                        tracing::debug!(error = %s.message(), "capacity unavailable; keeping the workers as they are");
                        None
                    }
                },
                None => None,
            };
            let target = match &capacity {
                Some(c) => c.desired.clamp(min, max),
                None => (self.active() as u32).clamp(min, max),
            };
            if last_target != Some(target) {
                let why = capacity.as_ref().map_or_else(
                    || "capacity unknown".to_string(),
                    |c| {
                        let reasons: Vec<String> = c
                            .tasks
                            .iter()
                            .filter(|t| t.desired > 0)
                            .map(|t| format!("{}: {}", t.task, t.reason))
                            .collect();
                        format!("desired {} ({})", c.desired, reasons.join("; "))
                    },
                );
                tracing::info!(workers = target, min, max, "{why}");
                last_target = Some(target);
            }
            let active = self.active() as u32;
            if active < target {
                for _ in active..target {
                    if !self.start() {
                        break;
                    }
                }
            } else if active > target {
                let busy: Vec<String> = capacity
                    .map(|c| c.busy_workers.into_iter().map(|w| w.name).collect())
                    .unwrap_or_default();
                self.drain(active - target, &busy);
            }
            tokio::select! {
                _ = tokio::time::sleep(TICK) => {}
                _ = stop.changed() => break,
            }
        }
        self.stop_all().await;
    }

    /// Workers not draining.
    fn active(&self) -> usize {
        self.members.iter().filter(|m| m.draining_since.is_none()).count()
    }

    fn start(&mut self) -> bool {
        self.started += 1;
        let index = self.started;
        let mut cmd = Command::new(&self.bin);
        cmd.args(&self.args).kill_on_drop(true);
        if let Some(m) = &self.metrics {
            match m.assign(index) {
                Ok(addr) => {
                    cmd.arg("--metrics-listen").arg(addr.to_string());
                }
                Err(e) => tracing::warn!(worker = index, error = %e, "no port for the worker's metrics"),
            }
        }
        match cmd.spawn() {
            Ok(child) => {
                let pid = child.id().unwrap_or(0);
                tracing::info!(worker = index, pid, "started ferry-worker");
                self.members.push(Member {
                    index,
                    pid,
                    child,
                    draining_since: None,
                });
                true
            }
            Err(e) => {
                tracing::error!(error = %e, bin = %self.bin.display(), "cannot start ferry-worker");
                if let Some(m) = &self.metrics {
                    m.remove(index);
                }
                false
            }
        }
    }

    /// Forgets workers that exited (a drained one, or one that died: the
    /// next tick starts another if the figure still asks for it).
    fn reap(&mut self) {
        let metrics = self.metrics.clone();
        self.members.retain_mut(|m| match m.child.try_wait() {
            Ok(Some(status)) => {
                if let Some(w) = &metrics {
                    w.remove(m.index);
                }
                if m.draining_since.is_some() {
                    tracing::info!(worker = m.index, pid = m.pid, %status, "ferry-worker drained and exited");
                } else {
                    tracing::warn!(worker = m.index, pid = m.pid, %status, "ferry-worker exited");
                }
                false
            }
            _ => true,
        });
    }

    /// Tells `n` workers to drain: idle ones first (their `host:pid` name
    /// is not among `busy`), newest first.
    fn drain(&mut self, n: u32, busy: &[String]) {
        let is_busy = |pid: u32| {
            let pid = pid.to_string();
            busy.iter().any(|b| b.rsplit(':').next() == Some(pid.as_str()))
        };
        let mut order: Vec<usize> = (0..self.members.len())
            .filter(|&i| self.members[i].draining_since.is_none())
            .collect();
        order.sort_by_key(|&i| (is_busy(self.members[i].pid), std::cmp::Reverse(self.members[i].index)));
        for i in order.into_iter().take(n as usize) {
            let m = &mut self.members[i];
            tracing::info!(
                worker = m.index,
                pid = m.pid,
                busy = is_busy(m.pid),
                "draining ferry-worker"
            );
            terminate(m.pid);
            m.draining_since = Some(Instant::now());
        }
    }

    /// Kills workers that drained for longer than their grace period (and
    /// a margin for the hand-back itself).
    fn kill_overdue(&mut self) {
        let limit = self.grace + Duration::from_secs(5);
        for m in &mut self.members {
            if m.draining_since.is_some_and(|t| t.elapsed() > limit) {
                tracing::warn!(
                    worker = m.index,
                    pid = m.pid,
                    "ferry-worker overran its drain grace period; killing it"
                );
                let _ = m.child.start_kill();
            }
        }
    }

    /// Drains every worker and waits for them to exit.
    async fn stop_all(&mut self) {
        let n = self.active() as u32;
        self.drain(n, &[]);
        let deadline = Instant::now() + self.grace + Duration::from_secs(5);
        while !self.members.is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            self.reap();
        }
        for m in &mut self.members {
            let _ = m.child.kill().await;
        }
    }
}

/// SIGTERM to a child this process started.
fn terminate(pid: u32) {
    if pid == 0 {
        return;
    }
    // SAFETY: kill(2) on the pid of a child we spawned and have not reaped.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
}
