//! The service proxy's benchmark (run by `bench/proxy.sh`, which builds the namespaces, starts
//! the listeners and cleans up): podnet's nftables and iptables modes driven directly through
//! the `Mode` trait with synthetic service ports — S ClusterIP services × 10 endpoints, as in
//! `/work/shared/anchors/proxy-scale.md` — in throw-away network namespaces.
//!
//! Topology (made by bench/proxy.sh; TAG is unique per run):
//!   TAG-srv                 the "pods": 10.244.255.1–11/32 on lo (the probe service's endpoints
//!                           and a spare), an accept-and-close listener on :8080, iperf3 on :5201
//!   TAG-node-MODE-S         a "node" per mode and size, where the mode programs its rules; it
//!                           forwards between its client and TAG-srv (10.244.0.0/16 via TAG-srv)
//!   TAG-cli-MODE-S          a "pod" on that node (default route via the node), whose connections
//!                           to the cluster IP are DNATed by the node's PREROUTING rules
//!   TAG-node-floor, TAG-cli-floor   the same without any proxy rule (connects go to the pod IP)
//!
//! Measures, per mode and size S (1, 1,000, 10,000):
//!   full      wall time of `sync(ports, node, None)` of a new mode in the empty node namespace
//!             (rendering, the kernel transactions, the conntrack check): the first full sync
//!   resync    the same mode's next full sync over the loaded rules (the periodic full sync)
//!   change    wall time of `sync(ports', node, Some({probe}))`, the probe service's endpoint
//!             10.244.255.10 replaced by 10.244.255.11 and back (median and p90 of N changes);
//!             what the proxy spends between an API change reaching it and the rules being in
//!             the kernel
//!   scaling   the same with the probe's endpoint count changed (an 11th endpoint, 10.244.255.12,
//!             added and removed): in the nftables mode its balancing rule is rewritten too
//!   connect   TCP connect latency from the client to the probe's cluster IP through the node
//!             (p50 / p99, µs), measured by the anchors' connlat.c interleaved across namespaces
//!   iperf3    throughput client → ClusterIP vs client → pod IP through the same node
//!
//! End to end (`proxy-bench e2e`, run inside a namespace of its own where a `podnet server`
//! listens): creates S Services with their EndpointSlices through the API, starts the real
//! `podnet proxy` (nftables) there, and measures
//!   e2e-initial  proxy start → the probe service's chain in the kernel (lists, model, full sync)
//!   e2e-change   an EndpointSlice write (the probe's 10th endpoint replaced by a new address)
//!                → that endpoint in the kernel's endpoint map, polled over netlink every 0.2 ms
//!
//! Usage: proxy-bench --tag TAG --connlat PATH [--sizes 1,1000,10000] [--modes nftables,iptables]
//!        [--changes 20] [--budget 120] [--rounds 3 --count 2000 --warmup 200 --block 20]
//!        [--iperf-seconds 4 --iperf-runs 5] [--json FILE]
//!        proxy-bench e2e --kubeconfig FILE --podnet BIN [--services 1000] [--changes 20]
//! Modes: `nftables` (netlink), `nft-program` (the same mode applied with `nft -f`, the state
//! before the netlink work), `iptables`.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use podnet_netlink::{run_in, Netns};
use podnet_proxy::iptables::IptablesMode;
use podnet_proxy::nftables::NftablesMode;
use podnet_proxy::{Changed, Endpoint, Mode, NodeContext, Protocol, ServicePort, ServicePortName};
use serde_json::{json, Value};

const GOAL_FULL_10K_S: f64 = 2.0;
const GOAL_CHANGE_MS: f64 = 50.0;
const GOAL_CONNECT_RATIO: f64 = 1.1;
const GOAL_THROUGHPUT_RATIO: f64 = 0.95;
const IPERF_CLUSTER_IP: &str = "10.96.255.1";
const IPERF_POD_IP: &str = "10.244.255.1";

struct Args {
    tag: String,
    connlat: String,
    sizes: Vec<usize>,
    modes: Vec<String>,
    changes: usize,
    budget: Duration,
    rounds: usize,
    count: usize,
    warmup: usize,
    block: usize,
    iperf_seconds: u32,
    iperf_runs: usize,
    resync: bool,
    json: Option<String>,
}

fn parse_args() -> Args {
    let mut a = Args {
        tag: String::new(),
        connlat: String::new(),
        sizes: vec![1, 1000, 10000],
        modes: vec!["nftables".into(), "iptables".into()],
        changes: 20,
        budget: Duration::from_secs(120),
        rounds: 3,
        count: 2000,
        warmup: 200,
        block: 20,
        iperf_seconds: 4,
        iperf_runs: 5,
        resync: true,
        json: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut v = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--tag" => a.tag = v(),
            "--connlat" => a.connlat = v(),
            "--sizes" => a.sizes = v().split(',').map(|s| s.parse().expect("a size")).collect(),
            "--modes" => a.modes = v().split(',').map(str::to_string).collect(),
            "--changes" => a.changes = v().parse().expect("a number"),
            "--budget" => a.budget = Duration::from_secs(v().parse().expect("seconds")),
            "--rounds" => a.rounds = v().parse().expect("a number"),
            "--count" => a.count = v().parse().expect("a number"),
            "--warmup" => a.warmup = v().parse().expect("a number"),
            "--block" => a.block = v().parse().expect("a number"),
            "--iperf-seconds" => a.iperf_seconds = v().parse().expect("seconds"),
            "--iperf-runs" => a.iperf_runs = v().parse().expect("a number"),
            "--resync" => a.resync = v() != "0",
            "--json" => a.json = Some(v()),
            other => panic!("unknown flag {other}"),
        }
    }
    assert!(!a.tag.is_empty(), "--tag is required");
    a
}

fn endpoint(ip: IpAddr, port: u16) -> Endpoint {
    Endpoint { ip, port, node_name: None, ready: true, serving: true, terminating: false, local: false }
}

fn service(name: String, cluster_ip: IpAddr, port: u16, endpoints: Vec<Endpoint>) -> ServicePort {
    ServicePort::cluster_ip(
        ServicePortName { namespace: "bench".into(), name, port: "http".into(), protocol: Protocol::Tcp },
        cluster_ip,
        port,
        endpoints,
    )
}

/// The probe service's cluster IP for `s` services (the last one).
fn probe_ip(s: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 0, 16)) + s as u32 - 1)
}

/// `s` services × 10 endpoints, as the anchors' generator makes them: service i has cluster IP
/// 10.96.0.16 + i, port 80; the last one is the probe, with endpoints 10.244.255.1–10:8080
/// (`spare`: 10.244.255.11 instead of .10); the others' endpoints are unique ip:port pairs in
/// 10.244.0.1–10.244.254.255. Plus the iperf3 service (10.96.255.1:5201 → 10.244.255.1:5201).
fn ports(s: usize, spare: bool) -> Vec<ServicePort> {
    ports_with(s, spare, false)
}

/// [`ports`], the probe with an 11th endpoint (10.244.255.12) when `grown`.
fn ports_with(s: usize, spare: bool, grown: bool) -> Vec<ServicePort> {
    let mut out = Vec::with_capacity(s + 1);
    for i in 0..s {
        let ip = IpAddr::V4(Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 0, 16)) + i as u32));
        let eps: Vec<Endpoint> = if i == s - 1 {
            let count = if grown { 11 } else { 10 };
            (1..=count)
                .map(|j| {
                    let last = match j {
                        10 if spare => 11,
                        11 => 12,
                        j => j,
                    };
                    endpoint(IpAddr::V4(Ipv4Addr::new(10, 244, 255, last)), 8080)
                })
                .collect()
        } else {
            (0..10)
                .map(|j| {
                    let n = i * 10 + j;
                    let slot = n % (255 * 254);
                    let ip = Ipv4Addr::new(10, 244, (slot / 255) as u8, (slot % 255 + 1) as u8);
                    endpoint(IpAddr::V4(ip), 8080 + (n / (255 * 254)) as u16)
                })
                .collect()
        };
        out.push(service(format!("svc-{i:05}"), ip, 80, eps));
    }
    let iperf = vec![endpoint(IPERF_POD_IP.parse().unwrap(), 5201)];
    out.push(service("iperf".into(), IPERF_CLUSTER_IP.parse().unwrap(), 5201, iperf));
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

fn node() -> NodeContext {
    NodeContext { name: "bench-node".into(), addresses: vec![], cluster_cidrs: vec!["10.0.0.0/8".parse().unwrap()] }
}

fn new_mode(name: &str) -> Box<dyn Mode> {
    match name {
        "nftables" => Box::new(NftablesMode::new()),
        "nft-program" => Box::new(NftablesMode::with_program("nft")),
        "iptables" => Box::new(IptablesMode::new()),
        other => panic!("unknown mode {other}"),
    }
}

/// The children of this process (the `nft`/`iptables-restore` a sync runs).
fn children() -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for t in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
                out.extend(s.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
            }
        }
    }
    out
}

/// Runs one sync of `mode` in `ns` on a thread of its own; gives up after `budget` (killing the
/// program the sync runs, by its pid) and then returns the mode only once the sync returned.
fn sync_in(
    ns: &Netns,
    mode: Box<dyn Mode>,
    ports: Vec<ServicePort>,
    changed: Changed,
    budget: Duration,
) -> (Box<dyn Mode>, Result<Duration, String>) {
    let ns = ns.try_clone().expect("clone the namespace handle");
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        let mut mode = mode;
        let node = node();
        // Timed inside the namespace's thread: the thread's start and `setns` are not the mode's.
        let (r, took) = run_in(&ns, || {
            let start = Instant::now();
            let r = mode.sync(&ports, &node, &changed);
            (r, start.elapsed())
        })
        .expect("enter the node namespace");
        let _ = tx.send(());
        if let Ok(stats) = &r {
            if std::env::var_os("PROXY_BENCH_VERBOSE").is_some() {
                eprintln!("[proxy-bench]   sync took {took:?}: {stats:?}");
            }
        }
        (mode, r.map(|_| took).map_err(|e| e.to_string()))
    });
    match rx.recv_timeout(budget) {
        Ok(()) => handle.join().expect("the sync thread"),
        Err(_) => {
            // Too slow: end what it runs (our own children, by pid) and wait for it to return.
            let started = Instant::now();
            while !handle.is_finished() {
                for pid in children() {
                    let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
                }
                std::thread::sleep(Duration::from_millis(200));
                if started.elapsed() > Duration::from_secs(60) {
                    panic!("the sync does not return after its program was killed");
                }
            }
            let (mode, _) = handle.join().expect("the sync thread");
            (mode, Err(format!("did not finish within {} s", budget.as_secs())))
        }
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2]
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if v.is_empty() {
        return f64::NAN;
    }
    let k = ((p / 100.0 * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
    v[k]
}

/// Figures of one mode and size.
#[derive(Default)]
struct Scale {
    full: Option<Result<f64, String>>,
    resync: Option<Result<f64, String>>,
    restart: Option<Result<f64, String>>,
    changes: Vec<f64>,
    /// Changes of the probe's endpoint count (10 ↔ 11).
    scalings: Vec<f64>,
    change_err: Option<String>,
    loaded: bool,
}

fn ns_name(tag: &str, role: &str, mode: &str, s: usize) -> String {
    format!("{tag}-{role}-{mode}-{s}")
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("e2e") {
        return e2e::main();
    }
    let args = parse_args();
    let mut results = json!({"date": chrono_like_now(), "loadavg_start": loadavg(), "scale": {}, "connect": {}});
    let mut scale: BTreeMap<(String, usize), Scale> = BTreeMap::new();

    // 1. Full sync, re-sync and single changes, per mode and size.
    for mode_name in &args.modes {
        for &s in &args.sizes {
            let ns = Netns::open_named(&ns_name(&args.tag, "node", mode_name, s)).expect("the node namespace");
            let mut f = Scale::default();
            let base = ports(s, false);
            eprintln!("[proxy-bench] {mode_name} S={s}: full sync (load {})", loadavg());
            let (mode, r) = sync_in(&ns, new_mode(mode_name), base.clone(), None, args.budget);
            f.full = Some(r.clone().map(|d| d.as_secs_f64()));
            let mut mode = mode;
            if let Ok(took) = &r {
                f.loaded = true;
                eprintln!("[proxy-bench] {mode_name} S={s}: full {:.3} s", took.as_secs_f64());
                if args.resync {
                    let (m, r2) = sync_in(&ns, mode, base.clone(), None, args.budget);
                    mode = m;
                    f.resync = Some(r2.map(|d| d.as_secs_f64()));
                }
                let probe = base.iter().find(|p| p.cluster_ips[0] == IpAddr::V4(probe_ip(s))).unwrap().id.clone();
                let changed: Changed = Some([probe].into());
                // An endpoint replaced, then the endpoint count changed (its balancing rule is
                // rewritten too); the probe left as loaded (endpoints .1–.10) for the connect test.
                for (grown, times) in [(false, &mut f.changes), (true, &mut f.scalings)] {
                    for i in 0..args.changes {
                        let next = if grown { ports_with(s, false, i % 2 == 0) } else { ports(s, i % 2 == 0) };
                        let (m, r) = sync_in(&ns, mode, next, changed.clone(), args.budget);
                        mode = m;
                        match r {
                            Ok(d) => times.push(d.as_secs_f64() * 1000.0),
                            Err(e) => {
                                f.change_err = Some(e);
                                break;
                            }
                        }
                    }
                    if args.changes % 2 == 1 {
                        let (m, _) = sync_in(&ns, mode, base.clone(), changed.clone(), args.budget);
                        mode = m;
                    }
                }
                if args.resync {
                    // A restarted proxy: a new mode's full sync over the loaded rules.
                    eprintln!("[proxy-bench] {mode_name} S={s}: restart");
                    drop(mode);
                    let (m, r3) = sync_in(&ns, new_mode(mode_name), base.clone(), None, args.budget);
                    mode = m;
                    f.restart = Some(r3.map(|d| d.as_secs_f64()));
                }
            } else if let Err(e) = &r {
                eprintln!("[proxy-bench] {mode_name} S={s}: {e}");
            }
            drop(mode);
            scale.insert((mode_name.clone(), s), f);
        }
    }

    // 2. Connect latency, interleaved over every loaded node and the floor.
    let mut targets: Vec<(String, String, String)> =
        vec![("floor (no rules, pod IP)".into(), format!("{}-cli-floor", args.tag), "10.244.255.1".into())];
    for mode_name in &args.modes {
        for &s in &args.sizes {
            if scale[&(mode_name.clone(), s)].loaded {
                targets.push((
                    format!("{mode_name} S={s}"),
                    ns_name(&args.tag, "cli", mode_name, s),
                    probe_ip(s).to_string(),
                ));
            }
        }
    }
    let mut connect: BTreeMap<String, (Vec<f64>, Vec<f64>, usize)> = BTreeMap::new();
    if !args.connlat.is_empty() {
        for round in 0..args.rounds {
            eprintln!("[proxy-bench] connect latency round {} of {} (load {})", round + 1, args.rounds, loadavg());
            let mut cmd = Command::new(&args.connlat);
            cmd.args([args.count.to_string(), args.warmup.to_string(), args.block.to_string()]);
            for (_, ns, ip) in &targets {
                cmd.args([
                    format!("/run/netns/{ns}"),
                    ip.clone(),
                    if ns.ends_with("floor") { "8080" } else { "80" }.into(),
                ]);
            }
            let out = cmd.output().expect("run connlat");
            if !out.status.success() {
                eprintln!("[proxy-bench] connlat failed: {}", String::from_utf8_lossy(&out.stderr));
                continue;
            }
            for (line, (label, _, _)) in String::from_utf8_lossy(&out.stdout).lines().zip(&targets) {
                let v: Value = serde_json::from_str(line).expect("connlat's JSON");
                let e = connect.entry(label.clone()).or_default();
                e.0.push(v["p50"].as_f64().unwrap_or(f64::NAN));
                e.1.push(v["p99"].as_f64().unwrap_or(f64::NAN));
                e.2 += v["fails"].as_u64().unwrap_or(0) as usize;
            }
        }
    }

    // 3. Throughput through a ClusterIP and to the pod IP directly, alternating.
    let mut iperf: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let iperf_node =
        args.sizes.iter().rev().find(|s| scale.get(&("nftables".to_string(), **s)).is_some_and(|f| f.loaded)).copied();
    if let (Some(s), true) = (iperf_node, args.iperf_runs > 0) {
        let cli = Netns::open_named(&ns_name(&args.tag, "cli", "nftables", s)).expect("the client namespace");
        for run in 0..args.iperf_runs {
            for (label, ip) in [("pod IP", IPERF_POD_IP), ("ClusterIP", IPERF_CLUSTER_IP)] {
                eprintln!("[proxy-bench] iperf3 {label} run {} (load {})", run + 1, loadavg());
                let secs = args.iperf_seconds.to_string();
                let out =
                    run_in(&cli, || Command::new("iperf3").args(["-c", ip, "-p", "5201", "-t", &secs, "-J"]).output())
                        .expect("enter the client namespace")
                        .expect("run iperf3");
                let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
                match v["end"]["sum_received"]["bits_per_second"].as_f64() {
                    Some(bps) => iperf.entry(label).or_default().push(bps / 1e9),
                    None => eprintln!("[proxy-bench] iperf3 failed: {}", String::from_utf8_lossy(&out.stdout)),
                }
            }
        }
    }

    // 4. The table.
    let load_end = loadavg();
    println!();
    println!(
        "== podnet service proxy, {} CPUs, load average {} at start, {} at end",
        cpus(),
        results["loadavg_start"].as_str().unwrap_or(""),
        load_end
    );
    println!("| mode | services | full sync s | re-sync s | restart sync s | one change ms (median / p90, n) | one scaling change ms (median / p90, n) | connect p50 / p99 µs |");
    println!("|---|---|---|---|---|---|---|---|");
    let fmt_s = |r: &Option<Result<f64, String>>| match r {
        Some(Ok(v)) => format!("{v:.3}"),
        Some(Err(e)) => e.clone(),
        None => "–".into(),
    };
    for ((mode_name, s), f) in &scale {
        let mut ch = f.changes.clone();
        let change = if ch.is_empty() {
            f.change_err.clone().unwrap_or_else(|| "–".into())
        } else {
            format!("{:.1} / {:.1} ({})", median(&mut ch.clone()), pct(&mut ch, 90.0), f.changes.len())
        };
        let mut sc = f.scalings.clone();
        let scaling = if sc.is_empty() {
            "–".to_string()
        } else {
            format!("{:.1} / {:.1} ({})", median(&mut sc.clone()), pct(&mut sc, 90.0), f.scalings.len())
        };
        let label = format!("{mode_name} S={s}");
        let conn = connect
            .get(&label)
            .map(|(p50, p99, _)| format!("{:.1} / {:.1}", median(&mut p50.clone()), median(&mut p99.clone())))
            .unwrap_or_else(|| "–".into());
        println!(
            "| {mode_name} | {s} | {} | {} | {} | {change} | {scaling} | {conn} |",
            fmt_s(&f.full),
            fmt_s(&f.resync),
            fmt_s(&f.restart)
        );
        results["scale"][format!("{mode_name}/{s}")] = json!({
            "full_s": f.full.clone().and_then(|r| r.ok()), "full_err": f.full.clone().and_then(|r| r.err()),
            "resync_s": f.resync.clone().and_then(|r| r.ok()), "resync_err": f.resync.clone().and_then(|r| r.err()),
            "restart_s": f.restart.clone().and_then(|r| r.ok()), "restart_err": f.restart.clone().and_then(|r| r.err()),
            "changes_ms": f.changes, "scalings_ms": f.scalings, "change_err": f.change_err,
        });
    }
    if let Some((p50, p99, _)) = connect.get("floor (no rules, pod IP)") {
        println!(
            "| floor: no rules, to the pod IP | – | – | – | – | – | – | {:.1} / {:.1} |",
            median(&mut p50.clone()),
            median(&mut p99.clone())
        );
    }
    for (label, (p50, p99, fails)) in &connect {
        results["connect"][label] = json!({"p50_rounds": p50, "p99_rounds": p99, "fails": fails});
    }

    println!();
    println!("== goals");
    let mut verdicts = Vec::new();
    let mut goal = |what: String, value: String, ok: Option<bool>| {
        let v = match ok {
            Some(true) => "MET",
            Some(false) => "MISSED",
            None => "not measured",
        };
        println!("  {what}: {value} -> {v}");
        verdicts.push(json!({"goal": what, "value": value, "verdict": v}));
    };
    for mode_name in &args.modes {
        if let Some(f) = scale.get(&(mode_name.clone(), 10000)) {
            for (which, r) in [("full sync", &f.full), ("re-sync", &f.resync), ("restart sync", &f.restart)] {
                match r {
                    Some(Ok(v)) => goal(
                        format!("{mode_name} {which} of 10,000 services < {GOAL_FULL_10K_S} s"),
                        format!("{v:.3} s ({:.2} of the goal)", v / GOAL_FULL_10K_S),
                        Some(*v < GOAL_FULL_10K_S),
                    ),
                    Some(Err(e)) => goal(
                        format!("{mode_name} {which} of 10,000 services < {GOAL_FULL_10K_S} s"),
                        e.clone(),
                        Some(false),
                    ),
                    None => {}
                }
            }
        }
        for &s in &args.sizes {
            if let Some(f) = scale.get(&(mode_name.clone(), s)) {
                for (which, changes) in [("one change", &f.changes), ("one scaling change", &f.scalings)] {
                    if changes.is_empty() {
                        continue;
                    }
                    let mut ch = changes.clone();
                    let (m, p90) = (median(&mut ch.clone()), pct(&mut ch, 90.0));
                    goal(
                        format!("{mode_name} {which} with {s} services < {GOAL_CHANGE_MS} ms"),
                        format!("median {m:.1} ms, p90 {p90:.1} ms ({:.2} of the goal)", m / GOAL_CHANGE_MS),
                        Some(m < GOAL_CHANGE_MS),
                    );
                }
            }
        }
    }
    let big = args.sizes.iter().copied().max().unwrap_or(1);
    for mode_name in &args.modes {
        if let (Some(one), Some(many)) =
            (connect.get(&format!("{mode_name} S=1")), connect.get(&format!("{mode_name} S={big}")))
        {
            let (a, b) = (median(&mut one.0.clone()), median(&mut many.0.clone()));
            let (a99, b99) = (median(&mut one.1.clone()), median(&mut many.1.clone()));
            goal(
                format!("{mode_name} connect latency with {big} services <= {GOAL_CONNECT_RATIO} x with 1"),
                format!("p50 {b:.1} / {a:.1} µs = {:.3}; p99 {b99:.1} / {a99:.1} µs = {:.3}", b / a, b99 / a99),
                if mode_name == "nftables" { Some(b / a <= GOAL_CONNECT_RATIO) } else { None },
            );
        }
    }
    if let (Some(direct), Some(cip)) = (iperf.get("pod IP"), iperf.get("ClusterIP")) {
        let (d, c) = (median(&mut direct.clone()), median(&mut cip.clone()));
        goal(
            format!(
                "ClusterIP throughput >= {:.0}% of the pod IP's (nftables, S={})",
                GOAL_THROUGHPUT_RATIO * 100.0,
                iperf_node.unwrap_or(0)
            ),
            format!(
                "{c:.2} / {d:.2} Gbit/s = {:.3} (medians of {} runs of {} s)",
                c / d,
                direct.len(),
                args.iperf_seconds
            ),
            Some(c / d >= GOAL_THROUGHPUT_RATIO),
        );
        results["iperf3_gbps"] = json!({"pod_ip": direct, "cluster_ip": cip});
    }
    results["goals"] = json!(verdicts);
    results["loadavg_end"] = json!(load_end);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&results).unwrap()).expect("write the results");
    }
}

fn cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

fn chrono_like_now() -> String {
    let out = Command::new("date").arg("-Is").output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    out.unwrap_or_default()
}

/// The end-to-end measurement: API write → rule in the kernel, with the real `podnet proxy`.
mod e2e {
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    use futures::{stream, StreamExt};
    use k8s_openapi::api::core::v1::Service;
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use kube::api::{Api, Patch, PatchParams, PostParams};
    use podnet_proxy::nftables::netlink::Netlink;
    use podnet_proxy::nftables::{names, Family};
    use podnet_proxy::{Protocol, ServicePortName};
    use serde_json::json;

    struct Args {
        kubeconfig: String,
        podnet: String,
        services: usize,
        changes: usize,
    }

    fn args() -> Args {
        let mut a = Args { kubeconfig: String::new(), podnet: String::new(), services: 1000, changes: 20 };
        let mut it = std::env::args().skip(2);
        while let Some(flag) = it.next() {
            let mut v = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
            match flag.as_str() {
                "--kubeconfig" => a.kubeconfig = v(),
                "--podnet" => a.podnet = v(),
                "--services" => a.services = v().parse().expect("a number"),
                "--changes" => a.changes = v().parse().expect("a number"),
                other => panic!("unknown flag {other}"),
            }
        }
        a
    }

    fn name(i: usize) -> String {
        format!("svc-{i:05}")
    }

    fn cluster_ip(i: usize) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 0, 16)) + i as u32)
    }

    /// The endpoints of service `i` of `s` (as `ports()` makes them).
    fn endpoints(i: usize, s: usize) -> Vec<Ipv4Addr> {
        (0..10)
            .map(|j| {
                if i == s - 1 {
                    Ipv4Addr::new(10, 244, 255, j as u8 + 1)
                } else {
                    let n = i * 10 + j;
                    let slot = n % (255 * 254);
                    Ipv4Addr::new(10, 244, (slot / 255) as u8, (slot % 255 + 1) as u8)
                }
            })
            .collect()
    }

    fn slice(i: usize, eps: &[Ipv4Addr]) -> EndpointSlice {
        let endpoints: Vec<_> = eps
            .iter()
            .map(|ip| json!({"addresses": [ip.to_string()], "conditions": {"ready": true}, "nodeName": "node-b"}))
            .collect();
        serde_json::from_value(json!({
            "metadata": {"name": name(i), "namespace": "bench", "labels": {"kubernetes.io/service-name": name(i)}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": endpoints,
        }))
        .expect("a slice")
    }

    fn service_chain(i: usize) -> String {
        let id =
            ServicePortName { namespace: "bench".into(), name: name(i), port: "http".into(), protocol: Protocol::Tcp };
        names::service_chain(&id)
    }

    /// The endpoint map that holds `endpoint` (listing every endpoint map of the table).
    fn map_with(nl: &mut Netlink, endpoint: SocketAddr) -> Option<String> {
        let maps = nl.table_state(Family::Ipv4).ok()?.maps;
        maps.into_iter()
            .filter(|m| names::endpoint_map_epoch(m).is_some())
            .find(|m| nl.endpoint_map(Family::Ipv4, m).is_ok_and(|elems| elems.iter().any(|(_, e)| *e == endpoint)))
    }

    /// Polls the kernel (this process's namespace) until `done` holds; how long it took.
    fn wait(nl: &mut Netlink, limit: Duration, mut done: impl FnMut(&mut Netlink) -> bool) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if done(nl) {
                return Some(start.elapsed());
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        None
    }

    fn pct(v: &[f64], p: f64) -> f64 {
        let mut v = v.to_vec();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let k = ((p / 100.0 * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
        v[k]
    }

    pub fn main() {
        let a = args();
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a runtime");
        let client = rt.block_on(async {
            let kc = kube::config::Kubeconfig::read_from(&a.kubeconfig).expect("the kubeconfig");
            let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.expect("kubeconfig");
            kube::Client::try_from(config).expect("a client")
        });
        let s = a.services;
        let probe = s - 1;
        eprintln!("[proxy-bench e2e] creating {s} Services and EndpointSlices");
        let created = Instant::now();
        rt.block_on(async {
            let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
            let _ = ns
                .create(
                    &PostParams::default(),
                    &serde_json::from_value(json!({"metadata": {"name": "bench"}})).unwrap(),
                )
                .await;
            let svcs: Api<Service> = Api::namespaced(client.clone(), "bench");
            let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "bench");
            stream::iter(0..s)
                .for_each_concurrent(16, |i| {
                    let (svcs, slices) = (svcs.clone(), slices.clone());
                    async move {
                        let svc: Service = serde_json::from_value(json!({
                            "metadata": {"name": name(i), "namespace": "bench"},
                            "spec": {"clusterIP": cluster_ip(i).to_string(),
                                     "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]}
                        }))
                        .unwrap();
                        svcs.create(&PostParams::default(), &svc).await.expect("create a Service");
                        slices
                            .create(&PostParams::default(), &slice(i, &endpoints(i, s)))
                            .await
                            .expect("create a slice");
                    }
                })
                .await;
        });
        eprintln!("[proxy-bench e2e] created in {:.1} s; starting podnet proxy", created.elapsed().as_secs_f64());
        let mut proxy = Command::new(&a.podnet)
            .args(["proxy", "--kubeconfig", &a.kubeconfig, "--node-name", "node-a", "--proxy-mode", "nftables"])
            .args(["--cluster-cidr", "10.0.0.0/8", "--metrics-bind-address", "127.0.0.1:10249"])
            .args(["--healthz-bind-address", "127.0.0.1:10256", "--sync-period", "3600"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start podnet proxy");
        let mut nl = Netlink::open().expect("a netlink socket");
        let probe_chain = service_chain(probe);
        let initial =
            wait(&mut nl, Duration::from_secs(300), |nl| nl.has_chain(Family::Ipv4, &probe_chain).unwrap_or(false));
        // The probe's endpoints are in one endpoint map (its chain and elements come in one
        // transaction): each change is polled there.
        let tenth = SocketAddr::new(IpAddr::V4(endpoints(probe, s)[9]), 8080);
        let probe_map = initial.and_then(|_| map_with(&mut nl, tenth));
        let mut api_ms = Vec::new();
        let mut e2e_ms = Vec::new();
        let mut missed = 0;
        if let Some(probe_map) = &probe_map {
            // Let the proxy settle (its first syncs, the stale chain deletion).
            std::thread::sleep(Duration::from_secs(2));
            let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "bench");
            for k in 0..a.changes {
                let mut eps = endpoints(probe, s);
                let new = Ipv4Addr::new(10, 244, 254, (k % 250) as u8 + 1);
                eps[9] = new;
                let patch = Patch::Merge(json!({"endpoints": slice(probe, &eps).endpoints}));
                let new_endpoint = SocketAddr::new(IpAddr::V4(new), 8080);
                let t0 = Instant::now();
                rt.block_on(slices.patch(&name(probe), &PatchParams::default(), &patch)).expect("patch the slice");
                let t_api = t0.elapsed();
                let in_kernel = |nl: &mut Netlink| {
                    nl.endpoint_map(Family::Ipv4, probe_map).is_ok_and(|e| e.iter().any(|(_, e)| *e == new_endpoint))
                };
                match wait(&mut nl, Duration::from_secs(30), in_kernel) {
                    Some(_) => {
                        e2e_ms.push(t0.elapsed().as_secs_f64() * 1000.0);
                        api_ms.push(t_api.as_secs_f64() * 1000.0);
                    }
                    None => missed += 1,
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        }
        // Stop the proxy we started (by its pid); its rules stay until the namespace goes.
        let _ = proxy.kill();
        let _ = proxy.wait();
        let initial_s = initial.map(|d| d.as_secs_f64());
        println!();
        println!("== end to end, podnet server + podnet proxy (nftables), {s} services x 10 endpoints");
        match initial_s {
            Some(t) => println!("  proxy start -> probe rules in the kernel: {t:.2} s"),
            None => println!("  proxy start -> probe rules in the kernel: not within 300 s"),
        }
        if !e2e_ms.is_empty() {
            println!(
                "  EndpointSlice write -> endpoint in the kernel's endpoint map: median {:.1} ms, p90 {:.1} ms, max {:.1} ms \
                 (n {}, missed {missed}); of which the API write itself: median {:.1} ms",
                pct(&e2e_ms, 50.0),
                pct(&e2e_ms, 90.0),
                pct(&e2e_ms, 100.0),
                e2e_ms.len(),
                pct(&api_ms, 50.0)
            );
        }
        println!(
            "E2E-JSON {}",
            json!({"services": s, "initial_s": initial_s, "change_ms": e2e_ms, "api_ms": api_ms, "missed": missed})
        );
    }
}
