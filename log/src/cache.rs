//! The per-shard batch cache: recent appends, bounded in bytes.
//!
//! Owns: a byte-budgeted FIFO of whole batches, shared by every partition log
//! of one shard (`Rc<RefCell<BatchCache>>`; one shard, one thread), so
//! consumers tailing a partition are served from memory without touching the
//! disk.
//!
//! Invariants: `used_bytes <= budget_bytes` after every call; for each
//! partition the cached batches are a contiguous run in offset order (each
//! batch starts where the previous one ended), because batches enter in
//! append order and leave oldest first or by truncation of the newest.
//! The cache holds `Bytes` that share memory with what the log wrote, so an
//! entry costs no copy.
//!
//! A batch cut from a larger buffer (a produce request's frame, which holds
//! other partitions' records too) keeps that whole buffer alive: such a
//! batch comes with its [`SourceBuffer`], and the cache charges the buffer's
//! length once while it holds any batch cut from it, in place of those
//! batches' own lengths. So `used_bytes` bounds the memory the cache keeps
//! alive, not only the bytes it can serve.

use std::collections::{HashMap, VecDeque};

use std::rc::Rc;

use bytes::Bytes;
use sluice_core::Offset;

use crate::read_ahead::ReadAheadBudget;

/// Identifies one partition log within a shard's cache.
pub type CacheKey = u64;

/// The buffer a batch's bytes were cut from, when it holds more than that
/// batch: `id` tells buffers apart (its address: unique while any batch cut
/// from it lives), `len` is what it keeps allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceBuffer {
    pub id: usize,
    pub len: usize,
}

#[derive(Debug, Clone)]
struct CachedBatch {
    base_offset: Offset,
    last_offset: Offset,
    bytes: Bytes,
    /// The id of the [`SourceBuffer`] charged in its place, if any.
    source: Option<usize>,
}

/// What the cache charges for its batches: their lengths, or their source
/// buffers' once per buffer.
#[derive(Debug, Default)]
struct Charges {
    used_bytes: u64,
    /// Source buffer id -> (its length, batches held that were cut from it).
    sources: HashMap<usize, (u64, usize)>,
}

impl Charges {
    /// The source a batch of `len` bytes is charged under: one that holds
    /// more than the batch.
    fn larger(len: usize, source: Option<SourceBuffer>) -> Option<SourceBuffer> {
        source.filter(|s| s.len > len)
    }

    /// The bytes `insert` would add for a batch of `len` bytes.
    fn cost(&self, len: usize, source: Option<SourceBuffer>) -> u64 {
        match Self::larger(len, source) {
            Some(s) if self.sources.contains_key(&s.id) => 0,
            Some(s) => s.len as u64,
            None => len as u64,
        }
    }

    /// Charges a batch of `len` bytes; returns the source id it is charged
    /// under, if any.
    fn add(&mut self, len: usize, source: Option<SourceBuffer>) -> Option<usize> {
        match Self::larger(len, source) {
            Some(s) => {
                let entry = self.sources.entry(s.id).or_insert((s.len as u64, 0));
                if entry.1 == 0 {
                    self.used_bytes += entry.0;
                }
                entry.1 += 1;
                Some(s.id)
            }
            None => {
                self.used_bytes += len as u64;
                None
            }
        }
    }

    fn remove(&mut self, batch: &CachedBatch) {
        match batch.source {
            Some(id) => {
                let Some(entry) = self.sources.get_mut(&id) else {
                    debug_assert!(false, "a cached batch's source is charged");
                    return;
                };
                entry.1 -= 1;
                if entry.1 == 0 {
                    self.used_bytes -= entry.0;
                    self.sources.remove(&id);
                }
            }
            None => self.used_bytes -= batch.bytes.len() as u64,
        }
    }
}

/// Recently appended batches of a shard's partitions.
#[derive(Debug)]
pub struct BatchCache {
    budget_bytes: u64,
    charges: Charges,
    next_key: CacheKey,
    partitions: HashMap<CacheKey, VecDeque<CachedBatch>>,
    /// Insertion order across partitions: (key, base offset); entries whose
    /// batch is already gone are skipped when popped.
    order: VecDeque<(CacheKey, Offset)>,
    /// Batches held across all partitions.
    cached_batches: usize,
    hits: u64,
    misses: u64,
    /// The shard's budget for reads started ahead of consumers, shared by
    /// the same partition logs (see [`crate::read_ahead`]).
    read_ahead: Rc<ReadAheadBudget>,
}

impl BatchCache {
    /// A cache holding at most `budget_bytes` of batches (0 disables it),
    /// with as much again for read-ahead until
    /// [`BatchCache::read_ahead_budget`] is given its own limit.
    pub fn new(budget_bytes: u64) -> BatchCache {
        BatchCache {
            read_ahead: ReadAheadBudget::new(budget_bytes),
            budget_bytes,
            charges: Charges::default(),
            next_key: 0,
            partitions: HashMap::new(),
            order: VecDeque::new(),
            cached_batches: 0,
            hits: 0,
            misses: 0,
        }
    }

    /// A fresh key for a partition log opened on this shard.
    pub fn register(&mut self) -> CacheKey {
        self.next_key += 1;
        self.partitions.insert(self.next_key, VecDeque::new());
        self.next_key
    }

    /// Forgets a partition (closed or deleted).
    pub fn unregister(&mut self, key: CacheKey) {
        if let Some(batches) = self.partitions.remove(&key) {
            self.cached_batches -= batches.len();
            for b in &batches {
                self.charges.remove(b);
            }
        }
    }

    /// The shard's read-ahead budget.
    pub fn read_ahead_budget(&self) -> Rc<ReadAheadBudget> {
        self.read_ahead.clone()
    }

    /// The bytes the cache keeps alive: its batches, or the buffers they
    /// were cut from.
    pub fn used_bytes(&self) -> u64 {
        self.charges.used_bytes
    }
    pub fn budget_bytes(&self) -> u64 {
        self.budget_bytes
    }
    /// (hits, misses) of `read` so far.
    pub fn hit_counts(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }

    /// Adds a just-appended batch, cut from `source` when that holds more
    /// than the batch; evicts the oldest batches of the shard to stay within
    /// budget. A batch that would cost more than the budget is not cached.
    pub fn insert(
        &mut self,
        key: CacheKey,
        base_offset: Offset,
        last_offset: Offset,
        bytes: Bytes,
        source: Option<SourceBuffer>,
    ) {
        if self.charges.cost(bytes.len(), source) > self.budget_bytes {
            return;
        }
        let Some(batches) = self.partitions.get_mut(&key) else {
            return;
        };
        if let Some(last) = batches.back() {
            if last.last_offset + 1 != base_offset {
                // Not contiguous (the log truncated or skipped): restart the run.
                for b in batches.drain(..) {
                    self.charges.remove(&b);
                    self.cached_batches -= 1;
                }
            }
        }
        let source = self.charges.add(bytes.len(), source);
        batches.push_back(CachedBatch {
            base_offset,
            last_offset,
            bytes,
            source,
        });
        self.cached_batches += 1;
        self.order.push_back((key, base_offset));
        while self.charges.used_bytes > self.budget_bytes {
            self.evict_oldest();
        }
        self.compact_order();
        debug_assert!(self.charges.used_bytes <= self.budget_bytes);
    }

    /// Drops order entries of batches that truncation or unregistering
    /// removed, so `order` stays within twice the number of cached batches.
    fn compact_order(&mut self) {
        if self.order.len() <= 2 * self.cached_batches + 64 {
            return;
        }
        let partitions = &self.partitions;
        self.order.retain(|(key, base)| {
            partitions.get(key).is_some_and(|batches| {
                let i = batches.partition_point(|b| b.base_offset < *base);
                batches.get(i).is_some_and(|b| b.base_offset == *base)
            })
        });
    }

    fn evict_oldest(&mut self) {
        while let Some((key, base)) = self.order.pop_front() {
            let Some(batches) = self.partitions.get_mut(&key) else {
                continue;
            };
            if batches.front().is_some_and(|b| b.base_offset == base) {
                let gone = batches.pop_front().expect("front exists");
                self.charges.remove(&gone);
                self.cached_batches -= 1;
                return;
            }
        }
    }

    /// Whole batches from the one holding `from_offset`, in order, while
    /// their total stays within `max_bytes` (at least one), ending before
    /// `upto` (exclusive). `None` when the batch holding `from_offset` is not
    /// cached.
    pub fn read(
        &mut self,
        key: CacheKey,
        from_offset: Offset,
        max_bytes: usize,
        upto: Offset,
    ) -> Option<Vec<Bytes>> {
        let batches = self.partitions.get(&key)?;
        let start = batches.partition_point(|b| b.last_offset < from_offset);
        let hit = batches
            .get(start)
            .is_some_and(|b| b.base_offset <= from_offset && b.last_offset < upto);
        if !hit {
            self.misses += 1;
            return None;
        }
        let mut out = Vec::new();
        let mut total = 0usize;
        for b in batches.iter().skip(start) {
            if b.last_offset >= upto || (!out.is_empty() && total + b.bytes.len() > max_bytes) {
                break;
            }
            total += b.bytes.len();
            out.push(b.bytes.clone());
        }
        self.hits += 1;
        Some(out)
    }

    /// Drops cached batches holding any offset at or above `offset`.
    pub fn truncate_from(&mut self, key: CacheKey, offset: Offset) {
        if let Some(batches) = self.partitions.get_mut(&key) {
            while batches.back().is_some_and(|b| b.last_offset >= offset) {
                let gone = batches.pop_back().expect("back exists");
                self.charges.remove(&gone);
                self.cached_batches -= 1;
            }
        }
    }

    /// Drops cached batches that lie wholly below `offset`.
    pub fn evict_below(&mut self, key: CacheKey, offset: Offset) {
        if let Some(batches) = self.partitions.get_mut(&key) {
            while batches.front().is_some_and(|b| b.last_offset < offset) {
                let gone = batches.pop_front().expect("front exists");
                self.charges.remove(&gone);
                self.cached_batches -= 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(len: usize) -> Bytes {
        Bytes::from(vec![7u8; len])
    }

    #[test]
    fn serves_contiguous_runs_and_evicts_oldest_first() {
        let mut cache = BatchCache::new(300);
        let a = cache.register();
        let b = cache.register();
        cache.insert(a, 0, 9, batch(100), None);
        cache.insert(b, 0, 0, batch(100), None);
        cache.insert(a, 10, 19, batch(100), None);
        assert_eq!(cache.used_bytes(), 300);
        assert_eq!(cache.read(a, 5, 1000, 100).map(|v| v.len()), Some(2));
        assert_eq!(cache.read(a, 15, 1000, 100).map(|v| v.len()), Some(1));
        assert_eq!(
            cache.read(a, 5, 10, 100).map(|v| v.len()),
            Some(1),
            "at least one batch"
        );
        assert_eq!(
            cache.read(a, 5, 1000, 10).map(|v| v.len()),
            Some(1),
            "stops before upto"
        );
        assert_eq!(cache.read(a, 5, 1000, 9), None, "nothing below upto");
        cache.insert(a, 20, 29, batch(100), None);
        assert_eq!(cache.used_bytes(), 300);
        assert_eq!(cache.read(a, 5, 1000, 100), None, "oldest evicted");
        assert!(cache.read(b, 0, 1000, 100).is_some());
        cache.insert(b, 1, 1, batch(250), None);
        assert!(cache.used_bytes() <= 300);
        assert_eq!(cache.hit_counts().1, 2);
    }

    #[test]
    fn truncation_and_gaps_keep_runs_contiguous() {
        let mut cache = BatchCache::new(10_000);
        let a = cache.register();
        cache.insert(a, 0, 4, batch(10), None);
        cache.insert(a, 5, 9, batch(10), None);
        cache.truncate_from(a, 7);
        assert_eq!(cache.used_bytes(), 10);
        assert_eq!(cache.read(a, 6, 100, 100), None);
        cache.insert(a, 5, 6, batch(10), None);
        assert_eq!(cache.read(a, 6, 100, 100).map(|v| v.len()), Some(1));
        cache.insert(a, 50, 51, batch(10), None); // a gap restarts the run
        assert_eq!(cache.read(a, 0, 100, 100), None);
        assert_eq!(cache.used_bytes(), 10);
        cache.evict_below(a, 52);
        assert_eq!(cache.used_bytes(), 0);
        cache.unregister(a);
        assert_eq!(cache.read(a, 50, 100, 100), None);
    }

    #[test]
    fn a_shared_source_is_charged_once_while_any_batch_cut_from_it_is_held() {
        let mut cache = BatchCache::new(1_000);
        let a = cache.register();
        let b = cache.register();
        let frame = Some(SourceBuffer { id: 1, len: 600 });
        cache.insert(a, 0, 0, batch(10), frame);
        cache.insert(b, 0, 0, batch(10), frame);
        assert_eq!(cache.used_bytes(), 600, "one frame, charged once");
        cache.insert(a, 1, 1, batch(100), None);
        assert_eq!(cache.used_bytes(), 700);
        cache.evict_below(a, 1);
        assert_eq!(cache.used_bytes(), 700, "b still holds the frame");
        cache.unregister(b);
        assert_eq!(cache.used_bytes(), 100, "the frame's last batch left");
        // A second frame evicts older batches down to the budget.
        let other = Some(SourceBuffer { id: 2, len: 950 });
        cache.insert(a, 2, 2, batch(10), other);
        assert_eq!(cache.used_bytes(), 950);
        assert!(
            cache.read(a, 1, 1000, 100).is_none(),
            "evicted for the frame"
        );
        // A source larger than the budget is not cached at all.
        cache.insert(a, 3, 3, batch(10), Some(SourceBuffer { id: 3, len: 5_000 }));
        assert_eq!(cache.used_bytes(), 950);
        assert!(cache.read(a, 3, 1000, 100).is_none());
        // A source no larger than its batch is charged as the batch.
        cache.truncate_from(a, 0);
        cache.insert(a, 0, 0, batch(40), Some(SourceBuffer { id: 4, len: 40 }));
        assert_eq!(cache.used_bytes(), 40);
    }
}
