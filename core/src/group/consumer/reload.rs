//! A test helper: a group's records encoded, decoded and replayed into a
//! new group, as a coordinator's load does.

use super::*;

/// `g`'s records ("g"'s), through their bytes, replayed into a new group
/// whose members' sessions start at time 1 with `session_timeout_ms`.
pub(super) fn reloaded(g: &ConsumerGroup, session_timeout_ms: i32) -> ConsumerGroup {
    let mut again = ConsumerGroup::default();
    for record in g.records("g", None) {
        let key = record.encode_key();
        let value = record.encode_value();
        match OffsetsRecord::decode(&key, value.as_deref()).expect("decodes") {
            OffsetsRecord::ConsumerGroup { value: Some(v), .. } => again.restore_epoch(v.epoch),
            OffsetsRecord::TargetEpoch { value: Some(e), .. } => again.restore_assignment_epoch(e),
            OffsetsRecord::Member { member, value, .. } => {
                again.restore_member(&member, value, 1, session_timeout_ms)
            }
            OffsetsRecord::Target { member, value, .. } => again.restore_target(&member, value),
            OffsetsRecord::Assignment { member, value, .. } => {
                again.restore_assignment(&member, value)
            }
            _ => {}
        }
    }
    again
}
