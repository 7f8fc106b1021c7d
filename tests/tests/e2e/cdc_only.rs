//! `--type cdc`: changes from the slot's creation on, no load; and streaming
//! a slot the user created (`--slot-name`, `--cdc-start-position`), which
//! Ferry must not drop.
use ferry_tests::*;

const HISTORY: &[&str] = &["pgbench_history"];

#[tokio::test(flavor = "multi_thread")]
async fn cdc_only_from_now_and_from_an_existing_slot() -> anyhow::Result<()> {
    let p = PgbenchPair::new(1)?;
    let src = p.src.client("postgres").await?;
    let f = Ferry::start(2, 3000, &[])?;

    // From now: the (empty) history table fills with what pgbench inserts.
    p.create_task(&f, "now", "cdc");
    f.ok(&["task", "start", "now"]);
    f.wait_until("the stream to start", std::time::Duration::from_secs(60), || {
        f.status("now").is_some_and(|s| s["cdc"]["streaming"] == true)
    });
    finish(p.write_load(2, 4)?);
    wait_caught_up(&f, "now");
    assert_tables_identical(&p.src, &p.dst, HISTORY).await?;
    let dst = p.dst.client("postgres").await?;
    let loaded: i64 = dst
        .query_one("SELECT count(*) FROM pgbench_accounts", &[])
        .await?
        .get(0);
    assert_eq!(loaded, 0, "a cdc-only task must not load existing rows");
    f.ok(&["task", "delete", "now"]);

    // An existing slot, from a given position: rows inserted after it come
    // across, rows before it do not.
    // The user's publications must predate the user's slot (pgoutput reads
    // them as of each change's position).
    src.batch_execute(
        "TRUNCATE pgbench_history; INSERT INTO pgbench_history VALUES (1, 1, 1, 1, now(), 'before');
         CREATE PUBLICATION ferry_given FOR TABLE pgbench_accounts, pgbench_branches, pgbench_tellers;
         CREATE PUBLICATION ferry_given_insert_only FOR TABLE pgbench_history WITH (publish = 'insert, truncate')",
    )
    .await?;
    let lsn: String = src
        .query_one(
            "SELECT lsn::text FROM pg_create_logical_replication_slot('user_slot', 'pgoutput')",
            &[],
        )
        .await?
        .get(0);
    src.batch_execute("INSERT INTO pgbench_history VALUES (2, 2, 2, 2, now(), 'after')")
        .await?;
    f.ok(&[
        "task",
        "create",
        "given",
        "--source",
        &p.src.url("postgres"),
        "--target",
        &p.dst.url("postgres"),
        "--type",
        "cdc",
        "--slot-name",
        "user_slot",
        "--cdc-start-position",
        &lsn,
    ]);
    f.ok(&["task", "start", "given"]);
    wait_caught_up(&f, "given");
    let rows: Vec<String> = dst
        .query("SELECT filler FROM pgbench_history ORDER BY tid", &[])
        .await?
        .iter()
        .map(|r| r.get::<_, String>(0).trim().to_string())
        .collect();
    assert_eq!(
        rows,
        vec!["after".to_string()],
        "exactly the rows after the start position"
    );
    f.ok(&["task", "delete", "given"]);
    let kept: i64 = src
        .query_one(
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'user_slot'",
            &[],
        )
        .await?
        .get(0);
    assert_eq!(kept, 1, "Ferry dropped a slot it did not create");
    src.batch_execute("SELECT pg_drop_replication_slot('user_slot')")
        .await?;
    Ok(())
}
