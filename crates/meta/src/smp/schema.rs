//! The patch metadata of the built-in kinds: a static tree of struct types whose fields say how
//! their lists (and, for server-side apply, maps and structs) merge.
//!
//! Only the fields that matter are listed: those whose value is a struct holding such fields,
//! and the lists and maps with a strategy. A field not listed merges by default — objects
//! recursively, lists replaced whole (strategic merge patch) or atomic (apply). Some atomic lists
//! are listed anyway, where it documents a deliberate upstream choice (`tolerations`, `taints`,
//! `containerStatuses`, EndpointSlice `endpoints`).
//!
//! Sources: the `patchStrategy`/`patchMergeKey` struct tags and the `+listType`, `+listMapKey`,
//! `+mapType` and `+structType` markers of `k8s.io/api` (core/v1, apps/v1, discovery/v1,
//! networking/v1, coordination/v1) and `k8s.io/apimachinery` (`ObjectMeta`, `LabelSelector`),
//! as of Kubernetes 1.33.

/// A struct type of the Kubernetes API, with the fields whose merge is not the default.
#[derive(Debug)]
pub struct TypeDef {
    /// The Go type name (`PodSpec`), for documentation and debugging.
    pub name: &'static str,
    /// The fields with non-default merge behaviour, or with a struct type that has some.
    pub fields: &'static [Field],
    /// `+structType=atomic`: server-side apply replaces the whole struct (strategic merge patch
    /// ignores this marker and merges it field by field).
    pub atomic: bool,
}

impl TypeDef {
    /// The metadata of a field by its JSON name, if it is listed.
    pub fn field(&'static self, name: &str) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// How strategic merge patch treats a list field (`patchStrategy` and `patchMergeKey`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListStrategy {
    /// No `patchStrategy`: the patch's list replaces the original's.
    Replace,
    /// `patchStrategy:"merge"` with `patchMergeKey`: a list of objects merged element by element,
    /// matching elements by this key.
    MergeByKey(&'static str),
    /// `patchStrategy:"merge"` without a key: a list of primitives merged as a union.
    MergePrimitives,
}

/// How server-side apply treats a field, when it differs from what the [`ListStrategy`] implies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyStrategy {
    /// Follow the strategic-merge metadata: a list merged by key is an associative list on that
    /// key, a merged list of primitives is a set, any other list is atomic; maps and structs
    /// merge field by field.
    Inherit,
    /// `+listType=atomic`, `+mapType=atomic`: set whole from the applied configuration.
    Atomic,
    /// `+listType=set`: a list of primitives merged as a union.
    Set,
    /// `+listType=map` with these `+listMapKey`s.
    Keys(&'static [&'static str]),
}

/// One field of a [`TypeDef`].
#[derive(Debug)]
pub struct Field {
    /// The JSON name of the field.
    pub name: &'static str,
    /// The struct type of the value, or of the list's elements, when it has listed fields.
    pub ty: Option<&'static TypeDef>,
    /// How strategic merge patch merges the field if it is a list.
    pub list: ListStrategy,
    /// `patchStrategy:"retainKeys"`: `kubectl` sends `$retainKeys` in this object (or in each
    /// element of this list) so that fields it dropped are cleared. The directive is honoured
    /// wherever it appears; this flag only documents where upstream generates it.
    pub retain_keys: bool,
    /// How server-side apply merges the field.
    pub apply: ApplyStrategy,
}

/// How server-side apply merges a list, resolved from a [`Field`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ApplyList {
    Atomic,
    Set,
    Keys(&'static [&'static str]),
}

impl Field {
    /// A field with default merge behaviour; refine it with the builder methods.
    pub const fn new(name: &'static str) -> Field {
        Field { name, ty: None, list: ListStrategy::Replace, retain_keys: false, apply: ApplyStrategy::Inherit }
    }

    /// The struct type of the value or of the list's elements.
    pub const fn of(mut self, ty: &'static TypeDef) -> Field {
        self.ty = Some(ty);
        self
    }

    /// `patchStrategy:"merge" patchMergeKey:"<key>"` (and, by default, `+listType=map` on the
    /// same key).
    pub const fn merge_key(mut self, key: &'static str) -> Field {
        self.list = ListStrategy::MergeByKey(key);
        self
    }

    /// `patchStrategy:"merge"` on a list of primitives (and, by default, `+listType=set`).
    pub const fn merge_primitives(mut self) -> Field {
        self.list = ListStrategy::MergePrimitives;
        self
    }

    /// `patchStrategy:"retainKeys"`.
    pub const fn retain_keys(mut self) -> Field {
        self.retain_keys = true;
        self
    }

    /// `+listType=atomic` or `+mapType=atomic`.
    pub const fn atomic(mut self) -> Field {
        self.apply = ApplyStrategy::Atomic;
        self
    }

    /// `+listType=set`.
    pub const fn set(mut self) -> Field {
        self.apply = ApplyStrategy::Set;
        self
    }

    /// `+listType=map` with these `+listMapKey`s.
    pub const fn list_map_keys(mut self, keys: &'static [&'static str]) -> Field {
        self.apply = ApplyStrategy::Keys(keys);
        self
    }

    /// How server-side apply merges this field when it is a list.
    pub(crate) fn apply_list(&'static self) -> ApplyList {
        match (self.apply, &self.list) {
            (ApplyStrategy::Atomic, _) => ApplyList::Atomic,
            (ApplyStrategy::Set, _) => ApplyList::Set,
            (ApplyStrategy::Keys(keys), _) => ApplyList::Keys(keys),
            (ApplyStrategy::Inherit, ListStrategy::MergeByKey(key)) => ApplyList::Keys(std::slice::from_ref(key)),
            (ApplyStrategy::Inherit, ListStrategy::MergePrimitives) => ApplyList::Set,
            (ApplyStrategy::Inherit, ListStrategy::Replace) => ApplyList::Atomic,
        }
    }

    /// Whether server-side apply sets this field's object value whole.
    pub(crate) fn apply_atomic_object(&'static self) -> bool {
        self.apply == ApplyStrategy::Atomic || self.ty.is_some_and(|t| t.atomic)
    }
}

/// The default of a `+listMapKey` field that server-side apply fills in when an applied element
/// omits it (`protocol` defaults to `TCP` in container and service ports).
pub(crate) fn list_map_key_default(key: &str) -> Option<&'static str> {
    match key {
        "protocol" => Some("TCP"),
        _ => None,
    }
}

const fn ty(name: &'static str, fields: &'static [Field]) -> TypeDef {
    TypeDef { name, fields, atomic: false }
}

// ---- meta/v1 ----

static OBJECT_META: TypeDef = ty(
    "ObjectMeta",
    &[
        Field::new("ownerReferences").merge_key("uid"),
        Field::new("finalizers").merge_primitives(),
        Field::new("managedFields").atomic(),
    ],
);

static LABEL_SELECTOR: TypeDef =
    TypeDef { name: "LabelSelector", fields: &[Field::new("matchExpressions").atomic()], atomic: true };

// ---- core/v1: pods ----

static RESOURCE_REQUIREMENTS: TypeDef = ty("ResourceRequirements", &[Field::new("claims").list_map_keys(&["name"])]);

static CONTAINER: TypeDef = ty(
    "Container",
    &[
        Field::new("ports").merge_key("containerPort").list_map_keys(&["containerPort", "protocol"]),
        Field::new("env").merge_key("name"),
        Field::new("volumeMounts").merge_key("mountPath"),
        Field::new("volumeDevices").merge_key("devicePath"),
        Field::new("envFrom").atomic(),
        Field::new("command").atomic(),
        Field::new("args").atomic(),
        Field::new("resizePolicy").atomic(),
        Field::new("resources").of(&RESOURCE_REQUIREMENTS),
    ],
);

static POD_SPEC: TypeDef = ty(
    "PodSpec",
    &[
        Field::new("volumes").merge_key("name").retain_keys(),
        Field::new("initContainers").of(&CONTAINER).merge_key("name"),
        Field::new("containers").of(&CONTAINER).merge_key("name"),
        // EphemeralContainer inlines EphemeralContainerCommon, which has Container's fields
        // and tags.
        Field::new("ephemeralContainers").of(&CONTAINER).merge_key("name"),
        Field::new("imagePullSecrets").merge_key("name"),
        Field::new("hostAliases").merge_key("ip"),
        Field::new("tolerations").atomic(),
        Field::new("topologySpreadConstraints")
            .merge_key("topologyKey")
            .list_map_keys(&["topologyKey", "whenUnsatisfiable"]),
        Field::new("schedulingGates").merge_key("name"),
        Field::new("resourceClaims").merge_key("name").retain_keys(),
        Field::new("readinessGates").atomic(),
        Field::new("nodeSelector").atomic(),
    ],
);

static POD_STATUS: TypeDef = ty(
    "PodStatus",
    &[
        Field::new("conditions").merge_key("type"),
        Field::new("podIPs").merge_key("ip"),
        Field::new("hostIPs").merge_key("ip"),
        Field::new("resourceClaimStatuses").merge_key("name"),
        Field::new("initContainerStatuses").atomic(),
        Field::new("containerStatuses").atomic(),
        Field::new("ephemeralContainerStatuses").atomic(),
    ],
);

static POD: TypeDef = ty(
    "Pod",
    &[Field::new("metadata").of(&OBJECT_META), Field::new("spec").of(&POD_SPEC), Field::new("status").of(&POD_STATUS)],
);

static POD_TEMPLATE_SPEC: TypeDef =
    ty("PodTemplateSpec", &[Field::new("metadata").of(&OBJECT_META), Field::new("spec").of(&POD_SPEC)]);

// ---- core/v1: services and endpoints ----

static LOAD_BALANCER_STATUS: TypeDef = ty("LoadBalancerStatus", &[Field::new("ingress").atomic()]);

static SERVICE_SPEC: TypeDef = ty(
    "ServiceSpec",
    &[
        Field::new("ports").merge_key("port").list_map_keys(&["port", "protocol"]),
        Field::new("selector").atomic(),
        Field::new("clusterIPs").atomic(),
        Field::new("externalIPs").atomic(),
        Field::new("ipFamilies").atomic(),
        Field::new("loadBalancerSourceRanges").atomic(),
    ],
);

static SERVICE_STATUS: TypeDef = ty(
    "ServiceStatus",
    &[Field::new("conditions").merge_key("type"), Field::new("loadBalancer").of(&LOAD_BALANCER_STATUS)],
);

static SERVICE: TypeDef = ty(
    "Service",
    &[
        Field::new("metadata").of(&OBJECT_META),
        Field::new("spec").of(&SERVICE_SPEC),
        Field::new("status").of(&SERVICE_STATUS),
    ],
);

static ENDPOINTS: TypeDef = ty("Endpoints", &[Field::new("metadata").of(&OBJECT_META), Field::new("subsets").atomic()]);

// ---- core/v1: the rest ----

/// ConfigMap, Secret, Event, and the kinds with nothing special but their metadata.
static METADATA_ONLY: TypeDef = ty("(metadata only)", &[Field::new("metadata").of(&OBJECT_META)]);

static NAMESPACE_SPEC: TypeDef = ty("NamespaceSpec", &[Field::new("finalizers").atomic()]);

static NAMESPACE_STATUS: TypeDef = ty("NamespaceStatus", &[Field::new("conditions").merge_key("type")]);

static NAMESPACE: TypeDef = ty(
    "Namespace",
    &[
        Field::new("metadata").of(&OBJECT_META),
        Field::new("spec").of(&NAMESPACE_SPEC),
        Field::new("status").of(&NAMESPACE_STATUS),
    ],
);

static NODE_SPEC: TypeDef = ty("NodeSpec", &[Field::new("podCIDRs").merge_primitives(), Field::new("taints").atomic()]);

static NODE_STATUS: TypeDef = ty(
    "NodeStatus",
    &[
        Field::new("addresses").merge_key("type"),
        Field::new("conditions").merge_key("type"),
        Field::new("images").atomic(),
        Field::new("volumesInUse").atomic(),
        Field::new("volumesAttached").atomic(),
    ],
);

static NODE: TypeDef = ty(
    "Node",
    &[
        Field::new("metadata").of(&OBJECT_META),
        Field::new("spec").of(&NODE_SPEC),
        Field::new("status").of(&NODE_STATUS),
    ],
);

static SERVICE_ACCOUNT: TypeDef = ty(
    "ServiceAccount",
    &[
        Field::new("metadata").of(&OBJECT_META),
        Field::new("secrets").merge_key("name"),
        Field::new("imagePullSecrets").atomic(),
    ],
);

// ---- apps/v1 ----

/// The status of Deployments, ReplicaSets and DaemonSets: only the conditions are special.
static WORKLOAD_STATUS: TypeDef = ty("DeploymentStatus", &[Field::new("conditions").merge_key("type")]);

static DEPLOYMENT_SPEC: TypeDef = ty(
    "DeploymentSpec",
    &[
        Field::new("selector").of(&LABEL_SELECTOR),
        Field::new("template").of(&POD_TEMPLATE_SPEC),
        Field::new("strategy").retain_keys(),
    ],
);

static DEPLOYMENT: TypeDef = ty(
    "Deployment",
    &[
        Field::new("metadata").of(&OBJECT_META),
        Field::new("spec").of(&DEPLOYMENT_SPEC),
        Field::new("status").of(&WORKLOAD_STATUS),
    ],
);

/// ReplicaSetSpec and DaemonSetSpec: a selector and a pod template. (DaemonSet's
/// `updateStrategy` carries no `retainKeys` tag upstream, unlike Deployment's `strategy`.)
static WORKLOAD_SPEC: TypeDef =
    ty("ReplicaSetSpec", &[Field::new("selector").of(&LABEL_SELECTOR), Field::new("template").of(&POD_TEMPLATE_SPEC)]);

static WORKLOAD: TypeDef = ty(
    "ReplicaSet",
    &[
        Field::new("metadata").of(&OBJECT_META),
        Field::new("spec").of(&WORKLOAD_SPEC),
        Field::new("status").of(&WORKLOAD_STATUS),
    ],
);

// ---- discovery/v1 ----

static ENDPOINT: TypeDef = ty("Endpoint", &[Field::new("addresses").set()]);

static ENDPOINT_SLICE: TypeDef = ty(
    "EndpointSlice",
    &[
        Field::new("metadata").of(&OBJECT_META),
        Field::new("endpoints").of(&ENDPOINT).atomic(),
        Field::new("ports").atomic(),
    ],
);

// ---- networking/v1 ----

static INGRESS_SPEC: TypeDef = ty("IngressSpec", &[Field::new("rules").atomic(), Field::new("tls").atomic()]);

static INGRESS_STATUS: TypeDef = ty("IngressStatus", &[Field::new("loadBalancer").of(&LOAD_BALANCER_STATUS)]);

static INGRESS: TypeDef = ty(
    "Ingress",
    &[
        Field::new("metadata").of(&OBJECT_META),
        Field::new("spec").of(&INGRESS_SPEC),
        Field::new("status").of(&INGRESS_STATUS),
    ],
);

static NETWORK_POLICY_SPEC: TypeDef = ty(
    "NetworkPolicySpec",
    &[
        Field::new("podSelector").of(&LABEL_SELECTOR),
        Field::new("ingress").atomic(),
        Field::new("egress").atomic(),
        Field::new("policyTypes").atomic(),
    ],
);

static NETWORK_POLICY: TypeDef =
    ty("NetworkPolicy", &[Field::new("metadata").of(&OBJECT_META), Field::new("spec").of(&NETWORK_POLICY_SPEC)]);

/// The kinds with patch metadata, with their schema roots.
static ROOTS: &[(&str, &TypeDef)] = &[
    ("Pod", &POD),
    ("Service", &SERVICE),
    ("Endpoints", &ENDPOINTS),
    ("ConfigMap", &METADATA_ONLY),
    ("Secret", &METADATA_ONLY),
    ("Namespace", &NAMESPACE),
    ("Node", &NODE),
    ("Event", &METADATA_ONLY),
    ("ServiceAccount", &SERVICE_ACCOUNT),
    ("Deployment", &DEPLOYMENT),
    ("ReplicaSet", &WORKLOAD),
    ("DaemonSet", &WORKLOAD),
    ("EndpointSlice", &ENDPOINT_SLICE),
    ("Ingress", &INGRESS),
    ("IngressClass", &METADATA_ONLY),
    ("NetworkPolicy", &NETWORK_POLICY),
    ("Lease", &METADATA_ONLY),
];

/// The kinds [`type_for_kind`] knows.
pub const KINDS: &[&str] = &[
    "Pod",
    "Service",
    "Endpoints",
    "ConfigMap",
    "Secret",
    "Namespace",
    "Node",
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
];

/// The schema root of a built-in kind. `kind` is the `kind` field (`"Deployment"`), optionally
/// prefixed by the apiVersion and a slash (`"apps/v1/Deployment"`, `"v1/Pod"`): only the part
/// after the last `/` is used, since every served kind name is unique. `None` for other kinds,
/// which then merge with the defaults (objects recursively, lists replaced).
pub fn type_for_kind(kind: &str) -> Option<&'static TypeDef> {
    let kind = kind.rsplit('/').next().unwrap_or(kind);
    ROOTS.iter().find(|(k, _)| *k == kind).map(|(_, t)| *t)
}
