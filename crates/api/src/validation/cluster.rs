//! Cluster-level kinds: namespaces, nodes, leases (`coordination/v1`) and events (core `v1`
//! and `events.k8s.io/v1`). Service accounts only have their metadata checked.

use podnet_meta::names;
use serde_json::Value;

use super::{
    array, child, cidr, field, finalizers, go_string_slice, index, int, invalid_go, opt_string, push_all,
    qualified_name, show, string, Errs,
};
use crate::status::Cause;

/// `ValidateNamespace`: the finalizers of the spec (the name rule is in the metadata checks).
pub(super) fn validate_namespace(obj: &Value, errs: &mut Errs) {
    let spec = field(obj, "spec").unwrap_or(&Value::Null);
    finalizers(array(spec, "finalizers"), "spec.finalizers", errs);
    if let Some(phase) = field(obj, "status").and_then(|s| opt_string(s, "phase")) {
        if !phase.is_empty() && phase != "Active" && phase != "Terminating" {
            errs.push(Cause::not_supported("status.phase", phase, &["Active", "Terminating"]));
        }
    }
}

/// `ValidateNode` and `ValidateNodeUpdate`: pod CIDRs, taints and the provider ID.
pub(super) fn validate_node(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let spec = field(obj, "spec").unwrap_or(&Value::Null);
    let cidrs = pod_cidrs(spec);
    for (i, value) in cidrs.iter().enumerate() {
        cidr(value, &index("spec.podCIDRs", i), errs);
    }
    if cidrs.len() > 1 {
        let families: Vec<Option<bool>> =
            cidrs.iter().map(|c| super::parse_cidr(c).map(|(ip, _)| ip.is_ipv4())).collect();
        let dual_stack =
            cidrs.len() == 2 && families[0].is_some() && families[1].is_some() && families[0] != families[1];
        if !dual_stack {
            let raw: Vec<Value> = cidrs.iter().map(|c| Value::String(c.clone())).collect();
            errs.push(invalid_go(
                "spec.podCIDRs",
                &go_string_slice(&raw),
                "may specify no more than one CIDR for each IP family",
            ));
        }
    }
    let mut seen = std::collections::HashSet::new();
    for (i, taint) in array(spec, "taints").iter().enumerate() {
        let p = index("spec.taints", i);
        let key = string(taint, "key");
        qualified_name(key, &child(&p, "key"), errs);
        let value = string(taint, "value");
        let problems = names::is_valid_label_value(value);
        if !problems.is_empty() {
            errs.push(Cause::invalid(child(&p, "value"), value, problems.join(";")));
        }
        let effect = string(taint, "effect");
        match effect {
            "" => errs.push(Cause::required(child(&p, "effect"))),
            "NoSchedule" | "PreferNoSchedule" | "NoExecute" => {}
            other => errs.push(Cause::not_supported(
                child(&p, "effect"),
                other,
                &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            )),
        }
        if !seen.insert((key, effect)) {
            errs.push(Cause {
                reason: "FieldValueDuplicate",
                field: p,
                message: format!("Duplicate value: \"{key}:{effect}\": taints must be unique by key and effect pair"),
            });
        }
    }
    if let Some(old) = old {
        let old_spec = field(old, "spec").unwrap_or(&Value::Null);
        let old_cidrs = pod_cidrs(old_spec);
        if !old_cidrs.is_empty() && old_cidrs != cidrs {
            errs.push(Cause::forbidden(
                "spec.podCIDRs",
                "node updates may not change podCIDR except from \"\" to valid",
            ));
        }
        let old_provider = string(old_spec, "providerID");
        if !old_provider.is_empty() && old_provider != string(spec, "providerID") {
            errs.push(Cause::forbidden(
                "spec.providerID",
                "node updates may not change providerID except from \"\" to valid",
            ));
        }
    }
}

/// `spec.podCIDRs`, or the single `spec.podCIDR` when that is all there is (v1 conversion).
fn pod_cidrs(spec: &Value) -> Vec<String> {
    let cidrs: Vec<String> = array(spec, "podCIDRs").iter().map(show).collect();
    if !cidrs.is_empty() {
        return cidrs;
    }
    match string(spec, "podCIDR") {
        "" => Vec::new(),
        single => vec![single.to_string()],
    }
}

/// `ValidateLeaseSpec`.
pub(super) fn validate_lease(obj: &Value, errs: &mut Errs) {
    let spec = field(obj, "spec").unwrap_or(&Value::Null);
    if let Some(duration) = int(spec, "leaseDurationSeconds").filter(|d| *d <= 0) {
        errs.push(Cause::invalid("spec.leaseDurationSeconds", duration, "must be greater than 0"));
    }
    if let Some(transitions) = int(spec, "leaseTransitions").filter(|t| *t < 0) {
        errs.push(Cause::invalid("spec.leaseTransitions", transitions, "must be greater than or equal to 0"));
    }
    if opt_string(spec, "strategy") == Some("") {
        errs.push(Cause::required("spec.strategy"));
    }
}

/// Upstream's limits on event fields.
const REPORTING_INSTANCE_LIMIT: usize = 128;
const ACTION_LIMIT: usize = 128;
const REASON_LIMIT: usize = 128;
const NOTE_LIMIT: usize = 1024;

/// Events: the involved object (core) or regarding object (`events.k8s.io`) and its namespace,
/// and, for events with an `eventTime` ("new" events), the reporting fields.
pub(super) fn validate_event(obj: &Value, errs: &mut Errs) {
    let new_api = string(obj, "apiVersion").starts_with("events.k8s.io/");
    let (object_field, controller_field, note_field) = if new_api {
        ("regarding", "reportingController", "note")
    } else {
        ("involvedObject", "reportingComponent", "message")
    };
    let namespace = field(obj, "metadata").map(|m| string(m, "namespace")).unwrap_or("");
    let involved = field(obj, object_field);
    if involved.is_none() && !new_api {
        errs.push(Cause::required(object_field));
    }
    let involved_ns = involved.map(|o| string(o, "namespace")).unwrap_or("");
    let ns_path = child(object_field, "namespace");
    let event_time = field(obj, "eventTime").is_some_and(|t| !show(t).is_empty());
    if !event_time {
        if involved_ns.is_empty() {
            if !namespace.is_empty() && namespace != "default" {
                errs.push(Cause::invalid(&ns_path, involved_ns, "does not match event.namespace"));
            }
        } else if !namespace.is_empty() && namespace != involved_ns {
            errs.push(Cause::invalid(&ns_path, involved_ns, "does not match event.namespace"));
        }
    } else {
        if involved_ns.is_empty() && !namespace.is_empty() && namespace != "default" && namespace != "kube-system" {
            errs.push(Cause::invalid(&ns_path, involved_ns, "does not match event.namespace"));
        }
        // The v1 name of the controller field is `reportingComponent`.
        let controller = string(obj, "reportingController").to_string();
        let controller = if controller.is_empty() { string(obj, "reportingComponent").to_string() } else { controller };
        if controller.is_empty() {
            errs.push(Cause::required(controller_field));
        } else {
            qualified_name(&controller, controller_field, errs);
        }
        let instance = string(obj, "reportingInstance");
        if instance.is_empty() {
            errs.push(Cause::required("reportingInstance"));
        }
        if instance.len() > REPORTING_INSTANCE_LIMIT {
            errs.push(Cause::invalid(
                "reportingInstance",
                "",
                format!("can have at most {REPORTING_INSTANCE_LIMIT} characters"),
            ));
        }
        let action = string(obj, "action");
        if action.is_empty() {
            errs.push(Cause::required("action"));
        }
        if action.len() > ACTION_LIMIT {
            errs.push(Cause::invalid("action", "", format!("can have at most {ACTION_LIMIT} characters")));
        }
        let reason = string(obj, "reason");
        if reason.is_empty() {
            errs.push(Cause::required("reason"));
        }
        if reason.len() > REASON_LIMIT {
            errs.push(Cause::invalid("reason", "", format!("can have at most {REASON_LIMIT} characters")));
        }
        if string(obj, note_field).len() > NOTE_LIMIT {
            errs.push(Cause::invalid(note_field, "", format!("can have at most {NOTE_LIMIT} characters")));
        }
    }
    if new_api {
        if let Some(kind) = opt_string(obj, "type") {
            if kind != "Normal" && kind != "Warning" {
                errs.push(Cause::not_supported("type", kind, &["Normal", "Warning"]));
            }
        }
    }
    if !namespace.is_empty() {
        push_all(errs, "namespace", namespace, names::is_dns1123_subdomain(namespace));
    }
}
