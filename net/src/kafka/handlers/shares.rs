//! Helpers shared by ShareFetch and ShareAcknowledge (KIP-932): resolving a
//! request's partitions to the shards that lead them, checking
//! acknowledgement batches as Kafka checks them, a share group's settings,
//! and one [`ShareRead`] per owner shard.
//!
//! A share partition lives on the owner shard of its partition's leader
//! (sluice_shard's `shard::share`); a request's partitions on several
//! shards are read one shard after another, each with the record and byte
//! budget the ones before it left.

use std::net::SocketAddr;

use kafka_protocol::messages::GroupId;
use kafka_protocol::protocol::StrBytes;
use sluice_core::group::configs::share_settings;
use sluice_core::metadata::NO_LEADER;
use sluice_core::share::state::SHARE_STATE_TOPIC;
use sluice_core::ErrorCode;
use sluice_shard::message::{SharePartitionRead, ShareRead, ShareReadResult, ShareSettings};
use uuid::Uuid;

use super::groups::{internal_coordinator, InternalTopic};
use super::topics::topic_by_id;
use crate::kafka::context::Context;

/// The share session table's idle limit: a session unused this long gives
/// way to a new one when the table is full.
pub const SESSION_IDLE_MS: i64 = 60_000;

/// An acknowledgement batch: (first offset, last offset, types).
pub type AckBatch = (i64, i64, Vec<i8>);

/// One partition a request names, resolved.
#[derive(Debug, Clone)]
pub struct SharePart {
    pub topic_id: Uuid,
    pub name: String,
    pub partition: i32,
    pub acks: Vec<AckBatch>,
    /// Its leader here: the owner shard; else why it cannot be served.
    pub owner: Result<u32, ErrorCode>,
    /// (leader id, leader epoch), for a NOT_LEADER_OR_FOLLOWER answer.
    pub leader: (i32, i32),
    /// Records are acquired here: a partition of the member's share
    /// session (not one named only to acknowledge and forgotten).
    pub fetch: bool,
}

impl SharePart {
    /// `partition` of the topic with id `topic_id`, with `acks`.
    pub fn resolve(
        ctx: &Context,
        topic_id: Uuid,
        partition: i32,
        acks: Vec<AckBatch>,
    ) -> SharePart {
        let Some(name) = topic_by_id(ctx, topic_id) else {
            return SharePart {
                topic_id,
                name: String::new(),
                partition,
                acks,
                owner: Err(ErrorCode::UnknownTopicId),
                leader: (NO_LEADER, -1),
                fetch: false,
            };
        };
        let metadata = ctx.shard.metadata();
        let owner = metadata.leader_shard(ctx.node_id, &name, partition);
        let leader = metadata
            .partition(&name, partition)
            .map_or((NO_LEADER, -1), |p| (p.leader, p.leader_epoch));
        drop(metadata);
        SharePart {
            topic_id,
            name,
            partition,
            acks,
            owner,
            leader,
            fetch: false,
        }
    }
}

/// A ShareFetch's or ShareAcknowledge's group and member ids, checked as
/// Kafka checks them: both set, the member id at most 36 characters;
/// INVALID_REQUEST otherwise.
pub fn group_and_member(
    group_id: &Option<GroupId>,
    member_id: &Option<StrBytes>,
) -> Result<(String, String), ErrorCode> {
    let group = match group_id {
        Some(g) if !g.0.is_empty() => g.0.as_str().to_owned(),
        _ => return Err(ErrorCode::InvalidRequest),
    };
    match member_id {
        Some(m) if !m.is_empty() && m.len() <= 36 => Ok((group, m.as_str().to_owned())),
        _ => Err(ErrorCode::InvalidRequest),
    }
}

/// Kafka's checks of a partition's acknowledgement batches: each range in
/// order and apart from the others, one type for the range or one per
/// offset, each type Gap, Accept, Release or Reject, or Renew in a
/// version 2 request marked `IsRenewAck` (`renew`). INVALID_REQUEST
/// otherwise.
pub fn check_acks(batches: &[AckBatch], renew: bool) -> Result<(), ErrorCode> {
    let last_type = if renew { 4 } else { 3 };
    let mut previous_last: Option<i64> = None;
    for (first, last, types) in batches {
        let size = last - first + 1;
        let sized = types.len() == 1 || types.len() as i64 == size;
        if first > last
            || previous_last.is_some_and(|p| *first <= p)
            || types.is_empty()
            || !sized
            || types.iter().any(|t| !(0..=last_type).contains(t))
        {
            return Err(ErrorCode::InvalidRequest);
        }
        previous_last = Some(*last);
    }
    Ok(())
}

/// Creates `__share_group_state` if it does not exist yet (compacted, as
/// the other coordinators' topics): share partitions keep their state
/// there. An error is left to the share partitions' reads, which answer
/// it per partition.
pub async fn ensure_state_topic(ctx: &Context, group_id: &str) {
    // Every share request comes here: the common case is one lookup.
    if ctx.shard.metadata().topics.contains_key(SHARE_STATE_TOPIC) {
        return;
    }
    let group = &ctx.shard.config.group;
    let spec = InternalTopic {
        name: SHARE_STATE_TOPIC,
        partitions: group.share_state_topic_num_partitions,
        replication_factor: group.share_state_topic_replication_factor,
        segment_bytes: group.share_state_topic_segment_bytes,
    };
    if let Err(e) = internal_coordinator(ctx, &spec, group_id).await {
        tracing::debug!(%e, "the share state topic is not available");
    }
}

/// Group `group_id`'s share settings: its configs over the broker's.
pub fn settings(ctx: &Context, group_id: &str) -> ShareSettings {
    let metadata = ctx.shard.metadata();
    let resolved = share_settings(
        metadata.group_configs.get(group_id),
        &ctx.shard.config.group,
    );
    ShareSettings {
        partition: resolved.config,
        reset: resolved.reset,
        dead_letter: resolved.dead_letter,
        read_committed: resolved.read_committed,
    }
}

/// What one [`read`] asks of each owner shard.
pub struct ReadPlan<'a> {
    pub group_id: &'a str,
    pub member_id: &'a str,
    pub acquire: bool,
    pub release: bool,
    pub max_records: usize,
    pub max_bytes: usize,
    pub settings: ShareSettings,
    /// ShareFetch v2's record_limit acquisition: at most `max_records`,
    /// not whole batches.
    pub record_limit: bool,
}

/// Runs `plan` over `parts` (those with an owner): one [`ShareRead`] per
/// owner shard, in the order owners first appear, each with the budgets
/// the ones before it left. One result per part, in order (a part without
/// an owner gets its error; `with_acks` false sends no acknowledgements).
pub async fn read(
    ctx: &Context,
    parts: &[SharePart],
    plan: &ReadPlan<'_>,
    with_acks: bool,
) -> Vec<ShareReadResult> {
    let mut out: Vec<ShareReadResult> = parts
        .iter()
        .map(|p| ShareReadResult::failed(p.owner.err().unwrap_or(ErrorCode::UnknownServerError)))
        .collect();
    let mut owners: Vec<(u32, Vec<usize>)> = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        if let Ok(owner) = p.owner {
            match owners.iter_mut().find(|(o, _)| *o == owner) {
                Some((_, indexes)) => indexes.push(i),
                None => owners.push((owner, vec![i])),
            }
        }
    }
    let mut records_left = plan.max_records;
    let mut bytes_left = plan.max_bytes;
    let per_partition = plan.max_bytes / parts.len().max(1);
    for (owner, indexes) in owners {
        let request = ShareRead {
            group_id: plan.group_id.to_owned(),
            member_id: plan.member_id.to_owned(),
            partitions: indexes
                .iter()
                .map(|&i| SharePartitionRead {
                    topic: parts[i].name.clone(),
                    topic_id: *parts[i].topic_id.as_bytes(),
                    partition: parts[i].partition,
                    max_bytes: per_partition.max(1),
                    acks: if with_acks {
                        parts[i].acks.clone()
                    } else {
                        Vec::new()
                    },
                    fetch: parts[i].fetch,
                })
                .collect(),
            acquire: plan.acquire,
            max_records: records_left,
            max_bytes: bytes_left,
            release: plan.release,
            settings: plan.settings.clone(),
            record_limit: plan.record_limit,
        };
        let results = match ctx.shard.call(owner, request).await {
            Ok(results) => results,
            Err(_) => {
                for &i in &indexes {
                    out[i] = ShareReadResult::failed(ErrorCode::UnknownServerError);
                }
                continue;
            }
        };
        for (&i, result) in indexes.iter().zip(results) {
            let sent: i64 = result.acquired.iter().map(|a| a.last - a.first + 1).sum();
            records_left = records_left.saturating_sub(sent as usize);
            bytes_left = bytes_left.saturating_sub(result.records.len());
            out[i] = result;
        }
    }
    out
}

/// The connection from `peer` closed: the share sessions it opened end,
/// and what their members hold on their partitions goes back for delivery
/// (as Kafka releases a session's records when its connection closes).
pub async fn release_connection(ctx: &Context, peer: SocketAddr) {
    let ended = ctx.share_sessions.borrow_mut().close_connection(peer);
    for (group_id, member_id, partitions) in ended {
        let parts: Vec<SharePart> = partitions
            .into_iter()
            .map(|(id, p)| SharePart::resolve(ctx, Uuid::from_bytes(id), p, Vec::new()))
            .collect();
        let plan = ReadPlan {
            group_id: &group_id,
            member_id: &member_id,
            acquire: false,
            release: true,
            max_records: 0,
            max_bytes: 0,
            settings: settings(ctx, &group_id),
            record_limit: false,
        };
        read(ctx, &parts, &plan, false).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renew_is_an_acknowledge_type_only_when_the_request_says_so() {
        let renew = [(0, 4, vec![4])];
        assert_eq!(check_acks(&renew, false), Err(ErrorCode::InvalidRequest));
        assert_eq!(check_acks(&renew, true), Ok(()));
        let mixed = [(0, 2, vec![1, 4, 3])];
        assert_eq!(check_acks(&mixed, true), Ok(()));
        assert_eq!(
            check_acks(&[(0, 0, vec![5])], true),
            Err(ErrorCode::InvalidRequest)
        );
        assert_eq!(
            check_acks(&[(3, 4, vec![1]), (4, 5, vec![1])], false),
            Err(ErrorCode::InvalidRequest),
            "overlapping ranges"
        );
    }
}
