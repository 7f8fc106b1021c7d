//! ErrorBehavior's `RecoverableError*` settings: a transient error (here the
//! target server restarted in the middle of a full load) is retried with
//! backoff by default, so the load completes identical to the source; with
//! `RecoverableErrorCount: 0` the first one fails the task, naming what
//! failed.
use ferry_tests::*;
use std::time::Duration;

/// A source table big enough that its load, one segment at a time, is
/// still running when the target restarts.
async fn pair() -> anyhow::Result<(PgServer, PgServer)> {
    let src = PgServer::start()?;
    let dst = PgServer::start()?;
    src.client("postgres")
        .await?
        .batch_execute(
            "CREATE TABLE public.big (id bigint PRIMARY KEY, a text, b text);
             INSERT INTO public.big SELECT i, md5(i::text), md5((i * 7)::text) FROM generate_series(1, 1500000) i;
             ANALYZE;",
        )
        .await?;
    Ok((src, dst))
}

/// Starts the task and restarts the target once rows are loading; returns
/// whether the load was still running when the restart began.
fn restart_target_mid_load(f: &Ferry, dst: &PgServer, task: &str) -> anyhow::Result<bool> {
    f.ok(&["task", "start", task]);
    f.wait_until("rows to be loading", Duration::from_secs(120), || {
        f.status(task)
            .is_some_and(|st| st["rows_loaded"].as_u64().unwrap_or(0) > 0 || st["state"] == "failed")
    });
    let running = f.status(task).is_some_and(|st| st["full_load_done"] == false);
    dst.restart()?;
    Ok(running)
}

const SLOW: &str = r#""Ferry": {"SegmentTargetBytes": 1048576, "SplitTablesLargerThan": 0},
                      "FullLoadSettings": {"MaxFullLoadSubTasks": 1}"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_target_restarted_mid_load_is_retried_not_failed() -> anyhow::Result<()> {
    let (src, dst) = pair().await?;
    let f = Ferry::start(1, 5000, &[])?;
    create_full_load(
        &f,
        "retry",
        &src.url("postgres"),
        &dst.url("postgres"),
        &format!("{{{SLOW}}}"),
        &[],
    );
    assert!(
        restart_target_mid_load(&f, &dst, "retry")?,
        "the load finished before the restart; the test proves nothing"
    );
    let (ok, out, err) = f.ferry(&["task", "wait", "retry", "--for", "full-load", "--timeout", "300"]);
    assert!(ok, "a restarted target failed the load: {out}{err}");
    assert_tables_identical(&src, &dst, &["big"]).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn no_recoverable_retries_fail_the_task_at_the_first_transient_error() -> anyhow::Result<()> {
    let (src, dst) = pair().await?;
    let f = Ferry::start(1, 5000, &[])?;
    create_full_load(
        &f,
        "once",
        &src.url("postgres"),
        &dst.url("postgres"),
        &format!(r#"{{{SLOW}, "ErrorBehavior": {{"RecoverableErrorCount": 0}}}}"#),
        &[],
    );
    assert!(
        restart_target_mid_load(&f, &dst, "once")?,
        "the load finished before the restart; the test proves nothing"
    );
    let (ok, out, err) = f.ferry(&["task", "wait", "once", "--for", "full-load", "--timeout", "120"]);
    assert!(
        !ok,
        "the load survived a transient error it was told not to retry: {out}"
    );
    assert!(err.contains("task once failed") && err.contains("public.big"), "{err}");
    Ok(())
}
