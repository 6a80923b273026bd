//! JoinGroup (0–9): a member joins (or rejoins) a consumer group.
//!
//! The request is parked at the group's coordinator until the rebalance
//! completes (every member rejoined, or the rebalance timeout passed). v4+
//! first joins get MEMBER_ID_REQUIRED with a member id to rejoin with
//! (KIP-394); v5+ carry a static member's instance id (KIP-345); v9 lets a
//! rejoining static leader skip the assignment (KIP-814).

use std::net::SocketAddr;

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{ApiKey, JoinGroupRequest, JoinGroupResponse, RequestHeader};
use kafka_protocol::protocol::StrBytes;
use sluice_core::group::JoinRequest;
use sluice_core::ErrorCode;
use sluice_shard::{GroupRequest, GroupResponse};

use super::groups::{call, opt};
use super::{Call, Handler, Outcome};
use crate::kafka::context::Context;

/// The JoinGroup handler: [`handle`], at versions 0–9.
pub struct JoinGroupHandler;

impl Handler for JoinGroupHandler {
    const KEY: ApiKey = ApiKey::JoinGroup;
    const NAME: &'static str = "JoinGroup";
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 9;
    type Request = JoinGroupRequest;
    type Response = JoinGroupResponse;

    async fn handle(call: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
        let response = handle(call.ctx, &call.header, request, call.version, call.peer).await;
        Outcome::Answer(response)
    }
}

/// Answers a JoinGroup request (after the rebalance).
pub async fn handle(
    ctx: &Context,
    header: &RequestHeader,
    request: JoinGroupRequest,
    version: i16,
    peer: Option<SocketAddr>,
) -> JoinGroupResponse {
    let group_id = request.group_id.0.as_str().to_owned();
    let join = JoinRequest {
        group_id: group_id.clone(),
        member_id: request.member_id.as_str().to_owned(),
        instance_id: opt(&request.group_instance_id),
        client_id: opt(&header.client_id).unwrap_or_default(),
        client_host: peer.map(|p| format!("/{}", p.ip())).unwrap_or_default(),
        session_timeout_ms: request.session_timeout_ms,
        // v0 has no rebalance timeout: it is the session timeout.
        rebalance_timeout_ms: if version >= 1 {
            request.rebalance_timeout_ms
        } else {
            request.session_timeout_ms
        },
        protocol_type: request.protocol_type.as_str().to_owned(),
        protocols: request
            .protocols
            .into_iter()
            .map(|p| (p.name.as_str().to_owned(), p.metadata))
            .collect(),
        require_known_member_id: version >= 4,
        supports_skip_assignment: version >= 9,
        member_id_suffix: uuid::Uuid::new_v4().to_string(),
    };
    let r = match call(ctx, &group_id, GroupRequest::Join(join)).await {
        GroupResponse::Join(r) => r,
        GroupResponse::Error(e) => sluice_core::group::JoinResponse::error(e, &request.member_id),
        _ => sluice_core::group::JoinResponse::error(
            ErrorCode::UnknownServerError,
            &request.member_id,
        ),
    };
    JoinGroupResponse::default()
        .with_error_code(r.error.code())
        .with_generation_id(r.generation)
        .with_protocol_type(r.protocol_type.map(StrBytes::from_string))
        .with_protocol_name(
            r.protocol_name
                .map(StrBytes::from_string)
                // v0–6 carry a non-null name.
                .or_else(|| (version < 7).then(StrBytes::default)),
        )
        .with_leader(StrBytes::from_string(r.leader))
        .with_skip_assignment(r.skip_assignment)
        .with_member_id(StrBytes::from_string(r.member_id))
        .with_members(
            r.members
                .into_iter()
                .map(|m| {
                    JoinGroupResponseMember::default()
                        .with_member_id(StrBytes::from_string(m.member_id))
                        .with_group_instance_id(m.instance_id.map(StrBytes::from_string))
                        .with_metadata(m.metadata)
                })
                .collect(),
        )
}
