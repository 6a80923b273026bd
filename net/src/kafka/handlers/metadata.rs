//! Metadata (0–12): brokers, topics and partitions; auto-creates unknown
//! topics when `auto_create_topics_enable` and the client allows it. The
//! topic's and the cluster's authorized operations, when asked (v8+), are
//! every operation each supports: there is no authorizer.

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{ApiKey, BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use sluice_core::metadata::{TopicMeta, NO_LEADER};
use sluice_core::ErrorCode;
use uuid::Uuid;

use super::topics::{auto_create, topic_by_id};
use super::{Call, Handler, Outcome};
use crate::kafka::context::Context;

/// The operations a client may do on a topic, as a bit field (bit n for
/// Kafka's `AclOperation` code n): with no authorizer, every operation a
/// topic supports (READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE,
/// DESCRIBE_CONFIGS, ALTER_CONFIGS), as Kafka answers without one.
pub const TOPIC_AUTHORIZED_OPERATIONS: i32 = bits(&[3, 4, 5, 6, 7, 8, 10, 11]);

/// The same for the cluster: CREATE, ALTER, DESCRIBE, CLUSTER_ACTION,
/// DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE.
pub const CLUSTER_AUTHORIZED_OPERATIONS: i32 = bits(&[5, 7, 8, 9, 10, 11, 12]);

/// What an authorized-operations field holds when it was not asked for.
pub const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

const fn bits(codes: &[u8]) -> i32 {
    let mut out = 0i32;
    let mut i = 0;
    while i < codes.len() {
        out |= 1 << codes[i];
        i += 1;
    }
    out
}

/// The Metadata handler: [`handle`], at versions 0–12.
pub struct MetadataHandler;

impl Handler for MetadataHandler {
    const KEY: ApiKey = ApiKey::Metadata;
    const NAME: &'static str = "Metadata";
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 12;
    type Request = MetadataRequest;
    type Response = MetadataResponse;

    async fn handle(call: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
        Outcome::Answer(handle(call.ctx, request).await)
    }
}

/// Answers a Metadata request.
pub async fn handle(ctx: &Context, request: MetadataRequest) -> MetadataResponse {
    let names: Vec<(Option<String>, Uuid)> = match &request.topics {
        None => ctx
            .shard
            .metadata()
            .topics
            .keys()
            .map(|n| (Some(n.clone()), Uuid::nil()))
            .collect(),
        Some(topics) => topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.0.as_str().to_owned()), t.topic_id))
            .collect(),
    };
    let mut topics = Vec::with_capacity(names.len());
    for (name, id) in names {
        // A topic asked for by its id has no name, or an empty one (the
        // Java client's, for the topics a KIP-848 assignment names by id).
        let name = match name.filter(|n| !n.is_empty() || id.is_nil()) {
            Some(name) => name,
            None => match topic_by_id(ctx, id) {
                Some(name) => name,
                None => {
                    topics.push(
                        MetadataResponseTopic::default()
                            .with_error_code(ErrorCode::UnknownTopicId.code())
                            .with_topic_id(id),
                    );
                    continue;
                }
            },
        };
        let mut error = ErrorCode::None;
        let mut meta = ctx.shard.metadata().topics.get(&name).cloned();
        if meta.is_none() && request.allow_auto_topic_creation {
            match auto_create(ctx, &name).await {
                Ok(()) => meta = ctx.shard.metadata().topics.get(&name).cloned(),
                Err(e) => error = e,
            }
        }
        let topic = match meta {
            Some(meta) => topic_response(ctx, &name, &meta).with_topic_authorized_operations(
                if request.include_topic_authorized_operations {
                    TOPIC_AUTHORIZED_OPERATIONS
                } else {
                    AUTHORIZED_OPERATIONS_OMITTED
                },
            ),
            None => MetadataResponseTopic::default()
                .with_name(Some(TopicName(StrBytes::from_string(name))))
                .with_error_code(
                    if error == ErrorCode::None {
                        ErrorCode::UnknownTopicOrPartition
                    } else {
                        error
                    }
                    .code(),
                ),
        };
        topics.push(topic);
    }
    MetadataResponse::default()
        .with_brokers(brokers(ctx))
        .with_cluster_id(Some(ctx.cluster_id.clone()))
        .with_controller_id(BrokerId(
            sluice_shard::shard::controller_id().unwrap_or(ctx.node_id),
        ))
        .with_topics(topics)
        .with_cluster_authorized_operations(if request.include_cluster_authorized_operations {
            CLUSTER_AUTHORIZED_OPERATIONS
        } else {
            AUTHORIZED_OPERATIONS_OMITTED
        })
}

/// Every live (registered, unfenced) broker; this one alone while its
/// registration has not reached this copy of the metadata.
fn brokers(ctx: &Context) -> Vec<MetadataResponseBroker> {
    let metadata = ctx.shard.metadata();
    let mut brokers: Vec<MetadataResponseBroker> = metadata
        .live_brokers()
        .map(|b| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.id))
                .with_host(StrBytes::from_string(b.host.clone()))
                .with_port(b.port)
                .with_rack(b.rack.clone().map(StrBytes::from_string))
        })
        .collect();
    if brokers.is_empty() {
        brokers.push(
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(ctx.node_id))
                .with_host(ctx.advertised_host.clone())
                .with_port(ctx.advertised_port),
        );
    }
    brokers
}

fn topic_response(ctx: &Context, name: &str, meta: &TopicMeta) -> MetadataResponseTopic {
    let metadata = ctx.shard.metadata();
    let fenced = |b: &i32| metadata.brokers.get(b).is_none_or(|m| m.fenced);
    let partitions = meta
        .partitions
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let ids = |list: &mut dyn Iterator<Item = i32>| list.map(BrokerId).collect::<Vec<_>>();
            let error = if p.leader == NO_LEADER {
                ErrorCode::LeaderNotAvailable
            } else {
                ErrorCode::None
            };
            MetadataResponsePartition::default()
                .with_error_code(error.code())
                .with_partition_index(i as i32)
                .with_leader_id(BrokerId(p.leader))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(ids(&mut p.replicas.iter().map(|r| r.broker)))
                .with_isr_nodes(ids(&mut p.isr.iter().copied()))
                .with_offline_replicas(ids(&mut p
                    .replicas
                    .iter()
                    .map(|r| r.broker)
                    .filter(|b| fenced(b))))
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(name.to_owned()))))
        .with_topic_id(Uuid::from_bytes(meta.id))
        .with_is_internal(sluice_core::types::is_internal_topic(name))
        .with_partitions(partitions)
}
