//! Work on the partitions a shard owns: produce (append, then wait until
//! durable), ListOffsets, and opening a partition's log with its
//! topic's config.
//!
//! A produce is two steps so a connection can pipeline: the append, which
//! must happen in the order the requests arrived, and the wait for
//! fdatasync, which the next request's append need not wait for (its own
//! wait then shares the sync: group commit).
//!
//! Runs only on the owner shard; other shards reach it by message.

use futures_util::future::join_all;

use super::txn_verify::{for_producer, TxnProducer, TxnWrite};
use super::*;
use crate::env::BrokenRule;
use crate::message::{AwaitDurable, ListOffsets, ListedOffset, Produce};
use sluice_core::batch::BatchHeader;
use sluice_core::txn::verification::VerificationGuard;
use sluice_log::{PartitionStore, SourceBuffer};

impl Shard {
    /// [`Produce`]: appends each partition's batches. The appends start in
    /// the order given (each assigns its offsets before its first wait, so
    /// appends to one partition keep the order of the requests that carry
    /// them) and run side by side: one partition writing out its buffer
    /// does not hold up the others.
    pub(crate) async fn produce_many(self: &Rc<Self>, op: Produce) -> Vec<ProduceResult> {
        let acks = op.acks;
        let txn = TxnProducer {
            transactional_id: op.transactional_id.as_deref(),
            adds_partitions: op.adds_partitions,
        };
        join_all(op.appends.into_iter().map(|append| async move {
            self.produce_local(
                &append.topic,
                append.partition,
                append.records,
                append.source,
                acks,
                txn,
            )
            .await
        }))
        .await
    }

    /// [`AwaitDurable`]: waits for every partition at once, so their syncs
    /// run side by side.
    pub(crate) async fn await_durable_many(&self, op: AwaitDurable) -> Vec<ErrorCode> {
        let AwaitDurable {
            partitions,
            acks,
            timeout_ms,
        } = op;
        join_all(
            partitions
                .iter()
                .map(|(topic, partition, offset, leader_epoch)| async move {
                    if acks == -1 {
                        self.await_replicated(topic, *partition, *offset, *leader_epoch, timeout_ms)
                            .await
                    } else {
                        self.await_durable(topic, *partition, *offset).await
                    }
                }),
        )
        .await
    }

    /// [`ListOffsets`]: each partition in turn.
    pub(crate) async fn list_offsets_many(&self, op: ListOffsets) -> Vec<ListedOffset> {
        let mut results = Vec::with_capacity(op.partitions.len());
        for (topic, partition, timestamp) in &op.partitions {
            results.push(
                self.list_offsets_local(topic, *partition, *timestamp, op.read_committed)
                    .await,
            );
        }
        results
    }

    pub(super) async fn produce_local(
        self: &Rc<Self>,
        topic: &str,
        partition: PartitionId,
        records: BytesMut,
        source: Option<SourceBuffer>,
        acks: i16,
        txn: TxnProducer<'_>,
    ) -> ProduceResult {
        let refused = |error, log_start_offset| ProduceResult {
            error,
            base_offset: -1,
            log_start_offset,
            durable_at: None,
            leader_epoch: -1,
            log_append_time_ms: -1,
        };
        let Some(p) = self.partition(topic, partition) else {
            return refused(self.absence_error(topic, partition), -1);
        };
        let (leader_epoch, isr_len, under_min_isr) = {
            let role = p.role.borrow();
            if !role.is_leader() {
                return refused(ErrorCode::NotLeaderOrFollower, -1);
            }
            (
                role.leader_epoch(),
                role.isr_len(),
                role.under_min_isr(p.min_insync_replicas.get()),
            )
        };
        if acks == -1 && under_min_isr {
            // Kafka refuses before appending: nothing is written.
            return refused(ErrorCode::NotEnoughReplicas, p.log.log_start_offset());
        }
        let batches = records;
        let bytes = batches.len();
        let appended = match self.txn_write_check(&p, topic, partition, &batches, txn) {
            Ok(None) => {
                p.log
                    .append_in_epoch(batches, source, leader_epoch, self.env.now_ms())
                    .await
            }
            Ok(Some(write)) => {
                // KIP-890: the producer's first write here in this
                // transaction waits for its coordinator's word.
                let verifying = VerifyingWrite::begin(&p.log, write.producer_id, write.epoch);
                let verified = self.verify_txn_write(write).await;
                if verified != ErrorCode::None {
                    return refused(verified, p.log.log_start_offset());
                }
                // Leadership may have moved while the coordinator was asked.
                let still_leads = {
                    let role = p.role.borrow();
                    role.is_leader() && role.leader_epoch() == leader_epoch
                };
                if !still_leads {
                    return refused(ErrorCode::NotLeaderOrFollower, -1);
                }
                p.log
                    .append_verified(
                        batches,
                        source,
                        leader_epoch,
                        self.env.now_ms(),
                        verifying.guard,
                    )
                    .await
            }
            Err(code) => return refused(code, p.log.log_start_offset()),
        };
        let info = match appended {
            Ok(info) => {
                // Assigned offsets lie below the log end (a duplicate's
                // original ones too).
                assert!(
                    info.base_offset <= info.last_offset
                        && info.last_offset < p.log.log_end_offset(),
                    "{topic}/{partition}: appended {}..={} with the log end at {}",
                    info.base_offset,
                    info.last_offset,
                    p.log.log_end_offset()
                );
                info
            }
            Err(e) => {
                tracing::debug!(topic, partition, error = %e, "produce rejected");
                // CONCURRENT_TRANSACTIONS: the producer's older transaction
                // is still open here, told as its coordinator's would be.
                let error = match e.error_code() {
                    ErrorCode::ConcurrentTransactions => {
                        for_producer(ErrorCode::ConcurrentTransactions, txn.adds_partitions)
                    }
                    error => error,
                };
                return refused(error, p.log.log_start_offset());
            }
        };
        p.appended.notify_all();
        self.metrics.borrow_mut().bytes_in(topic, bytes);
        let flush = match p.flush {
            FlushPolicy::Always if self.env.acks_before_sync() => FlushPolicy::Never,
            flush => flush,
        };
        // A retry answered from the log waits like the original did: its
        // records may not be replicated yet.
        let wait_until = info.last_offset + 1;
        let durable_at = match flush {
            // The caller waits with AwaitDurable before it acknowledges.
            FlushPolicy::Always if acks != 0 => Some(wait_until),
            FlushPolicy::Always => {
                // acks=0: nobody waits, but the bytes still become durable
                // (and visible) promptly.
                let p = p.clone();
                glommio::spawn_local(async move {
                    let _ = p.flush().await;
                })
                .detach();
                None
            }
            _ => {
                p.hw_changed.notify_all();
                (acks == -1 && isr_len > 1).then_some(wait_until)
            }
        };
        ProduceResult {
            error: ErrorCode::None,
            base_offset: info.base_offset,
            log_start_offset: p.log.log_start_offset(),
            durable_at,
            leader_epoch,
            log_append_time_ms: info.log_append_time_ms,
        }
    }

    /// Whether a produce's `batches` for `topic`/`partition` need their
    /// coordinator's word first: `Some` for a transactional producer's
    /// first write in the partition in this transaction (KIP-890); an
    /// error for a transactional batch sent without a transactional id
    /// (TRANSACTIONAL_ID_AUTHORIZATION_FAILED, as Kafka answers it).
    fn txn_write_check<'a>(
        &self,
        p: &OwnedPartition,
        topic: &'a str,
        partition: PartitionId,
        batches: &[u8],
        txn: TxnProducer<'a>,
    ) -> Result<Option<TxnWrite<'a>>, ErrorCode> {
        let Ok(header) = BatchHeader::peek(batches) else {
            return Ok(None); // judged by the append
        };
        if !header.is_transactional() || header.is_control() {
            return Ok(None);
        }
        let Some(transactional_id) = txn.transactional_id else {
            return Err(ErrorCode::TransactionalIdAuthorizationFailed);
        };
        if self.env.broken_rule() == Some(BrokenRule::NoTxnVerification) {
            return Ok(None);
        }
        Ok(p.log.txn_to_verify(batches).map(|producer_id| TxnWrite {
            transactional_id,
            producer_id,
            epoch: header.producer_epoch,
            topic,
            partition,
            adds: txn.adds_partitions,
        }))
    }

    /// Waits until every offset below `offset` is durable, syncing the
    /// partition when it is not (one fdatasync serves every waiter).
    pub(super) async fn await_durable(
        &self,
        topic: &str,
        partition: PartitionId,
        offset: Offset,
    ) -> ErrorCode {
        let Some(p) = self.partition(topic, partition) else {
            return self.absence_error(topic, partition);
        };
        if p.log.durable_offset() >= offset {
            return ErrorCode::None;
        }
        match p.flush().await {
            Ok(_) => {
                // The acknowledgement this answer allows must be durable: a
                // sync that returned without covering it is a broken
                // promise, and stopping is better than acknowledging.
                assert!(
                    p.log.durable_offset() >= offset,
                    "{topic}/{partition}: a sync returned at {} below {offset}",
                    p.log.durable_offset()
                );
                ErrorCode::None
            }
            Err(e) => {
                tracing::warn!(topic, partition, error = %e, "flush for a produce failed");
                e.error_code()
            }
        }
    }

    pub(super) async fn list_offsets_local(
        &self,
        topic: &str,
        partition: PartitionId,
        timestamp: i64,
        read_committed: bool,
    ) -> ListedOffset {
        let failed = |error| ListedOffset {
            error,
            offset: -1,
            timestamp: -1,
        };
        let Some(p) = self.partition(topic, partition) else {
            return failed(self.absence_error(topic, partition));
        };
        let hw = p.high_watermark();
        // A read_committed consumer sees up to the last stable offset.
        let visible = if read_committed {
            p.log.last_stable_offset(hw)
        } else {
            hw
        };
        let (offset, ts) = match timestamp {
            -1 => (visible, -1),
            -2 => (p.log.log_start_offset(), -1),
            -3 => match p.log.max_timestamp_offset().await {
                Ok(Some((off, ts))) => (off, ts),
                Ok(None) => (-1, -1),
                Err(e) => return failed(e.error_code()),
            },
            t => match p.log.offset_for_timestamp(t).await {
                Ok(Some((off, ts))) if off < visible => (off, ts),
                Ok(_) => (-1, -1),
                Err(e) => return failed(e.error_code()),
            },
        };
        ListedOffset {
            error: ErrorCode::None,
            offset,
            timestamp: ts,
        }
    }

    pub(super) async fn open_partition(
        &self,
        topic: &str,
        partition: PartitionId,
        configs: &std::collections::BTreeMap<String, String>,
    ) {
        let config = sluice_core::topic_config::log_config(&self.broker_log_config(), configs);
        let flush = config.flush;
        let min_insync = config.min_insync_replicas;
        let dir = self.partition_dir(topic, partition);
        match self
            .disk
            .open_log(
                dir.clone(),
                config,
                Some(self.cache.clone()),
                self.env.now_ms(),
            )
            .await
        {
            Ok(log) => {
                let report = log.open_report();
                if report.active.bytes_cut > 0 {
                    tracing::warn!(
                        topic,
                        partition,
                        bytes_cut = report.active.bytes_cut,
                        "recovery cut a torn tail"
                    );
                }
                let log_start = log.log_start_offset();
                let owned = Rc::new(OwnedPartition {
                    log,
                    hw_changed: Notify::default(),
                    appended: Notify::default(),
                    flush,
                    min_insync_replicas: Cell::new(min_insync.max(1) as usize),
                    role: RefCell::new(super::replication::Role::unassigned(log_start)),
                    alter_pending: Cell::new(false),
                    metrics: self.metrics.clone(),
                });
                self.offline
                    .borrow_mut()
                    .remove(&(topic.to_owned(), partition));
                // `__consumer_offsets` partitions load their groups when
                // they become leaders (`reconcile_roles`).
                self.partitions
                    .borrow_mut()
                    .insert((topic.to_owned(), partition), owned);
            }
            Err(e) => {
                tracing::error!(topic, partition, dir = ?dir, error = %e, "could not open a partition; it is offline until the next start");
                self.offline
                    .borrow_mut()
                    .insert((topic.to_owned(), partition));
            }
        }
    }
}

/// A transactional write being verified: its guard ends when this is
/// dropped (the write appended, refused, or its produce given up), so a
/// dropped produce leaves no guard behind.
struct VerifyingWrite<'a> {
    log: &'a PartitionStore,
    guard: VerificationGuard,
}

impl<'a> VerifyingWrite<'a> {
    fn begin(log: &'a PartitionStore, producer_id: i64, epoch: i16) -> Self {
        let guard = log.begin_txn_verification(producer_id, epoch);
        Self { log, guard }
    }
}

impl Drop for VerifyingWrite<'_> {
    fn drop(&mut self) {
        self.log.end_txn_verification(self.guard);
    }
}
