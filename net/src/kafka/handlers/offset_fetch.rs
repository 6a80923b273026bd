//! OffsetFetch (1–9): the committed offsets of one group (v1–7) or of
//! several (v8+), for named partitions or (null topics) every partition the
//! group committed. A partition without a commit reads offset -1. A group
//! of v9 may name the KIP-848 member asking and its epoch: an unknown
//! member or another epoch gets that group's UNKNOWN_MEMBER_ID or
//! STALE_MEMBER_EPOCH, as in Kafka.

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{ApiKey, OffsetFetchRequest, OffsetFetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use sluice_core::group::records::CommittedOffset;
use sluice_core::{ErrorCode, PartitionId};
use sluice_shard::message::OffsetRow;
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

type Rows = Vec<OffsetRow>;
/// One partition's committed offset, or its error.
type Committed = Result<Option<CommittedOffset>, ErrorCode>;
/// One topic's partitions and their committed offsets.
type TopicRows = (String, Vec<(PartitionId, Committed)>);

/// The KIP-848 member an OffsetFetch v9 group names (its id, its epoch);
/// `(None, -1)` for none.
type Asker = (Option<String>, i32);

async fn fetch(
    ctx: &Context,
    group_id: &str,
    partitions: Option<Vec<(String, PartitionId)>>,
    require_stable: bool,
    (member_id, member_epoch): Asker,
) -> Result<Rows, ErrorCode> {
    let request = GroupRequest::FetchOffsets {
        group_id: group_id.to_owned(),
        partitions,
        require_stable,
        member_id,
        member_epoch,
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

/// A partition's offset, epoch, metadata and error.
fn fields(v: &Committed) -> (i64, i32, StrBytes, ErrorCode) {
    match v {
        Ok(Some(v)) => (
            v.offset,
            v.leader_epoch,
            StrBytes::from_string(v.metadata.clone()),
            ErrorCode::None,
        ),
        Ok(None) => (-1, -1, StrBytes::default(), ErrorCode::None),
        Err(e) => (-1, -1, StrBytes::default(), *e),
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
            let stable = request.require_stable;
            let asker = if version >= 9 {
                (g.member_id.map(|m| m.as_str().to_owned()), g.member_epoch)
            } else {
                (None, -1)
            };
            groups.push(
                match fetch(ctx, g.group_id.0.as_str(), wanted, stable, asker).await {
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
                                                let (offset, epoch, metadata, error) = fields(&v);
                                                OffsetFetchResponsePartitions::default()
                                                    .with_partition_index(p)
                                                    .with_committed_offset(offset)
                                                    .with_committed_leader_epoch(epoch)
                                                    .with_metadata(Some(metadata))
                                                    .with_error_code(error.code())
                                            })
                                            .collect(),
                                    )
                            })
                            .collect(),
                    ),
                },
            );
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
    let require_stable = version >= 7 && request.require_stable;
    let group_id = request.group_id.0.as_str();
    let (rows, error) = match fetch(ctx, group_id, wanted.clone(), require_stable, (None, -1)).await
    {
        Ok(rows) => (rows, ErrorCode::None),
        // v1 has no top-level error: each partition carries it.
        Err(e) => (
            wanted
                .unwrap_or_default()
                .into_iter()
                .map(|(t, p)| (t, p, Ok(None)))
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
                            let (offset, epoch, metadata, error) = fields(&v);
                            let error = if error == ErrorCode::None {
                                partition_error
                            } else {
                                error
                            };
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(offset)
                                .with_committed_leader_epoch(epoch)
                                .with_metadata(Some(metadata))
                                .with_error_code(error.code())
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetFetchResponse::default()
        .with_topics(topics)
        .with_error_code(if version >= 2 { error.code() } else { 0 })
}
