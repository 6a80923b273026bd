//! Which brokers the controller leader still hears from.
//!
//! Owns: the leader's record of each broker's last heartbeat and the
//! decision to fence a broker whose heartbeats stopped for longer than the
//! session timeout (Kafka's `broker.session.timeout.ms`). Pure: the time
//! is an argument, so the controller and the simulator drive the same
//! code.
//!
//! Invariants: a leader fences nobody before a whole session timeout has
//! passed since it became leader (a new leader has heard from no one yet);
//! a broker that is fenced already is never reported again.

use std::collections::BTreeMap;

use super::{BrokerId, MetadataCommand, MetadataState};

/// A heartbeat from an incarnation of a broker the metadata does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownIncarnation;

/// The controller leader's view of broker heartbeats.
#[derive(Debug, Clone)]
pub struct Liveness {
    session_timeout_ms: u64,
    heard: BTreeMap<BrokerId, u64>,
    leading_since: Option<u64>,
}

impl Liveness {
    pub fn new(session_timeout_ms: u64) -> Liveness {
        Liveness {
            session_timeout_ms,
            heard: BTreeMap::new(),
            leading_since: None,
        }
    }

    /// Notes that this node leads (or still leads) the quorum at `now`.
    pub fn leading(&mut self, now_ms: u64) {
        if self.leading_since.is_none() {
            self.leading_since = Some(now_ms);
            self.heard.clear();
        }
    }

    /// Notes that this node no longer leads: what it heard is stale.
    pub fn not_leading(&mut self) {
        self.leading_since = None;
        self.heard.clear();
    }

    /// A heartbeat from `broker` arrived at `now` (a registration counts:
    /// a broker back after being fenced must not be fenced again on its
    /// last heartbeat before it died).
    pub fn heard(&mut self, broker: BrokerId, now_ms: u64) {
        self.leading(now_ms);
        self.heard.insert(broker, now_ms);
    }

    /// The leader's answer to a heartbeat from `broker`'s `incarnation` at
    /// `now`: the change it calls for (an unfence, when the broker is
    /// fenced), or [`UnknownIncarnation`] when the metadata holds no such
    /// registration (Kafka's STALE_BROKER_EPOCH: the broker registers again).
    pub fn heartbeat(
        &mut self,
        state: &MetadataState,
        broker: BrokerId,
        incarnation: [u8; 16],
        now_ms: u64,
    ) -> Result<Option<MetadataCommand>, UnknownIncarnation> {
        match state.brokers.get(&broker) {
            Some(b) if b.registration.incarnation == incarnation => {
                self.heard(broker, now_ms);
                Ok(b.fenced
                    .then_some(MetadataCommand::UnfenceBroker { id: broker }))
            }
            _ => Err(UnknownIncarnation),
        }
    }

    /// Unfenced brokers not heard from for a session timeout, while this
    /// node leads.
    pub fn expired(&self, state: &MetadataState, now_ms: u64) -> Vec<BrokerId> {
        let Some(since) = self.leading_since else {
            return Vec::new();
        };
        state
            .brokers
            .values()
            .filter(|b| !b.fenced)
            .map(|b| b.registration.id)
            .filter(|id| {
                let last = self.heard.get(id).copied().unwrap_or(since).max(since);
                now_ms.saturating_sub(last) > self.session_timeout_ms
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::BrokerRegistration;
    use super::*;

    #[test]
    fn a_silent_broker_expires_after_a_session_and_only_while_leading() {
        let mut state = MetadataState::default();
        for id in [1, 2] {
            let registration = BrokerRegistration {
                id,
                incarnation: [0; 16],
                rack: None,
                host: "h".into(),
                port: 1,
                rpc_addr: "h:2".into(),
                shards: 1,
                durable_logs: false,
            };
            state
                .apply(&MetadataCommand::RegisterBroker(registration))
                .expect("registers");
        }
        let mut liveness = Liveness::new(1000);
        assert!(liveness.expired(&state, 5000).is_empty(), "not leading");
        liveness.leading(5000);
        liveness.heard(1, 5500);
        assert!(
            liveness.expired(&state, 6000).is_empty(),
            "a new leader waits"
        );
        assert_eq!(liveness.expired(&state, 6001), vec![2]);
        assert_eq!(liveness.expired(&state, 6501), vec![1, 2]);
        state
            .apply(&MetadataCommand::FenceBroker { id: 2 })
            .expect("fences");
        liveness.heard(1, 6400);
        assert!(
            liveness.expired(&state, 7000).is_empty(),
            "2 is fenced already"
        );
        assert_eq!(
            liveness.heartbeat(&state, 2, [9; 16], 7100),
            Err(UnknownIncarnation)
        );
        assert_eq!(
            liveness.heartbeat(&state, 2, [0; 16], 7100),
            Ok(Some(MetadataCommand::UnfenceBroker { id: 2 }))
        );
        assert_eq!(liveness.heartbeat(&state, 1, [0; 16], 7100), Ok(None));
        assert_eq!(liveness.expired(&state, 8200), vec![1]);
        liveness.not_leading();
        assert!(liveness.expired(&state, 99_000).is_empty());
    }
}
