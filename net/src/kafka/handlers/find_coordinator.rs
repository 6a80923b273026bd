//! FindCoordinator (0–4): no group or transaction coordinator runs yet.
//!
//! Every key is answered COORDINATOR_NOT_AVAILABLE (retriable), which is
//! what a Kafka cluster says while its coordinator is not up. The API is
//! listed in ApiVersions all the same because librdkafka reads its presence
//! as "this broker is new enough for LZ4 framing": without it, librdkafka
//! clients silently stop compressing with lz4. Consumer groups (issue #4)
//! replace this with a real coordinator.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use sluice_core::ErrorCode;

const MESSAGE: &str = "this broker runs no group or transaction coordinator yet";

/// Answers a FindCoordinator request.
pub fn handle(request: FindCoordinatorRequest, version: i16) -> FindCoordinatorResponse {
    let error = ErrorCode::CoordinatorNotAvailable.code();
    let message = Some(StrBytes::from_static_str(MESSAGE));
    if version >= 4 {
        let coordinators = request
            .coordinator_keys
            .into_iter()
            .map(|key| {
                Coordinator::default()
                    .with_key(key)
                    .with_node_id(BrokerId(-1))
                    .with_port(-1)
                    .with_error_code(error)
                    .with_error_message(message.clone())
            })
            .collect();
        FindCoordinatorResponse::default().with_coordinators(coordinators)
    } else {
        FindCoordinatorResponse::default()
            .with_error_code(error)
            .with_error_message(message)
            .with_node_id(BrokerId(-1))
            .with_port(-1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_told_the_coordinator_is_not_available() {
        let batched = FindCoordinatorRequest::default().with_coordinator_keys(vec![
            StrBytes::from_static_str("a"),
            StrBytes::from_static_str("b"),
        ]);
        let r = handle(batched, 4);
        assert_eq!(r.coordinators.len(), 2);
        assert!(r.coordinators.iter().all(|c| c.error_code == 15));
        let single = handle(
            FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("g")),
            3,
        );
        assert_eq!(single.error_code, 15);
    }
}
