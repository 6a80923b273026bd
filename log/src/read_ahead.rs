//! Disk reads started ahead of a consumer that is behind.
//!
//! Owns: one read-ahead slot per partition log and the shard-wide byte
//! budget they share ([`ReadAheadBudget`]). A consumer reading a backlog
//! keeps one Fetch in flight: without read-ahead the disk waits while each
//! answer is sent and the next request comes. When a read from disk stops
//! before the end of what is written (the reader's byte budget ran out, or
//! the bytes of its one disk read did), the log starts reading the next
//! bytes of the segment at once, in a task of its own; the reader's next
//! Fetch, asking for the offset where that read stopped, takes the bytes
//! (or waits for them) instead of reading. A read that stops with whole
//! batches left in the bytes it holds keeps those the same way, already
//! read, and the read started after them begins where they end. A read
//! started ahead ends where a batch begins when the offset index names one
//! within its length, so that no batch is cut at its end and read again by
//! the next read: a reader behind reads each byte from disk once.
//!
//! Invariants: a slot holds a chain of read-aheads of one segment, bytes
//! kept and at most one read in flight, each named by the offset the next
//! read must ask for and the exact byte position of the batch holding it
//! (a position a read walked to, never one taken from an index), each
//! starting where the one before it ends; a read asking for anything else
//! than the first drops them all, and a read-ahead dropped drops the ones
//! after it. The bytes read ahead lie below the segment's written length
//! when the read starts: they change only by truncation, which empties the
//! slot first ([`ReadAheadSlot::clear`]). The bytes held or in flight
//! across a shard never exceed the budget: a read-ahead that would go past
//! it first drops the oldest ones, and is skipped when that
//! is not enough. Dropping a read-ahead cancels its read and returns its
//! bytes to the budget.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::rc::{Rc, Weak};

use sluice_core::batch::BatchHeader;
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
    /// The least one read-ahead reads (`shard.read_ahead_read_bytes`).
    min_read_bytes: Cell<usize>,
    used_bytes: Cell<u64>,
    /// Live read-aheads, oldest first: (id, its slot). An entry whose slot
    /// now holds another read-ahead (or none) is stale and skipped.
    order: RefCell<VecDeque<(u64, Weak<dyn Evict>)>>,
    /// Read-aheads alive now (held, or taken and awaited).
    live: Cell<usize>,
    next_id: Cell<u64>,
    started: Cell<u64>,
    kept: Cell<u64>,
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
            min_read_bytes: Cell::new(crate::segment::READ_CHUNK_BYTES),
            used_bytes: Cell::new(0),
            order: RefCell::new(VecDeque::new()),
            live: Cell::new(0),
            next_id: Cell::new(0),
            started: Cell::new(0),
            kept: Cell::new(0),
            taken: Cell::new(0),
        })
    }

    /// Changes the limit; read-aheads past it are dropped, oldest first.
    pub fn set_limit(&self, limit_bytes: u64) {
        self.limit_bytes.set(limit_bytes);
        self.make_room(0);
    }

    /// Sets the least one read-ahead reads (from one alignment unit to
    /// [`READ_AHEAD_MAX_BYTES`]); read-aheads already started keep their
    /// length.
    pub fn set_min_read_bytes(&self, bytes: usize) {
        self.min_read_bytes
            .set(bytes.clamp(crate::storage::ALIGN, READ_AHEAD_MAX_BYTES));
    }

    /// The least one read-ahead reads.
    pub fn min_read_bytes(&self) -> usize {
        self.min_read_bytes.get()
    }

    /// Bytes held or in flight now.
    pub fn used_bytes(&self) -> u64 {
        self.used_bytes.get()
    }

    /// What the shard's read-aheads did so far.
    pub fn counts(&self) -> ReadAheadCounts {
        ReadAheadCounts {
            started: self.started.get(),
            kept: self.kept.get(),
            used: self.taken.get(),
        }
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

/// What a shard's read-aheads did (see [`ReadAheadBudget::counts`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadAheadCounts {
    /// Reads from disk started ahead of a reader.
    pub started: u64,
    /// Read-aheads made of whole batches a read left over, kept for the
    /// next read.
    pub kept: u64,
    /// Read-aheads (of either kind) a read used.
    pub used: u64,
}

/// A read-ahead's bytes: still being read, or already in memory.
enum Held<R> {
    Reading(glommio::Task<io::Result<R>>),
    Kept(R),
}

/// One read started ahead, or bytes kept (see the module docs).
struct ReadAhead<S: Storage> {
    id: u64,
    /// The segment read (a weak reference keeps its address from being
    /// reused while this lives, so identity is a pointer comparison).
    segment: Weak<RefCell<Segment<S>>>,
    /// The offset the next read must ask for to use it.
    next_offset: Offset,
    /// The byte position of the batch holding `next_offset`.
    position: u64,
    /// Where its bytes end, and for kept bytes (whole batches, walked)
    /// the offset after them: a read started ahead follows only those.
    end_position: u64,
    end_offset: Option<Offset>,
    held: Held<ReadBufOf<S>>,
    /// What it is charged to the budget.
    charged_bytes: u64,
    budget: Rc<ReadAheadBudget>,
}

impl<S: Storage> ReadAhead<S> {
    fn names(&self, segment: &Rc<RefCell<Segment<S>>>, next_offset: Offset) -> bool {
        std::ptr::eq(self.segment.as_ptr(), Rc::as_ptr(segment)) && self.next_offset == next_offset
    }
}

impl<S: Storage> Drop for ReadAhead<S> {
    fn drop(&mut self) {
        let used = &self.budget.used_bytes;
        used.set(used.get() - self.charged_bytes);
        let live = &self.budget.live;
        live.set(live.get() - 1);
    }
}

/// A slot's read-aheads: consecutive byte ranges of one segment, the next
/// one to be read first.
type Chain<S> = RefCell<VecDeque<ReadAhead<S>>>;

impl<S: Storage> Evict for Chain<S> {
    fn holds(&self, id: u64) -> bool {
        self.borrow().iter().any(|r| r.id == id)
    }
    fn evict(&self, id: u64) {
        let at = self.borrow().iter().position(|r| r.id == id);
        if let Some(at) = at {
            // The ones after it no longer follow the reader's position.
            // Dropped outside the borrow: their Drop returns their bytes.
            let dropped: Vec<_> = self.borrow_mut().drain(at..).collect();
            drop(dropped);
        }
    }
}

/// Where a read stopped, for [`ReadAheadSlot::follow`].
#[derive(Debug, Clone, Copy)]
pub struct Stop {
    /// The offset the reader asks for next, held by the batch at
    /// `position`.
    pub next_offset: Offset,
    pub position: u64,
    /// The segment's bytes are written up to here (read-aheads stop there).
    pub written_end: u64,
    /// Bytes one read-ahead reads (at most [`READ_AHEAD_MAX_BYTES`]).
    pub read_bytes: usize,
}

/// A partition log's read-ahead slot (see the module docs).
pub struct ReadAheadSlot<S: Storage> {
    chain: Rc<Chain<S>>,
    budget: Rc<ReadAheadBudget>,
    /// Counts [`ReadAheadSlot::clear`] calls: a read that began before a
    /// truncation starts no read-ahead after it.
    generation: Cell<u64>,
}

impl<S: Storage> ReadAheadSlot<S> {
    pub fn new(budget: Rc<ReadAheadBudget>) -> ReadAheadSlot<S> {
        ReadAheadSlot {
            chain: Rc::new(RefCell::new(VecDeque::new())),
            budget,
            generation: Cell::new(0),
        }
    }

    /// Drops the read-aheads, if any, and any a read under way would start
    /// (the log is truncated or closed).
    pub fn clear(&self) {
        self.generation.set(self.generation.get() + 1);
        self.drop_held();
    }

    /// What [`ReadAheadSlot::follow`] must be given: taken before the read
    /// whose end it starts from.
    pub fn generation(&self) -> u64 {
        self.generation.get()
    }

    /// The least one read-ahead of this slot reads (its budget's setting).
    pub fn min_read_bytes(&self) -> usize {
        self.budget.min_read_bytes()
    }

    fn drop_held(&self) {
        let dropped = std::mem::take(&mut *self.chain.borrow_mut());
        drop(dropped);
    }

    /// After a read of `segment` that stopped at `stop`: keeps the whole
    /// batches it read past that point (`rest`: bytes from `stop.position`
    /// on, and the length of the buffer they are a slice of), and starts
    /// reading after them (see [`ReadAheadSlot::read_on`]). The read-aheads
    /// held are kept when they go on from `stop` (or from the end of the
    /// bytes kept), and dropped otherwise. Nothing starts when the slot was
    /// cleared since `generation` was taken (the read that found `stop`
    /// may have seen bytes a truncation removed); a read-ahead the budget
    /// has no room for, even after dropping the shard's oldest, is skipped.
    pub fn follow(
        &self,
        segment: &Rc<RefCell<Segment<S>>>,
        generation: u64,
        stop: Stop,
        rest: Option<(ReadBufOf<S>, usize)>,
    ) {
        if generation != self.generation.get() {
            return;
        }
        // The rest, cut to whole batches: (bytes, their buffer's length,
        // the offset after them).
        let rest = rest.and_then(|(bytes, buffer_bytes)| {
            let (len, last) = whole_batches(&bytes)?;
            Some((S::File::slice(&bytes, 0, len), buffer_bytes, last + 1))
        });
        let after_rest = rest
            .as_ref()
            .map(|(bytes, _, next)| (stop.position + bytes.len() as u64, *next));
        // Where the read-aheads held begin, when they read this segment.
        let front = self
            .chain
            .borrow()
            .front()
            .filter(|a| std::ptr::eq(a.segment.as_ptr(), Rc::as_ptr(segment)))
            .map(|a| (a.position, a.next_offset));
        let continues_at = |at: (u64, Offset)| front == Some(at);
        let mut kept = None;
        if !continues_at((stop.position, stop.next_offset)) {
            if !after_rest.is_some_and(continues_at) {
                self.drop_held();
            }
            kept = rest;
        }
        if let Some((bytes, buffer_bytes, end_offset)) = kept {
            let end_position = stop.position + bytes.len() as u64;
            let ahead = ReadSpan {
                next_offset: stop.next_offset,
                position: stop.position,
                end_position,
                end_offset: Some(end_offset),
            };
            if !self.install(segment, ahead, Held::Kept(bytes), buffer_bytes) {
                return;
            }
            let count = &self.budget.kept;
            count.set(count.get() + 1);
        }
        self.read_on(segment, stop);
    }

    /// Starts a read after the kept bytes held (or at `stop`, when none
    /// are), unless one is in flight already: one read ahead of a reader
    /// (two measured no faster at catch-up, with twice the memory).
    fn read_on(&self, segment: &Rc<RefCell<Segment<S>>>, stop: Stop) {
        let (position, next_offset) = {
            let chain = self.chain.borrow();
            if chain.iter().any(|a| matches!(a.held, Held::Reading(_))) {
                return;
            }
            match chain.back() {
                Some(kept) => match kept.end_offset {
                    Some(offset) => (kept.end_position, offset),
                    None => return,
                },
                None => (stop.position, stop.next_offset),
            }
        };
        if position >= stop.written_end {
            return;
        }
        let want = (stop.read_bytes as u64).min(stop.written_end - position) as usize;
        let end_position = segment
            .borrow()
            .batch_start_within(position, want)
            .unwrap_or(position + want as u64);
        let len = (end_position - position) as usize;
        let span = ReadSpan {
            next_offset,
            position,
            end_position,
            end_offset: None,
        };
        let file = segment.borrow().file();
        let read = glommio::spawn_local(async move { file.read_local(position, len).await });
        if self.install(segment, span, Held::Reading(read), len) {
            let started = &self.budget.started;
            started.set(started.get() + 1);
        }
    }

    /// Adds a read-ahead over `span` to the chain, charged `charge`
    /// bytes; false when the budget has no room even after dropping the
    /// shard's oldest.
    fn install(
        &self,
        segment: &Rc<RefCell<Segment<S>>>,
        span: ReadSpan,
        held: Held<ReadBufOf<S>>,
        charge: usize,
    ) -> bool {
        let charged_bytes = charge as u64;
        if !self.budget.make_room(charged_bytes) {
            return false;
        }
        let budget = &self.budget;
        let id = budget.next_id.get() + 1;
        budget.next_id.set(id);
        budget
            .used_bytes
            .set(budget.used_bytes.get() + charged_bytes);
        budget.live.set(budget.live.get() + 1);
        let ahead = ReadAhead {
            id,
            segment: Rc::downgrade(segment),
            next_offset: span.next_offset,
            position: span.position,
            end_position: span.end_position,
            end_offset: span.end_offset,
            held,
            charged_bytes,
            budget: budget.clone(),
        };
        {
            let mut chain = self.chain.borrow_mut();
            // Kept bytes go before read-aheads that follow them.
            if chain
                .front()
                .is_some_and(|f| f.position == span.end_position)
            {
                chain.push_front(ahead);
            } else {
                chain.push_back(ahead);
            }
        }
        let slot: Rc<dyn Evict> = self.chain.clone();
        budget
            .order
            .borrow_mut()
            .push_back((id, Rc::downgrade(&slot)));
        true
    }

    /// The bytes read ahead for a read of `segment` from `from_offset`, with
    /// the position they start at (the batch holding `from_offset`); waits
    /// for the read when it is still in flight. `None` when nothing matches
    /// (every read-ahead held is then dropped) or the read failed or came
    /// back empty (the caller reads as usual, and meets any error itself).
    /// The read-ahead used is dropped; the ones after it stay.
    pub async fn take(
        &self,
        segment: &Rc<RefCell<Segment<S>>>,
        from_offset: Offset,
    ) -> Option<(u64, ReadBufOf<S>)> {
        let matches = self
            .chain
            .borrow()
            .front()
            .is_some_and(|a| a.names(segment, from_offset));
        if !matches {
            self.drop_held();
            return None;
        }
        let mut ahead = self.chain.borrow_mut().pop_front()?;
        // Cancel-safe: dropping this future drops `ahead`, which cancels
        // the read and returns its bytes to the budget.
        let read = match &mut ahead.held {
            Held::Reading(task) => task.await,
            Held::Kept(bytes) => Ok(bytes.clone()),
        };
        let (position, budget) = (ahead.position, ahead.budget.clone());
        drop(ahead);
        let bytes = read.ok().filter(|b| !b.is_empty())?;
        budget.taken.set(budget.taken.get() + 1);
        Some((position, bytes))
    }
}

/// The bytes a read-ahead covers (see [`ReadAhead`]).
struct ReadSpan {
    next_offset: Offset,
    position: u64,
    end_position: u64,
    end_offset: Option<Offset>,
}

/// The length of the whole batches `bytes` start with, and the last offset
/// they hold; `None` when they do not start with a whole batch.
fn whole_batches(bytes: &[u8]) -> Option<(usize, Offset)> {
    let (mut at, mut last) = (0, None);
    while let Ok(header) = BatchHeader::peek(&bytes[at..]) {
        if header.size_bytes == 0 || header.size_bytes > bytes.len() - at {
            break;
        }
        at += header.size_bytes;
        last = Some(header.last_offset());
    }
    last.map(|last| (at, last))
}
