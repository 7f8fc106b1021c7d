//! `--cdc-stop-position` (DMS's CdcStopPosition): a stream stops before the
//! first transaction committed after the stop, and the task with it; the
//! target then holds exactly the source as of the stop. Each case writes
//! rows one transaction at a time from one session, reading the stop (a log
//! position, or the server's clock) between two of them, so which rows
//! precede it is known without asking Ferry. Both forms are tested from
//! PostgreSQL and MariaDB; a time stop in an idle source's future is
//! reached with no write after it. `task start` then streams on.
use ferry_tests::compare::{mysql_rows, pg_rows};
use ferry_tests::mariadb::MariaDbServer;
use ferry_tests::*;
use mysql_async::prelude::Queryable;
use std::time::Duration;

/// Waits until the task stops on its own, and checks that it said why.
fn wait_stopped_at_stop(f: &Ferry, task: &str) {
    f.wait_until(
        "the stream to reach its stop position",
        Duration::from_secs(120),
        || f.status(task).is_some_and(|st| st["state"] == "stopped"),
    );
    let st = f.status(task).unwrap();
    let why = st["error"].as_str().unwrap_or_default();
    assert!(why.contains("CDC stop position"), "{st}");
}

/// `task stop`, then long enough for the worker to learn that its stream
/// was revoked (a revoked stream commits until its next heartbeat).
fn stop_task(f: &Ferry, task: &str) {
    f.ok(&["task", "stop", task]);
    std::thread::sleep(Duration::from_secs(3));
}

/// Ids on the target: (count, max).
async fn pg_ids(c: &tokio_postgres::Client) -> anyhow::Result<(i64, i64)> {
    let r = c
        .query_one("SELECT count(*), coalesce(max(id), 0)::bigint FROM public.t", &[])
        .await?;
    Ok((r.get(0), r.get(1)))
}

async fn pg_insert(c: &tokio_postgres::Client, ids: std::ops::RangeInclusive<i32>) -> anyhow::Result<()> {
    for i in ids {
        c.execute("INSERT INTO public.t VALUES ($1::int, 'row ' || $1::int::text)", &[&i])
            .await?;
    }
    Ok(())
}

/// The source's clock as `server_time:` text, UTC, to the millisecond.
async fn pg_server_time(c: &tokio_postgres::Client, plus_s: i32) -> anyhow::Result<String> {
    let r = pg_rows(
        c,
        &format!(
            "SELECT to_char((clock_timestamp() + interval '{plus_s} s') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS')"
        ),
    )
    .await?;
    Ok(format!("server_time:{}", r[0][0].as_deref().unwrap()))
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_stream_stops_at_a_position_and_at_a_time() -> anyhow::Result<()> {
    let src = PgServer::start()?;
    let dst = PgServer::start()?;
    let s = src.client("postgres").await?;
    s.batch_execute("CREATE TABLE public.t (id int PRIMARY KEY, v text)")
        .await?;
    pg_insert(&s, 1..=100).await?;
    let f = Ferry::start(1, 3000, &[])?;
    create_typed(
        &f,
        "ps",
        &src.url("postgres"),
        &dst.url("postgres"),
        "full-load-and-cdc",
        "{}",
        &[],
    );
    f.ok(&["task", "start", "ps"]);
    wait_caught_up(&f, "ps");
    let d = dst.client("postgres").await?;

    // Refused while it runs, and in a form the source has not.
    let (ok, _, err) = f.ferry(&["task", "start", "ps", "--cdc-stop-position", "0/0"]);
    assert!(!ok && err.contains("ferry task stop ps"), "{err}");
    stop_task(&f, "ps");
    let (ok, _, err) = f.ferry(&["task", "start", "ps", "--cdc-stop-position", "mysql-bin.000001:4"]);
    assert!(
        !ok && err.contains("--cdc-stop-position") && err.contains("LSN"),
        "{err}"
    );
    let (ok, _, err) = f.ferry(&[
        "task",
        "start",
        "ps",
        "--cdc-stop-position",
        "server_time:2026-02-30T00:00:00",
    ]);
    assert!(!ok && err.contains("is not a time"), "{err}");

    // A position: rows 101..=150 commit before it, 151..=200 after.
    pg_insert(&s, 101..=150).await?;
    let at = pg_rows(&s, "SELECT pg_current_wal_insert_lsn()::text").await?[0][0]
        .clone()
        .unwrap();
    pg_insert(&s, 151..=200).await?;
    f.ok(&["task", "start", "ps", "--cdc-stop-position", &at]);
    wait_stopped_at_stop(&f, "ps");
    assert_eq!(pg_ids(&d).await?, (150, 150), "stopped at {at}");
    let why = f.status("ps").unwrap()["error"].to_string();
    assert!(why.contains(&at), "{why}");

    // A time, with writes on both sides of it.
    let stop = {
        pg_insert(&s, 201..=220).await?;
        let t = pg_server_time(&s, 0).await?;
        tokio::time::sleep(Duration::from_millis(20)).await;
        pg_insert(&s, 221..=240).await?;
        t
    };
    f.ok(&["task", "start", "ps", "--cdc-stop-position", &stop]);
    wait_stopped_at_stop(&f, "ps");
    assert_eq!(pg_ids(&d).await?, (220, 220), "stopped at {stop}");

    // A time a few seconds ahead, and no write after it: the stream still
    // stops, having applied everything before it.
    let stop = pg_server_time(&s, 4).await?;
    f.ok(&["task", "start", "ps", "--cdc-stop-position", &stop]);
    pg_insert(&s, 241..=260).await?;
    wait_stopped_at_stop(&f, "ps");
    assert_eq!(pg_ids(&d).await?, (260, 260), "stopped at {stop}");
    pg_insert(&s, 261..=262).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(pg_ids(&d).await?, (260, 260), "a stopped task applies nothing");

    // Started without a stop, it streams on.
    f.ok(&["task", "start", "ps"]);
    wait_caught_up(&f, "ps");
    assert_tables_identical(&src, &dst, &["t"]).await?;
    Ok(())
}

/// A time stop under a steady write load, with the worker running the
/// stream killed on the way: the stream that takes over stops at the same
/// time. Which rows precede the stop comes from the source's own commit
/// timestamps (`track_commit_timestamp`), truncated to milliseconds as the
/// stream compares them.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_time_stop_holds_under_writes_with_the_stream_worker_killed() -> anyhow::Result<()> {
    let src = PgServer::start_with("-c track_commit_timestamp=on")?;
    let dst = PgServer::start()?;
    let s = src.client("postgres").await?;
    s.batch_execute("CREATE TABLE public.t (id int PRIMARY KEY, v text)")
        .await?;
    pg_insert(&s, 1..=100).await?;
    let mut f = Ferry::start(2, 3000, &[])?;
    create_typed(
        &f,
        "pk",
        &src.url("postgres"),
        &dst.url("postgres"),
        "full-load-and-cdc",
        "{}",
        &[],
    );
    f.ok(&["task", "start", "pk"]);
    wait_caught_up(&f, "pk");
    stop_task(&f, "pk");

    // Writes for about 20 s; the stop is 12 s ahead, so the killed
    // stream's successor (started 6 s after the kill) still has writes on
    // both sides of it to sort.
    let stop = pg_server_time(&s, 12).await?;
    let w = src.client("postgres").await?;
    let writes = tokio::spawn(async move {
        let started = std::time::Instant::now();
        let mut id = 101;
        while started.elapsed() < Duration::from_secs(20) {
            pg_insert(&w, id..=id).await?;
            id += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        anyhow::Ok(id - 1)
    });
    f.ok(&["task", "start", "pk", "--cdc-stop-position", &stop]);
    f.kill_stream_worker()?;
    wait_stopped_at_stop(&f, "pk");
    let last = writes.await??;
    let want = pg_rows(
        &s,
        &format!(
            "SELECT count(*)::text, max(id)::text FROM public.t
             WHERE date_trunc('milliseconds', pg_xact_commit_timestamp(xmin) AT TIME ZONE 'UTC')
                   <= '{}'::timestamp",
            stop.trim_start_matches("server_time:")
        ),
    )
    .await?;
    let d = dst.client("postgres").await?;
    let got = pg_rows(&d, "SELECT count(*)::text, max(id)::text FROM public.t").await?;
    assert_eq!(got, want, "stopped at {stop}; the source has rows up to {last}");
    let n: i64 = want[0][0].as_deref().unwrap().parse()?;
    assert!(
        n > 100 && n < last as i64,
        "writes on both sides of the stop: {n} of {last}"
    );

    f.ok(&["task", "start", "pk"]);
    wait_caught_up(&f, "pk");
    assert_tables_identical(&src, &dst, &["t"]).await?;
    Ok(())
}

async fn my_insert(c: &mut mysql_async::Conn, ids: std::ops::RangeInclusive<i32>) -> anyhow::Result<()> {
    for i in ids {
        c.exec_drop("INSERT INTO t VALUES (?, CONCAT('row ', ?))", (i, i))
            .await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_stream_stops_at_a_position_and_at_a_time() -> anyhow::Result<()> {
    let src = MariaDbServer::start()?;
    let dst = PgServer::start()?;
    src.client("mysql").await?.query_drop("CREATE DATABASE shop").await?;
    let mut s = src.client("shop").await?;
    s.query_drop("CREATE TABLE t (id int PRIMARY KEY, v text)").await?;
    my_insert(&mut s, 1..=100).await?;
    let f = Ferry::start(1, 3000, &[])?;
    create_typed(
        &f,
        "ms",
        &src.url("shop"),
        &dst.url("postgres"),
        "full-load-and-cdc",
        "{}",
        &[],
    );
    f.ok(&["task", "start", "ms"]);
    wait_caught_up(&f, "ms");
    stop_task(&f, "ms");
    let d = dst.client("postgres").await?;
    let ids = || async { pg_rows(&d, "SELECT count(*)::text, max(id)::text FROM shop.t").await };

    // A position, as SHOW MASTER STATUS gives it.
    my_insert(&mut s, 101..=150).await?;
    let status = mysql_rows(&mut s, "SHOW MASTER STATUS").await?;
    let at = format!(
        "{}:{}",
        status[0][0].as_deref().unwrap(),
        status[0][1].as_deref().unwrap()
    );
    my_insert(&mut s, 151..=200).await?;
    f.ok(&["task", "start", "ms", "--cdc-stop-position", &at]);
    wait_stopped_at_stop(&f, "ms");
    let want = |n: &str| vec![vec![Some(n.to_string()), Some(n.to_string())]];
    assert_eq!(ids().await?, want("150"), "stopped at {at}");

    // A time in the idle source's near future (MySQL's log keeps whole
    // seconds: the stop is a whole second, the writes well before it).
    let now = mysql_rows(
        &mut s,
        "SELECT DATE_FORMAT(UTC_TIMESTAMP() + INTERVAL 3 SECOND, '%Y-%m-%dT%H:%i:%s')",
    )
    .await?;
    let stop = format!("server_time:{}", now[0][0].as_deref().unwrap());
    f.ok(&["task", "start", "ms", "--cdc-stop-position", &stop]);
    my_insert(&mut s, 201..=220).await?;
    wait_stopped_at_stop(&f, "ms");
    assert_eq!(ids().await?, want("220"), "stopped at {stop}");
    my_insert(&mut s, 221..=230).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(ids().await?, want("220"), "a stopped task applies nothing");

    f.ok(&["task", "start", "ms"]);
    wait_caught_up(&f, "ms");
    assert_eq!(ids().await?, want("230"));
    Ok(())
}
