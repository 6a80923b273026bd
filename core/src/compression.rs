//! The record codecs of Kafka batches: gzip, snappy, lz4 and zstd.
//!
//! Owns: turning a batch's record bytes into their uncompressed form and
//! back, with the framing each Kafka client writes: gzip streams, snappy
//! either raw (librdkafka) or in xerial's framing (the Java client), the LZ4
//! frame format, and zstd frames. Used off the hot path only (the log
//! cleaner, broker-side recompression); produce and fetch pass compressed
//! batches through untouched.
//!
//! Invariants: decompression never produces more than the caller's limit,
//! so a small hostile batch cannot allocate without bound; every malformed
//! input is an error, never a panic.

use std::io::{Read, Write};

use bytes::Bytes;

use crate::batch::Compression;

/// Why record bytes could not be decompressed or compressed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompressionError {
    #[error("{codec:?} data is malformed: {reason}")]
    Malformed { codec: Compression, reason: String },
    #[error("{codec:?} data expands past {limit} bytes")]
    TooLarge { codec: Compression, limit: usize },
}

/// xerial's snappy stream header: magic, then version and compatible version.
const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_BYTES: usize = 16;

/// How a batch's snappy bytes were framed, so a rewrite keeps the framing
/// its producer's client family reads best.
fn is_xerial(data: &[u8]) -> bool {
    data.len() >= XERIAL_HEADER_BYTES && data.starts_with(XERIAL_MAGIC)
}

/// The uncompressed form of `data`, compressed with `codec`; at most
/// `limit` bytes.
pub fn decompress(
    codec: Compression,
    data: &[u8],
    limit: usize,
) -> Result<Bytes, CompressionError> {
    let malformed = |reason: String| CompressionError::Malformed { codec, reason };
    match codec {
        Compression::None => {
            if data.len() > limit {
                return Err(CompressionError::TooLarge { codec, limit });
            }
            Ok(Bytes::copy_from_slice(data))
        }
        Compression::Gzip => read_bounded(codec, flate2::read::GzDecoder::new(data), limit),
        Compression::Lz4 => read_bounded(codec, lz4_flex::frame::FrameDecoder::new(data), limit),
        Compression::Zstd => {
            let decoder =
                zstd::stream::read::Decoder::new(data).map_err(|e| malformed(e.to_string()))?;
            read_bounded(codec, decoder, limit)
        }
        Compression::Snappy if is_xerial(data) => {
            let mut out = Vec::new();
            let mut at = XERIAL_HEADER_BYTES;
            while at < data.len() {
                let Some(len) = data.get(at..at + 4) else {
                    return Err(malformed("xerial block length cut short".into()));
                };
                let len = u32::from_be_bytes(len.try_into().expect("4 bytes")) as usize;
                at += 4;
                let Some(block) = data.get(at..at + len) else {
                    return Err(malformed("xerial block cut short".into()));
                };
                snappy_raw_into(block, &mut out, limit, codec)?;
                at += len;
            }
            Ok(out.into())
        }
        Compression::Snappy => {
            let mut out = Vec::new();
            snappy_raw_into(data, &mut out, limit, codec)?;
            Ok(out.into())
        }
    }
}

fn snappy_raw_into(
    block: &[u8],
    out: &mut Vec<u8>,
    limit: usize,
    codec: Compression,
) -> Result<(), CompressionError> {
    let malformed = |reason: String| CompressionError::Malformed { codec, reason };
    let len = snap::raw::decompress_len(block).map_err(|e| malformed(e.to_string()))?;
    if out.len() + len > limit {
        return Err(CompressionError::TooLarge { codec, limit });
    }
    let start = out.len();
    out.resize(start + len, 0);
    snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(|e| malformed(e.to_string()))?;
    Ok(())
}

fn read_bounded(
    codec: Compression,
    reader: impl Read,
    limit: usize,
) -> Result<Bytes, CompressionError> {
    let mut out = Vec::new();
    // One byte past the limit tells "exactly the limit" from "more".
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| CompressionError::Malformed {
            codec,
            reason: e.to_string(),
        })?;
    if out.len() > limit {
        return Err(CompressionError::TooLarge { codec, limit });
    }
    Ok(out.into())
}

/// `data` compressed with `codec`. `like` is the compressed form it
/// replaces, if any: snappy keeps its framing (xerial or raw).
pub fn compress(
    codec: Compression,
    data: &[u8],
    like: Option<&[u8]>,
) -> Result<Bytes, CompressionError> {
    let failed = |reason: String| CompressionError::Malformed { codec, reason };
    match codec {
        Compression::None => Ok(Bytes::copy_from_slice(data)),
        Compression::Gzip => {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(data).map_err(|e| failed(e.to_string()))?;
            Ok(encoder.finish().map_err(|e| failed(e.to_string()))?.into())
        }
        Compression::Lz4 => {
            let mut encoder = lz4_flex::frame::FrameEncoder::new(Vec::new());
            encoder.write_all(data).map_err(|e| failed(e.to_string()))?;
            Ok(encoder.finish().map_err(|e| failed(e.to_string()))?.into())
        }
        Compression::Zstd => Ok(zstd::bulk::compress(data, 3)
            .map_err(|e| failed(e.to_string()))?
            .into()),
        Compression::Snappy => {
            let raw = snap::raw::Encoder::new()
                .compress_vec(data)
                .map_err(|e| failed(e.to_string()))?;
            if !like.is_some_and(is_xerial) {
                return Ok(raw.into());
            }
            // xerial framing: header (magic, version 1, compatible 1), then
            // one length-prefixed block.
            let mut out = Vec::with_capacity(XERIAL_HEADER_BYTES + 4 + raw.len());
            out.extend_from_slice(XERIAL_MAGIC);
            out.extend_from_slice(&1u32.to_be_bytes());
            out.extend_from_slice(&1u32.to_be_bytes());
            out.extend_from_slice(&(raw.len() as u32).to_be_bytes());
            out.extend_from_slice(&raw);
            Ok(out.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CODECS: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    #[test]
    fn every_codec_round_trips() {
        let data: Vec<u8> = (0..50_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for codec in CODECS {
            let packed = compress(codec, &data, None).expect("compress");
            let back = decompress(codec, &packed, data.len()).expect("decompress");
            assert_eq!(&back[..], &data[..], "{codec:?}");
        }
    }

    #[test]
    fn xerial_snappy_keeps_its_framing() {
        let data = b"hello hello hello hello".repeat(100);
        let xerial_like = [XERIAL_MAGIC, &[0, 0, 0, 1, 0, 0, 0, 1]].concat();
        let packed = compress(Compression::Snappy, &data, Some(&xerial_like)).expect("compress");
        assert!(is_xerial(&packed));
        let back = decompress(Compression::Snappy, &packed, data.len()).expect("decompress");
        assert_eq!(&back[..], &data[..]);
    }

    #[test]
    fn output_past_the_limit_is_refused() {
        let data = vec![0u8; 100_000];
        for codec in CODECS {
            let packed = compress(codec, &data, None).expect("compress");
            let err = decompress(codec, &packed, 99_999).unwrap_err();
            assert!(
                matches!(err, CompressionError::TooLarge { .. }),
                "{codec:?}: {err}"
            );
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for codec in CODECS[1..].iter().copied() {
            for garbage in [
                &b""[..],
                b"\x00\x01\x02",
                b"\x82SNAPPY\x00\0\0\0\x01\0\0\0\x01\xff\xff\xff\xff",
            ] {
                let _ = decompress(codec, garbage, 1 << 20);
            }
        }
    }
}
