//! The pods bound to this node: one worker task per pod, level-based. Each pass of a worker
//! ([`Worker::sync`]) looks at the pod as the API has it and at what runs, and moves one step
//! towards the spec: the sandbox (a network namespace wired through CNI, then the runtime's
//! holder with the pod's hostname and files), init containers in order, containers with their
//! restart policy and back-off, probes, and the pod's status; or, once the pod is being deleted,
//! the way down (containers stopped within the grace period, CNI DEL, the namespace removed, the
//! pod object released). Workers pass again on every change of their pod and every
//! [`TICK`], so a container's exit or a probe's verdict shows in the status within a tick.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, Preconditions};
use kube::runtime::watcher;
use podnet_netlink::Netns;
use podnet_runtime::{ContainerSpec, ContainerState, PodFile, Runtime, SandboxSpec};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use crate::cni::{self, NetworkConfig};
use crate::env::{self, Sources};
use crate::podfiles::{self, DnsSettings};
use crate::probe::{self, Kind, ProbeState, Timing};
use crate::status::{self, ContainerView, Observed, PodView, Terminated};

/// How often a worker passes without a change to its pod.
pub const TICK: Duration = Duration::from_millis(500);
/// Kubelet's crash back-off: the first restart at once, then 10 s doubled up to 5 minutes, reset
/// after 10 minutes of running.
const BACKOFF_INITIAL: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(300);
const BACKOFF_RESET: Duration = Duration::from_secs(600);

/// What every worker shares.
pub struct Shared {
    pub client: kube::Client,
    pub runtime: Arc<Runtime>,
    pub node_name: String,
    pub node_ip: IpAddr,
    pub podnet_exe: PathBuf,
    pub state_dir: PathBuf,
    pub netns_prefix: String,
    pub dns: DnsSettings,
    /// The cluster's CA and the token pods get in their service-account directory.
    pub ca_pem: Option<Vec<u8>>,
    pub pod_token: Option<Vec<u8>>,
    /// The node's pod network, once the node has a pod CIDR.
    pub network: watch::Receiver<Option<NetworkConfig>>,
}

/// What the agent remembers of a pod's network across its own restarts.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct NetworkRecord {
    netns: Option<PathBuf>,
    ips: Vec<IpAddr>,
}

impl Shared {
    fn record_path(&self, uid: &str) -> PathBuf {
        self.state_dir.join("pods").join(format!("{uid}.json"))
    }

    fn read_record(&self, uid: &str) -> Option<NetworkRecord> {
        serde_json::from_slice(&std::fs::read(self.record_path(uid)).ok()?).ok()
    }

    fn write_record(&self, uid: &str, rec: &NetworkRecord) -> std::io::Result<()> {
        let path = self.record_path(uid);
        std::fs::create_dir_all(path.parent().expect("a parent"))?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(rec).expect("JSON"))?;
        std::fs::rename(tmp, path)
    }

    fn netns_name(&self, uid: &str) -> String {
        format!("{}{uid}", self.netns_prefix)
    }
}

/// A container's probes and back-off, for its current run.
#[derive(Default)]
struct ContainerTrack {
    /// The run the probes belong to (restart count).
    run: Option<u32>,
    startup: Option<ProbeState>,
    liveness: Option<ProbeState>,
    readiness: Option<ProbeState>,
    backoff: Duration,
    restart_at: Option<Instant>,
    /// Why it is not running (ContainerCreating, CrashLoopBackOff, ErrImagePull…).
    waiting: Option<(String, Option<String>)>,
}

struct Worker {
    shared: Arc<Shared>,
    uid: String,
    pod: Pod,
    /// The pod is gone from the API (deleted with grace 0, or by someone else).
    gone: bool,
    /// The pod's addresses, once its network is up.
    network: Option<NetworkRecord>,
    sandbox_ready: bool,
    tracks: HashMap<String, ContainerTrack>,
    start_time: String,
    last_status: Option<Value>,
    /// Terminal (Succeeded or Failed): nothing runs any more.
    finished: bool,
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn pod_key(pod: &Pod) -> String {
    format!("{}/{}", pod.metadata.namespace.as_deref().unwrap_or("default"), pod.metadata.name.as_deref().unwrap_or(""))
}

/// A blocking runtime call on the blocking pool.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("a blocking task panicked")
}

impl Worker {
    fn spec_containers(&self) -> (Vec<Container>, Vec<Container>) {
        let spec = self.pod.spec.as_ref();
        (
            spec.and_then(|s| s.init_containers.clone()).unwrap_or_default(),
            spec.map(|s| s.containers.clone()).unwrap_or_default(),
        )
    }

    fn grace(&self) -> Duration {
        let secs = self
            .pod
            .metadata
            .deletion_grace_period_seconds
            .or_else(|| self.pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds))
            .unwrap_or(30);
        Duration::from_secs(secs.max(0) as u64)
    }

    fn host_network(&self) -> bool {
        self.pod.spec.as_ref().and_then(|s| s.host_network).unwrap_or(false)
    }

    fn restart_policy(&self) -> String {
        self.pod.spec.as_ref().and_then(|s| s.restart_policy.clone()).unwrap_or_else(|| "Always".into())
    }

    /// One pass. Returns false when the worker is done (the pod is gone and cleaned up).
    async fn sync(&mut self) -> bool {
        if self.gone || self.pod.metadata.deletion_timestamp.is_some() {
            self.teardown().await;
            if !self.gone {
                self.release().await;
            }
            return false;
        }
        if self.finished {
            return true;
        }
        if let Err(e) = self.ensure_sandbox().await {
            tracing::warn!(pod = %pod_key(&self.pod), error = %e, "sandbox");
            self.set_waiting_all("ContainerCreating", Some(e));
            self.write_status().await;
            return true;
        }
        self.run_containers().await;
        self.run_probes().await;
        let phase = self.write_status().await;
        if phase == "Succeeded" || phase == "Failed" {
            // A finished pod gives its address back; its containers' state and logs stay until
            // the pod is deleted (`kubectl logs` of a completed pod works), as with kubelet.
            self.finished = true;
            self.release_network().await;
        }
        true
    }

    fn set_waiting_all(&mut self, reason: &str, message: Option<String>) {
        let (init, main) = self.spec_containers();
        for c in init.iter().chain(&main) {
            self.tracks.entry(c.name.clone()).or_default().waiting = Some((reason.to_string(), message.clone()));
        }
    }

    /// The network namespace wired through CNI, then the runtime's sandbox.
    async fn ensure_sandbox(&mut self) -> Result<(), String> {
        let shared = self.shared.clone();
        if self.network.is_none() {
            self.network = shared.read_record(&self.uid);
        }
        if self.network.is_none() {
            let rec = if self.host_network() {
                NetworkRecord { netns: None, ips: vec![shared.node_ip] }
            } else {
                let Some(net) = shared.network.borrow().clone() else {
                    return Err("the node has no pod CIDR yet".into());
                };
                let name = shared.netns_name(&self.uid);
                let uid = self.uid.clone();
                let result = blocking(move || -> Result<NetworkRecord, String> {
                    let ns = match Netns::open_named(&name) {
                        Ok(ns) => ns,
                        Err(_) => {
                            Netns::create(&name).map_err(|e| format!("creating network namespace {name}: {e}"))?
                        }
                    };
                    let path = ns.path().to_path_buf();
                    // `lo` is set up here, as CRI-O does, rather than by an exec of the loopback
                    // plugin (containerd's cni-loopback): one process less per pod.
                    let wired = cni::loopback_up(&ns).and_then(|_| {
                        cni::run_plugin(&shared.podnet_exe, "ADD", &uid, &path, cni::IFNAME, &cni::network_config(&net))
                    });
                    match wired {
                        Ok(result) => Ok(NetworkRecord { netns: Some(path), ips: cni::result_ips(&result) }),
                        Err(e) => {
                            let _ = Netns::delete(&name);
                            Err(format!("FailedCreatePodSandBox: {e}"))
                        }
                    }
                })
                .await?;
                if result.ips.is_empty() {
                    return Err("CNI ADD returned no address".into());
                }
                result
            };
            self.shared.write_record(&self.uid, &rec).map_err(|e| format!("recording the pod's network: {e}"))?;
            self.network = Some(rec);
        }
        if self.sandbox_ready {
            return Ok(());
        }
        let rt = self.shared.runtime.clone();
        let uid = self.uid.clone();
        let existing = blocking(move || rt.sandbox_status(&uid)).await.map_err(|e| e.to_string())?;
        if existing.as_ref().is_some_and(|s| s.is_ready()) {
            self.sandbox_ready = true;
            return Ok(());
        }
        let spec = self.sandbox_spec();
        let rt = self.shared.runtime.clone();
        let had = existing.is_some();
        let uid = self.uid.clone();
        blocking(move || {
            if had {
                // A sandbox whose holder died (the machine's processes were killed): start over.
                let _ = rt.remove_sandbox(&uid, Duration::ZERO);
            }
            rt.create_sandbox(&spec)
        })
        .await
        .map_err(|e| format!("creating the sandbox: {e}"))?;
        self.sandbox_ready = true;
        Ok(())
    }

    fn sandbox_spec(&self) -> SandboxSpec {
        let shared = &self.shared;
        let net = self.network.as_ref().expect("network first");
        let ips: Vec<String> = net.ips.iter().map(|i| i.to_string()).collect();
        let (hostname, _) = podfiles::hostname(&self.pod, &shared.dns.cluster_domain);
        let mut files = vec![PodFile {
            path: "/etc/resolv.conf".into(),
            contents: podfiles::resolv_conf(&self.pod, &shared.dns).into_bytes(),
            mode: 0o644,
        }];
        if !self.host_network() {
            files.push(PodFile {
                path: "/etc/hosts".into(),
                contents: podfiles::etc_hosts(&self.pod, &ips, &shared.dns.cluster_domain).into_bytes(),
                mode: 0o644,
            });
            files.push(PodFile {
                path: "/etc/hostname".into(),
                contents: format!("{hostname}\n").into_bytes(),
                mode: 0o644,
            });
        }
        files.extend(self.service_account_files());
        SandboxSpec {
            id: self.uid.clone(),
            namespace: self.pod.metadata.namespace.clone().unwrap_or_default(),
            name: self.pod.metadata.name.clone().unwrap_or_default(),
            // On the host network a pod has the node's name, as with kubelet.
            hostname: if self.host_network() { shared.node_name.clone() } else { hostname },
            netns: net.netns.clone(),
            files,
        }
    }

    /// The service account directory: the cluster's CA, the namespace and a token.
    fn service_account_files(&self) -> Vec<PodFile> {
        let automount = self.pod.spec.as_ref().and_then(|s| s.automount_service_account_token).unwrap_or(true);
        if !automount {
            return Vec::new();
        }
        let dir = Path::new("/var/run/secrets/kubernetes.io/serviceaccount");
        let mut files = vec![PodFile {
            path: dir.join("namespace"),
            contents: self.pod.metadata.namespace.clone().unwrap_or_default().into_bytes(),
            mode: 0o644,
        }];
        if let Some(ca) = &self.shared.ca_pem {
            files.push(PodFile { path: dir.join("ca.crt"), contents: ca.clone(), mode: 0o644 });
        }
        if let Some(token) = &self.shared.pod_token {
            files.push(PodFile { path: dir.join("token"), contents: token.clone(), mode: 0o600 });
        }
        files
    }

    /// Starts or restarts containers as the spec and the restart policy say.
    async fn run_containers(&mut self) {
        let (init, main) = self.spec_containers();
        let policy = self.restart_policy();
        // Init containers, one at a time, each to a successful end.
        for c in &init {
            let st = self.status_of(&c.name).await;
            match st.as_ref().map(|s| &s.state) {
                Some(ContainerState::Exited { exit_code: 0, .. }) => continue,
                Some(ContainerState::Running { .. }) => return,
                Some(ContainerState::Exited { .. }) if policy == "Never" => return,
                Some(ContainerState::Exited { .. }) => {
                    self.restart_after_backoff(c).await;
                    return;
                }
                None => {
                    self.start(c).await;
                    return;
                }
            }
        }
        for c in &main {
            let st = self.status_of(&c.name).await;
            match st.as_ref().map(|s| &s.state) {
                None => self.start(c).await,
                Some(ContainerState::Running { .. }) => {}
                Some(ContainerState::Exited { exit_code, .. }) => {
                    let again = policy == "Always" || (policy == "OnFailure" && *exit_code != 0);
                    if again {
                        self.restart_after_backoff(c).await;
                    }
                }
            }
        }
    }

    async fn status_of(&self, name: &str) -> Option<podnet_runtime::ContainerStatus> {
        let rt = self.shared.runtime.clone();
        let (uid, name) = (self.uid.clone(), name.to_string());
        blocking(move || rt.container_status(&uid, &name)).await.ok().flatten()
    }

    /// Restarts an exited container once its back-off has passed (CrashLoopBackOff meanwhile).
    async fn restart_after_backoff(&mut self, c: &Container) {
        let now = Instant::now();
        let track = self.tracks.entry(c.name.clone()).or_default();
        match track.restart_at {
            // The first restart is immediate, as kubelet's; the back-off applies from the second.
            None if track.backoff.is_zero() => {
                track.backoff = BACKOFF_INITIAL / 2;
                self.start(c).await;
            }
            None => {
                track.backoff = (track.backoff * 2).min(BACKOFF_MAX);
                track.restart_at = Some(now + track.backoff);
                let msg = format!(
                    "back-off {:?} restarting failed container={} pod={}",
                    track.backoff,
                    c.name,
                    pod_key(&self.pod)
                );
                track.waiting = Some(("CrashLoopBackOff".into(), Some(msg)));
            }
            Some(at) if now >= at => {
                track.restart_at = None;
                self.start(c).await;
            }
            Some(_) => {}
        }
    }

    /// Starts one container (a new run if it ran before).
    async fn start(&mut self, c: &Container) {
        let launch = match self.container_spec(c).await {
            Ok(spec) => spec,
            Err((reason, message)) => {
                self.tracks.entry(c.name.clone()).or_default().waiting = Some((reason, Some(message)));
                return;
            }
        };
        let rt = self.shared.runtime.clone();
        let uid = self.uid.clone();
        let result = blocking(move || rt.start_container(&uid, &launch)).await;
        let track = self.tracks.entry(c.name.clone()).or_default();
        match result {
            Ok(_) => track.waiting = None,
            Err(e) => track.waiting = Some(("RunContainerError".into(), Some(e.to_string()))),
        }
    }

    /// The runtime's spec for a container: image resolved through the lab image table,
    /// environment built, `$(VAR)` expanded.
    async fn container_spec(&self, c: &Container) -> Result<ContainerSpec, (String, String)> {
        let sources = self.sources().await.map_err(|e| ("CreateContainerConfigError".to_string(), e))?;
        let env =
            env::container_env(&self.pod, c, &sources).map_err(|e| ("CreateContainerConfigError".to_string(), e.0))?;
        let command: Vec<String> = c.command.iter().flatten().map(|a| env::expand(a, &env)).collect();
        let args: Vec<String> = c.args.iter().flatten().map(|a| env::expand(a, &env)).collect();
        let image = c.image.clone().unwrap_or_default();
        let launch = podnet_images::launch(&image, &self.shared.podnet_exe, &command, &args)
            .map_err(|e| ("ErrImagePull".to_string(), e.to_string()))?;
        let (hostname, _) = podfiles::hostname(&self.pod, &self.shared.dns.cluster_domain);
        let mut full = vec![
            ("PATH".to_string(), "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string()),
            ("HOSTNAME".to_string(), hostname),
        ];
        full.extend(launch.env);
        full.extend(env);
        Ok(ContainerSpec {
            name: c.name.clone(),
            argv: launch.argv,
            env: full,
            working_dir: c.working_dir.as_ref().filter(|w| !w.is_empty()).map(PathBuf::from),
        })
    }

    /// The ConfigMaps, Secrets and Services a container's environment reads.
    async fn sources(&self) -> Result<Sources, String> {
        let ns = self.pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
        let client = &self.shared.client;
        let (cms, secrets) = env::referenced(&self.pod);
        let mut src = Sources {
            host_ip: self.shared.node_ip.to_string(),
            pod_ips: self.network.iter().flat_map(|n| n.ips.iter().map(|i| i.to_string())).collect(),
            ..Default::default()
        };
        let cm_api: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
        for name in cms {
            if let Some(cm) = cm_api.get_opt(&name).await.map_err(|e| e.to_string())? {
                src.config_maps.insert(name, cm.data.unwrap_or_default());
            }
        }
        let secret_api: Api<Secret> = Api::namespaced(client.clone(), &ns);
        for name in secrets {
            if let Some(s) = secret_api.get_opt(&name).await.map_err(|e| e.to_string())? {
                let data: BTreeMap<String, String> = s
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                    .chain(s.string_data.unwrap_or_default())
                    .collect();
                src.secrets.insert(name, data);
            }
        }
        let mut services = Api::<Service>::namespaced(client.clone(), &ns)
            .list(&ListParams::default())
            .await
            .map_err(|e| e.to_string())?
            .items;
        if ns != "default" {
            if let Some(k) = Api::<Service>::namespaced(client.clone(), "default")
                .get_opt("kubernetes")
                .await
                .map_err(|e| e.to_string())?
            {
                services.push(k);
            }
        }
        src.services = services;
        Ok(src)
    }

    /// Runs the probes that are due and acts on their verdicts (a failed liveness or startup
    /// probe restarts the container).
    async fn run_probes(&mut self) {
        let (_, main) = self.spec_containers();
        let pod_ip = self.network.as_ref().and_then(|n| n.ips.first().copied()).unwrap_or(self.shared.node_ip);
        for c in &main {
            let Some(st) = self.status_of(&c.name).await else { continue };
            let ContainerState::Running { started_at, .. } = st.state else { continue };
            let started = Instant::now() - SystemTime::now().duration_since(started_at).unwrap_or_default();
            let track = self.tracks.entry(c.name.clone()).or_default();
            if track.run != Some(st.restart_count) {
                // A new run: fresh probes, and a long enough run resets the back-off.
                track.run = Some(st.restart_count);
                track.startup =
                    c.startup_probe.as_ref().map(|p| ProbeState::new(Kind::Startup, Timing::of(p), started));
                track.liveness =
                    c.liveness_probe.as_ref().map(|p| ProbeState::new(Kind::Liveness, Timing::of(p), started));
                track.readiness =
                    c.readiness_probe.as_ref().map(|p| ProbeState::new(Kind::Readiness, Timing::of(p), started));
            }
            if started.elapsed() > BACKOFF_RESET {
                track.backoff = Duration::ZERO;
            }
            let startup_done = track.startup.as_ref().is_none_or(|s| s.passing);
            let mut kill_reason = None;
            let now = Instant::now();
            let due = |s: &Option<ProbeState>| s.as_ref().is_some_and(|s| s.due(now));
            let plan: Vec<(Kind, k8s_openapi::api::core::v1::Probe)> = [
                (Kind::Startup, c.startup_probe.clone(), !startup_done && due(&track.startup)),
                (Kind::Liveness, c.liveness_probe.clone(), startup_done && due(&track.liveness)),
                (Kind::Readiness, c.readiness_probe.clone(), startup_done && due(&track.readiness)),
            ]
            .into_iter()
            .filter_map(|(k, p, run)| if run { p.map(|p| (k, p)) } else { None })
            .collect();
            for (kind, p) in plan {
                let ok = self.probe_once(&p, c, pod_ip).await;
                let track = self.tracks.get_mut(&c.name).expect("tracked");
                let slot = match kind {
                    Kind::Startup => &mut track.startup,
                    Kind::Liveness => &mut track.liveness,
                    Kind::Readiness => &mut track.readiness,
                };
                let s = slot.as_mut().expect("planned");
                s.record(ok.is_ok(), Instant::now());
                if kind != Kind::Readiness && s.failed() {
                    let what = if kind == Kind::Startup { "Startup" } else { "Liveness" };
                    kill_reason = Some(format!("{what} probe failed: {}", ok.err().unwrap_or_default()));
                }
            }
            if let Some(reason) = kill_reason {
                tracing::info!(pod = %pod_key(&self.pod), container = %c.name, %reason, "restarting");
                let rt = self.shared.runtime.clone();
                let (uid, name, grace) = (self.uid.clone(), c.name.clone(), self.grace());
                let _ = blocking(move || rt.stop_container(&uid, &name, grace)).await;
            }
        }
    }

    async fn probe_once(
        &self,
        p: &k8s_openapi::api::core::v1::Probe,
        c: &Container,
        pod_ip: IpAddr,
    ) -> Result<(), String> {
        if let Some(r) = probe::run_network(p, c, pod_ip).await {
            return r;
        }
        let argv = p.exec.as_ref().and_then(|e| e.command.clone()).unwrap_or_default();
        if argv.is_empty() {
            return Err("exec probe without a command".into());
        }
        let rt = self.shared.runtime.clone();
        let uid = self.uid.clone();
        let cmd = blocking(move || rt.enter_command(&uid, &argv)).await.map_err(|e| e.to_string())?;
        let mut cmd = tokio::process::Command::from(cmd);
        cmd.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
        cmd.kill_on_drop(true);
        let timeout = Timing::of(p).timeout;
        match tokio::time::timeout(timeout, cmd.status()).await {
            Ok(Ok(s)) if s.success() => Ok(()),
            Ok(Ok(s)) => Err(format!("command exited with {s}")),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("command timed out after {timeout:?}")),
        }
    }

    /// What the status says of one container.
    async fn view_of(&self, c: &Container) -> ContainerView {
        let st = self.status_of(&c.name).await;
        let track = self.tracks.get(&c.name);
        let terminated = |s: &ContainerState| match s {
            ContainerState::Exited { exit_code, signal, started_at, finished_at, reason, message } => {
                Some(Terminated {
                    exit_code: *exit_code,
                    signal: *signal,
                    reason: reason.clone(),
                    message: Some(message.clone()).filter(|m| !m.is_empty()),
                    started_at: rfc3339(*started_at),
                    finished_at: rfc3339(*finished_at),
                })
            }
            ContainerState::Running { .. } => None,
        };
        let waiting = track.and_then(|t| t.waiting.clone());
        let (state, last, restarts) = match &st {
            None => {
                let (reason, message) = waiting.unwrap_or_else(|| ("ContainerCreating".into(), None));
                (Observed::Waiting { reason, message }, None, 0)
            }
            Some(s) => {
                let last = s.last_state.as_ref().and_then(terminated);
                match &s.state {
                    ContainerState::Running { started_at, .. } => {
                        let started = track.and_then(|t| t.startup.as_ref()).is_none_or(|p| p.passing);
                        let ready = started
                            && track.and_then(|t| t.readiness.as_ref()).is_none_or(|p| p.passing)
                            && track.is_some_and(|t| t.run == Some(s.restart_count));
                        (Observed::Running { started_at: rfc3339(*started_at), ready, started }, last, s.restart_count)
                    }
                    exited => match waiting {
                        // Waiting to be restarted: the last run becomes lastState.
                        Some((reason, message)) => {
                            (Observed::Waiting { reason, message }, terminated(exited), s.restart_count)
                        }
                        None => (Observed::Terminated(terminated(exited).expect("exited")), last, s.restart_count),
                    },
                }
            }
        };
        ContainerView {
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            state,
            last_termination: last,
            restart_count: restarts,
            container_id: st.map(|_| format!("podnet://{}/{}", self.uid, c.name)),
        }
    }

    /// Computes the status and writes it if it changed; returns the phase.
    async fn write_status(&mut self) -> String {
        let (init, main) = self.spec_containers();
        let mut view = PodView {
            sandbox_ready: self.sandbox_ready,
            pod_ips: self.network.iter().flat_map(|n| n.ips.iter().map(|i| i.to_string())).collect(),
            host_ip: self.shared.node_ip.to_string(),
            start_time: self.start_time.clone(),
            init: Vec::new(),
            containers: Vec::new(),
        };
        for c in &init {
            view.init.push(self.view_of(c).await);
        }
        for c in &main {
            view.containers.push(self.view_of(c).await);
        }
        let status = status::pod_status(&self.pod, &view, &now_rfc3339());
        let phase = status["phase"].as_str().unwrap_or("Pending").to_string();
        if self.last_status.as_ref() != Some(&status) {
            let api: Api<Pod> = Api::namespaced(
                self.shared.client.clone(),
                self.pod.metadata.namespace.as_deref().unwrap_or("default"),
            );
            let name = self.pod.metadata.name.clone().unwrap_or_default();
            let patch = serde_json::json!({"status": status});
            match api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(p) => {
                    self.pod.status = p.status;
                    self.last_status = Some(status);
                }
                Err(kube::Error::Api(e)) if e.code == 404 => self.gone = true,
                Err(e) => tracing::warn!(pod = %pod_key(&self.pod), error = %e, "cannot write the pod's status"),
            }
        }
        phase
    }

    /// Stops the containers within the grace period, removes the sandbox, releases the network.
    async fn teardown(&mut self) {
        let started = Instant::now();
        if self.sandbox_ready && !self.finished {
            self.run_pre_stop_hooks().await;
        }
        let shared = self.shared.clone();
        let (uid, grace) = (self.uid.clone(), self.grace().saturating_sub(started.elapsed()));
        let network = self.network.clone().or_else(|| shared.read_record(&uid));
        blocking(move || {
            if let Err(e) = shared.runtime.remove_sandbox(&uid, grace) {
                tracing::warn!(%uid, error = %e, "removing the sandbox");
            }
            teardown_network(&shared, &uid, network.as_ref());
        })
        .await;
        self.sandbox_ready = false;
        self.network = None;
    }

    /// The preStop hooks of the running containers (exec, httpGet, sleep), all at once and
    /// within the grace period, before the containers get SIGTERM — as kubelet runs them.
    async fn run_pre_stop_hooks(&mut self) {
        let (_, main) = self.spec_containers();
        let pod_ip = self.network.as_ref().and_then(|n| n.ips.first().copied()).unwrap_or(self.shared.node_ip);
        let mut hooks = Vec::new();
        for c in &main {
            let Some(hook) = c.lifecycle.as_ref().and_then(|l| l.pre_stop.clone()) else { continue };
            let running = self.status_of(&c.name).await.is_some_and(|s| s.state.is_running());
            if !running {
                continue;
            }
            let (rt, uid, c) = (self.shared.runtime.clone(), self.uid.clone(), c.clone());
            hooks.push(async move {
                if let Some(sleep) = &hook.sleep {
                    tokio::time::sleep(Duration::from_secs(sleep.seconds.max(0) as u64)).await;
                } else if let Some(exec) = &hook.exec {
                    let argv = exec.command.clone().unwrap_or_default();
                    if argv.is_empty() {
                        return;
                    }
                    if let Ok(cmd) = blocking(move || rt.enter_command(&uid, &argv)).await {
                        let mut cmd = tokio::process::Command::from(cmd);
                        cmd.stdin(std::process::Stdio::null())
                            .stdout(std::process::Stdio::null())
                            .stderr(std::process::Stdio::null());
                        cmd.kill_on_drop(true);
                        let _ = cmd.status().await;
                    }
                } else if let Some(http) = &hook.http_get {
                    let probe = k8s_openapi::api::core::v1::Probe {
                        http_get: Some(http.clone()),
                        timeout_seconds: Some(30),
                        ..Default::default()
                    };
                    let _ = probe::run_network(&probe, &c, pod_ip).await;
                }
            });
        }
        if !hooks.is_empty() {
            let _ = tokio::time::timeout(self.grace(), futures::future::join_all(hooks)).await;
        }
    }

    /// CNI DEL and the namespace's removal, keeping the sandbox's state.
    async fn release_network(&mut self) {
        let shared = self.shared.clone();
        let uid = self.uid.clone();
        let network = self.network.clone().or_else(|| shared.read_record(&uid));
        blocking(move || teardown_network(&shared, &uid, network.as_ref())).await;
    }

    /// Deletes the pod object for good once it is torn down (kubelet's final delete).
    async fn release(&mut self) {
        let api: Api<Pod> =
            Api::namespaced(self.shared.client.clone(), self.pod.metadata.namespace.as_deref().unwrap_or("default"));
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions { uid: Some(self.uid.clone()), resource_version: None }),
            ..Default::default()
        };
        let name = self.pod.metadata.name.clone().unwrap_or_default();
        match api.delete(&name, &dp).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(e) => tracing::warn!(pod = %pod_key(&self.pod), error = %e, "cannot release the pod"),
        }
    }
}

/// CNI DEL and the namespace's removal (best effort, idempotent), then the record.
fn teardown_network(shared: &Shared, uid: &str, rec: Option<&NetworkRecord>) {
    let name = shared.netns_name(uid);
    let netns_path = rec.and_then(|r| r.netns.clone());
    let host_network = rec.is_some_and(|r| r.netns.is_none());
    if !host_network {
        if let Some(net) = shared.network.borrow().clone() {
            let path = netns_path.clone().unwrap_or_else(|| Path::new("/run/netns").join(&name));
            if let Err(e) =
                cni::run_plugin(&shared.podnet_exe, "DEL", uid, &path, cni::IFNAME, &cni::network_config(&net))
            {
                tracing::warn!(%uid, error = %e, "CNI DEL");
            }
        }
        if let Err(e) = Netns::delete(&name) {
            if !e.is_not_found() {
                tracing::warn!(%uid, error = %e, "deleting the pod's namespace");
            }
        }
    }
    let _ = std::fs::remove_file(shared.record_path(uid));
}

async fn run_worker(shared: Arc<Shared>, pod: Pod, mut rx: mpsc::UnboundedReceiver<Option<Pod>>) {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let start_time = pod
        .status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .map(|t| t.0.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(now_rfc3339);
    let mut w = Worker {
        shared,
        uid,
        pod,
        gone: false,
        network: None,
        sandbox_ready: false,
        tracks: HashMap::new(),
        start_time,
        last_status: None,
        finished: false,
    };
    loop {
        if !w.sync().await {
            return;
        }
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(Some(p)) => w.pod = p,
                Some(None) | None => w.gone = true,
            },
            _ = tokio::time::sleep(TICK) => {}
        }
        // Take the newest of several queued updates.
        while let Ok(msg) = rx.try_recv() {
            match msg {
                Some(p) => w.pod = p,
                None => w.gone = true,
            }
        }
    }
}

/// Watches the pods bound to this node and keeps one worker per pod; after the first full
/// list, removes sandboxes and namespaces of pods that no longer exist (left by a crash).
pub async fn run(shared: Arc<Shared>) -> anyhow::Result<()> {
    let api: Api<Pod> = Api::all(shared.client.clone());
    let cfg = watcher::Config::default().fields(&format!("spec.nodeName={}", shared.node_name));
    let mut stream = watcher(api, cfg).boxed();
    let mut workers: HashMap<String, mpsc::UnboundedSender<Option<Pod>>> = HashMap::new();
    let mut listed: Vec<String> = Vec::new();
    let mut cleaned = false;
    while let Some(event) = stream.next().await {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "pod watch");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let seen = |pod: Pod, workers: &mut HashMap<String, mpsc::UnboundedSender<Option<Pod>>>| {
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            workers.retain(|_, tx| !tx.is_closed());
            match workers.get(&uid) {
                Some(tx) => {
                    let _ = tx.send(Some(pod));
                }
                None => {
                    let (tx, rx) = mpsc::unbounded_channel();
                    tokio::spawn(run_worker(shared.clone(), pod, rx));
                    workers.insert(uid, tx);
                }
            }
        };
        match event {
            watcher::Event::Init => listed.clear(),
            watcher::Event::InitApply(pod) => {
                listed.push(pod.metadata.uid.clone().unwrap_or_default());
                seen(pod, &mut workers);
            }
            watcher::Event::Apply(pod) => seen(pod, &mut workers),
            watcher::Event::Delete(pod) => {
                if let Some(tx) = workers.remove(pod.metadata.uid.as_deref().unwrap_or_default()) {
                    let _ = tx.send(None);
                }
            }
            watcher::Event::InitDone => {
                if !cleaned {
                    cleaned = true;
                    let shared = shared.clone();
                    let keep = listed.clone();
                    tokio::task::spawn_blocking(move || remove_orphans(&shared, &keep));
                }
            }
        }
    }
    Ok(())
}

/// Removes what belongs to pods that are not bound here any more: sandboxes, namespaces, records.
fn remove_orphans(shared: &Shared, keep: &[String]) {
    let mut uids: Vec<String> = shared.runtime.list_sandboxes().unwrap_or_default().into_iter().map(|s| s.id).collect();
    uids.extend(
        Netns::list()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|n| n.strip_prefix(&shared.netns_prefix).map(str::to_string)),
    );
    if let Ok(rd) = std::fs::read_dir(shared.state_dir.join("pods")) {
        uids.extend(rd.flatten().filter_map(|e| e.file_name().to_str()?.strip_suffix(".json").map(str::to_string)));
    }
    uids.sort();
    uids.dedup();
    for uid in uids.into_iter().filter(|u| !keep.contains(u)) {
        tracing::info!(%uid, "removing the remains of a pod that is gone");
        let _ = shared.runtime.remove_sandbox(&uid, Duration::from_secs(2));
        let rec = shared.read_record(&uid);
        teardown_network(shared, &uid, rec.as_ref());
    }
}
