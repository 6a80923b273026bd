//! A zero-copy view over Kafka RecordBatch v2 bytes.
//!
//! Owns: the layout of the 61-byte batch header, its bounds checks, the
//! CRC-32C check, walking a buffer that holds several batches back to back,
//! and in-place assignment of base offset and partition leader epoch.
//!
//! Layout (big-endian), as Kafka's `DefaultRecordBatch` defines it:
//!
//! ```text
//!  0 baseOffset: int64          8 batchLength: int32 (bytes after this field)
//! 12 partitionLeaderEpoch: i32 16 magic: int8 (= 2)
//! 17 crc: uint32 (CRC-32C of bytes 21..end)
//! 21 attributes: int16         23 lastOffsetDelta: int32
//! 27 baseTimestamp: int64      35 maxTimestamp: int64
//! 43 producerId: int64         51 producerEpoch: int16
//! 53 baseSequence: int32       57 recordsCount: int32
//! 61 records...
//! ```
//!
//! Invariants: a [`RecordBatch`] always holds exactly one whole batch whose
//! length field matches its byte length and whose magic is 2. Its CRC has been
//! checked unless it was built with [`RecordBatch::parse_unchecked`]. Base
//! offset and leader epoch lie outside the CRC's range, so rewriting them never
//! invalidates the checksum.
//!
//! ```
//! use sluice_core::batch::{RecordBatch, BatchBuilder};
//! let bytes = BatchBuilder::new(0).record(None, Some(b"hello")).build();
//! let batch = RecordBatch::parse(bytes).unwrap();
//! assert_eq!(batch.records_count(), 1);
//! ```

use bytes::{Bytes, BytesMut};

use crate::error::ErrorCode;
use crate::types::Offset;

/// Size of the fixed v2 batch header.
pub const HEADER_BYTES: usize = 61;
/// Size of the prefix that states a batch's length: baseOffset + batchLength.
pub const LOG_OVERHEAD_BYTES: usize = 12;
/// Batch length field value of the smallest legal batch (header, no records).
pub const MIN_BATCH_LENGTH: i32 = (HEADER_BYTES - LOG_OVERHEAD_BYTES) as i32;

const BASE_OFFSET_AT: usize = 0;
const BATCH_LENGTH_AT: usize = 8;
const LEADER_EPOCH_AT: usize = 12;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;
const LAST_OFFSET_DELTA_AT: usize = 23;
const BASE_TIMESTAMP_AT: usize = 27;
const MAX_TIMESTAMP_AT: usize = 35;
const PRODUCER_ID_AT: usize = 43;
const PRODUCER_EPOCH_AT: usize = 51;
const BASE_SEQUENCE_AT: usize = 53;
const RECORDS_COUNT_AT: usize = 57;

/// Attribute bits (Kafka's `DefaultRecordBatch`).
pub const COMPRESSION_MASK: i16 = 0x07;
pub const LOG_APPEND_TIME_FLAG: i16 = 0x08;
pub const TRANSACTIONAL_FLAG: i16 = 0x10;
pub const CONTROL_FLAG: i16 = 0x20;
pub const DELETE_HORIZON_FLAG: i16 = 0x40;

/// Why bytes are not a valid v2 record batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// Fewer bytes than the header or the batch length field needs.
    #[error("batch truncated: need {needed} bytes, have {available}")]
    Truncated { needed: usize, available: usize },
    /// The batch length field is below the header size or absurd.
    #[error("invalid batch length {0}")]
    InvalidLength(i32),
    /// Magic 0 or 1 (legacy message sets), or an unknown magic.
    #[error("unsupported record batch magic {0}")]
    UnsupportedMagic(i8),
    /// The stored CRC-32C does not match the bytes.
    #[error("crc mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    /// Structurally valid bytes with inconsistent contents.
    #[error("invalid record batch: {0}")]
    InvalidRecord(&'static str),
}

impl BatchError {
    /// The Kafka error code a broker answers a produce with for this batch.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            BatchError::Truncated { .. } | BatchError::InvalidLength(_) => {
                ErrorCode::CorruptMessage
            }
            BatchError::CrcMismatch { .. } => ErrorCode::CorruptMessage,
            BatchError::UnsupportedMagic(_) => ErrorCode::UnsupportedVersion,
            BatchError::InvalidRecord(_) => ErrorCode::InvalidRecord,
        }
    }
}

/// Compression codec, from the low three bits of the attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// The codec's attribute bits.
    pub fn bits(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// Kafka's name (`compression.type`).
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "uncompressed",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }

    /// The codec Kafka names `name`.
    pub fn from_name(name: &str) -> Option<Compression> {
        [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ]
        .into_iter()
        .find(|c| c.name() == name)
    }
}

/// One whole, checked RecordBatch v2; cheap to clone (shares the bytes).
#[derive(Clone, PartialEq, Eq)]
pub struct RecordBatch {
    bytes: Bytes,
}

impl std::fmt::Debug for RecordBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordBatch")
            .field("base_offset", &self.base_offset())
            .field("last_offset", &self.last_offset())
            .field("size_bytes", &self.size_bytes())
            .finish()
    }
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("4-byte slice"))
}
fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("4-byte slice"))
}
fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("8-byte slice"))
}

/// The last offset of the whole batches at the start of `buf` (headers
/// only, nothing checked), or `None` when it starts with none.
pub fn last_offset_in(buf: &[u8]) -> Option<Offset> {
    let mut at = 0;
    let mut last = None;
    while let Ok(header) = BatchHeader::peek(&buf[at..]) {
        if at + header.size_bytes > buf.len() {
            break;
        }
        last = Some(header.last_offset());
        at += header.size_bytes;
    }
    last
}

/// Reads the header of the batch that starts `buf` and returns its whole size
/// in bytes, without checking the CRC. Needs only [`HEADER_BYTES`] of `buf`
/// (the rest of the batch may not have been read yet).
pub fn peek_batch_size(buf: &[u8]) -> Result<usize, BatchError> {
    if buf.len() < HEADER_BYTES {
        return Err(BatchError::Truncated {
            needed: HEADER_BYTES,
            available: buf.len(),
        });
    }
    let length = be_i32(buf, BATCH_LENGTH_AT);
    if length < MIN_BATCH_LENGTH {
        return Err(BatchError::InvalidLength(length));
    }
    let magic = buf[MAGIC_AT] as i8;
    if magic != 2 {
        return Err(BatchError::UnsupportedMagic(magic));
    }
    Ok(LOG_OVERHEAD_BYTES + length as usize)
}

/// The fields of a batch header that placement and indexing need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: Offset,
    pub last_offset_delta: i32,
    pub size_bytes: usize,
    /// The first record's timestamp (or KIP-534's delete horizon).
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub records_count: i32,
    /// -1 when the batch is not from an idempotent producer.
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    /// The epoch of the leader that appended the batch.
    pub partition_leader_epoch: i32,
    /// Compression, timestamp type, transactional and control bits.
    pub attributes: i16,
}

impl BatchHeader {
    /// Parses the header at the start of `buf` (no CRC check; see
    /// [`peek_batch_size`] for what is validated).
    pub fn peek(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        let size_bytes = peek_batch_size(buf)?;
        Ok(BatchHeader {
            base_offset: be_i64(buf, BASE_OFFSET_AT),
            last_offset_delta: be_i32(buf, LAST_OFFSET_DELTA_AT),
            size_bytes,
            base_timestamp: be_i64(buf, BASE_TIMESTAMP_AT),
            max_timestamp: be_i64(buf, MAX_TIMESTAMP_AT),
            records_count: be_i32(buf, RECORDS_COUNT_AT),
            producer_id: be_i64(buf, PRODUCER_ID_AT),
            producer_epoch: be_i16(buf, PRODUCER_EPOCH_AT),
            base_sequence: be_i32(buf, BASE_SEQUENCE_AT),
            partition_leader_epoch: be_i32(buf, LEADER_EPOCH_AT),
            attributes: be_i16(buf, ATTRIBUTES_AT),
        })
    }

    /// Written by a transactional producer (data or marker).
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_FLAG != 0
    }

    /// A control batch: a transaction's commit or abort marker.
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_FLAG != 0
    }

    /// Sequence of the batch's last record (wrapping after i32::MAX).
    pub fn last_sequence(&self) -> i32 {
        let last = self.base_sequence as i64 + self.last_offset_delta as i64;
        if last > i32::MAX as i64 {
            (last - i32::MAX as i64 - 1) as i32
        } else {
            last as i32
        }
    }

    /// Offset of the last record in the batch.
    pub fn last_offset(&self) -> Offset {
        self.base_offset + self.last_offset_delta as i64
    }
}

/// The header of the batch `buf` holds exactly, no more and no less.
fn whole_batch_header(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::peek(buf)?;
    if header.size_bytes != buf.len() {
        return Err(if header.size_bytes > buf.len() {
            BatchError::Truncated {
                needed: header.size_bytes,
                available: buf.len(),
            }
        } else {
            BatchError::InvalidRecord("trailing bytes after batch")
        });
    }
    Ok(header)
}

/// Checks that `buf` is exactly one batch with a sane header (length, magic,
/// record count), without the CRC.
pub fn check_batch_header(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = whole_batch_header(buf)?;
    if header.records_count <= 0 {
        return Err(BatchError::InvalidRecord("batch has no records"));
    }
    if header.last_offset_delta != header.records_count - 1 {
        return Err(BatchError::InvalidRecord(
            "last offset delta does not match record count",
        ));
    }
    Ok(header)
}

/// Checks that `buf` is exactly one batch as a log may hold it, CRC
/// included: like [`check_batch`], except that a compacted batch may hold
/// fewer records than its offset span (the cleaner removed some, keeping
/// the batch's offsets) or none at all (it keeps an emptied batch for its
/// producer's sequence). Produce requests are held to [`check_batch`].
pub fn check_log_batch(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = check_log_batch_header(buf)?;
    verify_crc(buf)?;
    Ok(header)
}

/// [`check_log_batch`] without the CRC.
pub fn check_log_batch_header(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = whole_batch_header(buf)?;
    if header.records_count < 0
        || header.last_offset_delta < 0
        || header.records_count - 1 > header.last_offset_delta
    {
        return Err(BatchError::InvalidRecord(
            "record count does not fit the batch's offsets",
        ));
    }
    // A stored batch's offsets, and the one after its last, are offsets.
    if header.base_offset < 0
        || header
            .base_offset
            .checked_add(i64::from(header.last_offset_delta) + 1)
            .is_none()
    {
        return Err(BatchError::InvalidRecord(
            "the batch's offsets are out of range",
        ));
    }
    Ok(header)
}

/// Checks that `buf` is exactly one valid batch, CRC included; no copy.
pub fn check_batch(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = check_batch_header(buf)?;
    verify_crc(buf)?;
    Ok(header)
}

fn verify_crc(buf: &[u8]) -> Result<(), BatchError> {
    let stored = be_u32(buf, CRC_AT);
    let computed = crc32c::crc32c(&buf[ATTRIBUTES_AT..]);
    if stored != computed {
        return Err(BatchError::CrcMismatch { stored, computed });
    }
    Ok(())
}

impl RecordBatch {
    /// Checks `bytes` is exactly one valid v2 batch (length, magic, CRC and
    /// header consistency) and wraps it without copying.
    pub fn parse(bytes: Bytes) -> Result<RecordBatch, BatchError> {
        check_batch(&bytes)?;
        Ok(RecordBatch { bytes })
    }

    /// Like [`RecordBatch::parse`] but skips the CRC; for bytes whose CRC was
    /// checked before (the log's own files after recovery, the batch cache).
    /// Accepts compacted batches, as the log holds them (see
    /// [`check_log_batch`]).
    pub fn parse_unchecked(bytes: Bytes) -> Result<RecordBatch, BatchError> {
        check_log_batch_header(&bytes)?;
        Ok(RecordBatch { bytes })
    }

    /// Recomputes CRC-32C over attributes..end and compares it to the header.
    pub fn verify_crc(&self) -> Result<(), BatchError> {
        verify_crc(&self.bytes)
    }

    /// The whole batch, as it is on the wire and on disk.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }
    /// Consumes the view, returning the batch bytes.
    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }
    pub fn size_bytes(&self) -> usize {
        self.bytes.len()
    }
    pub fn base_offset(&self) -> Offset {
        be_i64(&self.bytes, BASE_OFFSET_AT)
    }
    pub fn last_offset_delta(&self) -> i32 {
        be_i32(&self.bytes, LAST_OFFSET_DELTA_AT)
    }
    pub fn last_offset(&self) -> Offset {
        self.base_offset() + self.last_offset_delta() as i64
    }
    /// Offset the next batch in the log will start at.
    pub fn next_offset(&self) -> Offset {
        self.last_offset() + 1
    }
    pub fn partition_leader_epoch(&self) -> i32 {
        be_i32(&self.bytes, LEADER_EPOCH_AT)
    }
    pub fn crc(&self) -> u32 {
        be_u32(&self.bytes, CRC_AT)
    }
    pub fn attributes(&self) -> i16 {
        be_i16(&self.bytes, ATTRIBUTES_AT)
    }
    pub fn compression(&self) -> Compression {
        match self.attributes() & 0x07 {
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            _ => Compression::None,
        }
    }
    /// Timestamp type bit: true for LogAppendTime, false for CreateTime.
    pub fn is_log_append_time(&self) -> bool {
        self.attributes() & 0x08 != 0
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes() & 0x10 != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes() & 0x20 != 0
    }
    /// When the log cleaner may remove this batch's tombstones (KIP-534):
    /// set by the cleaner, carried in the base timestamp.
    pub fn delete_horizon_ms(&self) -> Option<i64> {
        (self.attributes() & DELETE_HORIZON_FLAG != 0).then(|| self.base_timestamp())
    }
    pub fn base_timestamp(&self) -> i64 {
        be_i64(&self.bytes, BASE_TIMESTAMP_AT)
    }
    pub fn max_timestamp(&self) -> i64 {
        be_i64(&self.bytes, MAX_TIMESTAMP_AT)
    }
    pub fn producer_id(&self) -> i64 {
        be_i64(&self.bytes, PRODUCER_ID_AT)
    }
    pub fn producer_epoch(&self) -> i16 {
        be_i16(&self.bytes, PRODUCER_EPOCH_AT)
    }
    pub fn base_sequence(&self) -> i32 {
        be_i32(&self.bytes, BASE_SEQUENCE_AT)
    }
    pub fn records_count(&self) -> i32 {
        be_i32(&self.bytes, RECORDS_COUNT_AT)
    }
    /// The record bytes after the header (compressed if the batch is).
    pub fn records_bytes(&self) -> Bytes {
        self.bytes.slice(HEADER_BYTES..)
    }
    /// The header fields placement and indexing need.
    pub fn header(&self) -> BatchHeader {
        BatchHeader {
            base_offset: self.base_offset(),
            last_offset_delta: self.last_offset_delta(),
            size_bytes: self.size_bytes(),
            base_timestamp: self.base_timestamp(),
            max_timestamp: self.max_timestamp(),
            records_count: self.records_count(),
            producer_id: self.producer_id(),
            producer_epoch: self.producer_epoch(),
            base_sequence: self.base_sequence(),
            partition_leader_epoch: self.partition_leader_epoch(),
            attributes: self.attributes(),
        }
    }
}

/// Stamps the batch that starts `buf` with the broker's time, in place, as
/// Kafka does for a `LogAppendTime` topic: the timestamp-type attribute bit
/// set, the max timestamp `now_ms`, the CRC computed again (both lie in
/// its range). Readers take every record's time from the max timestamp.
pub fn stamp_log_append_time(buf: &mut [u8], now_ms: i64) {
    let attributes = be_i16(buf, ATTRIBUTES_AT) | LOG_APPEND_TIME_FLAG;
    buf[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    buf[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&now_ms.to_be_bytes());
    let crc = crc32c::crc32c(&buf[ATTRIBUTES_AT..]);
    buf[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Writes base offset and partition leader epoch into the batch that starts
/// `buf`, in place. Neither field is covered by the CRC, so the batch stays
/// valid without re-hashing.
pub fn assign_in_place(buf: &mut [u8], base_offset: Offset, leader_epoch: i32) {
    assert!(
        buf.len() >= HEADER_BYTES,
        "assign_in_place needs a whole header"
    );
    buf[BASE_OFFSET_AT..BASE_OFFSET_AT + 8].copy_from_slice(&base_offset.to_be_bytes());
    buf[LEADER_EPOCH_AT..LEADER_EPOCH_AT + 4].copy_from_slice(&leader_epoch.to_be_bytes());
}

/// Walks a buffer holding whole batches back to back, checking each one.
///
/// Yields `Err` once, at the first bad batch, then stops.
pub struct BatchIter {
    rest: Bytes,
    check_crc: bool,
    failed: bool,
}

impl BatchIter {
    /// Iterates `bytes`, verifying every batch's CRC.
    pub fn new(bytes: Bytes) -> BatchIter {
        BatchIter {
            rest: bytes,
            check_crc: true,
            failed: false,
        }
    }
    /// Iterates bytes whose CRCs were verified before.
    pub fn new_unchecked(bytes: Bytes) -> BatchIter {
        BatchIter {
            rest: bytes,
            check_crc: false,
            failed: false,
        }
    }
    /// Bytes not yet consumed.
    pub fn remaining(&self) -> &Bytes {
        &self.rest
    }
}

impl Iterator for BatchIter {
    type Item = Result<RecordBatch, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let result = peek_batch_size(&self.rest).and_then(|size| {
            if size > self.rest.len() {
                return Err(BatchError::Truncated {
                    needed: size,
                    available: self.rest.len(),
                });
            }
            let bytes = self.rest.split_to(size);
            let batch = RecordBatch::parse_unchecked(bytes)?;
            if self.check_crc {
                batch.verify_crc()?;
            }
            Ok(batch)
        });
        if result.is_err() {
            self.failed = true;
        }
        Some(result)
    }
}

/// Checks that `buf` holds only whole, valid v2 batches (as a produce request
/// must) and returns how many batches and records it holds.
pub fn validate_batches(buf: &Bytes) -> Result<(usize, i64), BatchError> {
    let mut batches = 0usize;
    let mut records = 0i64;
    if buf.is_empty() {
        return Err(BatchError::InvalidRecord("no record batches"));
    }
    for batch in BatchIter::new(buf.clone()) {
        let batch = batch?;
        batches += 1;
        records += batch.records_count() as i64;
    }
    Ok((batches, records))
}

/// Builds uncompressed v2 batches; for tests, examples, benchmarks and the
/// CLI's produce. Not used on the broker's hot path.
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    base_timestamp: i64,
    max_timestamp: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    attributes: i16,
    records: BytesMut,
    count: i32,
}

impl BatchBuilder {
    /// A builder whose records are stamped `base_timestamp` (ms since epoch).
    pub fn new(base_timestamp: i64) -> BatchBuilder {
        BatchBuilder {
            base_timestamp,
            max_timestamp: base_timestamp,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            attributes: 0,
            records: BytesMut::new(),
            count: 0,
        }
    }

    /// Sets idempotent producer fields.
    pub fn producer(mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    /// Marks the batch as a transactional producer's.
    pub fn transactional(mut self) -> Self {
        self.attributes |= TRANSACTIONAL_FLAG;
        self
    }

    /// Marks the batch as a control batch (a transaction marker).
    pub fn control(mut self) -> Self {
        self.attributes |= CONTROL_FLAG;
        self
    }

    /// Appends a record stamped with the base timestamp.
    pub fn record(self, key: Option<&[u8]>, value: Option<&[u8]>) -> Self {
        let ts = self.base_timestamp;
        self.record_at(ts, key, value, &[])
    }

    /// Appends a record with its own timestamp and headers.
    pub fn record_at(
        mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&[u8], Option<&[u8]>)],
    ) -> Self {
        use crate::varint::{put_varint, put_varlong};
        let mut body =
            Vec::with_capacity(16 + key.map_or(0, |k| k.len()) + value.map_or(0, |v| v.len()));
        body.push(0u8); // record attributes
        put_varlong(&mut body, timestamp - self.base_timestamp);
        put_varint(&mut body, self.count);
        let put_opt = |body: &mut Vec<u8>, b: Option<&[u8]>| match b {
            Some(b) => {
                put_varint(body, b.len() as i32);
                body.extend_from_slice(b);
            }
            None => put_varint(body, -1),
        };
        put_opt(&mut body, key);
        put_opt(&mut body, value);
        put_varint(&mut body, headers.len() as i32);
        for (k, v) in headers {
            put_varint(&mut body, k.len() as i32);
            body.extend_from_slice(k);
            put_opt(&mut body, *v);
        }
        let mut len_prefix = Vec::with_capacity(5);
        put_varint(&mut len_prefix, body.len() as i32);
        self.records.extend_from_slice(&len_prefix);
        self.records.extend_from_slice(&body);
        self.max_timestamp = self.max_timestamp.max(timestamp);
        self.count += 1;
        self
    }

    /// Number of records added so far.
    pub fn len(&self) -> i32 {
        self.count
    }
    /// True when no record was added.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Encodes the batch with base offset 0 and a correct CRC.
    pub fn build(self) -> Bytes {
        assert!(self.count > 0, "a batch needs at least one record");
        let mut out = BytesMut::with_capacity(HEADER_BYTES + self.records.len());
        out.extend_from_slice(&0i64.to_be_bytes());
        let length = (HEADER_BYTES - LOG_OVERHEAD_BYTES + self.records.len()) as i32;
        out.extend_from_slice(&length.to_be_bytes());
        out.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
        out.extend_from_slice(&[2u8]); // magic
        out.extend_from_slice(&0u32.to_be_bytes()); // crc placeholder
        out.extend_from_slice(&self.attributes.to_be_bytes());
        out.extend_from_slice(&(self.count - 1).to_be_bytes());
        out.extend_from_slice(&self.base_timestamp.to_be_bytes());
        out.extend_from_slice(&self.max_timestamp.to_be_bytes());
        out.extend_from_slice(&self.producer_id.to_be_bytes());
        out.extend_from_slice(&self.producer_epoch.to_be_bytes());
        out.extend_from_slice(&self.base_sequence.to_be_bytes());
        out.extend_from_slice(&self.count.to_be_bytes());
        out.extend_from_slice(&self.records);
        let crc = crc32c::crc32c(&out[ATTRIBUTES_AT..]);
        out[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_offset_of_whole_batches_is_read_from_their_headers() {
        let mut buf = sample(3).to_vec(); // offsets 0..=2
        let mut second = sample(2).to_vec();
        second[BASE_OFFSET_AT..BASE_OFFSET_AT + 8].copy_from_slice(&10i64.to_be_bytes());
        buf.extend_from_slice(&second);
        assert_eq!(last_offset_in(&buf), Some(11));
        // A torn last batch does not count; nothing whole is None.
        assert_eq!(last_offset_in(&buf[..buf.len() - 1]), Some(2));
        assert_eq!(last_offset_in(&buf[..10]), None);
    }

    fn sample(n: usize) -> Bytes {
        let mut b = BatchBuilder::new(1_700_000_000_000);
        for i in 0..n {
            b = b.record(Some(format!("k{i}").as_bytes()), Some(b"value"));
        }
        b.build()
    }

    #[test]
    fn built_batch_parses_with_expected_fields() {
        let batch = RecordBatch::parse(sample(3)).expect("valid batch");
        assert_eq!(batch.records_count(), 3);
        assert_eq!(batch.last_offset_delta(), 2);
        assert_eq!(batch.base_offset(), 0);
        assert_eq!(batch.last_offset(), 2);
        assert_eq!(batch.compression(), Compression::None);
        assert_eq!(batch.producer_id(), -1);
    }

    #[test]
    fn assign_in_place_keeps_crc_valid() {
        let mut buf = BytesMut::from(&sample(2)[..]);
        assign_in_place(&mut buf, 1234, 7);
        let batch = RecordBatch::parse(buf.freeze()).expect("crc still valid");
        assert_eq!(batch.base_offset(), 1234);
        assert_eq!(batch.last_offset(), 1235);
        assert_eq!(batch.partition_leader_epoch(), 7);
    }

    #[test]
    fn flipped_payload_byte_is_crc_mismatch_and_corrupt_message() {
        let mut buf = BytesMut::from(&sample(1)[..]);
        let last = buf.len() - 1;
        buf[last] ^= 0x40;
        let err = RecordBatch::parse(buf.freeze()).unwrap_err();
        assert!(matches!(err, BatchError::CrcMismatch { .. }));
        assert_eq!(err.error_code(), ErrorCode::CorruptMessage);
    }

    #[test]
    fn legacy_magic_is_unsupported_version() {
        let mut buf = BytesMut::from(&sample(1)[..]);
        buf[MAGIC_AT] = 1;
        let err = RecordBatch::parse(buf.freeze()).unwrap_err();
        assert_eq!(err, BatchError::UnsupportedMagic(1));
        assert_eq!(err.error_code(), ErrorCode::UnsupportedVersion);
    }

    #[test]
    fn short_and_overlong_lengths_are_rejected() {
        let full = sample(1);
        assert!(matches!(
            RecordBatch::parse(full.slice(..40)),
            Err(BatchError::Truncated {
                needed: 61,
                available: 40
            })
        ));
        assert!(matches!(
            RecordBatch::parse(full.slice(..full.len() - 1)),
            Err(BatchError::Truncated { .. })
        ));
        let mut buf = BytesMut::from(&full[..]);
        buf[BATCH_LENGTH_AT..BATCH_LENGTH_AT + 4].copy_from_slice(&10i32.to_be_bytes());
        assert_eq!(
            RecordBatch::parse(buf.freeze()).unwrap_err(),
            BatchError::InvalidLength(10)
        );
    }

    #[test]
    fn a_stored_batch_whose_offsets_overflow_is_invalid() {
        let mut buf = BytesMut::from(&sample(3)[..]);
        assign_in_place(&mut buf, i64::MAX - 2, 0);
        assert!(matches!(
            check_log_batch(&buf),
            Err(BatchError::InvalidRecord(_))
        ));
        assign_in_place(&mut buf, -5, 0);
        assert!(check_log_batch(&buf).is_err());
        assign_in_place(&mut buf, i64::MAX - 4, 0);
        assert!(check_log_batch(&buf).is_ok());
    }

    #[test]
    fn mismatched_count_is_invalid_record() {
        let mut buf = BytesMut::from(&sample(2)[..]);
        buf[RECORDS_COUNT_AT..RECORDS_COUNT_AT + 4].copy_from_slice(&5i32.to_be_bytes());
        let err = RecordBatch::parse_unchecked(buf.freeze()).unwrap_err();
        assert_eq!(err.error_code(), ErrorCode::InvalidRecord);
    }

    #[test]
    fn iter_walks_several_batches_and_stops_at_first_bad() {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&sample(1));
        buf.extend_from_slice(&sample(4));
        let good_len = buf.len();
        buf.extend_from_slice(&sample(2)[..30]);
        let all = buf.freeze();
        let results: Vec<_> = BatchIter::new(all.clone()).collect();
        assert_eq!(results.len(), 3);
        assert_eq!(results[0].as_ref().map(|b| b.records_count()), Ok(1));
        assert_eq!(results[1].as_ref().map(|b| b.records_count()), Ok(4));
        assert!(results[2].is_err());
        assert_eq!(validate_batches(&all.slice(..good_len)), Ok((2, 5)));
        assert!(validate_batches(&all).is_err());
    }
}
