//! ShareFetch and ShareAcknowledge version 2 (KIP-1222) on the wire: the
//! protocol crate knows version 1 only, and version 2 differs from it by
//! a few fixed-size fields, so a version 2 request is read as version 1
//! with those fields taken out, and a version 2 response is version 1's
//! with its one new field put in.
//!
//! Owns: where the fields sit and what they hold. ShareFetch v2 adds
//! `ShareAcquireMode` (int8: 0 batch_optimized, 1 record_limit) and
//! `IsRenewAck` (bool) after `BatchSize`; ShareAcknowledge v2 adds
//! `IsRenewAck` after `ShareSessionEpoch`, and its response adds
//! `AcquisitionLockTimeoutMs` (int32) after the top-level `ErrorMessage`.
//! ShareFetch's response is the same in both versions. Pure: bytes in,
//! bytes out.
//!
//! Invariant: [`v1_body`] gives back exactly the request without the
//! version 2 fields, or an error (a request too short for them, a bad
//! length), never a panic.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ShareAcknowledgeResponse};

/// The version 2 fields of a request (their defaults in version 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct V2Fields {
    /// ShareFetch's `ShareAcquireMode`: 1 acquires at most `MaxRecords`
    /// records (record_limit), 0 whole batches (batch_optimized).
    pub acquire_mode: i8,
    /// The request carries RENEW acknowledgements (and, in a ShareFetch,
    /// fetches nothing).
    pub is_renew_ack: bool,
}

impl V2Fields {
    /// `ShareAcquireMode` record_limit.
    pub fn record_limit(&self) -> bool {
        self.acquire_mode == 1
    }
}

/// The APIs whose version 2 is translated here.
pub fn translated(api_key: ApiKey, version: i16) -> bool {
    version == 2 && matches!(api_key, ApiKey::ShareFetch | ApiKey::ShareAcknowledge)
}

/// Reads an unsigned varint at `at`; the value and the position after it.
pub(crate) fn uvarint(buf: &[u8], mut at: usize) -> Result<(u64, usize), String> {
    let mut value = 0u64;
    for shift in (0..35).step_by(7) {
        let byte = *buf.get(at).ok_or("a varint cut short")?;
        at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok((value, at));
        }
    }
    Err("a varint longer than five bytes".into())
}

/// The position after a compact nullable string at `at`.
pub(crate) fn skip_compact_string(buf: &[u8], at: usize) -> Result<usize, String> {
    let (len, at) = uvarint(buf, at)?;
    let end = at
        .checked_add(len.saturating_sub(1) as usize)
        .filter(|end| *end <= buf.len())
        .ok_or("a string longer than the request")?;
    Ok(end)
}

/// Where the version 2 fields of `api_key`'s request body start, and how
/// many bytes they take.
fn v2_fields_at(api_key: ApiKey, body: &[u8]) -> Result<(usize, usize), String> {
    let at = skip_compact_string(body, 0)?; // GroupId
    let at = skip_compact_string(body, at)?; // MemberId
    let at = at + 4; // ShareSessionEpoch
    let (at, len) = match api_key {
        // MaxWaitMs, MinBytes, MaxBytes, MaxRecords, BatchSize; then
        // ShareAcquireMode and IsRenewAck.
        ApiKey::ShareFetch => (at + 20, 2),
        // IsRenewAck.
        ApiKey::ShareAcknowledge => (at, 1),
        other => return Err(format!("{other:?} has no version 2 fields here")),
    };
    if at + len > body.len() {
        return Err("a request too short for its version 2 fields".into());
    }
    Ok((at, len))
}

/// A version 2 request body of `api_key` as version 1 (the fields it
/// adds taken out), and those fields.
pub fn v1_body(api_key: ApiKey, body: &[u8]) -> Result<(Bytes, V2Fields), String> {
    let (at, len) = v2_fields_at(api_key, body)?;
    let fields = match api_key {
        ApiKey::ShareFetch => V2Fields {
            acquire_mode: body[at] as i8,
            is_renew_ack: body[at + 1] != 0,
        },
        _ => V2Fields {
            acquire_mode: 0,
            is_renew_ack: body[at] != 0,
        },
    };
    let mut out = BytesMut::with_capacity(body.len() - len);
    out.put_slice(&body[..at]);
    out.put_slice(&body[at + len..]);
    Ok((out.freeze(), fields))
}

/// The version 2 fields of a whole request frame (header and body, no
/// size prefix): those of a ShareFetch or ShareAcknowledge at version 2;
/// the defaults for any other request (or a frame that does not read).
pub fn fields_of_frame(frame: &[u8]) -> V2Fields {
    let (Some(key), Some(version)) = (frame.get(0..2), frame.get(2..4)) else {
        return V2Fields::default();
    };
    let version = i16::from_be_bytes([version[0], version[1]]);
    let Ok(api_key) = ApiKey::try_from(i16::from_be_bytes([key[0], key[1]])) else {
        return V2Fields::default();
    };
    if !translated(api_key, version) {
        return V2Fields::default();
    }
    body_start(frame)
        .and_then(|start| v1_body(api_key, &frame[start..]))
        .map(|(_, fields)| fields)
        .unwrap_or_default()
}

/// Where the body starts in a request frame with a flexible (v2) header:
/// key, version, correlation id, client id (int16-length string), tagged
/// fields.
pub fn body_start(frame: &[u8]) -> Result<usize, String> {
    let client_id_len = frame
        .get(8..10)
        .map(|b| i16::from_be_bytes([b[0], b[1]]))
        .ok_or("a header cut short")?;
    let at = 10 + client_id_len.max(0) as usize;
    if at > frame.len() {
        return Err("a client id longer than the request".into());
    }
    skip_tagged_fields(frame, at)
}

/// The position after the tagged fields at `at`.
pub(crate) fn skip_tagged_fields(buf: &[u8], at: usize) -> Result<usize, String> {
    let (count, mut at) = uvarint(buf, at)?;
    for _ in 0..count {
        let (_, next) = uvarint(buf, at)?;
        let (size, next) = uvarint(buf, next)?;
        at = next
            .checked_add(size as usize)
            .filter(|end| *end <= buf.len())
            .ok_or("a tagged field longer than the body")?;
    }
    Ok(at)
}

/// Where a handler leaves a ShareAcknowledge v2 answer's lock timeout for
/// the encoder: an unknown tagged field the encoder takes out before it
/// encodes (never sent).
const LOCK_TIMEOUT_TAG: i32 = i32::MAX;

/// Leaves `lock_timeout_ms` in `response` for [`take_lock_timeout`].
pub fn set_lock_timeout(response: &mut ShareAcknowledgeResponse, lock_timeout_ms: i32) {
    response.unknown_tagged_fields.insert(
        LOCK_TIMEOUT_TAG,
        Bytes::copy_from_slice(&lock_timeout_ms.to_be_bytes()),
    );
}

/// The lock timeout [`set_lock_timeout`] left in `response`, taken out
/// (0 when none was).
pub fn take_lock_timeout(response: &mut ShareAcknowledgeResponse) -> i32 {
    response
        .unknown_tagged_fields
        .remove(&LOCK_TIMEOUT_TAG)
        .and_then(|b| <[u8; 4]>::try_from(&b[..]).ok())
        .map_or(0, i32::from_be_bytes)
}

/// A ShareAcknowledge response body encoded at version 1 as version 2:
/// `AcquisitionLockTimeoutMs` put in after the top-level `ErrorMessage`.
pub fn ack_response_v2(v1: &[u8], lock_timeout_ms: i32) -> Result<Bytes, String> {
    // ThrottleTimeMs, ErrorCode, then ErrorMessage.
    let at = skip_compact_string(v1, 6)?;
    let mut out = BytesMut::with_capacity(v1.len() + 4);
    out.put_slice(&v1[..at]);
    out.put_i32(lock_timeout_ms);
    out.put_slice(&v1[at..]);
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ShareFetch v2 body: group "g", member "m", epoch 7, the five
    /// ints, the v2 fields, then `rest`.
    fn fetch_v2(mode: i8, renew: bool, rest: &[u8]) -> Vec<u8> {
        let mut b = vec![2, b'g', 2, b'm'];
        b.extend_from_slice(&7i32.to_be_bytes());
        for v in [500i32, 1, 1 << 20, 10, 5] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        b.push(mode as u8);
        b.push(renew as u8);
        b.extend_from_slice(rest);
        b
    }

    #[test]
    fn a_share_fetch_v2_reads_as_v1_with_its_fields() {
        let body = fetch_v2(1, true, &[0xaa, 0xbb]);
        let (v1, fields) = v1_body(ApiKey::ShareFetch, &body).expect("reads");
        assert_eq!(
            fields,
            V2Fields {
                acquire_mode: 1,
                is_renew_ack: true
            }
        );
        assert!(fields.record_limit());
        assert_eq!(v1.len(), body.len() - 2);
        assert_eq!(&v1[..28], &body[..28]);
        assert_eq!(&v1[28..], &[0xaa, 0xbb]);
    }

    #[test]
    fn a_share_acknowledge_v2_reads_as_v1_and_answers_with_the_lock_timeout() {
        // Null group id (0), member "mm", epoch 3, IsRenewAck, then rest.
        let mut body = vec![0, 3, b'm', b'm'];
        body.extend_from_slice(&3i32.to_be_bytes());
        body.push(1);
        body.push(0x42);
        let (v1, fields) = v1_body(ApiKey::ShareAcknowledge, &body).expect("reads");
        assert!(fields.is_renew_ack);
        assert_eq!(&v1[..], &[0, 3, b'm', b'm', 0, 0, 0, 3, 0x42]);
        // Throttle 0, error 0, null message, then the rest.
        let response = [0, 0, 0, 0, 0, 0, 0, 0x99];
        let v2 = ack_response_v2(&response, 30_000).expect("a response");
        assert_eq!(&v2[..7], &response[..7]);
        assert_eq!(&v2[7..11], &30_000i32.to_be_bytes());
        assert_eq!(&v2[11..], &[0x99]);
    }

    #[test]
    fn short_or_malformed_bodies_are_errors() {
        let body = fetch_v2(0, false, &[]);
        for cut in 0..body.len() - 1 {
            assert!(v1_body(ApiKey::ShareFetch, &body[..cut]).is_err(), "{cut}");
        }
        assert!(v1_body(ApiKey::ShareFetch, &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(v1_body(ApiKey::Fetch, &body).is_err());
    }

    #[test]
    fn the_fields_are_found_behind_a_flexible_header() {
        let mut frame = Vec::new();
        frame.extend_from_slice(&78i16.to_be_bytes());
        frame.extend_from_slice(&2i16.to_be_bytes());
        frame.extend_from_slice(&9i32.to_be_bytes());
        frame.extend_from_slice(&3i16.to_be_bytes());
        frame.extend_from_slice(b"cli");
        frame.extend_from_slice(&[1, 0, 2, 0xee, 0xee]); // one tagged field
        frame.extend_from_slice(&fetch_v2(1, false, &[0]));
        let fields = fields_of_frame(&frame);
        assert_eq!(fields.acquire_mode, 1);
        assert!(!fields.is_renew_ack);
        frame[3] = 1; // version 1: no such fields
        assert_eq!(fields_of_frame(&frame), V2Fields::default());
        assert_eq!(fields_of_frame(&frame[..3]), V2Fields::default());
    }
}
