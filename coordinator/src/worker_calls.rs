//! Counts of the worker calls this node answered, for `/metrics`: lease
//! renewals, leases a heartbeat learned were revoked, and reports refused
//! by the epoch fence (a zombie's, or one a lost answer made repeat).
//! Process-wide and since start: each node counts what it answered (the
//! leader answers nearly all of them), so a sum over nodes is the
//! cluster's.

use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicU64, Ordering};

static RENEWED: AtomicU64 = AtomicU64::new(0);
static REVOKED: AtomicU64 = AtomicU64::new(0);
static FENCED: AtomicU64 = AtomicU64::new(0);

/// A heartbeat renewed `renewed` leases and told of `revoked` more.
pub fn heartbeat(renewed: usize, revoked: usize) {
    RENEWED.fetch_add(renewed as u64, Ordering::Relaxed);
    REVOKED.fetch_add(revoked as u64, Ordering::Relaxed);
}

/// A report (progress, completion, failure, release) the fence refused.
pub fn fenced() {
    FENCED.fetch_add(1, Ordering::Relaxed);
}

pub fn register(reg: &mut Registry) {
    let counter = |a: &AtomicU64| ConstCounter::new(a.load(Ordering::Relaxed));
    reg.register(
        "ferry_lease_renewals",
        "Leases this node renewed on workers' heartbeats",
        counter(&RENEWED),
    );
    reg.register(
        "ferry_lease_revocations",
        "Leases a worker's heartbeat learned from this node it no longer holds",
        counter(&REVOKED),
    );
    reg.register(
        "ferry_fenced_reports",
        "Worker reports this node refused because their assignment's epoch is no longer current",
        counter(&FENCED),
    );
}
