//! The transactions of one partition: which are open, which are not yet
//! stable, which were aborted; and from them the last stable offset.
//!
//! Owns: a pure table (no I/O, offsets as arguments) fed with every
//! appended batch: a transactional producer's first data batch opens its
//! transaction at that offset; its marker closes it (recording the
//! transaction as aborted when the marker says abort).
//!
//! Invariants (Kafka's): a producer has at most one open transaction per
//! partition; the last stable offset (LSO) is the first offset of the
//! oldest transaction that is open or whose marker is not yet below the
//! high watermark, or the high watermark when there is none, so a
//! read_committed consumer never reads a record whose fate is unknown, nor
//! past a marker that could still be truncated away. Aborted transactions
//! are kept in the order of their markers, each with its first offset, its
//! marker's offset and the last stable offset its marker left (Kafka's
//! `.txnindex` entry), for Fetch's `aborted_transactions`. The log keeps
//! here only those whose markers are in its active segment
//! ([`PartitionTxns::forget_before`] at each roll); a sealed segment's are
//! in its transaction index file.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::txn::marker::ControlType;
use crate::types::Offset;

/// An aborted transaction: its producer, its first offset in the
/// partition, its abort marker's offset, and the last stable offset once
/// the marker was written (the first offset of the oldest transaction
/// still open then, or the marker's offset + 1): a reader of offsets below
/// it need look at no later marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: Offset,
    pub last_offset: Offset,
    pub last_stable_offset: Offset,
}

impl AbortedTxn {
    /// True when a read of `[from, to)` must be told of this transaction.
    pub fn overlaps(&self, from: Offset, to: Offset) -> bool {
        self.last_offset >= from && self.first_offset < to
    }

    /// True when no transaction whose marker follows this one's can hold
    /// an offset below `to`: every transaction open when this marker was
    /// written began at or after this entry's last stable offset.
    pub fn completes_reads_below(&self, to: Offset) -> bool {
        self.last_stable_offset >= to
    }
}

/// A transaction not yet stable: open (no marker) or ended by a marker at
/// an offset the high watermark has not passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnstableTxn {
    pub producer_id: i64,
    pub marker_offset: Option<Offset>,
}

/// One partition's transactions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionTxns {
    /// Producer → first offset of its open transaction.
    open: BTreeMap<i64, Offset>,
    /// First offset → the transaction, for every one not yet stable.
    unstable: BTreeMap<Offset, UnstableTxn>,
    /// Aborted transactions, oldest marker first.
    aborted: VecDeque<AbortedTxn>,
}

impl PartitionTxns {
    /// A transactional producer's data batch at `first_offset`: opens its
    /// transaction here unless one is open already.
    pub fn record_data(&mut self, producer_id: i64, first_offset: Offset) {
        if self.open.contains_key(&producer_id) {
            return;
        }
        self.open.insert(producer_id, first_offset);
        self.unstable.insert(
            first_offset,
            UnstableTxn {
                producer_id,
                marker_offset: None,
            },
        );
    }

    /// A marker of `producer_id` at `marker_offset`: closes its open
    /// transaction (a marker for a producer with nothing open here changes
    /// nothing). The aborted transaction, when it was one.
    pub fn record_marker(
        &mut self,
        producer_id: i64,
        control: ControlType,
        marker_offset: Offset,
    ) -> Option<AbortedTxn> {
        let first_offset = self.open.remove(&producer_id)?;
        if let Some(txn) = self.unstable.get_mut(&first_offset) {
            txn.marker_offset = Some(marker_offset);
        }
        if control != ControlType::Abort {
            return None;
        }
        let oldest_open = self.open.values().min().copied();
        let aborted = AbortedTxn {
            producer_id,
            first_offset,
            last_offset: marker_offset,
            last_stable_offset: oldest_open.map_or(marker_offset + 1, |o| o.min(marker_offset + 1)),
        };
        self.aborted.push_back(aborted);
        Some(aborted)
    }

    /// True while `producer_id` has an open transaction here.
    pub fn is_open(&self, producer_id: i64) -> bool {
        self.open.contains_key(&producer_id)
    }

    /// Open transactions: (producer, first offset).
    pub fn open(&self) -> impl Iterator<Item = (i64, Offset)> + '_ {
        self.open.iter().map(|(p, o)| (*p, *o))
    }

    /// The last stable offset under high watermark `hw`. Transactions whose
    /// markers lie below `hw` are stable for good and forgotten here.
    pub fn last_stable_offset(&mut self, hw: Offset) -> Offset {
        self.unstable
            .retain(|_, t| t.marker_offset.is_none_or(|marker| marker >= hw));
        self.first_unstable_offset()
            .map_or(hw, |first| first.min(hw))
    }

    /// The first offset of the oldest transaction not yet stable.
    pub fn first_unstable_offset(&self) -> Option<Offset> {
        self.unstable.keys().next().copied()
    }

    /// The aborted transactions a read of `[from, to)` must be told about:
    /// those whose marker is at or after `from` and that began before `to`.
    pub fn aborted_between(&self, from: Offset, to: Offset) -> Vec<AbortedTxn> {
        let start = self.aborted.partition_point(|t| t.last_offset < from);
        self.aborted
            .iter()
            .skip(start)
            .filter(|t| t.overlaps(from, to))
            .copied()
            .collect()
    }

    /// How many aborted transactions are held here.
    pub fn aborted_len(&self) -> usize {
        self.aborted.len()
    }

    /// The aborted transactions whose markers lie in `[from, to)`, oldest
    /// first (a segment's, to write its transaction index).
    pub fn aborted_with_markers_in(&self, from: Offset, to: Offset) -> Vec<AbortedTxn> {
        self.aborted
            .iter()
            .filter(|t| t.last_offset >= from && t.last_offset < to)
            .copied()
            .collect()
    }

    /// Puts back aborted transactions whose markers precede every one held
    /// here (a sealed segment's, when truncation makes it active again).
    pub fn restore_aborted_before(&mut self, earlier: Vec<AbortedTxn>) {
        let first_held = self.aborted.front().map(|t| t.last_offset);
        for t in earlier.into_iter().rev() {
            if first_held.is_none_or(|f| t.last_offset < f) {
                self.aborted.push_front(t);
            }
        }
    }

    /// Every aborted transaction remembered, oldest marker first.
    pub fn aborted(&self) -> impl Iterator<Item = &AbortedTxn> {
        self.aborted.iter()
    }

    /// Forgets aborted transactions whose markers lie below `offset`
    /// (retention or DeleteRecords removed them, or they are in a sealed
    /// segment's transaction index now).
    pub fn forget_before(&mut self, offset: Offset) {
        while self.aborted.front().is_some_and(|t| t.last_offset < offset) {
            self.aborted.pop_front();
        }
    }

    /// The log was truncated at `offset`: transactions that began there or
    /// later are gone, and those whose marker was there or later are open
    /// again.
    pub fn truncate_from(&mut self, offset: Offset) {
        self.unstable.retain(|first, _| *first < offset);
        self.open.retain(|_, first| *first < offset);
        self.aborted.retain(|t| t.last_offset < offset);
        for (first, txn) in self.unstable.iter_mut() {
            if txn.marker_offset.is_some_and(|m| m >= offset) {
                txn.marker_offset = None;
                self.open.insert(txn.producer_id, *first);
            }
        }
    }

    /// Transactions not yet stable: (first offset, the transaction), open
    /// ones and those whose markers the high watermark has not passed
    /// (a snapshot keeps both: truncation may reopen the latter).
    pub fn unstable(&self) -> impl Iterator<Item = (Offset, UnstableTxn)> + '_ {
        self.unstable.iter().map(|(first, t)| (*first, *t))
    }

    /// Puts back state read from a snapshot: the transactions not yet
    /// stable (first offset, transaction) and the aborted ones, oldest
    /// marker first.
    pub fn restore(
        unstable: impl IntoIterator<Item = (Offset, UnstableTxn)>,
        aborted: impl IntoIterator<Item = AbortedTxn>,
    ) -> PartitionTxns {
        let mut txns = PartitionTxns::default();
        for (first_offset, txn) in unstable {
            if txn.marker_offset.is_none() {
                txns.open.insert(txn.producer_id, first_offset);
            }
            txns.unstable.insert(first_offset, txn);
        }
        txns.aborted = aborted.into_iter().collect();
        txns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lso_stops_at_the_oldest_open_transaction_until_its_marker_is_below_the_hw() {
        let mut t = PartitionTxns::default();
        assert_eq!(t.last_stable_offset(10), 10);
        t.record_data(1, 10);
        t.record_data(1, 12); // the same transaction: still opens at 10
        t.record_data(2, 11);
        assert_eq!(t.last_stable_offset(15), 10);
        assert_eq!(t.record_marker(1, ControlType::Commit, 15), None);
        // The marker is not below the high watermark yet.
        assert_eq!(t.last_stable_offset(15), 10);
        assert_eq!(t.last_stable_offset(16), 11);
        let aborted = t.record_marker(2, ControlType::Abort, 16);
        assert_eq!(
            aborted,
            Some(AbortedTxn {
                producer_id: 2,
                first_offset: 11,
                last_offset: 16,
                last_stable_offset: 17,
            })
        );
        assert_eq!(t.last_stable_offset(17), 17);
        assert!(!t.is_open(2));
        // A marker with nothing open changes nothing.
        assert_eq!(t.record_marker(3, ControlType::Abort, 17), None);
        assert_eq!(t.last_stable_offset(18), 18);
    }

    #[test]
    fn a_read_is_told_of_the_aborted_transactions_it_overlaps() {
        let mut t = PartitionTxns::default();
        for (producer, first, marker) in [(1, 0, 5), (2, 3, 8), (3, 10, 12)] {
            t.record_data(producer, first);
            t.record_marker(producer, ControlType::Abort, marker);
        }
        let ids = |v: Vec<AbortedTxn>| v.iter().map(|a| a.producer_id).collect::<Vec<_>>();
        assert_eq!(ids(t.aborted_between(0, 20)), vec![1, 2, 3]);
        assert_eq!(ids(t.aborted_between(6, 20)), vec![2, 3]);
        assert_eq!(ids(t.aborted_between(6, 10)), vec![2]);
        assert_eq!(ids(t.aborted_between(13, 20)), Vec::<i64>::new());
        t.forget_before(6);
        assert_eq!(ids(t.aborted_between(0, 20)), vec![2, 3]);
    }

    #[test]
    fn an_aborted_entry_keeps_the_last_stable_offset_its_marker_left() {
        let mut t = PartitionTxns::default();
        t.record_data(1, 0);
        t.record_data(2, 3);
        let first = t.record_marker(2, ControlType::Abort, 5).expect("aborted");
        // Producer 1's transaction, open since 0, holds the LSO back.
        assert_eq!(first.last_stable_offset, 0);
        assert!(!first.completes_reads_below(1));
        t.record_marker(1, ControlType::Commit, 6);
        t.record_data(3, 7);
        let second = t.record_marker(3, ControlType::Abort, 8).expect("aborted");
        assert_eq!(second.last_stable_offset, 9);
        assert!(second.completes_reads_below(9));
        assert!(!second.completes_reads_below(10));
        assert_eq!(t.aborted_with_markers_in(6, 9), vec![second]);
        t.forget_before(6);
        assert_eq!(t.aborted_len(), 1);
        t.restore_aborted_before(vec![first, second]);
        assert_eq!(
            t.aborted().copied().collect::<Vec<_>>(),
            vec![first, second]
        );
    }

    #[test]
    fn truncation_reopens_a_transaction_whose_marker_it_removed() {
        let mut t = PartitionTxns::default();
        t.record_data(1, 0);
        t.record_marker(1, ControlType::Abort, 4);
        t.record_data(2, 5);
        t.truncate_from(4);
        assert!(t.is_open(1));
        assert!(!t.is_open(2));
        assert_eq!(t.aborted().count(), 0);
        assert_eq!(t.last_stable_offset(4), 0);
        let restored = PartitionTxns::restore(t.unstable().collect::<Vec<_>>(), Vec::new());
        assert!(restored.is_open(1));
        assert_eq!(restored, t);
    }
}
