//! What every handler of one shard needs: the shard, who this broker says
//! it is, and the listener's counters.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;

use kafka_protocol::protocol::StrBytes;
use sluice_core::replication::throttle::Throttle;
use sluice_shard::Shard;

use super::server::parse_addr;
use super::share_sessions::ShareSessions;

/// Per-shard handler context.
pub struct Context {
    pub shard: Rc<Shard>,
    pub bind_addr: SocketAddr,
    /// Host and port clients are told to connect to.
    pub advertised_host: StrBytes,
    pub advertised_port: i32,
    pub node_id: i32,
    pub cluster_id: StrBytes,
    /// This shard's share of the broker's leader replication throttle
    /// (`leader.replication.throttled.rate`), spent by followers' fetches
    /// of throttled replicas served here.
    pub leader_throttle: RefCell<Throttle>,
    /// The share sessions of this shard's connections
    /// ([`super::share_sessions`]), at most this shard's part of
    /// `group.share.max.share.sessions`.
    pub share_sessions: RefCell<ShareSessions>,
}

/// File in the data directory holding the cluster id, made at first start.
pub const CLUSTER_ID_FILE: &str = "cluster_id";

impl Context {
    pub fn new(shard: Rc<Shard>) -> Result<Context, String> {
        let config = &shard.config;
        let max_share_sessions = (config.group.share_max_share_sessions.max(1) as usize)
            .div_ceil(shard.shards.max(1) as usize);
        let bind_addr = parse_addr(&config.kafka_addr)?;
        let (host, port) = config.advertised_kafka()?;
        let cluster_id = std::fs::read_to_string(config.data_dir.join(CLUSTER_ID_FILE))
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "sluice".to_owned());
        Ok(Context {
            node_id: config.node_id,
            advertised_host: StrBytes::from_string(host),
            advertised_port: port,
            cluster_id: StrBytes::from_string(cluster_id),
            bind_addr,
            shard,
            leader_throttle: RefCell::new(Throttle::new(u64::MAX, 0)),
            share_sessions: RefCell::new(ShareSessions::new(
                max_share_sessions,
                super::handlers::shares::SESSION_IDLE_MS,
            )),
        })
    }
}
