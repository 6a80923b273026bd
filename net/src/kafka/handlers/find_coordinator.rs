//! FindCoordinator (0–6): where a group's coordinator is (v4: for several
//! keys at once; v5 adds no answer used here; v6's share-group key type is
//! not served: INVALID_REQUEST, as for any unknown key type).
//!
//! A group key is answered with the broker leading the group's partition
//! of `__consumer_offsets`, a transaction key with the one leading the
//! id's partition of `__transaction_state` (the first lookup creates the
//! topic, as Kafka does); COORDINATOR_NOT_AVAILABLE while it has no leader;
//! an unknown key type, INVALID_REQUEST.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{ApiKey, BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use sluice_core::ErrorCode;

use super::groups::coordinator_of;
use super::{Call, Handler, Outcome};
use crate::kafka::context::Context;

/// The FindCoordinator handler: [`handle`], at versions 0–6.
pub struct FindCoordinatorHandler;

impl Handler for FindCoordinatorHandler {
    const KEY: ApiKey = ApiKey::FindCoordinator;
    const NAME: &'static str = "FindCoordinator";
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 6;
    type Request = FindCoordinatorRequest;
    type Response = FindCoordinatorResponse;

    async fn handle(call: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
        Outcome::Answer(handle(call.ctx, request, call.version).await)
    }
}

const GROUP_KEY: i8 = 0;
const TRANSACTION_KEY: i8 = 1;

/// The answer for one key: this broker, or an error.
async fn find(ctx: &Context, key: &str, key_type: i8) -> Coordinator {
    let mut leader = None;
    let error = match key_type {
        GROUP_KEY | TRANSACTION_KEY => {
            let found = if key_type == GROUP_KEY {
                coordinator_of(ctx, key).await
            } else if key.is_empty() {
                Err(ErrorCode::InvalidRequest)
            } else {
                super::txns::coordinator_of(ctx, key).await
            };
            match found {
                Ok(found) => match endpoint(ctx, found.broker) {
                    Some(at) => {
                        leader = Some(at);
                        ErrorCode::None
                    }
                    None => ErrorCode::CoordinatorNotAvailable,
                },
                Err(e) => e,
            }
        }
        _ => ErrorCode::InvalidRequest,
    };
    let found = Coordinator::default().with_key(StrBytes::from_string(key.to_owned()));
    if let (ErrorCode::None, Some((id, host, port))) = (error, leader) {
        found
            .with_node_id(BrokerId(id))
            .with_host(host)
            .with_port(port)
    } else {
        let message = match error {
            ErrorCode::InvalidRequest if key_type == TRANSACTION_KEY => "an empty transactional id",
            ErrorCode::InvalidRequest => "unknown coordinator key type",
            _ if key_type == TRANSACTION_KEY => "the transaction coordinator is not available",
            _ => "the group coordinator is not available",
        };
        found
            .with_node_id(BrokerId(-1))
            .with_port(-1)
            .with_error_code(error.code())
            .with_error_message(Some(StrBytes::from_static_str(message)))
    }
}

/// The Kafka listener of live broker `id`.
fn endpoint(ctx: &Context, id: i32) -> Option<(i32, StrBytes, i32)> {
    if id == ctx.node_id {
        return Some((id, ctx.advertised_host.clone(), ctx.advertised_port));
    }
    let metadata = ctx.shard.metadata();
    let broker = metadata.brokers.get(&id).filter(|b| !b.fenced)?;
    let r = &broker.registration;
    Some((id, StrBytes::from_string(r.host.clone()), r.port))
}

/// Answers a FindCoordinator request.
pub async fn handle(
    ctx: &Context,
    request: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let key_type = if version >= 1 {
        request.key_type
    } else {
        GROUP_KEY
    };
    if version >= 4 {
        let mut coordinators = Vec::with_capacity(request.coordinator_keys.len());
        for key in &request.coordinator_keys {
            coordinators.push(find(ctx, key.as_str(), key_type).await);
        }
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let c = find(ctx, request.key.as_str(), key_type).await;
    FindCoordinatorResponse::default()
        .with_error_code(c.error_code)
        .with_error_message(c.error_message)
        .with_node_id(c.node_id)
        .with_host(c.host)
        .with_port(c.port)
}
