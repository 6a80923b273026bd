//! The registry: the one list of the Kafka APIs this broker serves, as
//! their handler types.
//!
//! Owns: which APIs are served. Each entry names an API and its
//! [`Handler`], which carries the API's key, name and versions; the list is
//! written once, in the `registry!` invocation below, and everything that
//! depends on it is generated from it: [`SUPPORTED_APIS`], which the server
//! checks every request against and ApiVersions answers from, and
//! [`dispatch`], one match arm per entry. So an API cannot be listed
//! without a handler, nor handled without being listed, nor advertised at
//! versions other than those its handler declares.
//!
//! Every handler is called the same way: [`Handler::handle`], with a
//! [`Call`] and its API's request, answering an [`Outcome`] of its API's
//! response. Produce, too, is only an entry: its pipelining is the outcome
//! it answers ([`Outcome::Pending`]), not a case of the server.
//!
//! Invariant: [`dispatch`] sees only requests the server's
//! `decode_request` accepted against [`SUPPORTED_APIS`], so its one arm
//! for an unlisted API ([`Unlisted`]) is reached only by a bug; the server
//! then closes the connection rather than leave the request unanswered.
//!
//! Adding an API: write its module under `handlers/`, with a handler type
//! (`impl Handler for DeleteRecordsHandler`, its versions as constants),
//! then one entry, the API's name as `ApiKey`, `RequestKind` and
//! `ResponseKind` spell it, and its handler type:
//!
//! ```text
//! DeleteRecords => delete_records::DeleteRecordsHandler,
//! ```

use std::net::SocketAddr;
use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseKind};

use super::context::Context;
use super::handlers::{
    acls, add_offsets_to_txn, add_partitions_to_txn, alter_client_quotas, alter_configs,
    alter_partition_reassignments, api_versions, consumer_group_describe, consumer_group_heartbeat,
    create_partitions, create_topics, delete_groups, delete_records, delete_topics,
    describe_client_quotas, describe_cluster, describe_configs, describe_groups, describe_log_dirs,
    describe_producers, describe_quorum, describe_share_group_offsets, describe_topic_partitions,
    describe_transactions, describe_user_scram_credentials, elect_leaders, end_txn, fetch,
    find_coordinator, heartbeat, incremental_alter_configs, init_producer_id, join_group,
    leave_group, list_groups, list_offsets, list_partition_reassignments, list_transactions,
    metadata, offset_commit, offset_delete, offset_fetch, offset_for_leader_epoch, produce,
    share_acknowledge, share_fetch, share_group_describe, share_group_heartbeat,
    share_group_offsets, share_group_state, sync_group, txn_offset_commit, update_features,
    write_txn_markers, Call, Handler, Outcome,
};

/// A served API: its key, its name (Kafka's, as `ApiKey` spells it) and its
/// version range (inclusive), as its [`Handler`] declares them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SupportedApi {
    pub key: ApiKey,
    pub name: &'static str,
    pub min_version: i16,
    pub max_version: i16,
}

/// A request of an API the registry does not list, refused by [`dispatch`].
/// The server refuses these before decoding them (it checks
/// [`SUPPORTED_APIS`]), so this is reached only by a bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("API key {api_key} is not in the registry")]
pub struct Unlisted {
    /// The request header's API key.
    pub api_key: i16,
}

/// Generates the table and the dispatch from one list of entries
/// `Name => HandlerType`. `Name` is the API as `ApiKey`, `RequestKind` and
/// `ResponseKind` all spell it; `HandlerType` implements [`Handler`] for
/// that API's request and response (the compiler checks those where
/// dispatch calls it; the tests check its key against `Name`).
macro_rules! registry {
    ($($api:ident => $handler:ty),+ $(,)?) => {
        /// Every API this broker serves, with the versions it serves, in the
        /// registry's order.
        pub const SUPPORTED_APIS: &[SupportedApi] = &[$(
            SupportedApi {
                key: <$handler as Handler>::KEY,
                name: <$handler as Handler>::NAME,
                min_version: <$handler as Handler>::MIN_VERSION,
                max_version: <$handler as Handler>::MAX_VERSION,
            },
        )+];

        /// Runs the handler of `request`'s API and answers its outcome, the
        /// response wrapped in its `ResponseKind`. The handler gets `header`
        /// whole (see [`Call::header`]). `Err` only for an API the registry
        /// does not list, which the server refuses before decoding it.
        pub async fn dispatch(
            ctx: &Rc<Context>,
            header: RequestHeader,
            request: RequestKind,
            frame: Bytes,
            peer: Option<SocketAddr>,
        ) -> Result<Outcome<ResponseKind>, Unlisted> {
            let api_key = header.request_api_key;
            let call = Call {
                ctx,
                version: header.request_api_version,
                header,
                frame,
                peer,
            };
            match request {
                $(RequestKind::$api(request) => {
                    let outcome = <$handler as Handler>::handle(call, request).await;
                    Ok(outcome.map(ResponseKind::$api))
                })+
                // `RequestKind` is non-exhaustive, so this arm is needed even
                // if every API were listed.
                _ => Err(Unlisted { api_key }),
            }
        }

        /// The API each entry names, in the registry's order (its handler's
        /// key must be the same).
        #[cfg(test)]
        const ENTRY_KEYS: &[ApiKey] = &[$(ApiKey::$api,)+];

        /// The key of the entry [`dispatch`] runs for `request`, or `None`
        /// when it refuses it: the same arms, without the handlers.
        #[cfg(test)]
        fn route(request: &RequestKind) -> Option<ApiKey> {
            match request {
                $(RequestKind::$api(_) => Some(ApiKey::$api),)+
                _ => None,
            }
        }

        /// A default request of API `key`, when it is listed.
        #[cfg(test)]
        fn default_request(key: ApiKey) -> Option<RequestKind> {
            match key {
                $(ApiKey::$api => Some(RequestKind::$api(Default::default())),)+
                _ => None,
            }
        }
    };
}

// The registry. ApiVersions answers in this order.
registry! {
    Produce => produce::ProduceHandler,
    Fetch => fetch::FetchHandler,
    ListOffsets => list_offsets::ListOffsetsHandler,
    OffsetForLeaderEpoch => offset_for_leader_epoch::OffsetForLeaderEpochHandler,
    Metadata => metadata::MetadataHandler,
    FindCoordinator => find_coordinator::FindCoordinatorHandler,
    ApiVersions => api_versions::ApiVersionsHandler,
    CreateTopics => create_topics::CreateTopicsHandler,
    DeleteTopics => delete_topics::DeleteTopicsHandler,
    InitProducerId => init_producer_id::InitProducerIdHandler,
    AddPartitionsToTxn => add_partitions_to_txn::AddPartitionsToTxnHandler,
    AddOffsetsToTxn => add_offsets_to_txn::AddOffsetsToTxnHandler,
    EndTxn => end_txn::EndTxnHandler,
    WriteTxnMarkers => write_txn_markers::WriteTxnMarkersHandler,
    TxnOffsetCommit => txn_offset_commit::TxnOffsetCommitHandler,
    DescribeTransactions => describe_transactions::DescribeTransactionsHandler,
    ListTransactions => list_transactions::ListTransactionsHandler,
    DescribeProducers => describe_producers::DescribeProducersHandler,
    DescribeConfigs => describe_configs::DescribeConfigsHandler,
    DescribeLogDirs => describe_log_dirs::DescribeLogDirsHandler,
    IncrementalAlterConfigs => incremental_alter_configs::IncrementalAlterConfigsHandler,
    CreatePartitions => create_partitions::CreatePartitionsHandler,
    DescribeCluster => describe_cluster::DescribeClusterHandler,
    DescribeQuorum => describe_quorum::DescribeQuorumHandler,
    ElectLeaders => elect_leaders::ElectLeadersHandler,
    AlterPartitionReassignments => alter_partition_reassignments::AlterPartitionReassignmentsHandler,
    ListPartitionReassignments => list_partition_reassignments::ListPartitionReassignmentsHandler,
    OffsetCommit => offset_commit::OffsetCommitHandler,
    OffsetFetch => offset_fetch::OffsetFetchHandler,
    JoinGroup => join_group::JoinGroupHandler,
    Heartbeat => heartbeat::HeartbeatHandler,
    LeaveGroup => leave_group::LeaveGroupHandler,
    SyncGroup => sync_group::SyncGroupHandler,
    DescribeGroups => describe_groups::DescribeGroupsHandler,
    ListGroups => list_groups::ListGroupsHandler,
    DeleteGroups => delete_groups::DeleteGroupsHandler,
    OffsetDelete => offset_delete::OffsetDeleteHandler,
    ConsumerGroupHeartbeat => consumer_group_heartbeat::ConsumerGroupHeartbeatHandler,
    ConsumerGroupDescribe => consumer_group_describe::ConsumerGroupDescribeHandler,
    DeleteRecords => delete_records::DeleteRecordsHandler,
    AlterConfigs => alter_configs::AlterConfigsHandler,
    DescribeTopicPartitions => describe_topic_partitions::DescribeTopicPartitionsHandler,
    UpdateFeatures => update_features::UpdateFeaturesHandler,
    DescribeAcls => acls::DescribeAclsHandler,
    CreateAcls => acls::CreateAclsHandler,
    DeleteAcls => acls::DeleteAclsHandler,
    DescribeClientQuotas => describe_client_quotas::DescribeClientQuotasHandler,
    AlterClientQuotas => alter_client_quotas::AlterClientQuotasHandler,
    DescribeUserScramCredentials => describe_user_scram_credentials::DescribeUserScramCredentialsHandler,
    ShareGroupHeartbeat => share_group_heartbeat::ShareGroupHeartbeatHandler,
    ShareGroupDescribe => share_group_describe::ShareGroupDescribeHandler,
    ShareFetch => share_fetch::ShareFetchHandler,
    ShareAcknowledge => share_acknowledge::ShareAcknowledgeHandler,
    DescribeShareGroupOffsets => describe_share_group_offsets::DescribeShareGroupOffsetsHandler,
    AlterShareGroupOffsets => share_group_offsets::AlterShareGroupOffsetsHandler,
    DeleteShareGroupOffsets => share_group_offsets::DeleteShareGroupOffsetsHandler,
    ReadShareGroupState => share_group_state::ReadShareGroupStateHandler,
    WriteShareGroupState => share_group_state::WriteShareGroupStateHandler,
}

/// The supported range of `key`, if the broker serves it.
pub fn supported(key: ApiKey) -> Option<SupportedApi> {
    SUPPORTED_APIS.iter().copied().find(|a| a.key == key)
}

/// True when `key` at `version` is served.
pub fn is_supported(key: ApiKey, version: i16) -> bool {
    supported(key).is_some_and(|a| (a.min_version..=a.max_version).contains(&version))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use kafka_protocol::messages::ApiVersionsRequest;

    use super::*;
    use crate::kafka::server::decode_request;

    #[test]
    fn every_supported_range_is_within_what_the_codec_knows() {
        for api in SUPPORTED_APIS {
            let codec = api.key.valid_versions();
            // ShareFetch and ShareAcknowledge v2 are read and written as
            // v1 with their own fields (crate::kafka::share_v2).
            // DescribeShareGroupOffsets v1 as v0 (crate::kafka::share_offsets_v1).
            let max = if crate::kafka::share_v2::translated(api.key, api.max_version)
                || crate::kafka::share_offsets_v1::translated(api.key, api.max_version)
            {
                codec.max + 1
            } else {
                codec.max
            };
            assert!(
                api.min_version >= codec.min && api.max_version <= max,
                "{:?}",
                api.key
            );
            assert!(api.min_version <= api.max_version);
        }
        assert!(is_supported(ApiKey::ApiVersions, 3));
        assert!(!is_supported(ApiKey::Produce, 2));
        assert!(is_supported(ApiKey::JoinGroup, 0));
        assert!(!is_supported(ApiKey::JoinGroup, 10));
        assert!(is_supported(ApiKey::FindCoordinator, 4));
    }

    #[test]
    fn every_listed_api_dispatches_to_its_own_entry() {
        for api in SUPPORTED_APIS {
            let request = default_request(api.key)
                .unwrap_or_else(|| panic!("{} is listed but has no request kind", api.name));
            assert_eq!(route(&request), Some(api.key), "{}", api.name);
        }
    }

    #[test]
    fn an_unlisted_api_is_refused_before_decoding_and_has_no_route() {
        assert_eq!(supported(ApiKey::SaslHandshake), None);
        assert!(!is_supported(ApiKey::SaslHandshake, 1));
        let mut frame = Vec::new();
        frame.extend_from_slice(&(ApiKey::SaslHandshake as i16).to_be_bytes());
        frame.extend_from_slice(&1i16.to_be_bytes()); // version
        frame.extend_from_slice(&7i32.to_be_bytes()); // correlation id
        frame.extend_from_slice(&(-1i16).to_be_bytes()); // null client id
        assert!(decode_request(Bytes::from(frame)).is_err());
        assert!(default_request(ApiKey::SaslHandshake).is_none());
        let request = RequestKind::SaslHandshake(Default::default());
        assert_eq!(route(&request), None);
    }

    #[test]
    fn every_handler_serves_the_api_of_its_entry() {
        assert_eq!(SUPPORTED_APIS.len(), ENTRY_KEYS.len());
        for (api, entry) in SUPPORTED_APIS.iter().zip(ENTRY_KEYS) {
            assert_eq!(api.key, *entry, "the handler of the {entry:?} entry");
        }
    }

    #[test]
    fn names_and_keys_are_unique_and_kafkas() {
        for (i, api) in SUPPORTED_APIS.iter().enumerate() {
            assert_eq!(api.name, format!("{:?}", api.key));
            for other in &SUPPORTED_APIS[i + 1..] {
                assert_ne!(api.key, other.key, "{} is listed twice", api.name);
                assert_ne!(api.name, other.name);
            }
        }
    }

    #[test]
    fn api_versions_advertises_exactly_the_listed_apis() {
        let response = api_versions::handle(ApiVersionsRequest::default());
        assert_eq!(response.error_code, 0);
        let advertised: Vec<(i16, i16, i16)> = response
            .api_keys
            .iter()
            .map(|a| (a.api_key, a.min_version, a.max_version))
            .collect();
        let listed: Vec<(i16, i16, i16)> = SUPPORTED_APIS
            .iter()
            .map(|a| (a.key as i16, a.min_version, a.max_version))
            .collect();
        assert_eq!(advertised, listed);
    }
}
