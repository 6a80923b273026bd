//! The metadata state machine: topics, partitions and their placement.
//!
//! Owns: the node's metadata as a pure, deterministic state machine. Every
//! change is a [`MetadataCommand`]; [`MetadataState::apply`] is the only way
//! state changes, does no I/O and reads no clock, so replaying the same
//! commands always gives the same state. On one node the commands are the
//! records of a local metadata log; in a cluster they become the entries of
//! the Raft group. Every shard holds a read-only copy.
//!
//! Placement: a new partition goes to the shard that owns the fewest
//! partitions (lowest shard id on ties), and stays there across restarts
//! because the assignment is part of the command.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::ErrorCode;
use crate::types::{validate_topic_name, PartitionId};

/// Index of a shard (one pinned executor, one core) within the node.
pub type ShardId = u32;

/// Most partitions one topic may have.
pub const PARTITIONS_MAX: i32 = 100_000;

/// One topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMeta {
    /// Kafka's topic id (a UUID), fixed at creation.
    pub id: [u8; 16],
    /// Owner shard of each partition, indexed by partition id.
    pub partition_shards: Vec<ShardId>,
    /// Topic-level config overrides (Kafka names, e.g. `retention.ms`).
    pub configs: BTreeMap<String, String>,
}

/// A change to the metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataCommand {
    CreateTopic {
        name: String,
        id: [u8; 16],
        partition_shards: Vec<ShardId>,
        configs: BTreeMap<String, String>,
    },
    DeleteTopic {
        name: String,
    },
    CreatePartitions {
        name: String,
        new_partition_shards: Vec<ShardId>,
    },
    /// Reserves producer ids `[first, first + count)` for InitProducerId.
    AllocateProducerIds {
        first: i64,
        count: i64,
    },
}

impl std::fmt::Display for MetadataCommand {
    /// One line for logs: the kind of change and what it names.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MetadataCommand::CreateTopic {
                name,
                partition_shards,
                ..
            } => write!(
                f,
                "create topic {name:?} ({} partitions)",
                partition_shards.len()
            ),
            MetadataCommand::DeleteTopic { name } => write!(f, "delete topic {name:?}"),
            MetadataCommand::CreatePartitions {
                name,
                new_partition_shards,
            } => write!(
                f,
                "add {} partitions to {name:?}",
                new_partition_shards.len()
            ),
            MetadataCommand::AllocateProducerIds { first, count } => {
                write!(f, "allocate producer ids {first}..{}", first + count)
            }
        }
    }
}

/// Why a command cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum MetadataError {
    #[error("topic {0:?} already exists")]
    TopicExists(String),
    #[error("topic {0:?} does not exist")]
    UnknownTopic(String),
    #[error("invalid topic name {0:?}: {1}")]
    InvalidTopic(String, String),
    #[error("invalid partition count: {0}")]
    InvalidPartitions(String),
    #[error("producer ids must be allocated in order")]
    ProducerIdsOutOfOrder,
}

impl MetadataError {
    /// The Kafka error code for this failure.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            MetadataError::TopicExists(_) => ErrorCode::TopicAlreadyExists,
            MetadataError::UnknownTopic(_) => ErrorCode::UnknownTopicOrPartition,
            MetadataError::InvalidTopic(..) => ErrorCode::InvalidTopicException,
            MetadataError::InvalidPartitions(_) => ErrorCode::InvalidPartitions,
            MetadataError::ProducerIdsOutOfOrder => ErrorCode::UnknownServerError,
        }
    }
}

/// The whole metadata of a node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataState {
    pub topics: BTreeMap<String, TopicMeta>,
    /// First producer id not yet handed out.
    pub next_producer_id: i64,
    /// Commands applied so far (the metadata log's next offset).
    pub applied: u64,
}

impl MetadataState {
    /// Applies `command`, or leaves the state untouched and says why not.
    pub fn apply(&mut self, command: &MetadataCommand) -> Result<(), MetadataError> {
        match command {
            MetadataCommand::CreateTopic {
                name,
                id,
                partition_shards,
                configs,
            } => {
                validate_topic_name(name)
                    .map_err(|e| MetadataError::InvalidTopic(name.clone(), e.to_owned()))?;
                if self.topics.contains_key(name) {
                    return Err(MetadataError::TopicExists(name.clone()));
                }
                check_placed(partition_shards.len())?;
                self.topics.insert(
                    name.clone(),
                    TopicMeta {
                        id: *id,
                        partition_shards: partition_shards.clone(),
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
                new_partition_shards,
            } => {
                let topic = self
                    .topics
                    .get_mut(name)
                    .ok_or_else(|| MetadataError::UnknownTopic(name.clone()))?;
                if new_partition_shards.is_empty() {
                    return Err(MetadataError::InvalidPartitions("no new partitions".into()));
                }
                check_placed(topic.partition_shards.len() + new_partition_shards.len())?;
                topic
                    .partition_shards
                    .extend_from_slice(new_partition_shards);
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

    /// Partitions each shard owns now, for placement.
    pub fn partitions_per_shard(&self, shards: u32) -> Vec<u64> {
        let mut counts = vec![0u64; shards as usize];
        for topic in self.topics.values() {
            for shard in &topic.partition_shards {
                if let Some(c) = counts.get_mut(*shard as usize) {
                    *c += 1;
                }
            }
        }
        counts
    }

    /// Owner shards for `count` new partitions, balancing partitions per
    /// shard across the whole node.
    pub fn place_partitions(&self, count: usize, shards: u32) -> Vec<ShardId> {
        assert!(shards > 0, "a node has at least one shard");
        let mut counts = self.partitions_per_shard(shards);
        (0..count)
            .map(|_| {
                let (shard, _) = counts
                    .iter()
                    .enumerate()
                    .min_by_key(|(i, c)| (**c, *i))
                    .expect("at least one shard");
                counts[shard] += 1;
                shard as ShardId
            })
            .collect()
    }

    /// The owner shard of a partition, if the topic and partition exist.
    pub fn owner(&self, topic: &str, partition: PartitionId) -> Option<ShardId> {
        let topic = self.topics.get(topic)?;
        usize::try_from(partition)
            .ok()
            .and_then(|p| topic.partition_shards.get(p))
            .copied()
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
mod tests {
    use super::*;

    fn create(name: &str, shards: Vec<ShardId>) -> MetadataCommand {
        MetadataCommand::CreateTopic {
            name: name.into(),
            id: [1; 16],
            partition_shards: shards,
            configs: BTreeMap::new(),
        }
    }

    #[test]
    fn placement_balances_partitions_across_shards() {
        let mut state = MetadataState::default();
        let placed = state.place_partitions(5, 2);
        assert_eq!(placed, vec![0, 1, 0, 1, 0]);
        state.apply(&create("a", placed)).expect("applies");
        assert_eq!(state.place_partitions(3, 2), vec![1, 0, 1]);
        assert_eq!(state.partitions_per_shard(2), vec![3, 2]);
    }

    #[test]
    fn commands_apply_deterministically_and_reject_conflicts() {
        let commands = vec![
            create("a", vec![0, 1]),
            MetadataCommand::CreatePartitions {
                name: "a".into(),
                new_partition_shards: vec![1],
            },
            create("b", vec![0]),
            MetadataCommand::DeleteTopic { name: "b".into() },
            MetadataCommand::AllocateProducerIds {
                first: 0,
                count: 1000,
            },
        ];
        let mut one = MetadataState::default();
        let mut two = MetadataState::default();
        for c in &commands {
            one.apply(c).expect("applies");
            two.apply(c).expect("applies");
        }
        assert_eq!(one, two);
        assert_eq!(one.owner("a", 2), Some(1));
        assert_eq!(one.owner("a", 3), None);
        assert_eq!(one.owner("b", 0), None);
        assert_eq!(one.next_producer_id, 1000);
        assert_eq!(one.applied, 5);
        let before = one.clone();
        assert_eq!(
            one.apply(&create("a", vec![0])).unwrap_err().error_code(),
            ErrorCode::TopicAlreadyExists
        );
        assert_eq!(
            one.apply(&MetadataCommand::DeleteTopic { name: "zz".into() })
                .unwrap_err()
                .error_code(),
            ErrorCode::UnknownTopicOrPartition
        );
        assert_eq!(
            one.apply(&create("bad/name", vec![0]))
                .unwrap_err()
                .error_code(),
            ErrorCode::InvalidTopicException
        );
        assert_eq!(
            one.apply(&create("empty", vec![]))
                .unwrap_err()
                .error_code(),
            ErrorCode::InvalidPartitions
        );
        assert!(one
            .apply(&MetadataCommand::AllocateProducerIds { first: 5, count: 1 })
            .is_err());
        assert_eq!(one, before, "failed commands change nothing");
    }
}
