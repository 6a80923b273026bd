//! Recovery inputs that the fuzzer (`log/fuzz recover_segment`) found
//! wrong, kept as tests: each is opened as the fuzz target opens it and
//! must serve every offset below its log end as valid batches.

use std::path::PathBuf;

use sluice_core::batch::BatchIter;
use sluice_core::config::LogConfig;
use sluice_log::{MemoryStorage, PartitionLog};

mod common;

/// As the fuzz target does: the first byte times 8 is the index's length,
/// the index is followed by the segment; open, then read everything.
fn recover_and_read(data: &[u8]) {
    let split = data.first().map_or(0, |b| *b as usize * 8).min(data.len());
    let (index, segment) = data.split_at(split);
    let storage = MemoryStorage::new();
    let dir = PathBuf::from("/p");
    storage.write_raw(&dir.join("00000000000000000000.log"), segment);
    storage.write_raw(&dir.join("00000000000000000000.index"), index);
    let config = LogConfig {
        index_interval_bytes: 64,
        ..LogConfig::default()
    };
    common::run(async {
        let Ok(log) = PartitionLog::open(storage, dir, config, None, 0).await else {
            return;
        };
        let end = log.log_end_offset();
        let mut next = log.log_start_offset();
        while next < end {
            let chunks = log.read(next, 4096, end).await.expect("reads back");
            assert!(
                !chunks.is_empty(),
                "offset {next} below the log end {end} is served"
            );
            for chunk in chunks {
                for batch in BatchIter::new(chunk) {
                    next = batch.expect("valid batches").next_offset();
                }
            }
        }
        assert_eq!(next, end);
    });
}

/// An index entry pointing at bytes whose first eight happen to be the
/// offset it names, but which are no batch (their length runs past the
/// file): it was trusted, and the log end jumped to that offset with
/// nothing below it readable. Entries must now name a whole batch, in the
/// file, with a valid CRC.
#[test]
fn an_index_entry_whose_bytes_only_look_like_its_batch_is_dropped() {
    recover_and_read(&FUZZ_INDEX_ENTRY_WITHOUT_BATCH);
}

const FUZZ_INDEX_ENTRY_WITHOUT_BATCH: [u8; 238] = [
    3, 0, 5, 0, 0, 0, 0, 0, 252, 0, 5, 0, 0, 0, 0, 2, 252, 255, 0, 4, 0, 0, 3, 0, 5, 0, 0, 0, 0, 0,
    252, 0, 5, 0, 96, 0, 0, 2, 252, 255, 0, 2, 2, 2, 2, 2, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50,
    50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50,
    50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50,
    50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 2, 2, 2,
    91, 2, 2, 2, 2, 34, 2, 2, 2, 2, 2, 2, 2, 2, 2, 50, 50, 50, 50, 50, 50, 50, 50, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 39, 2, 2, 255, 255, 255, 255, 2, 2, 2, 99, 0, 46, 7, 2, 2, 2, 2, 0, 0,
    3, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 248, 250, 0, 0, 101, 0, 0, 0, 46, 100, 101,
    108, 101, 116, 255, 255, 255, 143, 0, 64, 0, 255, 255, 255, 250, 255, 0, 0, 0, 0, 0, 0, 0, 0,
    101, 100, 255, 120, 255, 120,
];
