//! One request sent to a backend and its answer relayed, on the proxy's own HTTP/1 path.
//!
//! The request head is written once (rewritten target, forwarded fields, hop-by-hop fields
//! gone) with the body behind it when the body is small enough to read whole; such a request can
//! go to another endpoint when a connect fails, or, for idempotent methods, when the backend
//! fails after it was sent (`proxy_next_upstream error timeout`, 3 tries). A larger body is
//! streamed and never replayed. A pooled connection that turns out closed by the backend is
//! replaced by another without counting as a try. The backend's head is read (interim `1xx`
//! skipped), rewritten for the client (hop-by-hop fields gone, CORS and affinity added), and
//! written together with whatever of the body has arrived; the rest of the body follows as it
//! comes. A `101` joins the two connections until either closes.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use bytes::{Bytes, BytesMut};
use http::header::EXPECT;
use http::{HeaderValue, Method, StatusCode, Version};
use http_body_util::BodyExt;

use super::head::{self, Framing, Persistence, RequestHead, ResponseHead};
use super::wire::{relay, spare, spare_buffer, write_two, Relay, RelayError, Wire};
use super::{persistence, with_date, ClientStream, Conn, Exchanged, CLIENT_SEND_TIMEOUT};
use crate::annotations::{BackendProtocol, Settings};
use crate::proxy::balance::Attempts;
use crate::proxy::body::UpstreamBody;
use crate::proxy::handler::{self, Prepared, Target};
use crate::proxy::headers::{self, ClientInfo};
use crate::proxy::response;
use crate::proxy::upstream::{BackendConn, ConnectError};
use crate::table::Upstream;

/// The status nginx logs for a client that went away before its answer.
const CLIENT_CLOSED: u16 = 499;
/// Request bodies read whole for `GRPC`/`GRPCS` backends from HTTP/1 clients, at most.
const MAX_BRIDGED_BODY: u64 = 8 * 1024 * 1024;

/// Sends the request to an endpoint of `target` and relays the answer.
pub(in crate::proxy) async fn forward<S: ClientStream>(
    conn: &Conn,
    wire: &mut Wire<S>,
    client: &ClientInfo,
    mut head: RequestHead,
    authority: Option<HeaderValue>,
    target: Target<'_>,
) -> Exchanged {
    let upgrade = head.version == Version::HTTP_11 && headers::wants_upgrade(&head.headers);
    let Prepared { path, origin, sticky } =
        handler::prepare(client, &target, &head.uri, &mut head.headers, authority.as_ref(), upgrade);
    // The proxy answers `Expect: 100-continue` itself, when it is ready for the body.
    head.headers.remove(EXPECT);
    let Target { upstream, settings, route, .. } = target;
    if matches!(upstream.protocol, BackendProtocol::Grpc | BackendProtocol::Grpcs) {
        return bridge(conn, wire, head, path.as_str(), settings, upstream, sticky).await;
    }

    // The request: head, and the body behind it when it is read whole.
    let shared = &*conn.shared;
    let mut request = spare_buffer();
    let streamed = match head.framing {
        Framing::Length(n) if n <= shared.retry_buffer => {
            head::write_request(&mut request, &head.method, path.as_str(), &head.headers, head.framing);
            match read_body(wire, &head, n, shared.body_timeout).await {
                Ok(body) => request.extend_from_slice(&body),
                Err(status) => return failed(wire, &head, status, 0).await,
            }
            None
        }
        Framing::Empty => {
            head::write_request(&mut request, &head.method, path.as_str(), &head.headers, Framing::Empty);
            None
        }
        framing => {
            head::write_request(&mut request, &head.method, path.as_str(), &head.headers, framing);
            Some(framing)
        }
    };
    let req = Outgoing {
        bytes: &request,
        streamed,
        expects_continue: head.expects_continue,
        head_request: head.method == Method::HEAD,
        idempotent: matches!(head.method, Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS),
    };
    let mut sent_body = match head.framing {
        Framing::Length(n) if streamed.is_none() => n,
        _ => 0,
    };
    let (endpoint, mut backend, resp) = match send(conn, wire, upstream, settings, &req, sticky, &mut sent_body).await {
        Ok(sent) => sent,
        Err(status) => return failed(wire, &head, status, sent_body).await,
    };

    // The answer.
    let upgraded = resp.status == StatusCode::SWITCHING_PROTOCOLS;
    if upgraded && !upgrade {
        tracing::debug!(%endpoint, "the backend switched protocols unasked");
        return failed(wire, &head, StatusCode::BAD_GATEWAY, sent_body).await;
    }
    let (replace, cookie) = handler::answer_headers(settings, route, origin, sticky, endpoint);
    let framing = client_framing(resp.framing, head.version);
    let persistence = if upgraded {
        Persistence::Upgrade
    } else {
        persistence(&head, framing != Framing::UntilClose && !conn.stopping.is_stopped())
    };
    let mut out = spare_buffer();
    with_date(|date| head::write_response(&mut out, &resp, &replace, cookie.as_ref(), framing, persistence, date));
    if upgraded {
        return upgrade_relay(conn, wire, backend, &out, sent_body).await;
    }
    let how = Relay {
        from: resp.framing,
        chunked: framing == Framing::Chunked,
        read_timeout: settings.read_timeout,
        write_timeout: CLIENT_SEND_TIMEOUT,
        limit: None,
    };
    let (status, reusable) = (resp.status, resp.keep_alive);
    drop(resp);
    let relayed = relay(&mut backend.wire, &mut wire.io, &mut out, how).await;
    spare(out);
    spare(request);
    match relayed {
        Ok(bytes) => {
            // Reused only if it kept to its framing: nothing more than the body came.
            if reusable && backend.wire.buf.is_empty() {
                backend.release();
            }
            Exchanged {
                status,
                keep: persistence != Persistence::Close,
                request_body: sent_body,
                response_body: Some(bytes),
            }
        }
        Err(e) => {
            tracing::debug!(%endpoint, error = %e, "response body cut");
            Exchanged { status, keep: false, request_body: sent_body, response_body: Some(0) }
        }
    }
}

/// How a body is framed for the client: chunked when only the close would end it (HTTP/1.1),
/// by the close when the client cannot take chunks (HTTP/1.0).
fn client_framing(backend: Framing, client: Version) -> Framing {
    match (backend, client == Version::HTTP_11) {
        (Framing::UntilClose, true) => Framing::Chunked,
        (Framing::Chunked, false) => Framing::UntilClose,
        (f, _) => f,
    }
}

/// Reads a body of `n` bytes whole (sending `100 Continue` first if the client waits for it).
async fn read_body<S: ClientStream>(
    wire: &mut Wire<S>,
    head: &RequestHead,
    n: u64,
    limit: std::time::Duration,
) -> Result<Bytes, StatusCode> {
    let n = n as usize;
    if head.expects_continue && wire.buf.len() < n {
        continue_client(wire).await?;
    }
    while wire.buf.len() < n {
        wire.fill_within(limit).await.map_err(|e| client_failed(&e))?;
    }
    Ok(wire.buf.split_to(n).freeze())
}

/// `100 Continue`, for a client that waits for it before sending its body.
async fn continue_client<S: ClientStream>(wire: &mut Wire<S>) -> Result<(), StatusCode> {
    write_two(&mut wire.io, b"HTTP/1.1 100 Continue\r\n\r\n", &[], CLIENT_SEND_TIMEOUT)
        .await
        .map_err(|e| client_failed(&e))
}

/// The status of a request whose client failed while sending its body.
fn client_failed(e: &io::Error) -> StatusCode {
    if e.kind() == io::ErrorKind::TimedOut {
        StatusCode::REQUEST_TIMEOUT
    } else {
        StatusCode::from_u16(CLIENT_CLOSED).unwrap_or(StatusCode::BAD_REQUEST)
    }
}

/// Answers an exchange that failed before the backend's answer with an error page (nothing for
/// a client that went away), and ends the connection unless the request was read whole.
async fn failed<S: ClientStream>(wire: &mut Wire<S>, head: &RequestHead, status: StatusCode, body: u64) -> Exchanged {
    let gone = status.as_u16() == CLIENT_CLOSED;
    let read_whole = match head.framing {
        Framing::Empty => true,
        Framing::Length(n) => body == n,
        Framing::Chunked => false,
        Framing::UntilClose => false,
    };
    let persistence = persistence(head, read_whole && !gone && status != StatusCode::REQUEST_TIMEOUT);
    let resp = response::error(status);
    let written = !gone && super::write_own(&mut wire.io, resp, persistence, head.method == Method::HEAD).await.is_ok();
    Exchanged { status, keep: written && persistence != Persistence::Close, request_body: body, response_body: None }
}

/// A request ready to go to a backend.
struct Outgoing<'r> {
    /// Its head, and its body when read whole.
    bytes: &'r [u8],
    /// The body still to be streamed from the client after the head (then it is sent once).
    streamed: Option<Framing>,
    expects_continue: bool,
    head_request: bool,
    idempotent: bool,
}

/// Why one attempt failed.
#[derive(Debug, thiserror::Error)]
enum AttemptError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The backend failed after the connection was made. `quiet`: nothing came back.
    #[error("{error}")]
    Backend { error: io::Error, quiet: bool },
    #[error("malformed response head: {0}")]
    Malformed(#[from] head::HeadError),
    #[error("no response head within proxy-read-timeout")]
    Timeout,
    /// The client's side failed (its body): the status to log (nothing retried).
    #[error("the client's body: {0}")]
    Client(StatusCode),
}

impl AttemptError {
    fn backend(error: io::Error, quiet: bool) -> Self {
        AttemptError::Backend { error, quiet }
    }
}

/// Chooses endpoints and sends, retrying as the module says. Errors are the status to answer.
async fn send<S: ClientStream>(
    conn: &Conn,
    wire: &mut Wire<S>,
    upstream: &Upstream,
    settings: &Settings,
    req: &Outgoing<'_>,
    sticky: Option<SocketAddr>,
    sent_body: &mut u64,
) -> Result<(SocketAddr, BackendConn, ResponseHead), StatusCode> {
    let shared = &*conn.shared;
    let mut attempts = Attempts::new(&shared.balancer, upstream, settings.load_balance, sticky);
    while let Some((endpoint, timing)) = attempts.next() {
        let error = match attempt_on(conn, wire, upstream.protocol, settings, endpoint, req, sent_body).await {
            Ok((backend, head)) => {
                if let Some(t) = timing {
                    t.finish();
                }
                return Ok((endpoint, backend, head));
            }
            Err(AttemptError::Client(status)) => return Err(status),
            Err(e) => e,
        };
        let refused = matches!(&error, AttemptError::Connect(e) if e.refused());
        let retry = attempts.failed(endpoint, refused)
            && req.streamed.is_none()
            && match &error {
                AttemptError::Connect(_) => true,
                AttemptError::Backend { .. } | AttemptError::Malformed(_) => req.idempotent,
                AttemptError::Timeout | AttemptError::Client(_) => false,
            };
        if matches!(error, AttemptError::Timeout) {
            tracing::debug!(%endpoint, "no response head within proxy-read-timeout");
            return Err(StatusCode::GATEWAY_TIMEOUT);
        }
        if !retry {
            tracing::debug!(%endpoint, %error, "upstream request failed");
            return Err(StatusCode::BAD_GATEWAY);
        }
        tracing::debug!(%endpoint, %error, "upstream request failed; trying another endpoint");
        shared.metrics.upstream_retries.fetch_add(1, Ordering::Relaxed);
    }
    Err(StatusCode::BAD_GATEWAY)
}

/// One endpoint: a pooled connection (another one, or a new one, when it turns out closed
/// before anything came back), the request, and the response head.
async fn attempt_on<S: ClientStream>(
    conn: &Conn,
    wire: &mut Wire<S>,
    protocol: BackendProtocol,
    settings: &Settings,
    endpoint: SocketAddr,
    req: &Outgoing<'_>,
    sent_body: &mut u64,
) -> Result<(BackendConn, ResponseHead), AttemptError> {
    loop {
        let mut backend = conn.shared.upstreams.checkout(protocol, settings.connect_timeout, endpoint).await?;
        match exchange_on(conn, &mut backend, wire, settings, req, sent_body).await {
            Ok(head) => return Ok((backend, head)),
            // Closed by the backend while it was idle: the request was not taken.
            Err(AttemptError::Backend { quiet: true, .. }) if backend.reused && req.streamed.is_none() => {
                tracing::debug!(%endpoint, "a pooled connection was closed; taking another");
            }
            Err(e) => return Err(e),
        }
    }
}

/// Sends the request on `backend` (streaming the client's body if it is not in the request's
/// bytes) and reads the response head.
async fn exchange_on<S: ClientStream>(
    conn: &Conn,
    backend: &mut BackendConn,
    wire: &mut Wire<S>,
    settings: &Settings,
    req: &Outgoing<'_>,
    sent_body: &mut u64,
) -> Result<ResponseHead, AttemptError> {
    write_two(&mut backend.wire.io, req.bytes, &[], settings.send_timeout)
        .await
        .map_err(|e| AttemptError::backend(e, true))?;
    if let Some(framing) = req.streamed {
        if req.expects_continue && wire.buf.is_empty() {
            continue_client(wire).await.map_err(AttemptError::Client)?;
        }
        let how = Relay {
            from: framing,
            chunked: framing == Framing::Chunked,
            read_timeout: conn.shared.body_timeout,
            write_timeout: settings.send_timeout,
            limit: settings.proxy_body_size,
        };
        let mut queued = BytesMut::new();
        *sent_body = match relay(wire, &mut backend.wire.io, &mut queued, how).await {
            Ok(n) => n,
            Err(RelayError::Read(e)) => return Err(AttemptError::Client(client_failed(&e))),
            Err(RelayError::Chunked(_)) => return Err(AttemptError::Client(StatusCode::BAD_REQUEST)),
            Err(RelayError::TooLarge(_)) => return Err(AttemptError::Client(StatusCode::PAYLOAD_TOO_LARGE)),
            Err(RelayError::Write(e)) => return Err(AttemptError::backend(e, false)),
        };
    }
    let deadline = tokio::time::Instant::now() + settings.read_timeout;
    let mut got_bytes = false;
    loop {
        if !backend.wire.buf.is_empty() {
            got_bytes = true;
            if let Some(head) = head::parse_response(&mut backend.wire.buf, req.head_request)? {
                // Interim answers (100 Continue, 103 Early Hints) are not passed on, as nginx.
                if head.status.is_informational() && head.status != StatusCode::SWITCHING_PROTOCOLS {
                    continue;
                }
                return Ok(head);
            }
        }
        match tokio::time::timeout_at(deadline, backend.wire.fill()).await {
            Ok(Ok(0)) => {
                let quiet = !got_bytes && req.streamed.is_none();
                return Err(AttemptError::backend(io::ErrorKind::UnexpectedEof.into(), quiet));
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(AttemptError::backend(e, !got_bytes && req.streamed.is_none())),
            Err(_) => return Err(AttemptError::Timeout),
        }
    }
}

/// After a `101`: the answer's head, then bytes both ways until either side closes or the
/// server stops.
async fn upgrade_relay<S: ClientStream>(
    conn: &Conn,
    wire: &mut Wire<S>,
    mut backend: BackendConn,
    head: &[u8],
    sent_body: u64,
) -> Exchanged {
    let exchanged = Exchanged {
        status: StatusCode::SWITCHING_PROTOCOLS,
        keep: false,
        request_body: sent_body,
        response_body: Some(0),
    };
    if write_two(&mut wire.io, head, &[], CLIENT_SEND_TIMEOUT).await.is_err() {
        return exchanged;
    }
    tokio::select! {
        r = tokio::io::copy_bidirectional(wire, &mut backend.wire) => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "upgraded connection ended");
            }
        }
        _ = conn.stopping.stopped() => {}
    }
    exchanged
}

/// `GRPC`/`GRPCS` backends from an HTTP/1 client: off the fast path — the body read whole, sent
/// with hyper's HTTP/2 client (retries as the hyper request path), the answer relayed chunked.
async fn bridge<S: ClientStream>(
    conn: &Conn,
    wire: &mut Wire<S>,
    head: RequestHead,
    path: &str,
    settings: &Settings,
    upstream: &Upstream,
    sticky: Option<SocketAddr>,
) -> Exchanged {
    let mut body = Vec::new();
    let how = Relay {
        from: head.framing,
        chunked: false,
        read_timeout: conn.shared.body_timeout,
        write_timeout: CLIENT_SEND_TIMEOUT,
        limit: Some(settings.proxy_body_size.unwrap_or(MAX_BRIDGED_BODY).min(MAX_BRIDGED_BODY)),
    };
    if head.expects_continue && head.framing != Framing::Empty && wire.buf.is_empty() {
        if let Err(status) = continue_client(wire).await {
            return failed(wire, &head, status, 0).await;
        }
    }
    let read = relay(wire, &mut body, &mut BytesMut::new(), how).await;
    let body_bytes = body.len() as u64;
    if let Err(e) = read {
        let status = match e {
            RelayError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            RelayError::Read(e) => client_failed(&e),
            _ => StatusCode::BAD_REQUEST,
        };
        return failed(wire, &head, status, body_bytes).await;
    }
    let sent = handler::Sent {
        method: head.method.clone(),
        headers: head.headers.clone(),
        path: path.parse().unwrap_or_else(|_| http::uri::PathAndQuery::from_static("/")),
        body: UpstreamBody::Full(Some(Bytes::from(body))),
    };
    let (_, resp, _) = match handler::send(&conn.shared, upstream, settings, sent, sticky).await {
        Ok(ok) => ok,
        Err(status) => return failed(wire, &head, status, body_bytes).await,
    };
    let (mut parts, mut incoming) = resp.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers, false);
    let framing = client_framing(Framing::Chunked, head.version);
    let chunked = framing == Framing::Chunked;
    let persistence = persistence(&head, chunked && !conn.stopping.is_stopped());
    let mut out = BytesMut::new();
    with_date(|date| head::write_head(&mut out, parts.status, &parts.headers, framing, persistence, date));
    let status = parts.status;
    let mut sent_bytes = 0u64;
    let relayed: Result<(), io::Error> = async {
        loop {
            let frame = tokio::time::timeout(settings.read_timeout, incoming.frame())
                .await
                .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?;
            let Some(frame) = frame else { break };
            let frame = frame.map_err(io::Error::other)?;
            if let Ok(data) = frame.into_data() {
                if data.is_empty() {
                    continue;
                }
                sent_bytes += data.len() as u64;
                if chunked {
                    super::chunked::put_chunk_start(&mut out, data.len());
                }
                write_two(&mut wire.io, &out, &data, CLIENT_SEND_TIMEOUT).await?;
                out.clear();
                if chunked {
                    out.extend_from_slice(super::chunked::CHUNK_END);
                }
            }
        }
        if chunked {
            out.extend_from_slice(super::chunked::LAST_CHUNK);
        }
        write_two(&mut wire.io, &out, &[], CLIENT_SEND_TIMEOUT).await
    }
    .await;
    Exchanged {
        status,
        keep: relayed.is_ok() && persistence != Persistence::Close,
        request_body: body_bytes,
        response_body: Some(sent_bytes),
    }
}
