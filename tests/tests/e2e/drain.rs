//! Draining: a worker told to stop (SIGTERM) hands its CDC stream back at
//! once — another worker resumes it from the target's checkpoint well
//! before the lease would have expired — and lets a segment load finish or
//! hands it back at the end of its grace period. Nothing lost or doubled
//! (`pgbench_history` has no key: a doubled change shows as an extra row).
use ferry_tests::*;
use std::process::Command;
use std::time::{Duration, Instant};

fn sigterm(p: &Proc) {
    let ok = Command::new("kill")
        .args(["-TERM", &p.child.id().to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill -TERM failed");
}

/// Waits (at most `limit`) for the process to exit; answers how it ended.
fn exits_within(p: &mut Proc, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(st) = p.child.try_wait().expect("try_wait") {
            return st;
        }
        assert!(
            start.elapsed() < limit,
            "the worker did not exit within {limit:?} of SIGTERM:\n{}",
            p.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_draining_worker_hands_its_stream_to_another() -> anyhow::Result<()> {
    let pair = PgbenchPair::new(2)?;
    // A long lease: a stream moved within seconds moved by hand-back.
    let mut f = Ferry::start(2, 20_000, &[])?;
    pair.create_task(&f, "drain", "full-load-and-cdc");
    f.ok(&["task", "start", "drain"]);
    f.ok(&["task", "wait", "drain", "--for", "full-load", "--timeout", "300"]);
    let load = pair.write_load(2, 25)?;
    f.wait_until("the CDC stream to start", Duration::from_secs(60), || {
        f.cdc_worker().is_some()
    });
    std::thread::sleep(Duration::from_secs(3));
    let holder = f.cdc_worker().expect("a stream holder");
    let other = 1 - holder;
    let starts_before = f.workers[other].log_text().matches("CDC stream started").count();
    let t0 = Instant::now();
    sigterm(&f.workers[holder]);
    let st = exits_within(&mut f.workers[holder], Duration::from_secs(10));
    let exited = t0.elapsed();
    assert!(st.success(), "a drained worker exits 0, not {st}");
    let log = f.workers[holder].log_text();
    assert!(log.contains("handing the assignment back"), "{log}");
    f.wait_until("the other worker to resume the stream", Duration::from_secs(60), || {
        f.workers[other].log_text().matches("CDC stream started").count() > starts_before
    });
    let moved = t0.elapsed();
    println!("drained worker exited after {exited:?}; the stream resumed elsewhere after {moved:?} (lease 20 s)");
    assert!(
        moved < Duration::from_secs(10),
        "the stream moved only after {moved:?}: by lease expiry, not hand-back"
    );
    finish(load);
    wait_caught_up(&f, "drain");
    pair.assert_identical().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_draining_worker_hands_a_stuck_segment_back_after_its_grace() -> anyhow::Result<()> {
    let pair = PgbenchPair::new(2)?;
    let mut f = Ferry::start(0, 20_000, &[])?;
    // Copies a segment, then pauses a minute before committing it.
    f.add_worker(&[("FERRY_FAILPOINT", "before-commit:60000"), ("FERRY_DRAIN_GRACE", "2")])?;
    pair.create_task(&f, "grace", "full-load");
    f.ok(&["task", "start", "grace"]);
    f.wait_until("a segment to pause before its commit", Duration::from_secs(120), || {
        f.workers[0].log_text().contains("failpoint: pausing")
    });
    f.add_worker(&[])?;
    let t0 = Instant::now();
    sigterm(&f.workers[0]);
    let st = exits_within(&mut f.workers[0], Duration::from_secs(10));
    assert!(st.success(), "a drained worker exits 0, not {st}");
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_secs(2),
        "handed back before its grace ended ({waited:?})"
    );
    assert!(f.workers[0].log_text().contains("handing the assignment back"));
    f.ok(&["task", "wait", "grace", "--for", "completed", "--timeout", "300"]);
    let took = t0.elapsed();
    println!("drained after {waited:?}; the task completed {took:?} after SIGTERM (lease 20 s)");
    pair.assert_identical().await?;
    Ok(())
}
