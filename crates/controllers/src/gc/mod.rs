//! Garbage collection: cascading deletion through `metadata.ownerReferences`, as upstream's
//! garbage collector (kubernetes/pkg/controller/garbagecollector) does it, for every served
//! resource — including ones discovered at run time.
//!
//! - Discovery finds every resource that supports list, watch and delete; a metadata watch of
//!   each feeds one task that keeps the dependency graph ([`graph`]): who owns whom.
//! - The graph's changes queue work: *attempt to delete* an object whose owner went away (or
//!   that an owner deleted in the foreground waits for), *attempt to orphan* the dependents of
//!   an owner deleted with the `orphan` finalizer.
//! - The workers check with live GETs (never only the cache) and act with the minimum:
//!   a DELETE with a UID precondition, or a merge patch of ownerReferences or finalizers
//!   guarded by the resourceVersion it was computed from. The decisions are pure
//!   ([`decide`]).
//!
//! Background: a dependent none of whose owners exists any more (by UID: an object with the
//! same name and another UID is another object) is deleted, in the background, so chains
//! cascade. Foreground: the dependents of an owner deleted with `foregroundDeletion` are
//! deleted (recursively in the foreground if they have dependents), and once no dependent with
//! `blockOwnerDeletion` is left the finalizer is removed. Orphan: the owner's reference is
//! removed from each dependent, then the `orphan` finalizer. A namespaced dependent's owners
//! are looked up in its namespace (or cluster-wide for cluster-scoped kinds); a cluster-scoped
//! dependent referring to a namespaced kind is never collected (an `OwnerRefInvalidNamespace`
//! Warning is recorded, as for cross-namespace references).

mod decide;
mod graph;
mod queue;
mod resources;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{
    Api, DeleteParams, DynamicObject, PartialObjectMeta, Patch, PatchParams, Preconditions, PropagationPolicy,
};
use kube::core::GroupVersion;
use kube::runtime::{watcher, WatchStreamExt};
use serde_json::json;
use tokio::sync::{mpsc, Notify};
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;

use crate::events::EventType;
use crate::Context;
use decide::{Decision, OwnerState};
use graph::{Graph, Identity, Observed, Work, FOREGROUND, ORPHAN};
use queue::WorkQueue;
use resources::{GroupVersionResources, Registry, Resource};

/// The component named in the Events the collector records.
const COMPONENT: &str = "garbage-collector-controller";
/// Workers deleting (and checking) objects.
const DELETE_WORKERS: usize = 8;
/// Workers orphaning dependents.
const ORPHAN_WORKERS: usize = 2;
/// Dependents patched at the same time when orphaning.
const ORPHAN_CONCURRENCY: usize = 8;
/// How often discovery runs again to find new resources.
const DISCOVERY_PERIOD: Duration = Duration::from_secs(60);
/// At most one discovery in this interval, however many unknown kinds turn up.
const DISCOVERY_MIN_INTERVAL: Duration = Duration::from_secs(5);
/// How often owners still waiting (foreground, orphan) and unverified owners are checked again
/// from the graph (no relist).
const RESYNC_PERIOD: Duration = Duration::from_secs(300);
/// Retries after failures: from this delay, doubling...
const RETRY_BASE: Duration = Duration::from_millis(50);
/// ... up to this one.
const RETRY_MAX: Duration = Duration::from_secs(300);
/// Owners verified absent, remembered to spare repeated GETs while their dependents go.
const ABSENT_CACHE_SIZE: usize = 1000;

/// Runs the garbage collector until the future is dropped.
pub async fn run(ctx: Arc<Context>) -> anyhow::Result<()> {
    let registry = discover_until_done(&ctx.client).await;
    let (events_tx, events_rx) = mpsc::channel(4096);
    let gc = Arc::new(Gc {
        ctx,
        graph: Mutex::new(Graph::default()),
        registry: RwLock::new(Arc::new(registry)),
        deletes: WorkQueue::new(RETRY_BASE, RETRY_MAX),
        orphans: WorkQueue::new(RETRY_BASE, RETRY_MAX),
        absent: Mutex::new(AbsentCache::new(ABSENT_CACHE_SIZE)),
        events: events_tx,
        rediscover: Notify::new(),
    });
    let mut tasks = JoinSet::new();
    let mut monitors: HashMap<String, AbortHandle> = HashMap::new();
    let initial: HashSet<String> = gc.registry().watched().keys().cloned().collect();
    gc.start_monitors(&mut tasks, &mut monitors);
    let (synced_tx, mut synced_rx) = tokio::sync::watch::channel(false);
    tasks.spawn(gc.clone().build_graph(events_rx, initial, synced_tx));
    for q in [0, 1] {
        let gc = gc.clone();
        tasks.spawn(async move {
            let queue = if q == 0 { &gc.deletes } else { &gc.orphans };
            queue.pump_retries().await;
            Ok(())
        });
    }

    // The workers start once the graph holds every object: orphaning or finishing a foreground
    // deletion with a partial graph would miss dependents.
    tokio::select! {
        r = synced_rx.wait_for(|s| *s) => { r?; }
        r = tasks.join_next() => return task_ended(r),
    }
    tracing::info!(objects = gc.graph().len(), "garbage collector synced");
    for _ in 0..DELETE_WORKERS {
        tasks.spawn(gc.clone().delete_worker());
    }
    for _ in 0..ORPHAN_WORKERS {
        tasks.spawn(gc.clone().orphan_worker());
    }

    let mut last_discovery = Instant::now();
    let mut resync = tokio::time::interval_at(Instant::now() + RESYNC_PERIOD, RESYNC_PERIOD);
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(last_discovery + DISCOVERY_PERIOD) => {}
            _ = gc.rediscover.notified() => {
                tokio::time::sleep_until(last_discovery + DISCOVERY_MIN_INTERVAL).await;
            }
            _ = resync.tick() => {
                let work = gc.graph().resync();
                gc.dispatch(work);
                continue;
            }
            r = tasks.join_next() => {
                match r {
                    Some(Err(e)) if e.is_cancelled() => continue,
                    other => return task_ended(other),
                }
            }
        }
        last_discovery = Instant::now();
        match discover(&gc.ctx.client).await {
            Ok(registry) => {
                *gc.registry.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(registry);
                gc.start_monitors(&mut tasks, &mut monitors);
            }
            Err(e) => tracing::warn!(error = %e, "garbage collector: discovery failed"),
        }
    }
}

fn task_ended(r: Option<Result<anyhow::Result<()>, tokio::task::JoinError>>) -> anyhow::Result<()> {
    match r {
        Some(Ok(Err(e))) => Err(e),
        Some(Err(e)) => Err(anyhow::anyhow!("garbage collector task failed: {e}")),
        _ => Err(anyhow::anyhow!("garbage collector task ended")),
    }
}

/// What the watches (and the workers' verifications) tell the graph.
enum GraphEvent {
    /// Added or modified; `listing` while a watch (re)lists.
    Apply {
        source: Arc<str>,
        obj: Observed,
        listing: bool,
    },
    Deleted {
        uid: String,
    },
    ListStarted {
        source: Arc<str>,
    },
    ListDone {
        source: Arc<str>,
    },
    /// The resource cannot be listed (forbidden, gone): do not wait for it.
    Unlistable {
        source: Arc<str>,
    },
    /// A live GET found nothing with this identity's UID.
    VirtualDelete(Identity),
}

/// Whether a worker is done with an item or wants it retried.
enum Outcome {
    Done,
    Retry,
}

/// What a live lookup of one owner reference found.
enum Lookup {
    State(OwnerState),
    /// The kind is not served (yet): discovery runs again.
    Unknown,
    /// A cluster-scoped dependent refers to a namespaced kind: never collected.
    Invalid,
}

struct Gc {
    ctx: Arc<Context>,
    graph: Mutex<Graph>,
    registry: RwLock<Arc<Registry>>,
    deletes: WorkQueue,
    orphans: WorkQueue,
    absent: Mutex<AbsentCache>,
    events: mpsc::Sender<GraphEvent>,
    rediscover: Notify,
}

impl Gc {
    fn graph(&self) -> std::sync::MutexGuard<'_, Graph> {
        self.graph.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn registry(&self) -> Arc<Registry> {
        self.registry.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn absent(&self) -> std::sync::MutexGuard<'_, AbsentCache> {
        self.absent.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The resource of `api_version`/`kind`; when unknown, asks for a new discovery.
    fn resolve(&self, api_version: &str, kind: &str) -> Option<Arc<Resource>> {
        let found = self.registry().resolve(api_version, kind);
        if found.is_none() {
            tracing::debug!(api_version, kind, "garbage collector: unknown kind, running discovery again");
            self.rediscover.notify_one();
        }
        found
    }

    fn api(&self, res: &Resource, namespace: &str) -> Api<DynamicObject> {
        if res.namespaced {
            Api::namespaced_with(self.ctx.client.clone(), namespace, &res.ar)
        } else {
            Api::all_with(self.ctx.client.clone(), &res.ar)
        }
    }

    /// Starts a watch of every watched resource that has none; stops those no longer served.
    fn start_monitors(
        self: &Arc<Self>,
        tasks: &mut JoinSet<anyhow::Result<()>>,
        monitors: &mut HashMap<String, AbortHandle>,
    ) {
        let registry = self.registry();
        monitors.retain(|key, handle| {
            let keep = registry.watched().contains_key(key);
            if !keep {
                tracing::info!(resource = %key, "garbage collector: resource no longer served");
                handle.abort();
            }
            keep
        });
        for (key, res) in registry.watched() {
            if !monitors.contains_key(key) {
                let handle = tasks.spawn(self.clone().monitor(key.as_str().into(), res.clone()));
                monitors.insert(key.clone(), handle);
            }
        }
    }

    /// Watches the metadata of one resource and forwards the changes to the graph.
    async fn monitor(self: Arc<Self>, source: Arc<str>, res: Arc<Resource>) -> anyhow::Result<()> {
        let api: Api<PartialObjectMeta<DynamicObject>> = Api::all_with(self.ctx.client.clone(), &res.ar);
        let mut stream = watcher::watcher(api, watcher::Config::default()).default_backoff().boxed();
        let mut failing = false;
        loop {
            let event = match stream.try_next().await {
                Ok(Some(e)) => e,
                Ok(None) => return Ok(()),
                Err(e) => {
                    if is_unlistable(&e) {
                        let _ = self.events.send(GraphEvent::Unlistable { source: source.clone() }).await;
                    }
                    if !failing {
                        tracing::warn!(resource = %source, error = %e, "garbage collector: watch failed");
                    }
                    failing = true;
                    continue;
                }
            };
            failing = false;
            let observed = |m: &PartialObjectMeta<DynamicObject>| {
                Observed::from_meta(&res.ar.api_version, &res.ar.kind, &m.metadata)
            };
            let ev = match event {
                watcher::Event::Init => GraphEvent::ListStarted { source: source.clone() },
                watcher::Event::InitDone => GraphEvent::ListDone { source: source.clone() },
                watcher::Event::InitApply(m) | watcher::Event::Apply(m) if observed(&m).is_none() => continue,
                watcher::Event::InitApply(m) => {
                    GraphEvent::Apply { source: source.clone(), obj: observed(&m).expect("checked"), listing: true }
                }
                watcher::Event::Apply(m) => {
                    GraphEvent::Apply { source: source.clone(), obj: observed(&m).expect("checked"), listing: false }
                }
                watcher::Event::Delete(m) => match m.metadata.uid {
                    Some(uid) => GraphEvent::Deleted { uid },
                    None => continue,
                },
            };
            if self.events.send(ev).await.is_err() {
                return Ok(());
            }
        }
    }

    /// Applies the watches' events to the graph and queues the work they call for; signals
    /// `synced` once every resource in `pending` has been listed.
    async fn build_graph(
        self: Arc<Self>,
        mut events: mpsc::Receiver<GraphEvent>,
        mut pending: HashSet<String>,
        synced: tokio::sync::watch::Sender<bool>,
    ) -> anyhow::Result<()> {
        let mut listing: HashMap<Arc<str>, HashSet<String>> = HashMap::new();
        if pending.is_empty() {
            let _ = synced.send(true);
        }
        while let Some(ev) = events.recv().await {
            let work = match ev {
                GraphEvent::Apply { source, obj, listing: is_listing } => {
                    if is_listing {
                        listing.entry(source.clone()).or_default().insert(obj.identity.uid.clone());
                    }
                    self.graph().observe(obj, &source)
                }
                GraphEvent::Deleted { uid } => self.graph().observe_deleted(&uid),
                GraphEvent::ListStarted { source } => {
                    listing.insert(source, HashSet::new());
                    Vec::new()
                }
                GraphEvent::ListDone { source } => {
                    let seen = listing.remove(&source).unwrap_or_default();
                    if pending.remove(&*source) && pending.is_empty() {
                        let _ = synced.send(true);
                    }
                    self.graph().relisted(&source, &seen)
                }
                GraphEvent::Unlistable { source } => {
                    if pending.remove(&*source) {
                        tracing::warn!(resource = %source, "garbage collector: cannot list, not waiting for it");
                        if pending.is_empty() {
                            let _ = synced.send(true);
                        }
                    }
                    Vec::new()
                }
                GraphEvent::VirtualDelete(identity) => self.graph().virtual_delete(&identity),
            };
            self.dispatch(work);
        }
        Ok(())
    }

    fn dispatch(&self, work: Vec<Work>) {
        for w in work {
            match w {
                Work::Delete(uid) => self.deletes.add(uid),
                Work::Orphan(uid) => self.orphans.add(uid),
                Work::InvalidNamespace { dependent, owner_uid } => {
                    let owner = self.graph().get(&owner_uid).map(|n| n.identity.clone());
                    if let Some(owner) = owner {
                        let ctx = self.ctx.clone();
                        tokio::spawn(async move { report_invalid_namespace(&ctx, &dependent, &owner).await });
                    }
                }
            }
        }
    }

    async fn delete_worker(self: Arc<Self>) -> anyhow::Result<()> {
        loop {
            let uid = self.deletes.get().await;
            match self.attempt_to_delete(&uid).await {
                Ok(Outcome::Done) => self.deletes.forget(&uid),
                Ok(Outcome::Retry) => self.deletes.add_after_failure(uid.clone()),
                Err(e) => {
                    tracing::debug!(uid, error = %e, "garbage collector: will retry");
                    self.deletes.add_after_failure(uid.clone());
                }
            }
            self.deletes.done(&uid);
        }
    }

    async fn orphan_worker(self: Arc<Self>) -> anyhow::Result<()> {
        loop {
            let uid = self.orphans.get().await;
            match self.attempt_to_orphan(&uid).await {
                Ok(Outcome::Done) => self.orphans.forget(&uid),
                Ok(Outcome::Retry) => self.orphans.add_after_failure(uid.clone()),
                Err(e) => {
                    tracing::debug!(uid, error = %e, "garbage collector: will retry orphaning");
                    self.orphans.add_after_failure(uid.clone());
                }
            }
            self.orphans.done(&uid);
        }
    }

    /// Upstream's `attemptToDeleteItem`: verifies a virtual node, finishes a foreground
    /// deletion, or deletes (or cleans up the references of) a dependent whose owners are gone.
    async fn attempt_to_delete(&self, uid: &str) -> Result<Outcome, kube::Error> {
        let (identity, observed) = {
            let g = self.graph();
            let Some(n) = g.get(uid) else { return Ok(Outcome::Done) };
            if n.observed && !n.deleting_dependents && (n.being_deleted || n.owners.is_empty()) {
                // Being deleted is a one-way trip; without owners there is nothing to collect.
                return Ok(Outcome::Done);
            }
            (n.identity.clone(), n.observed)
        };
        let Some(res) = self.resolve(&identity.api_version, &identity.kind) else { return Ok(Outcome::Retry) };
        if res.namespaced && identity.namespace.is_empty() {
            // Only a cluster-scoped dependent refers to a namespaced owner without namespace.
            self.virtual_delete(identity).await;
            return Ok(Outcome::Done);
        }
        let latest = self.api(&res, &identity.namespace).get_metadata_opt(&identity.name).await?;
        let Some(latest) = latest.filter(|l| l.metadata.uid.as_deref() == Some(uid)) else {
            self.virtual_delete(identity).await;
            return Ok(Outcome::Done);
        };
        if !observed {
            // It exists: the watch will report it.
            return Ok(Outcome::Retry);
        }
        let meta = &latest.metadata;
        let finalizers = meta.finalizers.clone().unwrap_or_default();
        if meta.deletion_timestamp.is_some() {
            if finalizers.iter().any(|f| f == FOREGROUND) {
                return self.finish_foreground(&identity, &res, &latest).await;
            }
            return Ok(Outcome::Done);
        }
        let refs = meta.owner_references.clone().unwrap_or_default();
        if refs.is_empty() {
            return Ok(Outcome::Done);
        }
        let mut states = Vec::with_capacity(refs.len());
        for r in &refs {
            match self.owner_state(&identity, r).await? {
                Lookup::State(s) => states.push((r.uid.clone(), s)),
                Lookup::Unknown => return Ok(Outcome::Retry),
                Lookup::Invalid => {
                    let owner = Identity::of_reference(&r.into(), "");
                    report_invalid_namespace(&self.ctx, &identity, &owner).await;
                    return Ok(Outcome::Done);
                }
            }
        }
        let (has_dependents, dependent_waiting) = {
            let g = self.graph();
            (g.get(uid).is_some_and(|n| !n.dependents.is_empty()), g.has_dependent_deleting_dependents(uid))
        };
        let api = self.api(&res, &identity.namespace);
        let rv = meta.resource_version.as_deref();
        match decide::decide(&states, has_dependents, dependent_waiting, &finalizers) {
            Decision::Keep => Ok(Outcome::Done),
            Decision::RemoveReferences(uids) => {
                let Some(kept) = decide::references_without(&refs, &uids) else { return Ok(Outcome::Done) };
                tracing::debug!(object = %identity, removed = ?uids, "garbage collector: removing owner references");
                let patch = decide::metadata_patch(rv, "ownerReferences", json!(kept));
                patched(api.patch_metadata(&identity.name, &PatchParams::default(), &Patch::Merge(&patch)).await)
            }
            Decision::DeleteForeground { unblock_first } => {
                if unblock_first {
                    if let Some(unblocked) = decide::references_unblocked(&refs) {
                        let patch = decide::metadata_patch(rv, "ownerReferences", json!(unblocked));
                        let r =
                            api.patch_metadata(&identity.name, &PatchParams::default(), &Patch::Merge(&patch)).await;
                        if let Outcome::Retry = patched(r)? {
                            return Ok(Outcome::Retry);
                        }
                    }
                }
                self.delete(&api, &identity, PropagationPolicy::Foreground).await
            }
            Decision::Delete(policy) => self.delete(&api, &identity, policy).await,
        }
    }

    /// The owner of a foreground deletion: once no dependent blocks it, its finalizer goes;
    /// until then its blocking dependents are (re)checked.
    async fn finish_foreground(
        &self,
        identity: &Identity,
        res: &Resource,
        latest: &PartialObjectMeta<DynamicObject>,
    ) -> Result<Outcome, kube::Error> {
        let blocking = self.graph().blocking_dependents(&identity.uid);
        if blocking.is_empty() {
            tracing::debug!(object = %identity, "garbage collector: dependents gone, removing foregroundDeletion");
            let api = self.api(res, &identity.namespace);
            return remove_finalizer(&api, identity, Some(latest), FOREGROUND).await;
        }
        for (dep, waiting) in blocking {
            if !waiting {
                self.deletes.add(dep);
            }
        }
        Ok(Outcome::Done)
    }

    /// Looks an owner up with a live GET where the reference points (the dependent's
    /// namespace, or cluster-wide).
    async fn owner_state(
        &self,
        dependent: &Identity,
        r: &k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
    ) -> Result<Lookup, kube::Error> {
        let Some(res) = self.resolve(&r.api_version, &r.kind) else { return Ok(Lookup::Unknown) };
        if res.namespaced && dependent.namespace.is_empty() {
            return Ok(Lookup::Invalid);
        }
        let namespace = if res.namespaced { dependent.namespace.as_str() } else { "" };
        let owner = Identity::of_reference(&r.into(), namespace);
        if self.absent().contains(&absent_key(&owner)) {
            return Ok(Lookup::State(OwnerState::Dangling));
        }
        let found = self.api(&res, namespace).get_metadata_opt(&r.name).await?;
        match found {
            Some(o) if o.metadata.uid.as_deref() == Some(r.uid.as_str()) => {
                let waiting = o.metadata.deletion_timestamp.is_some()
                    && o.metadata.finalizers.iter().flatten().any(|f| f == FOREGROUND);
                Ok(Lookup::State(if waiting { OwnerState::Waiting } else { OwnerState::Solid }))
            }
            _ => {
                self.absent().insert(absent_key(&owner));
                Ok(Lookup::State(OwnerState::Dangling))
            }
        }
    }

    async fn delete(
        &self,
        api: &Api<DynamicObject>,
        identity: &Identity,
        policy: PropagationPolicy,
    ) -> Result<Outcome, kube::Error> {
        tracing::debug!(object = %identity, ?policy, "garbage collector: deleting");
        let dp = DeleteParams {
            propagation_policy: Some(policy),
            preconditions: Some(Preconditions { uid: Some(identity.uid.clone()), resource_version: None }),
            ..DeleteParams::default()
        };
        match api.delete(&identity.name, &dp).await {
            Ok(_) => Ok(Outcome::Done),
            Err(e) if status(&e) == Some(404) => Ok(Outcome::Done),
            Err(e) if status(&e) == Some(409) => Ok(Outcome::Retry),
            Err(e) => Err(e),
        }
    }

    async fn virtual_delete(&self, identity: Identity) {
        let _ = self.events.send(GraphEvent::VirtualDelete(identity)).await;
    }

    /// Upstream's `attemptToOrphan`: removes the owner from its dependents' references, then
    /// its `orphan` finalizer.
    async fn attempt_to_orphan(&self, uid: &str) -> Result<Outcome, kube::Error> {
        let (owner, dependents) = {
            let g = self.graph();
            let Some(n) = g.get(uid) else { return Ok(Outcome::Done) };
            (n.identity.clone(), g.dependents(uid))
        };
        let results: Vec<Result<Outcome, kube::Error>> = futures::stream::iter(dependents)
            .map(|dep| self.remove_reference(dep, uid))
            .buffer_unordered(ORPHAN_CONCURRENCY)
            .collect()
            .await;
        let mut retry = false;
        for r in results {
            match r {
                Ok(Outcome::Done) => {}
                Ok(Outcome::Retry) => retry = true,
                Err(e) => return Err(e),
            }
        }
        if retry {
            return Ok(Outcome::Retry);
        }
        let Some(res) = self.resolve(&owner.api_version, &owner.kind) else { return Ok(Outcome::Retry) };
        tracing::debug!(object = %owner, "garbage collector: dependents orphaned, removing the orphan finalizer");
        remove_finalizer(&self.api(&res, &owner.namespace), &owner, None, ORPHAN).await
    }

    /// Removes the reference to `owner_uid` from `dependent`, retrying on conflicts.
    async fn remove_reference(&self, dependent: Identity, owner_uid: &str) -> Result<Outcome, kube::Error> {
        let Some(res) = self.resolve(&dependent.api_version, &dependent.kind) else { return Ok(Outcome::Retry) };
        let api = self.api(&res, &dependent.namespace);
        for _ in 0..3 {
            let Some(latest) = api.get_metadata_opt(&dependent.name).await? else { return Ok(Outcome::Done) };
            if latest.metadata.uid.as_deref() != Some(dependent.uid.as_str()) {
                return Ok(Outcome::Done);
            }
            let refs = latest.metadata.owner_references.clone().unwrap_or_default();
            let Some(kept) = decide::references_without(&refs, &[owner_uid.to_string()]) else {
                return Ok(Outcome::Done);
            };
            let patch =
                decide::metadata_patch(latest.metadata.resource_version.as_deref(), "ownerReferences", json!(kept));
            match patched(api.patch_metadata(&dependent.name, &PatchParams::default(), &Patch::Merge(&patch)).await)? {
                Outcome::Done => return Ok(Outcome::Done),
                Outcome::Retry => continue,
            }
        }
        Ok(Outcome::Retry)
    }
}

/// Removes `finalizer` from the object (read again unless `latest` is given), retrying on
/// conflicts.
async fn remove_finalizer(
    api: &Api<DynamicObject>,
    identity: &Identity,
    latest: Option<&PartialObjectMeta<DynamicObject>>,
    finalizer: &str,
) -> Result<Outcome, kube::Error> {
    let mut given = latest.cloned();
    for _ in 0..3 {
        let latest = match given.take() {
            Some(l) => l,
            None => match api.get_metadata_opt(&identity.name).await? {
                Some(l) => l,
                None => return Ok(Outcome::Done),
            },
        };
        if latest.metadata.uid.as_deref() != Some(identity.uid.as_str()) {
            return Ok(Outcome::Done);
        }
        let Some(kept) =
            decide::finalizers_without(latest.metadata.finalizers.as_deref().unwrap_or_default(), finalizer)
        else {
            return Ok(Outcome::Done);
        };
        let patch = decide::metadata_patch(latest.metadata.resource_version.as_deref(), "finalizers", json!(kept));
        match patched(api.patch_metadata(&identity.name, &PatchParams::default(), &Patch::Merge(&patch)).await)? {
            Outcome::Done => return Ok(Outcome::Done),
            Outcome::Retry => continue,
        }
    }
    Ok(Outcome::Retry)
}

/// The outcome of a guarded patch: a conflict is retried, a vanished object is done.
fn patched<T>(r: Result<T, kube::Error>) -> Result<Outcome, kube::Error> {
    match r {
        Ok(_) => Ok(Outcome::Done),
        Err(e) if status(&e) == Some(404) => Ok(Outcome::Done),
        Err(e) if status(&e) == Some(409) => Ok(Outcome::Retry),
        Err(e) => Err(e),
    }
}

fn status(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// A list that fails for good: the resource is forbidden or no longer served.
fn is_unlistable(e: &watcher::Error) -> bool {
    match e {
        watcher::Error::InitialListFailed(e) | watcher::Error::WatchStartFailed(e) => {
            matches!(status(e), Some(403..=405))
        }
        _ => false,
    }
}

/// Records the Warning upstream records for a reference to an owner in another namespace (or
/// to a namespaced kind from a cluster-scoped object).
async fn report_invalid_namespace(ctx: &Context, dependent: &Identity, owner: &Identity) {
    let object = ObjectReference {
        api_version: Some(dependent.api_version.clone()),
        kind: Some(dependent.kind.clone()),
        name: Some(dependent.name.clone()),
        namespace: Some(dependent.namespace.clone()).filter(|n| !n.is_empty()),
        uid: Some(dependent.uid.clone()),
        ..ObjectReference::default()
    };
    let message = format!(
        "ownerRef [{}/{}, namespace: {}, name: {}, uid: {}] does not exist in namespace \"{}\"",
        owner.api_version, owner.kind, dependent.namespace, owner.name, owner.uid, dependent.namespace
    );
    ctx.recorder.record(&object, COMPONENT, EventType::Warning, "OwnerRefInvalidNamespace", &message).await;
}

/// Owners verified absent, by group, kind, namespace, name and UID. UIDs are never reused, so
/// an entry never becomes wrong; the cache only saves GETs, bounded to the latest entries.
struct AbsentCache {
    set: HashSet<AbsentKey>,
    order: VecDeque<AbsentKey>,
    capacity: usize,
}

type AbsentKey = (String, String, String, String, String);

fn absent_key(owner: &Identity) -> AbsentKey {
    (owner.group().to_string(), owner.kind.clone(), owner.namespace.clone(), owner.name.clone(), owner.uid.clone())
}

impl AbsentCache {
    fn new(capacity: usize) -> AbsentCache {
        AbsentCache { set: HashSet::new(), order: VecDeque::new(), capacity }
    }

    fn insert(&mut self, key: AbsentKey) {
        if self.set.insert(key.clone()) {
            self.order.push_back(key);
            while self.order.len() > self.capacity {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }

    fn contains(&self, key: &AbsentKey) -> bool {
        self.set.contains(key)
    }
}

/// Discovers the served resources, retrying until it works.
async fn discover_until_done(client: &kube::Client) -> Registry {
    let mut delay = Duration::from_millis(500);
    loop {
        match discover(client).await {
            Ok(r) => return r,
            Err(e) => {
                tracing::warn!(error = %e, "garbage collector: discovery failed, retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Discovery: every version of every group. A group that fails is skipped (and found again by
/// a later discovery); the core group must answer.
async fn discover(client: &kube::Client) -> Result<Registry, kube::Error> {
    let mut versions = Vec::new();
    let core = client.list_core_api_versions().await?;
    for (i, v) in core.versions.iter().enumerate() {
        let gv = GroupVersion { group: String::new(), version: v.clone() };
        let g = kube::discovery::pinned_group(client, &gv).await?;
        versions.push(GroupVersionResources { preferred: i == 0, resources: g.versioned_resources(v) });
    }
    for group in client.list_api_groups().await?.groups {
        let preferred = group.preferred_version.as_ref().map(|p| p.version.clone());
        for (i, v) in group.versions.iter().enumerate() {
            let gv = GroupVersion { group: group.name.clone(), version: v.version.clone() };
            match kube::discovery::pinned_group(client, &gv).await {
                Ok(g) => versions.push(GroupVersionResources {
                    preferred: preferred.as_deref().map_or(i == 0, |p| p == v.version),
                    resources: g.versioned_resources(&v.version),
                }),
                Err(e) => {
                    tracing::warn!(group_version = %v.group_version, error = %e, "garbage collector: discovery of a group failed")
                }
            }
        }
    }
    Ok(Registry::new(versions))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_absent_cache_keeps_the_latest_entries() {
        let mut c = AbsentCache::new(2);
        let key = |n: &str| ("".to_string(), "ConfigMap".to_string(), "ns".to_string(), n.to_string(), n.to_string());
        c.insert(key("a"));
        c.insert(key("b"));
        c.insert(key("a"));
        assert!(c.contains(&key("a")) && c.contains(&key("b")));
        c.insert(key("c"));
        assert!(!c.contains(&key("a")) && c.contains(&key("b")) && c.contains(&key("c")));
    }

    #[test]
    fn absent_keys_tell_coordinates_apart() {
        let a = Identity {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            namespace: "ns".into(),
            name: "rs".into(),
            uid: "u".into(),
        };
        let other_version = Identity { api_version: "apps/v1beta2".into(), ..a.clone() };
        let other_name = Identity { name: "rs2".into(), ..a.clone() };
        assert_eq!(absent_key(&a), absent_key(&other_version));
        assert_ne!(absent_key(&a), absent_key(&other_name));
    }

    #[test]
    fn unlistable_errors() {
        let api_error =
            |code| kube::Error::Api(Box::new(kube::core::Status { code, ..kube::core::Status::failure("x", "y") }));
        assert!(is_unlistable(&watcher::Error::InitialListFailed(api_error(403))));
        assert!(!is_unlistable(&watcher::Error::InitialListFailed(api_error(500))));
        assert!(status(&api_error(409)) == Some(409));
    }
}
