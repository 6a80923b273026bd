//! This broker's life in the cluster: it registers with the controller,
//! heartbeats, and asks to be fenced when it stops; on the controller
//! leader, brokers whose heartbeats stopped are fenced.
//!
//! Owns: the broker side of Kafka's broker lifecycle (KIP-631) on shard 0,
//! and the leader's fencing tick. Heartbeats and registrations are
//! proposals, so a broker that is not the controller forwards them like
//! any other; the leader answers a heartbeat from memory
//! ([`sluice_core::metadata::liveness::Liveness`]) and commits only
//! changes: a registration, a fence, an unfence.
//!
//! Invariants: a broker serves clients only after its registration
//! committed and its own quorum member applied it (so placement knows it
//! and Metadata lists it); once it asked to leave, it heartbeats no more; a
//! heartbeat
//! from an incarnation the controller does not know gets
//! STALE_BROKER_EPOCH and the broker registers again; only the leader
//! fences, and not before it has led for a whole session timeout.

use sluice_core::metadata::{BrokerId, BrokerRegistration};

use super::*;
use crate::message::{Proposal, Propose};

/// Pause between attempts to register while no controller answers.
const REGISTER_RETRY: Duration = Duration::from_millis(200);
/// Pause between looks at whether this node applied its registration.
const APPLY_POLL: Duration = Duration::from_millis(5);
/// Longest a controlled shutdown waits for the controller.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

impl Shard {
    /// What this broker registers (shard 0; None elsewhere).
    fn registration(&self) -> Option<BrokerRegistration> {
        let controller = self.controller.as_ref()?;
        let (host, port) = match self.config.advertised_kafka() {
            Ok(found) => found,
            Err(e) => {
                tracing::error!(error = %e, "this broker's Kafka address cannot be registered");
                return None;
            }
        };
        Some(BrokerRegistration {
            id: self.config.node_id,
            incarnation: controller.incarnation,
            rack: self.config.kafka.broker_rack.clone(),
            host,
            port,
            rpc_addr: controller.rpc_addr.clone(),
            shards: self.shards,
            durable_logs: self.config.log.flush == sluice_core::config::FlushPolicy::Always,
        })
    }

    /// Shard 0, before it hands every shard the metadata: registers this broker
    /// (retrying until a controller commits it), moves the metadata of an
    /// older data directory into the quorum (first start of a lone node),
    /// then (with other voters) heartbeats in the background for as long as
    /// the node runs.
    pub async fn join_cluster(self: &Rc<Self>) -> Result<(), String> {
        if self.controller.is_none() {
            return Ok(());
        }
        let registration = self
            .registration()
            .ok_or("this broker's Kafka address cannot be registered")?;
        let mut attempts = 0u64;
        loop {
            let proposal = Proposal::RegisterBroker(registration.clone());
            match self.propose(Propose(proposal)).await {
                Ok(_) => break,
                Err((code, message)) => {
                    attempts += 1;
                    if attempts % 25 == 1 {
                        tracing::warn!(%code, message, attempts, "registering with the controller");
                    }
                    self.env.sleep(REGISTER_RETRY).await;
                }
            }
        }
        // Committed on the leader; serve once this node applied it too, so
        // every shard starts from metadata that lists this broker.
        let applied = |shard: &Shard| {
            shard.controller.as_ref().is_some_and(|c| {
                c.member
                    .machine
                    .state()
                    .brokers
                    .get(&registration.id)
                    .is_some_and(|b| b.registration.incarnation == registration.incarnation)
            })
        };
        while !applied(self) {
            self.env.sleep(APPLY_POLL).await;
        }
        tracing::info!(broker = registration.id, "registered with the controller");
        self.migrate_legacy().await.map_err(|e| e.to_string())?;
        // A lone node is its own controller: there is nobody to tell it is
        // alive, and nobody to fence it.
        let alone = self.controller.as_ref().is_some_and(|c| c.member.alone);
        if !alone {
            let shard = self.clone();
            glommio::spawn_local(async move { shard.heartbeat_loop().await }).detach();
        }
        Ok(())
    }

    async fn heartbeat_loop(self: Rc<Self>) {
        let every = Duration::from_millis(self.config.kafka.broker_heartbeat_interval_ms.max(1));
        let Some(registration) = self.registration() else {
            return;
        };
        let balance_every = self
            .config
            .kafka
            .leader_imbalance_check_interval_seconds
            .max(1)
            * 1000;
        let mut balance_at = self.env.monotonic_ms() + balance_every;
        loop {
            self.env.sleep(every).await;
            if self.env.monotonic_ms() >= balance_at {
                balance_at = self.env.monotonic_ms() + balance_every;
                self.balance_leaders().await;
            }
            if self.controller.as_ref().is_none_or(|c| c.leaving.get()) {
                // A heartbeat now would unfence what the controlled
                // shutdown fenced.
                return;
            }
            let beat = Proposal::BrokerHeartbeat {
                id: registration.id,
                incarnation: registration.incarnation,
            };
            let session = Duration::from_millis(self.config.kafka.broker_session_timeout_ms);
            let Some(answer) = self.propose_within(beat, session).await else {
                tracing::debug!("a heartbeat was not answered within the session timeout");
                continue;
            };
            match answer {
                Ok(_) => {}
                Err((ErrorCode::StaleBrokerEpoch, _)) => {
                    tracing::warn!("the controller does not know this broker; registering again");
                    let again = Proposal::RegisterBroker(registration.clone());
                    if let Err((code, message)) = self.propose(Propose(again)).await {
                        tracing::warn!(%code, message, "registering again");
                    }
                }
                Err((code, message)) => {
                    tracing::debug!(%code, message, "a heartbeat was not answered");
                }
            }
            self.fence_expired().await;
        }
    }

    /// [`Shard::propose`], given up after `limit` on this shard's clock
    /// (None then; dropping the proposal forgets it).
    async fn propose_within(
        self: &Rc<Self>,
        proposal: Proposal,
        limit: Duration,
    ) -> Option<crate::message::Proposed> {
        futures_lite::future::or(
            async { Some(self.propose(Propose(proposal)).await) },
            async {
                self.env.sleep(limit).await;
                None
            },
        )
        .await
    }

    /// On the controller leader, with `auto.leader.rebalance.enable`: when
    /// some broker leads too few of the partitions it is the preferred
    /// leader of, elects the preferred leaders that are in sync and live.
    async fn balance_leaders(self: &Rc<Self>) {
        let Some(controller) = &self.controller else {
            return;
        };
        let kafka = &self.config.kafka;
        let leading = controller
            .member
            .leader()
            .is_some_and(|(leader, _)| leader == controller.member.me);
        if !kafka.auto_leader_rebalance_enable || !leading {
            return;
        }
        let imbalanced = sluice_core::metadata::election::imbalanced(
            &controller.member.machine.state(),
            kafka.leader_imbalance_per_broker_percentage,
        );
        if !imbalanced {
            return;
        }
        match self
            .propose(Propose(Proposal::ElectLeaders { partitions: None }))
            .await
        {
            Ok(moved) => tracing::info!(
                partitions = moved,
                "leadership moved back to preferred replicas"
            ),
            Err((code, message)) => tracing::warn!(%code, message, "balancing leaders"),
        }
    }

    /// On the controller leader: fences every broker not heard from for a
    /// session timeout.
    async fn fence_expired(self: &Rc<Self>) {
        let Some(controller) = &self.controller else {
            return;
        };
        let now = self.env.monotonic_ms();
        let leading = controller.member.alone
            || controller
                .member
                .leader()
                .is_some_and(|(leader, _)| leader == controller.member.me);
        let expired = {
            let mut liveness = controller.liveness.borrow_mut();
            if !leading {
                liveness.not_leading();
                return;
            }
            liveness.leading(now);
            liveness.expired(&controller.member.machine.state(), now)
        };
        for id in expired {
            tracing::warn!(
                broker = id,
                session_timeout_ms = self.config.kafka.broker_session_timeout_ms,
                "no heartbeat within the session timeout: fencing the broker"
            );
            if let Err((code, message)) = self
                .commit_command(MetadataCommand::FenceBroker { id })
                .await
            {
                tracing::warn!(%code, message, broker = id, "fencing");
            }
        }
    }

    /// The controller's answer to a heartbeat from `id`: nothing to commit
    /// (Ok(None)), an unfence to commit, or STALE_BROKER_EPOCH.
    pub(super) fn heard_from(
        &self,
        id: BrokerId,
        incarnation: [u8; 16],
    ) -> Result<Option<MetadataCommand>, (ErrorCode, String)> {
        let controller = self
            .controller
            .as_ref()
            .ok_or_else(|| (ErrorCode::NotController, "not the controller".to_owned()))?;
        let now = self.env.monotonic_ms();
        let state = controller.member.machine.state();
        let answer = controller
            .liveness
            .borrow_mut()
            .heartbeat(&state, id, incarnation, now);
        answer.map_err(|_| {
            (
                ErrorCode::StaleBrokerEpoch,
                format!("broker {id} is not registered with this incarnation"),
            )
        })
    }

    /// Shard 0 of a cluster, when the node stops: asks the controller to
    /// fence this broker now (Kafka's controlled shutdown), waiting a
    /// bounded while. A lone node has nobody to hand its partitions to.
    pub async fn leave_cluster(self: &Rc<Self>) {
        let Some(controller) = &self.controller else {
            return;
        };
        controller.leaving.set(true);
        let Some(registration) = self.registration().filter(|_| !controller.member.alone) else {
            return;
        };
        let proposal = Proposal::ShutdownBroker {
            id: registration.id,
            incarnation: registration.incarnation,
        };
        match self.propose_within(proposal, SHUTDOWN_WAIT).await {
            Some(Ok(_)) => tracing::info!("the controller fenced this broker for its shutdown"),
            Some(Err((code, message))) => {
                tracing::warn!(%code, message, "controlled shutdown was refused")
            }
            None => tracing::warn!("no controller answered the controlled shutdown"),
        }
    }
}
