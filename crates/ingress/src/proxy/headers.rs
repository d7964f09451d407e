//! Header handling as ingress-nginx's nginx.conf does it: hop-by-hop headers removed in both
//! directions (RFC 9110 §7.6.1, plus whatever `Connection` names), the httpoxy `Proxy` header
//! dropped, and the `X-Request-ID`, `X-Real-IP`, `X-Forwarded-*`, `X-Scheme`,
//! `X-Original-URI` and `X-Original-Forwarded-For` headers set for the backend. Also the CORS
//! headers of `enable-cors` and cookie lookup for canaries and affinity.

use std::net::IpAddr;

use http::header::{
    self, HeaderName, ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, CONNECTION, CONTENT_LENGTH,
    CONTENT_TYPE, COOKIE, UPGRADE,
};
use http::{HeaderMap, HeaderValue};

use crate::annotations::Cors;

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_ORIGINAL_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-original-forwarded-for");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_SCHEME: HeaderName = HeaderName::from_static("x-forwarded-scheme");
pub const X_SCHEME: HeaderName = HeaderName::from_static("x-scheme");
pub const X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
const PROXY: HeaderName = HeaderName::from_static("proxy");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Hop-by-hop headers: they describe one connection and are never forwarded.
const HOP_BY_HOP: [HeaderName; 7] =
    [CONNECTION, KEEP_ALIVE, PROXY_CONNECTION, header::TE, header::TRAILER, header::TRANSFER_ENCODING, UPGRADE];

/// What the forwarded headers say about the client connection; built once per connection and
/// kept small (it lives as long as the connection; the header values are made per request).
#[derive(Debug, Clone)]
pub struct ClientInfo {
    pub ip: IpAddr,
    /// The port the client connected to (`X-Forwarded-Port`).
    pub port: u16,
    pub tls: bool,
}

impl ClientInfo {
    pub fn new(ip: IpAddr, local_port: u16, tls: bool) -> Self {
        ClientInfo { ip, port: local_port, tls }
    }

    fn scheme(&self) -> HeaderValue {
        HeaderValue::from_static(if self.tls { "https" } else { "http" })
    }

    /// `X-Real-IP` / `X-Forwarded-For`.
    fn ip_header(&self) -> HeaderValue {
        HeaderValue::from_maybe_shared(bytes::Bytes::from(self.ip.to_string()))
            .expect("an IP address is a valid header value")
    }
}

/// Removes hop-by-hop headers (and those `Connection` lists). With `keep_upgrade`, the `Upgrade`
/// header stays and `Connection: upgrade` is set (WebSocket and other upgrades).
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // A cheap clone (shared bytes), so the headers it names can be removed while reading it.
    if let Some(conn) = headers.get(CONNECTION).cloned() {
        for token in conn.to_str().unwrap_or_default().split(',').map(str::trim) {
            if !(token.is_empty() || (keep_upgrade && token.eq_ignore_ascii_case("upgrade"))) {
                headers.remove(token);
            }
        }
    }
    let upgrade = if keep_upgrade { headers.remove(UPGRADE) } else { None };
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    if let Some(protocol) = upgrade {
        headers.insert(UPGRADE, protocol);
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// Whether the request asks for a protocol upgrade (HTTP/1.1 `Connection: upgrade`).
pub fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(UPGRADE)
        && headers
            .get_all(CONNECTION)
            .iter()
            .any(|v| v.to_str().is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case("upgrade"))))
}

/// Sets the headers ingress-nginx sets for the backend. `host` is the client's `Host` (or
/// `:authority`); `uri` the original request target. Returns the request ID.
pub fn set_forwarded(headers: &mut HeaderMap, client: &ClientInfo, host: Option<&HeaderValue>, uri: &http::Uri) {
    headers.remove(PROXY);
    if !headers.contains_key(X_REQUEST_ID) {
        headers.insert(X_REQUEST_ID, request_id());
    }
    let ip = client.ip_header();
    headers.insert(X_REAL_IP, ip.clone());
    if let Some(previous) = headers.insert(X_FORWARDED_FOR, ip) {
        headers.insert(X_ORIGINAL_FORWARDED_FOR, previous);
    }
    if let Some(host) = host {
        headers.insert(X_FORWARDED_HOST, host.clone());
        if !headers.contains_key(header::HOST) {
            headers.insert(header::HOST, host.clone());
        }
    }
    headers.insert(X_FORWARDED_PORT, HeaderValue::from(client.port));
    headers.insert(X_FORWARDED_PROTO, client.scheme());
    headers.insert(X_FORWARDED_SCHEME, client.scheme());
    headers.insert(X_SCHEME, client.scheme());
    let target = uri.path_and_query().map_or("/", |pq| pq.as_str());
    if let Ok(v) = HeaderValue::from_str(target) {
        headers.insert(X_ORIGINAL_URI, v);
    }
}

/// A new request ID: 32 lowercase hex digits (128 random bits), as nginx's `$request_id`.
pub fn request_id() -> HeaderValue {
    let mut buf = [0u8; 32];
    hex_into(&mut buf, &rand::random::<u128>().to_be_bytes());
    HeaderValue::from_bytes(&buf).expect("hex digits are a valid header value")
}

/// Writes `bytes` as lowercase hex into `out` (twice their length).
pub fn hex_into(out: &mut [u8], bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0xf)];
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get_all(COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k.trim() == name).then(|| v.trim().trim_matches('"'))
    })
}

/// The `Access-Control-Allow-Origin` to send: the configured value, or — when it lists several
/// origins — the request's `Origin` if listed (nothing otherwise).
fn allow_origin(cors: &Cors, request: &HeaderMap) -> Option<HeaderValue> {
    let configured = cors.allow_origin.trim();
    if configured == "*" || !configured.contains(',') {
        return HeaderValue::from_str(configured).ok();
    }
    let origin = request.get(header::ORIGIN)?;
    let origin_str = origin.to_str().ok()?;
    configured.split(',').map(str::trim).any(|o| o == "*" || o == origin_str).then(|| origin.clone())
}

/// Adds the CORS headers to a response (`preflight`: also `Max-Age` and the empty-body
/// headers of ingress-nginx's 204).
pub fn add_cors(response: &mut HeaderMap, cors: &Cors, request: &HeaderMap, preflight: bool) {
    let Some(origin) = allow_origin(cors, request) else { return };
    response.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    if cors.allow_credentials {
        response.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
    }
    if let Ok(v) = HeaderValue::from_str(&cors.allow_methods) {
        response.insert(ACCESS_CONTROL_ALLOW_METHODS, v);
    }
    if let Ok(v) = HeaderValue::from_str(&cors.allow_headers) {
        response.insert(ACCESS_CONTROL_ALLOW_HEADERS, v);
    }
    if let Some(v) = cors.expose_headers.as_deref().and_then(|e| HeaderValue::from_str(e).ok()) {
        response.insert(ACCESS_CONTROL_EXPOSE_HEADERS, v);
    }
    if preflight {
        response.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from(cors.max_age));
        response.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain charset=UTF-8"));
        response.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
    }
}

/// A rough size of a request head, for the request-size metric (no allocation).
pub fn head_size(headers: &HeaderMap, uri: &http::Uri) -> u64 {
    let fields: usize = headers.iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
    (fields + uri.path_and_query().map_or(1, |p| p.as_str().len()) + 16) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_go_and_upgrades_stay_when_asked() {
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, HeaderValue::from_static("keep-alive, X-Secret, Upgrade"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert(KEEP_ALIVE, HeaderValue::from_static("timeout=5"));
        h.insert(UPGRADE, HeaderValue::from_static("websocket"));
        h.insert("x-other", HeaderValue::from_static("1"));
        assert!(wants_upgrade(&h));
        let mut plain = h.clone();
        strip_hop_by_hop(&mut plain, false);
        assert_eq!(plain.len(), 1, "{plain:?}");
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h.get(UPGRADE).unwrap(), "websocket");
        assert_eq!(h.get(CONNECTION).unwrap(), "upgrade");
        assert!(!h.contains_key("x-secret"));
    }

    #[test]
    fn forwarded_headers_as_ingress_nginx() {
        let client = ClientInfo::new("10.1.2.3".parse().unwrap(), 443, true);
        let mut h = HeaderMap::new();
        h.insert(X_FORWARDED_FOR, HeaderValue::from_static("1.1.1.1"));
        h.insert(PROXY, HeaderValue::from_static("http://evil"));
        let host = HeaderValue::from_static("foo.com:8443");
        set_forwarded(&mut h, &client, Some(&host), &"/a?b=c".parse().unwrap());
        assert_eq!(h[X_FORWARDED_FOR], "10.1.2.3");
        assert_eq!(h[X_ORIGINAL_FORWARDED_FOR], "1.1.1.1");
        assert_eq!(h[X_REAL_IP], "10.1.2.3");
        assert_eq!(h[X_FORWARDED_HOST], "foo.com:8443");
        assert_eq!(h[header::HOST], "foo.com:8443");
        assert_eq!(h[X_FORWARDED_PORT], "443");
        assert_eq!(h[X_FORWARDED_PROTO], "https");
        assert_eq!(h[X_SCHEME], "https");
        assert_eq!(h[X_ORIGINAL_URI], "/a?b=c");
        assert!(!h.contains_key(PROXY));
        let id = h[X_REQUEST_ID].to_str().unwrap();
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn cookies_are_found_among_several() {
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_static("a=1; canary=always"));
        h.append(COOKIE, HeaderValue::from_static("route=\"abc\""));
        assert_eq!(cookie(&h, "canary"), Some("always"));
        assert_eq!(cookie(&h, "route"), Some("abc"));
        assert_eq!(cookie(&h, "b"), None);
    }
}
