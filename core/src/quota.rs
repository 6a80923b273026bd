//! Client quotas (Kafka's KIP-13, KIP-55 and KIP-124): what a quota is,
//! which one applies to a request, and how much a client that went over
//! it is throttled.
//!
//! Owns: the quota entities (a user, a client id, or both; each named or
//! the default) and their keys and checks ([`check_quota`]), how a
//! request's user and client id find their quota in Kafka's order of
//! precedence ([`resolve`]), a rate over a sliding window of samples
//! ([`RateWindow`], Kafka's `Rate` over `quota.window.num` samples of
//! `quota.window.size.seconds`), the per-shard set of those windows
//! ([`QuotaTracker`]; what other shards measured is recorded in them too,
//! [`crate::quota_share`]), and the bounded per-client map it and the
//! controller mutation quota keep their state in ([`Sensors`]). Pure: the
//! time is an argument.
//!
//! Invariants: a value stored for a key passed [`check_quota`]; a
//! [`Sensors`] holds at most its `max` entries (the least recently used
//! one goes first) and forgets an entry idle for [`SENSOR_IDLE_MS`]; a
//! request-quota throttle is never above [`MAX_REQUEST_THROTTLE_MS`].

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::quota_share::{ShareNeed, SharedUsage, UnsharedUsage};

/// Bytes per second a client may produce (a whole number).
pub const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
/// Bytes per second a client may fetch (a whole number).
pub const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";
/// Percent of one request handler's time per second the client may use.
pub const REQUEST_PERCENTAGE: &str = "request_percentage";
/// Partitions per second the client may create or delete (KIP-599; see
/// [`crate::mutation_quota`]).
pub const CONTROLLER_MUTATION_RATE: &str = "controller_mutation_rate";
/// Connections per second an IP address may open (KIP-612; a whole
/// number within an int).
pub const CONNECTION_CREATION_RATE: &str = "connection_creation_rate";

/// Kafka's entity type names.
pub const ENTITY_USER: &str = "user";
pub const ENTITY_CLIENT_ID: &str = "client-id";
pub const ENTITY_IP: &str = "ip";

/// The principal of a connection without authentication, as Kafka names
/// it (the user entity `ANONYMOUS` applies to every client here).
pub const ANONYMOUS_USER: &str = "ANONYMOUS";

/// The quota keys of IP entities.
pub const IP_QUOTA_KEYS: &[&str] = &[CONNECTION_CREATION_RATE];

/// The longest a connection over its IP's `connection_creation_rate` is
/// held before it is closed (one sample, as Kafka bounds it).
pub const MAX_CONNECTION_THROTTLE_MS: u64 = SAMPLE_MS;

/// The quota keys of user and client-id entities, and whether each is a
/// whole number (Kafka's LONG) or not (DOUBLE).
pub const QUOTA_KEYS: &[(&str, bool)] = &[
    (PRODUCER_BYTE_RATE, true),
    (CONSUMER_BYTE_RATE, true),
    (REQUEST_PERCENTAGE, false),
    (CONTROLLER_MUTATION_RATE, false),
];

/// Samples in a quota's window (Kafka's `quota.window.num` default).
pub const WINDOW_SAMPLES: usize = 11;
/// Length of one sample (Kafka's `quota.window.size.seconds` default).
pub const SAMPLE_MS: u64 = 1_000;
/// The longest throttle a request quota gives (one sample, as Kafka caps
/// it); byte-rate throttles are not capped, as in Kafka.
pub const MAX_REQUEST_THROTTLE_MS: u64 = SAMPLE_MS;
/// A window without a record this long is forgotten (Kafka expires quota
/// sensors after an hour of inactivity).
pub const SENSOR_IDLE_MS: u64 = 3_600_000;

/// An entity's name: a named user or client id, or the default that
/// applies to every one without a quota of its own.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EntityName {
    Default,
    Named(String),
}

impl EntityName {
    /// The wire form: the name, or null for the default.
    pub fn as_wire(&self) -> Option<&str> {
        match self {
            EntityName::Default => None,
            EntityName::Named(n) => Some(n),
        }
    }
}

/// What a quota applies to: a user, a client id, a user's client id, or
/// an IP address (alone: an IP entity has no other part). At least one
/// part is set. An IP entity sorts before every other (its user and
/// client id are none), which [`resolve`]'s search relies on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QuotaEntity {
    pub user: Option<EntityName>,
    pub client_id: Option<EntityName>,
    /// Absent in metadata written before IP quotas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<EntityName>,
}

impl QuotaEntity {
    /// The entity of wire parts (type, name or null for the default).
    /// `Err` is Kafka's INVALID_REQUEST message.
    pub fn from_parts<'a>(
        parts: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) -> Result<QuotaEntity, String> {
        let mut entity = QuotaEntity {
            user: None,
            client_id: None,
            ip: None,
        };
        let mut empty = true;
        for (kind, name) in parts {
            empty = false;
            let slot = match kind {
                ENTITY_USER => &mut entity.user,
                ENTITY_CLIENT_ID => &mut entity.client_id,
                ENTITY_IP => &mut entity.ip,
                other => return Err(format!("Unhandled client quota entity type: {other}")),
            };
            if name == Some("") {
                return Err(format!("Empty {kind} not supported"));
            }
            let name = name.map_or(EntityName::Default, |n| EntityName::Named(n.to_owned()));
            if slot.replace(name).is_some() {
                return Err(format!("Duplicate {kind} entity in the quota entity"));
            }
        }
        if empty {
            return Err("Invalid empty client quota entity".into());
        }
        if let Some(ip) = &entity.ip {
            if entity.user.is_some() || entity.client_id.is_some() {
                // Kafka's message, its missing space included.
                return Err("Invalid quota entity combination, IP entity shouldnot be combined with User or ClientId".into());
            }
            if let EntityName::Named(name) = ip {
                // Kafka also takes a host name it can resolve; an address
                // only here (no name lookups on a shard's thread).
                if name.parse::<IpAddr>().is_err() {
                    return Err(format!("{name} is not a valid IP or resolvable host."));
                }
            }
        }
        Ok(entity)
    }

    /// Whether this is an IP entity.
    pub fn is_ip(&self) -> bool {
        self.ip.is_some()
    }

    /// The wire parts, user first.
    pub fn parts(&self) -> impl Iterator<Item = (&'static str, Option<&str>)> {
        let user = self.user.as_ref().map(|n| (ENTITY_USER, n.as_wire()));
        let client = self
            .client_id
            .as_ref()
            .map(|n| (ENTITY_CLIENT_ID, n.as_wire()));
        let ip = self.ip.as_ref().map(|n| (ENTITY_IP, n.as_wire()));
        user.into_iter().chain(client).chain(ip)
    }

    /// The part of the given type, if the entity has one.
    pub fn part(&self, kind: &str) -> Option<&EntityName> {
        match kind {
            ENTITY_USER => self.user.as_ref(),
            ENTITY_CLIENT_ID => self.client_id.as_ref(),
            ENTITY_IP => self.ip.as_ref(),
            _ => None,
        }
    }
}

impl std::fmt::Display for QuotaEntity {
    /// Kafka's `ClientQuotaEntity(entries={user=u, client-id=c})`, a
    /// default's name `null`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .parts()
            .map(|(kind, name)| format!("{kind}={}", name.unwrap_or("null")))
            .collect();
        write!(f, "ClientQuotaEntity(entries={{{}}})", parts.join(", "))
    }
}

/// A quota value. Compared by its bits, so a metadata command holding one
/// is `Eq` (values are checked finite when set).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct QuotaValue(pub f64);

impl PartialEq for QuotaValue {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for QuotaValue {}

/// An entity's quotas, by key.
pub type QuotaValues = BTreeMap<String, QuotaValue>;

/// One entity and its quotas, as the metadata keeps them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientQuota {
    pub entity: QuotaEntity,
    pub values: QuotaValues,
}

/// A change to one key: the new value, or `None` to remove it.
pub type QuotaChange = (String, Option<f64>);

/// Checks a change to `key` of `entity` as Kafka does, in Kafka's order
/// (a key its type of entity has, a finite value, above zero, within a
/// long, or an int for an IP's, whole to a millionth); `Err` is the
/// INVALID_REQUEST message.
pub fn check_quota(entity: &QuotaEntity, key: &str, value: Option<f64>) -> Result<(), String> {
    let known = if entity.is_ip() {
        IP_QUOTA_KEYS.contains(&key).then_some(true)
    } else {
        QUOTA_KEYS
            .iter()
            .find(|(k, _)| *k == key)
            .map(|&(_, whole)| whole)
    };
    let Some(whole) = known else {
        return Err(format!("Invalid configuration key {key}"));
    };
    let Some(value) = value else { return Ok(()) };
    if !value.is_finite() {
        return Err(format!("Quota {key} must be a finite number"));
    }
    if value <= 0.0 {
        return Err(format!("Quota {key} must be greater than 0"));
    }
    if entity.is_ip() && value > i32::MAX as f64 {
        return Err(format!("Proposed value for {key} is too large for an INT."));
    }
    if whole && value > i64::MAX as f64 {
        return Err(format!("Proposed value for {key} is too large for a LONG."));
    }
    if whole && (value - value.round()).abs() > 1e-6 {
        return Err(format!("{key} cannot be a fractional value."));
    }
    Ok(())
}

/// `current` with `changes` applied.
pub fn altered(current: &QuotaValues, changes: &[QuotaChange]) -> QuotaValues {
    let mut next = current.clone();
    for (key, value) in changes {
        match value {
            Some(v) => next.insert(key.clone(), QuotaValue(*v)),
            None => next.remove(key),
        };
    }
    next
}

impl crate::metadata::MetadataState {
    /// `entity`'s quotas, if it has any.
    pub fn client_quota(&self, entity: &QuotaEntity) -> Option<&QuotaValues> {
        self.client_quotas
            .binary_search_by(|q| q.entity.cmp(entity))
            .ok()
            .map(|i| &self.client_quotas[i].values)
    }

    /// Sets an entity's quotas (none removes the entity), keeping the list
    /// ordered by entity.
    pub fn set_client_quota(&mut self, quota: &ClientQuota) {
        let at = self
            .client_quotas
            .binary_search_by(|q| q.entity.cmp(&quota.entity));
        match (at, quota.values.is_empty()) {
            (Ok(i), true) => {
                self.client_quotas.remove(i);
            }
            (Ok(i), false) => self.client_quotas[i].values = quota.values.clone(),
            (Err(_), true) => {}
            (Err(i), false) => self.client_quotas.insert(i, quota.clone()),
        }
    }
}

/// Which of Kafka's quotas a request is measured against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QuotaType {
    /// Produce request bytes, against `producer_byte_rate`.
    Produce,
    /// Fetch response bytes, against `consumer_byte_rate`.
    Fetch,
    /// Handler time, against `request_percentage`.
    Request,
    /// Partitions created or deleted, against `controller_mutation_rate`
    /// (a token bucket, [`crate::mutation_quota`], not a window).
    Mutation,
}

impl QuotaType {
    /// The quota key this type is measured against.
    pub fn key(self) -> &'static str {
        match self {
            QuotaType::Produce => PRODUCER_BYTE_RATE,
            QuotaType::Fetch => CONSUMER_BYTE_RATE,
            QuotaType::Request => REQUEST_PERCENTAGE,
            QuotaType::Mutation => CONTROLLER_MUTATION_RATE,
        }
    }
}

/// Whose usage a window counts: the user and client id the quota's entity
/// names (empty where the entity has no such part), so every client of a
/// user-level quota shares one window, and a default quota gives each user
/// or client id a window of its own, as Kafka's metric tags do.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SensorKey {
    pub user: String,
    pub client_id: String,
}

/// The quota on `key` for a request of `user` and `client_id`, in Kafka's
/// order of precedence (a user's client id, the user's default client,
/// the user, the default user's client id, the default user's default
/// client, the default user, the client id, the default client), and whose
/// usage it counts. `quotas` is sorted by entity, as the metadata keeps it:
/// each candidate is a binary search, with no allocation until one wins.
pub fn resolve(
    quotas: &[ClientQuota],
    user: &str,
    client_id: &str,
    key: &str,
) -> Option<(SensorKey, f64)> {
    let (u, c) = (Some(Some(user)), Some(Some(client_id)));
    let order = [
        (u, c),
        (u, Some(None)),
        (u, None),
        (Some(None), c),
        (Some(None), Some(None)),
        (Some(None), None),
        (None, c),
        (None, Some(None)),
    ];
    order.into_iter().find_map(|(u, c)| {
        let at = quotas
            .binary_search_by(|q| cmp_entity(&q.entity, u, c))
            .ok()?;
        let value = quotas[at].values.get(key)?.0;
        let sensor = SensorKey {
            user: u.map(|_| user.to_owned()).unwrap_or_default(),
            client_id: c.map(|_| client_id.to_owned()).unwrap_or_default(),
        };
        Some((sensor, value))
    })
}

/// Whether any user or client-id quota exists (IP entities, which sort
/// first, do not count): without one, no request needs measuring.
pub fn any_client_quota(quotas: &[ClientQuota]) -> bool {
    quotas.last().is_some_and(|q| !q.entity.is_ip())
}

/// The `connection_creation_rate` of `ip`: its own entity's, else the
/// default IP entity's; `None` without either.
pub fn resolve_ip(quotas: &[ClientQuota], ip: IpAddr) -> Option<f64> {
    let ip = ip.to_canonical();
    // IP entities sort first (see [`QuotaEntity`]).
    let ip_quotas = quotas.iter().take_while(|q| q.entity.is_ip());
    let mut default = None;
    for q in ip_quotas {
        let Some(value) = q.values.get(CONNECTION_CREATION_RATE) else {
            continue;
        };
        match &q.entity.ip {
            Some(EntityName::Named(name))
                if name.parse::<IpAddr>().is_ok_and(|n| n.to_canonical() == ip) =>
            {
                return Some(value.0)
            }
            Some(EntityName::Default) => default = Some(value.0),
            _ => {}
        }
    }
    default
}

/// Orders `entity` against one given by borrowed parts (`None`: no such
/// part; `Some(None)`: the default; `Some(Some(name))`), as the derived
/// `Ord` of [`QuotaEntity`] orders entities.
fn cmp_entity(
    entity: &QuotaEntity,
    user: Option<Option<&str>>,
    client_id: Option<Option<&str>>,
) -> std::cmp::Ordering {
    use std::cmp::Ordering::{Equal, Greater, Less};
    fn part(a: &Option<EntityName>, b: Option<Option<&str>>) -> std::cmp::Ordering {
        match (a, b) {
            (None, None) => Equal,
            (None, Some(_)) => Less,
            (Some(_), None) => Greater,
            (Some(EntityName::Default), Some(None)) => Equal,
            (Some(EntityName::Default), Some(Some(_))) => Less,
            (Some(EntityName::Named(_)), Some(None)) => Greater,
            (Some(EntityName::Named(n)), Some(Some(m))) => n.as_str().cmp(m),
        }
    }
    part(&entity.user, user).then_with(|| part(&entity.client_id, client_id))
}

/// A rate over the last [`WINDOW_SAMPLES`] samples of [`SAMPLE_MS`] each,
/// measured as Kafka's `Rate` measures it: the sum of the live samples over
/// the time they span, that span never counted as less than all samples
/// but one (so a new client is not throttled on its first request).
#[derive(Debug, Clone)]
pub struct RateWindow {
    /// Each sample's start and total; a sample starts when the one before
    /// it is full.
    samples: [(u64, f64); WINDOW_SAMPLES],
    /// Index of the sample being filled.
    current: usize,
    /// When the window last recorded (for idle expiry).
    last_record_ms: u64,
}

impl RateWindow {
    /// A window whose first sample starts at `now_ms`.
    pub fn new(now_ms: u64) -> RateWindow {
        RateWindow {
            samples: [(now_ms, 0.0); WINDOW_SAMPLES],
            current: 0,
            last_record_ms: now_ms,
        }
    }

    /// Adds `value` at `now_ms`.
    pub fn record(&mut self, value: f64, now_ms: u64) {
        let (start, _) = self.samples[self.current];
        if now_ms >= start + SAMPLE_MS {
            self.current = (self.current + 1) % WINDOW_SAMPLES;
            self.samples[self.current] = (now_ms, 0.0);
        }
        self.samples[self.current].1 += value;
        self.last_record_ms = self.last_record_ms.max(now_ms);
    }

    /// The rate per second at `now_ms`, and the span (ms) it was measured
    /// over.
    pub fn rate(&self, now_ms: u64) -> (f64, u64) {
        let horizon = now_ms.saturating_sub(WINDOW_SAMPLES as u64 * SAMPLE_MS);
        let live = self.samples.iter().filter(|(start, _)| *start >= horizon);
        let (oldest, total) = live.fold((now_ms, 0.0), |(oldest, total), (start, v)| {
            (oldest.min(*start), total + v)
        });
        let mut span_ms = now_ms.saturating_sub(oldest);
        let full = span_ms / SAMPLE_MS;
        let min_full = WINDOW_SAMPLES as u64 - 1;
        if full < min_full {
            span_ms += (min_full - full) * SAMPLE_MS;
        }
        (total * 1000.0 / span_ms as f64, span_ms)
    }

    /// How long a client whose usage this window counts must wait, after
    /// recording, to be back at `quota` per second: Kafka's
    /// `(rate - quota) / quota * span`.
    pub fn throttle_ms(&self, quota: f64, now_ms: u64) -> u64 {
        let (rate, span_ms) = self.rate(now_ms);
        if rate <= quota || quota <= 0.0 {
            return 0;
        }
        // A float past u64 saturates.
        ((rate - quota) / quota * span_ms as f64).round() as u64
    }
}

impl LastUsed for RateWindow {
    fn last_used_ms(&self) -> u64 {
        self.last_record_ms
    }
}

/// When a [`Sensors`] entry was last used, for its bounds.
pub trait LastUsed {
    fn last_used_ms(&self) -> u64;
}

/// One shard's per-client quota state, by whose usage it counts: at most
/// `max` entries (a new one past that evicts the least recently used, ties
/// by key), and one idle for [`SENSOR_IDLE_MS`] forgotten (swept at most
/// once a minute), as Kafka expires its quota sensors.
#[derive(Debug)]
pub struct Sensors<K, V> {
    entries: HashMap<K, V>,
    max: usize,
    last_sweep_ms: u64,
}

impl<K: Eq + Hash + Ord + Clone, V: LastUsed> Sensors<K, V> {
    /// A map of at most `max` entries (at least one).
    pub fn new(max: usize) -> Sensors<K, V> {
        Sensors {
            entries: HashMap::new(),
            max: max.max(1),
            last_sweep_ms: 0,
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry for `key`, made by `make` when there is none (after the
    /// idle ones are swept and, when full, the least recently used goes).
    pub fn entry(&mut self, key: K, now_ms: u64, make: impl FnOnce() -> V) -> &mut V {
        self.sweep(now_ms);
        if !self.entries.contains_key(&key) && self.entries.len() >= self.max {
            self.evict_least_recent();
        }
        self.entries.entry(key).or_insert_with(make)
    }

    /// Forgets entries idle for [`SENSOR_IDLE_MS`], at most once a minute.
    fn sweep(&mut self, now_ms: u64) {
        if now_ms < self.last_sweep_ms + 60_000 {
            return;
        }
        self.last_sweep_ms = now_ms;
        self.entries
            .retain(|_, v| now_ms.saturating_sub(v.last_used_ms()) < SENSOR_IDLE_MS);
    }

    fn evict_least_recent(&mut self) {
        let oldest = self
            .entries
            .iter()
            .min_by_key(|(k, v)| (v.last_used_ms(), *k))
            .map(|(k, _)| k.clone());
        if let Some(key) = oldest {
            self.entries.remove(&key);
        }
    }
}

/// One shard's quota windows, by quota type and whose usage they count:
/// what its own connections used and, on a broker of several shards, what
/// the others told it theirs used ([`crate::quota_share`]).
#[derive(Debug)]
pub struct QuotaTracker {
    windows: Sensors<(QuotaType, SensorKey), RateWindow>,
    /// Usage measured here for the other shards (none on a shard alone).
    unshared: UnsharedUsage,
}

impl QuotaTracker {
    /// A tracker of at most `max_sensors` windows (at least one), for a
    /// shard alone on its broker.
    pub fn new(max_sensors: usize) -> QuotaTracker {
        QuotaTracker {
            windows: Sensors::new(max_sensors),
            unshared: UnsharedUsage::alone(),
        }
    }

    /// The same for a shard with others beside it: what it measures also
    /// waits, for at most `max_sensors` sensors, to be shared with them.
    pub fn shared(max_sensors: usize) -> QuotaTracker {
        QuotaTracker {
            windows: Sensors::new(max_sensors),
            unshared: UnsharedUsage::new(max_sensors),
        }
    }

    /// Windows held.
    pub fn len(&self) -> usize {
        self.windows.len()
    }

    /// Whether no window is held.
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// Records `value` against the `kind` quota of `user`'s `client_id`,
    /// if one applies, and answers the throttle time it leads to (0 within
    /// the quota or without one), and whether a share is now due.
    pub fn record(
        &mut self,
        quotas: &[ClientQuota],
        kind: QuotaType,
        user: &str,
        client_id: &str,
        value: f64,
        now_ms: u64,
    ) -> (u64, ShareNeed) {
        let Some((sensor, quota)) = resolve(quotas, user, client_id, kind.key()) else {
            return (0, ShareNeed::None);
        };
        let to_share = self.unshared.is_shared().then(|| sensor.clone());
        let window = self
            .windows
            .entry((kind, sensor), now_ms, || RateWindow::new(now_ms));
        window.record(value, now_ms);
        let throttle_ms = window.throttle_ms(quota, now_ms);
        let need = match to_share {
            Some(sensor) => {
                let near = window.rate(now_ms).0 * 2.0 >= quota;
                self.unshared.add(kind, sensor, value, quota, near)
            }
            None => ShareNeed::None,
        };
        let throttle_ms = match kind {
            QuotaType::Request => throttle_ms.min(MAX_REQUEST_THROTTLE_MS),
            QuotaType::Produce | QuotaType::Fetch | QuotaType::Mutation => throttle_ms,
        };
        (throttle_ms, need)
    }

    /// Records what another shard measured, in the same windows (no
    /// throttle: its client was answered there). Mutation usage is a
    /// bucket's ([`crate::mutation_quota::MutationBuckets`]) and skipped.
    pub fn record_shared(&mut self, usage: &[SharedUsage], now_ms: u64) {
        for u in usage.iter().filter(|u| u.kind != QuotaType::Mutation) {
            self.windows
                .entry((u.kind, u.sensor.clone()), now_ms, || {
                    RateWindow::new(now_ms)
                })
                .record(u.value, now_ms);
        }
    }

    /// The usage measured here since the last share, for the other shards.
    pub fn unshared(&self) -> &UnsharedUsage {
        &self.unshared
    }

    /// The same, to take it for a share.
    pub fn unshared_mut(&mut self) -> &mut UnsharedUsage {
        &mut self.unshared
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(
        user: Option<EntityName>,
        client: Option<EntityName>,
        key: &str,
        v: f64,
    ) -> ClientQuota {
        ClientQuota {
            entity: QuotaEntity {
                user,
                client_id: client,
                ip: None,
            },
            values: [(key.to_owned(), QuotaValue(v))].into(),
        }
    }

    fn named(n: &str) -> Option<EntityName> {
        Some(EntityName::Named(n.into()))
    }

    #[test]
    fn the_most_specific_quota_wins_in_kafkas_order() {
        let d = Some(EntityName::Default);
        let by_precedence = vec![
            quota(None, d.clone(), PRODUCER_BYTE_RATE, 8.0),
            quota(None, named("c"), PRODUCER_BYTE_RATE, 7.0),
            quota(d.clone(), None, PRODUCER_BYTE_RATE, 6.0),
            quota(d.clone(), d.clone(), PRODUCER_BYTE_RATE, 5.0),
            quota(d.clone(), named("c"), PRODUCER_BYTE_RATE, 4.0),
            quota(named("u"), None, PRODUCER_BYTE_RATE, 3.0),
            quota(named("u"), d.clone(), PRODUCER_BYTE_RATE, 2.0),
            quota(named("u"), named("c"), PRODUCER_BYTE_RATE, 1.0),
        ];
        let sorted = |mut q: Vec<ClientQuota>| {
            q.sort_by(|a, b| a.entity.cmp(&b.entity));
            q
        };
        let all = sorted(by_precedence.clone());
        // Removing the winner each time reveals the next in order.
        for n in 0..by_precedence.len() {
            let some = sorted(by_precedence[..by_precedence.len() - n].to_vec());
            let (sensor, v) =
                resolve(&some, "u", "c", PRODUCER_BYTE_RATE).expect("a quota applies");
            assert_eq!(v, (n + 1) as f64);
            let by_user = matches!(n + 1, 1..=6);
            let by_client = matches!(n + 1, 1 | 2 | 4 | 5 | 7 | 8);
            assert_eq!(sensor.user.is_empty(), !by_user, "quota {v}");
            assert_eq!(sensor.client_id.is_empty(), !by_client, "quota {v}");
        }
        assert_eq!(resolve(&all, "u", "c", CONSUMER_BYTE_RATE), None);
        assert_eq!(
            resolve(
                &sorted(by_precedence[6..].to_vec()),
                "other",
                "x",
                PRODUCER_BYTE_RATE
            ),
            None,
            "a named user's quota is not another user's"
        );
    }

    #[test]
    fn values_are_checked_as_kafka_checks_them() {
        let client = QuotaEntity::from_parts([(ENTITY_CLIENT_ID, Some("c"))]).expect("valid");
        let check = |key, value| check_quota(&client, key, value);
        assert!(check(PRODUCER_BYTE_RATE, Some(1024.0)).is_ok());
        assert!(check(PRODUCER_BYTE_RATE, Some(1.5)).is_err());
        assert!(check(PRODUCER_BYTE_RATE, Some(1.000_000_1)).is_ok());
        assert!(check(PRODUCER_BYTE_RATE, Some(1e19)).is_err());
        assert!(check(PRODUCER_BYTE_RATE, Some(0.0)).is_err());
        assert!(check(REQUEST_PERCENTAGE, Some(0.5)).is_ok());
        assert!(check("foo", Some(1.0)).is_err());
        assert!(check(CONSUMER_BYTE_RATE, None).is_ok());
        assert!(check(CONSUMER_BYTE_RATE, Some(f64::NAN)).is_err());
        assert!(check(CONNECTION_CREATION_RATE, Some(1.0)).is_err());

        let ip = QuotaEntity::from_parts([(ENTITY_IP, Some("10.0.0.1"))]).expect("valid");
        let check = |key, value| check_quota(&ip, key, value);
        assert!(check(CONNECTION_CREATION_RATE, Some(10.0)).is_ok());
        assert!(check(CONNECTION_CREATION_RATE, None).is_ok());
        assert_eq!(
            check(CONNECTION_CREATION_RATE, Some(1.5)),
            Err("connection_creation_rate cannot be a fractional value.".into())
        );
        assert_eq!(
            check(CONNECTION_CREATION_RATE, Some(3e9)),
            Err("Proposed value for connection_creation_rate is too large for an INT.".into())
        );
        assert_eq!(
            check(PRODUCER_BYTE_RATE, Some(1.0)),
            Err("Invalid configuration key producer_byte_rate".into())
        );
    }

    #[test]
    fn entities_are_built_from_wire_parts() {
        let e = QuotaEntity::from_parts([(ENTITY_USER, Some("u")), (ENTITY_CLIENT_ID, None)])
            .expect("valid");
        assert_eq!(e.user, named("u"));
        assert_eq!(e.client_id, Some(EntityName::Default));
        assert_eq!(
            e.parts().collect::<Vec<_>>(),
            vec![(ENTITY_USER, Some("u")), (ENTITY_CLIENT_ID, None)]
        );
        assert!(QuotaEntity::from_parts([]).is_err());
        assert!(QuotaEntity::from_parts([(ENTITY_USER, None), (ENTITY_USER, None)]).is_err());
        assert!(QuotaEntity::from_parts([("bogus", None)]).is_err());

        let ip = QuotaEntity::from_parts([(ENTITY_IP, Some("::1"))]).expect("valid");
        assert_eq!(
            ip.parts().collect::<Vec<_>>(),
            vec![(ENTITY_IP, Some("::1"))]
        );
        assert!(QuotaEntity::from_parts([(ENTITY_IP, None)]).is_ok());
        assert_eq!(
            QuotaEntity::from_parts([(ENTITY_IP, Some(""))]),
            Err("Empty ip not supported".into())
        );
        assert_eq!(
            QuotaEntity::from_parts([(ENTITY_IP, Some("not an address"))]),
            Err("not an address is not a valid IP or resolvable host.".into())
        );
        assert!(
            QuotaEntity::from_parts([(ENTITY_IP, None), (ENTITY_USER, Some("u"))])
                .is_err_and(|e| e.contains("IP entity shouldnot be combined"))
        );
    }

    #[test]
    fn an_ip_finds_its_own_quota_else_the_default_ips() {
        let ip = |name: Option<&str>, rate: f64| ClientQuota {
            entity: QuotaEntity {
                user: None,
                client_id: None,
                ip: Some(name.map_or(EntityName::Default, |n| EntityName::Named(n.into()))),
            },
            values: [(CONNECTION_CREATION_RATE.to_owned(), QuotaValue(rate))].into(),
        };
        let mut quotas = vec![
            quota(named("u"), None, PRODUCER_BYTE_RATE, 1.0),
            ip(Some("10.0.0.1"), 5.0),
            ip(Some("::1"), 7.0),
        ];
        quotas.sort_by(|a, b| a.entity.cmp(&b.entity));
        let addr = |s: &str| s.parse::<IpAddr>().expect("an address");
        assert_eq!(resolve_ip(&quotas, addr("10.0.0.1")), Some(5.0));
        assert_eq!(resolve_ip(&quotas, addr("::ffff:10.0.0.1")), Some(5.0));
        assert_eq!(resolve_ip(&quotas, addr("::1")), Some(7.0));
        assert_eq!(resolve_ip(&quotas, addr("10.0.0.2")), None);
        quotas.push(ip(None, 3.0));
        quotas.sort_by(|a, b| a.entity.cmp(&b.entity));
        assert_eq!(resolve_ip(&quotas, addr("10.0.0.2")), Some(3.0));
        assert_eq!(resolve_ip(&quotas, addr("10.0.0.1")), Some(5.0));
        assert!(any_client_quota(&quotas));
        let ips_only: Vec<ClientQuota> = quotas
            .iter()
            .filter(|q| q.entity.is_ip())
            .cloned()
            .collect();
        assert!(!any_client_quota(&ips_only), "IP quotas measure no request");
        // IP entities do not disturb the search for a user's quota.
        assert_eq!(
            resolve(&quotas, "u", "c", PRODUCER_BYTE_RATE).map(|(_, v)| v),
            Some(1.0)
        );
    }

    /// A client that waits out every throttle it is given stays within
    /// its quota over any whole window, whatever it sends.
    #[test]
    fn a_client_that_honours_throttles_keeps_to_its_quota() {
        let quota = 10_000.0;
        let quotas = vec![quota_for_client("c", quota)];
        let mut rng = crate::rng::SplitMix64::new(7);
        let mut tracker = QuotaTracker::new(4);
        let mut now = 1_000_000u64;
        let mut sent: Vec<(u64, f64)> = Vec::new();
        while now < 1_000_000 + 120_000 {
            let bytes = (rng.below(20_000) + 1) as f64;
            let (throttle, _) =
                tracker.record(&quotas, QuotaType::Produce, "ANONYMOUS", "c", bytes, now);
            sent.push((now, bytes));
            now += throttle + rng.below(50);
        }
        // Over every window of the quota's length after the first, the
        // client sent at most the quota's worth, give or take one request.
        let span = WINDOW_SAMPLES as u64 * SAMPLE_MS;
        for &(start, _) in sent.iter().filter(|(t, _)| *t >= 1_000_000 + span) {
            let in_window: f64 = sent
                .iter()
                .filter(|(t, _)| *t >= start && *t < start + span)
                .map(|(_, b)| b)
                .sum();
            assert!(
                in_window <= quota * span as f64 / 1000.0 * 1.25 + 20_000.0,
                "{in_window} bytes in the window from {start}"
            );
        }
        let total: f64 = sent.iter().map(|(_, b)| b).sum();
        let rate = total * 1000.0 / (now - 1_000_000) as f64;
        assert!(rate > quota * 0.5, "the quota is not a wall: {rate}/s");
    }

    /// One client with a connection on each of two shards, each
    /// connection waiting out its throttles: the most it sent over any
    /// whole window after the first, and its rate over two minutes. With
    /// `share`, each shard tells the other what it measured as the broker
    /// does (at once when due, else every 100 ms).
    fn two_shards(share: bool) -> (f64, f64) {
        let quota = 10_000.0;
        let quotas = vec![quota_for_client("c", quota)];
        let mut rng = crate::rng::SplitMix64::new(11);
        let make = || {
            if share {
                QuotaTracker::shared(4)
            } else {
                QuotaTracker::new(4)
            }
        };
        let mut shards = [make(), make()];
        let start = 1_000_000u64;
        let mut next_send = [start, start];
        let mut next_share = start;
        let mut sent: Vec<(u64, f64)> = Vec::new();
        let mut now = start;
        while now < start + 120_000 {
            let mut due = false;
            for i in 0..2 {
                if next_send[i] <= now {
                    let bytes = (rng.below(2_000) + 1) as f64;
                    let (throttle, need) =
                        shards[i].record(&quotas, QuotaType::Produce, "u", "c", bytes, now);
                    sent.push((now, bytes));
                    next_send[i] = now + throttle + rng.below(5) + 1;
                    due |= need == ShareNeed::Now;
                }
            }
            if due || now >= next_share {
                let (a, b) = (
                    shards[0].unshared_mut().take(),
                    shards[1].unshared_mut().take(),
                );
                shards[1].record_shared(&a, now);
                shards[0].record_shared(&b, now);
                next_share = now + crate::quota_share::SHARE_INTERVAL_MS;
            }
            now += 1;
        }
        let span = WINDOW_SAMPLES as u64 * SAMPLE_MS;
        let most = sent
            .iter()
            .filter(|(t, _)| *t >= start + span)
            .map(|&(from, _)| {
                sent.iter()
                    .filter(|(t, _)| *t >= from && *t < from + span)
                    .map(|(_, b)| b)
                    .sum::<f64>()
            })
            .fold(0.0, f64::max);
        let total: f64 = sent.iter().map(|(_, b)| b).sum();
        (most, total * 1000.0 / (now - start) as f64)
    }

    /// Shards that share what they measure hold a client to its quota
    /// once per broker, however many shards serve it; shards that did not
    /// (sluice before) gave it its quota on each.
    #[test]
    fn a_quota_holds_for_a_client_served_by_two_shards() {
        let quota = 10_000.0;
        let span_s = (WINDOW_SAMPLES as u64 * SAMPLE_MS) as f64 / 1000.0;
        let (most, rate) = two_shards(true);
        assert!(
            most <= quota * span_s * 1.25 + 4_000.0,
            "{most} bytes in one window, shared"
        );
        assert!(rate > quota * 0.5, "the quota is not a wall: {rate}/s");
        let (most, rate) = two_shards(false);
        assert!(
            most > quota * span_s * 1.6 && rate > quota * 1.6,
            "unshared, each shard gives the quota: {most} in a window, {rate}/s"
        );
    }

    #[test]
    fn shared_usage_counts_in_the_windows_but_only_the_measuring_shard_shares_it() {
        let quotas = vec![quota_for_client("c", 1_000.0)];
        let (mut a, mut b) = (QuotaTracker::shared(4), QuotaTracker::shared(4));
        let (throttle, need) = a.record(&quotas, QuotaType::Produce, "u", "c", 5_000.0, 0);
        assert_eq!((throttle, need), (0, ShareNeed::Now));
        assert_eq!(a.unshared().state(), (true, true));
        let usage = a.unshared_mut().take();
        assert_eq!(a.unshared().state(), (false, false));
        b.record_shared(&usage, 0);
        assert_eq!(b.unshared().state(), (false, false), "not passed on again");
        // b now counts a's 5,000: 6,000 more is 11,000 over ten seconds.
        let (throttle, _) = b.record(&quotas, QuotaType::Produce, "u", "c", 6_000.0, 0);
        assert_eq!(throttle, 1_000);
        assert!(QuotaTracker::new(4).unshared_mut().take().is_empty());
    }

    fn quota_for_client(client: &str, v: f64) -> ClientQuota {
        quota(None, named(client), PRODUCER_BYTE_RATE, v)
    }

    #[test]
    fn the_tracker_is_bounded_and_forgets_idle_windows() {
        let quotas = vec![quota(
            None,
            Some(EntityName::Default),
            PRODUCER_BYTE_RATE,
            1.0,
        )];
        let mut tracker = QuotaTracker::new(3);
        for (i, c) in ["a", "b", "c", "d", "e"].iter().enumerate() {
            tracker.record(&quotas, QuotaType::Produce, "u", c, 1.0, 100_000 + i as u64);
            assert!(tracker.len() <= 3);
        }
        assert_eq!(tracker.len(), 3);
        tracker.record(
            &quotas,
            QuotaType::Produce,
            "u",
            "e",
            1.0,
            100_000 + SENSOR_IDLE_MS + 10,
        );
        assert_eq!(tracker.len(), 1, "idle windows are forgotten");
        assert_eq!(
            tracker.record(&[], QuotaType::Produce, "u", "z", 1e9, 0),
            (0, ShareNeed::None),
            "no quota, no throttle"
        );
    }

    #[test]
    fn throttle_follows_kafkas_formula() {
        let mut w = RateWindow::new(0);
        // 30 000 bytes at once against 1 000/s: the rate is counted over
        // ten samples (3 000/s), so the throttle is (3000-1000)/1000 * 10 s.
        w.record(30_000.0, 0);
        assert_eq!(w.throttle_ms(1_000.0, 0), 20_000);
        assert_eq!(w.throttle_ms(3_000.0, 0), 0);
        // Eleven seconds later every sample has expired.
        assert_eq!(w.rate(11_001).0, 0.0);
    }
}
