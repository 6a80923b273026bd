//! What a shard gets from the world besides its disk and its peers: the
//! time, timers and fresh ids.
//!
//! Owns: the [`Env`] trait and its production implementation
//! [`SystemEnv`] (the wall clock, glommio timers, random UUIDs). The
//! simulator gives a virtual clock and seeded ids instead, so a run is the
//! same for the same seed.
//!
//! Invariant: shard code reads the time and arms timers only through its
//! `Env`; nothing under `shard/` calls `SystemTime::now`, a glommio timer or
//! a random source directly (the runtime, which drives production, apart).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// A timer's future: ready once its duration has passed on the env's clock.
pub type Sleep = Pin<Box<dyn Future<Output = ()>>>;

/// The time, timers and ids a shard uses.
pub trait Env {
    /// Milliseconds since the Unix epoch (timestamps).
    fn now_ms(&self) -> i64;
    /// Milliseconds on a clock that never goes back (deadlines).
    fn monotonic_ms(&self) -> u64;
    /// Completes after `duration` on this env's clock.
    fn sleep(&self, duration: Duration) -> Sleep;
    /// A fresh random 16-byte id (topic ids: version-4 UUIDs).
    fn new_id(&self) -> [u8; 16];
    /// A rule deliberately broken, for the simulator's proof that its
    /// checks catch what the rule prevents. Production never breaks one.
    fn broken_rule(&self) -> Option<BrokenRule> {
        None
    }
    /// [`BrokenRule::AcksBeforeSync`] is on.
    fn acks_before_sync(&self) -> bool {
        self.broken_rule() == Some(BrokenRule::AcksBeforeSync)
    }
}

/// A rule the simulator can break on purpose (`scripts/sim --bug NAME`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokenRule {
    /// `acks-before-sync`: under `log.flush=always` a produce is
    /// acknowledged before its fdatasync (and never synced on its
    /// account), so a crash loses acknowledged writes.
    AcksBeforeSync,
    /// `no-txn-verification`: a transactional producer's first write in a
    /// partition is appended without asking its coordinator (KIP-890), so
    /// a write after its transaction ended opens one nobody ends.
    NoTxnVerification,
    /// `no-epoch-bump`: EndTxn v5 (transaction version 2) ends the
    /// transaction without bumping the producer's epoch (as version 1),
    /// yet answers as if it had, so a zombie's write of that epoch sent
    /// after the end joins, and opens, the producer's next transaction.
    NoEpochBump,
    /// `share-ack-unwritten`: a share partition answers acknowledgements
    /// without writing its state, so after a crash accepted records are
    /// delivered again.
    ShareAckUnwritten,
    /// `dead-letter-resent`: a share partition read back with records on
    /// their way to the dead-letter topic writes them there again without
    /// looking for what was written before the crash, so a record lands
    /// there twice.
    DeadLetterResent,
    /// `delivery-counted-unanswered`: a share fetch counts a delivery when
    /// it acquires a record rather than when its answer hands it out, so
    /// a fetch slower than the lock (its state write and log read) moves
    /// a record towards the delivery limit though it never reached
    /// anyone.
    DeliveryCountedUnanswered,
    /// `members-unwritten`: a KIP-848 group's records are written without
    /// its members' (as before sluice kept them), so after a crash the
    /// coordinator has forgotten members that still own their partitions.
    MembersUnwritten,
    /// `older-epoch-commits-taken`: a KIP-848 member's offset commit under
    /// an older epoch is taken whatever it commits, not only for the
    /// partitions it held since that epoch (their assignment epochs), so
    /// a commit made before a partition was given can land on it.
    OlderEpochCommitsTaken,
}

impl BrokenRule {
    /// Every rule, for `--bug`'s list.
    pub const ALL: [BrokenRule; 8] = [
        BrokenRule::AcksBeforeSync,
        BrokenRule::NoTxnVerification,
        BrokenRule::NoEpochBump,
        BrokenRule::ShareAckUnwritten,
        BrokenRule::DeadLetterResent,
        BrokenRule::DeliveryCountedUnanswered,
        BrokenRule::MembersUnwritten,
        BrokenRule::OlderEpochCommitsTaken,
    ];

    /// Its `--bug` name.
    pub fn name(self) -> &'static str {
        match self {
            BrokenRule::AcksBeforeSync => "acks-before-sync",
            BrokenRule::NoTxnVerification => "no-txn-verification",
            BrokenRule::NoEpochBump => "no-epoch-bump",
            BrokenRule::ShareAckUnwritten => "share-ack-unwritten",
            BrokenRule::DeadLetterResent => "dead-letter-resent",
            BrokenRule::DeliveryCountedUnanswered => "delivery-counted-unanswered",
            BrokenRule::MembersUnwritten => "members-unwritten",
            BrokenRule::OlderEpochCommitsTaken => "older-epoch-commits-taken",
        }
    }

    /// The rule `name` names.
    pub fn from_name(name: &str) -> Option<BrokenRule> {
        BrokenRule::ALL.into_iter().find(|r| r.name() == name)
    }
}

/// Production: the system clock, glommio's timers, random UUIDs.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemEnv;

impl Env for SystemEnv {
    fn now_ms(&self) -> i64 {
        crate::shard::now_ms()
    }

    fn monotonic_ms(&self) -> u64 {
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        START
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_millis() as u64
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        Box::pin(glommio::timer::sleep(duration))
    }

    fn new_id(&self) -> [u8; 16] {
        uuid::Uuid::new_v4().into_bytes()
    }
}
