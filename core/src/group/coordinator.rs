//! The groups one shard coordinates, and the group APIs over them.
//!
//! Owns: the map from group id to [`Group`] for the `__consumer_offsets`
//! partitions a shard owns; creating groups on first use; the checks that
//! come before a group exists (invalid ids, unknown groups); which groups'
//! metadata must be written; rebuilding everything from the partition's
//! records at load; and the live records a compaction keeps.
//!
//! Invariants: as [`super::membership`]: no I/O, no clock. A committed offset is
//! applied here only after its record is durable (the caller persists first,
//! then calls [`GroupCoordinator::apply`]).

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use super::consumer::{self, ConsumerGroup, ConsumerGroupConfig, TopicCatalog};
use super::member_records::GroupProtocol;
use super::membership::Group;
use super::records::{CommittedOffset, OffsetsRecord};
use super::share::{
    ShareGroup, ShareGroupConfig, ShareGroupDescription, ShareHeartbeatRequest,
    ShareHeartbeatResponse,
};
use super::{GroupState, JoinRequest, JoinResponse, Reply, SyncRequest, SyncResponse, Token};
use crate::config::GroupConfig;
use crate::ErrorCode;

/// Who an offset commit says it comes from, and what it commits.
#[derive(Debug, Clone, Copy)]
pub struct CommitClaim<'a> {
    pub group_id: &'a str,
    pub member_id: &'a str,
    pub instance_id: Option<&'a str>,
    /// The generation (classic groups) or member epoch (KIP-848); -1 for
    /// none.
    pub generation: i32,
    /// The partitions it commits, by topic name (those not refused
    /// already).
    pub partitions: &'a [(&'a str, i32)],
}

/// A group's metadata record to write, and the generation whose members
/// wait for it (their SyncGroup answers), if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingWrite {
    pub group_id: String,
    pub record: OffsetsRecord,
    pub waiting_generation: Option<i32>,
}

/// One line of ListGroups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    /// Kafka's name of the state (Empty, Stable, Reconciling, ...).
    pub state: String,
    /// "classic" or "consumer" (KIP-848).
    pub group_type: &'static str,
}

/// One member as DescribeGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// Metadata and assignment are shown only while the group is Stable.
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// A group as DescribeGroups shows it (an unknown group is Dead and empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: GroupState,
    pub protocol_type: String,
    /// The selected protocol, while Stable; otherwise empty.
    pub protocol: String,
    pub members: Vec<MemberDescription>,
}

/// The groups of one shard.
#[derive(Debug)]
pub struct GroupCoordinator {
    config: GroupConfig,
    /// Classic groups, and the committed offsets of every group.
    groups: BTreeMap<String, Group>,
    /// Groups of the KIP-848 protocol (their offsets are in `groups`):
    /// their membership and epochs, also in records of the log
    /// ([`ConsumerGroup::records`]), so they come back after a restart.
    consumer_groups: BTreeMap<String, ConsumerGroup>,
    /// KIP-848 groups a tick dropped (empty, nothing committed) whose
    /// records' tombstones are due ([`Self::take_dropped_consumer_groups`]).
    dropped_consumer_groups: BTreeSet<String>,
    /// KIP-848 and share groups a tick expired members of, whose records
    /// are due ([`Self::take_expired_groups`]).
    expired_groups: BTreeSet<String>,
    /// Share groups (KIP-932), kept until deleted: their membership and
    /// epochs, also in records of the log ([`ShareGroup::records`]), so
    /// they come back after a restart.
    share_groups: BTreeMap<String, ShareGroup>,
    /// Groups whose metadata changed since the last
    /// [`GroupCoordinator::take_pending_writes`] (so that call looks at
    /// those alone, not at every group).
    dirty: BTreeSet<String>,
    /// Offsets committed inside transactions not yet ended, by producer id
    /// (TxnOffsetCommit): durable, but applied only when the transaction's
    /// commit marker is written, and dropped at its abort marker.
    /// One record per (group, topic, partition): a later commit in the
    /// same transaction replaces an earlier one.
    txn_offsets: BTreeMap<i64, BTreeMap<(String, String, i32), OffsetsRecord>>,
}

impl GroupCoordinator {
    /// No groups yet.
    pub fn new(config: GroupConfig) -> GroupCoordinator {
        GroupCoordinator {
            config,
            groups: BTreeMap::new(),
            consumer_groups: BTreeMap::new(),
            dropped_consumer_groups: BTreeSet::new(),
            expired_groups: BTreeSet::new(),
            share_groups: BTreeMap::new(),
            dirty: BTreeSet::new(),
            txn_offsets: BTreeMap::new(),
        }
    }

    /// Offset records `producer_id` wrote in its open transaction (durable):
    /// they wait for its marker.
    pub fn add_txn_offsets(&mut self, producer_id: i64, records: Vec<OffsetsRecord>) {
        let pending = self.txn_offsets.entry(producer_id).or_default();
        for record in records {
            if let OffsetsRecord::Offset {
                group,
                topic,
                partition,
                ..
            } = &record
            {
                pending.insert((group.clone(), topic.clone(), *partition), record);
            }
        }
    }

    /// `producer_id`'s transaction ended (its marker is durable): its
    /// offsets take effect on commit and are forgotten on abort.
    pub fn end_txn_offsets(&mut self, producer_id: i64, commit: bool, now_ms: i64) {
        let Some(records) = self.txn_offsets.remove(&producer_id) else {
            return;
        };
        if commit {
            for record in records.into_values() {
                self.apply(record, now_ms);
            }
        }
    }

    /// True while an open transaction has committed an offset for the
    /// group's partition (OffsetFetch's require_stable then answers
    /// UNSTABLE_OFFSET_COMMIT, as Kafka).
    pub fn has_txn_offset(&self, group_id: &str, topic: &str, partition: i32) -> bool {
        let key = (group_id.to_owned(), topic.to_owned(), partition);
        self.txn_offsets
            .values()
            .any(|pending| pending.contains_key(&key))
    }

    /// The limits this coordinator applies.
    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    /// A group, if it exists.
    pub fn group(&self, group_id: &str) -> Option<&Group> {
        self.groups.get(group_id)
    }

    /// JoinGroup; a first join creates the group.
    pub fn join(&mut self, req: JoinRequest, token: Token, now_ms: i64) -> Vec<Reply> {
        let mut out = Vec::new();
        if req.group_id.is_empty() {
            let r = JoinResponse::error(ErrorCode::InvalidGroupId, &req.member_id);
            out.push(Reply::Join(token, r));
            return out;
        }
        if self.share_groups.contains_key(&req.group_id) {
            // Kafka: a classic member cannot join a share group.
            let r = JoinResponse::error(ErrorCode::InconsistentGroupProtocol, &req.member_id);
            out.push(Reply::Join(token, r));
            return out;
        }
        if !req.member_id.is_empty() && !self.groups.contains_key(&req.group_id) {
            let r = JoinResponse::error(ErrorCode::UnknownMemberId, &req.member_id);
            out.push(Reply::Join(token, r));
            return out;
        }
        // An empty KIP-848 group becomes a classic one when a classic
        // member joins it (as Kafka converts it).
        if self
            .consumer_groups
            .get(&req.group_id)
            .is_some_and(ConsumerGroup::is_empty)
        {
            self.consumer_groups.remove(&req.group_id);
        }
        let group = self
            .groups
            .entry(req.group_id.clone())
            .or_insert_with(|| Group::new(&req.group_id, now_ms));
        let id = req.group_id.clone();
        group.join(req, token, now_ms, &self.config, &mut out);
        self.note_changes(&id);
        out
    }

    /// Remembers `group_id` for the next pending writes if its metadata
    /// changed.
    fn note_changes(&mut self, group_id: &str) {
        if self.groups.get(group_id).is_some_and(Group::is_dirty) {
            self.dirty.insert(group_id.to_owned());
        }
    }

    /// SyncGroup.
    pub fn sync(&mut self, req: SyncRequest, token: Token, now_ms: i64) -> Vec<Reply> {
        let mut out = Vec::new();
        if req.group_id.is_empty() {
            out.push(Reply::Sync(
                token,
                SyncResponse::error(ErrorCode::InvalidGroupId),
            ));
            return out;
        }
        let id = req.group_id.clone();
        match self.groups.get_mut(&id) {
            Some(group) => group.sync(req, token, now_ms, &mut out),
            None => out.push(Reply::Sync(
                token,
                SyncResponse::error(ErrorCode::UnknownMemberId),
            )),
        }
        self.note_changes(&id);
        out
    }

    /// Heartbeat.
    pub fn heartbeat(
        &mut self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now_ms: i64,
    ) -> ErrorCode {
        if group_id.is_empty() {
            return ErrorCode::InvalidGroupId;
        }
        match self.groups.get_mut(group_id) {
            Some(group) => group.heartbeat(member_id, instance_id, generation, now_ms),
            None => ErrorCode::UnknownMemberId,
        }
    }

    /// LeaveGroup for several members: one error per member, in order.
    pub fn leave(
        &mut self,
        group_id: &str,
        members: &[(String, Option<String>)],
        now_ms: i64,
    ) -> (Result<Vec<ErrorCode>, ErrorCode>, Vec<Reply>) {
        let mut out = Vec::new();
        if group_id.is_empty() {
            return (Err(ErrorCode::InvalidGroupId), out);
        }
        let Some(group) = self.groups.get_mut(group_id) else {
            return (Err(ErrorCode::UnknownMemberId), out);
        };
        let errors = members
            .iter()
            .map(|(member, instance)| group.leave(member, instance.as_deref(), now_ms, &mut out))
            .collect();
        self.note_changes(group_id);
        (Ok(errors), out)
    }

    /// ConsumerGroupHeartbeat (KIP-848), with the topics of `catalog`.
    pub fn consumer_heartbeat(
        &mut self,
        req: consumer::HeartbeatRequest,
        catalog: &dyn TopicCatalog,
        now_ms: i64,
    ) -> consumer::HeartbeatResponse {
        let refuse = consumer::HeartbeatResponse::error;
        if req.group_id.is_empty() {
            return refuse(ErrorCode::InvalidGroupId, &req.member_id);
        }
        let classic_in_use = self
            .groups
            .get(&req.group_id)
            .is_some_and(|g| g.state != GroupState::Empty || !g.is_empty());
        if classic_in_use && !self.consumer_groups.contains_key(&req.group_id) {
            // Kafka: the group is a classic group with members.
            return refuse(ErrorCode::GroupIdNotFound, &req.member_id);
        }
        if self.share_groups.contains_key(&req.group_id) {
            return refuse(ErrorCode::GroupIdNotFound, &req.member_id);
        }
        let config = ConsumerGroupConfig {
            session_timeout_ms: self.config.consumer_session_timeout_ms,
            heartbeat_interval_ms: self.config.consumer_heartbeat_interval_ms,
        };
        let group = self
            .consumer_groups
            .entry(req.group_id.clone())
            .or_default();
        group.heartbeat(req, catalog, now_ms, config)
    }

    /// ShareGroupHeartbeat (KIP-932), with the topics of `catalog`. A
    /// group id a classic or consumer group holds is GROUP_ID_NOT_FOUND,
    /// as Kafka answers it.
    pub fn share_heartbeat(
        &mut self,
        req: ShareHeartbeatRequest,
        catalog: &dyn TopicCatalog,
        now_ms: i64,
    ) -> ShareHeartbeatResponse {
        if req.group_id.is_empty() {
            return ShareHeartbeatResponse::error(
                ErrorCode::InvalidRequest,
                Some("GroupId can't be empty.".into()),
                &req.member_id,
            );
        }
        if !self.share_groups.contains_key(&req.group_id)
            && (self.groups.contains_key(&req.group_id)
                || self.consumer_groups.contains_key(&req.group_id))
        {
            return ShareHeartbeatResponse::error(
                ErrorCode::GroupIdNotFound,
                Some(format!("Group {} is not a share group.", req.group_id)),
                &req.member_id,
            );
        }
        if req.member_epoch != 0 && !self.share_groups.contains_key(&req.group_id) {
            return ShareHeartbeatResponse::error(
                ErrorCode::GroupIdNotFound,
                Some(format!("Group {} not found.", req.group_id)),
                &req.member_id,
            );
        }
        let config = ShareGroupConfig {
            session_timeout_ms: self.config.share_session_timeout_ms,
            heartbeat_interval_ms: self.config.share_heartbeat_interval_ms,
            max_size: self.config.share_max_size.max(1) as usize,
        };
        let group = self.share_groups.entry(req.group_id.clone()).or_default();
        group.heartbeat(req, &|name| catalog.topic(name), now_ms, config)
    }

    /// ShareGroupDescribe for one group: GROUP_ID_NOT_FOUND, with Kafka's
    /// message, when there is no such group or it is of another type.
    pub fn describe_share_group(
        &self,
        group_id: &str,
    ) -> Result<ShareGroupDescription, (ErrorCode, String)> {
        match self.share_groups.get(group_id) {
            Some(g) => Ok(g.describe()),
            None if self.groups.contains_key(group_id)
                || self.consumer_groups.contains_key(group_id) =>
            {
                Err((
                    ErrorCode::GroupIdNotFound,
                    format!("Group {group_id} is not a share group."),
                ))
            }
            None => Err((
                ErrorCode::GroupIdNotFound,
                format!("Group {group_id} not found."),
            )),
        }
    }

    /// AlterShareGroupOffsets' and DeleteShareGroupOffsets' check: the
    /// share group must have no members (NON_EMPTY_GROUP); a group id
    /// another type holds is GROUP_ID_NOT_FOUND; one that does not exist
    /// is made (empty) when `create`, else GROUP_ID_NOT_FOUND.
    pub fn share_offsets_check(&mut self, group_id: &str, create: bool) -> Result<(), ErrorCode> {
        if group_id.is_empty() {
            return Err(ErrorCode::InvalidGroupId);
        }
        if let Some(g) = self.share_groups.get(group_id) {
            return if g.is_empty() {
                Ok(())
            } else {
                Err(ErrorCode::NonEmptyGroup)
            };
        }
        if !create
            || self.groups.contains_key(group_id)
            || self.consumer_groups.contains_key(group_id)
        {
            return Err(ErrorCode::GroupIdNotFound);
        }
        self.share_groups
            .insert(group_id.to_owned(), ShareGroup::default());
        Ok(())
    }

    /// The answer to a heartbeat of `member_id` of KIP-848 or share group
    /// `group_id` was not given (its record could not be written): the
    /// member's next answer carries its whole assignment.
    pub fn heartbeat_answer_lost(&mut self, group_id: &str, member_id: &str) {
        if let Some(g) = self.consumer_groups.get_mut(group_id) {
            g.answer_lost(member_id);
        }
        if let Some(g) = self.share_groups.get_mut(group_id) {
            g.answer_lost(member_id);
        }
    }

    /// KIP-848 group `group_id`'s epoch, if it is one.
    pub fn consumer_group_epoch(&self, group_id: &str) -> Option<i32> {
        self.consumer_groups.get(group_id).map(|g| g.group_epoch)
    }

    /// The records of KIP-848 group `group_id` as it is now, if it is
    /// one: [`super::consumer::ConsumerGroup::records`]. Written (what
    /// changed of them) before an answer gives any of it.
    pub fn consumer_group_records(&self, group_id: &str) -> Option<Vec<OffsetsRecord>> {
        Some(self.consumer_groups.get(group_id)?.records(group_id, None))
    }

    /// KIP-848 and share groups ticks expired members of since the last
    /// call (and did not drop): their records changed.
    pub fn take_expired_groups(&mut self) -> Vec<String> {
        std::mem::take(&mut self.expired_groups)
            .into_iter()
            .filter(|g| self.consumer_groups.contains_key(g) || self.share_groups.contains_key(g))
            .collect()
    }

    /// The records of KIP-848 or share group `group_id`, if it is one:
    /// the group's own and every member's, or `only` that member's.
    pub fn member_group_records(
        &self,
        group_id: &str,
        only: Option<&str>,
    ) -> Option<Vec<OffsetsRecord>> {
        if let Some(g) = self.consumer_groups.get(group_id) {
            return Some(g.records(group_id, only));
        }
        Some(self.share_groups.get(group_id)?.records(group_id, only))
    }

    /// The records of every KIP-848 and share group `keep` selects, by
    /// group: what a replay of their partition found.
    pub fn persisted_groups(
        &self,
        keep: impl Fn(&str) -> bool,
    ) -> Vec<(String, Vec<OffsetsRecord>)> {
        let kip848 = self
            .consumer_groups
            .iter()
            .filter(|(id, _)| keep(id))
            .map(|(id, g)| (id.clone(), g.records(id, None)));
        let share = self
            .share_groups
            .keys()
            .filter(|id| keep(id))
            .filter_map(|id| Some((id.clone(), self.share_group_records(id)?)));
        kip848.chain(share).collect()
    }

    /// Tombstones of the KIP-848 groups ticks dropped since the last call.
    pub fn take_dropped_consumer_groups(&mut self) -> Vec<OffsetsRecord> {
        std::mem::take(&mut self.dropped_consumer_groups)
            .into_iter()
            .map(|group| OffsetsRecord::ConsumerGroup { group, value: None })
            .collect()
    }

    /// The tombstone of KIP-848 group `group_id`'s record, when it is one
    /// (with the tombstones that delete its classic entry).
    fn consumer_group_tombstone(&self, group_id: &str) -> Option<OffsetsRecord> {
        self.consumer_groups
            .contains_key(group_id)
            .then(|| OffsetsRecord::ConsumerGroup {
                group: group_id.to_owned(),
                value: None,
            })
    }

    /// Share group `group_id`'s epoch, if it is one.
    pub fn share_group_epoch(&self, group_id: &str) -> Option<i32> {
        self.share_groups.get(group_id).map(ShareGroup::epoch)
    }

    /// The records of share group `group_id` as it is now, if it is one:
    /// [`ShareGroup::records`]. Written (what changed of them) before an
    /// answer gives any of it.
    pub fn share_group_records(&self, group_id: &str) -> Option<Vec<OffsetsRecord>> {
        Some(self.share_groups.get(group_id)?.records(group_id, None))
    }

    /// Whether `member_id` is a member of share group `group_id` now.
    pub fn is_share_member(&self, group_id: &str, member_id: &str) -> bool {
        self.share_groups
            .get(group_id)
            .is_some_and(|g| g.has_member(member_id))
    }

    /// When [`GroupCoordinator::tick`] is next due: the earliest deadline of
    /// any group (a session, a pending member id, a rebalance's delay or
    /// timeout), or `None` when no group has a timer. The caller arms one
    /// timer for it, so a session expires when it is due, not at the next
    /// periodic check.
    pub fn next_deadline_ms(&self) -> Option<i64> {
        let classic = self.groups.values().filter_map(|g| g.next_deadline_ms());
        let consumer = self
            .consumer_groups
            .values()
            .filter_map(|g| g.next_deadline_ms());
        let share = self
            .share_groups
            .values()
            .filter_map(|g| g.next_deadline_ms());
        classic.chain(consumer).chain(share).min()
    }

    /// Every group's timers: expired sessions and rebalances whose time is
    /// up. Empty groups with nothing committed stay (listed as Empty) until
    /// the periodic offsets check ([`Self::expired_offsets`]) deletes them;
    /// an empty KIP-848 group stays a consumer group as long as it has
    /// committed offsets (its classic entry holds them).
    pub fn tick(&mut self, now_ms: i64) -> Vec<Reply> {
        for (id, g) in self.consumer_groups.iter_mut() {
            if g.expire(now_ms) {
                self.expired_groups.insert(id.clone());
            }
        }
        for (id, g) in self.share_groups.iter_mut() {
            if !g.expire(now_ms).is_empty() {
                self.expired_groups.insert(id.clone());
            }
        }
        let committed = &self.groups;
        let dropped = &mut self.dropped_consumer_groups;
        let expired = &mut self.expired_groups;
        self.consumer_groups.retain(|id, g| {
            let kept = !g.is_empty() || committed.contains_key(id);
            if !kept {
                expired.remove(id);
                dropped.insert(id.clone());
            }
            kept
        });
        let mut out = Vec::new();
        for (id, group) in self.groups.iter_mut() {
            if group.needs_ticks() || group.state == GroupState::PreparingRebalance {
                group.tick(now_ms, &mut out);
                if group.is_dirty() {
                    self.dirty.insert(id.clone());
                }
            }
        }
        out
    }

    /// Groups whose metadata changed: the records to write now.
    pub fn take_pending_writes(&mut self) -> Vec<PendingWrite> {
        let changed = std::mem::take(&mut self.dirty);
        changed
            .into_iter()
            .filter_map(|id| {
                let g = self.groups.get_mut(&id)?;
                g.take_dirty().then(|| PendingWrite {
                    record: OffsetsRecord::Group {
                        group: id.clone(),
                        value: Some(g.snapshot()),
                    },
                    waiting_generation: g.persisting(),
                    group_id: id,
                })
            })
            .collect()
    }

    /// A group's metadata record for `generation` was written (or not).
    pub fn persisted(
        &mut self,
        group_id: &str,
        generation: i32,
        result: Result<(), ErrorCode>,
        now_ms: i64,
    ) -> Vec<Reply> {
        let mut out = Vec::new();
        if let Some(group) = self.groups.get_mut(group_id) {
            group.persisted(generation, result, now_ms, &mut out);
        }
        self.note_changes(group_id);
        out
    }

    /// OffsetCommit's and TxnOffsetCommit's membership checks, before
    /// anything is written. `unknown_group_error` is what a member's commit
    /// to a group that does not exist gets (ILLEGAL_GENERATION up to
    /// OffsetCommit v8 and in every TxnOffsetCommit sluice serves,
    /// GROUP_ID_NOT_FOUND from OffsetCommit v9, as Kafka). A KIP-848
    /// member's commit under an older epoch is checked partition by
    /// partition, whose topics `catalog` names.
    pub fn check_commit(
        &mut self,
        claim: CommitClaim<'_>,
        catalog: &dyn TopicCatalog,
        now_ms: i64,
        unknown_group_error: ErrorCode,
    ) -> ErrorCode {
        let CommitClaim {
            group_id,
            member_id,
            instance_id,
            generation,
            partitions,
        } = claim;
        if group_id.is_empty() {
            return ErrorCode::InvalidGroupId;
        }
        if let Some(g) = self.consumer_groups.get(group_id) {
            // KIP-848: the generation field carries the member epoch.
            return g.check_commit(member_id, generation, partitions, catalog);
        }
        if self.share_groups.contains_key(group_id) {
            // A share group commits no offsets (Kafka's answer).
            return ErrorCode::GroupIdNotFound;
        }
        match self.groups.get_mut(group_id) {
            Some(group) => group.check_commit(member_id, instance_id, generation, now_ms),
            // A group that does not exist takes only "simple" commits
            // (no membership); a generation means a member of a group we
            // do not know: a stale one.
            None if generation < 0 => ErrorCode::None,
            None => unknown_group_error,
        }
    }

    /// OffsetFetch's membership check (v9+, which names the member asking):
    /// a KIP-848 member must be the group's, at its epoch; the other kinds
    /// of group, and a group that does not exist, check nothing (Kafka's
    /// rules).
    pub fn check_fetch(
        &self,
        group_id: &str,
        member_id: Option<&str>,
        member_epoch: i32,
    ) -> ErrorCode {
        match self.consumer_groups.get(group_id) {
            Some(g) => g.check_fetch(member_id, member_epoch),
            None => ErrorCode::None,
        }
    }

    /// Applies a durable record: a commit or deletion of an offset, or a
    /// group's metadata (at load). Offsets create their group when needed.
    pub fn apply(&mut self, record: OffsetsRecord, now_ms: i64) {
        match record {
            OffsetsRecord::Offset {
                group,
                topic,
                partition,
                value,
            } => match value {
                Some(v) => {
                    self.groups
                        .entry(group.clone())
                        .or_insert_with(|| Group::new(&group, now_ms))
                        .offsets
                        .insert((topic, partition), v);
                }
                None => {
                    if let Some(g) = self.groups.get_mut(&group) {
                        g.offsets.remove(&(topic, partition));
                    }
                }
            },
            OffsetsRecord::Group { group, value } => match value {
                Some(snapshot) => self
                    .groups
                    .entry(group.clone())
                    .or_insert_with(|| Group::new(&group, now_ms))
                    .restore(snapshot, now_ms),
                None => {
                    self.groups.remove(&group);
                    if self
                        .consumer_groups
                        .get(&group)
                        .is_some_and(ConsumerGroup::is_empty)
                    {
                        self.consumer_groups.remove(&group);
                    }
                }
            },
            OffsetsRecord::ConsumerGroup { group, value } => match value {
                // The group as written, its members from their records.
                Some(snapshot) => self
                    .consumer_groups
                    .entry(group)
                    .or_default()
                    .restore_epoch(snapshot.epoch),
                None => {
                    if self
                        .consumer_groups
                        .get(&group)
                        .is_some_and(ConsumerGroup::is_empty)
                    {
                        self.consumer_groups.remove(&group);
                    }
                }
            },
            OffsetsRecord::ShareGroup { group, value } => match value {
                // The group as written, its members from their records.
                Some(snapshot) => self
                    .share_groups
                    .entry(group)
                    .or_default()
                    .restore_epoch(snapshot.epoch),
                None => {
                    self.share_groups.remove(&group);
                }
            },
            OffsetsRecord::TargetEpoch {
                protocol,
                group,
                value,
            } => match (protocol, value) {
                (_, None) => {}
                (GroupProtocol::Consumer, Some(epoch)) => {
                    if let Some(g) = self.consumer_groups.get_mut(&group) {
                        g.restore_assignment_epoch(epoch);
                    }
                }
                (GroupProtocol::Share, Some(epoch)) => {
                    if let Some(g) = self.share_groups.get_mut(&group) {
                        g.restore_assignment_epoch(epoch);
                    }
                }
            },
            OffsetsRecord::Member {
                protocol,
                group,
                member,
                value,
            } => match protocol {
                GroupProtocol::Consumer => {
                    let session_timeout_ms = self.config.consumer_session_timeout_ms;
                    if let Some(g) = self.consumer_groups.get_mut(&group) {
                        g.restore_member(&member, value, now_ms, session_timeout_ms);
                    }
                }
                GroupProtocol::Share => {
                    let session_timeout_ms = self.config.share_session_timeout_ms;
                    if let Some(g) = self.share_groups.get_mut(&group) {
                        g.restore_member(&member, value, now_ms, session_timeout_ms);
                    }
                }
            },
            OffsetsRecord::Target {
                protocol,
                group,
                member,
                value,
            } => {
                // A share member's target is its assignment (restored
                // from that record).
                if let (GroupProtocol::Consumer, Some(g)) =
                    (protocol, self.consumer_groups.get_mut(&group))
                {
                    g.restore_target(&member, value);
                }
            }
            OffsetsRecord::Assignment {
                protocol,
                group,
                member,
                value,
            } => match protocol {
                GroupProtocol::Consumer => {
                    if let Some(g) = self.consumer_groups.get_mut(&group) {
                        g.restore_assignment(&member, value);
                    }
                }
                GroupProtocol::Share => {
                    if let Some(g) = self.share_groups.get_mut(&group) {
                        g.restore_assignment(&member, value);
                    }
                }
            },
        }
    }

    /// A group's committed offsets (`None`: no such group).
    pub fn offsets(&self, group_id: &str) -> Option<&BTreeMap<(String, i32), CommittedOffset>> {
        self.groups.get(group_id).map(|g| &g.offsets)
    }

    /// Every group, for ListGroups.
    pub fn list(&self) -> Vec<GroupListing> {
        let classic = self
            .groups
            .values()
            .filter(|g| !self.consumer_groups.contains_key(&g.id))
            .map(|g| GroupListing {
                group_id: g.id.clone(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                state: g.state.name().to_owned(),
                group_type: "classic",
            });
        let consumer = self.consumer_groups.iter().map(|(id, g)| GroupListing {
            group_id: id.clone(),
            protocol_type: "consumer".into(),
            state: g.state_name().to_owned(),
            group_type: "consumer",
        });
        let share = self.share_groups.iter().map(|(id, g)| GroupListing {
            group_id: id.clone(),
            protocol_type: "share".into(),
            state: g.state_name().to_owned(),
            group_type: "share",
        });
        classic.chain(consumer).chain(share).collect()
    }

    /// ConsumerGroupDescribe for one group: GROUP_ID_NOT_FOUND, with
    /// Kafka's message, when there is no such group or it is a classic one.
    pub fn describe_consumer_group(
        &self,
        group_id: &str,
    ) -> Result<super::consumer::ConsumerGroupDescription, (ErrorCode, String)> {
        match self.consumer_groups.get(group_id) {
            Some(g) => Ok(g.describe()),
            None if self.groups.contains_key(group_id) => Err((
                ErrorCode::GroupIdNotFound,
                format!("Group {group_id} is not a consumer group."),
            )),
            None => Err((
                ErrorCode::GroupIdNotFound,
                format!("Group {group_id} not found."),
            )),
        }
    }

    /// DescribeGroups for one group.
    pub fn describe(&self, group_id: &str) -> GroupDescription {
        let Some(g) = self.groups.get(group_id) else {
            return GroupDescription {
                group_id: group_id.to_owned(),
                state: GroupState::Dead,
                protocol_type: String::new(),
                protocol: String::new(),
                members: Vec::new(),
            };
        };
        let stable = g.state == GroupState::Stable;
        let protocol = g.protocol_name.clone().unwrap_or_default();
        GroupDescription {
            group_id: group_id.to_owned(),
            state: g.state,
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol: if stable {
                protocol.clone()
            } else {
                String::new()
            },
            members: g
                .members()
                .map(|m| MemberDescription {
                    member_id: m.member_id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.metadata(&protocol)
                    } else {
                        Bytes::new()
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                })
                .collect(),
        }
    }

    /// The group `group_id` names, for the APIs that act on an existing
    /// group (INVALID_GROUP_ID for an empty id, GROUP_ID_NOT_FOUND for none).
    fn existing(&self, group_id: &str) -> Result<&Group, ErrorCode> {
        if group_id.is_empty() {
            return Err(ErrorCode::InvalidGroupId);
        }
        self.groups.get(group_id).ok_or(ErrorCode::GroupIdNotFound)
    }

    /// DeleteGroups' check: the tombstones that delete `group_id` (its
    /// offsets, then its metadata). The group goes when they are applied.
    pub fn deletion(&self, group_id: &str) -> Result<Vec<OffsetsRecord>, ErrorCode> {
        if let Some(g) = self.share_groups.get(group_id) {
            // A share group commits no offsets: its metadata record is
            // all of it in the log.
            return if g.is_empty() {
                Ok(vec![OffsetsRecord::ShareGroup {
                    group: group_id.to_owned(),
                    value: None,
                }])
            } else {
                Err(ErrorCode::NonEmptyGroup)
            };
        }
        if self
            .consumer_groups
            .get(group_id)
            .is_some_and(|g| !g.is_empty())
        {
            return Err(ErrorCode::NonEmptyGroup);
        }
        let group = self.existing(group_id)?;
        if group.state != GroupState::Empty || !group.is_empty() {
            return Err(ErrorCode::NonEmptyGroup);
        }
        let mut records: Vec<OffsetsRecord> = group
            .offsets
            .keys()
            .map(|(topic, partition)| OffsetsRecord::Offset {
                group: group_id.to_owned(),
                topic: topic.clone(),
                partition: *partition,
                value: None,
            })
            .collect();
        records.push(OffsetsRecord::Group {
            group: group_id.to_owned(),
            value: None,
        });
        records.extend(self.consumer_group_tombstone(group_id));
        Ok(records)
    }

    /// OffsetDelete's check for a group: `Err` for the whole request, else
    /// the topics whose offsets may not be deleted (the members consume
    /// them).
    pub fn offset_delete_check(&self, group_id: &str) -> Result<Vec<String>, ErrorCode> {
        if let Some(g) = self.consumer_groups.get(group_id) {
            return Ok(g.subscribed_topics());
        }
        let group = self.existing(group_id)?;
        if group.state != GroupState::Empty && group.protocol_type.as_deref() != Some("consumer") {
            return Err(ErrorCode::NonEmptyGroup);
        }
        Ok(group.subscribed_topics().unwrap_or_default())
    }

    /// Tombstones for the offsets that expired by `now_ms` in the groups
    /// `keep` selects: an empty group's offset goes once both the group has
    /// been empty and the offset was committed at least
    /// `offsets.retention.minutes` ago; a group left with nothing gets a
    /// tombstone of its own. Groups with members keep their offsets.
    pub fn expired_offsets(
        &self,
        now_ms: i64,
        mut keep: impl FnMut(&str) -> bool,
    ) -> Vec<OffsetsRecord> {
        let retention_ms = self.config.offsets_retention_minutes.saturating_mul(60_000);
        let mut out = Vec::new();
        for (id, g) in self.groups.iter().filter(|(id, _)| keep(id)) {
            if g.state != GroupState::Empty || !g.is_empty() {
                continue;
            }
            let expired = |v: &CommittedOffset| {
                now_ms.saturating_sub(g.state_timestamp_ms.max(v.commit_timestamp_ms))
                    >= retention_ms
            };
            let gone: Vec<_> = g.offsets.iter().filter(|(_, v)| expired(v)).collect();
            // An empty group with nothing committed (its offsets deleted or
            // never committed) goes at this check too, as Kafka's does:
            // until then it lists as Empty.
            if gone.is_empty() && !g.offsets.is_empty() {
                continue;
            }
            let all = gone.len() == g.offsets.len();
            out.extend(
                gone.into_iter()
                    .map(|((topic, partition), _)| OffsetsRecord::Offset {
                        group: id.clone(),
                        topic: topic.clone(),
                        partition: *partition,
                        value: None,
                    }),
            );
            if all {
                out.push(OffsetsRecord::Group {
                    group: id.clone(),
                    value: None,
                });
                if self
                    .consumer_groups
                    .get(id)
                    .is_some_and(ConsumerGroup::is_empty)
                {
                    out.extend(self.consumer_group_tombstone(id));
                }
            }
        }
        out
    }

    /// Tombstones for every offset committed for `topic`, in the groups
    /// `keep` selects (the topic was deleted: as Kafka, its offsets go).
    pub fn topic_offsets_tombstones(
        &self,
        topic: &str,
        mut keep: impl FnMut(&str) -> bool,
    ) -> Vec<OffsetsRecord> {
        let mut out = Vec::new();
        for (id, g) in self.groups.iter().filter(|(id, _)| keep(id)) {
            for (t, partition) in g.offsets.keys() {
                if t == topic {
                    out.push(OffsetsRecord::Offset {
                        group: id.clone(),
                        topic: t.clone(),
                        partition: *partition,
                        value: None,
                    });
                }
            }
        }
        out
    }

    /// Every live record of the groups `keep` selects: what a compacted
    /// partition must still hold.
    pub fn live_records(&self, mut keep: impl FnMut(&str) -> bool) -> Vec<OffsetsRecord> {
        let mut records = Vec::new();
        let kip848: Vec<&String> = self.consumer_groups.keys().filter(|id| keep(id)).collect();
        records.extend(
            kip848
                .into_iter()
                .filter_map(|id| self.consumer_group_records(id))
                .flatten(),
        );
        let share: Vec<&String> = self.share_groups.keys().filter(|id| keep(id)).collect();
        records.extend(
            share
                .into_iter()
                .filter_map(|id| self.share_group_records(id))
                .flatten(),
        );
        for (id, g) in self.groups.iter().filter(|(id, _)| keep(id)) {
            records.push(OffsetsRecord::Group {
                group: id.clone(),
                value: Some(g.snapshot()),
            });
            for ((topic, partition), v) in &g.offsets {
                records.push(OffsetsRecord::Offset {
                    group: id.clone(),
                    topic: topic.clone(),
                    partition: *partition,
                    value: Some(v.clone()),
                });
            }
        }
        records
    }

    /// Groups whose id satisfies `keep` stay; the others are dropped (a
    /// partition moved away or was deleted) and their parked requests are
    /// answered NOT_COORDINATOR.
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) -> Vec<Reply> {
        let mut out = Vec::new();
        self.groups.retain(|id, g| {
            let kept = keep(id);
            if !kept {
                g.abandon(ErrorCode::NotCoordinator, &mut out);
            }
            kept
        });
        self.consumer_groups.retain(|id, _| keep(id));
        self.share_groups.retain(|id, _| keep(id));
        for records in self.txn_offsets.values_mut() {
            records.retain(|(group, _, _), _| keep(group));
        }
        self.txn_offsets.retain(|_, records| !records.is_empty());
        out
    }
}

#[cfg(test)]
mod tests;
