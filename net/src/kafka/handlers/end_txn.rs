//! EndTxn (0–4): a transactional producer commits or aborts its
//! transaction. The coordinator answers once the decision (PrepareCommit
//! or PrepareAbort) is durable; the markers follow in the background, and
//! the producer's next transactional request waits for them
//! (CONCURRENT_TRANSACTIONS). Version 5 (transaction version 2, an epoch
//! bump per transaction) is not served: this broker finalizes transaction
//! version 1.

use kafka_protocol::messages::{ApiKey, EndTxnRequest, EndTxnResponse};
use sluice_core::ErrorCode;
use sluice_shard::message::{TxnRequest, TxnResponse};

use super::txns::for_version;
use super::{Call, Handler, Outcome};

/// The EndTxn handler, at versions 0–4.
pub struct EndTxnHandler;

impl Handler for EndTxnHandler {
    const KEY: ApiKey = ApiKey::EndTxn;
    const NAME: &'static str = "EndTxn";
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 4;
    type Request = EndTxnRequest;
    type Response = EndTxnResponse;

    async fn handle(call: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
        let id = request.transactional_id.0.as_str();
        let answer = super::txns::call(
            call.ctx,
            id,
            TxnRequest::EndTxn {
                transactional_id: id.to_owned(),
                producer_id: request.producer_id.0,
                epoch: request.producer_epoch,
                commit: request.committed,
            },
        );
        let error = match answer.await {
            TxnResponse::Error(e) => e,
            _ => ErrorCode::UnknownServerError,
        };
        // KIP-588: PRODUCER_FENCED from version 2.
        let error = for_version(error, call.version, 2);
        Outcome::Answer(EndTxnResponse::default().with_error_code(error.code()))
    }
}
