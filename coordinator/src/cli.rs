//! `ferry task ...`: the operator's gRPC client. Output for `--output json`
//! is documented in docs/cli.md and kept stable.

mod cutover;

use anyhow::{bail, Context};
use clap::Subcommand;
pub use cutover::{cutover, rollback, unfreeze, Ask};
use ferry_common::access::{ClientLink, Link, LinkError};
use ferry_common::proto::{
    admin_client::AdminClient, CreateTaskRequest, ListTasksRequest, ReloadTableRequest, TaskName, TaskStatusReply,
    ValidationStatus,
};
use serde_json::json;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Subcommand)]
pub enum TaskCmd {
    /// Define a task (does not start it).
    Create {
        name: String,
        /// An endpoint's name (`ferry endpoint list`) or a URL.
        #[arg(long)]
        source: String,
        /// An endpoint's name or a URL.
        #[arg(long)]
        target: String,
        #[arg(long = "type", default_value = "full-load")]
        migration_type: String,
        #[arg(long)]
        table_mappings: Option<PathBuf>,
        #[arg(long)]
        settings: Option<PathBuf>,
        /// CDC from this LSN (X/Y) of an existing slot (needs --slot-name).
        #[arg(long)]
        cdc_start_position: Option<String>,
        /// Stream this existing logical slot instead of creating ferry_<task>.
        #[arg(long)]
        slot_name: Option<String>,
        /// Stop CDC before the first transaction committed after this:
        /// server_time:YYYY-MM-DDTHH:MM:SS (UTC) or a log position.
        #[arg(long)]
        cdc_stop_position: Option<String>,
        /// A reviewed `ferry schema convert` output: its pre-data.sql,
        /// post-data.sql and (full load only) cutover.sql replace the task's
        /// own table creation, post-data and foreign keys.
        #[arg(long)]
        schema_dir: Option<PathBuf>,
        /// Capacity units the task asks for at least while it runs (DMS
        /// ComputeConfig MinCapacityUnits; overrides the settings file).
        #[arg(long)]
        min_capacity: Option<u32>,
        /// Capacity units of the task's work that run at once, at most
        /// (MaxCapacityUnits).
        #[arg(long)]
        max_capacity: Option<u32>,
        /// Test both endpoints first (`ferry endpoint test`, from this
        /// machine): the task is not created when the source or the target
        /// lacks a privilege or setting the task's type needs.
        #[arg(long)]
        test_endpoints: bool,
    },
    Start {
        name: String,
        /// Stop CDC before the first transaction committed after this:
        /// server_time:YYYY-MM-DDTHH:MM:SS (UTC) or a log position.
        #[arg(long)]
        cdc_stop_position: Option<String>,
    },
    Stop {
        name: String,
    },
    /// Delete a task; a CDC task's slot and publications are dropped first.
    Delete {
        name: String,
        /// Remove at once, leaving the source's slot and publications behind.
        #[arg(long)]
        force: bool,
    },
    List {
        #[arg(long, default_value = "table")]
        output: String,
    },
    Status {
        name: String,
        #[arg(long, default_value = "table")]
        output: String,
    },
    /// Load one table again from a new snapshot, in the shape it has on the
    /// source now (a table stopped by DDL or an undecodable row rejoins);
    /// CDC pauses meanwhile and resumes where it stopped.
    ReloadTable {
        name: String,
        /// schema.table, or the table's name alone when unique in the task.
        table: String,
    },
    /// Wait until the task reaches a milestone (full-load, or caught-up: the
    /// target has applied everything the source committed before the call);
    /// non-zero on failure or timeout.
    Wait {
        name: String,
        #[arg(long = "for", default_value = "full-load")]
        milestone: String,
        #[arg(long)]
        timeout: Option<u64>,
    },
}

async fn connect(link: &ClientLink) -> anyhow::Result<AdminClient<Link>> {
    let urls: Vec<&str> = link.url.split(',').map(str::trim).filter(|u| !u.is_empty()).collect();
    if urls.len() > 1 {
        return connect_leader(link, &urls).await;
    }
    let ch = link.connect(Duration::from_secs(5)).await.map_err(|e| match e {
        LinkError::Unreachable { url, cause } => anyhow::anyhow!(
            "cannot reach the coordinator at {url} ({cause}; start one with `ferry up`, or set --coordinator / FERRY_COORDINATOR)"
        ),
        e => e.into(),
    })?;
    Ok(AdminClient::new(ch))
}

fn status_err(s: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{}", s.message())
}

fn read_file(p: &PathBuf, what: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(p).with_context(|| format!("{what} {}", p.display()))
}

/// The settings JSON with `--min-capacity` / `--max-capacity` written into
/// its DMS `ComputeConfig` section (the flags win over the file).
fn with_capacity(settings_json: &str, min: Option<u32>, max: Option<u32>) -> anyhow::Result<String> {
    let mut root: serde_json::Value = if settings_json.trim().is_empty() {
        serde_json::json!({})
    } else {
        serde_json::from_str(settings_json).map_err(|e| anyhow::anyhow!("task settings: $: not valid JSON: {e}"))?
    };
    let obj = root
        .as_object_mut()
        .ok_or_else(|| anyhow::anyhow!("task settings: $: expected an object of DMS settings sections"))?;
    let compute = obj.entry("ComputeConfig").or_insert_with(|| serde_json::json!({}));
    let compute = compute
        .as_object_mut()
        .ok_or_else(|| anyhow::anyhow!("task settings: $.ComputeConfig: expected an object"))?;
    for (key, v) in [("MinCapacityUnits", min), ("MaxCapacityUnits", max)] {
        if let Some(v) = v {
            compute.insert(key.into(), v.into());
        }
    }
    Ok(root.to_string())
}

pub async fn run(link: &ClientLink, cmd: TaskCmd) -> anyhow::Result<()> {
    // Validate locally what can be, so errors do not need a coordinator.
    // (A value without `://` names an endpoint, which the coordinator knows.)
    if let TaskCmd::Create { source, target, .. } = &cmd {
        for (flag, v) in [("--source", source), ("--target", target)] {
            if v.contains("://") {
                ferry_common::endpoint::Endpoint::parse(v).map_err(|e| anyhow::anyhow!("{flag}: {e}"))?;
            }
        }
    }
    let mut c = connect(link).await?;
    match cmd {
        TaskCmd::Create {
            name,
            source,
            target,
            migration_type,
            table_mappings,
            settings,
            cdc_start_position,
            slot_name,
            cdc_stop_position,
            schema_dir,
            min_capacity,
            max_capacity,
            test_endpoints,
        } => {
            if test_endpoints {
                for (role, ep) in [("source", &source), ("target", &target)] {
                    let needed =
                        ferry_common::readiness::needed(role, &migration_type).map_err(|e| anyhow::anyhow!(e))?;
                    let r = test_endpoint(&mut c, ep, false, 60)
                        .await
                        .with_context(|| format!("task {name} not created: testing the {role}"))?;
                    let failures = r.failures(&needed);
                    if !failures.is_empty() {
                        bail!(
                            "task {name} not created: the {role} {ep} is not ready for a {migration_type} task: {}",
                            failures.join("; ")
                        );
                    }
                }
            }
            let (pre_data_sql, post_data_sql, cutover_sql) = match &schema_dir {
                Some(d) => (
                    read_file(&d.join("pre-data.sql"), "reading the schema directory")?,
                    read_file(&d.join("post-data.sql"), "reading the schema directory")?,
                    read_file(&d.join("cutover.sql"), "reading the schema directory")?,
                ),
                None => (String::new(), String::new(), String::new()),
            };
            let table_mappings_json = match &table_mappings {
                Some(p) => {
                    let s = read_file(p, "reading table mappings")?;
                    ferry_common::mapping::TableMappings::parse(&s)?;
                    s
                }
                None => String::new(),
            };
            let mut settings_json = match &settings {
                Some(p) => read_file(p, "reading task settings")?,
                None => String::new(),
            };
            if min_capacity.is_some() || max_capacity.is_some() {
                settings_json = with_capacity(&settings_json, min_capacity, max_capacity)?;
            }
            if !settings_json.is_empty() {
                ferry_common::settings::TaskSettings::parse(&settings_json)?;
                let unknown = ferry_common::settings::TaskSettings::unknown_keys(&settings_json);
                if !unknown.is_empty() {
                    eprintln!(
                        "warning: task settings: not DMS task settings, ignored: {}",
                        unknown.join(", ")
                    );
                }
            }
            c.create_task(CreateTaskRequest {
                name: name.clone(),
                source,
                target,
                migration_type,
                table_mappings_json,
                settings_json,
                cdc_start_position: cdc_start_position.unwrap_or_default(),
                slot_name: slot_name.unwrap_or_default(),
                cdc_stop_position: cdc_stop_position.unwrap_or_default(),
                pre_data_sql,
                post_data_sql,
                cutover_sql,
            })
            .await
            .map_err(status_err)?;
            println!("task {name} created");
        }
        TaskCmd::Start {
            name,
            cdc_stop_position,
        } => {
            c.start_task(TaskName {
                name: name.clone(),
                cdc_stop_position: cdc_stop_position.unwrap_or_default(),
                ..Default::default()
            })
            .await
            .map_err(status_err)?;
            println!("task {name} started");
        }
        TaskCmd::ReloadTable { name, table } => {
            c.reload_table(ReloadTableRequest {
                name: name.clone(),
                table: table.clone(),
            })
            .await
            .map_err(status_err)?;
            println!("task {name}: table {table} will be reloaded (see `ferry task status {name}`)");
        }
        TaskCmd::Stop { name } => {
            c.stop_task(TaskName {
                name: name.clone(),
                ..Default::default()
            })
            .await
            .map_err(status_err)?;
            println!("task {name} stopped");
        }
        TaskCmd::Delete { name, force } => {
            let r = c
                .delete_task(TaskName {
                    name: name.clone(),
                    force,
                    ..Default::default()
                })
                .await
                .map_err(status_err)?
                .into_inner();
            if r.state == "deleting" {
                // A worker drops the slot and publications; then the task goes.
                let deadline = Instant::now() + Duration::from_secs(120);
                loop {
                    match c.task_status(task_name(&name)).await {
                        Err(s) if s.code() == tonic::Code::NotFound => break,
                        Ok(st) => {
                            let t = st.into_inner().task.unwrap_or_default();
                            if Instant::now() > deadline {
                                bail!(
                                    "task {name}: the replication slot could not be dropped yet ({}); \
                                     it is still being retried; `ferry task delete {name} --force` removes the task and leaves the slot",
                                    if t.error.is_empty() { "no worker has done it" } else { t.error.as_str() }
                                );
                            }
                        }
                        Err(s) => bail!("{}", s.message()),
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                println!("task {name} deleted (replication slot and publications dropped)");
            } else {
                println!("task {name} deleted");
            }
        }
        TaskCmd::List { output } => {
            let tasks = c
                .list_tasks(ListTasksRequest {})
                .await
                .map_err(status_err)?
                .into_inner()
                .tasks;
            if output == "json" {
                let v: Vec<_> = tasks
                    .iter()
                    .map(|t| {
                        json!({"name": t.name, "type": t.migration_type, "state": t.state,
                               "source": t.source, "target": t.target,
                               "tables_total": t.tables_total, "tables_completed": t.tables_completed,
                               "rows_loaded": t.rows_loaded, "error": none_if_empty(&t.error)})
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!(
                    "{:<24} {:<18} {:<10} {:>7} {:>12}",
                    "NAME", "TYPE", "STATE", "TABLES", "ROWS"
                );
                for t in tasks {
                    println!(
                        "{:<24} {:<18} {:<10} {:>3}/{:<3} {:>12}",
                        t.name, t.migration_type, t.state, t.tables_completed, t.tables_total, t.rows_loaded
                    );
                }
            }
        }
        TaskCmd::Status { name, output } => {
            let st = c.task_status(task_name(&name)).await.map_err(status_err)?.into_inner();
            if output == "json" {
                println!("{}", serde_json::to_string_pretty(&status_json(&st))?);
            } else {
                print_status(&st, std::io::stdout().is_terminal());
            }
        }
        TaskCmd::Wait {
            name,
            milestone,
            timeout,
        } => {
            let (caught_up, completed) = match milestone.as_str() {
                "full-load" => (false, false),
                "caught-up" => (true, false),
                "completed" => (false, true),
                m => bail!("--for {m}: expected full-load, caught-up or completed"),
            };
            let deadline = timeout.map(|t| Instant::now() + Duration::from_secs(t));
            // caught-up: a mark the CDC stream writes into the source's WAL
            // now; once the target has applied it, it has applied everything
            // committed before it.
            let mut mark = None;
            let mut progress = crate::progress::WaitProgress::new(&name);
            loop {
                if caught_up && mark.is_none() {
                    match c.request_mark(task_name(&name)).await {
                        Ok(r) => mark = Some(r.into_inner().mark),
                        Err(s) if s.code() == tonic::Code::FailedPrecondition => bail!("{}", s.message()),
                        Err(_) => {}
                    }
                }
                match c.task_status(task_name(&name)).await {
                    Ok(r) => {
                        let st = r.into_inner();
                        let t = st.task.clone().unwrap_or_default();
                        progress.update(&st);
                        if completed && t.state == "completed" {
                            progress.finish();
                            // A table set aside (SUSPEND_TABLE) is not migrated.
                            refuse_degraded(&name, &st, "completed without them")?;
                            println!("task {name}: completed");
                            print_failed_objects(&st);
                            return Ok(());
                        }
                        if !caught_up && !completed && (st.full_load_done || t.state == "completed") {
                            progress.finish();
                            refuse_degraded(&name, &st, "the full load is not complete")?;
                            println!("task {name}: full load complete ({} rows)", t.rows_loaded);
                            print_failed_objects(&st);
                            return Ok(());
                        }
                        if caught_up {
                            refuse_degraded(&name, &st, "not caught up")?;
                        }
                        if let (Some(m), Ok(cdc)) = (mark, serde_json::from_str::<serde_json::Value>(&st.cdc_json)) {
                            if cdc["marks_reached"].as_u64().unwrap_or(0) >= m {
                                progress.finish();
                                println!("task {name}: caught up (applied through {})", cdc["applied_lsn"]);
                                return Ok(());
                            }
                        }
                        match t.state.as_str() {
                            "completed" if caught_up => bail!("task {name} has no change data capture"),
                            "running" if completed && t.migration_type != "full-load" => {
                                bail!("task {name} runs change data capture until stopped: it does not complete")
                            }
                            "failed" => bail!("task {name} failed: {}", t.error),
                            "stopped" | "created" => bail!("task {name} is {}, not running", t.state),
                            _ => {}
                        }
                    }
                    Err(s) if s.code() == tonic::Code::NotFound => bail!("{}", s.message()),
                    // The coordinator may be restarting: keep waiting.
                    Err(_) => {
                        if let Ok(nc) = connect(link).await {
                            c = nc;
                        }
                    }
                }
                if deadline.is_some_and(|d| Instant::now() > d) {
                    bail!("task {name}: timed out waiting for {milestone}");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    Ok(())
}

fn task_name(name: &str) -> TaskName {
    TaskName {
        name: name.to_string(),
        ..Default::default()
    }
}

/// Tables whose load or change stream stopped, with the reason: while any
/// is listed the target does not follow the source, so nothing may report
/// the task caught up, validated or ready to cut over.
pub fn tables_in_error(st: &TaskStatusReply) -> Vec<(String, String)> {
    st.tables
        .iter()
        .filter(|t| t.state == "Table error")
        .map(|t| (format!("{}.{}", t.schema, t.name), t.error.clone()))
        .collect()
}

/// Fails, naming every table in error and why, when the task is degraded.
fn refuse_degraded(name: &str, st: &TaskStatusReply, what: &str) -> anyhow::Result<()> {
    let bad = tables_in_error(st);
    if bad.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = bad.iter().map(|(t, e)| format!("{t} ({e})")).collect();
    bail!(
        "task {name} is degraded, {what}: {} table(s) in error: {}",
        bad.len(),
        list.join("; ")
    )
}

fn none_if_empty(s: &str) -> serde_json::Value {
    if s.is_empty() {
        serde_json::Value::Null
    } else {
        json!(s)
    }
}

/// The stable JSON shape of `ferry task status --output json` (docs/cli.md).
pub fn status_json(st: &TaskStatusReply) -> serde_json::Value {
    let t = st.task.clone().unwrap_or_default();
    let in_error = tables_in_error(st);
    json!({
        "name": t.name,
        "type": t.migration_type,
        "state": t.state,
        "phase": st.phase,
        "source": t.source,
        "target": t.target,
        "error": none_if_empty(&t.error),
        "created_at_ms": st.created_at_ms,
        "started_at_ms": st.started_at_ms,
        "finished_at_ms": st.finished_at_ms,
        "rows_loaded": t.rows_loaded,
        "tables_total": t.tables_total,
        "tables_completed": t.tables_completed,
        "full_load_done": st.full_load_done,
        "failed_objects": st.failed_objects.iter().map(|o| json!({"object": o.object, "error": o.error})).collect::<Vec<_>>(),
        "degraded": !in_error.is_empty(),
        "tables_in_error": in_error.iter().map(|(t, e)| json!({"table": t, "error": e})).collect::<Vec<_>>(),
        "cdc": serde_json::from_str::<serde_json::Value>(&st.cdc_json).unwrap_or(serde_json::Value::Null),
    "cutover": serde_json::from_str::<serde_json::Value>(&st.cutover_json).unwrap_or(serde_json::Value::Null),
        "capacity": serde_json::from_str::<serde_json::Value>(&st.capacity_json).unwrap_or(serde_json::Value::Null),
        "tables": st.tables.iter().map(|tb| json!({
            "schema": tb.schema,
            "name": tb.name,
            "state": tb.state,
            "rows_loaded": tb.rows_loaded,
            "rows_estimate": tb.rows_estimate,
            "segments_done": tb.segments_done,
            "segments_total": tb.segments_total,
            "error": none_if_empty(&tb.error),
            "load_started_at_ms": tb.load_started_at_ms,
            "load_finished_at_ms": tb.load_finished_at_ms,
            "inserts": tb.inserts,
            "updates": tb.updates,
            "deletes": tb.deletes,
            "truncates": tb.truncates,
            "cdc_note": none_if_empty(&tb.cdc_note),
            "exceptions": tb.exceptions,
            "lob_truncations": tb.lob_truncations,
            "apply_conflicts": tb.apply_conflicts,
            "validation": validation_json(tb.validation.clone().unwrap_or_default()),
        })).collect::<Vec<_>>(),
    })
}

fn print_status(st: &TaskStatusReply, bars: bool) {
    let t = st.task.clone().unwrap_or_default();
    println!(
        "task {} ({}): {} — phase {}",
        t.name, t.migration_type, t.state, st.phase
    );
    println!("  {} -> {}", t.source, t.target);
    if !t.error.is_empty() {
        println!("  error: {}", t.error);
    }
    for o in &st.failed_objects {
        println!("  post-data object failed: {}: {}", o.object, o.error);
    }
    let bad = tables_in_error(st);
    if !bad.is_empty() {
        println!(
            "  DEGRADED: {} table(s) in error no longer follow the source: {}",
            bad.len(),
            bad.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>().join(", ")
        );
    }
    if let Ok(c) = serde_json::from_str::<serde_json::Value>(&st.cdc_json) {
        if c["source_log"] == "binlog" {
            println!(
                "  cdc: binlog file #{} offset {} (GTID {})  latency source {}s target {}s  incoming {}  {:.0} rows/s",
                c["applied_binlog"]["file_number"],
                c["applied_binlog"]["offset"],
                c["source_gtid"].as_str().unwrap_or("-"),
                c["latency_source_seconds"],
                c["latency_target_seconds"],
                c["incoming_changes"],
                c["throughput_rows_per_second"].as_f64().unwrap_or(0.0),
            );
        } else {
            println!(
            "  cdc: slot {} applied {}  latency source {}s target {}s  incoming {}  {:.0} rows/s  retained WAL {} bytes",
            c["slot"].as_str().unwrap_or("?"),
            c["applied_lsn"].as_str().unwrap_or("?"),
            c["latency_source_seconds"],
            c["latency_target_seconds"],
            c["incoming_changes"],
            c["throughput_rows_per_second"].as_f64().unwrap_or(0.0),
            c["retained_wal_bytes"],
        );
        }
    }
    if let Ok(c) = serde_json::from_str::<serde_json::Value>(&st.capacity_json) {
        println!(
            "  capacity: desired {} granted {} ({})",
            c["desired"],
            c["granted"],
            c["reason"].as_str().unwrap_or("")
        );
    }
    if let Ok(c) = serde_json::from_str::<serde_json::Value>(&st.cutover_json) {
        let plan = c["plan"].as_array().map_or(0, |p| p.len());
        let step = c["step"].as_str().unwrap_or("-");
        match c["state"].as_str().unwrap_or("") {
            s @ ("done" | "abandoned") => println!("  {}: {s}", c["direction"].as_str().unwrap_or("cutover")),
            s => println!(
                "  {}: {s} at step {} of {plan} ({step}){}",
                c["direction"].as_str().unwrap_or("cutover"),
                c["step_index"].as_u64().unwrap_or(0) + 1,
                labelled("error", c["error"].as_str().unwrap_or("")),
            ),
        }
    }
    for tb in &st.tables {
        let frac = if tb.segments_total == 0 {
            0.0
        } else {
            tb.segments_done as f64 / tb.segments_total as f64
        };
        let bar = if bars {
            let n = (frac * 20.0).round() as usize;
            format!("[{}{}] ", "#".repeat(n), "-".repeat(20 - n))
        } else {
            String::new()
        };
        println!(
            "  {bar}{:<40} {:<17} {:>12} rows  {}/{} segments{}",
            format!("{}.{}", tb.schema, tb.name),
            tb.state,
            tb.rows_loaded,
            tb.segments_done,
            tb.segments_total,
            labelled("error", &tb.error)
        );
        if tb.inserts + tb.updates + tb.deletes + tb.truncates > 0 || !tb.cdc_note.is_empty() {
            println!(
                "  {:>22}inserts {} updates {} deletes {} truncates {}{}",
                "",
                tb.inserts,
                tb.updates,
                tb.deletes,
                tb.truncates,
                labelled("note", &tb.cdc_note)
            );
        }
        if let Some(v) = tb.validation.as_ref().filter(|v| v.state != "Not enabled") {
            println!(
                "  {:>22}validation: {}  validated {}  mismatched {}",
                "", v.state, v.validated_records, v.mismatched_records
            );
        }
    }
}

/// The objects of a reviewed post-data.sql the target refused.
fn print_failed_objects(st: &TaskStatusReply) {
    if st.failed_objects.is_empty() {
        return;
    }
    println!(
        "{} objects of post-data.sql failed on the target (the rows are loaded; fix and run them by hand):",
        st.failed_objects.len()
    );
    for o in &st.failed_objects {
        println!("  {}: {}", o.object, o.error);
    }
}

/// `"  label: text"`, or nothing when `text` is empty.
fn labelled(label: &str, text: &str) -> String {
    if text.is_empty() {
        String::new()
    } else {
        format!("  {label}: {text}")
    }
}

fn validation_json(v: ValidationStatus) -> serde_json::Value {
    json!({
        "state": v.state,
        "validated_records": v.validated_records,
        "mismatched_records": v.mismatched_records,
        "pending_segments": v.pending_segments,
        "revalidated_segments": v.revalidated_segments,
        "failures": v.failures.iter().map(|f| json!({
            "key": f.key,
            "failure_type": f.failure_type,
            "details": f.details,
        })).collect::<Vec<_>>(),
    })
}

/// `ferry validate NAME`: each table's validation state and its first
/// differing keys. Fails when rows differ or validation could not run.
pub async fn validate(link: &ClientLink, name: &str, output: &str) -> anyhow::Result<()> {
    if output != "table" && output != "json" {
        bail!("--output {output}: expected table or json");
    }
    let mut c = connect(link).await?;
    let st = c.task_status(task_name(name)).await.map_err(status_err)?.into_inner();
    refuse_degraded(name, &st, "its target cannot be validated")?;
    let tables: Vec<(String, ValidationStatus)> = st
        .tables
        .iter()
        .map(|t| {
            (
                format!("{}.{}", t.schema, t.name),
                t.validation.clone().unwrap_or_default(),
            )
        })
        .collect();
    if output == "json" {
        let out = json!({
            "task": name,
            "tables": tables.iter().map(|(n, v)| {
                let mut j = validation_json(v.clone());
                j["table"] = json!(n);
                j
            }).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "{:<40} {:<20} {:>12} {:>12}",
            "TABLE", "VALIDATION", "VALIDATED", "MISMATCHED"
        );
        for (n, v) in &tables {
            println!(
                "{:<40} {:<20} {:>12} {:>12}",
                n, v.state, v.validated_records, v.mismatched_records
            );
        }
        for (n, v) in &tables {
            for f in &v.failures {
                println!("{n}: {} key ({}): {}", f.failure_type, f.key, f.details);
            }
        }
    }
    if tables.iter().all(|(_, v)| v.state == "Not enabled") {
        bail!("task {name} does not validate (set ValidationSettings.EnableValidation or ValidationOnly)");
    }
    let bad: u64 = tables.iter().map(|(_, v)| v.mismatched_records).sum();
    if bad > 0 {
        bail!("task {name}: {bad} rows differ between source and target (see validation_failures in the target's control schema, ferry unless ControlSchema names another)");
    }
    if let Some((n, _)) = tables.iter().find(|(_, v)| v.state == "Error") {
        bail!("task {name}: validation of table {n} failed: see `ferry task status {name}`");
    }
    let pending = tables.iter().filter(|(_, v)| v.state == "Pending records").count();
    if pending > 0 {
        bail!(
            "task {name}: validation of {pending} tables is still running (`ferry task wait {name} --for completed`)"
        );
    }
    Ok(())
}

/// `ferry token`: API tokens (admin role).
#[derive(clap::Subcommand)]
pub enum TokenCmd {
    /// Issue a token and print it (once: the coordinator keeps its digest).
    Create {
        name: String,
        /// viewer, operator, admin or worker.
        #[arg(long)]
        role: String,
    },
    /// Tokens by name and role.
    List,
    /// Revoke a token at once.
    Revoke { name: String },
}

pub async fn token(link: &ClientLink, cmd: TokenCmd) -> anyhow::Result<()> {
    let mut c = connect(link).await?;
    match cmd {
        TokenCmd::Create { name, role } => {
            ferry_common::access::Role::parse(&role).map_err(|e| anyhow::anyhow!("--role: {e}"))?;
            let r = c
                .create_token(ferry_common::proto::TokenRequest { name, role })
                .await
                .map_err(status_err)?
                .into_inner();
            println!("{}", r.token);
        }
        TokenCmd::List => {
            let r = c
                .list_tokens(ferry_common::proto::ListTokensRequest {})
                .await
                .map_err(status_err)?
                .into_inner();
            println!("{:<24} {:<9} CREATED", "NAME", "ROLE");
            for t in r.tokens {
                let (y, mo, d, h, mi, s) = ferry_common::civil_utc((t.created_ms / 1000) as i64);
                println!(
                    "{:<24} {:<9} {y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}Z",
                    t.name, t.role
                );
            }
        }
        TokenCmd::Revoke { name } => {
            c.revoke_token(ferry_common::proto::TokenRequest {
                name: name.clone(),
                role: String::new(),
            })
            .await
            .map_err(status_err)?;
            println!("token {name} revoked");
        }
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum EndpointCmd {
    /// Register an endpoint (admin): its URL's secret reference
    /// (password_env / password_file) is bound to its host, port, user and
    /// TLS settings; tasks name it with --source NAME / --target NAME.
    Create {
        name: String,
        #[arg(long)]
        url: String,
    },
    /// Endpoints by name, with their URLs (secret references, never secrets).
    List {
        #[arg(long, default_value = "table")]
        output: String,
    },
    /// Delete an endpoint no task uses (admin).
    Delete { name: String },
    /// Connect to an endpoint (a name, or a URL under task creation's rule)
    /// as a task would, from an idle worker (which holds the credentials),
    /// or with --local from this machine; reports the server, its TLS and
    /// its readiness as a full-load source, a CDC source and a target, each
    /// missing privilege or setting with what to change. Non-zero when it
    /// cannot connect, or (with --as) is not ready for that role.
    Test {
        endpoint: String,
        /// source or target: fail unless ready for this role of a task of --type.
        #[arg(long = "as")]
        role: Option<String>,
        #[arg(long = "type", default_value = "full-load-and-cdc")]
        migration_type: String,
        #[arg(long, default_value = "text")]
        output: String,
        /// Test from this machine, with this process's secrets.
        #[arg(long)]
        local: bool,
        /// Seconds to wait for an idle worker.
        #[arg(long, default_value_t = 60)]
        timeout: u32,
    },
}

pub async fn endpoint(link: &ClientLink, cmd: EndpointCmd) -> anyhow::Result<()> {
    use ferry_common::proto::{EndpointRequest, ListEndpointsRequest};
    if let EndpointCmd::Create { url, .. } = &cmd {
        ferry_common::endpoint::Endpoint::parse(url).map_err(|e| anyhow::anyhow!("--url: {e}"))?;
    }
    let mut c = connect(link).await?;
    match cmd {
        EndpointCmd::Create { name, url } => {
            let r = c
                .create_endpoint(EndpointRequest { name, url })
                .await
                .map_err(status_err)?
                .into_inner();
            println!("endpoint {} created: {}", r.name, r.url);
        }
        EndpointCmd::List { output } => {
            let r = c
                .list_endpoints(ListEndpointsRequest {})
                .await
                .map_err(status_err)?
                .into_inner();
            match output.as_str() {
                "json" => {
                    let list: Vec<_> = r
                        .endpoints
                        .iter()
                        .map(|e| json!({"name": e.name, "url": e.url}))
                        .collect();
                    println!("{}", serde_json::to_string_pretty(&list)?);
                }
                "table" => {
                    println!("{:<24} URL", "NAME");
                    for e in r.endpoints {
                        println!("{:<24} {}", e.name, e.url);
                    }
                }
                other => bail!("--output {other}: expected table or json"),
            }
        }
        EndpointCmd::Delete { name } => {
            c.delete_endpoint(EndpointRequest {
                name: name.clone(),
                url: String::new(),
            })
            .await
            .map_err(status_err)?;
            println!("endpoint {name} deleted");
        }
        EndpointCmd::Test {
            endpoint,
            role,
            migration_type,
            output,
            local,
            timeout,
        } => {
            let needed = role
                .as_deref()
                .map(|r| ferry_common::readiness::needed(r, &migration_type))
                .transpose()
                .map_err(|e| anyhow::anyhow!(e))?;
            let r = test_endpoint(&mut c, &endpoint, local, timeout).await?;
            match output.as_str() {
                "json" => println!("{}", serde_json::to_string_pretty(&r)?),
                "text" => print!("{}", r.text()),
                other => bail!("--output {other}: expected text or json"),
            }
            let failures = r.failures(&needed.unwrap_or_default());
            if !failures.is_empty() {
                bail!(
                    "{endpoint} is not ready as a {} of a {migration_type} task: {}",
                    role.unwrap_or_default(),
                    failures.join("; ")
                );
            }
        }
    }
    Ok(())
}

/// The readiness report of an endpoint (a name, or a URL the coordinator
/// resolves under task creation's secret rule): from an idle worker, which
/// holds the credentials (`TestEndpoint`), or with `local` from this
/// machine, with this process's secrets (`ferry-worker endpoint test`,
/// where the drivers live, as for `ferry assess`).
async fn test_endpoint(
    c: &mut AdminClient<Link>,
    endpoint: &str,
    local: bool,
    timeout_s: u32,
) -> anyhow::Result<ferry_common::readiness::Readiness> {
    use ferry_common::proto::{EndpointRequest, TestEndpointRequest};
    let json = if local {
        let r = c
            .resolve_endpoint(EndpointRequest {
                name: endpoint.to_string(),
                url: String::new(),
            })
            .await
            .map_err(status_err)?
            .into_inner();
        let out = tokio::process::Command::new(crate::supervisor::worker_binary()?)
            .args(["endpoint", "test", &r.url])
            .output()
            .await
            .context("running ferry-worker")?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            bail!("{}", err.trim().trim_start_matches("error: "));
        }
        String::from_utf8(out.stdout)?
    } else {
        c.test_endpoint(TestEndpointRequest {
            endpoint: endpoint.to_string(),
            timeout_s,
        })
        .await
        .map_err(status_err)?
        .into_inner()
        .report_json
    };
    serde_json::from_str(&json).context("reading the endpoint test's report")
}

/// `--coordinator URL,URL,...`: the leader, found by asking each node in
/// turn for its view (any node answers `ClusterStatus`).
async fn connect_leader(link: &ClientLink, urls: &[&str]) -> anyhow::Result<AdminClient<Link>> {
    let mut why = vec![];
    for url in urls {
        let mut c = match link.at(url).connect(Duration::from_secs(2)).await {
            Ok(ch) => AdminClient::new(ch),
            Err(e) => {
                why.push(format!("{url}: {e}"));
                continue;
            }
        };
        let s = match c.cluster_status(ferry_common::proto::ClusterStatusRequest {}).await {
            Ok(s) => s.into_inner(),
            Err(e) => {
                why.push(format!("{url}: {}", e.message()));
                continue;
            }
        };
        // The client starts at the leader and follows it among every URL
        // when it moves (a command that runs long, as a cutover, outlives
        // a leader).
        let from = |first: &str| {
            let mut order = vec![first];
            order.extend(urls.iter().copied().filter(|u| *u != first));
            link.at(&order.join(","))
        };
        if s.leader_id != 0 && s.leader_id == s.node_id {
            if let Ok(ch) = from(url).connect(Duration::from_secs(2)).await {
                return Ok(AdminClient::new(ch));
            }
            return Ok(c);
        }
        if !s.leader_addr.is_empty() {
            let leader = ferry_common::leader::url_like(url, &s.leader_addr);
            match from(&leader).connect(Duration::from_secs(2)).await {
                Ok(ch) => return Ok(AdminClient::new(ch)),
                Err(e) => why.push(format!("{leader} (the leader, per {url}): {e}")),
            }
        } else {
            why.push(format!("{url}: knows no leader (an election is under way?)"));
        }
    }
    bail!("no leader among the coordinators ({})", why.join("; "))
}

#[derive(Subcommand)]
pub enum ClusterCmd {
    /// Members, leader, term, each node's log position and lag.
    Status {
        #[arg(long, default_value = "table")]
        output: String,
    },
    /// Add the node listening at ADDR (host:port) as a learner, then a
    /// voter once it has caught up (admin).
    AddNode {
        addr: String,
        #[arg(long)]
        node_id: u64,
    },
    /// Make node N leave the cluster (admin).
    RemoveNode { node_id: u64 },
}

/// `ferry capacity`: per task and in total, min, max, desired and granted
/// capacity units, and why (docs/capacity.md).
pub async fn capacity(link: &ClientLink, output: &str) -> anyhow::Result<()> {
    let c = connect(link)
        .await?
        .capacity(ferry_common::proto::CapacityRequest {})
        .await
        .map_err(status_err)?
        .into_inner();
    let max = |m: u32| (m > 0).then_some(m);
    match output {
        "json" => {
            let v = json!({
                "desired": c.desired,
                "desired_now": c.desired_now,
                "granted": c.granted,
                "cooldown_seconds": c.cooldown_s,
                "tasks": c.tasks.iter().map(|t| json!({
                    "task": t.task, "min": t.min, "max": max(t.max), "desired": t.desired,
                    "granted": t.granted, "reason": t.reason,
                })).collect::<Vec<_>>(),
                "busy_workers": c.busy_workers.iter().map(|w| json!({"name": w.name, "assignments": w.assignments})).collect::<Vec<_>>(),
            });
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        "table" => {
            println!(
                "{:<24} {:>4} {:>4} {:>8} {:>8}  REASON",
                "TASK", "MIN", "MAX", "DESIRED", "GRANTED"
            );
            for t in &c.tasks {
                println!(
                    "{:<24} {:>4} {:>4} {:>8} {:>8}  {}",
                    t.task,
                    t.min,
                    max(t.max).map_or("-".to_string(), |m| m.to_string()),
                    t.desired,
                    t.granted,
                    t.reason
                );
            }
            let held = if c.desired > c.desired_now {
                format!(
                    "  (now {}; held for the {} s scale-down cooldown)",
                    c.desired_now, c.cooldown_s
                )
            } else {
                String::new()
            };
            println!(
                "{:<24} {:>4} {:>4} {:>8} {:>8}{held}",
                "TOTAL", "", "", c.desired, c.granted
            );
        }
        other => bail!("--output {other}: expected table or json"),
    }
    Ok(())
}

pub async fn cluster(link: &ClientLink, cmd: ClusterCmd) -> anyhow::Result<()> {
    use ferry_common::proto::{ClusterStatusRequest, JoinRequest};
    let s = match cmd {
        ClusterCmd::Status { output } => {
            // One URL: that node's own view (followers answer too); a list:
            // the leader's.
            let mut c = connect(link).await?;
            let s = c
                .cluster_status(ClusterStatusRequest {})
                .await
                .map_err(status_err)?
                .into_inner();
            match output.as_str() {
                "json" => {
                    let members: Vec<_> = s
                        .members
                        .iter()
                        .map(|m| {
                            json!({"node_id": m.node_id, "addr": m.addr, "voter": m.voter,
                                   "matched_index": (m.matched_index >= 0).then_some(m.matched_index)})
                        })
                        .collect();
                    let v = json!({
                        "node_id": s.node_id,
                        "leader_id": (s.leader_id != 0).then_some(s.leader_id),
                        "leader_addr": s.leader_addr,
                        "term": s.term,
                        "last_log_index": (s.last_log_index >= 0).then_some(s.last_log_index),
                        "applied_index": (s.applied_index >= 0).then_some(s.applied_index),
                        "purged_index": (s.purged_index >= 0).then_some(s.purged_index),
                        "snapshot_index": (s.snapshot_index >= 0).then_some(s.snapshot_index),
                        "members": members,
                    });
                    println!("{}", serde_json::to_string_pretty(&v)?);
                    return Ok(());
                }
                "table" => s,
                other => bail!("--output {other}: expected table or json"),
            }
        }
        ClusterCmd::AddNode { addr, node_id } => connect(link)
            .await?
            .join_cluster(JoinRequest { node_id, addr })
            .await
            .map_err(status_err)?
            .into_inner(),
        ClusterCmd::RemoveNode { node_id } => connect(link)
            .await?
            .remove_node(JoinRequest {
                node_id,
                addr: String::new(),
            })
            .await
            .map_err(status_err)?
            .into_inner(),
    };
    let leader = match s.leader_id {
        0 => "none known".to_string(),
        id => format!("node {id} at {}", s.leader_addr),
    };
    println!("node {}: term {}, leader {leader}", s.node_id, s.term);
    println!(
        "log: last {}, applied {}, purged up to {}, snapshot at {}",
        s.last_log_index, s.applied_index, s.purged_index, s.snapshot_index
    );
    println!(
        "{:<8} {:<24} {:<8} {:>10} {:>8}",
        "NODE", "ADDRESS", "ROLE", "MATCHED", "LAG"
    );
    for m in &s.members {
        let (matched, lag) = match m.matched_index {
            -1 if s.leader_id == s.node_id => ("-".to_string(), "-".to_string()),
            -1 => ("?".to_string(), "?".to_string()),
            i => (i.to_string(), (s.last_log_index - i).max(0).to_string()),
        };
        let role = match (m.node_id == s.leader_id, m.voter) {
            (true, _) => "leader",
            (false, true) => "voter",
            (false, false) => "learner",
        };
        println!("{:<8} {:<24} {:<8} {:>10} {:>8}", m.node_id, m.addr, role, matched, lag);
    }
    Ok(())
}
