//! Helpers shared by the group APIs: finding a group's coordinator,
//! sending it work, and checking the partitions of an offset commit.
//!
//! A group is coordinated by the shard that owns its partition of
//! `__consumer_offsets` (Kafka's `abs(hash(group)) % partitions`). The topic
//! is created the first time any group is looked up, as Kafka does, with
//! `offsets.topic.num.partitions` partitions spread over the shards, and
//! compacted rather than deleted by time.

use sluice_core::group::coordinator_partition;
use sluice_core::group::records::CommittedOffset;
use sluice_core::metadata::{BrokerId, ShardId, NO_LEADER};
use sluice_core::{ErrorCode, PartitionId};
use sluice_shard::group::OFFSETS_TOPIC;
use sluice_shard::message::Group;
use sluice_shard::{now_ms, GroupRequest, GroupResponse, Proposal};

use super::topics::propose;
use crate::kafka::context::Context;

/// Where `group_id` is coordinated: the `__consumer_offsets` partition
/// and its leader (a broker, and the shard there when it is this broker).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Coordinator {
    pub partition: PartitionId,
    /// The leading broker, or [`NO_LEADER`] while it has none.
    pub broker: BrokerId,
    /// The shard here, when this broker leads it.
    pub shard: Option<ShardId>,
}

/// The coordinator of `group_id`, creating the offsets topic when it does
/// not exist yet.
pub async fn coordinator_of(ctx: &Context, group_id: &str) -> Result<Coordinator, ErrorCode> {
    let group = &ctx.shard.config.group;
    let spec = InternalTopic {
        name: OFFSETS_TOPIC,
        partitions: group.offsets_topic_num_partitions,
        replication_factor: group.offsets_topic_replication_factor,
        segment_bytes: group.offsets_topic_segment_bytes,
    };
    internal_coordinator(ctx, &spec, group_id).await
}

/// A compacted internal topic a coordinator keeps its state in, as its
/// first lookup creates it.
pub struct InternalTopic {
    pub name: &'static str,
    pub partitions: i32,
    pub replication_factor: i16,
    pub segment_bytes: u64,
}

/// Where `key` is coordinated in internal topic `spec` (Kafka's
/// `abs(hash(key)) % partitions`), creating the topic when it does not
/// exist yet.
pub async fn internal_coordinator(
    ctx: &Context,
    spec: &InternalTopic,
    key: &str,
) -> Result<Coordinator, ErrorCode> {
    if let Some(found) = locate(ctx, spec.name, key) {
        return Ok(found);
    }
    // Kafka refuses to create it with fewer live brokers than its
    // replication factor; a cluster smaller than that (one node, by
    // default) gets one replica per live broker instead.
    let live = ctx.shard.metadata().live_brokers().count().max(1);
    let replication_factor = spec
        .replication_factor
        .max(1)
        .min(i16::try_from(live).unwrap_or(i16::MAX));
    let proposal = Proposal::CreateTopic {
        name: spec.name.to_owned(),
        partitions: spec.partitions.max(1),
        replication_factor,
        assignments: Vec::new(),
        configs: vec![
            ("cleanup.policy".into(), "compact".into()),
            ("retention.ms".into(), "-1".into()),
            ("retention.bytes".into(), "-1".into()),
            ("segment.bytes".into(), spec.segment_bytes.to_string()),
        ],
        validate_only: false,
    };
    match propose(ctx, proposal).await {
        Ok(_) | Err((ErrorCode::TopicAlreadyExists, _)) => {}
        Err((code, message)) => {
            tracing::warn!(topic = spec.name, %code, message, "creating an internal topic failed");
            return Err(ErrorCode::CoordinatorNotAvailable);
        }
    }
    locate(ctx, spec.name, key).ok_or(ErrorCode::CoordinatorNotAvailable)
}

fn locate(ctx: &Context, topic: &str, key: &str) -> Option<Coordinator> {
    let metadata = ctx.shard.metadata();
    let topic = metadata.topics.get(topic)?;
    let partition = coordinator_partition(key, topic.partitions.len() as i32);
    let meta = topic.partitions.get(partition as usize)?;
    let shard = (meta.leader == ctx.node_id)
        .then(|| meta.shard_on(ctx.node_id))
        .flatten();
    Some(Coordinator {
        partition,
        broker: meta.leader,
        shard,
    })
}

/// Runs `request` on `group_id`'s coordinator. Errors finding it come back
/// as `GroupResponse::Error`: NOT_COORDINATOR when another broker
/// coordinates it, COORDINATOR_NOT_AVAILABLE while nobody does.
pub async fn call(ctx: &Context, group_id: &str, request: GroupRequest) -> GroupResponse {
    let (shard, partition) = match coordinator_of(ctx, group_id).await {
        Ok(Coordinator {
            shard: Some(shard),
            partition,
            ..
        }) => (shard, partition),
        Ok(Coordinator { broker, .. }) if broker == NO_LEADER => {
            return GroupResponse::Error(ErrorCode::CoordinatorNotAvailable)
        }
        Ok(_) => return GroupResponse::Error(ErrorCode::NotCoordinator),
        Err(e) => return GroupResponse::Error(e),
    };
    ctx.shard
        .call(shard, Group { partition, request })
        .await
        .unwrap_or(GroupResponse::Error(ErrorCode::CoordinatorNotAvailable))
}

/// Partitions (topic id, partition) grouped by topic, topics in the order
/// they first appear: the shape of every KIP-848 and KIP-932 assignment.
pub fn by_topic(
    partitions: impl IntoIterator<Item = ([u8; 16], i32)>,
) -> Vec<(uuid::Uuid, Vec<i32>)> {
    let mut out: Vec<(uuid::Uuid, Vec<i32>)> = Vec::new();
    for (id, p) in partitions {
        let id = uuid::Uuid::from_bytes(id);
        match out.iter_mut().find(|(t, _)| *t == id) {
            Some((_, ps)) => ps.push(p),
            None => out.push((id, vec![p])),
        }
    }
    out
}

/// Text of an optional protocol string.
pub fn opt(s: &Option<kafka_protocol::protocol::StrBytes>) -> Option<String> {
    s.as_ref().map(|s| s.as_str().to_owned())
}

/// One partition of an offset commit as OffsetCommit and TxnOffsetCommit
/// carry it: its index, the offset, its leader epoch (-1 when the request
/// version has none) and its metadata.
pub type PartitionCommit<'a> = (PartitionId, i64, i32, &'a str);

/// The offsets of a commit, by topic, each checked as Kafka checks it
/// before the coordinator sees it: UNKNOWN_TOPIC_OR_PARTITION for a
/// partition that does not exist, OFFSET_METADATA_TOO_LARGE for metadata
/// over `offset.metadata.max.bytes`. (topic, partition, offset, error).
pub fn checked_commits<'a>(
    ctx: &Context,
    topics: impl IntoIterator<Item = (&'a str, Vec<PartitionCommit<'a>>)>,
) -> Vec<(String, PartitionId, CommittedOffset, ErrorCode)> {
    let max_metadata = ctx.shard.config.group.offset_metadata_max_bytes;
    let now = now_ms();
    let metadata = ctx.shard.metadata();
    let mut offsets = Vec::new();
    for (name, partitions) in topics {
        let count = metadata.topics.get(name).map_or(0, |t| t.partitions.len());
        for (index, offset, leader_epoch, text) in partitions {
            let error = if index < 0 || index as usize >= count {
                ErrorCode::UnknownTopicOrPartition
            } else if text.len() > max_metadata {
                ErrorCode::OffsetMetadataTooLarge
            } else {
                ErrorCode::None
            };
            let value = CommittedOffset {
                offset,
                leader_epoch,
                metadata: text.to_owned(),
                commit_timestamp_ms: now,
            };
            offsets.push((name.to_owned(), index, value, error));
        }
    }
    offsets
}
