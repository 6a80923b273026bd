//! Partition reassignment with Kafka's own tool against a real cluster:
//! `kafka-reassign-partitions.sh` (ReassignPartitionsCommand) moves a
//! topic's replicas onto brokers that held none, under a throttle, while a
//! producer writes with acks=all; `--list` shows the move in progress,
//! `--verify` sees it finish and clears the throttles, `--cancel` goes
//! back. Every acknowledged record is then read back from the new
//! replicas, and the brokers moved away from hold no files of it.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::cluster::{coordinator_and_offset, start_agreed, wait_until};
use common::{python, topic, Broker, CmdOutput, CLIENT_TIMEOUT};

/// Short sessions and lag, so the cluster settles within a test.
const FAST: &[(&str, &str)] = &[
    ("SLUICE_KAFKA__BROKER_HEARTBEAT_INTERVAL_MS", "200"),
    ("SLUICE_KAFKA__BROKER_SESSION_TIMEOUT_MS", "2000"),
    ("SLUICE_KAFKA__REPLICA_LAG_TIME_MAX_MS", "3000"),
    ("SLUICE_KAFKA__AUTO_CREATE_TOPICS_ENABLE", "false"),
    ("SLUICE_KAFKA__AUTO_LEADER_REBALANCE_ENABLE", "false"),
];

fn started(count: usize) -> Vec<Broker> {
    let mut cluster = Broker::cluster(count, FAST);
    start_agreed(&mut cluster);
    cluster
}

fn bootstrap(cluster: &[Broker]) -> String {
    cluster
        .iter()
        .map(|b| b.bootstrap())
        .collect::<Vec<_>>()
        .join(",")
}

/// Runs ReassignPartitionsCommand with `args` against `broker`.
fn reassign_tool(broker: &Broker, args: &[&str]) -> CmdOutput {
    let out = common::run(
        Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kafka-oracle"))
            .args([
                "tool",
                "org.apache.kafka.tools.reassign.ReassignPartitionsCommand",
            ])
            .args(["--bootstrap-server", &broker.bootstrap()])
            .args(args),
        b"",
        Duration::from_secs(180),
    );
    eprintln!(
        "reassign {args:?}:\n{}{}",
        out.stdout_text(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Creates `name` with the replicas `assignment` gives each partition
/// (kafka-topics.sh's `--replica-assignment`, e.g. `1:2,2:1`).
fn create_assigned(via: &Broker, name: &str, assignment: &str) {
    common::run(
        Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kafka-oracle"))
            .args(["tool", "org.apache.kafka.tools.TopicCommand"])
            .args(["--bootstrap-server", &via.bootstrap()])
            .args([
                "--create",
                "--topic",
                name,
                "--replica-assignment",
                assignment,
            ]),
        b"",
        Duration::from_secs(180),
    )
    .assert_success();
}

/// Each partition's (replicas, in-sync set) as `broker` reports them.
fn replicas_of(broker: &Broker, name: &str) -> Vec<(Vec<i32>, Vec<i32>)> {
    let out = python(
        broker,
        r#"
from confluent_kafka.admin import AdminClient
admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
t = admin.list_topics(ARGS[0], timeout=10).topics[ARGS[0]]
for pid, p in sorted(t.partitions.items()):
    print(",".join(map(str, p.replicas)), ",".join(map(str, sorted(p.isrs))))
"#,
        &[name],
        CLIENT_TIMEOUT,
    );
    if !out.status.success() {
        return Vec::new();
    }
    let ids = |s: &str| s.split(',').filter_map(|b| b.parse().ok()).collect();
    out.stdout_text()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(r, i)| (ids(r), ids(i)))
        .collect()
}

/// Produces `count` records of `size` bytes with acks=all and idempotence;
/// the number acknowledged.
fn produce(cluster: &[Broker], name: &str, first: u64, count: u64, size: usize) -> u64 {
    let out = python(
        &cluster[0],
        r#"
from confluent_kafka import Producer
p = Producer({"bootstrap.servers": ",".join(ARGS[4].split(",")), "acks": "all",
              "enable.idempotence": True, "linger.ms": 5})
acked = [0]
def done(err, msg):
    if err is None:
        acked[0] += 1
first, count, size = int(ARGS[1]), int(ARGS[2]), int(ARGS[3])
pad = b"x" * max(0, size - 16)
for i in range(first, first + count):
    while True:
        try:
            p.produce(ARGS[0], key=str(i).encode(), value=b"%016d" % i + pad, on_delivery=done)
            break
        except BufferError:
            p.poll(0.05)
    p.poll(0)
left = p.flush(60)
print(acked[0], left)
"#,
        &[
            name,
            &first.to_string(),
            &count.to_string(),
            &size.to_string(),
            &bootstrap(cluster),
        ],
        Duration::from_secs(240),
    );
    out.assert_success();
    let text = out.stdout_text();
    let mut words = text.split_whitespace();
    let acked = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
    assert_eq!(words.next(), Some("0"), "every record answered: {text}");
    acked
}

/// Reads `name` from the start until `expected` distinct records came (or
/// a minute passed): (records read, distinct ids).
fn consume(cluster: &[Broker], name: &str, expected: u64) -> (u64, u64) {
    let out = python(
        &cluster[0],
        r#"
import time
from confluent_kafka import Consumer
c = Consumer({"bootstrap.servers": ARGS[2], "group.id": "reassign-check",
              "auto.offset.reset": "earliest", "enable.auto.commit": False})
c.subscribe([ARGS[0]])
want = int(ARGS[1])
seen, read = set(), 0
deadline = time.time() + 60
while len(seen) < want and time.time() < deadline:
    for m in c.consume(1000, 1.0):
        if m.error() is None:
            read += 1
            seen.add(int(m.value()[:16]))
c.close()
print(read, len(seen))
"#,
        &[name, &expected.to_string(), &bootstrap(cluster)],
        Duration::from_secs(120),
    );
    out.assert_success();
    let text = out.stdout_text();
    let n: Vec<u64> = text
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (
        n.first().copied().unwrap_or(0),
        n.get(1).copied().unwrap_or(0),
    )
}

#[test]
fn kafka_reassign_partitions_moves_a_topic_to_new_brokers_under_a_throttle_losing_nothing() {
    let cluster = started(4);
    let t = topic("move");
    create_assigned(&cluster[0], &t, "1:2,2:1");
    wait_until("both partitions fully in sync", || {
        replicas_of(&cluster[0], &t)
            .iter()
            .all(|(r, i)| i.len() == 2 && r.len() == 2)
    });
    // 16 MB before the move: 8 MB a partition for each new replica to copy.
    let before = produce(&cluster, &t, 0, 16_000, 1000);
    assert_eq!(before, 16_000);

    let plan = serde_json::json!({
        "version": 1,
        "partitions": [
            {"topic": t, "partition": 0, "replicas": [3, 4]},
            {"topic": t, "partition": 1, "replicas": [4, 3]},
        ],
    });
    let file = tempfile::NamedTempFile::new().expect("a temporary file");
    std::fs::write(file.path(), plan.to_string()).expect("writing the plan");
    let plan_path = file.path().to_str().expect("a UTF-8 path");
    // 4 MB/s a broker: each new broker copies 16 MB, so at least 3 s.
    let rate: u64 = 4_000_000;
    let began = Instant::now();
    let out = reassign_tool(
        &cluster[1],
        &[
            "--reassignment-json-file",
            plan_path,
            "--execute",
            "--throttle",
            &rate.to_string(),
        ],
    );
    out.assert_success();
    let text = out.stdout_text();
    assert!(
        text.contains("Successfully started partition reassignments"),
        "{text}"
    );
    let listed = reassign_tool(&cluster[2], &["--list"]);
    listed.assert_success();
    let listed = listed.stdout_text();
    assert!(
        listed.contains(&format!(
            "{t}-0: replicas: 3,4,1,2. adding: 3,4. removing: 1,2."
        )) || listed.contains("No partition reassignments found"),
        "{listed}"
    );

    // The producer goes on while replicas move.
    let during = produce(&cluster, &t, 16_000, 4_000, 1000);
    assert_eq!(during, 4_000);

    let mut verified = String::new();
    wait_until("--verify to see the reassignment complete", || {
        let out = reassign_tool(
            &cluster[3],
            &["--reassignment-json-file", plan_path, "--verify"],
        );
        verified = out.stdout_text();
        out.status.success()
            && verified.contains(&format!("Reassignment of partition {t}-0 is completed"))
            && verified.contains(&format!("Reassignment of partition {t}-1 is completed"))
    });
    let took = began.elapsed();
    assert!(
        verified.contains("Clearing broker-level throttles"),
        "{verified}"
    );
    // Each new broker fetched 20 MB (16 MB before and 4 MB during) at its
    // throttle, less one second of budget it starts with.
    let floor = Duration::from_secs_f64((20_000_000.0 - rate as f64) / rate as f64 * 0.8);
    assert!(
        took >= floor,
        "the move took {took:?}, under the throttle's {floor:?}"
    );

    let placed = replicas_of(&cluster[0], &t);
    assert_eq!(placed.len(), 2);
    assert_eq!(placed[0].0, vec![3, 4]);
    assert_eq!(placed[1].0, vec![4, 3]);
    for (replicas, isr) in &placed {
        let mut replicas = replicas.clone();
        replicas.sort_unstable();
        assert_eq!(&replicas, isr, "every new replica in sync");
    }
    let (read, distinct) = consume(&cluster, &t, 20_000);
    assert_eq!(distinct, 20_000, "every acknowledged record, read {read}");
    for old in &cluster[..2] {
        for p in 0..2 {
            let dir = old.data_dir().join(&t).join(p.to_string());
            wait_until("the old replica's files to go", || !dir.exists());
        }
    }
    // The throttles are gone from the topic and the brokers.
    let configs = python(
        &cluster[0],
        r#"
from confluent_kafka.admin import AdminClient, ConfigResource
admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
res = [ConfigResource("topic", ARGS[0]), ConfigResource("broker", "1")]
for r, f in admin.describe_configs(res).items():
    for name, e in sorted(f.result().items()):
        if "throttled" in name:
            print(name, e.value, e.source)
"#,
        &[&t],
        CLIENT_TIMEOUT,
    );
    configs.assert_success();
    let configs = configs.stdout_text();
    // The replica lists are back to Kafka's default (empty, source 5 =
    // DEFAULT_CONFIG); the rates to unbounded.
    assert!(
        configs
            .lines()
            .all(|l| if l.contains("throttled.replicas") {
                l.split(' ').nth(1) == Some("") && l.ends_with(" 5")
            } else {
                l.contains("9223372036854775807")
            }),
        "{configs}"
    );
    assert_eq!(configs.lines().count(), 4, "{configs}");
}

#[test]
fn a_reassignment_that_cannot_finish_is_listed_and_cancelled_back_to_its_replicas() {
    let cluster = started(3);
    let t = topic("cancel");
    create_assigned(&cluster[0], &t, "1:2");
    wait_until("the partition fully in sync", || {
        replicas_of(&cluster[0], &t)
            .first()
            .is_some_and(|(_, i)| i.len() == 2)
    });
    assert_eq!(produce(&cluster, &t, 0, 2_000, 1000), 2_000);
    let plan = serde_json::json!({
        "version": 1,
        "partitions": [{"topic": t, "partition": 0, "replicas": [3, 2]}],
    });
    let file = tempfile::NamedTempFile::new().expect("a temporary file");
    std::fs::write(file.path(), plan.to_string()).expect("writing the plan");
    let plan_path = file.path().to_str().expect("a UTF-8 path");
    // One byte a second: broker 3 cannot catch up within the test.
    reassign_tool(
        &cluster[0],
        &[
            "--reassignment-json-file",
            plan_path,
            "--execute",
            "--throttle",
            "1",
        ],
    )
    .assert_success();
    let listed = reassign_tool(&cluster[1], &["--list"]);
    listed.assert_success();
    assert!(
        listed
            .stdout_text()
            .contains(&format!("{t}-0: replicas: 3,2,1. adding: 3. removing: 1.")),
        "{}",
        listed.stdout_text()
    );
    let new_dir = cluster[2].data_dir().join(&t).join("0");
    wait_until("the new replica to open", || new_dir.exists());
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        replicas_of(&cluster[0], &t)[0].1,
        vec![1, 2],
        "the throttled replica stays out of sync"
    );

    let out = reassign_tool(
        &cluster[1],
        &["--reassignment-json-file", plan_path, "--cancel"],
    );
    out.assert_success();
    assert!(
        out.stdout_text()
            .contains("Successfully cancelled partition reassignment for:"),
        "{}",
        out.stdout_text()
    );
    // Back on brokers 1 and 2 (in the order the reassignment left them,
    // the target's first, as Kafka's revert does).
    wait_until("the partition back on its replicas", || {
        replicas_of(&cluster[0], &t).first().is_some_and(|(r, i)| {
            let mut r = r.clone();
            r.sort_unstable();
            r == vec![1, 2] && i == &vec![1, 2]
        })
    });
    wait_until("the cancelled replica's files to go", || !new_dir.exists());
    let none = reassign_tool(&cluster[2], &["--list"]);
    assert!(
        none.stdout_text()
            .contains("No partition reassignments found"),
        "{}",
        none.stdout_text()
    );
    let (_, distinct) = consume(&cluster, &t, 2_000);
    assert_eq!(distinct, 2_000);
}

#[test]
fn reassigning_the_offsets_topic_off_a_broker_moves_its_group_coordinators_with_their_commits() {
    let cluster = started(3);
    let t = topic("offsets-move");
    create_assigned(&cluster[0], &t, "1:2");
    let group = format!("{t}-group");
    python(
        &cluster[0],
        r#"
from confluent_kafka import Consumer, Producer, TopicPartition
p = Producer({"bootstrap.servers": BOOTSTRAP, "acks": "all"})
for i in range(100):
    p.produce(ARGS[0], value=b"%d" % i)
assert p.flush(30) == 0
c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": ARGS[1],
              "auto.offset.reset": "earliest", "enable.auto.commit": False})
c.assign([TopicPartition(ARGS[0], 0, 0)])
got = 0
while got < 40:
    for m in c.consume(40 - got, 10):
        assert m.error() is None, m.error()
        got += 1
import time
for attempt in range(60):
    try:
        c.commit(offsets=[TopicPartition(ARGS[0], 0, 40)], asynchronous=False)
        break
    except Exception as e:  # COORDINATOR_LOAD_IN_PROGRESS while the offsets topic opens: retriable
        if attempt == 59 or "LOAD_IN_PROGRESS" not in str(e) and "NOT_COORDINATOR" not in str(e):
            raise
        time.sleep(0.5)
c.close()
"#,
        &[&t, &group],
        CLIENT_TIMEOUT,
    )
    .assert_success();
    let mut before = None;
    wait_until("the group's coordinator and offset", || {
        before = coordinator_and_offset(&cluster.iter().collect::<Vec<_>>(), &group, &t);
        before.is_some()
    });
    let (coordinator, offset) = before.expect("found");
    assert_eq!(offset, 40);

    // Every offsets partition onto the two other brokers.
    let others: Vec<i32> = (1..=3).filter(|b| *b != coordinator).collect();
    let partitions: Vec<serde_json::Value> = (0..50)
        .map(|p| {
            let replicas = if p % 2 == 0 {
                vec![others[0], others[1]]
            } else {
                vec![others[1], others[0]]
            };
            serde_json::json!({"topic": "__consumer_offsets", "partition": p, "replicas": replicas})
        })
        .collect();
    let plan = serde_json::json!({"version": 1, "partitions": partitions});
    let file = tempfile::NamedTempFile::new().expect("a temporary file");
    std::fs::write(file.path(), plan.to_string()).expect("writing the plan");
    let plan_path = file.path().to_str().expect("a UTF-8 path");
    reassign_tool(
        &cluster[0],
        &["--reassignment-json-file", plan_path, "--execute"],
    )
    .assert_success();
    wait_until("--verify to see every move complete", || {
        let out = reassign_tool(
            &cluster[1],
            &["--reassignment-json-file", plan_path, "--verify"],
        );
        out.status.success() && out.stdout_text().matches("is completed").count() == 50
    });
    let mut after = None;
    wait_until("another coordinator with the committed offset", || {
        after = coordinator_and_offset(&cluster.iter().collect::<Vec<_>>(), &group, &t);
        after.is_some_and(|(c, _)| c != coordinator)
    });
    assert_eq!(after.map(|a| a.1), Some(40), "the commit moved with it");
    let dir = cluster[coordinator as usize - 1]
        .data_dir()
        .join("__consumer_offsets");
    wait_until("the old coordinator's offsets replicas to go", || {
        std::fs::read_dir(&dir).map_or(true, |d| d.count() == 0)
    });
}
