//! The coordinator's web dashboard (`GET /` on `--metrics-listen`): one
//! server-rendered page, no script and nothing fetched from elsewhere, that
//! refreshes itself every 5 s. It shows the cluster (leader, term,
//! capacity), the workers and what each holds, and per task its state and
//! phase, a progress bar per table with its CDC counters and validation,
//! and two charts over the last hour: full-load rows per second and CDC
//! latency (source and target).
//!
//! The charts need history the Raft state does not keep, so each node
//! samples its own replica every [`SAMPLE_EVERY`] into [`History`] (an
//! hour per task, in memory): a node that just started, or a follower
//! asked after a leader change, draws from when it started sampling.

use crate::node::Node;
use crate::state::{State, Task, UnitKind};
use ferry_common::proto::TaskStatusReply;
use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const SAMPLE_EVERY: Duration = Duration::from_secs(2);
/// An hour of samples.
const KEEP: usize = 3600 / 2;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Sample {
    at_ms: u64,
    rows_loaded: u64,
    /// CDC latency while the stream reports (None: no stream).
    latency: Option<(f64, f64)>,
}

/// Each task's samples of the last hour, oldest first.
#[derive(Clone, Default)]
pub struct History(Arc<Mutex<BTreeMap<String, VecDeque<Sample>>>>);

impl History {
    /// Samples every task of `node`'s replica every [`SAMPLE_EVERY`].
    pub async fn sample(self, node: Node) {
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        loop {
            tick.tick().await;
            let s = node.state.read().expect("state lock");
            self.record(&s, ferry_common::now_ms());
        }
    }

    fn record(&self, s: &State, now_ms: u64) {
        let mut h = self.0.lock().expect("history lock");
        h.retain(|name, _| s.tasks.contains_key(name));
        for (name, t) in &s.tasks {
            let rows_loaded = (0..t.schema.as_ref().map_or(0, |sc| sc.tables.len()))
                .map(|i| t.table_progress(i).1)
                .sum();
            let latency = t.cdc.as_ref().filter(|c| c.progress_at_ms > 0).map(|c| {
                (
                    c.progress.latency_source_ms as f64 / 1000.0,
                    c.progress.latency_target_ms as f64 / 1000.0,
                )
            });
            let q = h.entry(name.clone()).or_default();
            q.push_back(Sample {
                at_ms: now_ms,
                rows_loaded,
                latency,
            });
            while q.len() > KEEP {
                q.pop_front();
            }
        }
    }

    fn of(&self, task: &str) -> Vec<Sample> {
        self.0
            .lock()
            .expect("history lock")
            .get(task)
            .map(|q| q.iter().copied().collect())
            .unwrap_or_default()
    }
}

/// The page, as of now.
pub fn render(node: &Node, history: &History) -> String {
    let cluster = crate::cluster::status(&node.raft);
    let capacity = node.capacity();
    let now = ferry_common::now_ms();
    let s = node.state.read().expect("state lock");
    let mut out = String::with_capacity(32 * 1024);
    out.push_str(HEAD);
    let (y, mo, d, h, mi, se) = ferry_common::civil_utc((now / 1000) as i64);
    let _ = write!(
        out,
        r#"<header><h1>Ferry</h1><div class="meta">node {} · leader {} · term {} · {} member(s) · capacity desired {} / granted {} · {y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{se:02} UTC</div></header>"#,
        cluster.node_id,
        if cluster.leader_id == 0 {
            "none".to_string()
        } else {
            cluster.leader_id.to_string()
        },
        cluster.term,
        cluster.members.len(),
        capacity.desired,
        capacity.granted,
    );
    workers(&mut out, &s, now);
    if s.tasks.is_empty() {
        out.push_str(r#"<section class="card"><p class="muted">No tasks. <code>ferry task create</code> adds one.</p></section>"#);
    }
    for t in s.tasks.values() {
        task(&mut out, &crate::service::status_reply(t), &history.of(&t.spec.name));
    }
    out.push_str("</body></html>\n");
    out
}

fn workers(out: &mut String, s: &State, now: u64) {
    out.push_str(r#"<section class="card"><h2>Workers</h2>"#);
    if s.workers.is_empty() {
        out.push_str(r#"<p class="muted">No worker has registered.</p></section>"#);
        return;
    }
    out.push_str("<table><tr><th>id</th><th>name</th><th>slots</th><th>last seen</th><th>holds</th></tr>");
    for (id, w) in &s.workers {
        let holds: Vec<String> = s
            .leases
            .values()
            .filter(|l| l.worker == *id)
            .map(|l| {
                let what = s
                    .tasks
                    .get(&l.task)
                    .and_then(|t| t.units.get(l.unit).map(|u| unit_label(t, &u.kind)))
                    .unwrap_or_else(|| "?".into());
                format!("{} {}", esc(&l.task), esc(&what))
            })
            .collect();
        let _ = write!(
            out,
            "<tr><td>{id}</td><td>{}</td><td>{}</td><td>{:.0} s ago</td><td>{}</td></tr>",
            esc(&w.name),
            w.slots,
            now.saturating_sub(w.last_seen_ms) as f64 / 1000.0,
            if holds.is_empty() {
                r#"<span class="muted">idle</span>"#.to_string()
            } else {
                holds.join("<br>")
            }
        );
    }
    out.push_str("</table></section>");
}

fn unit_label(t: &Task, kind: &UnitKind) -> String {
    let table = |i: &usize| {
        t.schema
            .as_ref()
            .and_then(|s| s.tables.get(*i))
            .map_or_else(|| format!("table {i}"), |tb| tb.display_name())
    };
    match kind {
        UnitKind::Load { table: i, segment } => format!("load {} #{segment}", table(i)),
        UnitKind::Validate { table: i, segment } => format!("validate {} #{segment}", table(i)),
        UnitKind::PostData { table: i } => format!("indexes of {}", table(i)),
        UnitKind::Reset { table: i } => format!("reset {}", table(i)),
        UnitKind::Reintrospect { table: i } => format!("reload {}", table(i)),
        UnitKind::Cdc => "CDC stream".into(),
        UnitKind::Snapshot => "snapshot".into(),
        UnitKind::Step(step) => format!("cutover {step:?}").to_lowercase(),
        other => format!("{other:?}").to_lowercase(),
    }
}

fn task(out: &mut String, st: &TaskStatusReply, samples: &[Sample]) {
    let summary = st.task.clone().unwrap_or_default();
    let _ = write!(
        out,
        r#"<section class="card"><h2>{} <span class="badge {}">{}</span></h2><div class="meta">{} · phase {} · {} of {} tables complete · {} rows loaded</div>"#,
        esc(&summary.name),
        esc(&summary.state),
        esc(&summary.state),
        esc(&summary.migration_type),
        esc(&st.phase),
        summary.tables_completed,
        summary.tables_total,
        summary.rows_loaded,
    );
    if !summary.error.is_empty() {
        let _ = write!(out, r#"<p class="error">{}</p>"#, esc(&summary.error));
    }
    out.push_str(r#"<div class="charts">"#);
    let rates: Vec<(u64, f64)> = samples
        .windows(2)
        .map(|w| {
            let secs = (w[1].at_ms.saturating_sub(w[0].at_ms)).max(1) as f64 / 1000.0;
            (
                w[1].at_ms,
                w[1].rows_loaded.saturating_sub(w[0].rows_loaded) as f64 / secs,
            )
        })
        .collect();
    chart(
        out,
        "Full-load rows/s (up to the last hour)",
        &[("rows/s", "#2b6cb0", rates)],
    );
    let source: Vec<(u64, f64)> = samples
        .iter()
        .filter_map(|s| s.latency.map(|l| (s.at_ms, l.0)))
        .collect();
    let target: Vec<(u64, f64)> = samples
        .iter()
        .filter_map(|s| s.latency.map(|l| (s.at_ms, l.1)))
        .collect();
    chart(
        out,
        "CDC latency, seconds (up to the last hour)",
        &[("source", "#dd6b20", source), ("target", "#805ad5", target)],
    );
    out.push_str("</div>");
    out.push_str("<table><tr><th>table</th><th>state</th><th>progress</th><th>rows</th><th>segments</th><th>CDC ins / upd / del</th><th>validation</th></tr>");
    for tb in &st.tables {
        let estimate = tb.rows_estimate.max(tb.rows_loaded).max(1);
        let pct = if tb.state == "Table completed" {
            100.0
        } else {
            (tb.rows_loaded as f64 * 100.0 / estimate as f64).min(100.0)
        };
        let validation = tb.validation.clone().unwrap_or_default();
        let _ = write!(
            out,
            r#"<tr><td>{}.{}</td><td>{}{}</td><td><div class="bar"><div style="width:{pct:.1}%"></div></div></td><td>{} / {}</td><td>{} / {}</td><td>{} / {} / {}</td><td>{}{}</td></tr>"#,
            esc(&tb.schema),
            esc(&tb.name),
            esc(&tb.state),
            if tb.error.is_empty() {
                String::new()
            } else {
                format!(r#"<div class="error">{}</div>"#, esc(&tb.error))
            },
            tb.rows_loaded,
            tb.rows_estimate,
            tb.segments_done,
            tb.segments_total,
            tb.inserts,
            tb.updates,
            tb.deletes,
            esc(&validation.state),
            if validation.validated_records > 0 || validation.mismatched_records > 0 {
                format!(
                    " ({} compared, {} different)",
                    validation.validated_records, validation.mismatched_records
                )
            } else {
                String::new()
            },
        );
    }
    out.push_str("</table></section>");
}

const W: f64 = 520.0;
const H: f64 = 150.0;
/// Room above the plot for the top axis label.
const TOP: f64 = 8.0;

/// A chart's line: name, colour and (time ms, value) points.
type Series<'a> = (&'a str, &'a str, Vec<(u64, f64)>);

/// An SVG line chart of `series`, scaled to the highest value, over the
/// time the points cover: from the oldest (at least 30 s, at most an hour)
/// to now, so a young history is drawn across the chart rather than
/// squeezed into its right edge.
fn chart(out: &mut String, title: &str, series: &[Series]) {
    let now = ferry_common::now_ms();
    let oldest = series
        .iter()
        .flat_map(|(_, _, p)| p.iter().map(|(at, _)| *at))
        .min()
        .unwrap_or(now);
    let span_ms = now.saturating_sub(oldest).clamp(30_000, 3_600_000);
    let from = now - span_ms;
    let top = series
        .iter()
        .flat_map(|(_, _, p)| p.iter().map(|(_, v)| *v))
        .fold(0.0f64, f64::max);
    let top = if top <= 0.0 { 1.0 } else { top * 1.1 };
    let _ = write!(
        out,
        r#"<figure><figcaption>{}</figcaption><svg viewBox="0 0 {} {}" width="{}" height="{}" role="img">"#,
        esc(title),
        W + 50.0,
        H + TOP + 20.0,
        W + 50.0,
        H + TOP + 20.0
    );
    for i in 0..=4 {
        let y = TOP + H - H * i as f64 / 4.0;
        let _ = write!(
            out,
            r##"<line x1="45" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#e2e8f0"/><text x="40" y="{:.1}" text-anchor="end" class="axis">{}</text>"##,
            W + 45.0,
            y + 4.0,
            short(top * i as f64 / 4.0)
        );
    }
    let _ = write!(
        out,
        r#"<text x="45" y="{}" class="axis">−{}</text><text x="{}" y="{}" text-anchor="end" class="axis">now</text>"#,
        TOP + H + 16.0,
        if span_ms >= 120_000 {
            format!("{} min", span_ms / 60_000)
        } else {
            format!("{} s", span_ms / 1000)
        },
        W + 45.0,
        TOP + H + 16.0
    );
    let mut empty = true;
    for (name, colour, points) in series {
        let pts: Vec<String> = points
            .iter()
            .filter(|(at, _)| *at >= from)
            .map(|(at, v)| {
                let x = 45.0 + W * (at - from) as f64 / span_ms as f64;
                let y = TOP + H - H * v / top;
                format!("{x:.1},{y:.1}")
            })
            .collect();
        if pts.len() >= 2 {
            empty = false;
            let _ = write!(
                out,
                r#"<polyline class="series" data-series="{}" data-max="{}" fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
                esc(name),
                points.iter().map(|(_, v)| *v).fold(0.0f64, f64::max),
                pts.join(" ")
            );
        }
    }
    if empty {
        let _ = write!(
            out,
            r#"<text x="{}" y="{}" text-anchor="middle" class="muted">no data yet</text>"#,
            45.0 + W / 2.0,
            TOP + H / 2.0
        );
    }
    out.push_str("</svg><div class=\"legend\">");
    for (name, colour, _) in series {
        let _ = write!(out, r#"<span><i style="background:{colour}"></i>{}</span>"#, esc(name));
    }
    out.push_str("</div></figure>");
}

/// 1234567 → "1.2M"; 0.5 → "0.5".
fn short(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if v >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// Text for HTML (names and errors come from users and servers).
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

const HEAD: &str = r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="5"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Ferry</title><style>
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f4f6f9;color:#1a202c}
header{background:#1a365d;color:#fff;padding:14px 24px;display:flex;align-items:baseline;gap:20px}
header h1{margin:0;font-size:22px;letter-spacing:.5px}
header .meta{color:#cbd5e0;font-size:13px}
.card{background:#fff;margin:16px 24px;padding:14px 18px;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.08)}
h2{margin:0 0 6px;font-size:18px}
.meta{color:#4a5568;font-size:13px;margin-bottom:10px}
.muted{color:#718096}
.error{color:#c53030;font-size:13px}
table{border-collapse:collapse;width:100%;font-size:13px}
th{text-align:left;color:#4a5568;font-weight:600;border-bottom:1px solid #e2e8f0;padding:6px 8px}
td{border-bottom:1px solid #edf2f7;padding:6px 8px;vertical-align:top}
.bar{background:#edf2f7;border-radius:4px;height:12px;width:180px;overflow:hidden}
.bar div{background:#38a169;height:100%}
.badge{font-size:12px;padding:2px 8px;border-radius:10px;vertical-align:middle;background:#e2e8f0;color:#2d3748}
.badge.running{background:#c6f6d5;color:#22543d}.badge.failed{background:#fed7d7;color:#822727}
.badge.completed{background:#bee3f8;color:#2a4365}.badge.stopped{background:#fefcbf;color:#744210}
.charts{display:flex;flex-wrap:wrap;gap:16px;margin:6px 0 12px}
figure{margin:0}figcaption{font-size:13px;color:#4a5568;margin-bottom:4px}
.axis{font-size:10px;fill:#718096}
.legend{font-size:12px;color:#4a5568}.legend span{margin-right:12px}
.legend i{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}
code{background:#edf2f7;padding:1px 4px;border-radius:3px}
</style></head><body>"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn a_chart_draws_a_line_from_two_points_and_says_when_it_has_none() {
        let now = ferry_common::now_ms();
        let mut out = String::new();
        chart(&mut out, "t", &[("a", "#000", vec![(now - 60_000, 1.0), (now, 3.0)])]);
        assert!(out.contains(r#"<polyline class="series" data-series="a""#), "{out}");
        let mut none = String::new();
        chart(&mut none, "t", &[("a", "#000", vec![(now, 3.0)])]);
        assert!(none.contains("no data yet") && !none.contains("polyline"), "{none}");
    }

    #[test]
    fn figures_are_short() {
        assert_eq!(short(1_234_567.0), "1.2M");
        assert_eq!(short(2500.0), "2.5k");
        assert_eq!(short(0.5), "0.5");
        assert_eq!(short(42.0), "42");
    }
}
