//! Brokers in the metadata: registration, fencing, and what fencing does
//! to partition leadership.
//!
//! Owns: [`BrokerRegistration`] (what a broker tells the controller when it
//! starts), [`BrokerMeta`] (what the metadata keeps of it) and the
//! leadership rules applied when a broker is fenced or comes back.
//!
//! Invariants (checked by [`super::MetadataState::violations`]): a
//! partition's leader is one of its in-sync replicas and is not fenced (or
//! there is no leader); the in-sync set is never empty and lies within the
//! replicas; every leadership change raises the partition's leader epoch.
//! Without replication (#10) a follower holds no data, so leadership only
//! moves to another in-sync replica: a partition whose one in-sync replica
//! is fenced has no leader until that broker returns (Kafka's behaviour
//! with unclean leader election off).

use serde::{Deserialize, Serialize};

use super::eligible::{self, LeadershipConfig};
use super::{PartitionMeta, ShardId};

/// A broker's id (`node.id`).
pub type BrokerId = i32;

/// The leader of a partition that has none.
pub const NO_LEADER: BrokerId = -1;

/// What a starting broker registers with the controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistration {
    pub id: BrokerId,
    /// New at every start of the process: tells a restart from a duplicate.
    pub incarnation: [u8; 16],
    /// `broker.rack`, for rack-aware placement.
    pub rack: Option<String>,
    /// The Kafka listener clients are told about.
    pub host: String,
    pub port: i32,
    /// The internal listener (`--rpc-addr`).
    pub rpc_addr: String,
    /// Shards (cores) the broker runs, for placement within it.
    pub shards: u32,
    /// Its logs lose nothing they acknowledged to a crash (`log.flush =
    /// always`): after a restart it stays an eligible leader (KIP-966).
    #[serde(default)]
    pub durable_logs: bool,
}

impl BrokerRegistration {
    /// Why this registration cannot be accepted, if it cannot.
    pub fn invalid(&self) -> Option<String> {
        if self.id < 0 {
            return Some(format!("broker id {} is negative", self.id));
        }
        if self.shards == 0 {
            return Some("a broker runs at least one shard".into());
        }
        if !(0..=i32::from(u16::MAX)).contains(&self.port) {
            return Some(format!("port {} is out of range", self.port));
        }
        None
    }
}

/// A registered broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerMeta {
    pub registration: BrokerRegistration,
    /// The metadata offset of its latest registration (Kafka's broker
    /// epoch): grows with every restart.
    pub epoch: u64,
    /// Fenced: its heartbeats stopped or it shut down; it leads nothing and
    /// clients are not told about it.
    pub fenced: bool,
}

/// Leadership of `partition` after `broker` was fenced: it leaves the
/// in-sync set unless it is the last member (becoming an eligible leader
/// when the set falls below `min.insync.replicas`), and leadership moves as
/// [`eligible::elect`] says: another in-sync replica, an eligible one, or
/// (unclean elections on) any live replica, or nobody.
pub(super) fn on_fenced(
    partition: &mut PartitionMeta,
    broker: BrokerId,
    is_fenced: impl Fn(BrokerId) -> bool,
    config: LeadershipConfig,
) {
    let before = partition.isr.clone();
    if partition.isr.len() > 1 && partition.isr.contains(&broker) {
        partition.isr.retain(|b| *b != broker);
        partition.partition_epoch += 1;
    }
    eligible::after_isr_change(partition, &before, config.min_insync_replicas);
    if partition.leader == broker {
        eligible::elect(partition, is_fenced, config);
    }
}

/// Leadership of `partition` after `broker` came back: a partition without
/// a leader gets one if it now can (the broker in sync or eligible, or
/// unclean elections on).
pub(super) fn on_unfenced(
    partition: &mut PartitionMeta,
    is_fenced: impl Fn(BrokerId) -> bool,
    config: LeadershipConfig,
) {
    if partition.leader == NO_LEADER {
        eligible::elect(partition, is_fenced, config);
    }
}

/// The shard `broker` keeps `partition`'s replica on after it registered
/// with `shards` shards: a replica placed on a shard the broker no longer
/// runs moves to one it does, the same one on every node.
pub(super) fn on_shards_changed(partition: &mut PartitionMeta, broker: BrokerId, shards: u32) {
    for replica in &mut partition.replicas {
        if replica.broker == broker && replica.shard >= shards {
            replica.shard %= shards as ShardId;
        }
    }
}
