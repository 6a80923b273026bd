//! The metadata state machine: brokers, topics and where partitions live.
//!
//! Owns: the cluster's metadata as a pure, deterministic state machine.
//! Every change is a [`MetadataCommand`]; [`MetadataState::apply`] is the
//! only way state changes, does no I/O and reads no clock, so replaying the
//! same commands always gives the same state. The commands are the entries
//! of the controller quorum's Raft log (a single node is a quorum of one);
//! every shard of every broker holds a read-only copy.
//!
//! Placement (which brokers and shards hold a new partition) is decided by
//! the controller before it proposes a command ([`placement`]), and the
//! choice is part of the command, so it never changes on replay.
//!
//! Invariants, checked after every step by the simulators
//! ([`MetadataState::violations`]): a partition's replicas are on distinct
//! registered brokers, on shards those brokers run; its in-sync set is a
//! non-empty subset of them; its leader is in that set and not fenced, or
//! there is none.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::ErrorCode;
use crate::types::{validate_topic_name, PartitionId};

mod brokers;
mod command;
pub mod dynamic_config;
pub mod election;
pub mod eligible;
pub mod legacy;
pub mod liveness;
pub mod placement;
pub mod reassignment;

pub use brokers::{BrokerId, BrokerMeta, BrokerRegistration, NO_LEADER};
pub use command::{MetadataCommand, MetadataError};

/// Index of a shard (one pinned executor, one core) within a broker.
pub type ShardId = u32;

/// Where a partition is led, as [`MetadataState::leader_home`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaderHome {
    /// By this shard of the broker asking.
    Here(ShardId),
    /// By another broker.
    Broker(BrokerId),
}

/// Most partitions one topic may have.
pub const PARTITIONS_MAX: i32 = 100_000;

/// One replica of a partition: the broker holding it and the shard there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replica {
    pub broker: BrokerId,
    pub shard: ShardId,
}

/// One partition: its replicas and who leads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionMeta {
    /// The preferred leader first.
    pub replicas: Vec<Replica>,
    /// In-sync replicas (brokers): those holding every acknowledged record.
    pub isr: Vec<BrokerId>,
    /// The leading broker, or [`NO_LEADER`].
    pub leader: BrokerId,
    /// Raised at every change of leader.
    pub leader_epoch: i32,
    /// Raised at every change of leader or in-sync set (Kafka's partition
    /// epoch): an in-sync set change proposed against an older one is
    /// refused.
    #[serde(default)]
    pub partition_epoch: i32,
    /// Brokers a reassignment in progress adds ([`reassignment`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adding: Vec<BrokerId>,
    /// Brokers a reassignment in progress removes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removing: Vec<BrokerId>,
    /// Eligible leader replicas (KIP-966, [`eligible`]): out of sync, but
    /// holding every record below the high watermark.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub elr: Vec<BrokerId>,
}

impl PartitionMeta {
    /// A new partition on `replicas`: led by the first; every replica on a
    /// broker that is not fenced is in sync (all are empty).
    fn new(replicas: &[Replica], is_fenced: impl Fn(BrokerId) -> bool) -> PartitionMeta {
        let isr: Vec<BrokerId> = replicas
            .iter()
            .map(|r| r.broker)
            .filter(|&b| !is_fenced(b))
            .collect();
        let leader = isr.first().copied().unwrap_or(NO_LEADER);
        PartitionMeta {
            replicas: replicas.to_vec(),
            isr: if isr.is_empty() {
                replicas.iter().take(1).map(|r| r.broker).collect()
            } else {
                isr
            },
            leader,
            leader_epoch: 0,
            partition_epoch: 0,
            adding: Vec::new(),
            removing: Vec::new(),
            elr: Vec::new(),
        }
    }

    /// The shard holding `broker`'s replica, if it holds one.
    pub fn shard_on(&self, broker: BrokerId) -> Option<ShardId> {
        self.replicas
            .iter()
            .find(|r| r.broker == broker)
            .map(|r| r.shard)
    }

    /// The replicas' brokers, preferred leader first.
    pub fn replica_brokers(&self) -> Vec<BrokerId> {
        self.replicas.iter().map(|r| r.broker).collect()
    }
}

/// One topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMeta {
    /// Kafka's topic id (a UUID), fixed at creation.
    pub id: [u8; 16],
    /// Indexed by partition id.
    pub partitions: Vec<PartitionMeta>,
    /// Topic-level config overrides (Kafka names, e.g. `retention.ms`).
    pub configs: BTreeMap<String, String>,
}

/// The whole metadata of the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataState {
    pub brokers: BTreeMap<BrokerId, BrokerMeta>,
    pub topics: BTreeMap<String, TopicMeta>,
    /// Dynamic broker configs ([`dynamic_config`]): by broker id, or the
    /// empty string for the cluster default.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub broker_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// Client quotas ([`crate::quota`]), one entry per entity that has
    /// any, ordered by entity.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub client_quotas: Vec<crate::quota::ClientQuota>,
    /// Group config overrides (`kafka-configs.sh --entity-type groups`),
    /// by group id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub group_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// First producer id not yet handed out.
    pub next_producer_id: i64,
    /// Commands applied so far.
    pub applied: u64,
}

impl MetadataState {
    /// Applies `command`, or leaves the state untouched and says why not.
    pub fn apply(&mut self, command: &MetadataCommand) -> Result<(), MetadataError> {
        match command {
            MetadataCommand::RegisterBroker(registration) => {
                if let Some(why) = registration.invalid() {
                    return Err(MetadataError::InvalidRegistration(why));
                }
                let id = registration.id;
                // A new incarnation is a restart: what the broker led may
                // have lost an unsynced tail its followers hold, so it
                // leaves the in-sync set (unless it is the last member)
                // and its leadership moves on, in a new epoch either way,
                // as a fencing would; followers then truncate against it.
                let restarted = self
                    .brokers
                    .get(&id)
                    .is_some_and(|b| b.registration.incarnation != registration.incarnation);
                if restarted {
                    let fenced: Vec<BrokerId> = self
                        .brokers
                        .values()
                        .filter(|b| b.fenced || b.registration.id == id)
                        .map(|b| b.registration.id)
                        .collect();
                    let durable = registration.durable_logs;
                    self.each_partition_with(|p, config| {
                        brokers::on_fenced(p, id, |b| fenced.contains(&b), config);
                        eligible::on_restart(p, id, durable);
                    });
                }
                let epoch = self.applied;
                self.brokers.insert(
                    id,
                    BrokerMeta {
                        registration: registration.clone(),
                        epoch,
                        fenced: false,
                    },
                );
                let fenced = self.fenced_brokers();
                self.each_partition_with(|p, config| {
                    brokers::on_shards_changed(p, id, registration.shards);
                    brokers::on_unfenced(p, |b| fenced.contains(&b), config);
                });
            }
            MetadataCommand::FenceBroker { id } => {
                let broker = self
                    .brokers
                    .get_mut(id)
                    .ok_or(MetadataError::UnknownBroker(*id))?;
                broker.fenced = true;
                let fenced = self.fenced_brokers();
                self.each_partition_with(|p, config| {
                    brokers::on_fenced(p, *id, |b| fenced.contains(&b), config)
                });
            }
            MetadataCommand::UnfenceBroker { id } => {
                let broker = self
                    .brokers
                    .get_mut(id)
                    .ok_or(MetadataError::UnknownBroker(*id))?;
                broker.fenced = false;
                let fenced = self.fenced_brokers();
                self.each_partition_with(|p, config| {
                    brokers::on_unfenced(p, |b| fenced.contains(&b), config)
                });
            }
            MetadataCommand::CreateTopic {
                name,
                id,
                partitions,
                configs,
            } => {
                validate_topic_name(name)
                    .map_err(|e| MetadataError::InvalidTopic(name.clone(), e.to_owned()))?;
                if self.topics.contains_key(name) {
                    return Err(MetadataError::TopicExists(name.clone()));
                }
                check_placed(partitions.len())?;
                self.check_replicas(partitions)?;
                self.topics.insert(
                    name.clone(),
                    TopicMeta {
                        id: *id,
                        partitions: partitions
                            .iter()
                            .map(|r| PartitionMeta::new(r, |b| self.is_fenced(b)))
                            .collect(),
                        configs: configs.clone(),
                    },
                );
            }
            MetadataCommand::DeleteTopic { name } => {
                if self.topics.remove(name).is_none() {
                    return Err(MetadataError::UnknownTopic(name.clone()));
                }
            }
            MetadataCommand::CreatePartitions {
                name,
                new_partitions,
            } => {
                let current = self
                    .topics
                    .get(name)
                    .ok_or_else(|| MetadataError::UnknownTopic(name.clone()))?
                    .partitions
                    .len();
                if new_partitions.is_empty() {
                    return Err(MetadataError::InvalidPartitions("no new partitions".into()));
                }
                check_placed(current + new_partitions.len())?;
                self.check_replicas(new_partitions)?;
                let added: Vec<PartitionMeta> = new_partitions
                    .iter()
                    .map(|r| PartitionMeta::new(r, |b| self.is_fenced(b)))
                    .collect();
                if let Some(topic) = self.topics.get_mut(name) {
                    topic.partitions.extend(added);
                }
            }
            MetadataCommand::AlterPartition {
                topic,
                partition,
                leader,
                leader_epoch,
                partition_epoch,
                isr,
            } => {
                let all_fenced = self.fenced_brokers();
                let fenced: Vec<BrokerId> = isr
                    .iter()
                    .copied()
                    .filter(|b| all_fenced.contains(b))
                    .collect();
                let config = self
                    .topics
                    .get(topic)
                    .map(|t| eligible::LeadershipConfig::of(self, &t.configs));
                let p = self
                    .topics
                    .get_mut(topic)
                    .and_then(|t| t.partitions.get_mut(*partition as usize))
                    .ok_or_else(|| MetadataError::UnknownTopic(topic.clone()))?;
                if p.leader != *leader || p.leader_epoch != *leader_epoch {
                    return Err(MetadataError::FencedLeaderEpoch);
                }
                if p.partition_epoch != *partition_epoch {
                    return Err(MetadataError::InvalidUpdateVersion);
                }
                let replicas = p.replica_brokers();
                let mut sorted = isr.clone();
                sorted.sort_unstable();
                sorted.dedup();
                if !isr.contains(leader)
                    || sorted.len() != isr.len()
                    || isr.iter().any(|b| !replicas.contains(b))
                {
                    return Err(MetadataError::InvalidReplicas(format!(
                        "in-sync set {isr:?} is not a set of replicas {replicas:?} holding the leader"
                    )));
                }
                if let Some(b) = fenced.iter().find(|b| !p.isr.contains(b)) {
                    return Err(MetadataError::IneligibleReplica(*b));
                }
                let before = std::mem::replace(&mut p.isr, isr.clone());
                p.partition_epoch += 1;
                if let Some(config) = config {
                    eligible::after_isr_change(p, &before, config.min_insync_replicas);
                }
                reassignment::complete_if_caught_up(p, |b| all_fenced.contains(&b));
            }
            MetadataCommand::ReassignPartitions { reassignments } => {
                reassignment::apply(self, reassignments);
            }
            MetadataCommand::UncleanElect { partitions } => {
                let fenced = self.fenced_brokers();
                for (topic, partition) in partitions {
                    let Some(t) = self.topics.get(topic) else {
                        continue;
                    };
                    let config = eligible::LeadershipConfig {
                        unclean_leader_election: true,
                        ..eligible::LeadershipConfig::of(self, &t.configs)
                    };
                    let p = self.topics.get_mut(topic).and_then(|t| {
                        usize::try_from(*partition)
                            .ok()
                            .and_then(|i| t.partitions.get_mut(i))
                    });
                    if let Some(p) = p.filter(|p| p.leader == NO_LEADER) {
                        eligible::elect(p, |b| fenced.contains(&b), config);
                    }
                }
            }
            MetadataCommand::AlterConfigs { resource, configs } => {
                match resource {
                    dynamic_config::ConfigResource::Topic(name) => {
                        let topic = self
                            .topics
                            .get_mut(name)
                            .ok_or_else(|| MetadataError::UnknownTopic(name.clone()))?;
                        topic.configs = configs.clone();
                    }
                    dynamic_config::ConfigResource::Broker(broker) => {
                        let key = dynamic_config::broker_key(*broker);
                        if configs.is_empty() {
                            self.broker_configs.remove(&key);
                        } else {
                            self.broker_configs.insert(key, configs.clone());
                        }
                    }
                    dynamic_config::ConfigResource::Group(group) => {
                        if configs.is_empty() {
                            self.group_configs.remove(group);
                        } else {
                            self.group_configs.insert(group.clone(), configs.clone());
                        }
                    }
                }
                // Unclean election may just have been allowed: a partition
                // without a leader gets one now if it can (as Kafka's
                // controller does when the config changes).
                let fenced = self.fenced_brokers();
                self.each_partition_with(|p, config| {
                    if p.leader == NO_LEADER {
                        eligible::elect(p, |b| fenced.contains(&b), config);
                    }
                });
            }
            MetadataCommand::ElectLeaders { elections } => {
                election::apply(self, elections);
            }
            MetadataCommand::AlterClientQuotas { quotas } => {
                for quota in quotas {
                    self.set_client_quota(quota);
                }
            }
            MetadataCommand::AllocateProducerIds { first, count } => {
                if *first != self.next_producer_id || *count <= 0 {
                    return Err(MetadataError::ProducerIdsOutOfOrder);
                }
                self.next_producer_id = first + count;
            }
        }
        self.applied += 1;
        Ok(())
    }

    pub fn is_fenced(&self, broker: BrokerId) -> bool {
        self.brokers.get(&broker).is_some_and(|b| b.fenced)
    }

    /// Every partition, with its topic's leadership configs.
    fn each_partition_with(
        &mut self,
        mut f: impl FnMut(&mut PartitionMeta, eligible::LeadershipConfig),
    ) {
        let configs: Vec<(String, eligible::LeadershipConfig)> = self
            .topics
            .iter()
            .map(|(name, t)| {
                (
                    name.clone(),
                    eligible::LeadershipConfig::of(self, &t.configs),
                )
            })
            .collect();
        for (name, config) in configs {
            if let Some(topic) = self.topics.get_mut(&name) {
                for p in &mut topic.partitions {
                    f(p, config);
                }
            }
        }
    }

    pub(super) fn fenced_brokers(&self) -> Vec<BrokerId> {
        self.brokers
            .values()
            .filter(|b| b.fenced)
            .map(|b| b.registration.id)
            .collect()
    }

    /// Every replica list names distinct registered brokers and shards they
    /// run, at least one each.
    fn check_replicas(&self, lists: &[Vec<Replica>]) -> Result<(), MetadataError> {
        for replicas in lists {
            if replicas.is_empty() {
                return Err(MetadataError::InvalidReplicas("no replicas".into()));
            }
            for (i, r) in replicas.iter().enumerate() {
                let Some(broker) = self.brokers.get(&r.broker) else {
                    return Err(MetadataError::InvalidReplicas(format!(
                        "broker {} is not registered",
                        r.broker
                    )));
                };
                if r.shard >= broker.registration.shards {
                    return Err(MetadataError::InvalidReplicas(format!(
                        "broker {} has no shard {}",
                        r.broker, r.shard
                    )));
                }
                if replicas[..i].iter().any(|o| o.broker == r.broker) {
                    return Err(MetadataError::InvalidReplicas(format!(
                        "broker {} is named twice",
                        r.broker
                    )));
                }
            }
        }
        Ok(())
    }

    /// One partition, if its topic and it exist.
    pub fn partition(&self, topic: &str, partition: PartitionId) -> Option<&PartitionMeta> {
        let topic = self.topics.get(topic)?;
        usize::try_from(partition)
            .ok()
            .and_then(|p| topic.partitions.get(p))
    }

    /// The shard of `broker` that serves `partition` as its leader, or the
    /// error Kafka gives a client that sent it there:
    /// UNKNOWN_TOPIC_OR_PARTITION when it does not exist,
    /// NOT_LEADER_OR_FOLLOWER when `broker` does not lead it.
    pub fn leader_shard(
        &self,
        broker: BrokerId,
        topic: &str,
        partition: PartitionId,
    ) -> Result<ShardId, ErrorCode> {
        let p = self
            .partition(topic, partition)
            .ok_or(ErrorCode::UnknownTopicOrPartition)?;
        if p.leader != broker {
            return Err(ErrorCode::NotLeaderOrFollower);
        }
        p.shard_on(broker).ok_or(ErrorCode::NotLeaderOrFollower)
    }

    /// Where `partition` of `topic` is led, seen from `broker`: by one of
    /// its shards, or by another broker; `None` when it does not exist or
    /// has no leader (or `broker` leads it without a replica, which the
    /// invariants rule out).
    pub fn leader_home(
        &self,
        broker: BrokerId,
        topic: &str,
        partition: PartitionId,
    ) -> Option<LeaderHome> {
        let p = self.partition(topic, partition)?;
        match p.leader {
            NO_LEADER => None,
            leader if leader == broker => p.shard_on(broker).map(LeaderHome::Here),
            leader => Some(LeaderHome::Broker(leader)),
        }
    }

    /// The shard of `broker` holding a replica of `partition`, if any.
    pub fn replica_shard(
        &self,
        broker: BrokerId,
        topic: &str,
        partition: PartitionId,
    ) -> Option<ShardId> {
        self.partition(topic, partition)?.shard_on(broker)
    }

    /// Brokers clients are told about: registered and not fenced.
    pub fn live_brokers(&self) -> impl Iterator<Item = &BrokerRegistration> {
        self.brokers
            .values()
            .filter(|b| !b.fenced)
            .map(|b| &b.registration)
    }

    /// What breaks the invariants in the module doc, one line each.
    pub fn violations(&self) -> Vec<String> {
        let mut found = Vec::new();
        for (name, topic) in &self.topics {
            for (i, p) in topic.partitions.iter().enumerate() {
                let at = format!("{name}-{i}");
                if let Err(e) = self.check_replicas(std::slice::from_ref(&p.replicas)) {
                    found.push(format!("{at}: {e}"));
                }
                if p.isr.is_empty() {
                    found.push(format!("{at}: empty in-sync set"));
                }
                if p.isr.iter().any(|b| p.shard_on(*b).is_none()) {
                    found.push(format!("{at}: in-sync {:?} outside replicas", p.isr));
                }
                if p.adding
                    .iter()
                    .chain(&p.removing)
                    .any(|b| p.shard_on(*b).is_none())
                    || p.adding.iter().any(|b| p.removing.contains(b))
                    || p.target_replicas().is_empty()
                {
                    found.push(format!(
                        "{at}: reassignment adding {:?} removing {:?} does not fit replicas {:?}",
                        p.adding,
                        p.removing,
                        p.replica_brokers()
                    ));
                }
                if p.elr
                    .iter()
                    .any(|b| p.isr.contains(b) || p.shard_on(*b).is_none())
                {
                    found.push(format!(
                        "{at}: eligible {:?} not out-of-sync replicas (in sync {:?})",
                        p.elr, p.isr
                    ));
                }
                if p.leader != NO_LEADER {
                    if !p.isr.contains(&p.leader) {
                        found.push(format!("{at}: leader {} not in sync", p.leader));
                    }
                    if self.brokers.get(&p.leader).is_none_or(|b| b.fenced) {
                        found.push(format!("{at}: leader {} is fenced", p.leader));
                    }
                }
            }
        }
        found
    }
}

/// The one check of a topic's partition count (CreateTopics,
/// CreatePartitions and every command that places partitions): at least 1
/// and at most [`PARTITIONS_MAX`]; the error is Kafka's message for
/// INVALID_PARTITIONS.
pub fn check_partition_count(count: i64) -> Result<(), String> {
    if count < 1 {
        return Err(format!(
            "Number of partitions must be larger than 0, not {count}."
        ));
    }
    if count > i64::from(PARTITIONS_MAX) {
        return Err(format!(
            "Number of partitions {count} is larger than the maximum {PARTITIONS_MAX}."
        ));
    }
    Ok(())
}

fn check_placed(count: usize) -> Result<(), MetadataError> {
    check_partition_count(i64::try_from(count).unwrap_or(i64::MAX))
        .map_err(MetadataError::InvalidPartitions)
}

#[cfg(test)]
mod tests;
