//! The HTTP listener of `health`, `ready` and `prometheus`: one per address, serving the paths
//! of the plugins configured there (`/health`, `/ready`, `/metrics`).

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::metrics::Metrics;
use super::ready::ReadinessRegistry;

/// What one address serves.
#[derive(Default)]
pub(crate) struct Routes {
    pub health: AtomicBool,
    pub ready: OnceLock<Arc<ReadinessRegistry>>,
    pub metrics: OnceLock<Arc<Metrics>>,
}

impl Routes {
    /// The status and body for `path`.
    pub fn respond(&self, path: &str) -> (StatusCode, String) {
        match path {
            "/health" if self.health.load(Ordering::Relaxed) => (StatusCode::OK, "OK".into()),
            "/ready" => match self.ready.get().map(|r| r.check()) {
                Some(Ok(())) => (StatusCode::OK, "OK".into()),
                Some(Err(todo)) => {
                    tracing::info!(target: "podnet_dns::ready", "Still waiting on: {:?}", todo.join(", "));
                    (StatusCode::SERVICE_UNAVAILABLE, todo.join(", "))
                }
                None => (StatusCode::NOT_FOUND, "404 page not found\n".into()),
            },
            "/metrics" => match self.metrics.get() {
                Some(m) => (StatusCode::OK, m.render()),
                None => (StatusCode::NOT_FOUND, "404 page not found\n".into()),
            },
            _ => (StatusCode::NOT_FOUND, "404 page not found\n".into()),
        }
    }
}

/// A running listener.
pub(crate) struct HttpServer {
    pub local: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl HttpServer {
    /// Binds `addr` and serves `routes` until stopped.
    pub async fn bind(addr: SocketAddr, routes: Arc<Routes>) -> io::Result<HttpServer> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stopped.changed() => return,
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let routes = routes.clone();
                        tokio::spawn(async move {
                            let service = service_fn(move |req: Request<Incoming>| {
                                let (status, body) = routes.respond(req.uri().path());
                                let mut resp = Response::new(Full::new(Bytes::from(body)));
                                *resp.status_mut() = status;
                                let ct = if req.uri().path() == "/metrics" {
                                    "text/plain; version=0.0.4; charset=utf-8"
                                } else {
                                    "text/plain; charset=utf-8"
                                };
                                resp.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(ct));
                                async move { Ok::<_, Infallible>(resp) }
                            });
                            let _ = http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        });
                    }
                }
            }
        });
        Ok(HttpServer { local, stop, task })
    }

    /// Stops accepting connections.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}
