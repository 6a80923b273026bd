//! `sluice topic`, `sluice produce` and `sluice consume`, the real binary,
//! run against a sluice broker and against Apache Kafka (they speak only
//! the Kafka protocol, so each command must work the same on both):
//! create, list, describe, alter-config, add-partitions and delete a topic
//! (tables and `--format json`); produce lines with keys and headers and
//! read them back from the beginning, an offset and a time, as templates
//! and JSON lines; read as a group member that resumes where it
//! committed; and refusals that name the Kafka error. Keyed records land
//! in the partition Kafka's own console producer (the Java client's
//! murmur2 partitioner) puts them in.

mod common;

use std::process::Command;
use std::time::Duration;

use common::kafka::{oracle, KafkaNode, TOOL_TIMEOUT};
use common::{run, Broker, CmdOutput};

fn sluice(args: &[&str], stdin: &str) -> CmdOutput {
    run(
        Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(args)
            .env("RUST_BACKTRACE", "0"),
        stdin.as_bytes(),
        Duration::from_secs(60),
    )
}

fn ok(args: &[&str], stdin: &str) -> String {
    let out = sluice(args, stdin);
    out.assert_success();
    out.stdout_text()
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines().map(json).collect()
}

/// Every command against the broker at `b`.
fn exercise(b: &str) {
    let bs = ["--bootstrap", b];
    let with = |args: &[&str]| -> Vec<String> {
        args.iter()
            .chain(bs.iter())
            .map(|s| s.to_string())
            .collect()
    };
    let call = |args: &[&str], stdin: &str| {
        let args = with(args);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        ok(&refs, stdin)
    };
    let fail = |args: &[&str]| {
        let args = with(args);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = sluice(&refs, "");
        assert!(!out.status.success(), "{args:?} succeeded");
        out.stderr_text()
    };

    // Topics.
    let created = call(
        &[
            "topic",
            "create",
            "cli",
            "-p",
            "2",
            "-r",
            "1",
            "-c",
            "retention.ms=3600000",
        ],
        "",
    );
    assert!(
        created.contains("created topic cli (2 partitions"),
        "{created}"
    );
    let again = fail(&["topic", "create", "cli", "-p", "2"]);
    assert!(
        again.contains("TOPIC_ALREADY_EXISTS (36)") && again.contains("hint:"),
        "{again}"
    );
    let listed = json(&call(&["topic", "list", "--format", "json"], ""));
    let cli = listed
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["name"] == "cli"))
        .unwrap_or_else(|| panic!("cli not listed: {listed}"));
    assert_eq!(cli["partitions"], 2);
    let table = call(&["topic", "list"], "");
    assert!(
        table.starts_with("NAME") && table.contains("cli"),
        "{table}"
    );
    call(
        &[
            "topic",
            "alter-config",
            "cli",
            "--set",
            "cleanup.policy=compact",
            "--delete",
            "retention.ms",
        ],
        "",
    );
    call(&["topic", "add-partitions", "cli", "--total", "3"], "");
    let described = json(&call(&["topic", "describe", "cli", "--format", "json"], ""));
    assert_eq!(
        described["partitions"].as_array().map(Vec::len),
        Some(3),
        "{described}"
    );
    assert_eq!(
        described["configs"]["cleanup.policy"], "compact",
        "{described}"
    );
    assert!(
        described["configs"].get("retention.ms").is_none(),
        "{described}"
    );
    let text = call(&["topic", "describe", "cli"], "");
    assert!(
        text.contains("cleanup.policy=compact") && text.contains("PARTITION"),
        "{text}"
    );
    let missing = fail(&["topic", "describe", "no-such-topic"]);
    assert!(missing.contains("UNKNOWN_TOPIC_OR_PARTITION"), "{missing}");

    // Produce with keys and headers; read back.
    call(&["topic", "create", "lines", "-p", "1"], "");
    let input: String = (0..10)
        .map(|i| format!("src=cli|k{i}:value {i}\n"))
        .collect();
    let produced = call(
        &[
            "produce",
            "lines",
            "-K",
            ":",
            "--header-separator",
            "|",
            "--format",
            "json",
        ],
        &input,
    );
    let offsets: Vec<i64> = json_lines(&produced)
        .iter()
        .map(|v| v["offset"].as_i64().unwrap_or(-1))
        .collect();
    assert_eq!(offsets, (0..10).collect::<Vec<i64>>());
    let read = call(
        &[
            "consume",
            "lines",
            "--from",
            "beginning",
            "-e",
            "-f",
            "json",
        ],
        "",
    );
    let records = json_lines(&read);
    assert_eq!(records.len(), 10, "{read}");
    assert_eq!(records[3]["key"], "k3");
    assert_eq!(records[3]["value"], "value 3");
    assert_eq!(records[3]["headers"]["src"], "cli");
    let templated = call(
        &[
            "consume",
            "lines",
            "--from",
            "7",
            "-e",
            "-f",
            "%p/%o %k=%v\\n",
        ],
        "",
    );
    assert_eq!(
        templated,
        "0/7 k7=value 7\n0/8 k8=value 8\n0/9 k9=value 9\n"
    );
    let by_time = call(&["consume", "lines", "--from", "@0", "-c", "2"], "");
    assert_eq!(by_time, "value 0\nvalue 1\n");

    // A group member resumes where it committed.
    let first = call(
        &[
            "consume",
            "lines",
            "--from",
            "beginning",
            "-g",
            "readers",
            "-c",
            "4",
        ],
        "",
    );
    assert_eq!(first.lines().count(), 4, "{first}");
    let second = call(
        &[
            "consume", "lines", "-g", "readers", "-c", "3", "-f", "%o\\n",
        ],
        "",
    );
    assert_eq!(second, "4\n5\n6\n", "the member resumed at its commit");

    call(&["topic", "delete", "cli"], "");
    call(&["topic", "delete", "lines"], "");
}

#[test]
fn the_cli_works_against_sluice_and_kafka_alike() {
    let broker = Broker::start();
    let kafka = KafkaNode::start();
    exercise(&broker.bootstrap());
    exercise(&kafka.bootstrap());

    // Keyed records: sluice produce partitions as Kafka's console producer.
    let keys: Vec<String> = (0..40).map(|i| format!("key-{i}")).collect();
    let input: String = keys.iter().map(|k| format!("{k}:v\n")).collect();
    let b = broker.bootstrap();
    ok(
        &["topic", "create", "keyed", "-p", "8", "--bootstrap", &b],
        "",
    );
    ok(&["produce", "keyed", "-K", ":", "--bootstrap", &b], &input);
    let k = kafka.bootstrap();
    ok(
        &["topic", "create", "keyed", "-p", "8", "--bootstrap", &k],
        "",
    );
    run(
        oracle().args([
            "tool",
            "org.apache.kafka.tools.ConsoleProducer",
            "--bootstrap-server",
            &k,
            "--topic",
            "keyed",
            "--property",
            "parse.key=true",
            "--property",
            "key.separator=:",
        ]),
        input.as_bytes(),
        TOOL_TIMEOUT,
    )
    .assert_success();
    let partition_of = |bootstrap: &str| {
        let read = ok(
            &[
                "consume",
                "keyed",
                "--from",
                "beginning",
                "-e",
                "-f",
                "%k %p\\n",
                "--bootstrap",
                bootstrap,
            ],
            "",
        );
        let mut pairs: Vec<String> = read.lines().map(str::to_owned).collect();
        pairs.sort();
        pairs
    };
    let on_sluice = partition_of(&b);
    assert_eq!(on_sluice.len(), keys.len());
    assert_eq!(on_sluice, partition_of(&k));
}
