//! Row-level validation: after a full load the tables validate clean; then
//! rows are changed, deleted and added on the target only, and a
//! ValidationOnly task reports exactly those keys with the right failure
//! types — same-engine (checksums and drill-down) and across engines
//! (through the type mapping).
use ferry_tests::mariadb::{create_sample, MariaDbServer};
use ferry_tests::*;
use mysql_async::prelude::Queryable;
use serde_json::Value;
use std::collections::BTreeSet;

/// The table's failures as (key, type), from `ferry validate --output json`.
fn failures(report: &Value, table: &str) -> BTreeSet<(String, String)> {
    let t = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == table)
        .unwrap_or_else(|| panic!("no table {table} in {report}"));
    t["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["key"].as_str().unwrap().to_string(),
                f["failure_type"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn set(items: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    items.iter().map(|(k, t)| (k.to_string(), t.to_string())).collect()
}

fn table<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == name)
        .unwrap_or_else(|| panic!("no table {name} in {report}"))
}

/// Runs a task to completion and returns `ferry validate`'s (exit ok, JSON).
fn run_and_validate(f: &Ferry, task: &str) -> (bool, Value) {
    f.ok(&["task", "start", task]);
    let (ok, out, err) = f.ferry(&["task", "wait", task, "--for", "completed", "--timeout", "300"]);
    assert!(
        ok,
        "wait failed: {out}{err}\nstatus: {:?}\nworker: {}",
        f.status(task),
        f.workers[0].log_text()
    );
    let (ok, out, err) = f.ferry(&["validate", task, "--output", "json"]);
    let report: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    (ok, report)
}

#[tokio::test(flavor = "multi_thread")]
async fn validation_finds_exactly_the_rows_that_differ_postgres() -> anyhow::Result<()> {
    let src = PgServer::start()?;
    let dst = PgServer::start()?;
    let s = src.client("postgres").await?;
    s.batch_execute(
        "CREATE TABLE acct (id bigint PRIMARY KEY, name text, amount numeric(12,2), at timestamptz,
                            tags text[], doc jsonb, data bytea, f real, d date);
         INSERT INTO acct SELECT i, 'name ' || i, i * 1.25, '2024-01-01 00:00:00+00'::timestamptz + i * interval '1 second',
                                ARRAY['a' || i, NULL], jsonb_build_object('i', i, 'x', ARRAY[1, 2]), decode(md5(i::text), 'hex'),
                                i / 3.0, CASE WHEN i % 1000 = 0 THEN 'infinity'::date ELSE date '2000-01-01' + i % 5000 END
         FROM generate_series(1, 30000) i;
         CREATE TABLE pair (region text, n int, payload text, PRIMARY KEY (region, n));
         INSERT INTO pair SELECT (ARRAY['north', 'south', 'east', 'west'])[1 + i % 4], i, md5(i::text)
         FROM generate_series(1, 5000) i;
         CREATE TABLE loose (a int, b text);
         INSERT INTO loose VALUES (1, 'x'), (1, 'x');
         ANALYZE;",
    )
    .await?;
    let f = Ferry::start(2, 5000, &[])?;
    // Several segments, and partitions of 500 rows under them.
    let settings = r#"{"ValidationSettings": {"EnableValidation": true, "PartitionSize": 500},
                       "Ferry": {"SegmentTargetBytes": 524288, "SplitTablesLargerThan": 0}}"#;
    create_full_load(&f, "load", &src.url("postgres"), &dst.url("postgres"), settings, &[]);
    let (ok, report) = run_and_validate(&f, "load");
    assert!(ok, "a fresh load must validate clean: {report}");
    let acct = table(&report, "public.acct");
    assert_eq!(acct["state"], "Validated", "{report}");
    assert_eq!(acct["validated_records"], 30000, "{report}");
    assert_eq!(table(&report, "public.pair")["validated_records"], 5000, "{report}");
    assert_eq!(table(&report, "public.loose")["state"], "No primary key", "{report}");
    let st = f.status("load").unwrap();
    assert!(
        table_status(&st, "acct")["segments_total"].as_u64().unwrap() >= 3,
        "{st}"
    );

    // Change the target only: one row changed, one deleted, one added per
    // table; a value only the raw-text comparison can see (infinity).
    let d = dst.client("postgres").await?;
    d.batch_execute(
        "UPDATE acct SET name = 'tampered' WHERE id = 12345;
         UPDATE acct SET d = '-infinity' WHERE id = 7000;
         DELETE FROM acct WHERE id = 20001;
         INSERT INTO acct (id, name) VALUES (999999, 'extra');
         UPDATE pair SET payload = 'x' WHERE region = 'south' AND n = 9;
         DELETE FROM pair WHERE region = 'west' AND n = 11;
         INSERT INTO pair VALUES ('up', 1, 'only here');",
    )
    .await?;
    create_full_load(
        &f,
        "check",
        &src.url("postgres"),
        &dst.url("postgres"),
        r#"{"ValidationSettings": {"ValidationOnly": true, "PartitionSize": 500}, "Ferry": {"SegmentTargetBytes": 524288, "SplitTablesLargerThan": 0}}"#,
        &[],
    );
    let (ok, report) = run_and_validate(&f, "check");
    assert!(!ok, "differences must fail `ferry validate`: {report}");
    assert_eq!(
        failures(&report, "public.acct"),
        set(&[
            ("12345", "RECORD_DIFF"),
            ("7000", "RECORD_DIFF"),
            ("20001", "MISSING_TARGET"),
            ("999999", "MISSING_SOURCE")
        ]),
        "{report}"
    );
    assert_eq!(
        failures(&report, "public.pair"),
        set(&[
            ("south,9", "RECORD_DIFF"),
            ("west,11", "MISSING_TARGET"),
            ("up,1", "MISSING_SOURCE")
        ]),
        "{report}"
    );
    assert_eq!(table(&report, "public.acct")["state"], "Mismatched records");
    assert_eq!(table(&report, "public.acct")["mismatched_records"], 4);
    // The differing columns are named.
    let details: Vec<String> = table(&report, "public.acct")["failures"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["key"] == "12345")
        .map(|f| f["details"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(details, vec!["columns differ: name".to_string()], "{report}");
    // The target's failures table holds the same rows, once each, even
    // though "load" and "check" both validated (per task).
    let rows = d
        .query(
            "SELECT table_name, key, failure_type FROM ferry.validation_failures WHERE task = 'check' ORDER BY 1, 2",
            &[],
        )
        .await?;
    let got: Vec<(String, String, String)> = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    assert_eq!(got.len(), 7, "{got:?}");
    assert!(
        got.contains(&("acct".into(), "20001".into(), "MISSING_TARGET".into())),
        "{got:?}"
    );
    let clean: i64 = d
        .query_one(
            "SELECT count(*) FROM ferry.validation_failures WHERE task = 'load'",
            &[],
        )
        .await?
        .get(0);
    assert_eq!(clean, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn validation_compares_through_the_type_mapping_mysql_to_postgres() -> anyhow::Result<()> {
    let my = MariaDbServer::start()?;
    let pg = PgServer::start()?;
    let mut m = my.client("mysql").await?;
    m.query_drop("CREATE DATABASE shop CHARACTER SET utf8mb4").await?;
    let mut m = my.client("shop").await?;
    create_sample(&mut m).await?;
    let f = Ferry::start(2, 5000, &[])?;
    let settings = r#"{"ValidationSettings": {"EnableValidation": true, "PartitionSize": 2000},
                       "Ferry": {"SegmentTargetBytes": 262144, "SplitTablesLargerThan": 0}}"#;
    create_full_load(&f, "my", &my.url("shop"), &pg.url("postgres"), settings, &[]);
    let (ok, report) = run_and_validate(&f, "my");
    // Every value of every type family compares equal through the mapping;
    // the two rows the target could not hold (a NUL in text, year 0) are
    // what is missing, and nothing else.
    assert!(!ok, "{report}");
    for t in report["tables"].as_array().unwrap() {
        let name = t["table"].as_str().unwrap();
        match name {
            "shop.odd" => assert_eq!(
                failures(&report, name),
                set(&[("2", "MISSING_TARGET"), ("3", "MISSING_TARGET")]),
                "{report}"
            ),
            "shop.loose" => assert_eq!(t["state"], "No primary key", "{report}"),
            _ => assert_eq!(t["state"], "Validated", "{name}: {report}"),
        }
    }
    assert_eq!(table(&report, "shop.big")["validated_records"], 60000, "{report}");

    // One value changed on the target is found, by its key.
    let p = pg.client("postgres").await?;
    let id = 9_223_372_036_854_000_000u64 + 777 * 17;
    p.batch_execute(&format!("UPDATE shop.big SET label = 'tampered' WHERE id = {id}"))
        .await?;
    create_full_load(
        &f,
        "check",
        &my.url("shop"),
        &pg.url("postgres"),
        r#"{"ValidationSettings": {"ValidationOnly": true, "PartitionSize": 2000}}"#,
        &["--table-mappings", &mapping_file("big")],
    );
    let (ok, report) = run_and_validate(&f, "check");
    assert!(!ok, "{report}");
    assert_eq!(
        failures(&report, "shop.big"),
        set(&[(&id.to_string(), "RECORD_DIFF")]),
        "{report}"
    );
    Ok(())
}

/// A table-mappings file selecting one table of schema `shop`.
fn mapping_file(table: &str) -> String {
    let path = std::env::temp_dir().join(format!("ferry-validation-mapping-{}-{table}.json", std::process::id()));
    std::fs::write(
        &path,
        format!(
            r#"{{"rules": [{{"rule-type": "selection", "rule-id": "1", "rule-name": "1",
                "object-locator": {{"schema-name": "shop", "table-name": "{table}"}}, "rule-action": "include"}}]}}"#
        ),
    )
    .expect("mapping file");
    path.to_string_lossy().into_owned()
}

/// Validation alongside CDC while pgbench writes to the source: the target
/// trails the source and pgbench rewrites its branch and teller rows many
/// times a second, yet no row is reported (no false alarms from lag).
#[tokio::test(flavor = "multi_thread")]
async fn validation_during_cdc_reports_no_lag() -> anyhow::Result<()> {
    let p = PgbenchPair::new(1)?;
    let f = Ferry::start(2, 3000, &[])?;
    create_typed(
        &f,
        "live",
        &p.src.url("postgres"),
        &p.dst.url("postgres"),
        "full-load-and-cdc",
        r#"{"ValidationSettings": {"EnableValidation": true, "PartitionSize": 2000},
            "Ferry": {"SegmentTargetBytes": 4000000}}"#,
        &[],
    );
    let load = p.write_load(2, 25)?;
    f.ok(&["task", "start", "live"]);
    let validated = |st: &Value| {
        st["tables"]
            .as_array()
            .is_some_and(|ts| ts.len() == 4 && ts.iter().all(|t| t["validation"]["state"] != "Pending records"))
    };
    // Segments pgbench changes after their comparison are compared again
    // (pending meanwhile); no comparison may ever report a difference.
    f.wait_until("validation to finish", std::time::Duration::from_secs(240), || {
        f.status("live").is_some_and(|st| {
            for t in st["tables"].as_array().into_iter().flatten() {
                assert_ne!(t["validation"]["state"], "Mismatched records", "false alarm: {st}");
            }
            validated(&st)
        })
    });
    let st = f.status("live").unwrap();
    finish(load);
    for t in st["tables"].as_array().unwrap() {
        let want = if t["name"] == "pgbench_history" {
            "No primary key"
        } else {
            "Validated"
        };
        assert_eq!(t["validation"]["state"], want, "{st}");
    }
    let accounts = &table_status(&st, "pgbench_accounts")["validation"];
    assert_eq!(accounts["validated_records"], 100000, "{st}");
    assert!(accounts["revalidated_segments"].as_u64().unwrap() > 0, "{st}");
    let (ok, out, err) = f.ferry(&["validate", "live"]);
    assert!(ok, "{out}{err}");
    Ok(())
}

/// A row CDC changes after its range validated clean, applied wrongly on the
/// target (a trigger that fires for replicated changes too): the range is
/// compared again once the change is applied, and exactly that row is
/// reported. Only the ranges the changes touched are compared again.
#[tokio::test(flavor = "multi_thread")]
async fn validation_compares_again_the_ranges_cdc_changes() -> anyhow::Result<()> {
    let src = PgServer::start()?;
    let dst = PgServer::start()?;
    let s = src.client("postgres").await?;
    s.batch_execute(
        "CREATE TABLE acct (id bigint PRIMARY KEY, v text NOT NULL);
         INSERT INTO acct SELECT i, repeat('x', 200) FROM generate_series(1, 40000) i;
         CREATE TABLE quiet (id int PRIMARY KEY, v text);
         INSERT INTO quiet SELECT i, 'q' FROM generate_series(1, 100) i;",
    )
    .await?;
    let f = Ferry::start(2, 3000, &[])?;
    create_typed(
        &f,
        "live",
        &src.url("postgres"),
        &dst.url("postgres"),
        "full-load-and-cdc",
        r#"{"ValidationSettings": {"EnableValidation": true},
            "Ferry": {"SegmentTargetBytes": 1000000, "RevalidateDelaySeconds": 1}}"#,
        &[],
    );
    f.ok(&["task", "start", "live"]);
    let validation = |st: &Value, t: &str| {
        st["tables"]
            .as_array()
            .and_then(|ts| ts.iter().find(|x| x["name"] == t))
            .map_or(Value::Null, |x| x["validation"].clone())
    };
    f.wait_until("the first validation", std::time::Duration::from_secs(120), || {
        f.status("live").is_some_and(|st| {
            validation(&st, "acct")["state"] == "Validated" && validation(&st, "quiet")["state"] == "Validated"
        })
    });
    let st = f.status("live").unwrap();
    let segments = table_status(&st, "acct")["segments_total"].as_u64().unwrap();
    assert!(segments >= 4, "acct should be cut into several segments: {st}");

    // The target corrupts one replicated update.
    let d = dst.client("postgres").await?;
    d.batch_execute(
        "CREATE FUNCTION corrupt() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN IF NEW.id = 777 THEN NEW.v := 'corrupted'; END IF; RETURN NEW; END $$;
         CREATE TRIGGER corrupt BEFORE UPDATE ON acct FOR EACH ROW EXECUTE FUNCTION corrupt();
         ALTER TABLE acct ENABLE ALWAYS TRIGGER corrupt;",
    )
    .await?;
    s.batch_execute("UPDATE acct SET v = 'changed' WHERE id IN (777, 39000)")
        .await?;
    f.wait_until(
        "the changed ranges to be compared again",
        std::time::Duration::from_secs(60),
        || {
            f.status("live")
                .is_some_and(|st| validation(&st, "acct")["state"] == "Mismatched records")
        },
    );
    let (ok, out, err) = f.ferry(&["validate", "live", "--output", "json"]);
    assert!(!ok, "the corrupted row must fail `ferry validate`: {out}{err}");
    let report: Value = serde_json::from_str(&out)?;
    assert_eq!(
        failures(&report, "public.acct"),
        set(&[("777", "RECORD_DIFF")]),
        "{report}"
    );
    let st = f.status("live").unwrap();
    // One source transaction touched the segments of 777 and of 39000.
    let again = validation(&st, "acct")["revalidated_segments"].as_u64().unwrap();
    assert!((1..=2).contains(&again), "{st}");
    assert_eq!(validation(&st, "quiet")["revalidated_segments"], 0, "{st}");
    assert_eq!(validation(&st, "quiet")["state"], "Validated", "{st}");
    Ok(())
}

/// A validation that waits for the CDC stream (it found a difference, or
/// here: the `validate-settle` failpoint makes every one wait) while the
/// stream's worker dies must not keep the slot the stream needs to resume:
/// it hands its assignment back once the stream has no worker, the stream
/// takes the slot and catches up long before the wait's own timeout
/// (120 s), and the validation completes later.
#[tokio::test(flavor = "multi_thread")]
async fn a_validation_waiting_for_a_dead_stream_hands_its_slot_back() -> anyhow::Result<()> {
    let src = PgServer::start()?;
    let dst = PgServer::start()?;
    let s = src.client("postgres").await?;
    s.batch_execute(
        "CREATE TABLE public.t (id int PRIMARY KEY, v int);
         INSERT INTO public.t SELECT i, 0 FROM generate_series(1, 1000) i;",
    )
    .await?;
    let mut f = Ferry::start(2, 3000, &[("FERRY_FAILPOINT", "validate-settle:8000")])?;
    create_typed(
        &f,
        "hand",
        &src.url("postgres"),
        &dst.url("postgres"),
        "full-load-and-cdc",
        r#"{"ValidationSettings": {"EnableValidation": true}}"#,
        &[],
    );
    f.ok(&["task", "start", "hand"]);
    // One worker streams; the other (one slot each) pauses in a validation.
    let mut validating = None;
    f.wait_until("a validation to pause", std::time::Duration::from_secs(120), || {
        validating = f
            .workers
            .iter()
            .position(|w| w.log_text().contains("failpoint: pausing"));
        validating.is_some()
    });
    let streaming = f.cdc_worker().expect("a worker streams");
    assert_ne!(Some(streaming), validating);
    f.workers[streaming].kill9();
    s.batch_execute("UPDATE public.t SET v = v + 1 WHERE id <= 10").await?;
    // Lease (3 s) + the waiter's grace (3 s) + the failpoint's pause (8 s),
    // with room: well short of the 120 s the wait would otherwise hold.
    let (ok, out, err) = f.ferry(&["task", "wait", "hand", "--for", "caught-up", "--timeout", "40"]);
    assert!(ok, "the stream did not resume: {out}{err}");
    let log = f.workers[validating.unwrap()].log_text();
    assert!(log.contains("handing the assignment back"), "{log}");
    // With a worker for it, the validation completes.
    f.add_worker(&[("FERRY_FAILPOINT", "validate-settle:0")])?;
    f.wait_until("validation", std::time::Duration::from_secs(120), || {
        f.status("hand")
            .is_some_and(|st| table_status(&st, "t")["validation"]["state"] == "Validated")
    });
    Ok(())
}
