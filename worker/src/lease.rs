//! Lease renewal, on a thread and runtime of its own.
//!
//! An assignment is the worker's only while its lease is renewed (every
//! quarter lease); once it lapses the coordinator hands the work to another
//! worker and fences this one out. The work runs on the main runtime and
//! may hold a thread for seconds between two awaits (a value of hundreds of
//! MB is decoded, escaped or encoded in one go), on every thread at once
//! when a load's reader and writer both do. A heartbeat scheduled on that
//! runtime would wait behind them and let the lease of a worker that is
//! making progress lapse, over and over. So heartbeats run here, on a
//! current-thread runtime with its own connection to the coordinator,
//! which nothing else schedules on. Fencing is unchanged: a lease that
//! lapses for any other reason (a partition, a stopped process) still
//! lapses, and the work's target writes are fenced by epoch as before.

use ferry_common::access::{ClientLink, Link};
use ferry_common::proto::{self as pb, worker_client::WorkerClient};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tracing::Instrument;

struct Keeper {
    runtime: tokio::runtime::Handle,
    client: WorkerClient<Link>,
}

static KEEPER: OnceLock<Keeper> = OnceLock::new();

/// Starts the renewal thread, connected to the coordinator through `link`.
pub fn start(link: &ClientLink) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    // The channel's own tasks run on the runtime it is made in.
    let channel = {
        let _in = rt.enter();
        link.connect_lazy(Duration::from_secs(3), Duration::from_secs(30))?
    };
    let keeper = Keeper {
        runtime: rt.handle().clone(),
        client: WorkerClient::new(channel),
    };
    std::thread::Builder::new()
        .name("ferry-lease".into())
        .spawn(move || rt.block_on(std::future::pending::<()>()))?;
    let _ = KEEPER.set(keeper);
    Ok(())
}

/// Renews an assignment's lease until dropped.
pub struct Renewal(tokio::task::JoinHandle<()>);

impl Drop for Renewal {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Renews assignment `aref`'s lease every quarter lease and reports its
/// `progress`, until the returned [`Renewal`] is dropped; sends on `lost`
/// once the coordinator revoked it. On the renewal thread when started,
/// else (unit tests) beside the caller with its `client`.
pub fn keep(
    client: &WorkerClient<Link>,
    worker_id: u64,
    aref: pb::AssignmentRef,
    lease_ms: u64,
    progress: Arc<AtomicU64>,
    lost: tokio::sync::oneshot::Sender<()>,
) -> Renewal {
    let beat = Duration::from_millis((lease_ms / 4).max(200));
    let span = tracing::Span::current();
    Renewal(match KEEPER.get() {
        Some(k) => k
            .runtime
            .spawn(heartbeat(k.client.clone(), worker_id, aref, beat, progress, lost).instrument(span)),
        None => tokio::spawn(heartbeat(client.clone(), worker_id, aref, beat, progress, lost).instrument(span)),
    })
}

async fn heartbeat(
    mut client: WorkerClient<Link>,
    worker_id: u64,
    aref: pb::AssignmentRef,
    every: Duration,
    progress: Arc<AtomicU64>,
    lost: tokio::sync::oneshot::Sender<()>,
) {
    let mut beat = tokio::time::interval(every);
    beat.tick().await;
    loop {
        beat.tick().await;
        let hb = client
            .heartbeat(pb::HeartbeatRequest {
                worker_id,
                assignments: vec![aref],
            })
            .await;
        match hb {
            Ok(r) => {
                let r = r.into_inner();
                if r.revoked.contains(&aref.id) || r.unknown_worker {
                    let _ = lost.send(());
                    return;
                }
            }
            Err(s) => tracing::warn!(error = %s.message(), "heartbeat failed; continuing"),
        }
        let rows = progress.load(Ordering::Relaxed);
        if rows > 0 {
            let _ = client
                .report_progress(pb::ProgressRequest {
                    assignment: Some(aref),
                    rows,
                    detail_json: vec![],
                })
                .await;
        }
    }
}
