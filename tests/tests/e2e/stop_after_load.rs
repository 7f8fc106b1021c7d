//! `FullLoadSettings.StopTaskCachedChangesNotApplied` / `Applied`: a
//! full-load-and-cdc task stops once its full load is complete, before or
//! after applying the changes made on the source while it loaded. The loads
//! pause before committing (failpoint) while the test changes the source, so
//! those changes are exactly the cached ones; `task start` then goes on.
use ferry_tests::compare::pg_rows;
use ferry_tests::*;
use std::time::Duration;

async fn stops_after_load(setting: &str, applied: bool) -> anyhow::Result<()> {
    let src = PgServer::start()?;
    let dst = PgServer::start()?;
    let s = src.client("postgres").await?;
    s.batch_execute(
        "CREATE TABLE public.t (id int PRIMARY KEY, v text);
         INSERT INTO public.t SELECT i, 'v' || i FROM generate_series(1, 1000) i;",
    )
    .await?;
    let f = Ferry::start(1, 5000, &[("FERRY_FAILPOINT", "before-commit:3000")])?;
    create_typed(
        &f,
        "stop",
        &src.url("postgres"),
        &dst.url("postgres"),
        "full-load-and-cdc",
        &format!(r#"{{"FullLoadSettings": {{"{setting}": true}}}}"#),
        &[],
    );
    f.ok(&["task", "start", "stop"]);
    f.wait_until("the load to pause", Duration::from_secs(60), || {
        f.workers[0].log_text().contains("failpoint: pausing")
    });
    // Cached changes: made after the load's snapshot, before the stream.
    s.batch_execute(
        "INSERT INTO public.t SELECT i, 'new' FROM generate_series(1001, 1010) i;
         UPDATE public.t SET v = 'changed' WHERE id = 1; DELETE FROM public.t WHERE id = 2;",
    )
    .await?;
    f.wait_until("the task to stop", Duration::from_secs(120), || {
        f.status("stop").is_some_and(|st| st["state"] == "stopped")
    });
    let st = f.status("stop").unwrap();
    assert!(st["error"].as_str().unwrap_or_default().contains(setting), "{st}");
    assert_eq!(st["full_load_done"], true, "{st}");
    let d = dst.client("postgres").await?;
    let got = pg_rows(
        &d,
        "SELECT count(*)::text, (SELECT v FROM public.t WHERE id = 1), (SELECT count(*)::text FROM public.t WHERE id = 2) FROM public.t",
    )
    .await?;
    let want = if applied {
        ["1009", "changed", "0"]
    } else {
        ["1000", "v1", "1"]
    };
    assert_eq!(
        got[0]
            .iter()
            .map(|v| v.as_deref().unwrap_or_default())
            .collect::<Vec<_>>(),
        want,
        "{st}"
    );
    // It stays stopped; started again, it streams on.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(f.status("stop").unwrap()["state"], "stopped");
    f.ok(&["task", "start", "stop"]);
    s.batch_execute("INSERT INTO public.t VALUES (5000, 'later')").await?;
    wait_caught_up(&f, "stop");
    assert_tables_identical(&src, &dst, &["t"]).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn stops_before_applying_the_cached_changes() -> anyhow::Result<()> {
    stops_after_load("StopTaskCachedChangesNotApplied", false).await
}

#[tokio::test(flavor = "multi_thread")]
async fn stops_after_applying_the_cached_changes() -> anyhow::Result<()> {
    stops_after_load("StopTaskCachedChangesApplied", true).await
}
