//! The proxy's control loop: reflectors over Services, EndpointSlices and the proxy's own Node
//! feed a level-based sync — every change brings the model up to date
//! ([`crate::incremental::IncrementalModel`]: only the Services whose objects changed are built
//! again), the service ports that differ are handed to the mode as a partial sync, and
//! every [`Config::full_resync`] (or after a failure) the mode gets a full one. Syncs run on a
//! blocking thread, one at a time; changes arriving meanwhile are coalesced into the next.
//! Around it: /healthz (:10256), /metrics (:10249) and the health-check node ports of
//! externalTrafficPolicy Local services, as kube-proxy serves them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use tokio::sync::Notify;

use crate::http::{self, Answer};
use crate::incremental::IncrementalModel;
use crate::metrics::Metrics;
use crate::model::{ServicePort, ServicePortName};
use crate::{Mode, NodeContext};

/// The proxy's settings (`podnet proxy`'s flags).
#[derive(Debug, Clone)]
pub struct Config {
    pub node_name: String,
    /// Used until the Node object lists its addresses.
    pub node_addresses: Vec<IpAddr>,
    pub cluster_cidrs: Vec<ipnet::IpNet>,
    pub metrics_addr: Option<SocketAddr>,
    pub healthz_addr: Option<SocketAddr>,
    /// How often a full sync runs even without changes (kube-proxy's --sync-period).
    pub full_resync: Duration,
    /// How long to wait for more changes before syncing (coalescing bursts).
    pub coalesce: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            node_name: String::new(),
            node_addresses: Vec::new(),
            cluster_cidrs: Vec::new(),
            metrics_addr: Some(([0, 0, 0, 0], 10249).into()),
            healthz_addr: Some(([0, 0, 0, 0], 10256).into()),
            full_resync: Duration::from_secs(30),
            coalesce: Duration::from_millis(2),
        }
    }
}

fn node_addresses(node: &Node) -> Vec<IpAddr> {
    node.status
        .as_ref()
        .and_then(|s| s.addresses.as_ref())
        .into_iter()
        .flatten()
        .filter(|a| a.type_ == "InternalIP" || a.type_ == "ExternalIP")
        .filter_map(|a| a.address.parse().ok())
        .collect()
}

/// The newest `endpoints.kubernetes.io/last-change-trigger-time` among the slices.
fn trigger_times(slices: &[Arc<EndpointSlice>]) -> BTreeMap<String, SystemTime> {
    let mut out = BTreeMap::new();
    for s in slices {
        let Some(t) =
            s.metadata.annotations.as_ref().and_then(|a| a.get("endpoints.kubernetes.io/last-change-trigger-time"))
        else {
            continue;
        };
        let Ok(t) = chrono::DateTime::parse_from_rfc3339(t) else { continue };
        let key =
            format!("{}/{}", s.metadata.namespace.as_deref().unwrap_or(""), s.metadata.name.as_deref().unwrap_or(""));
        out.insert(key, SystemTime::from(t));
    }
    out
}

/// What a health-check node port reports: the Service's namespace and name, its local endpoints.
type HealthState = Arc<Mutex<(String, String, usize)>>;

/// Health-check node ports: one listener per port, answering with the local endpoint count.
#[derive(Default)]
struct HealthChecks {
    listeners: HashMap<u16, (tokio::task::JoinHandle<()>, HealthState)>,
}

impl HealthChecks {
    fn update(&mut self, ports: &[ServicePort]) {
        let mut want: HashMap<u16, (String, String, usize)> = HashMap::new();
        for p in ports {
            if let Some(hc) = p.health_check_node_port {
                let e = want.entry(hc).or_insert((p.id.namespace.clone(), p.id.name.clone(), 0));
                e.2 = e.2.max(p.local_ready_count());
            }
        }
        self.listeners.retain(|port, (task, _)| {
            let keep = want.contains_key(port);
            if !keep {
                task.abort();
            }
            keep
        });
        for (port, info) in want {
            if let Some((_, state)) = self.listeners.get(&port) {
                *state.lock().expect("health") = info;
                continue;
            }
            let state = Arc::new(Mutex::new(info));
            let listener = match http::bind(([0, 0, 0, 0], port).into()) {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(port, error = %e, "cannot serve a health-check node port");
                    continue;
                }
            };
            let s = state.clone();
            let answer: Arc<dyn Fn(&str) -> Answer + Send + Sync> = Arc::new(move |_path: &str| {
                let (ns, name, n) = s.lock().expect("health").clone();
                let body = serde_json::json!({"service": {"namespace": ns, "name": name}, "localEndpoints": n,
                    "serviceProxyHealthy": true})
                .to_string();
                (if n > 0 { 200 } else { 503 }, "application/json", body)
            });
            self.listeners.insert(port, (tokio::spawn(http::serve(listener, answer)), state));
        }
    }
}

/// Runs the proxy with `mode` until `shutdown` resolves. Rules stay in place when it stops (so
/// established and new connections keep working while a new proxy starts).
pub async fn run(
    client: kube::Client,
    config: Config,
    mode: Box<dyn Mode>,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::default());
    let mode_name = mode.name();
    let dirty = Arc::new(Notify::new());

    let (services, w1) = reflector::store::<Service>();
    let (slices, w2) = reflector::store::<EndpointSlice>();
    let (nodes, w3) = reflector::store::<Node>();
    let feed = |stream: futures::stream::BoxStream<'static, Result<(), watcher::Error>>, what: &'static str| {
        let dirty = dirty.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut stream = stream;
            while let Some(ev) = stream.next().await {
                if let Err(e) = ev {
                    tracing::warn!(error = %e, "{what} watch");
                    continue;
                }
                metrics.queued();
                dirty.notify_one();
            }
        })
    };
    let svc_api: Api<Service> = Api::all(client.clone());
    let slice_api: Api<EndpointSlice> = Api::all(client.clone());
    let node_api: Api<Node> = Api::all(client.clone());
    let node_cfg = watcher::Config::default().fields(&format!("metadata.name={}", config.node_name));
    let t1 = feed(
        reflector::reflector(w1, watcher(svc_api, watcher::Config::default()))
            .touched_objects()
            .map(|r| r.map(|_| ()))
            .boxed(),
        "service",
    );
    let t2 = feed(
        reflector::reflector(w2, watcher(slice_api, watcher::Config::default()))
            .touched_objects()
            .map(|r| r.map(|_| ()))
            .boxed(),
        "endpointslice",
    );
    let t3 = feed(
        reflector::reflector(w3, watcher(node_api, node_cfg)).touched_objects().map(|r| r.map(|_| ())).boxed(),
        "node",
    );
    let _watchers = (t1, t2, t3);

    if let Some(addr) = config.healthz_addr {
        let m = metrics.clone();
        let listener = http::bind(addr).map_err(|e| anyhow::anyhow!("healthz on {addr}: {e}"))?;
        let answer: Arc<dyn Fn(&str) -> Answer + Send + Sync> = Arc::new(move |_p: &str| {
            let last = m.last_sync();
            let healthy = last.is_some();
            let fmt = |t: SystemTime| chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339();
            let body = serde_json::json!({"lastUpdated": last.map(fmt).unwrap_or_default(),
                "currentTime": fmt(SystemTime::now()), "nodeEligible": true})
            .to_string();
            (if healthy { 200 } else { 503 }, "application/json", body)
        });
        tokio::spawn(http::serve(listener, answer));
    }
    if let Some(addr) = config.metrics_addr {
        let m = metrics.clone();
        let listener = http::bind(addr).map_err(|e| anyhow::anyhow!("metrics on {addr}: {e}"))?;
        let answer: Arc<dyn Fn(&str) -> Answer + Send + Sync> = Arc::new(move |path: &str| match path {
            "/metrics" => (200, "text/plain; version=0.0.4", m.render(mode_name)),
            "/healthz" => (200, "text/plain", "ok".into()),
            "/proxyMode" => (200, "text/plain", mode_name.into()),
            _ => (404, "text/plain", "404 page not found\n".into()),
        });
        tokio::spawn(http::serve(listener, answer));
    }

    let sync_loop = sync_loop(config, mode, services, slices, nodes, dirty, metrics);
    tokio::select! {
        _ = shutdown => {
            tracing::info!("stopping; the rules stay in place");
            Ok(())
        }
        r = sync_loop => r,
    }
}

async fn sync_loop(
    config: Config,
    mode: Box<dyn Mode>,
    services: Store<Service>,
    slices: Store<EndpointSlice>,
    nodes: Store<Node>,
    dirty: Arc<Notify>,
    metrics: Arc<Metrics>,
) -> anyhow::Result<()> {
    // Wait for the first full lists, so the first sync does not remove everything.
    services.wait_until_ready().await?;
    slices.wait_until_ready().await?;
    let mut mode = Some(mode);
    let mut model = IncrementalModel::default();
    // Ports changed since the last successful sync, and the slices behind them (for the
    // programming-latency metric).
    let mut pending: BTreeSet<ServicePortName> = BTreeSet::new();
    let mut pending_slices: Vec<Arc<EndpointSlice>> = Vec::new();
    let mut need_full = true;
    let mut last_full = Instant::now();
    let mut health = HealthChecks::default();
    let mut seen_triggers: BTreeMap<String, SystemTime> = BTreeMap::new();
    loop {
        // The model from the reflectors' objects as they are (no copy of them), Service by Service.
        let update = model.update(&services.state(), &slices.state(), &config.node_name);
        pending.extend(update.changed);
        pending_slices.extend(update.slices);
        // Shared with the blocking sync thread, not cloned (and the model's own again after it).
        let ports = model.ports().clone();
        let mut addresses = nodes.state().first().map(|n| node_addresses(n)).unwrap_or_default();
        if addresses.is_empty() {
            addresses = config.node_addresses.clone();
        }
        let node =
            NodeContext { name: config.node_name.clone(), addresses, cluster_cidrs: config.cluster_cidrs.clone() };
        let full = need_full || last_full.elapsed() >= config.full_resync;
        let changed = if full { None } else { Some(pending.clone()) };
        if full || changed.as_ref().is_some_and(|c| !c.is_empty()) {
            let started = Instant::now();
            let mut m = mode.take().expect("the mode");
            let (p, n, c) = (ports.clone(), node.clone(), changed.clone());
            let (m, result) = tokio::task::spawn_blocking(move || {
                let r = m.sync(&p[..], &n, &c);
                (m, r)
            })
            .await?;
            mode = Some(m);
            match result {
                Ok(stats) => {
                    let took = started.elapsed();
                    let endpoints = ports.iter().map(|p| p.endpoints.len()).sum();
                    metrics.synced(took, full, ports.len(), endpoints);
                    tracing::debug!(
                        full,
                        changed = changed.as_ref().map(|c| c.len()),
                        rules = stats.rules_written,
                        ?took,
                        "synced"
                    );
                    let now = SystemTime::now();
                    for (k, t) in trigger_times(&std::mem::take(&mut pending_slices)) {
                        if seen_triggers.get(&k) != Some(&t) {
                            if let Ok(d) = now.duration_since(t) {
                                metrics.programmed(d);
                            }
                            seen_triggers.insert(k, t);
                        }
                    }
                    pending.clear();
                    if full {
                        last_full = Instant::now();
                    }
                    need_full = false;
                    health.update(&ports);
                }
                Err(e) => {
                    metrics.failed();
                    tracing::error!(error = %e, "sync failed; a full sync follows");
                    need_full = true;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            }
        }
        let until_full = config.full_resync.saturating_sub(last_full.elapsed());
        tokio::select! {
            _ = dirty.notified() => tokio::time::sleep(config.coalesce).await,
            _ = tokio::time::sleep(until_full) => {}
        }
    }
}
