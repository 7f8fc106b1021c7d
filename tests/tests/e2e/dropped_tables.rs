//! ChangeProcessingDdlHandlingPolicy.HandleSourceTableDropped: a table
//! dropped on the source while CDC runs leaves the task once every change
//! made before the drop is applied — dropped on the target by default, kept
//! as it was when the policy is false — and no longer holds up caught-up.
//! A table created again under its name joins the task anew (full load,
//! then its changes), whatever its new shape. PostgreSQL (the drop is found
//! in the catalog) and MariaDB (the DROP is in the binlog). A cdc-only task
//! takes in a table created on the source the same way: every row it holds
//! was written after the task began.
use ferry_tests::compare::*;
use ferry_tests::mariadb::MariaDbServer;
use ferry_tests::*;
use mysql_async::prelude::Queryable;
use std::time::Duration;

fn state_of(f: &Ferry, task: &str, table: &str) -> String {
    f.status(task)
        .and_then(|st| {
            st["tables"]
                .as_array()?
                .iter()
                .find(|t| t["name"] == table)
                .map(|t| t["state"].as_str().unwrap_or_default().to_string())
        })
        .unwrap_or_default()
}

fn wait_state(f: &Ferry, task: &str, table: &str, state: &str) {
    f.wait_until(
        &format!("{task}: {table} to be '{state}'"),
        Duration::from_secs(120),
        || state_of(f, task, table) == state,
    );
}

async fn pg_has_table(c: &tokio_postgres::Client, name: &str) -> anyhow::Result<bool> {
    Ok(c.query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
        .await?
        .get(0))
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_table_dropped_and_created_again() -> anyhow::Result<()> {
    let src = PgServer::start()?;
    let dst = PgServer::start()?;
    let s = src.client("postgres").await?;
    s.batch_execute(
        "CREATE TABLE public.t (id integer PRIMARY KEY, v text);
         CREATE TABLE public.gone (id integer PRIMARY KEY, v text);
         INSERT INTO public.t SELECT g, 'x' FROM generate_series(1, 100) g;
         INSERT INTO public.gone SELECT g, 'y' FROM generate_series(1, 100) g",
    )
    .await?;
    dst.client("postgres")
        .await?
        .batch_execute("CREATE DATABASE kept")
        .await?;
    let f = Ferry::start(2, 5000, &[])?;
    for (task, db, settings) in [
        ("dropping", "postgres", "{}"),
        (
            "keeping",
            "kept",
            r#"{"ChangeProcessingDdlHandlingPolicy": {"HandleSourceTableDropped": false}}"#,
        ),
    ] {
        create_typed(
            &f,
            task,
            &src.url("postgres"),
            &dst.url(db),
            "full-load-and-cdc",
            settings,
            &[],
        );
        f.ok(&["task", "start", task]);
        wait_caught_up(&f, task);
    }

    // Changes right before the drop must still reach a target that keeps
    // the table; writes to the other table go on throughout.
    s.batch_execute(
        "INSERT INTO public.gone VALUES (101, 'last'); UPDATE public.gone SET v = 'z' WHERE id = 1;
         DELETE FROM public.gone WHERE id = 2; DROP TABLE public.gone;
         INSERT INTO public.t VALUES (101, 'after')",
    )
    .await?;
    for task in ["dropping", "keeping"] {
        wait_state(&f, task, "gone", "Table does not exist");
        wait_caught_up(&f, task);
        let st = f.status(task).unwrap();
        assert_eq!(st["degraded"], false, "{}", st["tables_in_error"]);
        assert!(st["cdc"]["dropped"]["public.gone"].is_string(), "{}", st["cdc"]);
    }
    let d = dst.client("postgres").await?;
    let k = dst.client("kept").await?;
    assert!(!pg_has_table(&d, "public.gone").await?, "dropped on the target");
    let kept = pg_rows(&k, "SELECT id::text, v FROM public.gone ORDER BY gone.id").await?;
    assert_eq!(kept.len(), 100, "every change before the drop: {kept:?}");
    assert_eq!(kept[0], vec![Some("1".to_string()), Some("z".to_string())]);
    assert_eq!(kept[1][0].as_deref(), Some("3"));
    assert_eq!(kept[99], vec![Some("101".to_string()), Some("last".to_string())]);

    // Created again, with another shape and key: it joins both tasks anew.
    s.batch_execute(
        "CREATE TABLE public.gone (code text PRIMARY KEY, n bigint);
         INSERT INTO public.gone VALUES ('a', 1), ('b', 2)",
    )
    .await?;
    for task in ["dropping", "keeping"] {
        wait_state(&f, task, "gone", "Table completed");
    }
    s.batch_execute("INSERT INTO public.gone VALUES ('c', 3); UPDATE public.gone SET n = 20 WHERE code = 'b'")
        .await?;
    let want = pg_rows(&s, "SELECT code, n::text FROM public.gone ORDER BY code").await?;
    assert_eq!(want.len(), 3);
    for (task, c) in [("dropping", &d), ("keeping", &k)] {
        wait_caught_up(&f, task);
        let got = pg_rows(c, "SELECT code, n::text FROM public.gone ORDER BY code").await?;
        assert_eq!(got, want, "{task}: the table created again");
        let t = pg_rows(c, "SELECT count(*)::text FROM public.t").await?;
        assert_eq!(t[0][0].as_deref(), Some("101"), "{task}: t");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_table_dropped_and_created_again() -> anyhow::Result<()> {
    let src = MariaDbServer::start()?;
    let dst = MariaDbServer::start()?;
    src.client("mysql").await?.query_drop("CREATE DATABASE shop").await?;
    dst.client("mysql").await?.query_drop("CREATE DATABASE landing").await?;
    let mut s = src.client("shop").await?;
    s.query_drop(
        "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20));
         CREATE TABLE gone (id INT PRIMARY KEY, v VARCHAR(20));
         INSERT INTO t VALUES (1, 'x'), (2, 'x');
         INSERT INTO gone VALUES (1, 'y'), (2, 'y')",
    )
    .await?;
    let f = Ferry::start(1, 5000, &[])?;
    create_typed(
        &f,
        "mm",
        &src.url("shop"),
        &dst.url("landing"),
        "full-load-and-cdc",
        "{}",
        &[],
    );
    f.ok(&["task", "start", "mm"]);
    wait_caught_up(&f, "mm");

    // The DROP and a table of the same name created right after it, in one
    // go: what follows the DROP in the binlog belongs to the new table.
    s.query_drop(
        "INSERT INTO gone VALUES (3, 'last'); DROP TABLE gone;
         CREATE TABLE gone (code VARCHAR(5) PRIMARY KEY, n BIGINT);
         INSERT INTO gone VALUES ('a', 1), ('b', 2); INSERT INTO t VALUES (3, 'after')",
    )
    .await?;
    f.wait_until("gone to leave and join again", Duration::from_secs(120), || {
        f.status("mm")
            .is_some_and(|st| st["cdc"]["reloaded_for"].is_object() && state_of(&f, "mm", "gone") == "Table completed")
            && f.workers[0]
                .log_text()
                .contains("table dropped on the source leaves the stream")
    });
    s.query_drop("INSERT INTO gone VALUES ('c', 3); UPDATE gone SET n = 20 WHERE code = 'b'")
        .await?;
    wait_caught_up(&f, "mm");
    let st = f.status("mm").unwrap();
    assert_eq!(st["degraded"], false, "{}", st["tables_in_error"]);
    let mut d = dst.client("shop").await?;
    for sql in [
        "SELECT code, n FROM gone ORDER BY code",
        "SELECT id, v FROM t ORDER BY id",
    ] {
        let (a, b) = (mysql_byte_rows(&mut s, sql).await?, mysql_byte_rows(&mut d, sql).await?);
        assert_eq!(a, b, "{sql}");
    }

    // Dropped for good: the target table goes, caught-up holds.
    s.query_drop("DROP TABLE gone; INSERT INTO t VALUES (4, 'later')")
        .await?;
    wait_state(&f, "mm", "gone", "Table does not exist");
    wait_caught_up(&f, "mm");
    let left: Vec<String> = d.query("SHOW TABLES").await?;
    assert_eq!(left, ["t"], "gone dropped on the target");
    let sql = "SELECT id, v FROM t ORDER BY id";
    assert_eq!(mysql_byte_rows(&mut s, sql).await?, mysql_byte_rows(&mut d, sql).await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_table_created_on_the_source_joins_a_cdc_only_task() -> anyhow::Result<()> {
    let src = PgServer::start()?;
    let dst = PgServer::start()?;
    let s = src.client("postgres").await?;
    let d = dst.client("postgres").await?;
    // A cdc-only task's target already holds the tables (loaded by other means).
    for c in [&s, &d] {
        c.batch_execute("CREATE TABLE public.t (id integer PRIMARY KEY, v text); INSERT INTO public.t VALUES (1, 'a')")
            .await?;
    }
    let f = Ferry::start(1, 5000, &[])?;
    create_typed(
        &f,
        "changes",
        &src.url("postgres"),
        &dst.url("postgres"),
        "cdc",
        r#"{"FullLoadSettings": {"TargetTablePrepMode": "DO_NOTHING"}}"#,
        &[],
    );
    f.ok(&["task", "start", "changes"]);
    wait_caught_up(&f, "changes");
    s.batch_execute(
        "CREATE TABLE public.fresh (id integer PRIMARY KEY, v text);
         INSERT INTO public.fresh SELECT g, 'row ' || g FROM generate_series(1, 1000) g;
         INSERT INTO public.t VALUES (2, 'b')",
    )
    .await?;
    wait_state(&f, "changes", "fresh", "Table completed");
    s.batch_execute(
        "UPDATE public.fresh SET v = 'changed' WHERE id = 7; DELETE FROM public.fresh WHERE id = 8;
         INSERT INTO public.fresh VALUES (1001, 'late')",
    )
    .await?;
    wait_caught_up(&f, "changes");
    for sql in [
        "SELECT id::text, v FROM public.fresh ORDER BY fresh.id",
        "SELECT id::text, v FROM public.t ORDER BY t.id",
    ] {
        let (want, got) = (pg_rows(&s, sql).await?, pg_rows(&d, sql).await?);
        assert_eq!(want, got, "{sql}");
    }
    assert_eq!(
        pg_rows(&d, "SELECT count(*)::text FROM public.fresh").await?[0][0].as_deref(),
        Some("1000")
    );
    Ok(())
}
