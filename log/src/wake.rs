//! A periodic wake-up for the glommio executor a log runs on.
//!
//! glommio 0.9 can put its reactor to sleep in `io_uring_enter` with a
//! completion already posted (seen on this project's CI machine: a log test
//! idle for 15 minutes until a debugger's signal woke it, after which it
//! passed). Any wake-up reaps such a completion, so an executor that may
//! otherwise have no timer pending runs [`keep_awake`] once: a stall then
//! lasts at most one period. The broker's shards have their own 100 ms
//! wake-up (`runtime::STALL_GUARD`), which does the same.

use std::time::Duration;

/// The period [`keep_awake`] is usually given.
pub const DEFAULT_WAKE_PERIOD: Duration = Duration::from_millis(50);

/// Spawns, on the current glommio executor, a task that wakes it every
/// `period` until the executor ends. Must run inside an executor.
pub fn keep_awake(period: Duration) {
    glommio::spawn_local(async move {
        loop {
            glommio::timer::sleep(period).await;
        }
    })
    .detach();
}
