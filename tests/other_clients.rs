//! Three more Kafka clients against a real broker, each a small program
//! under tests/clients/ with its dependencies pinned by its own registry's
//! lock file:
//!
//! - Java: the reference client, org.apache.kafka:kafka-clients
//!   (tests/clients/java, jars fetched by Maven into target/dependency);
//! - Go: franz-go's kgo and kadm (tests/clients/go, go.mod/go.sum);
//! - JavaScript: kafkajs (tests/clients/js, package-lock.json).
//!
//! Each client has three tests: one for admin, produce and consume by
//! assignment, one for consumer groups (subscribe, commit, resume from the
//! commits, members sharing the partitions, and the group admin calls),
//! and one for transactions with the client's own transactional API
//! (commits and aborts read back under both isolation levels, a fenced
//! zombie producer; for Java also read-process-write).
//! The first test of a client to run brings it up to date (mvn, go build,
//! npm ci: the first run fetches the dependencies, later ones are fast and
//! offline), once for both; each test then starts its own broker and runs
//! the program against it with a deadline. The brokers keep Kafka's
//! initial rebalance delay (3 s): the group tests start two members of a
//! new group together and expect both in its first generation. A program
//! prints one `ok ...` line per checked step and ends with `PASS ...`
//! (exit 0) or `FAIL ...` with what it expected and what it got. A missing
//! toolchain fails the test with a message naming it; nothing is skipped.
//!
//! `SLUICE_CLIENT_LOG=debug cargo test --test other_clients` turns on the
//! clients' own debug logs (they go to stderr, shown on failure).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;
use std::time::Duration;

use common::programs::{client_dir, java_client, require_tool, setup};
use common::{fetch_all, kcat, message, run, topic, Broker, CmdOutput};

/// Bound on one client program. Each program also has a watchdog of its
/// own (150 s) that makes it print FAIL and exit.
const PROGRAM_TIMEOUT: Duration = Duration::from_secs(180);

/// Asserts that a client program exited 0 and printed a PASS line (and no
/// FAIL line); returns its stdout lines.
fn assert_passed(out: &CmdOutput) -> Vec<String> {
    let stdout = out.stdout_text();
    let passed = stdout.lines().any(|l| l.starts_with("PASS "));
    let failed = stdout.lines().any(|l| l.starts_with("FAIL"));
    assert!(
        out.status.success() && passed && !failed,
        "{} exited with {} (PASS line: {passed}, FAIL line: {failed})\n--- stdout\n{stdout}\n--- stderr\n{}",
        out.what,
        out.status,
        out.stderr_text()
    );
    // Shown with --nocapture: what was checked.
    eprintln!("{}:\n{stdout}", out.what);
    stdout.lines().map(str::to_owned).collect()
}

/// Runs SluiceClientCheck.java against `broker` with `args` (mode, topic,
/// ...).
fn java_check(dir: &Path, broker: &Broker, args: &[&str]) -> CmdOutput {
    let classpath = format!("{}/*", dir.join("target/dependency").display());
    run(
        Command::new("java")
            .arg("-cp")
            .arg(classpath)
            .arg(dir.join("SluiceClientCheck.java"))
            .arg(broker.bootstrap())
            .args(args),
        b"",
        PROGRAM_TIMEOUT,
    )
}

/// tests/clients/go built to target/clientcheck, once per run of these
/// tests; module downloads (first run only) are checked against go.sum.
fn go_client() -> PathBuf {
    require_tool("go", &["version"], "the franz-go client test");
    let dir = client_dir("go");
    static SETUP: Once = Once::new();
    SETUP.call_once(|| {
        setup(
            &dir,
            "go",
            &["build", "-mod=readonly", "-o", "target/clientcheck", "."],
        )
    });
    dir
}

/// Runs the franz-go program against `broker` with `args` (mode, topic,
/// ...).
fn go_check(dir: &Path, broker: &Broker, args: &[&str]) -> CmdOutput {
    run(
        Command::new(dir.join("target/clientcheck"))
            .arg(broker.bootstrap())
            .args(args),
        b"",
        PROGRAM_TIMEOUT,
    )
}

/// tests/clients/js with exactly what package-lock.json pins installed
/// into node_modules, once per run of these tests (`npm ci` empties
/// node_modules first: a second install while a test runs kafkajs would
/// pull it away).
fn kafkajs_client() -> PathBuf {
    require_tool("node", &["--version"], "the kafkajs client test");
    require_tool("npm", &["--version"], "installing kafkajs");
    let dir = client_dir("js");
    static SETUP: Once = Once::new();
    SETUP.call_once(|| setup(&dir, "npm", &["ci", "--no-audit", "--no-fund"]));
    dir
}

/// Runs check.js against `broker` with `args` (mode, topic, ...).
fn kafkajs_check(dir: &Path, broker: &Broker, args: &[&str]) -> CmdOutput {
    run(
        Command::new("node")
            .arg(dir.join("check.js"))
            .arg(broker.bootstrap())
            .args(args),
        b"",
        PROGRAM_TIMEOUT,
    )
}

#[test]
fn java_kafka_clients_admin_idempotent_produce_and_assigned_consume() {
    let dir = java_client();
    let broker = Broker::start();
    let t = topic("java");
    assert_passed(&java_check(&dir, &broker, &["roundtrip", &t]));
}

/// The Java client against a cluster of three (SluiceClientCheck.java
/// `cluster`), bootstrapped from the third broker only: three brokers
/// described, a replication-factor-3 topic led by all three, and 1000
/// records produced (idempotent, acks=all) and read back, each partition
/// at its own leader.
#[test]
fn java_kafka_clients_bootstrap_from_any_broker_of_a_cluster() {
    let dir = java_client();
    let cluster = Broker::start_cluster(3);
    let t = topic("java-cluster");
    assert_passed(&java_check(&dir, &cluster[2], &["cluster", &t]));
}

/// KafkaConsumers in consumer groups (SluiceClientCheck.java `group`): one
/// reads every record, commits and closes; a new member of the group
/// resumes at the commits and polls nothing; two members of a new group
/// split the partitions and read every record once between them; Admin
/// describes and lists the groups and their committed offsets.
#[test]
fn java_kafka_clients_consumer_groups_commit_resume_and_share() {
    let dir = java_client();
    let broker = Broker::start();
    let (t, g) = (topic("java-groups"), topic("java-group"));
    assert_passed(&java_check(&dir, &broker, &["group", &t, &g]));
}

#[test]
fn go_franz_go_admin_idempotent_produce_and_assigned_consume() {
    let dir = go_client();
    let broker = Broker::start();
    let t = topic("franz-go");
    assert_passed(&go_check(&dir, &broker, &["roundtrip", &t]));
}

/// kgo clients in consumer groups (the program's `group` mode, franz-go's
/// cooperative-sticky balancer): one reads every record, commits and
/// closes; a new member of the group resumes at the commits and polls
/// nothing; two members of a new group split the partitions and read every
/// record once between them; kadm describes and lists the groups and
/// fetches their committed offsets.
#[test]
fn go_franz_go_consumer_groups_commit_resume_and_share() {
    let dir = go_client();
    let broker = Broker::start();
    let (t, g) = (topic("franz-go-groups"), topic("franz-go-group"));
    assert_passed(&go_check(&dir, &broker, &["group", &t, &g]));
}

/// kafkajs produces (default and idempotent producers) and checks acks
/// and offsets; kcat reads every partition back by assignment (kafkajs
/// has no group-less consumer) and the test compares each record with the
/// partition layout kafkajs reported, and the stored batches show the
/// idempotent producer's id and sequences.
#[test]
fn kafkajs_admin_and_produce_read_back_with_kcat() {
    require_tool("kcat", &["-V"], "reading back what kafkajs produced");
    let dir = kafkajs_client();
    let broker = Broker::start();
    let t = topic("kafkajs");
    let node = |mode: &str| kafkajs_check(&dir, &broker, &[mode, &t]);
    let lines = assert_passed(&node("produce"));

    // "layout P: I0,I1,...": the record indices at offsets 0, 1, ... of P.
    let mut layout: Vec<(i32, Vec<usize>)> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("layout "))
        .map(|l| {
            let (p, indices) = l.split_once(": ").expect("layout P: I,I,...");
            let indices = indices
                .split(',')
                .map(|i| i.parse().expect("a record index"))
                .collect();
            (p.parse().expect("a partition number"), indices)
        })
        .collect();
    layout.sort();
    assert_eq!(
        layout.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
        [0, 1, 2],
        "kafkajs reported the layout of partitions {layout:?}"
    );
    let mut all: Vec<usize> = layout.iter().flat_map(|(_, i)| i.clone()).collect();
    all.sort_unstable();
    assert_eq!(
        all,
        (0..1000).collect::<Vec<_>>(),
        "kafkajs's layout does not hold each record once"
    );

    // Every partition from the beginning to its end, by assignment.
    for (partition, indices) in &layout {
        let out = kcat(
            &broker,
            &[
                "-C",
                "-t",
                &t,
                "-p",
                &partition.to_string(),
                "-o",
                "beginning",
                "-e",
                "-q",
                "-f",
                "%o %k %s [%h]\\n",
            ],
            b"",
        );
        out.assert_success();
        let got: Vec<String> = out.stdout_text().lines().map(str::to_owned).collect();
        let expected: Vec<String> = indices
            .iter()
            .enumerate()
            .map(|(offset, &i)| {
                let (key, value) = message(i);
                format!(
                    "{offset} {} {} []",
                    String::from_utf8(key).expect("ASCII key"),
                    String::from_utf8(value).expect("ASCII value")
                )
            })
            .collect();
        assert_eq!(
            got.len(),
            expected.len(),
            "partition {partition}: kcat read {} records, kafkajs had {} acked",
            got.len(),
            expected.len()
        );
        for (g, e) in got.iter().zip(&expected) {
            assert_eq!(g, e, "partition {partition}: kcat read vs kafkajs acked");
        }
    }

    // The batches as stored: records 0..499 came from the default producer
    // (no producer id), 500..999 from the idempotent one (its producer id,
    // and per partition the sequence of its records, starting at 0).
    let mut idempotent_pid = None;
    for (partition, indices) in &layout {
        let (high_watermark, batches) = fetch_all(&broker, &t, *partition);
        assert_eq!(
            high_watermark,
            indices.len() as i64,
            "partition {partition}"
        );
        let mut sequence = 0;
        for batch in &batches {
            let first = usize::try_from(batch.base_offset).expect("a non-negative offset");
            let last = first + batch.last_offset_delta as usize;
            let idempotent = indices[first] >= 500;
            assert!(
                indices[first..=last]
                    .iter()
                    .all(|&i| (i >= 500) == idempotent),
                "partition {partition}: batch at {first}..={last} mixes the two producers' records"
            );
            if idempotent {
                let pid = *idempotent_pid.get_or_insert(batch.producer.producer_id);
                assert!(
                    pid >= 0
                        && batch.producer.producer_id == pid
                        && batch.producer.base_sequence == sequence,
                    "partition {partition}: idempotent batch at offset {first} stored with \
                     {:?}, expected producer id {pid} (>= 0) and base sequence {sequence}",
                    batch.producer
                );
                sequence += batch.last_offset_delta + 1;
            } else {
                assert_eq!(
                    batch.producer.producer_id, -1,
                    "partition {partition}: default producer's batch at offset {first}: {:?}",
                    batch.producer
                );
            }
        }
    }

    assert_passed(&node("delete"));
}

/// kafkajs consumers in consumer groups (check.js `consume`, after
/// `produce`): one reads every record, commits and disconnects; a new
/// member of the group resumes at the commits and gets nothing; two
/// members of a new group split the partitions and read every record once
/// between them, auto-committing; admin describes and lists the groups and
/// fetches their committed offsets.
#[test]
fn kafkajs_consumer_groups_commit_resume_and_share() {
    let dir = kafkajs_client();
    let broker = Broker::start();
    let (t, g) = (topic("kafkajs-groups"), topic("kafkajs-group"));
    assert_passed(&kafkajs_check(&dir, &broker, &["produce", &t]));
    assert_passed(&kafkajs_check(&dir, &broker, &["consume", &t, &g]));
}

/// Transactions with the Java client (SluiceClientCheck.java `txn`): four
/// transactions committed and aborted in turn, read back read_committed
/// (exactly the committed records) and read_uncommitted (all of them); a
/// second producer with the same transactional.id fences the first, whose
/// commit then fails with InvalidProducerEpochException (Kafka 4.4's
/// answer under transaction version 2, which this broker finalizes too:
/// the client adds no partition itself, every EndTxn bumps its epoch, and
/// the zombie's produce is refused); and a read-process-write round with
/// sendOffsetsToTransaction (TxnOffsetCommit v5, no AddOffsetsToTxn),
/// whose output and committed offsets appear together.
#[test]
fn java_kafka_clients_transactions_commit_abort_fence_and_read_process_write() {
    let dir = java_client();
    let broker = Broker::start();
    let t = topic("java-txn");
    let out = java_check(&dir, &broker, &["txn", &t]);
    assert_passed(&out);
    assert!(
        out.stdout_text().contains("(transaction.version 2)"),
        "the client ran transaction version 2:\n{}",
        out.stdout_text()
    );
}

/// Transactions with franz-go (the program's `txn` mode): committed and
/// aborted transactions read back under both isolation levels, and a
/// fenced zombie producer gets PRODUCER_FENCED.
#[test]
fn go_franz_go_transactions_commit_abort_and_fence() {
    let dir = go_client();
    let broker = Broker::start();
    let t = topic("franz-go-txn");
    assert_passed(&go_check(&dir, &broker, &["txn", &t]));
}

/// Transactions with kafkajs (check.js `txn`): committed and aborted
/// transactions read back under both isolation levels, and a fenced
/// zombie producer gets INVALID_PRODUCER_EPOCH (kafkajs speaks versions
/// that predate PRODUCER_FENCED, and the broker answers it as Kafka does).
#[test]
fn kafkajs_transactions_commit_abort_and_fence() {
    let dir = kafkajs_client();
    let broker = Broker::start();
    let t = topic("kafkajs-txn");
    assert_passed(&kafkajs_check(&dir, &broker, &["txn", &t]));
}
