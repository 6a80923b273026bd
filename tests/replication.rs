//! Replication with real processes: three brokers, partitions of
//! replication factor 3 with `min.insync.replicas=2`, real clients, and
//! faults injected while they run (Jepsen's shape, bounded in time):
//! SIGKILL, SIGSTOP, network partitions (each broker in a network
//! namespace whose link the test takes down) and restarts.
//!
//! What must hold: no acknowledged record is lost, none is duplicated
//! (idempotent producers), no record a consumer read later disappears,
//! offsets a consumer sees only grow, and once the faults heal every
//! replica holds the same bytes. `scripts/soak-replication` runs the long
//! form.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use common::cluster::{coordinator_and_offset, start_agreed, wait_until};
use common::netns::Lab;
use common::{python, python_interpreter, topic, wire, Broker, Spawned, Stream, CLIENT_TIMEOUT};

const NOT_ENOUGH_REPLICAS: i16 = 19;

/// The Jepsen-style test keeps both cores busy for a minute; the other
/// tests of this file run beside each other but not beside it, so no
/// broker's start-up is starved past its timeout.
static HEAVY: RwLock<()> = RwLock::new(());

fn shared() -> RwLockReadGuard<'static, ()> {
    HEAVY.read().unwrap_or_else(|e| e.into_inner())
}

fn exclusive() -> RwLockWriteGuard<'static, ()> {
    HEAVY.write().unwrap_or_else(|e| e.into_inner())
}

/// Short sessions and lag, so faults show within a test.
const FAST: &[(&str, &str)] = &[
    ("SLUICE_KAFKA__BROKER_HEARTBEAT_INTERVAL_MS", "200"),
    ("SLUICE_KAFKA__BROKER_SESSION_TIMEOUT_MS", "2000"),
    ("SLUICE_KAFKA__REPLICA_LAG_TIME_MAX_MS", "3000"),
    ("SLUICE_KAFKA__AUTO_CREATE_TOPICS_ENABLE", "false"),
];

fn bootstrap(cluster: &[Broker]) -> String {
    cluster
        .iter()
        .map(|b| b.bootstrap())
        .collect::<Vec<_>>()
        .join(",")
}

/// Creates `name` with `partitions` partitions of replication factor 3
/// and `min.insync.replicas` at `min_insync` through `via`.
fn create_replicated(via: &Broker, name: &str, partitions: i32, min_insync: i32) {
    let out = python(
        via,
        r#"
from confluent_kafka.admin import AdminClient, NewTopic
admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
wanted = [NewTopic(ARGS[0], int(ARGS[1]), 3, config={"min.insync.replicas": ARGS[2]})]
for name, future in admin.create_topics(wanted, operation_timeout=30).items():
    future.result()
    print("created")
"#,
        &[name, &partitions.to_string(), &min_insync.to_string()],
        CLIENT_TIMEOUT,
    );
    out.assert_success();
}

/// Each partition's (leader, in-sync set) as `broker` reports it, from the
/// confluent-kafka admin client's metadata.
fn isr_of(broker: &Broker, name: &str) -> Option<Vec<(i32, Vec<i32>)>> {
    let out = python(
        broker,
        r#"
from confluent_kafka.admin import AdminClient
admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
t = admin.list_topics(ARGS[0], timeout=10).topics[ARGS[0]]
for pid, p in sorted(t.partitions.items()):
    print(pid, p.leader, ",".join(str(b) for b in sorted(p.isrs)))
"#,
        &[name],
        CLIENT_TIMEOUT,
    );
    if !out.status.success() {
        return None;
    }
    out.stdout_text()
        .lines()
        .map(|line| {
            let mut parts = line.split_whitespace();
            let _pid = parts.next()?;
            let leader = parts.next()?.parse().ok()?;
            let isr = parts
                .next()
                .unwrap_or("")
                .split(',')
                .filter_map(|b| b.parse().ok())
                .collect();
            Some((leader, isr))
        })
        .collect()
}

/// Waits until every partition of `name` has all three brokers in sync.
fn wait_fully_in_sync(witness: &Broker, name: &str) {
    wait_until("every partition to have all three replicas in sync", || {
        isr_of(witness, name).is_some_and(|ps| ps.iter().all(|(_, isr)| isr == &vec![1, 2, 3]))
    });
}

/// The record batches of one partition replica as its segment files hold
/// them, in offset order (the files' zero-filled tails are not batches).
fn batches_on_disk(dir: &Path) -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "log"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    let mut batches = Vec::new();
    for file in files {
        let bytes = std::fs::read(&file).expect("reading a segment");
        let mut at = 0usize;
        while at + 12 <= bytes.len() {
            let length = i32::from_be_bytes(bytes[at + 8..at + 12].try_into().expect("4 bytes"));
            if length <= 0 || at + 12 + length as usize > bytes.len() {
                break;
            }
            let end = at + 12 + length as usize;
            batches.push(bytes[at..end].to_vec());
            at = end;
        }
    }
    batches
}

/// The leader of `partition` as `witness` sees it.
fn leader_of(witness: &Broker, name: &str, partition: usize) -> i32 {
    let mut leader = -1;
    wait_until("the partition to have a leader", || {
        leader = isr_of(witness, name)
            .and_then(|ps| ps.get(partition).map(|p| p.0))
            .unwrap_or(-1);
        leader > 0
    });
    leader
}

#[test]
fn acknowledged_records_survive_leader_kills_pauses_partitions_and_restarts() {
    let _turn = exclusive();
    // Each broker in its own network namespace, so a leader can be cut off
    // from the others and from the clients (the test's namespace).
    let lab = Lab::create(3)
        .unwrap_or_else(|e| panic!("this test needs network namespaces (root and `ip`): {e}"));
    let mut cluster = Broker::cluster_on(&lab.hosts(), FAST);
    start_agreed(&mut cluster);
    let t = topic("jepsen");
    create_replicated(&cluster[0], &t, 3, 2);
    wait_fully_in_sync(&cluster[0], &t);

    let status = cluster[0].data_dir().with_file_name("workload.status");
    let foreign = cluster[0].data_dir().with_file_name("workload.foreign");
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/python/replication_workload.py");
    // The short form; `scripts/soak-replication` sets a long one.
    let seconds: u64 = std::env::var("SLUICE_REPLICATION_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(55);
    let mut workload = Spawned::start(
        Command::new(python_interpreter())
            .arg(&script)
            .args([
                "--bootstrap",
                &bootstrap(&cluster),
                "--topic",
                &t,
                "--partitions",
                "3",
            ])
            .args(["--seconds", &seconds.to_string(), "--status-file"])
            .arg(&status)
            .arg("--foreign-out")
            .arg(&foreign),
    );
    wait_until("the workload to start producing", || {
        std::fs::read_to_string(&status).is_ok_and(|s| s.contains("producing"))
    });
    // The Java client too: Kafka's VerifiableProducer (idempotent by
    // default, acks=all) writes "7.N" values into the same topic through
    // the same faults, and stops well before the Python producers, so the
    // workload's final drain holds everything it had acknowledged.
    let java_seconds = seconds.saturating_sub(25).max(10);
    let mut java = Spawned::start(
        Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kafka-oracle"))
            .args(["tool", "org.apache.kafka.tools.VerifiableProducer"])
            .args(["--bootstrap-server", &bootstrap(&cluster), "--topic", &t])
            .args(["--throughput", "300", "--acks", "-1", "--value-prefix", "7"])
            .args(["--max-messages", &(300 * java_seconds).to_string()]),
    );
    let started = Instant::now();
    let by_id = |id: i32| (id - 1) as usize;
    let mut witness = 0;
    let mut round = 0;
    // Rounds of faults until a few seconds before the producers stop, each
    // on the leader of the next partition, each healed before the next.
    while started.elapsed() + Duration::from_secs(6) < Duration::from_secs(seconds) {
        let partition = round % 3;
        let victim = by_id(leader_of(&cluster[witness], &t, partition));
        witness = (victim + 1) % 3;
        match round % 4 {
            // SIGKILL; back after it was fenced.
            0 => {
                eprintln!("{:?}: SIGKILL broker {}", started.elapsed(), victim + 1);
                cluster[victim].kill();
                std::thread::sleep(Duration::from_secs(4));
                cluster[victim].restart();
            }
            // SIGSTOP for longer than its session.
            1 => {
                eprintln!("{:?}: SIGSTOP broker {}", started.elapsed(), victim + 1);
                cluster[victim].signal(libc::SIGSTOP);
                std::thread::sleep(Duration::from_secs(4));
                cluster[victim].signal(libc::SIGCONT);
            }
            // A network partition: its link down for longer than its
            // session (the majority fences it and elects another leader;
            // producers that still reach only it get no acknowledgement).
            2 => {
                eprintln!(
                    "{:?}: network partition isolates broker {}",
                    started.elapsed(),
                    victim + 1
                );
                lab.cut(victim + 1);
                std::thread::sleep(Duration::from_secs(4));
                lab.heal(victim + 1);
            }
            // SIGKILL and an immediate restart, back within its session.
            _ => {
                eprintln!(
                    "{:?}: SIGKILL and restart broker {}",
                    started.elapsed(),
                    victim + 1
                );
                cluster[victim].kill();
                cluster[victim].restart();
            }
        }
        wait_fully_in_sync(&cluster[witness], &t);
        std::thread::sleep(Duration::from_secs(2));
        round += 1;
    }
    eprintln!("{:?}: {round} rounds of faults over", started.elapsed());
    assert!(round >= 4, "every kind of fault ran");
    java.wait_exit(Duration::from_secs(120));

    workload.wait_exit(Duration::from_secs(seconds + 240));
    let result_line = workload
        .lines(Stream::Stdout)
        .into_iter()
        .find_map(|l| l.strip_prefix("RESULT ").map(str::to_owned))
        .unwrap_or_else(|| panic!("no RESULT line:\n{}", workload.output()));
    eprintln!("checker: {result_line}");
    let result: serde_json::Value = serde_json::from_str(&result_line).expect("RESULT is JSON");
    let count = |key: &str| {
        result[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{key} in {result}"))
    };
    assert!(count("acknowledged") > 1000, "{result}");
    for key in [
        "lost",
        "duplicated",
        "vanished",
        "offsets_non_monotonic",
        "offset_mismatch",
    ] {
        assert_eq!(count(key), 0, "{key}: {result}");
    }
    assert_eq!(result["drain_complete"], true, "{result}");
    assert_eq!(result["timed_out"], false, "{result}");
    assert_eq!(result["internal_errors"], serde_json::json!([]), "{result}");

    // The Java producer's acknowledgements against the same drain.
    let mut drained: std::collections::HashMap<(i64, i64), String> = Default::default();
    let mut java_values: std::collections::HashMap<String, u32> = Default::default();
    for line in std::fs::read_to_string(&foreign)
        .expect("the drained foreign records")
        .lines()
    {
        let Ok(serde_json::Value::Array(r)) = serde_json::from_str::<serde_json::Value>(line)
        else {
            continue;
        };
        let (Some(p), Some(o), Some(v)) = (r[0].as_i64(), r[1].as_i64(), r[2].as_str()) else {
            continue;
        };
        if v.starts_with("7.") {
            *java_values.entry(v.to_owned()).or_default() += 1;
        }
        drained.insert((p, o), v.to_owned());
    }
    // The drain read up to the high watermarks after the Python producers
    // stopped ("done" is the status file's last write): every Java
    // acknowledgement must come before that to be checked against it.
    let done_ms = std::fs::metadata(&status)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as i64);
    let mut java_acked = 0;
    let mut java_lost = Vec::new();
    for line in java.lines(Stream::Stdout) {
        let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if event["name"] != "producer_send_success" {
            continue;
        }
        java_acked += 1;
        assert!(
            event["timestamp"].as_i64().unwrap_or(i64::MAX) < done_ms,
            "a Java acknowledgement after the Python producers stopped: {line}"
        );
        let at = (
            event["partition"].as_i64().unwrap_or(-1),
            event["offset"].as_i64().unwrap_or(-1),
        );
        let value = event["value"].as_str().unwrap_or("");
        if drained.get(&at).map(String::as_str) != Some(value) {
            java_lost.push(format!("{value} at {at:?}"));
        }
    }
    let java_duplicated = java_values.values().filter(|n| **n > 1).count();
    eprintln!(
        "java: acknowledged {java_acked}, lost {}, duplicated {java_duplicated}",
        java_lost.len()
    );
    assert!(java_acked > 1000, "{}", java.output());
    assert!(
        java_lost.is_empty(),
        "lost {:?}",
        &java_lost[..java_lost.len().min(5)]
    );
    assert_eq!(java_duplicated, 0);

    // Every replica holds the same batches once all are in sync.
    wait_fully_in_sync(&cluster[0], &t);
    for broker in cluster.iter_mut() {
        broker.stop();
    }
    let mut divergent = 0;
    for partition in 0..3 {
        let replicas: Vec<Vec<Vec<u8>>> = cluster
            .iter()
            .map(|b| batches_on_disk(&b.data_dir().join(&t).join(partition.to_string())))
            .collect();
        let sizes: Vec<usize> = replicas.iter().map(Vec::len).collect();
        eprintln!("partition {partition}: batches per replica {sizes:?}");
        if replicas.iter().any(|r| r != &replicas[0]) {
            divergent += 1;
        }
    }
    eprintln!("divergent replicas: {divergent}");
    assert_eq!(divergent, 0);
}

#[test]
fn acks_all_needs_min_insync_replicas_and_acks_one_does_not() {
    let _turn = shared();
    let mut cluster = Broker::cluster(3, FAST);
    start_agreed(&mut cluster);
    let t = topic("minisr");
    // Three must be in sync; one broker down leaves two.
    create_replicated(&cluster[0], &t, 1, 3);
    wait_fully_in_sync(&cluster[0], &t);
    let leader = leader_of(&cluster[0], &t, 0) as usize - 1;
    let record = wire::record_batch(1_700_000_000_000, &[(None, Some(b"v".as_slice()))]);
    let mut conn =
        wire::Conn::connect(cluster[leader].addr(), Duration::from_secs(5)).expect("connect");
    // Until its log is open the leader answers NOT_LEADER_OR_FOLLOWER.
    wait_until("acks=all to be taken with three in sync", || {
        conn.produce_v3(&t, 0, -1, &record)
            .is_ok_and(|w| (w.error_code, w.base_offset) == (0, 0))
    });

    // A follower gone: fenced, out of the in-sync set (a majority of the
    // controller quorum is still up).
    let follower = (leader + 1) % 3;
    cluster[follower].kill();
    wait_until("the in-sync set to shrink to two", || {
        isr_of(&cluster[leader], &t).is_some_and(|ps| ps[0].1.len() == 2)
    });
    let refused = conn.produce_v3(&t, 0, -1, &record).expect("produce");
    assert_eq!(
        refused.error_code, NOT_ENOUGH_REPLICAS,
        "Kafka's answer below min.insync.replicas"
    );
    let one = conn.produce_v3(&t, 0, 1, &record).expect("produce");
    assert_eq!(
        (one.error_code, one.base_offset),
        (0, 1),
        "acks=1 is not held to it"
    );

    // Back: it catches up, rejoins, and acks=all works again.
    cluster[follower].restart();
    wait_fully_in_sync(&cluster[leader], &t);
    let again = conn.produce_v3(&t, 0, -1, &record).expect("produce");
    assert_eq!((again.error_code, again.base_offset), (0, 2));
}

/// DeleteRecords answers, as Kafka's, once every replica has moved its log
/// start (the low watermark): with the leader killed right after the
/// answer, the replica that takes over starts at the offset asked too.
#[test]
fn delete_records_answers_once_every_replica_moved_its_log_start() {
    let _turn = shared();
    let mut cluster = Broker::cluster(3, FAST);
    start_agreed(&mut cluster);
    let t = topic("delrec");
    create_replicated(&cluster[0], &t, 1, 2);
    wait_fully_in_sync(&cluster[0], &t);
    let leader = leader_of(&cluster[0], &t, 0) as usize - 1;
    let out = python(
        &cluster[leader],
        r#"
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient
p = Producer({"bootstrap.servers": BOOTSTRAP, "acks": "all"})
for i in range(100):
    p.produce(ARGS[0], value=b"v%d" % i, partition=0)
assert p.flush(30) == 0
admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
futures = admin.delete_records([TopicPartition(ARGS[0], 0, 60)], request_timeout=30)
for tp, f in futures.items():
    print("low watermark", f.result().low_watermark)
"#,
        &[&t],
        CLIENT_TIMEOUT,
    );
    out.assert_success();
    assert_eq!(out.stdout_text().trim(), "low watermark 60");
    let dead = cluster[leader].node_id();
    cluster[leader].kill();
    let witness = (leader + 1) % 3;
    wait_until("another replica to lead", || {
        leaders_of(&cluster[witness], &t)
            .first()
            .is_some_and(|l| *l > 0 && *l != dead)
    });
    let earliest = python(
        &cluster[witness],
        r#"
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec
admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
tp = TopicPartition(ARGS[0], 0)
print(admin.list_offsets({tp: OffsetSpec.earliest()})[tp].result().offset)
"#,
        &[&t],
        CLIENT_TIMEOUT,
    );
    earliest.assert_success();
    assert_eq!(earliest.stdout_text().trim(), "60");
}

/// Each partition's leader as `witness` reports it.
fn leaders_of(witness: &Broker, name: &str) -> Vec<i32> {
    isr_of(witness, name)
        .map(|ps| ps.into_iter().map(|(leader, _)| leader).collect())
        .unwrap_or_default()
}

/// Kills broker `victim`, waits until the others lead what it led, brings
/// it back and waits until every replica is in sync again: its partitions
/// are then led by another replica than their preferred one.
fn bounce(cluster: &mut [Broker], victim: usize, name: &str) {
    let witness = (victim + 1) % cluster.len();
    let id = cluster[victim].node_id();
    cluster[victim].kill();
    wait_until("the others to lead what the killed broker led", || {
        let leaders = leaders_of(&cluster[witness], name);
        !leaders.is_empty() && leaders.iter().all(|l| *l > 0 && *l != id)
    });
    cluster[victim].restart();
    wait_fully_in_sync(&cluster[witness], name);
}

#[test]
fn kafka_leader_election_tool_moves_leadership_back_to_preferred_replicas() {
    let _turn = shared();
    let mut env = FAST.to_vec();
    env.push(("SLUICE_KAFKA__AUTO_LEADER_REBALANCE_ENABLE", "false"));
    let mut cluster = Broker::cluster(3, &env);
    start_agreed(&mut cluster);
    let t = topic("elect");
    create_replicated(&cluster[0], &t, 3, 1);
    wait_fully_in_sync(&cluster[0], &t);
    // At creation every partition is led by its preferred replica.
    let preferred = leaders_of(&cluster[0], &t);
    assert!(preferred.contains(&1), "{preferred:?}");
    bounce(&mut cluster, 0, &t);
    let moved = leaders_of(&cluster[1], &t);
    assert!(
        !moved.contains(&1),
        "nothing moves back on its own: {moved:?}"
    );

    let out = common::run(
        Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kafka-oracle"))
            .args(["tool", "org.apache.kafka.tools.LeaderElectionCommand"])
            .args(["--bootstrap-server", &cluster[1].bootstrap()])
            .args(["--election-type", "preferred", "--all-topic-partitions"]),
        b"",
        Duration::from_secs(180),
    );
    out.assert_success();
    let text = out.stdout_text();
    eprintln!("{text}");
    let partition = preferred
        .iter()
        .position(|l| *l == 1)
        .expect("one led by 1");
    assert!(
        text.contains("Successfully completed leader election (PREFERRED) for partitions")
            && text.contains(&format!("{t}-{partition}")),
        "{text}"
    );
    wait_until("every partition to be led by its preferred replica", || {
        leaders_of(&cluster[2], &t) == preferred
    });
}

#[test]
fn the_controller_moves_leadership_back_on_its_own() {
    let _turn = shared();
    let mut env = FAST.to_vec();
    env.push(("SLUICE_KAFKA__LEADER_IMBALANCE_CHECK_INTERVAL_SECONDS", "1"));
    let mut cluster = Broker::cluster(3, &env);
    start_agreed(&mut cluster);
    let t = topic("balance");
    create_replicated(&cluster[0], &t, 3, 1);
    wait_fully_in_sync(&cluster[0], &t);
    let preferred = leaders_of(&cluster[0], &t);
    bounce(&mut cluster, 1, &t);
    wait_until(
        "the controller to elect the preferred leaders again",
        || leaders_of(&cluster[0], &t) == preferred,
    );
}

#[test]
fn kafka_verifiable_producer_and_consumer_count_every_acked_message_through_a_leader_kill() {
    let _turn = shared();
    let mut cluster = Broker::cluster(3, FAST);
    start_agreed(&mut cluster);
    let t = topic("verifiable");
    create_replicated(&cluster[0], &t, 3, 2);
    wait_fully_in_sync(&cluster[0], &t);
    let oracle = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kafka-oracle");
    let bootstrap = bootstrap(&cluster);

    // Kafka's system-test producer (the Java client, idempotent, acks=all)
    // reports every acknowledged message with its partition and offset.
    let mut producer = Spawned::start(
        Command::new(&oracle)
            .args(["tool", "org.apache.kafka.tools.VerifiableProducer"])
            .args(["--bootstrap-server", &bootstrap, "--topic", &t])
            .args([
                "--max-messages",
                "30000",
                "--throughput",
                "2000",
                "--acks",
                "-1",
            ]),
    );
    producer.wait_for_line(Stream::Stdout, Duration::from_secs(120), |l| {
        l.contains("producer_send_success")
    });
    std::thread::sleep(Duration::from_secs(3));
    let victim = leader_of(&cluster[0], &t, 0) as usize - 1;
    eprintln!("SIGKILL broker {}", victim + 1);
    cluster[victim].kill();
    std::thread::sleep(Duration::from_secs(4));
    cluster[victim].restart();
    producer.wait_exit(Duration::from_secs(180));
    let mut acked: Vec<(i64, i64)> = Vec::new();
    for line in producer.lines(Stream::Stdout) {
        let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if event["name"] == "producer_send_success" {
            let partition = event["partition"].as_i64().expect("a partition");
            let offset = event["offset"].as_i64().expect("an offset");
            acked.push((partition, offset));
        }
    }
    eprintln!("acknowledged: {}", acked.len());
    assert!(acked.len() > 10_000, "{}", producer.output());

    // Kafka's system-test consumer reads them back (it runs until stopped);
    // the offsets it consumed must come to cover every acknowledged one.
    wait_fully_in_sync(&cluster[0], &t);
    let mut consumer = Spawned::start(
        Command::new(&oracle)
            .args(["tool", "org.apache.kafka.tools.VerifiableConsumer"])
            .args(["--bootstrap-server", &bootstrap, "--topic", &t])
            .args([
                "--group-id",
                &format!("{t}-check"),
                "--reset-policy",
                "earliest",
            ]),
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    let (lost, count) = loop {
        consumer.collect_available();
        let mut consumed: Vec<(i64, i64, i64)> = Vec::new();
        let mut count = 0;
        for line in consumer.lines(Stream::Stdout) {
            let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if event["name"] == "records_consumed" {
                count += event["count"].as_i64().unwrap_or(0);
                for p in event["partitions"].as_array().into_iter().flatten() {
                    consumed.push((
                        p["partition"].as_i64().unwrap_or(-1),
                        p["minOffset"].as_i64().unwrap_or(-1),
                        p["maxOffset"].as_i64().unwrap_or(-2),
                    ));
                }
            }
        }
        let lost: Vec<(i64, i64)> = acked
            .iter()
            .filter(|(p, o)| {
                !consumed
                    .iter()
                    .any(|(cp, min, max)| cp == p && min <= o && o <= max)
            })
            .copied()
            .collect();
        if lost.is_empty() || Instant::now() > deadline {
            break (lost, count);
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    consumer.kill();
    eprintln!(
        "verifiable: acknowledged {}, consumed {count}, lost {}",
        acked.len(),
        lost.len()
    );
    assert!(lost.is_empty(), "lost {:?}...", &lost[..lost.len().min(5)]);
}

#[test]
fn a_group_coordinator_moves_with_its_offsets_partition_and_keeps_what_was_committed() {
    let _turn = shared();
    let mut cluster = Broker::cluster(3, FAST);
    start_agreed(&mut cluster);
    let t = topic("coordinated");
    create_replicated(&cluster[0], &t, 1, 1);
    wait_fully_in_sync(&cluster[0], &t);
    let group = format!("{t}-group");
    // 100 records, of which the group consumes and commits 40.
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
    let everyone: Vec<&Broker> = cluster.iter().collect();
    let mut before = None;
    wait_until("the group's coordinator and offset", || {
        before = coordinator_and_offset(&everyone, &group, &t);
        before.is_some()
    });
    let (coordinator, offset) = before.expect("found");
    assert_eq!(offset, 40);
    let offsets_replicas = isr_of(&cluster[0], "__consumer_offsets")
        .expect("the offsets topic")
        .iter()
        .all(|(_, isr)| isr.len() == 3);
    assert!(
        offsets_replicas,
        "every offsets partition has three in-sync replicas"
    );

    eprintln!("SIGKILL the coordinator, broker {coordinator}");
    let victim = coordinator as usize - 1;
    cluster[victim].kill();
    let survivors: Vec<&Broker> = cluster
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != victim)
        .map(|(_, b)| b)
        .collect();
    let mut after = None;
    wait_until("a new coordinator with the committed offset", || {
        after = coordinator_and_offset(&survivors, &group, &t);
        after.is_some_and(|(c, _)| c != coordinator)
    });
    let (moved_to, offset) = after.expect("found");
    eprintln!("coordinator moved to broker {moved_to}");
    assert_eq!(offset, 40, "the commit survived its coordinator");

    // The group resumes where it committed, through the new coordinator.
    let bootstrap: Vec<String> = survivors.iter().map(|b| b.bootstrap()).collect();
    let out = python(
        survivors[0],
        r#"
from confluent_kafka import Consumer
c = Consumer({"bootstrap.servers": ARGS[2], "group.id": ARGS[1],
              "auto.offset.reset": "earliest", "enable.auto.commit": False})
c.subscribe([ARGS[0]])
while True:
    ms = c.consume(1, 30)
    if ms and ms[0].error() is None:
        print(ms[0].offset())
        break
c.close()
"#,
        &[&t, &group, &bootstrap.join(",")],
        Duration::from_secs(120),
    );
    out.assert_success();
    assert_eq!(out.stdout_text().trim(), "40");
    cluster[victim].restart();
}

#[test]
fn a_leader_points_a_consumer_naming_its_rack_at_the_in_sync_replica_there() {
    let _turn = shared();
    let mut env = FAST.to_vec();
    env.push((
        "SLUICE_KAFKA__REPLICA_SELECTOR_CLASS",
        "org.apache.kafka.common.replica.RackAwareReplicaSelector",
    ));
    let mut cluster = Broker::cluster(3, &env);
    for (i, broker) in cluster.iter_mut().enumerate() {
        broker.set_env("SLUICE_KAFKA__BROKER_RACK", &format!("rack-{}", i + 1));
    }
    start_agreed(&mut cluster);
    let t = topic("racks");
    create_replicated(&cluster[0], &t, 1, 1);
    wait_fully_in_sync(&cluster[0], &t);
    let leader = leader_of(&cluster[0], &t, 0);
    let follower = (1..=3).find(|b| *b != leader).expect("a follower");
    let out = python(
        &cluster[0],
        r#"
import sys
from confluent_kafka import Consumer, Producer, TopicPartition
p = Producer({"bootstrap.servers": ARGS[2], "acks": "all"})
for i in range(50):
    p.produce(ARGS[0], value=b"%d" % i)
assert p.flush(30) == 0
c = Consumer({"bootstrap.servers": ARGS[2], "group.id": ARGS[0] + "-g",
              "client.rack": ARGS[1], "enable.auto.commit": False, "debug": "fetch"})
c.assign([TopicPartition(ARGS[0], 0, 0)])
got = 0
while got < 50:
    for m in c.consume(50 - got, 10):
        assert m.error() is None, m.error()
        got += 1
c.close()
print(got)
"#,
        &[&t, &format!("rack-{follower}"), &bootstrap(&cluster)],
        CLIENT_TIMEOUT,
    );
    out.assert_success();
    assert_eq!(out.stdout_text().trim(), "50");
    let log = String::from_utf8_lossy(&out.stderr);
    let delegated: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("preferred") && l.contains(&t))
        .collect();
    eprintln!("{}", delegated.join("\n"));
    // librdkafka: "migrating from broker L to F (leader is L): preferred
    // replica updated".
    let moved = format!("to {follower} (leader is {leader}): preferred replica updated");
    assert!(
        delegated.iter().any(|l| l.contains(&moved)),
        "the consumer was pointed at broker {follower}:\n{log}"
    );
}

#[test]
fn an_eligible_replica_leads_when_the_last_in_sync_one_is_gone_and_loses_nothing() {
    let _turn = shared();
    // Five brokers, every one a controller voter: three may go down with
    // the quorum still up, and two brokers outside the partition watch.
    let mut cluster = Broker::cluster(5, FAST);
    start_agreed(&mut cluster);
    let t = topic("eligible");
    create_replicated(&cluster[0], &t, 1, 2);
    let mut replicas = Vec::new();
    wait_until("the three replicas in sync", || {
        replicas = isr_of(&cluster[0], &t)
            .and_then(|ps| ps.first().map(|p| p.1.clone()))
            .unwrap_or_default();
        replicas.len() == 3
    });
    let w = (1..=5)
        .find(|b| !replicas.contains(b))
        .expect("a broker outside the partition") as usize
        - 1;
    let produce = |via: &Broker, first: u32, count: u32| {
        python(
            via,
            r#"
from confluent_kafka import Producer
p = Producer({"bootstrap.servers": BOOTSTRAP, "acks": "all", "enable.idempotence": True})
for i in range(int(ARGS[1]), int(ARGS[1]) + int(ARGS[2])):
    p.produce(ARGS[0], value=b"%d" % i)
assert p.flush(60) == 0
"#,
            &[&t, &first.to_string(), &count.to_string()],
            CLIENT_TIMEOUT,
        )
        .assert_success();
    };
    produce(&cluster[w], 0, 100);
    let leader = leader_of(&cluster[w], &t, 0);
    let others: Vec<i32> = replicas.iter().copied().filter(|b| *b != leader).collect();
    let (first_out, eligible) = (others[0], others[1]);
    let at = |b: i32| b as usize - 1;
    // 3 -> 2 in sync: still at min.insync.replicas, nobody eligible.
    cluster[at(first_out)].kill();
    wait_until("the first follower out of sync", || {
        isr_of(&cluster[w], &t).is_some_and(|ps| ps[0].1.len() == 2)
    });
    // 2 -> 1: the follower that leaves is eligible (KIP-966).
    cluster[at(eligible)].kill();
    wait_until("the second follower out of sync", || {
        isr_of(&cluster[w], &t).is_some_and(|ps| ps[0].1 == vec![leader])
    });
    // The last in-sync replica goes too (the quorum, three of five voters
    // down, waits); the eligible replica comes back and leads, without an
    // unclean election, with everything.
    cluster[at(leader)].kill();
    cluster[at(eligible)].restart();
    wait_until("the eligible replica to lead", || {
        isr_of(&cluster[w], &t).is_some_and(|ps| ps[0].0 == eligible)
    });
    // Writable again once a second replica is in sync.
    cluster[at(first_out)].restart();
    wait_until("two replicas in sync", || {
        isr_of(&cluster[w], &t).is_some_and(|ps| ps[0].1.len() >= 2)
    });
    produce(&cluster[w], 100, 10);
    let out = python(
        &cluster[w],
        r#"
from confluent_kafka import Consumer, TopicPartition
c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": ARGS[0] + "-check",
              "enable.auto.commit": False})
c.assign([TopicPartition(ARGS[0], 0, 0)])
seen = set()
while len(seen) < 110:
    ms = c.consume(200, 10)
    if not ms:
        break
    for m in ms:
        if m.error() is None:
            seen.add(int(m.value()))
c.close()
print(len(seen), min(seen), max(seen))
"#,
        &[&t],
        CLIENT_TIMEOUT,
    );
    out.assert_success();
    assert_eq!(
        out.stdout_text().trim(),
        "110 0 109",
        "every acknowledged record"
    );
    cluster[at(leader)].restart();
}
