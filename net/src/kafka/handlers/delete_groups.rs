//! DeleteGroups (0–2): deletes empty groups and their committed offsets
//! (NON_EMPTY_GROUP while members remain, GROUP_ID_NOT_FOUND for none),
//! and a deleted share group's share partitions and their stored state on
//! every shard of every broker that leads a partition (asked with
//! `TAG_THIS_BROKER`, [`super::share_peers`]: such a request only forgets
//! the named groups' share partitions and stored state there, which a
//! group that was not a share group has none of).

use bytes::Bytes;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{ApiKey, DeleteGroupsRequest, DeleteGroupsResponse, GroupId};
use sluice_core::ErrorCode;
use sluice_shard::message::ForgetShareGroup;
use sluice_shard::{GroupRequest, GroupResponse};

use super::groups::call;
use super::share_peers::{other_brokers, TAG_THIS_BROKER};
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

/// Forgets group `id`'s share partitions and deletes their stored state
/// on every shard of this broker.
async fn forget_here(ctx: &Context, id: &str) {
    for shard in 0..ctx.shard.shards {
        let forget = ForgetShareGroup {
            group_id: id.to_owned(),
        };
        // Unreachable only while the node stops.
        let _ = ctx.shard.call(shard, forget).await;
    }
}

/// The same on every other broker leading a partition.
async fn forget_elsewhere(ctx: &Context, group_id: &GroupId) {
    let mut request = DeleteGroupsRequest::default().with_groups_names(vec![group_id.clone()]);
    request
        .unknown_tagged_fields
        .insert(TAG_THIS_BROKER, Bytes::new());
    for broker in other_brokers(ctx) {
        // Version 2: the first flexible one, with tagged fields.
        if let Err(e) = ctx.shard.call_broker_at(broker, &request, 2).await {
            tracing::warn!(group = group_id.0.as_str(), broker, error = ?e, "a broker did not forget a deleted share group");
        }
    }
}

/// Answers a DeleteGroups request.
pub async fn handle(ctx: &Context, request: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(request.groups_names.len());
    let this_broker_only = request.unknown_tagged_fields.contains_key(&TAG_THIS_BROKER);
    for group_id in request.groups_names {
        let id = group_id.0.as_str().to_owned();
        if this_broker_only {
            forget_here(ctx, &id).await;
            results.push(DeletableGroupResult::default().with_group_id(group_id));
            continue;
        }
        // Only a share group has share partitions to forget: asked first
        // (an empty group's type does not change while it is deleted).
        let describe = GroupRequest::DescribeShareGroup {
            group_id: id.clone(),
        };
        let share_group = matches!(
            call(ctx, &id, describe).await,
            GroupResponse::ShareGroupDescribed(Ok(_))
        );
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
        if error == ErrorCode::None && share_group {
            // A share group's partitions live on their leaders' shards,
            // their state on its partitions' leaders'.
            forget_here(ctx, &id).await;
            forget_elsewhere(ctx, &group_id).await;
        }
        results.push(
            DeletableGroupResult::default()
                .with_group_id(group_id)
                .with_error_code(error.code()),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}
