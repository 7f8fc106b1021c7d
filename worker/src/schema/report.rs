//! The assessment report: `report.json` (format `ferry-assessment/1`,
//! documented field by field in docs/assessment.md; fields are only ever
//! added), `report.html` (one self-contained page: inline CSS, no scripts,
//! no network), and the few lines `ferry assess` prints.

use super::assessment::*;
use super::check::{Check, CheckStatus};
use super::convert::Conversion;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Report {
    pub format: &'static str,
    pub generated_at: String,
    pub source: SourceInfo,
    pub target_engine: &'static str,
    pub migration_type: String,
    pub summary: Summary,
    pub categories: Vec<CategorySummary>,
    pub action_items: Vec<ActionItem>,
    pub objects: Vec<ObjectResult>,
    pub premigration_checks: Vec<Check>,
    /// The source's tables, for sizing the migration.
    pub tables: Vec<TableInfo>,
}

#[derive(Debug, Serialize)]
pub struct TableInfo {
    pub name: String,
    /// The catalog's estimates (statistics), not counts.
    pub rows_estimate: u64,
    pub size_bytes: u64,
    pub primary_key: bool,
    pub lob_columns: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct SourceInfo {
    pub engine: &'static str,
    /// The endpoint as Ferry prints it (no secrets).
    pub endpoint: String,
    pub version: String,
    pub database: String,
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub objects: usize,
    pub converted_automatically: usize,
    pub converted_with_warnings: usize,
    pub needing_action: usize,
    pub percent_automatic: f64,
    pub percent_converted: f64,
    /// Action items by severity.
    pub action_items: SeverityCounts,
    pub checks_failed: usize,
    pub checks_warning: usize,
    pub tables: usize,
    pub rows_estimate: u64,
    pub size_bytes: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct SeverityCounts {
    pub critical: usize,
    pub high: usize,
    pub medium: usize,
    pub low: usize,
    pub info: usize,
}

pub fn build(
    conv: &Conversion,
    source: SourceInfo,
    migration_type: &str,
    checks: Vec<Check>,
    tables: Vec<TableInfo>,
    generated_at: String,
) -> Report {
    let count = |o: Outcome| conv.objects.iter().filter(|x| x.outcome == o).count();
    let mut sev = SeverityCounts::default();
    for i in &conv.items {
        match i.severity {
            Severity::Critical => sev.critical += 1,
            Severity::High => sev.high += 1,
            Severity::Medium => sev.medium += 1,
            Severity::Low => sev.low += 1,
            Severity::Info => sev.info += 1,
        }
    }
    let mut items = conv.items.clone();
    items.sort_by(|a, b| a.severity.cmp(&b.severity).then(a.id.cmp(&b.id)));
    let (auto, warn) = (count(Outcome::Automatic), count(Outcome::Warnings));
    Report {
        format: "ferry-assessment/1",
        generated_at,
        source,
        target_engine: conv.to.name(),
        migration_type: migration_type.to_string(),
        summary: Summary {
            objects: conv.objects.len(),
            converted_automatically: auto,
            converted_with_warnings: warn,
            needing_action: count(Outcome::Action),
            percent_automatic: percent(auto, conv.objects.len()),
            percent_converted: percent(auto + warn, conv.objects.len()),
            action_items: sev,
            checks_failed: checks.iter().filter(|c| c.status == CheckStatus::Failed).count(),
            checks_warning: checks.iter().filter(|c| c.status == CheckStatus::Warning).count(),
            tables: tables.len(),
            rows_estimate: tables.iter().map(|t| t.rows_estimate).sum(),
            size_bytes: tables.iter().map(|t| t.size_bytes).sum(),
        },
        categories: summarize(&conv.objects),
        action_items: items,
        objects: conv.objects.clone(),
        premigration_checks: checks,
        tables,
    }
}

/// The lines `ferry assess` prints.
pub fn summary_text(r: &Report) -> String {
    let s = &r.summary;
    let mut out = format!(
        "{} {} → {}: {} objects, {:.1}% converted ({:.1}% automatically: {} without and {} with warnings), {} need action\n",
        r.source.engine,
        r.source.database,
        r.target_engine,
        s.objects,
        s.percent_converted,
        s.percent_automatic,
        s.converted_automatically,
        s.converted_with_warnings,
        s.needing_action
    );
    out.push_str(&format!(
        "{} tables, about {} rows, {:.1} MiB\n",
        s.tables,
        s.rows_estimate,
        s.size_bytes as f64 / 1_048_576.0
    ));
    out.push_str(&format!(
        "action items: {} critical, {} high, {} medium, {} low, {} info\n",
        s.action_items.critical, s.action_items.high, s.action_items.medium, s.action_items.low, s.action_items.info
    ));
    for c in r.categories.iter().filter(|c| c.total > 0) {
        out.push_str(&format!(
            "  {:<12} {:>4} total {:>4} auto {:>4} warn {:>4} action (simple {}, medium {}, complex {})\n",
            c.category.name(),
            c.total,
            c.automatic,
            c.with_warnings,
            c.needs_action,
            c.effort.simple,
            c.effort.medium,
            c.effort.complex
        ));
    }
    out.push_str(&format!(
        "premigration checks: {} passed, {} warning, {} failed\n",
        r.premigration_checks.len() - s.checks_failed - s.checks_warning,
        s.checks_warning,
        s.checks_failed
    ));
    for c in r.premigration_checks.iter().filter(|c| c.status == CheckStatus::Failed) {
        out.push_str(&format!("  FAILED {}: {}\n", c.id, c.detail));
    }
    out
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub fn html(r: &Report) -> String {
    let s = &r.summary;
    let mut h = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Ferry assessment</title>\n<style>\
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}\
table{border-collapse:collapse;width:100%;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}\
th{background:#f2f2f2}pre{white-space:pre-wrap;margin:0;font-size:12px;background:#fafafa}\
.critical{background:#f8d0d0}.high{background:#fbe2c8}.medium{background:#fdf3c4}.low{background:#e6f1fb}.info{background:#f4f4f4}\
.passed{color:#1a7f37}.warning{color:#9a6700}.failed{color:#cf222e;font-weight:bold}\
</style></head><body>\n",
    );
    h.push_str(&format!(
        "<h1>Migration assessment: {} {} → {}</h1>\n<p>Source {} ({}). Task type {}. Generated {}.</p>\n",
        esc(r.source.engine),
        esc(&r.source.database),
        esc(r.target_engine),
        esc(&r.source.endpoint),
        esc(&r.source.version),
        esc(&r.migration_type),
        esc(&r.generated_at)
    ));
    h.push_str(&format!(
        "<p><b>{} objects, {:.1}% converted</b> ({} automatically, {} with warnings); {} need action. \
Action items: {} critical, {} high, {} medium, {} low, {} info.</p>\n",
        s.objects,
        s.percent_converted,
        s.converted_automatically,
        s.converted_with_warnings,
        s.needing_action,
        s.action_items.critical,
        s.action_items.high,
        s.action_items.medium,
        s.action_items.low,
        s.action_items.info
    ));
    h.push_str("<h2>Summary by category</h2>\n<table><tr><th>Category</th><th>Total</th><th>Automatic</th><th>With warnings</th><th>Needs action</th><th>Simple (&lt;2 h)</th><th>Medium (2–6 h)</th><th>Complex (&gt;6 h)</th><th>% automatic</th><th>% converted</th></tr>\n");
    for c in &r.categories {
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.1}</td></tr>\n",
            c.category.name(), c.total, c.automatic, c.with_warnings, c.needs_action,
            c.effort.simple, c.effort.medium, c.effort.complex, c.percent_automatic,
            c.percent_converted
        ));
    }
    h.push_str(
        "</table>\n<h2>Premigration checks</h2>\n<table><tr><th>Check</th><th>Status</th><th>Detail</th></tr>\n",
    );
    for c in &r.premigration_checks {
        let st = match c.status {
            CheckStatus::Passed => "passed",
            CheckStatus::Warning => "warning",
            CheckStatus::Failed => "failed",
        };
        h.push_str(&format!(
            "<tr><td>{} <small>{}</small></td><td class=\"{st}\">{st}</td><td>{}</td></tr>\n",
            esc(&c.name),
            esc(c.id),
            esc(&c.detail)
        ));
    }
    h.push_str("</table>\n<h2>Action items</h2>\n<table><tr><th>Id</th><th>Severity</th><th>Effort</th><th>Object</th><th>Message and action</th><th>Source SQL</th><th>Proposed SQL</th></tr>\n");
    for i in &r.action_items {
        let effort = match i.effort {
            Some(Effort::Simple) => "simple",
            Some(Effort::Medium) => "medium",
            Some(Effort::Complex) => "complex",
            None => "",
        };
        h.push_str(&format!(
            "<tr class=\"{}\" id=\"{}\"><td>{}</td><td>{}</td><td>{effort}</td><td>{}</td><td>{}<br><i>{}</i></td><td><pre>{}</pre></td><td><pre>{}</pre></td></tr>\n",
            i.severity.name(), esc(&i.id), esc(&i.id), i.severity.name(), esc(&i.object), esc(&i.message), esc(&i.action),
            esc(&i.source_sql), esc(i.proposed_sql.as_deref().unwrap_or(""))
        ));
    }
    h.push_str(
        "</table>\n<h2>Tables</h2>\n<table><tr><th>Table</th><th>Rows (estimate)</th><th>Size (MiB)</th><th>Primary key</th><th>LOB columns</th></tr>\n",
    );
    for t in &r.tables {
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{:.1}</td><td>{}</td><td>{}</td></tr>\n",
            esc(&t.name),
            t.rows_estimate,
            t.size_bytes as f64 / 1_048_576.0,
            if t.primary_key { "yes" } else { "no" },
            esc(&t.lob_columns.join(", "))
        ));
    }
    h.push_str("</table>\n<h2>Objects</h2>\n<table><tr><th>Category</th><th>Object</th><th>Outcome</th><th>Action items</th></tr>\n");
    for o in &r.objects {
        let outcome = match o.outcome {
            Outcome::Automatic => "automatic",
            Outcome::Warnings => "with warnings",
            Outcome::Action => "needs action",
        };
        let links: Vec<String> = o
            .action_items
            .iter()
            .map(|id| format!("<a href=\"#{0}\">{0}</a>", esc(id)))
            .collect();
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{outcome}</td><td>{}</td></tr>\n",
            o.category.name(),
            esc(&o.name),
            links.join("<br>")
        ));
    }
    h.push_str("</table>\n</body></html>\n");
    h
}
