//! Differential: Apache Kafka's own tools (`kafka-topics.sh --describe`,
//! `kafka-metadata-quorum.sh describe --status`,
//! `kafka-broker-api-versions.sh`) against a 3-broker sluice cluster and a
//! 3-node Kafka 4.x cluster (scripts/kafka-oracle) on this machine give the
//! same shape of answer: the same fields in the same order, three voters
//! and three brokers, a replication-factor-3 topic's replicas on three
//! distinct brokers with leaders spread evenly, all of them in sync.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use common::kafka::{oracle, tool, TOOL_TIMEOUT};
use common::{free_ports, run, Broker};

/// A 3-node Kafka cluster (static quorum), stopped on drop.
struct KafkaCluster {
    dirs: Vec<PathBuf>,
    ports: Vec<u16>,
    _root: tempfile::TempDir,
}

impl KafkaCluster {
    fn start() -> KafkaCluster {
        let root = tempfile::Builder::new()
            .prefix("kafka3-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("a temporary directory");
        let id = run(oracle().arg("cluster-id"), b"", TOOL_TIMEOUT);
        id.assert_success();
        let cluster_id = id.stdout_text().trim().to_owned();
        // Three client ports and three controller ports, all distinct.
        let mut ports = free_ports(6);
        let controller_ports = ports.split_off(3);
        let voters: Vec<String> = controller_ports
            .iter()
            .enumerate()
            .map(|(i, port)| format!("{}@127.0.0.1:{port}", i + 1))
            .collect();
        let voters = voters.join(",");
        let dirs: Vec<PathBuf> = (1..=3).map(|n| root.path().join(format!("n{n}"))).collect();
        let cluster = KafkaCluster {
            dirs,
            ports,
            _root: root,
        };
        for n in 0..3 {
            let out = run(
                oracle()
                    .env("KAFKA_ORACLE_HEAP", "-Xmx384m -Xms128m")
                    .args(["start", "--node-id", &(n + 1).to_string()])
                    .args(["--voters", &voters, "--cluster-id", &cluster_id])
                    .args(["--port", &cluster.ports[n].to_string()])
                    .arg("--data")
                    .arg(&cluster.dirs[n])
                    .arg("--no-wait"),
                b"",
                TOOL_TIMEOUT,
            );
            out.assert_success();
        }
        for n in 0..3 {
            let out = run(
                oracle()
                    .args(["wait", "--port", &cluster.ports[n].to_string()])
                    .arg("--data")
                    .arg(&cluster.dirs[n]),
                b"",
                TOOL_TIMEOUT,
            );
            out.assert_success();
        }
        cluster
    }

    fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.ports[0])
    }
}

impl Drop for KafkaCluster {
    fn drop(&mut self) {
        // All at once: the last node alone has no quorum to stop with.
        let stops: Vec<_> = self
            .dirs
            .iter()
            .map(|dir| {
                oracle()
                    .args(["stop", "--data"])
                    .arg(dir)
                    .spawn()
                    .expect("running kafka-oracle stop")
            })
            .collect();
        for mut stop in stops {
            let _ = stop.wait();
        }
    }
}

/// The three tools' answers from one cluster.
struct Answers {
    quorum: String,
    topics: String,
    api_versions: String,
}

fn ask(bootstrap: &str, topic: &str) -> Answers {
    tool(
        "org.apache.kafka.tools.TopicCommand",
        bootstrap,
        &[
            "--create",
            "--topic",
            topic,
            "--partitions",
            "6",
            "--replication-factor",
            "3",
        ],
    );
    Answers {
        quorum: tool(
            "org.apache.kafka.tools.MetadataQuorumCommand",
            bootstrap,
            &["describe", "--status"],
        )
        .stdout_text(),
        topics: tool(
            "org.apache.kafka.tools.TopicCommand",
            bootstrap,
            &["--describe", "--topic", topic],
        )
        .stdout_text(),
        api_versions: tool(
            "org.apache.kafka.tools.BrokerApiVersionsCommand",
            bootstrap,
            &[],
        )
        .stdout_text(),
    }
}

/// A voter of `describe --status`: its id and its endpoints' listener
/// names.
type Voter = (i64, Vec<String>);

/// `describe --status`: its keys in order, the voters, and the observers
/// as printed.
fn quorum_shape(text: &str) -> (Vec<String>, Vec<Voter>, String) {
    let mut keys = Vec::new();
    let mut voters = Vec::new();
    let mut observers = String::new();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        keys.push(key.trim().to_owned());
        let value = value.trim();
        match key.trim() {
            "CurrentVoters" => {
                let parsed: serde_json::Value =
                    serde_json::from_str(value).unwrap_or_else(|e| panic!("{value}: {e}"));
                for v in parsed.as_array().expect("a list of voters") {
                    let id = v["id"].as_i64().expect("an id");
                    let kinds = v["endpoints"]
                        .as_array()
                        .expect("endpoints")
                        .iter()
                        .map(|e| {
                            let e = e.as_str().expect("an endpoint");
                            e.split("://").next().unwrap_or_default().to_owned()
                        })
                        .collect();
                    voters.push((id, kinds));
                }
            }
            "LeaderId" => {
                let leader: i64 = value.parse().expect("a leader id");
                assert!((1..=3).contains(&leader), "{text}");
            }
            "CurrentObservers" => observers = value.to_owned(),
            _ => {}
        }
    }
    voters.sort();
    (keys, voters, observers)
}

/// One partition line of `kafka-topics.sh --describe`: its field names,
/// leader, replicas and in-sync set.
struct PartitionLine {
    fields: Vec<String>,
    leader: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
}

fn ids(text: &str) -> Vec<i32> {
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().expect("a broker id"))
        .collect()
}

fn topics_shape(text: &str) -> (Vec<String>, BTreeMap<String, String>, Vec<PartitionLine>) {
    let mut header_fields = Vec::new();
    let mut header = BTreeMap::new();
    let mut partitions = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let pairs: Vec<(String, String)> = line
            .split('\t')
            .filter(|c| !c.trim().is_empty())
            .filter_map(|c| c.split_once(':'))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let value = |key: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        if line.starts_with('\t') {
            partitions.push(PartitionLine {
                fields: pairs.iter().map(|(k, _)| k.clone()).collect(),
                leader: value("Leader").parse().expect("a leader"),
                replicas: ids(&value("Replicas")),
                isr: ids(&value("Isr")),
            });
        } else {
            header_fields = pairs.iter().map(|(k, _)| k.clone()).collect();
            header = pairs.into_iter().collect();
        }
    }
    (header_fields, header, partitions)
}

/// `kafka-broker-api-versions.sh`: each broker's id, and each API line's
/// name and key.
fn api_versions_shape(text: &str) -> BTreeMap<i32, BTreeSet<String>> {
    let mut brokers = BTreeMap::new();
    let mut current = None;
    for line in text.lines() {
        if let Some(rest) = line.split_once("(id: ").map(|(_, r)| r) {
            let id: i32 = rest
                .split_whitespace()
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("a broker header: {line}"));
            assert!(
                line.ends_with("rack: null isFenced: false) -> ("),
                "header shape: {line}"
            );
            current = Some(id);
            brokers.insert(id, BTreeSet::new());
        } else if let (Some(id), Some((api, versions))) = (current, line.trim().split_once(": ")) {
            let versions = versions.trim_end_matches(',');
            // "UNSUPPORTED", "A to B [usable: C]" or "A [usable: A]".
            let range = versions.split(" [usable: ").next().unwrap_or_default();
            let numbers = range.split(" to ").all(|n| n.parse::<i16>().is_ok());
            let ok = versions == "UNSUPPORTED"
                || (numbers && versions.ends_with(']') && versions.contains(" [usable: "));
            assert!(ok, "an API line's shape: {line}");
            if versions != "UNSUPPORTED" {
                brokers
                    .get_mut(&id)
                    .expect("a current broker")
                    .insert(api.to_owned());
            }
        }
    }
    brokers
}

#[test]
fn kafka_tools_see_the_same_shape_of_cluster_in_sluice_and_in_kafka() {
    let sluice = Broker::start_cluster(3);
    let kafka = KafkaCluster::start();
    let ours = ask(&sluice[0].bootstrap(), "shape");
    let theirs = ask(&kafka.bootstrap(), "shape");

    // describe --status: the same keys in order, three voters with one
    // CONTROLLER endpoint each, no observers.
    let (our_keys, our_voters, our_observers) = quorum_shape(&ours.quorum);
    let (their_keys, their_voters, their_observers) = quorum_shape(&theirs.quorum);
    assert_eq!(our_keys, their_keys, "\n{}\n{}", ours.quorum, theirs.quorum);
    assert_eq!(our_voters, their_voters);
    assert_eq!(our_voters.len(), 3);
    assert_eq!(
        (our_observers.as_str(), their_observers.as_str()),
        ("[]", "[]")
    );

    // --describe: the same header and partition fields; six partitions of
    // three distinct replicas each, leaders two per broker, every replica
    // in sync.
    let (our_header, our_values, our_partitions) = topics_shape(&ours.topics);
    let (their_header, their_values, their_partitions) = topics_shape(&theirs.topics);
    assert_eq!(
        our_header, their_header,
        "\n{}\n{}",
        ours.topics, theirs.topics
    );
    for values in [&our_values, &their_values] {
        assert_eq!(values["PartitionCount"], "6");
        assert_eq!(values["ReplicationFactor"], "3");
    }
    for partitions in [&our_partitions, &their_partitions] {
        assert_eq!(partitions.len(), 6);
        let mut leaders = BTreeMap::<i32, usize>::new();
        for p in partitions.iter() {
            assert_eq!(p.fields, their_partitions[0].fields);
            let mut replicas = p.replicas.clone();
            replicas.sort_unstable();
            assert_eq!(replicas, vec![1, 2, 3]);
            assert!(p.isr.contains(&p.leader) && p.isr.iter().all(|b| p.replicas.contains(b)));
            *leaders.entry(p.leader).or_default() += 1;
        }
        assert_eq!(leaders.into_values().collect::<Vec<_>>(), vec![2, 2, 2]);
    }
    // Replicated: on both, every replica of a new topic is in sync.
    for partitions in [&our_partitions, &their_partitions] {
        for p in partitions.iter() {
            let mut isr = p.isr.clone();
            isr.sort_unstable();
            assert_eq!(isr, vec![1, 2, 3], "{:?}", p.isr);
        }
    }

    // api-versions: all three brokers, every line in Kafka's shape, and
    // every API sluice serves is one Kafka serves.
    let our_apis = api_versions_shape(&ours.api_versions);
    let their_apis = api_versions_shape(&theirs.api_versions);
    assert_eq!(
        our_apis.keys().collect::<Vec<_>>(),
        their_apis.keys().collect::<Vec<_>>()
    );
    let kafka_apis = &their_apis[&1];
    for (id, apis) in &our_apis {
        let unknown: Vec<_> = apis.difference(kafka_apis).collect();
        assert!(
            unknown.is_empty(),
            "broker {id} lists APIs Kafka does not: {unknown:?}"
        );
        assert!(apis.contains("DescribeQuorum(55)"), "{apis:?}");
    }
}
