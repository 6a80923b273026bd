//! Produce (3–13; v12 changes only transactions, v13 names topics by id):
//! each partition's record set goes to its owner shard,
//! untouched (compressed batches pass through); acks 0, 1 and -1.
//!
//! [`handle`] is the one way in (through [`ProduceHandler`], the registry's
//! Produce entry). It works in two steps, so a connection can pipeline its
//! produce requests: `append` sends each owner shard one message with all
//! its partitions' records and returns once all are in their logs (offsets
//! assigned, in the order the connection's requests came); `Appended::finish` then waits, where
//! `log.flush=always` asks it, until they are durable and builds the
//! answer. When nothing waits for a sync the answer is built at once
//! ([`Outcome::Pipelined`]); otherwise it is [`Outcome::Pending`], and the
//! connection starts the next request's append while this one's sync runs,
//! and answers in order.
//!
//! Invariant: no partition is acknowledged (acks != 0) before its records
//! are durable under `log.flush=always`: a failed sync answers that
//! partition with the sync's error, never with its offset. With acks=all
//! on a replicated partition the wait is for the high watermark: every
//! in-sync replica holds the records (`min.insync.replicas` is checked by
//! the owner shard before the append and again while it waits).

use std::rc::Rc;

use bytes::BytesMut;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use sluice_core::metadata::ShardId;
use sluice_core::{ErrorCode, Offset};
use sluice_log::SourceBuffer;
use sluice_shard::message::{AwaitDurable, PartitionAppend, Produce};

use super::frame_records;
use super::owners::ByOwner;
use super::topics::{auto_create, topic_by_id, topic_id};
use super::txns::txn_state_for_version;
use super::{Call, Handler, Outcome};
use crate::kafka::context::Context;

/// The Produce handler: [`handle`], at versions 3–13.
pub struct ProduceHandler;

impl Handler for ProduceHandler {
    const KEY: ApiKey = ApiKey::Produce;
    const NAME: &'static str = "Produce";
    const MIN_VERSION: i16 = 3;
    const MAX_VERSION: i16 = 13;
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

/// False when `records` holds more than one batch (a first batch shorter
/// than the records); a malformed one is judged where it is appended.
fn is_one_batch(records: &[u8]) -> bool {
    sluice_core::batch::peek_batch_size(records).map_or(true, |size| size >= records.len())
}

/// Answers a Produce request: appends its records, then answers at once,
/// or, when some partition's answer waits until its records are durable,
/// with the answer still to come.
pub async fn handle(call: Call<'_>, mut request: ProduceRequest) -> Outcome<ProduceResponse> {
    // The header's client id is a slice of the frame, like the records: it
    // goes first, so the records can be cut out of the frame uncopied.
    let Call {
        ctx,
        header,
        frame,
        version,
        ..
    } = call;
    drop(header);
    let taken = frame_records::take_records(frame, &mut request);
    if taken.copied_bytes > 0 {
        let copied = &ctx.shard.counters.produce_record_bytes_copied;
        copied.set(copied.get() + taken.copied_bytes as u64);
    }
    let appended = append(ctx, request, version, taken.records, taken.source).await;
    if appended.must_wait() {
        let ctx = ctx.clone();
        return Outcome::Pending(Box::pin(async move { appended.finish(&ctx).await }));
    }
    Outcome::Pipelined(appended.finish(ctx).await)
}

/// A produce request whose records are appended, waiting to be answered.
struct Appended {
    acks: i16,
    timeout_ms: u64,
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
    /// The owner shard, the offset to wait for and the leader epoch of
    /// the append, when the answer must wait until the records are durable
    /// (or replicated, with acks=all).
    durable_at: Option<(ShardId, Offset, i32)>,
}

/// Step one: appends every partition's records (one message to each owner
/// shard, all owners at once) and returns once all are appended or
/// refused.
///
/// `records` are the request's records, taken out of it by topic and
/// partition ([`frame_records::take_records`]): pieces of the frame in
/// which the owner shard assigns offsets in place.
async fn append(
    ctx: &Rc<Context>,
    request: ProduceRequest,
    version: i16,
    records: Vec<Vec<Option<BytesMut>>>,
    source: Option<SourceBuffer>,
) -> Appended {
    let acks = request.acks;
    let transactional_id = request
        .transactional_id
        .as_ref()
        .map(|id| id.0.as_str().to_owned());
    let timeout_ms = request.timeout_ms.max(0) as u64;
    let mut topics = Vec::with_capacity(request.topic_data.len());
    let mut by_owner = ByOwner::default();
    // Place in `by_owner` → (topic, partition) in `topics`.
    let mut sent = Vec::new();
    for (topic, records) in request.topic_data.into_iter().zip(records) {
        let requested_id = topic.topic_id;
        let name = if topic.name.0.is_empty() {
            topic_by_id(ctx, topic.topic_id).unwrap_or_default()
        } else {
            topic.name.0.as_str().to_owned()
        };
        // Owned (take_records copied it out of the frame): answered as asked.
        let wire_name = topic.name;
        let mut known = ctx.shard.metadata().topics.contains_key(&name);
        if !known && !name.is_empty() && acks_valid(acks) {
            known = auto_create(ctx, &name).await.is_ok();
        }
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for (partition, records) in topic.partition_data.into_iter().zip(records) {
            let index = partition.index;
            let owner = ctx.shard.metadata().leader_shard(ctx.node_id, &name, index);
            let refused = match (acks_valid(acks), known, owner, records) {
                (false, ..) => partition_error(index, ErrorCode::InvalidRequiredAcks),
                // Only the group coordinator writes its topic (Kafka:
                // "Cannot append to internal topic").
                _ if name == sluice_shard::group::OFFSETS_TOPIC => {
                    partition_error(index, ErrorCode::InvalidTopicException)
                }
                // v13 names topics by id: an id not known is UNKNOWN_TOPIC_ID.
                (_, false, Err(_), _) if name.is_empty() => {
                    partition_error(index, ErrorCode::UnknownTopicId)
                }
                (_, _, Err(code), _) => partition_error(index, code),
                (_, _, _, None) => partition_error(index, ErrorCode::InvalidRecord),
                // Kafka takes exactly one batch per partition (v3 and up).
                (_, _, _, Some(records)) if !is_one_batch(&records) => {
                    partition_error(index, ErrorCode::InvalidRecord).with_error_message(Some(
                        StrBytes::from_static_str(
                            "Produce requests are only allowed to contain exactly one record batch per partition.",
                        ),
                    ))
                }
                (_, _, Ok(owner), Some(records)) => {
                    by_owner.push(
                        owner,
                        PartitionAppend {
                            topic: name.clone(),
                            partition: index,
                            records,
                            source,
                        },
                    );
                    sent.push((topics.len(), partitions.len()));
                    // Replaced by the owner's answer below.
                    partition_error(index, ErrorCode::UnknownServerError)
                }
            };
            partitions.push(AppendedPartition {
                response: refused,
                durable_at: None,
            });
        }
        topics.push(AppendedTopic {
            // v13 answers with the id asked for, known or not.
            id: if requested_id.is_nil() {
                topic_id(ctx, &name)
            } else {
                requested_id
            },
            name,
            wire_name,
            partitions,
        });
    }
    let answers = by_owner
        .call(
            &ctx.shard,
            |appends| Produce {
                acks,
                transactional_id: transactional_id.clone(),
                adds_partitions: version >= 12,
                appends,
            },
            |results| results,
        )
        .await;
    for ((t, p), (owner, answer)) in sent.into_iter().zip(answers) {
        let appended = &mut topics[t].partitions[p];
        // An unreachable owner keeps the UNKNOWN_SERVER_ERROR set above.
        if let Ok(r) = answer {
            let error = txn_state_for_version(r.error, version, 11);
            appended.response = PartitionProduceResponse::default()
                .with_index(appended.response.index)
                .with_error_code(error.code())
                .with_error_message((r.error == ErrorCode::InvalidTxnState).then(|| {
                    StrBytes::from_static_str("Partition was not added to the transaction")
                }))
                .with_base_offset(r.base_offset)
                .with_log_append_time_ms(r.log_append_time_ms)
                .with_log_start_offset(r.log_start_offset);
            appended.durable_at = r.durable_at.map(|offset| (owner, offset, r.leader_epoch));
        }
    }
    Appended {
        acks,
        timeout_ms,
        topics,
    }
}

impl Appended {
    /// True when some partition's answer waits until its records are
    /// durable.
    fn must_wait(&self) -> bool {
        self.topics
            .iter()
            .any(|t| t.partitions.iter().any(|p| p.durable_at.is_some()))
    }

    /// Step two: waits until every partition that must be durable is (one
    /// message to each owner, all at once; the owner syncs its partitions
    /// side by side); the answer, `None` for acks=0, which gets none.
    async fn finish(self, ctx: &Rc<Context>) -> Option<ProduceResponse> {
        if self.acks == 0 {
            return None;
        }
        let mut by_owner = ByOwner::default();
        let mut waiting = Vec::new();
        for (t, topic) in self.topics.iter().enumerate() {
            for (p, partition) in topic.partitions.iter().enumerate() {
                if let Some((owner, offset, epoch)) = partition.durable_at {
                    by_owner.push(
                        owner,
                        (topic.name.clone(), partition.response.index, offset, epoch),
                    );
                    waiting.push((t, p));
                }
            }
        }
        let synced = by_owner
            .call(
                &ctx.shard,
                |partitions| AwaitDurable {
                    partitions,
                    acks: self.acks,
                    timeout_ms: self.timeout_ms,
                },
                |errors| errors,
            )
            .await;
        let mut topics = self.topics;
        for ((t, p), (_, result)) in waiting.into_iter().zip(synced) {
            let partition = &mut topics[t].partitions[p];
            let error = result.unwrap_or(ErrorCode::UnknownServerError);
            if error != ErrorCode::None {
                partition.response = partition_error(partition.response.index, error);
            }
        }
        let topics = topics
            .into_iter()
            .map(|topic| {
                TopicProduceResponse::default()
                    .with_topic_id(topic.id)
                    .with_name(topic.wire_name)
                    .with_partition_responses(
                        topic.partitions.into_iter().map(|p| p.response).collect(),
                    )
            })
            .collect();
        Some(ProduceResponse::default().with_responses(topics))
    }
}

fn acks_valid(acks: i16) -> bool {
    matches!(acks, -1..=1)
}
