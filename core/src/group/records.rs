//! The records of `__consumer_offsets`: committed offsets and group
//! metadata, as keys and values in Kafka's own layout.
//!
//! Owns: encoding and decoding one record's key and value. The layouts are
//! Kafka's (offset commit key v1 / value v3, group metadata key v2 / value
//! v3; big-endian, strings as an i16 length then UTF-8, bytes as an i32
//! length; KIP-848's consumer group metadata, key type 3 / value v0,
//! flexible: the group epoch, its topics' hash a tagged field sluice does
//! not write; and KIP-932's share group metadata, key type 11 / value v0,
//! flexible: the group epoch and its topics' hash, which sluice leaves 0;
//! a KIP-848 group's members and assignments, key types 5 to 8, and a
//! share group's, 10 and 12 to 14, whose values are
//! [`super::member_records`]'), so tools that read Kafka's offsets topic read ours. A record with a
//! null value is a tombstone: the key's state is deleted.
//!
//! Invariants: decoding never panics and never allocates more than the
//! input's length implies (every length is checked against what is left);
//! anything unexpected is a [`RecordError`], which the loader counts and
//! skips.

use bytes::Bytes;

use super::consumer::TopicPartition;
use super::member_records::{self, GroupProtocol, MemberAssignment, MemberMetadata, MemberRecord};

/// An offset a group committed for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    /// The leader epoch of the record at `offset - 1`, or -1.
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
}

/// A member as the group's metadata record stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSnapshot {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// The member's metadata for the group's selected protocol.
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// A group's membership after a rebalance (the group metadata record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSnapshot {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub state_timestamp_ms: i64,
    pub members: Vec<MemberSnapshot>,
}

/// One record of `__consumer_offsets`; `None` values are tombstones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffsetsRecord {
    Offset {
        group: String,
        topic: String,
        partition: i32,
        value: Option<CommittedOffset>,
    },
    Group {
        group: String,
        value: Option<GroupSnapshot>,
    },
    /// A consumer group of KIP-848 and its epoch (its members are in
    /// their own records).
    ConsumerGroup {
        group: String,
        value: Option<GroupEpoch>,
    },
    /// A share group (KIP-932) and its epoch (its members are in their
    /// own records).
    ShareGroup {
        group: String,
        value: Option<ShareGroupSnapshot>,
    },
    /// A KIP-848 or share group member's metadata (key type 5, 10).
    Member {
        protocol: GroupProtocol,
        group: String,
        member: String,
        value: Option<MemberMetadata>,
    },
    /// The epoch of a KIP-848 or share group's target assignment (key type
    /// 6, 12).
    TargetEpoch {
        protocol: GroupProtocol,
        group: String,
        value: Option<i32>,
    },
    /// A member's part of the target assignment (key type 7, 13).
    Target {
        protocol: GroupProtocol,
        group: String,
        member: String,
        value: Option<Vec<TopicPartition>>,
    },
    /// A member's current assignment (key type 8, 14).
    Assignment {
        protocol: GroupProtocol,
        group: String,
        member: String,
        value: Option<MemberAssignment>,
    },
}

/// A share group's metadata record (Kafka's ShareGroupMetadataValue).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShareGroupSnapshot {
    pub epoch: i32,
}

/// A KIP-848 consumer group's metadata record (Kafka's
/// ConsumerGroupMetadataValue): its epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupEpoch {
    pub epoch: i32,
}

/// Why a record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("record ends early")]
    Truncated,
    #[error("unknown record key version {0}")]
    UnknownKeyVersion(i16),
    #[error("unknown record value version {0}")]
    UnknownValueVersion(i16),
    #[error("a string is not UTF-8")]
    NotUtf8,
    #[error("a length is negative")]
    NegativeLength,
}

const OFFSET_KEY_VERSION: i16 = 1;
const GROUP_KEY_VERSION: i16 = 2;
const OFFSET_VALUE_VERSION: i16 = 3;
const GROUP_VALUE_VERSION: i16 = 3;
/// Kafka's record types of ConsumerGroupMetadataKey and
/// ShareGroupMetadataKey (the key's version).
const CONSUMER_GROUP_KEY_TYPE: i16 = 3;
const CONSUMER_GROUP_VALUE_VERSION: i16 = 0;
const SHARE_GROUP_KEY_TYPE: i16 = 11;
const SHARE_GROUP_VALUE_VERSION: i16 = 0;

impl OffsetsRecord {
    /// The group this record belongs to.
    pub fn group(&self) -> &str {
        match self {
            OffsetsRecord::Offset { group, .. }
            | OffsetsRecord::Group { group, .. }
            | OffsetsRecord::ConsumerGroup { group, .. }
            | OffsetsRecord::ShareGroup { group, .. }
            | OffsetsRecord::Member { group, .. }
            | OffsetsRecord::TargetEpoch { group, .. }
            | OffsetsRecord::Target { group, .. }
            | OffsetsRecord::Assignment { group, .. } => group,
        }
    }

    /// The member this record belongs to, if it is a member's.
    pub fn member(&self) -> Option<&str> {
        match self {
            OffsetsRecord::Member { member, .. }
            | OffsetsRecord::Target { member, .. }
            | OffsetsRecord::Assignment { member, .. } => Some(member),
            _ => None,
        }
    }

    /// True for a tombstone (a record that deletes its key's state).
    pub fn is_tombstone(&self) -> bool {
        match self {
            OffsetsRecord::Offset { value, .. } => value.is_none(),
            OffsetsRecord::Group { value, .. } => value.is_none(),
            OffsetsRecord::ConsumerGroup { value, .. } => value.is_none(),
            OffsetsRecord::ShareGroup { value, .. } => value.is_none(),
            OffsetsRecord::Member { value, .. } => value.is_none(),
            OffsetsRecord::TargetEpoch { value, .. } => value.is_none(),
            OffsetsRecord::Target { value, .. } => value.is_none(),
            OffsetsRecord::Assignment { value, .. } => value.is_none(),
        }
    }

    /// The tombstone of this record's key.
    pub fn tombstone(&self) -> OffsetsRecord {
        let group = self.group().to_owned();
        match self {
            OffsetsRecord::Offset {
                topic, partition, ..
            } => OffsetsRecord::Offset {
                group,
                topic: topic.clone(),
                partition: *partition,
                value: None,
            },
            OffsetsRecord::Group { .. } => OffsetsRecord::Group { group, value: None },
            OffsetsRecord::ConsumerGroup { .. } => {
                OffsetsRecord::ConsumerGroup { group, value: None }
            }
            OffsetsRecord::ShareGroup { .. } => OffsetsRecord::ShareGroup { group, value: None },
            OffsetsRecord::Member {
                protocol, member, ..
            } => OffsetsRecord::Member {
                protocol: *protocol,
                group,
                member: member.clone(),
                value: None,
            },
            OffsetsRecord::TargetEpoch { protocol, .. } => OffsetsRecord::TargetEpoch {
                protocol: *protocol,
                group,
                value: None,
            },
            OffsetsRecord::Target {
                protocol, member, ..
            } => OffsetsRecord::Target {
                protocol: *protocol,
                group,
                member: member.clone(),
                value: None,
            },
            OffsetsRecord::Assignment {
                protocol, member, ..
            } => OffsetsRecord::Assignment {
                protocol: *protocol,
                group,
                member: member.clone(),
                value: None,
            },
        }
    }

    /// The record's key bytes.
    pub fn encode_key(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        match self {
            OffsetsRecord::Offset {
                group,
                topic,
                partition,
                ..
            } => {
                put_i16(&mut out, OFFSET_KEY_VERSION);
                put_str(&mut out, group);
                put_str(&mut out, topic);
                put_i32(&mut out, *partition);
            }
            OffsetsRecord::Group { group, .. } => {
                put_i16(&mut out, GROUP_KEY_VERSION);
                put_str(&mut out, group);
            }
            OffsetsRecord::ConsumerGroup { group, .. } => {
                put_i16(&mut out, CONSUMER_GROUP_KEY_TYPE);
                put_str(&mut out, group);
            }
            OffsetsRecord::ShareGroup { group, .. } => {
                put_i16(&mut out, SHARE_GROUP_KEY_TYPE);
                put_str(&mut out, group);
            }
            OffsetsRecord::Member {
                protocol,
                group,
                member,
                ..
            } => {
                put_i16(&mut out, MemberRecord::Metadata.key_type(*protocol));
                put_str(&mut out, group);
                put_str(&mut out, member);
            }
            OffsetsRecord::TargetEpoch {
                protocol, group, ..
            } => {
                put_i16(&mut out, MemberRecord::TargetEpoch.key_type(*protocol));
                put_str(&mut out, group);
            }
            OffsetsRecord::Target {
                protocol,
                group,
                member,
                ..
            } => {
                put_i16(&mut out, MemberRecord::TargetMember.key_type(*protocol));
                put_str(&mut out, group);
                put_str(&mut out, member);
            }
            OffsetsRecord::Assignment {
                protocol,
                group,
                member,
                ..
            } => {
                put_i16(
                    &mut out,
                    MemberRecord::CurrentAssignment.key_type(*protocol),
                );
                put_str(&mut out, group);
                put_str(&mut out, member);
            }
        }
        out
    }

    /// The record's value bytes; `None` for a tombstone.
    pub fn encode_value(&self) -> Option<Vec<u8>> {
        match self {
            OffsetsRecord::Offset { value, .. } => value.as_ref().map(|v| {
                let mut out = Vec::with_capacity(32 + v.metadata.len());
                put_i16(&mut out, OFFSET_VALUE_VERSION);
                put_i64(&mut out, v.offset);
                put_i32(&mut out, v.leader_epoch);
                put_str(&mut out, &v.metadata);
                put_i64(&mut out, v.commit_timestamp_ms);
                out
            }),
            OffsetsRecord::Group { value, .. } => value.as_ref().map(|g| {
                let mut out = Vec::with_capacity(128);
                put_i16(&mut out, GROUP_VALUE_VERSION);
                put_str(&mut out, &g.protocol_type);
                put_i32(&mut out, g.generation);
                put_nullable_str(&mut out, g.protocol.as_deref());
                put_nullable_str(&mut out, g.leader.as_deref());
                put_i64(&mut out, g.state_timestamp_ms);
                put_i32(&mut out, g.members.len() as i32);
                for m in &g.members {
                    put_str(&mut out, &m.member_id);
                    put_nullable_str(&mut out, m.instance_id.as_deref());
                    put_str(&mut out, &m.client_id);
                    put_str(&mut out, &m.client_host);
                    put_i32(&mut out, m.rebalance_timeout_ms);
                    put_i32(&mut out, m.session_timeout_ms);
                    put_bytes(&mut out, &m.subscription);
                    put_bytes(&mut out, &m.assignment);
                }
                out
            }),
            OffsetsRecord::ConsumerGroup { value, .. } => value.as_ref().map(|g| {
                let mut out = Vec::with_capacity(7);
                put_i16(&mut out, CONSUMER_GROUP_VALUE_VERSION);
                put_i32(&mut out, g.epoch);
                // No tagged fields (MetadataHash is one).
                put_uvarint(&mut out, 0);
                out
            }),
            OffsetsRecord::ShareGroup { value, .. } => value.as_ref().map(|g| {
                let mut out = Vec::with_capacity(15);
                put_i16(&mut out, SHARE_GROUP_VALUE_VERSION);
                put_i32(&mut out, g.epoch);
                // MetadataHash: sluice does not compare topics by hash.
                put_i64(&mut out, 0);
                // No tagged fields.
                put_uvarint(&mut out, 0);
                out
            }),
            OffsetsRecord::Member {
                protocol, value, ..
            } => value
                .as_ref()
                .map(|m| member_records::encode_metadata(*protocol, m)),
            OffsetsRecord::TargetEpoch { value, .. } => {
                value.map(member_records::encode_target_epoch)
            }
            OffsetsRecord::Target { value, .. } => {
                value.as_deref().map(member_records::encode_target)
            }
            OffsetsRecord::Assignment {
                protocol, value, ..
            } => value
                .as_ref()
                .map(|a| member_records::encode_assignment(*protocol, a)),
        }
    }

    /// Decodes a record from its key and value (`None`: a tombstone).
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<OffsetsRecord, RecordError> {
        let mut k = Reader(key);
        let key_type = k.i16()?;
        if let Some((protocol, record)) = MemberRecord::of_key_type(key_type) {
            return decode_member_record(protocol, record, &mut k, value);
        }
        match key_type {
            0 | OFFSET_KEY_VERSION => {
                let group = k.string()?;
                let topic = k.string()?;
                let partition = k.i32()?;
                let value = value.map(decode_offset_value).transpose()?;
                Ok(OffsetsRecord::Offset {
                    group,
                    topic,
                    partition,
                    value,
                })
            }
            GROUP_KEY_VERSION => {
                let group = k.string()?;
                let value = value.map(decode_group_value).transpose()?;
                Ok(OffsetsRecord::Group { group, value })
            }
            CONSUMER_GROUP_KEY_TYPE => {
                let group = k.string()?;
                let value = value.map(decode_consumer_group_value).transpose()?;
                Ok(OffsetsRecord::ConsumerGroup { group, value })
            }
            SHARE_GROUP_KEY_TYPE => {
                let group = k.string()?;
                let value = value.map(decode_share_group_value).transpose()?;
                Ok(OffsetsRecord::ShareGroup { group, value })
            }
            other => Err(RecordError::UnknownKeyVersion(other)),
        }
    }
}

/// A member record's key (after its type) and value.
fn decode_member_record(
    protocol: GroupProtocol,
    record: MemberRecord,
    k: &mut Reader,
    value: Option<&[u8]>,
) -> Result<OffsetsRecord, RecordError> {
    let group = k.string()?;
    Ok(match record {
        MemberRecord::TargetEpoch => OffsetsRecord::TargetEpoch {
            protocol,
            group,
            value: value.map(member_records::decode_target_epoch).transpose()?,
        },
        MemberRecord::Metadata => OffsetsRecord::Member {
            protocol,
            group,
            member: k.string()?,
            value: value
                .map(|v| member_records::decode_metadata(protocol, v))
                .transpose()?,
        },
        MemberRecord::TargetMember => OffsetsRecord::Target {
            protocol,
            group,
            member: k.string()?,
            value: value.map(member_records::decode_target).transpose()?,
        },
        MemberRecord::CurrentAssignment => OffsetsRecord::Assignment {
            protocol,
            group,
            member: k.string()?,
            value: value
                .map(|v| member_records::decode_assignment(protocol, v))
                .transpose()?,
        },
    })
}

fn decode_offset_value(value: &[u8]) -> Result<CommittedOffset, RecordError> {
    let mut v = Reader(value);
    let version = v.i16()?;
    if !(0..=3).contains(&version) {
        return Err(RecordError::UnknownValueVersion(version));
    }
    let offset = v.i64()?;
    let leader_epoch = if version >= 3 { v.i32()? } else { -1 };
    let metadata = v.string()?;
    let commit_timestamp_ms = v.i64()?;
    Ok(CommittedOffset {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp_ms,
    })
}

fn decode_consumer_group_value(value: &[u8]) -> Result<GroupEpoch, RecordError> {
    let mut v = Reader(value);
    let version = v.i16()?;
    if version != CONSUMER_GROUP_VALUE_VERSION {
        return Err(RecordError::UnknownValueVersion(version));
    }
    // Tagged fields after it (its topics' hash) are skipped.
    Ok(GroupEpoch { epoch: v.i32()? })
}

fn decode_share_group_value(value: &[u8]) -> Result<ShareGroupSnapshot, RecordError> {
    let mut v = Reader(value);
    let version = v.i16()?;
    if version != SHARE_GROUP_VALUE_VERSION {
        return Err(RecordError::UnknownValueVersion(version));
    }
    let epoch = v.i32()?;
    let _metadata_hash = v.i64()?;
    // Tagged fields after it are skipped.
    Ok(ShareGroupSnapshot { epoch })
}

fn decode_group_value(value: &[u8]) -> Result<GroupSnapshot, RecordError> {
    let mut v = Reader(value);
    let version = v.i16()?;
    if !(0..=3).contains(&version) {
        return Err(RecordError::UnknownValueVersion(version));
    }
    let protocol_type = v.string()?;
    let generation = v.i32()?;
    let protocol = v.nullable_string()?;
    let leader = v.nullable_string()?;
    let state_timestamp_ms = if version >= 2 { v.i64()? } else { -1 };
    let count = v.len32()?;
    // Each member needs at least 24 bytes; never reserve more than that.
    let mut members = Vec::with_capacity(count.min(v.0.len() / 24));
    for _ in 0..count {
        let member_id = v.string()?;
        let instance_id = if version >= 3 {
            v.nullable_string()?
        } else {
            None
        };
        let client_id = v.string()?;
        let client_host = v.string()?;
        let rebalance_timeout_ms = if version >= 1 { v.i32()? } else { -1 };
        let session_timeout_ms = v.i32()?;
        let subscription = Bytes::copy_from_slice(v.bytes()?);
        let assignment = Bytes::copy_from_slice(v.bytes()?);
        members.push(MemberSnapshot {
            member_id,
            instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms: if rebalance_timeout_ms < 0 {
                session_timeout_ms
            } else {
                rebalance_timeout_ms
            },
            session_timeout_ms,
            subscription,
            assignment,
        });
    }
    Ok(GroupSnapshot {
        protocol_type,
        generation,
        protocol,
        leader,
        state_timestamp_ms,
        members,
    })
}

pub(crate) fn put_i16(out: &mut Vec<u8>, v: i16) {
    out.extend_from_slice(&v.to_be_bytes());
}
pub(crate) fn put_i32(out: &mut Vec<u8>, v: i32) {
    out.extend_from_slice(&v.to_be_bytes());
}
pub(crate) fn put_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(&v.to_be_bytes());
}
pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) {
    // Group ids, topics and metadata are bounded far below i16::MAX by
    // the protocol's own string encoding; clamp rather than wrap.
    let len = s.len().min(i16::MAX as usize);
    put_i16(out, len as i16);
    out.extend_from_slice(&s.as_bytes()[..len]);
}
/// An unsigned varint (the flexible versions' lengths and tags).
pub(crate) fn put_uvarint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}
fn put_nullable_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => put_str(out, s),
        None => put_i16(out, -1),
    }
}
fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_i32(out, b.len() as i32);
    out.extend_from_slice(b);
}

/// A bounds-checked big-endian reader over one record's bytes.
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        if self.0.len() < n {
            return Err(RecordError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    pub(crate) fn i8(&mut self) -> Result<i8, RecordError> {
        Ok(self.take(1)?[0] as i8)
    }
    pub(crate) fn i16(&mut self) -> Result<i16, RecordError> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }
    pub(crate) fn i32(&mut self) -> Result<i32, RecordError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub(crate) fn i64(&mut self) -> Result<i64, RecordError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(i64::from_be_bytes(a))
    }
    /// An i32 count or length that must not be negative.
    pub(crate) fn len32(&mut self) -> Result<usize, RecordError> {
        usize::try_from(self.i32()?).map_err(|_| RecordError::NegativeLength)
    }
    pub(crate) fn nullable_string(&mut self) -> Result<Option<String>, RecordError> {
        let len = self.i16()?;
        if len < 0 {
            return Ok(None);
        }
        let b = self.take(len as usize)?;
        std::str::from_utf8(b)
            .map(|s| Some(s.to_owned()))
            .map_err(|_| RecordError::NotUtf8)
    }
    pub(crate) fn string(&mut self) -> Result<String, RecordError> {
        self.nullable_string()?.ok_or(RecordError::NegativeLength)
    }
    /// An unsigned varint (the flexible versions' lengths and tags).
    pub(crate) fn uvarint(&mut self) -> Result<u32, RecordError> {
        let mut value = 0u32;
        for i in 0..5 {
            let b = self.take(1)?[0];
            value |= u32::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(RecordError::Truncated)
    }
    /// Skips a flexible struct's tagged fields.
    pub(crate) fn skip_tagged_fields(&mut self) -> Result<(), RecordError> {
        let count = self.uvarint()?;
        for _ in 0..count {
            self.uvarint()?;
            let size = self.uvarint()? as usize;
            self.take(size)?;
        }
        Ok(())
    }
    fn bytes(&mut self) -> Result<&'a [u8], RecordError> {
        let len = self.i32()?;
        if len < 0 {
            return Ok(&[]);
        }
        self.take(len as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group_record() -> OffsetsRecord {
        OffsetsRecord::Group {
            group: "g".into(),
            value: Some(GroupSnapshot {
                protocol_type: "consumer".into(),
                generation: 7,
                protocol: Some("range".into()),
                leader: Some("m-1".into()),
                state_timestamp_ms: 1_700_000_000_000,
                members: vec![MemberSnapshot {
                    member_id: "m-1".into(),
                    instance_id: Some("i-1".into()),
                    client_id: "c".into(),
                    client_host: "/127.0.0.1".into(),
                    rebalance_timeout_ms: 300_000,
                    session_timeout_ms: 45_000,
                    subscription: Bytes::from_static(b"sub"),
                    assignment: Bytes::from_static(b"assign"),
                }],
            }),
        }
    }

    #[test]
    fn records_round_trip() {
        let offset = OffsetsRecord::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 3,
            value: Some(CommittedOffset {
                offset: 42,
                leader_epoch: 5,
                metadata: "meta".into(),
                commit_timestamp_ms: 9,
            }),
        };
        let share = OffsetsRecord::ShareGroup {
            group: "s".into(),
            value: Some(ShareGroupSnapshot { epoch: 4 }),
        };
        let consumer = OffsetsRecord::ConsumerGroup {
            group: "c".into(),
            value: Some(GroupEpoch { epoch: 9 }),
        };
        for record in [offset, group_record(), share, consumer] {
            let key = record.encode_key();
            let value = record.encode_value();
            assert_eq!(
                OffsetsRecord::decode(&key, value.as_deref()),
                Ok(record.clone())
            );
        }
    }

    #[test]
    fn offset_records_use_kafkas_layout() {
        let record = OffsetsRecord::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 1,
            value: Some(CommittedOffset {
                offset: 2,
                leader_epoch: -1,
                metadata: String::new(),
                commit_timestamp_ms: 3,
            }),
        };
        assert_eq!(
            record.encode_key(),
            [0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 1]
        );
        assert_eq!(
            record.encode_value().expect("not a tombstone"),
            [0, 3, 0, 0, 0, 0, 0, 0, 0, 2, 255, 255, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3]
        );
    }

    #[test]
    fn share_group_records_use_kafkas_layout() {
        let record = OffsetsRecord::ShareGroup {
            group: "g".into(),
            value: Some(ShareGroupSnapshot { epoch: 2 }),
        };
        // ShareGroupMetadataKey (type 11), ShareGroupMetadataValue v0:
        // Epoch, MetadataHash, no tagged fields.
        assert_eq!(record.encode_key(), [0, 11, 0, 1, b'g']);
        assert_eq!(
            record.encode_value().expect("not a tombstone"),
            [0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        let value = record.encode_value().expect("not a tombstone");
        for cut in 0..value.len() - 1 {
            assert!(OffsetsRecord::decode(&record.encode_key(), Some(&value[..cut])).is_err());
        }
        let tombstone = OffsetsRecord::ShareGroup {
            group: "g".into(),
            value: None,
        };
        assert_eq!(
            OffsetsRecord::decode(&tombstone.encode_key(), None),
            Ok(tombstone)
        );
    }

    #[test]
    fn consumer_group_records_use_kafkas_layout() {
        let record = OffsetsRecord::ConsumerGroup {
            group: "g".into(),
            value: Some(GroupEpoch { epoch: 2 }),
        };
        // ConsumerGroupMetadataKey (type 3), ConsumerGroupMetadataValue
        // v0: Epoch, no tagged fields (as Kafka 4.4 writes them).
        assert_eq!(record.encode_key(), [0, 3, 0, 1, b'g']);
        assert_eq!(
            record.encode_value().expect("not a tombstone"),
            [0, 0, 0, 0, 0, 2, 0]
        );
        // Kafka's with its topics' hash (tag 0) reads too.
        let with_hash = [0, 0, 0, 0, 0, 2, 1, 0, 8, 0, 0, 0, 0, 0, 0, 0, 5];
        assert_eq!(
            OffsetsRecord::decode(&record.encode_key(), Some(&with_hash)),
            Ok(record)
        );
    }

    #[test]
    fn tombstones_decode_as_none() {
        let record = OffsetsRecord::Group {
            group: "g".into(),
            value: None,
        };
        assert_eq!(record.encode_value(), None);
        assert_eq!(
            OffsetsRecord::decode(&record.encode_key(), None),
            Ok(record)
        );
    }

    #[test]
    fn damaged_records_are_errors_not_panics() {
        let record = group_record();
        let key = record.encode_key();
        let value = record.encode_value().expect("not a tombstone");
        for cut in 0..value.len() {
            assert!(OffsetsRecord::decode(&key, Some(&value[..cut])).is_err());
        }
        for cut in 0..key.len() {
            assert!(OffsetsRecord::decode(&key[..cut], Some(&value)).is_err());
        }
        assert_eq!(
            OffsetsRecord::decode(&[0, 9], None),
            Err(RecordError::UnknownKeyVersion(9))
        );
    }
}
