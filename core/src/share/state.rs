//! The durable state of share partitions: records of `__share_group_state`
//! in Kafka's layout, and where each share partition's state is kept.
//!
//! Owns: the ShareSnapshot record (key type 0: group id, topic id,
//! partition; value version 0: snapshot and state epochs, the leader epoch,
//! the start offset, timestamps and the state batches, each a range of
//! offsets with one delivery state and count) as Kafka's share coordinator
//! writes it, its encoding and decoding, and the partition of the topic
//! that holds a share partition's state (Kafka's
//! `abs("group:topicId:partition".hashCode()) % partitions`). Pure.
//!
//! A ShareUpdate record (key type 1: a delta on a snapshot, which Kafka
//! writes between snapshots) decodes as [`StateRecord::Update`] and is
//! not applied: sluice writes a whole snapshot at every change, so its
//! latest snapshot is the state.
//!
//! Invariant: [`StateRecord::decode`] of what [`ShareSnapshot`] encodes
//! gives it back; any other bytes give an error or a record, never a panic
//! (the `share_state_decode` fuzz target).

use crate::group::coordinator_partition;
use crate::group::records::{put_i16, put_i32, put_i64, put_str, put_uvarint, Reader, RecordError};
use crate::types::kafka_uuid;
use crate::types::Offset;

/// The internal topic holding share partitions' state.
pub const SHARE_STATE_TOPIC: &str = "__share_group_state";

/// Kafka's record types of `__share_group_state` keys.
const SNAPSHOT_KEY: i16 = 0;
const UPDATE_KEY: i16 = 1;

/// Delivery states as the state batches store them (Kafka's
/// `RecordState` ids: acquired records are stored as available).
pub const STATE_AVAILABLE: i8 = 0;
pub const STATE_ACKNOWLEDGED: i8 = 2;
/// On its way to the dead-letter topic (KIP-1191): archived once written
/// there.
pub const STATE_ARCHIVING: i8 = 3;
pub const STATE_ARCHIVED: i8 = 4;

/// A share partition: (group, topic id, partition).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShareKey {
    pub group_id: String,
    pub topic_id: [u8; 16],
    pub partition: i32,
}

impl ShareKey {
    /// Kafka's coordinator key: `group:topicId:partition`, the topic id in
    /// Kafka's URL-safe base64 without padding.
    pub fn coordinator_key(&self) -> String {
        format!(
            "{}:{}:{}",
            self.group_id,
            kafka_uuid(self.topic_id),
            self.partition
        )
    }

    /// The partition of `__share_group_state` (of `partitions`) that holds
    /// this share partition's state.
    pub fn state_partition(&self, partitions: i32) -> i32 {
        coordinator_partition(&self.coordinator_key(), partitions)
    }

    /// Its `__share_group_state` partition in `metadata`; `None` while
    /// that topic does not exist.
    pub fn state_partition_in(&self, metadata: &crate::metadata::MetadataState) -> Option<i32> {
        let count = metadata.topics.get(SHARE_STATE_TOPIC)?.partitions.len() as i32;
        (count > 0).then(|| self.state_partition(count))
    }

    /// The record key of its snapshots.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(24 + self.group_id.len());
        put_i16(&mut out, SNAPSHOT_KEY);
        put_str(&mut out, &self.group_id);
        out.extend_from_slice(&self.topic_id);
        put_i32(&mut out, self.partition);
        out
    }

    /// What the record key of every snapshot of `group_id`'s share
    /// partitions starts with (a scan of a state partition for one group
    /// matches it).
    pub fn group_prefix(group_id: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + group_id.len());
        put_i16(&mut out, SNAPSHOT_KEY);
        put_str(&mut out, group_id);
        out
    }
}

/// One range of offsets with one delivery state and count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateBatch {
    pub first_offset: Offset,
    pub last_offset: Offset,
    pub delivery_state: i8,
    pub delivery_count: i16,
}

/// The tagged field of ReadShareGroupState's partition result and
/// WriteShareGroupState's partition data that carries the stored value of
/// a share partition's state record (a ShareSnapshot's [`ShareSnapshot::encode`];
/// empty in a write: a tombstone), between sluice brokers. Kafka's
/// brokers skip a tag they do not know.
pub const STATE_VALUE_TAG: i32 = 0x5155;

/// A ShareSnapshot value: a share partition's whole state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShareSnapshot {
    pub snapshot_epoch: i32,
    pub state_epoch: i32,
    pub leader_epoch: i32,
    pub start_offset: Offset,
    pub create_timestamp_ms: i64,
    pub write_timestamp_ms: i64,
    pub batches: Vec<StateBatch>,
}

impl ShareSnapshot {
    /// The record value (version 0, flexible).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(48 + self.batches.len() * 20);
        put_i16(&mut out, 0);
        put_i32(&mut out, self.snapshot_epoch);
        put_i32(&mut out, self.state_epoch);
        put_i32(&mut out, self.leader_epoch);
        put_i64(&mut out, self.start_offset);
        put_i64(&mut out, self.create_timestamp_ms);
        put_i64(&mut out, self.write_timestamp_ms);
        put_uvarint(&mut out, self.batches.len() as u32 + 1);
        for b in &self.batches {
            put_i64(&mut out, b.first_offset);
            put_i64(&mut out, b.last_offset);
            out.push(b.delivery_state as u8);
            put_i16(&mut out, b.delivery_count);
            put_uvarint(&mut out, 0);
        }
        put_uvarint(&mut out, 0);
        out
    }
}

/// A record of `__share_group_state`, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateRecord {
    /// A snapshot (`None`: a tombstone, the state deleted).
    Snapshot(ShareKey, Option<ShareSnapshot>),
    /// A ShareUpdate (Kafka's delta between snapshots): not applied here.
    Update(ShareKey),
}

impl StateRecord {
    /// Decodes a record's key and value.
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<StateRecord, RecordError> {
        let mut k = Reader(key);
        let record_type = k.i16()?;
        let group_id = k.string()?;
        let mut topic_id = [0u8; 16];
        topic_id.copy_from_slice(k.take(16)?);
        let partition = k.i32()?;
        let share_key = ShareKey {
            group_id,
            topic_id,
            partition,
        };
        match record_type {
            SNAPSHOT_KEY => {
                let snapshot = value.map(decode_snapshot).transpose()?;
                Ok(StateRecord::Snapshot(share_key, snapshot))
            }
            UPDATE_KEY => Ok(StateRecord::Update(share_key)),
            other => Err(RecordError::UnknownKeyVersion(other)),
        }
    }
}

fn decode_snapshot(value: &[u8]) -> Result<ShareSnapshot, RecordError> {
    let mut r = Reader(value);
    let version = r.i16()?;
    if version != 0 {
        return Err(RecordError::UnknownValueVersion(version));
    }
    let snapshot_epoch = r.i32()?;
    let state_epoch = r.i32()?;
    let leader_epoch = r.i32()?;
    let start_offset = r.i64()?;
    let create_timestamp_ms = r.i64()?;
    let write_timestamp_ms = r.i64()?;
    let count = r
        .uvarint()?
        .checked_sub(1)
        .ok_or(RecordError::NegativeLength)? as usize;
    // Each batch takes at least 20 bytes: a count past what is left is
    // refused before anything is allocated for it.
    if count > r.0.len() / 20 {
        return Err(RecordError::Truncated);
    }
    let mut batches = Vec::with_capacity(count);
    for _ in 0..count {
        let batch = StateBatch {
            first_offset: r.i64()?,
            last_offset: r.i64()?,
            delivery_state: r.i8()?,
            delivery_count: r.i16()?,
        };
        r.skip_tagged_fields()?;
        batches.push(batch);
    }
    r.skip_tagged_fields()?;
    Ok(ShareSnapshot {
        snapshot_epoch,
        state_epoch,
        leader_epoch,
        start_offset,
        create_timestamp_ms,
        write_timestamp_ms,
        batches,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ShareKey {
        ShareKey {
            group_id: "g".into(),
            topic_id: [7; 16],
            partition: 3,
        }
    }

    #[test]
    fn a_groups_prefix_starts_its_keys_only() {
        let prefix = ShareKey::group_prefix("g");
        assert!(key().encode().starts_with(&prefix));
        let longer = ShareKey {
            group_id: "gg".into(),
            ..key()
        };
        assert!(!longer.encode().starts_with(&prefix));
        assert!(!key().encode().starts_with(&ShareKey::group_prefix("")));
    }

    #[test]
    fn snapshots_round_trip_in_kafkas_layout() {
        let snapshot = ShareSnapshot {
            snapshot_epoch: 2,
            state_epoch: 0,
            leader_epoch: 5,
            start_offset: 100,
            create_timestamp_ms: 1_700_000_000_000,
            write_timestamp_ms: 1_700_000_000_500,
            batches: vec![
                StateBatch {
                    first_offset: 100,
                    last_offset: 104,
                    delivery_state: STATE_AVAILABLE,
                    delivery_count: 2,
                },
                StateBatch {
                    first_offset: 105,
                    last_offset: 105,
                    delivery_state: STATE_ACKNOWLEDGED,
                    delivery_count: 1,
                },
            ],
        };
        let k = key().encode();
        assert_eq!(&k[..2], &[0, 0], "ShareSnapshotKey is record type 0");
        let v = snapshot.encode();
        assert_eq!(&v[..2], &[0, 0], "value version 0");
        // 2 + 3*4 + 3*8 bytes, then a compact array of two batches (3).
        assert_eq!(v[38], 3);
        assert_eq!(
            StateRecord::decode(&k, Some(&v)),
            Ok(StateRecord::Snapshot(key(), Some(snapshot)))
        );
        assert_eq!(
            StateRecord::decode(&k, None),
            Ok(StateRecord::Snapshot(key(), None))
        );
        for cut in 0..v.len() {
            assert!(StateRecord::decode(&k, Some(&v[..cut])).is_err());
        }
    }

    #[test]
    fn coordinator_keys_are_kafkas() {
        // Uuid.fromString("AAAAAAAAAAAAAAAAAAAAAQ") is 0...01.
        let mut id = [0u8; 16];
        id[15] = 1;
        let k = ShareKey {
            group_id: "g".into(),
            topic_id: id,
            partition: 0,
        };
        assert_eq!(k.coordinator_key(), "g:AAAAAAAAAAAAAAAAAAAAAQ:0");
        assert!((0..50).contains(&k.state_partition(50)));
    }
}
