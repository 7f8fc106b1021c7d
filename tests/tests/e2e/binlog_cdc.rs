//! Binlog CDC from MariaDB, full-load-and-cdc, with writes running during
//! the load and after it (inserts of edge values, updates, primary-key
//! changes, deletes, keyless duplicates): a worker killed mid-stream, the
//! source server crashed and restarted mid-stream, a column added to one
//! table (reloaded in its new shape), a table created on the source
//! (joins the task). After
//! caught-up every table matches the source value by value.
use ferry_tests::compare::*;
use ferry_tests::mariadb::{create_sample, sample_writes, MariaDbServer};
use ferry_tests::*;
use mysql_async::prelude::Queryable;
use std::time::Duration;

/// Runs rounds `from..to` of the sample write load on its own connection,
/// a few milliseconds apart.
async fn writer(
    src: &MariaDbServer,
    from: u64,
    to: u64,
) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<()>>> {
    let mut c = src.client("shop").await?;
    Ok(tokio::spawn(async move {
        for r in from..to {
            sample_writes(&mut c, r).await?;
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
        Ok(())
    }))
}

/// Small segments: big and pairs are read in several snapshots each.
fn create_cdc(f: &Ferry, name: &str, source: &str, target: &str) {
    let settings = r#"{"Ferry": {"SegmentTargetBytes": 262144}}"#;
    create_typed(f, name, source, target, "full-load-and-cdc", settings, &[]);
}

/// Same-engine comparison, byte for byte (zero dates are NULL on targets).
async fn assert_mysql_same(s: &mut mysql_async::Conn, d: &mut mysql_async::Conn) -> anyhow::Result<()> {
    s.query_drop("SET time_zone = '+00:00'").await?;
    d.query_drop("SET time_zone = '+00:00'").await?;
    for (table, order, cols) in [
        ("kinds", "id", "id, i8, u8, i16, u16, u24, i32, u32, i64, u64, dec65, money, f, d, dt, ts, IF(dd = '0000-00-00', NULL, dd), tm, yr, b, e, s, j, bl, vb, c, vc, tx"),
        ("big", "id", "*"),
        ("pairs", "region, n", "*"),
        ("loose", "a, b", "*"),
        ("parent", "id", "*"),
        ("child", "id", "*"),
    ] {
        let sql = format!("SELECT {cols} FROM {table} ORDER BY {order}");
        let a = mysql_byte_rows(s, &sql).await?;
        let b = mysql_byte_rows(d, &sql.replace("IF(dd = '0000-00-00', NULL, dd)", "dd")).await?;
        if a != b {
            // Rows by their first column: which are missing, extra or different.
            let key = |r: &Vec<Option<Vec<u8>>>| String::from_utf8_lossy(r[0].as_deref().unwrap_or(b"NULL")).into_owned();
            let only = |x: &[Vec<Option<Vec<u8>>>], y: &[Vec<Option<Vec<u8>>>]| -> Vec<String> {
                x.iter().filter(|r| !y.contains(r)).map(key).take(20).collect()
            };
            panic!(
                "{table}: {} source rows, {} target rows; rows only (or different) on the source: {:?}; on the target: {:?}",
                a.len(),
                b.len(),
                only(&a, &b),
                only(&b, &a)
            );
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_to_mysql_cdc_survives_worker_kill_and_server_crash() -> anyhow::Result<()> {
    let mut src = MariaDbServer::start()?;
    let dst = MariaDbServer::start()?;
    src.client("mysql").await?.query_drop("CREATE DATABASE shop").await?;
    let mut s = src.client("shop").await?;
    create_sample(&mut s).await?;
    dst.client("mysql").await?.query_drop("CREATE DATABASE landing").await?;

    let mut f = Ferry::start(2, 3000, &[])?;
    create_cdc(&f, "mm", &src.url("shop"), &dst.url("landing"));
    f.ok(&["task", "start", "mm"]);
    // Writes while the segments are read.
    let w = writer(&src, 1, 120).await?;
    let (ok, out, err) = f.ferry(&["task", "wait", "mm", "--for", "full-load", "--timeout", "300"]);
    assert!(ok, "full load failed: {out}{err}\nstatus: {:?}", f.status("mm"));
    w.await??;

    // Kill every worker mid-stream while writes go on; a fresh one resumes.
    let w = writer(&src, 120, 200).await?;
    f.wait_until("the binlog stream to apply changes", Duration::from_secs(60), || {
        f.workers.iter().any(|w| w.log_text().contains("binlog stream started"))
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    f.workers[0].kill9();
    f.workers[1].kill9();
    f.add_worker(&[])?;
    w.await??;
    wait_caught_up(&f, "mm");
    let mut d = dst.client("shop").await?;
    assert_mysql_same(&mut s, &mut d).await?;

    // Crash the source mid-stream (binlog rotates on restart); the stream
    // reconnects and resumes from the target's committed position.
    let w = writer(&src, 200, 240).await?;
    w.await??;
    src.crash_restart()?;
    let mut s = src.client("shop").await?;
    for r in 240..280 {
        sample_writes(&mut s, r).await?;
    }
    wait_caught_up(&f, "mm");
    assert_mysql_same(&mut s, &mut d).await?;

    // A column added on the source (HandleSourceTableAltered, the default):
    // the table is reloaded in its new shape and rejoins the stream while
    // the other tables' writes go on.
    s.query_drop("ALTER TABLE odd ADD COLUMN extra INT DEFAULT 7").await?;
    s.query_drop("INSERT INTO odd VALUES (50, 'after ddl', '2024-01-01', 1)")
        .await?;
    let w = writer(&src, 280, 330).await?;
    w.await??;
    wait_caught_up(&f, "mm");
    let st = f.status("mm").unwrap();
    assert_eq!(st["degraded"], false, "{}", st["tables_in_error"]);
    let sql = "SELECT id, extra FROM odd ORDER BY id";
    let (a, b) = (mysql_byte_rows(&mut s, sql).await?, mysql_byte_rows(&mut d, sql).await?);
    assert_eq!(a.len(), 4, "{a:?}");
    assert_eq!(a[0][1].as_deref(), Some(&b"7"[..]), "extra's default in old rows");
    assert_eq!(a, b, "odd after its reload");
    assert_mysql_same(&mut s, &mut d).await?;

    // A table created on the source joins the task, under writes.
    s.query_drop(
        "CREATE TABLE fresh (id INT PRIMARY KEY, v VARCHAR(20) CHARACTER SET latin1);
         INSERT INTO fresh VALUES (1, 'caf\u{e9}'), (2, 'b'), (3, 'c')",
    )
    .await?;
    let w = writer(&src, 330, 360).await?;
    s.query_drop(
        "INSERT INTO fresh VALUES (4, 'd'); UPDATE fresh SET v = 'B' WHERE id = 2; DELETE FROM fresh WHERE id = 3",
    )
    .await?;
    f.wait_until("fresh to join", Duration::from_secs(120), || {
        f.status("mm").is_some_and(|st| {
            st["phase"] == "CDC"
                && st["tables"].as_array().is_some_and(|ts| {
                    ts.iter()
                        .any(|t| t["name"] == "fresh" && t["state"] == "Table completed")
                })
        })
    });
    s.query_drop("INSERT INTO fresh VALUES (5, 'e')").await?;
    w.await??;
    wait_caught_up(&f, "mm");
    let sql = "SELECT id, v FROM fresh ORDER BY id";
    let (a, b) = (mysql_byte_rows(&mut s, sql).await?, mysql_byte_rows(&mut d, sql).await?);
    assert_eq!(a.len(), 4, "{a:?}");
    assert_eq!(a, b, "fresh after it joined");
    assert_mysql_same(&mut s, &mut d).await?;
    let counters = table_status(&st, "kinds");
    assert!(counters.to_string().contains("inserts"), "{counters}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_to_pg_cdc_keeps_every_value() -> anyhow::Result<()> {
    let my = MariaDbServer::start()?;
    let pg = PgServer::start()?;
    my.client("mysql")
        .await?
        .query_drop("CREATE DATABASE shop CHARACTER SET utf8mb4")
        .await?;
    let mut m = my.client("shop").await?;
    create_sample(&mut m).await?;
    pg.client("postgres")
        .await?
        .batch_execute("ALTER DATABASE postgres SET timezone = 'America/New_York'")
        .await?;
    let f = Ferry::start(2, 3000, &[])?;
    create_cdc(&f, "mp", &my.url("shop"), &pg.url("postgres"));
    f.ok(&["task", "start", "mp"]);
    let w = writer(&my, 1, 150).await?;
    let (ok, out, err) = f.ferry(&["task", "wait", "mp", "--for", "full-load", "--timeout", "300"]);
    assert!(ok, "full load failed: {out}{err}\nstatus: {:?}", f.status("mp"));
    w.await??;
    // After the load: more writes, and a row PostgreSQL cannot store.
    let w = writer(&my, 150, 220).await?;
    w.await??;
    m.query_drop("INSERT INTO odd VALUES (9, CONCAT('nul', CHAR(0)), '2024-01-01')")
        .await?;
    wait_caught_up(&f, "mp");
    let p = pg.client("postgres").await?;
    assert_mysql_pg_sample(&mut m, &p).await?;
    let st = f.status("mp").unwrap();
    assert_eq!(table_status(&st, "odd")["exceptions"], 3, "{st}");
    let ex = pg_rows(
        &p,
        "SELECT reason FROM ferry.apply_exceptions WHERE task = 'mp' AND phase = 'cdc'",
    )
    .await?;
    assert_eq!(ex.len(), 1, "{ex:?}");
    assert!(ex[0][0].as_deref().unwrap().contains("NUL"), "{ex:?}");
    Ok(())
}
