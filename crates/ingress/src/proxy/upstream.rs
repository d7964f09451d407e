//! Connections to backends: hyper-util's pooling client over a connector that dials the
//! endpoint named in the request URI (`http://10.1.2.3:8080/...`, so the pool keeps idle
//! keep-alive connections per endpoint), with the route's connect timeout, and TLS without
//! certificate verification for `HTTPS`/`GRPCS` backends as ingress-nginx does by default
//! (`proxy_ssl_verify off`). One client per (protocol, connect timeout): HTTP/1.1 for `HTTP` and
//! `HTTPS`, HTTP/2 for `GRPC` (h2c) and `GRPCS`.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::body::UpstreamBody;
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

/// The clients, created on first use per (protocol, connect timeout).
pub struct Upstreams {
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
            clients: RwLock::default(),
            pool,
            tls: insecure_client_config(vec![b"http/1.1".to_vec()]),
            tls_h2: insecure_client_config(vec![b"h2".to_vec()]),
        }
    }

    /// The client for `protocol` with `connect_timeout` (a cheap clone sharing the pool).
    pub fn client(&self, protocol: BackendProtocol, connect_timeout: Duration) -> UpstreamClient {
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

/// A rustls client configuration that accepts any backend certificate (signatures are still
/// checked, so the session keys belong to whoever holds the certificate's key).
fn insecure_client_config(alpn: Vec<Vec<u8>>) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(AcceptAnyCertificate(provider.clone()));
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = alpn;
    Arc::new(config)
}

/// `proxy_ssl_verify off`.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
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
