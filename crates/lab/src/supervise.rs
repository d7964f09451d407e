//! The lab's supervisor: the background process `podnet up` leaves behind. It runs in the host's
//! namespace and keeps the lab's processes alive — the API server (with the controllers) in the
//! control plane namespace, one `podnet agent` per node namespace, each restarted if it exits —
//! and serves the loopback port forwards (the API on a free `127.0.0.1` port, each `--port-map`
//! to the first node's NodePort). It reports readiness in `<state>/supervisor.json`; SIGTERM
//! stops the server and the agents (pods keep running until `podnet down` removes them). It also
//! runs the lab's upstream resolver (`podnet dns` in the underlay namespace, at the underlay
//! gateway's address), the nodes' nameserver.

use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use podnet_netlink::Netns;
use serde::{Deserialize, Serialize};

use crate::spec::{self, LabSpec};
use crate::{forward, LabError};

/// What the supervisor tells `podnet up`, in `<state>/supervisor.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SupervisorStatus {
    pub pid: u32,
    /// The host's loopback port forwarded to the API server, once listening.
    pub api_port: Option<u16>,
    /// Why the supervisor gave up.
    pub error: Option<String>,
}

pub fn status_path(state: &Path) -> PathBuf {
    state.join("supervisor.json")
}

fn write_status(state: &Path, status: &SupervisorStatus) {
    let tmp = state.join("supervisor.json.tmp");
    if fs::write(&tmp, serde_json::to_vec(status).expect("JSON")).is_ok() {
        let _ = fs::rename(tmp, status_path(state));
    }
}

/// A process the supervisor keeps running in one namespace.
struct Managed {
    name: String,
    netns: String,
    argv: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
    restarts: u32,
    next_start: Instant,
}

impl Managed {
    fn new(name: &str, netns: String, argv: Vec<String>, log: PathBuf) -> Managed {
        Managed { name: name.into(), netns, argv, log, child: None, restarts: 0, next_start: Instant::now() }
    }

    /// Starts the process inside its namespace (a thread enters it and forks there).
    fn start(&mut self) -> Result<(), LabError> {
        let ns = Netns::open_named(&self.netns).map_err(|e| LabError::step(format!("opening {}", self.netns), e))?;
        let log =
            fs::OpenOptions::new().create(true).append(true).open(&self.log).map_err(|e| LabError::io(&self.log, e))?;
        let err = log.try_clone().map_err(|e| LabError::io(&self.log, e))?;
        let argv = self.argv.clone();
        let child = podnet_netlink::run_in(&ns, move || {
            Command::new(&argv[0]).args(&argv[1..]).stdin(Stdio::null()).stdout(log).stderr(err).spawn()
        })
        .map_err(|e| LabError::step(format!("entering {}", self.netns), e))?
        .map_err(|e| LabError::io(Path::new(&self.argv[0]), e))?;
        tracing::info!(process = %self.name, pid = child.id(), netns = %self.netns, "started");
        self.child = Some(child);
        Ok(())
    }

    /// Restarts the process if it exited (with a back-off of up to 10 s).
    fn keep_alive(&mut self) {
        if let Some(child) = &mut self.child {
            match child.try_wait() {
                Ok(None) => return,
                Ok(Some(status)) => {
                    tracing::warn!(process = %self.name, %status, "exited; restarting");
                    self.child = None;
                    self.restarts += 1;
                    let delay = Duration::from_millis(250u64 << self.restarts.min(5)).min(Duration::from_secs(10));
                    self.next_start = Instant::now() + delay;
                }
                Err(_) => return,
            }
        }
        if Instant::now() >= self.next_start {
            if let Err(e) = self.start() {
                tracing::error!(process = %self.name, error = %e, "cannot start");
                self.next_start = Instant::now() + Duration::from_secs(2);
            }
        }
    }

    /// Asks the process to stop (SIGTERM); [`Managed::wait`] then waits for it.
    fn terminate(&self) {
        use nix::sys::signal::{kill, Signal};
        use nix::unistd::Pid;
        if let Some(child) = &self.child {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        }
    }

    /// Waits until `deadline` for the process to exit, then kills it.
    fn wait(&mut self, deadline: Instant) {
        let Some(mut child) = self.child.take() else { return };
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A kubeconfig for in-lab components: the API's lab address, its CA, the component's token.
fn component_kubeconfig(server_dir: &Path, component: &str) -> Result<String, LabError> {
    use base64::Engine;
    let ca_path = server_dir.join("pki/ca.crt");
    let token_path = server_dir.join("pki/tokens").join(component);
    let ca = fs::read(&ca_path).map_err(|e| LabError::io(&ca_path, e))?;
    let token = fs::read_to_string(&token_path).map_err(|e| LabError::io(&token_path, e))?;
    let server = format!("https://{}:{}", spec::control_plane_ip(), spec::API_PORT);
    Ok(format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: lab\n  cluster:\n    server: {server}\n    certificate-authority-data: {}\nusers:\n- name: {component}\n  user:\n    token: {}\ncontexts:\n- name: lab\n  context:\n    cluster: lab\n    user: {component}\ncurrent-context: lab\n",
        base64::engine::general_purpose::STANDARD.encode(ca),
        token.trim()
    ))
}

/// Waits until the API server accepts TCP connections in the control plane namespace and has
/// written the credentials the lab hands out (its admin kubeconfig comes last).
fn wait_for_api(lab: &str, server_dir: &Path, timeout: Duration) -> Result<(), LabError> {
    let ns = Netns::open_named(&spec::control_plane_netns(lab))
        .map_err(|e| LabError::step("opening the control plane namespace", e))?;
    let target = SocketAddr::new(spec::control_plane_ip().into(), spec::API_PORT);
    let deadline = Instant::now() + timeout;
    loop {
        let written = ["kubeconfig", "pki/ca.crt", "pki/tokens/agent", "pki/tokens/serviceaccount"]
            .iter()
            .all(|f| server_dir.join(f).exists());
        if written && forward::connect_in(&ns, target, Duration::from_millis(500)).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(LabError::Failed(format!("the API server did not listen on {target} within {timeout:?}")));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs the supervisor of lab `name` until SIGTERM.
pub fn run(name: &str) -> Result<(), LabError> {
    let state = spec::state_dir(name);
    let spec = crate::read_spec(name)?;
    let me = std::process::id();
    let mut status = SupervisorStatus { pid: me, api_port: None, error: None };
    write_status(&state, &status);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| LabError::io(&state, e))?;
    let result = supervise(&spec, &state, &mut status, &rt);
    if let Err(e) = &result {
        status.error = Some(e.to_string());
        write_status(&state, &status);
    }
    result
}

fn supervise(
    spec: &LabSpec,
    state: &Path,
    status: &mut SupervisorStatus,
    rt: &tokio::runtime::Runtime,
) -> Result<(), LabError> {
    let exe = std::env::current_exe().map_err(|e| LabError::io(Path::new("/proc/self/exe"), e))?;
    let exe = exe.to_string_lossy().into_owned();
    let logs = state.join("logs");
    fs::create_dir_all(&logs).map_err(|e| LabError::io(&logs, e))?;
    let server_dir = state.join("server");
    let cp = spec::control_plane_ip().to_string();
    let mut server = Managed::new(
        "server",
        spec::control_plane_netns(&spec.name),
        vec![
            exe.clone(),
            "server".into(),
            format!("--listen={cp}:{}", spec::API_PORT),
            format!("--advertise-address={cp}"),
            format!("--data-dir={}", server_dir.display()),
            format!("--service-cidr={}", spec.service_cidr),
            format!("--cluster-cidr={}", spec.pod_cidr),
            format!("--load-balancer-pool={}", spec::load_balancer_pool()),
        ],
        logs.join("server.log"),
    );
    server.start()?;
    wait_for_api(&spec.name, &server_dir, Duration::from_secs(30))?;

    // The lab's upstream resolver on the underlay (what a LAN's DNS server is to real nodes):
    // it knows the lab's own names and answers NXDOMAIN for the rest, so no query leaves the
    // machine. Nodes (and pods with dnsPolicy Default, and the cluster DNS's forward) use it.
    let upstream_conf = state.join("upstream.Corefile");
    let upstream = format!(
        ".:53 {{\n    errors\n    hosts {{\n        {} outside.podnet.lab\n        {} api.podnet.lab\n    }}\n}}\n",
        spec::outside_ip(0),
        spec::control_plane_ip()
    );
    fs::write(&upstream_conf, upstream).map_err(|e| LabError::io(&upstream_conf, e))?;
    let resolv_conf = state.join("resolv.conf");
    fs::write(&resolv_conf, format!("nameserver {}\n", spec::underlay_gateway()))
        .map_err(|e| LabError::io(&resolv_conf, e))?;
    let mut resolver = Managed::new(
        "upstream resolver",
        spec::underlay_netns(&spec.name),
        vec![exe.clone(), "dns".into(), format!("--conf={}", upstream_conf.display())],
        logs.join("resolver.log"),
    );
    resolver.start()?;

    let agent_kc = state.join("agent.kubeconfig");
    let kc = component_kubeconfig(&server_dir, "agent")?;
    fs::write(&agent_kc, kc).map_err(|e| LabError::io(&agent_kc, e))?;
    let mut agents: Vec<Managed> = spec
        .node_names()
        .iter()
        .enumerate()
        .map(|(i, node)| {
            Managed::new(
                &format!("agent {node}"),
                spec::node_netns(&spec.name, node),
                vec![
                    exe.clone(),
                    "agent".into(),
                    format!("--kubeconfig={}", agent_kc.display()),
                    format!("--node-name={node}"),
                    format!("--node-ip={}", spec::node_ip(i + 1)),
                    format!("--backend={}", spec.backend),
                    format!("--cluster-cidr={}", spec.pod_cidr),
                    format!("--cluster-dns={}", spec.cluster_dns()),
                    format!("--state-dir={}", state.join("nodes").join(node).display()),
                    format!("--netns-prefix={}", spec::pod_netns_prefix(&spec.name, node)),
                    format!("--announce-cidr={}", spec::load_balancer_pool()),
                    format!("--resolv-conf={}", resolv_conf.display()),
                    format!("--pod-ca-file={}", server_dir.join("pki/ca.crt").display()),
                    format!("--pod-token-file={}", server_dir.join("pki/tokens/serviceaccount").display()),
                ],
                logs.join(format!("agent-{node}.log")),
            )
        })
        .collect();
    for a in &mut agents {
        a.start()?;
    }

    // Loopback forwards: the API, then each port map to the first node's NodePort (connected
    // from the underlay, as a machine on the nodes' network would).
    let api = TcpListener::bind("127.0.0.1:0").map_err(|e| LabError::io(Path::new("127.0.0.1:0"), e))?;
    let api_port = api.local_addr().map_err(|e| LabError::io(Path::new("127.0.0.1"), e))?.port();
    let cp_ns = Netns::open_named(&spec::control_plane_netns(&spec.name))
        .map_err(|e| LabError::step("opening the control plane namespace", e))?;
    let api_target = SocketAddr::new(spec::control_plane_ip().into(), spec::API_PORT);
    std::thread::spawn(move || forward::serve(api, cp_ns, api_target));
    for m in &spec.port_maps {
        let addr = format!("127.0.0.1:{}", m.host_port);
        let l = TcpListener::bind(&addr).map_err(|e| {
            LabError::Failed(format!("--port-map {}:{}: cannot listen on {addr}: {e}", m.host_port, m.node_port))
        })?;
        let ns = Netns::open_named(&spec::underlay_netns(&spec.name))
            .map_err(|e| LabError::step("opening the underlay namespace", e))?;
        let target = SocketAddr::new(spec::node_ip(1).into(), m.node_port);
        std::thread::spawn(move || forward::serve(l, ns, target));
    }
    status.api_port = Some(api_port);
    write_status(state, status);
    tracing::info!(api_port, "lab is up");

    rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {
                    server.keep_alive();
                    resolver.keep_alive();
                    for a in &mut agents {
                        a.keep_alive();
                    }
                }
            }
        }
    });
    // All at once, with one deadline: the lab is going away, nobody waits for an orderly order.
    tracing::info!("stopping the agents and the API server");
    let deadline = Instant::now() + Duration::from_secs(5);
    for m in agents.iter().chain([&server, &resolver]) {
        m.terminate();
    }
    for m in agents.iter_mut().chain([&mut server, &mut resolver]) {
        m.wait(deadline);
    }
    let _ = fs::remove_file(status_path(state));
    Ok(())
}
