//! One Kafka protocol connection from a shard to another broker's Kafka
//! listener, on the shard's executor: what a follower fetches its leader
//! with (replication speaks Kafka's own Fetch and OffsetForLeaderEpoch).
//!
//! Owns: framing (size, request header, body), correlation ids, and
//! decoding an answer out of one received frame, so the record bytes of a
//! Fetch answer are slices of that frame, never copied.
//!
//! Invariants: every call has a deadline on the shard's clock; an answer
//! larger than [`RESPONSE_MAX_BYTES`], with the wrong correlation id or
//! that does not decode is an error, and the caller drops the link.

use std::net::ToSocketAddrs;
use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use sluice_log::SourceBuffer;

use crate::env::Env;

/// Largest answer accepted (Kafka's `socket.request.max.bytes`).
pub const RESPONSE_MAX_BYTES: usize = 100 * 1024 * 1024;

/// A connection to one broker, one call at a time.
pub struct KafkaLink {
    stream: TcpStream,
    correlation_id: i32,
    client_id: StrBytes,
    env: Rc<dyn Env>,
    last_answer: Option<SourceBuffer>,
}

impl KafkaLink {
    /// Connects to `host:port` within `timeout`.
    pub async fn connect(
        host: &str,
        port: u16,
        client_id: String,
        env: Rc<dyn Env>,
        timeout: Duration,
    ) -> Result<KafkaLink, String> {
        let addr = (host, port)
            .to_socket_addrs()
            .map_err(|e| format!("resolving {host}:{port}: {e}"))?
            .next()
            .ok_or_else(|| format!("{host}:{port} resolves to nothing"))?;
        let stream = TcpStream::connect_timeout(addr, timeout)
            .await
            .map_err(|e| format!("connecting to {addr}: {e}"))?;
        let _ = stream.set_nodelay(true);
        Ok(KafkaLink {
            stream,
            correlation_id: 0,
            client_id: StrBytes::from_string(client_id),
            env,
            last_answer: None,
        })
    }

    /// The buffer the last answer was decoded from: its byte fields (a
    /// Fetch answer's records) are slices of it, which keep it allocated.
    pub fn last_answer_buffer(&self) -> Option<SourceBuffer> {
        self.last_answer
    }

    /// Sends `request` at `version` and waits for its answer, at most
    /// `timeout`.
    pub async fn call<R: Request>(
        &mut self,
        request: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response, String> {
        let env = self.env.clone();
        let call = self.exchange(request, version);
        let deadline = async {
            env.sleep(timeout).await;
            Err(format!("no answer within {timeout:?}"))
        };
        futures_lite::future::or(call, deadline).await
    }

    async fn exchange<R: Request>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<R::Response, String> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let correlation_id = self.correlation_id;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let mut frame = BytesMut::with_capacity(256);
        frame.extend_from_slice(&[0; 4]);
        header
            .encode(&mut frame, R::header_version(version))
            .map_err(|e| format!("encoding a request header: {e}"))?;
        request
            .encode(&mut frame, version)
            .map_err(|e| format!("encoding a request: {e}"))?;
        let size = (frame.len() - 4) as u32;
        frame[..4].copy_from_slice(&size.to_be_bytes());
        self.stream
            .write_all(&frame)
            .await
            .map_err(|e| format!("sending: {e}"))?;
        let mut size = [0u8; 4];
        self.stream
            .read_exact(&mut size)
            .await
            .map_err(|e| format!("reading an answer's size: {e}"))?;
        let size = u32::from_be_bytes(size) as usize;
        if size > RESPONSE_MAX_BYTES {
            return Err(format!("an answer of {size} bytes is over the limit"));
        }
        let mut body = vec![0u8; size];
        self.stream
            .read_exact(&mut body)
            .await
            .map_err(|e| format!("reading an answer: {e}"))?;
        self.last_answer = Some(SourceBuffer {
            id: body.as_ptr() as usize,
            len: body.len(),
        });
        let mut body = Bytes::from(body);
        let response_header =
            ResponseHeader::decode(&mut body, R::Response::header_version(version))
                .map_err(|e| format!("decoding an answer's header: {e}"))?;
        if response_header.correlation_id != correlation_id {
            return Err(format!(
                "answer for correlation id {} where {correlation_id} was expected",
                response_header.correlation_id
            ));
        }
        R::Response::decode(&mut body, version).map_err(|e| format!("decoding an answer: {e}"))
    }
}
