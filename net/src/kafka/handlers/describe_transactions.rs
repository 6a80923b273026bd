//! DescribeTransactions (0): the state of transactional ids this broker
//! coordinates (`kafka-transactions.sh describe`): state, timeout, start
//! time, producer id and epoch, and the partitions in the transaction. An
//! id nobody initialised gets TRANSACTIONAL_ID_NOT_FOUND; one coordinated
//! by another broker NOT_COORDINATOR, as Kafka answers.

use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{
    ApiKey, DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_core::txn::coordinator::TxnMetadata;
use sluice_core::ErrorCode;
use sluice_shard::message::{TxnRequest, TxnResponse};

use super::txns::call;
use super::{Call, Handler, Outcome};

/// The DescribeTransactions handler, at version 0.
pub struct DescribeTransactionsHandler;

impl Handler for DescribeTransactionsHandler {
    const KEY: ApiKey = ApiKey::DescribeTransactions;
    const NAME: &'static str = "DescribeTransactions";
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 0;
    type Request = DescribeTransactionsRequest;
    type Response = DescribeTransactionsResponse;

    async fn handle(call_: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
        let mut states = Vec::with_capacity(request.transactional_ids.len());
        for id in &request.transactional_ids {
            let text = id.0.as_str();
            let ask = TxnRequest::Describe {
                transactional_ids: vec![text.to_owned()],
            };
            let state = TransactionState::default().with_transactional_id(id.clone());
            states.push(match call(call_.ctx, text, ask).await {
                TxnResponse::States(found) => match found.into_iter().next() {
                    Some((_, m)) => described(state, &m),
                    None => state.with_error_code(ErrorCode::TransactionalIdNotFound.code()),
                },
                TxnResponse::Error(e) => state.with_error_code(e.code()),
                _ => state.with_error_code(ErrorCode::UnknownServerError.code()),
            });
        }
        Outcome::Answer(DescribeTransactionsResponse::default().with_transaction_states(states))
    }
}

/// `state` filled from the id's metadata.
fn described(state: TransactionState, m: &TxnMetadata) -> TransactionState {
    let mut topics: Vec<TopicData> = Vec::new();
    for (topic, partition) in &m.partitions {
        match topics.iter_mut().find(|t| t.topic.0.as_str() == topic) {
            Some(t) => t.partitions.push(*partition),
            None => topics.push(
                TopicData::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.clone())))
                    .with_partitions(vec![*partition]),
            ),
        }
    }
    state
        .with_transaction_state(StrBytes::from_static_str(m.status.name()))
        .with_transaction_timeout_ms(m.timeout_ms)
        .with_transaction_start_time_ms(m.start_ms)
        .with_producer_id(ProducerId(m.producer_id))
        .with_producer_epoch(m.producer_epoch)
        .with_topics(topics)
}
