//! DescribeShareGroupOffsets (0): each share partition's start offset
//! (SPSO) for share groups (`kafka-share-groups.sh --describe`,
//! `Admin.listShareGroupOffsets`). The share partitions live on their
//! leaders' owner shards, so every shard is asked. With no topics named,
//! every share partition the group has is listed; a named partition the
//! group never read has start offset -1, as Kafka answers an uninitialized
//! one. Each partition also carries sluice's counts in tagged fields
//! ([`TAG_IN_FLIGHT`], [`TAG_ACQUIRED`], [`TAG_LAG`]).

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::messages::describe_share_group_offsets_response::{
    DescribeShareGroupOffsetsResponseGroup, DescribeShareGroupOffsetsResponsePartition,
    DescribeShareGroupOffsetsResponseTopic,
};
use kafka_protocol::messages::{
    ApiKey, DescribeShareGroupOffsetsRequest, DescribeShareGroupOffsetsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_core::ErrorCode;
use sluice_shard::message::{DescribeSharePartitions, SharePartitionState};
use uuid::Uuid;

use super::topics::{topic_by_id, topic_id};
use super::{Call, Handler, Outcome};
use crate::kafka::context::Context;

/// The DescribeShareGroupOffsets handler: [`handle`], at version 0.
pub struct DescribeShareGroupOffsetsHandler;

impl Handler for DescribeShareGroupOffsetsHandler {
    const KEY: ApiKey = ApiKey::DescribeShareGroupOffsets;
    const NAME: &'static str = "DescribeShareGroupOffsets";
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 0;
    type Request = DescribeShareGroupOffsetsRequest;
    type Response = DescribeShareGroupOffsetsResponse;

    async fn handle(call: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
        Outcome::Answer(handle(call.ctx, request).await)
    }
}

/// Tagged fields sluice adds to a partition's answer (other clients skip
/// tags they do not know): the records in flight (available or acquired),
/// those acquired now, and the lag (records still to be done with), which
/// the version served here has no field for. `sluice group describe`
/// shows them.
pub const TAG_IN_FLIGHT: i32 = 10_000;
pub const TAG_ACQUIRED: i32 = 10_001;
pub const TAG_LAG: i32 = 10_002;

fn sluice_tags(s: &SharePartitionState) -> BTreeMap<i32, Bytes> {
    let count = |n: usize| Bytes::copy_from_slice(&(n.min(i32::MAX as usize) as i32).to_be_bytes());
    BTreeMap::from([
        (TAG_IN_FLIGHT, count(s.in_flight)),
        (TAG_ACQUIRED, count(s.acquired)),
        (TAG_LAG, Bytes::copy_from_slice(&s.lag.to_be_bytes())),
    ])
}

/// Every share partition of `group_id`, from every shard.
pub async fn share_partitions(
    ctx: &Context,
    group_id: &str,
) -> Result<Vec<SharePartitionState>, ErrorCode> {
    let mut all = Vec::new();
    for shard in 0..ctx.shard.shards {
        let ask = DescribeSharePartitions {
            group_id: group_id.to_owned(),
        };
        all.extend(
            ctx.shard
                .call(shard, ask)
                .await
                .map_err(|_| ErrorCode::CoordinatorNotAvailable)?,
        );
    }
    all.sort_by_key(|s| (s.topic_id, s.partition));
    Ok(all)
}

/// Answers a DescribeShareGroupOffsets request.
pub async fn handle(
    ctx: &Context,
    request: DescribeShareGroupOffsetsRequest,
) -> DescribeShareGroupOffsetsResponse {
    let mut groups = Vec::with_capacity(request.groups.len());
    for group in &request.groups {
        let group_id = group.group_id.0.as_str().to_owned();
        let answer =
            DescribeShareGroupOffsetsResponseGroup::default().with_group_id(group.group_id.clone());
        let states = match share_partitions(ctx, &group_id).await {
            Ok(states) => states,
            Err(e) => {
                groups.push(answer.with_error_code(e.code()));
                continue;
            }
        };
        let partition = |p: i32, state: Option<&SharePartitionState>| {
            let answer = DescribeShareGroupOffsetsResponsePartition::default()
                .with_partition_index(p)
                .with_start_offset(state.map_or(-1, |s| s.start_offset))
                .with_leader_epoch(-1);
            match state {
                Some(s) => answer.with_unknown_tagged_fields(sluice_tags(s)),
                None => answer,
            }
        };
        let topics = match &group.topics {
            Some(named) => named
                .iter()
                .map(|t| {
                    let name = t.topic_name.0.as_str();
                    let id = topic_id(ctx, name);
                    let partitions = t
                        .partitions
                        .iter()
                        .map(|p| {
                            let state = states
                                .iter()
                                .find(|s| s.topic_id == *id.as_bytes() && s.partition == *p);
                            if id.is_nil() {
                                partition(*p, None)
                                    .with_error_code(ErrorCode::UnknownTopicOrPartition.code())
                            } else {
                                partition(*p, state)
                            }
                        })
                        .collect();
                    DescribeShareGroupOffsetsResponseTopic::default()
                        .with_topic_name(t.topic_name.clone())
                        .with_topic_id(id)
                        .with_partitions(partitions)
                })
                .collect(),
            None => {
                let mut topics: Vec<DescribeShareGroupOffsetsResponseTopic> = Vec::new();
                for s in &states {
                    let id = Uuid::from_bytes(s.topic_id);
                    // A topic deleted since is not listed.
                    let Some(name) = topic_by_id(ctx, id) else {
                        continue;
                    };
                    let p = partition(s.partition, Some(s));
                    match topics.iter_mut().find(|t| t.topic_id == id) {
                        Some(t) => t.partitions.push(p),
                        None => topics.push(
                            DescribeShareGroupOffsetsResponseTopic::default()
                                .with_topic_name(TopicName(StrBytes::from_string(name)))
                                .with_topic_id(id)
                                .with_partitions(vec![p]),
                        ),
                    }
                }
                topics
            }
        };
        groups.push(answer.with_topics(topics));
    }
    DescribeShareGroupOffsetsResponse::default().with_groups(groups)
}
