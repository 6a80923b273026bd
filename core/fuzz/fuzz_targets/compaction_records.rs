//! Fuzzes what the log cleaner decodes from a segment file: a stored batch
//! (any codec), its records, and the batch it writes back with some of them.
//! Nothing may panic, decompression stays within its limit, and a rewrite
//! keeps the batch's offsets and holds exactly the records kept.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sluice_core::batch::{check_log_batch, BatchIter};
use sluice_core::compaction::{read_records, rebuild_batch};
use sluice_core::compression::decompress;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    // Unchecked, as the cleaner reads them: the CRC was checked at recovery,
    // and a fuzzer rarely forges one.
    for batch in BatchIter::new_unchecked(Bytes::copy_from_slice(rest)) {
        let Ok(batch) = batch else { break };
        let _ = decompress(batch.compression(), &batch.records_bytes(), 1 << 16);
        let Ok(records) = read_records(&batch, 1 << 16) else {
            continue;
        };
        let kept: Vec<_> = records
            .iter()
            .enumerate()
            .filter(|(i, _)| selector & (1 << (i % 8)) != 0)
            .map(|(_, r)| r)
            .collect();
        let horizon = (selector & 1 != 0).then_some(1_000);
        if let Ok(out) = rebuild_batch(&batch, &kept, horizon) {
            let header = check_log_batch(&out).expect("a rewritten batch is valid");
            assert_eq!(header.base_offset, batch.base_offset());
            assert_eq!(header.last_offset(), batch.last_offset());
            assert_eq!(header.records_count as usize, kept.len());
        }
    }
});
