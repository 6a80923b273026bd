//! ApiVersions (0–4): the supported ranges, straight from the registry's
//! table, which is generated from the same list as dispatch: every API
//! advertised here is dispatched at every version advertised, and nothing
//! else is.
//!
//! Also the KIP-511 answer the server gives, before dispatch, to an
//! ApiVersions request newer than the broker knows.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use sluice_core::ErrorCode;

use super::{Call, Handler, Outcome};
use crate::kafka::registry::SUPPORTED_APIS;

/// The ApiVersions handler: [`handle`], at versions 0–4.
pub struct ApiVersionsHandler;

impl Handler for ApiVersionsHandler {
    const KEY: ApiKey = ApiKey::ApiVersions;
    const NAME: &'static str = "ApiVersions";
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 4;
    type Request = ApiVersionsRequest;
    type Response = ApiVersionsResponse;

    async fn handle(_call: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
        Outcome::Answer(handle(request))
    }
}

fn api_keys() -> Vec<ApiVersion> {
    SUPPORTED_APIS
        .iter()
        .map(|a| {
            ApiVersion::default()
                .with_api_key(a.key as i16)
                .with_min_version(a.min_version)
                .with_max_version(a.max_version)
        })
        .collect()
}

/// Answers a supported ApiVersions request: every listed API, in the
/// registry's order.
pub fn handle(_request: ApiVersionsRequest) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(ErrorCode::None.code())
        .with_api_keys(api_keys())
}

/// The v0 answer to an ApiVersions request newer than the broker knows
/// (KIP-511): UNSUPPORTED_VERSION plus the ranges, so the client retries
/// with a version both sides speak.
pub fn unsupported_version() -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(ErrorCode::UnsupportedVersion.code())
        .with_api_keys(api_keys())
}
