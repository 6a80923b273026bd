//! Persistence of a partition's idempotent producer state.
//!
//! Owns: the producer state snapshot file (`producer.snapshot`, an atomic
//! rkyv checkpoint) and rebuilding the table on open: load the snapshot,
//! drop what lies past the recovered log end, then replay the batch headers
//! from the snapshot's offset to the log end. Snapshots are taken at close,
//! at roll and every `producer_snapshot_interval_bytes` of appends, so the
//! replay reads at most that much of the log.

use std::collections::VecDeque;
use std::path::Path;

use sluice_core::batch::BatchHeader;
use sluice_core::producer_state::{ProducerBatch, ProducerEntry, ProducerStateTable};
use sluice_core::txn::marker::control_marker;
use sluice_core::txn::partition::{AbortedTxn, PartitionTxns, UnstableTxn};
use sluice_core::Offset;

use crate::checkpoint::{self, Checkpoint};
use crate::error::LogResult;
use crate::storage::Storage;

/// Name of the snapshot file inside the partition directory.
pub const PRODUCER_SNAPSHOT_FILE: &str = "producer.snapshot";

/// One producer as stored: (first sequence, last sequence, first offset,
/// last offset) per remembered batch.
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct SnapshotProducer {
    pub producer_id: i64,
    pub epoch: i16,
    pub last_append_ms: i64,
    pub batches: Vec<(i32, i32, i64, i64)>,
    pub coordinator_epoch: i32,
}

/// The snapshot: the table as it was when the log ended at `offset`.
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct ProducerSnapshot {
    pub offset: i64,
    pub producers: Vec<SnapshotProducer>,
    /// Transactions not yet stable: (producer id, first offset, marker
    /// offset or -1 while open).
    pub unstable_txns: Vec<(i64, i64, i64)>,
    /// Aborted transactions whose markers are in the active segment,
    /// oldest marker first: (producer id, first offset, marker offset,
    /// last stable offset after the marker).
    pub aborted_txns: Vec<(i64, i64, i64, i64)>,
}

/// Kind 2 was the snapshot without transactions, kind 3 the one that kept
/// every aborted transaction (before per-segment transaction indexes):
/// neither reads any more (nor kind 3's open transactions without those
/// ended above the high watermark), and the table is rebuilt from the log once,
/// which also writes the sealed segments' transaction indexes.
impl Checkpoint for ProducerSnapshot {
    const KIND: u16 = 4;
}

impl ProducerSnapshot {
    /// No producer and no transaction: what a missing snapshot reads as.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty() && self.unstable_txns.is_empty() && self.aborted_txns.is_empty()
    }
}

/// The snapshot of `table` taken when the log ends at `offset`.
pub fn snapshot_of(table: &ProducerStateTable, offset: Offset) -> ProducerSnapshot {
    let producers = table
        .entries()
        .map(|(producer_id, e)| SnapshotProducer {
            producer_id,
            epoch: e.epoch,
            last_append_ms: e.last_append_ms,
            coordinator_epoch: e.coordinator_epoch,
            batches: e
                .batches
                .iter()
                .map(|b| {
                    (
                        b.first_sequence,
                        b.last_sequence,
                        b.first_offset,
                        b.last_offset,
                    )
                })
                .collect(),
        })
        .collect();
    let txns = table.txns();
    ProducerSnapshot {
        offset,
        producers,
        unstable_txns: txns
            .unstable()
            .map(|(first, t)| (t.producer_id, first, t.marker_offset.unwrap_or(-1)))
            .collect(),
        aborted_txns: txns
            .aborted()
            .map(|t| {
                (
                    t.producer_id,
                    t.first_offset,
                    t.last_offset,
                    t.last_stable_offset,
                )
            })
            .collect(),
    }
}

/// The table a snapshot holds.
pub fn table_of(snapshot: &ProducerSnapshot) -> ProducerStateTable {
    let mut table = ProducerStateTable::default();
    for p in &snapshot.producers {
        let batches: VecDeque<ProducerBatch> = p
            .batches
            .iter()
            .map(
                |&(first_sequence, last_sequence, first_offset, last_offset)| ProducerBatch {
                    first_sequence,
                    last_sequence,
                    first_offset,
                    last_offset,
                },
            )
            .collect();
        table.restore(
            p.producer_id,
            ProducerEntry {
                epoch: p.epoch,
                batches,
                last_append_ms: p.last_append_ms,
                coordinator_epoch: p.coordinator_epoch,
            },
        );
    }
    table.restore_txns(PartitionTxns::restore(
        snapshot
            .unstable_txns
            .iter()
            .map(|&(producer_id, first, marker)| {
                (
                    first,
                    UnstableTxn {
                        producer_id,
                        marker_offset: (marker >= 0).then_some(marker),
                    },
                )
            }),
        snapshot.aborted_txns.iter().map(
            |&(producer_id, first_offset, last_offset, last_stable_offset)| AbortedTxn {
                producer_id,
                first_offset,
                last_offset,
                last_stable_offset,
            },
        ),
    ));
    table
}

/// Records one appended (or replayed) batch in `table`: `batch` holds it
/// (at least its first record, for a marker's control type). A marker ends
/// its producer's transaction; a transactional data batch opens one.
pub fn record_batch(
    table: &mut ProducerStateTable,
    header: &BatchHeader,
    batch: &[u8],
    append_ms: i64,
) {
    if header.producer_id < 0 {
        return;
    }
    if header.is_control() {
        if let Some(marker) = control_marker(header, batch) {
            table.record_marker(
                header.producer_id,
                header.producer_epoch,
                marker,
                header.base_offset,
                append_ms,
            );
        }
        return;
    }
    if header.is_transactional() {
        table
            .txns_mut()
            .record_data(header.producer_id, header.base_offset);
    }
    let batch = ProducerBatch {
        first_sequence: header.base_sequence,
        last_sequence: header.last_sequence(),
        first_offset: header.base_offset,
        last_offset: header.last_offset(),
    };
    table.record(header.producer_id, header.producer_epoch, batch, append_ms);
}

/// Writes the snapshot atomically.
pub async fn write<S: Storage>(
    storage: &S,
    dir: &Path,
    snapshot: &ProducerSnapshot,
    on_disk: &checkpoint::OnDisk,
    absent_reads_as_it: bool,
) -> LogResult<()> {
    let path = dir.join(PRODUCER_SNAPSHOT_FILE);
    checkpoint::write_unless_held(storage, &path, snapshot, on_disk, absent_reads_as_it).await
}

/// Reads the snapshot (noting in `on_disk` what the file holds); a missing
/// or damaged one is `None` (the caller then replays from the log start).
pub async fn read<S: Storage>(
    storage: &S,
    dir: &Path,
    on_disk: &checkpoint::OnDisk,
) -> Option<ProducerSnapshot> {
    let path = dir.join(PRODUCER_SNAPSHOT_FILE);
    match checkpoint::read_noting::<S, ProducerSnapshot>(storage, &path, on_disk).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(dir = ?dir, error = %e, "producer state snapshot damaged; rebuilding from the log");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_round_trip_through_the_checkpoint_frame() {
        let mut table = ProducerStateTable::default();
        for (pid, seqs) in [(1i64, 3), (9, 7)] {
            for s in 0..seqs {
                let batch = ProducerBatch {
                    first_sequence: s,
                    last_sequence: s,
                    first_offset: s as i64,
                    last_offset: s as i64,
                };
                table.record(pid, 2, batch, 77);
            }
        }
        let snapshot = snapshot_of(&table, 42);
        let frame = checkpoint::encode(&snapshot);
        let back: ProducerSnapshot = checkpoint::decode(&frame).expect("decodes");
        assert_eq!(back.offset, 42);
        assert_eq!(table_of(&back), table);
    }
}
