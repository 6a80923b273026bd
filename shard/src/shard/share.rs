//! Share partitions on the owner shard of the partition's leader (KIP-932's
//! share-partition leader): a share group member's acknowledgements, its
//! acquisitions and the reads of what it acquired; and their durable state
//! on `__share_group_state` (this shard's part of Kafka's share
//! coordinator: the leader of a state partition writes and reads its
//! records, and lists a group's states for a describe).
//!
//! Owns: one [`ShareEntry`] per (group, topic id, partition) read here. At
//! its first use after a start its state is read back from its
//! `__share_group_state` partition (the latest ShareSnapshot of its key);
//! a share partition with none starts at the log's start
//! (`share.auto.offset.reset=earliest`), its high watermark (latest), or
//! its first record no older than a duration (`by_duration:`), and that
//! start is written at once. Acknowledgements apply before
//! acquisitions, expired locks are let go before either, records the
//! log's start passed are done with, and offsets past the log's end (a
//! power loss took unsynced records) are forgotten, so what is written
//! there next is delivered.
//!
//! Invariants:
//! - A state is written only once the log holds every record up to its
//!   end durably (the log is synced first if it must be): after a power
//!   loss no state names an offset the loss freed.
//! - A change to the durable form (an acknowledgement, a release, a lock
//!   that expired into the archive, the start moving) is written as a
//!   whole snapshot before the request that made it is answered; writes of
//!   one share partition go one at a time, each of the state at its start,
//!   so the last one written is never older than one before it (a write
//!   that finds a later state already written is skipped). Acquisitions
//!   are not written: after a restart, records acquired then are
//!   available again (or archived at the delivery limit), as Kafka's are.
//! - A record is acquired by one member at a time (the state machine's);
//!   every offset acquired for a member is in the batches returned to it,
//!   or taken back before the answer (uncounted, as if never handed out);
//!   new records are handed out in whole log batches, as Kafka's
//!   `batch_optimized` acquisition does, even past `max_records`.
//! - No borrow of the table is held across an await. The table holds at
//!   most one entry per group and partition read here, each bounded by
//!   `max_record_locks`, and at most `shard.share_partitions_max` entries
//!   when a new one comes: idle ones (nothing acquired, everything
//!   written) are dropped, least recently used first, and read back at
//!   their next use; with none idle the new one is refused
//!   (COORDINATOR_LOAD_IN_PROGRESS, retriable).

use std::collections::HashMap;

use bytes::Bytes;
use glommio::sync::Semaphore;
use sluice_core::batch::{last_offset_in, BatchBuilder, BatchHeader, BatchIter};
use sluice_core::group::configs::ShareReset;
use sluice_core::metadata::LeaderHome;
use sluice_core::records::RecordIter;
use sluice_core::share::partition::{AckType, Acquired, RecordState, SharePartition};
use sluice_core::share::state::{ShareKey, ShareSnapshot, StateRecord, SHARE_STATE_TOPIC};

use crate::message::{
    DescribeSharePartitions, ForgetShareGroup, ReadShareState, RecordSet, ResetSharePartition,
    SharePartitionState, ShareRead, ShareReadResult, ShareSettings, StoredSharePartitions,
    StoredShareState, WriteShareState,
};

use super::*;

/// How long a state write waits for the in-sync replicas.
const STATE_WRITE_TIMEOUT_MS: u64 = 5_000;
/// Bytes read per step when a share partition's state is read back.
const STATE_READ_BYTES: usize = 1024 * 1024;
/// Bytes of records read per step for what a member acquired.
const READ_STEP_BYTES: usize = 256 * 1024;

/// One share partition and the bookkeeping of its durable state.
pub(crate) struct ShareEntry {
    pub(super) partition: SharePartition,
    /// Changes made to the durable form so far, and how many of them are
    /// written.
    pub(super) changes: u64,
    pub(super) written: u64,
    /// One state write at a time.
    pub(super) turn: Rc<Semaphore>,
    created_ms: i64,
    /// Records may be Archiving: their dead-letter records are due.
    pub(super) dead_letters_due: bool,
    /// Read back with Archiving records: when the state read was written
    /// (their dead-letter records, if written, are no older).
    pub(super) dead_letters_since_ms: Option<i64>,
    /// When a request last used it (the least recently used idle entry
    /// goes first when the table is full).
    last_used_ms: i64,
}

impl ShareEntry {
    fn new(partition: SharePartition, changes: u64, created_ms: i64) -> ShareEntry {
        ShareEntry {
            partition,
            changes,
            written: 0,
            turn: Rc::new(Semaphore::new(1)),
            created_ms,
            dead_letters_due: false,
            dead_letters_since_ms: None,
            last_used_ms: created_ms,
        }
    }

    /// Nothing in it lives only in memory: nothing acquired, nothing on
    /// its way to the dead-letter topic, every change written, no write
    /// under way. Dropping it loses nothing (it is read back).
    fn is_idle(&self) -> bool {
        self.partition.is_settled()
            && !self.dead_letters_due
            && self.written >= self.changes
            && self.turn.available() == 1
    }
}

/// Makes room for one more entry in `table` (at most `max` entries): drops
/// the least recently used idle ones while it is full. False when it is
/// full of entries that are not idle.
fn make_room(table: &mut HashMap<ShareKey, ShareEntry>, max: usize) -> bool {
    while table.len() >= max.max(1) {
        let oldest = table
            .iter()
            .filter(|(_, e)| e.is_idle())
            // Ties go by key: the table's order is a hash's.
            .min_by_key(|(k, e)| (e.last_used_ms, (*k).clone()))
            .map(|(k, _)| k.clone());
        match oldest {
            Some(key) => {
                table.remove(&key);
            }
            None => return false,
        }
    }
    true
}

impl Shard {
    /// [`ShareRead`]: each partition's acknowledgements, then (for a
    /// ShareFetch) acquisitions within the request's record and byte
    /// budgets, read from the log.
    pub(crate) async fn share_read(self: &Rc<Self>, op: ShareRead) -> Vec<ShareReadResult> {
        let mut records_left = op.max_records;
        let mut bytes_left = op.max_bytes;
        let mut out = Vec::with_capacity(op.partitions.len());
        for read in &op.partitions {
            let Some(p) = self.partition(&read.topic, read.partition) else {
                out.push(ShareReadResult::failed(
                    self.absence_error(&read.topic, read.partition),
                ));
                continue;
            };
            if p.log.is_offline() {
                out.push(ShareReadResult::failed(ErrorCode::KafkaStorageError));
                continue;
            }
            let key = ShareKey {
                group_id: op.group_id.clone(),
                topic_id: read.topic_id,
                partition: read.partition,
            };
            if let Err(e) = self.load_share_partition(&key, &p, &op.settings).await {
                out.push(ShareReadResult::failed(e));
                continue;
            }
            let now = self.env.now_ms();
            // What may be acquired: up to the high watermark, or for a
            // read_committed group the last stable offset.
            let hw = p.high_watermark();
            let hw = if op.settings.read_committed {
                p.log.last_stable_offset(hw)
            } else {
                hw
            };
            let log_start = p.log.log_start_offset();
            let (mut ack_error, acquired, change, archiving) = {
                let mut table = self.share_partitions.borrow_mut();
                let Some(entry) = table.get_mut(&key) else {
                    out.push(ShareReadResult::failed(ErrorCode::UnknownServerError));
                    continue;
                };
                entry.last_used_ms = now;
                let sp = &mut entry.partition;
                let log_end = p.log.log_end_offset();
                // The durable form is compared only when something below
                // can change it (most fetches carry none of these).
                let may_change = !read.acks.is_empty()
                    || op.release
                    || sp.config() != op.settings.partition
                    || sp.next_deadline_ms().is_some_and(|d| d <= now)
                    || log_start > sp.start_offset()
                    || log_end < sp.end_offset();
                let before = may_change.then(|| sp.state_batches());
                sp.set_config(op.settings.partition);
                sp.log_truncated(log_end);
                sp.log_start_moved(log_start);
                sp.expire_locks(now);
                let ack_error = acknowledge(sp, &op.member_id, &read.acks, now);
                if op.release {
                    sp.release_member(&op.member_id);
                }
                let mut archiving = false;
                if before.is_some_and(|b| sp.state_batches() != b) {
                    entry.changes += 1;
                    archiving = sp.count(RecordState::Archiving) > 0;
                    entry.dead_letters_due |= archiving;
                }
                let change = entry.changes;
                let sp = &mut entry.partition;
                let acquired = if op.acquire && read.fetch && records_left > 0 && !op.release {
                    sp.acquire(&op.member_id, hw, records_left, now)
                } else {
                    Vec::new()
                };
                if self.env.broken_rule() == Some(crate::env::BrokenRule::DeliveryCountedUnanswered)
                {
                    // Counted before the answer is made.
                    sp.hand_out(&op.member_id, &acquired, now);
                }
                (ack_error, acquired, change, archiving)
            };
            // The acknowledgements are answered once they are durable.
            if let Err(e) = self.write_share_partition(&key, &p, change).await {
                tracing::warn!(group = key.group_id, topic = read.topic, partition = read.partition, error = %e, "writing a share partition's state failed");
                if ack_error == ErrorCode::None && !read.acks.is_empty() {
                    ack_error = e;
                }
            }
            // Records rejected or past the delivery limit are written to
            // the dead-letter topic before the answer.
            self.dead_letter(&key, &read.topic, &p, &op.settings, archiving)
                .await;
            let budget = read.max_bytes.min(bytes_left);
            let at_least_one = out.iter().all(|r: &ShareReadResult| r.records.is_empty());
            let (records, mut delivered, mut error) =
                read_acquired(&p, &acquired, hw, budget, at_least_one).await;
            // A read_committed group never gets an aborted transaction's
            // records: the batches go out, their offsets are not acquired.
            let aborted = if op.settings.read_committed && !records.is_empty() {
                match aborted_batches(&p, &records).await {
                    Ok(ranges) => ranges,
                    Err(e) => {
                        // Delivered without them, aborted data would pass
                        // as committed: nothing is delivered.
                        error = e;
                        delivered.clear();
                        Vec::new()
                    }
                }
            } else {
                Vec::new()
            };
            let mut table = self.share_partitions.borrow_mut();
            let Some(entry) = table.get_mut(&key) else {
                out.push(ShareReadResult::failed(ErrorCode::UnknownServerError));
                continue;
            };
            let sp = &mut entry.partition;
            // Locks count from the answer, not from the acquisition before
            // the writes and the read awaited above: those may take longer
            // than a lock lasts.
            let now = self.env.now_ms();
            // A new range ending inside the last batch returned takes the
            // rest of that batch too (Kafka hands out whole batches).
            let batch_end = records.pieces().last().and_then(|b| last_offset_in(b));
            let batch_end = batch_end.filter(|_| !op.record_limit);
            if let (Some(d), Some(batch_end)) = (delivered.last_mut(), batch_end) {
                if d.last + 1 == sp.end_offset() && batch_end > d.last && batch_end < hw {
                    if let Some(more) = sp.acquire_through(&op.member_id, batch_end, now) {
                        if d.delivery_count == 1 {
                            d.last = more.last;
                        } else {
                            delivered.push(more);
                        }
                    }
                }
            }
            // What the read did not reach goes back, uncounted.
            for a in &acquired {
                let sent_up_to = delivered
                    .iter()
                    .filter(|d| d.first >= a.first && d.first <= a.last)
                    .map(|d| d.last.min(a.last))
                    .max();
                let first_unsent = sent_up_to.map_or(a.first, |last| last + 1);
                if first_unsent <= a.last {
                    sp.unacquire(&op.member_id, first_unsent, a.last);
                }
            }
            for &(first, last) in &aborted {
                sp.archive_aborted(&op.member_id, first, last);
            }
            if !aborted.is_empty() {
                // Not a change to write: read back, they are acquired and
                // archived again.
                delivered = without(delivered, &aborted);
            }
            // What ran out meanwhile (maybe to another member) is not
            // handed out; what is still held is locked from now.
            delivered = sp.hand_out(&op.member_id, &delivered, now);
            if cfg!(debug_assertions) {
                if let Err(broken) = sp.check() {
                    panic!("share partition {key:?}: {broken}");
                }
            }
            let sent: usize = delivered
                .iter()
                .map(|d| (d.last - d.first + 1) as usize)
                .sum();
            records_left = records_left.saturating_sub(sent);
            bytes_left = bytes_left.saturating_sub(records.len());
            self.metrics
                .borrow_mut()
                .bytes_out(&read.topic, records.len());
            out.push(ShareReadResult {
                error,
                ack_error,
                records,
                acquired: delivered,
                end_offset: sp.end_offset(),
                at_lock_limit: sp.in_flight() >= op.settings.partition.max_record_locks,
                next_deadline_ms: sp.next_deadline_ms(),
            });
        }
        out
    }

    /// Makes sure `key`'s share partition is in the table: read back from
    /// its state partition, or made at the group's reset position and
    /// written at once.
    async fn load_share_partition(
        self: &Rc<Self>,
        key: &ShareKey,
        p: &OwnedPartition,
        settings: &ShareSettings,
    ) -> Result<(), ErrorCode> {
        if self.share_partitions.borrow().contains_key(key) {
            return Ok(());
        }
        let value = self.read_state(key).await?;
        let snapshot = match value {
            Some(v) => match StateRecord::decode(&key.encode(), Some(&v)) {
                Ok(StateRecord::Snapshot(_, snapshot)) => snapshot,
                Ok(StateRecord::Update(_)) => None,
                Err(e) => {
                    tracing::error!(group = key.group_id, partition = key.partition, error = ?e, "a share partition's state does not decode");
                    return Err(ErrorCode::CoordinatorNotAvailable);
                }
            },
            None => None,
        };
        let now = self.env.now_ms();
        let (partition, changes) = match &snapshot {
            Some(s) => (
                SharePartition::restore(s.start_offset, &s.batches, settings.partition),
                0,
            ),
            None => {
                let start = match settings.reset {
                    ShareReset::Earliest => p.log.log_start_offset(),
                    ShareReset::Latest => p.high_watermark(),
                    ShareReset::ByDuration(ms) => {
                        let since = now.saturating_sub(ms);
                        match p.log.offset_for_timestamp(since).await {
                            Ok(Some((offset, _))) => offset.min(p.high_watermark()),
                            Ok(None) => p.high_watermark(),
                            Err(e) => return Err(e.error_code()),
                        }
                    }
                };
                // A new share partition's start is written at once: a
                // restart must not move it to a later high watermark.
                (SharePartition::new(start, settings.partition), 1)
            }
        };
        let created_ms = snapshot.as_ref().map_or(now, |s| s.create_timestamp_ms);
        // Another request may have loaded it meanwhile: that one stays.
        let inserted = {
            let mut table = self.share_partitions.borrow_mut();
            let absent = !table.contains_key(key);
            if absent && !make_room(&mut table, self.config.shard.share_partitions_max) {
                tracing::warn!(
                    group = key.group_id,
                    partition = key.partition,
                    max = self.config.shard.share_partitions_max,
                    "share partitions table full of busy entries"
                );
                return Err(ErrorCode::CoordinatorLoadInProgress);
            }
            if absent {
                let mut entry = ShareEntry::new(partition, changes, created_ms);
                if entry.partition.count(RecordState::Archiving) > 0 {
                    entry.dead_letters_due = true;
                    entry.dead_letters_since_ms = snapshot.as_ref().map(|s| s.write_timestamp_ms);
                }
                table.insert(key.clone(), entry);
            }
            absent
        };
        if inserted && changes > 0 {
            self.write_share_partition(key, p, changes).await?;
        }
        Ok(())
    }

    /// Writes `key`'s state if change `change` is not written yet: one
    /// write at a time per share partition, each of the state as it is
    /// when its turn comes.
    async fn write_share_partition(
        self: &Rc<Self>,
        key: &ShareKey,
        p: &OwnedPartition,
        change: u64,
    ) -> Result<(), ErrorCode> {
        let turn = match self.share_partitions.borrow().get(key) {
            Some(entry) if entry.written < change => entry.turn.clone(),
            _ => return Ok(()),
        };
        let _turn = turn
            .acquire_permit(1)
            .await
            .map_err(|_| ErrorCode::CoordinatorNotAvailable)?;
        self.write_share_partition_in_turn(key, p, change).await
    }

    /// [`Self::write_share_partition`] with the share partition's write
    /// turn already held.
    pub(super) async fn write_share_partition_in_turn(
        self: &Rc<Self>,
        key: &ShareKey,
        p: &OwnedPartition,
        change: u64,
    ) -> Result<(), ErrorCode> {
        if self.env.broken_rule() == Some(crate::env::BrokenRule::ShareAckUnwritten) {
            return Ok(());
        }
        // The state names records up to its end: they are made durable
        // first, so a power loss cannot take them and let new records take
        // their offsets (the state would apply to those). Acquisitions may
        // move the end while the log syncs: a few rounds at most.
        let mut rounds = 0;
        loop {
            let end = match self.share_partitions.borrow().get(key) {
                Some(entry) if entry.written < change => entry.partition.end_offset(),
                _ => return Ok(()),
            };
            if p.log.durable_offset() >= end {
                break;
            }
            rounds += 1;
            if rounds > 8 {
                return Err(ErrorCode::RequestTimedOut);
            }
            p.log.flush().await.map_err(|e| e.error_code())?;
        }
        let (snapshot, upto) = {
            let table = self.share_partitions.borrow();
            let Some(entry) = table.get(key) else {
                return Ok(());
            };
            if entry.written >= change {
                // A later write carried this change.
                return Ok(());
            }
            let (start_offset, batches) = entry.partition.state_batches();
            let snapshot = ShareSnapshot {
                snapshot_epoch: entry.changes.min(i32::MAX as u64) as i32,
                state_epoch: 0,
                // A share partition's state is written by its leader only.
                leader_epoch: p.leads_at().ok_or(ErrorCode::NotLeaderOrFollower)?,
                start_offset,
                create_timestamp_ms: entry.created_ms,
                // While records read back Archiving wait for their
                // dead-letter check, a state keeps the time of the one they
                // were read from: a crash before the check then still looks
                // from there.
                write_timestamp_ms: entry
                    .dead_letters_since_ms
                    .map_or(self.env.now_ms(), |since| since.min(self.env.now_ms())),
                batches,
            };
            (snapshot, entry.changes)
        };
        self.write_state(key, Some(&snapshot)).await?;
        if let Some(entry) = self.share_partitions.borrow_mut().get_mut(key) {
            entry.written = entry.written.max(upto);
        }
        Ok(())
    }

    /// The `__share_group_state` partition of `key` and where it is led.
    /// COORDINATOR_NOT_AVAILABLE while the topic does not exist or the
    /// partition has no leader.
    fn share_state_home(&self, key: &ShareKey) -> Result<(PartitionId, LeaderHome), ErrorCode> {
        let metadata = self.metadata();
        let partition = key
            .state_partition_in(&metadata)
            .ok_or(ErrorCode::CoordinatorNotAvailable)?;
        let home = metadata
            .leader_home(self.config.node_id, SHARE_STATE_TOPIC, partition)
            .ok_or(ErrorCode::CoordinatorNotAvailable)?;
        Ok((partition, home))
    }

    /// The stored state of `key` (the value of its last record), from its
    /// state partition's leader, here or on another broker.
    async fn read_state(self: &Rc<Self>, key: &ShareKey) -> Result<Option<Bytes>, ErrorCode> {
        match self.share_state_home(key)? {
            (partition, LeaderHome::Here(shard)) => {
                let read = ReadShareState {
                    partition,
                    key: Bytes::from(key.encode()),
                };
                self.call(shard, read)
                    .await
                    .map_err(|_| ErrorCode::CoordinatorNotAvailable)?
            }
            (_, LeaderHome::Broker(leader)) => self.read_share_state_remote(leader, key).await,
        }
    }

    /// Writes `snapshot` as `key`'s state (`None`: a tombstone, deleting
    /// it) through its state partition's leader, here or on another
    /// broker; returns once it is durable there.
    async fn write_state(
        self: &Rc<Self>,
        key: &ShareKey,
        snapshot: Option<&ShareSnapshot>,
    ) -> Result<(), ErrorCode> {
        match self.share_state_home(key)? {
            (partition, LeaderHome::Here(shard)) => {
                let write = WriteShareState {
                    partition,
                    key: Bytes::from(key.encode()),
                    value: snapshot.map(|s| Bytes::from(s.encode())),
                };
                self.call(shard, write)
                    .await
                    .map_err(|_| ErrorCode::CoordinatorNotAvailable)?
            }
            (_, LeaderHome::Broker(leader)) => {
                self.write_share_state_remote(leader, key, snapshot).await
            }
        }
    }

    /// [`WriteShareState`], on the state partition's leader: appends the
    /// record and waits until every in-sync replica holds it. A state
    /// written by a share partition's leader at an older leader epoch
    /// than the last one stored for the same key is refused with
    /// FENCED_LEADER_EPOCH (Kafka's share coordinator's rule): a broker
    /// that lost the partition's leadership, and has not noticed yet,
    /// cannot overwrite what its successor wrote.
    pub(crate) async fn write_share_state(
        self: &Rc<Self>,
        op: WriteShareState,
    ) -> Result<(), ErrorCode> {
        let p = self
            .partition(SHARE_STATE_TOPIC, op.partition)
            .ok_or(ErrorCode::NotCoordinator)?;
        let epoch = p.leads_at().ok_or(ErrorCode::NotCoordinator)?;
        let mut value = op.value.clone();
        let mut snapshot = match value.as_deref() {
            None => None,
            Some(v) => match StateRecord::decode(&op.key, Some(v)) {
                Ok(StateRecord::Snapshot(_, Some(s))) => Some(s),
                _ => return Err(ErrorCode::InvalidRequest),
            },
        };
        // The check and the append, one write at a time on this shard.
        let turn = self
            .share_state_turn
            .acquire_permit(1)
            .await
            .map_err(|_| ErrorCode::NotCoordinator)?;
        let kept_epoch = match snapshot.as_mut() {
            None => None,
            Some(s) => {
                let stored = self.stored_state_epoch(&op).await?;
                if s.leader_epoch >= 0 && stored > s.leader_epoch {
                    return Err(ErrorCode::FencedLeaderEpoch);
                }
                if s.leader_epoch < 0 && stored >= 0 {
                    // A write without an epoch keeps the stored one.
                    s.leader_epoch = stored;
                    value = Some(Bytes::from(s.encode()));
                }
                Some(stored.max(s.leader_epoch))
            }
        };
        let now = self.env.now_ms();
        let batch = BatchBuilder::new(now)
            .record(Some(&op.key), value.as_deref())
            .build();
        // A freshly built batch is its buffer's only owner: no copy here.
        let batch = batch
            .try_into_mut()
            .unwrap_or_else(|shared| bytes::BytesMut::from(&shared[..]));
        p.log
            .append_coordinator(batch, epoch, now)
            .await
            .map_err(|e| e.error_code())?;
        {
            let mut epochs = self.share_state_epochs.borrow_mut();
            match kept_epoch {
                Some(e) => {
                    if epochs.len() >= self.config.shard.share_partitions_max
                        && !epochs.contains_key(&op.key)
                    {
                        // Bounded: forgotten epochs are read back from the
                        // log when next needed.
                        epochs.clear();
                    }
                    epochs.insert(op.key.clone(), e);
                }
                None => {
                    epochs.remove(&op.key);
                }
            }
        }
        drop(turn);
        settle_coordinator_write(&p, &*self.env, STATE_WRITE_TIMEOUT_MS)
            .await
            .map_err(|e| match e {
                ErrorCode::NotLeaderOrFollower => ErrorCode::NotCoordinator,
                other => other,
            })
    }

    /// The leader epoch of the last state stored for `op`'s key (-1 for
    /// none): remembered from the last write here, or read back from the
    /// state partition.
    async fn stored_state_epoch(self: &Rc<Self>, op: &WriteShareState) -> Result<i32, ErrorCode> {
        if let Some(&e) = self.share_state_epochs.borrow().get(&op.key) {
            return Ok(e);
        }
        let read = ReadShareState {
            partition: op.partition,
            key: op.key.clone(),
        };
        let stored = self.read_share_state(read).await?;
        Ok(match stored.as_deref() {
            Some(value) => match StateRecord::decode(&op.key, Some(value)) {
                Ok(StateRecord::Snapshot(_, Some(s))) => s.leader_epoch,
                _ => -1,
            },
            None => -1,
        })
    }

    /// [`ReadShareState`], on the state partition's leader: the value of
    /// the last record with the key, read from the log's start to its
    /// high watermark (the topic is compacted: a key keeps one record).
    pub(crate) async fn read_share_state(
        self: &Rc<Self>,
        op: ReadShareState,
    ) -> Result<Option<Bytes>, ErrorCode> {
        let p = self
            .partition(SHARE_STATE_TOPIC, op.partition)
            .ok_or(ErrorCode::NotCoordinator)?;
        p.leads_at().ok_or(ErrorCode::NotCoordinator)?;
        let mut found: Option<Bytes> = None;
        scan_state_partition(&p, |key, value| {
            if key == &op.key[..] {
                found = value;
            }
        })
        .await?;
        Ok(found)
    }

    /// [`StoredSharePartitions`]: the last stored state of each share
    /// partition of the group, from every `__share_group_state` partition
    /// this shard leads (a deleted state is not listed).
    pub(crate) async fn stored_share_partitions(
        self: &Rc<Self>,
        op: StoredSharePartitions,
    ) -> Result<Vec<StoredShareState>, ErrorCode> {
        let count = self
            .metadata()
            .topics
            .get(SHARE_STATE_TOPIC)
            .map_or(0, |t| t.partitions.len() as PartitionId);
        let prefix = ShareKey::group_prefix(&op.group_id);
        // The last value of each of the group's keys: at most one per
        // share partition of the group.
        let mut latest: HashMap<Vec<u8>, Option<Bytes>> = HashMap::new();
        for partition in 0..count {
            let Some(p) = self.partition(SHARE_STATE_TOPIC, partition) else {
                continue;
            };
            if p.leads_at().is_none() {
                continue;
            }
            scan_state_partition(&p, |key, value| {
                if key.starts_with(&prefix) {
                    latest.insert(key.to_vec(), value);
                }
            })
            .await?;
        }
        let mut out: Vec<StoredShareState> = latest
            .into_iter()
            .filter_map(|(key, value)| match StateRecord::decode(&key, value.as_deref()) {
                Ok(StateRecord::Snapshot(key, Some(s))) => {
                    let restored = SharePartition::restore(s.start_offset, &s.batches, Default::default());
                    Some(StoredShareState {
                        topic_id: key.topic_id,
                        partition: key.partition,
                        start_offset: s.start_offset,
                        in_flight: restored.count(RecordState::Available)
                            + restored.count(RecordState::Acquired),
                        done: restored.done_count(),
                    })
                }
                Ok(_) => None,
                Err(e) => {
                    tracing::warn!(group = op.group_id, error = ?e, "a stored share state does not decode");
                    None
                }
            })
            .collect();
        out.sort_by_key(|s| (s.topic_id, s.partition));
        Ok(out)
    }

    /// [`ResetSharePartition`]: a new start for a share partition (its
    /// records from there on are new, nothing in flight), or its state
    /// deleted; written before the answer. Whether the group had state
    /// for the partition (in memory, or written before a restart).
    pub(crate) async fn reset_share_partition(
        self: &Rc<Self>,
        op: ResetSharePartition,
    ) -> Result<bool, ErrorCode> {
        let p = self
            .partition(&op.topic, op.partition)
            .ok_or_else(|| self.absence_error(&op.topic, op.partition))?;
        let key = ShareKey {
            group_id: op.group_id.clone(),
            topic_id: op.topic_id,
            partition: op.partition,
        };
        let existed = self.share_partitions.borrow().contains_key(&key)
            || self.read_state(&key).await?.is_some();
        match op.start {
            Some(start) => {
                let start = start.clamp(p.log.log_start_offset(), p.log.log_end_offset());
                let settings = self
                    .share_partitions
                    .borrow()
                    .get(&key)
                    .map(|e| e.partition.config());
                let config = settings.unwrap_or_default();
                let change = {
                    let mut table = self.share_partitions.borrow_mut();
                    let max = self.config.shard.share_partitions_max;
                    if !table.contains_key(&key) && !make_room(&mut table, max) {
                        return Err(ErrorCode::CoordinatorLoadInProgress);
                    }
                    let changes = table.get(&key).map_or(0, |e| e.changes) + 1;
                    table.insert(
                        key.clone(),
                        ShareEntry::new(
                            SharePartition::new(start, config),
                            changes,
                            self.env.now_ms(),
                        ),
                    );
                    changes
                };
                self.write_share_partition(&key, &p, change).await?;
            }
            None => {
                self.share_partitions.borrow_mut().remove(&key);
                if existed {
                    self.write_state(&key, None).await?;
                }
            }
        }
        Ok(existed)
    }

    /// [`DescribeSharePartitions`]: where each share partition of the
    /// group held here stands, ordered by topic id and partition.
    pub(crate) async fn describe_share_partitions(
        &self,
        op: DescribeSharePartitions,
    ) -> Vec<SharePartitionState> {
        let metadata = self.metadata();
        let table = self.share_partitions.borrow();
        let mut out: Vec<SharePartitionState> = table
            .iter()
            .filter(|(key, _)| key.group_id == op.group_id)
            .map(|(key, entry)| {
                let sp = &entry.partition;
                let hw = metadata
                    .topics
                    .iter()
                    .find(|(_, t)| t.id == key.topic_id)
                    .and_then(|(name, _)| self.partition(name, key.partition))
                    .map_or(sp.end_offset(), |p| p.high_watermark());
                let waiting = sp.count(RecordState::Available) + sp.count(RecordState::Acquired);
                SharePartitionState {
                    topic_id: key.topic_id,
                    partition: key.partition,
                    start_offset: sp.start_offset(),
                    end_offset: sp.end_offset(),
                    in_flight: waiting,
                    acquired: sp.count(RecordState::Acquired),
                    lag: sp.lag(hw),
                }
            })
            .collect();
        out.sort_by_key(|s| (s.topic_id, s.partition));
        out
    }

    /// The leadership of `partition` of the topic with id `topic_id` left
    /// this broker, or came back after a break: its share partitions here
    /// are forgotten (what they hold may be stale), and the next use reads
    /// them back from their durable state, as a new leader does. How many.
    pub(super) fn forget_share_partitions_of(
        &self,
        topic_id: [u8; 16],
        partition: PartitionId,
    ) -> usize {
        let mut table = self.share_partitions.borrow_mut();
        let before = table.len();
        table.retain(|key, _| key.topic_id != topic_id || key.partition != partition);
        before - table.len()
    }

    /// [`ForgetShareGroup`]: the group was deleted, its share partitions
    /// here go with it, and their state is deleted (a tombstone each), as
    /// is every state of the group the state partitions led here store, so
    /// a group of the same name starts over.
    pub(crate) async fn forget_share_group(self: &Rc<Self>, op: ForgetShareGroup) {
        let mut keys: Vec<ShareKey> = self
            .share_partitions
            .borrow()
            .keys()
            .filter(|k| k.group_id == op.group_id)
            .cloned()
            .collect();
        // In key order, not the table's (a hash's): the same every run.
        keys.sort();
        for key in keys {
            self.share_partitions.borrow_mut().remove(&key);
            if let Err(e) = self.write_state(&key, None).await {
                tracing::warn!(group = key.group_id, error = %e, "deleting a share partition's state failed")
            }
        }
        // And every state of the group stored here, held or not.
        let stored = StoredSharePartitions {
            group_id: op.group_id.clone(),
        };
        let stored = match self.stored_share_partitions(stored).await {
            Ok(stored) => stored,
            Err(e) => {
                tracing::warn!(group = op.group_id, error = %e, "a deleted share group's stored states unread");
                return;
            }
        };
        for s in stored {
            let key = ShareKey {
                group_id: op.group_id.clone(),
                topic_id: s.topic_id,
                partition: s.partition,
            };
            if let Err(e) = self.write_state(&key, None).await {
                tracing::warn!(group = key.group_id, error = %e, "deleting a share partition's state failed")
            }
        }
    }
}

/// Applies `member`'s acknowledgements in order; the first refusal is the
/// partition's acknowledge error (the others still apply, as Kafka applies
/// each batch on its own).
fn acknowledge(
    sp: &mut SharePartition,
    member: &str,
    acks: &[(Offset, Offset, Vec<i8>)],
    now: i64,
) -> ErrorCode {
    let mut error = ErrorCode::None;
    for (first, last, types) in acks {
        let (first, last) = (*first, *last);
        let outcome = match types.as_slice() {
            [one] => AckType::from_code(*one)
                .ok_or(ErrorCode::InvalidRequest)
                .and_then(|ack| sp.acknowledge(member, first, last, ack, now)),
            each if last >= first && each.len() as i64 == last - first + 1 => {
                let mut outcome = Ok(());
                for (offset, code) in (first..=last).zip(each) {
                    let one = AckType::from_code(*code)
                        .ok_or(ErrorCode::InvalidRequest)
                        .and_then(|ack| sp.acknowledge(member, offset, offset, ack, now));
                    outcome = outcome.and(one);
                }
                outcome
            }
            _ => Err(ErrorCode::InvalidRequest),
        };
        if let Err(e) = outcome {
            if error == ErrorCode::None {
                error = e;
            }
        }
    }
    error
}

/// Reads the batches that hold `acquired` (ranges in offset order) below
/// `hw`, within `budget` bytes (one batch past it when `at_least_one`):
/// the batches, the parts of `acquired` they cover, and the read's error.
/// Calls `each` with the key and value of every record of the
/// `__share_group_state` partition `p`, from its log start to its high
/// watermark, in offset order (a record without a key is skipped).
async fn scan_state_partition(
    p: &OwnedPartition,
    mut each: impl FnMut(&[u8], Option<Bytes>),
) -> Result<(), ErrorCode> {
    let end = p.high_watermark();
    let mut offset = p.log.log_start_offset();
    while offset < end {
        let chunks = p
            .log
            .read(offset, STATE_READ_BYTES, end)
            .await
            .map_err(|e| e.error_code())?;
        if chunks.is_empty() {
            break;
        }
        for chunk in chunks {
            for batch in BatchIter::new(chunk) {
                let batch = batch.map_err(|_| ErrorCode::CorruptMessage)?;
                offset = batch.next_offset();
                let Ok(records) = RecordIter::new(&batch) else {
                    continue;
                };
                for record in records.flatten() {
                    if let Some(key) = record.key.as_deref() {
                        each(key, record.value);
                    }
                }
            }
        }
    }
    Ok(())
}

async fn read_acquired(
    p: &OwnedPartition,
    acquired: &[Acquired],
    hw: Offset,
    budget: usize,
    at_least_one: bool,
) -> (RecordSet, Vec<Acquired>, ErrorCode) {
    let mut batches: Vec<Bytes> = Vec::new();
    let mut delivered: Vec<Acquired> = Vec::new();
    let mut left = budget;
    // The last offset of the last batch taken.
    let mut covered: Offset = -1;
    for a in acquired {
        // The budget ran out (the rest waits for the next fetch).
        let mut spent = false;
        while covered < a.last && !spent {
            let from = a.first.max(covered + 1);
            let room = if batches.is_empty() && at_least_one {
                left.max(1)
            } else {
                left
            };
            if room == 0 {
                break;
            }
            // Read in steps: the acquired range is usually far smaller
            // than the fetch's byte budget.
            let step = room.min(READ_STEP_BYTES);
            let pieces = match p.log.read_record_pieces(from, step, hw, step).await {
                Ok((pieces, _copied)) => pieces,
                Err(e) => return (RecordSet::new(batches), delivered, e.error_code()),
            };
            let before = covered;
            for batch in pieces.iter().flat_map(split_batches) {
                let Ok(header) = BatchHeader::peek(&batch) else {
                    break;
                };
                let last = header.last_offset();
                if last < from {
                    continue;
                }
                if header.base_offset > a.last {
                    break;
                }
                let first_batch = batches.is_empty() && at_least_one;
                if batch.len() > left && !first_batch {
                    spent = true;
                    break;
                }
                left = left.saturating_sub(batch.len());
                covered = last;
                batches.push(batch);
            }
            if covered == before {
                // Nothing more below the high watermark (or no room).
                break;
            }
        }
        let last = covered.min(a.last);
        if last >= a.first {
            delivered.push(Acquired {
                first: a.first,
                last,
                delivery_count: a.delivery_count,
            });
        }
        if covered < a.last {
            break;
        }
    }
    (RecordSet::new(batches), delivered, ErrorCode::None)
}

/// The offsets ([first, last] of each batch) of the data batches of an
/// aborted transaction among `records`.
async fn aborted_batches(
    p: &OwnedPartition,
    records: &RecordSet,
) -> Result<Vec<(Offset, Offset)>, ErrorCode> {
    let headers: Vec<BatchHeader> = records
        .pieces()
        .iter()
        .flat_map(split_batches)
        .filter_map(|b| BatchHeader::peek(&b).ok())
        .collect();
    let transactional = |h: &&BatchHeader| h.is_transactional() && !h.is_control();
    let Some(from) = headers
        .iter()
        .filter(transactional)
        .map(|h| h.base_offset)
        .min()
    else {
        return Ok(Vec::new());
    };
    let to = headers
        .iter()
        .map(|h| h.last_offset())
        .max()
        .unwrap_or(from)
        + 1;
    let txns = p
        .log
        .aborted_between(from, to)
        .await
        .map_err(|e| e.error_code())?;
    Ok(headers
        .iter()
        .filter(transactional)
        .filter(|h| {
            txns.iter().any(|t| {
                t.producer_id == h.producer_id
                    && h.base_offset >= t.first_offset
                    && h.base_offset <= t.last_offset
            })
        })
        .map(|h| (h.base_offset, h.last_offset()))
        .collect())
}

/// `ranges` without the offsets of `cut` (each [first, last]).
fn without(ranges: Vec<Acquired>, cut: &[(Offset, Offset)]) -> Vec<Acquired> {
    let mut out = ranges;
    for &(first, last) in cut {
        out = out
            .into_iter()
            .flat_map(|a| {
                let mut parts = Vec::new();
                if a.first < first {
                    parts.push(Acquired {
                        last: a.last.min(first - 1),
                        ..a
                    });
                }
                if a.last > last {
                    parts.push(Acquired {
                        first: a.first.max(last + 1),
                        ..a
                    });
                }
                if a.last < first || a.first > last {
                    parts = vec![a];
                }
                parts
            })
            .collect();
    }
    out
}

/// The whole batches of a piece, each its own slice (no copy).
fn split_batches(piece: &Bytes) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Ok(header) = BatchHeader::peek(&piece[at..]) {
        if header.size_bytes == 0 || at + header.size_bytes > piece.len() {
            break;
        }
        out.push(piece.slice(at..at + header.size_bytes));
        at += header.size_bytes;
    }
    out
}
