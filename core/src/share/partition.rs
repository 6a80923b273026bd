//! One share partition (KIP-932): which records of a partition a share
//! group has in flight, who holds each, and how often each was delivered.
//!
//! Owns: the share-partition start offset (SPSO, below which every record
//! is done with), its end (SPEO, the first offset never handed out), and
//! the state of every offset between them: Available (to be handed out,
//! again), Acquired (by one member, until its lock's deadline),
//! Acknowledged (accepted: done), Archiving (rejected, or delivered
//! `group.share.delivery.count.limit` times, while the group has a
//! dead-letter topic: to be written there, then Archived), Archived
//! (rejected, or delivered the limit's times: done). Pure: no I/O; times
//! are arguments.
//!
//! Rules (Kafka's): a member acquires Available records first, then new
//! ones from the SPEO up to the log end, never more than
//! `group.share.partition.max.record.locks` in flight; each acquisition
//! counts one delivery and locks the record for
//! `group.share.record.lock.duration.ms`, but a delivery counts only once
//! the fetch that acquired it hands it out: an acquisition whose lock runs
//! out, or whose member leaves, before its answer is made goes back
//! uncounted (and is stored uncounted meanwhile), so the broker's own
//! delays never move a record towards the delivery limit; only the member
//! holding a record acknowledges it (ACCEPT, RELEASE, REJECT, RENEW; GAP for an offset with
//! no record), anything else is INVALID_RECORD_STATE; a released record or
//! one whose lock expired is Available again, or Archived once its
//! deliveries reached the limit (Archiving first with a dead-letter topic,
//! KIP-1191); the SPSO moves past every record at its front that is done.
//! When the log's start passes records in flight (retention,
//! DeleteRecords), the SPSO follows it and Available records below it are
//! done with, but Acquired and Archiving ones are kept aside (as Kafka
//! keeps them): their member may still acknowledge them, and a rejected
//! one still goes to the dead-letter topic (without its value); one given
//! back there is done with.
//!
//! Invariants (checked by [`SharePartition::check`], which the tests and
//! the simulator call after every step): `start <= end`, every offset in
//! `[start, end)` has a state and none outside it does, the record at
//! `start` (if any) is not done, an Acquired record has an owner and a
//! deadline and no other record does, only an Acquired record can be
//! waiting for its hand-out, no record was delivered more than
//! the limit, a done or Archiving record never becomes Available or
//! Acquired again, and an Archiving record becomes only Archived. A record
//! kept aside below the SPSO is Acquired or Archiving.

use std::collections::BTreeMap;

use super::dead_letter::Cause;
use super::state::{
    StateBatch, STATE_ACKNOWLEDGED, STATE_ARCHIVED, STATE_ARCHIVING, STATE_AVAILABLE,
};
use crate::error::ErrorCode;
use crate::types::Offset;

/// A share group's settings for its partitions (Kafka's group configs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShareConfig {
    /// `group.share.record.lock.duration.ms` (30 s).
    pub lock_duration_ms: i64,
    /// `group.share.delivery.count.limit` (5).
    pub delivery_count_limit: u16,
    /// `group.share.partition.max.record.locks` (2000).
    pub max_record_locks: usize,
    /// The group has a dead-letter topic (`errors.deadletterqueue.topic.name`,
    /// KIP-1191): rejected records and those past the delivery limit are
    /// Archiving until written there.
    pub dead_letter: bool,
    /// `share.renew.acknowledge.enable` (true): RENEW is accepted; when
    /// false it is INVALID_RECORD_STATE.
    pub renew_acknowledge: bool,
}

impl Default for ShareConfig {
    fn default() -> Self {
        ShareConfig {
            lock_duration_ms: 30_000,
            delivery_count_limit: 5,
            max_record_locks: 2_000,
            dead_letter: false,
            renew_acknowledge: true,
        }
    }
}

/// Where a record in flight stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordState {
    Available,
    Acquired,
    Acknowledged,
    /// Rejected or past the delivery limit, to be written to the group's
    /// dead-letter topic: never handed out again, not done until written.
    Archiving,
    Archived,
}

impl RecordState {
    /// Done with: accepted or archived, never handed out again.
    pub fn is_done(self) -> bool {
        matches!(self, RecordState::Acknowledged | RecordState::Archived)
    }
}

/// How a member acknowledges records it holds (ShareAcknowledge's types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckType {
    /// An offset with no record (a compacted hole, a control batch): done.
    Gap,
    /// Processed: done.
    Accept,
    /// Give it back: Available again (or Archived at the delivery limit).
    Release,
    /// Unprocessable: Archived.
    Reject,
    /// Still working on it: its lock starts over.
    Renew,
}

impl AckType {
    /// The wire value (0 gap, 1 accept, 2 release, 3 reject, 4 renew), or
    /// `None` for any other.
    pub fn from_code(code: i8) -> Option<AckType> {
        Some(match code {
            0 => AckType::Gap,
            1 => AckType::Accept,
            2 => AckType::Release,
            3 => AckType::Reject,
            4 => AckType::Renew,
            _ => return None,
        })
    }
}

/// One record in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
struct InFlight {
    state: RecordState,
    delivery_count: u16,
    /// The member holding it, while Acquired.
    owner: Option<String>,
    /// When its lock expires, while Acquired.
    deadline_ms: Option<i64>,
    /// Acquired by a fetch that has not answered yet: its delivery counts
    /// once [`SharePartition::hand_out`] hands it out.
    unanswered: bool,
    /// Archiving because a member rejected it (else the delivery limit
    /// put it there, or it came back so from the durable state, which
    /// does not say).
    rejected: bool,
}

impl InFlight {
    /// An available record delivered `delivery_count` times.
    fn available(delivery_count: u16) -> InFlight {
        InFlight {
            state: RecordState::Available,
            delivery_count,
            owner: None,
            deadline_ms: None,
            unanswered: false,
            rejected: false,
        }
    }

    /// Its deliveries that count: an acquisition not handed out yet does
    /// not.
    fn counted_deliveries(&self) -> u16 {
        self.delivery_count
            .saturating_sub(u16::from(self.unanswered))
    }
}

/// Records handed to a member: `[first, last]`, delivered `delivery_count`
/// times counting this one (ShareFetch's AcquiredRecords).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acquired {
    pub first: Offset,
    pub last: Offset,
    pub delivery_count: u16,
}

/// One partition's in-flight records for one share group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharePartition {
    start: Offset,
    end: Offset,
    records: BTreeMap<Offset, InFlight>,
    /// Records below the SPSO, whose log records are gone, still Acquired
    /// or Archiving (at most what was in flight when the log start moved).
    below_start: BTreeMap<Offset, InFlight>,
    config: ShareConfig,
    /// The highest delivery limit this partition had: a record acquired
    /// under it may be held past a lower limit set since.
    limit_ceiling: u16,
}

impl SharePartition {
    /// A share partition whose records before `start` are done with (its
    /// `share.auto.offset.reset` position, or its durable state's SPSO).
    pub fn new(start: Offset, config: ShareConfig) -> SharePartition {
        SharePartition {
            start,
            end: start,
            records: BTreeMap::new(),
            below_start: BTreeMap::new(),
            config,
            limit_ceiling: config.delivery_count_limit,
        }
    }

    /// The share partition a durable state gives back: records done
    /// below `start`, then `batches` (ranges with one state and delivery
    /// count; offsets between them never delivered). Records that were
    /// acquired when the state was written come back available, so they
    /// are delivered again.
    pub fn restore(start: Offset, batches: &[StateBatch], config: ShareConfig) -> SharePartition {
        let mut p = SharePartition::new(start, config);
        for b in batches {
            let state = match b.delivery_state {
                STATE_ACKNOWLEDGED => RecordState::Acknowledged,
                STATE_ARCHIVED => RecordState::Archived,
                STATE_ARCHIVING => RecordState::Archiving,
                _ => RecordState::Available,
            };
            let count = u16::try_from(b.delivery_count.max(0)).unwrap_or(0);
            // Below the SPSO only what still goes to the dead-letter topic
            // is kept (what was acquired there is done with).
            if state == RecordState::Archiving && b.first_offset < start {
                for offset in b.first_offset..=b.last_offset.min(start - 1) {
                    let mut r = InFlight::available(count);
                    r.state = state;
                    p.below_start.insert(offset, r);
                }
            }
            let first = b.first_offset.max(start).max(p.end);
            for offset in first..=b.last_offset {
                while p.end < offset {
                    p.records.insert(p.end, InFlight::available(0));
                    p.end += 1;
                }
                let mut r = InFlight::available(count);
                r.state = state;
                p.records.insert(offset, r);
                p.end = offset + 1;
            }
        }
        // A limit lowered since: what reached it is archived.
        p.limit_ceiling = p
            .records
            .values()
            .map(|r| r.delivery_count)
            .max()
            .unwrap_or(0)
            .max(config.delivery_count_limit);
        let over = over_limit(config);
        for r in p.records.values_mut() {
            if r.state == RecordState::Available && r.delivery_count >= config.delivery_count_limit
            {
                r.state = over;
            }
        }
        p.advance_start();
        p
    }

    /// The durable form of this share partition: its start offset and its
    /// records in flight as ranges of one state and delivery count
    /// (acquired ones as available, as Kafka stores them, and counted
    /// without an acquisition not handed out yet).
    pub fn state_batches(&self) -> (Offset, Vec<StateBatch>) {
        let mut out: Vec<StateBatch> = Vec::new();
        for (offset, r) in self.below_start.iter().chain(&self.records) {
            let state = match r.state {
                RecordState::Acknowledged => STATE_ACKNOWLEDGED,
                RecordState::Archived => STATE_ARCHIVED,
                RecordState::Archiving => STATE_ARCHIVING,
                RecordState::Available | RecordState::Acquired => STATE_AVAILABLE,
            };
            let count = r.counted_deliveries() as i16;
            match out.last_mut() {
                Some(b)
                    if b.last_offset + 1 == *offset
                        && b.delivery_state == state
                        && b.delivery_count == count =>
                {
                    b.last_offset = *offset
                }
                _ => out.push(StateBatch {
                    first_offset: *offset,
                    last_offset: *offset,
                    delivery_state: state,
                    delivery_count: count,
                }),
            }
        }
        (self.start, out)
    }

    /// The group's settings changed: locks taken from now on last the new
    /// duration, and records already delivered as often as a lower limit
    /// allows are archived.
    pub fn set_config(&mut self, config: ShareConfig) {
        if config == self.config {
            return;
        }
        self.config = config;
        self.limit_ceiling = self.limit_ceiling.max(config.delivery_count_limit);
        let over = over_limit(config);
        for r in self.records.values_mut() {
            if r.state == RecordState::Available && r.delivery_count >= config.delivery_count_limit
            {
                finish(r, over);
            }
        }
        self.advance_start();
    }

    /// The settings in force.
    pub fn config(&self) -> ShareConfig {
        self.config
    }

    /// The share-partition start offset (SPSO).
    pub fn start_offset(&self) -> Offset {
        self.start
    }

    /// The share-partition end offset (SPEO): the first offset never
    /// handed out.
    pub fn end_offset(&self) -> Offset {
        self.end
    }

    /// Records in flight: between the SPSO and the SPEO, and those kept
    /// aside below the SPSO.
    pub fn in_flight(&self) -> usize {
        self.records.len() + self.below_start.len()
    }

    /// Records in flight in `state`.
    pub fn count(&self, state: RecordState) -> usize {
        self.all().filter(|(_, r)| r.state == state).count()
    }

    /// Kafka's lag of a share partition with the log's high watermark at
    /// `high_watermark`: the records from the SPSO on not done with.
    pub fn lag(&self, high_watermark: Offset) -> i64 {
        lag(high_watermark, self.start, self.done_count())
    }

    /// Records from the SPSO on that are done with (Kafka's delivery
    /// complete count).
    pub fn done_count(&self) -> usize {
        self.records.values().filter(|r| r.state.is_done()).count()
    }

    /// No record is acquired or on its way to the dead-letter topic (one
    /// pass, stopping at the first that is).
    pub fn is_settled(&self) -> bool {
        !self
            .all()
            .any(|(_, r)| matches!(r.state, RecordState::Acquired | RecordState::Archiving))
    }

    /// The state and delivery count of `offset`: `None` outside
    /// `[start, end)` (done below, never handed out above) but for a
    /// record kept aside below the SPSO.
    pub fn state_of(&self, offset: Offset) -> Option<(RecordState, u16)> {
        self.record(offset).map(|r| (r.state, r.delivery_count))
    }

    /// `offset` was acquired by a fetch that has not handed it out yet
    /// (its delivery does not count until then).
    pub fn awaits_hand_out(&self, offset: Offset) -> bool {
        self.record(offset).is_some_and(|r| r.unanswered)
    }

    /// Every record in flight, in offset order (those kept aside below
    /// the SPSO first).
    fn all(&self) -> impl Iterator<Item = (&Offset, &InFlight)> {
        self.below_start.iter().chain(&self.records)
    }

    fn record(&self, offset: Offset) -> Option<&InFlight> {
        if offset < self.start {
            self.below_start.get(&offset)
        } else {
            self.records.get(&offset)
        }
    }

    /// Acquires at most `max_records` records for `member` at `now_ms`:
    /// Available ones first, oldest first, then new ones from the SPEO up
    /// to `log_end`, as long as no more than `max_record_locks` are in
    /// flight. Contiguous offsets with the same delivery count come back
    /// as one range.
    pub fn acquire(
        &mut self,
        member: &str,
        log_end: Offset,
        max_records: usize,
        now_ms: i64,
    ) -> Vec<Acquired> {
        let deadline = now_ms.saturating_add(self.config.lock_duration_ms);
        let mut taken: Vec<(Offset, u16)> = Vec::new();
        for (offset, r) in self.records.iter_mut() {
            if taken.len() >= max_records {
                break;
            }
            if r.state == RecordState::Available {
                r.state = RecordState::Acquired;
                r.delivery_count += 1;
                r.owner = Some(member.to_owned());
                r.deadline_ms = Some(deadline);
                r.unanswered = true;
                taken.push((*offset, r.delivery_count));
            }
        }
        while taken.len() < max_records
            && self.end < log_end
            && self.records.len() < self.config.max_record_locks
        {
            self.records.insert(
                self.end,
                InFlight {
                    state: RecordState::Acquired,
                    delivery_count: 1,
                    owner: Some(member.to_owned()),
                    deadline_ms: Some(deadline),
                    unanswered: true,
                    rejected: false,
                },
            );
            taken.push((self.end, 1));
            self.end += 1;
        }
        ranges(&taken)
    }

    /// Acquires for `member` the new records from the SPEO through `last`
    /// (at most `max_record_locks` in flight): a fetch that returns a log
    /// batch hands out the whole batch, as Kafka's does, beyond the
    /// records asked for. The range acquired, if any.
    pub fn acquire_through(&mut self, member: &str, last: Offset, now_ms: i64) -> Option<Acquired> {
        let first = self.end;
        let deadline = now_ms.saturating_add(self.config.lock_duration_ms);
        while self.end <= last && self.records.len() < self.config.max_record_locks {
            self.records.insert(
                self.end,
                InFlight {
                    state: RecordState::Acquired,
                    delivery_count: 1,
                    owner: Some(member.to_owned()),
                    deadline_ms: Some(deadline),
                    unanswered: true,
                    rejected: false,
                },
            );
            self.end += 1;
        }
        (self.end > first).then(|| Acquired {
            first,
            last: self.end - 1,
            delivery_count: 1,
        })
    }

    /// The acquired ranges of a fetch are handed out to `member` at
    /// `now_ms`: what it still holds, with the delivery count it was
    /// acquired with, comes back, its locks starting over at `now_ms` (the
    /// fetch read the log and wrote its state between acquiring and
    /// answering, and a lock counts from the hand-out). What it no longer
    /// holds (its lock ran out meanwhile, maybe to another member) is left
    /// out: a record is never handed to two members at once.
    pub fn hand_out(&mut self, member: &str, acquired: &[Acquired], now_ms: i64) -> Vec<Acquired> {
        let deadline = now_ms.saturating_add(self.config.lock_duration_ms);
        let mut kept: Vec<(Offset, u16)> = Vec::new();
        for a in acquired {
            let below = self.below_start.range_mut(a.first..=a.last);
            for (offset, r) in below.chain(self.records.range_mut(a.first..=a.last)) {
                if r.state == RecordState::Acquired
                    && r.owner.as_deref() == Some(member)
                    && r.delivery_count == a.delivery_count
                {
                    r.deadline_ms = Some(deadline);
                    r.unanswered = false;
                    kept.push((*offset, r.delivery_count));
                }
            }
        }
        ranges(&kept)
    }

    /// `member` acknowledges `[first, last]` with `ack` at `now_ms`. Every
    /// offset of the range must be Acquired by `member` (else
    /// INVALID_RECORD_STATE and nothing changes).
    pub fn acknowledge(
        &mut self,
        member: &str,
        first: Offset,
        last: Offset,
        ack: AckType,
        now_ms: i64,
    ) -> Result<(), ErrorCode> {
        if first > last || last >= self.end {
            return Err(ErrorCode::InvalidRecordState);
        }
        if ack == AckType::Renew && !self.config.renew_acknowledge {
            return Err(ErrorCode::InvalidRecordState);
        }
        let range = || {
            let below = self.below_start.range(first..=last);
            below.chain(self.records.range(first..=last))
        };
        let held = range()
            .all(|(_, r)| r.state == RecordState::Acquired && r.owner.as_deref() == Some(member));
        if !held || range().count() as i64 != last - first + 1 {
            return Err(ErrorCode::InvalidRecordState);
        }
        let config = self.config;
        let deadline = now_ms.saturating_add(self.config.lock_duration_ms);
        let rejected = if config.dead_letter {
            RecordState::Archiving
        } else {
            RecordState::Archived
        };
        let below = self.below_start.range_mut(first..=last);
        for (_, r) in below.chain(self.records.range_mut(first..=last)) {
            if ack != AckType::Renew {
                // Acknowledged before its fetch handed it out (a member's
                // requests crossing): not a delivery.
                r.delivery_count = r.counted_deliveries();
            }
            match ack {
                AckType::Accept => finish(r, RecordState::Acknowledged),
                AckType::Gap => finish(r, RecordState::Archived),
                AckType::Reject => {
                    finish(r, rejected);
                    r.rejected = true;
                }
                AckType::Release => give_back(r, config),
                AckType::Renew => r.deadline_ms = Some(deadline),
            }
        }
        self.advance_start();
        Ok(())
    }

    /// Takes back records of `[first, last]` that `member` acquired but
    /// was never sent (the read stopped short of them): their delivery is
    /// not counted, and those at the SPEO are forgotten, as if never
    /// handed out. Offsets `member` does not hold are left alone.
    pub fn unacquire(&mut self, member: &str, first: Offset, last: Offset) {
        let below = self.below_start.range_mut(first..=last);
        for (_, r) in below.chain(self.records.range_mut(first..=last)) {
            if r.state == RecordState::Acquired && r.owner.as_deref() == Some(member) {
                finish(r, RecordState::Available);
                r.delivery_count = r.delivery_count.saturating_sub(1);
            }
        }
        while let Some(entry) = self.records.last_entry() {
            let r = entry.get();
            if r.state != RecordState::Available || r.delivery_count != 0 {
                break;
            }
            let (offset, _) = entry.remove_entry();
            self.end = offset;
        }
        self.advance_start();
    }

    /// Records of `[first, last]` that `member` acquired belong to an
    /// aborted transaction (a read_committed group): they are never
    /// delivered, so Archived, their acquisition uncounted.
    pub fn archive_aborted(&mut self, member: &str, first: Offset, last: Offset) {
        let below = self.below_start.range_mut(first..=last);
        for (_, r) in below.chain(self.records.range_mut(first..=last)) {
            if r.state == RecordState::Acquired && r.owner.as_deref() == Some(member) {
                finish(r, RecordState::Archived);
                r.delivery_count = r.delivery_count.saturating_sub(1);
            }
        }
        self.advance_start();
    }

    /// Locks past their deadline at `now_ms` end: those records are
    /// Available again (or Archived at the delivery limit), an acquisition
    /// never handed out uncounted. How many.
    pub fn expire_locks(&mut self, now_ms: i64) -> usize {
        self.give_back_where(|r| r.deadline_ms.is_some_and(|d| d <= now_ms))
    }

    /// `member` left the group: what it holds goes back (Available, or
    /// Archived at the delivery limit), as when its locks expire; what a
    /// fetch of its acquired and has not handed out yet, uncounted.
    pub fn release_member(&mut self, member: &str) -> usize {
        self.give_back_where(|r| r.owner.as_deref() == Some(member))
    }

    /// Gives back every acquired record `which` selects (Available, or
    /// Archived at the delivery limit); how many.
    fn give_back_where(&mut self, which: impl Fn(&InFlight) -> bool) -> usize {
        let config = self.config;
        let mut given = 0;
        for r in self
            .below_start
            .values_mut()
            .chain(self.records.values_mut())
        {
            if r.state == RecordState::Acquired && which(r) {
                // Never handed out: not a delivery.
                r.delivery_count = r.counted_deliveries();
                give_back(r, config);
                given += 1;
            }
        }
        self.advance_start();
        given
    }

    /// The records to be written to the dead-letter topic: (offset,
    /// delivery count, why), in offset order.
    pub fn archiving(&self) -> Vec<(Offset, u16, Cause)> {
        let limit = self.config.delivery_count_limit;
        self.all()
            .filter(|(_, r)| r.state == RecordState::Archiving)
            .map(|(o, r)| {
                let cause = if r.rejected {
                    Cause::Rejected
                } else {
                    Cause::inferred(r.delivery_count, limit)
                };
                (*o, r.delivery_count, cause)
            })
            .collect()
    }

    /// `offsets` were written to the dead-letter topic (or could not be,
    /// which Kafka logs and moves on from): those still Archiving are
    /// Archived. How many.
    pub fn archived(&mut self, offsets: &[Offset]) -> usize {
        let mut moved = 0;
        for offset in offsets {
            let r = if *offset < self.start {
                self.below_start.get_mut(offset)
            } else {
                self.records.get_mut(offset)
            };
            if let Some(r) = r {
                if r.state == RecordState::Archiving {
                    r.state = RecordState::Archived;
                    moved += 1;
                }
            }
        }
        self.advance_start();
        moved
    }

    /// When the next lock expires, if any is held.
    pub fn next_deadline_ms(&self) -> Option<i64> {
        self.all().filter_map(|(_, r)| r.deadline_ms).min()
    }

    /// The log's start moved to `log_start` (retention, DeleteRecords):
    /// records below it are gone, so done with, but for those Acquired
    /// (their members may still acknowledge them) or Archiving (still to
    /// be written to the dead-letter topic), kept aside.
    pub fn log_start_moved(&mut self, log_start: Offset) {
        if log_start <= self.start {
            return;
        }
        let kept = self.records.split_off(&log_start);
        let gone = std::mem::replace(&mut self.records, kept);
        self.below_start
            .extend(gone.into_iter().filter(|(_, r)| {
                matches!(r.state, RecordState::Acquired | RecordState::Archiving)
            }));
        self.start = log_start;
        self.end = self.end.max(log_start);
        self.advance_start();
    }

    /// The log now ends at `log_end` (a power loss took unsynced records,
    /// or a replica was truncated): offsets past it are forgotten, so the
    /// records written there next are delivered as new ones.
    pub fn log_truncated(&mut self, log_end: Offset) {
        if self.end <= log_end {
            return;
        }
        self.records.split_off(&log_end);
        self.end = log_end;
        self.start = self.start.min(log_end);
        self.advance_start();
    }

    /// Moves the SPSO past the done records at its front, and forgets
    /// those kept aside below it that are done or were given back.
    fn advance_start(&mut self) {
        self.below_start
            .retain(|_, r| matches!(r.state, RecordState::Acquired | RecordState::Archiving));
        while let Some(entry) = self.records.first_entry() {
            if !entry.get().state.is_done() {
                break;
            }
            let (offset, _) = entry.remove_entry();
            self.start = offset + 1;
        }
        if self.records.is_empty() {
            self.start = self.end;
        }
    }

    /// The invariants of the module doc; the first one broken, if any.
    pub fn check(&self) -> Result<(), String> {
        if self.start > self.end {
            return Err(format!("SPSO {} past SPEO {}", self.start, self.end));
        }
        if self.records.len() as i64 != self.end - self.start {
            return Err(format!(
                "{} records in flight between {} and {}",
                self.records.len(),
                self.start,
                self.end
            ));
        }
        if let Some((first, r)) = self.records.first_key_value() {
            if *first != self.start || r.state.is_done() {
                return Err(format!("the front record {first} is {:?}", r.state));
            }
        }
        for (offset, r) in &self.below_start {
            if *offset >= self.start
                || !matches!(r.state, RecordState::Acquired | RecordState::Archiving)
            {
                return Err(format!(
                    "{offset} kept aside below the SPSO {} as {:?}",
                    self.start, r.state
                ));
            }
        }
        for (offset, r) in self.all() {
            let acquired = r.state == RecordState::Acquired;
            if acquired != (r.owner.is_some() && r.deadline_ms.is_some())
                || (!acquired && (r.owner.is_some() || r.deadline_ms.is_some() || r.unanswered))
            {
                return Err(format!("{offset}: {:?} with owner {:?}", r.state, r.owner));
            }
            if r.delivery_count > self.limit_ceiling {
                return Err(format!("{offset} delivered {} times", r.delivery_count));
            }
            if r.state == RecordState::Available
                && r.delivery_count >= self.config.delivery_count_limit
            {
                return Err(format!("{offset} available after the delivery limit"));
            }
        }
        Ok(())
    }
}

/// A record comes back: Available, or archived (Archiving with a
/// dead-letter topic) once delivered as often as the limit allows.
fn give_back(r: &mut InFlight, config: ShareConfig) {
    let state = if r.delivery_count >= config.delivery_count_limit {
        over_limit(config)
    } else {
        RecordState::Available
    };
    finish(r, state);
}

/// Where a record delivered as often as the limit allows goes.
fn over_limit(config: ShareConfig) -> RecordState {
    if config.dead_letter {
        RecordState::Archiving
    } else {
        RecordState::Archived
    }
}

/// A record leaves its holder for `state`.
fn finish(r: &mut InFlight, state: RecordState) {
    r.state = state;
    r.owner = None;
    r.deadline_ms = None;
    r.unanswered = false;
}

/// Offsets (ascending) with their delivery counts as ranges of contiguous
/// offsets with the same count.
fn ranges(taken: &[(Offset, u16)]) -> Vec<Acquired> {
    let mut out: Vec<Acquired> = Vec::new();
    for &(offset, delivery_count) in taken {
        match out.last_mut() {
            Some(a) if a.last + 1 == offset && a.delivery_count == delivery_count => {
                a.last = offset
            }
            _ => out.push(Acquired {
                first: offset,
                last: offset,
                delivery_count,
            }),
        }
    }
    out
}

/// Kafka's lag of a share partition: the records from its start offset
/// `start` up to the log's high watermark, less the `done` among them
/// (never below 0).
pub fn lag(high_watermark: Offset, start: Offset, done: usize) -> i64 {
    (high_watermark - start - done as i64).max(0)
}

#[cfg(test)]
mod tests;
