//! Fuzzes whole-partition recovery: arbitrary bytes become the active
//! segment (and, split by the first byte, its index) of a partition on the
//! in-memory disk, which is then opened and read from start to end. Open may
//! fail with an error but never panic; whatever it serves is valid batches
//! with dense offsets.
#![no_main]

use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;
use sluice_core::batch::BatchIter;
use sluice_core::config::LogConfig;
use sluice_log::{MemoryStorage, PartitionLog};

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |b| *b as usize * 8).min(data.len());
    let (index, segment) = data.split_at(split);
    let storage = MemoryStorage::new();
    let dir = PathBuf::from("/p");
    storage.write_raw(&dir.join("00000000000000000000.log"), segment);
    storage.write_raw(&dir.join("00000000000000000000.index"), index);
    let config = LogConfig { index_interval_bytes: 64, ..LogConfig::default() };
    futures_lite::future::block_on(async {
        let Ok(log) = PartitionLog::open(storage, dir, config, None, 0).await else { return };
        let end = log.log_end_offset();
        assert!(log.size_bytes() <= segment.len() as u64);
        let mut next = log.log_start_offset();
        while next < end {
            let chunks = log.read(next, 4096, end).await.expect("recovered data reads back");
            assert!(!chunks.is_empty(), "data below the log end is served");
            for chunk in chunks {
                for batch in BatchIter::new(chunk) {
                    let batch = batch.expect("recovered batches are valid");
                    assert!(batch.base_offset() <= next && batch.last_offset() >= next);
                    next = batch.next_offset();
                }
            }
        }
        assert_eq!(next, end);
    });
});
