//! DescribeClientQuotas (0–1): the client quotas whose entity matches a
//! filter (`kafka-configs.sh --describe --entity-type users|clients|ips`).
//!
//! A filter component names an entity type and matches an exact name
//! (match type 0), the default (1), or any entity with that type, default
//! included (2); every component must match, and a strict filter also
//! wants no other types in the entity. A bad filter is answered with
//! INVALID_REQUEST (or UNSUPPORTED_VERSION for an unknown entity or match
//! type) and its message, as Kafka answers it.

use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::describe_client_quotas_response::{EntityData, EntryData, ValueData};
use kafka_protocol::messages::{ApiKey, DescribeClientQuotasRequest, DescribeClientQuotasResponse};
use kafka_protocol::protocol::StrBytes;
use sluice_core::quota::{ClientQuota, EntityName, ENTITY_CLIENT_ID, ENTITY_IP, ENTITY_USER};
use sluice_core::ErrorCode;

use super::{Call, Handler, Outcome};

/// The DescribeClientQuotas handler: [`handle`], at versions 0–1.
pub struct DescribeClientQuotasHandler;

impl Handler for DescribeClientQuotasHandler {
    const KEY: ApiKey = ApiKey::DescribeClientQuotas;
    const NAME: &'static str = "DescribeClientQuotas";
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 1;
    type Request = DescribeClientQuotasRequest;
    type Response = DescribeClientQuotasResponse;

    async fn handle(call: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
        let metadata = call.ctx.shard.metadata();
        Outcome::Answer(describe(&metadata.client_quotas, &request))
    }
}

/// What one filter component asks of an entity's part of its type.
enum Wanted {
    Exactly(EntityName),
    Any,
}

/// A filter, checked: each entity type with what it wants.
type Filter = Vec<(String, Wanted)>;

/// Answers a DescribeClientQuotas request against `quotas`.
pub fn describe(
    quotas: &[ClientQuota],
    request: &DescribeClientQuotasRequest,
) -> DescribeClientQuotasResponse {
    let filter = match filter_of(&request.components) {
        Ok(filter) => filter,
        Err((code, message)) => {
            tracing::debug!(%code, message, "client quota filter refused");
            return DescribeClientQuotasResponse::default()
                .with_error_code(code.code())
                .with_error_message(Some(StrBytes::from_string(message)));
        }
    };
    let entries = quotas
        .iter()
        .filter(|q| matches(q, &filter, request.strict))
        .map(entry)
        .collect();
    DescribeClientQuotasResponse::default().with_entries(Some(entries))
}

fn filter_of(components: &[ComponentData]) -> Result<Filter, (ErrorCode, String)> {
    let invalid = |m: String| (ErrorCode::InvalidRequest, m);
    let mut filter: Filter = Vec::with_capacity(components.len());
    for c in components {
        let kind = c.entity_type.as_str();
        if kind.is_empty() {
            return Err(invalid("Invalid empty entity type.".into()));
        }
        if filter.iter().any(|(k, _)| k == kind) {
            return Err(invalid(format!(
                "Entity type {kind} cannot appear more than once in the filter."
            )));
        }
        if ![ENTITY_USER, ENTITY_CLIENT_ID, ENTITY_IP].contains(&kind) {
            return Err((
                ErrorCode::UnsupportedVersion,
                format!("Unsupported entity type {kind}"),
            ));
        }
        let name = c._match.as_ref().map(|m| m.as_str().to_owned());
        let wanted =
            match (c.match_type, name) {
                (0, Some(name)) => Wanted::Exactly(EntityName::Named(name)),
                (0, None) => {
                    return Err(invalid(
                        "Request specified MATCH_TYPE_EXACT, but set match string to null.".into(),
                    ))
                }
                (1, None) => Wanted::Exactly(EntityName::Default),
                (1, Some(_)) => {
                    return Err(invalid(
                        "Request specified MATCH_TYPE_DEFAULT, but also specified a match string."
                            .into(),
                    ))
                }
                (2, None) => Wanted::Any,
                (2, Some(_)) => return Err(invalid(
                    "Request specified MATCH_TYPE_SPECIFIED, but also specified a match string."
                        .into(),
                )),
                (other, _) => {
                    return Err((
                        ErrorCode::UnsupportedVersion,
                        format!("Unknown match type {other}"),
                    ))
                }
            };
        filter.push((kind.to_owned(), wanted));
    }
    let has = |k: &str| filter.iter().any(|(kind, _)| kind == k);
    if has(ENTITY_IP) && (has(ENTITY_USER) || has(ENTITY_CLIENT_ID)) {
        return Err(invalid("Invalid entity filter component combination. IP filter component should not be used with user or clientId filter component.".into()));
    }
    Ok(filter)
}

fn matches(quota: &ClientQuota, filter: &Filter, strict: bool) -> bool {
    if strict && quota.entity.parts().count() != filter.len() {
        return false;
    }
    filter
        .iter()
        .all(|(kind, wanted)| match (quota.entity.part(kind), wanted) {
            (Some(name), Wanted::Exactly(want)) => name == want,
            (Some(_), Wanted::Any) => true,
            (None, _) => false,
        })
}

fn entry(quota: &ClientQuota) -> EntryData {
    EntryData::default()
        .with_entity(
            quota
                .entity
                .parts()
                .map(|(kind, name)| {
                    EntityData::default()
                        .with_entity_type(StrBytes::from_static_str(kind))
                        .with_entity_name(name.map(|n| StrBytes::from_string(n.to_owned())))
                })
                .collect(),
        )
        .with_values(
            quota
                .values
                .iter()
                .map(|(key, value)| {
                    ValueData::default()
                        .with_key(StrBytes::from_string(key.clone()))
                        .with_value(value.0)
                })
                .collect(),
        )
}

#[cfg(test)]
mod tests {
    use sluice_core::quota::{QuotaEntity, QuotaValue, PRODUCER_BYTE_RATE};

    use super::*;

    fn quota(user: Option<EntityName>, client: Option<EntityName>) -> ClientQuota {
        ClientQuota {
            entity: QuotaEntity {
                user,
                client_id: client,
                ip: None,
            },
            values: [(PRODUCER_BYTE_RATE.to_owned(), QuotaValue(1024.0))].into(),
        }
    }

    fn component(kind: &str, match_type: i8, name: Option<&str>) -> ComponentData {
        ComponentData::default()
            .with_entity_type(StrBytes::from_string(kind.into()))
            .with_match_type(match_type)
            .with_match(name.map(|n| StrBytes::from_string(n.into())))
    }

    fn count(quotas: &[ClientQuota], components: Vec<ComponentData>, strict: bool) -> usize {
        let request = DescribeClientQuotasRequest::default()
            .with_components(components)
            .with_strict(strict);
        let response = describe(quotas, &request);
        assert_eq!(response.error_code, 0, "{:?}", response.error_message);
        response.entries.map_or(0, |e| e.len())
    }

    #[test]
    fn filters_match_as_kafkas_do() {
        let named = |n: &str| Some(EntityName::Named(n.into()));
        let quotas = vec![
            quota(Some(EntityName::Default), None),
            quota(named("u"), None),
            quota(named("u"), named("c")),
            quota(None, named("c")),
        ];
        assert_eq!(
            count(&quotas, vec![component(ENTITY_USER, 2, None)], false),
            3
        );
        assert_eq!(
            count(&quotas, vec![component(ENTITY_USER, 2, None)], true),
            2
        );
        assert_eq!(
            count(&quotas, vec![component(ENTITY_USER, 1, None)], false),
            1
        );
        assert_eq!(
            count(&quotas, vec![component(ENTITY_USER, 0, Some("u"))], false),
            2
        );
        assert_eq!(
            count(&quotas, vec![component(ENTITY_USER, 0, Some("u"))], true),
            1
        );
        assert_eq!(
            count(&quotas, vec![component(ENTITY_CLIENT_ID, 2, None)], false),
            2
        );
        assert_eq!(count(&quotas, vec![], false), 4);
        assert_eq!(count(&quotas, vec![], true), 0);
        let bad = DescribeClientQuotasRequest::default().with_components(vec![
            component(ENTITY_USER, 2, None),
            component(ENTITY_USER, 1, None),
        ]);
        assert_eq!(
            describe(&quotas, &bad).error_code,
            ErrorCode::InvalidRequest.code()
        );
        let unknown =
            DescribeClientQuotasRequest::default().with_components(vec![component("x", 2, None)]);
        assert_eq!(
            describe(&quotas, &unknown).error_code,
            ErrorCode::UnsupportedVersion.code()
        );
    }
}
