//! Helpers for tests of several brokers: what each one says, and waiting
//! until they agree.
//!
//! Every wait polls until a deadline ([`AGREE_TIMEOUT`]) and panics naming
//! what it waited for.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::{python, wire, Broker, CLIENT_TIMEOUT};

/// How long brokers get to agree on anything.
pub const AGREE_TIMEOUT: Duration = Duration::from_secs(30);

/// Metadata v2 from `broker` for `topics` (auto-creating them).
pub fn metadata(broker: &Broker, topics: &[&str]) -> Result<wire::Metadata, String> {
    let mut conn =
        wire::Conn::connect(broker.addr(), Duration::from_secs(5)).map_err(|e| e.to_string())?;
    conn.metadata_v2(topics)
}

/// Topics `broker` lists without error (all of them).
pub fn topics_of(broker: &Broker) -> BTreeSet<String> {
    wire::Conn::connect(broker.addr(), Duration::from_secs(5))
        .map_err(|e| e.to_string())
        .and_then(|mut conn| conn.metadata_v2_all())
        .map(|m| {
            m.topics
                .into_iter()
                .filter(|t| t.error_code == 0)
                .map(|t| t.name)
                .collect()
        })
        .unwrap_or_default()
}

/// Node ids of the brokers `broker` lists.
pub fn brokers_listed_by(broker: &Broker) -> BTreeSet<i32> {
    metadata(broker, &[])
        .map(|m| m.brokers.iter().map(|b| b.node_id).collect())
        .unwrap_or_default()
}

/// Polls `check` until it holds, or panics with `what` at the deadline.
pub fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + AGREE_TIMEOUT;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The controller every broker in `brokers` names, once they agree.
pub fn agreed_controller(brokers: &[&Broker]) -> i32 {
    let mut agreed = -1;
    wait_until("the brokers to agree on a controller", || {
        let named: BTreeSet<i32> = brokers
            .iter()
            .map(|b| metadata(b, &[]).map_or(-1, |m| m.controller_id))
            .collect();
        match named.into_iter().collect::<Vec<_>>()[..] {
            [id] if id > 0 => {
                agreed = id;
                true
            }
            _ => false,
        }
    });
    agreed
}

/// Each partition's (error code, leader) for `topic` as `broker` sees it,
/// once it lists the topic.
pub fn leaders(broker: &Broker, topic: &str) -> Option<Vec<(i16, i32)>> {
    let answer = metadata(broker, &[topic]).ok()?;
    let t = answer.topics.into_iter().find(|t| t.name == topic)?;
    if t.error_code != 0 {
        return None;
    }
    let mut partitions = t.partitions;
    partitions.sort_unstable();
    Some(partitions.into_iter().map(|(_, e, l)| (e, l)).collect())
}

/// Starts every broker of `cluster` together and waits until each lists
/// all of them.
pub fn start_agreed(cluster: &mut [Broker]) {
    Broker::start_together(cluster);
    let count = cluster.len();
    for broker in cluster.iter() {
        wait_until("every broker to list all the others", || {
            brokers_listed_by(broker).len() == count
        });
    }
}

/// The coordinator of `group` and its committed offset of `topic`-0, asked
/// through `via` with the confluent-kafka admin client; `None` until both
/// answer.
pub fn coordinator_and_offset(via: &[&Broker], group: &str, topic: &str) -> Option<(i32, i64)> {
    let bootstrap: Vec<String> = via.iter().map(|b| b.bootstrap()).collect();
    let out = python(
        via[0],
        r#"
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient
admin = AdminClient({"bootstrap.servers": ARGS[2]})
g = admin.describe_consumer_groups([ARGS[0]], request_timeout=10)[ARGS[0]].result()
req = [ConsumerGroupTopicPartitions(ARGS[0], [TopicPartition(ARGS[1], 0)])]
res = admin.list_consumer_group_offsets(req, request_timeout=10)[ARGS[0]].result()
print(g.coordinator.id, res.topic_partitions[0].offset)
"#,
        &[group, topic, &bootstrap.join(",")],
        CLIENT_TIMEOUT,
    );
    if !out.status.success() {
        return None;
    }
    let text = out.stdout_text();
    let mut words = text.split_whitespace();
    Some((words.next()?.parse().ok()?, words.next()?.parse().ok()?))
}
