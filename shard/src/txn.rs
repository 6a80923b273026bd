//! The transaction coordinator of one shard: runs [`TxnCoordinator`] for
//! the `__transaction_state` partitions the shard leads, writes its
//! records, and delivers each ended transaction's markers.
//!
//! Owns: the shard's [`TxnCoordinator`]; one [`TxnLog`] per loaded
//! partition; the timer that aborts transactions past their timeout; and
//! the marker deliveries in flight (one task per ended transaction, which
//! retries until every partition holds its marker, then writes the
//! transaction's completion); and the requests that found their id's last
//! transaction still ending, each waiting (at most a second, cancel-safe)
//! for it to complete instead of being sent back to retry.
//!
//! Invariants: a transactional id is served only by the shard leading its
//! partition (`abs(hash(id)) % partitions`, as Kafka), only once that
//! partition is replayed; a request is answered only after the record it
//! caused is durable on every in-sync replica; a transaction completes
//! (CompleteCommit / CompleteAbort) only after every partition in it holds
//! its marker. A partition loaded with a transaction still prepared (the
//! coordinator stopped between EndTxn and its completion) delivers that
//! transaction's markers again, so a transaction ends committed or
//! aborted, never half.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

use sluice_core::config::TransactionConfig;
use sluice_core::group::coordinator_partition;
use sluice_core::txn::coordinator::{MarkerJob, Plan, TxnCoordinator, TxnMetadata, Written};
use sluice_core::txn::marker::{ControlType, Marker};
use sluice_core::txn::records::{TxnRecord, TxnStatus};
use sluice_core::{ErrorCode, PartitionId};

use crate::env::Env;
use crate::message::{TxnRequest, TxnResponse};
use crate::notify::Notify;
use crate::shard::{OwnedPartition, Shard};

mod state_log;
pub use state_log::TxnLog;

/// The internal topic that holds the transaction coordinator's state.
pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";

/// Longest a request waits for its transactional id's last transaction to
/// finish ending, or for the id's record being written, before it is
/// answered CONCURRENT_TRANSACTIONS.
const ENDING_WAIT: Duration = Duration::from_secs(1);

/// First wait before a marker delivery is tried again, and the longest.
const MARKER_RETRY_MIN: Duration = Duration::from_millis(20);
const MARKER_RETRY_MAX: Duration = Duration::from_secs(1);

/// A shard's transaction coordinator.
pub struct TxnHome {
    coordinator: RefCell<TxnCoordinator>,
    /// The loaded partitions of `__transaction_state` this shard leads.
    logs: RefCell<BTreeMap<PartitionId, Rc<TxnLog>>>,
    /// Partitions of `__transaction_state` (0 until the topic exists).
    partition_count: Cell<i32>,
    env: Rc<dyn Env>,
    /// Signalled after anything that may move the next timeout, so the
    /// timer task re-arms.
    timers_changed: Notify,
    /// Signalled when a transaction completes (its markers are written)
    /// and after every record written: requests that found their id
    /// ending or busy wait for this.
    ended: Notify,
    /// Transactional ids whose markers a task is delivering: one task per
    /// id, however often its partition is loaded again meanwhile.
    delivering: RefCell<BTreeSet<String>>,
    timer_started: Cell<bool>,
    stopped: Cell<bool>,
}

impl TxnHome {
    /// A coordinator refusing transaction timeouts over
    /// `transaction.max.timeout.ms`, forgetting idle ids after
    /// `transactional.id.expiration.ms`.
    pub fn new(config: &TransactionConfig, env: Rc<dyn Env>) -> TxnHome {
        TxnHome {
            coordinator: RefCell::new(
                TxnCoordinator::new(config.max_timeout_ms)
                    .with_id_expiration_ms(config.transactional_id_expiration_ms),
            ),
            logs: RefCell::new(BTreeMap::new()),
            partition_count: Cell::new(0),
            env,
            timers_changed: Notify::default(),
            ended: Notify::default(),
            delivering: RefCell::new(BTreeSet::new()),
            timer_started: Cell::new(false),
            stopped: Cell::new(false),
        }
    }

    /// The coordinator (metrics and tests read it).
    pub fn coordinator(&self) -> &RefCell<TxnCoordinator> {
        &self.coordinator
    }

    /// Partitions of `__transaction_state`.
    pub fn partition_count(&self) -> i32 {
        self.partition_count.get()
    }

    /// True while `partition`'s transactional ids are served here.
    pub fn is_loaded(&self, partition: PartitionId) -> bool {
        self.logs.borrow().contains_key(&partition)
    }

    /// Loads one partition of `__transaction_state` (replaying it) and
    /// serves its ids from then on; transactions it left prepared get
    /// their markers delivered again. The loaded log, for
    /// [`Self::unload_log`].
    pub async fn load(
        self: &Rc<Self>,
        shard: &Rc<Shard>,
        partition: PartitionId,
        partition_count: i32,
        owned: Rc<OwnedPartition>,
    ) -> Option<Rc<TxnLog>> {
        self.partition_count.set(partition_count);
        // A partition loaded again (a new leader epoch here): the old log
        // stops and its ids go before the replay, which must not apply old
        // records over newer state.
        self.unload(partition);
        let log = Rc::new(TxnLog::new(partition, owned, self.env.clone()));
        match log.replay(&self.coordinator).await {
            Ok((records, skipped)) => tracing::info!(
                partition,
                records,
                skipped,
                "loaded a transaction coordinator partition"
            ),
            Err(e) => {
                tracing::error!(partition, error = %e, "could not load a transaction coordinator partition");
                return None;
            }
        }
        if let Some(old) = self.logs.borrow_mut().insert(partition, log.clone()) {
            old.stop();
        }
        let in_doubt: Vec<MarkerJob> = self
            .coordinator
            .borrow()
            .in_doubt()
            .into_iter()
            .filter(|job| {
                coordinator_partition(&job.transactional_id, partition_count) == partition
            })
            .collect();
        for job in in_doubt {
            tracing::info!(
                partition,
                transactional_id = job.transactional_id,
                control = ?job.control,
                "completing a transaction left prepared"
            );
            self.deliver(shard, partition, job);
        }
        if !self.timer_started.replace(true) {
            let home = self.clone();
            let shard = shard.clone();
            glommio::spawn_local(async move { home.run_timers(shard).await }).detach();
        }
        self.timers_changed.notify_all();
        Some(log)
    }

    /// [`Self::unload`], when `log` is still the one serving `partition`.
    pub fn unload_log(&self, partition: PartitionId, log: &Rc<TxnLog>) {
        let current = self.logs.borrow().get(&partition).cloned();
        if current.is_some_and(|c| Rc::ptr_eq(&c, log)) {
            self.unload(partition);
        }
    }

    /// Stops serving `partition` (deleted, moved, or led elsewhere now).
    pub fn unload(&self, partition: PartitionId) {
        if let Some(log) = self.logs.borrow_mut().remove(&partition) {
            log.stop();
        }
        let count = self.partition_count.get();
        self.coordinator
            .borrow_mut()
            .retain(|id| coordinator_partition(id, count) != partition);
    }

    /// Every transactional id served here, with its state.
    pub fn list(&self) -> Vec<(String, TxnMetadata)> {
        self.coordinator
            .borrow()
            .entries()
            .map(|(id, m)| (id.clone(), m.clone()))
            .collect()
    }

    /// Stops every writer and the timer (the shard is closing).
    pub fn stop_all(&self) {
        self.stopped.set(true);
        self.timers_changed.notify_all();
        self.ended.notify_all();
        for (_, log) in std::mem::take(&mut *self.logs.borrow_mut()) {
            log.stop();
        }
    }

    /// Runs one request for an id of `partition`. `None` when `partition`
    /// is not loaded here (the caller tells which error that is).
    pub async fn handle(
        self: &Rc<Self>,
        shard: &Rc<Shard>,
        partition: PartitionId,
        request: TxnRequest,
    ) -> Option<TxnResponse> {
        // A producer's next request usually arrives while its last
        // transaction's markers are still being written. Kafka answers it
        // CONCURRENT_TRANSACTIONS and the client tries again after a
        // backoff (tens of milliseconds); here it waits for the markers
        // (a few milliseconds), at most ENDING_WAIT, then is answered.
        // So does a request that finds the id's record being written:
        // under transaction version 2 a producer's first writes to
        // several partitions each add theirs at once, and a refused one
        // would come back out of order behind the writes after it.
        let deadline = self.env.monotonic_ms() + ENDING_WAIT.as_millis() as u64;
        loop {
            let ended = self.ended.changed();
            let response = self.handle_once(shard, partition, request.clone()).await?;
            let concurrent = match &response {
                TxnResponse::Error(e) => *e == ErrorCode::ConcurrentTransactions,
                TxnResponse::Partitions(errors) => {
                    errors.contains(&ErrorCode::ConcurrentTransactions)
                }
                _ => false,
            };
            let ending = concurrent && self.is_ending(&request);
            let now = self.env.monotonic_ms();
            if !ending || now >= deadline {
                return Some(response);
            }
            let wait = Duration::from_millis(deadline - now);
            futures_lite::future::or(ended, self.env.sleep(wait)).await;
        }
    }

    /// True while the transaction of `request`'s id is ending (its markers
    /// are being written) or a record of the id is being written, so that
    /// it will be free again by itself.
    fn is_ending(&self, request: &TxnRequest) -> bool {
        let id = match request {
            TxnRequest::InitProducerId {
                transactional_id, ..
            }
            | TxnRequest::AddPartitions {
                transactional_id, ..
            }
            | TxnRequest::EndTxn {
                transactional_id, ..
            } => transactional_id,
            TxnRequest::Describe { .. } => return false,
        };
        self.coordinator.borrow().get(id).is_some_and(|m| {
            m.pending || matches!(m.status, TxnStatus::PrepareCommit | TxnStatus::PrepareAbort)
        })
    }

    /// [`Self::handle`] once.
    async fn handle_once(
        self: &Rc<Self>,
        shard: &Rc<Shard>,
        partition: PartitionId,
        request: TxnRequest,
    ) -> Option<TxnResponse> {
        let log = self.logs.borrow().get(&partition).cloned()?;
        let now = self.env.now_ms();
        let response = match request {
            TxnRequest::InitProducerId {
                transactional_id,
                timeout_ms,
                expected,
                fresh,
            } => {
                let plan = self.coordinator.borrow_mut().init_producer_id(
                    &transactional_id,
                    timeout_ms,
                    expected,
                    fresh,
                    now,
                );
                match self.carry_out(shard, partition, &log, plan).await {
                    Ok(Some(Written::ProducerId { producer_id, epoch })) => {
                        TxnResponse::ProducerId { producer_id, epoch }
                    }
                    // An open transaction is being aborted to fence its
                    // producer: the new one retries until that completes.
                    Ok(Some(Written::Prepared(_))) => {
                        TxnResponse::Error(ErrorCode::ConcurrentTransactions)
                    }
                    Ok(_) => TxnResponse::Error(ErrorCode::UnknownServerError),
                    Err(Asked::ProducerId) => TxnResponse::NeedProducerId,
                    Err(Asked::Error(e)) => TxnResponse::Error(e),
                }
            }
            TxnRequest::AddPartitions {
                transactional_id,
                producer_id,
                epoch,
                partitions,
                verify_only: true,
            } => TxnResponse::Partitions(self.coordinator.borrow().verify_partitions(
                &transactional_id,
                producer_id,
                epoch,
                &partitions,
            )),
            TxnRequest::AddPartitions {
                transactional_id,
                producer_id,
                epoch,
                partitions,
                verify_only: false,
            } => {
                let plan = self.coordinator.borrow_mut().add_partitions(
                    &transactional_id,
                    producer_id,
                    epoch,
                    &partitions,
                    now,
                );
                let error = match self.carry_out(shard, partition, &log, plan).await {
                    Ok(_) => ErrorCode::None,
                    Err(Asked::Error(e)) => e,
                    Err(Asked::ProducerId) => ErrorCode::UnknownServerError,
                };
                TxnResponse::Partitions(vec![error; partitions.len()])
            }
            TxnRequest::EndTxn {
                transactional_id,
                producer_id,
                epoch,
                commit,
                version2,
                fresh,
            } => {
                let bumps = self.env.broken_rule() != Some(crate::env::BrokenRule::NoEpochBump);
                let plan = if version2 && bumps {
                    self.coordinator.borrow_mut().end_txn_v2(
                        &transactional_id,
                        producer_id,
                        epoch,
                        commit,
                        fresh,
                        now,
                    )
                } else {
                    self.coordinator.borrow_mut().end_txn(
                        &transactional_id,
                        producer_id,
                        epoch,
                        commit,
                        now,
                    )
                };
                match self.carry_out(shard, partition, &log, plan).await {
                    Ok(_) if version2 => {
                        // The id and epoch the producer goes on with.
                        match self.coordinator.borrow().get(&transactional_id) {
                            Some(m) => {
                                let (producer_id, epoch) = m.after_completion();
                                TxnResponse::ProducerId { producer_id, epoch }
                            }
                            None => TxnResponse::Error(ErrorCode::InvalidProducerIdMapping),
                        }
                    }
                    Ok(_) => TxnResponse::Error(ErrorCode::None),
                    Err(Asked::Error(e)) => TxnResponse::Error(e),
                    Err(Asked::ProducerId) if version2 => TxnResponse::NeedProducerId,
                    Err(Asked::ProducerId) => TxnResponse::Error(ErrorCode::UnknownServerError),
                }
            }
            TxnRequest::Describe { transactional_ids } => {
                let c = self.coordinator.borrow();
                TxnResponse::States(
                    transactional_ids
                        .into_iter()
                        .filter_map(|id| c.get(&id).cloned().map(|m| (id, m)))
                        .collect(),
                )
            }
        };
        self.timers_changed.notify_all();
        Some(response)
    }

    /// Carries out `plan`: writes its record and applies it (delivering the
    /// markers of a transaction it prepared), or says what stops it.
    async fn carry_out(
        self: &Rc<Self>,
        shard: &Rc<Shard>,
        partition: PartitionId,
        log: &TxnLog,
        plan: Plan,
    ) -> Result<Option<Written>, Asked> {
        let record = match plan {
            Plan::Answer(ErrorCode::None) => return Ok(None),
            Plan::Answer(e) => return Err(Asked::Error(e)),
            Plan::NeedProducerId => return Err(Asked::ProducerId),
            Plan::Write(record) => record,
        };
        let written = self.write(log, &record).await.map_err(Asked::Error)?;
        if let Written::Prepared(job) = &written {
            self.deliver(shard, partition, job.clone());
        }
        Ok(Some(written))
    }

    /// Writes `record` and applies it, or undoes its planning on failure.
    async fn write(&self, log: &TxnLog, record: &TxnRecord) -> Result<Written, ErrorCode> {
        let result = log.write(record).await;
        // Whatever came of it, the id is free again for whoever waits.
        self.ended.notify_all();
        match result {
            Ok(()) => Ok(self.coordinator.borrow_mut().written(record)),
            Err(e) => {
                self.coordinator.borrow_mut().write_failed(record);
                tracing::warn!(transactional_id = record.transactional_id, error = %e, "writing a transaction record failed");
                // Kafka's mapping of a failed append to what the client retries.
                Err(match e {
                    ErrorCode::NotCoordinator | ErrorCode::KafkaStorageError => {
                        ErrorCode::NotCoordinator
                    }
                    ErrorCode::MessageTooLarge | ErrorCode::RecordListTooLarge => {
                        ErrorCode::UnknownServerError
                    }
                    _ => ErrorCode::CoordinatorNotAvailable,
                })
            }
        }
    }

    /// Delivers `job`'s markers in the background, then completes its
    /// transaction.
    /// A delivery already running for the id goes on (it checks the
    /// id's state before every attempt); none starts beside it.
    fn deliver(self: &Rc<Self>, shard: &Rc<Shard>, partition: PartitionId, job: MarkerJob) {
        let id = job.transactional_id.clone();
        if !self.delivering.borrow_mut().insert(id.clone()) {
            return;
        }
        let home = self.clone();
        let shard = shard.clone();
        glommio::spawn_local(async move {
            home.clone().deliver_markers(shard, partition, job).await;
            home.delivering.borrow_mut().remove(&id);
        })
        .detach();
    }

    /// True while the id is still in the prepared state of `job` (the
    /// same producer id and epoch): its markers are still due. A delivery
    /// for a transaction that completed must not write again: with the
    /// same epoch, its marker would end the producer's next transaction.
    fn still_due(&self, job: &MarkerJob) -> bool {
        let prepared = match job.control {
            ControlType::Commit => TxnStatus::PrepareCommit,
            ControlType::Abort => TxnStatus::PrepareAbort,
        };
        self.coordinator
            .borrow()
            .get(&job.transactional_id)
            .is_some_and(|m| {
                m.status == prepared
                    && m.producer_id == job.producer_id
                    && m.producer_epoch == job.producer_epoch
            })
    }

    /// Writes `job`'s marker to every partition of its transaction, retrying
    /// those that fail, then writes its completion. Gives up (leaving the
    /// transaction prepared, for the next leader's load to finish) when
    /// the partition stops being served here.
    async fn deliver_markers(
        self: Rc<Self>,
        shard: Rc<Shard>,
        partition: PartitionId,
        job: MarkerJob,
    ) {
        let mut left: Vec<(String, PartitionId)> = job.partitions.iter().cloned().collect();
        let mut wait = MARKER_RETRY_MIN;
        loop {
            let Some(log) = self.serving(partition) else {
                return;
            };
            if !self.still_due(&job) {
                return;
            }
            if left.is_empty() {
                let record = self
                    .coordinator
                    .borrow_mut()
                    .markers_written(&job, self.env.now_ms());
                let Some(record) = record else {
                    return;
                };
                if self.write(&log, &record).await.is_ok() {
                    self.timers_changed.notify_all();
                    self.ended.notify_all();
                    return;
                }
            } else {
                let Some(coordinator_epoch) = log.coordinator_epoch() else {
                    return;
                };
                let marker = Marker {
                    producer_id: job.producer_id,
                    producer_epoch: job.producer_epoch,
                    control: job.control,
                    coordinator_epoch,
                };
                left = shard.write_markers_anywhere(left, marker).await;
                if left.is_empty() {
                    continue;
                }
            }
            self.env.sleep(wait).await;
            wait = (wait * 2).min(MARKER_RETRY_MAX);
        }
    }

    /// The log serving `partition`, while it is served here.
    fn serving(&self, partition: PartitionId) -> Option<Rc<TxnLog>> {
        if self.stopped.get() {
            return None;
        }
        self.logs
            .borrow()
            .get(&partition)
            .filter(|log| !log.is_stopped())
            .cloned()
    }

    /// Aborts transactions at their timeout and forgets idle ids at their
    /// expiry: one wait until the next deadline,
    /// re-armed whenever a request may have moved it. Runs until the shard
    /// stops.
    async fn run_timers(self: Rc<Self>, shard: Rc<Shard>) {
        let mut expired_late = false;
        while !self.stopped.get() {
            let changed = self.timers_changed.changed();
            let now = self.env.now_ms();
            let next = self.coordinator.borrow().next_deadline_ms();
            match next {
                // A timeout whose abort could not be written is tried again
                // after a pause, not in a spin.
                Some(at) if at <= now && expired_late => {
                    drop(changed);
                    self.env.sleep(MARKER_RETRY_MAX).await;
                    expired_late = false;
                    continue;
                }
                Some(at) if at <= now => {
                    expired_late = true;
                    drop(changed);
                    let expired = self.coordinator.borrow_mut().expire(now);
                    let count = self.partition_count.get();
                    for record in expired {
                        let partition = coordinator_partition(&record.transactional_id, count);
                        let Some(log) = self.serving(partition) else {
                            self.coordinator.borrow_mut().write_failed(&record);
                            continue;
                        };
                        if record.value.is_some() {
                            tracing::info!(
                                transactional_id = record.transactional_id,
                                "aborting a transaction past its timeout"
                            );
                        } else {
                            tracing::info!(
                                transactional_id = record.transactional_id,
                                "forgetting a transactional id past transactional.id.expiration.ms"
                            );
                        }
                        if let Ok(Written::Prepared(job)) = self.write(&log, &record).await {
                            self.deliver(&shard, partition, job);
                        }
                    }
                }
                Some(at) => {
                    expired_late = false;
                    let wait = Duration::from_millis((at - now).max(1) as u64);
                    futures_lite::future::or(changed, self.env.sleep(wait)).await;
                }
                None => {
                    expired_late = false;
                    changed.await;
                }
            }
        }
    }
}

/// Why a plan was not carried out.
enum Asked {
    /// Answer with this error.
    Error(ErrorCode),
    /// Allocate a producer id and ask again.
    ProducerId,
}
