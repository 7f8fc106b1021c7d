//! 3 workers copy the whole dataset in at least 8 segments; every table
//! matches the source row for row.
use ferry_tests::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn parallel_full_load_copies_every_row() -> anyhow::Result<()> {
    let sc = Scenario::new().await?;
    let f = Ferry::start(3, 5000, &[])?;
    sc.create_task(&f, "t1");
    f.ok(&["task", "start", "t1"]);
    let (ok, out, err) = f.ferry(&["task", "wait", "t1", "--for", "full-load", "--timeout", "600"]);
    assert!(
        ok,
        "wait failed: {out}{err}\ncoordinator log:\n{}",
        f.coordinator.as_ref().unwrap().log_text()
    );
    let st = f.status("t1").expect("status");
    let segments: u64 = st["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["segments_total"].as_u64().unwrap())
        .sum();
    assert!(segments >= 8, "expected at least 8 segments, got {segments}: {st}");
    assert_eq!(st["state"], "completed");
    for t in st["tables"].as_array().unwrap() {
        assert_eq!(t["state"], "Table completed", "{t}");
    }
    // Each of the 3 workers did some of the work.
    for w in &f.workers {
        assert!(
            w.log_text().contains("loading segment"),
            "a worker loaded nothing:\n{}",
            w.log_text()
        );
    }
    sc.assert_identical().await?;
    let _ = Duration::ZERO;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_one_line_errors() -> anyhow::Result<()> {
    let f = Ferry::start(0, 5000, &[])?;
    let (ok, _, err) = f.ferry(&[
        "task",
        "create",
        "x",
        "--source",
        "postgres://u:secret@h/db",
        "--target",
        "postgres://u@h/db",
    ]);
    assert!(!ok && err.contains("password_env") && !err.contains("secret"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let (ok, _, err) = f.ferry(&["task", "status", "nope"]);
    assert!(!ok && err.contains("nope"), "{err}");
    let dir = tempfile::tempdir()?;
    let m = dir.path().join("m.json");
    std::fs::write(
        &m,
        r#"{"rules":[{"rule-type":"transformation","rule-id":"42","rule-name":"r","rule-action":"rename","rule-target":"schema","object-locator":{"schema-name":"a"},"value":"b"}]}"#,
    )?;
    let (ok, _, err) = f.ferry(&[
        "task",
        "create",
        "x",
        "--source",
        "postgres://u@h/db",
        "--target",
        "postgres://u@h/db",
        "--table-mappings",
        m.to_str().unwrap(),
    ]);
    assert!(
        !ok && err.contains("rule 42") && err.contains("not supported yet"),
        "{err}"
    );
    let (ok, _, err) = Ferry::start(0, 5000, &[]).map(|mut g| {
        g.coordinator.take();
        g.ferry(&["task", "list"])
    })?;
    assert!(!ok && err.contains("cannot reach the coordinator"), "{err}");
    Ok(())
}
