//! A periodic wake-up for the glommio executor a log runs on.
//!
//! glommio 0.9.0 can park its executor in `io_uring_enter` with tasks
//! still runnable. Its loop arms the preempt timer, then, before running a
//! task queue, checks whether it must yield (any completion waiting in the
//! latency ring); when it must yield before it ran anything, it takes that
//! for "nothing to run", consumes the completion and parks. The runnable
//! tasks then wait for the next unrelated event. It takes a thread kept off
//! the CPU past the preempt period (100 ms) in a window of microseconds:
//! rare, and seen on this project's CI machine as a log test idle for 15
//! minutes until a debugger's signal woke it, after which it passed.
//! `tests/glommio_park_race.rs` reproduces it at will (a 1 ns preempt
//! timer) and fails once a glommio without the bug is in use; the fix is
//! upstream, in no release yet. Until then any wake-up ends such a stall,
//! so an executor that may otherwise have no timer pending runs
//! [`keep_awake`] once: a stall then lasts at most one period. The broker's
//! shards have their own 100 ms wake-up (`runtime::STALL_GUARD`), which
//! does the same.

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
