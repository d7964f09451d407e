//! What the Deployment controller computes from a Deployment and its ReplicaSets, as upstream's
//! `pkg/controller/deployment/util`: the pod-template-hash, template equality, maxSurge and
//! maxUnavailable, the revision and replicas annotations, conditions and orderings.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use crate::replicaset::logic::whole_seconds;

/// The revision of a ReplicaSet (and, copied, of its Deployment): its place in the rollout
/// history, which `kubectl rollout history` lists and `kubectl rollout undo` goes back to.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// The revisions a ReplicaSet had before a rollback made it new again.
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
/// The Deployment's replicas when it last scaled this ReplicaSet.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// The Deployment's replicas + maxSurge when it last scaled this ReplicaSet.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// The label that keeps the ReplicaSets of a Deployment apart.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
const ROLLBACK_TO: &str = "deprecated.deployment.rollback.to";
/// The longest revision-history annotation kept (upstream's `maxRevHistoryLengthInChars`).
const MAX_REVISION_HISTORY_CHARS: usize = 2000;

/// Annotations a Deployment does not copy to its ReplicaSets.
fn skip_copy(key: &str) -> bool {
    matches!(key, LAST_APPLIED | REVISION | REVISION_HISTORY | DESIRED_REPLICAS | MAX_REPLICAS | ROLLBACK_TO)
}

/// FNV-1a, 32 bits.
pub fn fnv32a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |hash, b| (hash ^ u32::from(*b)).wrapping_mul(0x0100_0193))
}

/// Upstream's `rand.SafeEncodeString`: every character mapped into an alphabet without vowels
/// (no accidental words) and without look-alikes (0/o, 1/l, 3/e).
pub fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes().map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char).collect()
}

/// A template as compared and hashed: the pod-template-hash label removed, and nulls, empty
/// lists and empty objects dropped (Go's semantic equality does not tell nil from empty, and
/// kubectl drops empty fields when it writes a template back on `rollout undo`).
pub fn normalized_template(template: &PodTemplateSpec) -> Value {
    let mut value = serde_json::to_value(template).unwrap_or(Value::Null);
    if let Some(labels) = value.pointer_mut("/metadata/labels").and_then(Value::as_object_mut) {
        labels.remove(POD_TEMPLATE_HASH);
    }
    prune(&mut value);
    value
}

/// Drops nulls, empty arrays and empty objects, innermost first. Returns whether `value` itself
/// is now empty.
fn prune(value: &mut Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => {
            for item in items.iter_mut() {
                if prune(item) {
                    *item = Value::Null;
                }
            }
            items.retain(|i| !i.is_null());
            items.is_empty()
        }
        Value::Object(map) => {
            map.retain(|_, v| !prune(v));
            map.is_empty()
        }
        _ => false,
    }
}

/// The pod-template-hash of a template, as upstream's `ComputeHash`: FNV-32a over the template
/// (here its normalized JSON) and, after a collision, the collision count; the decimal number
/// safe-encoded. Stable: the same template gives the same hash, in any process.
pub fn pod_template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut bytes = serde_json::to_vec(&normalized_template(template)).unwrap_or_default();
    if let Some(count) = collision_count {
        // Upstream writes the count little-endian into an 8-byte buffer.
        let mut buf = [0u8; 8];
        buf[..4].copy_from_slice(&(count as u32).to_le_bytes());
        bytes.extend_from_slice(&buf);
    }
    safe_encode(&fnv32a(&bytes).to_string())
}

/// Whether two templates are the same but for the pod-template-hash label (`EqualIgnoreHash`).
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    normalized_template(a) == normalized_template(b)
}

/// `spec.replicas` of a Deployment (1 when unset, the API default).
pub fn replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// `spec.replicas` of a ReplicaSet.
pub fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// `status.replicas` of a ReplicaSet (its active pods).
pub fn rs_actual(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().map_or(0, |s| s.replicas)
}

/// `status.availableReplicas` of a ReplicaSet.
pub fn rs_available(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0)
}

/// `status.readyReplicas` of a ReplicaSet.
pub fn rs_ready(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0)
}

/// Whether the Deployment replaces pods with RollingUpdate (the default) rather than Recreate.
pub fn is_rolling_update(d: &Deployment) -> bool {
    d.spec.as_ref().and_then(|s| s.strategy.as_ref()).and_then(|s| s.type_.as_deref()) != Some("Recreate")
}

/// An absolute number or a percentage of `total`, rounded up or down
/// (`GetScaledValueFromIntOrPercent`). A malformed percentage counts as 0.
pub fn scaled_value(value: &IntOrString, total: i32, round_up: bool) -> i32 {
    match value {
        IntOrString::Int(n) => *n,
        IntOrString::String(s) => {
            let Some(percent) = s.strip_suffix('%').and_then(|p| p.trim().parse::<i64>().ok()) else {
                return s.parse().unwrap_or(0);
            };
            let product = percent * i64::from(total);
            let scaled = if round_up { (product + 99).div_euclid(100) } else { product.div_euclid(100) };
            scaled as i32
        }
    }
}

/// maxSurge and maxUnavailable as numbers of pods (`ResolveFenceposts`): surge rounds up,
/// unavailability down, and when both are 0 one pod may be unavailable so the rollout can move.
pub fn resolve_fenceposts(d: &Deployment) -> (i32, i32) {
    let rolling = d.spec.as_ref().and_then(|s| s.strategy.as_ref()).and_then(|s| s.rolling_update.as_ref());
    let default = IntOrString::String("25%".into());
    let surge_value = rolling.map_or(&default, |r| r.max_surge.as_ref().unwrap_or(&IntOrString::Int(0)));
    let unavailable_value = rolling.map_or(&default, |r| r.max_unavailable.as_ref().unwrap_or(&IntOrString::Int(0)));
    let desired = replicas(d);
    let surge = scaled_value(surge_value, desired, true);
    let mut unavailable = scaled_value(unavailable_value, desired, false);
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge, unavailable)
}

/// How many pods above `spec.replicas` a rolling update may run (0 for Recreate).
pub fn max_surge(d: &Deployment) -> i32 {
    if !is_rolling_update(d) {
        return 0;
    }
    resolve_fenceposts(d).0
}

/// How many of `spec.replicas` pods may be unavailable during a rolling update (0 for Recreate).
pub fn max_unavailable(d: &Deployment) -> i32 {
    if !is_rolling_update(d) || replicas(d) == 0 {
        return 0;
    }
    resolve_fenceposts(d).1.min(replicas(d))
}

/// Whether `progressDeadlineSeconds` is set (and not "never").
pub fn has_progress_deadline(d: &Deployment) -> bool {
    d.spec.as_ref().and_then(|s| s.progress_deadline_seconds).is_some_and(|s| s != i32::MAX)
}

fn annotation<'a>(rs: &'a ReplicaSet, key: &str) -> Option<&'a str> {
    rs.metadata.annotations.as_ref()?.get(key).map(String::as_str)
}

/// The revision of a ReplicaSet (0 when missing or malformed).
pub fn revision(rs: &ReplicaSet) -> i64 {
    annotation(rs, REVISION).and_then(|r| r.parse().ok()).unwrap_or(0)
}

/// The desired-replicas annotation of a ReplicaSet.
pub fn desired_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    annotation(rs, DESIRED_REPLICAS)?.parse().ok()
}

/// The max-replicas annotation of a ReplicaSet.
pub fn max_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    annotation(rs, MAX_REPLICAS)?.parse().ok()
}

/// Whether the replicas annotations of `rs` differ from these values.
pub fn replicas_annotations_need_update(rs: &ReplicaSet, desired: i32, max: i32) -> bool {
    annotation(rs, DESIRED_REPLICAS) != Some(desired.to_string().as_str())
        || annotation(rs, MAX_REPLICAS) != Some(max.to_string().as_str())
}

/// Sets the replicas annotations of `rs`; whether they changed.
pub fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    if !replicas_annotations_need_update(rs, desired, max) {
        return false;
    }
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    annotations.insert(DESIRED_REPLICAS.into(), desired.to_string());
    annotations.insert(MAX_REPLICAS.into(), max.to_string());
    true
}

/// Brings the annotations of the Deployment's new ReplicaSet up to date
/// (`SetNewReplicaSetAnnotations`): the Deployment's own annotations copied, the revision raised
/// to `new_revision` (keeping the revisions it had in revision-history when a rollback makes an
/// old ReplicaSet new again), and, for a ReplicaSet about to be created, the replicas
/// annotations. Returns whether anything changed.
pub fn set_new_rs_annotations(d: &Deployment, rs: &mut ReplicaSet, new_revision: i64, exists: bool) -> bool {
    let mut changed = false;
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    for (k, v) in d.metadata.annotations.iter().flatten() {
        if skip_copy(k) || annotations.get(k) == Some(v) {
            continue;
        }
        annotations.insert(k.clone(), v.clone());
        changed = true;
    }
    let old = annotations.get(REVISION).cloned();
    let old_revision = match &old {
        None => 0,
        Some(s) => match s.parse::<i64>() {
            Ok(n) => n,
            Err(_) if s.is_empty() => 0,
            Err(_) => return changed,
        },
    };
    if old_revision < new_revision {
        annotations.insert(REVISION.into(), new_revision.to_string());
        changed = true;
        if let Some(old) = old.filter(|o| !o.is_empty()) {
            let history = annotations.get(REVISION_HISTORY).cloned().unwrap_or_default();
            if history.is_empty() {
                annotations.insert(REVISION_HISTORY.into(), old);
            } else {
                let mut revisions: Vec<&str> = history.split(',').collect();
                let mut total = history.len() + old.len() + 1;
                let mut start = 0;
                while total > MAX_REVISION_HISTORY_CHARS && start < revisions.len() {
                    total -= revisions[start].len() + 1;
                    start += 1;
                }
                if total <= MAX_REVISION_HISTORY_CHARS {
                    revisions = revisions.split_off(start);
                    revisions.push(&old);
                    let joined = revisions.join(",");
                    annotations.insert(REVISION_HISTORY.into(), joined);
                }
            }
        }
    }
    if !exists {
        let desired = replicas(d);
        changed |= set_replicas_annotations(rs, desired, desired + max_surge(d));
    }
    changed
}

/// The condition of this type.
pub fn condition<'a>(status: &'a DeploymentStatus, type_: &str) -> Option<&'a DeploymentCondition> {
    status.conditions.as_ref()?.iter().find(|c| c.type_ == type_)
}

/// A condition updated and transitioned now.
pub fn new_condition(type_: &str, status: &str, reason: &str, message: String, now: Timestamp) -> DeploymentCondition {
    let now = Time(whole_seconds(now));
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(now.clone()),
        last_transition_time: Some(now),
    }
}

/// Sets a condition (`SetDeploymentCondition`): nothing changes when one with the same status
/// and reason is there; the transition time is kept when the status is unchanged; the condition
/// goes last.
pub fn set_condition(status: &mut DeploymentStatus, mut condition: DeploymentCondition) {
    if let Some(current) = self::condition(status, &condition.type_) {
        if current.status == condition.status && current.reason == condition.reason {
            return;
        }
        if current.status == condition.status {
            condition.last_transition_time = current.last_transition_time.clone();
        }
    }
    remove_condition(status, &condition.type_);
    status.conditions.get_or_insert_with(Vec::new).push(condition);
}

/// Removes the condition of this type.
pub fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(conditions) = status.conditions.as_mut() {
        conditions.retain(|c| c.type_ != type_);
        if conditions.is_empty() {
            status.conditions = None;
        }
    }
}

/// A status as upstream serializes it: zero counts omitted.
pub fn normalized_status(status: Option<&DeploymentStatus>) -> DeploymentStatus {
    let mut s = status.cloned().unwrap_or_default();
    for field in [
        &mut s.replicas,
        &mut s.updated_replicas,
        &mut s.ready_replicas,
        &mut s.available_replicas,
        &mut s.unavailable_replicas,
    ] {
        if *field == Some(0) {
            *field = None;
        }
    }
    if s.observed_generation == Some(0) {
        s.observed_generation = None;
    }
    if s.conditions.as_ref().is_some_and(Vec::is_empty) {
        s.conditions = None;
    }
    s
}

/// Oldest first, then by name (`ReplicaSetsByCreationTimestamp`); a ReplicaSet without a
/// creation time counts as the newest.
pub fn by_creation(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    let time = |rs: &ReplicaSet| rs.metadata.creation_timestamp.as_ref().map(|t| t.0);
    match (time(a), time(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (None, None) => Ordering::Equal,
    }
    .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// Lowest revision first, then oldest (`ReplicaSetsByRevision`).
pub fn by_revision(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    revision(a).cmp(&revision(b)).then_with(|| by_creation(a, b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(replicas: i32, strategy: Value) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "d-uid", "generation": 1,
                         "annotations": {"kubernetes.io/change-cause": "v2", REVISION: "4", LAST_APPLIED: "{}"}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}}, "strategy": strategy,
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx:1.14"}]}}},
        }))
        .unwrap()
    }

    fn template(image: &str) -> PodTemplateSpec {
        serde_json::from_value(json!({"metadata": {"labels": {"app": "web"}},
                                      "spec": {"containers": [{"name": "c", "image": image}]}}))
        .unwrap()
    }

    #[test]
    fn fnv_and_safe_encoding_match_upstream() {
        // Reference values of FNV-1a 32.
        assert_eq!(fnv32a(b""), 0x811c9dc5);
        assert_eq!(fnv32a(b"a"), 0xe40c292c);
        assert_eq!(fnv32a(b"foobar"), 0xbf9cf968);
        // '0' is 48 → 48 % 27 = 21 → '4'; '9' is 57 → 3 → 'f'.
        assert_eq!(safe_encode("0123456789"), "456789bcdf");
    }

    #[test]
    fn template_hash_is_stable_and_of_upstream_form() {
        let a = pod_template_hash(&template("nginx:1.14"), None);
        assert_eq!(a, pod_template_hash(&template("nginx:1.14"), None));
        assert!(a.len() <= 10 && !a.is_empty());
        assert!(a.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)), "{a}");
        assert_ne!(a, pod_template_hash(&template("nginx:1.25"), None));
        assert_ne!(a, pod_template_hash(&template("nginx:1.14"), Some(1)));
        // The hash label itself does not change the hash.
        let mut labeled = template("nginx:1.14");
        labeled.metadata.as_mut().unwrap().labels.as_mut().unwrap().insert(POD_TEMPLATE_HASH.into(), a.clone());
        assert_eq!(a, pod_template_hash(&labeled, None));
    }

    #[test]
    fn templates_compare_ignoring_hash_and_empty_fields() {
        let mut a = template("nginx");
        a.metadata.as_mut().unwrap().labels.as_mut().unwrap().insert(POD_TEMPLATE_HASH.into(), "abc".into());
        let mut b = template("nginx");
        assert!(equal_ignore_hash(&a, &b));
        b.spec.as_mut().unwrap().containers[0].env = Some(vec![]);
        b.spec.as_mut().unwrap().containers[0].resources = Some(Default::default());
        assert!(equal_ignore_hash(&a, &b));
        b.spec.as_mut().unwrap().containers[0].image = Some("nginx:2".into());
        assert!(!equal_ignore_hash(&a, &b));
    }

    #[test]
    fn percentages_round_as_upstream() {
        let pct = |s: &str| IntOrString::String(s.into());
        assert_eq!(scaled_value(&pct("25%"), 3, true), 1);
        assert_eq!(scaled_value(&pct("25%"), 3, false), 0);
        assert_eq!(scaled_value(&pct("25%"), 10, true), 3);
        assert_eq!(scaled_value(&pct("25%"), 10, false), 2);
        assert_eq!(scaled_value(&pct("100%"), 7, false), 7);
        assert_eq!(scaled_value(&IntOrString::Int(2), 7, false), 2);
    }

    #[test]
    fn fenceposts() {
        let d = deployment(
            3,
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
        );
        assert_eq!(resolve_fenceposts(&d), (1, 0));
        assert_eq!((max_surge(&d), max_unavailable(&d)), (1, 0));
        let zero =
            deployment(3, json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}));
        assert_eq!(resolve_fenceposts(&zero), (0, 1));
        let recreate = deployment(3, json!({"type": "Recreate"}));
        assert_eq!((max_surge(&recreate), max_unavailable(&recreate)), (0, 0));
        let big =
            deployment(2, json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 5}}));
        assert_eq!(max_unavailable(&big), 2);
    }

    #[test]
    fn new_replica_set_annotations() {
        let d = deployment(3, json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}));
        let mut rs = ReplicaSet::default();
        assert!(set_new_rs_annotations(&d, &mut rs, 5, false));
        let a = rs.metadata.annotations.clone().unwrap();
        assert_eq!(a["kubernetes.io/change-cause"], "v2");
        assert_eq!(a[REVISION], "5");
        assert_eq!((a[DESIRED_REPLICAS].as_str(), a[MAX_REPLICAS].as_str()), ("3", "4"));
        assert!(!a.contains_key(LAST_APPLIED));
        assert!(!a.contains_key(REVISION_HISTORY));
        // Nothing to change the second time.
        assert!(!set_new_rs_annotations(&d, &mut rs, 5, true));
        // A rollback makes it revision 7 and remembers 5, then 7.
        assert!(set_new_rs_annotations(&d, &mut rs, 7, true));
        assert!(set_new_rs_annotations(&d, &mut rs, 9, true));
        let a = rs.metadata.annotations.unwrap();
        assert_eq!((a[REVISION].as_str(), a[REVISION_HISTORY].as_str()), ("9", "5,7"));
    }

    #[test]
    fn conditions_keep_transition_times() {
        let t0 = Timestamp::from_second(1000).unwrap();
        let t1 = Timestamp::from_second(2000).unwrap();
        let mut s = DeploymentStatus::default();
        set_condition(&mut s, new_condition("Progressing", "True", "NewReplicaSetCreated", "x".into(), t0));
        set_condition(&mut s, new_condition("Available", "True", "MinimumReplicasAvailable", "y".into(), t0));
        set_condition(&mut s, new_condition("Progressing", "True", "NewReplicaSetAvailable", "z".into(), t1));
        let types: Vec<&str> = s.conditions.as_ref().unwrap().iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, ["Available", "Progressing"]);
        let p = condition(&s, "Progressing").unwrap();
        assert_eq!(p.last_transition_time.as_ref().unwrap().0, t0);
        assert_eq!(p.last_update_time.as_ref().unwrap().0, t1);
        // Same status and reason: unchanged.
        let before = s.clone();
        set_condition(&mut s, new_condition("Progressing", "True", "NewReplicaSetAvailable", "other".into(), t1));
        assert_eq!(s, before);
        remove_condition(&mut s, "Available");
        remove_condition(&mut s, "Progressing");
        assert_eq!(s.conditions, None);
    }
}
