//! A watcher on HTTP/1 client connections that finds requests carrying both `Content-Length`
//! and `Transfer-Encoding`. hyper handles those safely (the body is read as chunked and the
//! connection closed afterwards, RFC 9112 §6.1) but no longer shows the conflict to the service;
//! nginx rejects such requests with 400, and so does podnet: the watcher reads along the bytes
//! hyper reads, notes the index of the first conflicting request, and the handler answers it 400.
//!
//! It fails open: it follows request heads and `Content-Length` bodies only, and stops watching
//! (for good) at anything else — a chunked body, an upgrade, HTTP/2, an oversized or odd head.
//! A conflicting request is itself chunked, and hyper closes its connection, so nothing after it
//! needs watching.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Heads longer than this are not watched.
const MAX_HEAD: usize = 64 * 1024;

/// What the watcher found, shared with the request handler of the connection (and what tells
/// the connection task whether the connection is between requests, for [`super::park`]).
#[derive(Debug)]
pub struct Conflicts {
    /// The 0-based index of the first request with both headers (`u64::MAX`: none).
    first: AtomicU64,
    /// HTTP/1.1 requests the handler has seen on this connection.
    handled: AtomicU64,
    /// … and answered (the response head is out; its body may still be going).
    answered: AtomicU64,
    /// HTTP/1.1 request heads the watcher has read whole.
    heads: AtomicU64,
    /// Whether the watcher is between requests: no partial head, no body to come.
    between: AtomicBool,
}

impl Default for Conflicts {
    fn default() -> Self {
        Conflicts {
            first: AtomicU64::new(u64::MAX),
            handled: AtomicU64::new(0),
            answered: AtomicU64::new(0),
            heads: AtomicU64::new(0),
            between: AtomicBool::new(true),
        }
    }
}

impl Conflicts {
    /// Called once per request, in order: whether this request had both headers.
    pub fn next_request_conflicts(&self) -> bool {
        let index = self.handled.fetch_add(1, Ordering::Relaxed);
        self.first.load(Ordering::Relaxed) == index
    }

    /// Called once the handler has answered an HTTP/1.1 request.
    pub fn answered(&self) {
        self.answered.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether every request read has been answered and nothing of another has arrived: hyper
    /// holds no request bytes (the condition for parking the connection).
    pub fn idle(&self) -> bool {
        let heads = self.heads.load(Ordering::Relaxed);
        self.between.load(Ordering::Relaxed)
            && self.handled.load(Ordering::Relaxed) == heads
            && self.answered.load(Ordering::Relaxed) == heads
    }
}

#[derive(Debug)]
enum State {
    /// Collecting a request head.
    Head,
    /// Skipping this many body bytes.
    Body(u64),
    /// Not watching any more.
    Off,
}

/// The reader side of a client connection, watched.
#[derive(Debug)]
pub struct Sniffed<T> {
    inner: T,
    state: State,
    head: Vec<u8>,
    requests: u64,
    conflicts: Arc<Conflicts>,
}

impl<T> Sniffed<T> {
    pub fn new(inner: T, conflicts: Arc<Conflicts>) -> Self {
        Sniffed { inner, state: State::Head, head: Vec::new(), requests: 0, conflicts }
    }

    /// The connection under the watcher.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// Tells the connection task where the watcher stands.
    fn publish(&self) {
        let between = matches!(self.state, State::Head) && self.head.is_empty();
        self.conflicts.between.store(between, Ordering::Relaxed);
        self.conflicts.heads.store(self.requests, Ordering::Relaxed);
    }

    /// Follows `bytes`, just read from the client.
    fn follow(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match self.state {
                State::Off => return,
                State::Body(n) => {
                    let take = usize::try_from(n).unwrap_or(usize::MAX).min(bytes.len());
                    bytes = &bytes[take..];
                    let left = n - take as u64;
                    self.state = if left == 0 { State::Head } else { State::Body(left) };
                }
                State::Head if self.head.is_empty() => {
                    // Stray CRLFs between requests are allowed (RFC 9112 §2.2).
                    let skip = bytes.iter().take_while(|b| **b == b'\r' || **b == b'\n').count();
                    bytes = &bytes[skip..];
                    match find(bytes, b"\r\n\r\n") {
                        Some(at) => {
                            self.finish_head(&bytes[..at + 4]);
                            bytes = &bytes[at + 4..];
                        }
                        None if bytes.len() > MAX_HEAD => self.turn_off(),
                        None => {
                            self.head.extend_from_slice(bytes);
                            return;
                        }
                    }
                }
                State::Head => {
                    // The rest of a head begun in an earlier read.
                    let before = self.head.len();
                    let take = bytes.len().min(MAX_HEAD + 4 - before.min(MAX_HEAD));
                    self.head.extend_from_slice(&bytes[..take]);
                    let from = before.saturating_sub(3);
                    match find(&self.head[from..], b"\r\n\r\n") {
                        Some(at) => {
                            let end = from + at + 4;
                            let head = std::mem::take(&mut self.head);
                            self.finish_head(&head[..end]);
                            self.head = head;
                            self.head.clear();
                            bytes = &bytes[end - before..];
                        }
                        None if self.head.len() > MAX_HEAD => self.turn_off(),
                        None => return,
                    }
                }
            }
        }
    }

    fn turn_off(&mut self) {
        self.state = State::Off;
        self.head = Vec::new();
    }

    /// Reads a complete head: notes a conflict, and what follows the head.
    fn finish_head(&mut self, head: &[u8]) {
        let index = self.requests;
        self.requests += 1;
        let (conflict, next) = inspect(head);
        if conflict {
            let _ = self.conflicts.first.compare_exchange(u64::MAX, index, Ordering::Relaxed, Ordering::Relaxed);
        }
        self.state = next;
    }
}

/// Whether a request head has both `Content-Length` and `Transfer-Encoding`, and what follows it.
fn inspect(head: &[u8]) -> (bool, State) {
    let Ok(text) = std::str::from_utf8(head) else { return (false, State::Off) };
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    if !request_line.ends_with("HTTP/1.1") || request_line.starts_with("CONNECT ") {
        return (false, State::Off);
    }
    let (mut length, mut chunked, mut upgrade) = (None, false, false);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            match value.parse::<u64>() {
                Ok(n) if length.is_none_or(|l| l == n) => length = Some(n),
                _ => return (false, State::Off),
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = true;
        } else if name.eq_ignore_ascii_case("upgrade") {
            upgrade = true;
        }
    }
    let next = match (chunked || upgrade, length) {
        (true, _) => State::Off,
        (false, Some(n)) if n > 0 => State::Body(n),
        (false, _) => State::Head,
    };
    (chunked && length.is_some(), next)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

impl<T: AsyncRead + Unpin> AsyncRead for Sniffed<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if !matches!(this.state, State::Off) {
            if let Poll::Ready(Ok(())) = polled {
                this.follow(&buf.filled()[before..]);
                this.publish();
            }
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Sniffed<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&[u8]]) -> (Arc<Conflicts>, u64, bool) {
        let conflicts = Arc::new(Conflicts::default());
        let mut s = Sniffed::new((), conflicts.clone());
        for c in chunks {
            s.follow(c);
        }
        let off = matches!(s.state, State::Off);
        (conflicts, s.requests, off)
    }

    #[test]
    fn finds_the_conflicting_request_after_bodies_and_split_reads() {
        let (c, n, off) = run(&[
            b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
            b"\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r",
            b"\nPOST /c HTTP/1.1\r\ncontent-length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ]);
        assert_eq!(n, 3);
        assert!(off, "a chunked body ends the watch");
        assert!(!c.next_request_conflicts());
        assert!(!c.next_request_conflicts());
        assert!(c.next_request_conflicts());
    }

    #[test]
    fn body_bytes_that_look_like_heads_are_skipped() {
        let body = b"GET /x HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        let head = format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", body.len());
        let (c, n, off) = run(&[head.as_bytes(), body, b"GET / HTTP/1.1\r\n\r\n"]);
        assert_eq!((n, off), (2, false));
        assert!(!c.next_request_conflicts() && !c.next_request_conflicts());
    }

    #[test]
    fn http2_and_upgrades_turn_it_off() {
        assert!(run(&[b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"]).2);
        assert!(run(&[b"GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n"]).2);
    }
}
