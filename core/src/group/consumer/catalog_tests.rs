//! A KIP-848 group and the catalog: topics created, grown and deleted
//! after members subscribed, and subscriptions by pattern.

use super::*;
use crate::group::topics::TopicTable;

const A: [u8; 16] = [1; 16];
const B: [u8; 16] = [2; 16];
const CONFIG: ConsumerGroupConfig = ConsumerGroupConfig {
    session_timeout_ms: 45_000,
    heartbeat_interval_ms: 5_000,
};

/// A heartbeat of `id` at `epoch` owning `owned`; a join (epoch 0)
/// subscribes to `names` and `pattern`.
fn request(
    id: &str,
    epoch: i32,
    names: &[&str],
    pattern: Option<&str>,
    owned: &[TopicPartition],
) -> HeartbeatRequest {
    let joining = epoch == 0;
    HeartbeatRequest {
        group_id: "g".into(),
        member_id: id.into(),
        member_epoch: epoch,
        subscribed_topics: joining.then(|| names.iter().map(|n| n.to_string()).collect()),
        subscribed_regex: pattern.map(str::to_owned),
        owned: Some(owned.to_vec()),
        ..HeartbeatRequest::default()
    }
}

fn beat(g: &mut ConsumerGroup, catalog: &TopicTable, r: HeartbeatRequest) -> HeartbeatResponse {
    g.heartbeat(r, catalog, 1, CONFIG)
}

fn sorted(r: &HeartbeatResponse) -> Vec<TopicPartition> {
    let mut a = r.assignment.clone().expect("an assignment");
    a.sort();
    a
}

#[test]
fn a_topic_created_after_the_subscription_is_assigned_at_the_next_heartbeat() {
    let mut catalog = TopicTable::default();
    let mut g = ConsumerGroup::default();
    let joined = beat(&mut g, &catalog, request("m", 0, &["a"], None, &[]));
    assert_eq!((joined.member_epoch, sorted(&joined)), (2, vec![]));
    let same = beat(&mut g, &catalog, request("m", 2, &[], None, &[]));
    assert_eq!((same.member_epoch, same.assignment), (2, None));
    catalog.set(
        "a",
        TopicInfo {
            id: A,
            partitions: 2,
        },
    );
    let created = beat(&mut g, &catalog, request("m", 2, &[], None, &[]));
    assert_eq!(created.member_epoch, 3, "a new group epoch");
    assert_eq!(sorted(&created), [(A, 0), (A, 1)]);
    assert_eq!(g.describe().group_epoch, 3);
}

#[test]
fn partitions_added_go_to_members_and_a_deleted_topic_is_taken_back() {
    let mut catalog = TopicTable::of(&[("a", A, 1), ("b", B, 1)]);
    let mut g = ConsumerGroup::default();
    let joined = beat(&mut g, &catalog, request("m", 0, &["a", "b"], None, &[]));
    assert_eq!(sorted(&joined), [(A, 0), (B, 0)]);
    let owned = [(A, 0), (B, 0)];
    catalog.set(
        "a",
        TopicInfo {
            id: A,
            partitions: 3,
        },
    );
    let grown = beat(&mut g, &catalog, request("m", 2, &[], None, &owned));
    assert_eq!(grown.member_epoch, 3);
    assert_eq!(sorted(&grown), [(A, 0), (A, 1), (A, 2), (B, 0)]);
    let owned = [(A, 0), (A, 1), (A, 2), (B, 0)];
    // Something else changing in the catalog moves nothing.
    catalog.set(
        "other",
        TopicInfo {
            id: [9; 16],
            partitions: 1,
        },
    );
    let same = beat(&mut g, &catalog, request("m", 3, &[], None, &owned));
    assert_eq!((same.member_epoch, same.assignment), (3, None));
    catalog.remove("b");
    let deleted = beat(&mut g, &catalog, request("m", 3, &[], None, &owned));
    assert_eq!(deleted.member_epoch, 3, "until it reports giving it up");
    assert_eq!(sorted(&deleted), [(A, 0), (A, 1), (A, 2)]);
    let gave_up = beat(&mut g, &catalog, request("m", 3, &[], None, &owned[..3]));
    assert_eq!((gave_up.member_epoch, gave_up.error), (4, ErrorCode::None));
}

#[test]
fn a_pattern_subscribes_to_every_topic_it_matches_now_and_later() {
    let mut catalog = TopicTable::of(&[("orders-eu", A, 1), ("payments", B, 1)]);
    let mut g = ConsumerGroup::default();
    let joined = beat(
        &mut g,
        &catalog,
        request("m", 0, &[], Some("orders-.*"), &[]),
    );
    assert_eq!(
        (joined.error, sorted(&joined)),
        (ErrorCode::None, vec![(A, 0)])
    );
    let owned = [(A, 0)];
    let us = [3; 16];
    catalog.set(
        "orders-us",
        TopicInfo {
            id: us,
            partitions: 1,
        },
    );
    let created = beat(&mut g, &catalog, request("m", 2, &[], None, &owned));
    assert_eq!(
        (created.member_epoch, sorted(&created)),
        (3, vec![(A, 0), (us, 0)])
    );
    // ConsumerGroupDescribe shows the pattern, and the names alone.
    let described = &g.describe().members[0];
    assert_eq!(described.subscribed_regex, "orders-.*");
    assert!(described.subscribed_topics.is_empty());
    assert_eq!(g.subscribed_topics(), ["orders-eu", "orders-us"]);
    // Another pattern: what it no longer matches is taken back.
    let owned = [(A, 0), (us, 0)];
    let moved = beat(
        &mut g,
        &catalog,
        request("m", 3, &[], Some("pay.*"), &owned),
    );
    assert_eq!(sorted(&moved), []);
    let moved = beat(&mut g, &catalog, request("m", 3, &[], None, &[]));
    assert_eq!((moved.member_epoch, sorted(&moved)), (4, vec![(B, 0)]));
    // The empty pattern: none at all.
    let none = beat(&mut g, &catalog, request("m", 4, &[], Some(""), &[(B, 0)]));
    assert_eq!(sorted(&none), []);
    assert_eq!(g.describe().members[0].subscribed_regex, "");
}

#[test]
fn a_member_without_a_pattern_is_written_with_kafkas_empty_one_and_loads_without() {
    let catalog = TopicTable::of(&[("a", A, 1)]);
    let mut g = ConsumerGroup::default();
    let joined = beat(&mut g, &catalog, request("m", 0, &["a"], Some(""), &[]));
    let metadata = g.records("g", None).into_iter().find_map(|r| match r {
        OffsetsRecord::Member { value, .. } => value,
        _ => None,
    });
    assert_eq!(
        metadata.and_then(|m| m.subscribed_regex).as_deref(),
        Some(""),
        "Kafka's record holds an empty pattern, not a null one"
    );
    let mut again = reloaded(&g);
    assert_eq!(again.describe().members[0].subscribed_regex, "");
    // Its next heartbeat, sending the empty pattern again, changes nothing.
    let same = beat(
        &mut again,
        &catalog,
        request("m", 2, &[], Some(""), &sorted(&joined)),
    );
    assert_eq!((same.error, same.member_epoch), (ErrorCode::None, 2));
    assert_eq!(again.group_epoch, 2);
}

#[test]
fn names_and_a_pattern_together_subscribe_to_both() {
    let catalog = TopicTable::of(&[("a", A, 1), ("b", B, 1)]);
    let mut g = ConsumerGroup::default();
    let joined = beat(&mut g, &catalog, request("m", 0, &["a"], Some("b"), &[]));
    assert_eq!(sorted(&joined), [(A, 0), (B, 0)]);
}

#[test]
fn a_pattern_that_does_not_compile_is_refused_and_changes_nothing() {
    let catalog = TopicTable::of(&[("a", A, 1)]);
    let mut g = ConsumerGroup::default();
    let refused = beat(&mut g, &catalog, request("m", 0, &[], Some("a["), &[]));
    assert_eq!(refused.error, ErrorCode::InvalidRegularExpression);
    assert_eq!(
        refused.message.as_deref(),
        Some("SubscribedTopicRegex `a[` is not a valid regular expression: missing closing ].")
    );
    assert!(g.is_empty());
    assert_eq!(g.group_epoch, 1);
    // A join with a pattern alone is a subscription.
    let joined = beat(&mut g, &catalog, request("m", 0, &[], Some("a"), &[]));
    assert_eq!(joined.error, ErrorCode::None);
}

fn reloaded(g: &ConsumerGroup) -> ConsumerGroup {
    super::reload::reloaded(g, CONFIG.session_timeout_ms)
}

#[test]
fn after_a_load_the_catalog_is_compared_with_what_the_target_covers() {
    let mut catalog = TopicTable::of(&[("a", A, 2), ("orders-1", B, 1)]);
    let mut g = ConsumerGroup::default();
    let joined = beat(
        &mut g,
        &catalog,
        request("m", 0, &["a"], Some("orders-.*"), &[]),
    );
    let owned = sorted(&joined);
    assert_eq!(owned, [(A, 0), (A, 1), (B, 0)]);
    // Loaded as it was: the same epoch, nothing moves.
    let mut again = reloaded(&g);
    let same = beat(&mut again, &catalog, request("m", 2, &[], None, &owned));
    assert_eq!((same.error, same.member_epoch), (ErrorCode::None, 2));
    assert_eq!(sorted(&same), owned, "a load's first answer is whole");
    // The catalog moved while the group was away: a new epoch at once.
    let mut again = reloaded(&g);
    let c = [3; 16];
    catalog.set(
        "orders-2",
        TopicInfo {
            id: c,
            partitions: 1,
        },
    );
    let moved = beat(&mut again, &catalog, request("m", 2, &[], None, &owned));
    assert_eq!(moved.member_epoch, 3);
    assert_eq!(sorted(&moved), [(A, 0), (A, 1), (B, 0), (c, 0)]);
}
