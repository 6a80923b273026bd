//! Fuzzes the replay of the metadata log: each line of the input is one
//! record's value as read back from the log at start-up, decoded as a
//! metadata command and applied to the state, as the controller does.
//! Nothing may panic: a command that does not decode or apply is an error
//! the replay reports (and the node stops through its fatal path). After
//! every command that applies, the state keeps its invariants (replicas on
//! distinct registered brokers, leaders in sync and not fenced).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_core::metadata::{MetadataCommand, MetadataState};

fuzz_target!(|data: &[u8]| {
    let mut state = MetadataState::default();
    for line in data.split(|b| *b == b'\n') {
        if let Ok(command) = serde_json::from_slice::<MetadataCommand>(line) {
            if state.apply(&command).is_ok() {
                let broken = state.violations();
                assert!(broken.is_empty(), "{command}: {broken:?}");
            }
        }
    }
});
