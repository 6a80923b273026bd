//! Transaction markers: the control batches that end a transaction in a
//! partition, in Kafka's layout.
//!
//! Owns: encoding a marker batch (transactional and control bits set, the
//! producer's id and epoch, no sequence, one record whose key is the
//! control type and whose value is the coordinator's epoch) and reading the
//! control type back out of a stored control batch.
//!
//! Layout (Kafka's `ControlRecordType` key and `EndTransactionMarker`
//! value): key = version i16 (0), type i16 (0 abort, 1 commit); value =
//! version i16 (0), coordinator epoch i32. Readers accept any key version
//! and ignore what follows the fields they know, as Kafka's do.

use bytes::Bytes;

use crate::batch::{BatchBuilder, BatchHeader, RecordBatch};
use crate::records::RecordIter;

/// How a transaction ended in a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlType {
    Abort,
    Commit,
}

impl ControlType {
    /// The type's code in a control record's key.
    pub fn code(self) -> i16 {
        match self {
            ControlType::Abort => 0,
            ControlType::Commit => 1,
        }
    }

    /// The type a control record's key names, when it names one of these.
    pub fn from_code(code: i16) -> Option<ControlType> {
        match code {
            0 => Some(ControlType::Abort),
            1 => Some(ControlType::Commit),
            _ => None,
        }
    }
}

/// A commit or abort marker for one producer's transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub control: ControlType,
    pub coordinator_epoch: i32,
}

impl Marker {
    /// The marker as one control batch (base offset 0: the log assigns it).
    pub fn to_batch(&self, now_ms: i64) -> Bytes {
        let key = control_key(self.control);
        let mut value = Vec::with_capacity(6);
        value.extend_from_slice(&0i16.to_be_bytes());
        value.extend_from_slice(&self.coordinator_epoch.to_be_bytes());
        BatchBuilder::new(now_ms)
            .producer(self.producer_id, self.producer_epoch, -1)
            .transactional()
            .control()
            .record(Some(&key), Some(&value))
            .build()
    }
}

/// The key of a control record of type `control`.
pub fn control_key(control: ControlType) -> [u8; 4] {
    let mut key = [0u8; 4];
    key[2..].copy_from_slice(&control.code().to_be_bytes());
    key
}

/// The control type of the control batch at the start of `batch` (as
/// stored), or `None` when it is not a control batch or its record does
/// not name a known type. Copies the batch (a few dozen bytes).
pub fn control_type(header: &BatchHeader, batch: &[u8]) -> Option<ControlType> {
    control_marker(header, batch).map(|(control, _)| control)
}

/// [`control_type`], with the coordinator epoch the marker carries (-1
/// when its value does not hold one).
pub fn control_marker(header: &BatchHeader, batch: &[u8]) -> Option<(ControlType, i32)> {
    if !header.is_control() {
        return None;
    }
    let whole = batch.get(..header.size_bytes)?;
    let parsed = RecordBatch::parse_unchecked(Bytes::copy_from_slice(whole)).ok()?;
    let record = RecordIter::new(&parsed).ok()?.next()?.ok()?;
    let key = record.key?;
    if key.len() < 4 {
        return None;
    }
    let control = ControlType::from_code(i16::from_be_bytes([key[2], key[3]]))?;
    let coordinator_epoch = record
        .value
        .filter(|v| v.len() >= 6)
        .map_or(-1, |v| i32::from_be_bytes([v[2], v[3], v[4], v[5]]));
    Some((control, coordinator_epoch))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_batch_reads_back_as_its_type() {
        for control in [ControlType::Abort, ControlType::Commit] {
            let marker = Marker {
                producer_id: 42,
                producer_epoch: 3,
                control,
                coordinator_epoch: 7,
            };
            let batch = marker.to_batch(1_000);
            let header = BatchHeader::peek(&batch).expect("a batch");
            assert!(header.is_control() && header.is_transactional());
            assert_eq!((header.producer_id, header.producer_epoch), (42, 3));
            assert_eq!(header.base_sequence, -1);
            assert_eq!(control_type(&header, &batch), Some(control));
            assert_eq!(control_marker(&header, &batch), Some((control, 7)));
        }
    }

    #[test]
    fn a_data_batch_has_no_control_type() {
        let batch = BatchBuilder::new(0)
            .transactional()
            .record(Some(&control_key(ControlType::Commit)), None)
            .build();
        let header = BatchHeader::peek(&batch).expect("a batch");
        assert_eq!(control_type(&header, &batch), None);
    }
}
