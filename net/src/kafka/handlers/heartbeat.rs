//! Heartbeat (0–4): keeps a member's session alive and tells it when a
//! rebalance started (REBALANCE_IN_PROGRESS).

use kafka_protocol::messages::{ApiKey, HeartbeatRequest, HeartbeatResponse};
use sluice_core::ErrorCode;
use sluice_shard::{GroupRequest, GroupResponse};

use super::groups::{call, opt};
use super::{Call, Handler, Outcome};
use crate::kafka::context::Context;

/// The Heartbeat handler: [`handle`], at versions 0–4.
pub struct HeartbeatHandler;

impl Handler for HeartbeatHandler {
    const KEY: ApiKey = ApiKey::Heartbeat;
    const NAME: &'static str = "Heartbeat";
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 4;
    type Request = HeartbeatRequest;
    type Response = HeartbeatResponse;

    async fn handle(call: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
        Outcome::Answer(handle(call.ctx, request).await)
    }
}

/// Answers a Heartbeat request.
pub async fn handle(ctx: &Context, request: HeartbeatRequest) -> HeartbeatResponse {
    let group_id = request.group_id.0.as_str().to_owned();
    let heartbeat = GroupRequest::Heartbeat {
        group_id: group_id.clone(),
        member_id: request.member_id.as_str().to_owned(),
        instance_id: opt(&request.group_instance_id),
        generation: request.generation_id,
    };
    let error = match call(ctx, &group_id, heartbeat).await {
        GroupResponse::Error(e) => e,
        _ => ErrorCode::UnknownServerError,
    };
    HeartbeatResponse::default().with_error_code(error.code())
}
