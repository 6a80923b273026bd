//! Fuzzes the decoders of transactions read back from the log: a
//! `__transaction_state` record (at a coordinator's load) and a control
//! batch's marker type (at every partition's load and on every append of
//! a follower). The first byte splits the input into a key and a value;
//! the whole input is also read as a batch. Nothing may panic; a record
//! that decodes must encode back to bytes that decode to the same record.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_core::batch::BatchHeader;
use sluice_core::txn::marker::control_type;
use sluice_core::txn::records::TxnRecord;

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = BatchHeader::peek(data) {
        let _ = control_type(&header, data);
    }
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let split = (split as usize).min(rest.len());
    let (key, value) = rest.split_at(split);
    for value in [Some(value), None] {
        if let Ok(record) = TxnRecord::decode(key, value) {
            let again = TxnRecord::decode(&record.encode_key(), record.encode_value().as_deref())
                .expect("an encoded record decodes");
            assert_eq!(again, record);
        }
    }
});
