//! A share partition's durable state kept on another broker: when the
//! `__share_group_state` partition of a share partition is led elsewhere,
//! its state is read and written there with Kafka's own inter-broker RPCs,
//! ReadShareGroupState (84) and WriteShareGroupState (85), as a Kafka
//! share-partition leader asks its share coordinator.
//!
//! Owns: the client side of those two calls. The standard fields carry
//! the state as Kafka's share coordinator stores it; the stored record's
//! value itself (sluice's ShareSnapshot, with the write time the
//! dead-letter check after a restart needs) travels in a tagged field,
//! [`STATE_VALUE_TAG`], which a Kafka broker would skip; empty, it is a
//! tombstone (the state deleted).
//!
//! One idle connection per broker is kept for the next call (a call takes
//! it out while it runs); [`Shard::call_broker`] makes every share-group
//! call to another broker on them (a describe's too).
//!
//! Invariants: a write is answered by the state partition's leader only
//! once the record is synced on every in-sync replica (its
//! [`Shard::write_share_state`], as for a local write); any failure is an
//! error here (NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE or the
//! leader's), so nothing is answered as durable that was not written.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{read_share_group_state_request, write_share_group_state_request};
use kafka_protocol::messages::{ReadShareGroupStateRequest, WriteShareGroupStateRequest};
use kafka_protocol::protocol::{Request, StrBytes};
use sluice_core::share::state::{ShareKey, ShareSnapshot, STATE_VALUE_TAG};
use uuid::Uuid;

use super::*;

/// How long a connection to the state partition's leader may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one call may take (the leader waits up to 5 s for its
/// replicas).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

impl Shard {
    /// The stored state of `key` (the value of its last record), read
    /// from broker `leader`, which leads its state partition.
    pub(super) async fn read_share_state_remote(
        &self,
        leader: i32,
        key: &ShareKey,
    ) -> Result<Option<Bytes>, ErrorCode> {
        let request = ReadShareGroupStateRequest::default()
            .with_group_id(StrBytes::from_string(key.group_id.clone()))
            .with_topics(vec![
                read_share_group_state_request::ReadStateData::default()
                    .with_topic_id(Uuid::from_bytes(key.topic_id))
                    .with_partitions(vec![
                        read_share_group_state_request::PartitionData::default()
                            .with_partition(key.partition)
                            .with_leader_epoch(-1),
                    ]),
            ]);
        let answer = self.call_broker(leader, &request).await?;
        let result = answer
            .results
            .iter()
            .flat_map(|t| t.partitions.iter())
            .find(|p| p.partition == key.partition)
            .ok_or(ErrorCode::CoordinatorNotAvailable)?;
        match ErrorCode::from_code(result.error_code) {
            ErrorCode::None => Ok(result.unknown_tagged_fields.get(&STATE_VALUE_TAG).cloned()),
            error => Err(error),
        }
    }

    /// Writes `snapshot` as `key`'s state (`None`: a tombstone) through
    /// broker `leader`, which leads its state partition; returns once it
    /// is durable there.
    pub(super) async fn write_share_state_remote(
        &self,
        leader: i32,
        key: &ShareKey,
        snapshot: Option<&ShareSnapshot>,
    ) -> Result<(), ErrorCode> {
        let empty = ShareSnapshot::default();
        let fields = snapshot.unwrap_or(&empty);
        let batches = fields
            .batches
            .iter()
            .map(|b| {
                write_share_group_state_request::StateBatch::default()
                    .with_first_offset(b.first_offset)
                    .with_last_offset(b.last_offset)
                    .with_delivery_state(b.delivery_state)
                    .with_delivery_count(b.delivery_count)
            })
            .collect();
        let mut partition = write_share_group_state_request::PartitionData::default()
            .with_partition(key.partition)
            .with_state_epoch(fields.state_epoch)
            .with_leader_epoch(fields.leader_epoch)
            .with_start_offset(fields.start_offset)
            .with_state_batches(batches);
        let value = snapshot.map_or_else(Bytes::new, |s| Bytes::from(s.encode()));
        partition
            .unknown_tagged_fields
            .insert(STATE_VALUE_TAG, value);
        let request = WriteShareGroupStateRequest::default()
            .with_group_id(StrBytes::from_string(key.group_id.clone()))
            .with_topics(vec![
                write_share_group_state_request::WriteStateData::default()
                    .with_topic_id(Uuid::from_bytes(key.topic_id))
                    .with_partitions(vec![partition]),
            ]);
        let answer = self.call_broker(leader, &request).await?;
        let result = answer
            .results
            .iter()
            .flat_map(|t| t.partitions.iter())
            .find(|p| p.partition == key.partition)
            .ok_or(ErrorCode::CoordinatorNotAvailable)?;
        match ErrorCode::from_code(result.error_code) {
            ErrorCode::None => Ok(()),
            error => Err(error),
        }
    }
}

impl Shard {
    /// Sends `request` (version 0) to broker `broker`, on the idle
    /// connection kept for it or a new one, and keeps the connection for
    /// the next call once answered; COORDINATOR_NOT_AVAILABLE when no
    /// answer comes. A kept connection that fails (the broker restarted)
    /// is dropped and the call made once more on a new one, so `request`
    /// must be idempotent: the share state's are (a read; a write of the
    /// same state, which its epoch lets through again), and so is a
    /// describe.
    pub async fn call_broker<R: Request>(
        &self,
        broker: i32,
        request: &R,
    ) -> Result<R::Response, ErrorCode> {
        self.call_broker_at(broker, request, 0).await
    }

    /// [`Self::call_broker`] at `version` of the request.
    pub async fn call_broker_at<R: Request>(
        &self,
        broker: i32,
        request: &R,
        version: i16,
    ) -> Result<R::Response, ErrorCode> {
        let kept = self.share_state_links.borrow_mut().remove(&broker);
        if let Some(mut link) = kept {
            if let Ok(answer) = link.call(request, version, CALL_TIMEOUT).await {
                self.share_state_links.borrow_mut().insert(broker, link);
                return Ok(answer);
            }
        }
        let mut link = self
            .link_to(broker, "share-groups", CONNECT_TIMEOUT)
            .await
            .map_err(|e| unreachable_broker(broker, &e))?;
        let answer = link
            .call(request, version, CALL_TIMEOUT)
            .await
            .map_err(|e| unreachable_broker(broker, &e))?;
        self.share_state_links.borrow_mut().insert(broker, link);
        Ok(answer)
    }
}

/// A call to another broker that did not get an answer.
fn unreachable_broker(broker: i32, error: &str) -> ErrorCode {
    tracing::debug!(
        broker,
        error,
        "a broker asked about share groups is unreachable"
    );
    ErrorCode::CoordinatorNotAvailable
}
