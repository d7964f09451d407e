//! The kubelet API of the node agent, which the API server proxies `pods/log`, `pods/exec`
//! and `pods/attach` to: HTTPS on [`PORT`] of the node's address, with a self-signed
//! certificate (kube-apiserver does not verify kubelets' serving certificates by default).
//!
//! - `GET /containerLogs/{namespace}/{pod}/{container}` — the container's output as plain text
//!   (`follow`, `tailLines`, `previous`, `timestamps`, `limitBytes`, `sinceSeconds`,
//!   `sinceTime`), read from the runtime's CRI log ([`logs`]);
//! - `/exec/{namespace}/{pod}/{container}?command=…` — a command in the pod's namespaces,
//!   over WebSocket ([`stream`]);
//! - `/attach/{namespace}/{pod}/{container}` — the container's output from the start of its
//!   current run until it exits, over WebSocket.
//!
//! Pods are found by namespace and name among the runtime's sandboxes. The endpoints do not
//! authenticate their clients: the node network is the boundary, as in podnet's labs.

pub mod logs;
pub mod query;
pub mod stream;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::{header, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use podnet_runtime::{ContainerStatus, Runtime, SandboxStatus};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

use self::logs::{Line, LineReader};
use self::query::{ContainerRef, LogOptions, Route, StreamOptions};
use self::stream::Protocol;

/// kubelet's port, published in the Node's `status.daemonEndpoints.kubeletEndpoint.Port`.
pub const PORT: u16 = 10250;

type Body = BoxBody<Bytes, Infallible>;

/// Why a request fails (answered as a metav1.Status).
#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Internal(String),
}

impl KubeletError {
    fn code(&self) -> u16 {
        match self {
            KubeletError::BadRequest(_) => 400,
            KubeletError::NotFound(_) => 404,
            KubeletError::Internal(_) => 500,
        }
    }

    /// The error as a metav1.Status.
    pub fn status(&self) -> serde_json::Value {
        let reason = match self {
            KubeletError::BadRequest(_) => "BadRequest",
            KubeletError::NotFound(_) => "NotFound",
            KubeletError::Internal(_) => "InternalError",
        };
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.to_string(), "reason": reason, "code": self.code()})
    }
}

impl From<podnet_runtime::Error> for KubeletError {
    fn from(e: podnet_runtime::Error) -> Self {
        KubeletError::Internal(e.to_string())
    }
}

/// The sandbox of pod `namespace/name`: the live one, else the newest.
pub fn find_sandbox<'a>(all: &'a [SandboxStatus], namespace: &str, name: &str) -> Option<&'a SandboxStatus> {
    all.iter().filter(|s| s.namespace == namespace && s.name == name).max_by_key(|s| (s.is_ready(), s.created_at))
}

/// The TLS configuration: a fresh self-signed certificate for the node's name and address; with
/// `client_ca`, only clients with a certificate it signed (the API server) are let in, as the
/// kubelet's `--client-ca-file`.
fn tls_config(names: Vec<String>, client_ca: Option<&[u8]>) -> anyhow::Result<rustls::ServerConfig> {
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let cert = rcgen::generate_simple_self_signed(names)?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder =
        rustls::ServerConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()?;
    let builder = match client_ca {
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in rustls_pemfile::certs(&mut &pem[..]) {
                roots.add(c?)?;
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build()?;
            builder.with_client_cert_verifier(verifier)
        }
        None => {
            tracing::warn!("no client CA: the kubelet API lets in any caller (give the agent --pod-ca-file)");
            builder.with_no_client_auth()
        }
    };
    let mut config = builder.with_single_cert(vec![cert.cert.der().clone()], key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Serves the kubelet API on `addr` until the task is dropped.
pub async fn serve(
    runtime: Arc<Runtime>,
    addr: SocketAddr,
    node_name: &str,
    client_ca: Option<&[u8]>,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let tls =
        tls_config(vec![node_name.to_string(), addr.ip().to_string()], client_ca).context("the kubelet certificate")?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
    tracing::info!(%addr, "kubelet API listening");
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "kubelet API: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let (acceptor, runtime) = (acceptor.clone(), runtime.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else { return };
            let service = hyper::service::service_fn(move |req| {
                let runtime = runtime.clone();
                async move { Ok::<_, Infallible>(handle(runtime, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), service);
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(%peer, error = %e, "kubelet API connection");
            }
        });
    }
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

fn error_response(e: &KubeletError) -> Response<Body> {
    Response::builder()
        .status(e.code())
        .header(header::CONTENT_TYPE, "application/json")
        .body(full(e.status().to_string()))
        .expect("valid response")
}

async fn handle(runtime: Arc<Runtime>, req: hyper::Request<Incoming>) -> Response<Body> {
    let route = match Route::parse(req.uri().path(), req.uri().query()) {
        Ok(r) => r,
        Err(e) => return error_response(&e),
    };
    tracing::debug!(?route, "kubelet API request");
    let result = match route {
        Route::Healthz => Ok(Response::new(full("ok"))),
        Route::Logs(c, opts) => container_logs(runtime, c, opts).await,
        Route::Exec(c, opts) => exec(runtime, req, c, opts).await,
        Route::Attach(c, opts) => attach(runtime, req, c, opts).await,
    };
    result.unwrap_or_else(|e| error_response(&e))
}

/// Runs blocking runtime calls off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, KubeletError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| KubeletError::Internal(e.to_string()))
}

/// The pod's sandbox id and the container's status.
async fn locate(runtime: &Arc<Runtime>, c: &ContainerRef) -> Result<(String, ContainerStatus), KubeletError> {
    let rt = runtime.clone();
    let all = blocking(move || rt.list_sandboxes()).await??;
    let sandbox = find_sandbox(&all, &c.namespace, &c.pod)
        .ok_or_else(|| KubeletError::NotFound(format!("pod \"{}\" not found on this node", c.pod)))?;
    let status = sandbox.containers.iter().find(|s| s.name == c.container).cloned().ok_or_else(|| {
        KubeletError::BadRequest(format!(
            "container \"{}\" in pod \"{}\" is waiting to start: ContainerCreating",
            c.container, c.pod
        ))
    })?;
    Ok((sandbox.id.clone(), status))
}

/// Reads the log of `status`'s run given by `window` on a blocking thread, sending its lines
/// to the returned receiver; with `follow`, until that run ends.
fn spawn_log_reader(
    runtime: Arc<Runtime>,
    uid: String,
    status: ContainerStatus,
    window: logs::Window,
    tail_lines: Option<usize>,
    follow: bool,
) -> mpsc::Receiver<Line> {
    let (tx, rx) = mpsc::channel(256);
    let run_start = logs::started_at(&status.state);
    tokio::task::spawn_blocking(move || {
        let mut same_run_running = || {
            follow
                && matches!(runtime.container_status(&uid, &status.name),
                    Ok(Some(s)) if s.state.is_running() && logs::started_at(&s.state) == run_start)
        };
        let reader = LineReader::new(window);
        let result = logs::stream_log(&status.log_path, reader, tail_lines, &mut same_run_running, &mut |l| {
            tx.blocking_send(l).is_ok()
        });
        if let Err(e) = result {
            tracing::warn!(error = %e, log = %status.log_path.display(), "reading a container log");
        }
    });
    rx
}

async fn container_logs(
    runtime: Arc<Runtime>,
    c: ContainerRef,
    opts: LogOptions,
) -> Result<Response<Body>, KubeletError> {
    let (uid, status) = locate(&runtime, &c).await?;
    let window = logs::window(&status, opts.previous).ok_or_else(|| {
        KubeletError::BadRequest(format!(
            "previous terminated container \"{}\" in pod \"{}\" not found",
            c.container, c.pod
        ))
    })?;
    let since = logs::since(&opts, SystemTime::now()).map_err(KubeletError::BadRequest)?;
    let follow = opts.follow && !opts.previous;
    let mut lines = spawn_log_reader(runtime, uid, status, window.since(since), opts.tail_lines, follow);
    let (timestamps, mut left) = (opts.timestamps, opts.limit_bytes.unwrap_or(usize::MAX));
    let body = futures::stream::poll_fn(move |cx| {
        if left == 0 {
            return std::task::Poll::Ready(None);
        }
        lines.poll_recv(cx).map(|line| {
            line.map(|l| {
                let mut bytes = l.render(timestamps);
                bytes.truncate(left);
                left -= bytes.len();
                Ok::<_, Infallible>(Frame::data(Bytes::from(bytes)))
            })
        })
    });
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(BodyExt::boxed(StreamBody::new(body)))
        .expect("valid response"))
}

/// Checks a WebSocket upgrade request and negotiates its protocol.
fn websocket_protocol(req: &hyper::Request<Incoming>) -> Result<(Protocol, String), KubeletError> {
    let h = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !h("upgrade").eq_ignore_ascii_case("websocket") {
        return Err(KubeletError::BadRequest(format!(
            "podnet's kubelet streams over WebSocket ({} or {}) only, not {:?}",
            Protocol::V5.name(),
            Protocol::V4.name(),
            h("upgrade")
        )));
    }
    let protocol = Protocol::negotiate(h("sec-websocket-protocol")).ok_or_else(|| {
        KubeletError::BadRequest(format!("no supported streaming protocol in {:?}", h("sec-websocket-protocol")))
    })?;
    let key = h("sec-websocket-key");
    if key.is_empty() {
        return Err(KubeletError::BadRequest("missing Sec-WebSocket-Key".into()));
    }
    Ok((protocol, tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes())))
}

/// Answers the upgrade with 101 and runs `session` on the WebSocket once hyper hands it over.
fn upgrade<F, Fut>(mut req: hyper::Request<Incoming>, session: F) -> Result<Response<Body>, KubeletError>
where
    F: FnOnce(WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let (protocol, accept) = websocket_protocol(&req)?;
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
                session(ws).await;
            }
            Err(e) => tracing::debug!(error = %e, "kubelet API: upgrade failed"),
        }
    });
    Ok(Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept)
        .header(header::SEC_WEBSOCKET_PROTOCOL, protocol.name())
        .body(full(Bytes::new()))
        .expect("valid response"))
}

async fn exec(
    runtime: Arc<Runtime>,
    req: hyper::Request<Incoming>,
    c: ContainerRef,
    opts: StreamOptions,
) -> Result<Response<Body>, KubeletError> {
    websocket_protocol(&req)?;
    let (uid, status) = locate(&runtime, &c).await?;
    if !status.state.is_running() {
        return Err(KubeletError::BadRequest(format!(
            "unable to upgrade connection: container not found (\"{}\")",
            c.container
        )));
    }
    let argv = opts.command.clone();
    let command = blocking(move || runtime.enter_command(&uid, &argv)).await??;
    upgrade(req, move |ws| stream::run_exec(ws, command, opts))
}

async fn attach(
    runtime: Arc<Runtime>,
    req: hyper::Request<Incoming>,
    c: ContainerRef,
    opts: StreamOptions,
) -> Result<Response<Body>, KubeletError> {
    websocket_protocol(&req)?;
    let (uid, status) = locate(&runtime, &c).await?;
    let window = logs::window(&status, false).expect("the current run has a window");
    upgrade(req, move |ws| {
        // From the start of the current run, so a short command's output is not lost.
        let lines = spawn_log_reader(runtime, uid, status, window, None, true);
        stream::run_attach(ws, lines, opts)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn sandbox(ns: &str, name: &str, id: &str, created: u64, live: bool) -> SandboxStatus {
        SandboxStatus {
            id: id.into(),
            namespace: ns.into(),
            name: name.into(),
            hostname: name.into(),
            netns: None,
            created_at: SystemTime::UNIX_EPOCH + Duration::from_secs(created),
            holder_pid: live.then_some(1),
            containers: vec![],
        }
    }

    #[test]
    fn finds_the_pods_sandbox() {
        let all = [
            sandbox("default", "web", "old", 1, false),
            sandbox("default", "web", "live", 2, true),
            sandbox("default", "web", "dead-newer", 3, false),
            sandbox("other", "web", "x", 4, true),
        ];
        assert_eq!(find_sandbox(&all, "default", "web").unwrap().id, "live");
        assert_eq!(find_sandbox(&all, "other", "web").unwrap().id, "x");
        assert!(find_sandbox(&all, "default", "db").is_none());
    }

    #[test]
    fn errors_are_statuses() {
        let s = KubeletError::BadRequest("container \"x\" is not valid".into()).status();
        assert_eq!((s["code"].as_u64(), s["reason"].as_str()), (Some(400), Some("BadRequest")));
        assert_eq!(KubeletError::NotFound("gone".into()).status()["code"], 404);
    }

    #[test]
    fn makes_a_certificate() {
        assert!(tls_config(vec!["node1".into(), "172.31.0.11".into()], None).is_ok());
        let ca = rcgen::generate_simple_self_signed(vec!["ca".into()]).unwrap();
        assert!(tls_config(vec!["node1".into()], Some(ca.cert.pem().as_bytes())).is_ok());
        // No certificate in the CA file: no roots, which the verifier refuses to build with.
        assert!(tls_config(vec!["node1".into()], Some(b"not a certificate")).is_err());
    }
}
