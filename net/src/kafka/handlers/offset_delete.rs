//! OffsetDelete (0): deletes a group's committed offsets for some
//! partitions, unless the group's members consume the topic
//! (GROUP_SUBSCRIBED_TO_TOPIC).

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{ApiKey, OffsetDeleteRequest, OffsetDeleteResponse};
use sluice_core::ErrorCode;
use sluice_shard::{GroupRequest, GroupResponse};

use super::groups::call;
use super::{Call, Handler, Outcome};
use crate::kafka::context::Context;

/// The OffsetDelete handler: [`handle`], at version 0.
pub struct OffsetDeleteHandler;

impl Handler for OffsetDeleteHandler {
    const KEY: ApiKey = ApiKey::OffsetDelete;
    const NAME: &'static str = "OffsetDelete";
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 0;
    type Request = OffsetDeleteRequest;
    type Response = OffsetDeleteResponse;

    async fn handle(call: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
        Outcome::Answer(handle(call.ctx, request).await)
    }
}

/// Answers an OffsetDelete request.
pub async fn handle(ctx: &Context, request: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let group_id = request.group_id.0.as_str().to_owned();
    let partitions: Vec<(String, i32)> = request
        .topics
        .iter()
        .flat_map(|t| {
            let name = t.name.0.as_str().to_owned();
            t.partitions
                .iter()
                .map(move |p| (name.clone(), p.partition_index))
        })
        .collect();
    let count = partitions.len();
    let delete = GroupRequest::DeleteOffsets {
        group_id: group_id.clone(),
        partitions,
    };
    let errors = match call(ctx, &group_id, delete).await {
        GroupResponse::DeleteOffsets(Ok(errors)) if errors.len() == count => errors,
        GroupResponse::DeleteOffsets(Err(e)) | GroupResponse::Error(e) => {
            return OffsetDeleteResponse::default().with_error_code(e.code())
        }
        _ => {
            return OffsetDeleteResponse::default()
                .with_error_code(ErrorCode::UnknownServerError.code())
        }
    };
    let mut errors = errors.into_iter();
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(errors.next().unwrap_or(ErrorCode::None).code())
                })
                .collect();
            OffsetDeleteResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}
