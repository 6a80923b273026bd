//! One partition of `__transaction_state` as the transaction coordinator
//! uses it: the writer that makes a record durable (and replicated) before
//! it takes effect, and replay at load.
//!
//! Owns: writing one record at a time (a write waits for the one before
//! it: the coordinator has at most one write in flight per transactional
//! id, and ids are few next to offsets), and replaying the partition's
//! records, a compacted log, into the coordinator.
//!
//! Invariant: a record is applied only once durable on every in-sync
//! replica; its caller learns the outcome only then.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use bytes::BytesMut;
use glommio::sync::Semaphore;
use sluice_core::batch::{BatchBuilder, BatchIter};
use sluice_core::records::RecordIter;
use sluice_core::txn::coordinator::TxnCoordinator;
use sluice_core::txn::records::TxnRecord;
use sluice_core::{ErrorCode, PartitionId};

use crate::env::Env;
use crate::shard::{settle_coordinator_write, OwnedPartition};

/// How long a write waits for the in-sync replicas.
const WRITE_TIMEOUT_MS: u64 = 5_000;
/// Bytes read per step of a replay.
const REPLAY_READ_BYTES: usize = 1024 * 1024;

/// A loaded partition of `__transaction_state`.
pub struct TxnLog {
    partition: PartitionId,
    owned: Rc<OwnedPartition>,
    /// One write at a time.
    turn: Semaphore,
    stopped: Cell<bool>,
    env: Rc<dyn Env>,
}

impl TxnLog {
    pub fn new(partition: PartitionId, owned: Rc<OwnedPartition>, env: Rc<dyn Env>) -> TxnLog {
        TxnLog {
            partition,
            owned,
            turn: Semaphore::new(1),
            stopped: Cell::new(false),
            env,
        }
    }

    /// The leader epoch this coordinator writes in (Kafka's coordinator
    /// epoch, carried in its markers), or `None` once it no longer leads.
    pub fn coordinator_epoch(&self) -> Option<i32> {
        self.owned.leads_at()
    }

    /// True once stopped (the partition moved away).
    pub fn is_stopped(&self) -> bool {
        self.stopped.get()
    }

    /// Applies every record of the partition to `coordinator`, oldest
    /// first; the records read and those that did not decode (skipped).
    pub async fn replay(
        &self,
        coordinator: &RefCell<TxnCoordinator>,
    ) -> Result<(u64, u64), String> {
        let log = &self.owned.log;
        let end = log.log_end_offset();
        let mut offset = log.log_start_offset();
        let (mut records, mut skipped) = (0u64, 0u64);
        while offset < end {
            let chunks = log
                .read(offset, REPLAY_READ_BYTES, end)
                .await
                .map_err(|e| e.to_string())?;
            if chunks.is_empty() {
                break;
            }
            for chunk in chunks {
                for batch in BatchIter::new(chunk) {
                    let batch = batch.map_err(|e| e.to_string())?;
                    offset = batch.next_offset();
                    let Ok(iter) = RecordIter::new(&batch) else {
                        skipped += batch.records_count().max(0) as u64;
                        continue;
                    };
                    for record in iter {
                        records += 1;
                        let decoded = record.map_err(|e| e.to_string()).and_then(|r| {
                            let key = r.key.ok_or("a record without a key")?;
                            TxnRecord::decode(&key, r.value.as_deref()).map_err(|e| e.to_string())
                        });
                        match decoded {
                            Ok(record) => coordinator.borrow_mut().apply(record),
                            Err(e) => {
                                skipped += 1;
                                tracing::warn!(partition = self.partition, offset, error = %e, "skipped an undecodable transaction record");
                            }
                        }
                    }
                }
            }
        }
        Ok((records, skipped))
    }

    /// Writes `record` durably on every in-sync replica.
    /// NOT_COORDINATOR once this partition is no longer led here.
    pub async fn write(&self, record: &TxnRecord) -> Result<(), ErrorCode> {
        let _turn = self
            .turn
            .acquire_permit(1)
            .await
            .map_err(|_| ErrorCode::NotCoordinator)?;
        if self.stopped.get() {
            return Err(ErrorCode::NotCoordinator);
        }
        let epoch = self.owned.leads_at().ok_or(ErrorCode::NotCoordinator)?;
        let key = record.encode_key();
        let value = record.encode_value();
        let bytes = BatchBuilder::new(self.env.now_ms())
            .record(Some(&key), value.as_deref())
            .build();
        // A freshly built batch is its buffer's only owner: no copy here.
        let bytes = bytes
            .try_into_mut()
            .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
        self.owned
            .log
            .append_coordinator(bytes, epoch, self.env.now_ms())
            .await
            .map_err(|e| e.error_code())?;
        settle_coordinator_write(&self.owned, &*self.env, WRITE_TIMEOUT_MS)
            .await
            .map_err(|e| match e {
                ErrorCode::NotLeaderOrFollower => ErrorCode::NotCoordinator,
                other => other,
            })
    }

    /// Stops the writer: later writes fail with NOT_COORDINATOR.
    pub fn stop(&self) {
        self.stopped.set(true);
        self.turn.close();
    }
}
