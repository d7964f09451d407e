//! The proxy's own HTTP/1.1, for client connections that speak it (plain ones, and TLS ones
//! that did not choose `h2`) and for `HTTP`/`HTTPS` backends: as Pingora does, one task per
//! client connection reads a request head, decides with the shared request path
//! ([`super::handler::plan`]), writes the backend's request head and relays the body, reads the
//! backend's response head and relays that body back — bytes from socket to socket, no hyper
//! dispatcher on either side, no channel between tasks.
//!
//! - [`head`]: request and response heads, parsed (httparse) and written; the checks nginx
//!   makes (smuggling attempts, bad bytes) — pure.
//! - [`chunked`]: the chunked coding — pure.
//! - [`wire`]: a stream with its read buffer; the body relay.
//! - [`forward`]: one request to a backend: body, retries, response, upgrade.
//! - here: the connection loop. Between requests a connection holds no buffer at all: the task
//!   waits for the socket to become readable (counted as parked), so an idle keep-alive
//!   connection costs its socket and a small task, as in nginx.
//!
//! What it does not take goes elsewhere: the HTTP/2 connection preface hands the connection to
//! hyper's HTTP/2 server, and requests for `GRPC`/`GRPCS` backends go through hyper's client.

pub mod chunked;
pub mod forward;
pub mod head;
pub mod wire;

use std::cell::RefCell;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::BytesMut;
use http::{StatusCode, Version};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::body::ResponseBody;
use super::handler::{self, Plan, Shared};
use super::headers::ClientInfo;
use super::idle::IdleWait;
use super::response;
use super::stop::Stop;
use head::{HeadError, Persistence, RequestHead};
use wire::{write_two, Wire};

/// The HTTP/2 connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// The longest wait for a write to a client (nginx's `send_timeout`).
pub const CLIENT_SEND_TIMEOUT: Duration = Duration::from_secs(60);

/// A client connection's stream.
pub trait ClientStream: AsyncRead + AsyncWrite + Unpin + Send {
    /// The socket to wait on between requests, holding no buffer; `None` when bytes of the
    /// next request may already be buffered above it (then they are read at once).
    fn idle_socket(&mut self) -> Option<&TcpStream>;
}

impl ClientStream for TcpStream {
    fn idle_socket(&mut self) -> Option<&TcpStream> {
        Some(self)
    }
}

impl ClientStream for tokio_rustls::server::TlsStream<TcpStream> {
    /// The TCP socket, unless rustls holds decrypted bytes, has seen the client's close, or
    /// has an error to report (all found by a read).
    fn idle_socket(&mut self) -> Option<&TcpStream> {
        let (tcp, tls) = self.get_mut();
        match tls.process_new_packets() {
            Ok(state) if state.plaintext_bytes_to_read() == 0 && !state.peer_has_closed() => Some(tcp),
            _ => None,
        }
    }
}

/// What every HTTP/1 connection of the server shares.
#[derive(Debug)]
pub struct Conn {
    pub shared: Arc<Shared>,
    /// The longest wait for a whole request head (nginx's `client_header_timeout`).
    pub header_timeout: Duration,
    /// The longest wait for the next request on a kept-alive connection.
    pub keepalive_timeout: Duration,
    /// The server's stop signal.
    pub stopping: Arc<Stop>,
}

/// How a connection left [`serve`].
#[derive(Debug, PartialEq, Eq)]
pub enum Served {
    /// Done: closed, failed, or the server stops.
    Done,
    /// The client sent the HTTP/2 preface: the connection, nothing read lost (it is in the
    /// wire's buffer), is for the HTTP/2 server.
    H2,
}

/// Serves HTTP/1.1 on a client connection until it closes, fails, or the server stops. The
/// caller owns the wire (made with [`wire::CLIENT_READ`]): kept once in the caller's future, not
/// also in this one.
pub async fn serve<S: ClientStream>(conn: &Conn, wire: &mut Wire<S>, client: &ClientInfo) -> Served {
    let mut first = true;
    loop {
        if wire.buf.is_empty() && !first {
            // Between requests: nothing held but the socket.
            wire.release_buffer();
            if let Some(wait) = wait_for_request(conn, wire) {
                if !wait.await {
                    return Served::Done;
                }
            }
        }
        // Boxed: a request's state is large and lasts only while the request does; this
        // future is what an idle connection keeps.
        match Box::pin(request(conn, wire, client, first)).await {
            Next::Continue if !conn.stopping.is_stopped() => first = false,
            Next::Continue | Next::Done => return Served::Done,
            Next::H2 => return Served::H2,
        }
    }
}

/// What follows a request.
enum Next {
    /// The next request, on the same connection.
    Continue,
    /// The connection ends.
    Done,
    /// The client sent the HTTP/2 preface.
    H2,
}

/// Reads a request head and answers the request.
async fn request<S: ClientStream>(conn: &Conn, wire: &mut Wire<S>, client: &ClientInfo, first: bool) -> Next {
    let head = match read_head(conn, wire, first).await {
        Ok(Some(Head::Request(head))) => head,
        Ok(Some(Head::H2)) => return Next::H2,
        Ok(None) => return Next::Done,
        Err(e) => {
            tracing::debug!(error = %e, "refused a request head");
            let _ = write_own(&mut wire.io, response::error(e.status()), Persistence::Close, false).await;
            return Next::Done;
        }
    };
    if exchange(conn, wire, client, head).await {
        Next::Continue
    } else {
        Next::Done
    }
}

/// The wait for the client's next request (see [`IdleWait`]): it holds no buffer (the connection
/// is parked), and is small: the connection's place in its worker's idle list ([`super::idle`]).
/// `None` when bytes of the next request may already be buffered above the socket.
fn wait_for_request<'a, S: ClientStream>(conn: &'a Conn, wire: &'a mut Wire<S>) -> Option<IdleWait<'a>> {
    let socket = wire.io.idle_socket()?;
    Some(IdleWait::new(socket, &conn.stopping, &conn.shared.metrics.connections_parked, conn.keepalive_timeout))
}

#[allow(clippy::large_enum_variant)] // short-lived, inside the boxed request future
enum Head {
    Request(RequestHead),
    /// The HTTP/2 preface.
    H2,
}

/// Reads a request head (within the header timeout): `None` if the client closes or times out
/// first (nginx closes such connections without an answer).
async fn read_head<S: ClientStream>(conn: &Conn, wire: &mut Wire<S>, first: bool) -> Result<Option<Head>, HeadError> {
    let deadline = tokio::time::Instant::now() + conn.header_timeout;
    loop {
        if first && !wire.buf.is_empty() {
            let n = wire.buf.len().min(H2_PREFACE.len());
            if wire.buf[..n] == H2_PREFACE[..n] {
                if n == H2_PREFACE.len() {
                    return Ok(Some(Head::H2));
                }
            } else if let Some(head) = head::parse_request(&mut wire.buf)? {
                return Ok(Some(Head::Request(head)));
            }
        } else if !wire.buf.is_empty() {
            if let Some(head) = head::parse_request(&mut wire.buf)? {
                return Ok(Some(Head::Request(head)));
            }
        }
        match tokio::time::timeout_at(deadline, wire.fill()).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return Ok(None),
        }
    }
}

/// One request and its answer. Returns whether the connection goes on.
async fn exchange<S: ClientStream>(conn: &Conn, wire: &mut Wire<S>, client: &ClientInfo, head: RequestHead) -> bool {
    let started = Instant::now();
    let shared = &conn.shared;
    let table = shared.table.load_full();
    let authority = handler::authority(&head.uri, &head.headers);
    let (plan, series) =
        handler::plan(shared, client, &table, &head.method, &head.uri, &head.headers, authority.as_ref());
    let request_size = head.size as u64;
    let exchanged = match plan {
        Plan::Forward(target) if !target.upstream.endpoints.is_empty() => {
            forward::forward(conn, wire, client, head, authority, target).await
        }
        Plan::Forward(_) => answer_own(wire, &head, response::error(StatusCode::SERVICE_UNAVAILABLE)).await,
        Plan::Answer(resp) => answer_own(wire, &head, *resp).await,
    };
    series.record(exchanged.status.as_u16(), started.elapsed(), request_size + exchanged.request_body);
    if let Some(bytes) = exchanged.response_body {
        series.record_response_size(bytes);
    }
    exchanged.keep
}

/// How an exchange went.
#[derive(Debug)]
pub struct Exchanged {
    pub status: StatusCode,
    /// The connection goes on.
    pub keep: bool,
    /// Request body bytes read.
    pub request_body: u64,
    /// Response body bytes sent, for a backend's answer.
    pub response_body: Option<u64>,
}

/// Answers with a response of the proxy's own. A request body already read whole is skipped;
/// any other ends the connection after the answer (as nothing reads it).
async fn answer_own<S: ClientStream>(
    wire: &mut Wire<S>,
    head: &RequestHead,
    resp: http::Response<ResponseBody>,
) -> Exchanged {
    let skipped = match head.framing {
        head::Framing::Empty => true,
        head::Framing::Length(n) if n <= wire.buf.len() as u64 => {
            let _ = wire.buf.split_to(n as usize);
            true
        }
        _ => false,
    };
    let persistence = persistence(head, skipped);
    let status = resp.status();
    let written = write_own(&mut wire.io, resp, persistence, head.method == http::Method::HEAD).await.is_ok();
    Exchanged { status, keep: written && persistence != Persistence::Close, request_body: 0, response_body: None }
}

/// The `Connection` of an answer to `head`, when the connection may otherwise go on (`keep`).
pub fn persistence(head: &RequestHead, keep: bool) -> Persistence {
    match (keep && head.keep_alive, head.version) {
        (false, _) => Persistence::Close,
        (true, Version::HTTP_11) => Persistence::KeepAlive,
        (true, _) => Persistence::KeepAlive10,
    }
}

/// Writes a response of the proxy's own (`head_only`: for a `HEAD` request, without its body).
pub async fn write_own<W: AsyncWrite + Unpin>(
    io: &mut W,
    resp: http::Response<ResponseBody>,
    persistence: Persistence,
    head_only: bool,
) -> io::Result<()> {
    let (parts, body) = resp.into_parts();
    let body = match body {
        ResponseBody::Full(bytes) => bytes.unwrap_or_default(),
        ResponseBody::Upstream { .. } => bytes::Bytes::new(),
    };
    let mut out = BytesMut::new();
    with_date(|date| head::write_own_response(&mut out, parts.status, &parts.headers, &body, persistence, date));
    if head_only {
        out.truncate(out.len() - body.len());
    }
    write_two(io, &out, &[], CLIENT_SEND_TIMEOUT).await
}

thread_local! {
    /// The `Date` value of the current second.
    static DATE: RefCell<(u64, Vec<u8>)> = const { RefCell::new((u64::MAX, Vec::new())) };
}

/// Calls `f` with the current time as an HTTP date (made once a second per thread).
pub fn with_date<R>(f: impl FnOnce(&[u8]) -> R) -> R {
    let now = SystemTime::now();
    let second = now.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with(|d| {
        let mut d = d.borrow_mut();
        if d.0 != second {
            *d = (second, httpdate::fmt_http_date(now).into_bytes());
        }
        f(&d.1)
    })
}
