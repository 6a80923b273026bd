//! Share groups' membership (KIP-932): members heartbeat with what they
//! subscribe to, the broker assigns, and several members may share one
//! partition.
//!
//! Owns: one share group's members, their epochs, subscriptions and
//! sessions, and the assignment the broker computes (Kafka's simple
//! assignor for share groups: with at least as many partitions as
//! subscribers, each partition goes to one member, spread evenly; with more
//! members than partitions, every member gets one partition and each
//! partition goes to as even a number of members as possible).
//!
//! Invariants: the group epoch grows whenever membership or subscriptions
//! change; the assignment is recomputed at the next heartbeat (no
//! reconciliation: a partition may be consumed by several members at once,
//! so nothing has to be given up first), and a member's epoch is the group
//! epoch after its heartbeat. Every subscribed partition of a topic with subscribers is
//! assigned to at least one member. Pure: no I/O, time is an argument.
//! The group is persisted as Kafka persists it ([`ShareGroup::records`]:
//! its epoch, its assignment's epoch, each member's metadata, target and
//! current assignment), written by the caller before an answer gives any
//! of it, so after a restart or a coordinator move the members carry on
//! at their epochs, their sessions starting again at the load.

use std::collections::{BTreeMap, BTreeSet};

use super::consumer::{ClientInfo, TopicInfo, TopicPartition};
use super::member_records::{GroupProtocol, MemberAssignment, MemberMetadata, MemberState};
use super::records::{OffsetsRecord, ShareGroupSnapshot};
use crate::ErrorCode;

/// A ShareGroupHeartbeat request.
#[derive(Debug, Clone, Default)]
pub struct ShareHeartbeatRequest {
    pub group_id: String,
    /// Chosen by the member (a UUID); never empty.
    pub member_id: String,
    /// 0 joins, -1 leaves.
    pub member_epoch: i32,
    /// `None`: unchanged since the last heartbeat.
    pub subscribed_topics: Option<Vec<String>>,
    /// Who the member is, for ShareGroupDescribe.
    pub client: ClientInfo,
}

/// A ShareGroupHeartbeat answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareHeartbeatResponse {
    pub error: ErrorCode,
    pub error_message: Option<String>,
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// The member's whole assignment, when it changed since its last
    /// answer (or on a join).
    pub assignment: Option<Vec<TopicPartition>>,
}

impl ShareHeartbeatResponse {
    /// A refusal with `error` (member epoch -1).
    pub fn error(error: ErrorCode, message: Option<String>, member_id: &str) -> Self {
        ShareHeartbeatResponse {
            error,
            error_message: message,
            member_id: member_id.to_owned(),
            member_epoch: -1,
            heartbeat_interval_ms: 0,
            assignment: None,
        }
    }
}

/// One member as ShareGroupDescribe shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareMemberDescription {
    pub member_id: String,
    pub member_epoch: i32,
    pub client: ClientInfo,
    pub subscribed_topics: Vec<String>,
    pub assignment: Vec<TopicPartition>,
}

/// A share group as ShareGroupDescribe shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareGroupDescription {
    pub state: &'static str,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub members: Vec<ShareMemberDescription>,
}

/// Settings of share groups (Kafka's broker defaults).
#[derive(Debug, Clone, Copy)]
pub struct ShareGroupConfig {
    /// `group.share.session.timeout.ms` (45 s).
    pub session_timeout_ms: i32,
    /// `group.share.heartbeat.interval.ms` (5 s).
    pub heartbeat_interval_ms: i32,
    /// `group.share.max.size` (200): members a group holds; one more is
    /// refused with GROUP_MAX_SIZE_REACHED.
    pub max_size: usize,
}

impl Default for ShareGroupConfig {
    fn default() -> Self {
        ShareGroupConfig {
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 5_000,
            max_size: 200,
        }
    }
}

#[derive(Debug, Clone)]
struct Member {
    epoch: i32,
    /// The epoch before the last move (Kafka's PreviousMemberEpoch).
    previous_epoch: i32,
    subscribed: BTreeSet<String>,
    assigned: BTreeSet<TopicPartition>,
    /// The assignment in the last answer (to send only changes).
    last_sent: Option<BTreeSet<TopicPartition>>,
    session_deadline_ms: i64,
    client: ClientInfo,
}

impl Member {
    /// A member as it joins: at epoch 0, assigned nothing, its session not
    /// yet started.
    fn joining(client: ClientInfo) -> Self {
        Member {
            epoch: 0,
            previous_epoch: -1,
            subscribed: BTreeSet::new(),
            assigned: BTreeSet::new(),
            last_sent: None,
            session_deadline_ms: 0,
            client,
        }
    }
}

/// One share group.
#[derive(Debug, Clone, Default)]
pub struct ShareGroup {
    group_epoch: i32,
    assignment_epoch: i32,
    members: BTreeMap<String, Member>,
}

impl ShareGroup {
    /// The group epoch.
    pub fn epoch(&self) -> i32 {
        self.group_epoch
    }

    /// The group's records as Kafka writes them: its metadata (the group
    /// epoch), its assignment's epoch, and for each member (or for `only`
    /// that one, if it is a member) its metadata, its part of the target
    /// (what it is assigned: a share member gives nothing up first) and its
    /// current assignment. Every member's assignment changes only with the
    /// assignment's epoch (see [`super::consumer::ConsumerGroup::records`]).
    pub fn records(&self, group_id: &str, only: Option<&str>) -> Vec<OffsetsRecord> {
        let share = GroupProtocol::Share;
        let group = || group_id.to_owned();
        // `only` is looked up, not searched for: a heartbeat's records cost
        // the same in a group of thousands.
        let members: Vec<(&String, &Member)> = match only {
            Some(id) => self.members.get_key_value(id).into_iter().collect(),
            None => self.members.iter().collect(),
        };
        let mut out = Vec::with_capacity(2 + 3 * members.len());
        out.push(OffsetsRecord::ShareGroup {
            group: group(),
            value: Some(ShareGroupSnapshot {
                epoch: self.group_epoch,
            }),
        });
        out.push(OffsetsRecord::TargetEpoch {
            protocol: share,
            group: group(),
            value: Some(self.assignment_epoch),
        });
        for (id, m) in members {
            let assigned: Vec<TopicPartition> = m.assigned.iter().copied().collect();
            out.push(OffsetsRecord::Member {
                protocol: share,
                group: group(),
                member: id.clone(),
                value: Some(MemberMetadata {
                    instance_id: None,
                    rack_id: m.client.rack_id.clone(),
                    client_id: m.client.client_id.clone(),
                    client_host: m.client.client_host.clone(),
                    subscribed_topics: m.subscribed.iter().cloned().collect(),
                    subscribed_regex: None,
                    rebalance_timeout_ms: -1,
                    server_assignor: None,
                }),
            });
            out.push(OffsetsRecord::Target {
                protocol: share,
                group: group(),
                member: id.clone(),
                value: Some(assigned.clone()),
            });
            out.push(OffsetsRecord::Assignment {
                protocol: share,
                group: group(),
                member: id.clone(),
                value: Some(MemberAssignment {
                    member_epoch: m.epoch,
                    previous_member_epoch: m.previous_epoch,
                    state: MemberState::Stable as i8,
                    // A share member's record keeps no assignment epochs.
                    assigned: assigned.into_iter().map(|tp| (tp, m.epoch)).collect(),
                    pending_revocation: Vec::new(),
                }),
            });
        }
        out
    }

    /// The group epoch as its metadata record stored it (a replay): epochs
    /// only grow while the group lives. A group with no members has its
    /// assignment at that epoch too (a record written before members were).
    pub fn restore_epoch(&mut self, epoch: i32) {
        if epoch > self.group_epoch {
            self.group_epoch = epoch;
        }
        if self.members.is_empty() && self.group_epoch > self.assignment_epoch {
            self.assignment_epoch = self.group_epoch;
        }
    }

    /// The assignment's epoch as its record stored it (a replay).
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
            return;
        };
        let member = self
            .members
            .entry(member_id.to_owned())
            .or_insert_with(|| Member::joining(ClientInfo::default()));
        member.client = ClientInfo::of(&metadata);
        member.subscribed = metadata.subscribed_topics.into_iter().collect();
        member.session_deadline_ms = now_ms + i64::from(session_timeout_ms);
        // Its next answer carries its whole assignment.
        member.last_sent = None;
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
                member.assigned = a.assigned.into_iter().map(|(tp, _)| tp).collect();
            }
            None => {
                member.epoch = 0;
                member.assigned.clear();
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

    /// Kafka's name of the group's state: Empty or Stable (a share group's
    /// assignment is in force as soon as it is computed).
    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else {
            "Stable"
        }
    }

    /// Whether `member_id` is a member now.
    pub fn has_member(&self, member_id: &str) -> bool {
        self.members.contains_key(member_id)
    }

    /// The group as ShareGroupDescribe shows it.
    pub fn describe(&self) -> ShareGroupDescription {
        ShareGroupDescription {
            state: self.state_name(),
            group_epoch: self.group_epoch,
            assignment_epoch: self.assignment_epoch,
            members: self
                .members
                .iter()
                .map(|(id, m)| ShareMemberDescription {
                    member_id: id.clone(),
                    member_epoch: m.epoch,
                    client: m.client.clone(),
                    subscribed_topics: m.subscribed.iter().cloned().collect(),
                    assignment: m.assigned.iter().copied().collect(),
                })
                .collect(),
        }
    }

    /// Every topic some member subscribes to.
    pub fn subscribed_topics(&self) -> Vec<String> {
        let topics: BTreeSet<&String> = self.members.values().flat_map(|m| &m.subscribed).collect();
        topics.into_iter().cloned().collect()
    }

    /// ShareGroupHeartbeat. `topics` resolves subscribed topic names.
    pub fn heartbeat(
        &mut self,
        req: ShareHeartbeatRequest,
        topics: &dyn Fn(&str) -> Option<TopicInfo>,
        now_ms: i64,
        config: ShareGroupConfig,
    ) -> ShareHeartbeatResponse {
        let member_id = req.member_id;
        if req.member_epoch == -1 {
            if self.members.remove(&member_id).is_some() {
                // The others get its partitions at their next heartbeat.
                self.group_epoch += 1;
            }
            return ShareHeartbeatResponse {
                error: ErrorCode::None,
                error_message: None,
                member_id,
                member_epoch: -1,
                heartbeat_interval_ms: 0,
                assignment: None,
            };
        }
        let mut changed = false;
        if req.member_epoch == 0 {
            let Some(subscribed) = &req.subscribed_topics else {
                return ShareHeartbeatResponse::error(
                    ErrorCode::InvalidRequest,
                    Some("SubscribedTopicNames must be set in first request.".into()),
                    &member_id,
                );
            };
            if subscribed.is_empty() {
                return ShareHeartbeatResponse::error(
                    ErrorCode::InvalidRequest,
                    Some("SubscribedTopicNames must be set in first request.".into()),
                    &member_id,
                );
            }
            if !self.members.contains_key(&member_id) && self.members.len() >= config.max_size {
                return ShareHeartbeatResponse::error(
                    ErrorCode::GroupMaxSizeReached,
                    Some(format!(
                        "The share group has reached its maximum capacity of {} members.",
                        config.max_size
                    )),
                    &member_id,
                );
            }
            if !self.members.contains_key(&member_id) {
                self.members
                    .insert(member_id.clone(), Member::joining(req.client.clone()));
                changed = true;
            } else if let Some(m) = self.members.get_mut(&member_id) {
                // A rejoin with epoch 0: it gets its whole assignment again.
                m.last_sent = None;
            }
        }
        let Some(member) = self.members.get_mut(&member_id) else {
            return ShareHeartbeatResponse::error(
                ErrorCode::UnknownMemberId,
                Some(format!("Member {member_id} is not a member of the group.")),
                &member_id,
            );
        };
        if req.member_epoch != 0 && req.member_epoch != member.epoch {
            return ShareHeartbeatResponse::error(
                ErrorCode::FencedMemberEpoch,
                Some(format!(
                    "The share group member has a smaller member epoch ({}) than the one known by the group coordinator ({}). The member must abandon all its partitions and rejoin.",
                    req.member_epoch, member.epoch
                )),
                &member_id,
            );
        }
        member.session_deadline_ms = now_ms + i64::from(config.session_timeout_ms);
        if let Some(subscribed) = req.subscribed_topics {
            let subscribed: BTreeSet<String> = subscribed.into_iter().collect();
            if subscribed != member.subscribed {
                member.subscribed = subscribed;
                changed = true;
            }
        }
        // A topic created or grown since the last assignment changes it too.
        let pending = self.assignment_epoch < self.group_epoch;
        if changed || (!pending && self.assignment_outdated(topics)) {
            self.group_epoch += 1;
        }
        if self.assignment_epoch < self.group_epoch {
            self.assign(topics);
        }
        let group_epoch = self.group_epoch;
        let member = self.members.get_mut(&member_id).expect("checked above");
        if member.epoch != group_epoch {
            member.previous_epoch = member.epoch;
            member.epoch = group_epoch;
        }
        let assignment = (member.last_sent.as_ref() != Some(&member.assigned)).then(|| {
            member.last_sent = Some(member.assigned.clone());
            member.assigned.iter().copied().collect()
        });
        ShareHeartbeatResponse {
            error: ErrorCode::None,
            error_message: None,
            member_id,
            member_epoch: group_epoch,
            heartbeat_interval_ms: config.heartbeat_interval_ms,
            assignment,
        }
    }

    /// True when a subscribed topic's partitions are no longer what the
    /// assignment covers (created, grown or deleted since).
    fn assignment_outdated(&self, topics: &dyn Fn(&str) -> Option<TopicInfo>) -> bool {
        let assigned: BTreeSet<TopicPartition> = self
            .members
            .values()
            .flat_map(|m| m.assigned.iter().copied())
            .collect();
        let mut expected = BTreeSet::new();
        for name in self.subscribed_topics() {
            if let Some(info) = topics(&name) {
                expected.extend((0..info.partitions).map(|p| (info.id, p)));
            }
        }
        assigned != expected
    }

    /// Kafka's simple assignor for share groups, topic by topic over the
    /// members subscribed to it (in member id order): partitions dealt
    /// round-robin when there are at least as many as members, otherwise
    /// members dealt round-robin over the partitions.
    fn assign(&mut self, topics: &dyn Fn(&str) -> Option<TopicInfo>) {
        for m in self.members.values_mut() {
            m.assigned.clear();
        }
        for name in self.subscribed_topics() {
            let Some(info) = topics(&name) else { continue };
            let subscribers: Vec<String> = self
                .members
                .iter()
                .filter(|(_, m)| m.subscribed.contains(&name))
                .map(|(id, _)| id.clone())
                .collect();
            if subscribers.is_empty() || info.partitions <= 0 {
                continue;
            }
            let partitions = info.partitions as usize;
            let pairs: Vec<(usize, usize)> = if partitions >= subscribers.len() {
                (0..partitions)
                    .map(|p| (p % subscribers.len(), p))
                    .collect()
            } else {
                (0..subscribers.len())
                    .map(|m| (m, m % partitions))
                    .collect()
            };
            for (m, p) in pairs {
                if let Some(member) = self.members.get_mut(&subscribers[m]) {
                    member.assigned.insert((info.id, p as i32));
                }
            }
        }
        self.assignment_epoch = self.group_epoch;
    }

    /// The earliest session deadline of a member, if the group has any.
    pub fn next_deadline_ms(&self) -> Option<i64> {
        self.members.values().map(|m| m.session_deadline_ms).min()
    }

    /// Removes members whose session expired (the others get their
    /// partitions at their next heartbeat); the ids of those removed.
    pub fn expire(&mut self, now_ms: i64) -> Vec<String> {
        let expired: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| m.session_deadline_ms <= now_ms)
            .map(|(id, _)| id.clone())
            .collect();
        if !expired.is_empty() {
            for id in &expired {
                self.members.remove(id);
            }
            self.group_epoch += 1;
        }
        expired
    }

    /// The invariants of the module doc; the first one broken, if any.
    pub fn check(&self, topics: &dyn Fn(&str) -> Option<TopicInfo>) -> Result<(), String> {
        if self.assignment_epoch > self.group_epoch {
            return Err(format!(
                "assignment epoch {} ahead of group epoch {}",
                self.assignment_epoch, self.group_epoch
            ));
        }
        if self.assignment_epoch < self.group_epoch {
            // Computed at the next heartbeat.
            return Ok(());
        }
        for name in self.subscribed_topics() {
            let Some(info) = topics(&name) else { continue };
            for p in 0..info.partitions {
                if !self
                    .members
                    .values()
                    .any(|m| m.assigned.contains(&(info.id, p)))
                {
                    return Err(format!("{name}/{p} assigned to no member"));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: [u8; 16] = [3; 16];

    fn topics(partitions: i32) -> impl Fn(&str) -> Option<TopicInfo> {
        move |name| (name == "t").then_some(TopicInfo { id: T, partitions })
    }

    fn beat(
        g: &mut ShareGroup,
        id: &str,
        epoch: i32,
        subscribe: bool,
        partitions: i32,
    ) -> ShareHeartbeatResponse {
        g.heartbeat(
            ShareHeartbeatRequest {
                group_id: "g".into(),
                member_id: id.into(),
                member_epoch: epoch,
                subscribed_topics: subscribe.then(|| vec!["t".into()]),
                client: ClientInfo::default(),
            },
            &topics(partitions),
            0,
            ShareGroupConfig::default(),
        )
    }

    fn parts(r: &ShareHeartbeatResponse) -> Vec<i32> {
        r.assignment
            .as_ref()
            .expect("an assignment")
            .iter()
            .map(|(_, p)| *p)
            .collect()
    }

    #[test]
    fn four_members_share_one_partition() {
        let mut g = ShareGroup::default();
        for (i, id) in ["a", "b", "c", "d"].iter().enumerate() {
            let r = beat(&mut g, id, 0, true, 1);
            assert_eq!((r.error, r.member_epoch), (ErrorCode::None, i as i32 + 1));
            assert_eq!(parts(&r), [0]);
        }
        g.check(&topics(1)).expect("invariants");
        // Nothing changed for "a": its next answer carries no assignment.
        let r = beat(&mut g, "a", 1, false, 1);
        assert_eq!((r.member_epoch, r.assignment), (4, None));
    }

    #[test]
    fn a_member_past_group_share_max_size_is_refused() {
        let mut g = ShareGroup::default();
        let config = ShareGroupConfig {
            max_size: 2,
            ..ShareGroupConfig::default()
        };
        let join = |g: &mut ShareGroup, id: &str| {
            g.heartbeat(
                ShareHeartbeatRequest {
                    group_id: "g".into(),
                    member_id: id.into(),
                    member_epoch: 0,
                    subscribed_topics: Some(vec!["t".into()]),
                    client: ClientInfo::default(),
                },
                &topics(1),
                0,
                config,
            )
        };
        assert_eq!(join(&mut g, "a").error, ErrorCode::None);
        assert_eq!(join(&mut g, "b").error, ErrorCode::None);
        let refused = join(&mut g, "c");
        assert_eq!(refused.error, ErrorCode::GroupMaxSizeReached);
        assert_eq!(
            refused.error_message.as_deref(),
            Some("The share group has reached its maximum capacity of 2 members.")
        );
        // A member already in rejoins.
        assert_eq!(join(&mut g, "a").error, ErrorCode::None);
    }

    #[test]
    fn partitions_spread_over_fewer_members_and_move_when_one_leaves() {
        let mut g = ShareGroup::default();
        assert_eq!(parts(&beat(&mut g, "a", 0, true, 4)), [0, 1, 2, 3]);
        assert_eq!(parts(&beat(&mut g, "b", 0, true, 4)), [1, 3]);
        assert_eq!(parts(&beat(&mut g, "a", 1, false, 4)), [0, 2]);
        assert_eq!(beat(&mut g, "b", -1, false, 4).member_epoch, -1);
        assert_eq!(parts(&beat(&mut g, "a", 2, false, 4)), [0, 1, 2, 3]);
        g.check(&topics(4)).expect("invariants");
        // A topic that grows is assigned again at the next heartbeat.
        assert_eq!(parts(&beat(&mut g, "a", 3, false, 6)), [0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn unknown_members_stale_epochs_and_expired_sessions_are_refused() {
        let mut g = ShareGroup::default();
        assert_eq!(
            beat(&mut g, "x", 3, false, 1).error,
            ErrorCode::UnknownMemberId
        );
        assert_eq!(
            beat(&mut g, "a", 0, false, 1).error,
            ErrorCode::InvalidRequest,
            "a join names its topics"
        );
        beat(&mut g, "a", 0, true, 1);
        beat(&mut g, "b", 0, true, 1);
        assert_eq!(
            beat(&mut g, "a", 1, false, 1).member_epoch,
            2,
            "a member's next heartbeat brings it to the group epoch"
        );
        assert_eq!(
            beat(&mut g, "a", 7, false, 1).error,
            ErrorCode::FencedMemberEpoch
        );
        assert_eq!(g.expire(45_000), ["a", "b"]);
        assert!(g.is_empty());
    }
}
