//! The shard core without I/O: produce, fetch with long polls, routing
//! between shards and metadata application, driven step by step on the
//! in-memory disk, a virtual clock and a simulated mesh (`simulated`).
//! Nothing here touches a real disk, socket or clock: time moves only when
//! a test moves it.

use std::cell::RefCell;
use std::future::Future;
use std::path::Path;
use std::rc::Rc;

use bytes::Bytes;
use sluice_core::batch::{BatchBuilder, BatchIter};
use sluice_core::config::FlushPolicy;
use sluice_core::ErrorCode;
use sluice_log::storage::Storage;
use sluice_shard::message::{AwaitDurable, Fetch, PartitionAppend, PartitionRead, Produce, Watch};
use sluice_shard::simulated::node::{data_dir, Node, START_MS};
use sluice_shard::Proposal;

/// Produces `values` through shard `entry` as the produce handler does
/// (append on the owner, then wait until durable when told to); the
/// base offset.
async fn produce(node: &Node, entry: usize, topic: &str, partition: i32, values: &[&str]) -> i64 {
    let shard = node.shards[entry].clone();
    let owner = shard
        .metadata()
        .leader_shard(0, topic, partition)
        .expect("a known partition");
    let mut batch = BatchBuilder::new(START_MS);
    for value in values {
        batch = batch.record(None, Some(value.as_bytes()));
    }
    let records = batch.build();
    let topic = topic.to_owned();
    node.drive(async move {
        let request = Produce {
            acks: -1,
            transactional_id: None,
            adds_partitions: false,
            appends: vec![PartitionAppend {
                topic: topic.clone(),
                partition,
                records: bytes::BytesMut::from(&records[..]),
                source: None,
            }],
        };
        let results = shard.call(owner, request).await.expect("reachable");
        let [result] = results[..] else {
            panic!("one answer per partition: {results:?}");
        };
        assert_eq!(result.error, ErrorCode::None);
        if let Some(offset) = result.durable_at {
            let wait = AwaitDurable {
                partitions: vec![(topic, partition, offset, result.leader_epoch)],
                acks: -1,
                timeout_ms: 30_000,
            };
            let errors = shard.call(owner, wait).await.expect("reachable");
            assert_eq!(errors, [ErrorCode::None]);
        }
        result.base_offset
    })
    .await
}

/// Topics with their leader and partition epochs left out: a restart
/// raises them (a new incarnation moves leadership into a new epoch).
fn without_epochs(
    topics: &std::collections::BTreeMap<String, sluice_core::metadata::TopicMeta>,
) -> std::collections::BTreeMap<String, sluice_core::metadata::TopicMeta> {
    let mut topics = topics.clone();
    for topic in topics.values_mut() {
        for p in &mut topic.partitions {
            p.leader_epoch = 0;
            p.partition_epoch = 0;
        }
    }
    topics
}

fn fetch_request(topic: &str, partition: i32, offset: i64) -> Fetch {
    Fetch {
        reads: vec![PartitionRead {
            topic: topic.into(),
            partition,
            offset,
            max_bytes: 1 << 20,
            replica_id: -1,
            log_start_offset: -1,
            current_leader_epoch: -1,
            read_committed: false,
        }],
        max_bytes: 1 << 20,
        have_data: false,
    }
}

fn values(records: &Bytes) -> Vec<String> {
    let mut out = Vec::new();
    for batch in BatchIter::new(records.clone()) {
        let batch = batch.expect("a whole batch");
        for record in sluice_core::records::RecordIter::new(&batch).expect("records") {
            let value = record.expect("a record").value.unwrap_or_default();
            out.push(String::from_utf8_lossy(&value).into_owned());
        }
    }
    out
}

fn run<T>(test: impl Future<Output = T>) -> T {
    glommio::LocalExecutorBuilder::default()
        .make()
        .expect("an executor")
        .run(test)
}

#[test]
fn a_produce_is_acknowledged_durable_and_read_back_at_its_offsets() {
    run(async {
        let node = Node::start(1, FlushPolicy::Always).await;
        node.create_topic("t", 1).await;
        assert_eq!(produce(&node, 0, "t", 0, &["a", "b"]).await, 0);
        assert_eq!(produce(&node, 0, "t", 0, &["c"]).await, 2);
        let offsets = &node.shards[0].partition_offsets()[0];
        assert_eq!(
            (
                offsets.high_watermark,
                offsets.durable_offset,
                offsets.log_end_offset
            ),
            (3, 3, 3),
            "under log.flush=always an acknowledged record is durable and visible"
        );
        // Survives a power loss: it was synced before the answer.
        node.disk.crash(99);
        let reopened =
            Node::start_on(node.disk.clone(), 1, FlushPolicy::Always, START_MS + 1_000).await;
        let shard = reopened.shards[0].clone();
        let answer = reopened
            .drive(async move { shard.call(0, fetch_request("t", 0, 0)).await })
            .await;
        let results = answer.expect("reachable");
        assert_eq!(values(&results[0].records.to_bytes()), ["a", "b", "c"]);
    });
}

#[test]
fn a_request_for_another_shards_partition_travels_over_the_mesh() {
    run(async {
        let node = Node::start(3, FlushPolicy::Always).await;
        node.create_topic("t", 3).await;
        let owner = node.shards[0]
            .metadata()
            .leader_shard(0, "t", 2)
            .expect("placed");
        let entry = (owner as usize + 1) % 3;
        let sent_before = node.mesh.sent();
        assert_eq!(produce(&node, entry, "t", 2, &["x"]).await, 0);
        // Produce and AwaitDurable there, their answers back: four messages.
        assert_eq!(node.mesh.sent() - sent_before, 4);
        assert_eq!(
            node.shards[entry].calls_in_flight(),
            0,
            "every call was answered"
        );
        // The owner has the record; the entry shard has no log for it.
        assert_eq!(node.shards[owner as usize].owned_partitions(), 1);
        let owned: Vec<_> = node.shards[entry]
            .partition_offsets()
            .into_iter()
            .filter(|p| p.topic == "t" && p.partition == 2)
            .collect();
        assert!(owned.is_empty());
    });
}

/// Sends a 500 ms watch on "t"/0 past `offset` from shard `entry` to its
/// `owner`, as a Fetch's long poll does; the returned cell gets the time
/// the watch ended.
fn watch_from(node: &Node, entry: usize, owner: usize, offset: i64) -> Rc<RefCell<Option<i64>>> {
    let ended = Rc::new(RefCell::new(None));
    let (shard, flag, clock) = (
        node.shards[entry].clone(),
        ended.clone(),
        node.clock.clone(),
    );
    glommio::spawn_local(async move {
        let watch = Watch {
            watch: shard.next_watch_id(),
            partitions: vec![("t".into(), 0, offset)],
            max_wait_ms: 500,
            replica: false,
            read_committed: false,
        };
        shard.call(owner as u32, watch).await.expect("reachable");
        *flag.borrow_mut() = Some(clock.now_ms());
    })
    .detach();
    ended
}

#[test]
fn a_long_poll_ends_when_data_arrives_or_exactly_at_its_deadline() {
    run(async {
        let node = Node::start(2, FlushPolicy::Always).await;
        node.create_topic("t", 2).await;
        let owner = node.shards[0]
            .metadata()
            .leader_shard(0, "t", 0)
            .expect("placed") as usize;
        let entry = (owner + 1) % 2;

        // A watch on an empty partition, parked on its owner.
        let ended = watch_from(&node, entry, owner, 0);
        let parked_at = node.clock.now_ms();
        node.settle().await;
        node.deliver_all().await;
        node.settle().await;
        assert_eq!(node.shards[owner].parked_watches(), 1);
        // Data arrives: the watch ends before its deadline.
        produce(&node, owner, "t", 0, &["wake"]).await;
        for _ in 0..10 {
            node.settle().await;
            node.deliver_all().await;
        }
        let woke = ended.borrow().expect("the watch ended when data arrived");
        assert!(
            woke < parked_at + 500,
            "woken by the produce, not the deadline"
        );
        assert_eq!(node.shards[owner].parked_watches(), 0);

        // A watch on a quiet partition lasts exactly max_wait_ms.
        let start = node.clock.now_ms();
        let ended = watch_from(&node, entry, owner, 1);
        node.settle().await;
        node.deliver_all().await;
        node.settle().await;
        assert_eq!(node.shards[owner].parked_watches(), 1);
        node.clock.advance_to(start + 499);
        node.settle().await;
        assert_eq!(
            node.shards[owner].parked_watches(),
            1,
            "not before its deadline"
        );
        assert!(ended.borrow().is_none());
        node.clock.advance_to(start + 500);
        node.settle().await;
        node.deliver_all().await;
        node.settle().await;
        assert_eq!(
            *ended.borrow(),
            Some(start + 500),
            "it ends at its deadline"
        );
        assert_eq!(
            node.shards[owner].parked_watches(),
            0,
            "and left nothing behind"
        );
        assert_eq!(node.clock.armed(), 0, "its timer is gone");
    });
}

#[test]
fn a_committed_metadata_change_is_applied_by_every_shard() {
    run(async {
        let node = Node::start(3, FlushPolicy::Always).await;
        node.create_topic("t", 6).await;
        let state = node.shards[0].metadata().clone();
        for shard in &node.shards {
            assert_eq!(
                *shard.metadata(),
                state,
                "shard {} has the same metadata",
                shard.id
            );
            let owned = state.topics["t"]
                .partitions
                .iter()
                .filter(|p| p.shard_on(0) == Some(shard.id))
                .count();
            assert_eq!(
                shard.owned_partitions(),
                owned,
                "each shard opens what it owns"
            );
        }
        // Growing and deleting are applied everywhere too, files and all.
        let grow = Proposal::CreatePartitions {
            name: "t".into(),
            total: 8,
            assignments: Vec::new(),
            validate_only: false,
        };
        node.propose(1, grow).await.expect("grown");
        let total: usize = node.shards.iter().map(|s| s.owned_partitions()).sum();
        assert_eq!(total, 8);
        node.propose(2, Proposal::DeleteTopic { name: "t".into() })
            .await
            .expect("deleted");
        for shard in &node.shards {
            assert!(!shard.metadata().topics.contains_key("t"));
            assert_eq!(shard.owned_partitions(), 0);
        }
        for partition in 0..8 {
            let dir = data_dir().join("t").join(partition.to_string());
            let left = node.disk.list(Path::new(&dir)).await.unwrap_or_default();
            assert!(left.is_empty(), "{dir:?} still holds {left:?}");
        }
    });
}

#[test]
fn a_deleted_topic_leaves_the_shards_counters_where_they_were() {
    run(async {
        let node = Node::start(2, FlushPolicy::Always).await;
        node.create_topic("t", 2).await;
        for partition in 0..2 {
            produce(&node, 0, "t", partition, &["a", "b"]).await;
            produce(&node, 1, "t", partition, &["c"]).await;
        }
        let totals = |node: &Node| {
            node.shards
                .iter()
                .fold((0, 0), |(appends, flushes), shard| {
                    let s = shard.stats();
                    (appends + s.appends, flushes + s.flushes)
                })
        };
        let (appends, flushes) = totals(&node);
        assert_eq!(appends, 4, "four produces, one append each");
        assert!(flushes > 0, "flush=always flushed");
        node.propose(0, Proposal::DeleteTopic { name: "t".into() })
            .await
            .expect("deleted");
        assert_eq!(
            totals(&node),
            (appends, flushes),
            "a counter never goes back (Prometheus counters are totals)"
        );
    });
}

#[test]
fn the_controller_quorum_keeps_metadata_across_power_losses_and_refuses_its_own_name() {
    run(async {
        let node = Node::start(2, FlushPolicy::Always).await;
        node.create_topic("a", 3).await;
        node.create_topic("b", 1).await;
        let refused = node
            .propose(
                1,
                Proposal::CreateTopic {
                    name: sluice_shard::shard::CONTROLLER_DIR.into(),
                    partitions: 1,
                    replication_factor: -1,
                    assignments: Vec::new(),
                    configs: Vec::new(),
                    validate_only: false,
                },
            )
            .await;
        assert_eq!(refused, Err(ErrorCode::InvalidRequest), "Kafka's answer");
        let before = node.shards[0].metadata().clone();
        for round in 1..=3 {
            node.disk.crash(round);
            let reopened = Node::start_on(
                node.disk.clone(),
                2,
                FlushPolicy::Always,
                START_MS + round as i64 * 1_000,
            )
            .await;
            for shard in &reopened.shards {
                assert_eq!(
                    without_epochs(&shard.metadata().topics),
                    without_epochs(&before.topics),
                    "round {round}, shard {}",
                    shard.id
                );
            }
        }
    });
}

/// Writes `commands` as a metadata log of the format before the quorum.
async fn write_legacy(
    disk: &sluice_log::MemoryStorage,
    commands: &[sluice_core::metadata::legacy::LegacyCommand],
) {
    let legacy_dir = data_dir().join(sluice_shard::shard::LEGACY_METADATA_DIR);
    let legacy = sluice_shard::metadata_log::MetadataLog::open(
        &sluice_shard::Disk::Memory(disk.clone()),
        legacy_dir,
        0,
        START_MS,
    )
    .await
    .expect("the earlier format opens");
    for command in commands {
        legacy.commit(command, START_MS).await.expect("committed");
    }
    legacy.close().await.expect("closed");
}

fn legacy_topic(name: &str, id: u8) -> sluice_core::metadata::legacy::LegacyCommand {
    sluice_core::metadata::legacy::LegacyCommand::CreateTopic {
        name: name.into(),
        id: [id; 16],
        partition_shards: vec![0, 0],
        configs: [("retention.ms".to_owned(), "1000".to_owned())].into(),
    }
}

#[test]
fn metadata_in_the_earlier_log_format_moves_into_the_quorum_once() {
    run(async {
        let disk = sluice_log::MemoryStorage::new();
        let legacy_dir = data_dir().join(sluice_shard::shard::LEGACY_METADATA_DIR);
        let ids = |first, count| {
            sluice_core::metadata::legacy::LegacyCommand::AllocateProducerIds { first, count }
        };
        write_legacy(&disk, &[legacy_topic("old", 7), ids(0, 1000)]).await;
        let node = Node::start_on(disk.clone(), 1, FlushPolicy::Always, START_MS).await;
        let state = node.shards[0].metadata().clone();
        let old = state.topics.get("old").expect("the topic moved over");
        assert_eq!(old.id, [7; 16], "with its id");
        let placement: Vec<_> = old.partitions.iter().map(|p| p.replicas.clone()).collect();
        let here = sluice_core::metadata::Replica {
            broker: 0,
            shard: 0,
        };
        assert_eq!(
            placement,
            vec![vec![here], vec![here]],
            "and its placement, on this broker"
        );
        assert_eq!(
            old.configs.get("retention.ms").map(String::as_str),
            Some("1000")
        );
        assert_eq!(
            state.next_producer_id, 1000,
            "no producer id is handed out twice"
        );
        assert!(
            !sluice_shard::Disk::Memory(disk.clone())
                .dir_exists(&legacy_dir)
                .await,
            "the old files are gone"
        );
        // The next start reads the quorum alone.
        disk.crash(5);
        let reopened = Node::start_on(disk.clone(), 1, FlushPolicy::Always, START_MS + 1_000).await;
        assert_eq!(
            without_epochs(&reopened.shards[0].metadata().topics),
            without_epochs(&state.topics)
        );
        drop(reopened);

        // A move a crash cut short (old files still there, part of them
        // committed) resumes: what is in the quorum stays, the rest moves.
        disk.crash(6);
        write_legacy(
            &disk,
            &[
                legacy_topic("old", 7),
                legacy_topic("older", 8),
                ids(0, 2000),
            ],
        )
        .await;
        let resumed = Node::start_on(disk.clone(), 1, FlushPolicy::Always, START_MS + 2_000).await;
        let after = resumed.shards[0].metadata().clone();
        assert_eq!(
            without_epochs(&after.topics).get("old"),
            without_epochs(&state.topics).get("old")
        );
        assert_eq!(after.topics.get("older").map(|t| t.id), Some([8; 16]));
        assert_eq!(after.next_producer_id, 2000);
        assert!(
            !sluice_shard::Disk::Memory(disk.clone())
                .dir_exists(&legacy_dir)
                .await,
            "the old files are gone"
        );
    });
}
