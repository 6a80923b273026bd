//! ShareGroupHeartbeat (1): share groups' membership (KIP-932). Members
//! choose their member id, heartbeat with what they subscribe to, and the
//! coordinator answers each with its assignment when it changes; several
//! members may be given the same partition (core's `group::share`).

use kafka_protocol::messages::share_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{ApiKey, ShareGroupHeartbeatRequest, ShareGroupHeartbeatResponse};
use kafka_protocol::protocol::StrBytes;
use sluice_core::group::consumer::ClientInfo;
use sluice_core::group::share::ShareHeartbeatRequest;
use sluice_core::ErrorCode;
use sluice_shard::{GroupRequest, GroupResponse};

use super::groups::{by_topic, call, opt};
use super::shares::ensure_state_topic;
use super::{Call, Handler, Outcome};
use crate::kafka::context::Context;

/// The ShareGroupHeartbeat handler: [`handle`], at version 1 (Kafka 4.1
/// and later; version 0 was the early-access one).
pub struct ShareGroupHeartbeatHandler;

impl Handler for ShareGroupHeartbeatHandler {
    const KEY: ApiKey = ApiKey::ShareGroupHeartbeat;
    const NAME: &'static str = "ShareGroupHeartbeat";
    const MIN_VERSION: i16 = 1;
    const MAX_VERSION: i16 = 1;
    type Request = ShareGroupHeartbeatRequest;
    type Response = ShareGroupHeartbeatResponse;

    async fn handle(call: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
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

/// A refusal with `error` and `message`, as Kafka words it.
fn refused(error: ErrorCode, message: &str) -> ShareGroupHeartbeatResponse {
    ShareGroupHeartbeatResponse::default()
        .with_error_code(error.code())
        .with_error_message(Some(StrBytes::from_string(message.to_owned())))
        .with_member_epoch(-1)
}

/// Answers a ShareGroupHeartbeat request.
pub async fn handle(
    ctx: &Context,
    request: ShareGroupHeartbeatRequest,
    client: ClientInfo,
) -> ShareGroupHeartbeatResponse {
    // Kafka's request checks, in its order.
    if request.group_id.0.is_empty() {
        return refused(ErrorCode::InvalidRequest, "GroupId can't be empty.");
    }
    if request.member_id.is_empty() {
        return refused(ErrorCode::InvalidRequest, "MemberId can't be empty.");
    }
    if request.member_epoch < -1 {
        return refused(ErrorCode::InvalidRequest, "MemberEpoch is invalid.");
    }
    let group_id = request.group_id.0.as_str().to_owned();
    // The group's share partitions will keep their state there.
    if request.member_epoch == 0 {
        ensure_state_topic(ctx, &group_id).await;
    }
    let heartbeat = ShareHeartbeatRequest {
        group_id: group_id.clone(),
        member_id: request.member_id.as_str().to_owned(),
        member_epoch: request.member_epoch,
        subscribed_topics: request
            .subscribed_topic_names
            .map(|names| names.into_iter().map(|n| n.0.as_str().to_owned()).collect()),
        client,
    };
    let response = match call(ctx, &group_id, GroupRequest::ShareHeartbeat(heartbeat)).await {
        GroupResponse::ShareHeartbeat(r) => r,
        GroupResponse::Error(e) => {
            return ShareGroupHeartbeatResponse::default()
                .with_error_code(e.code())
                .with_member_epoch(-1)
        }
        _ => {
            return ShareGroupHeartbeatResponse::default()
                .with_error_code(ErrorCode::UnknownServerError.code())
                .with_member_epoch(-1)
        }
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
    ShareGroupHeartbeatResponse::default()
        .with_error_code(response.error.code())
        .with_error_message(response.error_message.map(StrBytes::from_string))
        .with_member_id(Some(StrBytes::from_string(response.member_id)))
        .with_member_epoch(response.member_epoch)
        .with_heartbeat_interval_ms(response.heartbeat_interval_ms)
        .with_assignment(assignment)
}
