//! The simulated world's clock: virtual time, timers and seeded ids.
//!
//! Owns: [`Clock`] (the time, which moves only when the simulator moves it,
//! and the timers armed against it) and [`SimEnv`], the shard's [`Env`] on
//! top of it. Time never passes by itself: a long poll's deadline or a
//! delayed message arrives only when the run advances the clock, so a run
//! is the same for the same seed however fast the machine is.
//!
//! Invariant: the timer table holds one entry per armed, unfired, undropped
//! [`Sleep`]; a dropped timer leaves nothing.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use super::Rng;
use crate::env::{BrokenRule, Env, Sleep};

/// Virtual time and its timers.
#[derive(Debug)]
pub struct Clock {
    now_ms: Cell<i64>,
    /// (deadline, arm order) -> waker of the task that waits.
    timers: RefCell<BTreeMap<(i64, u64), Option<Waker>>>,
    next_timer: Cell<u64>,
}

impl Clock {
    /// A clock that reads `start_ms`.
    pub fn new(start_ms: i64) -> Rc<Clock> {
        Rc::new(Clock {
            now_ms: Cell::new(start_ms),
            timers: RefCell::new(BTreeMap::new()),
            next_timer: Cell::new(0),
        })
    }

    pub fn now_ms(&self) -> i64 {
        self.now_ms.get()
    }

    /// The earliest armed deadline.
    pub fn next_deadline_ms(&self) -> Option<i64> {
        self.timers.borrow().keys().next().map(|(at, _)| *at)
    }

    /// Timers armed and not yet fired or dropped.
    pub fn armed(&self) -> usize {
        self.timers.borrow().len()
    }

    /// Moves the time to `to_ms` (never back) and wakes every timer due.
    pub fn advance_to(&self, to_ms: i64) {
        if to_ms > self.now_ms.get() {
            self.now_ms.set(to_ms);
        }
        let now = self.now_ms.get();
        let due: Vec<Waker> = self
            .timers
            .borrow_mut()
            .range_mut(..(now + 1, 0))
            .filter_map(|(_, waker)| waker.take())
            .collect();
        for waker in due {
            waker.wake();
        }
    }

    /// Forgets every timer (the process that armed them is gone).
    pub fn clear(&self) {
        self.timers.borrow_mut().clear();
    }

    fn sleep(self: &Rc<Self>, duration: Duration) -> SleepUntil {
        let deadline_ms = self.now_ms.get() + duration.as_millis().min(i64::MAX as u128) as i64;
        SleepUntil {
            clock: self.clone(),
            deadline_ms,
            key: None,
        }
    }
}

/// A timer on a [`Clock`]: ready once the clock reads its deadline.
struct SleepUntil {
    clock: Rc<Clock>,
    deadline_ms: i64,
    key: Option<(i64, u64)>,
}

impl Future for SleepUntil {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.clock.now_ms() >= self.deadline_ms {
            if let Some(key) = self.key.take() {
                self.clock.timers.borrow_mut().remove(&key);
            }
            return Poll::Ready(());
        }
        let key = match self.key {
            Some(key) => key,
            None => {
                let n = self.clock.next_timer.get();
                self.clock.next_timer.set(n + 1);
                let key = (self.deadline_ms, n);
                self.key = Some(key);
                key
            }
        };
        self.clock
            .timers
            .borrow_mut()
            .insert(key, Some(cx.waker().clone()));
        Poll::Pending
    }
}

impl Drop for SleepUntil {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.clock.timers.borrow_mut().remove(&key);
        }
    }
}

/// A shard's [`Env`] in the simulator.
pub struct SimEnv {
    clock: Rc<Clock>,
    ids: RefCell<Rng>,
    broken_rule: Option<BrokenRule>,
}

impl SimEnv {
    pub fn new(clock: Rc<Clock>, id_seed: u64, broken_rule: Option<BrokenRule>) -> SimEnv {
        SimEnv {
            clock,
            ids: RefCell::new(Rng::new(id_seed)),
            broken_rule,
        }
    }
}

impl Env for SimEnv {
    fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    fn monotonic_ms(&self) -> u64 {
        self.clock.now_ms().max(0) as u64
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        Box::pin(self.clock.sleep(duration))
    }

    fn new_id(&self) -> [u8; 16] {
        let mut ids = self.ids.borrow_mut();
        let (a, b) = (ids.next_u64(), ids.next_u64());
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&a.to_be_bytes());
        id[8..].copy_from_slice(&b.to_be_bytes());
        id
    }

    fn broken_rule(&self) -> Option<BrokenRule> {
        self.broken_rule
    }
}

/// The clock as the controller quorum's time (its origin: the epoch).
pub struct ClockTime(pub Rc<Clock>);

impl sluice_quorum::runtime::Timebase for ClockTime {
    fn now(&self) -> Duration {
        Duration::from_millis(self.0.now_ms().max(0) as u64)
    }

    fn sleep_until(&self, deadline: Duration) -> Pin<Box<dyn Future<Output = ()>>> {
        let deadline_ms = deadline.as_micros().div_ceil(1000).min(i64::MAX as u128) as i64;
        Box::pin(SleepUntil {
            clock: self.0.clone(),
            deadline_ms,
            key: None,
        })
    }
}
