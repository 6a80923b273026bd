//! ConsumerGroupDescribe (0–1): KIP-848 consumer groups, each asked of its
//! coordinator (`kafka-consumer-groups.sh --describe` and
//! `AdminClient.describeConsumerGroups` use it for groups of the consumer
//! protocol): state, group and assignment epochs, the assignor, and every
//! member with its client, subscription, current and target assignment.
//! A classic group or an unknown one is GROUP_ID_NOT_FOUND with Kafka's
//! message (the admin client then asks DescribeGroups).

use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::{
    ApiKey, ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_core::group::consumer::TopicPartition;
use sluice_core::ErrorCode;
use sluice_shard::{GroupRequest, GroupResponse};

use super::groups::{by_topic, call};
use super::metadata::AUTHORIZED_OPERATIONS_OMITTED;
use super::topics::topic_by_id;
use super::{Call, Handler, Outcome};
use crate::kafka::context::Context;

/// The ConsumerGroupDescribe handler: [`handle`], at versions 0–1.
pub struct ConsumerGroupDescribeHandler;

impl Handler for ConsumerGroupDescribeHandler {
    const KEY: ApiKey = ApiKey::ConsumerGroupDescribe;
    const NAME: &'static str = "ConsumerGroupDescribe";
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 1;
    type Request = ConsumerGroupDescribeRequest;
    type Response = ConsumerGroupDescribeResponse;

    async fn handle(call: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
        Outcome::Answer(handle(call.ctx, request).await)
    }
}

/// Every operation a group supports (READ 3, DELETE 6, DESCRIBE 8,
/// DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11): there is no authorizer.
pub(super) const GROUP_AUTHORIZED_OPERATIONS: i32 =
    (1 << 3) | (1 << 6) | (1 << 8) | (1 << 10) | (1 << 11);

/// Kafka's member type of a consumer-protocol member (v1).
const MEMBER_TYPE_CONSUMER: i8 = 1;

/// Answers a ConsumerGroupDescribe request.
pub async fn handle(
    ctx: &Context,
    request: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let mut groups = Vec::with_capacity(request.group_ids.len());
    for id in &request.group_ids {
        let group_id = id.0.as_str().to_owned();
        let ask = GroupRequest::DescribeConsumerGroup {
            group_id: group_id.clone(),
        };
        let described = match call(ctx, &group_id, ask).await {
            GroupResponse::ConsumerGroupDescribed(d) => d,
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
                .with_assignor_name(StrBytes::from_static_str(d.assignor.name()))
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
                                .with_instance_id(m.instance_id.map(StrBytes::from_string))
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
                                .with_subscribed_topic_regex(Some(StrBytes::from_string(
                                    m.subscribed_regex,
                                )))
                                .with_assignment(assignment(ctx, &m.assignment))
                                .with_target_assignment(assignment(ctx, &m.target_assignment))
                                .with_member_type(MEMBER_TYPE_CONSUMER)
                        })
                        .collect(),
                ),
        });
    }
    ConsumerGroupDescribeResponse::default().with_groups(groups)
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
