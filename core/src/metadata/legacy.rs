//! The metadata format of a single node before the controller quorum.
//!
//! Owns: the frozen record layout of the old `__sluice_metadata` log (one
//! JSON command per record, each partition placed only on a shard) and its
//! replay. A data directory that still has that log is read once at start,
//! turned into today's commands on the node's own broker, and removed.
//!
//! Invariants: the layout never changes (old logs must decode); nothing
//! writes it in production.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{MetadataError, ShardId};

/// One topic in the old format: every partition on this node, on a shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyTopic {
    pub id: [u8; 16],
    pub partition_shards: Vec<ShardId>,
    pub configs: BTreeMap<String, String>,
}

/// A record of the old metadata log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LegacyCommand {
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
    AllocateProducerIds {
        first: i64,
        count: i64,
    },
}

/// The old log replayed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyState {
    pub topics: BTreeMap<String, LegacyTopic>,
    pub next_producer_id: i64,
    pub applied: u64,
}

impl LegacyState {
    /// Applies one old record, or says why it does not apply.
    pub fn apply(&mut self, command: &LegacyCommand) -> Result<(), MetadataError> {
        match command {
            LegacyCommand::CreateTopic {
                name,
                id,
                partition_shards,
                configs,
            } => {
                if self.topics.contains_key(name) {
                    return Err(MetadataError::TopicExists(name.clone()));
                }
                self.topics.insert(
                    name.clone(),
                    LegacyTopic {
                        id: *id,
                        partition_shards: partition_shards.clone(),
                        configs: configs.clone(),
                    },
                );
            }
            LegacyCommand::DeleteTopic { name } => {
                if self.topics.remove(name).is_none() {
                    return Err(MetadataError::UnknownTopic(name.clone()));
                }
            }
            LegacyCommand::CreatePartitions {
                name,
                new_partition_shards,
            } => {
                let topic = self
                    .topics
                    .get_mut(name)
                    .ok_or_else(|| MetadataError::UnknownTopic(name.clone()))?;
                topic
                    .partition_shards
                    .extend_from_slice(new_partition_shards);
            }
            LegacyCommand::AllocateProducerIds { first, count } => {
                if *first != self.next_producer_id || *count <= 0 {
                    return Err(MetadataError::ProducerIdsOutOfOrder);
                }
                self.next_producer_id = first + count;
            }
        }
        self.applied += 1;
        Ok(())
    }
}
