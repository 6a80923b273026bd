//! OffsetForLeaderEpoch (2–4): for each partition, the largest leader
//! epoch at or below the one asked about that the leader's log has, and the
//! offset where the next epoch starts (the log end for the current one):
//! what a follower truncates to before it fetches from a new leader
//! (KIP-101, KIP-279) and what a consumer checks its position against
//! after a leader change (KIP-320).
//!
//! Asked of the partition's leader (NOT_LEADER_OR_FOLLOWER elsewhere); the
//! request's `current_leader_epoch` is checked as Fetch checks it.

use std::rc::Rc;

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{ApiKey, OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use sluice_core::ErrorCode;
use sluice_shard::message::EpochEndOffsets;

use super::owners::ByOwner;
use super::{Call, Handler, Outcome};
use crate::kafka::context::Context;

/// The OffsetForLeaderEpoch handler: [`handle`], at versions 2–4.
pub struct OffsetForLeaderEpochHandler;

impl Handler for OffsetForLeaderEpochHandler {
    const KEY: ApiKey = ApiKey::OffsetForLeaderEpoch;
    const NAME: &'static str = "OffsetForLeaderEpoch";
    const MIN_VERSION: i16 = 2;
    const MAX_VERSION: i16 = 4;
    type Request = OffsetForLeaderEpochRequest;
    type Response = OffsetForLeaderEpochResponse;

    async fn handle(call: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
        Outcome::Answer(handle(call.ctx, request).await)
    }
}

fn answer(partition: i32, error: ErrorCode, leader_epoch: i32, end_offset: i64) -> EpochEndOffset {
    EpochEndOffset::default()
        .with_partition(partition)
        .with_error_code(error.code())
        .with_leader_epoch(leader_epoch)
        .with_end_offset(end_offset)
}

/// Answers an OffsetForLeaderEpoch request: one message per owner shard.
pub async fn handle(
    ctx: &Rc<Context>,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let mut by_owner = ByOwner::default();
    let mut planned = Vec::with_capacity(request.topics.len());
    for topic in &request.topics {
        let name = topic.topic.0.as_str().to_owned();
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in &topic.partitions {
            let owner = ctx
                .shard
                .metadata()
                .leader_shard(ctx.node_id, &name, p.partition);
            let plan = owner.map(|owner| {
                by_owner.push(
                    owner,
                    (
                        name.clone(),
                        p.partition,
                        p.current_leader_epoch,
                        p.leader_epoch,
                    ),
                )
            });
            partitions.push((p.partition, plan));
        }
        planned.push(partitions);
    }
    let answers = by_owner
        .call(
            &ctx.shard,
            |partitions| EpochEndOffsets { partitions },
            |answers| answers,
        )
        .await;
    let topics = request
        .topics
        .into_iter()
        .zip(planned)
        .map(|(topic, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(index, plan)| match plan {
                    Err(error) => answer(index, error, -1, -1),
                    Ok(place) => match answers[place].1 {
                        Ok((error, epoch, end)) => answer(index, error, epoch, end),
                        Err(_) => answer(index, ErrorCode::UnknownServerError, -1, -1),
                    },
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
