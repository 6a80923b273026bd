//! AlterConfigs (0–2), the legacy, non-incremental config change: each
//! resource's dynamic configs become exactly the set given (every override
//! not named is deleted), as Kafka's AlterConfigs replaces them. The
//! changes are checked and committed as IncrementalAlterConfigs commits
//! SET and DELETE operations, with the same per-resource errors.

use std::rc::Rc;

use kafka_protocol::messages::alter_configs_request::AlterConfigsResource;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse, ApiKey};
use sluice_core::metadata::dynamic_config::{ConfigChange, ConfigOp};

use super::incremental_alter_configs::{
    answer, check_not_repeated, commit_changes, config_resource, Refusal,
};
use super::{Call, Handler, Outcome};
use crate::kafka::context::Context;

/// The AlterConfigs handler: [`handle`], at versions 0–2.
pub struct AlterConfigsHandler;

impl Handler for AlterConfigsHandler {
    const KEY: ApiKey = ApiKey::AlterConfigs;
    const NAME: &'static str = "AlterConfigs";
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 2;
    type Request = AlterConfigsRequest;
    type Response = AlterConfigsResponse;

    async fn handle(call: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
        Outcome::Answer(handle(call.ctx, request).await)
    }
}

/// Answers an AlterConfigs request.
pub async fn handle(ctx: &Rc<Context>, request: AlterConfigsRequest) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for resource in &request.resources {
        let outcome = replace(ctx, resource, request.validate_only).await;
        let (code, message) = answer(resource.resource_name.as_str(), outcome);
        responses.push(
            AlterConfigsResourceResponse::default()
                .with_error_code(code.code())
                .with_error_message(message)
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone()),
        );
    }
    AlterConfigsResponse::default().with_responses(responses)
}

/// Replaces one resource's dynamic configs with the ones given.
async fn replace(
    ctx: &Rc<Context>,
    resource: &AlterConfigsResource,
    validate_only: bool,
) -> Result<(), Refusal> {
    let target = config_resource(resource.resource_type, resource.resource_name.as_str())?;
    let mut changes: Vec<ConfigChange> = Vec::with_capacity(resource.configs.len());
    for c in &resource.configs {
        let name = c.name.as_str().to_owned();
        check_not_repeated(&changes, &name)?;
        let value = c.value.as_ref().map(|v| v.as_str().to_owned());
        let op = if value.is_some() {
            ConfigOp::Set
        } else {
            ConfigOp::Delete
        };
        changes.push((name, op, value));
    }
    let current = ctx.shard.metadata().config_overrides(&target);
    for name in current.keys() {
        if !changes.iter().any(|(n, ..)| n == name) {
            changes.push((name.clone(), ConfigOp::Delete, None));
        }
    }
    commit_changes(ctx, target, changes, validate_only).await
}
