//! One message per owner shard for a request that touches many partitions.
//!
//! Owns: [`ByOwner`], which gathers a request's per-partition items by the
//! shard that owns each partition, in the order owners first appear, and
//! remembers each item's place in the answer; and [`ByOwner::call`], which
//! sends every owner its items as one operation, all owners at once, and
//! puts the answers back in their places.
//!
//! Invariant: whatever the number of partitions, a request costs one
//! message (and no spawned task) per owner shard it touches; each owner
//! gets its items in the order the request lists them.

use std::rc::Rc;

use futures_util::future::join_all;
use sluice_core::metadata::ShardId;
use sluice_shard::{Shard, ShardOp, Unreachable};

/// Items of one request, gathered by owner shard.
pub struct ByOwner<T> {
    /// (owner, places of its items in the answer, its items).
    owners: Vec<(ShardId, Vec<usize>, Vec<T>)>,
    places: usize,
}

impl<T> Default for ByOwner<T> {
    fn default() -> Self {
        ByOwner {
            owners: Vec::new(),
            places: 0,
        }
    }
}

impl<T> ByOwner<T> {
    /// Adds `item` for `owner`; returns its place in the answer.
    pub fn push(&mut self, owner: ShardId, item: T) -> usize {
        let place = self.places;
        self.places += 1;
        match self.owners.iter_mut().find(|(o, ..)| *o == owner) {
            Some((_, places, items)) => {
                places.push(place);
                items.push(item);
            }
            None => self.owners.push((owner, vec![place], vec![item])),
        }
        place
    }

    /// Sends each owner one operation made of its items (`make`), all at
    /// once, and returns one answer per place, in place order, with the
    /// owner that gave it: `Err` for the items of an owner that could not
    /// be reached. `answers` splits an operation's answer into one per item.
    pub async fn call<O, R>(
        self,
        shard: &Rc<Shard>,
        make: impl Fn(Vec<T>) -> O,
        answers: impl Fn(O::Response) -> Vec<R>,
    ) -> Vec<(ShardId, Result<R, Unreachable>)>
    where
        O: ShardOp,
    {
        let places = self.places;
        let calls = self.owners.into_iter().map(|(owner, slots, items)| {
            let op = make(items);
            async move { (owner, slots, shard.call(owner, op).await) }
        });
        let mut out: Vec<Option<(ShardId, Result<R, Unreachable>)>> =
            (0..places).map(|_| None).collect();
        for (owner, slots, answer) in join_all(calls).await {
            match answer {
                Ok(response) => {
                    let mut each = answers(response).into_iter();
                    for slot in slots {
                        // An owner answers every item it was given.
                        let answer = each.next().ok_or(Unreachable);
                        out[slot] = Some((owner, answer));
                    }
                }
                Err(e) => {
                    for slot in slots {
                        out[slot] = Some((owner, Err(e)));
                    }
                }
            }
        }
        out.into_iter()
            .map(|answer| answer.expect("every place was sent to its owner"))
            .collect()
    }
}
