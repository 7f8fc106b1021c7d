//! DMS `ControlTablesSettings`: Ferry's control tables go to the schema
//! `ControlSchema` names (nothing of Ferry's is left in `ferry`), and the
//! optional status, suspended-tables and history tables are kept on the
//! target in the same transactions as what they report — on a PostgreSQL
//! target (MariaDB source, with a table suspended by a row PostgreSQL cannot
//! store and reloaded after) and on a MariaDB target (PostgreSQL source,
//! with validation recording into the control schema).
use ferry_tests::compare::{mysql_rows, pg_rows};
use ferry_tests::mariadb::MariaDbServer;
use ferry_tests::*;
use mysql_async::prelude::Queryable;
use std::time::{Duration, Instant};

const CONTROL: &str = r#""ControlTablesSettings": {"ControlSchema": "dms_ctl", "StatusTableEnabled": true,
    "SuspendedTablesTableEnabled": true, "HistoryTableEnabled": true, "HistoryTimeslotInMinutes": 5}"#;

/// Polls `probe` (a one-value query's text) until it returns `want`.
async fn until(
    what: &str,
    want: &str,
    mut probe: impl AsyncFnMut() -> anyhow::Result<Option<String>>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let got = probe().await?;
        if got.as_deref() == Some(want) {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "{what}: want {want}, last saw {got:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A one-value MySQL query's text.
async fn my_one(c: &mut mysql_async::Conn, sql: &str) -> anyhow::Result<Option<String>> {
    Ok(mysql_rows(c, sql).await?.remove(0).remove(0))
}

#[tokio::test(flavor = "multi_thread")]
async fn control_schema_status_suspended_and_history_on_a_postgres_target() -> anyhow::Result<()> {
    let my = MariaDbServer::start()?;
    let pg = PgServer::start()?;
    let mut m = my.client("mysql").await?;
    m.query_drop("CREATE DATABASE app CHARACTER SET utf8mb4").await?;
    m.query_drop("CREATE TABLE app.t (id int PRIMARY KEY, v varchar(20))")
        .await?;
    m.query_drop("CREATE TABLE app.good (id int PRIMARY KEY, n int)")
        .await?;
    m.query_drop("INSERT INTO app.t VALUES (1, 'a'), (2, 'b')").await?;
    m.query_drop("INSERT INTO app.good VALUES (1, 0), (2, 0), (3, 0)")
        .await?;
    pg.client("postgres")
        .await?
        .batch_execute("CREATE DATABASE app_dst")
        .await?;

    let f = Ferry::start(2, 5000, &[])?;
    let settings = format!(r#"{{{CONTROL}, "ErrorBehavior": {{"DataErrorPolicy": "SUSPEND_TABLE"}}}}"#);
    create_typed(
        &f,
        "ctl",
        &my.url("app"),
        &pg.url("app_dst"),
        "full-load-and-cdc",
        &settings,
        &[],
    );
    f.ok(&["task", "start", "ctl"]);
    wait_caught_up(&f, "ctl");
    let d = pg.client("app_dst").await?;
    let one = |sql: &'static str| {
        let d = &d;
        async move { Ok(pg_rows(d, sql).await?.remove(0).remove(0)) }
    };

    // 28 row changes to good, then a row of t PostgreSQL cannot store
    // (DataErrorPolicy SUSPEND_TABLE stops t), then one more change to good.
    let rows: Vec<String> = (4..=23).map(|i| format!("({i}, 0)")).collect();
    m.query_drop(format!("INSERT INTO app.good VALUES {}", rows.join(", "))) // 20 inserts
        .await?;
    m.query_drop("UPDATE app.good SET n = n + 1 WHERE id <= 5").await?; // 5 updates
    m.query_drop("DELETE FROM app.good WHERE id > 20").await?; // 3 deletes
    m.query_drop("INSERT INTO app.t VALUES (3, CONCAT('x', CHAR(0), 'y'))")
        .await?;
    m.query_drop("INSERT INTO app.good VALUES (100, 0)").await?; // 1 insert
    until("good's last row on the target", "21", || {
        one("SELECT count(*)::text FROM app.good")
    })
    .await?;

    // Nothing of Ferry's in `ferry`; its bookkeeping is in dms_ctl.
    assert_eq!(
        one("SELECT (to_regnamespace('ferry') IS NULL)::text").await?.as_deref(),
        Some("true")
    );
    assert_eq!(
        one("SELECT count(*)::text FROM dms_ctl.segment_loads WHERE task = 'ctl'")
            .await?
            .as_deref(),
        Some("2")
    );
    assert_eq!(
        one("SELECT count(*)::text FROM dms_ctl.apply_exceptions WHERE task = 'ctl' AND phase = 'cdc'")
            .await?
            .as_deref(),
        Some("1")
    );
    // History: every change applied, counted once, in 5-minute slots.
    until("changes in the history table", "29", || {
        one("SELECT sum(changes)::text FROM dms_ctl.history WHERE task = 'ctl'")
    })
    .await?;
    let slots = pg_rows(
        &d,
        "SELECT timeslot_minutes::text, (extract(epoch FROM timeslot)::bigint % 300)::text,
                (timeslot <= now() AND timeslot > now() - interval '1 hour')::text, (transactions > 0)::text
           FROM dms_ctl.history WHERE task = 'ctl'",
    )
    .await?;
    assert!(!slots.is_empty());
    for s in &slots {
        let s: Vec<&str> = s.iter().map(|v| v.as_deref().unwrap_or("NULL")).collect();
        assert_eq!(s, ["5", "0", "true", "true"], "{slots:?}");
    }
    // Status: the phase, the applied position and when it was committed on the source.
    let status = pg_rows(
        &d,
        "SELECT status, (applied_position IS NOT NULL)::text,
                (source_commit_time > now() - interval '1 hour')::text, (status_time > now() - interval '1 hour')::text
           FROM dms_ctl.task_status WHERE task = 'ctl'",
    )
    .await?;
    let status: Vec<Vec<&str>> = status
        .iter()
        .map(|r| r.iter().map(|v| v.as_deref().unwrap_or("NULL")).collect())
        .collect();
    assert_eq!(status, [["CHANGE PROCESSING", "true", "true", "true"]]);
    // Suspended tables: t, with the reason, written with the batch that stopped it.
    let suspended = pg_rows(
        &d,
        "SELECT table_name, reason FROM dms_ctl.suspended_tables WHERE task = 'ctl'",
    )
    .await?;
    assert_eq!(suspended.len(), 1, "{suspended:?}");
    assert!(
        suspended[0][0].as_deref().unwrap_or_default().ends_with('t'),
        "{suspended:?}"
    );
    assert!(
        suspended[0][1]
            .as_deref()
            .unwrap_or_default()
            .contains("DataErrorPolicy SUSPEND_TABLE"),
        "{suspended:?}"
    );
    f.wait_until("t to be in Table error", Duration::from_secs(30), || {
        f.status("ctl")
            .is_some_and(|st| table_status(&st, "t")["state"] == "Table error")
    });

    // The row fixed on the source and the table reloaded: it leaves the
    // suspended tables with the restarted stream's first batch.
    m.query_drop("DELETE FROM app.t WHERE id = 3").await?;
    f.ok(&["task", "reload-table", "ctl", "t"]);
    f.wait_until("t to be reloaded", Duration::from_secs(120), || {
        f.status("ctl").is_some_and(|st| {
            st["degraded"] == false && table_status(&st, "t")["state"] == "Table completed" && st["phase"] == "CDC"
        })
    });
    wait_caught_up(&f, "ctl");
    until("t's row to leave the suspended tables", "0", || {
        one("SELECT count(*)::text FROM dms_ctl.suspended_tables WHERE task = 'ctl'")
    })
    .await?;
    assert_eq!(
        one("SELECT string_agg(id::text, ',' ORDER BY id) FROM app.t")
            .await?
            .as_deref(),
        Some("1,2")
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn control_schema_on_a_mariadb_target_with_validation() -> anyhow::Result<()> {
    let pg = PgServer::start()?;
    let my = MariaDbServer::start()?;
    pg.client("postgres")
        .await?
        .batch_execute(
            "CREATE TABLE public.items (id int PRIMARY KEY, v text);
             INSERT INTO public.items SELECT i, 'v' || i FROM generate_series(1, 100) i;",
        )
        .await?;
    let mut m = my.client("mysql").await?;
    m.query_drop("CREATE DATABASE landing").await?;

    let f = Ferry::start(2, 5000, &[])?;
    let settings = format!(r#"{{{CONTROL}, "ValidationSettings": {{"EnableValidation": true}}}}"#);
    create_typed(
        &f,
        "myctl",
        &pg.url("postgres"),
        &my.url("landing"),
        "full-load-and-cdc",
        &settings,
        &[],
    );
    f.ok(&["task", "start", "myctl"]);
    wait_caught_up(&f, "myctl");
    let p = pg.client("postgres").await?;
    p.batch_execute(
        "INSERT INTO public.items SELECT i, 'w' || i FROM generate_series(101, 110) i;
         UPDATE public.items SET v = 'changed' WHERE id IN (1, 2);",
    )
    .await?;
    wait_caught_up(&f, "myctl");
    f.wait_until("validation to finish", Duration::from_secs(120), || {
        f.status("myctl")
            .is_some_and(|st| table_status(&st, "items")["validation"]["state"] == "Validated")
    });

    let mut c = my.client("mysql").await?;
    assert_eq!(
        my_one(
            &mut c,
            "SELECT CAST(COUNT(*) AS CHAR) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'ferry'"
        )
        .await?
        .as_deref(),
        Some("0")
    );
    for table in [
        "segment_loads",
        "table_loads",
        "apply_exceptions",
        "apply_state",
        "validation_failures",
    ] {
        let sql = format!(
            "SELECT CAST(COUNT(*) AS CHAR) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'dms_ctl' AND TABLE_NAME = '{table}'"
        );
        assert_eq!(my_one(&mut c, &sql).await?.as_deref(), Some("1"), "dms_ctl.{table}");
    }
    assert_eq!(
        my_one(
            &mut c,
            "SELECT CAST(COUNT(*) AS CHAR) FROM dms_ctl.apply_state WHERE task = 'myctl' AND position IS NOT NULL"
        )
        .await?
        .as_deref(),
        Some("1")
    );
    // 10 inserts and 2 updates, each counted once.
    until("changes in the history table", "12", async || {
        my_one(
            &mut c,
            "SELECT CAST(SUM(changes) AS CHAR) FROM dms_ctl.history WHERE task = 'myctl'",
        )
        .await
    })
    .await?;
    assert_eq!(
        my_one(&mut c,
            "SELECT CONCAT(status, ',', applied_position IS NOT NULL, ',', source_commit_time > UTC_TIMESTAMP() - INTERVAL 1 HOUR)
               FROM dms_ctl.task_status WHERE task = 'myctl'"
        )
        .await?
        .as_deref(),
        Some("CHANGE PROCESSING,1,1")
    );
    assert_eq!(
        my_one(
            &mut c,
            "SELECT CAST(COUNT(*) AS CHAR) FROM dms_ctl.suspended_tables WHERE task = 'myctl'"
        )
        .await?
        .as_deref(),
        Some("0")
    );
    Ok(())
}
