//! DescribeShareGroupOffsets (0): each share partition's start offset
//! (SPSO) for share groups (`kafka-share-groups.sh --describe`,
//! `Admin.listShareGroupOffsets`). With no topics named, every share
//! partition the group has is listed; a named partition the group never
//! read has start offset -1, as Kafka answers an uninitialized one.
//!
//! A share partition is held in memory by the owner shard of its
//! partition's leader once used, and its state is stored on the leader of
//! its `__share_group_state` partition: in a cluster, on any broker. So
//! every shard here is asked for both, and every other broker leading a
//! partition is asked for its part (this request with `TAG_THIS_BROKER`
//! on the group: see [`super::share_peers`]). Where a share
//! partition is held, that answer wins (unless its holder is stale, see
//! [`merge`]); otherwise its stored state gives the start (after a
//! restart, or once its leader let it go idle), as Kafka's coordinator
//! reads it from its share coordinator.
//!
//! Each partition also carries sluice's counts in tagged fields
//! ([`TAG_IN_FLIGHT`], [`TAG_ACQUIRED`], [`TAG_LAG`]); one only stored
//! carries [`TAG_STORED`], and its lag is computed as Kafka's coordinator
//! does, from its partition's high watermark asked of its leader, its
//! start and the records done ([`TAG_DONE`]). Version 1 (Kafka 4.4's
//! admin client asks for it) carries the lag in its own field
//! ([`crate::kafka::share_offsets_v1`]), -1 where unknown.

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::messages::describe_share_group_offsets_request::DescribeShareGroupOffsetsRequestGroup;
use kafka_protocol::messages::describe_share_group_offsets_response::{
    DescribeShareGroupOffsetsResponseGroup, DescribeShareGroupOffsetsResponsePartition,
    DescribeShareGroupOffsetsResponseTopic,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId, DescribeShareGroupOffsetsRequest, DescribeShareGroupOffsetsResponse, GroupId,
    ListOffsetsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_core::metadata::LeaderHome;
use sluice_core::share::partition::lag;
use sluice_core::ErrorCode;
use sluice_shard::message::{
    DescribeSharePartitions, ListOffsets, SharePartitionState, StoredSharePartitions,
    StoredShareState,
};
use uuid::Uuid;

use super::share_peers::{other_brokers, TAG_THIS_BROKER};
use super::topics::{topic_by_id, topic_id};
use super::{Call, Handler, Outcome};
use crate::kafka::context::Context;
use crate::kafka::share_offsets_v1;

/// ListOffsets with topic names and a timestamp (-1: latest).
const LIST_OFFSETS_VERSION: i16 = 4;

/// The DescribeShareGroupOffsets handler: [`handle`], at versions 0 and 1.
pub struct DescribeShareGroupOffsetsHandler;

impl Handler for DescribeShareGroupOffsetsHandler {
    const KEY: ApiKey = ApiKey::DescribeShareGroupOffsets;
    const NAME: &'static str = "DescribeShareGroupOffsets";
    const MIN_VERSION: i16 = 0;
    /// Version 1 (its Lag field) through crate::kafka::share_offsets_v1.
    const MAX_VERSION: i16 = 1;
    type Request = DescribeShareGroupOffsetsRequest;
    type Response = DescribeShareGroupOffsetsResponse;

    async fn handle(call: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
        Outcome::Answer(handle(call.ctx, request).await)
    }
}

/// Tagged fields sluice adds to a partition's answer (other clients skip
/// tags they do not know): the records in flight (available or acquired),
/// those acquired now, and the lag (records still to be done with), which
/// the version served here has no field for. `sluice group describe`
/// shows them.
pub const TAG_IN_FLIGHT: i32 = 10_000;
pub const TAG_ACQUIRED: i32 = 10_001;
pub const TAG_LAG: i32 = 10_002;
/// On a partition's answer: no broker holds it in memory, its start and
/// records in flight are those stored.
pub const TAG_STORED: i32 = 10_003;
/// On a stored partition's answer between brokers: the records from its
/// start on that are done with (the coordinator computes its lag).
pub const TAG_DONE: i32 = 10_004;

fn count(n: usize) -> Bytes {
    Bytes::copy_from_slice(&(n.min(i32::MAX as usize) as i32).to_be_bytes())
}

fn held_tags(s: &SharePartitionState) -> BTreeMap<i32, Bytes> {
    BTreeMap::from([
        (TAG_IN_FLIGHT, count(s.in_flight)),
        (TAG_ACQUIRED, count(s.acquired)),
        (TAG_LAG, Bytes::copy_from_slice(&s.lag.to_be_bytes())),
    ])
}

fn stored_tags(s: &StoredShareState) -> BTreeMap<i32, Bytes> {
    BTreeMap::from([
        (TAG_IN_FLIGHT, count(s.in_flight)),
        (TAG_ACQUIRED, count(0)),
        (TAG_STORED, Bytes::new()),
        (TAG_DONE, count(s.done)),
    ])
}

/// The i32 or i64 tag `tag` of `tags`.
fn tag_value(tags: &BTreeMap<i32, Bytes>, tag: i32) -> Option<i64> {
    let b = tags.get(&tag)?;
    match b.len() {
        4 => Some(i64::from(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))),
        8 => <[u8; 8]>::try_from(&b[..]).ok().map(i64::from_be_bytes),
        _ => None,
    }
}

/// The lag of every share partition only stored, as Kafka's coordinator
/// computes it: its partition's high watermark (ListOffsets latest, asked
/// of its leader: an owner shard here or another broker) less its start
/// and the records done. Left without where the high watermark cannot be
/// had (no leader, an error).
async fn stored_lags(ctx: &Context, all: &mut FoundPartitions) {
    let mut here: BTreeMap<u32, Vec<Named>> = BTreeMap::new();
    let mut elsewhere: BTreeMap<i32, Vec<Named>> = BTreeMap::new();
    {
        let metadata = ctx.shard.metadata();
        for (key, f) in all.iter() {
            if f.held {
                continue;
            }
            let Some(name) = topic_by_id(ctx, key.0) else {
                continue;
            };
            match metadata.leader_home(ctx.node_id, &name, key.1) {
                Some(LeaderHome::Here(shard)) => here.entry(shard).or_default().push((*key, name)),
                Some(LeaderHome::Broker(broker)) => {
                    elsewhere.entry(broker).or_default().push((*key, name))
                }
                None => {}
            }
        }
    }
    let mut high_watermarks: Vec<((Uuid, i32), i64)> = Vec::new();
    for (shard, parts) in here {
        let ask = ListOffsets {
            partitions: parts
                .iter()
                .map(|(k, name)| (name.clone(), k.1, -1))
                .collect(),
            read_committed: false,
        };
        if let Ok(listed) = ctx.shard.call(shard, ask).await {
            for ((key, _), l) in parts.iter().zip(listed) {
                if l.error == ErrorCode::None {
                    high_watermarks.push((*key, l.offset));
                }
            }
        }
    }
    for (broker, parts) in elsewhere {
        let topics = parts
            .iter()
            .map(|(k, name)| {
                ListOffsetsTopic::default()
                    .with_name(TopicName(StrBytes::from_string(name.clone())))
                    .with_partitions(vec![ListOffsetsPartition::default()
                        .with_partition_index(k.1)
                        .with_current_leader_epoch(-1)
                        .with_timestamp(-1)])
            })
            .collect();
        let ask = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(topics);
        let Ok(answer) = ctx
            .shard
            .call_broker_at(broker, &ask, LIST_OFFSETS_VERSION)
            .await
        else {
            continue;
        };
        for (key, name) in &parts {
            let listed = answer
                .topics
                .iter()
                .filter(|t| t.name.0.as_str() == name)
                .flat_map(|t| t.partitions.iter())
                .find(|p| p.partition_index == key.1 && p.error_code == 0);
            if let Some(p) = listed {
                high_watermarks.push((*key, p.offset));
            }
        }
    }
    for (key, high_watermark) in high_watermarks {
        if let Some(f) = all.get_mut(&key) {
            let done = tag_value(&f.tags, TAG_DONE).unwrap_or(0).max(0) as usize;
            let lag = lag(high_watermark, f.start_offset, done);
            f.tags
                .insert(TAG_LAG, Bytes::copy_from_slice(&lag.to_be_bytes()));
        }
    }
}

/// What is known of one share partition: its start offset and sluice's
/// tags, and whether a broker holds it (else it is only stored).
#[derive(Debug, Clone)]
pub struct Found {
    pub start_offset: i64,
    pub tags: BTreeMap<i32, Bytes>,
    pub held: bool,
}

/// A group's share partitions by (topic id, partition).
pub type FoundPartitions = BTreeMap<(Uuid, i32), Found>;

/// A share partition's key with its topic's name.
type Named = ((Uuid, i32), String);

/// Adds `found` for `key`: of two answers for one share partition, the
/// one with the later start wins, and on a tie a held one (it has the
/// counts). Starts only move forward (but for a reset, written before it
/// is answered), and a holder writes every change before it answers, so
/// a stored start ahead of a held one means that holder is stale: it lost
/// the partition's leadership and has not learned it yet.
fn merge(all: &mut FoundPartitions, key: (Uuid, i32), found: Found) {
    let replace = match all.get(&key) {
        None => true,
        Some(known) => {
            found.start_offset > known.start_offset
                || (found.start_offset == known.start_offset && found.held && !known.held)
        }
    };
    if replace {
        all.insert(key, found);
    }
}

/// This broker's part: what every shard holds and what the state
/// partitions its shards lead store.
async fn this_brokers_part(
    ctx: &Context,
    group_id: &str,
    all: &mut FoundPartitions,
) -> Result<(), ErrorCode> {
    for shard in 0..ctx.shard.shards {
        let held = ctx
            .shard
            .call(
                shard,
                DescribeSharePartitions {
                    group_id: group_id.to_owned(),
                },
            )
            .await
            .map_err(|_| ErrorCode::CoordinatorNotAvailable)?;
        for s in held {
            let found = Found {
                start_offset: s.start_offset,
                tags: held_tags(&s),
                held: true,
            };
            merge(all, (Uuid::from_bytes(s.topic_id), s.partition), found);
        }
        let stored = ctx
            .shard
            .call(
                shard,
                StoredSharePartitions {
                    group_id: group_id.to_owned(),
                },
            )
            .await
            .map_err(|_| ErrorCode::CoordinatorNotAvailable)?
            .map_err(|e| {
                tracing::debug!(group = group_id, shard, error = ?e, "stored share states unread");
                ErrorCode::CoordinatorNotAvailable
            })?;
        for s in stored {
            let found = Found {
                start_offset: s.start_offset,
                tags: stored_tags(&s),
                held: false,
            };
            merge(all, (Uuid::from_bytes(s.topic_id), s.partition), found);
        }
    }
    Ok(())
}

/// Broker `broker`'s part, asked of it with [`TAG_THIS_BROKER`].
async fn other_brokers_part(
    ctx: &Context,
    broker: i32,
    group_id: &str,
    all: &mut FoundPartitions,
) -> Result<(), ErrorCode> {
    let mut group = DescribeShareGroupOffsetsRequestGroup::default()
        .with_group_id(GroupId(StrBytes::from_string(group_id.to_owned())))
        .with_topics(None);
    group
        .unknown_tagged_fields
        .insert(TAG_THIS_BROKER, Bytes::new());
    let request = DescribeShareGroupOffsetsRequest::default().with_groups(vec![group]);
    let answer = ctx.shard.call_broker(broker, &request).await?;
    let group = answer
        .groups
        .into_iter()
        .next()
        .ok_or(ErrorCode::CoordinatorNotAvailable)?;
    match ErrorCode::from_code(group.error_code) {
        ErrorCode::None => {}
        error => return Err(error),
    }
    for topic in group.topics {
        for p in topic.partitions {
            let mut tags = p.unknown_tagged_fields;
            let held = tags.remove(&TAG_STORED).is_none();
            if !held {
                tags.insert(TAG_STORED, Bytes::new());
            }
            let found = Found {
                start_offset: p.start_offset,
                tags,
                held,
            };
            merge(all, (topic.topic_id, p.partition_index), found);
        }
    }
    Ok(())
}

/// Every share partition of `group_id`: this broker's part, and unless
/// `this_broker_only`, every other broker's that leads a partition.
pub async fn share_partitions(
    ctx: &Context,
    group_id: &str,
    this_broker_only: bool,
) -> Result<FoundPartitions, ErrorCode> {
    let mut all = FoundPartitions::new();
    this_brokers_part(ctx, group_id, &mut all).await?;
    if this_broker_only {
        return Ok(all);
    }
    for broker in other_brokers(ctx) {
        other_brokers_part(ctx, broker, group_id, &mut all).await?;
    }
    stored_lags(ctx, &mut all).await;
    Ok(all)
}

/// Answers a DescribeShareGroupOffsets request.
pub async fn handle(
    ctx: &Context,
    request: DescribeShareGroupOffsetsRequest,
) -> DescribeShareGroupOffsetsResponse {
    let mut groups = Vec::with_capacity(request.groups.len());
    for group in &request.groups {
        let group_id = group.group_id.0.as_str().to_owned();
        let answer =
            DescribeShareGroupOffsetsResponseGroup::default().with_group_id(group.group_id.clone());
        let this_broker_only = group.unknown_tagged_fields.contains_key(&TAG_THIS_BROKER);
        let found = match share_partitions(ctx, &group_id, this_broker_only).await {
            Ok(found) => found,
            Err(e) => {
                groups.push(answer.with_error_code(e.code()));
                continue;
            }
        };
        let partition = |p: i32, found: Option<&Found>| {
            let mut answer = DescribeShareGroupOffsetsResponsePartition::default()
                .with_partition_index(p)
                .with_start_offset(found.map_or(-1, |f| f.start_offset))
                .with_leader_epoch(-1);
            if let Some(f) = found {
                answer = answer.with_unknown_tagged_fields(f.tags.clone());
            }
            // Version 1's Lag: -1 where unknown (Kafka's uninitialized lag).
            let lag = found.and_then(|f| tag_value(&f.tags, TAG_LAG));
            share_offsets_v1::set_lag(&mut answer, lag.unwrap_or(-1));
            answer
        };
        let topics = match &group.topics {
            Some(named) => named
                .iter()
                .map(|t| {
                    let name = t.topic_name.0.as_str();
                    let id = topic_id(ctx, name);
                    let partitions = t
                        .partitions
                        .iter()
                        .map(|p| {
                            if id.is_nil() {
                                partition(*p, None)
                                    .with_error_code(ErrorCode::UnknownTopicOrPartition.code())
                            } else {
                                partition(*p, found.get(&(id, *p)))
                            }
                        })
                        .collect();
                    DescribeShareGroupOffsetsResponseTopic::default()
                        .with_topic_name(t.topic_name.clone())
                        .with_topic_id(id)
                        .with_partitions(partitions)
                })
                .collect(),
            None => {
                let mut topics: Vec<DescribeShareGroupOffsetsResponseTopic> = Vec::new();
                for ((id, p), f) in &found {
                    // A topic deleted since is not listed.
                    let Some(name) = topic_by_id(ctx, *id) else {
                        continue;
                    };
                    let p = partition(*p, Some(f));
                    match topics.iter_mut().find(|t| t.topic_id == *id) {
                        Some(t) => t.partitions.push(p),
                        None => topics.push(
                            DescribeShareGroupOffsetsResponseTopic::default()
                                .with_topic_name(TopicName(StrBytes::from_string(name)))
                                .with_topic_id(*id)
                                .with_partitions(vec![p]),
                        ),
                    }
                }
                topics
            }
        };
        groups.push(answer.with_topics(topics));
    }
    DescribeShareGroupOffsetsResponse::default().with_groups(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(start_offset: i64, held: bool) -> Found {
        Found {
            start_offset,
            tags: BTreeMap::new(),
            held,
        }
    }

    fn merged(answers: &[Found]) -> (i64, bool) {
        let mut all = FoundPartitions::new();
        for a in answers {
            merge(&mut all, (Uuid::nil(), 0), a.clone());
        }
        let f = &all[&(Uuid::nil(), 0)];
        (f.start_offset, f.held)
    }

    #[test]
    fn a_holder_wins_unless_what_is_stored_is_ahead_of_it() {
        // Held and stored agree: the holder's answer, in either order.
        assert_eq!(merged(&[found(4, false), found(4, true)]), (4, true));
        assert_eq!(merged(&[found(4, true), found(4, false)]), (4, true));
        // The holder is ahead (its answer is written before it is given).
        assert_eq!(merged(&[found(3, false), found(4, true)]), (4, true));
        // A stale holder behind what its successor stored.
        assert_eq!(merged(&[found(2, true), found(4, false)]), (4, false));
        assert_eq!(merged(&[found(4, false), found(2, true)]), (4, false));
    }
}
