//! One consumer group: its members, generations and rebalances.
//!
//! Owns: the classic group protocol's state machine for one group, as
//! Kafka's coordinator runs it. A rebalance starts (PreparingRebalance) when
//! a member joins, leaves, changes its protocols or lets its session
//! expire; it completes when every member has rejoined or the rebalance
//! timeout passed (members that did not rejoin are removed), giving a new
//! generation, a selected protocol and a leader (CompletingRebalance). The
//! leader's SyncGroup carries the assignment; once it is persisted the
//! group is Stable and every member gets its share.
//!
//! Invariants: `members` holds exactly the joined members; a static
//! member's instance id maps to its current member id and to nothing else;
//! a member has at most one parked JoinGroup and one parked SyncGroup, and
//! each parked request is answered exactly once (by a [`Reply`]); the
//! generation only grows.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;

use super::records::{CommittedOffset, GroupSnapshot, MemberSnapshot};
use super::{
    GroupState, JoinRequest, JoinResponse, JoinedMember, Reply, SyncRequest, SyncResponse, Token,
};
use crate::config::GroupConfig;
use crate::ErrorCode;

/// One member of a group.
#[derive(Debug, Clone)]
pub struct Member {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    /// (name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    awaiting_join: Option<Token>,
    awaiting_sync: Option<Token>,
    /// The session expires at this time unless a heartbeat moves it.
    session_deadline_ms: i64,
}

impl Member {
    /// The member's metadata for `protocol`.
    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    fn touch(&mut self, now_ms: i64) {
        self.session_deadline_ms = now_ms + i64::from(self.session_timeout_ms);
    }
}

/// One group's membership and committed offsets.
#[derive(Debug, Clone)]
pub struct Group {
    pub id: String,
    pub state: GroupState,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub generation: i32,
    pub leader: Option<String>,
    pub state_timestamp_ms: i64,
    members: BTreeMap<String, Member>,
    /// Static members: instance id → member id.
    static_members: HashMap<String, String>,
    /// Member ids handed out by MEMBER_ID_REQUIRED, not yet joined, with the
    /// time they are forgotten (KIP-394).
    pending_members: HashMap<String, i64>,
    rebalance_deadline_ms: i64,
    /// The first rebalance of an empty group completes no earlier than this.
    join_not_before_ms: i64,
    initial_delay: bool,
    /// The generation whose assignment is being persisted, if any.
    persisting: Option<i32>,
    /// True when the group's metadata changed and should be written.
    dirty: bool,
    /// Committed offsets: (topic, partition) → offset.
    pub offsets: BTreeMap<(String, i32), CommittedOffset>,
}

/// Returns `error` to a request now (as a reply to `token`).
fn join_error(out: &mut Vec<Reply>, token: Token, error: ErrorCode, member_id: &str) {
    out.push(Reply::Join(token, JoinResponse::error(error, member_id)));
}

impl Group {
    /// A new, empty group.
    pub fn new(id: &str, now_ms: i64) -> Group {
        Group {
            id: id.to_owned(),
            state: GroupState::Empty,
            protocol_type: None,
            protocol_name: None,
            generation: 0,
            leader: None,
            state_timestamp_ms: now_ms,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending_members: HashMap::new(),
            rebalance_deadline_ms: 0,
            join_not_before_ms: 0,
            initial_delay: false,
            persisting: None,
            dirty: false,
            offsets: BTreeMap::new(),
        }
    }

    /// The group as its persisted metadata record last described it; the
    /// members' sessions start now.
    pub fn restore(&mut self, snapshot: GroupSnapshot, now_ms: i64) {
        self.protocol_type = Some(snapshot.protocol_type).filter(|t| !t.is_empty());
        self.generation = snapshot.generation;
        self.protocol_name = snapshot.protocol;
        self.leader = snapshot.leader;
        self.state_timestamp_ms = snapshot.state_timestamp_ms;
        self.members.clear();
        self.static_members.clear();
        self.pending_members.clear();
        for m in snapshot.members {
            let protocol = self.protocol_name.clone().unwrap_or_default();
            let mut member = Member {
                member_id: m.member_id.clone(),
                instance_id: m.instance_id.clone(),
                client_id: m.client_id,
                client_host: m.client_host,
                session_timeout_ms: m.session_timeout_ms,
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                protocols: vec![(protocol, m.subscription)],
                assignment: m.assignment,
                awaiting_join: None,
                awaiting_sync: None,
                session_deadline_ms: 0,
            };
            member.touch(now_ms);
            if let Some(instance) = m.instance_id {
                self.static_members.insert(instance, m.member_id.clone());
            }
            self.members.insert(m.member_id, member);
        }
        self.state = if self.members.is_empty() || self.protocol_name.is_none() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
        if self.state == GroupState::Empty {
            self.members.clear();
            self.static_members.clear();
            self.leader = None;
        }
    }

    /// What the group's metadata record holds now.
    pub fn snapshot(&self) -> GroupSnapshot {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        GroupSnapshot {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol_name.clone(),
            leader: self.leader.clone(),
            state_timestamp_ms: self.state_timestamp_ms,
            members: self
                .members
                .values()
                .map(|m| MemberSnapshot {
                    member_id: m.member_id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: m.metadata(&protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// The members, ordered by member id.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    /// True when the group has no members and nothing in flight.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.pending_members.is_empty()
    }

    /// Takes the "metadata must be written" flag.
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// True when the group's metadata changed and is not yet written.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// True when `member_id` does not own `instance_id` (an old incarnation
    /// of a static member).
    fn is_fenced(&self, member_id: &str, instance_id: Option<&str>) -> bool {
        instance_id
            .and_then(|i| self.static_members.get(i))
            .is_some_and(|owner| owner != member_id)
    }

    /// The protocols every member supports, for a candidate `protocols`.
    fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if protocol_type.is_empty() || protocols.is_empty() {
            return false;
        }
        if self.members.is_empty() {
            return true;
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols.iter().any(|(name, _)| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == name))
            })
    }

    /// JoinGroup. The answer for `token` is in the returned replies now or
    /// in those of a later call.
    pub fn join(
        &mut self,
        req: JoinRequest,
        token: Token,
        now_ms: i64,
        config: &GroupConfig,
        out: &mut Vec<Reply>,
    ) {
        if req.session_timeout_ms < config.min_session_timeout_ms
            || req.session_timeout_ms > config.max_session_timeout_ms
        {
            return join_error(out, token, ErrorCode::InvalidSessionTimeout, &req.member_id);
        }
        if !self.supports(&req.protocol_type, &req.protocols) {
            return join_error(
                out,
                token,
                ErrorCode::InconsistentGroupProtocol,
                &req.member_id,
            );
        }
        if req.member_id.is_empty() {
            self.join_new(req, token, now_ms, config, out);
        } else {
            self.join_known(req, token, now_ms, config, out);
        }
    }

    fn join_new(
        &mut self,
        req: JoinRequest,
        token: Token,
        now_ms: i64,
        config: &GroupConfig,
        out: &mut Vec<Reply>,
    ) {
        let prefix = req.instance_id.as_deref().unwrap_or(&req.client_id);
        let member_id = format!("{prefix}-{}", req.member_id_suffix);
        if let Some(instance) = req.instance_id.clone() {
            if let Some(old_id) = self.static_members.get(&instance).cloned() {
                return self.replace_static_member(req, &old_id, member_id, token, now_ms, out);
            }
        } else if req.require_known_member_id {
            if self.members.len() + self.pending_members.len() >= config.max_size {
                return join_error(out, token, ErrorCode::GroupMaxSizeReached, "");
            }
            let deadline = now_ms + i64::from(req.session_timeout_ms);
            self.pending_members.insert(member_id.clone(), deadline);
            return join_error(out, token, ErrorCode::MemberIdRequired, &member_id);
        }
        if self.members.len() >= config.max_size {
            return join_error(out, token, ErrorCode::GroupMaxSizeReached, "");
        }
        self.add_member(req, member_id, token, now_ms, config, out);
    }

    fn join_known(
        &mut self,
        req: JoinRequest,
        token: Token,
        now_ms: i64,
        config: &GroupConfig,
        out: &mut Vec<Reply>,
    ) {
        let member_id = req.member_id.clone();
        if self.pending_members.remove(&member_id).is_some() {
            return self.add_member(req, member_id, token, now_ms, config, out);
        }
        if self.is_fenced(&member_id, req.instance_id.as_deref()) {
            return join_error(out, token, ErrorCode::FencedInstanceId, &member_id);
        }
        let Some(member) = self.members.get_mut(&member_id) else {
            return join_error(out, token, ErrorCode::UnknownMemberId, &member_id);
        };
        let unchanged = member.protocols == req.protocols;
        member.touch(now_ms);
        match self.state {
            GroupState::PreparingRebalance => {
                update_member(member, &req);
                self.park_join(&member_id, token, out);
                self.maybe_complete_join(now_ms, out);
            }
            GroupState::CompletingRebalance if unchanged => {
                // A retried join of the current generation: answer it again.
                out.push(Reply::Join(token, self.join_response(&member_id, false)));
            }
            GroupState::Stable if unchanged && self.leader.as_deref() != Some(&member_id) => {
                out.push(Reply::Join(token, self.join_response(&member_id, false)));
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                update_member(member, &req);
                self.park_join(&member_id, token, out);
                self.prepare_rebalance(now_ms, out);
                self.maybe_complete_join(now_ms, out);
            }
            GroupState::Empty | GroupState::Dead => {
                join_error(out, token, ErrorCode::UnknownMemberId, &member_id);
            }
        }
    }

    /// A static member rejoined with a new incarnation: it takes over the
    /// old member's place; its predecessor is fenced.
    fn replace_static_member(
        &mut self,
        req: JoinRequest,
        old_id: &str,
        new_id: String,
        token: Token,
        now_ms: i64,
        out: &mut Vec<Reply>,
    ) {
        let Some(mut member) = self.members.remove(old_id) else {
            return join_error(out, token, ErrorCode::UnknownMemberId, "");
        };
        if let Some(t) = member.awaiting_join.take() {
            join_error(out, t, ErrorCode::FencedInstanceId, old_id);
        }
        if let Some(t) = member.awaiting_sync.take() {
            out.push(Reply::Sync(
                t,
                SyncResponse::error(ErrorCode::FencedInstanceId),
            ));
        }
        let protocol = self.protocol_name.clone().unwrap_or_default();
        let unchanged = req
            .protocols
            .iter()
            .find(|(n, _)| *n == protocol)
            .is_some_and(|(_, m)| *m == member.metadata(&protocol));
        member.member_id = new_id.clone();
        update_member(&mut member, &req);
        member.touch(now_ms);
        self.members.insert(new_id.clone(), member);
        if let Some(instance) = &req.instance_id {
            self.static_members.insert(instance.clone(), new_id.clone());
        }
        let was_leader = self.leader.as_deref() == Some(old_id);
        if was_leader {
            self.leader = Some(new_id.clone());
        }
        match self.state {
            GroupState::Stable if unchanged => {
                // Same subscription: no rebalance; the new incarnation keeps
                // the old one's assignment (KIP-345).
                self.dirty = true;
                let skip = was_leader && req.supports_skip_assignment;
                let mut response = self.join_response(&new_id, skip);
                if was_leader && !skip {
                    // Before KIP-814 the new incarnation is not told it
                    // leads (Kafka names the old member id): it would assign
                    // again. It follows; SyncGroup answers the kept
                    // assignment.
                    response.leader = old_id.to_owned();
                    response.members = Vec::new();
                }
                out.push(Reply::Join(token, response));
            }
            _ => {
                self.park_join(&new_id, token, out);
                self.prepare_rebalance(now_ms, out);
                self.maybe_complete_join(now_ms, out);
            }
        }
    }

    fn add_member(
        &mut self,
        req: JoinRequest,
        member_id: String,
        token: Token,
        now_ms: i64,
        config: &GroupConfig,
        out: &mut Vec<Reply>,
    ) {
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        let mut member = Member {
            member_id: member_id.clone(),
            instance_id: req.instance_id.clone(),
            client_id: req.client_id.clone(),
            client_host: req.client_host.clone(),
            session_timeout_ms: req.session_timeout_ms,
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            protocols: req.protocols,
            assignment: Bytes::new(),
            awaiting_join: Some(token),
            awaiting_sync: None,
            session_deadline_ms: 0,
        };
        member.touch(now_ms);
        if let Some(instance) = req.instance_id {
            self.static_members.insert(instance, member_id.clone());
        }
        self.members.insert(member_id.clone(), member);
        if self.leader.is_none() {
            self.leader = Some(member_id);
        }
        if self.state == GroupState::PreparingRebalance {
            if self.initial_delay {
                let delay = i64::from(config.initial_rebalance_delay_ms);
                self.join_not_before_ms = (now_ms + delay).min(self.rebalance_deadline_ms);
            }
            self.rebalance_deadline_ms = self
                .rebalance_deadline_ms
                .max(now_ms + i64::from(req.rebalance_timeout_ms));
        } else {
            let was_empty = self.state == GroupState::Empty;
            self.prepare_rebalance(now_ms, out);
            if was_empty {
                self.initial_delay = true;
                self.join_not_before_ms = (now_ms + i64::from(config.initial_rebalance_delay_ms))
                    .min(self.rebalance_deadline_ms);
            }
        }
        self.maybe_complete_join(now_ms, out);
    }

    fn park_join(&mut self, member_id: &str, token: Token, out: &mut Vec<Reply>) {
        if let Some(member) = self.members.get_mut(member_id) {
            if let Some(previous) = member.awaiting_join.replace(token) {
                join_error(out, previous, ErrorCode::RebalanceInProgress, member_id);
            }
        }
    }

    /// Starts a rebalance: members must rejoin within the rebalance timeout.
    fn prepare_rebalance(&mut self, now_ms: i64, out: &mut Vec<Reply>) {
        if self.state == GroupState::CompletingRebalance {
            // The assignment being handed out is void: followers waiting
            // for it must rejoin.
            for member in self.members.values_mut() {
                member.assignment = Bytes::new();
                if let Some(t) = member.awaiting_sync.take() {
                    out.push(Reply::Sync(
                        t,
                        SyncResponse::error(ErrorCode::RebalanceInProgress),
                    ));
                }
            }
            self.persisting = None;
        }
        let timeout = self
            .members
            .values()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0);
        self.rebalance_deadline_ms = now_ms + timeout;
        self.join_not_before_ms = 0;
        self.initial_delay = false;
        self.state = GroupState::PreparingRebalance;
        self.state_timestamp_ms = now_ms;
    }

    /// Completes the join phase if every member rejoined (and the initial
    /// delay passed) or the rebalance timeout ran out.
    fn maybe_complete_join(&mut self, now_ms: i64, out: &mut Vec<Reply>) {
        if self.state != GroupState::PreparingRebalance || now_ms < self.join_not_before_ms {
            return;
        }
        let all_joined = self.pending_members.is_empty()
            && self.members.values().all(|m| m.awaiting_join.is_some());
        if all_joined || now_ms >= self.rebalance_deadline_ms {
            self.complete_join(now_ms, out);
        }
    }

    fn complete_join(&mut self, now_ms: i64, out: &mut Vec<Reply>) {
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for id in gone {
            self.forget_member(&id, out);
        }
        self.generation += 1;
        self.state_timestamp_ms = now_ms;
        self.initial_delay = false;
        self.dirty = true;
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.protocol_name = None;
            self.leader = None;
            return;
        }
        self.protocol_name = self.select_protocol();
        if self
            .leader
            .as_ref()
            .is_none_or(|l| !self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        self.state = GroupState::CompletingRebalance;
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let response = self.join_response(&id, false);
            if let Some(member) = self.members.get_mut(&id) {
                member.touch(now_ms);
                if let Some(t) = member.awaiting_join.take() {
                    out.push(Reply::Join(t, response));
                }
            }
        }
    }

    /// The protocol every member supports that most members prefer (ties:
    /// the name first in order, so every coordinator picks the same).
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(n, _)| n)
            .filter(|n| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(p, _)| p == *n))
            })
            .collect();
        let mut votes: BTreeMap<&String, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some((vote, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(&n)) {
                *votes.entry(vote).or_default() += 1;
            }
        }
        let best = votes.values().copied().max()?;
        votes
            .into_iter()
            .find(|(_, v)| *v == best)
            .map(|(n, _)| n.clone())
    }

    fn joined_members(&self) -> Vec<JoinedMember> {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        self.members
            .values()
            .map(|m| JoinedMember {
                member_id: m.member_id.clone(),
                instance_id: m.instance_id.clone(),
                metadata: m.metadata(&protocol),
            })
            .collect()
    }

    /// The current generation's JoinGroup answer for `member_id`.
    fn join_response(&self, member_id: &str, skip_assignment: bool) -> JoinResponse {
        let leader = self.leader.clone().unwrap_or_default();
        let is_leader = leader == member_id;
        JoinResponse {
            error: ErrorCode::None,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader,
            skip_assignment,
            member_id: member_id.to_owned(),
            members: if is_leader && (skip_assignment || self.state != GroupState::Stable) {
                self.joined_members()
            } else {
                Vec::new()
            },
        }
    }

    /// SyncGroup. The answer for `token` is in the replies now or after the
    /// assignment is persisted.
    pub fn sync(&mut self, req: SyncRequest, token: Token, now_ms: i64, out: &mut Vec<Reply>) {
        let error = |out: &mut Vec<Reply>, e| out.push(Reply::Sync(token, SyncResponse::error(e)));
        if self.is_fenced(&req.member_id, req.instance_id.as_deref()) {
            return error(out, ErrorCode::FencedInstanceId);
        }
        if !self.members.contains_key(&req.member_id) {
            return error(out, ErrorCode::UnknownMemberId);
        }
        if req.generation != self.generation {
            return error(out, ErrorCode::IllegalGeneration);
        }
        if req
            .protocol_type
            .as_ref()
            .is_some_and(|t| Some(t) != self.protocol_type.as_ref())
            || req
                .protocol_name
                .as_ref()
                .is_some_and(|n| Some(n) != self.protocol_name.as_ref())
        {
            return error(out, ErrorCode::InconsistentGroupProtocol);
        }
        let is_leader = self.leader.as_deref() == Some(req.member_id.as_str());
        match self.state {
            GroupState::Empty | GroupState::Dead => error(out, ErrorCode::UnknownMemberId),
            GroupState::PreparingRebalance => error(out, ErrorCode::RebalanceInProgress),
            GroupState::CompletingRebalance => {
                let Some(member) = self.members.get_mut(&req.member_id) else {
                    return error(out, ErrorCode::UnknownMemberId);
                };
                member.touch(now_ms);
                if let Some(previous) = member.awaiting_sync.replace(token) {
                    out.push(Reply::Sync(
                        previous,
                        SyncResponse::error(ErrorCode::RebalanceInProgress),
                    ));
                }
                if is_leader && self.persisting.is_none() {
                    let mut assignments: HashMap<String, Bytes> =
                        req.assignments.into_iter().collect();
                    for member in self.members.values_mut() {
                        member.assignment =
                            assignments.remove(&member.member_id).unwrap_or_default();
                    }
                    self.persisting = Some(self.generation);
                    self.dirty = true;
                }
            }
            GroupState::Stable => {
                let Some(member) = self.members.get_mut(&req.member_id) else {
                    return error(out, ErrorCode::UnknownMemberId);
                };
                member.touch(now_ms);
                out.push(Reply::Sync(
                    token,
                    SyncResponse {
                        error: ErrorCode::None,
                        protocol_type: self.protocol_type.clone(),
                        protocol_name: self.protocol_name.clone(),
                        assignment: member.assignment.clone(),
                    },
                ));
            }
        }
    }

    /// The metadata written for `generation` is durable (`Ok`) or could not
    /// be written: answer the members waiting on the assignment.
    pub fn persisted(
        &mut self,
        generation: i32,
        result: Result<(), ErrorCode>,
        now_ms: i64,
        out: &mut Vec<Reply>,
    ) {
        if self.persisting != Some(generation)
            || self.generation != generation
            || self.state != GroupState::CompletingRebalance
        {
            return;
        }
        self.persisting = None;
        match result {
            Ok(()) => {
                self.state = GroupState::Stable;
                self.state_timestamp_ms = now_ms;
                for member in self.members.values_mut() {
                    if let Some(t) = member.awaiting_sync.take() {
                        out.push(Reply::Sync(
                            t,
                            SyncResponse {
                                error: ErrorCode::None,
                                protocol_type: self.protocol_type.clone(),
                                protocol_name: self.protocol_name.clone(),
                                assignment: member.assignment.clone(),
                            },
                        ));
                    }
                }
            }
            Err(e) => {
                for member in self.members.values_mut() {
                    member.assignment = Bytes::new();
                    if let Some(t) = member.awaiting_sync.take() {
                        out.push(Reply::Sync(t, SyncResponse::error(e)));
                    }
                }
                self.prepare_rebalance(now_ms, out);
            }
        }
    }

    /// The generation whose assignment waits to be persisted.
    pub fn persisting(&self) -> Option<i32> {
        self.persisting
    }

    /// Heartbeat.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now_ms: i64,
    ) -> ErrorCode {
        if self.is_fenced(member_id, instance_id) {
            return ErrorCode::FencedInstanceId;
        }
        if let Err(e) = self.touch_member(member_id, generation, now_ms) {
            return e;
        }
        match self.state {
            GroupState::PreparingRebalance => ErrorCode::RebalanceInProgress,
            GroupState::CompletingRebalance | GroupState::Stable => ErrorCode::None,
            GroupState::Empty | GroupState::Dead => ErrorCode::UnknownMemberId,
        }
    }

    /// LeaveGroup for one member (by member id, or by instance id for a
    /// static member).
    pub fn leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        now_ms: i64,
        out: &mut Vec<Reply>,
    ) -> ErrorCode {
        let target = match instance_id {
            Some(instance) => match self.static_members.get(instance) {
                None => return ErrorCode::UnknownMemberId,
                Some(owner) if !member_id.is_empty() && owner != member_id => {
                    return ErrorCode::FencedInstanceId
                }
                Some(owner) => owner.clone(),
            },
            None => {
                if self.pending_members.remove(member_id).is_some() {
                    self.maybe_complete_join(now_ms, out);
                    return ErrorCode::None;
                }
                if !self.members.contains_key(member_id) {
                    return ErrorCode::UnknownMemberId;
                }
                member_id.to_owned()
            }
        };
        self.remove_member(&target, now_ms, out);
        ErrorCode::None
    }

    /// Removes a member that left or whose session expired, and rebalances.
    fn remove_member(&mut self, member_id: &str, now_ms: i64, out: &mut Vec<Reply>) {
        self.forget_member(member_id, out);
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now_ms, out);
                self.maybe_complete_join(now_ms, out);
            }
            GroupState::PreparingRebalance => self.maybe_complete_join(now_ms, out),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    fn forget_member(&mut self, member_id: &str, out: &mut Vec<Reply>) {
        let Some(member) = self.members.remove(member_id) else {
            return;
        };
        if let Some(t) = member.awaiting_join {
            join_error(out, t, ErrorCode::UnknownMemberId, member_id);
        }
        if let Some(t) = member.awaiting_sync {
            out.push(Reply::Sync(
                t,
                SyncResponse::error(ErrorCode::UnknownMemberId),
            ));
        }
        if let Some(instance) = &member.instance_id {
            if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                self.static_members.remove(instance);
            }
        }
        if self.leader.as_deref() == Some(member_id) {
            self.leader = self.members.keys().next().cloned();
        }
    }

    /// Expires sessions and pending member ids, and completes a rebalance
    /// whose time is up.
    pub fn tick(&mut self, now_ms: i64, out: &mut Vec<Reply>) {
        self.pending_members
            .retain(|_, deadline| *deadline > now_ms);
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                m.awaiting_join.is_none()
                    && m.awaiting_sync.is_none()
                    && m.session_deadline_ms <= now_ms
            })
            .map(|m| m.member_id.clone())
            .collect();
        for id in expired {
            self.remove_member(&id, now_ms, out);
        }
        self.maybe_complete_join(now_ms, out);
    }

    /// Answers every parked request with `error` (the group stops being
    /// served here).
    pub fn abandon(&mut self, error: ErrorCode, out: &mut Vec<Reply>) {
        for member in self.members.values_mut() {
            if let Some(t) = member.awaiting_join.take() {
                join_error(out, t, error, &member.member_id);
            }
            if let Some(t) = member.awaiting_sync.take() {
                out.push(Reply::Sync(t, SyncResponse::error(error)));
            }
        }
    }

    /// The earliest time [`Group::tick`] has something to do: a pending
    /// member id or a session running out, or the join phase of a
    /// rebalance that may complete (its initial delay or its timeout).
    /// `None` when the group has no timer. A tick earlier than this does
    /// nothing; a tick at it does what is due.
    pub fn next_deadline_ms(&self) -> Option<i64> {
        let pending = self.pending_members.values().copied();
        let sessions = self
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none() && m.awaiting_sync.is_none())
            .map(|m| m.session_deadline_ms);
        let rebalance = (self.state == GroupState::PreparingRebalance).then(|| {
            let all_joined = self.pending_members.is_empty()
                && self.members.values().all(|m| m.awaiting_join.is_some());
            if all_joined {
                self.join_not_before_ms
            } else {
                self.join_not_before_ms.max(self.rebalance_deadline_ms)
            }
        });
        pending.chain(sessions).chain(rebalance).min()
    }

    /// True when the group has timers that [`Group::tick`] must check.
    pub fn needs_ticks(&self) -> bool {
        !self.members.is_empty() || !self.pending_members.is_empty()
    }

    /// Whether a member may commit offsets now (OffsetCommit's checks, in
    /// Kafka's order). Generation -1 with no member id is an admin or
    /// manually assigned consumer's commit, allowed while the group is empty.
    pub fn check_commit(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now_ms: i64,
    ) -> ErrorCode {
        if self.is_fenced(member_id, instance_id) {
            return ErrorCode::FencedInstanceId;
        }
        if generation < 0 && self.state == GroupState::Empty {
            return ErrorCode::None;
        }
        if self.state == GroupState::CompletingRebalance {
            return ErrorCode::RebalanceInProgress;
        }
        match self.touch_member(member_id, generation, now_ms) {
            Ok(()) => ErrorCode::None,
            Err(e) => e,
        }
    }

    /// A request of `member_id` at `generation`: unknown members and other
    /// generations are refused; otherwise the member's session is renewed.
    fn touch_member(
        &mut self,
        member_id: &str,
        generation: i32,
        now_ms: i64,
    ) -> Result<(), ErrorCode> {
        let current = self.generation;
        let member = self
            .members
            .get_mut(member_id)
            .ok_or(ErrorCode::UnknownMemberId)?;
        if generation != current {
            return Err(ErrorCode::IllegalGeneration);
        }
        member.touch(now_ms);
        Ok(())
    }

    /// The topics the members subscribe to (consumer protocol only).
    pub fn subscribed_topics(&self) -> Option<Vec<String>> {
        if self.protocol_type.as_deref() != Some("consumer") || self.members.is_empty() {
            return None;
        }
        let protocol = self.protocol_name.clone()?;
        let mut topics = Vec::new();
        for m in self.members.values() {
            // An undecodable subscription subscribes to nothing we know of.
            if let Ok(t) = super::subscription::subscribed_topics(&m.metadata(&protocol)) {
                topics.extend(t);
            }
        }
        topics.sort();
        topics.dedup();
        Some(topics)
    }
}

fn update_member(member: &mut Member, req: &JoinRequest) {
    member.protocols = req.protocols.clone();
    member.session_timeout_ms = req.session_timeout_ms;
    member.rebalance_timeout_ms = req.rebalance_timeout_ms;
    member.client_id = req.client_id.clone();
    member.client_host = req.client_host.clone();
}
