//! One simulated process of the node: its shards, started as the runtime
//! starts them, over the simulated disk, clock and mesh.
//!
//! Owns: making the shards (each with a [`SimEnv`], the in-memory disk and
//! the mesh), the start-up handshake the runtime does (shard 0 replays the
//! metadata log and sends every shard the result), delivering mesh
//! messages, and letting the tasks run until they wait.

use std::path::PathBuf;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use sluice_core::batch::BatchIter;
use sluice_core::config::NodeConfig;
use sluice_core::Offset;
use sluice_log::MemoryStorage;
use sluice_shard::message::{Fetch, InstallSnapshot, PartitionRead};
use sluice_shard::{Disk, Shard, ShardParts, Transport};

use sluice_shard::simulated::Rng;
use sluice_shard::simulated::SimMesh;
use sluice_shard::simulated::{Clock, SimEnv};

/// Polls of the other tasks per settle: enough for every chain of local
/// work a step starts (appends, reads, wake-ups) to reach a wait on the
/// mesh or a timer; a chain still running is simply continued next step.
const SETTLE_YIELDS: usize = 12;

/// A running process.
pub struct Node {
    pub shards: Vec<Rc<Shard>>,
    pub mesh: Rc<SimMesh>,
    pub clock: Rc<Clock>,
}

/// The node's data directory on the simulated disk.
pub fn data_dir() -> PathBuf {
    PathBuf::from("/sim/data")
}

impl Node {
    /// Starts `shards` shards over `disk`, as `runtime::run` does.
    #[allow(clippy::too_many_arguments)] // the parts of a process, each once
    pub async fn start(
        config: Rc<NodeConfig>,
        shards: u32,
        disk: &MemoryStorage,
        clock: Rc<Clock>,
        mesh: Rc<SimMesh>,
        id_seed: u64,
        acks_before_sync: bool,
        rng: &mut Rng,
    ) -> Result<Node, String> {
        let mut made = Vec::with_capacity(shards as usize);
        for id in 0..shards {
            let parts = ShardParts {
                env: Rc::new(SimEnv::new(
                    clock.clone(),
                    id_seed ^ ((id as u64) << 56),
                    acks_before_sync,
                )),
                disk: Disk::Memory(disk.clone()),
                transport: Transport::Link(mesh.clone()),
            };
            let shard = Shard::new(id, shards, config.clone(), parts)
                .await
                .map_err(|e| format!("shard {id} did not start: {e}"))?;
            made.push(Rc::new(shard));
        }
        let node = Node {
            shards: made,
            mesh,
            clock,
        };
        let controller = node.shards[0].clone();
        let state = controller
            .controller_snapshot()
            .ok_or("shard 0 has no metadata log")?;
        glommio::spawn_local(async move {
            for to in 0..shards {
                controller
                    .call(to, InstallSnapshot(Box::new(state.clone())))
                    .await
                    .expect("the simulated mesh reaches every shard");
            }
        })
        .detach();
        for _ in 0..100_000 {
            if node.shards.iter().all(|s| s.snapshot_installed()) {
                node.settle().await;
                return Ok(node);
            }
            if node.deliver(rng, 64).await == 0 {
                node.advance_to_next_due();
            }
            node.settle().await;
        }
        Err("the start-up handshake did not finish".into())
    }

    /// Lets every other task run until it waits (or for a bounded while).
    pub async fn settle(&self) {
        for _ in 0..SETTLE_YIELDS {
            futures_lite::future::yield_now().await;
        }
    }

    /// Delivers up to `max` due messages, in an order `rng` picks; how many.
    pub async fn deliver(&self, rng: &mut Rng, max: usize) -> usize {
        let mut delivered = 0;
        while delivered < max {
            let Some((to, msg)) = self.mesh.take_due(rng) else {
                break;
            };
            self.shards[to as usize].receive(msg).await;
            delivered += 1;
        }
        delivered
    }

    /// Moves the clock to the next message or timer due, if any.
    pub fn advance_to_next_due(&self) -> bool {
        let next = [self.mesh.next_due_ms(), self.clock.next_deadline_ms()]
            .into_iter()
            .flatten()
            .min();
        match next {
            Some(at) => {
                self.clock.advance_to(at.max(self.clock.now_ms()));
                true
            }
            None => false,
        }
    }

    /// Every record of `topic`/`partition` from `from` below `upto`, read
    /// on its owner as a Fetch does, joined.
    pub async fn read_all(
        &self,
        owner: u32,
        topic: &str,
        partition: i32,
        from: Offset,
        upto: Offset,
    ) -> Result<Bytes, String> {
        let shard = &self.shards[owner as usize];
        let mut all = BytesMut::new();
        let mut next = from;
        while next < upto {
            let request = Fetch {
                reads: vec![PartitionRead {
                    topic: topic.to_owned(),
                    partition,
                    offset: next,
                    max_bytes: 1 << 20,
                }],
                max_bytes: 1 << 20,
                have_data: false,
            };
            let result = match shard.call(owner, request).await {
                Ok(mut results) if results.len() == 1 => results.remove(0),
                other => return Err(format!("{topic}/{partition}: reading got {other:?}")),
            };
            if result.error != sluice_core::ErrorCode::None {
                return Err(format!(
                    "{topic}/{partition}: reading at {next} failed: {:?}",
                    result.error
                ));
            }
            let mut advanced = false;
            for batch in BatchIter::new(result.records.clone()) {
                let batch = batch.map_err(|e| format!("{topic}/{partition}: {e}"))?;
                next = batch.next_offset();
                advanced = true;
            }
            if !advanced {
                return Err(format!(
                    "{topic}/{partition}: nothing readable at {next}, below the high watermark {upto}"
                ));
            }
            all.extend_from_slice(&result.records);
        }
        Ok(all.freeze())
    }
}
