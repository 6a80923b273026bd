//! Fuzzes the pure recovery scanner and the index and checkpoint decoders
//! with arbitrary file bytes. Nothing may panic; every batch the scanner
//! accepts must lie inside the buffer, follow the previous one and check.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_core::batch::check_log_batch;
use sluice_log::checkpoint::{decode, PartitionCheckpoint};
use sluice_log::index::{OffsetEntry, SparseIndex, TimeEntry};
use sluice_log::scan::{scan, ScanStop};

fuzz_target!(|data: &[u8]| {
    let expected = data.get(..8).map_or(0, |b| i64::from_be_bytes(b.try_into().unwrap_or([0; 8])));
    let mut end = 0usize;
    let mut next = expected;
    let stop = scan(data, expected, |b| {
        assert_eq!(b.position, end, "batches are contiguous");
        assert_eq!(b.header.base_offset, next, "offsets are dense");
        let batch = &data[b.position..b.position + b.header.size_bytes];
        assert!(check_log_batch(batch).is_ok());
        end = b.position + b.header.size_bytes;
        next = b.header.last_offset() + 1;
    });
    match stop {
        ScanStop::End => assert_eq!(end, data.len()),
        ScanStop::NeedMore { position, needed } => {
            assert_eq!(position, end);
            assert!(position + needed > data.len());
        }
        ScanStop::Invalid { position, .. } => assert_eq!(position, end),
    }
    let (index, cut) = SparseIndex::<OffsetEntry>::decode(data, 1 << 20);
    assert_eq!(index.len() * 8 + cut, data.len());
    let (time, cut) = SparseIndex::<TimeEntry>::decode(data, 1 << 20);
    assert_eq!(time.len() * 12 + cut, data.len());
    let _ = decode::<PartitionCheckpoint>(data);
});
