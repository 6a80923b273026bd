//! Client quotas on one shard's Kafka listener: measuring each request of
//! a client with a quota, and throttling it as Kafka does (KIP-219).
//!
//! Owns: measuring, in the shard's quota windows
//! (`sluice_shard::shard::client_quotas`),
//! a Produce request's bytes against `producer_byte_rate`, a Fetch
//! response's record bytes against `consumer_byte_rate`, and the time the shard spent handling any request
//! (the time inside its polls, so not its waits) against
//! `request_percentage` — and how the throttle reaches the client: the
//! response carries it in `throttle_time_ms`, and the connection reads
//! nothing more from the client until it has passed (a client that ignores
//! the field is held back all the same). A throttled Fetch is answered
//! without records, its bytes taken back out of the window, and a
//! consumer's Fetch asks for at most its quota's worth of the window
//! ([`fetch_max_bytes`]), as Kafka answers them.
//!
//! Also the controller mutation quota of CreateTopics, CreatePartitions and
//! DeleteTopics ([`MutationQuota`], KIP-599): each topic's partitions are
//! taken from the client's bucket, a topic refused with
//! THROTTLING_QUOTA_EXCEEDED when the bucket is exhausted (strict
//! versions), and the throttle reaches the client the same way.
//!
//! Quotas are per broker, as in Kafka: each shard measures the connections
//! it serves in windows that also count what the other shards measured
//! (`sluice_shard::shard::client_quotas` shares it). Without any quota in
//! the metadata nothing is measured.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use kafka_protocol::messages::{ApiKey, ResponseKind};
use sluice_core::mutation_quota::Taken;
use sluice_core::quota::{
    any_client_quota, resolve, QuotaType, ANONYMOUS_USER, CONSUMER_BYTE_RATE, SAMPLE_MS,
    WINDOW_SAMPLES,
};
use sluice_core::ErrorCode;
use sluice_shard::ShardCounters;

use super::context::Context;

/// Nanoseconds of handler time per percent-second (Kafka records request
/// time as a percentage of one thread's second).
const NANOS_PER_PERCENT_SECOND: f64 = 1e7;

/// A request being measured: whose it is, and what it cost so far.
pub struct Metered {
    client_id: String,
    api_key: ApiKey,
    request_bytes: usize,
}

/// Starts measuring a request when any client quota exists; `None` means
/// the request is not measured (the common case, at no cost).
pub fn meter(
    ctx: &Context,
    api_key: ApiKey,
    client_id: Option<&str>,
    request_bytes: usize,
) -> Option<Metered> {
    if !any_client_quota(&ctx.shard.metadata().client_quotas) {
        return None;
    }
    Some(Metered {
        client_id: client_id.unwrap_or_default().to_owned(),
        api_key,
        request_bytes,
    })
}

impl Metered {
    /// Records the request once handled (`handler_time` spent in its
    /// polls), sets the throttle in `response` (emptying a throttled
    /// Fetch's), and answers the throttle in milliseconds.
    pub fn finish(
        self,
        ctx: &Context,
        handler_time: Duration,
        response: Option<&mut ResponseKind>,
    ) -> u64 {
        let metadata = ctx.shard.metadata();
        let quotas = &metadata.client_quotas;
        let now_ms = ctx.shard.env().monotonic_ms();
        let tracker = &ctx.shard.client_quotas;
        let record = |kind, value| {
            tracker.record(quotas, kind, ANONYMOUS_USER, &self.client_id, value, now_ms)
        };
        let percent_seconds = handler_time.as_nanos() as f64 / NANOS_PER_PERCENT_SECOND;
        let request_throttle = record(QuotaType::Request, percent_seconds);
        let bandwidth_throttle = match (self.api_key, &response) {
            (ApiKey::Produce, _) => record(QuotaType::Produce, self.request_bytes as f64),
            (ApiKey::Fetch, Some(ResponseKind::Fetch(fetch))) => {
                let bytes = fetch_record_bytes(fetch) as f64;
                let throttle = record(QuotaType::Fetch, bytes);
                if throttle > 0 || request_throttle > 0 {
                    // Not sent, so not counted (Kafka "unrecords" it).
                    record(QuotaType::Fetch, -bytes);
                }
                throttle
            }
            _ => 0,
        };
        // A handler's own throttle (a controller mutation quota's) counts too.
        let handler_throttle = response.as_deref().map_or(0, mutation_throttle_ms);
        // At most what the response field carries (24 days).
        let throttle_ms = request_throttle
            .max(bandwidth_throttle)
            .max(handler_throttle)
            .min(i32::MAX as u64);
        if throttle_ms > 0 {
            let counters = &ctx.shard.counters;
            ShardCounters::bump(&counters.throttled_requests);
            counters
                .throttle_time_ms
                .set(counters.throttle_time_ms.get().saturating_add(throttle_ms));
            if let Some(response) = response {
                set_throttle_time(response, throttle_ms);
            }
        }
        throttle_ms
    }
}

/// The throttle a topic-changing handler set in its response (its
/// controller mutation quota's); 0 for other responses.
fn mutation_throttle_ms(response: &ResponseKind) -> u64 {
    let ms = match response {
        ResponseKind::CreateTopics(r) => r.throttle_time_ms,
        ResponseKind::CreatePartitions(r) => r.throttle_time_ms,
        ResponseKind::DeleteTopics(r) => r.throttle_time_ms,
        _ => 0,
    };
    u64::try_from(ms).unwrap_or(0)
}

/// Kafka's message for THROTTLING_QUOTA_EXCEEDED.
pub const THROTTLED_MESSAGE: &str = "The throttling quota has been exceeded.";

/// One request's controller mutation quota (`controller_mutation_rate`):
/// the partitions each of its topics creates or deletes are taken from the
/// client's bucket ([`sluice_core::mutation_quota`]), after the topic's own
/// checks and before the change is proposed, as Kafka's controller takes
/// them.
pub struct MutationQuota {
    client_id: String,
    /// Strict (refuses when exhausted) from the version given; permissive
    /// (only throttles) below it.
    strict: bool,
    /// Set once a topic was refused: every later topic of the request is
    /// refused too, as Kafka's strict quota does.
    refused: bool,
    throttle_ms: u64,
}

impl MutationQuota {
    /// The quota of a request of `version` from `client_id`, strict from
    /// `strict_since` (CreateTopics 6, DeleteTopics 5, CreatePartitions 3).
    pub fn new(client_id: Option<&str>, version: i16, strict_since: i16) -> MutationQuota {
        MutationQuota {
            client_id: client_id.unwrap_or_default().to_owned(),
            strict: version >= strict_since,
            refused: false,
            throttle_ms: 0,
        }
    }

    /// Takes `partitions` for one topic; `Err` is the topic's answer when
    /// the quota refuses it.
    pub fn take(&mut self, ctx: &Context, partitions: i32) -> Result<(), (ErrorCode, String)> {
        let refusal = || {
            (
                ErrorCode::ThrottlingQuotaExceeded,
                THROTTLED_MESSAGE.to_owned(),
            )
        };
        if self.refused {
            return Err(refusal());
        }
        let metadata = ctx.shard.metadata();
        if metadata.client_quotas.is_empty() {
            return Ok(());
        }
        let now_ms = ctx.shard.env().monotonic_ms();
        let taken = ctx.shard.client_quotas.take_mutation(
            &metadata.client_quotas,
            ANONYMOUS_USER,
            &self.client_id,
            f64::from(partitions.max(0)),
            self.strict,
            now_ms,
        );
        match taken {
            Taken::Unlimited => Ok(()),
            Taken::Accepted { throttle_ms } => {
                self.throttle_ms = self.throttle_ms.max(throttle_ms);
                Ok(())
            }
            Taken::Refused { throttle_ms } => {
                self.refused = true;
                self.throttle_ms = self.throttle_ms.max(throttle_ms);
                tracing::debug!(
                    client_id = self.client_id,
                    partitions,
                    throttle_ms,
                    "a topic change refused by the controller mutation quota"
                );
                Err(refusal())
            }
        }
    }

    /// Returns what [`MutationQuota::take`] took for a topic the change was
    /// then refused for another reason (Kafka checks the quota last).
    pub fn give_back(&self, ctx: &Context, partitions: i32) {
        let metadata = ctx.shard.metadata();
        if metadata.client_quotas.is_empty() {
            return;
        }
        let now_ms = ctx.shard.env().monotonic_ms();
        ctx.shard.client_quotas.give_back_mutation(
            &metadata.client_quotas,
            ANONYMOUS_USER,
            &self.client_id,
            f64::from(partitions.max(0)),
            now_ms,
        );
    }

    /// The response's `throttle_time_ms`: how long the client must wait
    /// (0 unless refused, or throttled by a permissive version).
    pub fn throttle_time_ms(&self) -> i32 {
        i32::try_from(self.throttle_ms).unwrap_or(i32::MAX)
    }
}

/// The most a consumer with a `consumer_byte_rate` quota may fetch at
/// once: its quota for all the window's samples but one (Kafka's limit),
/// or `None` without a quota.
pub fn fetch_max_bytes(ctx: &Context, client_id: Option<&str>) -> Option<i32> {
    let metadata = ctx.shard.metadata();
    if metadata.client_quotas.is_empty() {
        return None;
    }
    let (_, quota) = resolve(
        &metadata.client_quotas,
        ANONYMOUS_USER,
        client_id.unwrap_or_default(),
        CONSUMER_BYTE_RATE,
    )?;
    let window_s = (WINDOW_SAMPLES as u64 - 1) * SAMPLE_MS / 1000;
    // A float past i32 saturates.
    Some((quota * window_s as f64) as i32)
}

/// Record bytes in a Fetch response.
fn fetch_record_bytes(fetch: &kafka_protocol::messages::FetchResponse) -> usize {
    fetch
        .responses
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| p.records.as_ref().map_or(0, |r| r.len()))
        .sum()
}

/// Sets `throttle_time_ms` on a response whose API has one (older
/// versions without the field do not encode it); a throttled Fetch loses
/// its records, as Kafka answers one.
fn set_throttle_time(response: &mut ResponseKind, throttle_ms: u64) {
    let ms = i32::try_from(throttle_ms).unwrap_or(i32::MAX);
    macro_rules! set {
        ($($api:ident),+ $(,)?) => {
            match response {
                $(ResponseKind::$api(r) => r.throttle_time_ms = ms,)+
                _ => {}
            }
        };
    }
    if let ResponseKind::Fetch(fetch) = response {
        fetch.responses.clear();
    }
    set!(
        Produce,
        Fetch,
        ListOffsets,
        Metadata,
        OffsetCommit,
        OffsetFetch,
        FindCoordinator,
        JoinGroup,
        Heartbeat,
        LeaveGroup,
        SyncGroup,
        DescribeGroups,
        ListGroups,
        ApiVersions,
        CreateTopics,
        DeleteTopics,
        DeleteRecords,
        InitProducerId,
        AddPartitionsToTxn,
        AddOffsetsToTxn,
        EndTxn,
        TxnOffsetCommit,
        DescribeTransactions,
        ListTransactions,
        DescribeProducers,
        OffsetForLeaderEpoch,
        DescribeAcls,
        CreateAcls,
        DeleteAcls,
        DescribeConfigs,
        AlterConfigs,
        DescribeLogDirs,
        CreatePartitions,
        DeleteGroups,
        ElectLeaders,
        IncrementalAlterConfigs,
        AlterPartitionReassignments,
        ListPartitionReassignments,
        OffsetDelete,
        DescribeClientQuotas,
        AlterClientQuotas,
        DescribeCluster,
        DescribeTopicPartitions,
        ConsumerGroupHeartbeat,
        ConsumerGroupDescribe,
        UpdateFeatures,
        DescribeUserScramCredentials,
    );
}

/// `future`, with the time spent inside its polls added up: the shard's
/// own work on the request, not the time it waited.
pub struct TimedPolls<F> {
    future: F,
    spent: Duration,
}

impl<F> TimedPolls<F> {
    pub fn new(future: F) -> TimedPolls<F> {
        TimedPolls {
            future,
            spent: Duration::ZERO,
        }
    }
}

impl<F: Future + Unpin> Future for TimedPolls<F> {
    type Output = (F::Output, Duration);

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let start = Instant::now();
        let polled = Pin::new(&mut self.future).poll(cx);
        self.spent += start.elapsed();
        polled.map(|output| (output, self.spent))
    }
}
