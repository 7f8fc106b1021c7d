//! No password at rest or in sight: recognizable passwords given through
//! `password_env` (source) and `password_file` (target) go through a
//! full-load-and-cdc with debug logging everywhere, validation, a cutover
//! with a source freeze, a full-load task that fails on a wrong password, and an
//! inline password that is refused; then the coordinator's data dir, every
//! process's log and command line, and every CLI output are scanned for
//! them.
use ferry_tests::*;
use std::time::Duration;

const SOURCE_PW: &str = "Src-S3cret-Zq9-Pw-Marker";
const TARGET_PW: &str = "Dst-S3cret-Xk7-Pw-Marker";
const WRONG_PW: &str = "Wrong-S3cret-Jv4-Pw-Marker";
const INLINE_PW: &str = "Inline-S3cret-Hb2-Pw-Marker";

#[tokio::test(flavor = "multi_thread")]
async fn passwords_never_reach_logs_state_or_output() -> anyhow::Result<()> {
    let pg = PgServer::start()?;
    let p = pg.client("postgres").await?;
    p.batch_execute(&format!(
        "CREATE ROLE mover LOGIN SUPERUSER REPLICATION PASSWORD '{SOURCE_PW}';
         CREATE ROLE lander LOGIN SUPERUSER PASSWORD '{TARGET_PW}'"
    ))
    .await?;
    for db in ["src", "dst"] {
        p.batch_execute(&format!("CREATE DATABASE {db}")).await?;
    }
    pg.require_passwords(&["mover", "lander"]).await?;
    let src = pg.client("src").await?;
    src.batch_execute(
        "CREATE TABLE accounts (id int PRIMARY KEY, owner text, balance numeric);
         INSERT INTO accounts SELECT g, 'owner ' || g, g * 1.5 FROM generate_series(1, 3000) g",
    )
    .await?;

    let secrets = tempfile::tempdir()?;
    let target_pw_file = secrets.path().join("target-pw");
    std::fs::write(&target_pw_file, TARGET_PW)?;
    let wrong_pw_file = secrets.path().join("wrong-pw");
    std::fs::write(&wrong_pw_file, WRONG_PW)?;
    let source = format!("postgres://mover@127.0.0.1:{}/src?password_env=FERRY_SRC_PW", pg.port);
    let target = |file: &std::path::Path| {
        format!(
            "postgres://lander@127.0.0.1:{}/dst?password_file={}",
            pg.port,
            file.display()
        )
    };

    // Debug logging in every process of this Ferry's, the CLI's too.
    let f = Ferry::start_env(2, 3000, &[("FERRY_SRC_PW", SOURCE_PW)], &[("RUST_LOG", "debug")])?;
    let mut outputs: Vec<String> = vec![];
    let mut run = |args: &[&str]| {
        let (ok, out, err) = f.ferry(args);
        // What the CLI printed (not its arguments: one test passes an
        // inline password on purpose).
        outputs.push(format!(
            "ferry {} {}\n{out}\n{err}",
            args[0],
            args.get(1).unwrap_or(&"")
        ));
        (ok, out, err)
    };

    let (ok, _, err) = run(&[
        "task",
        "create",
        "moving",
        "--source",
        &source,
        "--target",
        &target(&target_pw_file),
        "--type",
        "full-load-and-cdc",
    ]);
    assert!(ok, "{err}");
    assert!(run(&["task", "start", "moving"]).0);
    wait_caught_up(&f, "moving");
    src.batch_execute("INSERT INTO accounts SELECT g, 'late ' || g, g FROM generate_series(3001, 3500) g; UPDATE accounts SET balance = balance + 1 WHERE id % 5 = 0")
        .await?;
    wait_caught_up(&f, "moving");
    for args in [
        &["task", "status", "moving"][..],
        &["task", "status", "moving", "--output", "json"],
        &["task", "list"],
        &["validate", "moving"],
    ] {
        run(args);
    }
    let (ok, out, err) = run(&["cutover", "moving", "--freeze-source", "--timeout", "120"]);
    assert!(ok, "cutover: {err}{out}");
    // The freeze ended the source's open sessions, this test's included
    // (new ones are read-only, which a digest does not mind).
    let src = pg.client("src").await?;
    let dst = pg.client("dst").await?;
    assert_eq!(
        table_digest(&src, "accounts").await?,
        table_digest(&dst, "accounts").await?
    );

    // A failure: the target's password is wrong.
    let (ok, _, err) = run(&[
        "task",
        "create",
        "failing",
        "--source",
        &source,
        "--target",
        &target(&wrong_pw_file),
        "--type",
        "full-load",
    ]);
    assert!(ok, "{err}");
    run(&["task", "start", "failing"]);
    f.wait_until("the task to fail", Duration::from_secs(120), || {
        f.status("failing").is_some_and(|s| s["state"] == "failed")
    });
    let (_, out, _) = run(&["task", "status", "failing", "--output", "json"]);
    assert!(out.contains("password"), "the failure says what failed: {out}");
    // An inline password is refused, without being echoed.
    let inline = format!("postgres://mover:{INLINE_PW}@127.0.0.1:{}/src", pg.port);
    let (ok, _, err) = run(&[
        "task",
        "create",
        "inline",
        "--source",
        &inline,
        "--target",
        &target(&target_pw_file),
    ]);
    assert!(!ok && err.contains("inline passwords are not accepted"), "{err}");

    // Scan: outputs, logs, the data dir (RocksDB's log and tables), and the
    // command lines of the live processes.
    let mut cmdlines = String::new();
    for proc in f.workers.iter().chain(f.coordinator.iter()) {
        let pid = proc.child.id();
        cmdlines.push_str(&std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default());
    }
    for pw in [SOURCE_PW, TARGET_PW, WRONG_PW, INLINE_PW] {
        for o in &outputs {
            assert!(!o.contains(pw), "a password in CLI output: {o}");
        }
        assert!(!cmdlines.contains(pw), "a password on a command line");
        // f.dir holds the data dir and every process's log.
        assert!(
            !dir_contains(f.dir.path(), pw.as_bytes())?,
            "a password in {} (data dir or logs)",
            f.dir.path().display()
        );
    }
    // The logs really are debug logs (the scan saw what debug logging writes).
    let worker_logs: String = f.workers.iter().map(|w| w.log_text()).collect();
    assert!(worker_logs.contains("DEBUG"), "workers did not log at debug level");
    Ok(())
}
