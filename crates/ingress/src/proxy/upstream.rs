//! Connections to backends, with the route's connect timeout, and TLS without certificate
//! verification for `HTTPS`/`GRPCS` backends as ingress-nginx does by default
//! (`proxy_ssl_verify off`).
//!
//! HTTP/1.1 (`HTTP`, `HTTPS`) goes through pools of our own, per endpoint and worker thread a
//! LIFO list of idle connections, checked out for one request and given back when its response
//! has been read to the end; no connect races, no absolute URIs. Two kinds: plain sockets with
//! their read buffers for the proxy's own HTTP/1 path ([`BackendConn`], [`Upstreams::checkout`]),
//! and hyper connections for requests that came over HTTP/2 ([`Pooled`], [`Upstreams::send`]).
//! A hyper connection has no task of its own: whoever holds it drives its IO — the request's
//! task while it sends and waits for the response head, the response body as the client reads
//! it. An idle connection is not polled: one the backend closed meanwhile is found closed when
//! next used, and a request that it could not even start is sent again on another connection.
//! HTTP/2 (`GRPC` as h2c, `GRPCS`) keeps hyper-util's pooling client (one multiplexed
//! connection per endpoint), over a connector that dials the endpoint named in the request URI.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::body::UpstreamBody;
use super::h1::wire::{Wire, BACKEND_READ};
use crate::annotations::BackendProtocol;

/// The pooling client type used for every backend.
pub type UpstreamClient = Client<Connector, UpstreamBody>;

/// Pool settings for backend connections.
#[derive(Debug, Clone, Copy)]
pub struct PoolConfig {
    /// How long an idle keep-alive connection is kept (nginx's upstream `keepalive_timeout`).
    pub idle_timeout: Duration,
    /// Idle connections kept per endpoint (ingress-nginx's `upstream-keepalive-connections`).
    pub max_idle_per_endpoint: usize,
}

/// Endpoint pools kept at most before empty ones are forgotten.
const MAX_POOLS: usize = 4096;

/// A pool's key: protocol, endpoint and worker thread.
type PoolKey = (u8, SocketAddr, usize);
/// A pool of the proxy's own HTTP/1 path.
type RawPool = EndpointPool<Wire<UpstreamStream>>;

/// The HTTP/1 pools (per protocol and endpoint) and the HTTP/2 clients (created on first use per
/// protocol and connect timeout).
pub struct Upstreams {
    /// By protocol, endpoint and worker thread: a connection is driven only by the thread whose
    /// runtime it belongs to.
    pools: RwLock<HashMap<PoolKey, Arc<EndpointPool>>>,
    /// The same for the proxy's own HTTP/1 path: plain connections and their read buffers.
    raw_pools: RwLock<HashMap<PoolKey, Arc<RawPool>>>,
    clients: RwLock<HashMap<(u8, Duration), UpstreamClient>>,
    pool: PoolConfig,
    tls: Arc<rustls::ClientConfig>,
    tls_h2: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for Upstreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstreams").field("pool", &self.pool).finish_non_exhaustive()
    }
}

impl Upstreams {
    pub fn new(pool: PoolConfig) -> Self {
        Upstreams {
            pools: RwLock::default(),
            raw_pools: RwLock::default(),
            clients: RwLock::default(),
            pool,
            tls: insecure_client_config(vec![b"http/1.1".to_vec()]),
            tls_h2: insecure_client_config(vec![b"h2".to_vec()]),
        }
    }

    /// Sends `req` (its URI the origin-form path) to `endpoint`. HTTP/1 answers come with the
    /// connection, to be given back once the response body is read (see [`Pooled`]).
    pub async fn send(
        &self,
        protocol: BackendProtocol,
        connect_timeout: Duration,
        endpoint: SocketAddr,
        mut req: Request<UpstreamBody>,
    ) -> Result<(Response<Incoming>, Option<Pooled>), SendError> {
        if matches!(protocol, BackendProtocol::Grpc | BackendProtocol::Grpcs) {
            *req.uri_mut() = endpoint_uri(endpoint, req.uri());
            let client = self.client(protocol, connect_timeout);
            return match client.request(req).await {
                Ok(resp) => Ok((resp, None)),
                Err(e) if e.is_connect() => Err(SendError::Connect(Box::new(e), None)),
                Err(e) => Err(SendError::Request(Box::new(e))),
            };
        }
        let pool = self.pool(protocol, endpoint);
        loop {
            let (mut conn, reused) = match pool.take() {
                Some(conn) => (conn, true),
                None => match self.connect_http1(protocol, connect_timeout, endpoint).await {
                    Ok(conn) => (conn, false),
                    // Nothing was sent: the request comes back for another endpoint.
                    Err(e) => return Err(SendError::Connect(e, Some(Box::new(req)))),
                },
            };
            if reused && !conn.sender.is_ready() {
                // Given back as its last response ended: its IO has not seen that end yet.
                let Conn { sender, driver } = &mut conn;
                match tokio::time::timeout(connect_timeout, driving(driver, sender.ready())).await {
                    Ok(Ok(())) => {}
                    _ => continue,
                }
            }
            let Conn { sender, driver } = &mut conn;
            match driving(driver, sender.try_send_request(req)).await {
                Ok(resp) => return Ok((resp, Some(Pooled { conn, pool }))),
                Err(mut e) => match e.take_message() {
                    // Never started on a reused connection (closed by the backend): again.
                    Some(message) if reused => req = message,
                    _ => return Err(SendError::Request(Box::new(e.into_error()))),
                },
            }
        }
    }

    /// The pool of `endpoint` for `protocol`, created on first use.
    fn pool(&self, protocol: BackendProtocol, endpoint: SocketAddr) -> Arc<EndpointPool> {
        let key = (protocol_index(protocol), endpoint, super::workers::worker_index());
        if let Some(p) = self.pools.read().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return p.clone();
        }
        let mut pools = self.pools.write().unwrap_or_else(|e| e.into_inner());
        if pools.len() >= MAX_POOLS {
            pools.retain(|_, p| Arc::strong_count(p) > 1 || !p.is_empty());
        }
        pools.entry(key).or_insert_with(|| Arc::new(EndpointPool::new(self.pool))).clone()
    }

    /// A connection to `endpoint` for the proxy's own HTTP/1 path (`HTTP`, `HTTPS`): an idle
    /// one of this worker's, or a new one.
    pub async fn checkout(
        &self,
        protocol: BackendProtocol,
        connect_timeout: Duration,
        endpoint: SocketAddr,
    ) -> Result<BackendConn, ConnectError> {
        let key = (protocol_index(protocol), endpoint, super::workers::worker_index());
        let pool = self.raw_pools.read().unwrap_or_else(|e| e.into_inner()).get(&key).cloned();
        let pool = match pool {
            Some(pool) => pool,
            None => {
                let mut pools = self.raw_pools.write().unwrap_or_else(|e| e.into_inner());
                if pools.len() >= MAX_POOLS {
                    pools.retain(|_, p| Arc::strong_count(p) > 1 || !p.is_empty());
                }
                pools.entry(key).or_insert_with(|| Arc::new(EndpointPool::new(self.pool))).clone()
            }
        };
        if let Some(wire) = pool.take() {
            return Ok(BackendConn { wire, reused: true, pool });
        }
        let tls = matches!(protocol, BackendProtocol::Https).then(|| TlsConnector::from(self.tls.clone()));
        let stream = Connector { tls, connect_timeout }.connect_to(endpoint).await?;
        Ok(BackendConn { wire: Wire::new(stream, BACKEND_READ), reused: false, pool })
    }

    /// A new HTTP/1 connection to `endpoint`, driven by whoever uses it.
    async fn connect_http1(
        &self,
        protocol: BackendProtocol,
        connect_timeout: Duration,
        endpoint: SocketAddr,
    ) -> Result<Conn, BoxError> {
        let tls = matches!(protocol, BackendProtocol::Https).then(|| TlsConnector::from(self.tls.clone()));
        let connector = Connector { tls, connect_timeout };
        let stream = connector.connect_to(endpoint).await?;
        let (sender, io) = http1::Builder::new().handshake(TokioIo::new(stream)).await?;
        Ok(Conn { sender, driver: Some(Box::pin(io)) })
    }

    /// The client for `protocol` with `connect_timeout` (a cheap clone sharing the pool).
    fn client(&self, protocol: BackendProtocol, connect_timeout: Duration) -> UpstreamClient {
        let key = (protocol_index(protocol), connect_timeout);
        if let Some(c) = self.clients.read().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return c.clone();
        }
        let mut clients = self.clients.write().unwrap_or_else(|e| e.into_inner());
        clients.entry(key).or_insert_with(|| self.build(protocol, connect_timeout)).clone()
    }

    fn build(&self, protocol: BackendProtocol, connect_timeout: Duration) -> UpstreamClient {
        let tls = match protocol {
            BackendProtocol::Http | BackendProtocol::Grpc => None,
            BackendProtocol::Https => Some(TlsConnector::from(self.tls.clone())),
            BackendProtocol::Grpcs => Some(TlsConnector::from(self.tls_h2.clone())),
        };
        let connector = Connector { tls, connect_timeout };
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_idle_timeout(self.pool.idle_timeout)
            .pool_max_idle_per_host(self.pool.max_idle_per_endpoint)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .set_host(false);
        if matches!(protocol, BackendProtocol::Grpc | BackendProtocol::Grpcs) {
            builder.http2_only(true);
        }
        builder.build(connector)
    }
}

/// An HTTP/1 connection's request side.
type Sender = http1::SendRequest<UpstreamBody>;

/// An HTTP/1 connection's IO side (hyper's connection future, with upgrades): reads and writes
/// only when polled.
type Driver = Pin<Box<dyn Future<Output = hyper::Result<()>> + Send>>;

/// An HTTP/1 backend connection: requests go in through `sender`, and make progress while
/// `driver` is polled (`None` once the connection has ended).
struct Conn {
    sender: Sender,
    driver: Option<Driver>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").field("ended", &self.driver.is_none()).finish_non_exhaustive()
    }
}

/// Polls a connection's IO once; an ended connection is not polled again.
fn poll_driver(driver: &mut Option<Driver>, cx: &mut Context<'_>) {
    if let Some(d) = driver.as_mut() {
        if let Poll::Ready(ended) = d.as_mut().poll(cx) {
            if let Err(e) = ended {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
            *driver = None;
        }
    }
}

/// Runs `fut` (a use of the connection's sender) while driving the connection's IO.
async fn driving<F: Future>(driver: &mut Option<Driver>, fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(move |cx| {
        if let Poll::Ready(out) = fut.as_mut().poll(cx) {
            return Poll::Ready(out);
        }
        poll_driver(driver, cx);
        // What the IO just did (a request queued and written, a response read) may have
        // completed `fut`: look again now rather than after a wake-up.
        fut.as_mut().poll(cx)
    })
    .await
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a request could not be sent (or got no answer).
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No connection could be made: another endpoint may be tried. The request comes back when
    /// none of it was used (HTTP/1).
    #[error("{0}")]
    Connect(BoxError, Option<Box<Request<UpstreamBody>>>),
    #[error("{0}")]
    Request(BoxError),
}

impl SendError {
    /// Whether the endpoint refused the connection (or had no route): a failure that took no
    /// time and sent nothing.
    pub fn refused(&self) -> bool {
        let SendError::Connect(e, _) = self else { return false };
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e.as_ref());
        while let Some(err) = source {
            if let Some(connect) = err.downcast_ref::<ConnectError>() {
                return connect.refused();
            }
            source = err.source();
        }
        false
    }
}

/// `http://<endpoint><path>`: hyper-util's pool key is the endpoint.
fn endpoint_uri(endpoint: SocketAddr, uri: &Uri) -> Uri {
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = Authority::try_from(endpoint.to_string()).ok();
    parts.path_and_query = Some(uri.path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/")));
    Uri::from_parts(parts).expect("an endpoint address and a path make a URI")
}

/// A pooled connection: whether it can still carry a request.
trait Reusable {
    fn is_open(&self) -> bool;
}

/// The idle keep-alive connections of one endpoint (most recently used last).
#[derive(Debug)]
struct EndpointPool<C = Conn> {
    idle: Mutex<VecDeque<Idle<C>>>,
    max_idle: usize,
    idle_timeout: Duration,
}

#[derive(Debug)]
struct Idle<C> {
    conn: C,
    since: Instant,
}

impl<C: Reusable> EndpointPool<C> {
    fn new(config: PoolConfig) -> Self {
        EndpointPool {
            idle: Mutex::default(),
            max_idle: config.max_idle_per_endpoint,
            idle_timeout: config.idle_timeout,
        }
    }

    /// The most recently used open connection, if any.
    fn take(&self) -> Option<C> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(Idle { conn, since }) = idle.pop_back() {
            if conn.is_open() && since.elapsed() < self.idle_timeout {
                return Some(conn);
            }
        }
        None
    }

    fn put(&self, conn: C) {
        if !conn.is_open() || self.max_idle == 0 {
            return;
        }
        let now = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while idle.front().is_some_and(|i| {
            idle.len() >= self.max_idle || !i.conn.is_open() || now.duration_since(i.since) >= self.idle_timeout
        }) {
            idle.pop_front();
        }
        idle.push_back(Idle { conn, since: now });
    }

    fn is_empty(&self) -> bool {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).is_empty()
    }
}

impl Reusable for Conn {
    fn is_open(&self) -> bool {
        self.driver.is_some() && !self.sender.is_closed()
    }
}

/// A connection checked out for one request. [`Pooled::release`] gives it back (when the
/// response was read to the end); dropped instead, it is closed. Its holder drives its IO
/// ([`Pooled::poll_io`]) while it reads the response body.
#[derive(Debug)]
pub struct Pooled {
    conn: Conn,
    pool: Arc<EndpointPool>,
}

impl Pooled {
    /// Back to the pool, for the next request to this endpoint.
    pub fn release(self) {
        self.pool.put(self.conn);
    }

    /// Reads and writes what the connection can now (the response body arrives this way).
    pub fn poll_io(&mut self, cx: &mut Context<'_>) {
        poll_driver(&mut self.conn.driver, cx);
    }
}

/// A backend connection of the proxy's own HTTP/1 path, checked out for one request.
/// [`BackendConn::release`] gives it back once its response was read to the end; dropped
/// instead, it is closed.
#[derive(Debug)]
pub struct BackendConn {
    pub wire: Wire<UpstreamStream>,
    /// Taken from the pool (it may have been closed by the backend meanwhile).
    pub reused: bool,
    pool: Arc<RawPool>,
}

impl BackendConn {
    /// Back to the pool, without a read buffer: an idle connection holds only its socket.
    pub fn release(mut self) {
        self.wire.release_buffer();
        self.pool.put(self.wire);
    }
}

impl Reusable for Wire<UpstreamStream> {
    /// Open if nothing is waiting to be read: an idle connection that has bytes is either
    /// closed by the backend or out of step, and not reused. (TLS connections are not looked
    /// at: the bytes may be a session ticket for rustls.)
    fn is_open(&self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        match &self.io {
            UpstreamStream::Plain(tcp) => {
                matches!(tcp.try_read(&mut [0u8; 1]), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
            UpstreamStream::Tls(_) => true,
        }
    }
}

fn protocol_index(p: BackendProtocol) -> u8 {
    match p {
        BackendProtocol::Http => 0,
        BackendProtocol::Https => 1,
        BackendProtocol::Grpc => 2,
        BackendProtocol::Grpcs => 3,
    }
}

/// Why a backend connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("upstream URI {0} does not name an IP endpoint")]
    BadEndpoint(String),
    #[error("connect to {0} timed out after {1:?}")]
    Timeout(SocketAddr, Duration),
    #[error("connect to {0}: {1}")]
    Io(SocketAddr, io::Error),
    #[error("TLS handshake with {0}: {1}")]
    Tls(SocketAddr, io::Error),
}

impl ConnectError {
    /// Whether the endpoint refused the connection (or had no route).
    pub fn refused(&self) -> bool {
        let ConnectError::Io(_, e) = self else { return false };
        matches!(
            e.kind(),
            io::ErrorKind::ConnectionRefused | io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable
        )
    }
}

/// Dials the endpoint of a request URI.
#[derive(Clone)]
pub struct Connector {
    tls: Option<TlsConnector>,
    connect_timeout: Duration,
}

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<UpstreamStream>;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { this.connect(&uri).await.map(TokioIo::new) })
    }
}

impl Connector {
    async fn connect(self, uri: &Uri) -> Result<UpstreamStream, ConnectError> {
        let addr = endpoint_of(uri).ok_or_else(|| ConnectError::BadEndpoint(uri.to_string()))?;
        self.connect_to(addr).await
    }

    async fn connect_to(self, addr: SocketAddr) -> Result<UpstreamStream, ConnectError> {
        let tcp = tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| ConnectError::Timeout(addr, self.connect_timeout))?
            .map_err(|e| ConnectError::Io(addr, e))?;
        let _ = tcp.set_nodelay(true);
        let Some(tls) = self.tls else { return Ok(UpstreamStream::Plain(tcp)) };
        // No SNI, as ingress-nginx (`proxy_ssl_server_name off`): the name is the IP address.
        let name = ServerName::IpAddress(addr.ip().into());
        let stream = tokio::time::timeout(self.connect_timeout, tls.connect(name, tcp))
            .await
            .map_err(|_| ConnectError::Timeout(addr, self.connect_timeout))?
            .map_err(|e| ConnectError::Tls(addr, e))?;
        Ok(UpstreamStream::Tls(Box::new(stream)))
    }
}

/// The socket address of an `http://ip:port` URI.
fn endpoint_of(uri: &Uri) -> Option<SocketAddr> {
    let host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
    Some(SocketAddr::new(host.parse().ok()?, uri.port_u16()?))
}

/// A backend connection, plain or TLS.
#[derive(Debug)]
pub enum UpstreamStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connection for UpstreamStream {
    fn connected(&self) -> Connected {
        match self {
            UpstreamStream::Plain(s) => s.connected(),
            UpstreamStream::Tls(s) => {
                let (tcp, session) = s.get_ref();
                let connected = tcp.connected();
                if session.alpn_protocol() == Some(b"h2") {
                    connected.negotiated_h2()
                } else {
                    connected
                }
            }
        }
    }
}

impl AsyncRead for UpstreamStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpstreamStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            UpstreamStream::Plain(s) => s.is_write_vectored(),
            UpstreamStream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_flush(cx),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A rustls client configuration that accepts any backend certificate (`proxy_ssl_verify off`).
fn insecure_client_config(alpn: Vec<Vec<u8>>) -> Arc<rustls::ClientConfig> {
    podnet_tls::unverified_client_config(alpn, None).expect("the ring provider supports the default protocol versions")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_come_from_ip_uris() {
        assert_eq!(endpoint_of(&"http://10.0.0.1:8080/x".parse().unwrap()), Some("10.0.0.1:8080".parse().unwrap()));
        assert_eq!(endpoint_of(&"http://[fd00::1]:80/".parse().unwrap()), Some("[fd00::1]:80".parse().unwrap()));
        assert_eq!(endpoint_of(&"http://example.com:80/".parse().unwrap()), None);
    }
}
