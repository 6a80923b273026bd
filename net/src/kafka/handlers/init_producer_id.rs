//! InitProducerId (0–5): producer ids for idempotent producers.
//!
//! Every non-transactional request gets a fresh id from the controller
//! (which reserves ids in blocks in the metadata log, so none is handed out
//! twice, even across restarts) and epoch 0 — also when it carries the id
//! and epoch it had (KIP-360, v3+), as Kafka's coordinator does: bumping the
//! epoch of an id named by any client would let it fence another producer.
//!
//! Transactions are not supported yet. Kafka has no broker without them, so
//! there is no error to copy exactly: its coordinator's "not here" answers
//! (NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE) make the Java client and
//! librdkafka look the coordinator up again and retry until their timeout,
//! so a transactional producer would hang. TRANSACTIONAL_ID_AUTHORIZATION_FAILED
//! is fatal in every client and fails `init_transactions` at once; it is
//! also what Redpanda answers when its transactions are disabled.

use kafka_protocol::messages::{ApiKey, InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use sluice_core::ErrorCode;
use sluice_shard::Proposal;

use super::topics::propose;
use super::{Call, Handler, Outcome};
use crate::kafka::context::Context;

/// The InitProducerId handler: [`handle`], at versions 0–5.
pub struct InitProducerIdHandler;

impl Handler for InitProducerIdHandler {
    const KEY: ApiKey = ApiKey::InitProducerId;
    const NAME: &'static str = "InitProducerId";
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 5;
    type Request = InitProducerIdRequest;
    type Response = InitProducerIdResponse;

    async fn handle(call: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
        Outcome::Answer(handle(call.ctx, request).await)
    }
}

fn refuse(error: ErrorCode) -> InitProducerIdResponse {
    InitProducerIdResponse::default()
        .with_error_code(error.code())
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
}

/// Answers an InitProducerId request.
pub async fn handle(ctx: &Context, request: InitProducerIdRequest) -> InitProducerIdResponse {
    match request.transactional_id.as_ref().map(|t| t.0.as_str()) {
        None => {}
        // Kafka's coordinator refuses an empty transactional id this way.
        Some("") => return refuse(ErrorCode::InvalidRequest),
        Some(transactional_id) => {
            tracing::debug!(
                transactional_id,
                "refusing a transactional producer: transactions are not supported"
            );
            return refuse(ErrorCode::TransactionalIdAuthorizationFailed);
        }
    }
    match propose(ctx, Proposal::AllocateProducerId).await {
        Ok(producer_id) => InitProducerIdResponse::default()
            .with_error_code(ErrorCode::None.code())
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(0),
        Err((error, message)) => {
            tracing::warn!(%error, message, "allocating a producer id failed");
            refuse(error)
        }
    }
}
