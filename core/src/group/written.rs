//! What `__consumer_offsets` holds for each KIP-848 and share group once
//! every write queued for it completes: the group's live records, by key.
//!
//! Owns: the diff between a group's records now and what its log will
//! hold ([`WrittenImages::diff`]), which is what the coordinator's home
//! writes before it answers; the tombstones that delete a whole group's
//! records ([`WrittenImages::tombstones`]); what a failed write leaves
//! unknown; and how many writes of a group are still in flight.
//!
//! Invariants: an image changes only as a write is queued, in queue order
//! (the caller computes the diff and queues it with no wait between), so
//! it is what the log will hold if every queued write succeeds; after a
//! failure the caller marks the group's keys unknown, and the next diff
//! writes each of them again (or its tombstone). A key once written is
//! never dropped from an image without its tombstone being queued, so a
//! compacted log never keeps a member the group no longer has.

use std::collections::{BTreeMap, HashMap};

use super::records::OffsetsRecord;

/// A record's place in an image: the member it belongs to (`None`: the
/// group's own records), then its key, so one member's records are found
/// without looking at the others'.
type Slot = (Option<String>, Vec<u8>);

/// The records a group's log will hold: slot → the record last queued for
/// it (`None`: unknown, a write of it failed or may have).
#[derive(Debug, Default)]
struct Image {
    records: BTreeMap<Slot, Option<OffsetsRecord>>,
    /// Whether any record is unknown.
    unknown: bool,
    in_flight: u32,
}

impl Image {
    /// The slots of the group's own records and, with `only`, of that
    /// member's (without: every slot).
    fn scope<'a>(
        &'a self,
        only: Option<&'a str>,
    ) -> Box<dyn Iterator<Item = (&'a Slot, &'a Option<OffsetsRecord>)> + 'a> {
        let Some(only) = only else {
            return Box::new(self.records.iter());
        };
        let own = self
            .records
            .range((None, Vec::new())..)
            .take_while(|((member, _), _)| member.is_none());
        let member = self
            .records
            .range((Some(only.to_owned()), Vec::new())..)
            .take_while(move |((member, _), _)| member.as_deref() == Some(only));
        Box::new(own.chain(member))
    }
}

/// `record`'s slot.
fn slot(record: &OffsetsRecord) -> Slot {
    (record.member().map(str::to_owned), record.encode_key())
}

/// The images of the groups a home coordinates.
#[derive(Debug, Default)]
pub struct WrittenImages {
    groups: HashMap<String, Image>,
}

impl WrittenImages {
    /// `group`'s log holds `records` (as a replay found them).
    pub fn seed(&mut self, group: &str, records: Vec<OffsetsRecord>) {
        let image = self.groups.entry(group.to_owned()).or_default();
        image.records = records.into_iter().map(|r| (slot(&r), Some(r))).collect();
        image.unknown = false;
    }

    /// The records to queue now so that `group`'s log holds `snapshot`:
    /// each record that differs from the image, and a tombstone for each
    /// key the image holds that `snapshot` does not. With `only`, the
    /// snapshot holds the group's own records and that member's, and the
    /// other members' keys are left as they are ([`Self::needs_whole`]
    /// tells when that may not be done). The image becomes `snapshot`
    /// (within that scope).
    pub fn diff(
        &mut self,
        group: &str,
        snapshot: Vec<OffsetsRecord>,
        only: Option<&str>,
    ) -> Vec<OffsetsRecord> {
        let image = self.groups.entry(group.to_owned()).or_default();
        let mut writes = Vec::new();
        let mut fresh: BTreeMap<Slot, Option<OffsetsRecord>> = BTreeMap::new();
        for record in snapshot {
            let slot = slot(&record);
            let unchanged = image
                .records
                .get(&slot)
                .is_some_and(|r| r.as_ref() == Some(&record));
            if !unchanged {
                writes.push(record.clone());
            }
            fresh.insert(slot, Some(record));
        }
        let gone: Vec<Slot> = image
            .scope(only)
            .filter(|(slot, _)| !fresh.contains_key(*slot))
            .map(|(slot, _)| slot.clone())
            .collect();
        for slot in gone {
            let old = image.records.remove(&slot).flatten();
            if let Some(tombstone) = tombstone_of(&slot.1, old.as_ref()) {
                writes.push(tombstone);
            }
        }
        image.records.extend(fresh);
        if only.is_none() {
            image.unknown = false;
        }
        writes
    }

    /// True when [`Self::diff`] of `snapshot` (with `only`) would write
    /// anything.
    pub fn differs(&self, group: &str, snapshot: &[OffsetsRecord], only: Option<&str>) -> bool {
        let Some(image) = self.groups.get(group) else {
            return true;
        };
        if image.scope(only).count() != snapshot.len() {
            return true;
        }
        snapshot
            .iter()
            .any(|record| image.records.get(&slot(record)).and_then(Option::as_ref) != Some(record))
    }

    /// True when a diff of `group` must look at every member's records,
    /// not only at those of the member `partial` (a snapshot of the group's
    /// own records and that member's) is of: there is no image yet, a key
    /// of it is unknown, or the target's epoch moved (every member's part
    /// of the target may have).
    pub fn needs_whole(&self, group: &str, partial: &[OffsetsRecord]) -> bool {
        let Some(image) = self.groups.get(group) else {
            return true;
        };
        image.unknown
            || partial.iter().any(|record| {
                matches!(record, OffsetsRecord::TargetEpoch { .. })
                    && image.records.get(&slot(record)).and_then(Option::as_ref) != Some(record)
            })
    }

    /// `records` with, before each tombstone of a group's metadata record
    /// (ConsumerGroup, ShareGroup), a tombstone for every other key its
    /// image holds; those groups' images are forgotten (a group made again
    /// under the name writes all of its records).
    pub fn tombstones(&mut self, records: Vec<OffsetsRecord>) -> Vec<OffsetsRecord> {
        let mut out = Vec::with_capacity(records.len());
        for record in records {
            let group_deleted = matches!(
                &record,
                OffsetsRecord::ConsumerGroup { value: None, .. }
                    | OffsetsRecord::ShareGroup { value: None, .. }
            );
            if group_deleted {
                if let Some(image) = self.groups.remove(record.group()) {
                    let own = record.encode_key();
                    out.extend(
                        image
                            .records
                            .iter()
                            .filter(|((_, key), _)| *key != own)
                            .filter_map(|((_, key), old)| tombstone_of(key, old.as_ref())),
                    );
                }
            }
            out.push(record);
        }
        out
    }

    /// A write of `records` failed (or one queued before it did), or may
    /// have landed after a later one: what the log holds for their keys is
    /// unknown, so the next diff writes each again. With `groups_live`,
    /// their groups are still the coordinator's (an image is made for one
    /// that has none); otherwise only groups with an image are marked (a
    /// group deleted for good keeps none).
    pub fn unknown(&mut self, records: &[OffsetsRecord], groups_live: bool) {
        for record in records {
            let image = if groups_live {
                Some(self.groups.entry(record.group().to_owned()).or_default())
            } else {
                self.groups.get_mut(record.group())
            };
            if let Some(image) = image {
                image.records.insert(slot(record), None);
                image.unknown = true;
            }
        }
    }

    /// Every key of `group`'s image is unknown (see [`Self::unknown`]).
    pub fn all_unknown(&mut self, group: &str) {
        if let Some(image) = self.groups.get_mut(group) {
            for record in image.records.values_mut() {
                *record = None;
            }
            image.unknown = true;
        }
    }

    /// A write of `group` was queued.
    pub fn write_queued(&mut self, group: &str) {
        self.groups.entry(group.to_owned()).or_default().in_flight += 1;
    }

    /// A write of `group` completed.
    pub fn write_done(&mut self, group: &str) {
        if let Some(image) = self.groups.get_mut(group) {
            image.in_flight = image.in_flight.saturating_sub(1);
        }
    }

    /// True while a write of `group` is queued or being written.
    pub fn writing(&self, group: &str) -> bool {
        self.groups.get(group).is_some_and(|i| i.in_flight > 0)
    }

    /// Keeps the images of the groups `keep` names.
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.groups.retain(|g, _| keep(g));
    }
}

/// The tombstone of `key`, from its last record or, when that is unknown,
/// from the key's own bytes.
fn tombstone_of(key: &[u8], old: Option<&OffsetsRecord>) -> Option<OffsetsRecord> {
    match old {
        Some(record) => Some(record.tombstone()),
        None => OffsetsRecord::decode(key, None).ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::member_records::MemberMetadata;
    use crate::group::records::GroupEpoch;

    fn epoch(e: i32) -> OffsetsRecord {
        OffsetsRecord::ConsumerGroup {
            group: "g".into(),
            value: Some(GroupEpoch { epoch: e }),
        }
    }

    fn member(id: &str, client: &str) -> OffsetsRecord {
        OffsetsRecord::Member {
            protocol: crate::group::member_records::GroupProtocol::Consumer,
            group: "g".into(),
            member: id.into(),
            value: Some(MemberMetadata {
                client_id: client.into(),
                ..MemberMetadata::default()
            }),
        }
    }

    #[test]
    fn a_diff_writes_what_changed_and_deletes_what_went() {
        let mut images = WrittenImages::default();
        let now = vec![epoch(1), member("a", "c"), member("b", "c")];
        assert!(images.differs("g", &now, None));
        let first = images.diff("g", now.clone(), None);
        assert_eq!(first.len(), 3, "all new");
        assert!(!images.differs("g", &now, None));
        assert!(images.diff("g", now, None).is_empty());
        assert!(
            images.differs("g", &[epoch(1), member("a", "c")], None),
            "b went"
        );
        let next = images.diff("g", vec![epoch(2), member("a", "d")], None);
        assert_eq!(
            next,
            [epoch(2), member("a", "d"), member("b", "c").tombstone()]
        );
    }

    #[test]
    fn a_failed_write_is_written_again() {
        let mut images = WrittenImages::default();
        let written = images.diff("g", vec![epoch(1), member("a", "c")], None);
        images.unknown(&written, true);
        assert_eq!(
            images
                .diff("g", vec![epoch(1), member("a", "c")], None)
                .len(),
            2
        );
        images.all_unknown("g");
        // Gone while unknown: its tombstone, from the key alone.
        assert_eq!(
            images.diff("g", vec![epoch(1)], None),
            [epoch(1), member("a", "c").tombstone()]
        );
    }

    #[test]
    fn deleting_a_group_deletes_every_record_it_wrote() {
        let mut images = WrittenImages::default();
        images.seed("g", vec![epoch(3), member("a", "c")]);
        let out = images.tombstones(vec![epoch(3).tombstone()]);
        assert_eq!(out, [member("a", "c").tombstone(), epoch(3).tombstone()]);
        // Its tombstones' write failed: nothing is kept for a group gone.
        images.unknown(&out, false);
        assert!(images.groups.is_empty());
        // Made again: everything is written anew.
        assert_eq!(images.diff("g", vec![epoch(1)], None), [epoch(1)]);
        // Tombstones landing after it: written again.
        images.unknown(&out, false);
        assert_eq!(
            images.diff("g", vec![epoch(1)], None),
            [epoch(1), member("a", "c").tombstone()]
        );
    }

    #[test]
    fn a_diff_of_one_member_leaves_the_others_as_they_are() {
        let target_epoch = |e: i32| OffsetsRecord::TargetEpoch {
            protocol: crate::group::member_records::GroupProtocol::Consumer,
            group: "g".into(),
            value: Some(e),
        };
        let mut images = WrittenImages::default();
        let all = vec![
            epoch(1),
            target_epoch(1),
            member("a", "c"),
            member("b", "c"),
        ];
        assert!(images.needs_whole("g", &all), "no image yet");
        images.diff("g", all, None);
        // b's heartbeat: the group's records and b's.
        let of_b = vec![epoch(2), target_epoch(1), member("b", "d")];
        assert!(!images.needs_whole("g", &of_b));
        assert!(images.differs("g", &of_b, Some("b")));
        assert_eq!(
            images.diff("g", of_b.clone(), Some("b")),
            [epoch(2), member("b", "d")]
        );
        assert!(!images.differs("g", &of_b, Some("b")));
        // b leaves: its records go, a's stay.
        let gone = vec![epoch(3), target_epoch(1)];
        assert_eq!(
            images.diff("g", gone, Some("b")),
            [epoch(3), member("b", "d").tombstone()]
        );
        let whole = [epoch(3), target_epoch(1), member("a", "c")];
        assert!(!images.differs("g", &whole, None));
        // A new target's epoch needs every member's records compared.
        assert!(images.needs_whole("g", &[epoch(4), target_epoch(4)]));
        // So does a key left unknown by a failed write.
        images.all_unknown("g");
        assert!(images.needs_whole("g", &[epoch(3), target_epoch(1)]));
    }

    #[test]
    fn writes_in_flight_are_counted() {
        let mut images = WrittenImages::default();
        assert!(!images.writing("g"));
        images.write_queued("g");
        images.write_queued("g");
        images.write_done("g");
        assert!(images.writing("g"));
        images.write_done("g");
        assert!(!images.writing("g"));
        images.retain(|_| false);
        images.write_done("g");
        assert!(!images.writing("g"));
    }
}
