//! ShareFetch (1-2): a share group member's fetch (KIP-932). It carries the
//! acknowledgements of records the member got before, and acquires new
//! ones: records handed to this member alone until it acknowledges them
//! or their lock (`share.record.lock.duration.ms`) expires. Version 2
//! (KIP-1222, through [`share_v2`]) adds `ShareAcquireMode` record_limit
//! (at most `max_records` acquired, not whole batches) and `IsRenewAck`
//! (RENEW acknowledgements allowed, nothing fetched; the budgets and the
//! wait must then be 0, else INVALID_REQUEST, as Kafka answers).
//!
//! The share session ([`crate::kafka::share_sessions`]) says which
//! partitions are fetched: epoch 0 opens it with the request's partitions
//! (acknowledgements are INVALID_REQUEST then), later epochs add and
//! forget, -1 closes it (acknowledgements only; what the member still
//! holds goes back). Session errors are top-level, as Kafka answers them.
//! Records are acquired only in the session's partitions: one the request
//! names only to acknowledge, and forgets, gets none.
//!
//! A fetch that acquires nothing waits up to `max_wait_ms`: for new records
//! past a share partition's end, or for the next lock to expire. Each
//! partition's acquired ranges come with the whole batches that hold them.

use std::net::SocketAddr;
use std::time::Duration;

use kafka_protocol::messages::share_fetch_response::{
    AcquiredRecords, LeaderIdAndEpoch, PartitionData, ShareFetchableTopicResponse,
};
use kafka_protocol::messages::{ApiKey, ShareFetchRequest, ShareFetchResponse};
use sluice_core::ErrorCode;
use sluice_shard::message::ShareReadResult;
use uuid::Uuid;

use super::fetch::{wait_for_any, Watched};
use super::shares::{
    check_acks, ensure_state_topic, group_and_member, read, settings, ReadPlan, SharePart,
};
use super::{Call, Handler, Outcome};
use crate::kafka::context::Context;
use crate::kafka::response_frame;
use crate::kafka::share_sessions::SessionStep;
use crate::kafka::share_v2::{self, V2Fields};

/// The ShareFetch handler: [`handle`], at versions 1 and 2.
pub struct ShareFetchHandler;

impl Handler for ShareFetchHandler {
    const KEY: ApiKey = ApiKey::ShareFetch;
    const NAME: &'static str = "ShareFetch";
    const MIN_VERSION: i16 = 1;
    const MAX_VERSION: i16 = 2;
    type Request = ShareFetchRequest;
    type Response = ShareFetchResponse;

    async fn handle(call: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
        let v2 = share_v2::fields_of_frame(&call.frame);
        Outcome::Answer(handle(call.ctx, request, call.peer, v2).await)
    }
}

/// How long a fetch held back by the lock limit waits before it looks
/// again (records acknowledged elsewhere free room without a signal).
const LOCK_LIMIT_RECHECK: Duration = Duration::from_millis(50);

/// A top-level refusal.
fn refused(error: ErrorCode) -> ShareFetchResponse {
    ShareFetchResponse::default().with_error_code(error.code())
}

/// Answers a ShareFetch request that came on the connection from `peer`
/// (`v2`: the fields version 2 adds, their defaults before).
pub async fn handle(
    ctx: &Context,
    request: ShareFetchRequest,
    peer: Option<SocketAddr>,
    v2: V2Fields,
) -> ShareFetchResponse {
    let (group_id, member_id) = match group_and_member(&request.group_id, &request.member_id) {
        Ok(ids) => ids,
        Err(e) => return refused(e),
    };
    if v2.is_renew_ack {
        if let Some(message) = renew_budgets_not_zero(&request) {
            tracing::debug!(group = group_id, message, "ShareFetch refused");
            return refused(ErrorCode::InvalidRequest).with_error_message(Some(message.into()));
        }
    }
    let epoch = request.share_session_epoch;
    let mut named: Vec<SharePart> = Vec::new();
    for topic in &request.topics {
        for p in &topic.partitions {
            let acks = p
                .acknowledgement_batches
                .iter()
                .map(|b| (b.first_offset, b.last_offset, b.acknowledge_types.clone()))
                .collect();
            named.push(SharePart::resolve(
                ctx,
                topic.topic_id,
                p.partition_index,
                acks,
            ));
        }
    }
    let has_acks = named.iter().any(|p| !p.acks.is_empty());
    if epoch == 0 && has_acks {
        return refused(ErrorCode::InvalidRequest);
    }
    let forgotten: Vec<([u8; 16], i32)> = request
        .forgotten_topics_data
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (*t.topic_id.as_bytes(), *p)))
        .collect();
    let keys: Vec<([u8; 16], i32)> = named
        .iter()
        .map(|p| (*p.topic_id.as_bytes(), p.partition))
        .collect();
    let now = ctx.shard.env().now_ms();
    let step = ctx
        .share_sessions
        .borrow_mut()
        .fetch(&group_id, &member_id, epoch, &keys, &forgotten, now, peer);
    let session_partitions = match step {
        Ok(SessionStep::Fetch(partitions)) => Some(partitions),
        Ok(SessionStep::Closed) => None,
        Err(e) => return refused(e),
    };
    ensure_state_topic(ctx, &group_id).await;
    let settings = settings(ctx, &group_id);
    // The partitions whose answers go back: those the request names (for
    // their acknowledgements), then the session's others.
    let mut parts: Vec<SharePart> = Vec::new();
    let mut ack_errors: Vec<Option<ErrorCode>> = Vec::new();
    for p in named {
        let ack_check = check_acks(&p.acks, v2.is_renew_ack);
        if !parts
            .iter()
            .any(|q| q.topic_id == p.topic_id && q.partition == p.partition)
        {
            ack_errors.push(ack_check.err());
            parts.push(p);
        }
    }
    if let Some(session) = &session_partitions {
        for (id, partition) in session {
            let id = Uuid::from_bytes(*id);
            if !parts
                .iter()
                .any(|q| q.topic_id == id && q.partition == *partition)
            {
                parts.push(SharePart::resolve(ctx, id, *partition, Vec::new()));
                ack_errors.push(None);
            }
        }
    }
    // Acknowledgements that fail Kafka's checks are not applied.
    for (p, error) in parts.iter_mut().zip(&ack_errors) {
        if error.is_some() {
            p.acks.clear();
        }
    }
    // A renewing fetch fetches nothing: the time a fetch takes could
    // outlast the renewed locks (KIP-1222).
    let fetching = session_partitions.is_some() && request.max_records > 0 && !v2.is_renew_ack;
    for p in parts.iter_mut() {
        let key = (*p.topic_id.as_bytes(), p.partition);
        p.fetch = fetching
            && session_partitions
                .as_ref()
                .is_some_and(|s| s.contains(&key));
    }
    let broker_max = ctx.shard.config.kafka.fetch_max_bytes as usize;
    let max_bytes = if request.max_bytes <= 0 {
        broker_max
    } else {
        (request.max_bytes as usize).min(broker_max)
    };
    let plan = ReadPlan {
        group_id: &group_id,
        member_id: &member_id,
        acquire: fetching,
        release: session_partitions.is_none(),
        max_records: request.max_records.max(0) as usize,
        max_bytes,
        settings,
        record_limit: v2.record_limit(),
    };
    let env = ctx.shard.env().clone();
    let deadline_ms = env.monotonic_ms() + request.max_wait_ms.max(0) as u64;
    let mut results = read(ctx, &parts, &plan, true).await;
    loop {
        let got = results.iter().any(|r| !r.acquired.is_empty());
        let now_ms = env.monotonic_ms();
        if got || !fetching || now_ms >= deadline_ms {
            break;
        }
        // Nothing acquired: wait for new records past each share
        // partition's end, or the next lock to expire.
        let wall = env.now_ms();
        let mut wait = Duration::from_millis(deadline_ms - now_ms);
        let mut watched: Vec<Watched> = Vec::new();
        for (p, r) in parts.iter().zip(&results) {
            let Ok(owner) = p.owner else { continue };
            if !p.fetch || r.error != ErrorCode::None {
                continue;
            }
            if let Some(at) = r.next_deadline_ms {
                wait = wait.min(Duration::from_millis((at - wall).max(1) as u64));
            }
            if r.at_lock_limit {
                wait = wait.min(LOCK_LIMIT_RECHECK);
                continue;
            }
            let entry = (p.name.clone(), p.partition, r.end_offset);
            match watched.iter_mut().find(|(o, _)| *o == owner) {
                Some((_, partitions)) => partitions.push(entry),
                None => watched.push((owner, vec![entry])),
            }
        }
        if watched.is_empty() {
            env.sleep(wait).await;
        } else {
            wait_for_any(ctx, watched, wait, false, false).await;
        }
        results = read(ctx, &parts, &plan, false).await;
    }
    let lock_ms = plan.settings.partition.lock_duration_ms;
    let mut topics: Vec<ShareFetchableTopicResponse> = Vec::new();
    let mut copied = 0;
    // From here to the encoding no await: the record fields registered
    // below are the next encoding's (response_frame's invariant).
    for ((p, r), ack_error) in parts.iter().zip(results).zip(&ack_errors) {
        let had_acks = !p.acks.is_empty() || ack_error.is_some();
        let shown = epoch == 0
            || had_acks
            || r.error != ErrorCode::None
            || !r.acquired.is_empty()
            || !r.records.is_empty();
        if !shown {
            continue;
        }
        let ack_code = ack_error.unwrap_or(if had_acks {
            r.ack_error
        } else {
            ErrorCode::None
        });
        let (data, copies) = partition_data(p, r, ack_code);
        copied += copies;
        match topics.iter_mut().find(|t| t.topic_id == p.topic_id) {
            Some(t) => t.partitions.push(data),
            None => topics.push(
                ShareFetchableTopicResponse::default()
                    .with_topic_id(p.topic_id)
                    .with_partitions(vec![data]),
            ),
        }
    }
    if copied > 0 {
        let counter = &ctx.shard.counters.fetch_record_bytes_copied;
        counter.set(counter.get() + copied as u64);
    }
    ShareFetchResponse::default()
        .with_acquisition_lock_timeout_ms(lock_ms.clamp(0, i64::from(i32::MAX)) as i32)
        .with_responses(topics)
}

/// Kafka's message when a ShareFetch marked `IsRenewAck` asks for records
/// or waits; `None` when all four are 0.
fn renew_budgets_not_zero(request: &ShareFetchRequest) -> Option<String> {
    let mut message = String::new();
    for (name, value) in [
        ("maxBytes", request.max_bytes),
        ("minBytes", request.min_bytes),
        ("maxRecords", request.max_records),
        ("maxWaitMs", request.max_wait_ms),
    ] {
        if value != 0 {
            message += &format!("{name} must be set to 0, ");
        }
    }
    (!message.is_empty()).then(|| message + "if isRenewAck is true.")
}

/// One partition's answer, and the record bytes copied to make it.
fn partition_data(
    p: &SharePart,
    r: ShareReadResult,
    ack_error: ErrorCode,
) -> (PartitionData, usize) {
    let not_leader = r.error == ErrorCode::NotLeaderOrFollower;
    let (records, copies) = response_frame::records_field(r.records);
    let data = PartitionData::default()
        .with_partition_index(p.partition)
        .with_error_code(r.error.code())
        .with_acknowledge_error_code(ack_error.code())
        .with_current_leader(if not_leader {
            LeaderIdAndEpoch::default()
                .with_leader_id(p.leader.0)
                .with_leader_epoch(p.leader.1)
        } else {
            LeaderIdAndEpoch::default()
        })
        .with_records(Some(records))
        .with_acquired_records(
            r.acquired
                .iter()
                .map(|a| {
                    AcquiredRecords::default()
                        .with_first_offset(a.first)
                        .with_last_offset(a.last)
                        .with_delivery_count(a.delivery_count as i16)
                })
                .collect(),
        );
    (data, copies)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_renewing_fetch_must_ask_for_nothing_as_kafka_words_it() {
        let idle = ShareFetchRequest::default()
            .with_max_bytes(0)
            .with_min_bytes(0)
            .with_max_records(0)
            .with_max_wait_ms(0);
        assert_eq!(renew_budgets_not_zero(&idle), None);
        let asking = idle.with_max_records(10).with_max_wait_ms(500);
        assert_eq!(
            renew_budgets_not_zero(&asking).as_deref(),
            Some("maxRecords must be set to 0, maxWaitMs must be set to 0, if isRenewAck is true.")
        );
    }
}
