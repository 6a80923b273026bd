//! Share groups (KIP-932, queues) with real share consumers, judged against
//! Apache Kafka: each scenario of tests/clients/python/share_groups.py
//! (confluent-kafka's ShareConsumer) and tests/clients/java/ShareCheck.java
//! (kafka-clients' KafkaShareConsumer) runs against the real broker and
//! must print what it printed against Kafka 4.4
//! (tests/clients/python/expected/share-*.txt, recorded by
//! tests/clients/python/share_oracle.sh --record).
//!
//! - four: 4 members share a 1-partition topic, each record delivered once,
//!   never to two members at once, every member getting some.
//! - release: RELEASE redelivers with the delivery count up.
//! - reject: REJECT archives; kafka-share-groups.sh describes the group.
//! - kill: a member SIGKILLed holding records: they come back (count 2)
//!   as soon as its connection closes.
//! - stall: a member stopped holding records: they come back when their
//!   locks expire.
//! - poison: a record released every time is archived at the delivery
//!   limit, and the records after it still flow.
//! - reset: kafka-share-groups.sh --reset-offsets (refused while the group
//!   has a member) and --delete-offsets (AlterShareGroupOffsets,
//!   DeleteShareGroupOffsets).
//! - java: two KafkaShareConsumers share 100 records; a released one comes
//!   back with deliveryCount 2.
//! - `sluice group describe` of a share group: members, and per share
//!   partition its start offset, records in flight, acquired, and lag.
//! - durable (both brokers print the same; Kafka's lines were recorded by
//!   hand with scripts/kafka-oracle kill between the halves): records
//!   accepted or rejected before a broker SIGKILL are never delivered
//!   again, records held unacknowledged are, with their delivery counted.
//!   After the restart the group is there with its members, and its
//!   share partition is described from its stored state; a member
//!   polling through the restart stays a member at its epoch.
//! - cluster: on three brokers, share partitions whose state partition
//!   another broker leads (ReadShareGroupState, WriteShareGroupState)
//!   keep what was acknowledged across a rolling restart; a describe
//!   asked of any broker lists the share partitions every broker holds,
//!   and deleting the group deletes them and their state everywhere.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::cluster::{leaders, start_agreed, wait_until};
use common::programs::java_client;
use common::wire::{self, Encoder};
use common::{
    metrics, python_at, python_interpreter, run, topic, Broker, CmdOutput, Spawned, Stream,
    PY_HELPERS,
};

/// The broker settings the scenarios need: Kafka's floor for a group's
/// `share.record.lock.duration.ms` (15 s) lowered so kill and stall set
/// 3 s, and members heartbeating every second (only for speed), as
/// share_oracle.sh starts Kafka.
const ENV: &[(&str, &str)] = &[
    ("SLUICE_GROUP__SHARE_MIN_RECORD_LOCK_DURATION_MS", "1000"),
    ("SLUICE_GROUP__SHARE_HEARTBEAT_INTERVAL_MS", "1000"),
];

fn clients() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

fn expected(scenario: &str) -> String {
    let path = clients()
        .join("python/expected")
        .join(format!("{scenario}.txt"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn run_python(broker: &Broker, scenario: &str, topic: &str) -> CmdOutput {
    let out = run(
        Command::new(python_interpreter())
            .arg(clients().join("python/share_groups.py"))
            .args([scenario, &broker.bootstrap(), topic, topic]),
        b"",
        Duration::from_secs(240),
    );
    assert!(
        out.status.success(),
        "{scenario} failed:\n{}\n--- stderr\n{}\n--- broker\n{}",
        out.stdout_text(),
        out.stderr_text(),
        broker.log_tail(40)
    );
    out
}

/// `sluice group describe` of share group `group` (named as its topic):
/// the share partitions' rows (topic, partition, start offset, in flight,
/// acquired, lag), in order.
fn share_rows(broker: &Broker, group: &str) -> Vec<Vec<String>> {
    share_describe(broker, group).1
}

/// Kafka's kafka-share-groups.sh (ShareGroupCommand) with `args` against
/// `broker`: its output's non-blank lines, split into words.
fn share_groups_tool(broker: &Broker, args: &[&str]) -> Vec<Vec<String>> {
    let out = run(
        Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kafka-oracle"))
            .args([
                "tool",
                "org.apache.kafka.tools.consumer.group.ShareGroupCommand",
            ])
            .args(["--bootstrap-server", &broker.bootstrap()])
            .args(args),
        b"",
        Duration::from_secs(180),
    );
    out.assert_success();
    out.stdout_text()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

/// `sluice group describe` of share group `group`: its first line (the
/// group's state, epoch and members) and [`share_rows`].
fn share_describe(broker: &Broker, group: &str) -> (String, Vec<Vec<String>>) {
    let describe = run(
        Command::new(env!("CARGO_BIN_EXE_sluice")).args([
            "group",
            "--bootstrap",
            &broker.bootstrap(),
            "describe",
            group,
        ]),
        b"",
        Duration::from_secs(60),
    );
    describe.assert_success();
    let text = describe.stdout_text();
    assert!(
        text.starts_with(&format!("Group {group}: share group, state ")),
        "{text}"
    );
    let rows = text
        .lines()
        .filter(|l| l.starts_with(&format!("{group} ")))
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect();
    (text.lines().next().unwrap_or_default().to_owned(), rows)
}

/// Runs `scenario` and compares its lines with Kafka's, but for
/// `differences`: (Kafka's line, sluice's line), each listed in README
/// "Where Kafka's tools see a difference" with its reason.
fn matches_kafka_but(scenario: &str, differences: &[(&str, &str)]) {
    let broker = Broker::start_with_env(ENV);
    let out = run_python(&broker, scenario, &topic(scenario));
    let mut want = expected(scenario);
    for (kafka, sluice) in differences {
        assert!(
            want.contains(kafka),
            "{scenario}: Kafka's lines lack {kafka:?}"
        );
        want = want.replace(kafka, sluice);
    }
    let got = out.stdout_text();
    assert!(
        got == want,
        "{scenario}: sluice printed\n{got}\nKafka printed\n{want}\n--- stderr\n{}",
        out.stderr_text()
    );
}

fn matches_kafka(scenario: &str) {
    matches_kafka_but(scenario, &[]);
}

#[test]
fn four_members_share_one_partition_each_record_delivered_once() {
    matches_kafka("share-four");
}

#[test]
fn a_released_record_comes_back_with_its_delivery_count_up() {
    matches_kafka("share-release");
}

#[test]
fn a_rejected_record_is_archived_and_the_tool_describes_the_group() {
    // kafka-share-groups.sh --describe --offsets prints the lag from
    // DescribeShareGroupOffsets v1, as against Kafka.
    matches_kafka("share-reject");
}

#[test]
fn a_killed_members_records_come_back_at_once() {
    matches_kafka("share-kill");
}

#[test]
fn a_stalled_members_records_come_back_when_their_locks_expire() {
    matches_kafka("share-stall");
}

#[test]
fn a_poison_record_is_archived_at_the_delivery_limit() {
    matches_kafka("share-poison");
}

#[test]
fn share_partitions_beyond_the_shards_bound_are_read_back_from_their_state() {
    // At most 2 share partitions in memory per shard: four groups on one
    // partition (one shard) push the idle ones out, and each group's
    // accepted records stay accepted when it comes back.
    let env: Vec<(&str, &str)> = ENV
        .iter()
        .copied()
        .chain([("SLUICE_SHARD__SHARE_PARTITIONS_MAX", "2")])
        .collect();
    let broker = Broker::start_with_env(&env);
    let out = run_python(&broker, "share-many", &topic("share-many"));
    assert_eq!(out.stdout_text(), expected("share-many"));
    let text = metrics(&broker);
    let held: Vec<u64> = text
        .lines()
        .filter(|l| l.starts_with("sluice_share_partitions{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    assert!(!held.is_empty() && held.iter().all(|n| *n <= 2), "{text}");
}

#[test]
fn the_tool_resets_and_deletes_an_empty_groups_offsets() {
    matches_kafka("share-reset");
}

#[test]
fn a_read_committed_group_gets_committed_records_only() {
    // share.isolation.level=read_committed: nothing of an aborted or open
    // transaction; a read_uncommitted group of the same topic gets all.
    matches_kafka("share-read-committed");
}

#[test]
fn rejected_and_over_limit_records_go_to_the_dead_letter_topic() {
    matches_kafka("share-dlq");
}

#[test]
fn a_dead_letter_copy_carries_the_key_and_value_but_not_the_headers() {
    matches_kafka("share-dlq-copy");
}

#[test]
fn a_rejected_record_deleted_while_acquired_is_a_dead_letter_without_its_value() {
    // DeleteRecords moves the log start past an acquired record before its
    // member rejects it: its dead letter carries the context headers only.
    matches_kafka("share-dlq-deleted");
}

#[test]
fn dead_letter_topics_are_checked_as_kafka_checks_them() {
    matches_kafka("share-dlq-configs");
}

#[test]
fn kafkas_console_tools_share_reject_into_the_dead_letter_topic_and_describe() {
    // kafka-topics, kafka-configs, the console producer, the console
    // share consumer (--reject, then accepting), the console consumer on
    // the dead-letter topic and kafka-share-groups --describe --offsets.
    let broker = Broker::start_with_env(ENV);
    let name = topic("share-console");
    let out = run(
        Command::new(clients().join("share_console.sh")).args([&broker.bootstrap(), &name]),
        b"",
        Duration::from_secs(600),
    );
    assert!(
        out.status.success(),
        "share_console.sh failed:\n{}\n--- stderr\n{}\n--- broker\n{}",
        out.stdout_text(),
        out.stderr_text(),
        broker.log_tail(40)
    );
    // sluice's start offset moves past the accepted records at once, where
    // Kafka's written start offset stays at the first of them (the lag is
    // 0 on both).
    let want = expected("share-console").replace("NAME NAME 0 3 0", "NAME NAME 0 6 0");
    let got = out.stdout_text();
    assert!(
        got == want,
        "share-console: sluice printed\n{got}\nKafka printed\n{want}\n--- stderr\n{}",
        out.stderr_text()
    );
}

/// Runs ShareCheck.java's `scenario` against a fresh broker and compares
/// its lines with Kafka's (expected/`recorded`.txt).
fn java_matches_kafka(scenario: &str, recorded: &str) {
    let dir = java_client();
    let broker = Broker::start_with_env(ENV);
    let name = topic(scenario);
    let out = run(
        Command::new("java")
            .current_dir(&dir)
            .arg("-cp")
            .arg("target/dependency/*")
            .arg("ShareCheck.java")
            .args([&broker.bootstrap(), scenario, &name, &name]),
        b"",
        Duration::from_secs(300),
    );
    let got = out.stdout_text();
    let want = expected(recorded);
    assert!(
        out.status.success() && got == want,
        "{scenario}: sluice printed\n{got}\nKafka printed\n{want}\n--- stderr\n{}\n--- broker\n{}",
        out.stderr_text(),
        broker.log_tail(40)
    );
}

#[test]
fn the_java_share_consumer_shares_and_redelivers() {
    java_matches_kafka("java-share", "share-java");
}

#[test]
fn the_java_share_consumer_renews_its_locks_and_acquires_by_record_limit() {
    // ShareFetch and ShareAcknowledge v2 (KIP-1222): share.acquire.mode=
    // record_limit hands out 3 of a 10-record batch; RENEW keeps a whole
    // batch from another member past its lock. (The holder holds every
    // record: a holder that left some available could have them taken by
    // its own client's fetch ahead, a race inside the Java client that
    // made an earlier version of this scenario fail about 1 run in 12.)
    java_matches_kafka("java-renew", "share-java-renew");
}

#[test]
fn acknowledged_records_stay_acknowledged_across_a_broker_sigkill() {
    let mut broker = Broker::start_with_env(ENV);
    let name = topic("share-durable");
    let before = run_python(&broker, "share-durable-before", &name);
    assert_eq!(before.stdout_text(), expected("share-durable-before"));
    // `sluice group describe` shows where the share partition stands: 0-14
    // done, 15-29 in flight (available again: their holder is gone).
    assert_eq!(
        share_rows(&broker, &name),
        [[name.as_str(), "0", "15", "15", "0", "15"]]
    );
    broker.kill();
    broker.restart();
    // After the restart the group is there with its member (which exited
    // without leaving: a member until its session expires, as in Kafka),
    // and no broker holds its share partition: where it stands is read
    // from its stored state (records 15-29 in flight again), its lag from
    // the partition's high watermark (30) as Kafka's coordinator computes
    // it.
    let (state, rows) = share_describe(&broker, &name);
    assert!(
        state.contains("state Stable, group epoch 1, 1 member(s)"),
        "{state}"
    );
    assert_eq!(rows, [[name.as_str(), "0", "15", "15", "0", "15"]]);
    // As Kafka's tool sees it (DescribeShareGroupOffsets v1).
    let tool = share_groups_tool(&broker, &["--describe", "--offsets", "--group", &name]);
    assert_eq!(
        tool,
        [
            vec!["GROUP", "TOPIC", "PARTITION", "START-OFFSET", "LAG"],
            vec![name.as_str(), name.as_str(), "0", "15", "15"]
        ]
    );
    let after = run_python(&broker, "share-durable-after", &name);
    assert_eq!(
        after.stdout_text(),
        expected("share-durable-after"),
        "after the restart\n--- stderr\n{}",
        after.stderr_text()
    );
}

#[test]
fn dead_letters_are_written_once_across_a_broker_sigkill() {
    let mut broker = Broker::start_with_env(ENV);
    let name = topic("share-dlq-durable");
    let before = run_python(&broker, "share-dlq-durable-before", &name);
    assert_eq!(before.stdout_text(), expected("share-dlq-durable-before"));
    broker.kill();
    broker.restart();
    let after = run_python(&broker, "share-dlq-durable-after", &name);
    assert_eq!(
        after.stdout_text(),
        expected("share-dlq-durable-after"),
        "after the restart\n--- stderr\n{}",
        after.stderr_text()
    );
    // Since the restart only 10-14: 0-4 were written, and archived,
    // before the kill.
    let text = metrics(&broker);
    let written: u64 = text
        .lines()
        .filter(|l| l.starts_with("sluice_share_dead_letters_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(written, 5, "{text}");
}

#[test]
fn share_partitions_keep_their_state_on_another_broker_across_a_rolling_restart() {
    // One state partition: the broker leading it keeps the state of the
    // share partitions the other two lead.
    let env: Vec<(&str, &str)> = ENV
        .iter()
        .copied()
        .chain([("SLUICE_GROUP__SHARE_STATE_TOPIC_NUM_PARTITIONS", "1")])
        .collect();
    let mut cluster = Broker::cluster(3, &env);
    start_agreed(&mut cluster);
    let name = topic("share-cluster");
    let before = run_python(&cluster[0], "share-cluster-before", &name);
    assert_eq!(
        before.stdout_text(),
        "group configs set: share.auto.offset.reset=earliest\n\
         produced p0-o0..p2-o3 to partitions 0-2, offsets 0-3\n\
         partition 0: offsets 0-3 (delivery count 1)\n\
         partition 1: offsets 0-3 (delivery count 1), offsets 2 (delivery count 2)\n\
         partition 2: offsets 0-3 (delivery count 1)\n\
         released p1-o2 once, accepted the rest\n",
        "--- stderr\n{}",
        before.stderr_text()
    );
    // Each broker leads one partition, so each holds one share partition,
    // and the one state partition is led by one of them: a describe asked
    // of any broker lists all three, each done up to offset 4.
    for broker in &cluster {
        assert_eq!(
            share_rows(broker, &name),
            (0..3)
                .map(|p| [name.as_str(), &p.to_string(), "4", "0", "0", "0"].map(str::to_owned))
                .collect::<Vec<_>>(),
            "asked of broker {}",
            broker.node_id()
        );
    }
    let mut led_by: Vec<i32> = Vec::new();
    wait_until("the topic's leaders", || {
        leaders(&cluster[0], &name).is_some_and(|l| {
            led_by = l.iter().map(|(_, leader)| *leader).collect();
            true
        })
    });
    let mut state_leader = Vec::new();
    wait_until("the share state partition's leader", || {
        leaders(&cluster[0], "__share_group_state").is_some_and(|l| {
            state_leader = l.iter().map(|(_, leader)| *leader).collect();
            true
        })
    });
    led_by.sort_unstable();
    assert_eq!(led_by, vec![1, 2, 3], "each broker leads one partition");
    assert_eq!(state_leader.len(), 1, "one state partition");
    for broker in cluster.iter_mut() {
        broker.kill();
        broker.restart();
    }
    for broker in &cluster {
        wait_until("every partition led again", || {
            leaders(broker, &name).is_some_and(|l| l.iter().all(|(e, l)| *e == 0 && *l > 0))
        });
    }
    let after = run_python(&cluster[0], "share-cluster-after", &name);
    assert_eq!(
        after.stdout_text(),
        "after the restarts, produced p0-o4, p1-o4, p2-o4\n\
         a new member gets: p0-o4 (delivery count 1) p1-o4 (delivery count 1) p2-o4 (delivery count 1)\n",
        "--- stderr\n{}",
        after.stderr_text()
    );
    // Deleting the group (its member left) deletes what every broker
    // holds and stores of it: nothing of it is described after.
    let connect =
        |b: &Broker| wire::Conn::connect(b.addr(), Duration::from_secs(5)).expect("connect");
    for broker in &cluster {
        assert_eq!(
            described_topics(&mut connect(broker), &name),
            1,
            "before the deletion, asked of broker {}",
            broker.node_id()
        );
    }
    share_groups_tool(&cluster[0], &["--delete", "--group", &name]);
    for broker in &cluster {
        assert_eq!(
            described_topics(&mut connect(broker), &name),
            0,
            "after the deletion, asked of broker {}",
            broker.node_id()
        );
    }
}

/// How many topics DescribeShareGroupOffsets v0 lists for `group` (all of
/// its share partitions: no topics named).
fn described_topics(conn: &mut wire::Conn, group: &str) -> u8 {
    assert!(group.len() < 126, "a group name of one length byte");
    let mut body = Encoder::default();
    body.uvarint(2) // one group
        .compact_string(group)
        .uvarint(0) // topics: null, every one
        .uvarint(0) // the group's tagged fields
        .uvarint(0); // the request's
    conn.send(&wire::flexible_request_frame(90, 0, 9, &body.0))
        .expect("sending");
    let frame = conn.read_frame().expect("an answer");
    // Correlation id, header tags, throttle time, groups (1), the group
    // id, then its topics (a compact array: count + 1).
    assert_eq!(&frame[..4], &9i32.to_be_bytes());
    let at = 4 + 1 + 4 + 1;
    assert_eq!(frame[at] as usize, group.len() + 1);
    assert_eq!(&frame[at + 1..at + 1 + group.len()], group.as_bytes());
    frame[at + 1 + group.len()] - 1
}

/// WriteShareGroupState v0 (85) as a Kafka share-partition leader sends
/// it: partition 0 of topic id `topic_id` of `group` at `leader_epoch`,
/// start offset `start`, no batches. The partition's error code.
fn write_share_state(
    conn: &mut wire::Conn,
    group: &str,
    topic_id: [u8; 16],
    leader_epoch: i32,
    start: i64,
) -> i16 {
    let mut body = Encoder::default();
    body.compact_string(group)
        .uvarint(2) // one topic
        .raw(&topic_id)
        .uvarint(2) // one partition
        .i32(0) // partition
        .i32(0) // state epoch
        .i32(leader_epoch)
        .i64(start)
        .uvarint(1) // no state batches
        .uvarint(0) // the partition's tagged fields
        .uvarint(0) // the topic's
        .uvarint(0); // the request's
    conn.send(&wire::flexible_request_frame(85, 0, 7, &body.0))
        .expect("sending");
    let frame = conn.read_frame().expect("an answer");
    // Correlation id, header tags, results (1), topic id, partitions (1),
    // partition index, then the error code.
    assert_eq!(&frame[..4], &7i32.to_be_bytes());
    assert_eq!(&frame[6..22], &topic_id, "the topic echoed");
    let at = 4 + 1 + 1 + 16 + 1 + 4;
    i16::from_be_bytes([frame[at], frame[at + 1]])
}

#[test]
fn a_share_state_write_from_an_older_leader_epoch_is_fenced() {
    // As Kafka's share coordinator: the last stored state's leader epoch
    // wins, also after the broker restarted (read back from the log).
    const FENCED_LEADER_EPOCH: i16 = 74;
    let mut broker = Broker::start();
    let group = topic("share-fence");
    let id = [7u8; 16];
    let connect =
        |b: &Broker| wire::Conn::connect(b.addr(), Duration::from_secs(5)).expect("connect");
    let mut conn = connect(&broker);
    assert_eq!(write_share_state(&mut conn, &group, id, 5, 10), 0);
    assert_eq!(write_share_state(&mut conn, &group, id, 6, 12), 0);
    assert_eq!(
        write_share_state(&mut conn, &group, id, 5, 11),
        FENCED_LEADER_EPOCH
    );
    assert_eq!(
        write_share_state(&mut conn, &group, id, 6, 13),
        0,
        "the same epoch"
    );
    assert_eq!(
        write_share_state(&mut conn, &group, id, -1, 0),
        0,
        "no epoch: unchecked"
    );
    // Another share partition's key is its own.
    assert_eq!(write_share_state(&mut conn, &group, [8u8; 16], 1, 0), 0);
    broker.kill();
    broker.restart();
    let mut conn = connect(&broker);
    assert_eq!(
        write_share_state(&mut conn, &group, [8u8; 16], 0, 0),
        FENCED_LEADER_EPOCH,
        "read back after the restart"
    );
    assert_eq!(write_share_state(&mut conn, &group, [8u8; 16], 2, 0), 0);
}

/// Makes `replicas` (the first the preferred leader) the replicas of
/// `name`'s partition 0 with Kafka's ReassignPartitionsCommand, elects
/// the first its leader with Kafka's LeaderElectionCommand, and waits
/// until every broker sees it lead.
fn lead_from(cluster: &[Broker], name: &str, replicas: [i32; 3]) {
    let plan = format!(
        r#"{{"version":1,"partitions":[{{"topic":"{name}","partition":0,"replicas":[{},{},{}]}}]}}"#,
        replicas[0], replicas[1], replicas[2]
    );
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("plan.json");
    std::fs::write(&path, plan).expect("writing the plan");
    let out = run(
        Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kafka-oracle"))
            .args([
                "tool",
                "org.apache.kafka.tools.reassign.ReassignPartitionsCommand",
            ])
            .args(["--bootstrap-server", &cluster[0].bootstrap()])
            .args([
                "--reassignment-json-file",
                &path.display().to_string(),
                "--execute",
            ]),
        b"",
        Duration::from_secs(180),
    );
    out.assert_success();
    let out = run(
        Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kafka-oracle"))
            .args(["tool", "org.apache.kafka.tools.LeaderElectionCommand"])
            .args(["--bootstrap-server", &cluster[0].bootstrap()])
            .args([
                "--election-type",
                "preferred",
                "--topic",
                name,
                "--partition",
                "0",
            ]),
        b"",
        Duration::from_secs(180),
    );
    out.assert_success();
    for broker in cluster {
        wait_until("the preferred replica to lead", || {
            leaders(broker, name) == Some(vec![(0, replicas[0])])
        });
    }
}

#[test]
fn a_broker_leading_a_partition_again_serves_its_share_state_as_stored() {
    // Broker 1 leads, then 2 (1 stays a follower, alive), then 1 again:
    // what 2's members accepted must not come back from what 1 held.
    let mut cluster = Broker::cluster(3, ENV);
    start_agreed(&mut cluster);
    let name = topic("share-moves");
    let expect = |scenario: &str, want: &str| {
        let out = run_python(&cluster[0], scenario, &name);
        assert_eq!(
            out.stdout_text(),
            want,
            "{scenario}\n--- stderr\n{}",
            out.stderr_text()
        );
    };
    expect(
        "share-moves-1",
        "created TOPIC: 1 partition on brokers 1, 2, 3\n\
         group configs set: share.auto.offset.reset=earliest\n\
         produced m-0 m-1\n\
         a member gets: m-0 (delivery count 1) m-1 (delivery count 1)\n",
    );
    assert_eq!(leaders(&cluster[0], &name), Some(vec![(0, 1)]));
    lead_from(&cluster, &name, [2, 1, 3]);
    expect(
        "share-moves-2",
        "produced m-2 m-3\n\
         a member gets: m-2 (delivery count 1) m-3 (delivery count 1)\n",
    );
    lead_from(&cluster, &name, [1, 2, 3]);
    expect(
        "share-moves-3",
        "produced m-4\n\
         a member gets: m-4 (delivery count 1)\n",
    );
}

#[test]
fn a_dead_letter_partition_on_another_broker_gets_the_rejected_record() {
    let mut cluster = Broker::cluster(3, ENV);
    start_agreed(&mut cluster);
    let name = topic("share-cluster-dlq");
    let out = run_python(&cluster[0], "share-cluster-dlq", &name);
    let text = out.stdout_text();
    assert!(
        text.starts_with(
            "created TOPIC on broker 1 and dlq.TOPIC on broker 2\n\
             group configs set: share.auto.offset.reset=earliest \
             errors.deadletterqueue.topic.name=dlq.TOPIC \
             errors.deadletterqueue.copy.record.enable=true\n\
             produced c-0 c-1 c-2\n\
             a member: offsets 0-2 (delivery count 1); rejected c-1, accepted the rest\n\
             dlq partition 0: key k-1 value c-1 headers __dlq.errors.topic=TOPIC \
             __dlq.errors.partition=0 __dlq.errors.offset=1 __dlq.errors.group=GROUP \
             __dlq.errors.delivery.count=1 __dlq.errors.message=Offset rejected by client.\n\
             DLQ records per partition: 0:1 (high watermarks 1)\n"
        ),
        "{text}\n--- stderr\n{}",
        out.stderr_text()
    );
    assert_eq!(
        leaders(&cluster[0], &format!("dlq.{name}")),
        Some(vec![(0, 2)]),
        "the dead-letter partition is on broker 2"
    );
}

/// A share consumer that polls until its standard input closes, printing
/// "read N" as its records come.
const SHARE_MEMBER: &str = r#"
import sys, threading, time
from confluent_kafka import ShareConsumer
topic, group = ARGS[0], ARGS[1]
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
c = ShareConsumer({"bootstrap.servers": BOOTSTRAP, "group.id": group})
c.subscribe([topic])
read = 0
end = time.monotonic() + 120
while not stop.is_set() and time.monotonic() < end:
    for m in c.poll(0.2):
        if m.error() is None:
            read += 1
            print("read", read)
print("closing")
c.close()
"#;

/// A share consumer reads on through a SIGKILL and restart of the broker,
/// a member of its group at the same epoch throughout (Kafka keeps a share
/// group's members in its records, and so does sluice: before, the group
/// came back Empty and the member joined again at a new epoch).
#[test]
fn a_share_member_stays_a_member_through_a_broker_restart() {
    let mut broker = Broker::start_with_env(ENV);
    let name = topic("share-member-restart");
    let produce = |broker: &Broker, first: usize| {
        let out = python_at(
            &broker.bootstrap(),
            r#"
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic, ResourceType
topic, first = ARGS[0], int(ARGS[1])
if first == 0:
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(30)
    entry = ConfigEntry("share.auto.offset.reset", "earliest", incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource(ResourceType.GROUP, topic, incremental_configs=[entry])
    for f in admin.incremental_alter_configs([resource]).values():
        f.result(30)
confluent_produce(topic, first, 10)
print("produced")
"#,
            &[&name, &first.to_string()],
            Duration::from_secs(120),
        );
        out.assert_success();
        out.stdout_text()
    };
    assert_eq!(produce(&broker, 0), "produced\n");
    let mut member = Spawned::start(
        Command::new(python_interpreter())
            .arg("-c")
            .arg(format!("{PY_HELPERS}\n{SHARE_MEMBER}"))
            .arg(broker.bootstrap())
            .args([&name, &name])
            .env("PYTHONUNBUFFERED", "1"),
    );
    member.wait_for_line(Stream::Stdout, Duration::from_secs(90), |l| l == "read 10");
    let (before, _) = share_describe(&broker, &name);
    assert!(
        before.contains("state Stable") && before.ends_with("1 member(s)"),
        "{before}"
    );
    broker.kill();
    broker.restart();
    // Back as it was, before the member's first heartbeat since.
    assert_eq!(share_describe(&broker, &name).0, before);
    assert_eq!(produce(&broker, 10), "produced\n");
    member.wait_for_line(Stream::Stdout, Duration::from_secs(90), |l| l == "read 20");
    // A few heartbeats later (1 s apart), still the same member at the
    // same epoch: it never joined again.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        share_describe(&broker, &name).0,
        before,
        "{}",
        broker.log_tail(40)
    );
    // Kafka's own group coordinator reads every record sluice wrote of
    // it: the group's (key type 11), its assignment's (12, 13) and its
    // member's (10, 14), in Kafka's layouts.
    let dump = common::kafka::offsets_topic_dump(&broker.bootstrap());
    assert_eq!(
        common::kafka::live_record_types(&dump, &name),
        ["10", "11", "12", "13", "14"],
        "{dump}"
    );
    member.close_stdin();
    member.wait_for_line(Stream::Stdout, Duration::from_secs(60), |l| l == "closing");
}
