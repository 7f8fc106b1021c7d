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

pub async fn up(data_dir: PathBuf, listen: SocketAddr, workers: u32, lease_ms: u64) -> anyhow::Result<()> {
    let worker_bin = worker_binary()?;
    let url = format!("http://{listen}");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut sup = Vec::new();
    for i in 0..workers {
        let (bin, url, mut stop) = (worker_bin.clone(), url.clone(), stop_rx.clone());
        sup.push(tokio::spawn(async move {
            loop {
                let mut child = match tokio::process::Command::new(&bin)
                    .arg("--coordinator")
                    .arg(&url)
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
        server::NodeConfig {
            node_id: 1,
            data_dir,
            listen,
            lease_ms,
        },
        shutdown_signal(),
    )
    .await;
    let _ = stop_tx.send(true);
    for s in sup {
        let _ = s.await;
    }
    res
}
