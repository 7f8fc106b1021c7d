//! CDC with pgbench writing while the apply worker is killed (kill -9)
//! several times, the source server is restarted and the target server is
//! restarted: after catching up, every table is identical row for row.
use ferry_tests::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn cdc_survives_worker_kills_and_database_restarts() -> anyhow::Result<()> {
    let p = PgbenchPair::new(4)?;
    let mut f = Ferry::start(3, 2000, &[])?;
    p.create_task(&f, "chaos", "full-load-and-cdc");
    let load = p.write_load(3, 30)?;
    f.ok(&["task", "start", "chaos"]);
    let (ok, out, err) = f.ferry(&["task", "wait", "chaos", "--for", "full-load", "--timeout", "600"]);
    assert!(ok, "full-load wait failed: {out}{err}");

    // Kill whichever worker holds the stream, three times, while pgbench writes.
    let mut killed = 0;
    for _ in 0..3 {
        let mut streaming = None;
        f.wait_until("a worker to stream", Duration::from_secs(60), || {
            streaming = f.cdc_worker();
            streaming.is_some() && f.status("chaos").is_some_and(|s| s["cdc"]["streaming"] == true)
        });
        let i = streaming.unwrap();
        std::thread::sleep(Duration::from_secs(2));
        f.workers[i].kill9();
        // Truncate its log so it is not picked again, and replace it.
        std::fs::write(&f.workers[i].log, "")?;
        f.add_worker(&[])?;
        killed += 1;
    }
    finish(load);
    assert_eq!(killed, 3);

    // Source restart mid-CDC, with writes before and after it.
    let load = p.write_load(2, 6)?;
    std::thread::sleep(Duration::from_secs(3));
    p.src.restart()?;
    finish(load);
    finish(p.write_load(2, 5)?);

    // Target restart mid-CDC.
    let load = p.write_load(2, 8)?;
    std::thread::sleep(Duration::from_secs(3));
    p.dst.restart()?;
    finish(load);

    wait_caught_up(&f, "chaos");
    p.assert_identical().await?;
    let st = f.status("chaos").unwrap();
    assert_eq!(st["state"], "running", "{st}");
    assert_no_apply_conflicts(&st);
    Ok(())
}

/// The worker holding the exported load snapshot dies mid-load while
/// pgbench writes: the partly loaded table is emptied and reloaded in a new
/// snapshot, and the handoff to CDC is still exact.
#[tokio::test(flavor = "multi_thread")]
async fn snapshot_holder_killed_mid_load() -> anyhow::Result<()> {
    let p = PgbenchPair::new(4)?;
    // Slow segment commits keep the load going long enough to kill mid-way.
    let slow = [("FERRY_FAILPOINT", "before-commit:700")];
    let mut f = Ferry::start(3, 2000, &slow)?;
    p.create_task(&f, "holder", "full-load-and-cdc");
    let load = p.write_load(2, 40)?;
    f.ok(&["task", "start", "holder"]);
    let mut holder = None;
    f.wait_until(
        "the snapshot holder and a committed segment",
        Duration::from_secs(120),
        || {
            holder = f
                .workers
                .iter()
                .position(|w| w.log_text().contains("holding the load snapshot"));
            let loaded = f.status("holder").is_some_and(|s| {
                s["tables"].as_array().is_some_and(|ts| {
                    ts.iter().any(|t| {
                        t["name"] == "pgbench_accounts"
                            && t["segments_done"].as_u64().unwrap_or(0) >= 1
                            && t["segments_done"] != t["segments_total"]
                    })
                })
            });
            holder.is_some() && loaded
        },
    );
    let h = holder.unwrap();
    f.workers[h].kill9();
    f.add_worker(&slow)?;
    let (ok, out, err) = f.ferry(&["task", "wait", "holder", "--for", "full-load", "--timeout", "600"]);
    assert!(ok, "full-load wait failed: {out}{err}");
    finish(load);
    wait_caught_up(&f, "holder");
    p.assert_identical().await?;
    let reset = f
        .workers
        .iter()
        .any(|w| w.log_text().contains("table emptied for reload"));
    assert!(
        reset,
        "the partly loaded table was not reset after the snapshot was lost"
    );
    Ok(())
}
