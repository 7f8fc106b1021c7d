//! `ferry`: the coordinator and the operator's CLI.

mod cli;
mod demo;
mod node;
mod planner;
mod raft;
mod service;
mod state;
mod supervisor;

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "ferry", version, about = "Live database migration: full load, CDC, cutover")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Coordinator plus N local ferry-worker processes, on one machine.
    Up {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long, default_value = "127.0.0.1:7400")]
        listen: SocketAddr,
        #[arg(long, default_value_t = 3)]
        workers: u32,
        #[arg(long, default_value_t = 10_000, hide = true)]
        lease_ms: u64,
    },
    /// The coordinator alone.
    Coordinator {
        #[arg(long, default_value_t = 1)]
        node_id: u64,
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long, default_value = "127.0.0.1:7400")]
        listen: SocketAddr,
        /// How long a worker holds an assignment without renewing it.
        #[arg(long, default_value_t = 10_000)]
        lease_ms: u64,
    },
    /// Manage migration tasks.
    Task {
        #[arg(long, env = "FERRY_COORDINATOR", default_value = ferry_common::DEFAULT_COORDINATOR, global = true)]
        coordinator: String,
        #[command(subcommand)]
        cmd: cli::TaskCmd,
    },
    /// A task's validation: per-table state and the first differing keys;
    /// exits non-zero when rows differ.
    Validate {
        name: String,
        #[arg(long, env = "FERRY_COORDINATOR", default_value = ferry_common::DEFAULT_COORDINATOR)]
        coordinator: String,
        #[arg(long, default_value = "table")]
        output: String,
    },
    /// Switch from source to target: optionally freeze the source, wait
    /// until the target has applied everything, set sequences, run a hook;
    /// each step is printed with its duration.
    Cutover {
        name: String,
        #[arg(long, env = "FERRY_COORDINATOR", default_value = ferry_common::DEFAULT_COORDINATOR)]
        coordinator: String,
        /// Make the source refuse writes first (PostgreSQL: read-only
        /// database, open sessions ended; MySQL: read_only).
        #[arg(long)]
        freeze_source: bool,
        /// Run after the target has caught up (e.g. repoint a pooler).
        #[arg(long)]
        hook: Option<String>,
        /// Rehearse: everything but the freeze and the hook.
        #[arg(long)]
        dry_run: bool,
        /// Undo a --freeze-source (the source accepts writes again).
        #[arg(long, conflicts_with_all = ["freeze_source", "hook", "dry_run"])]
        unfreeze_source: bool,
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// Return to the source after a cutover: the reverse stream drains into
    /// it, its sequences move past the target's, and it takes writes again.
    Rollback {
        name: String,
        #[arg(long, env = "FERRY_COORDINATOR", default_value = ferry_common::DEFAULT_COORDINATOR)]
        coordinator: String,
        /// Make the target refuse writes first.
        #[arg(long)]
        freeze_target: bool,
        #[arg(long)]
        hook: Option<String>,
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// Throwaway source and target, generated data, a full run.
    Demo {
        #[arg(long, default_value_t = 200_000)]
        rows: u64,
    },
}

fn main() -> ExitCode {
    // CLI output piped into `head` must end quietly, like any Unix tool,
    // not panic in println! on EPIPE: restore the default SIGPIPE action.
    // SAFETY: called first thing, before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    ferry_common::telemetry::init(match cli.cmd {
        Cmd::Task { .. } | Cmd::Validate { .. } | Cmd::Cutover { .. } | Cmd::Rollback { .. } => "warn",
        _ => "info",
    });
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let res = rt.block_on(async move {
        match cli.cmd {
            Cmd::Up {
                data_dir,
                listen,
                workers,
                lease_ms,
            } => supervisor::up(data_dir, listen, workers, lease_ms).await,
            Cmd::Coordinator {
                node_id,
                data_dir,
                listen,
                lease_ms,
            } => {
                node::run(
                    node::NodeConfig {
                        node_id,
                        data_dir,
                        listen,
                        lease_ms,
                    },
                    supervisor::shutdown_signal(),
                )
                .await
            }
            Cmd::Task { coordinator, cmd } => cli::run(&coordinator, cmd).await,
            Cmd::Validate {
                name,
                coordinator,
                output,
            } => cli::validate(&coordinator, &name, &output).await,
            Cmd::Cutover {
                name,
                coordinator,
                unfreeze_source: true,
                timeout,
                ..
            } => cli::unfreeze(&coordinator, &name, timeout).await,
            Cmd::Cutover {
                name,
                coordinator,
                freeze_source,
                hook,
                dry_run,
                timeout,
                ..
            } => cli::cutover(&coordinator, &name, freeze_source, hook.as_deref(), dry_run, timeout).await,
            Cmd::Rollback {
                name,
                coordinator,
                freeze_target,
                hook,
                timeout,
            } => cli::rollback(&coordinator, &name, freeze_target, hook.as_deref(), timeout).await,
            Cmd::Demo { rows } => demo::run(rows).await,
        }
    });
    match res {
        Ok(code) => code_of(code),
        Err(e) => {
            // One line: the chain of causes, joined.
            let msg = e.chain().map(|c| c.to_string()).collect::<Vec<_>>().join(": ");
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn code_of(_: ()) -> ExitCode {
    ExitCode::SUCCESS
}
