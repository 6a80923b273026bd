//! A small blocking Kafka client for the command-line tools.
//!
//! Owns: one TCP connection to a broker, request framing (size, header,
//! body), correlation ids, and decoding the answer. It is for admin
//! commands (`sluice group ...`), one request at a time with a deadline; the
//! load generator has its own pipelined client.
//!
//! Invariants: every read and write has the timeout given at connect; a
//! response with another correlation id, or one that does not decode, is an
//! error, never a panic.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use bytes::{Buf, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

/// Largest response accepted (Kafka's default socket.request.max.bytes).
const RESPONSE_MAX_BYTES: usize = 100 * 1024 * 1024;

/// One connection to a broker.
pub struct Client {
    stream: TcpStream,
    correlation_id: i32,
    client_id: StrBytes,
}

impl Client {
    /// Connects to `addr` (HOST:PORT); reads and writes time out after
    /// `timeout`.
    pub fn connect(addr: &str, timeout: Duration) -> anyhow::Result<Client> {
        let target = addr
            .to_socket_addrs()
            .with_context(|| format!("resolving {addr}"))?
            .next()
            .ok_or_else(|| anyhow!("{addr} resolves to no address"))?;
        let stream = TcpStream::connect_timeout(&target, timeout)
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        Ok(Client {
            stream,
            correlation_id: 0,
            client_id: StrBytes::from_static_str("sluice-cli"),
        })
    }

    /// Sends `request` at `version` and returns its response.
    pub fn send<R: Request>(&mut self, request: &R, version: i16) -> anyhow::Result<R::Response> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, R::header_version(version))
            .map_err(|e| anyhow!("encoding a request header: {e}"))?;
        request
            .encode(&mut body, version)
            .map_err(|e| anyhow!("encoding api {} v{version}: {e}", R::KEY))?;
        let mut frame = Vec::with_capacity(4 + body.len());
        frame.extend_from_slice(&(body.len() as i32).to_be_bytes());
        frame.extend_from_slice(&body);
        self.stream.write_all(&frame).context("sending a request")?;

        let mut size = [0u8; 4];
        self.stream
            .read_exact(&mut size)
            .context("reading a response")?;
        let size = i32::from_be_bytes(size);
        if size < 4 || size as usize > RESPONSE_MAX_BYTES {
            bail!("response of {size} bytes");
        }
        let mut buf = vec![0u8; size as usize];
        self.stream
            .read_exact(&mut buf)
            .context("reading a response")?;
        let mut buf = bytes::Bytes::from(buf);
        let response_header =
            ResponseHeader::decode(&mut buf, R::Response::header_version(version))
                .map_err(|e| anyhow!("decoding a response header: {e}"))?;
        if response_header.correlation_id != self.correlation_id {
            bail!(
                "response to request {} while waiting for {}",
                response_header.correlation_id,
                self.correlation_id
            );
        }
        let response = R::Response::decode(&mut buf, version)
            .map_err(|e| anyhow!("decoding api {} v{version}: {e}", R::KEY))?;
        if buf.has_remaining() {
            tracing::debug!(bytes = buf.remaining(), "response had bytes after its body");
        }
        Ok(response)
    }
}
