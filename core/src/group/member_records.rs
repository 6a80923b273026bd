//! The records of a KIP-848 or share group's members in
//! `__consumer_offsets`, in Kafka's layouts: member metadata (key type 5
//! of a consumer group, 10 of a share group), the target assignment's
//! epoch (6, 12), one member's part of the target assignment (7, 13) and
//! a member's current assignment (8, 14). A share group's member metadata
//! has no instance id, regular expression, rebalance timeout or assignor,
//! and its current assignment no partitions pending revocation and no
//! assignment epochs. All values are version 0, flexible: compact strings
//! and arrays, a UUID per topic. The one tagged field read and written is
//! a consumer member's AssignmentEpochs (tag 0 of each topic of its
//! current assignment); others are skipped on reading.
//!
//! Owns: the values' types and their encoding; the keys and the dispatch by
//! key type are [`super::records`]'.
//!
//! Invariants: decoding never panics and never reserves more than the
//! bytes left allow; anything unexpected is a [`RecordError`].

use super::consumer::TopicPartition;
use super::records::{put_i16, put_i32, put_uvarint, Reader, RecordError};

const VALUE_VERSION: i16 = 0;

/// The protocol of the group a member record belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupProtocol {
    /// KIP-848 consumer groups.
    Consumer,
    /// KIP-932 share groups.
    Share,
}

/// Which of a group's member records a key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MemberRecord {
    Metadata,
    TargetEpoch,
    TargetMember,
    CurrentAssignment,
}

impl MemberRecord {
    /// Kafka's record type (the key's version).
    pub(crate) fn key_type(self, protocol: GroupProtocol) -> i16 {
        match (protocol, self) {
            (GroupProtocol::Consumer, MemberRecord::Metadata) => 5,
            (GroupProtocol::Consumer, MemberRecord::TargetEpoch) => 6,
            (GroupProtocol::Consumer, MemberRecord::TargetMember) => 7,
            (GroupProtocol::Consumer, MemberRecord::CurrentAssignment) => 8,
            (GroupProtocol::Share, MemberRecord::Metadata) => 10,
            (GroupProtocol::Share, MemberRecord::TargetEpoch) => 12,
            (GroupProtocol::Share, MemberRecord::TargetMember) => 13,
            (GroupProtocol::Share, MemberRecord::CurrentAssignment) => 14,
        }
    }

    /// The record and protocol of Kafka's record type `key_type`, if it is
    /// a member record.
    pub(crate) fn of_key_type(key_type: i16) -> Option<(GroupProtocol, MemberRecord)> {
        let consumer = GroupProtocol::Consumer;
        let share = GroupProtocol::Share;
        Some(match key_type {
            5 => (consumer, MemberRecord::Metadata),
            6 => (consumer, MemberRecord::TargetEpoch),
            7 => (consumer, MemberRecord::TargetMember),
            8 => (consumer, MemberRecord::CurrentAssignment),
            10 => (share, MemberRecord::Metadata),
            12 => (share, MemberRecord::TargetEpoch),
            13 => (share, MemberRecord::TargetMember),
            14 => (share, MemberRecord::CurrentAssignment),
            _ => return None,
        })
    }
}

/// What a member said about itself (ConsumerGroupMemberMetadataValue,
/// ShareGroupMemberMetadataValue: a share member's has no instance id and
/// no rebalance timeout).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberMetadata {
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topics: Vec<String>,
    /// The pattern it subscribes with too (a consumer group's member only).
    pub subscribed_regex: Option<String>,
    pub rebalance_timeout_ms: i32,
    /// The assignor the member names (a consumer group's member only).
    pub server_assignor: Option<String>,
}

/// Kafka's member states (MemberState), as the current assignment record
/// stores them; sluice derives the state from the partitions on reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
pub enum MemberState {
    Stable = 0,
    /// Partitions to give up are still held.
    UnrevokedPartitions = 1,
    /// Partitions of its target are still held by others.
    UnreleasedPartitions = 2,
}

/// A member's current assignment (ConsumerGroupCurrentMemberAssignmentValue,
/// ShareGroupCurrentMemberAssignmentValue: a share member gives nothing
/// up first, so it has no partitions pending revocation).
///
/// Each partition comes with its assignment epoch: the member epoch at
/// which the member was given it (Kafka's AssignmentEpochs), which lets a
/// commit made under an older epoch through for partitions held since.
/// A record without them (a share member's, or one an older Kafka or
/// sluice wrote) reads as the member's epoch for every partition, as Kafka reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberAssignment {
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    pub state: i8,
    pub assigned: Vec<(TopicPartition, i32)>,
    pub pending_revocation: Vec<(TopicPartition, i32)>,
}

pub(crate) fn encode_metadata(protocol: GroupProtocol, m: &MemberMetadata) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    put_i16(&mut out, VALUE_VERSION);
    if protocol == GroupProtocol::Consumer {
        put_compact_nullable_str(&mut out, m.instance_id.as_deref());
    }
    put_compact_nullable_str(&mut out, m.rack_id.as_deref());
    put_compact_nullable_str(&mut out, Some(&m.client_id));
    put_compact_nullable_str(&mut out, Some(&m.client_host));
    put_uvarint(&mut out, m.subscribed_topics.len() as u32 + 1);
    for topic in &m.subscribed_topics {
        put_compact_nullable_str(&mut out, Some(topic));
    }
    if protocol == GroupProtocol::Consumer {
        put_compact_nullable_str(&mut out, m.subscribed_regex.as_deref());
        put_i32(&mut out, m.rebalance_timeout_ms);
        put_compact_nullable_str(&mut out, m.server_assignor.as_deref());
    }
    put_uvarint(&mut out, 0);
    out
}

pub(crate) fn decode_metadata(
    protocol: GroupProtocol,
    value: &[u8],
) -> Result<MemberMetadata, RecordError> {
    let mut v = Reader(value);
    version(&mut v)?;
    let consumer = protocol == GroupProtocol::Consumer;
    let instance_id = if consumer {
        compact_nullable_string(&mut v)?
    } else {
        None
    };
    let rack_id = compact_nullable_string(&mut v)?;
    let client_id = compact_string(&mut v)?;
    let client_host = compact_string(&mut v)?;
    let count = compact_len(&mut v)?;
    // Each name takes at least its length byte.
    let mut subscribed_topics = Vec::with_capacity(count.min(v.0.len()));
    for _ in 0..count {
        subscribed_topics.push(compact_string(&mut v)?);
    }
    let mut rebalance_timeout_ms = -1;
    let mut server_assignor = None;
    let mut subscribed_regex = None;
    if consumer {
        subscribed_regex = compact_nullable_string(&mut v)?;
        rebalance_timeout_ms = v.i32()?;
        server_assignor = compact_nullable_string(&mut v)?;
    }
    v.skip_tagged_fields()?;
    Ok(MemberMetadata {
        instance_id,
        rack_id,
        client_id,
        client_host,
        subscribed_topics,
        subscribed_regex,
        rebalance_timeout_ms,
        server_assignor,
    })
}

pub(crate) fn encode_target_epoch(epoch: i32) -> Vec<u8> {
    let mut out = Vec::with_capacity(7);
    put_i16(&mut out, VALUE_VERSION);
    put_i32(&mut out, epoch);
    put_uvarint(&mut out, 0);
    out
}

pub(crate) fn decode_target_epoch(value: &[u8]) -> Result<i32, RecordError> {
    let mut v = Reader(value);
    version(&mut v)?;
    let epoch = v.i32()?;
    v.skip_tagged_fields()?;
    Ok(epoch)
}

pub(crate) fn encode_target(partitions: &[TopicPartition]) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + partitions.len() * 4);
    put_i16(&mut out, VALUE_VERSION);
    put_topic_partitions(&mut out, partitions);
    put_uvarint(&mut out, 0);
    out
}

pub(crate) fn decode_target(value: &[u8]) -> Result<Vec<TopicPartition>, RecordError> {
    let mut v = Reader(value);
    version(&mut v)?;
    let partitions = topic_partitions(&mut v)?;
    v.skip_tagged_fields()?;
    Ok(partitions)
}

pub(crate) fn encode_assignment(protocol: GroupProtocol, a: &MemberAssignment) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + (a.assigned.len() + a.pending_revocation.len()) * 4);
    put_i16(&mut out, VALUE_VERSION);
    put_i32(&mut out, a.member_epoch);
    put_i32(&mut out, a.previous_member_epoch);
    out.push(a.state as u8);
    let epochs = protocol == GroupProtocol::Consumer;
    put_epoched_partitions(&mut out, &a.assigned, epochs);
    if protocol == GroupProtocol::Consumer {
        put_epoched_partitions(&mut out, &a.pending_revocation, epochs);
    }
    put_uvarint(&mut out, 0);
    out
}

pub(crate) fn decode_assignment(
    protocol: GroupProtocol,
    value: &[u8],
) -> Result<MemberAssignment, RecordError> {
    let mut v = Reader(value);
    version(&mut v)?;
    let member_epoch = v.i32()?;
    let previous_member_epoch = v.i32()?;
    let state = v.i8()?;
    // Kafka's default for partitions without their epochs.
    let default_epoch = member_epoch.max(0);
    let assigned = epoched_partitions(&mut v, default_epoch)?;
    let pending_revocation = if protocol == GroupProtocol::Consumer {
        epoched_partitions(&mut v, default_epoch)?
    } else {
        Vec::new()
    };
    v.skip_tagged_fields()?;
    Ok(MemberAssignment {
        member_epoch,
        previous_member_epoch,
        state,
        assigned,
        pending_revocation,
    })
}

fn version(v: &mut Reader) -> Result<(), RecordError> {
    match v.i16()? {
        VALUE_VERSION => Ok(()),
        other => Err(RecordError::UnknownValueVersion(other)),
    }
}

/// Partitions grouped by topic, `[TopicId, [Partition]]`, in the order
/// given (neighbours of one topic share an entry): what decodes back to
/// the same list. sluice's own lists come sorted, one entry per topic.
fn put_topic_partitions(out: &mut Vec<u8>, partitions: &[TopicPartition]) {
    let topics: Vec<&[TopicPartition]> = partitions.chunk_by(|a, b| a.0 == b.0).collect();
    put_uvarint(out, topics.len() as u32 + 1);
    for topic in topics {
        out.extend_from_slice(&topic[0].0);
        put_uvarint(out, topic.len() as u32 + 1);
        for (_, partition) in topic {
            put_i32(out, *partition);
        }
        // No tagged fields.
        put_uvarint(out, 0);
    }
}

/// Partitions with their assignment epochs, grouped by topic as
/// [`put_topic_partitions`] groups them; with `epochs`, each topic carries
/// its partitions' epochs in its tagged field 0 (AssignmentEpochs).
fn put_epoched_partitions(out: &mut Vec<u8>, partitions: &[(TopicPartition, i32)], epochs: bool) {
    let topics: Vec<&[(TopicPartition, i32)]> =
        partitions.chunk_by(|a, b| a.0 .0 == b.0 .0).collect();
    put_uvarint(out, topics.len() as u32 + 1);
    for topic in topics {
        out.extend_from_slice(&topic[0].0 .0);
        put_uvarint(out, topic.len() as u32 + 1);
        for ((_, partition), _) in topic {
            put_i32(out, *partition);
        }
        if !epochs {
            put_uvarint(out, 0);
            continue;
        }
        let mut field = Vec::with_capacity(5 + topic.len() * 4);
        put_uvarint(&mut field, topic.len() as u32 + 1);
        for (_, epoch) in topic {
            put_i32(&mut field, *epoch);
        }
        put_uvarint(out, 1);
        put_uvarint(out, ASSIGNMENT_EPOCHS_TAG);
        put_uvarint(out, field.len() as u32);
        out.extend_from_slice(&field);
    }
}

/// The tag of a topic's AssignmentEpochs in a current assignment.
const ASSIGNMENT_EPOCHS_TAG: u32 = 0;

/// What [`put_epoched_partitions`] wrote. A topic whose epochs are missing,
/// null or not one per partition gets `default_epoch` for each (Kafka
/// does the same).
fn epoched_partitions(
    v: &mut Reader,
    default_epoch: i32,
) -> Result<Vec<(TopicPartition, i32)>, RecordError> {
    let topics = compact_len(v)?;
    let mut out = Vec::new();
    for _ in 0..topics {
        let id: [u8; 16] = v.take(16)?.try_into().map_err(|_| RecordError::Truncated)?;
        let count = compact_len(v)?;
        let first = out.len();
        // Each partition takes four bytes.
        out.reserve(count.min(v.0.len() / 4));
        for _ in 0..count {
            out.push(((id, v.i32()?), default_epoch));
        }
        for _ in 0..v.uvarint()? {
            let tag = v.uvarint()?;
            let size = v.uvarint()? as usize;
            let mut field = Reader(v.take(size)?);
            if tag != ASSIGNMENT_EPOCHS_TAG {
                continue;
            }
            if compact_nullable_len(&mut field)? == Some(count) {
                for slot in &mut out[first..] {
                    slot.1 = field.i32()?;
                }
            }
        }
    }
    Ok(out)
}

fn topic_partitions(v: &mut Reader) -> Result<Vec<TopicPartition>, RecordError> {
    let topics = compact_len(v)?;
    let mut out = Vec::new();
    for _ in 0..topics {
        let id: [u8; 16] = v.take(16)?.try_into().map_err(|_| RecordError::Truncated)?;
        let count = compact_len(v)?;
        // Each partition takes four bytes.
        out.reserve(count.min(v.0.len() / 4));
        for _ in 0..count {
            out.push((id, v.i32()?));
        }
        v.skip_tagged_fields()?;
    }
    Ok(out)
}

fn put_compact_nullable_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => {
            put_uvarint(out, s.len() as u32 + 1);
            out.extend_from_slice(s.as_bytes());
        }
        None => put_uvarint(out, 0),
    }
}

/// A compact array's or string's length (`None`: null).
fn compact_nullable_len(v: &mut Reader) -> Result<Option<usize>, RecordError> {
    Ok(v.uvarint()?.checked_sub(1).map(|n| n as usize))
}

fn compact_len(v: &mut Reader) -> Result<usize, RecordError> {
    compact_nullable_len(v)?.ok_or(RecordError::NegativeLength)
}

fn compact_nullable_string(v: &mut Reader) -> Result<Option<String>, RecordError> {
    let Some(len) = compact_nullable_len(v)? else {
        return Ok(None);
    };
    let bytes = v.take(len)?;
    std::str::from_utf8(bytes)
        .map(|s| Some(s.to_owned()))
        .map_err(|_| RecordError::NotUtf8)
}

fn compact_string(v: &mut Reader) -> Result<String, RecordError> {
    compact_nullable_string(v)?.ok_or(RecordError::NegativeLength)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: [u8; 16] = [7; 16];
    const U: [u8; 16] = [3; 16];
    const CONSUMER: GroupProtocol = GroupProtocol::Consumer;
    const SHARE: GroupProtocol = GroupProtocol::Share;

    #[test]
    fn values_round_trip() {
        let metadata = MemberMetadata {
            instance_id: Some("i".into()),
            rack_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            subscribed_topics: vec!["a".into(), "b".into()],
            subscribed_regex: Some("orders-.*".into()),
            rebalance_timeout_ms: 300_000,
            server_assignor: Some("range".into()),
        };
        assert_eq!(
            decode_metadata(CONSUMER, &encode_metadata(CONSUMER, &metadata)),
            Ok(metadata.clone())
        );
        // A share member's has no instance id, pattern, rebalance timeout
        // or assignor.
        let share = MemberMetadata {
            instance_id: None,
            subscribed_regex: None,
            rebalance_timeout_ms: -1,
            server_assignor: None,
            ..metadata
        };
        assert_eq!(
            decode_metadata(SHARE, &encode_metadata(SHARE, &share)),
            Ok(share)
        );
        assert_eq!(decode_target_epoch(&encode_target_epoch(9)), Ok(9));
        let target = vec![(U, 1), (T, 0), (T, 2)];
        // In the order given, whatever it is (what decoded encodes back
        // to the same bytes).
        assert_eq!(decode_target(&encode_target(&target)), Ok(target.clone()));
        let scattered = vec![(T, 2), (T, 1), (U, 0), (T, 0)];
        let value = encode_target(&scattered);
        assert_eq!(decode_target(&value), Ok(scattered.clone()));
        assert_eq!(
            encode_target(&decode_target(&value).expect("decodes")),
            value
        );
        let assignment = MemberAssignment {
            member_epoch: 5,
            previous_member_epoch: 4,
            state: MemberState::UnrevokedPartitions as i8,
            assigned: vec![((T, 0), 5)],
            pending_revocation: vec![((T, 1), 2), ((T, 4), 3), ((U, 0), 1)],
        };
        assert_eq!(
            decode_assignment(CONSUMER, &encode_assignment(CONSUMER, &assignment)),
            Ok(assignment.clone())
        );
    }

    #[test]
    fn the_current_assignment_uses_kafkas_layout() {
        let value = encode_assignment(
            CONSUMER,
            &MemberAssignment {
                member_epoch: 2,
                previous_member_epoch: 1,
                state: 0,
                assigned: vec![((T, 3), 1)],
                pending_revocation: vec![],
            },
        );
        let mut expected = vec![0, 0, 0, 0, 0, 2, 0, 0, 0, 1, 0];
        // One topic: its id, one partition, then one tagged field: tag 0
        // (AssignmentEpochs), 5 bytes, an array of one epoch, 1.
        expected.push(2);
        expected.extend_from_slice(&T);
        expected.extend_from_slice(&[2, 0, 0, 0, 3, 1, 0, 5, 2, 0, 0, 0, 1]);
        // No partitions pending revocation, no tagged fields.
        expected.extend_from_slice(&[1, 0]);
        assert_eq!(value, expected);
        // Without AssignmentEpochs (an older record), or with a count that
        // does not match, each partition is at the member's epoch, as
        // Kafka reads it; other tags are skipped.
        let mut untagged = expected[..11].to_vec();
        untagged.push(2);
        untagged.extend_from_slice(&T);
        untagged.extend_from_slice(&[2, 0, 0, 0, 3, 1, 5, 1, 9]);
        untagged.extend_from_slice(&[1, 0]);
        let decoded = decode_assignment(CONSUMER, &untagged).expect("decodes");
        assert_eq!(decoded.assigned, [((T, 3), 2)]);
        let mut miscounted = expected[..11].to_vec();
        miscounted.push(2);
        miscounted.extend_from_slice(&T);
        miscounted.extend_from_slice(&[2, 0, 0, 0, 3, 1, 0, 9, 3, 0, 0, 0, 1, 0, 0, 0, 1]);
        miscounted.extend_from_slice(&[1, 0]);
        let decoded = decode_assignment(CONSUMER, &miscounted).expect("decodes");
        assert_eq!(decoded.assigned, [((T, 3), 2)]);
    }

    #[test]
    fn a_share_members_assignment_uses_kafkas_layout() {
        let value = encode_assignment(
            SHARE,
            &MemberAssignment {
                member_epoch: 2,
                previous_member_epoch: 1,
                state: 0,
                assigned: vec![((T, 3), 2)],
                pending_revocation: vec![],
            },
        );
        // No assignment epochs: a share member's record has none.
        let mut expected = vec![0, 0, 0, 0, 0, 2, 0, 0, 0, 1, 0, 2];
        expected.extend_from_slice(&T);
        // One partition, the topic's tagged fields, the value's.
        expected.extend_from_slice(&[2, 0, 0, 0, 3, 0, 0]);
        assert_eq!(value, expected);
        for cut in 0..value.len() {
            assert!(decode_assignment(SHARE, &value[..cut]).is_err());
        }
    }

    #[test]
    fn damaged_values_are_errors_not_panics() {
        let values = [
            encode_metadata(
                CONSUMER,
                &MemberMetadata {
                    client_id: "c".into(),
                    subscribed_topics: vec!["t".into()],
                    ..MemberMetadata::default()
                },
            ),
            encode_target(&[(T, 0), (T, 1)]),
            encode_assignment(
                CONSUMER,
                &MemberAssignment {
                    member_epoch: 1,
                    previous_member_epoch: 0,
                    state: 0,
                    assigned: vec![((T, 0), 1)],
                    pending_revocation: vec![((U, 1), 0)],
                },
            ),
        ];
        for cut in 0..values[0].len() {
            assert!(decode_metadata(CONSUMER, &values[0][..cut]).is_err());
        }
        for cut in 0..values[1].len() {
            assert!(decode_target(&values[1][..cut]).is_err());
        }
        for cut in 0..values[2].len() {
            assert!(decode_assignment(CONSUMER, &values[2][..cut]).is_err());
        }
    }
}
