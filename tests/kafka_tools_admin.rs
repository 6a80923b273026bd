//! Differential: Apache Kafka's own admin tools against one sluice broker
//! and one Kafka 4.x node (scripts/kafka-oracle), the same commands, the
//! answers compared after masking what differs by nature (broker ids,
//! topic and member ids, timestamps):
//!
//! - kafka-acls --list and --add: SECURITY_DISABLED, as without an
//!   authorizer;
//! - kafka-topics --describe: the DescribeTopicPartitions shape, with Elr
//!   and LastKnownElr;
//! - kafka-delete-records: low watermarks, and OFFSET_OUT_OF_RANGE past
//!   the high watermark; kafka-get-offsets after it;
//! - kafka-configs --describe --all of a topic (every key and default)
//!   and of a group; --alter --add-config then --delete-config (a change
//!   reaches the topic's partitions at once: a lowered retention.ms
//!   deletes old segments);
//! - kafka-consumer-groups --delete-offsets on an empty group keeps the
//!   group; --describe and --list --type of a KIP-848 group;
//! - kafka-features describe: the same line format and the features both
//!   list at the same finalized levels (sluice lists fewer).

mod common;

use std::collections::BTreeSet;
use std::process::{Child, Stdio};
use std::time::Duration;

use common::kafka::{oracle, tool, tool_output, KafkaNode};
use common::{kcat_at, Broker};

const TOPICS: &str = "org.apache.kafka.tools.TopicCommand";
const ACLS: &str = "org.apache.kafka.tools.AclCommand";
const DELETE_RECORDS: &str = "org.apache.kafka.tools.DeleteRecordsCommand";
const GET_OFFSETS: &str = "org.apache.kafka.tools.GetOffsetShell";
const CONFIGS: &str = "org.apache.kafka.tools.ConfigCommand";
const GROUPS: &str = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand";
const FEATURES: &str = "org.apache.kafka.tools.FeatureCommand";
const CONSOLE_CONSUMER: &str = "org.apache.kafka.tools.consumer.ConsoleConsumer";

/// Both brokers' answers to one command, side by side.
struct Pair {
    sluice: String,
    kafka: String,
}

fn both(class: &str, sluice: &str, kafka: &str, args: &[&str]) -> Pair {
    let text = |bootstrap: &str| {
        let out = tool_output(class, bootstrap, args);
        format!("{}{}", out.stdout_text(), out.stderr_text())
    };
    Pair {
        sluice: text(sluice),
        kafka: text(kafka),
    }
}

/// Lines of `text`, masked (see [`mask`]), that start with `prefix`.
fn lines_with(text: &str, prefix: &str) -> Vec<String> {
    text.lines()
        .map(|l| mask(l.trim()))
        .filter(|l| l.starts_with(prefix))
        .collect()
}

/// A line with its fields (tab- or space-aligned) joined by one space, and
/// broker and topic ids masked: they differ by nature.
fn mask(line: &str) -> String {
    line.split('\t')
        .flat_map(|f| f.split("  "))
        .filter(|f| !f.trim().is_empty())
        .map(|field| {
            let field = field.trim();
            for key in ["Leader:", "Replicas:", "Isr:", "TopicId:"] {
                if field.starts_with(key) {
                    return format!("{key} *");
                }
            }
            field.to_owned()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn create_topic(bootstrap: &str, topic: &str, extra: &[&str]) {
    let mut args = vec![
        "--create",
        "--topic",
        topic,
        "--partitions",
        "2",
        "--replication-factor",
        "1",
    ];
    args.extend_from_slice(extra);
    tool(TOPICS, bootstrap, &args);
}

fn produce(bootstrap: &str, topic: &str, count: usize) {
    let input: String = (0..count).map(|i| format!("k{i}:v{i}\n")).collect();
    kcat_at(
        bootstrap,
        &["-P", "-t", topic, "-p", "0", "-K:"],
        input.as_bytes(),
    )
    .assert_success();
}

/// Waits (at most 30 s) until partition 0 of `topic` starts at `start`:
/// retention, lowered through `config` at run time, deleted what was
/// before it.
fn wait_for_log_start(bootstrap: &str, topic: &str, start: i64, config: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let want = format!("{topic}:0:{start}");
    loop {
        let out = tool(
            GET_OFFSETS,
            bootstrap,
            &["--topic", topic, "--partitions", "0", "--time", "-2"],
        );
        if out.stdout_text().trim() == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{config} lowered at run time deleted nothing: {}",
            out.stdout_text()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn kafka_admin_tools_answer_sluice_as_they_answer_kafka() {
    let broker = Broker::start_with_env(&[("SLUICE_LOG__RETENTION_CHECK_INTERVAL_MS", "200")]);
    let kafka = KafkaNode::start();
    let (s, k) = (broker.bootstrap(), kafka.bootstrap());
    let dir = tempfile::tempdir().expect("a temporary directory");

    // ACLs: no authorizer on either.
    let acls = both(ACLS, &s, &k, &["--list"]);
    for text in [&acls.sluice, &acls.kafka] {
        assert!(
            text.contains("SecurityDisabledException: No Authorizer is configured on the broker"),
            "{text}"
        );
    }

    // Topics: the same partition lines, Elr included.
    for b in [&s, &k] {
        create_topic(b, "admin-t", &[]);
        produce(b, "admin-t", 10);
    }
    let described = both(TOPICS, &s, &k, &["--describe", "--topic", "admin-t"]);
    let ours = lines_with(&described.sluice, "Topic: admin-t Partition:");
    let theirs = lines_with(&described.kafka, "Topic: admin-t Partition:");
    assert_eq!(ours.len(), 2, "{}", described.sluice);
    assert_eq!(ours, theirs);
    assert!(
        ours[0].contains("Elr:") && ours[0].contains("LastKnownElr:"),
        "{ours:?}"
    );

    // DeleteRecords: one partition moved, one past its high watermark.
    let plan = dir.path().join("delete.json");
    std::fs::write(
        &plan,
        r#"{"partitions":[{"topic":"admin-t","partition":0,"offset":4},{"topic":"admin-t","partition":1,"offset":5}],"version":1}"#,
    )
    .expect("writing the plan");
    let plan = plan.to_str().expect("a UTF-8 path");
    let deleted = both(DELETE_RECORDS, &s, &k, &["--offset-json-file", plan]);
    // The tool prints partitions in no fixed order.
    let sorted = |text: &str| {
        let mut lines = lines_with(text, "partition:");
        lines.sort();
        lines
    };
    let ours = sorted(&deleted.sluice);
    assert_eq!(ours, sorted(&deleted.kafka));
    assert_eq!(ours[0], "partition: admin-t-0 low_watermark: 4");
    assert!(ours[1].contains("OffsetOutOfRangeException"), "{ours:?}");
    let earliest = both(GET_OFFSETS, &s, &k, &["--topic", "admin-t", "--time", "-2"]);
    assert_eq!(earliest.sluice.trim(), earliest.kafka.trim());
    assert!(
        earliest.sluice.contains("admin-t:0:4"),
        "{}",
        earliest.sluice
    );

    // Configs: every topic key with its default, every group key.
    let configs = |pair: &Pair| -> Vec<String> {
        pair.sluice
            .lines()
            .chain(std::iter::once("--"))
            .chain(pair.kafka.lines())
            .map(|l| {
                l.split(" sensitive=")
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_owned()
            })
            .collect()
    };
    let all = both(
        CONFIGS,
        &s,
        &k,
        &[
            "--describe",
            "--entity-type",
            "topics",
            "--entity-name",
            "admin-t",
            "--all",
        ],
    );
    let listed = configs(&all);
    let split = listed.iter().position(|l| l == "--").expect("a separator");
    let (ours, theirs) = (&listed[..split], &listed[split + 1..]);
    let ours: BTreeSet<_> = ours.iter().filter(|l| l.contains('=')).collect();
    let theirs: BTreeSet<_> = theirs.iter().filter(|l| l.contains('=')).collect();
    assert_eq!(
        ours, theirs,
        "topic configs differ:\n{}\n{}",
        all.sluice, all.kafka
    );
    assert!(ours.len() >= 37, "{ours:?}");
    let group_configs = both(
        CONFIGS,
        &s,
        &k,
        &[
            "--describe",
            "--entity-type",
            "groups",
            "--entity-name",
            "g",
            "--all",
        ],
    );
    let listed = configs(&group_configs);
    let split = listed.iter().position(|l| l == "--").expect("a separator");
    assert_eq!(listed[..split], listed[split + 1..], "group configs differ");

    // A retention lowered at run time reaches the running partitions.
    for b in [&s, &k] {
        tool(
            CONFIGS,
            b,
            &[
                "--alter",
                "--entity-type",
                "topics",
                "--entity-name",
                "admin-t",
                "--add-config",
                "retention.ms=1000,segment.ms=100",
            ],
        );
    }
    let altered = both(
        CONFIGS,
        &s,
        &k,
        &[
            "--describe",
            "--entity-type",
            "topics",
            "--entity-name",
            "admin-t",
        ],
    );
    let changed = |text: &str| -> Vec<String> {
        text.lines()
            .map(|l| {
                l.split(" sensitive=")
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_owned()
            })
            .filter(|l| l.starts_with("retention.ms=") || l.starts_with("segment.ms="))
            .collect()
    };
    assert_eq!(changed(&altered.sluice), changed(&altered.kafka));
    assert_eq!(changed(&altered.sluice).len(), 2, "{}", altered.sluice);
    // On sluice (retention checked every 200 ms here): the next append
    // rolls the segment (segment.ms), and retention deletes the old one.
    std::thread::sleep(Duration::from_millis(300));
    produce(&s, "admin-t", 1);
    wait_for_log_start(&s, "admin-t", 10, "retention.ms");
    for b in [&s, &k] {
        tool(
            CONFIGS,
            b,
            &[
                "--alter",
                "--entity-type",
                "topics",
                "--entity-name",
                "admin-t",
                "--delete-config",
                "retention.ms,segment.ms",
            ],
        );
    }
    let restored = both(
        CONFIGS,
        &s,
        &k,
        &[
            "--describe",
            "--entity-type",
            "topics",
            "--entity-name",
            "admin-t",
        ],
    );
    assert!(changed(&restored.sluice).is_empty(), "{}", restored.sluice);
    assert!(changed(&restored.kafka).is_empty(), "{}", restored.kafka);

    // A broker default of a topic config (the cluster-wide dynamic
    // default) reaches running partitions of topics without an override.
    create_topic(&s, "admin-d", &[]);
    produce(&s, "admin-d", 10);
    let defaults = [
        "--alter",
        "--entity-type",
        "brokers",
        "--entity-default",
        "--add-config",
        "log.retention.ms=1000,log.roll.ms=100",
    ];
    let set = both(CONFIGS, &s, &k, &defaults);
    assert_eq!(set.sluice, set.kafka);
    let described = both(
        CONFIGS,
        &s,
        &k,
        &["--describe", "--entity-type", "brokers", "--entity-default"],
    );
    let default_lines = |text: &str| -> BTreeSet<String> {
        text.lines()
            .map(|l| {
                l.split(" sensitive=")
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_owned()
            })
            .filter(|l| l.starts_with("log."))
            .collect()
    };
    assert_eq!(
        default_lines(&described.sluice),
        default_lines(&described.kafka)
    );
    assert_eq!(
        default_lines(&described.sluice).len(),
        2,
        "{}",
        described.sluice
    );
    std::thread::sleep(Duration::from_millis(300));
    produce(&s, "admin-d", 1);
    wait_for_log_start(&s, "admin-d", 10, "log.retention.ms");
    for b in [&s, &k] {
        tool(
            CONFIGS,
            b,
            &[
                "--alter",
                "--entity-type",
                "brokers",
                "--entity-default",
                "--delete-config",
                "log.retention.ms,log.roll.ms",
            ],
        );
    }

    // OffsetDelete on an empty group keeps the group.
    for b in [&s, &k] {
        kcat_at(
            b,
            &[
                "-G",
                "admin-g",
                "admin-t",
                "-o",
                "beginning",
                "-e",
                "-q",
                "-X",
                "auto.commit.interval.ms=100",
            ],
            b"",
        )
        .assert_success();
        tool(
            GROUPS,
            b,
            &[
                "--delete-offsets",
                "--group",
                "admin-g",
                "--topic",
                "admin-t",
            ],
        );
    }
    let after = both(GROUPS, &s, &k, &["--list", "--state"]);
    let group_line = |text: &str| lines_with(text, "admin-g");
    assert_eq!(group_line(&after.sluice), group_line(&after.kafka));
    assert_eq!(
        group_line(&after.sluice),
        ["admin-g Empty"],
        "{}",
        after.sluice
    );

    // A KIP-848 group: described with its member and assignment, listed as
    // of the consumer type.
    let consumers: Vec<Child> = [&s, &k]
        .iter()
        .map(|b| {
            oracle()
                .args(["tool", CONSOLE_CONSUMER, "--bootstrap-server", b])
                .args(["--topic", "admin-t", "--group", "admin-848"])
                .args(["--consumer-property", "group.protocol=consumer"])
                .args(["--consumer-property", "client.id=admin-client"])
                .args(["--timeout-ms", "60000"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("starting a console consumer")
        })
        .collect();
    let stable = |b: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let out = tool_output(
                GROUPS,
                b,
                &[
                    "--describe",
                    "--group",
                    "admin-848",
                    "--members",
                    "--verbose",
                ],
            );
            let text = out.stdout_text();
            if text.contains("admin-t:0,1") || std::time::Instant::now() > deadline {
                return text;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    };
    let (ours, theirs) = (stable(&s), stable(&k));
    let member = |text: &str| -> Vec<String> {
        lines_with(text, "admin-848")
            .into_iter()
            .map(|l| {
                // group, member id, host, client id, #partitions, epochs,
                // assignments: the member id and epochs differ by nature.
                let f: Vec<&str> = l.split(' ').collect();
                let at = |i: usize| f.get(i).copied().unwrap_or("?");
                format!(
                    "{} {} {} {} {} {}",
                    at(0),
                    at(2),
                    at(3),
                    at(4),
                    at(6),
                    at(8)
                )
            })
            .collect()
    };
    assert_eq!(member(&ours), member(&theirs), "\n{ours}\n{theirs}");
    assert_eq!(member(&ours).len(), 1, "{ours}");
    let types = both(GROUPS, &s, &k, &["--list", "--type"]);
    assert_eq!(
        lines_with(&types.sluice, "admin-848"),
        lines_with(&types.kafka, "admin-848")
    );
    assert_eq!(
        lines_with(&types.sluice, "admin-848"),
        ["admin-848 Consumer"]
    );
    for mut c in consumers {
        let _ = c.kill();
        let _ = c.wait();
    }

    // Features: the same line format; what sluice lists, Kafka lists too.
    let features = both(FEATURES, &s, &k, &["describe"]);
    let feature_lines = |text: &str| lines_with(text, "Feature:");
    let ours = feature_lines(&features.sluice);
    assert!(ours.len() >= 3, "{}", features.sluice);
    let theirs = feature_lines(&features.kafka);
    for line in &ours {
        let name = line.split(' ').nth(1).unwrap_or_default();
        assert!(
            theirs.iter().any(|t| t.split(' ').nth(1) == Some(name)),
            "Kafka does not list {name}"
        );
        let fields: Vec<&str> = line.split(' ').step_by(2).collect();
        assert_eq!(
            fields,
            [
                "Feature:",
                "SupportedMinVersion:",
                "SupportedMaxVersion:",
                "FinalizedVersionLevel:",
                "Epoch:"
            ],
            "{line}"
        );
    }
}
