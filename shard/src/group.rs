//! The group coordinator of one shard: runs [`GroupCoordinator`] for the
//! `__consumer_offsets` partitions the shard owns.
//!
//! Owns: the shard's [`GroupCoordinator`]; the requests parked in it (a
//! JoinGroup waiting for the rebalance, a SyncGroup waiting for the
//! leader), each a channel its answer is sent on; and one
//! [`OffsetsLog`] per loaded partition, which writes every record before it
//! takes effect.
//!
//! Invariants: a group is served only by the shard that owns its
//! partition, and only once that partition is loaded (a partition is
//! replayed when its shard opens it, before the shard serves; a request for
//! a partition still loading gets COORDINATOR_LOAD_IN_PROGRESS and one for
//! a partition another shard owns NOT_COORDINATOR, as Kafka). A commit is
//! answered only after its record is durable, and a SyncGroup only after
//! the assignment's record is: an acknowledged commit survives SIGKILL.
//! A KIP-848 or share group's metadata record (its epoch) is written after
//! the heartbeat that made the group or moved its epoch applied, before
//! that heartbeat is answered; a failed write is logged and made good by
//! the next change (membership itself is not persisted). A KIP-848 group
//! a tick drops (empty, nothing committed) gets its tombstone in the
//! background.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use glommio::channels::local_channel::{self, LocalSender};
use sluice_core::config::GroupConfig;
use sluice_core::group::consumer::{self, TopicCatalog};
use sluice_core::group::coordinator::{CommitClaim, GroupCoordinator, PendingWrite};
use sluice_core::group::records::{CommittedOffset, OffsetsRecord};
use sluice_core::group::share::ShareHeartbeatResponse;
use sluice_core::group::written::WrittenImages;
use sluice_core::group::{
    coordinator_partition, JoinRequest, JoinResponse, Reply, SyncRequest, SyncResponse, Token,
};
use sluice_core::txn::verification::VerificationGuard;
use sluice_core::{ErrorCode, PartitionId};

use crate::env::Env;
use crate::message::{GroupRequest, GroupResponse};
use crate::notify::Notify;
use crate::shard::OwnedPartition;

mod offsets_log;
pub use offsets_log::{OffsetsLog, OffsetsVerification};

/// The internal topic that holds committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// A shard's group coordinator.
pub struct GroupHome {
    coordinator: RefCell<GroupCoordinator>,
    parked: RefCell<HashMap<Token, LocalSender<Reply>>>,
    next_token: Cell<Token>,
    /// The loaded partitions of `__consumer_offsets` this shard owns.
    logs: RefCell<HashMap<PartitionId, Rc<OffsetsLog>>>,
    /// Partitions of `__consumer_offsets` (0 until the topic exists).
    partition_count: Cell<i32>,
    env: Rc<dyn Env>,
    /// Signalled after anything that may move the coordinator's next
    /// deadline, so the timer task re-arms.
    timers_changed: Notify,
    timer_started: Cell<bool>,
    stopped: Cell<bool>,
    /// What the logs will hold for each KIP-848 and share group of the
    /// loaded partitions once the queued writes complete: a group's
    /// records that differ are written before any answer gives them.
    written: RefCell<WrittenImages>,
    /// Counts the writes of group records that failed: a write that
    /// succeeded after one was queued before it may not hold what it
    /// assumed written.
    write_failures: Cell<u64>,
}

impl GroupHome {
    pub fn new(config: GroupConfig, env: Rc<dyn Env>) -> GroupHome {
        GroupHome {
            coordinator: RefCell::new(GroupCoordinator::new(config)),
            parked: RefCell::new(HashMap::new()),
            next_token: Cell::new(0),
            logs: RefCell::new(HashMap::new()),
            partition_count: Cell::new(0),
            env,
            timers_changed: Notify::default(),
            timer_started: Cell::new(false),
            stopped: Cell::new(false),
            written: RefCell::new(WrittenImages::default()),
            write_failures: Cell::new(0),
        }
    }

    /// Loads one partition of `__consumer_offsets` (replaying its records)
    /// and starts its writer; from then on its groups are served here (a
    /// log loaded before for the partition stops). The loaded log, for
    /// [`Self::unload_log`].
    pub async fn load(
        self: &Rc<Self>,
        partition: PartitionId,
        partition_count: i32,
        owned: Rc<OwnedPartition>,
    ) -> Option<Rc<OffsetsLog>> {
        self.partition_count.set(partition_count);
        let log = Rc::new(OffsetsLog::new(partition, owned, self.env.clone()));
        match log.replay(&self.coordinator, self.env.now_ms()).await {
            Ok(report) => tracing::info!(
                partition,
                records = report.records,
                skipped = report.skipped,
                "loaded a group coordinator partition"
            ),
            Err(e) => {
                tracing::error!(partition, error = %e, "could not load a group coordinator partition");
                return None;
            }
        }
        if let Some(old) = self.logs.borrow_mut().insert(partition, log.clone()) {
            old.stop();
        }
        // The replayed groups' records are what the log holds.
        {
            let c = self.coordinator.borrow();
            let mut written = self.written.borrow_mut();
            for (group, records) in
                c.persisted_groups(|g| coordinator_partition(g, partition_count) == partition)
            {
                written.seed(&group, records);
            }
        }
        let home = self.clone();
        let running = log.clone();
        glommio::spawn_local(async move { running.run(home).await }).detach();
        if !self.timer_started.replace(true) {
            let home = self.clone();
            glommio::spawn_local(async move { home.run_timers().await }).detach();
        }
        Some(log)
    }

    /// [`Self::unload`], when `log` is still the one serving `partition`
    /// (a later load replaced it otherwise).
    pub fn unload_log(&self, partition: PartitionId, log: &Rc<OffsetsLog>) {
        let current = self.logs.borrow().get(&partition).cloned();
        if current.is_some_and(|c| Rc::ptr_eq(&c, log)) {
            self.unload(partition);
        }
    }

    /// True while `partition`'s groups are served here.
    pub fn is_loaded(&self, partition: PartitionId) -> bool {
        self.logs.borrow().contains_key(&partition)
    }

    /// The coordinator's timers: one wait until its next deadline (a
    /// session, a pending member id, a rebalance's delay or timeout),
    /// re-armed whenever a request may have moved it, and a tick when it
    /// is due. So a session expires at its deadline, not at a periodic
    /// check. Runs until the shard stops.
    async fn run_timers(self: Rc<Self>) {
        let mut ticked_late = false;
        while !self.stopped.get() {
            // Registered before the deadline is read: a change after the
            // read still wakes this wait.
            let changed = self.timers_changed.changed();
            let now = self.env.now_ms();
            // Not borrowed in the match: its arms wait.
            let next = self.coordinator.borrow().next_deadline_ms();
            match next {
                Some(at) if at <= now && !ticked_late => {
                    drop(changed);
                    self.tick();
                    // A deadline a tick did not clear (it should) must not
                    // spin: the next one waits a millisecond first.
                    ticked_late = true;
                    continue;
                }
                Some(at) => {
                    let wait = std::time::Duration::from_millis((at - now).max(1) as u64);
                    futures_lite::future::or(changed, self.env.sleep(wait)).await;
                }
                None => changed.await,
            }
            ticked_late = false;
        }
    }

    /// Stops serving `partition` (its topic was deleted, its replica moved
    /// away, or another broker leads it now).
    pub fn unload(&self, partition: PartitionId) {
        if let Some(log) = self.logs.borrow_mut().remove(&partition) {
            log.stop();
        }
        let count = self.partition_count.get();
        let replies = self
            .coordinator
            .borrow_mut()
            .retain(|g| coordinator_partition(g, count) != partition);
        self.written
            .borrow_mut()
            .retain(|g| coordinator_partition(g, count) != partition);
        self.deliver(replies);
    }

    /// Writes a transaction's marker to `partition` of `__consumer_offsets`
    /// (from the transaction coordinator): the offsets its producer
    /// committed in it take effect or are dropped. NOT_COORDINATOR when the
    /// partition is not loaded here.
    pub async fn write_marker(
        &self,
        partition: PartitionId,
        marker: sluice_core::txn::marker::Marker,
    ) -> ErrorCode {
        let Some(log) = self.logs.borrow().get(&partition).cloned() else {
            return ErrorCode::NotCoordinator;
        };
        match log.write_marker(marker).await {
            Ok(()) => ErrorCode::None,
            Err(e) => e,
        }
    }

    /// Partitions of `__consumer_offsets`.
    pub fn partition_count(&self) -> i32 {
        self.partition_count.get()
    }

    /// Stops every writer and the timers (the shard is closing).
    pub fn stop_all(&self) {
        self.stopped.set(true);
        self.timers_changed.notify_all();
        for log in self.logs.borrow_mut().drain() {
            log.1.stop();
        }
    }

    /// The loaded log of `partition`, if it is loaded here.
    pub fn log(&self, partition: PartitionId) -> Option<Rc<OffsetsLog>> {
        self.logs.borrow().get(&partition).cloned()
    }

    /// The coordinator (tests and the loader apply records to it).
    pub(crate) fn coordinator(&self) -> &RefCell<GroupCoordinator> {
        &self.coordinator
    }

    /// Runs one group request for a group of `partition`; `topics`, the
    /// cluster's topics (KIP-848 and share assignments); `verified`, a
    /// TxnOffsetCommit's verification guard (begun on the partition's
    /// [`OffsetsLog`]). `None` when `partition` is not loaded here (the
    /// caller tells which error that is).
    pub async fn handle(
        self: &Rc<Self>,
        partition: PartitionId,
        request: GroupRequest,
        topics: &dyn TopicCatalog,
        verified: Option<VerificationGuard>,
    ) -> Option<GroupResponse> {
        let log = self.logs.borrow().get(&partition).cloned()?;
        let response = self.serve(&log, request, topics, verified).await;
        self.timers_changed.notify_all();
        Some(response)
    }

    /// [`GroupHome::handle`] once the partition's log is found.
    async fn serve(
        self: &Rc<Self>,
        log: &Rc<OffsetsLog>,
        request: GroupRequest,
        topics: &dyn TopicCatalog,
        verified: Option<VerificationGuard>,
    ) -> GroupResponse {
        let now = self.env.now_ms();
        match request {
            GroupRequest::ConsumerHeartbeat(req) => {
                let group_id = req.group_id.clone();
                let response = self
                    .coordinator
                    .borrow_mut()
                    .consumer_heartbeat(req, topics, now);
                let member = Some(response.member_id.as_str());
                if let Err(e) = self.write_group_records(log, &group_id, member).await {
                    self.heartbeat_answer_lost(&group_id, &response.member_id);
                    let refusal = consumer::HeartbeatResponse::error(e, &response.member_id);
                    return GroupResponse::ConsumerHeartbeat(refusal);
                }
                GroupResponse::ConsumerHeartbeat(response)
            }
            GroupRequest::ShareHeartbeat(req) => {
                let group_id = req.group_id.clone();
                let response = self
                    .coordinator
                    .borrow_mut()
                    .share_heartbeat(req, topics, now);
                let member = Some(response.member_id.as_str());
                if let Err(e) = self.write_group_records(log, &group_id, member).await {
                    self.heartbeat_answer_lost(&group_id, &response.member_id);
                    let refusal = ShareHeartbeatResponse::error(e, None, &response.member_id);
                    return GroupResponse::ShareHeartbeat(refusal);
                }
                GroupResponse::ShareHeartbeat(response)
            }
            GroupRequest::DescribeShareGroup { group_id } => GroupResponse::ShareGroupDescribed(
                self.coordinator.borrow().describe_share_group(&group_id),
            ),
            GroupRequest::ShareOffsetsCheck { group_id, create } => {
                let checked = self
                    .coordinator
                    .borrow_mut()
                    .share_offsets_check(&group_id, create);
                let written = self.write_group_records(log, &group_id, None).await;
                let checked = checked.and(written);
                GroupResponse::Error(match checked {
                    Ok(()) => ErrorCode::None,
                    Err(e) => e,
                })
            }
            GroupRequest::Join(req) => GroupResponse::Join(self.join(req, now).await),
            GroupRequest::Sync(req) => GroupResponse::Sync(self.sync(req, now).await),
            GroupRequest::Heartbeat {
                group_id,
                member_id,
                instance_id,
                generation,
            } => {
                let error = self.coordinator.borrow_mut().heartbeat(
                    &group_id,
                    &member_id,
                    instance_id.as_deref(),
                    generation,
                    now,
                );
                GroupResponse::Error(error)
            }
            GroupRequest::Leave { group_id, members } => {
                let (result, replies) = self
                    .coordinator
                    .borrow_mut()
                    .leave(&group_id, &members, now);
                self.settle(replies);
                GroupResponse::Leave(result)
            }
            GroupRequest::Commit {
                group_id,
                member_id,
                instance_id,
                generation,
                unknown_group_error,
                offsets,
            } => {
                let mut partitions = committed_partitions(&offsets);
                if self.env.broken_rule() == Some(crate::env::BrokenRule::OlderEpochCommitsTaken) {
                    // Nothing to check: an older epoch passes for anything.
                    partitions.clear();
                }
                let claim = CommitClaim {
                    group_id: &group_id,
                    member_id: &member_id,
                    instance_id: instance_id.as_deref(),
                    generation,
                    partitions: &partitions,
                };
                let check = self.coordinator.borrow_mut().check_commit(
                    claim,
                    topics,
                    now,
                    unknown_group_error,
                );
                if check != ErrorCode::None {
                    return GroupResponse::Commit(vec![check; offsets.len()]);
                }
                let records = offset_records(&group_id, &offsets);
                let written = if records.is_empty() {
                    Ok(())
                } else {
                    log.write(records.clone(), records).await
                };
                commit_answer(&offsets, written)
            }
            GroupRequest::FetchOffsets {
                group_id,
                partitions,
                require_stable,
                member_id,
                member_epoch,
            } => {
                let c = self.coordinator.borrow();
                let check = c.check_fetch(&group_id, member_id.as_deref(), member_epoch);
                if check != ErrorCode::None {
                    return GroupResponse::Offsets(Err(check));
                }
                let committed = c.offsets(&group_id);
                let row = |topic: String, p: PartitionId, v: Option<CommittedOffset>| {
                    if require_stable && c.has_txn_offset(&group_id, &topic, p) {
                        (topic, p, Err(ErrorCode::UnstableOffsetCommit))
                    } else {
                        (topic, p, Ok(v))
                    }
                };
                let rows = match partitions {
                    Some(wanted) => wanted
                        .into_iter()
                        .map(|(topic, p)| {
                            let v = committed.and_then(|o| o.get(&(topic.clone(), p)).cloned());
                            row(topic, p, v)
                        })
                        .collect(),
                    None => committed
                        .into_iter()
                        .flatten()
                        .map(|((topic, p), v)| row(topic.clone(), *p, Some(v.clone())))
                        .collect(),
                };
                GroupResponse::Offsets(Ok(rows))
            }
            GroupRequest::TxnCommit {
                group_id,
                transactional_id: _,
                adds_partition: _,
                producer_id,
                epoch,
                member_id,
                instance_id,
                generation,
                unknown_group_error,
                offsets,
            } => {
                // A commit that names no member (TxnOffsetCommit before
                // v3, or a producer given only the group id) is not a
                // member's: Kafka lets it through whatever the group's
                // state, and makes the group if it does not exist. A
                // member's, to a group this coordinator does not know, is
                // refused.
                let anonymous = member_id.is_empty() && generation < 0 && instance_id.is_none();
                let check = if anonymous {
                    ErrorCode::None
                } else {
                    let partitions = committed_partitions(&offsets);
                    let claim = CommitClaim {
                        group_id: &group_id,
                        member_id: &member_id,
                        instance_id: instance_id.as_deref(),
                        generation,
                        partitions: &partitions,
                    };
                    self.coordinator.borrow_mut().check_commit(
                        claim,
                        topics,
                        now,
                        unknown_group_error,
                    )
                };
                if check != ErrorCode::None {
                    return GroupResponse::Commit(vec![check; offsets.len()]);
                }
                let records = offset_records(&group_id, &offsets);
                let written = if records.is_empty() {
                    Ok(())
                } else {
                    log.write_txn_offsets(producer_id, epoch, records, verified)
                        .await
                };
                commit_answer(&offsets, written)
            }
            GroupRequest::Describe { group_id } => {
                GroupResponse::Described(self.coordinator.borrow().describe(&group_id))
            }
            GroupRequest::DescribeConsumerGroup { group_id } => {
                GroupResponse::ConsumerGroupDescribed(
                    self.coordinator.borrow().describe_consumer_group(&group_id),
                )
            }
            GroupRequest::Delete { group_id } => {
                let tombstones = self.coordinator.borrow().deletion(&group_id);
                match tombstones {
                    Ok(records) => match self.write_tombstones(log, records).await {
                        Ok(()) => GroupResponse::Error(ErrorCode::None),
                        Err(e) => GroupResponse::Error(e),
                    },
                    Err(e) => GroupResponse::Error(e),
                }
            }
            GroupRequest::DeleteOffsets {
                group_id,
                partitions,
            } => {
                let subscribed = match self.coordinator.borrow().offset_delete_check(&group_id) {
                    Ok(topics) => topics,
                    Err(e) => return GroupResponse::DeleteOffsets(Err(e)),
                };
                let mut errors = Vec::with_capacity(partitions.len());
                let mut records = Vec::new();
                for (topic, p) in partitions {
                    if subscribed.contains(&topic) {
                        errors.push(ErrorCode::GroupSubscribedToTopic);
                    } else {
                        errors.push(ErrorCode::None);
                        records.push(OffsetsRecord::Offset {
                            group: group_id.clone(),
                            topic,
                            partition: p,
                            value: None,
                        });
                    }
                }
                if !records.is_empty() {
                    if let Err(e) = log.write(records.clone(), records).await {
                        return GroupResponse::DeleteOffsets(Err(e));
                    }
                }
                GroupResponse::DeleteOffsets(Ok(errors))
            }
        }
    }

    /// ListGroups over every group this shard coordinates.
    pub fn list(&self) -> GroupResponse {
        GroupResponse::Listed(Ok(self.coordinator.borrow().list()))
    }

    async fn join(self: &Rc<Self>, req: JoinRequest, now: i64) -> JoinResponse {
        let member_id = req.member_id.clone();
        match self.parked(|c, token| c.join(req, token, now)).await {
            Some(Reply::Join(_, response)) => response,
            _ => JoinResponse::error(ErrorCode::CoordinatorNotAvailable, &member_id),
        }
    }

    async fn sync(self: &Rc<Self>, req: SyncRequest, now: i64) -> SyncResponse {
        match self.parked(|c, token| c.sync(req, token, now)).await {
            Some(Reply::Sync(_, response)) => response,
            _ => SyncResponse::error(ErrorCode::CoordinatorNotAvailable),
        }
    }

    /// Runs `op` for a request that may be parked, and waits for its answer
    /// (now, or when the rebalance or a write gets to it).
    async fn parked(
        self: &Rc<Self>,
        op: impl FnOnce(&mut GroupCoordinator, Token) -> Vec<Reply>,
    ) -> Option<Reply> {
        let (token, answer) = self.park();
        let replies = op(&mut self.coordinator.borrow_mut(), token);
        self.settle(replies);
        answer.recv().await
    }

    /// Answers what `replies` answer and writes the groups that changed.
    fn settle(self: &Rc<Self>, replies: Vec<Reply>) {
        self.deliver(replies);
        self.write_group_changes();
        self.timers_changed.notify_all();
    }

    /// A new token and the channel its answer will arrive on.
    fn park(
        &self,
    ) -> (
        Token,
        glommio::channels::local_channel::LocalReceiver<Reply>,
    ) {
        let token = self.next_token.get();
        self.next_token.set(token + 1);
        let (tx, rx) = local_channel::new_bounded(1);
        self.parked.borrow_mut().insert(token, tx);
        (token, rx)
    }

    /// Sends each reply to the request it answers (if it still waits: a
    /// client that disconnected dropped its end).
    fn deliver(&self, replies: Vec<Reply>) {
        for reply in replies {
            let sender = self.parked.borrow_mut().remove(&reply.token());
            if let Some(sender) = sender {
                let _ = sender.try_send(reply);
            }
        }
    }

    /// Writes what changed of KIP-848 or share group `group_id`'s records
    /// since the writes queued before, and waits until every write of the
    /// group queued so far is durable, so that no answer gives what a
    /// restart could take back. A heartbeat of `member` compares the
    /// group's own records and that member's only, unless every member's
    /// may have changed ([`WrittenImages::needs_whole`]): a heartbeat costs
    /// no more in a group of thousands. The write runs in a task of its
    /// own, so a request given up meanwhile leaves the group's image
    /// right. The write's error, for the answer.
    async fn write_group_records(
        self: &Rc<Self>,
        log: &Rc<OffsetsLog>,
        group_id: &str,
        member: Option<&str>,
    ) -> Result<(), ErrorCode> {
        {
            let written = self.written.borrow();
            let changed = self
                .scoped_records(group_id, member, &written)
                .is_some_and(|(records, only)| written.differs(group_id, &records, only));
            if !changed && !written.writing(group_id) {
                return Ok(());
            }
        }
        let home = self.clone();
        let log = log.clone();
        let group = group_id.to_owned();
        let member = member.map(str::to_owned);
        let task = glommio::spawn_local(async move {
            let failures_before = home.write_failures.get();
            let mut queued = Vec::new();
            let written = log
                .write_with(
                    || {
                        let mut images = home.written.borrow_mut();
                        let scoped = home.scoped_records(&group, member.as_deref(), &images);
                        queued = match scoped {
                            Some((records, only)) => images.diff(&group, records, only),
                            None => Vec::new(),
                        };
                        images.write_queued(&group);
                        queued.clone()
                    },
                    Vec::new(),
                )
                .await;
            let mut images = home.written.borrow_mut();
            images.write_done(&group);
            match written {
                Ok(()) if home.write_failures.get() == failures_before => Ok(()),
                Ok(()) => {
                    // A write queued before this one failed: what this
                    // one took for written may not be.
                    images.all_unknown(&group);
                    Err(ErrorCode::CoordinatorNotAvailable)
                }
                Err(e) => {
                    home.write_failures.set(home.write_failures.get() + 1);
                    // (A group unloaded or deleted meanwhile keeps no image.)
                    images.unknown(&queued, false);
                    images.all_unknown(&group);
                    tracing::warn!(group, error = %e, "writing group records failed");
                    Err(e)
                }
            }
        })
        .detach();
        task.await.unwrap_or(Err(ErrorCode::NotCoordinator))
    }

    /// The records of group `group_id` a write compares with its image,
    /// and the member they are limited to: `member`'s and the group's own,
    /// or, when that does not do (or no member is named), every record.
    /// `None`: no such group.
    fn scoped_records<'m>(
        &self,
        group_id: &str,
        member: Option<&'m str>,
        images: &WrittenImages,
    ) -> Option<(Vec<OffsetsRecord>, Option<&'m str>)> {
        if let Some(member) = member {
            let partial = self.group_records(group_id, Some(member))?;
            if !images.needs_whole(group_id, &partial) {
                return Some((partial, Some(member)));
            }
        }
        Some((self.group_records(group_id, None)?, None))
    }

    /// KIP-848 or share group `group_id`'s records as they are now, every
    /// member's or `only` that one's (`None`: no such group).
    fn group_records(&self, group_id: &str, only: Option<&str>) -> Option<Vec<OffsetsRecord>> {
        let mut records = self
            .coordinator
            .borrow()
            .member_group_records(group_id, only)?;
        if self.env.broken_rule() == Some(crate::env::BrokenRule::MembersUnwritten) {
            records.retain(|r| {
                matches!(
                    r,
                    OffsetsRecord::ConsumerGroup { .. }
                        | OffsetsRecord::ShareGroup { .. }
                        | OffsetsRecord::TargetEpoch { .. }
                )
            });
        }
        Some(records)
    }

    /// Writes `tombstones` to `log` and applies them to the coordinator. A
    /// tombstone of a group's metadata record comes with tombstones for
    /// every other record the group wrote (its members'), chosen as the
    /// write is queued; the group's image is forgotten then, and made
    /// unknown again if the write fails.
    async fn write_tombstones(
        &self,
        log: &OffsetsLog,
        tombstones: Vec<OffsetsRecord>,
    ) -> Result<(), ErrorCode> {
        let mut queued = Vec::new();
        let applied = tombstones.clone();
        let written = log
            .write_with(
                || {
                    queued = self.written.borrow_mut().tombstones(tombstones);
                    queued.clone()
                },
                applied,
            )
            .await;
        if written.is_err() {
            self.write_failures.set(self.write_failures.get() + 1);
            // Not applied: their groups are still the coordinator's.
            self.written.borrow_mut().unknown(&queued, true);
        }
        written
    }

    /// A heartbeat's answer is not given: see
    /// [`GroupCoordinator::heartbeat_answer_lost`].
    fn heartbeat_answer_lost(&self, group_id: &str, member_id: &str) {
        self.coordinator
            .borrow_mut()
            .heartbeat_answer_lost(group_id, member_id);
    }

    /// Writes the metadata of every group that changed; members waiting on
    /// an assignment are answered once it is durable.
    fn write_group_changes(self: &Rc<Self>) {
        let writes = self.coordinator.borrow_mut().take_pending_writes();
        for PendingWrite {
            group_id,
            record,
            waiting_generation,
        } in writes
        {
            let partition = coordinator_partition(&group_id, self.partition_count.get());
            let Some(log) = self.logs.borrow().get(&partition).cloned() else {
                continue;
            };
            let home = self.clone();
            glommio::spawn_local(async move {
                let result = log.write(vec![record], Vec::new()).await;
                if let Err(e) = result {
                    tracing::warn!(group = group_id, error = %e, "writing group metadata failed");
                }
                if let Some(generation) = waiting_generation {
                    let replies = home.coordinator.borrow_mut().persisted(
                        &group_id,
                        generation,
                        result,
                        home.env.now_ms(),
                    );
                    home.settle(replies);
                }
            })
            .detach();
        }
    }

    /// The records `make` gives for the groups of each loaded partition,
    /// with the log they go to (partitions with none are left out).
    fn tombstones_per_log(
        &self,
        make: impl Fn(&GroupCoordinator, &mut dyn FnMut(&str) -> bool) -> Vec<OffsetsRecord>,
    ) -> Vec<(PartitionId, Rc<OffsetsLog>, Vec<OffsetsRecord>)> {
        let count = self.partition_count.get();
        let logs: Vec<(PartitionId, Rc<OffsetsLog>)> = self
            .logs
            .borrow()
            .iter()
            .map(|(p, l)| (*p, l.clone()))
            .collect();
        let coordinator = self.coordinator.borrow();
        logs.into_iter()
            .filter_map(|(partition, log)| {
                let mut keep = |g: &str| coordinator_partition(g, count) == partition;
                let records = make(&coordinator, &mut keep);
                (!records.is_empty()).then_some((partition, log, records))
            })
            .collect()
    }

    /// Deletes every committed offset of `topic` (it was deleted), in the
    /// background.
    pub fn topic_deleted(self: &Rc<Self>, topic: &str) {
        let per_log = self.tombstones_per_log(|c, keep| c.topic_offsets_tombstones(topic, keep));
        for (partition, log, tombstones) in per_log {
            let topic = topic.to_owned();
            glommio::spawn_local(async move {
                if let Err(e) = log.write(tombstones.clone(), tombstones).await {
                    tracing::warn!(topic, partition, error = %e, "deleting a deleted topic's offsets failed");
                }
            })
            .detach();
        }
    }

    /// Deletes the committed offsets that outlived `offsets.retention.minutes`
    /// (the periodic retention check).
    pub async fn expire_offsets(&self) {
        let now = self.env.now_ms();
        let per_log = self.tombstones_per_log(|c, keep| c.expired_offsets(now, keep));
        for (partition, log, tombstones) in per_log {
            let expired = tombstones.len();
            match self.write_tombstones(&log, tombstones).await {
                Ok(()) => tracing::info!(partition, records = expired, "expired committed offsets"),
                Err(e) => {
                    tracing::warn!(partition, error = %e, "expiring committed offsets failed")
                }
            }
        }
    }

    /// Runs the coordinator's timers that are due: expired sessions,
    /// rebalances whose time is up.
    pub fn tick(self: &Rc<Self>) {
        let replies = self.coordinator.borrow_mut().tick(self.env.now_ms());
        self.settle(replies);
        // KIP-848 and share groups whose members expired: what changed is
        // written (a restart would bring the members back otherwise), in
        // the background.
        let expired = self.coordinator.borrow_mut().take_expired_groups();
        for group in expired {
            let partition = coordinator_partition(&group, self.partition_count.get());
            let Some(log) = self.logs.borrow().get(&partition).cloned() else {
                continue;
            };
            let home = self.clone();
            glommio::spawn_local(async move {
                if let Err(e) = home.write_group_records(&log, &group, None).await {
                    tracing::warn!(group, error = %e, "writing an expired member's records failed");
                }
            })
            .detach();
        }
        // KIP-848 groups the tick dropped: their records go, in the
        // background. Chosen (and the groups' images forgotten) now, so a
        // group made again meanwhile writes all of its records.
        let dropped = self.coordinator.borrow_mut().take_dropped_consumer_groups();
        let tombstones = self.written.borrow_mut().tombstones(dropped);
        let per_log = tombstones.into_iter().fold(
            BTreeMap::<PartitionId, Vec<OffsetsRecord>>::new(),
            |mut per_log, tombstone| {
                let partition =
                    coordinator_partition(tombstone.group(), self.partition_count.get());
                per_log.entry(partition).or_default().push(tombstone);
                per_log
            },
        );
        for (partition, tombstones) in per_log {
            let Some(log) = self.logs.borrow().get(&partition).cloned() else {
                continue;
            };
            let home = self.clone();
            // Not applied: the groups may be made again meanwhile. Their
            // keys are unknown once written, so a group made again while
            // they waited for room in the queue writes its records again.
            glommio::spawn_local(async move {
                let written = log.write(tombstones.clone(), Vec::new()).await;
                if let Err(e) = written {
                    home.write_failures.set(home.write_failures.get() + 1);
                    tracing::warn!(partition, error = %e, "deleting dropped groups' records failed");
                }
                home.written.borrow_mut().unknown(&tombstones, false);
            })
            .detach();
        }
    }
}

/// An offset commit's partitions, (topic, partition, offset, error from
/// the request's checks).
type CommitOffsets = [(String, PartitionId, CommittedOffset, ErrorCode)];

/// The partitions a commit writes (those not refused already), as the
/// coordinator's membership check reads them.
fn committed_partitions(offsets: &CommitOffsets) -> Vec<(&str, PartitionId)> {
    offsets
        .iter()
        .filter(|(_, _, _, error)| *error == ErrorCode::None)
        .map(|(topic, partition, _, _)| (topic.as_str(), *partition))
        .collect()
}

/// The records that commit `offsets` for `group_id` (those that passed
/// the request's checks).
fn offset_records(group_id: &str, offsets: &CommitOffsets) -> Vec<OffsetsRecord> {
    offsets
        .iter()
        .filter(|(_, _, _, error)| *error == ErrorCode::None)
        .map(|(topic, partition, value, _)| OffsetsRecord::Offset {
            group: group_id.to_owned(),
            topic: topic.clone(),
            partition: *partition,
            value: Some(value.clone()),
        })
        .collect()
}

/// A commit's answer, one error per partition: its own check's, else the
/// write's.
fn commit_answer(offsets: &CommitOffsets, written: Result<(), ErrorCode>) -> GroupResponse {
    GroupResponse::Commit(
        offsets
            .iter()
            .map(|(_, _, _, error)| match (*error, written) {
                (ErrorCode::None, Ok(())) => ErrorCode::None,
                (ErrorCode::None, Err(e)) => e,
                (e, _) => e,
            })
            .collect(),
    )
}
