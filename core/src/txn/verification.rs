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
//! One marker is spared: a guard begun while the producer's transaction of
//! an older epoch is still open here (under transaction version 2 the
//! next transaction's first write can overtake the last one's marker)
//! outlives the one marker that ends that older transaction, which says
//! nothing about the transaction being verified. The marker after it ends
//! the guard as any other.
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

/// A producer's current guard.
#[derive(Debug, Clone, Copy)]
struct Current {
    id: u64,
    /// The next marker ends the producer's older transaction, open here
    /// when the guard began, and leaves the guard in place.
    spares_one_marker: bool,
}

/// The verification guards of one partition.
#[derive(Debug, Default)]
pub struct TxnVerifications {
    guards: HashMap<i64, Current>,
    next_id: u64,
}

impl TxnVerifications {
    /// Starts a verification for `producer_id`, replacing any earlier one
    /// of the same producer. `older_txn_open`: a transaction of the
    /// producer at an older epoch than the write's is open here, and the
    /// marker that ends it does not end this guard.
    pub fn begin(&mut self, producer_id: i64, older_txn_open: bool) -> VerificationGuard {
        self.next_id += 1;
        self.guards.insert(
            producer_id,
            Current {
                id: self.next_id,
                spares_one_marker: older_txn_open,
            },
        );
        VerificationGuard {
            producer_id,
            id: self.next_id,
        }
    }

    /// True while `guard` is its producer's current guard: no marker and
    /// no newer verification came since it began.
    pub fn holds(&self, guard: VerificationGuard) -> bool {
        self.guards
            .get(&guard.producer_id)
            .is_some_and(|current| current.id == guard.id)
    }

    /// Ends `guard` (its batch was appended or refused, or its caller gave
    /// up); a newer guard of the same producer stays.
    pub fn end(&mut self, guard: VerificationGuard) {
        if self.holds(guard) {
            self.guards.remove(&guard.producer_id);
        }
    }

    /// A marker for `producer_id` was written: its transaction here ended,
    /// and so does any verification of it, unless the marker is the one
    /// its guard spares (it ended the older transaction).
    pub fn clear(&mut self, producer_id: i64) {
        match self.guards.get_mut(&producer_id) {
            Some(current) if current.spares_one_marker => current.spares_one_marker = false,
            Some(_) => {
                self.guards.remove(&producer_id);
            }
            None => {}
        }
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
        let g = v.begin(7, false);
        assert!(v.holds(g));
        v.end(g);
        assert!(!v.holds(g));
        assert!(v.is_empty());
    }

    #[test]
    fn a_marker_ends_the_producers_guard_and_no_other() {
        let mut v = TxnVerifications::default();
        let a = v.begin(7, false);
        let b = v.begin(8, false);
        v.clear(7);
        assert!(!v.holds(a), "a marker came while 7 was being verified");
        assert!(v.holds(b));
        assert_eq!(v.len(), 1);
    }

    #[test]
    fn a_newer_verification_replaces_the_older() {
        let mut v = TxnVerifications::default();
        let old = v.begin(7, false);
        let new = v.begin(7, false);
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
        let old = v.begin(7, false);
        v.clear(7);
        let new = v.begin(7, false);
        assert!(!v.holds(old));
        assert!(v.holds(new));
    }

    #[test]
    fn a_guard_begun_over_an_older_open_transaction_outlives_its_marker_only() {
        let mut v = TxnVerifications::default();
        let g = v.begin(7, true);
        v.clear(7);
        assert!(v.holds(g), "that marker ended the older transaction");
        v.clear(7);
        assert!(!v.holds(g), "this one ended the transaction verified");
        assert!(v.is_empty());
    }
}
