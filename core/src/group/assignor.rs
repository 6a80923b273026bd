//! The server-side assignors of KIP-848 consumer groups, by Kafka's names:
//! `uniform` (the default) and `range`. A member names one in its
//! heartbeat (`group.remote.assignor`); the group runs the one most of its
//! members name.
//!
//! Owns: computing a group's target assignment from its members'
//! subscriptions and their previous targets. Pure: no I/O, no clock.
//!
//! Invariants (checked by the tests below and, cheaply, by a
//! `debug_assert` on every result): every partition of a subscribed topic
//! goes to exactly one member, and that member is subscribed to its topic.
//! - `uniform`: members whose subscriptions are the same end within one
//!   partition of each other, counting every topic; a member keeps the
//!   partitions of its previous target except those that move to restore
//!   that balance. Different subscriptions are balanced topic by topic,
//!   as nearly as a bounded number of passes gets them.
//! - `range`: each topic's subscribers, static members first in the order
//!   of their instance ids and then the others in the order of their
//!   member ids, take consecutive ranges of its partitions, the first ones
//!   one partition more. Topics with the same partition count and the same
//!   subscribers are so assigned alike (co-partitioned), which joins need.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use super::consumer::{TopicInfo, TopicPartition};

/// The assignors a member may name, in Kafka's default order of
/// `group.consumer.assignors`: the first is the default.
pub const SUPPORTED: [ServerAssignor; 2] = [ServerAssignor::Uniform, ServerAssignor::Range];

/// How many passes `uniform` makes over the topics to balance members
/// whose subscriptions differ (Kafka bounds it alike); one pass balances
/// members whose subscriptions are the same, and one more finds nothing
/// left to move.
const BALANCE_PASSES: usize = 16;

/// One of the server-side assignors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ServerAssignor {
    /// Balanced over all the topics a member subscribes to, sticky.
    Uniform,
    /// Consecutive ranges of each topic, co-partitioned.
    Range,
}

impl ServerAssignor {
    /// Kafka's name for it.
    pub fn name(self) -> &'static str {
        match self {
            ServerAssignor::Uniform => "uniform",
            ServerAssignor::Range => "range",
        }
    }

    /// The assignor named `name`, if it is one of [`SUPPORTED`].
    pub fn from_name(name: &str) -> Option<ServerAssignor> {
        SUPPORTED.into_iter().find(|a| a.name() == name)
    }

    /// Kafka's message refusing an assignor it does not have.
    pub fn unsupported_message(name: &str) -> String {
        let names: Vec<&str> = SUPPORTED.iter().map(|a| a.name()).collect();
        format!(
            "ServerAssignor {name} is not supported. Supported assignors: {}.",
            names.join(", ")
        )
    }

    /// The assignor a group runs: the one most of its members name (ties go
    /// to the earlier of [`SUPPORTED`]), or the default when none names one.
    pub fn preferred(named: impl IntoIterator<Item = Option<ServerAssignor>>) -> ServerAssignor {
        let mut counts = [0usize; SUPPORTED.len()];
        for a in named.into_iter().flatten() {
            counts[SUPPORTED.iter().position(|s| *s == a).unwrap_or(0)] += 1;
        }
        let mut best = 0;
        for (i, &c) in counts.iter().enumerate() {
            if c > counts[best] {
                best = i;
            }
        }
        SUPPORTED[best]
    }
}

/// What the assignor knows of one member.
#[derive(Debug, Clone, Copy)]
pub struct AssignorMember<'a> {
    pub id: &'a str,
    pub instance_id: Option<&'a str>,
    pub subscribed: &'a BTreeSet<String>,
    /// Its part of the previous target assignment.
    pub previous: &'a BTreeSet<TopicPartition>,
}

/// A group's target assignment: each member's partitions (every member has
/// an entry, perhaps empty).
pub type Target = BTreeMap<String, BTreeSet<TopicPartition>>;

/// One subscribed topic as the assignors see it.
struct Topic<'a> {
    name: &'a str,
    info: TopicInfo,
    /// Indexes of its subscribers into the members, ascending.
    subscribers: Vec<usize>,
}

/// The target assignment of `members` by `assignor`; `topics` resolves a
/// subscribed name (a name it does not know is left out).
pub fn assign(
    assignor: ServerAssignor,
    members: &[AssignorMember<'_>],
    topics: &dyn Fn(&str) -> Option<TopicInfo>,
) -> Target {
    let subscribed = subscribed_topics(members, topics);
    let owners = match assignor {
        ServerAssignor::Uniform => uniform(members, &subscribed),
        ServerAssignor::Range => range(members, &subscribed),
    };
    let mut by_member: Vec<BTreeSet<TopicPartition>> = vec![BTreeSet::new(); members.len()];
    for (topic, owners) in subscribed.iter().zip(&owners) {
        debug_assert_eq!(owners.len(), topic.info.partitions as usize);
        for (p, &owner) in owners.iter().enumerate() {
            debug_assert!(
                topic.subscribers.contains(&owner),
                "assigned to a subscriber"
            );
            by_member[owner].insert((topic.info.id, p as i32));
        }
    }
    members
        .iter()
        .map(|m| m.id.to_owned())
        .zip(by_member)
        .collect()
}

/// Every topic some member subscribes to and `topics` knows, with at least
/// one partition, by name.
fn subscribed_topics<'a>(
    members: &'a [AssignorMember<'a>],
    topics: &dyn Fn(&str) -> Option<TopicInfo>,
) -> Vec<Topic<'a>> {
    let mut by_name: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, m) in members.iter().enumerate() {
        for name in m.subscribed {
            by_name.entry(name.as_str()).or_default().push(i);
        }
    }
    by_name
        .into_iter()
        .filter_map(|(name, subscribers)| {
            let info = topics(name).filter(|info| info.partitions > 0)?;
            Some(Topic {
                name,
                info,
                subscribers,
            })
        })
        .collect()
}

/// `range`: each topic's partitions in consecutive ranges over its
/// subscribers in [`range_order`]. Returns each topic's owner of each
/// partition (an index into `members`).
fn range(members: &[AssignorMember<'_>], topics: &[Topic<'_>]) -> Vec<Vec<usize>> {
    let order = range_order(members);
    let mut rank = vec![0usize; members.len()];
    for (r, &i) in order.iter().enumerate() {
        rank[i] = r;
    }
    topics
        .iter()
        .map(|topic| {
            let mut subscribers = topic.subscribers.clone();
            subscribers.sort_by_key(|&i| rank[i]);
            let total = topic.info.partitions as usize;
            let n = subscribers.len();
            let mut owners = Vec::with_capacity(total);
            for (k, &member) in subscribers.iter().enumerate() {
                let quota = total / n + usize::from(k < total % n);
                owners.extend(std::iter::repeat_n(member, quota));
            }
            owners
        })
        .collect()
}

/// Static members first, by instance id; then the others, by member id.
fn range_order(members: &[AssignorMember<'_>]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..members.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&members[a], &members[b]);
        match (a.instance_id, b.instance_id) {
            (Some(x), Some(y)) => x.cmp(y),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => a.id.cmp(b.id),
        }
    });
    order
}

/// `uniform`: members keep what their previous target gave them of the
/// topics they still subscribe to; the partitions no one keeps go, topic
/// by topic, each to the subscriber holding the fewest partitions; then
/// partitions move from the most to the least loaded subscriber of each
/// topic until its subscribers are within one partition of each other.
fn uniform(members: &[AssignorMember<'_>], topics: &[Topic<'_>]) -> Vec<Vec<usize>> {
    let mut load = vec![0usize; members.len()];
    let mut owners: Vec<Vec<Option<usize>>> = topics
        .iter()
        .map(|t| vec![None; t.info.partitions as usize])
        .collect();
    let by_id: BTreeMap<[u8; 16], usize> = topics
        .iter()
        .enumerate()
        .map(|(i, t)| (t.info.id, i))
        .collect();
    for (m, member) in members.iter().enumerate() {
        for &(id, p) in member.previous {
            let Some(&t) = by_id.get(&id) else { continue };
            let topic = &topics[t];
            if !member.subscribed.contains(topic.name) {
                continue;
            }
            match owners[t].get_mut(p as usize) {
                Some(slot @ None) if p >= 0 => {
                    *slot = Some(m);
                    load[m] += 1;
                }
                _ => {}
            }
        }
    }
    // The topics with the most partitions per subscriber first: the later
    // ones then even out what the earlier left uneven.
    let mut order: Vec<usize> = (0..topics.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&topics[a], &topics[b]);
        let per_a = a.info.partitions as u64 * b.subscribers.len() as u64;
        let per_b = b.info.partitions as u64 * a.subscribers.len() as u64;
        per_b
            .cmp(&per_a)
            .then(a.subscribers.len().cmp(&b.subscribers.len()))
            .then(a.name.cmp(b.name))
    });
    for &t in &order {
        let mut least: BinaryHeap<Reverse<(usize, usize)>> = topics[t]
            .subscribers
            .iter()
            .map(|&m| Reverse((load[m], m)))
            .collect();
        for slot in owners[t].iter_mut().filter(|slot| slot.is_none()) {
            // A subscribed topic has a subscriber: the heap is never empty.
            let Some(Reverse((_, m))) = least.pop() else {
                break;
            };
            *slot = Some(m);
            load[m] += 1;
            least.push(Reverse((load[m], m)));
        }
    }
    // Every slot is filled above; one that were not would go to the
    // topic's first subscriber, never shift the partitions after it.
    let mut owners: Vec<Vec<usize>> = owners
        .into_iter()
        .zip(topics)
        .map(|(slots, topic)| {
            slots
                .into_iter()
                .map(|slot| slot.unwrap_or(topic.subscribers[0]))
                .collect()
        })
        .collect();
    for _ in 0..BALANCE_PASSES {
        let mut moved = false;
        for &t in &order {
            moved |= balance_topic(&topics[t], &mut owners[t], &mut load);
        }
        if !moved {
            break;
        }
    }
    owners
}

/// Moves `topic`'s partitions from its most loaded subscriber that holds
/// one to its least loaded subscriber while they differ by more than one;
/// true if any moved. The highest partition a member holds moves first.
fn balance_topic(topic: &Topic<'_>, owners: &mut [usize], load: &mut [usize]) -> bool {
    if topic.subscribers.len() < 2 {
        return false;
    }
    let mut held: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (p, &m) in owners.iter().enumerate() {
        held.entry(m).or_default().push(p);
    }
    let mut by_load: BTreeSet<(usize, usize)> =
        topic.subscribers.iter().map(|&m| (load[m], m)).collect();
    let mut moved = false;
    while let Some(&(least_load, least)) = by_load.first() {
        let most = by_load
            .iter()
            .rev()
            .find(|(_, m)| held.get(m).is_some_and(|ps| !ps.is_empty()))
            .copied();
        let Some((most_load, most)) = most else { break };
        if most_load <= least_load + 1 {
            break;
        }
        let Some(p) = held.get_mut(&most).and_then(Vec::pop) else {
            break;
        };
        owners[p] = least;
        held.entry(least).or_default().push(p);
        by_load.remove(&(most_load, most));
        by_load.remove(&(least_load, least));
        load[most] -= 1;
        load[least] += 1;
        by_load.insert((load[most], most));
        by_load.insert((load[least], least));
        moved = true;
    }
    moved
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> [u8; 16] {
        [n; 16]
    }

    /// Topics named `t<N>` with `partitions[N]` partitions each.
    fn catalog(partitions: &[i32]) -> impl Fn(&str) -> Option<TopicInfo> + '_ {
        move |name: &str| {
            let n: usize = name.strip_prefix('t')?.parse().ok()?;
            Some(TopicInfo {
                id: id(n as u8 + 1),
                partitions: *partitions.get(n)?,
            })
        }
    }

    struct Owned {
        id: String,
        instance_id: Option<String>,
        subscribed: BTreeSet<String>,
        previous: BTreeSet<TopicPartition>,
    }

    fn member(name: &str, topics: &[&str]) -> Owned {
        Owned {
            id: name.into(),
            instance_id: None,
            subscribed: topics.iter().map(|t| t.to_string()).collect(),
            previous: BTreeSet::new(),
        }
    }

    fn run(
        assignor: ServerAssignor,
        members: &[Owned],
        topics: &dyn Fn(&str) -> Option<TopicInfo>,
    ) -> Target {
        let view: Vec<AssignorMember<'_>> = members
            .iter()
            .map(|m| AssignorMember {
                id: &m.id,
                instance_id: m.instance_id.as_deref(),
                subscribed: &m.subscribed,
                previous: &m.previous,
            })
            .collect();
        let target = assign(assignor, &view, topics);
        check_complete(members, &target, topics);
        target
    }

    /// Every subscribed partition once, to a subscriber.
    fn check_complete(
        members: &[Owned],
        target: &Target,
        topics: &dyn Fn(&str) -> Option<TopicInfo>,
    ) {
        let mut seen = BTreeSet::new();
        for m in members {
            for tp in &target[&m.id] {
                assert!(seen.insert(*tp), "{tp:?} given twice");
                let subscribed = m
                    .subscribed
                    .iter()
                    .any(|t| topics(t).is_some_and(|i| i.id == tp.0));
                assert!(subscribed, "{tp:?} given to {}, not subscribed", m.id);
            }
        }
        let names: BTreeSet<&String> = members.iter().flat_map(|m| &m.subscribed).collect();
        let expected: usize = names
            .iter()
            .filter_map(|n| topics(n))
            .map(|i| i.partitions.max(0) as usize)
            .sum();
        assert_eq!(seen.len(), expected, "every partition assigned");
    }

    fn counts(target: &Target) -> Vec<usize> {
        target.values().map(BTreeSet::len).collect()
    }

    #[test]
    fn names_and_the_preferred_assignor() {
        assert_eq!(
            ServerAssignor::from_name("range"),
            Some(ServerAssignor::Range)
        );
        assert_eq!(
            ServerAssignor::from_name("uniform"),
            Some(ServerAssignor::Uniform)
        );
        assert_eq!(ServerAssignor::from_name("sticky"), None);
        assert_eq!(
            ServerAssignor::unsupported_message("sticky"),
            "ServerAssignor sticky is not supported. Supported assignors: uniform, range."
        );
        use ServerAssignor::*;
        assert_eq!(ServerAssignor::preferred([None, None]), Uniform);
        assert_eq!(ServerAssignor::preferred([None, Some(Range)]), Range);
        assert_eq!(
            ServerAssignor::preferred([Some(Range), Some(Uniform)]),
            Uniform
        );
        assert_eq!(
            ServerAssignor::preferred([Some(Range), Some(Uniform), Some(Range)]),
            Range
        );
    }

    #[test]
    fn uniform_balances_over_all_topics_not_topic_by_topic() {
        // Ten topics of one partition: an even spread of each topic alone
        // gives all ten to one member.
        let partitions = [1; 10];
        let topics = catalog(&partitions);
        let names: Vec<String> = (0..10).map(|n| format!("t{n}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let members = [
            member("a", &names),
            member("b", &names),
            member("c", &names),
        ];
        let target = run(ServerAssignor::Uniform, &members, &topics);
        let mut c = counts(&target);
        c.sort_unstable();
        assert_eq!(c, [3, 3, 4]);
    }

    #[test]
    fn uniform_keeps_what_balance_allows_when_a_member_joins() {
        let partitions = [6, 6];
        let topics = catalog(&partitions);
        let mut members = vec![member("a", &["t0", "t1"]), member("b", &["t0", "t1"])];
        let first = run(ServerAssignor::Uniform, &members, &topics);
        assert_eq!(counts(&first), [6, 6]);
        for m in &mut members {
            m.previous = first[&m.id].clone();
        }
        members.push(member("c", &["t0", "t1"]));
        let second = run(ServerAssignor::Uniform, &members, &topics);
        assert_eq!(counts(&second), [4, 4, 4]);
        for m in &members[..2] {
            assert!(
                second[&m.id].is_subset(&first[&m.id]),
                "{} only gave partitions up",
                m.id
            );
        }
    }

    #[test]
    fn uniform_drops_what_a_member_no_longer_subscribes_to() {
        let partitions = [2, 2];
        let topics = catalog(&partitions);
        let mut a = member("a", &["t1"]);
        a.previous = [(id(1), 0), (id(1), 1)].into();
        let b = member("b", &["t0", "t1"]);
        let target = run(ServerAssignor::Uniform, &[a, b], &topics);
        assert_eq!(target["a"].len(), 2, "a has only t1 to take");
        assert!(target["a"].iter().all(|tp| tp.0 == id(2)));
    }

    #[test]
    fn range_is_kafkas_example_and_co_partitions() {
        // Kafka's RangeAssignor documentation: two members, two topics of
        // three partitions each.
        let partitions = [3, 3];
        let topics = catalog(&partitions);
        let members = [member("m0", &["t0", "t1"]), member("m1", &["t0", "t1"])];
        let target = run(ServerAssignor::Range, &members, &topics);
        let parts = |m: &str, t: u8| -> Vec<i32> {
            target[m]
                .iter()
                .filter(|tp| tp.0 == id(t))
                .map(|tp| tp.1)
                .collect()
        };
        assert_eq!((parts("m0", 1), parts("m0", 2)), (vec![0, 1], vec![0, 1]));
        assert_eq!((parts("m1", 1), parts("m1", 2)), (vec![2], vec![2]));
    }

    #[test]
    fn range_puts_static_members_first_by_instance_id() {
        let partitions = [3];
        let topics = catalog(&partitions);
        let mut z = member("a-dynamic", &["t0"]);
        z.instance_id = None;
        let mut y = member("b", &["t0"]);
        y.instance_id = Some("i1".into());
        let mut x = member("c", &["t0"]);
        x.instance_id = Some("i0".into());
        let target = run(ServerAssignor::Range, &[z, y, x], &topics);
        let parts = |m: &str| -> Vec<i32> { target[m].iter().map(|tp| tp.1).collect() };
        assert_eq!(parts("c"), [0]);
        assert_eq!(parts("b"), [1]);
        assert_eq!(parts("a-dynamic"), [2]);
    }

    /// Random groups: both assignors give every partition once, to a
    /// subscriber; `uniform` balances members of the same subscription
    /// within one, whatever they held before.
    #[test]
    fn random_groups_hold_the_invariants() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for round in 0..300 {
            let partitions: Vec<i32> = (0..1 + next(6)).map(|_| next(9) as i32).collect();
            let topics = catalog(&partitions);
            let names: Vec<String> = (0..partitions.len()).map(|n| format!("t{n}")).collect();
            let same = round % 2 == 0;
            let mut members: Vec<Owned> = (0..1 + next(7))
                .map(|i| {
                    let mut m = member(&format!("m{i}"), &[]);
                    for n in &names {
                        if same || next(2) == 0 {
                            m.subscribed.insert(n.clone());
                        }
                    }
                    if next(3) == 0 {
                        m.instance_id = Some(format!("i{}", next(100)));
                    }
                    m
                })
                .collect();
            // Previous targets: random, disjoint, some on topics the
            // member no longer subscribes to.
            for (t, &count) in partitions.iter().enumerate() {
                for p in 0..count {
                    let m = next(members.len() as u64 + 1) as usize;
                    if let Some(m) = members.get_mut(m) {
                        m.previous.insert((id(t as u8 + 1), p));
                    }
                }
            }
            run(ServerAssignor::Range, &members, &topics);
            let target = run(ServerAssignor::Uniform, &members, &topics);
            if same && members.iter().all(|m| !m.subscribed.is_empty()) {
                let c = counts(&target);
                let (min, max) = (c.iter().min(), c.iter().max());
                assert!(
                    max.zip(min).is_some_and(|(max, min)| max - min <= 1),
                    "round {round}: {c:?}"
                );
            }
        }
    }
}
