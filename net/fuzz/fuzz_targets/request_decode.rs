//! Fuzzes the request decoder with arbitrary frame bodies, as a socket could
//! deliver them: API key and version, header, then the body for every API
//! the broker serves (ShareFetch and ShareAcknowledge v2 through their
//! translation to v1). Nothing may panic.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

// The broker's allocator: declared collection sizes cost address space only.
#[global_allocator]
static ALLOCATOR: sluice_core::alloc::GuardedAllocator = sluice_core::alloc::GuardedAllocator;

fuzz_target!(|data: &[u8]| {
    let _ = sluice_net::kafka::server::decode_request(Bytes::copy_from_slice(data));
    // ShareFetch and ShareAcknowledge v2's own fields, as their handlers
    // read them from the frame.
    let _ = sluice_net::kafka::share_v2::fields_of_frame(data);
});
