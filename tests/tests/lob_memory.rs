//! Full LOB mode with values near PostgreSQL's 1 GB limit (a text value
//! of 1,000,000,000 bytes; PostgreSQL cannot send a larger one), through the
//! full load and CDC, while the worker runs in a memory cgroup. Values
//! travel whole (there are no LOB chunks), so the worker holds a few copies
//! of the value it is moving — never a batch or a table of them: the limit
//! is a small multiple of one value (six, and 512 MiB for the rest), and
//! several such values are moved one after another under it. The test
//! fails if the worker is OOM-killed, loses its leases while it works on a
//! value (it would never finish), or a value differs (length and md5).
//!
//! Into MariaDB the values are 256 MB: a LOAD DATA row near 1 GB is refused
//! by the server (the connection is reset), which docs/lobs.md lists.
//! `FERRY_LOB_TEST_BYTES` overrides the value size for both (a quick run).
use ferry_tests::compare::{mysql_rows, pg_rows, TextRows};
use ferry_tests::mariadb::MariaDbServer;
use ferry_tests::*;
use mysql_async::prelude::Queryable;

/// The value size: `default` unless `FERRY_LOB_TEST_BYTES` says otherwise.
fn value_bytes(default: u64) -> u64 {
    std::env::var("FERRY_LOB_TEST_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Peak resident memory of process `pid` (`VmHWM`), in bytes.
fn peak(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|st| {
            st.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

const DIGEST: &str = "SELECT id, length(body), md5(body) FROM docs ORDER BY id";

/// Where the values go.
enum Target {
    Pg(PgServer),
    MariaDb(MariaDbServer),
}

impl Target {
    fn url(&self) -> String {
        match self {
            Target::Pg(pg) => pg.url("postgres"),
            Target::MariaDb(my) => my.url("public"),
        }
    }

    /// `docs`' ids, value lengths and md5s, as text rows.
    async fn digest(&self) -> anyhow::Result<TextRows> {
        match self {
            Target::Pg(pg) => {
                let sql = "SELECT id::text, length(body)::text, md5(body) FROM docs ORDER BY docs.id";
                pg_rows(&pg.client("postgres").await?, sql).await
            }
            Target::MariaDb(my) => mysql_rows(&mut my.client("public").await?, DIGEST).await,
        }
    }
}

/// Two values of `v` bytes among small rows, loaded in full LOB
/// mode; then one replaced, one inserted and a small row changed under
/// CDC, with the worker in a memory cgroup of six values and 512 MiB.
async fn large_values_under_a_memory_limit(target: Target, v: u64) -> anyhow::Result<()> {
    let src = PgServer::start()?;
    let s = src.client("postgres").await?;
    s.batch_execute("CREATE TABLE docs (id int PRIMARY KEY, body text)")
        .await?;
    // A segment holds the large values and the small rows around them.
    s.execute(
        "INSERT INTO docs SELECT g, CASE WHEN g IN (3, 7) THEN repeat(chr(96 + g) || 'xyz0123456789', ($1::bigint / 14)::int) ELSE 'small ' || g END FROM generate_series(1, 10) g",
        &[&(v as i64)],
    )
    .await?;
    let mut f = Ferry::start(1, 5000, &[])?;
    let worker = f.workers[0].child.id();
    let limit = 6 * v + (512 << 20);
    let cg = MemoryCgroup::limit(worker, limit)?;
    create_typed(
        &f,
        "lobs",
        &src.url("postgres"),
        &target.url(),
        "full-load-and-cdc",
        r#"{"TargetMetadata": {"FullLobMode": true}}"#,
        &[],
    );
    f.ok(&["task", "start", "lobs"]);
    wait_caught_up(&f, "lobs");
    let after_load = peak(worker);

    s.execute(
        "UPDATE docs SET body = repeat('q' || 'abcdefghijklm', ($1::bigint / 14)::int) WHERE id = 3",
        &[&(v as i64)],
    )
    .await?;
    s.execute(
        "INSERT INTO docs VALUES (11, repeat('r' || 'nopqrstuvwxyz', ($1::bigint / 14)::int))",
        &[&(v as i64)],
    )
    .await?;
    s.batch_execute("UPDATE docs SET body = 'small changed' WHERE id = 5")
        .await?;
    let (ok, out, err) = f.ferry(&["task", "wait", "lobs", "--for", "caught-up", "--timeout", "900"]);
    let after_cdc = peak(worker);
    assert_alive_in(&mut f, &cg)?;
    assert!(ok, "caught-up wait failed: {out}{err}");
    eprintln!(
        "values of {v} bytes: worker peak {} MiB after the full load, {} MiB after CDC (limit {} MiB)",
        after_load >> 20,
        after_cdc >> 20,
        limit >> 20
    );

    let want = pg_rows(
        &s,
        "SELECT id::text, length(body)::text, md5(body) FROM docs ORDER BY docs.id",
    )
    .await?;
    let large = want
        .iter()
        .filter(|r| {
            r[1].as_deref()
                .and_then(|n| n.parse::<u64>().ok())
                .is_some_and(|n| n + 14 > v)
        })
        .count();
    assert_eq!((want.len(), large), (11, 3), "{want:?}");
    assert_eq!(want, target.digest().await?, "source and target differ");
    assert_no_apply_conflicts(&f.status("lobs").expect("status"));
    f.workers[0].kill9();
    drop(cg);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn values_near_one_gigabyte_move_whole_in_bounded_memory_to_postgres() -> anyhow::Result<()> {
    large_values_under_a_memory_limit(Target::Pg(PgServer::start()?), value_bytes(1_000_000_000)).await
}

#[tokio::test(flavor = "multi_thread")]
async fn values_near_one_gigabyte_move_whole_in_bounded_memory_to_mariadb() -> anyhow::Result<()> {
    // A CDC upsert of a large value is one statement of its size.
    let my = MariaDbServer::start_with(&["--max-allowed-packet=1G".to_string()])?;
    my.client("mysql").await?.query_drop("CREATE DATABASE public").await?;
    large_values_under_a_memory_limit(Target::MariaDb(my), value_bytes(256_000_000)).await
}
