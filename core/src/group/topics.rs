//! What a group coordinator sees of the cluster's topics.
//!
//! Owns: [`TopicCatalog`], the view KIP-848 consumer groups and share
//! groups assign from: a topic by name, every name (for subscriptions by
//! regular expression), and a version that tells a group when to look
//! again; its two sources, the cluster's [`MetadataState`] and a
//! [`TopicTable`] of its own (tests, the simulator, benches).
//!
//! Invariants: a catalog's version changes whenever a topic is created,
//! deleted or given partitions (it may change for other reasons too), so a
//! group that saw one version need not look again until it changes.

use std::collections::BTreeMap;

use crate::metadata::MetadataState;

/// A topic's id and partition count, as the metadata knows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicInfo {
    pub id: [u8; 16],
    pub partitions: i32,
}

/// One partition, by topic id.
pub type TopicPartition = ([u8; 16], i32);

/// The cluster's topics, as a group coordinator reads them.
pub trait TopicCatalog {
    /// The topic named `name`, if it exists.
    fn topic(&self, name: &str) -> Option<TopicInfo>;
    /// Calls `each` with every topic's name, in name order.
    fn for_each_name(&self, each: &mut dyn FnMut(&str));
    /// Changes whenever a topic is created, deleted or grows.
    fn version(&self) -> u64;
}

impl TopicCatalog for MetadataState {
    fn topic(&self, name: &str) -> Option<TopicInfo> {
        self.topics.get(name).map(|t| TopicInfo {
            id: t.id,
            partitions: t.partitions.len() as i32,
        })
    }

    fn for_each_name(&self, each: &mut dyn FnMut(&str)) {
        for name in self.topics.keys() {
            each(name);
        }
    }

    /// Every command the quorum applies counts, topics' among them.
    fn version(&self) -> u64 {
        self.applied
    }
}

/// A catalog kept by hand: each change moves its version on.
#[derive(Debug, Clone, Default)]
pub struct TopicTable {
    topics: BTreeMap<String, TopicInfo>,
    version: u64,
}

impl TopicTable {
    /// A table of `topics`: (name, id, partitions).
    pub fn of(topics: &[(&str, [u8; 16], i32)]) -> TopicTable {
        let mut table = TopicTable::default();
        for &(name, id, partitions) in topics {
            table.set(name, TopicInfo { id, partitions });
        }
        table
    }

    /// Creates `name` or changes it (its partition count, or its id when
    /// it was deleted and created again).
    pub fn set(&mut self, name: &str, info: TopicInfo) {
        self.topics.insert(name.to_owned(), info);
        self.version += 1;
    }

    /// Deletes `name`.
    pub fn remove(&mut self, name: &str) {
        self.topics.remove(name);
        self.version += 1;
    }
}

impl TopicCatalog for TopicTable {
    fn topic(&self, name: &str) -> Option<TopicInfo> {
        self.topics.get(name).copied()
    }

    fn for_each_name(&self, each: &mut dyn FnMut(&str)) {
        for name in self.topics.keys() {
            each(name);
        }
    }

    fn version(&self) -> u64 {
        self.version
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_moves_its_version_with_each_change() {
        let mut table = TopicTable::of(&[("a", [1; 16], 2)]);
        let first = table.version();
        assert_eq!(table.topic("a").map(|t| t.partitions), Some(2));
        table.set(
            "a",
            TopicInfo {
                id: [1; 16],
                partitions: 3,
            },
        );
        assert_ne!(table.version(), first);
        let grown = table.version();
        table.remove("a");
        assert_ne!(table.version(), grown);
        assert_eq!(table.topic("a"), None);
        let mut names = Vec::new();
        TopicTable::of(&[("b", [2; 16], 1), ("a", [1; 16], 1)])
            .for_each_name(&mut |n| names.push(n.to_owned()));
        assert_eq!(names, ["a", "b"]);
    }
}
