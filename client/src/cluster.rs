//! `sluice cluster info`: a cluster's brokers, its controller quorum and
//! how partitions spread over the brokers, over the Kafka protocol (so it
//! describes any Kafka-compatible cluster, Kafka's own included).
//!
//! Owns: the requests it sends (DescribeCluster, DescribeQuorum, Metadata
//! for every topic) and the report it prints. A broker that does not
//! answer DescribeQuorum (an older Kafka) leaves the quorum part out.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::{
    DescribeClusterRequest, DescribeQuorumRequest, MetadataRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::connection::Client;
use crate::groups::{check, error_name, table};

/// Deadline of every request.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Kafka's metadata partition, whose quorum DescribeQuorum reports.
const METADATA_TOPIC: &str = "__cluster_metadata";

#[derive(Default)]
struct Load {
    leaders: usize,
    replicas: usize,
    leaderless: usize,
}

/// `sluice cluster info`: the report for the cluster `bootstrap` is in.
pub fn info(bootstrap: &str) -> anyhow::Result<String> {
    let mut client = Client::connect(bootstrap, TIMEOUT)?;
    let cluster = client.send(&DescribeClusterRequest::default(), 0)?;
    check(cluster.error_code, "describing the cluster")?;
    let metadata = client.send(&MetadataRequest::default().with_topics(None), 12)?;

    let mut load: BTreeMap<i32, Load> = BTreeMap::new();
    let mut leaderless = 0;
    let mut partitions = 0;
    for topic in &metadata.topics {
        for p in &topic.partitions {
            partitions += 1;
            if p.leader_id.0 < 0 {
                leaderless += 1;
            } else {
                load.entry(p.leader_id.0).or_default().leaders += 1;
            }
            for r in &p.replica_nodes {
                load.entry(r.0).or_default().replicas += 1;
            }
        }
    }
    for b in &metadata.brokers {
        load.entry(b.node_id.0).or_default();
    }
    let listed: BTreeMap<i32, String> = cluster
        .brokers
        .iter()
        .map(|b| (b.broker_id.0, format!("{}:{}", b.host.as_str(), b.port)))
        .collect();
    let racks: BTreeMap<i32, String> = cluster
        .brokers
        .iter()
        .map(|b| {
            let rack = b.rack.as_ref().map_or("-".to_owned(), |r| r.to_string());
            (b.broker_id.0, rack)
        })
        .collect();
    let rows: Vec<[String; 6]> = load
        .iter_mut()
        .map(|(id, l)| {
            l.leaderless = 0;
            [
                id.to_string(),
                listed
                    .get(id)
                    .cloned()
                    .unwrap_or_else(|| "(not live)".into()),
                racks.get(id).cloned().unwrap_or_else(|| "-".into()),
                if listed.contains_key(id) {
                    "live"
                } else {
                    "fenced or gone"
                }
                .into(),
                l.leaders.to_string(),
                l.replicas.to_string(),
            ]
        })
        .collect();

    let mut out = String::new();
    let _ = writeln!(out, "cluster id: {}", cluster.cluster_id.as_str());
    let _ = writeln!(out, "controller: {}", cluster.controller_id.0);
    let _ = writeln!(
        out,
        "partitions: {partitions} in {} topics, {leaderless} without a leader",
        metadata.topics.len()
    );
    let _ = writeln!(out, "\nbrokers:");
    out.push_str(&table(
        &["ID", "KAFKA", "RACK", "STATE", "LEADERS", "REPLICAS"],
        &rows,
    ));
    out.push_str(&quorum(&mut client));
    Ok(out)
}

/// The quorum section: leader, epoch, high watermark and each voter's lag.
fn quorum(client: &mut Client) -> String {
    let request = DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
        .with_topic_name(TopicName(StrBytes::from_static_str(METADATA_TOPIC)))
        .with_partitions(vec![PartitionData::default().with_partition_index(0)])]);
    let response = match client.send(&request, 1) {
        Ok(r) => r,
        Err(e) => return format!("\ncontroller quorum: not described ({e})\n"),
    };
    if response.error_code != 0 {
        return format!("\ncontroller quorum: {}\n", error_name(response.error_code));
    }
    let Some(p) = response.topics.first().and_then(|t| t.partitions.first()) else {
        return "\ncontroller quorum: no partition in the answer\n".into();
    };
    if p.error_code != 0 {
        return format!("\ncontroller quorum: {}\n", error_name(p.error_code));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let rows: Vec<[String; 4]> = p
        .current_voters
        .iter()
        .chain(&p.observers)
        .enumerate()
        .map(|(i, v)| {
            let lag = (p.high_watermark - v.log_end_offset).max(0);
            let contact = if v.last_fetch_timestamp < 0 {
                "-".to_owned()
            } else {
                format!("{} ms ago", (now - v.last_fetch_timestamp).max(0))
            };
            let role = if i < p.current_voters.len() {
                "voter"
            } else {
                "observer"
            };
            [
                format!("{} ({role})", v.replica_id.0),
                v.log_end_offset.to_string(),
                lag.to_string(),
                contact,
            ]
        })
        .collect();
    let max_lag = p
        .current_voters
        .iter()
        .map(|v| (p.high_watermark - v.log_end_offset).max(0))
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\ncontroller quorum: leader {}, epoch {}, high watermark {}, max voter lag {max_lag}",
        p.leader_id.0, p.leader_epoch, p.high_watermark
    );
    out.push_str(&table(&["NODE", "LOG-END", "LAG", "LAST-CONTACT"], &rows));
    out
}
