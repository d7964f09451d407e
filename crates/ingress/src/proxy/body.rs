//! The two body types of the proxy, without boxing: [`UpstreamBody`] (what is sent to a
//! backend — nothing, a buffered body that can be replayed on another endpoint, or the client's
//! stream counted and cut at `proxy-body-size`) and [`ResponseBody`] (what the client gets — a
//! small body of the proxy's own, or the backend's stream, counted for the response-size metric
//! and cut when the backend sends nothing for `proxy-read-timeout`).

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use super::upstream::Pooled;
use crate::metrics::RouteSeries;

/// Why a streamed request body was cut.
#[derive(Debug, thiserror::Error)]
#[error("the request body exceeds proxy-body-size ({limit} bytes)")]
pub struct BodyTooLarge {
    pub limit: u64,
}

/// Progress of a streamed request body, shared with the request handler.
#[derive(Debug, Default)]
pub struct BodyProgress {
    pub bytes: AtomicU64,
    pub too_large: AtomicBool,
    /// The whole body has been read from the client (and handed on).
    pub done: AtomicBool,
}

/// A request body on its way to a backend.
#[derive(Debug)]
pub enum UpstreamBody {
    /// No body, or one already read whole (replayable).
    Full(Option<Bytes>),
    /// The client's body, streamed.
    Stream { inner: Incoming, limit: Option<u64>, progress: Arc<BodyProgress> },
}

impl UpstreamBody {
    pub fn empty() -> Self {
        UpstreamBody::Full(None)
    }

    /// A copy for another attempt, when the body is replayable.
    pub fn replay(&self) -> Option<UpstreamBody> {
        match self {
            UpstreamBody::Full(b) => Some(UpstreamBody::Full(b.clone())),
            UpstreamBody::Stream { .. } => None,
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            UpstreamBody::Full(b) => Poll::Ready(b.take().filter(|b| !b.is_empty()).map(|b| Ok(Frame::data(b)))),
            UpstreamBody::Stream { inner, limit, progress } => {
                let frame = match Pin::new(&mut *inner).poll_frame(cx) {
                    Poll::Ready(Some(Ok(frame))) => frame,
                    Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
                    Poll::Ready(None) => {
                        progress.done.store(true, Ordering::Relaxed);
                        return Poll::Ready(None);
                    }
                    Poll::Pending => return Poll::Pending,
                };
                if inner.is_end_stream() {
                    progress.done.store(true, Ordering::Relaxed);
                }
                if let Some(data) = frame.data_ref() {
                    let total = progress.bytes.fetch_add(data.len() as u64, Ordering::Relaxed) + data.len() as u64;
                    if let Some(limit) = *limit {
                        if total > limit {
                            progress.too_large.store(true, Ordering::Relaxed);
                            return Poll::Ready(Some(Err(Box::new(BodyTooLarge { limit }))));
                        }
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Full(b) => b.as_ref().is_none_or(Bytes::is_empty),
            UpstreamBody::Stream { inner, .. } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            UpstreamBody::Stream { inner, .. } => inner.size_hint(),
        }
    }
}

/// Why a backend's response body was cut.
#[derive(Debug, thiserror::Error)]
#[error("the backend sent nothing for {0:?} (proxy-read-timeout) in the middle of its response body")]
pub struct ReadTimedOut(pub Duration);

/// A response body on its way to the client.
#[derive(Debug)]
pub enum ResponseBody {
    /// The proxy's own answer (errors, redirects, preflights).
    Full(Option<Bytes>),
    /// A backend's body; its size goes to the route's metrics when it ends or is dropped. As
    /// nginx's `proxy_read_timeout`, `read_timeout` bounds the wait between two reads: past it
    /// the body ends with an error (the client's connection or stream is cut, as nginx does).
    Upstream { inner: Incoming, meter: Meter, read_timeout: Duration, idle: IdleTimer },
}

/// The timer of a wait for the next read; made the first time the body has to wait, restarted
/// by the first wait after each read.
#[derive(Debug, Default)]
pub struct IdleTimer {
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The timer runs for the current wait (no read since it was set).
    running: bool,
}

impl IdleTimer {
    /// Waits at most `limit` from the first call since the last [`IdleTimer::read`]; ready when
    /// that time is up.
    fn poll_expired(&mut self, limit: Duration, cx: &mut Context<'_>) -> Poll<()> {
        use std::future::Future;
        let deadline = tokio::time::Instant::now() + limit;
        let sleep = self.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !self.running {
            sleep.as_mut().reset(deadline);
            self.running = true;
        }
        sleep.as_mut().poll(cx)
    }

    /// Something was read: the next wait starts afresh.
    fn read(&mut self) {
        self.running = false;
    }
}

impl ResponseBody {
    pub fn empty() -> Self {
        ResponseBody::Full(None)
    }

    pub fn text(s: &'static str) -> Self {
        ResponseBody::Full(Some(Bytes::from_static(s.as_bytes())))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            ResponseBody::Full(b) => Poll::Ready(b.take().filter(|b| !b.is_empty()).map(|b| Ok(Frame::data(b)))),
            ResponseBody::Upstream { inner, meter, read_timeout, idle } => {
                let mut polled = Pin::new(&mut *inner).poll_frame(cx);
                if polled.is_pending() {
                    if let Some(connection) = meter.connection.as_mut() {
                        // The body comes as the connection's IO is driven: drive it, look again.
                        connection.poll_io(cx);
                        polled = Pin::new(&mut *inner).poll_frame(cx);
                    }
                }
                match &polled {
                    Poll::Ready(Some(Ok(frame))) => {
                        if let Some(data) = frame.data_ref() {
                            meter.bytes += data.len() as u64;
                        }
                        meter.ended = inner.is_end_stream();
                    }
                    Poll::Ready(None) => meter.ended = true,
                    Poll::Ready(Some(Err(_))) => {}
                    Poll::Pending => {
                        return match idle.poll_expired(*read_timeout, cx) {
                            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(ReadTimedOut(*read_timeout))))),
                            Poll::Pending => Poll::Pending,
                        };
                    }
                }
                idle.read();
                polled.map_err(Into::into)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Full(b) => b.as_ref().is_none_or(Bytes::is_empty),
            ResponseBody::Upstream { inner, .. } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            ResponseBody::Upstream { inner, .. } => inner.size_hint(),
        }
    }
}

/// Counts a response body's bytes and reports them to its route's series when dropped; gives
/// the backend connection back to its pool then if the body was read to the end.
#[derive(Debug)]
pub struct Meter {
    series: Arc<RouteSeries>,
    bytes: u64,
    connection: Option<Pooled>,
    /// The response body has been read to its end.
    ended: bool,
    /// A streamed request body (the connection is reusable only once it was all sent).
    request: Option<Arc<BodyProgress>>,
}

impl Meter {
    pub fn new(series: Arc<RouteSeries>) -> Self {
        Meter { series, bytes: 0, connection: None, ended: false, request: None }
    }

    /// With the backend connection the body comes on (`ended`: the body is empty).
    pub fn with_connection(
        mut self,
        connection: Option<Pooled>,
        ended: bool,
        request: Option<Arc<BodyProgress>>,
    ) -> Self {
        self.connection = connection;
        self.ended = ended;
        self.request = request;
        self
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        self.series.record_response_size(self.bytes);
        if let Some(connection) = self.connection.take() {
            if self.ended && self.request.as_ref().is_none_or(|r| r.done.load(Ordering::Relaxed)) {
                connection.release();
            }
        }
    }
}
