//! The scheduler: binds each pod that has no `spec.nodeName` (and asks for `default-scheduler`)
//! to a node, through `POST pods/<name>/binding`, as kube-scheduler does.
//!
//! A node qualifies when it is not cordoned, is Ready (a node that is not counts as tainted
//! `node.kubernetes.io/not-ready:NoSchedule`, as upstream's node lifecycle controller would
//! taint it), its NoSchedule/NoExecute taints are tolerated and it matches the pod's nodeSelector
//! and required node affinity; among those, the pod goes where PreferNoSchedule taints are
//! tolerated, preferred node affinity weighs most, then where the fewest pods are (ties: name
//! order). The rules are the pure functions of [`predicates`].
//!
//! A pod that fits nowhere gets `PodScheduled=False` (reason Unschedulable, upstream's message)
//! and a FailedScheduling event, and is retried whenever a node changes. Bindings in flight are
//! remembered ("assumed", as upstream's scheduler cache does) so that pods scheduled one after
//! the other spread even before the watch shows the earlier ones bound.

pub mod predicates;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use futures::{stream, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Binding, Node, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::{applier, trigger_self, Action, Config as ApplierConfig, ReconcileRequest};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Resource;
use serde_json::json;

use crate::events::EventType;
use crate::{Context, Error, Result};
use predicates::FitError;

/// The component name on the scheduler's events.
const COMPONENT: &str = "default-scheduler";

/// How often a pod that fits nowhere is retried even if no node changes (upstream's
/// `podMaxInUnschedulablePodsDuration`).
const UNSCHEDULABLE_RETRY: Duration = Duration::from_secs(300);

/// A reflector's store and its stream of watch events, retried with backoff when the watch fails.
pub(crate) fn reflected<K>(
    api: Api<K>,
) -> (Store<K>, impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static)
where
    K: kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let (store, writer) = reflector::store();
    let events = watcher(api, watcher::Config::default()).default_backoff().reflect(writer);
    (store, events)
}

/// A reconciler's future, as [`run_on_changes`] takes it.
pub(crate) type ReconcileFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Action>> + Send>>;

/// Runs `reconcile` (kube-runtime's applier; a failure is retried after a second) over the
/// objects of `api`: every object the watch applies is reconciled, and after a deletion so are the
/// objects `after_delete` picks from the store (those waiting for what the deletion freed).
/// `state` makes the reconciler's state from the store.
pub(crate) async fn run_on_changes<K, S>(
    controller: &'static str,
    api: Api<K>,
    state: impl FnOnce(Store<K>) -> Arc<S>,
    after_delete: impl Fn(&Store<K>) -> Vec<ObjectRef<K>> + Send + 'static,
    reconcile: fn(Arc<K>, Arc<S>) -> ReconcileFuture,
) where
    K: kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
    S: Send + Sync + 'static,
{
    use futures::{stream, TryStreamExt};
    use kube::runtime::controller::{applier, Config as ApplierConfig, ReconcileRequest};
    let (store, events) = reflected(api);
    let waiting = store.clone();
    let queue = events
        .map_ok(move |event| {
            let refs: Vec<ObjectRef<K>> = match event {
                watcher::Event::Apply(obj) | watcher::Event::InitApply(obj) => vec![ObjectRef::from_obj(&obj)],
                watcher::Event::Delete(_) => after_delete(&waiting),
                watcher::Event::Init | watcher::Event::InitDone => Vec::new(),
            };
            stream::iter(refs.into_iter().map(|r| Ok::<_, watcher::Error>(ReconcileRequest::from(r))))
        })
        .try_flatten();
    let state = state(store.clone());
    applier(
        reconcile,
        |_obj, _err, _state| Action::requeue(Duration::from_secs(1)),
        state,
        store,
        queue,
        ApplierConfig::default(),
    )
    .for_each(|outcome| {
        log_outcome(controller, outcome);
        std::future::ready(())
    })
    .await;
}

/// The HTTP status of an API error, if the error is one.
pub(crate) fn api_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// Waits until a reflector has listed everything once.
pub(crate) async fn ready<K>(store: &Store<K>) -> Result<()>
where
    K: kube::runtime::reflector::Lookup + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    store.wait_until_ready().await.map_err(|e| Error::Other(e.to_string()))
}

/// Logs what an applier reports, except objects that were gone by the time their turn came.
pub(crate) fn log_outcome<K: Resource, E1: std::fmt::Display, E2: std::fmt::Display>(
    controller: &'static str,
    outcome: Result<(ObjectRef<K>, Action), kube::runtime::controller::Error<E1, E2>>,
) {
    use kube::runtime::controller::Error as E;
    match outcome {
        Ok(_) | Err(E::ObjectNotFound(_)) => {}
        Err(E::ReconcilerFailed(e, obj)) => tracing::warn!(controller, object = %obj, error = %e, "reconcile failed"),
        Err(e) => tracing::warn!(controller, error = %e, "controller error"),
    }
}

struct Scheduler {
    ctx: Arc<Context>,
    pods: Store<Pod>,
    nodes: Store<Node>,
    /// Pods whose binding was sent, by (namespace, name): (uid, node).
    assumed: Mutex<HashMap<(String, String), (String, String)>>,
}

pub async fn run(ctx: Arc<Context>) -> anyhow::Result<()> {
    let (pods, pod_events) = reflected(Api::<Pod>::all(ctx.client.clone()));
    let (nodes, node_events) = reflected(Api::<Node>::all(ctx.client.clone()));
    // Any change of a node may make waiting pods schedulable: retry them all.
    let waiting = pods.clone();
    let node_trigger = node_events
        .touched_objects()
        .map_ok(move |_node: Node| {
            let refs: Vec<Result<ReconcileRequest<Pod>, watcher::Error>> = waiting
                .state()
                .iter()
                .filter(|p| predicates::wants_scheduling(p))
                .map(|p| Ok(ObjectRef::from_obj(p.as_ref()).into()))
                .collect();
            stream::iter(refs)
        })
        .try_flatten();
    let queue = stream::select(trigger_self(pod_events.applied_objects(), ()), node_trigger);
    let state = Arc::new(Scheduler { ctx, pods: pods.clone(), nodes, assumed: Mutex::new(HashMap::new()) });
    applier(
        |pod, state: Arc<Scheduler>| Box::pin(async move { state.schedule(pod).await }),
        |_pod, _err, _state| Action::requeue(Duration::from_secs(2)),
        state,
        pods,
        queue,
        ApplierConfig::default(),
    )
    .for_each(|outcome| {
        log_outcome("scheduler", outcome);
        std::future::ready(())
    })
    .await;
    Ok(())
}

impl Scheduler {
    async fn schedule(&self, pod: Arc<Pod>) -> Result<Action> {
        if !predicates::wants_scheduling(&pod) {
            return Ok(Action::await_change());
        }
        ready(&self.nodes).await?;
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let decision = {
            let mut assumed = self.assumed.lock().unwrap_or_else(|p| p.into_inner());
            self.forget_settled(&mut assumed);
            if assumed.get(&(ns.clone(), name.clone())).is_some_and(|(u, _)| *u == uid) {
                // Bound already; the watch has not shown it yet.
                return Ok(Action::await_change());
            }
            let mut nodes = self.nodes.state();
            nodes.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
            let node_refs: Vec<&Node> = nodes.iter().map(|n| n.as_ref()).collect();
            let mut counts: HashMap<String, usize> = HashMap::new();
            for p in self.pods.state() {
                if let Some(node) = predicates::occupies_node(&p) {
                    *counts.entry(node.to_string()).or_default() += 1;
                }
            }
            for (_, node) in assumed.values() {
                *counts.entry(node.clone()).or_default() += 1;
            }
            let spec = pod.spec.clone().unwrap_or_default();
            match predicates::choose_node(&spec, &node_refs, |n| counts.get(n).copied().unwrap_or(0)) {
                Ok(node) => {
                    let node = node.metadata.name.clone().unwrap_or_default();
                    assumed.insert((ns.clone(), name.clone()), (uid.clone(), node.clone()));
                    Ok(node)
                }
                Err(e) => Err(e),
            }
        };
        match decision {
            Ok(node) => self.bind(&pod, &ns, &name, &node).await,
            Err(fit) => self.unschedulable(&pod, &ns, &name, &fit).await,
        }
    }

    /// Drops the assumptions the watch has caught up with: the pod shows bound, or is gone.
    fn forget_settled(&self, assumed: &mut HashMap<(String, String), (String, String)>) {
        assumed.retain(|(ns, name), (uid, _)| {
            let seen = self.pods.get(&ObjectRef::new(name).within(ns));
            seen.is_some_and(|p| p.metadata.uid.as_deref() == Some(uid) && predicates::wants_scheduling(&p))
        });
    }

    async fn bind(&self, pod: &Pod, ns: &str, name: &str, node: &str) -> Result<Action> {
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), ns);
        let binding = Binding {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some(ns.to_string()),
                uid: pod.metadata.uid.clone(),
                ..Default::default()
            },
            target: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Node".into()),
                name: Some(node.to_string()),
                ..Default::default()
            },
        };
        match api.create_subresource::<_, serde_json::Value>("binding", name, &PostParams::default(), &binding).await {
            Ok(_) => {
                tracing::debug!(pod = %format!("{ns}/{name}"), node, "bound");
                let message = format!("Successfully assigned {ns}/{name} to {node}");
                self.ctx
                    .recorder
                    .record(&pod.object_ref(&()), COMPONENT, EventType::Normal, "Scheduled", &message)
                    .await;
                Ok(Action::await_change())
            }
            Err(e) => {
                self.assumed.lock().unwrap_or_else(|p| p.into_inner()).remove(&(ns.to_string(), name.to_string()));
                match api_code(&e) {
                    // Gone, or bound by someone else meanwhile: nothing to do.
                    Some(404) | Some(409) => Ok(Action::await_change()),
                    _ => Err(e.into()),
                }
            }
        }
    }

    /// Marks the pod `PodScheduled=False` and records FailedScheduling, once per distinct message.
    async fn unschedulable(&self, pod: &Pod, ns: &str, name: &str, fit: &FitError) -> Result<Action> {
        let message = fit.to_string();
        let current = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"));
        let unchanged = current.is_some_and(|c| {
            c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable")
                && c.message.as_deref() == Some(message.as_str())
        });
        if !unchanged {
            tracing::debug!(pod = %format!("{ns}/{name}"), %message, "unschedulable");
            let now = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
            let patch = json!({"status": {"conditions": [{
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": message,
                "lastProbeTime": null,
                "lastTransitionTime": now,
            }]}});
            let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), ns);
            match api.patch_status(name, &PatchParams::default(), &Patch::Strategic(&patch)).await {
                Ok(_) => {}
                Err(e) if api_code(&e) == Some(404) => return Ok(Action::await_change()),
                Err(e) => return Err(e.into()),
            }
            self.ctx
                .recorder
                .record(&pod.object_ref(&()), COMPONENT, EventType::Warning, "FailedScheduling", &message)
                .await;
        }
        Ok(Action::requeue(UNSCHEDULABLE_RETRY))
    }
}
