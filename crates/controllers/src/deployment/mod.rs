//! The Deployment controller: one ReplicaSet per pod template, rolled from old to new.
//!
//! Each template gets a ReplicaSet named `<deployment>-<pod-template-hash>` whose selector and
//! template carry the `pod-template-hash` label. RollingUpdate grows the new ReplicaSet and
//! shrinks the old ones within maxSurge and maxUnavailable (25% each by default); Recreate
//! scales the old ones to zero and waits for their pods to go before scaling the new one up.
//! ReplicaSets carry the `deployment.kubernetes.io/revision` annotation (which `kubectl rollout
//! history` lists and `kubectl rollout undo` goes back to) and the desired-replicas and
//! max-replicas annotations (which tell a scaling of the Deployment from a rollout: scaling
//! spreads proportionally over the active ReplicaSets). `minReadySeconds` goes to the
//! ReplicaSets, which count a pod available after it; paused Deployments scale but do not roll;
//! old ReplicaSets beyond `revisionHistoryLimit` are deleted once empty. The status
//! (observedGeneration, replicas, updatedReplicas, readyReplicas, availableReplicas,
//! unavailableReplicas and the Available and Progressing conditions) is what `kubectl rollout
//! status` waits on. Scaling is recorded as `ScalingReplicaSet` events.
//!
//! The decisions are in [`sync`] and [`util`]; this module reads the caches, adopts and
//! releases ReplicaSets, and makes the writes of a [`sync::Plan`], remembering them until the
//! ReplicaSet watch has shown them so that the next decision is not made on a stale cache.

pub mod sync;
pub mod util;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{future, stream, StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::{self, applier, trigger_self, trigger_with, Action};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Resource, ResourceExt};
use serde_json::json;

use crate::events::EventType;
use crate::replicaset::expectations::EXPECTATION_TTL;
use crate::replicaset::logic::{self, Claim};
use crate::replicaset::{api_message, is_already_exists, is_conflict, is_not_found, log_applier_error, Retries};
use crate::{Context, Error, Result};
use sync::{Input, Plan, PlannedEvent};

const COMPONENT: &str = "deployment-controller";

/// How long a Deployment waits, at most, between two syncs when nothing happens.
const RESYNC: Duration = Duration::from_secs(600);

struct State {
    ctx: Arc<Context>,
    replicasets: Store<ReplicaSet>,
    pods: Store<Pod>,
    pending: Arc<Pending>,
    retries: Retries,
}

/// Runs the Deployment controller until its watches end.
///
/// Like the ReplicaSet controller, it is kube-runtime's `applier` fed by hand: ReplicaSets map
/// to their controller (orphans to the Deployments whose selector picks them), pods to the
/// Recreate Deployment of their ReplicaSet, which waits for old pods to be gone.
pub async fn run(ctx: Arc<Context>) -> anyhow::Result<()> {
    let client = ctx.client.clone();
    let (deployments, d_writer) = reflector::store::<Deployment>();
    let (replicasets, rs_writer) = reflector::store::<ReplicaSet>();
    let (pods, pod_writer) = reflector::store::<Pod>();
    let pending = Arc::new(Pending::default());

    let forget = pending.clone();
    let d_events = watcher(Api::<Deployment>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .modify(|d| d.managed_fields_mut().clear())
        .reflect(d_writer)
        .inspect_ok(move |event| {
            if let watcher::Event::Delete(d) = event {
                forget.forget(d.uid().as_deref().unwrap_or_default());
            }
        })
        .touched_objects();
    let rs_events = watcher(Api::<ReplicaSet>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .modify(|rs| rs.managed_fields_mut().clear())
        .reflect(rs_writer)
        .touched_objects();
    let pod_events = watcher(Api::<Pod>::all(client), watcher::Config::default())
        .default_backoff()
        .modify(slim_pod)
        .reflect(pod_writer)
        .touched_objects();
    let rs_mapper = {
        let deployments = deployments.clone();
        move |rs: ReplicaSet| deployments_for_replicaset(&rs, &deployments)
    };
    let pod_mapper = {
        let deployments = deployments.clone();
        let replicasets = replicasets.clone();
        move |pod: Pod| recreate_deployment_for_pod(&pod, &replicasets, &deployments)
    };
    let queue = stream::select(
        trigger_self(d_events, ()),
        stream::select(trigger_with(rs_events, rs_mapper), trigger_with(pod_events, pod_mapper)),
    );
    let state = Arc::new(State { ctx, replicasets, pods, pending, retries: Retries::default() });
    applier(
        |d, state| Box::pin(reconcile(d, state)),
        error_policy,
        state,
        deployments,
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
    anyhow::bail!("the Deployment watches ended")
}

/// Keeps of a pod what this controller reads: its metadata and phase.
fn slim_pod(pod: &mut Pod) {
    pod.metadata.managed_fields = None;
    pod.metadata.annotations = None;
    pod.spec = None;
    let phase = pod.status.as_ref().and_then(|s| s.phase.clone());
    pod.status = Some(PodStatus { phase, ..Default::default() });
}

fn is_deployment_ref(r: &k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference) -> bool {
    r.kind == "Deployment" && logic::is_apps(&r.api_version)
}

/// The Deployments a ReplicaSet event concerns: its controller, or, for an orphan, those of its
/// namespace whose selector picks it.
fn deployments_for_replicaset(rs: &ReplicaSet, deployments: &Store<Deployment>) -> Vec<ObjectRef<Deployment>> {
    let ns = rs.namespace().unwrap_or_default();
    if let Some(owner) = logic::controller_ref(&rs.metadata) {
        return if is_deployment_ref(owner) { vec![ObjectRef::new(&owner.name).within(&ns)] } else { Vec::new() };
    }
    if rs.metadata.deletion_timestamp.is_some() {
        return Vec::new();
    }
    deployments
        .state()
        .iter()
        .filter(|d| d.namespace().as_deref() == Some(ns.as_str()))
        .filter(|d| {
            d.spec
                .as_ref()
                .and_then(|s| logic::selector(&s.selector).ok())
                .is_some_and(|s| !s.is_empty() && logic::matches(&s, &rs.metadata))
        })
        .map(|d| ObjectRef::from_obj(d.as_ref()))
        .collect()
}

/// The Recreate Deployment whose ReplicaSet owns this pod, if any.
fn recreate_deployment_for_pod(
    pod: &Pod,
    replicasets: &Store<ReplicaSet>,
    deployments: &Store<Deployment>,
) -> Option<ObjectRef<Deployment>> {
    let ns = pod.namespace().unwrap_or_default();
    let owner = logic::controller_ref(&pod.metadata).filter(|r| r.kind == "ReplicaSet")?;
    let rs = replicasets.get(&ObjectRef::new(&owner.name).within(&ns))?;
    let d_owner = logic::controller_ref(&rs.metadata).filter(|r| is_deployment_ref(r))?;
    let d_ref = ObjectRef::new(&d_owner.name).within(&ns);
    let d = deployments.get(&d_ref)?;
    (!util::is_rolling_update(&d)).then_some(d_ref)
}

async fn reconcile(d: Arc<Deployment>, state: Arc<State>) -> Result<Action> {
    state.replicasets.wait_until_ready().await.map_err(|e| Error::Other(e.to_string()))?;
    state.pods.wait_until_ready().await.map_err(|e| Error::Other(e.to_string()))?;
    let result = sync_deployment(&d, &state).await;
    state.retries.done(d.uid().as_deref().unwrap_or_default(), result.is_ok());
    result
}

fn error_policy(d: Arc<Deployment>, error: &Error, state: Arc<State>) -> Action {
    Action::requeue(state.retries.next(d.uid().as_deref().unwrap_or_default(), error))
}

/// One sync of a Deployment (upstream's `syncDeployment`).
async fn sync_deployment(d: &Deployment, state: &State) -> Result<Action> {
    let ns = d.namespace().unwrap_or_default();
    let name = d.name_any();
    let uid = d.uid().unwrap_or_default();
    if let Err(wait) = state.pending.satisfied(&uid, &ns, &state.replicasets) {
        return Ok(Action::requeue(wait.min(Duration::from_secs(1))));
    }
    let Some(spec) = d.spec.as_ref() else {
        return Ok(Action::await_change());
    };
    let selector = match logic::selector(&spec.selector) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(deployment = %format!("{ns}/{name}"), error = %e, "invalid selector");
            return Ok(Action::await_change());
        }
    };
    let client = state.ctx.client.clone();
    let deleting = d.metadata.deletion_timestamp.is_some();

    // The ReplicaSets it owns, adopting and releasing as the selector says.
    let rs_api: Api<ReplicaSet> = Api::namespaced(client.clone(), &ns);
    let mut owned: Vec<ReplicaSet> = Vec::new();
    if !selector.is_empty() {
        let mut can_adopt: Option<bool> = None;
        for rs in state.replicasets.state().iter().filter(|rs| rs.namespace().as_deref() == Some(ns.as_str())) {
            match logic::claim(&uid, deleting, &selector, &rs.metadata) {
                Claim::Owned => owned.push(rs.as_ref().clone()),
                Claim::Adopt => {
                    if can_adopt.is_none() {
                        let fresh = Api::<Deployment>::namespaced(client.clone(), &ns).get_opt(&name).await?;
                        can_adopt =
                            Some(fresh.is_some_and(|f| f.uid() == d.uid() && f.metadata.deletion_timestamp.is_none()));
                    }
                    if can_adopt == Some(true) {
                        let mut refs = rs.metadata.owner_references.clone().unwrap_or_default();
                        refs.push(logic::new_controller_ref("apps/v1", "Deployment", &d.metadata));
                        let patch =
                            json!({"metadata": {"resourceVersion": rs.resource_version(), "ownerReferences": refs}});
                        match rs_api.patch(&rs.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await {
                            Ok(adopted) => owned.push(adopted),
                            Err(e) if is_not_found(&e) => {}
                            Err(e) => return Err(e.into()),
                        }
                    }
                }
                Claim::Release => {
                    let refs: Vec<_> =
                        rs.metadata.owner_references.iter().flatten().filter(|r| r.uid != uid).cloned().collect();
                    let patch =
                        json!({"metadata": {"resourceVersion": rs.resource_version(), "ownerReferences": refs}});
                    match rs_api.patch(&rs.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await {
                        Ok(_) => {}
                        Err(e) if is_not_found(&e) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                Claim::Ignore => {}
            }
        }
    }
    let owned_uids: HashSet<String> = owned.iter().filter_map(|rs| rs.uid()).collect();
    let mut pod_phases: HashMap<String, Vec<Option<String>>> = HashMap::new();
    for pod in state.pods.state().iter().filter(|p| p.namespace().as_deref() == Some(ns.as_str())) {
        if let Some(owner) = logic::controller_ref(&pod.metadata).filter(|r| owned_uids.contains(&r.uid)) {
            let phase = pod.status.as_ref().and_then(|s| s.phase.clone());
            pod_phases.entry(owner.uid.clone()).or_default().push(phase);
        }
    }
    let plan = sync::plan(Input { deployment: d, replica_sets: owned, pod_phases, now: Timestamp::now() });
    execute(d, plan, state).await
}

/// Makes the writes of a plan, in order; stops at the first that fails.
async fn execute(d: &Deployment, plan: Plan, state: &State) -> Result<Action> {
    let ns = d.namespace().unwrap_or_default();
    let name = d.name_any();
    let uid = d.uid().unwrap_or_default();
    let client = state.ctx.client.clone();
    let rs_api: Api<ReplicaSet> = Api::namespaced(client.clone(), &ns);
    let d_api: Api<Deployment> = Api::namespaced(client, &ns);
    let d_ref = d.object_ref(&());
    let recorder = &state.ctx.recorder;
    let record = |written: Option<&str>| record_events(recorder, &d_ref, &plan.events, written.map(str::to_string));

    if let Some(rs) = &plan.create {
        let rs_name = rs.name_any();
        match rs_api.create(&PostParams::default(), rs).await {
            Ok(_) => {
                state.pending.add(&uid, Expect::Exists(rs_name.clone()));
                record(Some(&rs_name)).await;
            }
            Err(e) if is_already_exists(&e) => return existing_replicaset(d, rs, &rs_api, &d_api, state).await,
            Err(e) if matches!(&e, kube::Error::Api(s) if s.code == 403 && s.message.contains("being terminated")) => {
                return Ok(Action::await_change());
            }
            Err(e) => {
                let message = format!("Failed to create new replica set {rs_name:?}: {}", api_message(&e));
                if util::has_progress_deadline(d) {
                    let mut status = d.status.clone().unwrap_or_default();
                    let cond = util::new_condition(
                        "Progressing",
                        "False",
                        "ReplicaSetCreateError",
                        message.clone(),
                        Timestamp::now(),
                    );
                    util::set_condition(&mut status, cond);
                    let patch = json!({"metadata": {"resourceVersion": d.resource_version()}, "status": {"conditions": status.conditions}});
                    let _ = d_api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)).await;
                }
                recorder.record(&d_ref, COMPONENT, EventType::Warning, "ReplicaSetCreateError", &message).await;
                return Err(e.into());
            }
        }
    }
    for rs in &plan.updates {
        let rs_name = rs.name_any();
        let rv = rs.resource_version().unwrap_or_default();
        let spec = rs.spec.clone().unwrap_or_default();
        let patch = json!({
            "metadata": {"resourceVersion": rv, "annotations": rs.metadata.annotations},
            "spec": {"replicas": spec.replicas, "minReadySeconds": spec.min_ready_seconds},
        });
        rs_api.patch(&rs_name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
        state.pending.add(&uid, Expect::Changed(rs_name.clone(), rv));
        record(Some(&rs_name)).await;
    }
    for rs in &plan.deletes {
        let rs_name = rs.name_any();
        let params = DeleteParams {
            preconditions: Some(Preconditions { uid: rs.uid(), resource_version: rs.resource_version() }),
            ..Default::default()
        };
        match rs_api.delete(&rs_name, &params).await {
            Ok(_) => state.pending.add(&uid, Expect::Gone(rs_name)),
            // Gone already, or changed since: the next sync decides again.
            Err(e) if is_not_found(&e) || is_conflict(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(status) = &plan.status {
        let current = serde_json::to_value(d.status.clone().unwrap_or_default()).unwrap_or_default();
        let desired = serde_json::to_value(status).unwrap_or_default();
        let patch = json!({
            "metadata": {"resourceVersion": d.resource_version()},
            "status": logic::status_merge_patch(&current, &desired),
        });
        match d_api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => return Ok(Action::await_change()),
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(revision) = &plan.revision {
        let patch = json!({"metadata": {"annotations": {util::REVISION: revision}}});
        match d_api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => return Ok(Action::await_change()),
            Err(e) => return Err(e.into()),
        }
    }
    record(None).await;
    Ok(Action::requeue(plan.requeue_after.map_or(RESYNC, |after| after.min(RESYNC))))
}

/// Records the planned events that follow the write of `written` (or no write).
async fn record_events(
    recorder: &crate::events::Recorder,
    d_ref: &k8s_openapi::api::core::v1::ObjectReference,
    events: &[PlannedEvent],
    written: Option<String>,
) {
    for e in events.iter().filter(|e| e.after_write_of == written) {
        recorder.record(d_ref, COMPONENT, e.type_, e.reason, &e.message).await;
    }
}

/// The new ReplicaSet's name is taken: by the ReplicaSet this sync wanted (the cache had not
/// shown it yet), or by another template (a hash collision: count it in `status.collisionCount`,
/// which changes the next hash).
async fn existing_replicaset(
    d: &Deployment,
    wanted: &ReplicaSet,
    rs_api: &Api<ReplicaSet>,
    d_api: &Api<Deployment>,
    state: &State,
) -> Result<Action> {
    let uid = d.uid().unwrap_or_default();
    let rs_name = wanted.name_any();
    let template = d.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
    match rs_api.get_opt(&rs_name).await? {
        Some(rs)
            if logic::controller_ref(&rs.metadata).is_some_and(|r| r.uid == uid)
                && rs
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.as_ref())
                    .is_some_and(|t| util::equal_ignore_hash(t, &template)) =>
        {
            state.pending.add(&uid, Expect::Exists(rs_name));
            Ok(Action::requeue(Duration::from_millis(200)))
        }
        Some(_) => {
            let count = d.status.as_ref().and_then(|s| s.collision_count).unwrap_or(0) + 1;
            tracing::info!(deployment = %d.name_any(), replicaset = %rs_name, count, "pod-template-hash collision");
            let patch =
                json!({"metadata": {"resourceVersion": d.resource_version()}, "status": {"collisionCount": count}});
            d_api.patch_status(&d.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await?;
            Ok(Action::requeue(Duration::from_millis(100)))
        }
        None => Ok(Action::requeue(Duration::from_millis(200))),
    }
}

/// A write to a ReplicaSet the cache must show before the next decision.
#[derive(Debug)]
enum Expect {
    /// Created: the cache must have it.
    Exists(String),
    /// Updated from this resourceVersion: the cache must have another.
    Changed(String, String),
    /// Deleted: the cache must not have it.
    Gone(String),
}

/// The Deployment controller's expectations: its ReplicaSet writes, per Deployment uid, until the
/// ReplicaSet cache shows them (or [`EXPECTATION_TTL`] passes).
#[derive(Default)]
struct Pending {
    inner: Mutex<HashMap<String, (Instant, Vec<Expect>)>>,
}

impl Pending {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Vec<Expect>)>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn add(&self, owner: &str, expect: Expect) {
        let mut inner = self.lock();
        let entry = inner.entry(owner.to_string()).or_insert_with(|| (Instant::now(), Vec::new()));
        entry.0 = Instant::now();
        entry.1.push(expect);
    }

    fn satisfied(&self, owner: &str, ns: &str, cache: &Store<ReplicaSet>) -> Result<(), Duration> {
        let mut inner = self.lock();
        let Some((since, expects)) = inner.get_mut(owner) else {
            return Ok(());
        };
        expects.retain(|e| {
            let cached = |name: &str| cache.get(&ObjectRef::new(name).within(ns));
            match e {
                Expect::Exists(name) => cached(name).is_none(),
                Expect::Changed(name, rv) => cached(name).is_some_and(|rs| rs.resource_version().as_ref() == Some(rv)),
                Expect::Gone(name) => cached(name).is_some(),
            }
        });
        let elapsed = since.elapsed();
        if expects.is_empty() || elapsed >= EXPECTATION_TTL {
            inner.remove(owner);
            return Ok(());
        }
        Err(EXPECTATION_TTL - elapsed)
    }

    fn forget(&self, owner: &str) {
        let mut inner = self.lock();
        inner.remove(owner);
        inner.retain(|_, (since, _)| since.elapsed() < EXPECTATION_TTL);
    }
}
