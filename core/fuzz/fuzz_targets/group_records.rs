//! Fuzzes the decoders of `__consumer_offsets` records (read back from the
//! log at load), of a consumer's subscription (sent by a client in
//! JoinGroup) and of a KIP-848 member's pattern (its SubscribedTopicRegex,
//! compiled). The first byte splits the input into a key and a value.
//! Nothing may panic; whatever decodes must encode back to bytes that
//! decode to the same record.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_core::group::records::OffsetsRecord;
use sluice_core::group::resolution::compile;
use sluice_core::group::subscription::subscribed_topics;

fuzz_target!(|data: &[u8]| {
    let _ = subscribed_topics(data);
    if let Ok(pattern) = std::str::from_utf8(data) {
        let _ = compile(pattern);
    }
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let split = (split as usize).min(rest.len());
    let (key, value) = rest.split_at(split);
    for value in [Some(value), None] {
        if let Ok(record) = OffsetsRecord::decode(key, value) {
            let again = OffsetsRecord::decode(&record.encode_key(), record.encode_value().as_deref())
                .expect("an encoded record decodes");
            assert_eq!(again, record);
        }
    }
});
