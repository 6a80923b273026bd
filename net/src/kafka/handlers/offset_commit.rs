//! OffsetCommit (2–9): a group (or a consumer with manual assignment)
//! stores its position per partition.
//!
//! Each partition is checked here (the topic and partition must exist, the
//! metadata must fit `offset.metadata.max.bytes`), then the group's
//! coordinator checks the member and generation and answers once the
//! commit's records are durable in `__consumer_offsets`.

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{ApiKey, OffsetCommitRequest, OffsetCommitResponse};
use sluice_core::ErrorCode;
use sluice_shard::{GroupRequest, GroupResponse};

use super::groups::{call, checked_commits, opt};
use super::{Call, Handler, Outcome};
use crate::kafka::context::Context;

/// The OffsetCommit handler: [`handle`], at versions 2–9.
pub struct OffsetCommitHandler;

impl Handler for OffsetCommitHandler {
    const KEY: ApiKey = ApiKey::OffsetCommit;
    const NAME: &'static str = "OffsetCommit";
    const MIN_VERSION: i16 = 2;
    const MAX_VERSION: i16 = 9;
    type Request = OffsetCommitRequest;
    type Response = OffsetCommitResponse;

    async fn handle(call: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
        Outcome::Answer(handle(call.ctx, request, call.version).await)
    }
}

/// Answers an OffsetCommit request.
pub async fn handle(
    ctx: &Context,
    request: OffsetCommitRequest,
    version: i16,
) -> OffsetCommitResponse {
    let group_id = request.group_id.0.as_str().to_owned();
    let offsets = checked_commits(
        ctx,
        request.topics.iter().map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    (
                        p.partition_index,
                        p.committed_offset,
                        if version >= 6 {
                            p.committed_leader_epoch
                        } else {
                            -1
                        },
                        p.committed_metadata.as_ref().map_or("", |m| m.as_str()),
                    )
                })
                .collect();
            (topic.name.0.as_str(), partitions)
        }),
    );
    let count = offsets.len();
    let commit = GroupRequest::Commit {
        group_id: group_id.clone(),
        member_id: request.member_id.as_str().to_owned(),
        instance_id: opt(&request.group_instance_id),
        generation: request.generation_id_or_member_epoch,
        unknown_group_error: if version >= 9 {
            ErrorCode::GroupIdNotFound
        } else {
            ErrorCode::IllegalGeneration
        },
        offsets,
    };
    let errors = match call(ctx, &group_id, commit).await {
        GroupResponse::Commit(errors) if errors.len() == count => errors,
        GroupResponse::Error(e) => vec![e; count],
        _ => vec![ErrorCode::UnknownServerError; count],
    };
    let mut errors = errors.into_iter();
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(errors.next().unwrap_or(ErrorCode::None).code())
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}
