//! The ingress controller's control loop (what `podnet ingress` runs): reflectors over
//! Ingresses, IngressClasses, Services, EndpointSlices and Secrets feed a level-based rebuild —
//! every change (coalesced for [`Config::coalesce`]) builds a new [`RouteTable`] from the stores
//! and swaps it in whole, which the data plane picks up on its next request or handshake: no
//! reload, no dropped connection. After each swap the Ingresses it serves get their
//! `status.loadBalancer.ingress` (the addresses of the `--publish-service`), and problems found
//! while building become Warning events on the Ingress. Beside the data plane: /healthz (200
//! once the first table is in place) and /metrics on the status port (:10254, as ingress-nginx).

use std::collections::HashSet;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use futures::StreamExt;
use http_body_util::Full;
use hyper::body::Bytes;
use k8s_openapi::api::core::v1::{ObjectReference, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass, IngressLoadBalancerIngress};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use serde_json::json;
use tokio::sync::Notify;

use crate::metrics::Metrics;
use crate::proxy::{self, ProxyConfig};
use crate::table::{self, ClassPolicy, Cluster, RouteTable};
use crate::tls::{self, Certificate, SniResolver};

/// The controller's component name in events.
const COMPONENT: &str = "podnet-ingress-controller";

/// Why the controller stopped.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("a watch ended before its first list: {0}")]
    Watch(#[from] reflector::store::WriterDropped),
    #[error("cannot serve the status port {addr}: {source}")]
    StatusPort { addr: SocketAddr, source: std::io::Error },
    #[error("the default certificate: {0}")]
    Tls(#[from] tls::TlsError),
}

/// The controller's settings (`podnet ingress`'s flags).
#[derive(Debug, Clone)]
pub struct Config {
    pub policy: ClassPolicy,
    /// `namespace/name` of the Service whose load-balancer addresses the Ingresses' status
    /// shows (ingress-nginx's `--publish-service`).
    pub publish_service: Option<(String, String)>,
    pub proxy: ProxyConfig,
    /// /healthz and /metrics.
    pub status_addr: Option<SocketAddr>,
    /// How long to wait for more changes before rebuilding.
    pub coalesce: Duration,
}

/// The stores the table is built from.
struct Stores {
    ingresses: Store<Ingress>,
    classes: Store<IngressClass>,
    services: Store<Service>,
    slices: Store<EndpointSlice>,
    secrets: Store<Secret>,
}

impl Stores {
    fn snapshot(&self) -> Cluster {
        Cluster {
            ingresses: self.ingresses.state(),
            classes: self.classes.state(),
            services: self.services.state(),
            slices: self.slices.state(),
            secrets: self.secrets.state(),
        }
    }

    async fn wait_until_ready(&self) -> Result<(), ControllerError> {
        self.ingresses.wait_until_ready().await?;
        self.classes.wait_until_ready().await?;
        self.services.wait_until_ready().await?;
        self.slices.wait_until_ready().await?;
        self.secrets.wait_until_ready().await?;
        Ok(())
    }
}

/// Starts one reflector for `K` that feeds `store` and wakes `dirty` on every change.
fn reflect<K>(client: &kube::Client, dirty: &Arc<Notify>) -> Store<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let (store, writer) = reflector::store::<K>();
    let api: Api<K> = Api::all(client.clone());
    let dirty = dirty.clone();
    let mut stream = reflector::reflector(writer, watcher(api, watcher::Config::default()))
        .default_backoff()
        .touched_objects()
        .boxed();
    tokio::spawn(async move {
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(_) => dirty.notify_one(),
                Err(e) => tracing::warn!(kind = K::kind(&()).as_ref(), error = %e, "watch"),
            }
        }
    });
    store
}

/// Runs the controller and its data plane until `shutdown` resolves.
pub async fn run(
    client: kube::Client,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ControllerError> {
    let dirty = Arc::new(Notify::new());
    let stores = Stores {
        ingresses: reflect(&client, &dirty),
        classes: reflect(&client, &dirty),
        services: reflect(&client, &dirty),
        slices: reflect(&client, &dirty),
        secrets: reflect(&client, &dirty),
    };
    let table = Arc::new(ArcSwap::from_pointee(RouteTable::default()));
    let default_cert = Certificate::self_signed_default()?;
    let tls_config = tls::server_config(Arc::new(SniResolver::new(table.clone(), &default_cert)));
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health::default());
    if let Some(addr) = config.status_addr {
        let listener =
            tokio::net::TcpListener::bind(addr).await.map_err(|source| ControllerError::StatusPort { addr, source })?;
        tokio::spawn(serve_status(listener, health.clone(), metrics.clone()));
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut stopped = stop_rx.clone();
    let data_plane =
        tokio::spawn(proxy::serve(config.proxy.clone(), table.clone(), tls_config, metrics.clone(), async move {
            let _ = stopped.wait_for(|s| *s).await;
        }));
    let control = control_loop(client, &config, &stores, &table, &dirty, &health);
    let result = tokio::select! {
        _ = shutdown => Ok(()),
        r = control => r,
    };
    // Graceful: stop accepting, let requests in flight finish.
    let _ = stop_tx.send(true);
    drop(stop_rx);
    match tokio::time::timeout(Duration::from_secs(10), data_plane).await {
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "data plane"),
        Ok(Err(e)) => tracing::warn!(error = %e, "data plane task"),
        _ => {}
    }
    result
}

async fn control_loop(
    client: kube::Client,
    config: &Config,
    stores: &Stores,
    table: &ArcSwap<RouteTable>,
    dirty: &Notify,
    health: &Health,
) -> Result<(), ControllerError> {
    stores.wait_until_ready().await?;
    let recorder = podnet_controllers::events::Recorder::new(client.clone());
    let mut reported: HashSet<(table::IngressRef, String)> = HashSet::new();
    loop {
        let started = Instant::now();
        let cluster = stores.snapshot();
        let built = table::build(&cluster, &config.policy);
        let problems = built.problems.clone();
        let served = built.served.clone();
        table.store(Arc::new(built));
        health.synced(started.elapsed());
        tracing::debug!(served = served.len(), problems = problems.len(), took = ?started.elapsed(), "table swapped");

        // Events for problems not reported yet (a fixed Ingress can report again later).
        let now: HashSet<_> = problems.iter().map(|p| (p.ingress.clone(), p.message.clone())).collect();
        for p in &problems {
            if reported.contains(&(p.ingress.clone(), p.message.clone())) {
                continue;
            }
            tracing::warn!(ingress = %p.ingress, "{}", p.message);
            let reason = if p.rejected { "Rejected" } else { "Ignored" };
            recorder
                .record(
                    &reference(&cluster, &p.ingress),
                    COMPONENT,
                    podnet_controllers::events::EventType::Warning,
                    reason,
                    &p.message,
                )
                .await;
        }
        reported = now;

        publish_status(&client, config, &cluster, &served).await;

        dirty.notified().await;
        tokio::time::sleep(config.coalesce).await;
    }
}

/// The object reference of an Ingress, for events.
fn reference(cluster: &Cluster, id: &table::IngressRef) -> ObjectReference {
    let uid = cluster
        .ingresses
        .iter()
        .find(|i| {
            i.metadata.namespace.as_deref() == Some(&id.namespace) && i.metadata.name.as_deref() == Some(&id.name)
        })
        .and_then(|i| i.metadata.uid.clone());
    ObjectReference {
        api_version: Some("networking.k8s.io/v1".into()),
        kind: Some("Ingress".into()),
        namespace: Some(id.namespace.clone()),
        name: Some(id.name.clone()),
        uid,
        ..Default::default()
    }
}

/// The load-balancer addresses of the publish Service (its LoadBalancer ingress, else none).
fn published_addresses(cluster: &Cluster, config: &Config) -> Vec<IngressLoadBalancerIngress> {
    let Some((ns, name)) = &config.publish_service else { return Vec::new() };
    let Some(svc) = cluster
        .services
        .iter()
        .find(|s| s.metadata.namespace.as_deref() == Some(ns) && s.metadata.name.as_deref() == Some(name))
    else {
        return Vec::new();
    };
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .map(|i| IngressLoadBalancerIngress { ip: i.ip.clone(), hostname: i.hostname.clone(), ..Default::default() })
        .collect()
}

/// Sets `status.loadBalancer.ingress` of the served Ingresses that do not show it yet.
async fn publish_status(client: &kube::Client, config: &Config, cluster: &Cluster, served: &[table::IngressRef]) {
    if config.publish_service.is_none() {
        return;
    }
    let want = published_addresses(cluster, config);
    for id in served {
        let Some(ing) = cluster.ingresses.iter().find(|i| {
            i.metadata.namespace.as_deref() == Some(&id.namespace) && i.metadata.name.as_deref() == Some(&id.name)
        }) else {
            continue;
        };
        let have = ing
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.clone())
            .unwrap_or_default();
        if have == want {
            continue;
        }
        let api: Api<Ingress> = Api::namespaced(client.clone(), &id.namespace);
        let patch = json!({"status": {"loadBalancer": {"ingress": want}}});
        if let Err(e) = api.patch_status(&id.name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            tracing::warn!(ingress = %id, error = %e, "cannot update the status");
        }
    }
}

/// What /healthz reports.
#[derive(Default)]
struct Health {
    synced: AtomicBool,
    syncs: AtomicU64,
    last_build_micros: AtomicU64,
}

impl Health {
    fn synced(&self, took: Duration) {
        self.synced.store(true, Ordering::Release);
        self.syncs.fetch_add(1, Ordering::Relaxed);
        self.last_build_micros.store(took.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self) -> String {
        format!(
            "# HELP podnet_ingress_table_builds_total Routing tables built and swapped in.\n\
             # TYPE podnet_ingress_table_builds_total counter\n\
             podnet_ingress_table_builds_total {}\n\
             # HELP podnet_ingress_table_build_seconds How long the last table took to build.\n\
             # TYPE podnet_ingress_table_build_seconds gauge\n\
             podnet_ingress_table_build_seconds {}\n",
            self.syncs.load(Ordering::Relaxed),
            self.last_build_micros.load(Ordering::Relaxed) as f64 / 1e6
        )
    }
}

/// The status port: /healthz and /metrics.
async fn serve_status(listener: tokio::net::TcpListener, health: Arc<Health>, metrics: Arc<Metrics>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let (health, metrics) = (health.clone(), metrics.clone());
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let (status, body) = match req.uri().path() {
                    "/healthz" if health.synced.load(Ordering::Acquire) => (200, "ok".to_string()),
                    "/healthz" => (503, "the first routing table is not built yet".to_string()),
                    "/metrics" => (200, metrics.render() + &health.render()),
                    _ => (404, "404 page not found\n".to_string()),
                };
                let resp = hyper::Response::builder()
                    .status(status)
                    .header("content-type", "text/plain; version=0.0.4")
                    .body(Full::new(Bytes::from(body)));
                async move { Ok::<_, Infallible>(resp.expect("a response")) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await;
        });
    }
}
