//! sluice-net: the Kafka wire protocol server.
//!
//! Owns: the per-shard Kafka listener ([`kafka::server`]), the registry of
//! supported APIs from which both dispatch and ApiVersions are derived
//! ([`kafka::registry`]), and one handler module per API
//! ([`kafka::handlers`]). The kafka-protocol crate decodes and encodes the
//! envelopes; record bytes stay one `Bytes` from socket to log and back.

pub mod admin;
pub mod kafka;

use std::rc::Rc;
use std::sync::Arc;

pub use kafka::connection_limits::ConnectionLimits;
use sluice_shard::{Notify, Shard};

/// Everything a shard serves: the Kafka listener on every shard, and the
/// admin endpoint on shard 0. `limits` are the node's connection limits,
/// shared by every shard.
pub async fn serve(
    shard: Rc<Shard>,
    stop: Rc<Notify>,
    limits: Arc<ConnectionLimits>,
) -> Result<(), String> {
    if shard.id == 0 {
        let listener = admin::bind(&shard)?;
        let admin = glommio::spawn_local(admin::serve(
            shard.clone(),
            listener,
            stop.clone(),
            limits.clone(),
        ));
        let result = kafka::server::serve(shard, stop.clone(), limits).await;
        // The Kafka listener may have failed without a stop; end admin too.
        stop.close();
        admin.await;
        result
    } else {
        kafka::server::serve(shard, stop, limits).await
    }
}
