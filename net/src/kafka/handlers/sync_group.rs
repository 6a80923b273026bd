//! SyncGroup (0–5): the leader hands out the assignment; every member
//! receives its share once the assignment is durable.

use kafka_protocol::messages::{ApiKey, SyncGroupRequest, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;
use sluice_core::group::{SyncRequest, SyncResponse};
use sluice_core::ErrorCode;
use sluice_shard::{GroupRequest, GroupResponse};

use super::groups::{call, opt};
use super::{Call, Handler, Outcome};
use crate::kafka::context::Context;

/// The SyncGroup handler: [`handle`], at versions 0–5.
pub struct SyncGroupHandler;

impl Handler for SyncGroupHandler {
    const KEY: ApiKey = ApiKey::SyncGroup;
    const NAME: &'static str = "SyncGroup";
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 5;
    type Request = SyncGroupRequest;
    type Response = SyncGroupResponse;

    async fn handle(call: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
        Outcome::Answer(handle(call.ctx, request).await)
    }
}

/// Answers a SyncGroup request (a follower's after the leader's).
pub async fn handle(ctx: &Context, request: SyncGroupRequest) -> SyncGroupResponse {
    let group_id = request.group_id.0.as_str().to_owned();
    let sync = SyncRequest {
        group_id: group_id.clone(),
        generation: request.generation_id,
        member_id: request.member_id.as_str().to_owned(),
        instance_id: opt(&request.group_instance_id),
        protocol_type: opt(&request.protocol_type),
        protocol_name: opt(&request.protocol_name),
        assignments: request
            .assignments
            .into_iter()
            .map(|a| (a.member_id.as_str().to_owned(), a.assignment))
            .collect(),
    };
    let r = match call(ctx, &group_id, GroupRequest::Sync(sync)).await {
        GroupResponse::Sync(r) => r,
        GroupResponse::Error(e) => SyncResponse::error(e),
        _ => SyncResponse::error(ErrorCode::UnknownServerError),
    };
    SyncGroupResponse::default()
        .with_error_code(r.error.code())
        .with_protocol_type(r.protocol_type.map(StrBytes::from_string))
        .with_protocol_name(r.protocol_name.map(StrBytes::from_string))
        .with_assignment(r.assignment)
}
