//! DescribeGroups (0–6): state, protocol and members of each group. A group
//! that does not exist is described as Dead with no members: with no error
//! up to v5, with GROUP_ID_NOT_FOUND from v6, as Kafka.

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{ApiKey, DescribeGroupsRequest, DescribeGroupsResponse};
use kafka_protocol::protocol::StrBytes;
use sluice_core::group::GroupState;
use sluice_core::ErrorCode;
use sluice_shard::{GroupRequest, GroupResponse};

use super::groups::call;
use super::{Call, Handler, Outcome};
use crate::kafka::context::Context;

/// The DescribeGroups handler: [`handle`], at versions 0–6.
pub struct DescribeGroupsHandler;

impl Handler for DescribeGroupsHandler {
    const KEY: ApiKey = ApiKey::DescribeGroups;
    const NAME: &'static str = "DescribeGroups";
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 6;
    type Request = DescribeGroupsRequest;
    type Response = DescribeGroupsResponse;

    async fn handle(call: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
        Outcome::Answer(handle(call.ctx, request, call.version).await)
    }
}

/// Authorized operations, when the client did not ask for them.
const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;

/// Answers a DescribeGroups request.
pub async fn handle(
    ctx: &Context,
    request: DescribeGroupsRequest,
    version: i16,
) -> DescribeGroupsResponse {
    let mut groups = Vec::with_capacity(request.groups.len());
    for group_id in request.groups {
        let id = group_id.0.as_str().to_owned();
        let described = DescribedGroup::default()
            .with_group_id(group_id)
            .with_authorized_operations(OPERATIONS_NOT_REQUESTED);
        let request = GroupRequest::Describe {
            group_id: id.clone(),
        };
        groups.push(match call(ctx, &id, request).await {
            GroupResponse::Described(d) if version >= 6 && d.state == GroupState::Dead => described
                .with_error_code(ErrorCode::GroupIdNotFound.code())
                .with_error_message(Some(StrBytes::from_string(format!("group {id} not found"))))
                .with_group_state(StrBytes::from_static_str("Dead")),
            GroupResponse::Described(d) => described
                .with_group_state(StrBytes::from_static_str(d.state.name()))
                .with_protocol_type(StrBytes::from_string(d.protocol_type))
                .with_protocol_data(StrBytes::from_string(d.protocol))
                .with_members(
                    d.members
                        .into_iter()
                        .map(|m| {
                            DescribedGroupMember::default()
                                .with_member_id(StrBytes::from_string(m.member_id))
                                .with_group_instance_id(m.instance_id.map(StrBytes::from_string))
                                .with_client_id(StrBytes::from_string(m.client_id))
                                .with_client_host(StrBytes::from_string(m.client_host))
                                .with_member_metadata(m.metadata)
                                .with_member_assignment(m.assignment)
                        })
                        .collect(),
                ),
            GroupResponse::Error(e) => described
                .with_error_code(e.code())
                .with_group_state(StrBytes::from_static_str("Dead")),
            _ => described.with_error_code(ErrorCode::UnknownServerError.code()),
        });
    }
    DescribeGroupsResponse::default().with_groups(groups)
}
