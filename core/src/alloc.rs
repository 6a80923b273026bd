//! A global allocator that survives absurd allocation requests.
//!
//! Owns: one defence against peers that declare huge collection sizes. The
//! wire codec sizes a collection from the length a request declares before
//! it has checked that the bytes are there, so a 15-byte request can ask for
//! tens of gigabytes up front; the system allocator then fails and the
//! process aborts (an unauthenticated denial of service). Allocations of at
//! least [`LARGE_ALLOCATION_BYTES`] are therefore served from anonymous
//! `MAP_NORESERVE` mappings: address space only, with memory committed page
//! by page as it is really written. The decoder then fails on the missing
//! bytes, the collection is dropped and the mapping returned, having cost
//! nothing. Every smaller allocation goes to the system allocator unchanged.
//!
//! The binary and the fuzz targets install it with `#[global_allocator]`.

use std::alloc::{GlobalAlloc, Layout, System};

/// Allocations this large or larger are served by `mmap(MAP_NORESERVE)`.
/// No legitimate single allocation of the broker comes near it (requests
/// are at most 100 MiB by default, and I/O buffers come from glommio).
pub const LARGE_ALLOCATION_BYTES: usize = 1 << 30;

/// See the module docs.
pub struct GuardedAllocator;

fn is_large(layout: &Layout) -> bool {
    // mmap gives page alignment; larger alignments stay with the system.
    layout.size() >= LARGE_ALLOCATION_BYTES && layout.align() <= 4096
}

unsafe fn map(size: usize) -> *mut u8 {
    // SAFETY: an anonymous private mapping with no address hint has no
    // preconditions; failure is reported as MAP_FAILED.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        std::ptr::null_mut()
    } else {
        ptr.cast()
    }
}

/// Blocks up to this size come from the allocator's heaps, not from a
/// mapping of their own (glibc's most for `M_MMAP_THRESHOLD` on 64-bit).
pub const HEAP_BLOCK_MAX_BYTES: usize = 32 << 20;

/// Free memory at the top of a heap up to this size is kept for reuse, not
/// handed back at once (`M_TRIM_THRESHOLD`); [`trim_freed_memory`] still
/// hands it all back when connections close.
pub const KEPT_FREE_BYTES: usize = 128 << 20;

/// Makes the system allocator reuse the memory of large blocks. A fetch
/// that reads from disk allocates megabyte-sized buffers (glommio's read
/// buffers, the copy that crosses shards) and frees them a moment later;
/// with glibc's defaults such blocks are mapped and unmapped, or trimmed
/// from the heap's top, every time, so every page of every read is faulted
/// in and zeroed by the kernel again: at catch-up that was more than half
/// of the broker's CPU. Call once, first thing in `main`, before threads
/// start. What stays kept is bounded by [`KEPT_FREE_BYTES`] per heap.
pub fn reuse_freed_blocks() {
    // SAFETY: mallopt only changes the allocator's tunables; these two take
    // any positive value. A refusal (0) leaves glibc's defaults, which are
    // only slower.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, HEAP_BLOCK_MAX_BYTES as libc::c_int);
        libc::mallopt(libc::M_TRIM_THRESHOLD, KEPT_FREE_BYTES as libc::c_int);
    }
}

/// When [`trim_freed_memory`] last ran, milliseconds on the caller's
/// monotonic clock (0: never).
static LAST_TRIM_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Hands heap memory that was freed back to the system (glibc's
/// `malloc_trim`), at most once a second per process. Called when a
/// connection ends: the answers a burst of connections held (up to
/// `fetch.max.bytes` each) are freed when they close, but the allocator
/// keeps such pages for reuse, and without this the process's RSS stays
/// at the burst's peak. `now_ms` is a monotonic clock in milliseconds.
/// False when it did not run (it ran less than a second ago).
pub fn trim_freed_memory(now_ms: u64) -> bool {
    use std::sync::atomic::Ordering;
    let last = LAST_TRIM_MS.load(Ordering::Relaxed);
    if (last != 0 && now_ms < last.saturating_add(1000))
        || LAST_TRIM_MS
            .compare_exchange(last, now_ms.max(1), Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        return false;
    }
    // SAFETY: malloc_trim only releases free memory of the allocator's own
    // arenas; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
    true
}

// SAFETY: every pointer handed out is either the system allocator's (and
// given back to it with the same layout) or a fresh mapping of at least the
// requested size and page alignment (unmapped with the same size).
unsafe impl GlobalAlloc for GuardedAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_large(&layout) {
            unsafe { map(layout.size()) }
        } else {
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_large(&layout) {
            // Fresh anonymous mappings read as zeros.
            unsafe { map(layout.size()) }
        } else {
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_large(&layout) {
            // SAFETY: `ptr` came from `map` with this size.
            unsafe { libc::munmap(ptr.cast(), layout.size()) };
        } else {
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new_layout = match Layout::from_size_align(new_size, layout.align()) {
            Ok(l) => l,
            Err(_) => return std::ptr::null_mut(),
        };
        if !is_large(&layout) && !is_large(&new_layout) {
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are valid for the smaller of the sizes.
            unsafe { std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
            unsafe { self.dealloc(ptr, layout) };
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_allocations_reserve_address_space_only() {
        let a = GuardedAllocator;
        // 64 GiB: more than the machine has; a system allocation would fail.
        let layout = Layout::from_size_align(64 << 30, 8).expect("layout");
        // SAFETY: the layout is non-zero; the block is written within bounds
        // and freed with the same layout.
        unsafe {
            let p = a.alloc(layout);
            assert!(!p.is_null());
            *p = 7;
            *p.add((64 << 30) - 1) = 9;
            assert_eq!(*p, 7);
            a.dealloc(p, layout);
        }
        let small = Layout::from_size_align(100, 8).expect("layout");
        // SAFETY: as above.
        unsafe {
            let p = a.alloc(small);
            assert!(!p.is_null());
            let q = a.realloc(p, small, 200);
            assert!(!q.is_null());
            a.dealloc(q, Layout::from_size_align(200, 8).expect("layout"));
        }
    }
}
