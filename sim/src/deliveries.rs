//! The simulated share consumers' ledger of deliveries: which ShareFetch
//! handed which record out, so a delivery count can be checked against
//! the deliveries that could have happened before it.
//!
//! Owns: [`DeliveryLedger`], per (group, partition) every acquiring
//! ShareFetch sent, in the order of the run's events, with its fate: still
//! on its way, answered (with the records its answer handed out), or lost
//! (the process crashed, or the call failed, before the answer came).
//!
//! Invariant checked: a delivery counts when an answer hands a record out,
//! so the count an answer gives a record is at most one more than the
//! other fetches of its partition sent before that answer came that
//! handed the record out or whose answers were lost (a lost answer may
//! have handed it out, and a state written before the crash may have
//! stored that). The check waits until each of those fetches has its
//! fate: one still on its way when the answer comes may prove to have
//! handed the record out.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use crate::model::{short, Tp};

/// What became of one ShareFetch.
#[derive(Debug)]
enum Fate {
    InFlight,
    Answered(BTreeSet<Bytes>),
    Lost,
}

/// A delivery count to check once the fetches before it have their fate.
#[derive(Debug)]
struct Delivery {
    value: Bytes,
    count: u16,
    /// The fetch whose answer gave it.
    fetch: u64,
    /// When that answer came (in the ledger's order of events).
    answered_at: u64,
}

/// One (group, partition)'s fetches and the deliveries still to check.
#[derive(Debug, Default)]
struct PartitionLedger {
    fetches: BTreeMap<u64, Fate>,
    unchecked: Vec<Delivery>,
}

impl PartitionLedger {
    /// Checks every delivery whose earlier fetches all have their fate;
    /// the others wait.
    fn check(&mut self, group: &str, tp: &Tp) -> Result<(), String> {
        let fetches = &self.fetches;
        let mut broken = None;
        self.unchecked.retain(|d| {
            let before = fetches.range(..d.answered_at).filter(|(id, _)| **id != d.fetch);
            let mut could_have = 0u32;
            for (_, fate) in before {
                match fate {
                    Fate::InFlight => return true,
                    Fate::Answered(values) if values.contains(&d.value) => could_have += 1,
                    Fate::Answered(_) => {}
                    Fate::Lost => could_have += 1,
                }
            }
            if u32::from(d.count) > could_have + 1 && broken.is_none() {
                broken = Some(format!(
                    "share group {group}: {} delivered with count {}, though at most {could_have} fetches of {tp:?} before its answer could have handed it out",
                    short(&d.value),
                    d.count
                ));
            }
            false
        });
        broken.map_or(Ok(()), Err)
    }
}

/// Every acquiring ShareFetch of the run, by (group, partition).
#[derive(Debug, Default)]
pub struct DeliveryLedger {
    /// The next event's number: fetches sent and answers received are
    /// numbered in the order they happen.
    next: u64,
    partitions: BTreeMap<(String, Tp), PartitionLedger>,
}

impl DeliveryLedger {
    fn tick(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    /// An acquiring ShareFetch of `tp` for `group` is sent: its id.
    pub fn sent(&mut self, group: &str, tp: &Tp) -> u64 {
        let id = self.tick();
        self.partitions
            .entry((group.to_owned(), tp.clone()))
            .or_default()
            .fetches
            .insert(id, Fate::InFlight);
        id
    }

    /// Fetch `id`'s answer came, handing out `records` (value, delivery
    /// count): each count is checked once the fetches before it have
    /// their fate.
    pub fn answered(
        &mut self,
        group: &str,
        tp: &Tp,
        id: u64,
        records: &[(Bytes, u16)],
    ) -> Result<(), String> {
        let answered_at = self.tick();
        let ledger = self
            .partitions
            .entry((group.to_owned(), tp.clone()))
            .or_default();
        let values = records.iter().map(|(v, _)| v.clone()).collect();
        ledger.fetches.insert(id, Fate::Answered(values));
        ledger
            .unchecked
            .extend(records.iter().map(|(value, count)| Delivery {
                value: value.clone(),
                count: *count,
                fetch: id,
                answered_at,
            }));
        ledger.check(group, tp)
    }

    /// Fetch `id` got no answer (its call failed).
    pub fn lost(&mut self, group: &str, tp: &Tp, id: u64) {
        if let Some(ledger) = self.partitions.get_mut(&(group.to_owned(), tp.clone())) {
            ledger.fetches.insert(id, Fate::Lost);
        }
    }

    /// The process crashed: no fetch on its way will be answered.
    pub fn crashed(&mut self) {
        for ledger in self.partitions.values_mut() {
            for fate in ledger.fetches.values_mut() {
                if matches!(fate, Fate::InFlight) {
                    *fate = Fate::Lost;
                }
            }
        }
    }

    /// Checks every delivery whose earlier fetches all have their fate.
    pub fn check_all(&mut self) -> Result<(), String> {
        for ((group, tp), ledger) in &mut self.partitions {
            ledger.check(group, tp)?;
        }
        Ok(())
    }

    /// How many times `value` of `tp` may have been handed to `group`:
    /// the answers that did, and every fetch whose answer never came.
    pub fn deliveries_at_most(&self, group: &str, tp: &Tp, value: &Bytes) -> u32 {
        let Some(ledger) = self.partitions.get(&(group.to_owned(), tp.clone())) else {
            return 0;
        };
        ledger
            .fetches
            .values()
            .filter(|fate| match fate {
                Fate::Answered(values) => values.contains(value),
                Fate::InFlight | Fate::Lost => true,
            })
            .count() as u32
    }
}
