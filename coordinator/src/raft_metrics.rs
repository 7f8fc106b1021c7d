//! This node's Raft series for `/metrics`: its view of the cluster (term,
//! leader, log indexes, members) and, on the leader, how far each member
//! lags. Every node serves its own view, labelled with its `node` id, so
//! a scrape of all nodes shows a split view (two leaders in different
//! terms, a node whose applied index stands still) as it is.

use crate::raft::Raft;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

/// Registers the Raft series of `raft` (this node) in `reg`.
pub fn register(reg: &mut Registry, raft: &Raft) {
    let s = crate::cluster::status(raft);
    let node: Labels = vec![("node".into(), s.node_id.to_string())];
    let one = |help: &'static str, name: &'static str, v: i64, reg: &mut Registry| {
        let f = Family::<Labels, Gauge>::default();
        f.get_or_create(&node).set(v);
        reg.register(name, help, f);
    };
    one("The Raft term this node is in", "ferry_raft_term", s.term as i64, reg);
    one(
        "The node id of the leader this node knows (0: none)",
        "ferry_raft_leader_id",
        s.leader_id as i64,
        reg,
    );
    one(
        "1 while this node is the Raft leader",
        "ferry_raft_is_leader",
        (s.leader_id != 0 && s.leader_id == s.node_id) as i64,
        reg,
    );
    one(
        "The index of the last entry in this node's Raft log (-1: empty)",
        "ferry_raft_last_log_index",
        s.last_log_index,
        reg,
    );
    one(
        "The index of the last entry this node applied to its state",
        "ferry_raft_applied_index",
        s.applied_index,
        reg,
    );
    one(
        "The index of the last entry in this node's snapshot",
        "ferry_raft_snapshot_index",
        s.snapshot_index,
        reg,
    );
    // Entries on disk: from the first not purged to the last. This is the
    // figure the log-compaction bound is about (docs/benchmarks.md).
    one(
        "Entries this node's Raft log holds on disk (last index minus the purged one)",
        "ferry_raft_log_entries",
        (s.last_log_index - s.purged_index).max(0),
        reg,
    );
    one(
        "Members of the cluster, voters and learners, as this node knows them",
        "ferry_raft_members",
        s.members.len() as i64,
        reg,
    );
    one(
        "Voting members of the cluster, as this node knows them",
        "ferry_raft_voters",
        s.members.iter().filter(|m| m.voter).count() as i64,
        reg,
    );
    if s.leader_id == s.node_id {
        let lag = Family::<Labels, Gauge>::default();
        for m in &s.members {
            let l = vec![
                ("node".into(), s.node_id.to_string()),
                ("peer".into(), m.node_id.to_string()),
            ];
            // matched_index -1: nothing replicated to it yet (a new learner).
            lag.get_or_create(&l).set(s.last_log_index - m.matched_index);
        }
        reg.register(
            "ferry_raft_replication_lag_entries",
            "On the leader: entries of its log a member has not acknowledged yet",
            lag,
        );
    }
}
