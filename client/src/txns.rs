//! `sluice txn list | describe | describe-producers`: the transactions of any
//! Kafka-compatible broker over the Kafka protocol, like Kafka's
//! `kafka-transactions.sh`.
//!
//! Owns: the requests each command sends (Metadata for the brokers,
//! ListTransactions to each of them, FindCoordinator for a transactional
//! id and DescribeTransactions to its coordinator, DescribeProducers to a
//! partition's leader) and the tables it prints. A transaction's start
//! time and a producer's last write are printed in UTC.

use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{anyhow, Context as _};
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::{
    DescribeProducersRequest, DescribeTransactionsRequest, ListTransactionsRequest,
    MetadataRequest, TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;

use crate::connection::Client;
use crate::groups::{check, find_coordinator, table};
use crate::leaders::Leaders;

/// Deadline of every request the commands send.
const TIMEOUT: Duration = Duration::from_secs(30);

/// FindCoordinator's key type for a transactional id.
const TRANSACTION_KEY: i8 = 1;

/// `sluice txn list`: every transactional id of every broker, with its
/// coordinator, producer id and state.
pub fn list(bootstrap: &str) -> anyhow::Result<String> {
    let mut client = Client::connect(bootstrap, TIMEOUT)?;
    let metadata = client.send(
        &MetadataRequest::default().with_topics(Some(Vec::new())),
        12,
    )?;
    let mut rows: Vec<[String; 4]> = Vec::new();
    for broker in &metadata.brokers {
        let addr = format!("{}:{}", broker.host.as_str(), broker.port);
        let mut coordinator =
            Client::connect(&addr, TIMEOUT).with_context(|| format!("connecting to {addr}"))?;
        let listed = coordinator.send(&ListTransactionsRequest::default(), 0)?;
        check(
            listed.error_code,
            &format!("listing the transactions of broker {}", broker.node_id.0),
        )?;
        rows.extend(listed.transaction_states.iter().map(|t| {
            [
                t.transactional_id.0.to_string(),
                broker.node_id.0.to_string(),
                t.producer_id.0.to_string(),
                t.transaction_state.to_string(),
            ]
        }));
    }
    rows.sort();
    Ok(table(
        &["TRANSACTIONAL-ID", "COORDINATOR", "PRODUCER-ID", "STATE"],
        &rows,
    ))
}

/// `sluice txn describe ID`: the transaction of `transactional_id` as its
/// coordinator holds it, and the partitions it spans.
pub fn describe(bootstrap: &str, transactional_id: &str) -> anyhow::Result<String> {
    let (coordinator_id, mut coordinator) = find_coordinator(
        bootstrap,
        transactional_id,
        TRANSACTION_KEY,
        "the transaction",
    )?;
    let request =
        DescribeTransactionsRequest::default().with_transactional_ids(vec![TransactionalId(
            StrBytes::from_string(transactional_id.to_owned()),
        )]);
    let state = coordinator
        .send(&request, 0)?
        .transaction_states
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("no answer for transactional id {transactional_id}"))?;
    check(state.error_code, "describing the transaction")?;
    let mut out = String::new();
    let started = utc(state.transaction_start_time_ms);
    let _ = writeln!(
        out,
        "Transactional id {transactional_id}: state {}, coordinator {coordinator_id}, producer id {} epoch {}, timeout {} ms, started {started}\n",
        state.transaction_state.as_str(),
        state.producer_id.0,
        state.producer_epoch,
        state.transaction_timeout_ms,
    );
    let mut rows: Vec<[String; 2]> = state
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| [t.topic.0.to_string(), p.to_string()])
        })
        .collect();
    rows.sort();
    out.push_str(&table(&["TOPIC", "PARTITION"], &rows));
    Ok(out)
}

/// `sluice txn describe-producers --topic T --partition P`: the producers
/// of one partition as its leader holds them, with the first offset of
/// each one's open transaction.
pub fn describe_producers(bootstrap: &str, topic: &str, partition: i32) -> anyhow::Result<String> {
    let mut leaders = Leaders::discover(bootstrap, topic)?;
    let leader = leaders.client_for(partition)?;
    let request = DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
        .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
        .with_partition_indexes(vec![partition])]);
    let answer = leader.send(&request, 0)?;
    let described = answer
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .find(|p| p.partition_index == partition)
        .ok_or_else(|| anyhow!("no answer for {topic}/{partition}"))?;
    check(
        described.error_code,
        &format!("describing the producers of {topic}/{partition}"),
    )?;
    let mut rows: Vec<[String; 6]> = described
        .active_producers
        .iter()
        .map(|p| {
            [
                p.producer_id.0.to_string(),
                p.producer_epoch.to_string(),
                p.last_sequence.to_string(),
                utc(p.last_timestamp),
                p.coordinator_epoch.to_string(),
                if p.current_txn_start_offset < 0 {
                    "-".to_owned()
                } else {
                    p.current_txn_start_offset.to_string()
                },
            ]
        })
        .collect();
    rows.sort_by_key(|r| r[0].parse::<i64>().unwrap_or(i64::MAX));
    Ok(table(
        &[
            "PRODUCER-ID",
            "EPOCH",
            "LAST-SEQUENCE",
            "LAST-WRITE",
            "COORDINATOR-EPOCH",
            "TXN-START-OFFSET",
        ],
        &rows,
    ))
}

/// Milliseconds since the epoch as an RFC 3339 time in UTC (to the
/// millisecond); `-` for none (a negative time).
fn utc(ms: i64) -> String {
    match u64::try_from(ms) {
        Ok(ms) => {
            humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
        }
        Err(_) => "-".to_owned(),
    }
}
