//! One seeded run: processes started, stepped, crashed and restarted over
//! one simulated disk, with the invariants checked after every step.
//!
//! Owns: [`SimConfig`] (what a seed decides), the step loop (each step one
//! action: a client operation, message deliveries, the clock moving, a disk
//! fault or a crash), the checks after every step and after every restart,
//! and the [`Report`] or [`Failure`] a run ends with.
//!
//! A process lifetime runs on a glommio executor of its own; a crash ends
//! that executor, which drops every task the process had (its parked long
//! polls, its in-flight calls, its clients' requests), then the disk
//! forgets what the crash loses and a new executor starts the node again.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use sluice_core::config::{FlushPolicy, NodeConfig};
use sluice_core::group::assignor::ServerAssignor;
use sluice_log::storage::memory::FaultOp;
use sluice_log::MemoryStorage;

use crate::client::{self, Clients, Op, ProduceOp};
use crate::consumers::ConsumerMember;
use crate::groups::GroupModel;
use crate::model::{Checks, Model, Tp};
use crate::shares::{ShareConsumer, ShareModel};
use crate::txns::{read_visible, TxnModel};
use sluice_core::share::state::SHARE_STATE_TOPIC;
use sluice_shard::simulated::node::{Node, NodeParts};
use sluice_shard::BrokenRule;

use crate::node::{data_dir, read_all};
use crate::trace::Trace;
use sluice_shard::simulated::Clock;
use sluice_shard::simulated::Rng;
use sluice_shard::simulated::SimMesh;

/// Client operations in flight at most.
const IN_FLIGHT_MAX: usize = 24;
/// Topics the run keeps at most.
const TOPICS_MAX: usize = 6;
/// Steps the final drain may take before the run calls the node stuck.
const DRAIN_STEPS_MAX: usize = 20_000;

/// What one seed decides about a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimConfig {
    pub seed: u64,
    pub steps: u64,
    /// Shards of the node (1–4).
    pub shards: u32,
    /// `log.flush=always` (otherwise `never`).
    pub flush_always: bool,
    /// Crashes, restarts and disk faults.
    pub faults: bool,
    /// The rule deliberately broken, if any ([`sluice_shard::Env::broken_rule`]).
    pub bug: Option<BrokenRule>,
    /// Longest delay of a message between shards.
    pub max_mesh_delay_ms: u64,
    /// Prints every client event (not part of the run: same trace).
    pub verbose: bool,
}

impl SimConfig {
    /// The run `seed` names, `steps` long.
    pub fn for_seed(seed: u64, steps: u64) -> SimConfig {
        let mut rng = Rng::new(seed ^ 0x05EE_D0FC_0F16_u64);
        SimConfig {
            seed,
            steps,
            shards: 1 + rng.below(4) as u32,
            flush_always: rng.chance(70),
            faults: true,
            bug: None,
            max_mesh_delay_ms: rng.below(20),
            verbose: false,
        }
    }

    /// The command that replays this run: the seed, and whatever differs
    /// from what the seed decides.
    pub fn replay_command(&self) -> String {
        let seeded = SimConfig::for_seed(self.seed, self.steps);
        let mut command = format!("scripts/sim --seed {} --steps {}", self.seed, self.steps);
        if self.shards != seeded.shards {
            command += &format!(" --shards {}", self.shards);
        }
        if self.flush_always != seeded.flush_always {
            command += if self.flush_always {
                " --flush always"
            } else {
                " --flush never"
            };
        }
        if let Some(bug) = self.bug {
            command += &format!(" --bug {}", bug.name());
        }
        command
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub steps: u64,
    pub restarts: u64,
    pub power_losses: u64,
    pub kills: u64,
    pub disk_faults: u64,
    pub produces: u64,
    pub produces_acked: u64,
    pub fetches: u64,
    /// Fetches served from a read started ahead (see sluice_log::read_ahead).
    pub read_aheads_used: u64,
    /// Passes of retention over every shard's partitions, and the rolls
    /// that wrote over a segment file retention kept
    /// (`log.recycle_segments`).
    pub retention_passes: u64,
    pub segments_recycled: u64,
    pub joins: u64,
    /// Heartbeats of KIP-848 members answered without error.
    pub consumer_heartbeats: u64,
    pub commits_acked: u64,
    pub transactions_committed: u64,
    pub transactions_aborted: u64,
    /// Records share consumers acquired, and acknowledged (accepted or
    /// rejected) without error.
    pub share_acquired: u64,
    pub share_acknowledged: u64,
    /// Dead-letter records of share groups checked at the end.
    pub share_dead_letters: u64,
    pub messages: u64,
    pub checks: Checks,
    pub trace_events: u64,
    pub trace_hash: u64,
}

/// A broken invariant, with what it takes to see it again.
#[derive(Debug, Clone)]
pub struct Failure {
    pub config: SimConfig,
    pub step: u64,
    pub message: String,
    /// The last client events before the failure.
    pub recent: Vec<String>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "seed {} failed at step {}: {}",
            self.config.seed, self.step, self.message
        )?;
        writeln!(f, "  config: {:?}", self.config)?;
        writeln!(f, "  last events:")?;
        for line in &self.recent {
            writeln!(f, "    {line}")?;
        }
        write!(f, "  replay: {}", self.config.replay_command())
    }
}

/// How a process lifetime ended.
enum Ended {
    Crashed,
    Finished,
}

/// Everything that outlives a process: the disk, the promises, the trace.
struct World {
    config: SimConfig,
    node_config: Rc<NodeConfig>,
    rng: Rng,
    disk: MemoryStorage,
    model: Rc<RefCell<Model>>,
    groups: Rc<RefCell<GroupModel>>,
    txns: Rc<RefCell<TxnModel>>,
    shares: Rc<RefCell<ShareModel>>,
    trace: Rc<RefCell<Trace>>,
    report: Report,
    now_ms: i64,
    step: u64,
    next_topic: u64,
    next_value: u64,
    lifetimes: u64,
    final_restart_done: bool,
}

/// Runs `config` to the end, or to its first broken invariant.
pub fn run(config: &SimConfig) -> Result<Report, Failure> {
    let mut node_config = NodeConfig {
        data_dir: data_dir(),
        ..NodeConfig::default()
    };
    // Few share partitions in memory: idle ones are dropped and read back
    // from their state through crashes and faults.
    node_config.shard.share_partitions_max = 3;
    node_config.log.flush = if config.flush_always {
        FlushPolicy::Always
    } else {
        FlushPolicy::Never
    };
    // Small buffers and caches: more write-outs, evictions and disk reads.
    node_config.log.write_buffer_bytes = 64 * 1024;
    node_config.shard.batch_cache_bytes = 256 * 1024;
    // Snapshots of the metadata log, and its trimming, with every crash.
    node_config.shard.metadata_snapshot_commands = 4;
    // Rebalances a run's clock gets through.
    node_config.group.initial_rebalance_delay_ms = 500;
    node_config.group.consumer_session_timeout_ms = crate::consumers::SESSION_TIMEOUT_MS;
    node_config.group.consumer_heartbeat_interval_ms = crate::consumers::HEARTBEAT_INTERVAL_MS;
    let mut world = World {
        config: config.clone(),
        node_config: Rc::new(node_config),
        rng: Rng::new(config.seed),
        disk: MemoryStorage::new(),
        model: Rc::new(RefCell::new(Model {
            flush_always: config.flush_always,
            ..Model::default()
        })),
        groups: Rc::new(RefCell::new(GroupModel::default())),
        txns: Rc::new(RefCell::new(TxnModel::default())),
        shares: Rc::new(RefCell::new(ShareModel::default())),
        trace: Rc::new(RefCell::new(Trace::new(config.verbose))),
        report: Report::default(),
        now_ms: 1_700_000_000_000,
        step: 0,
        next_topic: 0,
        next_value: 0,
        lifetimes: 0,
        final_restart_done: false,
    };
    loop {
        let executor = glommio::LocalExecutorBuilder::default()
            .make()
            .map_err(|e| failure(&world, format!("no executor: {e}")))?;
        let ended = executor.run(lifetime(&mut world));
        drop(executor);
        match ended {
            Ok(Ended::Finished) => break,
            Ok(Ended::Crashed) => world.report.restarts += 1,
            Err(message) => return Err(failure(&world, message)),
        }
    }
    let model = world.model.borrow();
    world.report.checks = model.checks;
    let groups = world.groups.borrow();
    world.report.checks.offset_fetches = groups.offset_fetches_checked;
    world.report.joins = groups.joins;
    world.report.consumer_heartbeats = groups.consumers.heartbeats;
    world.report.checks.consumer_ownership =
        groups.consumers.heartbeats + groups.consumers.ownership_checks;
    world.report.commits_acked = groups.commits_acked;
    let txns = world.txns.borrow();
    world.report.transactions_committed = txns.commits_acked;
    world.report.transactions_aborted = txns.aborts_acked;
    world.report.checks.read_committed = txns.reads_checked;
    world.report.checks.txn_offsets = txns.offsets_checked;
    let shares = world.shares.borrow();
    world.report.checks.shares = shares.checks;
    world.report.share_acquired = shares.acquired;
    world.report.share_acknowledged = shares.acknowledged;
    world.report.share_dead_letters = shares.dead_letters;
    world.report.steps = world.step;
    let trace = world.trace.borrow();
    world.report.trace_events = trace.events();
    world.report.trace_hash = trace.hash();
    Ok(world.report.clone())
}

fn failure(world: &World, message: String) -> Failure {
    Failure {
        config: world.config.clone(),
        step: world.step,
        message,
        recent: world.trace.borrow().recent().cloned().collect(),
    }
}

/// One process: start, verify what survived, step until a crash or the end.
async fn lifetime(world: &mut World) -> Result<Ended, String> {
    world.lifetimes += 1;
    let clock = Clock::new(world.now_ms);
    let mesh = SimMesh::new(
        clock.clone(),
        world.rng.next_u64(),
        world.config.max_mesh_delay_ms,
    );
    let id_seed = world.rng.next_u64();
    let parts = NodeParts {
        config: world.node_config.clone(),
        shards: world.config.shards,
        disk: world.disk.clone(),
        clock: clock.clone(),
        mesh: mesh.clone(),
        id_seed,
        broken_rule: world.config.bug,
    };
    let node = Node::boot(parts, &mut world.rng).await?;
    world
        .trace
        .borrow_mut()
        .event(&format!("started, lifetime {}", world.lifetimes));
    verify_everything(world, &node).await?;
    let clients = Clients::new(
        node.shards.clone(),
        world.model.clone(),
        world.groups.clone(),
        world.txns.clone(),
        world.shares.clone(),
        world.trace.clone(),
    );
    let mut last_log_end: BTreeMap<Tp, i64> = BTreeMap::new();
    let ended = loop {
        if world.step >= world.config.steps {
            if world.final_restart_done {
                break Ended::Finished;
            }
            // The end: let everything finish, then one last SIGKILL and
            // restart, whose verification reads every partition (disk
            // faults are cleared by then, so none is offline).
            drain(world, &node, &clients).await?;
            // Every share partition consumed to its end, and checked.
            if !world.shares.borrow().used.is_empty() {
                client::spawn(&clients, Op::ShareClose);
                drain(world, &node, &clients).await?;
            }
            world.final_restart_done = true;
            world.rng = Rng::new(world.rng.next_u64());
            world.disk.crash_keep_all();
            world.disk.clear_faults();
            world.model.borrow_mut().crashed();
            world.groups.borrow_mut().crashed();
            world.txns.borrow_mut().crashed();
            world.shares.borrow_mut().crashed();
            world.trace.borrow_mut().event("final SIGKILL");
            break Ended::Crashed;
        }
        world.step += 1;
        world.trace.borrow_mut().at_step(world.step);
        if let Some(ended) = step(world, &node, &clients).await? {
            break ended;
        }
        node.settle().await;
        if let Some(message) = clients.failure.borrow().clone() {
            return Err(message);
        }
        check_offsets(world, &node, &mut last_log_end)?;
    };
    world.now_ms = clock.now_ms();
    world.report.produces += clients.produced.get();
    world.report.produces_acked += clients.acked.get();
    world.report.fetches += clients.fetches.get();
    for shard in &node.shards {
        let stats = shard.stats();
        world.report.read_aheads_used += stats.read_ahead_used;
        world.report.segments_recycled += stats.segments_recycled;
    }
    world.report.messages += mesh.sent();
    if mesh.overflowed() {
        return Err("a mesh queue overflowed".into());
    }
    Ok(ended)
}

/// One action.
async fn step(
    world: &mut World,
    node: &Node,
    clients: &Rc<Clients>,
) -> Result<Option<Ended>, String> {
    let roll = world.rng.below(100);
    let busy = clients.in_flight.get() >= IN_FLIGHT_MAX;
    match roll {
        0..=39 if !busy => {
            if let Some(op) = client_op(world, node) {
                client::spawn(clients, op);
            }
        }
        0..=69 => {
            let max = 1 + world.rng.below(4) as usize;
            node.deliver(&mut world.rng, max).await;
        }
        70..=95 => {
            // Mostly small moves (messages, long polls); sometimes seconds
            // (rebalance delays, heartbeats, sessions).
            let roll = world.rng.below(10);
            if roll < 5 {
                node.advance_to_next_due();
            } else {
                let max_ms = if roll < 9 { 100 } else { 4000 };
                let to = node.clock.now_ms() + world.rng.below(max_ms + 1) as i64;
                node.clock.advance_to(to);
            }
        }
        96 if world.config.faults => disk_fault(world),
        97 if world.config.faults => return Ok(Some(crash(world, node))),
        98 => {
            // The broker's periodic check, on every shard: topics with
            // `retention.bytes` lose their oldest segments, every topic
            // its records older than the default 7 days (the virtual clock
            // passes them), and the files of deleted segments become the
            // spares later rolls write over.
            for shard in &node.shards {
                shard.apply_retention_all().await;
            }
            world.report.retention_passes += 1;
        }
        _ => {}
    }
    Ok(None)
}

/// A client operation on what the model knows, or `None` when there is
/// nothing to do it on.
fn client_op(world: &mut World, node: &Node) -> Option<Op> {
    let rng = &mut world.rng;
    let entry = rng.below(node.shards.len() as u64) as u32;
    let model = world.model.borrow();
    let topics: Vec<(String, i32)> = model
        .topics
        .iter()
        .filter(|(t, _)| !model.deleting.contains(*t))
        .map(|(t, p)| (t.clone(), *p))
        .collect();
    let roll = rng.below(100);
    if topics.is_empty() || (roll < 4 && topics.len() < TOPICS_MAX) {
        let name = format!("t{}", world.next_topic);
        // Every other topic with small segments keeps 32 KiB: decided by
        // its number, drawing nothing more from the seed's generator.
        let retention = world.next_topic % 2 == 1;
        world.next_topic += 1;
        let partitions = 1 + rng.below(4) as i32;
        // Small segments on some topics: rolls, sealed segments, reads
        // from disk; on half of those, retention by size too.
        let mut configs = Vec::new();
        if rng.chance(50) {
            configs.push(("segment.bytes".to_owned(), "16384".to_owned()));
            if retention {
                configs.push(("retention.bytes".to_owned(), "32768".to_owned()));
            }
        }
        return Some(Op::CreateTopic {
            entry,
            name,
            partitions,
            configs,
        });
    }
    let has_offsets_topic = node.shards[entry as usize]
        .metadata()
        .topics
        .contains_key(sluice_shard::group::OFFSETS_TOPIC);
    if roll >= 90 {
        // Groups: simple commits to real partitions, offset fetches, members.
        if !has_offsets_topic {
            return Some(Op::EnsureOffsetsTopic { entry });
        }
        let (topic, partitions) = rng.pick(&topics)?.clone();
        let tp = (topic, rng.below(partitions as u64) as i32);
        return Some(match roll {
            90..=93 => {
                let group = format!("c{}", rng.below(3));
                let sent = world
                    .groups
                    .borrow()
                    .sent
                    .get(&(group.clone(), tp.clone()))
                    .copied()
                    .unwrap_or(0);
                Op::SimpleCommit {
                    entry,
                    group,
                    tp,
                    offset: sent + 1 + rng.below(5) as i64,
                }
            }
            94..=95 => {
                let group = match rng.below(3) {
                    0 => format!("c{}", rng.below(3)),
                    1 => format!("m{}", rng.below(2)),
                    _ => format!("k{}", rng.below(2)),
                };
                Op::FetchOffsets { entry, group }
            }
            96..=97 => {
                // A member a crash ended, carried on (half the time).
                let resumable: Vec<(String, String, String)> = world
                    .groups
                    .borrow()
                    .consumers
                    .resumable()
                    .map(|(m, g, t)| (m.to_owned(), g.to_owned(), t.to_owned()))
                    .collect();
                if !resumable.is_empty() && rng.chance(50) {
                    let (member_id, group, topic) = rng.pick(&resumable)?.clone();
                    return Some(Op::ConsumerMember(ConsumerMember {
                        entry,
                        group,
                        member_id,
                        topic,
                        rounds: 2 + rng.below(6) as u32,
                        leave: rng.chance(50),
                        // Its record kept the one it named.
                        assignor: None,
                        instance_id: None,
                    }));
                }
                world.next_value += 1;
                Op::ConsumerMember(ConsumerMember {
                    entry,
                    group: format!("k{}", rng.below(2)),
                    member_id: format!("km{}", world.next_value),
                    // Mostly one topic, so that members share partitions
                    // to hand over.
                    topic: if rng.chance(70) {
                        topics[0].0.clone()
                    } else {
                        tp.0
                    },
                    rounds: 2 + rng.below(6) as u32,
                    leave: rng.chance(50),
                    assignor: [
                        None,
                        Some(ServerAssignor::Uniform),
                        Some(ServerAssignor::Range),
                    ][rng.below(3) as usize],
                    // A few instance ids, so that static members come back
                    // in another's place (or are refused while it holds it).
                    instance_id: rng.chance(30).then(|| format!("i{}", rng.below(3))),
                })
            }
            _ => {
                world.next_value += 1;
                Op::Member {
                    entry,
                    group: format!("m{}", rng.below(2)),
                    suffix: format!("s{}", world.next_value),
                    rounds: 1 + rng.below(3) as u32,
                    leave: rng.chance(50),
                }
            }
        });
    }
    let (topic, partitions) = rng.pick(&topics)?.clone();
    if roll < 6 && topics.len() > 2 {
        return Some(Op::DeleteTopic { entry, name: topic });
    }
    if roll < 8 {
        let total = partitions + 1 + rng.below(2) as i32;
        return Some(Op::CreatePartitions {
            entry,
            name: topic,
            total,
        });
    }
    let tp = (topic, rng.below(partitions as u64) as i32);
    match roll {
        60..=62 => {
            // A transaction over one or two partitions (of any topics).
            let mut writes = Vec::new();
            for _ in 0..1 + rng.below(2) {
                let (topic, partitions) = rng.pick(&topics)?.clone();
                let tp = (topic, rng.below(partitions as u64) as i32);
                if writes.iter().any(|(t, _)| *t == tp) {
                    continue;
                }
                let values = (0..1 + rng.below(3))
                    .map(|_| {
                        world.next_value += 1;
                        client::value(world.config.seed, world.next_value, 40)
                    })
                    .collect();
                writes.push((tp, values));
            }
            Some(Op::Transaction {
                entry,
                transactional_id: format!("x{}", rng.below(3)),
                writes,
                commit: rng.chance(60),
                late: rng.chance(30).then(|| {
                    world.next_value += 1;
                    client::value(world.config.seed, world.next_value, 40)
                }),
            })
        }
        63..=64 => Some(Op::ReadCommitted { entry, tp }),
        85..=87 => {
            let has_state_topic = node.shards[entry as usize]
                .metadata()
                .topics
                .contains_key(SHARE_STATE_TOPIC);
            if !has_state_topic {
                return Some(Op::EnsureShareStateTopic { entry });
            }
            world.next_value += 1;
            Some(Op::ShareConsume(ShareConsumer {
                entry,
                group: format!("q{}", rng.below(2)),
                member: format!("sm{}", world.next_value),
                tp,
                rounds: 1 + rng.below(4) as u32,
                close: rng.chance(40),
                seed: rng.next_u64(),
            }))
        }
        8..=59 => {
            let count = 1 + rng.below(5);
            let len = rng.below(3000) as usize;
            let values = (0..count)
                .map(|_| {
                    world.next_value += 1;
                    client::value(world.config.seed, world.next_value, len)
                })
                .collect();
            let idempotent = rng.chance(35);
            Some(Op::Produce(ProduceOp {
                entry,
                tp,
                values,
                acks: if rng.chance(50) { 1 } else { -1 },
                idempotent,
                retry: idempotent && rng.chance(40),
            }))
        }
        65..=84 => {
            let end = model.acked_end(&tp);
            let drawn = rng.below(end as u64 + 3) as i64;
            // Every other fetch reads on from where the partition's last
            // one ended, as a consumer does (what read-ahead serves); the
            // draws stay the same, so other seeds' schedules do not move.
            let offset = match model.fetched_next.get(&tp) {
                Some(&next) if drawn % 2 == 0 => next,
                _ => drawn,
            };
            let max_wait_ms = if rng.chance(50) { rng.below(500) } else { 0 };
            Some(Op::Fetch {
                entry,
                tp,
                offset,
                max_wait_ms,
            })
        }
        _ => Some(Op::ListOffsets { entry, tp }),
    }
}

/// Makes writes (and the preallocations before them) or syncs of one
/// partition fail until the next restart.
fn disk_fault(world: &mut World) {
    let model = world.model.borrow();
    let topics: Vec<(&String, &i32)> = model.topics.iter().collect();
    let Some((mut topic, mut partitions)) =
        world.rng.pick(&topics).map(|(t, p)| ((*t).clone(), **p))
    else {
        return;
    };
    // Sometimes the groups' own log: commits, group records.
    if world.rng.chance(15) {
        topic = sluice_shard::group::OFFSETS_TOPIC.to_owned();
        partitions = crate::groups::OFFSETS_PARTITIONS;
    }
    let partition = world.rng.below(partitions as u64);
    let op = if world.rng.chance(50) {
        FaultOp::Sync
    } else {
        FaultOp::Write
    };
    let dir = format!("/{topic}/{partition}/");
    world.disk.fail_path_ops(&dir, op);
    if op == FaultOp::Write {
        world.disk.fail_path_ops(&dir, FaultOp::Allocate);
    }
    world.report.disk_faults += 1;
    world
        .trace
        .borrow_mut()
        .event(&format!("disk fault: {op:?} on {topic}/{partition}"));
}

/// Ends the process: a power loss (unsynced data may go, the last write may
/// tear) or a SIGKILL (everything written survives).
fn crash(world: &mut World, node: &Node) -> Ended {
    let power_loss = world.rng.chance(50);
    if power_loss {
        world.disk.crash(world.rng.next_u64());
        world.report.power_losses += 1;
    } else {
        world.disk.crash_keep_all();
        world.report.kills += 1;
    }
    world.disk.clear_faults();
    node.mesh.clear();
    node.clock.clear();
    world.model.borrow_mut().crashed();
    world.groups.borrow_mut().crashed();
    world.txns.borrow_mut().crashed();
    world.shares.borrow_mut().crashed();
    world.trace.borrow_mut().event(&format!(
        "crash: {}",
        if power_loss { "power loss" } else { "SIGKILL" }
    ));
    Ended::Crashed
}

/// Per-step checks of every owned partition's offsets.
fn check_offsets(
    world: &mut World,
    node: &Node,
    last_log_end: &mut BTreeMap<Tp, i64>,
) -> Result<(), String> {
    let mut model = world.model.borrow_mut();
    for shard in &node.shards {
        for p in shard.partition_offsets() {
            model.checks.offsets += 1;
            let tp = (p.topic.clone(), p.partition);
            if p.high_watermark > p.log_end_offset {
                return Err(format!(
                    "{tp:?}: high watermark {} past the log end {}",
                    p.high_watermark, p.log_end_offset
                ));
            }
            if p.log_start_offset > p.high_watermark {
                return Err(format!(
                    "{tp:?}: log start {} past the high watermark {}",
                    p.log_start_offset, p.high_watermark
                ));
            }
            if p.flush_always && p.high_watermark != p.durable_offset {
                return Err(format!(
                    "{tp:?}: under log.flush=always the high watermark {} is not the durable offset {}",
                    p.high_watermark, p.durable_offset
                ));
            }
            let before = last_log_end.insert(tp.clone(), p.log_end_offset);
            if before.is_some_and(|b| b > p.log_end_offset) {
                return Err(format!(
                    "{tp:?}: the log end went back from {before:?} to {}",
                    p.log_end_offset
                ));
            }
        }
    }
    Ok(())
}

/// Lets every operation finish: delivers everything, fires every timer.
async fn drain(world: &mut World, node: &Node, clients: &Rc<Clients>) -> Result<(), String> {
    for _ in 0..DRAIN_STEPS_MAX {
        if clients.in_flight.get() == 0 && node.mesh.waiting() == 0 {
            return Ok(());
        }
        if node.deliver(&mut world.rng, 64).await == 0 && !node.advance_to_next_due() {
            node.settle().await;
            if clients.in_flight.get() > 0 && node.mesh.waiting() == 0 && node.clock.armed() == 0 {
                return Err(format!(
                    "stuck: {} client operations wait with no message or timer left to wake them",
                    clients.in_flight.get()
                ));
            }
        }
        node.settle().await;
        if let Some(message) = clients.failure.borrow().clone() {
            return Err(message);
        }
    }
    Err("the drain did not finish".into())
}

/// After a start and at the end: the metadata agrees with what was
/// acknowledged, every shard has the same metadata, and every partition
/// reads back dense, once-each and with every promised record.
async fn verify_everything(world: &mut World, node: &Node) -> Result<(), String> {
    let metadata = node.shards[0].metadata().clone();
    {
        let mut model = world.model.borrow_mut();
        model.checks.metadata += 1;
        for shard in &node.shards[1..] {
            if *shard.metadata() != metadata {
                return Err(format!(
                    "shard {} has other metadata than shard 0",
                    shard.id
                ));
            }
        }
        for (topic, partitions) in &model.topics {
            match metadata.topics.get(topic) {
                Some(meta) if meta.partitions.len() as i32 >= *partitions => {}
                Some(meta) => {
                    return Err(format!(
                        "topic {topic} has {} partitions; {partitions} were acknowledged",
                        meta.partitions.len()
                    ))
                }
                None if model.deleting.contains(topic) => {}
                None => return Err(format!("the acknowledged topic {topic} is gone")),
            }
        }
        for topic in &model.deleted {
            if metadata.topics.contains_key(topic) {
                return Err(format!("the deleted topic {topic} is back"));
            }
        }
        // What the metadata says now is what clients know: creations that
        // were not acknowledged but happened, deletions likewise.
        let deleting: Vec<String> = model.deleting.iter().cloned().collect();
        for topic in deleting {
            if !metadata.topics.contains_key(&topic) {
                model.topics.remove(&topic);
                model.deleted.insert(topic.clone());
                model.forget_topic(&topic);
            }
        }
        model.deleting.clear();
        for (topic, meta) in &metadata.topics {
            // The dead-letter topic is the share groups' (checked by
            // shares::close_all), not the clients'.
            if !topic.starts_with("__") && topic != crate::shares::DLQ_TOPIC {
                model
                    .topics
                    .insert(topic.clone(), meta.partitions.len() as i32);
            }
        }
    }
    let topics: Vec<(String, i32)> = world
        .model
        .borrow()
        .topics
        .iter()
        .map(|(t, p)| (t.clone(), *p))
        .collect();
    verify_group_offsets(world, node).await?;
    let may_have_lost = !world.config.flush_always;
    for (topic, partitions) in topics {
        for partition in 0..partitions {
            let broker = node.shards[0].config.node_id;
            let Ok(owner) = metadata.leader_shard(broker, &topic, partition) else {
                continue;
            };
            let offsets = node.shards[owner as usize]
                .partition_offsets()
                .into_iter()
                .find(|p| p.topic == topic && p.partition == partition)
                .ok_or_else(|| format!("{topic}/{partition} is not open on its owner {owner}"))?;
            let records = read_all(
                node,
                owner,
                &topic,
                partition,
                offsets.log_start_offset,
                offsets.high_watermark,
            )
            .await?;
            let tp = (topic.clone(), partition);
            world.model.borrow_mut().check_partition(
                &tp,
                offsets.log_start_offset,
                offsets.high_watermark,
                &records,
                may_have_lost,
            )?;
            // What a crash was allowed to lose, no transaction promises.
            world
                .txns
                .borrow_mut()
                .forget_lost(&world.model.borrow(), &tp);
            let shard = &node.shards[owner as usize];
            if let Some(read) = read_visible(shard, owner, &tp).await? {
                let now = shard.env().now_ms();
                world.txns.borrow_mut().check_read(&tp, &read, now)?;
            }
        }
    }
    Ok(())
}

/// After a start: every group's acknowledged commits are still there (or
/// a later commit that was sent), read on the coordinator.
async fn verify_group_offsets(world: &mut World, node: &Node) -> Result<(), String> {
    let groups: std::collections::BTreeSet<String> = world
        .groups
        .borrow()
        .committed
        .keys()
        .map(|(g, _)| g.clone())
        .collect();
    for group in groups {
        let acked: BTreeMap<Tp, i64> = {
            let model = world.model.borrow();
            let acked = world.groups.borrow().acked_of(&group);
            acked
                .into_iter()
                .filter(|(tp, _)| !model.deleted.contains(&tp.0))
                .collect()
        };
        let fetched = crate::groups::committed_offsets(&node.shards, &group).await?;
        world
            .groups
            .borrow_mut()
            .check_fetched(&group, &acked, &fetched)?;
    }
    Ok(())
}
