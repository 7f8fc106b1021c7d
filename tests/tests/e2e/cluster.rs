//! Coordinators as a Raft cluster over mutual TLS: two nodes join the first
//! with `--join` (their node certificates are their credentials), every
//! node sees the same leader, a CLI given the list of nodes finds the
//! leader through a follower, and so does a worker; a task runs, and when
//! the leader is killed the others elect one that has the task, the worker
//! follows it and runs a task created after; the dead node is removed.
use ferry_tests::*;
use std::time::{Duration, Instant};

fn cluster_json(f: &Ferry, coordinator: &str) -> Option<serde_json::Value> {
    let (ok, out, _) = f.ferry(&["cluster", "status", "--output", "json", "--coordinator", coordinator]);
    ok.then(|| serde_json::from_str(&out).ok()).flatten()
}

fn voters(s: &serde_json::Value) -> usize {
    s["members"]
        .as_array()
        .map_or(0, |m| m.iter().filter(|m| m["voter"] == true).count())
}

#[tokio::test(flavor = "multi_thread")]
async fn three_coordinators_over_mutual_tls() -> anyhow::Result<()> {
    let pg = PgServer::start()?;
    let src = pg.src_and_dst(20000).await?;

    // One worker knows only node 1; the cluster's capacity comes from one
    // given every node, a follower first.
    let mut f = Ferry::start_secured(0, 3000, &[])?;
    let (p2, _n2) = f.add_coordinator(2)?;
    let (p3, _n3) = f.add_coordinator(3)?;
    let url = |p: u16| format!("https://127.0.0.1:{p}");
    f.wait_until("three voters", Duration::from_secs(60), || {
        cluster_json(&f, &f.url()).is_some_and(|s| voters(&s) == 3)
    });
    // Each node's own view names node 1 as the leader, in the same term.
    let leader = cluster_json(&f, &f.url()).unwrap();
    for p in [p2, p3] {
        f.wait_until("a follower to know the leader", Duration::from_secs(20), || {
            cluster_json(&f, &url(p)).is_some_and(|s| s["leader_id"] == 1 && s["term"] == leader["term"])
        });
    }
    let table = f.ok(&["cluster", "status"]);
    assert!(table.contains("leader") && table.contains("voter"), "{table}");

    // A CLI and a worker given every node, a follower first, reach the
    // leader.
    let all = format!("{},{},{}", url(p2), f.url(), url(p3));
    f.add_worker_at(&all, &[])?;
    let create = [
        "task",
        "create",
        "ha",
        "--source",
        &pg.url("src"),
        "--target",
        &pg.url("dst"),
        "--coordinator",
        &all,
    ];
    f.ok(&create);
    f.ok(&["task", "start", "ha", "--coordinator", &all]);
    let (ok, out, err) = f.ferry(&["task", "wait", "ha", "--for", "full-load", "--timeout", "120"]);
    assert!(ok, "{out}{err}");
    let d = pg.client("dst").await?;
    assert_eq!(table_digest(&src, "t").await?, table_digest(&d, "t").await?);

    // The leader dies: the others elect one, which has the task.
    f.coordinator.as_mut().unwrap().kill9();
    let killed = Instant::now();
    let rest = format!("{},{}", url(p2), url(p3));
    f.wait_until("a new leader with the task", Duration::from_secs(30), || {
        let (ok, out, _) = f.ferry(&["task", "list", "--coordinator", &rest]);
        ok && out.contains("ha")
    });
    eprintln!("failover: a new leader answered {:?} after the kill", killed.elapsed());
    let s = cluster_json(&f, &rest).unwrap();
    assert!(s["leader_id"] == 2 || s["leader_id"] == 3, "{s}");

    // The worker follows the new leader: a task created now runs.
    pg.client("postgres")
        .await?
        .batch_execute("CREATE DATABASE dst2")
        .await?;
    let (ok, out, err) = f.ferry(&[
        "task",
        "create",
        "after",
        "--source",
        &pg.url("src"),
        "--target",
        &pg.url("dst2"),
        "--coordinator",
        &rest,
    ]);
    assert!(ok, "{out}{err}");
    assert!(f.ferry(&["task", "start", "after", "--coordinator", &rest]).0);
    let (ok, out, err) = f.ferry(&[
        "task",
        "wait",
        "after",
        "--for",
        "full-load",
        "--timeout",
        "120",
        "--coordinator",
        &rest,
    ]);
    assert!(ok, "{out}{err}");
    let d2 = pg.client("dst2").await?;
    assert_eq!(table_digest(&src, "t").await?, table_digest(&d2, "t").await?);

    // The dead node is removed; two voters remain.
    let (ok, out, err) = f.ferry(&["cluster", "remove-node", "1", "--coordinator", &rest]);
    assert!(ok, "{out}{err}");
    let s = cluster_json(&f, &rest).unwrap();
    assert_eq!(voters(&s), 2, "{s}");
    Ok(())
}
