//! Three `sluice serve` processes as one cluster, seen by clients:
//! partitions placed across the brokers, leaders spread, a request at a
//! broker that does not lead the partition refused with
//! NOT_LEADER_OR_FOLLOWER, Kafka clients (confluent-kafka, kcat)
//! bootstrapping from any broker,
//! and brokers fenced when they go silent (SIGKILL, SIGSTOP) or shut down,
//! and leading again when they return.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::cluster::{agreed_controller, brokers_listed_by, leaders, metadata, wait_until};
use common::{kcat, python, topic, wire, Broker, CLIENT_TIMEOUT};

const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const LEADER_NOT_AVAILABLE: i16 = 5;

/// Heartbeats and session short enough to see fencing in a test.
const FAST_SESSIONS: &[(&str, &str)] = &[
    ("SLUICE_KAFKA__BROKER_HEARTBEAT_INTERVAL_MS", "100"),
    ("SLUICE_KAFKA__BROKER_SESSION_TIMEOUT_MS", "1500"),
    ("SLUICE_KAFKA__NUM_PARTITIONS", "3"),
];

fn batch_of(value: &[u8]) -> Vec<u8> {
    wire::record_batch(1_700_000_000_000, &[(None, Some(value))])
}

fn connect(broker: &Broker) -> wire::Conn {
    wire::Conn::connect(broker.addr(), Duration::from_secs(5)).expect("connect")
}

/// Waits until every broker lists the topic with all partitions led.
fn led_everywhere(cluster: &[Broker], name: &str, partitions: usize) -> Vec<i32> {
    let mut agreed = Vec::new();
    for broker in cluster {
        wait_until(
            "every broker to list the topic with its leaders",
            || match leaders(broker, name) {
                Some(l) if l.len() == partitions && l.iter().all(|(e, _)| *e == 0) => {
                    agreed = l.iter().map(|(_, leader)| *leader).collect();
                    true
                }
                _ => false,
            },
        );
    }
    agreed
}

#[test]
fn replicated_topics_spread_leaders_and_every_broker_bootstraps_clients() {
    let cluster = Broker::start_cluster(3);
    for broker in &cluster {
        wait_until("every broker to list all three", || {
            brokers_listed_by(broker).len() == 3
        });
    }

    // Created through broker 2 with the confluent-kafka admin client.
    let (wide, narrow) = (topic("rf3"), topic("rf4"));
    let out = python(
        &cluster[1],
        r#"
from confluent_kafka.admin import AdminClient, NewTopic
admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
wanted = [NewTopic(ARGS[0], 6, 3), NewTopic(ARGS[1], 1, 4)]
for name, future in admin.create_topics(wanted, operation_timeout=30).items():
    try:
        future.result()
        print(name, "created")
    except Exception as e:
        print(name, e.args[0].code(), e.args[0].str())
"#,
        &[&wide, &narrow],
        CLIENT_TIMEOUT,
    );
    out.assert_success();
    let lines: BTreeMap<String, String> = out
        .stdout_text()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect();
    assert_eq!(lines[&wide], "created");
    assert_eq!(
        lines[&narrow], "38 Replication factor: 4 larger than available brokers: 3.",
        "Kafka's INVALID_REPLICATION_FACTOR answer"
    );

    // Leaders spread evenly; three distinct replicas each.
    let led_by = led_everywhere(&cluster, &wide, 6);
    let mut per_broker = BTreeMap::<i32, usize>::new();
    for leader in &led_by {
        *per_broker.entry(*leader).or_default() += 1;
    }
    assert_eq!(
        per_broker,
        BTreeMap::from([(1, 2), (2, 2), (3, 2)]),
        "{led_by:?}"
    );
    let described = metadata(&cluster[0], &[&wide]).expect("metadata");
    for replicas in &described.topics[0].replicas {
        let mut sorted = replicas.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, vec![1, 2, 3]);
    }

    // Produce at a broker that does not lead partition 0: refused; at its
    // leader: written.
    let leader = led_by[0];
    let other = cluster
        .iter()
        .find(|b| b.node_id() != leader)
        .expect("a non-leader");
    let refused = connect(other)
        .produce_v3(&wide, 0, -1, &batch_of(b"misdirected"))
        .expect("produce");
    assert_eq!(refused.error_code, NOT_LEADER_OR_FOLLOWER);
    let fetched = connect(other)
        .fetch_v4(&wide, 0, 0, 1 << 20)
        .expect("fetch");
    assert_eq!(fetched.error_code, NOT_LEADER_OR_FOLLOWER);
    let leading = &cluster[leader as usize - 1];
    let written = connect(leading)
        .produce_v3(&wide, 0, -1, &batch_of(b"direct"))
        .expect("produce");
    assert_eq!((written.error_code, written.base_offset), (0, 0));

    // confluent-kafka bootstraps from broker 2 to produce to every
    // partition and from broker 3 to read them all back: each client finds
    // each partition's leader itself.
    let out = python(
        &cluster[1],
        r#"
name, consume_from = ARGS
for p in range(6):
    confluent_produce(name, p * 100, 50, partition=p)
for p in range(6):
    got = confluent_consume(name, p, 0, 51 if p == 0 else 50, **{"bootstrap.servers": consume_from})
    print(p, len(got), got[-1][0])
"#,
        &[&wide, &cluster[2].bootstrap()],
        CLIENT_TIMEOUT,
    );
    out.assert_success();
    let printed = out.stdout_text();
    let counts: Vec<&str> = printed.lines().collect();
    assert_eq!(
        counts,
        ["0 51 50", "1 50 49", "2 50 49", "3 50 49", "4 50 49", "5 50 49"]
    );

    // kcat produces through broker 3 and consumes through broker 1, each
    // finding partition 2's leader on its own.
    let produced = kcat(
        &cluster[2],
        &["-P", "-t", &wide, "-p", "2"],
        b"k1\nk2\nk3\n",
    );
    produced.assert_success();
    let consumed = kcat(
        &cluster[0],
        &["-C", "-t", &wide, "-p", "2", "-o", "50", "-e", "-q"],
        b"",
    );
    consumed.assert_success();
    assert_eq!(consumed.stdout_text(), "k1\nk2\nk3\n");

    // kcat from broker 3 sees the whole cluster.
    let listed = kcat(&cluster[2], &["-L", "-t", &wide], b"");
    listed.assert_success();
    let listed = listed.stdout_text();
    assert!(listed.contains(" 3 brokers:"), "{listed}");
    assert!(listed.contains("with 6 partitions"), "{listed}");
}

#[test]
fn a_silent_broker_is_fenced_and_leads_again_when_it_returns() {
    let mut cluster = Broker::cluster(3, FAST_SESSIONS);
    Broker::start_together(&mut cluster);
    let controller = agreed_controller(&cluster.iter().collect::<Vec<_>>());
    let t = topic("fenced");
    wait_until("the topic to be created", || {
        metadata(&cluster[0], &[&t]).is_ok_and(|m| m.topics[0].error_code == 0)
    });
    let led_by = led_everywhere(&cluster, &t, 3);

    // A broker that is not the controller, and a partition it leads.
    let victim = cluster
        .iter()
        .position(|b| b.node_id() != controller)
        .expect("a broker that is not the controller");
    let victim_id = cluster[victim].node_id();
    let partition = led_by
        .iter()
        .position(|l| *l == victim_id)
        .expect("each broker leads one partition") as i32;
    // Until its log is open the leader answers NOT_LEADER_OR_FOLLOWER, as
    // Kafka does for a replica not created yet; clients retry.
    wait_until("the leader to take a produce", || {
        connect(&cluster[victim])
            .produce_v3(&t, partition, -1, &batch_of(b"before"))
            .is_ok_and(|written| written.error_code == 0)
    });
    let witness = (victim + 1) % 3;

    // SIGKILL: fenced after its session times out, its partition leaderless
    // (its only in-sync replica is gone), the others still led.
    let killed_at = Instant::now();
    cluster[victim].kill();
    wait_until("the killed broker to be fenced", || {
        !brokers_listed_by(&cluster[witness]).contains(&victim_id)
    });
    eprintln!(
        "SIGKILL to fenced: {} ms (session timeout 1500 ms)",
        killed_at.elapsed().as_millis()
    );
    let seen = leaders(&cluster[witness], &t).expect("listed");
    assert_eq!(
        seen[partition as usize],
        (LEADER_NOT_AVAILABLE, -1),
        "{seen:?}"
    );
    assert_eq!(seen.iter().filter(|(e, _)| *e == 0).count(), 2, "{seen:?}");

    // Back: registered again, leads its partition with its data.
    cluster[victim].restart();
    wait_until("the restarted broker to lead again", || {
        leaders(&cluster[witness], &t).is_some_and(|l| l[partition as usize] == (0, victim_id))
    });
    let fetched = connect(&cluster[victim])
        .fetch_v4(&t, partition, 0, 1 << 20)
        .expect("fetch");
    assert_eq!((fetched.error_code, fetched.high_watermark), (0, 1));

    // SIGSTOP (a frozen machine): fenced; SIGCONT: its heartbeats resume
    // and it is unfenced without restarting.
    cluster[victim].signal(libc::SIGSTOP);
    wait_until("the frozen broker to be fenced", || {
        !brokers_listed_by(&cluster[witness]).contains(&victim_id)
    });
    cluster[victim].signal(libc::SIGCONT);
    wait_until("the thawed broker to be unfenced and lead again", || {
        brokers_listed_by(&cluster[witness]).contains(&victim_id)
            && leaders(&cluster[witness], &t)
                .is_some_and(|l| l[partition as usize] == (0, victim_id))
    });
    assert!(cluster[victim]
        .log()
        .contains("registered with the controller"));

    // SIGTERM: a controlled shutdown fences it at once.
    cluster[victim].stop();
    assert!(
        cluster[victim]
            .log()
            .contains("the controller fenced this broker for its shutdown"),
        "{}",
        cluster[victim].log_tail(20)
    );
    // Committed before it stopped; the witness applies it as it follows.
    wait_until("the witness to drop the stopped broker", || {
        !brokers_listed_by(&cluster[witness]).contains(&victim_id)
    });
}
