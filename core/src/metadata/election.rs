//! Preferred-leader election: moving leadership back to each partition's
//! first replica (Kafka's ElectLeaders with the preferred type, and the
//! controller's automatic leader balancing).
//!
//! Invariant: leadership only ever moves to a replica that is in sync and
//! not fenced; an election raises the leader and partition epochs, so
//! followers truncate against the new leader as after any change.

use super::{BrokerId, MetadataState, PartitionMeta};
use crate::ErrorCode;

/// The preferred replica `partition` should be led by, or why it cannot
/// be: ELECTION_NOT_NEEDED when it already leads,
/// PREFERRED_LEADER_NOT_AVAILABLE when it is out of sync or fenced.
pub fn preferred_leader(
    state: &MetadataState,
    partition: &PartitionMeta,
) -> Result<BrokerId, ErrorCode> {
    let preferred = partition
        .replicas
        .first()
        .map(|r| r.broker)
        .ok_or(ErrorCode::PreferredLeaderNotAvailable)?;
    if partition.leader == preferred {
        return Err(ErrorCode::ElectionNotNeeded);
    }
    if !partition.isr.contains(&preferred) || state.is_fenced(preferred) {
        return Err(ErrorCode::PreferredLeaderNotAvailable);
    }
    Ok(preferred)
}

/// Every partition that a preferred-leader election would move:
/// (topic, partition, preferred leader).
pub fn preferred_elections(state: &MetadataState) -> Vec<(String, i32, BrokerId)> {
    let mut elections = Vec::new();
    for (name, topic) in &state.topics {
        for (i, p) in topic.partitions.iter().enumerate() {
            if let Ok(leader) = preferred_leader(state, p) {
                elections.push((name.clone(), i as i32, leader));
            }
        }
    }
    elections
}

/// True when some live broker is the preferred leader of more than
/// `percentage`% more partitions than it leads (Kafka's
/// `leader.imbalance.per.broker.percentage`), and an election could help.
pub fn imbalanced(state: &MetadataState, percentage: u32) -> bool {
    for broker in state.live_brokers() {
        let (mut preferred, mut not_leading) = (0u64, 0u64);
        for topic in state.topics.values() {
            for p in &topic.partitions {
                if p.replicas.first().map(|r| r.broker) == Some(broker.id) {
                    preferred += 1;
                    if p.leader != broker.id {
                        not_leading += 1;
                    }
                }
            }
        }
        if preferred > 0 && not_leading * 100 > preferred * u64::from(percentage) {
            return true;
        }
    }
    false
}

/// Applies the elections that still hold against `state`: each named
/// broker must be a replica, in sync, unfenced and not leading already;
/// others are skipped. How many moved.
pub(super) fn apply(state: &mut MetadataState, elections: &[(String, i32, BrokerId)]) -> usize {
    let mut moved = 0;
    for (topic, partition, leader) in elections {
        let fenced = state.is_fenced(*leader);
        let Some(p) = state
            .topics
            .get_mut(topic)
            .and_then(|t| t.partitions.get_mut(*partition as usize))
        else {
            continue;
        };
        if fenced
            || p.leader == *leader
            || !p.isr.contains(leader)
            || !p.replicas.iter().any(|r| r.broker == *leader)
        {
            continue;
        }
        p.leader = *leader;
        p.leader_epoch += 1;
        p.partition_epoch += 1;
        moved += 1;
    }
    moved
}
