//! TLS to databases: migrations over verified TLS with client certificates
//! on both engines (replication and binlog connections included), and the
//! one-line errors of a wrong CA, a wrong host name, and a server without
//! TLS where the mode requires it.
use ferry_tests::mariadb::MariaDbServer;
use ferry_tests::tls::Certs;
use ferry_tests::*;
use mysql_async::prelude::Queryable;
use std::time::Duration;

/// A MariaDB server with TLS from `certs`, and a user `ferry` that may
/// connect only over TLS with a client certificate the CA signed.
async fn mariadb_with_tls(certs: &Certs) -> anyhow::Result<MariaDbServer> {
    let my = MariaDbServer::start_with(&[
        format!("--ssl-cert={}", certs.arg("server.pem")),
        format!("--ssl-key={}", certs.arg("server.key")),
        format!("--ssl-ca={}", certs.arg("ca.pem")),
    ])?;
    let mut c = my.client("mysql").await?;
    c.query_drop("CREATE USER ferry@'%' REQUIRE X509").await?;
    c.query_drop("GRANT ALL PRIVILEGES ON *.* TO ferry@'%' WITH GRANT OPTION")
        .await?;
    Ok(my)
}

/// A PostgreSQL server with TLS from `certs`, where the superuser `ferry`
/// may connect only over TLS with a client certificate naming it.
async fn postgres_with_tls(certs: &Certs) -> anyhow::Result<PgServer> {
    let pg = PgServer::start()?;
    pg.client("postgres")
        .await?
        .batch_execute("CREATE ROLE ferry LOGIN SUPERUSER REPLICATION")
        .await?;
    pg.enable_tls(certs, Some("ferry")).await?;
    Ok(pg)
}

/// Rows with text that differs in encoding-sensitive ways.
fn rows(from: i64, to: i64) -> String {
    (from..to)
        .map(|i| format!("({i}, 'row {i} ü 😀 ''q''')"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[tokio::test(flavor = "multi_thread")]
async fn full_load_and_cdc_over_verified_tls_with_client_certificates_on_both_engines() -> anyhow::Result<()> {
    let certs = Certs::generate("ferry")?;
    let pg = postgres_with_tls(&certs).await?;
    let my = mariadb_with_tls(&certs).await?;
    let p = pg.client("postgres").await?;
    p.batch_execute("CREATE DATABASE src").await?;
    p.batch_execute("CREATE DATABASE dst").await?;
    let ps = pg.client("src").await?;
    ps.batch_execute(&format!(
        "CREATE SCHEMA pgside; CREATE TABLE pgside.t (id int PRIMARY KEY, v text); INSERT INTO pgside.t VALUES {}",
        rows(1, 2001)
    ))
    .await?;
    let mut m = my.client("mysql").await?;
    m.query_drop("CREATE DATABASE myside").await?;
    m.query_drop("CREATE DATABASE landing").await?;
    m.query_drop("CREATE TABLE myside.t (id INT PRIMARY KEY, v TEXT)")
        .await?;
    m.query_drop(format!("INSERT INTO myside.t VALUES {}", rows(1, 2001)))
        .await?;

    let ca = certs.arg("ca.pem");
    let (cert, key) = (certs.arg("client.pem"), certs.arg("client.key"));
    // verify-full / VERIFY_IDENTITY through `localhost`, the name the
    // server's certificate carries; verify-ca / VERIFY_CA through
    // 127.0.0.1, which it does not carry.
    let pg_full = |db: &str| {
        format!(
            "postgres://ferry@localhost:{}/{db}?sslmode=verify-full&sslrootcert={ca}&sslcert={cert}&sslkey={key}",
            pg.port
        )
    };
    let pg_ca = format!(
        "postgres://ferry@127.0.0.1:{}/dst?sslmode=verify-ca&sslrootcert={ca}&sslcert={cert}&sslkey={key}",
        pg.port
    );
    let my_full = format!(
        "mysql://ferry@localhost:{}/landing?ssl-mode=VERIFY_IDENTITY&ssl-ca={ca}&ssl-cert={cert}&ssl-key={key}",
        my.port
    );
    let my_ca = format!(
        "mysql://ferry@127.0.0.1:{}/myside?ssl-mode=VERIFY_CA&ssl-ca={ca}&ssl-cert={cert}&ssl-key={key}",
        my.port
    );
    let mappings = tempfile::NamedTempFile::new()?;
    std::fs::write(
        mappings.path(),
        r#"{"rules": [{"rule-type": "selection", "rule-id": "1", "rule-name": "1",
            "object-locator": {"schema-name": "myside", "table-name": "%"}, "rule-action": "include"}]}"#,
    )?;

    let f = Ferry::start(2, 3000, &[])?;
    create_typed(&f, "pg2my", &pg_full("src"), &my_full, "full-load-and-cdc", "{}", &[]);
    create_typed(
        &f,
        "my2pg",
        &my_ca,
        &pg_ca,
        "full-load-and-cdc",
        "{}",
        &["--table-mappings", mappings.path().to_str().unwrap()],
    );
    f.ok(&["task", "start", "pg2my"]);
    f.ok(&["task", "start", "my2pg"]);
    wait_caught_up(&f, "pg2my");
    wait_caught_up(&f, "my2pg");

    // Changes through the replication and binlog connections.
    ps.batch_execute(&format!(
        "INSERT INTO pgside.t VALUES {}; UPDATE pgside.t SET v = v || ' changed' WHERE id % 7 = 0; DELETE FROM pgside.t WHERE id % 11 = 0",
        rows(2001, 2501)
    ))
    .await?;
    m.query_drop(format!(
        "INSERT INTO myside.t VALUES {}; UPDATE myside.t SET v = CONCAT(v, ' changed') WHERE id % 7 = 0; DELETE FROM myside.t WHERE id % 11 = 0",
        rows(2001, 2501)
    ))
    .await?;
    wait_caught_up(&f, "pg2my");
    wait_caught_up(&f, "my2pg");

    let want = (1..2501).filter(|i| i % 11 != 0).count();
    let pg_rows: Vec<(i32, String)> = ps
        .query("SELECT id, v FROM pgside.t ORDER BY id", &[])
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let landed: Vec<(i32, String)> = m.query("SELECT id, v FROM pgside.t ORDER BY id").await?;
    assert_eq!(pg_rows.len(), want);
    assert_eq!(landed, pg_rows, "PostgreSQL -> MariaDB over TLS");
    let my_rows: Vec<(i32, String)> = m.query("SELECT id, v FROM myside.t ORDER BY id").await?;
    let pd = pg.client("dst").await?;
    let copied: Vec<(i32, String)> = pd
        .query("SELECT id, v FROM myside.t ORDER BY id", &[])
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(copied, my_rows, "MariaDB -> PostgreSQL over TLS");

    // Every Ferry session on PostgreSQL, the walsender included, is TLS
    // with the client certificate (pg_hba allows `ferry` nothing else).
    let sessions = p
        .query(
            "SELECT a.backend_type, s.ssl, coalesce(s.client_dn, '') FROM pg_stat_activity a
              JOIN pg_stat_ssl s USING (pid) WHERE a.usename = 'ferry'",
            &[],
        )
        .await?;
    assert!(
        sessions.iter().any(|r| r.get::<_, String>(0) == "walsender"),
        "no replication session of Ferry's"
    );
    for r in &sessions {
        assert!(r.get::<_, bool>(1), "a session without TLS: {r:?}");
        assert_eq!(r.get::<_, String>(2), "/CN=ferry");
    }
    // And on MariaDB, `ferry` (REQUIRE X509) holds the binlog dump.
    let dumps: Vec<String> = m
        .query("SELECT COMMAND FROM information_schema.PROCESSLIST WHERE USER = 'ferry'")
        .await?;
    assert!(
        dumps.iter().any(|c| c.starts_with("Binlog Dump")),
        "no binlog session of Ferry's: {dumps:?}"
    );
    Ok(())
}

/// The task's status, once it shows an error containing `needle`.
fn wait_for_error(f: &Ferry, task: &str, needle: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let seen = f.status(task).map(|s| s.to_string()).unwrap_or_default();
        if seen.contains(needle) {
            return seen;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "task {task} did not report '{needle}': {seen}\nworker: {}",
            f.workers[0].log_text()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_failures_name_the_endpoint_and_the_cause() -> anyhow::Result<()> {
    let certs = Certs::generate("ferry")?;
    let pg = postgres_with_tls(&certs).await?;
    let plain_pg = PgServer::start()?;
    let my = mariadb_with_tls(&certs).await?;
    let plain_my = MariaDbServer::start()?;
    pg.client("postgres")
        .await?
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY)")
        .await?;
    let other = certs.arg("other-ca.pem");
    let ca = certs.arg("ca.pem");
    let (cert, key) = (certs.arg("client.pem"), certs.arg("client.key"));
    let f = Ferry::start(1, 3000, &[])?;

    // Settings that can be checked without connecting fail `task create`.
    for (url, says) in [
        (
            format!("postgres://ferry@localhost:{}/postgres?sslmode=verify_full", pg.port),
            "sslmode=verify_full is not one of",
        ),
        (
            format!(
                "postgres://ferry@localhost:{}/postgres?sslmode=require&sslcert={cert}",
                pg.port
            ),
            "needs both sslcert and sslkey",
        ),
        (
            format!("mysql://ferry@localhost:{}/x?ssl-mode=SOMETIMES", my.port),
            "ssl-mode=SOMETIMES is not one of",
        ),
    ] {
        let (ok, out, err) = f.ferry(&[
            "task",
            "create",
            "bad",
            "--source",
            &url,
            "--target",
            &plain_pg.url("postgres"),
        ]);
        assert!(!ok, "{url} was accepted: {out}");
        assert_eq!(err.trim().lines().count(), 1, "not one line: {err}");
        assert!(err.contains(says) && err.contains("localhost"), "{url}: {err}");
    }

    // Those that need the server fail the task's work with the cause.
    let target = plain_pg.url("postgres");
    for (name, source, says) in [
        (
            "wrong_ca",
            format!(
                "postgres://ferry@localhost:{}/postgres?sslmode=verify-ca&sslrootcert={other}&sslcert={cert}&sslkey={key}",
                pg.port
            ),
            "UnknownIssuer",
        ),
        (
            "wrong_host",
            format!(
                "postgres://ferry@127.0.0.1:{}/postgres?sslmode=verify-full&sslrootcert={ca}&sslcert={cert}&sslkey={key}",
                pg.port
            ),
            "not valid for name",
        ),
        (
            "no_tls",
            format!("postgres://postgres@127.0.0.1:{}/postgres?sslmode=require", plain_pg.port),
            "does not support TLS",
        ),
        (
            "my_wrong_ca",
            format!(
                "mysql://ferry@127.0.0.1:{}/mysql?ssl-mode=VERIFY_CA&ssl-ca={other}&ssl-cert={cert}&ssl-key={key}",
                my.port
            ),
            "UnknownIssuer",
        ),
        (
            "my_no_tls",
            format!("mysql://root@127.0.0.1:{}/mysql?ssl-mode=REQUIRED", plain_my.port),
            "does not support TLS",
        ),
    ] {
        create_typed(&f, name, &source, &target, "full-load", "{}", &[]);
        f.ok(&["task", "start", name]);
        let seen = wait_for_error(&f, name, says);
        let host_port = source.split('@').nth(1).unwrap().split('/').next().unwrap();
        assert!(seen.contains(host_port), "{name}: the error does not name the endpoint: {seen}");
        f.ok(&["task", "stop", name]);
    }
    Ok(())
}
