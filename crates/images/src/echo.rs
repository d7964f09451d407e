//! The echo server: the request as JSON, in the shape of the conformance echo server of the
//! Kubernetes Ingress and Gateway API projects (`echo-basic`, which grew out of
//! ingress-controller-conformance's `echoserver`):
//!
//! ```json
//! {
//!  "path": "/foo?x=1",
//!  "host": "example.com",
//!  "method": "GET",
//!  "proto": "HTTP/1.1",
//!  "headers": {
//!   "Accept": [
//!    "*/*"
//!   ]
//!  },
//!  "namespace": "default",
//!  "ingress": "",
//!  "service": "",
//!  "pod": "echo-7d9f-abcde",
//!  "sni": ""
//! }
//! ```
//!
//! `path` is the request target as sent, `host` the Host header (or HTTP/2 authority), `headers`
//! every header but Host with Go's canonical names, sorted; `namespace` comes from env
//! `NAMESPACE` (or `POD_NAMESPACE`), `ingress` from `INGRESS_NAME`, `service` from
//! `SERVICE_NAME`, `pod` from `POD_NAME` (the hostname when unset); over TLS a `tls` object
//! (`version`, `serverName`, `negotiatedProtocol`, `cipherSuite`) comes before `sni`. The JSON
//! is indented by one space and escapes `<`, `>` and `&` as Go's encoder does.
//!
//! As in echo-basic: `/health` answers `OK`, `/status/NNN` answers with status NNN,
//! `?delay=DURATION` (Go syntax: `500ms`, `2s`) waits before answering, and each
//! `X-Echo-Set-Header: Name: value, Other: value` request header sets those response headers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use http::{header, HeaderName, HeaderValue, StatusCode};
use serde::Serialize;

use crate::server::{hostname, log_out, reply, Handler, Reply, ReplyFuture, Request, TlsInfo};

/// Where the echo server runs, from its environment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Context {
    pub namespace: String,
    pub ingress: String,
    pub service: String,
    pub pod: String,
}

impl Context {
    pub(crate) fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Self {
        let get = |names: &[&str]| names.iter().find_map(|n| env(n).filter(|v| !v.is_empty())).unwrap_or_default();
        let mut pod = get(&["POD_NAME"]);
        if pod.is_empty() {
            pod = hostname();
        }
        Context {
            namespace: get(&["NAMESPACE", "POD_NAMESPACE"]),
            ingress: get(&["INGRESS_NAME"]),
            service: get(&["SERVICE_NAME"]),
            pod,
        }
    }
}

#[derive(Serialize)]
struct TlsAssertions<'a> {
    version: &'a str,
    #[serde(rename = "serverName")]
    server_name: &'a str,
    #[serde(rename = "negotiatedProtocol", skip_serializing_if = "str::is_empty")]
    negotiated_protocol: &'a str,
    #[serde(rename = "cipherSuite")]
    cipher_suite: &'a str,
}

#[derive(Serialize)]
struct RequestAssertions<'a> {
    path: String,
    host: String,
    method: &'a str,
    proto: &'static str,
    headers: BTreeMap<String, Vec<String>>,
    #[serde(flatten)]
    context: &'a Context,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls: Option<TlsAssertions<'a>>,
    sni: &'a str,
}

/// The echo handler.
pub(crate) struct Echo {
    pub context: Context,
}

/// Go's `http.CanonicalHeaderKey`: the first letter and each letter after a hyphen upper case,
/// the others lower case; names with a space or other non-token byte stay as they are.
pub(crate) fn canonical_header_key(name: &str) -> String {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if !name.bytes().all(token) {
        return name.to_string();
    }
    let mut upper = true;
    name.chars()
        .map(|c| {
            let out = if upper { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() };
            upper = c == '-';
            out
        })
        .collect()
}

/// Go's `encoding/json` escaping of HTML characters and line separators (only ever inside
/// strings in JSON text).
fn go_escape(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// The JSON of Go's `json.MarshalIndent(v, "", " ")`.
fn marshal_indent(v: &impl Serialize) -> String {
    let mut buf = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, serde_json::ser::PrettyFormatter::with_indent(b" "));
    v.serialize(&mut ser).expect("the assertions serialize");
    go_escape(&String::from_utf8_lossy(&buf))
}

/// Go's `time.ParseDuration`, as seconds (negative durations are allowed).
pub(crate) fn parse_go_duration(s: &str) -> Result<f64, String> {
    let invalid = || format!("time: invalid duration {s:?}");
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(0.0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(rest.len());
        let num = &rest[..num_len];
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err(invalid());
        }
        let value: f64 = num.parse().map_err(|_| invalid())?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => return Err(format!("time: missing unit in duration {s:?}")),
            u => return Err(format!("time: unknown unit {u:?} in duration {s:?}")),
        };
        total += value * scale;
    }
    Ok(if neg { -total } else { total })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The first value of a query parameter.
fn query_value(query: Option<&str>, key: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k) == key).then(|| percent_decode(v))
    })
}

fn json_error(status: StatusCode, message: &str) -> Reply {
    let body = serde_json::json!({ "message": message }).to_string();
    let mut r = reply(status, "application/json", go_escape(&body));
    r.headers_mut().insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    r
}

fn proto(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

impl Echo {
    fn assertions(&self, req: &Request) -> String {
        let parts = &req.parts;
        let uri = &parts.uri;
        let path = if parts.version == http::Version::HTTP_2 || uri.scheme().is_none() {
            uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| uri.to_string())
        } else {
            uri.to_string()
        };
        let host = uri
            .authority()
            .map(|a| a.as_str().to_string())
            .or_else(|| parts.headers.get(header::HOST).map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned()))
            .unwrap_or_default();
        let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, value) in &parts.headers {
            if name == header::HOST {
                continue;
            }
            headers
                .entry(canonical_header_key(name.as_str()))
                .or_default()
                .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
        }
        let tls: Option<&TlsInfo> = req.conn.tls.as_ref();
        marshal_indent(&RequestAssertions {
            path,
            host,
            method: parts.method.as_str(),
            proto: proto(parts.version),
            headers,
            context: &self.context,
            tls: tls.map(|t| TlsAssertions {
                version: &t.version,
                server_name: t.server_name.as_deref().unwrap_or(""),
                negotiated_protocol: t.negotiated_protocol.as_deref().unwrap_or(""),
                cipher_suite: &t.cipher_suite,
            }),
            sni: "",
        })
    }
}

/// The response headers asked for with `X-Echo-Set-Header`.
fn set_echo_headers(req: &Request, r: &mut Reply) {
    for list in req.parts.headers.get_all("x-echo-set-header") {
        let list = String::from_utf8_lossy(list.as_bytes()).into_owned();
        for kv in list.split(',') {
            let kv = kv.trim();
            let (name, value) = kv.split_once(':').unwrap_or((kv, ""));
            let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else { continue };
            let h = r.headers_mut();
            let value = match h.get(&name) {
                Some(existing) => format!("{},{}", String::from_utf8_lossy(existing.as_bytes()), value.trim()),
                None => value.to_string(),
            };
            if let Ok(v) = HeaderValue::from_str(&value) {
                h.insert(name, v);
            }
        }
    }
}

impl Handler for Echo {
    fn handle(&self, req: Request) -> ReplyFuture {
        let target = req.parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        log_out(&format!("Echoing back request made to {target} to client ({})", req.conn.remote));
        let path = req.parts.uri.path().replace("//", "/");
        if path == "/health" {
            let r = reply(StatusCode::OK, "text/plain; charset=utf-8", "OK");
            return Box::pin(async move { r });
        }
        if path.starts_with("/status/") {
            let code = req
                .parts
                .uri
                .path()
                .strip_prefix("/status/")
                .filter(|c| req.parts.uri.query().is_none() && c.len() == 3 && c.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|c| c.parse::<u16>().ok())
                .and_then(|c| StatusCode::from_u16(c).ok())
                .unwrap_or(StatusCode::BAD_REQUEST);
            let r = reply(code, "", "");
            return Box::pin(async move { r });
        }
        let delay = query_value(req.parts.uri.query(), "delay").filter(|d| !d.is_empty());
        let body = self.assertions(&req);
        Box::pin(async move {
            if let Some(d) = delay {
                match parse_go_duration(&d) {
                    Ok(secs) if secs > 0.0 => match Duration::try_from_secs_f64(secs) {
                        Ok(d) => tokio::time::sleep(d).await,
                        Err(_) => {
                            return json_error(
                                StatusCode::INTERNAL_SERVER_ERROR,
                                &format!("time: invalid duration {d:?}"),
                            )
                        }
                    },
                    Ok(_) => {}
                    Err(e) => return json_error(StatusCode::INTERNAL_SERVER_ERROR, &e),
                }
            }
            let mut r = reply(StatusCode::OK, "", body);
            set_echo_headers(&req, &mut r);
            let h = r.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
            r
        })
    }
}

/// The echo handler as a shared handler.
pub(crate) fn handler(context: Context) -> Arc<dyn Handler> {
    Arc::new(Echo { context })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_are_canonical_as_in_go() {
        assert_eq!(canonical_header_key("user-agent"), "User-Agent");
        assert_eq!(canonical_header_key("x-forwarded-for"), "X-Forwarded-For");
        assert_eq!(canonical_header_key("accept"), "Accept");
        assert_eq!(canonical_header_key("x-b3-traceid"), "X-B3-Traceid");
        assert_eq!(canonical_header_key("weird header"), "weird header");
    }

    #[test]
    fn durations_parse_as_in_go() {
        assert_eq!(parse_go_duration("0"), Ok(0.0));
        assert_eq!(parse_go_duration("2s"), Ok(2.0));
        assert_eq!(parse_go_duration("1.5s"), Ok(1.5));
        assert_eq!(parse_go_duration("1m30s"), Ok(90.0));
        assert_eq!(parse_go_duration("-1s"), Ok(-1.0));
        assert!((parse_go_duration("500ms").unwrap() - 0.5).abs() < 1e-12);
        assert!((parse_go_duration("10µs").unwrap() - 1e-5).abs() < 1e-15);
        assert_eq!(parse_go_duration("abc"), Err("time: invalid duration \"abc\"".to_string()));
        assert_eq!(parse_go_duration("10"), Err("time: missing unit in duration \"10\"".to_string()));
        assert_eq!(parse_go_duration("3d"), Err("time: unknown unit \"d\" in duration \"3d\"".to_string()));
        assert!(parse_go_duration("").is_err());
        assert!(parse_go_duration("1..2s").is_err());
    }

    #[test]
    fn json_is_indented_and_escaped_like_gos() {
        let v = serde_json::json!({"a": ["<b>&"], "e": {}});
        assert_eq!(marshal_indent(&v), "{\n \"a\": [\n  \"\\u003cb\\u003e\\u0026\"\n ],\n \"e\": {}\n}");
    }

    #[test]
    fn query_values_decode() {
        assert_eq!(query_value(Some("a=1&delay=1%30ms"), "delay").as_deref(), Some("10ms"));
        assert_eq!(query_value(Some("delay"), "delay").as_deref(), Some(""));
        assert_eq!(query_value(Some("x=a+b"), "x").as_deref(), Some("a b"));
        assert_eq!(query_value(None, "delay"), None);
    }

    #[test]
    fn the_context_comes_from_the_environment() {
        let env = |n: &str| match n {
            "POD_NAMESPACE" => Some("apps".to_string()),
            "POD_NAME" => Some("echo-1".to_string()),
            "SERVICE_NAME" => Some("echo".to_string()),
            _ => None,
        };
        let c = Context::from_env(&env);
        assert_eq!(
            c,
            Context { namespace: "apps".into(), ingress: String::new(), service: "echo".into(), pod: "echo-1".into() }
        );
        assert_eq!(Context::from_env(&|_| None).pod, hostname());
    }
}
