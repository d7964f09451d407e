//! Parking idle HTTP/1 connections. A keep-alive connection between requests costs hyper its
//! read and write buffers (16 KiB and more) for as long as the client keeps it open; nginx keeps
//! almost nothing for such a connection. After [`PARK_AFTER`] without a byte read or written and
//! with no request unanswered, the connection task asks hyper to finish the connection; the
//! [`Parkable`] reader it was given keeps the socket open instead of shutting it down and hands it
//! back when hyper drops it. The task then waits, holding only the socket, until the client sends
//! again (then a new hyper connection serves it) or the keep-alive timeout passes.
//!
//! Safe because the reader ([`super::sniff`]) knows the client's bytes: parking needs every
//! request head read to have reached the handler and been answered, and no partial head — so
//! hyper holds no request bytes it would drop when it finishes.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How long a connection must be quiet before it is parked.
pub const PARK_AFTER: Duration = Duration::from_secs(1);

/// What the connection task and its reader share.
#[derive(Debug)]
pub struct Slot<T> {
    start: Instant,
    /// Milliseconds after `start` of the last byte read or written.
    last_io: AtomicU64,
    /// Set by the task before it asks hyper to finish: the reader keeps the socket.
    requested: AtomicBool,
    socket: Mutex<Option<T>>,
}

impl<T> Slot<T> {
    pub fn new() -> Arc<Slot<T>> {
        Arc::new(Slot {
            start: Instant::now(),
            last_io: AtomicU64::new(0),
            requested: AtomicBool::new(false),
            socket: Mutex::new(None),
        })
    }

    fn touch(&self) {
        self.last_io.store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// How long since the last byte read or written.
    pub fn quiet_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_io.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }

    /// From now on the reader keeps the socket when hyper is done with it.
    pub fn request(&self) {
        self.requested.store(true, Ordering::Release);
    }

    /// The socket, once hyper has dropped the reader after [`Slot::request`].
    pub fn take(&self) -> Option<T> {
        self.socket.lock().expect("park slot").take()
    }
}

/// A connection's reader and writer as hyper holds it: notes activity, and once parking is
/// requested neither shuts the socket down nor closes it, but returns it to the [`Slot`].
#[derive(Debug)]
pub struct Parkable<T> {
    inner: Option<T>,
    slot: Arc<Slot<T>>,
}

impl<T> Parkable<T> {
    pub fn new(inner: T, slot: Arc<Slot<T>>) -> Self {
        slot.touch();
        Parkable { inner: Some(inner), slot }
    }

    fn io(&mut self) -> &mut T {
        self.inner.as_mut().expect("present until dropped")
    }

    fn parking(&self) -> bool {
        self.slot.requested.load(Ordering::Acquire)
    }
}

impl<T> Drop for Parkable<T> {
    fn drop(&mut self) {
        if self.parking() {
            *self.slot.socket.lock().expect("park slot") = self.inner.take();
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Parkable<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(this.io()).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.slot.touch();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Parkable<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(this.io()).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.slot.touch();
        }
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(this.io()).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.slot.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.as_ref().is_some_and(T::is_write_vectored)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.get_mut().io()).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.parking() {
            return Poll::Ready(Ok(()));
        }
        Pin::new(this.io()).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn the_socket_comes_back_only_when_parking_was_requested() {
        let (a, mut b) = tokio::io::duplex(64);
        let slot = Slot::new();
        let mut p = Parkable::new(a, slot.clone());
        p.write_all(b"hi").await.unwrap();
        let mut buf = [0u8; 2];
        b.read_exact(&mut buf).await.unwrap();
        assert!(slot.quiet_for() < PARK_AFTER);
        slot.request();
        p.shutdown().await.unwrap();
        drop(p);
        let mut back = slot.take().expect("the socket was handed back");
        back.write_all(b"again").await.unwrap();
        let mut buf = [0u8; 5];
        b.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"again", "still open");

        let slot = Slot::new();
        drop(Parkable::new(back, slot.clone()));
        assert!(slot.take().is_none(), "dropped without a request: closed");
        assert_eq!(b.read(&mut buf).await.unwrap(), 0);
    }
}
