//! The changes to the metadata ([`MetadataCommand`]) and why one may not
//! apply ([`MetadataError`]).
//!
//! Owns: the command layout, which is the Raft log's entry format (JSON,
//! serde's externally tagged enums): a field may be added only with a
//! default, never renamed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{BrokerId, BrokerRegistration, Replica};
use crate::error::ErrorCode;

/// A change to the metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataCommand {
    /// A broker started (or restarted): it is recorded, unfenced, and leads
    /// again the partitions that waited for it.
    RegisterBroker(BrokerRegistration),
    /// A broker's heartbeats stopped or it is shutting down.
    FenceBroker {
        id: BrokerId,
    },
    /// A fenced broker's heartbeats resumed.
    UnfenceBroker {
        id: BrokerId,
    },
    CreateTopic {
        name: String,
        id: [u8; 16],
        /// The replicas of each partition, preferred leader first.
        partitions: Vec<Vec<Replica>>,
        configs: BTreeMap<String, String>,
    },
    DeleteTopic {
        name: String,
    },
    CreatePartitions {
        name: String,
        new_partitions: Vec<Vec<Replica>>,
    },
    /// A partition's leader changes its in-sync set (Kafka's
    /// AlterPartition): refused unless `leader` still leads at
    /// `leader_epoch` and the partition is at `partition_epoch`.
    AlterPartition {
        topic: String,
        partition: i32,
        leader: BrokerId,
        leader_epoch: i32,
        partition_epoch: i32,
        isr: Vec<BrokerId>,
    },
    /// Leadership moves to the named brokers (preferred-leader election);
    /// an election that no longer holds when applied (the broker out of
    /// sync, fenced, or leading already) is skipped.
    ElectLeaders {
        elections: Vec<(String, i32, BrokerId)>,
    },
    /// Partitions move to new replicas, or a move in progress is cancelled
    /// (Kafka's AlterPartitionReassignments; [`super::reassignment`]); one
    /// that no longer holds when applied is skipped.
    ReassignPartitions {
        reassignments: Vec<super::reassignment::Reassignment>,
    },
    /// A topic's overrides, or a broker's dynamic configs, become
    /// `configs` (Kafka's IncrementalAlterConfigs, its operations resolved
    /// by the controller against the state it planned on).
    AlterConfigs {
        resource: super::dynamic_config::ConfigResource,
        configs: BTreeMap<String, String>,
    },
    /// Unclean election (ElectLeaders' unclean type): each named partition
    /// without a leader is led by an in-sync, eligible or else any live
    /// replica, which may lose acknowledged records; one with a leader, or
    /// with no live replica, is skipped.
    UncleanElect {
        partitions: Vec<(String, i32)>,
    },
    /// Each entity's client quotas become its `values` (none: the entity
    /// has no quota left), Kafka's AlterClientQuotas with its operations
    /// resolved by the controller.
    AlterClientQuotas {
        quotas: Vec<crate::quota::ClientQuota>,
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
            MetadataCommand::RegisterBroker(r) => write!(
                f,
                "register broker {} at {}:{} ({} shards)",
                r.id, r.host, r.port, r.shards
            ),
            MetadataCommand::FenceBroker { id } => write!(f, "fence broker {id}"),
            MetadataCommand::UnfenceBroker { id } => write!(f, "unfence broker {id}"),
            MetadataCommand::CreateTopic {
                name, partitions, ..
            } => write!(f, "create topic {name:?} ({} partitions)", partitions.len()),
            MetadataCommand::DeleteTopic { name } => write!(f, "delete topic {name:?}"),
            MetadataCommand::CreatePartitions {
                name,
                new_partitions,
            } => write!(f, "add {} partitions to {name:?}", new_partitions.len()),
            MetadataCommand::AlterPartition {
                topic,
                partition,
                isr,
                partition_epoch,
                ..
            } => write!(
                f,
                "in-sync set of {topic}/{partition} becomes {isr:?} (partition epoch {})",
                partition_epoch + 1
            ),
            MetadataCommand::ElectLeaders { elections } => {
                write!(
                    f,
                    "elect preferred leaders of {} partitions",
                    elections.len()
                )
            }
            MetadataCommand::ReassignPartitions { reassignments } => {
                write!(f, "reassign {} partitions", reassignments.len())
            }
            MetadataCommand::AlterConfigs { resource, configs } => {
                write!(f, "configs of {resource:?} become {configs:?}")
            }
            MetadataCommand::UncleanElect { partitions } => {
                write!(f, "unclean election in {} partitions", partitions.len())
            }
            MetadataCommand::AlterClientQuotas { quotas } => {
                write!(f, "client quotas of {} entities change", quotas.len())
            }
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
    #[error("invalid replica assignment: {0}")]
    InvalidReplicas(String),
    #[error("broker {0} is not registered")]
    UnknownBroker(BrokerId),
    #[error("invalid broker registration: {0}")]
    InvalidRegistration(String),
    #[error("producer ids must be allocated in order")]
    ProducerIdsOutOfOrder,
    #[error("the leader or its epoch is not the partition's")]
    FencedLeaderEpoch,
    #[error("the partition epoch has moved on")]
    InvalidUpdateVersion,
    #[error("broker {0} is fenced and cannot join the in-sync set")]
    IneligibleReplica(BrokerId),
}

impl MetadataError {
    /// The Kafka error code for this failure.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            MetadataError::TopicExists(_) => ErrorCode::TopicAlreadyExists,
            MetadataError::UnknownTopic(_) => ErrorCode::UnknownTopicOrPartition,
            MetadataError::InvalidTopic(..) => ErrorCode::InvalidTopicException,
            MetadataError::InvalidPartitions(_) => ErrorCode::InvalidPartitions,
            MetadataError::InvalidReplicas(_) => ErrorCode::InvalidReplicaAssignment,
            MetadataError::UnknownBroker(_) | MetadataError::InvalidRegistration(_) => {
                ErrorCode::InvalidRequest
            }
            MetadataError::ProducerIdsOutOfOrder => ErrorCode::UnknownServerError,
            MetadataError::FencedLeaderEpoch => ErrorCode::FencedLeaderEpoch,
            MetadataError::InvalidUpdateVersion => ErrorCode::InvalidUpdateVersion,
            MetadataError::IneligibleReplica(_) => ErrorCode::IneligibleReplica,
        }
    }
}
