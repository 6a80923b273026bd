//! EndTxn (0–5): a transactional producer commits or aborts its
//! transaction. The coordinator answers once the decision (PrepareCommit
//! or PrepareAbort) is durable; the markers follow in the background, and
//! the producer's next transactional request waits for them
//! (CONCURRENT_TRANSACTIONS).
//!
//! Version 5 is transaction version 2 (KIP-890 part 2): the epoch is
//! bumped with every transaction and the answer carries the producer id
//! and epoch to go on with (a new producer id once the epoch is
//! exhausted: allocated here when the coordinator asks for one, and the
//! request sent again); an error answers -1 for both, as Kafka.

use kafka_protocol::messages::{ApiKey, EndTxnRequest, EndTxnResponse, ProducerId};
use sluice_core::ErrorCode;
use sluice_shard::message::{TxnRequest, TxnResponse};

use super::txns::{call_allocating, for_version};
use super::{Call, Handler, Outcome};

/// The EndTxn handler, at versions 0–5.
pub struct EndTxnHandler;

impl Handler for EndTxnHandler {
    const KEY: ApiKey = ApiKey::EndTxn;
    const NAME: &'static str = "EndTxn";
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 5;
    type Request = EndTxnRequest;
    type Response = EndTxnResponse;

    async fn handle(call: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
        let id = request.transactional_id.0.as_str();
        let version2 = call.version >= 5;
        let ask = |fresh| TxnRequest::EndTxn {
            transactional_id: id.to_owned(),
            producer_id: request.producer_id.0,
            epoch: request.producer_epoch,
            commit: request.committed,
            version2,
            fresh,
        };
        let (error, producer) = match call_allocating(call.ctx, id, ask).await {
            TxnResponse::Error(e) => (e, None),
            TxnResponse::ProducerId { producer_id, epoch } => {
                (ErrorCode::None, Some((producer_id, epoch)))
            }
            _ => (ErrorCode::UnknownServerError, None),
        };
        // KIP-588: PRODUCER_FENCED from version 2.
        let error = for_version(error, call.version, 2);
        let (producer_id, epoch) = producer.unwrap_or((-1, -1));
        Outcome::Answer(
            EndTxnResponse::default()
                .with_error_code(error.code())
                .with_producer_id(ProducerId(producer_id))
                .with_producer_epoch(epoch),
        )
    }
}
