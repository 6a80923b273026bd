//! The partition log on its own, as the storage tier behind another frontend:
//! no network, no broker. Appends batches durably, reads them back, closes,
//! reopens (recovery) and reads again.
//!
//! ```text
//! cargo run --release -p sluice-log --example append_read -- [DATA_DIR] [BATCHES]
//! ```

use std::path::PathBuf;

use bytes::BytesMut;
use sluice_core::batch::{BatchBuilder, BatchIter};
use sluice_core::config::LogConfig;
use sluice_core::records::RecordIter;
use sluice_log::{DmaStorage, LogError, PartitionLog};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "./sluice-data/example/0".into()),
    );
    let batches: u32 = args.next().map(|n| n.parse()).transpose()?.unwrap_or(1000);
    // The log runs inside a glommio executor (one per core in the broker),
    // kept awake so a lost io_uring wake-up cannot stall it (see `wake`).
    let result = glommio::LocalExecutorBuilder::default()
        .make()?
        .run(async move {
            sluice_log::wake::keep_awake(sluice_log::wake::DEFAULT_WAKE_PERIOD);
            demo(dir, batches).await
        });
    Ok(result?)
}

async fn demo(dir: PathBuf, batches: u32) -> Result<(), LogError> {
    let now_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    };
    let log = PartitionLog::open(
        DmaStorage,
        dir.clone(),
        LogConfig::default(),
        None,
        now_ms(),
    )
    .await?;
    println!(
        "opened {} : log start {}, log end {}, {} segment(s)",
        dir.display(),
        log.log_start_offset(),
        log.log_end_offset(),
        log.segment_count()
    );

    let first = log.log_end_offset();
    for i in 0..batches {
        let batch = BatchBuilder::new(now_ms())
            .record(Some(b"key"), Some(format!("value {i}").as_bytes()))
            .build();
        // Offsets are assigned in place; the bytes go to disk as they are.
        log.append(BytesMut::from(&batch[..]), 0, now_ms()).await?;
    }
    // One fdatasync makes every append above durable.
    let durable = log.flush().await?;
    println!("appended {batches} batches; durable up to offset {durable}");

    let chunks = log.read(first, 64 * 1024, log.log_end_offset()).await?;
    let mut shown = 0;
    for chunk in chunks {
        for batch in BatchIter::new(chunk) {
            let batch = batch?;
            for record in RecordIter::new(&batch).map_err(|e| LogError::Corrupt {
                path: dir.clone(),
                position: 0,
                reason: e.to_string(),
            })? {
                let record = record.map_err(|e| LogError::Corrupt {
                    path: dir.clone(),
                    position: 0,
                    reason: e.to_string(),
                })?;
                if shown < 3 {
                    let value = record.value.as_deref().map(String::from_utf8_lossy);
                    println!("offset {} value {:?}", record.offset, value);
                }
                shown += 1;
            }
        }
    }
    println!("read {shown} records from offset {first} in one 64 KiB read");
    log.close().await?;

    let log = PartitionLog::open(DmaStorage, dir, LogConfig::default(), None, now_ms()).await?;
    println!(
        "reopened: log end {} (recovery cut {} bytes)",
        log.log_end_offset(),
        log.open_report().active.bytes_cut
    );
    log.close().await
}
