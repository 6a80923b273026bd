//! A producer: builds batches and keeps up to `max_in_flight` produce
//! requests outstanding on one connection.
//!
//! Owns: one producer's two threads: this one generates messages (at the
//! open-loop rate, or as fast as the window allows), batches them per
//! partition (sticky partition for keyless messages, by key otherwise;
//! a batch goes out when it reaches `batch_bytes` or its first message is
//! `linger_ms` old) and sends them; the reader thread takes the answers in
//! order and records per message the latency from its *intended* send time
//! (no coordinated omission).
//!
//! Invariants: at most `max_in_flight` requests are outstanding; every loop
//! stops at the run's end; nothing is allocated per message.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use sluice_client::connection::ResponseReader;
use sluice_client::Client;

use crate::batch::{stamp, BatchWriter};
use crate::stats::{now_us, Live, Recorder, Window};
use crate::workload::Workload;

/// Produce request version: flexible, by topic name (Kafka 2.8+).
pub const PRODUCE_VERSION: i16 = 9;
/// How long the end of a run waits for outstanding answers.
const DRAIN: Duration = Duration::from_secs(30);

/// One batch inside a request: what its answer completes.
struct SentBatch {
    partition: i32,
    messages: u64,
    bytes: u64,
    first_intended_us: u64,
    last_intended_us: u64,
}

struct InFlight {
    correlation_id: i32,
    batch: SentBatch,
}

/// Caps outstanding requests.
struct InFlightLimit {
    count: Mutex<usize>,
    freed: Condvar,
    max: usize,
}

impl InFlightLimit {
    fn acquire(&self) {
        let mut n = self.count.lock().unwrap_or_else(|e| e.into_inner());
        while *n >= self.max {
            n = self.freed.wait(n).unwrap_or_else(|e| e.into_inner());
        }
        *n += 1;
    }
    fn release(&self) {
        let mut n = self.count.lock().unwrap_or_else(|e| e.into_inner());
        *n = n.saturating_sub(1);
        self.freed.notify_one();
    }
}

/// What one producer is to do.
pub struct ProducerPlan {
    pub id: usize,
    pub broker: String,
    pub partitions: Vec<i32>,
    /// Messages per second for this producer (open loop), or none.
    pub rate: Option<f64>,
    /// Stop after this many bytes (a backlog), if set.
    pub bytes_limit: Option<u64>,
    pub start: Instant,
    pub end: Instant,
    pub window: Window,
}

struct OpenBatch {
    writer: BatchWriter,
    /// Value bytes in the batch (what throughput counts, as Kafka's tools).
    value_bytes: u64,
    first_intended_us: u64,
    last_intended_us: u64,
    opened_at: Instant,
}

/// Runs one producer until `plan.end` (or its byte limit); returns its
/// measurements.
pub fn run(w: &Workload, plan: ProducerPlan, live: Arc<Live>) -> anyhow::Result<Recorder> {
    let client =
        Client::connect(&plan.broker, Duration::from_secs(30))?.with_client_id(&w.client_id);
    let (mut writer, reader) = client.split();
    let window = Arc::new(InFlightLimit {
        count: Mutex::new(0),
        freed: Condvar::new(),
        max: w.max_in_flight.max(1),
    });
    let acks = w.acks;
    let (tx, rx) = sync_channel::<InFlight>(w.max_in_flight.max(1) + 1);
    let failed = Arc::new(AtomicBool::new(false));
    let reader_thread = (acks != 0).then(|| {
        let (window, live, failed) = (window.clone(), live.clone(), failed.clone());
        let rec = Recorder::new(plan.window);
        std::thread::Builder::new()
            .name(format!("producer-{}-acks", plan.id))
            .spawn(move || read_acks(reader, rx, window, live, rec, failed))
    });
    let reader_thread = reader_thread
        .transpose()
        .context("starting a reader thread")?;
    let mut sent = Recorder::new(plan.window);

    let topic = TopicName(StrBytes::from_string(w.topic.clone()));
    let partitions = plan.partitions.len().max(1);
    // One writer per partition, kept across batches (its buffer too).
    let mut open: Vec<OpenBatch> = (0..partitions)
        .map(|_| OpenBatch {
            writer: BatchWriter::new(w.compression, 0),
            value_bytes: 0,
            first_intended_us: 0,
            last_intended_us: 0,
            opened_at: plan.start,
        })
        .collect();
    let mut opened: VecDeque<usize> = VecDeque::new();
    let mut value = pattern(w.value_size_max);
    let mut sticky = plan.id % partitions;
    let interval_ns = plan.rate.map(|r| (1e9 / r.max(1e-3)) as u64);
    let linger = Duration::from_millis(w.linger_ms);
    let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ plan.id as u64;
    let mut produced_bytes = 0u64;
    let start_us = now_us()
        + plan
            .start
            .saturating_duration_since(Instant::now())
            .as_micros() as u64;
    let mut i: u64 = 0;

    let mut send =
        |slot: usize, open: &mut [OpenBatch], sent: &mut Recorder| -> anyhow::Result<()> {
            let batch = &mut open[slot];
            if batch.writer.count() == 0 {
                return Ok(());
            }
            let messages = batch.writer.count() as u64;
            let raw_bytes = std::mem::take(&mut batch.value_bytes);
            let records: Bytes = batch.writer.seal()?;
            let partition = plan.partitions[slot];
            let request = ProduceRequest::default()
                .with_acks(acks)
                .with_timeout_ms(30_000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(topic.clone())
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(records))])]);
            window.acquire();
            let correlation_id = writer.send(&request, PRODUCE_VERSION)?;
            let sent_batch = SentBatch {
                partition,
                messages,
                bytes: raw_bytes,
                first_intended_us: batch.first_intended_us,
                last_intended_us: batch.last_intended_us,
            };
            if acks == 0 {
                window.release();
                sent.count(Instant::now(), messages, raw_bytes);
                Live::add(&live.produced, messages);
                Live::add(&live.produced_bytes, raw_bytes);
            } else if tx
                .send(InFlight {
                    correlation_id,
                    batch: sent_batch,
                })
                .is_err()
            {
                bail!("the acknowledgement reader stopped");
            }
            Ok(())
        };

    // Wait for the common start.
    if let Some(wait) = plan.start.checked_duration_since(Instant::now()) {
        std::thread::sleep(wait);
    }
    loop {
        let now = Instant::now();
        if now >= plan.end || failed.load(Ordering::Relaxed) {
            break;
        }
        if plan
            .bytes_limit
            .is_some_and(|limit| produced_bytes >= limit)
        {
            break;
        }
        // Batches whose linger ran out go now.
        while let Some(&slot) = opened.front() {
            let b = &open[slot];
            if b.writer.count() == 0 {
                opened.pop_front();
            } else if now.duration_since(b.opened_at) >= linger {
                opened.pop_front();
                send(slot, &mut open, &mut sent)?;
            } else {
                break;
            }
        }
        let intended_us = match interval_ns {
            Some(step) => start_us + i * step / 1000,
            None => now_us(),
        };
        if interval_ns.is_some() {
            let now_at = now_us();
            if intended_us > now_at {
                // Ahead of schedule: sleep until the next message or the
                // oldest batch's linger, whichever is first.
                let mut wait = Duration::from_micros(intended_us - now_at);
                if let Some(b) = opened.front().map(|&s| &open[s]) {
                    if b.writer.count() > 0 {
                        wait = wait.min((b.opened_at + linger).saturating_duration_since(now));
                    }
                }
                std::thread::sleep(wait.min(Duration::from_millis(10)));
                continue;
            }
        }
        // The next message.
        let size = if w.value_size_max > w.value_size {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            w.value_size + (rng % (w.value_size_max - w.value_size + 1) as u64) as usize
        } else {
            w.value_size
        };
        stamp(&mut value[..size], intended_us);
        let key = (w.keys > 0).then(|| i % w.keys);
        let slot = match key {
            Some(k) => (k % partitions as u64) as usize,
            None => sticky,
        };
        let batch = &mut open[slot];
        if batch.writer.count() == 0 {
            opened.push_back(slot);
            batch.first_intended_us = intended_us;
            batch.opened_at = now;
        }
        batch
            .writer
            .push((intended_us / 1000) as i64, key, &value[..size]);
        batch.last_intended_us = intended_us;
        batch.value_bytes += size as u64;
        produced_bytes += size as u64;
        i += 1;
        if batch.writer.size_bytes() >= w.batch_bytes {
            send(slot, &mut open, &mut sent)?;
            if key.is_none() {
                sticky = (sticky + 1) % partitions;
            }
        }
    }
    // Open loop behind schedule: messages intended inside the counted window
    // but never sent still count, with the time they have waited so far (a
    // lower bound): an overloaded broker shows in the percentiles instead
    // of vanishing from them.
    if let Some(step) = interval_ns {
        let now = now_us();
        loop {
            let intended_us = start_us + i * step / 1000;
            if intended_us >= plan.window.count_until_us.min(now) {
                break;
            }
            sent.latency(intended_us, now);
            sent.unsent += 1;
            i += 1;
        }
    }
    // What is still open goes out; then wait for the answers.
    for slot in 0..partitions {
        send(slot, &mut open, &mut sent)?;
    }
    drop(tx);
    let mut rec = sent;
    if let Some(handle) = reader_thread {
        let deadline = Instant::now() + DRAIN;
        while !handle.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if !handle.is_finished() {
            bail!(
                "producer {}: answers still missing {DRAIN:?} after the end",
                plan.id
            );
        }
        let acked = handle
            .join()
            .map_err(|_| anyhow::anyhow!("the acknowledgement reader panicked"))??;
        rec.merge(&acked);
    }
    Ok(rec)
}

fn read_acks(
    mut reader: ResponseReader,
    rx: Receiver<InFlight>,
    window: Arc<InFlightLimit>,
    live: Arc<Live>,
    mut rec: Recorder,
    failed: Arc<AtomicBool>,
) -> anyhow::Result<Recorder> {
    let result = (|| -> anyhow::Result<()> {
        while let Ok(inflight) = rx.recv() {
            let (id, response) = reader.read::<ProduceResponse>(PRODUCE_VERSION)?;
            window.release();
            if id != inflight.correlation_id {
                bail!("answer {id} while waiting for {}", inflight.correlation_id);
            }
            let at = Instant::now();
            let done_us = now_us();
            let b = &inflight.batch;
            let error = response
                .responses
                .iter()
                .flat_map(|t| &t.partition_responses)
                .find(|p| p.index == b.partition)
                .map_or(-1, |p| p.error_code);
            if error != 0 {
                rec.errors += b.messages;
                Live::add(&live.errors, b.messages);
                tracing::warn!(partition = b.partition, error, "produce failed");
                continue;
            }
            rec.count(at, b.messages, b.bytes);
            Live::add(&live.produced, b.messages);
            Live::add(&live.produced_bytes, b.bytes);
            let span = b.last_intended_us.saturating_sub(b.first_intended_us);
            for k in 0..b.messages {
                let intended = if b.messages > 1 {
                    b.first_intended_us + span * k / (b.messages - 1)
                } else {
                    b.first_intended_us
                };
                rec.latency(intended, done_us);
            }
        }
        Ok(())
    })();
    if result.is_err() {
        failed.store(true, Ordering::Relaxed);
        window.release();
    }
    result.map(|()| rec)
}

/// Value bytes: a fixed pseudo-random pattern (poorly compressible), made
/// once per producer.
fn pattern(len: usize) -> Vec<u8> {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    (0..len.max(8))
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
