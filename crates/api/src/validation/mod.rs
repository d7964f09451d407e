//! Validation of built-in kinds, as kube-apiserver's `Validate*` functions do it.
//!
//! [`validate`] checks an object in its `v1` JSON shape (after [`crate::defaults`] and the
//! allocation of cluster IPs and node ports) and returns every problem as a [`Cause`] with
//! upstream's field path (`spec.ports[0].port`, `metadata.labels`, `data[my key]`) and, where
//! practical, upstream's message, so that kubectl prints what a real cluster would print. On
//! updates `old` is the stored object, for the fields that may not change.
//!
//! The rules follow `pkg/apis/core/validation`, `pkg/apis/apps/validation`,
//! `pkg/apis/networking/validation`, `pkg/apis/discovery/validation`,
//! `pkg/apis/coordination/validation` and `k8s.io/apimachinery`'s object-meta validation. Each
//! kind lives in its own file:
//!
//! - `pod`: pods and pod templates (containers, volumes, probes, resources, tolerations…) and
//!   the pod update rules;
//! - `service`: services;
//! - `apps`: deployments, replica sets, daemon sets, stateful sets, jobs and cron jobs;
//! - `config`: config maps and secrets;
//! - `network`: endpoints, endpoint slices, ingresses, ingress classes and network policies;
//! - `cluster`: namespaces, nodes, leases, events and service accounts.
//!
//! Fields that defaulting fills in (a service's `type`, a container's `imagePullPolicy`…) are
//! only checked when present, so the result does not depend on whether the defaults ran first.
//! Unknown kinds get the metadata checks only, with the loosest name rule (a path segment), which
//! also fits RBAC names such as `system:controller:foo`.

use std::fmt::Display;
use std::net::IpAddr;

use podnet_meta::names;
use serde_json::{Map, Value};

use crate::status::Cause;

mod apps;
mod cluster;
mod config;
mod network;
mod pod;
mod service;
#[cfg(test)]
mod tests;

/// The causes collected while validating one object.
type Errs = Vec<Cause>;

/// Every problem with a `kind` object; `old` is the stored object on updates (for immutable
/// fields). An empty list means the object is valid.
pub fn validate(kind: &str, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut errs = Errs::new();
    if !obj.is_object() {
        errs.push(invalid_go("", "<non-object>", "must be a JSON object"));
        return errs;
    }
    let old = old.filter(|o| o.is_object());
    // Core v1 events are not held to the object-meta name rules (upstream skips them).
    let rule = name_rule(kind);
    object_meta(obj, rule, kind == "Event", &mut errs);
    if let Some(old) = old {
        object_meta_update(obj, old, &mut errs);
    }
    match kind {
        "Pod" => pod::validate_pod(obj, old, &mut errs),
        "PodTemplate" => pod::validate_template(field(obj, "template").unwrap_or(&Value::Null), "template", &mut errs),
        "Service" => service::validate_service(obj, old, &mut errs),
        "Deployment" => apps::validate_deployment(obj, old, &mut errs),
        "ReplicaSet" => apps::validate_replica_set(obj, old, &mut errs),
        "DaemonSet" => apps::validate_daemon_set(obj, old, &mut errs),
        "StatefulSet" => apps::validate_stateful_set(obj, old, &mut errs),
        "Job" => apps::validate_job(obj, &mut errs),
        "CronJob" => apps::validate_cron_job(obj, &mut errs),
        "ConfigMap" => config::validate_config_map(obj, old, &mut errs),
        "Secret" => config::validate_secret(obj, old, &mut errs),
        "Endpoints" => network::validate_endpoints(obj, &mut errs),
        "EndpointSlice" => network::validate_endpoint_slice(obj, old, &mut errs),
        "Ingress" => network::validate_ingress(obj, &mut errs),
        "IngressClass" => network::validate_ingress_class(obj, old, &mut errs),
        "NetworkPolicy" => network::validate_network_policy(obj, &mut errs),
        "Namespace" => cluster::validate_namespace(obj, &mut errs),
        "Node" => cluster::validate_node(obj, old, &mut errs),
        "Lease" => cluster::validate_lease(obj, &mut errs),
        "Event" => cluster::validate_event(obj, &mut errs),
        _ => {}
    }
    errs
}

// ------------------------------------------------------------------------------- field paths

/// `path.name`, or `name` at the root.
fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

/// `path[i]`.
fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// `path[key]`, the way upstream renders map keys (unquoted).
fn key(path: &str, key: &str) -> String {
    format!("{path}[{key}]")
}

// ------------------------------------------------------------------------------- JSON access

/// The field `name` of `v`, treating `null` as absent.
fn field<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    v.get(name).filter(|x| !x.is_null())
}

/// A string field, `""` when absent (Go's zero value).
fn string<'a>(v: &'a Value, name: &str) -> &'a str {
    field(v, name).and_then(Value::as_str).unwrap_or("")
}

/// A string field that is present (a set `*string` in Go).
fn opt_string<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
    field(v, name).and_then(Value::as_str)
}

/// An array field, empty when absent.
fn array<'a>(v: &'a Value, name: &str) -> &'a [Value] {
    field(v, name).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// An object field, when present.
fn object<'a>(v: &'a Value, name: &str) -> Option<&'a Map<String, Value>> {
    field(v, name).and_then(Value::as_object)
}

/// An integer field, when present.
fn int(v: &Value, name: &str) -> Option<i64> {
    field(v, name).and_then(as_int)
}

/// A JSON number as an integer (`80` or `80.0`).
fn as_int(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15).map(|f| f as i64))
}

/// A boolean field, `false` when absent.
fn boolean(v: &Value, name: &str) -> bool {
    field(v, name).and_then(Value::as_bool).unwrap_or(false)
}

/// `true` when a value is "empty" the way Go sees a zero value: absent, `null`, `""`, `0`,
/// `false`, `[]` or `{}`.
fn is_zero(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Number(n)) => n.as_f64() == Some(0.0),
        Some(Value::Bool(b)) => !b,
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(o)) => o.is_empty(),
    }
}

/// A copy of `v` without the zero values, so that two objects compare the way
/// `apiequality.Semantic.DeepEqual` compares their Go structs (absent, `null`, `""`, `0`,
/// `false`, `[]` and `{}` are all the same).
fn normalized(v: &Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, child) in map {
                let child = normalized(child);
                if !is_zero(Some(&child)) {
                    out.insert(k.clone(), child);
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(normalized).collect()),
        other => other.clone(),
    }
}

/// Whether two optional values are semantically equal (see [`normalized`]).
fn same(a: Option<&Value>, b: Option<&Value>) -> bool {
    let a = a.map(normalized).unwrap_or(Value::Null);
    let b = b.map(normalized).unwrap_or(Value::Null);
    is_zero(Some(&a)) && is_zero(Some(&b)) || a == b
}

/// A JSON value the way a message shows it: strings bare, everything else as JSON.
fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A string value the way Go's `%q` shows it in messages: quoted, even when it looks like a
/// number (quantities such as `"2"`).
fn quoted(v: &Value) -> String {
    format!("\"{}\"", show(v))
}

// ----------------------------------------------------------------------------- cause helpers

/// `Required value: <detail>`.
fn required_because(field: impl Into<String>, detail: &str) -> Cause {
    Cause { reason: "FieldValueRequired", field: field.into(), message: format!("Required value: {detail}") }
}

/// `Invalid value: <rendered>: <detail>`, with the value already rendered (Go's `%#v` of maps
/// and structs, which is not quoted).
fn invalid_go(field: impl Into<String>, rendered: &str, detail: impl Display) -> Cause {
    let message = if rendered.is_empty() {
        format!("Invalid value: {detail}")
    } else {
        format!("Invalid value: {rendered}: {detail}")
    };
    Cause { reason: "FieldValueInvalid", field: field.into(), message }
}

/// `Not found: "<value>"`.
fn not_found(field: impl Into<String>, value: &str) -> Cause {
    Cause { reason: "FieldValueNotFound", field: field.into(), message: format!("Not found: \"{value}\"") }
}

/// `Too long: may not be more than <max> bytes`.
fn too_long(field: impl Into<String>, max: usize) -> Cause {
    Cause {
        reason: "FieldValueTooLong",
        field: field.into(),
        message: format!("Too long: may not be more than {max} bytes"),
    }
}

/// `Too many: <actual>: must have at most <max> items`.
fn too_many(field: impl Into<String>, actual: usize, max: usize) -> Cause {
    Cause {
        reason: "FieldValueTooMany",
        field: field.into(),
        message: format!("Too many: {actual}: must have at most {max} items"),
    }
}

/// Go's `%#v` of a `map[string]string`: `map[string]string{"a":"b", "c":"d"}` (sorted keys).
fn go_string_map(map: Option<&Value>) -> String {
    let Some(map) = map.and_then(Value::as_object) else {
        return "map[string]string(nil)".to_string();
    };
    let mut entries: Vec<(&String, String)> = map.iter().map(|(k, v)| (k, show(v))).collect();
    entries.sort();
    let body: Vec<String> = entries.iter().map(|(k, v)| format!("{k:?}:{v:?}")).collect();
    format!("map[string]string{{{}}}", body.join(", "))
}

/// Go's `%#v` of a `[]string`: `[]string{"a", "b"}`.
fn go_string_slice(items: &[Value]) -> String {
    if items.is_empty() {
        return "[]string(nil)".to_string();
    }
    let body: Vec<String> = items.iter().map(|v| format!("{:?}", show(v))).collect();
    format!("[]string{{{}}}", body.join(", "))
}

/// Go's `%#v` of a `metav1.LabelSelector`, as immutability errors show it.
fn go_label_selector(selector: Option<&Value>) -> String {
    let Some(selector) = selector else {
        return "null".to_string();
    };
    let expressions = array(selector, "matchExpressions");
    let expressions = if expressions.is_empty() {
        "[]v1.LabelSelectorRequirement(nil)".to_string()
    } else {
        let items: Vec<String> = expressions
            .iter()
            .map(|e| {
                format!(
                    "v1.LabelSelectorRequirement{{Key:{:?}, Operator:{:?}, Values:{}}}",
                    string(e, "key"),
                    string(e, "operator"),
                    go_string_slice(array(e, "values"))
                )
            })
            .collect();
        format!("[]v1.LabelSelectorRequirement{{{}}}", items.join(", "))
    };
    format!(
        "v1.LabelSelector{{MatchLabels:{}, MatchExpressions:{expressions}}}",
        go_string_map(field(selector, "matchLabels"))
    )
}

// ---------------------------------------------------------------------------- common checks

/// One `Invalid` cause per message of a name check.
fn push_all(errs: &mut Errs, field: &str, value: impl Display, messages: Vec<String>) {
    let value = value.to_string();
    errs.extend(messages.into_iter().map(|m| Cause::invalid(field, &value, m)));
}

fn dns_label(value: &str, field: &str, errs: &mut Errs) {
    push_all(errs, field, value, names::is_dns1123_label(value));
}

fn dns_subdomain(value: &str, field: &str, errs: &mut Errs) {
    push_all(errs, field, value, names::is_dns1123_subdomain(value));
}

fn qualified_name(value: &str, field: &str, errs: &mut Errs) {
    push_all(errs, field, value, names::is_qualified_name(value));
}

/// `ValidateLabels`: keys are qualified names, values label values; errors at `field` itself.
fn labels(map: Option<&Value>, field: &str, errs: &mut Errs) {
    let Some(map) = map.and_then(Value::as_object) else {
        return;
    };
    for (k, v) in map {
        qualified_name(k, field, errs);
        let value = show(v);
        push_all(errs, field, &value, names::is_valid_label_value(&value));
    }
}

/// `ValidateLabelSelector` (label values in expressions must be valid too).
fn label_selector(selector: &Value, field: &str, errs: &mut Errs) {
    labels(self::field(selector, "matchLabels"), &child(field, "matchLabels"), errs);
    for (i, expr) in array(selector, "matchExpressions").iter().enumerate() {
        let path = index(&child(field, "matchExpressions"), i);
        let values = array(expr, "values");
        match string(expr, "operator") {
            "In" | "NotIn" => {
                if values.is_empty() {
                    errs.push(required_because(
                        child(&path, "values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    errs.push(Cause::forbidden(
                        child(&path, "values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            other => errs.push(Cause::invalid(child(&path, "operator"), other, "not a valid selector operator")),
        }
        qualified_name(string(expr, "key"), &child(&path, "key"), errs);
        for (j, value) in values.iter().enumerate() {
            let value = show(value);
            push_all(errs, &index(&child(&path, "values"), j), &value, names::is_valid_label_value(&value));
        }
    }
}

/// `ValidatePortNumOrName` of an int-or-string port.
fn port_num_or_name(port: Option<&Value>, field: &str, errs: &mut Errs) {
    match port {
        Some(Value::String(name)) => push_all(errs, field, name, names::is_valid_port_name(name)),
        Some(v) => {
            let number = as_int(v).unwrap_or(0);
            push_all(errs, field, number, names::is_valid_port_num(number));
        }
        None => push_all(errs, field, 0, names::is_valid_port_num(0)),
    }
}

/// `TCP`, `UDP` or `SCTP`, required.
fn protocol(value: Option<&str>, field: &str, errs: &mut Errs) {
    match value {
        None | Some("") => errs.push(Cause::required(field)),
        Some("TCP" | "UDP" | "SCTP") => {}
        Some(other) => errs.push(Cause::not_supported(field, other, &["SCTP", "TCP", "UDP"])),
    }
}

/// A value that must be `>= 0`.
fn non_negative(v: &Value, name: &str, path: &str, errs: &mut Errs) {
    if let Some(n) = int(v, name).filter(|n| *n < 0) {
        errs.push(Cause::invalid(child(path, name), n, "must be greater than or equal to 0"));
    }
}

// --------------------------------------------------------------------------------- addresses

/// Parses an IP address like `netutils.ParseIPSloppy` (IPv4 octets may have leading zeros).
fn parse_ip(value: &str) -> Option<IpAddr> {
    podnet_meta::names::parse_ip_sloppy(value)
}

/// Parses a CIDR (`10.0.0.0/8`, `fd00::/64`): the address and the prefix length.
fn parse_cidr(value: &str) -> Option<(IpAddr, u8)> {
    let (ip, prefix) = value.split_once('/')?;
    let ip = parse_ip(ip)?;
    if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) || prefix.len() > 3 {
        return None;
    }
    let prefix: u8 = prefix.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (prefix <= max).then_some((ip, prefix))
}

/// The network address of a CIDR as a number, with its family's width.
fn cidr_bits(ip: IpAddr) -> (u128, u8) {
    match ip {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
        IpAddr::V6(v6) => (u128::from(v6), 128),
    }
}

/// Whether `inner` (address and prefix) lies within `outer`.
fn cidr_contains(outer: (IpAddr, u8), inner_ip: IpAddr) -> bool {
    let (o, width) = cidr_bits(outer.0);
    let (i, inner_width) = cidr_bits(inner_ip);
    if width != inner_width {
        return false;
    }
    let shift = u32::from(width - outer.1);
    shift >= 128 || (o >> shift) == (i >> shift)
}

/// `IsValidIP`: pushes the error and returns `false` when `value` is not an IP address.
fn ip_address(value: &str, field: &str, errs: &mut Errs) -> bool {
    let problems = names::is_valid_ip(value);
    let ok = problems.is_empty();
    push_all(errs, field, value, problems);
    ok
}

/// `IsValidCIDR`.
fn cidr(value: &str, field: &str, errs: &mut Errs) -> Option<(IpAddr, u8)> {
    let parsed = parse_cidr(value);
    if parsed.is_none() {
        errs.push(Cause::invalid(field, value, "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"));
    }
    parsed
}

/// `ValidateNonSpecialIP` / `ValidateEndpointIP`: no unspecified, loopback or link-local
/// addresses (they make no sense as endpoints or external IPs).
///
/// Endpoints pass `allow_loopback`: unlike upstream, podnet accepts loopback endpoint addresses,
/// because its API server advertises 127.0.0.1 by default and publishes that address in the
/// `kubernetes` Endpoints and EndpointSlice.
fn non_special_ip(value: &str, field: &str, allow_loopback: bool, errs: &mut Errs) {
    let Some(ip) = parse_ip(value) else { return };
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    let (unspecified, loopback, link_local, link_local_multicast) = match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            (v4.is_unspecified(), v4.is_loopback(), v4.is_link_local(), o[0] == 224 && o[1] == 0 && o[2] == 0)
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            (v6.is_unspecified(), v6.is_loopback(), s[0] & 0xffc0 == 0xfe80, s[0] & 0xff0f == 0xff02)
        }
    };
    if unspecified {
        errs.push(Cause::invalid(field, value, format!("may not be unspecified ({value})")));
    }
    if loopback && !allow_loopback {
        errs.push(Cause::invalid(field, value, "may not be in the loopback range (127.0.0.0/8, ::1/128)"));
    }
    if link_local {
        errs.push(Cause::invalid(field, value, "may not be in the link-local range (169.254.0.0/16, fe80::/10)"));
    }
    if link_local_multicast {
        errs.push(Cause::invalid(
            field,
            value,
            "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)",
        ));
    }
}

// --------------------------------------------------------------------------------- quantities

const QUANTITY_ERROR: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// Parses a resource quantity (`500m`, `1.5Gi`, `2e3`) into its value.
fn parse_quantity(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s
        .char_indices()
        .find(|(i, c)| !(c.is_ascii_digit() || *c == '.' || (*i == 0 && (*c == '+' || *c == '-'))))
        .map_or(s.len(), |(i, _)| i);
    let (number, suffix) = s.split_at(split);
    let digits = number.trim_start_matches(['+', '-']);
    if digits.is_empty() || digits == "." || digits.matches('.').count() > 1 {
        return None;
    }
    let value: f64 = number.parse().ok()?;
    let multiplier = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0_f64.powi(2),
        "Gi" => 1024.0_f64.powi(3),
        "Ti" => 1024.0_f64.powi(4),
        "Pi" => 1024.0_f64.powi(5),
        "Ei" => 1024.0_f64.powi(6),
        exp if exp.starts_with(['e', 'E']) => {
            let e = &exp[1..];
            let unsigned = e.trim_start_matches(['+', '-']);
            if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) || e.len() - unsigned.len() > 1 {
                return None;
            }
            10f64.powi(e.parse().ok()?)
        }
        _ => return None,
    };
    Some(value * multiplier)
}

/// A quantity field's value: a string or a plain number.
fn quantity(v: &Value) -> Option<f64> {
    match v {
        Value::String(s) => parse_quantity(s),
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

// ----------------------------------------------------------------------------------- metadata

/// Which name rule an object's `metadata.name` follows.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum NameRule {
    /// DNS-1123 subdomain (most kinds).
    Subdomain,
    /// DNS-1123 label (namespaces).
    Label,
    /// DNS-1035 label (services).
    Dns1035,
    /// Anything usable as a URL path segment (RBAC and unknown kinds).
    PathSegment,
}

fn name_rule(kind: &str) -> NameRule {
    match kind {
        "Namespace" => NameRule::Label,
        "Service" => NameRule::Dns1035,
        "Pod"
        | "PodTemplate"
        | "ReplicationController"
        | "ConfigMap"
        | "Secret"
        | "ServiceAccount"
        | "Endpoints"
        | "Node"
        | "PersistentVolume"
        | "PersistentVolumeClaim"
        | "LimitRange"
        | "ResourceQuota"
        | "Deployment"
        | "ReplicaSet"
        | "DaemonSet"
        | "StatefulSet"
        | "ControllerRevision"
        | "Job"
        | "CronJob"
        | "EndpointSlice"
        | "Ingress"
        | "IngressClass"
        | "NetworkPolicy"
        | "Lease"
        | "PriorityClass"
        | "StorageClass"
        | "RuntimeClass"
        | "PodDisruptionBudget"
        | "HorizontalPodAutoscaler" => NameRule::Subdomain,
        _ => NameRule::PathSegment,
    }
}

/// `ValidatePathSegmentName`.
fn path_segment_name(name: &str, prefix: bool) -> Vec<String> {
    let mut problems = Vec::new();
    if !prefix && (name == "." || name == "..") {
        problems.push(format!("may not be '{name}'"));
    }
    for bad in ["/", "%"] {
        if name.contains(bad) {
            problems.push(format!("may not contain '{bad}'"));
        }
    }
    problems
}

fn check_name(rule: NameRule, name: &str, prefix: bool) -> Vec<String> {
    match rule {
        NameRule::Subdomain => names::name_is_dns_subdomain(name, prefix),
        NameRule::Label => names::name_is_dns_label(name, prefix),
        NameRule::Dns1035 => names::name_is_dns1035_label(name, prefix),
        NameRule::PathSegment => path_segment_name(name, prefix),
    }
}

/// Upstream's limit on the total size of an object's annotations (keys and values).
const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// `ValidateAnnotations`: keys are qualified names (case-insensitively), 256 KiB at most.
fn annotations(map: Option<&Value>, field: &str, errs: &mut Errs) {
    let Some(map) = map.and_then(Value::as_object) else {
        return;
    };
    let mut total = 0;
    for (k, v) in map {
        push_all(errs, field, k, names::is_qualified_name(&k.to_lowercase()));
        total += k.len() + v.as_str().map_or(0, str::len);
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.push(too_long(field, TOTAL_ANNOTATION_SIZE_LIMIT));
    }
}

/// `ValidateObjectMeta`: name (or generateName), namespace, labels, annotations, owner
/// references and finalizers.
fn object_meta(obj: &Value, rule: NameRule, lenient_name: bool, errs: &mut Errs) {
    let meta = field(obj, "metadata").unwrap_or(&Value::Null);
    let rule = if lenient_name { NameRule::PathSegment } else { rule };
    let name = string(meta, "name");
    let generate_name = string(meta, "generateName");
    if !name.is_empty() {
        push_all(errs, "metadata.name", name, check_name(rule, name, false));
    } else if !generate_name.is_empty() {
        push_all(errs, "metadata.generateName", generate_name, check_name(rule, generate_name, true));
    } else {
        errs.push(required_because("metadata.name", "name or generateName is required"));
    }
    let namespace = string(meta, "namespace");
    if !namespace.is_empty() {
        push_all(errs, "metadata.namespace", namespace, names::name_is_dns_label(namespace, false));
    }
    labels(field(meta, "labels"), "metadata.labels", errs);
    annotations(field(meta, "annotations"), "metadata.annotations", errs);
    owner_references(array(meta, "ownerReferences"), errs);
    finalizers(array(meta, "finalizers"), "metadata.finalizers", errs);
}

fn owner_references(refs: &[Value], errs: &mut Errs) {
    const FIELD: &str = "metadata.ownerReferences";
    let mut controllers = Vec::new();
    for r in refs {
        let gvk = format!("{}, Kind={}", string(r, "apiVersion"), string(r, "kind"));
        if string(r, "apiVersion").is_empty() {
            errs.push(Cause::invalid(child(FIELD, "apiVersion"), string(r, "apiVersion"), "version must not be empty"));
        }
        if string(r, "kind").is_empty() {
            errs.push(Cause::invalid(child(FIELD, "kind"), string(r, "kind"), "kind must not be empty"));
        }
        if string(r, "name").is_empty() {
            errs.push(Cause::invalid(child(FIELD, "name"), string(r, "name"), "name must not be empty"));
        }
        if string(r, "uid").is_empty() {
            errs.push(Cause::invalid(child(FIELD, "uid"), string(r, "uid"), "uid must not be empty"));
        }
        if boolean(r, "controller") {
            controllers.push(format!("{}/{} ({gvk})", string(r, "kind"), string(r, "name")));
        }
    }
    if controllers.len() > 1 {
        errs.push(Cause::invalid(
            FIELD,
            format!("[{}]", controllers.join(", ")),
            format!(
                "Only one reference can have Controller set to true. Found \"true\" in references for {}",
                controllers.join(" and ")
            ),
        ));
    }
}

/// `ValidateFinalizers`: standard names or qualified names, and not both orphan and foreground.
fn finalizers(items: &[Value], field: &str, errs: &mut Errs) {
    let mut has_orphan = false;
    let mut has_foreground = false;
    for item in items {
        let name = show(item);
        if name.contains('/') {
            qualified_name(&name, field, errs);
        } else if !matches!(name.as_str(), "kubernetes" | "orphan" | "foregroundDeletion") {
            errs.push(Cause::invalid(
                field,
                &name,
                "name is neither a standard finalizer name nor is it fully qualified",
            ));
        }
        has_orphan |= name == "orphan";
        has_foreground |= name == "foregroundDeletion";
    }
    if has_orphan && has_foreground {
        errs.push(invalid_go(
            field,
            &go_string_slice(items),
            "finalizer orphan and foregroundDeletion cannot be both set",
        ));
    }
}

/// `ValidateObjectMetaUpdate`: the name and namespace do not change.
fn object_meta_update(obj: &Value, old: &Value, errs: &mut Errs) {
    let meta = field(obj, "metadata").unwrap_or(&Value::Null);
    let old_meta = field(old, "metadata").unwrap_or(&Value::Null);
    for name in ["name", "namespace"] {
        let (new, before) = (string(meta, name), string(old_meta, name));
        if !before.is_empty() && new != before {
            errs.push(Cause::immutable(child("metadata", name), new));
        }
    }
}
