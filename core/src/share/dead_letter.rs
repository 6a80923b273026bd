//! Share groups' dead-letter topics (KIP-1191): where a record a member
//! rejected, or one delivered `share.delivery.count.limit` times, is
//! written, and what that record says.
//!
//! Owns: the group's dead-letter settings (`errors.deadletterqueue.*`), the
//! checks a dead-letter topic must pass before it is written (Kafka's, with
//! its messages), the dead-letter record itself (the context headers, in
//! Kafka's order, and the original key and value when copying is on, never
//! the original headers), the partition it goes to, and reading a record's
//! context back (how a restart finds what was written already, so each
//! record is written once). Pure: no I/O.
//!
//! Invariant: a dead-letter record's context names exactly one source
//! record (group, topic, partition, offset); [`context_of`] gives back
//! what [`headers`] wrote.

use crate::records::Record;
use crate::types::{Offset, PartitionId};

/// `errors.deadletterqueue.topic.name`: the group's dead-letter topic
/// (empty: none).
pub const DLQ_TOPIC_NAME: &str = "errors.deadletterqueue.topic.name";
/// `errors.deadletterqueue.copy.record.enable`: copy the original key and
/// value into the dead-letter record.
pub const DLQ_COPY_RECORD_ENABLE: &str = "errors.deadletterqueue.copy.record.enable";
/// The topic config a dead-letter topic must set to `true`.
pub const DLQ_GROUP_ENABLE: &str = "errors.deadletterqueue.group.enable";

/// The context headers, in the order Kafka writes them.
pub const HEADER_TOPIC: &str = "__dlq.errors.topic";
pub const HEADER_PARTITION: &str = "__dlq.errors.partition";
pub const HEADER_OFFSET: &str = "__dlq.errors.offset";
pub const HEADER_GROUP: &str = "__dlq.errors.group";
pub const HEADER_DELIVERY_COUNT: &str = "__dlq.errors.delivery.count";
pub const HEADER_MESSAGE: &str = "__dlq.errors.message";

/// Why a record went to the dead-letter topic (the message header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// A member acknowledged it with REJECT.
    Rejected,
    /// It was delivered as often as the group's limit allows.
    DeliveryLimit,
}

impl Cause {
    /// Kafka's message for it.
    pub fn message(self) -> &'static str {
        match self {
            Cause::Rejected => "Offset rejected by client.",
            Cause::DeliveryLimit => "Offset delivery count exceeded the threshold.",
        }
    }

    /// The cause of a record found on its way after a restart (the cause
    /// is not stored): the delivery limit when it was delivered that
    /// often, else a rejection, as Kafka infers it.
    pub fn inferred(delivery_count: u16, limit: u16) -> Cause {
        if delivery_count >= limit {
            Cause::DeliveryLimit
        } else {
            Cause::Rejected
        }
    }
}

/// A share group's dead-letter settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub topic: String,
    pub copy_record: bool,
}

impl DeadLetter {
    /// The group's settings from its configs: `None` without a topic.
    pub fn from_configs(get: impl Fn(&str) -> Option<String>) -> Option<DeadLetter> {
        let topic = get(DLQ_TOPIC_NAME).map(|t| t.trim().to_owned())?;
        if topic.is_empty() {
            return None;
        }
        let copy_record =
            get(DLQ_COPY_RECORD_ENABLE).is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        Some(DeadLetter { topic, copy_record })
    }
}

/// What the broker knows of a dead-letter topic when it is to be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicFacts {
    pub exists: bool,
    /// Its `errors.deadletterqueue.group.enable` is true.
    pub enabled: bool,
}

/// Checks `topic` for `group` before a write: not internal, enabled for
/// dead letters, existing (this broker does not create it), and named
/// with the broker's `errors.deadletterqueue.topic.name.prefix` (empty:
/// any name). Kafka's message when it fails; the records are then
/// archived unwritten, as Kafka archives them.
pub fn check_topic(
    group: &str,
    topic: &str,
    prefix: &str,
    facts: TopicFacts,
) -> Result<(), String> {
    if topic.is_empty() {
        return Err(format!(
            "Configured DLQ topic name in share group: {group} is empty."
        ));
    }
    if topic.starts_with("__") {
        return Err(format!("Configured DLQ topic name in share group: {group} cannot start with __, topic: {topic}."));
    }
    if facts.exists && !facts.enabled {
        return Err(format!(
            "DLQ is not enabled on configured DLQ topic for share group: {group}, topic: {topic}."
        ));
    }
    if !facts.exists {
        return Err(format!("DLQ topic does not exist and auto create is disabled on cluster for share group: {group}, topic: {topic}."));
    }
    if !prefix.is_empty() && !topic.starts_with(prefix) {
        return Err(format!("Configured DLQ topic name does not comply with the DLQ topic prefix in share group: {group}, topic: {topic}, prefix: {prefix}."));
    }
    Ok(())
}

/// Checks a group's `errors.deadletterqueue.topic.name` as it is set
/// (Kafka refuses only internal names then).
pub fn check_topic_name(value: &str) -> Result<(), String> {
    if value.trim().starts_with("__") {
        return Err(format!(
            "{DLQ_TOPIC_NAME}: DLQ topic name must not start with '__'"
        ));
    }
    Ok(())
}

/// The dead-letter partition of source partition `partition`.
pub fn partition_for(partition: PartitionId, dlq_partitions: usize) -> PartitionId {
    let count = dlq_partitions.max(1) as i64;
    (i64::from(partition).rem_euclid(count)) as PartitionId
}

/// One record's context: where it came from and why it is here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    pub topic: String,
    pub partition: PartitionId,
    pub offset: Offset,
    pub group: String,
    pub delivery_count: u16,
    pub cause: Cause,
}

impl Context {
    /// The headers Kafka writes for it, in its order.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        vec![
            (HEADER_TOPIC, self.topic.clone()),
            (HEADER_PARTITION, self.partition.to_string()),
            (HEADER_OFFSET, self.offset.to_string()),
            (HEADER_GROUP, self.group.clone()),
            (HEADER_DELIVERY_COUNT, self.delivery_count.to_string()),
            (HEADER_MESSAGE, self.cause.message().to_owned()),
        ]
    }
}

/// The source record a dead-letter record names: (group, topic,
/// partition, offset), or `None` when its headers do not name one (not a
/// dead-letter record, or a malformed one).
pub fn context_of(record: &Record) -> Option<(String, String, PartitionId, Offset)> {
    let find = |name: &str| -> Option<String> {
        record
            .headers
            .iter()
            .find(|h| &h.key[..] == name.as_bytes())
            .and_then(|h| h.value.as_ref())
            .and_then(|v| std::str::from_utf8(v).ok())
            .map(str::to_owned)
    };
    let group = find(HEADER_GROUP)?;
    let topic = find(HEADER_TOPIC)?;
    let partition = find(HEADER_PARTITION)?.parse().ok()?;
    let offset = find(HEADER_OFFSET)?.parse().ok()?;
    Some((group, topic, partition, offset))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{BatchBuilder, RecordBatch};
    use crate::records::RecordIter;

    /// The one record of `batch`, decoded.
    fn only_record(batch: bytes::Bytes) -> Record {
        let batch = RecordBatch::parse(batch).expect("a batch");
        RecordIter::new(&batch)
            .expect("uncompressed")
            .next()
            .expect("one record")
            .expect("decodes")
    }

    #[test]
    fn the_context_written_is_the_context_read_back() {
        let context = Context {
            topic: "orders".into(),
            partition: 7,
            offset: 12345,
            group: "billing".into(),
            delivery_count: 3,
            cause: Cause::DeliveryLimit,
        };
        let headers = context.headers();
        let names: Vec<&str> = headers.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            names,
            [
                HEADER_TOPIC,
                HEADER_PARTITION,
                HEADER_OFFSET,
                HEADER_GROUP,
                HEADER_DELIVERY_COUNT,
                HEADER_MESSAGE
            ]
        );
        let refs: Vec<(&[u8], Option<&[u8]>)> = headers
            .iter()
            .map(|(k, v)| (k.as_bytes(), Some(v.as_bytes())))
            .collect();
        let record = only_record(
            BatchBuilder::new(1_000)
                .record_at(1_000, None, None, &refs)
                .build(),
        );
        assert_eq!(
            context_of(&record),
            Some(("billing".into(), "orders".into(), 7, 12345))
        );
        let record = only_record(
            BatchBuilder::new(1_000)
                .record(Some(b"k"), Some(b"v"))
                .build(),
        );
        assert_eq!(context_of(&record), None);
    }

    #[test]
    fn topics_are_checked_as_kafka_checks_them() {
        let ok = TopicFacts {
            exists: true,
            enabled: true,
        };
        assert_eq!(check_topic("g", "dlq.t", "dlq.", ok), Ok(()));
        assert_eq!(check_topic("g", "t", "", ok), Ok(()));
        assert!(check_topic("g", "t", "dlq.", ok)
            .unwrap_err()
            .contains("does not comply with the DLQ topic prefix"));
        assert!(check_topic("g", "__t", "", ok)
            .unwrap_err()
            .contains("cannot start with __"));
        let off = TopicFacts {
            exists: true,
            enabled: false,
        };
        assert!(check_topic("g", "dlq.t", "dlq.", off)
            .unwrap_err()
            .contains("DLQ is not enabled"));
        let missing = TopicFacts {
            exists: false,
            enabled: false,
        };
        assert!(check_topic("g", "dlq.t", "dlq.", missing)
            .unwrap_err()
            .contains("does not exist"));
        assert!(check_topic_name("__x").is_err());
        assert!(check_topic_name("other").is_ok());
    }

    #[test]
    fn partitions_and_causes_follow_kafka() {
        assert_eq!(partition_for(2, 2), 0);
        assert_eq!(partition_for(1, 2), 1);
        assert_eq!(partition_for(5, 1), 0);
        assert_eq!(partition_for(3, 0), 0);
        assert_eq!(Cause::inferred(3, 3), Cause::DeliveryLimit);
        assert_eq!(Cause::inferred(1, 3), Cause::Rejected);
        assert_eq!(
            DeadLetter::from_configs(|k| match k {
                DLQ_TOPIC_NAME => Some("dlq.t".into()),
                DLQ_COPY_RECORD_ENABLE => Some("TRUE".into()),
                _ => None,
            }),
            Some(DeadLetter {
                topic: "dlq.t".into(),
                copy_record: true
            })
        );
        assert_eq!(DeadLetter::from_configs(|_| Some(String::new())), None);
    }
}
