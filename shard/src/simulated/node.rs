//! A whole node on one thread for tests: every shard over one in-memory
//! disk, a virtual clock and a simulated mesh with no delay, started as the
//! runtime starts it, and a driver that runs a test's work to completion.
//!
//! Owns: [`Node`] (its shards, mesh, clock and disk) and
//! [`Node::drive`], which lets the node's tasks run, delivers every message
//! due, and moves the clock to the next message or timer whenever nothing
//! else can happen, until the work is done. Tests of the shard core
//! (`shard/tests/`) and of the Kafka handlers over it (`net/tests/`) use
//! it; nothing here touches a real disk, socket or clock.

use std::cell::RefCell;
use std::future::Future;
use std::path::PathBuf;
use std::rc::Rc;

use sluice_core::config::{FlushPolicy, NodeConfig};
use sluice_core::ErrorCode;
use sluice_log::MemoryStorage;

use super::{Clock, ClockTime, Rng, SimEnv, SimMesh};
use crate::env::BrokenRule;
use crate::message::{InstallSnapshot, Proposal, Propose};
use crate::shard::{Shard, ShardParts};
use crate::store::Disk;
use crate::transport::Transport;

/// The clock of a node [`Node::start`] makes (ms since the epoch).
pub const START_MS: i64 = 1_700_000_000_000;

/// Polls of the other tasks per settle.
const SETTLE_YIELDS: usize = 12;

/// A node of several shards on one thread.
pub struct Node {
    pub shards: Vec<Rc<Shard>>,
    pub mesh: Rc<SimMesh>,
    pub clock: Rc<Clock>,
    pub disk: MemoryStorage,
    rng: RefCell<Rng>,
}

/// The data directory of a test node, on its in-memory disk.
pub fn data_dir() -> PathBuf {
    PathBuf::from("/data")
}

/// What a simulated process is made of.
pub struct NodeParts {
    pub config: Rc<NodeConfig>,
    pub shards: u32,
    pub disk: MemoryStorage,
    pub clock: Rc<Clock>,
    pub mesh: Rc<SimMesh>,
    /// Seeds each shard's ids (shard `i`'s: this with `i` in its top byte).
    pub id_seed: u64,
    /// The rule deliberately broken, if any ([`crate::Env::broken_rule`]).
    pub broken_rule: Option<BrokenRule>,
}

impl Node {
    /// A node of `shards` shards over an empty disk.
    pub async fn start(shards: u32, flush: FlushPolicy) -> Node {
        Node::start_on(MemoryStorage::new(), shards, flush, START_MS).await
    }

    /// A node over `disk` (empty, or as a crash left it), its clock at
    /// `now_ms`, with no delay between shards (a test moves the clock only
    /// for timers).
    pub async fn start_on(
        disk: MemoryStorage,
        shards: u32,
        flush: FlushPolicy,
        now_ms: i64,
    ) -> Node {
        let mut config = NodeConfig {
            data_dir: data_dir(),
            ..NodeConfig::default()
        };
        config.log.flush = flush;
        let clock = Clock::new(now_ms);
        let parts = NodeParts {
            config: Rc::new(config),
            shards,
            disk,
            mesh: SimMesh::new(clock.clone(), now_ms as u64, 0),
            clock,
            id_seed: now_ms as u64,
            broken_rule: None,
        };
        Node::boot(parts, &mut Rng::new(1))
            .await
            .expect("a node starts on the in-memory disk")
    }

    /// Starts a process as `runtime::run` does: every shard (shard 0
    /// replays the metadata log), then shard 0 sends each its metadata;
    /// messages are delivered in an order `rng` picks, the clock moved to
    /// the next one due when none is.
    pub async fn boot(parts: NodeParts, rng: &mut Rng) -> Result<Node, String> {
        let NodeParts {
            config,
            shards,
            disk,
            clock,
            mesh,
            id_seed,
            broken_rule,
        } = parts;
        // The controller quorum's timers and election draws run on the
        // same virtual clock and seed.
        sluice_quorum::runtime::set_timebase(Rc::new(ClockTime(clock.clone())));
        sluice_quorum::runtime::seed_rng(id_seed);
        let mut made = Vec::with_capacity(shards as usize);
        for id in 0..shards {
            let parts = ShardParts {
                env: Rc::new(SimEnv::new(
                    clock.clone(),
                    id_seed ^ ((id as u64) << 56),
                    broken_rule,
                )),
                disk: Disk::Memory(disk.clone()),
                transport: Transport::Link(mesh.clone()),
            };
            // Shard 0 starts the controller quorum member, whose election
            // and start-up wait run on the virtual clock: move it along.
            let started = Rc::new(RefCell::new(None));
            let slot = started.clone();
            let config = config.clone();
            glommio::spawn_local(async move {
                *slot.borrow_mut() = Some(Shard::new(id, shards, config, parts).await);
            })
            .detach();
            let shard = loop {
                for _ in 0..SETTLE_YIELDS {
                    futures_lite::future::yield_now().await;
                }
                if let Some(result) = started.borrow_mut().take() {
                    break result.map_err(|e| format!("shard {id} did not start: {e}"))?;
                }
                match clock.next_deadline_ms() {
                    Some(at) => clock.advance_to(at),
                    None => return Err(format!("shard {id} waits for nothing while starting")),
                }
            };
            made.push(Rc::new(shard));
        }
        let node = Node {
            shards: made,
            mesh,
            clock,
            disk,
            rng: RefCell::new(Rng::new(1)),
        };
        // The broker registers before the handshake, as in production.
        let controller = node.shards[0].clone();
        node.drive(async move { controller.join_cluster().await })
            .await?;
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

    /// Runs `work` to completion, delivering messages and moving the clock
    /// to the next thing due whenever nothing else can happen. Panics if
    /// it never completes (a lost wake-up).
    pub async fn drive<T: 'static>(&self, work: impl Future<Output = T> + 'static) -> T {
        let out = Rc::new(RefCell::new(None));
        let slot = out.clone();
        glommio::spawn_local(async move {
            *slot.borrow_mut() = Some(work.await);
        })
        .detach();
        for _ in 0..100_000 {
            self.settle().await;
            if let Some(value) = out.borrow_mut().take() {
                return value;
            }
            if !self.deliver_all().await && !self.advance_to_next_due() {
                panic!("the work waits with no message or timer to wake it");
            }
        }
        panic!("the work did not finish");
    }

    /// Lets every other task run until it waits (or for a bounded while).
    pub async fn settle(&self) {
        for _ in 0..SETTLE_YIELDS {
            futures_lite::future::yield_now().await;
        }
    }

    /// Delivers every message due now, in an order the node's own seed
    /// picks; true if there was one.
    pub async fn deliver_all(&self) -> bool {
        let mut rng = self.rng.borrow().clone();
        let delivered = self.deliver(&mut rng, usize::MAX).await;
        *self.rng.borrow_mut() = rng;
        delivered > 0
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

    /// Moves the clock to the next message or timer due; false when none is.
    pub fn advance_to_next_due(&self) -> bool {
        let next = [self.mesh.next_due_ms(), self.clock.next_deadline_ms()]
            .into_iter()
            .flatten()
            .min();
        match next {
            Some(at) => {
                self.clock.advance_to(at);
                true
            }
            None => false,
        }
    }

    /// A metadata change through shard `entry`, as the admin handlers send
    /// it: the first producer id for AllocateProducerId, else 0.
    pub async fn propose(&self, entry: usize, proposal: Proposal) -> Result<i64, ErrorCode> {
        let shard = self.shards[entry].clone();
        self.drive(async move { shard.call(0, Propose(proposal)).await })
            .await
            .expect("the controller is reachable")
            .map_err(|(code, _)| code)
    }

    /// Creates topic `name` with `partitions` partitions.
    pub async fn create_topic(&self, name: &str, partitions: i32) {
        let proposal = Proposal::CreateTopic {
            name: name.into(),
            partitions,
            replication_factor: -1,
            assignments: Vec::new(),
            configs: Vec::new(),
            validate_only: false,
        };
        self.propose(0, proposal)
            .await
            .expect("the topic is created");
    }
}
