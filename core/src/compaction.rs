//! The record-level half of log compaction: reading a stored batch's
//! records with what the cleaner decides on (offset, key, tombstone), and
//! writing the batch again with only the records it keeps.
//!
//! Owns: Kafka's rules for a rewritten batch (as its cleaner writes them):
//! the batch keeps its base offset, last offset delta, producer id, epoch
//! and base sequence, leader epoch and codec, so offsets and idempotent
//! sequences mean what they meant; the records kept are copied as they were
//! (their offset deltas stay right because the base offset stays); a batch
//! whose tombstones start their `delete.retention.ms` gets KIP-534's delete
//! horizon in its base timestamp (attribute bit 0x40), with each record's
//! timestamp delta rewritten so every record keeps its timestamp; a batch
//! emptied of records but kept for its producer's sequence becomes a bare
//! header. Pure: no I/O; the policy (which record to keep) is the caller's.
//!
//! Invariants: a rewritten batch passes [`check_log_batch`]; the records it
//! holds decode to exactly the kept records' offsets, keys, values,
//! headers and timestamps.

use bytes::{BufMut, Bytes, BytesMut};

use crate::batch::{
    check_log_batch, BatchError, Compression, RecordBatch, COMPRESSION_MASK, DELETE_HORIZON_FLAG,
    HEADER_BYTES, LOG_OVERHEAD_BYTES,
};
use crate::compression::{compress, decompress, CompressionError};
use crate::records::RecordError;
use crate::types::Offset;
use crate::varint::{get_varint, get_varlong, put_varint, put_varlong};

/// Why a batch could not be read or rewritten.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompactionError {
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(transparent)]
    Compression(#[from] CompressionError),
    #[error(transparent)]
    Batch(#[from] BatchError),
}

/// One record of a stored batch, as the cleaner sees it.
#[derive(Debug, Clone)]
pub struct CleanRecord {
    pub offset: Offset,
    pub timestamp: i64,
    /// `None` for a record without a key (not allowed in compacted topics).
    pub key: Option<Bytes>,
    /// A null value: a delete marker for its key.
    pub is_tombstone: bool,
    /// The record body after its timestamp delta (offset delta, key,
    /// value, headers), copied as it is into a rewritten batch.
    after_timestamp: Bytes,
    attributes: u8,
}

/// The records of `batch`, decompressed if it is; at most
/// `max_uncompressed` bytes of them.
pub fn read_records(
    batch: &RecordBatch,
    max_uncompressed: usize,
) -> Result<Vec<CleanRecord>, CompactionError> {
    let body = match batch.compression() {
        Compression::None => batch.records_bytes(),
        codec => decompress(codec, &batch.records_bytes(), max_uncompressed)?,
    };
    let base_offset = batch.base_offset();
    let base_timestamp = batch.base_timestamp();
    let log_append_time = batch.is_log_append_time().then(|| batch.max_timestamp());
    let count = batch.records_count().max(0) as usize;
    let mut out = Vec::with_capacity(count.min(body.len() / 7 + 1));
    let mut at = 0usize;
    for _ in 0..count {
        let (length, n) = get_varint(&body[at..]).map_err(RecordError::from)?;
        if length < 0 {
            return Err(RecordError::NegativeLength(length).into());
        }
        let start = at + n;
        let end = start + length as usize;
        if end > body.len() {
            return Err(RecordError::Truncated.into());
        }
        let record = body.slice(start..end);
        let attributes = *record.first().ok_or(RecordError::Truncated)?;
        let (timestamp_delta, t) = get_varlong(&record[1..]).map_err(RecordError::from)?;
        let after_timestamp = record.slice(1 + t..);
        let mut cur = 0usize;
        let (offset_delta, o) = get_varint(&after_timestamp).map_err(RecordError::from)?;
        cur += o;
        let key = optional_bytes(&after_timestamp, &mut cur)?;
        let (value_len, _) = get_varint(&after_timestamp[cur..]).map_err(RecordError::from)?;
        out.push(CleanRecord {
            offset: base_offset.wrapping_add(offset_delta as i64),
            timestamp: log_append_time.unwrap_or(base_timestamp.wrapping_add(timestamp_delta)),
            key,
            is_tombstone: value_len < 0,
            after_timestamp,
            attributes,
        });
        at = end;
    }
    if at != body.len() {
        return Err(RecordError::LengthMismatch.into());
    }
    Ok(out)
}

fn optional_bytes(buf: &Bytes, at: &mut usize) -> Result<Option<Bytes>, RecordError> {
    let (len, n) = get_varint(&buf[*at..])?;
    *at += n;
    if len < 0 {
        return if len == -1 {
            Ok(None)
        } else {
            Err(RecordError::NegativeLength(len))
        };
    }
    let end = *at + len as usize;
    if end > buf.len() {
        return Err(RecordError::Truncated);
    }
    let out = buf.slice(*at..end);
    *at = end;
    Ok(Some(out))
}

/// `batch` again with only `kept` (records of it, in offset order), and
/// with `delete_horizon_ms` as its delete horizon when given. With no
/// record kept, the bare header Kafka keeps for a producer's last batch.
pub fn rebuild_batch(
    batch: &RecordBatch,
    kept: &[&CleanRecord],
    delete_horizon_ms: Option<i64>,
) -> Result<Bytes, CompactionError> {
    let horizon = delete_horizon_ms.or(batch.delete_horizon_ms());
    let mut attributes = batch.attributes();
    let base_timestamp = match horizon {
        Some(h) => {
            attributes |= DELETE_HORIZON_FLAG;
            h
        }
        None => batch.base_timestamp(),
    };
    let codec = batch.compression();
    let body = if kept.is_empty() {
        // Kafka writes an emptied batch uncompressed.
        attributes &= !COMPRESSION_MASK;
        Bytes::new()
    } else {
        let mut plain = Vec::new();
        let mut record = Vec::new();
        for r in kept {
            record.clear();
            record.push(r.attributes);
            put_varlong(&mut record, r.timestamp.wrapping_sub(base_timestamp));
            record.extend_from_slice(&r.after_timestamp);
            put_varint(&mut plain, record.len() as i32);
            plain.extend_from_slice(&record);
        }
        match codec {
            Compression::None => plain.into(),
            codec => compress(codec, &plain, Some(&batch.records_bytes()))?,
        }
    };
    let max_timestamp = if batch.is_log_append_time() || kept.is_empty() {
        batch.max_timestamp()
    } else {
        kept.iter().map(|r| r.timestamp).max().unwrap_or(-1)
    };
    let header = batch.header();
    let mut out = BytesMut::with_capacity(HEADER_BYTES + body.len());
    out.put_i64(header.base_offset);
    out.put_i32((HEADER_BYTES - LOG_OVERHEAD_BYTES + body.len()) as i32);
    out.put_i32(header.partition_leader_epoch);
    out.put_i8(2);
    out.put_u32(0); // crc, below
    out.put_i16(attributes);
    out.put_i32(header.last_offset_delta);
    out.put_i64(base_timestamp);
    out.put_i64(max_timestamp);
    out.put_i64(header.producer_id);
    out.put_i16(header.producer_epoch);
    out.put_i32(header.base_sequence);
    out.put_i32(kept.len() as i32);
    out.extend_from_slice(&body);
    let crc = crc32c::crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    let out = out.freeze();
    check_log_batch(&out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{assign_in_place, BatchBuilder};
    use crate::records::RecordIter;

    fn stored(bytes: Bytes, base_offset: Offset) -> RecordBatch {
        let mut b = BytesMut::from(&bytes[..]);
        assign_in_place(&mut b, base_offset, 3);
        RecordBatch::parse(b.freeze()).expect("valid")
    }

    fn sample() -> RecordBatch {
        let bytes = BatchBuilder::new(1_000)
            .producer(7, 1, 40)
            .record_at(1_000, Some(b"a"), Some(b"1"), &[(b"h", Some(b"x"))])
            .record_at(1_004, Some(b"b"), None, &[])
            .record_at(1_002, Some(b"a"), Some(b"2"), &[])
            .record_at(1_009, Some(b"c"), Some(b"3"), &[])
            .build();
        stored(bytes, 100)
    }

    #[test]
    fn records_are_read_with_offsets_keys_and_tombstones() {
        let records = read_records(&sample(), 1 << 20).expect("read");
        let seen: Vec<_> = records
            .iter()
            .map(|r| (r.offset, r.key.clone(), r.is_tombstone, r.timestamp))
            .collect();
        assert_eq!(
            seen,
            vec![
                (100, Some(Bytes::from_static(b"a")), false, 1_000),
                (101, Some(Bytes::from_static(b"b")), true, 1_004),
                (102, Some(Bytes::from_static(b"a")), false, 1_002),
                (103, Some(Bytes::from_static(b"c")), false, 1_009),
            ]
        );
    }

    #[test]
    fn a_rewritten_batch_keeps_offsets_sequences_and_the_kept_records() {
        let batch = sample();
        let records = read_records(&batch, 1 << 20).expect("read");
        let kept = [&records[1], &records[2]];
        let out =
            RecordBatch::parse_unchecked(rebuild_batch(&batch, &kept, None).expect("rebuild"))
                .expect("valid");
        assert_eq!(out.base_offset(), 100);
        assert_eq!(out.last_offset(), 103);
        assert_eq!(out.records_count(), 2);
        assert_eq!(
            (out.producer_id(), out.producer_epoch(), out.base_sequence()),
            (7, 1, 40)
        );
        assert_eq!(out.partition_leader_epoch(), 3);
        assert_eq!(out.max_timestamp(), 1_004);
        let back: Vec<_> = RecordIter::new(&out)
            .expect("uncompressed")
            .map(|r| r.expect("record"))
            .map(|r| (r.offset, r.key, r.value, r.timestamp))
            .collect();
        assert_eq!(
            back,
            vec![
                (101, Some(Bytes::from_static(b"b")), None, 1_004),
                (
                    102,
                    Some(Bytes::from_static(b"a")),
                    Some(Bytes::from_static(b"2")),
                    1_002
                ),
            ]
        );
    }

    #[test]
    fn a_delete_horizon_moves_the_base_timestamp_but_no_record_timestamp() {
        let batch = sample();
        let records = read_records(&batch, 1 << 20).expect("read");
        let kept: Vec<_> = records.iter().collect();
        let out = RecordBatch::parse_unchecked(
            rebuild_batch(&batch, &kept, Some(90_000)).expect("rebuild"),
        )
        .expect("valid");
        assert_eq!(out.delete_horizon_ms(), Some(90_000));
        let again = read_records(&out, 1 << 20).expect("read");
        let times: Vec<_> = again.iter().map(|r| r.timestamp).collect();
        assert_eq!(times, vec![1_000, 1_004, 1_002, 1_009]);
    }

    #[test]
    fn an_emptied_batch_is_a_bare_header_with_the_same_offsets() {
        let batch = sample();
        let out = RecordBatch::parse_unchecked(rebuild_batch(&batch, &[], None).expect("rebuild"))
            .expect("valid");
        assert_eq!(out.size_bytes(), HEADER_BYTES);
        assert_eq!((out.base_offset(), out.last_offset()), (100, 103));
        assert_eq!(out.records_count(), 0);
        assert_eq!(out.header().last_sequence(), 43);
    }

    #[test]
    fn compressed_batches_are_rewritten_with_their_codec() {
        for (codec, bits) in [
            (Compression::Gzip, 1i16),
            (Compression::Snappy, 2),
            (Compression::Lz4, 3),
            (Compression::Zstd, 4),
        ] {
            let plain = sample();
            let body = compress(codec, &plain.records_bytes(), None).expect("compress");
            let mut b = BytesMut::from(&plain.bytes()[..HEADER_BYTES]);
            b.extend_from_slice(&body);
            let len = (b.len() - LOG_OVERHEAD_BYTES) as i32;
            b[8..12].copy_from_slice(&len.to_be_bytes());
            let attrs = plain.attributes() | bits;
            b[21..23].copy_from_slice(&attrs.to_be_bytes());
            let crc = crc32c::crc32c(&b[21..]);
            b[17..21].copy_from_slice(&crc.to_be_bytes());
            let batch = RecordBatch::parse(b.freeze()).expect("valid compressed batch");
            let records = read_records(&batch, 1 << 20).expect("read");
            assert_eq!(records.len(), 4, "{codec:?}");
            let out = RecordBatch::parse_unchecked(
                rebuild_batch(&batch, &[&records[3]], None).expect("rebuild"),
            )
            .expect("valid");
            assert_eq!(out.compression(), codec);
            let again = read_records(&out, 1 << 20).expect("read");
            assert_eq!(again.len(), 1);
            assert_eq!(again[0].offset, 103);
            assert_eq!(again[0].key.as_deref(), Some(&b"c"[..]));
        }
    }

    #[test]
    fn bad_record_bytes_are_errors() {
        let batch = sample();
        let mut b = BytesMut::from(&batch.bytes()[..]);
        let n = b.len();
        b[HEADER_BYTES] = 0x7f; // first record claims a huge length
        b.truncate(n);
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        let bad = RecordBatch::parse(b.freeze()).expect("header still valid");
        assert!(read_records(&bad, 1 << 20).is_err());
    }
}
