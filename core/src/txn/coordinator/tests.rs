use super::*;

const ID: &str = "tx";

/// Runs `plan` to its answer, writing any record at once.
fn settle(c: &mut TxnCoordinator, plan: Plan) -> Result<Written, ErrorCode> {
    match plan {
        Plan::Answer(ErrorCode::None) => Ok(Written::Done),
        Plan::Answer(e) => Err(e),
        Plan::Write(record) => Ok(c.written(&record)),
        Plan::NeedProducerId => panic!("asked for a producer id"),
    }
}

fn init(c: &mut TxnCoordinator, expected: Option<(i64, i16)>) -> Result<(i64, i16), ErrorCode> {
    let plan = match c.init_producer_id(ID, 60_000, expected, None, 0) {
        Plan::NeedProducerId => c.init_producer_id(ID, 60_000, expected, Some(1000), 0),
        plan => plan,
    };
    match settle(c, plan)? {
        Written::ProducerId { producer_id, epoch } => Ok((producer_id, epoch)),
        other => panic!("InitProducerId wrote {other:?}"),
    }
}

fn add(
    c: &mut TxnCoordinator,
    pid: i64,
    epoch: i16,
    partitions: &[(&str, i32)],
    now: i64,
) -> Result<Written, ErrorCode> {
    let partitions: Vec<(String, i32)> = partitions
        .iter()
        .map(|(t, p)| (t.to_string(), *p))
        .collect();
    let plan = c.add_partitions(ID, pid, epoch, &partitions, now);
    settle(c, plan)
}

fn complete(c: &mut TxnCoordinator, job: &MarkerJob) {
    let record = c.markers_written(job, 5).expect("a completing record");
    assert_eq!(c.written(&record), Written::Done);
}

#[test]
fn a_transaction_runs_from_init_to_commit() {
    let mut c = TxnCoordinator::new(DEFAULT_MAX_TIMEOUT_MS);
    assert_eq!(init(&mut c, None), Ok((1000, 0)));
    add(&mut c, 1000, 0, &[("a", 0)], 1).expect("added");
    // Adding what is already in is answered without a write.
    assert_eq!(
        c.add_partitions(ID, 1000, 0, &[("a".into(), 0)], 2),
        Plan::Answer(ErrorCode::None)
    );
    add(&mut c, 1000, 0, &[("b", 1)], 2).expect("added");
    let plan = c.end_txn(ID, 1000, 0, true, 3);
    let Ok(Written::Prepared(job)) = settle(&mut c, plan) else {
        panic!("EndTxn did not prepare a commit");
    };
    assert_eq!(job.control, ControlType::Commit);
    assert_eq!(job.partitions.len(), 2);
    // Until the markers are written, the producer waits.
    assert_eq!(
        c.add_partitions(ID, 1000, 0, &[("a".into(), 0)], 4),
        Plan::Answer(ErrorCode::ConcurrentTransactions)
    );
    assert_eq!(
        c.end_txn(ID, 1000, 0, true, 4),
        Plan::Answer(ErrorCode::ConcurrentTransactions)
    );
    assert_eq!(
        c.end_txn(ID, 1000, 0, false, 4),
        Plan::Answer(ErrorCode::InvalidTxnState)
    );
    complete(&mut c, &job);
    assert_eq!(c.get(ID).map(|m| m.status), Some(TxnStatus::CompleteCommit));
    // A retried commit succeeds; an abort now is a wrong state.
    assert_eq!(
        c.end_txn(ID, 1000, 0, true, 6),
        Plan::Answer(ErrorCode::None)
    );
    assert_eq!(
        c.end_txn(ID, 1000, 0, false, 6),
        Plan::Answer(ErrorCode::InvalidTxnState)
    );
    // The next transaction starts afresh.
    add(&mut c, 1000, 0, &[("c", 0)], 7).expect("added");
    let m = c.get(ID).expect("known");
    assert_eq!(
        (m.status, m.partitions.len(), m.start_ms),
        (TxnStatus::Ongoing, 1, 7)
    );
}

#[test]
fn requests_from_the_wrong_producer_are_refused_as_kafka_does() {
    let mut c = TxnCoordinator::new(DEFAULT_MAX_TIMEOUT_MS);
    assert_eq!(
        add(&mut c, 1, 0, &[("a", 0)], 0),
        Err(ErrorCode::InvalidProducerIdMapping)
    );
    init(&mut c, None).expect("initialised");
    assert_eq!(
        add(&mut c, 1, 0, &[("a", 0)], 0),
        Err(ErrorCode::InvalidProducerIdMapping)
    );
    assert_eq!(
        add(&mut c, 1000, 1, &[("a", 0)], 0),
        Err(ErrorCode::ProducerFenced)
    );
    assert_eq!(
        c.end_txn(ID, 1000, 0, true, 0),
        Plan::Answer(ErrorCode::InvalidTxnState)
    );
    assert_eq!(
        c.init_producer_id(ID, DEFAULT_MAX_TIMEOUT_MS + 1, None, None, 0),
        Plan::Answer(ErrorCode::InvalidTransactionTimeout)
    );
}

#[test]
fn a_new_instance_fences_the_old_one_and_aborts_its_transaction() {
    let mut c = TxnCoordinator::new(DEFAULT_MAX_TIMEOUT_MS);
    init(&mut c, None).expect("initialised");
    add(&mut c, 1000, 0, &[("a", 0)], 1).expect("added");
    let plan = c.init_producer_id(ID, 60_000, None, None, 2);
    let Ok(Written::Prepared(job)) = settle(&mut c, plan) else {
        panic!("the open transaction was not aborted");
    };
    assert_eq!((job.control, job.producer_epoch), (ControlType::Abort, 1));
    // The new instance retries until the abort completes.
    assert_eq!(
        c.init_producer_id(ID, 60_000, None, None, 3),
        Plan::Answer(ErrorCode::ConcurrentTransactions)
    );
    complete(&mut c, &job);
    assert_eq!(init(&mut c, None), Ok((1000, 2)));
    // The old instance is fenced.
    assert_eq!(
        add(&mut c, 1000, 0, &[("a", 0)], 4),
        Err(ErrorCode::ProducerFenced)
    );
    assert_eq!(
        c.end_txn(ID, 1000, 0, false, 4),
        Plan::Answer(ErrorCode::ProducerFenced)
    );
    // KIP-360: a producer that knows its id and epoch bumps it; a wrong one is fenced.
    assert_eq!(init(&mut c, Some((1000, 2))), Ok((1000, 3)));
    assert_eq!(
        init(&mut c, Some((1000, 0))),
        Err(ErrorCode::ProducerFenced)
    );
    assert_eq!(init(&mut c, Some((7, 3))), Err(ErrorCode::ProducerFenced));
}

#[test]
fn a_transaction_past_its_timeout_is_aborted_under_a_new_epoch() {
    let mut c = TxnCoordinator::new(DEFAULT_MAX_TIMEOUT_MS);
    init(&mut c, None).expect("initialised");
    add(&mut c, 1000, 0, &[("a", 0)], 100).expect("added");
    assert_eq!(c.next_deadline_ms(), Some(60_100));
    assert!(c.expire(60_099).is_empty());
    let records = c.expire(60_100);
    assert_eq!(records.len(), 1);
    let Written::Prepared(job) = c.written(&records[0]) else {
        panic!("the timeout did not prepare an abort");
    };
    assert_eq!((job.control, job.producer_epoch), (ControlType::Abort, 1));
    complete(&mut c, &job);
    assert_eq!(
        c.end_txn(ID, 1000, 0, true, 60_200),
        Plan::Answer(ErrorCode::ProducerFenced)
    );
    // No timeout left: the next deadline is the idle id's expiry.
    assert_eq!(c.next_deadline_ms(), Some(5 + DEFAULT_ID_EXPIRATION_MS));
}

#[test]
fn a_failed_write_leaves_the_state_as_it_was() {
    let mut c = TxnCoordinator::new(DEFAULT_MAX_TIMEOUT_MS);
    let Plan::Write(record) = c.init_producer_id(ID, 60_000, None, Some(5), 0) else {
        panic!("no write");
    };
    c.write_failed(&record);
    assert!(c.get(ID).is_none());
    init(&mut c, None).expect("initialised");
    let Plan::Write(record) = c.add_partitions(ID, 1000, 0, &[("a".into(), 0)], 1) else {
        panic!("no write");
    };
    assert_eq!(
        c.end_txn(ID, 1000, 0, true, 1),
        Plan::Answer(ErrorCode::ConcurrentTransactions)
    );
    c.write_failed(&record);
    assert_eq!(
        c.get(ID).map(|m| (m.status, m.pending)),
        Some((TxnStatus::Empty, false))
    );
}

#[test]
fn prepared_transactions_are_in_doubt_after_a_load() {
    let mut c = TxnCoordinator::new(DEFAULT_MAX_TIMEOUT_MS);
    init(&mut c, None).expect("initialised");
    add(&mut c, 1000, 0, &[("a", 0)], 1).expect("added");
    let Plan::Write(prepare) = c.end_txn(ID, 1000, 0, false, 2) else {
        panic!("no write");
    };
    let mut loaded = TxnCoordinator::new(DEFAULT_MAX_TIMEOUT_MS);
    loaded.apply(prepare);
    let jobs = loaded.in_doubt();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].control, ControlType::Abort);
    complete(&mut loaded, &jobs[0]);
    assert!(loaded.in_doubt().is_empty());
}

#[test]
fn an_idle_id_expires_through_a_tombstone_and_an_ongoing_one_does_not() {
    let mut c = TxnCoordinator::new(DEFAULT_MAX_TIMEOUT_MS).with_id_expiration_ms(1_000);
    assert_eq!(init(&mut c, None), Ok((1000, 0)));
    // Empty since 0: it expires at 1000, not before.
    assert_eq!(c.next_deadline_ms(), Some(1_000));
    assert!(c.expire(999).is_empty());
    let expired = c.expire(1_000);
    assert_eq!(
        expired,
        vec![TxnRecord {
            transactional_id: ID.into(),
            value: None
        }]
    );
    // While the tombstone is written the id is busy.
    assert_eq!(
        c.init_producer_id(ID, 60_000, None, None, 1_000),
        Plan::Answer(ErrorCode::ConcurrentTransactions)
    );
    assert!(c.expire(5_000).is_empty(), "one tombstone at a time");
    assert_eq!(c.written(&expired[0]), Written::Done);
    assert!(c.get(ID).is_none(), "forgotten");
    assert_eq!(c.next_deadline_ms(), None);

    // An id with a transaction in progress never expires: only its
    // timeout ends that transaction (and then it is idle again).
    assert_eq!(init(&mut c, None), Ok((1000, 0)));
    add(&mut c, 1000, 0, &[("a", 0)], 2_000).expect("added");
    let expired = c.expire(2_000 + 1_000 + 1);
    assert!(
        expired.iter().all(|r| r.value.is_some()),
        "an ongoing transaction is not forgotten: {expired:?}"
    );
}

#[test]
fn a_failed_tombstone_leaves_the_id_as_it_was() {
    let mut c = TxnCoordinator::new(DEFAULT_MAX_TIMEOUT_MS).with_id_expiration_ms(1_000);
    assert_eq!(init(&mut c, None), Ok((1000, 0)));
    let expired = c.expire(1_000);
    assert_eq!(expired.len(), 1);
    c.write_failed(&expired[0]);
    let m = c.get(ID).expect("kept");
    assert!(!m.pending);
    assert_eq!(c.next_deadline_ms(), Some(1_000), "tried again");
}

/// EndTxn v5 as a transaction version 2 client sends it: the answer once
/// settled, and the id and epoch to go on with.
fn end_v2(
    c: &mut TxnCoordinator,
    pid: i64,
    epoch: i16,
    commit: bool,
) -> Result<(Written, (i64, i16)), ErrorCode> {
    let plan = match c.end_txn_v2(ID, pid, epoch, commit, None, 9) {
        Plan::NeedProducerId => c.end_txn_v2(ID, pid, epoch, commit, Some(2000), 9),
        plan => plan,
    };
    let written = settle(c, plan)?;
    Ok((written, c.get(ID).expect("known").after_completion()))
}

#[test]
fn version_2_bumps_the_epoch_at_every_end_and_its_markers_carry_it() {
    let mut c = TxnCoordinator::new(DEFAULT_MAX_TIMEOUT_MS);
    let (pid, epoch) = init(&mut c, None).expect("init");
    add(&mut c, pid, epoch, &[("a", 0)], 1).expect("implicitly added");
    let (written, next) = end_v2(&mut c, pid, epoch, true).expect("commit");
    let Written::Prepared(job) = written else {
        panic!("a commit prepares: {written:?}");
    };
    assert_eq!(
        (job.producer_id, job.producer_epoch),
        (pid, epoch + 1),
        "the markers' epoch"
    );
    assert_eq!(next, (pid, epoch + 1), "what the producer goes on with");
    // A retry of the EndTxn while the markers are written waits; once
    // complete it is answered as the first one was, writing nothing.
    assert_eq!(
        end_v2(&mut c, pid, epoch, true),
        Err(ErrorCode::ConcurrentTransactions)
    );
    complete(&mut c, &job);
    assert_eq!(
        end_v2(&mut c, pid, epoch, true),
        Ok((Written::Done, (pid, epoch + 1)))
    );
    // The old epoch can add nothing now: a zombie is fenced.
    assert_eq!(
        add(&mut c, pid, epoch, &[("a", 0)], 10),
        Err(ErrorCode::ProducerFenced)
    );
    // The next transaction runs under the new epoch.
    add(&mut c, pid, epoch + 1, &[("a", 0)], 11).expect("added under the new epoch");
    assert_eq!(
        end_v2(&mut c, pid, epoch, false),
        Err(ErrorCode::ProducerFenced)
    );
}

#[test]
fn version_2_answers_as_kafka_state_by_state() {
    let mut c = TxnCoordinator::new(DEFAULT_MAX_TIMEOUT_MS);
    let (pid, epoch) = init(&mut c, None).expect("init");
    // Empty: commit is refused, an abort of nothing bumps the epoch.
    assert_eq!(
        end_v2(&mut c, pid, epoch, true),
        Err(ErrorCode::InvalidTxnState)
    );
    let (written, next) = end_v2(&mut c, pid, epoch, false).expect("an empty abort");
    let Written::Prepared(job) = written else {
        panic!("an abort prepares: {written:?}");
    };
    assert!(job.partitions.is_empty(), "no marker to write");
    assert_eq!(next, (pid, epoch + 1));
    complete(&mut c, &job);
    let epoch = epoch + 1;
    // CompleteAbort: a retried abort is answered NONE, a commit of the
    // old epoch INVALID_TXN_STATE, a current commit INVALID_TXN_STATE too.
    assert_eq!(
        end_v2(&mut c, pid, epoch - 1, false),
        Ok((Written::Done, (pid, epoch)))
    );
    assert_eq!(
        end_v2(&mut c, pid, epoch - 1, true),
        Err(ErrorCode::InvalidTxnState)
    );
    assert_eq!(
        end_v2(&mut c, pid, epoch, true),
        Err(ErrorCode::InvalidTxnState)
    );
    // Older epochs and other producer ids.
    assert_eq!(
        end_v2(&mut c, pid, epoch - 2, false),
        Err(ErrorCode::ProducerFenced)
    );
    assert_eq!(
        end_v2(&mut c, pid + 1, epoch, false),
        Err(ErrorCode::InvalidProducerIdMapping)
    );
    // While the markers are written, whatever comes waits (Kafka's
    // pending transition): a retry, and the next EndTxn under the new
    // epoch, which Kafka answers once they are in.
    add(&mut c, pid, epoch, &[("a", 0)], 20).expect("added");
    let (written, _) = end_v2(&mut c, pid, epoch, true).expect("commit");
    let Written::Prepared(job) = written else {
        panic!("a commit prepares: {written:?}");
    };
    for (e, commit) in [(epoch, true), (epoch, false), (epoch + 1, false)] {
        assert_eq!(
            end_v2(&mut c, pid, e, commit),
            Err(ErrorCode::ConcurrentTransactions)
        );
    }
    complete(&mut c, &job);
    // CompleteCommit: a retried commit is answered NONE, its abort
    // INVALID_TXN_STATE, and an abort under the new epoch is an empty one.
    assert_eq!(
        end_v2(&mut c, pid, epoch, true),
        Ok((Written::Done, (pid, epoch + 1)))
    );
    assert_eq!(
        end_v2(&mut c, pid, epoch, false),
        Err(ErrorCode::InvalidTxnState)
    );
    let (written, next) = end_v2(&mut c, pid, epoch + 1, false).expect("an empty abort");
    assert!(matches!(written, Written::Prepared(_)));
    assert_eq!(next, (pid, epoch + 2));
}

#[test]
fn an_exhausted_epoch_moves_the_id_to_a_new_producer_id_at_completion() {
    let mut c = TxnCoordinator::new(DEFAULT_MAX_TIMEOUT_MS);
    let (pid, _) = init(&mut c, None).expect("init");
    // As if 32766 transactions had ended.
    let record = {
        let mut v = c.get(ID).expect("known").clone();
        v.producer_epoch = i16::MAX - 1;
        record_of(ID, &v)
    };
    c.apply(record);
    let epoch = i16::MAX - 1;
    add(&mut c, pid, epoch, &[("a", 0)], 1).expect("added");
    let (written, next) = end_v2(&mut c, pid, epoch, true).expect("commit");
    let Written::Prepared(job) = written else {
        panic!("a commit prepares: {written:?}");
    };
    assert_eq!(
        (job.producer_id, job.producer_epoch),
        (pid, i16::MAX),
        "markers under the old id"
    );
    assert_eq!(next, (2000, 0), "the producer goes on with a new id");
    // The prepared state is durable with the next id: a reload finishes
    // the same way.
    let stored = record_of(ID, c.get(ID).expect("known"));
    let mut reloaded = TxnCoordinator::new(DEFAULT_MAX_TIMEOUT_MS);
    reloaded.apply(
        TxnRecord::decode(&stored.encode_key(), stored.encode_value().as_deref()).expect("decodes"),
    );
    assert_eq!(
        reloaded.get(ID).expect("loaded").after_completion(),
        (2000, 0)
    );
    complete(&mut c, &job);
    let m = c.get(ID).expect("known");
    assert_eq!(
        (m.producer_id, m.producer_epoch, m.prev_producer_id),
        (2000, 0, pid)
    );
    // The retry of that EndTxn, from the old id, is still recognised.
    assert_eq!(
        end_v2(&mut c, pid, i16::MAX - 1, true),
        Ok((Written::Done, (2000, 0)))
    );
}
