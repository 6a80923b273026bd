//! ListPartitionReassignments (0): the partition moves in progress, with
//! each partition's replicas and those being added and removed
//! (`kafka-reassign-partitions.sh --verify` and `--list`), from this
//! broker's metadata. With no topics named, every move; partitions named
//! that are not moving, or do not exist, are left out, as Kafka does.

use std::rc::Rc;

use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_core::metadata::PartitionMeta;

use super::{Call, Handler, Outcome};
use crate::kafka::context::Context;

/// The ListPartitionReassignments handler: [`handle`], at version 0.
pub struct ListPartitionReassignmentsHandler;

impl Handler for ListPartitionReassignmentsHandler {
    const KEY: ApiKey = ApiKey::ListPartitionReassignments;
    const NAME: &'static str = "ListPartitionReassignments";
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 0;
    type Request = ListPartitionReassignmentsRequest;
    type Response = ListPartitionReassignmentsResponse;

    async fn handle(call: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
        Outcome::Answer(handle(call.ctx, &request))
    }
}

/// Answers a ListPartitionReassignments request.
pub fn handle(
    ctx: &Rc<Context>,
    request: &ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    let metadata = ctx.shard.metadata();
    let mut topics = Vec::new();
    for (name, topic) in &metadata.topics {
        let named: Option<&[i32]> = match &request.topics {
            None => None,
            Some(list) => match list.iter().find(|t| t.name.0.as_str() == name) {
                Some(t) => Some(&t.partition_indexes),
                None => continue,
            },
        };
        let partitions: Vec<OngoingPartitionReassignment> = topic
            .partitions
            .iter()
            .enumerate()
            .filter(|(i, p)| p.reassigning() && named.is_none_or(|n| n.contains(&(*i as i32))))
            .map(|(i, p)| ongoing(i as i32, p))
            .collect();
        if !partitions.is_empty() {
            topics.push(
                OngoingTopicReassignment::default()
                    .with_name(TopicName(StrBytes::from_string(name.clone())))
                    .with_partitions(partitions),
            );
        }
    }
    ListPartitionReassignmentsResponse::default().with_topics(topics)
}

fn ongoing(index: i32, p: &PartitionMeta) -> OngoingPartitionReassignment {
    let ids = |list: &[i32]| list.iter().map(|b| BrokerId(*b)).collect();
    OngoingPartitionReassignment::default()
        .with_partition_index(index)
        .with_replicas(ids(&p.replica_brokers()))
        .with_adding_replicas(ids(&p.adding))
        .with_removing_replicas(ids(&p.removing))
}
