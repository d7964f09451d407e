//! `cni-bench`: latency, concurrency and leak figures for podnet's CNI plugin against the
//! reference `bridge` + `host-local` plugins (Debian's containernetworking-plugins), measured in
//! one run. `bench/cni.sh` builds podnet, makes a throw-away "host" network namespace and runs
//! this inside it (`ip netns exec HOST cni-bench …`); the program refuses to run in the
//! machine's own namespace, so every bridge, veth, nftables/iptables rule and sysctl the plugins
//! touch is in the throw-away one.
//!
//! Each plugin is executed exactly as a container runtime executes it: a fresh process of the
//! plugin binary with a clean environment (`PATH`, `CNI_COMMAND`, `CNI_CONTAINERID`,
//! `CNI_NETNS`, `CNI_IFNAME=eth0`, `CNI_PATH`) and the network configuration on stdin; a
//! latency is the time from just before the spawn until its stdout has been read and it has
//! exited. Both plugins get the same configuration (spec 1.0.0): their own bridge, `isGateway`,
//! `ipMasq` true or false, `host-local` IPAM on a /16 with a private `dataDir` (`--work`/data).
//! podnet is `podnet` (a symlink to the binary, which is how a runtime finds type `podnet`, with
//! host-local IPAM built in); the reference is `bridge`, which runs `host-local` from `CNI_PATH`.
//!
//! Phases (`--phases`, all by default):
//!
//! 1. **exec**: `CNI_COMMAND=VERSION`, `--n` times each: the floor of one plugin run (process
//!    start and exit, no system work).
//! 2. **latency**, for `ipMasq` true and false: `--n` pod namespaces per plugin are created
//!    beforehand (not timed); then `--n` sequential ADDs per plugin, each into its own fresh pod
//!    namespace, then `--n` sequential DELs. The two plugins alternate operation by operation
//!    (podnet, reference, reference, podnet, …) so that both see the same machine load. Reported:
//!    median, p99 and max per plugin and command, the CPU time (user + system of the plugin and
//!    everything it ran: host-local, iptables, nft) per operation, and the ratio
//!    podnet/reference of the medians (goal ≤ 0.5).
//! 3. **concurrent**: `--concurrent` (100) fresh pod namespaces, then as many ADDs started at
//!    once (`ipMasq` true); reported: the wall time until the last one exited and whether the
//!    addresses handed out are all distinct; then as many DELs at once.
//! 4. **cycles**: `--cycles` (10,000) ADD/DEL cycles with podnet and `--ref-cycles` (1,000)
//!    with the reference (`ipMasq` true), each cycle in a fresh pod namespace made just before
//!    the ADD and deleted after the DEL (neither timed); reported: the wall time, the ADD and DEL
//!    medians and p99s, and the leak check below.
//!
//! After every phase, a leak check: no reservation file in the dataDir besides `lock` and
//! `last_reserved_ip.*`, no link in the host namespace besides `lo` and the bridges (so no
//! veth), no pod namespace of this run under `/run/netns`, no nftables rule (podnet's `inet
//! podnet_masq` and the reference's iptables-nft `ip nat` chains alike) and no iptables-legacy
//! rule. During the latency phase the same check must see the N reservations and veths per
//! plugin (so it is known to see leaks).
//!
//! Output: human-readable lines, then a `summary` block of `cni-bench KEY VALUE` lines that
//! `bench/cni.sh` prints. Exits non-zero when a plugin fails, an address is handed out twice or
//! something is left behind.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use clap::Parser;
use podnet_netlink::{Handle, Netns};
use serde_json::{json, Value};

/// The `PATH` the plugins get (they run `nft`, `iptables`, `host-local` from `CNI_PATH`).
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Parser)]
#[command(about = "CNI plugin benchmark: podnet against the reference bridge + host-local")]
struct Args {
    /// Directory with `podnet`, a link to the podnet binary (the plugin of type `podnet`).
    #[arg(long)]
    podnet_dir: PathBuf,
    /// Directory of the reference plugins (`bridge`, `host-local`).
    #[arg(long, default_value = "/usr/lib/cni")]
    reference_dir: PathBuf,
    /// Scratch directory; the IPAM dataDir is WORK/data.
    #[arg(long)]
    work: PathBuf,
    /// Prefix of the pod namespaces' names (`PREFIX-N` under /run/netns).
    #[arg(long, default_value = "pnbench")]
    prefix: String,
    /// Sequential ADDs (then DELs) per plugin and ipMasq setting; also the VERSION runs.
    #[arg(long, default_value_t = 200)]
    n: usize,
    /// Concurrent ADDs (then DELs) per plugin.
    #[arg(long, default_value_t = 100)]
    concurrent: usize,
    /// ADD/DEL cycles of podnet.
    #[arg(long, default_value_t = 10_000)]
    cycles: usize,
    /// ADD/DEL cycles of the reference.
    #[arg(long, default_value_t = 1_000)]
    ref_cycles: usize,
    /// The machine's own network namespace as `readlink /proc/self/ns/net` shows it outside
    /// (`net:[INODE]`): cni-bench refuses to run in it (nor in PID 1's, when that is readable).
    #[arg(long)]
    outside_netns: String,
    /// Phases to run: exec, latency, concurrent, cycles.
    #[arg(long, value_delimiter = ',', default_value = "exec,latency,concurrent,cycles")]
    phases: Vec<String>,
}

/// A plugin as a runtime sees it: the executable and the `CNI_PATH` it gets.
#[derive(Clone)]
struct Plugin {
    label: &'static str,
    exe: PathBuf,
    cni_path: PathBuf,
    plugin_type: &'static str,
}

/// One network: a plugin with a configuration (its own bridge and subnet).
struct Net {
    plugin: Plugin,
    name: String,
    masq: bool,
    conf: Vec<u8>,
}

impl Net {
    fn new(plugin: &Plugin, masq: bool, bridge: &str, subnet: &str, data_dir: &Path) -> Net {
        let name = format!("bench-{}-{}", plugin.label, if masq { "masq" } else { "nomasq" });
        let conf = json!({
            "cniVersion": "1.0.0",
            "name": name,
            "type": plugin.plugin_type,
            "bridge": bridge,
            "isGateway": true,
            "ipMasq": masq,
            "ipam": { "type": "host-local", "subnet": subnet, "dataDir": data_dir },
        });
        Net { plugin: plugin.clone(), name, masq, conf: conf.to_string().into_bytes() }
    }

    fn title(&self) -> String {
        format!("{} ipMasq={}", self.plugin.label, self.masq)
    }

    /// Starts the plugin for `command` on (`cid`, `netns`, eth0) with the configuration on stdin.
    fn spawn(&self, command: &str, cid: &str, netns: &str) -> Result<Child> {
        let mut child = Command::new(&self.plugin.exe)
            .env_clear()
            .env("PATH", PATH)
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", cid)
            .env("CNI_NETNS", netns)
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", &self.plugin.cni_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("running {}", self.plugin.exe.display()))?;
        // The configuration is far smaller than a pipe's buffer: this never blocks.
        child.stdin.take().expect("piped").write_all(&self.conf)?;
        Ok(child)
    }

    /// Runs the plugin to its end; its result JSON (Null when it printed nothing).
    fn run(&self, command: &str, cid: &str, netns: &str) -> Result<(Duration, Value)> {
        let start = Instant::now();
        let child = self.spawn(command, cid, netns)?;
        let out = child.wait_with_output()?;
        let took = start.elapsed();
        Ok((took, self.outcome(command, cid, out)?))
    }

    fn outcome(&self, command: &str, cid: &str, out: std::process::Output) -> Result<Value> {
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            bail!(
                "{} {command} of {cid} failed ({}): {}{}",
                self.title(),
                out.status,
                stdout.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        if stdout.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&stdout).with_context(|| format!("{} {command}: not JSON: {stdout}", self.title()))
    }
}

/// The address of an ADD result.
fn address(result: &Value) -> Result<String> {
    result["ips"][0]["address"].as_str().map(str::to_string).with_context(|| format!("no address in {result}"))
}

/// Pod namespaces, named `PREFIX-N`.
struct Pods {
    prefix: String,
    next: usize,
}

impl Pods {
    fn create(&mut self) -> Result<String> {
        let name = format!("{}-{}", self.prefix, self.next);
        self.next += 1;
        Netns::create(&name).with_context(|| format!("creating pod namespace {name}"))?;
        Ok(name)
    }

    fn delete(&self, name: &str) -> Result<()> {
        Netns::delete(name).with_context(|| format!("deleting pod namespace {name}"))
    }
}

fn path(pod: &str) -> String {
    format!("{}/{pod}", podnet_netlink::netns::NETNS_RUN_DIR)
}

/// CPU time (user + system) of this process's waited-for children and their descendants.
fn children_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // cutime and cstime are fields 16 and 17 of the whole line, so 13 and 14 here (0-based).
    let ticks: u64 = [13, 14].iter().filter_map(|&i| f.get(i)?.parse::<u64>().ok()).sum();
    Duration::from_secs_f64(ticks as f64 / 100.0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Median, p99 and max in milliseconds.
struct Stats {
    median: f64,
    p99: f64,
    max: f64,
    n: usize,
}

fn stats(samples: &[Duration]) -> Stats {
    let mut v: Vec<f64> = samples.iter().map(|d| ms(*d)).collect();
    v.sort_by(f64::total_cmp);
    let at = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    Stats { median: at(0.5), p99: at(0.99), max: *v.last().unwrap_or(&0.0), n: v.len() }
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "median {:.2} ms, p99 {:.2} ms, max {:.2} ms (n={})", self.median, self.p99, self.max, self.n)
    }
}

/// Summary lines, printed together at the end.
#[derive(Default)]
struct Summary(Vec<String>);

impl Summary {
    fn add(&mut self, key: &str, value: impl std::fmt::Display) {
        println!("  {key}: {value}");
        self.0.push(format!("cni-bench {key} {value}"));
    }
}

/// What is left in the host namespace, the dataDir and /run/netns.
#[derive(Debug, Default)]
struct State {
    reservations: Vec<String>,
    links: Vec<String>,
    pod_netns: Vec<String>,
    rules: Vec<String>,
}

impl State {
    fn is_clean(&self) -> bool {
        self.reservations.is_empty() && self.links.is_empty() && self.pod_netns.is_empty() && self.rules.is_empty()
    }

    fn describe(&self) -> String {
        let few = |v: &[String]| {
            let mut s = v.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
            if v.len() > 5 {
                s += &format!(", … ({} in all)", v.len());
            }
            s
        };
        let mut parts = Vec::new();
        for (what, v) in [
            ("reservation files", &self.reservations),
            ("links", &self.links),
            ("pod namespaces", &self.pod_netns),
            ("firewall rules", &self.rules),
        ] {
            if !v.is_empty() {
                parts.push(format!("{} {what} ({})", v.len(), few(v)));
            }
        }
        if parts.is_empty() {
            "nothing left behind".into()
        } else {
            parts.join("; ")
        }
    }
}

struct Bench {
    args: Args,
    data_dir: PathBuf,
    podnet: Plugin,
    reference: Plugin,
    bridges: Vec<String>,
    pods: Pods,
    summary: Summary,
}

impl Bench {
    /// The state left behind (see [`State`]).
    fn state(&self) -> Result<State> {
        let mut st = State::default();
        if let Ok(dirs) = std::fs::read_dir(&self.data_dir) {
            for dir in dirs.flatten() {
                for e in std::fs::read_dir(dir.path())?.flatten() {
                    let n = e.file_name().to_string_lossy().into_owned();
                    if n != "lock" && !n.starts_with("last_reserved_ip.") {
                        st.reservations.push(format!("{}/{n}", dir.file_name().to_string_lossy()));
                    }
                }
            }
        }
        for l in Handle::new()?.dump_links()? {
            if l.name != "lo" && !self.bridges.contains(&l.name) {
                st.links.push(format!("{} ({})", l.name, l.kind.as_deref().unwrap_or("?")));
            }
        }
        let mine = format!("{}-", self.args.prefix);
        st.pod_netns = Netns::list()?.into_iter().filter(|n| n.starts_with(&mine)).collect();
        let out = Command::new("nft").args(["-j", "list", "ruleset"]).env("PATH", PATH).output()?;
        ensure!(out.status.success(), "nft list ruleset: {}", String::from_utf8_lossy(&out.stderr));
        let ruleset: Value = serde_json::from_slice(&out.stdout).context("nft -j list ruleset")?;
        for item in ruleset["nftables"].as_array().into_iter().flatten() {
            if let Some(r) = item.get("rule") {
                st.rules.push(format!(
                    "nft {} {} {}: {}",
                    r["family"].as_str().unwrap_or(""),
                    r["table"].as_str().unwrap_or(""),
                    r["chain"].as_str().unwrap_or(""),
                    r["comment"].as_str().unwrap_or("(no comment)")
                ));
            }
        }
        // iptables-nft rules are nftables rules (above); legacy x_tables ones are not.
        for save in ["iptables-legacy-save", "ip6tables-legacy-save"] {
            if let Ok(out) = Command::new(save).env("PATH", PATH).stderr(Stdio::null()).output() {
                let text = String::from_utf8_lossy(&out.stdout);
                st.rules.extend(text.lines().filter(|l| l.starts_with("-A ")).map(|l| format!("{save}: {l}")));
            }
        }
        Ok(st)
    }

    /// Fails (after printing it) when something is left behind.
    fn check_clean(&mut self, phase: &str) -> Result<()> {
        let st = self.state()?;
        self.summary.add(&format!("{phase}.leftovers"), st.describe());
        ensure!(st.is_clean(), "{phase}: left behind: {}", st.describe());
        Ok(())
    }

    fn nets(&self, masq: bool) -> (Net, Net) {
        let (pb, rb, ps, rs) = if masq {
            ("pnb-masq", "ref-masq", "10.201.0.0/16", "10.202.0.0/16")
        } else {
            ("pnb-nomasq", "ref-nomasq", "10.203.0.0/16", "10.204.0.0/16")
        };
        (Net::new(&self.podnet, masq, pb, ps, &self.data_dir), Net::new(&self.reference, masq, rb, rs, &self.data_dir))
    }

    fn exec_phase(&mut self) -> Result<()> {
        println!("== exec: CNI_COMMAND=VERSION, {} runs each, alternating", self.args.n);
        let (p, r) = self.nets(false);
        let mut samples = [Vec::new(), Vec::new()];
        for _ in 0..self.args.n {
            for (k, net) in [&p, &r].into_iter().enumerate() {
                samples[k].push(net.run("VERSION", "", "")?.0);
            }
        }
        let (sp, sr) = (stats(&samples[0]), stats(&samples[1]));
        self.summary.add("exec.podnet", &sp);
        self.summary.add("exec.reference", &sr);
        Ok(())
    }

    #[allow(clippy::needless_range_loop)] // `i` indexes the pods of both plugins and names containers
    fn latency_phase(&mut self, masq: bool) -> Result<()> {
        let n = self.args.n;
        let (p, r) = self.nets(masq);
        let nets = [&p, &r];
        println!(
            "== latency, ipMasq={masq}: {n} sequential ADDs then {n} DELs per plugin, each into a fresh pod namespace"
        );
        let mut pods = [Vec::new(), Vec::new()];
        for _ in 0..n {
            for pod in &mut pods {
                pod.push(self.pods.create()?);
            }
        }
        let cid = |k: usize, i: usize| format!("{}-{}-{i}", nets[k].name, self.args.prefix);
        let order = |i: usize| if i.is_multiple_of(2) { [0, 1] } else { [1, 0] };
        let mut add = [Vec::new(), Vec::new()];
        let mut del = [Vec::new(), Vec::new()];
        let mut cpu = [[Duration::ZERO; 2]; 2];
        let mut ips: [HashSet<String>; 2] = Default::default();
        for i in 0..n {
            for k in order(i) {
                let before = children_cpu();
                let (took, result) = nets[k].run("ADD", &cid(k, i), &path(&pods[k][i]))?;
                cpu[k][0] += children_cpu() - before;
                add[k].push(took);
                ensure!(ips[k].insert(address(&result)?), "{}: an address was handed out twice", nets[k].title());
            }
        }
        // The leak check must see what the ADDs made.
        let st = self.state()?;
        let veths = st.links.iter().filter(|l| l.contains("(veth)")).count();
        println!(
            "  after the ADDs: {} reservation files, {veths} veths, {} firewall rules",
            st.reservations.len(),
            st.rules.len()
        );
        ensure!(
            st.reservations.len() == 2 * n && veths == 2 * n,
            "after {n} ADDs per plugin the check sees {} reservations and {veths} veths",
            st.reservations.len()
        );
        for i in 0..n {
            for k in order(i) {
                let before = children_cpu();
                let (took, _) = nets[k].run("DEL", &cid(k, i), &path(&pods[k][i]))?;
                cpu[k][1] += children_cpu() - before;
                del[k].push(took);
            }
        }
        for pod in pods.iter().flatten() {
            self.pods.delete(pod)?;
        }
        let tag = if masq { "masq" } else { "nomasq" };
        let mut medians = [[0.0; 2]; 2];
        for (k, net) in nets.iter().enumerate() {
            for (c, (command, samples)) in [("add", &add[k]), ("del", &del[k])].into_iter().enumerate() {
                let s = stats(samples);
                medians[k][c] = s.median;
                self.summary.add(
                    &format!("{tag}.{command}.{}", net.plugin.label),
                    format!("{s}, CPU {:.2} ms/op", ms(cpu[k][c]) / n as f64),
                );
            }
        }
        for (c, command) in ["add", "del"].into_iter().enumerate() {
            let ratio = medians[0][c] / medians[1][c];
            let verdict = if ratio <= 0.5 { "PASS" } else { "MISS" };
            self.summary.add(&format!("{tag}.{command}.ratio"), format!("{ratio:.2} (goal <= 0.5) {verdict}"));
        }
        self.check_clean(tag)
    }

    fn concurrent_phase(&mut self) -> Result<()> {
        let c = self.args.concurrent;
        println!("== concurrent: {c} ADDs started at once, then {c} DELs, per plugin (ipMasq=true)");
        let (p, r) = self.nets(true);
        for net in [&p, &r] {
            let pods: Vec<String> = (0..c).map(|_| self.pods.create()).collect::<Result<_>>()?;
            let cid = |i: usize| format!("{}-conc-{}-{i}", net.name, self.args.prefix);
            let run_all = |command: &str| -> Result<(Duration, Vec<Value>)> {
                let start = Instant::now();
                let children: Vec<Child> = pods
                    .iter()
                    .enumerate()
                    .map(|(i, pod)| net.spawn(command, &cid(i), &path(pod)))
                    .collect::<Result<_>>()?;
                let mut results = Vec::new();
                for (i, child) in children.into_iter().enumerate() {
                    results.push(net.outcome(command, &cid(i), child.wait_with_output()?)?);
                }
                Ok((start.elapsed(), results))
            };
            let (add_wall, results) = run_all("ADD")?;
            let ips: HashSet<String> = results.iter().map(address).collect::<Result<_>>()?;
            let (del_wall, _) = run_all("DEL")?;
            for pod in &pods {
                self.pods.delete(pod)?;
            }
            ensure!(ips.len() == c, "{}: {c} concurrent ADDs got only {} distinct addresses", net.title(), ips.len());
            self.summary.add(
                &format!("concurrent.{}", net.plugin.label),
                format!(
                    "{c} ADDs in {:.0} ms wall ({} distinct addresses), {c} DELs in {:.0} ms wall",
                    ms(add_wall),
                    ips.len(),
                    ms(del_wall)
                ),
            );
        }
        self.check_clean("concurrent")
    }

    fn cycles_phase(&mut self) -> Result<()> {
        let (p, r) = self.nets(true);
        for (net, cycles) in [(&p, self.args.cycles), (&r, self.args.ref_cycles)] {
            if cycles == 0 {
                continue;
            }
            println!("== cycles: {cycles} ADD/DEL cycles of {}, each in a fresh pod namespace", net.title());
            let (mut add, mut del) = (Vec::with_capacity(cycles), Vec::with_capacity(cycles));
            let mut netns_time = Duration::ZERO;
            let start = Instant::now();
            for i in 0..cycles {
                let t = Instant::now();
                let pod = self.pods.create()?;
                netns_time += t.elapsed();
                let cid = format!("{}-cycle-{}-{i}", net.name, self.args.prefix);
                let (took, result) = net.run("ADD", &cid, &path(&pod))?;
                address(&result)?;
                add.push(took);
                let (took, _) = net.run("DEL", &cid, &path(&pod))?;
                del.push(took);
                let t = Instant::now();
                self.pods.delete(&pod)?;
                netns_time += t.elapsed();
                if (i + 1) % 1000 == 0 {
                    eprintln!("  {} cycles, {:.0} s", i + 1, start.elapsed().as_secs_f64());
                }
            }
            let wall = start.elapsed();
            self.summary.add(
                &format!("cycles.{}", net.plugin.label),
                format!(
                    "{cycles} cycles in {:.1} s ({:.1} cycles/s; {:.1} s of it creating and deleting pod namespaces); ADD median {:.2} ms p99 {:.2} ms; DEL median {:.2} ms p99 {:.2} ms",
                    wall.as_secs_f64(),
                    cycles as f64 / wall.as_secs_f64(),
                    netns_time.as_secs_f64(),
                    stats(&add).median,
                    stats(&add).p99,
                    stats(&del).median,
                    stats(&del).p99
                ),
            );
            self.check_clean(&format!("cycles.{}", net.plugin.label))?;
        }
        Ok(())
    }
}

/// Whether this process is in the machine's own network namespace: `outside` (what the caller
/// saw outside) or PID 1's (when it can be read).
fn in_machine_netns(outside: &str) -> Result<bool> {
    let mine = std::fs::read_link("/proc/self/ns/net").context("readlink /proc/self/ns/net")?;
    let init = std::fs::read_link("/proc/1/ns/net").ok();
    Ok(mine == Path::new(outside) || init.as_ref() == Some(&mine))
}

fn main() -> Result<()> {
    let args = Args::parse();
    if in_machine_netns(&args.outside_netns)? {
        bail!("cni-bench must run inside a throw-away network namespace (ip netns exec HOST cni-bench …)");
    }
    let podnet = Plugin {
        label: "podnet",
        exe: args.podnet_dir.join("podnet"),
        cni_path: args.podnet_dir.clone(),
        plugin_type: "podnet",
    };
    let reference = Plugin {
        label: "reference",
        exe: args.reference_dir.join("bridge"),
        cni_path: args.reference_dir.clone(),
        plugin_type: "bridge",
    };
    for exe in [&podnet.exe, &reference.exe, &args.reference_dir.join("host-local")] {
        ensure!(exe.exists(), "{} does not exist", exe.display());
    }
    let data_dir = args.work.join("data");
    std::fs::create_dir_all(&data_dir)?;
    let pods = Pods { prefix: args.prefix.clone(), next: 0 };
    let bridges = ["pnb-masq", "ref-masq", "pnb-nomasq", "ref-nomasq"].map(String::from).to_vec();
    let mut b = Bench { args, data_dir, podnet, reference, bridges, pods, summary: Summary::default() };
    let phases = b.args.phases.clone();
    let has = |p: &str| phases.iter().any(|x| x == p);
    let start = Instant::now();
    let result = (|| -> Result<()> {
        if has("exec") {
            b.exec_phase()?;
        }
        if has("latency") {
            b.latency_phase(false)?;
            b.latency_phase(true)?;
        }
        if has("concurrent") {
            b.concurrent_phase()?;
        }
        if has("cycles") {
            b.cycles_phase()?;
        }
        Ok(())
    })();
    println!("== summary ({:.0} s)", start.elapsed().as_secs_f64());
    for line in &b.summary.0 {
        println!("{line}");
    }
    result
}
