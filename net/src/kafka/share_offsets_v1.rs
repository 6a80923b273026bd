//! DescribeShareGroupOffsets version 1 on the wire: the protocol crate
//! knows version 0 only. Version 1's request is version 0's; its response
//! adds `Lag` (int64, -1 when unknown) after each partition's
//! `LeaderEpoch` (as Kafka 4.4's schema has it). So a version 1 request is
//! read as version 0, and a version 1 response is version 0's with each
//! partition's lag put in, from where the handler left it ([`set_lag`]).
//!
//! Owns: where the field sits. Pure: bytes in, bytes out.
//!
//! Invariant: [`response_v1`] gives back the version 0 body with exactly
//! one lag inserted per partition, in order, or an error (a body that does
//! not walk, or fewer lags than partitions), never a panic.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::describe_share_group_offsets_response::DescribeShareGroupOffsetsResponsePartition;
use kafka_protocol::messages::{ApiKey, DescribeShareGroupOffsetsResponse};

use super::share_v2::{skip_compact_string, skip_tagged_fields, uvarint};

/// Whether `api_key` at `version` is translated here.
pub fn translated(api_key: ApiKey, version: i16) -> bool {
    version == 1 && api_key == ApiKey::DescribeShareGroupOffsets
}

/// Where a handler leaves a partition's lag for the encoder: an unknown
/// tagged field the encoder takes out before it encodes (never sent).
const LAG_TAG: i32 = i32::MAX;

/// Leaves `lag` in `partition` for [`take_lags`].
pub fn set_lag(partition: &mut DescribeShareGroupOffsetsResponsePartition, lag: i64) {
    partition
        .unknown_tagged_fields
        .insert(LAG_TAG, Bytes::copy_from_slice(&lag.to_be_bytes()));
}

/// The lags [`set_lag`] left in `response`, taken out, one per partition in
/// the order they are encoded (-1 where none was left).
pub fn take_lags(response: &mut DescribeShareGroupOffsetsResponse) -> Vec<i64> {
    let mut lags = Vec::new();
    for group in &mut response.groups {
        for topic in &mut group.topics {
            for p in &mut topic.partitions {
                let lag = p
                    .unknown_tagged_fields
                    .remove(&LAG_TAG)
                    .and_then(|b| <[u8; 8]>::try_from(&b[..]).ok())
                    .map_or(-1, i64::from_be_bytes);
                lags.push(lag);
            }
        }
    }
    lags
}

/// The count of a compact array at `at` (null reads as empty) and the
/// position after it.
fn compact_array(buf: &[u8], at: usize) -> Result<(usize, usize), String> {
    let (n, at) = uvarint(buf, at)?;
    Ok((n.saturating_sub(1) as usize, at))
}

/// `at` moved past `len` fixed bytes, if the body holds them.
fn fixed(buf: &[u8], at: usize, len: usize) -> Result<usize, String> {
    at.checked_add(len)
        .filter(|end| *end <= buf.len())
        .ok_or_else(|| "a body cut short".to_owned())
}

/// A DescribeShareGroupOffsets response body encoded at version 0 as
/// version 1: `lags[i]` put in after the i-th partition's `LeaderEpoch`.
pub fn response_v1(v0: &[u8], lags: &[i64]) -> Result<Bytes, String> {
    let mut out = BytesMut::with_capacity(v0.len() + 8 * lags.len());
    let mut copied = 0;
    let mut lags = lags.iter();
    let mut at = fixed(v0, 0, 4)?; // ThrottleTimeMs
    let (groups, next) = compact_array(v0, at)?;
    at = next;
    for _ in 0..groups {
        at = skip_compact_string(v0, at)?; // GroupId
        let (topics, next) = compact_array(v0, at)?;
        at = next;
        for _ in 0..topics {
            at = skip_compact_string(v0, at)?; // TopicName
            at = fixed(v0, at, 16)?; // TopicId
            let (partitions, next) = compact_array(v0, at)?;
            at = next;
            for _ in 0..partitions {
                // PartitionIndex, StartOffset, LeaderEpoch; then Lag.
                at = fixed(v0, at, 4 + 8 + 4)?;
                let lag = lags.next().ok_or("fewer lags than partitions")?;
                out.put_slice(&v0[copied..at]);
                out.put_i64(*lag);
                copied = at;
                at = fixed(v0, at, 2)?; // ErrorCode
                at = skip_compact_string(v0, at)?; // ErrorMessage
                at = skip_tagged_fields(v0, at)?;
            }
            at = skip_tagged_fields(v0, at)?;
        }
        at = fixed(v0, at, 2)?; // ErrorCode
        at = skip_compact_string(v0, at)?; // ErrorMessage
        at = skip_tagged_fields(v0, at)?;
    }
    skip_tagged_fields(v0, at)?;
    out.put_slice(&v0[copied..]);
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::describe_share_group_offsets_response::{
        DescribeShareGroupOffsetsResponseGroup, DescribeShareGroupOffsetsResponseTopic,
    };
    use kafka_protocol::messages::{GroupId, TopicName};
    use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

    use super::*;

    fn partition(index: i32, lag: Option<i64>) -> DescribeShareGroupOffsetsResponsePartition {
        let mut p = DescribeShareGroupOffsetsResponsePartition::default()
            .with_partition_index(index)
            .with_start_offset(100 + i64::from(index))
            .with_leader_epoch(-1);
        p.unknown_tagged_fields
            .insert(10_000, Bytes::from_static(&[1, 2]));
        if let Some(lag) = lag {
            set_lag(&mut p, lag);
        }
        p
    }

    fn response() -> DescribeShareGroupOffsetsResponse {
        let topic = |name: &str, partitions| {
            DescribeShareGroupOffsetsResponseTopic::default()
                .with_topic_name(TopicName(StrBytes::from_string(name.to_owned())))
                .with_partitions(partitions)
        };
        DescribeShareGroupOffsetsResponse::default().with_groups(vec![
            DescribeShareGroupOffsetsResponseGroup::default()
                .with_group_id(GroupId(StrBytes::from_static_str("g")))
                .with_topics(vec![
                    topic("a", vec![partition(0, Some(7)), partition(1, None)]),
                    topic("b", vec![partition(2, Some(0))]),
                ]),
            DescribeShareGroupOffsetsResponseGroup::default()
                .with_group_id(GroupId(StrBytes::from_static_str("empty")))
                .with_error_code(69)
                .with_error_message(Some(StrBytes::from_static_str("Group empty not found."))),
        ])
    }

    #[test]
    fn a_v1_response_is_v0_with_each_partitions_lag_after_its_leader_epoch() {
        let mut r = response();
        let lags = take_lags(&mut r);
        assert_eq!(lags, [7, -1, 0]);
        let mut v0 = BytesMut::new();
        r.encode(&mut v0, 0).expect("encodes");
        let v1 = response_v1(&v0, &lags).expect("walks");
        assert_eq!(v1.len(), v0.len() + 3 * 8);
        // Each partition's fields, found by value in both bodies: after
        // the start offset and leader epoch, v1 carries the lag.
        for (index, lag) in [(0i64, 7i64), (1, -1), (2, 0)] {
            let start = (100 + index).to_be_bytes();
            let find = |body: &[u8]| {
                body.windows(8)
                    .position(|w| w == start)
                    .expect("the start offset")
            };
            let (at0, at1) = (find(&v0), find(&v1));
            assert_eq!(&v1[at1 + 12..at1 + 20], &lag.to_be_bytes());
            // What follows (error code, message, tags) is v0's.
            assert_eq!(&v1[at1 + 20..at1 + 28], &v0[at0 + 12..at0 + 20]);
        }
        // The lag tag is never sent; sluice's own tags are.
        let back = DescribeShareGroupOffsetsResponse::decode(&mut v0.freeze(), 0).expect("decodes");
        for p in back
            .groups
            .iter()
            .flat_map(|g| &g.topics)
            .flat_map(|t| &t.partitions)
        {
            assert_eq!(
                p.unknown_tagged_fields.keys().collect::<Vec<_>>(),
                [&10_000]
            );
        }
    }

    #[test]
    fn damaged_bodies_and_missing_lags_are_errors_not_panics() {
        let mut r = response();
        let lags = take_lags(&mut r);
        let mut v0 = BytesMut::new();
        r.encode(&mut v0, 0).expect("encodes");
        for cut in 0..v0.len() {
            assert!(response_v1(&v0[..cut], &lags).is_err(), "cut at {cut}");
        }
        assert!(response_v1(&v0, &lags[..2]).is_err());
    }
}
