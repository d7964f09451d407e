//! The DaemonSet controller: one pod of each DaemonSet on every eligible node — the nodes its
//! template's nodeSelector and node affinity match and whose NoSchedule/NoExecute taints it
//! tolerates (with the tolerations every daemon pod gets) — created when a node appears, deleted
//! when the node goes or stops qualifying; a RollingUpdate replaces pods whose template hash is
//! out of date, at most maxUnavailable nodes at a time (or maxSurge extra pods); the status
//! counts what `kubectl get ds` and `kubectl rollout status ds/...` read. podnet deploys its own
//! node components (the service proxy) this way.
//!
//! Like upstream, a daemon pod is created with the required node affinity `metadata.name In
//! [node]` and no `spec.nodeName`: the scheduler binds it. That keeps one place deciding where
//! pods may go (readiness, cordons, taints), gives daemon pods the same PodScheduled condition
//! and events as other pods, and works with any scheduler, kube-scheduler included. It does mean
//! that daemon pods stay Pending when no scheduler runs (`--controllers` without `scheduler`).
//!
//! ControllerRevisions are not served, so the template's hash goes straight into the pods'
//! `controller-revision-hash` label. Pods get names derived from the DaemonSet, the node and the
//! hash, so a create repeated after a restart or ahead of the watch fails with AlreadyExists
//! instead of making a second pod; pods just deleted are remembered until the watch shows them
//! terminating, so a rolling update never takes down more than it may. The decisions are the
//! pure functions of [`plan`].

pub mod plan;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{stream, StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::{applier, trigger_self, Action, Config as ApplierConfig, ReconcileRequest};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Resource;
use podnet_meta::labels::Selector;
use serde_json::json;

use crate::events::EventType;
use crate::scheduler::{api_code, log_outcome, predicates, ready, reflected};
use crate::{Context, Error, Result};
use plan::{Deletion, Plan};

const COMPONENT: &str = "daemonset-controller";

/// How many pod creations or deletions run at once.
const BURST: usize = 16;

struct Daemons {
    ctx: Arc<Context>,
    pods: Store<Pod>,
    nodes: Store<Node>,
    /// Pods this controller deleted that the watch has not shown terminating yet: uid → (where,
    /// whether at once).
    deleted: Mutex<HashMap<String, (ObjectRef<Pod>, bool)>>,
}

/// The DaemonSet's selector; `None` when it is missing or invalid (such a DaemonSet manages nothing).
fn selector_of(ds: &DaemonSet) -> Option<Selector> {
    let value = serde_json::to_value(&ds.spec.as_ref()?.selector).ok()?;
    Selector::from_label_selector(&value).ok().flatten().filter(|s| !s.is_empty())
}

fn labels_match(selector: &Selector, pod: &Pod) -> bool {
    let labels = pod.metadata.labels.as_ref();
    selector.matches_lookup(|k| labels.and_then(|l| l.get(k)).map(String::as_str))
}

pub async fn run(ctx: Arc<Context>) -> anyhow::Result<()> {
    let client = ctx.client.clone();
    let (daemonsets, ds_events) = reflected(Api::<DaemonSet>::all(client.clone()));
    let (pods, pod_events) = reflected(Api::<Pod>::all(client.clone()));
    let (nodes, node_events) = reflected(Api::<Node>::all(client));

    // A pod concerns its DaemonSet, or, when it has no controller, the DaemonSets that may adopt it.
    let owners = daemonsets.clone();
    let pod_trigger = pod_events
        .touched_objects()
        .map_ok(move |pod: Pod| {
            let ns = pod.metadata.namespace.clone().unwrap_or_default();
            let refs: Vec<ObjectRef<DaemonSet>> = if let Some(owner) = plan::daemonset_owner(&pod) {
                vec![ObjectRef::new(&owner.name).within(&ns)]
            } else if !plan::has_controller(&pod) {
                owners
                    .state()
                    .iter()
                    .filter(|ds| ds.metadata.namespace.as_deref() == Some(ns.as_str()))
                    .filter(|ds| selector_of(ds).is_some_and(|s| labels_match(&s, &pod)))
                    .map(|ds| ObjectRef::from_obj(ds.as_ref()))
                    .collect()
            } else {
                Vec::new()
            };
            stream::iter(refs.into_iter().map(|r| Ok::<_, watcher::Error>(ReconcileRequest::from(r))))
        })
        .try_flatten();
    // A node appearing, going or changing may change where every DaemonSet runs.
    let all = daemonsets.clone();
    let node_trigger = node_events
        .touched_objects()
        .map_ok(move |_node: Node| {
            let refs: Vec<_> = all.state().iter().map(|ds| Ok(ObjectRef::from_obj(ds.as_ref()).into())).collect();
            stream::iter(refs)
        })
        .try_flatten();
    let queue =
        stream::select(trigger_self(ds_events.applied_objects(), ()), stream::select(pod_trigger, node_trigger));
    let state = Arc::new(Daemons { ctx, pods, nodes, deleted: Mutex::new(HashMap::new()) });
    applier(
        |ds, state: Arc<Daemons>| Box::pin(async move { state.sync(ds).await }),
        |_ds, _err, _state| Action::requeue(Duration::from_secs(2)),
        state,
        daemonsets,
        queue,
        ApplierConfig::default(),
    )
    .for_each(|outcome| {
        log_outcome("daemonset", outcome);
        std::future::ready(())
    })
    .await;
    Ok(())
}

impl Daemons {
    async fn sync(&self, ds: Arc<DaemonSet>) -> Result<Action> {
        if ds.metadata.deletion_timestamp.is_some() {
            return Ok(Action::await_change());
        }
        ready(&self.pods).await?;
        ready(&self.nodes).await?;
        let ns = ds.metadata.namespace.clone().unwrap_or_default();
        let name = ds.metadata.name.clone().unwrap_or_default();
        let uid = ds.metadata.uid.clone().unwrap_or_default();
        let Some(selector) = selector_of(&ds) else {
            tracing::warn!(daemonset = %format!("{ns}/{name}"), "no usable selector: managing nothing");
            return Ok(Action::await_change());
        };
        let hash = plan::template_hash(&ds);
        let now = Timestamp::now();

        // The pods it controls, adopting the orphans its selector matches.
        let mut owned: Vec<Pod> = Vec::new();
        for pod in self.pods.state() {
            if pod.metadata.namespace.as_deref() != Some(ns.as_str()) {
                continue;
            }
            match plan::daemonset_owner(&pod) {
                Some(owner) if owner.uid == uid => owned.push((*pod).clone()),
                Some(_) => {}
                None if !plan::has_controller(&pod)
                    && pod.metadata.deletion_timestamp.is_none()
                    && labels_match(&selector, &pod) =>
                {
                    if let Some(adopted) = self.adopt(&ds, &pod).await? {
                        owned.push(adopted);
                    }
                }
                None => {}
            }
        }
        // Pods deleted a moment ago count as terminating even if the watch has not said so.
        {
            let mut deleted = self.deleted.lock().unwrap_or_else(|p| p.into_inner());
            deleted.retain(|uid, (at, _)| {
                self.pods.get(at).is_some_and(|p| {
                    p.metadata.uid.as_deref() == Some(uid.as_str()) && p.metadata.deletion_timestamp.is_none()
                })
            });
            for pod in &mut owned {
                let Some((_, forced)) = pod.metadata.uid.as_ref().and_then(|u| deleted.get(u)) else { continue };
                if pod.metadata.deletion_timestamp.is_none() {
                    pod.metadata.deletion_timestamp = Some(Time(now));
                    pod.metadata.deletion_grace_period_seconds = Some(if *forced { 0 } else { 30 });
                }
            }
        }
        let mut nodes = self.nodes.state();
        nodes.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        let node_refs: Vec<&Node> = nodes.iter().map(|n| n.as_ref()).collect();
        let pod_refs: Vec<&Pod> = owned.iter().collect();
        let plan = plan::plan(&ds, &hash, &node_refs, &pod_refs, now);
        if !plan.create.is_empty() || !plan.delete.is_empty() {
            tracing::debug!(daemonset = %format!("{ns}/{name}"), plan = %plan::summary(&plan), "syncing");
        }
        let result = self.execute(&ds, &hash, &plan).await;
        self.write_status(&ds, &plan, result.is_ok()).await?;
        result?;
        Ok(plan.requeue_after.map(Action::requeue).unwrap_or_else(Action::await_change))
    }

    /// Takes an orphan pod the selector matches, as upstream's ControllerRefManager does; the
    /// pod's resourceVersion guards against it changing meanwhile.
    async fn adopt(&self, ds: &DaemonSet, pod: &Pod) -> Result<Option<Pod>> {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        let name = pod.metadata.name.as_deref().unwrap_or("");
        let mut refs = pod.metadata.owner_references.clone().unwrap_or_default();
        refs.push(plan::controller_ref(ds));
        let patch = json!({"metadata": {"ownerReferences": refs, "resourceVersion": pod.metadata.resource_version}});
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), ns);
        match api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(adopted) => {
                tracing::info!(pod = %format!("{ns}/{name}"), daemonset = ?ds.metadata.name, "adopted");
                Ok(Some(adopted))
            }
            Err(e) if matches!(api_code(&e), Some(404) | Some(409)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn execute(&self, ds: &DaemonSet, hash: &str, plan: &Plan) -> Result<()> {
        let reference = ds.object_ref(&());
        for (kind, reason, message) in &plan.events {
            self.ctx.recorder.record(&reference, COMPONENT, *kind, reason, message).await;
        }
        // The futures are collected first: a stream holding the mapping closures would not be Send.
        let creates: Vec<_> = plan.create.iter().map(|node| self.create(ds, node, hash)).collect();
        let mut results: Vec<Result<()>> = stream::iter(creates).buffer_unordered(BURST).collect().await;
        let deletes: Vec<_> = plan.delete.iter().map(|d| self.delete(ds, d)).collect();
        results.extend(stream::iter(deletes).buffer_unordered(BURST).collect::<Vec<_>>().await);
        results.into_iter().collect()
    }

    async fn create(&self, ds: &DaemonSet, node: &str, hash: &str) -> Result<()> {
        let ns = ds.metadata.namespace.as_deref().unwrap_or("");
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), ns);
        let mut pod = plan::new_pod(ds, node, hash);
        let name = pod.metadata.name.clone().unwrap_or_default();
        let reference = ds.object_ref(&());
        let created = match api.create(&PostParams::default(), &pod).await {
            Err(e) if api_code(&e) == Some(409) => {
                // Made already (the watch is behind), or, rarely, the name is someone else's.
                let existing = api.get_opt(&name).await?;
                let ours = existing.as_ref().is_some_and(|p| {
                    plan::daemonset_owner(p).is_some_and(|o| Some(&o.uid) == ds.metadata.uid.as_ref())
                        && predicates::target_node_name(p).as_deref() == Some(node)
                });
                if ours || existing.is_none() {
                    // Ours; or it was deleted meanwhile, and the next sync sees to it.
                    return Ok(());
                }
                pod.metadata.generate_name = Some(format!("{}-", ds.metadata.name.as_deref().unwrap_or("")));
                pod.metadata.name = None;
                api.create(&PostParams::default(), &pod).await
            }
            other => other,
        };
        match created {
            Ok(pod) => {
                let name = pod.metadata.name.unwrap_or_default();
                let message = format!("Created pod: {name}");
                self.ctx.recorder.record(&reference, COMPONENT, EventType::Normal, "SuccessfulCreate", &message).await;
                Ok(())
            }
            Err(e) => {
                let message = format!("Error creating: {}", status_message(&e));
                self.ctx.recorder.record(&reference, COMPONENT, EventType::Warning, "FailedCreate", &message).await;
                Err(e.into())
            }
        }
    }

    async fn delete(&self, ds: &DaemonSet, deletion: &Deletion) -> Result<()> {
        let ns = ds.metadata.namespace.as_deref().unwrap_or("");
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), ns);
        let params = DeleteParams {
            grace_period_seconds: deletion.force.then_some(0),
            preconditions: Some(Preconditions { uid: Some(deletion.uid.clone()), resource_version: None }),
            ..Default::default()
        };
        let reference = ds.object_ref(&());
        match api.delete(&deletion.name, &params).await {
            Ok(_) => {
                self.deleted
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(deletion.uid.clone(), (ObjectRef::new(&deletion.name).within(ns), deletion.force));
                let message = format!("Deleted pod: {}", deletion.name);
                self.ctx.recorder.record(&reference, COMPONENT, EventType::Normal, "SuccessfulDelete", &message).await;
                Ok(())
            }
            // Gone already, or another pod by that name now.
            Err(e) if matches!(api_code(&e), Some(404) | Some(409)) => Ok(()),
            Err(e) => {
                let message = format!("Error deleting: {}", status_message(&e));
                self.ctx.recorder.record(&reference, COMPONENT, EventType::Warning, "FailedDelete", &message).await;
                Err(e.into())
            }
        }
    }

    /// Writes the status when it changed; the generation counts as observed only when the sync
    /// went through.
    async fn write_status(&self, ds: &DaemonSet, plan: &Plan, synced: bool) -> Result<()> {
        let mut wanted = plan.status.clone();
        if !synced {
            wanted.observed_generation = ds.status.as_ref().and_then(|s| s.observed_generation);
        }
        if !plan::status_differs(ds.status.as_ref(), &wanted) {
            return Ok(());
        }
        let patch = json!({"status": {
            "desiredNumberScheduled": wanted.desired_number_scheduled,
            "currentNumberScheduled": wanted.current_number_scheduled,
            "numberMisscheduled": wanted.number_misscheduled,
            "numberReady": wanted.number_ready,
            "updatedNumberScheduled": wanted.updated_number_scheduled,
            "numberAvailable": wanted.number_available,
            "numberUnavailable": wanted.number_unavailable,
            "observedGeneration": wanted.observed_generation,
        }});
        let ns = ds.metadata.namespace.as_deref().unwrap_or("");
        let api: Api<DaemonSet> = Api::namespaced(self.ctx.client.clone(), ns);
        match api
            .patch_status(ds.metadata.name.as_deref().unwrap_or(""), &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if api_code(&e) == Some(404) => Ok(()),
            Err(e) => Err(Error::from(e)),
        }
    }
}

/// The message of an API error, without the client's decoration.
fn status_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    }
}
