//! What a DaemonSet wants, as pure functions: which nodes should run its pod, the pod for a
//! node, the template hash, which pods to create and delete (including the rolling update with
//! maxUnavailable or maxSurge) and the status — upstream's `manage`, `rollingUpdate` and
//! `updateDaemonSetStatus`, computed from one snapshot of nodes and pods.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod, PodSpec, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use sha2::{Digest, Sha256};

use crate::events::EventType;
use crate::scheduler::predicates::{self, NO_EXECUTE, NO_SCHEDULE};

/// The label holding the hash of the template a pod was made from.
pub const HASH_LABEL: &str = "controller-revision-hash";

/// The characters of generated names (no vowels, no look-alikes), as upstream's
/// `rand.SafeEncodeString`.
const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn encode(digest: &[u8], len: usize) -> String {
    let mut n = u128::from_be_bytes(digest[..16].try_into().expect("a digest has 16 bytes"));
    (0..len)
        .map(|_| {
            let c = ALPHABET[(n % ALPHABET.len() as u128) as usize] as char;
            n /= ALPHABET.len() as u128;
            c
        })
        .collect()
}

/// The hash of a DaemonSet's pod template, the value of the pods' `controller-revision-hash`.
pub fn template_hash(ds: &DaemonSet) -> String {
    let template = serde_json::to_vec(&ds.spec.as_ref().map(|s| &s.template)).expect("a template serializes");
    encode(&Sha256::digest(&template), 10)
}

/// The name of the DaemonSet's pod for `node` at template `hash`: the DaemonSet's name and a
/// suffix derived from the three, so that creating the same pod twice (after a restart, or
/// before the watch shows the first) fails with AlreadyExists instead of making two.
pub fn pod_name(ds: &DaemonSet, node: &str, hash: &str) -> String {
    let name = ds.metadata.name.as_deref().unwrap_or("");
    let uid = ds.metadata.uid.as_deref().unwrap_or("");
    let digest = Sha256::digest(format!("{uid}/{node}/{hash}").as_bytes());
    // As generateName does: at most 58 characters of base, then 5 of suffix.
    let base: String = format!("{name}-").chars().take(58).collect();
    format!("{base}{}", encode(&digest, 5))
}

/// The reference a DaemonSet's pods carry to it.
pub fn controller_ref(ds: &DaemonSet) -> OwnerReference {
    OwnerReference {
        api_version: "apps/v1".into(),
        kind: "DaemonSet".into(),
        name: ds.metadata.name.clone().unwrap_or_default(),
        uid: ds.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The uid of the pod's controller, when it is a DaemonSet.
pub fn daemonset_owner(pod: &Pod) -> Option<&OwnerReference> {
    pod.metadata
        .owner_references
        .as_deref()?
        .iter()
        .find(|r| r.controller == Some(true))
        .filter(|r| r.kind == "DaemonSet" && r.api_version.starts_with("apps/"))
}

/// Whether the pod has a controller at all.
pub fn has_controller(pod: &Pod) -> bool {
    pod.metadata.owner_references.as_deref().unwrap_or(&[]).iter().any(|r| r.controller == Some(true))
}

fn add_or_update_toleration(tolerations: &mut Vec<Toleration>, key: &str, effect: &str) {
    let toleration = Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some(effect.into()),
        ..Default::default()
    };
    // Upstream's `AddOrUpdateTolerationInPodSpec`: an equal toleration is replaced, else added.
    let same = |t: &Toleration| {
        t.key == toleration.key
            && t.effect == toleration.effect
            && t.operator.as_deref().unwrap_or("Equal") == "Exists"
            && t.value.as_deref().unwrap_or("").is_empty()
    };
    match tolerations.iter_mut().find(|t| same(t)) {
        Some(existing) => *existing = toleration,
        None => tolerations.push(toleration),
    }
}

/// The tolerations every daemon pod gets (upstream's `AddOrUpdateDaemonPodTolerations`): it
/// stays on not-ready and unreachable nodes, and goes where disk, memory or PID pressure or a
/// cordon keep other pods away; a hostNetwork pod also goes where the network is not up yet.
pub fn add_daemon_tolerations(spec: &mut PodSpec) {
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    add_or_update_toleration(tolerations, predicates::TAINT_NOT_READY, NO_EXECUTE);
    add_or_update_toleration(tolerations, predicates::TAINT_UNREACHABLE, NO_EXECUTE);
    add_or_update_toleration(tolerations, predicates::TAINT_DISK_PRESSURE, NO_SCHEDULE);
    add_or_update_toleration(tolerations, predicates::TAINT_MEMORY_PRESSURE, NO_SCHEDULE);
    add_or_update_toleration(tolerations, predicates::TAINT_PID_PRESSURE, NO_SCHEDULE);
    add_or_update_toleration(tolerations, predicates::TAINT_UNSCHEDULABLE, NO_SCHEDULE);
    if spec.host_network == Some(true) {
        add_or_update_toleration(tolerations, predicates::TAINT_NETWORK_UNAVAILABLE, NO_SCHEDULE);
    }
}

/// The DaemonSet's pod spec with the daemon tolerations: what its pods are judged by.
pub fn daemon_pod_spec(ds: &DaemonSet) -> PodSpec {
    let mut spec = ds.spec.as_ref().and_then(|s| s.template.spec.clone()).unwrap_or_default();
    add_daemon_tolerations(&mut spec);
    spec
}

/// Pins a pod to a node the way upstream's `ReplaceDaemonSetPodNodeNameNodeAffinity` does: the
/// required node affinity becomes the single term `metadata.name In [node]` (the DaemonSet
/// controller has already checked the template's own affinity against the node); preferred
/// terms and other affinities stay.
pub fn pin_to_node(affinity: Option<Affinity>, node: &str) -> Affinity {
    let required = NodeSelector {
        node_selector_terms: vec![NodeSelectorTerm {
            match_fields: Some(vec![NodeSelectorRequirement {
                key: "metadata.name".into(),
                operator: "In".into(),
                values: Some(vec![node.into()]),
            }]),
            match_expressions: None,
        }],
    };
    let mut affinity = affinity.unwrap_or_default();
    let node_affinity = affinity.node_affinity.get_or_insert_with(NodeAffinity::default);
    node_affinity.required_during_scheduling_ignored_during_execution = Some(required);
    affinity
}

/// The DaemonSet's pod for `node`: the template with the hash label, the daemon tolerations,
/// the node affinity that pins it to the node (the scheduler binds it, as upstream), the
/// controller reference and a deterministic name (see [`pod_name`]).
pub fn new_pod(ds: &DaemonSet, node: &str, hash: &str) -> Pod {
    let template = ds.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
    let template_meta = template.metadata.unwrap_or_default();
    let mut labels = template_meta.labels.unwrap_or_default();
    labels.insert(HASH_LABEL.into(), hash.into());
    let metadata = ObjectMeta {
        name: Some(pod_name(ds, node, hash)),
        namespace: ds.metadata.namespace.clone(),
        labels: Some(labels),
        annotations: template_meta.annotations,
        finalizers: template_meta.finalizers,
        owner_references: Some(vec![controller_ref(ds)]),
        ..Default::default()
    };
    let mut spec = template.spec.unwrap_or_default();
    add_daemon_tolerations(&mut spec);
    spec.affinity = Some(pin_to_node(spec.affinity.take(), node));
    Pod { metadata, spec: Some(spec), status: None }
}

/// Whether a node should run the daemon pod, and whether a daemon pod already there may stay
/// (upstream's `NodeShouldRunDaemonPod`): the template's nodeName, nodeSelector and required
/// node affinity must match, and its NoSchedule and NoExecute taints be tolerated; a pod may
/// stay on a node whose untolerated taints are all NoSchedule.
pub fn should_run(spec: &PodSpec, node: &Node) -> (bool, bool) {
    let name = node.metadata.name.as_deref().unwrap_or("");
    if spec.node_name.as_deref().is_some_and(|n| !n.is_empty() && n != name) {
        return (false, false);
    }
    if !predicates::required_affinity_matches(spec, node) {
        return (false, false);
    }
    let taints = predicates::node_taints(node);
    let tolerations = spec.tolerations.as_deref().unwrap_or(&[]);
    if predicates::first_untolerated(taints, tolerations, &[NO_SCHEDULE, NO_EXECUTE]).is_some() {
        let evicted = predicates::first_untolerated(taints, tolerations, &[NO_EXECUTE]).is_some();
        return (false, !evicted);
    }
    (true, true)
}

fn ready_condition(pod: &Pod) -> Option<&k8s_openapi::api::core::v1::PodCondition> {
    pod.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready")
}

/// Whether the pod's Ready condition is True.
pub fn is_ready(pod: &Pod) -> bool {
    ready_condition(pod).is_some_and(|c| c.status == "True")
}

/// Whether the pod has been Ready for `min_ready_seconds` (upstream's `IsPodAvailable`).
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    let Some(ready) = ready_condition(pod).filter(|c| c.status == "True") else { return false };
    if min_ready_seconds <= 0 {
        return true;
    }
    ready
        .last_transition_time
        .as_ref()
        .is_some_and(|t| t.0.as_second() + i64::from(min_ready_seconds) < now.as_second())
}

fn is_deleting(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

fn is_updated(pod: &Pod, hash: &str) -> bool {
    pod.metadata.labels.as_ref().and_then(|l| l.get(HASH_LABEL)).is_some_and(|h| h == hash)
}

/// Upstream's `podByCreationTimestampAndPhase`: bound pods first, then the oldest, then by name.
fn sort_pods(pods: &mut [&Pod]) {
    pods.sort_by(|a, b| {
        let bound = |p: &Pod| p.spec.as_ref().and_then(|s| s.node_name.as_deref()).is_some_and(|n| !n.is_empty());
        bound(b)
            .cmp(&bound(a))
            .then_with(|| a.metadata.creation_timestamp.cmp(&b.metadata.creation_timestamp))
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
}

/// An IntOrString of maxUnavailable or maxSurge, scaled against `total` and rounded up.
pub fn scaled(value: Option<&IntOrString>, total: i32) -> i32 {
    match value {
        None => 0,
        Some(IntOrString::Int(n)) => (*n).max(0),
        Some(IntOrString::String(s)) => {
            let percent: i64 = s.trim_end_matches('%').trim().parse().unwrap_or(0);
            ((percent.max(0) * i64::from(total) + 99) / 100) as i32
        }
    }
}

/// A pod to delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deletion {
    pub name: String,
    pub uid: String,
    /// Delete at once (grace period 0): the pod's node is gone, so no node agent will finish a
    /// graceful deletion (upstream's pod GC does the same).
    pub force: bool,
}

/// What one sync of a DaemonSet does.
#[derive(Debug, Default)]
pub struct Plan {
    /// Nodes to create a pod for.
    pub create: Vec<String>,
    pub delete: Vec<Deletion>,
    /// Events to record about the DaemonSet: (type, reason, message).
    pub events: Vec<(EventType, &'static str, String)>,
    pub status: DaemonSetStatus,
    /// When to look again without a watch event (minReadySeconds passing).
    pub requeue_after: Option<Duration>,
}

impl Plan {
    fn delete(&mut self, pod: &Pod, force: bool) {
        let name = pod.metadata.name.clone().unwrap_or_default();
        if !self.delete.iter().any(|d| d.name == name) {
            self.delete.push(Deletion { name, uid: pod.metadata.uid.clone().unwrap_or_default(), force });
        }
    }
}

/// The newest and oldest non-deleting pods on a node by template (upstream's
/// `findUpdatedPodsOnNode`); `None` when there are two of one kind, which the manage step sorts out.
fn updated_and_old<'a>(pods: &[&'a Pod], hash: &str) -> Option<(Option<&'a Pod>, Option<&'a Pod>)> {
    let (mut new, mut old) = (None, None);
    for pod in pods.iter().filter(|p| !is_deleting(p)) {
        let slot = if is_updated(pod, hash) { &mut new } else { &mut old };
        if slot.is_some() {
            return None;
        }
        *slot = Some(*pod);
    }
    Some((new, old))
}

/// Plans one sync of `ds` (whose pods are `pods`, the ones it controls, pods it has just
/// deleted marked as deleting) over `nodes`, at template `hash`.
pub fn plan(ds: &DaemonSet, hash: &str, nodes: &[&Node], pods: &[&Pod], now: Timestamp) -> Plan {
    let mut plan = Plan::default();
    let spec = daemon_pod_spec(ds);
    let ds_spec = ds.spec.clone().unwrap_or_default();
    let min_ready = ds_spec.min_ready_seconds.unwrap_or(0);
    let strategy = ds_spec.update_strategy.unwrap_or_default();
    let rolling = strategy.type_.as_deref().unwrap_or("RollingUpdate") == "RollingUpdate";
    let rolling_params = strategy.rolling_update.unwrap_or_default();
    let surge_allowed = rolling && scaled(rolling_params.max_surge.as_ref(), 1) > 0;
    let ds_name = ds.metadata.name.as_deref().unwrap_or("");
    let ns = ds.metadata.namespace.as_deref().unwrap_or("");

    let mut by_node: BTreeMap<String, Vec<&Pod>> = BTreeMap::new();
    for pod in pods {
        if let Some(node) = predicates::target_node_name(pod) {
            by_node.entry(node).or_default().push(pod);
        }
    }
    for pods in by_node.values_mut() {
        sort_pods(pods);
    }
    let verdicts: BTreeMap<&str, (bool, bool)> =
        nodes.iter().map(|n| (n.metadata.name.as_deref().unwrap_or(""), should_run(&spec, n))).collect();

    // Manage: one pod on each node that should run it, none elsewhere.
    for (&node, &(run, keep)) in &verdicts {
        let daemon_pods = by_node.get(node).map(Vec::as_slice).unwrap_or(&[]);
        if run && daemon_pods.is_empty() {
            plan.create.push(node.to_string());
        } else if keep {
            let mut running = Vec::new();
            for pod in daemon_pods.iter().filter(|p| !is_deleting(p)) {
                let pod_name = pod.metadata.name.as_deref().unwrap_or("");
                match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
                    Some("Failed") => {
                        let m = format!("Found failed daemon pod {ns}/{pod_name} on node {node}, will try to kill it");
                        plan.events.push((EventType::Warning, "FailedDaemonPod", m));
                        plan.delete(pod, false);
                    }
                    Some("Succeeded") => {
                        let m =
                            format!("Found succeeded daemon pod {ns}/{pod_name} on node {node}, will try to delete it");
                        plan.events.push((EventType::Normal, "SucceededDaemonPod", m));
                        plan.delete(pod, false);
                    }
                    _ => running.push(*pod),
                }
            }
            if !surge_allowed {
                // More than one: keep the oldest.
                for pod in running.iter().skip(1) {
                    plan.delete(pod, false);
                }
            } else if running.is_empty() {
                if run {
                    plan.create.push(node.to_string());
                }
            } else if running.len() > 1 {
                // Surging: at most the oldest new pod and the oldest old one, and the old one
                // only while it is ready and the new one not yet available.
                let (mut oldest_new, mut oldest_old) = (None, None);
                for pod in &running {
                    let slot = if is_updated(pod, hash) { &mut oldest_new } else { &mut oldest_old };
                    if slot.is_none() {
                        *slot = Some(*pod);
                    } else {
                        plan.delete(pod, false);
                    }
                }
                if let (Some(new), Some(old)) = (oldest_new, oldest_old) {
                    if !is_ready(old) || is_available(new, min_ready, now) {
                        plan.delete(old, false);
                    }
                }
            }
        } else {
            for pod in daemon_pods.iter().filter(|p| !is_deleting(p)) {
                plan.delete(pod, false);
            }
        }
    }
    // Pods for nodes that are gone: nothing will ever run or finish them.
    for (node, daemon_pods) in &by_node {
        if !verdicts.contains_key(node.as_str()) {
            for pod in daemon_pods {
                let forced = pod.metadata.deletion_grace_period_seconds == Some(0);
                if !forced {
                    plan.delete(pod, true);
                }
            }
        }
    }

    // Status (before the rolling update, which needs desiredNumberScheduled).
    let mut status = DaemonSetStatus { observed_generation: ds.metadata.generation, ..Default::default() };
    let (mut available, mut updated) = (0, 0);
    for (&node, &(run, _)) in &verdicts {
        let daemon_pods = by_node.get(node).map(Vec::as_slice).unwrap_or(&[]);
        if run {
            status.desired_number_scheduled += 1;
            let Some(pod) = daemon_pods.first() else { continue };
            status.current_number_scheduled += 1;
            if is_ready(pod) {
                status.number_ready += 1;
                if is_available(pod, min_ready, now) {
                    available += 1;
                }
            }
            if is_updated(pod, hash) {
                updated += 1;
            }
        } else if !daemon_pods.is_empty() {
            status.number_misscheduled += 1;
        }
    }
    status.number_available = Some(available);
    status.updated_number_scheduled = Some(updated);
    status.number_unavailable = Some(status.desired_number_scheduled - available);
    if min_ready > 0 && status.number_ready != available {
        plan.requeue_after = Some(Duration::from_secs(min_ready as u64 + 1));
    }
    let desired = status.desired_number_scheduled;
    plan.status = status;

    if rolling {
        let mut max_unavailable = scaled(rolling_params.max_unavailable.as_ref(), desired);
        let max_surge = scaled(rolling_params.max_surge.as_ref(), desired);
        if desired > 0 && max_unavailable == 0 && max_surge == 0 {
            max_unavailable = 1;
        }
        let (to_delete, to_create) = if max_surge == 0 {
            rolling_update(&verdicts, &by_node, hash, min_ready, now, max_unavailable)
        } else {
            rolling_update_surge(&verdicts, &by_node, hash, min_ready, now, max_surge, desired)
        };
        for pod in to_delete {
            plan.delete(pod, false);
        }
        for node in to_create {
            if !plan.create.contains(&node) {
                plan.create.push(node);
            }
        }
    }
    tracing::trace!(ds = ds_name, creates = plan.create.len(), deletes = plan.delete.len(), "planned");
    plan
}

type Verdicts<'a> = BTreeMap<&'a str, (bool, bool)>;

/// Deletes old pods, at most `max_unavailable` nodes without an available daemon at a time
/// (upstream's `rollingUpdate` without surge). A node that should run the daemon and has no pod
/// counts as unavailable too, so a replacement being created is never overlooked.
fn rolling_update<'a>(
    verdicts: &Verdicts,
    by_node: &BTreeMap<String, Vec<&'a Pod>>,
    hash: &str,
    min_ready: i32,
    now: Timestamp,
    max_unavailable: i32,
) -> (Vec<&'a Pod>, Vec<String>) {
    let mut unavailable = 0;
    let mut replace_now = Vec::new();
    let mut candidates = Vec::new();
    for (&node, &(run, _)) in verdicts {
        let daemon_pods = by_node.get(node).map(Vec::as_slice).unwrap_or(&[]);
        if daemon_pods.is_empty() {
            if run {
                unavailable += 1;
            }
            continue;
        }
        match updated_and_old(daemon_pods, hash) {
            None | Some((None, None)) | Some((Some(_), Some(_))) => unavailable += 1,
            Some((Some(new), None)) => {
                if !is_available(new, min_ready, now) {
                    unavailable += 1;
                }
            }
            Some((None, Some(old))) => {
                if !is_available(old, min_ready, now) {
                    replace_now.push(old);
                } else if unavailable < max_unavailable {
                    candidates.push(old);
                }
            }
        }
    }
    let room = (max_unavailable - unavailable).max(0) as usize;
    replace_now.extend(candidates.into_iter().take(room));
    (replace_now, Vec::new())
}

/// Creates new pods beside old ones, at most `max_surge` at a time, and deletes an old pod once
/// the new one on its node is available (upstream's `rollingUpdate` with surge).
fn rolling_update_surge<'a>(
    verdicts: &Verdicts,
    by_node: &BTreeMap<String, Vec<&'a Pod>>,
    hash: &str,
    min_ready: i32,
    now: Timestamp,
    max_surge: i32,
    desired: i32,
) -> (Vec<&'a Pod>, Vec<String>) {
    let mut delete = Vec::new();
    let mut should_not_run = Vec::new();
    let mut candidates = Vec::new();
    let mut allowed = Vec::new();
    let (mut surging, mut available) = (0, 0);
    for (&node, &(run, _)) in verdicts {
        let daemon_pods = by_node.get(node).map(Vec::as_slice).unwrap_or(&[]);
        if daemon_pods.is_empty() {
            continue;
        }
        let Some((new, old)) = updated_and_old(daemon_pods, hash) else {
            surging += 1;
            continue;
        };
        if let Some(pod) = old.or(new) {
            if is_available(pod, min_ready, now) {
                available += 1;
            }
        }
        match (new, old) {
            (_, None) => {}
            (None, Some(old)) => {
                if !is_available(old, min_ready, now) {
                    if run {
                        allowed.push(node.to_string());
                    } else {
                        delete.push(old);
                    }
                } else if !run {
                    should_not_run.push(old);
                } else if surging < max_surge {
                    candidates.push(node.to_string());
                }
            }
            (Some(new), Some(old)) => {
                if is_available(new, min_ready, now) {
                    delete.push(old);
                } else {
                    surging += 1;
                }
            }
        }
    }
    let deletable = (available - desired).max(0) as usize;
    delete.extend(should_not_run.into_iter().take(deletable));
    let room = (max_surge - surging).max(0) as usize;
    allowed.extend(candidates.into_iter().take(room));
    (delete, allowed)
}

/// Whether the status differs in a field this controller owns.
pub fn status_differs(current: Option<&DaemonSetStatus>, wanted: &DaemonSetStatus) -> bool {
    let Some(c) = current else { return true };
    c.desired_number_scheduled != wanted.desired_number_scheduled
        || c.current_number_scheduled != wanted.current_number_scheduled
        || c.number_misscheduled != wanted.number_misscheduled
        || c.number_ready != wanted.number_ready
        || c.updated_number_scheduled.unwrap_or(0) != wanted.updated_number_scheduled.unwrap_or(0)
        || c.number_available.unwrap_or(0) != wanted.number_available.unwrap_or(0)
        || c.number_unavailable.unwrap_or(0) != wanted.number_unavailable.unwrap_or(0)
        || c.observed_generation.unwrap_or(0) < wanted.observed_generation.unwrap_or(0)
}

/// The names of the nodes in a plan's creations and the pods in its deletions, for logs.
pub fn summary(plan: &Plan) -> String {
    let creates: BTreeSet<&str> = plan.create.iter().map(String::as_str).collect();
    let deletes: BTreeSet<&str> = plan.delete.iter().map(|d| d.name.as_str()).collect();
    format!("create on {creates:?}, delete {deletes:?}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn ds(extra_spec: Value) -> DaemonSet {
        let mut spec = json!({
            "selector": {"matchLabels": {"app": "proxy"}},
            "template": {"metadata": {"labels": {"app": "proxy"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
        });
        for (k, v) in extra_spec.as_object().unwrap() {
            spec[k] = v.clone();
        }
        serde_json::from_value(json!({
            "metadata": {"name": "proxy", "namespace": "kube-system", "uid": "ds-uid", "generation": 3},
            "spec": spec,
        }))
        .unwrap()
    }

    fn node(name: &str) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]},
        }))
        .unwrap()
    }

    /// A pod of `ds` on `node` at `hash`, bound, created at second `age`, ready or not.
    fn pod(ds: &DaemonSet, node: &str, hash: &str, created: i64, ready: bool) -> Pod {
        let mut p = new_pod(ds, node, hash);
        p.metadata.uid = Some(format!("uid-{}", p.metadata.name.as_deref().unwrap()));
        p.metadata.creation_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::from_second(created).unwrap()));
        p.spec.as_mut().unwrap().node_name = Some(node.into());
        p.status = Some(
            serde_json::from_value(json!({"phase": "Running", "conditions": [
                {"type": "Ready", "status": if ready { "True" } else { "False" }, "lastTransitionTime": "2024-01-01T00:00:00Z"}
            ]}))
            .unwrap(),
        );
        p
    }

    fn now() -> Timestamp {
        Timestamp::from_second(2_000_000_000).unwrap()
    }

    #[test]
    fn hashes_and_names_are_stable() {
        let a = ds(json!({}));
        let h = template_hash(&a);
        assert_eq!(h.len(), 10);
        assert!(h.bytes().all(|b| ALPHABET.contains(&b)));
        assert_eq!(template_hash(&a), h);
        let mut b = a.clone();
        b.spec.as_mut().unwrap().template.spec.as_mut().unwrap().containers[0].image = Some("j".into());
        assert_ne!(template_hash(&b), h, "a template change changes the hash");
        let mut c = a.clone();
        c.spec.as_mut().unwrap().min_ready_seconds = Some(5);
        assert_eq!(template_hash(&c), h, "only the template counts");
        let name = pod_name(&a, "n1", &h);
        assert!(name.starts_with("proxy-") && name.len() == "proxy-".len() + 5, "{name}");
        assert_eq!(pod_name(&a, "n1", &h), name);
        assert_ne!(pod_name(&a, "n2", &h), name);
        assert_ne!(pod_name(&a, "n1", "other"), name);
        let mut long = a.clone();
        long.metadata.name = Some("x".repeat(80));
        assert_eq!(pod_name(&long, "n1", &h).len(), 63);
    }

    #[test]
    fn daemon_pods_are_pinned_and_tolerant() {
        let mut d = ds(json!({}));
        let t = &mut d.spec.as_mut().unwrap().template;
        t.spec.as_mut().unwrap().host_network = Some(true);
        t.spec.as_mut().unwrap().tolerations = Some(vec![serde_json::from_value(
            json!({"key": predicates::TAINT_NOT_READY, "operator": "Exists", "effect": "NoExecute"}),
        )
        .unwrap()]);
        t.spec.as_mut().unwrap().affinity = Some(
            serde_json::from_value(json!({"nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "a", "operator": "Exists"}]}]},
                "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 1, "preference": {"matchExpressions": [{"key": "b", "operator": "Exists"}]}}],
            }}))
            .unwrap(),
        );
        let p = new_pod(&d, "n1", "hhh");
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["metadata"]["labels"], json!({"app": "proxy", HASH_LABEL: "hhh"}));
        assert_eq!(v["metadata"]["namespace"], "kube-system");
        assert_eq!(
            v["metadata"]["ownerReferences"],
            json!([{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "proxy", "uid": "ds-uid", "controller": true, "blockOwnerDeletion": true}])
        );
        assert_eq!(
            v["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"],
            json!({"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]})
        );
        assert_eq!(
            v["spec"]["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["weight"],
            1
        );
        assert!(v["spec"].get("nodeName").is_none(), "the scheduler binds it");
        let keys: Vec<(String, String)> = p
            .spec
            .as_ref()
            .unwrap()
            .tolerations
            .as_ref()
            .unwrap()
            .iter()
            .map(|t| (t.key.clone().unwrap(), t.effect.clone().unwrap()))
            .collect();
        assert_eq!(keys.len(), 7, "the template's own not-ready toleration is replaced, not doubled: {keys:?}");
        assert!(keys.contains(&(predicates::TAINT_NETWORK_UNAVAILABLE.into(), "NoSchedule".into())));
        assert!(keys.contains(&(predicates::TAINT_UNSCHEDULABLE.into(), "NoSchedule".into())));
        assert_eq!(predicates::target_node_name(&p).as_deref(), Some("n1"));
    }

    #[test]
    fn which_nodes_run_the_daemon() {
        let d = ds(json!({}));
        let spec = daemon_pod_spec(&d);
        assert_eq!(should_run(&spec, &node("n1")), (true, true));
        let mut cordoned = node("n1");
        cordoned.spec = Some(serde_json::from_value(json!({"unschedulable": true})).unwrap());
        assert_eq!(should_run(&spec, &cordoned), (true, true), "daemons tolerate cordons");
        let mut not_ready = node("n1");
        not_ready.status =
            Some(serde_json::from_value(json!({"conditions": [{"type": "Ready", "status": "False"}]})).unwrap());
        assert_eq!(should_run(&spec, &not_ready), (true, true), "readiness is the scheduler's business");
        let mut no_schedule = node("n1");
        no_schedule.spec =
            Some(serde_json::from_value(json!({"taints": [{"key": "x", "effect": "NoSchedule"}]})).unwrap());
        assert_eq!(should_run(&spec, &no_schedule), (false, true), "stays, but no new one");
        let mut no_execute = node("n1");
        no_execute.spec =
            Some(serde_json::from_value(json!({"taints": [{"key": "x", "effect": "NoExecute"}]})).unwrap());
        assert_eq!(should_run(&spec, &no_execute), (false, false));
        let selective = ds(json!({"template": {"metadata": {"labels": {"app": "proxy"}}, "spec": {
            "containers": [{"name": "c", "image": "i"}], "nodeSelector": {"kubernetes.io/hostname": "n2"}}}}));
        let spec = daemon_pod_spec(&selective);
        assert_eq!(should_run(&spec, &node("n1")), (false, false));
        assert_eq!(should_run(&spec, &node("n2")), (true, true));
    }

    #[test]
    fn one_pod_per_node() {
        let d = ds(json!({}));
        let h = template_hash(&d);
        let (n1, n2, n3) = (node("n1"), node("n2"), node("n3"));
        let p1 = pod(&d, "n1", &h, 10, true);
        let gone = pod(&d, "n9", &h, 10, true);
        let mut extra = pod(&d, "n2", &h, 30, true);
        extra.metadata.name = Some("proxy-extra".into());
        let p2 = pod(&d, "n2", &h, 20, true);
        let pods = [&p1, &gone, &extra, &p2];
        let plan = plan(&d, &h, &[&n1, &n2, &n3], &pods, now());
        assert_eq!(plan.create, vec!["n3"]);
        let deleted: Vec<(&str, bool)> = plan.delete.iter().map(|d| (d.name.as_str(), d.force)).collect();
        assert!(deleted.contains(&("proxy-extra", false)), "the newer of two goes: {deleted:?}");
        assert!(deleted.contains(&(gone.metadata.name.as_deref().unwrap(), true)), "the node is gone: forced");
        assert_eq!(deleted.len(), 2);
        let s = &plan.status;
        assert_eq!(
            (s.desired_number_scheduled, s.current_number_scheduled, s.number_ready, s.number_misscheduled),
            (3, 2, 2, 0)
        );
        assert_eq!((s.number_available, s.number_unavailable, s.updated_number_scheduled), (Some(2), Some(1), Some(2)));
        assert_eq!(s.observed_generation, Some(3));
    }

    #[test]
    fn misscheduled_and_failed_pods() {
        let d = ds(json!({"template": {"metadata": {"labels": {"app": "proxy"}}, "spec": {
            "containers": [{"name": "c", "image": "i"}], "nodeSelector": {"kubernetes.io/hostname": "n1"}}}}));
        let h = template_hash(&d);
        let (n1, n2) = (node("n1"), node("n2"));
        let mut failed = pod(&d, "n1", &h, 10, false);
        failed.status.as_mut().unwrap().phase = Some("Failed".into());
        let wrong = pod(&d, "n2", &h, 10, true);
        let plan = plan(&d, &h, &[&n1, &n2], &[&failed, &wrong], now());
        assert!(plan.create.is_empty(), "the failed pod is still there");
        assert_eq!(plan.delete.len(), 2);
        assert_eq!(plan.events[0].1, "FailedDaemonPod");
        assert_eq!(plan.status.number_misscheduled, 1);
        assert_eq!(plan.status.desired_number_scheduled, 1);
    }

    #[test]
    fn terminating_pods_block_replacements() {
        let d = ds(json!({}));
        let h = template_hash(&d);
        let n1 = node("n1");
        let mut old = pod(&d, "n1", "old", 10, true);
        old.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now()));
        let plan = plan(&d, &h, &[&n1], &[&old], now());
        assert!(plan.create.is_empty() && plan.delete.is_empty(), "{plan:?}");
        assert_eq!(plan.status.updated_number_scheduled, Some(0));
    }

    #[test]
    fn rolling_update_respects_max_unavailable() {
        let d = ds(json!({}));
        let h = template_hash(&d);
        let nodes = [node("n1"), node("n2"), node("n3")];
        let refs: Vec<&Node> = nodes.iter().collect();
        let olds: Vec<Pod> = ["n1", "n2", "n3"].iter().map(|n| pod(&d, n, "old", 10, true)).collect();
        let pods: Vec<&Pod> = olds.iter().collect();
        let p = plan(&d, &h, &refs, &pods, now());
        assert_eq!(
            p.delete.iter().map(|d| d.name.clone()).collect::<Vec<_>>(),
            vec![olds[0].metadata.name.clone().unwrap()]
        );
        assert!(p.create.is_empty());
        assert_eq!(p.status.updated_number_scheduled, Some(0));

        // n1's old pod terminating: nothing more.
        let mut terminating = olds[0].clone();
        terminating.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now()));
        let p = plan(&d, &h, &refs, &[&terminating, &olds[1], &olds[2]], now());
        assert!(p.delete.is_empty() && p.create.is_empty(), "{p:?}");
        // Gone: create the new one there, still nothing else.
        let p = plan(&d, &h, &refs, &[&olds[1], &olds[2]], now());
        assert_eq!(p.create, vec!["n1"]);
        assert!(p.delete.is_empty(), "{p:?}");
        // New one not ready yet: wait.
        let new1 = pod(&d, "n1", &h, 20, false);
        let p = plan(&d, &h, &refs, &[&new1, &olds[1], &olds[2]], now());
        assert!(p.delete.is_empty() && p.create.is_empty(), "{p:?}");
        // Ready: next node.
        let new1 = pod(&d, "n1", &h, 20, true);
        let p = plan(&d, &h, &refs, &[&new1, &olds[1], &olds[2]], now());
        assert_eq!(
            p.delete.iter().map(|d| d.name.clone()).collect::<Vec<_>>(),
            vec![olds[1].metadata.name.clone().unwrap()]
        );
        assert_eq!(p.status.updated_number_scheduled, Some(1));

        // maxUnavailable 2 takes two at once; an old pod that is not ready goes regardless.
        let d2 = ds(json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}}}));
        let h2 = template_hash(&d2);
        let olds: Vec<Pod> = ["n1", "n2", "n3"].iter().map(|n| pod(&d2, n, "old", 10, *n != "n3")).collect();
        let pods: Vec<&Pod> = olds.iter().collect();
        let p = plan(&d2, &h2, &refs, &pods, now());
        assert_eq!(p.delete.len(), 3, "{p:?}");
        // A percentage rounds up: 34% of 3 is 2.
        assert_eq!(scaled(Some(&IntOrString::String("34%".into())), 3), 2);
        assert_eq!(scaled(Some(&IntOrString::String("10%".into())), 3), 1);
        // OnDelete leaves old pods alone.
        let d3 = ds(json!({"updateStrategy": {"type": "OnDelete"}}));
        let olds: Vec<Pod> = ["n1"].iter().map(|n| pod(&d3, n, "old", 10, true)).collect();
        let p = plan(&d3, &template_hash(&d3), &refs[..1], &[&olds[0]], now());
        assert!(p.delete.is_empty() && p.create.is_empty());
    }

    #[test]
    fn rolling_update_with_surge() {
        let d = ds(
            json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}}),
        );
        let h = template_hash(&d);
        let nodes = [node("n1"), node("n2")];
        let refs: Vec<&Node> = nodes.iter().collect();
        let olds: Vec<Pod> = ["n1", "n2"].iter().map(|n| pod(&d, n, "old", 10, true)).collect();
        let p = plan(&d, &h, &refs, &[&olds[0], &olds[1]], now());
        assert_eq!(p.create, vec!["n1"], "one new pod beside the old one");
        assert!(p.delete.is_empty());
        let new1 = pod(&d, "n1", &h, 20, false);
        let p = plan(&d, &h, &refs, &[&olds[0], &new1, &olds[1]], now());
        assert!(p.create.is_empty() && p.delete.is_empty(), "waiting for the new one: {p:?}");
        let new1 = pod(&d, "n1", &h, 20, true);
        let p = plan(&d, &h, &refs, &[&olds[0], &new1, &olds[1]], now());
        assert_eq!(
            p.delete.iter().map(|d| d.name.clone()).collect::<Vec<_>>(),
            vec![olds[0].metadata.name.clone().unwrap()]
        );
    }

    #[test]
    fn min_ready_seconds() {
        let d = ds(json!({"minReadySeconds": 30}));
        let h = template_hash(&d);
        let n1 = node("n1");
        let p1 = pod(&d, "n1", &h, 10, true);
        let just_ready = Timestamp::from_second(1_704_067_200 + 10).unwrap(); // 10 s after 2024-01-01
        let p = plan(&d, &h, &[&n1], &[&p1], just_ready);
        assert_eq!((p.status.number_ready, p.status.number_available), (1, Some(0)));
        assert_eq!(p.requeue_after, Some(Duration::from_secs(31)));
        let p = plan(&d, &h, &[&n1], &[&p1], now());
        assert_eq!(p.status.number_available, Some(1));
        assert_eq!(p.requeue_after, None);
    }

    #[test]
    fn status_comparison() {
        let wanted =
            DaemonSetStatus { desired_number_scheduled: 2, observed_generation: Some(3), ..Default::default() };
        assert!(status_differs(None, &wanted));
        assert!(!status_differs(Some(&wanted), &wanted));
        let mut older = wanted.clone();
        older.observed_generation = Some(2);
        assert!(status_differs(Some(&older), &wanted));
    }
}
