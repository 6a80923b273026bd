//! Fuzzes the internal listener's frame decoder (`--rpc-addr`) with
//! arbitrary bytes, as a socket could deliver them: the length header, then
//! the rkyv envelope and its JSON body. Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOCATOR: sluice_core::alloc::GuardedAllocator = sluice_core::alloc::GuardedAllocator;

fuzz_target!(|data: &[u8]| {
    if data.len() >= 4 {
        let header = [data[0], data[1], data[2], data[3]];
        let _ = sluice_quorum::wire::frame_len(header);
    }
    let _ = sluice_quorum::wire::decode(data);
});
