//! Fuzzes the transaction index decoder: arbitrary bytes as a sealed
//! segment's `.txnindex`. Decoding never panics; what it keeps is a prefix
//! of the file, entry for entry (encoding it again gives those bytes), in
//! strictly increasing marker order, each first offset below its marker.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_log::txn_index::{decode, encode, ENTRY_BYTES};

fuzz_target!(|data: &[u8]| {
    let entries = decode(data);
    let bytes = encode(&entries);
    assert_eq!(bytes.len(), entries.len() * ENTRY_BYTES);
    assert_eq!(&data[..bytes.len()], &bytes[..], "the kept entries are the file's prefix");
    for pair in entries.windows(2) {
        assert!(pair[0].last_offset < pair[1].last_offset);
    }
    for t in &entries {
        assert!(0 <= t.first_offset && t.first_offset < t.last_offset);
    }
});
