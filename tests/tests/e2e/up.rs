//! `ferry up --nodes 3`: a three-node coordinator cluster and its workers on
//! one machine. The nodes elect node 1, a task runs; node 2's process
//! killed is started again by `ferry up` and rejoins from its data dir; a
//! second task runs; SIGTERM stops every process `ferry up` started. Its
//! `/metrics` carries the cluster's series and its worker's, merged.
use ferry_tests::*;
use std::process::Command;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn ferry_up_runs_three_nodes_and_keeps_them_running() -> anyhow::Result<()> {
    let pg = PgServer::start()?;
    let src = pg.src_and_dst(5000).await?;
    let dir = tempfile::tempdir()?;
    let port = free_ports(3);
    let metrics = format!("127.0.0.1:{}", free_port());
    let log = std::fs::File::create(dir.path().join("up.log"))?;
    let mut up = Command::new(bin_dir().join("ferry"))
        .args(["up", "--nodes", "3", "--workers", "1", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--listen", &format!("127.0.0.1:{port}"), "--metrics-listen", &metrics])
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    let all = (0..3)
        .map(|i| format!("http://127.0.0.1:{}", port + i))
        .collect::<Vec<_>>()
        .join(",");
    let ferry = |args: &[&str]| ferry_at(&all, &[], args);
    let voters = |n: usize| {
        let (ok, out) = ferry(&["cluster", "status", "--output", "json"]);
        ok && serde_json::from_str::<serde_json::Value>(&out).is_ok_and(|s| {
            s["leader_id"] == 1
                && s["members"]
                    .as_array()
                    .is_some_and(|m| m.iter().filter(|m| m["voter"] == true).count() == n)
        })
    };
    let wait = |what: &str, f: &dyn Fn() -> bool| {
        let start = std::time::Instant::now();
        while !f() {
            assert!(
                start.elapsed() < Duration::from_secs(90),
                "timed out waiting for {what}:\n{}",
                std::fs::read_to_string(dir.path().join("up.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    wait("three voters led by node 1", &|| voters(3));

    let run = |task: &str, db: &str| {
        let (ok, out) = ferry(&[
            "task",
            "create",
            task,
            "--source",
            &pg.url("src"),
            "--target",
            &pg.url(db),
        ]);
        assert!(ok, "{out}");
        let (ok, out) = ferry(&["task", "start", task]);
        assert!(ok, "{out}");
        let (ok, out) = ferry(&["task", "wait", task, "--for", "completed", "--timeout", "120"]);
        assert!(ok, "{out}");
    };
    run("first", "dst");
    let dst = pg.client("dst").await?;
    assert_eq!(table_digest(&src, "t").await?, table_digest(&dst, "t").await?);

    // One scrape of `ferry up` shows the task, the Raft node and the worker.
    let (code, body) = http_get(&metrics, "/metrics").expect("ferry up's /metrics");
    assert_eq!(code, 200, "{body}");
    for series in [
        "ferry_worker_slots{worker=\"1\"} 1",
        "ferry_worker_cpu_seconds_total{worker=\"1\"}",
        "ferry_worker_resident_memory_bytes{worker=\"1\"}",
        "ferry_raft_voters{node=\"1\"} 3",
        "ferry_task_info{task=\"first\"",
    ] {
        assert!(body.contains(series), "{series} missing:\n{body}");
    }
    assert_eq!(body.matches("# TYPE ferry_worker_slots").count(), 1, "{body}");
    assert!(body.ends_with("# EOF\n"), "{body}");

    // Node 2's process dies; `ferry up` starts it again on its data dir.
    let node2 = children(up.id(), "node-id 2");
    assert_eq!(node2.len(), 1, "one node-2 process");
    assert!(Command::new("kill")
        .args(["-9", &node2[0].to_string()])
        .status()?
        .success());
    wait("node 2 to run again", &|| {
        children(up.id(), "node-id 2").first().is_some_and(|p| *p != node2[0])
    });
    wait("three voters again", &|| voters(3));
    pg.client("postgres")
        .await?
        .batch_execute("CREATE DATABASE dst2")
        .await?;
    run("second", "dst2");
    let dst2 = pg.client("dst2").await?;
    assert_eq!(table_digest(&src, "t").await?, table_digest(&dst2, "t").await?);

    // SIGTERM: every child goes with it.
    let kids = children(up.id(), "");
    assert_eq!(kids.len(), 3, "two nodes and a worker: {kids:?}");
    assert!(Command::new("kill")
        .args(["-TERM", &up.id().to_string()])
        .status()?
        .success());
    let st = up.wait()?;
    assert!(st.success(), "ferry up exited {st}");
    for k in kids {
        assert!(
            !std::path::Path::new(&format!("/proc/{k}")).exists()
                || std::fs::read_to_string(format!("/proc/{k}/stat")).is_ok_and(|s| s.contains(") Z ")),
            "child {k} outlived ferry up"
        );
    }
    Ok(())
}
