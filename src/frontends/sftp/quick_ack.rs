//! A connection's socket that acknowledges what it reads at once while the SSH handshake runs, so the client's next small packet is not held back for a delayed ACK.
//!
//! OpenSSH's client leaves Nagle's algorithm on for sessions without a terminal, `sftp`
//! among them. When the server's KEXINIT reaches it before it has sent its own, it sends its
//! KEXINIT and, at once, its KEX_ECDH_INIT: the second waits for the first to be acknowledged,
//! and Linux delays that ACK by 40 ms while the server has nothing to send (it waits for that
//! very packet). Measured on loopback: a third to a half of sessions took 58-70 ms to set up
//! instead of 15. Asking for a quick ACK after each read sends the pending one at once.

use std::os::fd::AsFd;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes read with quick ACKs: the handshake and the login, with room to spare.
const HANDSHAKE_BYTES: usize = 64 << 10;

/// `S` with quick ACKs for its first [`HANDSHAKE_BYTES`] read.
pub struct QuickAck<S> {
    inner: S,
    left: usize,
}

impl<S> QuickAck<S> {
    /// Wraps `inner`, a freshly accepted connection.
    pub fn new(inner: S) -> Self {
        QuickAck {
            inner,
            left: HANDSHAKE_BYTES,
        }
    }
}

impl<S: AsyncRead + AsFd + Unpin> AsyncRead for QuickAck<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        if read > 0 && self.left > 0 {
            self.left = self.left.saturating_sub(read);
            // Only a hint: a socket that refuses it acknowledges as it would have.
            let _ = rustix::net::sockopt::set_tcp_quickack(self.inner.as_fd(), true);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for QuickAck<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
