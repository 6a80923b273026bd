//! A sealed segment's transaction index (`<base:020>.txnindex`): the
//! transactions aborted by markers in that segment.
//!
//! Owns: the file's encoding and its whole-file write and read. It is what
//! keeps aborted transactions out of memory: the log holds in memory only
//! those whose markers are in its active segment, and writes a segment's
//! when it seals it.
//!
//! File format, Kafka's `.txnindex` layout: 34-byte big-endian entries back
//! to back, in marker order: version i16 (0), producer id i64, first offset
//! i64, last offset (the marker's) i64, last stable offset i64. Decoding
//! keeps the longest valid prefix: version 0, first offset below last
//! offset, last offsets strictly increasing (a torn or zero-padded tail is
//! not an entry).
//!
//! Invariants: the file is written whole, synced and closed before the
//! segment after it is created (so every sealed segment has one once its
//! successor exists, an empty file when nothing aborted there); the active
//! segment's file, if one is left from before a crash or a truncation, is
//! not read: the producer snapshot and the log replay hold its entries.

use std::path::Path;

use sluice_core::txn::partition::AbortedTxn;

use crate::error::{LogError, LogResult};
use crate::storage::transient::transient_file_turn;
use crate::storage::{align_up, AlignedBuf, Storage, StorageFile};

/// Bytes of one entry.
pub const ENTRY_BYTES: usize = 34;

/// Most bytes of a transaction index file read at once (a segment of
/// default size holds at most this many aborted transactions' markers
/// many times over; a larger file is read up to here and the rest
/// reported).
const MAX_READ_BYTES: usize = 64 * 1024 * 1024;

/// Encodes `entries` (in marker order).
pub fn encode(entries: &[AbortedTxn]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * ENTRY_BYTES);
    for t in entries {
        out.extend_from_slice(&0i16.to_be_bytes());
        out.extend_from_slice(&t.producer_id.to_be_bytes());
        out.extend_from_slice(&t.first_offset.to_be_bytes());
        out.extend_from_slice(&t.last_offset.to_be_bytes());
        out.extend_from_slice(&t.last_stable_offset.to_be_bytes());
    }
    out
}

/// Decodes the longest valid prefix of a file's bytes.
pub fn decode(bytes: &[u8]) -> Vec<AbortedTxn> {
    let mut out: Vec<AbortedTxn> = Vec::new();
    for chunk in bytes.chunks_exact(ENTRY_BYTES) {
        let i64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&chunk[at..at + 8]);
            i64::from_be_bytes(b)
        };
        let version = i16::from_be_bytes([chunk[0], chunk[1]]);
        let t = AbortedTxn {
            producer_id: i64_at(2),
            first_offset: i64_at(10),
            last_offset: i64_at(18),
            last_stable_offset: i64_at(26),
        };
        let ok = version == 0
            && t.first_offset >= 0
            && t.first_offset < t.last_offset
            && out.last().is_none_or(|p| p.last_offset < t.last_offset);
        if !ok {
            break;
        }
        out.push(t);
    }
    out
}

/// Writes `entries` as the whole file at `path` and syncs it.
pub async fn write<S: Storage>(storage: &S, path: &Path, entries: &[AbortedTxn]) -> LogResult<()> {
    let bytes = encode(entries);
    let _turn = transient_file_turn().await;
    let file = storage
        .create(path)
        .await
        .map_err(LogError::io("creating", path))?;
    if !bytes.is_empty() {
        let mut buf = file.alloc(align_up(bytes.len() as u64) as usize);
        let slice = buf.as_mut_slice();
        slice[..bytes.len()].copy_from_slice(&bytes);
        slice[bytes.len()..].fill(0);
        file.write_at(buf, 0)
            .await
            .map_err(LogError::io("writing", path))?;
        file.truncate(bytes.len() as u64)
            .await
            .map_err(LogError::io("truncating", path))?;
    }
    file.sync().await.map_err(LogError::io("syncing", path))?;
    file.close().await.map_err(LogError::io("closing", path))
}

/// The entries of the file at `path`; `None` when there is no file.
pub async fn read<S: Storage>(storage: &S, path: &Path) -> LogResult<Option<Vec<AbortedTxn>>> {
    let _turn = transient_file_turn().await;
    let Some((bytes, size)) = crate::checkpoint::read_prefix(storage, path, MAX_READ_BYTES).await?
    else {
        return Ok(None);
    };
    let entries = decode(&bytes);
    if entries.len() * ENTRY_BYTES != size as usize {
        tracing::warn!(path = ?path, bytes = size, entries = entries.len(), "transaction index has bytes past its valid entries");
    }
    Ok(Some(entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(pid: i64, first: i64, last: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id: pid,
            first_offset: first,
            last_offset: last,
            last_stable_offset: last + 1,
        }
    }

    #[test]
    fn entries_round_trip_and_a_torn_or_padded_tail_is_dropped() {
        let entries = vec![entry(0, 0, 4), entry(7, 2, 9), entry(3, 10, 11)];
        let mut bytes = encode(&entries);
        assert_eq!(bytes.len(), 3 * ENTRY_BYTES);
        assert_eq!(decode(&bytes), entries);
        // Zero padding, then a torn entry: neither is an entry.
        bytes.extend_from_slice(&[0u8; ENTRY_BYTES]);
        assert_eq!(decode(&bytes), entries);
        assert_eq!(decode(&bytes[..2 * ENTRY_BYTES + 5]), entries[..2].to_vec());
        // Out of marker order ends the valid prefix.
        let swapped = encode(&[entries[1], entries[0]]);
        assert_eq!(decode(&swapped), vec![entries[1]]);
    }
}
