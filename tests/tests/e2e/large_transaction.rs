//! A source transaction far larger than the worker may use: 1 GiB of rows
//! inserted in one transaction while the CDC worker runs in a memory cgroup
//! limited to 256 MiB. The stream hands rows to the applier as it decodes
//! them and the applier sends them in pieces of about 1 MiB inside one
//! target transaction, so the worker's memory stays bounded whatever the
//! transaction's size; the test fails if the worker is OOM-killed or a row
//! differs. Run `alone()`: not beside another test on these 2 cores.
use ferry_tests::*;

const LIMIT: u64 = 256 << 20;

#[tokio::test(flavor = "multi_thread")]
async fn a_transaction_larger_than_memory_is_applied_in_bounded_memory() -> anyhow::Result<()> {
    let _alone = alone().await;
    let src = PgServer::start()?;
    let dst = PgServer::start()?;
    let s = src.client("postgres").await?;
    s.batch_execute("CREATE TABLE big_txn (id bigint PRIMARY KEY, payload text)")
        .await?;
    let mut f = Ferry::start(1, 2000, &[])?;
    create_typed(
        &f,
        "huge",
        &src.url("postgres"),
        &dst.url("postgres"),
        "full-load-and-cdc",
        "{}",
        &[],
    );
    f.ok(&["task", "start", "huge"]);
    wait_caught_up(&f, "huge");

    // 1,048,576 rows of 1 KiB: 1 GiB of values in one transaction.
    let insert =
        s.batch_execute("INSERT INTO big_txn SELECT g, repeat(md5(g::text), 32) FROM generate_series(1, 1048576) g");
    let hwm = catch_up_under_memory_limit(&mut f, "huge", LIMIT, async { Ok(insert.await?) }).await?;
    eprintln!("worker applying a 1 GiB transaction under a 256 MiB limit: {hwm}");

    let digest = "SELECT count(*), sum(hashtext(payload)::bigint)::text FROM big_txn";
    let d = dst.client("postgres").await?;
    let (a, b) = (s.query_one(digest, &[]).await?, d.query_one(digest, &[]).await?);
    assert_eq!(a.get::<_, i64>(0), 1 << 20);
    assert_eq!(
        (a.get::<_, i64>(0), a.get::<_, String>(1)),
        (b.get::<_, i64>(0), b.get::<_, String>(1)),
        "source and target differ"
    );
    Ok(())
}
