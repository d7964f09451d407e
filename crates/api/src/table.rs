//! Server-side Table printing, as kube-apiserver does it.
//!
//! When `kubectl get` talks to an API server it asks for
//! `Accept: application/json;as=Table;v=v1;g=meta.k8s.io` and prints whatever
//! columns and cells the server sends back. This module builds those
//! `meta.k8s.io/v1` `Table` objects for podnet's API server, reproducing the
//! column definitions and cell values of kube-apiserver's built-in printers
//! (`pkg/printers/internalversion/printers.go` and the helpers it calls:
//! `duration.HumanDuration` for ages, the endpoints / ports / external-IP
//! formatters, the pod STATUS state machine, label and label-selector
//! rendering, ...), so that `kubectl get` output looks exactly as it does
//! against a real cluster.
//!
//! Like kube-apiserver, every row carries all cells, the `-o wide`
//! (priority 1) ones included; kubectl hides priority-1 columns itself unless
//! `-o wide` is given. Kinds without a dedicated printer get the generic
//! default table (`NAME`, `Created At`).
//!
//! Everything here is pure logic over `serde_json::Value` objects in the
//! JSON shape the API returns (camelCase fields). Missing fields never panic:
//! they print what upstream prints for the zero value. Where kube-apiserver
//! would have defaulted a field before printing (a Service's `type`, a
//! port's `protocol`, a Deployment's `replicas`, a Pod's `phase`, ...),
//! the same default is applied here.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

/// One column of a Table, as `meta.k8s.io/v1` `TableColumnDefinition`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColumnDefinition {
    /// Column header, e.g. "Name", "Ready", "Age".
    pub name: &'static str,
    /// "string", "integer" or "date" (and "boolean" upstream).
    pub type_: &'static str,
    /// "name" for the object-name column, "" otherwise.
    pub format: &'static str,
    /// Human-readable description of the column.
    pub description: &'static str,
    /// 0 = always shown, 1 = shown only with `-o wide`.
    pub priority: i32,
}

impl ColumnDefinition {
    /// The column as it appears in a Table's `columnDefinitions`.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("name".into(), Value::from(self.name));
        m.insert("type".into(), Value::from(self.type_));
        m.insert("format".into(), Value::from(self.format));
        m.insert("description".into(), Value::from(self.description));
        m.insert("priority".into(), Value::from(self.priority));
        Value::Object(m)
    }
}

/// What each row's `object` holds: the `includeObject` query parameter of a
/// Table request (`None`, `Metadata` — the default — or `Object`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum IncludeObject {
    /// `"object": null`.
    None,
    /// A `meta.k8s.io/v1` `PartialObjectMetadata` wrapping the object's metadata.
    #[default]
    Metadata,
    /// The whole object.
    Object,
}

impl IncludeObject {
    /// Parses the `includeObject` query parameter; an empty value means the
    /// default (`Metadata`), anything unknown is `None` here (the caller
    /// should reject it with 400 as kube-apiserver does).
    pub fn parse(s: &str) -> Option<IncludeObject> {
        match s {
            "" | "Metadata" => Some(IncludeObject::Metadata),
            "None" => Some(IncludeObject::None),
            "Object" => Some(IncludeObject::Object),
            _ => None,
        }
    }
}

/// List metadata and options for [`table_with_meta`].
#[derive(Clone, Copy, Debug, Default)]
pub struct TableMeta<'a> {
    /// `metadata.resourceVersion` (omitted when empty, as upstream).
    pub resource_version: &'a str,
    /// `metadata.continue` (omitted when `None` or empty).
    pub continue_token: Option<&'a str>,
    /// `metadata.remainingItemCount` (omitted when `None`).
    pub remaining_item_count: Option<i64>,
    /// `TableOptions.noHeaders`: leave the column definitions out
    /// (`"columnDefinitions": null`, as upstream).
    pub no_headers: bool,
}

// ---------------------------------------------------------------------------
// Kinds and columns
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Printer {
    Pod,
    Service,
    Endpoints,
    Namespace,
    Node,
    ConfigMap,
    Secret,
    Event,
    ServiceAccount,
    Deployment,
    ReplicaSet,
    DaemonSet,
    EndpointSlice,
    Ingress,
    IngressClass,
    NetworkPolicy,
    Lease,
    Default,
}

fn printer(kind: &str) -> Printer {
    const KINDS: &[(&str, Printer)] = &[
        ("Pod", Printer::Pod),
        ("Service", Printer::Service),
        ("Endpoints", Printer::Endpoints),
        ("Namespace", Printer::Namespace),
        ("Node", Printer::Node),
        ("ConfigMap", Printer::ConfigMap),
        ("Secret", Printer::Secret),
        ("Event", Printer::Event),
        ("ServiceAccount", Printer::ServiceAccount),
        ("Deployment", Printer::Deployment),
        ("ReplicaSet", Printer::ReplicaSet),
        ("DaemonSet", Printer::DaemonSet),
        ("EndpointSlice", Printer::EndpointSlice),
        ("Ingress", Printer::Ingress),
        ("IngressClass", Printer::IngressClass),
        ("NetworkPolicy", Printer::NetworkPolicy),
        ("Lease", Printer::Lease),
    ];
    KINDS.iter().find(|(k, _)| k.eq_ignore_ascii_case(kind)).map(|(_, p)| *p).unwrap_or(Printer::Default)
}

const DESC_NAME: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const DESC_AGE: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
const DESC_CONTAINERS: &str = "Names of each container in the template.";
const DESC_IMAGES: &str = "Images referenced by each container in the template.";

fn col(name: &'static str, type_: &'static str, priority: i32, description: &'static str) -> ColumnDefinition {
    ColumnDefinition { name, type_, format: if name == "Name" { "name" } else { "" }, description, priority }
}

fn name_col() -> ColumnDefinition {
    col("Name", "string", 0, DESC_NAME)
}

fn age_col() -> ColumnDefinition {
    col("Age", "string", 0, DESC_AGE)
}

/// The column definitions kube-apiserver sends for `kind` (e.g. "Pod"),
/// wide (priority 1) columns included. Unknown kinds get the default table.
pub fn columns(kind: &str) -> Vec<ColumnDefinition> {
    match printer(kind) {
        Printer::Pod => vec![
            name_col(),
            col("Ready", "string", 0, "The aggregate readiness state of this pod for accepting traffic."),
            col("Status", "string", 0, "The aggregate status of the containers in this pod."),
            col("Restarts", "string", 0, "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
            age_col(),
            col("IP", "string", 1, "IP address allocated to the pod. Routable at least within the cluster."),
            col("Node", "string", 1, "The name of the node this pod is scheduled onto."),
            col("Nominated Node", "string", 1, "The node nominated by the scheduler for preemption."),
            col("Readiness Gates", "string", 1, "Readiness gates that are true, out of those the pod declares."),
        ],
        Printer::Service => vec![
            name_col(),
            col("Type", "string", 0, "How the Service is exposed: ClusterIP, NodePort, LoadBalancer or ExternalName."),
            col("Cluster-IP", "string", 0, "The IP address of the service, usually assigned randomly."),
            col("External-IP", "string", 0, "IP addresses through which the service is reachable from outside the cluster."),
            col("Port(s)", "string", 0, "The ports exposed by this service."),
            age_col(),
            col("Selector", "string", 1, "Route service traffic to pods with label keys and values matching this selector."),
        ],
        Printer::Endpoints => vec![
            name_col(),
            col("Endpoints", "string", 0, "The set of all endpoints is the union of all subsets."),
            age_col(),
        ],
        Printer::Namespace => vec![
            name_col(),
            col("Status", "string", 0, "The status of the namespace"),
            age_col(),
        ],
        Printer::Node => vec![
            name_col(),
            col("Status", "string", 0, "The status of the node"),
            col("Roles", "string", 0, "The roles of the node"),
            age_col(),
            col("Version", "string", 0, "Kubelet Version reported by the node."),
            col("Internal-IP", "string", 1, "List of addresses reachable to the node."),
            col("External-IP", "string", 1, "List of addresses reachable to the node."),
            col("OS-Image", "string", 1, "OS Image reported by the node from /etc/os-release."),
            col("Kernel-Version", "string", 1, "Kernel Version reported by the node from 'uname -r'."),
            col("Container-Runtime", "string", 1, "ContainerRuntime Version reported by the node through runtime remote API."),
        ],
        Printer::ConfigMap => vec![
            name_col(),
            col("Data", "string", 0, "Number of data and binaryData entries."),
            age_col(),
        ],
        Printer::Secret => vec![
            name_col(),
            col("Type", "string", 0, "Used to facilitate programmatic handling of secret data."),
            col("Data", "string", 0, "Number of data entries."),
            age_col(),
        ],
        Printer::Event => vec![
            col("Last Seen", "string", 0, "The time at which the most recent occurrence of this event was recorded."),
            col("Type", "string", 0, "Type of this event (Normal, Warning)."),
            col("Reason", "string", 0, "A short, machine understandable string that gives the reason for the transition into the object's current status."),
            col("Object", "string", 0, "The object that this event is about."),
            col("Subobject", "string", 1, "The field of the involved object this event is about, if any."),
            col("Source", "string", 1, "The component reporting this event."),
            col("Message", "string", 0, "A human-readable description of the status of this operation."),
            col("First Seen", "string", 1, "The time at which the event was first recorded."),
            col("Count", "string", 1, "The number of times this event has occurred."),
            col("Name", "string", 1, DESC_NAME),
        ],
        Printer::ServiceAccount => vec![
            name_col(),
            col("Secrets", "string", 0, "Number of secrets listed by the service account."),
            age_col(),
        ],
        Printer::Deployment => vec![
            name_col(),
            col("Ready", "string", 0, "Number of the pod with ready state"),
            col("Up-to-date", "string", 0, "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
            col("Available", "string", 0, "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
            age_col(),
            col("Containers", "string", 1, DESC_CONTAINERS),
            col("Images", "string", 1, DESC_IMAGES),
            col("Selector", "string", 1, "Label selector for pods."),
        ],
        Printer::ReplicaSet => vec![
            name_col(),
            col("Desired", "integer", 0, "Replicas is the number of desired replicas."),
            col("Current", "integer", 0, "Replicas is the most recently observed number of replicas."),
            col("Ready", "integer", 0, "The number of ready replicas for this replica set."),
            age_col(),
            col("Containers", "string", 1, DESC_CONTAINERS),
            col("Images", "string", 1, DESC_IMAGES),
            col("Selector", "string", 1, "Selector is a label query over pods that should match the replica count."),
        ],
        Printer::DaemonSet => vec![
            name_col(),
            col("Desired", "integer", 0, "The total number of nodes that should be running the daemon pod."),
            col("Current", "integer", 0, "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod."),
            col("Ready", "integer", 0, "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready."),
            col("Up-to-date", "integer", 0, "The total number of nodes that are running updated daemon pod."),
            col("Available", "integer", 0, "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available."),
            col("Node Selector", "string", 0, "NodeSelector is a selector which must be true for the pod to fit on a node."),
            age_col(),
            col("Containers", "string", 1, DESC_CONTAINERS),
            col("Images", "string", 1, DESC_IMAGES),
            col("Selector", "string", 1, "A label query over pods that are managed by the daemon set."),
        ],
        Printer::EndpointSlice => vec![
            name_col(),
            col("AddressType", "string", 0, "addressType specifies the type of address carried by this EndpointSlice."),
            col("Ports", "string", 0, "ports specifies the list of network ports exposed by each endpoint in this slice."),
            col("Endpoints", "string", 0, "endpoints is a list of unique endpoints in this slice."),
            age_col(),
        ],
        Printer::Ingress => vec![
            name_col(),
            col("Class", "string", 0, "The name of the IngressClass resource that should be used for additional configuration"),
            col("Hosts", "string", 0, "Hosts that incoming requests are matched against before the ingress rule"),
            col("Address", "string", 0, "Address is a list containing ingress points for the load-balancer"),
            col("Ports", "string", 0, "Ports of TLS configurations that open"),
            age_col(),
        ],
        Printer::IngressClass => vec![
            name_col(),
            col("Controller", "string", 0, "Controller that is responsible for handling this class"),
            col("Parameters", "string", 0, "A reference to a resource with additional parameters"),
            age_col(),
        ],
        Printer::NetworkPolicy => vec![
            name_col(),
            col("Pod-Selector", "string", 0, "Selects the pods to which this NetworkPolicy object applies."),
            age_col(),
        ],
        Printer::Lease => vec![
            name_col(),
            col("Holder", "string", 0, "holderIdentity contains the identity of the holder of a current lease."),
            age_col(),
        ],
        Printer::Default => vec![
            name_col(),
            col("Created At", "date", 0, DESC_AGE),
        ],
    }
}

/// The cells of one row for `obj` of `kind`, one per column of
/// [`columns`]`(kind)`, wide columns included. `now` is the time ages are
/// measured against.
pub fn row_cells(kind: &str, obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    match printer(kind) {
        Printer::Pod => pod_cells(obj, now),
        Printer::Service => service_cells(obj, now),
        Printer::Endpoints => vec![name(obj).into(), format_endpoints(obj).into(), age(obj, now).into()],
        Printer::Namespace => {
            let phase = non_empty_or(st(obj, &["status", "phase"]), "Active");
            vec![name(obj).into(), phase.into(), age(obj, now).into()]
        }
        Printer::Node => node_cells(obj, now),
        Printer::ConfigMap => {
            let n = obj_len(obj, &["data"]) + obj_len(obj, &["binaryData"]);
            vec![name(obj).into(), Value::from(n as i64), age(obj, now).into()]
        }
        Printer::Secret => secret_cells(obj, now),
        Printer::Event => event_cells(obj, now),
        Printer::ServiceAccount => {
            vec![name(obj).into(), Value::from(arr(obj, &["secrets"]).len() as i64), age(obj, now).into()]
        }
        Printer::Deployment => deployment_cells(obj, now),
        Printer::ReplicaSet => replica_set_cells(obj, now),
        Printer::DaemonSet => daemon_set_cells(obj, now),
        Printer::EndpointSlice => vec![
            name(obj).into(),
            st(obj, &["addressType"]).into(),
            format_discovery_ports(arr(obj, &["ports"])).into(),
            format_discovery_endpoints(arr(obj, &["endpoints"])).into(),
            age(obj, now).into(),
        ],
        Printer::Ingress => ingress_cells(obj, now),
        Printer::IngressClass => ingress_class_cells(obj, now),
        Printer::NetworkPolicy => vec![
            name(obj).into(),
            format_label_selector(get(obj, &["spec", "podSelector"])).into(),
            age(obj, now).into(),
        ],
        Printer::Lease => vec![name(obj).into(), st(obj, &["spec", "holderIdentity"]).into(), age(obj, now).into()],
        Printer::Default => {
            // Go's zero time when the timestamp is missing, as upstream.
            let created = timestamp(get(obj, &["metadata", "creationTimestamp"]))
                .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                .unwrap_or_else(|| "0001-01-01T00:00:00Z".to_string());
            vec![name(obj).into(), created.into()]
        }
    }
}

/// The `conditions` of a Table row, when upstream sets any: a Pod that has
/// Succeeded or Failed carries a `Completed` row condition.
pub fn row_conditions(kind: &str, obj: &Value) -> Option<Value> {
    if printer(kind) != Printer::Pod {
        return None;
    }
    let (reason, message) = match st(obj, &["status", "phase"]) {
        "Succeeded" => ("Succeeded", "The pod has completed successfully."),
        "Failed" => ("Failed", "The pod failed."),
        _ => return None,
    };
    let mut c = Map::new();
    c.insert("type".into(), "Completed".into());
    c.insert("status".into(), "True".into());
    c.insert("reason".into(), reason.into());
    c.insert("message".into(), message.into());
    Some(Value::Array(vec![Value::Object(c)]))
}

/// The whole `meta.k8s.io/v1` Table for `objects` of `kind`, as
/// kube-apiserver returns it for `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`.
pub fn table(
    kind: &str,
    objects: &[&Value],
    resource_version: &str,
    include: IncludeObject,
    now: DateTime<Utc>,
) -> Value {
    let meta = TableMeta { resource_version, ..TableMeta::default() };
    table_with_meta(kind, objects, &meta, include, now)
}

/// [`table`] with the rest of the list metadata (`continue`,
/// `remainingItemCount`) and `noHeaders`.
pub fn table_with_meta(
    kind: &str,
    objects: &[&Value],
    meta: &TableMeta<'_>,
    include: IncludeObject,
    now: DateTime<Utc>,
) -> Value {
    let mut metadata = Map::new();
    if !meta.resource_version.is_empty() {
        metadata.insert("resourceVersion".into(), meta.resource_version.into());
    }
    if let Some(c) = meta.continue_token.filter(|c| !c.is_empty()) {
        metadata.insert("continue".into(), c.into());
    }
    if let Some(n) = meta.remaining_item_count {
        metadata.insert("remainingItemCount".into(), n.into());
    }

    let column_definitions = if meta.no_headers {
        Value::Null
    } else {
        Value::Array(columns(kind).iter().map(ColumnDefinition::to_json).collect())
    };

    let rows = objects
        .iter()
        .map(|obj| {
            let mut row = Map::new();
            row.insert("cells".into(), Value::Array(row_cells(kind, obj, now)));
            if let Some(conditions) = row_conditions(kind, obj) {
                row.insert("conditions".into(), conditions);
            }
            row.insert("object".into(), embedded_object(obj, include));
            Value::Object(row)
        })
        .collect();

    let mut t = Map::new();
    t.insert("kind".into(), "Table".into());
    t.insert("apiVersion".into(), "meta.k8s.io/v1".into());
    t.insert("metadata".into(), Value::Object(metadata));
    t.insert("columnDefinitions".into(), column_definitions);
    t.insert("rows".into(), Value::Array(rows));
    Value::Object(t)
}

fn embedded_object(obj: &Value, include: IncludeObject) -> Value {
    match include {
        IncludeObject::None => Value::Null,
        IncludeObject::Object => obj.clone(),
        IncludeObject::Metadata => {
            let mut m = Map::new();
            m.insert("kind".into(), "PartialObjectMetadata".into());
            m.insert("apiVersion".into(), "meta.k8s.io/v1".into());
            let md = match obj.get("metadata") {
                Some(v @ Value::Object(_)) => v.clone(),
                _ => Value::Object(Map::new()),
            };
            m.insert("metadata".into(), md);
            Value::Object(m)
        }
    }
}

// ---------------------------------------------------------------------------
// Field access helpers (never panic)
// ---------------------------------------------------------------------------

fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut cur = v;
    for p in path {
        cur = cur.as_object()?.get(*p)?;
    }
    if cur.is_null() {
        None
    } else {
        Some(cur)
    }
}

fn st<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    get(v, path).and_then(Value::as_str).unwrap_or("")
}

fn int_value(v: Option<&Value>) -> Option<i64> {
    let v = v?;
    v.as_i64().or_else(|| v.as_u64().map(|u| u.min(i64::MAX as u64) as i64)).or_else(|| v.as_f64().map(|f| f as i64))
}

fn int(v: &Value, path: &[&str]) -> i64 {
    int_value(get(v, path)).unwrap_or(0)
}

fn boolean(v: &Value, path: &[&str]) -> bool {
    get(v, path).and_then(Value::as_bool).unwrap_or(false)
}

fn arr<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    get(v, path).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
}

fn obj_map<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Map<String, Value>> {
    get(v, path).and_then(Value::as_object)
}

fn obj_len(v: &Value, path: &[&str]) -> usize {
    obj_map(v, path).map_or(0, Map::len)
}

fn name(obj: &Value) -> &str {
    st(obj, &["metadata", "name"])
}

fn non_empty_or<'a>(s: &'a str, default: &'a str) -> &'a str {
    if s.is_empty() {
        default
    } else {
        s
    }
}

fn timestamp(v: Option<&Value>) -> Option<DateTime<Utc>> {
    let s = v?.as_str()?;
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

// ---------------------------------------------------------------------------
// Time formatting
// ---------------------------------------------------------------------------

/// `duration.HumanDuration` from k8s.io/apimachinery: a succinct
/// representation of `d` with ~2-3 significant figures ("0s", "59s",
/// "2m3s", "10m", "3h4m", "8h", "2d3h", "10d", "3y", ...).
pub fn human_duration(d: chrono::Duration) -> String {
    // Go truncates toward zero when converting to whole units.
    let total_ns = d.num_nanoseconds();
    let seconds = match total_ns {
        Some(ns) => ns / 1_000_000_000,
        None => d.num_seconds(),
    };
    // Allow up to 2s (excluded) of clock skew: treat it as "now".
    if seconds < -1 {
        return "<invalid>".to_string();
    } else if seconds < 0 {
        return "0s".to_string();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        if s == 0 {
            return format!("{minutes}m");
        }
        return format!("{minutes}m{s}s");
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        if m == 0 {
            return format!("{hours}h");
        }
        return format!("{hours}h{m}m");
    } else if hours < 48 {
        return format!("{hours}h");
    } else if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 {
            return format!("{}d", hours / 24);
        }
        return format!("{}d{}h", hours / 24, h);
    } else if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    } else if hours < 24 * 365 * 8 {
        let dy = hours / 24 % 365;
        if dy == 0 {
            return format!("{}y", hours / 24 / 365);
        }
        return format!("{}y{}d", hours / 24 / 365, dy);
    }
    format!("{}y", hours / 24 / 365)
}

/// `translateTimestampSince`: "<unknown>" for a missing time, otherwise the
/// human duration from `t` to `now`.
fn since(t: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    match t {
        Some(t) => human_duration(now.signed_duration_since(t)),
        None => "<unknown>".to_string(),
    }
}

fn age(obj: &Value, now: DateTime<Utc>) -> String {
    since(timestamp(get(obj, &["metadata", "creationTimestamp"])), now)
}

// ---------------------------------------------------------------------------
// Labels and selectors
// ---------------------------------------------------------------------------

/// `labels.FormatLabels`: "k=v,k2=v2" sorted, or "<none>" when empty.
pub fn format_labels(labels: Option<&Value>) -> String {
    let mut pairs: Vec<String> = labels
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| format!("{}={}", k, v.as_str().unwrap_or(""))).collect())
        .unwrap_or_default();
    if pairs.is_empty() {
        return "<none>".to_string();
    }
    pairs.sort();
    pairs.join(",")
}

enum SelectorString {
    /// A nil selector (`labels.Nothing()`): renders as "".
    Nothing,
    /// Requirements rendered as kubectl does; "" for "everything".
    Selector(String),
    /// The selector could not be converted.
    Invalid,
}

/// `metav1.LabelSelectorAsSelector(sel).String()`.
fn label_selector_as_selector(sel: Option<&Value>) -> SelectorString {
    let Some(sel) = sel else {
        return SelectorString::Nothing;
    };
    let Some(sel) = sel.as_object() else {
        return SelectorString::Invalid;
    };
    let match_labels = sel.get("matchLabels").and_then(Value::as_object);
    let match_exprs = sel.get("matchExpressions").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
    // (key, rendered requirement)
    let mut reqs: Vec<(String, String)> = Vec::new();
    if let Some(ml) = match_labels {
        let mut keys: Vec<&String> = ml.keys().collect();
        keys.sort();
        for k in keys {
            let v = ml.get(k).and_then(Value::as_str).unwrap_or("");
            if k.is_empty() {
                return SelectorString::Invalid;
            }
            reqs.push((k.clone(), format!("{k}={v}")));
        }
    }
    for e in match_exprs {
        let key = e.get("key").and_then(Value::as_str).unwrap_or("");
        if key.is_empty() {
            return SelectorString::Invalid;
        }
        let mut values: Vec<&str> = e
            .get("values")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(|v| v.as_str().unwrap_or("")).collect())
            .unwrap_or_default();
        values.sort_unstable();
        let op = e.get("operator").and_then(Value::as_str).unwrap_or("");
        let rendered = match op {
            "In" | "NotIn" => {
                if values.is_empty() {
                    return SelectorString::Invalid;
                }
                let word = if op == "In" { "in" } else { "notin" };
                format!("{key} {word} ({})", values.join(","))
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    return SelectorString::Invalid;
                }
                if op == "Exists" {
                    key.to_string()
                } else {
                    format!("!{key}")
                }
            }
            _ => return SelectorString::Invalid,
        };
        reqs.push((key.to_string(), rendered));
    }
    // The selector keeps its requirements sorted by key.
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    SelectorString::Selector(reqs.into_iter().map(|(_, r)| r).collect::<Vec<_>>().join(","))
}

/// `metav1.FormatLabelSelector`: the selector as kubectl writes it
/// (`app=web,tier in (a,b)`), "<none>" when it selects everything or
/// nothing, "<error>" when it is malformed.
pub fn format_label_selector(sel: Option<&Value>) -> String {
    match label_selector_as_selector(sel) {
        SelectorString::Nothing => "<none>".to_string(),
        SelectorString::Selector(s) if s.is_empty() => "<none>".to_string(),
        SelectorString::Selector(s) => s,
        SelectorString::Invalid => "<error>".to_string(),
    }
}

/// `layoutContainerCells`: container names and images, comma-separated.
fn layout_containers(containers: &[Value]) -> (String, String) {
    let names: Vec<&str> = containers.iter().map(|c| st(c, &["name"])).collect();
    let images: Vec<&str> = containers.iter().map(|c| st(c, &["image"])).collect();
    (names.join(","), images.join(","))
}

// ---------------------------------------------------------------------------
// Pod
// ---------------------------------------------------------------------------

fn later(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

fn last_termination(cs: &Value) -> Option<DateTime<Utc>> {
    get(cs, &["lastState", "terminated"])?;
    timestamp(get(cs, &["lastState", "terminated", "finishedAt"]))
}

fn has_condition(pod: &Value, type_: &str) -> bool {
    arr(pod, &["status", "conditions"]).iter().any(|c| st(c, &["type"]) == type_ && st(c, &["status"]) == "True")
}

fn is_initialized(pod: &Value) -> bool {
    arr(pod, &["status", "conditions"])
        .iter()
        .find(|c| st(c, &["type"]) == "Initialized")
        .is_some_and(|c| st(c, &["status"]) == "True")
}

fn terminated_reason(term: &Value, prefix: &str) -> String {
    let reason = st(term, &["reason"]);
    if !reason.is_empty() {
        return format!("{prefix}{reason}");
    }
    let signal = int(term, &["signal"]);
    if signal != 0 {
        format!("{prefix}Signal:{signal}")
    } else {
        format!("{prefix}ExitCode:{}", int(term, &["exitCode"]))
    }
}

fn pod_cells(pod: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let containers = arr(pod, &["spec", "containers"]);
    let init_containers = arr(pod, &["spec", "initContainers"]);
    let restartable = |name: &str| {
        init_containers.iter().find(|c| st(c, &["name"]) == name).is_some_and(|c| st(c, &["restartPolicy"]) == "Always")
    };

    let mut restarts: i64 = 0;
    let mut restartable_restarts: i64 = 0;
    let mut total = containers.len() as i64;
    let mut ready: i64 = 0;
    let mut last_restart: Option<DateTime<Utc>> = None;
    let mut last_restartable_restart: Option<DateTime<Utc>> = None;

    // kube-apiserver sets phase Pending on create.
    let phase = non_empty_or(st(pod, &["status", "phase"]), "Pending");
    let mut reason = non_empty_or(st(pod, &["status", "reason"]), phase).to_string();

    for c in arr(pod, &["status", "conditions"]) {
        if st(c, &["type"]) == "PodScheduled" && st(c, &["reason"]) == "SchedulingGated" {
            reason = "SchedulingGated".to_string();
        }
    }

    for c in init_containers {
        if st(c, &["restartPolicy"]) == "Always" {
            total += 1;
        }
    }

    let mut initializing = false;
    for (i, cs) in arr(pod, &["status", "initContainerStatuses"]).iter().enumerate() {
        let rc = int(cs, &["restartCount"]);
        restarts += rc;
        let finished = last_termination(cs);
        last_restart = later(last_restart, finished);
        let is_restartable = restartable(st(cs, &["name"]));
        if is_restartable {
            restartable_restarts += rc;
            last_restartable_restart = later(last_restartable_restart, finished);
        }
        let terminated = get(cs, &["state", "terminated"]);
        let waiting_reason = st(cs, &["state", "waiting", "reason"]);
        if terminated.is_some_and(|t| int(t, &["exitCode"]) == 0) {
            continue;
        }
        if is_restartable && boolean(cs, &["started"]) {
            if boolean(cs, &["ready"]) {
                ready += 1;
            }
            continue;
        }
        if let Some(t) = terminated {
            reason = terminated_reason(t, "Init:");
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            reason = format!("Init:{waiting_reason}");
        } else {
            reason = format!("Init:{}/{}", i, init_containers.len());
        }
        initializing = true;
        break;
    }

    if !initializing || is_initialized(pod) {
        restarts = restartable_restarts;
        last_restart = last_restartable_restart;
        let mut has_running = false;
        for cs in arr(pod, &["status", "containerStatuses"]).iter().rev() {
            restarts += int(cs, &["restartCount"]);
            last_restart = later(last_restart, last_termination(cs));
            let waiting_reason = st(cs, &["state", "waiting", "reason"]);
            let terminated = get(cs, &["state", "terminated"]);
            if !waiting_reason.is_empty() {
                reason = waiting_reason.to_string();
            } else if let Some(t) = terminated {
                reason = terminated_reason(t, "");
            } else if boolean(cs, &["ready"]) && get(cs, &["state", "running"]).is_some() {
                has_running = true;
                ready += 1;
            }
        }
        // Back to "Running" while some container still runs.
        if reason == "Completed" && has_running {
            reason = if has_condition(pod, "Ready") { "Running".to_string() } else { "NotReady".to_string() };
        }
    }

    let deleting = get(pod, &["metadata", "deletionTimestamp"]).is_some();
    if deleting && st(pod, &["status", "reason"]) == "NodeLost" {
        reason = "Unknown".to_string();
    } else if deleting && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".to_string();
    }

    let restarts_str = match last_restart {
        Some(t) if restarts != 0 => format!("{} ({} ago)", restarts, since(Some(t), now)),
        _ => restarts.to_string(),
    };

    let pod_ip = arr(pod, &["status", "podIPs"])
        .first()
        .map(|p| st(p, &["ip"]))
        .filter(|ip| !ip.is_empty())
        .unwrap_or_else(|| st(pod, &["status", "podIP"]));

    let gates = arr(pod, &["spec", "readinessGates"]);
    let readiness_gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let conditions = arr(pod, &["status", "conditions"]);
        let true_count = gates
            .iter()
            .filter(|g| {
                let t = st(g, &["conditionType"]);
                conditions.iter().find(|c| st(c, &["type"]) == t).is_some_and(|c| st(c, &["status"]) == "True")
            })
            .count();
        format!("{}/{}", true_count, gates.len())
    };

    vec![
        name(pod).into(),
        format!("{ready}/{total}").into(),
        reason.into(),
        restarts_str.into(),
        age(pod, now).into(),
        non_empty_or(pod_ip, "<none>").into(),
        non_empty_or(st(pod, &["spec", "nodeName"]), "<none>").into(),
        non_empty_or(st(pod, &["status", "nominatedNodeName"]), "<none>").into(),
        readiness_gates.into(),
    ]
}

// ---------------------------------------------------------------------------
// Service, Endpoints, EndpointSlice, Ingress
// ---------------------------------------------------------------------------

/// `loadBalancerStatusStringer` with wide output (the server always prints
/// wide, so nothing is clipped): sorted, de-duplicated IPs / hostnames.
fn load_balancer_status(status: Option<&Value>) -> String {
    let mut set: Vec<&str> = status
        .map(|s| arr(s, &["ingress"]))
        .unwrap_or(&[])
        .iter()
        .filter_map(|i| {
            let ip = st(i, &["ip"]);
            let host = st(i, &["hostname"]);
            if !ip.is_empty() {
                Some(ip)
            } else if !host.is_empty() {
                Some(host)
            } else {
                None
            }
        })
        .collect();
    set.sort_unstable();
    set.dedup();
    set.join(",")
}

fn service_external_ip(svc: &Value, type_: &str) -> String {
    let external_ips: Vec<&str> = arr(svc, &["spec", "externalIPs"]).iter().map(|v| v.as_str().unwrap_or("")).collect();
    match type_ {
        "ClusterIP" | "NodePort" => {
            if external_ips.is_empty() {
                "<none>".to_string()
            } else {
                external_ips.join(",")
            }
        }
        "LoadBalancer" => {
            let lb = load_balancer_status(get(svc, &["status", "loadBalancer"]));
            if !external_ips.is_empty() {
                let mut results: Vec<&str> = Vec::new();
                if !lb.is_empty() {
                    results.extend(lb.split(','));
                }
                results.extend(external_ips.iter().copied());
                results.join(",")
            } else if !lb.is_empty() {
                lb
            } else {
                "<pending>".to_string()
            }
        }
        "ExternalName" => st(svc, &["spec", "externalName"]).to_string(),
        _ => "<unknown>".to_string(),
    }
}

fn service_ports(ports: &[Value]) -> String {
    let pieces: Vec<String> = ports
        .iter()
        .map(|p| {
            let port = int(p, &["port"]);
            let protocol = non_empty_or(st(p, &["protocol"]), "TCP");
            let node_port = int(p, &["nodePort"]);
            if node_port > 0 {
                format!("{port}:{node_port}/{protocol}")
            } else {
                format!("{port}/{protocol}")
            }
        })
        .collect();
    pieces.join(",")
}

fn service_cells(svc: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let type_ = non_empty_or(st(svc, &["spec", "type"]), "ClusterIP");
    let cluster_ip = arr(svc, &["spec", "clusterIPs"])
        .first()
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| st(svc, &["spec", "clusterIP"]));
    let ports = service_ports(arr(svc, &["spec", "ports"]));
    vec![
        name(svc).into(),
        type_.into(),
        non_empty_or(cluster_ip, "<none>").into(),
        service_external_ip(svc, type_).into(),
        non_empty_or(&ports, "<none>").into(),
        age(svc, now).into(),
        format_labels(get(svc, &["spec", "selector"])).into(),
    ]
}

/// `net.JoinHostPort`.
fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// `formatEndpoints`: up to three "ip:port", then " + N more...".
fn format_endpoints(ep: &Value) -> String {
    let subsets = arr(ep, &["subsets"]);
    if subsets.is_empty() {
        return "<none>".to_string();
    }
    const MAX: usize = 3;
    let mut list: Vec<String> = Vec::new();
    let mut more = false;
    let mut count = 0usize;
    for ss in subsets {
        let addresses = arr(ss, &["addresses"]);
        let ports = arr(ss, &["ports"]);
        if ports.is_empty() {
            // Headless services may have no ports.
            count += addresses.len();
            for a in addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(st(a, &["ip"]).to_string());
            }
            continue;
        }
        for p in ports {
            count += addresses.len();
            for a in addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(join_host_port(st(a, &["ip"]), int(p, &["port"])));
            }
        }
    }
    let ret = list.join(",");
    if more {
        format!("{} + {} more...", ret, count - MAX)
    } else {
        ret
    }
}

fn list_with_more(list: &[String], more: bool, count: usize, max: usize) -> String {
    let ret = list.join(",");
    if more {
        return format!("{} + {} more...", ret, count - max);
    }
    if ret.is_empty() {
        return "<unset>".to_string();
    }
    ret
}

fn format_discovery_ports(ports: &[Value]) -> String {
    const MAX: usize = 3;
    let mut list = Vec::new();
    let mut more = false;
    for p in ports {
        if list.len() < MAX {
            let n = match int_value(get(p, &["port"])) {
                Some(n) => n.to_string(),
                None => match get(p, &["name"]).and_then(Value::as_str) {
                    Some(name) => name.to_string(),
                    None => "*".to_string(),
                },
            };
            list.push(n);
        } else if list.len() == MAX {
            more = true;
        }
    }
    list_with_more(&list, more, ports.len(), MAX)
}

fn format_discovery_endpoints(endpoints: &[Value]) -> String {
    const MAX: usize = 3;
    let mut list = Vec::new();
    let mut more = false;
    let mut count = 0;
    for e in endpoints {
        for a in arr(e, &["addresses"]) {
            if list.len() < MAX {
                list.push(a.as_str().unwrap_or("").to_string());
            } else if list.len() == MAX {
                more = true;
            }
            count += 1;
        }
    }
    list_with_more(&list, more, count, MAX)
}

fn format_hosts(rules: &[Value]) -> String {
    const MAX: usize = 3;
    let mut list: Vec<&str> = Vec::new();
    let mut more = false;
    for r in rules {
        if list.len() == MAX {
            more = true;
        }
        let host = st(r, &["host"]);
        if !more && !host.is_empty() {
            list.push(host);
        }
    }
    if list.is_empty() {
        return "*".to_string();
    }
    let ret = list.join(",");
    if more {
        format!("{} + {} more...", ret, rules.len() - MAX)
    } else {
        ret
    }
}

fn ingress_cells(ing: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let class = get(ing, &["spec", "ingressClassName"]).and_then(Value::as_str).unwrap_or("<none>");
    let ports = if arr(ing, &["spec", "tls"]).is_empty() { "80" } else { "80, 443" };
    vec![
        name(ing).into(),
        class.into(),
        format_hosts(arr(ing, &["spec", "rules"])).into(),
        load_balancer_status(get(ing, &["status", "loadBalancer"])).into(),
        ports.into(),
        age(ing, now).into(),
    ]
}

fn ingress_class_cells(ic: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let parameters = match get(ic, &["spec", "parameters"]) {
        Some(p) => {
            let mut s = st(p, &["kind"]).to_string();
            if let Some(group) = get(p, &["apiGroup"]).and_then(Value::as_str) {
                s.push('.');
                s.push_str(group);
            }
            s.push('/');
            s.push_str(st(p, &["name"]));
            s
        }
        None => "<none>".to_string(),
    };
    vec![name(ic).into(), st(ic, &["spec", "controller"]).into(), parameters.into(), age(ic, now).into()]
}

// ---------------------------------------------------------------------------
// Node
// ---------------------------------------------------------------------------

fn node_roles(node: &Value) -> Vec<String> {
    const PREFIX: &str = "node-role.kubernetes.io/";
    let mut roles: Vec<String> = Vec::new();
    if let Some(labels) = obj_map(node, &["metadata", "labels"]) {
        for (k, v) in labels {
            if let Some(role) = k.strip_prefix(PREFIX) {
                if !role.is_empty() {
                    roles.push(role.to_string());
                }
            } else if k == "kubernetes.io/role" {
                let v = v.as_str().unwrap_or("");
                if !v.is_empty() {
                    roles.push(v.to_string());
                }
            }
        }
    }
    roles.sort();
    roles.dedup();
    roles
}

fn node_address(node: &Value, type_: &str) -> String {
    arr(node, &["status", "addresses"])
        .iter()
        .find(|a| st(a, &["type"]) == type_)
        .map(|a| st(a, &["address"]).to_string())
        .unwrap_or_else(|| "<none>".to_string())
}

fn node_cells(node: &Value, now: DateTime<Utc>) -> Vec<Value> {
    // The last Ready condition wins, as with upstream's condition map.
    let ready = arr(node, &["status", "conditions"]).iter().rfind(|c| st(c, &["type"]) == "Ready");
    let mut status = vec![match ready {
        Some(c) if st(c, &["status"]) == "True" => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if boolean(node, &["spec", "unschedulable"]) {
        status.push("SchedulingDisabled");
    }
    let roles = node_roles(node).join(",");
    let info = |field: &str| non_empty_or(st(node, &["status", "nodeInfo", field]), "<unknown>").to_string();
    vec![
        name(node).into(),
        status.join(",").into(),
        non_empty_or(&roles, "<none>").into(),
        age(node, now).into(),
        st(node, &["status", "nodeInfo", "kubeletVersion"]).into(),
        node_address(node, "InternalIP").into(),
        node_address(node, "ExternalIP").into(),
        info("osImage").into(),
        info("kernelVersion").into(),
        info("containerRuntimeVersion").into(),
    ]
}

// ---------------------------------------------------------------------------
// Secret, Event
// ---------------------------------------------------------------------------

fn secret_cells(secret: &Value, now: DateTime<Utc>) -> Vec<Value> {
    // stringData is merged into data on write; count the union.
    let mut keys: Vec<&String> = Vec::new();
    for field in ["data", "stringData"] {
        if let Some(m) = obj_map(secret, &[field]) {
            keys.extend(m.keys());
        }
    }
    keys.sort();
    keys.dedup();
    vec![
        name(secret).into(),
        non_empty_or(st(secret, &["type"]), "Opaque").into(),
        Value::from(keys.len() as i64),
        age(secret, now).into(),
    ]
}

fn event_cells(ev: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let first_ts = timestamp(get(ev, &["firstTimestamp"]));
    let first = match first_ts {
        Some(t) => since(Some(t), now),
        None => since(timestamp(get(ev, &["eventTime"])), now),
    };
    let mut last = match timestamp(get(ev, &["lastTimestamp"])) {
        Some(t) => since(Some(t), now),
        None => first.clone(),
    };
    let mut count = int(ev, &["count"]);
    if let Some(series) = get(ev, &["series"]) {
        last = since(timestamp(get(series, &["lastObservedTime"])), now);
        count = int(series, &["count"]);
    } else if count == 0 {
        // Singleton events don't have a count set in the new API.
        count = 1;
    }
    let kind = st(ev, &["involvedObject", "kind"]).to_lowercase();
    let obj_name = st(ev, &["involvedObject", "name"]);
    let target = if obj_name.is_empty() { kind } else { format!("{kind}/{obj_name}") };
    let component = non_empty_or(st(ev, &["source", "component"]), st(ev, &["reportingController"]));
    let instance = non_empty_or(st(ev, &["source", "host"]), st(ev, &["reportingInstance"]));
    let source = if instance.is_empty() { component.to_string() } else { format!("{component}, {instance}") };
    vec![
        last.into(),
        st(ev, &["type"]).into(),
        st(ev, &["reason"]).into(),
        target.into(),
        st(ev, &["involvedObject", "fieldPath"]).into(),
        source.into(),
        st(ev, &["message"]).trim().into(),
        first.into(),
        Value::from(count),
        name(ev).into(),
    ]
}

// ---------------------------------------------------------------------------
// Workloads
// ---------------------------------------------------------------------------

/// `spec.replicas`, defaulted to 1 as the API server does.
fn spec_replicas(obj: &Value) -> i64 {
    int_value(get(obj, &["spec", "replicas"])).unwrap_or(1)
}

fn template_containers(obj: &Value) -> &[Value] {
    arr(obj, &["spec", "template", "spec", "containers"])
}

fn deployment_cells(d: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (containers, images) = layout_containers(template_containers(d));
    let selector = match label_selector_as_selector(get(d, &["spec", "selector"])) {
        SelectorString::Nothing => String::new(),
        SelectorString::Selector(s) => s,
        SelectorString::Invalid => "<invalid>".to_string(),
    };
    vec![
        name(d).into(),
        format!("{}/{}", int(d, &["status", "readyReplicas"]), spec_replicas(d)).into(),
        Value::from(int(d, &["status", "updatedReplicas"])),
        Value::from(int(d, &["status", "availableReplicas"])),
        age(d, now).into(),
        containers.into(),
        images.into(),
        selector.into(),
    ]
}

fn replica_set_cells(rs: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (containers, images) = layout_containers(template_containers(rs));
    vec![
        name(rs).into(),
        Value::from(spec_replicas(rs)),
        Value::from(int(rs, &["status", "replicas"])),
        Value::from(int(rs, &["status", "readyReplicas"])),
        age(rs, now).into(),
        containers.into(),
        images.into(),
        format_label_selector(get(rs, &["spec", "selector"])).into(),
    ]
}

fn daemon_set_cells(ds: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (containers, images) = layout_containers(template_containers(ds));
    vec![
        name(ds).into(),
        Value::from(int(ds, &["status", "desiredNumberScheduled"])),
        Value::from(int(ds, &["status", "currentNumberScheduled"])),
        Value::from(int(ds, &["status", "numberReady"])),
        Value::from(int(ds, &["status", "updatedNumberScheduled"])),
        Value::from(int(ds, &["status", "numberAvailable"])),
        format_labels(get(ds, &["spec", "template", "spec", "nodeSelector"])).into(),
        age(ds, now).into(),
        containers.into(),
        images.into(),
        format_label_selector(get(ds, &["spec", "selector"])).into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap()
    }

    /// RFC3339 timestamp `secs` seconds before `now()`.
    fn ago(secs: i64) -> String {
        (now() - Duration::seconds(secs)).format("%Y-%m-%dT%H:%M:%SZ").to_string()
    }

    fn cells(kind: &str, obj: &Value) -> Vec<Value> {
        let c = row_cells(kind, obj, now());
        assert_eq!(c.len(), columns(kind).len(), "one cell per column for {kind}");
        c
    }

    fn names(kind: &str) -> Vec<(&'static str, i32)> {
        columns(kind).iter().map(|c| (c.name, c.priority)).collect()
    }

    // ----- AGE -----

    #[test]
    fn human_duration_table() {
        let cases: &[(i64, &str)] = &[
            (-5, "<invalid>"),
            (-2, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (1, "1s"),
            (59, "59s"),
            (60, "60s"),
            (119, "119s"),
            (120, "2m"),
            (123, "2m3s"),
            (9 * 60 + 59, "9m59s"),
            (600, "10m"),
            (601, "10m"),
            (60 * 60, "60m"),
            (179 * 60 + 59, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 4 * 60, "3h4m"),
            (3 * 3600 + 4 * 60 + 59, "3h4m"),
            (7 * 3600 + 59 * 60, "7h59m"),
            (8 * 3600, "8h"),
            (8 * 3600 + 30 * 60, "8h"),
            (47 * 3600 + 59 * 60, "47h"),
            (48 * 3600, "2d"),
            (51 * 3600, "2d3h"),
            (7 * 86400 + 23 * 3600, "7d23h"),
            (8 * 86400, "8d"),
            (10 * 86400, "10d"),
            (729 * 86400, "729d"),
            (730 * 86400, "2y"),
            (3 * 365 * 86400, "3y"),
            (3 * 365 * 86400 + 40 * 86400, "3y40d"),
            (8 * 365 * 86400 + 100 * 86400, "8y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(Duration::seconds(*secs)), *want, "{secs} seconds");
        }
        // Sub-second precision truncates toward zero like Go.
        assert_eq!(human_duration(Duration::milliseconds(59_999)), "59s");
        assert_eq!(human_duration(Duration::milliseconds(-1_999)), "0s");
        assert_eq!(human_duration(Duration::milliseconds(-2_000)), "<invalid>");
    }

    #[test]
    fn missing_creation_timestamp_is_unknown() {
        let ns = json!({"metadata": {"name": "x"}});
        assert_eq!(cells("Namespace", &ns)[2], json!("<unknown>"));
    }

    // ----- Pod -----

    #[test]
    fn pod_columns() {
        assert_eq!(
            names("Pod"),
            vec![
                ("Name", 0),
                ("Ready", 0),
                ("Status", 0),
                ("Restarts", 0),
                ("Age", 0),
                ("IP", 1),
                ("Node", 1),
                ("Nominated Node", 1),
                ("Readiness Gates", 1),
            ]
        );
        let c = columns("Pod");
        assert_eq!(c[0].format, "name");
        assert_eq!(c[1].format, "");
        assert_eq!(c[3].type_, "string");
    }

    #[test]
    fn pod_running_two_containers_with_restarts() {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-7d4b9c-x2x2q", "namespace": "default",
                         "creationTimestamp": ago(51 * 3600)},
            "spec": {"nodeName": "worker-1", "containers": [
                {"name": "web", "image": "nginx:1.25"},
                {"name": "sidecar", "image": "envoy:v1.29"}]},
            "status": {
                "phase": "Running",
                "podIP": "10.244.1.5", "podIPs": [{"ip": "10.244.1.5"}],
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [
                    {"name": "web", "ready": true, "restartCount": 3,
                     "state": {"running": {"startedAt": ago(300)}},
                     "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled",
                                                  "finishedAt": ago(300)}}},
                    {"name": "sidecar", "ready": true, "restartCount": 0,
                     "state": {"running": {"startedAt": ago(3000)}}}
                ]}
        });
        assert_eq!(
            cells("Pod", &pod),
            vec![
                json!("web-7d4b9c-x2x2q"),
                json!("2/2"),
                json!("Running"),
                json!("3 (5m ago)"),
                json!("2d3h"),
                json!("10.244.1.5"),
                json!("worker-1"),
                json!("<none>"),
                json!("<none>"),
            ]
        );
    }

    #[test]
    fn pod_crash_loop_back_off() {
        let pod = json!({
            "metadata": {"name": "api-0", "creationTimestamp": ago(600)},
            "spec": {"containers": [{"name": "api"}, {"name": "proxy"}]},
            "status": {"phase": "Running", "podIP": "10.244.2.9",
                "containerStatuses": [
                    {"name": "api", "ready": false, "restartCount": 5,
                     "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                     "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                                                  "finishedAt": ago(30)}}},
                    {"name": "proxy", "ready": true, "restartCount": 0,
                     "state": {"running": {}}}
                ]}
        });
        let c = cells("Pod", &pod);
        assert_eq!(c[1], json!("1/2"));
        assert_eq!(c[2], json!("CrashLoopBackOff"));
        assert_eq!(c[3], json!("5 (30s ago)"));
        assert_eq!(c[5], json!("10.244.2.9"), "podIP used when podIPs absent");
    }

    #[test]
    fn pod_pending_and_container_creating() {
        let pending = json!({
            "metadata": {"name": "p", "creationTimestamp": ago(5)},
            "spec": {"containers": [{"name": "c"}]},
            "status": {"phase": "Pending"}
        });
        assert_eq!(
            cells("Pod", &pending),
            vec![
                json!("p"),
                json!("0/1"),
                json!("Pending"),
                json!("0"),
                json!("5s"),
                json!("<none>"),
                json!("<none>"),
                json!("<none>"),
                json!("<none>"),
            ]
        );
        let creating = json!({
            "metadata": {"name": "p", "creationTimestamp": ago(5)},
            "spec": {"nodeName": "n1", "containers": [{"name": "c"}]},
            "status": {"phase": "Pending", "containerStatuses": [
                {"name": "c", "ready": false, "restartCount": 0,
                 "state": {"waiting": {"reason": "ContainerCreating"}}}]}
        });
        assert_eq!(cells("Pod", &creating)[2], json!("ContainerCreating"));
        // No status at all: phase Pending as the API server sets it.
        let bare = json!({"metadata": {"name": "b"}, "spec": {"containers": [{"name": "c"}]}});
        let c = cells("Pod", &bare);
        assert_eq!(c[1], json!("0/1"));
        assert_eq!(c[2], json!("Pending"));
        assert_eq!(c[4], json!("<unknown>"));
    }

    #[test]
    fn pod_completed_and_row_condition() {
        let pod = json!({
            "metadata": {"name": "job-x", "creationTimestamp": ago(3600)},
            "spec": {"containers": [{"name": "c"}]},
            "status": {"phase": "Succeeded", "containerStatuses": [
                {"name": "c", "ready": false, "restartCount": 0,
                 "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}
        });
        let c = cells("Pod", &pod);
        assert_eq!(c[1], json!("0/1"));
        assert_eq!(c[2], json!("Completed"));
        assert_eq!(
            row_conditions("Pod", &pod),
            Some(json!([{"type": "Completed", "status": "True", "reason": "Succeeded",
                         "message": "The pod has completed successfully."}]))
        );
        let failed = json!({"status": {"phase": "Failed", "reason": "Evicted"}});
        assert_eq!(cells("Pod", &failed)[2], json!("Evicted"));
        assert_eq!(row_conditions("Pod", &failed).unwrap()[0]["reason"], json!("Failed"));
        assert_eq!(row_conditions("Pod", &json!({"status": {"phase": "Running"}})), None);
        assert_eq!(row_conditions("Service", &pod), None);
    }

    #[test]
    fn pod_completed_but_still_running_container() {
        let mk = |ready_cond: &str| {
            json!({
                "metadata": {"name": "p"},
                "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
                "status": {"phase": "Running",
                    "conditions": [{"type": "Ready", "status": ready_cond}],
                    "containerStatuses": [
                        {"name": "a", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                        {"name": "b", "ready": true, "state": {"running": {}}}]}
            })
        };
        assert_eq!(cells("Pod", &mk("True"))[2], json!("Running"));
        assert_eq!(cells("Pod", &mk("False"))[2], json!("NotReady"));
        assert_eq!(cells("Pod", &mk("True"))[1], json!("1/2"));
    }

    #[test]
    fn pod_terminated_without_reason() {
        let pod = json!({
            "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "a", "state": {"terminated": {"exitCode": 2}}}]}
        });
        assert_eq!(cells("Pod", &pod)[2], json!("ExitCode:2"));
        let pod = json!({
            "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "a", "state": {"terminated": {"exitCode": 137, "signal": 9}}}]}
        });
        assert_eq!(cells("Pod", &pod)[2], json!("Signal:9"));
    }

    #[test]
    fn pod_terminating_and_node_lost() {
        let pod = json!({
            "metadata": {"name": "p", "deletionTimestamp": ago(10)},
            "spec": {"containers": [{"name": "c"}]},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "c", "ready": true, "state": {"running": {}}}]}
        });
        assert_eq!(cells("Pod", &pod)[2], json!("Terminating"));
        assert_eq!(cells("Pod", &pod)[1], json!("1/1"));
        let lost = json!({
            "metadata": {"name": "p", "deletionTimestamp": ago(10)},
            "spec": {"containers": [{"name": "c"}]},
            "status": {"phase": "Running", "reason": "NodeLost"}
        });
        assert_eq!(cells("Pod", &lost)[2], json!("Unknown"));
        // A finished pod being deleted keeps its terminal status.
        let done = json!({
            "metadata": {"name": "p", "deletionTimestamp": ago(10)},
            "status": {"phase": "Succeeded"}
        });
        assert_eq!(cells("Pod", &done)[2], json!("Succeeded"));
    }

    #[test]
    fn pod_init_containers() {
        let running_init = json!({
            "metadata": {"name": "p"},
            "spec": {"initContainers": [{"name": "init"}], "containers": [{"name": "c"}]},
            "status": {"phase": "Pending",
                "initContainerStatuses": [
                    {"name": "init", "restartCount": 0, "state": {"running": {}}}],
                "containerStatuses": [
                    {"name": "c", "restartCount": 0,
                     "state": {"waiting": {"reason": "PodInitializing"}}}]}
        });
        let c = cells("Pod", &running_init);
        assert_eq!(c[1], json!("0/1"));
        assert_eq!(c[2], json!("Init:0/1"));

        let two = json!({
            "spec": {"initContainers": [{"name": "a"}, {"name": "b"}], "containers": [{"name": "c"}]},
            "status": {"phase": "Pending", "initContainerStatuses": [
                {"name": "a", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                {"name": "b", "state": {"waiting": {"reason": "PodInitializing"}}}]}
        });
        assert_eq!(cells("Pod", &two)[2], json!("Init:1/2"));

        let crash = json!({
            "spec": {"initContainers": [{"name": "a"}], "containers": [{"name": "c"}]},
            "status": {"phase": "Pending", "initContainerStatuses": [
                {"name": "a", "restartCount": 4,
                 "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                 "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(125)}}}]}
        });
        let c = cells("Pod", &crash);
        assert_eq!(c[2], json!("Init:CrashLoopBackOff"));
        assert_eq!(c[3], json!("4 (2m5s ago)"));

        let error = json!({
            "spec": {"initContainers": [{"name": "a"}], "containers": [{"name": "c"}]},
            "status": {"phase": "Pending", "initContainerStatuses": [
                {"name": "a", "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}
        });
        assert_eq!(cells("Pod", &error)[2], json!("Init:Error"));
        let code = json!({
            "spec": {"initContainers": [{"name": "a"}], "containers": [{"name": "c"}]},
            "status": {"phase": "Pending", "initContainerStatuses": [
                {"name": "a", "state": {"terminated": {"exitCode": 3}}}]}
        });
        assert_eq!(cells("Pod", &code)[2], json!("Init:ExitCode:3"));
    }

    #[test]
    fn pod_sidecar_init_container() {
        let pod = json!({
            "metadata": {"name": "p"},
            "spec": {"initContainers": [{"name": "mesh", "restartPolicy": "Always"}],
                     "containers": [{"name": "app"}]},
            "status": {"phase": "Running",
                "conditions": [{"type": "Initialized", "status": "True"},
                               {"type": "Ready", "status": "True"}],
                "initContainerStatuses": [
                    {"name": "mesh", "ready": true, "started": true, "restartCount": 1,
                     "state": {"running": {}},
                     "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(7200)}}}],
                "containerStatuses": [
                    {"name": "app", "ready": true, "restartCount": 0, "state": {"running": {}}}]}
        });
        let c = cells("Pod", &pod);
        assert_eq!(c[1], json!("2/2"));
        assert_eq!(c[2], json!("Running"));
        assert_eq!(c[3], json!("1 (120m ago)"));
    }

    #[test]
    fn pod_scheduling_gated_nominated_and_readiness_gates() {
        let pod = json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c"}],
                     "readinessGates": [{"conditionType": "example.com/lb"},
                                        {"conditionType": "example.com/dns"}]},
            "status": {"phase": "Pending", "nominatedNodeName": "worker-2",
                "conditions": [
                    {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"},
                    {"type": "example.com/lb", "status": "True"},
                    {"type": "example.com/dns", "status": "False"}]}
        });
        let c = cells("Pod", &pod);
        assert_eq!(c[2], json!("SchedulingGated"));
        assert_eq!(c[7], json!("worker-2"));
        assert_eq!(c[8], json!("1/2"));
    }

    #[test]
    fn pod_restarts_without_termination_time() {
        let pod = json!({
            "spec": {"containers": [{"name": "c"}]},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "c", "ready": true, "restartCount": 2, "state": {"running": {}}}]}
        });
        assert_eq!(cells("Pod", &pod)[3], json!("2"));
    }

    // ----- Service -----

    #[test]
    fn service_columns() {
        assert_eq!(
            names("Service"),
            vec![
                ("Name", 0),
                ("Type", 0),
                ("Cluster-IP", 0),
                ("External-IP", 0),
                ("Port(s)", 0),
                ("Age", 0),
                ("Selector", 1),
            ]
        );
    }

    #[test]
    fn service_node_port_with_selector() {
        let svc = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default", "creationTimestamp": ago(600)},
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"],
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080,
                                "nodePort": 30080, "protocol": "TCP"}],
                     "selector": {"app": "web"}}
        });
        assert_eq!(
            cells("Service", &svc),
            vec![
                json!("web"),
                json!("NodePort"),
                json!("10.96.0.20"),
                json!("<none>"),
                json!("80:30080/TCP"),
                json!("10m"),
                json!("app=web"),
            ]
        );
    }

    #[test]
    fn service_load_balancer_pending_and_assigned() {
        let mut svc = json!({
            "metadata": {"name": "api", "creationTimestamp": ago(90)},
            "spec": {"type": "LoadBalancer", "clusterIP": "10.96.3.7",
                     "ports": [{"port": 443, "nodePort": 31443, "protocol": "TCP"},
                               {"port": 53, "nodePort": 31053, "protocol": "UDP"}],
                     "selector": {"tier": "backend", "app": "api"}},
            "status": {"loadBalancer": {}}
        });
        assert_eq!(
            cells("Service", &svc),
            vec![
                json!("api"),
                json!("LoadBalancer"),
                json!("10.96.3.7"),
                json!("<pending>"),
                json!("443:31443/TCP,53:31053/UDP"),
                json!("90s"),
                json!("app=api,tier=backend"),
            ]
        );
        svc["status"]["loadBalancer"]["ingress"] = json!([
            {"hostname": "lb.example.com"}, {"ip": "203.0.113.9"}, {"ip": "203.0.113.9"}
        ]);
        // Not clipped to 16 characters: the server always prints wide.
        assert_eq!(cells("Service", &svc)[3], json!("203.0.113.9,lb.example.com"));
        svc["spec"]["externalIPs"] = json!(["198.51.100.1"]);
        assert_eq!(cells("Service", &svc)[3], json!("203.0.113.9,lb.example.com,198.51.100.1"));
    }

    #[test]
    fn service_cluster_ip_headless_and_external_name() {
        let headless = json!({
            "metadata": {"name": "db", "creationTimestamp": ago(10)},
            "spec": {"clusterIP": "None", "clusterIPs": ["None"]}
        });
        assert_eq!(
            cells("Service", &headless),
            vec![
                json!("db"),
                json!("ClusterIP"),
                json!("None"),
                json!("<none>"),
                json!("<none>"),
                json!("10s"),
                json!("<none>"),
            ]
        );
        let with_ext = json!({
            "metadata": {"name": "k"},
            "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.1",
                     "externalIPs": ["192.0.2.1", "192.0.2.2"], "ports": [{"port": 443}]}
        });
        let c = cells("Service", &with_ext);
        assert_eq!(c[3], json!("192.0.2.1,192.0.2.2"));
        assert_eq!(c[4], json!("443/TCP"), "protocol defaults to TCP");
        let ext = json!({
            "metadata": {"name": "ext"},
            "spec": {"type": "ExternalName", "externalName": "db.example.com"}
        });
        let c = cells("Service", &ext);
        assert_eq!(c[2], json!("<none>"));
        assert_eq!(c[3], json!("db.example.com"));
        assert_eq!(c[4], json!("<none>"));
        let odd = json!({"spec": {"type": "Weird"}});
        assert_eq!(cells("Service", &odd)[3], json!("<unknown>"));
    }

    // ----- Endpoints / EndpointSlice -----

    #[test]
    fn endpoints_five_addresses_two_ports() {
        let ep = json!({
            "metadata": {"name": "web", "creationTimestamp": ago(3 * 86400)},
            "subsets": [{
                "addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}, {"ip": "10.0.0.3"},
                              {"ip": "10.0.0.4"}, {"ip": "10.0.0.5"}],
                "ports": [{"name": "http", "port": 80, "protocol": "TCP"},
                          {"name": "https", "port": 443, "protocol": "TCP"}]
            }]
        });
        assert_eq!(names("Endpoints"), vec![("Name", 0), ("Endpoints", 0), ("Age", 0)]);
        assert_eq!(
            cells("Endpoints", &ep),
            vec![json!("web"), json!("10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 7 more..."), json!("3d"),]
        );
    }

    #[test]
    fn endpoints_small_headless_ipv6_and_empty() {
        let ep = json!({"metadata": {"name": "e"}, "subsets": [
            {"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 53}]},
            {"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 53}]}]});
        assert_eq!(cells("Endpoints", &ep)[1], json!("10.0.0.1:53,[fd00::1]:53"));
        let headless = json!({"subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}]}]});
        assert_eq!(cells("Endpoints", &headless)[1], json!("10.0.0.1,10.0.0.2"));
        let four = json!({"subsets": [{"addresses": [
            {"ip": "1.1.1.1"}, {"ip": "1.1.1.2"}, {"ip": "1.1.1.3"}, {"ip": "1.1.1.4"}]}]});
        assert_eq!(cells("Endpoints", &four)[1], json!("1.1.1.1,1.1.1.2,1.1.1.3 + 1 more..."));
        assert_eq!(cells("Endpoints", &json!({}))[1], json!("<none>"));
        assert_eq!(cells("Endpoints", &json!({"subsets": []}))[1], json!("<none>"));
    }

    #[test]
    fn endpoint_slice() {
        let es = json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "web-abc12", "creationTimestamp": ago(45)},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"},
                      {"name": "metrics", "port": 9090}],
            "endpoints": [
                {"addresses": ["10.244.1.5"], "conditions": {"ready": true}},
                {"addresses": ["10.244.2.6"]}, {"addresses": ["10.244.3.7"]},
                {"addresses": ["10.244.4.8"]}]
        });
        assert_eq!(
            names("EndpointSlice"),
            vec![("Name", 0), ("AddressType", 0), ("Ports", 0), ("Endpoints", 0), ("Age", 0)]
        );
        assert_eq!(
            cells("EndpointSlice", &es),
            vec![
                json!("web-abc12"),
                json!("IPv4"),
                json!("80,9090"),
                json!("10.244.1.5,10.244.2.6,10.244.3.7 + 1 more..."),
                json!("45s"),
            ]
        );
        let empty = json!({"metadata": {"name": "e"}, "addressType": "IPv6",
                           "ports": [{"name": "x"}, {}, {"port": 1}, {"port": 2}, {"port": 3}]});
        let c = cells("EndpointSlice", &empty);
        assert_eq!(c[2], json!("x,*,1 + 2 more..."));
        assert_eq!(c[3], json!("<unset>"));
        assert_eq!(cells("EndpointSlice", &json!({}))[2], json!("<unset>"));
    }

    // ----- Namespace / ConfigMap / Secret / ServiceAccount / Lease -----

    #[test]
    fn namespace() {
        let ns = json!({"metadata": {"name": "default", "creationTimestamp": ago(10 * 86400)},
                        "status": {"phase": "Active"}});
        assert_eq!(names("Namespace"), vec![("Name", 0), ("Status", 0), ("Age", 0)]);
        assert_eq!(cells("Namespace", &ns), vec![json!("default"), json!("Active"), json!("10d")]);
        let term = json!({"metadata": {"name": "old"}, "status": {"phase": "Terminating"}});
        assert_eq!(cells("Namespace", &term)[1], json!("Terminating"));
    }

    #[test]
    fn config_map() {
        let cm = json!({"metadata": {"name": "kube-root-ca.crt", "creationTimestamp": ago(7200)},
                        "data": {"ca.crt": "x", "other": "y"}, "binaryData": {"blob": "AAEC"}});
        assert_eq!(names("ConfigMap"), vec![("Name", 0), ("Data", 0), ("Age", 0)]);
        assert_eq!(cells("ConfigMap", &cm), vec![json!("kube-root-ca.crt"), json!(3), json!("120m")]);
        assert_eq!(cells("ConfigMap", &json!({"metadata": {"name": "e"}}))[1], json!(0));
    }

    #[test]
    fn secret() {
        let s = json!({"metadata": {"name": "web-tls", "creationTimestamp": ago(4 * 3600)},
                       "type": "kubernetes.io/tls", "data": {"tls.crt": "Y3J0", "tls.key": "a2V5"}});
        assert_eq!(names("Secret"), vec![("Name", 0), ("Type", 0), ("Data", 0), ("Age", 0)]);
        assert_eq!(cells("Secret", &s), vec![json!("web-tls"), json!("kubernetes.io/tls"), json!(2), json!("4h")]);
        let opaque = json!({"metadata": {"name": "o"}, "data": {"a": "YQ=="},
                            "stringData": {"a": "x", "b": "y"}});
        let c = cells("Secret", &opaque);
        assert_eq!(c[1], json!("Opaque"));
        assert_eq!(c[2], json!(2));
    }

    #[test]
    fn service_account() {
        let sa = json!({"metadata": {"name": "default", "creationTimestamp": ago(30 * 86400)}});
        assert_eq!(names("ServiceAccount"), vec![("Name", 0), ("Secrets", 0), ("Age", 0)]);
        assert_eq!(cells("ServiceAccount", &sa), vec![json!("default"), json!(0), json!("30d")]);
        let with = json!({"metadata": {"name": "bot"}, "secrets": [{"name": "bot-token"}]});
        assert_eq!(cells("ServiceAccount", &with)[1], json!(1));
    }

    #[test]
    fn lease() {
        let l = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                       "metadata": {"name": "worker-1", "namespace": "kube-node-lease",
                                    "creationTimestamp": ago(2 * 86400 + 5 * 3600)},
                       "spec": {"holderIdentity": "worker-1", "leaseDurationSeconds": 40}});
        assert_eq!(names("Lease"), vec![("Name", 0), ("Holder", 0), ("Age", 0)]);
        assert_eq!(cells("Lease", &l), vec![json!("worker-1"), json!("worker-1"), json!("2d5h")]);
        assert_eq!(cells("Lease", &json!({"spec": {}}))[1], json!(""));
    }

    // ----- Node -----

    #[test]
    fn node_columns() {
        assert_eq!(
            names("Node"),
            vec![
                ("Name", 0),
                ("Status", 0),
                ("Roles", 0),
                ("Age", 0),
                ("Version", 0),
                ("Internal-IP", 1),
                ("External-IP", 1),
                ("OS-Image", 1),
                ("Kernel-Version", 1),
                ("Container-Runtime", 1),
            ]
        );
    }

    #[test]
    fn node_not_ready_with_roles_and_cordoned() {
        let node = json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "cp-1", "creationTimestamp": ago(400 * 86400),
                "labels": {"node-role.kubernetes.io/control-plane": "",
                           "node-role.kubernetes.io/etcd": "",
                           "kubernetes.io/role": "etcd",
                           "kubernetes.io/hostname": "cp-1"}},
            "spec": {"unschedulable": true},
            "status": {
                "conditions": [{"type": "MemoryPressure", "status": "False"},
                               {"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown"}],
                "addresses": [{"type": "InternalIP", "address": "192.168.1.10"},
                              {"type": "Hostname", "address": "cp-1"}],
                "nodeInfo": {"kubeletVersion": "v1.30.2",
                             "osImage": "Debian GNU/Linux 12 (bookworm)",
                             "kernelVersion": "6.1.0-18-amd64",
                             "containerRuntimeVersion": "containerd://1.7.13"}}
        });
        assert_eq!(
            cells("Node", &node),
            vec![
                json!("cp-1"),
                json!("NotReady,SchedulingDisabled"),
                json!("control-plane,etcd"),
                json!("400d"),
                json!("v1.30.2"),
                json!("192.168.1.10"),
                json!("<none>"),
                json!("Debian GNU/Linux 12 (bookworm)"),
                json!("6.1.0-18-amd64"),
                json!("containerd://1.7.13"),
            ]
        );
    }

    #[test]
    fn node_ready_plain_and_unknown() {
        let node = json!({
            "metadata": {"name": "w1", "labels": {"kubernetes.io/role": "worker"}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                       "addresses": [{"type": "ExternalIP", "address": "203.0.113.5"}]}
        });
        let c = cells("Node", &node);
        assert_eq!(c[1], json!("Ready"));
        assert_eq!(c[2], json!("worker"));
        assert_eq!(c[5], json!("<none>"));
        assert_eq!(c[6], json!("203.0.113.5"));
        assert_eq!(c[7], json!("<unknown>"));
        let bare = json!({"metadata": {"name": "n"}, "spec": {"unschedulable": true}});
        let c = cells("Node", &bare);
        assert_eq!(c[1], json!("Unknown,SchedulingDisabled"));
        assert_eq!(c[2], json!("<none>"));
        assert_eq!(c[4], json!(""));
    }

    // ----- Event -----

    #[test]
    fn event_columns() {
        assert_eq!(
            names("Event"),
            vec![
                ("Last Seen", 0),
                ("Type", 0),
                ("Reason", 0),
                ("Object", 0),
                ("Subobject", 1),
                ("Source", 1),
                ("Message", 0),
                ("First Seen", 1),
                ("Count", 1),
                ("Name", 1),
            ]
        );
        assert_eq!(columns("Event")[9].format, "name");
        assert_eq!(columns("Event")[0].format, "");
    }

    #[test]
    fn event_core_v1() {
        let ev = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "web-7d4b9c-x2x2q.17c1f2a3b4", "namespace": "default",
                         "creationTimestamp": ago(3600)},
            "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web-7d4b9c-x2x2q",
                               "fieldPath": "spec.containers{web}"},
            "reason": "BackOff",
            "message": "Back-off restarting failed container web\n",
            "source": {"component": "kubelet", "host": "worker-1"},
            "firstTimestamp": ago(3600), "lastTimestamp": ago(120),
            "count": 12, "type": "Warning"
        });
        assert_eq!(
            cells("Event", &ev),
            vec![
                json!("2m"),
                json!("Warning"),
                json!("BackOff"),
                json!("pod/web-7d4b9c-x2x2q"),
                json!("spec.containers{web}"),
                json!("kubelet, worker-1"),
                json!("Back-off restarting failed container web"),
                json!("60m"),
                json!(12),
                json!("web-7d4b9c-x2x2q.17c1f2a3b4"),
            ]
        );
    }

    #[test]
    fn event_new_style_series_and_singleton() {
        let ev = json!({
            "metadata": {"name": "e1"},
            "involvedObject": {"kind": "Node", "name": "worker-1"},
            "reason": "Scheduled", "type": "Normal", "message": "ok",
            "eventTime": "2024-05-01T11:59:00.123456Z",
            "series": {"count": 3, "lastObservedTime": "2024-05-01T11:59:50.000000Z"},
            "reportingController": "default-scheduler", "reportingInstance": ""
        });
        let c = cells("Event", &ev);
        assert_eq!(c[0], json!("10s"));
        assert_eq!(c[3], json!("node/worker-1"));
        assert_eq!(c[5], json!("default-scheduler"));
        // 59.876s since eventTime: truncated, as Go does.
        assert_eq!(c[7], json!("59s"));
        assert_eq!(c[8], json!(3));

        let single = json!({
            "metadata": {"name": "e2"},
            "involvedObject": {"kind": "Namespace"},
            "eventTime": "2024-05-01T11:00:00.000000Z",
            "reportingController": "podnet-controller", "reportingInstance": "podnet-1"
        });
        let c = cells("Event", &single);
        assert_eq!(c[0], json!("60m"), "last seen falls back to first seen");
        assert_eq!(c[3], json!("namespace"));
        assert_eq!(c[5], json!("podnet-controller, podnet-1"));
        assert_eq!(c[8], json!(1), "singleton count");

        let c = cells("Event", &json!({}));
        assert_eq!(c[0], json!("<unknown>"));
        assert_eq!(c[7], json!("<unknown>"));
        assert_eq!(c[3], json!(""));
    }

    // ----- Deployment / ReplicaSet / DaemonSet -----

    #[test]
    fn deployment_mid_rollout() {
        let d = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "creationTimestamp": ago(5 * 86400)},
            "spec": {"replicas": 3,
                     "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [
                                      {"name": "web", "image": "nginx:1.25"},
                                      {"name": "sidecar", "image": "envoy:v1.29"}]}}},
            "status": {"replicas": 4, "updatedReplicas": 2, "readyReplicas": 2,
                       "availableReplicas": 2, "unavailableReplicas": 2}
        });
        assert_eq!(
            names("Deployment"),
            vec![
                ("Name", 0),
                ("Ready", 0),
                ("Up-to-date", 0),
                ("Available", 0),
                ("Age", 0),
                ("Containers", 1),
                ("Images", 1),
                ("Selector", 1),
            ]
        );
        assert_eq!(
            cells("Deployment", &d),
            vec![
                json!("web"),
                json!("2/3"),
                json!(2),
                json!(2),
                json!("5d"),
                json!("web,sidecar"),
                json!("nginx:1.25,envoy:v1.29"),
                json!("app=web"),
            ]
        );
    }

    #[test]
    fn deployment_selector_expressions_defaults_and_invalid() {
        let d = json!({
            "metadata": {"name": "api"},
            "spec": {"selector": {
                "matchLabels": {"app": "api"},
                "matchExpressions": [
                    {"key": "tier", "operator": "In", "values": ["frontend", "backend"]},
                    {"key": "canary", "operator": "DoesNotExist"},
                    {"key": "env", "operator": "NotIn", "values": ["dev"]},
                    {"key": "zone", "operator": "Exists"}]}}
        });
        let c = cells("Deployment", &d);
        assert_eq!(c[1], json!("0/1"), "replicas defaults to 1");
        assert_eq!(c[2], json!(0));
        assert_eq!(c[5], json!(""));
        assert_eq!(c[7], json!("app=api,!canary,env notin (dev),tier in (backend,frontend),zone"));
        // No selector: labels.Nothing() prints as "".
        assert_eq!(cells("Deployment", &json!({}))[7], json!(""));
        // Empty selector: everything, also "".
        assert_eq!(cells("Deployment", &json!({"spec": {"selector": {}}}))[7], json!(""));
        let bad = json!({"spec": {"replicas": 0, "selector": {"matchExpressions": [
            {"key": "a", "operator": "Gt", "values": ["1"]}]}}});
        let c = cells("Deployment", &bad);
        assert_eq!(c[1], json!("0/0"));
        assert_eq!(c[7], json!("<invalid>"));
    }

    #[test]
    fn replica_set() {
        let rs = json!({
            "metadata": {"name": "web-7d4b9c", "creationTimestamp": ago(5 * 86400)},
            "spec": {"replicas": 3,
                     "selector": {"matchLabels": {"pod-template-hash": "7d4b9c", "app": "web"}},
                     "template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]}}},
            "status": {"replicas": 3, "readyReplicas": 2, "availableReplicas": 2}
        });
        assert_eq!(
            names("ReplicaSet"),
            vec![
                ("Name", 0),
                ("Desired", 0),
                ("Current", 0),
                ("Ready", 0),
                ("Age", 0),
                ("Containers", 1),
                ("Images", 1),
                ("Selector", 1),
            ]
        );
        assert_eq!(columns("ReplicaSet")[1].type_, "integer");
        assert_eq!(
            cells("ReplicaSet", &rs),
            vec![
                json!("web-7d4b9c"),
                json!(3),
                json!(3),
                json!(2),
                json!("5d"),
                json!("web"),
                json!("nginx:1.25"),
                json!("app=web,pod-template-hash=7d4b9c"),
            ]
        );
        let empty = cells("ReplicaSet", &json!({"spec": {"replicas": 0}}));
        assert_eq!(empty[1], json!(0));
        assert_eq!(empty[7], json!("<none>"));
    }

    #[test]
    fn daemon_set() {
        let ds = json!({
            "metadata": {"name": "podnet-agent", "creationTimestamp": ago(20 * 60)},
            "spec": {"selector": {"matchLabels": {"app": "podnet-agent"}},
                     "template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"},
                                           "containers": [{"name": "agent", "image": "podnet/agent:0.1"}]}}},
            "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2,
                       "updatedNumberScheduled": 3, "numberAvailable": 2}
        });
        assert_eq!(
            names("DaemonSet"),
            vec![
                ("Name", 0),
                ("Desired", 0),
                ("Current", 0),
                ("Ready", 0),
                ("Up-to-date", 0),
                ("Available", 0),
                ("Node Selector", 0),
                ("Age", 0),
                ("Containers", 1),
                ("Images", 1),
                ("Selector", 1),
            ]
        );
        assert_eq!(
            cells("DaemonSet", &ds),
            vec![
                json!("podnet-agent"),
                json!(3),
                json!(3),
                json!(2),
                json!(3),
                json!(2),
                json!("kubernetes.io/os=linux"),
                json!("20m"),
                json!("agent"),
                json!("podnet/agent:0.1"),
                json!("app=podnet-agent"),
            ]
        );
        assert_eq!(cells("DaemonSet", &json!({}))[6], json!("<none>"));
    }

    // ----- Ingress / IngressClass / NetworkPolicy -----

    #[test]
    fn ingress_tls_two_hosts() {
        let ing = json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "web", "creationTimestamp": ago(3 * 3600 + 4 * 60)},
            "spec": {"ingressClassName": "nginx",
                     "tls": [{"hosts": ["a.example.com", "b.example.com"], "secretName": "web-tls"}],
                     "rules": [{"host": "a.example.com", "http": {"paths": []}},
                               {"host": "b.example.com", "http": {"paths": []}}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.168.49.2"}]}}
        });
        assert_eq!(
            names("Ingress"),
            vec![("Name", 0), ("Class", 0), ("Hosts", 0), ("Address", 0), ("Ports", 0), ("Age", 0)]
        );
        assert_eq!(
            cells("Ingress", &ing),
            vec![
                json!("web"),
                json!("nginx"),
                json!("a.example.com,b.example.com"),
                json!("192.168.49.2"),
                json!("80, 443"),
                json!("3h4m"),
            ]
        );
    }

    #[test]
    fn ingress_defaults_and_many_hosts() {
        let bare = json!({"metadata": {"name": "i"}, "spec": {"defaultBackend": {}}});
        let c = cells("Ingress", &bare);
        assert_eq!(c[1], json!("<none>"));
        assert_eq!(c[2], json!("*"));
        assert_eq!(c[3], json!(""));
        assert_eq!(c[4], json!("80"));
        let many = json!({"spec": {"rules": [
            {"host": "a"}, {}, {"host": "b"}, {"host": "c"}, {"host": "d"}, {"host": "e"}]}});
        assert_eq!(cells("Ingress", &many)[2], json!("a,b,c + 3 more..."));
    }

    #[test]
    fn ingress_class() {
        let ic = json!({"metadata": {"name": "nginx", "creationTimestamp": ago(86400)},
                        "spec": {"controller": "k8s.io/ingress-nginx"}});
        assert_eq!(names("IngressClass"), vec![("Name", 0), ("Controller", 0), ("Parameters", 0), ("Age", 0)]);
        assert_eq!(
            cells("IngressClass", &ic),
            vec![json!("nginx"), json!("k8s.io/ingress-nginx"), json!("<none>"), json!("24h")]
        );
        let p = json!({"spec": {"controller": "c", "parameters": {
            "apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "external-lb"}}});
        assert_eq!(cells("IngressClass", &p)[2], json!("IngressParameters.k8s.example.com/external-lb"));
        let p = json!({"spec": {"parameters": {"kind": "ConfigMap", "name": "cfg"}}});
        assert_eq!(cells("IngressClass", &p)[2], json!("ConfigMap/cfg"));
    }

    #[test]
    fn network_policy() {
        let np = json!({"metadata": {"name": "db-allow", "creationTimestamp": ago(59)},
                        "spec": {"podSelector": {"matchLabels": {"role": "db"}},
                                 "policyTypes": ["Ingress"]}});
        assert_eq!(names("NetworkPolicy"), vec![("Name", 0), ("Pod-Selector", 0), ("Age", 0)]);
        assert_eq!(cells("NetworkPolicy", &np), vec![json!("db-allow"), json!("role=db"), json!("59s")]);
        let all = json!({"metadata": {"name": "deny-all"}, "spec": {"podSelector": {}}});
        assert_eq!(cells("NetworkPolicy", &all)[1], json!("<none>"));
        let bad = json!({"spec": {"podSelector": {"matchExpressions": [
            {"key": "a", "operator": "In", "values": []}]}}});
        assert_eq!(cells("NetworkPolicy", &bad)[1], json!("<error>"));
    }

    // ----- Default -----

    #[test]
    fn default_table_for_other_kinds() {
        let obj = json!({"metadata": {"name": "widget-1",
                                      "creationTimestamp": "2024-05-01T13:00:00+01:00"}});
        assert_eq!(names("Widget"), vec![("Name", 0), ("Created At", 0)]);
        assert_eq!(columns("Widget")[1].type_, "date");
        assert_eq!(cells("Widget", &obj), vec![json!("widget-1"), json!("2024-05-01T12:00:00Z")]);
        assert_eq!(cells("StatefulSet", &json!({}))[1], json!("0001-01-01T00:00:00Z"));
    }

    #[test]
    fn kind_lookup_is_case_insensitive() {
        assert_eq!(columns("pod").len(), 9);
        assert_eq!(columns("endpointslice").len(), 5);
    }

    // ----- Robustness -----

    #[test]
    fn garbage_objects_never_panic() {
        let kinds = [
            "Pod",
            "Service",
            "Endpoints",
            "Namespace",
            "Node",
            "ConfigMap",
            "Secret",
            "Event",
            "ServiceAccount",
            "Deployment",
            "ReplicaSet",
            "DaemonSet",
            "EndpointSlice",
            "Ingress",
            "IngressClass",
            "NetworkPolicy",
            "Lease",
            "Other",
        ];
        let garbage = [
            json!(null),
            json!(42),
            json!("str"),
            json!([1, 2]),
            json!({"metadata": 5, "spec": [], "status": "x"}),
            json!({"metadata": {"name": 7, "creationTimestamp": "not a time", "labels": []},
                   "spec": {"containers": "x", "ports": [1, null, {"port": "80"}],
                            "selector": "app=web", "rules": [null], "replicas": "3",
                            "podSelector": [], "initContainers": [5]},
                   "status": {"containerStatuses": [null, 1, {"state": 5}],
                              "initContainerStatuses": [{"state": {"terminated": 1}}],
                              "conditions": [null], "podIPs": [null],
                              "loadBalancer": {"ingress": [null, {}]}},
                   "subsets": [null, {"addresses": [null], "ports": [null]}],
                   "endpoints": [{"addresses": [1]}],
                   "involvedObject": 3, "series": {}}),
        ];
        for kind in kinds {
            for g in &garbage {
                let c = row_cells(kind, g, now());
                assert_eq!(c.len(), columns(kind).len(), "{kind} {g}");
                let _ = row_conditions(kind, g);
                let _ = table(kind, &[g], "1", IncludeObject::Metadata, now());
            }
        }
    }

    // ----- Whole table -----

    #[test]
    fn table_metadata_include_default() {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p1", "namespace": "default", "resourceVersion": "41",
                         "creationTimestamp": ago(60)},
            "spec": {"containers": [{"name": "c"}]},
            "status": {"phase": "Running"}
        });
        let t = table("Pod", &[&pod], "42", IncludeObject::default(), now());
        assert_eq!(t["kind"], json!("Table"));
        assert_eq!(t["apiVersion"], json!("meta.k8s.io/v1"));
        assert_eq!(t["metadata"], json!({"resourceVersion": "42"}));
        let cols = t["columnDefinitions"].as_array().unwrap();
        assert_eq!(cols.len(), 9);
        assert_eq!(
            cols[0],
            json!({"name": "Name", "type": "string", "format": "name",
                   "description": DESC_NAME, "priority": 0})
        );
        assert_eq!(cols[5]["name"], json!("IP"));
        assert_eq!(cols[5]["priority"], json!(1));
        assert_eq!(cols[5]["format"], json!(""));
        let rows = t["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            rows[0]["cells"],
            json!(["p1", "0/1", "Running", "0", "60s", "<none>", "<none>", "<none>", "<none>"])
        );
        assert!(rows[0].get("conditions").is_none());
        assert_eq!(
            rows[0]["object"],
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                   "metadata": pod["metadata"].clone()})
        );
        // Key order follows upstream's JSON.
        let keys: Vec<&String> = t.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["kind", "apiVersion", "metadata", "columnDefinitions", "rows"]);
        let row_keys: Vec<&String> = rows[0].as_object().unwrap().keys().collect();
        assert_eq!(row_keys, ["cells", "object"]);
    }

    #[test]
    fn table_include_none_object_and_conditions() {
        let done = json!({"metadata": {"name": "d"}, "status": {"phase": "Succeeded"}});
        let t = table("Pod", &[&done], "7", IncludeObject::None, now());
        let row = &t["rows"][0];
        assert_eq!(row["object"], Value::Null);
        assert_eq!(row["conditions"][0]["type"], json!("Completed"));
        let row_keys: Vec<&String> = row.as_object().unwrap().keys().collect();
        assert_eq!(row_keys, ["cells", "conditions", "object"]);

        let t = table("Pod", &[&done], "7", IncludeObject::Object, now());
        assert_eq!(t["rows"][0]["object"], done);

        let no_meta = json!({"kind": "Widget"});
        let t = table("Widget", &[&no_meta], "", IncludeObject::Metadata, now());
        assert_eq!(t["metadata"], json!({}));
        assert_eq!(t["rows"][0]["object"]["metadata"], json!({}));
    }

    #[test]
    fn table_empty_list_and_list_meta() {
        let t = table("Service", &[], "100", IncludeObject::Metadata, now());
        assert_eq!(t["rows"], json!([]));
        assert_eq!(t["columnDefinitions"].as_array().unwrap().len(), 7);
        let meta = TableMeta {
            resource_version: "100",
            continue_token: Some("eyJ2IjoibWV0YSJ9"),
            remaining_item_count: Some(12),
            no_headers: true,
        };
        let t = table_with_meta("Service", &[], &meta, IncludeObject::Metadata, now());
        assert_eq!(
            t["metadata"],
            json!({"resourceVersion": "100", "continue": "eyJ2IjoibWV0YSJ9",
                   "remainingItemCount": 12})
        );
        assert_eq!(t["columnDefinitions"], Value::Null);
    }

    #[test]
    fn include_object_parse() {
        assert_eq!(IncludeObject::parse(""), Some(IncludeObject::Metadata));
        assert_eq!(IncludeObject::parse("Metadata"), Some(IncludeObject::Metadata));
        assert_eq!(IncludeObject::parse("None"), Some(IncludeObject::None));
        assert_eq!(IncludeObject::parse("Object"), Some(IncludeObject::Object));
        assert_eq!(IncludeObject::parse("object"), None);
    }

    #[test]
    fn format_labels_sorts_pairs() {
        assert_eq!(format_labels(None), "<none>");
        assert_eq!(format_labels(Some(&json!({}))), "<none>");
        // Sorted as whole "k=v" strings, like upstream.
        assert_eq!(format_labels(Some(&json!({"a": "1", "a-b": "2", "B": "3"}))), "B=3,a-b=2,a=1");
    }
}
