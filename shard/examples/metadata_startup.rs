//! Start-up time of the metadata log after many metadata changes.
//!
//! `cargo run --release -p sluice-shard --example metadata_startup -- DIR N`
//! commits N topic creations and N deletions to a metadata log twice, once
//! with snapshots (the default `shard.metadata_snapshot_commands`) and once
//! without, then times opening each from real files in DIR (O_DIRECT, as
//! the broker opens it at start-up) and prints what each replay read. The
//! logs are built on the in-memory disk and written out as files, so the
//! run does not wait for 2N fdatasyncs; the opening is the broker's own.

use std::path::{Path, PathBuf};
use std::time::Instant;

use sluice_core::config::ShardConfig;
use sluice_core::metadata::MetadataCommand;
use sluice_log::storage::Storage;
use sluice_log::MemoryStorage;
use sluice_shard::metadata_log::MetadataLog;
use sluice_shard::Disk;

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().ok_or("usage: metadata_startup DIR N")?);
    let n: u64 = args
        .next()
        .ok_or("usage: metadata_startup DIR N")?
        .parse()
        .map_err(|e| format!("N: {e}"))?;
    glommio::LocalExecutorBuilder::default()
        .make()
        .map_err(|e| e.to_string())?
        .run(async move {
            let every = ShardConfig::default().metadata_snapshot_commands;
            for (name, snapshot_commands) in [("snapshots", every), ("no-snapshots", 0)] {
                let target = dir.join(name);
                build(&target, n, snapshot_commands).await?;
                // The median of three openings (the first also warms up).
                let mut times = Vec::new();
                let mut opened = None;
                for _ in 0..3 {
                    let started = Instant::now();
                    let log = MetadataLog::open(&Disk::Dma, target.clone(), snapshot_commands, 0)
                        .await
                        .map_err(|e| e.to_string())?;
                    times.push(started.elapsed().as_secs_f64() * 1000.0);
                    if let Some(previous) = opened.replace(log) {
                        let previous: MetadataLog = previous;
                        previous.close().await.map_err(|e| e.to_string())?;
                    }
                }
                times.sort_by(f64::total_cmp);
                let log = opened.ok_or("opened three times")?;
                let replayed = log.replayed();
                let (start, end) = log.offsets();
                let files: u64 = std::fs::read_dir(target.join("0"))
                    .map_err(|e| e.to_string())?
                    .filter_map(|e| e.ok()?.metadata().ok())
                    .map(|m| m.len())
                    .sum();
                println!(
                    "{name}: {n} creates + {n} deletes; log {start}..{end}, {files} bytes of files; opened in {:.1} ms median of 3 (snapshot: {}, commands replayed: {}, bytes read: {})",
                    times[1],
                    replayed.snapshot,
                    replayed.commands,
                    replayed.bytes
                );
                log.close().await.map_err(|e| e.to_string())?;
            }
            Ok(())
        })
}

/// Commits `n` creations and deletions on the in-memory disk, then writes
/// the log's files under `target`.
async fn build(target: &Path, n: u64, snapshot_commands: u64) -> Result<(), String> {
    let disk = MemoryStorage::new();
    let root = PathBuf::from("/m");
    let log = MetadataLog::open(
        &Disk::Memory(disk.clone()),
        root.clone(),
        snapshot_commands,
        0,
    )
    .await
    .map_err(|e| e.to_string())?;
    for i in 0..n {
        let name = format!("topic-{i}");
        let create = MetadataCommand::CreateTopic {
            name: name.clone(),
            id: (i as u128 + 1).to_be_bytes(),
            partition_shards: vec![0; 3],
            configs: Default::default(),
        };
        log.commit(&create, i as i64)
            .await
            .map_err(|e| e.to_string())?;
        log.commit(&MetadataCommand::DeleteTopic { name }, i as i64)
            .await
            .map_err(|e| e.to_string())?;
    }
    log.close().await.map_err(|e| e.to_string())?;
    let from = root.join("0");
    let to = target.join("0");
    let _ = std::fs::remove_dir_all(target);
    std::fs::create_dir_all(&to).map_err(|e| e.to_string())?;
    for file in disk.list(&from).await.map_err(|e| e.to_string())? {
        let bytes = disk
            .file_bytes(&from.join(&file))
            .ok_or_else(|| format!("{file} vanished"))?;
        std::fs::write(to.join(&file), bytes).map_err(|e| e.to_string())?;
    }
    Ok(())
}
