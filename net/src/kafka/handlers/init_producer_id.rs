//! InitProducerId (0–5): producer ids for idempotent and transactional
//! producers.
//!
//! Every non-transactional request gets a fresh id from the controller
//! (which reserves ids in blocks in the metadata log, so none is handed out
//! twice, even across restarts) and epoch 0 — also when it carries the id
//! and epoch it had (KIP-360, v3+), as Kafka's coordinator does: bumping the
//! epoch of an id named by any client would let it fence another producer.
//!
//! A transactional request goes to its id's transaction coordinator, which
//! keeps one producer id per transactional id and bumps its epoch at every
//! InitProducerId, fencing earlier instances (and aborting a transaction
//! one of them left open: the new instance gets CONCURRENT_TRANSACTIONS
//! and retries until that abort completes).

use kafka_protocol::messages::{ApiKey, InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use sluice_core::ErrorCode;
use sluice_shard::message::{TxnRequest, TxnResponse};

use super::txns::{allocate_producer_id, call_allocating, for_version};
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
        Outcome::Answer(handle(call.ctx, request, call.version).await)
    }
}

fn refuse(error: ErrorCode) -> InitProducerIdResponse {
    InitProducerIdResponse::default()
        .with_error_code(error.code())
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
}

/// Answers an InitProducerId request.
pub async fn handle(
    ctx: &Context,
    request: InitProducerIdRequest,
    version: i16,
) -> InitProducerIdResponse {
    match request.transactional_id.as_ref().map(|t| t.0.as_str()) {
        None => {}
        // Kafka's coordinator refuses an empty transactional id this way.
        Some("") => return refuse(ErrorCode::InvalidRequest),
        Some(transactional_id) => {
            return transactional(ctx, transactional_id, &request, version).await
        }
    }
    match allocate_producer_id(ctx).await {
        Ok(producer_id) => InitProducerIdResponse::default()
            .with_error_code(ErrorCode::None.code())
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(0),
        Err(error) => refuse(error),
    }
}

/// InitProducerId for a transactional producer, from its id's coordinator:
/// a producer id the first time, then the same id with its epoch bumped
/// (fencing earlier instances). The coordinator asks for a fresh producer
/// id when it needs one; it is allocated here and the request sent again.
async fn transactional(
    ctx: &Context,
    transactional_id: &str,
    request: &InitProducerIdRequest,
    version: i16,
) -> InitProducerIdResponse {
    // KIP-360 (v3+): a producer that has an id and epoch says so.
    let expected = (version >= 3 && request.producer_id.0 >= 0)
        .then_some((request.producer_id.0, request.producer_epoch));
    let ask = |fresh| TxnRequest::InitProducerId {
        transactional_id: transactional_id.to_owned(),
        timeout_ms: request.transaction_timeout_ms,
        expected,
        fresh,
    };
    match call_allocating(ctx, transactional_id, ask).await {
        TxnResponse::ProducerId { producer_id, epoch } => InitProducerIdResponse::default()
            .with_error_code(ErrorCode::None.code())
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(epoch),
        // KIP-588: PRODUCER_FENCED from version 4.
        TxnResponse::Error(error) => refuse(for_version(error, version, 4)),
        _ => refuse(ErrorCode::UnknownServerError),
    }
}
