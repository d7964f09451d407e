//! The bytes on a connection: a stream with what has been read from it but not used yet
//! ([`Wire`]), and the body relay that copies a message body from one connection to another
//! by its framing — as it is, or as chunks when the length is not known up front — counting the
//! bytes, bounding each wait, and batching small pieces into one write.

use std::io::{self, IoSlice};
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::chunked::{self, Decoded, Decoder};
use super::head::Framing;

/// Bytes read at a time from a client (a request head fits).
pub const CLIENT_READ: usize = 4 * 1024;
/// Bytes read at a time from a backend (a small response fits whole).
pub const BACKEND_READ: usize = 16 * 1024;
/// Pieces of body up to this size are copied behind what is already queued; larger ones go out
/// in one vectored write with it.
const COPY_UNDER: usize = 16 * 1024;

thread_local! {
    /// Emptied read buffers of this thread, for the next read that needs one: a request does
    /// not allocate its buffers, and idle connections hold none.
    static SPARE: std::cell::RefCell<Vec<BytesMut>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Spare buffers kept per thread at most.
const MAX_SPARE: usize = 64;

/// Gives `buf` (emptied) to this thread's spares; its memory is reused once nothing else
/// refers to it.
pub fn spare(mut buf: BytesMut) {
    if buf.capacity() == 0 {
        return;
    }
    buf.clear();
    SPARE.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < MAX_SPARE {
            s.push(buf);
        }
    });
}

/// A buffer from this thread's spares (or a new, empty one): for heads being written.
pub fn spare_buffer() -> BytesMut {
    SPARE.with(|s| s.borrow_mut().pop()).unwrap_or_default()
}

/// A stream and the bytes read from it that are not used yet.
#[derive(Debug)]
pub struct Wire<S> {
    pub io: S,
    pub buf: BytesMut,
    /// How much to read at a time.
    read_size: usize,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Wire<S> {
    pub fn new(io: S, read_size: usize) -> Self {
        Wire { io, buf: BytesMut::new(), read_size }
    }

    /// Gives the buffer to the thread's spares if it is empty (between messages).
    pub fn release_buffer(&mut self) {
        if self.buf.is_empty() {
            spare(std::mem::take(&mut self.buf));
        }
    }

    /// Reads what the stream has into the buffer: the bytes read, 0 at the end of the stream.
    pub async fn fill(&mut self) -> io::Result<usize> {
        if self.buf.capacity() == 0 {
            self.buf = spare_buffer();
        }
        if self.buf.capacity() - self.buf.len() < self.read_size / 4 {
            self.buf.reserve(self.read_size);
        }
        self.io.read_buf(&mut self.buf).await
    }

    /// [`Wire::fill`] within `limit`; the end of the stream is an error.
    pub async fn fill_within(&mut self, limit: Duration) -> io::Result<usize> {
        match tokio::time::timeout(limit, self.fill()).await {
            Ok(Ok(0)) => Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(r) => r,
            Err(_) => Err(io::ErrorKind::TimedOut.into()),
        }
    }
}

/// Reads give the buffered bytes first, then the stream's (an upgraded connection, or one
/// handed to the HTTP/2 server, loses nothing already read); writes go to the stream.
impl<S: AsyncRead + Unpin> AsyncRead for Wire<S> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        out: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.buf.is_empty() {
            let n = this.buf.len().min(out.remaining());
            out.put_slice(&this.buf.split_to(n));
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut this.io).poll_read(cx, out)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Wire<S> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> std::task::Poll<io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Writes `a` then `b`, in as few writes as the stream takes, within `limit`.
pub async fn write_two<W: AsyncWrite + Unpin>(
    io: &mut W,
    mut a: &[u8],
    mut b: &[u8],
    limit: Duration,
) -> io::Result<()> {
    let write = async {
        while !a.is_empty() || !b.is_empty() {
            let n = if a.is_empty() {
                io.write(b).await?
            } else if b.is_empty() {
                io.write(a).await?
            } else {
                io.write_vectored(&[IoSlice::new(a), IoSlice::new(b)]).await?
            };
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            let from_a = n.min(a.len());
            a = &a[from_a..];
            b = &b[n - from_a..];
        }
        io.flush().await
    };
    tokio::time::timeout(limit, write).await.unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
}

/// Why a body relay stopped short.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// Reading the body failed, timed out or met the end of the stream early.
    #[error("reading the body: {0}")]
    Read(io::Error),
    #[error("writing the body: {0}")]
    Write(io::Error),
    #[error(transparent)]
    Chunked(#[from] chunked::ChunkError),
    /// More than the allowed body size (`proxy-body-size`).
    #[error("the body exceeds {0} bytes")]
    TooLarge(u64),
}

/// How a relay treats its two sides.
#[derive(Debug, Clone, Copy)]
pub struct Relay {
    /// The body as it arrives.
    pub from: Framing,
    /// Write it chunked (else as it is: the length is the same, or the end is the close).
    pub chunked: bool,
    /// The longest wait for a read.
    pub read_timeout: Duration,
    /// The longest wait for a write.
    pub write_timeout: Duration,
    /// Body bytes allowed at most.
    pub limit: Option<u64>,
}

/// Copies a body from `from` to `to` behind `queued` (bytes waiting to go out first, such as
/// the head; sent and cleared). Returns the body's size (its data, without framing).
pub async fn relay<R, W>(from: &mut Wire<R>, to: &mut W, queued: &mut BytesMut, how: Relay) -> Result<u64, RelayError>
where
    R: AsyncRead + AsyncWrite + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut left = match how.from {
        Framing::Length(n) => n,
        _ => u64::MAX,
    };
    let mut decoder = (how.from == Framing::Chunked).then(Decoder::default);
    let mut total = 0u64;
    let mut ended = how.from == Framing::Empty;
    while !ended {
        // The next piece of data already read, if any.
        let piece = match &mut decoder {
            Some(d) => match d.decode(&mut from.buf)? {
                Decoded::Data(data) => Some(data),
                Decoded::More => None,
                Decoded::Done => {
                    ended = true;
                    None
                }
            },
            None if from.buf.is_empty() => None,
            None => {
                let n = left.min(from.buf.len() as u64) as usize;
                left -= n as u64;
                ended = left == 0;
                Some(from.buf.split_to(n).freeze())
            }
        };
        if let Some(data) = piece {
            total += data.len() as u64;
            if how.limit.is_some_and(|l| total > l) {
                return Err(RelayError::TooLarge(how.limit.unwrap_or_default()));
            }
            if how.chunked {
                chunked::put_chunk_start(queued, data.len());
            }
            if data.len() < COPY_UNDER {
                queued.put_slice(&data);
            } else {
                write_two(to, queued, &data, how.write_timeout).await.map_err(RelayError::Write)?;
                queued.clear();
            }
            if how.chunked {
                queued.put_slice(chunked::CHUNK_END);
            }
            continue;
        }
        if ended {
            break;
        }
        // Nothing more read: what is queued goes out before waiting for more.
        if !queued.is_empty() {
            write_two(to, queued, &[], how.write_timeout).await.map_err(RelayError::Write)?;
            queued.clear();
        }
        match tokio::time::timeout(how.read_timeout, from.fill()).await {
            Ok(Ok(0)) if how.from == Framing::UntilClose => ended = true,
            Ok(Ok(0)) => return Err(RelayError::Read(io::ErrorKind::UnexpectedEof.into())),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(RelayError::Read(e)),
            Err(_) => return Err(RelayError::Read(io::ErrorKind::TimedOut.into())),
        }
    }
    if how.chunked {
        queued.put_slice(chunked::LAST_CHUNK);
    }
    if !queued.is_empty() {
        write_two(to, queued, &[], how.write_timeout).await.map_err(RelayError::Write)?;
        queued.clear();
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(5);

    async fn run(input: &[u8], how: Relay) -> (Result<u64, RelayError>, Vec<u8>, BytesMut) {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        client.write_all(input).await.unwrap();
        drop(client);
        let mut from = Wire::new(server, 64);
        let (mut out_w, mut out_r) = tokio::io::duplex(1 << 20);
        let mut queued = BytesMut::from(&b"HEAD|"[..]);
        let r = relay(&mut from, &mut out_w, &mut queued, how).await;
        drop(out_w);
        let mut out = Vec::new();
        out_r.read_to_end(&mut out).await.unwrap();
        (r, out, from.buf)
    }

    fn how(from: Framing, chunked: bool) -> Relay {
        Relay { from, chunked, read_timeout: T, write_timeout: T, limit: None }
    }

    #[tokio::test]
    async fn bodies_are_relayed_by_their_framing() {
        let (r, out, rest) = run(b"helloNEXT", how(Framing::Length(5), false)).await;
        assert_eq!((r.unwrap(), out.as_slice(), &rest[..]), (5, &b"HEAD|hello"[..], &b"NEXT"[..]));
        let (r, out, _) = run(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", how(Framing::Chunked, true)).await;
        assert_eq!((r.unwrap(), out.as_slice()), (5, &b"HEAD|3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"[..]));
        let (r, out, _) = run(b"until the end", how(Framing::UntilClose, true)).await;
        assert_eq!(r.unwrap(), 13);
        assert!(out.starts_with(b"HEAD|") && out.ends_with(b"0\r\n\r\n"), "{:?}", String::from_utf8_lossy(&out));
        let (r, out, _) = run(b"3\r\nabc\r\n0\r\n\r\n", how(Framing::Chunked, false)).await;
        assert_eq!((r.unwrap(), out.as_slice()), (3, &b"HEAD|abc"[..]), "decoded");
        let big = vec![b'x'; 100_000];
        let (r, out, _) = run(&big, how(Framing::Length(100_000), false)).await;
        assert_eq!((r.unwrap(), out.len()), (100_000, 100_005));
    }

    #[tokio::test]
    async fn short_bodies_and_oversized_ones_fail() {
        let (r, _, _) = run(b"abc", how(Framing::Length(5), false)).await;
        assert!(matches!(r, Err(RelayError::Read(_))), "{r:?}");
        let (r, _, _) = run(b"3\r\nabc\r\n", how(Framing::Chunked, false)).await;
        assert!(matches!(r, Err(RelayError::Read(_))), "{r:?}");
        let (r, _, _) = run(b"3\r\nabcX\r\n", how(Framing::Chunked, false)).await;
        assert!(matches!(r, Err(RelayError::Chunked(_))), "{r:?}");
        let limited = Relay { limit: Some(4), ..how(Framing::Length(5), false) };
        let (r, _, _) = run(b"hello", limited).await;
        assert!(matches!(r, Err(RelayError::TooLarge(4))), "{r:?}");
    }
}
