//! DescribeProducers (0): the producers each partition led here remembers
//! (`kafka-transactions.sh describe-producers`): id, epoch, last sequence,
//! last write time, and the first offset of an open transaction (-1 when
//! none) — how an operator finds a hanging transaction. A partition led
//! elsewhere gets NOT_LEADER_OR_FOLLOWER; one that does not exist
//! UNKNOWN_TOPIC_OR_PARTITION.

use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{
    ApiKey, DescribeProducersRequest, DescribeProducersResponse, ProducerId,
};
use sluice_core::ErrorCode;
use sluice_shard::message::DescribeProducers;

use super::owners::ByOwner;
use super::{Call, Handler, Outcome};

/// The DescribeProducers handler, at version 0.
pub struct DescribeProducersHandler;

impl Handler for DescribeProducersHandler {
    const KEY: ApiKey = ApiKey::DescribeProducers;
    const NAME: &'static str = "DescribeProducers";
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 0;
    type Request = DescribeProducersRequest;
    type Response = DescribeProducersResponse;

    async fn handle(call: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
        let ctx = call.ctx;
        let mut by_owner = ByOwner::default();
        // Per topic, per partition: its place, or its error.
        let mut plans: Vec<Vec<Result<usize, ErrorCode>>> = Vec::new();
        {
            let metadata = ctx.shard.metadata();
            for t in &request.topics {
                let name = t.name.0.as_str();
                let topic = metadata.topics.get(name);
                plans.push(
                    t.partition_indexes
                        .iter()
                        .map(|p| {
                            let meta = topic
                                .and_then(|t| t.partitions.get(usize::try_from(*p).ok()?))
                                .ok_or(ErrorCode::UnknownTopicOrPartition)?;
                            if meta.leader != ctx.node_id {
                                return Err(ErrorCode::NotLeaderOrFollower);
                            }
                            let owner = meta
                                .shard_on(ctx.node_id)
                                .ok_or(ErrorCode::NotLeaderOrFollower)?;
                            Ok(by_owner.push(owner, (name.to_owned(), *p)))
                        })
                        .collect(),
                );
            }
        }
        let mut answers: Vec<_> = by_owner
            .call(
                &ctx.shard,
                |partitions| DescribeProducers { partitions },
                |described| described,
            )
            .await
            .into_iter()
            .map(Some)
            .collect();
        let topics = request
            .topics
            .iter()
            .zip(plans)
            .map(|(t, places)| {
                let partitions = t
                    .partition_indexes
                    .iter()
                    .zip(places)
                    .map(|(p, place)| {
                        let described = match place {
                            Err(e) => Err(e),
                            Ok(i) => match answers[i].take() {
                                Some((_, Ok(described))) => described,
                                _ => Err(ErrorCode::NotLeaderOrFollower),
                            },
                        };
                        let answer = PartitionResponse::default().with_partition_index(*p);
                        match described {
                            Err(e) => answer.with_error_code(e.code()),
                            Ok(producers) => answer.with_active_producers(
                                producers
                                    .into_iter()
                                    .map(|a| {
                                        ProducerState::default()
                                            .with_producer_id(ProducerId(a.producer_id))
                                            .with_producer_epoch(i32::from(a.epoch))
                                            .with_last_sequence(a.last_sequence)
                                            .with_last_timestamp(a.last_timestamp_ms)
                                            .with_coordinator_epoch(a.coordinator_epoch)
                                            .with_current_txn_start_offset(a.txn_start_offset)
                                    })
                                    .collect(),
                            ),
                        }
                    })
                    .collect();
                TopicResponse::default()
                    .with_name(t.name.clone())
                    .with_partitions(partitions)
            })
            .collect();
        Outcome::Answer(DescribeProducersResponse::default().with_topics(topics))
    }
}
