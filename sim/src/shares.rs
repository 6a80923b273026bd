//! Simulated share consumers (KIP-932), over the share partitions on the
//! partitions' owner shards and their state on `__share_group_state`.
//!
//! Owns: the share operations of the run and their promises in
//! [`ShareModel`]. A share consumer is one task: a member of a share group
//! fetching one partition for a few rounds, each round a ShareFetch (the
//! shard call its handler makes) carrying the acknowledgements of the
//! records the round before acquired: some accepted, some released, some
//! rejected, some renewed (RENEW, KIP-1222: held on, and acknowledged
//! in the round after), some left to their lock's expiry; offsets without
//! a record (transaction markers) are acknowledged as gaps. Some members close
//! their session at the end, which releases what they hold.
//!
//! Invariants (checked at every answer, records known by their values,
//! which are unique in a run, so a record written again at an offset a
//! power loss freed is a new record):
//! - a record is acquired by at most one member at a time: no request
//!   sent after another member's answer handed the record out gets it
//!   while that member's lock surely holds (less than a lock duration
//!   after that member's request, or after the request that last renewed
//!   it and was answered without error) and it has not acknowledged it;
//! - a record whose acceptance or rejection was answered without error is
//!   never acquired again by a request sent after that answer, across
//!   crashes (the state is written before the answer);
//! - no record is delivered more often than the delivery limit (within a
//!   process lifetime: acquisitions are not written, as in Kafka);
//! - a delivery counts when an answer hands the record out, not when the
//!   broker acquires it: a record's delivery count is at most one more
//!   than the answers that handed it to its group plus the group's
//!   ShareFetches of its partition whose answers have not come, still on
//!   their way or lost (a fetch whose answer was made later than its
//!   locks lasted, or whose acquisition a write stored before a crash,
//!   must not count; `deliveries.rs` keeps the ledger);
//! - group `q1` reads committed records only (`share.isolation.level=
//!   read_committed`): it never gets a record of a transaction that was
//!   aborted or not committed yet;
//! - at the end (checked by [`close_all`]), every record of every share
//!   partition is done with: accepted, rejected or archived, the start
//!   offset at the high watermark with nothing in flight;
//! - group `q0` has a dead-letter topic (KIP-1191, copying records): at
//!   the end it holds each record of `q0` at most once, every one it holds
//!   was rejected by `q0` or handed to it as often as the delivery limit
//!   (counting, again, the ShareFetches of its partition whose answers
//!   never came), and every record whose rejection was answered
//!   without error is there, with its value or, when retention deleted
//!   it before the write, as a record without one that names its topic,
//!   partition and offset (written before the answer, synced, and never
//!   written twice across crashes; a state is written only once the
//!   records it names are durable, so no power loss makes it name new
//!   records at freed offsets).

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use bytes::Bytes;
use sluice_core::batch::BatchIter;
use sluice_core::records::RecordIter;
use sluice_core::share::dead_letter::{context_of, DeadLetter, DLQ_GROUP_ENABLE};
use sluice_core::share::partition::{Acquired, ShareConfig};
use sluice_core::share::state::SHARE_STATE_TOPIC;
use sluice_core::{ErrorCode, Offset, PartitionId};
use sluice_shard::message::{
    DescribeSharePartitions, Fetch, ListOffsets, PartitionRead, Propose, SharePartitionRead,
    ShareRead, ShareReadResult, ShareSettings, StoredSharePartitions,
};
use sluice_shard::simulated::Rng;
use sluice_shard::{Proposal, Shard};

use crate::client::Clients;
use crate::deliveries::DeliveryLedger;
use crate::groups::ensure_internal_topic;
use crate::model::Tp;

/// Partitions of `__share_group_state` in the simulation.
pub const SHARE_STATE_PARTITIONS: i32 = 2;
/// The share groups' lock duration: short, so a run's clock passes it.
pub const LOCK_MS: i64 = 2_000;
/// The share groups' delivery limit.
pub const DELIVERY_LIMIT: u16 = 3;

/// The share group with a dead-letter topic, and that topic (made with
/// `__share_group_state`).
pub const DLQ_GROUP: &str = "q0";
pub const DLQ_TOPIC: &str = "dlq.q0";
const DLQ_PARTITIONS: i32 = 2;

/// The share group that reads committed records only.
pub const READ_COMMITTED_GROUP: &str = "q1";

/// The settings of simulated share group `group`.
pub fn settings(group: &str) -> ShareSettings {
    let dead_letter = (group == DLQ_GROUP).then(|| DeadLetter {
        topic: DLQ_TOPIC.to_owned(),
        copy_record: true,
    });
    ShareSettings {
        partition: ShareConfig {
            lock_duration_ms: LOCK_MS,
            delivery_count_limit: DELIVERY_LIMIT,
            max_record_locks: 64,
            dead_letter: dead_letter.is_some(),
            renew_acknowledge: true,
        },
        reset: sluice_core::group::configs::ShareReset::Earliest,
        dead_letter,
        read_committed: group == READ_COMMITTED_GROUP,
    }
}

/// A record of a share group: (group, value).
type Held = (String, Bytes);

/// The promises about share groups.
#[derive(Debug, Default)]
pub struct ShareModel {
    /// Records held now: → (member, when the answer that handed it out
    /// came, the earliest its lock can expire).
    held: BTreeMap<Held, (String, i64, i64)>,
    /// Records whose acceptance or rejection was answered, with when:
    /// never acquired again by a request sent after that.
    done: BTreeMap<Held, i64>,
    /// (group, partition) pairs a share consumer read.
    pub used: BTreeSet<(String, Tp)>,
    /// Which fetch handed out which record, to check delivery counts.
    deliveries: DeliveryLedger,
    /// Values of [`DLQ_GROUP`] a rejection was sent for, and those whose
    /// rejection was answered without error (with their topic, partition
    /// and offset).
    dlq_reject_sent: BTreeSet<Bytes>,
    dlq_rejected: BTreeMap<Bytes, (String, PartitionId, Offset)>,
    /// Dead-letter records checked at the end.
    pub dead_letters: u64,
    pub acquired: u64,
    pub acknowledged: u64,
    pub checks: u64,
}

impl ShareModel {
    /// After a crash: nothing is held (acquisitions are not durable).
    pub fn crashed(&mut self) {
        self.held.clear();
        self.deliveries.crashed();
    }

    /// A topic's deletion was acknowledged: its share partitions go.
    pub fn forget_topic(&mut self, topic: &str) {
        self.used.retain(|(_, (t, _))| t != topic);
        self.dlq_rejected.retain(|_, (t, _, _)| t != topic);
    }

    /// Checks the records of `tp` that `member`'s request acquired at
    /// `now` (sent at `sent`; `fetch` in the delivery ledger, if it
    /// fetched), each (value, delivery count), and holds them.
    #[allow(clippy::too_many_arguments)]
    fn acquired(
        &mut self,
        group: &str,
        member: &str,
        tp: &Tp,
        fetch: Option<u64>,
        records: &[(Bytes, u16)],
        sent: i64,
        now: i64,
    ) -> Result<(), String> {
        if let Some(fetch) = fetch {
            self.deliveries.answered(group, tp, fetch, records)?;
        }
        for (value, count) in records {
            self.checks += 1;
            self.acquired += 1;
            let key = (group.to_owned(), value.clone());
            // The acquisition happened between `sent` and `now`: it is
            // wrong only if it surely came after what it contradicts.
            if let Some(done_at) = self.done.get(&key) {
                if *done_at <= sent {
                    return Err(format!(
                        "share group {group}: {} delivered to {member} after it was accepted or rejected",
                        short(value)
                    ));
                }
            }
            if *count > DELIVERY_LIMIT || *count == 0 {
                return Err(format!(
                    "share group {group}: {} delivered with count {count} (limit {DELIVERY_LIMIT})",
                    short(value)
                ));
            }
            if let Some((holder, held_from, expires)) = self.held.get(&key) {
                if holder != member && sent >= *held_from && now < *expires {
                    return Err(format!(
                        "share group {group}: {} acquired by {member} between {sent} and {now} while {holder} held it from {held_from} until at least {expires}",
                        short(value)
                    ));
                }
            }
            self.held
                .insert(key, (member.to_owned(), now, sent + LOCK_MS));
        }
        Ok(())
    }
}

fn short(value: &Bytes) -> String {
    String::from_utf8_lossy(&value[..value.len().min(24)]).into_owned()
}

/// Creates `__share_group_state` as the share handlers do the first time,
/// and [`DLQ_TOPIC`] before it (an operator's topic for dead letters).
pub async fn ensure_state_topic(c: &Rc<Clients>, entry: u32) {
    let shard = c.shards[entry as usize].clone();
    if shard.metadata().topics.contains_key(SHARE_STATE_TOPIC) {
        return;
    }
    if !shard.metadata().topics.contains_key(DLQ_TOPIC) {
        let proposal = Proposal::CreateTopic {
            name: DLQ_TOPIC.to_owned(),
            partitions: DLQ_PARTITIONS,
            replication_factor: 1,
            assignments: Vec::new(),
            // Kept whole, as an operator keeps dead letters: the run checks
            // every one is there (retention passes run, and the virtual
            // clock passes the default 7 days).
            configs: vec![
                (DLQ_GROUP_ENABLE.into(), "true".into()),
                ("retention.ms".into(), "-1".into()),
            ],
            validate_only: false,
        };
        let ok = matches!(shard.call(0, Propose(proposal)).await, Ok(Ok(_)));
        c.trace.borrow_mut().event(&format!(
            "create {DLQ_TOPIC}: {}",
            if ok { "ok" } else { "failed" }
        ));
        if !ok {
            return;
        }
    }
    let ok = ensure_internal_topic(&shard, SHARE_STATE_TOPIC, SHARE_STATE_PARTITIONS).await;
    c.trace.borrow_mut().event(&format!(
        "create {SHARE_STATE_TOPIC}: {}",
        if ok { "ok" } else { "failed" }
    ));
}

/// One ShareFetch (or, without `acquire`, a ShareAcknowledge; with
/// `release`, the session's close) of `tp` for `member`, through shard
/// `entry` to the partition's owner, as the handlers make it.
#[allow(clippy::too_many_arguments)]
async fn share_read(
    shard: &Rc<Shard>,
    group: &str,
    member: &str,
    tp: &Tp,
    acks: Vec<(Offset, Offset, Vec<i8>)>,
    acquire: bool,
    release: bool,
    max_records: usize,
) -> Result<ShareReadResult, ErrorCode> {
    let (owner, topic_id) = {
        let metadata = shard.metadata();
        let owner = metadata.leader_shard(shard.config.node_id, &tp.0, tp.1)?;
        let id = metadata
            .topics
            .get(&tp.0)
            .ok_or(ErrorCode::UnknownTopicOrPartition)?
            .id;
        (owner, id)
    };
    let request = ShareRead {
        group_id: group.to_owned(),
        member_id: member.to_owned(),
        partitions: vec![SharePartitionRead {
            topic: tp.0.clone(),
            topic_id,
            partition: tp.1,
            max_bytes: 64 * 1024,
            acks,
            fetch: acquire,
        }],
        acquire,
        max_records,
        max_bytes: 64 * 1024,
        release,
        settings: settings(group),
        record_limit: false,
    };
    let mut results = shard
        .call(owner, request)
        .await
        .map_err(|_| ErrorCode::CoordinatorNotAvailable)?;
    results.pop().ok_or(ErrorCode::UnknownServerError)
}

/// The (offset, value) of every data record in `result`'s batches.
fn values(result: &ShareReadResult) -> BTreeMap<Offset, Bytes> {
    let mut out = BTreeMap::new();
    for piece in result.records.pieces() {
        for batch in BatchIter::new(piece.clone()).flatten() {
            if batch.is_control() {
                continue;
            }
            let Ok(records) = RecordIter::new(&batch) else {
                continue;
            };
            for r in records.flatten() {
                if let Some(v) = r.value {
                    out.insert(r.offset, v);
                }
            }
        }
    }
    out
}

/// The acquired offsets of `acquired` with their delivery counts.
fn offsets(acquired: &[Acquired]) -> Vec<(Offset, u16)> {
    acquired
        .iter()
        .flat_map(|a| (a.first..=a.last).map(move |o| (o, a.delivery_count)))
        .collect()
}

/// The records of `acquired` (offset, delivery count) that have a value
/// in `values`, as (value, delivery count).
fn handed_out(acquired: &[(Offset, u16)], values: &BTreeMap<Offset, Bytes>) -> Vec<(Bytes, u16)> {
    acquired
        .iter()
        .filter_map(|(o, n)| values.get(o).map(|v| (v.clone(), *n)))
        .collect()
}

/// A share consumer: `rounds` ShareFetches of `tp` as `member` of `group`,
/// its acknowledgements chosen by `seed`; with `close`, a last request
/// that closes its session.
#[derive(Debug, Clone)]
pub struct ShareConsumer {
    pub entry: u32,
    pub group: String,
    pub member: String,
    pub tp: Tp,
    pub rounds: u32,
    pub close: bool,
    pub seed: u64,
}

/// Runs one [`ShareConsumer`].
pub async fn consume(c: &Rc<Clients>, consumer: ShareConsumer) {
    let ShareConsumer {
        entry,
        group,
        member,
        tp,
        rounds,
        close,
        seed,
    } = consumer;
    let shard = c.shards[entry as usize].clone();
    let mut rng = Rng::new(seed);
    c.shares
        .borrow_mut()
        .used
        .insert((group.clone(), tp.clone()));
    // Acknowledgements for the next request: (offset, type, value).
    let mut pending: Vec<(Offset, i8, Option<Bytes>)> = Vec::new();
    for round in 0..=rounds {
        let last = round == rounds;
        if last && !close && pending.is_empty() {
            break;
        }
        let acks: Vec<(Offset, Offset, Vec<i8>)> =
            pending.iter().map(|(o, t, _)| (*o, *o, vec![*t])).collect();
        let sent = shard.env().now_ms();
        // Records being acknowledged are no longer held once it applies
        // (a renewal holds on only once answered without error: the lock
        // may have run out before it arrived); closing the session gives
        // back whatever the member holds.
        {
            let mut shares = c.shares.borrow_mut();
            for (_, kind, value) in &pending {
                let Some(v) = value else { continue };
                if *kind != 4 {
                    shares.held.remove(&(group.clone(), v.clone()));
                }
            }
            if last && close {
                shares.held.retain(|_, (holder, _, _)| *holder != member);
            }
        }
        let max_records = 1 + rng.below(6) as usize;
        if group == DLQ_GROUP {
            let mut shares = c.shares.borrow_mut();
            for (_, kind, value) in &pending {
                if let (3, Some(v)) = (kind, value) {
                    shares.dlq_reject_sent.insert(v.clone());
                }
            }
        }
        let fetch = (!last).then(|| c.shares.borrow_mut().deliveries.sent(&group, &tp));
        let answer = share_read(
            &shard,
            &group,
            &member,
            &tp,
            acks,
            !last,
            last && close,
            max_records,
        )
        .await;
        let now = shard.env().now_ms();
        let result = match answer {
            Ok(r) => {
                if let (Some(fetch), true) = (fetch, r.error != ErrorCode::None) {
                    // A failed fetch acquires nothing.
                    let checked =
                        c.shares
                            .borrow_mut()
                            .deliveries
                            .answered(&group, &tp, fetch, &[]);
                    if let Err(message) = checked {
                        c.fail(message);
                        return;
                    }
                }
                r
            }
            Err(e) => {
                if let Some(fetch) = fetch {
                    c.shares.borrow_mut().deliveries.lost(&group, &tp, fetch);
                }
                c.trace
                    .borrow_mut()
                    .event(&format!("share {group} {member} {tp:?}: {e}"));
                return;
            }
        };
        c.trace.borrow_mut().event(&format!(
            "share {group} {member} {tp:?}: {} acks {:?}, error {}, acquired {:?}",
            pending.len(),
            result.ack_error,
            result.error,
            result.acquired
        ));
        let mut shares = c.shares.borrow_mut();
        // Records renewed without error are the member's to acknowledge
        // again (accepted, released or rejected this time).
        let renewed: Vec<(Offset, Option<Bytes>)> =
            if result.ack_error == ErrorCode::None && result.error == ErrorCode::None {
                pending
                    .iter()
                    .filter(|(_, kind, _)| *kind == 4)
                    .map(|(o, _, v)| (*o, v.clone()))
                    .collect()
            } else {
                Vec::new()
            };
        if result.ack_error == ErrorCode::None && result.error == ErrorCode::None {
            for (offset, kind, value) in &pending {
                // Accept (1) and reject (3): done for good.
                if let (1 | 3, Some(v)) = (kind, value) {
                    shares.acknowledged += 1;
                    shares.done.insert((group.clone(), v.clone()), now);
                }
                if let (3, Some(v), true) = (kind, value, group == DLQ_GROUP) {
                    shares
                        .dlq_rejected
                        .insert(v.clone(), (tp.0.clone(), tp.1, *offset));
                }
            }
        }
        pending.clear();
        if result.error != ErrorCode::None {
            return;
        }
        for (offset, value) in renewed {
            // Renewed: still the member's, locked for at least a lock
            // duration from this request.
            let held = value
                .as_ref()
                .and_then(|v| shares.held.get_mut(&(group.clone(), v.clone())));
            if let Some(held) = held.filter(|h| h.0 == member) {
                held.2 = held.2.max(sent + LOCK_MS);
            }
            let kind = match rng.below(3) {
                0 => 1,
                1 => 2,
                _ => 3,
            };
            pending.push((offset, kind, value));
        }
        let values = values(&result);
        let acquired = offsets(&result.acquired);
        let records = handed_out(&acquired, &values);
        if let Err(message) = shares.acquired(&group, &member, &tp, fetch, &records, sent, now) {
            drop(shares);
            c.fail(message);
            return;
        }
        if group == READ_COMMITTED_GROUP {
            let txns = c.txns.borrow();
            for (value, _) in &records {
                let uncommitted = txns
                    .by_value
                    .get(value)
                    .and_then(|i| txns.txns.get(*i))
                    .is_some_and(|run| !run.may_commit());
                if uncommitted {
                    let message = format!(
                        "share group {group} (read_committed) got {} of a transaction not committed",
                        short(value)
                    );
                    drop(txns);
                    drop(shares);
                    c.fail(message);
                    return;
                }
            }
        }
        for (offset, _) in acquired {
            let value = values.get(&offset).cloned();
            let kind = match (&value, rng.below(100)) {
                // No record at this offset (a marker): a gap.
                (None, _) => 0,
                (Some(_), 0..=49) => 1,
                (Some(_), 50..=64) => 2,
                (Some(_), 65..=74) => 3,
                // Renewed: kept, and acknowledged in the round after.
                (Some(_), 75..=79) => 4,
                // Left to its lock's expiry.
                (Some(_), _) => continue,
            };
            pending.push((offset, kind, value));
        }
    }
}

/// At the end of a run (a task, which the run's drain lets finish): a
/// closer accepts whatever each used share partition still holds, waiting
/// out the locks, until nothing is left; then every share partition must
/// be done with up to its high watermark. A partition that cannot be read
/// (a disk fault took it offline) is not checked.
pub async fn close_all(c: &Rc<Clients>) {
    let used: Vec<(String, Tp)> = c.shares.borrow().used.iter().cloned().collect();
    let shard = c.shards[0].clone();
    for (group, tp) in used {
        if !c.model.borrow().topics.contains_key(&tp.0) {
            continue;
        }
        match close_one(c, &shard, &group, &tp).await {
            Ok(()) => {}
            Err(Ok(e)) => {
                c.trace
                    .borrow_mut()
                    .event(&format!("share close {group} {tp:?}: not checked, {e}"));
            }
            Err(Err(message)) => {
                c.fail(message);
                return;
            }
        }
    }
    if let Err(message) = c.shares.borrow_mut().deliveries.check_all() {
        c.fail(message);
        return;
    }
    if let Err(message) = check_dead_letters(c, &shard).await {
        c.fail(message);
    }
}

/// The dead-letter invariants of the module doc, over all of
/// [`DLQ_TOPIC`] (read from each partition's leader).
async fn check_dead_letters(c: &Rc<Clients>, shard: &Rc<Shard>) -> Result<(), String> {
    if !shard.metadata().topics.contains_key(DLQ_TOPIC) {
        return Ok(());
    }
    let mut seen: BTreeMap<Bytes, (String, Offset)> = BTreeMap::new();
    // Dead letters without a value (their source record was gone when
    // they were written: retention, DeleteRecords, a power loss, a deleted
    // topic), by the source they name.
    let mut headers_only: BTreeSet<(String, PartitionId, Offset)> = BTreeSet::new();
    for partition in 0..DLQ_PARTITIONS {
        let Ok(owner) = shard
            .metadata()
            .leader_shard(shard.config.node_id, DLQ_TOPIC, partition)
        else {
            return Ok(());
        };
        let mut offset = 0;
        for _ in 0..10_000 {
            let request = Fetch {
                reads: vec![PartitionRead {
                    topic: DLQ_TOPIC.to_owned(),
                    partition,
                    offset,
                    max_bytes: 256 * 1024,
                    replica_id: -1,
                    log_start_offset: -1,
                    current_leader_epoch: -1,
                    read_committed: false,
                }],
                max_bytes: 256 * 1024,
                have_data: false,
            };
            let result = match shard.call(owner, request).await {
                Ok(mut results) if results.len() == 1 => results.remove(0),
                other => return Err(format!("reading {DLQ_TOPIC} [{partition}]: {other:?}")),
            };
            if result.error != ErrorCode::None {
                return Err(format!(
                    "reading {DLQ_TOPIC} [{partition}]: {}",
                    result.error
                ));
            }
            let before = offset;
            for piece in result.records.pieces() {
                for batch in BatchIter::new(piece.clone()).flatten() {
                    offset = offset.max(batch.next_offset());
                    let Ok(records) = RecordIter::new(&batch) else {
                        continue;
                    };
                    for r in records.flatten() {
                        let Some((group, topic, partition, source)) = context_of(&r) else {
                            return Err(format!(
                                "{DLQ_TOPIC} [{partition}] {}: no dead-letter context",
                                r.offset
                            ));
                        };
                        let Some(value) = r.value else {
                            headers_only.insert((topic, partition, source));
                            continue;
                        };
                        c.shares.borrow_mut().dead_letters += 1;
                        if group != DLQ_GROUP {
                            return Err(format!("{DLQ_TOPIC}: a record of group {group}"));
                        }
                        let shares = c.shares.borrow();
                        let tp = (topic.clone(), partition);
                        let deliveries = shares.deliveries.deliveries_at_most(&group, &tp, &value);
                        if !shares.dlq_reject_sent.contains(&value)
                            && deliveries < u32::from(DELIVERY_LIMIT)
                        {
                            return Err(format!("{DLQ_TOPIC}: {} ({topic} offset {source}) was never rejected, and handed to {group} at most {deliveries} times", short(&value)));
                        }
                        drop(shares);
                        if let Some((t, o)) = seen.insert(value.clone(), (topic.clone(), source)) {
                            return Err(format!("{DLQ_TOPIC}: {} written twice ({t} offset {o}, then {topic} offset {source})", short(&value)));
                        }
                    }
                }
            }
            if offset == before || offset >= result.high_watermark {
                break;
            }
        }
    }
    let shares = c.shares.borrow();
    let existing = shard.metadata();
    for (value, (topic, partition, offset)) in &shares.dlq_rejected {
        let source = (topic.clone(), *partition, *offset);
        if existing.topics.contains_key(topic)
            && !seen.contains_key(value)
            && !headers_only.contains(&source)
        {
            return Err(format!(
                "{DLQ_TOPIC}: {} ({topic}) was rejected, the rejection answered, and it is not there",
                short(value)
            ));
        }
    }
    Ok(())
}

/// [`close_all`] for one share partition: `Err(Ok(code))` when it could
/// not be read, `Err(Err(message))` for a broken invariant.
async fn close_one(
    c: &Rc<Clients>,
    shard: &Rc<Shard>,
    group: &str,
    tp: &Tp,
) -> Result<(), Result<ErrorCode, String>> {
    let mut acks: Vec<(Offset, Offset, Vec<i8>)> = Vec::new();
    for _ in 0..200 {
        // With nothing to acknowledge, wait until every lock taken before
        // is past (with acknowledgements to send, the closer's own locks
        // must still hold).
        if acks.is_empty() {
            shard
                .env()
                .sleep(std::time::Duration::from_millis(LOCK_MS as u64 + 1))
                .await;
        }
        let fetch = c.shares.borrow_mut().deliveries.sent(group, tp);
        let result = share_read(
            shard,
            group,
            "closer",
            tp,
            std::mem::take(&mut acks),
            true,
            false,
            50,
        )
        .await
        .map_err(|e| {
            c.shares.borrow_mut().deliveries.lost(group, tp, fetch);
            Ok(e)
        })?;
        let values = values(&result);
        let records = handed_out(&offsets(&result.acquired), &values);
        c.shares
            .borrow_mut()
            .deliveries
            .answered(group, tp, fetch, &records)
            .map_err(Err)?;
        if result.error != ErrorCode::None {
            return Err(Ok(result.error));
        }
        if result.ack_error != ErrorCode::None {
            return Err(Ok(result.ack_error));
        }
        acks = offsets(&result.acquired)
            .into_iter()
            .map(|(o, _)| (o, o, vec![if values.contains_key(&o) { 1 } else { 0 }]))
            .collect();
        if acks.is_empty() && result.next_deadline_ms.is_none() {
            break;
        }
    }
    let (owner, topic_id) = {
        let metadata = shard.metadata();
        let owner = metadata
            .leader_shard(shard.config.node_id, &tp.0, tp.1)
            .map_err(Ok)?;
        (owner, metadata.topics.get(&tp.0).map(|t| t.id))
    };
    let states = shard
        .call(
            owner,
            DescribeSharePartitions {
                group_id: group.to_owned(),
            },
        )
        .await
        .map_err(|_| Ok(ErrorCode::CoordinatorNotAvailable))?;
    let Some(state) = states
        .iter()
        .find(|s| Some(s.topic_id) == topic_id && s.partition == tp.1)
    else {
        return Ok(());
    };
    c.shares.borrow_mut().checks += 1;
    // What is stored is never ahead of what the holder holds (it writes
    // every change before answering): a describe trusts the holder so.
    for state_shard in 0..shard.shards {
        let stored = shard
            .call(
                state_shard,
                StoredSharePartitions {
                    group_id: group.to_owned(),
                },
            )
            .await
            .map_err(|_| Ok(ErrorCode::CoordinatorNotAvailable))?
            .map_err(Ok)?;
        if let Some(ahead) = stored.iter().find(|s| {
            Some(s.topic_id) == topic_id
                && s.partition == tp.1
                && s.start_offset > state.start_offset
        }) {
            return Err(Err(format!(
                "share group {group} {tp:?}: stored start {} ahead of the held {state:?}",
                ahead.start_offset
            )));
        }
    }
    // A read_committed group is done up to the last stable offset (a
    // transaction still open holds the rest back).
    let done_with = if group == READ_COMMITTED_GROUP {
        let listed = shard
            .call(
                owner,
                ListOffsets {
                    partitions: vec![(tp.0.clone(), tp.1, -1)],
                    read_committed: true,
                },
            )
            .await
            .map_err(|_| Ok(ErrorCode::CoordinatorNotAvailable))?;
        match listed.first() {
            Some(l) if l.error == ErrorCode::None => {
                state.in_flight == 0 && state.start_offset >= l.offset
            }
            Some(l) => return Err(Ok(l.error)),
            None => return Err(Ok(ErrorCode::UnknownServerError)),
        }
    } else {
        state.in_flight == 0 && state.lag == 0
    };
    if !done_with {
        return Err(Err(format!(
            "share group {group} {tp:?} not done with at the end: {state:?}"
        )));
    }
    Ok(())
}
