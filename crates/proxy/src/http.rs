//! The proxy's small HTTP endpoints — /metrics (:10249), /healthz (:10256) and the health-check
//! node ports of externalTrafficPolicy Local services — as one tiny HTTP/1.1 server: each
//! request is answered by a function of its path.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// An answer: status, content type, body.
pub type Answer = (u16, &'static str, String);

/// Serves `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, answer: Arc<dyn Fn(&str) -> Answer + Send + Sync>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let answer = answer.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                let (status, ctype, body) = answer(req.uri().path());
                async move {
                    Ok::<_, Infallible>(
                        Response::builder()
                            .status(status)
                            .header("content-type", ctype)
                            .header("x-content-type-options", "nosniff")
                            .body(Full::new(Bytes::from(body)))
                            .expect("a response"),
                    )
                }
            });
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}

/// Binds `addr` (reusing the address, so a restarted proxy gets its ports back at once).
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(128)
}
