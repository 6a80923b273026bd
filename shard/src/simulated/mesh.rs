//! The simulated channels between shards.
//!
//! Owns: one queue per ordered pair of shards, what glommio gives in
//! production. A message waits a seeded delay before it may be delivered,
//! and the run picks which pair delivers next, so messages between
//! different pairs interleave in every order; within one pair they arrive
//! first in, first out, as glommio's channels guarantee.
//!
//! Invariant: a pair's deliver-at times never decrease along its queue (a
//! later message is never due before an earlier one). The queues are
//! bounded like the production channels: a send to a full queue fails the
//! run (in production the sender would wait; nothing here sends that much).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

use sluice_core::metadata::ShardId;

use super::{Clock, Rng};
use crate::message::ShardMsg;
use crate::runtime::MESH_CHANNEL_CAPACITY;
use crate::transport::Link;

/// Messages one queue holds, as the production channels.
pub const QUEUE_MAX: usize = MESH_CHANNEL_CAPACITY;

type Queue = VecDeque<(i64, ShardMsg)>;

/// Every queue of one node.
pub struct SimMesh {
    clock: Rc<Clock>,
    rng: RefCell<Rng>,
    max_delay_ms: u64,
    queues: RefCell<BTreeMap<(ShardId, ShardId), Queue>>,
    sent: Cell<u64>,
    overflowed: Cell<bool>,
}

impl SimMesh {
    pub fn new(clock: Rc<Clock>, seed: u64, max_delay_ms: u64) -> Rc<SimMesh> {
        Rc::new(SimMesh {
            clock,
            rng: RefCell::new(Rng::new(seed)),
            max_delay_ms,
            queues: RefCell::new(BTreeMap::new()),
            sent: Cell::new(0),
            overflowed: Cell::new(false),
        })
    }

    /// Messages sent so far.
    pub fn sent(&self) -> u64 {
        self.sent.get()
    }

    /// Messages waiting in any queue.
    pub fn waiting(&self) -> usize {
        self.queues.borrow().values().map(VecDeque::len).sum()
    }

    /// True once a send found its queue full.
    pub fn overflowed(&self) -> bool {
        self.overflowed.get()
    }

    /// The earliest time a waiting message is due.
    pub fn next_due_ms(&self) -> Option<i64> {
        self.queues
            .borrow()
            .values()
            .filter_map(|q| q.front().map(|(at, _)| *at))
            .min()
    }

    /// Takes one due message, from a pair `rng` picks among those whose
    /// head is due: (destination, message).
    pub fn take_due(&self, rng: &mut Rng) -> Option<(ShardId, ShardMsg)> {
        let now = self.clock.now_ms();
        let mut queues = self.queues.borrow_mut();
        let due: Vec<(ShardId, ShardId)> = queues
            .iter()
            .filter(|(_, q)| q.front().is_some_and(|(at, _)| *at <= now))
            .map(|(pair, _)| *pair)
            .collect();
        let pair = *rng.pick(&due)?;
        let queue = queues.get_mut(&pair)?;
        let (_, msg) = queue.pop_front()?;
        Some((pair.1, msg))
    }

    /// Drops every waiting message (the process is gone).
    pub fn clear(&self) {
        self.queues.borrow_mut().clear();
    }
}

impl Link for SimMesh {
    fn send(&self, from: ShardId, to: ShardId, msg: ShardMsg) -> Result<(), String> {
        let delay = self.rng.borrow_mut().below(self.max_delay_ms + 1) as i64;
        let mut queues = self.queues.borrow_mut();
        let queue = queues.entry((from, to)).or_default();
        if queue.len() >= QUEUE_MAX {
            self.overflowed.set(true);
            return Err(format!("the queue from shard {from} to {to} is full"));
        }
        let earliest = queue.back().map_or(i64::MIN, |(at, _)| *at);
        queue.push_back(((self.clock.now_ms() + delay).max(earliest), msg));
        self.sent.set(self.sent.get() + 1);
        Ok(())
    }
}
