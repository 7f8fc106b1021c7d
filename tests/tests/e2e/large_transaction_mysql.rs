//! As `large_transaction.rs`, from a MariaDB source: 1 GiB of rows inserted
//! in one transaction (one binlog transaction of ~1 GiB of row events)
//! while the CDC worker runs in a memory cgroup limited to 256 MiB. The
//! binlog reader hands each row event's rows to the applier as it decodes
//! them, so the worker's memory stays bounded; the test fails if the worker
//! is OOM-killed or a row differs. Run `alone()`: not beside the
//! PostgreSQL one (or any other test) on these 2 cores.
use ferry_tests::mariadb::MariaDbServer;
use ferry_tests::*;
use mysql_async::prelude::Queryable;

const LIMIT: u64 = 256 << 20;

#[tokio::test(flavor = "multi_thread")]
async fn a_binlog_transaction_larger_than_memory_is_applied_in_bounded_memory() -> anyhow::Result<()> {
    let _alone = alone().await;
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

    // 1,048,576 rows of 1 KiB in one transaction (MariaDB's sequence engine).
    let insert = m.query_drop("INSERT INTO big.big_txn SELECT seq, REPEAT(MD5(seq), 32) FROM seq_1_to_1048576");
    let hwm = catch_up_under_memory_limit(&mut f, "hugemy", LIMIT, async { Ok(insert.await?) }).await?;
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
    Ok(())
}
