//! DeleteRecords (0–2): moves partitions' log start offsets forward
//! (`kafka-delete-records.sh`, `AdminClient.deleteRecords`), asked of each
//! partition's leader shard (one message per owner): records below the new
//! start are no longer served, and retention deletes the segments wholly
//! below it. -1 means the high watermark; an offset past it is
//! OFFSET_OUT_OF_RANGE, and a partition named twice INVALID_REQUEST, as
//! Kafka answers them.
//!
//! As Kafka, the leader answers once every replica on a live broker has
//! moved its log start that far (followers move theirs at their next fetch
//! and report it in the one after), with the least of them as the low
//! watermark; REQUEST_TIMED_OUT (low watermark -1) when the request's
//! `timeout_ms` passes first.

use std::collections::HashMap;
use std::rc::Rc;

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{ApiKey, DeleteRecordsRequest, DeleteRecordsResponse};
use sluice_core::ErrorCode;
use sluice_shard::DeleteRecords;

use super::owners::ByOwner;
use super::{Call, Handler, Outcome};
use crate::kafka::context::Context;

/// The DeleteRecords handler: [`handle`], at versions 0–2.
pub struct DeleteRecordsHandler;

impl Handler for DeleteRecordsHandler {
    const KEY: ApiKey = ApiKey::DeleteRecords;
    const NAME: &'static str = "DeleteRecords";
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 2;
    type Request = DeleteRecordsRequest;
    type Response = DeleteRecordsResponse;

    async fn handle(call: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
        Outcome::Answer(handle(call.ctx, request).await)
    }
}

/// Answers a DeleteRecords request.
pub async fn handle(ctx: &Rc<Context>, request: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let mut named: HashMap<(&str, i32), usize> = HashMap::new();
    for topic in &request.topics {
        for p in &topic.partitions {
            *named
                .entry((topic.name.0.as_str(), p.partition_index))
                .or_default() += 1;
        }
    }
    let mut by_owner = ByOwner::default();
    let mut planned = Vec::with_capacity(request.topics.len());
    for topic in &request.topics {
        let name = topic.name.0.as_str();
        let partitions: Vec<(i32, Result<usize, ErrorCode>)> = topic
            .partitions
            .iter()
            .map(|p| {
                let index = p.partition_index;
                let plan = if named[&(name, index)] > 1 {
                    Err(ErrorCode::InvalidRequest)
                } else {
                    ctx.shard
                        .metadata()
                        .leader_shard(ctx.node_id, name, index)
                        .map(|owner| by_owner.push(owner, (name.to_owned(), index, p.offset)))
                };
                (index, plan)
            })
            .collect();
        planned.push(partitions);
    }
    let timeout_ms = u64::try_from(request.timeout_ms).unwrap_or(0);
    let answers = by_owner
        .call(
            &ctx.shard,
            |partitions| DeleteRecords {
                partitions,
                timeout_ms,
            },
            |deleted| deleted,
        )
        .await;
    let topics = request
        .topics
        .into_iter()
        .zip(planned)
        .map(|(topic, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(index, plan)| {
                    let (error, low_watermark) = match plan {
                        Err(error) => (error, -1),
                        Ok(place) => answers[place]
                            .1
                            .unwrap_or((ErrorCode::UnknownServerError, -1)),
                    };
                    DeleteRecordsPartitionResult::default()
                        .with_partition_index(index)
                        .with_error_code(error.code())
                        .with_low_watermark(low_watermark)
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}
