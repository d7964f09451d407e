//! The ReplicaSet controller: keeps `spec.replicas` pods made from the template.
//!
//! Pods are created with `generateName: <rs>-` and a controller reference, and counted when they
//! are active (not finished, not being deleted). Orphans the selector picks are adopted, owned
//! pods the selector no longer picks are released; surplus pods go unscheduled, not-ready and
//! newest first. The status reports replicas, fullyLabeledReplicas, readyReplicas,
//! availableReplicas (ready for `minReadySeconds`) and observedGeneration; `kubectl scale` goes
//! through the API server's scale subresource, which writes `spec.replicas`.
//!
//! The controller decides from two reflector caches (ReplicaSets and pods) and remembers its own
//! creates and deletes until the pod watch has seen them ([`expectations`]), so a lagging watch
//! never makes it create duplicates; after a restart it starts from a fresh list, so killing it
//! at any moment converges. The decisions are in [`logic`].

pub mod expectations;
pub mod logic;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{future, stream, StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::{self, applier, trigger_self, trigger_with, Action};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Resource, ResourceExt};
use serde_json::json;

use crate::events::EventType;
use crate::{Context, Error, Result};
use expectations::{Cached, Expectations};
use logic::{Claim, ManageFailure};

const COMPONENT: &str = "replicaset-controller";

/// How long a ReplicaSet waits, at most, between two syncs when nothing happens.
const RESYNC: Duration = Duration::from_secs(600);

struct State {
    ctx: Arc<Context>,
    pods: Store<Pod>,
    replicasets: Store<ReplicaSet>,
    expectations: Arc<Expectations>,
    retries: Retries,
}

/// Runs the ReplicaSet controller until its watches end.
///
/// It is kube-runtime's `applier` (what `Controller::run` runs) fed by hand, because the trigger
/// from pods needs the pod cache that the reconciler reads: pods map to their controller, orphans
/// to the ReplicaSets whose selector picks them.
pub async fn run(ctx: Arc<Context>) -> anyhow::Result<()> {
    let client = ctx.client.clone();
    let (replicasets, rs_writer) = reflector::store::<ReplicaSet>();
    let (pods, pod_writer) = reflector::store::<Pod>();
    let expectations = Arc::new(Expectations::default());

    let forget = expectations.clone();
    let rs_events = watcher(Api::<ReplicaSet>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .modify(|rs| rs.managed_fields_mut().clear())
        .reflect(rs_writer)
        .inspect_ok(move |event| {
            if let watcher::Event::Delete(rs) = event {
                forget.forget(rs.uid().as_deref().unwrap_or_default());
            }
        })
        .touched_objects();
    let pod_events = watcher(Api::<Pod>::all(client), watcher::Config::default())
        .default_backoff()
        .modify(logic::slim_pod)
        .reflect(pod_writer)
        .touched_objects();
    let mapper = {
        let replicasets = replicasets.clone();
        let expectations = expectations.clone();
        move |pod: Pod| replicasets_for_pod(&pod, &replicasets, &expectations)
    };
    let queue = stream::select(trigger_self(rs_events, ()), trigger_with(pod_events, mapper));
    let state =
        Arc::new(State { ctx, pods, replicasets: replicasets.clone(), expectations, retries: Retries::default() });
    applier(
        |rs, state| Box::pin(reconcile(rs, state)),
        error_policy,
        state,
        replicasets,
        queue,
        controller::Config::default(),
    )
    .for_each(|result| {
        if let Err(e) = result {
            log_applier_error(COMPONENT, &e);
        }
        future::ready(())
    })
    .await;
    anyhow::bail!("the ReplicaSet watches ended")
}

/// Logs what the applier reports: failed reconciles at debug (they are retried), the rest at warn.
pub(crate) fn log_applier_error<E: std::fmt::Display, Q: std::fmt::Display>(
    component: &str,
    error: &controller::Error<E, Q>,
) {
    match error {
        controller::Error::ObjectNotFound(_) => {}
        controller::Error::ReconcilerFailed(e, obj) => {
            tracing::debug!(component, object = %obj, error = %e, "sync failed; retrying")
        }
        other => tracing::warn!(component, error = %other, "controller error"),
    }
}

/// The ReplicaSets a pod event concerns: its controller, or, for an orphan, every ReplicaSet of
/// its namespace whose selector picks it. Records the pod as observed for the expectations.
fn replicasets_for_pod(
    pod: &Pod,
    replicasets: &Store<ReplicaSet>,
    expectations: &Expectations,
) -> Vec<ObjectRef<ReplicaSet>> {
    let ns = pod.namespace().unwrap_or_default();
    if let Some(owner) = logic::controller_ref(&pod.metadata) {
        if owner.kind == "ReplicaSet" && logic::is_apps(&owner.api_version) {
            expectations.observe(&owner.uid, &pod.name_any());
            return vec![ObjectRef::new(&owner.name).within(&ns)];
        }
        return Vec::new();
    }
    if pod.metadata.deletion_timestamp.is_some() {
        return Vec::new();
    }
    replicasets
        .state()
        .iter()
        .filter(|rs| rs.namespace().as_deref() == Some(ns.as_str()))
        .filter(|rs| {
            rs.spec
                .as_ref()
                .and_then(|s| logic::selector(&s.selector).ok())
                .is_some_and(|s| !s.is_empty() && logic::matches(&s, &pod.metadata))
        })
        .map(|rs| ObjectRef::from_obj(rs.as_ref()))
        .collect()
}

async fn reconcile(rs: Arc<ReplicaSet>, state: Arc<State>) -> Result<Action> {
    state.pods.wait_until_ready().await.map_err(|e| Error::Other(e.to_string()))?;
    let result = sync(&rs, &state).await;
    state.retries.done(rs.uid().as_deref().unwrap_or_default(), result.is_ok());
    result
}

fn error_policy(rs: Arc<ReplicaSet>, error: &Error, state: Arc<State>) -> Action {
    Action::requeue(state.retries.next(rs.uid().as_deref().unwrap_or_default(), error))
}

/// One sync of a ReplicaSet (upstream's `syncReplicaSet`): claim pods, create or delete the
/// difference unless earlier writes are still unseen, write the status.
async fn sync(rs: &ReplicaSet, state: &State) -> Result<Action> {
    let ns = rs.namespace().unwrap_or_default();
    let name = rs.name_any();
    let uid = rs.uid().unwrap_or_default();
    let Some(spec) = rs.spec.as_ref() else {
        return Ok(Action::await_change());
    };
    let selector = match logic::selector(&spec.selector) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(replicaset = %format!("{ns}/{name}"), error = %e, "invalid selector");
            return Ok(Action::await_change());
        }
    };
    let client = state.ctx.client.clone();
    let deleting = rs.metadata.deletion_timestamp.is_some();
    let all_pods: Vec<Arc<Pod>> =
        state.pods.state().into_iter().filter(|p| p.namespace().as_deref() == Some(ns.as_str())).collect();

    // Claim: owned pods count, orphans are adopted, pods no longer selected are released.
    let pod_api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let mut owned: Vec<Arc<Pod>> = Vec::new();
    let mut can_adopt: Option<bool> = None;
    for pod in all_pods.iter().filter(|p| logic::is_pod_active(p)) {
        match logic::claim(&uid, deleting, &selector, &pod.metadata) {
            Claim::Owned => owned.push(pod.clone()),
            Claim::Adopt => {
                if can_adopt.is_none() {
                    // Upstream's canAdopt: the ReplicaSet as the API sees it now, not as cached.
                    let fresh = Api::<ReplicaSet>::namespaced(client.clone(), &ns).get_opt(&name).await?;
                    can_adopt =
                        Some(fresh.is_some_and(|f| f.uid() == rs.uid() && f.metadata.deletion_timestamp.is_none()));
                }
                if can_adopt == Some(true) {
                    if let Some(adopted) = adopt(&pod_api, pod, rs).await? {
                        owned.push(Arc::new(adopted));
                    }
                }
            }
            Claim::Release => release(&pod_api, pod, &uid).await?,
            Claim::Ignore => {}
        }
    }

    let by_name: HashMap<&str, &Pod> =
        all_pods.iter().map(|p| (p.metadata.name.as_deref().unwrap_or(""), p.as_ref())).collect();
    let cached = |n: &str| match by_name.get(n) {
        None => Cached::Absent,
        Some(p) => Cached::Present {
            uid: p.metadata.uid.as_deref().unwrap_or(""),
            terminating: p.metadata.deletion_timestamp.is_some(),
        },
    };
    let mut requeue = RESYNC;
    let mut failure = None;
    match state.expectations.satisfied(&uid, cached) {
        Ok(()) if !deleting => failure = manage_replicas(rs, &owned, &all_pods, state).await,
        Ok(()) => {}
        Err(wait) => requeue = wait.min(Duration::from_secs(2)),
    }

    let now = Timestamp::now();
    let owned_refs: Vec<&Pod> = owned.iter().map(|p| p.as_ref()).collect();
    let status = logic::calculate_status(rs, &owned_refs, failure.as_ref(), now);
    if logic::normalized_status(rs.status.as_ref()) != logic::normalized_status(Some(&status)) {
        let current = serde_json::to_value(rs.status.clone().unwrap_or_default()).unwrap_or_default();
        let desired = serde_json::to_value(&status).unwrap_or_default();
        let patch = json!({"status": logic::status_merge_patch(&current, &desired)});
        let api: Api<ReplicaSet> = Api::namespaced(client, &ns);
        match api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => return Ok(Action::await_change()),
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(failure) = failure {
        return Err(Error::Other(failure.message));
    }
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    if let Some(wait) = logic::next_available_in(&owned_refs, min_ready, now) {
        requeue = requeue.min(wait + Duration::from_millis(100));
    }
    Ok(Action::requeue(requeue))
}

/// Creates or deletes pods so that `owned` has `spec.replicas` pods; returns the failure to
/// report, if any (upstream's `manageReplicas`).
async fn manage_replicas(
    rs: &ReplicaSet,
    owned: &[Arc<Pod>],
    all_pods: &[Arc<Pod>],
    state: &State,
) -> Option<ManageFailure> {
    let ns = rs.namespace().unwrap_or_default();
    let uid = rs.uid().unwrap_or_default();
    let desired = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1).max(0) as usize;
    let api: Api<Pod> = Api::namespaced(state.ctx.client.clone(), &ns);
    let rs_ref = rs.object_ref(&());
    let recorder = &state.ctx.recorder;
    if owned.len() < desired {
        let count = (desired - owned.len()).min(logic::BURST_REPLICAS);
        state.expectations.begin(&uid);
        let template = logic::pod_from_template(rs);
        for batch in logic::slow_start_batches(count) {
            let creates = (0..batch).map(|_| async {
                let result = api.create(&PostParams::default(), &template).await;
                match &result {
                    Ok(pod) => {
                        let pod_name = pod.name_any();
                        state.expectations.created(&uid, &pod_name);
                        let message = format!("Created pod: {pod_name}");
                        recorder.record(&rs_ref, COMPONENT, EventType::Normal, "SuccessfulCreate", &message).await;
                    }
                    Err(e) if is_namespace_terminating(e) => {}
                    Err(e) => {
                        let message = format!("Error creating: {}", api_message(e));
                        recorder.record(&rs_ref, COMPONENT, EventType::Warning, "FailedCreate", &message).await;
                    }
                }
                result
            });
            let results = future::join_all(creates).await;
            if let Some(e) = results.into_iter().find_map(|r| r.err()) {
                if is_namespace_terminating(&e) {
                    return None;
                }
                return Some(ManageFailure { message: api_message(&e) });
            }
        }
    } else if owned.len() > desired {
        let count = (owned.len() - desired).min(logic::BURST_REPLICAS);
        let related = related_pods(rs, all_pods, &state.replicasets);
        let owned_refs: Vec<&Pod> = owned.iter().map(|p| p.as_ref()).collect();
        let victims = logic::pods_to_delete(&owned_refs, &related, count);
        state.expectations.begin(&uid);
        for pod in &victims {
            state.expectations.deleting(&uid, &pod.name_any(), pod.metadata.uid.as_deref().unwrap_or(""));
        }
        let deletes = victims.iter().map(|pod| async {
            let pod_name = pod.name_any();
            let params = DeleteParams {
                preconditions: Some(Preconditions { uid: pod.metadata.uid.clone(), resource_version: None }),
                ..Default::default()
            };
            match api.delete(&pod_name, &params).await {
                Ok(_) => {
                    let message = format!("Deleted pod: {pod_name}");
                    recorder.record(&rs_ref, COMPONENT, EventType::Normal, "SuccessfulDelete", &message).await;
                    None
                }
                // Gone already, or the name now belongs to another pod: ours is gone either way.
                Err(e) if is_not_found(&e) || is_conflict(&e) => None,
                Err(e) => {
                    state.expectations.delete_failed(&uid, &pod_name);
                    let message = format!("Error deleting: {}", api_message(&e));
                    recorder.record(&rs_ref, COMPONENT, EventType::Warning, "FailedDelete", &message).await;
                    Some(ManageFailure { message: api_message(&e) })
                }
            }
        });
        return future::join_all(deletes).await.into_iter().flatten().next();
    }
    None
}

/// The active pods of `rs` and of its siblings (the ReplicaSets with the same controller), which
/// rank pods on crowded nodes first for deletion.
fn related_pods<'a>(rs: &ReplicaSet, all_pods: &'a [Arc<Pod>], replicasets: &Store<ReplicaSet>) -> Vec<&'a Pod> {
    let mut owners: HashSet<String> = rs.uid().into_iter().collect();
    if let Some(controller) = logic::controller_ref(&rs.metadata) {
        for sibling in replicasets.state() {
            if sibling.namespace() == rs.namespace()
                && logic::controller_ref(&sibling.metadata).is_some_and(|c| c.uid == controller.uid)
            {
                owners.extend(sibling.uid());
            }
        }
    }
    all_pods
        .iter()
        .filter(|p| logic::is_pod_active(p))
        .filter(|p| logic::controller_ref(&p.metadata).is_some_and(|c| owners.contains(&c.uid)))
        .map(|p| p.as_ref())
        .collect()
}

/// Sets `rs` as the controller of the orphan `pod`; `None` when the pod is gone.
async fn adopt(api: &Api<Pod>, pod: &Pod, rs: &ReplicaSet) -> Result<Option<Pod>> {
    let mut refs = pod.metadata.owner_references.clone().unwrap_or_default();
    refs.push(logic::new_controller_ref("apps/v1", "ReplicaSet", &rs.metadata));
    let patch = json!({"metadata": {"resourceVersion": pod.resource_version(), "ownerReferences": refs}});
    match api.patch(&pod.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(p) => Ok(Some(p)),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Removes the ownerReference to `owner_uid` from `pod`, which its selector no longer picks.
async fn release(api: &Api<Pod>, pod: &Pod, owner_uid: &str) -> Result<()> {
    let refs: Vec<_> = pod.metadata.owner_references.iter().flatten().filter(|r| r.uid != owner_uid).cloned().collect();
    let patch = json!({"metadata": {"resourceVersion": pod.resource_version(), "ownerReferences": refs}});
    match api.patch(&pod.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Per-object retry backoff for the error policy: 100 ms doubling up to a minute, reset by a
/// successful sync.
#[derive(Default)]
pub(crate) struct Retries {
    failures: Mutex<HashMap<String, u32>>,
}

impl Retries {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records the outcome of a sync of the object with this uid.
    pub(crate) fn done(&self, uid: &str, ok: bool) {
        if ok {
            self.lock().remove(uid);
        }
    }

    /// The delay before retrying after `error`.
    pub(crate) fn next(&self, uid: &str, error: &Error) -> Duration {
        let mut failures = self.lock();
        let n = failures.entry(uid.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        let base = if matches!(error, Error::Kube(e) if is_conflict(e)) { 50 } else { 100 };
        Duration::from_millis(base << (*n - 1).min(10)).min(Duration::from_secs(60))
    }
}

pub(crate) fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

pub(crate) fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

pub(crate) fn is_already_exists(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409 && s.reason == "AlreadyExists")
}

fn is_namespace_terminating(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 403 && s.message.contains("being terminated"))
}

/// The API server's message of an error, or the error itself.
pub(crate) fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if !s.message.is_empty() => s.message.clone(),
        other => other.to_string(),
    }
}
