//! The Kafka handlers over the shard core, with no I/O: requests go through
//! the registry's dispatch to a node of simulated shards (in-memory disk,
//! virtual clock, simulated mesh), so a test sees every message between
//! shards and moves time itself.

use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, ListOffsetsRequest, ProduceRequest, RequestHeader, RequestKind,
    ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_core::batch::BatchBuilder;
use sluice_core::config::FlushPolicy;
use sluice_net::kafka::context::Context;
use sluice_net::kafka::handlers::Outcome;
use sluice_net::kafka::registry::dispatch;
use sluice_shard::simulated::node::{Node, START_MS};

fn run<T>(test: impl std::future::Future<Output = T>) -> T {
    glommio::LocalExecutorBuilder::default()
        .make()
        .expect("an executor")
        .run(test)
}

fn header(key: ApiKey, version: i16) -> RequestHeader {
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
}

/// Dispatches `request` on `node`'s shard `entry` and drives it to its
/// answer (a pending Produce included).
async fn ask(
    node: &Node,
    entry: usize,
    key: ApiKey,
    version: i16,
    request: RequestKind,
) -> ResponseKind {
    let ctx = Rc::new(Context::new(node.shards[entry].clone()).expect("a context"));
    let outcome = node
        .drive(async move {
            let outcome = dispatch(&ctx, header(key, version), request, Bytes::new(), None)
                .await
                .expect("a listed API");
            match outcome {
                Outcome::Answer(r) => Some(r),
                Outcome::Pipelined(r) => r,
                Outcome::Pending(later) => later.await,
            }
        })
        .await;
    outcome.expect("an answer")
}

fn topic_name(name: &'static str) -> TopicName {
    TopicName(StrBytes::from_static_str(name))
}

fn produce_request(topic: &'static str, partitions: i32) -> ProduceRequest {
    let data = (0..partitions)
        .map(|p| {
            let batch: Bytes = BatchBuilder::new(START_MS)
                .record(None, Some(format!("v{p}").as_bytes()))
                .build();
            PartitionProduceData::default()
                .with_index(p)
                .with_records(Some(batch))
        })
        .collect();
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(1000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(data)])
}

#[test]
fn a_produce_to_many_partitions_costs_one_message_per_owner_shard() {
    run(async {
        let node = Node::start(2, FlushPolicy::Always).await;
        node.create_topic("t", 8).await;
        let before = node.mesh.sent();
        let answer = ask(&node, 0, ApiKey::Produce, 9, produce_request("t", 8).into()).await;
        let ResponseKind::Produce(answer) = answer else {
            panic!("a produce answer");
        };
        let partitions = &answer.responses[0].partition_responses;
        assert_eq!(partitions.len(), 8);
        assert!(
            partitions
                .iter()
                .all(|p| p.error_code == 0 && p.base_offset == 0),
            "{partitions:?}"
        );
        // Shard 1's four partitions: one append and one wait for the sync,
        // each a request and an answer. Per partition it would be sixteen.
        assert_eq!(node.mesh.sent() - before, 4);
    });
}

#[test]
fn list_offsets_asks_each_owner_once() {
    run(async {
        let node = Node::start(2, FlushPolicy::Always).await;
        node.create_topic("t", 8).await;
        ask(&node, 0, ApiKey::Produce, 9, produce_request("t", 8).into()).await;
        let partitions = (0..8)
            .map(|p| {
                ListOffsetsPartition::default()
                    .with_partition_index(p)
                    .with_timestamp(-1)
            })
            .collect();
        let request = ListOffsetsRequest::default().with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name("t"))
            .with_partitions(partitions)]);
        let before = node.mesh.sent();
        let ResponseKind::ListOffsets(answer) =
            ask(&node, 0, ApiKey::ListOffsets, 7, request.into()).await
        else {
            panic!("a ListOffsets answer");
        };
        let offsets: Vec<i64> = answer.topics[0]
            .partitions
            .iter()
            .map(|p| p.offset)
            .collect();
        assert_eq!(offsets, vec![1; 8], "the latest offset of each partition");
        assert_eq!(
            node.mesh.sent() - before,
            2,
            "one request to shard 1 and its answer"
        );
    });
}

#[test]
fn a_long_poll_fetch_is_answered_by_a_produce_before_its_deadline() {
    run(async {
        let node = Node::start(2, FlushPolicy::Always).await;
        node.create_topic("t", 2).await;
        let owner = node.shards[0]
            .metadata()
            .leader_shard(0, "t", 1)
            .expect("placed") as usize;
        let entry = 1 - owner;
        let fetch = FetchRequest::default()
            .with_max_wait_ms(500)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic_name("t"))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(1)
                    .with_fetch_offset(0)
                    .with_partition_max_bytes(1 << 20)])]);
        let ctx = Rc::new(Context::new(node.shards[entry].clone()).expect("a context"));
        let answered = Rc::new(std::cell::RefCell::new(None));
        let (slot, clock) = (answered.clone(), node.clock.clone());
        glommio::spawn_local(async move {
            let outcome = dispatch(
                &ctx,
                header(ApiKey::Fetch, 12),
                fetch.into(),
                Bytes::new(),
                None,
            )
            .await
            .expect("a listed API");
            let Outcome::Answer(ResponseKind::Fetch(answer)) = outcome else {
                panic!("a fetch answer");
            };
            *slot.borrow_mut() = Some((clock.now_ms(), answer));
        })
        .detach();
        for _ in 0..4 {
            node.settle().await;
            node.deliver_all().await;
        }
        assert_eq!(
            node.shards[owner].parked_watches(),
            1,
            "the fetch waits on the owner"
        );
        let started = node.clock.now_ms();
        node.clock.advance_to(started + 200);
        ask(
            &node,
            owner,
            ApiKey::Produce,
            9,
            produce_request("t", 2).into(),
        )
        .await;
        for _ in 0..4 {
            node.settle().await;
            node.deliver_all().await;
        }
        let (at, answer) = answered.borrow_mut().take().expect("answered");
        assert!(
            at < started + 500,
            "woken by the produce at {at}, not at the deadline"
        );
        let partition = &answer.responses[0].partitions[0];
        assert_eq!(partition.high_watermark, 1);
        assert!(partition.records.as_ref().is_some_and(|r| !r.is_empty()));
        assert_eq!(node.shards[owner].parked_watches(), 0);
    });
}
