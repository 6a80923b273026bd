//! KIP-848 groups and the cluster's topics, judged against Apache Kafka
//! 4.4: the same clients and requests against both must print the same
//! lines.
//!
//! - Members subscribed by name to a topic not made yet get it when it is
//!   made, and new partitions when it grows; members subscribed by a
//!   regular expression (librdkafka's `^` topics, sent as
//!   SubscribedTopicRegex) get every topic it matches, those made later
//!   too, and lose a deleted one; the Java client's server-side pattern
//!   (`subscribe(SubscriptionPattern)`, tests/clients/java/PatternCheck.java)
//!   alike.
//! - ConsumerGroupHeartbeat's checks: a pattern that does not compile
//!   (INVALID_REGULAR_EXPRESSION with RE2's words) and the malformed
//!   requests Kafka refuses before looking at the group (INVALID_REQUEST),
//!   each with Kafka's message.

mod common;

use std::time::Duration;

use common::programs::java_program_lines;
use common::{kafka, topic};

/// Raw ConsumerGroupHeartbeat v1 requests.
const RAW_HEARTBEATS: &str = include_str!("clients/python/kip848_heartbeats.py");

/// The lines a snippet printed against a broker; it must succeed.
fn lines(bootstrap: &str, snippet: &str, args: &[&str]) -> Vec<String> {
    let out = common::python_at(bootstrap, snippet, args, Duration::from_secs(300));
    out.assert_success();
    out.stdout_text().lines().map(str::to_owned).collect()
}

/// Two librdkafka consumers of the new protocol, each in its own group:
/// one subscribed by name to PREFIX-late (not made yet), one by the
/// pattern ^PREFIX-rx-.* (PREFIX-rx-a made, PREFIX-other not matching).
/// Topics are made, grown and deleted; after each step the script waits
/// (at most 60 s: Kafka matches patterns again at most every 10 s) until
/// each consumer's assignment is what the step should give it, and prints
/// what it reached.
const FOLLOW_TOPICS: &str = r#"
import time
from confluent_kafka import Consumer, KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic, NewPartitions
prefix = ARGS[0]
admin = AdminClient({"bootstrap.servers": BOOTSTRAP})

def make(name, partitions):
    admin.create_topics([NewTopic(prefix + name, num_partitions=partitions, replication_factor=1)])[prefix + name].result(30)

make("-rx-a", 1)
make("-other", 1)

def consumer(group):
    return Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": prefix + group,
                     "group.protocol": "consumer", "auto.offset.reset": "earliest",
                     "topic.metadata.refresh.interval.ms": 1000})

by_name, by_pattern = consumer("-names"), consumer("-pattern")
by_name.subscribe([prefix + "-late"])
by_pattern.subscribe(["^" + prefix + "-rx-.*"])

def owned(c):
    return sorted(f"{tp.topic[len(prefix):]}:{tp.partition}" for tp in c.assignment())

def poll_both(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for c in (by_name, by_pattern):
            m = c.poll(0.05)
            if m is not None and m.error() and m.error().code() != KafkaError._PARTITION_EOF:
                # The topic a pattern matched is deleted under it: said
                # once, as Kafka's and sluice's metadata say it.
                if m.error().code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                    raise KafkaException(m.error())

def until(label, c, want):
    deadline = time.monotonic() + 60
    while owned(c) != want and time.monotonic() < deadline:
        poll_both(0.2)
    print(f"{label}: {owned(c)}")

until("pattern, at first", by_pattern, ["-rx-a:0"])
poll_both(3)
print(f"names, before the topic is made: {owned(by_name)}")
make("-late", 2)
make("-rx-b", 2)
until("names, the topic made", by_name, ["-late:0", "-late:1"])
until("pattern, a matching topic made", by_pattern, ["-rx-a:0", "-rx-b:0", "-rx-b:1"])
admin.create_partitions([NewPartitions(prefix + "-late", 3)])[prefix + "-late"].result(30)
until("names, the topic grown", by_name, ["-late:0", "-late:1", "-late:2"])
admin.delete_topics([prefix + "-rx-a"])[prefix + "-rx-a"].result(30)
until("pattern, a matching topic deleted", by_pattern, ["-rx-b:0", "-rx-b:1"])
by_name.close()
by_pattern.close()
"#;

#[test]
fn kip848_groups_follow_topics_made_grown_and_matched_as_kafkas_do() {
    let expected = [
        "pattern, at first: ['-rx-a:0']",
        "names, before the topic is made: []",
        "names, the topic made: ['-late:0', '-late:1']",
        "pattern, a matching topic made: ['-rx-a:0', '-rx-b:0', '-rx-b:1']",
        "names, the topic grown: ['-late:0', '-late:1', '-late:2']",
        "pattern, a matching topic deleted: ['-rx-b:0', '-rx-b:1']",
    ];
    kafka::assert_same_with_fast_heartbeats(&expected, |bootstrap| {
        lines(bootstrap, FOLLOW_TOPICS, &[&topic("follow")])
    });
}

#[test]
fn java_consumers_subscribe_by_server_side_pattern_as_on_kafka() {
    let expected = [
        "pattern, at first: [-a:0]",
        "pattern, a matching topic made: [-a:0, -b:0, -b:1]",
        "another pattern: [-other:0]",
    ];
    let prefix = topic("java-pattern");
    kafka::assert_same_with_fast_heartbeats(&expected, |bootstrap| {
        java_program_lines("PatternCheck.java", &[bootstrap, &prefix])
    });
}

/// Raw heartbeats Kafka refuses, each printed with its code and message,
/// then a join by a pattern alone, which both accept.
const CHECKS: &str = r#"
prefix = ARGS[0]
topic, group = prefix + "-t", prefix + "-g"
hb = heartbeats_on(topic, group)

def beat(label, member, epoch, group=group, **kw):
    error, message = hb.beat_past_load(group, member, epoch, **kw)[:2]
    # (Kafka matches a new pattern in the background, so what a join by
    # one is given first differs: sluice matches it at once.)
    print(f"{label}: error {error}: {message}" if error else f"{label}: ok")

for pattern in ["[", "(a", "a)", "*a", "[z-a]", "(?=a)", "a\\"]:
    beat(f"pattern {pattern}", "m", 0, topics=None, owned=[], regex=pattern)
beat("no member id", "", 0, topics=[topic], owned=[])
beat("no group id", "m", 0, group="", topics=[topic], owned=[])
beat("empty instance id", "m", 0, instance="", topics=[topic], owned=[])
beat("empty rack", "m", 0, rack="", topics=[topic], owned=[])
beat("join without a rebalance timeout", "m", 0, topics=[topic], owned=[], rebalance=-1)
beat("leave for now without an instance id", "m", -2)
beat("epoch -3", "m", -3)
beat("join by a pattern alone", "m", 0, owned=[], regex=prefix + "-.*")
beat("leave", "m", -1)
"#;

#[test]
fn kip848_heartbeat_checks_answer_as_kafkas_do() {
    let run = |bootstrap: &str| {
        lines(
            bootstrap,
            &format!("{RAW_HEARTBEATS}\n{CHECKS}"),
            &[&topic("checks")],
        )
    };
    let expected = kafka::same_with_immediate_targets(run);
    // What Kafka answered, so that a change on its side is seen too.
    let refused = |pattern: &str, words: &str| {
        format!(
            "pattern {pattern}: error 128: SubscribedTopicRegex `{pattern}` is not a valid \
             regular expression: {words}."
        )
    };
    let recorded = [
        refused("[", "missing closing ]"),
        refused("(a", "missing closing )"),
        refused("a)", "regexp/syntax: internal error"),
        refused("*a", "missing argument to repetition operator"),
        refused("[z-a]", "invalid character class range"),
        refused("(?=a)", "invalid or unsupported Perl syntax"),
        refused("a\\", "trailing backslash at end of expression"),
        "no member id: error 42: MemberId can't be empty.".into(),
        "no group id: error 42: GroupId can't be empty.".into(),
        "empty instance id: error 42: InstanceId can't be empty.".into(),
        "empty rack: error 42: RackId can't be empty.".into(),
        "join without a rebalance timeout: error 42: RebalanceTimeoutMs must be provided in \
         first request."
            .into(),
        "leave for now without an instance id: error 42: InstanceId can't be null.".into(),
        "epoch -3: error 42: MemberEpoch is invalid.".into(),
        "join by a pattern alone: ok".into(),
        "leave: ok".into(),
    ];
    assert_eq!(expected, recorded);
}
