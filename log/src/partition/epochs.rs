//! The log's leader epoch cache on disk (Kafka's `leader-epoch-checkpoint`,
//! KIP-101) and the questions replication asks of it.
//!
//! Owns: the `leader-epoch.checkpoint` file, written with the producer
//! snapshot (a roll, a periodic flush, close) and after every truncation.
//! It holds the epochs and how far into the log they were known
//! (`covered_to`); at open the batch headers past that are replayed, so an
//! epoch that started after the last write is never missed.

use sluice_core::replication::EpochCache;

use super::*;
use crate::checkpoint::Checkpoint;

/// Name of the leader epoch file inside the partition directory.
pub const EPOCH_CHECKPOINT_FILE: &str = "leader-epoch.checkpoint";

/// The stored cache: `(epoch, start offset)` pairs and the log end they
/// were written at.
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct EpochCheckpoint {
    pub entries: Vec<(i32, i64)>,
    pub covered_to: i64,
}

impl Checkpoint for EpochCheckpoint {
    const KIND: u16 = 3;
}

impl<S: Storage> PartitionLog<S> {
    /// The stored cache and the offset to replay headers from; an empty
    /// cache from the log start when the file is missing or damaged.
    pub(super) async fn read_epochs(&self) -> (EpochCache, Offset) {
        let path = self.dir.join(EPOCH_CHECKPOINT_FILE);
        match checkpoint::read_noting::<S, EpochCheckpoint>(
            &self.storage,
            &path,
            &self.epochs_on_disk,
        )
        .await
        {
            Ok(Some(c)) => (EpochCache::from_entries(&c.entries), c.covered_to),
            Ok(None) => (EpochCache::default(), self.log_start_offset()),
            Err(e) => {
                tracing::warn!(dir = ?self.dir, error = %e, "leader epoch file damaged; rebuilding it from the log");
                (EpochCache::default(), self.log_start_offset())
            }
        }
    }

    /// Stores the cache as it is at the current log end. Caller holds the
    /// I/O lock.
    pub(super) async fn write_epochs(&self) -> LogResult<()> {
        let value = EpochCheckpoint {
            entries: self.epochs.borrow().entries().to_vec(),
            covered_to: self.log_end_offset(),
        };
        // A missing file reads as no epochs, headers replayed from the log
        // start: no epochs known there need not be written.
        let absent_reads_as_it =
            value.entries.is_empty() && value.covered_to == self.log_start_offset();
        let path = self.dir.join(EPOCH_CHECKPOINT_FILE);
        checkpoint::write_unless_held(
            &self.storage,
            &path,
            &value,
            &self.epochs_on_disk,
            absent_reads_as_it,
        )
        .await
    }

    /// A leader took the lead at `epoch`: its epoch starts at the log end,
    /// stored at once, so OffsetForLeaderEpoch answers for it before it
    /// appended anything (Kafka assigns it when it becomes leader).
    pub async fn start_epoch(&self, epoch: LeaderEpoch) -> LogResult<()> {
        self.check_writable()?;
        let _permit = self
            .io_lock
            .acquire_permit(1)
            .await
            .map_err(|_| LogError::Closed)?;
        if !self
            .epochs
            .borrow_mut()
            .assign(epoch, self.log_end_offset())
        {
            return Ok(());
        }
        match self.write_epochs().await {
            Ok(()) => Ok(()),
            Err(e) => self.fail(e),
        }
    }

    /// The epochs of this log and where each starts.
    pub fn leader_epochs(&self) -> EpochCache {
        self.epochs.borrow().clone()
    }

    /// The newest epoch that appended here, if any.
    pub fn latest_epoch(&self) -> Option<LeaderEpoch> {
        self.epochs.borrow().latest().map(|(e, _)| e)
    }

    /// OffsetForLeaderEpoch on this log: see [`EpochCache::end_offset_for`].
    pub fn end_offset_for_epoch(&self, epoch: LeaderEpoch) -> (LeaderEpoch, Offset) {
        self.epochs
            .borrow()
            .end_offset_for(epoch, self.log_end_offset())
    }
}
