//! AlterClientQuotas (0–1): sets and removes client quotas
//! (`kafka-configs.sh --alter --entity-type users|clients|ips`).
//!
//! Each entry is checked on its own (its entity, then each key and value,
//! with Kafka's INVALID_REQUEST messages; a second entry for the same
//! entity is refused); the entries that pass go to the
//! controller in one proposal, which resolves their operations against its
//! state, and the answer waits (a bounded time) until this broker's
//! metadata shows them, so a describe that follows sees the change.
//! `validate_only` checks without changing anything.

use std::collections::HashSet;
use std::rc::Rc;
use std::time::Duration;

use kafka_protocol::messages::alter_client_quotas_request::EntryData;
use kafka_protocol::messages::alter_client_quotas_response::{self, EntityData};
use kafka_protocol::messages::{AlterClientQuotasRequest, AlterClientQuotasResponse, ApiKey};
use kafka_protocol::protocol::StrBytes;
use sluice_core::quota::{altered, check_quota, QuotaChange, QuotaEntity};
use sluice_core::ErrorCode;
use sluice_shard::Proposal;

use super::topics::propose;
use super::{Call, Handler, Outcome};
use crate::kafka::context::Context;

/// The AlterClientQuotas handler: [`handle`], at versions 0–1.
pub struct AlterClientQuotasHandler;

impl Handler for AlterClientQuotasHandler {
    const KEY: ApiKey = ApiKey::AlterClientQuotas;
    const NAME: &'static str = "AlterClientQuotas";
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 1;
    type Request = AlterClientQuotasRequest;
    type Response = AlterClientQuotasResponse;

    async fn handle(call: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
        Outcome::Answer(handle(call.ctx, request).await)
    }
}

/// Entities with client quotas the metadata holds at most (every broker
/// keeps them all in memory).
pub const MAX_CLIENT_QUOTA_ENTITIES: usize = 10_000;

/// How long the answer waits for this broker's metadata to show a change.
const SETTLE_MS: u64 = 5_000;
const POLL: Duration = Duration::from_millis(20);

type Refusal = (ErrorCode, String);

/// Answers an AlterClientQuotas request.
pub async fn handle(
    ctx: &Rc<Context>,
    request: AlterClientQuotasRequest,
) -> AlterClientQuotasResponse {
    let mut seen: HashSet<QuotaEntity> = HashSet::with_capacity(request.entries.len());
    // Entities the metadata would hold after this request, so far: new
    // ones past MAX_CLIENT_QUOTA_ENTITIES are refused.
    let mut held = ctx.shard.metadata().client_quotas.len();
    let checked: Vec<Result<(QuotaEntity, Vec<QuotaChange>), Refusal>> = request
        .entries
        .iter()
        .map(|entry| {
            let (entity, changes) = check_entry(entry)?;
            // The first entry of an entity counts; a later one is refused.
            if seen.contains(&entity) {
                return Err((
                    ErrorCode::InvalidRequest,
                    format!("Ignoring duplicate entity {entity}"),
                ));
            }
            let adds = changes.iter().any(|(_, v)| v.is_some())
                && ctx.shard.metadata().client_quota(&entity).is_none();
            if adds && held >= MAX_CLIENT_QUOTA_ENTITIES {
                return Err((
                    ErrorCode::InvalidRequest,
                    format!(
                        "This broker keeps at most {MAX_CLIENT_QUOTA_ENTITIES} client quota entities; remove some first"
                    ),
                ));
            }
            held += usize::from(adds);
            seen.insert(entity.clone());
            Ok((entity, changes))
        })
        .collect();
    let mut outcome: Result<(), Refusal> = Ok(());
    let valid: Vec<(QuotaEntity, Vec<QuotaChange>)> = checked
        .iter()
        .filter_map(|c| c.as_ref().ok().cloned())
        .collect();
    if !request.validate_only && !valid.is_empty() {
        outcome = commit(ctx, valid).await;
    }
    let entries = request
        .entries
        .iter()
        .zip(&checked)
        .map(|(entry, checked)| {
            let refusal = match (checked, &outcome) {
                (Err(refusal), _) | (Ok(_), Err(refusal)) => Some(refusal),
                (Ok(_), Ok(())) => None,
            };
            let (code, message) = match refusal {
                Some((code, message)) => {
                    tracing::info!(%code, message, "client quota change refused");
                    (*code, Some(StrBytes::from_string(message.clone())))
                }
                None => (ErrorCode::None, None),
            };
            alter_client_quotas_response::EntryData::default()
                .with_error_code(code.code())
                .with_error_message(message)
                .with_entity(
                    entry
                        .entity
                        .iter()
                        .map(|e| {
                            EntityData::default()
                                .with_entity_type(e.entity_type.clone())
                                .with_entity_name(e.entity_name.clone())
                        })
                        .collect(),
                )
        })
        .collect();
    AlterClientQuotasResponse::default().with_entries(entries)
}

/// One entry's entity and changes, or why it is refused.
fn check_entry(entry: &EntryData) -> Result<(QuotaEntity, Vec<QuotaChange>), Refusal> {
    let invalid = |m: String| (ErrorCode::InvalidRequest, m);
    let entity = QuotaEntity::from_parts(
        entry
            .entity
            .iter()
            .map(|e| (e.entity_type.as_str(), e.entity_name.as_deref())),
    )
    .map_err(invalid)?;
    let mut changes: Vec<QuotaChange> = Vec::with_capacity(entry.ops.len());
    for op in &entry.ops {
        let key = op.key.as_str();
        let value = (!op.remove).then_some(op.value);
        check_quota(&entity, key, value).map_err(invalid)?;
        changes.push((key.to_owned(), value));
    }
    Ok((entity, changes))
}

/// Has the controller commit `changes`, then waits (up to [`SETTLE_MS`])
/// until this broker's metadata shows them.
async fn commit(
    ctx: &Rc<Context>,
    changes: Vec<(QuotaEntity, Vec<QuotaChange>)>,
) -> Result<(), Refusal> {
    let expected: Vec<(QuotaEntity, _)> = {
        let metadata = ctx.shard.metadata();
        changes
            .iter()
            .map(|(entity, c)| {
                let current = metadata.client_quota(entity).cloned().unwrap_or_default();
                (entity.clone(), altered(&current, c))
            })
            .collect()
    };
    propose(ctx, Proposal::AlterClientQuotas { changes }).await?;
    let deadline = ctx.shard.env().monotonic_ms() + SETTLE_MS;
    let settled = |ctx: &Context| {
        let metadata = ctx.shard.metadata();
        expected.iter().all(|(entity, values)| {
            metadata.client_quota(entity).cloned().unwrap_or_default() == *values
        })
    };
    while !settled(ctx) && ctx.shard.env().monotonic_ms() < deadline {
        ctx.shard.env().sleep(POLL).await;
    }
    Ok(())
}
