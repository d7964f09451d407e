//! Keeps a [`SharedCluster`] current from the API: watches of Services, EndpointSlices (unless
//! `noendpoints`), Pods (only with `pods verified`) and Namespaces. Each event is converted at
//! once into the plain structs the snapshot is made of ([`convert`]) and only those are kept —
//! never the API objects, which for 10,000 Services took most of the process's memory. Every
//! change wakes a rebuild of the snapshot — of the kinds that changed — swapped in at once
//! (changes arriving during a rebuild are coalesced into the next), so an API change is answered
//! within milliseconds. The snapshot is marked synced once every watched kind has been listed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::ResourceExt;
use tokio::sync::Notify;

use super::cluster::{EndpointSliceInfo, PodInfo, ServiceInfo};
use super::config::{KubernetesConfig, PodMode};
use super::convert;
use super::shared::SharedCluster;

/// A stream of watch events for one kind.
pub type Events<K> = BoxStream<'static, watcher::Result<Event<K>>>;

/// The watch streams the snapshot is built from (`None`: that kind is not watched).
pub struct Sources {
    pub services: Events<Service>,
    pub slices: Option<Events<EndpointSlice>>,
    pub pods: Option<Events<Pod>>,
    pub namespaces: Events<Namespace>,
}

/// A watch of every `K` in the cluster, backing off on errors.
fn watch<K>(client: &kube::Client) -> Events<K>
where
    K: kube::Resource + Clone + std::fmt::Debug + k8s_openapi::serde::de::DeserializeOwned + Send + 'static,
    K::DynamicType: Default,
{
    watcher::watcher(Api::<K>::all(client.clone()), watcher::Config::default()).default_backoff().boxed()
}

impl Sources {
    /// Watches of the whole cluster through `client`, as `config` needs them.
    pub fn from_client(client: &kube::Client, config: &KubernetesConfig) -> Sources {
        Sources {
            services: watch::<Service>(client),
            slices: (!config.noendpoints).then(|| watch::<EndpointSlice>(client)),
            pods: (config.pods == PodMode::Verified).then(|| watch::<Pod>(client)),
            namespaces: watch::<Namespace>(client),
        }
    }
}

/// Starts keeping a snapshot current from the API; the task runs until aborted.
pub fn spawn(client: &kube::Client, config: &KubernetesConfig) -> (Arc<SharedCluster>, tokio::task::JoinHandle<()>) {
    let shared = SharedCluster::new();
    let task = tokio::spawn(run(Sources::from_client(client, config), shared.clone()));
    (shared, task)
}

/// One kind's objects as the snapshot needs them, by namespace and name.
struct Kept<T> {
    objects: HashMap<(String, String), Arc<T>>,
    /// The objects of a re-list under way (from `Init` to `InitDone`), then swapped in whole, so
    /// that what was deleted while the watch was down goes.
    relist: Option<HashMap<(String, String), Arc<T>>>,
    /// Whether the objects changed since the last rebuild.
    changed: bool,
}

impl<T> Default for Kept<T> {
    fn default() -> Self {
        Kept { objects: HashMap::new(), relist: None, changed: false }
    }
}

impl<T> Kept<T> {
    /// Applies one watch event, keeping `convert`'s view of the object (an object it makes
    /// nothing of is dropped). Returns true at the end of a list.
    fn apply<K: ResourceExt>(&mut self, event: Event<K>, convert: fn(&K) -> Option<T>) -> bool {
        let key = |o: &K| (o.namespace().unwrap_or_default(), o.name_any());
        match event {
            Event::Init => self.relist = Some(HashMap::new()),
            Event::InitApply(o) => {
                if let Some(t) = convert(&o) {
                    self.relist.get_or_insert_with(HashMap::new).insert(key(&o), Arc::new(t));
                }
            }
            Event::InitDone => {
                self.objects = self.relist.take().unwrap_or_default();
                self.objects.shrink_to_fit();
                self.changed = true;
                return true;
            }
            Event::Apply(o) => {
                match convert(&o) {
                    Some(t) => self.objects.insert(key(&o), Arc::new(t)),
                    None => self.objects.remove(&key(&o)),
                };
                self.changed = true;
            }
            Event::Delete(o) => {
                self.objects.remove(&key(&o));
                self.changed = true;
            }
        }
        false
    }
}

/// What the watches keep, and how many kinds are yet to be listed.
#[derive(Default)]
struct Stores {
    services: Mutex<Kept<ServiceInfo>>,
    slices: Mutex<Kept<EndpointSliceInfo>>,
    pods: Mutex<Kept<PodInfo>>,
    namespaces: Mutex<Kept<String>>,
    wake: Notify,
    unlisted: AtomicUsize,
}

/// Feeds `shared` from `sources` until every stream ends (never, for API watches).
pub async fn run(sources: Sources, shared: Arc<SharedCluster>) {
    let stores = Stores::default();
    let kinds = 2 + usize::from(sources.slices.is_some()) + usize::from(sources.pods.is_some());
    stores.unlisted.store(kinds, Ordering::Release);
    let feeds = futures::future::join4(
        feed(sources.services, "services", &stores.services, convert::service, &stores),
        async {
            if let Some(s) = sources.slices {
                feed(s, "endpointslices", &stores.slices, convert::endpoint_slice, &stores).await
            }
        },
        async {
            if let Some(s) = sources.pods {
                feed(s, "pods", &stores.pods, convert::pod, &stores).await
            }
        },
        feed(sources.namespaces, "namespaces", &stores.namespaces, |n: &Namespace| n.metadata.name.clone(), &stores),
    );
    let rebuild = async {
        loop {
            stores.wake.notified().await;
            stores.rebuild(&shared);
        }
    };
    tokio::select! {
        _ = feeds => stores.rebuild(&shared),
        _ = rebuild => {}
    }
}

/// Takes `kept`'s objects for a rebuild if they changed since the last.
fn changed<T>(kept: &Mutex<Kept<T>>) -> Option<Vec<Arc<T>>> {
    let mut k = kept.lock().expect("watch store lock");
    std::mem::take(&mut k.changed).then(|| k.objects.values().cloned().collect())
}

impl Stores {
    /// Swaps in a snapshot with the changed kinds rebuilt.
    fn rebuild(&self, shared: &SharedCluster) {
        let listed = self.unlisted.load(Ordering::Acquire) == 0;
        let serial = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as u32).unwrap_or(0);
        let mut c = (*shared.current()).clone();
        if let Some(services) = changed(&self.services) {
            c = c.with_services(services, serial);
        }
        if let Some(slices) = changed(&self.slices) {
            c = c.with_slices(slices, serial);
        }
        if let Some(pods) = changed(&self.pods) {
            c = c.with_pods(pods, serial);
        }
        if let Some(names) = changed(&self.namespaces) {
            c = c.with_namespaces(names.iter().map(|n| n.to_string()), serial);
        }
        let services = c.services().count();
        shared.replace(c);
        if listed && !shared.synced() {
            tracing::info!(services, "kubernetes API synced");
            shared.mark_synced();
        }
    }
}

/// Keeps one kind in `kept` from its watch, waking a rebuild on every change; counts the kind as
/// listed at its first `InitDone`.
async fn feed<K: ResourceExt, T>(
    stream: impl Stream<Item = watcher::Result<Event<K>>>,
    what: &str,
    kept: &Mutex<Kept<T>>,
    convert: fn(&K) -> Option<T>,
    stores: &Stores,
) {
    let mut stream = std::pin::pin!(stream);
    let mut listed = false;
    while let Some(ev) = stream.next().await {
        let ev = match ev {
            Ok(ev) => ev,
            Err(e) => {
                tracing::warn!(error = %e, "{what} watch");
                continue;
            }
        };
        let mut k = kept.lock().expect("watch store lock");
        let done = k.apply(ev, convert);
        let changed = k.changed;
        drop(k);
        if done && !listed {
            listed = true;
            stores.unlisted.fetch_sub(1, Ordering::AcqRel);
        }
        if changed {
            stores.wake.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::stream;
    use k8s_openapi::serde_json::{self, json};
    use std::time::{Duration, Instant};

    fn ev<K>(e: Event<K>) -> watcher::Result<Event<K>> {
        Ok(e)
    }

    #[tokio::test]
    async fn builds_and_syncs_from_events() {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80}]}
        }))
        .unwrap();
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "default"}})).unwrap();
        let sources = Sources {
            services: stream::iter(vec![ev(Event::Init), ev(Event::InitApply(svc)), ev(Event::InitDone)]).boxed(),
            slices: None,
            pods: None,
            namespaces: stream::iter(vec![ev(Event::Init), ev(Event::InitApply(ns)), ev(Event::InitDone)]).boxed(),
        };
        let shared = SharedCluster::new();
        run(sources, shared.clone()).await;
        assert!(shared.synced());
        let c = shared.current();
        assert!(c.has_namespace("default"));
        assert!(c.service("default", "web").is_some());
    }

    #[tokio::test]
    async fn a_change_is_in_the_snapshot_within_100ms() {
        let (svc_tx, svc_rx) = futures::channel::mpsc::unbounded();
        let (ns_tx, ns_rx) = futures::channel::mpsc::unbounded();
        let sources = Sources { services: svc_rx.boxed(), slices: None, pods: None, namespaces: ns_rx.boxed() };
        let shared = SharedCluster::new();
        let task = tokio::spawn(run(sources, shared.clone()));
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "default"}})).unwrap();
        for e in [ev(Event::Init), ev(Event::InitApply(ns)), ev(Event::InitDone)] {
            ns_tx.unbounded_send(e).unwrap();
        }
        svc_tx.unbounded_send(ev(Event::Init)).unwrap();
        svc_tx.unbounded_send(ev(Event::InitDone)).unwrap();
        tokio::time::timeout(Duration::from_secs(5), shared.wait_synced()).await.unwrap();
        assert!(shared.current().service("default", "web").is_none());

        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default"}, "spec": {"clusterIP": "10.96.0.10"}
        }))
        .unwrap();
        let t = Instant::now();
        svc_tx.unbounded_send(ev(Event::Apply(svc.clone()))).unwrap();
        while shared.current().service("default", "web").is_none() {
            assert!(t.elapsed() < Duration::from_millis(100), "not seen after {:?}", t.elapsed());
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        svc_tx.unbounded_send(ev(Event::Delete(svc))).unwrap();
        let t = Instant::now();
        while shared.current().service("default", "web").is_some() {
            assert!(t.elapsed() < Duration::from_millis(100), "still there after {:?}", t.elapsed());
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        drop((svc_tx, ns_tx));
        tokio::time::timeout(Duration::from_secs(5), task).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_relist_drops_what_was_deleted_while_the_watch_was_down() {
        let svc = |name: &str| -> Service {
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default"}, "spec": {"clusterIP": "10.96.0.10"}
            }))
            .unwrap()
        };
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "default"}})).unwrap();
        let events = vec![
            ev(Event::Init),
            ev(Event::InitApply(svc("old"))),
            ev(Event::InitDone),
            ev(Event::Apply(svc("kept"))),
            ev(Event::Init),
            ev(Event::InitApply(svc("kept"))),
            ev(Event::InitApply(svc("new"))),
            ev(Event::InitDone),
        ];
        let sources = Sources {
            services: stream::iter(events).boxed(),
            slices: None,
            pods: None,
            namespaces: stream::iter(vec![ev(Event::Init), ev(Event::InitApply(ns)), ev(Event::InitDone)]).boxed(),
        };
        let shared = SharedCluster::new();
        run(sources, shared.clone()).await;
        let c = shared.current();
        let names: Vec<&str> = c.services().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["kept", "new"]);
    }

    #[tokio::test]
    async fn not_synced_until_every_kind_is_listed() {
        let sources = Sources {
            services: stream::iter(vec![ev(Event::Init), ev(Event::InitDone)]).boxed(),
            slices: Some(stream::iter(vec![ev(Event::Init)]).boxed()),
            pods: None,
            namespaces: stream::iter(vec![ev(Event::Init), ev(Event::InitDone)]).boxed(),
        };
        let shared = SharedCluster::new();
        run(sources, shared.clone()).await;
        assert!(!shared.synced());
    }
}
