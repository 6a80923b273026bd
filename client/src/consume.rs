//! `sluice consume`: a topic's records to standard output, over the Kafka
//! protocol, like `kcat -C` and `rpk topic consume`.
//!
//! Owns: where reading starts (`--from beginning | end | offset N | time
//! T`, or, as a group member, the group's committed offsets), the fetch
//! loop (each partition's leader asked in turn, at most
//! [`FETCH_MAX_BYTES`] a fetch, records decoded and decompressed with
//! every codec Kafka has, control records skipped), how a record is
//! printed ([`Template`] of `%t %p %o %k %v %T %h`, or JSON lines) and
//! when to stop (`--count`, `--exit-at-end`, or never).
//!
//! As a group member (`--group`) it uses the KIP-848 protocol
//! (ConsumerGroupHeartbeat): the coordinator assigns it partitions, it
//! heartbeats at the interval the coordinator asks for, commits what it
//! printed (OffsetCommit with its member epoch) and leaves the group when
//! it stops.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use bytes::{Buf, Bytes};
use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    BrokerId, ConsumerGroupHeartbeatRequest, FetchRequest, GroupId, OffsetCommitRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, Record, RecordBatchDecoder};
use serde_json::json;

use crate::connection::Client;
use crate::groups::{committed, coordinator, list_offsets};
use crate::hint::{check_kafka, kafka_error};
use crate::leaders::Leaders;

/// Bytes one fetch asks for at most (and one partition at most).
pub const FETCH_MAX_BYTES: i32 = 1024 * 1024;
/// How long a fetch waits for records at most.
const FETCH_WAIT_MS: i32 = 500;
/// A decompressed batch larger than this is refused (a broken batch
/// must not take the memory).
const DECOMPRESSED_MAX_BYTES: usize = 64 * 1024 * 1024;

/// Where reading starts (without a group, or for partitions the group
/// has no committed offset for).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    Beginning,
    End,
    Offset(i64),
    /// Milliseconds since the epoch: the first record at or after it.
    Time(i64),
}

/// How a record is printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordFormat {
    /// A template (see [`Template`]).
    Template(Template),
    /// One JSON object per line.
    Json,
}

/// A print template: `%t` topic, `%p` partition, `%o` offset, `%k` key,
/// `%v` value, `%T` timestamp (ms), `%h` headers (`k=v,k=v`), `%%` a
/// percent sign; `\n`, `\t` and `\\` escapes. kcat's letters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(String);

impl Template {
    /// The template of `text`, its escapes resolved.
    pub fn parse(text: &str) -> Template {
        let mut out = String::with_capacity(text.len());
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('\\') => out.push('\\'),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            }
        }
        Template(out)
    }

    fn render(&self, topic: &str, partition: i32, r: &Record, out: &mut Vec<u8>) {
        let mut chars = self.0.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                continue;
            }
            match chars.next() {
                Some('t') => out.extend_from_slice(topic.as_bytes()),
                Some('p') => out.extend_from_slice(partition.to_string().as_bytes()),
                Some('o') => out.extend_from_slice(r.offset.to_string().as_bytes()),
                Some('T') => out.extend_from_slice(r.timestamp.to_string().as_bytes()),
                Some('k') => out.extend_from_slice(r.key.as_deref().unwrap_or_default()),
                Some('v') => out.extend_from_slice(r.value.as_deref().unwrap_or_default()),
                Some('h') => {
                    let headers: Vec<String> = r
                        .headers
                        .iter()
                        .map(|(k, v)| {
                            let v = v
                                .as_deref()
                                .map(String::from_utf8_lossy)
                                .unwrap_or_default();
                            format!("{}={v}", k.as_str())
                        })
                        .collect();
                    out.extend_from_slice(headers.join(",").as_bytes());
                }
                Some('%') => out.push(b'%'),
                Some(other) => {
                    out.push(b'%');
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(other.encode_utf8(&mut buf).as_bytes());
                }
                None => out.push(b'%'),
            }
        }
    }
}

/// What `sluice consume` reads and how it prints.
#[derive(Debug, Clone)]
pub struct ConsumeOptions {
    pub topic: String,
    /// Only these partitions (without a group); all when empty.
    pub partitions: Vec<i32>,
    pub start: StartAt,
    /// Read as a member of this group (KIP-848), committing what it read.
    pub group: Option<String>,
    /// Stop after this many records.
    pub count: Option<u64>,
    /// Stop once every partition read reached the end it had when first
    /// fetched.
    pub exit_at_end: bool,
    pub format: RecordFormat,
}

/// `sluice consume`: prints records to `out` until a stop condition holds
/// (never, without `count` or `exit_at_end`); answers how many it printed.
pub fn run(bootstrap: &str, options: &ConsumeOptions, out: &mut dyn Write) -> anyhow::Result<u64> {
    let mut leaders = Leaders::discover(bootstrap, &options.topic)?;
    let mut member = match &options.group {
        Some(group) => Some(Member::join(bootstrap, group, &options.topic)?),
        None => None,
    };
    // Position of each partition read; its end when first fetched.
    let mut positions: BTreeMap<i32, i64> = BTreeMap::new();
    let mut ends: BTreeMap<i32, i64> = BTreeMap::new();
    if member.is_none() {
        let wanted: Vec<i32> = if options.partitions.is_empty() {
            (0..leaders.partition_count()).collect()
        } else {
            options.partitions.clone()
        };
        for p in wanted {
            if !(0..leaders.partition_count()).contains(&p) {
                bail!("topic {} has no partition {p}", options.topic);
            }
            positions.insert(
                p,
                start_offset(&mut leaders, &options.topic, p, options.start)?,
            );
        }
    }
    let mut printed = 0u64;
    let mut line = Vec::with_capacity(4096);
    loop {
        if let Some(m) = member.as_mut() {
            let assigned = m.heartbeat_if_due(&leaders)?;
            if let Some(assigned) = assigned {
                positions.retain(|p, _| assigned.contains(p));
                let committed = m.committed(&options.topic)?;
                for p in assigned {
                    if let std::collections::btree_map::Entry::Vacant(slot) = positions.entry(p) {
                        let at = match committed.get(&p) {
                            Some(o) => *o,
                            None => start_offset(&mut leaders, &options.topic, p, options.start)?,
                        };
                        slot.insert(at);
                    }
                }
            }
        }
        let done = |printed: u64, positions: &BTreeMap<i32, i64>, ends: &BTreeMap<i32, i64>| {
            options.count.is_some_and(|c| printed >= c)
                || (options.exit_at_end
                    && !positions.is_empty()
                    && positions
                        .iter()
                        .all(|(p, at)| ends.get(p).is_some_and(|end| at >= end)))
        };
        if done(printed, &positions, &ends) {
            break;
        }
        if positions.is_empty() {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        let partitions: Vec<i32> = positions.keys().copied().collect();
        for p in partitions {
            let at = positions[&p];
            let (batches, high_watermark) = fetch(&mut leaders, &options.topic, p, at)?;
            if let Some(end) = high_watermark {
                ends.entry(p).or_insert(end);
            }
            'batches: for batch in batches {
                for r in batch.records {
                    if r.offset < at {
                        continue; // a batch starts before the position asked
                    }
                    positions.insert(p, r.offset + 1);
                    if r.control {
                        continue;
                    }
                    line.clear();
                    match &options.format {
                        RecordFormat::Template(t) => t.render(&options.topic, p, &r, &mut line),
                        RecordFormat::Json => {
                            let text = |b: &Option<Bytes>| {
                                b.as_deref()
                                    .map(|b| String::from_utf8_lossy(b).into_owned())
                            };
                            let headers: serde_json::Map<String, serde_json::Value> = r
                                .headers
                                .iter()
                                .map(|(k, v)| (k.to_string(), json!(text(v))))
                                .collect();
                            let value = json!({
                                "topic": options.topic, "partition": p, "offset": r.offset,
                                "timestamp": r.timestamp, "key": text(&r.key),
                                "value": text(&r.value), "headers": headers,
                            });
                            line.extend_from_slice(value.to_string().as_bytes());
                            line.push(b'\n');
                        }
                    }
                    out.write_all(&line).context("writing to standard output")?;
                    printed += 1;
                    if options.count.is_some_and(|c| printed >= c) {
                        break 'batches;
                    }
                }
                // A compacted batch keeps its offsets but not every record
                // (or none): the position moves past the whole batch.
                let next = positions
                    .get(&p)
                    .copied()
                    .unwrap_or(at)
                    .max(batch.next_offset);
                positions.insert(p, next);
            }
            if let Some(m) = member.as_mut() {
                m.commit(&options.topic, &positions)?;
            }
            if done(printed, &positions, &ends) {
                break;
            }
        }
        out.flush().context("writing to standard output")?;
    }
    out.flush().context("writing to standard output")?;
    if let Some(mut m) = member {
        m.commit(&options.topic, &positions)?;
        m.leave();
    }
    Ok(printed)
}

fn start_offset(
    leaders: &mut Leaders,
    topic: &str,
    partition: i32,
    start: StartAt,
) -> anyhow::Result<i64> {
    let timestamp = match start {
        StartAt::Offset(n) => return Ok(n),
        StartAt::Beginning => -2,
        StartAt::End => -1,
        StartAt::Time(ms) => ms,
    };
    let client = leaders.client_for(partition)?;
    let found = list_offsets(client, &[(topic.to_owned(), partition)], timestamp)?;
    match found.get(&(topic.to_owned(), partition)) {
        // No record at or after the time: start at the end.
        Some(o) if *o < 0 => list_offsets(client, &[(topic.to_owned(), partition)], -1)?
            .get(&(topic.to_owned(), partition))
            .copied()
            .ok_or_else(|| anyhow!("no end offset for {topic}/{partition}")),
        Some(o) => Ok(*o),
        None => Err(anyhow!("no offset for {topic}/{partition}")),
    }
}

/// One Fetch of `partition` from `offset`: its batches and its high
/// watermark (none when the leader moved: it is looked up again).
fn fetch(
    leaders: &mut Leaders,
    topic: &str,
    partition: i32,
    offset: i64,
) -> anyhow::Result<(Vec<Batch>, Option<i64>)> {
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(FETCH_WAIT_MS)
        .with_min_bytes(1)
        .with_max_bytes(FETCH_MAX_BYTES)
        .with_isolation_level(1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_owned())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(FETCH_MAX_BYTES)])]);
    let response = leaders.client_for(partition)?.send(&request, 12)?;
    let data = response
        .responses
        .first()
        .and_then(|t| t.partitions.first())
        .ok_or_else(|| anyhow!("the broker answered no partition"))?;
    match data.error_code {
        0 => {}
        // Leadership moved: ask again next time.
        6 | 74 | 75 => {
            leaders.refresh()?;
            return Ok((Vec::new(), None));
        }
        code => {
            return Err(kafka_error(
                &format!("fetching {topic}/{partition} at {offset}"),
                code,
                None,
            ))
        }
    }
    let records = data.records.clone().unwrap_or_default();
    Ok((decode(records)?, Some(data.high_watermark)))
}

/// One batch of a fetch: its records and the offset after it (its base
/// offset plus its last offset delta plus one, which a compacted batch
/// keeps whatever records it lost).
pub struct Batch {
    pub records: Vec<Record>,
    pub next_offset: i64,
}

/// Bytes of a batch header before the records count: the base offset (8),
/// length (4), leader epoch (4), magic (1), CRC (4), attributes (2) and last
/// offset delta (4) end at 27.
const LAST_OFFSET_DELTA_END: usize = 27;

/// Every whole batch in `records` (a fetch may end with part of one, which
/// the next fetch gets whole).
pub fn decode(mut records: Bytes) -> anyhow::Result<Vec<Batch>> {
    let mut out = Vec::new();
    while records.len() >= LAST_OFFSET_DELTA_END {
        let length = i32::from_be_bytes([records[8], records[9], records[10], records[11]]);
        let size = usize::try_from(length).map_err(|_| anyhow!("batch length {length}"))? + 12;
        if size < LAST_OFFSET_DELTA_END {
            bail!("batch length {length} is shorter than a batch header");
        }
        if records.len() < size {
            break;
        }
        let base_offset = i64::from_be_bytes(records[0..8].try_into().unwrap_or_default());
        let last_delta = i32::from_be_bytes(records[23..27].try_into().unwrap_or_default());
        let next_offset = base_offset + i64::from(last_delta) + 1;
        let mut batch = records.split_to(size);
        let set = RecordBatchDecoder::decode_with_custom_compression(
            &mut batch,
            Some(
                |data: &mut Bytes, codec: Compression| -> anyhow::Result<Bytes> {
                    let codec = match codec {
                        Compression::None => sluice_core::batch::Compression::None,
                        Compression::Gzip => sluice_core::batch::Compression::Gzip,
                        Compression::Snappy => sluice_core::batch::Compression::Snappy,
                        Compression::Lz4 => sluice_core::batch::Compression::Lz4,
                        Compression::Zstd => sluice_core::batch::Compression::Zstd,
                    };
                    let bytes = data.copy_to_bytes(data.remaining());
                    sluice_core::compression::decompress(codec, &bytes, DECOMPRESSED_MAX_BYTES)
                        .map_err(|e| anyhow!("{e}"))
                },
            ),
        )
        .map_err(|e| anyhow!("a record batch does not decode: {e}"))?;
        out.push(Batch {
            records: set.records,
            next_offset,
        });
    }
    Ok(out)
}

/// A KIP-848 group member: its coordinator connection, id and epoch.
struct Member {
    client: Client,
    bootstrap: String,
    group: String,
    topic: String,
    member_id: String,
    epoch: i32,
    heartbeat_every: Duration,
    last_heartbeat: Option<Instant>,
    /// The partitions of the topic assigned now.
    assigned: Vec<i32>,
}

/// Errors after which a member joins again from epoch 0.
const FENCED: [i16; 2] = [
    25,  // UNKNOWN_MEMBER_ID
    110, // FENCED_MEMBER_EPOCH
];

impl Member {
    fn join(bootstrap: &str, group: &str, topic: &str) -> anyhow::Result<Member> {
        Ok(Member {
            client: coordinator(bootstrap, group)?,
            bootstrap: bootstrap.to_owned(),
            group: group.to_owned(),
            topic: topic.to_owned(),
            member_id: uuid::Uuid::new_v4().to_string(),
            epoch: 0,
            heartbeat_every: Duration::from_secs(1),
            last_heartbeat: None,
            assigned: Vec::new(),
        })
    }

    fn heartbeat_request(&self) -> ConsumerGroupHeartbeatRequest {
        let joining = self.epoch == 0;
        ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(self.group.clone())))
            .with_member_id(StrBytes::from_string(self.member_id.clone()))
            .with_member_epoch(self.epoch)
            .with_rebalance_timeout_ms(if joining { 30_000 } else { -1 })
            .with_subscribed_topic_names(
                joining.then(|| vec![TopicName(StrBytes::from_string(self.topic.clone()))]),
            )
    }

    /// Heartbeats when due; answers the new assignment when it changed.
    fn heartbeat_if_due(&mut self, leaders: &Leaders) -> anyhow::Result<Option<Vec<i32>>> {
        if self
            .last_heartbeat
            .is_some_and(|at| at.elapsed() < self.heartbeat_every)
        {
            return Ok(None);
        }
        self.last_heartbeat = Some(Instant::now());
        // Kafka wants an empty list (not a topic without partitions) from
        // a member that owns nothing.
        let owned = if self.assigned.is_empty() {
            Vec::new()
        } else {
            vec![TopicPartitions::default()
                .with_topic_id(leaders.topic_id)
                .with_partitions(self.assigned.clone())]
        };
        let request = self.heartbeat_request().with_topic_partitions(Some(owned));
        let response = self.client.send(&request, 1)?;
        if FENCED.contains(&response.error_code) {
            // Fenced: join again, owning nothing.
            self.epoch = 0;
            self.assigned.clear();
            self.last_heartbeat = None;
            return Ok(Some(Vec::new()));
        }
        if matches!(response.error_code, 14..=16) {
            // The coordinator moved or is loading: find it again, and
            // heartbeat again shortly.
            std::thread::sleep(Duration::from_millis(200));
            self.client = coordinator(&self.bootstrap, &self.group)?;
            self.last_heartbeat = None;
            return Ok(None);
        }
        check_kafka(
            &format!("heartbeating in group {}", self.group),
            response.error_code,
            response.error_message.as_deref(),
        )?;
        self.epoch = response.member_epoch;
        if response.heartbeat_interval_ms > 0 {
            self.heartbeat_every = Duration::from_millis(response.heartbeat_interval_ms as u64);
        }
        let Some(assignment) = response.assignment else {
            return Ok(None);
        };
        let mut partitions: Vec<i32> = assignment
            .topic_partitions
            .iter()
            .filter(|t| t.topic_id == leaders.topic_id)
            .flat_map(|t| t.partitions.iter().copied())
            .collect();
        partitions.sort_unstable();
        self.assigned = partitions.clone();
        // Report what it owns now at once.
        self.last_heartbeat = None;
        Ok(Some(partitions))
    }

    /// The group's committed offsets of the topic's partitions.
    fn committed(&mut self, topic: &str) -> anyhow::Result<BTreeMap<i32, i64>> {
        Ok(committed(&mut self.client, &self.group)?
            .into_iter()
            .filter(|((t, _), _)| t == topic)
            .map(|((_, p), o)| (p, o))
            .collect())
    }

    /// Commits the positions of the partitions assigned to it.
    fn commit(&mut self, topic: &str, positions: &BTreeMap<i32, i64>) -> anyhow::Result<()> {
        let partitions: Vec<OffsetCommitRequestPartition> = positions
            .iter()
            .filter(|(p, _)| self.assigned.contains(p))
            .map(|(p, o)| {
                OffsetCommitRequestPartition::default()
                    .with_partition_index(*p)
                    .with_committed_offset(*o)
                    .with_committed_leader_epoch(-1)
            })
            .collect();
        if partitions.is_empty() {
            return Ok(());
        }
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(self.group.clone())))
            .with_generation_id_or_member_epoch(self.epoch)
            .with_member_id(StrBytes::from_string(self.member_id.clone()))
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                .with_partitions(partitions)]);
        let response = self.client.send(&request, 9)?;
        for t in &response.topics {
            for p in &t.partitions {
                match p.error_code {
                    0 => {}
                    // The epoch moved on: the next heartbeat catches up,
                    // and the next commit carries the new epoch.
                    113 | 110 | 25 => self.last_heartbeat = None,
                    code => {
                        return Err(kafka_error(
                            &format!("committing offsets of group {}", self.group),
                            code,
                            None,
                        ))
                    }
                }
            }
        }
        Ok(())
    }

    /// Leaves the group (member epoch -1); an error is only logged, the
    /// session ends it anyway.
    fn leave(&mut self) {
        let request = self.heartbeat_request().with_member_epoch(-1);
        if let Err(e) = self.client.send(&request, 1) {
            tracing::debug!(error = %e, "leaving the group");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A compacted batch keeps its offsets but loses records (or all of
    /// them): the position after it is its last offset plus one, not the
    /// last record read plus one.
    #[test]
    fn a_compacted_batch_is_passed_whole() {
        use sluice_core::batch::{BatchBuilder, RecordBatch};
        use sluice_core::compaction::{read_records, rebuild_batch};
        let built = (0..4).fold(BatchBuilder::new(1), |b, i| {
            let key = format!("k{i}");
            b.record(Some(key.as_bytes()), Some(b"v"))
        });
        let batch = RecordBatch::parse(built.build()).expect("a batch");
        let records = read_records(&batch, 1 << 20).expect("its records");
        let middle: Vec<_> = records[1..3].iter().collect();
        let mut fetched = bytes::BytesMut::new();
        fetched.extend_from_slice(&rebuild_batch(&batch, &middle, None).expect("rebuilt"));
        fetched.extend_from_slice(&rebuild_batch(&batch, &[], None).expect("emptied"));
        let batches = decode(fetched.freeze()).expect("decodes");
        assert_eq!(batches.len(), 2);
        let offsets: Vec<i64> = batches[0].records.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![1, 2]);
        assert_eq!(batches[0].next_offset, 4);
        assert!(batches[1].records.is_empty());
        assert_eq!(batches[1].next_offset, 4);
    }

    #[test]
    fn templates_print_kcat_letters() {
        let t = Template::parse("%t/%p@%o %k=%v [%h] %%\\n");
        let record = Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: kafka_protocol::records::TimestampType::Creation,
            offset: 7,
            sequence: -1,
            timestamp: 1,
            key: Some(Bytes::from_static(b"k")),
            value: Some(Bytes::from_static(b"v")),
            headers: [(
                StrBytes::from_static_str("h"),
                Some(Bytes::from_static(b"1")),
            )]
            .into_iter()
            .collect(),
        };
        let mut out = Vec::new();
        t.render("t", 2, &record, &mut out);
        assert_eq!(String::from_utf8_lossy(&out), "t/2@7 k=v [h=1] %\n");
        let mut out = Vec::new();
        Template::parse("%v\\n").render("t", 0, &record, &mut out);
        assert_eq!(out, b"v\n");
    }
}
