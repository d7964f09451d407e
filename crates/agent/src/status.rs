//! A pod's status from what the agent observes of its sandbox and containers: phase, conditions
//! (PodReadyToStartContainers, Initialized, ContainersReady, Ready, and the scheduler's
//! PodScheduled kept), addresses and container statuses, in kubelet's shapes. Pure.

use k8s_openapi::api::core::v1::{Pod, PodCondition};
use serde_json::{json, Value};

/// When something happened, in RFC 3339 (seconds, `Z`), as the API stores times.
pub type Time = String;

/// A container's last termination.
#[derive(Debug, Clone, PartialEq)]
pub struct Terminated {
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub reason: String,
    pub message: Option<String>,
    pub started_at: Time,
    pub finished_at: Time,
}

/// What the agent sees of one container now.
#[derive(Debug, Clone, PartialEq)]
pub enum Observed {
    /// Not running: ContainerCreating, PodInitializing, CrashLoopBackOff, ErrImagePull,
    /// CreateContainerConfigError…
    Waiting {
        reason: String,
        message: Option<String>,
    },
    Running {
        started_at: Time,
        ready: bool,
        started: bool,
    },
    Terminated(Terminated),
}

/// One container's observed state.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerView {
    pub name: String,
    pub image: String,
    pub state: Observed,
    pub last_termination: Option<Terminated>,
    pub restart_count: u32,
    pub container_id: Option<String>,
}

impl ContainerView {
    fn is_ready(&self) -> bool {
        matches!(self.state, Observed::Running { ready: true, .. })
    }

    fn succeeded(&self) -> bool {
        matches!(&self.state, Observed::Terminated(t) if t.exit_code == 0)
    }
}

/// Everything the status is computed from.
#[derive(Debug, Clone)]
pub struct PodView {
    pub sandbox_ready: bool,
    pub pod_ips: Vec<String>,
    pub host_ip: String,
    pub start_time: Time,
    pub init: Vec<ContainerView>,
    pub containers: Vec<ContainerView>,
}

/// The pod's phase, as kubelet's `getPhase` decides it.
pub fn phase(pod: &Pod, view: &PodView) -> &'static str {
    let policy = pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()).unwrap_or("Always");
    let init_failed_for_good =
        policy == "Never" && view.init.iter().any(|c| matches!(&c.state, Observed::Terminated(t) if t.exit_code != 0));
    if init_failed_for_good {
        return "Failed";
    }
    if !view.init.iter().all(ContainerView::succeeded) {
        return "Pending";
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for c in &view.containers {
        match &c.state {
            Observed::Running { .. } => running += 1,
            Observed::Terminated(t) => {
                stopped += 1;
                if t.exit_code == 0 {
                    succeeded += 1;
                }
            }
            Observed::Waiting { .. } if c.last_termination.is_some() => stopped += 1,
            Observed::Waiting { .. } => waiting += 1,
        }
    }
    if waiting > 0 {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    if stopped > 0 {
        // All have stopped: with Always they are restarted; with OnFailure only failures are.
        return match policy {
            "Always" => "Running",
            "OnFailure" if stopped > succeeded => "Running",
            _ if stopped == succeeded => "Succeeded",
            _ => "Failed",
        };
    }
    "Pending"
}

fn state_json(state: &Observed) -> Value {
    match state {
        Observed::Waiting { reason, message } => {
            let mut w = json!({"reason": reason});
            if let Some(m) = message {
                w["message"] = json!(m);
            }
            json!({"waiting": w})
        }
        Observed::Running { started_at, .. } => json!({"running": {"startedAt": started_at}}),
        Observed::Terminated(t) => json!({"terminated": terminated_json(t)}),
    }
}

fn terminated_json(t: &Terminated) -> Value {
    let mut v =
        json!({"exitCode": t.exit_code, "reason": t.reason, "startedAt": t.started_at, "finishedAt": t.finished_at});
    if let Some(s) = t.signal {
        v["signal"] = json!(s);
    }
    if let Some(m) = &t.message {
        v["message"] = json!(m);
    }
    v
}

fn container_status_json(c: &ContainerView) -> Value {
    let started = matches!(c.state, Observed::Running { started: true, .. });
    let mut v = json!({
        "name": c.name, "image": c.image, "imageID": format!("podnet.dev/lab-images/{}", c.image),
        "ready": c.is_ready(), "restartCount": c.restart_count, "started": started,
        "state": state_json(&c.state),
        "lastState": c.last_termination.as_ref().map(|t| json!({"terminated": terminated_json(t)})).unwrap_or(json!({})),
    });
    if let Some(id) = &c.container_id {
        v["containerID"] = json!(id);
    }
    v
}

/// A condition, keeping the old transition time when its status did not change.
fn condition(old: &[PodCondition], type_: &str, ok: bool, reason: Option<&str>, now: &str) -> Value {
    let status = if ok { "True" } else { "False" };
    let since = old
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| now.to_string());
    let mut c = json!({"type": type_, "status": status, "lastProbeTime": null, "lastTransitionTime": since});
    if let Some(r) = reason.filter(|_| !ok) {
        c["reason"] = json!(r);
    }
    c
}

/// The pod's status (without `conditions` of other writers but PodScheduled, which is kept).
pub fn pod_status(pod: &Pod, view: &PodView, now: &str) -> Value {
    let old_status = pod.status.as_ref();
    let old = old_status.and_then(|s| s.conditions.clone()).unwrap_or_default();
    let phase = phase(pod, view);
    let initialized = view.init.iter().all(ContainerView::succeeded);
    let containers_ready =
        initialized && !view.containers.is_empty() && view.containers.iter().all(ContainerView::is_ready);
    let terminal = phase == "Succeeded" || phase == "Failed";
    let gates_ok = pod
        .spec
        .as_ref()
        .and_then(|s| s.readiness_gates.as_ref())
        .into_iter()
        .flatten()
        .all(|g| old.iter().any(|c| c.type_ == g.condition_type && c.status == "True"));
    let ready = containers_ready && gates_ok && !terminal;
    let not_ready_reason = if terminal { "PodCompleted" } else { "ContainersNotReady" };
    let mut conditions = vec![
        condition(&old, "PodReadyToStartContainers", view.sandbox_ready && !terminal, None, now),
        condition(
            &old,
            "Initialized",
            initialized,
            Some(if terminal { "PodCompleted" } else { "ContainersNotInitialized" }),
            now,
        ),
        condition(&old, "Ready", ready, Some(not_ready_reason), now),
        condition(&old, "ContainersReady", containers_ready && !terminal, Some(not_ready_reason), now),
    ];
    for c in &old {
        let ours = ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady"];
        if !ours.contains(&c.type_.as_str()) {
            conditions.push(serde_json::to_value(c).expect("JSON"));
        }
    }
    let ips: Vec<Value> = view.pod_ips.iter().map(|ip| json!({"ip": ip})).collect();
    let mut status = json!({
        "phase": phase,
        "conditions": conditions,
        "hostIP": view.host_ip, "hostIPs": [{"ip": view.host_ip}],
        "startTime": old_status.and_then(|s| s.start_time.as_ref())
            .map(|t| t.0.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()).unwrap_or_else(|| view.start_time.clone()),
        "containerStatuses": view.containers.iter().map(container_status_json).collect::<Vec<_>>(),
        "qosClass": "BestEffort",
    });
    if !view.init.is_empty() {
        status["initContainerStatuses"] = json!(view.init.iter().map(container_status_json).collect::<Vec<_>>());
    }
    if let Some(ip) = view.pod_ips.first() {
        status["podIP"] = json!(ip);
        status["podIPs"] = json!(ips);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(policy: &str) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"restartPolicy": policy, "containers": [
            {"name": "a", "image": "nginx"}]}, "status": {"conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-11-22T09:00:00Z"},
            {"type": "Ready", "status": "False", "lastTransitionTime": "2026-11-22T09:00:01Z"}]}}))
        .unwrap()
    }

    fn view(states: Vec<Observed>) -> PodView {
        PodView {
            sandbox_ready: true,
            pod_ips: vec!["10.244.1.5".into()],
            host_ip: "172.20.0.11".into(),
            start_time: "2026-11-22T09:00:02Z".into(),
            init: vec![],
            containers: states
                .into_iter()
                .enumerate()
                .map(|(i, state)| ContainerView {
                    name: format!("c{i}"),
                    image: "nginx".into(),
                    state,
                    last_termination: None,
                    restart_count: 0,
                    container_id: None,
                })
                .collect(),
        }
    }

    fn running(ready: bool) -> Observed {
        Observed::Running { started_at: "2026-11-22T09:00:03Z".into(), ready, started: true }
    }

    fn exited(code: i32) -> Observed {
        Observed::Terminated(Terminated {
            exit_code: code,
            signal: None,
            reason: if code == 0 { "Completed".into() } else { "Error".into() },
            message: None,
            started_at: "t".into(),
            finished_at: "t".into(),
        })
    }

    #[test]
    fn phases() {
        let creating = Observed::Waiting { reason: "ContainerCreating".into(), message: None };
        assert_eq!(phase(&pod("Always"), &view(vec![creating])), "Pending");
        assert_eq!(phase(&pod("Always"), &view(vec![running(false)])), "Running");
        assert_eq!(phase(&pod("Always"), &view(vec![exited(0)])), "Running");
        assert_eq!(phase(&pod("Never"), &view(vec![exited(0), exited(0)])), "Succeeded");
        assert_eq!(phase(&pod("Never"), &view(vec![exited(0), exited(1)])), "Failed");
        assert_eq!(phase(&pod("OnFailure"), &view(vec![exited(1)])), "Running");
        assert_eq!(phase(&pod("OnFailure"), &view(vec![exited(0)])), "Succeeded");
        assert_eq!(phase(&pod("Never"), &view(vec![running(true), exited(1)])), "Running");
    }

    #[test]
    fn ready_when_every_container_is_and_keeps_other_conditions() {
        let s = pod_status(&pod("Always"), &view(vec![running(true)]), "2026-11-22T09:00:05Z");
        let cond = |t: &str| s["conditions"].as_array().unwrap().iter().find(|c| c["type"] == t).unwrap().clone();
        assert_eq!(cond("Ready")["status"], "True");
        assert_eq!(cond("Ready")["lastTransitionTime"], "2026-11-22T09:00:05Z");
        assert_eq!(cond("PodScheduled")["status"], "True");
        assert_eq!(s["podIP"], "10.244.1.5");
        assert_eq!(s["containerStatuses"][0]["state"]["running"]["startedAt"], "2026-11-22T09:00:03Z");
        let s = pod_status(&pod("Always"), &view(vec![running(false)]), "2026-11-22T09:00:05Z");
        let cond = |t: &str| s["conditions"].as_array().unwrap().iter().find(|c| c["type"] == t).unwrap().clone();
        assert_eq!(cond("Ready")["lastTransitionTime"], "2026-11-22T09:00:01Z", "unchanged status keeps its time");
        assert_eq!(cond("Ready")["reason"], "ContainersNotReady");
    }
}
