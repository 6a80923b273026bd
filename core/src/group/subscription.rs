//! The topics a consumer subscribes to, read from its JoinGroup metadata.
//!
//! Owns: decoding the topic list at the head of Kafka's consumer protocol
//! subscription (`ConsumerProtocolSubscription`, every version: an i16
//! version, then an i32 count of i16-length topic names; the fields after
//! them are not needed here). OffsetDelete uses it to refuse deleting the
//! offsets of a topic the group still consumes.
//!
//! Invariants: the bytes come from a client; decoding is bounds-checked and
//! allocates no more than the input's length implies.

use super::records::{Reader, RecordError};

/// The topic names of a consumer protocol subscription.
pub fn subscribed_topics(metadata: &[u8]) -> Result<Vec<String>, RecordError> {
    let mut r = Reader(metadata);
    let _version = r.i16()?;
    let count = r.len32()?;
    // Each name takes at least its 2-byte length.
    let mut topics = Vec::with_capacity(count.min(r.0.len() / 2));
    for _ in 0..count {
        topics.push(r.string()?);
    }
    Ok(topics)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_topic_list_and_ignores_what_follows() {
        let mut bytes = vec![0, 1, 0, 0, 0, 2, 0, 1, b'a', 0, 2, b'b', b'c'];
        bytes.extend_from_slice(&[0, 0, 0, 0]); // user data and later fields
        assert_eq!(subscribed_topics(&bytes), Ok(vec!["a".into(), "bc".into()]));
    }

    #[test]
    fn short_or_absurd_input_is_an_error() {
        assert!(subscribed_topics(&[0]).is_err());
        assert!(subscribed_topics(&[0, 0, 0x7f, 0xff, 0xff, 0xff]).is_err());
        assert!(subscribed_topics(&[0, 0, 0xff, 0xff, 0xff, 0xff]).is_err());
    }
}
