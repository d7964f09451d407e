//! The HTTPS front: a TLS accept loop (rustls; HTTP/2 and HTTP/1.1 by ALPN) with bounded
//! concurrency and graceful shutdown, authentication of every request (client certificate
//! signed by the cluster CA, or a bearer token), and the dispatch of requests to the verbs.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::{header, Method, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::handlers::{Reply, ReplyBody};
use crate::request::{Query, Representation, Route};
use crate::status::{ApiError, ApiResult};
use crate::{discovery, openapi, Api};

/// Bodies larger than this are refused with 413, as kube-apiserver refuses bodies over 3 MiB.
const MAX_BODY: usize = 3 * 1024 * 1024;
/// Connections served at once; more wait in the accept queue.
const MAX_CONNECTIONS: usize = 4096;

pub type Body = BoxBody<Bytes, Infallible>;

/// Who sent a request.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
}

/// Builds the TLS configuration: our serving certificate, and client certificates verified
/// against the cluster CA but not required (token clients send none).
pub fn tls_config(pki: &crate::pki::Pki) -> anyhow::Result<rustls::ServerConfig> {
    use anyhow::Context;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pki.ca_cert_pem.as_bytes()) {
        roots.add(cert.context("reading the CA certificate")?).context("adding the CA certificate")?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .context("building the client certificate verifier")?;
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut pki.server_cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .context("reading the serving certificate")?;
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut pki.server_key_pem.as_bytes())
        .context("reading the serving key")?
        .context("no private key in the serving key file")?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("choosing TLS versions")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .context("loading the serving certificate")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The user a verified client certificate names: CN is the user, O the groups.
fn user_from_cert(cert: &CertificateDer<'_>) -> Option<User> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let subject = parsed.subject();
    let name = subject.iter_common_name().next()?.as_str().ok()?.to_string();
    let groups = subject.iter_organization().filter_map(|o| o.as_str().ok().map(str::to_string)).collect();
    Some(User { name, groups })
}

/// Accepts connections until `shutdown` resolves, then lets open requests finish for a moment.
pub async fn serve(
    api: Arc<Api>,
    listener: TcpListener,
    tls: rustls::ServerConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = limit.clone().acquire_owned() => p.expect("semaphore is never closed"),
        };
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let api = api.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let user = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).and_then(user_from_cert);
            let service = hyper::service::service_fn(move |req| {
                let api = api.clone();
                let user = user.clone();
                async move { Ok::<_, Infallible>(handle(api, user, req).await) }
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    // Watches end now (their clients see the stream end and retry elsewhere); plain requests get
    // a moment to finish.
    api.end_watches();
    let _ = tokio::time::timeout(Duration::from_secs(2), graceful.shutdown()).await;
    Ok(())
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

fn json_response(code: u16, body: Vec<u8>, warnings: &[String]) -> Response<Body> {
    let mut b = Response::builder().status(code).header(header::CONTENT_TYPE, "application/json");
    for w in warnings {
        b = b.header("Warning", format!("299 - {:?}", w));
    }
    b.body(full(body)).expect("valid response")
}

pub(crate) fn error_response(e: &ApiError) -> Response<Body> {
    json_response(e.code(), e.to_status().to_string().into_bytes(), &[])
}

/// Authenticates, reads the body and dispatches one request.
async fn handle(api: Arc<Api>, cert_user: Option<User>, req: hyper::Request<Incoming>) -> Response<Body> {
    let user = cert_user.or_else(|| {
        let auth = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
        let token = auth.strip_prefix("Bearer ")?.trim();
        api.tokens.get(token).map(|name| User { name: name.clone(), groups: vec!["system:authenticated".into()] })
    });
    let Some(user) = user else {
        return error_response(&ApiError::Unauthorized);
    };
    // pods/log, exec and attach: served by the pod's kubelet, streamed (and upgraded) as they go.
    if let Ok(Route::Resource(t)) = Route::parse(req.uri().path()) {
        if let Some(sub) = t.subresource.filter(|s| s.is_proxied()) {
            tracing::debug!(user = %user.name, method = %req.method(), path = req.uri().path(), "proxied to a kubelet");
            return crate::kubelet::serve(api, t, sub, req).await;
        }
    }
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                return error_response(&ApiError::TooLarge { message: format!("limit is {MAX_BODY} bytes") });
            }
            return error_response(&ApiError::bad_request(format!("reading the request body: {e}")));
        }
    };
    let started = std::time::Instant::now();
    let header = |name: header::HeaderName| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let query = Query::parse(parts.uri.query());
    let repr = Representation::from_accept(header(header::ACCEPT));
    let content_type = header(header::CONTENT_TYPE);
    let run = || {
        let req = ApiRequest {
            method: &parts.method,
            path: parts.uri.path(),
            query: &query,
            repr,
            accept: header(header::ACCEPT),
            body: &body,
            content_type,
        };
        dispatch(&api, req)
    };
    // Writes wait for the store lock and SQLite: let the runtime move other tasks off this
    // worker meanwhile. Reads only touch memory.
    let dispatched = if parts.method == Method::GET { run() } else { tokio::task::block_in_place(run) };
    let response = match dispatched {
        Ok(Dispatched::Reply(r)) => {
            let bytes = match r.body {
                ReplyBody::Json(v) => serde_json::to_vec(&v).expect("JSON values serialize"),
                ReplyBody::Bytes(b) => b,
                ReplyBody::Typed { bytes, content_type } => {
                    return Response::builder()
                        .status(r.code)
                        .header(header::CONTENT_TYPE, content_type)
                        .body(full(bytes))
                        .expect("valid response")
                }
            };
            json_response(r.code, bytes, &r.warnings)
        }
        Ok(Dispatched::Stream(rx)) => {
            let stream = tokio_stream_from(rx).map(|b| Ok::<_, Infallible>(Frame::data(b)));
            Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::CACHE_CONTROL, "no-cache, private")
                .body(BodyExt::boxed(StreamBody::new(stream)))
                .expect("valid response")
        }
        Err(e) => error_response(&e),
    };
    tracing::debug!(user = %user.name, method = %parts.method, path = parts.uri.path(), status = response.status().as_u16(), elapsed_us = started.elapsed().as_micros() as u64, "request");
    response
}

fn tokio_stream_from(mut rx: tokio::sync::mpsc::Receiver<Bytes>) -> impl futures::Stream<Item = Bytes> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

enum Dispatched {
    Reply(Reply),
    Stream(tokio::sync::mpsc::Receiver<Bytes>),
}

fn ok(v: serde_json::Value) -> ApiResult<Dispatched> {
    Ok(Dispatched::Reply(Reply { code: 200, body: ReplyBody::Json(v), warnings: vec![] }))
}

/// What `dispatch` needs of a request.
struct ApiRequest<'a> {
    method: &'a Method,
    path: &'a str,
    query: &'a Query,
    repr: Representation,
    accept: Option<&'a str>,
    body: &'a [u8],
    content_type: Option<&'a str>,
}

fn dispatch(api: &Arc<Api>, req: ApiRequest<'_>) -> ApiResult<Dispatched> {
    let ApiRequest { method, path, query: q, repr, accept, body, content_type } = req;
    let route = Route::parse(path)?;
    let read_only = |r: ApiResult<serde_json::Value>| {
        if method != Method::GET {
            return Err(ApiError::MethodNotAllowed { message: format!("{method} is not allowed on {path}") });
        }
        r.and_then(ok)
    };
    let t = match route {
        Route::Version => return read_only(Ok(discovery::version())),
        Route::Health => {
            let body = ReplyBody::Typed { bytes: b"ok".to_vec(), content_type: "text/plain; charset=utf-8" };
            return Ok(Dispatched::Reply(Reply { code: 200, body, warnings: vec![] }));
        }
        Route::CoreVersions => return read_only(Ok(discovery::core_versions(&api.advertise))),
        Route::Groups => return read_only(Ok(discovery::groups())),
        Route::Group(g) => return read_only(discovery::group(&g)),
        Route::ResourceList { group, version } => return read_only(discovery::resource_list(&group, &version)),
        Route::OpenApiV2 => {
            // JSON, or gnostic's protobuf form for clients that prefer it (kubectl asks for nothing else).
            let accept = accept.unwrap_or("*/*");
            if openapi::wants_v2_protobuf(accept) {
                if method != Method::GET {
                    return Err(ApiError::MethodNotAllowed { message: format!("{method} is not allowed on {path}") });
                }
                let body = ReplyBody::Typed {
                    bytes: openapi::v2_protobuf().to_vec(),
                    content_type: openapi::V2_PROTOBUF_MIME,
                };
                return Ok(Dispatched::Reply(Reply { code: 200, body, warnings: vec![] }));
            }
            if !(accept.contains("json") || accept.contains("*/*")) {
                return Err(ApiError::NotAcceptable {
                    message: format!(
                        "only the following media types are accepted: application/json, {}",
                        openapi::V2_PROTOBUF_MIME
                    ),
                });
            }
            return read_only(Ok(openapi::v2().clone()));
        }
        Route::OpenApiV3Root => return read_only(Ok(openapi::root())),
        Route::OpenApiV3 { group, version } => return read_only(openapi::document(&group, &version)),
        Route::Resource(t) => t,
    };
    let reply = match (method.clone(), t.name.is_some()) {
        (Method::GET, false) if q.flag("watch") => return Ok(Dispatched::Stream(api.watch(&t, q, repr)?)),
        (Method::GET, false) => api.list(&t, q, repr)?,
        (Method::GET, true) if q.flag("watch") => {
            // A watch of one object: the collection filtered by name.
            let mut q2 = Query(q.0.clone());
            let name = t.name.clone().unwrap_or_default();
            let sel = match q.get("fieldSelector") {
                Some(s) => format!("{s},metadata.name={name}"),
                None => format!("metadata.name={name}"),
            };
            q2.0.insert("fieldSelector".into(), sel);
            let coll = crate::request::Target { name: None, subresource: None, ..t.clone() };
            return Ok(Dispatched::Stream(api.watch(&coll, &q2, repr)?));
        }
        (Method::GET, true) => api.get(&t, q, repr)?,
        (Method::POST, _) => api.create(&t, body, content_type, q)?,
        (Method::PUT, true) => api.update(&t, body, content_type, q)?,
        (Method::PATCH, true) => api.patch(&t, body, content_type, q)?,
        (Method::DELETE, true) => api.delete(&t, body, content_type, q)?,
        (Method::DELETE, false) => api.delete_collection(&t, body, content_type, q)?,
        _ => return Err(ApiError::MethodNotAllowed { message: format!("{method} is not allowed on {path}") }),
    };
    Ok(Dispatched::Reply(reply))
}

/// The address clients should use to reach a listener bound to `addr`.
pub fn client_address(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::new("127.0.0.1".parse().expect("valid"), addr.port())
    } else {
        addr
    }
}
