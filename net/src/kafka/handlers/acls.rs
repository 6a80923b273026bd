//! The ACL APIs: DescribeAcls, CreateAcls and DeleteAcls (1–3), as Kafka
//! answers them while no authorizer is configured: SECURITY_DISABLED with
//! Kafka's message, for the whole request (DescribeAcls) or for each
//! creation or filter (CreateAcls, DeleteAcls). sluice has no authorizer, so
//! this is every answer they get (`kafka-acls.sh --list` then reports that
//! security is disabled, as against Kafka).

use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::DeleteAclsFilterResult;
use kafka_protocol::messages::{
    ApiKey, CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;
use sluice_core::ErrorCode;

use super::{Call, Handler, Outcome};

/// Kafka's messages while no authorizer is configured: DescribeAcls's,
/// and the controller's for each creation or deletion filter.
const NO_AUTHORIZER_ON_BROKER: &str = "No Authorizer is configured on the broker";
const NO_AUTHORIZER: &str = "No Authorizer is configured.";

fn no_authorizer() -> Option<StrBytes> {
    Some(StrBytes::from_static_str(NO_AUTHORIZER))
}

/// The DescribeAcls handler, at versions 1–3.
pub struct DescribeAclsHandler;

impl Handler for DescribeAclsHandler {
    const KEY: ApiKey = ApiKey::DescribeAcls;
    const NAME: &'static str = "DescribeAcls";
    const MIN_VERSION: i16 = 1;
    const MAX_VERSION: i16 = 3;
    type Request = DescribeAclsRequest;
    type Response = DescribeAclsResponse;

    async fn handle(_call: Call<'_>, _request: Self::Request) -> Outcome<Self::Response> {
        Outcome::Answer(
            DescribeAclsResponse::default()
                .with_error_code(ErrorCode::SecurityDisabled.code())
                .with_error_message(Some(StrBytes::from_static_str(NO_AUTHORIZER_ON_BROKER))),
        )
    }
}

/// The CreateAcls handler, at versions 1–3.
pub struct CreateAclsHandler;

impl Handler for CreateAclsHandler {
    const KEY: ApiKey = ApiKey::CreateAcls;
    const NAME: &'static str = "CreateAcls";
    const MIN_VERSION: i16 = 1;
    const MAX_VERSION: i16 = 3;
    type Request = CreateAclsRequest;
    type Response = CreateAclsResponse;

    async fn handle(_call: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
        let results = request
            .creations
            .iter()
            .map(|_| {
                AclCreationResult::default()
                    .with_error_code(ErrorCode::SecurityDisabled.code())
                    .with_error_message(no_authorizer())
            })
            .collect();
        Outcome::Answer(CreateAclsResponse::default().with_results(results))
    }
}

/// The DeleteAcls handler, at versions 1–3.
pub struct DeleteAclsHandler;

impl Handler for DeleteAclsHandler {
    const KEY: ApiKey = ApiKey::DeleteAcls;
    const NAME: &'static str = "DeleteAcls";
    const MIN_VERSION: i16 = 1;
    const MAX_VERSION: i16 = 3;
    type Request = DeleteAclsRequest;
    type Response = DeleteAclsResponse;

    async fn handle(_call: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
        let results = request
            .filters
            .iter()
            .map(|_| {
                DeleteAclsFilterResult::default()
                    .with_error_code(ErrorCode::SecurityDisabled.code())
                    .with_error_message(no_authorizer())
            })
            .collect();
        Outcome::Answer(DeleteAclsResponse::default().with_filter_results(results))
    }
}
