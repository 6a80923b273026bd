//! A single-threaded "something changed" signal for long polls.
//!
//! Owns: waking every task waiting on one partition when its high watermark
//! moves. Waiters register a waker and re-check their condition when woken;
//! a wake-up carries no data. One shard, one thread: no atomics.
//!
//! Invariants: the waiter table holds exactly one slot per [`Changed`]
//! future that has been polled and not yet dropped, so memory is bounded by
//! the waits in progress, never by the waits ever made. A slot belongs to its
//! future for the future's whole life (a notify only takes the waker out, it
//! never frees the slot), so a slot key is never reused while its owner
//! lives. Registering, re-polling and dropping a wait are O(1); a notify
//! costs O(waiters), each of which it wakes.
//!
//! Why this shape: an earlier version kept a clone of every waiter's waker
//! in a list that only a notify emptied. On a quiet partition nothing
//! notifies, so every long poll that timed out left its waker behind, and a
//! glommio waker keeps its whole task alive: one consumer polling 200 idle
//! partitions grew the broker by a gigabyte in a minute.
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

use slab::Slab;

/// Wakes every current waiter at once.
#[derive(Debug, Default)]
pub struct Notify {
    generation: Cell<u64>,
    closed: Cell<bool>,
    /// One slot per registered [`Changed`]; `None` once a notify took its
    /// waker (the future then completes at its next poll).
    waiters: RefCell<Slab<Option<Waker>>>,
}

impl Notify {
    /// Wakes every task waiting in [`Notify::changed`].
    pub fn notify_all(&self) {
        self.generation.set(self.generation.get() + 1);
        // Take the wakers out first: a woken task may run (and drop its
        // wait) only later, but waking must not hold the table borrowed.
        let wakers: Vec<Waker> = self
            .waiters
            .borrow_mut()
            .iter_mut()
            .filter_map(|(_, slot)| slot.take())
            .collect();
        for waker in wakers {
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
    /// once when the notify is closed. Dropping the future before then
    /// removes its registration.
    pub fn changed(&self) -> Changed<'_> {
        Changed {
            notify: self,
            seen: self.generation.get(),
            slot: None,
        }
    }

    /// Waits registered and not yet dropped (for tests and metrics).
    pub fn waiters(&self) -> usize {
        self.waiters.borrow().len()
    }
}

/// Future of [`Notify::changed`].
pub struct Changed<'a> {
    notify: &'a Notify,
    seen: u64,
    /// This wait's slot in the notify's table, once registered.
    slot: Option<usize>,
}

impl Future for Changed<'_> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.notify.closed.get() || self.notify.generation.get() != self.seen {
            self.release();
            return Poll::Ready(());
        }
        let mut waiters = self.notify.waiters.borrow_mut();
        match self.slot {
            Some(key) => {
                let slot = waiters
                    .get_mut(key)
                    .expect("a wait's slot lives as long as the wait");
                match slot {
                    Some(waker) if waker.will_wake(cx.waker()) => {}
                    _ => *slot = Some(cx.waker().clone()),
                }
            }
            None => {
                let key = waiters.insert(Some(cx.waker().clone()));
                drop(waiters);
                self.slot = Some(key);
            }
        }
        Poll::Pending
    }
}

impl Changed<'_> {
    fn release(&mut self) {
        if let Some(key) = self.slot.take() {
            self.notify.waiters.borrow_mut().remove(key);
        }
    }
}

impl Drop for Changed<'_> {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;
    use std::time::Duration;

    #[test]
    fn a_closed_notify_completes_every_wait_even_later_ones() {
        glommio::LocalExecutor::default().run(async {
            let n = Rc::new(Notify::default());
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
            assert_eq!(n.waiters(), 0);
        });
    }

    #[test]
    fn waits_that_time_out_leave_nothing_behind() {
        glommio::LocalExecutor::default().run(async {
            let n = Notify::default();
            for _ in 0..10_000 {
                let timed_out = glommio::timer::timeout(Duration::from_micros(1), async {
                    n.changed().await;
                    Ok(())
                })
                .await;
                assert!(timed_out.is_err(), "nothing notified");
            }
            assert_eq!(n.waiters(), 0, "every dropped wait removed its slot");
        });
    }

    #[test]
    fn a_notify_wakes_every_waiter_once_and_frees_their_slots() {
        glommio::LocalExecutor::default().run(async {
            let n = Rc::new(Notify::default());
            let woken = Rc::new(Cell::new(0));
            let tasks: Vec<_> = (0..100)
                .map(|_| {
                    let (n, woken) = (n.clone(), woken.clone());
                    glommio::spawn_local(async move {
                        n.changed().await;
                        woken.set(woken.get() + 1);
                    })
                })
                .collect();
            glommio::executor().yield_task_queue_now().await;
            assert_eq!(n.waiters(), 100);
            n.notify_all();
            for t in tasks {
                t.await;
            }
            assert_eq!(woken.get(), 100);
            assert_eq!(n.waiters(), 0);
        });
    }

    #[test]
    fn a_wait_started_before_a_notify_completes_even_if_first_polled_after() {
        glommio::LocalExecutor::default().run(async {
            let n = Notify::default();
            let wait = n.changed();
            n.notify_all();
            wait.await;
            assert_eq!(n.waiters(), 0);
        });
    }
}
