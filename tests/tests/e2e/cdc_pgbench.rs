//! full-load-and-cdc of a pgbench database while pgbench writes throughout
//! the load and after it: the target ends identical row for row (the
//! key-less pgbench_history would show any change applied twice), the slot
//! keeps advancing while only another database is busy, and deleting the
//! task leaves no slot or publication behind.
use ferry_tests::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn full_load_and_cdc_under_pgbench() -> anyhow::Result<()> {
    let p = PgbenchPair::new(10)?;
    let f = Ferry::start(3, 3000, &[])?;
    p.create_task(&f, "bench", "full-load-and-cdc");
    let load = p.write_load(4, 40)?;
    std::thread::sleep(Duration::from_secs(2));
    f.ok(&["task", "start", "bench"]);
    let (ok, out, err) = f.ferry(&["task", "wait", "bench", "--for", "full-load", "--timeout", "600"]);
    assert!(ok, "full-load wait failed: {out}{err}");
    let st = f.status("bench").unwrap();
    let segments = table_status(&st, "pgbench_accounts")["segments_total"]
        .as_u64()
        .unwrap();
    assert!(segments >= 8, "pgbench_accounts loaded in {segments} segments");
    let load_running = load_is_running(&load);
    finish(load);
    assert!(
        load_running,
        "pgbench stopped before the full load ended; the test would not cover CDC after it"
    );
    wait_caught_up(&f, "bench");
    p.assert_identical().await?;

    let st = f.status("bench").unwrap();
    let accounts = table_status(&st, "pgbench_accounts");
    assert!(
        accounts["updates"].as_u64().unwrap() > 0,
        "no updates counted: {accounts}"
    );
    let history = table_status(&st, "pgbench_history");
    assert!(
        history["inserts"].as_u64().unwrap() > 0,
        "no inserts counted: {history}"
    );
    assert_eq!(st["cdc"]["slot"], "ferry_bench");
    assert_no_apply_conflicts(&st);

    // Idle selected tables, busy other database: the slot must still advance.
    let src = p.src.client("postgres").await?;
    src.batch_execute("CREATE DATABASE other").await?;
    let out = p.src.pgbench("other", &["-i", "-q", "-s", "2"]).output()?;
    assert!(out.status.success());
    let wal: String = src.query_one("SELECT pg_current_wal_lsn()::text", &[]).await?.get(0);
    f.wait_until(
        "the idle slot to advance past other databases' WAL",
        Duration::from_secs(60),
        || slot_confirmed_past(&src, &wal),
    );

    // Delete: slot and publications are dropped on the source.
    f.ok(&["task", "delete", "bench"]);
    let left: i64 = src
        .query_one(
            "SELECT (SELECT count(*) FROM pg_replication_slots) + (SELECT count(*) FROM pg_publication)",
            &[],
        )
        .await?
        .get(0);
    assert_eq!(left, 0, "slot or publication left behind after delete");
    Ok(())
}

fn load_is_running(c: &std::process::Child) -> bool {
    // try_wait needs &mut; a running child has no exit status yet.
    let pid = c.id();
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z")
}

fn slot_confirmed_past(src: &tokio_postgres::Client, wal: &str) -> bool {
    let wal = wal.to_string();
    let q = async move {
        src.query_one(
            "SELECT confirmed_flush_lsn >= $1::text::pg_lsn FROM pg_replication_slots WHERE slot_name = 'ferry_bench'",
            &[&wal],
        )
        .await
    };
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(q))
        .map(|r| r.get::<_, bool>(0))
        .unwrap_or(false)
}
