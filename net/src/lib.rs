//! sluice-net: the Kafka wire protocol server (issue #3).
//!
//! Will own: framing, ApiVersions negotiation, one handler module per API,
//! and the admin HTTP endpoint. Empty until the Kafka API server lands.
