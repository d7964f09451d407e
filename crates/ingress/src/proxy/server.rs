//! The listeners: one accept loop over the HTTP and HTTPS sockets with a bound on open
//! connections (a semaphore permit per connection), each accepted connection handed to a worker
//! thread ([`super::workers`]) that runs it to its end, TLS handshakes on the connection's own
//! task (so a slow handshake never stalls accepting), hyper-util's automatic HTTP/1.1 / HTTP/2 server
//! per connection, idle HTTP/1 connections parked without hyper's buffers ([`super::park`]),
//! and graceful shutdown: stop accepting, tell every connection to finish its in-flight requests
//! (parked ones close at once), wait for them (up to the grace period).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;

use super::handler::{self, Shared};
use super::headers::ClientInfo;
use super::park::{Parkable, Slot, PARK_AFTER};
use super::sniff::Sniffed;
use super::workers::Workers;
use super::{ProxyConfig, ProxyError};
use crate::metrics::Metrics;

/// The HTTP/1 + HTTP/2 connection server, as configured.
type ConnBuilder = auto::Builder<TokioExecutor>;

/// Builds the connection server: header read timeout (which also bounds idle keep-alive
/// connections in hyper), HTTP/2 stream limits as nginx's defaults.
pub fn conn_builder(config: &ProxyConfig) -> ConnBuilder {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(config.client_header_timeout.min(config.client_keepalive_timeout));
    builder
        .http2()
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
    tls: TlsAcceptor,
    handshake_timeout: Duration,
    /// How long a parked connection may wait for its next request.
    keepalive_timeout: Duration,
    metrics: Arc<Metrics>,
    /// Turns true when the server shuts down.
    stopping: watch::Receiver<bool>,
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
    let (stop, stopping) = watch::channel(false);
    let listening = Arc::new(Listening {
        metrics: shared.metrics.clone(),
        shared,
        builder: Arc::new(conn_builder(config)),
        tls: TlsAcceptor::from(tls),
        handshake_timeout: config.client_header_timeout,
        keepalive_timeout: config.client_keepalive_timeout.min(config.client_header_timeout),
        stopping,
    });
    let workers = Workers::start(config.workers).map_err(ProxyError::Workers)?;
    let max = config.max_connections.max(1);
    let permits = Arc::new(Semaphore::new(max));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = permits.clone().acquire_owned() => p.map_err(|_| ProxyError::Closed)?,
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
                let listening = listening.clone();
                workers.spawn(async move {
                    match TcpStream::from_std(stream) {
                        Ok(stream) => connection(listening, stream, peer, tls, permit).await,
                        Err(e) => tracing::warn!(error = %e, "a worker cannot take a connection"),
                    }
                });
            }
            Err(e) => accept_failed(e).await,
        }
    }
    drop((http, https));
    let open = max - permits.available_permits();
    tracing::info!(connections = open, "proxy shutting down; draining connections");
    let _ = stop.send(true);
    // Every connection holds a permit until it has finished.
    let drained = permits.acquire_many(max as u32);
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

/// One client connection: TLS if on the HTTPS port, then HTTP until it closes.
async fn connection(
    listening: Arc<Listening>,
    stream: TcpStream,
    peer: SocketAddr,
    tls: bool,
    _permit: OwnedSemaphorePermit,
) {
    let metrics = listening.metrics.clone();
    metrics.connections_total.fetch_add(1, Ordering::Relaxed);
    metrics.connections_active.fetch_add(1, Ordering::Relaxed);
    let _ = stream.set_nodelay(true);
    let local_port = stream.local_addr().map(|a| a.port()).unwrap_or(0);
    let client = Arc::new(ClientInfo::new(peer.ip().to_canonical(), local_port, tls));
    if tls {
        let handshake = tokio::time::timeout(listening.handshake_timeout, listening.tls.accept(stream)).await;
        match handshake {
            Ok(Ok(stream)) if stream.get_ref().1.alpn_protocol() == Some(b"h2") => {
                serve_http(&listening, TokioIo::new(stream), client).await
            }
            Ok(Ok(stream)) => {
                let sniffed = Sniffed::new(stream, client.conflicts.clone());
                serve_http(&listening, TokioIo::new(sniffed), client).await
            }
            Ok(Err(e)) => {
                metrics.tls_handshake_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
            }
            Err(_) => {
                metrics.tls_handshake_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%peer, "TLS handshake timed out");
            }
        }
    } else {
        serve_parkable(&listening, stream, client).await;
    }
    metrics.connections_active.fetch_sub(1, Ordering::Relaxed);
}

/// The request handler of a connection: the proxy's, noting each HTTP/1.1 answer for parking.
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
    service_fn(move |req: http::Request<hyper::body::Incoming>| {
        let (shared, client) = (shared.clone(), client.clone());
        async move {
            let http11 = req.version() == http::Version::HTTP_11;
            let resp = handler::handle(shared, client.clone(), req).await;
            if http11 {
                client.conflicts.answered();
            }
            resp
        }
    })
}

/// How a connection run by [`finish!`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Finished {
    /// The connection ended (closed, failed or upgraded).
    Ended,
    /// The server stops.
    Stopping,
    /// Finished cleanly for parking: its socket is in the park slot.
    Parked,
}

/// Runs a connection future: to its end; or, when the server stops or (for a parkable one)
/// `$park_now` says so (asked every [`PARK_AFTER`]), to the end of its in-flight requests. (A
/// macro: hyper-util's connection type has no trait to be generic over.)
macro_rules! finish {
    ($conn:expr, $stopping:expr) => {
        finish!($conn, $stopping, false, || false)
    };
    ($conn:expr, $stopping:expr, $parkable:expr, $park_now:expr) => {{
        let mut conn = $conn;
        loop {
            let event = tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "client connection ended with an error");
                    }
                    Finished::Ended
                }
                _ = $stopping.wait_for(|s| *s) => Finished::Stopping,
                _ = tokio::time::sleep(PARK_AFTER), if $parkable => {
                    if $park_now() { Finished::Parked } else { continue }
                }
            };
            if event != Finished::Ended {
                conn.as_mut().graceful_shutdown();
                // A response that fails on its way (a backend cut off mid-body) ends the
                // connection instead of parking it.
                if conn.await.is_err() {
                    break Finished::Ended;
                }
            }
            break if *$stopping.borrow() { Finished::Stopping } else { event };
        }
    }};
}

/// Serves HTTP/1.1 (with upgrades) or HTTP/2 on an established connection until it closes or
/// the server stops.
async fn serve_http<I>(listening: &Listening, io: I, client: Arc<ClientInfo>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let conn = Box::pin(listening.builder.serve_connection_with_upgrades(io, service(listening, client)));
    let mut stopping = listening.stopping.clone();
    let _ = finish!(conn, stopping);
}

/// Serves a plain connection, parking it whenever it is quiet between requests: hyper's
/// connection (and its buffers) is dropped, and only the socket waits for the next request.
async fn serve_parkable(listening: &Listening, stream: TcpStream, client: Arc<ClientInfo>) {
    let mut stopping = listening.stopping.clone();
    let mut io = Sniffed::new(stream, client.conflicts.clone());
    loop {
        let slot = Slot::new();
        let parkable = TokioIo::new(Parkable::new(io, slot.clone()));
        let conn =
            Box::pin(listening.builder.serve_connection_with_upgrades(parkable, service(listening, client.clone())));
        let park_now = || {
            let quiet = slot.quiet_for() >= PARK_AFTER && client.conflicts.idle();
            if quiet {
                slot.request();
            }
            quiet
        };
        if finish!(conn, stopping, true, park_now) != Finished::Parked {
            return;
        }
        let Some(back) = slot.take() else { return };
        io = back;
        listening.metrics.connections_parked.fetch_add(1, Ordering::Relaxed);
        let wake = tokio::select! {
            r = io.get_ref().readable() => r.is_ok(),
            _ = tokio::time::sleep(listening.keepalive_timeout.saturating_sub(PARK_AFTER)) => false,
            _ = stopping.wait_for(|s| *s) => false,
        };
        listening.metrics.connections_parked.fetch_sub(1, Ordering::Relaxed);
        if !wake {
            return;
        }
    }
}
