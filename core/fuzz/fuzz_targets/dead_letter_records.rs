//! Fuzzes what a restart reads back from a share group's dead-letter
//! topic (KIP-1191): a record batch from the log, its records, and the
//! dead-letter context in their headers (which source record each names).
//! Nothing may panic; a context read back comes from the record's own
//! headers.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sluice_core::batch::RecordBatch;
use sluice_core::records::RecordIter;
use sluice_core::share::dead_letter::{context_of, HEADER_GROUP, HEADER_OFFSET};

fuzz_target!(|data: &[u8]| {
    let Ok(batch) = RecordBatch::parse_unchecked(Bytes::copy_from_slice(data)) else {
        return;
    };
    let Ok(records) = RecordIter::new(&batch) else {
        return;
    };
    for record in records.take(1024) {
        let Ok(record) = record else {
            break;
        };
        if let Some((group, _, _, _)) = context_of(&record) {
            let has = |name: &str, value: &str| {
                record.headers.iter().any(|h| {
                    &h.key[..] == name.as_bytes() && h.value.as_deref() == Some(value.as_bytes())
                })
            };
            assert!(has(HEADER_GROUP, &group));
            assert!(record
                .headers
                .iter()
                .any(|h| &h.key[..] == HEADER_OFFSET.as_bytes()));
        }
    }
});
