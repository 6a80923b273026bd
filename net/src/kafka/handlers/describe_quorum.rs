//! DescribeQuorum (0–2): the controller quorum, as `kafka-metadata-quorum.sh
//! describe --status` and Admin.describeMetadataQuorum read it.
//!
//! Answered for Kafka's metadata partition (`__cluster_metadata`-0) from
//! the controller leader's view (shard 0 asks the leader over the internal
//! listener when another voter leads): the leader and its epoch (the Raft
//! term), the high watermark (the offset after the last committed entry)
//! and each voter's log end and last contact. Every broker is a voter, so
//! there are no observers. Any other partition gets
//! UNKNOWN_TOPIC_OR_PARTITION; with no reachable leader the partition gets
//! NOT_LEADER_OR_FOLLOWER, as a Kafka node that does not lead answers.

use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_core::ErrorCode;
use sluice_shard::message::{DescribeQuorum, QuorumStatus};
use sluice_shard::shard::CONTROLLER_DIR;

use super::{Call, Handler, Outcome};
use crate::kafka::context::Context;

/// The DescribeQuorum handler: [`handle`], at versions 0–2.
pub struct DescribeQuorumHandler;

impl Handler for DescribeQuorumHandler {
    const KEY: ApiKey = ApiKey::DescribeQuorum;
    const NAME: &'static str = "DescribeQuorum";
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 2;
    type Request = DescribeQuorumRequest;
    type Response = DescribeQuorumResponse;

    async fn handle(call: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
        Outcome::Answer(handle(call.ctx, request, call.version).await)
    }
}

/// Kafka's name for the controllers' listener.
const LISTENER: &str = "CONTROLLER";

/// Answers a DescribeQuorum request.
pub async fn handle(
    ctx: &Context,
    request: DescribeQuorumRequest,
    version: i16,
) -> DescribeQuorumResponse {
    let asks_for_metadata_partition = matches!(
        &request.topics[..],
        [topic] if topic.topic_name.0.as_str() == CONTROLLER_DIR
            && matches!(&topic.partitions[..], [p] if p.partition_index == 0)
    );
    // Messages exist from v2.
    let message = |text: &'static str| (version >= 2).then(|| StrBytes::from_static_str(text));
    if !asks_for_metadata_partition {
        return DescribeQuorumResponse::default()
            .with_error_code(ErrorCode::UnknownTopicOrPartition.code())
            .with_error_message(message("only __cluster_metadata-0 has a quorum"));
    }
    let status = match ctx.shard.call(0, DescribeQuorum).await {
        Ok(Some(status)) => status,
        _ => {
            return DescribeQuorumResponse::default()
                .with_error_code(ErrorCode::NotController.code())
                .with_error_message(message("the controller quorum member is not running"))
        }
    };
    let now_ms = ctx.shard.env().now_ms();
    let partition = partition(&status, now_ms);
    // Node endpoints exist from v2.
    let nodes = status
        .voters
        .iter()
        .filter(|_| version >= 2)
        .map(|v| {
            let (host, port) = v.rpc_addr.rsplit_once(':').unwrap_or((&v.rpc_addr, "0"));
            Node::default()
                .with_node_id(BrokerId(v.id as i32))
                .with_listeners(vec![Listener::default()
                    .with_name(StrBytes::from_static_str(LISTENER))
                    .with_host(StrBytes::from_string(host.to_owned()))
                    .with_port(port.parse().unwrap_or(0))])
        })
        .collect();
    DescribeQuorumResponse::default()
        .with_topics(vec![TopicData::default()
            .with_topic_name(TopicName(StrBytes::from_static_str(CONTROLLER_DIR)))
            .with_partitions(vec![partition])])
        .with_nodes(nodes)
}

fn partition(status: &QuorumStatus, now_ms: i64) -> PartitionData {
    let leader = status.leader.map_or(-1, |l| l as i32);
    let data = PartitionData::default()
        .with_partition_index(0)
        .with_leader_id(BrokerId(leader))
        .with_leader_epoch(i32::try_from(status.term).unwrap_or(i32::MAX));
    if !status.from_leader() {
        return data.with_error_code(ErrorCode::NotLeaderOrFollower.code());
    }
    let voters = status
        .voters
        .iter()
        .map(|v| {
            let at = v.last_answer_ms_ago.map_or(-1, |ago| now_ms - ago as i64);
            ReplicaState::default()
                .with_replica_id(BrokerId(v.id as i32))
                .with_log_end_offset(v.log_end_offset)
                .with_last_fetch_timestamp(at)
                // A voter that answered the leader has every entry it was
                // sent; the leader tracks no finer catch-up time.
                .with_last_caught_up_timestamp(if v.log_end_offset >= status.high_watermark {
                    at
                } else {
                    -1
                })
        })
        .collect();
    data.with_high_watermark(status.high_watermark)
        .with_current_voters(voters)
}
