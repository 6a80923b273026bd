//! UpdateFeatures (0–2): `kafka-features.sh upgrade|downgrade`. sluice
//! finalizes the highest level it supports of each feature
//! ([`crate::kafka::features`]) and does not change levels at run time: a
//! request for the levels in force succeeds (validate-only or not); any
//! other fails as a whole, nothing applied, with INVALID_UPDATE_VERSION
//! and Kafka's messages.

use kafka_protocol::messages::update_features_response::UpdatableFeatureResult;
use kafka_protocol::messages::{ApiKey, UpdateFeaturesRequest, UpdateFeaturesResponse};
use kafka_protocol::protocol::StrBytes;
use sluice_core::ErrorCode;

use super::{Call, Handler, Outcome};
use crate::kafka::features::update_error;

/// The UpdateFeatures handler: [`handle`], at versions 0–2.
pub struct UpdateFeaturesHandler;

impl Handler for UpdateFeaturesHandler {
    const KEY: ApiKey = ApiKey::UpdateFeatures;
    const NAME: &'static str = "UpdateFeatures";
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 2;
    type Request = UpdateFeaturesRequest;
    type Response = UpdateFeaturesResponse;

    async fn handle(call: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
        Outcome::Answer(handle(&request, call.version, call.ctx.node_id))
    }
}

/// Answers an UpdateFeatures request.
pub fn handle(
    request: &UpdateFeaturesRequest,
    version: i16,
    node_id: i32,
) -> UpdateFeaturesResponse {
    let failure = request
        .feature_updates
        .iter()
        .find_map(|u| update_error(u.feature.as_str(), u.max_version_level, node_id));
    match failure {
        None => {
            // v0–1 list every feature's result; v2 answers for the whole.
            let results = if version < 2 {
                request
                    .feature_updates
                    .iter()
                    .map(|u| UpdatableFeatureResult::default().with_feature(u.feature.clone()))
                    .collect()
            } else {
                Vec::new()
            };
            UpdateFeaturesResponse::default().with_results(results)
        }
        Some(message) => {
            tracing::info!(message, "feature update refused");
            UpdateFeaturesResponse::default()
                .with_error_code(ErrorCode::InvalidUpdateVersion.code())
                .with_error_message(Some(StrBytes::from_string(format!(
                    "The update failed for all features since the following feature had an error: {message}"
                ))))
        }
    }
}
