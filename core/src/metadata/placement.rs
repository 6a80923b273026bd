//! Placement: which brokers, and which shard on each, hold new partitions.
//!
//! Owns: the controller's choice of replicas for new partitions. It reads
//! the metadata and returns replica lists; the choice is then written into
//! the command, so replaying the log never re-decides it.
//!
//! Rules, in order: only unfenced brokers hold new replicas; a partition's
//! replicas are on distinct brokers; its first replica (the preferred
//! leader) is the broker that leads the fewest partitions; the others are
//! the brokers holding the fewest replicas, preferring racks the partition
//! does not use yet; within a broker, the shard holding the fewest
//! replicas. Ties go to the lowest id, so the choice is deterministic.

use std::collections::{BTreeMap, BTreeSet};

use super::{BrokerId, MetadataState, Replica, ShardId};

/// Replica lists for `count` new partitions of `replication_factor`
/// replicas, or Kafka's message for INVALID_REPLICATION_FACTOR.
pub fn place(
    state: &MetadataState,
    count: usize,
    replication_factor: usize,
) -> Result<Vec<Vec<Replica>>, String> {
    let eligible: Vec<BrokerId> = state
        .brokers
        .values()
        .filter(|b| !b.fenced)
        .map(|b| b.registration.id)
        .collect();
    if replication_factor == 0 {
        return Err("Replication factor must be larger than 0.".into());
    }
    if replication_factor > eligible.len() {
        return Err(format!(
            "Replication factor: {replication_factor} larger than available brokers: {}.",
            eligible.len()
        ));
    }
    let mut load = Load::of(state);
    let rack = |b: BrokerId| {
        state
            .brokers
            .get(&b)
            .and_then(|m| m.registration.rack.clone())
    };
    let shards = |b: BrokerId| state.brokers.get(&b).map_or(1, |m| m.registration.shards);
    let mut placed = Vec::with_capacity(count);
    for _ in 0..count {
        let leader = *eligible
            .iter()
            .min_by_key(|b| (load.leaders(**b), load.replicas(**b), **b))
            .expect("replication factor >= 1 means a broker is eligible");
        let mut chosen = vec![leader];
        let mut racks = BTreeSet::from([rack(leader)]);
        while chosen.len() < replication_factor {
            let next = *eligible
                .iter()
                .filter(|b| !chosen.contains(b))
                .min_by_key(|b| (racks.contains(&rack(**b)), load.replicas(**b), **b))
                .expect("more eligible brokers than the replication factor");
            racks.insert(rack(next));
            chosen.push(next);
        }
        let replicas: Vec<Replica> = chosen
            .iter()
            .map(|b| Replica {
                broker: *b,
                shard: load.emptiest_shard(*b, shards(*b)),
            })
            .collect();
        load.add(&replicas);
        placed.push(replicas);
    }
    Ok(placed)
}

/// Replica lists for partitions whose brokers a client named (a manual
/// assignment): each replica on the emptiest shard of its broker; or
/// Kafka's message for INVALID_REPLICA_ASSIGNMENT.
pub fn place_manual(
    state: &MetadataState,
    assignments: &[Vec<BrokerId>],
) -> Result<Vec<Vec<Replica>>, String> {
    let mut load = Load::of(state);
    let mut placed = Vec::with_capacity(assignments.len());
    for brokers in assignments {
        if brokers.is_empty() {
            return Err("The manual partition assignment includes an empty replica list.".into());
        }
        let mut replicas = Vec::with_capacity(brokers.len());
        for (i, b) in brokers.iter().enumerate() {
            let Some(meta) = state.brokers.get(b) else {
                return Err(format!(
                    "The manual partition assignment includes broker {b}, but no broker with that id was found."
                ));
            };
            if brokers[..i].contains(b) {
                return Err(format!(
                    "The manual partition assignment includes the broker {b} more than once."
                ));
            }
            replicas.push(Replica {
                broker: *b,
                shard: load.emptiest_shard(*b, meta.registration.shards),
            });
        }
        load.add(&replicas);
        placed.push(replicas);
    }
    Ok(placed)
}

/// How many partitions each broker leads (preferred) and holds, and how
/// many replicas each of its shards holds.
#[derive(Default)]
struct Load {
    leaders: BTreeMap<BrokerId, u64>,
    replicas: BTreeMap<BrokerId, u64>,
    shards: BTreeMap<(BrokerId, ShardId), u64>,
}

impl Load {
    fn of(state: &MetadataState) -> Load {
        let mut load = Load::default();
        for topic in state.topics.values() {
            for partition in &topic.partitions {
                load.add(&partition.replicas);
            }
        }
        load
    }

    fn add(&mut self, replicas: &[Replica]) {
        if let Some(first) = replicas.first() {
            *self.leaders.entry(first.broker).or_default() += 1;
        }
        for r in replicas {
            *self.replicas.entry(r.broker).or_default() += 1;
            *self.shards.entry((r.broker, r.shard)).or_default() += 1;
        }
    }

    fn leaders(&self, b: BrokerId) -> u64 {
        self.leaders.get(&b).copied().unwrap_or(0)
    }

    fn replicas(&self, b: BrokerId) -> u64 {
        self.replicas.get(&b).copied().unwrap_or(0)
    }

    fn emptiest_shard(&self, b: BrokerId, shards: u32) -> ShardId {
        (0..shards.max(1))
            .min_by_key(|s| (self.shards.get(&(b, *s)).copied().unwrap_or(0), *s))
            .unwrap_or(0)
    }
}
