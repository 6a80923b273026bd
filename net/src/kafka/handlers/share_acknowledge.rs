//! ShareAcknowledge (1-2): a share group member acknowledges records it
//! acquired (KIP-932) without fetching more: ACCEPT, RELEASE, REJECT or
//! GAP per range or per offset, and at version 2 with `IsRenewAck`
//! RENEW (KIP-1222: the lock starts over; the answer carries the lock
//! duration). It continues the member's share session (epoch 0 cannot
//! open one: INVALID_SHARE_SESSION_EPOCH), and epoch -1 closes it,
//! releasing whatever the member still holds.

use kafka_protocol::messages::share_acknowledge_response::{
    LeaderIdAndEpoch, PartitionData, ShareAcknowledgeTopicResponse,
};
use kafka_protocol::messages::{ApiKey, ShareAcknowledgeRequest, ShareAcknowledgeResponse};
use sluice_core::ErrorCode;

use super::shares::{
    check_acks, ensure_state_topic, group_and_member, read, settings, ReadPlan, SharePart,
};
use super::{Call, Handler, Outcome};
use crate::kafka::context::Context;
use crate::kafka::share_sessions::SessionStep;
use crate::kafka::share_v2::{self, V2Fields};

/// The ShareAcknowledge handler: [`handle`], at versions 1 and 2 (version
/// 2 through [`share_v2`]).
pub struct ShareAcknowledgeHandler;

impl Handler for ShareAcknowledgeHandler {
    const KEY: ApiKey = ApiKey::ShareAcknowledge;
    const NAME: &'static str = "ShareAcknowledge";
    const MIN_VERSION: i16 = 1;
    const MAX_VERSION: i16 = 2;
    type Request = ShareAcknowledgeRequest;
    type Response = ShareAcknowledgeResponse;

    async fn handle(call: Call<'_>, request: Self::Request) -> Outcome<Self::Response> {
        let v2 = share_v2::fields_of_frame(&call.frame);
        Outcome::Answer(handle(call.ctx, request, call.version, v2).await)
    }
}

/// A top-level refusal.
fn refused(error: ErrorCode) -> ShareAcknowledgeResponse {
    ShareAcknowledgeResponse::default().with_error_code(error.code())
}

/// Answers a ShareAcknowledge request of `version` (`v2`: the fields
/// version 2 adds).
pub async fn handle(
    ctx: &Context,
    request: ShareAcknowledgeRequest,
    version: i16,
    v2: V2Fields,
) -> ShareAcknowledgeResponse {
    let (group_id, member_id) = match group_and_member(&request.group_id, &request.member_id) {
        Ok(ids) => ids,
        Err(e) => return refused(e),
    };
    let now = ctx.shard.env().now_ms();
    let step = ctx.share_sessions.borrow_mut().acknowledge(
        &group_id,
        &member_id,
        request.share_session_epoch,
        now,
    );
    let closing = match step {
        Ok(SessionStep::Fetch(_)) => false,
        Ok(SessionStep::Closed) => true,
        Err(e) => return refused(e),
    };
    ensure_state_topic(ctx, &group_id).await;
    let mut parts: Vec<SharePart> = Vec::new();
    let mut checks: Vec<Option<ErrorCode>> = Vec::new();
    for topic in &request.topics {
        for p in &topic.partitions {
            let acks: Vec<_> = p
                .acknowledgement_batches
                .iter()
                .map(|b| (b.first_offset, b.last_offset, b.acknowledge_types.clone()))
                .collect();
            let check = check_acks(&acks, v2.is_renew_ack).err();
            let mut part = SharePart::resolve(ctx, topic.topic_id, p.partition_index, acks);
            if check.is_some() {
                part.acks.clear();
            }
            parts.push(part);
            checks.push(check);
        }
    }
    let plan = ReadPlan {
        group_id: &group_id,
        member_id: &member_id,
        acquire: false,
        release: closing,
        max_records: 0,
        max_bytes: 0,
        settings: settings(ctx, &group_id),
        record_limit: false,
    };
    let lock_ms = plan.settings.partition.lock_duration_ms;
    let results = read(ctx, &parts, &plan, true).await;
    let mut topics: Vec<ShareAcknowledgeTopicResponse> = Vec::new();
    for ((p, r), check) in parts.iter().zip(results).zip(checks) {
        let error = check.unwrap_or(if r.error != ErrorCode::None {
            r.error
        } else {
            r.ack_error
        });
        let leader = if error == ErrorCode::NotLeaderOrFollower {
            LeaderIdAndEpoch::default()
                .with_leader_id(p.leader.0)
                .with_leader_epoch(p.leader.1)
        } else {
            LeaderIdAndEpoch::default()
        };
        let data = PartitionData::default()
            .with_partition_index(p.partition)
            .with_error_code(error.code())
            .with_current_leader(leader);
        match topics.iter_mut().find(|t| t.topic_id == p.topic_id) {
            Some(t) => t.partitions.push(data),
            None => topics.push(
                ShareAcknowledgeTopicResponse::default()
                    .with_topic_id(p.topic_id)
                    .with_partitions(vec![data]),
            ),
        }
    }
    let mut response = ShareAcknowledgeResponse::default().with_responses(topics);
    if version >= 2 {
        share_v2::set_lock_timeout(&mut response, lock_ms.clamp(0, i64::from(i32::MAX)) as i32);
    }
    response
}
