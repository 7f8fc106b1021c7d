//! Coordinators that die and come back, under a CDC task and pgbench:
//!
//! - a follower SIGKILLed and restarted on its data dir rejoins and catches
//!   up from the log;
//! - a follower wiped, removed and added again catches up from a snapshot
//!   (the log it would need was purged: a snapshot every 100 entries here);
//! - the re-added node is then a full voter: with the other follower dead
//!   the cluster still commits through it, and with the old leader dead and
//!   the other follower back (its log behind), only the re-added node can
//!   win the election: it leads, from the state the snapshot gave it, and
//!   the task finishes with every pgbench table identical.
use ferry_tests::*;
use std::time::Duration;

/// Every member a voter, and node `n`'s log matched up to the leader's.
fn caught_up(s: &serde_json::Value, n: u64, voters: usize) -> bool {
    let members = s["members"].as_array().cloned().unwrap_or_default();
    let last = s["last_log_index"].as_i64().unwrap_or(-1);
    members.iter().filter(|m| m["voter"] == true).count() == voters
        && members
            .iter()
            .any(|m| m["node_id"] == n && m["matched_index"].as_i64().is_some_and(|i| i + 5 >= last))
}

#[tokio::test(flavor = "multi_thread")]
async fn followers_restarted_or_wiped_catch_up_and_can_lead() -> anyhow::Result<()> {
    let p = PgbenchPair::new(1)?;
    // Every node snapshots every 100 entries.
    let mut f = Ferry::start_env(0, 3000, &[], &[("FERRY_SNAPSHOT_LOGS", "100")])?;
    let (nodes, all) = f.start_cluster(3)?;
    let mut nodes = nodes.into_iter();
    let (p2, n2) = nodes.next().unwrap();
    let (p3, n3) = nodes.next().unwrap();
    let url = |p: u16| format!("http://127.0.0.1:{p}");
    f.add_worker_at(&all, &[])?;
    f.add_worker_at(&all, &[])?;
    p.create_task(&f, "ha", "full-load-and-cdc");
    f.ok(&["task", "start", "ha"]);
    let load = p.write_load(2, 60)?;
    f.wait_caught_up_at("ha", &all);

    // A follower killed and restarted on its data dir.
    let mut n3 = n3;
    n3.kill9();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let n3 = f.coordinator_node(3, p3, &f.url())?;
    f.wait_until("node 3 to catch up from its data dir", Duration::from_secs(60), || {
        f.cluster_status(&all).is_some_and(|s| caught_up(&s, 3, 3))
    });

    // Wiped and added again: the log it needs is gone, a snapshot it gets.
    drop(n3); // SIGKILL
    f.ok(&["cluster", "remove-node", "3", "--coordinator", &all]);
    std::fs::remove_dir_all(f.node_data_dir(3))?;
    // The cluster moves on without it until the entries it would need are
    // purged.
    let removed_at = f.cluster_status(&all).unwrap()["last_log_index"].as_i64().unwrap();
    f.wait_until(
        "the log to be purged past the removal",
        Duration::from_secs(120),
        || {
            f.cluster_status(&all)
                .is_some_and(|s| s["purged_index"].as_i64().is_some_and(|p| p > removed_at))
        },
    );
    let n3 = f.coordinator_node(3, p3, &f.url())?;
    f.wait_until("node 3 to be a voter again", Duration::from_secs(60), || {
        f.cluster_status(&all).is_some_and(|s| caught_up(&s, 3, 3))
    });
    assert!(
        n3.log_text().contains("installed a snapshot from the leader"),
        "the wiped node caught up without a snapshot:\n{}",
        n3.log_text()
    );

    // Node 2 dies: nodes 1 and 3 commit on their own.
    let mut n2 = n2;
    n2.kill9();
    f.wait_caught_up_at("ha", &all);

    // Node 1 dies and node 2 returns, its log behind node 3's: node 3 leads.
    f.coordinator.as_mut().unwrap().kill9();
    let _n2 = f.coordinator_node(2, p2, &url(p3))?;
    let rest = format!("{},{}", url(p2), url(p3));
    f.wait_until("node 3 to lead", Duration::from_secs(60), || {
        f.cluster_status(&rest).is_some_and(|s| s["leader_id"] == 3)
    });
    finish(load);
    f.wait_caught_up_at("ha", &rest);
    p.assert_identical().await?;
    drop(n3);
    Ok(())
}
