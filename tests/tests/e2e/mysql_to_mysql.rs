//! MariaDB → MariaDB full load of the MySQL sample (every type family, keys
//! past 2^63, composite keys, segments) while one worker is killed with
//! SIGKILL mid-segment (rows loaded, not committed) and another after its
//! commit but before reporting: every table ends identical to the source,
//! byte for byte, nothing lost or doubled.
use ferry_tests::compare::mysql_byte_rows;
use ferry_tests::mariadb::{create_sample, MariaDbServer};
use ferry_tests::*;
use mysql_async::prelude::Queryable;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn mysql_to_mysql_survives_killed_workers() -> anyhow::Result<()> {
    let src = MariaDbServer::start()?;
    let dst = MariaDbServer::start()?;
    src.client("mysql").await?.query_drop("CREATE DATABASE shop").await?;
    let mut s = src.client("shop").await?;
    create_sample(&mut s).await?;
    dst.client("mysql").await?.query_drop("CREATE DATABASE landing").await?;

    // Only the two doomed workers at first, so that each surely takes a
    // segment and pauses in it; the healthy worker joins afterwards.
    let mut f = Ferry::start(0, 3000, &[])?;
    f.add_worker(&[("FERRY_FAILPOINT", "before-commit:60000")])?;
    f.add_worker(&[("FERRY_FAILPOINT", "after-commit:60000")])?;
    create_full_load(
        &f,
        "mm",
        &src.url("shop"),
        &dst.url("landing"),
        r#"{"Ferry": {"SegmentTargetBytes": 262144}}"#,
        &[],
    );
    f.ok(&["task", "start", "mm"]);
    for i in [0, 1] {
        let w = &f.workers[i];
        f.wait_until("a worker to pause mid-segment", Duration::from_secs(120), || {
            w.log_text().contains("failpoint: pausing")
        });
    }
    f.workers[0].kill9();
    f.workers[1].kill9();
    f.add_worker(&[])?;
    let (ok, out, err) = f.ferry(&["task", "wait", "mm", "--for", "full-load", "--timeout", "300"]);
    assert!(
        ok,
        "wait failed: {out}{err}\nstatus: {:?}\nworker: {}",
        f.status("mm"),
        f.workers[2].log_text()
    );
    assert!(
        f.workers[2].log_text().contains("already committed"),
        "the segment committed by the killed worker was not recognised as loaded"
    );

    // A MySQL database keeps its name on a MySQL target.
    let mut d = dst.client("shop").await?;
    d.query_drop("SET time_zone = '+00:00'").await?; // as the source session
    for (table, order, cols) in [
        // The zero date's policy is NULL on every target.
        ("kinds", "id", "id, i8, u8, i16, u16, u24, i32, u32, i64, u64, dec65, money, f, d, dt, ts, IF(dd = '0000-00-00', NULL, dd), tm, yr, b, e, s, j, bl, vb, c, vc, tx"),
        ("big", "id", "*"),
        ("pairs", "region, n", "*"),
        ("loose", "a, b", "*"),
        ("odd", "id", "*"),
        ("parent", "id", "*"),
        ("child", "id", "*"),
    ] {
        let sql = format!("SELECT {cols} FROM {table} ORDER BY {order}");
        let a = mysql_byte_rows(&mut s, &sql).await?;
        let b = mysql_byte_rows(&mut d, &sql.replace("IF(dd = '0000-00-00', NULL, dd)", "dd")).await?;
        assert!(!a.is_empty(), "{table} is empty on the source");
        let diff = a.iter().zip(&b).position(|(x, y)| x != y);
        assert!(
            a.len() == b.len() && diff.is_none(),
            "{table}: {} source rows, {} target rows; first difference: {:?}",
            a.len(),
            b.len(),
            diff.map(|i| {
                let c = a[i].iter().zip(&b[i]).position(|(x, y)| x != y).unwrap_or(0);
                (i, c, a[i][c].as_ref().map(|v| String::from_utf8_lossy(v).into_owned()), b[i][c].as_ref().map(|v| String::from_utf8_lossy(v).into_owned()))
            })
        );
    }
    // The schema came across: indexes after the load, the foreign key last,
    // AUTO_INCREMENT continuing.
    let idx: Vec<String> = d
        .query("SELECT DISTINCT CONCAT(TABLE_NAME, '.', INDEX_NAME) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = 'shop' ORDER BY 1")
        .await?;
    for want in ["big.by_k", "parent.name", "pairs.PRIMARY"] {
        assert!(idx.iter().any(|i| i == want), "index {want} missing: {idx:?}");
    }
    let fk: Vec<String> = d
        .query("SELECT DELETE_RULE FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = 'shop' AND TABLE_NAME = 'child'")
        .await?;
    assert_eq!(fk, vec!["CASCADE".to_string()]);
    // A second load over the loaded tables (DO_NOTHING): each segment
    // deletes its range first, in parallel, and nothing is doubled.
    let dir = tempfile::tempdir()?;
    let mappings = dir.path().join("mappings.json");
    std::fs::write(
        &mappings,
        r#"{"rules":[{"rule-type":"selection","rule-id":"1","rule-name":"big","object-locator":{"schema-name":"shop","table-name":"big"},"rule-action":"include"}]}"#,
    )?;
    f.add_worker(&[])?;
    create_full_load(
        &f,
        "again",
        &src.url("shop"),
        &dst.url("landing"),
        r#"{"FullLoadSettings": {"TargetTablePrepMode": "DO_NOTHING"}, "Ferry": {"SegmentTargetBytes": 262144}}"#,
        &["--table-mappings", mappings.to_str().unwrap()],
    );
    f.ok(&["task", "start", "again"]);
    let (ok, out, err) = f.ferry(&["task", "wait", "again", "--for", "full-load", "--timeout", "300"]);
    assert!(ok, "second load failed: {out}{err}");
    let sql = "SELECT * FROM big ORDER BY id";
    assert!(
        mysql_byte_rows(&mut s, sql).await? == mysql_byte_rows(&mut d, sql).await?,
        "big differs after the reload"
    );

    d.query_drop("INSERT INTO kinds (i8) VALUES (7)").await?;
    let id: Option<u64> = d.query_first("SELECT LAST_INSERT_ID()").await?;
    assert_eq!(id, Some(5));
    Ok(())
}
