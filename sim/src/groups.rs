//! Simulated group clients: members that join, sync, commit and heartbeat,
//! and simple committers, over the shards' group coordinators.
//!
//! Owns: the group operations of the run and their promises in
//! [`GroupModel`]: an acknowledged offset commit never goes back (an
//! OffsetFetch, and every restart, finds it or a later commit), and group
//! generations only grow (each member's joins within a process lifetime,
//! and every join after a crash is past the last generation whose
//! assignment was acknowledged, which is durable).
//!
//! The calls are those the group handlers in `net/` make: the coordinator
//! is the owner of the group's partition of `__consumer_offsets`, reached
//! through [`Shard::call`] from the client's entry shard.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use sluice_core::group::coordinator_partition;
use sluice_core::group::records::CommittedOffset;
use sluice_core::group::{JoinRequest, SyncRequest};
use sluice_core::{ErrorCode, Offset, PartitionId};
use sluice_shard::group::OFFSETS_TOPIC;
use sluice_shard::message::{Group, Propose};
use sluice_shard::{GroupRequest, GroupResponse, Proposal, Shard};

use crate::client::Clients;
use crate::consumers::ConsumerModel;
use crate::model::Tp;

/// Partitions of `__consumer_offsets` in the simulation.
pub const OFFSETS_PARTITIONS: i32 = 3;
const SESSION_TIMEOUT_MS: i32 = 10_000;
const HEARTBEAT_INTERVAL_MS: u64 = 1_000;

/// The promises about groups.
#[derive(Debug, Default)]
pub struct GroupModel {
    /// (group, partition) → the last acknowledged commit.
    pub committed: BTreeMap<(String, Tp), Offset>,
    /// (group, partition) → the largest offset ever sent in a commit.
    pub sent: BTreeMap<(String, Tp), Offset>,
    /// Groups with a simple commit in flight (one at a time per group).
    pub committing: BTreeSet<String>,
    /// Group → the largest generation whose SyncGroup was acknowledged
    /// (its assignment is durable).
    pub synced_generation: BTreeMap<String, i32>,
    /// Group → every join answered after the last crash must be past this.
    pub generation_floor: BTreeMap<String, i32>,
    pub joins: u64,
    pub commits_acked: u64,
    /// The promises about KIP-848 groups.
    pub consumers: ConsumerModel,
    pub offset_fetches_checked: u64,
}

impl GroupModel {
    /// After a crash: joins from now on must be past every generation whose
    /// assignment was acknowledged, in every group that cannot have been
    /// removed meanwhile. A group that became empty with nothing committed
    /// is removed, and a new one starts at generation 1, as in Kafka; one
    /// with an acknowledged commit stays (its offsets keep it).
    pub fn crashed(&mut self) {
        let committed = &self.committed;
        let floor = &mut self.generation_floor;
        self.synced_generation.retain(|group, generation| {
            let kept_alive = committed.keys().any(|(g, _)| g == group);
            if kept_alive {
                floor.insert(group.clone(), *generation + 1);
            }
            // A group nothing keeps may be gone, its generations with it.
            kept_alive
        });
        self.committing.clear();
        self.consumers.crashed();
    }

    /// Checks one group's committed offsets (from OffsetFetch) against the
    /// commits acknowledged before the question was asked (`acked`).
    pub fn check_fetched(
        &mut self,
        group: &str,
        acked: &BTreeMap<Tp, Offset>,
        fetched: &BTreeMap<Tp, Offset>,
    ) -> Result<(), String> {
        self.offset_fetches_checked += 1;
        for (tp, offset) in acked {
            let sent = self
                .sent
                .get(&(group.to_owned(), tp.clone()))
                .copied()
                .unwrap_or(*offset);
            match fetched.get(tp) {
                Some(found) if *found >= *offset && *found <= sent => {}
                Some(found) => {
                    return Err(format!(
                        "group {group} {tp:?}: committed offset {found}, but {offset} was acknowledged (and at most {sent} sent)"
                    ))
                }
                None => {
                    return Err(format!(
                        "group {group} {tp:?}: the acknowledged commit of {offset} is gone"
                    ))
                }
            }
        }
        Ok(())
    }

    /// The acknowledged commits of `group`.
    pub fn acked_of(&self, group: &str) -> BTreeMap<Tp, Offset> {
        self.committed
            .iter()
            .filter(|((g, _), _)| g == group)
            .map(|((_, tp), o)| (tp.clone(), *o))
            .collect()
    }
}

/// The coordinator of `group`: (owner shard, partition), once the offsets
/// topic exists in the entry shard's metadata.
pub(crate) fn locate(shard: &Shard, group: &str) -> Option<(u32, PartitionId)> {
    let metadata = shard.metadata();
    let topic = metadata.topics.get(OFFSETS_TOPIC)?;
    let partition = coordinator_partition(group, topic.partitions.len() as i32);
    let owner = topic
        .partitions
        .get(partition as usize)?
        .shard_on(shard.config.node_id)?;
    Some((owner, partition))
}

pub(crate) async fn group_call(
    shard: &Rc<Shard>,
    group: &str,
    request: GroupRequest,
) -> GroupResponse {
    let Some((owner, partition)) = locate(shard, group) else {
        return GroupResponse::Error(ErrorCode::CoordinatorNotAvailable);
    };
    shard
        .call(owner, Group { partition, request })
        .await
        .unwrap_or(GroupResponse::Error(ErrorCode::CoordinatorNotAvailable))
}

/// Creates the compacted internal topic `name` with `partitions` (one
/// replica, small segments) if it does not exist, as the handlers do at
/// its first use; whether it exists now (or was being made by another).
pub(crate) async fn ensure_internal_topic(shard: &Rc<Shard>, name: &str, partitions: i32) -> bool {
    if shard.metadata().topics.contains_key(name) {
        return true;
    }
    let proposal = Proposal::CreateTopic {
        name: name.to_owned(),
        partitions,
        replication_factor: 1,
        assignments: Vec::new(),
        configs: vec![
            ("cleanup.policy".into(), "compact".into()),
            ("retention.ms".into(), "-1".into()),
            ("segment.bytes".into(), "16384".into()),
        ],
        validate_only: false,
    };
    matches!(shard.call(0, Propose(proposal)).await, Ok(Ok(_)))
}

/// Creates `__consumer_offsets` as FindCoordinator does the first time.
pub async fn ensure_offsets_topic(c: &Rc<Clients>, entry: u32) {
    let shard = c.shards[entry as usize].clone();
    if shard.metadata().topics.contains_key(OFFSETS_TOPIC) {
        return;
    }
    let ok = ensure_internal_topic(&shard, OFFSETS_TOPIC, OFFSETS_PARTITIONS).await;
    c.trace.borrow_mut().event(&format!(
        "create {OFFSETS_TOPIC}: {}",
        if ok { "ok" } else { "failed" }
    ));
}

/// A commit outside any generation (an admin or a manually assigned
/// consumer): `offset` for `tp` in `group`.
pub async fn simple_commit(c: &Rc<Clients>, entry: u32, group: String, tp: Tp, offset: Offset) {
    if !c.groups.borrow_mut().committing.insert(group.clone()) {
        return;
    }
    let shard = c.shards[entry as usize].clone();
    let result = commit(&shard, &group, "", -1, &tp, offset, c).await;
    c.trace
        .borrow_mut()
        .event(&format!("commit {group} {tp:?}={offset}: {result:?}"));
    c.groups.borrow_mut().committing.remove(&group);
}

/// Sends one commit and, when acknowledged, records it.
pub(crate) async fn commit(
    shard: &Rc<Shard>,
    group: &str,
    member_id: &str,
    generation: i32,
    tp: &Tp,
    offset: Offset,
    c: &Rc<Clients>,
) -> ErrorCode {
    {
        let mut groups = c.groups.borrow_mut();
        let sent = groups
            .sent
            .entry((group.to_owned(), tp.clone()))
            .or_insert(offset);
        *sent = (*sent).max(offset);
    }
    let request = GroupRequest::Commit {
        group_id: group.to_owned(),
        member_id: member_id.to_owned(),
        instance_id: None,
        generation,
        unknown_group_error: ErrorCode::IllegalGeneration,
        offsets: one_offset(tp, offset, shard.env().now_ms()),
    };
    let error = commit_error(group_call(shard, group, request).await);
    if error == ErrorCode::None {
        let mut groups = c.groups.borrow_mut();
        groups.commits_acked += 1;
        groups.consumers.commit_acked(group, shard.env().now_ms());
        let acked = groups
            .committed
            .entry((group.to_owned(), tp.clone()))
            .or_insert(offset);
        // Commits of one group are sent one at a time, with growing
        // offsets: the last acknowledged is the largest.
        *acked = (*acked).max(offset);
    }
    error
}

/// A one-partition commit's answer: its partition's error, or the
/// request's.
pub(crate) fn commit_error(answer: GroupResponse) -> ErrorCode {
    match answer {
        GroupResponse::Commit(errors) => errors
            .first()
            .copied()
            .unwrap_or(ErrorCode::UnknownServerError),
        GroupResponse::Error(e) => e,
        _ => ErrorCode::UnknownServerError,
    }
}

/// A commit's offsets: `offset` for `tp` alone, committed at `now_ms`.
pub(crate) fn one_offset(
    tp: &Tp,
    offset: Offset,
    now_ms: i64,
) -> Vec<(String, PartitionId, CommittedOffset, ErrorCode)> {
    vec![(
        tp.0.clone(),
        tp.1,
        CommittedOffset {
            offset,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms: now_ms,
        },
        ErrorCode::None,
    )]
}

/// Reads `group`'s committed offsets and checks them against the commits
/// acknowledged before asking.
pub async fn fetch_offsets(c: &Rc<Clients>, entry: u32, group: String) {
    let shard = c.shards[entry as usize].clone();
    let acked = c.groups.borrow().acked_of(&group);
    let request = GroupRequest::FetchOffsets {
        group_id: group.clone(),
        partitions: None,
        require_stable: false,
        member_id: None,
        member_epoch: -1,
    };
    let fetched = match group_call(&shard, &group, request).await {
        GroupResponse::Offsets(Ok(rows)) => rows
            .into_iter()
            .filter_map(|(t, p, o)| o.ok().flatten().map(|o| ((t, p), o.offset)))
            .collect::<BTreeMap<Tp, Offset>>(),
        other => {
            c.trace
                .borrow_mut()
                .event(&format!("offsets {group}: {other:?}"));
            return;
        }
    };
    c.trace
        .borrow_mut()
        .event(&format!("offsets {group}: {} partitions", fetched.len()));
    // A topic deleted since (or being deleted): its offsets go with it.
    let model = c.model.borrow();
    let acked: BTreeMap<Tp, Offset> = acked
        .into_iter()
        .filter(|(tp, _)| !model.deleted.contains(&tp.0) && !model.deleting.contains(&tp.0))
        .collect();
    drop(model);
    let checked = c
        .groups
        .borrow_mut()
        .check_fetched(&group, &acked, &fetched);
    if let Err(e) = checked {
        c.fail(e);
    }
}

/// A member's life: join (getting a member id first), sync (the leader
/// assigns), commit with its generation, heartbeat, rejoin when told to,
/// for at most `rounds` generations; then maybe leave.
/// Each member commits to a partition of its own (`<group>-<suffix>`, 0):
/// one committer per partition, so its acknowledged commits only grow.
pub async fn member(
    c: &Rc<Clients>,
    entry: u32,
    group: String,
    suffix: String,
    rounds: u32,
    leave: bool,
) {
    let tp: Tp = (format!("{group}-{suffix}"), 0);
    let shard = c.shards[entry as usize].clone();
    let mut member_id = String::new();
    let mut last_generation = 0;
    for _ in 0..rounds {
        let join = JoinRequest {
            group_id: group.clone(),
            member_id: member_id.clone(),
            instance_id: None,
            client_id: "sim".into(),
            client_host: "/sim".into(),
            session_timeout_ms: SESSION_TIMEOUT_MS,
            rebalance_timeout_ms: SESSION_TIMEOUT_MS,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::new())],
            require_known_member_id: true,
            supports_skip_assignment: false,
            member_id_suffix: suffix.clone(),
        };
        // A first join is told its member id (MEMBER_ID_REQUIRED) and
        // joins again with it.
        let mut answer = group_call(&shard, &group, GroupRequest::Join(join.clone())).await;
        if let GroupResponse::Join(r) = &answer {
            if r.error == ErrorCode::MemberIdRequired {
                member_id = r.member_id.clone();
                let join = JoinRequest {
                    member_id: member_id.clone(),
                    ..join
                };
                answer = group_call(&shard, &group, GroupRequest::Join(join)).await;
            }
        }
        let response = match answer {
            GroupResponse::Join(r) => r,
            other => {
                c.trace
                    .borrow_mut()
                    .event(&format!("join {group}: {other:?}"));
                return;
            }
        };
        c.trace.borrow_mut().event(&format!(
            "join {group} {member_id}: {:?} generation {}",
            response.error, response.generation
        ));
        if response.error != ErrorCode::None {
            return;
        }
        let generation = response.generation;
        {
            let mut groups = c.groups.borrow_mut();
            groups.joins += 1;
            let floor = groups.generation_floor.get(&group).copied().unwrap_or(0);
            if generation <= last_generation || generation < floor {
                drop(groups);
                c.fail(format!(
                    "group {group}: member {member_id} joined generation {generation} after {last_generation} (floor after the last crash: {floor})"
                ));
                return;
            }
        }
        last_generation = generation;
        let assignments = if response.leader == member_id {
            response
                .members
                .iter()
                .map(|m| (m.member_id.clone(), Bytes::from_static(b"assigned")))
                .collect()
        } else {
            Vec::new()
        };
        let sync = SyncRequest {
            group_id: group.clone(),
            generation,
            member_id: member_id.clone(),
            instance_id: None,
            protocol_type: Some("consumer".into()),
            protocol_name: Some("range".into()),
            assignments,
        };
        let synced = match group_call(&shard, &group, GroupRequest::Sync(sync)).await {
            GroupResponse::Sync(r) => r.error,
            _ => ErrorCode::UnknownServerError,
        };
        c.trace.borrow_mut().event(&format!(
            "sync {group} {member_id} {generation}: {synced:?}"
        ));
        if synced == ErrorCode::RebalanceInProgress {
            continue;
        }
        if synced != ErrorCode::None {
            return;
        }
        {
            let mut groups = c.groups.borrow_mut();
            let g = groups
                .synced_generation
                .entry(group.clone())
                .or_insert(generation);
            *g = (*g).max(generation);
        }
        let offset = {
            let groups = c.groups.borrow();
            groups
                .sent
                .get(&(group.clone(), tp.clone()))
                .map_or(1, |o| o + 1)
        };
        let committed = commit(&shard, &group, &member_id, generation, &tp, offset, c).await;
        c.trace.borrow_mut().event(&format!(
            "member commit {group} {tp:?}={offset}: {committed:?}"
        ));
        // Heartbeats until a rebalance starts (then rejoin) or a few passed.
        let mut rejoin = false;
        for _ in 0..3 {
            shard
                .env()
                .sleep(Duration::from_millis(HEARTBEAT_INTERVAL_MS))
                .await;
            let heartbeat = GroupRequest::Heartbeat {
                group_id: group.clone(),
                member_id: member_id.clone(),
                instance_id: None,
                generation,
            };
            let error = match group_call(&shard, &group, heartbeat).await {
                GroupResponse::Error(e) => e,
                _ => ErrorCode::UnknownServerError,
            };
            match error {
                ErrorCode::None => {}
                ErrorCode::RebalanceInProgress => {
                    rejoin = true;
                    break;
                }
                other => {
                    c.trace
                        .borrow_mut()
                        .event(&format!("heartbeat {group} {member_id}: {other:?}"));
                    return;
                }
            }
        }
        if !rejoin {
            break;
        }
    }
    if leave && !member_id.is_empty() {
        let request = GroupRequest::Leave {
            group_id: group.clone(),
            members: vec![(member_id.clone(), None)],
        };
        let result = group_call(&shard, &group, request).await;
        c.trace
            .borrow_mut()
            .event(&format!("leave {group} {member_id}: {result:?}"));
    }
}

/// `group`'s committed offsets, read on its coordinator's own shard (after
/// a start, before any client runs).
pub async fn committed_offsets(
    shards: &[Rc<Shard>],
    group: &str,
) -> Result<BTreeMap<Tp, Offset>, String> {
    let Some((owner, _)) = locate(&shards[0], group) else {
        return Err(format!(
            "group {group} has commits but {OFFSETS_TOPIC} is gone"
        ));
    };
    let request = GroupRequest::FetchOffsets {
        group_id: group.to_owned(),
        partitions: None,
        require_stable: false,
        member_id: None,
        member_epoch: -1,
    };
    match group_call(&shards[owner as usize], group, request).await {
        GroupResponse::Offsets(Ok(rows)) => Ok(rows
            .into_iter()
            .filter_map(|(t, p, o)| o.ok().flatten().map(|o| ((t, p), o.offset)))
            .collect()),
        other => Err(format!(
            "group {group}: reading its offsets after a start got {other:?}"
        )),
    }
}
