//! LeaveGroup (0–5): members leave a group at once (v3+ in batches, by
//! member id or a static member's instance id).

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{ApiKey, LeaveGroupRequest, LeaveGroupResponse};
use sluice_core::ErrorCode;
use sluice_shard::{GroupRequest, GroupResponse};

use super::groups::{call, opt};
use super::{Call, Handler, Outcome};
use crate::kafka::context::Context;

/// The LeaveGroup handler: [`handle`], at versions 0–5.
pub struct LeaveGroupHandler;

impl Handler for LeaveGroupHandler {
    const KEY: ApiKey = ApiKey::LeaveGroup;
    const NAME: &'static str = "LeaveGroup";
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 5;
    type Request = LeaveGroupRequest;
    type Response = LeaveGroupResponse;

    async fn handle(call: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
        Outcome::Answer(handle(call.ctx, request, call.version).await)
    }
}

/// Answers a LeaveGroup request.
pub async fn handle(ctx: &Context, request: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
    let group_id = request.group_id.0.as_str().to_owned();
    let members: Vec<(String, Option<String>)> = if version >= 3 {
        request
            .members
            .iter()
            .map(|m| (m.member_id.as_str().to_owned(), opt(&m.group_instance_id)))
            .collect()
    } else {
        vec![(request.member_id.as_str().to_owned(), None)]
    };
    let leave = GroupRequest::Leave {
        group_id: group_id.clone(),
        members,
    };
    let result = match call(ctx, &group_id, leave).await {
        GroupResponse::Leave(result) => result,
        GroupResponse::Error(e) => Err(e),
        _ => Err(ErrorCode::UnknownServerError),
    };
    match result {
        Err(e) => LeaveGroupResponse::default().with_error_code(e.code()),
        Ok(errors) if version >= 3 => LeaveGroupResponse::default().with_members(
            request
                .members
                .into_iter()
                .zip(errors)
                .map(|(m, e)| {
                    MemberResponse::default()
                        .with_member_id(m.member_id)
                        .with_group_instance_id(m.group_instance_id)
                        .with_error_code(e.code())
                })
                .collect(),
        ),
        Ok(errors) => LeaveGroupResponse::default()
            .with_error_code(errors.first().copied().unwrap_or(ErrorCode::None).code()),
    }
}
