//! openraft's runtime on a glommio executor: tasks, time, timers and
//! randomness for a Raft group that lives on one shard's thread.
//!
//! Owns: [`LocalRuntime`] (openraft's `AsyncRuntime`), the thread's
//! [`Timebase`] (the system clock and glommio timers in production, a
//! virtual clock in the simulator), the thread's seeded generator for
//! election timeouts, and [`Process`]: the tasks one Raft node spawned, so
//! the simulator can stop a crashed node's tasks as its process would stop.
//!
//! Invariants: a task spawned from inside a process belongs to it; once the
//! process is stopped none of its tasks is polled again (the next poll
//! drops it instead). Nothing here reads the wall clock except
//! [`SystemTimebase`], and openraft reads time only through [`Instant`].

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_channel::oneshot;
use openraft::AsyncRuntime;
use openraft::OptionalSend;
use sluice_core::rng::SplitMix64;

/// The time a Raft node sees.
pub trait Timebase {
    /// Time since an arbitrary origin; never goes back.
    fn now(&self) -> Duration;
    /// Completes once [`Timebase::now`] reads `deadline` or later.
    fn sleep_until(&self, deadline: Duration) -> Pin<Box<dyn Future<Output = ()>>>;
}

/// Production time: a monotonic clock and glommio's timers.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemTimebase;

fn system_origin() -> std::time::Instant {
    static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *ORIGIN.get_or_init(std::time::Instant::now)
}

impl Timebase for SystemTimebase {
    fn now(&self) -> Duration {
        system_origin().elapsed()
    }

    fn sleep_until(&self, deadline: Duration) -> Pin<Box<dyn Future<Output = ()>>> {
        let wait = deadline.saturating_sub(self.now());
        Box::pin(glommio::timer::sleep(wait))
    }
}

thread_local! {
    static TIMEBASE: RefCell<Rc<dyn Timebase>> = RefCell::new(Rc::new(SystemTimebase));
    static RNG: RefCell<SplitMix64> = RefCell::new(SplitMix64::new(seed_from_time()));
    static CURRENT: RefCell<Option<Process>> = const { RefCell::new(None) };
}

fn seed_from_time() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Makes `timebase` the time of every Raft node on this thread.
pub fn set_timebase(timebase: Rc<dyn Timebase>) {
    TIMEBASE.with(|t| *t.borrow_mut() = timebase);
}

/// Seeds this thread's generator (the simulator: one seed, one run).
pub fn seed_rng(seed: u64) {
    RNG.with(|r| *r.borrow_mut() = SplitMix64::new(seed));
}

fn now() -> Duration {
    TIMEBASE.with(|t| t.borrow().now())
}

fn sleep_until(deadline: Duration) -> Pin<Box<dyn Future<Output = ()>>> {
    TIMEBASE.with(|t| t.borrow().sleep_until(deadline))
}

/// openraft's instant: a point on the thread's [`Timebase`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Instant(Duration);

impl Instant {
    /// The instant `since_origin` after the timebase's origin.
    pub fn at(since_origin: Duration) -> Instant {
        Instant(since_origin)
    }
}

impl std::ops::Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        Instant(self.0.saturating_add(d))
    }
}

impl std::ops::AddAssign<Duration> for Instant {
    fn add_assign(&mut self, d: Duration) {
        self.0 = self.0.saturating_add(d);
    }
}

impl std::ops::Sub<Duration> for Instant {
    type Output = Instant;
    fn sub(self, d: Duration) -> Instant {
        Instant(self.0.saturating_sub(d))
    }
}

impl std::ops::SubAssign<Duration> for Instant {
    fn sub_assign(&mut self, d: Duration) {
        self.0 = self.0.saturating_sub(d);
    }
}

impl std::ops::Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, earlier: Instant) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

impl openraft::Instant for Instant {
    fn now() -> Self {
        Instant(now())
    }
}

/// One Raft node's tasks: every task spawned while one of them runs
/// belongs to the same process.
#[derive(Clone, Debug, Default)]
pub struct Process {
    stopped: Rc<Cell<bool>>,
}

impl Process {
    /// A running process.
    pub fn new() -> Process {
        Process::default()
    }

    /// Stops every task of the process: none is polled again.
    pub fn stop(&self) {
        self.stopped.set(true);
    }

    /// True once [`Process::stop`] was called.
    pub fn is_stopped(&self) -> bool {
        self.stopped.get()
    }

    /// Spawns `future` as a task of this process.
    pub fn spawn<F: Future<Output = ()> + 'static>(&self, future: F) {
        glommio::spawn_local(Scoped {
            process: self.clone(),
            future: Box::pin(future),
        })
        .detach();
    }
}

/// A task's future with the process it belongs to, which it makes current
/// while it runs.
struct Scoped<F: Future<Output = ()>> {
    process: Process,
    future: Pin<Box<F>>,
}

impl<F: Future<Output = ()>> Future for Scoped<F> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.process.is_stopped() {
            return Poll::Ready(());
        }
        let outer = CURRENT.with(|c| c.borrow_mut().replace(self.process.clone()));
        let polled = self.future.as_mut().poll(cx);
        CURRENT.with(|c| *c.borrow_mut() = outer);
        polled
    }
}

fn spawn_scoped<F: Future<Output = ()> + 'static>(future: F) {
    match CURRENT.with(|c| c.borrow().clone()) {
        Some(process) => process.spawn(future),
        None => {
            glommio::spawn_local(future).detach();
        }
    }
}

/// The task ended without an output: its process was stopped.
#[derive(Debug)]
pub struct JoinError;

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the task was stopped")
    }
}

/// A spawned task's output, once it has one. Dropping it detaches the task.
pub struct JoinHandle<T>(oneshot::Receiver<T>);

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.map_err(|_| JoinError))
    }
}

/// A deadline passed before the future completed.
#[derive(Debug)]
pub struct Elapsed;

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline elapsed")
    }
}

pin_project_lite::pin_project! {
    /// `future`, or [`Elapsed`] once `sleep` completes first.
    pub struct Timeout<T> {
        #[pin]
        future: T,
        sleep: Pin<Box<dyn Future<Output = ()>>>,
    }
}

impl<T: Future> Future for Timeout<T> {
    type Output = Result<T::Output, Elapsed>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(value) = this.future.poll(cx) {
            return Poll::Ready(Ok(value));
        }
        this.sleep.as_mut().poll(cx).map(|()| Err(Elapsed))
    }
}

/// The thread's generator, as rand's trait.
pub struct ThreadRng;

impl rand::TryRng for ThreadRng {
    type Error = std::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(RNG.with(|r| r.borrow_mut().next_u64()) as u32)
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(RNG.with(|r| r.borrow_mut().next_u64()))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for chunk in dst.chunks_mut(8) {
            let word = RNG.with(|r| r.borrow_mut().next_u64()).to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
        Ok(())
    }
}

/// openraft's runtime on the current glommio executor.
#[derive(Debug, Default)]
pub struct LocalRuntime;

impl AsyncRuntime for LocalRuntime {
    type JoinError = JoinError;
    type JoinHandle<T: OptionalSend + 'static> = JoinHandle<T>;
    type Sleep = Pin<Box<dyn Future<Output = ()>>>;
    type Instant = Instant;
    type TimeoutError = Elapsed;
    type Timeout<R, T: Future<Output = R> + OptionalSend> = Timeout<T>;
    type ThreadLocalRng = ThreadRng;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + OptionalSend + 'static,
        T::Output: OptionalSend + 'static,
    {
        let (tx, rx) = oneshot::channel();
        spawn_scoped(async move {
            let _ = tx.send(future.await);
        });
        JoinHandle(rx)
    }

    fn sleep(duration: Duration) -> Self::Sleep {
        sleep_until(now().saturating_add(duration))
    }

    fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
        sleep_until(deadline.0)
    }

    fn timeout<R, F: Future<Output = R> + OptionalSend>(
        duration: Duration,
        future: F,
    ) -> Self::Timeout<R, F> {
        Timeout {
            future,
            sleep: Self::sleep(duration),
        }
    }

    fn timeout_at<R, F: Future<Output = R> + OptionalSend>(
        deadline: Self::Instant,
        future: F,
    ) -> Self::Timeout<R, F> {
        Timeout {
            future,
            sleep: sleep_until(deadline.0),
        }
    }

    fn is_panic(_join_error: &Self::JoinError) -> bool {
        // Release builds abort on panic; a JoinError is always a stop.
        false
    }

    fn thread_rng() -> Self::ThreadLocalRng {
        ThreadRng
    }

    type Mpsc = openraft_rt_tokio::TokioMpsc;
    type Watch = openraft_rt_tokio::TokioWatch;
    type Oneshot = openraft_rt_tokio::TokioOneshot;
    type Mutex<T: OptionalSend + 'static> = openraft_rt_tokio::TokioMutex<T>;

    fn new(_threads: usize) -> Self {
        LocalRuntime
    }

    fn block_on<F, T>(&mut self, future: F) -> T
    where
        F: Future<Output = T>,
    {
        // Only openraft's own helpers call this; sluice always runs inside
        // an executor it made, so a plain poller suffices here.
        futures_lite::future::block_on(future)
    }
}
