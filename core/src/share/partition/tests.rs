use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;

fn config() -> ShareConfig {
    ShareConfig {
        lock_duration_ms: 1_000,
        delivery_count_limit: 3,
        max_record_locks: 8,
        dead_letter: false,
        renew_acknowledge: true,
    }
}

/// A fetch that answers at once: acquires, then hands out.
fn fetch(
    p: &mut SharePartition,
    member: &str,
    log_end: Offset,
    max: usize,
    now: i64,
) -> Vec<Acquired> {
    let acquired = p.acquire(member, log_end, max, now);
    p.hand_out(member, &acquired, now)
}

fn offsets(acquired: &[Acquired]) -> Vec<Offset> {
    acquired.iter().flat_map(|a| a.first..=a.last).collect()
}

#[test]
fn members_share_one_partition_without_holding_a_record_twice() {
    let mut p = SharePartition::new(0, config());
    let a = p.acquire("a", 100, 3, 0);
    let b = p.acquire("b", 100, 3, 0);
    assert_eq!(
        a,
        vec![Acquired {
            first: 0,
            last: 2,
            delivery_count: 1
        }]
    );
    assert_eq!(offsets(&b), vec![3, 4, 5]);
    // Eight locks at most: c gets the two left.
    assert_eq!(offsets(&p.acquire("c", 100, 3, 0)), vec![6, 7]);
    assert!(p.acquire("d", 100, 3, 0).is_empty(), "no lock left");
    assert_eq!(p.count(RecordState::Acquired), 8);
    p.check().expect("invariants");
}

#[test]
fn accepted_records_move_the_start_and_are_never_delivered_again() {
    let mut p = SharePartition::new(10, config());
    p.acquire("a", 20, 4, 0);
    assert_eq!(p.acknowledge("a", 10, 11, AckType::Accept, 1), Ok(()));
    assert_eq!((p.start_offset(), p.end_offset()), (12, 14));
    // A record in the middle accepted: the start waits for the front.
    assert_eq!(p.acknowledge("a", 13, 13, AckType::Accept, 1), Ok(()));
    assert_eq!(p.start_offset(), 12);
    assert_eq!(p.acknowledge("a", 12, 12, AckType::Accept, 1), Ok(()));
    assert_eq!(p.start_offset(), 14);
    assert_eq!(offsets(&p.acquire("b", 20, 2, 2)), vec![14, 15]);
    p.check().expect("invariants");
}

#[test]
fn a_release_redelivers_with_the_count_up_and_a_reject_archives() {
    let mut p = SharePartition::new(0, config());
    fetch(&mut p, "a", 2, 2, 0);
    p.acknowledge("a", 0, 0, AckType::Release, 1)
        .expect("release");
    p.acknowledge("a", 1, 1, AckType::Reject, 1)
        .expect("reject");
    assert_eq!(p.state_of(1), Some((RecordState::Archived, 1)));
    assert_eq!(
        fetch(&mut p, "b", 2, 5, 2),
        vec![Acquired {
            first: 0,
            last: 0,
            delivery_count: 2
        }]
    );
    p.acknowledge("b", 0, 0, AckType::Accept, 3)
        .expect("accept");
    assert_eq!((p.start_offset(), p.end_offset()), (2, 2), "both done");
    p.check().expect("invariants");
}

#[test]
fn a_poison_record_is_archived_at_the_delivery_limit() {
    let mut p = SharePartition::new(0, config());
    let mut now = 0;
    for delivery in 1..=3 {
        let got = fetch(&mut p, "a", 1, 1, now);
        assert_eq!(got[0].delivery_count, delivery);
        // The member dies with it: the lock runs out.
        now += 1_000;
        assert_eq!(p.expire_locks(now), 1);
        p.check().expect("invariants");
    }
    assert_eq!(p.state_of(0), None, "archived and passed");
    assert_eq!(p.start_offset(), 1);
    assert!(fetch(&mut p, "a", 1, 1, now).is_empty());
}

#[test]
fn only_the_holder_acknowledges_and_a_bad_range_changes_nothing() {
    let mut p = SharePartition::new(0, config());
    p.acquire("a", 4, 2, 0);
    p.acquire("b", 4, 2, 0);
    let before = p.clone();
    for (member, first, last) in [
        ("b", 0, 0),
        ("a", 1, 2),
        ("a", 3, 3),
        ("a", 5, 5),
        ("a", 1, 0),
    ] {
        assert_eq!(
            p.acknowledge(member, first, last, AckType::Accept, 1),
            Err(ErrorCode::InvalidRecordState),
            "{member} {first}..={last}"
        );
    }
    assert_eq!(p, before);
    // Once its lock ran out, the old holder's acknowledgement is refused.
    p.expire_locks(1_000);
    assert_eq!(
        p.acknowledge("a", 0, 1, AckType::Accept, 1_001),
        Err(ErrorCode::InvalidRecordState)
    );
}

#[test]
fn renew_keeps_the_lock_and_a_leaving_member_gives_its_records_back() {
    let mut p = SharePartition::new(0, config());
    p.acquire("a", 2, 2, 0);
    p.acknowledge("a", 0, 1, AckType::Renew, 900)
        .expect("renew");
    assert_eq!(p.expire_locks(1_000), 0, "renewed until 1900");
    assert_eq!(p.next_deadline_ms(), Some(1_900));
    assert_eq!(p.release_member("a"), 2);
    assert_eq!(p.count(RecordState::Available), 2);
    assert_eq!(p.next_deadline_ms(), None);
    p.check().expect("invariants");
    // share.renew.acknowledge.enable=false: RENEW is refused, the lock
    // runs out as it would.
    let mut p = SharePartition::new(
        0,
        ShareConfig {
            renew_acknowledge: false,
            ..config()
        },
    );
    p.acquire("a", 1, 1, 0);
    assert_eq!(
        p.acknowledge("a", 0, 0, AckType::Renew, 900),
        Err(ErrorCode::InvalidRecordState)
    );
    assert_eq!(p.expire_locks(1_000), 1);
}

#[test]
fn records_never_sent_are_taken_back_uncounted() {
    let mut p = SharePartition::new(0, config());
    assert_eq!(
        offsets(&fetch(&mut p, "a", 10, 6, 0)),
        vec![0, 1, 2, 3, 4, 5]
    );
    // The read returned 0..=2: the rest goes back, the tail forgotten.
    p.unacquire("a", 3, 5);
    assert_eq!(p.end_offset(), 3);
    p.acknowledge("a", 1, 1, AckType::Release, 0).expect("held");
    p.unacquire("a", 1, 1);
    assert_eq!(
        p.state_of(1),
        Some((RecordState::Available, 1)),
        "not a's any more"
    );
    let again = fetch(&mut p, "b", 10, 2, 0);
    assert_eq!(
        again[0],
        Acquired {
            first: 1,
            last: 1,
            delivery_count: 2
        }
    );
    p.unacquire("b", 1, 1);
    assert_eq!(p.state_of(1), Some((RecordState::Available, 1)));
    p.check().expect("invariants");
}

#[test]
fn a_delivery_counts_once_handed_out() {
    let config = ShareConfig {
        delivery_count_limit: 2,
        dead_letter: true,
        ..config()
    };
    let mut p = SharePartition::new(0, config);
    // Three fetches acquire 0-1 and take longer than a lock to answer;
    // none hands them out: no delivery counts, nothing reaches the limit.
    for round in 0..3 {
        let now = round * 2_000;
        let got = p.acquire("a", 10, 2, now);
        assert_eq!(got[0].delivery_count, 1, "round {round}");
        assert!(p.awaits_hand_out(0));
        // Stored as not delivered yet, so a restart does not count it.
        let (_, batches) = p.state_batches();
        assert_eq!(batches[0].delivery_count, 0);
        assert_eq!(p.expire_locks(now + 1_000), 2);
        assert_eq!(p.state_of(0), Some((RecordState::Available, 0)));
        p.check().expect("invariants");
    }
    // A member leaving before its fetch answers: the same.
    p.acquire("b", 10, 2, 6_000);
    assert_eq!(p.release_member("b"), 2);
    assert_eq!(p.state_of(1), Some((RecordState::Available, 0)));
    // Handed out, it counts: twice reaches the limit.
    for round in 0..2 {
        let now = 7_000 + round * 2_000;
        let got = p.acquire("a", 10, 2, now);
        assert_eq!(p.hand_out("a", &got, now), got);
        assert!(!p.awaits_hand_out(0));
        assert_eq!(p.expire_locks(now + 1_000), 2);
    }
    assert_eq!(p.state_of(0), Some((RecordState::Archiving, 2)));
    p.check().expect("invariants");
}

#[test]
fn a_hand_out_restarts_the_locks_and_leaves_out_what_ran_out() {
    let mut p = SharePartition::new(0, config());
    let a = p.acquire("a", 10, 4, 0);
    // The fetch took 900 ms to answer: its locks count from the answer.
    assert_eq!(p.hand_out("a", &a, 900), a);
    assert_eq!(p.next_deadline_ms(), Some(1_900));
    assert_eq!(p.expire_locks(1_000), 0, "locked until 1900");
    // Another fetch of a's waited past its locks: 0 and 1 went to b in
    // between and are not handed to a; 2 and 3 went back to a itself by
    // a later fetch (a second delivery), so this one hands out none.
    let late = p.acquire("a", 10, 2, 1_000);
    assert_eq!(offsets(&late), vec![4, 5]);
    assert_eq!(p.expire_locks(1_900), 4);
    assert_eq!(p.expire_locks(2_000), 2);
    assert_eq!(offsets(&p.acquire("b", 10, 2, 2_000)), vec![0, 1]);
    assert_eq!(offsets(&p.acquire("a", 10, 2, 2_000)), vec![2, 3]);
    let stale = [
        Acquired {
            first: 0,
            last: 3,
            delivery_count: 1,
        },
        late[0],
    ];
    assert_eq!(
        p.hand_out("a", &stale, 2_100),
        Vec::<Acquired>::new(),
        "0-1 are b's, 2-3 a's second delivery, 4-5 available"
    );
    assert_eq!(p.state_of(0), Some((RecordState::Acquired, 2)));
    p.check().expect("invariants");
}

#[test]
fn a_fetch_completes_the_log_batch_it_returns() {
    let mut p = SharePartition::new(0, config());
    assert_eq!(offsets(&p.acquire("a", 10, 2, 0)), vec![0, 1]);
    let rest = p.acquire_through("a", 4, 0).expect("the rest of the batch");
    assert_eq!(
        rest,
        Acquired {
            first: 2,
            last: 4,
            delivery_count: 1
        }
    );
    assert_eq!(p.end_offset(), 5);
    assert_eq!(
        p.acquire_through("a", 3, 0),
        None,
        "nothing new below the end"
    );
    p.check().expect("invariants");
}

#[test]
fn records_gone_from_the_log_are_done_with_once_their_members_let_go() {
    let mut p = SharePartition::new(
        0,
        ShareConfig {
            dead_letter: true,
            ..config()
        },
    );
    let got = p.acquire("a", 10, 4, 0);
    p.hand_out("a", &got, 0);
    p.log_start_moved(2);
    assert_eq!((p.start_offset(), p.end_offset()), (2, 4));
    assert_eq!(
        p.state_of(0),
        Some((RecordState::Acquired, 1)),
        "kept aside"
    );
    assert_eq!(p.in_flight(), 4);
    assert_eq!(
        p.acknowledge("b", 0, 0, AckType::Accept, 0),
        Err(ErrorCode::InvalidRecordState),
        "not b's"
    );
    p.acknowledge("a", 0, 0, AckType::Accept, 0)
        .expect("a holds 0");
    assert_eq!(p.state_of(0), None, "accepted: done with");
    // A range across the SPSO.
    p.acknowledge("a", 1, 2, AckType::Reject, 0)
        .expect("a holds 1 and 2");
    assert_eq!(p.state_of(1), Some((RecordState::Archiving, 1)));
    let (start, batches) = p.state_batches();
    assert_eq!(
        (start, batches[0].first_offset, batches[0].delivery_state),
        (2, 1, STATE_ARCHIVING)
    );
    let restored = SharePartition::restore(start, &batches, p.config());
    assert_eq!(
        restored.state_of(1),
        Some((RecordState::Archiving, 1)),
        "still to be written"
    );
    restored.check().expect("invariants");
    assert_eq!(
        p.archiving().iter().map(|(o, _, _)| *o).collect::<Vec<_>>(),
        vec![1, 2]
    );
    p.archived(&[1, 2]);
    assert_eq!((p.state_of(1), p.state_of(2)), (None, None));
    p.log_start_moved(6);
    assert_eq!((p.start_offset(), p.end_offset()), (6, 6));
    assert_eq!(p.state_of(3), Some((RecordState::Acquired, 1)));
    assert_eq!(offsets(&p.acquire("a", 10, 1, 0)), vec![6]);
    // A lock that runs out below the SPSO: done with, never delivered
    // again.
    p.expire_locks(i64::MAX);
    assert_eq!((p.state_of(3), p.in_flight()), (None, 1));
    p.check().expect("invariants");
}

#[derive(Debug, Clone)]
enum Op {
    Acquire {
        member: u8,
        max: u8,
    },
    Ack {
        member: u8,
        first: u8,
        len: u8,
        ack: u8,
    },
    Tick {
        ms: u16,
    },
    Leave {
        member: u8,
    },
    /// The log was cut back to `end` (not below its start).
    Truncate {
        end: u8,
    },
    /// The log's start moved up to `start` (retention, DeleteRecords).
    LogStart {
        start: u8,
    },
    /// A returned batch completed through `last`.
    Through {
        member: u8,
        last: u8,
    },
    /// A read stopped short of acquired records: they are taken back.
    Unacquire {
        member: u8,
        first: u8,
        len: u8,
    },
    /// The first `n` Archiving records were written to the dead-letter
    /// topic.
    DeadLettered {
        n: u8,
    },
    /// Records a member acquired were of an aborted transaction
    /// (read_committed): archived.
    Aborted {
        member: u8,
        first: u8,
        len: u8,
    },
    /// A fetch answers: what it acquired is handed out, as far as the
    /// member still holds it.
    HandOut {
        member: u8,
        first: u8,
        len: u8,
        count: u16,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..3u8, 1..5u8).prop_map(|(member, max)| Op::Acquire { member, max }),
        (0..3u8, 0..24u8, 1..4u8, 1..5u8).prop_map(|(member, first, len, ack)| Op::Ack {
            member,
            first,
            len,
            ack
        }),
        (0..1500u16).prop_map(|ms| Op::Tick { ms }),
        (0..3u8).prop_map(|member| Op::Leave { member }),
        (0..24u8).prop_map(|end| Op::Truncate { end }),
        (0..24u8).prop_map(|start| Op::LogStart { start }),
        (0..3u8, 0..24u8).prop_map(|(member, last)| Op::Through { member, last }),
        (0..3u8, 0..24u8, 1..6u8).prop_map(|(member, first, len)| Op::Unacquire {
            member,
            first,
            len
        }),
        (0..4u8).prop_map(|n| Op::DeadLettered { n }),
        (0..3u8, 0..24u8, 1..4u8).prop_map(|(member, first, len)| Op::Aborted {
            member,
            first,
            len
        }),
        (0..3u8, 0..24u8, 1..6u8, 1..4u16).prop_map(|(member, first, len, count)| Op::HandOut {
            member,
            first,
            len,
            count
        }),
    ]
}

proptest! {
    /// Under any mix of fetches, acknowledgements, lock timeouts and
    /// members leaving: the invariants hold after every step, a record is
    /// held by one member at a time, an accepted or archived record is
    /// never handed out again, and once everyone accepts what it holds
    /// every record ends up done. With a dead-letter topic, rejected and
    /// over-limit records are Archiving (never handed out again) until
    /// written there.
    #[test]
    fn share_partition_invariants(
        ops in proptest::collection::vec(op(), 1..120),
        dead_letter in any::<bool>(),
    ) {
        const LOG_END: Offset = 24;
        let config = || ShareConfig { dead_letter, ..config() };
        let finished = |s: RecordState| s.is_done() || s == RecordState::Archiving;
        let mut p = SharePartition::new(0, config());
        let mut now = 0i64;
        let mut log_start: Offset = 0;
        let mut done: BTreeSet<Offset> = BTreeSet::new();
        // How often each offset was handed out: a delivery counts only then.
        let mut handed: BTreeMap<Offset, u16> = BTreeMap::new();
        let member = |m: u8| format!("m{m}");
        for op in ops {
            match op {
                Op::Acquire { member: m, max } => {
                    let got = offsets(&p.acquire(&member(m), LOG_END, max as usize, now));
                    for o in got {
                        prop_assert!(!done.contains(&o), "{o} handed out after it was done");
                    }
                }
                Op::Ack { member: m, first, len, ack } => {
                    let (first, last) = (first as Offset, (first + len - 1) as Offset);
                    let ack = AckType::from_code(ack as i8).expect("1..=4");
                    if p.acknowledge(&member(m), first, last, ack, now).is_ok() {
                        for o in first..=last {
                            if p.state_of(o).is_none_or(|(s, _)| finished(s)) {
                                done.insert(o);
                            }
                        }
                        if ack == AckType::Reject {
                            let want = if dead_letter { RecordState::Archiving } else { RecordState::Archived };
                            for o in first..=last {
                                if let Some((s, _)) = p.state_of(o) {
                                    prop_assert_eq!(s, want, "rejected {}", o);
                                }
                            }
                        }
                    }
                }
                Op::Tick { ms } => {
                    now += ms as i64;
                    p.expire_locks(now);
                }
                Op::Leave { member: m } => {
                    p.release_member(&member(m));
                }
                Op::Through { member: m, last } => {
                    if let Some(a) = p.acquire_through(&member(m), last as Offset, now) {
                        for o in a.first..=a.last {
                            prop_assert!(!done.contains(&o), "{o} handed out after it was done");
                        }
                    }
                }
                Op::Truncate { end } => {
                    let end = (end as Offset).max(log_start);
                    p.log_truncated(end);
                    // Records written there next are new ones.
                    done.retain(|o| *o < end);
                    handed.retain(|o, _| *o < end);
                }
                Op::LogStart { start } => {
                    log_start = log_start.max(start as Offset);
                    p.log_start_moved(log_start);
                }
                Op::Unacquire { member: m, first, len } => {
                    p.unacquire(&member(m), first as Offset, (first + len - 1) as Offset);
                }
                Op::Aborted { member: m, first, len } => {
                    let (first, last) = (first as Offset, (first + len - 1) as Offset);
                    let held: Vec<Offset> = (first..=last)
                        .filter(|o| p.state_of(*o).is_some_and(|(s, _)| s == RecordState::Acquired))
                        .collect();
                    p.archive_aborted(&member(m), first, last);
                    for o in held {
                        if p.state_of(o).is_none_or(|(s, _)| s == RecordState::Archived) {
                            done.insert(o);
                        }
                    }
                }
                Op::HandOut { member: m, first, len, count } => {
                    let asked = Acquired {
                        first: first as Offset,
                        last: (first + len - 1) as Offset,
                        delivery_count: count,
                    };
                    let was_waiting: BTreeSet<Offset> =
                        (asked.first..=asked.last).filter(|o| p.awaits_hand_out(*o)).collect();
                    for a in p.hand_out(&member(m), &[asked], now) {
                        prop_assert_eq!(a.delivery_count, count);
                        for o in a.first..=a.last {
                            if was_waiting.contains(&o) {
                                *handed.entry(o).or_default() += 1;
                            }
                            prop_assert!(o >= asked.first && o <= asked.last);
                            prop_assert_eq!(p.state_of(o), Some((RecordState::Acquired, count)));
                            prop_assert!(!done.contains(&o), "{o} handed out after it was done");
                        }
                    }
                    prop_assert!(p.next_deadline_ms().is_none_or(|d| d > now), "a lock ended unexpired");
                }
                Op::DeadLettered { n } => {
                    let written: Vec<Offset> =
                        p.archiving().iter().take(n as usize).map(|(o, _, _)| *o).collect();
                    prop_assert_eq!(p.archived(&written), written.len());
                }
            }
            // Below the SPSO a record not kept aside is done with.
            for o in 0..p.start_offset() {
                if p.state_of(o).is_none() {
                    done.insert(o);
                }
            }
            prop_assert!(dead_letter || p.archiving().is_empty(), "archiving without a dead-letter topic");
            prop_assert_eq!(p.check(), Ok(()));
            prop_assert_eq!(
                p.is_settled(),
                p.count(RecordState::Acquired) + p.count(RecordState::Archiving) == 0
            );
            // The durable form gives back the same partition, acquired
            // records as if their locks had expired: available again, or
            // archived at the delivery limit (the front then moves on).
            let (start, batches) = p.state_batches();
            let back = SharePartition::restore(start, &batches, config());
            prop_assert_eq!(back.check(), Ok(()));
            // Kept aside below the SPSO: what still goes to the dead-letter
            // topic comes back, what was acquired there is done with.
            for o in 0..p.start_offset() {
                let want = p.state_of(o).filter(|(s, _)| *s == RecordState::Archiving);
                prop_assert_eq!(back.state_of(o), want, "offset {} below the SPSO", o);
            }
            for o in p.start_offset()..p.end_offset() {
                let (state, count) = p.state_of(o).expect("in flight");
                let count = count - u16::from(p.awaits_hand_out(o));
                prop_assert!(
                    count <= handed.get(&o).copied().unwrap_or(0),
                    "offset {} counts {} deliveries, handed out {:?} times", o, count, handed.get(&o)
                );
                let want = match state {
                    RecordState::Acquired if count >= config().delivery_count_limit => {
                        if dead_letter { RecordState::Archiving } else { RecordState::Archived }
                    }
                    RecordState::Acquired => RecordState::Available,
                    other => other,
                };
                match back.state_of(o) {
                    Some(got) => prop_assert_eq!(got, (want, count), "offset {}", o),
                    None => prop_assert!(o < back.start_offset() && want.is_done(), "offset {} lost", o),
                }
            }
            // Every offset below the start is done; a done record stays done.
            for o in &done {
                prop_assert!(p.state_of(*o).is_none_or(|(s, _)| finished(s)), "{} came back", o);
            }
        }
        // Everyone accepts whatever it gets from now on: all ends done.
        for _ in 0..(LOG_END as usize * config().delivery_count_limit as usize + 8) {
            now += 2_000;
            p.expire_locks(now);
            for a in p.acquire("closer", LOG_END, 8, now) {
                prop_assert_eq!(p.acknowledge("closer", a.first, a.last, AckType::Accept, now), Ok(()));
            }
            let written: Vec<Offset> = p.archiving().iter().map(|(o, _, _)| *o).collect();
            p.archived(&written);
        }
        prop_assert_eq!((p.start_offset(), p.end_offset()), (LOG_END, LOG_END));
    }
}
