//! The recovery scanner: walks batch headers in bytes read from a segment.
//!
//! Owns: deciding, for a buffer of segment bytes, how long its valid prefix
//! is. A batch is valid when its length and magic are sane, it lies whole in
//! the buffer, its CRC-32C matches, and its base offset is at or after the
//! one the previous batch leads to (after, in a compacted log: the cleaner
//! leaves holes, and a follower copies its leader's holes). Pure: no I/O, so it is fuzzed directly
//! (`log/fuzz`), and the segment drives it over chunks it reads.

use sluice_core::batch::{check_log_batch, peek_batch_size, BatchError, BatchHeader, HEADER_BYTES};
use sluice_core::Offset;

/// A valid batch found by the scanner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScannedBatch {
    /// Position of the batch in the buffer.
    pub position: usize,
    pub header: BatchHeader,
}

/// Why the scanner stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanStop {
    /// The buffer ended exactly after a whole batch (or was empty).
    End,
    /// The batch at `position` needs `needed` bytes from there; the buffer
    /// holds fewer. More bytes may exist beyond the buffer.
    NeedMore { position: usize, needed: usize },
    /// The bytes at `position` are not a valid batch.
    Invalid { position: usize, reason: ScanError },
}

/// What made a batch invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    #[error("{0}")]
    Batch(#[from] BatchError),
    #[error("batch base offset {found} where {expected} was expected")]
    OffsetGap { expected: Offset, found: Offset },
    #[error("zero padding after the last batch")]
    ZeroPadding,
}

/// Scans `buf` from its start, expecting the first batch to begin at offset
/// `expected_offset`. Calls `on_batch` for each valid batch, in order, and
/// returns how the scan stopped. Batches up to the stop position are valid.
///
/// Invariant: the batches found do not depend on where `buf` was cut from a
/// longer file. Zero padding is reported only for a whole header's worth
/// of zeros; a shorter remainder is `NeedMore`, whatever its bytes.
pub fn scan(buf: &[u8], expected_offset: Offset, on_batch: impl FnMut(ScannedBatch)) -> ScanStop {
    scan_with(buf, expected_offset, false, on_batch)
}

/// [`scan`], with `holes_allowed` for a compacted log's segments: a batch
/// may then start past the offset the previous one leads to (never
/// before). Base offsets lie outside the CRC, so a log that cannot have
/// holes refuses them: a damaged base offset is then caught.
pub fn scan_with(
    buf: &[u8],
    mut expected_offset: Offset,
    holes_allowed: bool,
    mut on_batch: impl FnMut(ScannedBatch),
) -> ScanStop {
    let mut position = 0usize;
    loop {
        let rest = &buf[position..];
        if rest.is_empty() {
            return ScanStop::End;
        }
        if rest.len() < HEADER_BYTES {
            // Even when these bytes are all zero: a batch's first bytes are
            // its base offset, whose high bytes are zero for any offset
            // below 2^48, so a buffer that ends a few bytes into a real
            // header looks like padding. Only the caller knows whether the
            // file ends here (padding) or more bytes follow (a header).
            return ScanStop::NeedMore {
                position,
                needed: HEADER_BYTES,
            };
        }
        let size = match peek_batch_size(rest) {
            Ok(size) => size,
            Err(e) => {
                let reason = if rest[..HEADER_BYTES].iter().all(|b| *b == 0) {
                    ScanError::ZeroPadding
                } else {
                    ScanError::Batch(e)
                };
                return ScanStop::Invalid { position, reason };
            }
        };
        if size > rest.len() {
            return ScanStop::NeedMore {
                position,
                needed: size,
            };
        }
        let header = match check_log_batch(&rest[..size]) {
            Ok(h) => h,
            Err(e) => {
                return ScanStop::Invalid {
                    position,
                    reason: ScanError::Batch(e),
                }
            }
        };
        let hole = holes_allowed && header.base_offset > expected_offset;
        if header.base_offset != expected_offset && !hole {
            return ScanStop::Invalid {
                position,
                reason: ScanError::OffsetGap {
                    expected: expected_offset,
                    found: header.base_offset,
                },
            };
        }
        expected_offset = header.last_offset() + 1;
        on_batch(ScannedBatch { position, header });
        position += size;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::batch::{assign_in_place, BatchBuilder};

    /// `count` batches with offsets assigned from 0, as a segment holds them.
    fn segment(count: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut next = 0i64;
        for i in 0..count {
            let mut batch = BatchBuilder::new(1_700_000_000_000)
                .record(None, Some(&vec![b'x'; 30 + i * 7]))
                .record(Some(b"k"), Some(b"v"))
                .build()
                .to_vec();
            assign_in_place(&mut batch, next, 0);
            next += 2;
            out.extend_from_slice(&batch);
        }
        out
    }

    /// Scans `bytes` the way recovery does, `chunk` bytes at a time,
    /// restarting at the batch a chunk cut; returns the batch positions.
    fn scan_in_chunks(bytes: &[u8], chunk: usize) -> (Vec<usize>, Option<ScanError>) {
        let (mut pos, mut expected, mut found) = (0usize, 0i64, Vec::new());
        loop {
            let end = (pos + chunk).min(bytes.len());
            let mut batches = Vec::new();
            let stop = scan(&bytes[pos..end], expected, |b| batches.push(b));
            for b in batches {
                found.push(pos + b.position);
                expected = b.header.last_offset() + 1;
            }
            match stop {
                ScanStop::End if end == bytes.len() => return (found, None),
                ScanStop::End => pos = end,
                ScanStop::NeedMore { position, needed } => {
                    if pos + position + needed > bytes.len() {
                        return (found, None);
                    }
                    if position == 0 {
                        // One batch larger than a chunk: scan it whole.
                        let whole = &bytes[pos..pos + needed];
                        let mut one = Vec::new();
                        scan(whole, expected, |b| one.push(b));
                        let b = one.first().expect("a whole batch");
                        found.push(pos);
                        expected = b.header.last_offset() + 1;
                        pos += needed;
                    } else {
                        pos += position;
                    }
                }
                ScanStop::Invalid { reason, .. } => return (found, Some(reason)),
            }
        }
    }

    #[test]
    fn chunk_boundaries_inside_a_header_are_not_taken_for_padding() {
        let bytes = segment(40);
        let (whole, none) = scan_in_chunks(&bytes, bytes.len());
        assert_eq!((whole.len(), none), (40, None));
        for chunk in HEADER_BYTES..600 {
            let (found, stop) = scan_in_chunks(&bytes, chunk);
            assert_eq!(found, whole, "chunk size {chunk}");
            assert_eq!(stop, None, "chunk size {chunk}");
        }
    }

    #[test]
    fn a_buffer_ending_in_the_zero_high_bytes_of_a_base_offset_needs_more() {
        let bytes = segment(3);
        let second = {
            let mut at = Vec::new();
            scan(&bytes, 0, |b| at.push(b.position));
            at[1]
        };
        for cut in 1..=6 {
            let mut found = 0;
            let stop = scan(&bytes[..second + cut], 0, |_| found += 1);
            assert_eq!(found, 1);
            assert_eq!(
                stop,
                ScanStop::NeedMore {
                    position: second,
                    needed: HEADER_BYTES
                }
            );
        }
    }

    #[test]
    fn a_whole_header_of_zeros_is_padding() {
        let mut bytes = segment(2);
        let end = bytes.len();
        bytes.extend_from_slice(&[0u8; 4096]);
        let mut found = 0;
        let stop = scan(&bytes, 0, |_| found += 1);
        assert_eq!(found, 2);
        assert_eq!(
            stop,
            ScanStop::Invalid {
                position: end,
                reason: ScanError::ZeroPadding
            }
        );
    }
}
