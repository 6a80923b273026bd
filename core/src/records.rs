//! Lazy iteration over the records inside an uncompressed v2 batch.
//!
//! Owns: decoding Kafka's varint record layout into [`Record`]s whose key,
//! value and header values are slices of the batch's `Bytes` (no copies).
//! Records are decoded one at a time, only when asked for; the broker's
//! produce and fetch paths never call this (they stay per-batch).
//!
//! Invariants: a decoder never reads past its record's stated length nor past
//! the batch; every malformed record is an error, never a panic.

use bytes::Bytes;

use crate::batch::{Compression, RecordBatch};
use crate::types::Offset;
use crate::varint::{get_varint, get_varlong, VarintError};

/// Why a record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("record varint: {0}")]
    Varint(#[from] VarintError),
    #[error("record field runs past its record")]
    Truncated,
    #[error("negative length {0} for a record field")]
    NegativeLength(i32),
    #[error("record length does not match its fields")]
    LengthMismatch,
    #[error("negative offset delta {0} for a record")]
    NegativeOffsetDelta(i32),
    #[error("batch is compressed with {0:?}; decompress before iterating")]
    Compressed(Compression),
    #[error("batch states {stated} records but holds {found}")]
    CountMismatch { stated: i32, found: i32 },
}

/// One record header: a key and an optional value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordHeader {
    pub key: Bytes,
    pub value: Option<Bytes>,
}

/// One record, with its absolute offset and timestamp resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub offset: Offset,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<RecordHeader>,
}

/// Iterates the records of one uncompressed batch.
pub struct RecordIter {
    rest: Bytes,
    base_offset: Offset,
    base_timestamp: i64,
    /// LogAppendTime batches carry the broker's time in max_timestamp.
    log_append_time: Option<i64>,
    remaining: i32,
    stated: i32,
    failed: bool,
}

impl RecordIter {
    /// Iterates `batch`; a compressed batch is an error (decompression is the
    /// caller's step, since it allocates).
    pub fn new(batch: &RecordBatch) -> Result<RecordIter, RecordError> {
        match batch.compression() {
            Compression::None => Ok(Self::over(batch, batch.records_bytes())),
            other => Err(RecordError::Compressed(other)),
        }
    }

    /// Iterates `records`, the (already decompressed) record bytes of `batch`.
    pub fn over(batch: &RecordBatch, records: Bytes) -> RecordIter {
        RecordIter {
            rest: records,
            base_offset: batch.base_offset(),
            base_timestamp: batch.base_timestamp(),
            log_append_time: batch.is_log_append_time().then(|| batch.max_timestamp()),
            remaining: batch.records_count(),
            stated: batch.records_count(),
            failed: false,
        }
    }

    fn decode_one(&mut self) -> Result<Record, RecordError> {
        let (length, n) = get_varint(&self.rest)?;
        if length < 0 {
            return Err(RecordError::NegativeLength(length));
        }
        let length = length as usize;
        if self.rest.len() < n + length {
            return Err(RecordError::Truncated);
        }
        let body = self.rest.slice(n..n + length);
        let mut cur = Cursor { buf: body, at: 0 };
        let _attributes = cur.byte()?;
        let timestamp_delta = cur.varlong()?;
        let offset_delta = cur.varint()?;
        if offset_delta < 0 {
            // A record before its batch's base offset: corrupt.
            return Err(RecordError::NegativeOffsetDelta(offset_delta));
        }
        let key = cur.optional_bytes()?;
        let value = cur.optional_bytes()?;
        let header_count = cur.varint()?;
        if header_count < 0 {
            return Err(RecordError::NegativeLength(header_count));
        }
        // Each header takes at least 2 bytes, so a count larger than what is
        // left is malformed; checking first bounds the allocation.
        if header_count as usize > cur.left() / 2 {
            return Err(RecordError::Truncated);
        }
        let mut headers = Vec::with_capacity(header_count as usize);
        for _ in 0..header_count {
            let key = cur
                .optional_bytes()?
                .ok_or(RecordError::NegativeLength(-1))?;
            let value = cur.optional_bytes()?;
            headers.push(RecordHeader { key, value });
        }
        if cur.left() != 0 {
            return Err(RecordError::LengthMismatch);
        }
        self.rest = self.rest.slice(n + length..);
        Ok(Record {
            offset: self.base_offset.wrapping_add(offset_delta as i64),
            timestamp: self
                .log_append_time
                .unwrap_or(self.base_timestamp.wrapping_add(timestamp_delta)),
            key,
            value,
            headers,
        })
    }
}

impl Iterator for RecordIter {
    type Item = Result<Record, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if self.remaining == 0 {
            if !self.rest.is_empty() {
                self.failed = true;
                return Some(Err(RecordError::LengthMismatch));
            }
            return None;
        }
        if self.rest.is_empty() {
            self.failed = true;
            return Some(Err(RecordError::CountMismatch {
                stated: self.stated,
                found: self.stated - self.remaining,
            }));
        }
        let result = self.decode_one();
        match result {
            Ok(_) => self.remaining -= 1,
            Err(_) => self.failed = true,
        }
        Some(result)
    }
}

struct Cursor {
    buf: Bytes,
    at: usize,
}

impl Cursor {
    fn left(&self) -> usize {
        self.buf.len() - self.at
    }
    fn byte(&mut self) -> Result<u8, RecordError> {
        let b = *self.buf.get(self.at).ok_or(RecordError::Truncated)?;
        self.at += 1;
        Ok(b)
    }
    fn varint(&mut self) -> Result<i32, RecordError> {
        let (v, n) = get_varint(&self.buf[self.at..])?;
        self.at += n;
        Ok(v)
    }
    fn varlong(&mut self) -> Result<i64, RecordError> {
        let (v, n) = get_varlong(&self.buf[self.at..])?;
        self.at += n;
        Ok(v)
    }
    fn optional_bytes(&mut self) -> Result<Option<Bytes>, RecordError> {
        let len = self.varint()?;
        if len < 0 {
            return if len == -1 {
                Ok(None)
            } else {
                Err(RecordError::NegativeLength(len))
            };
        }
        let len = len as usize;
        if self.left() < len {
            return Err(RecordError::Truncated);
        }
        let out = self.buf.slice(self.at..self.at + len);
        self.at += len;
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{assign_in_place, BatchBuilder};
    use bytes::BytesMut;
    use proptest::prelude::*;

    #[test]
    fn records_come_back_with_offsets_timestamps_and_headers() {
        let bytes = BatchBuilder::new(1000)
            .record_at(1000, Some(b"k0"), Some(b"v0"), &[])
            .record_at(
                1005,
                None,
                Some(b"v1"),
                &[(b"h", Some(b"hv")), (b"n", None)],
            )
            .record_at(1003, Some(b"k2"), None, &[])
            .build();
        let mut buf = BytesMut::from(&bytes[..]);
        assign_in_place(&mut buf, 40, 0);
        let batch = RecordBatch::parse(buf.freeze()).expect("valid");
        assert_eq!(batch.max_timestamp(), 1005);
        let records: Vec<Record> = RecordIter::new(&batch)
            .expect("uncompressed")
            .collect::<Result<_, _>>()
            .expect("ok");
        assert_eq!(records.len(), 3);
        assert_eq!(records[0].offset, 40);
        assert_eq!(records[0].key.as_deref(), Some(&b"k0"[..]));
        assert_eq!(records[1].offset, 41);
        assert_eq!(records[1].timestamp, 1005);
        assert_eq!(records[1].key, None);
        assert_eq!(records[1].headers.len(), 2);
        assert_eq!(records[1].headers[0].value.as_deref(), Some(&b"hv"[..]));
        assert_eq!(records[1].headers[1].value, None);
        assert_eq!(records[2].value, None);
        assert_eq!(records[2].timestamp, 1003);
    }

    proptest! {
        #[test]
        fn built_records_round_trip(
            values in proptest::collection::vec(
                (proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20)),
                 proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
                 0i64..100_000),
                1..20)
        ) {
            let mut b = BatchBuilder::new(5_000);
            for (k, v, dt) in &values {
                b = b.record_at(5_000 + dt, k.as_deref(), v.as_deref(), &[]);
            }
            let batch = RecordBatch::parse(b.build()).expect("valid");
            let records: Vec<Record> = RecordIter::new(&batch).expect("uncompressed")
                .collect::<Result<_, _>>().expect("decodes");
            prop_assert_eq!(records.len(), values.len());
            for (i, (r, (k, v, dt))) in records.iter().zip(&values).enumerate() {
                prop_assert_eq!(r.offset, i as i64);
                prop_assert_eq!(r.timestamp, 5_000 + dt);
                prop_assert_eq!(r.key.as_deref(), k.as_deref());
                prop_assert_eq!(r.value.as_deref(), v.as_deref());
            }
        }

        #[test]
        fn garbage_record_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let batch = RecordBatch::parse(BatchBuilder::new(0).record(None, Some(b"x")).build())
                .expect("valid");
            for r in RecordIter::over(&batch, Bytes::from(bytes)) {
                let _ = r;
            }
        }
    }
}
