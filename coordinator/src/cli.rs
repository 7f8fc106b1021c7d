//! `ferry task ...`: the operator's gRPC client. Output for `--output json`
//! is documented in docs/cli.md and kept stable.

use anyhow::{bail, Context};
use clap::Subcommand;
use ferry_common::proto::{admin_client::AdminClient, CreateTaskRequest, ListTasksRequest, TaskName, TaskStatusReply};
use serde_json::json;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

#[derive(Subcommand)]
pub enum TaskCmd {
    /// Define a task (does not start it).
    Create {
        name: String,
        #[arg(long)]
        source: String,
        #[arg(long)]
        target: String,
        #[arg(long = "type", default_value = "full-load")]
        migration_type: String,
        #[arg(long)]
        table_mappings: Option<PathBuf>,
        #[arg(long)]
        settings: Option<PathBuf>,
    },
    Start {
        name: String,
    },
    Stop {
        name: String,
    },
    Delete {
        name: String,
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
    /// Wait until the task reaches a milestone; non-zero on failure or timeout.
    Wait {
        name: String,
        #[arg(long = "for", default_value = "full-load")]
        milestone: String,
        #[arg(long)]
        timeout: Option<u64>,
    },
}

async fn connect(url: &str) -> anyhow::Result<AdminClient<Channel>> {
    let ch = Channel::from_shared(url.to_string())
        .with_context(|| format!("coordinator address '{url}' is not a valid URL"))?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|_| anyhow::anyhow!("cannot reach the coordinator at {url} (start one with `ferry up`, or set --coordinator / FERRY_COORDINATOR)"))?;
    Ok(AdminClient::new(ch))
}

fn status_err(s: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{}", s.message())
}

fn read_file(p: &PathBuf, what: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(p).with_context(|| format!("{what} {}", p.display()))
}

pub async fn run(url: &str, cmd: TaskCmd) -> anyhow::Result<()> {
    // Validate locally what can be, so errors do not need a coordinator.
    if let TaskCmd::Create { source, target, .. } = &cmd {
        ferry_common::endpoint::Endpoint::parse(source).map_err(|e| anyhow::anyhow!("--source: {e}"))?;
        ferry_common::endpoint::Endpoint::parse(target).map_err(|e| anyhow::anyhow!("--target: {e}"))?;
    }
    let mut c = connect(url).await?;
    match cmd {
        TaskCmd::Create {
            name,
            source,
            target,
            migration_type,
            table_mappings,
            settings,
        } => {
            let table_mappings_json = match &table_mappings {
                Some(p) => {
                    let s = read_file(p, "reading table mappings")?;
                    ferry_common::mapping::TableMappings::parse(&s)?;
                    s
                }
                None => String::new(),
            };
            let settings_json = match &settings {
                Some(p) => {
                    let s = read_file(p, "reading task settings")?;
                    ferry_common::settings::TaskSettings::parse(&s)?;
                    s
                }
                None => String::new(),
            };
            c.create_task(CreateTaskRequest {
                name: name.clone(),
                source,
                target,
                migration_type,
                table_mappings_json,
                settings_json,
            })
            .await
            .map_err(status_err)?;
            println!("task {name} created");
        }
        TaskCmd::Start { name } => {
            c.start_task(TaskName { name: name.clone() })
                .await
                .map_err(status_err)?;
            println!("task {name} started");
        }
        TaskCmd::Stop { name } => {
            c.stop_task(TaskName { name: name.clone() }).await.map_err(status_err)?;
            println!("task {name} stopped");
        }
        TaskCmd::Delete { name } => {
            c.delete_task(TaskName { name: name.clone() })
                .await
                .map_err(status_err)?;
            println!("task {name} deleted");
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
            let st = c.task_status(TaskName { name }).await.map_err(status_err)?.into_inner();
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
            if milestone != "full-load" {
                bail!("--for {milestone}: only 'full-load' is supported yet");
            }
            let deadline = timeout.map(|t| Instant::now() + Duration::from_secs(t));
            loop {
                match c.task_status(TaskName { name: name.clone() }).await {
                    Ok(r) => {
                        let st = r.into_inner();
                        let t = st.task.clone().unwrap_or_default();
                        match t.state.as_str() {
                            "completed" => {
                                println!("task {name}: full load complete ({} rows)", t.rows_loaded);
                                return Ok(());
                            }
                            "failed" => bail!("task {name} failed: {}", t.error),
                            "stopped" | "created" => bail!("task {name} is {}, not running", t.state),
                            _ => {}
                        }
                    }
                    Err(s) if s.code() == tonic::Code::NotFound => bail!("{}", s.message()),
                    // The coordinator may be restarting: keep waiting.
                    Err(_) => {
                        if let Ok(nc) = connect(url).await {
                            c = nc;
                        }
                    }
                }
                if deadline.is_some_and(|d| Instant::now() > d) {
                    bail!("task {name}: timed out waiting for the full load");
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    Ok(())
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
            if tb.error.is_empty() {
                String::new()
            } else {
                format!("  error: {}", tb.error)
            }
        );
    }
}
