//! The cutover survives the processes that drive it: it is coordinator
//! state (recorded in Raft), not the CLI's.
//!
//! - The CLI is SIGKILLed right after the freeze: the coordinator carries
//!   the cutover on to the hook and waits there; `--resume` without the
//!   hook says so, `--resume --hook` runs it and finishes.
//! - With three coordinators, the leader is SIGKILLed while the cutover
//!   drains (the stream's worker is stopped so the drain cannot end before
//!   the kill): the CLI, given every node, follows the new leader, whose
//!   driver finishes the cutover once the stream is re-granted; the stopped
//!   worker, resumed after its lease expired, is fenced.
//!
//! Each ends with every pgbench table identical, `pgbench_history` (no key)
//! included, so a change lost or applied twice fails the test.
use ferry_tests::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `ferry ARGS` in the background, its stdout gathered line by line.
struct Background {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Background {
    fn spawn(coordinator: &str, args: &[&str]) -> Background {
        let mut child = Command::new(bin_dir().join("ferry"))
            .args(args)
            .env("FERRY_COORDINATOR", coordinator)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning ferry");
        // stdout and stderr, interleaved as they come.
        let lines = Arc::new(Mutex::new(vec![]));
        let out: Box<dyn std::io::Read + Send> = Box::new(child.stdout.take().unwrap());
        let err: Box<dyn std::io::Read + Send> = Box::new(child.stderr.take().unwrap());
        for pipe in [out, err] {
            let sink = lines.clone();
            std::thread::spawn(move || {
                for l in BufReader::new(pipe).lines().map_while(Result::ok) {
                    sink.lock().unwrap().push(l);
                }
            });
        }
        Background { child, lines }
    }

    fn printed(&self, prefix: &str) -> bool {
        self.lines.lock().unwrap().iter().any(|l| l.starts_with(prefix))
    }

    fn output(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn status_at(f: &Ferry, task: &str, coordinator: &str) -> Option<serde_json::Value> {
    let (ok, out, _) = f.ferry(&["task", "status", task, "--output", "json", "--coordinator", coordinator]);
    ok.then(|| serde_json::from_str(&out).ok()).flatten()
}

fn cutover_of(st: &serde_json::Value) -> serde_json::Value {
    st["cutover"].clone()
}

async fn assert_frozen(p: &PgbenchPair) -> anyhow::Result<()> {
    let src = p.src.client("postgres").await?;
    assert_read_only(
        &src,
        "INSERT INTO pgbench_history (tid, bid, aid, delta) VALUES (1, 1, 1, 1)",
    )
    .await;
    Ok(())
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill {sig} {pid}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cli_killed_after_the_freeze_leaves_a_cutover_that_resume_finishes() -> anyhow::Result<()> {
    let p = PgbenchPair::new(1)?;
    let f = Ferry::start(2, 3000, &[])?;
    p.create_task(&f, "move", "full-load-and-cdc");
    f.ok(&["task", "start", "move"]);
    wait_caught_up(&f, "move");
    let load = p.write_load(2, 60)?;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let marker = f.dir.path().join("hook-ran");
    let hook = format!("touch {}", marker.display());
    let cli = Background::spawn(&f.url(), &["cutover", "move", "--freeze-source", "--hook", &hook]);
    f.wait_until("the freeze to be printed", Duration::from_secs(60), || {
        cli.printed("1. freeze")
    });
    drop(cli); // SIGKILL
    finish(load);

    // The coordinator carries the cutover to the hook, and waits.
    f.wait_until("the cutover to wait for its hook", Duration::from_secs(60), || {
        f.status("move")
            .is_some_and(|st| cutover_of(&st)["state"] == "awaiting-hook")
    });
    assert!(!marker.exists(), "nobody ran the hook");
    assert_frozen(&p).await?;
    let text = f.ok(&["task", "status", "move"]);
    assert!(text.contains("cutover: awaiting-hook at step 5 of 5 (hook)"), "{text}");

    // --resume without the hook cannot finish it, and says why.
    let (ok, _, err) = f.ferry(&["cutover", "move", "--resume"]);
    assert!(!ok && err.contains("waits for its hook"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    let out = f.ok(&["cutover", "move", "--resume", "--hook", &hook]);
    println!("{out}");
    assert!(marker.exists(), "the hook did not run: {out}");
    for step in [
        "1. freeze",
        "2. target applied",
        "3. sequences",
        "5. reverse stream",
        "6. hook",
    ] {
        assert!(out.contains(step), "{step}: {out}");
    }
    assert!(out.contains("write-freeze window"), "{out}");
    let st = f.status("move").unwrap();
    assert_eq!(cutover_of(&st)["state"], "done", "{st}");
    assert_eq!(f.status("move-reverse").unwrap()["cdc"]["streaming"], true);
    p.assert_identical().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_leader_killed_during_the_drain_leaves_the_cutover_to_the_next() -> anyhow::Result<()> {
    let p = PgbenchPair::new(1)?;
    let mut f = Ferry::start(0, 3000, &[])?;
    let (nodes, all) = f.start_cluster(3)?;
    let rest = all.split(',').skip(1).collect::<Vec<_>>().join(",");
    f.add_worker_at(&all, &[])?;
    f.add_worker_at(&all, &[])?;
    p.create_task(&f, "ha", "full-load-and-cdc");
    f.ok(&["task", "start", "ha"]);
    wait_caught_up(&f, "ha");
    let load = p.write_load(2, 10)?;
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Stop the stream's worker: the drain cannot end until its lease
    // expires and the stream is granted again.
    let stream = f.cdc_worker().expect("a worker streams");
    let stopped = f.workers[stream].child.id();
    signal(stopped, "-STOP");
    let cli = Background::spawn(&all, &["cutover", "ha", "--freeze-source", "--timeout", "120"]);
    f.wait_until("the cutover to drain", Duration::from_secs(60), || {
        status_at(&f, "ha", &all).is_some_and(|st| cutover_of(&st)["step"] == "drain")
    });
    finish(load);
    let leader = f.cluster_status(&all).unwrap_or_default();
    assert_eq!(leader["leader_id"], 1, "node 1 leads: {leader}");
    f.coordinator.as_mut().unwrap().kill9();
    let killed = Instant::now();
    signal(stopped, "-CONT");

    let mut cli = cli;
    let _nodes = nodes;
    let done = loop {
        if let Some(st) = cli.child.try_wait()? {
            break st;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(120),
            "the cutover did not finish: {}\n{:?}",
            cli.output(),
            status_at(&f, "ha", &rest)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let out = cli.output();
    println!("{out}");
    eprintln!("cutover finished {:?} after the leader was killed", killed.elapsed());
    assert!(
        done.success(),
        "cutover failed: {out}\n{:?}",
        status_at(&f, "ha", &rest)
    );
    assert!(
        out.contains("2. target applied") && out.contains("write-freeze window"),
        "{out}"
    );
    let st = status_at(&f, "ha", &rest).unwrap();
    assert_eq!(cutover_of(&st)["state"], "done", "{st}");
    assert_frozen(&p).await?;
    p.assert_identical().await?;
    Ok(())
}
