//! A network partition between real brokers: three `sluice serve`
//! processes, each in a network namespace of its own joined by a bridge
//! (`common::netns`; needs root, as CI has). The controller leader's link
//! is taken down: the other two elect another leader, fence it, keep
//! changing metadata, and its partition waits leaderless; when the link
//! comes back it is unfenced, catches up and leads its partition again
//! with its data.

mod common;

use std::time::{Duration, Instant};

use common::cluster::{
    agreed_controller, brokers_listed_by, leaders, metadata, topics_of, wait_until,
};
use common::netns::Lab;
use common::{topic, wire, Broker};

const LEADER_NOT_AVAILABLE: i16 = 5;

const FAST_SESSIONS: &[(&str, &str)] = &[
    ("SLUICE_KAFKA__BROKER_HEARTBEAT_INTERVAL_MS", "100"),
    ("SLUICE_KAFKA__BROKER_SESSION_TIMEOUT_MS", "1500"),
    ("SLUICE_KAFKA__NUM_PARTITIONS", "3"),
];

fn connect(broker: &Broker) -> wire::Conn {
    wire::Conn::connect(broker.addr(), Duration::from_secs(5)).expect("connect")
}

#[test]
fn a_broker_cut_off_by_the_network_is_fenced_and_rejoins_when_healed() {
    let lab = Lab::create(3)
        .unwrap_or_else(|e| panic!("this test needs network namespaces (root and `ip`): {e}"));
    let mut cluster = Broker::cluster_on(&lab.hosts(), FAST_SESSIONS);
    Broker::start_together(&mut cluster);
    let controller = agreed_controller(&cluster.iter().collect::<Vec<_>>());
    let t = topic("split");
    wait_until("the topic to be created", || {
        metadata(&cluster[0], &[&t]).is_ok_and(|m| m.topics[0].error_code == 0)
    });
    let mut led_by = Vec::new();
    for broker in &cluster {
        wait_until("every broker to see the topic led", || {
            match leaders(broker, &t) {
                Some(l) if l.iter().all(|(e, _)| *e == 0) => {
                    led_by = l.iter().map(|(_, leader)| *leader).collect();
                    true
                }
                _ => false,
            }
        });
    }

    // Cut off the controller leader itself, after it wrote to its partition.
    let victim = cluster
        .iter()
        .position(|b| b.node_id() == controller)
        .expect("the controller is a broker");
    let partition = led_by
        .iter()
        .position(|l| *l == controller)
        .expect("each broker leads one partition") as i32;
    let record = wire::record_batch(1_700_000_000_000, &[(None, Some(b"before".as_slice()))]);
    // Until its log is open the leader answers NOT_LEADER_OR_FOLLOWER.
    wait_until("the leader to take a produce", || {
        connect(&cluster[victim])
            .produce_v3(&t, partition, -1, &record)
            .is_ok_and(|written| written.error_code == 0)
    });
    let cut_at = Instant::now();
    lab.cut(victim + 1);
    let survivors: Vec<&Broker> = cluster
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != victim)
        .map(|(_, b)| b)
        .collect();

    // The majority: a new controller, the cut-off broker fenced, its
    // partition leaderless, and metadata still changes.
    wait_until("the survivors to elect another controller", || {
        let named: Vec<i32> = survivors
            .iter()
            .map(|b| metadata(b, &[]).map_or(-1, |m| m.controller_id))
            .collect();
        named[0] == named[1] && named[0] > 0 && named[0] != controller
    });
    for survivor in &survivors {
        wait_until("the survivors to fence the cut-off broker", || {
            !brokers_listed_by(survivor).contains(&controller)
        });
    }
    eprintln!(
        "link down to fenced on both survivors: {} ms (session timeout 1500 ms)",
        cut_at.elapsed().as_millis()
    );
    let seen = leaders(survivors[0], &t).expect("listed");
    assert_eq!(
        seen[partition as usize],
        (LEADER_NOT_AVAILABLE, -1),
        "{seen:?}"
    );
    let during = topic("during");
    wait_until("the majority to create a topic", || {
        metadata(survivors[0], &[&during]).is_ok_and(|m| m.topics[0].error_code == 0)
    });

    // Healed: unfenced, caught up, leading its partition with its data.
    lab.heal(victim + 1);
    for broker in &cluster {
        wait_until("every broker to list the healed one leading again", || {
            brokers_listed_by(broker).contains(&controller)
                && leaders(broker, &t).is_some_and(|l| l[partition as usize] == (0, controller))
        });
    }
    wait_until("the healed broker to catch up", || {
        topics_of(&cluster[victim]).contains(&during)
    });
    let fetched = connect(&cluster[victim])
        .fetch_v4(&t, partition, 0, 1 << 20)
        .expect("fetch");
    assert_eq!((fetched.error_code, fetched.high_watermark), (0, 1));
    drop(cluster);
    drop(lab);
}
