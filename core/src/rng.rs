//! The project's one seeded generator of choices: SplitMix64.
//!
//! Owns: turning a seed into a reproducible stream of numbers, for
//! everything that must replay exactly from a seed: the in-memory disk's
//! crash outcomes (which unsynced writes survive, where a write tears) and
//! every choice of the simulator (which action, which partition, how long
//! a delay). Not for cryptography.

/// SplitMix64 (Steele, Lea and Flood, 2014): tiny, fast, and good enough to
/// pick among outcomes; modulo bias is irrelevant for these uses.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// A number in `0..=max`.
    pub fn up_to(&mut self, max: usize) -> usize {
        (self.next_u64() % (max as u64 + 1)) as usize
    }

    /// True or false, evenly.
    pub fn coin_flip(&mut self) -> bool {
        self.next_u64() & 1 == 1
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// One element of `items`, if any.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            None
        } else {
            items.get(self.below(items.len() as u64) as usize)
        }
    }
}
