//! DMS source filters (`filters` on selection rules) through the full load,
//! CDC and validation: while random writes move rows into and out of each
//! filter (and, PostgreSQL → PostgreSQL, the streaming worker is killed
//! twice), the target must end up holding exactly the source rows the
//! filter passes. The expected rows are selected on the source with SQL
//! written here by hand, not by Ferry's filter code.
use ferry_tests::compare::*;
use ferry_tests::mariadb::MariaDbServer;
use ferry_tests::*;
use mysql_async::prelude::Queryable;
use serde_json::Value;
use std::time::{Duration, Instant};

/// Waits until no table's validation is pending; none may report a
/// difference, since the target holds exactly the filtered rows.
fn assert_validates_clean(f: &Ferry, task: &str, keyless: &[&str]) {
    f.wait_until("validation to finish", Duration::from_secs(240), || {
        f.status(task).is_some_and(|st| {
            for t in st["tables"].as_array().into_iter().flatten() {
                assert_ne!(t["validation"]["state"], "Mismatched records", "false difference: {st}");
            }
            st["tables"]
                .as_array()
                .is_some_and(|ts| ts.iter().all(|t| t["validation"]["state"] != "Pending records"))
        })
    });
    let st = f.status(task).unwrap();
    for t in st["tables"].as_array().unwrap() {
        let name = t["name"].as_str().unwrap_or_default();
        let want = if keyless.contains(&name) {
            "No primary key"
        } else {
            "Validated"
        };
        assert_eq!(t["validation"]["state"], want, "{name}: {st}");
    }
}

const PG_MAPPINGS: &str = r#"{"rules": [
  {"rule-type": "selection", "rule-id": "1", "rule-name": "all", "rule-action": "include",
   "object-locator": {"schema-name": "shop", "table-name": "%"}},
  {"rule-type": "selection", "rule-id": "2", "rule-name": "orders", "rule-action": "explicit",
   "object-locator": {"schema-name": "shop", "table-name": "orders"},
   "filters": [
     {"filter-type": "source", "column-name": "region", "filter-conditions": [
        {"filter-operator": "eq", "value": "north"}, {"filter-operator": "eq", "value": "west"}]},
     {"filter-type": "source", "column-name": "amount", "filter-conditions": [
        {"filter-operator": "between", "start-value": "10", "end-value": 500}]},
     {"filter-type": "source", "column-name": "placed", "filter-conditions": [
        {"filter-operator": "gte", "value": "2024-03-01"}]}]},
  {"rule-type": "selection", "rule-id": "3", "rule-name": "people", "rule-action": "explicit",
   "object-locator": {"schema-name": "shop", "table-name": "people"},
   "filters": [
     {"filter-type": "source", "column-name": "age", "filter-conditions": [
        {"filter-operator": "ste", "value": "17"}, {"filter-operator": "gte", "value": "65"},
        {"filter-operator": "null"}]},
     {"filter-type": "source", "column-name": "name", "filter-conditions": [
        {"filter-operator": "noteq", "value": "bob"}]},
     {"filter-type": "source", "column-name": "score", "filter-conditions": [
        {"filter-operator": "notbetween", "start-value": "100", "end-value": "200"}]},
     {"filter-type": "source", "column-name": "seen", "filter-conditions": [
        {"filter-operator": "lte", "value": "2024-06-30 12:00:00"}, {"filter-operator": "null"}]}]},
  {"rule-type": "selection", "rule-id": "4", "rule-name": "log", "rule-action": "explicit",
   "object-locator": {"schema-name": "shop", "table-name": "log"},
   "filters": [{"filter-type": "source", "column-name": "lvl", "filter-conditions": [
        {"filter-operator": "gte", "value": 3}]}]},
  {"rule-type": "selection", "rule-id": "5", "rule-name": "docs", "rule-action": "explicit",
   "object-locator": {"schema-name": "shop", "table-name": "docs"},
   "filters": [{"filter-type": "source", "column-name": "status", "filter-conditions": [
        {"filter-operator": "eq", "value": "published"}]},
               {"filter-type": "source", "column-name": "flag", "filter-conditions": [
        {"filter-operator": "notnull"}]}]}
]}"#;

/// Each table with the rows its filter passes, in SQL written by hand.
const PG_EXPECTED: &[(&str, &str)] = &[
    (
        "orders",
        "SELECT x::text FROM shop.orders x WHERE region IN ('north', 'west') AND amount BETWEEN 10 AND 500
            AND placed >= date '2024-03-01' ORDER BY id",
    ),
    (
        "people",
        "SELECT x::text FROM shop.people x WHERE (age <= 17 OR age >= 65 OR age IS NULL) AND rtrim(name) <> 'bob'
            AND (score < 100 OR score > 200) AND (seen <= timestamp '2024-06-30 12:00:00' OR seen IS NULL)
          ORDER BY id",
    ),
    ("log", "SELECT x::text FROM shop.log x WHERE lvl >= 3 ORDER BY lvl, msg"),
    (
        "docs",
        "SELECT (id, status, flag, md5(body))::text FROM shop.docs x WHERE status = 'published' AND flag IS NOT NULL ORDER BY id",
    ),
    ("plain", "SELECT x::text FROM shop.plain x ORDER BY id"),
];

fn target_sql(table: &str, expected: &str) -> String {
    // The same columns and order, without the filter.
    let from = format!("FROM shop.{table} x");
    let (head, _) = expected.split_once(&from).unwrap();
    let order = expected.rsplit_once("ORDER BY").unwrap().1;
    format!("{head}{from} ORDER BY {order}")
}

/// One random change to the PostgreSQL source, chosen to move rows into
/// and out of the filters (and to keep some inside and outside).
fn pg_change(r: &mut Rng, next_id: &mut u64) -> String {
    let id = 1 + r.below(3000);
    match r.below(16) {
        0 => format!(
            "UPDATE shop.orders SET region = '{}' WHERE id = {id}",
            r.pick(&["north", "south", "west", "North", "east"])
        ),
        1 => format!("UPDATE shop.orders SET amount = {}.25 WHERE id = {id}", r.below(700)),
        2 => format!(
            "UPDATE shop.orders SET placed = date '2024-01-01' + {} WHERE id = {id}",
            r.below(200)
        ),
        3 => {
            *next_id += 1;
            format!(
                "INSERT INTO shop.orders VALUES ({}, '{}', {}.5, date '2024-01-01' + {}, 'new')",
                *next_id,
                r.pick(&["north", "west", "south"]),
                r.below(700),
                r.below(200)
            )
        }
        4 => format!("DELETE FROM shop.orders WHERE id = {id}"),
        5 => format!(
            "UPDATE shop.orders SET id = id + 1000000, amount = {}.75 WHERE id = {id}",
            r.below(600)
        ),
        6 => format!(
            "UPDATE shop.people SET age = {} WHERE id = {id}",
            ["NULL", "5", "17", "18", "40", "64", "65", "90"][r.below(8) as usize]
        ),
        7 => format!(
            "UPDATE shop.people SET name = '{}', score = {} WHERE id = {id}",
            r.pick(&["ann", "bob", "bob  ", "Bob", "carl"]),
            r.below(300)
        ),
        8 => format!(
            "UPDATE shop.people SET seen = {} WHERE id = {id}",
            r.pick(&[
                "NULL",
                "'2024-06-30 12:00:00'",
                "'2024-06-30 12:00:00.000001'",
                "'2024-01-01 00:00:00'"
            ])
        ),
        9 => format!("INSERT INTO shop.log VALUES ({}, 'm{}')", r.below(6), r.below(50)),
        10 => format!(
            "UPDATE shop.log SET lvl = {} WHERE ctid = (SELECT ctid FROM shop.log WHERE msg = 'm{}' LIMIT 1)",
            r.below(6),
            r.below(50)
        ),
        11 => format!(
            "DELETE FROM shop.log WHERE ctid = (SELECT ctid FROM shop.log WHERE lvl = {} LIMIT 1)",
            r.below(6)
        ),
        // The TOASTed body stays unchanged: the new image lacks it, the
        // full old image (REPLICA IDENTITY FULL) completes it.
        12 => format!(
            "UPDATE shop.docs SET status = '{}' WHERE id = {}",
            r.pick(&["draft", "published"]),
            1 + r.below(40)
        ),
        13 => format!(
            "UPDATE shop.docs SET flag = {} WHERE id = {}",
            r.pick(&["NULL", "true", "false"]),
            1 + r.below(40)
        ),
        14 => format!("UPDATE shop.docs SET body = body || 'x' WHERE id = {}", 1 + r.below(40)),
        _ => format!("UPDATE shop.plain SET v = v + 1 WHERE id = {}", 1 + r.below(100)),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn filters_hold_through_load_changes_and_validation_postgres() -> anyhow::Result<()> {
    let src = PgServer::start()?;
    let dst = PgServer::start()?;
    let s = src.client("postgres").await?;
    s.batch_execute(
        "CREATE SCHEMA shop;
         CREATE TABLE shop.orders (id bigint PRIMARY KEY, region text, amount numeric(10,2), placed date, note text);
         INSERT INTO shop.orders SELECT i, (ARRAY['north', 'south', 'west', 'North', 'east'])[1 + i % 5],
                (i % 700) + 0.5, date '2024-01-01' + i % 200, 'n' || i FROM generate_series(1, 20000) i;
         CREATE TABLE shop.people (id int PRIMARY KEY, name char(6), age int, score real, seen timestamp);
         INSERT INTO shop.people SELECT i, (ARRAY['ann', 'bob', 'bob  ', 'Bob', 'carl'])[1 + i % 5],
                CASE WHEN i % 10 = 0 THEN NULL ELSE i % 90 END, (i % 300) / 1.5,
                CASE WHEN i % 7 = 0 THEN NULL ELSE timestamp '2024-06-01' + i * interval '17 minutes' END
           FROM generate_series(1, 5000) i;
         CREATE TABLE shop.log (lvl int, msg text);
         ALTER TABLE shop.log REPLICA IDENTITY FULL;
         INSERT INTO shop.log SELECT i % 6, 'm' || (i % 50) FROM generate_series(1, 600) i;
         CREATE TABLE shop.docs (id int PRIMARY KEY, status text, flag boolean, body text);
         ALTER TABLE shop.docs REPLICA IDENTITY FULL;
         INSERT INTO shop.docs SELECT i, CASE WHEN i % 2 = 0 THEN 'published' ELSE 'draft' END,
                CASE WHEN i % 3 = 0 THEN NULL ELSE i % 2 = 0 END,
                (SELECT string_agg(md5(random()::text || j || i), '') FROM generate_series(1, 300) j)
           FROM generate_series(1, 40) i;
         CREATE TABLE shop.plain (id int PRIMARY KEY, v int);
         INSERT INTO shop.plain SELECT i, 0 FROM generate_series(1, 100) i;
         ANALYZE;",
    )
    .await?;
    let mut f = Ferry::start(2, 5000, &[])?;
    let dir = tempfile::tempdir()?;
    let mappings = mapping_file(&dir, PG_MAPPINGS);
    // Orders in several key-range segments, each read with the filter.
    create_typed(
        &f,
        "flt",
        &src.url("postgres"),
        &dst.url("postgres"),
        "full-load-and-cdc",
        r#"{"ValidationSettings": {"EnableValidation": true, "PartitionSize": 1000},
            "Ferry": {"SegmentTargetBytes": 262144, "SplitTablesLargerThan": 0}}"#,
        &["--table-mappings", &mappings],
    );
    f.ok(&["task", "start", "flt"]);
    // Writes from the start, through the load and into CDC.
    let mut next_id = 100_000u64;
    let writer = spawn_writes(src.client("postgres").await?, 15, 0x9e37_79b9_7f4a_7c15, move |r| {
        pg_change(r, &mut next_id)
    });
    // The worker applying the stream is killed (kill -9) twice while the
    // writes go on: its successor resumes from the committed position and
    // the filter's absolute effects (insert, delete) apply again exactly.
    for _ in 0..2 {
        std::thread::sleep(Duration::from_secs(4));
        f.kill_stream_worker()?;
    }
    let changes = writer.await??;
    assert!(changes > 500, "the writer made only {changes} changes");
    wait_caught_up(&f, "flt");
    let d = dst.client("postgres").await?;
    for (table, want_sql) in PG_EXPECTED {
        let want = pg_rows(&s, want_sql).await?;
        let got = pg_rows(&d, &target_sql(table, want_sql)).await?;
        let all = pg_rows(&s, &format!("SELECT count(*)::text FROM shop.{table}")).await?;
        assert!(
            !want.is_empty(),
            "{table}: the filter passes no row; the test proves nothing"
        );
        if *table != "plain" {
            let all: usize = all[0][0].as_deref().unwrap().parse()?;
            assert!(
                want.len() < all,
                "{table}: the filter passes every row; the test proves nothing"
            );
        }
        if want != got {
            let extra: Vec<String> = got
                .iter()
                .filter(|r| !want.contains(r))
                .take(3)
                .filter_map(|r| {
                    r[0].as_deref()?
                        .trim_start_matches('(')
                        .split(',')
                        .next()
                        .map(str::to_string)
                })
                .collect();
            for id in extra {
                let src_row = pg_rows(
                    &s,
                    &format!("SELECT x::text FROM shop.{table} x WHERE id IN ({id}, {id} + 1000000)"),
                )
                .await?;
                eprintln!("{table}: row {id} (or its key + 1000000) on the source now: {src_row:?}");
            }
        }
        assert_same_rows(table, &want, &got);
    }
    assert_validates_clean(&f, "flt", &["log"]);
    Ok(())
}

fn assert_same_rows(table: &str, want: &TextRows, got: &TextRows) {
    if want == got {
        return;
    }
    if let Some(i) = (0..want.len().min(got.len())).find(|&i| want[i] != got[i]) {
        eprintln!("{table}: first difference at row {i}: {:?} vs {:?}", want[i], got[i]);
    }
    let missing: Vec<_> = want.iter().filter(|r| !got.contains(r)).take(5).collect();
    let extra: Vec<_> = got.iter().filter(|r| !want.contains(r)).take(5).collect();
    panic!(
        "{table}: target has {} rows, the filtered source {}; missing {missing:?}; not passed by the filter {extra:?}",
        got.len(),
        want.len()
    );
}

/// A PostgreSQL table with the default replica identity sends neither its
/// old row nor its unchanged TOASTed values: an update that moves a row
/// into the filter cannot be written whole, so the table stops and says
/// how to fix it, instead of leaving the row out.
#[tokio::test(flavor = "multi_thread")]
async fn a_row_moving_in_without_its_toasted_values_stops_the_table() -> anyhow::Result<()> {
    let src = PgServer::start()?;
    let dst = PgServer::start()?;
    let s = src.client("postgres").await?;
    s.batch_execute(
        "CREATE TABLE public.docs (id int PRIMARY KEY, status text, body text);
         INSERT INTO public.docs SELECT i, 'draft',
                (SELECT string_agg(md5(random()::text || j || i), '') FROM generate_series(1, 300) j)
           FROM generate_series(1, 5) i;",
    )
    .await?;
    let f = Ferry::start(1, 5000, &[])?;
    let dir = tempfile::tempdir()?;
    let mappings = mapping_file(
        &dir,
        r#"{"rules": [{"rule-type": "selection", "rule-id": "1", "rule-name": "docs", "rule-action": "include",
            "object-locator": {"schema-name": "public", "table-name": "docs"},
            "filters": [{"filter-type": "source", "column-name": "status", "filter-conditions": [
               {"filter-operator": "eq", "value": "published"}]}]}]}"#,
    );
    create_typed(
        &f,
        "toast",
        &src.url("postgres"),
        &dst.url("postgres"),
        "full-load-and-cdc",
        "{}",
        &["--table-mappings", &mappings],
    );
    f.ok(&["task", "start", "toast"]);
    wait_caught_up(&f, "toast");
    s.batch_execute("UPDATE public.docs SET status = 'published' WHERE id = 1")
        .await?;
    let (ok, out, err) = f.ferry(&["task", "wait", "toast", "--for", "caught-up", "--timeout", "60"]);
    assert!(!ok, "caught up without the row that moved in: {out}");
    assert!(
        err.contains("REPLICA IDENTITY FULL") && err.contains("public.docs"),
        "{err}"
    );
    Ok(())
}

/// MariaDB → PostgreSQL: the filter compares text by code point whatever
/// the column's collation (a case-insensitive one would take `North` for
/// `north`), decimals exactly, datetimes as such, in the load and in the
/// binlog's changes alike.
#[tokio::test(flavor = "multi_thread")]
async fn filters_hold_through_load_and_changes_mysql_to_postgres() -> anyhow::Result<()> {
    let my = MariaDbServer::start()?;
    let pg = PgServer::start()?;
    let mut m = my.client("mysql").await?;
    m.query_drop("CREATE DATABASE shop CHARACTER SET utf8mb4").await?;
    let mut m = my.client("shop").await?;
    m.query_drop(
        "CREATE TABLE orders (id int PRIMARY KEY, region varchar(10) COLLATE utf8mb4_general_ci,
                              amount decimal(10,2), placed datetime, qty int unsigned)",
    )
    .await?;
    m.query_drop("SET SESSION max_recursive_iterations = 100000").await?;
    m.query_drop(
        "INSERT INTO orders WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 8000)
         SELECT i, ELT(1 + i % 4, 'north', 'North', 'south', 'north '), (i % 700) + 0.5,
                '2024-01-01' + INTERVAL (i % 200) DAY, i % 5 FROM n",
    )
    .await?;
    let f = Ferry::start(2, 5000, &[])?;
    let dir = tempfile::tempdir()?;
    let mappings = mapping_file(
        &dir,
        r#"{"rules": [{"rule-type": "selection", "rule-id": "1", "rule-name": "orders", "rule-action": "include",
            "object-locator": {"schema-name": "shop", "table-name": "orders"},
            "filters": [
              {"filter-type": "source", "column-name": "region", "filter-conditions": [{"filter-operator": "eq", "value": "north"}]},
              {"filter-type": "source", "column-name": "amount", "filter-conditions": [
                 {"filter-operator": "between", "start-value": "10.5", "end-value": "500.25"}]},
              {"filter-type": "source", "column-name": "placed", "filter-conditions": [
                 {"filter-operator": "gte", "value": "2024-03-01 00:00:00"}]},
              {"filter-type": "source", "column-name": "qty", "filter-conditions": [{"filter-operator": "noteq", "value": "0"}]}]}]}"#,
    );
    create_typed(
        &f,
        "myf",
        &my.url("shop"),
        &pg.url("postgres"),
        "full-load-and-cdc",
        r#"{"Ferry": {"SegmentTargetBytes": 65536, "SplitTablesLargerThan": 0}}"#,
        &["--table-mappings", &mappings],
    );
    f.ok(&["task", "start", "myf"]);
    let mut w = my.client("shop").await?;
    let (mut r, end) = (Rng(0x2545_f491_4f6c_dd1d), Instant::now() + Duration::from_secs(12));
    let mut next_id = 100_000;
    let mut changes = 0;
    while Instant::now() < end {
        let id = 1 + r.below(3000);
        let sql = match r.below(6) {
            0 => format!(
                "UPDATE orders SET region = '{}' WHERE id = {id}",
                r.pick(&["north", "North", "south", "north "])
            ),
            1 => format!(
                "UPDATE orders SET amount = {}.{} WHERE id = {id}",
                r.below(700),
                r.pick(&["25", "5", "75"])
            ),
            2 => format!(
                "UPDATE orders SET placed = '2024-01-01' + INTERVAL {} DAY, qty = {} WHERE id = {id}",
                r.below(200),
                r.below(3)
            ),
            3 => {
                next_id += 1;
                format!(
                    "INSERT INTO orders VALUES ({next_id}, '{}', {}.25, '2024-02-20' + INTERVAL {} DAY, {})",
                    r.pick(&["north", "North"]),
                    r.below(700),
                    r.below(40),
                    r.below(3)
                )
            }
            4 => format!("DELETE FROM orders WHERE id = {id}"),
            _ => format!("UPDATE orders SET id = id + 1000000 WHERE id = {id}"),
        };
        w.query_drop(&sql).await?;
        changes += 1;
    }
    assert!(changes > 300, "the writer made only {changes} changes");
    wait_caught_up(&f, "myf");
    let want = mysql_rows(
        &mut m,
        "SELECT id, region, amount, DATE_FORMAT(placed, '%Y-%m-%d %H:%i:%s'), qty FROM orders
          WHERE BINARY region = 'north' AND amount BETWEEN 10.5 AND 500.25
            AND placed >= '2024-03-01 00:00:00' AND qty <> 0 ORDER BY id",
    )
    .await?;
    let p = pg.client("postgres").await?;
    let got = pg_rows(
        &p,
        "SELECT id::text, region, amount::text, to_char(placed, 'YYYY-MM-DD HH24:MI:SS'), qty::text
           FROM shop.orders o ORDER BY o.id",
    )
    .await?;
    assert!(!want.is_empty() && want.len() < 8000, "{} rows pass", want.len());
    assert_same_rows("orders", &want, &got);
    let st: Value = f.status("myf").unwrap();
    assert_eq!(table_status(&st, "orders")["state"], "Table completed", "{st}");
    Ok(())
}

/// One column of an edge-value table: name, type, its filter conditions
/// (DMS JSON), the same filter in SQL written by hand, the values tried.
type EdgeColumn<'a> = (&'a str, &'a str, &'a str, &'a str, &'a [&'a str]);

/// `CREATE TABLE` of the edge-value table `v`.
fn edge_table(columns: &[EdgeColumn]) -> String {
    let defs: Vec<String> = columns.iter().map(|c| format!("{} {}", c.0, c.1)).collect();
    format!(
        "CREATE TABLE v (id int PRIMARY KEY, path varchar(10) NOT NULL, {})",
        defs.join(", ")
    )
}

/// One statement per (column, value), ids from `base + 1`: an insert of a
/// row holding only that value (or no value: `values` false), or an update
/// giving the row of that id its value. Every other column stays NULL.
fn edge_rows(columns: &[EdgeColumn], table: &str, path: &str, base: usize, update: bool, values: bool) -> Vec<String> {
    let mut out = vec![];
    let mut id = base;
    for (col, _, _, _, vals) in columns {
        for v in *vals {
            id += 1;
            out.push(match (update, values) {
                (true, _) => format!("UPDATE {table} SET {col} = {v} WHERE id = {id}"),
                (false, true) => format!("INSERT INTO {table} (id, path, {col}) VALUES ({id}, '{path}', {v})"),
                (false, false) => format!("INSERT INTO {table} (id, path) VALUES ({id}, '{path}')"),
            });
        }
    }
    out
}

/// Mappings that filter `schema.v` on every edge column, each filter also
/// passing NULL: a row passes exactly when its one value does.
fn edge_mappings(dir: &tempfile::TempDir, schema: &str, columns: &[EdgeColumn]) -> String {
    let filters: Vec<String> = columns
        .iter()
        .map(|(col, _, conds, _, _)| {
            format!(
                r#"{{"filter-type": "source", "column-name": "{col}", "filter-conditions": [{conds}, {{"filter-operator": "null"}}]}}"#
            )
        })
        .collect();
    mapping_file(
        dir,
        &format!(
            r#"{{"rules": [{{"rule-type": "selection", "rule-id": "1", "rule-name": "v", "rule-action": "include",
                "object-locator": {{"schema-name": "{schema}", "table-name": "v"}}, "filters": [{}]}}]}}"#,
            filters.join(", ")
        ),
    )
}

/// The hand-written condition the rows that pass meet.
fn edge_wanted(columns: &[EdgeColumn]) -> String {
    let each: Vec<String> = columns
        .iter()
        .map(|(col, _, _, sql, _)| format!("({sql} OR {col} IS NULL)"))
        .collect();
    each.join(" AND ")
}

/// Loads `v` with a full-load-and-cdc task under `mappings`, runs `during`
/// (the change paths' statements) once it has caught up, and waits until
/// they are applied.
async fn run_edges<F: std::future::Future<Output = anyhow::Result<()>>>(
    source: &str,
    target: &str,
    mappings: &str,
    during: F,
) -> anyhow::Result<()> {
    let f = Ferry::start(1, 5000, &[])?;
    create_typed(
        &f,
        "edges",
        source,
        target,
        "full-load-and-cdc",
        "{}",
        &["--table-mappings", mappings],
    );
    f.ok(&["task", "start", "edges"]);
    wait_caught_up(&f, "edges");
    during.await?;
    wait_caught_up(&f, "edges");
    Ok(())
}

/// Every comparison domain's edge values through both paths: rows copied
/// by the full load (the filter in SQL), rows inserted during CDC and rows
/// updated into their values during CDC (the filter evaluated on row
/// images) must pass or fail alike, and as hand-written SQL says.
#[tokio::test(flavor = "multi_thread")]
async fn edge_values_pass_alike_in_the_load_and_in_changes() -> anyhow::Result<()> {
    let src = PgServer::start()?;
    let dst = PgServer::start()?;
    let s = src.client("postgres").await?;
    // (column, type, filter conditions, hand-written SQL, edge values)
    let columns: &[EdgeColumn] = &[
        (
            "i",
            "bigint",
            r#"{"filter-operator": "between", "start-value": "-5", "end-value": 5}"#,
            "i BETWEEN -5 AND 5",
            &["-9223372036854775808", "-6", "-5", "0", "5", "6", "9223372036854775807"],
        ),
        (
            "d",
            "numeric",
            r#"{"filter-operator": "gte", "value": "1.50"}"#,
            "d >= 1.5",
            &[
                "1.5",
                "1.49999999999999999999",
                "1.500000000000000000001",
                "-2",
                "'NaN'",
                "100000000000000000000",
            ],
        ),
        (
            "r",
            "real",
            r#"{"filter-operator": "eq", "value": "1.1"}, {"filter-operator": "ste", "value": "-1"}"#,
            "(r = real '1.1' OR r <= -1)",
            &["1.1", "1.0999999", "-1", "'-Infinity'", "'NaN'", "'Infinity'"],
        ),
        (
            "f",
            "double precision",
            r#"{"filter-operator": "gte", "value": "0.1"}"#,
            "f >= 0.1",
            &[
                "0.1",
                "0.09999999999999999",
                "'NaN'",
                "'Infinity'",
                "'-Infinity'",
                "1e308",
            ],
        ),
        (
            "t",
            "text",
            r#"{"filter-operator": "between", "start-value": "a", "end-value": "b"}, {"filter-operator": "eq", "value": ""}"#,
            "(t COLLATE \"C\" BETWEEN 'a' AND 'b' OR t = '')",
            &[
                "'a'", "'b'", "'ab'", "'B'", "'A'", "''", "'é'", "'a '", "'b '", "'ä'", "'it''s'",
            ],
        ),
        (
            "c",
            "char(4)",
            r#"{"filter-operator": "eq", "value": "ab"}"#,
            "rtrim(c) = 'ab'",
            &["'ab'", "'ab  '", "'AB'", "'a'"],
        ),
        (
            "dt",
            "date",
            r#"{"filter-operator": "ste", "value": "2000-01-01"}"#,
            "dt <= date '2000-01-01'",
            &[
                "'1999-12-31'",
                "'2000-01-01'",
                "'2000-01-02'",
                "'infinity'",
                "'-infinity'",
                "'0044-03-15 BC'",
            ],
        ),
        (
            "ts",
            "timestamp",
            r#"{"filter-operator": "notbetween", "start-value": "2024-01-01 00:00:00.5", "end-value": "2024-01-02"}"#,
            "ts NOT BETWEEN timestamp '2024-01-01 00:00:00.5' AND timestamp '2024-01-02'",
            &[
                "'2024-01-01 00:00:00.499999'",
                "'2024-01-01 00:00:00.5'",
                "'2024-01-02 00:00:00.000001'",
                "'infinity'",
                "'-infinity'",
                "'0100-01-01 00:00:00 BC'",
            ],
        ),
        (
            "b",
            "boolean",
            r#"{"filter-operator": "eq", "value": "true"}"#,
            "b = true",
            &["true", "false"],
        ),
    ];
    s.batch_execute(&edge_table(columns)).await?;
    let batch = |stmts: Vec<String>| stmts.join(";\n");
    s.batch_execute(&batch(edge_rows(columns, "v", "load", 0, false, true)))
        .await?;
    s.batch_execute(&batch(edge_rows(columns, "v", "update", 2000, false, false)))
        .await?;
    let dir = tempfile::tempdir()?;
    let mappings = edge_mappings(&dir, "public", columns);
    run_edges(&src.url("postgres"), &dst.url("postgres"), &mappings, async {
        s.batch_execute(&batch(edge_rows(columns, "v", "insert", 1000, false, true)))
            .await?;
        // The update path: rows that passed as all-NULL take their value.
        s.batch_execute(&batch(edge_rows(columns, "v", "", 2000, true, true)))
            .await?;
        Ok(())
    })
    .await?;

    let all: Vec<&str> = columns.iter().map(|c| c.0).collect();
    // Compared as (column, value) per path, so the three paths line up.
    let shown = format!("(id % 1000)::text, {}::text", all.join("::text, "));
    let want = pg_rows(
        &s,
        &format!(
            "SELECT {shown} FROM v WHERE path = 'load' AND {} ORDER BY 1",
            edge_wanted(columns)
        ),
    )
    .await?;
    assert!(
        want.len() > 10 && want.len() < 50,
        "{} of the edge values pass",
        want.len()
    );
    let d = dst.client("postgres").await?;
    for path in ["load", "insert", "update"] {
        let got = pg_rows(&d, &format!("SELECT {shown} FROM v WHERE path = '{path}' ORDER BY 1")).await?;
        assert_same_rows(&format!("values through the {path} path"), &want, &got);
    }
    Ok(())
}

/// The MariaDB side of the same check: edge values of every comparison
/// domain, copied by the load (the filter in MySQL's SQL), inserted and
/// updated during CDC (the filter on binlog row images), must pass or fail
/// alike on the PostgreSQL target, and as hand-written SQL on the source
/// says. Rows are compared by id: each row holds one value.
#[tokio::test(flavor = "multi_thread")]
async fn edge_values_pass_alike_in_the_load_and_in_changes_mysql() -> anyhow::Result<()> {
    let my = MariaDbServer::start()?;
    let pg = PgServer::start()?;
    let mut m = my.client("mysql").await?;
    m.query_drop("CREATE DATABASE shop CHARACTER SET utf8mb4").await?;
    let mut m = my.client("shop").await?;
    // (column, type, filter conditions, hand-written SQL, edge values)
    let columns: &[EdgeColumn] = &[
        (
            "i",
            "bigint",
            r#"{"filter-operator": "between", "start-value": "-5", "end-value": 5}"#,
            "i BETWEEN -5 AND 5",
            &["-9223372036854775808", "-6", "-5", "0", "5", "6", "9223372036854775807"],
        ),
        (
            "u",
            "bigint unsigned",
            r#"{"filter-operator": "gte", "value": "18446744073709551614"}"#,
            "u >= 18446744073709551614",
            &["0", "5", "18446744073709551614", "18446744073709551615"],
        ),
        (
            "d",
            "decimal(30,10)",
            r#"{"filter-operator": "gte", "value": "1.50"}"#,
            "d >= 1.5",
            &[
                "1.5",
                "1.4999999999",
                "1.5000000001",
                "-2",
                "99999999999999999999.9999999999",
            ],
        ),
        (
            "r",
            "float",
            r#"{"filter-operator": "eq", "value": "1.1"}, {"filter-operator": "ste", "value": "-1"}"#,
            "(ABS(r - 1.1) < 5e-8 OR r <= -1)",
            &["1.1", "1.0999999", "-1", "-3.4e38", "3.4e38"],
        ),
        (
            "f",
            "double",
            r#"{"filter-operator": "gte", "value": "0.1"}"#,
            "f >= 0.1",
            &["0.1", "0.09999999999999999", "1e308", "-1e308"],
        ),
        (
            "t",
            "varchar(10) COLLATE utf8mb4_general_ci",
            r#"{"filter-operator": "between", "start-value": "a", "end-value": "b"}, {"filter-operator": "eq", "value": ""}"#,
            "(BINARY t BETWEEN 'a' AND 'b' OR BINARY t = '')",
            &[
                "'a'", "'b'", "'ab'", "'B'", "'A'", "''", "'é'", "'a '", "'b '", "'ä'", "'it''s'",
            ],
        ),
        (
            "c",
            "char(4)",
            r#"{"filter-operator": "eq", "value": "ab"}"#,
            "BINARY c = 'ab'",
            &["'ab'", "'ab  '", "'AB'", "'a'"],
        ),
        (
            "e",
            "enum('a','B','c')",
            r#"{"filter-operator": "eq", "value": "B"}"#,
            "BINARY e = 'B'",
            &["'a'", "'B'", "'c'"],
        ),
        (
            "dt",
            "date",
            r#"{"filter-operator": "ste", "value": "2000-01-01"}"#,
            "dt <= '2000-01-01'",
            &[
                "'1000-01-01'",
                "'1999-12-31'",
                "'2000-01-01'",
                "'2000-01-02'",
                "'9999-12-31'",
            ],
        ),
        (
            "ts",
            "datetime(6)",
            r#"{"filter-operator": "notbetween", "start-value": "2024-01-01 00:00:00.5", "end-value": "2024-01-02"}"#,
            "ts NOT BETWEEN '2024-01-01 00:00:00.5' AND '2024-01-02'",
            &[
                "'2024-01-01 00:00:00.499999'",
                "'2024-01-01 00:00:00.5'",
                "'2024-01-02 00:00:00.000001'",
                "'1000-01-01 00:00:00'",
            ],
        ),
        (
            "y",
            "year",
            r#"{"filter-operator": "gte", "value": "2000"}"#,
            "y >= 2000",
            &["1999", "2000", "2155"],
        ),
    ];
    m.query_drop(edge_table(columns)).await?;
    for sql in edge_rows(columns, "v", "load", 0, false, true)
        .into_iter()
        .chain(edge_rows(columns, "v", "update", 2000, false, false))
    {
        m.query_drop(sql).await?;
    }
    let dir = tempfile::tempdir()?;
    let mappings = edge_mappings(&dir, "shop", columns);
    let mut w = my.client("shop").await?;
    run_edges(&my.url("shop"), &pg.url("postgres"), &mappings, async {
        for sql in edge_rows(columns, "v", "insert", 1000, false, true)
            .into_iter()
            .chain(edge_rows(columns, "v", "", 2000, true, true))
        {
            w.query_drop(sql).await?;
        }
        Ok(())
    })
    .await?;

    let want = mysql_rows(
        &mut m,
        &format!(
            "SELECT id % 1000 FROM v WHERE path = 'load' AND {} ORDER BY 1",
            edge_wanted(columns)
        ),
    )
    .await?;
    let total: usize = columns.iter().map(|c| c.4.len()).sum();
    assert!(
        want.len() > 10 && want.len() < total,
        "{} of the edge values pass",
        want.len()
    );
    let p = pg.client("postgres").await?;
    for path in ["load", "insert", "update"] {
        let got = pg_rows(
            &p,
            &format!("SELECT (id % 1000)::text FROM shop.v WHERE path = '{path}' ORDER BY id % 1000"),
        )
        .await?;
        assert_same_rows(&format!("values through the {path} path"), &want, &got);
    }
    Ok(())
}
