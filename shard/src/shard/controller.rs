//! The controller role (shard 0) and metadata application (every shard).
//!
//! Owns: turning a client's proposal into a command against the
//! authoritative state, committing it to the metadata log, and having every
//! shard apply it in the same order; applying a command (or the start-up
//! snapshot) opens and closes the partitions a shard owns.

use sluice_core::metadata::check_partition_count;

use super::*;
use crate::message::{Apply, InstallSnapshot, Proposal, Propose, Proposed};

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
        let state = controller.log.state().clone();
        let command = match proposal {
            Proposal::CreateTopic {
                name,
                partitions,
                configs,
                validate_only,
            } => {
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
        if let Err(e) = controller.log.commit(&command, self.env.now_ms()).await {
            return proposal_error(e.error_code(), &e.to_string());
        }
        let mut value = 0;
        if let MetadataCommand::AllocateProducerIds { first, count } = &command {
            controller.producer_ids.set((first + 1, first + count));
            value = *first;
        }
        // Every shard applies the committed command (this one included).
        let applies = (0..self.shards).map(|shard| self.call(shard, Apply(command.clone())));
        for apply in applies.collect::<Vec<_>>() {
            if apply.await.is_err() {
                // Only when the node is stopping: the command is committed
                // and every shard gets it at the next start.
                tracing::warn!(
                    shard = self.id,
                    "a shard could not be told to apply a command"
                );
            }
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
