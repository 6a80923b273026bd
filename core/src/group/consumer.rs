//! Consumer groups of the next-generation protocol (KIP-848): members
//! heartbeat, the broker assigns.
//!
//! Owns: one group's members, their epochs, subscriptions and the assignor
//! each names, the target assignment the broker computes (by the assignor
//! most members name, [`super::assignor`]), and reconciliation: a
//! member is told to drop partitions leaving it first, and a partition goes
//! to its new owner only once the previous owner no longer reports it.
//! Also the checks of its members' offset commits and fetches (their
//! epochs, and each partition's assignment epoch).
//!
//! Invariants: the group epoch grows whenever membership or subscriptions
//! change; a member's epoch reaches the target assignment's epoch only when
//! it owns nothing outside its target; no partition is ever given to two
//! members at once; a partition's assignment epoch is the member epoch it
//! was given at, so never above its member's epoch. Like the classic
//! group, no I/O and no clock: time is an argument. The group is
//! persisted as Kafka persists it ([`ConsumerGroup::records`]:
//! its epoch, its target assignment, each member's metadata and current
//! assignment), written by the caller before an answer gives any of it, so
//! after a restart or a coordinator move the members carry on where they
//! were, their sessions starting again at the load.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use crate::group::assignor::{self, AssignorMember, ServerAssignor};
use crate::group::member_records::{GroupProtocol, MemberAssignment, MemberMetadata, MemberState};
use crate::group::records::{GroupEpoch, OffsetsRecord};
use crate::group::refusals;
use crate::group::resolution::{self, Read, Resolution, Subscription};
use crate::ErrorCode;

pub use crate::group::topics::{TopicCatalog, TopicInfo, TopicPartition};

/// A ConsumerGroupHeartbeat request.
#[derive(Debug, Clone, Default)]
pub struct HeartbeatRequest {
    pub group_id: String,
    /// Empty on a v0 first join: the broker picks one.
    pub member_id: String,
    /// 0 joins, -1 leaves, -2 leaves temporarily (static member).
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    /// `None`: unchanged since the last heartbeat.
    pub subscribed_topics: Option<Vec<String>>,
    /// The pattern whose matching topics it subscribes to as well (RE2
    /// syntax, whole names); `None`: unchanged since the last heartbeat;
    /// empty: none.
    pub subscribed_regex: Option<String>,
    /// What the member owns now; `None`: unchanged.
    pub owned: Option<Vec<TopicPartition>>,
    /// Unique text for a broker-chosen member id.
    pub member_id_suffix: String,
    /// Who the member is, for ConsumerGroupDescribe.
    pub client: ClientInfo,
    /// The assignor it names; `None`: unchanged since the last heartbeat
    /// (none, on a join).
    pub server_assignor: Option<ServerAssignor>,
}

/// What a member said about itself when it joined (ConsumerGroupDescribe
/// shows it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    pub client_id: String,
    pub client_host: String,
    pub rack_id: Option<String>,
}

/// One member as ConsumerGroupDescribe shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub member_epoch: i32,
    pub client: ClientInfo,
    pub subscribed_topics: Vec<String>,
    /// Its pattern; empty for none, as Kafka shows it.
    pub subscribed_regex: String,
    /// What it owns now (its assignment and what it is still giving up).
    pub assignment: Vec<TopicPartition>,
    /// What the target assignment gives it.
    pub target_assignment: Vec<TopicPartition>,
}

/// A group as ConsumerGroupDescribe shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupDescription {
    pub state: &'static str,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    /// The assignor the group runs ([`ServerAssignor::preferred`]).
    pub assignor: ServerAssignor,
    pub members: Vec<MemberDescription>,
}

/// A ConsumerGroupHeartbeat answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatResponse {
    pub error: ErrorCode,
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// The member's whole assignment, when it changed since the last
    /// answer (or on a join).
    pub assignment: Option<Vec<TopicPartition>>,
    /// Kafka's message with a refusal ([`super::refusals`]).
    pub message: Option<String>,
}

impl HeartbeatResponse {
    /// A refusal with `error` (member epoch -1).
    pub fn error(error: ErrorCode, member_id: &str) -> HeartbeatResponse {
        HeartbeatResponse {
            error,
            member_id: member_id.to_owned(),
            member_epoch: -1,
            heartbeat_interval_ms: 0,
            assignment: None,
            message: None,
        }
    }
}

/// The epoch of a static member that left for now (KIP-848's
/// LEAVE_GROUP_STATIC_MEMBER_EPOCH): it keeps its partitions until its
/// session ends or a member with its instance id takes its place.
pub const LEFT_FOR_NOW_EPOCH: i32 = -2;

#[derive(Debug, Clone)]
struct Member {
    epoch: i32,
    /// The epoch before the last move (Kafka's PreviousMemberEpoch).
    previous_epoch: i32,
    rebalance_timeout_ms: i32,
    subscribed: BTreeSet<String>,
    /// The pattern it subscribes with as well, if any.
    subscribed_regex: Option<String>,
    /// What the member may consume now, each partition with its
    /// assignment epoch: the member's epoch when it was given it.
    assigned: BTreeMap<TopicPartition, i32>,
    /// What the member was told to give up and has not yet reported as
    /// given up: still its own, no one else's (with the epoch it was
    /// given it at).
    revoking: BTreeMap<TopicPartition, i32>,
    /// The assignment in the last answer (to send only changes).
    last_sent: Option<BTreeSet<TopicPartition>>,
    session_deadline_ms: i64,
    instance_id: Option<String>,
    client: ClientInfo,
    /// The assignor it named last, if any.
    server_assignor: Option<ServerAssignor>,
}

impl Member {
    /// Its topic names and its pattern, as a group's resolution reads them.
    fn subscription(&self) -> Subscription<'_> {
        (&self.subscribed, self.subscribed_regex.as_deref())
    }

    /// A member as it joins: at epoch 0, owning nothing, its session not
    /// yet started.
    fn joining(rebalance_timeout_ms: i32, instance_id: Option<String>, client: ClientInfo) -> Self {
        Member {
            epoch: 0,
            previous_epoch: -1,
            rebalance_timeout_ms,
            subscribed: BTreeSet::new(),
            subscribed_regex: None,
            assigned: BTreeMap::new(),
            revoking: BTreeMap::new(),
            last_sent: None,
            session_deadline_ms: 0,
            instance_id,
            client,
            server_assignor: None,
        }
    }
}

impl ClientInfo {
    /// Who a member said it is, as its metadata record stored it.
    pub fn of(metadata: &MemberMetadata) -> ClientInfo {
        ClientInfo {
            client_id: metadata.client_id.clone(),
            client_host: metadata.client_host.clone(),
            rack_id: metadata.rack_id.clone(),
        }
    }
}

/// One consumer group of the KIP-848 protocol.
#[derive(Debug, Clone)]
pub struct ConsumerGroup {
    pub group_epoch: i32,
    assignment_epoch: i32,
    members: BTreeMap<String, Member>,
    target: BTreeMap<String, BTreeSet<TopicPartition>>,
    /// The subscribed topics as the catalog knew them when last read.
    resolution: Resolution,
}

/// The epoch a new group starts at, with no target yet: its first
/// heartbeat computes one at this epoch, or at the next when its member
/// brings a subscription. So the epochs are Kafka 4.4's: a group's first
/// member joining subscribed to a topic gets epoch 2, one joining
/// subscribed to nothing epoch 1 (never 0, the epoch of a join), and every
/// later epoch follows from there.
const NEW_GROUP_EPOCH: i32 = 1;

impl Default for ConsumerGroup {
    fn default() -> Self {
        ConsumerGroup {
            group_epoch: NEW_GROUP_EPOCH,
            assignment_epoch: 0,
            members: BTreeMap::new(),
            target: BTreeMap::new(),
            resolution: Resolution::default(),
        }
    }
}

/// Settings of consumer groups.
#[derive(Debug, Clone, Copy)]
pub struct ConsumerGroupConfig {
    pub session_timeout_ms: i32,
    pub heartbeat_interval_ms: i32,
}

impl ConsumerGroup {
    /// The group's records as Kafka writes them: its metadata (the group
    /// epoch), its target assignment's epoch, and for each member (or for
    /// `only` that one, if it is a member) its metadata, its part of the
    /// target and its current assignment.
    ///
    /// A heartbeat changes the group's own records and its member's, and
    /// every member's part of the target only with the target's epoch: so
    /// a heartbeat's writes compare `only` its member's records, unless the
    /// target's epoch moved.
    pub fn records(&self, group_id: &str, only: Option<&str>) -> Vec<OffsetsRecord> {
        let group = || group_id.to_owned();
        // `only` is looked up, not searched for: a heartbeat's records cost
        // the same in a group of thousands.
        let members: Vec<(&String, &Member)> = match only {
            Some(id) => self.members.get_key_value(id).into_iter().collect(),
            None => self.members.iter().collect(),
        };
        let mut out = Vec::with_capacity(2 + 3 * members.len());
        out.push(OffsetsRecord::ConsumerGroup {
            group: group(),
            value: Some(GroupEpoch {
                epoch: self.group_epoch,
            }),
        });
        out.push(OffsetsRecord::TargetEpoch {
            protocol: GroupProtocol::Consumer,
            group: group(),
            value: Some(self.assignment_epoch),
        });
        for (id, m) in members {
            let target = self.target.get(id);
            out.push(OffsetsRecord::Member {
                protocol: GroupProtocol::Consumer,
                group: group(),
                member: id.clone(),
                value: Some(MemberMetadata {
                    instance_id: m.instance_id.clone(),
                    rack_id: m.client.rack_id.clone(),
                    client_id: m.client.client_id.clone(),
                    client_host: m.client.client_host.clone(),
                    subscribed_topics: m.subscribed.iter().cloned().collect(),
                    // Kafka writes an empty pattern for none.
                    subscribed_regex: Some(m.subscribed_regex.clone().unwrap_or_default()),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    server_assignor: m.server_assignor.map(|a| a.name().to_owned()),
                }),
            });
            out.push(OffsetsRecord::Target {
                protocol: GroupProtocol::Consumer,
                group: group(),
                member: id.clone(),
                value: Some(
                    target
                        .map(|t| t.iter().copied().collect())
                        .unwrap_or_default(),
                ),
            });
            let state = if !m.revoking.is_empty() {
                MemberState::UnrevokedPartitions
            } else if target.is_some_and(|t| t.iter().any(|tp| !m.assigned.contains_key(tp))) {
                MemberState::UnreleasedPartitions
            } else {
                MemberState::Stable
            };
            out.push(OffsetsRecord::Assignment {
                protocol: GroupProtocol::Consumer,
                group: group(),
                member: id.clone(),
                value: Some(MemberAssignment {
                    member_epoch: m.epoch,
                    previous_member_epoch: m.previous_epoch,
                    state: state as i8,
                    assigned: m.assigned.iter().map(|(tp, e)| (*tp, *e)).collect(),
                    pending_revocation: m.revoking.iter().map(|(tp, e)| (*tp, *e)).collect(),
                }),
            });
        }
        out
    }

    /// The group epoch as its metadata record stored it (a replay): epochs
    /// only grow while the group lives. A group with no members has its
    /// target at that epoch too (a record written before members were).
    pub fn restore_epoch(&mut self, epoch: i32) {
        if epoch > self.group_epoch {
            self.group_epoch = epoch;
        }
        if self.members.is_empty() && self.group_epoch > self.assignment_epoch {
            self.assignment_epoch = self.group_epoch;
        }
    }

    /// The target assignment's epoch as its record stored it (a replay).
    pub fn restore_assignment_epoch(&mut self, epoch: i32) {
        self.assignment_epoch = self.assignment_epoch.max(epoch);
    }

    /// A member as its metadata record stored it (a replay): made if new,
    /// its session starting at `now_ms`. `None`: its tombstone, the
    /// member is gone.
    pub fn restore_member(
        &mut self,
        member_id: &str,
        metadata: Option<MemberMetadata>,
        now_ms: i64,
        session_timeout_ms: i32,
    ) {
        let Some(metadata) = metadata else {
            self.members.remove(member_id);
            self.target.remove(member_id);
            return;
        };
        let member = self
            .members
            .entry(member_id.to_owned())
            .or_insert_with(|| Member::joining(0, None, ClientInfo::default()));
        member.client = ClientInfo::of(&metadata);
        member.rebalance_timeout_ms = metadata.rebalance_timeout_ms;
        member.subscribed = metadata.subscribed_topics.into_iter().collect();
        member.subscribed_regex = metadata.subscribed_regex.filter(|p| !p.is_empty());
        member.instance_id = metadata.instance_id;
        member.server_assignor = metadata
            .server_assignor
            .as_deref()
            .and_then(ServerAssignor::from_name);
        member.session_deadline_ms = now_ms + i64::from(session_timeout_ms);
        // Its next answer carries its whole assignment.
        member.last_sent = None;
    }

    /// A member's part of the target as its record stored it (a replay);
    /// of a member the group has (its metadata record comes first).
    pub fn restore_target(&mut self, member_id: &str, partitions: Option<Vec<TopicPartition>>) {
        match partitions {
            Some(p) if self.members.contains_key(member_id) => {
                self.target
                    .insert(member_id.to_owned(), p.into_iter().collect());
            }
            Some(_) => {}
            None => {
                self.target.remove(member_id);
            }
        }
    }

    /// A member's current assignment as its record stored it (a replay);
    /// of a member the group has.
    pub fn restore_assignment(&mut self, member_id: &str, assignment: Option<MemberAssignment>) {
        let Some(member) = self.members.get_mut(member_id) else {
            return;
        };
        match assignment {
            Some(a) => {
                member.epoch = a.member_epoch;
                member.previous_epoch = a.previous_member_epoch;
                // An epoch past the member's (a damaged record) reads as
                // the member's: the invariant holds whatever was read.
                let given = |(tp, at): (TopicPartition, i32)| (tp, at.min(a.member_epoch));
                member.assigned = a.assigned.into_iter().map(given).collect();
                member.revoking = a.pending_revocation.into_iter().map(given).collect();
            }
            None => {
                member.epoch = 0;
                member.assigned.clear();
                member.revoking.clear();
            }
        }
        member.last_sent = None;
    }

    /// True when no member is left.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The answer to `member_id`'s last heartbeat did not reach it (its
    /// group's record could not be written): its next answer carries its
    /// whole assignment again.
    pub fn answer_lost(&mut self, member_id: &str) {
        if let Some(member) = self.members.get_mut(member_id) {
            member.last_sent = None;
        }
    }

    /// Kafka's name of the group's state: Empty, Assigning (a new target
    /// not yet computed), Reconciling (members moving to it), Stable.
    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.assignment_epoch < self.group_epoch {
            "Assigning"
        } else if self
            .members
            .values()
            .any(|m| m.epoch != self.assignment_epoch && m.epoch != LEFT_FOR_NOW_EPOCH)
        {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    /// The group as ConsumerGroupDescribe shows it.
    pub fn describe(&self) -> ConsumerGroupDescription {
        let members = self
            .members
            .iter()
            .map(|(id, m)| MemberDescription {
                member_id: id.clone(),
                instance_id: m.instance_id.clone(),
                member_epoch: m.epoch,
                client: m.client.clone(),
                subscribed_topics: m.subscribed.iter().cloned().collect(),
                subscribed_regex: m.subscribed_regex.clone().unwrap_or_default(),
                assignment: m
                    .assigned
                    .keys()
                    .chain(m.revoking.keys())
                    .copied()
                    .collect(),
                target_assignment: self
                    .target
                    .get(id)
                    .map(|t| t.iter().copied().collect())
                    .unwrap_or_default(),
            })
            .collect();
        ConsumerGroupDescription {
            state: self.state_name(),
            group_epoch: self.group_epoch,
            assignment_epoch: self.assignment_epoch,
            assignor: self.assignor(),
            members,
        }
    }

    /// The assignor the group runs: the one most of its members name.
    pub fn assignor(&self) -> ServerAssignor {
        ServerAssignor::preferred(self.members.values().map(|m| m.server_assignor))
    }

    /// Every topic some member subscribes to, by name or by a pattern
    /// (what it matched when the catalog was last read).
    pub fn subscribed_topics(&self) -> Vec<String> {
        let topics: BTreeSet<&String> = self
            .members
            .values()
            .flat_map(|m| self.resolution.topics_of(m.subscription()))
            .collect();
        topics.into_iter().cloned().collect()
    }

    /// Member ids and their epochs.
    pub fn member_epochs(&self) -> impl Iterator<Item = (&str, i32)> {
        self.members.iter().map(|(id, m)| (id.as_str(), m.epoch))
    }

    /// A member's current epoch, if it is a member.
    pub fn member_epoch(&self, member_id: &str) -> Option<i32> {
        self.members.get(member_id).map(|m| m.epoch)
    }

    /// ConsumerGroupHeartbeat, with the topics of `catalog`.
    pub fn heartbeat(
        &mut self,
        req: HeartbeatRequest,
        catalog: &dyn TopicCatalog,
        now_ms: i64,
        config: ConsumerGroupConfig,
    ) -> HeartbeatResponse {
        if req.member_epoch < 0 {
            return self.leave(req);
        }
        // A pattern new to the group is compiled before anything changes
        // (one its members use compiled already: members send theirs with
        // every heartbeat).
        if let Some(pattern) = req.subscribed_regex.as_deref().filter(|p| !p.is_empty()) {
            if self.resolution.matched(pattern).is_none() {
                if let Err(message) = resolution::compile(pattern) {
                    return refusals::invalid_regex(message);
                }
            }
        }
        let member_id = if req.member_id.is_empty() {
            req.member_id_suffix.clone()
        } else {
            req.member_id.clone()
        };
        let mut replaces = None;
        if req.member_epoch == 0 {
            if req.subscribed_topics.is_none() && req.subscribed_regex.is_none() {
                return refusals::no_subscription();
            }
            if let Some(instance) = req.instance_id.as_deref() {
                match self.static_member(instance) {
                    Some((owner, m)) if m.epoch != LEFT_FOR_NOW_EPOCH => {
                        return refusals::unreleased_instance(&member_id, instance, owner);
                    }
                    Some((owner, _)) => replaces = Some(owner.to_owned()),
                    None => {}
                }
            }
            // A join, or a rejoin with epoch 0, which starts over.
            let taken_target = replaces.as_deref().and_then(|old| self.target.remove(old));
            self.target.remove(&member_id);
            let mut member = Member::joining(
                req.rebalance_timeout_ms,
                req.instance_id.clone(),
                req.client.clone(),
            );
            if let Some(old) = replaces.as_deref() {
                // A static member back under a new member id takes the
                // place of the one that left for now: its partitions, its
                // part of the target, its subscription and assignor, and
                // no new group epoch unless its subscription changed.
                if let Some(left) = self.members.remove(old) {
                    member.assigned = left.assigned;
                    member.subscribed = left.subscribed;
                    member.subscribed_regex = left.subscribed_regex;
                    member.server_assignor = left.server_assignor;
                    member.previous_epoch = 0;
                }
            }
            if let Some(target) = taken_target {
                self.target.insert(member_id.clone(), target);
            }
            self.members.insert(member_id.clone(), member);
        } else if let Some(instance) = req.instance_id.as_deref() {
            if let Err(refusal) = self.check_static_member(instance, &member_id) {
                return refusal;
            }
        }
        // One new group epoch for a new subscription, a join's included (a
        // member that joins subscribed to nothing, or takes another's place
        // with its subscription, changes none: as in Kafka).
        let mut changed = false;
        let Some(member) = self.members.get_mut(&member_id) else {
            return refusals::unknown_member(&member_id, &req.group_id);
        };
        if req.server_assignor.is_some() {
            // As Kafka: the group's assignor changes with the next target.
            member.server_assignor = req.server_assignor;
        }
        if req.member_epoch != 0 && req.member_epoch != member.epoch {
            // As Kafka: the answer that moved the member on may have been
            // lost; at its previous epoch, owning only what it still has,
            // it is told its epoch again.
            let owned_is_its_own = req
                .owned
                .as_ref()
                .is_some_and(|owned| owned.iter().all(|tp| member.assigned.contains_key(tp)));
            if req.member_epoch > member.epoch
                || req.member_epoch != member.previous_epoch
                || member.previous_epoch < 0
                || !owned_is_its_own
            {
                return refusals::fenced_epoch(req.member_epoch, member.epoch);
            }
            member.last_sent = None;
        }
        member.session_deadline_ms = now_ms + i64::from(config.session_timeout_ms);
        if let Some(subscribed) = req.subscribed_topics {
            let subscribed: BTreeSet<String> = subscribed.into_iter().collect();
            if subscribed != member.subscribed {
                member.subscribed = subscribed;
                changed = true;
            }
        }
        if let Some(pattern) = req.subscribed_regex {
            let pattern = Some(pattern).filter(|p| !p.is_empty());
            if pattern != member.subscribed_regex {
                member.subscribed_regex = pattern;
                changed = true;
            }
        }
        if let Some(owned) = &req.owned {
            // What it no longer reports, it gave up.
            let owned: BTreeSet<TopicPartition> = owned.iter().copied().collect();
            member.revoking.retain(|tp, _| owned.contains(tp));
        }
        // A subscribed topic created, deleted or grown since the target was
        // computed, or a pattern matching other topics now, brings a new
        // group epoch too, as in Kafka.
        // (Read whenever a target is computed, so that it is computed from
        // the members' subscriptions as they are.)
        let recompute = changed || self.group_epoch > self.assignment_epoch;
        if self.catalog_moved(catalog, recompute) && !recompute {
            changed = true;
        }
        if changed {
            self.group_epoch += 1;
        }
        if self.group_epoch > self.assignment_epoch {
            self.compute_target();
        }
        self.reconcile(&member_id);
        let member = self.members.get_mut(&member_id).expect("reconciled above");
        let sent_already = member
            .last_sent
            .as_ref()
            .is_some_and(|sent| sent.iter().eq(member.assigned.keys()));
        let assignment = (!sent_already).then(|| {
            member.last_sent = Some(member.assigned.keys().copied().collect());
            member.assigned.keys().copied().collect()
        });
        HeartbeatResponse {
            error: ErrorCode::None,
            member_id,
            member_epoch: member.epoch,
            heartbeat_interval_ms: config.heartbeat_interval_ms,
            assignment,
            message: None,
        }
    }

    /// A leave: epoch -1 (for good: its partitions go to the others) or,
    /// a static member's, [`LEFT_FOR_NOW_EPOCH`] (it keeps them for its
    /// session). A static member is named by its instance id, as Kafka
    /// names it.
    fn leave(&mut self, req: HeartbeatRequest) -> HeartbeatResponse {
        let member_id = match req.instance_id.as_deref() {
            None if self.members.contains_key(&req.member_id) => req.member_id,
            None => return refusals::unknown_member(&req.member_id, &req.group_id),
            Some(instance) => match self.check_static_member(instance, &req.member_id) {
                Ok(()) => req.member_id,
                Err(refusal) => return refusal,
            },
        };
        if req.member_epoch == LEFT_FOR_NOW_EPOCH && req.instance_id.is_some() {
            if let Some(member) = self.members.get_mut(&member_id) {
                member.epoch = LEFT_FOR_NOW_EPOCH;
                // What it was giving up is free: it consumes nothing now.
                member.revoking.clear();
                member.last_sent = None;
            }
        } else {
            self.members.remove(&member_id);
            self.target.remove(&member_id);
            self.group_epoch += 1;
        }
        HeartbeatResponse {
            error: ErrorCode::None,
            member_id,
            member_epoch: req.member_epoch,
            heartbeat_interval_ms: 0,
            assignment: None,
            message: None,
        }
    }

    /// The member holding `instance`, if any (a scan: joins and refusals
    /// only; a static member's heartbeat finds itself by its member id).
    fn static_member(&self, instance: &str) -> Option<(&str, &Member)> {
        self.members
            .iter()
            .find(|(_, m)| m.instance_id.as_deref() == Some(instance))
            .map(|(id, m)| (id.as_str(), m))
    }

    /// Kafka's refusal of a heartbeat or leave of `member_id` naming
    /// `instance`, unless that member holds it.
    fn check_static_member(
        &self,
        instance: &str,
        member_id: &str,
    ) -> Result<(), HeartbeatResponse> {
        let holds = |m: &Member| m.instance_id.as_deref() == Some(instance);
        if self.members.get(member_id).is_some_and(holds) {
            return Ok(());
        }
        match self.static_member(instance) {
            None => Err(refusals::unknown_instance(instance)),
            Some((owner, _)) => Err(refusals::fenced_instance(member_id, instance, owner)),
        }
    }

    /// Reads the catalog again if it moved (or the subscriptions
    /// changed): true when the subscribed topics are not what the target
    /// was computed from. The first read after a load compares with what
    /// the target covers, as the load kept no copy of the catalog.
    fn catalog_moved(&mut self, catalog: &dyn TopicCatalog, subscriptions_changed: bool) -> bool {
        let subscriptions = self.members.values().map(Member::subscription);
        match self
            .resolution
            .read(catalog, subscriptions, subscriptions_changed)
        {
            Read::Skipped | Read::Same => false,
            Read::Moved => true,
            Read::First => {
                let targeted: BTreeSet<TopicPartition> =
                    self.target.values().flatten().copied().collect();
                let subscribed: BTreeSet<TopicPartition> = self
                    .resolution
                    .existing()
                    .flat_map(|t| (0..t.partitions).map(move |p| (t.id, p)))
                    .collect();
                targeted != subscribed
            }
        }
    }

    /// The target assignment of the current group epoch, by the group's
    /// assignor ([`assignor`]), from each member's previous target, over
    /// the subscribed topics as the catalog was last read.
    fn compute_target(&mut self) {
        // A member's names, and what its pattern matched with them.
        let subscribed: Vec<Cow<'_, BTreeSet<String>>> = self
            .members
            .values()
            .map(|m| match m.subscribed_regex {
                None => Cow::Borrowed(&m.subscribed),
                Some(_) => Cow::Owned(
                    self.resolution
                        .topics_of(m.subscription())
                        .cloned()
                        .collect(),
                ),
            })
            .collect();
        // A member restored without its part of the target keeps what it
        // holds.
        let previous: Vec<Cow<'_, BTreeSet<TopicPartition>>> = self
            .members
            .iter()
            .map(|(id, m)| match self.target.get(id) {
                Some(target) => Cow::Borrowed(target),
                None => Cow::Owned(m.assigned.keys().copied().collect()),
            })
            .collect();
        let members: Vec<AssignorMember<'_>> = self
            .members
            .iter()
            .zip(subscribed.iter().zip(&previous))
            .map(|((id, m), (subscribed, previous))| AssignorMember {
                id,
                instance_id: m.instance_id.as_deref(),
                subscribed: subscribed.as_ref(),
                previous: previous.as_ref(),
            })
            .collect();
        let resolution = &self.resolution;
        self.target = assignor::assign(self.assignor(), &members, &|name| resolution.topic(name));
        self.assignment_epoch = self.group_epoch;
    }

    /// Moves `member_id` toward its target: what leaves it is revoked
    /// first (its epoch waits until it reports giving it up); then it moves
    /// to the target's epoch and gets every target partition no other
    /// member still holds (the rest comes in later heartbeats, as they are
    /// released).
    fn reconcile(&mut self, member_id: &str) {
        let target = self.target.get(member_id).cloned().unwrap_or_default();
        let held_by_others: BTreeSet<TopicPartition> = self
            .members
            .iter()
            .filter(|(id, _)| id.as_str() != member_id)
            .flat_map(|(_, m)| m.assigned.keys().chain(m.revoking.keys()).copied())
            .collect();
        let assignment_epoch = self.assignment_epoch;
        let Some(member) = self.members.get_mut(member_id) else {
            return;
        };
        let leaving: Vec<TopicPartition> = member
            .assigned
            .keys()
            .filter(|tp| !target.contains(tp))
            .copied()
            .collect();
        for tp in leaving {
            if let Some(given_at) = member.assigned.remove(&tp) {
                member.revoking.insert(tp, given_at);
            }
        }
        if !member.revoking.is_empty() {
            return;
        }
        // What it is given now is given at the target's epoch, the epoch
        // it moves to (Kafka's assignment epoch).
        for tp in &target {
            if !held_by_others.contains(tp) {
                member.assigned.entry(*tp).or_insert(assignment_epoch);
            }
        }
        if member.epoch != assignment_epoch {
            member.previous_epoch = member.epoch;
            member.epoch = assignment_epoch;
        }
        debug_assert!(
            member
                .assigned
                .values()
                .all(|&given_at| given_at <= member.epoch),
            "a partition given at an epoch past its member's"
        );
    }

    /// The earliest session deadline of a member (when [`ConsumerGroup::expire`]
    /// has something to do), if the group has members.
    pub fn next_deadline_ms(&self) -> Option<i64> {
        self.members.values().map(|m| m.session_deadline_ms).min()
    }

    /// Removes members whose session expired; true when any was.
    pub fn expire(&mut self, now_ms: i64) -> bool {
        let expired: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| m.session_deadline_ms <= now_ms)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired {
            self.members.remove(id);
            self.target.remove(id);
        }
        if !expired.is_empty() {
            self.group_epoch += 1;
        }
        !expired.is_empty()
    }

    /// Whether `member_id` at `member_epoch` may read the group's
    /// committed offsets, as Kafka 4.4 checks OffsetFetch v9+: a request
    /// naming no member and no epoch, yes; an unknown member is
    /// UNKNOWN_MEMBER_ID; any epoch but the member's, STALE_MEMBER_EPOCH.
    pub fn check_fetch(&self, member_id: Option<&str>, member_epoch: i32) -> ErrorCode {
        if member_id.is_none() && member_epoch < 0 {
            return ErrorCode::None;
        }
        match self.members.get(member_id.unwrap_or_default()) {
            None => ErrorCode::UnknownMemberId,
            Some(m) if m.epoch != member_epoch => ErrorCode::StaleMemberEpoch,
            Some(_) => ErrorCode::None,
        }
    }

    /// Whether `member_id`'s commit at `member_epoch` of `partitions` (by
    /// topic name, as `catalog` names them) may be written, as Kafka 4.4
    /// checks it: at the member's epoch, anything; at a newer one, nothing
    /// (STALE_MEMBER_EPOCH); at an older one, only partitions the member
    /// has held, or is giving up, since that epoch (their assignment
    /// epochs), so a commit sent just before a heartbeat moved the member
    /// on still counts for what it kept. A commit naming no member and no
    /// epoch is any client's while the group has no members.
    pub fn check_commit(
        &self,
        member_id: &str,
        member_epoch: i32,
        partitions: &[(&str, i32)],
        catalog: &dyn TopicCatalog,
    ) -> ErrorCode {
        if member_epoch < 0 && self.members.is_empty() {
            return ErrorCode::None;
        }
        let Some(member) = self.members.get(member_id) else {
            return ErrorCode::UnknownMemberId;
        };
        if member_epoch == member.epoch {
            return ErrorCode::None;
        }
        if member_epoch > member.epoch {
            return ErrorCode::StaleMemberEpoch;
        }
        let held_since = |&(topic, partition): &(&str, i32)| {
            catalog.topic(topic).is_some_and(|info| {
                let tp = (info.id, partition);
                member
                    .assigned
                    .get(&tp)
                    .or_else(|| member.revoking.get(&tp))
                    .is_some_and(|&given_at| given_at <= member_epoch)
            })
        };
        if partitions.iter().all(held_since) {
            ErrorCode::None
        } else {
            ErrorCode::StaleMemberEpoch
        }
    }
}

#[cfg(test)]
mod catalog_tests;

#[cfg(test)]
mod commit_tests;

#[cfg(test)]
mod reload;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::topics::TopicTable;

    const T: [u8; 16] = [7; 16];
    const CONFIG: ConsumerGroupConfig = ConsumerGroupConfig {
        session_timeout_ms: 45_000,
        heartbeat_interval_ms: 5_000,
    };

    /// One topic, "t", of four partitions.
    fn topics() -> TopicTable {
        TopicTable::of(&[("t", T, 4)])
    }

    /// A heartbeat of `id` in group "g" at `epoch`; a join (epoch 0)
    /// subscribes to "t" and owns nothing.
    fn request(id: &str, epoch: i32, owned: Option<Vec<TopicPartition>>) -> HeartbeatRequest {
        let joining = epoch == 0;
        HeartbeatRequest {
            group_id: "g".into(),
            member_id: id.into(),
            member_epoch: epoch,
            subscribed_topics: joining.then(|| vec!["t".into()]),
            owned: if joining { Some(vec![]) } else { owned },
            ..HeartbeatRequest::default()
        }
    }

    fn join(g: &mut ConsumerGroup, id: &str, now: i64) -> HeartbeatResponse {
        g.heartbeat(request(id, 0, None), &topics(), now, CONFIG)
    }

    fn beat(
        g: &mut ConsumerGroup,
        id: &str,
        epoch: i32,
        owned: Option<Vec<TopicPartition>>,
    ) -> HeartbeatResponse {
        g.heartbeat(request(id, epoch, owned), &topics(), 1, CONFIG)
    }

    fn parts(r: &HeartbeatResponse) -> Vec<i32> {
        r.assignment
            .as_ref()
            .expect("an assignment")
            .iter()
            .map(|(_, p)| *p)
            .collect()
    }

    #[test]
    fn a_second_member_gets_partitions_only_after_the_first_gives_them_up() {
        let mut g = ConsumerGroup::default();
        let a = join(&mut g, "a", 0);
        assert_eq!((a.error, a.member_epoch), (ErrorCode::None, 2));
        assert_eq!(parts(&a), [0, 1, 2, 3]);
        let b = join(&mut g, "b", 0);
        assert_eq!(b.member_epoch, 3, "b has nothing to revoke");
        assert_eq!(parts(&b), Vec::<i32>::new(), "a still holds b's share");
        // a is told to give up two partitions; its epoch stays.
        let a = beat(&mut g, "a", 2, None);
        assert_eq!((a.member_epoch, parts(&a)), (2, vec![0, 1]));
        let b = beat(&mut g, "b", 3, None);
        assert_eq!(b.assignment, None, "not before a reports giving them up");
        // a reports it did: it moves to the new epoch.
        let a = beat(&mut g, "a", 2, Some(vec![(T, 0), (T, 1)]));
        assert_eq!((a.member_epoch, a.assignment.clone()), (3, None));
        let b = beat(&mut g, "b", 3, None);
        assert_eq!((b.member_epoch, parts(&b)), (3, vec![2, 3]));
        // A stale epoch is fenced.
        assert_eq!(
            beat(&mut g, "b", 2, None).error,
            ErrorCode::FencedMemberEpoch
        );
        let both = [("t", 2), ("t", 3)];
        assert_eq!(g.check_commit("b", 3, &both, &topics()), ErrorCode::None);
        assert_eq!(
            g.check_commit("b", 2, &both, &topics()),
            ErrorCode::StaleMemberEpoch
        );
        assert_eq!(
            g.check_commit("c", 3, &both, &topics()),
            ErrorCode::UnknownMemberId
        );
    }

    #[test]
    fn leaving_and_expiring_give_partitions_back() {
        let mut g = ConsumerGroup::default();
        join(&mut g, "a", 0);
        join(&mut g, "b", 0);
        beat(&mut g, "a", 2, None);
        let a = beat(&mut g, "a", 2, Some(vec![(T, 0), (T, 1)]));
        beat(&mut g, "b", 3, None);
        let left = beat(&mut g, "b", -1, None);
        assert_eq!(left.member_epoch, -1);
        let a = beat(&mut g, "a", a.member_epoch, None);
        assert_eq!(parts(&a), [0, 1, 2, 3]);
        assert!(g.expire(45_001 + 1));
        assert!(g.is_empty());
        assert_eq!(
            beat(&mut g, "a", a.member_epoch, None).error,
            ErrorCode::UnknownMemberId
        );
    }

    #[test]
    fn a_member_whose_answer_was_lost_carries_on_from_its_previous_epoch() {
        let mut g = ConsumerGroup::default();
        join(&mut g, "a", 0);
        join(&mut g, "b", 0);
        // a gives up partitions 2 and 3, and moves to epoch 3; the answer
        // saying so is lost.
        beat(&mut g, "a", 2, None);
        let moved = beat(&mut g, "a", 2, Some(vec![(T, 0), (T, 1)]));
        assert_eq!(moved.member_epoch, 3);
        // At epoch 2 again, owning what it still has: epoch 3, whole.
        let again = beat(&mut g, "a", 2, Some(vec![(T, 0), (T, 1)]));
        assert_eq!((again.error, again.member_epoch), (ErrorCode::None, 3));
        assert_eq!(parts(&again), [0, 1]);
        // Owning more than it has, or not saying: fenced.
        let b = beat(&mut g, "b", 3, None);
        assert_eq!(parts(&b), [2, 3]);
        let a2 = beat(&mut g, "a", 3, None);
        assert_eq!(a2.error, ErrorCode::None);
        assert_eq!(
            beat(&mut g, "a", 2, Some(vec![(T, 0), (T, 2)])).error,
            ErrorCode::FencedMemberEpoch
        );
        assert_eq!(
            beat(&mut g, "a", 2, None).error,
            ErrorCode::FencedMemberEpoch
        );
        assert_eq!(
            beat(&mut g, "a", 4, None).error,
            ErrorCode::FencedMemberEpoch
        );
    }

    #[test]
    fn a_lost_answer_is_given_again_whole() {
        let mut g = ConsumerGroup::default();
        let a = join(&mut g, "a", 0);
        assert_eq!(parts(&a), [0, 1, 2, 3]);
        assert_eq!(beat(&mut g, "a", 2, None).assignment, None, "sent already");
        g.answer_lost("a");
        assert_eq!(parts(&beat(&mut g, "a", 2, None)), [0, 1, 2, 3]);
    }

    fn static_beat(
        g: &mut ConsumerGroup,
        id: &str,
        epoch: i32,
        instance: &str,
        owned: Option<Vec<TopicPartition>>,
    ) -> HeartbeatResponse {
        let request = HeartbeatRequest {
            instance_id: Some(instance.into()),
            ..request(id, epoch, owned)
        };
        g.heartbeat(request, &topics(), 1, CONFIG)
    }

    #[test]
    fn a_static_member_back_under_a_new_id_takes_the_place_it_left_for_now() {
        let mut g = ConsumerGroup::default();
        static_beat(&mut g, "a", 0, "i", None);
        join(&mut g, "b", 0);
        let a = static_beat(&mut g, "a", 2, "i", None);
        assert_eq!(parts(&a), [0, 1]);
        let a = static_beat(&mut g, "a", 2, "i", Some(vec![(T, 0), (T, 1)]));
        assert_eq!(a.member_epoch, 3);
        assert_eq!(parts(&beat(&mut g, "b", 3, None)), [2, 3]);
        // a leaves for now: it keeps its partitions, b gets none of them.
        let left = static_beat(&mut g, "a", LEFT_FOR_NOW_EPOCH, "i", None);
        assert_eq!((left.error, left.member_epoch), (ErrorCode::None, -2));
        assert_eq!(g.group_epoch, 3);
        assert_eq!(beat(&mut g, "b", 3, None).assignment, None);
        assert_eq!(g.describe().state, "Stable");
        // Another member with its instance id: a's partitions, at once,
        // at the same group epoch.
        let a2 = static_beat(&mut g, "a2", 0, "i", None);
        assert_eq!((a2.error, a2.member_epoch), (ErrorCode::None, 3));
        assert_eq!(parts(&a2), [0, 1]);
        assert_eq!(g.group_epoch, 3);
        assert!(g.member_epoch("a").is_none());
        // The old member is fenced; a third is refused while a2 holds it.
        let old = static_beat(&mut g, "a", 3, "i", None);
        assert_eq!(old.error, ErrorCode::FencedInstanceId);
        assert_eq!(
            old.message.as_deref(),
            Some("Static member a with instance id i was fenced by member a2.")
        );
        let third = static_beat(&mut g, "a3", 0, "i", None);
        assert_eq!(third.error, ErrorCode::UnreleasedInstanceId);
        assert_eq!(
            static_beat(&mut g, "x", -2, "j", None).message.as_deref(),
            Some("Instance id j is unknown.")
        );
    }

    #[test]
    fn a_static_member_left_for_now_expires_with_its_session() {
        let mut g = ConsumerGroup::default();
        static_beat(&mut g, "a", 0, "i", None);
        static_beat(&mut g, "a", LEFT_FOR_NOW_EPOCH, "i", None);
        assert!(g.expire(45_001 + 1));
        assert!(g.is_empty());
        // Its instance id is free: a new member joins afresh.
        let a2 = static_beat(&mut g, "a2", 0, "i", None);
        assert_eq!((a2.error, parts(&a2)), (ErrorCode::None, vec![0, 1, 2, 3]));
    }

    #[test]
    fn unknown_members_and_wrong_epochs_get_kafkas_messages() {
        let mut g = ConsumerGroup::default();
        join(&mut g, "a", 0);
        let unknown = beat(&mut g, "z", -1, None);
        assert_eq!(unknown.error, ErrorCode::UnknownMemberId);
        assert_eq!(
            unknown.message.as_deref(),
            Some("Member z is not a member of group g.")
        );
        let ahead = beat(&mut g, "a", 4, None);
        assert_eq!(ahead.error, ErrorCode::FencedMemberEpoch);
        assert_eq!(
            ahead.message.as_deref(),
            Some(
                "The consumer group member has a greater member epoch (4) than the one known by \
                 the group coordinator (2). The member must abandon all its partitions and rejoin."
            )
        );
    }
}
