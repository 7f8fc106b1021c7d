//! Ferry's own links: a coordinator with mutual TLS and tokens refuses a
//! caller without credentials, a viewer creating a task, a worker token
//! doing an operator's work, a certificate from another CA, and a revoked
//! token; with credentials the normal flow (create, full load + CDC,
//! validation) passes, and every admin action lands in the audit log. A
//! coordinator on a non-loopback address refuses to start without TLS and
//! tokens.
use ferry_tests::*;
use std::process::Command;
use std::time::Duration;

/// `ferry` with only the given environment of credentials (the CA to trust
/// the coordinator always).
fn as_caller(f: &Ferry, env: &[(&str, &str)], args: &[&str]) -> (bool, String, String) {
    let mut cmd = Command::new(bin_dir().join("ferry"));
    cmd.env_remove("FERRY_TOKEN").env("FERRY_TLS_CA", f.cert("ca.pem"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    f.ferry_cmd(cmd, args)
}

#[test]
fn non_loopback_listener_needs_tls_and_tokens() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let run = |extra: &[&str]| {
        let out = Command::new(bin_dir().join("ferry"))
            .args(["coordinator", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--listen", &format!("0.0.0.0:{}", free_port())])
            .args(extra)
            .output()
            .expect("running ferry coordinator");
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (ok, err) = run(&[]);
    assert!(!ok && err.contains("refusing to listen on 0.0.0.0"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    let certs = dir.path().join("certs");
    let st = Command::new(bin_dir().join("ferry"))
        .args(["certs", "init"])
        .arg(&certs)
        .status()?;
    assert!(st.success());
    let (ok, err) = run(&["--tls-dir", certs.to_str().unwrap()]);
    assert!(
        !ok && err.contains("without TLS and an admin token"),
        "TLS alone: {err}"
    );
    // certs init never overwrites a CA.
    let out = Command::new(bin_dir().join("ferry"))
        .args(["certs", "init"])
        .arg(&certs)
        .output()?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not overwrite"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn secured_coordinator_admits_by_role_and_audits() -> anyhow::Result<()> {
    let pg = PgServer::start()?;
    let src = pg.src_and_dst(5000).await?;

    let f = Ferry::start_secured(1, 3000, &[])?;

    // No credentials: refused, saying what is needed.
    let (ok, _, err) = as_caller(&f, &[], &["task", "list"]);
    assert!(!ok && err.contains("requires credentials"), "{err}");
    // Plaintext to a TLS listener fails too (and says where).
    let mut plain = Command::new(bin_dir().join("ferry"));
    plain.env_remove("FERRY_TOKEN");
    let out = plain
        .args(["task", "list", "--coordinator", &format!("http://127.0.0.1:{}", f.port)])
        .output()?;
    assert!(!out.status.success());

    // The admin issues a viewer and a worker token.
    let viewer = f
        .ok(&["token", "create", "ops-dashboard", "--role", "viewer"])
        .trim()
        .to_string();
    let worker_token = f
        .ok(&["token", "create", "pool-a", "--role", "worker"])
        .trim()
        .to_string();
    assert!(viewer.starts_with("ferry-viewer-"), "{viewer}");
    let listed = f.ok(&["token", "list"]);
    assert!(listed.contains("ops-dashboard") && listed.contains("pool-a") && !listed.contains(&viewer));

    let settings = f.dir.path().join("settings.json");
    std::fs::write(&settings, r#"{"ValidationSettings": {"EnableValidation": true}}"#)?;
    let create = |env: &[(&str, &str)], name: &str| {
        as_caller(
            &f,
            env,
            &[
                "task",
                "create",
                name,
                "--source",
                &pg.url("src"),
                "--target",
                &pg.url("dst"),
                "--type",
                "full-load-and-cdc",
                "--settings",
                settings.to_str().unwrap(),
            ],
        )
    };
    // A viewer reads but cannot create.
    assert!(as_caller(&f, &[("FERRY_TOKEN", &viewer)], &["task", "list"]).0);
    let (ok, _, err) = create(&[("FERRY_TOKEN", &viewer)], "by-viewer");
    assert!(
        !ok && err.contains("role viewer") && err.contains("CreateTask needs operator"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    // A worker token can do nothing an operator can.
    let (ok, _, err) = create(&[("FERRY_TOKEN", &worker_token)], "by-worker");
    assert!(!ok && err.contains("role worker"), "{err}");
    let (ok, _, err) = as_caller(&f, &[("FERRY_TOKEN", &worker_token)], &["task", "list"]);
    assert!(!ok && err.contains("role worker"), "{err}");
    // A made-up token is unknown.
    let (ok, _, err) = as_caller(
        &f,
        &[("FERRY_TOKEN", "ferry-admin-0000000000000000")],
        &["task", "list"],
    );
    assert!(!ok && err.contains("unknown or revoked token"), "{err}");

    // A certificate from another CA does not get through the handshake,
    // neither for the CLI nor for a worker.
    let other = f.dir.path().join("other-certs");
    assert!(Command::new(bin_dir().join("ferry"))
        .args(["certs", "init"])
        .arg(&other)
        .status()?
        .success());
    let (ok, _, err) = as_caller(
        &f,
        &[
            ("FERRY_TLS_CERT", other.join("admin.pem").to_str().unwrap()),
            ("FERRY_TLS_KEY", other.join("admin-key.pem").to_str().unwrap()),
        ],
        &["task", "list"],
    );
    // (TLS 1.3 reports the refusal at the first call or at connecting.)
    assert!(!ok, "a certificate from another CA was admitted: {err}");
    let mut stranger = Command::new(bin_dir().join("ferry-worker"))
        .args(["--coordinator", &f.url(), "--tls-ca"])
        .arg(f.cert("ca.pem"))
        .arg("--tls-cert")
        .arg(other.join("worker.pem"))
        .arg("--tls-key")
        .arg(other.join("worker-key.pem"))
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    // A viewer's token does not make a worker either: it exits at once.
    let out = Command::new(bin_dir().join("ferry-worker"))
        .args(["--coordinator", &f.url(), "--tls-ca"])
        .arg(f.cert("ca.pem"))
        .env("FERRY_TOKEN", &viewer)
        .output()?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refused this worker") && err.contains("role viewer"),
        "{err}"
    );

    // The admin's client certificate (role in its OU) works without a token.
    let (ok, out, err) = as_caller(
        &f,
        &[
            ("FERRY_TLS_CERT", f.cert("admin.pem").to_str().unwrap()),
            ("FERRY_TLS_KEY", f.cert("admin-key.pem").to_str().unwrap()),
        ],
        &["task", "list"],
    );
    assert!(ok, "{err}{out}");

    // The normal flow with credentials: an operator token creates and
    // starts; the worker (certificate) and a second worker (worker token)
    // carry it out.
    let operator = f
        .ok(&["token", "create", "deployer", "--role", "operator"])
        .trim()
        .to_string();
    let (ok, out, err) = create(&[("FERRY_TOKEN", &operator)], "secured");
    assert!(ok, "{err}{out}");
    assert!(as_caller(&f, &[("FERRY_TOKEN", &operator)], &["task", "start", "secured"]).0);
    let mut second = Command::new(bin_dir().join("ferry-worker"))
        .args(["--coordinator", &f.url(), "--tls-ca"])
        .arg(f.cert("ca.pem"))
        .env("FERRY_TOKEN", &worker_token)
        .stderr(std::process::Stdio::null())
        .spawn()?;
    wait_caught_up(&f, "secured");
    src.batch_execute("INSERT INTO t SELECT g, 'late ' || g FROM generate_series(5001, 5500) g; UPDATE t SET v = 'x' WHERE id % 9 = 0")
        .await?;
    wait_caught_up(&f, "secured");
    let dst = pg.client("dst").await?;
    assert_eq!(table_digest(&src, "t").await?, table_digest(&dst, "t").await?);
    f.wait_until("validation", Duration::from_secs(120), || {
        f.status("secured")
            .is_some_and(|s| table_status(&s, "t")["validation"]["state"] == "Validated")
    });

    // The stranger never registered: its handshake failed each time.
    assert!(stranger.try_wait()?.is_none() || !stranger.try_wait()?.unwrap().success());
    let _ = stranger.kill();
    let _ = second.kill();
    let _ = stranger.wait();
    let _ = second.wait();

    // Revoking takes effect at once.
    f.ok(&["token", "revoke", "ops-dashboard"]);
    let (ok, _, err) = as_caller(&f, &[("FERRY_TOKEN", &viewer)], &["task", "list"]);
    assert!(!ok && err.contains("unknown or revoked token"), "{err}");

    // The audit log: who did what, refusals included.
    let audit = std::fs::read_to_string(f.dir.path().join("data").join("audit.log"))?;
    let entries: Vec<serde_json::Value> = audit.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let has = |who: &str, call: &str, object: Option<&str>, outcome: &str| {
        entries.iter().any(|e| {
            e["who"] == who
                && e["call"] == call
                && object.is_none_or(|o| e["object"] == o)
                && e["outcome"].as_str().is_some_and(|x| x.starts_with(outcome))
        })
    };
    assert!(
        has("admin-token", "CreateToken", Some("ops-dashboard"), "ok"),
        "{audit}"
    );
    assert!(has("token:deployer", "CreateTask", Some("secured"), "ok"), "{audit}");
    assert!(has("token:deployer", "StartTask", Some("secured"), "ok"), "{audit}");
    assert!(has("token:ops-dashboard", "CreateTask", None, "refused"), "{audit}");
    assert!(
        has("admin-token", "RevokeToken", Some("ops-dashboard"), "ok"),
        "{audit}"
    );
    assert!(entries
        .iter()
        .all(|e| e["time"].as_str().is_some_and(|t| t.ends_with('Z'))));

    // Tokens are never stored: not in the data dir, not in the logs.
    for token in [
        &viewer,
        &worker_token,
        &operator,
        &f.access.as_ref().unwrap().admin_token,
    ] {
        assert!(
            !dir_contains(&f.dir.path().join("data"), token.as_bytes())?,
            "a token is in the data dir"
        );
        for w in f.workers.iter().chain(f.coordinator.iter()) {
            assert!(!w.log_text().contains(token.as_str()), "a token is in a log");
        }
    }
    Ok(())
}

/// `/metrics` on a secured coordinator's listener off loopback (here
/// 0.0.0.0, reached through 127.0.0.1) needs a viewer's bearer token: none,
/// an unknown one or a worker's is refused without the series; a viewer's
/// reads them; the probes stay open. On loopback it is open (the Kubernetes
/// test reads it so).
#[tokio::test(flavor = "multi_thread")]
async fn metrics_off_loopback_need_a_viewer_token() -> anyhow::Result<()> {
    let port = free_port();
    let listen = format!("0.0.0.0:{port}");
    let mut f = Ferry::start_secured_args(0, 3000, &["--metrics-listen", &listen])?;
    let addr = format!("127.0.0.1:{port}");
    f.wait_until("the metrics listener", Duration::from_secs(30), || {
        http_get(&addr, "/healthz").is_some()
    });
    let viewer = f
        .ok(&["token", "create", "prometheus", "--role", "viewer"])
        .trim()
        .to_string();
    let worker = f
        .ok(&["token", "create", "pool-b", "--role", "worker"])
        .trim()
        .to_string();

    let (code, body) = http_get(&addr, "/metrics").expect("an answer");
    assert_eq!(code, 401, "{body}");
    assert!(
        body.contains("requires credentials") && !body.contains("ferry_"),
        "{body}"
    );
    let bearer = |t: &str| format!("Bearer {t}");
    let (code, body) =
        http_get_with(&addr, "/metrics", &[("Authorization", &bearer("ferry-viewer-nosuch"))]).expect("an answer");
    assert_eq!(code, 401, "{body}");
    assert!(
        !body.contains("ferry-viewer-nosuch"),
        "the refusal repeats the token: {body}"
    );
    let (code, body) = http_get_with(&addr, "/metrics", &[("Authorization", &bearer(&worker))]).expect("an answer");
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("needs viewer") && !body.contains(&worker), "{body}");
    let (code, body) = http_get_with(&addr, "/metrics", &[("Authorization", &bearer(&viewer))]).expect("an answer");
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("ferry_desired_capacity") && body.contains("ferry_raft_term"),
        "{body}"
    );
    assert_eq!(http_get(&addr, "/healthz").map(|(c, _)| c), Some(200));
    assert_eq!(http_get(&addr, "/readyz").map(|(c, _)| c), Some(200));
    // The dashboard: a browser is asked for the token (Basic), and shown
    // the page with a viewer's.
    let (code, body) = http_get(&addr, "/").expect("an answer");
    assert_eq!(code, 401, "{body}");
    let basic = |user: &str, token: &str| {
        let raw = format!("{user}:{token}");
        let table = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut enc = String::new();
        for chunk in raw.as_bytes().chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, b)| acc | (*b as u32) << (16 - 8 * i));
            for i in 0..4 {
                enc.push(if i <= chunk.len() {
                    table[(n >> (18 - 6 * i) & 63) as usize] as char
                } else {
                    '='
                });
            }
        }
        format!("Basic {enc}")
    };
    let (code, body) = http_get_with(&addr, "/", &[("Authorization", &basic("me", &worker))]).expect("an answer");
    assert_eq!(code, 403, "{body}");
    let (code, body) = http_get_with(&addr, "/", &[("Authorization", &basic("me", &viewer))]).expect("an answer");
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("<title>Ferry</title>") && body.contains("Workers"),
        "{body}"
    );

    // A worker's /metrics off loopback: the worker asks the coordinator
    // whether the token presented may read.
    let wport = free_port();
    let wlisten = format!("0.0.0.0:{wport}");
    f.add_worker(&[("FERRY_METRICS_LISTEN", wlisten.as_str())])?;
    let waddr = format!("127.0.0.1:{wport}");
    f.wait_until("the worker's metrics listener", Duration::from_secs(30), || {
        http_get(&waddr, "/healthz").is_some()
    });
    let (code, body) = http_get(&waddr, "/metrics").expect("an answer");
    assert_eq!(code, 401, "{body}");
    assert!(!body.contains("ferry_worker"), "{body}");
    let (code, body) = http_get_with(&waddr, "/metrics", &[("Authorization", &bearer(&worker))]).expect("an answer");
    assert_eq!(code, 403, "{body}");
    let (code, body) = http_get_with(&waddr, "/metrics", &[("Authorization", &bearer(&viewer))]).expect("an answer");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("ferry_worker_slots"), "{body}");
    Ok(())
}
