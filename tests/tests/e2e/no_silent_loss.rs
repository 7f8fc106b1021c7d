//! Ways a migration could report success while the target differs from the
//! source, each shown not to: a table whose changes stopped blocks
//! caught-up, cutover and validation; segments cut in the source's key
//! order load every row whatever order the target's collation gives the
//! same keys.
use ferry_tests::compare::{mysql_rows, pg_rows};
use ferry_tests::mariadb::MariaDbServer;
use ferry_tests::*;
use mysql_async::prelude::Queryable;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn a_table_in_error_blocks_caught_up_cutover_and_validate() -> anyhow::Result<()> {
    let my = MariaDbServer::start()?;
    let pg = PgServer::start()?;
    let mut m = my.client("mysql").await?;
    m.query_drop("CREATE DATABASE shop").await?;
    let mut m = my.client("shop").await?;
    m.query_drop(
        "CREATE TABLE a (id INT PRIMARY KEY, v INT); CREATE TABLE b (id INT PRIMARY KEY, v INT);
         INSERT INTO a VALUES (1, 1), (2, 2); INSERT INTO b VALUES (1, 1), (2, 2)",
    )
    .await?;
    let f = Ferry::start(1, 5000, &[])?;
    create_typed(
        &f,
        "deg",
        &my.url("shop"),
        &pg.url("postgres"),
        "full-load-and-cdc",
        r#"{"ValidationSettings": {"EnableValidation": true},
            "ControlTablesSettings": {"SuspendedTablesTableEnabled": true},
            "ChangeProcessingDdlHandlingPolicy": {"HandleSourceTableAltered": false}}"#,
        &[],
    );
    f.ok(&["task", "start", "deg"]);
    wait_caught_up(&f, "deg");
    assert_eq!(f.status("deg").unwrap()["degraded"], false);

    // A column added on the source stops b's changes (not reloaded by
    // itself here); a's keep flowing.
    m.query_drop("ALTER TABLE b ADD COLUMN w INT; INSERT INTO b VALUES (3, 3, 3); INSERT INTO a VALUES (3, 3)")
        .await?;
    f.wait_until("table b to stop", Duration::from_secs(60), || {
        f.status("deg")
            .is_some_and(|st| table_status(&st, "b")["state"] == "Table error")
    });
    let st = f.status("deg").unwrap();
    assert_eq!(st["degraded"], true, "{st}");
    assert_eq!(st["tables_in_error"][0]["table"], "shop.b", "{st}");
    assert!(
        st["tables_in_error"][0]["error"].as_str().unwrap().contains("DDL"),
        "{st}"
    );
    let out = f.ok(&["task", "status", "deg"]);
    assert!(out.contains("DEGRADED") && out.contains("shop.b"), "{out}");

    for args in [
        vec!["task", "wait", "deg", "--for", "caught-up", "--timeout", "60"],
        vec!["cutover", "deg", "--dry-run"],
        vec!["validate", "deg"],
    ] {
        let (ok, out, err) = f.ferry(&args);
        assert!(!ok, "{args:?} succeeded while table b is stopped: {out}");
        assert!(
            err.contains("degraded") && err.contains("shop.b") && err.contains("DDL"),
            "{args:?}: {err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
    // a still follows the source.
    f.wait_until("a's insert on the target", Duration::from_secs(60), || {
        psql_count(&pg, "SELECT count(*) FROM shop.a") == 3
    });
    // b is in the target's suspended tables, written with the batch that
    // stopped it (not only when a stream next starts).
    assert_eq!(
        psql_count(
            &pg,
            "SELECT count(*) FROM ferry.suspended_tables WHERE task = 'deg' AND table_name = 'shop.b' AND reason <> ''"
        ),
        1
    );

    // Reloaded, b takes its new column and rejoins the stream.
    f.ok(&["task", "reload-table", "deg", "b"]);
    m.query_drop("INSERT INTO b VALUES (4, 4, 4); UPDATE b SET w = 1 WHERE id = 1")
        .await?;
    f.wait_until("b to be reloaded", Duration::from_secs(120), || {
        f.status("deg")
            .is_some_and(|st| st["degraded"] == false && st["phase"] == "CDC")
    });
    m.query_drop("INSERT INTO b VALUES (5, 5, 5)").await?;
    wait_caught_up(&f, "deg");
    assert_eq!(
        psql_count(&pg, "SELECT count(*) FROM ferry.suspended_tables WHERE task = 'deg'"),
        0
    );
    let want = mysql_rows(&mut m, "SELECT id, v, w FROM b ORDER BY id").await?;
    let got = pg_rows(
        &pg.client("postgres").await?,
        "SELECT id::text, v::text, w::text FROM shop.b ORDER BY b.id",
    )
    .await?;
    assert_eq!(want.len(), 5);
    assert!(want == got, "b after its reload: {want:?} vs {got:?}");
    Ok(())
}

/// A count through psql, for the synchronous `wait_until`.
fn psql_count(pg: &PgServer, sql: &str) -> i64 {
    let out = std::process::Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &pg.port.to_string(),
            "-U",
            "postgres",
            "-Atc",
            sql,
            "postgres",
        ])
        .output()
        .expect("psql");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(-1)
}

/// Keys whose order differs between byte order and a linguistic one:
/// upper and lower case mixed, punctuation first or last.
const KEYS: &str =
    "CASE WHEN i % 3 = 0 THEN upper(md5(i::text)) WHEN i % 3 = 1 THEN '_' || md5(i::text) ELSE md5(i::text) END";

/// Task `words` loading table `words` in segments of 64 KiB (at least 5),
/// waited for until its full load is complete.
fn load_words_in_small_segments(source: &str, target: &str, kind: &str, settings: &str) -> anyhow::Result<Ferry> {
    let f = Ferry::start(2, 5000, &[])?;
    let sep = if settings.is_empty() { "" } else { ", " };
    let settings =
        format!(r#"{{{settings}{sep}"Ferry": {{"SegmentTargetBytes": 65536, "SplitTablesLargerThan": 0}}}}"#);
    create_typed(&f, "words", source, target, kind, &settings, &[]);
    f.ok(&["task", "start", "words"]);
    let (ok, out, err) = f.ferry(&["task", "wait", "words", "--for", "full-load", "--timeout", "300"]);
    assert!(ok, "{out}{err}");
    let st = f.status("words").unwrap();
    let segments = table_status(&st, "words")["segments_total"].as_u64().unwrap();
    assert!(segments >= 5, "{st}");
    Ok(f)
}

#[tokio::test(flavor = "multi_thread")]
async fn segments_cut_in_source_order_load_every_row_under_another_collation() -> anyhow::Result<()> {
    let src = PgServer::start()?;
    let dst = PgServer::start()?;
    src.client("postgres")
        .await?
        .batch_execute(&format!(
            "CREATE TABLE public.words (k text COLLATE \"C\" PRIMARY KEY, n integer NOT NULL);
             INSERT INTO public.words SELECT {KEYS}, i FROM generate_series(1, 20000) i;
             ANALYZE public.words;"
        ))
        .await?;
    // The target exists already (DO_NOTHING), ordered by ICU, and holds
    // rows of its own: one the source replaces, one it does not have.
    let d = dst.client("postgres").await?;
    d.batch_execute(
        "CREATE TABLE public.words (k text COLLATE \"und-x-icu\" PRIMARY KEY, n integer NOT NULL);
         INSERT INTO public.words VALUES (md5('2'), -1), ('only on the target', -2);",
    )
    .await?;
    // Held to the end: a failing assertion keeps the processes' logs.
    let _f = load_words_in_small_segments(
        &src.url("postgres"),
        &dst.url("postgres"),
        "full-load",
        r#""FullLoadSettings": {"TargetTablePrepMode": "DO_NOTHING"}"#,
    )?;
    let s = src.client("postgres").await?;
    let want = pg_rows(&s, "SELECT k, n::text FROM public.words ORDER BY k COLLATE \"C\"").await?;
    let got = pg_rows(
        &d,
        "SELECT k, n::text FROM public.words WHERE k <> 'only on the target' ORDER BY k COLLATE \"C\"",
    )
    .await?;
    assert_eq!(got.len(), 20000, "rows lost or doubled on the target");
    assert!(got == want, "the target's rows differ from the source's");
    let kept = pg_rows(&d, "SELECT n::text FROM public.words WHERE k = 'only on the target'").await?;
    assert_eq!(
        kept,
        vec![vec![Some("-2".to_string())]],
        "DO_NOTHING keeps the target's own rows"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn case_insensitive_mysql_keys_load_every_row_into_postgres() -> anyhow::Result<()> {
    let my = MariaDbServer::start()?;
    let pg = PgServer::start()?;
    let mut m = my.client("mysql").await?;
    m.query_drop("CREATE DATABASE shop").await?;
    let mut m = my.client("shop").await?;
    m.query_drop(
        "CREATE TABLE words (k VARCHAR(40) COLLATE utf8mb4_general_ci PRIMARY KEY, n INT NOT NULL);
         INSERT INTO words SELECT CASE WHEN seq % 3 = 0 THEN UPPER(MD5(seq)) WHEN seq % 3 = 1 THEN CONCAT('_', MD5(seq)) ELSE MD5(seq) END, seq
           FROM seq_1_to_20000;
         ANALYZE TABLE words",
    )
    .await?;
    // CDC tasks create their tables with keys before the load.
    let f = load_words_in_small_segments(&my.url("shop"), &pg.url("postgres"), "full-load-and-cdc", "")?;
    m.query_drop("INSERT INTO words VALUES ('after the load', 0)").await?;
    wait_caught_up(&f, "words");
    let want = mysql_rows(
        &mut m,
        "SELECT k, CAST(n AS CHAR) FROM words ORDER BY k COLLATE utf8mb4_bin",
    )
    .await?;
    let p = pg.client("postgres").await?;
    let got = pg_rows(&p, "SELECT k::text, n::text FROM shop.words ORDER BY k COLLATE \"C\"").await?;
    assert_eq!(got.len(), want.len(), "rows lost or doubled on the target");
    assert!(got == want, "the target's rows differ from the source's");
    Ok(())
}

/// Waits for TASK's full load, which must fail with TABLE's error saying
/// `why`; returns the table's status.
fn full_load_fails(f: &Ferry, task: &str, table: &str, why: &str) -> serde_json::Value {
    let (ok, out, err) = f.ferry(&["task", "wait", task, "--for", "full-load", "--timeout", "300"]);
    assert!(
        !ok,
        "{task}: {table} counted as loaded although it differs from the source: {out}"
    );
    let t = table_status(&f.status(task).unwrap(), table);
    assert!(t["error"].as_str().unwrap_or("").contains(why), "{t}\n{err}");
    t
}

/// The safety net behind the above: once every segment of a table has
/// committed, the target's row count must equal what the segments loaded.
/// A row written into the target table by someone else during the load
/// makes the table fail loudly instead of counting as complete.
#[tokio::test(flavor = "multi_thread")]
async fn a_table_whose_row_count_differs_after_the_load_fails() -> anyhow::Result<()> {
    let p = PgbenchPair::new(1)?;
    let f = Ferry::start(1, 5000, &[("FERRY_FAILPOINT", "before-commit:1000")])?;
    create_full_load(
        &f,
        "count",
        &p.src.url("postgres"),
        &p.dst.url("postgres"),
        r#"{"Ferry": {"SegmentTargetBytes": 2000000, "SplitTablesLargerThan": 0}}"#,
        &[],
    );
    f.ok(&["task", "start", "count"]);
    f.wait_until("a segment to reach its commit", Duration::from_secs(120), || {
        f.workers[0].log_text().contains("failpoint: pausing")
    });
    p.dst
        .client("postgres")
        .await?
        .batch_execute("INSERT INTO pgbench_accounts VALUES (999999999, 1, 0, 'not from the source')")
        .await?;
    let accounts = full_load_fails(&f, "count", "pgbench_accounts", "rows were lost or doubled");
    assert_eq!(accounts["state"], "Table error", "{accounts}");
    Ok(())
}

/// Every row the source sends for a segment is stored or recorded as an
/// exception: a target that drops rows on its own (a trigger returning
/// NULL) fails the segment instead of reporting the table loaded.
#[tokio::test(flavor = "multi_thread")]
async fn a_target_that_drops_rows_fails_the_segment() -> anyhow::Result<()> {
    let my = MariaDbServer::start()?;
    let pg = PgServer::start()?;
    let mut m = my.client("mysql").await?;
    m.query_drop("CREATE DATABASE shop").await?;
    let mut m = my.client("shop").await?;
    m.query_drop("CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t SELECT seq, seq FROM seq_1_to_100")
        .await?;
    pg.client("postgres")
        .await?
        .batch_execute(
            "CREATE SCHEMA shop; CREATE TABLE shop.t (id integer PRIMARY KEY, v integer);
             CREATE FUNCTION shop.drop_even() RETURNS trigger LANGUAGE plpgsql AS
               $$ BEGIN IF NEW.id % 2 = 0 THEN RETURN NULL; END IF; RETURN NEW; END $$;
             CREATE TRIGGER drop_even BEFORE INSERT ON shop.t FOR EACH ROW EXECUTE FUNCTION shop.drop_even();",
        )
        .await?;
    let f = Ferry::start(1, 5000, &[])?;
    create_full_load(
        &f,
        "drops",
        &my.url("shop"),
        &pg.url("postgres"),
        r#"{"FullLoadSettings": {"TargetTablePrepMode": "TRUNCATE_BEFORE_LOAD"}}"#,
        &[],
    );
    f.ok(&["task", "start", "drops"]);
    full_load_fails(&f, "drops", "t", "the source sent 100 storable rows");
    Ok(())
}

/// The same between PostgreSQL servers, where COPY bytes pass through
/// unparsed: the rows the source sent (one protocol message each) must all
/// be stored, in binary and in text COPY (an array of a user-defined type
/// is copied as text).
#[tokio::test(flavor = "multi_thread")]
async fn a_postgres_target_that_drops_rows_fails_a_passthrough_segment() -> anyhow::Result<()> {
    let src = PgServer::start()?;
    let dst = PgServer::start()?;
    src.client("postgres")
        .await?
        .batch_execute(
            "CREATE TYPE public.mood AS ENUM ('ok', 'bad');
             CREATE TABLE public.t (id integer PRIMARY KEY, v integer);
             CREATE TABLE public.u (id integer PRIMARY KEY, m public.mood[]);
             INSERT INTO public.t SELECT i, i FROM generate_series(1, 100) i;
             INSERT INTO public.u SELECT i, '{ok}' FROM generate_series(1, 100) i;",
        )
        .await?;
    dst.client("postgres")
        .await?
        .batch_execute(
            "CREATE TYPE public.mood AS ENUM ('ok', 'bad');
             CREATE TABLE public.t (id integer PRIMARY KEY, v integer);
             CREATE TABLE public.u (id integer PRIMARY KEY, m public.mood[]);
             CREATE FUNCTION public.drop_even() RETURNS trigger LANGUAGE plpgsql AS
               $$ BEGIN IF NEW.id % 2 = 0 THEN RETURN NULL; END IF; RETURN NEW; END $$;
             CREATE TRIGGER drop_even BEFORE INSERT ON public.t FOR EACH ROW EXECUTE FUNCTION public.drop_even();
             CREATE TRIGGER drop_even BEFORE INSERT ON public.u FOR EACH ROW EXECUTE FUNCTION public.drop_even();",
        )
        .await?;
    let f = Ferry::start(1, 5000, &[])?;
    let dir = tempfile::tempdir()?;
    // One task per table: binary COPY (t), text COPY (u).
    for table in ["t", "u"] {
        let mappings = dir.path().join(format!("{table}.json"));
        std::fs::write(
            &mappings,
            format!(
                r#"{{"rules": [{{"rule-type": "selection", "rule-id": "1", "rule-name": "one", "rule-action": "include",
                    "object-locator": {{"schema-name": "public", "table-name": "{table}"}}}}]}}"#
            ),
        )?;
        create_full_load(
            &f,
            table,
            &src.url("postgres"),
            &dst.url("postgres"),
            r#"{"FullLoadSettings": {"TargetTablePrepMode": "TRUNCATE_BEFORE_LOAD"}}"#,
            &["--table-mappings", mappings.to_str().unwrap()],
        );
        f.ok(&["task", "start", table]);
        full_load_fails(
            &f,
            table,
            table,
            "the source sent 100 rows for this range but the target stored 50",
        );
    }
    Ok(())
}

/// A column retyped on a PostgreSQL source while CDC runs (numeric(10,2) →
/// numeric(12,4)) stops its table instead of squeezing the new values into
/// the target's old type (1.2345 would land as 1.23), and the task then is
/// not caught up.
#[tokio::test(flavor = "multi_thread")]
async fn a_column_retyped_on_the_source_stops_its_table() -> anyhow::Result<()> {
    let src = PgServer::start()?;
    let dst = PgServer::start()?;
    let s = src.client("postgres").await?;
    s.batch_execute(
        "CREATE TABLE public.prices (id integer PRIMARY KEY, n numeric(10,2));
         CREATE TABLE public.other (id integer PRIMARY KEY);
         INSERT INTO public.prices VALUES (1, 1.5), (2, 2.5);",
    )
    .await?;
    let f = Ferry::start(1, 5000, &[])?;
    create_typed(
        &f,
        "retype",
        &src.url("postgres"),
        &dst.url("postgres"),
        "full-load-and-cdc",
        r#"{"ChangeProcessingDdlHandlingPolicy": {"HandleSourceTableAltered": false}}"#,
        &[],
    );
    f.ok(&["task", "start", "retype"]);
    wait_caught_up(&f, "retype");
    s.batch_execute(
        "ALTER TABLE public.prices ALTER COLUMN n TYPE numeric(12,4);
         UPDATE public.prices SET n = 1.2345 WHERE id = 1;
         INSERT INTO public.other VALUES (1);",
    )
    .await?;
    let (ok, out, err) = f.ferry(&["task", "wait", "retype", "--for", "caught-up", "--timeout", "120"]);
    assert!(!ok, "caught up while prices holds a value its old type cannot: {out}");
    assert!(
        err.contains("public.prices") && err.contains("changed type") && err.contains("numeric(12,4)"),
        "{err}"
    );
    let d = dst.client("postgres").await?;
    let n: Vec<String> = d
        .query("SELECT n::text FROM public.prices WHERE id = 1", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(n, ["1.50"], "a value of the new type reached the old column");

    // Reloaded, the table takes the new type and the exact values.
    f.ok(&["task", "reload-table", "retype", "public.prices"]);
    s.batch_execute("UPDATE public.prices SET n = 2.0001 WHERE id = 2")
        .await?;
    f.wait_until("prices to be reloaded", Duration::from_secs(120), || {
        f.status("retype")
            .is_some_and(|st| st["degraded"] == false && st["phase"] == "CDC")
    });
    s.batch_execute("INSERT INTO public.prices VALUES (3, 3.0003)").await?;
    wait_caught_up(&f, "retype");
    let sql = "SELECT id::text, n::text, pg_typeof(n)::text, format_type(a.atttypid, a.atttypmod)
                 FROM public.prices, pg_attribute a
                WHERE a.attrelid = 'public.prices'::regclass AND a.attname = 'n' ORDER BY prices.id";
    let (want, got) = (pg_rows(&s, sql).await?, pg_rows(&d, sql).await?);
    assert_eq!(want.len(), 3);
    assert!(want == got, "prices after its reload: {want:?} vs {got:?}");
    Ok(())
}
