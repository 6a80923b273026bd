//! ListOffsets (1–10; Kafka 4.4's v11 only adds a timestamp for tiered
//! storage, and the wire crate stops at v10): per partition, the offset for a timestamp, asked of
//! the partition's owner shard (one message per owner for all its
//! partitions): -1 latest (the high watermark), -2 earliest
//! (the log start offset), -3 the record with the largest timestamp (v7+),
//! -4 earliest local (v8+; without tiered storage the log start offset),
//! -5 latest tiered (v9+), which without tiered storage has no offset (-1,
//! as Kafka answers it; v10's timeout is not needed here),
//! otherwise the first offset whose timestamp is at or after the one given.
//!
//! Under `read_committed` (v2+), latest is the last stable offset and a
//! timestamp finds only offsets below it, as Kafka answers.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ApiKey, ListOffsetsRequest, ListOffsetsResponse};
use sluice_core::ErrorCode;
use sluice_shard::message::ListOffsets;

use super::owners::ByOwner;
use super::{Call, Handler, Outcome};
use crate::kafka::context::Context;

/// The ListOffsets handler: [`handle`], at versions 1–10.
pub struct ListOffsetsHandler;

impl Handler for ListOffsetsHandler {
    const KEY: ApiKey = ApiKey::ListOffsets;
    const NAME: &'static str = "ListOffsets";
    const MIN_VERSION: i16 = 1;
    const MAX_VERSION: i16 = 10;
    type Request = ListOffsetsRequest;
    type Response = ListOffsetsResponse;

    async fn handle(call: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
        Outcome::Answer(handle(call.ctx, request, call.version).await)
    }
}

/// Kafka's special timestamps.
const EARLIEST_TIMESTAMP: i64 = -2;
const EARLIEST_LOCAL_TIMESTAMP: i64 = -4;
const LATEST_TIERED_TIMESTAMP: i64 = -5;

fn partition_response(
    index: i32,
    error: ErrorCode,
    offset: i64,
    timestamp: i64,
    version: i16,
    epoch: i32,
) -> ListOffsetsPartitionResponse {
    // v4+ carry a leader epoch with the offset returned (the partition's
    // current one: epochs of single records are not kept); -1 when there
    // is no offset (and v1–3 cannot carry anything but -1).
    let leader_epoch = if version >= 4 && error == ErrorCode::None && offset >= 0 {
        epoch
    } else {
        -1
    };
    ListOffsetsPartitionResponse::default()
        .with_partition_index(index)
        .with_error_code(error.code())
        .with_timestamp(timestamp)
        .with_offset(offset)
        .with_leader_epoch(leader_epoch)
}

/// Kafka's check of the client's `current_leader_epoch` against the
/// partition's `epoch` (v4+; -1 skips it): newer than this broker knows is
/// UNKNOWN_LEADER_EPOCH (the client retries), older is FENCED_LEADER_EPOCH.
fn leader_epoch_error(current_leader_epoch: i32, epoch: i32) -> Option<ErrorCode> {
    match current_leader_epoch {
        -1 => None,
        e if e == epoch => None,
        e if e > epoch => Some(ErrorCode::UnknownLeaderEpoch),
        _ => Some(ErrorCode::FencedLeaderEpoch),
    }
}

/// Answers a ListOffsets request.
pub async fn handle(
    ctx: &Rc<Context>,
    request: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    let read_committed = version >= 2 && request.isolation_level == 1;
    // Kafka answers INVALID_REQUEST for a partition named twice.
    let mut asked: HashMap<(&str, i32), usize> = HashMap::new();
    for topic in &request.topics {
        for p in &topic.partitions {
            *asked
                .entry((topic.name.0.as_str(), p.partition_index))
                .or_default() += 1;
        }
    }
    let duplicates: HashSet<(String, i32)> = asked
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|((t, p), _)| (t.to_owned(), p))
        .collect();

    // Per partition: its error when refused here, or its place among what
    // the owners are asked (one message per owner shard).
    let mut by_owner = ByOwner::default();
    let mut planned = Vec::with_capacity(request.topics.len());
    for topic in &request.topics {
        let name = topic.name.0.as_str().to_owned();
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in &topic.partitions {
            let index = p.partition_index;
            let owner = ctx.shard.metadata().leader_shard(ctx.node_id, &name, index);
            let epoch = ctx
                .shard
                .metadata()
                .partition(&name, index)
                .map_or(0, |meta| meta.leader_epoch);
            let epoch_error = if version >= 4 && owner.is_ok() {
                leader_epoch_error(p.current_leader_epoch, epoch)
            } else {
                None
            };
            let timestamp = match p.timestamp {
                EARLIEST_LOCAL_TIMESTAMP if version >= 8 => EARLIEST_TIMESTAMP,
                t => t,
            };
            let tiered = timestamp == LATEST_TIERED_TIMESTAMP && version >= 9;
            let plan = if !duplicates.is_empty() && duplicates.contains(&(name.clone(), index)) {
                Err(ErrorCode::InvalidRequest)
            } else if let Some(error) = epoch_error {
                Err(error)
            } else if tiered && owner.is_ok() {
                // Nothing is tiered: no such offset, and no error.
                Ok(None)
            } else {
                owner.map(|owner| Some(by_owner.push(owner, (name.clone(), index, timestamp))))
            };
            partitions.push((index, plan, epoch));
        }
        planned.push(partitions);
    }
    let answers = by_owner
        .call(
            &ctx.shard,
            |partitions| ListOffsets {
                partitions,
                read_committed,
            },
            |listed| listed,
        )
        .await;

    let mut topics = Vec::with_capacity(request.topics.len());
    for (topic, partitions) in request.topics.into_iter().zip(planned) {
        let partitions = partitions
            .into_iter()
            .map(|(index, plan, epoch)| {
                let listed = match plan {
                    Err(error) => Err(error),
                    Ok(None) => Ok(sluice_shard::message::ListedOffset {
                        error: ErrorCode::None,
                        offset: -1,
                        timestamp: -1,
                    }),
                    Ok(Some(place)) => answers[place].1.map_err(|_| ErrorCode::UnknownServerError),
                };
                match listed {
                    Ok(l) if l.error == ErrorCode::None => {
                        partition_response(index, l.error, l.offset, l.timestamp, version, epoch)
                    }
                    Ok(l) => partition_response(index, l.error, -1, -1, version, epoch),
                    Err(error) => partition_response(index, error, -1, -1, version, epoch),
                }
            })
            .collect();
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    ListOffsetsResponse::default().with_topics(topics)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leader_epoch_is_checked_as_kafka_does() {
        assert_eq!(leader_epoch_error(-1, 0), None);
        assert_eq!(leader_epoch_error(0, 0), None);
        assert_eq!(
            leader_epoch_error(1, 0),
            Some(ErrorCode::UnknownLeaderEpoch)
        );
        assert_eq!(
            leader_epoch_error(-5, 0),
            Some(ErrorCode::FencedLeaderEpoch)
        );
        // After a leader change the partition's epoch is what matches.
        assert_eq!(leader_epoch_error(2, 2), None);
        assert_eq!(leader_epoch_error(1, 2), Some(ErrorCode::FencedLeaderEpoch));
    }

    #[test]
    fn leader_epoch_is_only_set_where_the_version_carries_it() {
        assert_eq!(
            partition_response(0, ErrorCode::None, 5, -1, 3, 0).leader_epoch,
            -1
        );
        assert_eq!(
            partition_response(0, ErrorCode::None, 5, -1, 4, 2).leader_epoch,
            2
        );
        assert_eq!(
            partition_response(0, ErrorCode::None, -1, -1, 7, 0).leader_epoch,
            -1
        );
        assert_eq!(
            partition_response(0, ErrorCode::UnknownTopicOrPartition, -1, -1, 7, 0).leader_epoch,
            -1
        );
    }
}
