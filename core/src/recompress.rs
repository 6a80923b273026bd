//! Broker-side recompression (a topic's `compression.type` other than
//! `producer`): a batch's record bytes decompressed and compressed again
//! with the topic's codec, every other field as it was.
//!
//! Owns: the rewritten batch. Its records are the same bytes in the same
//! order (only their compressed form changes), so offsets, timestamps,
//! producer fields and sequences keep their meaning; the attributes carry
//! the new codec and the CRC is computed again. Pure: no I/O.

use bytes::{BufMut, Bytes, BytesMut};

use crate::batch::{
    check_batch, Compression, RecordBatch, COMPRESSION_MASK, HEADER_BYTES, LOG_OVERHEAD_BYTES,
};
use crate::compaction::CompactionError;
use crate::compression::{compress, decompress};

/// `batch` with its records in `codec`; `None` when it already is.
/// Decompression stops at `max_uncompressed` bytes.
pub fn recompress_batch(
    batch: &RecordBatch,
    codec: Compression,
    max_uncompressed: usize,
) -> Result<Option<Bytes>, CompactionError> {
    let from = batch.compression();
    if from == codec {
        return Ok(None);
    }
    let records = batch.records_bytes();
    let plain = match from {
        Compression::None => records,
        c => decompress(c, &records, max_uncompressed)?,
    };
    let body = match codec {
        Compression::None => plain,
        c => compress(c, &plain, None)?,
    };
    let bytes = batch.bytes();
    let attributes = (batch.attributes() & !COMPRESSION_MASK) | codec.bits();
    let mut out = BytesMut::with_capacity(HEADER_BYTES + body.len());
    out.extend_from_slice(&bytes[..8]); // base offset
    out.put_i32((HEADER_BYTES - LOG_OVERHEAD_BYTES + body.len()) as i32);
    out.extend_from_slice(&bytes[12..21]); // leader epoch, magic, crc (below)
    out.put_i16(attributes);
    out.extend_from_slice(&bytes[23..HEADER_BYTES]);
    out.extend_from_slice(&body);
    let crc = crc32c::crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    let out = out.freeze();
    check_batch(&out)?;
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::BatchBuilder;
    use crate::compaction::read_records;

    #[test]
    fn every_codec_round_trips_the_same_records() {
        let plain = RecordBatch::parse(
            BatchBuilder::new(1_000)
                .producer(3, 0, 10)
                .record(Some(b"a"), Some(&b"x".repeat(500)))
                .record(Some(b"b"), None)
                .build(),
        )
        .expect("valid");
        let codecs = [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
            Compression::None,
        ];
        let mut current = plain.clone();
        for codec in codecs {
            let next = recompress_batch(&current, codec, 1 << 20)
                .expect("recompress")
                .expect("a different codec");
            let next = RecordBatch::parse(next).expect("valid CRC");
            assert_eq!(next.compression(), codec);
            assert_eq!(
                next.header().last_sequence(),
                plain.header().last_sequence()
            );
            let keys: Vec<_> = read_records(&next, 1 << 20)
                .expect("records")
                .into_iter()
                .map(|r| (r.offset, r.key, r.is_tombstone))
                .collect();
            assert_eq!(keys.len(), 2);
            assert!(keys[1].2, "the tombstone stays one");
            current = next;
        }
        assert_eq!(
            current.bytes(),
            plain.bytes(),
            "back to the same bytes uncompressed"
        );
        assert!(recompress_batch(&plain, Compression::None, 1 << 20)
            .expect("no-op")
            .is_none());
    }
}
