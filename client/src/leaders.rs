//! Where a topic's partitions are led, and a connection to each leader,
//! for the tools that produce and fetch (`sluice produce`, `sluice
//! consume`).
//!
//! Owns: one Metadata request for the topic (again when asked to
//! [`refresh`](Leaders::refresh), after a NOT_LEADER_OR_FOLLOWER) and at
//! most one connection per broker, opened when first needed.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::anyhow;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{MetadataRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::connection::Client;
use crate::hint::check_kafka;

const TIMEOUT: Duration = Duration::from_secs(30);

/// A topic's partition leaders and the connections to them.
pub struct Leaders {
    bootstrap: String,
    topic: String,
    /// Indexed by partition: the leader's broker id (-1: none).
    leaders: Vec<i32>,
    addresses: HashMap<i32, String>,
    connections: HashMap<i32, Client>,
    /// The topic's id (Fetch names topics by id from v13).
    pub topic_id: uuid::Uuid,
}

impl Leaders {
    /// Asks `bootstrap` where `topic`'s partitions are led.
    pub fn discover(bootstrap: &str, topic: &str) -> anyhow::Result<Leaders> {
        let mut leaders = Leaders {
            bootstrap: bootstrap.to_owned(),
            topic: topic.to_owned(),
            leaders: Vec::new(),
            addresses: HashMap::new(),
            connections: HashMap::new(),
            topic_id: uuid::Uuid::nil(),
        };
        leaders.refresh()?;
        Ok(leaders)
    }

    /// Asks again (leadership moved).
    pub fn refresh(&mut self) -> anyhow::Result<()> {
        let mut client = Client::connect(&self.bootstrap, TIMEOUT)?;
        let request = MetadataRequest::default()
            .with_allow_auto_topic_creation(false)
            .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(
                TopicName(StrBytes::from_string(self.topic.clone())),
            ))]));
        let response = client.send(&request, 12)?;
        let t = response
            .topics
            .first()
            .ok_or_else(|| anyhow!("the broker answered no topic {}", self.topic))?;
        check_kafka(&format!("topic {}", self.topic), t.error_code, None)?;
        let mut leaders = vec![-1; t.partitions.len()];
        for p in &t.partitions {
            if let Some(slot) = usize::try_from(p.partition_index)
                .ok()
                .and_then(|i| leaders.get_mut(i))
            {
                *slot = p.leader_id.0;
            }
        }
        self.leaders = leaders;
        self.topic_id = t.topic_id;
        self.addresses = response
            .brokers
            .iter()
            .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
            .collect();
        Ok(())
    }

    /// The topic's partition count.
    pub fn partition_count(&self) -> i32 {
        self.leaders.len() as i32
    }

    /// The connection to `partition`'s leader.
    pub fn client_for(&mut self, partition: i32) -> anyhow::Result<&mut Client> {
        let leader = usize::try_from(partition)
            .ok()
            .and_then(|i| self.leaders.get(i))
            .copied()
            .unwrap_or(-1);
        if leader < 0 {
            return Err(anyhow!(
                "{}/{partition} has no leader now\n  hint: try again once the cluster elected one",
                self.topic
            ));
        }
        if !self.connections.contains_key(&leader) {
            let address = self
                .addresses
                .get(&leader)
                .ok_or_else(|| anyhow!("broker {leader} is not in the metadata"))?;
            let client = Client::connect(address, TIMEOUT)?;
            self.connections.insert(leader, client);
        }
        self.connections
            .get_mut(&leader)
            .ok_or_else(|| anyhow!("no connection to broker {leader}"))
    }
}
