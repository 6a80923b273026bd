//! DeleteGroups (0–2): deletes empty groups and their committed offsets
//! (NON_EMPTY_GROUP while members remain, GROUP_ID_NOT_FOUND for none),
//! and a share group's share partitions on every shard.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{ApiKey, DeleteGroupsRequest, DeleteGroupsResponse};
use sluice_core::ErrorCode;
use sluice_shard::message::ForgetShareGroup;
use sluice_shard::{GroupRequest, GroupResponse};

use super::groups::call;
use super::{Call, Handler, Outcome};
use crate::kafka::context::Context;

/// The DeleteGroups handler: [`handle`], at versions 0–2.
pub struct DeleteGroupsHandler;

impl Handler for DeleteGroupsHandler {
    const KEY: ApiKey = ApiKey::DeleteGroups;
    const NAME: &'static str = "DeleteGroups";
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 2;
    type Request = DeleteGroupsRequest;
    type Response = DeleteGroupsResponse;

    async fn handle(call: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
        Outcome::Answer(handle(call.ctx, request).await)
    }
}

/// Answers a DeleteGroups request.
pub async fn handle(ctx: &Context, request: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(request.groups_names.len());
    for group_id in request.groups_names {
        let id = group_id.0.as_str().to_owned();
        let error = match call(
            ctx,
            &id,
            GroupRequest::Delete {
                group_id: id.clone(),
            },
        )
        .await
        {
            GroupResponse::Error(e) => e,
            _ => ErrorCode::UnknownServerError,
        };
        if error == ErrorCode::None {
            // A share group's partitions live on their leaders' shards.
            for shard in 0..ctx.shard.shards {
                let forget = ForgetShareGroup {
                    group_id: id.clone(),
                };
                // Unreachable only while the node stops.
                let _ = ctx.shard.call(shard, forget).await;
            }
        }
        results.push(
            DeletableGroupResult::default()
                .with_group_id(group_id)
                .with_error_code(error.code()),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}
