//! Writes seed inputs for the fuzz targets (valid batches, several batches
//! back to back with offsets assigned, a segment with an index), so the
//! fuzzers start from the interesting shapes instead of random bytes.
//!
//! ```text
//! cargo run -p sluice-core --example fuzz_seeds -- OUT_DIR
//! ```
//! writes `OUT_DIR/batch_parse/*`, `OUT_DIR/recovery_scan/*` and
//! `OUT_DIR/recover_segment/*`, `OUT_DIR/group_records/*` and
//! `OUT_DIR/metadata_commands/*`.

use std::path::PathBuf;

use sluice_core::group::records::{
    CommittedOffset, GroupSnapshot, MemberSnapshot, OffsetsRecord, ShareGroupSnapshot,
};

use bytes::BytesMut;
use sluice_core::batch::{assign_in_place, BatchBuilder};

fn batches(count: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut next = 0i64;
    for i in 0..count {
        let mut b = BatchBuilder::new(1_700_000_000_000 + i as i64);
        for r in 0..(i % 3 + 1) {
            let headers: &[(&[u8], Option<&[u8]>)] =
                if r == 1 { &[(b"h", Some(b"v"))] } else { &[] };
            b = b.record_at(
                1_700_000_000_000 + i as i64 + r as i64,
                Some(b"key"),
                Some(&[b'x'; 40]),
                headers,
            );
        }
        let records = b.len() as i64;
        let mut bytes = BytesMut::from(&b.build()[..]);
        assign_in_place(&mut bytes, next, 0);
        next += records;
        out.extend_from_slice(&bytes);
    }
    out
}

fn main() -> std::io::Result<()> {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "fuzz-seeds".into()),
    );
    for target in [
        "batch_parse",
        "recovery_scan",
        "recover_segment",
        "group_records",
        "metadata_commands",
    ] {
        std::fs::create_dir_all(out.join(target))?;
    }
    // metadata_commands: one JSON command per line, as the metadata log
    // stores them (serde's externally tagged enum layout).
    let id = format!("[{}]", ["7"; 16].join(","));
    let commands = [
        r#"{"RegisterBroker":{"id":0,"incarnation":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1],"rack":null,"host":"127.0.0.1","port":9092,"rpc_addr":"127.0.0.1:9093","shards":2}}"#.to_owned(),
        format!(
            r#"{{"CreateTopic":{{"name":"t","id":{id},"partitions":[[{{"broker":0,"shard":0}}],[{{"broker":0,"shard":1}}]],"configs":{{"retention.ms":"1000"}}}}}}"#
        ),
        r#"{"CreatePartitions":{"name":"t","new_partitions":[[{"broker":0,"shard":1}]]}}"#.to_owned(),
        r#"{"FenceBroker":{"id":0}}"#.to_owned(),
        r#"{"UnfenceBroker":{"id":0}}"#.to_owned(),
        r#"{"AllocateProducerIds":{"first":0,"count":1000}}"#.to_owned(),
        r#"{"DeleteTopic":{"name":"t"}}"#.to_owned(),
    ];
    std::fs::write(
        out.join("metadata_commands").join("commands"),
        commands.join("\n"),
    )?;
    for n in [1usize, 3, 8] {
        let bytes = batches(n);
        std::fs::write(out.join("batch_parse").join(format!("batches-{n}")), &bytes)?;
        // recovery_scan reads its expected first offset from the first 8
        // bytes, which are the first batch's base offset (0).
        std::fs::write(
            out.join("recovery_scan").join(format!("segment-{n}")),
            &bytes,
        )?;
        // recover_segment: first byte * 8 bytes of index, then the segment.
        let mut seeded = vec![0u8];
        seeded.extend_from_slice(&bytes);
        std::fs::write(
            out.join("recover_segment").join(format!("segment-{n}")),
            &seeded,
        )?;
    }
    // group_records: a split byte, then a key and a value.
    for (i, record) in group_records().into_iter().enumerate() {
        let key = record.encode_key();
        let mut seeded = vec![key.len().min(255) as u8];
        seeded.extend_from_slice(&key);
        seeded.extend_from_slice(&record.encode_value().unwrap_or_default());
        std::fs::write(
            out.join("group_records").join(format!("record-{i}")),
            &seeded,
        )?;
    }
    Ok(())
}

fn group_records() -> Vec<OffsetsRecord> {
    vec![
        OffsetsRecord::Offset {
            group: "group".into(),
            topic: "topic".into(),
            partition: 3,
            value: Some(CommittedOffset {
                offset: 42,
                leader_epoch: 0,
                metadata: "m".into(),
                commit_timestamp_ms: 1_700_000_000_000,
            }),
        },
        OffsetsRecord::Group {
            group: "group".into(),
            value: Some(GroupSnapshot {
                protocol_type: "consumer".into(),
                generation: 3,
                protocol: Some("range".into()),
                leader: Some("member-1".into()),
                state_timestamp_ms: 1_700_000_000_000,
                members: vec![MemberSnapshot {
                    member_id: "member-1".into(),
                    instance_id: Some("instance".into()),
                    client_id: "client".into(),
                    client_host: "/127.0.0.1".into(),
                    rebalance_timeout_ms: 300_000,
                    session_timeout_ms: 45_000,
                    subscription: bytes::Bytes::from_static(&[0, 1, 0, 0, 0, 1, 0, 1, b't']),
                    assignment: bytes::Bytes::from_static(&[0, 1, 0, 0, 0, 0]),
                }],
            }),
        },
        OffsetsRecord::ShareGroup {
            group: "group".into(),
            value: Some(ShareGroupSnapshot { epoch: 3 }),
        },
    ]
}
