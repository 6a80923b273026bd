//! Apache Kafka as the reference (scripts/kafka-oracle): its command-line
//! tools run against any bootstrap address, and a one-node Kafka started
//! for a test and stopped (by the script, by pid) when dropped.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::{free_port, run, CmdOutput};

/// How long one Kafka tool (a JVM start) may take.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(120);

/// The oracle script.
pub fn oracle() -> Command {
    Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kafka-oracle"))
}

/// Runs one of Kafka's tools (its main class) against `bootstrap`, with
/// `args` after `--bootstrap-server`; not checked for success.
pub fn tool_output(class: &str, bootstrap: &str, args: &[&str]) -> CmdOutput {
    run(
        oracle()
            .args(["tool", class, "--bootstrap-server", bootstrap])
            .args(args),
        b"",
        TOOL_TIMEOUT,
    )
}

/// [`tool_output`], which must succeed.
pub fn tool(class: &str, bootstrap: &str, args: &[&str]) -> CmdOutput {
    let out = tool_output(class, bootstrap, args);
    out.assert_success();
    out
}

/// Every record of `__consumer_offsets` at `bootstrap`, decoded by Kafka's
/// own group coordinator serde (tests/clients/java/OffsetsTopicDump.java):
/// one line per record, `record TYPE KEY-JSON VALUE-JSON`. Panics when
/// Kafka cannot read one.
pub fn offsets_topic_dump(bootstrap: &str) -> String {
    let dump = tool(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/clients/java/OffsetsTopicDump.java"
        ),
        bootstrap,
        &[],
    )
    .stdout_text();
    assert!(
        dump.lines().any(|l| l == "undecodable records: 0"),
        "{dump}"
    );
    dump
}

/// The record types (Kafka's key types) of `group`'s live records in
/// `dump` ([`offsets_topic_dump`]), sorted, each once.
pub fn live_record_types<'a>(dump: &'a str, group: &str) -> Vec<&'a str> {
    let group_key = format!("\"groupId\":\"{group}\"");
    let mut types: Vec<&str> = dump
        .lines()
        .filter(|l| l.contains(&group_key) && !l.ends_with(" null"))
        .filter_map(|l| l.split(' ').nth(1))
        .collect();
    types.sort_unstable_by_key(|t| t.parse::<i32>().unwrap_or(i32::MAX));
    types.dedup();
    types
}

/// A one-node Kafka (KRaft, combined mode) on loopback.
pub struct KafkaNode {
    port: u16,
    root: tempfile::TempDir,
}

impl KafkaNode {
    /// Starts a fresh node and waits until it answers.
    pub fn start() -> KafkaNode {
        KafkaNode::start_with(&[])
    }

    /// [`KafkaNode::start`] with broker configs (`key=value`) added.
    pub fn start_with(configs: &[&str]) -> KafkaNode {
        let root = tempfile::Builder::new()
            .prefix("kafka1-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("a temporary directory");
        let port = free_port();
        let node = KafkaNode { port, root };
        let out = run(
            oracle()
                .env("KAFKA_ORACLE_HEAP", "-Xmx512m -Xms128m")
                .args(["start", "--port", &port.to_string(), "--data"])
                .arg(node.data())
                .args(configs.iter().map(|c| format!("--config={c}"))),
            b"",
            TOOL_TIMEOUT,
        );
        out.assert_success();
        node
    }

    fn data(&self) -> std::path::PathBuf {
        self.root.path().join("data")
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for KafkaNode {
    fn drop(&mut self) {
        let _ = oracle().args(["stop", "--data"]).arg(self.data()).output();
    }
}

/// Runs `lines` against a Kafka node, then against a sluice broker, members
/// of KIP-848 groups heartbeating every second on both (so that groups
/// settle soon), and checks that each printed `expected`.
pub fn assert_same_with_fast_heartbeats(expected: &[&str], lines: impl Fn(&str) -> Vec<String>) {
    let kafka = KafkaNode::start_with(&[
        "group.consumer.min.heartbeat.interval.ms=1000",
        "group.consumer.heartbeat.interval.ms=1000",
    ]);
    assert_eq!(lines(&kafka.bootstrap()), expected, "Apache Kafka");
    drop(kafka);
    let broker =
        super::Broker::start_with_env(&[("SLUICE_GROUP__CONSUMER_HEARTBEAT_INTERVAL_MS", "1000")]);
    assert_eq!(lines(&broker.bootstrap()), expected, "sluice");
}

/// Runs `lines` against a Kafka node that computes each KIP-848 target at
/// once, as sluice does, then against a sluice broker, checks that both
/// printed the same, and returns Kafka's lines.
pub fn same_with_immediate_targets(lines: impl Fn(&str) -> Vec<String>) -> Vec<String> {
    let kafka = KafkaNode::start_with(&[
        "group.consumer.min.assignment.interval.ms=0",
        "group.consumer.assignment.interval.ms=0",
    ]);
    let expected = lines(&kafka.bootstrap());
    drop(kafka);
    let broker = super::Broker::start();
    assert_eq!(lines(&broker.bootstrap()), expected);
    expected
}
