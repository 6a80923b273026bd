//! Three `sluice serve` processes whose controller quorum is all three
//! (`--node-id`, `--controller-voters`; loopback ports, separate data
//! directories): metadata created through any broker reaches every broker,
//! the quorum keeps committing after its leader is SIGKILLed, and a restart
//! of all three gives identical metadata.
//!
//! Placement, fencing and clients across the brokers: `cluster_brokers.rs`.

mod common;

use std::time::Instant;

use common::cluster::{agreed_controller, metadata, topics_of, wait_until};
use common::{topic, Broker};

/// Creates `name` through `broker` (Metadata v2 auto-creates it; a
/// follower forwards the proposal to the controller); Ok once it exists.
fn create_through(broker: &Broker, name: &str) -> Result<(), String> {
    let answer = metadata(broker, &[name])?;
    match answer.topics.iter().find(|t| t.name == name) {
        Some(t) if t.error_code == 0 => Ok(()),
        Some(t) => Err(format!("error {}", t.error_code)),
        None => Err("not listed".into()),
    }
}

#[test]
fn three_brokers_share_metadata_through_the_quorum_and_survive_losing_its_leader() {
    let mut cluster = Broker::start_cluster(3);
    let controller = agreed_controller(&cluster.iter().collect::<Vec<_>>());
    assert!((1..=3).contains(&controller), "controller {controller}");

    // Through a follower: forwarded to the controller, applied everywhere.
    let first = topic("first");
    let follower = cluster
        .iter()
        .position(|b| b.node_id() != controller)
        .expect("a follower");
    wait_until("the follower to create a topic", || {
        create_through(&cluster[follower], &first).is_ok()
    });
    for broker in &cluster {
        wait_until("every broker to list the topic", || {
            topics_of(broker).contains(&first)
        });
    }

    // SIGKILL the controller: the two others elect another and go on.
    let leader = cluster
        .iter()
        .position(|b| b.node_id() == controller)
        .expect("the leader");
    let killed_at = Instant::now();
    cluster[leader].kill();
    let survivor = (leader + 1) % cluster.len();
    let second = topic("second");
    wait_until("a topic created after the leader's loss", || {
        create_through(&cluster[survivor], &second).is_ok()
    });
    eprintln!(
        "from SIGKILL of the controller leader to the next committed change: {} ms",
        killed_at.elapsed().as_millis()
    );
    let living: Vec<&Broker> = cluster
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != leader)
        .map(|(_, b)| b)
        .collect();
    let new_controller = agreed_controller(&living);
    assert_ne!(new_controller, controller, "the dead leader is still named");

    // The killed broker comes back and catches up.
    cluster[leader].restart();
    for broker in &cluster {
        wait_until("every broker to list both topics", || {
            let topics = topics_of(broker);
            topics.contains(&first) && topics.contains(&second)
        });
    }

    // All three stopped and started again: the same metadata everywhere.
    let before = topics_of(&cluster[0]);
    for broker in &mut cluster {
        broker.stop();
    }
    Broker::start_together(&mut cluster);
    agreed_controller(&cluster.iter().collect::<Vec<_>>());
    for broker in &cluster {
        wait_until("the same topics after a restart of all three", || {
            topics_of(broker) == before
        });
    }
}
