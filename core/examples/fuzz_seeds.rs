//! Writes seed inputs for the fuzz targets (valid batches, several batches
//! back to back with offsets assigned, a segment with an index), so the
//! fuzzers start from the interesting shapes instead of random bytes.
//!
//! ```text
//! cargo run -p sluice-core --example fuzz_seeds -- OUT_DIR
//! ```
//! writes `OUT_DIR/batch_parse/*`, `OUT_DIR/recovery_scan/*` and
//! `OUT_DIR/recover_segment/*`.

use std::path::PathBuf;

use bytes::BytesMut;
use sluice_core::batch::{assign_in_place, BatchBuilder};

fn batches(count: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut next = 0i64;
    for i in 0..count {
        let mut b = BatchBuilder::new(1_700_000_000_000 + i as i64);
        for r in 0..(i % 3 + 1) {
            let headers: &[(&[u8], Option<&[u8]>)] =
                if r == 1 { &[(b"h", Some(b"v"))] } else { &[] };
            b = b.record_at(
                1_700_000_000_000 + i as i64 + r as i64,
                Some(b"key"),
                Some(&[b'x'; 40]),
                headers,
            );
        }
        let records = b.len() as i64;
        let mut bytes = BytesMut::from(&b.build()[..]);
        assign_in_place(&mut bytes, next, 0);
        next += records;
        out.extend_from_slice(&bytes);
    }
    out
}

fn main() -> std::io::Result<()> {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "fuzz-seeds".into()),
    );
    for target in ["batch_parse", "recovery_scan", "recover_segment"] {
        std::fs::create_dir_all(out.join(target))?;
    }
    for n in [1usize, 3, 8] {
        let bytes = batches(n);
        std::fs::write(out.join("batch_parse").join(format!("batches-{n}")), &bytes)?;
        // recovery_scan reads its expected first offset from the first 8
        // bytes, which are the first batch's base offset (0).
        std::fs::write(
            out.join("recovery_scan").join(format!("segment-{n}")),
            &bytes,
        )?;
        // recover_segment: first byte * 8 bytes of index, then the segment.
        let mut seeded = vec![0u8];
        seeded.extend_from_slice(&bytes);
        std::fs::write(
            out.join("recover_segment").join(format!("segment-{n}")),
            &seeded,
        )?;
    }
    Ok(())
}
