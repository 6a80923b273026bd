//! Which replica a consumer should read from (KIP-392's rack-aware replica
//! selector, Kafka's `RackAwareReplicaSelector`).
//!
//! Invariant: a consumer is only ever pointed at a replica that is in sync
//! and on a live broker, so it reads nothing the leader would not serve
//! (a follower serves up to its high watermark).

use crate::metadata::{BrokerId, MetadataState, PartitionMeta};

/// Kafka's class name of the rack-aware selector (`replica.selector.class`).
pub const RACK_AWARE_SELECTOR: &str = "org.apache.kafka.common.replica.RackAwareReplicaSelector";

/// True when `class` names the rack-aware selector (its full or short name).
pub fn is_rack_aware(class: Option<&str>) -> bool {
    class.is_some_and(|c| c == RACK_AWARE_SELECTOR || c == "RackAwareReplicaSelector")
}

/// The replica a consumer in `rack` should read `partition` from instead
/// of its leader: the first in-sync replica on a live broker in that rack,
/// or `None` when the leader is in the rack itself or no such replica
/// exists (the consumer reads the leader).
pub fn rack_replica(
    state: &MetadataState,
    partition: &PartitionMeta,
    rack: &str,
) -> Option<BrokerId> {
    let rack_of = |b: BrokerId| {
        state
            .brokers
            .get(&b)
            .filter(|m| !m.fenced)
            .and_then(|m| m.registration.rack.as_deref())
    };
    if rack.is_empty() || rack_of(partition.leader) == Some(rack) {
        return None;
    }
    partition
        .replicas
        .iter()
        .map(|r| r.broker)
        .find(|b| *b != partition.leader && partition.isr.contains(b) && rack_of(*b) == Some(rack))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{BrokerRegistration, MetadataCommand, Replica};

    #[test]
    fn a_consumer_is_pointed_at_an_in_sync_replica_in_its_rack_only() {
        let mut state = MetadataState::default();
        for (id, rack) in [(1, "a"), (2, "b"), (3, "c")] {
            state
                .apply(&MetadataCommand::RegisterBroker(BrokerRegistration {
                    id,
                    incarnation: [id as u8; 16],
                    rack: Some(rack.into()),
                    host: "127.0.0.1".into(),
                    port: 9092,
                    rpc_addr: "127.0.0.1:9093".into(),
                    shards: 1,
                    durable_logs: false,
                }))
                .expect("registers");
        }
        state
            .apply(&MetadataCommand::CreateTopic {
                name: "t".into(),
                id: [1; 16],
                partitions: vec![[1, 2, 3]
                    .iter()
                    .map(|&broker| Replica { broker, shard: 0 })
                    .collect()],
                configs: Default::default(),
            })
            .expect("creates");
        let p = state.partition("t", 0).expect("exists").clone();
        assert_eq!(rack_replica(&state, &p, "b"), Some(2));
        assert_eq!(rack_replica(&state, &p, "a"), None, "the leader's rack");
        assert_eq!(rack_replica(&state, &p, "z"), None, "no replica there");
        state
            .apply(&MetadataCommand::FenceBroker { id: 3 })
            .expect("fences");
        let p = state.partition("t", 0).expect("exists").clone();
        assert_eq!(rack_replica(&state, &p, "c"), None, "fenced, out of sync");
        assert!(is_rack_aware(Some(RACK_AWARE_SELECTOR)));
        assert!(!is_rack_aware(None));
    }
}
