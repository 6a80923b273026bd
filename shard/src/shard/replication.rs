//! Replication on the shard that holds a partition's replica: its role
//! (leader or follower) kept in step with the metadata, the leader's side
//! of follower fetches (their log ends, the high watermark, the in-sync set
//! changes it asks the controller for), acks=all waits, and
//! OffsetForLeaderEpoch answers. The follower's side, fetching, is in
//! `replica_fetcher`.
//!
//! The decisions (high watermark, who is in sync, where to truncate) are
//! core's [`sluice_core::replication`], pure and driven by the simulator
//! too; this module feeds them offsets and the time and acts on what they
//! return.
//!
//! Invariants: a replica's role changes only when this shard applies
//! metadata that says so; every role change wakes the partition's waiters,
//! so an acks=all produce never waits on a leadership it lost; a partition
//! has at most one in-sync set change in flight.

use sluice_core::metadata::eligible::LeadershipConfig;
use sluice_core::metadata::{BrokerId, NO_LEADER};

use super::*;
use crate::message::{DeleteRecords, EpochEndOffsets, LogDirs, Proposal, Propose, ReplicaLogDir};

pub use sluice_core::replication::check_leader_epoch;
pub use sluice_core::replication::{FollowerRole, Role, RoleChange};

impl Shard {
    /// Brings every replica's role in step with this shard's metadata:
    /// new leaders start their epoch, new followers start by truncating,
    /// and a fetcher runs for every broker something here follows.
    pub(super) fn reconcile_roles(self: &Rc<Self>) {
        let me = self.config.node_id;
        let now = self.env.monotonic_ms() as i64;
        let mut leaders: Vec<BrokerId> = Vec::new();
        let owned: Vec<(PartitionKey, Rc<OwnedPartition>)> = self
            .partitions
            .borrow()
            .iter()
            .map(|(k, p)| (k.clone(), p.clone()))
            .collect();
        for ((topic, partition), p) in owned {
            let (meta, leadership) = {
                let metadata = self.metadata.borrow();
                let Some(meta) = metadata.partition(&topic, partition).cloned() else {
                    continue;
                };
                let leadership = metadata
                    .topics
                    .get(&topic)
                    .map(|t| LeadershipConfig::of(&metadata, &t.configs));
                (meta, leadership)
            };
            let ends = (p.log.log_end_offset(), p.local_end());
            let change = p.role.borrow_mut().follow(me, &meta, ends, now);
            if let Role::Leader(view) = &mut *p.role.borrow_mut() {
                // The stricter of the two: the metadata counts eligible
                // leaders by its value, acks=all by the partition's.
                view.min_isr = p
                    .min_insync_replicas
                    .get()
                    .max(leadership.map_or(1, |l| l.min_insync_replicas));
            }
            if matches!(change, RoleChange::Follower | RoleChange::Leader { .. }) {
                let topic_id = self.metadata.borrow().topics.get(&topic).map(|t| t.id);
                if let Some(topic_id) = topic_id {
                    let forgotten = self.forget_share_partitions_of(topic_id, partition);
                    if forgotten > 0 {
                        tracing::info!(
                            shard = self.id,
                            topic,
                            partition,
                            forgotten,
                            "share partitions forgotten: the partition's leadership moved"
                        );
                    }
                }
            }
            let changed = change != RoleChange::None;
            if changed {
                tracing::debug!(shard = self.id, topic, partition, leader = meta.leader, epoch = meta.leader_epoch, isr = ?meta.isr, "replica role");
                p.hw_changed.notify_all();
                p.appended.notify_all();
            }
            if topic == OFFSETS_TOPIC {
                match change {
                    RoleChange::Leader { epoch } => self.load_groups(partition, &p, epoch),
                    RoleChange::Follower if self.groups.is_loaded(partition) => {
                        tracing::info!(
                            shard = self.id,
                            partition,
                            leader = meta.leader,
                            "group coordinator partition moves to its new leader"
                        );
                        self.groups.unload(partition);
                    }
                    _ => {}
                }
            }
            if topic == TRANSACTION_STATE_TOPIC {
                match change {
                    RoleChange::Leader { epoch } => self.load_txns(partition, &p, epoch),
                    RoleChange::Follower if self.txns.is_loaded(partition) => {
                        tracing::info!(
                            shard = self.id,
                            partition,
                            leader = meta.leader,
                            "transaction coordinator partition moves to its new leader"
                        );
                        self.txns.unload(partition);
                    }
                    _ => {}
                }
            }
            if let RoleChange::Leader { epoch } | RoleChange::LeaderAgain { epoch } = change {
                let p = p.clone();
                glommio::spawn_local(async move {
                    if let Err(e) = p.log.start_epoch(epoch).await {
                        tracing::warn!(topic, partition, epoch, error = %e, "recording a new leader epoch");
                    }
                })
                .detach();
            }
            if meta.leader != me && meta.leader != NO_LEADER && !leaders.contains(&meta.leader) {
                leaders.push(meta.leader);
            }
        }
        for leader in leaders {
            self.ensure_fetcher(leader);
        }
    }

    /// A `__consumer_offsets` partition this shard now leads at `epoch`:
    /// its groups are replayed and served here, unless leadership moved on
    /// while they loaded (then they are unloaded again).
    fn load_groups(self: &Rc<Self>, partition: PartitionId, p: &Rc<OwnedPartition>, epoch: i32) {
        let shard = self.clone();
        let p = p.clone();
        glommio::spawn_local(async move {
            let count = shard
                .metadata
                .borrow()
                .topics
                .get(OFFSETS_TOPIC)
                .map_or(0, |t| t.partitions.len() as i32);
            let Some(log) = shard.groups.load(partition, count, p.clone()).await else {
                return;
            };
            let still = p.role.borrow().leads_since(epoch);
            let open = shard
                .partitions
                .borrow()
                .get(&(OFFSETS_TOPIC.to_owned(), partition))
                .is_some_and(|now| Rc::ptr_eq(now, &p));
            if !still || !open {
                shard.groups.unload_log(partition, &log);
            }
        })
        .detach();
    }

    /// A `__transaction_state` partition this shard now leads at `epoch`:
    /// its transactional ids are replayed and served here, unless
    /// leadership moved on while they loaded.
    fn load_txns(self: &Rc<Self>, partition: PartitionId, p: &Rc<OwnedPartition>, epoch: i32) {
        let shard = self.clone();
        let p = p.clone();
        glommio::spawn_local(async move {
            let count = shard
                .metadata
                .borrow()
                .topics
                .get(TRANSACTION_STATE_TOPIC)
                .map_or(0, |t| t.partitions.len() as i32);
            let home = shard.txns.clone();
            let Some(log) = home.load(&shard, partition, count, p.clone()).await else {
                return;
            };
            let still = p.role.borrow().leads_since(epoch);
            let open = shard
                .partitions
                .borrow()
                .get(&(TRANSACTION_STATE_TOPIC.to_owned(), partition))
                .is_some_and(|now| Rc::ptr_eq(now, &p));
            if !still || !open {
                home.unload_log(partition, &log);
            }
        })
        .detach();
    }

    /// On the leader: a follower fetched `partition` at `offset`, its log
    /// starting at `log_start`. Moves the high watermark and the low one
    /// (waking waiters) and asks for an in-sync set change when one is due.
    /// The error a replica fetch gets, if any.
    pub(super) fn on_replica_fetch(
        self: &Rc<Self>,
        key: (&str, PartitionId),
        p: &Rc<OwnedPartition>,
        replica: BrokerId,
        (offset, log_start): (Offset, Offset),
    ) -> ErrorCode {
        let now = self.env.monotonic_ms() as i64;
        let before = p.high_watermark();
        let start_moved = {
            let mut role = p.role.borrow_mut();
            let Role::Leader(view) = &mut *role else {
                return ErrorCode::NotLeaderOrFollower;
            };
            if !view.on_fetch(replica, offset, p.log.log_end_offset(), now) {
                return ErrorCode::NotLeaderOrFollower;
            }
            view.on_log_start(replica, log_start)
        };
        if p.high_watermark() > before || start_moved {
            p.hw_changed.notify_all();
        }
        self.maybe_alter_isr(key.0, key.1, p, now);
        ErrorCode::None
    }

    /// Asks the controller for the in-sync set the leader's view wants, if
    /// it differs from the current one and no change is in flight.
    fn maybe_alter_isr(
        self: &Rc<Self>,
        topic: &str,
        partition: PartitionId,
        p: &Rc<OwnedPartition>,
        now: i64,
    ) {
        let lag_max = self.config.kafka.replica_lag_time_max_ms as i64;
        let proposal = {
            let role = p.role.borrow();
            let Role::Leader(view) = &*role else {
                return;
            };
            let Some(isr) = view.wanted_isr(now, lag_max) else {
                return;
            };
            if p.alter_pending.get() {
                return;
            }
            Proposal::AlterPartition {
                topic: topic.to_owned(),
                partition,
                leader: view.me,
                leader_epoch: view.leader_epoch,
                partition_epoch: view.partition_epoch,
                isr,
            }
        };
        p.alter_pending.set(true);
        let shard = self.clone();
        let p = p.clone();
        glommio::spawn_local(async move {
            let asked = format!("{proposal:?}");
            match shard.call(0, Propose(proposal)).await {
                Ok(Ok(_)) => {
                    tracing::info!(shard = shard.id, proposal = asked, "the controller changed an in-sync set")
                }
                // Refusals repeat until the metadata catches up (a stale
                // partition epoch, a broker still fenced): not worth more
                // than a debug line each.
                Ok(Err((code, message))) => {
                    tracing::debug!(code = %code, message, proposal = asked, "the controller refused an in-sync set change")
                }
                Err(_) => {}
            }
            p.alter_pending.set(false);
        })
        .detach();
    }

    /// The periodic check of every partition led here: followers that fell
    /// behind for `replica.lag.time.max.ms` leave the in-sync set.
    pub async fn maintain_isr(self: Rc<Self>) {
        let period = (self.config.kafka.replica_lag_time_max_ms / 2).clamp(50, 5000);
        loop {
            self.env.sleep(Duration::from_millis(period)).await;
            let now = self.env.monotonic_ms() as i64;
            let led: Vec<(PartitionKey, Rc<OwnedPartition>)> = self
                .partitions
                .borrow()
                .iter()
                .filter(|(_, p)| p.role.borrow().is_leader())
                .map(|(k, p)| (k.clone(), p.clone()))
                .collect();
            for ((topic, partition), p) in led {
                self.maybe_alter_isr(&topic, partition, &p, now);
            }
        }
    }

    /// Waits until the high watermark reaches `offset` (acks=all): every
    /// in-sync replica holds the records, made durable under
    /// `log.flush=always`. NOT_LEADER_OR_FOLLOWER when leadership moves
    /// meanwhile, NOT_ENOUGH_REPLICAS_AFTER_APPEND when the in-sync set
    /// falls below `min.insync.replicas`, REQUEST_TIMED_OUT after
    /// `timeout_ms`.
    pub(super) async fn await_replicated(
        &self,
        topic: &str,
        partition: PartitionId,
        offset: Offset,
        leader_epoch: i32,
        timeout_ms: u64,
    ) -> ErrorCode {
        let Some(p) = self.partition(topic, partition) else {
            return self.absence_error(topic, partition);
        };
        let deadline = self.env.monotonic_ms() + timeout_ms;
        loop {
            {
                let role = p.role.borrow();
                if !role.leads_since(leader_epoch) {
                    return ErrorCode::NotLeaderOrFollower;
                }
            }
            if p.flush == FlushPolicy::Always && p.log.durable_offset() < offset {
                if let Err(e) = p.flush().await {
                    return e.error_code();
                }
                continue;
            }
            if p.high_watermark() >= offset {
                return ErrorCode::None;
            }
            if p.role.borrow().under_min_isr(p.min_insync_replicas.get()) {
                return ErrorCode::NotEnoughReplicasAfterAppend;
            }
            let now = self.env.monotonic_ms();
            if now >= deadline {
                return ErrorCode::RequestTimedOut;
            }
            let changed = p.hw_changed.changed();
            futures_lite::future::or(
                changed,
                self.env.sleep(Duration::from_millis(deadline - now)),
            )
            .await;
        }
    }

    /// [`LogDirs`]: every replica this shard holds.
    pub(crate) async fn log_dirs(&self, _: LogDirs) -> Vec<ReplicaLogDir> {
        self.partitions
            .borrow()
            .iter()
            .map(|((topic, partition), p)| ReplicaLogDir {
                topic: topic.clone(),
                partition: *partition,
                size: p.log.size_bytes(),
                offset_lag: (p.high_watermark() - p.log.log_end_offset()).max(0),
            })
            .collect()
    }

    /// [`DeleteRecords`]: moves each partition's log start offset up to the
    /// offset asked (-1: the high watermark), as Kafka's DeleteRecords does;
    /// an offset past the high watermark is OFFSET_OUT_OF_RANGE. Then, as
    /// Kafka, waits (at most `op.timeout_ms` in all) until every replica on
    /// a live broker has moved its start that far too: followers follow
    /// the leader's log start at their next fetch and report theirs in the
    /// one after. Each partition answers its low watermark (the least of
    /// those starts), or REQUEST_TIMED_OUT with -1.
    pub(crate) async fn delete_records_many(&self, op: DeleteRecords) -> Vec<(ErrorCode, Offset)> {
        let deadline = self.env.monotonic_ms() + op.timeout_ms;
        let mut out = Vec::with_capacity(op.partitions.len());
        let mut moved = Vec::new();
        for (topic, partition, offset) in &op.partitions {
            let Some(p) = self.partition(topic, *partition) else {
                out.push((self.absence_error(topic, *partition), -1));
                continue;
            };
            if !p.role.borrow().is_leader() {
                out.push((ErrorCode::NotLeaderOrFollower, -1));
                continue;
            }
            let hw = p.high_watermark();
            let target = if *offset == -1 { hw } else { *offset };
            if target < 0 || target > hw {
                out.push((ErrorCode::OffsetOutOfRange, -1));
                continue;
            }
            let leader_epoch = p.role.borrow().leader_epoch();
            match p.log.set_log_start_offset(target).await {
                Ok(start) => {
                    tracing::info!(
                        topic,
                        partition,
                        log_start_offset = start,
                        "records deleted"
                    );
                    moved.push((out.len(), p, start, leader_epoch));
                    out.push((ErrorCode::None, start));
                }
                Err(e) => out.push((e.error_code(), -1)),
            }
        }
        for (at, p, start, leader_epoch) in moved {
            out[at] = self
                .await_low_watermark(&p, start, leader_epoch, deadline)
                .await;
        }
        out
    }

    /// Waits until `p`'s low watermark reaches `offset` while this replica
    /// leads it at `leader_epoch` (or `deadline` passes), and answers the
    /// partition's DeleteRecords result. Cancel-safe.
    async fn await_low_watermark(
        &self,
        p: &OwnedPartition,
        offset: Offset,
        leader_epoch: i32,
        deadline: u64,
    ) -> (ErrorCode, Offset) {
        loop {
            // Registered before the check: a report after it still wakes.
            let changed = p.hw_changed.changed();
            let low = {
                let role = p.role.borrow();
                let Role::Leader(view) = &*role else {
                    return (ErrorCode::NotLeaderOrFollower, -1);
                };
                if view.leader_epoch != leader_epoch {
                    return (ErrorCode::NotLeaderOrFollower, -1);
                }
                let metadata = self.metadata();
                let alive = |b| metadata.brokers.get(&b).is_some_and(|m| !m.fenced);
                view.low_watermark(p.log.log_start_offset(), &alive)
            };
            if low >= offset {
                return (ErrorCode::None, low);
            }
            let now = self.env.monotonic_ms();
            if now >= deadline {
                return (ErrorCode::RequestTimedOut, -1);
            }
            futures_lite::future::or(
                changed,
                self.env.sleep(Duration::from_millis(deadline - now)),
            )
            .await;
        }
    }

    /// [`EpochEndOffsets`]: OffsetForLeaderEpoch for partitions led here.
    pub(crate) async fn epoch_end_offsets(
        &self,
        op: EpochEndOffsets,
    ) -> Vec<(ErrorCode, i32, Offset)> {
        op.partitions
            .iter()
            .map(|(topic, partition, current_leader_epoch, epoch)| {
                let Some(p) = self.partition(topic, *partition) else {
                    return (self.absence_error(topic, *partition), -1, -1);
                };
                let role = p.role.borrow();
                if !role.is_leader() {
                    return (ErrorCode::NotLeaderOrFollower, -1, -1);
                }
                let check = check_leader_epoch(*current_leader_epoch, role.leader_epoch());
                if check != ErrorCode::None {
                    return (check, -1, -1);
                }
                if *epoch == role.leader_epoch() {
                    // The epoch this leader leads in ends at its log end,
                    // recorded or not yet.
                    return (ErrorCode::None, *epoch, p.log.log_end_offset());
                }
                let (e, end) = p.log.end_offset_for_epoch(*epoch);
                (ErrorCode::None, e, end)
            })
            .collect()
    }
}
