//! Schema conversion and assessment (what AWS SCT does): read the whole
//! source catalog ([`catalog`]), convert it for a target engine
//! ([`convert`], SQL bodies through [`translate`]), and report object by
//! object what converted and what needs a person ([`assessment`],
//! [`report`]), with the premigration checks for the intended task
//! ([`checks`]).
//!
//! These run in the worker binary because they need the database drivers
//! and the endpoint's credentials, which only workers hold; `ferry schema
//! convert` and `ferry assess` run `ferry-worker` with the same arguments.

pub mod assessment;
pub mod catalog;
pub mod check;
pub mod checks;
pub mod convert;
pub mod readiness;
pub mod report;
pub mod script;
pub mod translate;
pub mod trial;

use crate::engine::source::Source;
use crate::engine::target::Target;
use crate::engine::{with_engine, ConnectorError};
use anyhow::Context;
use catalog::Catalog;
use convert::Conversion;
use ferry_common::endpoint::{Endpoint, Engine};
use ferry_common::mapping::TableMappings;
use std::path::Path;

pub async fn read_catalog(ep: &Endpoint, mappings: &TableMappings) -> Result<Catalog, ConnectorError> {
    with_engine!(ep.engine, |e| e.catalog(ep, mappings).await)
}

pub fn parse_engine(s: &str) -> anyhow::Result<Engine> {
    Engine::from_name(s).ok_or_else(|| anyhow::anyhow!("--target-engine {s}: expected postgres or mysql"))
}

fn mappings(path: Option<&Path>) -> anyhow::Result<TableMappings> {
    match path {
        None => Ok(TableMappings::include_all()),
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("reading table mappings {}", p.display()))?;
            let m = TableMappings::parse(&text)?;
            // Conversion renders views, triggers and routines too, whose
            // bodies would need the same renames; until they get them,
            // conversion refuses transformation rules.
            let first = m.transforms.first().map(|r| &r.rule_id);
            let first = first.or(m.added.first().map(|r| &r.rule_id));
            let first = first.or(m.keys.first().map(|r| &r.rule_id));
            if let Some(id) = first.or(m.befores.first().map(|r| &r.rule_id)) {
                anyhow::bail!(
                    "{}: rule {id}: schema conversion and assessment do not apply transformation rules yet; run them with the selection rules only (the task itself applies the renames when it creates tables)",
                    p.display(),
                );
            }
            Ok(m)
        }
    }
}

/// Marks where one object's statements start in a DDL file; the task's
/// schema-file runner reports failures by these names.
pub const OBJECT_MARK: &str = "-- object: ";

fn ddl_file(title: &str, conv: &Conversion, parts: &[(&str, &[convert::Ddl])]) -> String {
    let mut out = format!(
        "-- Ferry schema conversion, {}: {} → {}.\n-- Review and edit freely: `ferry task create --schema-dir DIR` runs these files instead of converting by itself.\n",
        title,
        conv.from.name(),
        conv.to.name()
    );
    for (preamble, ddl) in parts {
        if ddl.is_empty() {
            continue;
        }
        if !preamble.is_empty() {
            out.push_str(&format!("\n{preamble}\n"));
        }
        let mut last = "";
        for d in ddl.iter() {
            if d.object != last {
                out.push_str(&format!("\n{OBJECT_MARK}{}\n", d.object));
                last = &d.object;
            }
            out.push_str(&d.sql);
            out.push('\n');
        }
    }
    out
}

/// The files `ferry schema convert` writes.
pub fn write_conversion(conv: &Conversion, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let fk_preamble = conv.ansi_quotes_preamble();
    let files = [
        (
            "pre-data.sql",
            ddl_file("pre-data (before the load)", conv, &[("", &conv.pre_data)]),
        ),
        ("post-data.sql", ddl_file("post-data (after the load)", conv, &[("", &conv.post_data)])),
        (
            "cutover.sql",
            ddl_file(
                "foreign keys and triggers (after post-data for a full load; at cutover when CDC follows, so that applied changes neither fire triggers nor trip keys mid-stream)",
                conv,
                &[(fk_preamble, &conv.foreign_keys), ("", &conv.triggers)],
            ),
        ),
        ("action-items.txt", action_items_text(conv)),
    ];
    for (name, text) in files {
        let p = dir.join(name);
        std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

fn action_items_text(conv: &Conversion) -> String {
    let mut items = conv.items.clone();
    items.sort_by(|a, b| a.severity.cmp(&b.severity).then(a.id.cmp(&b.id)));
    let mut out = format!(
        "{} action items ({} → {})\n",
        items.len(),
        conv.from.name(),
        conv.to.name()
    );
    for i in items {
        out.push_str(&format!(
            "\n[{}] {}\n  {}\n  action: {}\n",
            i.severity.name(),
            i.id,
            i.message,
            i.action
        ));
        if !i.source_sql.is_empty() {
            out.push_str(&format!("  source:\n{}\n", indent(&i.source_sql)));
        }
        if let Some(p) = &i.proposed_sql {
            out.push_str(&format!("  proposed:\n{}\n", indent(p)));
        }
    }
    out
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
}

pub struct ConvertArgs<'a> {
    pub source: &'a str,
    pub target_engine: &'a str,
    pub target: Option<&'a str>,
    pub out: &'a Path,
    pub table_mappings: Option<&'a Path>,
}

/// `ferry schema convert`.
pub async fn convert_command(a: ConvertArgs<'_>) -> anyhow::Result<()> {
    let ep = Endpoint::parse(a.source)?;
    let to = parse_engine(a.target_engine)?;
    let target = a.target.map(|t| target_endpoint(t, to)).transpose()?;
    let cat = read_catalog(&ep, &mappings(a.table_mappings)?).await?;
    let mut conv = convert::convert(&cat, to);
    if let Some(t) = &target {
        try_on(&mut conv, t).await?;
    }
    write_conversion(&conv, a.out)?;
    let needs = conv
        .objects
        .iter()
        .filter(|o| o.outcome == assessment::Outcome::Action)
        .count();
    println!(
        "wrote {} ({} pre-data, {} post-data and {} cutover statements); {} objects, {} need action (see action-items.txt)",
        a.out.display(),
        conv.pre_data.len(),
        conv.post_data.len(),
        conv.foreign_keys.len() + conv.triggers.len(),
        conv.objects.len(),
        needs
    );
    Ok(())
}

fn target_endpoint(url: &str, to: Engine) -> anyhow::Result<Endpoint> {
    let tep = Endpoint::parse(url)?;
    anyhow::ensure!(
        tep.engine == to,
        "--target is a {} endpoint but --target-engine is {}",
        tep.engine.name(),
        to.name()
    );
    Ok(tep)
}

/// Tries the conversion on the target (see [`trial`]) and folds the
/// refusals into it.
async fn try_on(conv: &mut Conversion, target: &Endpoint) -> anyhow::Result<()> {
    let trial = with_engine!(target.engine, |e| e.trial(conv, target).await)?;
    println!(
        "tried every converted statement on {target} (undone): {} objects failed there",
        trial.refused.len()
    );
    for r in &trial.refused {
        println!("  {}: {}", r.object, r.error);
    }
    if !trial.untried.is_empty() {
        println!(
            "  {} objects not tried: their MySQL database exists on the target, and MySQL DDL cannot be undone ({})",
            trial.untried.len(),
            trial.untried.join(", ")
        );
    }
    trial::apply(conv, &trial.refused);
    Ok(())
}

pub struct AssessArgs<'a> {
    pub source: &'a str,
    pub target_engine: &'a str,
    pub target: Option<&'a str>,
    pub out: &'a Path,
    pub migration_type: &'a str,
    pub table_mappings: Option<&'a Path>,
    pub fail_on: Option<&'a str>,
}

/// `ferry assess`; Ok(false) when `--fail-on` finds such items.
pub async fn assess_command(a: AssessArgs<'_>) -> anyhow::Result<bool> {
    let ep = Endpoint::parse(a.source)?;
    let to = parse_engine(a.target_engine)?;
    let fail_on = match a.fail_on {
        None => None,
        Some(s @ ("critical" | "high")) => assessment::Severity::parse(s),
        Some(other) => anyhow::bail!("--fail-on {other}: expected critical or high"),
    };
    if !matches!(a.migration_type, "full-load" | "cdc" | "full-load-and-cdc") {
        anyhow::bail!(
            "--type {}: expected full-load, cdc or full-load-and-cdc",
            a.migration_type
        );
    }
    let tep = a.target.map(|t| target_endpoint(t, to)).transpose()?;
    let target = match &tep {
        Some(t) => Some(read_catalog(t, &TableMappings::include_all()).await?),
        None => None,
    };
    let cat = read_catalog(&ep, &mappings(a.table_mappings)?).await?;
    let mut conv = convert::convert(&cat, to);
    if let Some(t) = &tep {
        try_on(&mut conv, t).await?;
    }
    let checks = checks::run(&cat, to, a.migration_type, target.as_ref());
    let r = report::build(
        &conv,
        report::SourceInfo {
            engine: cat.engine.name(),
            endpoint: ep.to_string(),
            version: cat.version.clone(),
            database: cat.database.clone(),
        },
        a.migration_type,
        checks,
        cat.tables
            .iter()
            .map(|t| report::TableInfo {
                name: t.display_name(),
                rows_estimate: t.rows_estimate,
                size_bytes: t.size_bytes,
                primary_key: t.primary_key.is_some(),
                lob_columns: checks::lob_columns(cat.engine, t),
            })
            .collect(),
        now_rfc3339(),
    );
    std::fs::create_dir_all(a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let json = serde_json::to_string_pretty(&r)?;
    for (name, text) in [("report.json", json), ("report.html", report::html(&r))] {
        let p = a.out.join(name);
        std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
    }
    print!("{}", report::summary_text(&r));
    println!("wrote {}/report.json and report.html", a.out.display());
    if let Some(level) = fail_on {
        let hits = conv.items.iter().filter(|i| i.severity <= level).count();
        if hits > 0 {
            eprintln!(
                "error: {hits} action items of severity {} or worse (--fail-on)",
                level.name()
            );
            return Ok(false);
        }
    }
    Ok(true)
}

/// UTC, second precision, without a date crate.
fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let (y, m, d, hh, mi, ss) = ferry_common::civil_utc(secs);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mi:02}:{ss:02}Z")
}
