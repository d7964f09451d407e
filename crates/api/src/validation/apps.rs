//! Workloads: deployments, replica sets, daemon sets and stateful sets (`pkg/apis/apps/validation`)
//! and jobs and cron jobs (`pkg/apis/batch/validation`, their pod templates and the essentials).

use podnet_meta::labels::Selector;
use serde_json::Value;

use super::{
    child, field, go_label_selector, go_string_map, int, invalid_go, label_selector, non_negative, opt_string, pod,
    required_because, same, show, string, Errs,
};
use crate::status::Cause;

/// Which workload a spec belongs to, for the few rules that differ.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Workload {
    Deployment,
    ReplicaSet,
    DaemonSet,
    StatefulSet,
}

impl Workload {
    /// The noun of upstream's "empty selector is invalid for …" (replica sets say deployment).
    fn noun(self) -> &'static str {
        match self {
            Workload::Deployment | Workload::ReplicaSet => "deployment",
            Workload::DaemonSet => "daemonset",
            Workload::StatefulSet => "statefulset",
        }
    }
}

pub(super) fn validate_deployment(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let spec = field(obj, "spec").unwrap_or(&Value::Null);
    workload_spec(spec, Workload::Deployment, errs);
    if let Some(strategy) = field(spec, "strategy") {
        deployment_strategy(strategy, errs);
    }
    non_negative(spec, "minReadySeconds", "spec", errs);
    non_negative(spec, "revisionHistoryLimit", "spec", errs);
    if let Some(deadline) = int(spec, "progressDeadlineSeconds") {
        if deadline < 0 {
            errs.push(Cause::invalid("spec.progressDeadlineSeconds", deadline, "must be greater than or equal to 0"));
        }
        if deadline <= int(spec, "minReadySeconds").unwrap_or(0) {
            errs.push(Cause::invalid("spec.progressDeadlineSeconds", deadline, "must be greater than minReadySeconds"));
        }
    }
    selector_unchanged(spec, old, errs);
}

pub(super) fn validate_replica_set(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let spec = field(obj, "spec").unwrap_or(&Value::Null);
    workload_spec(spec, Workload::ReplicaSet, errs);
    non_negative(spec, "minReadySeconds", "spec", errs);
    selector_unchanged(spec, old, errs);
}

pub(super) fn validate_daemon_set(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let spec = field(obj, "spec").unwrap_or(&Value::Null);
    workload_spec(spec, Workload::DaemonSet, errs);
    non_negative(spec, "minReadySeconds", "spec", errs);
    non_negative(spec, "revisionHistoryLimit", "spec", errs);
    non_negative(spec, "templateGeneration", "spec", errs);
    if let Some(strategy) = field(spec, "updateStrategy") {
        let p = "spec.updateStrategy";
        match string(strategy, "type") {
            "OnDelete" => {}
            "RollingUpdate" => {
                if let Some(rolling) = field(strategy, "rollingUpdate") {
                    let rp = child(p, "rollingUpdate");
                    let unavailable = field(rolling, "maxUnavailable");
                    let surge = field(rolling, "maxSurge");
                    int_or_percent(unavailable, &child(&rp, "maxUnavailable"), errs);
                    int_or_percent(surge, &child(&rp, "maxSurge"), errs);
                    at_most_100_percent(unavailable, &child(&rp, "maxUnavailable"), errs);
                    at_most_100_percent(surge, &child(&rp, "maxSurge"), errs);
                    let has_unavailable = int_or_percent_value(unavailable) != 0;
                    let has_surge = int_or_percent_value(surge) != 0;
                    if has_unavailable && has_surge {
                        errs.push(Cause::invalid(
                            child(&rp, "maxSurge"),
                            surge.map(show).unwrap_or_default(),
                            "may not be set when maxUnavailable is non-zero",
                        ));
                    } else if !has_unavailable && !has_surge {
                        errs.push(required_because(child(&rp, "maxUnavailable"), "cannot be 0 when maxSurge is 0"));
                    }
                }
            }
            "" => errs.push(Cause::required(child(p, "type"))),
            other => errs.push(Cause::not_supported(child(p, "type"), other, &["OnDelete", "RollingUpdate"])),
        }
    }
    selector_unchanged(spec, old, errs);
}

pub(super) fn validate_stateful_set(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let spec = field(obj, "spec").unwrap_or(&Value::Null);
    workload_spec(spec, Workload::StatefulSet, errs);
    if let Some(policy) = opt_string(spec, "podManagementPolicy") {
        if policy != "OrderedReady" && policy != "Parallel" {
            errs.push(Cause::not_supported("spec.podManagementPolicy", policy, &["OrderedReady", "Parallel"]));
        }
    }
    if let Some(strategy) = field(spec, "updateStrategy") {
        match string(strategy, "type") {
            "OnDelete" | "RollingUpdate" => {}
            "" => errs.push(Cause::required("spec.updateStrategy.type")),
            other => errs.push(Cause::not_supported("spec.updateStrategy.type", other, &["OnDelete", "RollingUpdate"])),
        }
        if let Some(rolling) = field(strategy, "rollingUpdate") {
            non_negative(rolling, "partition", "spec.updateStrategy.rollingUpdate", errs);
        }
    }
    non_negative(spec, "minReadySeconds", "spec", errs);
    non_negative(spec, "revisionHistoryLimit", "spec", errs);
    selector_unchanged(spec, old, errs);
}

/// `batch/v1` jobs: the pod template (selector and labels are the registry's business).
pub(super) fn validate_job(obj: &Value, errs: &mut Errs) {
    let spec = field(obj, "spec").unwrap_or(&Value::Null);
    job_spec(spec, "spec", errs);
}

fn job_spec(spec: &Value, path: &str, errs: &mut Errs) {
    for name in ["parallelism", "completions", "backoffLimit", "activeDeadlineSeconds", "ttlSecondsAfterFinished"] {
        non_negative(spec, name, path, errs);
    }
    match field(spec, "template") {
        None => errs.push(Cause::required(child(path, "template"))),
        Some(template) => {
            let tp = child(path, "template");
            pod::validate_template(template, &tp, errs);
            let pod_spec = field(template, "spec").unwrap_or(&Value::Null);
            pod::job_restart_policy(pod_spec, &child(&tp, "spec"), errs);
        }
    }
}

/// `batch/v1` cron jobs: a schedule and a job template.
pub(super) fn validate_cron_job(obj: &Value, errs: &mut Errs) {
    let spec = field(obj, "spec").unwrap_or(&Value::Null);
    let schedule = string(spec, "schedule");
    if schedule.is_empty() {
        errs.push(Cause::required("spec.schedule"));
    }
    if let Some(policy) = opt_string(spec, "concurrencyPolicy") {
        if !matches!(policy, "Allow" | "Forbid" | "Replace") {
            errs.push(Cause::not_supported("spec.concurrencyPolicy", policy, &["Allow", "Forbid", "Replace"]));
        }
    }
    for name in ["startingDeadlineSeconds", "successfulJobsHistoryLimit", "failedJobsHistoryLimit"] {
        non_negative(spec, name, "spec", errs);
    }
    let job_template = field(spec, "jobTemplate").and_then(|t| field(t, "spec")).unwrap_or(&Value::Null);
    job_spec(job_template, "spec.jobTemplate.spec", errs);
}

/// What deployments, replica sets, daemon sets and stateful sets share: replicas, a non-empty
/// selector matching the template's labels, and a template whose pods restart always.
fn workload_spec(spec: &Value, kind: Workload, errs: &mut Errs) {
    if kind != Workload::DaemonSet {
        non_negative(spec, "replicas", "spec", errs);
    }
    let selector = field(spec, "selector");
    match selector {
        None => errs.push(Cause::required("spec.selector")),
        Some(selector) => {
            label_selector(selector, "spec.selector", errs);
            let empty = field(selector, "matchLabels").and_then(Value::as_object).is_none_or(|m| m.is_empty())
                && field(selector, "matchExpressions").and_then(Value::as_array).is_none_or(|a| a.is_empty());
            if empty {
                errs.push(invalid_go(
                    "spec.selector",
                    &go_label_selector(Some(selector)),
                    format!("empty selector is invalid for {}", kind.noun()),
                ));
            }
        }
    }
    let Some(template) = field(spec, "template") else {
        errs.push(Cause::required("spec.template"));
        return;
    };
    let template_labels = field(template, "metadata").and_then(|m| field(m, "labels"));
    // `LabelSelectorAsSelector`: a missing selector matches nothing, an empty one everything.
    let matches = |sel: &Selector| match template_labels.and_then(Value::as_object) {
        Some(labels) => sel.matches(labels),
        None => sel.matches_lookup(|_| None),
    };
    match Selector::from_label_selector(selector.unwrap_or(&Value::Null)) {
        Err(_) => errs.push(invalid_go("spec.selector", &go_label_selector(selector), "invalid label selector")),
        Ok(parsed) => {
            if parsed.as_ref().is_none_or(|s| !s.is_empty() && !matches(s)) {
                errs.push(invalid_go(
                    "spec.template.metadata.labels",
                    &go_string_map(template_labels),
                    "`selector` does not match template `labels`",
                ));
            }
        }
    }
    pod::validate_template(template, "spec.template", errs);
    let pod_spec = field(template, "spec").unwrap_or(&Value::Null);
    if let Some(policy) = opt_string(pod_spec, "restartPolicy").filter(|p| *p != "Always") {
        errs.push(Cause::not_supported("spec.template.spec.restartPolicy", policy, &["Always"]));
    }
    if field(pod_spec, "activeDeadlineSeconds").is_some() {
        let what = match kind {
            Workload::Deployment | Workload::ReplicaSet => "ReplicaSet",
            Workload::DaemonSet => "DaemonSet",
            Workload::StatefulSet => "StatefulSet",
        };
        errs.push(Cause::forbidden(
            "spec.template.spec.activeDeadlineSeconds",
            format!("activeDeadlineSeconds in {what} is not Supported"),
        ));
    }
}

/// `spec.selector` may not change (apps/v1).
fn selector_unchanged(spec: &Value, old: Option<&Value>, errs: &mut Errs) {
    let Some(old) = old else { return };
    let old_selector = field(old, "spec").and_then(|s| field(s, "selector"));
    let selector = field(spec, "selector");
    if !same(selector, old_selector) {
        errs.push(invalid_go("spec.selector", &go_label_selector(selector), "field is immutable"));
    }
}

/// `ValidateDeploymentStrategy`.
fn deployment_strategy(strategy: &Value, errs: &mut Errs) {
    let p = "spec.strategy";
    match string(strategy, "type") {
        "Recreate" => {
            if field(strategy, "rollingUpdate").is_some() {
                errs.push(Cause::forbidden(
                    child(p, "rollingUpdate"),
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        "RollingUpdate" => {
            let Some(rolling) = field(strategy, "rollingUpdate") else {
                return;
            };
            let rp = child(p, "rollingUpdate");
            let unavailable = field(rolling, "maxUnavailable");
            let surge = field(rolling, "maxSurge");
            int_or_percent(unavailable, &child(&rp, "maxUnavailable"), errs);
            int_or_percent(surge, &child(&rp, "maxSurge"), errs);
            if int_or_percent_value(unavailable) == 0 && int_or_percent_value(surge) == 0 {
                errs.push(Cause::invalid(
                    child(&rp, "maxUnavailable"),
                    unavailable.map(show).unwrap_or_else(|| "0".into()),
                    "may not be 0 when `maxSurge` is 0",
                ));
            }
            at_most_100_percent(unavailable, &child(&rp, "maxUnavailable"), errs);
        }
        "" => {}
        other => errs.push(Cause::not_supported(p, other, &["Recreate", "RollingUpdate"])),
    }
}

/// `ValidatePositiveIntOrPercent`: a non-negative integer or a percentage (`25%`).
fn int_or_percent(value: Option<&Value>, path: &str, errs: &mut Errs) {
    let Some(value) = value else { return };
    if let Value::String(s) = value {
        if percent(s).is_none() {
            errs.push(Cause::invalid(
                path,
                s,
                podnet_meta::names::regex_error(
                    "a valid percent string must be a numeric string followed by an ending '%'",
                    "[0-9]+%",
                    &["1%", "93%"],
                ),
            ));
        }
        return;
    }
    match value.as_i64() {
        Some(n) if n < 0 => errs.push(Cause::invalid(path, n, "must be greater than or equal to 0")),
        Some(_) => {}
        None => errs.push(Cause::invalid(path, show(value), "must be an integer or percentage (e.g '5%')")),
    }
}

/// The number of a `[0-9]+%` string.
fn percent(s: &str) -> Option<i64> {
    let digits = s.strip_suffix('%')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The number in an int-or-percent (`0` when it is neither).
fn int_or_percent_value(value: Option<&Value>) -> i64 {
    match value {
        Some(Value::String(s)) => percent(s).unwrap_or(0),
        Some(v) => v.as_i64().unwrap_or(0),
        None => 0,
    }
}

/// `IsNotMoreThan100Percent`.
fn at_most_100_percent(value: Option<&Value>, path: &str, errs: &mut Errs) {
    if let Some(Value::String(s)) = value {
        if percent(s).is_some_and(|p| p > 100) {
            errs.push(Cause::invalid(path, s, "must not be greater than 100%"));
        }
    }
}
