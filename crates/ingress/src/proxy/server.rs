//! The listeners: one accept loop over the HTTP and HTTPS sockets with a bound on open
//! connections (a semaphore permit per connection), each accepted connection handed to a worker
//! thread ([`super::workers`]) that runs it to its end, TLS handshakes on the connection's own
//! task (so a slow handshake never stalls accepting), then HTTP: the proxy's own HTTP/1.1
//! ([`super::h1`]), or hyper's HTTP/2 server for connections that chose `h2` by ALPN or open
//! with the HTTP/2 preface; and graceful shutdown: stop accepting, tell every connection to
//! finish its in-flight requests (idle ones close at once), wait for them (up to the grace
//! period).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use super::h1::{self, wire::Wire, wire::CLIENT_READ};
use super::handler::{self, Shared};
use super::headers::ClientInfo;
use super::stop::Stop;
use super::workers::Workers;
use super::{ProxyConfig, ProxyError};
use crate::metrics::Metrics;

/// The HTTP/2 connection server, as configured.
type ConnBuilder = http2::Builder<TokioExecutor>;

/// Builds the HTTP/2 connection server: stream limits as nginx's defaults, pings to find dead
/// idle connections.
pub fn conn_builder(config: &ProxyConfig) -> ConnBuilder {
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(config.http2_max_concurrent_streams)
        .keep_alive_interval(Some(config.client_keepalive_timeout))
        .keep_alive_timeout(config.client_header_timeout);
    builder
}

/// What each connection task needs.
struct Listening {
    shared: Arc<Shared>,
    builder: Arc<ConnBuilder>,
    /// The HTTP/1 path's settings.
    h1: h1::Conn,
    tls: TlsAcceptor,
    handshake_timeout: Duration,
    metrics: Arc<Metrics>,
    /// The server's stop signal.
    stopping: Arc<Stop>,
    /// A permit per connection that may be open (`max_connections`); each open one holds
    /// one as its [`Open`].
    connections: Semaphore,
}

/// An open client connection's hold on the listening state and on its connection permit (given
/// back when dropped): one pointer for both in every connection's future.
struct Open(Arc<Listening>);

impl Open {
    /// Waits for a free connection permit.
    async fn acquire(listening: &Arc<Listening>) -> Result<Open, ProxyError> {
        listening.connections.acquire().await.map_err(|_| ProxyError::Closed)?.forget();
        Ok(Open(listening.clone()))
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.connections.add_permits(1);
    }
}

impl std::ops::Deref for Open {
    type Target = Listening;

    fn deref(&self) -> &Listening {
        &self.0
    }
}

impl Listening {
    fn new(config: &ProxyConfig, shared: Arc<Shared>, tls: Arc<rustls::ServerConfig>, stopping: Arc<Stop>) -> Self {
        Listening {
            metrics: shared.metrics.clone(),
            h1: h1::Conn {
                shared: shared.clone(),
                header_timeout: config.client_header_timeout,
                keepalive_timeout: config.client_keepalive_timeout,
                stopping: stopping.clone(),
            },
            shared,
            builder: Arc::new(conn_builder(config)),
            tls: TlsAcceptor::from(tls),
            handshake_timeout: config.client_header_timeout,
            stopping,
            connections: Semaphore::new(config.max_connections.max(1)),
        }
    }
}

/// Accepts until `shutdown`, then drains.
pub async fn run(
    http: TcpListener,
    https: TcpListener,
    config: &ProxyConfig,
    shared: Arc<Shared>,
    tls: Arc<rustls::ServerConfig>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ProxyError> {
    let stop = Arc::new(Stop::default());
    let listening = Arc::new(Listening::new(config, shared, tls, stop.clone()));
    let workers = Workers::start(config.workers).map_err(ProxyError::Workers)?;
    // The port a client connected to (`X-Forwarded-Port`) is its listener's.
    let http_port = http.local_addr().map_err(ProxyError::LocalAddr)?.port();
    let https_port = https.local_addr().map_err(ProxyError::LocalAddr)?.port();
    let max = config.max_connections.max(1);
    tokio::pin!(shutdown);
    loop {
        let open = tokio::select! {
            _ = &mut shutdown => break,
            open = Open::acquire(&listening) => open?,
        };
        let (accepted, tls) = tokio::select! {
            _ = &mut shutdown => break,
            r = http.accept() => (r, false),
            r = https.accept() => (r, true),
        };
        match accepted {
            Ok((stream, peer)) => {
                // The socket moves to the worker's runtime: registered there on first use.
                let stream = match stream.into_std() {
                    Ok(stream) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot hand an accepted connection to a worker");
                        continue;
                    }
                };
                let port = if tls { https_port } else { http_port };
                let client = ClientInfo::new(peer.ip().to_canonical(), port, tls);
                workers.spawn(connection(open, stream, client));
            }
            Err(e) => accept_failed(e).await,
        }
    }
    drop((http, https));
    let open = max - listening.connections.available_permits();
    tracing::info!(connections = open, "proxy shutting down; draining connections");
    stop.stop();
    workers.close_idle();
    // Every connection holds a permit until it has finished.
    let drained = listening.connections.acquire_many(max as u32);
    if tokio::time::timeout(config.shutdown_grace, drained).await.is_err() {
        tracing::warn!("connections still open after {:?}; closing them", config.shutdown_grace);
    }
    drop(workers);
    Ok(())
}

/// Accept errors are mostly transient (a client gone before accept, or no descriptors left):
/// log, back off briefly when out of resources, and go on.
async fn accept_failed(e: std::io::Error) {
    tracing::warn!(error = %e, "accept failed");
    if !matches!(e.kind(), std::io::ErrorKind::ConnectionAborted | std::io::ErrorKind::ConnectionReset) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One client connection, on the worker that runs it (its socket is registered with that
/// worker's runtime here): TLS if on the HTTPS port, then HTTP until it closes.
///
/// What a connection holds for as long as it is open is this future (the task spawned for it):
/// the larger states (TLS, HTTP/2, a request in flight) are boxed while they last, so an idle
/// plain connection costs a few hundred bytes. Not an `async fn`, whose arguments would be
/// kept twice (as arguments and as the locals they are moved into): the block takes them once
/// (272 bytes instead of 296).
#[allow(clippy::manual_async_fn)]
fn connection(
    listening: Open,
    stream: std::net::TcpStream,
    client: ClientInfo,
) -> impl std::future::Future<Output = ()> + Send {
    async move {
        // The socket only ever lives in the wire (a second place would be kept in the future).
        let mut wire = match TcpStream::from_std(stream) {
            Ok(stream) => Wire::new(stream, CLIENT_READ),
            Err(e) => return tracing::warn!(error = %e, "a worker cannot take a connection"),
        };
        listening.metrics.connections_total.fetch_add(1, Ordering::Relaxed);
        listening.metrics.connections_active.fetch_add(1, Ordering::Relaxed);
        let _ = wire.io.set_nodelay(true);
        if client.tls {
            Box::pin(serve_tls(&listening, wire.io, &client)).await;
        } else if h1::serve(&listening.h1, &mut wire, &client).await == h1::Served::H2 {
            Box::pin(serve_http2(&listening, TokioIo::new(wire), client)).await;
        }
        listening.metrics.connections_active.fetch_sub(1, Ordering::Relaxed);
        drop(listening);
    }
}

/// TLS, then HTTP/2 if the client chose it by ALPN, else HTTP/1.1.
async fn serve_tls(listening: &Listening, stream: TcpStream, client: &ClientInfo) {
    let metrics = &listening.metrics;
    let handshake = tokio::time::timeout(listening.handshake_timeout, listening.tls.accept(stream)).await;
    match handshake {
        Ok(Ok(stream)) if stream.get_ref().1.alpn_protocol() == Some(b"h2") => {
            serve_http2(listening, TokioIo::new(stream), client.clone()).await
        }
        Ok(Ok(stream)) => serve_h1(listening, stream, client).await,
        Ok(Err(e)) => {
            metrics.tls_handshake_errors.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(peer = %client.ip, error = %e, "TLS handshake failed");
        }
        Err(_) => {
            metrics.tls_handshake_errors.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(peer = %client.ip, "TLS handshake timed out");
        }
    }
}

/// The request handler of an HTTP/2 connection.
fn service(
    listening: &Listening,
    client: Arc<ClientInfo>,
) -> impl hyper::service::Service<
    http::Request<hyper::body::Incoming>,
    Response = http::Response<super::body::ResponseBody>,
    Error = std::convert::Infallible,
    Future = impl std::future::Future<
        Output = Result<http::Response<super::body::ResponseBody>, std::convert::Infallible>,
    > + Send,
> + Clone {
    let shared = listening.shared.clone();
    service_fn(move |req| handler::handle(shared.clone(), client.clone(), req))
}

/// Serves HTTP/2 on an established connection until it closes or the server stops (then its
/// open streams finish first).
async fn serve_http2<I>(listening: &Listening, io: I, client: ClientInfo)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let mut conn = std::pin::pin!(listening.builder.serve_connection(io, service(listening, Arc::new(client))));
    let ended = tokio::select! {
        r = conn.as_mut() => Some(r),
        _ = listening.stopping.stopped() => None,
    };
    let ended = match ended {
        Some(ended) => ended,
        None => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = ended {
        tracing::debug!(error = %e, "client connection ended with an error");
    }
}

/// Serves HTTP/1.1 with the proxy's own HTTP/1 path; a connection that opens with the HTTP/2
/// preface goes on with hyper's HTTP/2 server.
async fn serve_h1<S: h1::ClientStream + 'static>(listening: &Listening, io: S, client: &ClientInfo) {
    let mut wire = Wire::new(io, CLIENT_READ);
    if h1::serve(&listening.h1, &mut wire, client).await == h1::Served::H2 {
        Box::pin(serve_http2(listening, TokioIo::new(wire), client.clone())).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::upstream::{PoolConfig, Upstreams};

    #[derive(Debug)]
    struct NoCertificate;

    impl rustls::server::ResolvesServerCert for NoCertificate {
        fn resolve(&self, _: rustls::server::ClientHello<'_>) -> Option<Arc<rustls::sign::CertifiedKey>> {
            None
        }
    }

    /// An open connection holds its task's future for as long as it lasts: kept small (the
    /// TLS, HTTP/2 and in-flight request states are boxed while they last), so 10,000 idle
    /// keep-alive connections cost little more than their sockets. tokio's task cell around it
    /// adds ~100 bytes and is a multiple of 128 bytes: ≤ 280 keeps the task at 384. (Without the
    /// boxes the future was 12.9 KB; with a timer, a stop waiter and the arguments of nested
    /// `async fn`s kept twice, 1 KB.)
    #[tokio::test]
    async fn an_idle_connection_holds_a_small_future() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (stream, peer) = listener.accept().await.unwrap();
        let config = ProxyConfig::default();
        let pool = PoolConfig { idle_timeout: Duration::from_secs(1), max_idle_per_endpoint: 1 };
        let shared = Arc::new(Shared {
            table: Default::default(),
            metrics: Default::default(),
            upstreams: Upstreams::new(pool),
            balancer: Default::default(),
            https_port: 443,
            retry_buffer: 1,
            body_timeout: Duration::from_secs(1),
        });
        let tls = rustls::ServerConfig::builder().with_no_client_auth().with_cert_resolver(Arc::new(NoCertificate));
        let listening = Arc::new(Listening::new(&config, shared, Arc::new(tls), Default::default()));
        let open = Open::acquire(&listening).await.unwrap();
        let client = ClientInfo::new(peer.ip(), 80, false);
        let task = connection(open, stream.into_std().unwrap(), client);
        let size = std::mem::size_of_val(&task);
        assert!(size <= 280, "a connection's future is {size} bytes");
    }
}
