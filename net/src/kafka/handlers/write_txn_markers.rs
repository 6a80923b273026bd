//! WriteTxnMarkers (1): another broker's transaction coordinator asks this
//! broker to append a transaction's commit or abort marker to partitions
//! it leads. One message per owner shard; each partition answers once its
//! marker is durable on its in-sync replicas.

use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{ApiKey, WriteTxnMarkersRequest, WriteTxnMarkersResponse};
use sluice_core::txn::marker::{ControlType, Marker};
use sluice_core::ErrorCode;
use sluice_shard::message::WriteTxnMarkers;

use super::owners::ByOwner;
use super::{Call, Handler, Outcome};

/// The WriteTxnMarkers handler, at version 1.
pub struct WriteTxnMarkersHandler;

impl Handler for WriteTxnMarkersHandler {
    const KEY: ApiKey = ApiKey::WriteTxnMarkers;
    const NAME: &'static str = "WriteTxnMarkers";
    const MIN_VERSION: i16 = 1;
    const MAX_VERSION: i16 = 1;
    type Request = WriteTxnMarkersRequest;
    type Response = WriteTxnMarkersResponse;

    async fn handle(call: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
        let ctx = call.ctx;
        let mut by_owner = ByOwner::default();
        // Per marker, per topic, per partition: its place, or its error.
        let mut plans: Vec<Vec<Vec<Result<usize, ErrorCode>>>> = Vec::new();
        {
            let metadata = ctx.shard.metadata();
            for m in &request.markers {
                let marker = Marker {
                    producer_id: m.producer_id.0,
                    producer_epoch: m.producer_epoch,
                    control: if m.transaction_result {
                        ControlType::Commit
                    } else {
                        ControlType::Abort
                    },
                    coordinator_epoch: m.coordinator_epoch,
                };
                let mut topics = Vec::with_capacity(m.topics.len());
                for t in &m.topics {
                    let name = t.name.0.as_str();
                    let topic = metadata.topics.get(name);
                    let places = t
                        .partition_indexes
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
                            Ok(by_owner.push(owner, (name.to_owned(), *p, marker)))
                        })
                        .collect();
                    topics.push(places);
                }
                plans.push(topics);
            }
        }
        let answers = by_owner
            .call(
                &ctx.shard,
                |markers| WriteTxnMarkers { markers },
                |errors| errors,
            )
            .await;
        let markers = request
            .markers
            .iter()
            .zip(plans)
            .map(|(m, topics)| {
                WritableTxnMarkerResult::default()
                    .with_producer_id(m.producer_id)
                    .with_topics(
                        m.topics
                            .iter()
                            .zip(topics)
                            .map(|(t, places)| {
                                WritableTxnMarkerTopicResult::default()
                                    .with_name(t.name.clone())
                                    .with_partitions(
                                        t.partition_indexes
                                            .iter()
                                            .zip(places)
                                            .map(|(p, place)| {
                                                let error = match place {
                                                    Err(e) => e,
                                                    Ok(i) => match &answers[i].1 {
                                                        Ok(e) => *e,
                                                        Err(_) => ErrorCode::NotLeaderOrFollower,
                                                    },
                                                };
                                                WritableTxnMarkerPartitionResult::default()
                                                    .with_partition_index(*p)
                                                    .with_error_code(error.code())
                                            })
                                            .collect(),
                                    )
                            })
                            .collect(),
                    )
            })
            .collect();
        Outcome::Answer(WriteTxnMarkersResponse::default().with_markers(markers))
    }
}
