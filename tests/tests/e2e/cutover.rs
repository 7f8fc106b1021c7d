//! `ferry cutover --freeze-source` while pgbench writes to the source: the
//! write-freeze window is reported and short, the source refuses writes
//! afterwards, the target holds every row, its sequences are past the
//! source's, and the hook ran. Then pgbench writes to the target, the
//! reverse stream carries it to the source, and `ferry rollback` returns
//! to the source with nothing lost. The cutover validates the ranges pgbench
//! changed since they were last compared.
use ferry_tests::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn cutover_freezes_drains_and_sets_sequences() -> anyhow::Result<()> {
    let p = PgbenchPair::new(1)?;
    let src = p.src.client("postgres").await?;
    src.batch_execute(
        "CREATE TABLE orders (id serial PRIMARY KEY, note text);
         INSERT INTO orders (note) SELECT 'before ' || i FROM generate_series(1, 100) i;",
    )
    .await?;
    let f = Ferry::start(2, 3000, &[])?;
    create_typed(
        &f,
        "move",
        &p.src.url("postgres"),
        &p.dst.url("postgres"),
        "full-load-and-cdc",
        r#"{"ValidationSettings": {"EnableValidation": true}, "Ferry": {"SegmentTargetBytes": 4000000}}"#,
        &[],
    );
    f.ok(&["task", "start", "move"]);
    wait_caught_up(&f, "move");

    // Writes keep coming: pgbench, and orders whose keys CDC copies without
    // advancing the target's sequence.
    let load = p.write_load(2, 60)?;
    src.batch_execute("INSERT INTO orders (note) SELECT 'during ' || i FROM generate_series(1, 50) i")
        .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;

    // A rehearsal first: no freeze, no hook, forward replication goes on.
    let dry = f.ok(&["cutover", "move", "--dry-run", "--freeze-source", "--hook", "false"]);
    assert!(dry.contains("expected write-freeze window"), "{dry}");
    src.batch_execute("INSERT INTO orders (note) VALUES ('after the rehearsal')")
        .await?;

    let marker = f.dir.path().join("hook-ran");
    let hook = format!("touch {}", marker.display());
    let (ok, out, err) = f.ferry(&["cutover", "move", "--freeze-source", "--hook", &hook]);
    finish(load);
    assert!(ok, "cutover failed: {out}{err}\nstatus: {:?}", f.status("move"));
    println!("{out}");
    let window = freeze_window(&out);
    assert!(window < 5.0, "write-freeze window {window} s: {out}");
    assert!(marker.exists(), "the hook did not run: {out}");
    // pgbench changed segments after they were compared: compared again.
    assert!(out.contains("4. changed ranges validated"), "{out}");
    let v = f.status("move").unwrap();
    let accounts = table_status(&v, "pgbench_accounts")["validation"].clone();
    assert_eq!(accounts["state"], "Validated", "{v}");
    assert!(accounts["revalidated_segments"].as_u64().unwrap() > 0, "{v}");

    // Writes after the freeze are refused.
    let fresh = p.src.client("postgres").await?;
    assert_read_only(&fresh, "INSERT INTO orders (note) VALUES ('after')").await;

    // Nothing lost: the target holds exactly the source's rows.
    p.assert_identical().await?;
    assert_tables_identical(&p.src, &p.dst, &["orders"]).await?;
    // The target's sequence hands out keys past everything the source used.
    let dst = p.dst.client("postgres").await?;
    let next: i32 = dst
        .query_one("INSERT INTO orders (note) VALUES ('on the target') RETURNING id", &[])
        .await?
        .get(0);
    let source_max: i32 = fresh.query_one("SELECT max(id) FROM orders", &[]).await?.get(0);
    assert!(
        next > source_max,
        "target key {next} not past the source's {source_max}"
    );

    // The application now writes to the target; the reverse stream carries
    // it back to the frozen source.
    let st = f.status("move-reverse").expect("the reverse task exists");
    assert_eq!(st["cdc"]["streaming"], true, "{st}");
    let out = p
        .dst
        .pgbench("postgres", &["-n", "-c", "2", "-j", "2", "-T", "3"])
        .output()?;
    assert!(
        out.status.success(),
        "pgbench on the target: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dst.batch_execute("INSERT INTO orders (note) SELECT 'target ' || i FROM generate_series(1, 20) i")
        .await?;

    // The forward task cannot be restarted while its reverse runs: it
    // would carry the reverse stream's writes straight back.
    let (ok, _, err) = f.ferry(&["task", "start", "move"]);
    assert!(!ok && err.contains("move-reverse"), "{err}");

    let (ok, out, err) = f.ferry(&["rollback", "move"]);
    assert!(
        ok,
        "rollback failed: {out}{err}\nstatus: {:?}",
        f.status("move-reverse")
    );
    println!("{out}");
    assert!(out.contains("rollback window"), "{out}");
    // Nothing lost on the way back.
    p.assert_identical().await?;
    assert_tables_identical(&p.src, &p.dst, &["orders"]).await?;
    // The source takes writes again, with keys past the target's.
    let back = p.src.client("postgres").await?;
    let id: i32 = back
        .query_one(
            "INSERT INTO orders (note) VALUES ('back on the source') RETURNING id",
            &[],
        )
        .await?
        .get(0);
    let target_max: i32 = dst.query_one("SELECT max(id) FROM orders", &[]).await?.get(0);
    assert!(id > target_max, "source key {id} not past the target's {target_max}");
    Ok(())
}
