//! The recovery scanner: walks batch headers in bytes read from a segment.
//!
//! Owns: deciding, for a buffer of segment bytes, how long its valid prefix
//! is. A batch is valid when its length and magic are sane, it lies whole in
//! the buffer, its CRC-32C matches, and its base offset is the one the
//! previous batch leads to. Pure: no I/O, so it is fuzzed directly
//! (`log/fuzz`), and the segment drives it over chunks it reads.

use sluice_core::batch::{check_batch, peek_batch_size, BatchError, BatchHeader, HEADER_BYTES};
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
pub fn scan(
    buf: &[u8],
    mut expected_offset: Offset,
    mut on_batch: impl FnMut(ScannedBatch),
) -> ScanStop {
    let mut position = 0usize;
    loop {
        let rest = &buf[position..];
        if rest.is_empty() {
            return ScanStop::End;
        }
        if rest.len() < HEADER_BYTES {
            if rest.iter().all(|b| *b == 0) {
                return ScanStop::Invalid {
                    position,
                    reason: ScanError::ZeroPadding,
                };
            }
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
        let header = match check_batch(&rest[..size]) {
            Ok(h) => h,
            Err(e) => {
                return ScanStop::Invalid {
                    position,
                    reason: ScanError::Batch(e),
                }
            }
        };
        if header.base_offset != expected_offset {
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
