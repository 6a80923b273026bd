//! A share group's dead-letter partition led by another broker: its
//! records are produced there, and looked for there after a restart, with
//! Kafka's own client APIs (Produce with acks=all; ListOffsets by time and
//! Fetch, as a consumer reads).
//!
//! Owns: those calls. Invariants: a write counts only once the leader
//! answered it without error, after every in-sync replica holds it (acks
//! all); unlike a write on this broker it is not synced there unless that
//! broker's `log.flush` says so, as any producer's. A search reads the
//! partition from the first record at or after the time asked up to its
//! high watermark, or fails: no partial answer is taken for a whole one.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    BrokerId as WireBrokerId, FetchRequest, ListOffsetsRequest, ProduceRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_core::share::dead_letter::context_of;

use crate::message::FindDeadLetters;

use super::dead_letter::for_each_record;
use super::*;

/// How long a connection to the dead-letter partition's leader may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a produce there may take (it waits for the in-sync replicas).
const PRODUCE_TIMEOUT: Duration = Duration::from_secs(35);
/// How long one read or offset lookup may take.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes asked for per Fetch of a search.
const SEARCH_BYTES: i32 = 1024 * 1024;
/// Versions: Produce and Fetch with topic names, ListOffsets by time.
const PRODUCE_VERSION: i16 = 9;
const FETCH_VERSION: i16 = 12;
const LIST_OFFSETS_VERSION: i16 = 4;

impl Shard {
    /// Produces `batch` to `topic` [`partition`] on broker `leader` with
    /// acks=all.
    pub(super) async fn append_dead_letters_remote(
        &self,
        leader: i32,
        topic: &str,
        partition: PartitionId,
        batch: Bytes,
    ) -> Result<(), String> {
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(batch))])]);
        let mut link = self.link_to(leader, "dlq", CONNECT_TIMEOUT).await?;
        let answer = link
            .call(&request, PRODUCE_VERSION, PRODUCE_TIMEOUT)
            .await?;
        let code = answer
            .responses
            .iter()
            .flat_map(|t| t.partition_responses.iter())
            .find(|p| p.index == partition)
            .map(|p| p.error_code)
            .ok_or("an answer without the partition")?;
        match ErrorCode::from_code(code) {
            ErrorCode::None => Ok(()),
            error => Err(format!("broker {leader} answered {error}")),
        }
    }

    /// [`FindDeadLetters`] on broker `leader`: the source offsets of the
    /// group's records from the source partition written to the
    /// dead-letter partition since `since_ms`.
    pub(super) async fn find_dead_letters_remote(
        &self,
        leader: i32,
        op: &FindDeadLetters,
    ) -> Result<Vec<Offset>, String> {
        let mut link = self.link_to(leader, "dlq", CONNECT_TIMEOUT).await?;
        let name = TopicName(StrBytes::from_string(op.topic.clone()));
        let list = ListOffsetsRequest::default()
            .with_replica_id(WireBrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(name.clone())
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(op.partition)
                    .with_current_leader_epoch(-1)
                    .with_timestamp(op.since_ms)])]);
        let answer = link.call(&list, LIST_OFFSETS_VERSION, READ_TIMEOUT).await?;
        let found = answer
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter())
            .find(|p| p.partition_index == op.partition)
            .ok_or("an offsets answer without the partition")?;
        if found.error_code != 0 {
            return Err(format!(
                "broker {leader}: {}",
                ErrorCode::from_code(found.error_code)
            ));
        }
        let mut offset = found.offset;
        let mut sources = Vec::new();
        if offset < 0 {
            // Nothing written since.
            return Ok(sources);
        }
        loop {
            let fetch = FetchRequest::default()
                .with_replica_id(WireBrokerId(-1))
                .with_max_wait_ms(0)
                .with_min_bytes(0)
                .with_max_bytes(SEARCH_BYTES)
                .with_session_epoch(-1)
                .with_topics(vec![FetchTopic::default()
                    .with_topic(name.clone())
                    .with_partitions(vec![FetchPartition::default()
                        .with_partition(op.partition)
                        .with_current_leader_epoch(-1)
                        .with_fetch_offset(offset)
                        .with_log_start_offset(-1)
                        .with_partition_max_bytes(SEARCH_BYTES)])]);
            let answer = link.call(&fetch, FETCH_VERSION, READ_TIMEOUT).await?;
            let part = answer
                .responses
                .iter()
                .flat_map(|t| t.partitions.iter())
                .find(|p| p.partition_index == op.partition)
                .ok_or("a fetch answer without the partition")?;
            if part.error_code != 0 {
                return Err(format!(
                    "broker {leader}: {}",
                    ErrorCode::from_code(part.error_code)
                ));
            }
            let chunks: Vec<Bytes> = part.records.iter().cloned().collect();
            let next = for_each_record(&chunks, |record| {
                if let Some((group, topic, partition, source)) = context_of(record) {
                    if group == op.group_id
                        && topic == op.source_topic
                        && partition == op.source_partition
                    {
                        sources.push(source);
                    }
                }
            })
            .map_err(|e| format!("reading broker {leader}'s records: {e}"))?;
            if offset.max(next) >= part.high_watermark {
                return Ok(sources);
            }
            if next <= offset {
                return Err(format!(
                    "broker {leader} returned nothing at {offset}, below its high watermark {}",
                    part.high_watermark
                ));
            }
            offset = next;
        }
    }
}
