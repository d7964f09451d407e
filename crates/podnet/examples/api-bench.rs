//! `api-bench`: load figures for a running Kubernetes API server (`podnet server`, or any other),
//! reached through a kubeconfig. `bench/api.sh` starts a fresh `podnet server` and runs this.
//!
//! Three phases, each in namespaces of its own named after the run (so a rerun against the same
//! server does not collide):
//!
//! 1. **create**: `--clients` (16) tasks, each with its own `kube::Client` and so its own
//!    connection (kube-rs 5 speaks HTTP/1.1 over rustls: one request in flight per connection,
//!    a client's pool opens one connection per concurrent request), create small ConfigMaps
//!    back to back for `--create-secs` (10 s). Reported: acknowledged creates per second (over
//!    the time until the last create in flight at the deadline returned), and the p50/p99/max
//!    latency of a create as the client sees it (typed `Api::create`: serialize, round trip,
//!    deserialize).
//! 2. **watch**: `--watchers` (100) watch streams on the ConfigMaps of one namespace, sharing one
//!    `kube::Client` (so 100 HTTP/1.1 connections), read as raw newline-delimited JSON. Once every
//!    watcher has seen a sentinel object, one writer (another client) creates `--watch-rate`
//!    (200) ConfigMaps a second for `--watch-secs` (10 s), each create on its own task so the
//!    rate does not depend on the create latency. Each object carries its send time (annotation
//!    `bench.podnet.io/sent-ns`, nanoseconds since the UNIX epoch, taken just before the request
//!    is sent); each watcher takes the receive time when the event's line is complete. Both use
//!    this process's wall clock. Reported: p50/p99/max of receive - send over all samples, and
//!    the samples received against watchers x writes (the difference is reported as missed).
//! 3. **list**: `--services` (10,000) ClusterIP Services with one port are created in one
//!    namespace (by the `--clients` clients in parallel), then the namespace's Services are
//!    listed `--list-runs` (5) times each way, one request at a time: a full LIST (no limit) as
//!    JSON read as raw text (what the server costs, as `kubectl get svc -o json` asks it, though
//!    kubectl itself pages by 500 unless `--chunk-size=0`); the same LIST decoded into
//!    `ServiceList` by kube-rs; the full LIST as a Table (the `Accept` header `kubectl get svc`
//!    sends); and, for reference, kubectl's default chunking: JSON (decoded) and Table pages of
//!    500 following `continue`. Reported: median and max.
//!
//! Each phase also reports the CPU the server (with `--server-pid`), this client and everything
//! else on the machine used, in cores: all share the same cores, so the client's and the others'
//! shares are time the server did not get (a busy machine makes every figure worse).
//!
//! Output: one line per measure, `api-bench <measure> <value> <unit> goal <goal> <verdict> |
//! details`, where the verdict is PASS or MISS against the goal, or `info` for a measure without
//! one. The goals are the project's for a 2-core machine: >= 2,000 creates/s, watch p99 < 10 ms
//! (and no missed event), LIST of 10,000 Services < 250 ms (median). Exits non-zero only when
//! the benchmark itself could not run (an error, not a missed goal).

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};
use futures::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service};
use kube::api::{Api, ListParams, PostParams, WatchParams};
use kube::core::Request;
use kube::Client;
use serde_json::{json, Value};

/// The annotation carrying a watch-phase object's send time.
const SENT_ANNOTATION: &str = "bench.podnet.io/sent-ns";
/// The `Accept` header `kubectl get` sends.
const TABLE_ACCEPT: &str =
    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

#[derive(Parser)]
#[command(about = "Load figures for a running Kubernetes API server: creates/s, watch latency, LIST of many Services")]
struct Args {
    /// The kubeconfig of the server under test.
    kubeconfig: PathBuf,
    /// Which phases to run, in order.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "create,watch,list")]
    phases: Vec<Phase>,
    /// Concurrent clients (each with its own connection) for the create phase and the Services' set-up.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// How long the create phase runs, in seconds.
    #[arg(long, default_value_t = 10)]
    create_secs: u64,
    /// Watch streams in the watch phase.
    #[arg(long, default_value_t = 100)]
    watchers: usize,
    /// Writes per second in the watch phase.
    #[arg(long, default_value_t = 200)]
    watch_rate: u32,
    /// How long the watch phase writes, in seconds.
    #[arg(long, default_value_t = 10)]
    watch_secs: u64,
    /// Services created and then listed in the list phase.
    #[arg(long, default_value_t = 10_000)]
    services: usize,
    /// Timed LISTs of each kind.
    #[arg(long, default_value_t = 5)]
    list_runs: usize,
    /// The server's process id, to report the CPU time it used in each phase.
    #[arg(long)]
    server_pid: Option<u32>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Phase {
    Create,
    Watch,
    List,
}

/// A goal a measure is held to.
#[derive(Clone, Copy)]
enum Goal {
    AtLeast(f64),
    Below(f64),
    Exactly(f64),
}

impl Goal {
    fn describe(self) -> String {
        match self {
            Goal::AtLeast(v) => format!(">={v}"),
            Goal::Below(v) => format!("<{v}"),
            Goal::Exactly(v) => format!("={v}"),
        }
    }
    fn met(self, value: f64) -> bool {
        match self {
            Goal::AtLeast(v) => value >= v,
            Goal::Below(v) => value < v,
            Goal::Exactly(v) => value == v,
        }
    }
}

/// Prints one measure: `api-bench <measure> <value> <unit> goal <goal> <verdict> | <details>`.
fn report(measure: &str, value: f64, unit: &str, goal: Option<Goal>, details: &str) {
    let (goal_text, verdict) = match goal {
        Some(g) => (g.describe(), if g.met(value) { "PASS" } else { "MISS" }),
        None => ("-".to_string(), "info"),
    };
    let value = if value.fract() == 0.0 { format!("{value:.0}") } else { format!("{value:.2}") };
    println!("api-bench {measure:<34} {value:>10} {unit:<9} goal {goal_text:<7} {verdict:<4} | {details}");
}

/// Nanoseconds since the UNIX epoch, the clock both ends of a watch sample use.
fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("the clock is after 1970").as_nanos() as u64
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The nearest-rank percentile `p` (0–100) of sorted samples.
fn percentile<T: Copy>(sorted: &[T], p: f64) -> T {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// User plus system CPU time of a process, in seconds (from /proc; clock ticks are USER_HZ = 100).
fn cpu_secs(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// Busy CPU time of the whole machine, in seconds (the first line of /proc/stat: user, nice,
/// system, irq, softirq and steal; idle and iowait are not busy).
fn machine_busy_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat.lines().next()?.split_whitespace().skip(1).map(|f| f.parse().unwrap_or(0)).collect();
    let busy: u64 = [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| fields.get(i)).sum();
    Some(busy as f64 / 100.0)
}

/// CPU time used during a phase by the server, by this process and by everything else on the
/// machine (other processes competing for the same cores make the figures worse).
struct CpuMeter {
    server_pid: Option<String>,
    start: Instant,
    server: Option<f64>,
    client: Option<f64>,
    machine: Option<f64>,
}

impl CpuMeter {
    fn start(server_pid: Option<u32>) -> CpuMeter {
        let server_pid = server_pid.map(|p| p.to_string());
        CpuMeter {
            start: Instant::now(),
            server: server_pid.as_deref().and_then(cpu_secs),
            client: cpu_secs("self"),
            machine: machine_busy_secs(),
            server_pid,
        }
    }

    fn report(&self, phase: &str) {
        let wall = self.start.elapsed().as_secs_f64();
        let delta = |before: Option<f64>, after: Option<f64>| Some(after? - before?);
        let server = self.server_pid.as_deref().and_then(|pid| delta(self.server, cpu_secs(pid)));
        let client = delta(self.client, cpu_secs("self"));
        let machine = delta(self.machine, machine_busy_secs());
        let other = machine.map(|m| (m - server.unwrap_or(0.0) - client.unwrap_or(0.0)).max(0.0));
        for (who, used) in [("server", server), ("client", client), ("other", other)] {
            if let Some(used) = used {
                let details = format!("cpu_s={used:.2} wall_s={wall:.2}");
                report(&format!("{phase}.cpu.{who}"), used / wall, "cores", None, &details);
            }
        }
    }
}

async fn client(kubeconfig: &PathBuf) -> anyhow::Result<Client> {
    let kc =
        kube::config::Kubeconfig::read_from(kubeconfig).with_context(|| format!("reading {}", kubeconfig.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.context("kubeconfig")?;
    let client = Client::try_from(config).context("building a client")?;
    // Open the connection (TCP and TLS) before anything is timed.
    client.apiserver_version().await.context("reaching the server")?;
    Ok(client)
}

async fn create_namespace(client: &Client, name: &str) -> anyhow::Result<()> {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .with_context(|| format!("creating namespace {name}"))?;
    Ok(())
}

fn config_map(name: &str, annotations: Value) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": "api-bench"}, "annotations": annotations},
        "data": {"key": "value", "other": "some text of a realistic length for a small setting"},
    }))
    .expect("a valid ConfigMap")
}

/// Phase 1: creates/s with concurrent clients, and the latency of one create.
async fn create_phase(args: &Args, clients: &[Client], run: &str) -> anyhow::Result<()> {
    let ns = format!("bench-create-{run}");
    create_namespace(&clients[0], &ns).await?;
    let cpu = CpuMeter::start(args.server_pid);
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.create_secs);
    let mut tasks = Vec::new();
    for (i, c) in clients.iter().enumerate() {
        let api: Api<ConfigMap> = Api::namespaced(c.clone(), &ns);
        tasks.push(tokio::spawn(async move {
            let (mut latencies, mut errors, mut first_error) = (Vec::new(), 0usize, None);
            let mut n = 0usize;
            while Instant::now() < deadline {
                let cm = config_map(&format!("cm-{i}-{n}"), json!({}));
                n += 1;
                let t = Instant::now();
                match api.create(&PostParams::default(), &cm).await {
                    Ok(_) => latencies.push(t.elapsed()),
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e.to_string());
                    }
                }
            }
            (latencies, errors, first_error)
        }));
    }
    let (mut latencies, mut errors, mut first_error) = (Vec::new(), 0, None);
    for t in tasks {
        let (l, e, f) = t.await?;
        latencies.extend(l);
        errors += e;
        first_error = first_error.or(f);
    }
    let elapsed = start.elapsed();
    if latencies.is_empty() {
        bail!("no create succeeded: {}", first_error.unwrap_or_default());
    }
    latencies.sort_unstable();
    let acked = latencies.len();
    let rate = acked as f64 / elapsed.as_secs_f64();
    let details = format!(
        "clients={} connections={} duration_s={:.2} acked={acked} errors={errors}{}",
        clients.len(),
        clients.len(),
        elapsed.as_secs_f64(),
        first_error.map(|e| format!(" first_error={e:?}")).unwrap_or_default()
    );
    report("create.rate", rate.round(), "creates/s", Some(Goal::AtLeast(2000.0)), &details);
    let n = format!("samples={acked}");
    report("create.latency.p50", ms(percentile(&latencies, 50.0)), "ms", None, &n);
    report("create.latency.p99", ms(percentile(&latencies, 99.0)), "ms", None, &n);
    report("create.latency.max", ms(*latencies.last().expect("not empty")), "ms", None, &n);
    cpu.report("create");
    Ok(())
}

/// The send time in a watch event's line: `Some(0)` for the sentinel, `None` for other lines.
fn sent_ns(line: &str) -> Option<u64> {
    if !line.contains(r#""type":"ADDED""#) {
        return None;
    }
    let key = format!("\"{SENT_ANNOTATION}\":\"");
    let start = line.find(&key)? + key.len();
    let digits = &line[start..];
    digits[..digits.find('"')?].parse().ok()
}

/// One watcher: reads events until told to stop, returning its samples (nanoseconds).
async fn watcher(
    client: Client,
    ns: String,
    ready: Arc<AtomicUsize>,
    received: Arc<AtomicUsize>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Vec<u64>> {
    let req =
        Request::new(format!("/api/v1/namespaces/{ns}/configmaps")).watch(&WatchParams::default().timeout(290), "0")?;
    let mut lines = client.request_stream(req).await.context("starting a watch")?.lines();
    let mut samples = Vec::new();
    loop {
        let line = tokio::select! {
            _ = stop.changed() => break,
            line = lines.next() => match line {
                Some(l) => l.context("reading a watch")?,
                None => bail!("a watch ended early"),
            },
        };
        let received_at = now_ns();
        match sent_ns(&line) {
            Some(0) => {
                ready.fetch_add(1, Ordering::SeqCst);
            }
            Some(sent) => {
                samples.push(received_at.saturating_sub(sent));
                received.fetch_add(1, Ordering::Relaxed);
            }
            None => {}
        }
    }
    Ok(samples)
}

/// Phase 2: write-to-watch-event latency with many watchers.
async fn watch_phase(args: &Args, kubeconfig: &PathBuf, run: &str) -> anyhow::Result<()> {
    let ns = format!("bench-watch-{run}");
    let writer = client(kubeconfig).await?;
    let watch_client = client(kubeconfig).await?;
    create_namespace(&writer, &ns).await?;
    let api: Api<ConfigMap> = Api::namespaced(writer.clone(), &ns);

    let (ready, received) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let watchers: Vec<_> = (0..args.watchers)
        .map(|_| {
            tokio::spawn(watcher(watch_client.clone(), ns.clone(), ready.clone(), received.clone(), stop_rx.clone()))
        })
        .collect();
    // Every watch is live once it has seen the sentinel (live, or in its initial state).
    api.create(&PostParams::default(), &config_map("sentinel", json!({SENT_ANNOTATION: "0"}))).await?;
    let waiting = Instant::now();
    while ready.load(Ordering::SeqCst) < args.watchers {
        if waiting.elapsed() > Duration::from_secs(30) {
            bail!("only {} of {} watches started within 30 s", ready.load(Ordering::SeqCst), args.watchers);
        }
        if watchers.iter().any(|w| w.is_finished()) {
            bail!("a watch ended before the writes began");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let cpu = CpuMeter::start(args.server_pid);
    let writes = args.watch_rate as usize * args.watch_secs as usize;
    let mut tick = tokio::time::interval(Duration::from_secs(1) / args.watch_rate);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut creates = Vec::with_capacity(writes);
    for i in 0..writes {
        tick.tick().await;
        let api = api.clone();
        creates.push(tokio::spawn(async move {
            let cm = config_map(&format!("w-{i}"), json!({SENT_ANNOTATION: now_ns().to_string()}));
            api.create(&PostParams::default(), &cm).await.map(|_| ())
        }));
    }
    let (mut write_errors, mut first_error) = (0usize, None);
    for c in creates {
        if let Err(e) = c.await? {
            write_errors += 1;
            first_error.get_or_insert(e.to_string());
        }
    }
    let expected = args.watchers * (writes - write_errors);
    // Let the last events arrive (or give up on them after 10 s).
    let waiting = Instant::now();
    while received.load(Ordering::Relaxed) < expected && waiting.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop_tx.send(true)?;
    let mut samples = Vec::with_capacity(expected);
    let mut watch_errors = 0;
    for w in watchers {
        match w.await? {
            Ok(s) => samples.extend(s),
            Err(e) => {
                watch_errors += 1;
                first_error.get_or_insert(e.to_string());
            }
        }
    }
    if samples.is_empty() {
        bail!("no watch event arrived: {}", first_error.unwrap_or_default());
    }
    samples.sort_unstable();
    let missed = expected.saturating_sub(samples.len());
    let details = format!(
        "watchers={} writes={writes} rate_per_s={} samples={} expected={expected} missed={missed} write_errors={write_errors} watch_errors={watch_errors}{}",
        args.watchers,
        args.watch_rate,
        samples.len(),
        first_error.map(|e| format!(" first_error={e:?}")).unwrap_or_default()
    );
    let ns_ms = |ns: u64| ns as f64 / 1e6;
    report("watch.latency.p50", ns_ms(percentile(&samples, 50.0)), "ms", None, &details);
    report("watch.latency.p99", ns_ms(percentile(&samples, 99.0)), "ms", Some(Goal::Below(10.0)), &details);
    report("watch.latency.max", ns_ms(*samples.last().expect("not empty")), "ms", None, &details);
    report("watch.missed", missed as f64, "events", Some(Goal::Exactly(0.0)), &details);
    cpu.report("watch");
    Ok(())
}

/// Median and max of timed runs.
fn summarise(measure: &str, mut runs: Vec<Duration>, goal: Option<Goal>, details: &str) {
    runs.sort_unstable();
    let median = ms(runs[(runs.len() - 1) / 2]);
    let details = format!("runs={} {details}", runs.len());
    report(&format!("{measure}.median"), median, "ms", goal, &details);
    report(&format!("{measure}.max"), ms(*runs.last().expect("runs")), "ms", None, &details);
}

/// A raw LIST, returning the body as text and how long it took.
async fn timed_list(
    client: &Client,
    path: &str,
    lp: &ListParams,
    accept: Option<&'static str>,
) -> anyhow::Result<(String, Duration)> {
    let mut req = Request::new(path).list(lp)?;
    if let Some(a) = accept {
        req.headers_mut().insert("accept", a.parse()?);
    }
    let t = Instant::now();
    let text = client.request_text(req).await?;
    Ok((text, t.elapsed()))
}

/// Phase 3: LIST of many Services.
async fn list_phase(args: &Args, clients: &[Client], run: &str) -> anyhow::Result<()> {
    let ns = format!("bench-svc-{run}");
    create_namespace(&clients[0], &ns).await?;
    let cpu = CpuMeter::start(args.server_pid);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (k, c) in clients.iter().enumerate() {
        let api: Api<Service> = Api::namespaced(c.clone(), &ns);
        let (stride, total) = (clients.len(), args.services);
        tasks.push(tokio::spawn(async move {
            for i in (k..total).step_by(stride) {
                let name = format!("svc-{i:05}");
                let svc: Service = serde_json::from_value(json!({
                    "metadata": {"name": name, "labels": {"app": name}},
                    "spec": {"type": "ClusterIP", "selector": {"app": name},
                             "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]},
                }))
                .expect("a valid Service");
                api.create(&PostParams::default(), &svc).await.with_context(|| format!("creating Service {name}"))?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let setup = start.elapsed();
    report(
        "list.setup.create_rate",
        (args.services as f64 / setup.as_secs_f64()).round(),
        "creates/s",
        None,
        &format!("services={} clients={} duration_s={:.2}", args.services, clients.len(), setup.as_secs_f64()),
    );
    cpu.report("list.setup");

    let cpu = CpuMeter::start(args.server_pid);
    let c = &clients[0];
    let path = format!("/api/v1/namespaces/{ns}/services");
    let api: Api<Service> = Api::namespaced(c.clone(), &ns);
    let (mut raw, mut decoded, mut table, mut paged, mut table_paged) = (vec![], vec![], vec![], vec![], vec![]);
    let (mut raw_bytes, mut table_bytes) = (0, 0);
    for run in 0..args.list_runs {
        let (text, t) = timed_list(c, &path, &ListParams::default(), None).await?;
        raw.push(t);
        raw_bytes = text.len();
        if run == 0 {
            let items = serde_json::from_str::<Value>(&text)?["items"].as_array().map_or(0, Vec::len);
            anyhow::ensure!(items == args.services, "the JSON LIST has {items} items, not {}", args.services);
        }

        let t = Instant::now();
        let list = api.list(&ListParams::default()).await?;
        decoded.push(t.elapsed());
        anyhow::ensure!(list.items.len() == args.services, "the decoded LIST has {} items", list.items.len());

        let (text, t) = timed_list(c, &path, &ListParams::default(), Some(TABLE_ACCEPT)).await?;
        table.push(t);
        table_bytes = text.len();
        if run == 0 {
            let rows = serde_json::from_str::<Value>(&text)?["rows"].as_array().map_or(0, Vec::len);
            anyhow::ensure!(rows == args.services, "the Table has {rows} rows, not {}", args.services);
        }

        // kubectl's default: pages of 500, following `continue`.
        let t = Instant::now();
        let (mut items, mut token) = (0, None::<String>);
        loop {
            let mut lp = ListParams::default().limit(500);
            if let Some(tok) = token.take() {
                lp = lp.continue_token(&tok);
            }
            let page = api.list(&lp).await?;
            items += page.items.len();
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(c) => token = Some(c),
                None => break,
            }
        }
        paged.push(t.elapsed());
        anyhow::ensure!(items == args.services, "the pages held {items} items");

        let t = Instant::now();
        let (mut rows, mut token) = (0, None::<String>);
        loop {
            let mut lp = ListParams::default().limit(500);
            if let Some(tok) = token.take() {
                lp = lp.continue_token(&tok);
            }
            let (text, _) = timed_list(c, &path, &lp, Some(TABLE_ACCEPT)).await?;
            let page: Value = serde_json::from_str(&text)?;
            rows += page["rows"].as_array().map_or(0, Vec::len);
            match page["metadata"]["continue"].as_str().filter(|c| !c.is_empty()) {
                Some(c) => token = Some(c.to_string()),
                None => break,
            }
        }
        table_paged.push(t.elapsed());
        anyhow::ensure!(rows == args.services, "the Table pages held {rows} rows");
    }
    let n = args.services;
    let goal = Some(Goal::Below(250.0));
    summarise("list.json", raw, goal, &format!("items={n} bytes={raw_bytes} body_read_as_text=yes"));
    summarise("list.json_decoded", decoded, goal, &format!("items={n} decoded_into=ServiceList"));
    summarise("list.table", table, goal, &format!("rows={n} bytes={table_bytes}"));
    summarise("list.json_paged500_decoded", paged, None, &format!("items={n} pages={}", n.div_ceil(500)));
    summarise(
        "list.table_paged500",
        table_paged,
        None,
        &format!("rows={n} pages={} parsed=serde_json::Value", n.div_ceil(500)),
    );
    cpu.report("list");
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.clients > 0 && args.watchers > 0 && args.watch_rate > 0 && args.list_runs > 0,
        "counts must be positive"
    );
    let run = format!("{:x}", SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs());
    let mut clients = Vec::with_capacity(args.clients);
    for _ in 0..args.clients {
        clients.push(client(&args.kubeconfig).await?);
    }
    println!(
        "api-bench run {run} against {} ({} client threads)",
        clients[0].apiserver_version().await?.git_version,
        worker_threads()
    );
    for phase in &args.phases {
        match phase {
            Phase::Create => create_phase(&args, &clients, &run).await?,
            Phase::Watch => watch_phase(&args, &args.kubeconfig, &run).await?,
            Phase::List => list_phase(&args, &clients, &run).await?,
        }
    }
    Ok(())
}

fn worker_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
