//! ListTransactions (0–2): the transactional ids this broker coordinates
//! (`kafka-transactions.sh list` asks every broker), filtered by state
//! names, producer ids, how long they have been running (v1) and an id
//! pattern (v2, a regular expression). State names this broker does not
//! know come back in `unknown_state_filters`, as Kafka answers.

use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{
    ApiKey, ListTransactionsRequest, ListTransactionsResponse, ProducerId, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use sluice_core::txn::records::TxnStatus;
use sluice_core::ErrorCode;
use sluice_shard::message::ListTransactions;
use sluice_shard::now_ms;

use super::{Call, Handler, Outcome};

/// The ListTransactions handler, at versions 0–2.
pub struct ListTransactionsHandler;

/// Every state a listing may be filtered by.
const STATES: [TxnStatus; 8] = [
    TxnStatus::Empty,
    TxnStatus::Ongoing,
    TxnStatus::PrepareCommit,
    TxnStatus::PrepareAbort,
    TxnStatus::CompleteCommit,
    TxnStatus::CompleteAbort,
    TxnStatus::Dead,
    TxnStatus::PrepareEpochFence,
];

impl Handler for ListTransactionsHandler {
    const KEY: ApiKey = ApiKey::ListTransactions;
    const NAME: &'static str = "ListTransactions";
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 2;
    type Request = ListTransactionsRequest;
    type Response = ListTransactionsResponse;

    async fn handle(call: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
        let ctx = call.ctx;
        let unknown: Vec<StrBytes> = request
            .state_filters
            .iter()
            .filter(|f| !STATES.iter().any(|s| s.name() == f.as_str()))
            .cloned()
            .collect();
        let pattern = match request
            .transactional_id_pattern
            .as_ref()
            .filter(|p| call.version >= 2 && !p.is_empty())
        {
            Some(p) => match regex::Regex::new(&format!("^(?:{})$", p.as_str())) {
                Ok(re) => Some(re),
                Err(_) => {
                    return Outcome::Answer(
                        ListTransactionsResponse::default()
                            .with_error_code(ErrorCode::InvalidRequest.code()),
                    )
                }
            },
            None => None,
        };
        let now = now_ms();
        let mut states = Vec::new();
        for shard in 0..ctx.shard.shards {
            let Ok(listed) = ctx.shard.call(shard, ListTransactions).await else {
                continue;
            };
            for (id, m) in listed {
                let keep = (request.state_filters.is_empty()
                    || request
                        .state_filters
                        .iter()
                        .any(|f| f.as_str() == m.status.name()))
                    && (request.producer_id_filters.is_empty()
                        || request
                            .producer_id_filters
                            .iter()
                            .any(|p| p.0 == m.producer_id))
                    && (call.version < 1
                        || request.duration_filter < 0
                        || now - m.start_ms >= request.duration_filter)
                    && pattern.as_ref().is_none_or(|re| re.is_match(&id));
                if keep {
                    states.push(
                        TransactionState::default()
                            .with_transactional_id(TransactionalId(StrBytes::from_string(id)))
                            .with_producer_id(ProducerId(m.producer_id))
                            .with_transaction_state(StrBytes::from_static_str(m.status.name())),
                    );
                }
            }
        }
        Outcome::Answer(
            ListTransactionsResponse::default()
                .with_unknown_state_filters(unknown)
                .with_transaction_states(states),
        )
    }
}
