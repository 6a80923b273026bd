//! A bound on the files a shard holds open for a moment: checkpoints
//! written through a temporary file, index pages, index files created
//! empty. The files that stay open (one `.log` per segment) are not
//! counted; these are.
//!
//! Without it, a shard that opens thousands of partitions at once (a topic
//! of 10,000 partitions) has each of them write its leader-epoch checkpoint
//! at the same moment, every one holding a temporary file open beside its
//! `.log`, and the process runs out of descriptors (EMFILE): partitions
//! went offline with storage errors. With it, at most
//! [`TRANSIENT_FILES_AT_ONCE`] such files are open per shard; the others
//! wait their turn.
//!
//! Invariant: a holder of a permit never waits for a second one (no nested
//! acquisition), so waiting always ends.

use std::rc::Rc;

use glommio::sync::{Semaphore, StaticPermit};

/// Files held open for a moment, per shard (per thread), at most.
pub const TRANSIENT_FILES_AT_ONCE: u64 = 64;

thread_local! {
    static TRANSIENT_FILES: Rc<Semaphore> = Rc::new(Semaphore::new(TRANSIENT_FILES_AT_ONCE));
}

/// Waits for a turn to hold one file open for a moment; the turn ends when
/// the permit drops.
pub async fn transient_file_turn() -> StaticPermit {
    let semaphore = TRANSIENT_FILES.with(Rc::clone);
    semaphore
        .acquire_static_permit(1)
        .await
        .expect("the transient-file semaphore is never closed")
}
