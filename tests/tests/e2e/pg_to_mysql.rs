//! PostgreSQL → MariaDB full load: a column of every PostgreSQL type family
//! with edge values (arrays, ranges, uuid, inet, interval, enums, jsonb,
//! bytea, timestamptz), a 200,000-row table cut into segments, a foreign
//! key, and rows MySQL cannot hold (NaN, infinity) that must land in the
//! exceptions table; then every value is compared through the mapping.
use ferry_tests::compare::*;
use ferry_tests::mariadb::MariaDbServer;
use ferry_tests::*;
use mysql_async::prelude::Queryable;

const PG_SQL: &str = r#"
CREATE SCHEMA shop;
CREATE TYPE shop.mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE shop.kinds (
  id serial PRIMARY KEY,
  i16 smallint, i32 integer, i64 bigint, n65 numeric(65,30), money2 numeric(12,2), nfree numeric,
  r real, d double precision, b boolean, t text, vc varchar(20), ch char(5), by bytea,
  dd date, ts timestamp(6), tz timestamptz, tm time, iv interval, u uuid, ip inet, j jsonb,
  ia integer[], ta text[], rg int4range, m shop.mood, bt bit(10)
);
INSERT INTO shop.kinds (i16, i32, i64, n65, money2, nfree, r, d, b, t, vc, ch, by, dd, ts, tz, tm, iv, u, ip, j, ia, ta, rg, m, bt) VALUES
 (-32768, -2147483648, -9223372036854775808, '99999999999999999999999999999999999.999999999999999999999999999999', -0.01, 3.14,
  1.2345678, 1.7976931348623157e308, true, E'tab\there\nnewline \\ back', 'emoji 😀', 'ab', '\x00ff10'::bytea,
  '0001-01-01', '9999-12-31 23:59:59.999999', '2038-01-19 03:14:08.5+05:30', '23:59:59.999999', '1 year 2 mons 3 days 04:05:06',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2001:db8::1/64', '{"k": [1, 2.5, "ü"], "n": null}', '{1,NULL,3}', '{"a b","c,d",NULL}', '[1,10)', 'happy', B'1010101010'),
 (0, 0, 0, 0, 0, 0, 0, 0, false, '', '', '', '', '2024-02-29', '1970-01-01 00:00:00', '1970-01-01 00:00:00+00', '00:00:00', '-1 days +02:00:00',
  '00000000-0000-0000-0000-000000000000', '10.0.0.1', '[]', '{}', '{}', 'empty', 'sad', B'0000000000'),
 (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
CREATE TABLE shop.big (id bigint PRIMARY KEY, k integer NOT NULL, label text);
INSERT INTO shop.big SELECT i, i % 997, 'row ' || i FROM generate_series(1, 200000) i;
CREATE INDEX big_k ON shop.big (k);
CREATE TABLE shop.parent (id integer PRIMARY KEY, name text UNIQUE);
CREATE TABLE shop.child (id integer PRIMARY KEY, parent_id integer REFERENCES shop.parent ON DELETE CASCADE);
INSERT INTO shop.parent VALUES (1, 'one'), (2, 'two');
INSERT INTO shop.child VALUES (10, 1), (11, NULL), (12, 2);
CREATE TABLE shop.odd (id integer PRIMARY KEY, n numeric, d date);
INSERT INTO shop.odd VALUES (1, 1, '2024-01-01'), (2, 'NaN', '2024-01-01'), (3, 2, 'infinity');
ANALYZE;
"#;

/// (column, MySQL expression, PostgreSQL expression, comparison)
const COLUMNS: &[(&str, &str, &str, Cmp)] = &[
    ("id", "CAST(id AS CHAR)", "id::text", Cmp::Text),
    ("i16", "CAST(i16 AS CHAR)", "i16::text", Cmp::Text),
    ("i32", "CAST(i32 AS CHAR)", "i32::text", Cmp::Text),
    ("i64", "CAST(i64 AS CHAR)", "i64::text", Cmp::Text),
    ("n65", "CAST(n65 AS CHAR)", "n65::text", Cmp::Text),
    ("money2", "CAST(money2 AS CHAR)", "money2::text", Cmp::Text),
    ("nfree", "CAST(nfree AS CHAR)", "nfree::numeric(65,30)::text", Cmp::Text),
    ("r", "CAST(CAST(r AS DOUBLE) AS CHAR)", "r::float8::text", Cmp::Float),
    ("d", "CAST(d AS CHAR)", "d::text", Cmp::Float),
    ("b", "CAST(b AS CHAR)", "b::int::text", Cmp::Text),
    ("t", "t", "t", Cmp::Text),
    ("vc", "vc", "vc", Cmp::Text),
    ("ch", "ch", "ch::text", Cmp::Text),
    ("by", "LOWER(HEX(`by`))", "encode(by, 'hex')", Cmp::Text),
    ("dd", "CAST(dd AS CHAR)", "dd::text", Cmp::Text),
    (
        "ts",
        "DATE_FORMAT(ts, '%Y-%m-%d %H:%i:%s.%f')",
        "to_char(ts, 'YYYY-MM-DD HH24:MI:SS.US')",
        Cmp::Text,
    ),
    (
        "tz",
        "DATE_FORMAT(tz, '%Y-%m-%d %H:%i:%s.%f')",
        "to_char(tz AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')",
        Cmp::Text,
    ),
    (
        "tm",
        "CAST(TIME_TO_SEC(tm) AS CHAR)",
        "extract(epoch FROM tm)::text",
        Cmp::Float,
    ),
    ("iv", "iv", "iv::text", Cmp::Text),
    ("u", "u", "u::text", Cmp::Text),
    (
        "ip",
        "ip",
        "CASE WHEN ip IS NOT NULL THEN format('%s', ip) END",
        Cmp::Text,
    ),
    ("j", "j", "j::text", Cmp::Json),
    ("ia", "ia", "to_json(ia)::text", Cmp::Json),
    ("ta", "ta", "to_json(ta)::text", Cmp::Json),
    ("rg", "rg", "rg::text", Cmp::Text),
    ("m", "m", "m::text", Cmp::Text),
    ("bt", "LPAD(BIN(bt), 10, '0')", "bt::text", Cmp::Text),
];

#[tokio::test(flavor = "multi_thread")]
async fn a_mysql_target_without_local_infile_is_refused_clearly() -> anyhow::Result<()> {
    let pg = PgServer::start()?;
    let my = MariaDbServer::start()?;
    pg.client("postgres")
        .await?
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)")
        .await?;
    my.client("mysql")
        .await?
        .query_drop("SET GLOBAL local_infile = 0")
        .await?;
    let f = Ferry::start(1, 5000, &[])?;
    create_full_load(&f, "off", &pg.url("postgres"), &my.url("mysql"), "{}", &[]);
    f.ok(&["task", "start", "off"]);
    let (ok, _, err) = f.ferry(&["task", "wait", "off", "--for", "full-load", "--timeout", "60"]);
    assert!(!ok && err.contains("local_infile=OFF"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn pg_full_load_into_mysql_keeps_every_value() -> anyhow::Result<()> {
    let pg = PgServer::start()?;
    let my = MariaDbServer::start()?;
    let p = pg.client("postgres").await?;
    p.batch_execute(PG_SQL).await?;
    my.client("mysql").await?.query_drop("CREATE DATABASE landing").await?;

    let f = Ferry::start(2, 5000, &[])?;
    create_full_load(
        &f,
        "pm",
        &pg.url("postgres"),
        &my.url("landing"),
        r#"{"Ferry": {"SegmentTargetBytes": 1048576}, "ValidationSettings": {"EnableValidation": true}}"#,
        &[],
    );
    f.ok(&["task", "start", "pm"]);
    let (ok, out, err) = f.ferry(&["task", "wait", "pm", "--for", "full-load", "--timeout", "300"]);
    let st = f.status("pm");
    assert!(
        ok,
        "wait failed: {out}{err}\nstatus: {st:?}\nworker: {}",
        f.workers[0].log_text()
    );
    let st = st.unwrap();
    assert!(
        table_status(&st, "big")["segments_total"].as_u64().unwrap() >= 3,
        "{st}"
    );
    assert_eq!(table_status(&st, "odd")["exceptions"], 2, "{st}");

    // A PostgreSQL schema becomes a MySQL database of the same name.
    let mut m = my.client("shop").await?;
    assert_pg_mysql_same(&p, &mut m).await?;
    // NaN and infinity have no MySQL form: those rows are exceptions.
    let odd: Vec<u32> = m.query("SELECT id FROM odd ORDER BY id").await?;
    assert_eq!(odd, vec![1]);
    let ex: Vec<(String, String)> = m
        .query("SELECT table_name, reason FROM ferry.apply_exceptions WHERE task = 'pm' ORDER BY reason")
        .await?;
    assert_eq!(ex.len(), 2, "{ex:?}");
    assert!(ex[0].1.contains("infinity") && ex[1].1.contains("NaN"), "{ex:?}");
    // Keys and indexes came across, the foreign key too, and the serial
    // column became AUTO_INCREMENT continuing past the loaded rows.
    let idx: Vec<String> = m
        .query("SELECT DISTINCT CONCAT(TABLE_NAME, '.', INDEX_NAME) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = 'shop' ORDER BY 1")
        .await?;
    for want in ["big.big_k", "parent.parent_name_key", "big.PRIMARY"] {
        assert!(idx.iter().any(|i| i == want), "index {want} missing: {idx:?}");
    }
    let fk: Vec<String> = m
        .query("SELECT DELETE_RULE FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = 'shop' AND TABLE_NAME = 'child'")
        .await?;
    assert_eq!(fk, vec!["CASCADE".to_string()]);

    // Validation compares every value through the mapping and finds the
    // two rows MySQL could not hold missing, and nothing else.
    let (ok, out, err) = f.ferry(&["task", "wait", "pm", "--for", "completed", "--timeout", "300"]);
    assert!(ok, "{out}{err}");
    let (ok, out, err) = f.ferry(&["validate", "pm", "--output", "json"]);
    assert!(!ok, "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(&out)?;
    for t in report["tables"].as_array().unwrap() {
        let failures: Vec<(String, String)> = t["failures"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["key"].as_str().unwrap().into(),
                    f["failure_type"].as_str().unwrap().into(),
                )
            })
            .collect();
        if t["table"] == "shop.odd" {
            assert_eq!(
                failures,
                vec![
                    ("2".to_string(), "MISSING_TARGET".to_string()),
                    ("3".into(), "MISSING_TARGET".into())
                ],
                "{report}"
            );
        } else {
            assert_eq!(t["state"], "Validated", "{report}");
        }
    }
    let big = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "shop.big");
    assert_eq!(big.unwrap()["validated_records"], 200000, "{report}");
    m.query_drop("INSERT INTO kinds (i16) VALUES (7)").await?;
    let id: Option<u64> = m.query_first("SELECT LAST_INSERT_ID()").await?;
    assert_eq!(id, Some(4));
    Ok(())
}

/// Compares the sample's tables value by value through the type mapping.
async fn assert_pg_mysql_same(p: &tokio_postgres::Client, m: &mut mysql_async::Conn) -> anyhow::Result<()> {
    m.query_drop("SET time_zone = '+00:00'").await?;
    p.batch_execute("SET TimeZone = 'UTC'").await?;
    let my_sql: Vec<&str> = COLUMNS.iter().map(|c| c.1).collect();
    let pg_sql: Vec<&str> = COLUMNS.iter().map(|c| c.2).collect();
    let a = pg_rows(
        p,
        &format!("SELECT {} FROM shop.kinds ORDER BY kinds.id", pg_sql.join(", ")),
    )
    .await?;
    let b = mysql_rows(m, &format!("SELECT {} FROM kinds ORDER BY id", my_sql.join(", "))).await?;
    assert_eq!(a.len(), b.len(), "kinds: source and target row counts");
    let names: Vec<(&str, Cmp)> = COLUMNS.iter().map(|c| (c.0, c.3)).collect();
    assert_same_rows(&a, &b, &names);
    for (pg_q, my_q) in [
        (
            "SELECT id::text, k::text, label FROM shop.big ORDER BY big.id",
            "SELECT CAST(id AS CHAR), CAST(k AS CHAR), label FROM big ORDER BY id",
        ),
        (
            "SELECT id::text, name FROM shop.parent ORDER BY parent.id",
            "SELECT CAST(id AS CHAR), name FROM parent ORDER BY id",
        ),
        (
            "SELECT id::text, parent_id::text FROM shop.child ORDER BY child.id",
            "SELECT CAST(id AS CHAR), CAST(parent_id AS CHAR) FROM child ORDER BY id",
        ),
    ] {
        let a = pg_rows(p, pg_q).await?;
        let b = mysql_rows(m, my_q).await?;
        let diff = a.iter().zip(&b).position(|(x, y)| x != y);
        assert!(
            !a.is_empty() && a.len() == b.len() && diff.is_none(),
            "{my_q}: {} source rows, {} target rows; first difference {:?}",
            a.len(),
            b.len(),
            diff.map(|i| (&a[i], &b[i]))
        );
    }
    Ok(())
}

/// Round `r` of writes on the PostgreSQL source: edge-value inserts,
/// updates (some leaving a TOASTed value unchanged), primary-key changes in
/// a multi-statement transaction, deletes (cascading to a child), and now
/// and then a value MySQL cannot hold.
async fn pg_writes(p: &tokio_postgres::Client, r: i64) -> anyhow::Result<()> {
    let mut sql = format!(
        "INSERT INTO shop.kinds (i16, i32, i64, n65, money2, nfree, r, d, b, t, vc, ch, by, dd, ts, tz, tm, iv, u, ip, j, ia, ta, rg, m, bt) VALUES
          ({r} % 32767, -{r}, -9223372036854775808 + {r}, '-{r}.000000000000000000000000000001', {r}.25, {r} / 7.0,
           {r} * 1.5e-7, -1e300 / ({r} + 1), {r} % 2 = 0, E'line\\t{r}\\n' || repeat('ü', {r} % 5), 'v{r} 😀', 'c{r}', decode(repeat('00ff', {r} % 9), 'hex'),
           '0001-01-01'::date + {r}, '1999-12-31 23:59:59.999999'::timestamp + {r} * interval '1 second',
           '2038-01-19 03:14:08.5+05:30'::timestamptz - {r} * interval '1 hour', '23:59:59.999999'::time - {r} * interval '1 minute',
           '{r} days -01:02:03', gen_random_uuid(), '10.0.{r}.1/24', jsonb_build_object('r', {r}, 'a', jsonb_build_array(1.5, null, true)),
           ARRAY[{r}, NULL, -{r}], ARRAY['a {r}', 'c,d', NULL, 'q\"'], int4range({r}, {r} + 10), 'ok', ({r} % 1024)::bit(10));
         UPDATE shop.kinds SET i64 = i64 - 1, tz = '2001-01-01 00:00:00.25+00', m = 'sad' WHERE id = {r} + 2;
         UPDATE shop.big SET label = 'upd {r}', k = k + 1 WHERE id = {r} * 131 % 200000 + 1;
         INSERT INTO shop.big VALUES (1000000 + {r}, {r}, 'new {r}');
         INSERT INTO shop.parent VALUES (100 + {r}, 'p{r}');
         INSERT INTO shop.child VALUES (100 + {r}, 100 + {r});"
    );
    if r % 5 == 0 {
        sql.push_str(&format!(
            "BEGIN;
             UPDATE shop.kinds SET id = id + 10000 WHERE id = {r};
             UPDATE shop.big SET id = id + 2000000 WHERE id = {r} * 977 % 200000 + 1;
             UPDATE shop.kinds SET t = t || ' moved' WHERE id = {r} + 10000;
             COMMIT;"
        ));
    }
    if r % 3 == 0 {
        sql.push_str(&format!(
            "DELETE FROM shop.kinds WHERE id = {r} - 1;
             DELETE FROM shop.big WHERE id = {r} * 313 % 200000 + 1;
             DELETE FROM shop.parent WHERE id = 99 + {r};"
        ));
    }
    if r % 7 == 0 {
        // A TOASTed value, then an update that leaves it alone.
        sql.push_str(&format!(
            "UPDATE shop.kinds SET t = (SELECT string_agg(md5((g * {r})::text), '') FROM generate_series(1, 3000) g) WHERE id = 1;
             UPDATE shop.kinds SET i16 = {r} WHERE id = 1;"
        ));
    }
    if r % 11 == 0 {
        sql.push_str(&format!(
            "INSERT INTO shop.odd VALUES (100 + {r}, 'NaN', '2024-01-01'), (200 + {r}, {r}, '2024-01-01');"
        ));
    }
    p.batch_execute(&sql).await?;
    Ok(())
}

/// Runs rounds `from..to` of [`pg_writes`] on a connection of its own.
async fn pg_writer(pg: &PgServer, from: i64, to: i64) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<()>>> {
    let p = pg.client("postgres").await?;
    Ok(tokio::spawn(async move {
        for r in from..to {
            pg_writes(&p, r).await?;
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        Ok(())
    }))
}

#[tokio::test(flavor = "multi_thread")]
async fn pg_to_mysql_cdc_keeps_every_value_through_a_worker_kill() -> anyhow::Result<()> {
    let pg = PgServer::start()?;
    let my = MariaDbServer::start()?;
    let p = pg.client("postgres").await?;
    p.batch_execute(PG_SQL).await?;
    my.client("mysql").await?.query_drop("CREATE DATABASE landing").await?;

    let mut f = Ferry::start(2, 3000, &[])?;
    create_typed(
        &f,
        "pmc",
        &pg.url("postgres"),
        &my.url("landing"),
        "full-load-and-cdc",
        r#"{"Ferry": {"SegmentTargetBytes": 1048576}}"#,
        &[],
    );
    f.ok(&["task", "start", "pmc"]);
    // Writes while the segments are read.
    let w = pg_writer(&pg, 1, 60).await?;
    let (ok, out, err) = f.ferry(&["task", "wait", "pmc", "--for", "full-load", "--timeout", "300"]);
    assert!(ok, "full load failed: {out}{err}\nstatus: {:?}", f.status("pmc"));
    w.await??;

    // Every worker killed mid-stream while writes go on; a fresh one resumes.
    let w = pg_writer(&pg, 60, 130).await?;
    f.wait_until("the CDC stream to start", std::time::Duration::from_secs(60), || {
        f.workers.iter().any(|w| w.log_text().contains("CDC stream started"))
    });
    // Without triggers the MySQL target takes set-based batches, spread
    // over parallel lanes (the default 4), killed mid-stream below.
    let started = f
        .workers
        .iter()
        .find_map(|w| {
            w.log_text()
                .lines()
                .find(|l| l.contains("CDC stream started"))
                .map(String::from)
        })
        .unwrap();
    assert_eq!(log_field(&started, "set_based").as_deref(), Some("true"), "{started}");
    assert_eq!(log_field(&started, "lanes").as_deref(), Some("4"), "{started}");
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    f.workers[0].kill9();
    f.workers[1].kill9();
    f.add_worker(&[])?;
    w.await??;
    // A truncate, then rows again.
    p.batch_execute("TRUNCATE shop.child; INSERT INTO shop.child VALUES (1, 1)")
        .await?;
    pg_writes(&p, 130).await?;
    wait_caught_up(&f, "pmc");

    let mut m = my.client("shop").await?;
    assert_pg_mysql_same(&p, &mut m).await?;
    // NaN has no MySQL form: the rows that carry it are exceptions, from the
    // full load or from CDC depending on when the table was read; those
    // written after the load are certainly CDC's.
    let st = f.status("pmc").unwrap();
    let ex: Vec<(String, String)> = m
        .query("SELECT phase, reason FROM ferry.apply_exceptions WHERE task = 'pmc' AND table_name LIKE '%odd%'")
        .await?;
    let sent = (1..=130).filter(|r| r % 11 == 0).count();
    assert_eq!(ex.len(), 2 + sent, "{ex:?}");
    let cdc = ex.iter().filter(|(phase, _)| phase == "cdc").count();
    assert!(cdc >= (61..=130).filter(|r| r % 11 == 0).count(), "{ex:?}");
    assert!(
        ex.iter().filter(|(_, r)| r.contains("NaN")).count() == 1 + sent,
        "{ex:?}"
    );
    // The status counts what was reported: a killed stream's last second of
    // counters is lost (the exceptions table above is the record).
    let counted = table_status(&st, "odd")["exceptions"].as_u64().unwrap_or(0) as usize;
    assert!(counted > 2 && counted <= 2 + sent, "{st}");
    let odd: Vec<u32> = m.query("SELECT id FROM odd ORDER BY id").await?;
    let want: Vec<u32> = std::iter::once(1)
        .chain((1..=130u32).filter(|r| r % 11 == 0).map(|r| 200 + r))
        .collect();
    assert_eq!(odd, want);
    Ok(())
}
