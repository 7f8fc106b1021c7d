//! DMS ErrorBehavior settings. `RecoverableError*`: a transient error (here
//! the target server restarted in the middle of a full load) is retried
//! with backoff by default, so the load completes identical to the source;
//! with `RecoverableErrorCount: 0` the first one fails the task, naming
//! what failed. `FailOnNoTablesCaptured`: mappings that select no table
//! fail the task unless it is false. `DataErrorPolicy` / `TableErrorPolicy`:
//! a row the target cannot store is recorded, stops its table or stops the
//! task, in the full load and in CDC. `ApplyError*Policy`: a CDC change of
//! a row the target lacks, or an insert of a row it holds, is recorded and
//! counted, and acts by its policy.
use ferry_tests::compare::{mysql_rows, pg_rows, TextRows};
use ferry_tests::mariadb::MariaDbServer;
use ferry_tests::*;
use mysql_async::prelude::Queryable;
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

/// A target's `public.t` rows as `id=v`, and its CDC exceptions as
/// `reason: row`.
async fn rows_and_exceptions(dst: &PgServer) -> anyhow::Result<(TextRows, TextRows)> {
    let c = dst.client("postgres").await?;
    let ids = pg_rows(&c, "SELECT id::text || '=' || v FROM public.t ORDER BY id").await?;
    let exceptions = pg_rows(
        &c,
        "SELECT reason || ': ' || row_image FROM ferry.apply_exceptions WHERE phase = 'cdc' ORDER BY reason",
    )
    .await?;
    Ok((ids, exceptions))
}

/// A full-load-and-cdc task from `src` per `(name, settings)` in `tasks`,
/// each into a PostgreSQL target of its own, started; the targets in order.
fn start_each(f: &Ferry, src: &PgServer, tasks: &[(&str, &str)]) -> anyhow::Result<Vec<PgServer>> {
    let mut targets = vec![];
    for (task, settings) in tasks {
        let dst = PgServer::start()?;
        create_typed(
            f,
            task,
            &src.url("postgres"),
            &dst.url("postgres"),
            "full-load-and-cdc",
            settings,
            &[],
        );
        f.ok(&["task", "start", task]);
        targets.push(dst);
    }
    Ok(targets)
}

/// Once each task has caught up, runs `sql` on its target (a change Ferry
/// did not make).
async fn behind_ferrys_back(f: &Ferry, tasks: &[(&str, &str)], targets: &[PgServer], sql: &str) -> anyhow::Result<()> {
    for ((task, _), dst) in tasks.iter().zip(targets) {
        wait_caught_up(f, task);
        dst.client("postgres").await?.batch_execute(sql).await?;
    }
    Ok(())
}

/// ApplyErrorUpdatePolicy / ApplyErrorDeletePolicy / ApplyErrorEscalation:
/// an update and a delete whose rows the target lacks (deleted there
/// behind Ferry's back) change nothing and are recorded in the exceptions
/// table and counted by default; INSERT_RECORD inserts the updated row;
/// SUSPEND_TABLE stops the table, STOP_TASK the task, and the escalation
/// count fails the task once reached.
#[tokio::test(flavor = "multi_thread")]
async fn changes_of_rows_the_target_lacks_follow_the_apply_error_policies() -> anyhow::Result<()> {
    let src = PgServer::start()?;
    let s = src.client("postgres").await?;
    s.batch_execute(
        "CREATE TABLE public.t (id int PRIMARY KEY, v text);
         INSERT INTO public.t VALUES (1, 'a'), (2, 'b'), (3, 'c');",
    )
    .await?;
    // Five streams at once, one slot each.
    let f = Ferry::start(2, 5000, &[("FERRY_SLOTS", "3")])?;
    let tasks = [
        // Two lanes: an update's check can run on either.
        ("keep", r#"{"TargetMetadata": {"ParallelApplyThreads": 2}}"#),
        (
            "insert",
            r#"{"ErrorBehavior": {"ApplyErrorUpdatePolicy": "INSERT_RECORD"}}"#,
        ),
        (
            "suspend",
            r#"{"ErrorBehavior": {"ApplyErrorUpdatePolicy": "SUSPEND_TABLE"}}"#,
        ),
        ("stop", r#"{"ErrorBehavior": {"ApplyErrorDeletePolicy": "STOP_TASK"}}"#),
        (
            "escalate",
            r#"{"ErrorBehavior": {"ApplyErrorEscalationCount": 2, "ApplyErrorEscalationPolicy": "STOP_TASK"}}"#,
        ),
    ];
    let targets = start_each(&f, &src, &tasks)?;
    behind_ferrys_back(&f, &tasks, &targets, "DELETE FROM public.t WHERE id IN (2, 3)").await?;
    s.batch_execute(
        "UPDATE public.t SET v = 'changed' WHERE id = 2; DELETE FROM public.t WHERE id = 3;
         INSERT INTO public.t VALUES (4, 'd');",
    )
    .await?;
    let one = |v: &[&str]| v.iter().map(|s| vec![Some(s.to_string())]).collect::<Vec<_>>();
    let conflicts = |task: &str| {
        f.status(task)
            .map(|st| table_status(&st, "t")["apply_conflicts"].clone())
    };

    // Defaults: both recorded and counted, the task goes on.
    wait_caught_up(&f, "keep");
    f.wait_until("keep's conflicts to be counted", Duration::from_secs(30), || {
        conflicts("keep") == Some(2.into())
    });
    let (ids, exceptions) = rows_and_exceptions(&targets[0]).await?;
    assert_eq!(ids, one(&["1=a", "4=d"]));
    assert_eq!(
        exceptions,
        one(&[
            r#"delete of a row the target lacks (ApplyErrorDeletePolicy IGNORE_RECORD): "id" = '3'::integer"#,
            r#"update of a row the target lacks (ApplyErrorUpdatePolicy LOG_ERROR): "id" = '2'::integer"#,
        ])
    );

    // INSERT_RECORD: the update inserts; the delete is still a conflict.
    wait_caught_up(&f, "insert");
    f.wait_until("insert's conflict to be counted", Duration::from_secs(30), || {
        conflicts("insert") == Some(1.into())
    });
    assert_eq!(
        rows_and_exceptions(&targets[1]).await?.0,
        one(&["1=a", "2=changed", "4=d"])
    );

    // SUSPEND_TABLE: the table stops, with the row's reason.
    f.wait_until("t to be in Table error", Duration::from_secs(60), || {
        f.status("suspend")
            .is_some_and(|st| table_status(&st, "t")["state"] == "Table error")
    });
    let st = f.status("suspend").unwrap();
    let error = table_status(&st, "t")["error"].as_str().unwrap_or_default().to_string();
    assert!(error.contains("ApplyErrorUpdatePolicy SUSPEND_TABLE"), "{st}");

    // STOP_TASK: the task fails, naming the table and the row; nothing of
    // the batch is committed (row 4 is not there).
    let st = wait_failed(&f, "stop", Duration::from_secs(60));
    let error = st["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("table public.t: delete of a row the target lacks") && error.contains("STOP_TASK"),
        "{st}"
    );
    assert_eq!(rows_and_exceptions(&targets[3]).await?, (one(&["1=a"]), vec![]));

    // ApplyErrorEscalationCount 2: the two conflicts fail the task.
    let st = wait_failed(&f, "escalate", Duration::from_secs(60));
    let error = st["error"].as_str().unwrap_or_default();
    assert!(error.contains("reached ApplyErrorEscalationCount 2"), "{st}");
    Ok(())
}

/// ApplyErrorInsertPolicy: a CDC insert of a key the target holds already
/// (written there behind Ferry's back) keeps the target's row and is
/// recorded and counted under LOG_ERROR, upserts under INSERT_RECORD (and
/// when the key is absent), and fails the task under STOP_TASK.
#[tokio::test(flavor = "multi_thread")]
async fn inserts_of_rows_the_target_holds_follow_the_insert_policy() -> anyhow::Result<()> {
    let src = PgServer::start()?;
    let s = src.client("postgres").await?;
    s.batch_execute("CREATE TABLE public.t (id int PRIMARY KEY, v text); INSERT INTO public.t VALUES (1, 'a');")
        .await?;
    let f = Ferry::start(2, 5000, &[("FERRY_SLOTS", "2")])?;
    let tasks = [
        // Two lanes: a checked insert stays on the fenced session.
        (
            "log",
            r#"{"ErrorBehavior": {"ApplyErrorInsertPolicy": "LOG_ERROR"}, "TargetMetadata": {"ParallelApplyThreads": 2}}"#,
        ),
        (
            "record",
            r#"{"ErrorBehavior": {"ApplyErrorInsertPolicy": "INSERT_RECORD"}}"#,
        ),
        ("absent", "{}"),
        ("stop", r#"{"ErrorBehavior": {"ApplyErrorInsertPolicy": "STOP_TASK"}}"#),
    ];
    let targets = start_each(&f, &src, &tasks)?;
    behind_ferrys_back(&f, &tasks, &targets, "INSERT INTO public.t VALUES (5, 'target')").await?;
    s.batch_execute("INSERT INTO public.t VALUES (5, 'source'), (6, 'f'); UPDATE public.t SET v = 'b' WHERE id = 1;")
        .await?;
    let one = |v: &[&str]| v.iter().map(|s| vec![Some(s.to_string())]).collect::<Vec<_>>();
    let conflicts = |task: &str| {
        f.status(task)
            .map(|st| table_status(&st, "t")["apply_conflicts"].clone())
    };

    wait_caught_up(&f, "log");
    f.wait_until("log's conflict to be counted", Duration::from_secs(30), || {
        conflicts("log") == Some(1.into())
    });
    assert_eq!(
        rows_and_exceptions(&targets[0]).await?,
        (
            one(&["1=b", "5=target", "6=f"]),
            one(&[
                r#"insert of a row the target holds already (ApplyErrorInsertPolicy LOG_ERROR): "id" = '5'::integer"#
            ])
        )
    );
    for (i, task) in [(1, "record"), (2, "absent")] {
        wait_caught_up(&f, task);
        assert_eq!(
            rows_and_exceptions(&targets[i]).await?,
            (one(&["1=b", "5=source", "6=f"]), vec![]),
            "{task}"
        );
        assert_eq!(conflicts(task), Some(0.into()), "{task}");
    }
    let st = wait_failed(&f, "stop", Duration::from_secs(60));
    let error = st["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("table public.t: insert of a row the target holds already") && error.contains("STOP_TASK"),
        "{st}"
    );
    // Nothing of the batch is committed.
    assert_eq!(
        rows_and_exceptions(&targets[3]).await?,
        (one(&["1=a", "5=target"]), vec![])
    );
    Ok(())
}

/// The same on a MariaDB target, whose checks are `(NOT) EXISTS` queries
/// read back from a multi-statement batch.
#[tokio::test(flavor = "multi_thread")]
async fn changes_of_rows_a_mariadb_target_lacks_are_recorded_and_counted() -> anyhow::Result<()> {
    let src = PgServer::start()?;
    let my = MariaDbServer::start()?;
    let s = src.client("postgres").await?;
    s.batch_execute(
        "CREATE TABLE public.t (id int PRIMARY KEY, v text);
         INSERT INTO public.t SELECT i, 'v' || i FROM generate_series(1, 1000) i;",
    )
    .await?;
    let mut m = my.client("mysql").await?;
    m.query_drop("CREATE DATABASE landing").await?;
    let f = Ferry::start(2, 5000, &[])?;
    let settings =
        r#"{"ErrorBehavior": {"ApplyErrorDeletePolicy": "LOG_ERROR", "ApplyErrorInsertPolicy": "LOG_ERROR"}}"#;
    create_typed(
        &f,
        "my",
        &src.url("postgres"),
        &my.url("landing"),
        "full-load-and-cdc",
        settings,
        &[],
    );
    f.ok(&["task", "start", "my"]);
    wait_caught_up(&f, "my");
    m.query_drop("DELETE FROM public.t WHERE id IN (2, 500, 900)").await?;
    m.query_drop("INSERT INTO public.t VALUES (1002, 'target')").await?;
    // Hundreds of updates in one batch, three of rows the target lacks,
    // and an insert of a row it holds.
    s.batch_execute(
        "UPDATE public.t SET v = v || '!' WHERE id BETWEEN 2 AND 700;
         DELETE FROM public.t WHERE id = 900; INSERT INTO public.t VALUES (1001, 'new'), (1002, 'source');",
    )
    .await?;
    wait_caught_up(&f, "my");
    f.wait_until("the conflicts to be counted", Duration::from_secs(30), || {
        f.status("my")
            .is_some_and(|st| table_status(&st, "t")["apply_conflicts"] == 4)
    });
    let count = mysql_rows(
        &mut m,
        "SELECT CAST(COUNT(*) AS CHAR), CAST(SUM(v LIKE '%!') AS CHAR) FROM public.t",
    )
    .await?;
    // 1000 - 3 deleted on the target + 2 inserted; 697 updated (2..700
    // but 2 and 500).
    assert_eq!(count, vec![vec![Some("999".to_string()), Some("697".to_string())]]);
    let kept = mysql_rows(&mut m, "SELECT v FROM public.t WHERE id = 1002").await?;
    assert_eq!(kept, vec![vec![Some("target".to_string())]], "the target's row is kept");
    let exceptions = mysql_rows(
        &mut m,
        "SELECT CONCAT(reason, ': ', row_image) FROM ferry.apply_exceptions WHERE phase = 'cdc' ORDER BY reason, row_image",
    )
    .await?;
    let want: Vec<Vec<Option<String>>> = [
        r#"delete of a row the target lacks (ApplyErrorDeletePolicy LOG_ERROR): "id" = 900"#,
        r#"insert of a row the target holds already (ApplyErrorInsertPolicy LOG_ERROR): "id" = 1002"#,
        r#"update of a row the target lacks (ApplyErrorUpdatePolicy LOG_ERROR): "id" = 2"#,
        r#"update of a row the target lacks (ApplyErrorUpdatePolicy LOG_ERROR): "id" = 500"#,
    ]
    .iter()
    .map(|s| vec![Some(s.to_string())])
    .collect();
    assert_eq!(exceptions, want);
    Ok(())
}

/// A MariaDB source and a PostgreSQL target: per name `db` a database
/// `db` with tables `t` (rows 1, 2) and `ok` (row 1), and an empty target
/// database `db_dst`; the target's `postgres` and the source's `mysql`
/// sessions.
async fn nul_sources(
    dbs: &[&str],
) -> anyhow::Result<(MariaDbServer, PgServer, tokio_postgres::Client, mysql_async::Conn)> {
    use mysql_async::prelude::Queryable;
    let my = MariaDbServer::start()?;
    let pg = PgServer::start()?;
    let p = pg.client("postgres").await?;
    let mut m = my.client("mysql").await?;
    for db in dbs {
        m.query_drop(format!("CREATE DATABASE {db} CHARACTER SET utf8mb4"))
            .await?;
        m.query_drop(format!("CREATE TABLE {db}.t (id int PRIMARY KEY, v varchar(20))"))
            .await?;
        m.query_drop(format!("CREATE TABLE {db}.ok (id int PRIMARY KEY)"))
            .await?;
        m.query_drop(format!("INSERT INTO {db}.t VALUES (1, 'a'), (2, 'b')"))
            .await?;
        m.query_drop(format!("INSERT INTO {db}.ok VALUES (1)")).await?;
        p.batch_execute(&format!("CREATE DATABASE {db}_dst")).await?;
    }
    Ok((my, pg, p, m))
}

/// `DataErrorPolicy` and `TableErrorPolicy`, MariaDB → PostgreSQL, with a
/// value PostgreSQL cannot store (a NUL byte in text) as the row that
/// triggers each: in the full load LOG_ERROR (the default) records it and
/// completes, STOP_TASK fails the task naming the table; during CDC
/// SUSPEND_TABLE stops that table while the others go on, STOP_TASK fails
/// the task, and SUSPEND_TABLE under `TableErrorPolicy: STOP_TASK` does too.
#[tokio::test(flavor = "multi_thread")]
async fn data_and_table_error_policies_mysql_to_postgres() -> anyhow::Result<()> {
    use ferry_tests::compare::pg_rows;
    use mysql_async::prelude::Queryable;
    let (my, pg, p, mut m) = nul_sources(&["bad", "s1", "s2", "s3"]).await?;
    m.query_drop("INSERT INTO bad.t VALUES (3, CONCAT('x', CHAR(0), 'y'))")
        .await?;
    let f = Ferry::start(2, 5000, &[])?;
    let policy = |data: &str, table: &str| {
        format!(r#"{{"ErrorBehavior": {{"DataErrorPolicy": "{data}", "TableErrorPolicy": "{table}"}}}}"#)
    };

    // Full load, LOG_ERROR: the row is recorded, the rest loads.
    create_typed(&f, "logged", &my.url("bad"), &pg.url("bad_dst"), "full-load", "{}", &[]);
    f.ok(&["task", "start", "logged"]);
    let (ok, out, err) = f.ferry(&["task", "wait", "logged", "--for", "full-load", "--timeout", "120"]);
    assert!(ok, "{out}{err}");
    let d = pg.client("bad_dst").await?;
    let rows = pg_rows(
        &d,
        "SELECT count(*)::text FROM ferry.apply_exceptions WHERE task = 'logged'",
    )
    .await?;
    assert_eq!(rows[0][0].as_deref(), Some("1"));
    let rows = pg_rows(&d, "SELECT string_agg(id::text, ',' ORDER BY id) FROM bad.t").await?;
    assert_eq!(rows[0][0].as_deref(), Some("1,2"));

    // Full load, STOP_TASK: the task fails, naming the table.
    p.batch_execute("CREATE DATABASE stop_dst").await?;
    create_typed(
        &f,
        "stopload",
        &my.url("bad"),
        &pg.url("stop_dst"),
        "full-load",
        &policy("STOP_TASK", "SUSPEND_TABLE"),
        &[],
    );
    f.ok(&["task", "start", "stopload"]);
    let (ok, out, err) = f.ferry(&["task", "wait", "stopload", "--for", "full-load", "--timeout", "120"]);
    assert!(!ok, "completed: {out}");
    assert!(
        err.contains("bad.t") && err.contains("DataErrorPolicy STOP_TASK") && err.contains("NUL"),
        "{err}"
    );

    // CDC: each source gets its bad row once the task streams.
    let cases = [
        ("suspend", "s1", policy("SUSPEND_TABLE", "SUSPEND_TABLE")),
        ("stopcdc", "s2", policy("STOP_TASK", "SUSPEND_TABLE")),
        ("escalate", "s3", policy("SUSPEND_TABLE", "STOP_TASK")),
    ];
    for (task, db, settings) in &cases {
        create_typed(
            &f,
            task,
            &my.url(db),
            &pg.url(&format!("{db}_dst")),
            "full-load-and-cdc",
            settings,
            &[],
        );
        f.ok(&["task", "start", task]);
        wait_caught_up(&f, task);
        m.query_drop(format!("INSERT INTO {db}.t VALUES (3, CONCAT('x', CHAR(0), 'y'))"))
            .await?;
        m.query_drop(format!("INSERT INTO {db}.t VALUES (4, 'after')")).await?;
        m.query_drop(format!("INSERT INTO {db}.ok VALUES (2)")).await?;
    }
    // SUSPEND_TABLE: t stops (its later row does not arrive), ok goes on.
    let d1 = pg.client("s1_dst").await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while pg_rows(&d1, "SELECT count(*)::text FROM s1.ok").await?[0][0].as_deref() != Some("2") {
        assert!(std::time::Instant::now() < deadline, "ok's change did not arrive");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The table's stop reaches the coordinator with the stream's next
    // report, which may come after ok's row is committed on the target.
    f.wait_until("t to be in Table error", Duration::from_secs(30), || {
        f.status("suspend")
            .is_some_and(|st| table_status(&st, "t")["state"] == "Table error")
    });
    let st = f.status("suspend").unwrap();
    assert_eq!(st["state"], "running", "{st}");
    let t = table_status(&st, "t");
    assert!(
        t["error"].as_str().unwrap_or_default().contains("SUSPEND_TABLE"),
        "{st}"
    );
    let rows = pg_rows(&d1, "SELECT string_agg(id::text, ',' ORDER BY id) FROM s1.t").await?;
    assert_eq!(rows[0][0].as_deref(), Some("1,2"));
    // STOP_TASK, and SUSPEND_TABLE escalated by TableErrorPolicy: the task fails.
    for (task, want) in [
        ("stopcdc", "DataErrorPolicy STOP_TASK"),
        ("escalate", "TableErrorPolicy STOP_TASK"),
    ] {
        let st = wait_failed(&f, task, Duration::from_secs(60));
        let error = st["error"].as_str().unwrap_or_default();
        assert!(error.contains(want) && error.contains(".t"), "{task}: {st}");
    }
    Ok(())
}

/// `DataErrorEscalationCount` / `Policy` and `TableErrorEscalationCount`,
/// MariaDB → PostgreSQL with NUL bytes as the rows PostgreSQL cannot store:
/// a full load whose table reaches the count fails under STOP_TASK; in CDC
/// (LOG_ERROR recording each row) the table goes on below the count and is
/// suspended when it reaches it, its later changes held back while the
/// other table goes on; with `TableErrorEscalationCount: 1` that
/// suspension fails the task.
#[tokio::test(flavor = "multi_thread")]
async fn data_and_table_error_escalation_mysql_to_postgres() -> anyhow::Result<()> {
    use ferry_tests::compare::pg_rows;
    use mysql_async::prelude::Queryable;
    let (my, pg, _, mut m) = nul_sources(&["e1", "e2", "e3"]).await?;
    let bad = |db: &str, id: i32| format!("INSERT INTO {db}.t VALUES ({id}, CONCAT('x', CHAR(0), 'y'))");
    m.query_drop(bad("e1", 3)).await?;
    m.query_drop(bad("e1", 4)).await?;
    let f = Ferry::start(2, 5000, &[])?;

    // Full load: two rows reach a count of two.
    create_typed(
        &f,
        "loadesc",
        &my.url("e1"),
        &pg.url("e1_dst"),
        "full-load",
        r#"{"ErrorBehavior": {"DataErrorEscalationCount": 2, "DataErrorEscalationPolicy": "STOP_TASK"}}"#,
        &[],
    );
    f.ok(&["task", "start", "loadesc"]);
    let st = wait_failed(&f, "loadesc", Duration::from_secs(120));
    let error = st["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("e1.t") && error.contains("DataErrorEscalationCount 2"),
        "{st}"
    );
    // The same under SUSPEND_TABLE (the default): the table is set aside.
    pg.client("postgres")
        .await?
        .batch_execute("CREATE DATABASE e1s_dst")
        .await?;
    create_typed(
        &f,
        "loadsusp",
        &my.url("e1"),
        &pg.url("e1s_dst"),
        "full-load",
        r#"{"ErrorBehavior": {"DataErrorEscalationCount": 2}}"#,
        &[],
    );
    f.ok(&["task", "start", "loadsusp"]);
    let (ok, out, err) = f.ferry(&["task", "wait", "loadsusp", "--for", "full-load", "--timeout", "120"]);
    assert!(
        !ok && err.contains("e1.t") && err.contains("DataErrorEscalationCount 2"),
        "{out}{err}"
    );
    let st = f.status("loadsusp").unwrap();
    assert_ne!(st["state"], "failed", "{st}");
    assert_eq!(table_status(&st, "t")["state"], "Table error", "{st}");
    assert_eq!(table_status(&st, "ok")["state"], "Table completed", "{st}");

    // CDC: below the count the table goes on; at it, it is suspended.
    create_typed(
        &f,
        "cdcesc",
        &my.url("e2"),
        &pg.url("e2_dst"),
        "full-load-and-cdc",
        r#"{"ErrorBehavior": {"DataErrorEscalationCount": 2}}"#,
        &[],
    );
    create_typed(
        &f,
        "tableesc",
        &my.url("e3"),
        &pg.url("e3_dst"),
        "full-load-and-cdc",
        r#"{"ErrorBehavior": {"DataErrorEscalationCount": 1, "TableErrorEscalationCount": 1}}"#,
        &[],
    );
    for task in ["cdcesc", "tableesc"] {
        f.ok(&["task", "start", task]);
        wait_caught_up(&f, task);
    }
    let d = pg.client("e2_dst").await?;
    let ids = |table: &'static str| {
        let d = &d;
        async move {
            pg_rows(
                d,
                &format!("SELECT string_agg(id::text, ',' ORDER BY id) FROM e2.{table}"),
            )
            .await
        }
    };
    m.query_drop(bad("e2", 3)).await?;
    m.query_drop("INSERT INTO e2.t VALUES (4, 'after one')").await?;
    wait_caught_up(&f, "cdcesc");
    assert_eq!(
        ids("t").await?[0][0].as_deref(),
        Some("1,2,4"),
        "one error: the table goes on"
    );
    assert_eq!(f.status("cdcesc").unwrap()["state"], "running");
    m.query_drop(bad("e2", 5)).await?;
    f.wait_until("the table to be suspended", Duration::from_secs(60), || {
        f.status("cdcesc")
            .is_some_and(|st| table_status(&st, "t")["state"] == "Table error")
    });
    // The stream restarts without the table; the old one learns that it
    // was replaced at its next report (about a second).
    tokio::time::sleep(Duration::from_secs(3)).await;
    m.query_drop("INSERT INTO e2.t VALUES (6, 'held back')").await?;
    m.query_drop("INSERT INTO e2.ok VALUES (2)").await?;
    // (`task wait --for caught-up` refuses a task with a table in error.)
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while ids("ok").await?[0][0].as_deref() != Some("1,2") {
        assert!(std::time::Instant::now() < deadline, "ok's change did not arrive");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let st = f.status("cdcesc").unwrap();
    assert_eq!(st["state"], "running", "{st}");
    let t = table_status(&st, "t");
    assert!(
        t["error"]
            .as_str()
            .unwrap_or_default()
            .contains("DataErrorEscalationCount 2"),
        "{st}"
    );
    assert_eq!(
        ids("t").await?[0][0].as_deref(),
        Some("1,2,4"),
        "a suspended table applies nothing"
    );

    // One suspended table reaches TableErrorEscalationCount 1.
    m.query_drop(bad("e3", 3)).await?;
    let st = wait_failed(&f, "tableesc", Duration::from_secs(60));
    let error = st["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("TableErrorEscalationCount 1") && error.contains("e3.t"),
        "{st}"
    );
    Ok(())
}

/// A segment that recorded a row in the exceptions table and committed,
/// whose worker died before reporting: the retry finds the segment loaded
/// and reports the committed attempt's counts from its marker, so the
/// table's exceptions still count the row (they read 0 before).
#[tokio::test(flavor = "multi_thread")]
async fn a_committed_segments_exceptions_are_counted_when_its_worker_died() -> anyhow::Result<()> {
    use mysql_async::prelude::Queryable;
    let (my, pg, _p, mut m) = nul_sources(&["dead"]).await?;
    m.query_drop("INSERT INTO dead.t VALUES (3, CONCAT('x', CHAR(0), 'y'))")
        .await?;
    // t's is then the only segment.
    m.query_drop("DROP TABLE dead.ok").await?;
    // Only the doomed worker at first, so that it surely takes the segment.
    let mut f = Ferry::start(0, 3000, &[])?;
    f.add_worker(&[("FERRY_FAILPOINT", "after-commit:60000")])?;
    create_typed(&f, "dead", &my.url("dead"), &pg.url("dead_dst"), "full-load", "{}", &[]);
    f.ok(&["task", "start", "dead"]);
    let doomed = &f.workers[0];
    f.wait_until("the worker to pause after a commit", Duration::from_secs(120), || {
        doomed.log_text().contains("failpoint: pausing")
    });
    f.workers[0].kill9();
    f.add_worker(&[])?;
    let (ok, out, err) = f.ferry(&["task", "wait", "dead", "--for", "full-load", "--timeout", "300"]);
    assert!(ok, "{out}{err}");
    assert!(
        f.workers[1].log_text().contains("already committed"),
        "no segment was found committed by the killed worker; the test proves nothing"
    );
    let st = f.status("dead").unwrap();
    assert_eq!(table_status(&st, "t")["exceptions"], 1, "{st}");
    Ok(())
}

/// `DataErrorPolicy: SUSPEND_TABLE` during the full load sets the table
/// aside, not the task: the table is in `Table error` with the row's reason,
/// the other table loads, and `task wait` refuses to call the load
/// complete. With CDC the stream runs without the table, holding its
/// changes back, until the row is fixed on the source and `task
/// reload-table` loads it again, exactly.
#[tokio::test(flavor = "multi_thread")]
async fn suspend_table_during_the_full_load_sets_the_table_aside() -> anyhow::Result<()> {
    use ferry_tests::compare::pg_rows;
    use mysql_async::prelude::Queryable;
    let (my, pg, _p, mut m) = nul_sources(&["sl", "slc"]).await?;
    for db in ["sl", "slc"] {
        m.query_drop(format!("INSERT INTO {db}.t VALUES (3, CONCAT('x', CHAR(0), 'y'))"))
            .await?;
    }
    let f = Ferry::start(2, 5000, &[])?;
    let settings = r#"{"ErrorBehavior": {"DataErrorPolicy": "SUSPEND_TABLE"}}"#;

    // Full load only: ok completes, t is in error, the wait says so.
    create_typed(&f, "susp", &my.url("sl"), &pg.url("sl_dst"), "full-load", settings, &[]);
    f.ok(&["task", "start", "susp"]);
    let (ok, out, err) = f.ferry(&["task", "wait", "susp", "--for", "full-load", "--timeout", "120"]);
    assert!(!ok, "a load with a table set aside was called complete: {out}");
    assert!(
        err.contains("degraded") && err.contains("sl.t") && err.contains("DataErrorPolicy SUSPEND_TABLE"),
        "{err}"
    );
    let st = f.status("susp").unwrap();
    assert_ne!(st["state"], "failed", "{st}");
    assert_eq!(table_status(&st, "t")["state"], "Table error", "{st}");
    assert_eq!(table_status(&st, "ok")["state"], "Table completed", "{st}");
    let d = pg.client("sl_dst").await?;
    assert_eq!(
        pg_rows(&d, "SELECT count(*)::text FROM sl.ok").await?[0][0].as_deref(),
        Some("1")
    );

    // Full load and CDC: the stream goes on without t until it is reloaded.
    create_typed(
        &f,
        "suspc",
        &my.url("slc"),
        &pg.url("slc_dst"),
        "full-load-and-cdc",
        settings,
        &[],
    );
    f.ok(&["task", "start", "suspc"]);
    f.wait_until("the stream to run without t", Duration::from_secs(120), || {
        f.status("suspc")
            .is_some_and(|st| st["phase"] == "CDC" && table_status(&st, "t")["state"] == "Table error")
    });
    m.query_drop("INSERT INTO slc.t VALUES (4, 'later')").await?;
    m.query_drop("INSERT INTO slc.ok VALUES (2)").await?;
    let d = pg.client("slc_dst").await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while pg_rows(&d, "SELECT count(*)::text FROM slc.ok").await?[0][0].as_deref() != Some("2") {
        assert!(std::time::Instant::now() < deadline, "ok's change did not arrive");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let held = pg_rows(&d, "SELECT count(*)::text FROM slc.t WHERE id = 4").await?;
    assert_eq!(
        held[0][0].as_deref(),
        Some("0"),
        "t's change was applied while t is in error"
    );
    m.query_drop("DELETE FROM slc.t WHERE id = 3").await?;
    f.ok(&["task", "reload-table", "suspc", "t"]);
    f.wait_until("t to be reloaded", Duration::from_secs(120), || {
        f.status("suspc").is_some_and(|st| {
            st["degraded"] == false && table_status(&st, "t")["state"] == "Table completed" && st["phase"] == "CDC"
        })
    });
    wait_caught_up(&f, "suspc");
    let rows = pg_rows(&d, "SELECT string_agg(id::text, ',' ORDER BY id) FROM slc.t").await?;
    assert_eq!(rows[0][0].as_deref(), Some("1,2,4"));
    Ok(())
}
