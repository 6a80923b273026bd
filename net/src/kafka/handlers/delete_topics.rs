//! DeleteTopics (1–6): by name, and from v6 by topic id; the controller
//! commits each deletion and every shard drops the partitions it owns.
//!
//! Unknown names get UNKNOWN_TOPIC_OR_PARTITION and unknown ids
//! UNKNOWN_TOPIC_ID, checked against this shard's metadata before anything
//! is proposed; a topic named twice in one request gets INVALID_REQUEST, as
//! Kafka's controller answers. A topic's partitions are taken from the
//! client's controller mutation quota before its deletion is proposed
//! (strict from v5).

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{ApiKey, DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use sluice_core::ErrorCode;
use sluice_shard::Proposal;
use uuid::Uuid;

use super::topics::{propose, topic_by_id, topic_id};
use super::{Call, Handler, Outcome};
use crate::kafka::context::Context;
use crate::kafka::quotas::MutationQuota;

/// The DeleteTopics handler: [`handle`], at versions 1–6.
pub struct DeleteTopicsHandler;

impl Handler for DeleteTopicsHandler {
    const KEY: ApiKey = ApiKey::DeleteTopics;
    const NAME: &'static str = "DeleteTopics";
    const MIN_VERSION: i16 = 1;
    const MAX_VERSION: i16 = 6;
    type Request = DeleteTopicsRequest;
    type Response = DeleteTopicsResponse;

    async fn handle(call: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
        let quota = MutationQuota::new(call.header.client_id.as_deref(), call.version, 5);
        Outcome::Answer(handle(call.ctx, request, call.version, quota).await)
    }
}

/// One topic the request names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Target {
    Name(String),
    Id(Uuid),
    /// v6 with both a name and an id, which Kafka refuses.
    Both(String, Uuid),
}

fn topic_name(name: &str) -> Option<TopicName> {
    Some(TopicName(StrBytes::from_string(name.to_owned())))
}

fn failed(
    name: Option<TopicName>,
    id: Uuid,
    error: ErrorCode,
    message: &str,
) -> DeletableTopicResult {
    DeletableTopicResult::default()
        .with_name(name)
        .with_topic_id(id)
        .with_error_code(error.code())
        .with_error_message(Some(StrBytes::from_string(message.to_owned())))
}

/// Deletes topic `name` (known to exist on this shard when called), its
/// partitions taken from `quota` first.
async fn delete(
    ctx: &Context,
    name: &str,
    id: Uuid,
    quota: &mut MutationQuota,
) -> DeletableTopicResult {
    let partitions = ctx
        .shard
        .metadata()
        .topics
        .get(name)
        .map_or(0, |t| i32::try_from(t.partitions.len()).unwrap_or(i32::MAX));
    if let Err((error, message)) = quota.take(ctx, partitions) {
        return failed(topic_name(name), id, error, &message);
    }
    let proposed = propose(
        ctx,
        Proposal::DeleteTopic {
            name: name.to_owned(),
        },
    )
    .await;
    if proposed.is_err() {
        quota.give_back(ctx, partitions);
    }
    match proposed {
        Ok(_) => DeletableTopicResult::default()
            .with_name(topic_name(name))
            .with_topic_id(id),
        Err((error, message)) => {
            tracing::debug!(name, %error, message, "deleting a topic failed");
            failed(topic_name(name), id, error, &message)
        }
    }
}

/// Answers a DeleteTopics request, the partitions it deletes taken from
/// `quota`.
pub async fn handle(
    ctx: &Rc<Context>,
    request: DeleteTopicsRequest,
    version: i16,
    mut quota: MutationQuota,
) -> DeleteTopicsResponse {
    let targets: Vec<Target> = if version >= 6 {
        request
            .topics
            .iter()
            .map(|t| match (&t.name, t.topic_id.is_nil()) {
                (Some(name), true) => Target::Name(name.0.as_str().to_owned()),
                (Some(name), false) => Target::Both(name.0.as_str().to_owned(), t.topic_id),
                (None, _) => Target::Id(t.topic_id),
            })
            .collect()
    } else {
        request
            .topic_names
            .iter()
            .map(|n| Target::Name(n.0.as_str().to_owned()))
            .collect()
    };
    let mut counts: HashMap<&Target, usize> = HashMap::new();
    for target in &targets {
        *counts.entry(target).or_default() += 1;
    }
    let duplicates: HashSet<Target> = counts
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(t, _)| t.clone())
        .collect();

    let mut answered = HashSet::new();
    let mut responses = Vec::with_capacity(targets.len());
    for target in &targets {
        if duplicates.contains(target) {
            if answered.insert(target) {
                let (name, id, message) = match target {
                    Target::Id(id) => (None, *id, "Duplicate topic id."),
                    Target::Name(name) | Target::Both(name, _) => {
                        (topic_name(name), Uuid::nil(), "Duplicate topic name.")
                    }
                };
                responses.push(failed(name, id, ErrorCode::InvalidRequest, message));
            }
            continue;
        }
        let response = match target {
            Target::Both(name, id) => failed(
                topic_name(name),
                *id,
                ErrorCode::InvalidRequest,
                "You may not specify both topic name and topic id.",
            ),
            Target::Name(name) => {
                let known = ctx.shard.metadata().topics.contains_key(name);
                if known {
                    delete(ctx, name, topic_id(ctx, name), &mut quota).await
                } else {
                    failed(
                        topic_name(name),
                        Uuid::nil(),
                        ErrorCode::UnknownTopicOrPartition,
                        "This server does not host this topic-partition.",
                    )
                }
            }
            Target::Id(id) => match topic_by_id(ctx, *id) {
                Some(name) => delete(ctx, &name, *id, &mut quota).await,
                None => failed(
                    None,
                    *id,
                    ErrorCode::UnknownTopicId,
                    "This server does not host this topic ID.",
                ),
            },
        };
        responses.push(response);
    }
    DeleteTopicsResponse::default()
        .with_throttle_time_ms(quota.throttle_time_ms())
        .with_responses(responses)
}
