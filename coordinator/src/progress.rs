//! What `ferry task wait` and `ferry cutover` show while they wait: on a terminal, a bar of the
//! task's rows, one bar per table loading now and a line with the CDC lag
//! (indicatif, redrawn in place); elsewhere (a pipe, a CI log), one plain
//! line every [`LINE_EVERY`] once the wait has lasted [`FIRST_LINE_AFTER`]
//! (a short wait, or one that fails at once, prints nothing but its
//! result or its one-line error). Progress goes to stderr: stdout keeps only
//! the result line scripts read.

use ferry_common::proto::TaskStatusReply;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// A plain progress line at most this often.
const LINE_EVERY: Duration = Duration::from_secs(10);
/// No plain line before the wait has lasted this long.
const FIRST_LINE_AFTER: Duration = Duration::from_secs(5);
/// Tables with a bar of their own at once (the rest count in the total).
const TABLE_BARS: usize = 8;

pub struct WaitProgress {
    task: String,
    out: Out,
}

enum Out {
    Bars {
        multi: MultiProgress,
        total: ProgressBar,
        tables: BTreeMap<String, ProgressBar>,
        cdc: Option<ProgressBar>,
    },
    Lines {
        started: Instant,
        last: Option<Instant>,
    },
}

/// The task's figures `task wait` shows, from one status reply.
#[derive(Debug, PartialEq)]
struct Figures {
    rows: u64,
    rows_estimate: u64,
    tables_done: usize,
    tables: usize,
    /// (schema.table, rows loaded, rows estimated) of tables loading now.
    loading: Vec<(String, u64, u64)>,
    /// "latency source 0.4 s, target 0.6 s, incoming 12" while CDC runs.
    cdc: Option<String>,
}

impl Figures {
    fn of(st: &TaskStatusReply) -> Figures {
        let mut f = Figures {
            rows: 0,
            rows_estimate: 0,
            tables_done: 0,
            tables: st.tables.len(),
            loading: vec![],
            cdc: None,
        };
        for t in &st.tables {
            f.rows += t.rows_loaded;
            f.rows_estimate += t.rows_estimate.max(t.rows_loaded);
            if t.state == "Table completed" {
                f.tables_done += 1;
            } else if t.state == "Full load" {
                f.loading
                    .push((format!("{}.{}", t.schema, t.name), t.rows_loaded, t.rows_estimate));
            }
        }
        if let Ok(c) = serde_json::from_str::<serde_json::Value>(&st.cdc_json) {
            if c["streaming"] == true {
                f.cdc = Some(format!(
                    "latency source {:.1} s, target {:.1} s, incoming {}",
                    c["latency_source_seconds"].as_f64().unwrap_or(0.0),
                    c["latency_target_seconds"].as_f64().unwrap_or(0.0),
                    c["incoming_changes"].as_u64().unwrap_or(0)
                ));
            }
        }
        f
    }

    fn line(&self, task: &str, phase: &str) -> String {
        let mut s = format!(
            "task {task}: {phase}, tables {}/{} complete, rows {}/{}",
            self.tables_done, self.tables, self.rows, self.rows_estimate
        );
        if let Some(c) = &self.cdc {
            s.push_str("; CDC ");
            s.push_str(c);
        }
        s
    }
}

impl WaitProgress {
    /// Bars when stderr is a terminal, plain lines otherwise.
    pub fn new(task: &str) -> WaitProgress {
        let out = if std::io::stderr().is_terminal() {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let total = multi.add(ProgressBar::new(0));
            total.set_style(style("{prefix:>32} [{bar:30.cyan/blue}] {pos}/{len} rows {msg}"));
            total.set_prefix(format!("task {task}"));
            Out::Bars {
                multi,
                total,
                tables: BTreeMap::new(),
                cdc: None,
            }
        } else {
            Out::Lines {
                started: Instant::now(),
                last: None,
            }
        };
        WaitProgress {
            task: task.to_string(),
            out,
        }
    }

    pub fn update(&mut self, st: &TaskStatusReply) {
        let f = Figures::of(st);
        match &mut self.out {
            Out::Lines { started, last } => {
                if started.elapsed() >= FIRST_LINE_AFTER && last.is_none_or(|l| l.elapsed() >= LINE_EVERY) {
                    *last = Some(Instant::now());
                    eprintln!("{}", f.line(&self.task, &st.phase));
                }
            }
            Out::Bars {
                multi,
                total,
                tables,
                cdc,
            } => {
                total.set_length(f.rows_estimate);
                total.set_position(f.rows);
                total.set_message(format!("{}, tables {}/{} complete", st.phase, f.tables_done, f.tables));
                let shown: Vec<&(String, u64, u64)> = f.loading.iter().take(TABLE_BARS).collect();
                tables.retain(|name, bar| {
                    let keep = shown.iter().any(|(n, _, _)| n == name);
                    if !keep {
                        bar.finish_and_clear();
                        multi.remove(bar);
                    }
                    keep
                });
                for (name, rows, estimate) in shown {
                    let bar = tables.entry(name.clone()).or_insert_with(|| {
                        let b = multi.add(ProgressBar::new(0));
                        b.set_style(style("{prefix:>32} [{bar:30}] {pos}/{len} rows"));
                        b.set_prefix(name.clone());
                        b
                    });
                    bar.set_length((*estimate).max(*rows));
                    bar.set_position(*rows);
                }
                if f.cdc.is_some() && cdc.is_none() {
                    let b = multi.add(ProgressBar::new_spinner());
                    b.set_style(style("{prefix:>32} {spinner} {msg}"));
                    b.set_prefix("CDC");
                    b.enable_steady_tick(Duration::from_millis(200));
                    *cdc = Some(b);
                }
                if let Some(bar) = cdc {
                    bar.set_message(f.cdc.clone().unwrap_or_else(|| "not streaming".into()));
                }
            }
        }
    }

    /// Runs `f` (which prints to stdout) with the bars taken off the
    /// terminal, so its lines are not overdrawn.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.out {
            Out::Bars { multi, .. } => multi.suspend(f),
            Out::Lines { .. } => f(),
        }
    }

    /// Takes the bars off the terminal (the result line follows).
    pub fn finish(&self) {
        if let Out::Bars { multi, .. } = &self.out {
            let _ = multi.clear();
        }
    }
}

impl Drop for WaitProgress {
    fn drop(&mut self) {
        self.finish();
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_common::proto::TableStatus;

    fn table(name: &str, state: &str, rows: u64, estimate: u64) -> TableStatus {
        TableStatus {
            schema: "public".into(),
            name: name.into(),
            state: state.into(),
            rows_loaded: rows,
            rows_estimate: estimate,
            ..Default::default()
        }
    }

    #[test]
    fn the_plain_line_counts_tables_rows_and_lag() {
        let st = TaskStatusReply {
            phase: "Load".into(),
            tables: vec![
                table("a", "Table completed", 100, 90),
                table("b", "Full load", 40, 200),
                table("c", "Before load", 0, 50),
            ],
            cdc_json: r#"{"streaming": true, "latency_source_seconds": 0.3, "latency_target_seconds": 1.5, "incoming_changes": 7}"#.into(),
            ..Default::default()
        };
        let f = Figures::of(&st);
        assert_eq!(f.loading, vec![("public.b".to_string(), 40, 200)]);
        assert_eq!(
            f.line("t1", &st.phase),
            "task t1: Load, tables 1/3 complete, rows 140/350; CDC latency source 0.3 s, target 1.5 s, incoming 7"
        );
    }
}
