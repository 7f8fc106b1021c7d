//! The coordinator killed with SIGKILL mid-load and restarted on the same
//! data dir: the task completes from where Raft left it.
use ferry_tests::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn coordinator_restart_mid_load_completes() -> anyhow::Result<()> {
    let sc = Scenario::new().await?;
    let f0 = Ferry::start(3, 5000, &[("FERRY_FAILPOINT", "before-commit:700")]);
    let mut f = f0?;
    sc.create_task(&f, "t3");
    f.ok(&["task", "start", "t3"]);
    f.wait_until("some segments to finish", Duration::from_secs(300), || {
        f.status("t3").is_some_and(|s| {
            let done: u64 = s["tables"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["segments_done"].as_u64().unwrap())
                .sum();
            done >= 2
        })
    });
    let before = f.status("t3").unwrap();
    assert_ne!(
        before["state"], "completed",
        "load finished before the kill; the test proves nothing"
    );
    f.coordinator.as_mut().unwrap().kill9();
    std::thread::sleep(Duration::from_secs(2));
    f.start_coordinator()?;
    let (ok, out, err) = f.ferry(&["task", "wait", "t3", "--for", "full-load", "--timeout", "600"]);
    assert!(ok, "wait failed: {out}{err}");
    sc.assert_identical().await?;
    Ok(())
}
