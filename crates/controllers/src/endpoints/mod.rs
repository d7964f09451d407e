//! The endpoints and EndpointSlice controllers: for every Service with a selector (and not of
//! type ExternalName), an Endpoints object of the same name and EndpointSlices listing the pods
//! it selects that have an IP, kept up to date as pods come, go, become ready or not, and are
//! deleted. Services without a selector are left alone: their endpoints are managed by hand (the
//! `kubernetes` Service's by the API server).
//!
//! Both controllers of upstream's kube-controller-manager (`endpoint-controller` and
//! `endpointslice-controller`) run here as one, sharing their watches: a kube-runtime
//! [`applier`] syncs a Service at a time (never the same one twice at once), fed by
//!
//! - the Service watch: the Service itself;
//! - the pod watch, through `index::Members`: only the Services whose selector matches the pod,
//!   and only when something the endpoints show changed — no relist, no polling;
//! - the EndpointSlice watch (this controller's slices): their Service, when a slice changed or
//!   was deleted by someone else (the controller's own writes coming back are recognised);
//! - the Endpoints watch: the Service of a deleted Endpoints, which gets it back;
//! - the Node watch: the Services whose pods wait for their node to exist.
//!
//! A sync computes the desired objects from the cached state (pure functions in `subsets` and
//! `slices`), compares them with the current ones and writes only the difference: an unchanged
//! Service costs no API call, a pod becoming ready rewrites the one slice it is in (and the
//! Endpoints). The current objects are the cached ones overlaid with the controller's own writes
//! the watch has not delivered yet (`tracking::Written`), so a sync right after a write neither
//! duplicates a slice nor waits. A deleted Service's Endpoints (which have no owner) and slices
//! are deleted by the controller; at start, the leftovers of Services deleted meanwhile too.

mod index;
mod pods;
mod slices;
mod subsets;
mod sync;
mod tracking;

use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use futures::{stream, Stream, StreamExt};
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::controller::{self, applier};
use kube::runtime::reflector::{self, reflector, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Resource;
use tokio::sync::mpsc;

use crate::Context;
use index::{Grouped, Members};
use tracking::{TriggerTimes, Written};

/// A Service's namespace and name: what a sync is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub namespace: String,
    pub name: String,
}

impl Key {
    pub fn new(namespace: &str, name: &str) -> Key {
        Key { namespace: namespace.to_string(), name: name.to_string() }
    }

    pub fn of<K: Resource>(obj: &K) -> Key {
        Key::new(obj.meta().namespace.as_deref().unwrap_or_default(), obj.meta().name.as_deref().unwrap_or_default())
    }

    fn service_ref(&self) -> ObjectRef<Service> {
        ObjectRef::new(&self.name).within(&self.namespace)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The label a node's zone is in, copied to the endpoints of its pods.
const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
/// Endpoints that leader election uses, which have no Service and must be left alone.
const LEADER_ANNOTATION: &str = "control-plane.alpha.kubernetes.io/leader";
/// How many Services are synced at once.
const CONCURRENT_SYNCS: u16 = 32;

/// The watches whose first list must be complete before any sync.
const SYNCED_SERVICES: u8 = 1;
const SYNCED_PODS: u8 = 2;
const SYNCED_SLICES: u8 = 4;
const SYNCED_ENDPOINTS: u8 = 8;
const SYNCED_NODES: u8 = 16;
const SYNCED_ALL: u8 = 31;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Everything the syncs share.
pub(crate) struct State {
    ctx: Arc<Context>,
    services: Store<Service>,
    nodes: Store<Node>,
    members: Mutex<Members>,
    slices: Mutex<Grouped<EndpointSlice>>,
    endpoints: Mutex<Grouped<Endpoints>>,
    written_slices: Mutex<Written<EndpointSlice>>,
    written_endpoints: Mutex<Written<Endpoints>>,
    endpoints_times: Mutex<TriggerTimes>,
    slices_times: Mutex<TriggerTimes>,
    /// Node name → Services with pods on it that wait for it to exist.
    waiting_for_nodes: Mutex<HashMap<String, BTreeSet<Key>>>,
    /// Consecutive failed syncs, for the retry backoff.
    failures: Mutex<HashMap<Key, u32>>,
    synced: tokio::sync::watch::Sender<u8>,
    /// Services deleted: their Endpoints and slices are to be deleted.
    gone: mpsc::UnboundedSender<Key>,
    /// Services to sync, from outside the watches.
    requeue: mpsc::UnboundedSender<Key>,
}

fn slice_service(slice: &EndpointSlice) -> Option<Key> {
    let name = slice.metadata.labels.as_ref()?.get(slices::SERVICE_NAME_LABEL)?;
    Some(Key::new(slice.metadata.namespace.as_deref().unwrap_or_default(), name))
}

fn endpoints_service(endpoints: &Endpoints) -> Option<Key> {
    Some(Key::of(endpoints))
}

impl State {
    fn mark_synced(&self, watch: u8) {
        self.synced.send_modify(|synced| *synced |= watch);
    }

    async fn wait_synced(&self) {
        let mut synced = self.synced.subscribe();
        let _ = synced.wait_for(|s| *s == SYNCED_ALL).await;
    }

    /// Whether a node exists, and its zone.
    fn node_zone(&self, name: &str) -> Option<Option<String>> {
        let node = self.nodes.get(&ObjectRef::new(name))?;
        Some(node.metadata.labels.as_ref().and_then(|l| l.get(ZONE_LABEL)).cloned())
    }

    fn on_service_event(&self, event: Result<watcher::Event<Service>, watcher::Error>) -> Vec<Key> {
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                tracing::warn!(error = %e, "watching services");
                return Vec::new();
            }
        };
        for key in lock(&self.members).service_event(&event) {
            let _ = self.gone.send(key);
        }
        match event {
            watcher::Event::Apply(svc) => vec![Key::of(&svc)],
            watcher::Event::InitDone => {
                self.mark_synced(SYNCED_SERVICES);
                lock(&self.members).managed_services()
            }
            _ => Vec::new(),
        }
    }

    fn on_pod_event(&self, event: Result<watcher::Event<Pod>, watcher::Error>) -> Vec<Key> {
        match event {
            Ok(event) => {
                let done = matches!(event, watcher::Event::InitDone);
                let keys = lock(&self.members).pod_event(event);
                if done {
                    self.mark_synced(SYNCED_PODS);
                }
                keys
            }
            Err(e) => {
                tracing::warn!(error = %e, "watching pods");
                Vec::new()
            }
        }
    }

    fn on_slice_event(&self, event: Result<watcher::Event<EndpointSlice>, watcher::Error>) -> Vec<Key> {
        match event {
            Ok(event) => {
                // The controller's own write coming back needs no sync; anything else does.
                let mut own = false;
                if let watcher::Event::Apply(slice) | watcher::Event::Delete(slice) = &event {
                    if let Some(key) = slice_service(slice) {
                        let name = slice.metadata.name.as_deref().unwrap_or_default();
                        let seen = match &event {
                            watcher::Event::Apply(_) => slice.metadata.resource_version.clone(),
                            _ => None,
                        };
                        own = lock(&self.written_slices).observed(&key, name, seen);
                    }
                }
                let done = matches!(event, watcher::Event::InitDone);
                let keys = lock(&self.slices).handle(event);
                if done {
                    self.mark_synced(SYNCED_SLICES);
                }
                if own {
                    Vec::new()
                } else {
                    keys
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "watching endpointslices");
                Vec::new()
            }
        }
    }

    fn on_endpoints_event(&self, event: Result<watcher::Event<Endpoints>, watcher::Error>) -> Vec<Key> {
        match event {
            Ok(event) => {
                match &event {
                    watcher::Event::Apply(ep) => {
                        let key = Key::of(ep);
                        lock(&self.written_endpoints).observed(&key, &key.name, ep.metadata.resource_version.clone());
                    }
                    watcher::Event::Delete(ep) => {
                        let key = Key::of(ep);
                        lock(&self.written_endpoints).observed(&key, &key.name, None);
                    }
                    _ => {}
                }
                let deleted = matches!(event, watcher::Event::Delete(_));
                let done = matches!(event, watcher::Event::InitDone);
                let keys = lock(&self.endpoints).handle(event);
                if done {
                    self.mark_synced(SYNCED_ENDPOINTS);
                }
                // Like upstream, only a deletion makes the Service sync (and get them back).
                if deleted {
                    keys
                } else {
                    Vec::new()
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "watching endpoints");
                Vec::new()
            }
        }
    }

    fn on_node_event(&self, event: Result<watcher::Event<Node>, watcher::Error>) -> Vec<Key> {
        match event {
            Ok(watcher::Event::Apply(node)) => {
                let name = node.metadata.name.unwrap_or_default();
                lock(&self.waiting_for_nodes).remove(&name).into_iter().flatten().collect()
            }
            Ok(watcher::Event::InitDone) => {
                self.mark_synced(SYNCED_NODES);
                let mut waiting = lock(&self.waiting_for_nodes);
                let present: Vec<String> = waiting.keys().filter(|n| self.node_zone(n).is_some()).cloned().collect();
                present.iter().filter_map(|n| waiting.remove(n)).flatten().collect()
            }
            Ok(_) => Vec::new(),
            Err(e) => {
                tracing::warn!(error = %e, "watching nodes");
                Vec::new()
            }
        }
    }

    /// At start, once everything is listed: Endpoints and slices whose Service is gone.
    async fn sweep_leftovers(&self) {
        self.wait_synced().await;
        let mut orphans: BTreeSet<Key> = BTreeSet::new();
        {
            let endpoints = lock(&self.endpoints);
            for key in endpoints.keys() {
                let leader = endpoints
                    .group(&key)
                    .into_iter()
                    .flat_map(|g| g.values())
                    .any(|e| e.metadata.annotations.as_ref().is_some_and(|a| a.contains_key(LEADER_ANNOTATION)));
                if !leader {
                    orphans.insert(key);
                }
            }
        }
        orphans.extend(lock(&self.slices).keys());
        let members = lock(&self.members);
        for key in orphans.into_iter().filter(|k| !members.has_service(k)) {
            let _ = self.gone.send(key);
        }
    }
}

/// A stream of what an unbounded channel receives.
fn receiver_stream<T: Send + 'static>(rx: mpsc::UnboundedReceiver<T>) -> impl Stream<Item = T> + Send {
    stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) })
}

/// Runs the endpoints and EndpointSlice controllers until dropped.
pub async fn run(ctx: Arc<Context>) -> anyhow::Result<()> {
    let client = ctx.client.clone();
    let (services, services_writer) = reflector::store::<Service>();
    let (nodes, nodes_writer) = reflector::store::<Node>();
    let (gone_tx, gone_rx) = mpsc::unbounded_channel();
    let (requeue_tx, requeue_rx) = mpsc::unbounded_channel();
    let state = Arc::new(State {
        ctx,
        services: services.clone(),
        nodes,
        members: Mutex::new(Members::default()),
        slices: Mutex::new(Grouped::new(slice_service)),
        endpoints: Mutex::new(Grouped::new(endpoints_service)),
        written_slices: Mutex::new(Written::default()),
        written_endpoints: Mutex::new(Written::default()),
        endpoints_times: Mutex::new(TriggerTimes::default()),
        slices_times: Mutex::new(TriggerTimes::default()),
        waiting_for_nodes: Mutex::new(HashMap::new()),
        failures: Mutex::new(HashMap::new()),
        synced: tokio::sync::watch::channel(0).0,
        gone: gone_tx,
        requeue: requeue_tx,
    });

    let config = watcher::Config::default();
    let st = state.clone();
    let service_keys = reflector(services_writer, watcher(Api::<Service>::all(client.clone()), config.clone()))
        .default_backoff()
        .map(move |event| st.on_service_event(event));
    let st = state.clone();
    let pod_keys =
        watcher(Api::<Pod>::all(client.clone()), config.clone()).default_backoff().map(move |e| st.on_pod_event(e));
    let st = state.clone();
    let managed = format!("{}={}", slices::MANAGED_BY_LABEL, slices::CONTROLLER_NAME);
    let slice_keys = watcher(Api::<EndpointSlice>::all(client.clone()), config.clone().labels(&managed))
        .default_backoff()
        .map(move |e| st.on_slice_event(e));
    let st = state.clone();
    let endpoints_keys = watcher(Api::<Endpoints>::all(client.clone()), config.clone())
        .default_backoff()
        .map(move |e| st.on_endpoints_event(e));
    let st = state.clone();
    let node_keys = reflector(nodes_writer, watcher(Api::<Node>::all(client.clone()), config))
        .default_backoff()
        .map(move |e| st.on_node_event(e));
    let requeued = receiver_stream(requeue_rx).map(|key| vec![key]);

    let queue = stream::select_all([
        service_keys.boxed(),
        pod_keys.boxed(),
        slice_keys.boxed(),
        endpoints_keys.boxed(),
        node_keys.boxed(),
        requeued.boxed(),
    ])
    .flat_map(stream::iter)
    .map(|key| Ok::<_, Infallible>(key.service_ref()));

    let syncs = applier(
        |svc, st| Box::pin(sync::reconcile(svc, st)),
        sync::error_policy,
        state.clone(),
        services,
        queue,
        controller::Config::default().concurrency(CONCURRENT_SYNCS),
    )
    .for_each(|result| async move {
        match result {
            Ok(_) => {}
            Err(controller::Error::ObjectNotFound(obj)) => tracing::debug!(%obj, "no such service"),
            Err(controller::Error::ReconcilerFailed(e, obj)) => tracing::debug!(%obj, error = %e, "sync failed"),
            Err(e) => tracing::warn!(error = %e, "endpoints controller"),
        }
    });
    let st = state.clone();
    let cleanups = receiver_stream(gone_rx).for_each_concurrent(8, move |key| sync::clean_up(st.clone(), key));
    let sweep = state.sweep_leftovers();
    tokio::join!(syncs, cleanups, sweep);
    Ok(())
}
