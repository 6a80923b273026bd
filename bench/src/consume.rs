//! A consumer: fetches its partitions from given offsets until the run
//! ends, counting what it reads and, per message, the end-to-end latency
//! from the send time the generator stamped into the value.
//!
//! Owns: one consumer thread's fetch loop (Fetch v12, no fetch session,
//! partitions assigned by the run, not by a group coordinator: the
//! generator measures the data path, the same against every broker).
//!
//! Invariants: offsets only move forward, past whole batches; a compressed
//! batch is decompressed once to read its values; the loop stops at the
//! run's end or when a given end offset is reached everywhere.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use bytes::Bytes;
use kafka_protocol::compression::Decompressor;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use sluice_client::connection::UndecodableResponse;
use sluice_client::Client;
use sluice_core::batch::{BatchIter, Compression, RecordBatch};
use sluice_core::records::RecordIter;

use crate::batch::stamped_at_us;
use crate::stats::{now_us, Live, Recorder, Window};
use crate::workload::Workload;

/// Fetch request version: the newest by topic name (v13+ name topics by
/// id), flexible.
pub const FETCH_VERSION: i16 = 12;
/// The version used when a broker's v12 answers do not decode: some send
/// tagged fields v12 does not have (Tansu sends the v16 node endpoints).
/// v11 is not flexible, so it carries no tagged fields at all.
pub const FETCH_FALLBACK_VERSION: i16 = 11;
const FETCH_MAX_WAIT_MS: i32 = 100;
const FETCH_MAX_BYTES: i32 = 64 * 1024 * 1024;
const PARTITION_MAX_BYTES: i32 = 4 * 1024 * 1024;

/// What one consumer is to do.
pub struct ConsumerPlan {
    pub id: usize,
    pub broker: String,
    /// (partition, first offset to read).
    pub partitions: Vec<(i32, i64)>,
    /// Stop once every partition reached this offset (catch-up), if given.
    pub until: Option<Vec<i64>>,
    /// The common start (the producers' too).
    pub start: Instant,
    pub end: Instant,
    pub window: Window,
}

/// Runs one consumer; returns its measurements.
pub fn run(w: &Workload, plan: ConsumerPlan, live: Arc<Live>) -> anyhow::Result<Recorder> {
    let mut client =
        Client::connect(&plan.broker, Duration::from_secs(30))?.with_client_id(&w.client_id);
    let mut rec = Recorder::new(plan.window);
    let topic = TopicName(StrBytes::from_string(w.topic.clone()));
    let mut offsets: Vec<i64> = plan.partitions.iter().map(|(_, o)| *o).collect();
    let mut version = FETCH_VERSION;
    if let Some(wait) = plan.start.checked_duration_since(Instant::now()) {
        std::thread::sleep(wait);
    }
    loop {
        if Instant::now() >= plan.end {
            break;
        }
        if let Some(until) = &plan.until {
            if offsets.iter().zip(until).all(|(o, u)| o >= u) {
                break;
            }
        }
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(FETCH_MAX_WAIT_MS)
            .with_min_bytes(1)
            .with_max_bytes(FETCH_MAX_BYTES)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic.clone())
                .with_partitions(
                    plan.partitions
                        .iter()
                        .zip(&offsets)
                        .map(|((p, _), o)| {
                            FetchPartition::default()
                                .with_partition(*p)
                                .with_fetch_offset(*o)
                                .with_current_leader_epoch(-1)
                                .with_last_fetched_epoch(-1)
                                .with_log_start_offset(-1)
                                .with_partition_max_bytes(PARTITION_MAX_BYTES)
                        })
                        .collect(),
                )]);
        let response: FetchResponse = match client.send(&request, version) {
            Ok(response) => response,
            Err(e)
                if version != FETCH_FALLBACK_VERSION
                    && e.downcast_ref::<UndecodableResponse>().is_some() =>
            {
                tracing::warn!(
                    error = %e,
                    "Fetch v{version} answers do not decode; using v{FETCH_FALLBACK_VERSION}"
                );
                version = FETCH_FALLBACK_VERSION;
                continue;
            }
            Err(e) => return Err(e),
        };
        if response.error_code != 0 {
            bail!("fetch failed: error {}", response.error_code);
        }
        let at = Instant::now();
        let done_us = now_us();
        for t in response.responses {
            for p in t.partitions {
                let Some(i) = plan
                    .partitions
                    .iter()
                    .position(|(q, _)| *q == p.partition_index)
                else {
                    continue;
                };
                if p.error_code != 0 {
                    rec.errors += 1;
                    Live::add(&live.errors, 1);
                    continue;
                }
                let Some(records) = p.records else { continue };
                let (messages, bytes, next) = read_batches(records, offsets[i], &mut rec, done_us)?;
                offsets[i] = offsets[i].max(next);
                rec.count(at, messages, bytes);
                Live::add(&live.consumed, messages);
                Live::add(&live.consumed_bytes, bytes);
            }
        }
    }
    Ok(rec)
}

/// Counts the records at or after `from` in `records`; returns (messages,
/// value bytes, next offset).
fn read_batches(
    records: Bytes,
    from: i64,
    rec: &mut Recorder,
    done_us: u64,
) -> anyhow::Result<(u64, u64, i64)> {
    let (mut messages, mut bytes, mut next) = (0u64, 0u64, from);
    for batch in BatchIter::new_unchecked(records) {
        // A partial batch at the end of a fetch is normal: stop there.
        let Ok(batch) = batch else { break };
        if batch.next_offset() <= from {
            continue;
        }
        next = batch.next_offset();
        let values = match batch.compression() {
            Compression::None => RecordIter::new(&batch)?,
            codec => RecordIter::over(&batch, decompress(&batch, codec)?),
        };
        for record in values {
            let record = record?;
            if record.offset < from {
                continue;
            }
            messages += 1;
            if let Some(v) = &record.value {
                bytes += v.len() as u64;
                if let Some(sent) = stamped_at_us(v) {
                    rec.latency(sent, done_us);
                }
            }
        }
    }
    Ok((messages, bytes, next))
}

fn decompress(batch: &RecordBatch, codec: Compression) -> anyhow::Result<Bytes> {
    use kafka_protocol::compression as c;
    let mut compressed = batch.records_bytes();
    let take = |b: &mut Bytes| Ok(b.split_off(0));
    Ok(match codec {
        Compression::Gzip => c::Gzip::decompress(&mut compressed, take)?,
        Compression::Snappy => c::Snappy::decompress(&mut compressed, take)?,
        Compression::Lz4 => c::Lz4::decompress(&mut compressed, take)?,
        Compression::Zstd => c::Zstd::decompress(&mut compressed, take)?,
        Compression::None => compressed,
    })
}
