//! Cluster membership: nodes joining (`--join`, `ferry cluster add-node`),
//! leaving (`ferry cluster remove-node`), and each node's view of the
//! cluster (`ferry cluster status`).
//!
//! Joining is openraft's two steps, driven by the leader: add the node as a
//! learner and wait until it has the log (it votes on nothing meanwhile, so
//! a slow joiner cannot stall commits), then change the membership to
//! include it as a voter (joint consensus inside openraft). Only a node
//! started without `--join` on an empty data dir initializes a cluster, and
//! only once (`is_initialized`); a node with `--join` never does, so two
//! clusters cannot be born from one deployment. A restarted member finds its
//! membership in its own log and does not ask again.

use crate::raft::{NodeId, Raft};
use ferry_common::access::ClientLink;
use ferry_common::proto::{self as pb, admin_client::AdminClient};
use openraft::BasicNode;
use std::collections::BTreeSet;
use std::time::Duration;
use tonic::Status;

/// This node's view: who leads, the term, its log, and the members (with
/// how far each has replicated, as the leader sees it).
pub fn status(raft: &Raft) -> pb::ClusterStatusReply {
    let m = raft.metrics().borrow().clone();
    let membership = m.membership_config.membership();
    let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
    let matched = |id: NodeId| {
        m.replication
            .as_ref()
            .and_then(|r| r.get(&id).cloned().flatten())
            .map_or(-1, |l| l.index as i64)
    };
    let members = membership
        .nodes()
        .map(|(id, n)| pb::ClusterMember {
            node_id: *id,
            addr: n.addr.clone(),
            voter: voters.contains(id),
            matched_index: matched(*id),
        })
        .collect();
    let leader_addr = m
        .current_leader
        .and_then(|l| membership.get_node(&l).map(|n| n.addr.clone()))
        .unwrap_or_default();
    pb::ClusterStatusReply {
        node_id: m.id,
        leader_id: m.current_leader.unwrap_or(0),
        leader_addr,
        term: m.current_term,
        last_log_index: m.last_log_index.map_or(-1, |i| i as i64),
        applied_index: m.last_applied.map_or(-1, |l| l.index as i64),
        members,
        purged_index: m.purged.map_or(-1, |l| l.index as i64),
        snapshot_index: m.snapshot.map_or(-1, |l| l.index as i64),
    }
}

/// Refuses with the leader's address unless this node leads (the refusal
/// every write gets on a follower, which clients follow).
fn ensure_leader(raft: &Raft) -> Result<(), Status> {
    let s = status(raft);
    if s.leader_id == s.node_id {
        return Ok(());
    }
    let leader = if s.leader_addr.is_empty() {
        "unknown".into()
    } else {
        s.leader_addr
    };
    Err(crate::node::WriteError::NotLeader(leader).into())
}

fn membership_error(node: NodeId, e: impl std::fmt::Display) -> Status {
    let msg = e.to_string();
    // openraft: "the cluster is already undergoing a configuration change".
    if msg.contains("undergoing") || msg.contains("in progress") || msg.contains("InProgress") {
        return Status::failed_precondition(format!(
            "node {node}: another membership change is in progress; retry when it has finished ({msg})"
        ));
    }
    Status::unavailable(format!("node {node}: changing the membership: {msg}"))
}

/// Adds `id` at `addr` as a learner, waits until it has caught up, then
/// makes it a voter. A member already at that address is left as it is.
pub async fn join(raft: &Raft, id: NodeId, addr: &str) -> Result<pb::ClusterStatusReply, Status> {
    if id == 0 {
        return Err(Status::invalid_argument("--node-id: node ids start at 1"));
    }
    if addr.parse::<std::net::SocketAddr>().is_err() && !addr.contains(':') {
        return Err(Status::invalid_argument(format!(
            "node {id}: address '{addr}' is not host:port"
        )));
    }
    ensure_leader(raft)?;
    let now = status(raft);
    if let Some(m) = now.members.iter().find(|m| m.node_id == id) {
        if m.addr != addr {
            return Err(Status::already_exists(format!(
                "node {id} is already a member at {}; remove it first to move it",
                m.addr
            )));
        }
        if m.voter {
            return Ok(now);
        }
    }
    raft.add_learner(id, BasicNode::new(addr), true)
        .await
        .map_err(|e| membership_error(id, e))?;
    let mut voters: BTreeSet<NodeId> = now.members.iter().filter(|m| m.voter).map(|m| m.node_id).collect();
    voters.insert(id);
    raft.change_membership(voters, false)
        .await
        .map_err(|e| membership_error(id, e))?;
    tracing::info!(node_id = id, addr, "node joined the cluster as a voter");
    Ok(status(raft))
}

/// Makes `id` leave: it is no longer a voter nor a learner.
pub async fn remove(raft: &Raft, id: NodeId) -> Result<pb::ClusterStatusReply, Status> {
    ensure_leader(raft)?;
    let now = status(raft);
    if !now.members.iter().any(|m| m.node_id == id) {
        return Err(Status::not_found(format!("node {id} is not a member")));
    }
    let voters: BTreeSet<NodeId> = now
        .members
        .iter()
        .filter(|m| m.voter && m.node_id != id)
        .map(|m| m.node_id)
        .collect();
    if voters.is_empty() {
        return Err(Status::failed_precondition(format!(
            "node {id} is the last voter; a cluster cannot remove its last member"
        )));
    }
    raft.change_membership(voters, false)
        .await
        .map_err(|e| membership_error(id, e))?;
    tracing::info!(node_id = id, "node removed from the cluster");
    Ok(status(raft))
}

/// The joining side of `--join`: asks the given nodes, following the one
/// that names the leader, until the leader has made this node a voter.
/// Credentials do not get better by retrying: a refusal ends the process.
pub async fn join_via(urls: Vec<String>, link: ClientLink, id: NodeId, advertise: String) {
    let mut delay = Duration::from_millis(300);
    let mut next: Option<String> = None;
    loop {
        for url in next.take().into_iter().chain(urls.iter().cloned()) {
            let mut l = link.clone();
            l.url = url.clone();
            let res = match l.connect(Duration::from_secs(3)).await {
                Ok(ch) => AdminClient::new(ch)
                    .join_cluster(pb::JoinRequest {
                        node_id: id,
                        addr: advertise.clone(),
                    })
                    .await
                    .map(|r| r.into_inner()),
                Err(e) => Err(Status::unavailable(e.to_string())),
            };
            match res {
                Ok(s) => {
                    tracing::info!(node_id = id, leader = s.leader_id, via = %url, "joined the cluster");
                    return;
                }
                Err(e) if matches!(e.code(), tonic::Code::Unauthenticated | tonic::Code::PermissionDenied) => {
                    tracing::error!(error = %e.message(), via = %url, "the cluster refused this node");
                    eprintln!("error: joining via {url}: {}", e.message());
                    std::process::exit(1);
                }
                Err(e) => {
                    // "not the leader (leader: host:port)": ask it next.
                    if let Some(Some(addr)) = ferry_common::leader::named_in(e.message()) {
                        next = Some(ferry_common::leader::url_like(&url, &addr));
                    }
                    tracing::warn!(error = %e.message(), via = %url, "join not done yet; retrying");
                }
            }
            if next.is_some() {
                break;
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(3));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_during_another_is_refused_clearly() {
        // openraft's refusal, as seen when two nodes join at once.
        let s = membership_error(
            2,
            "the cluster is already undergoing a configuration change at log Some(LogId { index: 4 })",
        );
        assert_eq!(s.code(), tonic::Code::FailedPrecondition);
        assert!(s
            .message()
            .starts_with("node 2: another membership change is in progress"));
        let s = membership_error(3, "network error");
        assert_eq!(s.code(), tonic::Code::Unavailable);
    }
}
