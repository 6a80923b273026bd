//! InitProducerId (0–5): producer ids for idempotent producers.
//!
//! A new producer gets a fresh id from the controller (which reserves ids in
//! blocks in the metadata log, so none is handed out twice, even across
//! restarts) and epoch 0. A producer that sends the id and epoch it has
//! (KIP-360, v3+) gets the same id with the next epoch, or a fresh id at
//! epoch 0 when the epoch is exhausted or the id was never handed out.
//!
//! Transactions are not supported yet. Kafka has no broker without them, so
//! there is no error to copy exactly: its coordinator's "not here" answers
//! (NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE) make the Java client and
//! librdkafka look the coordinator up again and retry until their timeout,
//! so a transactional producer would hang. TRANSACTIONAL_ID_AUTHORIZATION_FAILED
//! is fatal in every client and fails `init_transactions` at once; it is
//! also what Redpanda answers when its transactions are disabled.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use sluice_core::ErrorCode;
use sluice_shard::Proposal;

use super::topics::propose;
use crate::kafka::context::Context;

/// What to answer a producer, given what it sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grant {
    /// Allocate a new id; epoch 0.
    NewId,
    /// Keep the producer's id with this epoch.
    Bump { producer_id: i64, epoch: i16 },
}

/// Kafka treats an epoch this high as exhausted and moves to a new id.
const EPOCH_EXHAUSTED: i16 = i16::MAX - 1;

/// Decides between a bump and a new id; `next_producer_id` is the first id
/// the controller has not reserved.
fn grant(producer_id: i64, producer_epoch: i16, next_producer_id: i64) -> Grant {
    let known = (0..next_producer_id).contains(&producer_id);
    if known && (0..EPOCH_EXHAUSTED).contains(&producer_epoch) {
        Grant::Bump {
            producer_id,
            epoch: producer_epoch + 1,
        }
    } else {
        Grant::NewId
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
            tracing::debug!(
                transactional_id,
                "refusing a transactional producer: transactions are not supported"
            );
            return refuse(ErrorCode::TransactionalIdAuthorizationFailed);
        }
    }
    let decision = if version >= 3 {
        let next_producer_id = ctx.shard.metadata().next_producer_id;
        grant(
            request.producer_id.0,
            request.producer_epoch,
            next_producer_id,
        )
    } else {
        Grant::NewId
    };
    match decision {
        Grant::Bump { producer_id, epoch } => InitProducerIdResponse::default()
            .with_error_code(ErrorCode::None.code())
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(epoch),
        Grant::NewId => match propose(ctx, Proposal::AllocateProducerId).await {
            Ok(producer_id) => InitProducerIdResponse::default()
                .with_error_code(ErrorCode::None.code())
                .with_producer_id(ProducerId(producer_id))
                .with_producer_epoch(0),
            Err((error, message)) => {
                tracing::warn!(%error, message, "allocating a producer id failed");
                refuse(error)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_producer_keeps_its_id_with_the_next_epoch() {
        assert_eq!(
            grant(5, 0, 1000),
            Grant::Bump {
                producer_id: 5,
                epoch: 1
            }
        );
        assert_eq!(
            grant(5, 41, 1000),
            Grant::Bump {
                producer_id: 5,
                epoch: 42
            }
        );
    }

    #[test]
    fn new_unknown_or_exhausted_producers_get_a_new_id() {
        assert_eq!(grant(-1, -1, 1000), Grant::NewId);
        assert_eq!(grant(5, -1, 1000), Grant::NewId);
        assert_eq!(grant(1000, 0, 1000), Grant::NewId);
        assert_eq!(grant(5, EPOCH_EXHAUSTED, 1000), Grant::NewId);
        assert_eq!(
            grant(5, EPOCH_EXHAUSTED - 1, 1000),
            Grant::Bump {
                producer_id: 5,
                epoch: EPOCH_EXHAUSTED
            }
        );
    }
}
