//! Support for the CNI integration tests: throw-away network namespaces, and plugins run exactly
//! as a container runtime runs them (environment + stdin JSON) — always inside the test's own
//! "host" namespace (`ip netns exec HOST PLUGIN`), so bridges, veths, nftables rules and sysctls
//! are only ever created in namespaces the test made. Everything is removed on drop, also when
//! a test fails.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Where Debian's containernetworking-plugins install the reference plugins.
pub const REFERENCE_DIR: &str = "/usr/lib/cni";

/// True when the test can run (root). Otherwise prints the marker scripts/test looks for, and
/// fails under CI.
pub fn privileged(test: &str) -> bool {
    if nix_is_root() {
        return true;
    }
    println!("PODNET-PRIVILEGED-TEST-SKIPPED: {test}");
    if std::env::var_os("CI").is_some() {
        panic!("{test} needs root, and privileged tests must not be skipped in CI");
    }
    false
}

fn nix_is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

/// True when Debian's reference plugins are installed (else the marker, and a failure in CI).
pub fn reference_plugins(test: &str) -> bool {
    if Path::new(REFERENCE_DIR).join("bridge").exists() && Path::new(REFERENCE_DIR).join("host-local").exists() {
        return true;
    }
    println!("PODNET-PRIVILEGED-TEST-SKIPPED: {test} (containernetworking-plugins is not installed)");
    if std::env::var_os("CI").is_some() {
        panic!("{test} needs containernetworking-plugins in {REFERENCE_DIR}");
    }
    false
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A name unique to this test process: `pn-cni-<pid>-<n>-<tag>`.
pub fn unique(tag: &str) -> String {
    format!("pn-cni-{}-{}-{tag}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst))
}

/// Runs a command, returning its output.
pub fn run(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd).args(args).stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("running {cmd}: {e}"))
}

/// A named network namespace (`ip netns add`), deleted on drop.
pub struct Ns {
    pub name: String,
}

impl Ns {
    pub fn new(tag: &str) -> Ns {
        let name = unique(tag);
        let out = run("ip", &["netns", "add", &name]);
        assert!(out.status.success(), "ip netns add {name}: {}", String::from_utf8_lossy(&out.stderr));
        let ns = Ns { name };
        ns.ok(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// The path a runtime passes in CNI_NETNS.
    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// Runs a command inside the namespace.
    pub fn exec(&self, args: &[&str]) -> Output {
        let mut all = vec!["netns", "exec", &self.name];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// Runs a command inside the namespace and insists that it succeeds; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.exec(args);
        assert!(
            out.status.success(),
            "in {}: {args:?} failed: {}{}",
            self.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs an `ip -j …` command inside the namespace and parses its JSON.
    pub fn ip_json(&self, args: &[&str]) -> Value {
        let mut all = vec!["ip", "-j"];
        all.extend_from_slice(args);
        let out = self.ok(&all);
        if out.trim().is_empty() {
            return json!([]);
        }
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("ip -j {args:?}: {e}: {out}"))
    }

    /// Whether `ping` from here reaches `ip`.
    pub fn ping(&self, ip: &str) -> bool {
        let v6 = ip.contains(':');
        let mut args = vec!["ping", "-c", "1", "-W", "2"];
        if v6 {
            args.push("-6");
        }
        args.push(ip);
        self.exec(&args).status.success()
    }

    /// Reads a sysctl inside the namespace.
    pub fn sysctl(&self, key: &str) -> String {
        self.ok(&["sysctl", "-n", key]).trim().to_string()
    }

    /// The link `dev` as `ip -j -d link show` reports it, if it exists.
    pub fn link(&self, dev: &str) -> Option<Value> {
        let out = self.exec(&["ip", "-j", "-d", "link", "show", "dev", dev]);
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice::<Value>(&out.stdout).ok().and_then(|v| v.get(0).cloned())
    }

    /// Names of the links of the namespace.
    pub fn link_names(&self) -> Vec<String> {
        self.ip_json(&["link", "show"])
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["ifname"].as_str().unwrap().to_string())
            .collect()
    }

    /// Global addresses of `dev` as `addr/prefix`.
    pub fn addrs(&self, dev: &str) -> Vec<String> {
        let v = self.ip_json(&["addr", "show", "dev", dev]);
        let mut out = Vec::new();
        for info in v[0]["addr_info"].as_array().cloned().unwrap_or_default() {
            if info["scope"] == "global" {
                out.push(format!("{}/{}", info["local"].as_str().unwrap(), info["prefixlen"]));
            }
        }
        out
    }

    /// The `nft list ruleset` of the namespace.
    pub fn ruleset(&self) -> String {
        self.ok(&["nft", "list", "ruleset"])
    }

    /// A TCP listener bound inside the namespace.
    pub fn listen(&self, addr: &str) -> TcpListener {
        let ns = podnet_netlink::Netns::open_named(&self.name).expect("open namespace");
        let addr = addr.to_string();
        podnet_netlink::run_in(&ns, move || TcpListener::bind(&addr)).expect("enter namespace").expect("bind")
    }

    /// Connects from inside the namespace and reads what the server says (see [`serve`]).
    pub fn fetch(&self, addr: &str) -> Result<String, String> {
        let ns = podnet_netlink::Netns::open_named(&self.name).expect("open namespace");
        let addr: SocketAddr = addr.parse().expect("socket address");
        let stream = podnet_netlink::run_in(&ns, move || TcpStream::connect_timeout(&addr, Duration::from_secs(3)))
            .expect("enter namespace")
            .map_err(|e| format!("connect {addr}: {e}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut s = String::new();
        (&stream).read_to_string(&mut s).map_err(|e| format!("read from {addr}: {e}"))?;
        Ok(s.trim().to_string())
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "del", &self.name]);
    }
}

/// Serves up to `n` connections on `listener` for at most 20 s: each gets the peer address the
/// server saw (so a test can tell whether it was masqueraded).
pub fn serve(listener: TcpListener, n: usize) -> std::thread::JoinHandle<Vec<SocketAddr>> {
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut peers = Vec::new();
        while peers.len() < n && Instant::now() < deadline {
            match listener.accept() {
                Ok((mut s, peer)) => {
                    let _ = s.set_nonblocking(false);
                    let _ = writeln!(s, "{}", peer.ip());
                    peers.push(peer);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        peers
    })
}

/// What a plugin run printed and returned.
#[derive(Debug)]
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// The stdout JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }

    /// Asserts success and returns the stdout JSON (Null when empty).
    pub fn ok(&self) -> Value {
        assert_eq!(self.code, 0, "plugin failed: {self:?}");
        if self.stdout.trim().is_empty() {
            Value::Null
        } else {
            self.json()
        }
    }

    /// Asserts failure and returns the error JSON.
    pub fn err(&self) -> Value {
        assert_ne!(self.code, 0, "plugin succeeded unexpectedly: {self:?}");
        self.json()
    }
}

/// One test's world: a "host" namespace, pod namespaces, a directory with the plugin binaries
/// (symlinks to the podnet binary under its plugin names) and a private IPAM dataDir.
pub struct Lab {
    pub host: Ns,
    pub pods: Vec<Ns>,
    pub dir: tempfile::TempDir,
}

impl Lab {
    pub fn new() -> Lab {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        for name in ["podnet", "podnet-cni", "podnet-portmap", "podnet-loopback", "podnet-host-local"] {
            std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_podnet"), bin.join(name)).unwrap();
        }
        Lab { host: Ns::new("host"), pods: Vec::new(), dir }
    }

    /// The directory of podnet's plugin names.
    pub fn bin(&self) -> PathBuf {
        self.dir.path().join("bin")
    }

    /// A private IPAM dataDir.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A new pod namespace; returns its index.
    pub fn pod(&mut self) -> usize {
        self.pods.push(Ns::new("pod"));
        self.pods.len() - 1
    }

    /// Runs `exe` inside the host namespace as a runtime does.
    pub fn exec_plugin(&self, exe: &Path, cni_path: &Path, env: &[(&str, &str)], conf: &Value) -> Outcome {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.host.name]).arg(exe);
        for (k, _) in std::env::vars() {
            if k.starts_with("CNI_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("CNI_PATH", cni_path);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(conf.to_string().as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        Outcome {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs plugin `exe` for `command` on attachment (`cid`, pod `pod`, `ifname`).
    pub fn cmd(&self, exe: &Path, command: &str, cid: &str, pod: Option<usize>, ifname: &str, conf: &Value) -> Outcome {
        let netns = pod.map(|p| self.pods[p].path()).unwrap_or_default();
        let mut env = vec![("CNI_COMMAND", command), ("CNI_CONTAINERID", cid), ("CNI_IFNAME", ifname)];
        if pod.is_some() {
            env.push(("CNI_NETNS", netns.as_str()));
        }
        let cni_path = exe.parent().unwrap().to_path_buf();
        self.exec_plugin(exe, &cni_path, &env, conf)
    }

    /// podnet's binary for plugin type `t` (a symlink named after the type).
    pub fn podnet(&self, t: &str) -> PathBuf {
        self.bin().join(t)
    }

    /// The reference plugin of type `t`.
    pub fn reference(&self, t: &str) -> PathBuf {
        Path::new(REFERENCE_DIR).join(t)
    }

    /// Runs a network configuration list as a runtime does: ADD through every plugin in order,
    /// each getting the previous result; returns the last result.
    pub fn add_list(&self, bin: &Path, list: &Value, cid: &str, pod: usize, ifname: &str) -> Result<Value, Outcome> {
        let mut prev: Option<Value> = None;
        for conf in list["plugins"].as_array().unwrap() {
            let c = plugin_conf(list, conf, prev.as_ref());
            let out = self.cmd(&bin.join(conf["type"].as_str().unwrap()), "ADD", cid, Some(pod), ifname, &c);
            if out.code != 0 {
                return Err(out);
            }
            prev = Some(out.json());
        }
        Ok(prev.unwrap_or(Value::Null))
    }

    /// DEL through every plugin in reverse order, with the last result as prevResult.
    pub fn del_list(
        &self,
        bin: &Path,
        list: &Value,
        cid: &str,
        pod: Option<usize>,
        ifname: &str,
        result: Option<&Value>,
    ) {
        for conf in list["plugins"].as_array().unwrap().iter().rev() {
            let c = plugin_conf(list, conf, result);
            self.cmd(&bin.join(conf["type"].as_str().unwrap()), "DEL", cid, pod, ifname, &c).ok();
        }
    }

    /// The reservation files of network `name` in the dataDir: file name → content.
    pub fn store(&self, name: &str) -> Vec<(String, String)> {
        let dir = self.data_dir().join(name);
        let mut out: Vec<(String, String)> = match std::fs::read_dir(&dir) {
            Ok(rd) => rd
                .flatten()
                .map(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    (n, std::fs::read_to_string(e.path()).unwrap_or_default())
                })
                .filter(|(n, _)| n.parse::<std::net::IpAddr>().is_ok())
                .collect(),
            Err(_) => Vec::new(),
        };
        out.sort();
        out
    }
}

/// The configuration one plugin of a list gets: its own object with `name`, `cniVersion`, the
/// previous result, and `runtimeConfig` from the list's `runtimeConfig` for its capabilities.
pub fn plugin_conf(list: &Value, conf: &Value, prev: Option<&Value>) -> Value {
    let mut c = conf.clone();
    c["name"] = list["name"].clone();
    c["cniVersion"] = list["cniVersion"].clone();
    if let Some(p) = prev {
        c["prevResult"] = p.clone();
    }
    if let (Some(caps), Some(rc)) = (conf.get("capabilities").and_then(Value::as_object), list.get("runtimeConfig")) {
        let mut out = serde_json::Map::new();
        for (k, on) in caps {
            if on == true {
                if let Some(v) = rc.get(k) {
                    out.insert(k.clone(), v.clone());
                }
            }
        }
        if !out.is_empty() {
            c["runtimeConfig"] = Value::Object(out);
        }
    }
    c
}

/// `conf` with `prevResult` set (for CHECK and DEL).
pub fn with_prev(conf: &Value, prev: &Value) -> Value {
    let mut c = conf.clone();
    c["prevResult"] = prev.clone();
    c
}

/// A veth pair between the host namespace and a new "outside" namespace (host side
/// 192.0.2.1/24 and 2001:db8::1/64, outside .2 and ::2, no route back to the pods).
pub fn outside(host: &Ns) -> Ns {
    let out = Ns::new("out");
    let (a, b) = (format!("o{}", COUNTER.fetch_add(1, Ordering::SeqCst)), "ext0");
    host.ok(&["ip", "link", "add", &a, "type", "veth", "peer", "name", b, "netns", &out.name]);
    host.ok(&["ip", "addr", "add", "192.0.2.1/24", "dev", &a]);
    host.ok(&["ip", "addr", "add", "2001:db8::1/64", "dev", &a, "nodad"]);
    host.ok(&["ip", "link", "set", &a, "up"]);
    out.ok(&["ip", "addr", "add", "192.0.2.2/24", "dev", b]);
    out.ok(&["ip", "addr", "add", "2001:db8::2/64", "dev", b, "nodad"]);
    out.ok(&["ip", "link", "set", b, "up"]);
    out
}
