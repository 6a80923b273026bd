//! ListGroups (0–5): every group of every coordinator shard, optionally
//! filtered by state (v4+) and type (v5+: "classic" or "consumer").

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{ApiKey, GroupId, ListGroupsRequest, ListGroupsResponse};
use kafka_protocol::protocol::StrBytes;
use sluice_core::ErrorCode;
use sluice_shard::message::ListGroups;
use sluice_shard::GroupResponse;

use super::{Call, Handler, Outcome};
use crate::kafka::context::Context;

/// The ListGroups handler: [`handle`], at versions 0–5.
pub struct ListGroupsHandler;

impl Handler for ListGroupsHandler {
    const KEY: ApiKey = ApiKey::ListGroups;
    const NAME: &'static str = "ListGroups";
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 5;
    type Request = ListGroupsRequest;
    type Response = ListGroupsResponse;

    async fn handle(call: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
        Outcome::Answer(handle(call.ctx, request).await)
    }
}

/// Answers a ListGroups request.
pub async fn handle(ctx: &Context, request: ListGroupsRequest) -> ListGroupsResponse {
    let states: Vec<String> = request
        .states_filter
        .iter()
        .map(|s| s.as_str().to_ascii_lowercase())
        .collect();
    let types: Vec<String> = request
        .types_filter
        .iter()
        .map(|t| t.as_str().to_ascii_lowercase())
        .collect();
    let mut groups = Vec::new();
    let mut error = ErrorCode::None;
    for shard in 0..ctx.shard.shards {
        match ctx.shard.call(shard, ListGroups).await {
            Ok(GroupResponse::Listed(Ok(listed))) => groups.extend(listed),
            Ok(GroupResponse::Listed(Err(e))) => error = e,
            // A coordinator answers ListGroups with a listing; an
            // unreachable shard (the node is stopping) has none to give.
            Ok(_) | Err(_) => error = ErrorCode::CoordinatorNotAvailable,
        }
    }
    let listed = groups
        .into_iter()
        .filter(|g| types.is_empty() || types.iter().any(|t| t == g.group_type))
        .filter(|g| states.is_empty() || states.contains(&g.state.to_ascii_lowercase()))
        .map(|g| {
            ListedGroup::default()
                .with_group_id(GroupId(StrBytes::from_string(g.group_id)))
                .with_protocol_type(StrBytes::from_string(g.protocol_type))
                .with_group_state(StrBytes::from_string(g.state))
                .with_group_type(StrBytes::from_static_str(g.group_type))
        })
        .collect();
    ListGroupsResponse::default()
        .with_error_code(error.code())
        .with_groups(listed)
}
