//! Helpers shared by the log's integration tests.
#![allow(dead_code)]

use std::future::Future;

use bytes::{Bytes, BytesMut};
use sluice_core::batch::{BatchBuilder, BatchIter};
use sluice_core::records::RecordIter;

/// Runs `f` to completion on a fresh glommio executor on this thread.
pub fn run<T>(f: impl Future<Output = T>) -> T {
    glommio::LocalExecutorBuilder::default()
        .make()
        .expect("glommio executor starts (io_uring available)")
        .run(f)
}

/// One batch of `records` records whose values say which batch and record
/// they are, `value_bytes` long, stamped `timestamp`.
pub fn batch(tag: u64, records: usize, value_bytes: usize, timestamp: i64) -> BytesMut {
    let mut b = BatchBuilder::new(timestamp);
    for i in 0..records {
        let mut value = format!("{tag}:{i}:").into_bytes();
        value.resize(value_bytes.max(value.len()), b'x');
        b = b.record(None, Some(&value));
    }
    BytesMut::from(&b.build()[..])
}

/// (offset, value) of every record in `chunks`.
pub fn records(chunks: &[Bytes]) -> Vec<(i64, Bytes)> {
    let mut out = Vec::new();
    for chunk in chunks {
        for batch in BatchIter::new(chunk.clone()) {
            let batch = batch.expect("log returns valid batches");
            for r in RecordIter::new(&batch).expect("uncompressed") {
                let r = r.expect("valid record");
                out.push((r.offset, r.value.expect("value")));
            }
        }
    }
    out
}

/// Base offsets of the batches in `chunks`.
pub fn batch_bases(chunks: &[Bytes]) -> Vec<i64> {
    chunks
        .iter()
        .flat_map(|c| BatchIter::new(c.clone()).map(|b| b.expect("valid").base_offset()))
        .collect()
}

/// A temporary directory on a filesystem that supports O_DIRECT (the
/// target directory; /tmp is often tmpfs, which does not).
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir under the target dir")
}
