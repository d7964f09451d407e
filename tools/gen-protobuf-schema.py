#!/usr/bin/env python3
"""Generate crates/api/src/protobuf/schema.rs, the table podnet-api decodes Kubernetes protobuf with.

Usage, from the workspace root (the output is rustfmt-stable; the crates are taken from cargo's
cache, and fetched from crates.io with `cargo fetch` when missing):

    python3 tools/gen-protobuf-schema.py > crates/api/src/protobuf/schema.rs

Where each fact comes from:
- field tags, wire types, repeated/map and nested message types: the prost-generated structs
  of the crate k8s-pb (`#[prost(string, optional, tag = "2")] pub generate_name: ...`), which
  are generated from k8s.io/api's and k8s.io/apimachinery's generated.proto files;
- JSON field names and whether a field is required: the serde impls and struct definitions of
  k8s-openapi (`"clusterIP" => Field::Key_cluster_ip`, `pub name: String` vs `Option<...>`).
  Fields are matched by normalising both names (lower case, no underscores): prost and
  k8s-openapi snake-case acronyms differently (`external_i_ps` vs `external_ips`). A proto
  message field with no JSON counterpart whose own fields all appear in the parent's JSON
  fields is an embedded Go struct (`json:",inline"`, e.g. Volume.volumeSource): its fields
  are merged into the parent object;
- which optional scalar fields are Go pointers (so that an explicit zero, false or "" on the
  wire means something and is kept, e.g. `replicas: 0`): GO_POINTERS below. Neither the .proto
  files nor the OpenAPI schema record it, so the list was read from the Go sources
  (k8s.io/api core/v1 zz_generated.deepcopy.go, where every pointer field is copied through
  `new(T)`; apps/v1, discovery/v1 and networking/v1 types.go; the Lease types;
  k8s.io/apimachinery pkg/apis/meta/v1 types.go). The generator fails if an entry names no
  optional scalar field of the schema. A field added to Kubernetes later as a pointer is taken
  for a plain value until it is listed here: its explicit zero is then dropped.

The zero-value rule the table encodes (see crates/api/src/protobuf/mod.rs): gogo-protobuf writes
every non-pointer field, zero or not, so a zero scalar on the wire is kept only where Go's JSON
encoder would have written it too: for pointers (GO_POINTERS) and for required fields (no
`omitempty`; k8s-openapi models them without Option).

Options: --k8s-pb DIR, --k8s-openapi DIR (the crates' roots; default: k8s-pb 0.9.0 and
k8s-openapi 0.29.0 from cargo's cache); --openapi-version v1_35 (the Kubernetes version k8s-pb
0.9 was generated from, so that every proto field has its JSON name);
--list-optional-scalars (prints the optional scalar fields, the candidates for GO_POINTERS,
instead of the table).
"""

import argparse
import glob
import os
import re
import subprocess
import sys
import tempfile

K8S_PB_VERSION = "0.9.0"  # Kubernetes 1.35's protos
K8S_OPENAPI_VERSION = "0.29.0"

# The objects the server accepts in protobuf: (apiVersion, kind, proto message).
ROOTS = [
    ("v1", "Namespace", "api.core.v1.Namespace"),
    ("v1", "Node", "api.core.v1.Node"),
    ("v1", "Pod", "api.core.v1.Pod"),
    ("v1", "Service", "api.core.v1.Service"),
    ("v1", "Endpoints", "api.core.v1.Endpoints"),
    ("v1", "ConfigMap", "api.core.v1.ConfigMap"),
    ("v1", "Secret", "api.core.v1.Secret"),
    ("v1", "Event", "api.core.v1.Event"),
    ("v1", "ServiceAccount", "api.core.v1.ServiceAccount"),
    ("v1", "Binding", "api.core.v1.Binding"),
    ("apps/v1", "Deployment", "api.apps.v1.Deployment"),
    ("apps/v1", "ReplicaSet", "api.apps.v1.ReplicaSet"),
    ("apps/v1", "DaemonSet", "api.apps.v1.DaemonSet"),
    ("discovery.k8s.io/v1", "EndpointSlice", "api.discovery.v1.EndpointSlice"),
    ("networking.k8s.io/v1", "Ingress", "api.networking.v1.Ingress"),
    ("networking.k8s.io/v1", "IngressClass", "api.networking.v1.IngressClass"),
    ("networking.k8s.io/v1", "NetworkPolicy", "api.networking.v1.NetworkPolicy"),
    ("coordination.k8s.io/v1", "Lease", "api.coordination.v1.Lease"),
    ("autoscaling/v1", "Scale", "api.autoscaling.v1.Scale"),
    ("meta.k8s.io/v1", "DeleteOptions", "apimachinery.pkg.apis.meta.v1.DeleteOptions"),
]

# Messages with their own JSON form (custom Go marshallers) → the schema's Kind.
SPECIAL = {
    "apimachinery.pkg.apis.meta.v1.Time": "Time",
    "apimachinery.pkg.apis.meta.v1.MicroTime": "MicroTime",
    "apimachinery.pkg.apis.meta.v1.Duration": "Duration",
    "apimachinery.pkg.apis.meta.v1.FieldsV1": "RawJson",
    "apimachinery.pkg.runtime.RawExtension": "RawJson",
    "apimachinery.pkg.api.resource.Quantity": "Quantity",
    "apimachinery.pkg.util.intstr.IntOrString": "IntOrString",
}

SCALARS = {
    "string": "String",
    "bytes": "Bytes",
    "bool": "Bool",
    "int32": "Int32",
    "int64": "Int64",
    "double": "Double",
}

GO_POINTERS = {
    # k8s.io/api core/v1 (zz_generated.deepcopy.go: the fields copied through `new(T)`)
    "api.core.v1.AppArmorProfile": "localhostProfile",
    "api.core.v1.AzureDiskVolumeSource": "cachingMode fsType readOnly kind",
    "api.core.v1.CSIVolumeSource": "readOnly fsType",
    "api.core.v1.ClientIPConfig": "timeoutSeconds",
    "api.core.v1.ClusterTrustBundleProjection": "name signerName optional",
    "api.core.v1.ConfigMap": "immutable",
    "api.core.v1.ConfigMapEnvSource": "optional",
    "api.core.v1.ConfigMapKeySelector": "optional",
    "api.core.v1.ConfigMapProjection": "optional",
    "api.core.v1.ConfigMapVolumeSource": "defaultMode optional",
    "api.core.v1.Container": "restartPolicy",
    "api.core.v1.ContainerStatus": "started stopSignal",
    "api.core.v1.DownwardAPIVolumeFile": "mode",
    "api.core.v1.DownwardAPIVolumeSource": "defaultMode",
    "api.core.v1.EndpointAddress": "nodeName",
    "api.core.v1.EndpointPort": "appProtocol",
    "api.core.v1.EphemeralContainerCommon": "restartPolicy",
    "api.core.v1.FCVolumeSource": "lun",
    "api.core.v1.FileKeySelector": "optional",
    "api.core.v1.GRPCAction": "service",
    "api.core.v1.HostPathVolumeSource": "type",
    "api.core.v1.ISCSIVolumeSource": "initiatorName",
    "api.core.v1.KeyToPath": "mode",
    "api.core.v1.Lifecycle": "stopSignal",
    "api.core.v1.LoadBalancerIngress": "ipMode",
    "api.core.v1.NodeFeatures": "supplementalGroupsPolicy",
    "api.core.v1.NodeRuntimeHandlerFeatures": "recursiveReadOnlyMounts userNamespaces",
    "api.core.v1.NodeSwapStatus": "capacity",
    "api.core.v1.PersistentVolumeClaimSpec": "storageClassName volumeMode volumeAttributesClassName",
    "api.core.v1.PodCertificateProjection": "maxExpirationSeconds",
    "api.core.v1.PodDNSConfigOption": "value",
    "api.core.v1.PodResourceClaim": "resourceClaimName resourceClaimTemplateName",
    "api.core.v1.PodResourceClaimStatus": "resourceClaimName",
    "api.core.v1.PodSecurityContext": "runAsUser runAsGroup runAsNonRoot supplementalGroupsPolicy fsGroup fsGroupChangePolicy seLinuxChangePolicy",
    "api.core.v1.PodSpec": "terminationGracePeriodSeconds activeDeadlineSeconds automountServiceAccountToken shareProcessNamespace priority runtimeClassName enableServiceLinks preemptionPolicy setHostnameAsFQDN hostUsers hostnameOverride",
    "api.core.v1.PortStatus": "error",
    "api.core.v1.Probe": "terminationGracePeriodSeconds",
    "api.core.v1.ProjectedVolumeSource": "defaultMode",
    "api.core.v1.SeccompProfile": "localhostProfile",
    "api.core.v1.Secret": "immutable",
    "api.core.v1.SecretEnvSource": "optional",
    "api.core.v1.SecretKeySelector": "optional",
    "api.core.v1.SecretProjection": "optional",
    "api.core.v1.SecretVolumeSource": "defaultMode optional",
    "api.core.v1.SecurityContext": "privileged runAsUser runAsGroup runAsNonRoot readOnlyRootFilesystem allowPrivilegeEscalation procMount",
    "api.core.v1.ServiceAccount": "automountServiceAccountToken",
    "api.core.v1.ServiceAccountTokenProjection": "expirationSeconds",
    "api.core.v1.ServicePort": "appProtocol",
    "api.core.v1.ServiceSpec": "ipFamilyPolicy allocateLoadBalancerNodePorts loadBalancerClass internalTrafficPolicy trafficDistribution",
    "api.core.v1.Toleration": "tolerationSeconds",
    "api.core.v1.TopologySpreadConstraint": "minDomains nodeAffinityPolicy nodeTaintsPolicy",
    "api.core.v1.TypedLocalObjectReference": "apiGroup",
    "api.core.v1.TypedObjectReference": "apiGroup namespace",
    "api.core.v1.VolumeMount": "recursiveReadOnly mountPropagation",
    "api.core.v1.VolumeMountStatus": "recursiveReadOnly",
    "api.core.v1.WindowsSecurityContextOptions": "gmsaCredentialSpecName gmsaCredentialSpec runAsUserName hostProcess",
    # k8s.io/api apps/v1 types.go
    "api.apps.v1.DeploymentSpec": "replicas revisionHistoryLimit progressDeadlineSeconds",
    "api.apps.v1.DeploymentStatus": "collisionCount terminatingReplicas",
    "api.apps.v1.ReplicaSetSpec": "replicas",
    "api.apps.v1.ReplicaSetStatus": "terminatingReplicas",
    "api.apps.v1.DaemonSetSpec": "revisionHistoryLimit",
    "api.apps.v1.DaemonSetStatus": "collisionCount",
    # k8s.io/api discovery/v1 types.go
    "api.discovery.v1.Endpoint": "hostname nodeName zone",
    "api.discovery.v1.EndpointConditions": "ready serving terminating",
    "api.discovery.v1.EndpointPort": "name protocol port appProtocol",
    # k8s.io/api networking/v1 types.go
    "api.networking.v1.NetworkPolicyPort": "protocol endPort",
    "api.networking.v1.IngressSpec": "ingressClassName",
    "api.networking.v1.IngressPortStatus": "error",
    "api.networking.v1.IngressClassParametersReference": "apiGroup scope namespace",
    # k8s.io/api coordination/v1 types.go (LeaseSpec: every field a pointer)
    "api.coordination.v1.LeaseSpec": "holderIdentity leaseDurationSeconds leaseTransitions strategy preferredHolder",
    # k8s.io/apimachinery pkg/apis/meta/v1 types.go
    "apimachinery.pkg.apis.meta.v1.ObjectMeta": "deletionGracePeriodSeconds",
    "apimachinery.pkg.apis.meta.v1.DeleteOptions": "gracePeriodSeconds orphanDependents propagationPolicy ignoreStoreReadErrorWithClusterBreakingPotential",
    "apimachinery.pkg.apis.meta.v1.Preconditions": "uid resourceVersion",
    "apimachinery.pkg.apis.meta.v1.OwnerReference": "controller blockOwnerDeletion",
}


def die(msg):
    sys.exit(f"gen-protobuf-schema: {msg}")


def crate_source(name, version):
    """The unpacked source of a crates.io crate, fetched with cargo into its cache if missing."""
    home = os.environ.get("CARGO_HOME", os.path.expanduser("~/.cargo"))
    pattern = os.path.join(home, "registry", "src", "*", f"{name}-{version}")
    found = sorted(glob.glob(pattern))
    if not found:
        # podnet does not depend on k8s-pb: fetch it through a throwaway manifest.
        with tempfile.TemporaryDirectory() as tmp:
            with open(os.path.join(tmp, "Cargo.toml"), "w", encoding="utf-8") as f:
                f.write(f'[package]\nname = "fetch"\nversion = "0.0.0"\nedition = "2021"\n'
                        f'[lib]\npath = "lib.rs"\n[dependencies]\n{name} = "={version}"\n')
            open(os.path.join(tmp, "lib.rs"), "w", encoding="utf-8").close()
            subprocess.run(["cargo", "fetch", "--manifest-path", os.path.join(tmp, "Cargo.toml")], check=True,
                           stdout=sys.stderr)
        found = sorted(glob.glob(pattern))
    if not found:
        die(f"{name} {version} is not in {pattern}: pass its directory")
    return found[-1]


def norm(name):
    return name.replace("r#", "").replace("_", "").lower()


def balanced_until_comma(lines, i):
    """Joins lines from i until a line ends a declaration (`,` at bracket depth 0)."""
    text = ""
    depth = 0
    while i < len(lines):
        line = lines[i].strip()
        text += line
        depth += line.count("<") + line.count("(") - line.count(">") - line.count(")")
        i += 1
        if depth <= 0 and text.endswith(","):
            return text, i
    die("unterminated field declaration")


def resolve_path(module, rust_type):
    """`super::super::x::Y` seen from module ["api", "core", "v1"] → "api.x.Y"."""
    parts = rust_type.split("::")
    base = list(module)
    while parts and parts[0] == "super":
        parts.pop(0)
        base.pop()
    if len(parts) == 1:
        return ".".join(module + parts)
    return ".".join(base + parts)


def inner_type(text):
    """The message type named in a field's Rust type."""
    ty = text.split(":", 1)[1].strip().rstrip(",")
    for wrapper in ("::core::option::Option<", "::prost::alloc::vec::Vec<", "::prost::alloc::boxed::Box<"):
        ty = ty.replace(wrapper, "")
    if "BTreeMap<" in ty:
        ty = ty.split(",", 1)[1]
    ty = ty.replace("<", "").replace(">", "").strip().rstrip(",").strip()
    return ty


def parse_k8s_pb(root):
    """fq message name → list of proto fields (dicts)."""
    messages = {}
    src = os.path.join(root, "src")
    for path in glob.glob(os.path.join(src, "**", "mod.rs"), recursive=True):
        module = os.path.relpath(os.path.dirname(path), src).split(os.sep)
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
        i = 0
        current = None
        while i < len(lines):
            line = lines[i].strip()
            m = re.match(r"pub struct (\w+) \{$", line)
            if m:
                current = []
                messages[".".join(module + [m.group(1)])] = current
                i += 1
                continue
            if line == "}" and lines[i].startswith("}"):
                current = None
            m = re.match(r"#\[prost\((.*)\)\]$", line)
            if m and current is not None:
                attr = m.group(1)
                decl, i = balanced_until_comma(lines, i + 1)
                fm = re.match(r"pub (r#)?(\w+):", decl)
                if not fm:
                    die(f"cannot read the field after #[prost({attr})] in {path}")
                tag = int(re.search(r'tag = "(\d+)"', attr).group(1))
                field = {"tag": tag, "rust": fm.group(2), "card": "One"}
                kind = attr.split(",")[0].strip()
                if kind.startswith("btree_map") or kind.startswith("map"):
                    key, value = re.search(r'map = "(\w+), (\w+)"', attr).groups()
                    if key != "string":
                        die(f"map with {key} keys in {path}: only string keys are supported")
                    field["card"] = "Map"
                    kind = value
                elif "repeated" in attr:
                    field["card"] = "Repeated"
                if kind.startswith("bytes"):
                    kind = "bytes"
                if kind == "message":
                    field["type"] = resolve_path(module, inner_type(decl))
                elif kind in SCALARS:
                    field["type"] = kind
                else:
                    die(f"unsupported prost field kind {attr!r} in {path}")
                current.append(field)
                continue
            if re.match(r"#\[prost\(", line) and current is not None:
                die(f"unreadable prost attribute {line!r} in {path}")
            i += 1
    return messages


def parse_k8s_openapi(root, version):
    """definition name (without io.k8s.) → {normalised rust name: (json name, optional)}."""
    defs = {}
    src = os.path.join(root, "src", version)
    for path in glob.glob(os.path.join(src, "**", "*.rs"), recursive=True):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        m = re.match(r"// Generated from definition io\.k8s\.([\w.]+)\n", text)
        if not m:
            continue
        name = m.group(1)
        sm = re.search(r"\npub struct \w+ \{\n(.*?)\n\}\n", text, re.S)
        if not sm:
            continue  # enums and newtypes: the special messages
        optional = {}
        for fm in re.finditer(r"^    pub (\w+): (.*),$", sm.group(1), re.M):
            optional[fm.group(1)] = fm.group(2).startswith("Option<")
        fields = {}
        for jm in re.finditer(r'"([^"]+)" => Field::Key_(\w+),', text):
            json_name, rust = jm.groups()
            if rust not in optional:
                if json_name in ("apiVersion", "kind"):
                    continue  # TypeMeta: in the protobuf envelope, not the message
                die(f"{path}: serde key {json_name} names no struct field {rust}")
            fields[norm(rust)] = (json_name, optional[rust])
        defs[name.lower()] = (name, fields)  # prost renames PodDNSConfig to PodDnsConfig
    return defs


def build(pb, openapi):
    """Walks the messages reachable from ROOTS: (order, index by name, fields by name, display names)."""
    order = []
    index = {}
    schema = {}
    names = {}
    problems = []

    def visit(name):
        if name in index:
            return index[name]
        if name not in pb:
            die(f"message {name} is not in k8s-pb")
        if name.lower() not in openapi:
            die(f"message {name} has no k8s-openapi definition")
        index[name] = len(order)
        order.append(name)
        json_name, json_fields = openapi[name.lower()]
        names[name] = json_name
        schema[name] = fields_of(name, json_name, json_fields)
        return index[name]

    def fields_of(name, json_owner, json_fields):
        out = []
        for f in sorted(pb[name], key=lambda f: f["tag"]):
            entry = {"tag": f["tag"], "card": f["card"]}
            ty = f["type"]
            if ty in SCALARS:
                entry["kind"] = SCALARS[ty]
            elif ty in SPECIAL:
                entry["kind"] = SPECIAL[ty]
            else:
                entry["kind"] = "Message"
                entry["type"] = ty
            key = norm(f["rust"])
            if key in json_fields:
                entry["json"], entry["optional"] = json_fields[key]
            elif entry["kind"] == "Message" and f["card"] == "One" and ty in pb and all(
                norm(g["rust"]) in json_fields for g in pb[ty]
            ):
                entry["card"] = "Inline"
                entry["json"] = ""
                entry["optional"] = True
                # The embedded struct's fields take their JSON names from the parent.
                entry["inline_fields"] = {norm(g["rust"]): json_fields[norm(g["rust"])] for g in pb[ty]}
            else:
                problems.append(f"{name}.{f['rust']} (tag {f['tag']}) has no JSON field in io.k8s.{json_owner}")
                continue
            out.append(entry)
        return out

    for _, _, root in ROOTS:
        visit(root)
    # Nested messages, breadth first, so the table's order is stable.
    i = 0
    while i < len(order):
        name = order[i]
        for entry in schema[name]:
            if entry["kind"] == "Message":
                ty = entry["type"]
                if entry["card"] == "Inline":
                    if ty not in index:
                        index[ty] = len(order)
                        order.append(ty)
                        names[ty] = f"{names[name]} (inline {ty.split('.')[-1]})"
                        schema[ty] = fields_of(ty, names[name], entry["inline_fields"])
                else:
                    visit(ty)
        i += 1
    if problems:
        die("fields without a JSON name:\n  " + "\n  ".join(problems))
    return order, index, schema, names


def rust_str(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def check_pointers(schema, index):
    """Every GO_POINTERS entry must name an optional singular scalar field of the schema."""
    keep = set()
    by_lower = {name.lower(): name for name in index}  # prost renames ClientIPConfig ClientIpConfig
    for go_name, fields in GO_POINTERS.items():
        name = by_lower.get(go_name.lower())
        if name is None:
            die(f"GO_POINTERS names {go_name}, which is not in the schema")
        for field in fields.split():
            match = [e for e in schema[name] if e.get("json") and norm(e["json"]) == norm(field)]
            if not match:
                die(f"GO_POINTERS names {name}.{field}, which has no such field")
            e = match[0]
            if e["card"] != "One" or e["kind"] not in ("String", "Bytes", "Bool", "Int32", "Int64", "Double"):
                die(f"GO_POINTERS names {name}.{field}, which is not a singular scalar")
            if not e["optional"]:
                die(f"GO_POINTERS names {name}.{field}, which is required anyway")
            keep.add((name, e["tag"]))
    return keep


KIND_RUST = {
    "String": "Str",
    "Bytes": "Bytes",
    "Bool": "Bool",
    "Int32": "I32",
    "Int64": "I64",
    "Double": "F64",
    "Time": "Time",
    "MicroTime": "MicroTime",
    "Duration": "Duration",
    "Quantity": "Quantity",
    "IntOrString": "IntOrString",
    "RawJson": "RawJson",
}


def emit(order, index, schema, keep, names, versions):
    out = []
    w = out.append
    w("// @generated by tools/gen-protobuf-schema.py: do not edit by hand.")
    w(f"// Sources: {versions}.")
    w("// Regenerate: python3 tools/gen-protobuf-schema.py > crates/api/src/protobuf/schema.rs")
    w("//! The protobuf schema of the objects podnet-api accepts in Kubernetes protobuf: for each")
    w("//! message reachable from [`ROOTS`], its fields by tag with their JSON names and kinds.")
    w("")
    w("use super::Card::{Inline, Map, One, Rep};")
    w("use super::Kind::*;")
    w("use super::{f, Message, Root};")
    w("")
    w("/// The messages; `Msg(i)` refers to `MESSAGES[i]`.")
    w("#[rustfmt::skip]")
    w(f"pub(super) static MESSAGES: [Message; {len(order)}] = [")
    for i, name in enumerate(order):
        w(f"    // {i}")
        shown = name if "(inline" in names[name] else names[name]  # PodDNSConfig, not prost's PodDnsConfig
        w(f"    Message {{ name: {rust_str('k8s.io.' + shown)}, fields: &[")
        for e in schema[name]:
            kind = f"Msg({index[e['type']]})" if e["kind"] == "Message" else KIND_RUST[e["kind"]]
            card = {"One": "One", "Repeated": "Rep", "Map": "Map", "Inline": "Inline"}[e["card"]]
            scalar = e["kind"] in ("String", "Bytes", "Bool", "Int32", "Int64", "Double") and e["card"] == "One"
            keep_zero = scalar and (not e["optional"] or (name, e["tag"]) in keep)
            w(f"        f({e['tag']}, {rust_str(e['json'])}, {kind}, {card}, {'true' if keep_zero else 'false'}),")
        w("    ] },")
    w("];")
    w("")
    w("/// The objects accepted at the top level: apiVersion, kind, message.")
    w("#[rustfmt::skip]")
    w(f"pub(super) static ROOTS: [Root; {len(ROOTS)}] = [")
    for api_version, kind, message in ROOTS:
        w(f"    Root {{ api_version: {rust_str(api_version)}, kind: {rust_str(kind)}, message: {index[message]} }},")
    w("];")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--k8s-pb")
    ap.add_argument("--k8s-openapi")
    ap.add_argument("--openapi-version", default="v1_35")
    ap.add_argument("--list-optional-scalars", action="store_true")
    args = ap.parse_args()
    pb_root = args.k8s_pb or crate_source("k8s-pb", K8S_PB_VERSION)
    oa_root = args.k8s_openapi or crate_source("k8s-openapi", K8S_OPENAPI_VERSION)
    pb = parse_k8s_pb(pb_root)
    openapi = parse_k8s_openapi(oa_root, args.openapi_version)
    order, index, schema, names = build(pb, openapi)
    if args.list_optional_scalars:
        for name in order:
            for e in schema[name]:
                if e["kind"] in ("String", "Bytes", "Bool", "Int32", "Int64", "Double") and e["card"] == "One" and e["optional"]:
                    print(f"{names[name]}.{e['json']} {e['kind']}")
        return
    keep = check_pointers(schema, index)
    versions = (
        f"{os.path.basename(pb_root)} (tags, wire types), "
        f"{os.path.basename(oa_root)} {args.openapi_version} (JSON names, required fields), "
        "GO_POINTERS in the generator (Go pointer fields)"
    )
    sys.stdout.write(emit(order, index, schema, keep, names, versions))


if __name__ == "__main__":
    main()
