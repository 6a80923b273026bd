//! ApiVersions (0–4): the supported ranges, straight from the registry's
//! table, which is generated from the same list as dispatch: every API
//! advertised here is dispatched at every version advertised, and nothing
//! else is.
//!
//! With them, from v3, the supported and finalized features
//! ([`crate::kafka::features`]).
//!
//! Also the KIP-511 answer the server gives, before dispatch, to an
//! ApiVersions request newer than the broker knows.

use kafka_protocol::messages::api_versions_response::{
    ApiVersion, FinalizedFeatureKey, SupportedFeatureKey,
};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::StrBytes;
use sluice_core::ErrorCode;

use super::{Call, Handler, Outcome};
use crate::kafka::features::FEATURES;
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

    async fn handle(call: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
        let epoch = i64::try_from(call.ctx.shard.metadata().applied).unwrap_or(i64::MAX);
        Outcome::Answer(with_features(handle(request), call.version, epoch))
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

/// Adds the supported and finalized features (v3+ carry them; before v4,
/// as Kafka does, supported features whose lowest level is 0 are left
/// out). `epoch` is the metadata's position, which Kafka reports as the
/// finalized features' epoch.
pub fn with_features(
    response: ApiVersionsResponse,
    version: i16,
    epoch: i64,
) -> ApiVersionsResponse {
    if version < 3 {
        return response;
    }
    let supported = FEATURES
        .iter()
        .filter(|f| version >= 4 || f.min_version > 0)
        .map(|f| {
            SupportedFeatureKey::default()
                .with_name(StrBytes::from_static_str(f.name))
                .with_min_version(f.min_version)
                .with_max_version(f.max_version)
        })
        .collect();
    let finalized = FEATURES
        .iter()
        .map(|f| {
            FinalizedFeatureKey::default()
                .with_name(StrBytes::from_static_str(f.name))
                .with_min_version_level(f.finalized)
                .with_max_version_level(f.finalized)
        })
        .collect();
    response
        .with_supported_features(supported)
        .with_finalized_features(finalized)
        .with_finalized_features_epoch(epoch)
}

/// The v0 answer to an ApiVersions request newer than the broker knows
/// (KIP-511): UNSUPPORTED_VERSION plus the ranges, so the client retries
/// with a version both sides speak.
pub fn unsupported_version() -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(ErrorCode::UnsupportedVersion.code())
        .with_api_keys(api_keys())
}
