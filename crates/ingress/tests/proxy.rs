//! End-to-end tests of the data plane: real backends (hyper servers on 127.0.0.1), the proxy
//! serving a hand-built or `table::build`-built routing table, and real clients (hyper's client,
//! rustls, raw sockets) asserting what ingress-nginx would answer.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use podnet_ingress::annotations::{Canary, CookieAffinity, Cors, Settings};
use podnet_ingress::metrics::Metrics;
use podnet_ingress::paths::{HostPattern, PathRule};
use podnet_ingress::proxy::{Bound, ProxyConfig};
use podnet_ingress::table::{CanaryRoute, IngressRef, Route, RouteTable, Server, Upstream};
use podnet_ingress::tls::{self, Certificate, SniResolver};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

// ---------------------------------------------------------------------------------------------
// Backends

/// A test backend: answers every request with a description of it (one `key=value` per line),
/// echoes upgraded connections, and has a few special paths (`/slow`, `/status/NNN`, `/bytes/N`).
struct Backend {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    /// Connections accepted.
    connections: Arc<AtomicUsize>,
}

async fn backend(name: &'static str) -> Backend {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let connections = Arc::new(AtomicUsize::new(0));
    let (counter, accepted) = (hits.clone(), connections.clone());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            accepted.fetch_add(1, Ordering::Relaxed);
            let counter = counter.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    counter.fetch_add(1, Ordering::Relaxed);
                    answer(name, req)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    Backend { addr, hits, connections }
}

async fn answer(name: &'static str, mut req: Request<Incoming>) -> Result<Response<Full<Bytes>>, hyper::Error> {
    if req.headers().contains_key("upgrade") {
        let upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let Ok(upgraded) = upgrade.await else { return };
            let mut io = TokioIo::new(upgraded);
            let mut buf = [0u8; 1024];
            while let Ok(n) = io.read(&mut buf).await {
                if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        });
        let resp = Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header("upgrade", "echo")
            .header("connection", "upgrade")
            .body(Full::default())
            .unwrap();
        return Ok(resp);
    }
    let path = req.uri().path().to_string();
    if path == "/slow" {
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    if let Some(size) = path.strip_prefix("/bytes/").and_then(|s| s.parse::<usize>().ok()) {
        return Ok(Response::new(Full::from(vec![b'x'; size])));
    }
    let status = path.strip_prefix("/status/").and_then(|s| s.parse().ok()).unwrap_or(200);
    let mut text = format!("backend={name}\nmethod={}\nuri={}\n", req.method(), req.uri());
    for (k, v) in req.headers() {
        text.push_str(&format!("header:{k}={}\n", v.to_str().unwrap_or("?")));
    }
    let (_, body) = req.into_parts();
    let body = body.collect().await?.to_bytes();
    text.push_str(&format!("body-length={}\n", body.len()));
    Ok(Response::builder().status(status).header("connection", "keep-alive").body(Full::from(text)).unwrap())
}

/// A port nobody listens on.
async fn dead_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

// ---------------------------------------------------------------------------------------------
// Tables

fn upstream(service: &str, endpoints: Vec<SocketAddr>) -> Arc<Upstream> {
    Arc::new(Upstream {
        name: format!("default-{service}-80"),
        namespace: "default".into(),
        service: service.into(),
        endpoints,
        protocol: Default::default(),
        next: AtomicUsize::new(0),
    })
}

fn route(path: &str, settings: Settings, upstream: Arc<Upstream>) -> Route {
    let rule = PathRule::new("Prefix", path, settings.regex_paths()).unwrap();
    Route {
        path: rule,
        ingress: IngressRef { namespace: "default".into(), name: "web".into() },
        settings: Arc::new(settings),
        upstream,
        canary: None,
    }
}

fn server(routes: Vec<Route>) -> Server {
    let mut s = Server { routes, ..Default::default() };
    s.routes.sort_by_key(|r| r.path.precedence());
    s
}

fn table(hosts: Vec<(&str, Server)>) -> RouteTable {
    let mut t = RouteTable::default();
    for (h, s) in hosts {
        t.exact.insert(h.into(), s);
    }
    t
}

// ---------------------------------------------------------------------------------------------
// The proxy

struct Proxy {
    http: SocketAddr,
    https: SocketAddr,
    table: Arc<ArcSwap<RouteTable>>,
    metrics: Arc<Metrics>,
    default_cert: Arc<Certificate>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<()>,
}

async fn start(table: RouteTable) -> Proxy {
    start_with(table, ProxyConfig::default()).await
}

async fn start_with(table: RouteTable, config: ProxyConfig) -> Proxy {
    let config = ProxyConfig { http: "127.0.0.1:0".parse().unwrap(), https: "127.0.0.1:0".parse().unwrap(), ..config };
    let table = Arc::new(ArcSwap::from_pointee(table));
    let default_cert = Arc::new(Certificate::self_signed_default().unwrap());
    let tls = tls::server_config(Arc::new(SniResolver::new(table.clone(), &default_cert)));
    let metrics = Arc::new(Metrics::new());
    let bound = Bound::bind(config).await.unwrap();
    let (http, https) = (bound.http_addr(), bound.https_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = bound.serve(table.clone(), tls, metrics.clone(), async move {
        let _ = stopped.await;
    });
    let done = tokio::spawn(async move { serving.await.unwrap() });
    Proxy { http, https, table, metrics, default_cert, stop: Some(stop), done }
}

/// The proxy with one rule: host `a.test`, path `/`, to the backend at `endpoint`.
async fn start_a(settings: Settings, endpoint: SocketAddr) -> Proxy {
    start(table(vec![("a.test", server(vec![route("/", settings, upstream("a", vec![endpoint]))]))])).await
}

impl Proxy {
    async fn shutdown(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(10), self.done).await.unwrap().unwrap();
    }
}

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// The answer to one request, with the backend's description parsed.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    body: String,
}

impl Answer {
    fn get(&self, key: &str) -> Option<&str> {
        self.body.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.get(&format!("header:{name}"))
    }
}

async fn send(c: &HttpClient, req: Request<Full<Bytes>>) -> Answer {
    let resp = tokio::time::timeout(Duration::from_secs(10), c.request(req)).await.unwrap().unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = String::from_utf8_lossy(&resp.into_body().collect().await.unwrap().to_bytes()).into_owned();
    Answer { status, headers, body }
}

async fn get(proxy: SocketAddr, host: &str, path: &str) -> Answer {
    let req = Request::get(format!("http://{proxy}{path}")).header("host", host).body(Full::default()).unwrap();
    send(&client(), req).await
}

/// Writes raw bytes and reads the answer until the server closes or `timeout`.
async fn raw(proxy: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

// ---------------------------------------------------------------------------------------------
// Routing

#[tokio::test]
async fn routes_by_host_and_path_and_answers_404_from_the_default_backend() {
    let (a, b, d) = (backend("a").await, backend("b").await, backend("default").await);
    let mut with_default = server(vec![route("/only", Settings::default(), upstream("a", vec![a.addr]))]);
    with_default.default_backend = Some(upstream("fallback", vec![d.addr]));
    let t = table(vec![
        (
            "a.test",
            server(vec![
                route("/", Settings::default(), upstream("a", vec![a.addr])),
                route("/api", Settings::default(), upstream("b", vec![b.addr])),
            ]),
        ),
        ("fallback.test", with_default),
    ]);
    let proxy = start(t).await;
    let r = get(proxy.http, "a.test", "/index.html?x=1").await;
    assert_eq!((r.status, r.get("backend"), r.get("uri")), (StatusCode::OK, Some("a"), Some("/index.html?x=1")));
    let r = get(proxy.http, "A.Test:80", "/api/v1").await;
    assert_eq!(r.get("backend"), Some("b"), "host matching is case-insensitive and ignores the port");
    let r = get(proxy.http, "a.test", "/apiary").await;
    assert_eq!(r.get("backend"), Some("a"), "prefix matching is by path element");
    let r = get(proxy.http, "unknown.test", "/").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.body, "default backend - 404\n");
    let r = get(proxy.http, "fallback.test", "/elsewhere").await;
    assert_eq!((r.status, r.get("backend")), (StatusCode::OK, Some("default")));
    let metrics = proxy.metrics.render();
    assert!(
        metrics.contains(
            "nginx_ingress_controller_requests{host=\"a.test\",ingress=\"web\",namespace=\"default\",path=\"/api\",service=\"b\",status=\"200\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("host=\"_\",ingress=\"\",namespace=\"\",path=\"\",service=\"\",status=\"404\"} 1"),
        "{metrics}"
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn no_endpoints_is_503_and_a_dead_backend_is_502() {
    let dead = dead_port().await;
    let t = table(vec![(
        "a.test",
        server(vec![
            route("/none", Settings::default(), upstream("none", vec![])),
            route("/dead", Settings::default(), upstream("dead", vec![dead])),
        ]),
    )]);
    let proxy = start(t).await;
    assert_eq!(get(proxy.http, "a.test", "/none").await.status, StatusCode::SERVICE_UNAVAILABLE);
    let r = get(proxy.http, "a.test", "/dead").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert!(r.body.contains("502 Bad Gateway"));
    proxy.shutdown().await;
}

#[tokio::test]
async fn connect_failures_are_retried_on_another_endpoint() {
    let live = backend("live").await;
    // More refused endpoints than `proxy-next-upstream-tries` (3), side by side, as the new pods
    // of a rollout that do not listen yet: a refused connection does not use up a try.
    let mut endpoints = Vec::new();
    for _ in 0..5 {
        endpoints.push(dead_port().await);
    }
    endpoints.push(live.addr);
    let t = table(vec![("a.test", server(vec![route("/", Settings::default(), upstream("svc", endpoints))]))]);
    let proxy = start(t).await;
    let c = client();
    for i in 0..9 {
        let r = send(
            &c,
            Request::get(format!("http://{}/get", proxy.http)).header("host", "a.test").body(Full::default()).unwrap(),
        )
        .await;
        assert_eq!((r.status, r.get("backend")), (StatusCode::OK, Some("live")), "GET {i}");
        let post = Request::post(format!("http://{}/post", proxy.http))
            .header("host", "a.test")
            .body(Full::from("a small body"))
            .unwrap();
        let r = send(&c, post).await;
        assert_eq!(
            (r.status, r.get("body-length")),
            (StatusCode::OK, Some("12")),
            "POST {i}: a buffered body is replayed"
        );
    }
    assert_eq!(live.hits.load(Ordering::Relaxed), 18);
    assert!(proxy.metrics.upstream_retries.load(Ordering::Relaxed) > 0);
    proxy.shutdown().await;
}

/// A backend that reads each request's head and closes the connection without an answer (a pod
/// going away mid-request); counts the requests it swallowed.
#[tokio::test]
async fn backend_connections_are_kept_alive_and_carry_large_bodies() {
    let b = backend("a").await;
    // One worker thread: backend connections are kept per worker.
    let t = table(vec![("a.test", server(vec![route("/", Settings::default(), upstream("a", vec![b.addr]))]))]);
    let proxy = start_with(t, ProxyConfig { workers: 1, ..ProxyConfig::default() }).await;
    let c = client();
    for i in 0..20 {
        let r = get(proxy.http, "a.test", &format!("/n/{i}")).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    // A body of many reads, and a streamed request body, through the same kept-alive connection.
    let big = get(proxy.http, "a.test", "/bytes/4000000").await;
    assert_eq!((big.status, big.body.len()), (StatusCode::OK, 4_000_000));
    let upload = Request::post(format!("http://{}/upload", proxy.http))
        .header("host", "a.test")
        .body(Full::from(vec![b'y'; 900_000]))
        .unwrap();
    let r = send(&c, upload).await;
    assert!(r.body.contains("body-length=900000"), "{}", r.body);
    assert_eq!(b.hits.load(Ordering::Relaxed), 22);
    assert_eq!(b.connections.load(Ordering::Relaxed), 1, "one backend connection, kept alive");
}

async fn vanishing_backend() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { return };
            let mut buf = [0u8; 4096];
            if matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {
                counter.fetch_add(1, Ordering::Relaxed);
            }
            drop(stream);
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn idempotent_requests_are_retried_after_a_failure_past_the_connect_and_others_are_not() {
    let live = backend("live").await;
    let (vanishing, swallowed) = vanishing_backend().await;
    // Round-robin starts at the first endpoint: the first request meets the vanishing one.
    let t = || {
        table(vec![(
            "a.test",
            server(vec![route("/", Settings::default(), upstream("svc", vec![vanishing, live.addr]))]),
        )])
    };
    let post = |proxy: SocketAddr| {
        Request::post(format!("http://{proxy}/post")).header("host", "a.test").body(Full::from("x")).unwrap()
    };
    let proxy = start(t()).await;
    let c = client();
    for i in 0..6 {
        let r = get(proxy.http, "a.test", "/get").await;
        assert_eq!((r.status, r.get("backend")), (StatusCode::OK, Some("live")), "GET {i}");
    }
    assert_eq!(swallowed.load(Ordering::Relaxed), 1, "the vanishing endpoint was tried once, then passed over");
    // Having failed, the vanishing endpoint is passed over: no POST meets it.
    for i in 0..4 {
        assert_eq!(send(&c, post(proxy.http)).await.status, StatusCode::OK, "POST {i}");
    }
    proxy.shutdown().await;
    // A POST that reached the vanishing endpoint is not repeated elsewhere: 502, as nginx.
    let proxy = start(t()).await;
    assert_eq!(send(&c, post(proxy.http)).await.status, StatusCode::BAD_GATEWAY);
    assert_eq!(send(&c, post(proxy.http)).await.status, StatusCode::OK);
    assert_eq!(swallowed.load(Ordering::Relaxed), 2);
    proxy.shutdown().await;
}

#[tokio::test]
async fn rewrite_target_uses_the_captures_and_keeps_the_query() {
    let a = backend("a").await;
    let settings = Settings { rewrite_target: Some("/$2".into()), ..Settings::default() };
    let mut r = route("/something(/|$)(.*)", settings, upstream("a", vec![a.addr]));
    r.path = PathRule::new("ImplementationSpecific", "/something(/|$)(.*)", true).unwrap();
    let proxy = start(table(vec![("rewrite.test", server(vec![r]))])).await;
    for (path, want) in [("/something", "/"), ("/something/", "/"), ("/something/new?x=1&y=2", "/new?x=1&y=2")] {
        let r = get(proxy.http, "rewrite.test", path).await;
        assert_eq!(r.get("uri"), Some(want), "{path}");
        assert_eq!(r.header("x-original-uri"), Some(path));
    }
    assert_eq!(get(proxy.http, "rewrite.test", "/other").await.status, StatusCode::NOT_FOUND);
    proxy.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Redirects, access and limits

#[tokio::test]
async fn http_is_redirected_with_308_when_the_host_has_tls_or_redirect_is_forced() {
    let a = backend("a").await;
    let mut tls_server = server(vec![route("/", Settings::default(), upstream("a", vec![a.addr]))]);
    tls_server.tls = true;
    let no_redirect = Settings { ssl_redirect: false, ..Settings::default() };
    let mut no_redirect_server = server(vec![route("/", no_redirect, upstream("a", vec![a.addr]))]);
    no_redirect_server.tls = true;
    let forced = Settings { force_ssl_redirect: true, ..Settings::default() };
    let t = table(vec![
        ("secure.test", tls_server),
        ("plain.test", server(vec![route("/", Settings::default(), upstream("a", vec![a.addr]))])),
        ("optout.test", no_redirect_server),
        ("forced.test", server(vec![route("/", forced, upstream("a", vec![a.addr]))])),
    ]);
    let proxy = start(t).await;
    let r = get(proxy.http, "secure.test", "/a/b?c=d").await;
    assert_eq!(r.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(r.headers["location"], format!("https://secure.test:{}/a/b?c=d", proxy.https.port()));
    let r = get(proxy.http, "forced.test", "/x").await;
    assert_eq!(r.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(get(proxy.http, "plain.test", "/").await.status, StatusCode::OK);
    assert_eq!(get(proxy.http, "optout.test", "/").await.status, StatusCode::OK);
    let acme = get(proxy.http, "secure.test", "/.well-known/acme-challenge/token").await;
    assert_eq!(acme.status, StatusCode::OK, "ACME challenges are not redirected");
    proxy.shutdown().await;
}

#[tokio::test]
async fn source_ranges_forbid_other_clients() {
    let a = backend("a").await;
    let outside = Settings { allow_source: vec!["10.0.0.0/8".parse().unwrap()], ..Settings::default() };
    let inside = Settings {
        allow_source: vec!["10.0.0.0/8".parse().unwrap(), "127.0.0.1/32".parse().unwrap()],
        ..Settings::default()
    };
    let t = table(vec![
        ("closed.test", server(vec![route("/", outside, upstream("a", vec![a.addr]))])),
        ("open.test", server(vec![route("/", inside, upstream("a", vec![a.addr]))])),
    ]);
    let proxy = start(t).await;
    let r = get(proxy.http, "closed.test", "/").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("403 Forbidden"));
    assert_eq!(get(proxy.http, "open.test", "/").await.status, StatusCode::OK);
    assert_eq!(a.hits.load(Ordering::Relaxed), 1);
    proxy.shutdown().await;
}

#[tokio::test]
async fn bodies_over_proxy_body_size_get_413_declared_or_streamed() {
    let a = backend("a").await;
    let small = Settings { proxy_body_size: Some(100), ..Settings::default() };
    let proxy = start_a(small, a.addr).await;
    let c = client();
    let post = |body: &'static str| {
        Request::post(format!("http://{}/", proxy.http)).header("host", "a.test").body(Full::from(body)).unwrap()
    };
    assert_eq!(send(&c, post("fits")).await.status, StatusCode::OK);
    let big: &'static str = Box::leak("x".repeat(101).into_boxed_str());
    assert_eq!(send(&c, post(big)).await.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(a.hits.load(Ordering::Relaxed), 1, "a declared oversize body never reaches the backend");
    // A chunked body (no Content-Length) is counted as it streams and cut.
    let chunks: Vec<Result<Frame<Bytes>, std::io::Error>> =
        (0..10).map(|_| Ok(Frame::data(Bytes::from_static(&[b'y'; 50])))).collect();
    let streamed = Request::post(format!("http://{}/", proxy.http))
        .header("host", "a.test")
        .body(StreamBody::new(futures::stream::iter(chunks)))
        .unwrap();
    let sc: Client<_, StreamBody<_>> = Client::builder(TokioExecutor::new()).build_http();
    let resp = tokio::time::timeout(Duration::from_secs(10), sc.request(streamed)).await.unwrap().unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    proxy.shutdown().await;
}

#[tokio::test]
async fn slow_backends_get_504_after_the_read_timeout() {
    let a = backend("a").await;
    let settings = Settings { read_timeout: Duration::from_secs(1), ..Settings::default() };
    let proxy = start_a(settings, a.addr).await;
    let started = std::time::Instant::now();
    let r = get(proxy.http, "a.test", "/slow").await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT);
    assert!(started.elapsed() < Duration::from_millis(2500));
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_backend_stalling_in_its_body_is_cut_after_the_read_timeout() {
    // A backend that promises 100 bytes, sends 10, and then nothing (but keeps the connection).
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let head = "HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789";
                let _ = stream.write_all(head.as_bytes()).await;
                tokio::time::sleep(Duration::from_secs(20)).await;
            });
        }
    });
    let settings = Settings { read_timeout: Duration::from_secs(1), ..Settings::default() };
    let proxy = start_a(settings, addr).await;
    let mut client = tokio::net::TcpStream::connect(proxy.http).await.unwrap();
    client.write_all(b"GET / HTTP/1.1\r\nhost: a.test\r\n\r\n").await.unwrap();
    // As nginx: the client gets the head and what came of the body, then the connection ends.
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "the response was still open after 10 s: {:?}", String::from_utf8_lossy(&got));
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.ends_with("0123456789"), "the 10 bytes sent, and no more: {text}");
    proxy.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Canaries and affinity

fn canary_route(main: Arc<Upstream>, canary: Arc<Upstream>, rule: Canary) -> Route {
    let mut r = route("/", Settings::default(), main);
    r.canary = Some(CanaryRoute {
        ingress: IngressRef { namespace: "default".into(), name: "web-canary".into() },
        rule,
        upstream: canary,
        settings: Arc::new(Settings::default()),
    });
    r
}

#[tokio::test]
async fn canaries_by_header_cookie_and_weight() {
    let (main, canary) = (backend("main").await, backend("canary").await);
    let (mu, cu) = (upstream("main", vec![main.addr]), upstream("canary", vec![canary.addr]));
    let by_header = Canary {
        header: Some("X-Canary".into()),
        cookie: Some("canary".into()),
        weight_total: 100,
        ..Default::default()
    };
    let all = Canary { weight: 100, weight_total: 100, ..Default::default() };
    let none = Canary { weight: 0, weight_total: 100, ..Default::default() };
    let t = table(vec![
        ("header.test", server(vec![canary_route(mu.clone(), cu.clone(), by_header)])),
        ("all.test", server(vec![canary_route(mu.clone(), cu.clone(), all)])),
        ("none.test", server(vec![canary_route(mu.clone(), cu.clone(), none)])),
    ]);
    let proxy = start(t).await;
    let c = client();
    let req = |host: &str, header: Option<(&str, &str)>| {
        let mut b = Request::get(format!("http://{}/", proxy.http)).header("host", host);
        if let Some((k, v)) = header {
            b = b.header(k, v);
        }
        b.body(Full::default()).unwrap()
    };
    assert_eq!(send(&c, req("header.test", None)).await.get("backend"), Some("main"));
    assert_eq!(send(&c, req("header.test", Some(("x-canary", "always")))).await.get("backend"), Some("canary"));
    assert_eq!(send(&c, req("header.test", Some(("x-canary", "never")))).await.get("backend"), Some("main"));
    assert_eq!(send(&c, req("header.test", Some(("cookie", "canary=always")))).await.get("backend"), Some("canary"));
    for _ in 0..5 {
        assert_eq!(send(&c, req("all.test", None)).await.get("backend"), Some("canary"));
        assert_eq!(send(&c, req("none.test", None)).await.get("backend"), Some("main"));
    }
    let metrics = proxy.metrics.render();
    for (host, n) in [("all.test", 5), ("header.test", 2)] {
        let line = format!("host=\"{host}\",ingress=\"web-canary\",namespace=\"default\",path=\"/\",service=\"canary\",status=\"200\"}} {n}");
        assert!(metrics.contains(&line), "{metrics}");
    }
    proxy.shutdown().await;
}

#[tokio::test]
async fn affinity_cookies_keep_a_client_on_one_endpoint() {
    let backends = [backend("one").await, backend("two").await, backend("three").await];
    let affinity = CookieAffinity { name: "route".into(), path: None, max_age: Some(3600) };
    let settings = Settings { affinity: Some(affinity), ..Settings::default() };
    let u = upstream("svc", backends.iter().map(|b| b.addr).collect());
    let proxy = start(table(vec![("a.test", server(vec![route("/app", settings, u)]))])).await;
    let first = get(proxy.http, "a.test", "/app").await;
    let cookie = first.headers["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.starts_with("route=")
            && cookie.contains("Path=/app")
            && cookie.contains("Max-Age=3600")
            && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_string();
    let c = client();
    for _ in 0..9 {
        let req = Request::get(format!("http://{}/app", proxy.http))
            .header("host", "a.test")
            .header("cookie", format!("other=1; {pair}"))
            .body(Full::default())
            .unwrap();
        let r = send(&c, req).await;
        assert_eq!(r.get("backend"), first.get("backend"), "sticky");
        assert!(!r.headers.contains_key("set-cookie"), "no new cookie while the endpoint lives");
    }
    // Without the cookie, requests spread again (round-robin).
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..6 {
        seen.insert(get(proxy.http, "a.test", "/app").await.get("backend").unwrap().to_string());
    }
    assert_eq!(seen.len(), 3);
    proxy.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Headers, CORS, upgrades

#[tokio::test]
async fn forwarded_headers_as_ingress_nginx_sets_them() {
    let a = backend("a").await;
    let proxy = start_a(Settings::default(), a.addr).await;
    let req = Request::get(format!("http://{}/p?q=1", proxy.http))
        .header("host", "a.test:8080")
        .header("x-forwarded-for", "1.2.3.4")
        .header("proxy", "http://evil.example")
        .header("connection", "x-hop")
        .header("x-hop", "secret")
        .body(Full::default())
        .unwrap();
    let r = send(&client(), req).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("host"), Some("a.test:8080"), "Host passes unchanged");
    assert_eq!(r.header("x-real-ip"), Some("127.0.0.1"));
    assert_eq!(r.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(r.header("x-original-forwarded-for"), Some("1.2.3.4"));
    assert_eq!(r.header("x-forwarded-host"), Some("a.test:8080"));
    assert_eq!(r.header("x-forwarded-port"), Some(proxy.http.port().to_string().as_str()));
    assert_eq!(r.header("x-forwarded-proto"), Some("http"));
    assert_eq!(r.header("x-scheme"), Some("http"));
    let id = r.header("x-request-id").unwrap();
    assert!(id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    assert_eq!(r.header("proxy"), None, "httpoxy");
    assert_eq!(r.header("x-hop"), None, "headers named by Connection are hop-by-hop");
    assert_eq!(r.header("connection"), None);
    assert_eq!(r.headers.get("connection"), None, "the backend's Connection is not passed back");
    // A client's request ID is kept.
    let req = Request::get(format!("http://{}/", proxy.http))
        .header("host", "a.test")
        .header("x-request-id", "abc")
        .body(Full::default())
        .unwrap();
    assert_eq!(send(&client(), req).await.header("x-request-id"), Some("abc"));
    proxy.shutdown().await;
}

#[tokio::test]
async fn cors_preflights_are_answered_and_responses_annotated() {
    let a = backend("a").await;
    let settings = Settings { cors: Some(Cors::default()), ..Settings::default() };
    let proxy = start_a(settings, a.addr).await;
    let c = client();
    let preflight = Request::options(format!("http://{}/x", proxy.http))
        .header("host", "a.test")
        .header("origin", "https://app.example")
        .header("access-control-request-method", "PUT")
        .body(Full::default())
        .unwrap();
    let r = send(&c, preflight).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.headers["access-control-allow-origin"], "*");
    assert_eq!(r.headers["access-control-allow-methods"], "GET, PUT, POST, DELETE, PATCH, OPTIONS");
    assert_eq!(r.headers["access-control-max-age"], "1728000");
    assert_eq!(a.hits.load(Ordering::Relaxed), 0);
    let r = get(proxy.http, "a.test", "/x").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["access-control-allow-origin"], "*");
    assert_eq!(r.headers["access-control-allow-credentials"], "true");
    proxy.shutdown().await;
}

#[tokio::test]
async fn upgrades_are_relayed_and_survive_a_table_swap() {
    let a = backend("a").await;
    let proxy =
        start(table(vec![("ws.test", server(vec![route("/", Settings::default(), upstream("a", vec![a.addr]))]))]))
            .await;
    let mut s = TcpStream::connect(proxy.http).await.unwrap();
    s.write_all(b"GET /chat HTTP/1.1\r\nHost: ws.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n").await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        assert_eq!(s.read(&mut byte).await.unwrap(), 1, "connection closed in the response head: {head:?}");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: echo"), "{head}");
    s.write_all(b"hello").await.unwrap();
    let mut buf = [0u8; 5];
    s.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"hello");
    proxy.table.store(Arc::new(RouteTable::default()));
    assert_eq!(get(proxy.http, "ws.test", "/").await.status, StatusCode::NOT_FOUND, "the new table is in force");
    s.write_all(b"again").await.unwrap();
    s.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"again", "the upgraded connection outlives the table it started with");
    proxy.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// HTTP/1 framing

/// A backend of raw bytes: answers every request head with `answer`, and closes after it when
/// `close` (else waits for the next request).
async fn raw_backend(answer: &'static [u8], close: bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        seen.drain(..end + 4);
                        if stream.write_all(answer).await.is_err() || close {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn bodies_are_framed_for_each_client() {
    // Chunked from the backend: chunks for HTTP/1.1 clients, the data and the close for HTTP/1.0.
    let chunked =
        raw_backend(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", false).await;
    let proxy = start_a(Settings::default(), chunked).await;
    let r = raw(proxy.http, b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n").await;
    assert!(r.starts_with("HTTP/1.1 200") && r.contains("Transfer-Encoding: chunked\r\n"), "{r:?}");
    assert!(r.ends_with("\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), "{r:?}");
    let r = raw(proxy.http, b"GET / HTTP/1.0\r\nHost: a.test\r\n\r\n").await;
    assert!(!r.to_ascii_lowercase().contains("transfer-encoding"), "{r:?}");
    assert!(r.contains("Connection: close\r\n") && r.ends_with("\r\n\r\nhello"), "{r:?}");
    proxy.shutdown().await;

    // Delimited by the backend's close: chunked for HTTP/1.1, and the client's connection stays.
    let until_close = raw_backend(b"HTTP/1.1 200 OK\r\n\r\nto the end", true).await;
    let proxy = start_a(Settings::default(), until_close).await;
    let mut s = TcpStream::connect(proxy.http).await.unwrap();
    let two = b"GET /1 HTTP/1.1\r\nHost: a.test\r\n\r\nGET /2 HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n";
    s.write_all(two).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await.unwrap().unwrap();
    let out = String::from_utf8_lossy(&out);
    assert_eq!(out.matches("a\r\nto the end\r\n0\r\n\r\n").count(), 2, "{out:?}");
    proxy.shutdown().await;
}

#[tokio::test]
async fn broken_backend_answers_are_502_and_not_passed_on() {
    for answer in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"[..],
        b"NOT HTTP\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
    ] {
        let broken = raw_backend(answer, true).await;
        let proxy = start_a(Settings::default(), broken).await;
        let r = raw(proxy.http, b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 502"), "{:?} -> {r:?}", String::from_utf8_lossy(answer));
        proxy.shutdown().await;
    }
    // A body cut short by the backend: the head is out, so the client's connection is closed.
    let short = raw_backend(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", true).await;
    let proxy = start_a(Settings::default(), short).await;
    let r = raw(proxy.http, b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\nGET /next HTTP/1.1\r\nHost: a.test\r\n\r\n").await;
    assert!(r.starts_with("HTTP/1.1 200") && r.ends_with("\r\n\r\nabc"), "{r:?}");
    proxy.shutdown().await;
}

#[tokio::test]
async fn slow_clients_are_cut_off_by_the_header_timeout() {
    let a = backend("a").await;
    let config = ProxyConfig { client_header_timeout: Duration::from_millis(300), ..Default::default() };
    let proxy = start_with(
        table(vec![("a.test", server(vec![route("/", Settings::default(), upstream("a", vec![a.addr]))]))]),
        config,
    )
    .await;
    let mut s = TcpStream::connect(proxy.http).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: a.te").await.unwrap();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    assert!(matches!(read, Ok(Ok(0))), "closed without an answer, as nginx: {read:?} {out:?}");
    assert_eq!(a.hits.load(Ordering::Relaxed), 0);
    proxy.shutdown().await;
}

#[tokio::test]
async fn head_requests_and_expect_continue_keep_the_connection_in_step() {
    let a = backend("a").await;
    let proxy = start_a(Settings::default(), a.addr).await;
    // HEAD to the default backend: its 404's head without the body, then the next request.
    let r = raw(
        proxy.http,
        b"HEAD / HTTP/1.1\r\nHost: nowhere.test\r\n\r\nGET /after HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 404") && !r.contains("default backend"), "{r:?}");
    assert!(r.contains("uri=/after"), "{r:?}");
    // HEAD to a backend: its head only.
    let r = raw(proxy.http, b"HEAD /x HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n").await;
    assert!(r.starts_with("HTTP/1.1 200") && r.ends_with("\r\n\r\n") && !r.contains("uri="), "{r:?}");

    // Expect: 100-continue: the proxy says 100 before the client sends its body.
    let mut s = TcpStream::connect(proxy.http).await.unwrap();
    s.write_all(
        b"POST /up HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = [0u8; 25];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut buf)).await.unwrap().unwrap();
    assert_eq!(&buf, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(b"hello").await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await.unwrap().unwrap();
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 200") && out.contains("body-length=5"), "{out:?}");
    assert!(!out.contains("header:expect"), "the proxy answered the expectation itself: {out:?}");
    proxy.shutdown().await;
}

#[tokio::test]
async fn http2_with_prior_knowledge_is_served_on_the_plain_port() {
    let a = backend("a").await;
    let catch_all = server(vec![route("/", Settings::default(), upstream("a", vec![a.addr]))]);
    let proxy = start(RouteTable { catch_all, ..Default::default() }).await;
    let h2: HttpClient = Client::builder(TokioExecutor::new()).http2_only(true).build_http();
    let req = Request::get(format!("http://{}/h2c", proxy.http)).body(Full::default()).unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), h2.request(req)).await.unwrap().unwrap();
    assert_eq!((resp.status(), resp.version()), (StatusCode::OK, http::Version::HTTP_2));
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("uri=/h2c"), "{body:?}");
    proxy.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Malformed requests

#[tokio::test]
async fn malformed_requests_get_400() {
    let a = backend("a").await;
    let proxy = start_a(Settings::default(), a.addr).await;
    let bad_header = raw(proxy.http, b"GET / HTTP/1.1\r\nHost: a.test\r\nBad\x01Name: x\r\n\r\n").await;
    assert!(bad_header.starts_with("HTTP/1.1 400"), "{bad_header:?}");
    let garbage = raw(proxy.http, b"NOT HTTP AT ALL\r\n\r\n").await;
    assert!(garbage.starts_with("HTTP/1.1 400"), "{garbage:?}");
    let two_lengths =
        raw(proxy.http, b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab").await;
    assert!(two_lengths.starts_with("HTTP/1.1 400"), "{two_lengths:?}");
    let conflict =
        raw(proxy.http, b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n")
            .await;
    assert!(conflict.starts_with("HTTP/1.1 400"), "{conflict:?}");
    assert!(!conflict.contains("uri=/smuggled"), "{conflict:?}");
    proxy.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// TLS and HTTP/2

fn certificate(name: &str) -> (Arc<Certificate>, Vec<u8>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap().self_signed(&key).unwrap();
    let der = cert.der().to_vec();
    (Arc::new(Certificate::from_pem(name, cert.pem().as_bytes(), key.serialize_pem().as_bytes()).unwrap()), der)
}

/// A TLS client that accepts any certificate and reports which one it got.
async fn tls_connect(
    addr: SocketAddr,
    sni: &str,
    alpn: &[&[u8]],
) -> (tokio_rustls::client::TlsStream<TcpStream>, Vec<u8>) {
    #[derive(Debug)]
    struct AnyCert;
    impl rustls::client::danger::ServerCertVerifier for AnyCert {
        fn verify_server_cert(
            &self,
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &[rustls::pki_types::CertificateDer<'_>],
            _: &rustls::pki_types::ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
        }
        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            rustls::crypto::ring::default_provider().signature_verification_algorithms.supported_schemes()
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from(sni.to_string()).unwrap();
    let stream = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.unwrap();
    let der = stream.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    (stream, der)
}

#[tokio::test]
async fn tls_picks_the_certificate_by_sni_and_serves_http2() {
    let a = backend("a").await;
    let (cert, der) = certificate("secure.test");
    let mut t =
        table(vec![("secure.test", server(vec![route("/", Settings::default(), upstream("a", vec![a.addr]))]))]);
    t.certificates.insert(HostPattern::Exact("secure.test".into()), cert);
    t.exact.get_mut("secure.test").unwrap().tls = true;
    let proxy = start(t).await;
    let default_der = {
        let (_, d) = tls_connect(proxy.https, "other.test", &[b"http/1.1"]).await;
        d
    };
    assert_eq!(default_der, proxy.default_cert.key.cert[0].to_vec(), "unknown names get the default certificate");
    assert_ne!(default_der, der);

    // HTTP/1.1 over TLS with SNI secure.test: its certificate, and X-Forwarded-Proto https.
    let (stream, got) = tls_connect(proxy.https, "secure.test", &[b"http/1.1"]).await;
    assert_eq!(got, der, "SNI selects the Ingress's certificate");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    let req = Request::get("/tls").header("host", "secure.test").body(Full::<Bytes>::default()).unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = String::from_utf8(resp.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    assert!(body.contains("header:x-forwarded-proto=https"), "{body}");

    // HTTP/2 (ALPN h2), several streams on one connection.
    let (stream, got) = tls_connect(proxy.https, "secure.test", &[b"h2"]).await;
    assert_eq!(got, der);
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    let mut tasks = Vec::new();
    for i in 0..10 {
        let mut sender = sender.clone();
        tasks.push(tokio::spawn(async move {
            let req = Request::get(format!("https://secure.test/h2/{i}")).body(Full::<Bytes>::default()).unwrap();
            let resp = sender.send_request(req).await.unwrap();
            assert_eq!(resp.version(), http::Version::HTTP_2);
            assert_eq!(resp.status(), StatusCode::OK);
            let body = String::from_utf8(resp.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
            assert!(body.contains(&format!("uri=/h2/{i}")), "{body}");
            assert!(body.contains("header:host=secure.test"), "the backend gets a Host from :authority: {body}");
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    proxy.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Table swaps and shutdown

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_swaps_under_load_fail_no_request() {
    let (a, b) = (backend("a").await, backend("b").await);
    let make =
        |addr| table(vec![("a.test", server(vec![route("/", Settings::default(), upstream("svc", vec![addr]))]))]);
    let (ta, tb) = (make(a.addr), make(b.addr));
    let proxy = start(ta).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (stop, addr) = (stop.clone(), proxy.http);
        workers.push(tokio::spawn(async move {
            let c = client();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let req =
                    Request::get(format!("http://{addr}/")).header("host", "a.test").body(Full::default()).unwrap();
                let r = send(&c, req).await;
                assert_eq!(r.status, StatusCode::OK, "{r:?}");
                n += 1;
            }
            n
        }));
    }
    drop(tb);
    for i in 0..60 {
        let addr = if i % 2 == 0 { b.addr } else { a.addr };
        proxy.table.store(Arc::new(make(addr)));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for w in workers {
        total += w.await.unwrap();
    }
    assert!(total > 100, "{total}");
    assert!(a.hits.load(Ordering::Relaxed) > 0 && b.hits.load(Ordering::Relaxed) > 0);
    proxy.shutdown().await;
}

/// A client on one keep-alive connection (hyper's HTTP/1 client), to see the same socket reused.
async fn one_connection(proxy: SocketAddr) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let tcp = TcpStream::connect(proxy).await.unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(conn);
    sender
}

async fn send_on(sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>, path: &str) -> Answer {
    let req = Request::get(path).header("host", "a.test").body(Full::default()).unwrap();
    sender.ready().await.expect("the connection is still open");
    let resp = tokio::time::timeout(Duration::from_secs(10), sender.send_request(req)).await.unwrap().unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let body = String::from_utf8_lossy(&resp.into_body().collect().await.unwrap().to_bytes()).into_owned();
    Answer { status, headers, body }
}

/// Waits until `count()` is `n` (failing after 5 s).
async fn until_count(count: impl Fn() -> u64, n: u64, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while count() != n {
        assert!(std::time::Instant::now() < deadline, "{what}: {} instead of {n}", count());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn idle_connections_are_parked_and_serve_their_next_requests() {
    // Between requests a plain connection holds nothing but its socket: it is parked as soon as
    // its answer is out, and the next request wakes it.
    let a = backend("a").await;
    let proxy = start_a(Settings::default(), a.addr).await;
    let parked = || proxy.metrics.connections_parked.load(Ordering::Relaxed);
    let mut sender = one_connection(proxy.http).await;
    assert_eq!(send_on(&mut sender, "/one").await.status, StatusCode::OK);
    until_count(parked, 1, "parked after its answer").await;
    let r = send_on(&mut sender, "/two").await;
    assert_eq!((r.status, r.get("uri")), (StatusCode::OK, Some("/two")));
    assert_eq!(r.headers.get("connection"), None, "kept alive");
    until_count(parked, 1, "parked again").await;

    // A second connection; then two pipelined requests in one write: both answered.
    let mut raw = TcpStream::connect(proxy.http).await.unwrap();
    raw.write_all(b"GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n").await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), raw.read(&mut buf)).await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    until_count(parked, 2, "both connections parked").await;
    raw.write_all(b"GET /p1 HTTP/1.1\r\nHost: a.test\r\n\r\nGET /p2 HTTP/1.1\r\nHost: a.test\r\n\r\n").await.unwrap();
    let mut seen = String::new();
    while seen.matches("HTTP/1.1 200").count() < 2 {
        let n = tokio::time::timeout(Duration::from_secs(5), raw.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "closed after {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(seen.contains("uri=/p1") && seen.contains("uri=/p2"), "{seen}");
    until_count(parked, 2, "parked after the pipelined pair").await;
    drop((raw, sender));
    until_count(parked, 0, "closed by their clients").await;
    proxy.shutdown().await;
}

#[tokio::test]
async fn idle_tls_connections_are_parked_too() {
    let a = backend("a").await;
    let proxy = start_a(Settings::default(), a.addr).await;
    let parked = || proxy.metrics.connections_parked.load(Ordering::Relaxed);
    let (mut tls, _) = tls_connect(proxy.https, "a.test", &[b"http/1.1"]).await;
    let mut buf = vec![0u8; 4096];
    for path in ["/one", "/two"] {
        let req = format!("GET {path} HTTP/1.1\r\nHost: a.test\r\n\r\n");
        tls.write_all(req.as_bytes()).await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf)).await.unwrap().unwrap();
        let answer = String::from_utf8_lossy(&buf[..n]);
        assert!(answer.starts_with("HTTP/1.1 200") && answer.contains(&format!("uri={path}")), "{answer:?}");
        until_count(parked, 1, "the TLS connection parked between requests").await;
    }
    drop(tls);
    until_count(parked, 0, "closed by its client").await;
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_slow_answer_keeps_its_connection_alive() {
    // /slow takes 3 s: a request is in flight, so the connection is not parked or closed
    // and the answer does not close the connection.
    let a = backend("a").await;
    let proxy = start_a(Settings::default(), a.addr).await;
    let mut sender = one_connection(proxy.http).await;
    let r = send_on(&mut sender, "/slow").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers.get("connection"), None, "{:?}", r.headers);
    assert_eq!(send_on(&mut sender, "/after").await.get("uri"), Some("/after"));
    proxy.shutdown().await;
}

#[tokio::test]
async fn parked_connections_close_when_the_server_stops() {
    let a = backend("a").await;
    let proxy = start_a(Settings::default(), a.addr).await;
    let mut raw = TcpStream::connect(proxy.http).await.unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n").await.unwrap();
    let mut buf = vec![0u8; 4096];
    let _ = raw.read(&mut buf).await.unwrap();
    until_count(|| proxy.metrics.connections_parked.load(Ordering::Relaxed), 1, "parked").await;
    let started = std::time::Instant::now();
    proxy.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(5), "the parked connection held up the shutdown");
    let n = tokio::time::timeout(Duration::from_secs(2), raw.read(&mut buf)).await.unwrap().unwrap_or(0);
    assert_eq!(n, 0, "closed");
}

#[tokio::test]
async fn idle_connections_close_after_the_keepalive_timeout() {
    // Each worker's reaper closes the idle connections past their keep-alive timeout; one that
    // keeps sending stays open.
    let a = backend("a").await;
    let t = table(vec![("a.test", server(vec![route("/", Settings::default(), upstream("a", vec![a.addr]))]))]);
    let keepalive = Duration::from_millis(400);
    let proxy = start_with(t, ProxyConfig { client_keepalive_timeout: keepalive, ..ProxyConfig::default() }).await;
    let parked = || proxy.metrics.connections_parked.load(Ordering::Relaxed);
    let mut buf = vec![0u8; 4096];
    let mut quiet = TcpStream::connect(proxy.http).await.unwrap();
    let mut busy = TcpStream::connect(proxy.http).await.unwrap();
    for raw in [&mut quiet, &mut busy] {
        raw.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n").await.unwrap();
        let n = raw.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    }
    let idle_since = std::time::Instant::now();
    until_count(parked, 2, "both parked").await;
    // `busy` sends a request every 100 ms, well within the timeout, for twice its length.
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        busy.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n").await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(5), busy.read(&mut buf)).await.unwrap().unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"), "busy kept open");
    }
    let n = tokio::time::timeout(Duration::from_secs(5), quiet.read(&mut buf)).await.unwrap().unwrap_or(0);
    assert_eq!(n, 0, "the quiet connection was closed");
    assert!(idle_since.elapsed() >= keepalive, "not before its timeout");
    until_count(parked, 1, "only busy still parked").await;
    drop(busy);
    until_count(parked, 0, "busy closed by its client").await;
    proxy.shutdown().await;
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let a = backend("a").await;
    let proxy = start_a(Settings::default(), a.addr).await;
    let addr = proxy.http;
    let slow = tokio::spawn(async move { get(addr, "a.test", "/slow").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    proxy.shutdown().await;
    let r = slow.await.unwrap();
    assert_eq!(r.status, StatusCode::OK, "the in-flight request completed");
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert!(TcpStream::connect(addr).await.is_err(), "no longer accepting");
}

// ---------------------------------------------------------------------------------------------
// From Kubernetes objects

#[tokio::test]
async fn serves_a_table_built_from_kubernetes_objects() {
    use podnet_ingress::table::{build, ClassPolicy, Cluster};
    let a = backend("a").await;
    let class: k8s_openapi::api::networking::v1::IngressClass = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "podnet"},
        "spec": {"controller": podnet_ingress::table::CONTROLLER}
    }))
    .unwrap();
    let ingress: k8s_openapi::api::networking::v1::Ingress = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web", "namespace": "default",
                     "annotations": {"nginx.ingress.kubernetes.io/rewrite-target": "/$1"}},
        "spec": {"ingressClassName": "podnet", "rules": [{"host": "k8s.test", "http": {"paths": [
            {"path": "/app/(.*)", "pathType": "ImplementationSpecific",
             "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}
    }))
    .unwrap();
    let service: k8s_openapi::api::core::v1::Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": a.addr.port()}]}
    }))
    .unwrap();
    let slice: k8s_openapi::api::discovery::v1::EndpointSlice = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web-1", "namespace": "default", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": a.addr.port(), "protocol": "TCP"}],
        "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": true}}]
    }))
    .unwrap();
    let cluster = Cluster {
        ingresses: vec![Arc::new(ingress)],
        classes: vec![Arc::new(class)],
        services: vec![Arc::new(service)],
        slices: vec![Arc::new(slice)],
        secrets: vec![],
    };
    let t = build(&cluster, &ClassPolicy::default());
    assert!(t.problems.is_empty(), "{:?}", t.problems);
    let proxy = start(t).await;
    let r = get(proxy.http, "k8s.test", "/app/x/y?z=1").await;
    assert_eq!((r.status, r.get("uri")), (StatusCode::OK, Some("/x/y?z=1")), "{r:?}");
    proxy.shutdown().await;
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_for_a_free_slot() {
    let a = backend("a").await;
    let t = table(vec![("a.test", server(vec![route("/", Settings::default(), upstream("a", vec![a.addr]))]))]);
    let proxy = start_with(t, ProxyConfig { max_connections: 1, ..ProxyConfig::default() }).await;
    let request = b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n";
    let mut first = TcpStream::connect(proxy.http).await.unwrap();
    first.write_all(request).await.unwrap();
    let mut buf = [0u8; 12];
    first.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"HTTP/1.1 200");
    let second = tokio::spawn(async move {
        let mut s = TcpStream::connect(proxy.http).await.unwrap();
        s.write_all(request).await.unwrap();
        let mut buf = [0u8; 12];
        s.read_exact(&mut buf).await.unwrap();
        buf
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!second.is_finished(), "the second connection is not served while the first holds the only slot");
    drop(first);
    let answer = tokio::time::timeout(Duration::from_secs(5), second).await.unwrap().unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
    assert_eq!(proxy.metrics.connections_total.load(Ordering::Relaxed), 2);
    proxy.shutdown().await;
}
