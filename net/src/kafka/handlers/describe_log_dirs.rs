//! DescribeLogDirs (1–4): the replicas this broker holds in its one log
//! directory (the node's data directory), with each one's size in bytes
//! and offset lag (`kafka-log-dirs.sh --describe`, and
//! `kafka-reassign-partitions.sh`, which asks where each replica lives).
//!
//! Every shard is asked for the replicas it holds; with topics named, only
//! those partitions are listed, and ones this broker does not hold are
//! left out, as Kafka does. The volume's total and usable bytes (v4) are
//! not measured here and answer -1, Kafka's "unknown".

use std::collections::BTreeMap;
use std::rc::Rc;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{
    ApiKey, DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_core::ErrorCode;
use sluice_shard::LogDirs;

use super::{Call, Handler, Outcome};
use crate::kafka::context::Context;

/// The DescribeLogDirs handler: [`handle`], at versions 1–4.
pub struct DescribeLogDirsHandler;

impl Handler for DescribeLogDirsHandler {
    const KEY: ApiKey = ApiKey::DescribeLogDirs;
    const NAME: &'static str = "DescribeLogDirs";
    const MIN_VERSION: i16 = 1;
    const MAX_VERSION: i16 = 4;
    type Request = DescribeLogDirsRequest;
    type Response = DescribeLogDirsResponse;

    async fn handle(call: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
        Outcome::Answer(handle(call.ctx, &request).await)
    }
}

/// Answers a DescribeLogDirs request.
pub async fn handle(
    ctx: &Rc<Context>,
    request: &DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    let wanted = |topic: &str, partition: i32| match &request.topics {
        None => true,
        Some(topics) => topics
            .iter()
            .any(|t| t.topic.0.as_str() == topic && t.partitions.contains(&partition)),
    };
    let mut by_topic: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
    let mut error = ErrorCode::None;
    for shard in 0..ctx.shard.shards {
        match ctx.shard.call(shard, LogDirs).await {
            Ok(replicas) => {
                for r in replicas
                    .into_iter()
                    .filter(|r| wanted(&r.topic, r.partition))
                {
                    by_topic.entry(r.topic).or_default().push(
                        DescribeLogDirsPartition::default()
                            .with_partition_index(r.partition)
                            .with_partition_size(i64::try_from(r.size).unwrap_or(i64::MAX))
                            .with_offset_lag(r.offset_lag),
                    );
                }
            }
            Err(_) => error = ErrorCode::KafkaStorageError,
        }
    }
    let topics = by_topic
        .into_iter()
        .map(|(name, mut partitions)| {
            partitions.sort_by_key(|p| p.partition_index);
            DescribeLogDirsTopic::default()
                .with_name(TopicName(StrBytes::from_string(name)))
                .with_partitions(partitions)
        })
        .collect();
    let dir = ctx.shard.config.data_dir.to_string_lossy().into_owned();
    DescribeLogDirsResponse::default().with_results(vec![DescribeLogDirsResult::default()
        .with_error_code(error.code())
        .with_log_dir(StrBytes::from_string(dir))
        .with_topics(topics)
        .with_total_bytes(-1)
        .with_usable_bytes(-1)])
}
