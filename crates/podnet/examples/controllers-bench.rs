//! `controllers-bench`: figures for the endpoints and EndpointSlice controllers of `podnet
//! controllers`, against a running API server that runs no controllers of its own (`podnet server
//! --controllers=none`), reached through `--kubeconfig`. `bench/controllers.sh` starts a fresh
//! server and runs this.
//!
//! The controllers run as a separate process this program starts and kills: `podnet controllers
//! --kubeconfig K --controllers=C` (all of them by default, as a deployment runs them), the
//! binary given by `--podnet` or else `podnet` in the directory above this example's own
//! (`target/release/examples/controllers-bench` → `target/release/podnet`).
//!
//! Set-up (not timed), in a namespace of its own named after the run: two Ready Nodes, then
//! `--services` (1,000) ClusterIP Services `sI` (selector `app=bI`, port 80 → targetPort 8080),
//! each selecting `--pods` (10) pods `pI-J` created directly, bound to a node by `spec.nodeName`
//! (there is no scheduler in the way, and no node agent: this program writes each pod's status
//! through the status subresource, as a kubelet would: phase Running, a podIP, and a Ready
//! condition, False to begin with). No slice may exist at this point (else the server runs
//! controllers, and the run stops).
//!
//! Throughout, this program watches the namespace's EndpointSlices and Endpoints (kube-runtime
//! `watcher`s, on connections of their own) and keeps what they show. The *expected* state is
//! computed from a LIST of the Services and pods (a Service with a selector gets, for each pod
//! it selects that has a podIP and is not terminal: `pod, ip, ready, 8080`); the state is
//! *correct* when, for every Service, the union of the endpoints of its slices and the addresses
//! of its Endpoints are exactly those (no missing, extra, duplicate or stale entry, readiness
//! included), and there is no slice or Endpoints of a Service that should have none.
//!
//! Measures, in order:
//!
//! 1. **cold**: the controllers are started against the full state (1,000 Services, 10,000 pods,
//!    no Endpoints, no slices yet). Reported: the time from just before the process is spawned
//!    to the watch event after which the state is correct (and stays so for `--settle-ms`), and
//!    the time to the first event (the controllers' start-up: process, connections, initial
//!    LISTs of their watches).
//! 2. **ready** (pod Ready → EndpointSlice): every pod, in turn, is made Ready (its status
//!    written again with Ready=True) at a steady `--rate` (200) per second, the Services
//!    interleaved (pod 0 of every Service, then pod 1 of every Service…), `--concurrency` (64)
//!    writes in flight at most. Per pod: from the moment the status write's response arrived
//!    to the moment the EndpointSlice watch delivered an event (of the pod's Service's slice)
//!    showing that endpoint `ready: true`, both taken by this process's monotonic clock (an event
//!    that arrives before the write's response, which happens, counts as 0). Reported:
//!    p50/p99/max (goal p99 < 50 ms), the number of pods never seen ready within `--wait-secs`
//!    (10) after the last write (goal 0), and for reference the same latency counted from just
//!    before the write was sent, and the write's own latency. A breakdown, from a watch of the
//!    namespace's pods this program also runs during the phase: from just before the write was
//!    sent to the pod watch event showing the pod Ready (the API server's share: write and watch
//!    fan-out; the controllers' own pod watch sees the same event at about the same time), and
//!    from that event to the slice event (the controllers' share: their sync, the slice write,
//!    and the slice watch's delivery).
//! 3. **restart**: the controllers process is killed (SIGKILL). While it is down: `--flip`
//!    (1,000) pods change readiness (the first of every Service), `--delete` (100) pods are
//!    deleted (grace period 0; the last of the first Services), `--add-pods` (100) new ready pods
//!    join existing Services and `--add-services` (10) Services `xK` are added (each selecting
//!    the pods of `sK`). Then the controllers are started again. Reported: the time from just
//!    before the spawn to the state being correct again (Endpoints and slices), as for cold, and
//!    the number of slice and Endpoints events (≈ the controllers' writes) it took.
//!
//! Each phase also reports the CPU the server (with `--server-pid`), the controllers, this
//! program and everything else on the machine used, in cores: they all share the same cores.
//!
//! Output: one line per measure, `controllers-bench <measure> <value> <unit> goal <goal>
//! <verdict> | details`, the verdict PASS or MISS against the goal, or `info` for a measure
//! without one. Exits non-zero only when the benchmark itself could not run (an error or a
//! timeout, not a missed goal).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context};
use clap::{Parser, ValueEnum};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Endpoints, Namespace, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;
use serde_json::json;

/// The label that names a slice's Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The port every benchmark pod serves on (the Services' targetPort).
const TARGET_PORT: i32 = 8080;
/// The nodes the pods are bound to.
const NODES: [&str; 2] = ["controllers-bench-n1", "controllers-bench-n2"];

#[derive(Parser)]
#[command(about = "Endpoints/EndpointSlice controller figures: pod Ready → slice latency, convergence after a restart")]
struct Args {
    /// The kubeconfig of a running API server without controllers (`podnet server --controllers=none`).
    #[arg(long)]
    kubeconfig: PathBuf,
    /// The podnet binary (default: `podnet` in the directory above this example's, i.e. target/release/podnet).
    #[arg(long)]
    podnet: Option<PathBuf>,
    /// `--controllers` of `podnet controllers`.
    #[arg(long, default_value = "*")]
    controllers: String,
    /// Phases after the cold start, in order.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "ready,restart")]
    phases: Vec<Phase>,
    /// Services.
    #[arg(long, default_value_t = 1000)]
    services: usize,
    /// Pods per Service.
    #[arg(long, default_value_t = 10)]
    pods: usize,
    /// Pods made Ready per second in the ready phase.
    #[arg(long, default_value_t = 200)]
    rate: u32,
    /// Status writes in flight at most in the ready phase.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Concurrent writes while setting up.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// How long to wait after the ready phase's last write for the last slice events.
    #[arg(long, default_value_t = 10)]
    wait_secs: u64,
    /// Restart phase: pods whose readiness changes while the controllers are down.
    #[arg(long, default_value_t = 1000)]
    flip: usize,
    /// Restart phase: pods deleted while the controllers are down.
    #[arg(long, default_value_t = 100)]
    delete: usize,
    /// Restart phase: pods added (to existing Services) while the controllers are down.
    #[arg(long, default_value_t = 100)]
    add_pods: usize,
    /// Restart phase: Services added while the controllers are down.
    #[arg(long, default_value_t = 10)]
    add_services: usize,
    /// How long a converged state must stay correct before it counts.
    #[arg(long, default_value_t = 1000)]
    settle_ms: u64,
    /// How long to wait for a convergence before giving up.
    #[arg(long, default_value_t = 300)]
    timeout_secs: u64,
    /// The server's process id, to report the CPU time it used in each phase.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Where the controllers' log goes (appended; default: this program's stderr).
    #[arg(long)]
    controllers_log: Option<PathBuf>,
    /// The controllers' log filter (their PODNET_LOG), e.g. `debug`.
    #[arg(long, default_value = "warn")]
    controllers_log_level: String,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Phase {
    Ready,
    Restart,
}

/// A goal a measure is held to.
#[derive(Clone, Copy)]
enum Goal {
    Below(f64),
    Exactly(f64),
}

impl Goal {
    fn describe(self) -> String {
        match self {
            Goal::Below(v) => format!("<{v}"),
            Goal::Exactly(v) => format!("={v}"),
        }
    }
    fn met(self, value: f64) -> bool {
        match self {
            Goal::Below(v) => value < v,
            Goal::Exactly(v) => value == v,
        }
    }
}

/// Prints one measure: `controllers-bench <measure> <value> <unit> goal <goal> <verdict> | <details>`.
fn report(measure: &str, value: f64, unit: &str, goal: Option<Goal>, details: &str) {
    let (goal_text, verdict) = match goal {
        Some(g) => (g.describe(), if g.met(value) { "PASS" } else { "MISS" }),
        None => ("-".to_string(), "info"),
    };
    let value = if value.fract() == 0.0 { format!("{value:.0}") } else { format!("{value:.2}") };
    println!("controllers-bench {measure:<30} {value:>10} {unit:<6} goal {goal_text:<5} {verdict:<4} | {details}");
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The nearest-rank percentile `p` (0–100) of sorted samples.
fn percentile<T: Copy>(sorted: &[T], p: f64) -> T {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// User plus system CPU time of a process, in seconds (from /proc; clock ticks are USER_HZ = 100).
fn cpu_secs(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// Busy CPU time of the whole machine, in seconds (user, nice, system, irq, softirq, steal).
fn machine_busy_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat.lines().next()?.split_whitespace().skip(1).map(|f| f.parse().unwrap_or(0)).collect();
    let busy: u64 = [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| fields.get(i)).sum();
    Some(busy as f64 / 100.0)
}

/// CPU time used during a phase by the server, the controllers, this program and the rest.
struct CpuMeter {
    start: Instant,
    server_pid: Option<String>,
    server: Option<f64>,
    /// The controllers process running when the phase began, and its CPU time then.
    controllers: Option<(u32, f64)>,
    client: Option<f64>,
    machine: Option<f64>,
}

impl CpuMeter {
    fn start(server_pid: Option<u32>, controllers_pid: Option<u32>) -> CpuMeter {
        let server_pid = server_pid.map(|p| p.to_string());
        CpuMeter {
            start: Instant::now(),
            server: server_pid.as_deref().and_then(cpu_secs),
            server_pid,
            controllers: controllers_pid.and_then(|p| Some((p, cpu_secs(&p.to_string())?))),
            client: cpu_secs("self"),
            machine: machine_busy_secs(),
        }
    }

    /// Reports the phase's CPU; `controllers_pid` is the controllers process now (one started
    /// during the phase counts whole).
    fn report(&self, phase: &str, controllers_pid: Option<u32>) {
        let wall = self.start.elapsed().as_secs_f64();
        let delta = |before: Option<f64>, after: Option<f64>| Some(after? - before?);
        let server = self.server_pid.as_deref().and_then(|pid| delta(self.server, cpu_secs(pid)));
        let controllers = controllers_pid.and_then(|pid| {
            let now = cpu_secs(&pid.to_string())?;
            match self.controllers {
                Some((before_pid, before)) if before_pid == pid => Some(now - before),
                _ => Some(now),
            }
        });
        let client = delta(self.client, cpu_secs("self"));
        let machine = delta(self.machine, machine_busy_secs());
        let other =
            machine.map(|m| (m - server.unwrap_or(0.0) - controllers.unwrap_or(0.0) - client.unwrap_or(0.0)).max(0.0));
        for (who, used) in [("server", server), ("controllers", controllers), ("bench", client), ("other", other)] {
            if let Some(used) = used {
                let details = format!("cpu_s={used:.2} wall_s={wall:.2}");
                report(&format!("{phase}.cpu.{who}"), used / wall, "cores", None, &details);
            }
        }
    }
}

async fn client(kubeconfig: &Path) -> anyhow::Result<Client> {
    let kc =
        kube::config::Kubeconfig::read_from(kubeconfig).with_context(|| format!("reading {}", kubeconfig.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.context("kubeconfig")?;
    let client = Client::try_from(config).context("building a client")?;
    client.apiserver_version().await.context("reaching the server")?;
    Ok(client)
}

/// The `podnet controllers` process, killed (SIGKILL) when dropped.
struct Controllers {
    child: Child,
}

impl Controllers {
    fn start(args: &Args, podnet: &Path) -> anyhow::Result<Controllers> {
        let mut cmd = Command::new(podnet);
        cmd.arg("controllers")
            .arg("--kubeconfig")
            .arg(&args.kubeconfig)
            .arg(format!("--controllers={}", args.controllers))
            .env("PODNET_LOG", &args.controllers_log_level)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        match &args.controllers_log {
            Some(path) => {
                let file = OpenOptions::new().create(true).append(true).open(path).context("the controllers' log")?;
                cmd.stderr(file);
            }
            None => {
                cmd.stderr(Stdio::inherit());
            }
        }
        let child = cmd.spawn().with_context(|| format!("starting {} controllers", podnet.display()))?;
        Ok(Controllers { child })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails when the process has exited.
    fn check(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("podnet controllers exited: {status}");
        }
        Ok(())
    }

    /// SIGKILL, and waits for the process to be gone.
    fn kill(mut self) -> anyhow::Result<()> {
        self.child.kill().context("killing the controllers")?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for Controllers {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One endpoint as the watched objects show it: pod, address(es), ready, port.
type Entry = (String, String, bool, i32);

/// The state the watches show, what it should be, and whether (since when) the two agree.
#[derive(Default)]
struct Tracker {
    /// Service → slice name → its entries.
    slices: HashMap<String, BTreeMap<String, Vec<Entry>>>,
    /// Service → its Endpoints' entries, sorted.
    endpoints: HashMap<String, Vec<Entry>>,
    slices_relist: Option<HashMap<String, BTreeMap<String, Vec<Entry>>>>,
    endpoints_relist: Option<HashMap<String, Vec<Entry>>>,
    slices_synced: bool,
    endpoints_synced: bool,
    /// Service → its expected entries, sorted.
    expected: HashMap<String, Vec<Entry>>,
    /// Services whose slices or Endpoints are not as expected (or that should have none).
    wrong: BTreeSet<String>,
    /// Since when the state is correct.
    converged_at: Option<Instant>,
    /// When recording: pod → when a slice event first showed it ready.
    ready_seen: Option<HashMap<String, Instant>>,
    slice_events: usize,
    endpoints_events: usize,
    first_event: Option<Instant>,
}

fn slice_entries(slice: &EndpointSlice) -> Vec<Entry> {
    let ports: Vec<i32> = slice.ports.iter().flatten().filter_map(|p| p.port).collect();
    let mut entries = Vec::new();
    for e in &slice.endpoints {
        let pod = e.target_ref.as_ref().and_then(|t| t.name.clone()).unwrap_or_default();
        let ready = e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false);
        for port in &ports {
            entries.push((pod.clone(), e.addresses.join(","), ready, *port));
        }
    }
    entries.sort();
    entries
}

fn endpoints_entries(ep: &Endpoints) -> Vec<Entry> {
    let mut entries = Vec::new();
    for subset in ep.subsets.iter().flatten() {
        for port in subset.ports.iter().flatten() {
            for (addresses, ready) in [(&subset.addresses, true), (&subset.not_ready_addresses, false)] {
                for a in addresses.iter().flatten() {
                    let pod = a.target_ref.as_ref().and_then(|t| t.name.clone()).unwrap_or_default();
                    entries.push((pod, a.ip.clone(), ready, port.port));
                }
            }
        }
    }
    entries.sort();
    entries
}

fn slice_key(slice: &EndpointSlice) -> Option<(String, String)> {
    let service = slice.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL)?.clone();
    Some((service, slice.metadata.name.clone()?))
}

impl Tracker {
    fn check(&mut self, service: &str) {
        let ok = match self.expected.get(service) {
            None => !self.slices.contains_key(service) && !self.endpoints.contains_key(service),
            Some(want) => {
                let mut got: Vec<Entry> =
                    self.slices.get(service).into_iter().flat_map(|m| m.values().flatten().cloned()).collect();
                got.sort();
                got == *want && self.endpoints.get(service) == Some(want)
            }
        };
        if ok {
            self.wrong.remove(service);
        } else {
            self.wrong.insert(service.to_string());
        }
    }

    fn check_all(&mut self) {
        let all: BTreeSet<String> =
            self.expected.keys().chain(self.slices.keys()).chain(self.endpoints.keys()).cloned().collect();
        self.wrong.clear();
        for service in all {
            self.check(&service);
        }
    }

    fn update_converged(&mut self, now: Instant) {
        if self.slices_synced && self.endpoints_synced && self.wrong.is_empty() {
            self.converged_at.get_or_insert(now);
        } else {
            self.converged_at = None;
        }
    }

    fn set_expected(&mut self, expected: HashMap<String, Vec<Entry>>) {
        self.expected = expected;
        self.check_all();
        self.converged_at = None;
        self.update_converged(Instant::now());
    }

    fn note_ready(&mut self, slice: &EndpointSlice, now: Instant) {
        if let Some(seen) = &mut self.ready_seen {
            for e in &slice.endpoints {
                if e.conditions.as_ref().and_then(|c| c.ready) == Some(true) {
                    if let Some(pod) = e.target_ref.as_ref().and_then(|t| t.name.as_ref()) {
                        if !seen.contains_key(pod) {
                            seen.insert(pod.clone(), now);
                        }
                    }
                }
            }
        }
    }

    fn on_slice(&mut self, event: watcher::Event<EndpointSlice>, now: Instant) {
        match event {
            watcher::Event::Init => self.slices_relist = Some(HashMap::new()),
            watcher::Event::InitApply(slice) => {
                self.note_ready(&slice, now);
                if let (Some(relist), Some((service, name))) = (&mut self.slices_relist, slice_key(&slice)) {
                    relist.entry(service).or_default().insert(name, slice_entries(&slice));
                }
            }
            watcher::Event::InitDone => {
                self.slices = self.slices_relist.take().unwrap_or_default();
                self.slices_synced = true;
                self.check_all();
            }
            watcher::Event::Apply(slice) => {
                self.slice_events += 1;
                self.first_event.get_or_insert(now);
                self.note_ready(&slice, now);
                if let Some((service, name)) = slice_key(&slice) {
                    self.slices.entry(service.clone()).or_default().insert(name, slice_entries(&slice));
                    self.check(&service);
                }
            }
            watcher::Event::Delete(slice) => {
                self.slice_events += 1;
                self.first_event.get_or_insert(now);
                if let Some((service, name)) = slice_key(&slice) {
                    if let Some(group) = self.slices.get_mut(&service) {
                        group.remove(&name);
                        if group.is_empty() {
                            self.slices.remove(&service);
                        }
                    }
                    self.check(&service);
                }
            }
        }
        self.update_converged(now);
    }

    fn on_endpoints(&mut self, event: watcher::Event<Endpoints>, now: Instant) {
        match event {
            watcher::Event::Init => self.endpoints_relist = Some(HashMap::new()),
            watcher::Event::InitApply(ep) => {
                if let (Some(relist), Some(name)) = (&mut self.endpoints_relist, ep.metadata.name.clone()) {
                    relist.insert(name, endpoints_entries(&ep));
                }
            }
            watcher::Event::InitDone => {
                self.endpoints = self.endpoints_relist.take().unwrap_or_default();
                self.endpoints_synced = true;
                self.check_all();
            }
            watcher::Event::Apply(ep) => {
                self.endpoints_events += 1;
                self.first_event.get_or_insert(now);
                if let Some(name) = ep.metadata.name.clone() {
                    self.endpoints.insert(name.clone(), endpoints_entries(&ep));
                    self.check(&name);
                }
            }
            watcher::Event::Delete(ep) => {
                self.endpoints_events += 1;
                self.first_event.get_or_insert(now);
                if let Some(name) = ep.metadata.name.clone() {
                    self.endpoints.remove(&name);
                    self.check(&name);
                }
            }
        }
        self.update_converged(now);
    }

    /// Starts counting events afresh.
    fn reset_counts(&mut self) {
        self.slice_events = 0;
        self.endpoints_events = 0;
        self.first_event = None;
    }
}

/// Watches the namespace's slices and Endpoints into the tracker, until the program ends.
async fn start_watches(kubeconfig: &Path, ns: &str, tracker: &Arc<Mutex<Tracker>>) -> anyhow::Result<()> {
    let slices: Api<EndpointSlice> = Api::namespaced(client(kubeconfig).await?, ns);
    let t = tracker.clone();
    tokio::spawn(async move {
        let mut events = watcher(slices, watcher::Config::default()).default_backoff().boxed();
        while let Some(event) = events.next().await {
            let now = Instant::now();
            match event {
                Ok(event) => lock(&t).on_slice(event, now),
                Err(e) => eprintln!("controllers-bench: watching endpointslices: {e}"),
            }
        }
    });
    let endpoints: Api<Endpoints> = Api::namespaced(client(kubeconfig).await?, ns);
    let t = tracker.clone();
    tokio::spawn(async move {
        let mut events = watcher(endpoints, watcher::Config::default()).default_backoff().boxed();
        while let Some(event) = events.next().await {
            let now = Instant::now();
            match event {
                Ok(event) => lock(&t).on_endpoints(event, now),
                Err(e) => eprintln!("controllers-bench: watching endpoints: {e}"),
            }
        }
    });
    let waiting = Instant::now();
    loop {
        {
            let t = lock(tracker);
            if t.slices_synced && t.endpoints_synced {
                return Ok(());
            }
        }
        ensure!(waiting.elapsed() < Duration::from_secs(60), "the watches did not list within 60 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The expected entries of every Service of the namespace, from a LIST of its Services and pods.
async fn expected_state(client: &Client, ns: &str) -> anyhow::Result<HashMap<String, Vec<Entry>>> {
    let services = Api::<Service>::namespaced(client.clone(), ns).list(&ListParams::default()).await?.items;
    let pods = Api::<Pod>::namespaced(client.clone(), ns).list(&ListParams::default()).await?.items;
    let mut expected = HashMap::new();
    for svc in &services {
        let Some(spec) = &svc.spec else { continue };
        let Some(selector) = spec.selector.as_ref().filter(|s| !s.is_empty()) else { continue };
        if spec.type_.as_deref() == Some("ExternalName") {
            continue;
        }
        let ports = spec.ports.as_deref().unwrap_or_default();
        ensure!(ports.len() == 1, "the benchmark's Services have one port");
        let port = match &ports[0].target_port {
            None => ports[0].port,
            Some(IntOrString::Int(p)) => *p,
            Some(IntOrString::String(name)) => bail!("named targetPort {name} is not what the benchmark makes"),
        };
        let mut entries = Vec::new();
        for pod in &pods {
            let labels = pod.metadata.labels.as_ref();
            if !selector.iter().all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v)) {
                continue;
            }
            let status = pod.status.as_ref();
            let terminal = matches!(status.and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"));
            let Some(ip) = status.and_then(|s| s.pod_ip.clone()) else { continue };
            if terminal || pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let ready = is_ready(pod);
            entries.push((pod.metadata.name.clone().unwrap_or_default(), ip, ready, port));
        }
        entries.sort();
        expected.insert(svc.metadata.name.clone().unwrap_or_default(), entries);
    }
    Ok(expected)
}

/// Waits for the state to be correct and stay so for `settle`; returns when it became correct
/// (counted from `start`), or `None` after the timeout.
async fn wait_converged(
    tracker: &Mutex<Tracker>,
    controllers: &mut Controllers,
    start: Instant,
    settle: Duration,
    timeout: Duration,
) -> anyhow::Result<Option<Duration>> {
    loop {
        if let Some(at) = lock(tracker).converged_at {
            if at.elapsed() >= settle {
                return Ok(Some(at.saturating_duration_since(start)));
            }
        }
        if start.elapsed() > timeout {
            return Ok(None);
        }
        controllers.check()?;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// What the tracker shows about a convergence: counts, first event, what is still wrong.
fn convergence_details(tracker: &Mutex<Tracker>, start: Instant) -> String {
    let t = lock(tracker);
    let first =
        t.first_event.map_or("-".to_string(), |f| format!("{:.3}", f.saturating_duration_since(start).as_secs_f64()));
    let wrong: Vec<&String> = t.wrong.iter().take(5).collect();
    format!(
        "services={} slice_events={} endpoints_events={} first_event_s={first} still_wrong={} e.g.={wrong:?}",
        t.expected.len(),
        t.slice_events,
        t.endpoints_events,
        t.wrong.len()
    )
}

fn pod_name(i: usize, j: usize) -> String {
    format!("p{i}-{j}")
}

fn pod_ip(i: usize, j: usize) -> String {
    format!("10.{}.{}.{}", 100 + i / 250, i % 250, j + 2)
}

/// A Ready condition's lastTransitionTime: now, to the second.
fn now_rfc3339() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).expect("the clock is after 1970").as_secs();
    k8s_openapi::jiff::Timestamp::from_second(secs as i64).expect("a valid time").to_string()
}

/// What a node agent would report: running, with an IP, ready or not.
async fn set_status(pods: &Api<Pod>, name: &str, ip: &str, ready: bool) -> anyhow::Result<()> {
    let status = json!({"status": {
        "phase": "Running",
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" },
                        "lastTransitionTime": now_rfc3339()}],
    }});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .with_context(|| format!("writing the status of pod {name}"))?;
    Ok(())
}

/// Creates pod `pI-J` of Service `sI` on a node, with its IP and readiness.
async fn create_pod(pods: &Api<Pod>, i: usize, j: usize, ready: bool) -> anyhow::Result<()> {
    let name = pod_name(i, j);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": format!("b{i}")}},
        "spec": {"nodeName": NODES[j % NODES.len()],
                 "containers": [{"name": "c", "image": "registry.invalid/bench", "ports": [{"containerPort": TARGET_PORT}]}]},
    }))?;
    pods.create(&PostParams::default(), &pod).await.with_context(|| format!("creating pod {name}"))?;
    set_status(pods, &name, &pod_ip(i, j), ready).await
}

async fn create_service(services: &Api<Service>, name: &str, app: &str) -> anyhow::Result<()> {
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"selector": {"app": app}, "ports": [{"port": 80, "targetPort": TARGET_PORT, "protocol": "TCP"}]},
    }))?;
    services.create(&PostParams::default(), &svc).await.with_context(|| format!("creating Service {name}"))?;
    Ok(())
}

/// Runs fallible futures, `concurrency` at a time, failing on the first error.
async fn all<F: std::future::Future<Output = anyhow::Result<()>>>(
    futures: impl IntoIterator<Item = F>,
    concurrency: usize,
) -> anyhow::Result<()> {
    let mut results = futures::stream::iter(futures).buffer_unordered(concurrency);
    while let Some(r) = results.next().await {
        r?;
    }
    Ok(())
}

async fn register_nodes(client: &Client) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    for (i, name) in NODES.iter().enumerate() {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "topology.kubernetes.io/zone": "zone-a"}},
        }))?;
        match nodes.create(&PostParams::default(), &node).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e).context("registering a node"),
        }
        let status = json!({"status": {
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
            "addresses": [{"type": "InternalIP", "address": format!("192.168.0.{}", i + 10)}, {"type": "Hostname", "address": name}],
        }});
        nodes.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)).await?;
    }
    Ok(())
}

/// Pods seen Ready by a watch of the namespace's pods (pod → when), from the moment this returns
/// (its initial list is done), for the breakdown of the ready phase's latency.
async fn watch_pods_ready(
    kubeconfig: &Path,
    ns: &str,
) -> anyhow::Result<(Arc<Mutex<HashMap<String, Instant>>>, tokio::task::JoinHandle<()>)> {
    let pods: Api<Pod> = Api::namespaced(client(kubeconfig).await?, ns);
    let seen: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let (listed_tx, listed_rx) = tokio::sync::oneshot::channel();
    let s = seen.clone();
    let task = tokio::spawn(async move {
        let mut listed = Some(listed_tx);
        let mut events = watcher(pods, watcher::Config::default()).default_backoff().boxed();
        while let Some(event) = events.next().await {
            let now = Instant::now();
            match event {
                Ok(watcher::Event::Apply(pod)) if is_ready(&pod) => {
                    lock(&s).entry(pod.metadata.name.clone().unwrap_or_default()).or_insert(now);
                }
                Ok(watcher::Event::InitDone) => {
                    if let Some(tx) = listed.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(_) => {}
                Err(e) => eprintln!("controllers-bench: watching pods: {e}"),
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(60), listed_rx)
        .await
        .context("the pod watch did not list within 60 s")?
        .context("the pod watch ended")?;
    Ok((seen, task))
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// Pod Ready → appears ready in its Service's slice, per pod.
async fn ready_phase(
    args: &Args,
    client: &Client,
    ns: &str,
    tracker: &Arc<Mutex<Tracker>>,
    controllers: &mut Controllers,
) -> anyhow::Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let order: Vec<(usize, usize)> = (0..args.pods).flat_map(|j| (0..args.services).map(move |i| (i, j))).collect();
    let total = order.len();
    lock(tracker).ready_seen = Some(HashMap::with_capacity(total));
    let pod_events = watch_pods_ready(&args.kubeconfig, ns).await?;
    let writes: Arc<Mutex<HashMap<String, (Instant, Instant)>>> = Arc::default();
    let cpu = CpuMeter::start(args.server_pid, Some(controllers.pid()));
    let start = Instant::now();
    let interval = Duration::from_secs(1) / args.rate;
    let flips = order.iter().enumerate().map(|(k, &(i, j))| {
        let (pods, writes) = (pods.clone(), writes.clone());
        async move {
            tokio::time::sleep_until((start + interval * k as u32).into()).await;
            let name = pod_name(i, j);
            let sent = Instant::now();
            set_status(&pods, &name, &pod_ip(i, j), true).await?;
            let acked = Instant::now();
            lock(&writes).insert(name, (sent, acked));
            anyhow::Ok(())
        }
    });
    all(flips, args.concurrency).await?;
    let writing = start.elapsed();
    let waiting = Instant::now();
    while lock(tracker).ready_seen.as_ref().map_or(0, HashMap::len) < total
        && waiting.elapsed() < Duration::from_secs(args.wait_secs)
    {
        controllers.check()?;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let seen = lock(tracker).ready_seen.take().unwrap_or_default();
    let writes = std::mem::take(&mut *lock(&writes));
    let (seen_pods, pod_watch) = pod_events;
    pod_watch.abort();
    let seen_pods = std::mem::take(&mut *lock(&seen_pods));
    let (mut from_ack, mut from_send, mut write) = (Vec::new(), Vec::new(), Vec::new());
    let (mut to_pod_event, mut pod_event_to_slice) = (Vec::new(), Vec::new());
    let mut before_ack = 0;
    for (pod, (sent, acked)) in &writes {
        write.push(*acked - *sent);
        if let Some(at) = seen.get(pod) {
            if at < acked {
                before_ack += 1;
            }
            from_ack.push(at.saturating_duration_since(*acked));
            from_send.push(at.saturating_duration_since(*sent));
        }
        if let Some(pod_at) = seen_pods.get(pod) {
            to_pod_event.push(pod_at.saturating_duration_since(*sent));
            if let Some(at) = seen.get(pod) {
                pod_event_to_slice.push(at.saturating_duration_since(*pod_at));
            }
        }
    }
    ensure!(!from_ack.is_empty(), "no pod was seen ready in a slice");
    from_ack.sort_unstable();
    from_send.sort_unstable();
    write.sort_unstable();
    to_pod_event.sort_unstable();
    pod_event_to_slice.sort_unstable();
    let never = total - from_ack.len();
    let details = format!(
        "services={} pods={total} rate_per_s={} writing_s={:.2} samples={} never_seen={never} seen_before_write_response={before_ack}",
        args.services,
        args.rate,
        writing.as_secs_f64(),
        from_ack.len()
    );
    report("ready.latency.p50", ms(percentile(&from_ack, 50.0)), "ms", None, &details);
    report("ready.latency.p99", ms(percentile(&from_ack, 99.0)), "ms", Some(Goal::Below(50.0)), &details);
    report("ready.latency.max", ms(*from_ack.last().expect("samples")), "ms", None, &details);
    report("ready.never_seen", never as f64, "pods", Some(Goal::Exactly(0.0)), &details);
    let n = format!("samples={}", from_send.len());
    report("ready.from_send.p50", ms(percentile(&from_send, 50.0)), "ms", None, &n);
    report("ready.from_send.p99", ms(percentile(&from_send, 99.0)), "ms", None, &n);
    let n = format!("samples={}", write.len());
    report("ready.status_write.p50", ms(percentile(&write, 50.0)), "ms", None, &n);
    report("ready.status_write.p99", ms(percentile(&write, 99.0)), "ms", None, &n);
    if !to_pod_event.is_empty() && !pod_event_to_slice.is_empty() {
        let n = format!("samples={}", to_pod_event.len());
        report("ready.pod_event_from_send.p50", ms(percentile(&to_pod_event, 50.0)), "ms", None, &n);
        report("ready.pod_event_from_send.p99", ms(percentile(&to_pod_event, 99.0)), "ms", None, &n);
        let n = format!("samples={}", pod_event_to_slice.len());
        report("ready.pod_event_to_slice.p50", ms(percentile(&pod_event_to_slice, 50.0)), "ms", None, &n);
        report("ready.pod_event_to_slice.p99", ms(percentile(&pod_event_to_slice, 99.0)), "ms", None, &n);
    }
    cpu.report("ready", Some(controllers.pid()));
    Ok(())
}

/// Changes made while the controllers are down; returns a description.
async fn changes_while_down(args: &Args, client: &Client, ns: &str) -> anyhow::Result<String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    // Readiness: the first pods in the Services-interleaved order (pod 0 of every Service…).
    let current = Api::<Pod>::namespaced(client.clone(), ns).list(&ListParams::default()).await?.items;
    let ready: HashMap<String, bool> =
        current.iter().map(|p| (p.metadata.name.clone().unwrap_or_default(), is_ready(p))).collect();
    let flips: Vec<(usize, usize)> =
        (0..args.pods).flat_map(|j| (0..args.services).map(move |i| (i, j))).take(args.flip).collect();
    all(
        flips.iter().map(|&(i, j)| {
            let pods = pods.clone();
            let to = !ready.get(&pod_name(i, j)).copied().unwrap_or(false);
            async move { set_status(&pods, &pod_name(i, j), &pod_ip(i, j), to).await }
        }),
        args.clients,
    )
    .await?;
    // Deletions: the last pod of the first Services, gone at once (no node agent to finish a
    // graceful deletion).
    let last = args.pods - 1;
    all(
        (0..args.delete).map(|i| {
            let pods = pods.clone();
            async move {
                let dp = DeleteParams { grace_period_seconds: Some(0), ..Default::default() };
                pods.delete(&pod_name(i, last), &dp)
                    .await
                    .with_context(|| format!("deleting {}", pod_name(i, last)))?;
                anyhow::Ok(())
            }
        }),
        args.clients,
    )
    .await?;
    // New ready pods in the first Services.
    all((0..args.add_pods).map(|i| create_pod(&pods, i, args.pods, true)), args.clients).await?;
    // New Services, each selecting the pods of an existing one.
    all(
        (0..args.add_services).map(|k| {
            let services = services.clone();
            async move { create_service(&services, &format!("x{k}"), &format!("b{k}")).await }
        }),
        args.clients,
    )
    .await?;
    Ok(format!(
        "flipped={} deleted={} added_pods={} added_services={}",
        flips.len(),
        args.delete,
        args.add_pods,
        args.add_services
    ))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(args.services > 0 && args.pods > 0 && args.rate > 0 && args.clients > 0, "counts must be positive");
    ensure!(args.pods < 250 && args.services <= 250 * 150, "at most 249 pods per Service, 37,500 Services");
    ensure!(
        args.delete <= args.services && args.add_pods <= args.services && args.add_services <= args.services,
        "--delete, --add-pods and --add-services are at most --services"
    );
    ensure!(args.flip <= args.services * args.pods, "--flip is at most the number of pods");
    let podnet = match &args.podnet {
        Some(p) => p.clone(),
        None => {
            let exe = std::env::current_exe()?;
            let dir = exe.parent().and_then(Path::parent).context("locating target/release")?;
            dir.join("podnet")
        }
    };
    ensure!(podnet.is_file(), "no podnet binary at {} (use --podnet)", podnet.display());
    let run = format!("{:x}", SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs());
    let ns = format!("controllers-bench-{run}");
    let client = client(&args.kubeconfig).await?;
    println!(
        "controllers-bench run {run} against {}: {} Services x {} pods in namespace {ns}, controllers {} ({:?})",
        client.apiserver_version().await?.git_version,
        args.services,
        args.pods,
        podnet.display(),
        args.controllers
    );

    // Set-up.
    let setup = Instant::now();
    let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}}))?;
    Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &namespace).await?;
    register_nodes(&client).await?;
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    all(
        (0..args.services).map(|i| {
            let services = services.clone();
            async move { create_service(&services, &format!("s{i}"), &format!("b{i}")).await }
        }),
        args.clients,
    )
    .await?;
    let order: Vec<(usize, usize)> = (0..args.pods).flat_map(|j| (0..args.services).map(move |i| (i, j))).collect();
    all(order.iter().map(|&(i, j)| create_pod(&pods, i, j, false)), args.clients).await?;
    let existing = Api::<EndpointSlice>::namespaced(client.clone(), &ns).list(&ListParams::default()).await?.items;
    ensure!(
        existing.is_empty(),
        "{} EndpointSlices exist before the controllers started: the server runs controllers (start it with --controllers=none)",
        existing.len()
    );
    report(
        "setup",
        setup.elapsed().as_secs_f64(),
        "s",
        None,
        &format!("services={} pods={} (create + status write each)", args.services, order.len()),
    );

    let tracker = Arc::new(Mutex::new(Tracker::default()));
    start_watches(&args.kubeconfig, &ns, &tracker).await?;
    let expected = expected_state(&client, &ns).await?;
    lock(&tracker).set_expected(expected);
    let settle = Duration::from_millis(args.settle_ms);
    let timeout = Duration::from_secs(args.timeout_secs);

    // Cold start.
    let cpu = CpuMeter::start(args.server_pid, None);
    lock(&tracker).reset_counts();
    let start = Instant::now();
    let mut controllers = Controllers::start(&args, &podnet)?;
    let converged = wait_converged(&tracker, &mut controllers, start, settle, timeout).await?;
    let details = convergence_details(&tracker, start);
    let Some(took) = converged else { bail!("the cold start did not converge within {timeout:?}: {details}") };
    report("cold.converge", took.as_secs_f64(), "s", None, &details);
    cpu.report("cold", Some(controllers.pid()));

    for phase in &args.phases {
        match phase {
            Phase::Ready => {
                ready_phase(&args, &client, &ns, &tracker, &mut controllers).await?;
                // Every pod is ready now; the state must converge to that too.
                let expected = expected_state(&client, &ns).await?;
                lock(&tracker).set_expected(expected);
                let start = Instant::now();
                if wait_converged(&tracker, &mut controllers, start, settle, timeout).await?.is_none() {
                    bail!("not converged after the ready phase: {}", convergence_details(&tracker, start));
                }
            }
            Phase::Restart => {
                controllers.kill()?;
                let changes = changes_while_down(&args, &client, &ns).await?;
                let expected = expected_state(&client, &ns).await?;
                lock(&tracker).set_expected(expected);
                let cpu = CpuMeter::start(args.server_pid, None);
                lock(&tracker).reset_counts();
                let start = Instant::now();
                controllers = Controllers::start(&args, &podnet)?;
                let converged = wait_converged(&tracker, &mut controllers, start, settle, timeout).await?;
                let details = format!("{changes} {}", convergence_details(&tracker, start));
                let Some(took) = converged else { bail!("the restart did not converge within {timeout:?}: {details}") };
                report("restart.converge", took.as_secs_f64(), "s", None, &details);
                cpu.report("restart", Some(controllers.pid()));
            }
        }
    }
    controllers.kill()?;
    Ok(())
}
