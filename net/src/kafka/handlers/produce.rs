//! Produce (3–11): each partition's record set goes to its owner shard,
//! untouched (compressed batches pass through); acks 0, 1 and -1.

use std::rc::Rc;

use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use sluice_core::ErrorCode;
use sluice_shard::{ShardRequest, ShardResponse};

use super::topics::{auto_create, topic_by_id, topic_id};
use crate::kafka::context::Context;

fn partition_error(index: i32, error: ErrorCode) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(error.code())
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
}

/// Answers a Produce request; `None` for acks=0, which gets no response.
pub async fn handle(ctx: &Rc<Context>, request: ProduceRequest) -> Option<ProduceResponse> {
    let acks = request.acks;
    let mut topics = Vec::with_capacity(request.topic_data.len());
    for topic in request.topic_data {
        let name = if topic.name.0.is_empty() {
            topic_by_id(ctx, topic.topic_id).unwrap_or_default()
        } else {
            topic.name.0.as_str().to_owned()
        };
        let mut known = ctx.shard.metadata().topics.contains_key(&name);
        if !known && !name.is_empty() && acks_valid(acks) {
            known = auto_create(ctx, &name).await.is_ok();
        }
        let mut tasks = Vec::with_capacity(topic.partition_data.len());
        for partition in topic.partition_data {
            let index = partition.index;
            let owner = ctx.shard.metadata().owner(&name, index);
            let task = match (acks_valid(acks), known, owner, partition.records) {
                (false, ..) => Err(partition_error(index, ErrorCode::InvalidRequiredAcks)),
                // Only the group coordinator writes its topic (Kafka:
                // "Cannot append to internal topic").
                _ if name == sluice_shard::group::OFFSETS_TOPIC => {
                    Err(partition_error(index, ErrorCode::InvalidTopicException))
                }
                (_, _, None, _) => Err(partition_error(index, ErrorCode::UnknownTopicOrPartition)),
                (_, _, _, None) => Err(partition_error(index, ErrorCode::InvalidRecord)),
                (_, _, Some(owner), Some(records)) => {
                    let shard = ctx.shard.clone();
                    let request = ShardRequest::Produce {
                        topic: name.clone(),
                        partition: index,
                        records,
                        acks,
                    };
                    Ok(glommio::spawn_local(async move {
                        (index, shard.call(owner, request).await)
                    }))
                }
            };
            tasks.push(task);
        }
        let mut responses = Vec::with_capacity(tasks.len());
        for task in tasks {
            responses.push(match task {
                Err(response) => response,
                Ok(task) => match task.await {
                    (index, ShardResponse::Produce(r)) => PartitionProduceResponse::default()
                        .with_index(index)
                        .with_error_code(r.error.code())
                        .with_base_offset(r.base_offset)
                        .with_log_append_time_ms(-1)
                        .with_log_start_offset(r.log_start_offset),
                    (index, _) => partition_error(index, ErrorCode::UnknownServerError),
                },
            });
        }
        topics.push(
            TopicProduceResponse::default()
                .with_topic_id(topic_id(ctx, &name))
                .with_name(topic.name)
                .with_partition_responses(responses),
        );
    }
    if acks == 0 {
        return None;
    }
    Some(ProduceResponse::default().with_responses(topics))
}

fn acks_valid(acks: i16) -> bool {
    matches!(acks, -1..=1)
}
