//! DescribeCluster (0–1): the cluster id, the controller and the brokers —
//! on one node, this broker for all of them.
//!
//! This broker is a broker endpoint (KIP-919): a v1 request for controller
//! endpoints gets MISMATCHED_ENDPOINT_TYPE and an unknown type
//! UNSUPPORTED_ENDPOINT_TYPE, as Kafka's brokers answer.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{ApiKey, BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;
use sluice_core::ErrorCode;

use super::metadata::{AUTHORIZED_OPERATIONS_OMITTED, CLUSTER_AUTHORIZED_OPERATIONS};
use super::{Call, Handler, Outcome};
use crate::kafka::context::Context;

/// The DescribeCluster handler: [`handle`], at versions 0–1.
pub struct DescribeClusterHandler;

impl Handler for DescribeClusterHandler {
    const KEY: ApiKey = ApiKey::DescribeCluster;
    const NAME: &'static str = "DescribeCluster";
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 1;
    type Request = DescribeClusterRequest;
    type Response = DescribeClusterResponse;

    async fn handle(call: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
        Outcome::Answer(handle(call.ctx, request, call.version))
    }
}

/// Kafka's endpoint types.
const ENDPOINT_BROKER: i8 = 1;
const ENDPOINT_CONTROLLER: i8 = 2;

fn refuse(error: ErrorCode, message: String) -> DescribeClusterResponse {
    DescribeClusterResponse::default()
        .with_error_code(error.code())
        .with_error_message(Some(StrBytes::from_string(message)))
}

/// Answers a DescribeCluster request.
pub fn handle(
    ctx: &Context,
    request: DescribeClusterRequest,
    version: i16,
) -> DescribeClusterResponse {
    // v0 has no endpoint type field, so its error for one is INVALID_REQUEST.
    match request.endpoint_type {
        ENDPOINT_BROKER => {}
        ENDPOINT_CONTROLLER => {
            let error = if version == 0 {
                ErrorCode::InvalidRequest
            } else {
                ErrorCode::MismatchedEndpointType
            };
            return refuse(
                error,
                "The request was sent to an endpoint of type BROKER, but we wanted an endpoint of type CONTROLLER".into(),
            );
        }
        other => {
            let error = if version == 0 {
                ErrorCode::InvalidRequest
            } else {
                ErrorCode::UnsupportedEndpointType
            };
            return refuse(error, format!("Unsupported endpoint type {other}"));
        }
    }
    let authorized_operations = if request.include_cluster_authorized_operations {
        CLUSTER_AUTHORIZED_OPERATIONS
    } else {
        AUTHORIZED_OPERATIONS_OMITTED
    };
    DescribeClusterResponse::default()
        .with_error_code(ErrorCode::None.code())
        .with_endpoint_type(ENDPOINT_BROKER)
        .with_cluster_id(ctx.cluster_id.clone())
        .with_controller_id(BrokerId(
            sluice_shard::shard::controller_id().unwrap_or(ctx.node_id),
        ))
        .with_brokers(brokers(ctx, request.include_fenced_brokers))
        .with_cluster_authorized_operations(authorized_operations)
}

/// The registered brokers (fenced ones only when asked, v2), or this one
/// alone while its registration has not reached this copy of the metadata.
fn brokers(ctx: &Context, include_fenced: bool) -> Vec<DescribeClusterBroker> {
    let metadata = ctx.shard.metadata();
    let mut brokers: Vec<DescribeClusterBroker> = metadata
        .brokers
        .values()
        .filter(|b| include_fenced || !b.fenced)
        .map(|b| {
            let r = &b.registration;
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(r.id))
                .with_host(StrBytes::from_string(r.host.clone()))
                .with_port(r.port)
                .with_rack(r.rack.clone().map(StrBytes::from_string))
                .with_is_fenced(b.fenced)
        })
        .collect();
    if brokers.is_empty() {
        brokers.push(
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(ctx.node_id))
                .with_host(ctx.advertised_host.clone())
                .with_port(ctx.advertised_port),
        );
    }
    brokers
}
