//! HTTP/1.1 message heads (RFC 9112) for the proxy's own HTTP/1 path: request heads parsed from
//! a client's bytes and checked the way nginx checks them (smuggling attempts refused), response
//! heads parsed from a backend's bytes, and both written out again for the other side. Pure:
//! bytes in, bytes out.

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, EXPECT, HOST, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, Version};

/// Header fields per head at most (as hyper's default).
pub const MAX_HEADERS: usize = 100;
/// Bytes per head at most (nginx's `large_client_header_buffers 4 8k` allows about this much).
pub const MAX_HEAD: usize = 32 * 1024;

/// How a message's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// The chunked transfer coding.
    Chunked,
    /// Until the connection closes (responses only).
    UntilClose,
}

/// Why a head was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("the head is longer than {MAX_HEAD} bytes or has more than {MAX_HEADERS} fields")]
    TooLarge,
    #[error("malformed head: {0}")]
    Malformed(&'static str),
    /// A transfer coding other than `chunked` (nginx answers 501).
    #[error("unsupported transfer coding")]
    UnsupportedCoding,
}

impl HeadError {
    /// The status a client gets for a request head refused so.
    pub fn status(self) -> StatusCode {
        match self {
            HeadError::TooLarge | HeadError::Malformed(_) => StatusCode::BAD_REQUEST,
            HeadError::UnsupportedCoding => StatusCode::NOT_IMPLEMENTED,
        }
    }
}

/// A client's request head.
#[derive(Debug)]
pub struct RequestHead {
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub headers: HeaderMap,
    pub framing: Framing,
    /// The client wants the connection kept after this request.
    pub keep_alive: bool,
    /// `Expect: 100-continue`: the client waits for a `100 Continue` before its body.
    pub expects_continue: bool,
    /// The head's size in bytes (request-size metric).
    pub size: usize,
}

fn parse_error(e: httparse::Error) -> HeadError {
    match e {
        httparse::Error::TooManyHeaders => HeadError::TooLarge,
        httparse::Error::HeaderName => HeadError::Malformed("invalid header name"),
        httparse::Error::HeaderValue => HeadError::Malformed("invalid header value"),
        httparse::Error::NewLine => HeadError::Malformed("invalid line ending"),
        httparse::Error::Status => HeadError::Malformed("invalid status"),
        httparse::Error::Token => HeadError::Malformed("invalid token"),
        httparse::Error::Version => HeadError::Malformed("invalid HTTP version"),
    }
}

/// The size of a parsed head (`None`: incomplete, with `buffered` bytes so far), or why it is
/// refused.
fn head_size(parsed: httparse::Result<usize>, buffered: usize) -> Result<Option<usize>, HeadError> {
    match parsed {
        Ok(httparse::Status::Complete(n)) if n > MAX_HEAD => Err(HeadError::TooLarge),
        Ok(httparse::Status::Complete(n)) => Ok(Some(n)),
        Ok(httparse::Status::Partial) if buffered > MAX_HEAD => Err(HeadError::TooLarge),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(e) => Err(parse_error(e)),
    }
}

/// Where `part` (a slice of `whole`) lies in it.
fn range_in(whole: &[u8], part: &[u8]) -> Range<usize> {
    let start = part.as_ptr() as usize - whole.as_ptr() as usize;
    start..start + part.len()
}

/// Parses the request head at the start of `buf` and splits it off: `Ok(None)` while the head
/// is incomplete. Header values and the target share the head's bytes (no copies).
pub fn parse_request(buf: &mut BytesMut) -> Result<Option<RequestHead>, HeadError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut fields);
    let Some(size) = head_size(req.parse(buf), buf.len())? else { return Ok(None) };
    let method = Method::from_bytes(req.method.unwrap_or_default().as_bytes())
        .map_err(|_| HeadError::Malformed("invalid method"))?;
    let version = if req.version == Some(1) { Version::HTTP_11 } else { Version::HTTP_10 };
    let target = range_in(buf, req.path.unwrap_or_default().as_bytes());
    let mut names = Vec::with_capacity(req.headers.len());
    for field in req.headers.iter() {
        let name =
            HeaderName::from_bytes(field.name.as_bytes()).map_err(|_| HeadError::Malformed("invalid header name"))?;
        names.push((name, range_in(buf, field.value)));
    }
    let head = buf.split_to(size).freeze();
    let uri = Uri::from_maybe_shared(head.slice(target)).map_err(|_| HeadError::Malformed("invalid request target"))?;
    // Room for the fields the proxy adds on the way to the backend.
    let mut headers = HeaderMap::with_capacity(names.len() + 12);
    for (name, value) in names {
        let value = HeaderValue::from_maybe_shared(head.slice(value))
            .map_err(|_| HeadError::Malformed("invalid header value"))?;
        headers.append(name, value);
    }
    request_head(method, uri, version, headers, size).map(Some)
}

/// Checks a parsed request the way nginx does and works out its framing.
fn request_head(
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    size: usize,
) -> Result<RequestHead, HeadError> {
    if method == Method::CONNECT {
        return Err(HeadError::Malformed("CONNECT is not supported"));
    }
    if uri.scheme().is_none() && !uri.path().starts_with('/') && !(uri == "*" && method == Method::OPTIONS) {
        return Err(HeadError::Malformed("invalid request target"));
    }
    let mut hosts = headers.get_all(HOST).iter();
    match (hosts.next(), hosts.next()) {
        (_, Some(_)) => return Err(HeadError::Malformed("more than one Host")),
        (None, None) if version == Version::HTTP_11 && uri.authority().is_none() => {
            return Err(HeadError::Malformed("an HTTP/1.1 request without Host"))
        }
        _ => {}
    }
    let framing = match (headers.contains_key(TRANSFER_ENCODING), content_length(&headers)?) {
        (true, Some(_)) => return Err(HeadError::Malformed("both Content-Length and Transfer-Encoding")),
        (true, None) if version == Version::HTTP_10 => {
            return Err(HeadError::Malformed("Transfer-Encoding in an HTTP/1.0 request"))
        }
        (true, None) if chunked_only(&headers) => Framing::Chunked,
        (true, None) => return Err(HeadError::UnsupportedCoding),
        (false, Some(0) | None) => Framing::Empty,
        (false, Some(n)) => Framing::Length(n),
    };
    let keep_alive = match version {
        Version::HTTP_11 => !has_token(&headers, CONNECTION, "close"),
        _ => has_token(&headers, CONNECTION, "keep-alive"),
    };
    let expects_continue = version == Version::HTTP_11
        && headers.get(EXPECT).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    Ok(RequestHead { method, uri, version, headers, framing, keep_alive, expects_continue, size })
}

/// The `Content-Length`: every value the same number, or an error.
fn content_length(headers: &HeaderMap) -> Result<Option<u64>, HeadError> {
    let mut length = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        for part in value.as_bytes().split(|&b| b == b',') {
            let part = part.trim_ascii();
            if part.is_empty() || part.len() > 18 || !part.iter().all(u8::is_ascii_digit) {
                return Err(HeadError::Malformed("invalid Content-Length"));
            }
            let n = part.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
            if length.is_some_and(|l| l != n) {
                return Err(HeadError::Malformed("conflicting Content-Length values"));
            }
            length = Some(n);
        }
    }
    Ok(length)
}

/// Whether `Transfer-Encoding` is exactly `chunked` (the only coding nginx takes in requests).
fn chunked_only(headers: &HeaderMap) -> bool {
    let mut codings = headers
        .get_all(TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|c| !c.is_empty());
    matches!((codings.next(), codings.next()), (Some(c), None) if c.eq_ignore_ascii_case(b"chunked"))
}

/// Whether a comma-separated header lists `token` (case-insensitively).
pub fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .any(|v| v.as_bytes().split(|&b| b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes())))
}

/// A backend's response head, its fields still in the bytes it came in.
#[derive(Debug)]
pub struct ResponseHead {
    pub status: StatusCode,
    /// Name and value of each field, as ranges of the head's bytes.
    fields: Vec<(Range<usize>, Range<usize>)>,
    pub framing: Framing,
    /// The backend keeps the connection open after this response.
    pub keep_alive: bool,
    /// The head's bytes.
    pub bytes: Bytes,
}

/// Hop-by-hop fields (RFC 9110 §7.6.1), never forwarded.
const HOP_BY_HOP: [&str; 7] =
    ["connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"];

impl ResponseHead {
    /// The fields, as name and value bytes.
    pub fn fields(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.fields.iter().map(|(n, v)| (&self.bytes[n.clone()], &self.bytes[v.clone()]))
    }

    /// The first value of field `name`.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.fields().find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes())).map(|(_, v)| v)
    }

    /// Whether the field `name` is one the proxy must not pass on: hop-by-hop, named in
    /// `Connection`, or framing the proxy writes itself.
    fn is_hop_by_hop(&self, name: &[u8]) -> bool {
        HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h.as_bytes())) || self.connection_has(name)
    }

    /// Whether a `Connection` field lists `token` (case-insensitively).
    fn connection_has(&self, token: &[u8]) -> bool {
        !token.is_empty()
            && self
                .fields()
                .filter(|(n, _)| n.eq_ignore_ascii_case(b"connection"))
                .any(|(_, v)| v.split(|&b| b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(token)))
    }
}

/// Parses the response head at the start of `buf` and splits it off (`Ok(None)`: incomplete).
/// `head_request`: the request was `HEAD` (the response has no body whatever it says).
pub fn parse_response(buf: &mut BytesMut, head_request: bool) -> Result<Option<ResponseHead>, HeadError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut fields);
    let Some(size) = head_size(resp.parse(buf), buf.len())? else { return Ok(None) };
    let status =
        StatusCode::from_u16(resp.code.unwrap_or_default()).map_err(|_| HeadError::Malformed("invalid status"))?;
    let http11 = resp.version == Some(1);
    let ranges: Vec<_> =
        resp.headers.iter().map(|f| (range_in(buf, f.name.as_bytes()), range_in(buf, f.value))).collect();
    let bytes = buf.split_to(size).freeze();
    let mut head = ResponseHead { status, fields: ranges, framing: Framing::Empty, keep_alive: http11, bytes };
    let head_only = head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    (head.framing, head.keep_alive) = response_framing(&head, http11, head_only)?;
    Ok(Some(head))
}

/// A response's framing and whether its connection can be reused (RFC 9112 §6.3, in order).
fn response_framing(head: &ResponseHead, http11: bool, head_only: bool) -> Result<(Framing, bool), HeadError> {
    let keep_alive = if http11 { !head.connection_has(b"close") } else { head.connection_has(b"keep-alive") };
    let last_coding = head
        .fields()
        .filter(|(n, _)| n.eq_ignore_ascii_case(b"transfer-encoding"))
        .flat_map(|(_, v)| v.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|c| !c.is_empty())
        .last();
    let mut lengths = HeaderMap::new();
    for (_, value) in head.fields().filter(|(n, _)| n.eq_ignore_ascii_case(b"content-length")) {
        let value = HeaderValue::from_bytes(value).map_err(|_| HeadError::Malformed("invalid Content-Length"))?;
        lengths.append(CONTENT_LENGTH, value);
    }
    Ok(match last_coding {
        _ if head_only => (Framing::Empty, keep_alive),
        // Content-Length next to Transfer-Encoding is ignored, and the connection not reused.
        Some(c) if c.eq_ignore_ascii_case(b"chunked") => (Framing::Chunked, keep_alive && lengths.is_empty()),
        Some(_) => (Framing::UntilClose, false),
        None => match content_length(&lengths)? {
            Some(0) => (Framing::Empty, keep_alive),
            Some(n) => (Framing::Length(n), keep_alive),
            None => (Framing::UntilClose, false),
        },
    })
}

/// Writes a request head for a backend: `method target HTTP/1.1`, the fields, and the framing
/// of the body that follows (`Content-Length`, or chunked).
pub fn write_request(out: &mut BytesMut, method: &Method, target: &str, headers: &HeaderMap, framing: Framing) {
    out.reserve(64 + target.len() + headers.len() * 32);
    out.put_slice(method.as_str().as_bytes());
    out.put_u8(b' ');
    out.put_slice(target.as_bytes());
    out.put_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        if name == CONTENT_LENGTH || name == TRANSFER_ENCODING {
            continue;
        }
        put_field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    put_framing(out, framing);
    out.put_slice(b"\r\n");
}

/// What the `Connection` field of a response to the client says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// Nothing: HTTP/1.1 keeps the connection.
    KeepAlive,
    /// `Connection: keep-alive`, for an HTTP/1.0 client that asked for it.
    KeepAlive10,
    /// `Connection: close`: the connection ends after this response.
    Close,
    /// `Connection: upgrade`, with the backend's `Upgrade` field.
    Upgrade,
}

/// Writes the client's response head: the backend's status and fields (less hop-by-hop ones,
/// those in `replace`, and the framing), then `replace`, `cookie` as another `Set-Cookie`, a
/// `Date` if the backend sent none, `Connection` and the framing.
pub fn write_response(
    out: &mut BytesMut,
    head: &ResponseHead,
    replace: &HeaderMap,
    cookie: Option<&HeaderValue>,
    framing: Framing,
    persistence: Persistence,
    date: &[u8],
) {
    out.reserve(head.bytes.len() + 128);
    put_status_line(out, head.status);
    let upgrade = persistence == Persistence::Upgrade;
    let mut has_date = false;
    for (name, value) in head.fields() {
        if name.eq_ignore_ascii_case(b"upgrade") && upgrade {
            put_field(out, name, value);
            continue;
        }
        let framing_field = name.eq_ignore_ascii_case(b"content-length") && framing != Framing::Empty;
        let replaced = replace.keys().any(|k| name.eq_ignore_ascii_case(k.as_str().as_bytes()));
        if framing_field || replaced || head.is_hop_by_hop(name) {
            continue;
        }
        has_date |= name.eq_ignore_ascii_case(b"date");
        put_field(out, name, value);
    }
    for (name, value) in replace {
        put_field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    if let Some(cookie) = cookie {
        put_field(out, b"Set-Cookie", cookie.as_bytes());
    }
    if !has_date {
        put_field(out, b"Date", date);
    }
    match persistence {
        Persistence::KeepAlive => {}
        Persistence::KeepAlive10 => out.put_slice(b"Connection: keep-alive\r\n"),
        Persistence::Close => out.put_slice(b"Connection: close\r\n"),
        Persistence::Upgrade => out.put_slice(b"Connection: upgrade\r\n"),
    }
    put_framing(out, framing);
    out.put_slice(b"\r\n");
}

/// Writes a response head from a header map (an answer of the proxy's own, or one that came
/// through hyper): its fields less `Content-Length`, `Transfer-Encoding` and `Connection`,
/// then `Date`, `Connection` and the framing.
pub fn write_head(
    out: &mut BytesMut,
    status: StatusCode,
    headers: &HeaderMap,
    framing: Framing,
    persistence: Persistence,
    date: &[u8],
) {
    out.reserve(128 + headers.len() * 32);
    put_status_line(out, status);
    for (name, value) in headers {
        if name != CONTENT_LENGTH && name != CONNECTION && name != TRANSFER_ENCODING {
            put_field(out, name.as_str().as_bytes(), value.as_bytes());
        }
    }
    put_field(out, b"Date", date);
    match persistence {
        Persistence::Close => out.put_slice(b"Connection: close\r\n"),
        Persistence::KeepAlive10 => out.put_slice(b"Connection: keep-alive\r\n"),
        Persistence::KeepAlive | Persistence::Upgrade => {}
    }
    put_framing(out, framing);
    out.put_slice(b"\r\n");
}

/// Writes a response of the proxy's own (an error page, a redirect, a preflight), its body
/// with a `Content-Length`.
pub fn write_own_response(
    out: &mut BytesMut,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    persistence: Persistence,
    date: &[u8],
) {
    let framing = if status == StatusCode::NO_CONTENT || status.is_informational() {
        Framing::Empty
    } else {
        Framing::Length(body.len() as u64)
    };
    write_head(out, status, headers, framing, persistence, date);
    out.put_slice(body);
}

fn put_status_line(out: &mut BytesMut, status: StatusCode) {
    out.put_slice(b"HTTP/1.1 ");
    out.put_slice(status.as_str().as_bytes());
    out.put_u8(b' ');
    out.put_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
    out.put_slice(b"\r\n");
}

fn put_field(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    out.put_slice(name);
    out.put_slice(b": ");
    out.put_slice(value);
    out.put_slice(b"\r\n");
}

fn put_framing(out: &mut BytesMut, framing: Framing) {
    match framing {
        Framing::Length(n) => {
            out.put_slice(b"Content-Length: ");
            out.put_slice(itoa::Buffer::new().format(n).as_bytes());
            out.put_slice(b"\r\n");
        }
        Framing::Chunked => out.put_slice(b"Transfer-Encoding: chunked\r\n"),
        Framing::Empty | Framing::UntilClose => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(bytes: &[u8]) -> Result<Option<RequestHead>, HeadError> {
        parse_request(&mut BytesMut::from(bytes))
    }

    #[test]
    fn requests_parse_with_their_framing_and_keep_alive() {
        let mut buf = BytesMut::from(&b"GET /a?b HTTP/1.1\r\nHost: x.test\r\nX-A: 1\r\nX-A: 2\r\n\r\nGET /next"[..]);
        let head = parse_request(&mut buf).unwrap().unwrap();
        assert_eq!((head.method.as_str(), head.uri.to_string().as_str()), ("GET", "/a?b"));
        assert_eq!(head.headers.get_all("x-a").iter().count(), 2);
        assert_eq!((head.framing, head.keep_alive, head.expects_continue), (Framing::Empty, true, false));
        assert_eq!(&buf[..], b"GET /next", "the head is split off, the rest stays");
        assert_eq!(head.size, 51);

        let head =
            request(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\n").unwrap().unwrap();
        assert_eq!((head.framing, head.keep_alive), (Framing::Length(5), false));
        let head = request(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\nExpect: 100-continue\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!((head.framing, head.expects_continue), (Framing::Chunked, true));
        let head = request(b"GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(!head.keep_alive, "HTTP/1.0 closes unless asked");
        let head = request(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").unwrap().unwrap();
        assert!(head.keep_alive);
        let head = request(b"GET http://x.test/p HTTP/1.1\r\n\r\n").unwrap().unwrap();
        assert_eq!(head.uri.authority().unwrap().as_str(), "x.test", "absolute form needs no Host");
        assert!(request(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap().is_none(), "incomplete");
    }

    #[test]
    fn smuggling_and_bad_bytes_are_refused() {
        let refused = |bytes: &[u8]| request(bytes).unwrap_err();
        assert_eq!(
            refused(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"),
            HeadError::Malformed("both Content-Length and Transfer-Encoding")
        );
        assert_eq!(
            refused(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            HeadError::Malformed("conflicting Content-Length values")
        );
        assert!(request(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n").is_ok());
        assert_eq!(
            refused(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n").status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            refused(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1 2\r\n\r\n").status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            refused(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            HeadError::UnsupportedCoding
        );
        assert_eq!(refused(b"GET / HTTP/1.1\r\nHost: x\r\nBad\x01Name: x\r\n\r\n").status(), StatusCode::BAD_REQUEST);
        assert_eq!(refused(b"GET / HTTP/1.1\r\nHost: x\r\nA: b\x00c\r\n\r\n").status(), StatusCode::BAD_REQUEST);
        assert_eq!(refused(b"NOT HTTP AT ALL\r\n\r\n").status(), StatusCode::BAD_REQUEST);
        assert_eq!(refused(b"GET / HTTP/1.1\r\n\r\n"), HeadError::Malformed("an HTTP/1.1 request without Host"));
        assert_eq!(
            refused(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            HeadError::Malformed("more than one Host")
        );
        assert_eq!(refused(b"GET nope HTTP/1.1\r\nHost: a\r\n\r\n"), HeadError::Malformed("invalid request target"));
        let mut long = b"GET / HTTP/1.1\r\nHost: x\r\nX: ".to_vec();
        long.extend(std::iter::repeat_n(b'a', MAX_HEAD));
        assert_eq!(refused(&long), HeadError::TooLarge, "too long even before it ends");
    }

    fn response(bytes: &[u8], head_request: bool) -> ResponseHead {
        parse_response(&mut BytesMut::from(bytes), head_request).unwrap().unwrap()
    }

    #[test]
    fn response_framing_follows_rfc_9112() {
        let r = response(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", false);
        assert_eq!((r.framing, r.keep_alive), (Framing::Length(3), true));
        let r = response(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", true);
        assert_eq!(r.framing, Framing::Empty, "HEAD");
        let r = response(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 3\r\n\r\n", false);
        assert_eq!(r.framing, Framing::Empty);
        let r = response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false);
        assert_eq!((r.framing, r.keep_alive), (Framing::Chunked, true));
        let r = response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", false);
        assert_eq!((r.framing, r.keep_alive), (Framing::Chunked, false), "both: chunked, not reused");
        let r = response(b"HTTP/1.1 200 OK\r\n\r\n", false);
        assert_eq!((r.framing, r.keep_alive), (Framing::UntilClose, false));
        let r = response(b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false);
        assert!(!r.keep_alive);
        let r = response(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n", false);
        assert!(!r.keep_alive);
        assert!(parse_response(
            &mut BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"[..]),
            false
        )
        .is_err());
    }

    #[test]
    fn response_heads_lose_hop_by_hop_fields_and_gain_the_proxys() {
        let r = response(
            b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nServer: b\r\nContent-Length: 3\r\nAccess-Control-Allow-Origin: x\r\n\r\n",
            false,
        );
        let mut replace = HeaderMap::new();
        replace.insert("access-control-allow-origin", HeaderValue::from_static("*"));
        let mut out = BytesMut::new();
        write_response(
            &mut out,
            &r,
            &replace,
            None,
            Framing::Length(3),
            Persistence::KeepAlive,
            b"Mon, 23 Nov 2026 08:00:00 GMT",
        );
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "HTTP/1.1 200 OK\r\nServer: b\r\naccess-control-allow-origin: *\r\nDate: Mon, 23 Nov 2026 08:00:00 GMT\r\nContent-Length: 3\r\n\r\n"
        );
        let r = response(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nDate: d\r\n\r\n",
            false,
        );
        let mut out = BytesMut::new();
        write_response(&mut out, &r, &HeaderMap::new(), None, Framing::Empty, Persistence::Upgrade, b"-");
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nDate: d\r\nConnection: upgrade\r\n\r\n"
        );
    }

    #[test]
    fn request_heads_are_written_with_their_framing() {
        let mut headers = HeaderMap::new();
        headers.insert(HOST, HeaderValue::from_static("x.test"));
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("99"));
        let mut out = BytesMut::new();
        write_request(&mut out, &Method::POST, "/p?q", &headers, Framing::Chunked);
        assert_eq!(&out[..], b"POST /p?q HTTP/1.1\r\nhost: x.test\r\nTransfer-Encoding: chunked\r\n\r\n");
        let mut out = BytesMut::new();
        write_own_response(&mut out, StatusCode::NOT_FOUND, &HeaderMap::new(), b"nope", Persistence::Close, b"d");
        assert_eq!(
            &out[..],
            b"HTTP/1.1 404 Not Found\r\nDate: d\r\nConnection: close\r\nContent-Length: 4\r\n\r\nnope"
        );
    }
}
