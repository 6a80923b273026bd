//! Fuzzes the decoder of share partitions' state read back from the log:
//! a `__share_group_state` record (read when a share partition is first
//! used after a start). The first byte splits the input into a key and a
//! value. Nothing may panic; a snapshot that decodes must encode back to
//! bytes that decode to the same snapshot.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_core::share::state::StateRecord;

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let split = (split as usize).min(rest.len());
    let (key, value) = rest.split_at(split);
    for value in [Some(value), None] {
        if let Ok(StateRecord::Snapshot(k, snapshot)) = StateRecord::decode(key, value) {
            let encoded = snapshot.as_ref().map(|s| s.encode());
            let again = StateRecord::decode(&k.encode(), encoded.as_deref())
                .expect("an encoded snapshot decodes");
            assert_eq!(again, StateRecord::Snapshot(k, snapshot));
        }
    }
});
