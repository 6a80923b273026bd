//! What the controller quorum looks like now, as Kafka's DescribeQuorum
//! reports it: the leader and its epoch, the committed offset, and how far
//! each voter's log reaches.
//!
//! Owns: turning a member's Raft metrics into a [`QuorumStatus`]. Offsets
//! follow Kafka's convention (the next offset: index + 1). Only the leader
//! knows how far the others replicated and when they last answered; a
//! follower reports itself only, and says it is not the leader.

use serde::{Deserialize, Serialize};

use crate::runtime::Instant;
use crate::{metrics_of, NodeId, Raft};

/// One voter's progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoterStatus {
    pub id: NodeId,
    /// Its internal listener (Kafka reports it as the controller endpoint).
    pub rpc_addr: String,
    /// The offset after its last log entry the leader knows of (-1: none).
    pub log_end_offset: i64,
    /// Milliseconds since it last answered the leader (0 for the leader;
    /// None if it never did during this leadership).
    pub last_answer_ms_ago: Option<u64>,
}

/// The quorum as one member sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumStatus {
    /// The member that reported this.
    pub reported_by: NodeId,
    pub leader: Option<NodeId>,
    /// The Raft term (Kafka's leader epoch).
    pub term: u64,
    /// The offset after the last committed entry (Kafka's high watermark).
    pub high_watermark: i64,
    pub voters: Vec<VoterStatus>,
}

impl QuorumStatus {
    /// True when the reporter leads: every voter's progress is known.
    pub fn from_leader(&self) -> bool {
        self.leader == Some(self.reported_by)
    }
}

fn next_offset(index: Option<u64>) -> i64 {
    index.map_or(-1, |i| i as i64 + 1)
}

/// The status `raft` reports now.
pub fn status_of(raft: &Raft) -> QuorumStatus {
    let metrics = metrics_of(raft);
    let me = metrics.id;
    let leading = metrics.current_leader == Some(me);
    let now = <Instant as openraft::Instant>::now();
    let voters = metrics
        .membership_config
        .membership()
        .nodes()
        .map(|(id, peer)| {
            let (log_end_offset, last_answer_ms_ago) = if *id == me {
                (next_offset(metrics.last_log_index), Some(0))
            } else if leading {
                let matched = metrics
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(id).cloned().flatten())
                    .map(|log_id| log_id.index());
                let answered = metrics
                    .heartbeat
                    .as_ref()
                    .and_then(|h| h.get(id).cloned().flatten())
                    .map(|at| {
                        let at: Instant = *at;
                        (now - at).as_millis() as u64
                    });
                (next_offset(matched), answered)
            } else {
                (-1, None)
            };
            VoterStatus {
                id: *id,
                rpc_addr: peer.rpc_addr.clone(),
                log_end_offset,
                last_answer_ms_ago,
            }
        })
        .collect();
    QuorumStatus {
        reported_by: me,
        leader: metrics.current_leader,
        term: metrics.current_term,
        high_watermark: next_offset(metrics.cluster_committed.map(|c| c.index())),
        voters,
    }
}
