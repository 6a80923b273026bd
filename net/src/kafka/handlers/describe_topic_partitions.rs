//! DescribeTopicPartitions (0): topics and their partitions with KIP-966's
//! eligible leader replicas (`kafka-topics.sh --describe` asks this of a
//! Kafka 3.8+ broker, and prints `Elr:` and `LastKnownElr:` from it).
//!
//! Topics are answered in name order (all of them when none is named),
//! with at most `response_partition_limit` partitions in one answer; the
//! rest from `next_cursor`, where the client asks again, as Kafka pages
//! them. A named topic that does not exist is UNKNOWN_TOPIC_OR_PARTITION.
//! The last known eligible leaders (what the eligible set held when it
//! emptied) are not kept here: the list is empty.

use std::collections::BTreeSet;

use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_core::metadata::{PartitionMeta, NO_LEADER};
use sluice_core::ErrorCode;
use uuid::Uuid;

use super::metadata::TOPIC_AUTHORIZED_OPERATIONS;
use super::{Call, Handler, Outcome};
use crate::kafka::context::Context;

/// The DescribeTopicPartitions handler: [`handle`], at version 0.
pub struct DescribeTopicPartitionsHandler;

impl Handler for DescribeTopicPartitionsHandler {
    const KEY: ApiKey = ApiKey::DescribeTopicPartitions;
    const NAME: &'static str = "DescribeTopicPartitions";
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 0;
    type Request = DescribeTopicPartitionsRequest;
    type Response = DescribeTopicPartitionsResponse;

    async fn handle(call: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
        Outcome::Answer(handle(call.ctx, &request))
    }
}

/// Answers a DescribeTopicPartitions request.
pub fn handle(
    ctx: &Context,
    request: &DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let metadata = ctx.shard.metadata();
    let names: BTreeSet<String> = if request.topics.is_empty() {
        metadata.topics.keys().cloned().collect()
    } else {
        request
            .topics
            .iter()
            .map(|t| t.name.0.as_str().to_owned())
            .collect()
    };
    let (start_topic, start_partition) = match &request.cursor {
        Some(c) => (
            Some(c.topic_name.0.as_str().to_owned()),
            c.partition_index.max(0),
        ),
        None => (None, 0),
    };
    let mut budget = request.response_partition_limit.max(1) as usize;
    let fenced = |b: &i32| metadata.brokers.get(b).is_none_or(|m| m.fenced);
    let mut topics = Vec::new();
    let mut next_cursor = None;
    for name in names
        .iter()
        .filter(|n| start_topic.as_ref().is_none_or(|s| *n >= s))
    {
        let topic_name = TopicName(StrBytes::from_string(name.clone()));
        let Some(meta) = metadata.topics.get(name) else {
            topics.push(
                DescribeTopicPartitionsResponseTopic::default()
                    .with_error_code(ErrorCode::UnknownTopicOrPartition.code())
                    .with_name(Some(topic_name))
                    .with_topic_id(Uuid::nil()),
            );
            continue;
        };
        let first = if start_topic.as_ref() == Some(name) {
            start_partition as usize
        } else {
            0
        };
        let mut partitions = Vec::new();
        for (i, p) in meta.partitions.iter().enumerate().skip(first) {
            if budget == 0 {
                next_cursor = Some(
                    Cursor::default()
                        .with_topic_name(topic_name.clone())
                        .with_partition_index(i as i32),
                );
                break;
            }
            budget -= 1;
            partitions.push(partition(i as i32, p, &fenced));
        }
        topics.push(
            DescribeTopicPartitionsResponseTopic::default()
                .with_name(Some(topic_name))
                .with_topic_id(Uuid::from_bytes(meta.id))
                .with_is_internal(sluice_core::types::is_internal_topic(name))
                .with_partitions(partitions)
                .with_topic_authorized_operations(TOPIC_AUTHORIZED_OPERATIONS),
        );
        if next_cursor.is_some() {
            break;
        }
        if budget == 0 {
            // The next topic starts the next page, if there is one.
            if let Some(next) = names
                .range::<String, _>((
                    std::ops::Bound::Excluded(name.clone()),
                    std::ops::Bound::Unbounded,
                ))
                .next()
            {
                next_cursor = Some(
                    Cursor::default()
                        .with_topic_name(TopicName(StrBytes::from_string(next.clone())))
                        .with_partition_index(0),
                );
            }
            break;
        }
    }
    DescribeTopicPartitionsResponse::default()
        .with_topics(topics)
        .with_next_cursor(next_cursor)
}

fn partition(
    index: i32,
    p: &PartitionMeta,
    fenced: &dyn Fn(&i32) -> bool,
) -> DescribeTopicPartitionsResponsePartition {
    let ids = |list: &mut dyn Iterator<Item = i32>| list.map(BrokerId).collect::<Vec<_>>();
    let error = if p.leader == NO_LEADER {
        ErrorCode::LeaderNotAvailable
    } else {
        ErrorCode::None
    };
    DescribeTopicPartitionsResponsePartition::default()
        .with_error_code(error.code())
        .with_partition_index(index)
        .with_leader_id(BrokerId(p.leader))
        .with_leader_epoch(p.leader_epoch)
        .with_replica_nodes(ids(&mut p.replicas.iter().map(|r| r.broker)))
        .with_isr_nodes(ids(&mut p.isr.iter().copied()))
        .with_eligible_leader_replicas(Some(ids(&mut p.elr.iter().copied())))
        .with_last_known_elr(Some(Vec::new()))
        .with_offline_replicas(ids(&mut p
            .replicas
            .iter()
            .map(|r| r.broker)
            .filter(|b| fenced(b))))
}
