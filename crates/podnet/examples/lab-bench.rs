//! `lab-bench`: the figures of `podnet up`'s lab (issue 5) in one run — how long a lab takes to
//! come up, how fast pods start, and what the pod network's throughput costs against the bare
//! kernel paths it is built from. `bench/lab.sh` builds podnet (release) and runs this as root on
//! this machine; every lab and namespace it makes is removed when it ends, also on failure (the
//! script's trap removes them too when the program is killed). The machine's own network
//! namespace is never changed: labs live in their own namespaces, and the bare veth pair is
//! between two namespaces made here (`ip netns add`) and deleted afterwards.
//!
//! Labs are named `--prefix` plus one letter: `u` (the up runs), `p` (pod start), `x` (vxlan) and
//! `g` (host-gw); `podnet up` merges their contexts into the temporary `KUBECONFIG` in `--work`.
//! The API is reached through the lab's own admin kubeconfig
//! (`/var/lib/podnet/labs/NAME/kubeconfig`, the loopback forward to the control plane).
//!
//! Phases (`--phases`, all by default):
//!
//! 1. **up**: `podnet up --name PREFIXu --nodes 3` (`--nodes`), each followed by `podnet down`,
//!    until `--up-runs` (5) runs succeeded. A run's time is the wall time from just before the
//!    process is spawned until it has exited, i.e. until `podnet up` has seen every node Ready
//!    with its pod CIDR (and merged the kubeconfig context). Reported: the median (held to the
//!    goal, < 5 s) and the max; the same for `podnet down` (spawn to exit: supervisor stopped,
//!    processes killed, namespaces and state removed). A `podnet up` that fails is not timed but
//!    counted (`up.failures`, with its error; more failures than runs end the phase). The time at
//!    which `podnet up` printed each of its progress lines in the median run is printed as a
//!    breakdown.
//! 2. **pods**: one 3-node lab (`PREFIXp`, vxlan). A watch on the pods of namespace `default` is
//!    opened first (list, then watch from its resourceVersion, re-opened when it ends); each
//!    event's time is taken when it is received. First, as soon as `podnet up` has returned, one
//!    nginx pod pinned to each node (`first-nodeN`): reported is the time until all of them run
//!    (`pods.first_after_up`, how long a new lab takes to run pods on every node); they are then
//!    deleted with grace period 0 (not timed). Then `--pods` (100) pods of the nginx image (the
//!    built-in HTTP server), without a nodeSelector (the scheduler spreads them), are created
//!    through the API (kube-rs, one typed create each), in two rounds: **seq**, one create at a
//!    time at a steady `--rate` (10/s), and **burst**, all creates started at once (concurrent
//!    requests, one connection each). A pod's start latency is the time from its create
//!    response (when `Api::create` returned) to the first watch event in which the pod has
//!    `status.phase` Running and a `status.podIP`; reported: p50, p99 (nearest rank; goal
//!    p99 < 1 s) and max, with the same percentiles of the steps on the way (create response →
//!    first event with `spec.nodeName`, i.e. scheduled; → first event with a podIP) and, for the
//!    burst, the wall time from the first create sent to the last pod Running; and the CPU time
//!    the lab's processes used from the first create to the last pod Running, per pod
//!    (`cpu_per_pod`: every process in one of the lab's network namespaces — API server, agents
//!    with the CNI plugins they ran, sandbox holders, shims, containers), with the share of the
//!    machine's cores busy meanwhile (other work competes for them). Then every pod of
//!    the round is deleted (default grace period, 30 s; all deletes at once) and reported: the
//!    time from the first delete sent until the watch has seen the last `DELETED` event (the
//!    agent stopped the pod, removed its sandbox and network, and deleted the object), and the
//!    per-pod p50/p99 of delete response → `DELETED`.
//! 3. **iperf**: iperf3 (TCP, one stream, `-t --iperf-secs` (5) seconds, default window; the
//!    figure is the receiver's bits per second) over these paths, each `--iperf-runs` (3) times,
//!    the paths interleaved round by round so that a change of the machine's load hits them all;
//!    the median of the runs is reported in Gbit/s:
//!    (i) **veth**: a bare veth pair between two namespaces made here (`PREFIX-veth-a/-b`,
//!    10.250.0.1/30 and .2, MTU 1500), server `ip netns exec A iperf3 -s -1`, client in B;
//!    (ii) **pod same node**: two pods on node1 of a 2-node vxlan lab (`PREFIXx`), the server a
//!    pod running `iperf3 -s` (busybox image with a command: the host's iperf3), the client
//!    `podnet exec` in a pod running `sleep infinity`, both pinned with nodeSelector
//!    `kubernetes.io/hostname`; measured too in the host-gw lab (`pod_same_node.hostgw_lab`,
//!    info: the same path with the pods' MTU 1500 instead of vxlan's 1450);
//!    (iii) **node ↔ node**: `podnet node exec … node1 -- iperf3 -s -1` and the client in node2
//!    to node1's underlay address (172.31.0.11): veth → the underlay bridge → veth; measured in
//!    both labs (the underlay does not depend on the backend); (iv) **pod ↔ pod across nodes,
//!    host-gw**: a 2-node `--backend host-gw` lab (`PREFIXg`), client pod on node2, server pod on
//!    node1; (v) the same in the **vxlan** lab. Ratios, each against its peer measured in the
//!    same run: (ii)/(i) goal ≥ 0.9, (iv)/(iii of the host-gw lab) goal ≥ 0.9, (v)/(iii of the
//!    vxlan lab) goal ≥ 0.6. Details give each path's MTU, the sender's retransmits and the CPU
//!    use iperf3 reports for both ends (a path that costs more CPU per byte is slower on these
//!    two cores). Servers started for one run (`-1`) exit after it and are killed if they did
//!    not; pod servers go with their lab. The labs of this phase are started with up to 3
//!    attempts (their start is not what is measured here).
//!
//! Output: progress lines, then one line per measure, `lab-bench <measure> <value> <unit> goal
//! <goal> <verdict> | details` (verdict PASS or MISS against the goal, `info` without one),
//! repeated as a table at the end. Exits non-zero only when the benchmark itself could not run
//! (an error, not a missed goal).

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use clap::{Parser, ValueEnum};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::{json, Value};

#[derive(Parser)]
#[command(about = "podnet lab benchmark: podnet up time, pod start latency, iperf3 throughput")]
struct Args {
    /// The podnet binary.
    #[arg(long, default_value = "target/release/podnet")]
    podnet: PathBuf,
    /// Lab names are PREFIX plus one letter; the veth namespaces PREFIX-veth-a and -b. A DNS
    /// label of at most 19 characters, unique to this run.
    #[arg(long)]
    prefix: String,
    /// Scratch directory: the KUBECONFIG `podnet up` merges its contexts into.
    #[arg(long)]
    work: PathBuf,
    /// Phases to run, in order.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "up,pods,iperf")]
    phases: Vec<Phase>,
    /// Timed `podnet up` runs (each followed by a timed `podnet down`).
    #[arg(long, default_value_t = 5)]
    up_runs: usize,
    /// Nodes of the labs of the up and pods phases.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Pods per round of the pods phase.
    #[arg(long, default_value_t = 100)]
    pods: usize,
    /// Creates per second in the sequential round.
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Seconds of each iperf3 run.
    #[arg(long, default_value_t = 5)]
    iperf_secs: u64,
    /// iperf3 runs per path (the median is reported).
    #[arg(long, default_value_t = 3)]
    iperf_runs: usize,
    /// Copy each lab's logs (/var/lib/podnet/labs/NAME/logs) to DIR/NAME-N before it is removed.
    #[arg(long)]
    keep_logs: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Phase {
    Up,
    Pods,
    Iperf,
}

/// A goal a measure is held to.
#[derive(Clone, Copy)]
enum Goal {
    AtLeast(f64),
    Below(f64),
}

impl Goal {
    fn describe(self) -> String {
        match self {
            Goal::AtLeast(v) => format!(">={v}"),
            Goal::Below(v) => format!("<{v}"),
        }
    }
    fn met(self, value: f64) -> bool {
        match self {
            Goal::AtLeast(v) => value >= v,
            Goal::Below(v) => value < v,
        }
    }
}

/// The report lines, printed as they come and again together at the end.
#[derive(Default)]
struct Report(Vec<String>);

impl Report {
    /// One measure: `lab-bench <measure> <value> <unit> goal <goal> <verdict> | <details>`.
    fn add(&mut self, measure: &str, value: f64, unit: &str, goal: Option<Goal>, details: &str) {
        let (goal_text, verdict) = match goal {
            Some(g) => (g.describe(), if g.met(value) { "PASS" } else { "MISS" }),
            None => ("-".to_string(), "info"),
        };
        let line =
            format!("lab-bench {measure:<30} {value:>9.3} {unit:<7} goal {goal_text:<6} {verdict:<4} | {details}");
        println!("{line}");
        self.0.push(line);
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The nearest-rank percentile `p` (0–100) of sorted samples.
fn percentile<T: Copy>(sorted: &[T], p: f64) -> T {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    percentile(&s, 50.0)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A lab of this run, removed (`podnet down`) on drop if it is still up.
struct Lab {
    name: String,
    podnet: PathBuf,
    kubeconfig: PathBuf,
    keep_logs: Option<PathBuf>,
    up: bool,
    downs: usize,
}

impl Lab {
    fn new(args: &Args, letter: &str) -> Lab {
        Lab {
            name: format!("{}{letter}", args.prefix),
            podnet: args.podnet.clone(),
            kubeconfig: args.work.join("kubeconfig"),
            keep_logs: args.keep_logs.clone(),
            up: false,
            downs: 0,
        }
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(&self.podnet);
        c.env("KUBECONFIG", &self.kubeconfig);
        c
    }

    /// `podnet up --name NAME EXTRA…`: the wall time from spawn to exit, and when each progress
    /// line was printed.
    fn up(&mut self, extra: &[&str]) -> Result<(Duration, Vec<(Duration, String)>)> {
        self.up_once(extra).inspect_err(|_| {
            // `podnet up` removes what it made when it fails; make sure.
            let _ = self.down();
        })
    }

    /// [`Lab::up`], tried up to `attempts` times (each failure is printed): for the labs whose
    /// start is not what is measured.
    fn up_retrying(&mut self, extra: &[&str], attempts: usize) -> Result<Duration> {
        for attempt in 1.. {
            match self.up(extra) {
                Ok((took, _)) => return Ok(took),
                Err(e) if attempt < attempts => println!("  podnet up failed (attempt {attempt}): {e:#}"),
                Err(e) => return Err(e),
            }
        }
        unreachable!()
    }

    fn up_once(&mut self, extra: &[&str]) -> Result<(Duration, Vec<(Duration, String)>)> {
        let start = Instant::now();
        let mut child = self
            .cmd()
            .args(["up", "--name", &self.name])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("running {}", self.podnet.display()))?;
        // Whatever happens now, drop runs `podnet down`.
        self.up = true;
        let mut stderr = child.stderr.take().expect("piped");
        let errors = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        let mut lines = Vec::new();
        for line in BufReader::new(child.stdout.take().expect("piped")).lines() {
            lines.push((start.elapsed(), line?));
        }
        let status = child.wait()?;
        let took = start.elapsed();
        let errors = errors.join().unwrap_or_default();
        if !status.success() {
            let out: Vec<&str> = lines.iter().map(|(_, l)| l.as_str()).collect();
            bail!("podnet up --name {} failed ({status}):\n{}\n{errors}", self.name, out.join("\n"));
        }
        Ok((took, lines))
    }

    /// `podnet down --name NAME`, spawn to exit (the logs are copied first with --keep-logs).
    fn down(&mut self) -> Result<Duration> {
        if let Some(dir) = &self.keep_logs {
            let src = podnet_lab::spec::state_dir(&self.name).join("logs");
            if src.exists() {
                let dst = dir.join(format!("{}-{}", self.name, self.downs));
                let _ = std::fs::create_dir_all(dir);
                let _ = Command::new("cp").arg("-a").arg(&src).arg(&dst).status();
            }
        }
        self.downs += 1;
        let start = Instant::now();
        let out = self.cmd().args(["down", "--name", &self.name]).stdin(Stdio::null()).output()?;
        let took = start.elapsed();
        self.up = false;
        ensure!(
            out.status.success(),
            "podnet down --name {} failed: {}{}",
            self.name,
            text(&out.stdout),
            text(&out.stderr)
        );
        Ok(took)
    }

    /// `podnet exec --name NAME POD -- CMD…`.
    fn exec(&self, pod: &str, cmd: &[&str]) -> Command {
        let mut c = self.cmd();
        c.args(["exec", "--name", &self.name, pod, "--"]).args(cmd).stdin(Stdio::null());
        c
    }

    /// `podnet node exec --name NAME NODE -- CMD…`.
    fn node_exec(&self, node: &str, cmd: &[&str]) -> Command {
        let mut c = self.cmd();
        c.args(["node", "exec", "--name", &self.name, node, "--"]).args(cmd).stdin(Stdio::null());
        c
    }

    async fn client(&self) -> Result<kube::Client> {
        let client = podnet_lab::client(&self.name).await?;
        // Open the connection before anything is timed.
        client.apiserver_version().await.context("reaching the lab's API server")?;
        Ok(client)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.up {
            if let Err(e) = self.down() {
                eprintln!("lab-bench: removing lab {}: {e:#}", self.name);
            }
        }
    }
}

/// A pod of one container: `image`, optionally pinned to `node`, optionally running `command`.
fn pod(name: &str, image: &str, node: Option<&str>, command: Option<&[&str]>) -> Pod {
    let mut container = json!({"name": "c", "image": image});
    if let Some(cmd) = command {
        container["command"] = json!(cmd);
    }
    let mut spec = json!({"containers": [container]});
    if let Some(node) = node {
        spec["nodeSelector"] = json!({"kubernetes.io/hostname": node});
    }
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "lab-bench"}},
        "spec": spec,
    }))
    .expect("a valid Pod")
}

// ---------------------------------------------------------------------------------------------
// Phase 1: podnet up / down.

fn up_phase(args: &Args, report: &mut Report) -> Result<()> {
    println!("== up: `podnet up --nodes {}` {} times, each followed by `podnet down`", args.nodes, args.up_runs);
    let nodes = args.nodes.to_string();
    let mut lab = Lab::new(args, "u");
    let mut ups = Vec::new();
    let mut downs = Vec::new();
    let mut progress = Vec::new();
    let mut failures = Vec::new();
    // A failed `podnet up` is counted and reported, not timed; at most as many failures as runs.
    while ups.len() < args.up_runs {
        match lab.up(&["--nodes", &nodes]) {
            Ok((up, lines)) => {
                let down = lab.down()?;
                println!("  run {}: up {:.2} s, down {:.2} s", ups.len() + 1, secs(up), secs(down));
                ups.push(secs(up));
                downs.push(secs(down));
                progress.push(lines);
            }
            Err(e) => {
                let first = format!("{e:#}").lines().find(|l| l.contains("error")).unwrap_or("?").trim().to_string();
                println!("  podnet up FAILED: {e:#}");
                failures.push(first);
                ensure!(failures.len() <= args.up_runs, "podnet up failed {} times", failures.len());
            }
        }
    }
    let mut order: Vec<usize> = (0..ups.len()).collect();
    order.sort_by(|a, b| ups[*a].total_cmp(&ups[*b]));
    let mid = order[(order.len() - 1) / 2];
    println!("  progress of the median run ({}): when each line was printed", mid + 1);
    for (t, line) in &progress[mid] {
        println!("    {:>6.2} s  {line}", secs(*t));
    }
    let all = |v: &[f64]| v.iter().map(|x| format!("{x:.2}")).collect::<Vec<_>>().join(" ");
    let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    report.add(
        "up.median",
        median(&ups),
        "s",
        Some(Goal::Below(5.0)),
        &format!("{} nodes, max {:.2} s, runs: {}", args.nodes, max(&ups), all(&ups)),
    );
    report.add("up.max", max(&ups), "s", None, &format!("{} runs", ups.len()));
    let attempts = ups.len() + failures.len();
    let first_failure = failures.first().map(|f| format!("; {f}")).unwrap_or_default();
    report.add("up.failures", failures.len() as f64, "runs", None, &format!("of {attempts} attempts{first_failure}"));
    report.add("down.median", median(&downs), "s", None, &format!("max {:.2} s, runs: {}", max(&downs), all(&downs)));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Phase 2: pod start latency.

/// Busy CPU time of the whole machine, in seconds (the first line of /proc/stat: user, nice,
/// system, irq, softirq and steal; idle and iowait are not busy; USER_HZ = 100).
fn machine_busy_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> =
        stat.lines().next().unwrap_or("").split_whitespace().skip(1).map(|f| f.parse().unwrap_or(0)).collect();
    [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| fields.get(i)).sum::<u64>() as f64 / 100.0
}

/// CPU time (user + system, with their waited-for children) of every process in one of the
/// lab's network namespaces, by kind: the API server, the agents (with the CNI plugins and
/// runtime helpers they ran and reaped), the pods' sandbox holders and shims, and the
/// containers. A process that exits is counted through its parent when that parent is in the lab.
fn lab_cpu(lab: &str) -> BTreeMap<&'static str, f64> {
    use std::os::unix::fs::MetadataExt;
    let prefix = podnet_lab::spec::netns_prefix(lab);
    let inodes: Vec<String> = std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .filter_map(|e| std::fs::metadata(e.path()).ok())
        .map(|m| format!("net:[{}]", m.ino()))
        .collect();
    let mut by_kind = BTreeMap::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let pid = e.file_name();
        let Some(pid) = pid.to_str().filter(|p| p.bytes().all(|b| b.is_ascii_digit())) else { continue };
        let Ok(ns) = std::fs::read_link(format!("/proc/{pid}/ns/net")) else { continue };
        if !inodes.iter().any(|i| ns.as_os_str() == i.as_str()) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let arg = |i: usize| args.get(i).copied().unwrap_or(b"");
        let kind = match (arg(1), arg(2), arg(3)) {
            (b"server", ..) => "server",
            (b"agent", ..) => "agents",
            (b"internal", b"runtime", b"hold") => "holders",
            (b"internal", b"runtime", b"shim") => "shims",
            _ => "containers",
        };
        // The fields after the parenthesised command: utime, stime, cutime, cstime are 14–17.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = (11..=14).filter_map(|i| f.get(i)?.parse::<u64>().ok()).sum();
        *by_kind.entry(kind).or_insert(0.0) += ticks as f64 / 100.0;
    }
    by_kind
}

/// What the watch saw of one pod, first time each.
#[derive(Default, Clone)]
struct Seen {
    scheduled: Option<Instant>,
    ip: Option<Instant>,
    running: Option<Instant>,
    deleted: Option<Instant>,
    node: Option<String>,
}

type Board = Arc<Mutex<HashMap<String, Seen>>>;

fn note(board: &Board, p: &Pod, at: Instant, deleted: bool) {
    let Some(name) = p.metadata.name.clone() else { return };
    let mut b = board.lock().expect("board");
    let seen = b.entry(name).or_default();
    if deleted {
        seen.deleted.get_or_insert(at);
        return;
    }
    if let Some(node) = p.spec.as_ref().and_then(|s| s.node_name.clone()) {
        seen.scheduled.get_or_insert(at);
        seen.node.get_or_insert(node);
    }
    let status = p.status.as_ref();
    let has_ip = status.and_then(|s| s.pod_ip.as_deref()).is_some_and(|ip| !ip.is_empty());
    if has_ip {
        seen.ip.get_or_insert(at);
        if status.and_then(|s| s.phase.as_deref()) == Some("Running") {
            seen.running.get_or_insert(at);
        }
    }
}

/// Watches the pods of `api` into `board` until aborted; `ready` fires once the watch is open.
async fn watch_pods(api: Api<Pod>, board: Board, ready: tokio::sync::oneshot::Sender<()>) -> Result<()> {
    let list = api.list(&ListParams::default()).await.context("listing pods")?;
    let mut rv = list.metadata.resource_version.unwrap_or_default();
    let mut ready = Some(ready);
    loop {
        let wp = WatchParams::default().timeout(290);
        let mut stream = api.watch(&wp, &rv).await.context("watching pods")?.boxed();
        if let Some(r) = ready.take() {
            let _ = r.send(());
        }
        while let Some(ev) = stream.try_next().await.context("the pod watch")? {
            let at = Instant::now();
            match ev {
                WatchEvent::Added(p) | WatchEvent::Modified(p) => {
                    rv = p.metadata.resource_version.clone().unwrap_or(rv);
                    note(&board, &p, at, false);
                }
                WatchEvent::Deleted(p) => {
                    rv = p.metadata.resource_version.clone().unwrap_or(rv);
                    note(&board, &p, at, true);
                }
                WatchEvent::Bookmark(b) => rv = b.metadata.resource_version,
                WatchEvent::Error(e) => bail!("the pod watch failed: {e:?}"),
            }
        }
    }
}

/// Waits until `done` holds for every pod of `names` on the board; fails after `timeout`.
async fn wait_all(
    board: &Board,
    names: &[String],
    what: &str,
    timeout: Duration,
    done: fn(&Seen) -> bool,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let missing = {
            let b = board.lock().expect("board");
            names.iter().filter(|n| !b.get(*n).is_some_and(done)).count()
        };
        if missing == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{missing} of {} pods not {what} after {timeout:?}", names.len());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// p50, p99 and max of samples in milliseconds, as text.
fn ms_stats(samples: &mut [f64]) -> (f64, f64, f64, String) {
    samples.sort_by(f64::total_cmp);
    let (p50, p99, max) = (percentile(samples, 50.0), percentile(samples, 99.0), *samples.last().expect("samples"));
    (p50, p99, max, format!("p50 {p50:.0} ms, p99 {p99:.0} ms, max {max:.0} ms"))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Round {
    Seq,
    Burst,
}

async fn pod_round(
    args: &Args,
    lab: &str,
    api: &Api<Pod>,
    board: &Board,
    round: Round,
    report: &mut Report,
) -> Result<()> {
    let label = match round {
        Round::Seq => "seq",
        Round::Burst => "burst",
    };
    let names: Vec<String> = (0..args.pods).map(|i| format!("{label}-{i}")).collect();
    let mut created: HashMap<String, Instant> = HashMap::new();
    let pp = PostParams::default();
    let cpu0 = (lab_cpu(lab), machine_busy_secs());
    let t0 = Instant::now();
    match round {
        Round::Seq => {
            println!("  {label}: {} creates at {}/s", args.pods, args.rate);
            for (i, name) in names.iter().enumerate() {
                tokio::time::sleep_until((t0 + Duration::from_secs_f64(i as f64 / args.rate)).into()).await;
                api.create(&pp, &pod(name, "nginx", None, None)).await.with_context(|| format!("creating {name}"))?;
                created.insert(name.clone(), Instant::now());
            }
        }
        Round::Burst => {
            println!("  {label}: {} creates at once", args.pods);
            let creates = names.iter().map(|name| {
                let (api, pp) = (api.clone(), pp.clone());
                async move {
                    api.create(&pp, &pod(name, "nginx", None, None))
                        .await
                        .with_context(|| format!("creating {name}"))?;
                    anyhow::Ok((name.clone(), Instant::now()))
                }
            });
            for r in futures::future::join_all(creates).await {
                let (name, at) = r?;
                created.insert(name, at);
            }
        }
    }
    let sent = t0.elapsed();
    wait_all(board, &names, "Running with an IP", Duration::from_secs(180), |s| s.running.is_some()).await?;
    let (cpu1, busy) = (lab_cpu(lab), machine_busy_secs() - cpu0.1);
    let kinds = ["server", "agents", "holders", "shims", "containers"];
    let used: Vec<f64> =
        kinds.iter().map(|k| cpu1.get(k).copied().unwrap_or(0.0) - cpu0.0.get(k).copied().unwrap_or(0.0)).collect();
    let lab_cpu: f64 = used.iter().sum();
    let split: Vec<String> = kinds.iter().zip(&used).map(|(k, u)| format!("{k} {u:.2} s")).collect();
    let wall = secs(t0.elapsed());
    let seen: Vec<Seen> = {
        let b = board.lock().expect("board");
        names.iter().map(|n| b[n].clone()).collect()
    };
    let since = |at: Option<Instant>, name: &String| ms(at.expect("seen").saturating_duration_since(created[name]));
    let mut start: Vec<f64> = names.iter().zip(&seen).map(|(n, s)| since(s.running, n)).collect();
    let mut sched: Vec<f64> = names.iter().zip(&seen).map(|(n, s)| since(s.scheduled, n)).collect();
    let mut ip: Vec<f64> = names.iter().zip(&seen).map(|(n, s)| since(s.ip, n)).collect();
    let last_running = seen.iter().filter_map(|s| s.running).max().expect("pods");
    let mut per_node: HashMap<String, usize> = HashMap::new();
    for s in &seen {
        *per_node.entry(s.node.clone().unwrap_or_default()).or_default() += 1;
    }
    let mut spread: Vec<String> = per_node.iter().map(|(n, c)| format!("{n}={c}")).collect();
    spread.sort();
    let (p50, p99, max, st) = ms_stats(&mut start);
    let (.., sched_st) = ms_stats(&mut sched);
    let (.., ip_st) = ms_stats(&mut ip);
    println!("    create response -> scheduled (spec.nodeName): {sched_st}");
    println!("    create response -> status.podIP set:           {ip_st}");
    println!("    create response -> Running with a podIP:       {st}");
    println!(
        "    creates sent in {:.2} s; all Running {:.2} s after the first create; pods per node: {}",
        secs(sent),
        secs(last_running - t0),
        spread.join(" ")
    );
    let details = format!("{} pods, {st}; scheduled {sched_st}; podIP {ip_st}; spread {}", args.pods, spread.join(" "));
    report.add(&format!("pods.{label}.start.p50"), p50, "ms", None, &details);
    report.add(&format!("pods.{label}.start.p99"), p99, "ms", Some(Goal::Below(1000.0)), &format!("max {max:.0} ms"));
    report.add(
        &format!("pods.{label}.cpu_per_pod"),
        lab_cpu * 1e3 / args.pods as f64,
        "ms",
        None,
        &format!(
            "CPU of the lab's processes from the first create to the last pod Running: {lab_cpu:.2} s in {wall:.2} s \
             ({}); the whole machine used {:.2} of {} cores meanwhile",
            split.join(", "),
            busy / wall,
            std::thread::available_parallelism().map_or(1, |n| n.get())
        ),
    );
    if round == Round::Burst {
        report.add(
            &format!("pods.{label}.all_running"),
            secs(last_running - t0),
            "s",
            None,
            &format!("first create sent -> last pod Running; creates took {:.2} s", secs(sent)),
        );
    }

    // Deletion: every pod at once, default grace period.
    let d0 = Instant::now();
    let deletes = names.iter().map(|name| {
        let api = api.clone();
        async move {
            api.delete(name, &DeleteParams::default()).await.with_context(|| format!("deleting {name}"))?;
            anyhow::Ok((name.clone(), Instant::now()))
        }
    });
    let mut deleted_at: HashMap<String, Instant> = HashMap::new();
    for r in futures::future::join_all(deletes).await {
        let (name, at) = r?;
        deleted_at.insert(name, at);
    }
    wait_all(board, &names, "deleted", Duration::from_secs(180), |s| s.deleted.is_some()).await?;
    let (mut gone, last_gone) = {
        let b = board.lock().expect("board");
        let gone: Vec<f64> =
            names.iter().map(|n| ms(b[n].deleted.expect("deleted").saturating_duration_since(deleted_at[n]))).collect();
        (gone, names.iter().filter_map(|n| b[n].deleted).max().expect("pods"))
    };
    let (.., gone_st) = ms_stats(&mut gone);
    println!("    delete response -> DELETED event: {gone_st}");
    report.add(
        &format!("pods.{label}.delete_all"),
        secs(last_gone - d0),
        "s",
        None,
        &format!("{} deletes at once -> last DELETED event; per pod {gone_st}", args.pods),
    );
    Ok(())
}

/// One pod pinned to each node, created as soon as `podnet up` has returned: how long until a
/// new lab runs pods on every node. Deleted with grace period 0 afterwards (not timed).
async fn first_pods(args: &Args, api: &Api<Pod>, board: &Board, report: &mut Report) -> Result<()> {
    let nodes: Vec<String> = (1..=args.nodes).map(|i| format!("node{i}")).collect();
    let names: Vec<String> = nodes.iter().map(|n| format!("first-{n}")).collect();
    let t0 = Instant::now();
    let mut created = Vec::new();
    for (name, node) in names.iter().zip(&nodes) {
        api.create(&PostParams::default(), &pod(name, "nginx", Some(node), None)).await?;
        created.push(Instant::now());
    }
    wait_all(board, &names, "Running with an IP", Duration::from_secs(120), |s| s.running.is_some()).await?;
    let starts: Vec<String> = {
        let b = board.lock().expect("board");
        names
            .iter()
            .zip(&created)
            .map(|(n, c)| format!("{n} {:.2} s", secs(b[n].running.expect("running").saturating_duration_since(*c))))
            .collect()
    };
    let all = {
        let b = board.lock().expect("board");
        names.iter().filter_map(|n| b[n].running).max().expect("pods") - t0
    };
    println!("  first pods, one per node, right after `podnet up`: {}", starts.join(", "));
    report.add(
        "pods.first_after_up",
        secs(all),
        "s",
        None,
        &format!("one pod per node created when `podnet up` returned -> all Running: {}", starts.join(", ")),
    );
    let dp = DeleteParams { grace_period_seconds: Some(0), ..Default::default() };
    for name in &names {
        api.delete(name, &dp).await?;
    }
    wait_all(board, &names, "deleted", Duration::from_secs(120), |s| s.deleted.is_some()).await
}

async fn pods_phase(args: &Args, report: &mut Report) -> Result<()> {
    println!(
        "== pods: {} nginx pods in a {}-node lab, sequential at {}/s then a burst",
        args.pods, args.nodes, args.rate
    );
    let mut lab = Lab::new(args, "p");
    let nodes = args.nodes.to_string();
    let took = lab.up_retrying(&["--nodes", &nodes], 3)?;
    println!("  lab {} up in {:.2} s", lab.name, secs(took));
    let result = async {
        let client = lab.client().await?;
        let api: Api<Pod> = Api::namespaced(client, "default");
        let board: Board = Arc::default();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let watch = tokio::spawn(watch_pods(api.clone(), board.clone(), tx));
        let result = async {
            if rx.await.is_err() {
                // The watch task ended before it was open: its error says why.
                return Err(anyhow::anyhow!("the pod watch ended"));
            }
            first_pods(args, &api, &board, report).await?;
            pod_round(args, &lab.name, &api, &board, Round::Seq, report).await?;
            pod_round(args, &lab.name, &api, &board, Round::Burst, report).await
        }
        .await;
        watch.abort();
        match watch.await {
            Ok(Err(e)) => Err(e),
            _ => result,
        }
    }
    .await;
    // Down here (not on drop) so that a failure's logs are copied too.
    lab.down()?;
    result
}

// ---------------------------------------------------------------------------------------------
// Phase 3: iperf3.

/// One iperf3 run as the client reports it.
#[derive(Clone, Copy)]
struct Iperf {
    gbps: f64,
    retransmits: u64,
    cpu_sender: f64,
    cpu_receiver: f64,
}

/// Runs the iperf3 client `cmd` (which must end with its arguments up to `-J`), retrying while
/// the server is not listening yet.
fn iperf_client(mut make: impl FnMut() -> Command) -> Result<Iperf> {
    let mut last = String::new();
    let mut incomplete = 0;
    for _ in 0..100 {
        let out: Output = make().stdout(Stdio::piped()).stderr(Stdio::piped()).output()?;
        let json: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let end = &json["end"];
        // `iperf3 -J` reports a failure (e.g. "unable to connect to server: Connection refused"
        // while the server is still starting) in `error`, with an empty `end`, and through
        // `podnet exec` its exit status is not always non-zero: `error` decides.
        if out.status.success() && json["error"].is_null() {
            let Some(bps) = end["sum_received"]["bits_per_second"].as_f64() else {
                incomplete += 1;
                ensure!(incomplete < 3, "iperf3 reported no sum_received.bits_per_second: {end}");
                continue;
            };
            return Ok(Iperf {
                gbps: bps / 1e9,
                retransmits: end["sum_sent"]["retransmits"].as_u64().unwrap_or(0),
                cpu_sender: end["cpu_utilization_percent"]["host_total"].as_f64().unwrap_or(0.0),
                cpu_receiver: end["cpu_utilization_percent"]["remote_total"].as_f64().unwrap_or(0.0),
            });
        }
        let error = json["error"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| format!("{} {}{}", out.status, text(&out.stdout).trim(), text(&out.stderr).trim()));
        if !error.contains("unable to connect") && !error.contains("Connection refused") {
            bail!("iperf3 client failed: {error}");
        }
        last = error;
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("iperf3 client: the server never answered: {last}")
}

/// A server started for one run (`iperf3 -s -1`), killed on drop if it did not exit.
struct OneShot(Child);

impl OneShot {
    fn start(mut cmd: Command) -> Result<OneShot> {
        Ok(OneShot(cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().context("starting iperf3 -s")?))
    }
}

impl Drop for OneShot {
    fn drop(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run_ok(cmd: &mut Command) -> Result<String> {
    let out = cmd.stdin(Stdio::null()).output().with_context(|| format!("running {cmd:?}"))?;
    ensure!(out.status.success(), "{cmd:?} failed: {}{}", text(&out.stdout), text(&out.stderr));
    Ok(text(&out.stdout))
}

fn ip(args: &[&str]) -> Result<String> {
    run_ok(Command::new("ip").args(args))
}

/// Two namespaces made here joined by a bare veth pair; deleted on drop.
struct VethPair {
    a: String,
    b: String,
}

const VETH_A: &str = "10.250.0.1";
const VETH_B: &str = "10.250.0.2";

impl VethPair {
    fn create(prefix: &str) -> Result<VethPair> {
        let pair = VethPair { a: format!("{prefix}-veth-a"), b: format!("{prefix}-veth-b") };
        ip(&["netns", "add", &pair.a])?;
        ip(&["netns", "add", &pair.b])?;
        ip(&["-n", &pair.a, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", &pair.b])?;
        for (ns, dev, addr) in [(&pair.a, "va", VETH_A), (&pair.b, "vb", VETH_B)] {
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            ip(&["-n", ns, "addr", "add", &format!("{addr}/30"), "dev", dev])?;
            ip(&["-n", ns, "link", "set", dev, "up"])?;
        }
        Ok(pair)
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).stderr(Stdio::null()).status();
        }
    }
}

/// Waits until pod `name` runs with an IP; its IP.
async fn pod_ip(api: &Api<Pod>, name: &str) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let p = api.get(name).await?;
        let st = p.status.as_ref();
        if st.and_then(|s| s.phase.as_deref()) == Some("Running") {
            if let Some(ip) = st.and_then(|s| s.pod_ip.clone()).filter(|ip| !ip.is_empty()) {
                return Ok(ip);
            }
        }
        ensure!(Instant::now() < deadline, "pod {name} not Running after 60 s: {:?}", p.status);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The MTU of the first `mtu N` in `ip link` output.
fn mtu_of(ip_link: &str) -> String {
    ip_link.split_whitespace().skip_while(|w| *w != "mtu").nth(1).unwrap_or("?").to_string()
}

/// A 2-node lab with an iperf3 server pod on node1 and client pods on node1 and node2.
struct IperfLab {
    lab: Lab,
    server_ip: String,
    pod_mtu: String,
}

fn iperf_lab(args: &Args, rt: &tokio::runtime::Runtime, letter: &str, backend: &str) -> Result<IperfLab> {
    let mut lab = Lab::new(args, letter);
    let took = lab.up_retrying(&["--nodes", "2", "--backend", backend], 3)?;
    println!("  lab {} ({backend}, 2 nodes) up in {:.2} s", lab.name, secs(took));
    let server_ip = rt.block_on(async {
        let api: Api<Pod> = Api::namespaced(lab.client().await?, "default");
        let pp = PostParams::default();
        api.create(&pp, &pod("srv", "busybox", Some("node1"), Some(&["iperf3", "-s"]))).await?;
        api.create(&pp, &pod("c1", "busybox", Some("node1"), Some(&["sleep", "infinity"]))).await?;
        api.create(&pp, &pod("c2", "busybox", Some("node2"), Some(&["sleep", "infinity"]))).await?;
        pod_ip(&api, "c1").await?;
        pod_ip(&api, "c2").await?;
        pod_ip(&api, "srv").await
    })?;
    let pod_mtu = mtu_of(&run_ok(&mut lab.exec("c1", &["ip", "-o", "link", "show", "eth0"]))?);
    Ok(IperfLab { lab, server_ip, pod_mtu })
}

impl IperfLab {
    fn pod_to_pod(&self, client: &str, secs: &str) -> Result<Iperf> {
        iperf_client(|| self.lab.exec(client, &["iperf3", "-c", &self.server_ip, "-t", secs, "-J"]))
    }

    fn node_to_node(&self, secs: &str) -> Result<Iperf> {
        let _server = OneShot::start(self.lab.node_exec("node1", &["iperf3", "-s", "-1"]))?;
        let node1 = podnet_lab::spec::node_ip(1).to_string();
        iperf_client(|| self.lab.node_exec("node2", &["iperf3", "-c", &node1, "-t", secs, "-J"]))
    }
}

fn iperf_phase(args: &Args, rt: &tokio::runtime::Runtime, report: &mut Report) -> Result<()> {
    println!(
        "== iperf: iperf3 TCP, 1 stream, {} s, {} runs per path, interleaved round by round",
        args.iperf_secs, args.iperf_runs
    );
    let veth = VethPair::create(&args.prefix)?;
    let x = iperf_lab(args, rt, "x", "vxlan")?;
    let g = iperf_lab(args, rt, "g", "host-gw")?;
    let node_mtu = mtu_of(&run_ok(&mut x.lab.node_exec("node1", &["ip", "-o", "link", "show", "eth0"]))?);
    let secs_arg = args.iperf_secs.to_string();
    let s = secs_arg.as_str();
    let paths = [
        "veth",
        "pod_same_node",
        "node_node.vxlan_lab",
        "pod_cross.vxlan",
        "pod_same_node.hostgw_lab",
        "node_node.hostgw_lab",
        "pod_cross.hostgw",
    ];
    let mut runs: HashMap<&str, Vec<Iperf>> = HashMap::new();
    for round in 0..args.iperf_runs {
        for path in paths {
            let r = match path {
                "veth" => {
                    let _server = OneShot::start({
                        let mut c = Command::new("ip");
                        c.args(["netns", "exec", &veth.a, "iperf3", "-s", "-1"]);
                        c
                    })?;
                    iperf_client(|| {
                        let mut c = Command::new("ip");
                        c.args(["netns", "exec", &veth.b, "iperf3", "-c", VETH_A, "-t", s, "-J"]);
                        c
                    })?
                }
                "pod_same_node" => x.pod_to_pod("c1", s)?,
                "node_node.vxlan_lab" => x.node_to_node(s)?,
                "pod_cross.vxlan" => x.pod_to_pod("c2", s)?,
                "pod_same_node.hostgw_lab" => g.pod_to_pod("c1", s)?,
                "node_node.hostgw_lab" => g.node_to_node(s)?,
                "pod_cross.hostgw" => g.pod_to_pod("c2", s)?,
                _ => unreachable!(),
            };
            println!(
                "  round {} {path:<22} {:>6.2} Gbit/s  retransmits {:<5} cpu sender {:.0}% receiver {:.0}%",
                round + 1,
                r.gbps,
                r.retransmits,
                r.cpu_sender,
                r.cpu_receiver
            );
            runs.entry(path).or_default().push(r);
        }
    }
    let med = |path: &str| median(&runs[path].iter().map(|r| r.gbps).collect::<Vec<_>>());
    let details = |path: &str, mtu: &str| {
        let r = &runs[path];
        let all: Vec<String> = r.iter().map(|r| format!("{:.2}", r.gbps)).collect();
        let retr: u64 = r.iter().map(|r| r.retransmits).sum();
        let cs = median(&r.iter().map(|r| r.cpu_sender).collect::<Vec<_>>());
        let cr = median(&r.iter().map(|r| r.cpu_receiver).collect::<Vec<_>>());
        format!("runs {} Gbit/s; MTU {mtu}; retransmits {retr}; cpu sender {cs:.0}% receiver {cr:.0}%", all.join(" "))
    };
    let (pod_mtu_x, pod_mtu_g) = (x.pod_mtu.clone(), g.pod_mtu.clone());
    for (path, mtu) in [
        ("veth", "1500"),
        ("pod_same_node", pod_mtu_x.as_str()),
        ("pod_same_node.hostgw_lab", pod_mtu_g.as_str()),
        ("node_node.hostgw_lab", node_mtu.as_str()),
        ("pod_cross.hostgw", pod_mtu_g.as_str()),
        ("node_node.vxlan_lab", node_mtu.as_str()),
        ("pod_cross.vxlan", pod_mtu_x.as_str()),
    ] {
        report.add(&format!("iperf.{path}"), med(path), "Gbit/s", None, &details(path, mtu));
    }
    for (ratio, num, den, goal) in [
        ("ratio.pod_same_node/veth", "pod_same_node", "veth", 0.9),
        ("ratio.hostgw/node_node", "pod_cross.hostgw", "node_node.hostgw_lab", 0.9),
        ("ratio.vxlan/node_node", "pod_cross.vxlan", "node_node.vxlan_lab", 0.6),
    ] {
        report.add(
            ratio,
            med(num) / med(den),
            "x",
            Some(Goal::AtLeast(goal)),
            &format!("median {:.2} / {:.2} Gbit/s", med(num), med(den)),
        );
    }
    drop((g, x, veth));
    Ok(())
}

fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(is_root(), "lab-bench needs root (podnet up, network namespaces)");
    ensure!(
        !args.prefix.is_empty() && args.prefix.len() <= 19,
        "--prefix {:?}: 1 to 19 characters (lab names are at most 20)",
        args.prefix
    );
    ensure!(args.up_runs > 0 && args.pods > 0 && args.iperf_runs > 0 && args.rate > 0.0, "counts must be positive");
    std::fs::create_dir_all(&args.work).with_context(|| format!("creating {}", args.work.display()))?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut report = Report::default();
    for phase in &args.phases {
        match phase {
            Phase::Up => up_phase(&args, &mut report)?,
            Phase::Pods => rt.block_on(pods_phase(&args, &mut report))?,
            Phase::Iperf => iperf_phase(&args, &rt, &mut report)?,
        }
    }
    println!("\n== lab-bench summary");
    for line in &report.0 {
        println!("{line}");
    }
    Ok(())
}

fn is_root() -> bool {
    // The effective uid, from /proc (no libc call needed).
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0")))
        .unwrap_or(false)
}
