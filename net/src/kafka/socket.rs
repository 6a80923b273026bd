//! One direction of a Kafka connection's socket, with the two transfers
//! the hot path needs that glommio's stream does not offer: a read into a
//! frame's unfilled capacity (so a receive buffer is never zeroed first)
//! and a vectored write of a [`ResponseFrame`]'s parts (so record bytes are
//! sent from where the log keeps them).
//!
//! Owns: [`SocketHalf`]. Both transfers first try the kernel directly,
//! non-blocking (`recv`/`sendmsg` with `MSG_DONTWAIT`), which is what the
//! socket holds or takes at once; only when it would block do they wait
//! through glommio's reactor with a one-byte read or a write of the next
//! part, which also re-arms the reactor's readiness poll. Any wait is
//! bounded by `stall`, after which the connection ends.
//!
//! Invariant: the cell holding the stream is borrowed only inside a poll or
//! a non-blocking call, never across an await; glommio keeps a read and a
//! write source apart, so the reader and the writer task can both be
//! pending.

use std::cell::RefCell;
use std::io::{self, IoSlice};
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use glommio::net::TcpStream;

use super::response_frame::ResponseFrame;
use super::server::with_deadline;

/// Parts given to one `sendmsg` at most (Linux's IOV_MAX).
const MAX_IOVECS: usize = 1024;

/// A timeout or an I/O error of a transfer.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    #[error("{0}")]
    Stalled(&'static str),
}

/// One direction of a connection's socket; the reader and the writer task
/// each hold one.
pub struct SocketHalf(pub Rc<RefCell<TcpStream>>);

impl SocketHalf {
    /// Appends to `frame` what the socket holds now, at most `max` bytes,
    /// into its spare capacity: `None` when nothing is waiting.
    fn recv_now(&self, frame: &mut BytesMut, max: usize) -> io::Result<Option<usize>> {
        let fd = self.0.borrow().as_raw_fd();
        let spare = frame.spare_capacity_mut();
        let len = max.min(spare.len());
        // SAFETY: `recv` writes at most `len` bytes at the start of the
        // spare capacity, which holds at least `len`.
        let Some(got) = nonblocking(|| unsafe {
            libc::recv(fd, spare.as_mut_ptr().cast(), len, libc::MSG_DONTWAIT)
        })?
        else {
            return Ok(None);
        };
        if got == 0 && len > 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        // SAFETY: the kernel initialised the `got` bytes after the length.
        unsafe { frame.set_len(frame.len() + got) };
        Ok(Some(got))
    }

    /// Reads `n` more bytes into `frame` (whose spare capacity holds
    /// them), all within `stall`: a peer that trickles them slower ends the
    /// connection.
    pub async fn read_into(
        &mut self,
        frame: &mut BytesMut,
        n: usize,
        stall: Duration,
    ) -> Result<(), TransferError> {
        let end = frame.len() + n;
        debug_assert!(end <= frame.capacity(), "the frame holds what is read");
        let deadline = Instant::now() + stall;
        while frame.len() < end {
            if self.recv_now(frame, end - frame.len())?.is_some() {
                continue;
            }
            // Nothing waiting: wait through the reactor for the next byte.
            let mut byte = [0u8; 1];
            let left = deadline.saturating_duration_since(Instant::now());
            let got = with_deadline(left, self.read(&mut byte))
                .await
                .ok_or(TransferError::Stalled("request bytes stopped arriving"))??;
            if got == 0 {
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
            }
            frame.put_u8(byte[0]);
        }
        Ok(())
    }

    /// Sends what the socket takes now of `parts`: `None` when it takes
    /// nothing.
    fn send_now(&self, parts: &[IoSlice<'_>]) -> io::Result<Option<usize>> {
        let fd = self.0.borrow().as_raw_fd();
        // SAFETY: an all-zero msghdr is valid (no name, no control data).
        let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
        // IoSlice is ABI-compatible with iovec; sendmsg only reads them.
        message.msg_iov = parts.as_ptr() as *mut libc::iovec;
        message.msg_iovlen = parts.len() as _;
        // SAFETY: `message` points at `parts`, live for the call.
        nonblocking(|| unsafe {
            libc::sendmsg(fd, &message, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
        })
    }

    /// Writes `frame` whole; a peer that takes none of it for `stall` ends
    /// the connection.
    pub async fn write_frame(
        &mut self,
        frame: &ResponseFrame,
        stall: Duration,
    ) -> Result<(), TransferError> {
        let mut at = 0;
        while at < frame.len() {
            let sent = self.send_now(&frame.io_slices(at, MAX_IOVECS))?;
            if let Some(n) = sent.filter(|n| *n > 0) {
                at += n;
                continue;
            }
            // The socket is full: write the next part's bytes through the
            // reactor, which waits until it drains.
            let next = frame.io_slices(at, 1);
            let Some(part) = next.first() else { break };
            let n = with_deadline(stall, self.write(part))
                .await
                .ok_or(TransferError::Stalled("the peer stopped reading"))??;
            if n == 0 {
                return Err(io::Error::from(io::ErrorKind::WriteZero).into());
            }
            at += n;
        }
        Ok(())
    }
}

/// The result of a non-blocking socket call: the bytes it moved, `None`
/// when it would block; retried when a signal interrupts it.
fn nonblocking(mut call: impl FnMut() -> isize) -> io::Result<Option<usize>> {
    loop {
        let moved = call();
        if moved >= 0 {
            return Ok(Some(moved as usize));
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => return Ok(None),
            _ => return Err(e),
        }
    }
}

impl AsyncRead for SocketHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_read(cx, buf)
    }
}

impl AsyncWrite for SocketHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_close(cx)
    }
}
