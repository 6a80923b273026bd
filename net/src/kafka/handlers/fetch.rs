//! Fetch (4–18; v17 adds the follower's directory id and v18 its high
//! watermark, neither used here): reads from each partition's owner shard, long polling
//! with `max_wait_ms` / `min_bytes`, within `max_bytes` (capped by the
//! broker's `fetch.max.bytes`) and each partition's `partition_max_bytes`.
//!
//! One message per owner shard and pass: the owners are asked in the order
//! their first partition appears in the request, each with the budget the
//! ones before it left, and each reads its partitions in request order, so
//! the response never holds more than `max_bytes` (beyond the one batch
//! Kafka lets the first partition with data return). A long poll is one
//! watch per owner shard; the first to fire ends the wait and the others
//! are cancelled, so nothing stays parked once the Fetch is answered.
//!
//! Fetch sessions (KIP-227) are refused the way Kafka clients expect: every
//! answer carries session id 0, so clients keep sending full fetches.
//!
//! A follower's fetch (`replica_id` set: the request's field before v15,
//! `replica_state` from v15) goes to the leader's owner shard like a
//! consumer's; the owner counts its offset as the follower's log end and
//! reads up to the log end instead of the high watermark, and its long
//! poll waits for appends. A consumer that names a rack (v11+) may read at
//! a broker that follows the partition (KIP-392), up to that follower's
//! high watermark. With `kafka.replica_selector_class` set to Kafka's
//! rack-aware selector, the leader answers such a consumer with the
//! in-sync replica in its rack as `preferred_read_replica` and no records
//! (core's [`rack_replica`]); the consumer then fetches there.
//!
//! A follower's fetch of replicas the topic's
//! `leader.replication.throttled.replicas` names on this broker, from a
//! follower not in the in-sync set, spends the
//! leader throttle (`leader.replication.throttled.rate`, this shard's
//! share); while it is spent those partitions are answered with no records,
//! as Kafka's leader quota does.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, ProducerId, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_core::metadata::dynamic_config::{
    names_replica, LEADER_THROTTLED_RATE, LEADER_THROTTLED_REPLICAS,
};
use sluice_core::replication::read_replica::{is_rack_aware, rack_replica};
use sluice_core::txn::partition::AbortedTxn;
use sluice_core::ErrorCode;
use sluice_shard::message::{CancelWatch, Fetch, Watch};
use sluice_shard::{FetchResult, PartitionRead, Unreachable};
use uuid::Uuid;

use super::topics::{topic_by_id, topic_id};
use super::{Call, Handler, Outcome};
use crate::kafka::context::Context;
use crate::kafka::{quotas, response_frame};

/// The Fetch handler: [`handle`], at versions 4–18.
pub struct FetchHandler;

impl Handler for FetchHandler {
    const KEY: ApiKey = ApiKey::Fetch;
    const NAME: &'static str = "Fetch";
    const MIN_VERSION: i16 = 4;
    const MAX_VERSION: i16 = 18;
    type Request = FetchRequest;
    type Response = FetchResponse;

    async fn handle(call: Call<'_>, mut request: Self::Request) -> Outcome<Self::Response> {
        let from_replica = request.replica_id.0 >= 0 || request.replica_state.replica_id.0 >= 0;
        if !from_replica {
            // A consumer with a byte-rate quota fetches at most its
            // quota's worth for the window at once, as Kafka limits it.
            let client_id = call.header.client_id.as_deref();
            if let Some(limit) = quotas::fetch_max_bytes(call.ctx, client_id) {
                let asked = if request.max_bytes <= 0 {
                    i32::MAX
                } else {
                    request.max_bytes
                };
                request.max_bytes = asked.min(limit).max(1);
                request.min_bytes = request.min_bytes.min(request.max_bytes);
            }
        }
        Outcome::Answer(handle(call.ctx, request, call.version).await)
    }
}

/// One partition asked for, resolved to its owner.
struct Wanted {
    topic_index: usize,
    name: String,
    partition: i32,
    offset: i64,
    max_bytes: usize,
    current_leader_epoch: i32,
    /// A follower's log start offset (v5+; -1 before).
    log_start_offset: i64,
    owner: Option<u32>,
    /// Set when the topic id or name is unknown.
    error: Option<ErrorCode>,
    /// The replica the consumer should read from instead (KIP-392): the
    /// partition is answered at once with it and no records.
    preferred: Option<i32>,
}

/// Answers a Fetch request.
pub async fn handle(ctx: &Rc<Context>, request: FetchRequest, version: i16) -> FetchResponse {
    if request.session_id > 0 {
        return FetchResponse::default().with_error_code(ErrorCode::FetchSessionIdNotFound.code());
    }
    // A follower names itself (KIP-392 moved the id into `replica_state`).
    let replica_id = if version >= 15 {
        request.replica_state.replica_id.0
    } else {
        request.replica_id.0
    };
    // A consumer that names its rack may read from a follower (KIP-392).
    let from_follower = replica_id < 0 && version >= 11 && !request.rack_id.is_empty();
    let select_by_rack =
        from_follower && is_rack_aware(ctx.shard.config.kafka.replica_selector_class.as_deref());
    let leader_rate = if replica_id >= 0 {
        leader_throttle_rate(ctx)
    } else {
        None
    };
    let held_back = leader_rate.is_some() && {
        let now = ctx.shard.env().monotonic_ms() as i64;
        !ctx.leader_throttle.borrow_mut().allows(now)
    };
    let mut throttled: Vec<bool> = Vec::new();
    let mut topics_out: Vec<(TopicName, Uuid)> = Vec::new();
    let mut wanted = Vec::new();
    for topic in &request.topics {
        let (name, id, unknown) = if version >= 13 {
            match topic_by_id(ctx, topic.topic_id) {
                Some(name) => (name, topic.topic_id, None),
                None => (
                    String::new(),
                    topic.topic_id,
                    Some(ErrorCode::UnknownTopicId),
                ),
            }
        } else {
            let name = topic.topic.0.as_str().to_owned();
            let id = topic_id(ctx, &name);
            (name, id, None)
        };
        topics_out.push((TopicName(StrBytes::from_string(name.clone())), id));
        for p in &topic.partitions {
            let (owner, preferred) = {
                let metadata = ctx.shard.metadata();
                match metadata.leader_shard(ctx.node_id, &name, p.partition) {
                    Err(_) if from_follower => (
                        metadata
                            .replica_shard(ctx.node_id, &name, p.partition)
                            .ok_or(ErrorCode::NotLeaderOrFollower),
                        None,
                    ),
                    Ok(shard) if select_by_rack => {
                        let preferred = metadata.partition(&name, p.partition).and_then(|meta| {
                            rack_replica(&metadata, meta, request.rack_id.as_str())
                        });
                        match preferred {
                            // Not read here: answered with the replica.
                            Some(b) => (Err(ErrorCode::None), Some(b)),
                            None => (Ok(shard), None),
                        }
                    }
                    owner => (owner, None),
                }
            };
            // As Kafka's leader quota: only a follower out of the in-sync
            // set is throttled (one in sync must keep up).
            let is_throttled = leader_rate.is_some() && {
                let metadata = ctx.shard.metadata();
                let out_of_sync = metadata
                    .partition(&name, p.partition)
                    .is_some_and(|m| !m.isr.contains(&replica_id));
                out_of_sync
                    && names_replica(
                        metadata
                            .topics
                            .get(&name)
                            .and_then(|t| t.configs.get(LEADER_THROTTLED_REPLICAS))
                            .map(String::as_str),
                        p.partition,
                        ctx.node_id,
                    )
            };
            throttled.push(is_throttled);
            // Held back: answered with no records and no error.
            let (owner, error) = if is_throttled && held_back && owner.is_ok() {
                (None, Some(ErrorCode::None))
            } else {
                (owner.ok(), unknown.or(owner.err()))
            };
            wanted.push(Wanted {
                topic_index: topics_out.len() - 1,
                name: name.clone(),
                partition: p.partition,
                offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes.max(0) as usize,
                current_leader_epoch: p.current_leader_epoch,
                log_start_offset: p.log_start_offset,
                owner,
                error,
                preferred,
            });
        }
    }
    let broker_max = ctx.shard.config.kafka.fetch_max_bytes as usize;
    let max_bytes = if request.max_bytes <= 0 {
        broker_max
    } else {
        (request.max_bytes as usize).min(broker_max)
    };
    let owners = owner_groups(&wanted);
    let min_bytes = request.min_bytes.max(0) as usize;
    // Deadlines on the shard's clock (virtual under the simulator).
    let env = ctx.shard.env().clone();
    let deadline_ms = env.monotonic_ms() + request.max_wait_ms.max(0) as u64;
    let read_committed = request.isolation_level == 1 && replica_id < 0;
    let results = loop {
        let results =
            fetch_once(ctx, &wanted, &owners, max_bytes, replica_id, read_committed).await;
        let bytes: usize = results.iter().map(|r| r.records.len()).sum();
        let errors = results.iter().any(|r| r.error != ErrorCode::None);
        let now_ms = env.monotonic_ms();
        let redirected = wanted.iter().any(|w| w.preferred.is_some());
        if owners.is_empty() && held_back && now_ms < deadline_ms {
            // Everything asked is throttled: the follower's next fetch
            // comes after the budget refills (or the fetch's wait), not at
            // once.
            let wait = ctx
                .leader_throttle
                .borrow_mut()
                .wait_ms(now_ms as i64)
                .clamp(1, deadline_ms - now_ms);
            env.sleep(Duration::from_millis(wait)).await;
            break results;
        }
        if bytes >= min_bytes.max(1)
            || errors
            || redirected
            || now_ms >= deadline_ms
            || owners.is_empty()
        {
            break results;
        }
        wait_for_data(
            ctx,
            &wanted,
            &owners,
            Duration::from_millis(deadline_ms - now_ms),
            replica_id >= 0,
            read_committed,
        )
        .await;
    };
    if leader_rate.is_some() {
        let spent: usize = results
            .iter()
            .zip(&throttled)
            .filter(|(_, t)| **t)
            .map(|(r, _)| r.records.len())
            .sum();
        if spent > 0 {
            let now = ctx.shard.env().monotonic_ms() as i64;
            ctx.leader_throttle.borrow_mut().spend(spent as u64, now);
        }
    }
    let mut responses: Vec<FetchableTopicResponse> = topics_out
        .into_iter()
        .map(|(name, id)| {
            FetchableTopicResponse::default()
                .with_topic(name)
                .with_topic_id(id)
        })
        .collect();
    // From here to the encoding no await: the record fields registered
    // below are the next encoding's (response_frame's invariant).
    let mut copied = 0;
    for (w, r) in wanted.iter().zip(results) {
        let (records, copies) = response_frame::records_field(r.records);
        copied += copies;
        let data = PartitionData::default()
            .with_partition_index(w.partition)
            .with_error_code(r.error.code())
            .with_high_watermark(r.high_watermark)
            .with_last_stable_offset(r.last_stable_offset)
            .with_log_start_offset(r.log_start_offset)
            .with_preferred_read_replica(BrokerId(w.preferred.unwrap_or(-1)))
            .with_aborted_transactions(read_committed.then(|| aborted_field(&r.aborted)))
            .with_records(Some(records));
        responses[w.topic_index].partitions.push(data);
    }
    if copied > 0 {
        let counter = &ctx.shard.counters.fetch_record_bytes_copied;
        counter.set(counter.get() + copied as u64);
    }
    FetchResponse::default()
        .with_session_id(0)
        .with_responses(responses)
}

/// A read_committed answer's aborted transactions, in Fetch's form.
fn aborted_field(aborted: &[AbortedTxn]) -> Vec<AbortedTransaction> {
    aborted
        .iter()
        .map(|t| {
            AbortedTransaction::default()
                .with_producer_id(ProducerId(t.producer_id))
                .with_first_offset(t.first_offset)
        })
        .collect()
}

/// This shard's share of the broker's `leader.replication.throttled.rate`,
/// if one is set; brings the shard's budget to it.
fn leader_throttle_rate(ctx: &Context) -> Option<u64> {
    let rate = ctx
        .shard
        .metadata()
        .dynamic_broker_config(ctx.node_id, LEADER_THROTTLED_RATE)
        .and_then(|v| v.trim().parse::<u64>().ok())?
        / u64::from(ctx.shard.shards.max(1));
    let mut throttle = ctx.leader_throttle.borrow_mut();
    if throttle.rate() != rate {
        let now = ctx.shard.env().monotonic_ms() as i64;
        throttle.set_rate(rate, now);
    }
    Some(rate)
}

/// The owner shards of the wanted partitions that can be read, each with the
/// indexes of its partitions, in the order owners first appear.
fn owner_groups(wanted: &[Wanted]) -> Vec<(u32, Vec<usize>)> {
    let mut groups: Vec<(u32, Vec<usize>)> = Vec::new();
    for (i, w) in wanted.iter().enumerate() {
        let (None, Some(owner)) = (w.error, w.owner) else {
            continue;
        };
        match groups.iter_mut().find(|(o, _)| *o == owner) {
            Some((_, indexes)) => indexes.push(i),
            None => groups.push((owner, vec![i])),
        }
    }
    groups
}

/// Reads every wanted partition once, one message per owner, within
/// `max_bytes` in total.
async fn fetch_once(
    ctx: &Rc<Context>,
    wanted: &[Wanted],
    owners: &[(u32, Vec<usize>)],
    max_bytes: usize,
    replica_id: i32,
    read_committed: bool,
) -> Vec<FetchResult> {
    let mut out: Vec<FetchResult> = wanted
        .iter()
        .map(|w| FetchResult::failed(w.error.unwrap_or(ErrorCode::UnknownTopicOrPartition)))
        .collect();
    let mut remaining = max_bytes;
    let mut have_data = false;
    for (owner, indexes) in owners {
        let reads = indexes
            .iter()
            .map(|&i| PartitionRead {
                topic: wanted[i].name.clone(),
                partition: wanted[i].partition,
                offset: wanted[i].offset,
                max_bytes: wanted[i].max_bytes,
                replica_id,
                log_start_offset: wanted[i].log_start_offset,
                current_leader_epoch: wanted[i].current_leader_epoch,
                read_committed,
            })
            .collect();
        let request = Fetch {
            reads,
            max_bytes: remaining,
            have_data,
        };
        let results = match ctx.shard.call(*owner, request).await {
            // The owner answers one result per read it was given.
            Ok(results) => results,
            Err(_) => {
                for &i in indexes {
                    out[i] = FetchResult::failed(ErrorCode::UnknownServerError);
                }
                continue;
            }
        };
        for (&i, result) in indexes.iter().zip(results) {
            let got = result.records.len();
            remaining = remaining.saturating_sub(got);
            have_data |= got > 0;
            out[i] = result;
        }
    }
    out
}

/// Waits until any wanted partition's high watermark moves past its fetch
/// offset, or for `remaining` ([`wait_for_any`] over the owners).
async fn wait_for_data(
    ctx: &Rc<Context>,
    wanted: &[Wanted],
    owners: &[(u32, Vec<usize>)],
    remaining: Duration,
    replica: bool,
    read_committed: bool,
) {
    let watched = owners
        .iter()
        .map(|(owner, indexes)| {
            let partitions = indexes
                .iter()
                .map(|&i| {
                    (
                        wanted[i].name.clone(),
                        wanted[i].partition,
                        wanted[i].offset,
                    )
                })
                .collect();
            (*owner, partitions)
        })
        .collect();
    wait_for_any(ctx, watched, remaining, replica, read_committed).await;
}

/// Partitions to watch on one owner shard: (owner, [(topic, partition,
/// offset)]).
pub(super) type Watched = (u32, Vec<(String, i32, i64)>);

/// Waits until any of `watched`'s partitions (by owner shard: topic,
/// partition, offset) has data past its offset (its log end for a
/// `replica`, its last stable offset when `read_committed`, else its high
/// watermark), or for `remaining`: one watch per owner shard; when the
/// first answers, the others are cancelled, so nothing stays parked.
pub(super) async fn wait_for_any(
    ctx: &Context,
    watched: Vec<Watched>,
    remaining: Duration,
    replica: bool,
    read_committed: bool,
) {
    let max_wait_ms = remaining.as_millis() as u64;
    let watches: Vec<(u32, u64)> = watched
        .iter()
        .map(|(owner, _)| (*owner, ctx.shard.next_watch_id()))
        .collect();
    let waits: Vec<WatchCall<'_>> = watched
        .into_iter()
        .zip(&watches)
        .map(|((owner, partitions), (_, watch))| {
            let request = Watch {
                watch: *watch,
                partitions,
                max_wait_ms,
                replica,
                read_committed,
            };
            Box::pin(ctx.shard.call(owner, request)) as Pin<Box<dyn Future<Output = _>>>
        })
        .collect();
    let first = async { Some(FirstOf(waits).await) };
    let deadline = async {
        ctx.shard.env().sleep(remaining).await;
        None
    };
    let done = futures_lite::future::or(first, deadline).await;
    // Watches on other shards that did not answer would wait out their
    // deadline: end them now. A watch on this shard ended when its future
    // was dropped.
    for (i, (owner, watch)) in watches.into_iter().enumerate() {
        if Some(i) != done && owner != ctx.shard.id {
            // Unreachable only when the node stops: nothing left to cancel.
            let _ = ctx.shard.call(owner, CancelWatch { watch }).await;
        }
    }
}

/// A watch sent to one owner shard, waiting for its answer.
type WatchCall<'a> = Pin<Box<dyn Future<Output = Result<(), Unreachable>> + 'a>>;

/// Completes with the index of the first of its futures to complete.
struct FirstOf<'a>(Vec<WatchCall<'a>>);

impl Future for FirstOf<'_> {
    type Output = usize;
    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<usize> {
        for (i, wait) in self.0.iter_mut().enumerate() {
            if wait.as_mut().poll(cx).is_ready() {
                return Poll::Ready(i);
            }
        }
        Poll::Pending
    }
}
