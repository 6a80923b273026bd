//! The classic group protocol driven step by step, with explicit time.

use bytes::Bytes;

use super::*;
use crate::group::records::{CommittedOffset, ShareGroupSnapshot};
use crate::group::topics::TopicTable;

const SESSION_MS: i32 = 10_000;
const REBALANCE_MS: i32 = 30_000;

fn coordinator(initial_delay_ms: i32) -> GroupCoordinator {
    GroupCoordinator::new(GroupConfig {
        initial_rebalance_delay_ms: initial_delay_ms,
        ..GroupConfig::default()
    })
}

fn join_req(member: &str, instance: Option<&str>, metadata: &'static [u8]) -> JoinRequest {
    JoinRequest {
        group_id: "g".into(),
        member_id: member.into(),
        instance_id: instance.map(str::to_owned),
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: SESSION_MS,
        rebalance_timeout_ms: REBALANCE_MS,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), Bytes::from_static(metadata))],
        require_known_member_id: true,
        supports_skip_assignment: true,
        member_id_suffix: format!("uuid{member}{}", instance.unwrap_or("")),
    }
}

fn only_join(replies: Vec<Reply>, token: Token) -> JoinResponse {
    match &replies[..] {
        [Reply::Join(t, r)] if *t == token => r.clone(),
        other => panic!("expected one join reply for {token}, got {other:?}"),
    }
}

fn join_reply(replies: &[Reply], token: Token) -> JoinResponse {
    replies
        .iter()
        .find_map(|r| match r {
            Reply::Join(t, r) if *t == token => Some(r.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no join reply for {token} in {replies:?}"))
}

fn sync_reply(replies: &[Reply], token: Token) -> SyncResponse {
    replies
        .iter()
        .find_map(|r| match r {
            Reply::Sync(t, r) if *t == token => Some(r.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no sync reply for {token} in {replies:?}"))
}

/// A member's full first join (MEMBER_ID_REQUIRED, then the real join);
/// returns its member id and the second join's replies.
fn first_join(
    c: &mut GroupCoordinator,
    suffix: &str,
    token: Token,
    now: i64,
) -> (String, Vec<Reply>) {
    let mut req = join_req("", None, b"m");
    req.member_id_suffix = suffix.into();
    let r = only_join(c.join(req, token, now), token);
    assert_eq!(r.error, ErrorCode::MemberIdRequired);
    assert_eq!(r.member_id, format!("client-{suffix}"));
    let replies = c.join(join_req(&r.member_id, None, b"m"), token, now);
    (r.member_id, replies)
}

fn sync_req(member: &str, generation: i32) -> SyncRequest {
    SyncRequest {
        group_id: "g".into(),
        generation,
        member_id: member.into(),
        ..SyncRequest::default()
    }
}

/// Drives a group of one member to Stable at generation 1.
fn stable_single(c: &mut GroupCoordinator) -> String {
    let (a, replies) = first_join(c, "a", 1, 0);
    let r = join_reply(&replies, 1);
    assert_eq!(
        (r.error, r.generation, r.leader.as_str()),
        (ErrorCode::None, 1, a.as_str())
    );
    let mut req = sync_req(&a, 1);
    req.assignments = vec![(a.clone(), Bytes::from_static(b"all"))];
    assert!(
        c.sync(req, 2, 0).is_empty(),
        "the leader waits for the write"
    );
    persist(c, 0);
    a
}

/// Writes every pending group record successfully; returns the replies.
fn persist(c: &mut GroupCoordinator, now: i64) -> Vec<Reply> {
    let mut out = Vec::new();
    for w in c.take_pending_writes() {
        if let Some(gen) = w.waiting_generation {
            out.extend(c.persisted(&w.group_id, gen, Ok(()), now));
        }
    }
    out
}

#[test]
fn first_join_asks_for_a_member_id_then_one_member_forms_a_generation() {
    let mut c = coordinator(0);
    let (a, replies) = first_join(&mut c, "a", 1, 0);
    let r = join_reply(&replies, 1);
    assert_eq!(r.error, ErrorCode::None);
    assert_eq!(r.generation, 1);
    assert_eq!(r.protocol_name.as_deref(), Some("range"));
    assert_eq!(r.leader, a);
    assert_eq!(r.members.len(), 1, "the leader sees every member");
    assert_eq!(
        c.group("g").map(|g| g.state),
        Some(GroupState::CompletingRebalance)
    );
}

#[test]
fn leader_sync_is_answered_once_the_assignment_is_persisted() {
    let mut c = coordinator(0);
    let a = stable_single(&mut c);
    let g = c.group("g").expect("group");
    assert_eq!(g.state, GroupState::Stable);
    // A repeated SyncGroup in Stable answers the stored assignment at once.
    let replies = c.sync(sync_req(&a, 1), 3, 1);
    assert_eq!(
        sync_reply(&replies, 3).assignment,
        Bytes::from_static(b"all")
    );
}

#[test]
fn a_new_member_starts_a_rebalance_that_waits_for_the_old_one() {
    let mut c = coordinator(0);
    let a = stable_single(&mut c);
    let (b, replies) = first_join(&mut c, "b", 10, 100);
    assert!(replies.is_empty(), "b waits for a to rejoin: {replies:?}");
    assert_eq!(
        c.heartbeat("g", &a, None, 1, 200),
        ErrorCode::RebalanceInProgress
    );
    let replies = c.join(join_req(&a, None, b"m"), 11, 300);
    let ra = join_reply(&replies, 11);
    let rb = join_reply(&replies, 10);
    assert_eq!((ra.generation, rb.generation), (2, 2));
    assert_eq!(ra.leader, a, "the leader stays the leader");
    assert_eq!(ra.members.len(), 2);
    assert!(rb.members.is_empty(), "followers get no member list");
    // The follower's sync waits for the leader's.
    assert!(c.sync(sync_req(&b, 2), 12, 400).is_empty());
    let mut leader_sync = sync_req(&a, 2);
    leader_sync.assignments = vec![
        (a.clone(), Bytes::from_static(b"p0")),
        (b.clone(), Bytes::from_static(b"p1")),
    ];
    assert!(c.sync(leader_sync, 13, 400).is_empty());
    let replies = persist(&mut c, 500);
    assert_eq!(
        sync_reply(&replies, 12).assignment,
        Bytes::from_static(b"p1")
    );
    assert_eq!(
        sync_reply(&replies, 13).assignment,
        Bytes::from_static(b"p0")
    );
    assert_eq!(c.heartbeat("g", &b, None, 2, 600), ErrorCode::None);
    assert_eq!(
        c.heartbeat("g", &b, None, 1, 600),
        ErrorCode::IllegalGeneration
    );
    assert_eq!(
        c.heartbeat("g", "nobody", None, 2, 600),
        ErrorCode::UnknownMemberId
    );
}

#[test]
fn a_member_that_stops_heartbeating_is_removed_after_its_session() {
    let mut c = coordinator(0);
    let a = stable_single(&mut c);
    c.apply(offset_record(5), 0);
    assert!(c.tick(i64::from(SESSION_MS) - 1).is_empty());
    assert_eq!(
        c.heartbeat("g", &a, None, 1, i64::from(SESSION_MS) - 1),
        ErrorCode::None
    );
    // Kept alive by that heartbeat until 2 sessions minus 1 ms.
    c.tick(2 * i64::from(SESSION_MS) - 1);
    let g = c.group("g").expect("group");
    assert_eq!(g.state, GroupState::Empty, "the only member expired");
    assert_eq!(g.generation, 2);
    assert_eq!(c.heartbeat("g", &a, None, 2, 0), ErrorCode::UnknownMemberId);
    // With nothing committed, an empty group stays, listed as Empty, until
    // the periodic offsets check deletes it (as Kafka's does).
    c.apply(offset_tombstone(), 0);
    c.tick(2 * i64::from(SESSION_MS));
    assert_eq!(c.group("g").map(|g| g.state), Some(GroupState::Empty));
    let records = c.expired_offsets(2 * i64::from(SESSION_MS), |_| true);
    assert!(
        records
            .iter()
            .any(|r| matches!(r, OffsetsRecord::Group { group, value: None } if group == "g")),
        "{records:?}"
    );
    for r in records {
        c.apply(r, 0);
    }
    assert!(c.group("g").is_none());
}

fn offset_record(offset: i64) -> OffsetsRecord {
    OffsetsRecord::Offset {
        group: "g".into(),
        topic: "t".into(),
        partition: 0,
        value: Some(CommittedOffset {
            offset,
            leader_epoch: 0,
            metadata: "m".into(),
            commit_timestamp_ms: 1,
        }),
    }
}

fn offset_tombstone() -> OffsetsRecord {
    OffsetsRecord::Offset {
        group: "g".into(),
        topic: "t".into(),
        partition: 0,
        value: None,
    }
}

#[test]
fn a_member_that_does_not_rejoin_in_time_is_dropped_from_the_generation() {
    let mut c = coordinator(0);
    let a = stable_single(&mut c);
    let (_b, replies) = first_join(&mut c, "b", 10, 1_000);
    assert!(replies.is_empty());
    // a keeps heartbeating but never rejoins.
    for t in (2_000..31_000).step_by(2_000) {
        assert_eq!(
            c.heartbeat("g", &a, None, 1, t),
            ErrorCode::RebalanceInProgress
        );
        assert!(c.tick(t).is_empty());
    }
    let replies = c.tick(1_000 + i64::from(REBALANCE_MS));
    let rb = join_reply(&replies, 10);
    assert_eq!(rb.generation, 2);
    assert_eq!(rb.members.len(), 1, "b leads a generation of one");
    assert_eq!(
        c.heartbeat("g", &a, None, 2, 32_000),
        ErrorCode::UnknownMemberId
    );
}

#[test]
fn the_initial_rebalance_waits_for_more_members() {
    let mut c = coordinator(3_000);
    let (a, replies) = first_join(&mut c, "a", 1, 0);
    assert!(replies.is_empty());
    let (_b, replies) = first_join(&mut c, "b", 2, 2_000);
    assert!(replies.is_empty());
    assert!(c.tick(4_999).is_empty(), "b's join extended the delay");
    let replies = c.tick(5_000);
    assert_eq!(join_reply(&replies, 1).generation, 1);
    assert_eq!(join_reply(&replies, 1).leader, a);
    assert_eq!(join_reply(&replies, 2).generation, 1);
}

#[test]
fn leaving_rebalances_and_unknown_members_are_refused() {
    let mut c = coordinator(0);
    let a = stable_single(&mut c);
    let (errors, _) = c.leave("g", &[("nobody".into(), None), (a.clone(), None)], 10);
    assert_eq!(
        errors,
        Ok(vec![ErrorCode::UnknownMemberId, ErrorCode::None])
    );
    let g = c.group("g").expect("group");
    assert_eq!((g.state, g.generation), (GroupState::Empty, 2));
    let (errors, _) = c.leave("unknown-group", &[(a, None)], 10);
    assert_eq!(errors, Err(ErrorCode::UnknownMemberId));
}

#[test]
fn a_static_member_rejoining_with_the_same_subscription_keeps_its_assignment() {
    let mut c = coordinator(0);
    let r = only_join(c.join(join_req("", Some("i1"), b"m"), 1, 0), 1);
    assert_eq!(
        r.error,
        ErrorCode::None,
        "static members need no member id round"
    );
    let old = r.member_id.clone();
    let mut s = sync_req(&old, 1);
    s.instance_id = Some("i1".into());
    s.assignments = vec![(old.clone(), Bytes::from_static(b"mine"))];
    assert!(c.sync(s, 2, 0).is_empty());
    persist(&mut c, 0);
    // A restart: a new incarnation with the same instance id.
    let mut again = join_req("", Some("i1"), b"m");
    again.member_id_suffix = "second".into();
    let r = only_join(c.join(again, 3, 1_000), 3);
    assert_eq!(r.error, ErrorCode::None);
    assert_eq!(r.generation, 1, "no rebalance");
    assert_eq!(r.member_id, "i1-second");
    assert!(r.skip_assignment, "the leader keeps the assignment it made");
    assert_eq!(r.leader, "i1-second");
    assert_eq!(c.group("g").map(|g| g.state), Some(GroupState::Stable));
    let mut s = sync_req("i1-second", 1);
    s.instance_id = Some("i1".into());
    assert_eq!(
        sync_reply(&c.sync(s, 4, 1_000), 4).assignment,
        Bytes::from_static(b"mine")
    );
    // The old incarnation is fenced.
    assert_eq!(
        c.heartbeat("g", &old, Some("i1"), 1, 1_000),
        ErrorCode::FencedInstanceId
    );
    assert_eq!(
        check_commit(
            &mut c,
            "g",
            &old,
            Some("i1"),
            1,
            1_000,
            ErrorCode::IllegalGeneration
        ),
        ErrorCode::FencedInstanceId
    );
}

#[test]
fn commits_follow_kafkas_membership_checks() {
    let mut c = coordinator(0);
    // No group: only a simple (generation -1) commit.
    assert_eq!(
        check_commit(&mut c, "g", "", None, -1, 0, ErrorCode::IllegalGeneration),
        ErrorCode::None
    );
    assert_eq!(
        check_commit(&mut c, "g", "", None, 3, 0, ErrorCode::IllegalGeneration),
        ErrorCode::IllegalGeneration
    );
    let (a, _) = first_join(&mut c, "a", 1, 0);
    assert_eq!(
        check_commit(&mut c, "g", &a, None, 1, 0, ErrorCode::IllegalGeneration),
        ErrorCode::RebalanceInProgress,
        "CompletingRebalance"
    );
    let mut s = sync_req(&a, 1);
    s.assignments = vec![(a.clone(), Bytes::new())];
    c.sync(s, 2, 0);
    persist(&mut c, 0);
    assert_eq!(
        check_commit(&mut c, "g", &a, None, 1, 0, ErrorCode::IllegalGeneration),
        ErrorCode::None
    );
    assert_eq!(
        check_commit(&mut c, "g", &a, None, 0, 0, ErrorCode::IllegalGeneration),
        ErrorCode::IllegalGeneration
    );
    assert_eq!(
        check_commit(&mut c, "g", "x", None, 1, 0, ErrorCode::IllegalGeneration),
        ErrorCode::UnknownMemberId
    );
    assert_eq!(
        check_commit(&mut c, "g", "", None, -1, 0, ErrorCode::IllegalGeneration),
        ErrorCode::UnknownMemberId
    );
}

#[test]
fn groups_and_offsets_come_back_from_their_records() {
    let mut c = coordinator(0);
    let a = stable_single(&mut c);
    c.apply(offset_record(5), 0);
    let mut restored = coordinator(0);
    for record in c.live_records(|_| true) {
        let key = record.encode_key();
        let value = record.encode_value();
        let decoded = OffsetsRecord::decode(&key, value.as_deref()).expect("decodes");
        restored.apply(decoded, 50);
    }
    let g = restored.group("g").expect("restored");
    assert_eq!((g.state, g.generation), (GroupState::Stable, 1));
    assert_eq!(g.leader.as_deref(), Some(a.as_str()));
    assert_eq!(restored.offsets("g").map(|o| o.len()), Some(1));
    assert_eq!(restored.heartbeat("g", &a, None, 1, 100), ErrorCode::None);
}

#[test]
fn only_empty_groups_can_be_deleted() {
    let mut c = coordinator(0);
    assert_eq!(c.deletion("nope"), Err(ErrorCode::GroupIdNotFound));
    let a = stable_single(&mut c);
    assert_eq!(c.deletion("g"), Err(ErrorCode::NonEmptyGroup));
    let _ = c.leave("g", &[(a, None)], 0);
    let tombstones = c.deletion("g").expect("empty now");
    assert_eq!(tombstones.len(), 1);
    for t in tombstones {
        c.apply(t, 0);
    }
    assert!(c.group("g").is_none());
    assert!(c.list().is_empty());
}

#[test]
fn inconsistent_protocols_and_bad_timeouts_are_refused() {
    let mut c = coordinator(0);
    stable_single(&mut c);
    let mut other = join_req("", None, b"m");
    other.protocols = vec![("roundrobin".into(), Bytes::new())];
    assert_eq!(
        only_join(c.join(other, 5, 0), 5).error,
        ErrorCode::InconsistentGroupProtocol
    );
    let mut short = join_req("", None, b"m");
    short.session_timeout_ms = 1_000;
    assert_eq!(
        only_join(c.join(short, 6, 0), 6).error,
        ErrorCode::InvalidSessionTimeout
    );
    let mut empty_id = join_req("", None, b"m");
    empty_id.group_id = String::new();
    assert_eq!(
        only_join(c.join(empty_id, 7, 0), 7).error,
        ErrorCode::InvalidGroupId
    );
}

#[test]
fn offsets_of_an_empty_group_expire_after_the_retention() {
    let mut c = GroupCoordinator::new(GroupConfig {
        initial_rebalance_delay_ms: 0,
        offsets_retention_minutes: 1,
        ..GroupConfig::default()
    });
    let a = stable_single(&mut c);
    c.apply(offset_record(5), 0);
    // A group with members keeps its offsets, however old.
    assert!(c.expired_offsets(10 * 60_000, |_| true).is_empty());
    let _ = c.leave("g", &[(a, None)], 1_000);
    assert!(
        c.expired_offsets(60_999, |_| true).is_empty(),
        "empty for under a minute"
    );
    assert!(
        c.expired_offsets(61_000, |g| g != "g").is_empty(),
        "not selected"
    );
    let tombstones = c.expired_offsets(61_000, |_| true);
    assert_eq!(
        tombstones,
        vec![
            offset_tombstone(),
            OffsetsRecord::Group {
                group: "g".into(),
                value: None
            }
        ]
    );
    for t in tombstones {
        c.apply(t, 61_000);
    }
    assert!(c.group("g").is_none());
}

#[test]
fn a_deleted_topics_offsets_are_tombstoned() {
    let mut c = coordinator(0);
    c.apply(offset_record(5), 0);
    assert!(c.topic_offsets_tombstones("other", |_| true).is_empty());
    let tombstones = c.topic_offsets_tombstones("t", |_| true);
    assert_eq!(tombstones, vec![offset_tombstone()]);
    for t in tombstones {
        c.apply(t, 0);
    }
    assert_eq!(c.offsets("g").map(|o| o.len()), Some(0));
}

#[test]
fn dropping_a_group_answers_its_parked_requests() {
    let mut c = coordinator(0);
    let a = stable_single(&mut c);
    let (_b, replies) = first_join(&mut c, "b", 10, 100);
    assert!(replies.is_empty(), "b waits for a");
    let replies = c.retain(|_| false);
    assert_eq!(join_reply(&replies, 10).error, ErrorCode::NotCoordinator);
    assert!(c.group("g").is_none());
    assert_eq!(c.heartbeat("g", &a, None, 1, 0), ErrorCode::UnknownMemberId);
}

/// The one topic the KIP-848 tests subscribe to: `t`, one partition.
/// One topic, "t", of one partition.
fn topic_t() -> crate::group::topics::TopicTable {
    crate::group::topics::TopicTable::of(&[("t", [1; 16], 1)])
}

#[test]
fn a_kip848_group_with_members_is_not_deleted_nor_its_consumed_offsets() {
    use crate::group::consumer::HeartbeatRequest;
    let mut c = coordinator(0);
    c.apply(offset_record(5), 0);
    let joined = c.consumer_heartbeat(
        HeartbeatRequest {
            group_id: "g".into(),
            member_id: "m".into(),
            member_epoch: 0,
            subscribed_topics: Some(vec!["t".into()]),
            ..HeartbeatRequest::default()
        },
        &topic_t(),
        0,
    );
    assert_eq!(joined.error, ErrorCode::None);
    assert_eq!(c.deletion("g"), Err(ErrorCode::NonEmptyGroup));
    assert_eq!(c.offset_delete_check("g"), Ok(vec!["t".to_owned()]));
}

#[test]
fn a_kip848_group_comes_back_empty_at_its_epoch_and_goes_with_a_tombstone() {
    use crate::group::consumer::HeartbeatRequest;
    let mut c = coordinator(0);
    let request = |epoch: i32| HeartbeatRequest {
        group_id: "g".into(),
        member_id: "m".into(),
        member_epoch: epoch,
        subscribed_topics: (epoch == 0).then(|| vec!["t".into()]),
        ..HeartbeatRequest::default()
    };
    let joined = c.consumer_heartbeat(request(0), &topic_t(), 0);
    assert_eq!(joined.error, ErrorCode::None);
    let records = c.consumer_group_records("g").expect("a consumer group");
    let record = records[0].clone();
    assert!(matches!(record, OffsetsRecord::ConsumerGroup { .. }));
    // A restart: the group's record alone (as an older sluice wrote it)
    // brings the group back, empty, a consumer group at its epoch (with
    // its offsets, once replayed too).
    let mut c = coordinator(0);
    c.apply(offset_record(5), 0);
    c.apply(record.clone(), 0);
    let listed = c.list();
    let g = listed.iter().find(|g| g.group_id == "g").expect("listed");
    assert_eq!((g.group_type, g.state.as_str()), ("consumer", "Empty"));
    assert_eq!(c.consumer_group_epoch("g"), Some(joined.member_epoch));
    assert!(c.live_records(|_| true).contains(&record));
    // Deleting it deletes its record too.
    let tombstones = c.deletion("g").expect("an empty group can be deleted");
    assert!(tombstones.contains(&OffsetsRecord::ConsumerGroup {
        group: "g".into(),
        value: None
    }));
    for t in tombstones {
        c.apply(t, 10);
    }
    assert_eq!(c.consumer_group_epoch("g"), None);
    // Without offsets, replayed, a tick drops it and owes its tombstone.
    let mut c = coordinator(0);
    c.apply(record, 0);
    assert!(c.take_dropped_consumer_groups().is_empty());
    c.tick(20);
    assert_eq!(c.consumer_group_epoch("g"), None);
    assert_eq!(
        c.take_dropped_consumer_groups(),
        [OffsetsRecord::ConsumerGroup {
            group: "g".into(),
            value: None
        }]
    );
}

#[test]
fn a_share_group_comes_back_empty_at_its_epoch_from_its_record_until_deleted() {
    use crate::group::share::ShareHeartbeatRequest;
    let mut c = coordinator(0);
    let joined = c.share_heartbeat(
        ShareHeartbeatRequest {
            group_id: "s".into(),
            member_id: "m".into(),
            member_epoch: 0,
            subscribed_topics: Some(vec!["t".into()]),
            ..ShareHeartbeatRequest::default()
        },
        &topic_t(),
        0,
    );
    assert_eq!(joined.error, ErrorCode::None);
    let records = c.share_group_records("s").expect("a share group");
    // Its metadata record alone (as an older sluice wrote it).
    let record = records[0].clone();
    assert!(matches!(record, OffsetsRecord::ShareGroup { .. }));
    assert_eq!(c.share_group_epoch("s"), Some(joined.member_epoch));
    assert_eq!(c.deletion("s"), Err(ErrorCode::NonEmptyGroup));
    // A restart: a new coordinator replays the record.
    let mut c = coordinator(0);
    assert!(c.describe_share_group("s").is_err());
    c.apply(record, 10);
    let described = c.describe_share_group("s").expect("the group is back");
    assert_eq!(
        (
            described.state,
            described.group_epoch,
            described.members.len()
        ),
        ("Empty", joined.member_epoch, 0)
    );
    // A record of an older epoch (replayed later) does not move it back.
    c.apply(
        OffsetsRecord::ShareGroup {
            group: "s".into(),
            value: Some(ShareGroupSnapshot { epoch: 0 }),
        },
        20,
    );
    assert_eq!(c.share_group_epoch("s"), Some(joined.member_epoch));
    // Empty, it may be deleted: by its tombstone.
    let tombstones = c
        .deletion("s")
        .expect("an empty share group can be deleted");
    assert_eq!(
        tombstones,
        [OffsetsRecord::ShareGroup {
            group: "s".into(),
            value: None
        }]
    );
    for t in tombstones {
        c.apply(t, 30);
    }
    assert_eq!(c.share_group_epoch("s"), None);
}

#[test]
fn an_empty_kip848_group_with_offsets_stays_a_consumer_group_until_deleted() {
    use crate::group::consumer::HeartbeatRequest;
    let mut c = coordinator(0);
    c.apply(offset_record(5), 0);
    let request = |epoch: i32| HeartbeatRequest {
        group_id: "g".into(),
        member_id: "m".into(),
        member_epoch: epoch,
        subscribed_topics: (epoch == 0).then(|| vec!["t".into()]),
        ..HeartbeatRequest::default()
    };
    assert_eq!(
        c.consumer_heartbeat(request(0), &topic_t(), 0).error,
        ErrorCode::None
    );
    // The member leaves: the group is empty, and still a consumer group.
    c.consumer_heartbeat(request(-1), &topic_t(), 10);
    c.tick(20);
    let listed = c.list();
    let g = listed.iter().find(|g| g.group_id == "g").expect("listed");
    assert_eq!((g.group_type, g.state.as_str()), ("consumer", "Empty"));
    // Empty, it may be deleted; once its records are applied it is gone.
    let tombstones = c.deletion("g").expect("an empty group can be deleted");
    for t in tombstones {
        c.apply(t, 30);
    }
    c.tick(40);
    assert!(c.list().iter().all(|g| g.group_id != "g"), "{:?}", c.list());
}

#[test]
fn the_next_deadline_is_exactly_when_a_tick_has_work() {
    let mut c = coordinator(3000);
    assert_eq!(c.next_deadline_ms(), None, "no group, no timer");
    // The first join waits out the initial rebalance delay.
    let (a, replies) = first_join(&mut c, "a", 1, 1000);
    assert!(replies.is_empty());
    assert_eq!(c.next_deadline_ms(), Some(4000));
    assert!(
        c.tick(3999).is_empty(),
        "nothing is due before the deadline"
    );
    let r = join_reply(&c.tick(4000), 1);
    assert_eq!((r.error, r.generation), (ErrorCode::None, 1));
    // Completing: the member waits for its sync, no session runs yet.
    let mut req = sync_req(&a, 1);
    req.assignments = vec![(a.clone(), Bytes::from_static(b"all"))];
    assert!(c.sync(req, 2, 4100).is_empty());
    persist(&mut c, 4100);
    // Stable: the session, from the last time the member was heard.
    assert_eq!(c.heartbeat("g", &a, None, 1, 5000), ErrorCode::None);
    let session_end = 5000 + i64::from(SESSION_MS);
    assert_eq!(c.next_deadline_ms(), Some(session_end));
    assert!(c.tick(session_end - 1).is_empty());
    assert_eq!(c.group("g").map(|g| g.members().count()), Some(1));
    c.tick(session_end);
    assert_eq!(
        c.group("g").map(|g| g.members().count()).unwrap_or(0),
        0,
        "the session expires at its deadline"
    );
}

#[test]
fn a_kip848_group_comes_back_with_its_members_where_they_were() {
    use crate::group::consumer::HeartbeatRequest;
    let topics = crate::group::topics::TopicTable::of(&[("t", [1; 16], 4)]);
    let request = |member: &str, epoch: i32, owned: Option<Vec<(i32, i32)>>| HeartbeatRequest {
        group_id: "g".into(),
        member_id: member.into(),
        member_epoch: epoch,
        subscribed_topics: (epoch == 0).then(|| vec!["t".into()]),
        owned: owned.map(|o| o.into_iter().map(|(_, p)| ([1; 16], p)).collect()),
        ..HeartbeatRequest::default()
    };
    let mut c = coordinator(0);
    let a = c.consumer_heartbeat(request("a", 0, Some(vec![])), &topics, 0);
    let b = c.consumer_heartbeat(request("b", 0, Some(vec![])), &topics, 0);
    // a is told to give up two partitions, and has not yet.
    let a = c.consumer_heartbeat(request("a", a.member_epoch, None), &topics, 1);
    assert_eq!(a.assignment.as_ref().map(Vec::len), Some(2));
    let described = c.describe_consumer_group("g").expect("a group");
    let records = c.consumer_group_records("g").expect("a group");
    // A restart replays the records (after an offset of the group's).
    let mut restarted = coordinator(0);
    restarted.apply(offset_record(5), 100);
    for r in records.clone() {
        restarted.apply(r, 100);
    }
    assert_eq!(restarted.describe_consumer_group("g"), Ok(described));
    assert_eq!(restarted.consumer_group_records("g"), Some(records));
    // a carries on at its epoch: its whole assignment is given again, and
    // b does not get a's partitions before a gives them up.
    let again = restarted.consumer_heartbeat(request("a", a.member_epoch, None), &topics, 200);
    assert_eq!(
        (
            again.error,
            again.member_epoch,
            again.assignment.map(|p| p.len())
        ),
        (ErrorCode::None, a.member_epoch, Some(2))
    );
    let b_again = restarted.consumer_heartbeat(request("b", b.member_epoch, None), &topics, 200);
    assert_eq!(b_again.error, ErrorCode::None);
    assert!(b_again.assignment.unwrap_or_default().is_empty());
    // Their sessions start again at the load: they expire a session after it.
    restarted.tick(100 + i64::from(GroupConfig::default().consumer_session_timeout_ms) - 1);
    assert!(restarted.consumer_group_epoch("g").is_some());
    let member_count = |c: &GroupCoordinator| {
        c.describe_consumer_group("g")
            .map(|d| d.members.len())
            .unwrap_or(0)
    };
    assert_eq!(member_count(&restarted), 2);
    // A member's tombstones take it away.
    for r in c.consumer_group_records("g").expect("a group") {
        let gone = match &r {
            OffsetsRecord::Member { member, .. }
            | OffsetsRecord::Target { member, .. }
            | OffsetsRecord::Assignment { member, .. } => member == "b",
            _ => false,
        };
        if gone {
            restarted.apply(r.tombstone(), 300);
        }
    }
    assert_eq!(member_count(&restarted), 1);
}

#[test]
fn a_share_group_comes_back_with_its_members_at_their_epochs() {
    use crate::group::share::ShareHeartbeatRequest;
    let request = |member: &str, epoch: i32| ShareHeartbeatRequest {
        group_id: "s".into(),
        member_id: member.into(),
        member_epoch: epoch,
        subscribed_topics: (epoch == 0).then(|| vec!["t".into()]),
        ..ShareHeartbeatRequest::default()
    };
    let mut c = coordinator(0);
    c.share_heartbeat(request("a", 0), &topic_t(), 0);
    let b = c.share_heartbeat(request("b", 0), &topic_t(), 0);
    let described = c.describe_share_group("s").expect("a group");
    let records = c.share_group_records("s").expect("a group");
    let mut restarted = coordinator(0);
    for r in records.clone() {
        restarted.apply(r, 100);
    }
    assert_eq!(restarted.describe_share_group("s"), Ok(described));
    assert_eq!(restarted.share_group_records("s"), Some(records));
    // b carries on at its epoch, its assignment given whole again.
    let again = restarted.share_heartbeat(request("b", b.member_epoch), &topic_t(), 200);
    assert_eq!(
        (again.error, again.member_epoch),
        (ErrorCode::None, b.member_epoch)
    );
    assert!(again.assignment.is_some());
}

/// [`GroupCoordinator::check_commit`] of a commit that names no partition.
fn check_commit(
    c: &mut GroupCoordinator,
    group_id: &str,
    member_id: &str,
    instance_id: Option<&str>,
    generation: i32,
    now_ms: i64,
    unknown_group_error: ErrorCode,
) -> ErrorCode {
    let claim = CommitClaim {
        group_id,
        member_id,
        instance_id,
        generation,
        partitions: &[],
    };
    c.check_commit(claim, &TopicTable::default(), now_ms, unknown_group_error)
}
