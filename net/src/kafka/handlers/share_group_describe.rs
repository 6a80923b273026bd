//! ShareGroupDescribe (1): share groups, each asked of its coordinator
//! (`kafka-share-groups.sh --describe --members` and
//! `Admin.describeShareGroups` use it): state, group and assignment epochs,
//! the assignor, and every member with its client, subscription and
//! assignment. A group of another type, or an unknown one, is
//! GROUP_ID_NOT_FOUND with Kafka's message.

use kafka_protocol::messages::share_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::{
    ApiKey, ShareGroupDescribeRequest, ShareGroupDescribeResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_core::group::consumer::TopicPartition;
use sluice_core::ErrorCode;
use sluice_shard::{GroupRequest, GroupResponse};

use super::consumer_group_describe::GROUP_AUTHORIZED_OPERATIONS;
use super::groups::{by_topic, call};
use super::metadata::AUTHORIZED_OPERATIONS_OMITTED;
use super::topics::topic_by_id;
use super::{Call, Handler, Outcome};
use crate::kafka::context::Context;

/// The ShareGroupDescribe handler: [`handle`], at version 1.
pub struct ShareGroupDescribeHandler;

impl Handler for ShareGroupDescribeHandler {
    const KEY: ApiKey = ApiKey::ShareGroupDescribe;
    const NAME: &'static str = "ShareGroupDescribe";
    const MIN_VERSION: i16 = 1;
    const MAX_VERSION: i16 = 1;
    type Request = ShareGroupDescribeRequest;
    type Response = ShareGroupDescribeResponse;

    async fn handle(call: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
        Outcome::Answer(handle(call.ctx, request).await)
    }
}

/// Kafka's name of the share groups' assignor.
const ASSIGNOR: &str = "simple";

/// Answers a ShareGroupDescribe request.
pub async fn handle(
    ctx: &Context,
    request: ShareGroupDescribeRequest,
) -> ShareGroupDescribeResponse {
    let mut groups = Vec::with_capacity(request.group_ids.len());
    for id in &request.group_ids {
        let group_id = id.0.as_str().to_owned();
        let ask = GroupRequest::DescribeShareGroup {
            group_id: group_id.clone(),
        };
        let described = match call(ctx, &group_id, ask).await {
            GroupResponse::ShareGroupDescribed(d) => d,
            GroupResponse::Error(e) => Err((e, String::new())),
            _ => Err((ErrorCode::UnknownServerError, String::new())),
        };
        let group = DescribedGroup::default().with_group_id(id.clone());
        groups.push(match described {
            Err((error, message)) => group
                .with_error_code(error.code())
                .with_error_message((!message.is_empty()).then(|| StrBytes::from_string(message)))
                .with_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED),
            Ok(d) => group
                .with_group_state(StrBytes::from_static_str(d.state))
                .with_group_epoch(d.group_epoch)
                .with_assignment_epoch(d.assignment_epoch)
                .with_assignor_name(StrBytes::from_static_str(ASSIGNOR))
                .with_authorized_operations(if request.include_authorized_operations {
                    GROUP_AUTHORIZED_OPERATIONS
                } else {
                    AUTHORIZED_OPERATIONS_OMITTED
                })
                .with_members(
                    d.members
                        .into_iter()
                        .map(|m| {
                            Member::default()
                                .with_member_id(StrBytes::from_string(m.member_id))
                                .with_rack_id(m.client.rack_id.map(StrBytes::from_string))
                                .with_member_epoch(m.member_epoch)
                                .with_client_id(StrBytes::from_string(m.client.client_id))
                                .with_client_host(StrBytes::from_string(m.client.client_host))
                                .with_subscribed_topic_names(
                                    m.subscribed_topics
                                        .into_iter()
                                        .map(|t| TopicName(StrBytes::from_string(t)))
                                        .collect(),
                                )
                                .with_assignment(assignment(ctx, &m.assignment))
                        })
                        .collect(),
                ),
        });
    }
    ShareGroupDescribeResponse::default().with_groups(groups)
}

/// Partitions by topic, with each topic's id and name.
fn assignment(ctx: &Context, partitions: &[TopicPartition]) -> Assignment {
    Assignment::default().with_topic_partitions(
        by_topic(partitions.iter().copied())
            .into_iter()
            .map(|(id, partitions)| {
                let name = topic_by_id(ctx, id).unwrap_or_default();
                TopicPartitions::default()
                    .with_topic_id(id)
                    .with_topic_name(TopicName(StrBytes::from_string(name)))
                    .with_partitions(partitions)
            })
            .collect(),
    )
}
