//! Simulated consumers of KIP-848 groups: members that heartbeat, take
//! the partitions the coordinator assigns them, give up what it revokes,
//! and commit offsets with their member epoch.
//!
//! Owns: the KIP-848 operations of the run and their promises in
//! [`ConsumerModel`] (kept in the [`GroupModel`], beside the committed
//! offsets, whose promises cover these members' commits too):
//! - no partition is owned by two members of a group at once. A member
//!   owns what the last assignment it applied gave it, and gives up what
//!   an answer takes away before its next heartbeat reports what it owns.
//!   Checked whenever a member applies an answer, against every other
//!   member the coordinator surely still counts: one whose last answered
//!   heartbeat was sent less than a session timeout ago (a member the
//!   coordinator expired may still believe it owns its partitions until
//!   its next heartbeat is refused, as in Kafka; its commits are refused
//!   meanwhile);
//! - a member's epoch never goes back while it stays a member;
//! - a member is given partitions of its topic alone (it subscribes to
//!   that one, by name or by a pattern only that name matches);
//! - a commit under a member's older epoch is taken only for partitions
//!   it held since that epoch (their assignment epochs): the member
//!   commits, under its epoch before its last move, the partition given
//!   to it last, which that move may have given it;
//! - a group that cannot have been removed (an acknowledged commit keeps
//!   it) answers a join, after a crash, with an epoch past every epoch it
//!   answered since: the group's epoch is written before the answer that
//!   gives it.
//!
//! Members outlive crashes, as clients outlive a broker's restart: a
//! member's task ends with the process, but what it owns stays its own
//! (the first promise still holds it against the others), and a later
//! operation may carry it on ([`ConsumerModel::resumable`]): it heartbeats
//! at the epoch it had, owning what it owned. The coordinator, having
//! written the group's members before answering, knows it still; one that
//! forgot it would hand its partitions to others while it still owns them.
//! Some members subscribe with a pattern that matches their topic alone
//! (as a client's SubscribedTopicRegex) instead of by its name, so the
//! coordinator's matching, its records and its reload are under the same
//! promises, while the run makes and deletes topics and adds partitions.
//!
//! The calls are those the ConsumerGroupHeartbeat and OffsetCommit
//! handlers in `net/` make, to the group's coordinator.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

use sluice_core::group::assignor::ServerAssignor;
use sluice_core::group::consumer::{ClientInfo, HeartbeatRequest, TopicPartition};
use sluice_core::{ErrorCode, Offset};
use sluice_shard::{GroupRequest, GroupResponse, Shard};

use crate::client::Clients;
use crate::groups::{commit, commit_error, group_call, one_offset};
use crate::model::Tp;

/// The session timeout of KIP-848 members in the simulation
/// (`group.consumer.session.timeout.ms`): short, so that members the run
/// keeps waiting expire.
pub const SESSION_TIMEOUT_MS: i32 = 6_000;
/// Their heartbeat interval (`group.consumer.heartbeat.interval.ms`).
pub const HEARTBEAT_INTERVAL_MS: i32 = 1_000;

/// What one member owns, as far as the run knows.
#[derive(Debug, Clone)]
struct Owner {
    group: String,
    topic: String,
    epoch: i32,
    owned: BTreeSet<TopicPartition>,
    /// The coordinator counts the member at least until then: its last
    /// answered heartbeat was sent a session timeout before.
    surely_member_until_ms: i64,
}

/// The promises about KIP-848 groups.
#[derive(Debug, Default)]
pub struct ConsumerModel {
    /// Member id → what it owns (members alive, or whose task the last
    /// crash ended and that were not carried on since).
    owners: BTreeMap<String, Owner>,
    /// Members whose task a crash ended: a later operation may carry one
    /// on (member id → its group, topic, epoch and partitions).
    resumable: BTreeMap<String, Owner>,
    /// Group → when its first commit was acknowledged: from then on an
    /// acknowledged commit keeps it (it is never removed), so every epoch
    /// it answers after that is of the group that outlives crashes.
    kept_since_ms: BTreeMap<String, i64>,
    /// Group → the largest member epoch answered to a heartbeat sent
    /// since the group is kept (all lifetimes).
    epochs_answered: BTreeMap<String, i32>,
    /// Group → every epoch answered after the last crash must be past this.
    epoch_floor: BTreeMap<String, i32>,
    /// Topic name → every id it had while a member subscribed to it.
    topic_ids: BTreeMap<String, BTreeSet<[u8; 16]>>,
    pub heartbeats: u64,
    pub ownership_checks: u64,
}

impl ConsumerModel {
    /// A commit of `group` was acknowledged at `now_ms`: the group is kept.
    pub fn commit_acked(&mut self, group: &str, now_ms: i64) {
        self.kept_since_ms.entry(group.to_owned()).or_insert(now_ms);
    }

    /// After a crash: the members' tasks are gone with their process,
    /// each may be carried on; what they own is still theirs. A kept
    /// group must answer joins past every epoch it answered before.
    pub fn crashed(&mut self) {
        self.resumable = self.owners.clone();
        for (group, epoch) in &self.epochs_answered {
            let at_least = self.epoch_floor.entry(group.clone()).or_insert(0);
            *at_least = (*at_least).max(*epoch);
        }
    }

    /// The members a crash ended that may be carried on, by id.
    pub fn resumable(&self) -> impl Iterator<Item = (&str, &str, &str)> {
        self.resumable
            .iter()
            .map(|(id, o)| (id.as_str(), o.group.as_str(), o.topic.as_str()))
    }

    /// Carries `member` on, if a crash ended it: its epoch, what it owns,
    /// and until when the coordinator surely counts it.
    fn resume(&mut self, member: &str) -> Option<(i32, BTreeSet<TopicPartition>, i64)> {
        let o = self.resumable.remove(member)?;
        Some((o.epoch, o.owned, o.surely_member_until_ms))
    }

    /// The broken promise, if `member` was told it is unknown at `now_ms`
    /// while the coordinator surely still counted it (it cannot have
    /// expired it, and only the member itself removes it otherwise).
    fn told_unknown(&self, group: &str, member: &str, now_ms: i64) -> Result<(), String> {
        match self.owners.get(member) {
            Some(o) if o.surely_member_until_ms > now_ms => Err(format!(
                "group {group}: member {member} (epoch {}) was told it is unknown at {now_ms} \
                 ms, but the coordinator counts it until {} ms",
                o.epoch, o.surely_member_until_ms
            )),
            _ => Ok(()),
        }
    }

    /// Applies an answered heartbeat of `member` (sent at `sent_ms` with
    /// epoch 0 when `joined`, applied at `now_ms`): it owns `owned` at
    /// `epoch` now. The broken promise, if one is.
    #[allow(clippy::too_many_arguments)]
    fn applied(
        &mut self,
        group: &str,
        member: &str,
        topic: &str,
        joined: bool,
        epoch: i32,
        owned: &BTreeSet<TopicPartition>,
        sent_ms: i64,
        now_ms: i64,
    ) -> Result<(), String> {
        self.heartbeats += 1;
        if let Some(floor) = self.epoch_floor.get(group) {
            if joined && epoch <= *floor {
                return Err(format!(
                    "group {group}: member {member} joined at epoch {epoch} after a crash, \
                     but epoch {floor} was answered before it"
                ));
            }
        }
        // Processed after the group was kept: an epoch of the group that
        // outlives crashes (an earlier one may be of a group removed
        // since, empty with nothing committed, and made again).
        if self
            .kept_since_ms
            .get(group)
            .is_some_and(|kept| *kept <= sent_ms)
        {
            let answered = self
                .epochs_answered
                .entry(group.to_owned())
                .or_insert(epoch);
            *answered = (*answered).max(epoch);
        }
        let surely_member_until_ms = sent_ms + i64::from(SESSION_TIMEOUT_MS);
        // An answer that comes later than that may be older than the
        // member's expiry: its partitions may be others' by now, as in
        // Kafka; the member learns it at its next heartbeat.
        let fresh = now_ms < surely_member_until_ms;
        for (other, o) in &self.owners {
            if !fresh || other == member || o.group != group || o.surely_member_until_ms <= now_ms {
                continue;
            }
            self.ownership_checks += 1;
            if let Some(tp) = o.owned.intersection(owned).next() {
                return Err(format!(
                    "group {group}: partition {} of topic {:02x?} given to {member} (epoch \
                     {epoch}) while {other} still owns it",
                    tp.1,
                    &tp.0[..4]
                ));
            }
        }
        self.owners.insert(
            member.to_owned(),
            Owner {
                group: group.to_owned(),
                topic: topic.to_owned(),
                epoch,
                owned: owned.clone(),
                surely_member_until_ms,
            },
        );
        Ok(())
    }

    /// `topic` has (or had) these ids.
    fn saw_ids(&mut self, topic: &str, ids: &BTreeSet<[u8; 16]>) {
        self.topic_ids
            .entry(topic.to_owned())
            .or_default()
            .extend(ids);
    }

    /// The broken promise, if `member`, subscribed to `topic` alone (by
    /// its name or by a pattern only it matches), was given a partition
    /// of another topic.
    fn only_its_topic(
        &mut self,
        group: &str,
        member: &str,
        topic: &str,
        owned: &BTreeSet<TopicPartition>,
    ) -> Result<(), String> {
        let ids = self.topic_ids.get(topic);
        self.ownership_checks += 1;
        match owned
            .iter()
            .find(|(id, _)| !ids.is_some_and(|ids| ids.contains(id)))
        {
            Some((id, p)) => Err(format!(
                "group {group}: {member}, subscribed to {topic} alone, was given partition {p} \
                 of topic {:02x?}, not one of {topic}'s",
                &id[..4]
            )),
            None => Ok(()),
        }
    }

    /// `member` owns nothing any more (it was fenced, or leaves).
    fn gave_up(&mut self, member: &str) {
        self.owners.remove(member);
        self.resumable.remove(member);
    }
}

/// A KIP-848 member, as the run chose it.
#[derive(Debug, Clone)]
pub struct ConsumerMember {
    /// The shard its connection enters on.
    pub entry: u32,
    pub group: String,
    pub member_id: String,
    /// The one topic it subscribes to.
    pub topic: String,
    /// Heartbeats it sends.
    pub rounds: u32,
    /// Whether it leaves (epoch -1) at the end.
    pub leave: bool,
    /// The server-side assignor it names, if any (sent with every
    /// heartbeat).
    pub assignor: Option<ServerAssignor>,
    /// A static member's instance id (`group.instance.id`): it leaves for
    /// now (epoch -2), and a later member with the same id takes its place.
    pub instance_id: Option<String>,
}

/// The ids `topic` has in the metadata of the node's shards now.
fn topic_ids(c: &Clients, topic: &str) -> BTreeSet<[u8; 16]> {
    c.shards
        .iter()
        .filter_map(|s| s.metadata().topics.get(topic).map(|t| t.id))
        .collect()
}

/// Whether `member_id` subscribes with a pattern that matches its topic
/// alone instead of by the topic's name: members whose id ends in an odd
/// digit, drawing nothing from the seed's generator (so that seeds keep
/// their runs), the same member after a crash too.
fn subscribes_by_pattern(member_id: &str) -> bool {
    member_id
        .bytes()
        .last()
        .is_some_and(|b| b.is_ascii_digit() && (b - b'0') % 2 == 1)
}

/// A KIP-848 member's life: join `group` subscribed to `topic` (or carry
/// on where a crash left it, at its epoch, owning what it owned), then
/// heartbeat `rounds` times, applying each assignment and committing an
/// offset with its epoch every other round; rejoin (epoch 0) when fenced;
/// at the end maybe leave (epoch -1).
pub async fn run_member(c: &Rc<Clients>, member: ConsumerMember) {
    let ConsumerMember {
        entry,
        group,
        member_id,
        topic,
        rounds,
        leave,
        assignor,
        instance_id,
    } = member;
    let shard = c.shards[entry as usize].clone();
    let resumed = c.groups.borrow_mut().consumers.resume(&member_id);
    if let Some((epoch, owned, until)) = &resumed {
        c.trace.borrow_mut().event(&format!(
            "consumer resumes {group} {member_id} at epoch {epoch} owning {:?} at {} ms \
             (counted until {until} ms)",
            owned.iter().map(|(_, p)| *p).collect::<Vec<_>>(),
            shard.env().now_ms()
        ));
    }
    let (mut epoch, mut owned, _) = resumed.unwrap_or_default();
    // Each partition it owns with the epoch of the answer that gave it
    // (a resumed member's: the epoch it resumes at, no earlier than the
    // coordinator's), and its epoch before its last move, if it saw one.
    let mut given_at: BTreeMap<TopicPartition, i32> = owned.iter().map(|tp| (*tp, epoch)).collect();
    let mut before_move: Option<i32> = None;
    let by_pattern = subscribes_by_pattern(&member_id);
    for round in 0..rounds {
        c.groups
            .borrow_mut()
            .consumers
            .saw_ids(&topic, &topic_ids(c, &topic));
        let sent_ms = shard.env().now_ms();
        let request_epoch = epoch;
        let request = HeartbeatRequest {
            group_id: group.clone(),
            member_id: member_id.clone(),
            member_epoch: epoch,
            instance_id: instance_id.clone(),
            rebalance_timeout_ms: SESSION_TIMEOUT_MS,
            // Both, with every heartbeat, as librdkafka sends them: a
            // static member taking another's place keeps neither of its.
            subscribed_topics: Some(if by_pattern {
                vec![]
            } else {
                vec![topic.clone()]
            }),
            subscribed_regex: Some(if by_pattern {
                format!("{topic}|{topic}-never-made-.*")
            } else {
                String::new()
            }),
            owned: Some(owned.iter().copied().collect()),
            member_id_suffix: String::new(),
            client: ClientInfo {
                client_id: "sim".into(),
                client_host: "/sim".into(),
                rack_id: None,
            },
            server_assignor: assignor,
        };
        let answer = group_call(&shard, &group, GroupRequest::ConsumerHeartbeat(request)).await;
        let response = match answer {
            GroupResponse::ConsumerHeartbeat(r) => r,
            other => {
                c.trace.borrow_mut().event(&format!(
                    "consumer heartbeat {group} {member_id}: {other:?}"
                ));
                return;
            }
        };
        c.trace.borrow_mut().event(&format!(
            "consumer heartbeat {group} {member_id} epoch {epoch}: {:?} epoch {} assignment {:?}",
            response.error,
            response.member_epoch,
            response
                .assignment
                .as_ref()
                .map(|a| a.iter().map(|(_, p)| *p).collect::<Vec<_>>())
        ));
        match response.error {
            ErrorCode::None => {}
            ErrorCode::UnknownMemberId | ErrorCode::FencedMemberEpoch => {
                if response.error == ErrorCode::UnknownMemberId {
                    let now = shard.env().now_ms();
                    let told = c
                        .groups
                        .borrow()
                        .consumers
                        .told_unknown(&group, &member_id, now);
                    if let Err(e) = told {
                        c.fail(e);
                        return;
                    }
                }
                // Fenced: what it owned is lost; it joins again.
                owned.clear();
                given_at.clear();
                before_move = None;
                epoch = 0;
                c.groups.borrow_mut().consumers.gave_up(&member_id);
                continue;
            }
            // Its instance id is another member's: it stops, as a client
            // does on these fatal errors.
            ErrorCode::UnreleasedInstanceId | ErrorCode::FencedInstanceId => break,
            // The coordinator moving or loading: tried again.
            _ => continue,
        }
        if epoch > 0 && response.member_epoch < epoch {
            c.fail(format!(
                "group {group}: member {member_id} went from epoch {epoch} back to {}",
                response.member_epoch
            ));
            return;
        }
        if epoch > 0 && response.member_epoch != epoch {
            before_move = Some(epoch);
        }
        epoch = response.member_epoch;
        if let Some(assignment) = &response.assignment {
            owned = assignment.iter().copied().collect();
            given_at.retain(|tp, _| owned.contains(tp));
            for tp in &owned {
                given_at.entry(*tp).or_insert(epoch);
            }
            let mut model = c.groups.borrow_mut();
            model.consumers.saw_ids(&topic, &topic_ids(c, &topic));
            if let Err(e) = model
                .consumers
                .only_its_topic(&group, &member_id, &topic, &owned)
            {
                drop(model);
                c.fail(e);
                return;
            }
        }
        // A static member's join may take another's place at the group's
        // epoch, with no new one (as in Kafka): only the others' joins
        // must be past every epoch answered before a crash.
        let joined = request_epoch == 0 && instance_id.is_none();
        let applied = c.groups.borrow_mut().consumers.applied(
            &group,
            &member_id,
            &topic,
            joined,
            epoch,
            &owned,
            sent_ms,
            shard.env().now_ms(),
        );
        if let Err(e) = applied {
            c.fail(e);
            return;
        }
        if round % 2 == 1 {
            commit_one(c, &shard, &group, &member_id, epoch).await;
        }
        if let Some(older) = before_move.filter(|_| round % 4 == 3) {
            let commit = OlderCommit {
                group: &group,
                member_id: &member_id,
                topic: &topic,
                epoch: older,
                offset: i64::from(round),
            };
            if let Err(e) = commit_under_older_epoch(c, &shard, commit, &given_at).await {
                c.fail(e);
                return;
            }
        }
        shard
            .env()
            .sleep(Duration::from_millis(HEARTBEAT_INTERVAL_MS as u64))
            .await;
    }
    c.groups.borrow_mut().consumers.gave_up(&member_id);
    if leave && epoch > 0 {
        // A static member leaves for now: it keeps its partitions for its
        // session, for the member taking its place.
        let request = HeartbeatRequest {
            group_id: group.clone(),
            member_id: member_id.clone(),
            member_epoch: if instance_id.is_some() { -2 } else { -1 },
            instance_id: instance_id.clone(),
            ..HeartbeatRequest::default()
        };
        let answer = group_call(&shard, &group, GroupRequest::ConsumerHeartbeat(request)).await;
        c.trace
            .borrow_mut()
            .event(&format!("consumer leave {group} {member_id}: {answer:?}"));
    }
}

/// Commits the next offset of a partition of the member's own (as the
/// classic members of [`crate::groups`] do: one committer per partition,
/// so its acknowledged commits only grow; a topic of that name never
/// exists, so no deletion takes the group's offsets), with its epoch: the
/// coordinator takes it only from a member at its current epoch.
async fn commit_one(c: &Rc<Clients>, shard: &Rc<Shard>, group: &str, member_id: &str, epoch: i32) {
    let tp: Tp = (format!("{group}-{member_id}"), 0);
    let offset: Offset = c
        .groups
        .borrow()
        .sent
        .get(&(group.to_owned(), tp.clone()))
        .map_or(1, |o| o + 1);
    let committed = commit(shard, group, member_id, epoch, &tp, offset, c).await;
    c.trace.borrow_mut().event(&format!(
        "consumer commit {group} {member_id} epoch {epoch} {tp:?}={offset}: {committed:?}"
    ));
}

/// A member's commit under its epoch before its last move.
struct OlderCommit<'a> {
    group: &'a str,
    member_id: &'a str,
    topic: &'a str,
    epoch: i32,
    offset: Offset,
}

/// Commits, under `commit.epoch`, the partition given to the member last
/// (`given_at`: what it owns, with the epoch of the answer that gave each),
/// as a client's commit sent just before a heartbeat moved it on. The
/// promise: the coordinator takes it only if the member held that
/// partition since that epoch (Kafka 4.4's assignment epochs); taken
/// otherwise, an old incarnation's commit could land on a partition given
/// since. Its offsets are on the group's real partitions, which no other
/// promise reads.
async fn commit_under_older_epoch(
    c: &Rc<Clients>,
    shard: &Rc<Shard>,
    commit: OlderCommit<'_>,
    given_at: &BTreeMap<TopicPartition, i32>,
) -> Result<(), String> {
    let Some((tp, given)) = given_at.iter().max_by_key(|(tp, given)| (**given, **tp)) else {
        return Ok(());
    };
    let OlderCommit {
        group,
        member_id,
        topic,
        epoch,
        offset,
    } = commit;
    let request = GroupRequest::Commit {
        group_id: group.to_owned(),
        member_id: member_id.to_owned(),
        instance_id: None,
        generation: epoch,
        unknown_group_error: ErrorCode::IllegalGeneration,
        offsets: one_offset(&(topic.to_owned(), tp.1), offset, shard.env().now_ms()),
    };
    let error = commit_error(group_call(shard, group, request).await);
    c.trace.borrow_mut().event(&format!(
        "consumer commit {group} {member_id} older epoch {epoch} {topic}-{} (given at {given}): \
         {error:?}",
        tp.1
    ));
    if error == ErrorCode::None && *given > epoch {
        return Err(format!(
            "group {group}: {member_id}'s commit under epoch {epoch} was taken for {topic}-{}, \
             given to it only at epoch {given}",
            tp.1
        ));
    }
    Ok(())
}
