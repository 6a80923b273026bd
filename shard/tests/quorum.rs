//! The controller quorum under the simulator: voters on one virtual clock
//! and a simulated network that loses, delays, duplicates and partitions
//! messages, with voters crashing (power loss or kill) and restarting.
//!
//! What must hold: metadata changes commit only on a majority and are
//! never lost once acknowledged; every voter applies the same command at
//! the same index; no term has two leaders; a leader cut off from the
//! majority stops accepting writes and the majority elects another; a
//! restarted voter catches up, from a snapshot when the log it missed was
//! purged. A failing seed replays with
//! `cargo test -p sluice-shard --test quorum -- random_faults --nocapture`
//! and `QUORUM_SEED=<seed>`.

use std::future::Future;

use sluice_quorum::simulated::Faults;
use sluice_quorum::QuorumConfig;
use sluice_shard::simulated::quorum::{Voters, SESSION_TIMEOUT_MS};

fn run<T>(test: impl Future<Output = T>) -> T {
    glommio::LocalExecutorBuilder::default()
        .make()
        .expect("an executor")
        .run(test)
}

fn config() -> QuorumConfig {
    QuorumConfig {
        heartbeat_ms: 50,
        election_timeout_ms: (300, 600),
        snapshot_commands: 1024,
        alone: false,
    }
}

fn assert_no_violations(voters: &Voters, converged: bool) {
    let violations = voters.violations(converged);
    assert!(violations.is_empty(), "{violations:#?}");
}

#[test]
fn three_voters_elect_a_leader_and_commit_on_every_voter() {
    run(async {
        let voters = Voters::start(3, 1, config(), Faults::NONE).await;
        let leader = voters.await_leader(5_000).await.expect("a leader");
        for i in 0..20 {
            voters
                .create_topic(leader, &format!("t{i}"), 2_000)
                .await
                .expect("a write on a healthy quorum commits");
        }
        voters.converge(5_000).await;
        for id in voters.members().to_vec() {
            assert_eq!(voters.state(id).expect("up").topics.len(), 20, "voter {id}");
        }
        assert_no_violations(&voters, true);
    });
}

#[test]
fn a_single_voter_commits_alone_and_keeps_it_across_a_power_loss() {
    run(async {
        let voters = Voters::start(1, 2, config(), Faults::NONE).await;
        let leader = voters.await_leader(5_000).await.expect("the voter leads");
        for i in 0..5 {
            voters
                .create_topic(leader, &format!("t{i}"), 1_000)
                .await
                .expect("commits");
        }
        voters.crash(1, true);
        voters.boot(1).await;
        voters
            .await_leader(5_000)
            .await
            .expect("the voter leads again");
        voters.converge(5_000).await;
        assert_eq!(voters.state(1).expect("up").topics.len(), 5);
        assert_no_violations(&voters, true);
    });
}

#[test]
fn killing_the_leader_elects_another_and_writes_go_on() {
    run(async {
        let voters = Voters::start(3, 3, config(), Faults::NONE).await;
        let first = voters.await_leader(5_000).await.expect("a leader");
        voters
            .create_topic(first, "before", 2_000)
            .await
            .expect("commits");
        let killed_at = voters.clock.now_ms();
        voters.crash(first, true);
        let second = voters.await_leader(5_000).await.expect("a new leader");
        assert_ne!(second, first);
        let elected_in = voters.clock.now_ms() - killed_at;
        // A follower stands after at most the largest election timeout,
        // and wins at once on a healthy network.
        assert!(
            elected_in <= 2 * config().election_timeout_ms.1 as i64,
            "{elected_in} ms"
        );
        voters
            .create_topic(second, "after", 2_000)
            .await
            .expect("commits");
        voters.converge(10_000).await;
        let state = voters.state(first).expect("the old leader is back");
        assert!(state.topics.contains_key("before") && state.topics.contains_key("after"));
        assert_no_violations(&voters, true);
    });
}

#[test]
fn an_isolated_leader_cannot_commit_and_the_majority_moves_on() {
    run(async {
        let voters = Voters::start(3, 4, config(), Faults::NONE).await;
        let old = voters.await_leader(5_000).await.expect("a leader");
        voters
            .create_topic(old, "agreed", 2_000)
            .await
            .expect("commits");
        let all = voters.members().to_vec();
        voters.net.partition(&[old], &all);
        // The minority side: a write through it is never acknowledged.
        let refused = voters.create_topic(old, "minority", 3_000).await;
        assert!(refused.is_err(), "a one-voter minority committed a write");
        // Its lease has run out: it no longer counts as a leader that
        // accepts writes, and the majority has elected another.
        let new = voters
            .await_leader(5_000)
            .await
            .expect("the majority elects a leader");
        assert_ne!(new, old);
        voters
            .create_topic(new, "majority", 2_000)
            .await
            .expect("the majority commits");
        voters.converge(10_000).await;
        for id in all {
            let state = voters.state(id).expect("up");
            assert!(state.topics.contains_key("majority"), "voter {id}");
            assert!(
                !state.topics.contains_key("minority"),
                "voter {id} kept an uncommitted write"
            );
        }
        assert_no_violations(&voters, true);
    });
}

#[test]
fn an_isolated_broker_is_fenced_by_the_majority_and_unfenced_when_healed() {
    run(async {
        let voters = Voters::start(3, 9, config(), Faults::NONE).await;
        let leader = voters.await_leader(5_000).await.expect("a leader");
        let all = voters.members().to_vec();
        let cut = *all.iter().find(|id| **id != leader).expect("a follower");
        voters.heartbeat_for(1_000).await;
        assert!(voters.fenced(leader).is_empty(), "nobody silent yet");
        voters.net.partition(&[cut], &all);
        // Not before a whole session has passed; fenced after it.
        voters.heartbeat_for(SESSION_TIMEOUT_MS as i64 - 300).await;
        assert!(
            voters.fenced(leader).is_empty(),
            "fenced before its session ran out"
        );
        voters.heartbeat_for(1_000).await;
        let leader = voters.await_leader(5_000).await.expect("a leader");
        assert_eq!(
            voters.fenced(leader),
            vec![cut as i32],
            "the silent broker is fenced"
        );
        assert_no_violations(&voters, false);
        // Healed: heard again, unfenced, and every voter agrees.
        voters.net.heal();
        voters.heartbeat_for(1_000).await;
        voters.converge(10_000).await;
        for id in all {
            assert!(
                voters.fenced(id).is_empty(),
                "voter {id} still fences someone"
            );
        }
        assert_no_violations(&voters, true);
    });
}

#[test]
fn restarting_every_voter_gives_identical_metadata() {
    run(async {
        let voters = Voters::start(3, 5, config(), Faults::NONE).await;
        let leader = voters.await_leader(5_000).await.expect("a leader");
        for i in 0..10 {
            voters
                .create_topic(leader, &format!("t{i}"), 2_000)
                .await
                .expect("commits");
        }
        let before = voters.state(leader).expect("up");
        for id in voters.members().to_vec() {
            voters.crash(id, true);
        }
        voters.converge(10_000).await;
        for id in voters.members().to_vec() {
            assert_eq!(
                voters.state(id).expect("up").topics,
                before.topics,
                "voter {id}"
            );
        }
        assert_no_violations(&voters, true);
    });
}

#[test]
fn a_voter_that_missed_purged_entries_catches_up_from_a_snapshot() {
    run(async {
        let config = QuorumConfig {
            snapshot_commands: 8,
            ..config()
        };
        let voters = Voters::start(3, 6, config, Faults::NONE).await;
        let leader = voters.await_leader(5_000).await.expect("a leader");
        let all = voters.members().to_vec();
        let behind = all
            .iter()
            .copied()
            .find(|id| *id != leader)
            .expect("a follower");
        voters.net.partition(&[behind], &all);
        for i in 0..40 {
            voters
                .create_topic(leader, &format!("t{i}"), 2_000)
                .await
                .expect("commits");
        }
        voters.run_for(3_000).await;
        let metrics = sluice_quorum::metrics_of(&voters.raft(leader).expect("up"));
        assert!(metrics.purged.is_some(), "the leader kept its whole log");
        let installed_before = voters.snapshots_installed(behind);
        voters.converge(10_000).await;
        assert!(
            voters.snapshots_installed(behind) > installed_before,
            "the lagging voter was not sent a snapshot"
        );
        assert_eq!(voters.state(behind).expect("up").topics.len(), 40);
        assert_no_violations(&voters, true);
    });
}

/// One seeded run of random faults; Err(the violations) if a rule broke.
/// A seeded run of `steps` random faults and writes; Ok with how many
/// broker fences it committed, or the first broken rule.
async fn random_run(seed: u64, steps: usize, acks_before_sync: bool) -> Result<usize, String> {
    let faults = Faults {
        max_delay_ms: 20,
        drop_percent: 5,
        duplicate_percent: 5,
    };
    let config = QuorumConfig {
        snapshot_commands: 16,
        ..config()
    };
    let voters = Voters::start_with(3, seed, config, faults, acks_before_sync).await;
    let all = voters.members().to_vec();
    let mut written = 0;
    for step in 0..steps {
        let choice = voters.rng().below(100);
        match choice {
            0..=54 => {
                let via = *voters.rng().pick(&all).expect("voters");
                written += 1;
                let _ = voters
                    .create_topic(via, &format!("s{seed}-{step}"), 1_000)
                    .await;
            }
            55..=64 => {
                let up = voters.up();
                // Keep a majority up most of the time; sometimes not.
                let crash = up.len() == all.len() || voters.rng().chance(20);
                let victim = voters.rng().pick(&up).copied();
                let power_loss = voters.rng().coin_flip();
                if let (true, Some(id)) = (crash, victim) {
                    voters.crash(id, power_loss);
                }
            }
            65..=74 => {
                let down: Vec<_> = all
                    .iter()
                    .copied()
                    .filter(|id| voters.raft(*id).is_none())
                    .collect();
                let revived = voters.rng().pick(&down).copied();
                if let Some(id) = revived {
                    voters.boot(id).await;
                }
            }
            75..=81 => {
                let side = *voters.rng().pick(&all).expect("voters");
                voters.net.partition(&[side], &all);
            }
            82..=87 => voters.net.heal(),
            _ => {
                let ms = 1 + voters.rng().below(1_000) as i64;
                voters.run_for(ms).await;
            }
        }
        voters.heartbeats().await;
        let violations = voters.violations(false);
        if !violations.is_empty() {
            return Err(format!("seed {seed} step {step}: {violations:#?}"));
        }
    }
    voters.converge(30_000).await;
    // Every broker up and connected: heard again, so none stays fenced.
    voters.heartbeat_for(2 * SESSION_TIMEOUT_MS as i64).await;
    voters.converge(30_000).await;
    let violations = voters.violations(true);
    if !violations.is_empty() {
        return Err(format!("seed {seed} at the end: {violations:#?}"));
    }
    if voters.acknowledged().is_empty() && written > 10 {
        return Err(format!(
            "seed {seed}: no write of {written} was ever acknowledged"
        ));
    }
    Ok(voters.applied_like("fence broker"))
}

#[test]
fn random_faults_never_lose_an_acknowledged_write_or_split_the_log() {
    let seeds: Vec<u64> = match std::env::var("QUORUM_SEED") {
        Ok(seed) if !seed.is_empty() => vec![seed.parse().expect("QUORUM_SEED is a number")],
        _ => (1..=12).collect(),
    };
    let mut fences = 0;
    for seed in &seeds {
        // One executor per seed: a run's leftover tasks end with it.
        match run(random_run(*seed, 200, false)) {
            Ok(fenced) => fences += fenced,
            Err(e) => panic!("{e}\nreplay: QUORUM_SEED={seed} cargo test -p sluice-shard --test quorum -- random_faults --nocapture"),
        }
    }
    // The broker checks ran on real fencing, not only on quiet runs.
    assert!(
        seeds.len() < 12 || fences > 0,
        "no seed ever fenced a broker"
    );
    eprintln!(
        "{fences} broker fences committed over {} seeds",
        seeds.len()
    );
}

#[test]
fn the_checks_catch_a_log_that_acknowledges_before_it_syncs() {
    // Power losses then drop entries a majority acknowledged: some seed of
    // the first few must show a lost acknowledged write.
    let caught = (1..=12).find_map(|seed| run(random_run(seed, 200, true)).err());
    let caught = caught.expect("no seed caught appends acknowledged before their fdatasync");
    assert!(caught.contains("lost the acknowledged"), "{caught}");
}
