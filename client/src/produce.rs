//! `sluice produce`: lines of standard input become records of a topic,
//! over the Kafka protocol, like `kcat -P` and `rpk topic produce`.
//!
//! Owns: splitting a line into headers, key and value (`--header-separator`,
//! `--key-separator`), choosing its partition (the one given, else the
//! Java client's: murmur2 of the key, or round robin for records without
//! one), batching records per partition (at most [`BATCH_BYTES`] a batch,
//! so memory stays bounded whatever the input's size: a batch per
//! partition and a summary line per partition) and sending each batch to
//! its partition's leader, acks as asked. A refused batch stops
//! the run with the Kafka error and what to do.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context as _};
use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use serde_json::json;

use crate::hint::check_kafka;
use crate::leaders::Leaders;
use crate::topics::Format;

/// Bytes of records per partition sent in one batch at most: below the
/// broker's default `max.message.bytes` (1 MiB and a batch header).
pub const BATCH_BYTES: usize = 1_000_000;

const TIMEOUT: Duration = Duration::from_secs(30);

/// How `sluice produce` reads its input and sends it.
#[derive(Debug, Clone)]
pub struct ProduceOptions {
    pub topic: String,
    /// Every record to this partition, instead of the partitioner's.
    pub partition: Option<i32>,
    /// A line is `key<SEP>value`; without it, the line is the value.
    pub key_separator: Option<String>,
    /// A line starts with `k=v,k=v<SEP>`: the record's headers.
    pub header_separator: Option<String>,
    /// Headers every record gets (`k=v`).
    pub headers: Vec<(String, String)>,
    /// 0, 1 or -1 (all).
    pub acks: i16,
    pub format: Format,
}

/// One line, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub headers: Vec<(String, String)>,
    pub key: Option<String>,
    pub value: String,
}

/// Splits a line into its headers, key and value as the options say.
pub fn split_line(line: &str, options: &ProduceOptions) -> anyhow::Result<Line> {
    let mut rest = line;
    let mut headers = options.headers.clone();
    if let Some(sep) = options.header_separator.as_deref() {
        let (head, tail) = rest
            .split_once(sep)
            .ok_or_else(|| anyhow!("no header separator {sep:?} in line {line:?}"))?;
        for pair in head.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| anyhow!("header {pair:?} is not key=value"))?;
            headers.push((k.to_owned(), v.to_owned()));
        }
        rest = tail;
    }
    let (key, value) = match options.key_separator.as_deref() {
        Some(sep) => {
            let (k, v) = rest
                .split_once(sep)
                .ok_or_else(|| anyhow!("no key separator {sep:?} in line {line:?}"))?;
            (Some(k.to_owned()), v.to_owned())
        }
        None => (None, rest.to_owned()),
    };
    Ok(Line {
        headers,
        key,
        value,
    })
}

/// Kafka's murmur2 (the Java client's `Utils.murmur2`).
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The Java client's partition of a keyed record.
pub fn partition_of_key(key: &[u8], partitions: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) % partitions.max(1)
}

/// Records waiting to be sent to one partition.
#[derive(Default)]
struct Pending {
    records: Vec<Record>,
    bytes: usize,
}

/// What a run acknowledged, per partition: first and last offset and how
/// many records (offsets -1 with acks=0). Bounded by the partition count.
type Summary = BTreeMap<i32, (i64, i64, u64)>;

/// Where each acknowledged batch is reported.
struct Report<'a> {
    topic: &'a str,
    format: Format,
    out: &'a mut dyn Write,
    summary: Summary,
}

impl Report<'_> {
    /// Notes a batch of `count` records at `base` (-1: no offsets); JSON
    /// prints one line per record at once, so nothing accumulates.
    fn batch(&mut self, partition: i32, base: i64, count: i64) -> anyhow::Result<()> {
        if self.format == Format::Json {
            for i in 0..count {
                let offset = if base < 0 { -1 } else { base + i };
                let line = json!({"topic": self.topic, "partition": partition, "offset": offset});
                writeln!(self.out, "{line}").context("writing to standard output")?;
            }
        }
        let last = if base < 0 { -1 } else { base + count - 1 };
        let e = self.summary.entry(partition).or_insert((base, last, 0));
        e.0 = e.0.min(base);
        e.1 = e.1.max(last);
        e.2 += count as u64;
        Ok(())
    }
}

/// `sluice produce`: reads `input` to its end, sending as it goes; prints
/// to `out` a summary (or, with JSON, one line per record with its
/// partition and offset, as each batch is acknowledged).
pub fn run(
    bootstrap: &str,
    options: &ProduceOptions,
    input: impl BufRead,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let mut leaders = Leaders::discover(bootstrap, &options.topic)?;
    let partitions = leaders.partition_count();
    if partitions == 0 {
        return Err(anyhow!("topic {} has no partitions", options.topic));
    }
    if let Some(p) = options.partition {
        if !(0..partitions).contains(&p) {
            return Err(anyhow!(
                "topic {} has partitions 0..{}; there is no partition {p}",
                options.topic,
                partitions - 1
            ));
        }
    }
    let mut pending: BTreeMap<i32, Pending> = BTreeMap::new();
    let mut report = Report {
        topic: &options.topic,
        format: options.format,
        out,
        summary: Summary::new(),
    };
    let mut round_robin = 0i32;
    for line in input.lines() {
        let line = line.context("reading standard input")?;
        let line = split_line(&line, options)?;
        let partition = match (options.partition, &line.key) {
            (Some(p), _) => p,
            (None, Some(k)) => partition_of_key(k.as_bytes(), partitions),
            (None, None) => {
                round_robin = (round_robin + 1) % partitions;
                round_robin
            }
        };
        let record = to_record(line);
        // A record's share of the batch: its key, value and headers, and
        // the varint framing around them.
        let size = record.value.as_ref().map_or(0, |v| v.len())
            + record.key.as_ref().map_or(0, |k| k.len())
            + record
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.as_ref().map_or(0, |v| v.len()) + 10)
                .sum::<usize>()
            + 32;
        let p = pending.entry(partition).or_default();
        // Sent before it would pass the limit, so a batch stays within the
        // broker's default max.message.bytes whatever the lines' sizes.
        if !p.records.is_empty() && p.bytes + size > BATCH_BYTES {
            let batch = std::mem::take(p);
            send(&mut leaders, options, partition, batch, &mut report)?;
        }
        let p = pending.entry(partition).or_default();
        p.records.push(record);
        p.bytes += size;
    }
    for (partition, batch) in std::mem::take(&mut pending) {
        if !batch.records.is_empty() {
            send(&mut leaders, options, partition, batch, &mut report)?;
        }
    }
    if options.format == Format::Table {
        let total: u64 = report.summary.values().map(|s| s.2).sum();
        writeln!(report.out, "produced {total} records to {}", options.topic)?;
        for (p, (first, last, n)) in &report.summary {
            if *first < 0 {
                writeln!(
                    report.out,
                    "  partition {p}: {n} records (acks=0: no offsets)"
                )?;
            } else {
                writeln!(
                    report.out,
                    "  partition {p}: {n} records at offsets {first}..={last}"
                )?;
            }
        }
    }
    report.out.flush().context("writing to standard output")?;
    Ok(())
}

fn to_record(line: Line) -> Record {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let headers: IndexMap<StrBytes, Option<Bytes>> = line
        .headers
        .into_iter()
        .map(|(k, v)| (StrBytes::from_string(k), Some(Bytes::from(v))))
        .collect();
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: now_ms,
        key: line.key.map(Bytes::from),
        value: Some(Bytes::from(line.value)),
        headers,
    }
}

fn send(
    leaders: &mut Leaders,
    options: &ProduceOptions,
    partition: i32,
    mut batch: Pending,
    report: &mut Report<'_>,
) -> anyhow::Result<()> {
    // One batch: kafka-protocol's encoder starts a new batch wherever
    // offset minus sequence changes, and a Produce carries one batch per
    // partition. Sequence -1 on the first record keeps the batch's base
    // sequence at -1 (not idempotent).
    for (i, r) in batch.records.iter_mut().enumerate() {
        r.offset = i as i64;
        r.sequence = i as i32 - 1;
    }
    let mut encoded = BytesMut::with_capacity(batch.bytes + 128);
    RecordBatchEncoder::encode(
        &mut encoded,
        &batch.records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|e| anyhow!("encoding a batch: {e}"))?;
    let request = ProduceRequest::default()
        .with_acks(options.acks)
        .with_timeout_ms(TIMEOUT.as_millis() as i32)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(options.topic.clone())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(encoded.freeze()))])]);
    let client = leaders.client_for(partition)?;
    let count = batch.records.len() as i64;
    if options.acks == 0 {
        client.send_no_response(&request, 9)?;
        return report.batch(partition, -1, count);
    }
    let response = client.send(&request, 9)?;
    let p = response
        .responses
        .first()
        .and_then(|t| t.partition_responses.first())
        .ok_or_else(|| anyhow!("the broker answered no partition"))?;
    check_kafka(
        &format!("producing to {}/{partition}", options.topic),
        p.error_code,
        p.error_message.as_deref(),
    )?;
    report.batch(partition, p.base_offset, count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_the_java_client() {
        // Values of Kafka's Utils.murmur2 (its own test vectors).
        assert_eq!(murmur2(b"21"), -973_932_308);
        assert_eq!(murmur2(b"foobar"), -790_332_482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985_981_536);
        assert_eq!(murmur2(b"a-little-bit-longer-string"), -1_486_304_829);
        assert_eq!(
            murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"),
            -58_897_971
        );
        assert_eq!(murmur2(b"abc"), 479_470_107);
    }

    #[test]
    fn lines_split_into_headers_key_and_value() {
        let options = ProduceOptions {
            topic: "t".into(),
            partition: None,
            key_separator: Some(":".into()),
            header_separator: Some("|".into()),
            headers: vec![("all".into(), "1".into())],
            acks: -1,
            format: Format::Table,
        };
        let line = split_line("a=1,b=2|k:v:w", &options).expect("splits");
        assert_eq!(line.key.as_deref(), Some("k"));
        assert_eq!(line.value, "v:w");
        assert_eq!(line.headers.len(), 3);
        assert!(split_line("no separators", &options).is_err());
    }
}
