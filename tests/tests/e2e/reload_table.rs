//! `ferry task reload-table`: a table stopped by DDL on the source is
//! loaded again in its new shape from a new snapshot, under writes and with
//! a worker killed midway, and
//! rejoins the change stream exactly (the target then equals the source,
//! row for row, and the task is caught up again). With
//! HandleSourceTableAltered (the default) that happens by itself, across
//! engines too.
use ferry_tests::compare::{mysql_rows, pg_rows};
use ferry_tests::mariadb::MariaDbServer;
use ferry_tests::*;
use mysql_async::prelude::Queryable;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Runs the transaction `txn(i)` on the source for i = 1, 2, ... until
/// `stop`; answers how many ran.
fn spawn_writer(
    w: tokio_postgres::Client,
    stop: Arc<AtomicBool>,
    txn: impl Fn(i32) -> String + Send + 'static,
) -> tokio::task::JoinHandle<i32> {
    tokio::spawn(async move {
        let mut i: i32 = 0;
        while !stop.load(Ordering::Relaxed) {
            i += 1;
            w.batch_execute(&txn(i)).await.expect("source write");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        i
    })
}

/// Source and target rows equal, else the first rows that differ.
fn assert_same(what: &str, want: &[Vec<Option<String>>], got: &[Vec<Option<String>>]) {
    if want != got {
        let only = |x: &[Vec<Option<String>>], y: &[Vec<Option<String>>]| -> Vec<Vec<Option<String>>> {
            x.iter().filter(|r| !y.contains(r)).take(5).cloned().collect()
        };
        panic!(
            "{what}: {} source rows, {} target rows; only on the source: {:?}; only on the target: {:?}",
            want.len(),
            got.len(),
            only(want, got),
            only(got, want)
        );
    }
}

fn tables_in_error(f: &Ferry, task: &str) -> Vec<String> {
    f.status(task).map_or(vec![], |st| {
        st["tables_in_error"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| t["table"].as_str().unwrap_or_default().to_string())
            .collect()
    })
}

/// Columns of `table` on a server as (name, type), in order.
async fn columns(c: &tokio_postgres::Client, table: &str) -> anyhow::Result<Vec<(String, String)>> {
    Ok(c.query(
        "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute
          WHERE attrelid = $1::text::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        &[&table],
    )
    .await?
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_table_altered_on_the_source_is_reloaded_in_its_new_shape_under_writes() -> anyhow::Result<()> {
    let src = PgServer::start()?;
    let dst = PgServer::start()?;
    let s = src.client("postgres").await?;
    s.batch_execute(
        "CREATE TABLE public.t (id integer PRIMARY KEY, a text, b integer, old integer);
         INSERT INTO public.t SELECT i, md5(i::text), i % 100, i FROM generate_series(1, 20000) i;
         CREATE TABLE public.u (id integer PRIMARY KEY, v integer);
         INSERT INTO public.u SELECT i, i FROM generate_series(1, 100) i;",
    )
    .await?;
    let mut f = Ferry::start(2, 3000, &[])?;
    create_typed(
        &f,
        "rl",
        &src.url("postgres"),
        &dst.url("postgres"),
        "full-load-and-cdc",
        r#"{"Ferry": {"SegmentTargetBytes": 131072, "SplitTablesLargerThan": 0},
            "ChangeProcessingDdlHandlingPolicy": {"HandleSourceTableAltered": false}}"#,
        &[],
    );
    f.ok(&["task", "start", "rl"]);
    wait_caught_up(&f, "rl");
    let segments = table_status(&f.status("rl").unwrap(), "t")["segments_total"]
        .as_u64()
        .unwrap();
    assert!(segments >= 3, "t should load in several segments, got {segments}");

    // Every kind of column change at once; existing rows get the new
    // column's default on the source, which no change record carries.
    s.batch_execute(
        "ALTER TABLE public.t ADD COLUMN c numeric(12,4) DEFAULT 1.5, DROP COLUMN old,
             ALTER COLUMN a TYPE varchar(100);
         ALTER TABLE public.t RENAME COLUMN b TO b2;
         UPDATE public.t SET c = id * 1.0001 WHERE id % 7 = 0;
         INSERT INTO public.u VALUES (101, 101);",
    )
    .await?;
    f.wait_until("t to stop", Duration::from_secs(60), || {
        tables_in_error(&f, "rl") == ["public.t"]
    });
    let (ok, _, err) = f.ferry(&["task", "wait", "rl", "--for", "caught-up", "--timeout", "30"]);
    assert!(!ok && err.contains("public.t"), "{err}");

    // Writes to both tables all through the reload.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_writer(src.client("postgres").await?, stop.clone(), |i| {
        format!(
            "BEGIN;
             INSERT INTO public.t (id, a, b2, c) VALUES ({n}, 'new {i}', {i}, {i}.25);
             UPDATE public.t SET a = a || '+', c = c + 1 WHERE id = {k};
             DELETE FROM public.t WHERE id = {d};
             UPDATE public.u SET v = v + 1 WHERE id = {u};
             COMMIT;",
            n = 100_000 + i,
            k = (i * 37) % 20000 + 1,
            d = (i * 101) % 20000 + 1,
            u = i % 100 + 1,
        )
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let out = f.ok(&["task", "reload-table", "rl", "t"]);
    assert!(out.contains("reload"), "{out}");
    // A worker dies in the middle of it; another one joins.
    tokio::time::sleep(Duration::from_millis(150)).await;
    f.workers[0].kill9();
    f.add_worker(&[])?;
    // A second request while the first runs is refused, in one line.
    let (ok, _, err) = f.ferry(&["task", "reload-table", "rl", "public.t"]);
    assert!(!ok && err.contains("already being reloaded"), "{err}");
    f.wait_until("t to be reloaded", Duration::from_secs(240), || {
        f.status("rl").is_some_and(|st| {
            st["degraded"] == false && table_status(&st, "t")["state"] == "Table completed" && st["phase"] == "CDC"
        })
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let writes = writer.await?;
    assert!(writes > 20, "the writer ran only {writes} transactions");
    wait_caught_up(&f, "rl");

    let d = dst.client("postgres").await?;
    assert_eq!(
        columns(&d, "public.t").await?,
        [
            ("id".to_string(), "integer".to_string()),
            ("a".into(), "character varying(100)".into()),
            ("b2".into(), "integer".into()),
            ("c".into(), "numeric(12,4)".into()),
        ]
    );
    for sql in [
        "SELECT id::text, a::text, b2::text, c::text FROM public.t ORDER BY t.id",
        "SELECT id::text, v::text FROM public.u ORDER BY u.id",
    ] {
        let (want, got) = (pg_rows(&s, sql).await?, pg_rows(&d, sql).await?);
        assert_same(sql, &want, &got);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn reload_table_refuses_what_it_cannot_do_in_one_line() -> anyhow::Result<()> {
    let src = PgServer::start()?;
    let dst = PgServer::start()?;
    let s = src.client("postgres").await?;
    s.batch_execute("CREATE TABLE public.t (id integer PRIMARY KEY); INSERT INTO public.t VALUES (1)")
        .await?;
    let f = Ferry::start(1, 5000, &[])?;
    create_typed(
        &f,
        "fl",
        &src.url("postgres"),
        &dst.url("postgres"),
        "full-load",
        "{}",
        &[],
    );
    f.ok(&["task", "start", "fl"]);
    create_typed(
        &f,
        "cdc",
        &src.url("postgres"),
        &dst.url("postgres"),
        "full-load-and-cdc",
        r#"{"FullLoadSettings": {"TargetTablePrepMode": "DO_NOTHING"}}"#,
        &[],
    );
    f.ok(&["task", "start", "cdc"]);
    wait_caught_up(&f, "cdc");
    for (args, says) in [
        (vec!["task", "reload-table", "nosuch", "t"], "not found"),
        (vec!["task", "reload-table", "cdc", "nosuch"], "has no table nosuch"),
        (vec!["task", "reload-table", "fl", "t"], "full-load-and-cdc"),
    ] {
        let (ok, out, err) = f.ferry(&args);
        assert!(!ok, "{args:?} succeeded: {out}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
    Ok(())
}

/// PostgreSQL to MariaDB, HandleSourceTableAltered left at its default: a
/// column added with a default (existing rows take it on the source without
/// any change record), one retyped, one dropped and one renamed are carried
/// by reloading the table through the type mapping; the other table never
/// stops.
#[tokio::test(flavor = "multi_thread")]
async fn an_altered_table_is_reloaded_by_itself_across_engines() -> anyhow::Result<()> {
    let pg = PgServer::start()?;
    let my = MariaDbServer::start()?;
    let p = pg.client("postgres").await?;
    p.batch_execute(
        "CREATE SCHEMA shop;
         CREATE TABLE shop.items (id integer PRIMARY KEY, name text, qty smallint, note text);
         INSERT INTO shop.items SELECT i, 'item ' || i, i % 300, 'n' FROM generate_series(1, 2000) i;
         CREATE TABLE shop.other (id integer PRIMARY KEY, v integer);
         INSERT INTO shop.other VALUES (1, 1);",
    )
    .await?;
    my.client("mysql").await?.query_drop("CREATE DATABASE landing").await?;
    let f = Ferry::start(2, 5000, &[])?;
    create_typed(
        &f,
        "auto",
        &pg.url("postgres"),
        &my.url("landing"),
        "full-load-and-cdc",
        "{}",
        &[],
    );
    f.ok(&["task", "start", "auto"]);
    wait_caught_up(&f, "auto");

    p.batch_execute(
        "ALTER TABLE shop.items ADD COLUMN price numeric(10,2) NOT NULL DEFAULT 9.99,
             ALTER COLUMN qty TYPE integer, DROP COLUMN note;
         ALTER TABLE shop.items RENAME COLUMN name TO title;
         UPDATE shop.items SET qty = 100000, price = 1.25 WHERE id = 1;
         INSERT INTO shop.items VALUES (3000, 'new', 70000, 2.50);
         INSERT INTO shop.other VALUES (2, 2);",
    )
    .await?;
    f.wait_until("items to be reloaded", Duration::from_secs(180), || {
        f.status("auto").is_some_and(|st| {
            st["cdc"]["reloaded_for"].get("shop.items").is_some() && st["phase"] == "CDC" && st["degraded"] == false
        })
    });
    p.batch_execute("UPDATE shop.items SET price = price + 1 WHERE id % 100 = 0; INSERT INTO shop.other VALUES (3, 3)")
        .await?;
    wait_caught_up(&f, "auto");

    let mut m = my.client("shop").await?;
    let types: Vec<(String, String)> = m
        .query("SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'shop' AND TABLE_NAME = 'items' ORDER BY ORDINAL_POSITION")
        .await?;
    assert_eq!(
        types,
        [
            ("id".to_string(), "int(11)".to_string()),
            ("qty".into(), "int(11)".into()),
            ("title".into(), "longtext".into()),
            ("price".into(), "decimal(10,2)".into()),
        ]
    );
    for (pg_sql, my_sql) in [
        (
            "SELECT id::text, title, qty::text, price::text FROM shop.items ORDER BY items.id",
            "SELECT id, title, qty, price FROM items ORDER BY id",
        ),
        (
            "SELECT id::text, v::text FROM shop.other ORDER BY other.id",
            "SELECT id, v FROM other ORDER BY id",
        ),
    ] {
        let (want, got) = (pg_rows(&p, pg_sql).await?, mysql_rows(&mut m, my_sql).await?);
        assert_same(pg_sql, &want, &got);
    }
    Ok(())
}

/// A table created on the source while CDC runs, which the selection rules
/// select, joins the task: created on the target, loaded, then streamed,
/// with writes to it and to the other tables all along; one the rules do
/// not select stays out. A table dropped and created again is reloaded; one
/// dropped for good leaves the task.
#[tokio::test(flavor = "multi_thread")]
async fn a_table_created_on_the_source_joins_the_task() -> anyhow::Result<()> {
    let src = PgServer::start()?;
    let dst = PgServer::start()?;
    let s = src.client("postgres").await?;
    s.batch_execute(
        "CREATE TABLE public.old (id integer PRIMARY KEY, v integer);
         INSERT INTO public.old SELECT i, i FROM generate_series(1, 100) i;",
    )
    .await?;
    let dir = tempfile::tempdir()?;
    let mappings = dir.path().join("mappings.json");
    std::fs::write(
        &mappings,
        r#"{"rules": [
            {"rule-type": "selection", "rule-id": "1", "rule-name": "all", "rule-action": "include",
             "object-locator": {"schema-name": "public", "table-name": "%"}},
            {"rule-type": "selection", "rule-id": "2", "rule-name": "scratch", "rule-action": "exclude",
             "object-locator": {"schema-name": "public", "table-name": "scratch%"}}]}"#,
    )?;
    let f = Ferry::start(2, 5000, &[])?;
    create_typed(
        &f,
        "grow",
        &src.url("postgres"),
        &dst.url("postgres"),
        "full-load-and-cdc",
        "{}",
        &["--table-mappings", mappings.to_str().unwrap()],
    );
    f.ok(&["task", "start", "grow"]);
    wait_caught_up(&f, "grow");

    s.batch_execute(
        "CREATE TABLE public.fresh (id integer PRIMARY KEY, v text NOT NULL);
         INSERT INTO public.fresh SELECT i, 'row ' || i FROM generate_series(1, 5000) i;
         CREATE TABLE public.scratch_1 (id integer PRIMARY KEY);",
    )
    .await?;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_writer(src.client("postgres").await?, stop.clone(), |i| {
        format!(
            "BEGIN;
             INSERT INTO public.fresh VALUES ({n}, 'new {i}');
             UPDATE public.fresh SET v = v || '+' WHERE id = {k};
             DELETE FROM public.fresh WHERE id = {d};
             UPDATE public.old SET v = v + 1 WHERE id = {o};
             COMMIT;",
            n = 10_000 + i,
            k = (i * 37) % 5000 + 1,
            d = (i * 101) % 5000 + 1,
            o = i % 100 + 1,
        )
    });
    f.wait_until("fresh to join", Duration::from_secs(120), || {
        f.status("grow").is_some_and(|st| {
            st["phase"] == "CDC"
                && st["tables"].as_array().is_some_and(|ts| {
                    ts.iter()
                        .any(|t| t["name"] == "fresh" && t["state"] == "Table completed")
                })
        })
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let writes = writer.await?;
    assert!(writes > 20, "the writer ran only {writes} transactions");
    wait_caught_up(&f, "grow");

    let st = f.status("grow").unwrap();
    let names: Vec<&str> = st["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["old", "fresh"], "{st}");
    let d = dst.client("postgres").await?;
    for sql in [
        "SELECT id::text, v FROM public.fresh ORDER BY fresh.id",
        "SELECT id::text, v::text FROM public.old ORDER BY old.id",
    ] {
        let (want, got) = (pg_rows(&s, sql).await?, pg_rows(&d, sql).await?);
        assert_same(sql, &want, &got);
    }
    let scratch: i64 = d
        .query_one("SELECT count(*) FROM pg_class WHERE relname = 'scratch_1'", &[])
        .await?
        .get(0);
    assert_eq!(scratch, 0, "a table the rules exclude reached the target");

    // Dropped and created again: the new table is outside the publication,
    // and pgoutput would say nothing of its rows; it is reloaded instead.
    s.batch_execute(
        "DROP TABLE public.old;
         CREATE TABLE public.old (id integer PRIMARY KEY, v integer);
         INSERT INTO public.old SELECT i, -i FROM generate_series(1, 50) i;",
    )
    .await?;
    f.wait_until("old to be reloaded", Duration::from_secs(120), || {
        f.status("grow").is_some_and(|st| {
            st["cdc"]["reloaded_for"].get("public.old").is_some() && st["phase"] == "CDC" && st["degraded"] == false
        })
    });
    s.batch_execute("INSERT INTO public.old VALUES (51, -51); UPDATE public.old SET v = 0 WHERE id = 1")
        .await?;
    wait_caught_up(&f, "grow");
    let sql = "SELECT id::text, v::text FROM public.old ORDER BY old.id";
    let (want, got) = (pg_rows(&s, sql).await?, pg_rows(&d, sql).await?);
    assert_eq!(want.len(), 51);
    assert_same(sql, &want, &got);

    // Dropped for good: the table leaves the task, and the target
    // (HandleSourceTableDropped; tests/tests/e2e/dropped_tables.rs).
    s.batch_execute("DROP TABLE public.fresh").await?;
    f.wait_until("fresh to leave", Duration::from_secs(60), || {
        f.status("grow")
            .is_some_and(|st| table_status(&st, "fresh")["state"] == "Table does not exist")
    });
    wait_caught_up(&f, "grow");
    assert!(tables_in_error(&f, "grow").is_empty());
    let fresh: i64 = d
        .query_one("SELECT count(*) FROM pg_class WHERE relname = 'fresh'", &[])
        .await?
        .get(0);
    assert_eq!(fresh, 0, "fresh is still on the target");
    Ok(())
}
