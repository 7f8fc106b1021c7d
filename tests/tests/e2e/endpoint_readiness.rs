//! `ferry endpoint test` says what an endpoint is ready to be — a full-load
//! source, a CDC source, a target — against servers each missing the
//! privileges and settings Ferry needs, and `task create --test-endpoints`
//! refuses a task whose endpoints are not ready for it. The tests run on
//! the worker (the default); `--local` runs the same checks in place.
use ferry_tests::mariadb::MariaDbServer;
use ferry_tests::*;
use mysql_async::prelude::Queryable;
use serde_json::Value;

/// `ferry endpoint test URL --output json`: check id → status, per use.
fn readiness(f: &Ferry, url: &str) -> Vec<(String, String, String)> {
    let out = f.ok(&["endpoint", "test", url, "--output", "json"]);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let mut checks = vec![];
    for u in v["uses"].as_array().unwrap() {
        for c in u[1].as_array().unwrap() {
            checks.push((
                u[0].as_str().unwrap().to_string(),
                c["id"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
            ));
        }
    }
    checks
}

fn status_of<'a>(checks: &'a [(String, String, String)], id: &str) -> &'a str {
    checks
        .iter()
        .find(|(_, i, _)| i == id)
        .map(|(_, _, s)| s.as_str())
        .unwrap_or_else(|| panic!("no check {id} in {checks:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_endpoints_missing_each_prerequisite() -> anyhow::Result<()> {
    let f = Ferry::start(1, 5000, &[])?;
    // No logical WAL, no slots, no WAL senders; a role `app` that may not
    // replicate, read `secret`, own (so publish) any table, create schemas
    // or temporary tables, or set session_replication_role.
    let bare = PgServer::start_with("-c wal_level=replica -c max_replication_slots=0 -c max_wal_senders=0")?;
    bare.client("postgres")
        .await?
        .batch_execute(
            "CREATE ROLE app LOGIN;
             CREATE TABLE t (id int PRIMARY KEY); CREATE TABLE secret (id int PRIMARY KEY);
             GRANT SELECT ON t TO app;
             REVOKE TEMP ON DATABASE postgres FROM PUBLIC",
        )
        .await?;
    let app = format!("postgres://app@127.0.0.1:{}/postgres", bare.port);
    let checks = readiness(&f, &app);
    for id in [
        "PG-WAL-LEVEL",
        "PG-SLOTS",
        "PG-WAL-SENDERS",
        "PG-REPLICATION-ROLE",
        "PG-PUBLICATION",
        "SOURCE-SELECT",
        "TARGET-CREATE",
    ] {
        assert_eq!(status_of(&checks, id), "failed", "{id}: {checks:?}");
    }
    for id in ["TARGET-TEMP", "TARGET-REPLICA-ROLE"] {
        assert_eq!(status_of(&checks, id), "warning", "{id}: {checks:?}");
    }
    // The text report names what to change.
    let text = f.ok(&["endpoint", "test", &app]);
    assert!(
        text.contains("(from worker") && text.contains("as a CDC source: NOT READY"),
        "{text}"
    );
    assert!(text.contains("wal_level = logical"), "{text}");
    assert!(
        text.contains("\"public\".\"secret\"") && text.contains("GRANT"),
        "{text}"
    );

    // With a role, a failed check it needs is an error naming it.
    let (ok, _, err) = f.ferry(&["endpoint", "test", &app, "--as", "source", "--type", "full-load"]);
    assert!(!ok && err.contains("secret") && !err.contains("wal_level"), "{err}");
    let (ok, _, err) = f.ferry(&["endpoint", "test", &app, "--as", "target"]);
    assert!(!ok && err.contains("CREATE ON DATABASE"), "{err}");

    // In place, the same report.
    let (ok, out, _) = f.ferry(&["endpoint", "test", &app, "--local"]);
    assert!(
        ok && out.contains("as a CDC source: NOT READY") && !out.contains("from worker"),
        "{out}"
    );

    // The superuser on a server set up for CDC is ready for everything.
    let good = PgServer::start()?;
    good.src_and_dst(10).await?;
    let checks = readiness(&f, &good.url("src"));
    assert!(checks.iter().all(|(_, _, s)| s == "passed"), "{checks:?}");
    f.ok(&[
        "endpoint",
        "test",
        &good.url("src"),
        "--as",
        "source",
        "--type",
        "full-load-and-cdc",
    ]);

    // task create --test-endpoints: a source not ready for the task's
    // type is refused before the task exists; a ready pair is created.
    let (ok, out, err) = f.ferry(&[
        "task",
        "create",
        "refused",
        "--source",
        &app,
        "--target",
        &good.url("dst"),
        "--type",
        "full-load",
        "--test-endpoints",
    ]);
    assert!(
        !ok && err.contains("not created") && err.contains("secret"),
        "{out}{err}"
    );
    assert!(!f.ok(&["task", "list"]).contains("refused"));
    f.ok(&[
        "task",
        "create",
        "ready",
        "--source",
        &good.url("src"),
        "--target",
        &good.url("dst"),
        "--type",
        "full-load-and-cdc",
        "--test-endpoints",
    ]);
    assert!(f.ok(&["task", "list"]).contains("ready"));

    // Without a worker to run it, the test says so in time.
    let idle = Ferry::start(0, 5000, &[])?;
    let (ok, _, err) = idle.ferry(&["endpoint", "test", &good.url("src"), "--timeout", "2"]);
    assert!(!ok && err.contains("no worker took the test within 2 s"), "{err}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_endpoints_missing_each_prerequisite() -> anyhow::Result<()> {
    let f = Ferry::start(1, 5000, &[])?;
    let no_binlog = MariaDbServer::start_with(&["--skip-log-bin".to_string()])?;
    let checks = readiness(&f, &no_binlog.url("mysql"));
    assert_eq!(status_of(&checks, "MY-LOG-BIN"), "failed", "{checks:?}");

    // Binlogging, but not in a form CDC can use; a user `app` that may read
    // only `t` (and write `secret`: MySQL hides tables a user holds no
    // privilege on) and not the binlog; no LOAD DATA LOCAL INFILE.
    let m = MariaDbServer::start()?;
    let mut c = m.client("mysql").await?;
    c.query_drop(
        "CREATE DATABASE shop; CREATE TABLE shop.t (id int PRIMARY KEY); CREATE TABLE shop.secret (id int PRIMARY KEY);
         CREATE USER app@'%'; GRANT SELECT ON shop.t TO app@'%'; GRANT INSERT ON shop.secret TO app@'%';
         SET GLOBAL binlog_format = 'STATEMENT'; SET GLOBAL binlog_row_image = 'MINIMAL'; SET GLOBAL local_infile = 0",
    )
    .await?;
    let app = format!("mysql://app@127.0.0.1:{}/shop", m.port);
    let checks = readiness(&f, &app);
    for id in [
        "MY-BINLOG-FORMAT",
        "MY-ROW-IMAGE",
        "MY-REPLICATION-GRANT",
        "SOURCE-SELECT",
        "TARGET-LOCAL-INFILE",
    ] {
        assert_eq!(status_of(&checks, id), "failed", "{id}: {checks:?}");
    }
    let (ok, _, err) = f.ferry(&["endpoint", "test", &app, "--as", "source", "--type", "full-load"]);
    assert!(!ok && err.contains("shop.secret"), "{err}");
    let (ok, _, err) = f.ferry(&["endpoint", "test", &app, "--as", "source", "--type", "cdc"]);
    assert!(
        !ok && err.contains("REPLICATION SLAVE") && err.contains("binlog_format"),
        "{err}"
    );

    // Put right, root is ready for everything.
    c.query_drop("SET GLOBAL binlog_format = 'ROW'; SET GLOBAL binlog_row_image = 'FULL'; SET GLOBAL local_infile = 1")
        .await?;
    let checks = readiness(&f, &m.url("shop"));
    assert!(checks.iter().all(|(_, _, s)| s == "passed"), "{checks:?}");
    Ok(())
}
