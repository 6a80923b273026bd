//! What the simulator adds to a simulated process
//! ([`sluice_shard::simulated::node::Node`]): where its data lives, and
//! reading a whole partition back as a Fetch does, for the checks after a
//! restart.

use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use sluice_core::batch::BatchIter;
use sluice_core::Offset;
use sluice_shard::message::{Fetch, PartitionRead};
use sluice_shard::simulated::node::Node;

/// The node's data directory on the simulated disk.
pub fn data_dir() -> PathBuf {
    PathBuf::from("/sim/data")
}

/// Every record of `topic`/`partition` from `from` below `upto`, read
/// on its owner as a Fetch does, joined.
pub async fn read_all(
    node: &Node,
    owner: u32,
    topic: &str,
    partition: i32,
    from: Offset,
    upto: Offset,
) -> Result<Bytes, String> {
    let shard = &node.shards[owner as usize];
    let mut all = BytesMut::new();
    let mut next = from;
    while next < upto {
        let request = Fetch {
            reads: vec![PartitionRead {
                topic: topic.to_owned(),
                partition,
                offset: next,
                max_bytes: 1 << 20,
                replica_id: -1,
                log_start_offset: -1,
                current_leader_epoch: -1,
                read_committed: false,
            }],
            max_bytes: 1 << 20,
            have_data: false,
        };
        let result = match shard.call(owner, request).await {
            Ok(mut results) if results.len() == 1 => results.remove(0),
            other => return Err(format!("{topic}/{partition}: reading got {other:?}")),
        };
        if result.error != sluice_core::ErrorCode::None {
            return Err(format!(
                "{topic}/{partition}: reading at {next} failed: {:?}",
                result.error
            ));
        }
        let mut advanced = false;
        let records = result.records.to_bytes();
        for batch in BatchIter::new(records.clone()) {
            let batch = batch.map_err(|e| format!("{topic}/{partition}: {e}"))?;
            next = batch.next_offset();
            advanced = true;
        }
        if !advanced {
            return Err(format!(
                "{topic}/{partition}: nothing readable at {next}, below the high watermark {upto}"
            ));
        }
        all.extend_from_slice(&records);
    }
    Ok(all.freeze())
}
