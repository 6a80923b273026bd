//! Errors the tools print: the Kafka error by its protocol name
//! (`TOPIC_ALREADY_EXISTS (36)`), the broker's message when it sent one, and
//! what to do about it.

use anyhow::anyhow;

/// Kafka's name of an error code, as the protocol and Kafka's own tools
/// spell it: `UNKNOWN_TOPIC_OR_PARTITION`.
pub fn kafka_name(code: i16) -> String {
    let Some(error) = kafka_protocol::ResponseError::try_from_code(code) else {
        return "NONE".into();
    };
    let camel = format!("{error:?}");
    if camel.starts_with("Unknown(") {
        return format!("UNKNOWN_ERROR_CODE_{code}");
    }
    let mut name = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

/// What to do about an error, where there is something to say.
fn advice(code: i16) -> Option<&'static str> {
    Some(match code {
        3 => "check the topic's name with `sluice topic list`",
        5 | 6 | 7 | 13 | 15 | 16 => "the cluster is changing leaders or busy; try again",
        10 => "send smaller records, or raise the topic's max.message.bytes",
        17 => "topic names are up to 249 characters of letters, digits, '.', '_' and '-'",
        19 | 20 => "fewer replicas are in sync than min.insync.replicas; wait, or use --acks 1",
        36 => "it exists already: `sluice topic describe` shows it",
        37 => "a topic's partition count can only grow; give a larger total",
        38 => "the replication factor cannot exceed the number of live brokers",
        40 => "see `kafka-configs.sh --describe --all` or the topic configs in the README for valid values",
        41 => "ask another broker",
        42 => "the request was malformed for this broker; check the arguments",
        44 => "the broker's create-topic policy refused it",
        _ => return None,
    })
}

/// The error of a failed `what`: the Kafka error, the broker's message
/// and advice.
pub fn kafka_error(what: &str, code: i16, message: Option<&str>) -> anyhow::Error {
    let mut text = format!("{what}: {} ({code})", kafka_name(code));
    if let Some(m) = message.filter(|m| !m.is_empty()) {
        text.push_str(&format!(": {m}"));
    }
    if let Some(a) = advice(code) {
        text.push_str(&format!("\n  hint: {a}"));
    }
    anyhow!(text)
}

/// `Ok` for no error (code 0), else [`kafka_error`].
pub fn check_kafka(what: &str, code: i16, message: Option<&str>) -> anyhow::Result<()> {
    match code {
        0 => Ok(()),
        code => Err(kafka_error(what, code, message)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_kafkas() {
        assert_eq!(kafka_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(kafka_name(36), "TOPIC_ALREADY_EXISTS");
        assert_eq!(kafka_name(0), "NONE");
        let e = kafka_error("creating t", 36, Some("Topic 't' already exists.")).to_string();
        assert!(e.starts_with("creating t: TOPIC_ALREADY_EXISTS (36): Topic 't' already exists."));
        assert!(e.contains("hint: "));
    }
}
