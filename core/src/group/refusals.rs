//! Kafka's refusals of a ConsumerGroupHeartbeat: each error code with the
//! message Kafka's group coordinator gives it, word for word (clients log
//! it, and `tests/groups.rs` compares it with Kafka's).
//!
//! Owns: the texts. Invariant: a refusal carries member epoch -1 inside
//! sluice; the wire answer is Kafka's (epoch 0, no member id).

use super::consumer::HeartbeatResponse;
use crate::ErrorCode;

fn refusal(error: ErrorCode, message: String) -> HeartbeatResponse {
    HeartbeatResponse {
        message: Some(message),
        ..HeartbeatResponse::error(error, "")
    }
}

/// A join without a subscription.
pub fn no_subscription() -> HeartbeatResponse {
    refusal(
        ErrorCode::InvalidRequest,
        "Either SubscribedTopicNames or SubscribedTopicRegex must be non-null when (re-)joining."
            .into(),
    )
}

/// A pattern that does not compile, with the compiler's words
/// ([`super::resolution::compile`]).
pub fn invalid_regex(message: String) -> HeartbeatResponse {
    refusal(ErrorCode::InvalidRegularExpression, message)
}

/// A member id the group does not have.
pub fn unknown_member(member_id: &str, group_id: &str) -> HeartbeatResponse {
    refusal(
        ErrorCode::UnknownMemberId,
        format!("Member {member_id} is not a member of group {group_id}."),
    )
}

/// A member epoch other than the member's (and not its previous one, with
/// only its own partitions, which a lost answer explains).
pub fn fenced_epoch(received: i32, known: i32) -> HeartbeatResponse {
    let order = if received > known {
        "greater"
    } else {
        "smaller"
    };
    refusal(
        ErrorCode::FencedMemberEpoch,
        format!(
            "The consumer group member has a {order} member epoch ({received}) than the one \
             known by the group coordinator ({known}). The member must abandon all its \
             partitions and rejoin."
        ),
    )
}

/// An instance id no static member of the group has.
pub fn unknown_instance(instance_id: &str) -> HeartbeatResponse {
    refusal(
        ErrorCode::UnknownMemberId,
        format!("Instance id {instance_id} is unknown."),
    )
}

/// An instance id another member took over.
pub fn fenced_instance(member_id: &str, instance_id: &str, owner: &str) -> HeartbeatResponse {
    refusal(
        ErrorCode::FencedInstanceId,
        format!("Static member {member_id} with instance id {instance_id} was fenced by member {owner}."),
    )
}

/// A join with an instance id a member still holds (it has not left for
/// now with epoch -2).
pub fn unreleased_instance(member_id: &str, instance_id: &str, owner: &str) -> HeartbeatResponse {
    refusal(
        ErrorCode::UnreleasedInstanceId,
        format!(
            "Static member {member_id} with instance id {instance_id} cannot join the group \
             because the instance id is owned by {owner} member."
        ),
    )
}
