//! Start-up time of the controller quorum after many metadata changes.
//!
//! `cargo run --release -p sluice-shard --example metadata_startup -- DIR N`
//! commits N topic creations and N deletions through a quorum of one
//! twice, once with snapshots (the default `shard.metadata_snapshot_commands`)
//! and once without, then times starting each from real files in DIR
//! (O_DIRECT, as the broker starts its controller: open the log, vote and
//! snapshot, elect, apply what was committed) and prints what the start
//! found. The quorums are built on the in-memory disk and written out as
//! files, so the run does not wait for 2N fdatasyncs; the start is the
//! broker's own.

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

use sluice_core::config::ShardConfig;
use sluice_core::metadata::{BrokerRegistration, MetadataCommand, MetadataState, Replica};
use sluice_log::storage::Storage;
use sluice_log::{Disk, MemoryStorage};
use sluice_quorum::member::{start_alone, Member};
use sluice_quorum::state_machine::{Applier, LocalFuture};

/// Counts what the start applied.
#[derive(Default)]
struct Count(std::cell::Cell<u64>);

impl Applier for Count {
    fn applied(
        &self,
        _index: u64,
        _command: &MetadataCommand,
        _state: &MetadataState,
    ) -> LocalFuture {
        self.0.set(self.0.get() + 1);
        Box::pin(async {})
    }
    fn installed(&self, _state: &MetadataState) -> LocalFuture {
        Box::pin(async {})
    }
}

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
                // The median of three starts (the first also warms up).
                let mut times = Vec::new();
                let mut replayed = 0;
                for _ in 0..3 {
                    let count = Rc::new(Count::default());
                    let started = Instant::now();
                    let alone = start(Disk::Dma, target.clone(), snapshot_commands, count.clone()).await?;
                    times.push(started.elapsed().as_secs_f64() * 1000.0);
                    replayed = count.0.get();
                    alone.raft.shutdown().await.map_err(|e| e.to_string())?;
                }
                times.sort_by(f64::total_cmp);
                let files = bytes_under(&target);
                println!(
                    "{name}: {n} creates + {n} deletes; {files} bytes of files; started in {:.1} ms median of 3 (commands applied at start: {replayed})",
                    times[1],
                );
            }
            Ok(())
        })
}

async fn start(
    disk: Disk,
    dir: PathBuf,
    snapshot_commands: u64,
    applier: Rc<dyn Applier>,
) -> Result<Member, String> {
    start_alone(disk, dir, 1, snapshot_commands, applier, Rc::new(|| 0))
        .await
        .map_err(|e| e.to_string())
}

fn bytes_under(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => bytes_under(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Commits `n` creations and deletions on the in-memory disk, then writes
/// the quorum's files under `target`.
async fn build(target: &Path, n: u64, snapshot_commands: u64) -> Result<(), String> {
    let disk = MemoryStorage::new();
    let root = PathBuf::from("/m");
    let alone = start(
        Disk::Memory(disk.clone()),
        root.clone(),
        snapshot_commands,
        Rc::new(Count::default()),
    )
    .await?;
    let broker = MetadataCommand::RegisterBroker(BrokerRegistration {
        id: 0,
        incarnation: [0; 16],
        rack: None,
        host: "127.0.0.1".into(),
        port: 9092,
        rpc_addr: String::new(),
        shards: 1,
        durable_logs: false,
    });
    alone
        .raft
        .client_write(broker)
        .await
        .map_err(|e| e.to_string())?;
    let here = Replica {
        broker: 0,
        shard: 0,
    };
    for i in 0..n {
        let name = format!("topic-{i}");
        let create = MetadataCommand::CreateTopic {
            name: name.clone(),
            id: (i as u128 + 1).to_be_bytes(),
            partitions: vec![vec![here]; 3],
            configs: Default::default(),
        };
        for command in [create, MetadataCommand::DeleteTopic { name }] {
            alone
                .raft
                .client_write(command)
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    alone.raft.shutdown().await.map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(target);
    copy_out(&disk, &root, target).await
}

/// Writes every file under `from` on the in-memory disk to `to`.
async fn copy_out(disk: &MemoryStorage, from: &Path, to: &Path) -> Result<(), String> {
    std::fs::create_dir_all(to).map_err(|e| e.to_string())?;
    for name in disk.list(from).await.map_err(|e| e.to_string())? {
        let path = from.join(&name);
        match disk.file_bytes(&path) {
            Some(bytes) => std::fs::write(to.join(&name), bytes).map_err(|e| e.to_string())?,
            None => Box::pin(copy_out(disk, &path, &to.join(&name))).await?,
        }
    }
    Ok(())
}
