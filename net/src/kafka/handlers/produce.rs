//! Produce (3–11): each partition's record set goes to its owner shard,
//! untouched (compressed batches pass through); acks 0, 1 and -1.
//!
//! [`handle`] is the one way in (through [`ProduceHandler`], the registry's
//! Produce entry). It works in two steps, so a connection can pipeline its
//! produce requests: `append` appends every partition's records and returns
//! once all are in their logs (offsets assigned, in the order the
//! connection's requests came); `Appended::finish` then waits, where
//! `log.flush=always` asks it, until they are durable and builds the
//! answer. When nothing waits for a sync the answer is built at once
//! ([`Outcome::Pipelined`]); otherwise it is [`Outcome::Pending`], and the
//! connection starts the next request's append while this one's sync runs,
//! and answers in order.
//!
//! Invariant: no partition is acknowledged (acks != 0) before its records
//! are durable under `log.flush=always`: a failed sync answers that
//! partition with the sync's error, never with its offset.

use std::rc::Rc;

use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use sluice_core::metadata::ShardId;
use sluice_core::{ErrorCode, Offset};
use sluice_shard::{ShardRequest, ShardResponse};

use super::topics::{auto_create, topic_by_id, topic_id};
use super::{Call, Handler, Outcome};
use crate::kafka::context::Context;

/// The Produce handler: [`handle`], at versions 3–11.
pub struct ProduceHandler;

impl Handler for ProduceHandler {
    const KEY: ApiKey = ApiKey::Produce;
    const NAME: &'static str = "Produce";
    const MIN_VERSION: i16 = 3;
    const MAX_VERSION: i16 = 11;
    type Request = ProduceRequest;
    type Response = ProduceResponse;

    async fn handle(call: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
        handle(call, request).await
    }
}

fn partition_error(index: i32, error: ErrorCode) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(error.code())
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
}

/// Answers a Produce request: appends its records, then answers at once,
/// or, when some partition's answer waits until its records are durable,
/// with the answer still to come.
pub async fn handle(call: Call<'_>, request: ProduceRequest) -> Outcome<ProduceResponse> {
    // The header's client id is a slice of the frame, like the records: the
    // owner shard takes the records without a copy only when they are the
    // frame's last users.
    let Call { ctx, header, .. } = call;
    drop(header);
    let appended = append(ctx, request).await;
    if appended.must_wait() {
        let ctx = ctx.clone();
        return Outcome::Pending(Box::pin(async move { appended.finish(&ctx).await }));
    }
    Outcome::Pipelined(appended.finish(ctx).await)
}

/// A produce request whose records are appended, waiting to be answered.
struct Appended {
    acks: i16,
    topics: Vec<AppendedTopic>,
}

struct AppendedTopic {
    name: String,
    wire_name: TopicName,
    id: uuid::Uuid,
    partitions: Vec<AppendedPartition>,
}

struct AppendedPartition {
    response: PartitionProduceResponse,
    /// The owner shard and the offset to wait for, when the answer must
    /// wait until the records are durable.
    durable_at: Option<(ShardId, Offset)>,
}

/// Step one: appends every partition's records (the partitions of one
/// request in parallel) and returns once all are appended or refused.
///
/// The records are slices of the request frame; the owner shard assigns
/// offsets in place, without a copy, when nothing else holds the frame.
/// So the topic name, also a slice of it, is replaced by an owned copy
/// before the records go ([`handle`] drops the request header likewise).
async fn append(ctx: &Rc<Context>, request: ProduceRequest) -> Appended {
    let acks = request.acks;
    let mut topics = Vec::with_capacity(request.topic_data.len());
    for topic in request.topic_data {
        let name = if topic.name.0.is_empty() {
            topic_by_id(ctx, topic.topic_id).unwrap_or_default()
        } else {
            topic.name.0.as_str().to_owned()
        };
        let wire_name = if topic.name.0.is_empty() {
            TopicName::default()
        } else {
            TopicName(StrBytes::from_string(name.clone()))
        };
        drop(topic.name);
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
                        (index, owner, shard.call(owner, request).await)
                    }))
                }
            };
            tasks.push(task);
        }
        let mut partitions = Vec::with_capacity(tasks.len());
        for task in tasks {
            partitions.push(match task {
                Err(response) => AppendedPartition {
                    response,
                    durable_at: None,
                },
                Ok(task) => match task.await {
                    (index, owner, ShardResponse::Produce(r)) => AppendedPartition {
                        response: PartitionProduceResponse::default()
                            .with_index(index)
                            .with_error_code(r.error.code())
                            .with_base_offset(r.base_offset)
                            .with_log_append_time_ms(-1)
                            .with_log_start_offset(r.log_start_offset),
                        durable_at: r.durable_at.map(|offset| (owner, offset)),
                    },
                    (index, ..) => AppendedPartition {
                        response: partition_error(index, ErrorCode::UnknownServerError),
                        durable_at: None,
                    },
                },
            });
        }
        topics.push(AppendedTopic {
            id: topic_id(ctx, &name),
            name,
            wire_name,
            partitions,
        });
    }
    Appended { acks, topics }
}

impl Appended {
    /// True when some partition's answer waits until its records are
    /// durable.
    fn must_wait(&self) -> bool {
        self.topics
            .iter()
            .any(|t| t.partitions.iter().any(|p| p.durable_at.is_some()))
    }

    /// Step two: waits until every partition that must be durable is (the
    /// syncs of all partitions in parallel); the answer, `None` for acks=0,
    /// which gets none.
    async fn finish(self, ctx: &Rc<Context>) -> Option<ProduceResponse> {
        if self.acks == 0 {
            return None;
        }
        let mut topics = Vec::with_capacity(self.topics.len());
        for topic in self.topics {
            let waits: Vec<_> = topic
                .partitions
                .iter()
                .map(|p| {
                    p.durable_at.map(|(owner, offset)| {
                        let shard = ctx.shard.clone();
                        let request = ShardRequest::AwaitDurable {
                            topic: topic.name.clone(),
                            partition: p.response.index,
                            offset,
                        };
                        glommio::spawn_local(async move { shard.call(owner, request).await })
                    })
                })
                .collect();
            let mut responses = Vec::with_capacity(waits.len());
            for (p, wait) in topic.partitions.into_iter().zip(waits) {
                let Some(wait) = wait else {
                    responses.push(p.response);
                    continue;
                };
                responses.push(match wait.await {
                    ShardResponse::Durable(ErrorCode::None) => p.response,
                    ShardResponse::Durable(error) => partition_error(p.response.index, error),
                    _ => partition_error(p.response.index, ErrorCode::UnknownServerError),
                });
            }
            topics.push(
                TopicProduceResponse::default()
                    .with_topic_id(topic.id)
                    .with_name(topic.wire_name)
                    .with_partition_responses(responses),
            );
        }
        Some(ProduceResponse::default().with_responses(topics))
    }
}

fn acks_valid(acks: i16) -> bool {
    matches!(acks, -1..=1)
}
