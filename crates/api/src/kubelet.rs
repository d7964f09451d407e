//! The pods' `log`, `exec` and `attach` subresources, served as kube-apiserver serves them: by
//! the kubelet of the pod's node. The pod gives `spec.nodeName`, its Node the InternalIP and
//! `status.daemonEndpoints.kubeletEndpoint.Port`; the request goes there over HTTPS (kubelets'
//! serving certificates are not verified, kube-apiserver's default). Logs are streamed back as
//! they come; exec and attach are upgrade requests (WebSocket, `v5.channel.k8s.io`/
//! `v4.channel.k8s.io`) whose upgraded connection is relayed both ways, like kube-apiserver's
//! UpgradeAwareHandler.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::{header, HeaderName, Method, Request, Response};
use http_body_util::{BodyExt, BodyStream, Empty, Limited, StreamBody};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;

use crate::request::{percent_decode, Target};
use crate::resources::{by_kind, Subresource};
use crate::server::{error_response, Body};
use crate::status::{ApiError, ApiResult};
use crate::store::ObjectKey;
use crate::Api;

/// kubelet's port when a Node does not publish one.
const DEFAULT_KUBELET_PORT: u16 = 10250;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The query's pairs, decoded, in order (`command` repeats).
pub fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// Escapes a query component (everything but RFC 3986's unreserved characters).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn encode_query(pairs: &[(&str, String)]) -> String {
    pairs.iter().map(|(k, v)| format!("{k}={}", percent_encode(v))).collect::<Vec<_>>().join("&")
}

fn last<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
}

fn flag(pairs: &[(String, String)], key: &str) -> bool {
    matches!(last(pairs, key), Some("true" | "1"))
}

/// The kubelet path and query for a pod subresource request (`log`, `exec` or `attach`) on
/// `container`. Log options pass through; exec and attach options become kubelet's
/// (`command`…, `input`, `output`, `error`, `tty`), as kube-apiserver writes them.
pub fn kubelet_path(
    sub: Subresource,
    namespace: &str,
    pod: &str,
    container: &str,
    pairs: &[(String, String)],
) -> String {
    let (endpoint, mut query) = match sub {
        Subresource::Log => {
            let keys = ["follow", "previous", "timestamps", "sinceSeconds", "sinceTime", "tailLines", "limitBytes"];
            let query: Vec<(&str, String)> =
                keys.iter().filter_map(|k| last(pairs, k).map(|v| (*k, v.to_string()))).collect();
            ("containerLogs", query)
        }
        _ => {
            let endpoint = if sub == Subresource::Exec { "exec" } else { "attach" };
            let mut query: Vec<(&str, String)> = Vec::new();
            if sub == Subresource::Exec {
                query.extend(pairs.iter().filter(|(k, _)| k == "command").map(|(_, v)| ("command", v.clone())));
            }
            for (from, to) in [("stdin", "input"), ("stdout", "output"), ("stderr", "error"), ("tty", "tty")] {
                if flag(pairs, from) {
                    query.push((to, "1".into()));
                }
            }
            (endpoint, query)
        }
    };
    let path = [endpoint, namespace, pod, container].map(percent_encode).join("/");
    query.retain(|(_, v)| !v.is_empty());
    if query.is_empty() {
        format!("/{path}")
    } else {
        format!("/{path}?{}", encode_query(&query))
    }
}

/// Every container name of a pod (init, regular and ephemeral).
fn container_names(pod: &Value) -> Vec<&str> {
    ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|k| pod["spec"][k].as_array().into_iter().flatten())
        .filter_map(|c| c["name"].as_str())
        .collect()
}

/// The container a request addresses: the one named (which must be the pod's), or the pod's
/// only (regular) container.
pub fn pick_container(pod: &Value, requested: Option<&str>) -> ApiResult<String> {
    let name = pod["metadata"]["name"].as_str().unwrap_or("");
    match requested {
        Some(c) if container_names(pod).contains(&c) => Ok(c.to_string()),
        Some(c) => Err(ApiError::bad_request(format!("container {c} is not valid for pod {name}"))),
        None => {
            let regular: Vec<&str> =
                pod["spec"]["containers"].as_array().into_iter().flatten().filter_map(|c| c["name"].as_str()).collect();
            match regular.as_slice() {
                [only] => Ok(only.to_string()),
                _ => Err(ApiError::bad_request(format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    regular.join(" ")
                ))),
            }
        }
    }
}

/// Where a Node's kubelet listens: its InternalIP and published port.
pub fn kubelet_endpoint(node: &Value) -> ApiResult<SocketAddr> {
    let name = node["metadata"]["name"].as_str().unwrap_or("");
    let addresses = node["status"]["addresses"].as_array().into_iter().flatten();
    let ip: IpAddr = addresses
        .filter(|a| a["type"] == "InternalIP")
        .find_map(|a| a["address"].as_str()?.parse().ok())
        .ok_or_else(|| ApiError::bad_request(format!("node {name} has no InternalIP address")))?;
    let port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
        .unwrap_or(DEFAULT_KUBELET_PORT);
    Ok(SocketAddr::new(ip, port))
}

/// Refuses exec and attach on a pod that has finished, as kube-apiserver does.
fn check_running(sub: Subresource, pod: &Value) -> ApiResult<()> {
    let phase = pod["status"]["phase"].as_str().unwrap_or("");
    if matches!(phase, "Succeeded" | "Failed") && sub != Subresource::Log {
        let what = if sub == Subresource::Exec { "exec into" } else { "attach to" };
        return Err(ApiError::bad_request(format!(
            "cannot {what} a container in a completed pod; current phase is {phase}"
        )));
    }
    Ok(())
}

/// The kubelet address and path for a request.
fn resolve(api: &Api, t: &Target, sub: Subresource, pairs: &[(String, String)]) -> ApiResult<(SocketAddr, String)> {
    let name = t.name.as_deref().unwrap_or("");
    let pods = by_kind("", "Pod").expect("served");
    let pod = api
        .store
        .get(&ObjectKey { resource: pods, namespace: t.ns().to_string(), name: name.to_string() })
        .ok_or_else(|| ApiError::NotFound { group: String::new(), kind: "pods".into(), name: name.into() })?;
    let container = pick_container(&pod, last(pairs, "container"))?;
    check_running(sub, &pod)?;
    let node_name = pod["spec"]["nodeName"]
        .as_str()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::bad_request(format!("pod {name} does not have a host assigned")))?;
    let nodes = by_kind("", "Node").expect("served");
    let node = api
        .store
        .get(&ObjectKey { resource: nodes, namespace: String::new(), name: node_name.to_string() })
        .ok_or_else(|| ApiError::NotFound { group: String::new(), kind: "nodes".into(), name: node_name.into() })?;
    Ok((kubelet_endpoint(&node)?, kubelet_path(sub, t.ns(), name, &container, pairs)))
}

/// The client side of TLS to the kubelets: the server's certificate is not verified (as
/// kube-apiserver without `--kubelet-certificate-authority`), the admin certificate is presented so
/// that kubelets can tell the API server from anyone else on the node network.
pub fn client_tls(pki: &crate::pki::Pki) -> ApiResult<Arc<rustls::ClientConfig>> {
    let bad = |e: &dyn std::fmt::Display| ApiError::internal(format!("the admin credential: {e}"));
    let chain: Vec<CertificateDer<'static>> =
        rustls_pemfile::certs(&mut pki.admin_cert_pem.as_bytes()).collect::<Result<_, _>>().map_err(|e| bad(&e))?;
    let key = rustls_pemfile::private_key(&mut pki.admin_key_pem.as_bytes())
        .map_err(|e| bad(&e))?
        .ok_or_else(|| bad(&"no private key"))?;
    podnet_tls::unverified_client_config(vec![b"http/1.1".to_vec()], Some((chain, key))).map_err(|e| bad(&e))
}

type KubeletConn = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

/// An HTTP/1.1 connection to a kubelet, its driver spawned (with upgrades).
async fn connect(api: &Api, addr: SocketAddr) -> ApiResult<KubeletConn> {
    let dial_err = |e: &dyn std::fmt::Display| ApiError::internal(format!("error dialing backend: {e}"));
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| dial_err(&format!("dial tcp {addr}: i/o timeout")))?
        .map_err(|e| dial_err(&format!("dial tcp {addr}: {e}")))?;
    let _ = tcp.set_nodelay(true);
    let connector = tokio_rustls::TlsConnector::from(api.kubelet_tls.clone());
    let tls = connector.connect(ServerName::IpAddress(addr.ip().into()), tcp).await.map_err(|e| dial_err(&e))?;
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.map_err(|e| dial_err(&e))?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "kubelet connection");
        }
    });
    Ok(send)
}

/// Headers of an upgrade request that go on to the kubelet (and of its answer that come back).
const UPGRADE_HEADERS: &[HeaderName] = &[
    header::CONNECTION,
    header::UPGRADE,
    header::SEC_WEBSOCKET_KEY,
    header::SEC_WEBSOCKET_VERSION,
    header::SEC_WEBSOCKET_PROTOCOL,
    header::SEC_WEBSOCKET_ACCEPT,
];

/// A kubelet's answer that is not a stream: its status and body as they are.
async fn passthrough(resp: Response<Incoming>) -> Response<Body> {
    let (parts, body) = resp.into_parts();
    let bytes = Limited::new(body, 64 * 1024).collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let mut out = Response::builder().status(parts.status);
    if let Some(ct) = parts.headers.get(header::CONTENT_TYPE) {
        out = out.header(header::CONTENT_TYPE, ct);
    }
    out.body(http_body_util::Full::new(bytes).boxed()).expect("valid response")
}

/// Serves `pods/log`, `pods/exec` or `pods/attach`.
pub async fn serve(api: Arc<Api>, t: Target, sub: Subresource, req: Request<Incoming>) -> Response<Body> {
    let result = match sub {
        Subresource::Log => logs(&api, &t, req).await,
        _ => upgrade(&api, &t, sub, req).await,
    };
    result.unwrap_or_else(|e| error_response(&e))
}

fn kubelet_request(method: Method, addr: SocketAddr, path: &str) -> http::request::Builder {
    Request::builder().method(method).uri(path).header(header::HOST, addr.to_string())
}

async fn logs(api: &Api, t: &Target, req: Request<Incoming>) -> ApiResult<Response<Body>> {
    if req.method() != Method::GET {
        return Err(ApiError::MethodNotAllowed { message: format!("{} is not allowed on pods/log", req.method()) });
    }
    let (addr, path) = resolve(api, t, Subresource::Log, &query_pairs(req.uri().query()))?;
    let mut conn = connect(api, addr).await?;
    let request = kubelet_request(Method::GET, addr, &path).body(Empty::new()).map_err(ApiError::internal)?;
    let resp = conn.send_request(request).await.map_err(|e| ApiError::internal(format!("kubelet: {e}")))?;
    if !resp.status().is_success() {
        return Ok(passthrough(resp).await);
    }
    // Until the kubelet ends the body or fails (the client sees the end of the log).
    let frames = BodyStream::new(resp.into_body())
        .take_while(|r| std::future::ready(r.is_ok()))
        .filter_map(|r| std::future::ready(r.ok().map(Ok::<_, Infallible>)));
    Ok(Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "text/plain")
        .header(header::CACHE_CONTROL, "no-cache, private")
        .body(BodyExt::boxed(StreamBody::new(frames)))
        .expect("valid response"))
}

async fn upgrade(api: &Api, t: &Target, sub: Subresource, mut req: Request<Incoming>) -> ApiResult<Response<Body>> {
    if !matches!(*req.method(), Method::GET | Method::POST) {
        return Err(ApiError::MethodNotAllowed {
            message: format!("{} is not allowed on pods/{}", req.method(), sub.name()),
        });
    }
    let (addr, path) = resolve(api, t, sub, &query_pairs(req.uri().query()))?;
    if !req.headers().contains_key(header::UPGRADE) {
        return Err(ApiError::bad_request("Upgrade request required"));
    }
    let mut out = kubelet_request(req.method().clone(), addr, &path);
    for name in UPGRADE_HEADERS {
        for v in req.headers().get_all(name) {
            out = out.header(name, v);
        }
    }
    let request = out.body(Empty::new()).map_err(ApiError::internal)?;
    let mut conn = connect(api, addr).await?;
    let mut resp = conn.send_request(request).await.map_err(|e| ApiError::internal(format!("kubelet: {e}")))?;
    if resp.status() != http::StatusCode::SWITCHING_PROTOCOLS {
        return Ok(passthrough(resp).await);
    }
    let (client_side, kubelet_side) = (hyper::upgrade::on(&mut req), hyper::upgrade::on(&mut resp));
    tokio::spawn(async move {
        let (client, kubelet) = match (client_side.await, kubelet_side.await) {
            (Ok(c), Ok(k)) => (c, k),
            (c, k) => {
                tracing::debug!(client = ?c.err(), kubelet = ?k.err(), "upgrading a streaming request");
                return;
            }
        };
        let (mut client, mut kubelet) = (TokioIo::new(client), TokioIo::new(kubelet));
        if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut kubelet).await {
            tracing::debug!(error = %e, "relaying a streaming connection");
        }
    });
    let mut answer = Response::builder().status(http::StatusCode::SWITCHING_PROTOCOLS);
    for name in UPGRADE_HEADERS {
        for v in resp.headers().get_all(name) {
            answer = answer.header(name, v);
        }
    }
    Ok(answer.body(Empty::new().boxed()).expect("valid response"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pairs(q: &str) -> Vec<(String, String)> {
        query_pairs(Some(q))
    }

    #[test]
    fn builds_kubelet_paths() {
        let p = pairs("container=app&follow=true&tailLines=5&pretty=true");
        assert_eq!(
            kubelet_path(Subresource::Log, "default", "web", "app", &p),
            "/containerLogs/default/web/app?follow=true&tailLines=5"
        );
        assert_eq!(kubelet_path(Subresource::Log, "ns", "p", "c", &[]), "/containerLogs/ns/p/c");
        let p = pairs("command=sh&command=-c&command=exit%203&container=c&stdin=true&stdout=true&stderr=true");
        assert_eq!(
            kubelet_path(Subresource::Exec, "ns", "p", "c", &p),
            "/exec/ns/p/c?command=sh&command=-c&command=exit%203&input=1&output=1&error=1"
        );
        let p = pairs("container=c&stdout=true&tty=true&command=ignored");
        assert_eq!(kubelet_path(Subresource::Attach, "ns", "p", "c", &p), "/attach/ns/p/c?output=1&tty=1");
        assert_eq!(percent_encode("a b/é"), "a%20b%2F%C3%A9");
    }

    #[test]
    fn picks_containers() {
        let pod = json!({"metadata": {"name": "web"}, "spec": {"containers": [{"name": "app"}],
            "initContainers": [{"name": "init"}]}});
        assert_eq!(pick_container(&pod, None).unwrap(), "app");
        assert_eq!(pick_container(&pod, Some("init")).unwrap(), "init");
        let e = pick_container(&pod, Some("x")).unwrap_err();
        assert_eq!((e.code(), e.to_string()), (400, "container x is not valid for pod web".to_string()));
        let two = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        assert!(pick_container(&two, None).unwrap_err().to_string().contains("choose one of: [a b]"));
    }

    #[test]
    fn finds_kubelets_and_refuses_finished_pods() {
        let node = json!({"metadata": {"name": "n"}, "status": {
            "addresses": [{"type": "Hostname", "address": "n"}, {"type": "InternalIP", "address": "172.31.0.11"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}});
        assert_eq!(kubelet_endpoint(&node).unwrap(), "172.31.0.11:10250".parse().unwrap());
        let bare = json!({"metadata": {"name": "n"}, "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}});
        assert_eq!(kubelet_endpoint(&bare).unwrap().port(), DEFAULT_KUBELET_PORT);
        assert!(kubelet_endpoint(&json!({"metadata": {"name": "n"}})).is_err());
        let done = json!({"status": {"phase": "Succeeded"}});
        assert!(check_running(Subresource::Exec, &done).unwrap_err().to_string().contains("completed pod"));
        assert!(check_running(Subresource::Log, &done).is_ok());
        assert!(check_running(Subresource::Attach, &json!({"status": {"phase": "Running"}})).is_ok());
    }
}
