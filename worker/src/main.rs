//! `ferry-worker`: a stateless data-plane process. It registers with the
//! coordinator, pulls assignments, renews their leases by heartbeat while it
//! works, and reports progress and results tagged with the assignment's
//! fencing epoch. It keeps nothing on disk: killing it loses nothing but the
//! work in flight, which the coordinator hands to another worker when the
//! lease expires.

mod cgroup;
mod engine;
mod failpoint;
mod health;
mod lease;
mod pipeline;
mod probe;
mod report;
mod schema;

use clap::Parser;
use engine::ConnectorError;
use ferry_common::access::{Link, LinkArgs};
use ferry_common::proto::{self as pb, admin_client::AdminClient, worker_client::WorkerClient};
use ferry_common::work::{Work, WorkResult};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

#[derive(Parser)]
#[command(name = "ferry-worker", version, about = "Ferry data-plane worker")]
struct Args {
    #[command(flatten)]
    link: LinkArgs,
    /// Assignments run at once (capacity units). Default: one per vCPU and
    /// per GiB of this process's cgroup limits, whichever allows fewer; 1
    /// without limits.
    #[arg(long, env = "FERRY_SLOTS")]
    slots: Option<u32>,
    /// Seconds a draining worker (SIGTERM) lets its loads and steps finish
    /// before it hands them back; a CDC stream is handed back at once.
    #[arg(long, env = "FERRY_DRAIN_GRACE", default_value_t = 25)]
    drain_grace: u64,
    /// Serve /healthz, /readyz and /metrics over HTTP here.
    #[arg(long, env = "FERRY_METRICS_LISTEN")]
    metrics_listen: Option<std::net::SocketAddr>,
    /// Seconds a source or target may leave a liveness probe unanswered
    /// before the assignment using it is abandoned (and retried).
    #[arg(long, env = "FERRY_ENDPOINT_TIMEOUT", default_value_t = 30)]
    endpoint_timeout: u64,
    /// Secrets this worker may read for endpoints' passwords: env:NAME,
    /// file:PATH, or '*' (repeat, or comma-separate in the variable).
    /// Default: any in laptop mode (no token and no client certificate),
    /// none otherwise — `~/.pgpass` and certificates still work.
    #[arg(long = "allow-secret", env = "FERRY_ALLOW_SECRETS", value_delimiter = ',')]
    allow_secret: Vec<String>,
    /// Without a command: run as a worker.
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

/// One-shot commands that need database access (`ferry schema convert` and
/// `ferry assess` run these).
#[derive(clap::Subcommand)]
enum Cmd {
    /// Converted DDL for a target engine, as files to review.
    Schema {
        #[command(subcommand)]
        cmd: SchemaCmd,
    },
    /// `ferry endpoint test`: connect as a task would and report the server,
    /// its TLS and its readiness as a CDC source.
    Endpoint {
        #[command(subcommand)]
        cmd: EndpointCmd,
    },
    /// Assessment report (report.json, report.html) and premigration checks.
    Assess {
        #[arg(long)]
        source: String,
        #[arg(long)]
        target_engine: String,
        #[arg(long)]
        target: Option<String>,
        #[arg(long)]
        out: std::path::PathBuf,
        /// The task this assessment is for (decides the CDC checks).
        #[arg(long = "type", default_value = "full-load-and-cdc")]
        migration_type: String,
        #[arg(long)]
        table_mappings: Option<std::path::PathBuf>,
        /// Exit non-zero when action items of this severity or worse exist.
        #[arg(long)]
        fail_on: Option<String>,
    },
}

#[derive(clap::Subcommand)]
enum EndpointCmd {
    /// `ferry endpoint test --local`: prints the readiness report as JSON
    /// (the CLI renders it and judges it for the role asked).
    Test { url: String },
}

#[derive(clap::Subcommand)]
enum SchemaCmd {
    Convert {
        #[arg(long)]
        source: String,
        #[arg(long)]
        target_engine: String,
        #[arg(long)]
        target: Option<String>,
        #[arg(long)]
        out: std::path::PathBuf,
        #[arg(long)]
        table_mappings: Option<std::path::PathBuf>,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let mut args = Args::parse();
    let _telemetry = ferry_common::telemetry::init(if args.cmd.is_some() { "warn" } else { "info" }, "ferry-worker");
    let policy = match secret_policy(&args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    policy.install();
    let res = match args.cmd.take() {
        None => run(args).await,
        Some(Cmd::Endpoint {
            cmd: EndpointCmd::Test { url },
        }) => endpoint_test(&url).await,
        Some(Cmd::Schema {
            cmd:
                SchemaCmd::Convert {
                    source,
                    target_engine,
                    target,
                    out,
                    table_mappings,
                },
        }) => {
            schema::convert_command(schema::ConvertArgs {
                source: &source,
                target_engine: &target_engine,
                target: target.as_deref(),
                out: &out,
                table_mappings: table_mappings.as_deref(),
            })
            .await
        }
        Some(Cmd::Assess {
            source,
            target_engine,
            target,
            out,
            migration_type,
            table_mappings,
            fail_on,
        }) => match schema::assess_command(schema::AssessArgs {
            source: &source,
            target_engine: &target_engine,
            target: target.as_deref(),
            out: &out,
            migration_type: &migration_type,
            table_mappings: table_mappings.as_deref(),
            fail_on: fail_on.as_deref(),
        })
        .await
        {
            Ok(true) => Ok(()),
            Ok(false) => return std::process::ExitCode::from(2),
            Err(e) => Err(e),
        },
    };
    if let Err(e) = res {
        let msg = e.chain().map(|c| c.to_string()).collect::<Vec<_>>().join(": ");
        eprintln!("error: {msg}");
        return std::process::ExitCode::FAILURE;
    }
    std::process::ExitCode::SUCCESS
}

/// `--allow-secret`, or its default: a worker run by `ferry up` or beside a
/// laptop-mode coordinator reads any secret its user gave it; one holding
/// credentials for a secured coordinator reads only what it is told. The
/// one-shot commands run as the operator, with the operator's secrets.
fn secret_policy(args: &Args) -> Result<engine::credentials::SecretPolicy, String> {
    use engine::credentials::SecretPolicy;
    if !args.allow_secret.is_empty() {
        return SecretPolicy::parse(&args.allow_secret);
    }
    let l = &args.link;
    let secured = l.token.is_some() || l.token_file.is_some() || l.tls_cert.is_some();
    Ok(if secured && args.cmd.is_none() {
        SecretPolicy::Only(vec![])
    } else {
        SecretPolicy::Any
    })
}

/// `ferry endpoint test --local`: the readiness report, run here, as JSON.
async fn endpoint_test(url: &str) -> anyhow::Result<()> {
    let ep = ferry_common::endpoint::Endpoint::parse(url)?;
    let r = schema::readiness::test(&ep).await?;
    println!("{}", serde_json::to_string(&r)?);
    Ok(())
}

async fn run(args: Args) -> anyhow::Result<()> {
    let channel = args
        .link
        .link()?
        .connect_lazy(Duration::from_secs(3), Duration::from_secs(30))?;
    let client = WorkerClient::new(channel.clone());
    let admin = AdminClient::new(channel);
    lease::start(&args.link.link()?)?;
    let mut slots = Vec::new();
    let probe_timeout = Duration::from_secs(args.endpoint_timeout.max(1));
    let n = args.slots.unwrap_or_else(cgroup::default_slots).max(1);
    health::HEALTH.slots.store(n as i64, Ordering::Relaxed);
    if let Some(addr) = args.metrics_listen {
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("listening for probes and metrics on {addr}: {e}"))?;
        // Off loopback, readers need what the coordinator's admin API takes.
        let link = args.link.link()?;
        let readers = (!addr.ip().is_loopback()).then(|| Arc::new(health::Readers::new(&link)));
        tokio::spawn(health::serve(l, readers));
    }
    let grace = Duration::from_secs(args.drain_grace);
    let (drain_tx, drain) = tokio::sync::watch::channel(None);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!(grace_s = grace.as_secs(), "draining: no new work; CDC streams handed back now, other work finishes or is handed back at the end of the grace period");
        health::HEALTH.draining.store(true, Ordering::Relaxed);
        let _ = drain_tx.send(Some(tokio::time::Instant::now() + grace));
        // Still running a little after the grace period: a hand-back hung
        // on an unreachable coordinator. The leases expire by themselves.
        tokio::time::sleep(grace + Duration::from_secs(10)).await;
        tracing::warn!("drain overran its grace period; exiting");
        std::process::exit(1);
    });
    tracing::info!(slots = n, "worker starting");
    for slot in 0..n {
        slots.push(tokio::spawn(slot_loop(
            client.clone(),
            admin.clone(),
            slot,
            probe_timeout,
            drain.clone(),
        )));
    }
    for s in slots {
        s.await?;
    }
    tracing::info!("drained");
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Draining: `None` until SIGTERM, then the end of the grace period.
type Drain = tokio::sync::watch::Receiver<Option<tokio::time::Instant>>;

/// Resolves when an assignment must be handed back: once draining starts
/// for a stream (`at_once`), at the end of the grace period for the rest.
async fn hand_back_due(drain: &mut Drain, at_once: bool) {
    loop {
        let deadline = *drain.borrow_and_update();
        if let Some(deadline) = deadline {
            if !at_once {
                tokio::time::sleep_until(deadline).await;
            }
            return;
        }
        if drain.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

/// How this process registers: `host:pid`.
fn worker_name() -> String {
    format!(
        "{}:{}",
        std::fs::read_to_string("/etc/hostname").unwrap_or_default().trim(),
        std::process::id()
    )
}

async fn register(client: &mut WorkerClient<Link>) -> (u64, u64) {
    let name = worker_name();
    let mut delay = Duration::from_millis(200);
    loop {
        match client
            .register(pb::RegisterRequest {
                name: name.clone(),
                slots: 1,
            })
            .await
        {
            Ok(r) => {
                let r = r.into_inner();
                tracing::info!(worker_id = r.worker_id, "registered with coordinator");
                health::HEALTH.registered.store(true, Ordering::Relaxed);
                return (r.worker_id, r.lease_ms);
            }
            // Credentials do not get better by retrying.
            Err(e) if matches!(e.code(), tonic::Code::Unauthenticated | tonic::Code::PermissionDenied) => {
                tracing::error!(error = %e.message(), "the coordinator refused this worker");
                eprintln!("error: the coordinator refused this worker: {}", e.message());
                std::process::exit(1);
            }
            Err(e) => {
                tracing::warn!(error = %ferry_common::error_chain(&e), "coordinator unavailable; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// One capacity slot: pull, run, report, until the worker drains.
async fn slot_loop(
    mut client: WorkerClient<Link>,
    admin: AdminClient<Link>,
    slot: u32,
    probe_timeout: Duration,
    mut drain: Drain,
) {
    let (mut worker_id, mut lease_ms) = register(&mut client).await;
    let mut background = Vec::new();
    loop {
        if drain.borrow().is_some() {
            break;
        }
        let a = match client.pull_assignment(pb::PullRequest { worker_id }).await {
            Ok(r) => r.into_inner().assignment,
            Err(s) if s.code() == tonic::Code::NotFound => {
                (worker_id, lease_ms) = register(&mut client).await;
                continue;
            }
            Err(s) => {
                tracing::debug!(error = %s.message(), "pull failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        // Idle polls are read-only on the coordinator, so they can be
        // frequent: a phase change (post-data after the last segment) is
        // picked up within 100 ms.
        let Some(a) = a else {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = drain.changed() => {}
            }
            continue;
        };
        if a.kind == ferry_common::work::Errand::KIND {
            run_errand(&mut client, worker_id, a)
                .instrument(tracing::info_span!("errand", slot))
                .await;
            continue;
        }
        let span = tracing::info_span!("assignment", task = %a.task, kind = %a.kind, id = a.id, epoch = a.epoch, slot);
        // The grant's trace, continued here (when traces are exported).
        ferry_common::telemetry::follow(&span, &a.traceparent);
        if a.kind == "HoldSnapshot" {
            // A snapshot holder idles on a source connection; it does not
            // take this slot's capacity (the coordinator does not count it).
            let mut c = client.clone();
            let admin = admin.clone();
            let drain = drain.clone();
            background.push(tokio::spawn(async move {
                run_assignment(&mut c, &admin, worker_id, lease_ms, probe_timeout, a, drain)
                    .instrument(span)
                    .await
            }));
            continue;
        }
        run_assignment(
            &mut client,
            &admin,
            worker_id,
            lease_ms,
            probe_timeout,
            a,
            drain.clone(),
        )
        .instrument(span)
        .await;
    }
    for b in background {
        let _ = b.await;
    }
}

/// An errand: a one-shot job outside every task, answered by
/// `CompleteErrand` (the coordinator's asker waits for it).
async fn run_errand(client: &mut WorkerClient<Link>, worker_id: u64, a: pb::Assignment) {
    use ferry_common::work::Errand;
    let outcome: anyhow::Result<String> = async {
        match serde_json::from_slice::<Errand>(&a.work_json)? {
            Errand::TestEndpoint { endpoint } => {
                tracing::info!(endpoint = %endpoint, "testing endpoint");
                let mut r = schema::readiness::test(&endpoint).await?;
                r.worker = worker_name();
                Ok(serde_json::to_string(&r)?)
            }
        }
    }
    .await;
    let (answer_json, error) = match outcome {
        Ok(a) => (a, String::new()),
        Err(e) => (String::new(), format!("{e:#}")),
    };
    let result = pb::ErrandResult {
        id: a.id,
        worker_id,
        answer_json,
        error,
    };
    if let Err(e) = client.complete_errand(result).await {
        tracing::warn!(errand = a.id, error = %e.message(), "errand answer not taken (its asker may have given up)");
    }
}

/// Returns an assignment to the coordinator unfinished, counting no
/// attempt (a draining worker, or work that waits on work without a worker).
async fn hand_back(client: &mut WorkerClient<Link>, aref: pb::AssignmentRef, why: &str) {
    tracing::info!(reason = why, "handing the assignment back");
    if let Err(s) = client.release(aref).await {
        tracing::warn!(error = %s.message(), "could not hand the assignment back; its lease will expire");
    }
}

async fn run_assignment(
    client: &mut WorkerClient<Link>,
    admin: &AdminClient<Link>,
    worker_id: u64,
    lease_ms: u64,
    probe_timeout: Duration,
    a: pb::Assignment,
    mut drain: Drain,
) {
    let aref = pb::AssignmentRef {
        id: a.id,
        epoch: a.epoch,
    };
    let decoded = serde_json::from_slice::<Work>(&a.work_json).and_then(|w| {
        let control = match a.control_json.is_empty() {
            true => Default::default(),
            false => serde_json::from_slice(&a.control_json)?,
        };
        Ok((w, control))
    });
    let (work, control): (Work, ferry_common::control::ControlTables) = match decoded {
        Ok(w) => w,
        Err(e) => {
            let _ = client
                .fail(pb::FailRequest {
                    assignment: Some(aref),
                    error: format!("worker cannot decode assignment {}: {e}", a.id),
                    retryable: false,
                    suspend_table: false,
                })
                .await;
            return;
        }
    };
    if let Work::LoadSegment {
        table, segment, bounds, ..
    } = &work
    {
        // Bounds are source key values (customer ids, emails): debug only.
        tracing::info!(table = %table.display_name(), segment, "loading segment");
        tracing::debug!(table = %table.display_name(), segment, bounds = %bounds, "segment bounds");
    } else {
        tracing::info!("starting");
    }
    let _running = health::Running::start();
    let progress = Arc::new(AtomicU64::new(0));
    let ctx = pipeline::work::WorkContext {
        run: engine::Run {
            task: a.task.clone(),
            epoch: a.epoch,
            control,
        },
        progress: progress.clone(),
        reporter: report::Reporter::new(client.clone(), admin.clone(), aref),
    };
    let watchdog = probe::watch(work.endpoints().into_iter().cloned().collect(), probe_timeout);
    tokio::pin!(watchdog);
    let kind = work.kind();
    // A panic in the work (a bug, or a driver's) fails this assignment with
    // a message instead of taking the slot down with it: the slot would
    // otherwise stop pulling work while its lease quietly expires.
    let fut = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(
        pipeline::work::run(work, ctx).instrument(tracing::info_span!("work", kind)),
    ));
    let mut fut = Box::pin(futures::FutureExt::map(fut, move |r| {
        r.unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(ConnectorError::Definite(format!(
                "{kind} failed with an internal error: {what}"
            )))
        })
    }));
    // A stream runs until stopped: draining hands it back at once, and the
    // next worker resumes it from the checkpoint committed on the target.
    let stream = kind == "Cdc";
    // The lease is renewed on a thread of its own (`lease`): the work may
    // run long between two awaits, on every thread of this runtime.
    let (lost_tx, lost) = tokio::sync::oneshot::channel::<()>();
    let _renewal = lease::keep(client, worker_id, aref, lease_ms, progress.clone(), lost_tx);
    tokio::pin!(lost);
    let result = tokio::select! {
        r = &mut fut => Some(r),
        _ = hand_back_due(&mut drain, stream) => {
            // Stop the work first: its open target transaction rolls
            // back as its connections close, before anyone else runs it.
            drop(fut);
            hand_back(client, aref, "draining").await;
            return;
        }
        e = &mut watchdog => {
            tracing::warn!(error = %e, "endpoint hung: abandoning the assignment");
            Some(Err(e))
        }
        _ = &mut lost => {
            tracing::warn!("lease lost: abandoning the assignment (its target transaction rolls back)");
            None
        }
    };
    let Some(result) = result else { return };
    if let Err(ConnectorError::HandBack(reason)) = &result {
        hand_back(client, aref, reason).await;
        return;
    }
    report(client, aref, result)
        .instrument(tracing::info_span!("report"))
        .await;
}

/// Reports `result` until the coordinator answers: it may be restarting.
async fn report(client: &mut WorkerClient<Link>, aref: pb::AssignmentRef, result: Result<WorkResult, ConnectorError>) {
    let mut delay = Duration::from_millis(200);
    for _ in 0..60 {
        let res = match &result {
            Ok(r) => {
                let result_json = serde_json::to_vec(r).expect("serializable result");
                client
                    .complete(pb::CompleteRequest {
                        assignment: Some(aref),
                        result_json,
                    })
                    .await
            }
            Err(e) => {
                tracing::warn!(error = %e, retryable = e.retryable(), "assignment failed");
                client
                    .fail(pb::FailRequest {
                        assignment: Some(aref),
                        error: e.to_string(),
                        retryable: matches!(e, ConnectorError::Transient(_)),
                        suspend_table: matches!(e, ConnectorError::SuspendTable(_)),
                    })
                    .await
            }
        };
        match res {
            Ok(_) => {
                if result.is_ok() {
                    tracing::info!("done");
                }
                return;
            }
            Err(s) if s.code() == tonic::Code::FailedPrecondition => {
                tracing::warn!(reason = %s.message(), "coordinator refused the report (fenced)");
                return;
            }
            Err(s) => {
                tracing::warn!(error = %s.message(), "cannot report to coordinator; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}
