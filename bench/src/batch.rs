//! Record batches the generator sends, built without an allocation per
//! message.
//!
//! Owns: [`BatchWriter`], which appends records (key, value) straight into
//! one reused buffer and seals them into a Kafka RecordBatch v2
//! (optionally compressed); and the value layout the generator uses: the
//! first 8 bytes of a value carry its intended send time in microseconds
//! since the Unix epoch, so a consumer measures end-to-end latency per
//! message ([`stamp`], [`stamped_at_us`]).
//!
//! Invariants: a sealed batch has a valid CRC-32C and offset deltas
//! 0..count-1; the writer's buffers keep their capacity across batches.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::compression::Compressor;

/// Bytes of a batch header (Kafka's RecordBatch v2).
const HEADER_BYTES: usize = 61;
/// Bytes before the batch length field's end (base offset + length).
const LOG_OVERHEAD_BYTES: usize = 12;
/// Where the CRC-covered part starts (the attributes field).
const CRC_FROM: usize = 21;

/// Record batch compression, as Kafka names the codecs.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    fn attribute(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }
}

/// Builds one batch at a time into reused buffers.
pub struct BatchWriter {
    records: BytesMut,
    count: i32,
    base_timestamp_ms: i64,
    max_timestamp_ms: i64,
    compression: Compression,
    key_buf: [u8; 24],
}

fn varint_len(value: i64) -> usize {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

fn put_varint(out: &mut BytesMut, value: i64) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        out.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    out.put_u8(v as u8);
}

/// Writes `sent_at_us` into the head of `value` (when it has room).
pub fn stamp(value: &mut [u8], sent_at_us: u64) {
    if value.len() >= 8 {
        value[..8].copy_from_slice(&sent_at_us.to_be_bytes());
    }
}

/// The send time a generator value carries, if it has one.
pub fn stamped_at_us(value: &[u8]) -> Option<u64> {
    let head: [u8; 8] = value.get(..8)?.try_into().ok()?;
    Some(u64::from_be_bytes(head))
}

impl BatchWriter {
    pub fn new(compression: Compression, capacity: usize) -> BatchWriter {
        BatchWriter {
            records: BytesMut::with_capacity(capacity),
            count: 0,
            base_timestamp_ms: 0,
            max_timestamp_ms: 0,
            compression,
            key_buf: [0; 24],
        }
    }

    /// Records added since the last seal.
    pub fn count(&self) -> i32 {
        self.count
    }

    /// Bytes of records added since the last seal (before compression).
    pub fn size_bytes(&self) -> usize {
        self.records.len()
    }

    /// Appends one record. `key` is `key-<n>` when given (formatted into a
    /// fixed buffer, no allocation).
    pub fn push(&mut self, timestamp_ms: i64, key: Option<u64>, value: &[u8]) {
        if self.count == 0 {
            self.base_timestamp_ms = timestamp_ms;
            self.max_timestamp_ms = timestamp_ms;
        }
        self.max_timestamp_ms = self.max_timestamp_ms.max(timestamp_ms);
        let key_len = match key {
            Some(n) => format_key(&mut self.key_buf, n),
            None => 0,
        };
        let ts_delta = timestamp_ms - self.base_timestamp_ms;
        let offset_delta = i64::from(self.count);
        let key_field = if key.is_some() {
            varint_len(key_len as i64) + key_len
        } else {
            1
        };
        let body = 1
            + varint_len(ts_delta)
            + varint_len(offset_delta)
            + key_field
            + varint_len(value.len() as i64)
            + value.len()
            + 1;
        let r = &mut self.records;
        put_varint(r, body as i64);
        r.put_u8(0); // record attributes
        put_varint(r, ts_delta);
        put_varint(r, offset_delta);
        if key.is_some() {
            put_varint(r, key_len as i64);
            r.put_slice(&self.key_buf[..key_len]);
        } else {
            put_varint(r, -1);
        }
        put_varint(r, value.len() as i64);
        r.put_slice(value);
        put_varint(r, 0); // no headers
        self.count += 1;
    }

    /// Seals the records added so far into one batch and starts the next.
    pub fn seal(&mut self) -> anyhow::Result<Bytes> {
        anyhow::ensure!(self.count > 0, "a batch needs at least one record");
        let mut out = BytesMut::with_capacity(HEADER_BYTES + self.records.len());
        out.put_bytes(0, HEADER_BYTES);
        match self.compression {
            Compression::None => out.put_slice(&self.records),
            Compression::Gzip => {
                compress::<kafka_protocol::compression::Gzip>(&mut out, &self.records)?
            }
            Compression::Snappy => {
                compress::<kafka_protocol::compression::Snappy>(&mut out, &self.records)?
            }
            Compression::Lz4 => {
                compress::<kafka_protocol::compression::Lz4>(&mut out, &self.records)?
            }
            Compression::Zstd => {
                compress::<kafka_protocol::compression::Zstd>(&mut out, &self.records)?
            }
        }
        let batch_length = (out.len() - LOG_OVERHEAD_BYTES) as i32;
        let h = &mut out[..HEADER_BYTES];
        h[0..8].copy_from_slice(&0i64.to_be_bytes());
        h[8..12].copy_from_slice(&batch_length.to_be_bytes());
        h[12..16].copy_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
        h[16] = 2; // magic
        h[21..23].copy_from_slice(&self.compression.attribute().to_be_bytes());
        h[23..27].copy_from_slice(&(self.count - 1).to_be_bytes());
        h[27..35].copy_from_slice(&self.base_timestamp_ms.to_be_bytes());
        h[35..43].copy_from_slice(&self.max_timestamp_ms.to_be_bytes());
        h[43..51].copy_from_slice(&(-1i64).to_be_bytes()); // producer id
        h[51..53].copy_from_slice(&(-1i16).to_be_bytes()); // producer epoch
        h[53..57].copy_from_slice(&(-1i32).to_be_bytes()); // base sequence
        h[57..61].copy_from_slice(&self.count.to_be_bytes());
        let crc = crc32c::crc32c(&out[CRC_FROM..]);
        out[17..21].copy_from_slice(&crc.to_be_bytes());
        self.records.clear();
        self.count = 0;
        Ok(out.freeze())
    }
}

fn compress<C: Compressor<BytesMut, BufMut = BytesMut>>(
    out: &mut BytesMut,
    records: &[u8],
) -> anyhow::Result<()> {
    C::compress(out, |tmp: &mut BytesMut| {
        tmp.extend_from_slice(records);
        Ok(())
    })
}

/// Writes `key-<n>` into `buf`; returns its length.
fn format_key(buf: &mut [u8; 24], mut n: u64) -> usize {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let len = 4 + digits.len() - i;
    buf[..4].copy_from_slice(b"key-");
    buf[4..len].copy_from_slice(&digits[i..]);
    len
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::batch::RecordBatch;
    use sluice_core::records::RecordIter;

    #[test]
    fn sealed_batches_are_valid_and_carry_the_records() {
        let mut w = BatchWriter::new(Compression::None, 1024);
        let mut value = vec![7u8; 100];
        stamp(&mut value, 1_234_567);
        w.push(1_000, Some(42), &value);
        w.push(1_005, None, b"short");
        let batch = RecordBatch::parse(w.seal().expect("two records")).expect("valid batch");
        assert_eq!(batch.records_count(), 2);
        assert_eq!(batch.max_timestamp(), 1_005);
        let records: Vec<_> = RecordIter::new(&batch)
            .expect("uncompressed")
            .collect::<Result<_, _>>()
            .expect("records decode");
        assert_eq!(records[0].key.as_deref(), Some(&b"key-42"[..]));
        assert_eq!(
            stamped_at_us(records[0].value.as_deref().expect("value")),
            Some(1_234_567)
        );
        assert_eq!(records[1].key, None);
        assert_eq!(records[1].timestamp, 1_005);
        assert_eq!(w.count(), 0, "sealing starts the next batch");
    }

    #[test]
    fn compressed_batches_have_a_valid_crc_and_codec() {
        for c in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let mut w = BatchWriter::new(c, 1024);
            for i in 0..50 {
                w.push(1, Some(i), &[b'x'; 200]);
            }
            let batch = RecordBatch::parse(w.seal().expect("records")).expect("valid crc");
            assert_eq!(batch.records_count(), 50);
            assert!(batch.size_bytes() < 50 * 200, "{c:?} compressed");
        }
    }

    #[test]
    fn keys_format_like_the_tests_messages() {
        let mut buf = [0u8; 24];
        for (n, text) in [
            (0u64, "key-0"),
            (7, "key-7"),
            (1234, "key-1234"),
            (u64::MAX, "key-18446744073709551615"),
        ] {
            let len = format_key(&mut buf, n);
            assert_eq!(&buf[..len], text.as_bytes());
        }
    }
}
