//! The listeners: one accept loop over the HTTP and HTTPS sockets with a bound on open
//! connections (a semaphore permit per connection), TLS handshakes on the connection's own task
//! (so a slow handshake never stalls accepting), hyper-util's automatic HTTP/1.1 / HTTP/2 server
//! per connection, and graceful shutdown: stop accepting, tell every connection to finish its
//! in-flight requests, wait for them (up to the grace period).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;

use super::handler::{self, Shared};
use super::headers::ClientInfo;
use super::sniff::Sniffed;
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
    metrics: Arc<Metrics>,
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
    let listening = Arc::new(Listening {
        metrics: shared.metrics.clone(),
        shared,
        builder: Arc::new(conn_builder(config)),
        tls: TlsAcceptor::from(tls),
        handshake_timeout: config.client_header_timeout,
    });
    let permits = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
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
                let task = connection(listening.clone(), graceful.watcher(), stream, peer, tls, permit);
                tokio::spawn(task);
            }
            Err(e) => accept_failed(e).await,
        }
    }
    drop((http, https));
    tracing::info!(connections = graceful.count(), "proxy shutting down; draining connections");
    if tokio::time::timeout(config.shutdown_grace, graceful.shutdown()).await.is_err() {
        tracing::warn!("connections still open after {:?}; closing them", config.shutdown_grace);
    }
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
    watcher: Watcher,
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
                serve_http(&listening, watcher, TokioIo::new(stream), client).await
            }
            Ok(Ok(stream)) => {
                let sniffed = Sniffed::new(stream, client.conflicts.clone());
                serve_http(&listening, watcher, TokioIo::new(sniffed), client).await
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
        let sniffed = Sniffed::new(stream, client.conflicts.clone());
        serve_http(&listening, watcher, TokioIo::new(sniffed), client).await;
    }
    metrics.connections_active.fetch_sub(1, Ordering::Relaxed);
}

/// Serves HTTP/1.1 (with upgrades) or HTTP/2 on an established connection.
async fn serve_http<I>(listening: &Listening, watcher: Watcher, io: I, client: Arc<ClientInfo>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let shared = listening.shared.clone();
    let service = service_fn(move |req| handler::handle(shared.clone(), client.clone(), req));
    let conn = listening.builder.serve_connection_with_upgrades(io, service);
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(error = %e, "client connection ended with an error");
    }
}
