//! `ferry up`: the coordinator in this process and N `ferry-worker` child
//! processes, restarted if they die (the local capacity provider).

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

pub async fn up(
    data_dir: PathBuf,
    listen: SocketAddr,
    workers: u32,
    lease_ms: u64,
    security: server::Security,
) -> anyhow::Result<()> {
    let worker_bin = worker_binary()?;
    // With TLS, the workers present the worker certificate from the same
    // directory (`ferry certs init` writes both); a token alone cannot
    // serve them: the admin token is not a worker's.
    let mut worker_args: Vec<std::ffi::OsString> = vec![];
    let url = match &security.tls {
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
            // The node certificate names 127.0.0.1 (and `--host`s).
            let ip = if listen.ip().is_unspecified() {
                std::net::IpAddr::from([127, 0, 0, 1])
            } else {
                listen.ip()
            };
            format!("https://{}", SocketAddr::new(ip, listen.port()))
        }
        None => {
            anyhow::ensure!(
                security.admin_token_file.is_none(),
                "ferry up with --admin-token-file needs --tls-dir too: its workers authenticate with the worker certificate"
            );
            format!("http://{listen}")
        }
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut sup = Vec::new();
    for i in 0..workers {
        let (bin, url, args, mut stop) = (worker_bin.clone(), url.clone(), worker_args.clone(), stop_rx.clone());
        sup.push(tokio::spawn(async move {
            loop {
                let mut child = match tokio::process::Command::new(&bin)
                    .arg("--coordinator")
                    .arg(&url)
                    .args(&args)
                    .kill_on_drop(true)
                    .spawn()
                {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::error!(worker = i, error = %e, "cannot start ferry-worker");
                        return;
                    }
                };
                tokio::select! {
                    st = child.wait() => {
                        tracing::warn!(worker = i, status = ?st, "ferry-worker exited; restarting");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    _ = stop.changed() => {
                        let _ = child.kill().await;
                        return;
                    }
                }
            }
        }));
    }
    let res = server::run(
        server::NodeConfig::single(data_dir, listen, lease_ms, security),
        shutdown_signal(),
    )
    .await;
    let _ = stop_tx.send(true);
    for s in sup {
        let _ = s.await;
    }
    res
}
