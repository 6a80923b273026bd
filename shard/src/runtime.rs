//! Starting and stopping the shards: one pinned glommio executor per core.
//!
//! Owns: executor start-up and pinning, joining the channel mesh, the
//! start-up handshake (shard 0 starts its controller quorum member and sends every
//! shard the result before any of them serves), the mesh receive loops, the
//! `interval:<ms>` flush tick, and shutdown (stop serving, flush, close).

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use glommio::{LocalExecutorPoolBuilder, PoolPlacement};
use sluice_core::config::{FlushPolicy, NodeConfig};

use crate::env::SystemEnv;
use crate::mesh::{self, MeshEnds};
use crate::message::InstallSnapshot;
use crate::notify::Notify;
use crate::shard::{Shard, ShardParts};
use crate::store::Disk;
use crate::transport::Transport;

/// Messages that may wait in one shard-to-shard channel before the sender
/// is made to wait (backpressure across cores).
pub const MESH_CHANNEL_CAPACITY: usize = 1024;

/// Requests from other shards one shard runs at once (long polls apart).
pub const MESH_TASKS_MAX: u64 = 4096;

/// What each shard runs once it is ready: the Kafka server, in the binary.
pub type ServeFn = Arc<
    dyn Fn(Rc<Shard>, Rc<Notify>) -> Pin<Box<dyn Future<Output = Result<(), String>>>>
        + Send
        + Sync,
>;

/// Set from a signal handler (or a test) to stop the node.
#[derive(Clone, Default)]
pub struct ShutdownFlag(Arc<AtomicBool>);

impl ShutdownFlag {
    pub fn request(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn is_requested(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Runs `shards` executors until `shutdown` is requested and every shard
/// has flushed and closed its partitions.
pub fn run(
    config: NodeConfig,
    shards: usize,
    serve: ServeFn,
    shutdown: ShutdownFlag,
) -> Result<(), String> {
    let config = Arc::new(config);
    // Every channel is made here; each executor takes one shard's ends.
    let mesh = Arc::new(std::sync::Mutex::new(mesh::build(
        shards,
        MESH_CHANNEL_CAPACITY,
    )));
    let spin = Duration::from_micros(config.shard.spin_before_park_us);
    let handles = LocalExecutorPoolBuilder::new(PoolPlacement::MaxSpread(shards, allowed_cpus()))
        .name("sluice-shard")
        .spin_before_park(spin)
        .io_memory(usize::try_from(config.shard.io_memory_bytes).unwrap_or(usize::MAX))
        .on_all_shards(move || {
            let (config, serve, shutdown) = (config.clone(), serve.clone(), shutdown.clone());
            // Runs on the executor's own thread: it takes one shard's ends.
            let ends = mesh.lock().unwrap_or_else(|e| e.into_inner()).pop();
            async move {
                let ends = ends.ok_or("more executors than shards")?;
                shard_main(config, shards as u32, ends, serve, shutdown).await
            }
        })
        .map_err(|e| format!("starting executors: {e}"))?;
    let mut failed = Vec::new();
    for result in handles.join_all() {
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failed.push(e),
            Err(e) => failed.push(format!("executor: {e}")),
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("; "))
    }
}

/// The online CPUs this process may run on (`taskset`, cgroup cpusets):
/// glommio's placement would otherwise pick from every online CPU and pin a
/// shard outside the set the operator gave. `None` (glommio decides) when
/// the set cannot be read.
fn allowed_cpus() -> Option<glommio::CpuSet> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set, which
    // sched_getaffinity fills for this thread (inherited from the process).
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::cpu_set_t>();
    if unsafe { libc::sched_getaffinity(0, size, &mut set) } != 0 {
        return None;
    }
    let online = glommio::CpuSet::online().ok()?;
    // SAFETY: CPU_ISSET reads within the set for any cpu index below
    // CPU_SETSIZE, which every online CPU id is.
    let allowed = online
        .filter(|l| l.cpu < libc::CPU_SETSIZE as usize && unsafe { libc::CPU_ISSET(l.cpu, &set) });
    (!allowed.is_empty()).then_some(allowed)
}

/// Period of the wake-up that bounds a glommio 0.9 stall
/// (`sluice_log::wake` explains it), on every shard.
const STALL_GUARD: Duration = Duration::from_millis(100);

async fn shard_main(
    config: Arc<NodeConfig>,
    shards: u32,
    ends: MeshEnds,
    serve: ServeFn,
    shutdown: ShutdownFlag,
) -> Result<(), String> {
    // Bounds a glommio 0.9 stall on every shard from its first await on:
    // start-up waits on io_uring and on the blocking-thread pool too (the
    // group coordinator arms its own timers, at each deadline).
    sluice_log::wake::keep_awake(STALL_GUARD);
    let (senders, receivers) = ends.connect().await;
    let id = senders.peer_id() as u32;
    let config = Rc::new((*config).clone());
    let parts = ShardParts {
        env: Rc::new(SystemEnv),
        disk: Disk::Dma,
        transport: Transport::Mesh(senders),
    };
    let shard = match Shard::new(id, shards, config.clone(), parts).await {
        Ok(shard) => Rc::new(shard),
        // Only the controller shard opens anything here: its controller
        // quorum member. Without it no shard can serve, and the others
        // wait for its snapshot, so the node stops.
        Err(e) => crate::fatal(&format!(
            "the controller quorum's metadata in {} cannot be opened or replayed: {e}; \
             it must be repaired or restored before the node can start",
            config.data_dir.join(crate::shard::CONTROLLER_DIR).display()
        )),
    };

    // Requests from other shards: `Shard::receive` bounds the tasks they
    // run as (past the bound this loop waits, the channels fill and the
    // senders wait).
    for (_, receiver) in receivers {
        let shard = shard.clone();
        glommio::spawn_local(async move {
            while let Some(msg) = receiver.recv().await {
                shard.receive(msg).await;
            }
        })
        .detach();
    }

    // Shard 0 registers the broker first (and from then on heartbeats), so
    // the metadata every shard starts from already has it registered and
    // leading its partitions.
    if id == 0 {
        shard.join_cluster().await?;
    }
    // Start-up handshake: shard 0 sends the metadata everywhere.
    let ready = Rc::new(Notify::default());
    if let Some(state) = shard.controller_snapshot() {
        for to in 0..shards {
            let installed = shard
                .call(to, InstallSnapshot(Box::new(state.clone())))
                .await;
            if installed.is_err() {
                return Err(format!("shard {to} stopped before it took the metadata"));
            }
        }
    } else {
        // Wait until the snapshot arrived (the receive loop installs it).
        while !shard.snapshot_installed() {
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
    }
    ready.notify_all();

    if let FlushPolicy::IntervalMs(ms) = config.log.flush {
        let shard = shard.clone();
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(Duration::from_millis(ms)).await;
                shard.flush_all().await;
            }
        })
        .detach();
    }

    {
        let shard = shard.clone();
        let every = Duration::from_millis(config.log.retention_check_interval_ms.max(1));
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(every).await;
                shard.apply_retention_all().await;
            }
        })
        .detach();
    }

    glommio::spawn_local(shard.clone().maintain_isr()).detach();
    if shards > 1 {
        glommio::spawn_local(shard.clone().share_quota_usage()).detach();
    }
    shard.start_cleaner();

    {
        let shard = shard.clone();
        let every = Duration::from_millis(config.group.offsets_retention_check_interval_ms.max(1));
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(every).await;
                shard.groups.expire_offsets().await;
            }
        })
        .detach();
    }

    let stop = Rc::new(Notify::default());
    {
        let stop = stop.clone();
        let shutdown = shutdown.clone();
        glommio::spawn_local(async move {
            while !shutdown.is_requested() {
                glommio::timer::sleep(Duration::from_millis(50)).await;
            }
            stop.close();
        })
        .detach();
    }
    let served = serve(shard.clone(), stop).await;
    if let Err(e) = &served {
        // One shard that cannot serve stops the node.
        tracing::error!(shard = id, error = %e, "shard cannot serve; stopping the node");
        shutdown.request();
    }
    // Controlled shutdown: the controller fences this broker now.
    shard.leave_cluster().await;
    shard.close().await;
    tracing::info!(shard = id, "shard stopped");
    served
}
