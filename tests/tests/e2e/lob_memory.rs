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
//! Into MariaDB the full load moves values of 1,000,000,000 bytes too (the
//! LOAD DATA stream is cut into packets under max_allowed_packet); CDC
//! moves 256 MB ones, as a change is one statement of its value's size and
//! the server's max_allowed_packet is at most 1 GiB (docs/lobs.md).
//! From a MariaDB source the values are 256 MB: an update's binlog event
//! holds the row's old and new images, and an event over the server's
//! max_allowed_packet (at most 1 GiB) cannot be sent.
//! `FERRY_LOB_TEST_BYTES` overrides every value size (a quick run).
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

/// A server the values come from or go to, with `docs` in its `public`
/// schema (database).
enum Side {
    Pg(PgServer),
    MariaDb(MariaDbServer),
}

impl Side {
    fn pg() -> anyhow::Result<Side> {
        Ok(Side::Pg(PgServer::start()?))
    }

    /// A MariaDB server that takes statements and rows near 1 GB.
    async fn mariadb() -> anyhow::Result<Side> {
        let my = MariaDbServer::start_with(&["--max-allowed-packet=1G".to_string()])?;
        my.client("mysql").await?.query_drop("CREATE DATABASE public").await?;
        Ok(Side::MariaDb(my))
    }

    fn url(&self) -> String {
        match self {
            Side::Pg(pg) => pg.url("postgres"),
            Side::MariaDb(my) => my.url("public"),
        }
    }

    /// Runs `sql` (written in what both engines understand).
    async fn run(&self, sql: &str) -> anyhow::Result<()> {
        match self {
            Side::Pg(pg) => pg.client("postgres").await?.batch_execute(sql).await?,
            Side::MariaDb(my) => my.client("public").await?.query_drop(sql).await?,
        }
        Ok(())
    }

    /// `docs`' ids, value lengths and md5s, as text rows.
    async fn digest(&self) -> anyhow::Result<TextRows> {
        match self {
            Side::Pg(pg) => {
                let sql = "SELECT id::text, length(body)::text, md5(body) FROM docs ORDER BY docs.id";
                pg_rows(&pg.client("postgres").await?, sql).await
            }
            Side::MariaDb(my) => mysql_rows(&mut my.client("public").await?, DIGEST).await,
        }
    }
}

/// A value of about `bytes` bytes: `head` repeated (14 bytes, a distinct
/// first character per row), as SQL.
fn repeated(head: &str, bytes: u64) -> String {
    assert_eq!(head.len(), 14);
    format!("repeat('{head}', {})", bytes / 14)
}

/// Two values of `v` bytes among small rows, loaded in full LOB mode; then
/// one replaced and one inserted with values of `c` bytes and a small row
/// changed under CDC, with the worker in a memory cgroup of six of the
/// larger values and 512 MiB.
async fn large_values_under_a_memory_limit(source: Side, target: Side, v: u64, c: u64) -> anyhow::Result<()> {
    let text = if matches!(source, Side::MariaDb(_)) {
        "longtext"
    } else {
        "text"
    };
    source
        .run(&format!("CREATE TABLE docs (id int PRIMARY KEY, body {text})"))
        .await?;
    // A segment holds the large values and the small rows around them.
    for g in 1..=10 {
        let body = match g {
            3 => repeated("cxyz0123456789", v),
            7 => repeated("gxyz0123456789", v),
            _ => format!("'small {g}'"),
        };
        source.run(&format!("INSERT INTO docs VALUES ({g}, {body})")).await?;
    }
    let mut f = Ferry::start(1, 5000, &[])?;
    let worker = f.workers[0].child.id();
    let limit = 6 * v.max(c) + (512 << 20);
    let cg = MemoryCgroup::limit(worker, limit)?;
    create_typed(
        &f,
        "lobs",
        &source.url(),
        &target.url(),
        "full-load-and-cdc",
        r#"{"TargetMetadata": {"FullLobMode": true}}"#,
        &[],
    );
    f.ok(&["task", "start", "lobs"]);
    wait_caught_up(&f, "lobs");
    let after_load = peak(worker);

    source
        .run(&format!(
            "UPDATE docs SET body = {} WHERE id = 3",
            repeated("qabcdefghijklm", c)
        ))
        .await?;
    source
        .run(&format!(
            "INSERT INTO docs VALUES (11, {})",
            repeated("rnopqrstuvwxyz", c)
        ))
        .await?;
    source
        .run("UPDATE docs SET body = 'small changed' WHERE id = 5")
        .await?;
    let (ok, out, err) = f.ferry(&["task", "wait", "lobs", "--for", "caught-up", "--timeout", "900"]);
    let after_cdc = peak(worker);
    assert_alive_in(&mut f, &cg)?;
    assert!(ok, "caught-up wait failed: {out}{err}");
    eprintln!(
        "values of {v} bytes loaded, {c} bytes changed: worker peak {} MiB after the full load, {} MiB after CDC (limit {} MiB)",
        after_load >> 20,
        after_cdc >> 20,
        limit >> 20
    );

    let want = source.digest().await?;
    let large = want
        .iter()
        .filter(|r| {
            r[1].as_deref()
                .and_then(|n| n.parse::<u64>().ok())
                .is_some_and(|n| n + 14 > v.min(c))
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
    let v = value_bytes(1_000_000_000);
    large_values_under_a_memory_limit(Side::pg()?, Side::pg()?, v, v).await
}

#[tokio::test(flavor = "multi_thread")]
async fn values_near_one_gigabyte_move_whole_in_bounded_memory_to_mariadb() -> anyhow::Result<()> {
    // A CDC upsert of a large value is one statement of its size.
    let (v, c) = (value_bytes(1_000_000_000), value_bytes(256_000_000));
    large_values_under_a_memory_limit(Side::pg()?, Side::mariadb().await?, v, c).await
}

#[tokio::test(flavor = "multi_thread")]
async fn large_values_move_whole_in_bounded_memory_from_mariadb() -> anyhow::Result<()> {
    let v = value_bytes(256_000_000);
    large_values_under_a_memory_limit(Side::mariadb().await?, Side::pg()?, v, v).await
}
