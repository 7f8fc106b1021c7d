//! DMS transformation rules (renames, prefixes and suffixes, case
//! conversion, remove-column) through the full load, CDC and validation,
//! PostgreSQL → PostgreSQL, MariaDB → PostgreSQL and PostgreSQL → MariaDB,
//! under writes: the target's tables must hold exactly the source's rows
//! under the new names, without the removed columns. The expected rows are selected on the
//! source with SQL written here by hand, and the target is read by the names
//! the rules should give (so a rule applied wrongly fails to even query).
use ferry_tests::compare::*;
use ferry_tests::mariadb::MariaDbServer;
use ferry_tests::*;
use mysql_async::prelude::Queryable;
use std::time::{Duration, Instant};

/// A target table's column names (comma-separated, in order) and its
/// index definitions.
async fn columns_and_indexes(
    c: &tokio_postgres::Client,
    schema: &str,
    table: &str,
) -> anyhow::Result<(String, Vec<String>)> {
    let cols = pg_rows(
        c,
        &format!(
            "SELECT string_agg(column_name::text, ',' ORDER BY ordinal_position) FROM information_schema.columns
              WHERE table_schema = '{schema}' AND table_name = '{table}'"
        ),
    )
    .await?;
    let indexes = pg_rows(
        c,
        &format!("SELECT indexdef FROM pg_indexes WHERE schemaname = '{schema}' AND tablename = '{table}'"),
    )
    .await?;
    Ok((
        cols[0][0].clone().unwrap_or_default(),
        indexes.into_iter().filter_map(|r| r[0].clone()).collect(),
    ))
}

/// Waits until every table validated; none may report a difference.
fn assert_validated(f: &Ferry, task: &str) {
    f.wait_until("validation to finish", Duration::from_secs(240), || {
        f.status(task).is_some_and(|st| {
            for t in st["tables"].as_array().into_iter().flatten() {
                assert_ne!(t["validation"]["state"], "Mismatched records", "false difference: {st}");
            }
            st["tables"]
                .as_array()
                .is_some_and(|ts| ts.iter().all(|t| t["validation"]["state"] == "Validated"))
        })
    });
}

fn assert_same(table: &str, want: &TextRows, got: &TextRows) {
    assert!(!want.is_empty(), "{table}: no rows; the test proves nothing");
    if want == got {
        return;
    }
    let missing: Vec<_> = want.iter().filter(|r| !got.contains(r)).take(5).collect();
    let extra: Vec<_> = got.iter().filter(|r| !want.contains(r)).take(5).collect();
    panic!(
        "{table}: target has {} rows, the source {}; missing {missing:?}; extra {extra:?}",
        got.len(),
        want.len()
    );
}

/// Every naming rule kind on PostgreSQL, with a filter on one renamed
/// table: schema `Shop` becomes `store`; `Orders` → `orders` (its columns
/// `Customer_Id`, `Note` lower-cased, `secret` removed, with the index on
/// it); `customers` → `customers_v2` (`name` → `full_name`, `tier` →
/// `TIER`); `tmp_events` → `events` (`payload` → `evt_payload`,
/// `created_at` → `created_time`, `old_flag` → `was_flag`);
/// `audit_bak` → `audit` (`note_txt` → `note`). Added columns:
/// `customers_v2.label` from the source's `name` and `tier` (located by
/// their source names, though renamed), `audit.id_copy` and a constant
/// `audit.origin`. `Orders.amount` becomes a double.
const PG_MAPPINGS: &str = r#"{"rules": [
  {"rule-type": "selection", "rule-id": "1", "rule-name": "all", "rule-action": "include",
   "object-locator": {"schema-name": "Shop", "table-name": "%"}},
  {"rule-type": "selection", "rule-id": "2", "rule-name": "orders", "rule-action": "explicit",
   "object-locator": {"schema-name": "Shop", "table-name": "Orders"},
   "filters": [{"filter-type": "source", "column-name": "region", "filter-conditions": [
      {"filter-operator": "eq", "value": "north"}, {"filter-operator": "eq", "value": "west"}]}]},
  {"rule-type": "transformation", "rule-id": "3", "rule-name": "schema", "rule-action": "rename",
   "rule-target": "schema", "object-locator": {"schema-name": "Shop"}, "value": "store"},
  {"rule-type": "transformation", "rule-id": "4", "rule-name": "orders", "rule-action": "convert-lowercase",
   "rule-target": "table", "object-locator": {"schema-name": "Shop", "table-name": "O%"}},
  {"rule-type": "transformation", "rule-id": "5", "rule-name": "customers", "rule-action": "add-suffix",
   "rule-target": "table", "object-locator": {"schema-name": "Shop", "table-name": "customers"}, "value": "_v2"},
  {"rule-type": "transformation", "rule-id": "6", "rule-name": "tmp", "rule-action": "remove-prefix",
   "rule-target": "table", "object-locator": {"schema-name": "Shop", "table-name": "tmp[_]%"}, "value": "tmp_"},
  {"rule-type": "transformation", "rule-id": "7", "rule-name": "bak", "rule-action": "remove-suffix",
   "rule-target": "table", "object-locator": {"schema-name": "Shop", "table-name": "%[_]bak"}, "value": "_bak"},
  {"rule-type": "transformation", "rule-id": "8", "rule-name": "lc", "rule-action": "convert-lowercase",
   "rule-target": "column", "object-locator": {"schema-name": "Shop", "table-name": "Orders", "column-name": "[CN]%"}},
  {"rule-type": "transformation", "rule-id": "9", "rule-name": "secret", "rule-action": "remove-column",
   "rule-target": "column", "object-locator": {"schema-name": "Shop", "table-name": "Orders", "column-name": "secret"}},
  {"rule-type": "transformation", "rule-id": "10", "rule-name": "name", "rule-action": "rename",
   "rule-target": "column", "object-locator": {"schema-name": "Shop", "table-name": "customers", "column-name": "name"},
   "value": "full_name"},
  {"rule-type": "transformation", "rule-id": "11", "rule-name": "tier", "rule-action": "convert-uppercase",
   "rule-target": "column", "object-locator": {"schema-name": "Shop", "table-name": "customers", "column-name": "tier"}},
  {"rule-type": "transformation", "rule-id": "12", "rule-name": "payload", "rule-action": "add-prefix",
   "rule-target": "column", "object-locator": {"schema-name": "Shop", "table-name": "tmp_events", "column-name": "payload"},
   "value": "evt_"},
  {"rule-type": "transformation", "rule-id": "13", "rule-name": "at", "rule-action": "replace-suffix",
   "rule-target": "column", "object-locator": {"schema-name": "Shop", "table-name": "tmp_events", "column-name": "%[_]at"},
   "old-value": "_at", "value": "_time"},
  {"rule-type": "transformation", "rule-id": "14", "rule-name": "flag", "rule-action": "replace-prefix",
   "rule-target": "column", "object-locator": {"schema-name": "Shop", "table-name": "tmp_events", "column-name": "old[_]%"},
   "old-value": "old_", "value": "was_"},
  {"rule-type": "transformation", "rule-id": "15", "rule-name": "txt", "rule-action": "remove-suffix",
   "rule-target": "column", "object-locator": {"schema-name": "Shop", "table-name": "audit_bak", "column-name": "%[_]txt"},
   "value": "_txt"},
  {"rule-type": "transformation", "rule-id": "16", "rule-name": "label", "rule-action": "add-column",
   "rule-target": "column", "object-locator": {"schema-name": "Shop", "table-name": "customers"},
   "value": "label", "expression": "$name || ' (' || $tier || ')'", "data-type": {"type": "string", "length": 60}},
  {"rule-type": "transformation", "rule-id": "17", "rule-name": "copy", "rule-action": "add-column",
   "rule-target": "column", "object-locator": {"schema-name": "Shop", "table-name": "audit%"},
   "value": "id_copy", "expression": "$id", "data-type": {"type": "int8"}},
  {"rule-type": "transformation", "rule-id": "18", "rule-name": "src", "rule-action": "add-column",
   "rule-target": "column", "object-locator": {"schema-name": "Shop", "table-name": "audit%"},
   "value": "origin", "expression": "'audit'", "data-type": {"type": "string"}},
  {"rule-type": "transformation", "rule-id": "19", "rule-name": "amount", "rule-action": "change-data-type",
   "rule-target": "column", "object-locator": {"schema-name": "Shop", "table-name": "Orders", "column-name": "amount"},
   "data-type": {"type": "real8"}}
]}"#;

/// Source query (hand-written, with the filter), target query (by the new
/// names), per table.
const PG_EXPECTED: &[(&str, &str, &str)] = &[
    (
        "orders",
        r#"SELECT (id, "Customer_Id", "Note", amount::float8, region)::text FROM "Shop"."Orders"
            WHERE region IN ('north', 'west') ORDER BY id"#,
        "SELECT (id, customer_id, note, amount, region)::text FROM store.orders ORDER BY id",
    ),
    (
        "customers",
        r#"SELECT (id, name, tier, name || ' (' || tier || ')')::text FROM "Shop".customers ORDER BY id"#,
        r#"SELECT (id, full_name, "TIER", label)::text FROM store.customers_v2 ORDER BY id"#,
    ),
    (
        "events",
        r#"SELECT (id, payload, created_at, old_flag)::text FROM "Shop".tmp_events ORDER BY id"#,
        "SELECT (id, evt_payload, created_time, was_flag)::text FROM store.events ORDER BY id",
    ),
    (
        "audit",
        r#"SELECT (id, note_txt, id, 'audit')::text FROM "Shop".audit_bak ORDER BY id"#,
        "SELECT (id, note, id_copy, origin)::text FROM store.audit ORDER BY id",
    ),
];

fn pg_change(r: &mut Rng) -> String {
    let id = 1 + r.below(3000);
    match r.below(12) {
        0 => format!(
            r#"UPDATE "Shop"."Orders" SET region = '{}' WHERE id = {id}"#,
            r.pick(&["north", "south", "west", "east"])
        ),
        1 => format!(
            r#"UPDATE "Shop"."Orders" SET "Note" = 'n{}', amount = {}.5 WHERE id = {id}"#,
            r.below(100),
            r.below(900)
        ),
        2 => format!(
            r#"UPDATE "Shop"."Orders" SET secret = 's{}' WHERE id = {id}"#,
            r.below(100)
        ),
        3 => format!(
            r#"INSERT INTO "Shop"."Orders" ("Customer_Id", "Note", secret, amount, region)
               VALUES ({}, 'new', 'x', {}.25, '{}')"#,
            1 + r.below(200),
            r.below(900),
            r.pick(&["north", "west", "south"])
        ),
        4 => format!(r#"DELETE FROM "Shop"."Orders" WHERE id = {id}"#),
        5 => format!(r#"UPDATE "Shop"."Orders" SET id = id + 1000000 WHERE id = {id}"#),
        6 => format!(
            r#"UPDATE "Shop".customers SET name = 'c{}', tier = '{}' WHERE id = {}"#,
            r.below(1000),
            r.pick(&["gold", "silver", "Gold"]),
            1 + r.below(200)
        ),
        7 => format!(
            r#"INSERT INTO "Shop".tmp_events VALUES ({}, '{{"k": {}}}', now(), {}) ON CONFLICT (id) DO NOTHING"#,
            10_000 + r.below(100_000),
            r.below(50),
            r.pick(&["true", "false", "NULL"])
        ),
        8 => format!(
            r#"UPDATE "Shop".tmp_events SET payload = '{{"u": {}}}', old_flag = NOT old_flag WHERE id = {}"#,
            r.below(9),
            1 + r.below(1000)
        ),
        9 => format!(r#"DELETE FROM "Shop".tmp_events WHERE id = {}"#, 1 + r.below(1000)),
        10 => format!(
            r#"UPDATE "Shop".audit_bak SET note_txt = note_txt || '.' WHERE id = {}"#,
            1 + r.below(100)
        ),
        _ => format!(
            r#"UPDATE "Shop".audit_bak SET id = id + 100000 WHERE id = {}"#,
            1 + r.below(100)
        ),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn renames_hold_through_load_changes_and_validation_postgres() -> anyhow::Result<()> {
    let src = PgServer::start()?;
    let dst = PgServer::start()?;
    let s = src.client("postgres").await?;
    s.batch_execute(
        r#"CREATE SCHEMA "Shop";
         CREATE TABLE "Shop".customers (id int PRIMARY KEY, name text NOT NULL, tier text);
         INSERT INTO "Shop".customers SELECT i, 'c' || i, (ARRAY['gold', 'silver'])[1 + i % 2] FROM generate_series(1, 200) i;
         CREATE TABLE "Shop"."Orders" (id serial PRIMARY KEY, "Customer_Id" int REFERENCES "Shop".customers (id),
                "Note" text, secret text, amount numeric(10,2) CHECK (amount >= 0), region text);
         INSERT INTO "Shop"."Orders" ("Customer_Id", "Note", secret, amount, region)
           SELECT 1 + i % 200, 'n' || i, 's' || i, (i % 900) + 0.5, (ARRAY['north', 'south', 'west', 'east'])[1 + i % 4]
           FROM generate_series(1, 20000) i;
         CREATE INDEX orders_note ON "Shop"."Orders" (lower("Note"));
         CREATE INDEX orders_secret ON "Shop"."Orders" (secret);
         CREATE TABLE "Shop".tmp_events (id bigint PRIMARY KEY, payload jsonb, created_at timestamptz, old_flag boolean);
         INSERT INTO "Shop".tmp_events SELECT i, jsonb_build_object('i', i), timestamptz '2024-01-01' + i * interval '1 minute',
                i % 2 = 0 FROM generate_series(1, 1000) i;
         CREATE TABLE "Shop".audit_bak (id int PRIMARY KEY, note_txt text);
         INSERT INTO "Shop".audit_bak SELECT i, 'a' || i FROM generate_series(1, 100) i;
         ANALYZE;"#,
    )
    .await?;
    let mut f = Ferry::start(2, 5000, &[])?;
    let dir = tempfile::tempdir()?;
    let mappings = mapping_file(&dir, PG_MAPPINGS);
    create_typed(
        &f,
        "ren",
        &src.url("postgres"),
        &dst.url("postgres"),
        "full-load-and-cdc",
        r#"{"ValidationSettings": {"EnableValidation": true, "PartitionSize": 1000},
            "Ferry": {"SegmentTargetBytes": 262144, "SplitTablesLargerThan": 0}}"#,
        &["--table-mappings", &mappings],
    );
    f.ok(&["task", "start", "ren"]);
    let writer = spawn_writes(src.client("postgres").await?, 15, 0x9e37_79b9_7f4a_7c15, pg_change);
    // The streaming worker dies mid-writes; its successor resumes.
    std::thread::sleep(Duration::from_secs(6));
    f.kill_stream_worker()?;
    let changes = writer.await??;
    assert!(changes > 500, "the writer made only {changes} changes");
    wait_caught_up(&f, "ren");
    let d = dst.client("postgres").await?;
    for (table, want_sql, got_sql) in PG_EXPECTED {
        let want = pg_rows(&s, want_sql).await?;
        let got = pg_rows(&d, got_sql).await?;
        assert_same(table, &want, &got);
    }
    // The removed column and its index are not on the target; the renamed
    // column's index and check constraint are, by the new names.
    let (cols, defs) = columns_and_indexes(&d, "store", "orders").await?;
    assert_eq!(cols, "id,customer_id,note,amount,region");
    let amount = pg_rows(
        &d,
        "SELECT data_type::text FROM information_schema.columns WHERE table_schema = 'store' AND table_name = 'orders' AND column_name = 'amount'",
    )
    .await?;
    assert_eq!(amount[0][0].as_deref(), Some("double precision"));
    assert_eq!(defs.len(), 2, "{defs:?}");
    assert!(defs.iter().any(|d| d.contains("lower(note)")), "{defs:?}");
    let checks = pg_rows(
        &d,
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'store.orders'::regclass AND contype = 'c'",
    )
    .await?;
    assert_eq!(checks.len(), 1, "{checks:?}");
    // Nothing landed under the source's names.
    let stray = pg_rows(&d, "SELECT count(*)::text FROM pg_namespace WHERE nspname = 'Shop'").await?;
    assert_eq!(stray[0][0].as_deref(), Some("0"));
    // Validation compares through the renames: no false difference.
    assert_validated(&f, "ren");
    Ok(())
}

/// MariaDB → PostgreSQL, where lower-casing is the usual reason for rules:
/// database `Shop` → schema `shop`, `Orders` → `orders` with its columns
/// lower-cased and `Secret` removed, `LineItems` → `order_lines`.
#[tokio::test(flavor = "multi_thread")]
async fn renames_hold_through_load_and_changes_mysql_to_postgres() -> anyhow::Result<()> {
    let my = MariaDbServer::start()?;
    let pg = PgServer::start()?;
    let mut m = my.client("mysql").await?;
    m.query_drop("CREATE DATABASE `Shop` CHARACTER SET utf8mb4").await?;
    let mut m = my.client("Shop").await?;
    m.query_drop(
        "CREATE TABLE `Orders` (`Id` int PRIMARY KEY AUTO_INCREMENT, `CustName` varchar(40), `Secret` varchar(10),
                                `Total` decimal(10,2), KEY idx_cust (`CustName`), KEY idx_secret (`Secret`))",
    )
    .await?;
    m.query_drop(
        "CREATE TABLE `LineItems` (`OrderId` int, `LineNo` int, `Sku` varchar(20), PRIMARY KEY (`OrderId`, `LineNo`))",
    )
    .await?;
    m.query_drop("SET SESSION max_recursive_iterations = 100000").await?;
    m.query_drop(
        "INSERT INTO `Orders` WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 6000)
         SELECT i, CONCAT('cust', i % 97), CONCAT('s', i), (i % 700) + 0.5 FROM n",
    )
    .await?;
    m.query_drop(
        "INSERT INTO `LineItems` WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 6000)
         SELECT 1 + i % 2000, i, CONCAT('sku', i % 31) FROM n",
    )
    .await?;
    let f = Ferry::start(2, 5000, &[])?;
    let dir = tempfile::tempdir()?;
    let mappings = mapping_file(
        &dir,
        r#"{"rules": [
          {"rule-type": "selection", "rule-id": "1", "rule-name": "all", "rule-action": "include",
           "object-locator": {"schema-name": "Shop", "table-name": "%"}},
          {"rule-type": "transformation", "rule-id": "2", "rule-name": "db", "rule-action": "convert-lowercase",
           "rule-target": "schema", "object-locator": {"schema-name": "%"}},
          {"rule-type": "transformation", "rule-id": "3", "rule-name": "orders", "rule-action": "convert-lowercase",
           "rule-target": "table", "object-locator": {"schema-name": "Shop", "table-name": "Orders"}},
          {"rule-type": "transformation", "rule-id": "4", "rule-name": "lines", "rule-action": "rename",
           "rule-target": "table", "object-locator": {"schema-name": "Shop", "table-name": "LineItems"}, "value": "order_lines"},
          {"rule-type": "transformation", "rule-id": "5", "rule-name": "ocols", "rule-action": "convert-lowercase",
           "rule-target": "column", "object-locator": {"schema-name": "Shop", "table-name": "Orders", "column-name": "[CIT]%"}},
          {"rule-type": "transformation", "rule-id": "6", "rule-name": "secret", "rule-action": "remove-column",
           "rule-target": "column", "object-locator": {"schema-name": "Shop", "table-name": "Orders", "column-name": "Secret"}},
          {"rule-type": "transformation", "rule-id": "7", "rule-name": "lcols", "rule-action": "convert-lowercase",
           "rule-target": "column", "object-locator": {"schema-name": "Shop", "table-name": "LineItems", "column-name": "%"}},
          {"rule-type": "transformation", "rule-id": "8", "rule-name": "tag", "rule-action": "add-column",
           "rule-target": "column", "object-locator": {"schema-name": "Shop", "table-name": "Orders"},
           "value": "tag", "expression": "$CustName||':'||$Total", "data-type": {"type": "string", "length": 80}},
          {"rule-type": "transformation", "rule-id": "9", "rule-name": "total", "rule-action": "change-data-type",
           "rule-target": "column", "object-locator": {"schema-name": "Shop", "table-name": "Orders", "column-name": "Total"},
           "data-type": {"type": "string", "length": 20}}
        ]}"#,
    );
    create_typed(
        &f,
        "myren",
        &my.url("Shop"),
        &pg.url("postgres"),
        "full-load-and-cdc",
        r#"{"ValidationSettings": {"EnableValidation": true, "PartitionSize": 1000},
            "Ferry": {"SegmentTargetBytes": 65536, "SplitTablesLargerThan": 0}}"#,
        &["--table-mappings", &mappings],
    );
    f.ok(&["task", "start", "myren"]);
    let mut w = my.client("Shop").await?;
    let (mut r, end) = (Rng(0x2545_f491_4f6c_dd1d), Instant::now() + Duration::from_secs(12));
    let mut changes = 0;
    while Instant::now() < end {
        let id = 1 + r.below(3000);
        let sql = match r.below(7) {
            0 => format!(
                "UPDATE `Orders` SET `CustName` = '{}', `Total` = {}.25 WHERE `Id` = {id}",
                r.pick(&["ann", "Bob", "carl"]),
                r.below(700)
            ),
            1 => format!("UPDATE `Orders` SET `Secret` = 'z{}' WHERE `Id` = {id}", r.below(50)),
            2 => format!(
                "INSERT INTO `Orders` (`CustName`, `Secret`, `Total`) VALUES ('new', 'x', {}.5)",
                r.below(700)
            ),
            3 => format!("DELETE FROM `Orders` WHERE `Id` = {id}"),
            // Negative: MariaDB moves the AUTO_INCREMENT counter past a
            // larger key, so a shifted key could meet an inserted one.
            4 => format!("UPDATE `Orders` SET `Id` = -`Id` WHERE `Id` = {id}"),
            5 => format!(
                "UPDATE `LineItems` SET `Sku` = 'u{}' WHERE `OrderId` = {}",
                r.below(40),
                1 + r.below(2000)
            ),
            _ => format!(
                "INSERT IGNORE INTO `LineItems` VALUES ({}, {}, 'n')",
                1 + r.below(2000),
                10_000 + r.below(100_000)
            ),
        };
        w.query_drop(&sql).await?;
        changes += 1;
    }
    assert!(changes > 300, "the writer made only {changes} changes");
    wait_caught_up(&f, "myren");
    let p = pg.client("postgres").await?;
    let want = mysql_rows(
        &mut m,
        "SELECT `Id`, `CustName`, `Total`, CONCAT(`CustName`, ':', `Total`) FROM `Orders` ORDER BY `Id`",
    )
    .await?;
    let got = pg_rows(
        &p,
        "SELECT id::text, custname, total::text, tag FROM shop.orders o ORDER BY o.id",
    )
    .await?;
    assert_same("orders", &want, &got);
    let want = mysql_rows(
        &mut m,
        "SELECT `OrderId`, `LineNo`, `Sku` FROM `LineItems` ORDER BY `OrderId`, `LineNo`",
    )
    .await?;
    let got = pg_rows(
        &p,
        "SELECT orderid::text, lineno::text, sku FROM shop.order_lines l ORDER BY l.orderid, l.lineno",
    )
    .await?;
    assert_same("order_lines", &want, &got);
    let (cols, defs) = columns_and_indexes(&p, "shop", "orders").await?;
    assert_eq!(cols, "id,custname,total,tag");
    let total = pg_rows(
        &p,
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'shop.orders'::regclass AND attname = 'total'",
    )
    .await?;
    assert_eq!(total[0][0].as_deref(), Some("character varying(20)"));
    assert!(
        defs.iter().any(|d| d.contains("(custname)")) && !defs.iter().any(|d| d.contains("ecret")),
        "{defs:?}"
    );
    assert_validated(&f, "myren");
    Ok(())
}

/// `define-primary-key` on a keyless table (the source keeps every old
/// value in its changes: REPLICA IDENTITY FULL): the target table gets the
/// key, by the target names another rule gives its column, and CDC's
/// updates and deletes find their rows by it. `include-column` rules keep
/// two of its three columns (one of them renamed too).
#[tokio::test(flavor = "multi_thread")]
async fn a_defined_primary_key_keys_a_keyless_table_and_include_column_narrows_it() -> anyhow::Result<()> {
    let src = PgServer::start()?;
    let dst = PgServer::start()?;
    let s = src.client("postgres").await?;
    s.batch_execute(
        "CREATE TABLE public.events (seq int NOT NULL, at timestamptz, msg text);
         ALTER TABLE public.events REPLICA IDENTITY FULL;
         INSERT INTO public.events SELECT i, timestamptz '2024-01-01' + i * interval '1 hour', 'm' || i
           FROM generate_series(1, 500) i;",
    )
    .await?;
    let dir = tempfile::tempdir()?;
    let mappings = mapping_file(
        &dir,
        r#"{"rules": [
          {"rule-type": "selection", "rule-id": "1", "rule-name": "all", "rule-action": "include",
           "object-locator": {"schema-name": "public", "table-name": "%"}},
          {"rule-type": "transformation", "rule-id": "2", "rule-name": "pk", "rule-action": "define-primary-key",
           "rule-target": "table", "object-locator": {"schema-name": "public", "table-name": "events"},
           "primary-key-def": {"name": "events_pk", "origin": "primary-key", "columns": ["seq"]}},
          {"rule-type": "transformation", "rule-id": "3", "rule-name": "seq", "rule-action": "rename",
           "rule-target": "column", "object-locator": {"schema-name": "public", "table-name": "events", "column-name": "seq"},
           "value": "event_seq"},
          {"rule-type": "transformation", "rule-id": "4", "rule-name": "keep-seq", "rule-action": "include-column",
           "rule-target": "column", "object-locator": {"schema-name": "public", "table-name": "events", "column-name": "seq"}},
          {"rule-type": "transformation", "rule-id": "5", "rule-name": "keep-msg", "rule-action": "include-column",
           "rule-target": "column", "object-locator": {"schema-name": "public", "table-name": "events", "column-name": "m%"}}
        ]}"#,
    );
    let f = Ferry::start(1, 5000, &[])?;
    create_typed(
        &f,
        "keyed",
        &src.url("postgres"),
        &dst.url("postgres"),
        "full-load-and-cdc",
        "{}",
        &["--table-mappings", &mappings],
    );
    f.ok(&["task", "start", "keyed"]);
    wait_caught_up(&f, "keyed");
    s.batch_execute(
        "UPDATE public.events SET msg = 'changed' WHERE seq % 7 = 0;
         DELETE FROM public.events WHERE seq % 11 = 0;
         INSERT INTO public.events SELECT i, NULL, 'new' FROM generate_series(1001, 1050) i;
         UPDATE public.events SET seq = seq + 5000 WHERE seq % 13 = 0;",
    )
    .await?;
    wait_caught_up(&f, "keyed");
    let d = dst.client("postgres").await?;
    // `at` is not included: the target has the key column (renamed) and msg.
    let want = pg_rows(&s, "SELECT (seq, msg)::text FROM public.events ORDER BY seq").await?;
    let got = pg_rows(
        &d,
        "SELECT (event_seq, msg)::text FROM public.events ORDER BY event_seq",
    )
    .await?;
    let (cols, _) = columns_and_indexes(&d, "public", "events").await?;
    assert_eq!(cols, "event_seq,msg");
    assert_same("events", &want, &got);
    let key = pg_rows(
        &d,
        "SELECT conname::text || ':' || pg_get_constraintdef(oid) FROM pg_constraint
          WHERE conrelid = 'public.events'::regclass AND contype = 'p'",
    )
    .await?;
    assert_eq!(key[0][0].as_deref(), Some("events_pk:PRIMARY KEY (event_seq)"));
    Ok(())
}

/// Rules that cannot hold fail the task before any row moves, naming the
/// rules; kinds Ferry does not support are refused when the task is created.
#[tokio::test(flavor = "multi_thread")]
async fn rules_that_cannot_hold_are_refused() -> anyhow::Result<()> {
    let src = PgServer::start()?;
    let dst = PgServer::start()?;
    let s = src.client("postgres").await?;
    s.batch_execute(
        "CREATE TABLE public.a (id int PRIMARY KEY, v text);
         CREATE TABLE public.b (id int PRIMARY KEY, v text);
         INSERT INTO public.a VALUES (1, 'x'); INSERT INTO public.b VALUES (1, 'y');",
    )
    .await?;
    let f = Ferry::start(1, 5000, &[])?;
    let dir = tempfile::tempdir()?;
    let select = r#"{"rule-type": "selection", "rule-id": "1", "rule-name": "all", "rule-action": "include",
                     "object-locator": {"schema-name": "public", "table-name": "%"}}"#;
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "conflict",
            r#"{"rule-type": "transformation", "rule-id": "21", "rule-name": "x", "rule-action": "add-prefix", "rule-target": "table",
                "object-locator": {"schema-name": "public", "table-name": "a"}, "value": "p_"},
               {"rule-type": "transformation", "rule-id": "22", "rule-name": "y", "rule-action": "convert-uppercase", "rule-target": "table",
                "object-locator": {"schema-name": "public", "table-name": "%"}}"#,
            &["rule 22", "rule 21", "public.a"],
        ),
        (
            "onto",
            r#"{"rule-type": "transformation", "rule-id": "31", "rule-name": "x", "rule-action": "rename", "rule-target": "table",
                "object-locator": {"schema-name": "public", "table-name": "%"}, "value": "same"}"#,
            &["public.a", "public.b", "public.same"],
        ),
        (
            "unknown",
            r#"{"rule-type": "transformation", "rule-id": "61", "rule-name": "x", "rule-action": "add-column", "rule-target": "column",
                "object-locator": {"schema-name": "public", "table-name": "a"}, "value": "c", "expression": "$nope",
                "data-type": {"type": "int4"}}"#,
            &["rule 61", "nope", "public.a"],
        ),
        (
            "rekeyed",
            r#"{"rule-type": "transformation", "rule-id": "71", "rule-name": "x", "rule-action": "define-primary-key", "rule-target": "table",
                "object-locator": {"schema-name": "public", "table-name": "a"}, "primary-key-def": {"name": "k", "columns": ["v"]}}"#,
            &["rule 71", "has a primary key", "public.a"],
        ),
        (
            "retyped-key",
            r#"{"rule-type": "transformation", "rule-id": "42", "rule-name": "x", "rule-action": "change-data-type", "rule-target": "column",
                "object-locator": {"schema-name": "public", "table-name": "b", "column-name": "id"}, "data-type": {"type": "int8"}}"#,
            &["rule 42", "primary key", "public.b"],
        ),
        (
            "key",
            r#"{"rule-type": "transformation", "rule-id": "41", "rule-name": "x", "rule-action": "remove-column", "rule-target": "column",
                "object-locator": {"schema-name": "public", "table-name": "b", "column-name": "id"}}"#,
            &["rule 41", "primary key", "public.b"],
        ),
        (
            // Without REPLICA IDENTITY FULL, v's old value is not logged.
            "before-all",
            r#"{"rule-type": "transformation", "rule-id": "81", "rule-name": "x", "rule-action": "add-before-image-columns", "rule-target": "column",
                "object-locator": {"schema-name": "public", "table-name": "a", "column-name": "%"},
                "before-image-def": {"column-prefix": "BI_", "column-filter": "all"}}"#,
            &["rule 81", "BI_v", "public.a", "REPLICA IDENTITY FULL"],
        ),
    ];
    for (name, rules, want) in cases {
        let mappings = mapping_file(&dir, &format!(r#"{{"rules": [{select}, {rules}]}}"#));
        create_typed(
            &f,
            name,
            &src.url("postgres"),
            &dst.url("postgres"),
            "full-load",
            "{}",
            &["--table-mappings", &mappings],
        );
        f.ok(&["task", "start", name]);
        let (ok, out, err) = f.ferry(&["task", "wait", name, "--for", "full-load", "--timeout", "60"]);
        assert!(!ok, "{name}: completed: {out}");
        for w in *want {
            assert!(err.contains(w), "{name}: {err} (wanted {w})");
        }
    }
    // Refused when the task is created, with the rule id and JSON path: a
    // kind Ferry does not support, and an expression outside its subset.
    for (rule, path, what) in [
        (
            r#"{"rule-type": "transformation", "rule-id": "51", "rule-name": "x", "rule-action": "rename",
                "rule-target": "index", "object-locator": {"schema-name": "public", "table-name": "a"}, "value": "i"}"#,
            "$.rules[1].rule-target",
            "index",
        ),
        (
            r#"{"rule-type": "transformation", "rule-id": "51", "rule-name": "x", "rule-action": "add-column",
                "rule-target": "column", "object-locator": {"schema-name": "public", "table-name": "a"}, "value": "c",
                "expression": "upper($v)", "data-type": {"type": "string", "length": 10}}"#,
            "$.rules[1].expression",
            "unsupported",
        ),
        (
            r#"{"rule-type": "transformation", "rule-id": "51", "rule-name": "x", "rule-action": "add-column",
                "rule-target": "column", "object-locator": {"schema-name": "public", "table-name": "a"}, "value": "c",
                "expression": "$v", "data-type": {"type": "clob"}}"#,
            "$.rules[1].data-type",
            "clob",
        ),
    ] {
        let mappings = mapping_file(&dir, &format!(r#"{{"rules": [{select}, {rule}]}}"#));
        let (ok, _, err) = f.ferry(&[
            "task",
            "create",
            "refused",
            "--source",
            &src.url("postgres"),
            "--target",
            &dst.url("postgres"),
            "--table-mappings",
            &mappings,
        ]);
        assert!(!ok);
        assert!(
            err.contains("rule 51") && err.contains(path) && err.contains(what),
            "{err}"
        );
    }
    // Nothing was created on the target by the refused tasks.
    let d = dst.client("postgres").await?;
    let tables = pg_rows(
        &d,
        "SELECT count(*)::text FROM pg_tables WHERE schemaname = 'public' AND tablename IN ('a', 'b', 'same', 'p_a', 'A', 'B')",
    )
    .await?;
    assert_eq!(tables[0][0].as_deref(), Some("0"));
    Ok(())
}

/// PostgreSQL → MariaDB: the schema (a MySQL database there), a table and
/// its columns renamed, one removed with its index, through the load and the
/// set-based CDC batches; another table with a before-image column of its
/// key (applied in order, not as sets), and one (REPLICA IDENTITY FULL)
/// with before-image columns of all its columns.
#[tokio::test(flavor = "multi_thread")]
async fn renames_hold_through_load_and_changes_postgres_to_mysql() -> anyhow::Result<()> {
    let pg = PgServer::start()?;
    let my = MariaDbServer::start()?;
    let p = pg.client("postgres").await?;
    p.batch_execute(
        r#"CREATE SCHEMA app;
         CREATE TABLE app."Users" (id int PRIMARY KEY, "Email" text NOT NULL, pin text, score numeric(8,2));
         CREATE INDEX users_email ON app."Users" ("Email");
         CREATE INDEX users_pin ON app."Users" (pin);
         INSERT INTO app."Users" SELECT i, 'u' || i || '@x', 'p' || i, i / 4.0 FROM generate_series(1, 3000) i;
         CREATE TABLE app.notes (id int PRIMARY KEY, body text);
         INSERT INTO app.notes SELECT i, 'b' || i FROM generate_series(1, 100) i;
         CREATE TABLE app.docs (id int PRIMARY KEY, title varchar(20), body text);
         ALTER TABLE app.docs REPLICA IDENTITY FULL;
         INSERT INTO app.docs SELECT i, 't' || i, 'body ' || i FROM generate_series(1, 50) i;"#,
    )
    .await?;
    let f = Ferry::start(1, 5000, &[])?;
    let dir = tempfile::tempdir()?;
    let mappings = mapping_file(
        &dir,
        r#"{"rules": [
          {"rule-type": "selection", "rule-id": "1", "rule-name": "all", "rule-action": "include",
           "object-locator": {"schema-name": "app", "table-name": "%"}},
          {"rule-type": "transformation", "rule-id": "2", "rule-name": "db", "rule-action": "add-suffix",
           "rule-target": "schema", "object-locator": {"schema-name": "app"}, "value": "_copy"},
          {"rule-type": "transformation", "rule-id": "3", "rule-name": "t", "rule-action": "rename",
           "rule-target": "table", "object-locator": {"schema-name": "app", "table-name": "Users"}, "value": "members"},
          {"rule-type": "transformation", "rule-id": "4", "rule-name": "c", "rule-action": "convert-lowercase",
           "rule-target": "column", "object-locator": {"schema-name": "app", "table-name": "Users", "column-name": "E%"}},
          {"rule-type": "transformation", "rule-id": "5", "rule-name": "p", "rule-action": "remove-column",
           "rule-target": "column", "object-locator": {"schema-name": "app", "table-name": "Users", "column-name": "pin"}},
          {"rule-type": "transformation", "rule-id": "6", "rule-name": "bi", "rule-action": "add-before-image-columns",
           "rule-target": "column", "object-locator": {"schema-name": "app", "table-name": "notes", "column-name": "%"},
           "before-image-def": {"column-prefix": "BI_", "column-suffix": "", "column-filter": "pk-only"}},
          {"rule-type": "transformation", "rule-id": "7", "rule-name": "old", "rule-action": "add-before-image-columns",
           "rule-target": "column", "object-locator": {"schema-name": "app", "table-name": "docs", "column-name": "%"},
           "before-image-def": {"column-prefix": "OLD_", "column-filter": "all"}}
        ]}"#,
    );
    create_typed(
        &f,
        "pmren",
        &pg.url("postgres"),
        &my.url("mysql"),
        "full-load-and-cdc",
        "{}",
        &["--table-mappings", &mappings],
    );
    f.ok(&["task", "start", "pmren"]);
    wait_caught_up(&f, "pmren");
    p.batch_execute(
        r#"UPDATE app."Users" SET "Email" = 'changed', pin = 'x' WHERE id % 7 = 0;
         UPDATE app."Users" SET pin = 'only the removed column' WHERE id % 11 = 0;
         DELETE FROM app."Users" WHERE id % 13 = 0;
         INSERT INTO app."Users" SELECT i, 'n' || i, 'p', 1.25 FROM generate_series(5001, 5100) i;
         UPDATE app."Users" SET id = id + 100000 WHERE id % 17 = 0;
         UPDATE app.notes SET body = body || '!' WHERE id % 3 = 0;
         INSERT INTO app.notes SELECT i, 'new' FROM generate_series(201, 210) i;
         UPDATE app.notes SET id = id + 1000 WHERE id % 5 = 0 AND id <= 100;
         UPDATE app.docs SET title = 'T' || id WHERE id % 2 = 0;
         UPDATE app.docs SET id = id + 100, body = 'moved' WHERE id % 5 = 0;"#,
    )
    .await?;
    wait_caught_up(&f, "pmren");
    let want = pg_rows(
        &p,
        r#"SELECT id::text, "Email", score::text FROM app."Users" u ORDER BY u.id"#,
    )
    .await?;
    let mut m = my.client("app_copy").await?;
    let got = mysql_rows(&mut m, "SELECT id, email, score FROM members ORDER BY id").await?;
    assert_same("members", &want, &got);
    let cols = mysql_rows(
        &mut m,
        "SELECT GROUP_CONCAT(COLUMN_NAME ORDER BY ORDINAL_POSITION) FROM information_schema.COLUMNS
          WHERE TABLE_SCHEMA = 'app_copy' AND TABLE_NAME = 'members'",
    )
    .await?;
    assert_eq!(cols[0][0].as_deref(), Some("id,email,score"));
    // The before-image column holds each row's key before its last update:
    // NULL for rows loaded or inserted and not updated since, the old key for
    // rows whose key changed, the same key for rows updated otherwise.
    let bi = mysql_rows(&mut m, "SELECT id, body, BI_id FROM notes ORDER BY id").await?;
    let want = pg_rows(&p, "SELECT id::text, body FROM app.notes n ORDER BY n.id").await?;
    assert_eq!(bi.len(), want.len());
    for (r, w) in bi.iter().zip(&want) {
        assert_eq!(r[..2], w[..], "notes row");
        let id: i64 = r[0].as_deref().unwrap().parse()?;
        let before = if id > 1000 {
            Some((id - 1000).to_string())
        } else if id <= 100 && id % 3 == 0 {
            Some(id.to_string())
        } else {
            None
        };
        assert_eq!(r[2], before, "BI_id of row {id}");
    }
    let indexed = mysql_rows(
        &mut m,
        "SELECT GROUP_CONCAT(DISTINCT COLUMN_NAME ORDER BY COLUMN_NAME) FROM information_schema.STATISTICS
          WHERE TABLE_SCHEMA = 'app_copy' AND TABLE_NAME = 'members'",
    )
    .await?;
    assert_eq!(indexed[0][0].as_deref(), Some("email,id"));
    // column-filter all: every column's value before the row's last update,
    // computed here from the updates above (rows updated twice keep the
    // image before the second).
    let docs = mysql_rows(
        &mut m,
        "SELECT id, title, body, OLD_id, OLD_title, OLD_body FROM docs ORDER BY id",
    )
    .await?;
    assert_eq!(docs.len(), 50);
    for r in &docs {
        let id: i64 = r[0].as_deref().unwrap().parse()?;
        let orig = if id > 100 { id - 100 } else { id };
        let title = |i: i64| if i % 2 == 0 { format!("T{i}") } else { format!("t{i}") };
        let s = |v: String| Some(v);
        let want: Vec<Option<String>> = if orig % 5 == 0 {
            // The second update saw the first's title.
            vec![
                s(id.to_string()),
                s(title(orig)),
                s("moved".into()),
                s(orig.to_string()),
                s(title(orig)),
                s(format!("body {orig}")),
            ]
        } else if orig % 2 == 0 {
            vec![
                s(id.to_string()),
                s(title(orig)),
                s(format!("body {orig}")),
                s(orig.to_string()),
                s(format!("t{orig}")),
                s(format!("body {orig}")),
            ]
        } else {
            vec![
                s(id.to_string()),
                s(title(orig)),
                s(format!("body {orig}")),
                None,
                None,
                None,
            ]
        };
        assert_eq!(r, &want, "docs row {id}");
    }
    Ok(())
}
