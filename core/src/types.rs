//! Shared domain types, named as Kafka names them.
//!
//! Owns: offsets, leader epochs and the topic-partition pair. These are plain
//! values with no behaviour beyond validation; every crate speaks in them.

use std::fmt;

/// A position in a partition's log. Kafka uses signed 64-bit offsets; -1 is
/// "none" on the wire, so the alias stays signed.
pub type Offset = i64;

/// The epoch of a partition's leader, stamped into every batch it appends.
pub type LeaderEpoch = i32;

/// Partition index within a topic.
pub type PartitionId = i32;

/// Longest topic name Kafka accepts.
pub const TOPIC_NAME_MAX_LEN: usize = 249;

/// A topic name and partition index.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: PartitionId,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: PartitionId) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// Kafka's internal topics (`Topic.isInternal`): Metadata marks them so,
/// and clients skip them in pattern subscriptions.
pub fn is_internal_topic(name: &str) -> bool {
    matches!(
        name,
        "__consumer_offsets" | "__transaction_state" | "__share_group_state"
    )
}

/// Why a topic name is not legal, with Kafka's rules: 1..=249 characters of
/// `[a-zA-Z0-9._-]`, and neither "." nor "..".
pub fn validate_topic_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("topic name is empty");
    }
    if name == "." || name == ".." {
        return Err("topic name cannot be '.' or '..'");
    }
    if name.len() > TOPIC_NAME_MAX_LEN {
        return Err("topic name is longer than 249 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Err("topic name has characters other than ASCII alphanumerics, '.', '_' and '-'");
    }
    Ok(())
}

/// A UUID as Kafka prints it (`Uuid.toString()`): URL-safe base64 of its
/// 16 bytes, without padding.
pub fn kafka_uuid(id: [u8; 16]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(22);
    for chunk in id.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..chunk.len() + 1 {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(validate_topic_name("orders.v1_a-b").is_ok());
        assert!(validate_topic_name("").is_err());
        assert!(validate_topic_name("..").is_err());
        assert!(validate_topic_name("a/b").is_err());
        assert!(validate_topic_name(&"x".repeat(249)).is_ok());
        assert!(validate_topic_name(&"x".repeat(250)).is_err());
    }

    #[test]
    fn topic_ids_print_as_kafka_prints_them() {
        // Kafka's Uuid.toString of the all-zero id, of 0...01 and of all ones.
        assert_eq!(kafka_uuid([0; 16]), "AAAAAAAAAAAAAAAAAAAAAA");
        let mut one = [0u8; 16];
        one[15] = 1;
        assert_eq!(kafka_uuid(one), "AAAAAAAAAAAAAAAAAAAAAQ");
        assert_eq!(kafka_uuid([0xff; 16]), "_____________________w");
    }

    #[test]
    fn display_is_topic_dash_partition() {
        assert_eq!(TopicPartition::new("t", 3).to_string(), "t-3");
    }
}
