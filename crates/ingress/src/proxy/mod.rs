//! The data plane: an HTTP/HTTPS reverse proxy that reads the current [`RouteTable`] for every
//! request, so table swaps apply at once, without reloads and without touching open
//! connections (in-flight requests and upgraded connections finish on what they started with).
//!
//! Layers: [`server`] accepts and terminates TLS; [`h1`] is the proxy's own HTTP/1.1 on both
//! sides (client connections and `HTTP`/`HTTPS` backends), hyper serves HTTP/2 clients and
//! `GRPC` backends; [`handler`] is the request path they share (routing, redirects, access
//! checks, canaries, rewrites, forwarded headers) and hyper's side of it (retries, bodies);
//! [`balance`] picks the endpoint; [`upstream`] keeps pooled keep-alive connections to
//! endpoints; [`workers`] are the threads connections run on, [`idle`] their idle keep-alive
//! connections, [`stop`] the server's stop signal; [`headers`], [`body`] and [`response`] are
//! the pieces they share. Behaviour
//! follows ingress-nginx's defaults wherever the Ingress API leaves room.

pub mod balance;
pub mod body;
pub mod h1;
pub mod handler;
pub mod headers;
pub mod idle;
pub mod response;
pub mod server;
pub mod stop;
pub mod upstream;
pub mod workers;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;

use crate::metrics::Metrics;
use crate::table::RouteTable;
use handler::Shared;
use upstream::{PoolConfig, Upstreams};

/// How the proxy listens and treats clients and backends.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// The plain HTTP listener (`:80`).
    pub http: SocketAddr,
    /// The TLS listener (`:443`).
    pub https: SocketAddr,
    /// Open client connections at most; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// How long a client may take to send a request head, and a TLS handshake
    /// (nginx's `client_header_timeout`, 60 s).
    pub client_header_timeout: Duration,
    /// How long an idle keep-alive client connection is kept (nginx's `keepalive_timeout`, 75 s);
    /// HTTP/1 connections are closed by their worker's reaper at most 1/8 of it (≤ 1 s) later.
    pub client_keepalive_timeout: Duration,
    /// How long reading a buffered request body may take (nginx's `client_body_timeout`).
    pub client_body_timeout: Duration,
    /// Request bodies with a declared length up to this are read whole before sending, so a
    /// connect failure can be retried on another endpoint; longer ones are streamed.
    pub retry_buffer: u64,
    /// The HTTPS port named in redirects; `None` → the port of [`ProxyConfig::https`].
    pub redirect_https_port: Option<u16>,
    /// Concurrent streams per HTTP/2 client connection (nginx's default 128).
    pub http2_max_concurrent_streams: u32,
    /// Idle backend connections kept per endpoint by each worker thread (ingress-nginx's
    /// `upstream-keepalive-connections`, 320, which nginx keeps per worker process).
    pub upstream_keepalive_connections: usize,
    /// How long an idle backend connection is kept (`upstream-keepalive-timeout`, 60 s).
    pub upstream_keepalive_timeout: Duration,
    /// How long shutdown waits for in-flight requests before closing connections.
    pub shutdown_grace: Duration,
    /// Data-plane threads, each running its share of the client connections start to end
    /// (nginx's `worker_processes`); 0: one per core.
    pub workers: usize,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            http: ([0, 0, 0, 0], 80).into(),
            https: ([0, 0, 0, 0], 443).into(),
            max_connections: 16_384,
            client_header_timeout: Duration::from_secs(60),
            client_keepalive_timeout: Duration::from_secs(75),
            client_body_timeout: Duration::from_secs(60),
            retry_buffer: 64 * 1024,
            redirect_https_port: None,
            http2_max_concurrent_streams: 128,
            upstream_keepalive_connections: 320,
            upstream_keepalive_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(30),
            workers: 0,
        }
    }
}

/// Why the proxy could not run.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("cannot read a listener's address: {0}")]
    LocalAddr(std::io::Error),
    #[error("the connection limiter was closed")]
    Closed,
    #[error("cannot start the worker threads: {0}")]
    Workers(std::io::Error),
}

/// The proxy's sockets, bound (so callers can learn ephemeral ports) but not yet serving.
#[derive(Debug)]
pub struct Bound {
    config: ProxyConfig,
    http: TcpListener,
    https: TcpListener,
}

impl Bound {
    /// Binds both listeners.
    pub async fn bind(config: ProxyConfig) -> Result<Bound, ProxyError> {
        let listen = |addr: SocketAddr| async move {
            TcpListener::bind(addr).await.map_err(|source| ProxyError::Bind { addr, source })
        };
        let http = listen(config.http).await?;
        let https = listen(config.https).await?;
        Ok(Bound { config, http, https })
    }

    /// The bound HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http.local_addr().unwrap_or(self.config.http)
    }

    /// The bound HTTPS address.
    pub fn https_addr(&self) -> SocketAddr {
        self.https.local_addr().unwrap_or(self.config.https)
    }

    /// Serves until `shutdown` completes, then stops accepting and lets in-flight requests
    /// finish (up to [`ProxyConfig::shutdown_grace`]).
    pub async fn serve(
        self,
        table: Arc<ArcSwap<RouteTable>>,
        tls: Arc<rustls::ServerConfig>,
        metrics: Arc<Metrics>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ProxyError> {
        let https_port = self.config.redirect_https_port.unwrap_or_else(|| self.https_addr().port());
        let pool = PoolConfig {
            idle_timeout: self.config.upstream_keepalive_timeout,
            max_idle_per_endpoint: self.config.upstream_keepalive_connections,
        };
        let shared = Arc::new(Shared {
            table,
            metrics,
            upstreams: Upstreams::new(pool),
            balancer: Default::default(),
            https_port,
            retry_buffer: self.config.retry_buffer,
            body_timeout: self.config.client_body_timeout,
        });
        server::run(self.http, self.https, &self.config, shared, tls, shutdown).await
    }
}

/// Binds the configured addresses and serves until `shutdown` (see [`Bound::serve`]).
pub async fn serve(
    config: ProxyConfig,
    table: Arc<ArcSwap<RouteTable>>,
    tls: Arc<rustls::ServerConfig>,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ProxyError> {
    Bound::bind(config).await?.serve(table, tls, metrics, shutdown).await
}
