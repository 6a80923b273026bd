//! A canary for the glommio 0.9.0 bug that `sluice_log::wake::keep_awake`
//! and the shards' `STALL_GUARD` work around.
//!
//! glommio's executor loop arms its preempt timer, then runs task queues,
//! but first checks whether it must yield (`need_preempt`: any completion
//! waiting in the latency ring, such as that very timer). When it must
//! yield before it ran anything, the loop takes "ran nothing" for "nothing
//! to run", polls the rings (consuming the completion) and parks in
//! `io_uring_enter` with tasks still runnable: they wait for the next
//! unrelated event. On a shard that event is its periodic wake-up; without
//! one, for ever (a log test once idled 15 minutes until a debugger's
//! signal woke it). The trigger in production is a thread kept off the
//! CPU past the preempt period (100 ms) in that window: rare, but a stall
//! when it happens. Fixed upstream after 0.9.0 (no release carries it yet).
//!
//! A preempt timer of 1 ns makes the timer's completion arrive before
//! every check, so the first run of a task parks for good. This test
//! asserts that it still does: when it fails, the glommio in use no longer
//! parks with runnable tasks, and the periodic wake-ups can go.

use std::sync::mpsc;
use std::time::Duration;

#[test]
fn glommio_parks_with_a_runnable_task_when_preempted_before_it_ran() {
    let (done, runs) = mpsc::channel();
    // Left parked if the bug is present; the process ends it.
    std::thread::spawn(move || {
        let executor = glommio::LocalExecutorBuilder::default()
            .preempt_timer(Duration::from_nanos(1))
            .make()
            .expect("an executor");
        for _ in 0..1_000 {
            executor.run(async {});
        }
        let _ = done.send(());
    });
    match runs.recv_timeout(Duration::from_secs(3)) {
        Err(mpsc::RecvTimeoutError::Timeout) => {}
        Ok(()) => panic!(
            "1,000 runs finished: this glommio no longer parks with a runnable task; \
             remove sluice_log::wake::keep_awake and the shards' STALL_GUARD"
        ),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            panic!("the executor thread ended early (could it make an executor?)")
        }
    }
}
