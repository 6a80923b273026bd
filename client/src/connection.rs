//! One TCP connection to a broker: request framing (size, header, body),
//! correlation ids, and decoding answers.
//!
//! Owns: [`Client`], one request at a time with a deadline (admin
//! commands), and its two halves after [`Client::split`]: a
//! [`RequestWriter`] and a [`ResponseReader`] used from two threads, so a
//! load generator keeps several requests in flight on one connection (Kafka
//! answers a connection's requests in order).
//!
//! Invariants: every read and write has the timeout given at connect; a
//! response that does not decode, or is larger than the limit, is an error,
//! never a panic. Buffers are reused from request to request.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

/// Largest response accepted (Kafka's default socket.request.max.bytes).
const RESPONSE_MAX_BYTES: usize = 100 * 1024 * 1024;

/// A whole response frame arrived but its body did not decode at the
/// version asked for (the connection is still in step: the next response
/// can be read). Callers may retry at another version.
#[derive(Debug)]
pub struct UndecodableResponse(pub String);

impl std::fmt::Display for UndecodableResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "decoding a response: {}", self.0)
    }
}

impl std::error::Error for UndecodableResponse {}

/// One connection to a broker, one request at a time.
pub struct Client {
    writer: RequestWriter,
    reader: ResponseReader,
}

/// The sending half of a connection.
pub struct RequestWriter {
    stream: TcpStream,
    correlation_id: i32,
    client_id: StrBytes,
    frame: BytesMut,
}

/// The receiving half of a connection.
pub struct ResponseReader {
    stream: TcpStream,
    /// Frame buffers given back ([`ResponseReader::recycle`]), reused
    /// before any is allocated.
    spare: Vec<BytesMut>,
}

/// Frame buffers a reader keeps for reuse.
const SPARE_FRAMES: usize = 4;

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
        let reader = ResponseReader {
            stream: stream.try_clone()?,
            spare: Vec::new(),
        };
        Ok(Client {
            writer: RequestWriter {
                stream,
                correlation_id: 0,
                client_id: StrBytes::from_static_str("sluice"),
                frame: BytesMut::with_capacity(64 * 1024),
            },
            reader,
        })
    }

    /// The same connection, sending `client_id` in its requests' headers.
    pub fn with_client_id(mut self, client_id: &str) -> Client {
        self.writer.client_id = StrBytes::from_string(client_id.to_owned());
        self
    }

    /// Sends `request` at `version` and returns its response.
    pub fn send<R: Request>(&mut self, request: &R, version: i16) -> anyhow::Result<R::Response> {
        let id = self.writer.send(request, version)?;
        let (got, response) = self.reader.read::<R::Response>(version)?;
        if got != id {
            bail!("response to request {got} while waiting for {id}");
        }
        Ok(response)
    }

    /// Sends `request` at `version` without waiting for an answer (a
    /// Produce with acks=0 gets none).
    pub fn send_no_response<R: Request>(
        &mut self,
        request: &R,
        version: i16,
    ) -> anyhow::Result<()> {
        self.writer.send(request, version).map(|_| ())
    }

    /// The two halves, for a writer thread and a reader thread.
    pub fn split(self) -> (RequestWriter, ResponseReader) {
        (self.writer, self.reader)
    }
}

impl RequestWriter {
    /// Sends `request` at `version`; returns its correlation id.
    pub fn send<R: Request>(&mut self, request: &R, version: i16) -> anyhow::Result<i32> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        self.frame.clear();
        self.frame.extend_from_slice(&[0; 4]);
        header
            .encode(&mut self.frame, R::header_version(version))
            .map_err(|e| anyhow!("encoding a request header: {e}"))?;
        request
            .encode(&mut self.frame, version)
            .map_err(|e| anyhow!("encoding api {} v{version}: {e}", R::KEY))?;
        let size = (self.frame.len() - 4) as i32;
        self.frame[..4].copy_from_slice(&size.to_be_bytes());
        self.stream
            .write_all(&self.frame)
            .context("sending a request")?;
        Ok(self.correlation_id)
    }
}

impl ResponseReader {
    /// Reads the next response frame: its correlation id and body bytes.
    pub fn read_frame<Resp: HeaderVersion>(
        &mut self,
        version: i16,
    ) -> anyhow::Result<(i32, Bytes)> {
        let frame = self.read_whole_frame()?;
        Self::decode_header::<Resp>(frame, version)
    }

    /// The next frame's bytes after its size, header included.
    fn read_whole_frame(&mut self) -> anyhow::Result<Bytes> {
        let mut size = [0u8; 4];
        self.stream
            .read_exact(&mut size)
            .context("reading a response")?;
        let size = i32::from_be_bytes(size);
        if size < 4 || size as usize > RESPONSE_MAX_BYTES {
            bail!("response of {size} bytes");
        }
        let mut buf = self.frame_buffer(size as usize);
        self.stream
            .read_exact(&mut buf)
            .context("reading a response")?;
        Ok(buf.freeze())
    }

    /// The correlation id and body of `frame`.
    fn decode_header<Resp: HeaderVersion>(
        mut frame: Bytes,
        version: i16,
    ) -> anyhow::Result<(i32, Bytes)> {
        let header = ResponseHeader::decode(&mut frame, Resp::header_version(version))
            .map_err(|e| anyhow!("decoding a response header: {e}"))?;
        Ok((header.correlation_id, frame))
    }

    /// A buffer of `size` bytes to read a frame into: a spare one when one
    /// has the room (its old bytes are read over, not zeroed first; only
    /// bytes past its last frame's length are), else a new one. A new
    /// buffer of megabytes costs its pages' faults and zeroing: at
    /// catch-up, 29 MiB answers spent a third of the consumer's time there.
    fn frame_buffer(&mut self, size: usize) -> BytesMut {
        match self.spare.iter().position(|b| b.capacity() >= size) {
            Some(i) => {
                let mut buf = self.spare.swap_remove(i);
                buf.resize(size, 0);
                buf
            }
            None => BytesMut::zeroed(size),
        }
    }

    /// Gives back a frame's buffer once nothing refers to it (`frame` is
    /// the frame [`ResponseReader::read_with_frame`] returned, or any clone
    /// of it): the next frames are read into it. Ignored while other references
    /// remain, or when enough are kept.
    pub fn recycle(&mut self, frame: Bytes) {
        if self.spare.len() >= SPARE_FRAMES {
            return;
        }
        if let Ok(buf) = frame.try_into_mut() {
            self.spare.push(buf);
        }
    }

    /// Reads and decodes the next response.
    pub fn read<Resp: Decodable + HeaderVersion>(
        &mut self,
        version: i16,
    ) -> anyhow::Result<(i32, Resp)> {
        self.read_with_frame(version)
            .map(|(id, response, _)| (id, response))
    }

    /// [`ResponseReader::read`], also returning the frame the response was
    /// decoded from (its byte fields are slices of it), to be given back
    /// with [`ResponseReader::recycle`] once they are dropped.
    pub fn read_with_frame<Resp: Decodable + HeaderVersion>(
        &mut self,
        version: i16,
    ) -> anyhow::Result<(i32, Resp, Bytes)> {
        let frame = self.read_whole_frame()?;
        let (id, mut body) = Self::decode_header::<Resp>(frame.clone(), version)?;
        let response = Resp::decode(&mut body, version)
            .map_err(|e| anyhow::Error::new(UndecodableResponse(e.to_string())))?;
        if body.has_remaining() {
            tracing::debug!(
                bytes = body.remaining(),
                "response had bytes after its body"
            );
        }
        Ok((id, response, frame))
    }
}
