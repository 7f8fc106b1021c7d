//! `ferry up`: the coordinator cluster's first node in this process, its
//! other nodes and `ferry-worker`s as child processes, restarted if they
//! die: N of them, or as many as the desired capacity asks for
//! (`--autoscale`, see `autoscaler`).

use crate::server;
use anyhow::Context;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}

/// The worker binary sits next to `ferry`.
pub fn worker_binary() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe().context("locating the ferry executable")?;
    let w = me.with_file_name("ferry-worker");
    anyhow::ensure!(w.exists(), "ferry-worker not found next to {}", me.display());
    Ok(w)
}

/// How many workers `ferry up` runs.
#[derive(Debug, Clone, Copy)]
pub enum Workers {
    Fixed(u32),
    /// Follow the desired capacity, one slot per worker.
    Autoscale {
        min: u32,
        max: u32,
    },
}

/// What `ferry up` runs.
pub struct Up {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub nodes: u16,
    pub workers: Workers,
    /// How long a worker told to stop may drain.
    pub drain_grace: Duration,
    pub cooldown: Duration,
    pub metrics_listen: Option<SocketAddr>,
    pub lease_ms: u64,
}

/// `ferry up`: node 1 of the coordinator cluster in this process; with
/// `nodes` > 1, nodes 2..=N as `ferry coordinator` child processes on the
/// next ports (data in DATA_DIR/node-N), joining node 1; and one-slot
/// `ferry-worker` children given every node. Children that die are started
/// again (on their data dirs: a node rejoins, it never initializes twice).
/// On SIGTERM the workers drain first, then the nodes stop.
pub async fn up(up: Up, security: server::Security) -> anyhow::Result<()> {
    let Up {
        data_dir,
        listen,
        nodes,
        workers,
        drain_grace,
        cooldown,
        metrics_listen,
        lease_ms,
    } = up;
    if let Workers::Autoscale { min, max } = workers {
        anyhow::ensure!(
            min <= max && max >= 1,
            "--min-workers {min} --max-workers {max}: expected 0 <= min <= max and max >= 1"
        );
    }
    anyhow::ensure!(
        (1..=7).contains(&nodes),
        "--nodes {nodes}: expected 1 to 7 (an odd number tolerates the most failures)"
    );
    let worker_bin = worker_binary()?;
    let me = std::env::current_exe().context("locating the ferry executable")?;
    // With TLS, the workers present the worker certificate from the same
    // directory (`ferry certs init` writes both); a token alone cannot
    // serve them: the admin token is not a worker's.
    let mut worker_args: Vec<std::ffi::OsString> = vec![];
    let mut node_args: Vec<std::ffi::OsString> = vec![];
    let listens: Vec<SocketAddr> = (0..nodes)
        .map(|i| SocketAddr::new(listen.ip(), listen.port() + i))
        .collect();
    // The node certificate names 127.0.0.1 (and `--host`s).
    let reach = |l: &SocketAddr| {
        let ip = if l.ip().is_unspecified() {
            std::net::IpAddr::from([127, 0, 0, 1])
        } else {
            l.ip()
        };
        SocketAddr::new(ip, l.port())
    };
    let scheme = match &security.tls {
        Some(tls) => {
            let dir = tls.cert.parent().unwrap_or(std::path::Path::new("."));
            let (cert, key) = crate::certs::WORKER;
            for (flag, path) in [
                ("--tls-ca", tls.ca.clone()),
                ("--tls-cert", dir.join(cert)),
                ("--tls-key", dir.join(key)),
            ] {
                anyhow::ensure!(
                    path.exists(),
                    "ferry up with TLS: {} not found (see `ferry certs init`)",
                    path.display()
                );
                worker_args.push(flag.into());
                worker_args.push(path.into());
            }
            for (flag, path) in [
                ("--tls-cert", &tls.cert),
                ("--tls-key", &tls.key),
                ("--tls-ca", &tls.ca),
            ] {
                node_args.push(flag.into());
                node_args.push(path.into());
            }
            "https"
        }
        None => {
            anyhow::ensure!(
                security.admin_token_file.is_none(),
                "ferry up with --admin-token-file needs --tls-dir too: its workers authenticate with the worker certificate"
            );
            "http"
        }
    };
    if let Some(f) = &security.admin_token_file {
        node_args.push("--admin-token-file".into());
        node_args.push(f.into());
    }
    if security.insecure {
        node_args.push("--insecure".into());
    }
    let urls: Vec<String> = listens.iter().map(|l| format!("{scheme}://{}", reach(l))).collect();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut sup = Vec::new();
    for (i, l) in listens.iter().enumerate().skip(1) {
        let node_id = i + 1;
        let node_dir = data_dir.join(format!("node-{node_id}"));
        let mut args: Vec<std::ffi::OsString> = vec![
            "coordinator".into(),
            "--node-id".into(),
            node_id.to_string().into(),
            "--data-dir".into(),
            node_dir.into(),
            "--listen".into(),
            l.to_string().into(),
            "--advertise".into(),
            reach(l).to_string().into(),
            "--lease-ms".into(),
            lease_ms.to_string().into(),
            "--scale-down-cooldown".into(),
            cooldown.as_secs().to_string().into(),
            "--join".into(),
            urls[0].clone().into(),
        ];
        args.extend(node_args.iter().cloned());
        sup.push(tokio::spawn(supervise(
            format!("coordinator node {node_id}"),
            me.clone(),
            args,
            stop_rx.clone(),
        )));
    }
    let mut base: Vec<std::ffi::OsString> = vec![
        "--coordinator".into(),
        urls.join(",").into(),
        "--slots".into(),
        "1".into(),
        "--drain-grace".into(),
        drain_grace.as_secs().to_string().into(),
    ];
    base.extend(worker_args.iter().cloned());
    let mut fleet = crate::autoscaler::Fleet::new(worker_bin, base, drain_grace);
    // With a metrics listener, the workers' series join node 1's /metrics.
    let worker_series = metrics_listen.map(|_| crate::fleet_metrics::Workers::default());
    if let Some(w) = &worker_series {
        fleet = fleet.with_metrics(w.clone());
    }
    let (workers_stop_tx, workers_stop) = tokio::sync::watch::channel(false);
    let pool = match workers {
        Workers::Fixed(n) => tokio::spawn(fleet.run_fixed(n, workers_stop)),
        Workers::Autoscale { min, max } => {
            let link = ferry_common::access::ClientLink {
                url: urls.join(","),
                token: match &security.admin_token_file {
                    Some(f) => Some(
                        std::fs::read_to_string(f)
                            .with_context(|| format!("reading the admin token file {}", f.display()))?
                            .trim()
                            .to_string(),
                    ),
                    None => None,
                },
                ca: security.tls.as_ref().map(|t| t.ca.clone()),
                cert: None,
                key: None,
            };
            tokio::spawn(fleet.autoscale(link, min, max, workers_stop))
        }
    };
    let mut node = server::NodeConfig::single(data_dir, listen, lease_ms, security);
    node.advertise = reach(&listen).to_string();
    node.scale_down_cooldown = cooldown;
    node.metrics_listen = metrics_listen;
    node.worker_series = worker_series;
    // Stop order: workers drain while the coordinators still answer (their
    // hand-backs go through Raft), then the nodes stop.
    let (node_stop_tx, node_stop) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(server::run(node, async {
        let _ = node_stop.await;
    }));
    tokio::pin!(server);
    let res = tokio::select! {
        r = &mut server => {
            let _ = workers_stop_tx.send(true);
            let _ = pool.await;
            r
        }
        _ = shutdown_signal() => {
            let _ = workers_stop_tx.send(true);
            let _ = pool.await;
            let _ = node_stop_tx.send(());
            server.await
        }
    };
    let _ = stop_tx.send(true);
    for s in sup {
        let _ = s.await;
    }
    res.context("coordinator task")?
}

/// Runs `bin ARGS` until `stop` changes, starting it again a second after
/// it exits.
async fn supervise(
    what: String,
    bin: PathBuf,
    args: Vec<std::ffi::OsString>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let mut child = match tokio::process::Command::new(&bin)
            .args(&args)
            .kill_on_drop(true)
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(child = %what, error = %e, "cannot start");
                return;
            }
        };
        tokio::select! {
            st = child.wait() => {
                tracing::warn!(child = %what, status = ?st, "exited; restarting");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            _ = stop.changed() => {
                let _ = child.kill().await;
                return;
            }
        }
    }
}
