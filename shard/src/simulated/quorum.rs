//! A controller quorum of several voters on one thread: each voter a
//! process with its own in-memory disk, all on one virtual clock and one
//! simulated network, with crashes, restarts and partitions, and the
//! checks that must hold whatever happens.
//!
//! Owns: [`Voters`] (boot, crash, restart, partition, write, drive the
//! clock) and its record of what each voter applied at each Raft index,
//! of every acknowledged write, and of the leader each voter saw in each
//! term.
//!
//! Every voter is also a broker: [`Voters::heartbeats`] has each voter the
//! network connects to the leader heartbeat, and the leader fence brokers
//! silent for a session and unfence those heard again (the same
//! [`Liveness`] rules as production), through the quorum like any change.
//!
//! Invariants it checks ([`Voters::violations`]): no two voters apply
//! different commands at the same index (in any of their lives); no term
//! has two leaders; every voter's metadata keeps its own invariants
//! (replicas on registered brokers, leaders in sync and not fenced); after
//! the network heals and every voter is up, every voter's state holds every
//! acknowledged write and no broker stays fenced.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use sluice_core::metadata::liveness::Liveness;
use sluice_core::metadata::{
    BrokerId, BrokerRegistration, MetadataCommand, MetadataState, Replica,
};
use sluice_log::{Disk, MemoryStorage};
use sluice_quorum::openraft::{AsyncRuntime, ServerState};
use sluice_quorum::runtime::{self, LocalRuntime, Process};
use sluice_quorum::simulated::{Faults, SimNet};
use sluice_quorum::state_machine::{Applier, LocalFuture};
use sluice_quorum::{MetadataMachine, Network, NodeId, Peer, QuorumConfig, Raft, RaftLogStore};

use super::{Clock, ClockTime, Rng};

/// Polls of the other tasks per settle.
const SETTLE_YIELDS: usize = 48;

/// Voter `id` as a broker.
fn sim_broker(id: NodeId) -> BrokerRegistration {
    BrokerRegistration {
        id: id as BrokerId,
        incarnation: [id as u8; 16],
        rack: None,
        host: "127.0.0.1".into(),
        port: 9092,
        rpc_addr: format!("127.0.0.1:{}", 9090 + id),
        shards: 1,
        durable_logs: false,
    }
}

/// Where a voter keeps its quorum files on its disk.
fn quorum_dir() -> PathBuf {
    PathBuf::from("/data/__cluster_metadata")
}

#[derive(Default)]
struct Record {
    /// Per voter: Raft index -> the command applied there.
    applied: BTreeMap<NodeId, BTreeMap<u64, String>>,
    /// Snapshots installed, per voter.
    installed: BTreeMap<NodeId, u64>,
    /// Term -> the leader some voter saw in it.
    leaders: BTreeMap<u64, NodeId>,
    violations: Vec<String>,
}

struct Recorder {
    id: NodeId,
    record: Rc<RefCell<Record>>,
}

impl Applier for Recorder {
    fn applied(
        &self,
        index: u64,
        command: &MetadataCommand,
        _state: &MetadataState,
    ) -> LocalFuture {
        let mut record = self.record.borrow_mut();
        let line = command.to_string();
        for (other, applied) in &record.applied {
            if let Some(theirs) = applied.get(&index) {
                if *theirs != line {
                    let v = format!(
                        "voter {} applied {line:?} at index {index} where voter {other} applied {theirs:?}",
                        self.id
                    );
                    record.violations.push(v);
                    break;
                }
            }
        }
        record
            .applied
            .entry(self.id)
            .or_default()
            .insert(index, line);
        Box::pin(async {})
    }

    fn installed(&self, _state: &MetadataState) -> LocalFuture {
        *self
            .record
            .borrow_mut()
            .installed
            .entry(self.id)
            .or_default() += 1;
        Box::pin(async {})
    }
}

/// A running voter: its Raft and its state machine.
type Running = Option<(Rc<Raft>, MetadataMachine)>;

struct Slot {
    disk: MemoryStorage,
    process: Process,
    raft: Rc<RefCell<Running>>,
}

/// Several voters of one controller quorum.
pub struct Voters {
    pub clock: Rc<Clock>,
    pub net: SimNet,
    config: QuorumConfig,
    members: Vec<NodeId>,
    slots: RefCell<BTreeMap<NodeId, Slot>>,
    record: Rc<RefCell<Record>>,
    /// Acknowledged writes: topic names whose creation committed.
    acknowledged: RefCell<BTreeSet<String>>,
    rng: RefCell<Rng>,
    /// The deliberately broken durability rule (see
    /// [`RaftLogStore::set_acks_before_sync`]).
    acks_before_sync: bool,
    /// The leader whose heartbeat record `liveness` is, and the record.
    liveness: RefCell<(Option<NodeId>, Liveness)>,
}

/// Brokers silent this long are fenced (virtual milliseconds).
pub const SESSION_TIMEOUT_MS: u64 = 1_500;

impl Voters {
    /// `count` voters (ids 1..=count), booted and initialized as one
    /// quorum; every choice from `seed`.
    pub async fn start(count: u64, seed: u64, config: QuorumConfig, faults: Faults) -> Voters {
        Voters::start_with(count, seed, config, faults, false).await
    }

    /// [`Voters::start`], with every voter's log acknowledging appends
    /// before they are durable when `acks_before_sync` (the checks must
    /// catch it).
    pub async fn start_with(
        count: u64,
        seed: u64,
        config: QuorumConfig,
        faults: Faults,
        acks_before_sync: bool,
    ) -> Voters {
        let clock = Clock::new(super::node::START_MS);
        runtime::set_timebase(Rc::new(ClockTime(clock.clone())));
        runtime::seed_rng(seed);
        let members: Vec<NodeId> = (1..=count).collect();
        let voters = Voters {
            clock,
            net: SimNet::new(seed ^ 0x5eed, faults),
            config,
            slots: RefCell::new(BTreeMap::new()),
            record: Rc::default(),
            acknowledged: RefCell::default(),
            rng: RefCell::new(Rng::new(seed)),
            members: members.clone(),
            acks_before_sync,
            liveness: RefCell::new((None, Liveness::new(SESSION_TIMEOUT_MS))),
        };
        for id in &members {
            voters.slots.borrow_mut().insert(
                *id,
                Slot {
                    disk: MemoryStorage::new(),
                    process: Process::new(),
                    raft: Rc::default(),
                },
            );
            voters.boot(*id).await;
        }
        let first = voters.raft(members[0]).expect("voter 1 is up");
        let nodes: BTreeMap<NodeId, Peer> = members
            .iter()
            .map(|id| {
                (
                    *id,
                    Peer {
                        rpc_addr: format!("127.0.0.1:{}", 9090 + id),
                    },
                )
            })
            .collect();
        voters
            .drive(
                async move { first.initialize(nodes).await.map_err(|e| e.to_string()) },
                10_000,
            )
            .await
            .expect("initializing finishes")
            .expect("a new quorum initializes");
        // Every voter is also a broker, registered once.
        let leader = voters
            .await_leader(10_000)
            .await
            .expect("a leader is elected");
        let first = voters.raft(leader).expect("the leader is up");
        let registrations: Vec<MetadataCommand> = members
            .iter()
            .map(|id| MetadataCommand::RegisterBroker(sim_broker(*id)))
            .collect();
        voters
            .drive(
                async move {
                    for command in registrations {
                        first
                            .client_write(command)
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                    Ok::<_, String>(())
                },
                10_000,
            )
            .await
            .expect("registering finishes")
            .expect("every broker registers");
        voters
    }

    /// The voters' ids.
    pub fn members(&self) -> &[NodeId] {
        &self.members
    }

    /// Starts voter `id` from its disk.
    pub async fn boot(&self, id: NodeId) {
        let (disk, process, slot) = {
            let mut slots = self.slots.borrow_mut();
            let slot = slots.get_mut(&id).expect("a known voter");
            slot.process = Process::new();
            (slot.disk.clone(), slot.process.clone(), slot.raft.clone())
        };
        let raft_config = Arc::new(self.config.raft_config().expect("a valid quorum config"));
        let recorder = Rc::new(Recorder {
            id,
            record: self.record.clone(),
        });
        let net = self.net.clone();
        let clock = self.clock.clone();
        let acks_before_sync = self.acks_before_sync;
        let failure: Rc<RefCell<Option<String>>> = Rc::default();
        let failed = failure.clone();
        process.spawn(async move {
            let booted = async {
                let wall: sluice_quorum::log_store::WallClock = Rc::new(move || clock.now_ms());
                let log =
                    RaftLogStore::open(Disk::Memory(disk.clone()), quorum_dir(), wall).await?;
                log.set_acks_before_sync(acks_before_sync);
                let machine =
                    MetadataMachine::open(Disk::Memory(disk), quorum_dir(), recorder).await?;
                let network = Network::new(id, Rc::new(net.clone()));
                let raft = Raft::new(id, raft_config, network, log, machine.clone())
                    .await
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                Ok::<_, std::io::Error>((Rc::new(raft), machine))
            };
            match booted.await {
                Ok((raft, machine)) => {
                    net.add(id, raft.clone());
                    *slot.borrow_mut() = Some((raft, machine));
                }
                Err(e) => *failed.borrow_mut() = Some(e.to_string()),
            }
        });
        for _ in 0..1000 {
            self.settle().await;
            if self.raft(id).is_some() {
                return;
            }
            if let Some(e) = failure.borrow().as_ref() {
                panic!("voter {id} did not start: {e}");
            }
            self.advance();
        }
        panic!("voter {id} did not start");
    }

    /// Stops voter `id` as a crash would: a power loss keeps a random
    /// prefix of what was not synced, a kill keeps everything written.
    pub fn crash(&self, id: NodeId, power_loss: bool) {
        let slots = self.slots.borrow();
        let slot = &slots[&id];
        slot.process.stop();
        self.net.remove(id);
        *slot.raft.borrow_mut() = None;
        if power_loss {
            let seed = self.rng.borrow_mut().next_u64();
            slot.disk.crash(seed);
        } else {
            slot.disk.crash_keep_all();
        }
    }

    /// Gives voter `id` (down) a new, empty disk: a replaced machine.
    pub fn replace_disk(&self, id: NodeId) {
        let mut slots = self.slots.borrow_mut();
        let slot = slots.get_mut(&id).expect("a known voter");
        assert!(slot.process.is_stopped(), "voter {id} is up");
        slot.disk = MemoryStorage::new();
    }

    /// Voter `id`'s Raft, when it is up.
    pub fn raft(&self, id: NodeId) -> Option<Rc<Raft>> {
        let slots = self.slots.borrow();
        let slot = slots.get(&id)?;
        let raft = slot.raft.borrow().as_ref().map(|(raft, _)| raft.clone());
        raft
    }

    /// Voter `id`'s metadata, when it is up.
    pub fn state(&self, id: NodeId) -> Option<MetadataState> {
        let slots = self.slots.borrow();
        let slot = slots.get(&id)?;
        let state = slot
            .raft
            .borrow()
            .as_ref()
            .map(|(_, machine)| machine.state().clone());
        state
    }

    /// Voters that are up.
    pub fn up(&self) -> Vec<NodeId> {
        self.members
            .iter()
            .copied()
            .filter(|id| self.raft(*id).is_some())
            .collect()
    }

    /// The voter that is leader and may accept writes (its lease is
    /// current), if one is.
    pub fn leader(&self) -> Option<NodeId> {
        self.up().into_iter().find(|id| {
            let raft = self.raft(*id).expect("up");
            let metrics = sluice_quorum::metrics_of(&raft);
            metrics.state == ServerState::Leader
                && metrics.last_quorum_acked.is_some_and(|acked| {
                    let age =
                        runtime::Instant::at(Duration::from_millis(self.clock.now_ms() as u64))
                            - acked.into_inner();
                    age < Duration::from_millis(self.config.election_timeout_ms.1)
                })
        })
    }

    /// Notes the leader each voter sees, and flags a term with two.
    fn observe_leaders(&self) {
        for id in self.up() {
            let raft = self.raft(id).expect("up");
            let metrics = sluice_quorum::metrics_of(&raft);
            if metrics.state != ServerState::Leader {
                continue;
            }
            let mut record = self.record.borrow_mut();
            match record.leaders.get(&metrics.current_term) {
                Some(other) if *other != id => {
                    let v = format!(
                        "term {} has two leaders: {other} and {id}",
                        metrics.current_term
                    );
                    record.violations.push(v);
                }
                _ => {
                    record.leaders.insert(metrics.current_term, id);
                }
            }
        }
    }

    /// Lets every task run until it waits (or for a bounded while).
    pub async fn settle(&self) {
        for _ in 0..SETTLE_YIELDS {
            futures_lite::future::yield_now().await;
        }
        self.observe_leaders();
    }

    /// Moves the clock to the next timer; false when none is armed.
    pub fn advance(&self) -> bool {
        match self.clock.next_deadline_ms() {
            Some(at) => {
                self.clock.advance_to(at);
                true
            }
            None => false,
        }
    }

    /// Lets `ms` of virtual time pass, running everything due.
    pub async fn run_for(&self, ms: i64) {
        let end = self.clock.now_ms() + ms;
        loop {
            self.settle().await;
            match self.clock.next_deadline_ms() {
                Some(at) if at <= end => self.clock.advance_to(at),
                _ => break,
            }
        }
        self.clock.advance_to(end);
        self.settle().await;
    }

    /// Runs `work` to completion, moving the clock whenever it waits; None
    /// if it has not finished after `limit_ms` of virtual time.
    pub async fn drive<T: 'static>(
        &self,
        work: impl Future<Output = T> + 'static,
        limit_ms: i64,
    ) -> Option<T> {
        let out = Rc::new(RefCell::new(None));
        let slot = out.clone();
        glommio::spawn_local(async move {
            *slot.borrow_mut() = Some(work.await);
        })
        .detach();
        let end = self.clock.now_ms() + limit_ms;
        loop {
            self.settle().await;
            if let Some(value) = out.borrow_mut().take() {
                return Some(value);
            }
            match self.clock.next_deadline_ms() {
                Some(at) if at <= end => self.clock.advance_to(at),
                _ => return None,
            }
        }
    }

    /// Waits (up to `limit_ms` of virtual time) for a leader whose lease is
    /// current.
    pub async fn await_leader(&self, limit_ms: i64) -> Option<NodeId> {
        let end = self.clock.now_ms() + limit_ms;
        loop {
            if let Some(leader) = self.leader() {
                return Some(leader);
            }
            if self.clock.now_ms() >= end {
                return None;
            }
            self.run_for(10).await;
        }
    }

    /// Proposes creating topic `name` through voter `via`, waiting up to
    /// `limit_ms`: Ok once it committed (and is then acknowledged), else
    /// why not.
    pub async fn create_topic(&self, via: NodeId, name: &str, limit_ms: i64) -> Result<(), String> {
        let Some(raft) = self.raft(via) else {
            return Err(format!("voter {via} is down"));
        };
        let command = MetadataCommand::CreateTopic {
            name: name.to_owned(),
            id: [0; 16],
            partitions: vec![vec![Replica {
                broker: via as BrokerId,
                shard: 0,
            }]],
            configs: BTreeMap::new(),
        };
        let write = async move {
            let timeout = Duration::from_millis(limit_ms as u64);
            match LocalRuntime::timeout(timeout, raft.client_write(command)).await {
                Ok(Ok(response)) => response.data.0.map_err(|e| e.to_string()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("timed out".to_owned()),
            }
        };
        let result = self
            .drive(write, limit_ms + 1)
            .await
            .unwrap_or_else(|| Err("did not finish".to_owned()));
        if result.is_ok() {
            self.acknowledged.borrow_mut().insert(name.to_owned());
        }
        result
    }

    /// One round of broker heartbeats: every voter up and connected to the
    /// leader is heard; then the leader commits an unfence for each fenced
    /// broker it heard and a fence for each silent one.
    pub async fn heartbeats(&self) {
        let Some(leader) = self.leader() else {
            return;
        };
        let now = self.clock.now_ms() as u64;
        let state = self.state(leader).unwrap_or_default();
        // The production decisions: a heartbeat may call for an unfence,
        // a silent broker for a fence.
        let changes: Vec<MetadataCommand> = {
            let mut liveness = self.liveness.borrow_mut();
            if liveness.0 != Some(leader) {
                *liveness = (Some(leader), Liveness::new(SESSION_TIMEOUT_MS));
            }
            liveness.1.leading(now);
            let mut changes = Vec::new();
            for id in self.up() {
                if id == leader || self.net.connected(id, leader) {
                    let broker = sim_broker(id);
                    let answer = liveness
                        .1
                        .heartbeat(&state, broker.id, broker.incarnation, now);
                    changes.extend(answer.ok().flatten());
                }
            }
            let fences = liveness.1.expired(&state, now).into_iter();
            changes.extend(fences.map(|id| MetadataCommand::FenceBroker { id }));
            changes
        };
        let Some(raft) = self.raft(leader) else {
            return;
        };
        for command in changes {
            let raft = raft.clone();
            let write = async move {
                let timeout = Duration::from_millis(500);
                let _ = LocalRuntime::timeout(timeout, raft.client_write(command)).await;
            };
            self.drive(write, 501).await;
        }
    }

    /// Distinct Raft indexes at which some voter applied a command whose
    /// log line starts with `prefix` (e.g. "fence broker").
    pub fn applied_like(&self, prefix: &str) -> usize {
        let record = self.record.borrow();
        let indexes: BTreeSet<u64> = record
            .applied
            .values()
            .flat_map(|applied| applied.iter())
            .filter(|(_, line)| line.starts_with(prefix))
            .map(|(index, _)| *index)
            .collect();
        indexes.len()
    }

    /// Brokers fenced in voter `id`'s metadata.
    pub fn fenced(&self, id: NodeId) -> Vec<BrokerId> {
        self.state(id)
            .map(|s| {
                s.brokers
                    .values()
                    .filter(|b| b.fenced)
                    .map(|b| b.registration.id)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Heartbeats every 100 virtual ms for `ms`.
    pub async fn heartbeat_for(&self, ms: i64) {
        let end = self.clock.now_ms() + ms;
        while self.clock.now_ms() < end {
            self.heartbeats().await;
            self.run_for(100).await;
        }
    }

    /// Topics whose creation was acknowledged.
    pub fn acknowledged(&self) -> BTreeSet<String> {
        self.acknowledged.borrow().clone()
    }

    /// Snapshots voter `id` installed from a leader or at start.
    pub fn snapshots_installed(&self, id: NodeId) -> u64 {
        self.record
            .borrow()
            .installed
            .get(&id)
            .copied()
            .unwrap_or(0)
    }

    /// Every broken rule seen so far, including a voter up that misses an
    /// acknowledged write when `converged` (all up, healed, settled).
    pub fn violations(&self, converged: bool) -> Vec<String> {
        let mut violations = self.record.borrow().violations.clone();
        for id in self.up() {
            let state = self.state(id).expect("up");
            violations.extend(
                state
                    .violations()
                    .into_iter()
                    .map(|v| format!("voter {id}'s metadata: {v}")),
            );
            if converged && !self.fenced(id).is_empty() {
                violations.push(format!(
                    "voter {id} still has brokers {:?} fenced with every broker up and heard",
                    self.fenced(id)
                ));
            }
        }
        if converged {
            let acknowledged = self.acknowledged.borrow();
            let mut states = Vec::new();
            for id in self.up() {
                let state = self.state(id).expect("up");
                for name in acknowledged.iter() {
                    if !state.topics.contains_key(name) {
                        violations.push(format!(
                            "voter {id} lost the acknowledged creation of {name:?}"
                        ));
                    }
                }
                states.push((id, state.topics.keys().cloned().collect::<Vec<_>>()));
            }
            for pair in states.windows(2) {
                if pair[0].1 != pair[1].1 {
                    violations.push(format!(
                        "voters {} and {} disagree on the topics after converging",
                        pair[0].0, pair[1].0
                    ));
                }
            }
        }
        violations
    }

    /// Heals the network, boots every voter that is down and waits until
    /// all have applied everything committed.
    pub async fn converge(&self, limit_ms: i64) {
        self.net.heal();
        self.net.set_faults(Faults::NONE);
        for id in self.members.clone() {
            if self.raft(id).is_none() {
                self.boot(id).await;
            }
        }
        let end = self.clock.now_ms() + limit_ms;
        while self.clock.now_ms() < end {
            self.run_for(100).await;
            let Some(leader) = self.leader() else {
                continue;
            };
            let metrics = sluice_quorum::metrics_of(&self.raft(leader).expect("up"));
            let committed = metrics.cluster_committed.map(|id| id.index());
            if committed.is_none() || committed != metrics.last_log_index {
                continue;
            }
            let caught_up = self.up().iter().all(|id| {
                let metrics = sluice_quorum::metrics_of(&self.raft(*id).expect("up"));
                metrics.last_applied.map(|id| id.index()) == committed
            });
            if caught_up && self.up().len() == self.members.len() {
                return;
            }
        }
    }

    /// Picks from the run's generator.
    pub fn rng(&self) -> std::cell::RefMut<'_, Rng> {
        self.rng.borrow_mut()
    }
}
