//! Idempotent producer state of one partition: who wrote which sequences.
//!
//! Owns: Kafka's sequence rules for idempotent producers, as a pure table
//! (no I/O, no clock: times are arguments). For each producer id it keeps the
//! current epoch and the sequence ranges and offsets of its last
//! [`BATCHES_PER_PRODUCER`] batches, so a retried batch is recognised and
//! answered with its original offset instead of being written twice.
//!
//! Rules (as Kafka's broker applies them):
//! - a batch without a producer id (-1) is not checked;
//! - an epoch below the producer's current one is fenced
//!   (INVALID_PRODUCER_EPOCH);
//! - a new epoch, or a producer the partition has not seen, must start at
//!   sequence 0 (else OUT_OF_ORDER_SEQUENCE_NUMBER);
//! - within an epoch, a batch whose sequence range equals one of the last
//!   five is a duplicate; otherwise its first sequence must follow the last
//!   batch's last sequence (wrapping after i32::MAX), else
//!   OUT_OF_ORDER_SEQUENCE_NUMBER.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::error::ErrorCode;
use crate::txn::marker::ControlType;
use crate::txn::partition::{AbortedTxn, PartitionTxns};
use crate::types::Offset;

/// Batches remembered per producer (Kafka's max.in.flight for idempotence).
pub const BATCHES_PER_PRODUCER: usize = 5;

/// One remembered batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerBatch {
    pub first_sequence: i32,
    pub last_sequence: i32,
    pub first_offset: Offset,
    pub last_offset: Offset,
}

/// One producer's state in a partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerEntry {
    pub epoch: i16,
    /// Oldest first; at most [`BATCHES_PER_PRODUCER`].
    pub batches: VecDeque<ProducerBatch>,
    /// When this producer last appended (ms), for expiry.
    pub last_append_ms: i64,
    /// The coordinator epoch of its last transaction marker, or -1.
    pub coordinator_epoch: i32,
}

/// What to do with an incoming batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Write it.
    Append,
    /// Already written: answer with these offsets, write nothing.
    Duplicate {
        first_offset: Offset,
        last_offset: Offset,
    },
    /// Refuse it with this error.
    Reject(ErrorCode),
}

/// The producer state of one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerStateTable {
    producers: HashMap<i64, ProducerEntry>,
    /// Transactions of the partition's transactional producers.
    txns: PartitionTxns,
}

/// The sequence that follows `sequence` (Kafka wraps to 0 after i32::MAX).
pub fn next_sequence(sequence: i32) -> i32 {
    if sequence == i32::MAX {
        0
    } else {
        sequence + 1
    }
}

impl ProducerStateTable {
    /// Producers known.
    pub fn len(&self) -> usize {
        self.producers.len()
    }
    /// True when no producer is known.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }
    /// One producer's state.
    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// Every producer and its state (any order), for snapshots.
    pub fn entries(&self) -> impl Iterator<Item = (i64, &ProducerEntry)> {
        self.producers.iter().map(|(id, e)| (*id, e))
    }

    /// The epoch of `producer_id`'s transaction open here, if one is: the
    /// producer's epoch, as an open transaction's data batches are the
    /// producer's last (a marker closes it, and no write joins it from
    /// another epoch). A producer not known (expiry keeps those with a
    /// transaction open) counts as at the newest epoch.
    pub fn open_txn_epoch(&self, producer_id: i64) -> Option<i16> {
        if !self.txns.is_open(producer_id) {
            return None;
        }
        Some(
            self.producers
                .get(&producer_id)
                .map_or(i16::MAX, |entry| entry.epoch),
        )
    }

    /// The partition's transactions.
    pub fn txns(&self) -> &PartitionTxns {
        &self.txns
    }

    /// The partition's transactions, to update.
    pub fn txns_mut(&mut self) -> &mut PartitionTxns {
        &mut self.txns
    }

    /// Puts back the transactions read from a snapshot.
    pub fn restore_txns(&mut self, txns: PartitionTxns) {
        self.txns = txns;
    }

    /// Checks a transaction marker of `producer_id` at `epoch`, from a
    /// coordinator at `coordinator_epoch` (-1: a batch that carries none),
    /// as Kafka's partition leader does: a marker from an older producer
    /// epoch is fenced (INVALID_PRODUCER_EPOCH), and one from a coordinator
    /// older than the last that wrote a marker for the producer
    /// (TRANSACTION_COORDINATOR_FENCED: a deposed coordinator's late
    /// marker must not end the producer's current transaction).
    pub fn check_marker(
        &self,
        producer_id: i64,
        epoch: i16,
        coordinator_epoch: i32,
    ) -> Result<(), ErrorCode> {
        match self.producers.get(&producer_id) {
            Some(entry) if epoch < entry.epoch => Err(ErrorCode::InvalidProducerEpoch),
            Some(entry)
                if coordinator_epoch >= 0 && coordinator_epoch < entry.coordinator_epoch =>
            {
                Err(ErrorCode::TransactionCoordinatorFenced)
            }
            _ => Ok(()),
        }
    }

    /// Records an appended marker at `offset` (its type and its
    /// coordinator's epoch): the producer's transaction
    /// here ends, and a newer epoch (the coordinator fenced the producer)
    /// becomes the producer's, whose next batch then starts at sequence 0.
    /// The aborted transaction, when the marker aborted one.
    pub fn record_marker(
        &mut self,
        producer_id: i64,
        epoch: i16,
        (control, coordinator_epoch): (ControlType, i32),
        offset: Offset,
        append_ms: i64,
    ) -> Option<AbortedTxn> {
        let entry = self
            .producers
            .entry(producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch,
                batches: VecDeque::new(),
                last_append_ms: append_ms,
                coordinator_epoch: -1,
            });
        entry.coordinator_epoch = entry.coordinator_epoch.max(coordinator_epoch);
        if epoch > entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        entry.last_append_ms = entry.last_append_ms.max(append_ms);
        self.txns.record_marker(producer_id, control, offset)
    }

    /// Puts back a producer's state read from a snapshot.
    pub fn restore(&mut self, producer_id: i64, entry: ProducerEntry) {
        self.producers.insert(producer_id, entry);
    }

    /// Checks a batch of `producer_id`/`epoch` covering sequences
    /// `first_sequence..=last_sequence`.
    pub fn check(
        &self,
        producer_id: i64,
        epoch: i16,
        first_sequence: i32,
        last_sequence: i32,
    ) -> SequenceCheck {
        if producer_id < 0 {
            return SequenceCheck::Append;
        }
        if first_sequence < 0 || last_sequence < 0 {
            return SequenceCheck::Reject(ErrorCode::InvalidRecord);
        }
        let Some(entry) = self.producers.get(&producer_id) else {
            return if first_sequence == 0 {
                SequenceCheck::Append
            } else {
                SequenceCheck::Reject(ErrorCode::OutOfOrderSequenceNumber)
            };
        };
        if epoch < entry.epoch {
            return SequenceCheck::Reject(ErrorCode::InvalidProducerEpoch);
        }
        if epoch > entry.epoch {
            return if first_sequence == 0 {
                SequenceCheck::Append
            } else {
                SequenceCheck::Reject(ErrorCode::OutOfOrderSequenceNumber)
            };
        }
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|b| b.first_sequence == first_sequence && b.last_sequence == last_sequence)
        {
            return SequenceCheck::Duplicate {
                first_offset: dup.first_offset,
                last_offset: dup.last_offset,
            };
        }
        match entry.batches.back() {
            Some(last) if first_sequence != next_sequence(last.last_sequence) => {
                SequenceCheck::Reject(ErrorCode::OutOfOrderSequenceNumber)
            }
            // An entry with no batch (restored with nothing) takes any start.
            _ => SequenceCheck::Append,
        }
    }

    /// Records an appended batch. Call only after `check` said `Append`.
    pub fn record(&mut self, producer_id: i64, epoch: i16, batch: ProducerBatch, append_ms: i64) {
        if producer_id < 0 {
            return;
        }
        let entry = self
            .producers
            .entry(producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch,
                batches: VecDeque::with_capacity(BATCHES_PER_PRODUCER),
                last_append_ms: append_ms,
                coordinator_epoch: -1,
            });
        if epoch != entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == BATCHES_PER_PRODUCER {
            entry.batches.pop_front();
        }
        entry.batches.push_back(batch);
        entry.last_append_ms = entry.last_append_ms.max(append_ms);
    }

    /// Forgets producers idle for longer than `expiration_ms`
    /// (`transactional.id.expiration.ms` / `producer.id.expiration.ms`).
    /// A producer with an open transaction stays.
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        let txns = &self.txns;
        self.producers
            .retain(|id, e| now_ms - e.last_append_ms <= expiration_ms || txns.is_open(*id));
        before - self.producers.len()
    }

    /// Forgets batches at or above `offset` (the log was truncated there);
    /// producers left with no batch are removed. Transactions are truncated
    /// likewise ([`PartitionTxns::truncate_from`]).
    pub fn truncate_from(&mut self, offset: Offset) {
        self.txns.truncate_from(offset);
        for entry in self.producers.values_mut() {
            entry.batches.retain(|b| b.last_offset < offset);
        }
        self.producers.retain(|_, e| !e.batches.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(first: i32, last: i32, offset: Offset) -> ProducerBatch {
        ProducerBatch {
            first_sequence: first,
            last_sequence: last,
            first_offset: offset,
            last_offset: offset + (last - first) as i64,
        }
    }

    #[test]
    fn sequences_follow_kafka_rules() {
        let mut t = ProducerStateTable::default();
        assert_eq!(t.check(-1, -1, -1, -1), SequenceCheck::Append);
        assert_eq!(
            t.check(7, 0, 3, 4),
            SequenceCheck::Reject(ErrorCode::OutOfOrderSequenceNumber)
        );
        assert_eq!(t.check(7, 0, 0, 4), SequenceCheck::Append);
        t.record(7, 0, batch(0, 4, 100), 1);
        assert_eq!(
            t.check(7, 0, 0, 4),
            SequenceCheck::Duplicate {
                first_offset: 100,
                last_offset: 104
            }
        );
        assert_eq!(
            t.check(7, 0, 6, 6),
            SequenceCheck::Reject(ErrorCode::OutOfOrderSequenceNumber)
        );
        assert_eq!(t.check(7, 0, 5, 9), SequenceCheck::Append);
        for (i, first) in [5, 10, 15, 20, 25].into_iter().enumerate() {
            t.record(7, 0, batch(first, first + 4, 200 + 10 * i as i64), 2);
        }
        // Only the last five batches are remembered.
        assert_eq!(
            t.check(7, 0, 0, 4),
            SequenceCheck::Reject(ErrorCode::OutOfOrderSequenceNumber)
        );
        assert!(matches!(
            t.check(7, 0, 5, 9),
            SequenceCheck::Duplicate {
                first_offset: 200,
                ..
            }
        ));
        assert_eq!(t.check(7, 0, 30, 30), SequenceCheck::Append);
        // Epochs: older is fenced, newer restarts at 0.
        assert_eq!(
            t.check(7, -1, 30, 30),
            SequenceCheck::Reject(ErrorCode::InvalidProducerEpoch)
        );
        assert_eq!(
            t.check(7, 1, 30, 30),
            SequenceCheck::Reject(ErrorCode::OutOfOrderSequenceNumber)
        );
        assert_eq!(t.check(7, 1, 0, 0), SequenceCheck::Append);
        t.record(7, 1, batch(0, 0, 300), 3);
        assert_eq!(t.get(7).map(|e| (e.epoch, e.batches.len())), Some((1, 1)));
    }

    #[test]
    fn sequences_wrap_after_i32_max() {
        let mut t = ProducerStateTable::default();
        t.record(1, 0, batch(0, 0, 0), 0);
        t.record(
            1,
            0,
            ProducerBatch {
                first_sequence: i32::MAX - 1,
                last_sequence: i32::MAX,
                first_offset: 1,
                last_offset: 2,
            },
            0,
        );
        assert_eq!(t.check(1, 0, 0, 3), SequenceCheck::Append);
    }

    #[test]
    fn expiry_and_truncation_forget_producers() {
        let mut t = ProducerStateTable::default();
        t.record(1, 0, batch(0, 0, 10), 1_000);
        t.record(2, 0, batch(0, 0, 11), 5_000);
        t.record(2, 0, batch(1, 1, 12), 5_000);
        assert_eq!(t.expire(6_000, 2_000), 1);
        assert!(t.get(1).is_none());
        t.truncate_from(12);
        assert_eq!(t.get(2).map(|e| e.batches.len()), Some(1));
        t.truncate_from(0);
        assert!(t.is_empty());
    }
}
