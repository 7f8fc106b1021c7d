//! A worker killed in the one window parallel apply adds: after the other
//! lanes committed their rows and before the fenced session committed the
//! batch's position. Run `alone()` (see `cdc_backlog.rs`).
use ferry_tests::*;
use std::time::Duration;

/// A backlog of pgbench transactions drains over 4 lanes; the worker pauses
/// before each fenced commit and is killed in the first pause that follows
/// lanes' commits: the target then holds rows past its recorded position.
/// The next stream resumes from that position and re-applies them; every
/// table ends identical (pgbench_history, keyless and in-order, catches a
/// transaction applied twice), and no change counts as one of a row the
/// target lacked: the backlog opens with deletes, whose checks must not
/// meet their own rows gone when the batch is applied again (a table with
/// a checked delete stays on the fenced session; see `pipeline/conflict`).
#[tokio::test(flavor = "multi_thread")]
async fn a_kill_between_lane_commits_and_the_fence_loses_nothing() -> anyhow::Result<()> {
    let _alone = alone().await;
    let p = PgbenchPair::new(2)?;
    let mut f = Ferry::start(2, 2000, &[])?;
    p.create_task(&f, "lanes", "full-load-and-cdc");
    f.ok(&["task", "start", "lanes"]);
    wait_caught_up(&f, "lanes");
    f.stop_stream("lanes");
    p.src
        .client("postgres")
        .await?
        .batch_execute("DELETE FROM pgbench_accounts WHERE aid % 50 = 0")
        .await?;
    finish(p.write_load(4, 10)?);
    for w in &mut f.workers {
        w.kill9();
    }
    f.add_worker(&[("FERRY_FAILPOINT", "cdc-before-commit:4000")])?;
    let paused = f.workers.len() - 1;
    f.ok(&["task", "start", "lanes"]);

    let mut window = String::new();
    f.wait_until(
        "a fenced commit after lanes committed",
        Duration::from_secs(120),
        || {
            let log = f.workers[paused].log_text();
            match log
                .lines()
                .find(|l| l.contains("lanes committed;") && log_field(l, "lanes_committed").is_some_and(|n| n != "0"))
            {
                Some(l) => {
                    window = l.to_string();
                    true
                }
                None => false,
            }
        },
    );
    let log = f.workers[paused].log_text();
    let started = log.lines().find(|l| l.contains("CDC stream started")).unwrap_or("");
    assert_eq!(
        log_field(started, "lanes").as_deref(),
        Some("4"),
        "the stream does not use 4 lanes: {started}"
    );
    f.workers[paused].kill9();
    eprintln!("killed in: {window}");

    f.add_worker(&[])?;
    wait_caught_up(&f, "lanes");
    p.assert_identical().await?;
    assert_no_apply_conflicts(&f.status("lanes").unwrap());
    Ok(())
}
