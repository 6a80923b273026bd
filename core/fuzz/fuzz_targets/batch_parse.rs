//! Fuzzes the RecordBatch v2 parser and the lazy record iterator with
//! arbitrary bytes, as a produce request or a segment file could hold them.
//! Nothing may panic; whatever parses must be internally consistent.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sluice_core::batch::{check_log_batch, validate_batches, BatchIter, RecordBatch};
use sluice_core::records::RecordIter;

fuzz_target!(|data: &[u8]| {
    let bytes = Bytes::copy_from_slice(data);
    let _ = validate_batches(&bytes);
    let mut consumed = 0usize;
    for batch in BatchIter::new(bytes.clone()) {
        let Ok(batch) = batch else { break };
        consumed += batch.size_bytes();
        assert!(check_log_batch(batch.bytes()).is_ok());
        assert_eq!(batch.last_offset(), batch.base_offset() + batch.last_offset_delta() as i64);
        if let Ok(records) = RecordIter::new(&batch) {
            let mut n = 0;
            for record in records {
                let Ok(record) = record else { break };
                assert!(record.offset >= batch.base_offset() || batch.last_offset_delta() < 0);
                n += 1;
            }
            assert!(n <= batch.records_count());
        }
    }
    assert!(consumed <= data.len());
    if let Ok(batch) = RecordBatch::parse(bytes) {
        assert_eq!(batch.size_bytes(), data.len());
    }
});
