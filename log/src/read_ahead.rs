//! Disk reads started ahead of a consumer that is behind.
//!
//! Owns: one read-ahead slot per partition log and the shard-wide byte
//! budget they share ([`ReadAheadBudget`]). A consumer reading a backlog
//! keeps one Fetch in flight: without read-ahead the disk waits while each
//! answer is sent and the next request comes. When a read from disk stops
//! because the reader's byte budget ran out (there is more to read), the log
//! starts reading the next bytes of the segment at once, in a task of its
//! own; the reader's next Fetch, asking for the offset where that read
//! stopped, takes the bytes (or waits for them) instead of reading.
//!
//! Invariants: a slot holds at most one read-ahead, named by the segment it
//! reads (the same `Rc`), the offset the next read must ask for and the
//! exact byte position of the batch holding it; a read asking for anything
//! else drops it. The bytes read ahead lie below the segment's written
//! length when the read starts: they change only by truncation, which
//! empties the slot first ([`ReadAheadSlot::clear`]). The bytes held or in
//! flight across a shard never exceed the budget: a read-ahead that would
//! go past it first drops the oldest ones, and is skipped when that is not
//! enough. Dropping a read-ahead cancels its read and returns its bytes to
//! the budget.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::rc::{Rc, Weak};

use sluice_core::Offset;

use crate::segment::{ReadBufOf, Segment};
use crate::storage::{Storage, StorageFile};

/// The most one read-ahead reads, whatever a reader asks for: more than one
/// Fetch usually takes from a partition (Kafka's `max.partition.fetch.bytes`
/// default is 1 MiB; `sluice bench` asks for 2 MiB).
pub const READ_AHEAD_MAX_BYTES: usize = 4 << 20;

/// The bytes a shard's read-aheads may hold or have in flight, shared by its
/// partition logs (one shard, one thread).
pub struct ReadAheadBudget {
    limit_bytes: Cell<u64>,
    used_bytes: Cell<u64>,
    /// Live read-aheads, oldest first: (id, its slot). An entry whose slot
    /// now holds another read-ahead (or none) is stale and skipped.
    order: RefCell<VecDeque<(u64, Weak<dyn Evict>)>>,
    /// Read-aheads alive now (held, or taken and awaited).
    live: Cell<usize>,
    next_id: Cell<u64>,
    started: Cell<u64>,
    taken: Cell<u64>,
}

impl std::fmt::Debug for ReadAheadBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadAheadBudget")
            .field("limit_bytes", &self.limit_bytes)
            .field("used_bytes", &self.used_bytes)
            .finish()
    }
}

/// A slot the budget can empty to make room.
trait Evict {
    /// Drops the slot's read-ahead if it is the one named `id`.
    fn evict(&self, id: u64);
    /// True while the slot holds the read-ahead named `id`.
    fn holds(&self, id: u64) -> bool;
}

/// Entries of the budget's order past which ended read-aheads are swept
/// (or twice the live ones, when more).
const STALE_SWEEP_ENTRIES: usize = 1024;

impl ReadAheadBudget {
    /// A budget of `limit_bytes` (0 turns read-ahead off).
    pub fn new(limit_bytes: u64) -> Rc<ReadAheadBudget> {
        Rc::new(ReadAheadBudget {
            limit_bytes: Cell::new(limit_bytes),
            used_bytes: Cell::new(0),
            order: RefCell::new(VecDeque::new()),
            live: Cell::new(0),
            next_id: Cell::new(0),
            started: Cell::new(0),
            taken: Cell::new(0),
        })
    }

    /// Changes the limit; read-aheads past it are dropped, oldest first.
    pub fn set_limit(&self, limit_bytes: u64) {
        self.limit_bytes.set(limit_bytes);
        self.make_room(0);
    }

    /// Bytes held or in flight now.
    pub fn used_bytes(&self) -> u64 {
        self.used_bytes.get()
    }

    /// (read-aheads started, read-aheads a read used) so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.started.get(), self.taken.get())
    }

    /// Drops the oldest read-aheads until `bytes` more fit; false when they
    /// cannot (more than the whole limit).
    fn make_room(&self, bytes: u64) -> bool {
        let limit = self.limit_bytes.get();
        while self.used_bytes.get() + bytes > limit {
            let Some((id, slot)) = self.order.borrow_mut().pop_front() else {
                break;
            };
            if let Some(slot) = slot.upgrade() {
                slot.evict(id);
            }
        }
        // Entries of read-aheads that ended otherwise (used, replaced,
        // cleared) are swept once they outnumber the live ones, so a sweep
        // costs its length at most once per as many starts.
        let mut order = self.order.borrow_mut();
        if order.len() > STALE_SWEEP_ENTRIES.max(2 * self.live.get()) {
            order.retain(|(id, slot)| slot.upgrade().is_some_and(|s| s.holds(*id)));
        }
        self.used_bytes.get() + bytes <= limit
    }
}

/// One read started ahead (see the module docs).
struct ReadAhead<S: Storage> {
    id: u64,
    /// The segment read (a weak reference keeps its address from being
    /// reused while this lives, so identity is a pointer comparison).
    segment: Weak<RefCell<Segment<S>>>,
    /// The offset the next read must ask for to use it.
    next_offset: Offset,
    /// The byte position of the batch holding `next_offset`.
    position: u64,
    task: glommio::Task<io::Result<ReadBufOf<S>>>,
    bytes: u64,
    budget: Rc<ReadAheadBudget>,
}

impl<S: Storage> Drop for ReadAhead<S> {
    fn drop(&mut self) {
        let used = &self.budget.used_bytes;
        used.set(used.get() - self.bytes);
        let live = &self.budget.live;
        live.set(live.get() - 1);
    }
}

type SlotCell<S> = RefCell<Option<ReadAhead<S>>>;

impl<S: Storage> Evict for SlotCell<S> {
    fn holds(&self, id: u64) -> bool {
        self.borrow().as_ref().is_some_and(|r| r.id == id)
    }
    fn evict(&self, id: u64) {
        if self.holds(id) {
            // Dropped outside the borrow: its Drop returns its bytes.
            let dropped = self.borrow_mut().take();
            drop(dropped);
        }
    }
}

/// A partition log's read-ahead slot (see the module docs).
pub struct ReadAheadSlot<S: Storage> {
    slot: Rc<SlotCell<S>>,
    budget: Rc<ReadAheadBudget>,
    /// Counts [`ReadAheadSlot::clear`] calls: a read that began before a
    /// truncation starts no read-ahead after it.
    generation: Cell<u64>,
}

impl<S: Storage> ReadAheadSlot<S> {
    pub fn new(budget: Rc<ReadAheadBudget>) -> ReadAheadSlot<S> {
        ReadAheadSlot {
            slot: Rc::new(RefCell::new(None)),
            budget,
            generation: Cell::new(0),
        }
    }

    /// Drops the read-ahead, if any, and any a read under way would start
    /// (the log is truncated or closed).
    pub fn clear(&self) {
        self.generation.set(self.generation.get() + 1);
        self.drop_held();
    }

    /// What [`ReadAheadSlot::start`] must be given: taken before the read
    /// whose end it starts from.
    pub fn generation(&self) -> u64 {
        self.generation.get()
    }

    fn drop_held(&self) {
        let dropped = self.slot.borrow_mut().take();
        drop(dropped);
    }

    /// Starts reading up to `len` bytes at `position` of `segment`'s file,
    /// for a next read asking for `next_offset` (held by the batch at
    /// `position`); replaces the read-ahead held. Skipped when the budget
    /// has no room, or when the slot was cleared since `generation` was
    /// taken (the read that found `position` may have seen bytes a
    /// truncation removed).
    pub fn start(
        &self,
        segment: &Rc<RefCell<Segment<S>>>,
        generation: u64,
        next_offset: Offset,
        position: u64,
        len: usize,
    ) {
        if generation != self.generation.get() {
            return;
        }
        self.drop_held();
        let bytes = len as u64;
        if len == 0 || !self.budget.make_room(bytes) {
            return;
        }
        let budget = &self.budget;
        let id = budget.next_id.get() + 1;
        budget.next_id.set(id);
        budget.used_bytes.set(budget.used_bytes.get() + bytes);
        budget.started.set(budget.started.get() + 1);
        budget.live.set(budget.live.get() + 1);
        let file = segment.borrow().file();
        let task = glommio::spawn_local(async move { file.read_local(position, len).await });
        *self.slot.borrow_mut() = Some(ReadAhead {
            id,
            segment: Rc::downgrade(segment),
            next_offset,
            position,
            task,
            bytes,
            budget: budget.clone(),
        });
        let slot: Rc<dyn Evict> = self.slot.clone();
        budget
            .order
            .borrow_mut()
            .push_back((id, Rc::downgrade(&slot)));
    }

    /// The bytes read ahead for a read of `segment` from `from_offset`, with
    /// the position they start at (the batch holding `from_offset`); waits
    /// for the read when it is still in flight. `None` when nothing matches
    /// or the read failed or came back empty (the caller reads as usual,
    /// and meets any error itself). The read-ahead held is dropped either
    /// way.
    pub async fn take(
        &self,
        segment: &Rc<RefCell<Segment<S>>>,
        from_offset: Offset,
    ) -> Option<(u64, ReadBufOf<S>)> {
        let mut ahead = self.slot.borrow_mut().take()?;
        if !std::ptr::eq(ahead.segment.as_ptr(), Rc::as_ptr(segment))
            || ahead.next_offset != from_offset
        {
            return None;
        }
        // Cancel-safe: dropping this future drops `ahead`, which cancels
        // the read and returns its bytes to the budget.
        let read = (&mut ahead.task).await;
        let (position, budget) = (ahead.position, ahead.budget.clone());
        drop(ahead);
        let bytes = read.ok().filter(|b| !b.is_empty())?;
        budget.taken.set(budget.taken.get() + 1);
        Some((position, bytes))
    }
}
