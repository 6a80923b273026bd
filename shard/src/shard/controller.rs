//! The controller role (shard 0) and metadata application (every shard).
//!
//! Owns: the node's member of the controller quorum (started, and brought
//! up to date, before the node serves), turning a client's proposal into a
//! command against the authoritative state and committing it through the
//! quorum, and having every shard apply each committed command in the same
//! order ([`ShardApplier`]); applying a command (or the start-up snapshot)
//! opens and closes the partitions a shard owns. A node whose metadata is
//! still in the log format before the quorum has it moved into the quorum
//! at its first start.

use std::rc::Weak;

use sluice_core::metadata::check_partition_count;
use sluice_quorum::alone::{start_alone, Alone};
use sluice_quorum::log_store::WallClock;
use sluice_quorum::state_machine::{Applier, LocalFuture};
use sluice_quorum::NodeId;

use super::*;
use crate::message::{Apply, InstallSnapshot, Proposal, Propose, Proposed};
use crate::metadata_log::MetadataLog;

/// The controller quorum's files, under the data directory (Kafka's
/// KRaft keeps its metadata log in `__cluster_metadata-0`).
pub const CONTROLLER_DIR: &str = "__cluster_metadata";
/// Where metadata lived before the quorum (read once, to move it over).
pub const LEGACY_METADATA_DIR: &str = "__sluice_metadata";

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

fn quorum_error(dir: &std::path::Path, e: impl std::fmt::Display) -> LogError {
    LogError::Io {
        context: "starting the controller quorum member in",
        path: dir.to_owned(),
        source: std::io::Error::other(e.to_string()),
    }
}

impl Controller {
    /// Starts this node's quorum member (a quorum of one, this node) and
    /// waits until it leads and has applied every committed command.
    pub(super) async fn open(
        config: &NodeConfig,
        disk: &Disk,
        env: &Rc<dyn Env>,
    ) -> Result<Controller, LogError> {
        let dir = config.data_dir.join(CONTROLLER_DIR);
        let me = NodeId::try_from(config.node_id)
            .map_err(|_| quorum_error(&dir, format!("node.id {} is negative", config.node_id)))?;
        let clock = env.clone();
        let wall: WallClock = Rc::new(move || clock.now_ms());
        let applier = Rc::new(ShardApplier::default());
        let Alone {
            raft,
            machine,
            fresh,
        } = start_alone(
            disk.clone(),
            dir.clone(),
            me,
            config.shard.metadata_snapshot_commands,
            applier.clone(),
            wall,
        )
        .await
        .map_err(|e| quorum_error(&dir, e))?;
        let controller = Controller {
            raft: Rc::new(raft),
            machine,
            applier,
            propose_lock: Semaphore::new(1),
            producer_ids: Cell::new((0, 0)),
        };
        if fresh {
            controller.migrate_legacy(config, disk, env).await?;
        }
        Ok(controller)
    }

    /// Moves the metadata of the log format before the quorum (if this data
    /// directory has one) into the quorum, with the same topic ids and
    /// placement, then removes the old files.
    async fn migrate_legacy(
        &self,
        config: &NodeConfig,
        disk: &Disk,
        env: &Rc<dyn Env>,
    ) -> Result<(), LogError> {
        let legacy_dir = config.data_dir.join(LEGACY_METADATA_DIR);
        if !disk.dir_exists(&legacy_dir).await {
            return Ok(());
        }
        let legacy = MetadataLog::open(disk, legacy_dir.clone(), 0, env.now_ms()).await?;
        let old = legacy.state().clone();
        legacy.close().await?;
        let mut commands: Vec<MetadataCommand> = old
            .topics
            .iter()
            .map(|(name, topic)| MetadataCommand::CreateTopic {
                name: name.clone(),
                id: topic.id,
                partition_shards: topic.partition_shards.clone(),
                configs: topic.configs.clone(),
            })
            .collect();
        if old.next_producer_id > 0 {
            commands.push(MetadataCommand::AllocateProducerIds {
                first: 0,
                count: old.next_producer_id,
            });
        }
        let moved = commands.len();
        for command in commands {
            let written = self.raft.client_write(command).await;
            match written {
                Ok(response) => {
                    if let Err(e) = response.data.0 {
                        return Err(quorum_error(&legacy_dir, format!("moving metadata: {e}")));
                    }
                }
                Err(e) => return Err(quorum_error(&legacy_dir, e)),
            }
        }
        disk.remove_dir_all(&legacy_dir)
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
    /// to the metadata log, then has every shard apply it.
    pub(crate) async fn propose(self: &Rc<Self>, op: Propose) -> Proposed {
        let proposal = op.0;
        let not_controller = || Err((ErrorCode::NotController, "not the controller".to_owned()));
        let Some(controller) = &self.controller else {
            return not_controller();
        };
        let Ok(_turn) = controller.propose_lock.acquire_permit(1).await else {
            return not_controller();
        };
        let state = controller.machine.state().clone();
        let command = match proposal {
            Proposal::CreateTopic {
                name,
                partitions,
                configs,
                validate_only,
            } => {
                if name == CONTROLLER_DIR {
                    // Kafka's answer for its own metadata topic's name.
                    return proposal_error(
                        ErrorCode::InvalidRequest,
                        &format!("Creation of internal topic {CONTROLLER_DIR} is prohibited."),
                    );
                }
                if let Err(message) = check_partition_count(i64::from(partitions)) {
                    return proposal_error(ErrorCode::InvalidPartitions, &message);
                }
                let command = MetadataCommand::CreateTopic {
                    id: self.env.new_id(),
                    partition_shards: state.place_partitions(partitions as usize, self.shards),
                    configs: configs.into_iter().collect(),
                    name,
                };
                if validate_only {
                    return match state.clone().apply(&command) {
                        Ok(()) => Ok(0),
                        Err(e) => proposal_error(e.error_code(), &e.to_string()),
                    };
                }
                command
            }
            Proposal::DeleteTopic { name } => MetadataCommand::DeleteTopic { name },
            Proposal::CreatePartitions {
                name,
                total,
                validate_only,
            } => {
                let Some(topic) = state.topics.get(&name) else {
                    return proposal_error(ErrorCode::UnknownTopicOrPartition, "unknown topic");
                };
                let current = topic.partition_shards.len() as i32;
                if total <= current {
                    return proposal_error(
                        ErrorCode::InvalidPartitions,
                        &format!("topic has {current} partitions; the new count must be larger"),
                    );
                }
                let new = state.place_partitions((total - current) as usize, self.shards);
                if validate_only {
                    return Ok(0);
                }
                MetadataCommand::CreatePartitions {
                    name,
                    new_partition_shards: new,
                }
            }
            Proposal::AllocateProducerId => {
                let (next, end) = controller.producer_ids.get();
                if next < end {
                    controller.producer_ids.set((next + 1, end));
                    return Ok(next);
                }
                MetadataCommand::AllocateProducerIds {
                    first: state.next_producer_id,
                    count: PRODUCER_ID_BLOCK,
                }
            }
        };
        // Committed, then applied on every shard (the applier forwards it)
        // before the quorum answers.
        match controller.raft.client_write(command.clone()).await {
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
        if let MetadataCommand::AllocateProducerIds { first, count } = &command {
            controller.producer_ids.set((first + 1, first + count));
            value = *first;
        }
        Ok(value)
    }

    /// True once the controller's start-up snapshot was installed here.
    pub fn snapshot_installed(&self) -> bool {
        self.snapshot_installed.get()
    }

    /// [`InstallSnapshot`]: the controller's metadata at start-up; opens
    /// every partition this shard owns.
    pub(crate) async fn install_snapshot(&self, op: InstallSnapshot) {
        let state = *op.0;
        *self.metadata.borrow_mut() = state.clone();
        for (name, topic) in &state.topics {
            for (partition, shard) in topic.partition_shards.iter().enumerate() {
                if *shard == self.id {
                    self.open_partition(name, partition as PartitionId, &topic.configs)
                        .await;
                }
            }
        }
        self.snapshot_installed.set(true);
    }

    /// [`Apply`]: a committed command; opens and closes the partitions
    /// this shard owns as it says.
    pub(crate) async fn apply(&self, op: Apply) {
        let command = &op.0;
        let before = self.metadata.borrow().clone();
        if let Err(e) = self.metadata.borrow_mut().apply(command) {
            tracing::error!(shard = self.id, error = %e, "a committed metadata command did not apply");
            return;
        }
        match command {
            MetadataCommand::CreateTopic {
                name,
                partition_shards,
                configs,
                ..
            } => {
                for (partition, shard) in partition_shards.iter().enumerate() {
                    if *shard == self.id {
                        self.open_partition(name, partition as PartitionId, configs)
                            .await;
                    }
                }
            }
            MetadataCommand::CreatePartitions {
                name,
                new_partition_shards,
            } => {
                let first = before
                    .topics
                    .get(name)
                    .map_or(0, |t| t.partition_shards.len());
                let configs = before
                    .topics
                    .get(name)
                    .map(|t| t.configs.clone())
                    .unwrap_or_default();
                for (i, shard) in new_partition_shards.iter().enumerate() {
                    if *shard == self.id {
                        self.open_partition(name, (first + i) as PartitionId, &configs)
                            .await;
                    }
                }
            }
            MetadataCommand::DeleteTopic { name } => {
                let owned: Vec<_> = self
                    .partitions
                    .borrow()
                    .keys()
                    .filter(|(t, _)| t == name)
                    .cloned()
                    .collect();
                for key in owned {
                    if key.0 == OFFSETS_TOPIC {
                        self.groups.unload(key.1);
                    }
                    let removed = self.partitions.borrow_mut().remove(&key);
                    if let Some(p) = removed {
                        if let Err(e) = p.log.close().await {
                            tracing::warn!(topic = %key.0, partition = key.1, error = %e, "closing a deleted partition");
                        }
                        p.hw_changed.notify_all();
                        let dir = self.partition_dir(&key.0, key.1);
                        if let Err(e) = self.disk.remove_dir_all(&dir).await {
                            tracing::warn!(dir = ?dir, error = %e, "removing a deleted partition's files");
                        }
                    }
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
                self.disk.remove_empty_dir(&self.config.data_dir.join(name));
                self.groups.topic_deleted(name);
            }
            MetadataCommand::AllocateProducerIds { .. } => {}
        }
    }
}

fn proposal_error(error: ErrorCode, message: &str) -> Proposed {
    Err((error, message.to_owned()))
}
