//! Produce's records as writable pieces of the request frame, whatever the
//! number of partitions in the request.
//!
//! Owns: [`take_records`]. The log assigns offsets and the leader epoch in
//! each batch's header in place, so it needs every partition's records as a
//! buffer it alone may write. The decoder hands them out as `Bytes` slices
//! of the one frame, which share it: none of them may be written. Here every
//! slice of the frame the request holds is let go (the records after noting
//! where they lie, names and tagged fields after an owned copy), which leaves
//! the frame with one owner, and the frame is cut into one `BytesMut` per
//! partition: disjoint, each writable by its owner shard, no record byte
//! copied. The log's copy into its DMA buffer is then the only one.
//!
//! Invariant: a partition's records are copied here only when the frame
//! still has another owner when they are cut (a slice of it this module does
//! not know of) or they do not lie in the frame; the bytes copied are
//! returned, so the caller counts them (`sluice_produce_record_bytes_copied_total`,
//! which tests/record_copies.rs holds at zero).

use std::collections::BTreeMap;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{ProduceRequest, TopicName, TransactionalId};
use kafka_protocol::protocol::StrBytes;
use sluice_log::SourceBuffer;

/// Every partition's records, by topic then partition in the request's
/// order (`None` where the request carried none), the record bytes that had
/// to be copied, and the frame the others were cut from: each piece keeps
/// the whole frame allocated, so the log charges the frame, not the piece,
/// wherever it holds one (its batch cache, its write buffer).
#[derive(Debug, Default)]
pub struct TakenRecords {
    pub records: Vec<Vec<Option<BytesMut>>>,
    pub copied_bytes: usize,
    pub source: Option<SourceBuffer>,
}

/// Where one partition's records lie in the frame.
struct Piece {
    topic: usize,
    partition: usize,
    start: usize,
    len: usize,
}

/// Takes every partition's records out of `request` (leaving `None`), as
/// writable pieces of `frame`, the frame `request` was decoded from. Topic
/// names, the transactional id and unknown tagged fields, also slices of the
/// frame, are replaced by owned copies (a few bytes each).
pub fn take_records(frame: Bytes, request: &mut ProduceRequest) -> TakenRecords {
    let base = frame.as_ptr() as usize;
    let mut taken = TakenRecords::default();
    let mut pieces = Vec::new();
    // Slices that do not lie in the frame (none from the decoder) are kept
    // as they are and copied below.
    let mut strays = Vec::new();
    request.transactional_id = request
        .transactional_id
        .take()
        .map(|id| TransactionalId(owned_str(id.0)));
    own_tagged(&mut request.unknown_tagged_fields);
    for (t, topic) in request.topic_data.iter_mut().enumerate() {
        topic.name = TopicName(owned_str(std::mem::take(&mut topic.name.0)));
        own_tagged(&mut topic.unknown_tagged_fields);
        let mut slots = Vec::with_capacity(topic.partition_data.len());
        for (p, partition) in topic.partition_data.iter_mut().enumerate() {
            own_tagged(&mut partition.unknown_tagged_fields);
            let Some(records) = partition.records.take() else {
                slots.push(None);
                continue;
            };
            slots.push(Some(BytesMut::new()));
            if records.is_empty() {
                continue;
            }
            let start = (records.as_ptr() as usize).wrapping_sub(base);
            if start < frame.len() && records.len() <= frame.len() - start {
                pieces.push(Piece {
                    topic: t,
                    partition: p,
                    start,
                    len: records.len(),
                });
            } else {
                strays.push((t, p, records));
            }
        }
        taken.records.push(slots);
    }
    for (t, p, records) in strays {
        taken.copied_bytes += records.len();
        taken.records[t][p] = Some(BytesMut::from(&records[..]));
    }
    // The decoder reads the frame front to back, so the pieces come in order
    // and apart; anything else is cut by copying.
    let in_order = pieces
        .windows(2)
        .all(|w| w[0].start + w[0].len <= w[1].start);
    match frame.try_into_mut() {
        Ok(mut whole) if in_order => {
            // The frame was read into an allocation of its own size
            // (`server::read_frame`): its address and length are the
            // allocation's.
            taken.source = Some(SourceBuffer {
                id: whole.as_ptr() as usize,
                len: whole.len(),
            });
            let mut at = 0;
            for piece in pieces {
                whole.advance(piece.start - at);
                taken.records[piece.topic][piece.partition] = Some(whole.split_to(piece.len));
                at = piece.start + piece.len;
            }
        }
        Ok(whole) => copy_pieces(&whole, pieces, &mut taken),
        Err(shared) => copy_pieces(&shared, pieces, &mut taken),
    }
    taken
}

fn copy_pieces(frame: &[u8], pieces: Vec<Piece>, taken: &mut TakenRecords) {
    for piece in pieces {
        let bytes = &frame[piece.start..piece.start + piece.len];
        taken.copied_bytes += bytes.len();
        taken.records[piece.topic][piece.partition] = Some(BytesMut::from(bytes));
    }
}

/// An owned copy of a string that may be a slice of the frame.
fn owned_str(s: StrBytes) -> StrBytes {
    StrBytes::from_string(s.as_str().to_owned())
}

/// Owned copies of unknown tagged fields, which may be slices of the frame.
fn own_tagged(fields: &mut BTreeMap<i32, Bytes>) {
    for value in fields.values_mut() {
        *value = Bytes::copy_from_slice(value);
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::RequestHeader;
    use kafka_protocol::protocol::{Decodable, Encodable};

    use super::*;

    fn frame_of(request: &ProduceRequest, version: i16) -> Bytes {
        let mut out = BytesMut::new();
        request.encode(&mut out, version).expect("encodes");
        out.freeze()
    }

    fn request(partitions: &[&[u8]]) -> ProduceRequest {
        ProduceRequest::default()
            .with_acks(1)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partition_data(
                    partitions
                        .iter()
                        .enumerate()
                        .map(|(i, r)| {
                            PartitionProduceData::default()
                                .with_index(i as i32)
                                .with_records(Some(Bytes::copy_from_slice(r)))
                        })
                        .collect(),
                )])
    }

    #[test]
    fn every_partition_is_cut_from_the_frame_without_a_copy() {
        for version in [3, 9, 13] {
            let frame = frame_of(&request(&[b"first", b"second!", b"third"]), version);
            let frame_range = frame.as_ptr() as usize..frame.as_ptr() as usize + frame.len();
            let mut decoded = ProduceRequest::decode(&mut frame.clone(), version).expect("decodes");
            let taken = take_records(frame, &mut decoded);
            assert_eq!(taken.copied_bytes, 0, "v{version}");
            let got: Vec<&[u8]> = taken.records[0]
                .iter()
                .map(|r| r.as_deref().expect("records"))
                .collect();
            assert_eq!(got, [&b"first"[..], b"second!", b"third"]);
            for r in taken.records[0].iter().flatten() {
                assert!(
                    frame_range.contains(&(r.as_ptr() as usize)),
                    "v{version}: a copy"
                );
            }
            // v13 names topics by id only.
            let name = if version < 13 { "t" } else { "" };
            assert_eq!(decoded.topic_data[0].name.0.as_str(), name);
        }
    }

    #[test]
    fn pieces_are_writable_apart() {
        let frame = frame_of(&request(&[b"aaaa", b"bbbb"]), 9);
        let mut decoded = ProduceRequest::decode(&mut frame.clone(), 9).expect("decodes");
        let mut taken = take_records(frame, &mut decoded);
        taken.records[0][0].as_mut().expect("records")[0] = b'x';
        assert_eq!(taken.records[0][0].as_deref(), Some(&b"xaaa"[..]));
        assert_eq!(taken.records[0][1].as_deref(), Some(&b"bbbb"[..]));
    }

    #[test]
    fn a_frame_still_shared_is_copied_and_counted() {
        let frame = frame_of(&request(&[b"first", b"second"]), 9);
        let mut decoded = ProduceRequest::decode(&mut frame.clone(), 9).expect("decodes");
        let held = frame.clone();
        let taken = take_records(frame, &mut decoded);
        assert_eq!(taken.copied_bytes, 11);
        assert_eq!(taken.records[0][1].as_deref(), Some(&b"second"[..]));
        drop(held);
    }

    #[test]
    fn a_header_slice_left_alive_forces_the_copy() {
        // The header's client id is a slice of the frame: the handler drops
        // it before taking the records; kept, it makes them copies.
        let mut out = BytesMut::new();
        let header = RequestHeader::default()
            .with_request_api_key(0)
            .with_request_api_version(9)
            .with_client_id(Some(StrBytes::from_static_str("client")));
        header.encode(&mut out, 2).expect("header");
        request(&[b"records"]).encode(&mut out, 9).expect("body");
        let frame = out.freeze();
        let mut cursor = frame.clone();
        let header = RequestHeader::decode(&mut cursor, 2).expect("header");
        let mut decoded = ProduceRequest::decode(&mut cursor, 9).expect("body");
        drop(cursor);
        let copied = take_records(frame, &mut decoded).copied_bytes;
        assert_eq!(copied, 7, "the header still holds the frame");
        assert_eq!(header.client_id.as_deref(), Some("client"));
    }

    #[test]
    fn absent_and_empty_records_stay_so() {
        let mut r = request(&[b"", b"abc"]);
        r.topic_data[0].partition_data.push(
            PartitionProduceData::default()
                .with_index(2)
                .with_records(None),
        );
        let frame = frame_of(&r, 9);
        let mut decoded = ProduceRequest::decode(&mut frame.clone(), 9).expect("decodes");
        let taken = take_records(frame, &mut decoded);
        assert_eq!(taken.records[0][0].as_deref(), Some(&b""[..]));
        assert_eq!(taken.records[0][1].as_deref(), Some(&b"abc"[..]));
        assert_eq!(taken.records[0][2], None);
        assert_eq!(taken.copied_bytes, 0);
    }
}
