//! A database that stops answering without closing its connections (its
//! processes frozen with SIGSTOP: the kernel still ACKs, so TCP never
//! notices) fails the assignment using it within a bounded time, instead of
//! holding its lease forever; once the server thaws, the retried work ends
//! with the target equal to the source.
use ferry_tests::mariadb::MariaDbServer;
use ferry_tests::*;
use mysql_async::prelude::Queryable;
use std::time::{Duration, Instant};

/// Seconds a probe may go unanswered in these tests.
const TIMEOUT: &str = "4";

/// Thaws a frozen PostgreSQL server when dropped, so a failing assertion
/// does not leave it stopped (its shutdown would wait forever).
struct Thaw<'a>(&'a PgServer);

impl Drop for Thaw<'_> {
    fn drop(&mut self) {
        let _ = self.0.freeze(false);
    }
}

fn hung_reported(f: &Ferry) -> bool {
    f.workers
        .iter()
        .any(|w| w.log_text().contains("did not answer a liveness probe"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_target_frozen_mid_load_fails_the_segment_in_bounded_time() -> anyhow::Result<()> {
    let p = PgbenchPair::new(5)?;
    let f = Ferry::start(
        2,
        5000,
        &[
            ("FERRY_ENDPOINT_TIMEOUT", TIMEOUT),
            ("FERRY_FAILPOINT", "before-commit:1500"),
        ],
    )?;
    p.create_task(&f, "frozen", "full-load");
    f.ok(&["task", "start", "frozen"]);
    f.wait_until("a segment to reach its commit", Duration::from_secs(120), || {
        f.workers.iter().any(|w| w.log_text().contains("failpoint: pausing"))
    });
    p.dst.freeze(true)?;
    let thaw = Thaw(&p.dst);
    let frozen_at = Instant::now();
    f.wait_until("the hung target to be noticed", Duration::from_secs(60), || {
        hung_reported(&f)
    });
    let noticed = frozen_at.elapsed();
    assert!(noticed < Duration::from_secs(30), "noticed after {noticed:?}");
    drop(thaw);
    let (ok, out, err) = f.ferry(&["task", "wait", "frozen", "--for", "full-load", "--timeout", "300"]);
    assert!(ok, "{out}{err}\n{:?}", f.status("frozen"));
    p.assert_identical().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_source_frozen_mid_cdc_fails_the_stream_in_bounded_time() -> anyhow::Result<()> {
    let my = MariaDbServer::start()?;
    let pg = PgServer::start()?;
    let mut m = my.client("mysql").await?;
    m.query_drop("CREATE DATABASE shop").await?;
    let mut m = my.client("shop").await?;
    m.query_drop("CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t SELECT seq, seq FROM seq_1_to_1000")
        .await?;
    let f = Ferry::start(1, 5000, &[("FERRY_ENDPOINT_TIMEOUT", TIMEOUT)])?;
    create_typed(
        &f,
        "live",
        &my.url("shop"),
        &pg.url("postgres"),
        "full-load-and-cdc",
        "{}",
        &[],
    );
    f.ok(&["task", "start", "live"]);
    wait_caught_up(&f, "live");
    m.query_drop("UPDATE t SET v = -v WHERE id <= 100").await?;
    drop(m);
    my.freeze(true)?;
    let frozen_at = Instant::now();
    let waited = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        f.wait_until("the hung source to be noticed", Duration::from_secs(60), || {
            hung_reported(&f)
        })
    }));
    my.freeze(false)?;
    assert!(waited.is_ok(), "the stream kept waiting on the frozen source");
    let noticed = frozen_at.elapsed();
    assert!(noticed < Duration::from_secs(30), "noticed after {noticed:?}");
    let mut m = my.client("shop").await?;
    m.query_drop("INSERT INTO t VALUES (5000, 5000); DELETE FROM t WHERE id = 1")
        .await?;
    wait_caught_up(&f, "live");
    let want: Vec<(i32, i32)> = m.query("SELECT id, v FROM t ORDER BY id").await?;
    let got: Vec<(i32, i32)> = pg
        .client("postgres")
        .await?
        .query("SELECT id, v FROM shop.t ORDER BY id", &[])
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(got, want);
    Ok(())
}
