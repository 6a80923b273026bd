//! `sluice group describe` of a share group (KIP-932): its members and
//! what each is assigned (ShareGroupDescribe), and per share partition its
//! start offset (DescribeShareGroupOffsets), with the records in flight,
//! those acquired now and the lag where the broker reports them (sluice
//! does, in tagged fields; "-" otherwise).

use std::fmt::Write as _;

use anyhow::anyhow;
use kafka_protocol::messages::describe_share_group_offsets_request::DescribeShareGroupOffsetsRequestGroup;
use kafka_protocol::messages::{
    DescribeShareGroupOffsetsRequest, GroupId, ShareGroupDescribeRequest,
};
use kafka_protocol::protocol::StrBytes;

use crate::connection::Client;
use crate::groups::{check, table};

/// Tagged fields of sluice's DescribeShareGroupOffsets partitions: records
/// in flight, acquired, and the lag.
const TAG_IN_FLIGHT: i32 = 10_000;
const TAG_ACQUIRED: i32 = 10_001;
const TAG_LAG: i32 = 10_002;

/// The share group `group` described, or `None` when the coordinator
/// knows no share group of that name.
pub fn describe(client: &mut Client, group: &str) -> anyhow::Result<Option<String>> {
    let id = GroupId(StrBytes::from_string(group.to_owned()));
    let request = ShareGroupDescribeRequest::default().with_group_ids(vec![id.clone()]);
    let described = client
        .send(&request, 1)?
        .groups
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("no answer for group {group}"))?;
    if described.error_code == 69 {
        // GROUP_ID_NOT_FOUND: not a share group.
        return Ok(None);
    }
    check(described.error_code, "describing the share group")?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Group {group}: share group, state {}, group epoch {}, {} member(s)\n",
        described.group_state.as_str(),
        described.group_epoch,
        described.members.len()
    );
    let members: Vec<[String; 4]> = described
        .members
        .iter()
        .map(|m| {
            let assigned: Vec<String> = m
                .assignment
                .topic_partitions
                .iter()
                .flat_map(|t| {
                    t.partitions
                        .iter()
                        .map(move |p| format!("{}:{p}", t.topic_name.0.as_str()))
                })
                .collect();
            [
                m.member_id.to_string(),
                m.client_host.to_string(),
                m.client_id.to_string(),
                if assigned.is_empty() {
                    "-".into()
                } else {
                    assigned.join(",")
                },
            ]
        })
        .collect();
    if !members.is_empty() {
        out.push_str(&table(
            &["MEMBER-ID", "HOST", "CLIENT-ID", "ASSIGNMENT"],
            &members,
        ));
        out.push('\n');
    }
    let request = DescribeShareGroupOffsetsRequest::default().with_groups(vec![
        DescribeShareGroupOffsetsRequestGroup::default()
            .with_group_id(id)
            .with_topics(None),
    ]);
    let offsets = client
        .send(&request, 0)?
        .groups
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("no offsets for group {group}"))?;
    check(offsets.error_code, "describing the share group's offsets")?;
    let mut rows: Vec<[String; 6]> = Vec::new();
    for t in &offsets.topics {
        for p in &t.partitions {
            let tag = |tag: i32| -> String {
                let Some(b) = p.unknown_tagged_fields.get(&tag) else {
                    return "-".into();
                };
                match b.len() {
                    4 => i32::from_be_bytes([b[0], b[1], b[2], b[3]]).to_string(),
                    8 => i64::from_be_bytes(b[..8].try_into().unwrap_or([0; 8])).to_string(),
                    _ => "-".into(),
                }
            };
            rows.push([
                t.topic_name.0.to_string(),
                p.partition_index.to_string(),
                if p.start_offset < 0 {
                    "-".into()
                } else {
                    p.start_offset.to_string()
                },
                tag(TAG_IN_FLIGHT),
                tag(TAG_ACQUIRED),
                tag(TAG_LAG),
            ]);
        }
    }
    rows.sort();
    out.push_str(&table(
        &[
            "TOPIC",
            "PARTITION",
            "START-OFFSET",
            "IN-FLIGHT",
            "ACQUIRED",
            "LAG",
        ],
        &rows,
    ));
    Ok(Some(out))
}
