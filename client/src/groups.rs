//! `sluice group list | describe | delete | reset-offsets`: consumer group
//! administration over the Kafka protocol, like Kafka's
//! `kafka-consumer-groups.sh` (share groups are described by
//! [`crate::share_groups`]).
//!
//! Owns: the requests each command sends (ListGroups, FindCoordinator,
//! DescribeGroups, OffsetFetch, ListOffsets, Metadata, DeleteGroups,
//! OffsetCommit) and the tables it prints. Offsets are reset only for an
//! inactive (Empty) group, and only with `execute`; otherwise the plan is
//! printed, as Kafka's tool does.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context as _};
use bytes::Buf;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    BrokerId, ConsumerProtocolAssignment, DeleteGroupsRequest, DescribeGroupsRequest,
    FindCoordinatorRequest, GroupId, ListGroupsRequest, ListOffsetsRequest, MetadataRequest,
    OffsetCommitRequest, OffsetFetchRequest, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};

use crate::connection::Client;

/// Deadline of every request the tools send.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Where `reset-offsets` moves a group's position.
#[derive(Debug, Clone)]
pub enum ResetTarget {
    Earliest,
    Latest,
    Offset(i64),
    /// Milliseconds since the epoch: the first offset at or after it.
    Timestamp(i64),
}

impl ResetTarget {
    /// Parses `--to-datetime`'s value: RFC 3339 (`2026-11-28T07:00:00Z`,
    /// `2026-11-28T07:00:00.123`; UTC when no zone is given) or
    /// milliseconds since the epoch.
    pub fn datetime(text: &str) -> anyhow::Result<ResetTarget> {
        if let Ok(ms) = text.parse::<i64>() {
            return Ok(ResetTarget::Timestamp(ms));
        }
        let time = humantime::parse_rfc3339_weak(text)
            .with_context(|| format!("{text:?} is not a date-time like 2026-11-28T07:00:00Z"))?;
        let ms = time
            .duration_since(UNIX_EPOCH)
            .map_err(|_| anyhow!("{text:?} is before 1970"))?
            .as_millis();
        Ok(ResetTarget::Timestamp(ms as i64))
    }
}

pub(crate) fn error_name(code: i16) -> String {
    let name = kafka_protocol::ResponseError::try_from_code(code)
        .map(|e| format!("{e:?}"))
        .unwrap_or_else(|| format!("error {code}"));
    format!("{name} ({code})")
}

pub(crate) fn check(code: i16, what: &str) -> anyhow::Result<()> {
    if code != 0 {
        bail!("{what}: {}", error_name(code));
    }
    Ok(())
}

fn group_id(g: &str) -> GroupId {
    GroupId(StrBytes::from_string(g.to_owned()))
}

/// `sluice group list`: every group, with its state, protocol type and
/// type (classic, consumer or share).
pub fn list(bootstrap: &str) -> anyhow::Result<String> {
    let mut client = Client::connect(bootstrap, TIMEOUT)?;
    let response = client.send(&ListGroupsRequest::default(), 5)?;
    check(response.error_code, "listing groups")?;
    let mut rows: Vec<[String; 4]> = response
        .groups
        .into_iter()
        .map(|g| {
            [
                g.group_id.0.to_string(),
                g.group_state.to_string(),
                g.protocol_type.to_string(),
                g.group_type.to_string(),
            ]
        })
        .collect();
    rows.sort();
    Ok(table(&["GROUP", "STATE", "PROTOCOL-TYPE", "TYPE"], &rows))
}

/// A connection to `group`'s coordinator.
pub(crate) fn coordinator(bootstrap: &str, group: &str) -> anyhow::Result<Client> {
    find_coordinator(bootstrap, group, 0, "the group").map(|(_, client)| client)
}

/// The broker coordinating `key` (FindCoordinator key type `key_type`: 0
/// a group, 1 a transactional id; `what` names it in errors) and a
/// connection to it.
/// COORDINATOR_NOT_AVAILABLE and COORDINATOR_LOAD_IN_PROGRESS (the
/// internal topic is being created or loaded) are asked again, for at most
/// [`TIMEOUT`].
pub(crate) fn find_coordinator(
    bootstrap: &str,
    key: &str,
    key_type: i8,
    what: &str,
) -> anyhow::Result<(i32, Client)> {
    let mut client = Client::connect(bootstrap, TIMEOUT)?;
    let request = FindCoordinatorRequest::default()
        .with_key(StrBytes::from_string(key.into()))
        .with_key_type(key_type);
    let deadline = std::time::Instant::now() + TIMEOUT;
    let mut found = client.send(&request, 3)?;
    while matches!(found.error_code, 14 | 15) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        found = client.send(&request, 3)?;
    }
    check(found.error_code, &format!("finding {what}'s coordinator"))?;
    let addr = format!("{}:{}", found.host.as_str(), found.port);
    Ok((found.node_id.0, Client::connect(&addr, TIMEOUT)?))
}

/// Committed offset per partition of `group` (all it committed).
pub(crate) fn committed(
    client: &mut Client,
    group: &str,
) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    let request = OffsetFetchRequest::default()
        .with_group_id(group_id(group))
        .with_topics(None);
    let response = client.send(&request, 7)?;
    check(response.error_code, "fetching committed offsets")?;
    let mut out = BTreeMap::new();
    for t in response.topics {
        for p in t.partitions {
            if p.error_code == 0 && p.committed_offset >= 0 {
                out.insert(
                    (t.name.0.to_string(), p.partition_index),
                    p.committed_offset,
                );
            }
        }
    }
    Ok(out)
}

/// ListOffsets at `timestamp` (-1 latest, -2 earliest) for partitions.
pub(crate) fn list_offsets(
    client: &mut Client,
    partitions: &[(String, i32)],
    timestamp: i64,
) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in partitions {
        by_topic.entry(t).or_default().push(*p);
    }
    let topics = by_topic
        .into_iter()
        .map(|(t, ps)| {
            ListOffsetsTopic::default()
                .with_name(TopicName(StrBytes::from_string(t.to_owned())))
                .with_partitions(
                    ps.into_iter()
                        .map(|p| {
                            ListOffsetsPartition::default()
                                .with_partition_index(p)
                                .with_timestamp(timestamp)
                        })
                        .collect(),
                )
        })
        .collect();
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(topics);
    let response = client.send(&request, 7)?;
    let mut out = BTreeMap::new();
    for t in response.topics {
        for p in t.partitions {
            // A partition that does not exist (any more) is left out; the
            // caller shows "-" or refuses, as it needs.
            if p.error_code == 0 {
                out.insert((t.name.0.to_string(), p.partition_index), p.offset);
            }
        }
    }
    Ok(out)
}

/// DescribeGroups for `group`, asked of its coordinator.
fn describe_group(client: &mut Client, group: &str) -> anyhow::Result<DescribedGroup> {
    let request = DescribeGroupsRequest::default().with_groups(vec![group_id(group)]);
    let described = client
        .send(&request, 5)?
        .groups
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("no answer for group {group}"))?;
    check(described.error_code, "describing the group")?;
    Ok(described)
}

/// `sluice group describe G`: state, members and their partitions, and per
/// partition the committed offset, the log end and the lag.
pub fn describe(bootstrap: &str, group: &str) -> anyhow::Result<String> {
    let mut client = coordinator(bootstrap, group)?;
    let described = describe_group(&mut client, group)?;
    // DescribeGroups knows no share group: it answers Dead and empty.
    if described.group_state.as_str() == "Dead" && described.members.is_empty() {
        if let Some(share) = crate::share_groups::describe(&mut client, group)? {
            return Ok(share);
        }
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Group {group}: state {}, protocol {} {}, {} member(s)\n",
        described.group_state.as_str(),
        described.protocol_type.as_str(),
        described.protocol_data.as_str(),
        described.members.len()
    );
    // Which member holds each partition (consumer protocol assignments).
    let mut owner: BTreeMap<(String, i32), (String, String, String)> = BTreeMap::new();
    for m in &described.members {
        for (topic, p) in assigned_partitions(&m.member_assignment) {
            owner.insert(
                (topic, p),
                (
                    m.member_id.to_string(),
                    m.client_host.to_string(),
                    m.client_id.to_string(),
                ),
            );
        }
    }
    let committed = committed(&mut client, group)?;
    let mut partitions: Vec<(String, i32)> = committed.keys().cloned().collect();
    partitions.extend(owner.keys().cloned());
    partitions.sort();
    partitions.dedup();
    let ends = if partitions.is_empty() {
        BTreeMap::new()
    } else {
        list_offsets(&mut Client::connect(bootstrap, TIMEOUT)?, &partitions, -1)?
    };
    let rows: Vec<[String; 8]> = partitions
        .iter()
        .map(|key| {
            let current = committed.get(key).copied();
            let end = ends.get(key).copied();
            let lag = match (current, end) {
                (Some(c), Some(e)) => (e - c).max(0).to_string(),
                _ => "-".into(),
            };
            let (member, host, client) = owner
                .get(key)
                .cloned()
                .unwrap_or_else(|| ("-".into(), "-".into(), "-".into()));
            [
                key.0.clone(),
                key.1.to_string(),
                current.map_or("-".into(), |c| c.to_string()),
                end.map_or("-".into(), |e| e.to_string()),
                lag,
                member,
                host,
                client,
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "LOG-END-OFFSET",
            "LAG",
            "CONSUMER-ID",
            "HOST",
            "CLIENT-ID",
        ],
        &rows,
    ));
    Ok(out)
}

/// The partitions of a consumer protocol assignment (empty when it is not
/// one).
fn assigned_partitions(assignment: &bytes::Bytes) -> Vec<(String, i32)> {
    let mut buf = assignment.clone();
    if buf.remaining() < 2 {
        return Vec::new();
    }
    let version = buf.get_i16();
    match ConsumerProtocolAssignment::decode(&mut buf, version.clamp(0, 3)) {
        Ok(a) => a
            .assigned_partitions
            .into_iter()
            .flat_map(|tp| {
                let topic = tp.topic.0.to_string();
                tp.partitions.into_iter().map(move |p| (topic.clone(), p))
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// `sluice group delete G`.
pub fn delete(bootstrap: &str, group: &str) -> anyhow::Result<String> {
    let mut client = coordinator(bootstrap, group)?;
    let request = DeleteGroupsRequest::default().with_groups_names(vec![group_id(group)]);
    let response = client.send(&request, 2)?;
    let result = response
        .results
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("no answer for group {group}"))?;
    check(result.error_code, &format!("deleting group {group}"))?;
    Ok(format!("Deleted group {group}.\n"))
}

/// `sluice group reset-offsets G`: moves the committed offsets of `topics`
/// (all partitions; every topic the group committed when empty) to
/// `target`. Prints the plan; commits it only when `execute`.
pub fn reset_offsets(
    bootstrap: &str,
    group: &str,
    topics: &[String],
    target: &ResetTarget,
    execute: bool,
) -> anyhow::Result<String> {
    let mut client = coordinator(bootstrap, group)?;
    let described = describe_group(&mut client, group)?;
    let state = described.group_state.to_string();
    if state != "Empty" && state != "Dead" {
        bail!("offsets can be reset only while group {group} is inactive; it is {state}");
    }
    let topics: Vec<String> = if topics.is_empty() {
        let mut t: Vec<String> = committed(&mut client, group)?
            .into_keys()
            .map(|(t, _)| t)
            .collect();
        t.dedup();
        t
    } else {
        topics.to_vec()
    };
    if topics.is_empty() {
        bail!("group {group} committed nothing; name the topics with --topic");
    }
    let mut broker = Client::connect(bootstrap, TIMEOUT)?;
    let partitions = partitions_of(&mut broker, &topics)?;
    let earliest = list_offsets(&mut broker, &partitions, -2)?;
    let latest = list_offsets(&mut broker, &partitions, -1)?;
    if let Some((t, p)) = partitions
        .iter()
        .find(|k| !earliest.contains_key(*k) || !latest.contains_key(*k))
    {
        bail!("the offsets of {t}-{p} are not available");
    }
    let planned: BTreeMap<(String, i32), i64> = match target {
        ResetTarget::Earliest => earliest,
        ResetTarget::Latest => latest,
        ResetTarget::Offset(n) => partitions
            .iter()
            .map(|k| {
                let (lo, hi) = (earliest[k], latest[k]);
                (k.clone(), (*n).clamp(lo, hi.max(lo)))
            })
            .collect(),
        ResetTarget::Timestamp(ms) => {
            let found = list_offsets(&mut broker, &partitions, *ms)?;
            partitions
                .iter()
                .map(|k| {
                    // No record at or after the time: the end of the log.
                    let o = found
                        .get(k)
                        .copied()
                        .filter(|o| *o >= 0)
                        .unwrap_or(latest[k]);
                    (k.clone(), o)
                })
                .collect()
        }
    };
    if execute {
        let mut by_topic: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        for ((t, p), o) in &planned {
            by_topic.entry(t).or_default().push(
                OffsetCommitRequestPartition::default()
                    .with_partition_index(*p)
                    .with_committed_offset(*o)
                    .with_committed_leader_epoch(-1),
            );
        }
        let request = OffsetCommitRequest::default()
            .with_group_id(group_id(group))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(
                by_topic
                    .into_iter()
                    .map(|(t, ps)| {
                        OffsetCommitRequestTopic::default()
                            .with_name(TopicName(StrBytes::from_string(t.to_owned())))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        let response = client.send(&request, 8)?;
        for t in response.topics {
            for p in t.partitions {
                check(
                    p.error_code,
                    &format!("committing {}-{}", t.name.0, p.partition_index),
                )?;
            }
        }
    }
    let rows: Vec<[String; 4]> = planned
        .iter()
        .map(|((t, p), o)| [group.to_owned(), t.clone(), p.to_string(), o.to_string()])
        .collect();
    let mut out = table(&["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"], &rows);
    if !execute {
        out.push_str("\nA plan only: add --execute to commit these offsets.\n");
    }
    Ok(out)
}

/// Every partition of `topics`.
fn partitions_of(client: &mut Client, topics: &[String]) -> anyhow::Result<Vec<(String, i32)>> {
    let request = MetadataRequest::default().with_topics(Some(
        topics
            .iter()
            .map(|t| {
                MetadataRequestTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_string(t.clone()))))
            })
            .collect(),
    ));
    let response = client.send(&request, 12)?;
    let mut out = Vec::new();
    for t in response.topics {
        let name = t.name.map(|n| n.0.to_string()).unwrap_or_default();
        check(t.error_code, &format!("topic {name}"))?;
        for p in t.partitions {
            out.push((name.clone(), p.partition_index));
        }
    }
    out.sort();
    Ok(out)
}

/// Left-aligned columns separated by two spaces.
pub(crate) fn table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) -> String {
    let mut widths = header.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &mut dyn Iterator<Item = &str>| {
        let text: Vec<String> = cells.zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        let _ = writeln!(out, "{}", text.join("  ").trim_end());
    };
    line(&mut out, &mut header.iter().copied());
    for row in rows {
        line(&mut out, &mut row.iter().map(String::as_str));
    }
    out
}
