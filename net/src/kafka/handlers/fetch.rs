//! Fetch (4–16): reads from each partition's owner shard, long polling
//! with `max_wait_ms` / `min_bytes`, within `max_bytes` and each
//! partition's `partition_max_bytes`.
//!
//! Fetch sessions (KIP-227) are refused the way Kafka clients expect: every
//! answer carries session id 0, so clients keep sending full fetches.

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use glommio::channels::local_channel;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use sluice_core::ErrorCode;
use sluice_shard::{FetchResult, ShardRequest, ShardResponse};
use uuid::Uuid;

use super::topics::{topic_by_id, topic_id};
use crate::kafka::context::Context;

/// One partition asked for, resolved to its owner.
struct Wanted {
    topic_index: usize,
    name: String,
    partition: i32,
    offset: i64,
    max_bytes: usize,
    owner: Option<u32>,
    /// Set when the topic id or name is unknown.
    error: Option<ErrorCode>,
}

/// Answers a Fetch request.
pub async fn handle(ctx: &Rc<Context>, request: FetchRequest, version: i16) -> FetchResponse {
    if request.session_id > 0 {
        return FetchResponse::default().with_error_code(ErrorCode::FetchSessionIdNotFound.code());
    }
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
            let owner = ctx.shard.metadata().owner(&name, p.partition);
            wanted.push(Wanted {
                topic_index: topics_out.len() - 1,
                name: name.clone(),
                partition: p.partition,
                offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes.max(0) as usize,
                owner,
                error: unknown.or(owner
                    .is_none()
                    .then_some(ErrorCode::UnknownTopicOrPartition)),
            });
        }
    }
    let max_bytes = if request.max_bytes <= 0 {
        i32::MAX as usize
    } else {
        request.max_bytes as usize
    };
    let min_bytes = request.min_bytes.max(0) as usize;
    let deadline = Instant::now() + Duration::from_millis(request.max_wait_ms.max(0) as u64);
    let results = loop {
        let results = fetch_once(ctx, &wanted, max_bytes).await;
        let bytes: usize = results.iter().map(|r| r.records.len()).sum();
        let errors = results.iter().any(|r| r.error != ErrorCode::None);
        let now = Instant::now();
        if bytes >= min_bytes.max(1) || errors || now >= deadline || wanted.is_empty() {
            break results;
        }
        wait_for_data(ctx, &wanted, deadline - now).await;
    };
    let read_committed = request.isolation_level == 1;
    let mut responses: Vec<FetchableTopicResponse> = topics_out
        .into_iter()
        .map(|(name, id)| {
            FetchableTopicResponse::default()
                .with_topic(name)
                .with_topic_id(id)
        })
        .collect();
    for (w, r) in wanted.iter().zip(results) {
        let data = PartitionData::default()
            .with_partition_index(w.partition)
            .with_error_code(r.error.code())
            .with_high_watermark(r.high_watermark)
            .with_last_stable_offset(r.last_stable_offset)
            .with_log_start_offset(r.log_start_offset)
            .with_preferred_read_replica(BrokerId(-1))
            .with_aborted_transactions(read_committed.then(Vec::new))
            .with_records(Some(r.records));
        responses[w.topic_index].partitions.push(data);
    }
    FetchResponse::default()
        .with_session_id(0)
        .with_responses(responses)
}

fn missing(error: ErrorCode) -> FetchResult {
    FetchResult {
        error,
        high_watermark: -1,
        last_stable_offset: -1,
        log_start_offset: -1,
        records: Bytes::new(),
    }
}

/// Reads every wanted partition once (concurrently across owners) and keeps
/// the response within `max_bytes`: a partition whose data would overflow
/// it returns none this time, unless it is the first with data.
async fn fetch_once(ctx: &Rc<Context>, wanted: &[Wanted], max_bytes: usize) -> Vec<FetchResult> {
    let tasks: Vec<_> = wanted
        .iter()
        .map(|w| match (w.error, w.owner) {
            (None, Some(owner)) => {
                let shard = ctx.shard.clone();
                let request = ShardRequest::Fetch {
                    topic: w.name.clone(),
                    partition: w.partition,
                    offset: w.offset,
                    max_bytes: w.max_bytes.min(max_bytes),
                };
                Ok(glommio::spawn_local(async move {
                    shard.call(owner, request).await
                }))
            }
            (error, _) => Err(error.unwrap_or(ErrorCode::UnknownTopicOrPartition)),
        })
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    let mut total = 0usize;
    for task in tasks {
        let mut result = match task {
            Err(error) => missing(error),
            Ok(task) => match task.await {
                ShardResponse::Fetch(r) => r,
                _ => missing(ErrorCode::UnknownServerError),
            },
        };
        if total > 0 && total + result.records.len() > max_bytes {
            result.records = Bytes::new();
        }
        total += result.records.len();
        out.push(result);
    }
    out
}

/// Waits until any wanted partition's high watermark moves past its fetch
/// offset, or for `remaining`.
async fn wait_for_data(ctx: &Rc<Context>, wanted: &[Wanted], remaining: Duration) {
    let (tx, rx) = local_channel::new_bounded(wanted.len().max(1));
    let tx = Rc::new(tx);
    for w in wanted {
        let Some(owner) = w.owner else { continue };
        let (shard, tx) = (ctx.shard.clone(), tx.clone());
        let request = ShardRequest::Watch {
            topic: w.name.clone(),
            partition: w.partition,
            offset: w.offset,
            max_wait_ms: remaining.as_millis() as u64,
        };
        glommio::spawn_local(async move {
            shard.call(owner, request).await;
            let _ = tx.try_send(());
        })
        .detach();
    }
    let _ = glommio::timer::timeout(remaining, async {
        rx.recv().await;
        Ok(())
    })
    .await;
}
