//! The transaction coordinator's state machine: every transactional id of
//! the `__transaction_state` partitions one shard leads, and Kafka's rules
//! for moving them through a transaction.
//!
//! Owns: the table of transactional ids ([`TxnMetadata`]) and the answers
//! to InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn and EndTxn as
//! plans ([`Plan`]): answer now, or write a record first. Pure: no I/O,
//! times are arguments; the caller writes each planned record durably,
//! then tells [`TxnCoordinator::written`] (or [`TxnCoordinator::write_failed`]).
//!
//! States (Kafka's): Empty → Ongoing (a partition added) → PrepareCommit /
//! PrepareAbort (EndTxn, or a timeout or a new producer instance aborting
//! it) → markers written to every partition → CompleteCommit /
//! CompleteAbort → Ongoing again with the next partition.
//!
//! Transaction version 2 (KIP-890 part 2, EndTxn v5): every EndTxn bumps
//! the producer's epoch when it prepares, so the markers carry the new
//! epoch and any write of the old one that arrives later is fenced by the
//! partition (a zombie's retry cannot join the next transaction); the
//! client goes on with the epoch the answer gives. An exhausted epoch
//! (32766) moves the id to a new producer id at completion. A retry of an
//! EndTxn is recognised by its epoch (one below the current one), and an
//! abort with nothing ongoing is allowed (the client cannot know whether
//! its produce added a partition) and bumps the epoch too.
//!
//! Invariants: at most one write per transactional id is in flight (a
//! request meanwhile gets CONCURRENT_TRANSACTIONS, as Kafka's pending
//! state); a record takes effect only once written; a producer whose epoch
//! is older than its id's current one is fenced (PRODUCER_FENCED); a
//! transaction that is aborted by its timeout or by a new instance gets a
//! bumped epoch in its markers, so the old instance can write nothing more;
//! an id with no transaction in progress (Empty, CompleteCommit,
//! CompleteAbort) that nothing touched for `transactional.id.expiration.ms`
//! is forgotten through a tombstone, so the table holds only ids in use.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::ErrorCode;
use crate::txn::marker::ControlType;
use crate::txn::records::{TxnRecord, TxnStatus, TxnValue};

/// `transaction.max.timeout.ms`'s default.
pub const DEFAULT_MAX_TIMEOUT_MS: i32 = 900_000;
/// `transactional.id.expiration.ms`'s default: 7 days.
pub const DEFAULT_ID_EXPIRATION_MS: i64 = 7 * 24 * 60 * 60 * 1000;

/// One transactional id's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMetadata {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// The epoch before the last bump, so a producer retrying the
    /// InitProducerId that bumped it is not fenced (-1: none).
    pub last_producer_epoch: i16,
    pub timeout_ms: i32,
    pub status: TxnStatus,
    pub partitions: BTreeSet<(String, i32)>,
    pub start_ms: i64,
    pub last_update_ms: i64,
    /// A record for this id is being written.
    pub pending: bool,
    /// The producer id before the last move to a new one, or -1.
    pub prev_producer_id: i64,
    /// The producer id a prepared transaction completes with (its epoch
    /// was exhausted), or -1.
    pub next_producer_id: i64,
    /// 2 once the client ended a transaction with transaction version 2.
    pub client_version: i16,
}

impl TxnMetadata {
    fn from_value(v: TxnValue) -> TxnMetadata {
        TxnMetadata {
            producer_id: v.producer_id,
            producer_epoch: v.producer_epoch,
            last_producer_epoch: -1,
            timeout_ms: v.timeout_ms,
            status: v.status,
            partitions: v.partitions,
            start_ms: v.start_ms,
            last_update_ms: v.last_update_ms,
            pending: false,
            prev_producer_id: v.prev_producer_id,
            next_producer_id: v.next_producer_id,
            client_version: v.client_version,
        }
    }

    /// The producer id and epoch the client goes on with once the
    /// transaction in progress completes (EndTxn v5's answer).
    pub fn after_completion(&self) -> (i64, i16) {
        match self.status {
            TxnStatus::PrepareCommit | TxnStatus::PrepareAbort if self.next_producer_id >= 0 => {
                (self.next_producer_id, 0)
            }
            _ => (self.producer_id, self.producer_epoch),
        }
    }

    fn value(&self) -> TxnValue {
        TxnValue {
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
            timeout_ms: self.timeout_ms,
            status: self.status,
            partitions: self.partitions.clone(),
            last_update_ms: self.last_update_ms,
            start_ms: self.start_ms,
            prev_producer_id: self.prev_producer_id,
            next_producer_id: self.next_producer_id,
            client_version: self.client_version,
        }
    }
}

/// What to do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Answer with this error now (NONE: success with nothing to write).
    Answer(ErrorCode),
    /// Write this record durably, then call [`TxnCoordinator::written`];
    /// the answer is what that returns.
    Write(TxnRecord),
    /// InitProducerId needs a new producer id: allocate one and ask again
    /// with it.
    NeedProducerId,
}

/// A transaction whose markers must be written: to every partition, the
/// producer's id and epoch and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkerJob {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub control: ControlType,
    pub partitions: BTreeSet<(String, i32)>,
}

/// What a written record means for the request that planned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// InitProducerId's answer: the producer id and epoch.
    ProducerId { producer_id: i64, epoch: i16 },
    /// The end of a transaction is prepared: write the markers. EndTxn is
    /// answered NONE; an InitProducerId that aborted an ongoing transaction
    /// to fence its producer is answered CONCURRENT_TRANSACTIONS (the
    /// client retries until the abort completes); a timeout answers nobody.
    Prepared(MarkerJob),
    /// Anything else: answer NONE.
    Done,
}

/// The coordinator of one shard's transactional ids.
#[derive(Debug, Clone)]
pub struct TxnCoordinator {
    txns: BTreeMap<String, TxnMetadata>,
    max_timeout_ms: i32,
    id_expiration_ms: i64,
}

impl TxnCoordinator {
    /// A coordinator refusing timeouts over `max_timeout_ms`
    /// (`transaction.max.timeout.ms`).
    pub fn new(max_timeout_ms: i32) -> TxnCoordinator {
        TxnCoordinator {
            txns: BTreeMap::new(),
            max_timeout_ms,
            id_expiration_ms: DEFAULT_ID_EXPIRATION_MS,
        }
    }

    /// Forgets idle ids after `id_expiration_ms`
    /// (`transactional.id.expiration.ms`) instead of the default 7 days.
    pub fn with_id_expiration_ms(mut self, id_expiration_ms: i64) -> TxnCoordinator {
        self.id_expiration_ms = id_expiration_ms.max(1);
        self
    }

    /// One id's state.
    pub fn get(&self, transactional_id: &str) -> Option<&TxnMetadata> {
        self.txns.get(transactional_id)
    }

    /// Every id and its state.
    pub fn entries(&self) -> impl Iterator<Item = (&String, &TxnMetadata)> {
        self.txns.iter()
    }

    /// Applies a record read back at load (a tombstone forgets the id).
    pub fn apply(&mut self, record: TxnRecord) {
        match record.value {
            Some(v) => {
                self.txns
                    .insert(record.transactional_id, TxnMetadata::from_value(v));
            }
            None => {
                self.txns.remove(&record.transactional_id);
            }
        }
    }

    /// Forgets every id `keep` rejects (their partition moved away).
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.txns.retain(|id, _| keep(id));
    }

    /// The transactions loaded in a prepared state: their markers must be
    /// written (again) before they complete.
    pub fn in_doubt(&self) -> Vec<MarkerJob> {
        self.txns
            .iter()
            .filter_map(|(id, m)| marker_job(id, m))
            .collect()
    }

    /// InitProducerId with a transactional id. `expected` is the producer
    /// id and epoch the client has (v3+, KIP-360), `fresh` a newly
    /// allocated producer id when [`Plan::NeedProducerId`] asked for one.
    pub fn init_producer_id(
        &mut self,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        fresh: Option<i64>,
        now_ms: i64,
    ) -> Plan {
        if timeout_ms <= 0 || timeout_ms > self.max_timeout_ms {
            return Plan::Answer(ErrorCode::InvalidTransactionTimeout);
        }
        let Some(m) = self.txns.get_mut(transactional_id) else {
            let Some(producer_id) = fresh else {
                return Plan::NeedProducerId;
            };
            let m = TxnMetadata {
                producer_id,
                producer_epoch: 0,
                last_producer_epoch: -1,
                timeout_ms,
                status: TxnStatus::Empty,
                partitions: BTreeSet::new(),
                start_ms: -1,
                last_update_ms: now_ms,
                pending: true,
                prev_producer_id: -1,
                next_producer_id: -1,
                client_version: 0,
            };
            let record = record_of(transactional_id, &m);
            self.txns.insert(transactional_id.to_owned(), m);
            return Plan::Write(record);
        };
        if m.pending {
            return Plan::Answer(ErrorCode::ConcurrentTransactions);
        }
        if let Some((pid, epoch)) = expected {
            if epoch >= 0 && pid != m.producer_id {
                return Plan::Answer(ErrorCode::ProducerFenced);
            }
            if epoch >= 0 && epoch != m.producer_epoch && epoch != m.last_producer_epoch {
                return Plan::Answer(ErrorCode::ProducerFenced);
            }
        }
        match m.status {
            TxnStatus::PrepareCommit
            | TxnStatus::PrepareAbort
            | TxnStatus::PrepareEpochFence
            | TxnStatus::Dead => Plan::Answer(ErrorCode::ConcurrentTransactions),
            TxnStatus::Ongoing => {
                // A new instance: abort what the old one left open, under a
                // bumped epoch; the client retries once it completes.
                let mut next = m.clone();
                bump_epoch(&mut next);
                next.status = TxnStatus::PrepareAbort;
                next.last_update_ms = now_ms;
                m.pending = true;
                Plan::Write(record_of(transactional_id, &next))
            }
            TxnStatus::Empty | TxnStatus::CompleteCommit | TxnStatus::CompleteAbort => {
                let retry = expected.is_some_and(|(_, e)| e >= 0 && e == m.last_producer_epoch);
                let mut next = m.clone();
                if !retry {
                    if epoch_exhausted(m.producer_epoch) {
                        let Some(producer_id) = fresh else {
                            return Plan::NeedProducerId;
                        };
                        next.producer_id = producer_id;
                        next.last_producer_epoch = -1;
                        next.producer_epoch = 0;
                    } else {
                        bump_epoch(&mut next);
                    }
                }
                next.timeout_ms = timeout_ms;
                next.status = TxnStatus::Empty;
                next.partitions.clear();
                next.start_ms = -1;
                next.last_update_ms = now_ms;
                m.pending = true;
                Plan::Write(record_of(transactional_id, &next))
            }
        }
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn, with the group's offsets
    /// partition): the partitions join the producer's transaction.
    pub fn add_partitions(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
        now_ms: i64,
    ) -> Plan {
        let m = match self.producer(transactional_id, producer_id, epoch) {
            Ok(m) => m,
            Err(e) => return Plan::Answer(e),
        };
        match m.status {
            TxnStatus::PrepareCommit
            | TxnStatus::PrepareAbort
            | TxnStatus::PrepareEpochFence
            | TxnStatus::Dead => return Plan::Answer(ErrorCode::ConcurrentTransactions),
            TxnStatus::Ongoing if partitions.iter().all(|p| m.partitions.contains(p)) => {
                return Plan::Answer(ErrorCode::None)
            }
            _ => {}
        }
        let mut next = m.clone();
        if next.status != TxnStatus::Ongoing {
            next.partitions.clear();
            next.start_ms = now_ms;
        }
        next.status = TxnStatus::Ongoing;
        next.partitions.extend(partitions.iter().cloned());
        next.last_update_ms = now_ms;
        m.pending = true;
        Plan::Write(record_of(transactional_id, &next))
    }

    /// Whether every one of `partitions` is in the producer's ongoing
    /// transaction (AddPartitionsToTxn's verify-only form, KIP-890).
    pub fn verify_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
    ) -> Vec<ErrorCode> {
        let m = self.txns.get(transactional_id);
        let valid = m.filter(|m| m.producer_id == producer_id && m.producer_epoch == epoch);
        partitions
            .iter()
            .map(|p| match valid {
                None if m.is_none_or(|m| m.producer_id != producer_id) => {
                    ErrorCode::InvalidProducerIdMapping
                }
                None => ErrorCode::ProducerFenced,
                Some(m) if m.status == TxnStatus::Ongoing && m.partitions.contains(p) => {
                    ErrorCode::None
                }
                Some(_) => ErrorCode::InvalidTxnState,
            })
            .collect()
    }

    /// EndTxn with transaction version 2 (v5): as [`Self::end_txn`], but
    /// preparing bumps the epoch (with `fresh`, a new producer id, when
    /// [`Plan::NeedProducerId`] asked for one: the epoch is exhausted); a
    /// retry (the epoch one below) is answered as the first one was; an
    /// abort with nothing ongoing bumps the epoch too. Kafka 4.4's answers
    /// state by state.
    pub fn end_txn_v2(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        fresh: Option<i64>,
        now_ms: i64,
    ) -> Plan {
        let Some(m) = self.txns.get_mut(transactional_id) else {
            return Plan::Answer(ErrorCode::InvalidProducerIdMapping);
        };
        // A record being written, or markers (Kafka's pending transition
        // to Complete): the client retries, whatever its epoch.
        if m.pending || matches!(m.status, TxnStatus::PrepareCommit | TxnStatus::PrepareAbort) {
            return Plan::Answer(ErrorCode::ConcurrentTransactions);
        }
        let retry_on_bump =
            producer_id == m.producer_id && i32::from(m.producer_epoch) == i32::from(epoch) + 1;
        let retry_on_overflow = producer_id != m.producer_id
            && producer_id == m.prev_producer_id
            && epoch == i16::MAX - 1
            && m.producer_epoch == 0;
        if producer_id != m.producer_id && !retry_on_overflow {
            return Plan::Answer(ErrorCode::InvalidProducerIdMapping);
        }
        let retry = retry_on_bump || retry_on_overflow;
        let current = producer_id == m.producer_id && epoch == m.producer_epoch;
        let valid = match m.status {
            TxnStatus::Ongoing | TxnStatus::Empty => current,
            TxnStatus::CompleteCommit | TxnStatus::CompleteAbort => retry || current,
            TxnStatus::PrepareCommit
            | TxnStatus::PrepareAbort
            | TxnStatus::PrepareEpochFence
            | TxnStatus::Dead => return Plan::Answer(ErrorCode::ConcurrentTransactions),
        };
        if !valid {
            return Plan::Answer(ErrorCode::ProducerFenced);
        }
        let prepare = match (m.status, commit, retry) {
            (TxnStatus::Ongoing, true, _) => TxnStatus::PrepareCommit,
            (TxnStatus::Ongoing, false, _) => TxnStatus::PrepareAbort,
            (TxnStatus::CompleteCommit, true, true) | (TxnStatus::CompleteAbort, false, true) => {
                return Plan::Answer(ErrorCode::None)
            }
            // Nothing ongoing: abort an empty transaction.
            (
                TxnStatus::Empty | TxnStatus::CompleteCommit | TxnStatus::CompleteAbort,
                false,
                false,
            ) => TxnStatus::PrepareAbort,
            _ => return Plan::Answer(ErrorCode::InvalidTxnState),
        };
        let mut next = m.clone();
        if epoch_exhausted(m.producer_epoch) {
            let Some(fresh) = fresh else {
                return Plan::NeedProducerId;
            };
            next.next_producer_id = fresh;
        }
        next.producer_epoch = m.producer_epoch.saturating_add(1);
        if prepare == TxnStatus::PrepareAbort && m.status != TxnStatus::Ongoing {
            next.partitions.clear();
        }
        next.status = prepare;
        next.client_version = 2;
        next.last_update_ms = now_ms;
        m.pending = true;
        Plan::Write(record_of(transactional_id, &next))
    }

    /// EndTxn: commit or abort the producer's transaction.
    pub fn end_txn(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        now_ms: i64,
    ) -> Plan {
        let m = match self.producer(transactional_id, producer_id, epoch) {
            Ok(m) => m,
            Err(e) => return Plan::Answer(e),
        };
        let (prepare, complete) = if commit {
            (TxnStatus::PrepareCommit, TxnStatus::CompleteCommit)
        } else {
            (TxnStatus::PrepareAbort, TxnStatus::CompleteAbort)
        };
        match m.status {
            TxnStatus::Ongoing => {
                let mut next = m.clone();
                next.status = prepare;
                next.last_update_ms = now_ms;
                m.pending = true;
                Plan::Write(record_of(transactional_id, &next))
            }
            // A retry of an EndTxn that went through.
            s if s == complete => Plan::Answer(ErrorCode::None),
            s if s == prepare => Plan::Answer(ErrorCode::ConcurrentTransactions),
            TxnStatus::PrepareEpochFence | TxnStatus::Dead => {
                Plan::Answer(ErrorCode::ConcurrentTransactions)
            }
            _ => Plan::Answer(ErrorCode::InvalidTxnState),
        }
    }

    /// The markers of `job` are written everywhere: the record that
    /// completes its transaction, unless the id moved on meanwhile.
    pub fn markers_written(&mut self, job: &MarkerJob, now_ms: i64) -> Option<TxnRecord> {
        let m = self.txns.get_mut(&job.transactional_id)?;
        if m.pending
            || m.producer_id != job.producer_id
            || m.producer_epoch != job.producer_epoch
            || marker_job(&job.transactional_id, m).is_none()
        {
            return None;
        }
        let mut next = m.clone();
        next.status = match job.control {
            ControlType::Commit => TxnStatus::CompleteCommit,
            ControlType::Abort => TxnStatus::CompleteAbort,
        };
        next.partitions.clear();
        next.last_update_ms = now_ms;
        if next.next_producer_id >= 0 {
            // The exhausted epoch's transaction is done: the id goes on
            // with its new producer id.
            next.prev_producer_id = next.producer_id;
            next.producer_id = next.next_producer_id;
            next.next_producer_id = -1;
            next.producer_epoch = 0;
        }
        m.pending = true;
        Some(record_of(&job.transactional_id, &next))
    }

    /// Ongoing transactions past their timeout at `now_ms`: the records that
    /// abort them under a bumped epoch (Kafka's fencing abort); and idle
    /// ids past `transactional.id.expiration.ms`: their tombstones. Each
    /// to be written and then given to [`Self::written`].
    pub fn expire(&mut self, now_ms: i64) -> Vec<TxnRecord> {
        let mut out = Vec::new();
        for (id, m) in self.txns.iter_mut() {
            if !m.pending && self.id_expiration_ms <= now_ms - m.last_update_ms && is_idle(m) {
                m.pending = true;
                out.push(TxnRecord {
                    transactional_id: id.clone(),
                    value: None,
                });
                continue;
            }
            if m.pending
                || m.status != TxnStatus::Ongoing
                || m.start_ms + i64::from(m.timeout_ms) > now_ms
            {
                continue;
            }
            let mut next = m.clone();
            bump_epoch(&mut next);
            next.status = TxnStatus::PrepareAbort;
            next.last_update_ms = now_ms;
            m.pending = true;
            out.push(record_of(id, &next));
        }
        out
    }

    /// When the next ongoing transaction times out, or the next idle id
    /// expires, if any.
    pub fn next_deadline_ms(&self) -> Option<i64> {
        self.txns
            .values()
            .filter(|m| !m.pending)
            .filter_map(|m| match m.status {
                TxnStatus::Ongoing => Some(m.start_ms + i64::from(m.timeout_ms)),
                _ if is_idle(m) => Some(m.last_update_ms.saturating_add(self.id_expiration_ms)),
                _ => None,
            })
            .min()
    }

    /// `record` (planned here) is durable: it takes effect; what it means
    /// for the request that planned it.
    pub fn written(&mut self, record: &TxnRecord) -> Written {
        let Some(v) = record.value.clone() else {
            self.txns.remove(&record.transactional_id);
            return Written::Done;
        };
        let id = &record.transactional_id;
        let before = self.txns.get(id).map(|m| m.producer_epoch);
        let last_producer_epoch = match before {
            Some(epoch) if epoch != v.producer_epoch => epoch,
            _ => self.txns.get(id).map_or(-1, |m| m.last_producer_epoch),
        };
        let mut m = TxnMetadata::from_value(v);
        m.last_producer_epoch = last_producer_epoch;
        let answer = match m.status {
            TxnStatus::Empty => Written::ProducerId {
                producer_id: m.producer_id,
                epoch: m.producer_epoch,
            },
            TxnStatus::PrepareCommit | TxnStatus::PrepareAbort => {
                Written::Prepared(marker_job(id, &m).expect("a prepared state has markers"))
            }
            _ => Written::Done,
        };
        self.txns.insert(id.clone(), m);
        answer
    }

    /// The write of a record planned for `transactional_id` failed: its
    /// state stays as it was (an id created by the write is forgotten).
    pub fn write_failed(&mut self, record: &TxnRecord) {
        let id = &record.transactional_id;
        let created = record.value.as_ref().is_some_and(|v| {
            v.status == TxnStatus::Empty
                && self
                    .txns
                    .get(id)
                    .is_some_and(|m| m.pending && m.producer_epoch == 0 && v.producer_epoch == 0)
        });
        if created {
            self.txns.remove(id);
        } else if let Some(m) = self.txns.get_mut(id) {
            m.pending = false;
        }
    }

    /// The id's state for a request from `producer_id` at `epoch`: Kafka's
    /// checks common to AddPartitionsToTxn and EndTxn.
    fn producer(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
    ) -> Result<&mut TxnMetadata, ErrorCode> {
        let m = self
            .txns
            .get_mut(transactional_id)
            .ok_or(ErrorCode::InvalidProducerIdMapping)?;
        if m.producer_id != producer_id {
            return Err(ErrorCode::InvalidProducerIdMapping);
        }
        if m.producer_epoch != epoch {
            return Err(ErrorCode::ProducerFenced);
        }
        if m.pending {
            return Err(ErrorCode::ConcurrentTransactions);
        }
        Ok(m)
    }
}

/// The record that stores `m` for `transactional_id`.
/// True when `m` has no transaction in progress: its id may expire.
fn is_idle(m: &TxnMetadata) -> bool {
    matches!(
        m.status,
        TxnStatus::Empty | TxnStatus::CompleteCommit | TxnStatus::CompleteAbort
    )
}

fn record_of(transactional_id: &str, m: &TxnMetadata) -> TxnRecord {
    TxnRecord {
        transactional_id: transactional_id.to_owned(),
        value: Some(m.value()),
    }
}

/// The markers a prepared transaction still needs, if it is one.
fn marker_job(transactional_id: &str, m: &TxnMetadata) -> Option<MarkerJob> {
    let control = match m.status {
        TxnStatus::PrepareCommit => ControlType::Commit,
        TxnStatus::PrepareAbort => ControlType::Abort,
        _ => return None,
    };
    Some(MarkerJob {
        transactional_id: transactional_id.to_owned(),
        producer_id: m.producer_id,
        producer_epoch: m.producer_epoch,
        control,
        partitions: m.partitions.clone(),
    })
}

/// An epoch that cannot be bumped any more (Kafka's check).
fn epoch_exhausted(epoch: i16) -> bool {
    epoch >= i16::MAX - 1
}

fn bump_epoch(m: &mut TxnMetadata) {
    m.last_producer_epoch = m.producer_epoch;
    m.producer_epoch = m.producer_epoch.saturating_add(1);
}

#[cfg(test)]
mod tests;
