//! Partition reassignment (Kafka's KIP-455: AlterPartitionReassignments,
//! ListPartitionReassignments, `kafka-reassign-partitions.sh`): moving a
//! partition's replicas to other brokers with no downtime.
//!
//! Owns: how a reassignment starts, completes and is cancelled in the
//! metadata. A reassignment of a partition from its original replicas `O`
//! to the target `T` first makes the replicas `T` followed by `O - T`:
//! the replicas in `T - O` are *adding* (they fetch from the leader like
//! any follower and join the in-sync set once caught up) and those in
//! `O - T` are *removing*. When every target replica is in sync, the
//! reassignment completes in the same command that made it so: the
//! replicas become `T`, the removed ones leave the in-sync set, and a
//! leader outside `T` hands leadership to the first in-sync target replica,
//! in a new epoch. Cancelling goes back to `O`. Any change that takes a
//! replica out of the replicas bumps the leader epoch, the leader staying
//! (Kafka's `triggerLeaderEpochBumpForReplicaReassignmentIfNeeded`): the
//! removed replica's fetches in flight then carry an older epoch and are
//! fenced, so one that arrives after the broker was given the partition
//! back (its log deleted in between) cannot count for the new, empty
//! replica.
//!
//! Invariants (checked by [`super::MetadataState::violations`]): the adding
//! and removing sets lie within the replicas and are disjoint; the target
//! (replicas minus removing) is never empty; the in-sync set never loses
//! its last member to a reassignment (such a change is refused).

use super::{BrokerId, MetadataState, PartitionMeta, Replica, NO_LEADER};
use crate::ErrorCode;

/// One partition's reassignment: its target replicas (preferred leader
/// first), or `None` to cancel the one in progress.
pub type Reassignment = (String, i32, Option<Vec<Replica>>);

impl PartitionMeta {
    /// True while a reassignment of this partition is in progress.
    pub fn reassigning(&self) -> bool {
        !self.adding.is_empty() || !self.removing.is_empty()
    }

    /// The replicas before the reassignment in progress (all of them when
    /// none is): the replicas minus those being added.
    pub fn original_replicas(&self) -> Vec<Replica> {
        self.replicas
            .iter()
            .filter(|r| !self.adding.contains(&r.broker))
            .copied()
            .collect()
    }

    /// The replicas a reassignment in progress moves to (all of them when
    /// none is): the replicas minus those being removed.
    pub fn target_replicas(&self) -> Vec<Replica> {
        self.replicas
            .iter()
            .filter(|r| !self.removing.contains(&r.broker))
            .copied()
            .collect()
    }
}

/// Whether a reassignment of `partition` of `topic` to `target` brokers
/// (`None`: a cancellation) may start, with Kafka's error and message when
/// not: UNKNOWN_TOPIC_OR_PARTITION, NO_REASSIGNMENT_IN_PROGRESS for a
/// cancellation with none, INVALID_REPLICA_ASSIGNMENT for an empty,
/// repeated or unknown broker, INVALID_REPLICATION_FACTOR for a change of
/// the replica count when the client did not allow one (v1's
/// `allow_replication_factor_change` false).
pub fn check(
    state: &MetadataState,
    topic: &str,
    partition: i32,
    target: Option<&[BrokerId]>,
    allow_replication_factor_change: bool,
) -> Result<(), (ErrorCode, String)> {
    let Some(p) = state.partition(topic, partition) else {
        return Err((
            ErrorCode::UnknownTopicOrPartition,
            "The partition does not exist.".into(),
        ));
    };
    let Some(target) = target else {
        if !p.reassigning() {
            return Err((
                ErrorCode::NoReassignmentInProgress,
                format!("No ongoing reassignment for partition {topic}-{partition}."),
            ));
        }
        return Ok(());
    };
    if target.is_empty() {
        return Err((
            ErrorCode::InvalidReplicaAssignment,
            "The manual partition assignment includes an empty replica list.".into(),
        ));
    }
    for (i, b) in target.iter().enumerate() {
        if !state.brokers.contains_key(b) {
            return Err((
                ErrorCode::InvalidReplicaAssignment,
                format!("The manual partition assignment includes broker {b}, but no broker with that id was found."),
            ));
        }
        if target[..i].contains(b) {
            return Err((
                ErrorCode::InvalidReplicaAssignment,
                format!("The manual partition assignment includes the broker {b} more than once."),
            ));
        }
    }
    let current = p.original_replicas().len();
    if !allow_replication_factor_change && target.len() != current {
        return Err((
            ErrorCode::InvalidReplicationFactor,
            format!(
                "The replication factor is changed from {current} to {} but allowReplicationFactorChange is false",
                target.len()
            ),
        ));
    }
    Ok(())
}

/// Applies the reassignments that still hold against `state` (the others
/// are skipped, as in a preferred-leader election). How many applied.
pub(super) fn apply(state: &mut MetadataState, reassignments: &[Reassignment]) -> usize {
    let fenced = state.fenced_brokers();
    let is_fenced = |b: BrokerId| fenced.contains(&b);
    let mut applied = 0;
    for (topic, partition, target) in reassignments {
        let brokers_known = target
            .as_ref()
            .is_none_or(|t| t.iter().all(|r| state.brokers.contains_key(&r.broker)));
        let Some(p) = state.topics.get_mut(topic).and_then(|t| {
            usize::try_from(*partition)
                .ok()
                .and_then(|i| t.partitions.get_mut(i))
        }) else {
            continue;
        };
        if !brokers_known {
            continue;
        }
        let next = match target {
            Some(target) => started(p, target, is_fenced),
            None if p.reassigning() => cancelled(p, is_fenced),
            None => continue,
        };
        let Some(mut next) = next else {
            continue;
        };
        complete_if_caught_up(&mut next, is_fenced);
        *p = next;
        applied += 1;
    }
    applied
}

/// `p` with a reassignment to `target` started, or `None` when it would
/// leave no replica in sync.
fn started(
    p: &PartitionMeta,
    target: &[Replica],
    is_fenced: impl Fn(BrokerId) -> bool,
) -> Option<PartitionMeta> {
    let original = p.original_replicas();
    let mut replicas: Vec<Replica> = target.to_vec();
    replicas.extend(
        original
            .iter()
            .filter(|o| !target.iter().any(|t| t.broker == o.broker)),
    );
    let adding = target
        .iter()
        .map(|r| r.broker)
        .filter(|b| !original.iter().any(|o| o.broker == *b))
        .collect();
    let removing = original
        .iter()
        .map(|r| r.broker)
        .filter(|b| !target.iter().any(|t| t.broker == *b))
        .collect();
    moved(p, (replicas, adding, removing), is_fenced)
}

/// `p` back on its original replicas, or `None` when only replicas being
/// added are in sync.
fn cancelled(p: &PartitionMeta, is_fenced: impl Fn(BrokerId) -> bool) -> Option<PartitionMeta> {
    moved(
        p,
        (p.original_replicas(), Vec::new(), Vec::new()),
        is_fenced,
    )
}

/// `p` on `replicas` with the given adding and removing sets: the in-sync
/// set keeps only replicas, and a leader that is no longer one hands
/// leadership to the first in-sync replica that is not fenced (or to
/// nobody). `None` when no in-sync replica would be left.
fn moved(
    p: &PartitionMeta,
    (replicas, adding, removing): (Vec<Replica>, Vec<BrokerId>, Vec<BrokerId>),
    is_fenced: impl Fn(BrokerId) -> bool,
) -> Option<PartitionMeta> {
    let isr: Vec<BrokerId> = p
        .isr
        .iter()
        .copied()
        .filter(|b| replicas.iter().any(|r| r.broker == *b))
        .collect();
    if isr.is_empty() {
        return None;
    }
    let mut next = PartitionMeta {
        replicas,
        isr,
        adding,
        removing,
        partition_epoch: p.partition_epoch + 1,
        ..p.clone()
    };
    next.elr
        .retain(|b| next.replicas.iter().any(|r| r.broker == *b));
    if p.leader != NO_LEADER && !next.isr.contains(&p.leader) {
        next.leader = next
            .replicas
            .iter()
            .map(|r| r.broker)
            .find(|b| next.isr.contains(b) && !is_fenced(*b))
            .unwrap_or(NO_LEADER);
        next.leader_epoch += 1;
    } else if removes_a_replica(p, &next) {
        next.leader_epoch += 1;
    }
    Some(next)
}

/// Completes `p`'s reassignment when every target replica is in sync: the
/// replicas become the target, the removed ones leave the in-sync set, and
/// a leader being removed (or no leader) gives way to the first in-sync
/// target replica that is not fenced, in a new epoch. True when it did.
pub(super) fn complete_if_caught_up(
    p: &mut PartitionMeta,
    is_fenced: impl Fn(BrokerId) -> bool,
) -> bool {
    if !p.reassigning() {
        return false;
    }
    let target = p.target_replicas();
    if !target.iter().all(|r| p.isr.contains(&r.broker)) {
        return false;
    }
    let removing = std::mem::take(&mut p.removing);
    p.adding.clear();
    p.replicas = target;
    p.isr.retain(|b| !removing.contains(b));
    p.elr.retain(|b| !removing.contains(b));
    p.partition_epoch += 1;
    if p.leader == NO_LEADER || removing.contains(&p.leader) {
        p.leader = p
            .replicas
            .iter()
            .map(|r| r.broker)
            .find(|b| p.isr.contains(b) && !is_fenced(*b))
            .unwrap_or(NO_LEADER);
        p.leader_epoch += 1;
    } else if !removing.is_empty() {
        // Replicas removed: see the module doc.
        p.leader_epoch += 1;
    }
    true
}

/// `next` lacks a replica `before` had.
fn removes_a_replica(before: &PartitionMeta, next: &PartitionMeta) -> bool {
    before
        .replicas
        .iter()
        .any(|r| !next.replicas.iter().any(|n| n.broker == r.broker))
}

/// The shards a reassignment's target brokers hold the partition on: a
/// broker that holds a replica already keeps its shard; a new one gets its
/// emptiest shard (placement's rule for manual assignments).
pub fn place_target(
    state: &MetadataState,
    current: &PartitionMeta,
    target: &[BrokerId],
) -> Result<Vec<Replica>, String> {
    let new: Vec<BrokerId> = target
        .iter()
        .copied()
        .filter(|b| current.shard_on(*b).is_none())
        .collect();
    let mut placed_new = if new.is_empty() {
        Vec::new()
    } else {
        super::placement::place_manual(state, std::slice::from_ref(&new))?
            .pop()
            .unwrap_or_default()
    };
    placed_new.reverse();
    let mut out = Vec::with_capacity(target.len());
    for b in target {
        match current.shard_on(*b) {
            Some(shard) => out.push(Replica { broker: *b, shard }),
            None => match placed_new.pop() {
                Some(r) => out.push(r),
                None => return Err(format!("broker {b} could not be placed")),
            },
        }
    }
    Ok(out)
}
