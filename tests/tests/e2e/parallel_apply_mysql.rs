//! Parallel apply lanes on a MariaDB target, where InnoDB's next-key locks
//! let sessions writing disjoint keys wait on each other and deadlock. A
//! test run `alone()` (see `cdc_backlog.rs`).
use ferry_tests::compare::mysql_byte_rows;
use ferry_tests::mariadb::MariaDbServer;
use ferry_tests::*;
use mysql_async::prelude::Queryable;
use std::time::Duration;

/// Keys of the table; the load starts with the even ones.
const KEYS: u64 = 20_000;

/// Writer `w` of `writers` for `secs`: transactions that replace existing
/// rows (delete and insert the same key, which the applier folds into an
/// upsert of a key the target holds: a next-key lock) and insert new keys
/// into the gaps beside them (insert-intention locks into those gaps), over
/// keys of its own residue so that no two writers write one key. Their gap
/// locks still meet on the source: a transaction InnoDB picks as a deadlock
/// victim is rolled back and tried again, as an application would. On the
/// target the keys are hashed over lanes regardless.
async fn write(src: &MariaDbServer, w: u64, writers: u64, secs: u64) -> anyhow::Result<u64> {
    let mut c = src.client("hot").await?;
    let end = std::time::Instant::now() + Duration::from_secs(secs);
    let (mut x, mut txns) = (w * 7919 + 1, 0u64);
    while std::time::Instant::now() < end {
        let mut pick = || {
            // A linear congruential generator: the load needs spread, not quality.
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (x >> 33) % (KEYS / writers) * writers + w
        };
        let keys = (pick() & !1, pick() | 1, pick(), pick());
        match transaction(&mut c, keys, txns).await {
            Ok(()) => txns += 1,
            Err(mysql_async::Error::Server(e)) if e.code == DEADLOCK => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(txns)
}

/// ER_LOCK_DEADLOCK: the server rolled the transaction back.
const DEADLOCK: u16 = 1213;

/// One writer transaction: replace `a`, insert `b` into a gap, update `u`
/// and, every fifth, delete `d`.
async fn transaction(
    c: &mut mysql_async::Conn,
    (a, b, d, u): (u64, u64, u64, u64),
    n: u64,
) -> Result<(), mysql_async::Error> {
    let mut t = c.start_transaction(mysql_async::TxOpts::default()).await?;
    t.exec_drop("DELETE FROM t WHERE id = ?", (a,)).await?;
    t.exec_drop("INSERT INTO t VALUES (?, ?, REPEAT('r', ?))", (a, n, a % 40))
        .await?;
    t.exec_drop(
        "INSERT INTO t VALUES (?, ?, 'new') ON DUPLICATE KEY UPDATE v = v + 1",
        (b, n),
    )
    .await?;
    t.exec_drop("UPDATE t SET v = v + 1, pad = 'upd' WHERE id = ?", (u,))
        .await?;
    if n.is_multiple_of(5) {
        t.exec_drop("DELETE FROM t WHERE id = ?", (d,)).await?;
    }
    t.commit().await
}

/// A backlog of interleaved replaces and gap inserts drains over 4 lanes
/// (3 sharing the table, the fenced session holding none of it) while the
/// draining worker is killed once; the table ends identical to the source,
/// byte for byte. Whether InnoDB made lanes wait or picked a deadlock
/// victim depends on timing: the counts are printed, and the retry itself
/// is covered by the applier's unit tests.
#[tokio::test(flavor = "multi_thread")]
async fn mariadb_target_lanes_drain_an_interleaved_backlog_through_a_kill() -> anyhow::Result<()> {
    let _alone = alone().await;
    let src = MariaDbServer::start()?;
    let dst = MariaDbServer::start()?;
    let mut s = src.client("mysql").await?;
    s.query_drop("CREATE DATABASE hot").await?;
    s.query_drop("CREATE TABLE hot.t (id BIGINT PRIMARY KEY, v BIGINT NOT NULL, pad VARCHAR(40) NOT NULL)")
        .await?;
    let rows: Vec<String> = (0..KEYS / 2).map(|i| format!("({}, 0, 'init')", i * 2)).collect();
    s.query_drop(format!("INSERT INTO hot.t VALUES {}", rows.join(",")))
        .await?;
    dst.client("mysql").await?.query_drop("CREATE DATABASE landing").await?;

    let mut f = Ferry::start(1, 2000, &[])?;
    create_typed(
        &f,
        "hot",
        &src.url("hot"),
        &dst.url("landing"),
        "full-load-and-cdc",
        "{}",
        &[],
    );
    f.ok(&["task", "start", "hot"]);
    wait_caught_up(&f, "hot");
    f.stop_stream("hot");

    let w = |i| write(&src, i, 4, 15);
    let (t0, t1, t2, t3) = tokio::try_join!(w(0), w(1), w(2), w(3))?;
    let txns = t0 + t1 + t2 + t3;
    eprintln!("backlog: {txns} source transactions");

    f.workers[0].kill9();
    f.add_worker(&[])?;
    f.ok(&["task", "start", "hot"]);
    let first = f.workers.len() - 1;
    f.wait_until("the CDC stream to start", Duration::from_secs(60), || {
        f.workers[first].log_text().contains("stream started")
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let log = f.workers[first].log_text();
    let started = log.lines().find(|l| l.contains("stream started")).unwrap_or("");
    assert_eq!(log_field(started, "lanes").as_deref(), Some("4"), "{started}");
    assert_eq!(log_field(started, "set_based").as_deref(), Some("true"), "{started}");
    f.workers[first].kill9();
    f.add_worker(&[])?;
    wait_caught_up(&f, "hot");

    let reruns: usize = f
        .workers
        .iter()
        .map(|w| w.log_text().matches("running it again").count())
        .sum();
    let waits: Vec<(String, String)> = dst
        .client("mysql")
        .await?
        .query("SHOW GLOBAL STATUS WHERE Variable_name IN ('Innodb_row_lock_waits', 'Innodb_deadlocks')")
        .await?;
    eprintln!("lane runs repeated after a transient error: {reruns}; target InnoDB: {waits:?}");
    let sql = "SELECT id, v, pad FROM t ORDER BY id";
    let a = mysql_byte_rows(&mut src.client("hot").await?, sql).await?;
    let b = mysql_byte_rows(&mut dst.client("hot").await?, sql).await?;
    assert_eq!(a.len(), b.len(), "source and target row counts differ");
    let diff = a.iter().zip(&b).position(|(x, y)| x != y);
    assert!(
        diff.is_none(),
        "first differing row: {:?} vs {:?}",
        diff.map(|i| &a[i]),
        diff.map(|i| &b[i])
    );
    Ok(())
}
