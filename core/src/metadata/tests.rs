use super::placement::place;
use super::*;

fn broker(id: BrokerId, rack: Option<&str>, shards: u32) -> MetadataCommand {
    MetadataCommand::RegisterBroker(BrokerRegistration {
        id,
        incarnation: [id as u8; 16],
        rack: rack.map(str::to_owned),
        host: "127.0.0.1".into(),
        port: 9092 + id,
        rpc_addr: format!("127.0.0.1:{}", 19092 + id),
        shards,
        durable_logs: false,
    })
}

fn create(name: &str, partitions: Vec<Vec<Replica>>) -> MetadataCommand {
    MetadataCommand::CreateTopic {
        name: name.into(),
        id: [1; 16],
        partitions,
        configs: BTreeMap::new(),
    }
}

fn on(broker: BrokerId, shard: ShardId) -> Replica {
    Replica { broker, shard }
}

fn cluster(brokers: &[(BrokerId, Option<&str>)], shards: u32) -> MetadataState {
    let mut state = MetadataState::default();
    for (id, rack) in brokers {
        state.apply(&broker(*id, *rack, shards)).expect("registers");
    }
    state
}

#[test]
fn one_broker_balances_partitions_across_its_shards() {
    let mut state = cluster(&[(0, None)], 2);
    let placed = place(&state, 5, 1).expect("places");
    let shards: Vec<ShardId> = placed.iter().map(|r| r[0].shard).collect();
    assert_eq!(shards, vec![0, 1, 0, 1, 0]);
    state.apply(&create("a", placed)).expect("applies");
    let next: Vec<ShardId> = place(&state, 3, 1)
        .expect("places")
        .iter()
        .map(|r| r[0].shard)
        .collect();
    assert_eq!(next, vec![1, 0, 1]);
    assert_eq!(state.leader_shard(0, "a", 1), Ok(1));
    assert_eq!(
        state.leader_shard(0, "a", 5),
        Err(ErrorCode::UnknownTopicOrPartition)
    );
    assert_eq!(
        state.leader_shard(3, "a", 1),
        Err(ErrorCode::NotLeaderOrFollower)
    );
}

#[test]
fn leaders_and_replicas_spread_evenly_over_brokers() {
    let mut state = cluster(&[(1, None), (2, None), (3, None)], 2);
    let placed = place(&state, 6, 3).expect("places");
    state.apply(&create("t", placed)).expect("applies");
    let mut leaders = BTreeMap::<BrokerId, u32>::new();
    let mut per_shard = BTreeMap::<(BrokerId, ShardId), u32>::new();
    for p in &state.topics["t"].partitions {
        *leaders.entry(p.leader).or_default() += 1;
        let mut brokers = p.replica_brokers();
        brokers.sort_unstable();
        assert_eq!(brokers, vec![1, 2, 3], "three distinct brokers");
        for r in &p.replicas {
            *per_shard.entry((r.broker, r.shard)).or_default() += 1;
        }
    }
    assert_eq!(leaders.values().copied().collect::<Vec<_>>(), vec![2, 2, 2]);
    assert!(per_shard.values().all(|n| *n == 3), "{per_shard:?}");
    assert!(state.violations().is_empty());
}

#[test]
fn replication_factor_beyond_live_brokers_is_refused_as_kafka_does() {
    let mut state = cluster(&[(1, None), (2, None)], 1);
    assert_eq!(
        place(&state, 1, 3).unwrap_err(),
        "Replication factor: 3 larger than available brokers: 2."
    );
    state
        .apply(&MetadataCommand::FenceBroker { id: 2 })
        .expect("fences");
    assert_eq!(
        place(&state, 1, 2).unwrap_err(),
        "Replication factor: 2 larger than available brokers: 1."
    );
    assert!(place(&state, 4, 1)
        .expect("places")
        .iter()
        .all(|r| r[0].broker == 1));
}

#[test]
fn replicas_prefer_racks_the_partition_does_not_use() {
    let state = cluster(
        &[
            (1, Some("a")),
            (2, Some("a")),
            (3, Some("b")),
            (4, Some("b")),
        ],
        1,
    );
    for replicas in place(&state, 8, 2).expect("places") {
        let racks: Vec<_> = replicas
            .iter()
            .map(|r| state.brokers[&r.broker].registration.rack.clone())
            .collect();
        assert_ne!(racks[0], racks[1], "{replicas:?}");
    }
}

#[test]
fn fencing_moves_leadership_within_the_in_sync_set_and_back() {
    let mut state = cluster(&[(1, None), (2, None)], 1);
    state
        .apply(&create("solo", vec![vec![on(1, 0)]]))
        .expect("applies");
    state
        .apply(&create("pair", vec![vec![on(1, 0), on(2, 0)]]))
        .expect("applies");
    assert_eq!(
        state.partition("pair", 0).expect("exists").isr,
        vec![1, 2],
        "every replica of a new (empty) partition is in sync"
    );
    state
        .apply(&MetadataCommand::FenceBroker { id: 1 })
        .expect("fences");
    let solo = state.partition("solo", 0).expect("exists").clone();
    assert_eq!(
        (solo.leader, solo.leader_epoch, solo.isr.clone()),
        (NO_LEADER, 1, vec![1])
    );
    let pair = state.partition("pair", 0).expect("exists").clone();
    assert_eq!(
        (pair.leader, pair.leader_epoch, pair.isr.clone()),
        (2, 1, vec![2])
    );
    assert_eq!(
        state.live_brokers().map(|b| b.id).collect::<Vec<_>>(),
        vec![2]
    );
    assert!(state.violations().is_empty(), "{:?}", state.violations());

    state
        .apply(&MetadataCommand::UnfenceBroker { id: 1 })
        .expect("unfences");
    let solo = state.partition("solo", 0).expect("exists");
    assert_eq!(
        (solo.leader, solo.leader_epoch),
        (1, 2),
        "its only in-sync replica is back"
    );
    let pair = state.partition("pair", 0).expect("exists");
    assert_eq!(
        (pair.leader, pair.leader_epoch),
        (2, 1),
        "a led partition stays put"
    );
    assert!(state.violations().is_empty(), "{:?}", state.violations());
}

#[test]
fn a_broker_back_with_fewer_shards_keeps_its_replicas_on_shards_it_runs() {
    let mut state = cluster(&[(1, None)], 4);
    let placed = place(&state, 4, 1).expect("places");
    state.apply(&create("t", placed)).expect("applies");
    state.apply(&broker(1, None, 2)).expect("registers again");
    let shards: Vec<ShardId> = state.topics["t"]
        .partitions
        .iter()
        .map(|p| p.replicas[0].shard)
        .collect();
    assert_eq!(shards, vec![0, 1, 0, 1]);
    assert!(state.violations().is_empty());
}

#[test]
fn commands_apply_deterministically_and_reject_conflicts() {
    let commands = vec![
        broker(0, None, 2),
        create("a", vec![vec![on(0, 0)], vec![on(0, 1)]]),
        MetadataCommand::CreatePartitions {
            name: "a".into(),
            new_partitions: vec![vec![on(0, 1)]],
        },
        create("b", vec![vec![on(0, 0)]]),
        MetadataCommand::DeleteTopic { name: "b".into() },
        MetadataCommand::AllocateProducerIds {
            first: 0,
            count: 1000,
        },
    ];
    let mut one = MetadataState::default();
    let mut two = MetadataState::default();
    for c in &commands {
        one.apply(c).expect("applies");
        two.apply(c).expect("applies");
    }
    assert_eq!(one, two);
    assert_eq!(one.leader_shard(0, "a", 2), Ok(1));
    assert_eq!(one.replica_shard(0, "a", 3), None);
    assert_eq!(one.replica_shard(0, "b", 0), None);
    assert_eq!(one.next_producer_id, 1000);
    assert_eq!(one.applied, 6);
    let before = one.clone();
    let refused = [
        (
            create("a", vec![vec![on(0, 0)]]),
            ErrorCode::TopicAlreadyExists,
        ),
        (
            MetadataCommand::DeleteTopic { name: "zz".into() },
            ErrorCode::UnknownTopicOrPartition,
        ),
        (
            create("bad/name", vec![vec![on(0, 0)]]),
            ErrorCode::InvalidTopicException,
        ),
        (create("empty", vec![]), ErrorCode::InvalidPartitions),
        (
            create("nobody", vec![vec![]]),
            ErrorCode::InvalidReplicaAssignment,
        ),
        (
            create("stranger", vec![vec![on(7, 0)]]),
            ErrorCode::InvalidReplicaAssignment,
        ),
        (
            create("no-shard", vec![vec![on(0, 2)]]),
            ErrorCode::InvalidReplicaAssignment,
        ),
        (
            create("twice", vec![vec![on(0, 0), on(0, 1)]]),
            ErrorCode::InvalidReplicaAssignment,
        ),
        (
            MetadataCommand::FenceBroker { id: 9 },
            ErrorCode::InvalidRequest,
        ),
        (broker(-1, None, 1), ErrorCode::InvalidRequest),
        (broker(1, None, 0), ErrorCode::InvalidRequest),
        (
            MetadataCommand::AllocateProducerIds { first: 5, count: 1 },
            ErrorCode::UnknownServerError,
        ),
    ];
    for (command, code) in refused {
        assert_eq!(
            one.apply(&command).map_err(|e| e.error_code()),
            Err(code),
            "{command}"
        );
    }
    assert_eq!(one, before, "failed commands change nothing");
}

fn alter(isr: Vec<BrokerId>, leader_epoch: i32, partition_epoch: i32) -> MetadataCommand {
    MetadataCommand::AlterPartition {
        topic: "t".into(),
        partition: 0,
        leader: 1,
        leader_epoch,
        partition_epoch,
        isr,
    }
}

#[test]
fn the_leader_changes_the_in_sync_set_only_at_its_current_epochs() {
    let mut state = cluster(&[(1, None), (2, None), (3, None)], 1);
    state
        .apply(&create("t", vec![vec![on(1, 0), on(2, 0), on(3, 0)]]))
        .expect("applies");
    state.apply(&alter(vec![1, 2], 0, 0)).expect("shrinks");
    let p = state.partition("t", 0).expect("exists").clone();
    assert_eq!((p.isr.clone(), p.partition_epoch), (vec![1, 2], 1));
    assert_eq!(
        state.apply(&alter(vec![1, 2, 3], 0, 0)),
        Err(MetadataError::InvalidUpdateVersion),
        "a stale partition epoch"
    );
    assert_eq!(
        state.apply(&alter(vec![1, 2, 3], 1, 1)),
        Err(MetadataError::FencedLeaderEpoch),
        "a leader epoch that is not the partition's"
    );
    assert!(matches!(
        state.apply(&alter(vec![2, 3], 0, 1)),
        Err(MetadataError::InvalidReplicas(_))
    ));
    state
        .apply(&MetadataCommand::FenceBroker { id: 3 })
        .expect("fences");
    assert_eq!(
        state.apply(&alter(vec![1, 2, 3], 0, 1)),
        Err(MetadataError::IneligibleReplica(3)),
        "a fenced broker cannot join"
    );
    state
        .apply(&MetadataCommand::FenceBroker { id: 1 })
        .expect("fences");
    let p = state.partition("t", 0).expect("exists").clone();
    assert_eq!((p.leader, p.leader_epoch, p.isr.clone()), (2, 1, vec![2]));
    assert!(p.partition_epoch > 1);
    assert!(state.violations().is_empty(), "{:?}", state.violations());
}

#[test]
fn preferred_leaders_come_back_only_when_in_sync_and_live() {
    use super::election::{imbalanced, preferred_elections, preferred_leader};
    let mut state = cluster(&[(1, None), (2, None), (3, None)], 1);
    state
        .apply(&create("t", vec![vec![on(1, 0), on(2, 0), on(3, 0)]]))
        .expect("applies");
    let p = state.partition("t", 0).expect("exists").clone();
    assert_eq!(
        preferred_leader(&state, &p),
        Err(ErrorCode::ElectionNotNeeded)
    );
    assert!(!imbalanced(&state, 10));
    state
        .apply(&MetadataCommand::FenceBroker { id: 1 })
        .expect("fences");
    let p = state.partition("t", 0).expect("exists").clone();
    assert_eq!(p.leader, 2);
    assert_eq!(
        preferred_leader(&state, &p),
        Err(ErrorCode::PreferredLeaderNotAvailable),
        "fenced and out of sync"
    );
    state
        .apply(&MetadataCommand::UnfenceBroker { id: 1 })
        .expect("unfences");
    assert!(
        preferred_elections(&state).is_empty(),
        "1 is not in sync yet"
    );
    let p = state.partition("t", 0).expect("exists").clone();
    state
        .apply(&MetadataCommand::AlterPartition {
            topic: "t".into(),
            partition: 0,
            leader: 2,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            isr: vec![2, 3, 1],
        })
        .expect("rejoins");
    assert!(imbalanced(&state, 10));
    let elections = preferred_elections(&state);
    assert_eq!(elections, vec![("t".to_owned(), 0, 1)]);
    let before = state.partition("t", 0).expect("exists").leader_epoch;
    state
        .apply(&MetadataCommand::ElectLeaders {
            elections: elections.clone(),
        })
        .expect("elects");
    let p = state.partition("t", 0).expect("exists").clone();
    assert_eq!((p.leader, p.leader_epoch), (1, before + 1));
    // Applied again, it no longer holds: skipped, nothing changes.
    state
        .apply(&MetadataCommand::ElectLeaders { elections })
        .expect("applies");
    assert_eq!(
        state.partition("t", 0).expect("exists").leader_epoch,
        before + 1
    );
    assert!(state.violations().is_empty(), "{:?}", state.violations());
}

fn reassign(target: Option<Vec<Replica>>) -> MetadataCommand {
    MetadataCommand::ReassignPartitions {
        reassignments: vec![("t".into(), 0, target)],
    }
}

fn join(state: &mut MetadataState, isr: Vec<BrokerId>) {
    let p = state.partition("t", 0).expect("exists").clone();
    state
        .apply(&MetadataCommand::AlterPartition {
            topic: "t".into(),
            partition: 0,
            leader: p.leader,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            isr,
        })
        .expect("the in-sync set changes");
}

#[test]
fn a_reassignment_adds_then_removes_and_moves_leadership_off_a_removed_leader() {
    use super::reassignment::check;
    let mut state = cluster(&[(1, None), (2, None), (3, None), (4, None)], 2);
    state
        .apply(&create("t", vec![vec![on(1, 0), on(2, 0), on(3, 1)]]))
        .expect("applies");
    assert_eq!(
        check(&state, "t", 0, None, true).map_err(|e| e.0),
        Err(ErrorCode::NoReassignmentInProgress)
    );
    assert_eq!(
        check(&state, "t", 0, Some(&[4, 2]), false).map_err(|e| e.0),
        Err(ErrorCode::InvalidReplicationFactor)
    );
    assert_eq!(
        check(&state, "t", 0, Some(&[4, 9, 2]), true).map_err(|e| e.0),
        Err(ErrorCode::InvalidReplicaAssignment)
    );
    assert_eq!(
        check(&state, "t", 1, Some(&[4]), true).map_err(|e| e.0),
        Err(ErrorCode::UnknownTopicOrPartition)
    );
    assert!(check(&state, "t", 0, Some(&[4, 2, 3]), false).is_ok());

    state
        .apply(&reassign(Some(vec![on(4, 1), on(2, 0), on(3, 1)])))
        .expect("starts");
    let p = state.partition("t", 0).expect("exists").clone();
    assert_eq!(p.replica_brokers(), vec![4, 2, 3, 1]);
    assert_eq!((p.adding.clone(), p.removing.clone()), (vec![4], vec![1]));
    assert_eq!((p.leader, p.isr.clone()), (1, vec![1, 2, 3]), "unchanged");
    assert!(state.violations().is_empty(), "{:?}", state.violations());

    // The new replica catches up: the reassignment completes at once, and
    // leadership leaves the removed broker in a new epoch.
    join(&mut state, vec![1, 2, 3, 4]);
    let p = state.partition("t", 0).expect("exists").clone();
    assert!(!p.reassigning());
    assert_eq!(p.replica_brokers(), vec![4, 2, 3]);
    assert_eq!(p.isr, vec![2, 3, 4]);
    assert_eq!((p.leader, p.leader_epoch), (4, 1));
    assert!(state.violations().is_empty(), "{:?}", state.violations());
}

#[test]
fn a_cancelled_reassignment_goes_back_to_the_original_replicas() {
    let mut state = cluster(&[(1, None), (2, None), (3, None), (4, None)], 1);
    state
        .apply(&create("t", vec![vec![on(1, 0), on(2, 0)]]))
        .expect("applies");
    state
        .apply(&reassign(Some(vec![on(3, 0), on(4, 0)])))
        .expect("starts");
    let p = state.partition("t", 0).expect("exists").clone();
    assert_eq!(
        (p.adding.clone(), p.removing.clone()),
        (vec![3, 4], vec![1, 2])
    );
    join(&mut state, vec![1, 2, 3]);
    assert!(
        state.partition("t", 0).expect("exists").reassigning(),
        "4 is not in sync yet"
    );
    state.apply(&reassign(None)).expect("cancels");
    let p = state.partition("t", 0).expect("exists").clone();
    assert!(!p.reassigning());
    assert_eq!(p.replica_brokers(), vec![1, 2]);
    assert_eq!((p.leader, p.isr.clone()), (1, vec![1, 2]));
    assert!(state.violations().is_empty(), "{:?}", state.violations());

    // A reassignment that only shrinks the replicas completes when the
    // target is in sync, which it is.
    state
        .apply(&reassign(Some(vec![on(2, 0)])))
        .expect("shrinks");
    let p = state.partition("t", 0).expect("exists").clone();
    assert!(!p.reassigning());
    assert_eq!(
        (p.replica_brokers(), p.isr.clone(), p.leader),
        (vec![2], vec![2], 2)
    );
    assert!(state.violations().is_empty(), "{:?}", state.violations());
}

/// Kafka's rule: a change that takes a replica out of the replicas moves
/// the leader epoch (the leader staying), so the removed replica's fetches
/// still in flight are fenced; one that only adds does not.
#[test]
fn removing_a_replica_bumps_the_leader_epoch_and_keeps_the_leader() {
    let mut state = cluster(&[(1, None), (2, None), (3, None), (4, None)], 1);
    state
        .apply(&create("t", vec![vec![on(1, 0), on(2, 0), on(3, 0)]]))
        .expect("applies");
    let epochs = |state: &MetadataState| {
        let p = state.partition("t", 0).expect("exists");
        (p.leader, p.leader_epoch)
    };
    assert_eq!(epochs(&state), (1, 0));
    state
        .apply(&reassign(Some(vec![on(1, 0), on(2, 0), on(4, 0)])))
        .expect("starts");
    assert_eq!(epochs(&state), (1, 0), "adding 4 removes nothing yet");
    join(&mut state, vec![1, 2, 3, 4]);
    assert!(!state.partition("t", 0).expect("exists").reassigning());
    assert_eq!(epochs(&state), (1, 1), "3 removed");
    // Only adding: no new epoch.
    state
        .apply(&reassign(Some(vec![
            on(1, 0),
            on(2, 0),
            on(4, 0),
            on(3, 0),
        ])))
        .expect("starts");
    join(&mut state, vec![1, 2, 4, 3]);
    assert!(!state.partition("t", 0).expect("exists").reassigning());
    assert_eq!(epochs(&state), (1, 1));
    // A cancellation takes the replica being added out again.
    state
        .apply(&reassign(Some(vec![on(1, 0), on(2, 0), on(4, 0)])))
        .expect("starts");
    assert!(!state.partition("t", 0).expect("exists").reassigning());
    assert_eq!(
        epochs(&state),
        (1, 2),
        "3 removed at once: the rest is in sync"
    );
    state
        .apply(&reassign(Some(vec![on(1, 0), on(2, 0), on(3, 0)])))
        .expect("starts");
    assert_eq!(epochs(&state), (1, 2));
    state.apply(&reassign(None)).expect("cancels");
    assert_eq!(
        state.partition("t", 0).expect("exists").replica_brokers(),
        vec![1, 2, 4]
    );
    assert_eq!(epochs(&state), (1, 3), "3, being added, removed");
    assert!(state.violations().is_empty(), "{:?}", state.violations());
}

fn create_with(name: &str, replicas: Vec<Replica>, configs: &[(&str, &str)]) -> MetadataCommand {
    MetadataCommand::CreateTopic {
        name: name.into(),
        id: [2; 16],
        partitions: vec![replicas],
        configs: configs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

fn fence(state: &mut MetadataState, id: BrokerId) {
    state
        .apply(&MetadataCommand::FenceBroker { id })
        .expect("fences");
    assert!(state.violations().is_empty(), "{:?}", state.violations());
}

fn unfence(state: &mut MetadataState, id: BrokerId) {
    state
        .apply(&MetadataCommand::UnfenceBroker { id })
        .expect("unfences");
    assert!(state.violations().is_empty(), "{:?}", state.violations());
}

#[test]
fn a_replica_that_left_below_min_insync_is_eligible_to_lead_and_others_are_not() {
    let mut state = cluster(&[(1, None), (2, None), (3, None)], 1);
    state
        .apply(&create_with(
            "t",
            vec![on(1, 0), on(2, 0), on(3, 0)],
            &[("min.insync.replicas", "2")],
        ))
        .expect("applies");
    fence(&mut state, 3);
    let p = state.partition("t", 0).expect("exists").clone();
    assert_eq!((p.isr.clone(), p.elr.clone()), (vec![1, 2], vec![]));
    fence(&mut state, 2);
    let p = state.partition("t", 0).expect("exists").clone();
    assert_eq!(
        (p.isr.clone(), p.elr.clone()),
        (vec![1], vec![2]),
        "2 left below 2"
    );
    fence(&mut state, 1);
    assert_eq!(state.partition("t", 0).expect("exists").leader, NO_LEADER);
    unfence(&mut state, 3);
    assert_eq!(
        state.partition("t", 0).expect("exists").leader,
        NO_LEADER,
        "3 is neither in sync nor eligible"
    );
    let epoch = state.partition("t", 0).expect("exists").leader_epoch;
    unfence(&mut state, 2);
    let p = state.partition("t", 0).expect("exists").clone();
    assert_eq!(
        (p.leader, p.leader_epoch),
        (2, epoch + 1),
        "the eligible one leads"
    );
    assert_eq!((p.isr.clone(), p.elr.clone()), (vec![2], vec![1]));
    // 1 restarts with logs a crash may have cut: no longer eligible.
    let mut restarted = match broker(1, None, 1) {
        MetadataCommand::RegisterBroker(r) => r,
        _ => unreachable!(),
    };
    restarted.incarnation = [9; 16];
    state
        .apply(&MetadataCommand::RegisterBroker(restarted))
        .expect("registers");
    let p = state.partition("t", 0).expect("exists").clone();
    assert!(p.elr.is_empty(), "{:?}", p.elr);
    assert!(state.violations().is_empty(), "{:?}", state.violations());
}

#[test]
fn unclean_election_leads_with_any_live_replica_only_when_allowed() {
    let mut state = cluster(&[(1, None), (2, None)], 1);
    state
        .apply(&create_with("t", vec![on(1, 0), on(2, 0)], &[]))
        .expect("applies");
    state
        .apply(&create_with(
            "u",
            vec![on(1, 0), on(2, 0)],
            &[("unclean.leader.election.enable", "true")],
        ))
        .expect("applies");
    // 2 falls out of sync; then 1, the last in-sync replica, is fenced.
    for name in ["t", "u"] {
        let p = state.partition(name, 0).expect("exists").clone();
        state
            .apply(&MetadataCommand::AlterPartition {
                topic: name.into(),
                partition: 0,
                leader: 1,
                leader_epoch: p.leader_epoch,
                partition_epoch: p.partition_epoch,
                isr: vec![1],
            })
            .expect("shrinks");
    }
    fence(&mut state, 1);
    assert_eq!(state.partition("t", 0).expect("exists").leader, NO_LEADER);
    let u = state.partition("u", 0).expect("exists").clone();
    assert_eq!((u.leader, u.isr.clone()), (2, vec![2]), "unclean election");
    state
        .apply(&MetadataCommand::UncleanElect {
            partitions: vec![("t".into(), 0)],
        })
        .expect("elects");
    let t = state.partition("t", 0).expect("exists").clone();
    assert_eq!((t.leader, t.isr.clone()), (2, vec![2]), "asked for");
    assert!(state.violations().is_empty(), "{:?}", state.violations());
}

#[test]
fn allowing_unclean_election_elects_a_leaderless_partition_at_once() {
    let mut state = cluster(&[(1, None), (2, None)], 1);
    state
        .apply(&create_with("t", vec![on(1, 0), on(2, 0)], &[]))
        .expect("applies");
    let p = state.partition("t", 0).expect("exists").clone();
    state
        .apply(&MetadataCommand::AlterPartition {
            topic: "t".into(),
            partition: 0,
            leader: 1,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            isr: vec![1],
        })
        .expect("shrinks");
    fence(&mut state, 1);
    assert_eq!(state.partition("t", 0).expect("exists").leader, NO_LEADER);
    state
        .apply(&MetadataCommand::AlterConfigs {
            resource: dynamic_config::ConfigResource::Topic("t".into()),
            configs: [(
                "unclean.leader.election.enable".to_owned(),
                "true".to_owned(),
            )]
            .into_iter()
            .collect(),
        })
        .expect("alters");
    let p = state.partition("t", 0).expect("exists").clone();
    assert_eq!((p.leader, p.isr.clone()), (2, vec![2]));
    assert!(state.violations().is_empty(), "{:?}", state.violations());
}
