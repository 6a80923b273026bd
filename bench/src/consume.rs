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
use sluice_client::connection::{RequestWriter, ResponseReader, UndecodableResponse};
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
/// A Fetch's byte budget and each partition's. Answers stay under 32 MiB,
/// the largest block the allocator serves from its heaps
/// (`sluice_core::alloc::HEAP_BLOCK_MAX_BYTES`): larger ones are mapped and
/// faulted in afresh for every answer, and at catch-up that made the
/// generator, not the broker, the bottleneck (64 MiB answers: 0.8 of CPU 0
/// and about 800 MB/s; 32 MiB: about 1,000 MB/s).
const FETCH_MAX_BYTES: i32 = 30 * 1024 * 1024;
const PARTITION_MAX_BYTES: i32 = 2 * 1024 * 1024;

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
///
/// One Fetch is in flight at a time, as with Kafka's own consumers, but
/// like them (librdkafka's fetcher thread, the Java consumer's prefetch)
/// the next one is sent as soon as an answer's batch headers give the next
/// offsets, and its records are read by a thread of their own: the broker
/// works on the next answer, and this thread receives it, while the last
/// one is counted. At most [`ANSWERS_QUEUED`] answers wait to be counted.
pub fn run(w: &Workload, plan: ConsumerPlan, live: Arc<Live>) -> anyhow::Result<Recorder> {
    let client =
        Client::connect(&plan.broker, Duration::from_secs(30))?.with_client_id(&w.client_id);
    let (writer, reader) = client.split();
    let rec = Recorder::new(plan.window);
    if let Some(wait) = plan.start.checked_duration_since(Instant::now()) {
        std::thread::sleep(wait);
    }
    let (answers_tx, answers_rx) = std::sync::mpsc::sync_channel::<Answer>(ANSWERS_QUEUED);
    let (counted_tx, counted_rx) = std::sync::mpsc::sync_channel::<Bytes>(ANSWERS_QUEUED + 1);
    let counter = std::thread::spawn({
        let live = live.clone();
        move || count_answers(rec, answers_rx, counted_tx, &live)
    });
    let mut fetcher = Fetcher {
        topic: TopicName(StrBytes::from_string(w.topic.clone())),
        offsets: plan.partitions.iter().map(|(_, o)| *o).collect(),
        order: (0..plan.partitions.len()).collect(),
        plan: &plan,
        writer,
        reader,
        counted: counted_rx,
        version: FETCH_VERSION,
    };
    let fetched = fetcher.run(&answers_tx, &live);
    drop(answers_tx);
    let rec = counter
        .join()
        .map_err(|_| anyhow::anyhow!("a consumer's counting thread panicked"))??;
    fetched.map(|()| rec)
}

/// A consumer's fetch loop and what it keeps between Fetches.
struct Fetcher<'a> {
    plan: &'a ConsumerPlan,
    topic: TopicName,
    /// The next offset of each of the plan's partitions.
    offsets: Vec<i64>,
    /// The order partitions are named in: those that returned data move to
    /// the end (KIP-74, as Kafka's clients do), or a Fetch's byte budget
    /// would always run out before the same last ones.
    order: Vec<usize>,
    writer: RequestWriter,
    reader: ResponseReader,
    /// Answers' frames the counting thread is done with, for the reader to
    /// read later answers into.
    counted: std::sync::mpsc::Receiver<Bytes>,
    version: i16,
}

impl Fetcher<'_> {
    /// The run's end came, or every partition reached its end offset.
    fn done(&self) -> bool {
        Instant::now() >= self.plan.end
            || self
                .plan
                .until
                .as_ref()
                .is_some_and(|until| self.offsets.iter().zip(until).all(|(o, u)| o >= u))
    }

    /// Sends the next Fetch: every partition from its offset, in `order`.
    fn send_fetch(&mut self) -> anyhow::Result<()> {
        let partitions = self
            .order
            .iter()
            .map(|&i| {
                FetchPartition::default()
                    .with_partition(self.plan.partitions[i].0)
                    .with_fetch_offset(self.offsets[i])
                    .with_current_leader_epoch(-1)
                    .with_last_fetched_epoch(-1)
                    .with_log_start_offset(-1)
                    .with_partition_max_bytes(PARTITION_MAX_BYTES)
            })
            .collect();
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(FETCH_MAX_WAIT_MS)
            .with_min_bytes(1)
            .with_max_bytes(FETCH_MAX_BYTES)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(self.topic.clone())
                .with_partitions(partitions)]);
        self.writer.send(&request, self.version)?;
        Ok(())
    }
}

/// Answers a consumer's fetch loop has read and its counting thread has not.
const ANSWERS_QUEUED: usize = 2;

/// One Fetch answer for the counting thread.
struct Answer {
    at: Instant,
    done_us: u64,
    errors: u64,
    /// (the offset its partition was fetched from, its records)
    parts: Vec<(i64, Bytes)>,
    /// The frame the records are slices of, given back to the fetch loop
    /// once counted (its buffer then receives a later answer).
    frame: Bytes,
}

/// Counts the answers' records until the fetch loop ends.
fn count_answers(
    mut rec: Recorder,
    answers: std::sync::mpsc::Receiver<Answer>,
    counted: std::sync::mpsc::SyncSender<Bytes>,
    live: &Live,
) -> anyhow::Result<Recorder> {
    for answer in answers {
        rec.errors += answer.errors;
        for (from, records) in answer.parts {
            let (messages, bytes, _) = read_batches(records, from, &mut rec, answer.done_us)?;
            rec.count(answer.at, messages, bytes);
            Live::add(&live.consumed, messages);
            Live::add(&live.consumed_bytes, bytes);
        }
        // Full, or the fetch loop is gone: the buffer is freed instead.
        let _ = counted.try_send(answer.frame);
    }
    Ok(rec)
}

impl Fetcher<'_> {
    /// Fetches until the run ends, handing each answer to the counting
    /// thread.
    fn run(
        &mut self,
        answers: &std::sync::mpsc::SyncSender<Answer>,
        live: &Live,
    ) -> anyhow::Result<()> {
        let mut in_flight = false;
        loop {
            if Instant::now() >= self.plan.end {
                break;
            }
            if !in_flight {
                if self.done() {
                    break;
                }
                self.send_fetch()?;
            }
            in_flight = false;
            while let Ok(frame) = self.counted.try_recv() {
                self.reader.recycle(frame);
            }
            let (response, frame) = match self.reader.read_with_frame::<FetchResponse>(self.version)
            {
                Ok((_, response, frame)) => (response, frame),
                Err(e)
                    if self.version != FETCH_FALLBACK_VERSION
                        && e.downcast_ref::<UndecodableResponse>().is_some() =>
                {
                    tracing::warn!(
                        error = %e,
                        "Fetch v{} answers do not decode; using v{FETCH_FALLBACK_VERSION}",
                        self.version
                    );
                    self.version = FETCH_FALLBACK_VERSION;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if response.error_code != 0 {
                bail!("fetch failed: error {}", response.error_code);
            }
            let at = Instant::now();
            let done_us = now_us();
            let (mut errors, mut parts) = (0, Vec::new());
            for t in response.responses {
                for p in t.partitions {
                    let Some(i) = self
                        .plan
                        .partitions
                        .iter()
                        .position(|(q, _)| *q == p.partition_index)
                    else {
                        continue;
                    };
                    if p.error_code != 0 {
                        errors += 1;
                        Live::add(&live.errors, 1);
                        continue;
                    }
                    let Some(records) = p.records else { continue };
                    let from = self.offsets[i];
                    self.offsets[i] = from.max(next_offset_after(&records, from));
                    if self.offsets[i] > from {
                        if let Some(at) = self.order.iter().position(|&j| j == i) {
                            self.order.remove(at);
                            self.order.push(i);
                        }
                    }
                    parts.push((from, records));
                }
            }
            if !self.done() {
                self.send_fetch()?;
                in_flight = true;
            }
            let answer = Answer {
                at,
                done_us,
                errors,
                parts,
                frame,
            };
            if answers.send(answer).is_err() {
                // The counting thread stopped on an error; it reports it.
                break;
            }
            if !in_flight {
                break;
            }
        }
        Ok(())
    }
}

/// The offset after the last whole batch of `records` that ends at or past
/// `from` (`from` when there is none): where the next Fetch starts. Reads
/// batch headers only.
fn next_offset_after(records: &Bytes, from: i64) -> i64 {
    BatchIter::new_unchecked(records.clone())
        .map_while(Result::ok)
        .map(|batch| batch.next_offset())
        .filter(|next| *next > from)
        .last()
        .unwrap_or(from)
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
