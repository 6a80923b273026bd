//! Helpers shared by the handlers that look topics up or create them.

use kafka_protocol::messages::BrokerId;
use sluice_core::ErrorCode;
use sluice_shard::message::Propose;
use sluice_shard::Proposal;
use uuid::Uuid;

use crate::kafka::context::Context;

/// The name of the topic with id `id`, if any.
pub fn topic_by_id(ctx: &Context, id: Uuid) -> Option<String> {
    let metadata = ctx.shard.metadata();
    metadata
        .topics
        .iter()
        .find(|(_, t)| t.id == *id.as_bytes())
        .map(|(n, _)| n.clone())
}

/// The id of topic `name`, or the nil UUID.
pub fn topic_id(ctx: &Context, name: &str) -> Uuid {
    ctx.shard
        .metadata()
        .topics
        .get(name)
        .map_or(Uuid::nil(), |t| Uuid::from_bytes(t.id))
}

/// Asks the controller to commit a metadata change; on success every shard
/// (this one included) has applied it when this returns.
pub async fn propose(ctx: &Context, proposal: Proposal) -> Result<i64, (ErrorCode, String)> {
    match ctx.shard.call(0, Propose(proposal)).await {
        Ok(proposed) => proposed,
        Err(e) => Err((ErrorCode::UnknownServerError, e.to_string())),
    }
}

/// Creates topic `name` with the default partition count, if the broker
/// auto-creates topics. Succeeds when the topic exists afterwards.
pub async fn auto_create(ctx: &Context, name: &str) -> Result<(), ErrorCode> {
    let kafka = &ctx.shard.config.kafka;
    if !kafka.auto_create_topics_enable {
        return Err(ErrorCode::UnknownTopicOrPartition);
    }
    if let Err(reason) = sluice_core::types::validate_topic_name(name) {
        tracing::debug!(name, reason, "not auto-creating an invalid topic name");
        return Err(ErrorCode::InvalidTopicException);
    }
    let proposal = Proposal::CreateTopic {
        name: name.to_owned(),
        partitions: kafka.num_partitions.max(1),
        replication_factor: -1,
        assignments: Vec::new(),
        configs: Vec::new(),
        validate_only: false,
    };
    match propose(ctx, proposal).await {
        Ok(_) => Ok(()),
        // Another connection created it first.
        Err((ErrorCode::TopicAlreadyExists, _)) => Ok(()),
        Err((code, message)) => {
            tracing::warn!(name, %code, message, "auto-creating a topic failed");
            Err(code)
        }
    }
}

/// Checks one partition's manual replica assignment the way Kafka's
/// controller does, against the brokers this broker knows are registered
/// (`known`); the error is the message for INVALID_REPLICA_ASSIGNMENT.
pub fn check_manual_assignment(
    known: &dyn Fn(i32) -> bool,
    broker_ids: &[BrokerId],
) -> Result<(), String> {
    if broker_ids.is_empty() {
        return Err("The manual partition assignment includes an empty replica list.".into());
    }
    for (i, broker) in broker_ids.iter().enumerate() {
        if broker_ids[..i].contains(broker) {
            return Err(format!(
                "The manual partition assignment includes the broker {} more than once.",
                broker.0
            ));
        }
        if !known(broker.0) {
            return Err(format!(
                "The manual partition assignment includes broker {}, but no broker with that id was found.",
                broker.0
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_assignments_may_only_name_this_broker_once() {
        assert!(check_manual_assignment(&|b| b == 1, &[BrokerId(1)]).is_ok());
        assert!(check_manual_assignment(&|b| b == 1, &[])
            .unwrap_err()
            .contains("empty replica list"));
        assert!(check_manual_assignment(&|b| b == 1, &[BrokerId(2)])
            .unwrap_err()
            .contains("broker 2, but no broker"));
        assert!(
            check_manual_assignment(&|b| b == 1, &[BrokerId(1), BrokerId(1)])
                .unwrap_err()
                .contains("more than once")
        );
    }
}
