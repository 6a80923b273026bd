//! The internal listener's frames: what voters and brokers send each other.
//!
//! Owns: [`Message`] and its framing. A frame is a 4-byte big-endian length
//! and then an rkyv-archived [`Envelope`] (format version, kind, body); the
//! body of a Raft call or answer is openraft's message as JSON (openraft's
//! types are serde types), an application call or answer is bytes its
//! handler defines.
//!
//! Invariants: [`decode`] never panics and never allocates more than the
//! frame it is given (the length is checked against [`FRAME_MAX_BYTES`]
//! before anything is read); an envelope of another format version or an
//! unknown kind is refused, not guessed at.

use rkyv::rancor;
use rkyv::util::AlignedVec;

use crate::network::{RaftRequest, RaftResponse};

/// The format version this build speaks.
pub const WIRE_VERSION: u16 = 1;

/// Largest frame (a snapshot is at most a 16 MiB checkpoint, as JSON).
pub const FRAME_MAX_BYTES: usize = 64 << 20;

/// What a frame holds.
#[derive(Debug, Clone)]
pub enum Message {
    /// A Raft call from a voter.
    Raft(RaftRequest),
    /// The answer to a Raft call.
    RaftAnswer(RaftResponse),
    /// A call its receiver's application handles (a proposal forwarded to
    /// the controller leader).
    App(Vec<u8>),
    /// The answer to an application call.
    AppAnswer(Vec<u8>),
    /// The receiver could not handle the call.
    Refused(String),
}

/// The archived form of a frame.
#[derive(Debug, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct Envelope {
    pub version: u16,
    pub kind: u16,
    pub body: Vec<u8>,
}

const RAFT: u16 = 1;
const RAFT_ANSWER: u16 = 2;
const APP: u16 = 3;
const APP_ANSWER: u16 = 4;
const REFUSED: u16 = 5;

/// Why a frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("frame of {0} bytes exceeds the limit of {FRAME_MAX_BYTES}")]
    TooLarge(usize),
    #[error("malformed envelope: {0}")]
    Envelope(String),
    #[error("format version {0} (this build speaks {WIRE_VERSION})")]
    Version(u16),
    #[error("unknown message kind {0}")]
    Kind(u16),
    #[error("malformed body: {0}")]
    Body(String),
}

/// Encodes `message` as a whole frame, length first.
pub fn encode(message: &Message) -> Vec<u8> {
    let (kind, body) = match message {
        Message::Raft(r) => (RAFT, serde_json::to_vec(r)),
        Message::RaftAnswer(r) => (RAFT_ANSWER, serde_json::to_vec(r)),
        Message::App(b) => (APP, Ok(b.clone())),
        Message::AppAnswer(b) => (APP_ANSWER, Ok(b.clone())),
        Message::Refused(s) => (REFUSED, Ok(s.as_bytes().to_vec())),
    };
    let envelope = Envelope {
        version: WIRE_VERSION,
        kind,
        // openraft's messages are plain data; serializing them to memory
        // does not fail.
        body: body.unwrap_or_default(),
    };
    let archived = rkyv::to_bytes::<rancor::Error>(&envelope)
        .map(|v| v.to_vec())
        .unwrap_or_default();
    let mut frame = Vec::with_capacity(4 + archived.len());
    frame.extend_from_slice(&(archived.len() as u32).to_be_bytes());
    frame.extend_from_slice(&archived);
    frame
}

/// The length a frame's first four bytes announce, checked.
pub fn frame_len(header: [u8; 4]) -> Result<usize, WireError> {
    let len = u32::from_be_bytes(header) as usize;
    if len > FRAME_MAX_BYTES {
        return Err(WireError::TooLarge(len));
    }
    Ok(len)
}

/// Decodes a frame's body (the bytes after its length).
pub fn decode(bytes: &[u8]) -> Result<Message, WireError> {
    if bytes.len() > FRAME_MAX_BYTES {
        return Err(WireError::TooLarge(bytes.len()));
    }
    // rkyv needs the bytes aligned for the archived type; one copy.
    let mut aligned = AlignedVec::<16>::with_capacity(bytes.len());
    aligned.extend_from_slice(bytes);
    let envelope = rkyv::from_bytes::<Envelope, rancor::Error>(&aligned)
        .map_err(|e| WireError::Envelope(e.to_string()))?;
    if envelope.version != WIRE_VERSION {
        return Err(WireError::Version(envelope.version));
    }
    let body = envelope.body;
    let json = |e: serde_json::Error| WireError::Body(e.to_string());
    Ok(match envelope.kind {
        RAFT => Message::Raft(serde_json::from_slice(&body).map_err(json)?),
        RAFT_ANSWER => Message::RaftAnswer(serde_json::from_slice(&body).map_err(json)?),
        APP => Message::App(body),
        APP_ANSWER => Message::AppAnswer(body),
        REFUSED => Message::Refused(String::from_utf8_lossy(&body).into_owned()),
        other => return Err(WireError::Kind(other)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips() {
        for message in [
            Message::App(b"proposal".to_vec()),
            Message::AppAnswer(vec![]),
            Message::Refused("stopping".into()),
        ] {
            let frame = encode(&message);
            let len = frame_len(frame[..4].try_into().expect("4 bytes")).expect("in bounds");
            assert_eq!(len, frame.len() - 4);
            let back = decode(&frame[4..]).expect("decodes");
            assert_eq!(format!("{back:?}"), format!("{message:?}"));
        }
    }

    #[test]
    fn bad_frames_are_refused_not_guessed() {
        assert_eq!(
            frame_len(u32::MAX.to_be_bytes()),
            Err(WireError::TooLarge(u32::MAX as usize))
        );
        assert!(matches!(decode(b"garbage"), Err(WireError::Envelope(_))));
        let other_version = Envelope {
            version: 99,
            kind: APP,
            body: vec![],
        };
        let bytes = rkyv::to_bytes::<rancor::Error>(&other_version).expect("archives");
        assert!(matches!(decode(&bytes), Err(WireError::Version(99))));
        let unknown = Envelope {
            version: WIRE_VERSION,
            kind: 77,
            body: vec![],
        };
        let bytes = rkyv::to_bytes::<rancor::Error>(&unknown).expect("archives");
        assert!(matches!(decode(&bytes), Err(WireError::Kind(77))));
        let bad_json = Envelope {
            version: WIRE_VERSION,
            kind: RAFT,
            body: b"{".to_vec(),
        };
        let bytes = rkyv::to_bytes::<rancor::Error>(&bad_json).expect("archives");
        assert!(matches!(decode(&bytes), Err(WireError::Body(_))));
    }
}
