//! How far ahead of its writes an active segment's `.log` file is grown.
//!
//! Owns: the rule that picks the length a segment's file is allocated to
//! (`fallocate(2)`, the file's size set, its blocks reserved and reading as
//! zeros) before a write that would otherwise extend it.
//!
//! Why: on ext4, an O_DIRECT write that extends a file changes its size and
//! allocates its blocks, so the `fdatasync` after it must commit that
//! metadata too, and io_uring hands the write to a worker thread. A write
//! into space already allocated within the file's size commits only the
//! block's conversion from "unwritten". fio on this project's test disk,
//! 256 KiB O_DIRECT writes with `fdatasync` at depth 4: 1,010–1,080 MiB/s
//! into a growing file, 1,218–1,301 MiB/s with the size set ahead, and no
//! gain (1,100–1,181) from `FALLOC_FL_KEEP_SIZE`, which leaves the size to
//! every write.
//!
//! Only logs that sync every acknowledged append (`log.flush = always`)
//! preallocate. Without those syncs there is no metadata commit to save,
//! and each write into unwritten space waits for its conversion at
//! completion: tput-1k at `flush = never` measured 0.94× the throughput and
//! 1.6× the produce p99 with it (README, "Preallocating segments").
//!
//! Invariants:
//! - A file is grown only ahead of a write that would extend it, and never
//!   past the segment's largest size (`log.segment.bytes`, aligned up).
//! - What is reserved ahead of the data is at most what the segment holds
//!   (so a partition written slowly reserves little) and at most `step`
//!   (`log.preallocate_bytes`): a broker's space reserved ahead is bounded
//!   by its data and by `step` per partition.
//! - Preallocation is a hint: it changes no byte the log reads (the reserved
//!   space reads as zeros, which recovery stops at like the zero padding of
//!   a last page), and a failed allocation leaves the write to extend the
//!   file itself. A segment's file is cut back to its data when it seals and
//!   when its log closes.

use crate::storage::align_up;

/// The preallocation settings a write-out follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preallocate {
    /// Most bytes reserved ahead of the data (0: never grow ahead).
    pub step: u64,
    /// The segment's largest size: nothing is reserved past it.
    pub limit: u64,
}

impl Preallocate {
    /// No preallocation: sealing, truncating and the cleaner's segments.
    pub const NONE: Preallocate = Preallocate { step: 0, limit: 0 };

    /// The length to grow a file to before a write ending at `write_end`
    /// lands in it, when the file is `allocated` bytes long; `None` when
    /// the write lands inside the file or nothing would be reserved.
    pub fn target(self, write_end: u64, allocated: u64) -> Option<u64> {
        if self.step == 0 || write_end <= allocated {
            return None;
        }
        let ahead = self.step.min(write_end);
        let target = align_up(write_end.saturating_add(ahead)).min(align_up(self.limit));
        (target > write_end).then_some(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;
    const GIB: u64 = 1024 * MIB;

    fn with_step(step: u64) -> Preallocate {
        Preallocate { step, limit: GIB }
    }

    #[test]
    fn reserves_as_much_as_the_segment_holds_until_the_step() {
        let p = with_step(32 * MIB);
        assert_eq!(p.target(4096, 0), Some(8192));
        assert_eq!(p.target(MIB, 8192), Some(2 * MIB));
        assert_eq!(p.target(20 * MIB, 2 * MIB), Some(40 * MIB));
        assert_eq!(p.target(100 * MIB, 40 * MIB), Some(132 * MIB));
    }

    #[test]
    fn writes_inside_the_file_reserve_nothing() {
        let p = with_step(32 * MIB);
        assert_eq!(p.target(2 * MIB, 2 * MIB), None);
        assert_eq!(p.target(MIB, 2 * MIB), None);
    }

    #[test]
    fn never_past_the_segment_size_nor_when_off() {
        let p = with_step(32 * MIB);
        assert_eq!(p.target(GIB - MIB, GIB - 2 * MIB), Some(GIB));
        assert_eq!(p.target(GIB, GIB - MIB), None);
        assert_eq!(p.target(GIB + 4096, GIB), None);
        assert_eq!(Preallocate::NONE.target(4096, 0), None);
        assert_eq!(with_step(0).target(MIB, 0), None);
    }

    #[test]
    fn an_unaligned_limit_rounds_up_to_a_page() {
        let p = Preallocate {
            step: MIB,
            limit: 10_000,
        };
        assert_eq!(p.target(4096, 0), Some(8192));
        assert_eq!(p.target(8192, 8192), None);
        assert_eq!(p.target(12_288, 8192), None);
    }
}
