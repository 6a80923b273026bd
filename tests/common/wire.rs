//! A small, hand-written Kafka wire codec for tests: request framing, the
//! few non-flexible API versions the tests send by hand (ApiVersions v0,
//! Metadata v2, Produce v3, Fetch v4, InitProducerId v0), and RecordBatch
//! v2 encoding and decoding with CRC-32C. Independent of the broker's codec on purpose: a
//! bug shared by both would otherwise hide.
//!
//! Everything is big-endian, as the protocol says. Decoding returns
//! `Err(String)` on truncated or malformed responses, never panics on
//! broker data.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

pub const API_PRODUCE: i16 = 0;
pub const API_FETCH: i16 = 1;
pub const API_METADATA: i16 = 3;
pub const API_OFFSET_FETCH: i16 = 9;
pub const API_FIND_COORDINATOR: i16 = 10;
pub const API_VERSIONS: i16 = 18;
pub const API_INIT_PRODUCER_ID: i16 = 22;

pub const ERROR_NONE: i16 = 0;
pub const ERROR_CORRUPT_MESSAGE: i16 = 2;
pub const ERROR_INVALID_RECORD: i16 = 87;
pub const ERROR_COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
pub const ERROR_UNSUPPORTED_VERSION: i16 = 35;
pub const ERROR_OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
pub const ERROR_INVALID_PRODUCER_EPOCH: i16 = 47;

/// Response frames larger than this are treated as a broken stream.
const RESPONSE_MAX_BYTES: usize = 64 << 20;

/// Appends protocol primitives to a buffer.
#[derive(Default)]
pub struct Encoder(pub Vec<u8>);

impl Encoder {
    pub fn i8(&mut self, v: i8) -> &mut Self {
        self.0.push(v as u8);
        self
    }
    pub fn i16(&mut self, v: i16) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn i32(&mut self, v: i32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.extend_from_slice(bytes);
        self
    }
    /// STRING: i16 length, then UTF-8 bytes.
    pub fn string(&mut self, s: &str) -> &mut Self {
        self.i16(s.len() as i16).raw(s.as_bytes())
    }
    /// NULLABLE_STRING: length -1 for null.
    pub fn nullable_string(&mut self, s: Option<&str>) -> &mut Self {
        match s {
            Some(s) => self.string(s),
            None => self.i16(-1),
        }
    }
    /// BYTES / RECORDS: i32 length, then the bytes.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.i32(b.len() as i32).raw(b)
    }
    /// UNSIGNED_VARINT (flexible versions' lengths and tag counts).
    pub fn uvarint(&mut self, mut v: u64) -> &mut Self {
        while v >= 0x80 {
            self.0.push((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
        self
    }
    /// VARINT / VARLONG: zigzag, as in records.
    pub fn varint(&mut self, v: i64) -> &mut Self {
        self.uvarint(((v << 1) ^ (v >> 63)) as u64)
    }
    /// COMPACT_STRING: unsigned varint length + 1, then the bytes.
    pub fn compact_string(&mut self, s: &str) -> &mut Self {
        self.uvarint(s.len() as u64 + 1).raw(s.as_bytes())
    }
}

/// Reads protocol primitives from a response.
pub struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    pub fn new(buf: &'a [u8]) -> Decoder<'a> {
        Decoder { buf, pos: 0 }
    }
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.remaining() < n {
            return Err(format!(
                "truncated: wanted {n} bytes at {} of {}",
                self.pos,
                self.buf.len()
            ));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }
    pub fn i8(&mut self) -> Result<i8, String> {
        Ok(self.take(1)?[0] as i8)
    }
    pub fn i16(&mut self) -> Result<i16, String> {
        Ok(i16::from_be_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    pub fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    pub fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    pub fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    pub fn nullable_string(&mut self) -> Result<Option<String>, String> {
        let len = self.i16()?;
        if len < 0 {
            return Ok(None);
        }
        let bytes = self.take(len as usize)?;
        String::from_utf8(bytes.to_vec())
            .map(Some)
            .map_err(|e| format!("string: {e}"))
    }
    pub fn string(&mut self) -> Result<String, String> {
        self.nullable_string()?
            .ok_or_else(|| "null where a STRING was expected".to_owned())
    }
    pub fn nullable_bytes(&mut self) -> Result<Option<Vec<u8>>, String> {
        let len = self.i32()?;
        if len < 0 {
            return Ok(None);
        }
        Ok(Some(self.take(len as usize)?.to_vec()))
    }
    /// An ARRAY's element count; null (-1) reads as 0.
    pub fn array_len(&mut self) -> Result<usize, String> {
        let n = self.i32()?;
        if n > 1_000_000 {
            return Err(format!("array of {n} elements"));
        }
        Ok(n.max(0) as usize)
    }
    pub fn varint(&mut self) -> Result<i64, String> {
        let mut v: u64 = 0;
        for shift in (0..70).step_by(7) {
            let b = self.take(1)?[0];
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok((v >> 1) as i64 ^ -((v & 1) as i64));
            }
        }
        Err("varint longer than 10 bytes".into())
    }
    pub fn varint_bytes(&mut self) -> Result<Option<Vec<u8>>, String> {
        let len = self.varint()?;
        if len < 0 {
            return Ok(None);
        }
        Ok(Some(self.take(len as usize)?.to_vec()))
    }
    /// Fails unless every byte was read.
    pub fn finish(&self) -> Result<(), String> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(format!("{} bytes left over", self.remaining()))
        }
    }
}

/// A request frame with header v1 (non-flexible versions): size, api key,
/// api version, correlation id, client id, body.
pub fn request_frame(api_key: i16, api_version: i16, correlation_id: i32, body: &[u8]) -> Vec<u8> {
    let mut e = Encoder::default();
    e.i32(0)
        .i16(api_key)
        .i16(api_version)
        .i32(correlation_id)
        .nullable_string(Some("sluice-tests"))
        .raw(body);
    let size = (e.0.len() - 4) as i32;
    e.0[..4].copy_from_slice(&size.to_be_bytes());
    e.0
}

/// A request frame with header v2 (flexible versions): header v1 plus an
/// empty tagged-field section.
pub fn flexible_request_frame(
    api_key: i16,
    api_version: i16,
    correlation_id: i32,
    body: &[u8],
) -> Vec<u8> {
    let mut e = Encoder::default();
    e.i32(0)
        .i16(api_key)
        .i16(api_version)
        .i32(correlation_id)
        .nullable_string(Some("sluice-tests"))
        .uvarint(0);
    e.raw(body);
    let size = (e.0.len() - 4) as i32;
    e.0[..4].copy_from_slice(&size.to_be_bytes());
    e.0
}

/// ApiVersions v0 answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiVersions {
    pub error_code: i16,
    /// (api key, min version, max version)
    pub api_keys: Vec<(i16, i16, i16)>,
}

pub fn decode_api_versions_v0(body: &[u8]) -> Result<ApiVersions, String> {
    let mut d = Decoder::new(body);
    let error_code = d.i16()?;
    let n = d.array_len()?;
    let mut api_keys = Vec::with_capacity(n);
    for _ in 0..n {
        api_keys.push((d.i16()?, d.i16()?, d.i16()?));
    }
    d.finish()?;
    Ok(ApiVersions {
        error_code,
        api_keys,
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataBroker {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataTopic {
    pub error_code: i16,
    pub name: String,
    /// (partition, error code, leader)
    pub partitions: Vec<(i32, i16, i32)>,
    /// Each partition's replicas, in the order of `partitions`.
    pub replicas: Vec<Vec<i32>>,
}

/// Metadata v2 answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    pub brokers: Vec<MetadataBroker>,
    pub cluster_id: Option<String>,
    pub controller_id: i32,
    pub topics: Vec<MetadataTopic>,
}

/// One partition's Produce answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducePartition {
    pub error_code: i16,
    pub base_offset: i64,
}

/// One partition's Fetch answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchPartition {
    pub error_code: i16,
    pub high_watermark: i64,
    pub records: Vec<u8>,
}

/// InitProducerId answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitProducerId {
    pub error_code: i16,
    pub producer_id: i64,
    pub producer_epoch: i16,
}

/// A blocking connection that sends hand-encoded requests.
pub struct Conn {
    pub stream: TcpStream,
    next_correlation_id: i32,
}

impl Conn {
    /// Connects with `timeout`; reads and writes then time out after 30 s.
    pub fn connect(addr: SocketAddr, timeout: Duration) -> std::io::Result<Conn> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.set_write_timeout(Some(Duration::from_secs(30)))?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            next_correlation_id: 1,
        })
    }

    pub fn next_correlation_id(&mut self) -> i32 {
        let id = self.next_correlation_id;
        self.next_correlation_id += 1;
        id
    }

    pub fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Reads one size-prefixed frame (without the size).
    pub fn read_frame(&mut self) -> Result<Vec<u8>, String> {
        let mut size = [0u8; 4];
        self.stream
            .read_exact(&mut size)
            .map_err(|e| format!("reading a response size: {e}"))?;
        let size = i32::from_be_bytes(size);
        if size < 4 || size as usize > RESPONSE_MAX_BYTES {
            return Err(format!("response frame of {size} bytes"));
        }
        let mut frame = vec![0u8; size as usize];
        self.stream
            .read_exact(&mut frame)
            .map_err(|e| format!("reading a {size}-byte response: {e}"))?;
        Ok(frame)
    }

    /// Sends a non-flexible request and returns the response body (after
    /// a v0 response header whose correlation id is checked).
    pub fn round_trip(
        &mut self,
        api_key: i16,
        api_version: i16,
        body: &[u8],
    ) -> Result<Vec<u8>, String> {
        let correlation_id = self.next_correlation_id();
        self.send(&request_frame(api_key, api_version, correlation_id, body))
            .map_err(|e| format!("sending: {e}"))?;
        let frame = self.read_frame()?;
        let got = i32::from_be_bytes(frame[..4].try_into().expect("frames are at least 4 bytes"));
        if got != correlation_id {
            return Err(format!("correlation id {got}, sent {correlation_id}"));
        }
        Ok(frame[4..].to_vec())
    }

    /// Waits until the broker closes the connection: a read returns 0 (FIN)
    /// or a reset. Anything the broker sends instead is an error, and so is
    /// a connection still open at the deadline.
    pub fn expect_closed(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("the connection is still open after {timeout:?}"));
            }
            self.stream
                .set_read_timeout(Some(left))
                .map_err(|e| e.to_string())?;
            match self.stream.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => {
                    return Err(format!(
                        "the broker answered {n} bytes instead of closing: {:02x?}",
                        &buf[..n.min(64)]
                    ))
                }
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(()),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }

    pub fn api_versions_v0(&mut self) -> Result<ApiVersions, String> {
        decode_api_versions_v0(&self.round_trip(API_VERSIONS, 0, &[])?)
    }

    /// Metadata v2 for `topics` (empty: no topics, just brokers).
    pub fn metadata_v2(&mut self, topics: &[&str]) -> Result<Metadata, String> {
        self.metadata_v2_of(Some(topics))
    }

    /// Metadata v2 for every topic (a null topic array).
    pub fn metadata_v2_all(&mut self) -> Result<Metadata, String> {
        self.metadata_v2_of(None)
    }

    fn metadata_v2_of(&mut self, topics: Option<&[&str]>) -> Result<Metadata, String> {
        let mut e = Encoder::default();
        match topics {
            Some(topics) => {
                e.i32(topics.len() as i32);
                for t in topics {
                    e.string(t);
                }
            }
            None => {
                e.i32(-1);
            }
        }
        let body = self.round_trip(API_METADATA, 2, &e.0)?;
        let mut d = Decoder::new(&body);
        let mut brokers = Vec::new();
        for _ in 0..d.array_len()? {
            let node_id = d.i32()?;
            let host = d.string()?;
            let port = d.i32()?;
            let _rack = d.nullable_string()?;
            brokers.push(MetadataBroker {
                node_id,
                host,
                port,
            });
        }
        let cluster_id = d.nullable_string()?;
        let controller_id = d.i32()?;
        let mut topics = Vec::new();
        for _ in 0..d.array_len()? {
            let error_code = d.i16()?;
            let name = d.string()?;
            let _is_internal = d.i8()?;
            let mut partitions = Vec::new();
            let mut replicas = Vec::new();
            for _ in 0..d.array_len()? {
                let error_code = d.i16()?;
                let index = d.i32()?;
                let leader = d.i32()?;
                let mut these = Vec::new();
                for _ in 0..d.array_len()? {
                    these.push(d.i32()?);
                }
                replicas.push(these);
                for _ in 0..d.array_len()? {
                    d.i32()?; // in-sync replica
                }
                partitions.push((index, error_code, leader));
            }
            topics.push(MetadataTopic {
                error_code,
                name,
                partitions,
                replicas,
            });
        }
        d.finish()?;
        Ok(Metadata {
            brokers,
            cluster_id,
            controller_id,
            topics,
        })
    }

    /// FindCoordinator v1 for a group: the error code and the node id.
    pub fn find_group_coordinator_v1(&mut self, group: &str) -> Result<(i16, i32), String> {
        let mut e = Encoder::default();
        e.string(group).i8(0);
        let body = self.round_trip(API_FIND_COORDINATOR, 1, &e.0)?;
        let mut d = Decoder::new(&body);
        let _throttle_time_ms = d.i32()?;
        let error_code = d.i16()?;
        let _message = d.nullable_string()?;
        let node_id = d.i32()?;
        let _host = d.string()?;
        let _port = d.i32()?;
        d.finish()?;
        Ok((error_code, node_id))
    }

    /// OffsetFetch v3 of one partition for `group`: the group's error code
    /// and the committed offset (-1 when none).
    pub fn offset_fetch_v3(
        &mut self,
        group: &str,
        topic: &str,
        partition: i32,
    ) -> Result<(i16, i64), String> {
        let mut e = Encoder::default();
        e.string(group).i32(1).string(topic).i32(1).i32(partition);
        let body = self.round_trip(API_OFFSET_FETCH, 3, &e.0)?;
        let mut d = Decoder::new(&body);
        let _throttle_time_ms = d.i32()?;
        let mut offset = -1;
        for _ in 0..d.array_len()? {
            let _name = d.string()?;
            for _ in 0..d.array_len()? {
                let _partition = d.i32()?;
                offset = d.i64()?;
                let _metadata = d.nullable_string()?;
                let _error = d.i16()?;
            }
        }
        let error_code = d.i16()?;
        d.finish()?;
        Ok((error_code, offset))
    }

    /// InitProducerId v0 for an idempotent (non-transactional) producer.
    pub fn init_producer_id_v0(&mut self) -> Result<InitProducerId, String> {
        let mut e = Encoder::default();
        // Transactional id: null; transaction timeout (unused without one).
        e.nullable_string(None).i32(60_000);
        let body = self.round_trip(API_INIT_PRODUCER_ID, 0, &e.0)?;
        let mut d = Decoder::new(&body);
        let _throttle_time_ms = d.i32()?;
        let answer = InitProducerId {
            error_code: d.i16()?,
            producer_id: d.i64()?,
            producer_epoch: d.i16()?,
        };
        d.finish()?;
        Ok(answer)
    }

    /// Produce v3 of one record set to one partition; returns its answer.
    pub fn produce_v3(
        &mut self,
        topic: &str,
        partition: i32,
        acks: i16,
        records: &[u8],
    ) -> Result<ProducePartition, String> {
        self.produce_v3_throttled(topic, partition, acks, records)
            .map(|(answer, _)| answer)
    }

    /// [`Self::produce_v3`], with the answer's `throttle_time_ms`.
    pub fn produce_v3_throttled(
        &mut self,
        topic: &str,
        partition: i32,
        acks: i16,
        records: &[u8],
    ) -> Result<(ProducePartition, i32), String> {
        let mut e = Encoder::default();
        e.nullable_string(None).i16(acks).i32(30_000);
        e.i32(1).string(topic).i32(1).i32(partition).bytes(records);
        let body = self.round_trip(API_PRODUCE, 3, &e.0)?;
        let mut d = Decoder::new(&body);
        let mut answer = None;
        for _ in 0..d.array_len()? {
            let name = d.string()?;
            for _ in 0..d.array_len()? {
                let index = d.i32()?;
                let error_code = d.i16()?;
                let base_offset = d.i64()?;
                let _log_append_time_ms = d.i64()?;
                if name == topic && index == partition {
                    answer = Some(ProducePartition {
                        error_code,
                        base_offset,
                    });
                }
            }
        }
        let throttle_time_ms = d.i32()?;
        d.finish()?;
        let answer = answer.ok_or_else(|| format!("no answer for {topic}/{partition}"))?;
        Ok((answer, throttle_time_ms))
    }

    /// Fetch v4 of one partition from `offset`, without waiting for data.
    pub fn fetch_v4(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: i32,
    ) -> Result<FetchPartition, String> {
        self.fetch_many_v4(topic, &[(partition, offset, max_bytes)], max_bytes, 0, 0)?
            .into_iter()
            .find_map(|(index, answer)| (index == partition).then_some(answer))
            .ok_or_else(|| format!("no answer for {topic}/{partition}"))
    }
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as RecordBatch v2
/// uses. Bitwise: slow, obviously right, and independent of the broker's.
pub fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Offset of the CRC field in a RecordBatch v2.
pub const BATCH_CRC_OFFSET: usize = 17;
/// Offset of the attributes field (the first byte the CRC covers).
pub const BATCH_ATTRIBUTES_OFFSET: usize = 21;

/// A record's key and value to encode (`None`: null).
pub type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// A stored record's offset, key and value.
pub type OffsetKeyValue = (i64, Option<Vec<u8>>, Option<Vec<u8>>);

/// A RecordBatch v2's producer fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerFields {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}

impl ProducerFields {
    /// No producer: what a non-idempotent producer sends.
    pub const NONE: ProducerFields = ProducerFields {
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
    };
}

/// An uncompressed RecordBatch v2 at base offset 0 holding `records`
/// (key, value), all with timestamp `timestamp_ms`, with a correct CRC.
pub fn record_batch(timestamp_ms: i64, records: &[KeyValue<'_>]) -> Vec<u8> {
    producer_record_batch(ProducerFields::NONE, timestamp_ms, records)
}

/// [`record_batch`] with the producer id, epoch and base sequence of an
/// idempotent producer.
pub fn producer_record_batch(
    producer: ProducerFields,
    timestamp_ms: i64,
    records: &[KeyValue<'_>],
) -> Vec<u8> {
    assert!(!records.is_empty(), "a batch holds at least one record");
    let mut e = Encoder::default();
    e.i64(0); // base offset: the broker assigns it
    e.i32(0); // batch length, patched below
    e.i32(-1); // partition leader epoch
    e.i8(2); // magic
    e.u32(0); // crc, patched below
    e.i16(0); // attributes: no compression, CreateTime, not transactional
    e.i32(records.len() as i32 - 1); // last offset delta
    e.i64(timestamp_ms).i64(timestamp_ms); // base and max timestamp
    e.i64(producer.producer_id)
        .i16(producer.producer_epoch)
        .i32(producer.base_sequence);
    e.i32(records.len() as i32);
    for (delta, (key, value)) in records.iter().enumerate() {
        let mut r = Encoder::default();
        r.i8(0).varint(0).varint(delta as i64);
        for field in [key, value] {
            match field {
                Some(b) => r.varint(b.len() as i64).raw(b),
                None => r.varint(-1),
            };
        }
        r.varint(0); // headers
        e.varint(r.0.len() as i64).raw(&r.0);
    }
    let mut batch = e.0;
    let length = (batch.len() - 12) as i32;
    batch[8..12].copy_from_slice(&length.to_be_bytes());
    let crc = crc32c(&batch[BATCH_ATTRIBUTES_OFFSET..]);
    batch[BATCH_CRC_OFFSET..BATCH_CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    batch
}

/// One record of a decoded batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub offset: i64,
    pub timestamp_ms: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
}

impl Record {
    pub fn offset_key_value(&self) -> OffsetKeyValue {
        (self.offset, self.key.clone(), self.value.clone())
    }
}

/// A decoded RecordBatch v2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub base_offset: i64,
    pub last_offset_delta: i32,
    pub attributes: i16,
    /// Producer id, epoch and base sequence as stored.
    pub producer: ProducerFields,
    /// Whether the stored CRC matches the bytes.
    pub crc_ok: bool,
    /// The records; empty when the batch is compressed.
    pub records: Vec<Record>,
    /// The whole batch as stored.
    pub bytes: Vec<u8>,
}

impl Batch {
    /// The compression codec: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd.
    pub fn compression(&self) -> i16 {
        self.attributes & 0x7
    }
}

/// Decodes the batches of a Fetch answer's record set; a trailing partial
/// batch (allowed by the protocol) is dropped.
pub fn decode_batches(mut bytes: &[u8]) -> Result<Vec<Batch>, String> {
    let mut batches = Vec::new();
    while bytes.len() >= 12 {
        let length = i32::from_be_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if length < 49 {
            return Err(format!("batch length {length}"));
        }
        let total = 12 + length as usize;
        if bytes.len() < total {
            break;
        }
        let (batch, rest) = bytes.split_at(total);
        bytes = rest;
        let mut d = Decoder::new(batch);
        let base_offset = d.i64()?;
        let _length = d.i32()?;
        let _leader_epoch = d.i32()?;
        let magic = d.i8()?;
        if magic != 2 {
            return Err(format!("batch at {base_offset} has magic {magic}"));
        }
        let crc = d.u32()?;
        let attributes = d.i16()?;
        let last_offset_delta = d.i32()?;
        let base_timestamp = d.i64()?;
        let _max_timestamp = d.i64()?;
        let producer = ProducerFields {
            producer_id: d.i64()?,
            producer_epoch: d.i16()?,
            base_sequence: d.i32()?,
        };
        let count = d.i32()?;
        let mut records = Vec::new();
        if attributes & 0x7 == 0 {
            for _ in 0..count {
                let length = d.varint()?;
                let mut r = Decoder::new(d.take(length as usize)?);
                let _attributes = r.i8()?;
                let timestamp_delta = r.varint()?;
                let offset_delta = r.varint()?;
                let key = r.varint_bytes()?;
                let value = r.varint_bytes()?;
                for _ in 0..r.varint()? {
                    r.varint_bytes()?;
                    r.varint_bytes()?;
                }
                r.finish()?;
                records.push(Record {
                    offset: base_offset + offset_delta,
                    timestamp_ms: base_timestamp + timestamp_delta,
                    key,
                    value,
                });
            }
            d.finish()?;
        }
        batches.push(Batch {
            base_offset,
            last_offset_delta,
            attributes,
            producer,
            crc_ok: crc32c(&batch[BATCH_ATTRIBUTES_OFFSET..]) == crc,
            records,
            bytes: batch.to_vec(),
        });
    }
    Ok(batches)
}

/// One partition of a multi-partition Fetch v4: (partition, fetch offset,
/// partition max bytes).
pub type FetchWant = (i32, i64, i32);

impl Conn {
    /// Fetch v4 of several partitions of `topic` in one request, with the
    /// request-wide `max_bytes` and a long poll of `max_wait_ms` for
    /// `min_bytes`; the answers in the response's order.
    pub fn fetch_many_v4(
        &mut self,
        topic: &str,
        partitions: &[FetchWant],
        max_bytes: i32,
        max_wait_ms: i32,
        min_bytes: i32,
    ) -> Result<Vec<(i32, FetchPartition)>, String> {
        let mut e = Encoder::default();
        e.i32(-1)
            .i32(max_wait_ms)
            .i32(min_bytes)
            .i32(max_bytes)
            .i8(0);
        e.i32(1).string(topic).i32(partitions.len() as i32);
        for &(partition, offset, partition_max_bytes) in partitions {
            e.i32(partition).i64(offset).i32(partition_max_bytes);
        }
        let body = self.round_trip(API_FETCH, 4, &e.0)?;
        let mut d = Decoder::new(&body);
        let _throttle_time_ms = d.i32()?;
        let mut answers = Vec::new();
        for _ in 0..d.array_len()? {
            let _name = d.string()?;
            for _ in 0..d.array_len()? {
                let index = d.i32()?;
                let error_code = d.i16()?;
                let high_watermark = d.i64()?;
                let _last_stable_offset = d.i64()?;
                for _ in 0..d.array_len()? {
                    d.i64()?;
                    d.i64()?;
                }
                let records = d.nullable_bytes()?.unwrap_or_default();
                answers.push((
                    index,
                    FetchPartition {
                        error_code,
                        high_watermark,
                        records,
                    },
                ));
            }
        }
        d.finish()?;
        Ok(answers)
    }
}
