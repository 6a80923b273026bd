//! A single-threaded "something changed" signal for long polls.
//!
//! Owns: waking every task waiting on one partition when its high watermark
//! moves. Waiters register a waker and re-check their condition when woken;
//! a wake-up carries no data. One shard, one thread: no atomics.
//!
//! A notify can also be closed for good ([`Notify::close`]): every present
//! and future [`Notify::changed`] then completes at once. A shard's stop
//! signal is one: a task that starts waiting after the stop was given (a
//! listener spawned while the node is already stopping) must not wait
//! forever.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// Wakes every current waiter at once.
#[derive(Debug, Default)]
pub struct Notify {
    generation: Cell<u64>,
    closed: Cell<bool>,
    wakers: RefCell<Vec<Waker>>,
}

impl Notify {
    /// Wakes every task waiting in [`Notify::changed`].
    pub fn notify_all(&self) {
        self.generation.set(self.generation.get() + 1);
        for waker in self.wakers.borrow_mut().drain(..) {
            waker.wake();
        }
    }

    /// Wakes every waiter and makes every later wait complete at once.
    pub fn close(&self) {
        self.closed.set(true);
        self.notify_all();
    }

    /// True once [`Notify::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed.get()
    }

    /// Completes at the next [`Notify::notify_all`] after this call, or at
    /// once when the notify is closed.
    pub fn changed(&self) -> Changed<'_> {
        Changed {
            notify: self,
            seen: self.generation.get(),
        }
    }
}

/// Future of [`Notify::changed`].
pub struct Changed<'a> {
    notify: &'a Notify,
    seen: u64,
}

impl Future for Changed<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.notify.closed.get() || self.notify.generation.get() != self.seen {
            return Poll::Ready(());
        }
        let mut wakers = self.notify.wakers.borrow_mut();
        if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
            wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_notify_completes_every_wait_even_later_ones() {
        glommio::LocalExecutor::default().run(async {
            let n = std::rc::Rc::new(Notify::default());
            let waiter = {
                let n = n.clone();
                glommio::spawn_local(async move { n.changed().await })
            };
            glommio::executor().yield_task_queue_now().await;
            n.close();
            waiter.await;
            // A wait that starts after the close completes too.
            n.changed().await;
            assert!(n.is_closed());
        });
    }
}
