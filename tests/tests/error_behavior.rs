//! DMS ErrorBehavior settings. `RecoverableError*`: a transient error (here
//! the target server restarted in the middle of a full load) is retried
//! with backoff by default, so the load completes identical to the source;
//! with `RecoverableErrorCount: 0` the first one fails the task, naming
//! what failed. `FailOnNoTablesCaptured`: mappings that select no table
//! fail the task unless it is false.
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

#[tokio::test(flavor = "multi_thread")]
async fn mappings_that_capture_no_table_fail_unless_told_otherwise() -> anyhow::Result<()> {
    let src = PgServer::start()?;
    let dst = PgServer::start()?;
    src.client("postgres")
        .await?
        .batch_execute("CREATE TABLE public.t (id int PRIMARY KEY); INSERT INTO public.t VALUES (1);")
        .await?;
    let dir = tempfile::tempdir()?;
    let mappings = dir.path().join("none.json");
    std::fs::write(
        &mappings,
        r#"{"rules": [{"rule-type": "selection", "rule-id": "1", "rule-name": "none", "rule-action": "include",
            "object-locator": {"schema-name": "nothing_here", "table-name": "%"}}]}"#,
    )?;
    let mappings = mappings.to_str().unwrap();
    let f = Ferry::start(1, 5000, &[])?;
    create_full_load(
        &f,
        "strict",
        &src.url("postgres"),
        &dst.url("postgres"),
        "{}",
        &["--table-mappings", mappings],
    );
    f.ok(&["task", "start", "strict"]);
    let (ok, out, err) = f.ferry(&["task", "wait", "strict", "--for", "full-load", "--timeout", "60"]);
    assert!(!ok && err.contains("select no table"), "{out}{err}");

    let lenient = r#"{"ErrorBehavior": {"FailOnNoTablesCaptured": false}}"#;
    create_full_load(
        &f,
        "empty",
        &src.url("postgres"),
        &dst.url("postgres"),
        lenient,
        &["--table-mappings", mappings],
    );
    f.ok(&["task", "start", "empty"]);
    let (ok, out, err) = f.ferry(&["task", "wait", "empty", "--for", "full-load", "--timeout", "60"]);
    assert!(ok, "a task told to run without tables failed: {out}{err}");
    let st = f.status("empty").unwrap();
    assert_eq!(st["tables_total"], 0, "{st}");
    assert_eq!(st["state"], "completed", "{st}");

    // With CDC it runs with no table and is caught up.
    create_typed(
        &f,
        "idle",
        &src.url("postgres"),
        &dst.url("postgres"),
        "full-load-and-cdc",
        lenient,
        &["--table-mappings", mappings],
    );
    f.ok(&["task", "start", "idle"]);
    wait_caught_up(&f, "idle");
    assert_eq!(f.status("idle").unwrap()["state"], "running");
    // A table the mappings select, created later, joins the task.
    let s = src.client("postgres").await?;
    s.batch_execute(
        "CREATE SCHEMA nothing_here; CREATE TABLE nothing_here.late (id int PRIMARY KEY, v text);
         INSERT INTO nothing_here.late VALUES (1, 'a'), (2, 'b');",
    )
    .await?;
    f.wait_until("the new table to join", Duration::from_secs(120), || {
        f.status("idle").is_some_and(|st| st["tables_total"] == 1)
    });
    s.batch_execute("UPDATE nothing_here.late SET v = 'c' WHERE id = 2")
        .await?;
    wait_caught_up(&f, "idle");
    assert_tables_identical(&src, &dst, &["nothing_here.late"]).await?;
    Ok(())
}

/// ApplyErrorUpdatePolicy: an update whose row the target lacks (deleted
/// there behind Ferry's back) changes nothing by default; with
/// INSERT_RECORD the new row is inserted.
#[tokio::test(flavor = "multi_thread")]
async fn an_update_of_a_missing_row_inserts_it_only_with_insert_record() -> anyhow::Result<()> {
    let src = PgServer::start()?;
    let (keep, insert) = (PgServer::start()?, PgServer::start()?);
    let s = src.client("postgres").await?;
    s.batch_execute(
        "CREATE TABLE public.t (id int PRIMARY KEY, v text);
         INSERT INTO public.t VALUES (1, 'a'), (2, 'b'), (3, 'c');",
    )
    .await?;
    let f = Ferry::start(2, 5000, &[])?;
    let url = src.url("postgres");
    create_typed(&f, "keep", &url, &keep.url("postgres"), "full-load-and-cdc", "{}", &[]);
    create_typed(
        &f,
        "insert",
        &url,
        &insert.url("postgres"),
        "full-load-and-cdc",
        r#"{"ErrorBehavior": {"ApplyErrorUpdatePolicy": "INSERT_RECORD"}}"#,
        &[],
    );
    for task in ["keep", "insert"] {
        f.ok(&["task", "start", task]);
        wait_caught_up(&f, task);
    }
    for dst in [&keep, &insert] {
        dst.client("postgres")
            .await?
            .batch_execute("DELETE FROM public.t WHERE id = 2")
            .await?;
    }
    s.batch_execute("UPDATE public.t SET v = 'changed' WHERE id = 2; INSERT INTO public.t VALUES (4, 'd');")
        .await?;
    for task in ["keep", "insert"] {
        wait_caught_up(&f, task);
    }
    let ids = |c: tokio_postgres::Client| async move {
        let rows = c
            .query("SELECT id::text || '=' || v FROM public.t ORDER BY id", &[])
            .await?;
        anyhow::Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>())
    };
    assert_eq!(ids(keep.client("postgres").await?).await?, ["1=a", "3=c", "4=d"]);
    assert_eq!(
        ids(insert.client("postgres").await?).await?,
        ["1=a", "2=changed", "3=c", "4=d"]
    );
    Ok(())
}
