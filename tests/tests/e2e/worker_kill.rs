//! A worker killed with SIGKILL in the middle of a segment (rows copied, not
//! committed) and another killed after committing but before reporting: the
//! segments complete elsewhere, nothing is lost or duplicated.
use ferry_tests::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn killed_workers_lose_and_duplicate_nothing() -> anyhow::Result<()> {
    let sc = Scenario::new().await?;
    let mut f = Ferry::start(2, 3000, &[])?;
    f.add_worker(&[("FERRY_FAILPOINT", "before-commit:60000")])?;
    f.add_worker(&[("FERRY_FAILPOINT", "after-commit:60000")])?;
    sc.create_task(&f, "t2");
    f.ok(&["task", "start", "t2"]);
    for i in [2, 3] {
        let w = &f.workers[i];
        f.wait_until("a worker to pause mid-segment", Duration::from_secs(300), || {
            w.log_text().contains("failpoint: pausing")
        });
    }
    f.workers[2].kill9();
    f.workers[3].kill9();
    let (ok, out, err) = f.ferry(&["task", "wait", "t2", "--for", "full-load", "--timeout", "600"]);
    assert!(ok, "wait failed: {out}{err}");
    let already = f.workers[..2]
        .iter()
        .any(|w| w.log_text().contains("already committed"));
    assert!(
        already,
        "the segment committed by the killed worker was not recognised as loaded"
    );
    sc.assert_identical().await?;
    Ok(())
}
