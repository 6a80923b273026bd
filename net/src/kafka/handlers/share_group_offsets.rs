//! AlterShareGroupOffsets (0) and DeleteShareGroupOffsets (0):
//! `kafka-share-groups.sh --reset-offsets` and `--delete-offsets`. Both
//! need a share group without members (NON_EMPTY_GROUP otherwise, asked of
//! its coordinator); Alter makes the group if it does not exist, as Kafka
//! does. Each partition's share state is then reset on the owner shard of
//! its leader: a new start offset (nothing in flight, the records from
//! there on delivered as new), or the state deleted (the partition starts
//! again from `share.auto.offset.reset`). Errors per partition (Alter) or
//! per topic (Delete) as Kafka words them.

use kafka_protocol::messages::alter_share_group_offsets_response::{
    AlterShareGroupOffsetsResponsePartition, AlterShareGroupOffsetsResponseTopic,
};
use kafka_protocol::messages::delete_share_group_offsets_response::DeleteShareGroupOffsetsResponseTopic;
use kafka_protocol::messages::{
    AlterShareGroupOffsetsRequest, AlterShareGroupOffsetsResponse, ApiKey,
    DeleteShareGroupOffsetsRequest, DeleteShareGroupOffsetsResponse,
};
use kafka_protocol::protocol::StrBytes;
use sluice_core::{ErrorCode, Offset};
use sluice_shard::message::ResetSharePartition;
use sluice_shard::{GroupRequest, GroupResponse};
use uuid::Uuid;

use super::groups::call;
use super::shares::ensure_state_topic;
use super::{Call, Handler, Outcome};
use crate::kafka::context::Context;

/// The AlterShareGroupOffsets handler, at version 0.
pub struct AlterShareGroupOffsetsHandler;

impl Handler for AlterShareGroupOffsetsHandler {
    const KEY: ApiKey = ApiKey::AlterShareGroupOffsets;
    const NAME: &'static str = "AlterShareGroupOffsets";
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 0;
    type Request = AlterShareGroupOffsetsRequest;
    type Response = AlterShareGroupOffsetsResponse;

    async fn handle(call: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
        Outcome::Answer(alter(call.ctx, request).await)
    }
}

/// The DeleteShareGroupOffsets handler, at version 0.
pub struct DeleteShareGroupOffsetsHandler;

impl Handler for DeleteShareGroupOffsetsHandler {
    const KEY: ApiKey = ApiKey::DeleteShareGroupOffsets;
    const NAME: &'static str = "DeleteShareGroupOffsets";
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 0;
    type Request = DeleteShareGroupOffsetsRequest;
    type Response = DeleteShareGroupOffsetsResponse;

    async fn handle(call: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
        Outcome::Answer(delete(call.ctx, request).await)
    }
}

/// Kafka's message for an unknown topic or partition.
const UNKNOWN: &str = "This server does not host this topic-partition.";

/// The group's coordinator's check: `Err` with the whole request's error.
async fn check_group(ctx: &Context, group_id: &str, create: bool) -> Result<(), ErrorCode> {
    let ask = GroupRequest::ShareOffsetsCheck {
        group_id: group_id.to_owned(),
        create,
    };
    match call(ctx, group_id, ask).await {
        GroupResponse::Error(ErrorCode::None) => Ok(()),
        GroupResponse::Error(e) => Err(e),
        _ => Err(ErrorCode::UnknownServerError),
    }
}

/// Resets one partition's share state on its leader's owner shard:
/// whether the group had state for it.
async fn reset(
    ctx: &Context,
    group_id: &str,
    topic: &str,
    partition: i32,
    start: Option<Offset>,
) -> Result<bool, ErrorCode> {
    let (owner, topic_id) = {
        let metadata = ctx.shard.metadata();
        let owner = metadata.leader_shard(ctx.node_id, topic, partition)?;
        let id = metadata
            .topics
            .get(topic)
            .ok_or(ErrorCode::UnknownTopicOrPartition)?
            .id;
        (owner, id)
    };
    let request = ResetSharePartition {
        group_id: group_id.to_owned(),
        topic: topic.to_owned(),
        topic_id,
        partition,
        start,
    };
    ctx.shard
        .call(owner, request)
        .await
        .map_err(|_| ErrorCode::CoordinatorNotAvailable)?
}

/// Topic `name`'s id and partition count (nil and 0 when unknown).
fn topic_and_count(ctx: &Context, name: &str) -> (Uuid, i32) {
    ctx.shard
        .metadata()
        .topics
        .get(name)
        .map_or((Uuid::nil(), 0), |t| {
            (Uuid::from_bytes(t.id), t.partitions.len() as i32)
        })
}

fn message(error: ErrorCode) -> Option<StrBytes> {
    (error != ErrorCode::None).then(|| {
        StrBytes::from_string(match error {
            ErrorCode::UnknownTopicOrPartition => UNKNOWN.to_owned(),
            other => format!("{other}"),
        })
    })
}

/// Answers an AlterShareGroupOffsets request.
pub async fn alter(
    ctx: &Context,
    request: AlterShareGroupOffsetsRequest,
) -> AlterShareGroupOffsetsResponse {
    let group_id = request.group_id.0.as_str().to_owned();
    if let Err(e) = check_group(ctx, &group_id, true).await {
        return AlterShareGroupOffsetsResponse::default()
            .with_error_code(e.code())
            .with_error_message(message(e));
    }
    ensure_state_topic(ctx, &group_id).await;
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in &request.topics {
        let name = topic.topic_name.0.as_str();
        let (id, count) = topic_and_count(ctx, name);
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in &topic.partitions {
            let error = if p.partition_index < 0 || p.partition_index >= count {
                ErrorCode::UnknownTopicOrPartition
            } else {
                match reset(
                    ctx,
                    &group_id,
                    name,
                    p.partition_index,
                    Some(p.start_offset),
                )
                .await
                {
                    Ok(_) => ErrorCode::None,
                    Err(e) => e,
                }
            };
            partitions.push(
                AlterShareGroupOffsetsResponsePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(error.code())
                    .with_error_message(message(error)),
            );
        }
        topics.push(
            AlterShareGroupOffsetsResponseTopic::default()
                .with_topic_name(topic.topic_name.clone())
                .with_topic_id(id)
                .with_partitions(partitions),
        );
    }
    AlterShareGroupOffsetsResponse::default().with_responses(topics)
}

/// Answers a DeleteShareGroupOffsets request.
pub async fn delete(
    ctx: &Context,
    request: DeleteShareGroupOffsetsRequest,
) -> DeleteShareGroupOffsetsResponse {
    let group_id = request.group_id.0.as_str().to_owned();
    if let Err(e) = check_group(ctx, &group_id, false).await {
        return DeleteShareGroupOffsetsResponse::default()
            .with_error_code(e.code())
            .with_error_message(message(e));
    }
    ensure_state_topic(ctx, &group_id).await;
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in &request.topics {
        let name = topic.topic_name.0.as_str();
        let (id, count) = topic_and_count(ctx, name);
        let (error, text) = if count == 0 {
            (
                ErrorCode::UnknownTopicOrPartition,
                message(ErrorCode::UnknownTopicOrPartition),
            )
        } else {
            let mut existed = false;
            let mut failed = None;
            for partition in 0..count {
                match reset(ctx, &group_id, name, partition, None).await {
                    Ok(had) => existed |= had,
                    Err(e) => failed = failed.or(Some(e)),
                }
            }
            match failed {
                Some(e) => (e, message(e)),
                None if !existed => (
                    ErrorCode::UnknownTopicOrPartition,
                    Some(StrBytes::from_static_str(
                        "There is no offset information to delete.",
                    )),
                ),
                None => (ErrorCode::None, None),
            }
        };
        topics.push(
            DeleteShareGroupOffsetsResponseTopic::default()
                .with_topic_name(topic.topic_name.clone())
                .with_topic_id(id)
                .with_error_code(error.code())
                .with_error_message(text),
        );
    }
    DeleteShareGroupOffsetsResponse::default().with_responses(topics)
}
