//! The records of `__transaction_state`: one per transactional id, its
//! transaction's state, in Kafka's own layout.
//!
//! Owns: encoding and decoding a record's key and value. Key: version i16
//! (0), transactional id (i16 length, UTF-8). Value (version 0): producer
//! id i64, producer epoch i16, transaction timeout ms i32, status i8, the
//! partitions in the transaction (nullable i32 count of topic string and
//! i32 count of partition ids), last update ms i64, start ms i64. Version
//! 1 (flexible, transaction version 2) has the same fields with compact
//! lengths, and tagged fields: 0 the previous producer id, 1 the next one
//! (an exhausted epoch's successor), 2 the client's transaction version;
//! it is written when any of them is set, version 0 otherwise. A null
//! value is a tombstone (the id expired). Kafka reads both versions, so
//! its tools read ours.
//!
//! Invariants: decoding never panics and never allocates more than the
//! input's length implies; anything unexpected is a [`RecordError`].

use std::collections::BTreeSet;

use crate::group::records::{put_i16, put_i32, put_i64, put_str, put_uvarint, Reader, RecordError};

/// A transaction's status as the record stores it (Kafka's codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnStatus {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    Dead,
    PrepareEpochFence,
}

impl TxnStatus {
    pub fn code(self) -> i8 {
        match self {
            TxnStatus::Empty => 0,
            TxnStatus::Ongoing => 1,
            TxnStatus::PrepareCommit => 2,
            TxnStatus::PrepareAbort => 3,
            TxnStatus::CompleteCommit => 4,
            TxnStatus::CompleteAbort => 5,
            TxnStatus::Dead => 6,
            TxnStatus::PrepareEpochFence => 7,
        }
    }

    pub fn from_code(code: i8) -> Option<TxnStatus> {
        Some(match code {
            0 => TxnStatus::Empty,
            1 => TxnStatus::Ongoing,
            2 => TxnStatus::PrepareCommit,
            3 => TxnStatus::PrepareAbort,
            4 => TxnStatus::CompleteCommit,
            5 => TxnStatus::CompleteAbort,
            6 => TxnStatus::Dead,
            7 => TxnStatus::PrepareEpochFence,
            _ => return None,
        })
    }

    /// Kafka's name of the state (DescribeTransactions, ListTransactions).
    pub fn name(self) -> &'static str {
        match self {
            TxnStatus::Empty => "Empty",
            TxnStatus::Ongoing => "Ongoing",
            TxnStatus::PrepareCommit => "PrepareCommit",
            TxnStatus::PrepareAbort => "PrepareAbort",
            TxnStatus::CompleteCommit => "CompleteCommit",
            TxnStatus::CompleteAbort => "CompleteAbort",
            TxnStatus::Dead => "Dead",
            TxnStatus::PrepareEpochFence => "PrepareEpochFence",
        }
    }
}

/// A transactional id's state as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnValue {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub status: TxnStatus,
    /// (topic, partition) of every partition in the transaction.
    pub partitions: BTreeSet<(String, i32)>,
    pub last_update_ms: i64,
    /// When the transaction began, or -1 when none is open.
    pub start_ms: i64,
    /// The producer id before an exhausted epoch moved the id to a new
    /// one, or -1 (tagged field 0).
    pub prev_producer_id: i64,
    /// The producer id the transaction completes with when its epoch is
    /// exhausted, or -1 (tagged field 1).
    pub next_producer_id: i64,
    /// The transaction version of the client's last EndTxn: 2 when it
    /// bumps the epoch per transaction, else 0 (tagged field 2).
    pub client_version: i16,
}

impl TxnValue {
    /// True when version 0 can hold the value (no tagged field set).
    fn fits_version_0(&self) -> bool {
        self.prev_producer_id == -1
            && self.next_producer_id == -1
            && self.client_version == 0
            && self
                .partitions
                .iter()
                .all(|(topic, _)| topic.len() <= i16::MAX as usize)
    }
}

/// One record of `__transaction_state`; a `None` value is a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnRecord {
    pub transactional_id: String,
    pub value: Option<TxnValue>,
}

impl TxnRecord {
    pub fn encode_key(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + self.transactional_id.len());
        put_i16(&mut out, 0);
        put_str(&mut out, &self.transactional_id);
        out
    }

    pub fn encode_value(&self) -> Option<Vec<u8>> {
        let v = self.value.as_ref()?;
        let flexible = !v.fits_version_0();
        let mut out = Vec::with_capacity(64);
        put_i16(&mut out, i16::from(flexible));
        put_i64(&mut out, v.producer_id);
        put_i16(&mut out, v.producer_epoch);
        put_i32(&mut out, v.timeout_ms);
        out.push(v.status.code() as u8);
        let mut topics: Vec<(&str, Vec<i32>)> = Vec::new();
        for (topic, partition) in &v.partitions {
            match topics.last_mut() {
                Some((t, ids)) if *t == topic.as_str() => ids.push(*partition),
                _ => topics.push((topic, vec![*partition])),
            }
        }
        if flexible {
            put_uvarint(&mut out, topics.len() as u32 + 1);
            for (topic, ids) in topics {
                put_uvarint(&mut out, topic.len() as u32 + 1);
                out.extend_from_slice(topic.as_bytes());
                put_uvarint(&mut out, ids.len() as u32 + 1);
                for id in ids {
                    put_i32(&mut out, id);
                }
                put_uvarint(&mut out, 0); // the topic's tagged fields
            }
        } else {
            put_i32(&mut out, topics.len() as i32);
            for (topic, ids) in topics {
                put_str(&mut out, topic);
                put_i32(&mut out, ids.len() as i32);
                for id in ids {
                    put_i32(&mut out, id);
                }
            }
        }
        put_i64(&mut out, v.last_update_ms);
        put_i64(&mut out, v.start_ms);
        if flexible {
            let mut tags: Vec<(u32, Vec<u8>)> = Vec::new();
            if v.prev_producer_id != -1 {
                tags.push((0, v.prev_producer_id.to_be_bytes().to_vec()));
            }
            if v.next_producer_id != -1 {
                tags.push((1, v.next_producer_id.to_be_bytes().to_vec()));
            }
            if v.client_version != 0 {
                tags.push((2, v.client_version.to_be_bytes().to_vec()));
            }
            put_uvarint(&mut out, tags.len() as u32);
            for (tag, data) in tags {
                put_uvarint(&mut out, tag);
                put_uvarint(&mut out, data.len() as u32);
                out.extend_from_slice(&data);
            }
        }
        Some(out)
    }

    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<TxnRecord, RecordError> {
        let mut k = Reader(key);
        let version = k.i16()?;
        if version != 0 {
            return Err(RecordError::UnknownKeyVersion(version));
        }
        let transactional_id = k.string()?;
        let value = match value {
            None => None,
            Some(v) => Some(decode_value(v)?),
        };
        Ok(TxnRecord {
            transactional_id,
            value,
        })
    }
}

fn decode_value(value: &[u8]) -> Result<TxnValue, RecordError> {
    let mut r = Reader(value);
    let version = r.i16()?;
    if !(0..=1).contains(&version) {
        return Err(RecordError::UnknownValueVersion(version));
    }
    let flexible = version >= 1;
    let producer_id = r.i64()?;
    let producer_epoch = r.i16()?;
    let timeout_ms = r.i32()?;
    let status = TxnStatus::from_code(r.i8()?).ok_or(RecordError::UnknownValueVersion(version))?;
    let mut partitions = BTreeSet::new();
    if flexible {
        // A compact nullable array: 0 is null.
        let topics = r.uvarint()?.saturating_sub(1);
        for _ in 0..topics {
            let len = r
                .uvarint()?
                .checked_sub(1)
                .ok_or(RecordError::NegativeLength)?;
            let topic = std::str::from_utf8(r.take(len as usize)?)
                .map_err(|_| RecordError::NotUtf8)?
                .to_owned();
            let count = r
                .uvarint()?
                .checked_sub(1)
                .ok_or(RecordError::NegativeLength)?;
            for _ in 0..count {
                partitions.insert((topic.clone(), r.i32()?));
            }
            r.skip_tagged_fields()?;
        }
    } else {
        let topics = r.i32()?;
        for _ in 0..topics.max(0) {
            let topic = r.string()?;
            let count = r.len32()?;
            for _ in 0..count {
                partitions.insert((topic.clone(), r.i32()?));
            }
        }
    }
    let mut v = TxnValue {
        producer_id,
        producer_epoch,
        timeout_ms,
        status,
        partitions,
        last_update_ms: r.i64()?,
        start_ms: r.i64()?,
        prev_producer_id: -1,
        next_producer_id: -1,
        client_version: 0,
    };
    if flexible {
        let count = r.uvarint()?;
        for _ in 0..count {
            let tag = r.uvarint()?;
            let size = r.uvarint()? as usize;
            let data = r.take(size)?;
            let mut field = Reader(data);
            match tag {
                0 => v.prev_producer_id = field.i64()?,
                1 => v.next_producer_id = field.i64()?,
                2 => v.client_version = field.i16()?,
                _ => {} // a later version's field
            }
        }
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> TxnRecord {
        TxnRecord {
            transactional_id: "tx-1".into(),
            value: Some(TxnValue {
                producer_id: 4000,
                producer_epoch: 3,
                timeout_ms: 60_000,
                status: TxnStatus::Ongoing,
                partitions: [
                    ("a".to_string(), 0),
                    ("a".to_string(), 2),
                    ("b".to_string(), 1),
                ]
                .into_iter()
                .collect(),
                last_update_ms: 1_700_000_000_123,
                start_ms: 1_700_000_000_000,
                prev_producer_id: -1,
                next_producer_id: -1,
                client_version: 0,
            }),
        }
    }

    #[test]
    fn values_with_tagged_fields_use_version_1_and_round_trip() {
        let mut r = record();
        if let Some(v) = r.value.as_mut() {
            v.next_producer_id = 5000;
            v.client_version = 2;
        }
        let value = r.encode_value().expect("a value");
        assert_eq!(&value[..2], &[0, 1]);
        // Compact array of two topics (3), "a" (2, 'a'), ids [0, 2] (3).
        assert_eq!(&value[17..21], &[3, 2, b'a', 3]);
        let back = TxnRecord::decode(&r.encode_key(), Some(&value)).expect("decodes");
        assert_eq!(back, r);
        for cut in 0..value.len() {
            assert!(TxnRecord::decode(&r.encode_key(), Some(&value[..cut])).is_err());
        }
    }

    #[test]
    fn records_round_trip() {
        let r = record();
        let back =
            TxnRecord::decode(&r.encode_key(), r.encode_value().as_deref()).expect("decodes");
        assert_eq!(back, r);
        let tombstone = TxnRecord {
            transactional_id: "tx-1".into(),
            value: None,
        };
        assert_eq!(
            TxnRecord::decode(&tombstone.encode_key(), None).expect("decodes"),
            tombstone
        );
    }

    #[test]
    fn values_use_kafkas_version_0_layout() {
        let value = record().encode_value().expect("a value");
        // version, producer id, epoch, timeout, status
        assert_eq!(&value[..2], &[0, 0]);
        assert_eq!(&value[2..10], &4000i64.to_be_bytes());
        assert_eq!(&value[10..12], &3i16.to_be_bytes());
        assert_eq!(&value[12..16], &60_000i32.to_be_bytes());
        assert_eq!(value[16], 1);
        // two topics: "a" with [0, 2], then "b" with [1]
        assert_eq!(&value[17..21], &2i32.to_be_bytes());
        assert_eq!(&value[21..24], &[0, 1, b'a']);
        assert_eq!(&value[24..28], &2i32.to_be_bytes());
    }

    #[test]
    fn damaged_records_are_errors_not_panics() {
        let r = record();
        let key = r.encode_key();
        let value = r.encode_value().expect("a value");
        for cut in 0..value.len() {
            assert!(TxnRecord::decode(&key, Some(&value[..cut])).is_err());
        }
        for cut in 0..key.len() {
            assert!(TxnRecord::decode(&key[..cut], Some(&value)).is_err());
        }
        let mut huge = value.clone();
        huge[17..21].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(TxnRecord::decode(&key, Some(&huge)).is_err());
    }
}
