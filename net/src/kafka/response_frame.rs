//! Response frames as lists of byte slices, so a Fetch's record bytes are
//! written to the socket from where the log keeps them, never copied.
//!
//! Owns: [`ResponseFrame`] (what the connection's writer sends, with one
//! `sendmsg` for all its parts), [`records_field`] (what the Fetch and
//! ShareFetch handlers put in a partition's `records`) and [`encode`] (the size-prefixed
//! frame, its size computed before encoding, so its buffer is allocated
//! once).
//!
//! How records stay uncopied: the codec writes a partition's records with
//! one `put_slice` of the field's bytes. [`FrameWriter`] is the codec's
//! buffer; when a `put_slice` is a record set registered by
//! [`records_field`] (same address, same length) it ends the current
//! encoded part and appends the record set's own `Bytes` as parts. A record
//! set in one piece is its own field. One in several pieces (batches cached
//! apart) gets a stand-in field of the same length: a slice of a zeroed,
//! never written region ([`STAND_IN`]) at an address no other live stand-in
//! has, which the writer always replaces by the pieces.
//!
//! Invariants: the frame's bytes are exactly what encoding the response into
//! one contiguous buffer would give, with every record set in place of its
//! field; a stand-in's zeros are never sent (a stand-in the writer cannot
//! replace fails the encoding, and the connection closes). Registrations
//! live from a handler's last step to the encoding right after it (no await
//! between); each encoding clears the table, so it never holds more than
//! one response's record sets.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io::IoSlice;
use std::ops::Range;
use std::sync::LazyLock;

use crate::kafka::{share_offsets_v1, share_v2};
use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, DescribeShareGroupOffsetsResponse, ResponseHeader, ResponseKind,
    ShareAcknowledgeResponse,
};
use kafka_protocol::protocol::buf::ByteBufMut;
use kafka_protocol::protocol::Encodable;
use sluice_shard::message::RecordSet;

/// Record sets shorter than this are copied into the encoded part: a
/// separate slice costs more than the copy.
const ZERO_COPY_MIN_BYTES: usize = 512;

/// Longest record set given a stand-in; a longer one in several pieces is
/// joined (one copy, counted).
const STAND_IN_MAX_BYTES: usize = 64 << 20;

/// Distinct stand-in addresses: one per record set in pieces in flight.
const STAND_IN_SLOTS: usize = 1 << 16;

/// The stand-ins' region: zeroed and never written, so it costs address
/// space, not memory (its pages are never touched: the writer replaces
/// every stand-in before anything reads it). Static, so slicing it touches
/// no reference count the shards share.
static STAND_IN: LazyLock<Bytes> = LazyLock::new(|| {
    let region = vec![0u8; STAND_IN_SLOTS + STAND_IN_MAX_BYTES].into_boxed_slice();
    Bytes::from_static(Box::leak(region))
});

thread_local! {
    /// Record sets registered for the next encoding, by field address and
    /// length.
    static REGISTERED: RefCell<HashMap<(usize, usize), Vec<Bytes>>> = RefCell::new(HashMap::new());
    /// The next stand-in slot.
    static NEXT_SLOT: Cell<usize> = const { Cell::new(0) };
}

/// A response frame, size prefix included: encoded parts and record sets,
/// in order.
#[derive(Debug, Clone, Default)]
pub struct ResponseFrame {
    parts: Vec<Bytes>,
    len: usize,
}

impl ResponseFrame {
    /// A frame in one piece.
    pub fn contiguous(frame: Bytes) -> ResponseFrame {
        ResponseFrame {
            len: frame.len(),
            parts: vec![frame],
        }
    }

    /// Total bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for a frame of no bytes (never a real response).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `part` (a no-op for an empty one).
    fn push(&mut self, part: Bytes) {
        if !part.is_empty() {
            self.len += part.len();
            self.parts.push(part);
        }
    }

    /// The parts from byte `at` on, as I/O slices (at most `max`).
    pub fn io_slices(&self, mut at: usize, max: usize) -> Vec<IoSlice<'_>> {
        let mut out = Vec::with_capacity(self.parts.len().min(max));
        for part in &self.parts {
            if out.len() == max {
                break;
            }
            if at >= part.len() {
                at -= part.len();
                continue;
            }
            out.push(IoSlice::new(&part[at..]));
            at = 0;
        }
        out
    }
}

/// A partition's `records` field for `records` (whole batches in pieces),
/// registered so [`encode`] sends the pieces themselves. The
/// second value is the record bytes that will be copied all the same: a
/// set shorter than [`ZERO_COPY_MIN_BYTES`] (encoded in place), or one in
/// several pieces longer than [`STAND_IN_MAX_BYTES`] or while every
/// stand-in slot is taken (joined).
///
/// The field may only be encoded by [`encode`], next, with no await in
/// between: a stand-in read any other way is zeros.
pub(crate) fn records_field(records: RecordSet) -> (Bytes, usize) {
    let len = records.len();
    if len < ZERO_COPY_MIN_BYTES {
        // Copied into the encoded part, joined or not.
        return (records.to_bytes(), len);
    }
    let full = || REGISTERED.with(|r| r.borrow().len() >= STAND_IN_SLOTS);
    let field = match records.pieces() {
        [one] => one.clone(),
        _ if len > STAND_IN_MAX_BYTES || full() => return (records.to_bytes(), len),
        _ => {
            let slot = NEXT_SLOT.with(|n| {
                let slot = n.get();
                n.set((slot + 1) % STAND_IN_SLOTS);
                slot
            });
            STAND_IN.slice(slot..slot + len)
        }
    };
    register(&field, records.into_pieces());
    (field, 0)
}

fn register(field: &Bytes, pieces: Vec<Bytes>) {
    REGISTERED.with(|r| {
        r.borrow_mut()
            .insert((field.as_ptr() as usize, field.len()), pieces)
    });
}

fn is_stand_in(bytes: &[u8]) -> bool {
    let region = STAND_IN.as_ptr() as usize..STAND_IN.as_ptr() as usize + STAND_IN.len();
    region.contains(&(bytes.as_ptr() as usize))
}

/// The response frame for `body` (size prefix, header, body). A Fetch or
/// ShareFetch response is encoded in parts, with the record sets registered since the
/// last encoding sent as they are, into a buffer sized before encoding; any
/// other response (small) in one piece.
pub fn encode(
    correlation_id: i32,
    header_version: i16,
    version: i16,
    body: &ResponseKind,
) -> Result<ResponseFrame, String> {
    let registered = REGISTERED.with(|r| std::mem::take(&mut *r.borrow_mut()));
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    match body {
        ResponseKind::Fetch(fetch) => {
            return encode_in_parts(&header, header_version, fetch, version, registered)
        }
        ResponseKind::ShareFetch(fetch) => {
            // Version 2's response is version 1's (crate::kafka::share_v2).
            let version = if version == 2 { 1 } else { version };
            return encode_in_parts(&header, header_version, fetch, version, registered);
        }
        ResponseKind::ShareAcknowledge(ack) if version == 2 => {
            return encode_share_acknowledge_v2(&header, header_version, ack)
        }
        ResponseKind::DescribeShareGroupOffsets(offsets) => {
            return encode_describe_share_group_offsets(&header, header_version, offsets, version)
        }
        _ => {}
    }
    let mut out = BytesMut::with_capacity(256);
    out.put_i32(0); // size, patched below
    header
        .encode(&mut out, header_version)
        .map_err(|e| format!("response header: {e}"))?;
    body.encode(&mut out, version)
        .map_err(|e| format!("v{version} response: {e}"))?;
    let size =
        i32::try_from(out.len() - 4).map_err(|_| format!("response of {} bytes", out.len()))?;
    out[..4].copy_from_slice(&size.to_be_bytes());
    Ok(ResponseFrame::contiguous(out.freeze()))
}

/// A ShareAcknowledge v2 response: version 1's body with the lock
/// timeout the handler left in it put in place (crate::kafka::share_v2).
fn encode_share_acknowledge_v2(
    header: &ResponseHeader,
    header_version: i16,
    ack: &ShareAcknowledgeResponse,
) -> Result<ResponseFrame, String> {
    let mut ack = ack.clone();
    let lock_timeout_ms = share_v2::take_lock_timeout(&mut ack);
    let mut body = BytesMut::with_capacity(128);
    ack.encode(&mut body, 1)
        .map_err(|e| format!("v2 response: {e}"))?;
    let body = share_v2::ack_response_v2(&body, lock_timeout_ms)?;
    frame_of_body(header, header_version, &body)
}

/// The frame of a body encoded apart (a version the crate does not know,
/// translated): size prefix, header, then `body`.
fn frame_of_body(
    header: &ResponseHeader,
    header_version: i16,
    body: &[u8],
) -> Result<ResponseFrame, String> {
    let mut out = BytesMut::with_capacity(64 + body.len());
    out.put_i32(0); // size, patched below
    header
        .encode(&mut out, header_version)
        .map_err(|e| format!("response header: {e}"))?;
    out.put_slice(body);
    let size =
        i32::try_from(out.len() - 4).map_err(|_| format!("response of {} bytes", out.len()))?;
    out[..4].copy_from_slice(&size.to_be_bytes());
    Ok(ResponseFrame::contiguous(out.freeze()))
}

/// A DescribeShareGroupOffsets response: the lags the handler left in it
/// taken out, and at version 1 put in place (crate::kafka::share_offsets_v1).
fn encode_describe_share_group_offsets(
    header: &ResponseHeader,
    header_version: i16,
    offsets: &DescribeShareGroupOffsetsResponse,
    version: i16,
) -> Result<ResponseFrame, String> {
    let mut offsets = offsets.clone();
    let lags = share_offsets_v1::take_lags(&mut offsets);
    let mut body = BytesMut::with_capacity(256);
    offsets
        .encode(&mut body, 0)
        .map_err(|e| format!("v{version} response: {e}"))?;
    let body = if share_offsets_v1::translated(ApiKey::DescribeShareGroupOffsets, version) {
        share_offsets_v1::response_v1(&body, &lags)?
    } else {
        body.freeze()
    };
    frame_of_body(header, header_version, &body)
}

fn encode_in_parts<T: Encodable>(
    header: &ResponseHeader,
    header_version: i16,
    body: &T,
    version: i16,
    registered: HashMap<(usize, usize), Vec<Bytes>>,
) -> Result<ResponseFrame, String> {
    let header_size = header
        .compute_size(header_version)
        .map_err(|e| format!("response header: {e}"))?;
    let body_size = body
        .compute_size(version)
        .map_err(|e| format!("v{version} response: {e}"))?;
    let size = header_size + body_size;
    let size_prefix = i32::try_from(size).map_err(|_| format!("response of {size} bytes"))?;
    let record_bytes: usize = registered.values().flatten().map(Bytes::len).sum();
    let mut out = FrameWriter {
        head: BytesMut::with_capacity(4 + size.saturating_sub(record_bytes)),
        done: ResponseFrame::default(),
        registered,
        error: None,
        scratch: Vec::new(),
    };
    out.put_i32(size_prefix);
    header
        .encode(&mut out, header_version)
        .map_err(|e| format!("response header: {e}"))?;
    body.encode(&mut out, version)
        .map_err(|e| format!("v{version} response: {e}"))?;
    let frame = out.finish()?;
    if frame.len != 4 + size {
        return Err(format!(
            "v{version} response: encoded {} bytes, computed {}",
            frame.len - 4,
            size
        ));
    }
    Ok(frame)
}

/// The codec's buffer: encoded bytes go to `head`; a registered record set
/// closes `head` as a part and goes in as its own parts.
struct FrameWriter {
    head: BytesMut,
    /// The parts before `head`.
    done: ResponseFrame,
    registered: HashMap<(usize, usize), Vec<Bytes>>,
    error: Option<String>,
    /// What `range` hands out for a range already in `done` (an error).
    scratch: Vec<u8>,
}

impl FrameWriter {
    fn finish(mut self) -> Result<ResponseFrame, String> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.close_head();
        Ok(self.done)
    }

    /// Ends the open part: what is encoded so far becomes a part.
    fn close_head(&mut self) {
        let head = self.head.split().freeze();
        self.done.push(head);
    }

    fn fail(&mut self, why: String) {
        self.error.get_or_insert(why);
    }
}

// SAFETY: every method delegates to `head` (a `BytesMut`, whose
// `BufMut` is sound); `put_slice` only adds whole `Bytes` parts besides.
unsafe impl BufMut for FrameWriter {
    fn remaining_mut(&self) -> usize {
        self.head.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller initialised `cnt` bytes of `chunk_mut`, which
        // is `head`'s.
        unsafe { self.head.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.head.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        // Record sets (and so stand-ins) are never shorter.
        if src.len() >= ZERO_COPY_MIN_BYTES {
            if let Some(pieces) = self.registered.remove(&(src.as_ptr() as usize, src.len())) {
                self.close_head();
                for piece in pieces {
                    self.done.push(piece);
                }
                return;
            }
            if is_stand_in(src) {
                self.fail(format!(
                    "a stand-in of {} record bytes was not registered",
                    src.len()
                ));
                return;
            }
        }
        self.head.extend_from_slice(src);
    }
}

impl ByteBufMut for FrameWriter {
    fn offset(&self) -> usize {
        self.done.len() + self.head.len()
    }

    fn seek(&mut self, offset: usize) {
        match offset.checked_sub(self.done.len()) {
            Some(at) => self.head.resize(at, 0),
            None => self.fail(format!("seek to {offset}, before the open part")),
        }
    }

    fn range(&mut self, r: Range<usize>) -> &mut [u8] {
        let done = self.done.len();
        match (r.start.checked_sub(done), r.end.checked_sub(done)) {
            (Some(start), Some(end)) if end <= self.head.len() => &mut self.head[start..end],
            _ => {
                self.fail(format!("range {r:?} outside the open part"));
                self.scratch.resize(r.len(), 0);
                &mut self.scratch[..]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::{FetchResponse, TopicName};
    use kafka_protocol::protocol::StrBytes;

    use super::*;

    fn contiguous(
        correlation_id: i32,
        header_version: i16,
        version: i16,
        body: &ResponseKind,
    ) -> Bytes {
        let mut out = BytesMut::new();
        out.put_i32(0);
        ResponseHeader::default()
            .with_correlation_id(correlation_id)
            .encode(&mut out, header_version)
            .expect("header");
        body.encode(&mut out, version).expect("body");
        let size = (out.len() - 4) as i32;
        out[..4].copy_from_slice(&size.to_be_bytes());
        out.freeze()
    }

    fn batch(fill: u8, len: usize) -> Bytes {
        Bytes::from(vec![fill; len])
    }

    /// A fetch response whose partitions carry `sets` (each in pieces),
    /// built once with registered fields and once with joined ones.
    fn fetch(sets: &[Vec<Bytes>]) -> (ResponseKind, ResponseKind) {
        let build = |records: Vec<Bytes>| {
            let partitions = records
                .into_iter()
                .enumerate()
                .map(|(i, r)| {
                    PartitionData::default()
                        .with_partition_index(i as i32)
                        .with_records(Some(r))
                })
                .collect();
            ResponseKind::Fetch(FetchResponse::default().with_responses(vec![
                FetchableTopicResponse::default()
                    .with_topic(TopicName(StrBytes::from_static_str("t")))
                    .with_partitions(partitions),
            ]))
        };
        let plain = build(sets.iter().map(|s| Bytes::from(s.concat())).collect());
        let fields = sets
            .iter()
            .map(|s| {
                let (field, copied) = records_field(RecordSet::new(s.clone()));
                assert_eq!(copied, 0);
                field
            })
            .collect();
        (build(fields), plain)
    }

    #[test]
    fn record_sets_are_sent_as_they_are_and_the_bytes_match() {
        for version in [4, 11, 12, 16, 18] {
            let header_version = if version >= 12 { 1 } else { 0 };
            let one = vec![batch(1, 4000)];
            let pieces = vec![batch(2, 1000), batch(3, 2000), batch(4, 700)];
            let (registered, plain) = fetch(&[one.clone(), pieces.clone(), vec![]]);
            let frame = encode(7, header_version, version, &registered).expect("encodes");
            assert_eq!(
                Bytes::from(frame.parts.concat()),
                contiguous(7, header_version, version, &plain),
                "v{version}"
            );
            // Every record piece is a part of the frame, not a copy.
            for piece in one.iter().chain(&pieces) {
                assert!(
                    frame
                        .parts
                        .iter()
                        .any(|p| p.as_ptr() == piece.as_ptr() && p.len() == piece.len()),
                    "v{version}: a piece was copied"
                );
            }
        }
    }

    #[test]
    fn a_small_record_set_is_encoded_in_place_and_counted() {
        let (field, copied) = records_field(RecordSet::new(vec![batch(5, 100), batch(6, 50)]));
        assert_eq!((field.len(), copied), (150, 150));
        assert!(!is_stand_in(&field));
    }

    #[test]
    fn an_unregistered_stand_in_fails_rather_than_sending_zeros() {
        let (registered, _) = fetch(&[vec![batch(1, 600), batch(2, 600)]]);
        REGISTERED.with(|r| r.borrow_mut().clear());
        let err = encode(1, 1, 16, &registered).expect_err("must not encode");
        assert!(err.contains("stand-in"), "{err}");
    }

    #[test]
    fn each_encoding_clears_the_table() {
        let _ = records_field(RecordSet::new(vec![batch(1, 600), batch(2, 600)]));
        let other = ResponseKind::Fetch(FetchResponse::default());
        encode(1, 1, 16, &other).expect("encodes");
        assert!(REGISTERED.with(|r| r.borrow().is_empty()));
    }

    #[test]
    fn io_slices_start_where_asked() {
        let frame = ResponseFrame {
            parts: vec![batch(1, 3), batch(2, 4)],
            len: 7,
        };
        let from_2: Vec<usize> = frame.io_slices(2, 8).iter().map(|s| s.len()).collect();
        assert_eq!(from_2, [1, 4]);
        let from_5: Vec<usize> = frame.io_slices(5, 8).iter().map(|s| s.len()).collect();
        assert_eq!(from_5, [2]);
        assert_eq!(frame.io_slices(0, 1).len(), 1);
    }
}
