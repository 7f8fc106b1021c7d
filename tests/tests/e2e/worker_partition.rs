//! The link between a streaming worker and the coordinator is cut (behind a
//! fault-injecting TCP proxy) for several leases while pgbench writes: the
//! coordinator gives the stream to another worker; the cut-off worker,
//! still connected to both databases, is a zombie until the link returns,
//! and the epoch fence keeps it from applying anything the new stream also
//! applies. When the link comes back it learns its lease is gone and stops.
//! After catch-up every pgbench table is identical (`pgbench_history`, with
//! no key, counts every change applied twice).
use ferry_tests::proxy::Proxy;
use ferry_tests::*;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_cut_off_for_longer_than_its_lease_is_fenced() -> anyhow::Result<()> {
    const LEASE_MS: u64 = 2000;
    let p = PgbenchPair::new(1)?;
    let mut f = Ferry::start(0, LEASE_MS, &[])?;
    let proxy = Proxy::start(format!("127.0.0.1:{}", f.port).parse()?)?;
    f.add_worker_at(&proxy.url(), &[])?;
    p.create_task(&f, "part", "full-load-and-cdc");
    let load = p.write_load(2, 40)?;
    f.ok(&["task", "start", "part"]);
    f.wait_until("the cut-off-to-be worker to stream", Duration::from_secs(300), || {
        f.status("part").is_some_and(|s| s["cdc"]["streaming"] == true)
    });
    f.add_worker(&[])?;
    tokio::time::sleep(Duration::from_secs(2)).await;

    proxy.cut();
    let cut = Instant::now();
    f.wait_until(
        "the stream to move to the other worker",
        Duration::from_secs(60),
        || f.workers[1].log_text().contains("CDC stream started"),
    );
    eprintln!("stream granted again {:?} after the cut", cut.elapsed());
    // The zombie keeps its database sessions for several leases more.
    while cut.elapsed() < Duration::from_millis(4 * LEASE_MS) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    proxy.restore();
    f.wait_until("the zombie to learn its lease is gone", Duration::from_secs(60), || {
        f.workers[0].log_text().contains("lease lost")
    });
    finish(load);
    wait_caught_up(&f, "part");
    p.assert_identical().await?;
    Ok(())
}
