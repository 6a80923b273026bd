//! What a read returns: whole batches, shared or still in the disk buffer.
//!
//! Owns: [`ReadChunk`], the unit of a log read. Batches from the batch cache
//! or from appends not yet written are `Shared` (`Bytes`, may go to any
//! thread). Batches read from a segment file are `Local`: they stay in the
//! buffer the disk read filled (with glommio, tied to the reading shard), so
//! a fetch answered on the owning shard never copies them. Crossing to
//! another shard costs one copy, in [`ReadChunk::into_bytes`].
//!
//! Invariant: every chunk holds one or more whole batches.

use std::ops::Deref;

use bytes::Bytes;

/// One or more whole batches from a log read.
#[derive(Debug, Clone)]
pub enum ReadChunk<R> {
    /// Shared memory: the batch cache or unwritten appends.
    Shared(Bytes),
    /// A slice of the buffer a disk read filled, on this thread.
    Local(R),
}

impl<R: Deref<Target = [u8]>> ReadChunk<R> {
    /// The batches' bytes.
    pub fn as_slice(&self) -> &[u8] {
        match self {
            ReadChunk::Shared(b) => b,
            ReadChunk::Local(r) => r,
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// True when the chunk holds no bytes (never, by the invariant).
    pub fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }

    /// True for a slice of a disk read's buffer ([`ReadChunk::into_bytes`]
    /// copies it).
    pub fn is_local(&self) -> bool {
        matches!(self, ReadChunk::Local(_))
    }

    /// The batches as `Bytes` that may cross threads; copies a `Local` chunk.
    pub fn into_bytes(self) -> Bytes {
        match self {
            ReadChunk::Shared(b) => b,
            ReadChunk::Local(r) => Bytes::copy_from_slice(&r),
        }
    }
}

impl<R: Deref<Target = [u8]>> Deref for ReadChunk<R> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}
