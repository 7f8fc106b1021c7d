//! As `large_transaction.rs`, from a MariaDB source: 1 GiB of rows inserted
//! in one transaction (one binlog transaction of ~1 GiB of row events)
//! while the CDC worker runs in a memory cgroup limited to 256 MiB. The
//! binlog reader hands each row event's rows to the applier as it decodes
//! them, so the worker's memory stays bounded; the test fails if the worker
//! is OOM-killed or a row differs. A binary of its own: not beside the
//! PostgreSQL one on these 2 cores.
use ferry_tests::mariadb::MariaDbServer;
use ferry_tests::*;
use mysql_async::prelude::Queryable;

const LIMIT: u64 = 256 << 20;

#[tokio::test(flavor = "multi_thread")]
async fn a_binlog_transaction_larger_than_memory_is_applied_in_bounded_memory() -> anyhow::Result<()> {
    let my = MariaDbServer::start()?;
    let dst = PgServer::start()?;
    let mut m = my.client("mysql").await?;
    m.query_drop("CREATE DATABASE big").await?;
    m.query_drop("CREATE TABLE big.big_txn (id BIGINT PRIMARY KEY, payload TEXT)")
        .await?;
    let mut f = Ferry::start(1, 2000, &[])?;
    create_typed(
        &f,
        "hugemy",
        &my.url("big"),
        &dst.url("postgres"),
        "full-load-and-cdc",
        "{}",
        &[],
    );
    f.ok(&["task", "start", "hugemy"]);
    wait_caught_up(&f, "hugemy");

    let worker = f.workers[0].child.id();
    let cg = MemoryCgroup::limit(worker, LIMIT)?;
    // 1,048,576 rows of 1 KiB in one transaction (MariaDB's sequence engine).
    m.query_drop("INSERT INTO big.big_txn SELECT seq, REPEAT(MD5(seq), 32) FROM seq_1_to_1048576")
        .await?;
    let (ok, out, err) = f.ferry(&["task", "wait", "hugemy", "--for", "caught-up", "--timeout", "900"]);
    let hwm = std::fs::read_to_string(format!("/proc/{worker}/status"))
        .ok()
        .and_then(|st| st.lines().find(|l| l.starts_with("VmHWM:")).map(str::to_string))
        .unwrap_or_default();
    assert!(
        f.workers[0].child.try_wait()?.is_none(),
        "the worker died (OOM-killed: {} limit hits): {}",
        cg.read("memory.failcnt"),
        f.workers[0].log_text()
    );
    assert!(ok, "caught-up wait failed: {out}{err}");
    eprintln!("worker applying a 1 GiB binlog transaction under a 256 MiB limit: {hwm}");

    // Every row arrived, each with the payload its key implies.
    let d = dst.client("postgres").await?;
    let row = d
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE payload <> repeat(md5(id::text), 32)) FROM big.big_txn",
            &[],
        )
        .await?;
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (1 << 20, 0));
    f.workers[0].kill9();
    drop(cg);
    Ok(())
}
