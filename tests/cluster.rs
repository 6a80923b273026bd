//! Three `sluice serve` processes whose controller quorum is all three
//! (`--node-id`, `--controller-voters`; loopback ports, separate data
//! directories): metadata created through any broker reaches every broker,
//! the quorum keeps committing after its leader is SIGKILLed, and a restart
//! of all three gives identical metadata.
//!
//! Each broker still serves its own copy of every partition: placement
//! across brokers is not built yet, so this checks metadata only.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{topic, wire, Broker};

const AGREE_TIMEOUT: Duration = Duration::from_secs(30);

fn metadata(broker: &Broker, topics: &[&str]) -> Result<wire::Metadata, String> {
    let mut conn =
        wire::Conn::connect(broker.addr(), Duration::from_secs(5)).map_err(|e| e.to_string())?;
    conn.metadata_v2(topics)
}

/// Topics broker lists (all of them).
fn topics_of(broker: &Broker) -> BTreeSet<String> {
    wire::Conn::connect(broker.addr(), Duration::from_secs(5))
        .map_err(|e| e.to_string())
        .and_then(|mut conn| conn.metadata_v2_all())
        .map(|m| {
            m.topics
                .into_iter()
                .filter(|t| t.error_code == 0)
                .map(|t| t.name)
                .collect()
        })
        .unwrap_or_default()
}

/// Polls `check` until it holds, or panics with `what` at the deadline.
fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + AGREE_TIMEOUT;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The controller every running broker names, once they agree.
fn agreed_controller(brokers: &[&Broker]) -> i32 {
    let mut agreed = -1;
    wait_until("the brokers to agree on a controller", || {
        let named: BTreeSet<i32> = brokers
            .iter()
            .map(|b| metadata(b, &[]).map_or(-1, |m| m.controller_id))
            .collect();
        match named.into_iter().collect::<Vec<_>>()[..] {
            [id] if id > 0 => {
                agreed = id;
                true
            }
            _ => false,
        }
    });
    agreed
}

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
