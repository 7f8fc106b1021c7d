//! CDC source latency with DMS's meaning: it keeps growing while a source
//! transaction that wrote stays open (the log holds nothing of it for the
//! stream until it commits), and falls back once it commits and is
//! applied. PostgreSQL and MariaDB sources.
use ferry_tests::mariadb::MariaDbServer;
use ferry_tests::*;
use mysql_async::prelude::Queryable;
use std::time::{Duration, Instant};

/// The task's CDC source latency in seconds, as `task status` has it.
fn latency(f: &Ferry, task: &str) -> f64 {
    f.status(task)
        .and_then(|st| st["cdc"]["latency_source_seconds"].as_f64())
        .unwrap_or(-1.0)
}

/// Waits until the latency satisfies `ok`; returns it.
fn wait_latency(f: &Ferry, task: &str, what: &str, ok: impl Fn(f64) -> bool) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let l = latency(f, task);
        if ok(l) {
            return l;
        }
        assert!(Instant::now() < deadline, "{what}: latency stayed at {l} s");
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_open_postgres_transaction_shows_as_source_latency() -> anyhow::Result<()> {
    let pg = PgServer::start()?;
    pg.src_and_dst(100).await?;
    let f = Ferry::start(1, 3000, &[])?;
    create_typed(
        &f,
        "lag",
        &pg.url("src"),
        &pg.url("dst"),
        "full-load-and-cdc",
        "{}",
        &[],
    );
    f.ok(&["task", "start", "lag"]);
    wait_caught_up(&f, "lag");

    let open = pg.client("src").await?;
    open.batch_execute("BEGIN; INSERT INTO t VALUES (1001, 'held open')")
        .await?;
    let held = wait_latency(&f, "lag", "an open transaction", |l| l >= 3.0);
    eprintln!("source latency with a transaction open: {held} s");
    open.batch_execute("COMMIT").await?;
    wait_caught_up(&f, "lag");
    let after = wait_latency(&f, "lag", "after the commit", |l| (0.0..2.0).contains(&l));
    eprintln!("source latency after it committed: {after} s");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_open_mariadb_transaction_shows_as_source_latency() -> anyhow::Result<()> {
    let my = MariaDbServer::start()?;
    let pg = PgServer::start()?;
    let mut m = my.client("mysql").await?;
    m.query_drop("CREATE DATABASE shop").await?;
    m.query_drop("CREATE TABLE shop.t (id int PRIMARY KEY, v varchar(20))")
        .await?;
    m.query_drop("INSERT INTO shop.t SELECT seq, 'v' FROM seq_1_to_100")
        .await?;
    let f = Ferry::start(1, 3000, &[])?;
    create_typed(
        &f,
        "lag",
        &my.url("shop"),
        &pg.url("postgres"),
        "full-load-and-cdc",
        "{}",
        &[],
    );
    f.ok(&["task", "start", "lag"]);
    wait_caught_up(&f, "lag");

    let mut open = my.client("shop").await?;
    open.query_drop("START TRANSACTION").await?;
    open.query_drop("INSERT INTO t VALUES (1001, 'held open')").await?;
    let held = wait_latency(&f, "lag", "an open transaction", |l| l >= 3.0);
    eprintln!("source latency with a transaction open: {held} s");
    open.query_drop("COMMIT").await?;
    wait_caught_up(&f, "lag");
    let after = wait_latency(&f, "lag", "after the commit", |l| (0.0..2.0).contains(&l));
    eprintln!("source latency after it committed: {after} s");
    Ok(())
}
