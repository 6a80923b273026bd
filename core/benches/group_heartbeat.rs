//! What a KIP-848 heartbeat costs the coordinator in a large group: the
//! heartbeat itself and the comparison of the group's records with what
//! its log holds (what the home does before it answers), limited to the
//! heartbeat's member (as the home does) against the whole group (as it
//! did before), side by side in one run.
//!
//! A group of `--members` members, all settled, then each round times
//! `--beats` steady heartbeats (each member in turn, nothing changing) with
//! one comparison, the other, and none (the heartbeat alone: the
//! baseline), in turn, and reports the median time per heartbeat and the
//! ratios (see shared BENCHMARKING.md).
//!
//! ```text
//! cargo bench -p sluice-core --bench group_heartbeat -- [--members 2000] [--beats 2000] [--rounds 5]
//! ```

use std::time::Instant;

use sluice_core::config::GroupConfig;
use sluice_core::group::consumer::HeartbeatRequest;
use sluice_core::group::coordinator::GroupCoordinator;
use sluice_core::group::topics::TopicTable;
use sluice_core::group::written::WrittenImages;
use sluice_core::ErrorCode;

struct Args {
    members: usize,
    beats: usize,
    rounds: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        members: 2000,
        beats: 2000,
        rounds: 5,
    };
    // `cargo test --all-targets` runs this without --bench: a smoke run.
    if !std::env::args().any(|a| a == "--bench") {
        return Args {
            members: 20,
            beats: 20,
            rounds: 1,
        };
    }
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{flag} needs a number"))
        };
        match flag.as_str() {
            "--members" => args.members = value(),
            "--beats" => args.beats = value(),
            "--rounds" => args.rounds = value(),
            // cargo bench passes --bench; flags not known are ignored.
            _ => {}
        }
    }
    args
}

fn main() {
    let args = parse_args();
    let partitions = (args.members * 2) as i32;
    let topics = TopicTable::of(&[("t", [1; 16], partitions)]);
    let mut c = GroupCoordinator::new(GroupConfig::default());
    let beat = |c: &mut GroupCoordinator, member: &str, epoch: i32| {
        c.consumer_heartbeat(
            HeartbeatRequest {
                group_id: "g".into(),
                member_id: member.into(),
                member_epoch: epoch,
                subscribed_topics: (epoch == 0).then(|| vec!["t".into()]),
                owned: Some(Vec::new()),
                ..HeartbeatRequest::default()
            },
            &topics,
            0,
        )
    };
    let ids: Vec<String> = (0..args.members).map(|i| format!("m{i:05}")).collect();
    let mut epochs: Vec<i32> = ids
        .iter()
        .map(|id| beat(&mut c, id, 0).member_epoch)
        .collect();
    // Settled: every member at the last epoch, owning its share.
    for _ in 0..3 {
        for (i, id) in ids.iter().enumerate() {
            epochs[i] = beat(&mut c, id, epochs[i]).member_epoch;
        }
    }
    let mut images = WrittenImages::default();
    let whole = c.member_group_records("g", None).expect("a group");
    images.diff("g", whole, None);

    // Each round: the member's records compared, the whole group's, and
    // none (the heartbeat alone).
    let mut member_ns = Vec::new();
    let mut whole_ns = Vec::new();
    let mut alone_ns = Vec::new();
    for round in 0..args.rounds {
        for scope in [Some(true), Some(false), None] {
            let started = Instant::now();
            for k in 0..args.beats {
                let i = (round * args.beats + k) % ids.len();
                let id = &ids[i];
                let answer = beat(&mut c, id, epochs[i]);
                assert_eq!(answer.error, ErrorCode::None, "a settled member");
                let differs = match scope {
                    Some(true) => {
                        let partial = c.member_group_records("g", Some(id)).expect("a group");
                        !images.needs_whole("g", &partial)
                            && images.differs("g", &partial, Some(id))
                    }
                    Some(false) => {
                        let whole = c.member_group_records("g", None).expect("a group");
                        images.differs("g", &whole, None)
                    }
                    None => false,
                };
                assert!(!differs, "a steady heartbeat changes nothing");
            }
            let ns = started.elapsed().as_nanos() as f64 / args.beats as f64;
            match scope {
                Some(true) => member_ns.push(ns),
                Some(false) => whole_ns.push(ns),
                None => alone_ns.push(ns),
            }
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (m, w, a) = (
        median(&mut member_ns),
        median(&mut whole_ns),
        median(&mut alone_ns),
    );
    println!(
        "members {}: per heartbeat, with the member's records compared {:.1} us, the whole \
         group's {:.1} us, none (the heartbeat alone) {:.1} us; member / whole {:.4}, member / \
         alone {:.2} (medians of {} rounds of {} heartbeats)",
        args.members,
        m / 1000.0,
        w / 1000.0,
        a / 1000.0,
        m / w,
        m / a,
        args.rounds,
        args.beats
    );
}
