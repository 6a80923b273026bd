//! One partition of `__consumer_offsets` as the group coordinator uses it:
//! the writer that makes records durable before they take effect, and
//! replay at load.
//!
//! Owns: the partition's queue of writes (bounded: a full queue makes
//! writers wait), the single task that drains it (several queued writes go
//! out as one append and one fdatasync, whatever the topic's flush policy,
//! then their effects are applied in queue order), and the replay of the
//! partition's records (a compacted log, with holes) into the coordinator.
//! Offsets committed inside a transaction (TxnOffsetCommit) are written in
//! a transactional batch in the producer's name and held by the
//! coordinator until the transaction's marker is written here: a commit
//! marker applies them, an abort drops them; replay does the same.
//! The topic is `cleanup.policy=compact`: the shard's log cleaner keeps the
//! last record of each key (an offset's, a group's) and drops tombstones
//! after `delete.retention.ms`, as Kafka's cleaner does to it.
//!
//! A TxnOffsetCommit's offsets are queued only while the verification
//! its caller began (KIP-890: the transaction coordinator confirmed this
//! partition is in the producer's transaction) still holds: a marker for
//! the producer queued since ends it, so offsets sent after their
//! transaction ended are refused rather than held for a marker that will
//! never come.
//!
//! Invariants: records are applied to the coordinator in the order they
//! were written, only after they are durable; a write's caller learns the
//! outcome only then.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use glommio::channels::local_channel::{self, LocalSender};
use sluice_core::batch::{BatchBuilder, BatchIter};
use sluice_core::group::coordinator::GroupCoordinator;
use sluice_core::group::records::OffsetsRecord;
use sluice_core::group::write_error_for_client;
use sluice_core::records::RecordIter;
use sluice_core::txn::marker::{control_type, ControlType, Marker};
use sluice_core::txn::verification::{TxnVerifications, VerificationGuard};
use sluice_core::{ErrorCode, PartitionId};

use super::GroupHome;
use crate::env::Env;
use crate::notify::Notify;
use crate::shard::{settle_coordinator_write, OwnedPartition};

/// Writes queued at most per partition before writers wait.
const QUEUE_MAX: usize = 1024;
/// Bytes of records per batch written.
const BATCH_BYTES_MAX: usize = 256 * 1024;
/// How long a write waits for the in-sync replicas
/// (`offsets.commit.timeout.ms`).
const COMMIT_TIMEOUT_MS: u64 = 5_000;
/// Bytes read per step of a replay.
const REPLAY_READ_BYTES: usize = 1024 * 1024;

/// What one queued write holds.
enum Entry {
    /// Records written, then `apply` applied.
    Records {
        write: Vec<OffsetsRecord>,
        apply: Vec<OffsetsRecord>,
    },
    /// Offsets committed in a transaction (TxnOffsetCommit): written in a
    /// transactional batch in the producer's name, then held by the
    /// coordinator until the transaction's marker.
    TxnOffsets {
        producer_id: i64,
        epoch: i16,
        records: Vec<OffsetsRecord>,
    },
    /// A transaction's marker: written, then the producer's held offsets
    /// take effect (commit) or are dropped (abort).
    Marker(Marker),
}

struct WriteJob {
    entry: Entry,
    done: LocalSender<Result<(), ErrorCode>>,
}

/// What a replay found.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReplayReport {
    pub records: u64,
    /// Records that did not decode (counted and left out).
    pub skipped: u64,
}

/// A loaded partition of `__consumer_offsets`.
pub struct OffsetsLog {
    partition: PartitionId,
    owned: Rc<OwnedPartition>,
    queue: RefCell<VecDeque<WriteJob>>,
    work: Notify,
    space: Notify,
    stopped: Cell<bool>,
    env: Rc<dyn Env>,
    /// TxnOffsetCommits being verified with their transaction coordinator.
    verifications: RefCell<TxnVerifications>,
}

impl OffsetsLog {
    pub fn new(partition: PartitionId, owned: Rc<OwnedPartition>, env: Rc<dyn Env>) -> OffsetsLog {
        OffsetsLog {
            partition,
            owned,
            queue: RefCell::new(VecDeque::new()),
            work: Notify::default(),
            space: Notify::default(),
            stopped: Cell::new(false),
            env,
            verifications: RefCell::new(TxnVerifications::default()),
        }
    }

    /// Starts verifying a TxnOffsetCommit of `producer_id`: the guard to
    /// write its offsets with ([`OffsetsLog::write_txn_offsets`]), which
    /// holds until a marker for the producer is queued here.
    pub fn begin_txn_verification(&self, producer_id: i64) -> VerificationGuard {
        // No older transaction's marker is spared: a TxnOffsetCommit
        // follows the producer's AddOffsetsToTxn, which waits until the
        // last transaction's markers are all written.
        self.verifications.borrow_mut().begin(producer_id, false)
    }

    /// Ends a verification (its offsets written or refused, or its caller
    /// gone).
    pub fn end_txn_verification(&self, guard: VerificationGuard) {
        self.verifications.borrow_mut().end(guard);
    }

    /// Applies every record of the partition to `coordinator`, oldest
    /// first.
    pub async fn replay(
        &self,
        coordinator: &RefCell<GroupCoordinator>,
        now_ms: i64,
    ) -> Result<ReplayReport, String> {
        let log = &self.owned.log;
        let end = log.log_end_offset();
        let mut offset = log.log_start_offset();
        let mut report = ReplayReport::default();
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
                    report.records += batch.records_count().max(0) as u64;
                    let header = batch.header();
                    if header.is_control() {
                        if let Some(control) = control_type(&header, batch.bytes()) {
                            coordinator.borrow_mut().end_txn_offsets(
                                header.producer_id,
                                control == ControlType::Commit,
                                now_ms,
                            );
                        }
                        continue;
                    }
                    let held = header.is_transactional().then_some(header.producer_id);
                    let Ok(records) = RecordIter::new(&batch) else {
                        // We write only uncompressed batches; anything else
                        // is not ours to interpret.
                        report.skipped += batch.records_count().max(0) as u64;
                        continue;
                    };
                    let mut c = coordinator.borrow_mut();
                    for record in records {
                        let decoded = record.map_err(|e| e.to_string()).and_then(|r| {
                            let key = r.key.ok_or("a record without a key")?;
                            OffsetsRecord::decode(&key, r.value.as_deref())
                                .map_err(|e| e.to_string())
                        });
                        match decoded {
                            Ok(record) => match held {
                                Some(producer_id) => c.add_txn_offsets(producer_id, vec![record]),
                                None => c.apply(record, now_ms),
                            },
                            Err(e) => {
                                report.skipped += 1;
                                tracing::warn!(partition = self.partition, offset, error = %e, "skipped an undecodable group record");
                            }
                        }
                    }
                }
            }
        }
        Ok(report)
    }

    /// Writes `write` durably, then applies `apply` to the coordinator.
    /// Waits while the queue is full. The error, as the group's client is
    /// told it ([`write_error_for_client`]).
    pub async fn write(
        &self,
        write: Vec<OffsetsRecord>,
        apply: Vec<OffsetsRecord>,
    ) -> Result<(), ErrorCode> {
        self.enqueue(Entry::Records { write, apply })
            .await
            .map_err(write_error_for_client)
    }

    /// Writes the records `make` gives once the queue has room: `make`
    /// runs right before they are queued, with no wait between, so what it
    /// reads and records (a group's written image) follows queue order.
    /// An empty list still waits for every write queued before it.
    /// `apply` is applied once they are durable, as by [`Self::write`].
    pub async fn write_with(
        &self,
        make: impl FnOnce() -> Vec<OffsetsRecord>,
        apply: Vec<OffsetsRecord>,
    ) -> Result<(), ErrorCode> {
        while self.queue.borrow().len() >= QUEUE_MAX && !self.stopped.get() {
            self.space.changed().await;
        }
        if self.stopped.get() {
            return Err(ErrorCode::NotCoordinator);
        }
        let entry = Entry::Records {
            write: make(),
            apply,
        };
        self.enqueue(entry).await.map_err(write_error_for_client)
    }

    /// Writes offsets committed in `producer_id`'s transaction durably;
    /// they take effect at its commit marker. With `verified`, refused
    /// (INVALID_TXN_STATE, nothing written) once a marker for the producer
    /// was queued since the verification began. The error, as the
    /// group's client is told it.
    pub async fn write_txn_offsets(
        &self,
        producer_id: i64,
        epoch: i16,
        records: Vec<OffsetsRecord>,
        verified: Option<VerificationGuard>,
    ) -> Result<(), ErrorCode> {
        let entry = Entry::TxnOffsets {
            producer_id,
            epoch,
            records,
        };
        let written = self.enqueue_checked(entry, verified).await;
        if let Some(guard) = verified {
            self.end_txn_verification(guard);
        }
        written.map_err(write_error_for_client)
    }

    /// Writes a transaction's marker durably, then applies or drops the
    /// offsets its producer committed in it.
    pub async fn write_marker(&self, marker: Marker) -> Result<(), ErrorCode> {
        self.enqueue(Entry::Marker(marker)).await
    }

    async fn enqueue(&self, entry: Entry) -> Result<(), ErrorCode> {
        self.enqueue_checked(entry, None).await
    }

    /// Queues `entry` once there is room; with `verified`, only if that
    /// guard still holds then (no wait between the check and the queueing,
    /// so no marker can come in between). A marker ends its producer's
    /// verifications as it is queued.
    async fn enqueue_checked(
        &self,
        entry: Entry,
        verified: Option<VerificationGuard>,
    ) -> Result<(), ErrorCode> {
        while self.queue.borrow().len() >= QUEUE_MAX && !self.stopped.get() {
            self.space.changed().await;
        }
        if self.stopped.get() {
            return Err(ErrorCode::NotCoordinator);
        }
        if verified.is_some_and(|guard| !self.verifications.borrow().holds(guard)) {
            return Err(ErrorCode::InvalidTxnState);
        }
        if let Entry::Marker(marker) = &entry {
            self.verifications.borrow_mut().clear(marker.producer_id);
        }
        let (done, result) = local_channel::new_bounded(1);
        self.queue.borrow_mut().push_back(WriteJob { entry, done });
        self.work.notify_all();
        result
            .recv()
            .await
            .unwrap_or(Err(ErrorCode::NotCoordinator))
    }

    /// Stops the writer; queued and later writes fail with NOT_COORDINATOR.
    pub fn stop(&self) {
        self.stopped.set(true);
        self.work.notify_all();
        self.space.notify_all();
    }

    /// The writer task: drains the queue until stopped.
    pub async fn run(self: Rc<Self>, home: Rc<GroupHome>) {
        loop {
            if self.stopped.get() {
                for job in self.queue.borrow_mut().drain(..) {
                    let _ = job.done.try_send(Err(ErrorCode::NotCoordinator));
                }
                return;
            }
            if self.queue.borrow().is_empty() {
                self.work.changed().await;
                continue;
            }
            let jobs: Vec<WriteJob> = self.queue.borrow_mut().drain(..).collect();
            self.space.notify_all();
            let result = self.append(&jobs).await;
            if result.is_ok() {
                let now = self.env.now_ms();
                let mut c = home.coordinator().borrow_mut();
                for job in &jobs {
                    match &job.entry {
                        Entry::Records { apply, .. } => {
                            for record in apply {
                                c.apply(record.clone(), now);
                            }
                        }
                        Entry::TxnOffsets {
                            producer_id,
                            records,
                            ..
                        } => c.add_txn_offsets(*producer_id, records.clone()),
                        Entry::Marker(marker) => c.end_txn_offsets(
                            marker.producer_id,
                            marker.control == ControlType::Commit,
                            now,
                        ),
                    }
                }
            }
            for job in jobs {
                let _ = job.done.try_send(result);
            }
        }
    }

    /// Appends the jobs' records as batches, in queue order (plain records
    /// of neighbouring jobs share batches; a transaction's offsets and a
    /// marker are batches of their own), and fdatasyncs them.
    async fn append(&self, jobs: &[WriteJob]) -> Result<(), ErrorCode> {
        let now = self.env.now_ms();
        let mut written = 0u64;
        let mut batch = BatchBuilder::new(now);
        let mut batch_bytes = 0usize;
        for job in jobs {
            let records = match &job.entry {
                Entry::Records { write, .. } => write,
                special => {
                    if !batch.is_empty() {
                        written += self
                            .append_batch(std::mem::replace(&mut batch, BatchBuilder::new(now)))
                            .await?;
                        batch_bytes = 0;
                    }
                    let bytes = match special {
                        Entry::TxnOffsets {
                            producer_id,
                            epoch,
                            records,
                        } => records
                            .iter()
                            .fold(
                                BatchBuilder::new(now)
                                    .producer(*producer_id, *epoch, -1)
                                    .transactional(),
                                |b, r| b.record(Some(&r.encode_key()), r.encode_value().as_deref()),
                            )
                            .build(),
                        Entry::Marker(marker) => marker.to_batch(now),
                        Entry::Records { .. } => unreachable!("matched above"),
                    };
                    written += self.append_batch_bytes(bytes).await?;
                    continue;
                }
            };
            for record in records {
                let key = record.encode_key();
                let value = record.encode_value();
                batch_bytes += key.len() + value.as_ref().map_or(0, Vec::len);
                batch = batch.record(Some(&key), value.as_deref());
                if batch_bytes >= BATCH_BYTES_MAX {
                    written += self
                        .append_batch(std::mem::replace(&mut batch, BatchBuilder::new(now)))
                        .await?;
                    batch_bytes = 0;
                }
            }
        }
        if !batch.is_empty() {
            written += self.append_batch(batch).await?;
        }
        if written == 0 {
            return Ok(());
        }
        // As Kafka writes offsets and group metadata with acks=all: every
        // in-sync replica holds them before they take effect, so they
        // survive the coordinator moving to another replica.
        settle_coordinator_write(&self.owned, &*self.env, COMMIT_TIMEOUT_MS)
            .await
            .map_err(|e| match e {
                ErrorCode::NotLeaderOrFollower => ErrorCode::NotCoordinator,
                other => other,
            })
    }

    async fn append_batch(&self, batch: BatchBuilder) -> Result<u64, ErrorCode> {
        self.append_batch_bytes(batch.build()).await
    }

    async fn append_batch_bytes(&self, bytes: Bytes) -> Result<u64, ErrorCode> {
        let len = bytes.len() as u64;
        // A freshly built batch is its buffer's only owner: no copy here.
        let bytes = bytes
            .try_into_mut()
            .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
        let epoch = self.owned.leads_at().ok_or(ErrorCode::NotCoordinator)?;
        self.owned
            .log
            .append_coordinator(bytes, epoch, self.env.now_ms())
            .await
            .map_err(|e| e.error_code())?;
        Ok(len)
    }
}

/// A TxnOffsetCommit being verified with its transaction coordinator: the
/// guard to write its offsets with, ended when this is dropped (written,
/// refused, or its request given up), so a dropped request leaves no guard.
pub struct OffsetsVerification {
    log: Rc<OffsetsLog>,
    pub guard: VerificationGuard,
}

impl OffsetsVerification {
    /// Starts verifying a TxnOffsetCommit of `producer_id` on `log`.
    pub fn begin(log: Rc<OffsetsLog>, producer_id: i64) -> Self {
        let guard = log.begin_txn_verification(producer_id);
        Self { log, guard }
    }
}

impl Drop for OffsetsVerification {
    fn drop(&mut self) {
        self.log.end_txn_verification(self.guard);
    }
}
