//! ReadShareGroupState (84) and WriteShareGroupState (85), version 0: the
//! share coordinator's side (KIP-932). A share partition led by another
//! broker keeps its durable state in the `__share_group_state` partition
//! this broker leads, and reads and writes it here.
//!
//! Owns: routing each partition's state to the shard that leads its state
//! partition (`abs(hash("group:topicId:partition")) % partitions`), and
//! the state record's value: sluice's ShareSnapshot as the writer encoded
//! it, from the tagged field [`STATE_VALUE_TAG`] (empty: a tombstone), or
//! built from the standard fields when a writer sent none.
//!
//! Invariants: a write is answered without error only once its record is
//! synced on every in-sync replica of the state partition, and refused
//! with FENCED_LEADER_EPOCH when it comes from an older leader epoch of
//! the share partition than the state stored; a broker that does not lead
//! that partition answers NOT_COORDINATOR. `__share_group_state` is
//! created when missing, as for the share group APIs.

use bytes::Bytes;
use kafka_protocol::messages::{
    read_share_group_state_response, write_share_group_state_response, ApiKey,
    ReadShareGroupStateRequest, ReadShareGroupStateResponse, WriteShareGroupStateRequest,
    WriteShareGroupStateResponse,
};
use kafka_protocol::protocol::StrBytes;
use sluice_core::share::state::{
    ShareKey, ShareSnapshot, StateBatch, SHARE_STATE_TOPIC, STATE_VALUE_TAG,
};
use sluice_core::ErrorCode;
use sluice_shard::message::{ReadShareState, WriteShareState};

use super::shares::ensure_state_topic;
use super::{Call, Handler, Outcome};
use crate::kafka::context::Context;

/// The ReadShareGroupState handler.
pub struct ReadShareGroupStateHandler;

impl Handler for ReadShareGroupStateHandler {
    const KEY: ApiKey = ApiKey::ReadShareGroupState;
    const NAME: &'static str = "ReadShareGroupState";
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 0;
    type Request = ReadShareGroupStateRequest;
    type Response = ReadShareGroupStateResponse;

    async fn handle(call: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
        let ctx = call.ctx;
        let group_id = request.group_id.as_str();
        ensure_state_topic(ctx, group_id).await;
        let mut results = Vec::with_capacity(request.topics.len());
        for topic in &request.topics {
            let mut partitions = Vec::with_capacity(topic.partitions.len());
            for p in &topic.partitions {
                let key = share_key(group_id, topic.topic_id, p.partition);
                let mut result = read_share_group_state_response::PartitionResult::default()
                    .with_partition(p.partition)
                    .with_start_offset(-1)
                    .with_state_epoch(0);
                match read(ctx, &key).await {
                    Ok(value) => {
                        if let Some(value) = value {
                            result.unknown_tagged_fields.insert(STATE_VALUE_TAG, value);
                        }
                    }
                    Err(e) => {
                        result = result
                            .with_error_code(e.code())
                            .with_error_message(Some(StrBytes::from_string(e.to_string())));
                    }
                }
                partitions.push(result);
            }
            results.push(
                read_share_group_state_response::ReadStateResult::default()
                    .with_topic_id(topic.topic_id)
                    .with_partitions(partitions),
            );
        }
        Outcome::Answer(ReadShareGroupStateResponse::default().with_results(results))
    }
}

/// The WriteShareGroupState handler.
pub struct WriteShareGroupStateHandler;

impl Handler for WriteShareGroupStateHandler {
    const KEY: ApiKey = ApiKey::WriteShareGroupState;
    const NAME: &'static str = "WriteShareGroupState";
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 0;
    type Request = WriteShareGroupStateRequest;
    type Response = WriteShareGroupStateResponse;

    async fn handle(call: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
        let ctx = call.ctx;
        let group_id = request.group_id.as_str();
        ensure_state_topic(ctx, group_id).await;
        let now = ctx.shard.env().now_ms();
        let mut results = Vec::with_capacity(request.topics.len());
        for topic in &request.topics {
            let mut partitions = Vec::with_capacity(topic.partitions.len());
            for p in &topic.partitions {
                let key = share_key(group_id, topic.topic_id, p.partition);
                let value = match p.unknown_tagged_fields.get(&STATE_VALUE_TAG) {
                    Some(v) if v.is_empty() => None,
                    Some(v) => Some(v.clone()),
                    None => Some(Bytes::from(
                        ShareSnapshot {
                            snapshot_epoch: 0,
                            state_epoch: p.state_epoch,
                            leader_epoch: p.leader_epoch,
                            start_offset: p.start_offset,
                            create_timestamp_ms: now,
                            write_timestamp_ms: now,
                            batches: p
                                .state_batches
                                .iter()
                                .map(|b| StateBatch {
                                    first_offset: b.first_offset,
                                    last_offset: b.last_offset,
                                    delivery_state: b.delivery_state,
                                    delivery_count: b.delivery_count,
                                })
                                .collect(),
                        }
                        .encode(),
                    )),
                };
                let mut result = write_share_group_state_response::PartitionResult::default()
                    .with_partition(p.partition);
                if let Err(e) = write(ctx, &key, value).await {
                    result = result
                        .with_error_code(e.code())
                        .with_error_message(Some(StrBytes::from_string(e.to_string())));
                }
                partitions.push(result);
            }
            results.push(
                write_share_group_state_response::WriteStateResult::default()
                    .with_topic_id(topic.topic_id)
                    .with_partitions(partitions),
            );
        }
        Outcome::Answer(WriteShareGroupStateResponse::default().with_results(results))
    }
}

fn share_key(group_id: &str, topic_id: uuid::Uuid, partition: i32) -> ShareKey {
    ShareKey {
        group_id: group_id.to_owned(),
        topic_id: topic_id.into_bytes(),
        partition,
    }
}

/// The shard here leading `key`'s state partition, and that partition.
fn home(ctx: &Context, key: &ShareKey) -> Result<(u32, i32), ErrorCode> {
    let metadata = ctx.shard.metadata();
    let partition = key
        .state_partition_in(&metadata)
        .ok_or(ErrorCode::CoordinatorNotAvailable)?;
    let shard = metadata
        .leader_shard(ctx.node_id, SHARE_STATE_TOPIC, partition)
        .map_err(|_| ErrorCode::NotCoordinator)?;
    Ok((shard, partition))
}

async fn read(ctx: &Context, key: &ShareKey) -> Result<Option<Bytes>, ErrorCode> {
    let (shard, partition) = home(ctx, key)?;
    let read = ReadShareState {
        partition,
        key: Bytes::from(key.encode()),
    };
    ctx.shard
        .call(shard, read)
        .await
        .map_err(|_| ErrorCode::CoordinatorNotAvailable)?
}

async fn write(ctx: &Context, key: &ShareKey, value: Option<Bytes>) -> Result<(), ErrorCode> {
    let (shard, partition) = home(ctx, key)?;
    let write = WriteShareState {
        partition,
        key: Bytes::from(key.encode()),
        value,
    };
    ctx.shard
        .call(shard, write)
        .await
        .map_err(|_| ErrorCode::CoordinatorNotAvailable)?
}
