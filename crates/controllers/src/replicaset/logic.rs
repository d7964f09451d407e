//! The ReplicaSet controller's decisions, as pure functions over the objects it reads: which pods
//! a ReplicaSet owns, adopts or releases (upstream's `ControllerRefManager`), what a new pod looks
//! like (`GetPodFromTemplate`), which surplus pods go first (`ActivePodsWithRanks`) and what the
//! status says (`calculateStatus`). Also the pieces the Deployment controller shares: controller
//! references, selectors and pod readiness.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use podnet_meta::labels::Selector;

/// The annotation that orders pods for scale-down (lower cost goes first).
pub const POD_DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

/// The most pods one sync creates or deletes (upstream's `burstReplicas`).
pub const BURST_REPLICAS: usize = 500;

/// An object's controller: its ownerReference with `controller: true`.
pub fn controller_ref(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references.as_deref()?.iter().find(|r| r.controller == Some(true))
}

/// A controller reference to `owner` (`controller` and `blockOwnerDeletion` set), as upstream's
/// `NewControllerRef`.
pub fn new_controller_ref(api_version: &str, kind: &str, owner: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        name: owner.name.clone().unwrap_or_default(),
        uid: owner.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Whether an apiVersion is in the `apps` group (`apps/v1`, `apps/v1beta2`, ...).
pub fn is_apps(api_version: &str) -> bool {
    api_version.split('/').next() == Some("apps") && api_version.contains('/')
}

/// The selector of a `metav1.LabelSelector`, or why it is invalid.
pub fn selector(selector: &LabelSelector) -> Result<Selector, String> {
    let value = serde_json::to_value(selector).map_err(|e| e.to_string())?;
    match Selector::from_label_selector(&value) {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Ok(Selector::everything()),
        Err(e) => Err(e.to_string()),
    }
}

/// Whether `selector` matches the labels of `meta`.
pub fn matches(selector: &Selector, meta: &ObjectMeta) -> bool {
    let labels = meta.labels.as_ref();
    selector.matches_lookup(|key| labels.and_then(|l| l.get(key)).map(String::as_str))
}

/// Whether a pod counts as a replica: not finished, not being deleted (`FilterActivePods`).
pub fn is_pod_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    !matches!(phase, Some("Succeeded" | "Failed")) && pod.metadata.deletion_timestamp.is_none()
}

/// When the pod's Ready condition turned True, if it is True (`None` time: ready, time unknown).
fn ready_condition(pod: &Pod) -> Option<Option<Timestamp>> {
    let conditions = pod.status.as_ref()?.conditions.as_ref()?;
    let ready = conditions.iter().find(|c| c.type_ == "Ready")?;
    (ready.status == "True").then(|| ready.last_transition_time.as_ref().map(|t| t.0))
}

/// Whether the pod's Ready condition is True.
pub fn is_pod_ready(pod: &Pod) -> bool {
    ready_condition(pod).is_some()
}

/// Whether the pod has been ready for at least `min_ready_seconds` (`IsPodAvailable`).
pub fn is_pod_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    match ready_condition(pod) {
        None => false,
        Some(_) if min_ready_seconds <= 0 => true,
        Some(None) => false,
        Some(Some(since)) => since.as_second() + i64::from(min_ready_seconds) <= now.as_second(),
    }
}

/// How long until the next of these ready pods becomes available, if one is still waiting.
pub fn next_available_in(pods: &[&Pod], min_ready_seconds: i32, now: Timestamp) -> Option<Duration> {
    if min_ready_seconds <= 0 {
        return None;
    }
    pods.iter()
        .filter_map(|pod| ready_condition(pod).flatten())
        .map(|since| since.as_second() + i64::from(min_ready_seconds) - now.as_second())
        .filter(|wait| *wait > 0)
        .min()
        .map(|wait| Duration::from_secs(wait as u64))
}

/// What a controller does with an object it might own (upstream's `ClaimObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Already ours and still selected.
    Owned,
    /// An orphan that the selector picks: take it.
    Adopt,
    /// Ours but no longer selected: let it go.
    Release,
    /// Someone else's, or not for us.
    Ignore,
}

/// Decides whether the controller `owner` (being deleted or not) owns, adopts or releases `obj`.
/// Objects being deleted are never adopted; a controller being deleted neither adopts nor releases.
pub fn claim(owner_uid: &str, owner_deleting: bool, selector: &Selector, obj: &ObjectMeta) -> Claim {
    match controller_ref(obj) {
        Some(r) if r.uid != owner_uid => Claim::Ignore,
        Some(_) if matches(selector, obj) => Claim::Owned,
        Some(_) if owner_deleting => Claim::Ignore,
        Some(_) => Claim::Release,
        None if owner_deleting || obj.deletion_timestamp.is_some() || !matches(selector, obj) => Claim::Ignore,
        None => Claim::Adopt,
    }
}

/// The pod a ReplicaSet creates: its template with `generateName: <rs>-` and a controller
/// reference (`GetPodFromTemplate`).
pub fn pod_from_template(rs: &ReplicaSet) -> Pod {
    let template = rs.spec.as_ref().and_then(|s| s.template.clone()).unwrap_or_default();
    let template_meta = template.metadata.unwrap_or_default();
    let name = rs.metadata.name.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{name}-")),
            namespace: rs.metadata.namespace.clone(),
            labels: template_meta.labels,
            annotations: template_meta.annotations,
            finalizers: template_meta.finalizers,
            owner_references: Some(vec![new_controller_ref("apps/v1", "ReplicaSet", &rs.metadata)]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}

/// Sizes of upstream's "slow start" batches for creating `count` pods: 1, 2, 4, ... so that a
/// failing create (quota, admission) stops early instead of failing `count` times.
pub fn slow_start_batches(count: usize) -> Vec<usize> {
    let mut batches = Vec::new();
    let (mut size, mut remaining) = (1, count);
    while remaining > 0 {
        let batch = size.min(remaining);
        batches.push(batch);
        remaining -= batch;
        size *= 2;
    }
    batches
}

fn phase_ordinal(pod: &Pod) -> u8 {
    match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Unknown") => 1,
        Some("Running") => 2,
        _ => 0,
    }
}

fn node_name(pod: &Pod) -> &str {
    pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).unwrap_or("")
}

fn deletion_cost(pod: &Pod) -> i32 {
    pod.metadata.annotations.as_ref().and_then(|a| a.get(POD_DELETION_COST)).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn max_restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map_or(0, |statuses| statuses.iter().map(|c| c.restart_count).max().unwrap_or(0))
}

/// `t1` is later than `t2`, an unknown time counting as the latest (`afterOrZero`).
fn later_first(t1: Option<Timestamp>, t2: Option<Timestamp>) -> Ordering {
    match (t1, t2) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(a), Some(b)) => b.cmp(&a),
    }
}

/// The scale-down order of two pods (`Less`: `a` goes first), upstream's `ActivePodsWithRanks`:
/// unscheduled before scheduled; Pending before Unknown before Running; not ready before ready;
/// lower deletion cost first; more pods of the same owner on its node first; ready for less
/// time first; more container restarts first; newer first. Names break the remaining ties.
fn deletion_order(a: &Pod, rank_a: usize, b: &Pod, rank_b: usize) -> Ordering {
    let (node_a, node_b) = (node_name(a), node_name(b));
    if node_a != node_b && (node_a.is_empty() || node_b.is_empty()) {
        return if node_a.is_empty() { Ordering::Less } else { Ordering::Greater };
    }
    phase_ordinal(a)
        .cmp(&phase_ordinal(b))
        .then_with(|| is_pod_ready(a).cmp(&is_pod_ready(b)))
        .then_with(|| deletion_cost(a).cmp(&deletion_cost(b)))
        .then_with(|| rank_b.cmp(&rank_a))
        .then_with(|| match (ready_condition(a), ready_condition(b)) {
            (Some(t1), Some(t2)) => later_first(t1, t2),
            _ => Ordering::Equal,
        })
        .then_with(|| max_restarts(b).cmp(&max_restarts(a)))
        .then_with(|| {
            later_first(
                a.metadata.creation_timestamp.as_ref().map(|t| t.0),
                b.metadata.creation_timestamp.as_ref().map(|t| t.0),
            )
        })
        .then_with(|| b.metadata.name.cmp(&a.metadata.name))
}

/// The `count` pods to delete from `pods` (the ReplicaSet's active pods), in upstream's order.
/// `related` are the active pods of the ReplicaSet and of its siblings (the other ReplicaSets of
/// the same Deployment): pods on a node crowded with related pods go first.
pub fn pods_to_delete<'a>(pods: &[&'a Pod], related: &[&Pod], count: usize) -> Vec<&'a Pod> {
    let mut on_node: HashMap<&str, usize> = HashMap::new();
    for pod in related {
        if !node_name(pod).is_empty() && is_pod_active(pod) {
            *on_node.entry(node_name(pod)).or_default() += 1;
        }
    }
    let rank =
        |pod: &Pod| if node_name(pod).is_empty() { 0 } else { on_node.get(node_name(pod)).copied().unwrap_or(0) };
    let mut ranked: Vec<(&Pod, usize)> = pods.iter().map(|p| (*p, rank(p))).collect();
    ranked.sort_by(|(a, ra), (b, rb)| deletion_order(a, *ra, b, *rb));
    ranked.into_iter().take(count).map(|(p, _)| p).collect()
}

/// Why the last attempt to create or delete pods failed, for the ReplicaFailure condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManageFailure {
    pub message: String,
}

/// The status of a ReplicaSet owning `pods` (its active pods), as upstream's `calculateStatus`:
/// replicas, fullyLabeledReplicas (pods carrying all the template's labels), readyReplicas,
/// availableReplicas (ready for minReadySeconds), observedGeneration, and a ReplicaFailure
/// condition while creating or deleting pods fails.
pub fn calculate_status(
    rs: &ReplicaSet,
    pods: &[&Pod],
    failure: Option<&ManageFailure>,
    now: Timestamp,
) -> ReplicaSetStatus {
    let spec = rs.spec.as_ref();
    let template_labels: BTreeMap<String, String> = spec
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let min_ready = spec.and_then(|s| s.min_ready_seconds).unwrap_or(0);
    let fully_labeled = pods
        .iter()
        .filter(|p| {
            let labels = p.metadata.labels.as_ref();
            template_labels.iter().all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        })
        .count();
    let ready = pods.iter().filter(|p| is_pod_ready(p)).count();
    let available = pods.iter().filter(|p| is_pod_available(p, min_ready, now)).count();
    let current = rs.status.clone().unwrap_or_default();
    let mut conditions: Vec<ReplicaSetCondition> = current.conditions.clone().unwrap_or_default();
    let has_failure = conditions.iter().any(|c| c.type_ == "ReplicaFailure");
    match failure {
        Some(failure) if !has_failure => {
            let desired = spec.and_then(|s| s.replicas).unwrap_or(1);
            let reason = match (pods.len() as i64).cmp(&i64::from(desired)) {
                Ordering::Less => "FailedCreate",
                Ordering::Greater => "FailedDelete",
                Ordering::Equal => "",
            };
            conditions.push(ReplicaSetCondition {
                type_: "ReplicaFailure".into(),
                status: "True".into(),
                reason: Some(reason.into()),
                message: Some(failure.message.clone()),
                last_transition_time: Some(Time(whole_seconds(now))),
            });
        }
        None if has_failure => conditions.retain(|c| c.type_ != "ReplicaFailure"),
        _ => {}
    }
    let count = |n: usize| (n > 0).then_some(n as i32);
    ReplicaSetStatus {
        replicas: pods.len() as i32,
        fully_labeled_replicas: count(fully_labeled),
        ready_replicas: count(ready),
        available_replicas: count(available),
        observed_generation: rs.metadata.generation,
        conditions: (!conditions.is_empty()).then_some(conditions),
        terminating_replicas: current.terminating_replicas,
    }
}

/// A status as upstream serializes it: zero counts are omitted.
pub fn normalized_status(status: Option<&ReplicaSetStatus>) -> ReplicaSetStatus {
    let mut s = status.cloned().unwrap_or_default();
    for field in [&mut s.fully_labeled_replicas, &mut s.ready_replicas, &mut s.available_replicas] {
        if *field == Some(0) {
            *field = None;
        }
    }
    if s.conditions.as_ref().is_some_and(Vec::is_empty) {
        s.conditions = None;
    }
    s
}

/// A JSON merge patch that turns the status `current` into `desired`: `desired` plus a null for
/// every field `current` has and `desired` lacks.
pub fn status_merge_patch(current: &serde_json::Value, desired: &serde_json::Value) -> serde_json::Value {
    let mut patch = desired.clone();
    if let (Some(current), Some(object)) = (current.as_object(), patch.as_object_mut()) {
        for key in current.keys() {
            if !object.contains_key(key) {
                object.insert(key.clone(), serde_json::Value::Null);
            }
        }
    }
    patch
}

/// `now` truncated to whole seconds, the precision metav1.Time keeps.
pub fn whole_seconds(now: Timestamp) -> Timestamp {
    Timestamp::from_second(now.as_second()).unwrap_or(now)
}

/// Keeps of a pod only what the ReplicaSet and Deployment controllers read, so their caches stay
/// small: metadata (without managedFields), the node name and the status.
pub fn slim_pod(pod: &mut Pod) {
    pod.metadata.managed_fields = None;
    let node_name = pod.spec.as_ref().and_then(|s| s.node_name.clone());
    pod.spec = Some(PodSpec { node_name, ..Default::default() });
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use serde_json::json;

    fn ts(second: i64) -> Timestamp {
        Timestamp::from_second(second).unwrap()
    }

    fn pod(name: &str, created: i64) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
                          "labels": {"app": "web"},
                          "creationTimestamp": ts(created).to_string()},
            "spec": {"containers": []},
        }))
        .unwrap()
    }

    fn ready(mut p: Pod, since: i64) -> Pod {
        p.status = Some(PodStatus {
            phase: Some("Running".into()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                last_transition_time: Some(Time(ts(since))),
                ..Default::default()
            }]),
            ..Default::default()
        });
        p
    }

    fn on_node(mut p: Pod, node: &str) -> Pod {
        p.spec.get_or_insert_with(Default::default).node_name = Some(node.into());
        p
    }

    fn owned_by(mut p: Pod, uid: &str) -> Pod {
        p.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: "rs".into(),
            uid: uid.into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]);
        p
    }

    fn rs(replicas: i32, min_ready: i32) -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "rs-uid", "generation": 4},
            "spec": {"replicas": replicas, "minReadySeconds": min_ready,
                     "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web", "tier": "front"}, "annotations": {"a": "b"}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}}},
        }))
        .unwrap()
    }

    #[test]
    fn claims_follow_controller_refs_and_selectors() {
        let sel = selector(&LabelSelector {
            match_labels: Some([("app".to_string(), "web".to_string())].into()),
            ..Default::default()
        })
        .unwrap();
        let orphan = pod("a", 0);
        assert_eq!(claim("rs-uid", false, &sel, &orphan.metadata), Claim::Adopt);
        assert_eq!(claim("rs-uid", true, &sel, &orphan.metadata), Claim::Ignore);
        let mut deleting = orphan.clone();
        deleting.metadata.deletion_timestamp = Some(Time(ts(5)));
        assert_eq!(claim("rs-uid", false, &sel, &deleting.metadata), Claim::Ignore);
        let ours = owned_by(pod("b", 0), "rs-uid");
        assert_eq!(claim("rs-uid", false, &sel, &ours.metadata), Claim::Owned);
        let theirs = owned_by(pod("c", 0), "other");
        assert_eq!(claim("rs-uid", false, &sel, &theirs.metadata), Claim::Ignore);
        let mut relabeled = ours.clone();
        relabeled.metadata.labels = Some([("app".to_string(), "db".to_string())].into());
        assert_eq!(claim("rs-uid", false, &sel, &relabeled.metadata), Claim::Release);
        assert_eq!(claim("rs-uid", true, &sel, &relabeled.metadata), Claim::Ignore);
        let mut unlabeled = pod("d", 0);
        unlabeled.metadata.labels = None;
        assert_eq!(claim("rs-uid", false, &sel, &unlabeled.metadata), Claim::Ignore);
    }

    #[test]
    fn finished_and_terminating_pods_are_not_replicas() {
        let running = ready(pod("a", 0), 0);
        assert!(is_pod_active(&running));
        assert!(is_pod_active(&pod("pending", 0)));
        let mut terminating = running.clone();
        terminating.metadata.deletion_timestamp = Some(Time(ts(9)));
        assert!(!is_pod_active(&terminating));
        for phase in ["Succeeded", "Failed"] {
            let mut done = running.clone();
            done.status.as_mut().unwrap().phase = Some(phase.into());
            assert!(!is_pod_active(&done), "{phase}");
        }
    }

    #[test]
    fn pods_come_from_the_template() {
        let p = pod_from_template(&rs(3, 0));
        assert_eq!(p.metadata.generate_name.as_deref(), Some("web-"));
        assert_eq!(p.metadata.name, None);
        assert_eq!(p.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(p.metadata.labels.as_ref().unwrap()["tier"], "front");
        assert_eq!(p.metadata.annotations.as_ref().unwrap()["a"], "b");
        let owner = controller_ref(&p.metadata).unwrap();
        assert_eq!((owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()), ("ReplicaSet", "web", "rs-uid"));
        assert_eq!(owner.block_owner_deletion, Some(true));
        assert_eq!(p.spec.unwrap().containers[0].image.as_deref(), Some("nginx"));
    }

    #[test]
    fn slow_start_doubles() {
        assert_eq!(slow_start_batches(0), Vec::<usize>::new());
        assert_eq!(slow_start_batches(1), vec![1]);
        assert_eq!(slow_start_batches(10), vec![1, 2, 4, 3]);
        assert_eq!(slow_start_batches(15), vec![1, 2, 4, 8]);
    }

    #[test]
    fn surplus_goes_unscheduled_then_not_ready_then_newest() {
        let scheduled_ready_old = on_node(ready(pod("old", 10), 20), "n1");
        let scheduled_ready_new = on_node(ready(pod("new", 30), 40), "n2");
        let scheduled_pending = on_node(pod("pending", 5), "n3");
        let unscheduled = pod("unscheduled", 1);
        let pods = [&scheduled_ready_old, &scheduled_ready_new, &scheduled_pending, &unscheduled];
        let names = |v: Vec<&Pod>| v.iter().map(|p| p.metadata.name.clone().unwrap()).collect::<Vec<_>>();
        assert_eq!(names(pods_to_delete(&pods, &pods, 4)), ["unscheduled", "pending", "new", "old"]);
        assert_eq!(names(pods_to_delete(&pods, &pods, 1)), ["unscheduled"]);
        // Ready for less time goes first, whatever the creation order.
        let a = on_node(ready(pod("a", 10), 100), "n1");
        let b = on_node(ready(pod("b", 50), 60), "n2");
        assert_eq!(names(pods_to_delete(&[&a, &b], &[], 1)), ["a"]);
        // A lower deletion cost goes first.
        let mut cheap = b.clone();
        cheap.metadata.annotations = Some([(POD_DELETION_COST.to_string(), "-5".to_string())].into());
        assert_eq!(names(pods_to_delete(&[&a, &cheap], &[], 1)), ["b"]);
        // Crowded nodes go first.
        let c = on_node(ready(pod("c", 10), 100), "n2");
        let crowd = on_node(ready(pod("x", 1), 1), "n2");
        assert_eq!(names(pods_to_delete(&[&a, &c], &[&a, &c, &crowd], 1)), ["c"]);
    }

    #[test]
    fn availability_waits_for_min_ready_seconds() {
        let p = ready(pod("a", 0), 100);
        assert!(is_pod_available(&p, 0, ts(100)));
        assert!(!is_pod_available(&p, 10, ts(105)));
        assert!(is_pod_available(&p, 10, ts(110)));
        assert!(!is_pod_available(&pod("b", 0), 0, ts(110)));
        assert_eq!(next_available_in(&[&p], 10, ts(104)), Some(Duration::from_secs(6)));
        assert_eq!(next_available_in(&[&p], 10, ts(111)), None);
        assert_eq!(next_available_in(&[&p], 0, ts(0)), None);
    }

    #[test]
    fn status_counts_pods() {
        let r = rs(3, 10);
        let a = ready(pod("a", 0), 100);
        let b = ready(pod("b", 0), 108);
        let mut c = pod("c", 0);
        c.metadata.labels =
            Some([("app".to_string(), "web".to_string()), ("tier".to_string(), "front".to_string())].into());
        let s = calculate_status(&r, &[&a, &b, &c], None, ts(111));
        assert_eq!(s.replicas, 3);
        assert_eq!(s.fully_labeled_replicas, Some(1));
        assert_eq!(s.ready_replicas, Some(2));
        assert_eq!(s.available_replicas, Some(1));
        assert_eq!(s.observed_generation, Some(4));
        assert_eq!(s.conditions, None);
        let empty = calculate_status(&r, &[], None, ts(0));
        assert_eq!((empty.replicas, empty.ready_replicas, empty.available_replicas), (0, None, None));
    }

    #[test]
    fn replica_failure_condition_comes_and_goes() {
        let mut r = rs(3, 0);
        let failure = ManageFailure { message: "quota exceeded".into() };
        let s = calculate_status(&r, &[], Some(&failure), ts(7));
        let cond = &s.conditions.as_ref().unwrap()[0];
        assert_eq!((cond.type_.as_str(), cond.reason.as_deref()), ("ReplicaFailure", Some("FailedCreate")));
        r.status = Some(s);
        // Still failing: the condition is kept as it was.
        let again = calculate_status(&r, &[], Some(&ManageFailure { message: "other".into() }), ts(9));
        assert_eq!(again.conditions.as_ref().unwrap()[0].message.as_deref(), Some("quota exceeded"));
        let cleared = calculate_status(&r, &[], None, ts(9));
        assert_eq!(cleared.conditions, None);
    }

    #[test]
    fn merge_patch_nulls_dropped_fields() {
        let patch = status_merge_patch(&json!({"replicas": 2, "readyReplicas": 2}), &json!({"replicas": 0}));
        assert_eq!(patch, json!({"replicas": 0, "readyReplicas": null}));
    }

    #[test]
    fn apps_versions() {
        assert!(is_apps("apps/v1"));
        assert!(!is_apps("v1"));
        assert!(!is_apps("extensions/v1beta1"));
    }
}
