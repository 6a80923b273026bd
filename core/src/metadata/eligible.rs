//! Eligible leader replicas (Kafka's KIP-966) and unclean leader election:
//! who may lead a partition whose in-sync replicas are all gone.
//!
//! Owns: the eligible set's upkeep after every in-sync set change, and the
//! choice of a leader.
//!
//! The rule that makes an eligible replica safe: the high watermark does
//! not move while the in-sync set is smaller than `min.insync.replicas`
//! (the leader's side, [`crate::replication::LeaderView`]). So a replica
//! that leaves the in-sync set when it falls below that size holds every
//! record below the high watermark, and can lead without losing any. It
//! joins the eligible set then; it leaves it when it rejoins the in-sync
//! set, when the in-sync set is back at `min.insync.replicas` (the set is
//! cleared: the high watermark moves again), when it stops being a
//! replica, and when it restarts with logs that a crash may have cut
//! (`log.flush` other than `always`).
//!
//! Leaders, in order: an in-sync replica that is not fenced; else an
//! eligible one (it becomes the in-sync set, and the fenced in-sync
//! replicas become eligible: they held everything committed); else, only
//! with `unclean.leader.election.enable`, any live replica, which may lose
//! acknowledged records (as in Kafka).
//!
//! Invariants (checked by [`super::MetadataState::violations`]): the
//! eligible set lies within the replicas and outside the in-sync set.

use std::collections::BTreeMap;

use super::{BrokerId, MetadataState, PartitionMeta, NO_LEADER};

/// Kafka's topic and cluster config naming unclean elections.
pub const UNCLEAN_LEADER_ELECTION: &str = "unclean.leader.election.enable";
/// Kafka's topic and cluster config of the in-sync replicas acks=all needs.
pub const MIN_INSYNC_REPLICAS: &str = "min.insync.replicas";

/// What a partition's leadership rules read from its topic and the
/// cluster's dynamic defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeadershipConfig {
    pub min_insync_replicas: usize,
    pub unclean_leader_election: bool,
}

impl LeadershipConfig {
    /// A topic's: its override, else the cluster's dynamic default, else
    /// Kafka's default (1, false).
    pub fn of(state: &MetadataState, topic_configs: &BTreeMap<String, String>) -> LeadershipConfig {
        let value = |key: &str| {
            topic_configs
                .get(key)
                .or_else(|| state.broker_configs.get("").and_then(|c| c.get(key)))
                .map(|v| v.trim().to_owned())
        };
        LeadershipConfig {
            min_insync_replicas: value(MIN_INSYNC_REPLICAS)
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(1)
                .max(1),
            unclean_leader_election: value(UNCLEAN_LEADER_ELECTION).is_some_and(|v| v == "true"),
        }
    }
}

/// Keeps `p`'s eligible set in step after its in-sync set went from
/// `before` to what it is now.
pub(super) fn after_isr_change(p: &mut PartitionMeta, before: &[BrokerId], min_isr: usize) {
    let isr = p.isr.clone();
    let replicas = p.replica_brokers();
    p.elr.retain(|b| !isr.contains(b) && replicas.contains(b));
    // Kafka's effective minimum: never more than the replicas.
    if isr.len() >= min_isr.min(replicas.len()) {
        p.elr.clear();
        return;
    }
    for b in before {
        if !isr.contains(b) && replicas.contains(b) && !p.elr.contains(b) {
            p.elr.push(*b);
        }
    }
}

/// Elects a leader for `p` when it has none, or when its leader is fenced:
/// an in-sync replica, else an eligible one, else (with unclean elections
/// on) any live replica; raises the epochs when the leader changes.
/// Returns the new leader ([`NO_LEADER`] when none could be).
pub(super) fn elect(
    p: &mut PartitionMeta,
    is_fenced: impl Fn(BrokerId) -> bool,
    config: LeadershipConfig,
) -> BrokerId {
    let live = |b: &BrokerId| !is_fenced(*b);
    let order = p.replica_brokers();
    if let Some(b) = order.iter().copied().find(|b| p.isr.contains(b) && live(b)) {
        return set_leader(p, b);
    }
    if let Some(b) = order.iter().copied().find(|b| p.elr.contains(b) && live(b)) {
        // Fenced in-sync replicas held everything committed: eligible now.
        let before = std::mem::replace(&mut p.isr, vec![b]);
        for old in before {
            if old != b && !p.elr.contains(&old) {
                p.elr.push(old);
            }
        }
        p.elr.retain(|e| *e != b);
        return set_leader(p, b);
    }
    if config.unclean_leader_election {
        if let Some(b) = order.iter().copied().find(live) {
            p.isr = vec![b];
            p.elr.clear();
            return set_leader(p, b);
        }
    }
    set_leader(p, NO_LEADER)
}

fn set_leader(p: &mut PartitionMeta, leader: BrokerId) -> BrokerId {
    if p.leader != leader {
        p.leader = leader;
        p.leader_epoch += 1;
        p.partition_epoch += 1;
    }
    leader
}

/// A restarted broker whose logs a crash may have cut (it does not sync
/// every write) is not eligible any more: its log may lack records below
/// the high watermark.
pub(super) fn on_restart(p: &mut PartitionMeta, broker: BrokerId, durable_logs: bool) {
    if !durable_logs && p.elr.contains(&broker) {
        p.elr.retain(|b| *b != broker);
        p.partition_epoch += 1;
    }
}
