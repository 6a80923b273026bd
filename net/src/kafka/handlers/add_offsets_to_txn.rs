//! AddOffsetsToTxn (0–4): a transactional producer will commit a group's
//! offsets in its transaction (TxnOffsetCommit), so the group's partition
//! of `__consumer_offsets` joins the transaction and gets its marker.

use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, ApiKey};
use sluice_core::ErrorCode;
use sluice_shard::group::OFFSETS_TOPIC;
use sluice_shard::message::{TxnRequest, TxnResponse};

use super::txns::{call, for_version};
use super::{Call, Handler, Outcome};

/// The AddOffsetsToTxn handler, at versions 0–4.
pub struct AddOffsetsToTxnHandler;

impl Handler for AddOffsetsToTxnHandler {
    const KEY: ApiKey = ApiKey::AddOffsetsToTxn;
    const NAME: &'static str = "AddOffsetsToTxn";
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 4;
    type Request = AddOffsetsToTxnRequest;
    type Response = AddOffsetsToTxnResponse;

    async fn handle(call_: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
        let ctx = call_.ctx;
        let id = request.transactional_id.0.as_str();
        let group_id = request.group_id.0.as_str();
        let error = match super::groups::coordinator_of(ctx, group_id).await {
            Err(e) => e,
            Ok(group) => {
                let answer = call(
                    ctx,
                    id,
                    TxnRequest::AddPartitions {
                        transactional_id: id.to_owned(),
                        producer_id: request.producer_id.0,
                        epoch: request.producer_epoch,
                        partitions: vec![(OFFSETS_TOPIC.to_owned(), group.partition)],
                        verify_only: false,
                    },
                )
                .await;
                match answer {
                    TxnResponse::Error(e) => e,
                    TxnResponse::Partitions(errors) => {
                        errors.first().copied().unwrap_or(ErrorCode::None)
                    }
                    _ => ErrorCode::UnknownServerError,
                }
            }
        };
        let error = for_version(error, call_.version, 2);
        Outcome::Answer(AddOffsetsToTxnResponse::default().with_error_code(error.code()))
    }
}
