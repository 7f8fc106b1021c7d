//! `ferry`: the coordinator and the operator's CLI.

mod access;
mod autoscaler;
mod capacity;
mod certs;
mod cli;
mod cluster;
mod cutover;
mod dashboard;
mod demo;
mod fleet_metrics;
mod node;
mod planner;
mod probes;
mod progress;
mod raft;
mod raft_metrics;
mod scaler;
mod server;
mod service;
mod state;
mod supervisor;
mod task_metrics;
mod worker_calls;

use clap::{Parser, Subcommand};
use ferry_common::access::LinkArgs;
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
        /// Coordinator nodes: 3 runs a Raft cluster (nodes 2 and 3 on the
        /// next two ports, data in DATA_DIR/node-N) that survives losing one.
        #[arg(long, default_value_t = 1)]
        nodes: u16,
        /// Start and stop one-slot workers to follow the desired capacity
        /// (`ferry capacity`), between --min-workers and --max-workers;
        /// --workers is then ignored.
        #[arg(long)]
        autoscale: bool,
        #[arg(long, default_value_t = 1, requires = "autoscale")]
        min_workers: u32,
        #[arg(long, default_value_t = 4, requires = "autoscale")]
        max_workers: u32,
        /// Seconds a worker that is draining may take to finish or hand
        /// back its work before it is killed.
        #[arg(long, default_value_t = 30)]
        drain_grace: u64,
        /// Serve node 1's /healthz, /readyz and /metrics over HTTP here.
        #[arg(long)]
        metrics_listen: Option<SocketAddr>,
        #[command(flatten)]
        scaling: ScalingArgs,
        #[arg(long, default_value_t = 10_000, hide = true)]
        lease_ms: u64,
        #[command(flatten)]
        security: SecurityArgs,
    },
    /// The coordinator alone.
    Coordinator {
        #[arg(long, default_value_t = 1)]
        node_id: u64,
        /// Take the node id from the hostname's trailing ordinal plus one
        /// (a StatefulSet's pod ferry-coordinator-2 is node 3).
        #[arg(long, conflicts_with = "node_id")]
        node_id_from_hostname: bool,
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long, default_value = "127.0.0.1:7400")]
        listen: SocketAddr,
        /// How long a worker holds an assignment without renewing it.
        #[arg(long, default_value_t = 10_000)]
        lease_ms: u64,
        /// host:port other nodes reach this one at (default: --listen).
        #[arg(long)]
        advertise: Option<String>,
        /// Join the cluster of these nodes (URLs, comma-separated) instead
        /// of starting one; ignored once this node is a member. A URL naming
        /// this node itself (its --advertise) is skipped: the node whose
        /// --join names only itself starts the cluster.
        #[arg(long, value_delimiter = ',')]
        join: Vec<String>,
        /// Token for --join on a secured cluster (admin role), where no node
        /// certificate is given.
        #[arg(long, env = "FERRY_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Snapshot the state and purge the Raft log every this many
        /// entries (the log on disk stays within about twice this).
        #[arg(long, env = "FERRY_SNAPSHOT_LOGS", default_value_t = server::SNAPSHOT_LOGS)]
        snapshot_logs: u64,
        /// Serve /healthz, /readyz and /metrics over HTTP here.
        #[arg(long, env = "FERRY_METRICS_LISTEN")]
        metrics_listen: Option<SocketAddr>,
        #[command(flatten)]
        scaling: ScalingArgs,
        #[command(flatten)]
        security: SecurityArgs,
    },
    /// Capacity units per task and in total: min, max, desired, granted,
    /// and why.
    Capacity {
        #[command(flatten)]
        link: LinkArgs,
        #[arg(long, default_value = "table")]
        output: String,
    },
    /// Cluster membership: status, add-node, remove-node.
    Cluster {
        #[command(flatten)]
        link: LinkArgs,
        #[command(subcommand)]
        cmd: cli::ClusterCmd,
    },
    /// Manage migration tasks.
    Task {
        #[command(flatten)]
        link: LinkArgs,
        #[command(subcommand)]
        cmd: cli::TaskCmd,
    },
    /// API tokens: create (printed once), list, revoke. Admin role.
    Token {
        #[command(flatten)]
        link: LinkArgs,
        #[command(subcommand)]
        cmd: cli::TokenCmd,
    },
    /// Named endpoints: create (admin), list, delete (admin), test.
    Endpoint {
        #[command(flatten)]
        link: LinkArgs,
        #[command(subcommand)]
        cmd: cli::EndpointCmd,
    },
    /// Certificates for mutual TLS between Ferry's processes.
    Certs {
        #[command(subcommand)]
        cmd: CertsCmd,
    },
    /// A task's validation: per-table state and the first differing keys;
    /// exits non-zero when rows differ.
    Validate {
        name: String,
        #[command(flatten)]
        link: LinkArgs,
        #[arg(long, default_value = "table")]
        output: String,
    },
    /// Switch from source to target: optionally freeze the source, wait
    /// until the target has applied everything, set sequences, run a hook;
    /// each step is printed with its duration.
    Cutover {
        name: String,
        #[command(flatten)]
        link: LinkArgs,
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
        /// Follow the cutover in progress on the coordinator (after this
        /// command was killed or timed out), retrying a failed step and
        /// running --hook if it has not run.
        #[arg(long, conflicts_with_all = ["freeze_source", "dry_run"])]
        resume: bool,
        /// Abandon the cutover in progress, or undo a --freeze-source: the
        /// source accepts writes again, the forward stream keeps running.
        #[arg(long, conflicts_with_all = ["freeze_source", "hook", "dry_run", "resume"])]
        unfreeze_source: bool,
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// Return to the source after a cutover: the reverse stream drains into
    /// it, its sequences move past the target's, and it takes writes again.
    Rollback {
        name: String,
        #[command(flatten)]
        link: LinkArgs,
        /// Make the target refuse writes first.
        #[arg(long)]
        freeze_target: bool,
        #[arg(long)]
        hook: Option<String>,
        /// Follow the rollback in progress on the coordinator.
        #[arg(long, conflicts_with = "freeze_target")]
        resume: bool,
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// Schema conversion: converted DDL as files to review and edit.
    Schema {
        #[command(subcommand)]
        cmd: SchemaCmd,
    },
    /// How hard a migration will be: report.json, report.html and
    /// premigration checks; exits 2 with --fail-on when such items exist.
    Assess {
        /// Source endpoint URL.
        #[arg(long)]
        source: String,
        /// postgres or mysql.
        #[arg(long)]
        target_engine: String,
        /// Target endpoint URL, for target-side checks; every converted
        /// statement is also tried there (and undone).
        #[arg(long)]
        target: Option<String>,
        #[arg(long)]
        out: PathBuf,
        /// The intended task: full-load, cdc or full-load-and-cdc.
        #[arg(long = "type", default_value = "full-load-and-cdc")]
        migration_type: String,
        #[arg(long)]
        table_mappings: Option<PathBuf>,
        /// critical or high.
        #[arg(long)]
        fail_on: Option<String>,
    },
    /// Throwaway source and target, generated data, a full run.
    Demo {
        #[arg(long, default_value_t = 200_000)]
        rows: u64,
    },
}

#[derive(Subcommand)]
enum CertsCmd {
    /// Write a CA (ca.pem) and node, worker and admin certificates (the
    /// role in each one's OU) into DIR, for `--tls-dir`.
    Init {
        dir: PathBuf,
        /// More names or addresses the node certificate is valid for
        /// (localhost, 127.0.0.1 and ::1 always are).
        #[arg(long = "host")]
        hosts: Vec<String>,
    },
}

/// How the desired capacity scales down (docs/capacity.md).
#[derive(clap::Args)]
struct ScalingArgs {
    /// Seconds the desired capacity stays at its highest figure after the
    /// work falls, so a brief lull does not stop workers.
    #[arg(long, env = "FERRY_SCALE_DOWN_COOLDOWN", default_value_t = server::SCALE_DOWN_COOLDOWN_S)]
    scale_down_cooldown: u64,
}

impl ScalingArgs {
    fn cooldown(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.scale_down_cooldown)
    }
}

/// How the coordinator protects its listener (docs/security.md).
#[derive(clap::Args)]
struct SecurityArgs {
    /// Directory from `ferry certs init`: node.pem, node-key.pem, ca.pem.
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key", "tls_ca"])]
    tls_dir: Option<PathBuf>,
    /// This node's certificate (PEM); with --tls-key and --tls-ca.
    #[arg(long, requires_all = ["tls_key", "tls_ca"])]
    tls_cert: Option<PathBuf>,
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// CA whose client and peer certificates are accepted.
    #[arg(long, requires = "tls_cert")]
    tls_ca: Option<PathBuf>,
    /// File holding the bootstrap admin token (create others with `ferry
    /// token create`).
    #[arg(long, env = "FERRY_ADMIN_TOKEN_FILE")]
    admin_token_file: Option<PathBuf>,
    /// Listen on a non-loopback address without TLS and tokens.
    #[arg(long)]
    insecure: bool,
}

impl SecurityArgs {
    fn security(self) -> server::Security {
        let tls = match (self.tls_dir, self.tls_cert, self.tls_key, self.tls_ca) {
            (Some(dir), ..) => Some(server::ServerTls::in_dir(&dir)),
            (None, Some(cert), Some(key), Some(ca)) => Some(server::ServerTls { cert, key, ca }),
            _ => None,
        };
        server::Security {
            tls,
            admin_token_file: self.admin_token_file,
            insecure: self.insecure,
        }
    }
}

#[derive(Subcommand)]
enum SchemaCmd {
    /// Write pre-data.sql, post-data.sql and action-items.txt to --out.
    Convert {
        #[arg(long)]
        source: String,
        /// postgres or mysql.
        #[arg(long)]
        target_engine: String,
        /// Target endpoint URL: every converted statement is tried there
        /// (and undone), and an object counts as converted only if it ran.
        #[arg(long)]
        target: Option<String>,
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        table_mappings: Option<PathBuf>,
    },
}

/// Schema work needs database drivers and the endpoint's credentials,
/// which live in the worker: run `ferry-worker` with the same arguments.
fn run_in_worker(args: Vec<std::ffi::OsString>) -> ExitCode {
    let worker = std::env::current_exe().map(|me| me.with_file_name("ferry-worker"));
    let worker = match worker {
        Ok(w) if w.exists() => w,
        _ => {
            eprintln!("error: ferry-worker not found next to the ferry executable");
            return ExitCode::FAILURE;
        }
    };
    match std::process::Command::new(&worker).args(args).status() {
        Ok(st) => ExitCode::from(st.code().unwrap_or(1).clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("error: running {}: {e}", worker.display());
            ExitCode::FAILURE
        }
    }
}

fn worker_args(cmd: &Cmd) -> Option<Vec<std::ffi::OsString>> {
    let mut a: Vec<std::ffi::OsString> = vec![];
    let opt = |a: &mut Vec<std::ffi::OsString>, k: &str, v: Option<&std::ffi::OsStr>| {
        if let Some(v) = v {
            a.push(k.into());
            a.push(v.to_os_string());
        }
    };
    match cmd {
        Cmd::Schema {
            cmd:
                SchemaCmd::Convert {
                    source,
                    target_engine,
                    target,
                    out,
                    table_mappings,
                },
        } => {
            a.extend(["schema".into(), "convert".into()]);
            opt(&mut a, "--source", Some(source.as_ref()));
            opt(&mut a, "--target-engine", Some(target_engine.as_ref()));
            opt(&mut a, "--target", target.as_deref().map(|t| t.as_ref()));
            opt(&mut a, "--out", Some(out.as_os_str()));
            opt(
                &mut a,
                "--table-mappings",
                table_mappings.as_deref().map(|p| p.as_os_str()),
            );
        }
        Cmd::Assess {
            source,
            target_engine,
            target,
            out,
            migration_type,
            table_mappings,
            fail_on,
        } => {
            a.push("assess".into());
            opt(&mut a, "--source", Some(source.as_ref()));
            opt(&mut a, "--target-engine", Some(target_engine.as_ref()));
            opt(&mut a, "--target", target.as_deref().map(|t| t.as_ref()));
            opt(&mut a, "--out", Some(out.as_os_str()));
            opt(&mut a, "--type", Some(migration_type.as_ref()));
            opt(
                &mut a,
                "--table-mappings",
                table_mappings.as_deref().map(|p| p.as_os_str()),
            );
            opt(&mut a, "--fail-on", fail_on.as_deref().map(|t| t.as_ref()));
        }
        _ => return None,
    }
    Some(a)
}

/// A StatefulSet pod's node id: its name's trailing ordinal plus one (node
/// ids start at 1).
fn node_id_of_hostname() -> anyhow::Result<u64> {
    let name = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .unwrap_or_default();
    let name = name.trim();
    name.rsplit_once('-')
        .and_then(|(_, n)| n.parse::<u64>().ok())
        .map(|n| n + 1)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "--node-id-from-hostname: hostname '{name}' does not end in -<ordinal> (a StatefulSet pod's name does)"
            )
        })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // CLI output piped into `head` must end quietly, like any Unix tool,
    // not panic in println! on EPIPE: restore the default SIGPIPE action.
    // Not in the servers: there a peer closing a socket mid-write (a CLI
    // gone, a node killed) would kill the process, since tokio writes to
    // sockets with write(2); they keep Rust's SIG_IGN and see EPIPE.
    if !matches!(cli.cmd, Cmd::Up { .. } | Cmd::Coordinator { .. } | Cmd::Demo { .. }) {
        // SAFETY: before any thread exists (the runtime starts below).
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    if let Some(args) = worker_args(&cli.cmd) {
        return run_in_worker(args);
    }
    let level = match cli.cmd {
        Cmd::Task { .. }
        | Cmd::Token { .. }
        | Cmd::Endpoint { .. }
        | Cmd::Cluster { .. }
        | Cmd::Capacity { .. }
        | Cmd::Certs { .. }
        | Cmd::Validate { .. }
        | Cmd::Cutover { .. }
        | Cmd::Rollback { .. } => "warn",
        _ => "info",
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The OTLP exporter's client runs on the runtime: made inside it, and
    // dropped (flushing what is left) before it stops.
    let telemetry = {
        let _inside = rt.enter();
        ferry_common::telemetry::init(level, "ferry-coordinator")
    };
    let res = rt.block_on(async move {
        match cli.cmd {
            Cmd::Up {
                data_dir,
                listen,
                nodes,
                workers,
                autoscale,
                min_workers,
                max_workers,
                drain_grace,
                metrics_listen,
                scaling,
                lease_ms,
                security,
            } => {
                let workers = if autoscale {
                    supervisor::Workers::Autoscale {
                        min: min_workers,
                        max: max_workers,
                    }
                } else {
                    supervisor::Workers::Fixed(workers)
                };
                let up = supervisor::Up {
                    data_dir,
                    listen,
                    nodes,
                    workers,
                    drain_grace: std::time::Duration::from_secs(drain_grace),
                    cooldown: scaling.cooldown(),
                    metrics_listen,
                    lease_ms,
                };
                supervisor::up(up, security.security()).await
            }
            Cmd::Coordinator {
                node_id,
                node_id_from_hostname,
                data_dir,
                listen,
                lease_ms,
                advertise,
                join,
                token,
                snapshot_logs,
                metrics_listen,
                scaling,
                security,
            } => {
                let node_id = if node_id_from_hostname {
                    node_id_of_hostname()?
                } else {
                    node_id
                };
                server::run(
                    server::NodeConfig {
                        node_id,
                        data_dir,
                        listen,
                        advertise: advertise.unwrap_or_else(|| listen.to_string()),
                        join,
                        join_token: token,
                        lease_ms,
                        snapshot_logs,
                        scale_down_cooldown: scaling.cooldown(),
                        metrics_listen,
                        worker_series: None,
                        security: security.security(),
                    },
                    supervisor::shutdown_signal(),
                )
                .await
            }
            Cmd::Task { link, cmd } => cli::run(&link.link()?, cmd).await,
            Cmd::Token { link, cmd } => cli::token(&link.link()?, cmd).await,
            Cmd::Endpoint { link, cmd } => cli::endpoint(&link.link()?, cmd).await,
            Cmd::Cluster { link, cmd } => cli::cluster(&link.link()?, cmd).await,
            Cmd::Capacity { link, output } => cli::capacity(&link.link()?, &output).await,
            Cmd::Certs {
                cmd: CertsCmd::Init { dir, hosts },
            } => {
                certs::init(&dir, &hosts)?;
                println!(
                    "wrote {} (CA), node, worker and admin certificates to {}",
                    certs::CA.0,
                    dir.display()
                );
                Ok(())
            }
            Cmd::Validate { name, link, output } => cli::validate(&link.link()?, &name, &output).await,
            Cmd::Cutover {
                name,
                link,
                unfreeze_source: true,
                timeout,
                ..
            } => cli::unfreeze(&link.link()?, &name, timeout).await,
            Cmd::Cutover {
                name,
                link,
                freeze_source,
                hook,
                dry_run,
                resume,
                timeout,
                ..
            } => {
                let ask = cli::Ask {
                    freeze: freeze_source,
                    hook: hook.as_deref(),
                    dry_run,
                    resume,
                    timeout_s: timeout,
                };
                cli::cutover(&link.link()?, &name, ask).await
            }
            Cmd::Rollback {
                name,
                link,
                freeze_target,
                hook,
                resume,
                timeout,
            } => {
                let ask = cli::Ask {
                    freeze: freeze_target,
                    hook: hook.as_deref(),
                    dry_run: false,
                    resume,
                    timeout_s: timeout,
                };
                cli::rollback(&link.link()?, &name, ask).await
            }
            Cmd::Demo { rows } => demo::run(rows).await,
            // Handled before the runtime starts (run_in_worker).
            Cmd::Schema { .. } | Cmd::Assess { .. } => Ok(()),
        }
    });
    {
        let _inside = rt.enter();
        drop(telemetry);
    }
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
