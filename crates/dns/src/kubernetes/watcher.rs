//! Keeps a [`SharedCluster`] current from the API: kube reflectors over Services, EndpointSlices
//! (unless `noendpoints`), Pods (only with `pods verified`) and Namespaces. Every change wakes a
//! rebuild of the snapshot — of the kinds that changed, from the reflectors' stores — swapped in
//! at once (changes arriving during a rebuild are coalesced into the next), so an API change is
//! answered within milliseconds. The snapshot is marked synced once every watched kind has been
//! listed.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::ResourceExt;
use tokio::sync::Notify;

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

/// Drops what DNS never reads, to keep the stores small.
fn slim<K: ResourceExt>(o: &mut K) {
    o.managed_fields_mut().clear();
    o.annotations_mut().clear();
}

/// A watch of every `K` in the cluster, slimmed by `modify`, backing off on errors.
fn watch<K>(client: &kube::Client, modify: fn(&mut K)) -> Events<K>
where
    K: kube::Resource + Clone + std::fmt::Debug + k8s_openapi::serde::de::DeserializeOwned + Send + 'static,
    K::DynamicType: Default,
{
    watcher::watcher(Api::<K>::all(client.clone()), watcher::Config::default()).modify(modify).default_backoff().boxed()
}

impl Sources {
    /// Watches of the whole cluster through `client`, as `config` needs them.
    pub fn from_client(client: &kube::Client, config: &KubernetesConfig) -> Sources {
        Sources {
            services: watch::<Service>(client, slim),
            slices: (!config.noendpoints).then(|| watch::<EndpointSlice>(client, slim)),
            pods: (config.pods == PodMode::Verified).then(|| {
                watch::<Pod>(client, |p| {
                    slim(p);
                    p.spec = None;
                })
            }),
            namespaces: watch::<Namespace>(client, slim),
        }
    }
}

/// Starts keeping a snapshot current from the API; the task runs until aborted.
pub fn spawn(client: &kube::Client, config: &KubernetesConfig) -> (Arc<SharedCluster>, tokio::task::JoinHandle<()>) {
    let shared = SharedCluster::new();
    let task = tokio::spawn(run(Sources::from_client(client, config), shared.clone()));
    (shared, task)
}

/// What changed since the last rebuild, and how many kinds are yet to be listed.
#[derive(Default)]
struct Changes {
    services: AtomicBool,
    slices: AtomicBool,
    pods: AtomicBool,
    namespaces: AtomicBool,
    wake: Notify,
    unlisted: AtomicUsize,
}

/// Feeds `shared` from `sources` until every stream ends (never, for API watches).
pub async fn run(sources: Sources, shared: Arc<SharedCluster>) {
    let changes = Changes::default();
    let kinds = 2 + usize::from(sources.slices.is_some()) + usize::from(sources.pods.is_some());
    changes.unlisted.store(kinds, Ordering::Release);
    let (services, w1) = reflector::store::<Service>();
    let (slices, w2) = reflector::store::<EndpointSlice>();
    let (pods, w3) = reflector::store::<Pod>();
    let (namespaces, w4) = reflector::store::<Namespace>();
    let feeds = futures::future::join4(
        feed(reflector::reflector(w1, sources.services), "services", &changes.services, &changes),
        async {
            if let Some(s) = sources.slices {
                feed(reflector::reflector(w2, s), "endpointslices", &changes.slices, &changes).await
            }
        },
        async {
            if let Some(s) = sources.pods {
                feed(reflector::reflector(w3, s), "pods", &changes.pods, &changes).await
            }
        },
        feed(reflector::reflector(w4, sources.namespaces), "namespaces", &changes.namespaces, &changes),
    );
    let stores = Stores { services, slices, pods, namespaces };
    let rebuild = async {
        loop {
            changes.wake.notified().await;
            stores.rebuild(&shared, &changes);
        }
    };
    tokio::select! {
        _ = feeds => stores.rebuild(&shared, &changes),
        _ = rebuild => {}
    }
}

struct Stores {
    services: Store<Service>,
    slices: Store<EndpointSlice>,
    pods: Store<Pod>,
    namespaces: Store<Namespace>,
}

impl Stores {
    /// Swaps in a snapshot with the changed kinds rebuilt from the stores.
    fn rebuild(&self, shared: &SharedCluster, changes: &Changes) {
        let listed = changes.unlisted.load(Ordering::Acquire) == 0;
        let serial = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as u32).unwrap_or(0);
        let mut c = (*shared.current()).clone();
        if changes.services.swap(false, Ordering::AcqRel) {
            c = c.with_services(self.services.state().iter().filter_map(|s| convert::service(s)), serial);
        }
        if changes.slices.swap(false, Ordering::AcqRel) {
            c = c.with_slices(self.slices.state().iter().filter_map(|s| convert::endpoint_slice(s)), serial);
        }
        if changes.pods.swap(false, Ordering::AcqRel) {
            c = c.with_pods(self.pods.state().iter().filter_map(|p| convert::pod(p)), serial);
        }
        if changes.namespaces.swap(false, Ordering::AcqRel) {
            let names = self.namespaces.state().iter().filter_map(|n| n.metadata.name.clone()).collect::<Vec<_>>();
            c = c.with_namespaces(names, serial);
        }
        shared.replace(c);
        if listed && !shared.synced() {
            tracing::info!(services = self.services.state().len(), "kubernetes API synced");
            shared.mark_synced();
        }
    }
}

/// Marks its kind changed and wakes a rebuild on every change; counts the kind as listed at its
/// first `InitDone`.
async fn feed<K>(
    stream: impl Stream<Item = watcher::Result<Event<K>>>,
    what: &str,
    changed: &AtomicBool,
    changes: &Changes,
) {
    let mut stream = std::pin::pin!(stream);
    let mut listed = false;
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(Event::InitDone) => {
                if !listed {
                    listed = true;
                    changes.unlisted.fetch_sub(1, Ordering::AcqRel);
                }
            }
            Ok(Event::Apply(_) | Event::Delete(_)) => {}
            Ok(Event::Init | Event::InitApply(_)) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "{what} watch");
                continue;
            }
        }
        changed.store(true, Ordering::Release);
        changes.wake.notify_one();
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
