//! The HTTP serving all built-in servers share: listening (every address of a port, IPv4 and
//! IPv6, or given addresses), an accept loop with bounded concurrency, HTTP/1.1 (and HTTP/2 with
//! prior knowledge) through hyper, optional TLS, and graceful shutdown: once shutdown is asked
//! for, no new connection is accepted, requests in flight finish (for at most
//! [`SHUTDOWN_GRACE`]) and idle keep-alive connections are closed.
//!
//! Each image is a [`Handler`]: it sees the request head (the body is read and dropped first)
//! and the connection's addresses and TLS state, and returns a complete response.

use std::convert::Infallible;
use std::future::Future;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;

use crate::Error;

/// Connections served at once by one server; further ones wait in the listen backlog.
pub(crate) const MAX_CONNECTIONS: usize = 1024;
/// How long requests in flight may take to finish after shutdown was asked for.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(25);
/// The most of a request body that is read (and dropped) before answering.
const MAX_BODY: usize = 1 << 20;

/// A complete response.
pub(crate) type Reply = Response<Full<Bytes>>;
/// A response still being prepared.
pub(crate) type ReplyFuture = Pin<Box<dyn Future<Output = Reply> + Send>>;

/// The TLS state of a connection, for the echo server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsInfo {
    /// `TLSv1.3` or `TLSv1.2`.
    pub version: String,
    /// The SNI the client sent.
    pub server_name: Option<String>,
    /// The ALPN protocol agreed on.
    pub negotiated_protocol: Option<String>,
    /// The cipher suite, named as Go's crypto/tls names it.
    pub cipher_suite: String,
}

/// The connection a request came on.
#[derive(Debug, Clone)]
pub(crate) struct ConnInfo {
    /// The server's address of the connection (IPv4-mapped addresses unmapped).
    pub local: SocketAddr,
    /// The client's address (IPv4-mapped addresses unmapped).
    pub remote: SocketAddr,
    /// The TLS state, for connections over TLS.
    pub tls: Option<TlsInfo>,
}

/// One request as handlers see it.
pub(crate) struct Request {
    pub parts: Parts,
    pub conn: Arc<ConnInfo>,
}

/// What an image answers.
pub(crate) trait Handler: Send + Sync + 'static {
    fn handle(&self, req: Request) -> ReplyFuture;
}

/// A bound listening socket, plain or TLS.
pub(crate) struct Listener {
    pub tcp: TcpListener,
    pub tls: Option<TlsAcceptor>,
}

impl Listener {
    pub(crate) fn plain(tcp: TcpListener) -> Self {
        Listener { tcp, tls: None }
    }
}

/// Where to listen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListenSpec {
    /// Every address of the port: `[::]` (dual-stack where the kernel allows) and `0.0.0.0`.
    Port(u16),
    /// One address.
    Addr(SocketAddr),
}

impl ListenSpec {
    /// `8080`, `:8080`, `0.0.0.0:8080`, `127.0.0.1:0` or `[::1]:80`.
    pub(crate) fn parse(s: &str) -> Result<Self, Error> {
        let s = s.trim();
        let port = s.strip_prefix(':').unwrap_or(s);
        if let Ok(p) = port.parse::<u16>() {
            return Ok(ListenSpec::Port(p));
        }
        s.parse::<SocketAddr>()
            .map(ListenSpec::Addr)
            .map_err(|_| Error::Usage(format!("--listen {s:?}: expected PORT, :PORT or ADDRESS:PORT")))
    }
}

impl std::fmt::Display for ListenSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenSpec::Port(p) => write!(f, ":{p}"),
            ListenSpec::Addr(a) => write!(f, "{a}"),
        }
    }
}

/// Binds a listen spec: a port on every address is `[::]` plus `0.0.0.0` (the second fails,
/// harmlessly, when the first is dual-stack; either may fail where its family is missing).
pub(crate) async fn bind(spec: ListenSpec) -> Result<Vec<TcpListener>, Error> {
    match spec {
        ListenSpec::Addr(addr) => {
            let l = TcpListener::bind(addr).await.map_err(|source| Error::Listen { addr: spec.to_string(), source })?;
            Ok(vec![l])
        }
        ListenSpec::Port(port) => {
            let mut out = Vec::new();
            let v6 = TcpListener::bind(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port)).await;
            let v6_err = match v6 {
                Ok(l) => {
                    let port = l.local_addr().map(|a| a.port()).unwrap_or(port);
                    out.push(l);
                    // Port 0 picked a port: the IPv4 socket takes the same one.
                    match TcpListener::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)).await {
                        Ok(l) => out.push(l),
                        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {} // dual-stack
                        Err(e) => log_err(&format!("listening on 0.0.0.0:{port}: {e} (IPv6 only)")),
                    }
                    return Ok(out);
                }
                Err(e) => e,
            };
            match TcpListener::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)).await {
                Ok(l) => {
                    out.push(l);
                    Ok(out)
                }
                Err(source) => {
                    Err(Error::Listen { addr: format!(":{port} ([::]: {v6_err}; 0.0.0.0: {source})"), source })
                }
            }
        }
    }
}

/// The addresses of bound listeners, for the start-up line.
pub(crate) fn describe(listeners: &[Listener]) -> String {
    let addrs: Vec<String> = listeners
        .iter()
        .map(|l| {
            let a = l.tcp.local_addr().map(|a| a.to_string()).unwrap_or_else(|_| "?".into());
            if l.tls.is_some() {
                format!("{a} (https)")
            } else {
                a
            }
        })
        .collect();
    addrs.join(", ")
}

fn unmap(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// Serves `handler` on `listeners` until `shutdown` resolves, then shuts down gracefully.
pub(crate) async fn serve(
    listeners: Vec<Listener>,
    handler: Arc<dyn Handler>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let (tx, mut rx) = mpsc::channel::<(TcpStream, Option<TlsAcceptor>, OwnedSemaphorePermit)>(16);
    let mut accept_tasks = tokio::task::JoinSet::new();
    for listener in listeners {
        let tx = tx.clone();
        let limit = limit.clone();
        accept_tasks.spawn(async move {
            loop {
                let Ok(permit) = limit.clone().acquire_owned().await else { return };
                match listener.tcp.accept().await {
                    Ok((tcp, _)) => {
                        if tx.send((tcp, listener.tls.clone(), permit)).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        // Out of descriptors and the like: wait instead of spinning.
                        log_err(&format!("accept: {e}"));
                        drop(permit);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        });
    }
    drop(tx);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, tls, permit) = tokio::select! {
            _ = &mut shutdown => break,
            next = rx.recv() => match next {
                Some(c) => c,
                None => break,
            },
        };
        let watcher = graceful.watcher();
        let handler = handler.clone();
        tokio::spawn(async move {
            let _permit = permit;
            serve_connection(tcp, tls, handler, watcher).await;
        });
    }
    // Stop accepting: the listening sockets close with their tasks.
    accept_tasks.shutdown().await;
    // Connections accepted just before are served all the same.
    while let Ok((tcp, tls, permit)) = rx.try_recv() {
        let watcher = graceful.watcher();
        let handler = handler.clone();
        tokio::spawn(async move {
            let _permit = permit;
            serve_connection(tcp, tls, handler, watcher).await;
        });
    }
    drop(rx);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await.is_err() {
        log_err("requests still running after the shutdown grace period: exiting anyway");
    }
    Ok(())
}

async fn serve_connection(
    tcp: TcpStream,
    tls: Option<TlsAcceptor>,
    handler: Arc<dyn Handler>,
    watcher: hyper_util::server::graceful::Watcher,
) {
    let _ = tcp.set_nodelay(true);
    let (Ok(local), Ok(remote)) = (tcp.local_addr(), tcp.peer_addr()) else { return };
    let (local, remote) = (unmap(local), unmap(remote));
    match tls {
        None => {
            let conn = Arc::new(ConnInfo { local, remote, tls: None });
            run_http(TokioIo::new(tcp), conn, handler, watcher).await;
        }
        Some(acceptor) => {
            let stream = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                _ => return,
            };
            let info = tls_info(stream.get_ref().1);
            let conn = Arc::new(ConnInfo { local, remote, tls: Some(info) });
            run_http(TokioIo::new(stream), conn, handler, watcher).await;
        }
    }
}

async fn run_http<I>(
    io: I,
    conn: Arc<ConnInfo>,
    handler: Arc<dyn Handler>,
    watcher: hyper_util::server::graceful::Watcher,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let handler = handler.clone();
        let conn = conn.clone();
        async move {
            let (parts, body) = req.into_parts();
            // Read what the client sends before answering, so that closing the connection
            // afterwards does not reset it under the client's feet.
            let _ = Limited::new(body, MAX_BODY).collect().await;
            Ok::<_, Infallible>(handler.handle(Request { parts, conn }).await)
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(30));
    builder.http2().timer(TokioTimer::new());
    let connection = builder.serve_connection(io, service);
    let _ = watcher.watch(connection.into_owned()).await;
}

fn tls_info(conn: &rustls::ServerConnection) -> TlsInfo {
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
        Some(v) => format!("{v:?}"),
        None => String::new(),
    };
    let cipher_suite = conn
        .negotiated_cipher_suite()
        .map(|s| {
            let name = format!("{:?}", s.suite());
            // rustls names TLS 1.3 suites TLS13_…, Go (and the IANA registry) TLS_….
            match name.strip_prefix("TLS13_") {
                Some(rest) => format!("TLS_{rest}"),
                None => name,
            }
        })
        .unwrap_or_default();
    TlsInfo {
        version,
        server_name: conn.server_name().map(str::to_string),
        negotiated_protocol: conn.alpn_protocol().map(|p| String::from_utf8_lossy(p).into_owned()),
        cipher_suite,
    }
}

/// A TLS acceptor for a PEM certificate chain and key (HTTP/2 and HTTP/1.1 offered by ALPN).
pub(crate) fn tls_acceptor(cert_pem: &[u8], key_pem: &[u8]) -> Result<TlsAcceptor, Error> {
    let certs: Vec<_> = rustls_pemfile::certs(&mut &cert_pem[..])
        .collect::<Result<_, _>>()
        .map_err(|e| Error::Tls(format!("reading the certificate: {e}")))?;
    if certs.is_empty() {
        return Err(Error::Tls("no certificate in the certificate file".into()));
    }
    let key = rustls_pemfile::private_key(&mut &key_pem[..])
        .map_err(|e| Error::Tls(format!("reading the private key: {e}")))?
        .ok_or_else(|| Error::Tls("no private key in the key file".into()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| Error::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A response with a body and its content type (none when `content_type` is empty).
pub(crate) fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Reply {
    let mut b = Response::builder().status(status);
    if !content_type.is_empty() {
        b = b.header(http::header::CONTENT_TYPE, content_type);
    }
    b.body(Full::new(body.into())).expect("a valid response")
}

/// The container's hostname (the pod's name in Kubernetes).
pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "localhost".to_string())
}

/// A line on standard output (the container's log), ignoring a closed output.
pub(crate) fn log_out(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// A line on standard error (the container's log), ignoring a closed output.
pub(crate) fn log_err(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_specs_parse() {
        assert_eq!(ListenSpec::parse("8080").unwrap(), ListenSpec::Port(8080));
        assert_eq!(ListenSpec::parse(":80").unwrap(), ListenSpec::Port(80));
        assert_eq!(ListenSpec::parse("127.0.0.1:0").unwrap(), ListenSpec::Addr("127.0.0.1:0".parse().unwrap()));
        assert_eq!(ListenSpec::parse("[::1]:80").unwrap(), ListenSpec::Addr("[::1]:80".parse().unwrap()));
        assert!(ListenSpec::parse("nope").is_err());
        assert!(ListenSpec::parse("70000").is_err());
    }

    #[tokio::test]
    async fn a_port_binds_every_address() {
        let listeners = bind(ListenSpec::Port(0)).await.expect("binds");
        assert!(!listeners.is_empty());
        let port = listeners[0].local_addr().unwrap().port();
        assert!(listeners.iter().all(|l| l.local_addr().unwrap().port() == port));
        // Reachable over IPv4 loopback, through the dual-stack socket or the IPv4 one.
        let accept = async {
            for l in &listeners {
                if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(500), l.accept()).await {
                    return true;
                }
            }
            false
        };
        let (connected, accepted) = tokio::join!(TcpStream::connect(("127.0.0.1", port)), accept);
        connected.expect("connects over IPv4");
        assert!(accepted);
    }
}
