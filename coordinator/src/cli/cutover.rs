//! `ferry cutover` and `ferry rollback`: start (or resume, or abandon) the
//! switch the coordinator carries out (see `crate::cutover`), print each
//! step as the coordinator records it, and run the operator's hook when the
//! switch reaches it. The CLI holds no state of its own: killed at any
//! point, `--resume` picks the switch up where the coordinator has it.

use super::{connect, refuse_degraded, status_err, task_name};
use anyhow::{bail, Context};
use ferry_common::access::{ClientLink, Link};
use ferry_common::proto::{admin_client::AdminClient, SwitchAction, SwitchRequest, TaskStatusReply};
use serde_json::Value;
use std::time::{Duration, Instant};

/// What `ferry cutover` / `ferry rollback` was asked to do.
pub struct Ask<'a> {
    pub freeze: bool,
    pub hook: Option<&'a str>,
    pub dry_run: bool,
    pub resume: bool,
    pub timeout_s: u64,
}

/// `ferry cutover NAME`: the rehearsable switch from source to target,
/// each step printed with its duration. See docs/cutover.md.
pub async fn cutover(link: &ClientLink, name: &str, ask: Ask<'_>) -> anyhow::Result<()> {
    let mut c = connect(link).await?;
    if ask.resume {
        switch(&mut c, name, SwitchAction::Resume).await?;
    } else {
        let st = status(&mut c, name).await?;
        let t = st.task.clone().unwrap_or_default();
        if t.migration_type == "full-load" {
            bail!("task {name} has no change data capture: there is nothing to cut over from");
        }
        if t.state != "running" {
            bail!("task {name} is {}, not running", t.state);
        }
        refuse_degraded(name, &st, "it cannot be cut over")?;
        if ask.dry_run {
            println!("cutover of {name} (dry run: the source is not frozen, no hook runs)");
        }
        start(&mut c, name, false, &ask).await?;
    }
    follow(&mut c, name, name, ask.hook, deadline(ask.timeout_s)).await
}

/// `ferry cutover NAME --unfreeze-source`: abandons the cutover in progress
/// (or undoes a freeze left behind): the source accepts writes again and
/// the forward stream keeps running.
pub async fn unfreeze(link: &ClientLink, name: &str, timeout_s: u64) -> anyhow::Result<()> {
    let mut c = connect(link).await?;
    switch(&mut c, name, SwitchAction::Abandon).await?;
    follow(&mut c, name, name, None, deadline(timeout_s)).await
}

/// `ferry rollback NAME`: the cutover in reverse, over NAME-reverse: the
/// original source takes every write made on the target, its sequences
/// move past the target's, and it accepts writes again.
pub async fn rollback(link: &ClientLink, name: &str, ask: Ask<'_>) -> anyhow::Result<()> {
    let mut c = connect(link).await?;
    let reverse = format!("{name}-reverse");
    if ask.resume {
        switch(&mut c, &reverse, SwitchAction::Resume).await?;
    } else {
        let st = c
            .task_status(task_name(&reverse))
            .await
            .map_err(|s| anyhow::anyhow!("{}: was `ferry cutover {name}` run?", s.message()))?
            .into_inner();
        let t = st.task.clone().unwrap_or_default();
        if t.state != "running" {
            bail!("the reverse stream {reverse} is {}, not running", t.state);
        }
        start(&mut c, &reverse, true, &ask).await?;
    }
    follow(&mut c, name, &reverse, ask.hook, deadline(ask.timeout_s)).await
}

fn deadline(timeout_s: u64) -> Instant {
    Instant::now() + Duration::from_secs(timeout_s)
}

async fn status(c: &mut AdminClient<Link>, name: &str) -> anyhow::Result<TaskStatusReply> {
    Ok(c.task_status(task_name(name)).await.map_err(status_err)?.into_inner())
}

async fn start(c: &mut AdminClient<Link>, holder: &str, rollback: bool, ask: &Ask<'_>) -> anyhow::Result<()> {
    c.switch(SwitchRequest {
        name: holder.into(),
        action: SwitchAction::Start.into(),
        rollback,
        freeze: ask.freeze,
        dry_run: ask.dry_run,
        hook: ask.hook.is_some(),
        at: 0,
    })
    .await
    .map_err(status_err)?;
    Ok(())
}

async fn switch(c: &mut AdminClient<Link>, holder: &str, action: SwitchAction) -> anyhow::Result<()> {
    c.switch(SwitchRequest {
        name: holder.into(),
        action: action.into(),
        ..Default::default()
    })
    .await
    .map_err(status_err)?;
    Ok(())
}

/// Prints the switch's steps as the coordinator completes them, runs the
/// hook when the switch waits for it, and returns when it is done. `name`
/// is the forward task (for messages), `holder` the task with the record.
async fn follow(
    c: &mut AdminClient<Link>,
    name: &str,
    holder: &str,
    hook: Option<&str>,
    deadline: Instant,
) -> anyhow::Result<()> {
    let mut out = Printer::default();
    // The tables and the lag while the switch waits (the drain above all).
    let mut progress = crate::progress::WaitProgress::new(holder);
    loop {
        // A leader lost mid-cutover: the next call goes to the next node
        // (common/src/leader.rs) and the new leader carries the cutover on.
        let st = match c.task_status(task_name(holder)).await {
            Ok(st) => st.into_inner(),
            Err(s) if unreachable(&s) && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            Err(s) => return Err(status_err(s)),
        };
        let sw: Value = serde_json::from_str(&st.cutover_json)
            .map_err(|_| anyhow::anyhow!("task {holder} has no cutover on record"))?;
        progress.update(&st);
        progress.suspend(|| out.steps(&sw));
        let step = sw["step"].as_str().unwrap_or("-");
        match sw["state"].as_str().unwrap_or("") {
            "done" => {
                progress.finish();
                out.finish(&sw);
                return Ok(());
            }
            "abandoned" => {
                progress.finish();
                println!("task {name}: the source accepts writes again");
                return Ok(());
            }
            "failed" => {
                progress.finish();
                if step == "validate" {
                    print_differences(&st);
                }
                let frozen = if sw["frozen"] == true {
                    "; the source stays frozen"
                } else {
                    ""
                };
                bail!(
                    "{} stopped at step {step}: {}{frozen} (`ferry {} {name} --resume` tries the step again{})",
                    sw["direction"].as_str().unwrap_or("cutover"),
                    sw["error"].as_str().unwrap_or("(no error recorded)"),
                    sw["direction"].as_str().unwrap_or("cutover"),
                    if sw["direction"] == "cutover" {
                        ", `--unfreeze-source` abandons the cutover"
                    } else {
                        ""
                    },
                );
            }
            "awaiting-hook" => {
                progress.finish();
                let Some(cmd) = hook else {
                    bail!(
                        "the {} of {name} waits for its hook: give `--resume --hook CMD`",
                        sw["direction"].as_str().unwrap_or("cutover")
                    );
                };
                run_hook(cmd).await.map_err(|e| {
                    anyhow::anyhow!("{e}; the switch waits for the hook (`--resume --hook CMD` runs it again)")
                })?;
                let ran = SwitchRequest {
                    name: holder.into(),
                    action: SwitchAction::HookRan.into(),
                    at: sw["step_index"].as_u64().unwrap_or(0) as u32,
                    ..Default::default()
                };
                // Reported until a leader takes it (a report repeated after
                // a lost answer is refused as stale, and the record shows
                // the step done).
                loop {
                    match c.switch(ran.clone()).await {
                        Ok(_) => break,
                        Err(s) if unreachable(&s) && Instant::now() < deadline => {
                            tokio::time::sleep(Duration::from_millis(200)).await
                        }
                        Err(s) if s.code() == tonic::Code::FailedPrecondition => break,
                        Err(s) => return Err(status_err(s)),
                    }
                }
            }
            _ => {}
        }
        if Instant::now() > deadline {
            bail!(
                "timed out at step {step}; the coordinator carries on: `ferry {} {name} --resume` follows it{}",
                sw["direction"].as_str().unwrap_or("cutover"),
                if sw["direction"] == "cutover" {
                    ", `ferry cutover {name} --unfreeze-source` abandons it"
                } else {
                    ""
                }
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A call that failed because its coordinator is gone or not the leader
/// (the next call goes elsewhere), not because it was refused.
fn unreachable(s: &tonic::Status) -> bool {
    matches!(
        s.code(),
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
    )
}

async fn run_hook(cmd: &str) -> anyhow::Result<()> {
    let status = tokio::process::Command::new("sh")
        .args(["-c", cmd])
        .status()
        .await
        .with_context(|| format!("running the hook '{cmd}'"))?;
    if !status.success() {
        bail!("the hook '{cmd}' failed ({status})");
    }
    Ok(())
}

/// The first differences the cutover's comparison found, per table.
fn print_differences(st: &TaskStatusReply) {
    for t in &st.tables {
        let v = t.validation.clone().unwrap_or_default();
        for f in v.failures.iter().take(5) {
            eprintln!(
                "{}.{}: {} key ({}): {}",
                t.schema, t.name, f.failure_type, f.key, f.details
            );
        }
    }
}

/// The steps of a switch, numbered as in docs/cutover.md; a step the plan
/// leaves out is printed with why.
#[derive(Default)]
struct Printer {
    /// Steps of `steps_done` printed.
    printed: usize,
    /// Numbered lines printed (a skipped step's included).
    line: usize,
}

impl Printer {
    fn order(direction: &str) -> &'static [&'static str] {
        if direction == "rollback" {
            &["freeze", "drain", "sequences", "reopen", "hook"]
        } else {
            &["freeze", "drain", "sequences", "validate", "reverse", "hook"]
        }
    }

    fn label(direction: &str, step: &str) -> &'static str {
        match (direction, step) {
            ("rollback", "freeze") => "freeze writes on the target",
            ("rollback", "drain") => "source applied the target's last change",
            ("rollback", "sequences") => "source sequences set past the target's",
            ("rollback", "reopen") => "source accepts writes again",
            (_, "freeze") => "freeze writes on the source",
            (_, "drain") => "target applied the source's last change",
            (_, "sequences") => "sequences set past the source's values",
            (_, "validate") => "changed ranges validated",
            (_, "reverse") => "reverse stream started (target -> source)",
            (_, "hook") => "hook (repoint the application)",
            _ => "source accepts writes again",
        }
    }

    /// Prints the steps done since the last call, and the lines of skipped
    /// steps before each.
    fn steps(&mut self, sw: &Value) {
        let direction = sw["direction"].as_str().unwrap_or("cutover");
        let done = sw["steps_done"].as_array().cloned().unwrap_or_default();
        for d in &done[self.printed.min(done.len())..] {
            let step = d["step"].as_str().unwrap_or("");
            self.skipped_before(sw, step);
            let note = d["note"].as_str().unwrap_or("");
            let label = format!("{}. {}", self.line + 1, Self::label(direction, step));
            let note = if note.is_empty() {
                String::new()
            } else {
                format!("  ({note})")
            };
            println!("{label:<44} {:>8.3} s{note}", d["seconds"].as_f64().unwrap_or(0.0));
            self.line += 1;
        }
        self.printed = done.len();
    }

    /// Lines for the steps of the canonical order before `step` that the
    /// plan leaves out.
    fn skipped_before(&mut self, sw: &Value, step: &str) {
        let direction = sw["direction"].as_str().unwrap_or("cutover");
        let order = Self::order(direction);
        let Some(upto) = order.iter().position(|s| *s == step) else {
            return;
        };
        let plan: Vec<&str> = sw["plan"]
            .as_array()
            .map(|p| p.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        while self.line < upto {
            let s = order[self.line];
            if plan.contains(&s) {
                return;
            }
            let why = match s {
                "freeze" if sw["dry_run"] == true => "(dry run: skipped)",
                "freeze" => "(not asked: the operator stops writes)",
                "validate" => "(validation not enabled: skipped)",
                "reverse" => "(dry run: skipped)",
                _ => return,
            };
            let label = format!("{}. {}", self.line + 1, Self::label(direction, s));
            println!("{label:<48}{why}");
            self.line += 1;
        }
    }

    fn finish(&mut self, sw: &Value) {
        // Skipped steps at the end (a rehearsal's reverse stream).
        self.skipped_before(sw, "hook");
        let (started, finished) = (
            sw["started_at_ms"].as_u64().unwrap_or(0),
            sw["finished_at_ms"].as_u64().unwrap_or(0),
        );
        let window = finished.saturating_sub(started) as f64 / 1000.0;
        if sw["direction"] == "rollback" {
            println!("rollback window: {window:.3} s");
        } else if sw["dry_run"] == true {
            println!("expected write-freeze window: {window:.3} s");
        } else if sw["frozen"] == true {
            println!("write-freeze window: {window:.3} s");
        } else {
            println!("cutover took {window:.3} s");
        }
    }
}
