//! Sparse per-segment indexes: offset -> file position, timestamp -> offset.
//!
//! Owns: the in-memory entry lists, their lookups, and their file encoding.
//! It does no I/O; the segment decides when entries are persisted.
//!
//! File format: fixed-size big-endian entries back to back, as Kafka lays out
//! `.index` (relative offset u32, position u32) and `.timeindex` (timestamp
//! i64, relative offset u32). Files are written in aligned pages, so a file
//! may end in zero padding; decoding keeps the longest valid prefix: entries
//! strictly increasing in every field, and never the all-zero entry (the
//! first batch of a segment is never indexed, so no real entry is zero).
//!
//! Meaning of an entry:
//! - offset index `(r, p)`: the batch whose base offset is `base + r` starts
//!   at byte `p` of the segment.
//! - time index `(t, r)`: every batch before offset `base + r` has a max
//!   timestamp of at most `t`, and `base + r` is an offset index entry. The
//!   last entry of a sealed segment is `(segment max timestamp, next offset)`.

use sluice_core::Offset;

/// One fixed-size index entry.
pub trait IndexEntry: Copy + PartialEq + std::fmt::Debug {
    /// Encoded size in bytes.
    const BYTES: usize;
    fn encode(&self, out: &mut [u8]);
    fn decode(buf: &[u8]) -> Self;
    /// True when `self` may follow `prev` (strictly increasing).
    fn follows(&self, prev: &Self) -> bool;
    fn is_zero(&self) -> bool;
}

/// Offset index entry: relative offset -> byte position in the segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

impl IndexEntry for OffsetEntry {
    const BYTES: usize = 8;
    fn encode(&self, out: &mut [u8]) {
        out[..4].copy_from_slice(&self.relative_offset.to_be_bytes());
        out[4..8].copy_from_slice(&self.position.to_be_bytes());
    }
    fn decode(buf: &[u8]) -> Self {
        OffsetEntry {
            relative_offset: u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]),
            position: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
        }
    }
    fn follows(&self, prev: &Self) -> bool {
        self.relative_offset > prev.relative_offset && self.position > prev.position
    }
    fn is_zero(&self) -> bool {
        self.relative_offset == 0 && self.position == 0
    }
}

/// Time index entry: batches before `relative_offset` have timestamps <= `timestamp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    pub timestamp: i64,
    pub relative_offset: u32,
}

impl IndexEntry for TimeEntry {
    const BYTES: usize = 12;
    fn encode(&self, out: &mut [u8]) {
        out[..8].copy_from_slice(&self.timestamp.to_be_bytes());
        out[8..12].copy_from_slice(&self.relative_offset.to_be_bytes());
    }
    fn decode(buf: &[u8]) -> Self {
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&buf[..8]);
        TimeEntry {
            timestamp: i64::from_be_bytes(ts),
            relative_offset: u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
        }
    }
    fn follows(&self, prev: &Self) -> bool {
        self.timestamp > prev.timestamp && self.relative_offset > prev.relative_offset
    }
    fn is_zero(&self) -> bool {
        self.timestamp == 0 && self.relative_offset == 0
    }
}

/// The entries of one index, in memory, plus how many are on disk.
#[derive(Debug, Clone)]
pub struct SparseIndex<E: IndexEntry> {
    entries: Vec<E>,
    /// Entries known to be written to the file (a prefix of `entries`).
    persisted: usize,
    max_entries: usize,
}

impl<E: IndexEntry> SparseIndex<E> {
    /// An empty index holding at most `max_bytes / E::BYTES` entries.
    pub fn new(max_bytes: u32) -> Self {
        SparseIndex {
            entries: Vec::new(),
            persisted: 0,
            max_entries: max_bytes as usize / E::BYTES,
        }
    }

    /// Decodes the longest valid prefix of a file's bytes; returns the index
    /// and how many trailing bytes were not valid entries (zero padding
    /// included).
    pub fn decode(bytes: &[u8], max_bytes: u32) -> (Self, usize) {
        let mut index = Self::new(max_bytes);
        let mut used = 0;
        for chunk in bytes.chunks_exact(E::BYTES) {
            let entry = E::decode(chunk);
            let ok = !entry.is_zero()
                && index.entries.last().is_none_or(|prev| entry.follows(prev))
                && index.entries.len() < index.max_entries;
            if !ok {
                break;
            }
            index.entries.push(entry);
            used += E::BYTES;
        }
        index.persisted = index.entries.len();
        (index, bytes.len() - used)
    }

    pub fn entries(&self) -> &[E] {
        &self.entries
    }
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    pub fn is_full(&self) -> bool {
        self.entries.len() >= self.max_entries
    }
    pub fn last(&self) -> Option<&E> {
        self.entries.last()
    }

    /// Appends an entry; it must follow the last one.
    pub fn push(&mut self, entry: E) {
        assert!(
            self.entries.last().is_none_or(|prev| entry.follows(prev)),
            "index entries must increase: {entry:?} after {:?}",
            self.entries.last()
        );
        debug_assert!(!entry.is_zero());
        self.entries.push(entry);
    }

    /// Keeps the entries for which `keep` holds, which must be a prefix.
    pub fn truncate_while(&mut self, keep: impl Fn(&E) -> bool) {
        let n = self.entries.partition_point(keep);
        self.entries.truncate(n);
        self.persisted = self.persisted.min(n);
    }

    /// Drops entries from `n` on.
    pub fn truncate(&mut self, n: usize) {
        self.entries.truncate(n);
        self.persisted = self.persisted.min(n);
    }

    /// Bytes of entries not yet written to the file.
    pub fn unpersisted_bytes(&self) -> usize {
        (self.entries.len() - self.persisted) * E::BYTES
    }

    /// The byte range of the file to rewrite so the file holds every entry:
    /// `(file position, encoded bytes)`, starting at the aligned page that
    /// holds the first unpersisted entry. `None` when nothing is unpersisted.
    pub fn unpersisted_pages(&self, align: usize) -> Option<(u64, Vec<u8>)> {
        if self.persisted == self.entries.len() {
            return None;
        }
        let start_byte = self.persisted * E::BYTES / align * align;
        let end_byte = self.entries.len() * E::BYTES;
        let len = (end_byte - start_byte).div_ceil(align) * align;
        let mut out = vec![0u8; len];
        // First entry whose bytes start at or after start_byte; entries that
        // straddle start_byte from the page before are re-encoded whole by
        // starting one entry earlier and dropping its leading bytes.
        let first = start_byte / E::BYTES;
        let skip = start_byte - first * E::BYTES;
        let mut encoded = vec![0u8; (self.entries.len() - first) * E::BYTES];
        for (i, e) in self.entries[first..].iter().enumerate() {
            e.encode(&mut encoded[i * E::BYTES..(i + 1) * E::BYTES]);
        }
        let body = &encoded[skip..];
        out[..body.len()].copy_from_slice(body);
        Some((start_byte as u64, out))
    }

    /// Marks every entry as not yet in the file (it will be rewritten whole).
    pub fn mark_unpersisted(&mut self) {
        self.persisted = 0;
    }

    /// Records that every entry is now in the file.
    pub fn mark_persisted(&mut self) {
        self.persisted = self.entries.len();
    }
}

impl SparseIndex<OffsetEntry> {
    /// The entry with the largest relative offset at or below `relative`, as
    /// `(relative offset, position)`; `(0, 0)` when there is none.
    pub fn lookup(&self, relative: u32) -> (u32, u32) {
        let n = self
            .entries
            .partition_point(|e| e.relative_offset <= relative);
        match n {
            0 => (0, 0),
            _ => (
                self.entries[n - 1].relative_offset,
                self.entries[n - 1].position,
            ),
        }
    }
}

impl SparseIndex<TimeEntry> {
    /// The relative offset to start scanning from for the first batch whose
    /// max timestamp is at least `timestamp`: the last entry with a smaller
    /// timestamp, or 0.
    pub fn lookup(&self, timestamp: i64) -> u32 {
        let n = self.entries.partition_point(|e| e.timestamp < timestamp);
        match n {
            0 => 0,
            _ => self.entries[n - 1].relative_offset,
        }
    }
}

/// Relative offset of `offset` in a segment based at `base`, if it fits.
pub fn relative(base: Offset, offset: Offset) -> Option<u32> {
    u32::try_from(offset.checked_sub(base)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn oe(r: u32, p: u32) -> OffsetEntry {
        OffsetEntry {
            relative_offset: r,
            position: p,
        }
    }

    #[test]
    fn lookup_finds_floor_entry() {
        let mut idx = SparseIndex::<OffsetEntry>::new(4096);
        assert_eq!(idx.lookup(10), (0, 0));
        idx.push(oe(10, 4100));
        idx.push(oe(25, 8300));
        assert_eq!(idx.lookup(9), (0, 0));
        assert_eq!(idx.lookup(10), (10, 4100));
        assert_eq!(idx.lookup(24), (10, 4100));
        assert_eq!(idx.lookup(1000), (25, 8300));
    }

    #[test]
    fn time_lookup_starts_at_last_smaller_timestamp() {
        let mut idx = SparseIndex::<TimeEntry>::new(4096);
        idx.push(TimeEntry {
            timestamp: 100,
            relative_offset: 5,
        });
        idx.push(TimeEntry {
            timestamp: 200,
            relative_offset: 9,
        });
        assert_eq!(idx.lookup(100), 0);
        assert_eq!(idx.lookup(101), 5);
        assert_eq!(idx.lookup(200), 5);
        assert_eq!(idx.lookup(201), 9);
    }

    #[test]
    fn decode_stops_at_zero_padding_and_disorder() {
        let mut bytes = vec![0u8; 40];
        oe(3, 100).encode(&mut bytes[0..8]);
        oe(7, 200).encode(&mut bytes[8..16]);
        oe(6, 300).encode(&mut bytes[16..24]); // goes backwards
        let (idx, cut) = SparseIndex::<OffsetEntry>::decode(&bytes, 4096);
        assert_eq!(idx.entries(), &[oe(3, 100), oe(7, 200)]);
        assert_eq!(cut, 24);
        assert_eq!(idx.unpersisted_bytes(), 0);
    }

    proptest! {
        #[test]
        fn pages_round_trip_through_decode(n in 1usize..1200, persisted_at in 0usize..1200) {
            let mut idx = SparseIndex::<TimeEntry>::new(1 << 20);
            let mut file = vec![0u8; 0];
            for i in 0..n {
                idx.push(TimeEntry { timestamp: 10 * i as i64 + 1, relative_offset: 3 * i as u32 + 1 });
                if i == persisted_at.min(n - 1) {
                    if let Some((pos, bytes)) = idx.unpersisted_pages(4096) {
                        let end = pos as usize + bytes.len();
                        if file.len() < end { file.resize(end, 0); }
                        file[pos as usize..end].copy_from_slice(&bytes);
                        idx.mark_persisted();
                    }
                }
            }
            if let Some((pos, bytes)) = idx.unpersisted_pages(4096) {
                prop_assert_eq!(pos % 4096, 0);
                let end = pos as usize + bytes.len();
                if file.len() < end { file.resize(end, 0); }
                file[pos as usize..end].copy_from_slice(&bytes);
            }
            let (decoded, _) = SparseIndex::<TimeEntry>::decode(&file, 1 << 20);
            prop_assert_eq!(decoded.entries(), idx.entries());
        }

        #[test]
        fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let (a, _) = SparseIndex::<OffsetEntry>::decode(&bytes, 4096);
            let (b, _) = SparseIndex::<TimeEntry>::decode(&bytes, 4096);
            prop_assert!(a.len() * 8 <= bytes.len());
            prop_assert!(b.len() * 12 <= bytes.len());
        }
    }
}
