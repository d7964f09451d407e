//! The request path, one layer after another: virtual host and route from the current table →
//! HTTPS redirect → source allow-list → CORS preflight → declared body size → canary choice →
//! request rewrite and forwarded headers → request body (buffered when small, so it can be
//! replayed) → endpoint choice (affinity, balancing) and sending with retries on connect
//! failures → response headers (hop-by-hop, CORS, affinity cookie) → metrics. HTTP/1.1 runs the
//! same decisions in [`super::h1`]; what follows them here is hyper's side: HTTP/2 clients and
//! `GRPC` backends.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HOST, ORIGIN, SET_COOKIE, TE};
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use super::balance::{affinity_endpoint, affinity_value, wants_canary, Attempts, Balancer, MAX_TRIES};
use super::body::{BodyProgress, Meter, ResponseBody, UpstreamBody};
use super::headers::{self, ClientInfo};
use super::response;
use super::upstream::{Pooled, SendError, Upstreams};
use crate::annotations::{BackendProtocol, Settings};
use crate::metrics::{LabelsRef, Metrics, RouteSeries};
use crate::paths::request_host;
use crate::table::{Route, RouteTable, Server, Upstream};

/// Paths never redirected to HTTPS (ACME HTTP-01 challenges), as ingress-nginx.
const ACME_CHALLENGE: &str = "/.well-known/acme-challenge/";

/// Settings for requests that no rule took but a `defaultBackend` serves.
static DEFAULT_SETTINGS: LazyLock<Arc<Settings>> = LazyLock::new(|| Arc::new(Settings::default()));

/// What every request handler shares.
#[derive(Debug)]
pub struct Shared {
    pub table: Arc<ArcSwap<RouteTable>>,
    pub metrics: Arc<Metrics>,
    pub upstreams: Upstreams,
    pub balancer: Balancer,
    /// The HTTPS port named in redirects (omitted when 443).
    pub https_port: u16,
    /// Request bodies up to this size are read whole before sending, so a connect failure can
    /// be retried on another endpoint.
    pub retry_buffer: u64,
    /// How long reading a buffered request body may take (nginx's `client_body_timeout`).
    pub body_timeout: Duration,
}

/// The upstream a request goes to, with what decides how.
pub(super) struct Target<'t> {
    pub upstream: &'t Upstream,
    pub settings: &'t Settings,
    pub route: Option<&'t Route>,
    pub series: Arc<RouteSeries>,
}

/// The hyper service function: never fails; every problem is an HTTP answer.
pub async fn handle(
    shared: Arc<Shared>,
    client: Arc<ClientInfo>,
    req: Request<Incoming>,
) -> Result<Response<ResponseBody>, Infallible> {
    let started = Instant::now();
    let request_bytes = headers::head_size(req.headers(), req.uri());
    let table = shared.table.load_full();
    let (response, series, body_bytes) = dispatch(&shared, &client, &table, req).await;
    let bytes = request_bytes + body_bytes;
    series.record(response.status().as_u16(), started.elapsed(), bytes);
    Ok(response)
}

/// Layer 1: the virtual host and route; then the route's checks, or the default backend.
async fn dispatch(
    shared: &Shared,
    client: &ClientInfo,
    table: &RouteTable,
    req: Request<Incoming>,
) -> (Response<ResponseBody>, Arc<RouteSeries>, u64) {
    let authority = authority(req.uri(), req.headers());
    let (plan, series) = plan(shared, client, table, req.method(), req.uri(), req.headers(), authority.as_ref());
    match plan {
        Plan::Answer(resp) => (*resp, series, 0),
        Plan::Forward(target) => {
            let (resp, bytes) = proxy(shared, client, req, authority, target).await;
            (resp, series, bytes)
        }
    }
}

/// What the table says to do with a request.
pub(super) enum Plan<'t> {
    /// The proxy answers itself (no rule and no default backend, a redirect, a refusal, a
    /// preflight).
    Answer(Box<Response<ResponseBody>>),
    /// The request goes to an upstream.
    Forward(Target<'t>),
}

/// Layers 1–5 and the canary choice, the same for every protocol: the virtual host and route
/// from the current table, then the route's checks, or the default backend. Returns the plan
/// and the metric series the request counts in.
pub(super) fn plan<'t>(
    shared: &Shared,
    client: &ClientInfo,
    table: &'t RouteTable,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    authority: Option<&HeaderValue>,
) -> (Plan<'t>, Arc<RouteSeries>) {
    let host = authority.and_then(|a| a.to_str().ok()).map(request_host).unwrap_or_default();
    let (server, host_label, wildcard) = lookup(table, &host);
    let labels = |route, upstream| labels(host_label, wildcard, route, upstream);
    let Some(route) = server.route(uri.path()) else {
        let Some(default) = server.default_backend.as_deref() else {
            return (Plan::Answer(Box::new(response::not_found())), shared.metrics.series(labels(None, None)));
        };
        let series = shared.metrics.series(labels(None, Some(default)));
        let target = Target { upstream: default, settings: &DEFAULT_SETTINGS, route: None, series: series.clone() };
        return (Plan::Forward(target), series);
    };
    let series = shared.metrics.series(labels(Some(route), Some(&route.upstream)));
    if let Some(resp) = checks(shared, client, table, &host, route, method, uri, headers) {
        return (Plan::Answer(Box::new(resp)), series);
    }
    // Layer: canary — the alternative backend takes the request when its rule says so.
    let target = match &route.canary {
        Some(canary) if wants_canary(&canary.rule, headers) => {
            let series = shared.metrics.series(LabelsRef {
                namespace: &canary.ingress.namespace,
                ingress: &canary.ingress.name,
                ..labels(Some(route), Some(&canary.upstream))
            });
            Target { upstream: &canary.upstream, settings: &route.settings, route: Some(route), series }
        }
        _ => Target { upstream: &route.upstream, settings: &route.settings, route: Some(route), series },
    };
    let series = target.series.clone();
    (Plan::Forward(target), series)
}

/// The metric labels of a request for `route` (none: the default backend) sent to `upstream`.
fn labels<'a>(
    host: &'a str,
    wildcard: bool,
    route: Option<&'a Route>,
    upstream: Option<&'a Upstream>,
) -> LabelsRef<'a> {
    LabelsRef {
        namespace: route.map(|r| r.ingress.namespace.as_str()).or(upstream.map(|u| u.namespace.as_str())).unwrap_or(""),
        ingress: route.map_or("", |r| &r.ingress.name),
        host,
        wildcard,
        path: route.map_or("", |r| &r.path.path),
        service: upstream.map_or("", |u| &u.service),
    }
}

/// The client's `Host` header, or the `:authority` of HTTP/2 (and absolute-form) requests.
pub(super) fn authority(uri: &Uri, headers: &HeaderMap) -> Option<HeaderValue> {
    match uri.authority() {
        Some(a) => HeaderValue::from_str(a.as_str()).ok(),
        None => headers.get(HOST).cloned(),
    }
}

/// The server for `host`, with its host label for metrics (`_` for the catch-all).
fn lookup<'t>(table: &'t RouteTable, host: &str) -> (&'t Server, &'t str, bool) {
    if let Some((name, server)) = table.exact.get_key_value(host) {
        return (server, name, false);
    }
    if let Some((name, server)) = host.split_once('.').and_then(|(_, rest)| table.wildcard.get_key_value(rest)) {
        return (server, name, true);
    }
    (&table.catch_all, "_", false)
}

/// Layers 2–5: answers the route gives without a backend (redirect, 403, preflight, 413).
#[allow(clippy::too_many_arguments)]
fn checks(
    shared: &Shared,
    client: &ClientInfo,
    table: &RouteTable,
    host: &str,
    route: &Route,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Option<Response<ResponseBody>> {
    let settings = &route.settings;
    // HTTP → HTTPS (308), as ingress-nginx: when the host has TLS and ssl-redirect, or forced.
    let redirect = settings.force_ssl_redirect || (settings.ssl_redirect && table.has_tls(host));
    if !client.tls && redirect && !uri.path().starts_with(ACME_CHALLENGE) {
        return Some(https_redirect(host, shared.https_port, uri));
    }
    if !settings.allow_source.is_empty() && !settings.allow_source.iter().any(|n| n.contains(&client.ip)) {
        return Some(response::error(StatusCode::FORBIDDEN));
    }
    if let (Some(cors), &Method::OPTIONS) = (&settings.cors, method) {
        let mut resp = response::empty(StatusCode::NO_CONTENT);
        headers::add_cors(resp.headers_mut(), cors, headers, true);
        return Some(resp);
    }
    match (settings.proxy_body_size, content_length(headers)) {
        (Some(limit), Some(length)) if length > limit => Some(response::error(StatusCode::PAYLOAD_TOO_LARGE)),
        _ => None,
    }
}

fn https_redirect(host: &str, https_port: u16, uri: &Uri) -> Response<ResponseBody> {
    let target = uri.path_and_query().map_or("/", PathAndQuery::as_str);
    let host = if host.contains(':') { format!("[{host}]") } else { host.to_string() };
    let location = match https_port {
        443 => format!("https://{host}{target}"),
        port => format!("https://{host}:{port}{target}"),
    };
    match HeaderValue::try_from(location) {
        Ok(v) => response::redirect(v),
        Err(_) => response::error(StatusCode::BAD_REQUEST),
    }
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// Layers 6–9: sends the request to an endpoint of the target and relays the answer. Returns
/// the response and the number of request body bytes read.
async fn proxy(
    shared: &Shared,
    client: &ClientInfo,
    req: Request<Incoming>,
    authority: Option<HeaderValue>,
    target: Target<'_>,
) -> (Response<ResponseBody>, u64) {
    if target.upstream.endpoints.is_empty() {
        return (response::error(StatusCode::SERVICE_UNAVAILABLE), 0);
    }
    // HTTP/2 has no `Upgrade` (HTTP/1.1 upgrades go through `h1`).
    let (mut parts, body) = req.into_parts();
    let Prepared { path, origin, sticky } =
        prepare(client, &target, &parts.uri, &mut parts.headers, authority.as_ref(), false);
    let Target { upstream, settings, route, series } = target;
    let progress = Arc::new(BodyProgress::default());
    let body = match request_body(shared, settings, &parts.headers, body, &progress).await {
        Ok(body) => body,
        Err(status) => return (response::error(status), progress.bytes.load(Ordering::Relaxed)),
    };
    let streamed = matches!(body, UpstreamBody::Stream { .. }).then(|| progress.clone());
    let sent = Sent { method: parts.method, headers: parts.headers, path, body };
    let outcome = send(shared, upstream, settings, sent, sticky).await;
    let body_bytes = progress.bytes.load(Ordering::Relaxed);
    let (endpoint, resp, pooled) = match outcome {
        Ok(ok) => ok,
        Err(_) if progress.too_large.load(Ordering::Relaxed) => {
            return (response::error(StatusCode::PAYLOAD_TOO_LARGE), body_bytes)
        }
        Err(status) => return (response::error(status), body_bytes),
    };
    // The answer: hop-by-hop headers dropped; CORS and affinity added.
    let (mut head, incoming) = resp.into_parts();
    head.version = Version::HTTP_11;
    headers::strip_hop_by_hop(&mut head.headers, false);
    let (replace, cookie) = answer_headers(settings, route, origin, sticky, endpoint);
    for (name, value) in replace {
        if let Some(name) = name {
            head.headers.insert(name, value);
        }
    }
    if let Some(cookie) = cookie {
        head.headers.append(SET_COOKIE, cookie);
    }
    // The connection goes back to the pool once this body is read to the end (and the
    // request body was all sent).
    let ended = hyper::body::Body::is_end_stream(&incoming);
    let meter = Meter::new(series).with_connection(pooled, ended, streamed);
    let body = ResponseBody::Upstream {
        inner: incoming,
        meter,
        read_timeout: settings.read_timeout,
        idle: Default::default(),
    };
    (Response::from_parts(head, body), body_bytes)
}

/// What [`prepare`] worked out for the request and its answer.
pub(super) struct Prepared {
    /// The path and query for the backend.
    pub path: PathAndQuery,
    /// The client's `Origin`, for the CORS headers of the answer.
    pub origin: Option<HeaderValue>,
    /// The endpoint the affinity cookie names, if it is still one of the upstream's.
    pub sticky: Option<SocketAddr>,
}

/// Layer 6: the request as the backend sees it — rewritten path, forwarded headers, no
/// hop-by-hop fields (but `Upgrade` when `upgrade`).
pub(super) fn prepare(
    client: &ClientInfo,
    target: &Target<'_>,
    uri: &Uri,
    request: &mut HeaderMap,
    authority: Option<&HeaderValue>,
    upgrade: bool,
) -> Prepared {
    let Target { upstream, settings, route, .. } = target;
    let path = upstream_path(uri, *route, settings);
    let origin = settings.cors.as_ref().and_then(|_| request.get(ORIGIN).cloned());
    let sticky = settings.affinity.as_ref().and_then(|a| headers::cookie(request, &a.name));
    let sticky = sticky.and_then(|v| affinity_endpoint(&upstream.endpoints, v));
    headers::strip_hop_by_hop(request, upgrade);
    headers::set_forwarded(request, client, authority, uri);
    if matches!(upstream.protocol, BackendProtocol::Grpc | BackendProtocol::Grpcs) {
        request.insert(TE, HeaderValue::from_static("trailers"));
    }
    Prepared { path, origin, sticky }
}

/// Layer 9: the headers the proxy puts on a backend's answer — CORS (replacing the backend's),
/// and the affinity cookie (added to its `Set-Cookie`s) when the client is not yet on
/// `endpoint`.
pub(super) fn answer_headers(
    settings: &Settings,
    route: Option<&Route>,
    origin: Option<HeaderValue>,
    sticky: Option<SocketAddr>,
    endpoint: SocketAddr,
) -> (HeaderMap, Option<HeaderValue>) {
    let mut replace = HeaderMap::new();
    if let Some(cors) = &settings.cors {
        let mut request = HeaderMap::new();
        if let Some(origin) = origin {
            request.insert(ORIGIN, origin);
        }
        headers::add_cors(&mut replace, cors, &request, false);
    }
    let cookie = settings.affinity.as_ref().filter(|_| sticky != Some(endpoint)).map(|affinity| {
        let path = affinity.path.as_deref().or(route.map(|r| r.path.path.as_str())).unwrap_or("/");
        affinity_cookie(&affinity.name, &endpoint, path, affinity.max_age)
    });
    (replace, cookie)
}

/// The path and query sent upstream: `rewrite-target` applied to the path, query kept.
fn upstream_path(uri: &Uri, route: Option<&Route>, settings: &Settings) -> PathAndQuery {
    let original = uri.path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/"));
    let (Some(target), Some(route)) = (settings.rewrite_target.as_deref(), route) else { return original };
    let mut path = route.path.rewrite(target, uri.path());
    if let Some(query) = uri.query() {
        path.push(if path.contains('?') { '&' } else { '?' });
        path.push_str(query);
    }
    PathAndQuery::try_from(path).unwrap_or(original)
}

/// Layer 7: the request body as it will be sent. Bodies with a small declared length are read
/// whole (replayable); others are streamed with the `proxy-body-size` limit enforced as they go.
async fn request_body(
    shared: &Shared,
    settings: &Settings,
    headers: &HeaderMap,
    body: Incoming,
    progress: &Arc<BodyProgress>,
) -> Result<UpstreamBody, StatusCode> {
    use hyper::body::Body as _;
    if body.is_end_stream() {
        return Ok(UpstreamBody::empty());
    }
    match content_length(headers) {
        Some(length) if length <= shared.retry_buffer => {
            let read = tokio::time::timeout(shared.body_timeout, Limited::new(body, length as usize).collect());
            match read.await {
                Ok(Ok(collected)) => {
                    let bytes: Bytes = collected.to_bytes();
                    progress.bytes.store(bytes.len() as u64, Ordering::Relaxed);
                    Ok(UpstreamBody::Full(Some(bytes)))
                }
                Ok(Err(_)) => Err(StatusCode::BAD_REQUEST),
                Err(_) => Err(StatusCode::REQUEST_TIMEOUT),
            }
        }
        _ => Ok(UpstreamBody::Stream { inner: body, limit: settings.proxy_body_size, progress: progress.clone() }),
    }
}

/// A request ready to go upstream, before an endpoint is chosen.
pub(super) struct Sent {
    pub method: Method,
    pub headers: HeaderMap,
    pub path: PathAndQuery,
    pub body: UpstreamBody,
}

/// Layer 8: chooses endpoints and sends, retrying connect failures (and, for idempotent methods,
/// failures after sending) on other endpoints while the request is replayable. Errors are the
/// status to answer with.
pub(super) async fn send(
    shared: &Shared,
    upstream: &Upstream,
    settings: &Settings,
    sent: Sent,
    sticky: Option<SocketAddr>,
) -> Result<(SocketAddr, Response<Incoming>, Option<Pooled>), StatusCode> {
    let Sent { method, mut headers, path, body } = sent;
    let replayable = body.replay().is_some();
    // As nginx's `proxy_next_upstream error`: a request that failed after it was sent (the
    // backend closed a kept-alive connection, or went away mid-request) is tried again on
    // another endpoint only when repeating it is harmless.
    let idempotent = matches!(method, Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS);
    let mut body = Some(body);
    let version = match upstream.protocol {
        BackendProtocol::Grpc | BackendProtocol::Grpcs => Version::HTTP_2,
        BackendProtocol::Http | BackendProtocol::Https => Version::HTTP_11,
    };
    let uri = Uri::from(path);
    let mut returned: Option<Box<Request<UpstreamBody>>> = None;
    let mut attempts = Attempts::new(&shared.balancer, upstream, settings.load_balance, sticky);
    while let Some((endpoint, timing)) = attempts.next() {
        let others_left = attempts.others_left() && replayable;
        let req = match returned.take() {
            Some(req) => *req,
            None => {
                // HTTP/1 connect failures hand the request back, so it need not be copied,
                // unless it may be repeated after a failure past the connect.
                let repeatable = idempotent && attempts.spent() + 1 < MAX_TRIES;
                let keep_copy = others_left && (version != Version::HTTP_11 || repeatable);
                let (attempt_headers, attempt_body) = if !keep_copy {
                    (std::mem::take(&mut headers), body.take())
                } else {
                    (headers.clone(), body.as_ref().and_then(UpstreamBody::replay))
                };
                let Some(attempt_body) = attempt_body else { break };
                let mut req = Request::new(attempt_body);
                *req.method_mut() = method.clone();
                *req.uri_mut() = uri.clone();
                *req.version_mut() = version;
                *req.headers_mut() = attempt_headers;
                req
            }
        };
        let sending = shared.upstreams.send(upstream.protocol, settings.connect_timeout, endpoint, req);
        let error = match tokio::time::timeout(settings.read_timeout, sending).await {
            Ok(Ok((resp, pooled))) => {
                if let Some(t) = timing {
                    t.finish();
                }
                return Ok((endpoint, resp, pooled));
            }
            Ok(Err(e)) => e,
            Err(_) => {
                shared.balancer.failed(endpoint);
                return Err(StatusCode::GATEWAY_TIMEOUT);
            }
        };
        let retry = attempts.failed(endpoint, error.refused()) && replayable;
        match error {
            SendError::Connect(e, req) if retry => {
                tracing::debug!(%endpoint, error = %e, "upstream connect failed; trying another endpoint");
                returned = req;
            }
            SendError::Request(e) if retry && idempotent => {
                tracing::debug!(%endpoint, error = %e, "upstream request failed; trying another endpoint");
            }
            e => {
                tracing::debug!(%endpoint, error = %e, "upstream request failed");
                return Err(StatusCode::BAD_GATEWAY);
            }
        }
        shared.metrics.upstream_retries.fetch_add(1, Ordering::Relaxed);
    }
    Err(StatusCode::BAD_GATEWAY)
}

/// The affinity `Set-Cookie`, as ingress-nginx writes it.
fn affinity_cookie(name: &str, endpoint: &SocketAddr, path: &str, max_age: Option<u64>) -> HeaderValue {
    let value = affinity_value(endpoint);
    let value = std::str::from_utf8(&value).unwrap_or_default();
    let mut cookie = format!("{name}={value}; Path={path}");
    if let Some(age) = max_age {
        cookie.push_str(&format!("; Max-Age={age}"));
    }
    cookie.push_str("; HttpOnly");
    HeaderValue::try_from(cookie).unwrap_or_else(|_| HeaderValue::from_static("INGRESSCOOKIE=; HttpOnly"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paths::PathRule;

    #[test]
    fn redirects_keep_the_target_and_name_odd_ports() {
        let uri: Uri = "/a/b?c=d".parse().unwrap();
        let r = https_redirect("foo.com", 443, &uri);
        assert_eq!(r.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(r.headers()["location"], "https://foo.com/a/b?c=d");
        let r = https_redirect("foo.com", 8443, &uri);
        assert_eq!(r.headers()["location"], "https://foo.com:8443/a/b?c=d");
    }

    #[test]
    fn rewrites_keep_the_query() {
        let settings = Settings { rewrite_target: Some("/$2".into()), ..Settings::default() };
        let route = Route {
            path: PathRule::new("ImplementationSpecific", "/something(/|$)(.*)", true).unwrap(),
            ingress: crate::table::IngressRef { namespace: "ns".into(), name: "i".into() },
            settings: Arc::new(settings.clone()),
            upstream: Arc::new(Upstream {
                name: String::new(),
                namespace: String::new(),
                service: String::new(),
                endpoints: vec![],
                protocol: BackendProtocol::Http,
                next: Default::default(),
            }),
            canary: None,
        };
        let uri: Uri = "/something/new?x=1".parse().unwrap();
        assert_eq!(upstream_path(&uri, Some(&route), &settings).as_str(), "/new?x=1");
        assert_eq!(upstream_path(&uri, None, &settings).as_str(), "/something/new?x=1");
    }

    #[test]
    fn affinity_cookies_carry_path_age_and_httponly() {
        let e: SocketAddr = "10.0.0.1:80".parse().unwrap();
        let c = affinity_cookie("route", &e, "/app", Some(60));
        let v = affinity_value(&e);
        let expected = format!("route={}; Path=/app; Max-Age=60; HttpOnly", std::str::from_utf8(&v).unwrap());
        assert_eq!(c.to_str().unwrap(), expected);
    }
}
