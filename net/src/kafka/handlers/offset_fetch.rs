//! OffsetFetch (1–9): the committed offsets of one group (v1–7) or of
//! several (v8+), for named partitions or (null topics) every partition the
//! group committed. A partition without a commit reads offset -1.

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{ApiKey, OffsetFetchRequest, OffsetFetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use sluice_core::group::records::CommittedOffset;
use sluice_core::{ErrorCode, PartitionId};
use sluice_shard::{GroupRequest, GroupResponse};

use super::groups::call;
use super::{Call, Handler, Outcome};
use crate::kafka::context::Context;

/// The OffsetFetch handler: [`handle`], at versions 1–9.
pub struct OffsetFetchHandler;

impl Handler for OffsetFetchHandler {
    const KEY: ApiKey = ApiKey::OffsetFetch;
    const NAME: &'static str = "OffsetFetch";
    const MIN_VERSION: i16 = 1;
    const MAX_VERSION: i16 = 9;
    type Request = OffsetFetchRequest;
    type Response = OffsetFetchResponse;

    async fn handle(call: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
        Outcome::Answer(handle(call.ctx, request, call.version).await)
    }
}

type Rows = Vec<(String, PartitionId, Option<CommittedOffset>)>;
/// One topic's partitions and their committed offsets.
type TopicRows = (String, Vec<(PartitionId, Option<CommittedOffset>)>);

async fn fetch(
    ctx: &Context,
    group_id: &str,
    partitions: Option<Vec<(String, PartitionId)>>,
) -> Result<Rows, ErrorCode> {
    let request = GroupRequest::FetchOffsets {
        group_id: group_id.to_owned(),
        partitions,
    };
    match call(ctx, group_id, request).await {
        GroupResponse::Offsets(rows) => rows,
        GroupResponse::Error(e) => Err(e),
        _ => Err(ErrorCode::UnknownServerError),
    }
}

/// Rows grouped by topic, in first-seen order.
fn by_topic(rows: Rows) -> Vec<TopicRows> {
    let mut topics: Vec<TopicRows> = Vec::new();
    for (topic, p, v) in rows {
        match topics.iter_mut().find(|(t, _)| *t == topic) {
            Some((_, ps)) => ps.push((p, v)),
            None => topics.push((topic, vec![(p, v)])),
        }
    }
    topics
}

fn fields(v: &Option<CommittedOffset>) -> (i64, i32, StrBytes) {
    match v {
        Some(v) => (
            v.offset,
            v.leader_epoch,
            StrBytes::from_string(v.metadata.clone()),
        ),
        None => (-1, -1, StrBytes::default()),
    }
}

/// Answers an OffsetFetch request.
pub async fn handle(
    ctx: &Context,
    request: OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
    if version >= 8 {
        let mut groups = Vec::with_capacity(request.groups.len());
        for g in request.groups {
            let wanted = g.topics.map(|ts| {
                ts.into_iter()
                    .flat_map(|t| {
                        let name = t.name.0.as_str().to_owned();
                        t.partition_indexes
                            .into_iter()
                            .map(move |p| (name.clone(), p))
                    })
                    .collect()
            });
            let group = OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
            groups.push(match fetch(ctx, g.group_id.0.as_str(), wanted).await {
                Err(e) => group.with_error_code(e.code()),
                Ok(rows) => group.with_topics(
                    by_topic(rows)
                        .into_iter()
                        .map(|(topic, ps)| {
                            OffsetFetchResponseTopics::default()
                                .with_name(TopicName(StrBytes::from_string(topic)))
                                .with_partitions(
                                    ps.into_iter()
                                        .map(|(p, v)| {
                                            let (offset, epoch, metadata) = fields(&v);
                                            OffsetFetchResponsePartitions::default()
                                                .with_partition_index(p)
                                                .with_committed_offset(offset)
                                                .with_committed_leader_epoch(epoch)
                                                .with_metadata(Some(metadata))
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                ),
            });
        }
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let wanted = request.topics.map(|ts| {
        ts.into_iter()
            .flat_map(|t| {
                let name = t.name.0.as_str().to_owned();
                t.partition_indexes
                    .into_iter()
                    .map(move |p| (name.clone(), p))
            })
            .collect::<Vec<_>>()
    });
    let (rows, error) = match fetch(ctx, request.group_id.0.as_str(), wanted.clone()).await {
        Ok(rows) => (rows, ErrorCode::None),
        // v1 has no top-level error: each partition carries it.
        Err(e) => (
            wanted
                .unwrap_or_default()
                .into_iter()
                .map(|(t, p)| (t, p, None))
                .collect(),
            e,
        ),
    };
    let partition_error = if version < 2 { error } else { ErrorCode::None };
    let topics = by_topic(rows)
        .into_iter()
        .map(|(topic, ps)| {
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic)))
                .with_partitions(
                    ps.into_iter()
                        .map(|(p, v)| {
                            let (offset, epoch, metadata) = fields(&v);
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(offset)
                                .with_committed_leader_epoch(epoch)
                                .with_metadata(Some(metadata))
                                .with_error_code(partition_error.code())
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetFetchResponse::default()
        .with_topics(topics)
        .with_error_code(if version >= 2 { error.code() } else { 0 })
}
