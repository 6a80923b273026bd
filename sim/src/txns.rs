//! Simulated transactional producers and read_committed consumers, over
//! the shards' transaction coordinators and partitions.
//!
//! Owns: the transaction operations of the run and their promises in
//! [`TxnModel`]. A transaction is one task: InitProducerId (once per
//! producer and process lifetime, as a client: later transactions of the
//! same transactional id run under the same epoch), AddPartitionsToTxn,
//! transactional produces, then EndTxn commit or abort,
//! each the shard call its handler in `net/` makes. One transactional id
//! ([`VERSION2_ID`]) is a transaction version 2 client (KIP-890 part 2):
//! no AddPartitionsToTxn (its produces add their partitions), and every
//! EndTxn bumps its epoch, the next transaction running under the epoch
//! the answer gives. A read is a
//! read_committed Fetch of a whole partition from its log start, with the
//! aborted transactions filtered out as a client filters them.
//!
//! Invariants (checked at every read, and at every start over every
//! partition):
//! - no record of a transaction that was not committed (aborted, or whose
//!   producer never sent a commit) is ever returned to read_committed;
//! - a transaction is all or nothing: read_committed returns either every
//!   acknowledged record of it in a partition or none, once the last
//!   stable offset is past them;
//! - the last stable offset never passes the first record of a transaction
//!   its producer still has open (and that its timeout did not end);
//! - a transaction whose commit was acknowledged is never aborted: its
//!   records, once the last stable offset passes them, are all returned;
//! - offsets committed in a transaction (TxnOffsetCommit, each transaction
//!   of an id commits its own offset for the id's group) appear only if it
//!   commits: OffsetFetch never answers an offset of a transaction that
//!   was aborted or is still open, and once a commit is acknowledged and
//!   its markers are in (OffsetFetch with require_stable answers), the
//!   group's offset is that transaction's or a later one's;
//! - (checked at the write) a producer's write to a partition after its
//!   transaction ended there, not added to a transaction again, is refused
//!   (KIP-890): nothing opens a transaction no coordinator will end; under
//!   transaction version 2 such a write (of the epoch before the bump,
//!   adding its partition) is refused too: a zombie joins no transaction.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use sluice_core::batch::{BatchBuilder, BatchIter};
use sluice_core::group::coordinator_partition;
use sluice_core::records::RecordIter;
use sluice_core::txn::marker::{control_type, ControlType};
use sluice_core::{ErrorCode, Offset};
use sluice_shard::group::OFFSETS_TOPIC;
use sluice_shard::message::{
    DescribeProducers, Fetch, PartitionRead, Propose, Txn, TxnRequest, TxnResponse,
};
use sluice_shard::txn::TRANSACTION_STATE_TOPIC;
use sluice_shard::{GroupRequest, GroupResponse};
use sluice_shard::{Proposal, Shard};

use crate::client::{send_transactional, Clients};
use crate::model::{Model, Tp};

/// The transactional id whose client speaks transaction version 2.
pub const VERSION2_ID: &str = "x2";

/// Partitions of `__transaction_state` in the simulation.
pub const TXN_STATE_PARTITIONS: i32 = 2;
/// The producers' transaction timeout: long, so that a run's clock rarely
/// reaches it (a transaction it ends is aborted, which the checks allow).
pub const TXN_TIMEOUT_MS: i32 = 600_000;
/// Tries of a request answered CONCURRENT_TRANSACTIONS (or while the
/// coordinator loads) before the transaction gives up.
const TRIES: u32 = 20;

/// What became of a transaction, as its producer knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Its producer has not sent EndTxn (yet, or ever: a crash or an error
    /// ended the producer); only an abort can end it.
    Open,
    /// EndTxn was sent; no answer (yet).
    Ending {
        commit: bool,
    },
    Committed,
    Aborted,
}

/// One transaction of the run.
#[derive(Debug, Clone)]
pub struct TxnRun {
    pub transactional_id: String,
    pub outcome: Outcome,
    /// Its producer's task still runs in this process.
    pub live: bool,
    /// When its first partition was added (the timeout runs from there).
    pub started_ms: i64,
    /// Acknowledged records: partition → (offset, value).
    pub records: BTreeMap<Tp, Vec<(Offset, Bytes)>>,
    /// The offset it committed for its id's group (accepted by the group
    /// coordinator), if any.
    pub group_offset: Option<(Tp, Offset)>,
}

impl TxnRun {
    /// True when it may still be committed.
    pub(crate) fn may_commit(&self) -> bool {
        matches!(
            self.outcome,
            Outcome::Committed | Outcome::Ending { commit: true }
        )
    }
}

/// The promises about transactions.
#[derive(Debug, Default)]
pub struct TxnModel {
    pub txns: Vec<TxnRun>,
    /// Transactional ids with a transaction running (one at a time).
    pub busy: BTreeSet<String>,
    /// Value → the transaction that wrote it.
    pub by_value: BTreeMap<Bytes, usize>,
    /// Transactional id → its producer in this process (id, epoch, next
    /// sequence per partition): as a real client, one InitProducerId and
    /// then transaction after transaction under the same epoch, until an
    /// error makes it start over.
    pub producers: BTreeMap<String, (i64, i16, BTreeMap<Tp, i32>)>,
    pub commits_acked: u64,
    pub aborts_acked: u64,
    pub reads_checked: u64,
    /// Group offsets read back after a transaction and checked.
    pub offsets_checked: u64,
}

impl TxnModel {
    /// A crash ended every producer task.
    pub fn crashed(&mut self) {
        for t in &mut self.txns {
            t.live = false;
        }
        self.busy.clear();
        self.producers.clear();
    }

    /// Forgets the records of `tp` the model no longer holds acknowledged
    /// (a crash was allowed to lose them, or the topic is gone).
    pub fn forget_lost(&mut self, model: &Model, tp: &Tp) {
        let acked = model.acked.get(tp);
        for t in &mut self.txns {
            if let Some(records) = t.records.get_mut(tp) {
                records.retain(|(offset, value)| {
                    acked
                        .and_then(|a| a.get(offset))
                        .is_some_and(|v| v == value)
                });
            }
        }
    }

    /// Checks one read_committed read of `tp` from its log start (records
    /// below it, which retention deleted, are no read's to show), with
    /// `now_ms` the clock.
    pub fn check_read(&mut self, tp: &Tp, read: &ReadCommitted, now_ms: i64) -> Result<(), String> {
        let (visible, lso) = (&read.visible, read.lso);
        self.reads_checked += 1;
        let shown: BTreeSet<&Bytes> = visible.iter().map(|(_, v)| v).collect();
        for (offset, value) in visible {
            let Some(&i) = self.by_value.get(value) else {
                continue; // not a transactional record
            };
            let t = &self.txns[i];
            if !t.may_commit() {
                return Err(format!(
                    "{tp:?} offset {offset}: read_committed returned a record of transaction {i} ({}), which was {:?}",
                    t.transactional_id, t.outcome
                ));
            }
        }
        for (i, t) in self.txns.iter().enumerate() {
            let Some(records) = t.records.get(tp) else {
                continue;
            };
            let records: Vec<_> = records.iter().filter(|(o, _)| *o >= read.from).collect();
            let Some(first) = records.iter().map(|(o, _)| *o).min() else {
                continue;
            };
            if t.live
                && t.outcome == Outcome::Open
                && now_ms < t.started_ms + i64::from(TXN_TIMEOUT_MS)
                && lso > first
            {
                return Err(format!(
                    "{tp:?}: the last stable offset {lso} passed the first record ({first}) of transaction {i} ({}), which is open",
                    t.transactional_id
                ));
            }
            let last = records.iter().map(|(o, _)| *o).max().unwrap_or(first);
            if last >= lso {
                continue; // not stable yet: nothing of it may show
            }
            let seen = records.iter().filter(|(_, v)| shown.contains(v)).count();
            if seen != 0 && seen != records.len() {
                return Err(format!(
                    "{tp:?}: read_committed returned {seen} of the {} records of transaction {i} ({})",
                    records.len(),
                    t.transactional_id
                ));
            }
            if t.outcome == Outcome::Committed && seen == 0 {
                return Err(format!(
                    "{tp:?}: transaction {i} ({}) was committed, but read_committed returns none of its records below the last stable offset {lso}",
                    t.transactional_id
                ));
            }
        }
        Ok(())
    }
}

/// Creates `__transaction_state` if it does not exist (the first
/// FindCoordinator for a transactional id does it).
async fn ensure_state_topic(shard: &Rc<Shard>) {
    crate::groups::ensure_internal_topic(shard, TRANSACTION_STATE_TOPIC, TXN_STATE_PARTITIONS)
        .await;
}

/// Sends `request` to `transactional_id`'s coordinator, retrying while it
/// loads or the transaction is busy.
async fn txn_call(shard: &Rc<Shard>, transactional_id: &str, request: TxnRequest) -> TxnResponse {
    let mut answer = TxnResponse::Error(ErrorCode::CoordinatorNotAvailable);
    for _ in 0..TRIES {
        let metadata = shard.metadata().clone();
        let Some(topic) = metadata.topics.get(TRANSACTION_STATE_TOPIC) else {
            return answer;
        };
        let partition = coordinator_partition(transactional_id, topic.partitions.len() as i32);
        let broker = shard.config.node_id;
        let Ok(owner) = metadata.leader_shard(broker, TRANSACTION_STATE_TOPIC, partition) else {
            return answer;
        };
        let op = Txn {
            partition,
            request: request.clone(),
        };
        answer = match shard.call(owner, op).await {
            Ok(answer) => answer,
            Err(_) => return TxnResponse::Error(ErrorCode::UnknownServerError),
        };
        match answer {
            TxnResponse::Error(
                ErrorCode::ConcurrentTransactions | ErrorCode::CoordinatorLoadInProgress,
            ) => shard.env().sleep(Duration::from_millis(50)).await,
            _ => return answer,
        }
    }
    answer
}

/// One transaction of `transactional_id`: `writes` produced to their
/// partitions, then committed (`commit`) or aborted.
pub async fn transaction(
    c: &Rc<Clients>,
    entry: u32,
    transactional_id: String,
    writes: Vec<(Tp, Vec<Bytes>)>,
    commit: bool,
    late: Option<Bytes>,
) {
    if !c.txns.borrow_mut().busy.insert(transactional_id.clone()) {
        return;
    }
    let shard = c.shards[entry as usize].clone();
    let outcome = run_transaction(c, &shard, &transactional_id, writes, commit, late).await;
    c.trace
        .borrow_mut()
        .event(&format!("transaction {transactional_id}: {outcome}"));
    c.txns.borrow_mut().busy.remove(&transactional_id);
}

async fn run_transaction(
    c: &Rc<Clients>,
    shard: &Rc<Shard>,
    id: &str,
    writes: Vec<(Tp, Vec<Bytes>)>,
    commit: bool,
    late: Option<Bytes>,
) -> String {
    ensure_state_topic(shard).await;
    // Taken out now, put back when the transaction ends well: any error on
    // the way makes the next transaction start with InitProducerId.
    let known = c.txns.borrow_mut().producers.remove(id);
    let (producer_id, epoch, mut sequences) = match known {
        Some(known) => known,
        None => match init_producer(shard, id).await {
            Ok((producer_id, epoch)) => (producer_id, epoch, BTreeMap::new()),
            Err(e) => return e,
        },
    };
    let partitions: Vec<Tp> = writes.iter().map(|(tp, _)| tp.clone()).collect();
    let index = {
        let mut model = c.txns.borrow_mut();
        model.txns.push(TxnRun {
            transactional_id: id.to_owned(),
            outcome: Outcome::Open,
            live: true,
            started_ms: shard.env().now_ms(),
            records: BTreeMap::new(),
            group_offset: None,
        });
        let index = model.txns.len() - 1;
        for (_, values) in &writes {
            for v in values {
                model.by_value.insert(v.clone(), index);
            }
        }
        index
    };
    let version2 = id == VERSION2_ID;
    if !version2 {
        let add = TxnRequest::AddPartitions {
            transactional_id: id.to_owned(),
            producer_id,
            epoch,
            partitions: partitions.clone(),
            verify_only: false,
        };
        match txn_call(shard, id, add).await {
            TxnResponse::Partitions(errors) if errors.iter().all(|e| *e == ErrorCode::None) => {}
            other => return format!("AddPartitionsToTxn: {other:?} (left open)"),
        }
    }
    for (tp, values) in writes {
        let sequence = sequences.get(&tp).copied().unwrap_or(0);
        let mut batch = BatchBuilder::new(shard.env().now_ms())
            .producer(producer_id, epoch, sequence)
            .transactional();
        for v in &values {
            batch = batch.record(None, Some(v));
        }
        match send_transactional(c, shard, &tp, batch.build(), id, version2).await {
            Ok(base) => {
                sequences.insert(tp.clone(), sequence + values.len() as i32);
                let mut model = c.txns.borrow_mut();
                let records = model.txns[index].records.entry(tp.clone()).or_default();
                for (i, v) in values.into_iter().enumerate() {
                    records.push((base + i as Offset, v));
                }
            }
            // Not known whether it was written: a client aborts.
            Err(e) => {
                let _ = end(c, shard, id, index, (producer_id, epoch), false).await;
                return format!("produce to {tp:?}: {e:?}, aborted");
            }
        }
    }
    if let Some(tp) = partitions.first() {
        let sent = commit_offset(c, shard, id, index, (producer_id, epoch), tp).await;
        if let Err(e) = sent {
            let _ = end(c, shard, id, index, (producer_id, epoch), false).await;
            return format!("TxnOffsetCommit: {e}, aborted");
        }
    }
    let (mut outcome, next) = end(c, shard, id, index, (producer_id, epoch), commit).await;
    let ended = outcome.ends_with("acknowledged");
    if ended {
        if let Err(e) = check_group_offsets(c, shard, id, index).await {
            c.fail(e);
        }
    }
    if let (true, Some(value), Some(tp)) = (ended, late, partitions.first()) {
        let sequence = sequences.get(tp).copied().unwrap_or(0);
        let write = LateWrite {
            transactional_id: id,
            producer_id,
            epoch,
            sequence,
            version2,
        };
        outcome += &late_write(c, shard, tp, write, value).await;
    }
    if ended {
        // Version 2 goes on under the bumped epoch, its sequences from 0.
        let producer = match next {
            Some((producer_id, epoch)) => (producer_id, epoch, BTreeMap::new()),
            None => (producer_id, epoch, sequences),
        };
        c.txns
            .borrow_mut()
            .producers
            .insert(id.to_owned(), producer);
    }
    outcome
}

/// The group whose offsets the transactions of `id` commit.
fn group_of(id: &str) -> String {
    format!("txg-{id}")
}

/// The transaction's offset commit for its id's group: `tp` at an offset
/// that names the transaction (its index + 1), added to the transaction
/// with AddOffsetsToTxn, or by the commit itself under version 2.
async fn commit_offset(
    c: &Rc<Clients>,
    shard: &Rc<Shard>,
    id: &str,
    index: usize,
    (producer_id, epoch): (i64, i16),
    tp: &Tp,
) -> Result<(), String> {
    let group = group_of(id);
    let version2 = id == VERSION2_ID;
    crate::groups::ensure_offsets_topic(c, shard.id).await;
    let Some((_, partition)) = crate::groups::locate(shard, &group) else {
        return Err(format!("no coordinator for {group}"));
    };
    if !version2 {
        let add = TxnRequest::AddPartitions {
            transactional_id: id.to_owned(),
            producer_id,
            epoch,
            partitions: vec![(OFFSETS_TOPIC.to_owned(), partition)],
            verify_only: false,
        };
        match txn_call(shard, id, add).await {
            TxnResponse::Partitions(errors) if errors.iter().all(|e| *e == ErrorCode::None) => {}
            other => return Err(format!("AddOffsetsToTxn: {other:?}")),
        }
    }
    let offset = index as Offset + 1;
    let request = GroupRequest::TxnCommit {
        group_id: group.clone(),
        transactional_id: id.to_owned(),
        producer_id,
        epoch,
        adds_partition: version2,
        member_id: String::new(),
        instance_id: None,
        generation: -1,
        unknown_group_error: ErrorCode::IllegalGeneration,
        offsets: crate::groups::one_offset(tp, offset, shard.env().now_ms()),
    };
    let mut answer = GroupResponse::Error(ErrorCode::CoordinatorNotAvailable);
    for _ in 0..TRIES {
        answer = crate::groups::group_call(shard, &group, request.clone()).await;
        match &answer {
            GroupResponse::Commit(errors) if errors.iter().all(|e| *e == ErrorCode::None) => {
                c.txns.borrow_mut().txns[index].group_offset = Some((tp.clone(), offset));
                return Ok(());
            }
            GroupResponse::Commit(errors)
                if errors.iter().all(|e| {
                    matches!(
                        e,
                        ErrorCode::CoordinatorNotAvailable
                            | ErrorCode::CoordinatorLoadInProgress
                            | ErrorCode::ConcurrentTransactions
                    )
                }) =>
            {
                shard.env().sleep(Duration::from_millis(50)).await
            }
            _ => break,
        }
    }
    Err(format!("{answer:?}"))
}

/// After transaction `index` of `id` ended (acknowledged): its group's
/// offsets, once stable, show no transaction that may not commit, and
/// show this one's (or a later one's) when it committed.
async fn check_group_offsets(
    c: &Rc<Clients>,
    shard: &Rc<Shard>,
    id: &str,
    index: usize,
) -> Result<(), String> {
    let Some((tp, mine)) = c.txns.borrow().txns[index].group_offset.clone() else {
        return Ok(());
    };
    let group = group_of(id);
    for _ in 0..TRIES {
        let request = GroupRequest::FetchOffsets {
            group_id: group.clone(),
            partitions: Some(vec![tp.clone()]),
            require_stable: true,
            member_id: None,
            member_epoch: -1,
        };
        let rows = match crate::groups::group_call(shard, &group, request).await {
            GroupResponse::Offsets(Ok(rows)) => rows,
            // A restart or a moved coordinator: nothing to judge now.
            _ => return Ok(()),
        };
        let row = rows.into_iter().find(|(t, p, _)| (t, *p) == (&tp.0, tp.1));
        let found = match row.map(|(_, _, o)| o) {
            Some(Err(ErrorCode::UnstableOffsetCommit)) => {
                shard.env().sleep(Duration::from_millis(50)).await;
                continue;
            }
            Some(Err(_)) => return Ok(()),
            Some(Ok(found)) => found.map(|o| o.offset),
            None => None,
        };
        let mut model = c.txns.borrow_mut();
        model.offsets_checked += 1;
        let t = &model.txns[index];
        let committed = t.outcome == Outcome::Committed;
        if let Some(found) = found {
            // Offsets name their transaction: index + 1.
            let writer = usize::try_from(found - 1)
                .ok()
                .and_then(|i| model.txns.get(i));
            if let Some(w) = writer.filter(|w| w.transactional_id == id && !w.may_commit()) {
                return Err(format!(
                    "group {group} {tp:?}: OffsetFetch answers offset {found}, committed by a transaction of {id} that was {:?}",
                    w.outcome
                ));
            }
        }
        // A topic deleted since (or being deleted): its offsets go with it.
        let gone = {
            let m = c.model.borrow();
            m.deleted.contains(&tp.0) || m.deleting.contains(&tp.0)
        };
        if committed && !gone && found.is_none_or(|f| f < mine) {
            return Err(format!(
                "group {group} {tp:?}: transaction {index} of {id} committed offset {mine}, but OffsetFetch answers {found:?}"
            ));
        }
        return Ok(());
    }
    Ok(())
}

/// InitProducerId for `id`: its producer id and a new epoch.
async fn init_producer(shard: &Rc<Shard>, id: &str) -> Result<(i64, i16), String> {
    let init = |fresh| TxnRequest::InitProducerId {
        transactional_id: id.to_owned(),
        timeout_ms: TXN_TIMEOUT_MS,
        expected: None,
        fresh,
    };
    let mut answer = txn_call(shard, id, init(None)).await;
    if let TxnResponse::NeedProducerId = answer {
        let Ok(Ok(fresh)) = shard.call(0, Propose(Proposal::AllocateProducerId)).await else {
            return Err("no producer id".into());
        };
        answer = txn_call(shard, id, init(Some(fresh))).await;
    }
    match answer {
        TxnResponse::ProducerId { producer_id, epoch } => Ok((producer_id, epoch)),
        other => Err(format!("InitProducerId: {other:?}")),
    }
}

/// A transactional producer's write sent after its transaction ended.
#[derive(Debug, Clone, Copy)]
struct LateWrite<'a> {
    transactional_id: &'a str,
    producer_id: i64,
    epoch: i16,
    /// The sequence that follows its last write to the partition.
    sequence: i32,
    /// A transaction version 2 client: the write adds its partition.
    version2: bool,
}

/// Sends `write` (one record, `value`) to `tp` once the ended
/// transaction's marker is there, without adding `tp` to a transaction
/// again: a retry delayed past the end, or a client that skipped
/// AddPartitionsToTxn. Invariant (KIP-890): it is refused. Accepted, it
/// would open a transaction in `tp` that no coordinator knows, and no
/// marker would ever end it (a hanging transaction: the last stable
/// offset stuck there for good). What became of it, for the trace.
async fn late_write(
    c: &Rc<Clients>,
    shard: &Rc<Shard>,
    tp: &Tp,
    write: LateWrite<'_>,
    value: Bytes,
) -> String {
    let broker = shard.config.node_id;
    let mut marked = false;
    for _ in 0..TRIES {
        let Ok(owner) = shard.metadata().leader_shard(broker, &tp.0, tp.1) else {
            break;
        };
        let op = DescribeProducers {
            partitions: vec![tp.clone()],
        };
        if let Ok(answer) = shard.call(owner, op).await {
            if let Some(Ok(producers)) = answer.first() {
                marked = producers
                    .iter()
                    .all(|p| p.producer_id != write.producer_id || p.txn_start_offset < 0);
                if marked {
                    break;
                }
            }
        }
        shard.env().sleep(Duration::from_millis(100)).await;
    }
    if !marked {
        return ", a late write not sent (no marker yet)".into();
    }
    let batch = BatchBuilder::new(shard.env().now_ms())
        .producer(write.producer_id, write.epoch, write.sequence)
        .transactional()
        .record(None, Some(&value))
        .build();
    match send_transactional(c, shard, tp, batch, write.transactional_id, write.version2).await {
        Ok(offset) if write.version2 => {
            c.fail(format!(
                "{tp:?}: a write of {} under the epoch its transaction ended with was appended \
                 at {offset}: a zombie write joined the producer's next transaction",
                write.transactional_id
            ));
            ", a late write appended".into()
        }
        Ok(offset) => {
            c.fail(format!(
                "{tp:?}: a write of {} after its transaction ended was appended at {offset}, \
                 though {tp:?} was not added to a transaction again: a hanging transaction",
                write.transactional_id
            ));
            ", a late write appended".into()
        }
        Err(e) => format!(", a late write {e:?}: refused"),
    }
}

/// EndTxn (v5 for [`VERSION2_ID`]): what became of it, and for version 2
/// the producer id and epoch to go on with.
async fn end(
    c: &Rc<Clients>,
    shard: &Rc<Shard>,
    id: &str,
    index: usize,
    (producer_id, epoch): (i64, i16),
    commit: bool,
) -> (String, Option<(i64, i16)>) {
    c.txns.borrow_mut().txns[index].outcome = Outcome::Ending { commit };
    let version2 = id == VERSION2_ID;
    let request = |fresh| TxnRequest::EndTxn {
        transactional_id: id.to_owned(),
        producer_id,
        epoch,
        commit,
        version2,
        fresh,
    };
    let mut answer = txn_call(shard, id, request(None)).await;
    if let TxnResponse::NeedProducerId = answer {
        let Ok(Ok(fresh)) = shard.call(0, Propose(Proposal::AllocateProducerId)).await else {
            return ("EndTxn: no producer id (in doubt)".into(), None);
        };
        answer = txn_call(shard, id, request(Some(fresh))).await;
    }
    let next = match answer {
        TxnResponse::ProducerId { producer_id, epoch } => Some((producer_id, epoch)),
        _ => None,
    };
    let mut model = c.txns.borrow_mut();
    match answer {
        TxnResponse::Error(ErrorCode::None) | TxnResponse::ProducerId { .. } => {
            let t = &mut model.txns[index];
            t.outcome = if commit {
                Outcome::Committed
            } else {
                Outcome::Aborted
            };
            if commit {
                model.commits_acked += 1;
            } else {
                model.aborts_acked += 1;
            }
            let what = if commit { "commit" } else { "abort" };
            (format!("{what} acknowledged"), next)
        }
        other => (format!("EndTxn: {other:?} (in doubt)"), None),
    }
}

/// A read_committed read of all of `tp` through shard `entry`, checked.
pub async fn read_committed(c: &Rc<Clients>, entry: u32, tp: Tp) {
    let shard = c.shards[entry as usize].clone();
    let broker = shard.config.node_id;
    let Ok(owner) = shard.metadata().leader_shard(broker, &tp.0, tp.1) else {
        return;
    };
    match read_visible(&shard, owner, &tp).await {
        Ok(Some(read)) => {
            let now = shard.env().now_ms();
            let checked = c.txns.borrow_mut().check_read(&tp, &read, now);
            if let Err(e) = checked {
                c.fail(e);
            }
        }
        Ok(None) => {}
        Err(e) => c.fail(e),
    }
}

/// What a read_committed read of a whole partition saw.
pub struct ReadCommitted {
    /// The values it returned after filtering, with their offsets.
    pub visible: Vec<(Offset, Bytes)>,
    /// Its last stable offset.
    pub lso: Offset,
    /// Where it started: the log start (0 unless retention moved it).
    pub from: Offset,
}

/// Reads `tp` on `owner` from its log start to its last stable offset as a
/// read_committed consumer does, dropping the records of aborted
/// transactions as a client does (from each aborted transaction's first
/// offset, a transactional batch of its producer is skipped until that
/// producer's abort marker). `None` when the partition is not readable
/// now (an error a client retries).
pub async fn read_visible(
    shard: &Rc<Shard>,
    owner: u32,
    tp: &Tp,
) -> Result<Option<ReadCommitted>, String> {
    let mut next = 0;
    let mut lso: Offset;
    let mut visible = Vec::new();
    let mut aborting: BTreeSet<i64> = BTreeSet::new();
    // Aborted transactions learnt so far: (first offset, producer).
    let mut pending: BTreeSet<(Offset, i64)> = BTreeSet::new();
    let mut first = true;
    // Where the read started: the log start, if retention moved it.
    let mut from = 0;
    loop {
        let request = Fetch {
            reads: vec![PartitionRead {
                topic: tp.0.clone(),
                partition: tp.1,
                offset: next,
                max_bytes: 1 << 20,
                replica_id: -1,
                log_start_offset: -1,
                current_leader_epoch: -1,
                read_committed: true,
            }],
            max_bytes: 1 << 20,
            have_data: false,
        };
        let result = match shard.call(owner, request).await {
            Ok(mut results) if results.len() == 1 => results.remove(0),
            _ => return Ok(None),
        };
        if result.error == ErrorCode::OffsetOutOfRange && first {
            next = result.log_start_offset.max(0);
            from = next;
            first = false;
            continue;
        }
        if result.error != ErrorCode::None {
            return Ok(None);
        }
        first = false;
        lso = result.last_stable_offset;
        if result.last_stable_offset > result.high_watermark {
            return Err(format!(
                "{tp:?}: last stable offset {} past the high watermark {}",
                result.last_stable_offset, result.high_watermark
            ));
        }
        for a in &result.aborted {
            pending.insert((a.first_offset, a.producer_id));
        }
        let records = result.records.to_bytes();
        if records.is_empty() {
            break;
        }
        for batch in BatchIter::new(records) {
            let batch = batch.map_err(|e| format!("{tp:?}: {e}"))?;
            let header = batch.header();
            if header.last_offset() >= lso {
                return Err(format!(
                    "{tp:?}: read_committed returned offset {} at or past the last stable offset {lso}",
                    header.last_offset()
                ));
            }
            next = batch.next_offset();
            while let Some(&(at, producer)) = pending.first() {
                if at > header.last_offset() {
                    break;
                }
                pending.pop_first();
                aborting.insert(producer);
            }
            if header.is_control() {
                if control_type(&header, batch.bytes()) == Some(ControlType::Abort) {
                    aborting.remove(&header.producer_id);
                }
                continue;
            }
            if header.is_transactional() && aborting.contains(&header.producer_id) {
                continue;
            }
            for record in RecordIter::new(&batch).map_err(|e| format!("{tp:?}: {e}"))? {
                let record = record.map_err(|e| format!("{tp:?}: {e}"))?;
                visible.push((record.offset, record.value.unwrap_or_default()));
            }
        }
        if next >= lso {
            break;
        }
    }
    Ok(Some(ReadCommitted { visible, lso, from }))
}
