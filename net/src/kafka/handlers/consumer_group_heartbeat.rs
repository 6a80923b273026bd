//! ConsumerGroupHeartbeat (0–1): the next-generation consumer group
//! protocol (KIP-848, `group.protocol=consumer`). Members heartbeat with
//! their subscription (topic names, and on v1 a pattern), what they own
//! and the assignor they name (`uniform` or `range`); the coordinator
//! assigns partitions and answers each member with its assignment when it
//! changes. v1 members choose their own member id; v0 members get one from
//! the broker. What Kafka refuses before it looks at the group is refused
//! here first, with Kafka's messages.

use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{
    ApiKey, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse,
};
use kafka_protocol::protocol::StrBytes;
use sluice_core::group::assignor::ServerAssignor;
use sluice_core::group::consumer::{ClientInfo, HeartbeatRequest, LEFT_FOR_NOW_EPOCH};
use sluice_core::ErrorCode;
use sluice_shard::{GroupRequest, GroupResponse};

use super::groups::{by_topic, call, opt};
use super::{Call, Handler, Outcome};
use crate::kafka::context::Context;

/// The ConsumerGroupHeartbeat handler: [`handle`], at versions 0–1.
pub struct ConsumerGroupHeartbeatHandler;

impl Handler for ConsumerGroupHeartbeatHandler {
    const KEY: ApiKey = ApiKey::ConsumerGroupHeartbeat;
    const NAME: &'static str = "ConsumerGroupHeartbeat";
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 1;
    type Request = ConsumerGroupHeartbeatRequest;
    type Response = ConsumerGroupHeartbeatResponse;

    async fn handle(call: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
        if let Some(message) = malformed(&request, call.version) {
            return Outcome::Answer(refusal(ErrorCode::InvalidRequest, Some(message.into())));
        }
        let client = ClientInfo {
            client_id: call
                .header
                .client_id
                .as_ref()
                .map(|c| c.as_str().to_owned())
                .unwrap_or_default(),
            client_host: call
                .peer
                .map(|p| format!("/{}", p.ip()))
                .unwrap_or_default(),
            rack_id: opt(&request.rack_id),
        };
        Outcome::Answer(handle(call.ctx, request, client).await)
    }
}

/// What Kafka refuses in a request before looking at its group, with
/// Kafka's words, checked in Kafka's order (a join's owned partitions and
/// subscription are checked in [`handle`] and the group).
fn malformed(request: &ConsumerGroupHeartbeatRequest, version: i16) -> Option<&'static str> {
    let empty = |s: &Option<StrBytes>| s.as_ref().is_some_and(|s| s.trim().is_empty());
    let epoch = request.member_epoch;
    if (version >= 1 || epoch > 0 || epoch == -1) && request.member_id.trim().is_empty() {
        return Some("MemberId can't be empty.");
    }
    if request.group_id.0.trim().is_empty() {
        return Some("GroupId can't be empty.");
    }
    if empty(&request.instance_id) {
        return Some("InstanceId can't be empty.");
    }
    if empty(&request.rack_id) {
        return Some("RackId can't be empty.");
    }
    if epoch == 0 && request.rebalance_timeout_ms == -1 {
        return Some("RebalanceTimeoutMs must be provided in first request.");
    }
    if epoch == LEFT_FOR_NOW_EPOCH && request.instance_id.is_none() {
        return Some("InstanceId can't be null.");
    }
    if epoch < LEFT_FOR_NOW_EPOCH {
        return Some("MemberEpoch is invalid.");
    }
    None
}

/// Answers a ConsumerGroupHeartbeat request.
pub async fn handle(
    ctx: &Context,
    request: ConsumerGroupHeartbeatRequest,
    client: ClientInfo,
) -> ConsumerGroupHeartbeatResponse {
    // A member (re-)joining says it owns nothing yet, with an empty list
    // (null is refused too), as Kafka checks it.
    let joining = request.member_epoch == 0;
    if joining
        && request
            .topic_partitions
            .as_ref()
            .is_none_or(|t| !t.is_empty())
    {
        return refusal(
            ErrorCode::InvalidRequest,
            Some("TopicPartitions must be empty when (re-)joining.".into()),
        );
    }
    // An assignor the broker does not have is refused before anything
    // changes, as Kafka refuses it.
    let server_assignor = match request.server_assignor.as_ref().map(|n| n.as_str()) {
        None => None,
        Some(name) => match ServerAssignor::from_name(name) {
            Some(assignor) => Some(assignor),
            None => {
                return refusal(
                    ErrorCode::UnsupportedAssignor,
                    Some(ServerAssignor::unsupported_message(name)),
                );
            }
        },
    };
    let group_id = request.group_id.0.as_str().to_owned();
    let heartbeat = HeartbeatRequest {
        group_id: group_id.clone(),
        member_id: request.member_id.as_str().to_owned(),
        member_epoch: request.member_epoch,
        instance_id: opt(&request.instance_id),
        rebalance_timeout_ms: request.rebalance_timeout_ms,
        subscribed_topics: request
            .subscribed_topic_names
            .map(|names| names.into_iter().map(|n| n.0.as_str().to_owned()).collect()),
        subscribed_regex: opt(&request.subscribed_topic_regex),
        owned: request.topic_partitions.map(|tps| {
            tps.into_iter()
                .flat_map(|tp| {
                    let id = *tp.topic_id.as_bytes();
                    tp.partitions.into_iter().map(move |p| (id, p))
                })
                .collect()
        }),
        member_id_suffix: uuid::Uuid::new_v4().to_string(),
        client,
        server_assignor,
    };
    let response = match call(ctx, &group_id, GroupRequest::ConsumerHeartbeat(heartbeat)).await {
        GroupResponse::ConsumerHeartbeat(r) if r.error != ErrorCode::None => {
            return refusal(r.error, r.message)
        }
        GroupResponse::ConsumerHeartbeat(r) => r,
        GroupResponse::Error(e) => return refusal(e, None),
        _ => return refusal(ErrorCode::UnknownServerError, None),
    };
    let assignment = response.assignment.map(|tps| {
        Assignment::default().with_topic_partitions(
            by_topic(tps)
                .into_iter()
                .map(|(id, ps)| {
                    TopicPartitions::default()
                        .with_topic_id(id)
                        .with_partitions(ps)
                })
                .collect(),
        )
    });
    ConsumerGroupHeartbeatResponse::default()
        .with_member_id(Some(StrBytes::from_string(response.member_id)))
        .with_member_epoch(response.member_epoch)
        .with_heartbeat_interval_ms(response.heartbeat_interval_ms)
        .with_assignment(assignment)
}

/// A refusal as Kafka's coordinator answers it: the error and its message,
/// no member id, member epoch 0.
fn refusal(error: ErrorCode, message: Option<String>) -> ConsumerGroupHeartbeatResponse {
    ConsumerGroupHeartbeatResponse::default()
        .with_error_code(error.code())
        .with_error_message(message.map(StrBytes::from_string))
        .with_member_epoch(0)
}
