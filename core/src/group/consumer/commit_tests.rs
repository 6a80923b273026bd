//! A KIP-848 member's offset commits under its epoch and under older ones
//! (the partitions' assignment epochs), across a reload of the group's
//! records, and its offset fetches (at its epoch only).

use super::*;
use crate::group::topics::TopicTable;

const T: [u8; 16] = [7; 16];
const U: [u8; 16] = [8; 16];
const CONFIG: ConsumerGroupConfig = ConsumerGroupConfig {
    session_timeout_ms: 45_000,
    heartbeat_interval_ms: 5_000,
};

/// "t" of four partitions, "u" of two.
fn topics() -> TopicTable {
    TopicTable::of(&[("t", T, 4), ("u", U, 2)])
}

/// A heartbeat of `id` at `epoch`; a join (epoch 0) subscribes to "t".
fn beat(g: &mut ConsumerGroup, id: &str, epoch: i32, owned: &[i32]) -> HeartbeatResponse {
    let request = HeartbeatRequest {
        group_id: "g".into(),
        member_id: id.into(),
        member_epoch: epoch,
        subscribed_topics: (epoch == 0).then(|| vec!["t".into()]),
        owned: Some(owned.iter().map(|p| (T, *p)).collect()),
        ..HeartbeatRequest::default()
    };
    g.heartbeat(request, &topics(), 1, CONFIG)
}

/// `id`'s commit at `epoch` of partitions of "t".
fn commit(g: &ConsumerGroup, id: &str, epoch: i32, partitions: &[i32]) -> ErrorCode {
    let partitions: Vec<(&str, i32)> = partitions.iter().map(|p| ("t", *p)).collect();
    g.check_commit(id, epoch, &partitions, &topics())
}

fn reloaded(g: &ConsumerGroup) -> ConsumerGroup {
    super::reload::reloaded(g, CONFIG.session_timeout_ms)
}

#[test]
fn an_older_epoch_commits_only_what_the_member_held_since() {
    let mut g = ConsumerGroup::default();
    assert_eq!(beat(&mut g, "a", 0, &[]).member_epoch, 2);
    // b joins: a is to give up 2 and 3, and stays at epoch 2 meanwhile.
    assert_eq!(beat(&mut g, "b", 0, &[]).member_epoch, 3);
    assert_eq!(beat(&mut g, "a", 2, &[0, 1, 2, 3]).member_epoch, 2);
    assert_eq!(commit(&g, "a", 2, &[0, 1, 2, 3]), ErrorCode::None);
    // a gave them up: it moves to epoch 3 and keeps 0 and 1, given at 2.
    assert_eq!(beat(&mut g, "a", 2, &[0, 1]).member_epoch, 3);
    assert_eq!(beat(&mut g, "b", 3, &[]).member_epoch, 3);
    for g in [&g, &reloaded(&g)] {
        assert_eq!(
            commit(g, "a", 3, &[0, 1, 2, 3]),
            ErrorCode::None,
            "its epoch"
        );
        assert_eq!(commit(g, "a", 2, &[0, 1]), ErrorCode::None, "held since 2");
        assert_eq!(
            commit(g, "a", 2, &[1, 2]),
            ErrorCode::StaleMemberEpoch,
            "2 is b's now: the whole commit is refused"
        );
        assert_eq!(commit(g, "a", 0, &[0]), ErrorCode::StaleMemberEpoch);
        assert_eq!(commit(g, "a", 4, &[0]), ErrorCode::StaleMemberEpoch);
        // b was given 2 and 3 at epoch 3.
        assert_eq!(commit(g, "b", 3, &[2, 3]), ErrorCode::None);
        assert_eq!(commit(g, "b", 2, &[2]), ErrorCode::StaleMemberEpoch);
        assert_eq!(
            g.check_commit("a", 2, &[("missing", 0)], &topics()),
            ErrorCode::StaleMemberEpoch
        );
        assert_eq!(commit(g, "c", 3, &[0]), ErrorCode::UnknownMemberId);
        assert_eq!(commit(g, "", -1, &[0]), ErrorCode::UnknownMemberId);
    }
}

#[test]
fn partitions_being_given_up_keep_their_epoch_and_an_empty_group_takes_any_commit() {
    let mut g = ConsumerGroup::default();
    beat(&mut g, "a", 0, &[]);
    beat(&mut g, "b", 0, &[]);
    let kept = beat(&mut g, "a", 2, &[0, 1, 2, 3])
        .assignment
        .expect("a's share");
    let kept: Vec<i32> = kept.iter().map(|(_, p)| *p).collect();
    assert_eq!(beat(&mut g, "a", 2, &kept).member_epoch, 3);
    // a moves to "u": everything it holds of "t" (given at epoch 2) is to
    // be given up, and it stays at epoch 3 until it is.
    let moved = g.heartbeat(
        HeartbeatRequest {
            group_id: "g".into(),
            member_id: "a".into(),
            member_epoch: 2,
            subscribed_topics: Some(vec!["u".into()]),
            owned: Some(kept.iter().map(|p| (T, *p)).collect()),
            ..HeartbeatRequest::default()
        },
        &topics(),
        1,
        CONFIG,
    );
    assert_eq!((moved.member_epoch, moved.assignment), (3, Some(vec![])));
    for g in [&g, &reloaded(&g)] {
        assert_eq!(commit(g, "a", 2, &kept), ErrorCode::None, "given at 2");
        assert_eq!(commit(g, "a", 0, &kept), ErrorCode::StaleMemberEpoch);
    }
    // With every member gone, any client may commit without an epoch.
    for id in ["a", "b"] {
        let left = g.heartbeat(
            HeartbeatRequest {
                group_id: "g".into(),
                member_id: id.into(),
                member_epoch: -1,
                ..HeartbeatRequest::default()
            },
            &topics(),
            1,
            CONFIG,
        );
        assert_eq!(left.error, ErrorCode::None);
    }
    assert_eq!(commit(&g, "", -1, &[0]), ErrorCode::None);
    assert_eq!(commit(&g, "someone", -1, &[0]), ErrorCode::None);
}

#[test]
fn a_member_fetches_offsets_at_its_epoch_only() {
    let mut g = ConsumerGroup::default();
    let epoch = beat(&mut g, "a", 0, &[]).member_epoch;
    assert_eq!(g.check_fetch(Some("a"), epoch), ErrorCode::None);
    for other in [epoch + 1, epoch - 1, -1] {
        assert_eq!(g.check_fetch(Some("a"), other), ErrorCode::StaleMemberEpoch);
    }
    assert_eq!(g.check_fetch(Some("b"), epoch), ErrorCode::UnknownMemberId);
    assert_eq!(g.check_fetch(Some(""), -1), ErrorCode::UnknownMemberId);
    assert_eq!(g.check_fetch(None, epoch), ErrorCode::UnknownMemberId);
    // Asking as no one (an admin, a client before v9) is always allowed.
    assert_eq!(g.check_fetch(None, -1), ErrorCode::None);
}
