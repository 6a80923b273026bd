//! The cleaner's map from a record key to the offset of its latest record
//! in the part of the log a cleaning pass covers.
//!
//! Owns: the keys (copied, compared whole: no hash collision can make a
//! live record look superseded) and the memory they take.
//!
//! Invariant: the map's counted bytes (key bytes plus a fixed per-entry
//! overhead) never exceed its budget, except that the first batch of a
//! pass is always taken whole, so a pass always makes progress.

use std::collections::HashMap;

use sluice_core::Offset;

/// Bytes counted per entry beyond its key: the map's slot, the key's box
/// header and the offset.
pub const ENTRY_OVERHEAD_BYTES: usize = 48;

/// Key to latest offset, within a byte budget.
#[derive(Debug, Default)]
pub struct KeyOffsetMap {
    offsets: HashMap<Box<[u8]>, Offset>,
    used_bytes: usize,
    budget_bytes: usize,
}

impl KeyOffsetMap {
    /// An empty map that holds at most `budget_bytes` (see the module docs).
    pub fn new(budget_bytes: usize) -> KeyOffsetMap {
        KeyOffsetMap {
            offsets: HashMap::new(),
            used_bytes: 0,
            budget_bytes,
        }
    }

    /// Bytes the keys of one batch could add, for [`KeyOffsetMap::fits`].
    pub fn cost<'a>(keys: impl Iterator<Item = &'a [u8]>) -> usize {
        keys.map(|k| k.len() + ENTRY_OVERHEAD_BYTES).sum()
    }

    /// True when `cost` more bytes fit the budget, or the map is empty (the
    /// first batch is always taken).
    pub fn fits(&self, cost: usize) -> bool {
        self.offsets.is_empty() || self.used_bytes + cost <= self.budget_bytes
    }

    /// Records that `key`'s latest record so far is at `offset` (offsets
    /// come in increasing order).
    pub fn insert(&mut self, key: &[u8], offset: Offset) {
        if let Some(at) = self.offsets.get_mut(key) {
            *at = (*at).max(offset);
            return;
        }
        self.used_bytes += key.len() + ENTRY_OVERHEAD_BYTES;
        self.offsets.insert(key.into(), offset);
    }

    /// The offset of `key`'s latest record, if the pass saw the key.
    pub fn latest(&self, key: &[u8]) -> Option<Offset> {
        self.offsets.get(key).copied()
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// Bytes counted against the budget.
    pub fn used_bytes(&self) -> usize {
        self.used_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_offset_wins_and_repeats_cost_nothing() {
        let mut map = KeyOffsetMap::new(1_000);
        map.insert(b"a", 1);
        map.insert(b"b", 2);
        let used = map.used_bytes();
        map.insert(b"a", 5);
        assert_eq!(map.used_bytes(), used);
        assert_eq!(map.latest(b"a"), Some(5));
        assert_eq!(map.latest(b"b"), Some(2));
        assert_eq!(map.latest(b"c"), None);
    }

    #[test]
    fn the_budget_bounds_what_fits_but_not_the_first_batch() {
        let mut map = KeyOffsetMap::new(120);
        let big = KeyOffsetMap::cost([&[0u8; 200][..]].into_iter());
        assert!(map.fits(big), "an empty map takes any first batch");
        map.insert(&[1u8; 10], 0);
        assert!(map.fits(KeyOffsetMap::cost([&b"xy"[..]].into_iter())));
        assert!(!map.fits(big));
    }
}
