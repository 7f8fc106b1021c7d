//! Credentials belong to endpoints, not to whoever creates a task.
//!
//! On a secured coordinator an admin registers named endpoints; an operator
//! may name them, or give a URL whose secret reference an endpoint binds to
//! exactly that server, user and transport — any other secret reference is
//! refused at `task create` and `ferry endpoint test`. A worker reads only
//! the secrets its own `--allow-secret` lists. And a password never goes out
//! in cleartext or as MD5 over a connection without TLS unless the endpoint
//! says `plaintext_password=allow` (the replication client's own refusal is
//! tested against a hostile server in its module: PostgreSQL's pg_hba cannot
//! ask differently of a logical replication connection and a query one).
use ferry_tests::*;
use std::process::Command;
use std::time::Duration;

const PASSWORD: &str = "endpoint-secret-7Qx2v";

/// `ferry` with a caller's token (and the CA), plus extra environment.
fn as_caller(f: &Ferry, token: Option<&str>, env: &[(&str, &str)], args: &[&str]) -> (bool, String, String) {
    let mut cmd = Command::new(bin_dir().join("ferry"));
    cmd.env_remove("FERRY_TOKEN");
    if f.access.is_some() {
        cmd.env("FERRY_TLS_CA", f.cert("ca.pem"));
    }
    if let Some(t) = token {
        cmd.env("FERRY_TOKEN", t);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    f.ferry_cmd(cmd, args)
}

/// A server whose role `app` logs in with [`PASSWORD`] (stored as
/// `encryption`), with databases src (a table of 2000 rows) and dst.
async fn server_with_app(encryption: &str) -> anyhow::Result<PgServer> {
    let pg = PgServer::start()?;
    let p = pg.client("postgres").await?;
    p.batch_execute(&format!(
        "SET password_encryption = '{encryption}'; \
         CREATE ROLE app LOGIN SUPERUSER REPLICATION PASSWORD '{PASSWORD}'"
    ))
    .await?;
    // (CREATE DATABASE cannot share a multi-statement query.)
    p.batch_execute("CREATE DATABASE src OWNER app").await?;
    p.batch_execute("CREATE DATABASE dst OWNER app").await?;
    pg.client("src")
        .await?
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, v text); \
             INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 2000) g; ALTER TABLE t OWNER TO app",
        )
        .await?;
    Ok(pg)
}

fn app_url(pg: &PgServer, db: &str, query: &str) -> String {
    format!("postgres://app@127.0.0.1:{}/{db}?{query}", pg.port)
}

#[tokio::test(flavor = "multi_thread")]
async fn named_endpoints_bind_secrets_to_servers() -> anyhow::Result<()> {
    let pg = server_with_app("scram-sha-256").await?;
    pg.require_passwords(&["app"]).await?;
    let dir = tempfile::tempdir()?;
    let pw_file = dir.path().join("app-password");
    std::fs::write(&pw_file, PASSWORD)?;
    let f = Ferry::start_secured(1, 3000, &[("SRC_PW", PASSWORD), ("FERRY_ALLOW_SECRETS", "env:SRC_PW")])?;
    let operator = f
        .ok(&["token", "create", "deployer", "--role", "operator"])
        .trim()
        .to_string();
    let op = |env: &[(&str, &str)], args: &[&str]| as_caller(&f, Some(&operator), env, args);

    // Only an admin registers endpoints.
    let src_url = app_url(&pg, "src", "password_env=SRC_PW");
    let (ok, _, err) = op(&[], &["endpoint", "create", "src-db", "--url", &src_url]);
    assert!(!ok && err.contains("CreateEndpoint needs admin"), "{err}");
    let out = f.ok(&["endpoint", "create", "src-db", "--url", &src_url]);
    assert!(out.contains("endpoint src-db created"), "{out}");
    let (ok, _, err) = f.ferry(&["endpoint", "create", "bad-db", "--url", "postgres://app:pw@h/db"]);
    assert!(
        !ok && err.contains("inline passwords are not accepted") && !err.contains(":pw@"),
        "{err}"
    );

    // A URL naming a secret no endpoint binds to that server, user and
    // transport is refused at create, in one line.
    let dst_bound = app_url(&pg, "dst", "password_env=SRC_PW");
    for foreign in [
        app_url(&pg, "src", "password_env=HOME"),
        app_url(&pg, "src", &format!("password_file={}", pw_file.display())),
        format!("postgres://app@localhost:{}/src?password_env=SRC_PW", pg.port),
        format!("postgres://postgres@127.0.0.1:{}/src?password_env=SRC_PW", pg.port),
        app_url(&pg, "src", "password_env=SRC_PW&plaintext_password=allow"),
    ] {
        let (ok, _, err) = op(
            &[],
            &["task", "create", "stolen", "--source", &foreign, "--target", &dst_bound],
        );
        assert!(
            !ok && err.contains("names a secret that no endpoint binds"),
            "{foreign}: {err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        let (ok, _, err) = op(&[], &["endpoint", "test", &foreign]);
        assert!(
            !ok && err.contains("names a secret that no endpoint binds"),
            "test {foreign}: {err}"
        );
    }
    let (ok, _, err) = op(
        &[],
        &["task", "create", "x", "--source", "no-such", "--target", &dst_bound],
    );
    assert!(!ok && err.contains("endpoint no-such not found"), "{err}");

    // Named, and bound (the same server, user and secret; another database):
    // the task runs and the target equals the source.
    let (ok, out, err) = op(
        &[],
        &[
            "task",
            "create",
            "named",
            "--source",
            "src-db",
            "--target",
            &dst_bound,
            "--type",
            "full-load",
        ],
    );
    assert!(ok, "{err}{out}");
    assert!(op(&[], &["task", "start", "named"]).0);
    let (ok, out, err) = f.ferry(&["task", "wait", "named", "--for", "full-load", "--timeout", "120"]);
    assert!(ok, "{out}{err}");
    let s = pg.client("src").await?;
    let d = pg.client("dst").await?;
    assert_eq!(table_digest(&s, "t").await?, table_digest(&d, "t").await?);

    // Listed with its secret reference, never the secret; in use, not deleted.
    let listed = f.ok(&["endpoint", "list", "--output", "json"]);
    assert!(
        listed.contains("password_env=SRC_PW") && !listed.contains(PASSWORD),
        "{listed}"
    );
    let (ok, _, err) = f.ferry(&["endpoint", "delete", "src-db"]);
    assert!(!ok && err.contains("used by task(s) named"), "{err}");

    // `endpoint test` runs on a worker, with the worker's secrets: the
    // operator's machine has none.
    let (ok, out, err) = op(&[], &["endpoint", "test", "src-db"]);
    assert!(ok, "{err}{out}");
    assert!(
        out.contains("connected (from worker") && out.contains("replication connection") && !out.contains(PASSWORD),
        "{out}"
    );
    // `--local` connects from the caller's machine, with its secrets.
    let (ok, out, err) = op(&[("SRC_PW", PASSWORD)], &["endpoint", "test", "src-db", "--local"]);
    assert!(
        ok && out.contains("connected") && !out.contains("from worker"),
        "{err}{out}"
    );
    let (ok, _, err) = op(&[("SRC_PW", "wrong")], &["endpoint", "test", "src-db", "--local"]);
    assert!(!ok && err.contains("password authentication failed"), "{err}");

    // An endpoint the worker's own configuration does not allow: the task
    // fails saying so, and the file is never read.
    let leaky = app_url(&pg, "src", &format!("password_file={}", pw_file.display()));
    f.ok(&["endpoint", "create", "leaky", "--url", &leaky]);
    assert!(
        op(
            &[],
            &["task", "create", "leak", "--source", "leaky", "--target", &dst_bound]
        )
        .0
    );
    assert!(op(&[], &["task", "start", "leak"]).0);
    f.wait_until("the leak task to fail", Duration::from_secs(60), || {
        f.status("leak").is_some_and(|s| s["state"] == "failed")
    });
    let st = f.status("leak").unwrap();
    let error = st["error"].as_str().unwrap_or_default();
    assert!(error.contains("may not read the secret file:"), "{st}");

    // Deleted once its tasks are.
    assert!(f.ferry(&["task", "delete", "named", "--force"]).0);
    assert!(f.ferry(&["task", "delete", "leak", "--force"]).0);
    assert!(f.ok(&["endpoint", "delete", "src-db"]).contains("deleted"));
    assert!(
        !dir_contains(f.dir.path(), PASSWORD.as_bytes())?,
        "the password reached Ferry's files"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn plaintext_passwords_are_not_sent_without_tls() -> anyhow::Result<()> {
    let pg = server_with_app("md5").await?;
    let f = Ferry::start(1, 3000, &[("APP_PW", PASSWORD)])?;
    let test = |url: &str| as_caller(&f, None, &[("APP_PW", PASSWORD)], &["endpoint", "test", url]);
    let url = app_url(&pg, "src", "password_env=APP_PW");
    let allowed = app_url(&pg, "src", "password_env=APP_PW&plaintext_password=allow");

    for (method, says) in [("password", "in cleartext"), ("md5", "as MD5")] {
        pg.prepend_hba(&[format!("host all,replication app 127.0.0.1/32 {method}")])
            .await?;
        let (ok, out, err) = test(&url);
        assert!(!ok, "{method}: {out}");
        assert!(
            err.contains(&format!("asked for the password {says}")) && err.contains("plaintext_password=allow"),
            "{method}: {err}"
        );
        let (ok, out, err) = test(&allowed);
        assert!(
            ok && out.contains("replication connection"),
            "{method} allowed: {err}{out}"
        );
    }

    // A task: refused the same way, as a failure that says why.
    pg.prepend_hba(&["host all,replication app 127.0.0.1/32 password".into()])
        .await?;
    create_typed(
        &f,
        "plain",
        &url,
        &app_url(&pg, "dst", "password_env=APP_PW"),
        "full-load-and-cdc",
        "{}",
        &[],
    );
    f.ok(&["task", "start", "plain"]);
    f.wait_until("the task to fail", Duration::from_secs(60), || {
        f.status("plain").is_some_and(|s| s["state"] == "failed")
    });
    let st = f.status("plain").unwrap();
    assert!(
        st["error"].as_str().unwrap_or_default().contains("in cleartext"),
        "{st}"
    );
    Ok(())
}
