//! The leader epoch cache: for each leader epoch that appended to a
//! partition's log, the offset of its first batch (Kafka's
//! `leader-epoch-checkpoint`, KIP-101).
//!
//! Invariants: epochs and start offsets both strictly increase along the
//! list; no entry starts at or past the log end (truncation removes them).

use serde::{Deserialize, Serialize};

use crate::{LeaderEpoch, Offset};

/// No epoch (Kafka's `UNDEFINED_EPOCH`).
pub const UNDEFINED_EPOCH: LeaderEpoch = -1;
/// No offset (Kafka's `UNDEFINED_EPOCH_OFFSET`).
pub const UNDEFINED_OFFSET: Offset = -1;

/// Leader epochs and where each starts, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochCache {
    entries: Vec<(LeaderEpoch, Offset)>,
}

impl EpochCache {
    /// A cache holding `entries`, assigned in order (a damaged list
    /// loses its tail at the first epoch that does not grow).
    pub fn from_entries(entries: &[(LeaderEpoch, Offset)]) -> EpochCache {
        let mut cache = EpochCache::default();
        for &(epoch, start) in entries {
            if !cache.assign(epoch, start) {
                break;
            }
        }
        cache
    }

    pub fn entries(&self) -> &[(LeaderEpoch, Offset)] {
        &self.entries
    }

    /// The newest epoch and its start offset.
    pub fn latest(&self) -> Option<(LeaderEpoch, Offset)> {
        self.entries.last().copied()
    }

    /// Records that `epoch` starts at `offset` (its first batch was
    /// appended there, or a leader took the lead with its log ending
    /// there). Only an epoch newer than the latest is recorded; entries
    /// starting at or past `offset` (epochs that never appended) give way.
    /// `false` when nothing changed.
    pub fn assign(&mut self, epoch: LeaderEpoch, offset: Offset) -> bool {
        if epoch < 0 || offset < 0 || self.latest().is_some_and(|(latest, _)| epoch <= latest) {
            return false;
        }
        self.entries.retain(|&(_, start)| start < offset);
        self.entries.push((epoch, offset));
        true
    }

    /// The log was cut at `end`: epochs starting at or after it go.
    pub fn truncate_from(&mut self, end: Offset) {
        self.entries.retain(|&(_, start)| start < end);
    }

    /// The log was emptied and restarts at `start`.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// OffsetForLeaderEpoch's answer for `requested` on a log ending at
    /// `log_end`: the largest epoch at or below it that this log has, and
    /// the offset where the epoch after it starts (the log end for the
    /// latest epoch); `(UNDEFINED_EPOCH, UNDEFINED_OFFSET)` for an epoch
    /// newer than any here or when the cache is empty.
    pub fn end_offset_for(&self, requested: LeaderEpoch, log_end: Offset) -> (LeaderEpoch, Offset) {
        if requested < 0 {
            return (UNDEFINED_EPOCH, UNDEFINED_OFFSET);
        }
        if let Some((latest, _)) = self.latest() {
            if latest == requested {
                return (latest, log_end);
            }
        }
        let higher = self.entries.iter().find(|&&(e, _)| e > requested);
        let Some(&(_, higher_start)) = higher else {
            return (UNDEFINED_EPOCH, UNDEFINED_OFFSET);
        };
        match self.entries.iter().rev().find(|&&(e, _)| e <= requested) {
            Some(&(floor, _)) => (floor, higher_start),
            None => (requested, higher_start),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assigns_only_newer_epochs_at_later_offsets() {
        let mut c = EpochCache::default();
        assert!(c.assign(0, 0));
        assert!(!c.assign(0, 10));
        assert!(c.assign(2, 10));
        assert!(!c.assign(1, 20));
        assert!(c.assign(3, 10), "epoch 2 never appended");
        assert_eq!(c.entries(), &[(0, 0), (3, 10)]);
    }

    #[test]
    fn end_offsets_follow_kafka() {
        let c = EpochCache::from_entries(&[(1, 0), (3, 10), (5, 20)]);
        assert_eq!(c.end_offset_for(5, 30), (5, 30));
        assert_eq!(c.end_offset_for(3, 30), (3, 20));
        assert_eq!(c.end_offset_for(4, 30), (3, 20));
        assert_eq!(c.end_offset_for(0, 30), (0, 0));
        assert_eq!(c.end_offset_for(6, 30), (UNDEFINED_EPOCH, UNDEFINED_OFFSET));
        assert_eq!(
            c.end_offset_for(-1, 30),
            (UNDEFINED_EPOCH, UNDEFINED_OFFSET)
        );
        assert_eq!(
            EpochCache::default().end_offset_for(0, 0),
            (UNDEFINED_EPOCH, UNDEFINED_OFFSET)
        );
    }

    #[test]
    fn truncation_drops_epochs_past_the_end_and_damage_keeps_the_good_head() {
        let mut c = EpochCache::from_entries(&[(1, 0), (3, 10), (5, 20)]);
        c.truncate_from(20);
        assert_eq!(c.latest(), Some((3, 10)));
        c.truncate_from(10);
        assert_eq!(c.latest(), Some((1, 0)));
        let damaged = EpochCache::from_entries(&[(1, 0), (3, 10), (2, 30), (6, 40)]);
        assert_eq!(damaged.entries(), &[(1, 0), (3, 10)]);
        let backwards = EpochCache::from_entries(&[(1, 0), (3, 10), (6, 5)]);
        assert_eq!(backwards.entries(), &[(1, 0), (6, 5)]);
    }
}
