//! The scheduling rules, as pure functions over typed objects: taints and tolerations, node
//! selectors and node affinity, node readiness, the filters a node must pass (in the order of
//! upstream's default profile, each failing node reporting the first failed filter), the choice
//! among the feasible nodes, and the "0/3 nodes are available: …" message of an unschedulable pod.
//!
//! The DaemonSet controller uses the same rules to decide which nodes should run a daemon pod.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, NodeSelectorRequirement, NodeSelectorTerm, Pod, PodSpec, Taint, Toleration};

/// Taint of nodes whose Ready condition is False (upstream's node lifecycle controller adds it).
pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
/// Taint of nodes whose Ready condition is Unknown.
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// Taint standing for `spec.unschedulable` (cordoned nodes).
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
pub const TAINT_DISK_PRESSURE: &str = "node.kubernetes.io/disk-pressure";
pub const TAINT_MEMORY_PRESSURE: &str = "node.kubernetes.io/memory-pressure";
pub const TAINT_PID_PRESSURE: &str = "node.kubernetes.io/pid-pressure";
pub const TAINT_NETWORK_UNAVAILABLE: &str = "node.kubernetes.io/network-unavailable";

pub const NO_SCHEDULE: &str = "NoSchedule";
pub const NO_EXECUTE: &str = "NoExecute";
pub const PREFER_NO_SCHEDULE: &str = "PreferNoSchedule";

/// The scheduler this one is: pods naming another `spec.schedulerName` are left alone.
pub const SCHEDULER_NAME: &str = "default-scheduler";

/// Whether `toleration` tolerates `taint` (upstream's `Toleration.ToleratesTaint`): the effects
/// match (an empty effect matches all), the keys match (an empty key matches all) and, for the
/// `Equal` operator (the default), the values are equal; `Exists` ignores the value.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or("");
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or("") {
        "" | "Equal" => toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        "Exists" => true,
        _ => false,
    }
}

/// Whether any of `tolerations` tolerates `taint`.
pub fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| tolerates(t, taint))
}

/// The first of `taints` whose effect is one of `effects` and which no toleration tolerates
/// (upstream's `FindMatchingUntoleratedTaint`).
pub fn first_untolerated<'a>(taints: &'a [Taint], tolerations: &[Toleration], effects: &[&str]) -> Option<&'a Taint> {
    taints.iter().find(|t| effects.contains(&t.effect.as_str()) && !tolerated(tolerations, t))
}

/// A taint with no value.
pub fn taint(key: &str, effect: &str) -> Taint {
    Taint { key: key.into(), effect: effect.into(), value: None, time_added: None }
}

/// The node's Ready condition: `Some(true)` for True, `Some(false)` for False, `None` when it is
/// Unknown or missing.
pub fn node_ready(node: &Node) -> Option<bool> {
    let conditions = node.status.as_ref().and_then(|s| s.conditions.as_ref())?;
    let ready = conditions.iter().find(|c| c.type_ == "Ready")?;
    match ready.status.as_str() {
        "True" => Some(true),
        "False" => Some(false),
        _ => None,
    }
}

/// The node's own taints (`spec.taints`).
pub fn node_taints(node: &Node) -> &[Taint] {
    node.spec.as_ref().and_then(|s| s.taints.as_deref()).unwrap_or(&[])
}

/// The taints the scheduler sees on a node: its own, plus the condition taints upstream's node
/// lifecycle controller would have added (podnet has none): `not-ready:NoSchedule` when the node
/// is not Ready (False, or no Ready condition yet, as a registering kubelet marks it) and
/// `unreachable:NoSchedule` when Ready is Unknown. So a node that is not Ready takes only pods
/// that tolerate that, like the network daemons that make it Ready.
pub fn scheduling_taints(node: &Node) -> Vec<Taint> {
    let mut taints = node_taints(node).to_vec();
    let conditions_known = node.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|c| !c.is_empty());
    let condition_taint = match node_ready(node) {
        Some(true) => None,
        Some(false) => Some(TAINT_NOT_READY),
        None if !conditions_known => Some(TAINT_NOT_READY),
        None => Some(TAINT_UNREACHABLE),
    };
    if let Some(key) = condition_taint {
        if !taints.iter().any(|t| t.key == key && t.effect == NO_SCHEDULE) {
            taints.push(taint(key, NO_SCHEDULE));
        }
    }
    taints
}

/// Whether a node has `spec.unschedulable` (is cordoned).
pub fn node_unschedulable(node: &Node) -> bool {
    node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false)
}

fn node_labels(node: &Node) -> &BTreeMap<String, String> {
    static EMPTY: BTreeMap<String, String> = BTreeMap::new();
    node.metadata.labels.as_ref().unwrap_or(&EMPTY)
}

/// Whether one node selector requirement on labels holds (`In`, `NotIn`, `Exists`,
/// `DoesNotExist`, `Gt`, `Lt`). Malformed requirements do not hold.
fn label_requirement_matches(req: &NodeSelectorRequirement, labels: &BTreeMap<String, String>) -> bool {
    let values = req.values.as_deref().unwrap_or(&[]);
    let value = labels.get(&req.key);
    match req.operator.as_str() {
        "In" => value.is_some_and(|v| values.contains(v)),
        "NotIn" => value.is_none_or(|v| !values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let [bound] = values else { return false };
            let (Ok(bound), Some(Ok(value))) = (bound.parse::<i64>(), value.map(|v| v.parse::<i64>())) else {
                return false;
            };
            if req.operator == "Gt" {
                value > bound
            } else {
                value < bound
            }
        }
        _ => false,
    }
}

/// Whether one `matchFields` requirement holds: only `metadata.name` with `In`/`NotIn` exists.
fn field_requirement_matches(req: &NodeSelectorRequirement, node_name: &str) -> bool {
    if req.key != "metadata.name" {
        return false;
    }
    let values = req.values.as_deref().unwrap_or(&[]);
    match req.operator.as_str() {
        "In" => values.iter().any(|v| v == node_name),
        "NotIn" => !values.iter().any(|v| v == node_name),
        _ => false,
    }
}

/// Whether a node selector term matches a node: every expression and every field requirement
/// holds. A term with no requirement at all matches no node, as upstream.
pub fn term_matches(term: &NodeSelectorTerm, node: &Node) -> bool {
    let expressions = term.match_expressions.as_deref().unwrap_or(&[]);
    let fields = term.match_fields.as_deref().unwrap_or(&[]);
    if expressions.is_empty() && fields.is_empty() {
        return false;
    }
    let labels = node_labels(node);
    let name = node.metadata.name.as_deref().unwrap_or("");
    expressions.iter().all(|r| label_requirement_matches(r, labels))
        && fields.iter().all(|r| field_requirement_matches(r, name))
}

/// Whether a node satisfies the pod's `nodeSelector` and its required node affinity (any one
/// of the `nodeSelectorTerms`): upstream's `GetRequiredNodeAffinity(pod).Match(node)`.
pub fn required_affinity_matches(spec: &PodSpec, node: &Node) -> bool {
    let labels = node_labels(node);
    if let Some(selector) = &spec.node_selector {
        if !selector.iter().all(|(k, v)| labels.get(k) == Some(v)) {
            return false;
        }
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| na.required_during_scheduling_ignored_during_execution.as_ref());
    match required {
        None => true,
        Some(selector) => selector.node_selector_terms.iter().any(|t| term_matches(t, node)),
    }
}

/// The sum of the weights of the pod's preferred node affinity terms the node matches.
pub fn preferred_affinity_score(spec: &PodSpec, node: &Node) -> i64 {
    let preferred = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| na.preferred_during_scheduling_ignored_during_execution.as_deref())
        .unwrap_or(&[]);
    preferred.iter().filter(|p| term_matches(&p.preference, node)).map(|p| i64::from(p.weight)).sum()
}

/// The node a pod is for: `spec.nodeName`, or else the single node name of a required
/// `matchFields metadata.name In [name]` term, which is how DaemonSet pods name their node
/// (upstream's `GetTargetNodeName`).
pub fn target_node_name(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(name) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        return Some(name.to_string());
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms.iter().find_map(|term| {
        term.match_fields.as_deref()?.iter().find_map(|f| match (f.key.as_str(), f.operator.as_str()) {
            ("metadata.name", "In") => match f.values.as_deref() {
                Some([name]) => Some(name.clone()),
                _ => None,
            },
            _ => None,
        })
    })
}

/// Why a node cannot take a pod: the reasons of upstream's filter plugins, as `kubectl describe`
/// shows them in FailedScheduling events.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Unfit {
    /// NodeUnschedulable: the node is cordoned and the pod does not tolerate that.
    Unschedulable,
    /// NodeName: the pod's `spec.nodeName` names another node.
    NodeName,
    /// TaintToleration: a NoSchedule or NoExecute taint the pod does not tolerate.
    Taint { key: String, value: String },
    /// NodeAffinity: the nodeSelector or the required node affinity does not match.
    Affinity,
}

impl std::fmt::Display for Unfit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unfit::Unschedulable => f.write_str("node(s) were unschedulable"),
            Unfit::NodeName => f.write_str("node(s) didn't match the requested node name"),
            Unfit::Taint { key, value } => write!(f, "node(s) had untolerated taint {{{key}: {value}}}"),
            Unfit::Affinity => f.write_str("node(s) didn't match Pod's node affinity/selector"),
        }
    }
}

/// Runs the filters on one node, in the order of upstream's default profile (NodeUnschedulable,
/// NodeName, TaintToleration, NodeAffinity), and returns the first that fails.
pub fn filter(spec: &PodSpec, node: &Node) -> Result<(), Unfit> {
    let tolerations = spec.tolerations.as_deref().unwrap_or(&[]);
    if node_unschedulable(node) && !tolerated(tolerations, &taint(TAINT_UNSCHEDULABLE, NO_SCHEDULE)) {
        return Err(Unfit::Unschedulable);
    }
    let node_name = node.metadata.name.as_deref().unwrap_or("");
    if spec.node_name.as_deref().is_some_and(|n| !n.is_empty() && n != node_name) {
        return Err(Unfit::NodeName);
    }
    let taints = scheduling_taints(node);
    if let Some(t) = first_untolerated(&taints, tolerations, &[NO_SCHEDULE, NO_EXECUTE]) {
        return Err(Unfit::Taint { key: t.key.clone(), value: t.value.clone().unwrap_or_default() });
    }
    if !required_affinity_matches(spec, node) {
        return Err(Unfit::Affinity);
    }
    Ok(())
}

/// How much a feasible node is wanted; the greatest wins. Compared in order: fewer untolerated
/// PreferNoSchedule taints, more preferred-affinity weight, fewer pods, then the name (earlier
/// first, hence the `Reverse`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Score<'a> {
    prefer_no_schedule: std::cmp::Reverse<usize>,
    preferred_affinity: i64,
    pods: std::cmp::Reverse<usize>,
    name: std::cmp::Reverse<&'a str>,
}

/// Why a pod fits no node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FitError {
    pub nodes: usize,
    /// Each failing node's reason.
    pub reasons: Vec<Unfit>,
}

impl std::fmt::Display for FitError {
    /// Upstream's `FitError.Error()`: "0/3 nodes are available: 1 node(s) …, 2 node(s) …." with
    /// the "count reason" strings sorted; "no nodes available to schedule pods" when there is
    /// no node at all.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.nodes == 0 {
            return f.write_str("no nodes available to schedule pods");
        }
        let mut histogram: BTreeMap<String, usize> = BTreeMap::new();
        for reason in &self.reasons {
            *histogram.entry(reason.to_string()).or_default() += 1;
        }
        let mut parts: Vec<String> = histogram.iter().map(|(reason, n)| format!("{n} {reason}")).collect();
        parts.sort();
        write!(f, "0/{} nodes are available", self.nodes)?;
        if !parts.is_empty() {
            write!(f, ": {}", parts.join(", "))?;
        }
        f.write_str(".")
    }
}

/// Picks the node for a pod among `nodes`; `pods_on(node)` counts the pods already there.
pub fn choose_node<'a>(
    spec: &PodSpec,
    nodes: &[&'a Node],
    pods_on: impl Fn(&str) -> usize,
) -> Result<&'a Node, FitError> {
    let tolerations = spec.tolerations.as_deref().unwrap_or(&[]);
    let mut reasons = Vec::new();
    let mut best: Option<(Score, &Node)> = None;
    for node in nodes {
        if let Err(reason) = filter(spec, node) {
            reasons.push(reason);
            continue;
        }
        let name = node.metadata.name.as_deref().unwrap_or("");
        let taints = scheduling_taints(node);
        let score = Score {
            prefer_no_schedule: std::cmp::Reverse(
                taints.iter().filter(|t| t.effect == PREFER_NO_SCHEDULE && !tolerated(tolerations, t)).count(),
            ),
            preferred_affinity: preferred_affinity_score(spec, node),
            pods: std::cmp::Reverse(pods_on(name)),
            name: std::cmp::Reverse(name),
        };
        if best.as_ref().is_none_or(|(b, _)| score > *b) {
            best = Some((score, node));
        }
    }
    best.map(|(_, node)| node).ok_or(FitError { nodes: nodes.len(), reasons })
}

/// Whether the scheduler should place this pod: not yet bound, not being deleted, not finished,
/// and asking for this scheduler (an empty name means the default one).
pub fn wants_scheduling(pod: &Pod) -> bool {
    let Some(spec) = &pod.spec else { return false };
    let scheduler = spec.scheduler_name.as_deref().unwrap_or("");
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("");
    spec.node_name.as_deref().unwrap_or("").is_empty()
        && pod.metadata.deletion_timestamp.is_none()
        && (scheduler.is_empty() || scheduler == SCHEDULER_NAME)
        && !matches!(phase, "Succeeded" | "Failed")
}

/// The node a pod takes a place on, for spreading: its node when it is bound and not finished.
pub fn occupies_node(pod: &Pod) -> Option<&str> {
    let node = pod.spec.as_ref()?.node_name.as_deref().filter(|n| !n.is_empty())?;
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("");
    (!matches!(phase, "Succeeded" | "Failed")).then_some(node)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(v: serde_json::Value) -> Node {
        serde_json::from_value(v).unwrap()
    }

    fn ready_node(name: &str) -> Node {
        node(json!({
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]},
        }))
    }

    fn spec(v: serde_json::Value) -> PodSpec {
        serde_json::from_value(v).unwrap()
    }

    fn tol(v: serde_json::Value) -> Toleration {
        serde_json::from_value(v).unwrap()
    }

    fn tainted(name: &str, taints: serde_json::Value) -> Node {
        let mut n = ready_node(name);
        n.spec = Some(serde_json::from_value(json!({"taints": taints})).unwrap());
        n
    }

    #[test]
    fn toleration_rules() {
        let t = Taint { key: "k".into(), value: Some("v".into()), effect: "NoSchedule".into(), time_added: None };
        assert!(tolerates(&tol(json!({"key": "k", "value": "v"})), &t));
        assert!(tolerates(&tol(json!({"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"})), &t));
        assert!(!tolerates(&tol(json!({"key": "k", "value": "w"})), &t));
        assert!(!tolerates(&tol(json!({"key": "k", "value": "v", "effect": "NoExecute"})), &t));
        assert!(tolerates(&tol(json!({"key": "k", "operator": "Exists"})), &t));
        assert!(tolerates(&tol(json!({"operator": "Exists"})), &t), "empty key with Exists tolerates everything");
        assert!(!tolerates(&tol(json!({"key": "other", "operator": "Exists"})), &t));
        assert!(!tolerates(&tol(json!({"key": "k", "operator": "Gt", "value": "1"})), &t));
        let no_value = taint("k", "NoSchedule");
        assert!(tolerates(&tol(json!({"key": "k"})), &no_value));
    }

    #[test]
    fn readiness_becomes_a_taint() {
        assert!(scheduling_taints(&ready_node("a")).is_empty());
        let not_ready =
            node(json!({"metadata": {"name": "a"}, "status": {"conditions": [{"type": "Ready", "status": "False"}]}}));
        assert_eq!(scheduling_taints(&not_ready), vec![taint(TAINT_NOT_READY, NO_SCHEDULE)]);
        let unknown = node(
            json!({"metadata": {"name": "a"}, "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}),
        );
        assert_eq!(scheduling_taints(&unknown), vec![taint(TAINT_UNREACHABLE, NO_SCHEDULE)]);
        let fresh = node(json!({"metadata": {"name": "a"}}));
        assert_eq!(scheduling_taints(&fresh), vec![taint(TAINT_NOT_READY, NO_SCHEDULE)]);
        // Already tainted by someone else: not twice.
        let mut both = not_ready.clone();
        both.spec = Some(
            serde_json::from_value(json!({"taints": [{"key": TAINT_NOT_READY, "effect": "NoSchedule"}]})).unwrap(),
        );
        assert_eq!(scheduling_taints(&both).len(), 1);
        // A pod tolerating not-ready (a network daemon) may go there; others may not.
        assert_eq!(
            filter(&spec(json!({})), &not_ready),
            Err(Unfit::Taint { key: TAINT_NOT_READY.into(), value: String::new() })
        );
        assert!(filter(&spec(json!({"tolerations": [{"operator": "Exists"}]})), &not_ready).is_ok());
    }

    #[test]
    fn node_selector_and_affinity() {
        let n = node(json!({
            "metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "n1", "zone": "a", "cpus": "8"}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]},
        }));
        let ok = |s: serde_json::Value| required_affinity_matches(&spec(s), &n);
        assert!(ok(json!({})));
        assert!(ok(json!({"nodeSelector": {"kubernetes.io/hostname": "n1"}})));
        assert!(!ok(json!({"nodeSelector": {"kubernetes.io/hostname": "n2"}})));
        assert!(!ok(json!({"nodeSelector": {"zone": "a", "missing": "x"}})));
        let affinity = |terms: serde_json::Value| json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}});
        assert!(ok(affinity(json!([{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}]))));
        assert!(!ok(affinity(json!([{"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}]))));
        assert!(ok(affinity(json!([{"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]}]))));
        assert!(ok(affinity(json!([{"matchExpressions": [{"key": "cpus", "operator": "Gt", "values": ["4"]}]}]))));
        assert!(!ok(affinity(json!([{"matchExpressions": [{"key": "cpus", "operator": "Lt", "values": ["4"]}]}]))));
        assert!(!ok(affinity(json!([{"matchExpressions": [{"key": "zone", "operator": "Gt", "values": ["4"]}]}]))));
        assert!(ok(affinity(json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]))));
        assert!(!ok(affinity(
            json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}])
        )));
        // Terms are ORed, requirements within a term ANDed; an empty term matches nothing.
        assert!(ok(affinity(json!([
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]},
            {"matchExpressions": [{"key": "zone", "operator": "Exists"}]},
        ]))));
        assert!(!ok(affinity(json!([{
            "matchExpressions": [{"key": "zone", "operator": "Exists"}],
            "matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["n1"]}],
        }]))));
        assert!(!ok(affinity(json!([{}]))));
        assert!(!ok(affinity(json!([]))));
        // nodeSelector and affinity must both hold.
        let mut both = affinity(json!([{"matchExpressions": [{"key": "zone", "operator": "Exists"}]}]));
        both["nodeSelector"] = json!({"zone": "b"});
        assert!(!ok(both));
    }

    #[test]
    fn target_node_of_daemon_pods() {
        let pod: Pod = serde_json::from_value(json!({"spec": {"containers": [], "affinity": {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n7"]}]}
        ]}}}}}))
        .unwrap();
        assert_eq!(target_node_name(&pod).as_deref(), Some("n7"));
        let bound: Pod = serde_json::from_value(json!({"spec": {"containers": [], "nodeName": "n1"}})).unwrap();
        assert_eq!(target_node_name(&bound).as_deref(), Some("n1"));
        let free: Pod = serde_json::from_value(json!({"spec": {"containers": []}})).unwrap();
        assert_eq!(target_node_name(&free), None);
    }

    #[test]
    fn filters_report_the_first_failure_in_upstream_order() {
        let mut cordoned = tainted("c", json!([{"key": "dedicated", "value": "infra", "effect": "NoSchedule"}]));
        cordoned.spec.as_mut().unwrap().unschedulable = Some(true);
        assert_eq!(filter(&spec(json!({})), &cordoned), Err(Unfit::Unschedulable));
        let daemon =
            spec(json!({"tolerations": [{"key": TAINT_UNSCHEDULABLE, "operator": "Exists", "effect": "NoSchedule"}]}));
        assert_eq!(filter(&daemon, &cordoned), Err(Unfit::Taint { key: "dedicated".into(), value: "infra".into() }));
        let t = tainted(
            "t",
            json!([{"key": "evict", "effect": "NoExecute"}, {"key": "soft", "effect": "PreferNoSchedule"}]),
        );
        assert_eq!(filter(&spec(json!({})), &t), Err(Unfit::Taint { key: "evict".into(), value: String::new() }));
        assert!(filter(&spec(json!({"tolerations": [{"key": "evict", "operator": "Exists"}]})), &t).is_ok());
        assert_eq!(filter(&spec(json!({"nodeName": "x"})), &ready_node("y")), Err(Unfit::NodeName));
        assert_eq!(filter(&spec(json!({"nodeSelector": {"a": "b"}})), &ready_node("y")), Err(Unfit::Affinity));
    }

    #[test]
    fn fit_error_messages_read_like_upstream() {
        let e = FitError {
            nodes: 2,
            reasons: vec![Unfit::Affinity, Unfit::Taint { key: "dedicated".into(), value: "infra".into() }],
        };
        assert_eq!(
            e.to_string(),
            "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, \
             1 node(s) had untolerated taint {dedicated: infra}."
        );
        let e = FitError { nodes: 3, reasons: vec![Unfit::Unschedulable, Unfit::Affinity, Unfit::Affinity] };
        assert_eq!(
            e.to_string(),
            "0/3 nodes are available: 1 node(s) were unschedulable, 2 node(s) didn't match Pod's node affinity/selector."
        );
        assert_eq!(FitError { nodes: 0, reasons: vec![] }.to_string(), "no nodes available to schedule pods");
    }

    #[test]
    fn choice_spreads_and_prefers() {
        let (a, b, c) = (ready_node("a"), ready_node("b"), ready_node("c"));
        let nodes = [&a, &b, &c];
        let counts = |n: &str| match n {
            "a" => 2,
            "b" => 1,
            _ => 1,
        };
        let name = |r: Result<&Node, FitError>| r.unwrap().metadata.name.clone().unwrap();
        assert_eq!(name(choose_node(&spec(json!({})), &nodes, counts)), "b", "fewest pods, then name order");
        assert_eq!(name(choose_node(&spec(json!({})), &nodes, |_| 0)), "a");
        // PreferNoSchedule only steers.
        let soft = tainted("a", json!([{"key": "soft", "effect": "PreferNoSchedule"}]));
        assert_eq!(name(choose_node(&spec(json!({})), &[&soft, &b], |_| 0)), "b");
        assert_eq!(name(choose_node(&spec(json!({})), &[&soft], |_| 0)), "a");
        // Preferred affinity weighs more than the pod count.
        let prefer_c = spec(json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 10, "preference": {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["c"]}]}}
        ]}}}));
        assert_eq!(name(choose_node(&prefer_c, &nodes, |n| if n == "c" { 5 } else { 0 })), "c");
        // Nothing fits: every node's reason.
        let err =
            choose_node(&spec(json!({"nodeSelector": {"kubernetes.io/hostname": "z"}})), &nodes, |_| 0).unwrap_err();
        assert_eq!(err.reasons.len(), 3);
        assert_eq!(err.to_string(), "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector.");
    }

    #[test]
    fn which_pods_are_ours() {
        let pod = |v: serde_json::Value| -> Pod { serde_json::from_value(v).unwrap() };
        assert!(wants_scheduling(&pod(json!({"spec": {"containers": []}}))));
        assert!(wants_scheduling(&pod(json!({"spec": {"containers": [], "schedulerName": "default-scheduler"}}))));
        assert!(!wants_scheduling(&pod(json!({"spec": {"containers": [], "schedulerName": "other"}}))));
        assert!(!wants_scheduling(&pod(json!({"spec": {"containers": [], "nodeName": "n"}}))));
        assert!(!wants_scheduling(&pod(
            json!({"metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"}, "spec": {"containers": []}})
        )));
        assert!(!wants_scheduling(&pod(json!({"spec": {"containers": []}, "status": {"phase": "Failed"}}))));
        assert_eq!(occupies_node(&pod(json!({"spec": {"containers": [], "nodeName": "n"}}))), Some("n"));
        assert_eq!(
            occupies_node(&pod(json!({"spec": {"containers": [], "nodeName": "n"}, "status": {"phase": "Succeeded"}}))),
            None
        );
    }
}
