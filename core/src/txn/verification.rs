//! The partition leader's side of KIP-890 part 1: a transactional
//! producer's first batch in a partition is appended only after its
//! transaction coordinator confirmed that the partition is in the
//! producer's ongoing transaction, and only if no marker for the producer
//! was written here in between.
//!
//! Owns: one verification guard per producer id of one partition, a pure
//! table (no I/O). The leader starts a verification ([`begin`]) before it
//! asks the coordinator, and appends the batch only while its guard still
//! [`holds`]; a marker for the producer ([`clear`]) ends every guard of that
//! producer, so a write whose transaction ended while the coordinator was
//! being asked cannot open a transaction that no coordinator will ever
//! end (the "hanging transaction").
//!
//! Invariants: at most one guard per producer id (a newer verification
//! replaces the older, which then no longer holds); a guard id is never
//! reused within one table; the table holds no more producers than have a
//! verification in flight (each guard is ended by its append, its
//! failure, its caller being dropped, or a marker).
//!
//! [`begin`]: TxnVerifications::begin
//! [`holds`]: TxnVerifications::holds
//! [`clear`]: TxnVerifications::clear

use std::collections::HashMap;

/// One verification in flight: its producer and its guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerificationGuard {
    pub producer_id: i64,
    id: u64,
}

/// The verification guards of one partition.
#[derive(Debug, Default)]
pub struct TxnVerifications {
    guards: HashMap<i64, u64>,
    next_id: u64,
}

impl TxnVerifications {
    /// Starts a verification for `producer_id`, replacing any earlier one
    /// of the same producer.
    pub fn begin(&mut self, producer_id: i64) -> VerificationGuard {
        self.next_id += 1;
        self.guards.insert(producer_id, self.next_id);
        VerificationGuard {
            producer_id,
            id: self.next_id,
        }
    }

    /// True while `guard` is its producer's current guard: no marker and
    /// no newer verification came since it began.
    pub fn holds(&self, guard: VerificationGuard) -> bool {
        self.guards.get(&guard.producer_id) == Some(&guard.id)
    }

    /// Ends `guard` (its batch was appended or refused, or its caller gave
    /// up); a newer guard of the same producer stays.
    pub fn end(&mut self, guard: VerificationGuard) {
        if self.holds(guard) {
            self.guards.remove(&guard.producer_id);
        }
    }

    /// A marker for `producer_id` was written: its transaction here ended,
    /// and so does any verification of it.
    pub fn clear(&mut self, producer_id: i64) {
        self.guards.remove(&producer_id);
    }

    /// Verifications in flight.
    pub fn len(&self) -> usize {
        self.guards.len()
    }

    /// True when none is in flight.
    pub fn is_empty(&self) -> bool {
        self.guards.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guard_holds_until_its_append_ends_it() {
        let mut v = TxnVerifications::default();
        let g = v.begin(7);
        assert!(v.holds(g));
        v.end(g);
        assert!(!v.holds(g));
        assert!(v.is_empty());
    }

    #[test]
    fn a_marker_ends_the_producers_guard_and_no_other() {
        let mut v = TxnVerifications::default();
        let a = v.begin(7);
        let b = v.begin(8);
        v.clear(7);
        assert!(!v.holds(a), "a marker came while 7 was being verified");
        assert!(v.holds(b));
        assert_eq!(v.len(), 1);
    }

    #[test]
    fn a_newer_verification_replaces_the_older() {
        let mut v = TxnVerifications::default();
        let old = v.begin(7);
        let new = v.begin(7);
        assert!(!v.holds(old));
        assert!(v.holds(new));
        // The older one ending leaves the newer in place.
        v.end(old);
        assert!(v.holds(new));
        assert_eq!(v.len(), 1);
    }

    #[test]
    fn a_guard_begun_after_a_marker_holds() {
        let mut v = TxnVerifications::default();
        let old = v.begin(7);
        v.clear(7);
        let new = v.begin(7);
        assert!(!v.holds(old));
        assert!(v.holds(new));
    }
}
