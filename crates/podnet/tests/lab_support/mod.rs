//! The lab harness of the `podnet up` tests: a lab per test (a unique name, its own
//! KUBECONFIG) removed on drop, also when the test fails; kubectl, `podnet exec` and `podnet node
//! exec` helpers; an "outside" host on the lab's underlay.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{podnet_bin, seed_manifests};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A lab for one test, removed on drop.
pub struct Lab {
    pub name: String,
    pub dir: tempfile::TempDir,
}

impl Lab {
    pub fn up(extra: &[&str]) -> Lab {
        let name = format!("t{}-{}", std::process::id() % 100_000, COUNTER.fetch_add(1, Ordering::SeqCst));
        let lab = Lab { name, dir: tempfile::tempdir().unwrap() };
        let out = lab.podnet(&[&["up", "--name", &lab.name][..], extra].concat());
        assert!(out.status.success(), "podnet up failed:\n{}{}", text(&out.stdout), text(&out.stderr));
        lab
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    pub fn podnet(&self, args: &[&str]) -> Output {
        Command::new(podnet_bin()).args(args).env("KUBECONFIG", self.kubeconfig()).output().unwrap()
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.podnet(args);
        assert!(out.status.success(), "podnet {args:?} failed:\n{}{}", text(&out.stdout), text(&out.stderr));
        text(&out.stdout)
    }

    pub fn kubectl(&self, args: &[&str]) -> String {
        let out = Command::new("kubectl").args(args).env("KUBECONFIG", self.kubeconfig()).output().unwrap();
        assert!(out.status.success(), "kubectl {args:?} failed:\n{}{}", text(&out.stdout), text(&out.stderr));
        text(&out.stdout)
    }

    pub fn pod(&self, name: &str) -> Value {
        serde_json::from_str(&self.kubectl(&["get", "pod", name, "-o", "json"])).unwrap()
    }

    /// Waits until the pod runs with every container ready; returns its IP and node.
    pub fn wait_ready(&self, name: &str) -> (String, String) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let p = self.pod(name);
            let ready = p["status"]["conditions"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"));
            if ready {
                return (p["status"]["podIP"].as_str().unwrap().into(), p["spec"]["nodeName"].as_str().unwrap().into());
            }
            assert!(Instant::now() < deadline, "pod {name} not ready: {}", p["status"]);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `podnet exec POD -- CMD…`'s output (which must succeed).
    pub fn exec(&self, pod: &str, cmd: &[&str]) -> String {
        self.ok(&[&["exec", "--name", &self.name, pod, "--"][..], cmd].concat())
    }

    pub fn node_exec(&self, node: &str, cmd: &[&str]) -> String {
        self.ok(&[&["node", "exec", "--name", &self.name, node, "--"][..], cmd].concat())
    }

    pub fn logs(&self, pod: &str) -> String {
        self.ok(&["logs", "--name", &self.name, pod])
    }

    pub fn state_dir(&self) -> PathBuf {
        Path::new("/var/lib/podnet/labs").join(&self.name)
    }

    pub fn namespaces(&self) -> Vec<String> {
        podnet_netlink::Netns::list()
            .unwrap()
            .into_iter()
            .filter(|n| n.starts_with(&format!("podnet.{}.", self.name)))
            .collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.podnet(&["down", "--name", &self.name]);
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub fn curl(url: &str) -> Vec<String> {
    vec!["curl".into(), "-sS".into(), "--max-time".into(), "5".into(), url.into()]
}

pub fn seed(name: &str) -> String {
    let path = seed_manifests().into_iter().find(|p| p.ends_with(name)).unwrap_or_else(|| panic!("no seed {name}"));
    path.to_str().unwrap().to_string()
}

/// A pod from a one-line spec: `name`, image, node, optional command.
pub fn run_pod(lab: &Lab, name: &str, image: &str, node: &str) {
    let manifest = serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"nodeSelector": {"kubernetes.io/hostname": node}, "containers": [{"name": "c", "image": image}]}});
    let path = lab.dir.path().join(format!("{name}.json"));
    std::fs::write(&path, manifest.to_string()).unwrap();
    lab.kubectl(&["apply", "-f", path.to_str().unwrap()]);
}

/// An "outside" host on the lab's underlay, serving the nginx lab image; killed on drop.
pub struct Outside {
    child: Child,
}

impl Outside {
    pub fn start(lab: &Lab) -> (Outside, String) {
        let ns = format!("podnet.{}.outside", lab.name);
        let ip = podnet_lab::spec::outside_ip(0);
        podnet_lab::topology::create_attached(&lab.name, &ns, "vout", ip).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &ns, podnet_bin(), "internal", "image", "nginx"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        (Outside { child }, ip.to_string())
    }

    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let out = std::mem::replace(&mut self.child, Command::new("true").spawn().unwrap()).wait_with_output().unwrap();
        format!("{}{}", text(&out.stdout), text(&out.stderr))
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `curl URL` from the "outside" host ([`Outside`]).
pub fn outside_curl(lab: &Lab, url: &str) -> Result<String, String> {
    let ns = format!("podnet.{}.outside", lab.name);
    let out = Command::new("ip").args(["netns", "exec", &ns, "curl", "-sS", "--max-time", "5", url]).output().unwrap();
    if out.status.success() {
        Ok(text(&out.stdout))
    } else {
        Err(text(&out.stderr))
    }
}

/// Retries `f` for a few seconds (a server may still be binding its port).
pub fn eventually_ok(what: &str, f: impl FnMut() -> Result<String, String>) -> String {
    eventually_within(Duration::from_secs(15), what, f)
}

/// Retries `f` until it succeeds or `limit` has passed.
pub fn eventually_within(limit: Duration, what: &str, mut f: impl FnMut() -> Result<String, String>) -> String {
    let deadline = Instant::now() + limit;
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) if Instant::now() > deadline => panic!("{what}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

pub fn try_exec(lab: &Lab, pod: &str, cmd: &[String]) -> Result<String, String> {
    let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let out = lab.podnet(&[&["exec", "--name", &lab.name, pod, "--"][..], &args].concat());
    if out.status.success() {
        Ok(text(&out.stdout))
    } else {
        Err(format!("{}{}", text(&out.stdout), text(&out.stderr)))
    }
}

impl Lab {
    pub fn apply_yaml(&self, file: &str, yaml: &str) {
        let path = self.dir.path().join(file);
        std::fs::write(&path, yaml).unwrap();
        self.kubectl(&["apply", "-f", path.to_str().unwrap()]);
    }

    /// Waits until `check` holds for the pod's JSON.
    pub fn wait_pod(&self, name: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let p = self.pod(name);
            if check(&p) {
                return p;
            }
            assert!(Instant::now() < deadline, "pod {name}: {what} did not happen: {}", p["status"]);
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
