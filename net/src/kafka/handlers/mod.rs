//! One module per Kafka API, each with its handler type, and the one shape
//! every handler has: a [`Handler`], called with a [`Call`] and its API's
//! request, answering an [`Outcome`].
//!
//! A handler type carries its API's key, name and versions; the registry
//! ([`super::registry`]) is the list of handler types, and dispatch and
//! ApiVersions are generated from it, so nothing here routes requests. A
//! handler is only called with a request the server accepted against that
//! list: a listed API, at a version within its handler's range.
//!
//! The outcome tells the connection when it may read its next request:
//! after writing an [`Outcome::Answer`], or at once for a request it may
//! pipeline ([`Outcome::Pipelined`], [`Outcome::Pending`]: Produce, whose
//! answer is small and whose sync is worth overlapping with the next
//! request's append).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestHeader};

use super::context::Context;

pub mod acls;
pub mod add_offsets_to_txn;
pub mod add_partitions_to_txn;
pub mod alter_client_quotas;
pub mod alter_configs;
pub mod alter_partition_reassignments;
pub mod api_versions;
pub mod configs;
pub mod consumer_group_describe;
pub mod consumer_group_heartbeat;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_client_quotas;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_log_dirs;
pub mod describe_producers;
pub mod describe_quorum;
pub mod describe_share_group_offsets;
pub mod describe_topic_partitions;
pub mod describe_transactions;
pub mod describe_user_scram_credentials;
pub mod elect_leaders;
pub mod end_txn;
pub mod fetch;
pub mod find_coordinator;
pub mod frame_records;
pub mod groups;
pub mod heartbeat;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod list_partition_reassignments;
pub mod list_transactions;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod owners;
pub mod produce;
pub mod share_acknowledge;
pub mod share_fetch;
pub mod share_group_describe;
pub mod share_group_heartbeat;
pub mod share_group_offsets;
pub mod share_group_state;
pub mod share_peers;
pub mod shares;
pub mod sync_group;
pub mod topics;
pub mod txn_offset_commit;
pub mod txns;
pub mod update_features;
pub mod write_txn_markers;

/// A Kafka API's handler: what it serves and how. One type per API, in the
/// API's module (`FetchHandler` in `fetch.rs`); the registry lists them.
///
/// Its request and response types are checked against the API's
/// `RequestKind` and `ResponseKind` variants where the registry dispatches
/// to it; its key, against the registry's entry by the registry's tests.
// One shard, one thread: handler futures need not be `Send`.
#[allow(async_fn_in_trait)]
pub trait Handler {
    /// The API, as Kafka numbers it.
    const KEY: ApiKey;
    /// The API's name, as `ApiKey` spells it.
    const NAME: &'static str;
    /// The oldest version served.
    const MIN_VERSION: i16;
    /// The newest version served (inclusive).
    const MAX_VERSION: i16;
    /// The API's request, as `RequestKind` holds it.
    type Request;
    /// The API's response, as `ResponseKind` holds it.
    type Response;

    /// Handles `request`, whose version (`call.version`) is within
    /// `MIN_VERSION..=MAX_VERSION`.
    async fn handle(call: Call<'_>, request: Self::Request) -> Outcome<Self::Response>;
}

/// What every handler is called with, besides its request.
pub struct Call<'a> {
    /// The shard's handler context.
    pub ctx: &'a Rc<Context>,
    /// The request's header, owned: its client id is a slice of the
    /// request frame, so a handler that hands slices of the frame on to be
    /// taken without a copy (Produce's records) drops it first.
    pub header: RequestHeader,
    /// The whole request frame the header and request were decoded from
    /// (they hold slices of it). Produce cuts its records out of it
    /// ([`frame_records`]); other handlers let it go.
    pub frame: Bytes,
    /// The request's API version (the header's), within its handler's
    /// range (`Handler::MIN_VERSION..=Handler::MAX_VERSION`).
    pub version: i16,
    /// The client's address, when the socket knows it.
    pub peer: Option<SocketAddr>,
}

/// An answer still to come: `None` when the request gets none (acks=0).
/// It owns what it needs (`'static`), because the connection detaches it so
/// that it completes even if the client goes away meanwhile.
pub type PendingResponse<R> = Pin<Box<dyn Future<Output = Option<R>>>>;

/// A handler's answer, and when its connection may read the next request.
pub enum Outcome<R> {
    /// The response. The connection writes it before it reads its next
    /// request, so a connection holds at most one such unwritten answer
    /// (one Fetch response of at most `fetch.max.bytes` for a consumer that
    /// stops reading its socket).
    Answer(R),
    /// The response, or `None` when the request gets none (acks=0), to a
    /// request whose answer may queue: the connection reads its next
    /// request without waiting for this one to be written.
    Pipelined(Option<R>),
    /// Like [`Outcome::Pipelined`], but the response is still to come (a
    /// Produce waiting for its records to be durable); the connection
    /// reads and handles its next requests meanwhile and answers in order.
    Pending(PendingResponse<R>),
}

impl<R: 'static> Outcome<R> {
    /// The same outcome with its response mapped by `f` (the registry wraps
    /// each API's response in its `ResponseKind`).
    pub fn map<T, F>(self, f: F) -> Outcome<T>
    where
        T: 'static,
        F: FnOnce(R) -> T + 'static,
    {
        match self {
            Outcome::Answer(response) => Outcome::Answer(f(response)),
            Outcome::Pipelined(response) => Outcome::Pipelined(response.map(f)),
            // One more small allocation, for a request that waits for an
            // fdatasync anyway.
            Outcome::Pending(response) => {
                Outcome::Pending(Box::pin(async move { response.await.map(f) }))
            }
        }
    }
}
