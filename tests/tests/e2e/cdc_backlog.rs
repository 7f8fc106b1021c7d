//! A CDC backlog drained in set-based batches while the worker applying it
//! is killed: nothing lost or applied twice. Run `alone()`, so that its
//! drain does not run beside other tests on these 2 cores.
use ferry_tests::*;
use std::time::Duration;

/// A backlog piles up while the task is stopped, then drains in set-based
/// batches (each key's changes folded, written as set statements); the
/// worker applying it is killed twice mid-drain. After catching up every
/// table is identical row for row (pgbench_history, keyless, catches a
/// change applied twice or lost).
#[tokio::test(flavor = "multi_thread")]
async fn a_backlog_drained_in_sets_survives_worker_kills() -> anyhow::Result<()> {
    let _alone = alone().await;
    let p = PgbenchPair::new(2)?;
    let mut f = Ferry::start(3, 2000, &[])?;
    p.create_task(&f, "drain", "full-load-and-cdc");
    f.ok(&["task", "start", "drain"]);
    wait_caught_up(&f, "drain");
    f.stop_stream("drain");
    finish(p.write_load(4, 20)?);
    let src = p.src.client("postgres").await?;
    let end: String = src.query_one("SELECT pg_current_wal_lsn()::text", &[]).await?.get(0);
    for w in &f.workers {
        std::fs::write(&w.log, "")?;
    }
    f.ok(&["task", "start", "drain"]);

    let mut killed_behind = 0;
    for _ in 0..2 {
        let mut streaming = None;
        f.wait_until("a worker to stream", Duration::from_secs(60), || {
            streaming = f.cdc_worker();
            streaming.is_some()
        });
        let i = streaming.unwrap();
        let log = f.workers[i].log_text();
        let started = log.lines().rfind(|l| l.contains("CDC stream started")).unwrap_or("");
        assert_eq!(
            log_field(started, "set_based").as_deref(),
            Some("true"),
            "the stream does not apply in sets: {started}"
        );
        std::thread::sleep(Duration::from_millis(1500));
        let applied = f
            .status("drain")
            .and_then(|s| s["cdc"]["applied_lsn"].as_str().map(String::from));
        let behind: bool = match applied {
            Some(a) => src
                .query_one("SELECT $1::text::pg_lsn < $2::text::pg_lsn", &[&a, &end])
                .await?
                .get(0),
            None => true,
        };
        f.workers[i].kill9();
        std::fs::write(&f.workers[i].log, "")?;
        f.add_worker(&[])?;
        killed_behind += behind as u32;
    }
    assert!(killed_behind > 0, "no kill landed before the backlog was drained");
    wait_caught_up(&f, "drain");
    p.assert_identical().await?;
    Ok(())
}
