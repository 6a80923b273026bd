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

use super::{Clock, Rng, SimEnv, SimMesh};
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

impl Node {
    /// A node of `shards` shards over an empty disk.
    pub async fn start(shards: u32, flush: FlushPolicy) -> Node {
        Node::start_on(MemoryStorage::new(), shards, flush, START_MS).await
    }

    /// A node over `disk` (empty, or as a crash left it), its clock at
    /// `now_ms`.
    pub async fn start_on(
        disk: MemoryStorage,
        shards: u32,
        flush: FlushPolicy,
        now_ms: i64,
    ) -> Node {
        let clock = Clock::new(now_ms);
        // No delay between shards: a test moves the clock only for timers.
        let mesh = SimMesh::new(clock.clone(), now_ms as u64, 0);
        let mut config = NodeConfig {
            data_dir: data_dir(),
            ..NodeConfig::default()
        };
        config.log.flush = flush;
        let config = Rc::new(config);
        let mut made = Vec::new();
        for id in 0..shards {
            let parts = ShardParts {
                env: Rc::new(SimEnv::new(clock.clone(), now_ms as u64 + id as u64, false)),
                disk: Disk::Memory(disk.clone()),
                transport: Transport::Link(mesh.clone()),
            };
            let shard = Shard::new(id, shards, config.clone(), parts)
                .await
                .expect("a shard starts on the in-memory disk");
            made.push(Rc::new(shard));
        }
        let node = Node {
            shards: made,
            mesh,
            clock,
            disk,
            rng: RefCell::new(Rng::new(1)),
        };
        let controller = node.shards[0].clone();
        let state = controller
            .controller_snapshot()
            .expect("shard 0 is the controller");
        node.drive(async move {
            for to in 0..shards {
                controller
                    .call(to, InstallSnapshot(Box::new(state.clone())))
                    .await
                    .expect("the mesh reaches every shard");
            }
        })
        .await;
        node
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
            if !self.deliver_all().await {
                let next = [self.mesh.next_due_ms(), self.clock.next_deadline_ms()]
                    .into_iter()
                    .flatten()
                    .min();
                match next {
                    Some(at) => self.clock.advance_to(at),
                    None => panic!("the work waits with no message or timer to wake it"),
                }
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

    /// Delivers every message due now; true if there was one.
    pub async fn deliver_all(&self) -> bool {
        let mut any = false;
        loop {
            let next = self.mesh.take_due(&mut self.rng.borrow_mut());
            let Some((to, msg)) = next else {
                return any;
            };
            self.shards[to as usize].receive(msg).await;
            any = true;
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
            configs: Vec::new(),
            validate_only: false,
        };
        self.propose(0, proposal)
            .await
            .expect("the topic is created");
    }
}
