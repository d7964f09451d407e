//! podnet's lab: a multi-node Kubernetes cluster network on one Linux machine, every part of it
//! in network namespaces podnet creates (the isolation rule: the host's own namespace
//! gets no route, address, NAT or forwarding change; the host reaches the lab only through
//! loopback port forwards).
//!
//! - [`spec`]: what a lab is, its names and address plan (pure);
//! - [`topology`]: the underlay bridge, the control plane and node namespaces, veth pairs;
//! - [`supervise`]: the background process keeping the API server and the agents alive and
//!   serving the loopback forwards;
//! - [`forward`]: loopback TCP forwards into a namespace;
//! - [`kubeconfig`]: merging the lab's context into the user's kubeconfig, as kind does;
//! - this module: `podnet up`, `down`, `status`, and finding pods for `exec` and `logs`.
#![forbid(unsafe_code)]

pub mod forward;
pub mod kubeconfig;
pub mod spec;
pub mod supervise;
pub mod system;
pub mod topology;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams};

pub use spec::{Backend, LabSpec, PortMap};

/// Errors of the lab, each naming what failed.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("{step}: {source}")]
    Netlink { step: String, source: podnet_netlink::Error },
    #[error(transparent)]
    Topology(#[from] topology::TopologyError),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Spec(#[from] spec::SpecError),
    #[error(transparent)]
    Kubeconfig(#[from] kubeconfig::KubeconfigError),
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Failed(String),
}

impl LabError {
    pub fn step(step: impl Into<String>, source: podnet_netlink::Error) -> LabError {
        LabError::Netlink { step: step.into(), source }
    }
    pub fn io(path: &Path, source: std::io::Error) -> LabError {
        LabError::Io { path: path.to_path_buf(), source }
    }
}

/// The spec of an existing lab, from its state directory.
pub fn read_spec(name: &str) -> Result<LabSpec, LabError> {
    let path = spec::state_dir(name).join("lab.json");
    let text = fs::read(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => LabError::Failed(format!("there is no lab {name:?} (no {})", path.display())),
        _ => LabError::io(&path, e),
    })?;
    serde_json::from_slice(&text).map_err(|e| LabError::Failed(format!("{}: {e}", path.display())))
}

/// The admin kubeconfig of a running lab (server: its loopback forward).
pub fn kubeconfig_path(name: &str) -> PathBuf {
    spec::state_dir(name).join("kubeconfig")
}

/// A client for a running lab.
pub async fn client(name: &str) -> Result<kube::Client, LabError> {
    let path = kubeconfig_path(name);
    let kc = kube::config::Kubeconfig::read_from(&path)
        .map_err(|e| LabError::Failed(format!("lab {name:?}: {}: {e}", path.display())))?;
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .map_err(|e| LabError::Failed(format!("lab {name:?}: {e}")))?;
    Ok(kube::Client::try_from(config)?)
}

fn supervisor_alive(state: &Path) -> Option<u32> {
    let text = fs::read(supervise::status_path(state)).ok()?;
    let status: supervise::SupervisorStatus = serde_json::from_slice(&text).ok()?;
    // An exited supervisor that init has not reaped yet (it is detached) is not running.
    podnet_runtime::process_running(status.pid).then_some(status.pid)
}

/// `podnet up`: builds the lab, starts its supervisor, waits until every node is Ready, and
/// makes the lab the current kubectl context. On failure everything made is removed.
pub async fn up(spec: LabSpec, say: &mut (dyn FnMut(&str) + Send)) -> Result<PathBuf, LabError> {
    spec.validate()?;
    if !nix::unistd::geteuid().is_root() {
        return Err(LabError::Failed("podnet up needs root (it creates network namespaces)".into()));
    }
    let state = spec.state_dir();
    if supervisor_alive(&state).is_some() {
        return Err(LabError::Failed(format!(
            "lab {:?} is already up; `podnet down --name {}` first",
            spec.name, spec.name
        )));
    }
    let leftovers = topology::lab_namespaces(&spec.name);
    if !leftovers.is_empty() || state.exists() {
        say(&format!("removing the leftovers of an earlier lab {:?}", spec.name));
        down(&spec.name, &mut |_| {})?;
    }
    let result = build(&spec, say).await;
    if let Err(e) = &result {
        say(&format!("failed: {e}; removing what was made"));
        let _ = down(&spec.name, &mut |_| {});
    }
    result
}

async fn build(spec: &LabSpec, say: &mut (dyn FnMut(&str) + Send)) -> Result<PathBuf, LabError> {
    let state = spec.state_dir();
    fs::create_dir_all(state.join("logs")).map_err(|e| LabError::io(&state, e))?;
    let spec_path = state.join("lab.json");
    fs::write(&spec_path, serde_json::to_vec_pretty(spec).expect("JSON")).map_err(|e| LabError::io(&spec_path, e))?;
    topology::build(spec, &mut |m| say(m))?;

    say("starting the supervisor (API server and controllers, one agent per node, loopback forwards)");
    let exe = std::env::current_exe().map_err(|e| LabError::io(Path::new("/proc/self/exe"), e))?;
    let log_path = state.join("logs/supervisor.log");
    let log =
        fs::OpenOptions::new().create(true).append(true).open(&log_path).map_err(|e| LabError::io(&log_path, e))?;
    let err = log.try_clone().map_err(|e| LabError::io(&log_path, e))?;
    {
        use std::os::unix::process::CommandExt;
        // Its own process group, so a Ctrl-C in the terminal of `podnet up` does not reach it.
        Command::new(&exe)
            .args(["internal", "lab", "supervise", &spec.name])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(|e| LabError::io(&exe, e))?;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let api_port = loop {
        if let Ok(text) = fs::read(supervise::status_path(&state)) {
            if let Ok(s) = serde_json::from_slice::<supervise::SupervisorStatus>(&text) {
                if let Some(e) = s.error {
                    return Err(LabError::Failed(format!("the supervisor failed: {e} (log: {})", log_path.display())));
                }
                if let Some(p) = s.api_port {
                    break p;
                }
            }
        }
        if Instant::now() > deadline {
            return Err(LabError::Failed(format!(
                "the API server did not come up (log: {})",
                state.join("logs/server.log").display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // The admin kubeconfig, pointed at the loopback forward.
    let admin_path = state.join("server/kubeconfig");
    let admin = fs::read_to_string(&admin_path).map_err(|e| LabError::io(&admin_path, e))?;
    let server_line = admin.lines().find(|l| l.trim_start().starts_with("server:")).unwrap_or_default().to_string();
    let local = admin.replace(&server_line, &format!("    server: https://127.0.0.1:{api_port}"));
    let kc_path = kubeconfig_path(&spec.name);
    fs::write(&kc_path, &local).map_err(|e| LabError::io(&kc_path, e))?;
    let user_kc = kubeconfig::user_kubeconfig_path();
    let context = spec::context_name(&spec.name);
    kubeconfig::edit_file(&user_kc, |cur| kubeconfig::merge(cur, &local, &context))?;
    say(&format!("API server at https://127.0.0.1:{api_port}; context {context} set in {}", user_kc.display()));

    say(&format!("waiting for {} node(s) to be Ready", spec.nodes));
    let client = client(&spec.name).await?;
    let nodes: Api<Node> = Api::all(client.clone());
    let want = spec.node_names();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let list = nodes.list(&ListParams::default()).await?;
        let ready: Vec<String> = list
            .items
            .iter()
            .filter(|n| node_ready(n) && n.spec.as_ref().and_then(|s| s.pod_cidr.as_ref()).is_some())
            .filter_map(|n| n.metadata.name.clone())
            .collect();
        if want.iter().all(|w| ready.contains(w)) {
            break;
        }
        if Instant::now() > deadline {
            let missing: Vec<&String> = want.iter().filter(|w| !ready.contains(w)).collect();
            return Err(LabError::Failed(format!(
                "nodes not Ready after 90 s: {missing:?} (logs: {})",
                state.join("logs").display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    say(&format!(
        "deploying the system pods (kube-system/podnet-proxy in {} mode, kube-system/coredns at {})",
        spec.proxy_mode,
        spec.cluster_dns()
    ));
    system::deploy(&client, spec).await?;
    Ok(kc_path)
}

fn node_ready(n: &Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// `podnet down`: stops the supervisor and every process in the lab's namespaces, removes the
/// namespaces (with their links, routes and nftables tables), the state and the kubeconfig
/// context. Idempotent.
pub fn down(name: &str, say: &mut dyn FnMut(&str)) -> Result<(), LabError> {
    let state = spec::state_dir(name);
    if let Some(pid) = supervisor_alive(&state) {
        say(&format!("stopping the supervisor (pid {pid})"));
        use nix::sys::signal::{kill, Signal};
        let pid = nix::unistd::Pid::from_raw(pid as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        while podnet_runtime::process_running(pid.as_raw() as u32) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = kill(pid, Signal::SIGKILL);
    }
    // The lab is going away as a whole: its pods get no grace period (as `kind delete` removes
    // its node containers), a moment to take SIGTERM and then SIGKILL. (CoreDNS's `lameduck 5s`
    // alone would otherwise make every `down` wait.)
    let n = topology::kill_processes(name, Duration::from_millis(300));
    if n > 0 {
        say(&format!("stopped {n} process(es) in the lab's namespaces"));
    }
    let namespaces = topology::lab_namespaces(name);
    if !namespaces.is_empty() {
        say(&format!("removing {} namespace(s)", namespaces.len()));
    }
    topology::destroy(name)?;
    let mounts = topology::unmount_under(&state);
    if mounts > 0 {
        say(&format!("unmounted {mounts} bpffs of the nodes"));
    }
    if state.exists() {
        fs::remove_dir_all(&state).map_err(|e| LabError::io(&state, e))?;
    }
    let user_kc = kubeconfig::user_kubeconfig_path();
    if user_kc.exists() {
        let context = spec::context_name(name);
        let has = fs::read_to_string(&user_kc).map(|t| t.contains(&context)).unwrap_or(false);
        if has {
            kubeconfig::edit_file(&user_kc, |cur| kubeconfig::remove(cur, &context))?;
            say(&format!("removed context {context} from {}", user_kc.display()));
        }
    }
    Ok(())
}

/// `podnet status`: nodes with their addresses and pod CIDRs, then pods.
pub async fn status(name: &str) -> Result<String, LabError> {
    let spec = read_spec(name)?;
    let state = spec.state_dir();
    let mut out = format!(
        "lab {} ({} nodes, {}, pods {}, services {}): supervisor {}\n",
        spec.name,
        spec.nodes,
        spec.backend,
        spec.pod_cidr,
        spec.service_cidr,
        supervisor_alive(&state).map(|p| format!("running (pid {p})")).unwrap_or_else(|| "NOT running".into())
    );
    let client = client(name).await?;
    let nodes = Api::<Node>::all(client.clone()).list(&ListParams::default()).await?;
    out.push_str(&format!("\n{:<16} {:<9} {:<16} {:<18} {}\n", "NODE", "STATUS", "INTERNAL-IP", "POD-CIDR", "NETNS"));
    for n in &nodes.items {
        let name_ = n.metadata.name.clone().unwrap_or_default();
        let ip = n
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .and_then(|a| a.iter().find(|a| a.type_ == "InternalIP"))
            .map(|a| a.address.clone())
            .unwrap_or_default();
        let cidr = n.spec.as_ref().and_then(|s| s.pod_cidr.clone()).unwrap_or_else(|| "<none>".into());
        let st = if node_ready(n) { "Ready" } else { "NotReady" };
        out.push_str(&format!("{name_:<16} {st:<9} {ip:<16} {cidr:<18} {}\n", spec::node_netns(name, &name_)));
    }
    let pods = Api::<Pod>::all(client).list(&ListParams::default()).await?;
    out.push_str(&format!("\n{:<40} {:<10} {:<16} {}\n", "POD", "PHASE", "IP", "NODE"));
    for p in &pods.items {
        let id = format!(
            "{}/{}",
            p.metadata.namespace.clone().unwrap_or_default(),
            p.metadata.name.clone().unwrap_or_default()
        );
        let st = p.status.as_ref();
        let phase = st.and_then(|s| s.phase.clone()).unwrap_or_default();
        let ip = st.and_then(|s| s.pod_ip.clone()).unwrap_or_default();
        let node = p.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default();
        out.push_str(&format!("{id:<40} {phase:<10} {ip:<16} {node}\n"));
    }
    Ok(out)
}

/// Where a pod runs: its node and UID, and the node's runtime state directory.
pub async fn locate_pod(lab: &str, namespace: &str, pod: &str) -> Result<(String, String, PathBuf), LabError> {
    let client = client(lab).await?;
    let p = Api::<Pod>::namespaced(client, namespace)
        .get_opt(pod)
        .await?
        .ok_or_else(|| LabError::Failed(format!("pod {namespace}/{pod} not found")))?;
    let node = p
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .ok_or_else(|| LabError::Failed(format!("pod {namespace}/{pod} is not scheduled to a node yet")))?;
    let uid = p.metadata.uid.clone().unwrap_or_default();
    let runtime = spec::state_dir(lab).join("nodes").join(&node).join("runtime");
    Ok((node, uid, runtime))
}
