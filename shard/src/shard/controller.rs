//! The controller role (shard 0) and metadata application (every shard).
//!
//! Owns: the node's member of the controller quorum (started, and brought
//! up to date, before the node serves), turning a client's proposal into a
//! command against the authoritative state and committing it through the
//! quorum, and having every shard apply each committed command in the same
//! order ([`ShardApplier`]); applying a command (or the start-up snapshot)
//! opens the replicas this shard of this broker holds and closes deleted
//! ones. Placement is decided here, on the leader, before a command is
//! committed. A node whose metadata is still in the log format before the
//! quorum has it moved into the quorum at its first start.
//!
//! With several voters (`controller_voters`), shard 0 also serves the
//! internal listener (`rpc_addr`): Raft calls from the other voters, and
//! calls forwarded by brokers whose member is not the leader (proposals,
//! heartbeats and registrations, DescribeQuorum); a proposal made here
//! while another voter leads is forwarded to it.

use std::collections::BTreeMap;
use std::rc::Weak;
use std::sync::atomic::{AtomicI32, Ordering};

use sluice_core::metadata::dynamic_config::ConfigResource;
use sluice_core::metadata::liveness::Liveness;
use sluice_core::metadata::{
    check_partition_count, dynamic_config, election, placement, reassignment, BrokerId, Replica,
    NO_LEADER,
};
use sluice_quorum::log_store::WallClock;
use sluice_quorum::member::{open_member, MemberParts, NoPeers};
use sluice_quorum::network::{LocalResult, PeerLink};
use sluice_quorum::openraft::AsyncRuntime;
use sluice_quorum::runtime::LocalRuntime;
use sluice_quorum::state_machine::{Applier, LocalFuture};
use sluice_quorum::status::{status_of, QuorumStatus};
use sluice_quorum::tcp::{RpcCounters, RpcHandler, TcpLink};
use sluice_quorum::wire::Message;
use sluice_quorum::{NodeId, Peer, Raft};

use super::*;
use crate::message::{Apply, DescribeQuorum, InstallSnapshot, Proposal, Propose, Proposed};
use crate::metadata_log::MetadataLog;

/// The controller quorum's files, under the data directory (Kafka's
/// KRaft keeps its metadata log in `__cluster_metadata-0`).
pub const CONTROLLER_DIR: &str = "__cluster_metadata";
/// Where metadata lived before the quorum (read once, to move it over).
pub const LEGACY_METADATA_DIR: &str = "__sluice_metadata";

/// The controller leader this process's member knows of (-1: none yet);
/// Metadata and DescribeCluster name it.
static CONTROLLER_ID: AtomicI32 = AtomicI32::new(-1);

/// The node id of the controller leader, when one is known.
pub fn controller_id() -> Option<i32> {
    let id = CONTROLLER_ID.load(Ordering::Relaxed);
    (id >= 0).then_some(id)
}

/// Partitions a shard opens at once when metadata gives it new replicas.
const OPENS_AT_ONCE: usize = 32;

/// How long a proposal forwarded to the leader may take.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(30);

/// What one broker asks the controller leader over the internal listener
/// (JSON in a [`Message::App`]).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
enum AppCall {
    /// A proposal made at a broker that does not lead.
    Propose(Proposal),
    /// The leader's view of the quorum (DescribeQuorum).
    DescribeQuorum,
}

/// Answers the internal listener: Raft calls go to this node's member,
/// forwarded proposals to the controller role.
struct ControllerRpc {
    raft: Rc<Raft>,
    applier: Rc<ShardApplier>,
}

impl RpcHandler for ControllerRpc {
    fn handle(&self, message: Message) -> LocalResult<Message> {
        match message {
            Message::Raft(request) => {
                let raft = self.raft.clone();
                Box::pin(async move {
                    Message::RaftAnswer(sluice_quorum::network::serve(&raft, request).await)
                })
            }
            Message::App(body) => {
                let shard = self.applier.shard.borrow().upgrade();
                let raft = self.raft.clone();
                Box::pin(async move {
                    let call: AppCall = match serde_json::from_slice(&body) {
                        Ok(call) => call,
                        Err(e) => return Message::Refused(format!("not a call: {e}")),
                    };
                    let answer = match call {
                        AppCall::DescribeQuorum => serde_json::to_vec(&status_of(&raft)),
                        AppCall::Propose(proposal) => {
                            let Some(shard) = shard else {
                                return Message::Refused("the node is starting".into());
                            };
                            serde_json::to_vec(&shard.propose(Propose(proposal)).await)
                        }
                    };
                    match answer {
                        Ok(bytes) => Message::AppAnswer(bytes),
                        Err(e) => Message::Refused(e.to_string()),
                    }
                })
            }
            other => {
                // An answer sent as a call: name its kind only (its text
                // came from the peer).
                let kind = match other {
                    Message::RaftAnswer(_) => "a Raft answer",
                    Message::AppAnswer(_) => "an application answer",
                    _ => "a refusal",
                };
                Box::pin(async move { Message::Refused(format!("{kind} is not a call")) })
            }
        }
    }
}

/// Forwards every command the quorum applies, and every snapshot it
/// installs, to all shards of the node (once the node is up: before, the
/// shards get the whole state in the start-up handshake).
#[derive(Default)]
pub(crate) struct ShardApplier {
    shard: RefCell<Weak<Shard>>,
}

impl ShardApplier {
    /// From now on, forward through `shard` (shard 0).
    pub(crate) fn forward_to(&self, shard: &Rc<Shard>) {
        *self.shard.borrow_mut() = Rc::downgrade(shard);
    }
}

impl Applier for ShardApplier {
    fn applied(
        &self,
        _index: u64,
        command: &MetadataCommand,
        _state: &MetadataState,
    ) -> LocalFuture {
        let Some(shard) = self.shard.borrow().upgrade() else {
            return Box::pin(async {});
        };
        let command = command.clone();
        Box::pin(async move {
            let applies = (0..shard.shards).map(|to| shard.call(to, Apply(command.clone())));
            for apply in applies.collect::<Vec<_>>() {
                if apply.await.is_err() {
                    // Only when the node is stopping: the command is
                    // committed and every shard gets it at the next start.
                    tracing::warn!("a shard could not be told to apply a command");
                }
            }
        })
    }

    fn installed(&self, state: &MetadataState) -> LocalFuture {
        let Some(shard) = self.shard.borrow().upgrade() else {
            return Box::pin(async {});
        };
        let state = state.clone();
        Box::pin(async move {
            for to in 0..shard.shards {
                if shard
                    .call(to, InstallSnapshot(Box::new(state.clone())))
                    .await
                    .is_err()
                {
                    tracing::warn!(to, "a shard could not be given the metadata snapshot");
                }
            }
        })
    }
}

/// Keeps [`CONTROLLER_ID`] on the leader this member knows of.
fn watch_controller(raft: &Rc<Raft>) {
    use sluice_quorum::openraft::async_runtime::WatchReceiver;
    let mut metrics = raft.metrics();
    glommio::spawn_local(async move {
        loop {
            let leader = metrics.borrow_watched().current_leader;
            let id = leader.and_then(|id| i32::try_from(id).ok()).unwrap_or(-1);
            CONTROLLER_ID.store(id, Ordering::Relaxed);
            if metrics.changed().await.is_err() {
                CONTROLLER_ID.store(-1, Ordering::Relaxed);
                return;
            }
        }
    })
    .detach();
}

fn quorum_error(dir: &std::path::Path, e: impl std::fmt::Display) -> LogError {
    LogError::Io {
        context: "starting the controller quorum member in",
        path: dir.to_owned(),
        source: std::io::Error::other(e.to_string()),
    }
}

impl Controller {
    /// Starts this node's quorum member (a quorum of one, or one voter of
    /// `controller_voters`, then serving the internal listener) and waits
    /// until a leader is known and every committed command it knows of is
    /// applied.
    pub(super) async fn open(
        config: &NodeConfig,
        disk: &Disk,
        env: &Rc<dyn Env>,
    ) -> Result<Controller, LogError> {
        let dir = config.data_dir.join(CONTROLLER_DIR);
        let me = NodeId::try_from(config.node_id)
            .map_err(|_| quorum_error(&dir, format!("node.id {} is negative", config.node_id)))?;
        let voters = match &config.controller_voters {
            Some(list) => sluice_quorum::voters::parse(list).map_err(|e| quorum_error(&dir, e))?,
            None => BTreeMap::from([(me, Peer::default())]),
        };
        let alone = voters.len() == 1;
        let rpc_addr = config
            .rpc_addr
            .clone()
            .or_else(|| voters.get(&me).map(|peer| peer.rpc_addr.clone()))
            .unwrap_or_default();
        let clock = env.clone();
        let wall: WallClock = Rc::new(move || clock.now_ms());
        let applier = Rc::new(ShardApplier::default());
        let link = TcpLink::new();
        let peers: Rc<dyn PeerLink> = if alone {
            Rc::new(NoPeers)
        } else {
            Rc::new(link.clone())
        };
        let member = open_member(MemberParts {
            disk: disk.clone(),
            dir: dir.clone(),
            me,
            voters,
            snapshot_commands: config.shard.metadata_snapshot_commands,
            applier: applier.clone(),
            wall,
            link: peers,
        })
        .await
        .map_err(|e| quorum_error(&dir, e))?;
        if !alone {
            let addr: std::net::SocketAddr = rpc_addr
                .parse()
                .map_err(|e| quorum_error(&dir, format!("rpc_addr {rpc_addr:?}: {e}")))?;
            let listener = glommio::net::TcpListener::bind(addr).map_err(|e| {
                quorum_error(
                    &dir,
                    format!("cannot bind the internal listener {addr}: {e}"),
                )
            })?;
            let handler = Rc::new(ControllerRpc {
                raft: member.raft.clone(),
                applier: applier.clone(),
            });
            glommio::spawn_local(sluice_quorum::tcp::serve(
                listener,
                handler,
                Rc::new(RpcCounters::default()),
            ))
            .detach();
            tracing::info!(%addr, "the internal listener is up");
        }
        watch_controller(&member.raft);
        member.ready().await.map_err(|e| quorum_error(&dir, e))?;
        Ok(Controller {
            member,
            link,
            applier,
            propose_lock: Semaphore::new(1),
            producer_ids: Cell::new((0, 0)),
            incarnation: env.new_id(),
            rpc_addr,
            liveness: RefCell::new(Liveness::new(config.kafka.broker_session_timeout_ms)),
            leaving: Cell::new(false),
        })
    }

    /// Sends `proposal` to the leader's internal listener and returns its
    /// answer (NOT_CONTROLLER when it cannot be reached: clients retry).
    async fn forward(&self, leader: &Peer, proposal: Proposal) -> Proposed {
        match self.call_leader(leader, &AppCall::Propose(proposal)).await {
            Ok(answer) => answer,
            Err(why) => {
                tracing::warn!(leader = %leader.rpc_addr, why, "a proposal could not be forwarded to the controller");
                Err((
                    ErrorCode::NotController,
                    "the controller is not reachable".to_owned(),
                ))
            }
        }
    }

    /// Makes `call` at the leader's internal listener; its decoded answer,
    /// or why there is none.
    async fn call_leader<T: serde::de::DeserializeOwned>(
        &self,
        leader: &Peer,
        call: &AppCall,
    ) -> Result<T, String> {
        let body = serde_json::to_vec(call).map_err(|e| e.to_string())?;
        let call = self.link.call_addr(&leader.rpc_addr, Message::App(body));
        let answer = LocalRuntime::timeout(FORWARD_TIMEOUT, call)
            .await
            .map_err(|e| e.to_string())?;
        match answer {
            Ok(Message::AppAnswer(bytes)) => {
                serde_json::from_slice(&bytes).map_err(|e| format!("a malformed answer: {e}"))
            }
            Ok(other) => Err(format!("answered {other:?}")),
            Err(e) => Err(e),
        }
    }

    /// The quorum as its leader sees it (asked over the internal listener
    /// when another voter leads); without a reachable leader, this
    /// member's own partial view.
    pub(super) async fn describe_quorum(&self) -> QuorumStatus {
        let local = status_of(&self.member.raft);
        if self.member.alone || local.from_leader() {
            return local;
        }
        let Some((_, leader)) = self.member.leader() else {
            return local;
        };
        match self.call_leader(&leader, &AppCall::DescribeQuorum).await {
            Ok(status) => status,
            Err(why) => {
                tracing::debug!(why, "the controller leader did not describe the quorum");
                local
            }
        }
    }
}

impl Shard {
    /// Moves the metadata of the log format before the quorum (if this
    /// data directory of a lone node still has one) into the quorum, with
    /// the same topic ids and shards, on this broker; then removes the old
    /// files. A move a crash cut short resumes at the next start.
    pub(super) async fn migrate_legacy(self: &Rc<Self>) -> Result<(), LogError> {
        let Some(controller) = &self.controller else {
            return Ok(());
        };
        if !controller.member.alone {
            return Ok(());
        }
        let legacy_dir = self.config.data_dir.join(LEGACY_METADATA_DIR);
        if !self.disk.dir_exists(&legacy_dir).await {
            return Ok(());
        }
        let legacy =
            MetadataLog::open(&self.disk, legacy_dir.clone(), 0, self.env.now_ms()).await?;
        let old = legacy.state().clone();
        legacy.close().await?;
        let broker = self.config.node_id;
        let shards = self.shards;
        // What a move cut short by a crash already committed is not moved
        // again: the old files go only once everything is in the quorum.
        let now = controller.member.machine.state().clone();
        let mut commands: Vec<MetadataCommand> = old
            .topics
            .iter()
            .filter(|(name, _)| !now.topics.contains_key(*name))
            .map(|(name, topic)| MetadataCommand::CreateTopic {
                name: name.clone(),
                id: topic.id,
                partitions: topic
                    .partition_shards
                    .iter()
                    .map(|shard| {
                        vec![Replica {
                            broker,
                            shard: shard % shards,
                        }]
                    })
                    .collect(),
                configs: topic.configs.clone(),
            })
            .collect();
        if old.next_producer_id > now.next_producer_id {
            commands.push(MetadataCommand::AllocateProducerIds {
                first: now.next_producer_id,
                count: old.next_producer_id - now.next_producer_id,
            });
        }
        let moved = commands.len();
        for command in commands {
            if let Err((_, e)) = self.commit_command(command).await {
                return Err(quorum_error(&legacy_dir, format!("moving metadata: {e}")));
            }
        }
        self.disk
            .remove_dir_all(&legacy_dir)
            .await
            .map_err(|e| quorum_error(&legacy_dir, e))?;
        tracing::info!(
            commands = moved,
            topics = old.topics.len(),
            "moved the metadata of the earlier log format into the controller quorum"
        );
        Ok(())
    }
}

impl Shard {
    /// [`Propose`], on shard 0: turns a proposal into a command, commits it
    /// through the quorum, then has every shard apply it. A node that is not
    /// the controller leader forwards the proposal to it.
    pub(crate) async fn propose(self: &Rc<Self>, op: Propose) -> Proposed {
        let proposal = op.0;
        let Some(controller) = &self.controller else {
            return not_controller();
        };
        if !controller.member.alone {
            match controller.member.leader() {
                Some((leader, _)) if leader == controller.member.me => {}
                Some((_, peer)) => return controller.forward(&peer, proposal).await,
                None => return not_controller(),
            }
        }
        let Ok(_turn) = controller.propose_lock.acquire_permit(1).await else {
            return not_controller();
        };
        let command = match self.plan(proposal) {
            Ok(Planned::Commit(command)) => command,
            Ok(Planned::Answer(value)) => return Ok(value),
            Err(refused) => return Err(refused),
        };
        self.commit_planned(command).await
    }

    /// Commits `command` (planned by this node, the leader) through the
    /// quorum and has every shard apply it.
    pub(super) async fn commit_command(self: &Rc<Self>, command: MetadataCommand) -> Proposed {
        let Some(controller) = &self.controller else {
            return not_controller();
        };
        let Ok(_turn) = controller.propose_lock.acquire_permit(1).await else {
            return not_controller();
        };
        self.commit_planned(command).await
    }

    /// Commits a planned command; the caller holds the proposal turn.
    async fn commit_planned(&self, command: MetadataCommand) -> Proposed {
        let Some(controller) = &self.controller else {
            return not_controller();
        };
        // Committed, then applied on every shard (the applier forwards it)
        // before the quorum answers.
        match controller.member.raft.client_write(command.clone()).await {
            Ok(response) => {
                if let Err(e) = response.data.0 {
                    return proposal_error(e.error_code(), &e.to_string());
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "the controller quorum did not commit a command");
                return not_controller();
            }
        }
        let mut value = 0;
        if let MetadataCommand::ElectLeaders { elections } = &command {
            value = elections.len() as i64;
        }
        if let MetadataCommand::ReassignPartitions { reassignments } = &command {
            value = reassignments.len() as i64;
        }
        if let MetadataCommand::AllocateProducerIds { first, count } = &command {
            controller.producer_ids.set((first + 1, first + count));
            value = *first;
        }
        Ok(value)
    }

    /// The command a proposal becomes against the leader's state (placement
    /// and ids decided here), or its answer when nothing is to be committed.
    fn plan(&self, proposal: Proposal) -> Result<Planned, (ErrorCode, String)> {
        let controller = self
            .controller
            .as_ref()
            .ok_or_else(|| (ErrorCode::NotController, "not the controller".to_owned()))?;
        // Borrowed, not copied: heartbeats come through here every few
        // seconds per broker, and the state holds every partition.
        let state = controller.member.machine.state();
        let refuse = |code: ErrorCode, message: &str| Err((code, message.to_owned()));
        let command = match proposal {
            Proposal::CreateTopic {
                name,
                partitions,
                replication_factor,
                assignments,
                configs,
                validate_only,
            } => {
                if name == CONTROLLER_DIR {
                    // Kafka's answer for its own metadata topic's name.
                    return refuse(
                        ErrorCode::InvalidRequest,
                        &format!("Creation of internal topic {CONTROLLER_DIR} is prohibited."),
                    );
                }
                if let Err(message) = check_partition_count(i64::from(partitions)) {
                    return refuse(ErrorCode::InvalidPartitions, &message);
                }
                let placed = if assignments.is_empty() {
                    let factor = match replication_factor {
                        -1 => self.config.kafka.default_replication_factor,
                        f => f,
                    };
                    let factor = usize::try_from(factor).unwrap_or(0);
                    placement::place(&state, partitions as usize, factor)
                        .map_err(|message| (ErrorCode::InvalidReplicationFactor, message))?
                } else {
                    placement::place_manual(&state, &assignments)
                        .map_err(|message| (ErrorCode::InvalidReplicaAssignment, message))?
                };
                let command = MetadataCommand::CreateTopic {
                    id: self.env.new_id(),
                    partitions: placed,
                    configs: configs.into_iter().collect(),
                    name,
                };
                if validate_only {
                    return match state.clone().apply(&command) {
                        Ok(()) => Ok(Planned::Answer(0)),
                        Err(e) => refuse(e.error_code(), &e.to_string()),
                    };
                }
                command
            }
            Proposal::DeleteTopic { name } => MetadataCommand::DeleteTopic { name },
            Proposal::CreatePartitions {
                name,
                total,
                assignments,
                validate_only,
            } => {
                let Some(topic) = state.topics.get(&name) else {
                    return refuse(ErrorCode::UnknownTopicOrPartition, "unknown topic");
                };
                let current = topic.partitions.len() as i32;
                if total <= current {
                    return refuse(
                        ErrorCode::InvalidPartitions,
                        &format!("topic has {current} partitions; the new count must be larger"),
                    );
                }
                let new = if assignments.is_empty() {
                    let factor = topic.partitions.first().map_or(1, |p| p.replicas.len());
                    placement::place(&state, (total - current) as usize, factor)
                        .map_err(|message| (ErrorCode::InvalidReplicationFactor, message))?
                } else {
                    placement::place_manual(&state, &assignments)
                        .map_err(|message| (ErrorCode::InvalidReplicaAssignment, message))?
                };
                if validate_only {
                    return Ok(Planned::Answer(0));
                }
                MetadataCommand::CreatePartitions {
                    name,
                    new_partitions: new,
                }
            }
            Proposal::AllocateProducerId => {
                let (next, end) = controller.producer_ids.get();
                if next < end {
                    controller.producer_ids.set((next + 1, end));
                    return Ok(Planned::Answer(next));
                }
                MetadataCommand::AllocateProducerIds {
                    first: state.next_producer_id,
                    count: PRODUCER_ID_BLOCK,
                }
            }
            Proposal::RegisterBroker(registration) => {
                // A registration is a sign of life: without this, a broker
                // back after being fenced would be fenced again at the next
                // tick, on its last heartbeat before it died.
                let now = self.env.monotonic_ms();
                controller.liveness.borrow_mut().heard(registration.id, now);
                MetadataCommand::RegisterBroker(registration)
            }
            Proposal::BrokerHeartbeat { id, incarnation } => {
                match self.heard_from(id, incarnation)? {
                    Some(command) => command,
                    None => return Ok(Planned::Answer(0)),
                }
            }
            Proposal::ShutdownBroker { id, incarnation } => match state.brokers.get(&id) {
                Some(b) if b.registration.incarnation == incarnation && !b.fenced => {
                    MetadataCommand::FenceBroker { id }
                }
                _ => return Ok(Planned::Answer(0)),
            },
            Proposal::ElectLeaders { partitions } => {
                let elections: Vec<(String, i32, BrokerId)> = match partitions {
                    None => election::preferred_elections(&state),
                    Some(partitions) => partitions
                        .into_iter()
                        .filter_map(|(topic, p)| {
                            let meta = state.partition(&topic, p)?;
                            let leader = election::preferred_leader(&state, meta).ok()?;
                            Some((topic, p, leader))
                        })
                        .collect(),
                };
                if elections.is_empty() {
                    return Ok(Planned::Answer(0));
                }
                MetadataCommand::ElectLeaders { elections }
            }
            Proposal::ReassignPartitions { partitions } => {
                let mut reassignments = Vec::with_capacity(partitions.len());
                for (topic, partition, target) in partitions {
                    if let Err((code, message)) =
                        reassignment::check(&state, &topic, partition, target.as_deref(), true)
                    {
                        tracing::info!(topic, partition, %code, message, "reassignment refused");
                        continue;
                    }
                    let Some(current) = state.partition(&topic, partition) else {
                        continue;
                    };
                    let placed = match target {
                        None => None,
                        Some(brokers) => Some(
                            reassignment::place_target(&state, current, &brokers)
                                .map_err(|m| (ErrorCode::InvalidReplicaAssignment, m))?,
                        ),
                    };
                    reassignments.push((topic, partition, placed));
                }
                if reassignments.is_empty() {
                    return Ok(Planned::Answer(0));
                }
                MetadataCommand::ReassignPartitions { reassignments }
            }
            Proposal::UncleanElect { partitions } => {
                let leaderless: Vec<(String, i32)> = partitions
                    .into_iter()
                    .filter(|(t, p)| {
                        state
                            .partition(t, *p)
                            .is_some_and(|m| m.leader == NO_LEADER)
                    })
                    .collect();
                if leaderless.is_empty() {
                    return Ok(Planned::Answer(0));
                }
                MetadataCommand::UncleanElect {
                    partitions: leaderless,
                }
            }
            Proposal::AlterConfigs { resource, changes } => {
                if let ConfigResource::Topic(name) = &resource {
                    if !state.topics.contains_key(name) {
                        return refuse(
                            ErrorCode::UnknownTopicOrPartition,
                            &format!("The topic '{name}' does not exist."),
                        );
                    }
                }
                let configs = dynamic_config::altered(&state.config_overrides(&resource), &changes);
                MetadataCommand::AlterConfigs { resource, configs }
            }
            Proposal::AlterClientQuotas { changes } => MetadataCommand::AlterClientQuotas {
                quotas: changes
                    .into_iter()
                    .map(|(entity, changes)| {
                        let current = state.client_quota(&entity).cloned().unwrap_or_default();
                        let values = sluice_core::quota::altered(&current, &changes);
                        sluice_core::quota::ClientQuota { entity, values }
                    })
                    .collect(),
            },
            Proposal::AlterPartition {
                topic,
                partition,
                leader,
                leader_epoch,
                partition_epoch,
                isr,
            } => MetadataCommand::AlterPartition {
                topic,
                partition,
                leader,
                leader_epoch,
                partition_epoch,
                isr,
            },
        };
        Ok(Planned::Commit(command))
    }

    /// [`DescribeQuorum`], on shard 0: the quorum as its leader sees it.
    pub(crate) async fn describe_quorum(&self, _: DescribeQuorum) -> Option<QuorumStatus> {
        Some(self.controller.as_ref()?.describe_quorum().await)
    }

    /// True once the controller's start-up snapshot was installed here.
    pub fn snapshot_installed(&self) -> bool {
        self.snapshot_installed.get()
    }

    /// [`InstallSnapshot`]: the controller's metadata at start-up; opens
    /// every partition this shard holds a replica of.
    pub(crate) async fn install_snapshot(self: &Rc<Self>, op: InstallSnapshot) {
        let state = *op.0;
        *self.metadata.borrow_mut() = state;
        self.open_assigned().await;
        self.reconcile_roles();
        self.snapshot_installed.set(true);
    }

    /// Opens every partition the metadata gives a replica of to this shard
    /// of this broker and that is not open (or offline) here yet,
    /// [`OPENS_AT_ONCE`] at a time (each open waits on its files' creation
    /// and syncs; a topic of a thousand partitions opened one by one waits
    /// for each in turn).
    async fn open_assigned(self: &Rc<Self>) {
        let broker = self.config.node_id;
        let missing: Vec<(String, PartitionId, BTreeMap<String, String>)> = {
            let metadata = self.metadata.borrow();
            let open = self.partitions.borrow();
            let offline = self.offline.borrow();
            let mut missing = Vec::new();
            for (name, topic) in &metadata.topics {
                for (i, p) in topic.partitions.iter().enumerate() {
                    let key = (name.clone(), i as PartitionId);
                    if p.shard_on(broker) == Some(self.id)
                        && !open.contains_key(&key)
                        && !offline.contains(&key)
                    {
                        missing.push((key.0, key.1, topic.configs.clone()));
                    }
                }
            }
            missing
        };
        for batch in missing.chunks(OPENS_AT_ONCE) {
            let opens: Vec<_> = batch
                .iter()
                .cloned()
                .map(|(name, partition, configs)| {
                    let shard = self.clone();
                    glommio::spawn_local(async move {
                        shard.open_partition(&name, partition, &configs).await;
                    })
                })
                .collect();
            for open in opens {
                open.await;
            }
        }
    }

    /// [`Apply`]: a committed command; opens and closes the partitions
    /// this shard holds as it says.
    pub(crate) async fn apply(self: &Rc<Self>, op: Apply) {
        let command = &op.0;
        if let Err(e) = self.metadata.borrow_mut().apply(command) {
            tracing::error!(shard = self.id, error = %e, "a committed metadata command did not apply");
            return;
        }
        match command {
            MetadataCommand::CreateTopic { .. }
            | MetadataCommand::CreatePartitions { .. }
            | MetadataCommand::RegisterBroker(_) => self.open_assigned().await,
            MetadataCommand::ReassignPartitions { .. } => {
                self.open_assigned().await;
                self.remove_unassigned().await;
            }
            MetadataCommand::AlterConfigs {
                resource: ConfigResource::Topic(name),
                configs,
            } => {
                let config =
                    sluice_core::topic_config::log_config(&self.broker_log_config(), configs);
                for ((topic, _), p) in self.partitions.borrow().iter() {
                    if topic == name {
                        p.min_insync_replicas
                            .set(config.min_insync_replicas.max(1) as usize);
                        p.log.set_config(config.clone());
                    }
                }
            }
            // A broker default of a topic config changed: every partition's
            // settings are derived again (its topic's overrides still win).
            MetadataCommand::AlterConfigs {
                resource: ConfigResource::Broker(_),
                ..
            } => {
                let broker = self.broker_log_config();
                let metadata = self.metadata();
                for ((topic, _), p) in self.partitions.borrow().iter() {
                    let Some(meta) = metadata.topics.get(topic) else {
                        continue;
                    };
                    let config = sluice_core::topic_config::log_config(&broker, &meta.configs);
                    p.min_insync_replicas
                        .set(config.min_insync_replicas.max(1) as usize);
                    p.log.set_config(config);
                }
            }
            // Group configs are read at each request that needs them.
            MetadataCommand::AlterConfigs {
                resource: ConfigResource::Group(_),
                ..
            } => {}
            // An in-sync set change may complete a reassignment.
            MetadataCommand::AlterPartition { .. } => self.remove_unassigned().await,
            MetadataCommand::DeleteTopic { name } => {
                let owned: Vec<_> = self
                    .partitions
                    .borrow()
                    .keys()
                    .filter(|(t, _)| t == name)
                    .cloned()
                    .collect();
                for key in owned {
                    self.remove_partition(&key, "a deleted").await;
                }
                // Offline partitions of the topic go with it; their files too.
                let offline: Vec<_> = self
                    .offline
                    .borrow()
                    .iter()
                    .filter(|(t, _)| t == name)
                    .cloned()
                    .collect();
                for key in offline {
                    self.offline.borrow_mut().remove(&key);
                    let dir = self.partition_dir(&key.0, key.1);
                    if let Err(e) = self.disk.remove_dir_all(&dir).await {
                        tracing::warn!(dir = ?dir, error = %e, "removing an offline deleted partition's files");
                    }
                }
                self.disk
                    .remove_empty_dir(&self.config.data_dir.join(name))
                    .await;
                self.groups.topic_deleted(name);
                self.metrics.borrow_mut().topic_deleted(name);
            }
            MetadataCommand::AllocateProducerIds { .. }
            | MetadataCommand::FenceBroker { .. }
            | MetadataCommand::UnfenceBroker { .. }
            | MetadataCommand::AlterClientQuotas { .. }
            | MetadataCommand::UncleanElect { .. }
            | MetadataCommand::ElectLeaders { .. } => {}
        }
        self.reconcile_roles();
    }

    /// Closes and deletes every partition open here whose replica the
    /// metadata no longer gives this shard (a reassignment moved it away).
    async fn remove_unassigned(self: &Rc<Self>) {
        let broker = self.config.node_id;
        let gone: Vec<PartitionKey> = {
            let metadata = self.metadata.borrow();
            self.partitions
                .borrow()
                .keys()
                .filter(|(t, p)| {
                    metadata
                        .partition(t, *p)
                        .is_some_and(|m| m.shard_on(broker) != Some(self.id))
                })
                .cloned()
                .collect()
        };
        for key in gone {
            tracing::info!(shard = self.id, topic = %key.0, partition = key.1, "a reassignment moved this replica away; removing it");
            self.remove_partition(&key, "a moved").await;
        }
    }

    /// Closes `key`'s log here, wakes its waiters (they find it gone) and
    /// deletes its files; `what` names the partition in log lines.
    async fn remove_partition(&self, key: &PartitionKey, what: &str) {
        if key.0 == OFFSETS_TOPIC {
            self.groups.unload(key.1);
        }
        if key.0 == crate::txn::TRANSACTION_STATE_TOPIC {
            self.txns.unload(key.1);
        }
        let removed = self.partitions.borrow_mut().remove(key);
        if let Some(p) = removed {
            // Waiters (acks=all produces, long polls) hold the partition:
            // with no role left they answer NOT_LEADER_OR_FOLLOWER at once
            // and their clients go to the new leader, instead of waiting
            // out their timeouts on a replica that is gone.
            *p.role.borrow_mut() = super::replication::Role::unassigned(p.log.log_start_offset());
            p.hw_changed.notify_all();
            p.appended.notify_all();
            if let Err(e) = p.log.close().await {
                tracing::warn!(topic = %key.0, partition = key.1, error = %e, "closing {what} partition");
            }
            let mut removed_logs = self.counters.removed_logs.get();
            removed_logs += p.log.stats();
            self.counters.removed_logs.set(removed_logs);
            p.hw_changed.notify_all();
            p.appended.notify_all();
            let dir = self.partition_dir(&key.0, key.1);
            if let Err(e) = self.disk.remove_dir_all(&dir).await {
                tracing::warn!(dir = ?dir, error = %e, "removing {what} partition's files");
            }
        }
    }
}

fn proposal_error(error: ErrorCode, message: &str) -> Proposed {
    Err((error, message.to_owned()))
}

fn not_controller() -> Proposed {
    proposal_error(ErrorCode::NotController, "not the controller")
}

/// What a proposal comes to on the leader.
enum Planned {
    /// A change to commit.
    Commit(MetadataCommand),
    /// The answer, with nothing to commit.
    Answer(i64),
}
