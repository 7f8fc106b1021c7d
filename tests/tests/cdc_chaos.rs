//! CDC with pgbench writing while the apply worker is killed (kill -9)
//! several times, the source server is restarted and the target server is
//! restarted: after catching up, every table is identical row for row.
use ferry_tests::*;
use std::time::Duration;

fn cdc_worker(f: &Ferry) -> Option<usize> {
    // The worker whose log shows the newest stream start holds the stream.
    f.workers
        .iter()
        .enumerate()
        .filter_map(|(i, w)| {
            let log = w.log_text();
            log.rfind("CDC stream started").map(|_| (i, log.len()))
        })
        .max_by_key(|(_, n)| *n)
        .map(|(i, _)| i)
}

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
            streaming = cdc_worker(&f);
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
    Ok(())
}

/// A backlog piles up while the task is stopped, then drains in set-based
/// batches (each key's changes folded, written as set statements); the
/// worker applying it is killed twice mid-drain. After catching up every
/// table is identical row for row (pgbench_history, keyless, catches a
/// change applied twice or lost).
#[tokio::test(flavor = "multi_thread")]
async fn a_backlog_drained_in_sets_survives_worker_kills() -> anyhow::Result<()> {
    let p = PgbenchPair::new(2)?;
    let mut f = Ferry::start(3, 2000, &[])?;
    p.create_task(&f, "drain", "full-load-and-cdc");
    f.ok(&["task", "start", "drain"]);
    wait_caught_up(&f, "drain");
    f.ok(&["task", "stop", "drain"]);
    f.wait_until("the stream to stop", Duration::from_secs(60), || {
        f.status("drain").is_some_and(|s| s["cdc"]["streaming"] == false)
    });
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
            streaming = cdc_worker(&f);
            streaming.is_some()
        });
        let i = streaming.unwrap();
        let log = f.workers[i].log_text();
        // The log's fields are coloured: `set_based<ESC>[2m=<ESC>[0mtrue`.
        let started = log.lines().rfind(|l| l.contains("CDC stream started")).unwrap_or("");
        assert!(
            started.split("set_based").nth(1).is_some_and(|rest| rest
                .trim_start_matches(|c: char| c != 't' && c != 'f')
                .starts_with("true")),
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
