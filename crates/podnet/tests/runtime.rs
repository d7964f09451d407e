//! Privileged integration tests of the process runtime (podnet-runtime) with the real `podnet`
//! binary as its helper: sandboxes in throw-away network namespaces (`pn-rt-<pid>-<n>`), their
//! containers, logs, exec, graceful stops, an agent restart (a second `Runtime::open` on the same
//! state directory), and removal that leaves no process, mount or state behind. Every test
//! cleans up through guards even when it fails, and checks that the host's resolv.conf, hosts,
//! hostname and mounts were not changed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use podnet_netlink::Netns;
use podnet_runtime::{
    Config, ContainerSpec, ContainerState, ContainerStatus, Error, PodFile, Runtime, SandboxSpec, SandboxStatus,
};

const SA_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
const RESOLV: &str = "nameserver 10.96.0.10\nsearch default.svc.cluster.local svc.cluster.local cluster.local\n\
                      options ndots:5\n";

/// Whether the test can run: true as root. Otherwise prints the marker `scripts/test` looks for
/// and, under CI, fails the test; outside CI the test returns early.
fn require_root(test: &str) -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|l| l.split_whitespace().nth(1));
    if euid == Some("0") {
        return true;
    }
    let _ = writeln!(std::io::stdout().lock(), "PODNET-PRIVILEGED-TEST-SKIPPED: {test}");
    if std::env::var_os("CI").is_some() {
        panic!("privileged test {test} cannot run without root, and CI must not skip it");
    }
    false
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst))
}

/// A throw-away named network namespace, deleted when dropped.
struct TestNs {
    name: String,
    ns: Netns,
}

impl TestNs {
    fn new() -> TestNs {
        let name = unique("pn-rt");
        let ns = Netns::create(&name).unwrap_or_else(|e| panic!("create {name}: {e}"));
        TestNs { name, ns }
    }

    /// `net:[INODE]`, as `readlink /proc/self/ns/net` prints it inside the namespace.
    fn link(&self) -> String {
        format!("net:[{}]", self.ns.id().unwrap().ino)
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        if let Err(e) = Netns::delete(&self.name) {
            eprintln!("cleanup: delete namespace {}: {e}", self.name);
        }
    }
}

/// What the host looks like from here; compared at the end of each test.
#[derive(Debug, PartialEq)]
struct HostState {
    resolv: Option<Vec<u8>>,
    hosts: Option<Vec<u8>>,
    hostname_file: Option<Vec<u8>>,
    hostname: String,
    secrets_dir: bool,
    /// Our mounts of interest: anything under /etc, /run/secrets or a tmpfs on /run.
    mounts: Vec<String>,
}

impl HostState {
    fn capture() -> HostState {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let mounts = mountinfo
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with("/etc") || m.starts_with("/run/secrets") || *m == "/run" || *m == "/var/run")
            .map(str::to_string)
            .collect();
        HostState {
            resolv: std::fs::read("/etc/resolv.conf").ok(),
            hosts: std::fs::read("/etc/hosts").ok(),
            hostname_file: std::fs::read("/etc/hostname").ok(),
            hostname: std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
            secrets_dir: Path::new("/run/secrets").exists(),
            mounts,
        }
    }
}

/// A runtime on a temporary state directory; removes every sandbox in it when dropped.
struct Lab {
    rt: Runtime,
    state_dir: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Lab {
    fn new() -> Lab {
        let tmp = tempfile::tempdir().unwrap();
        let state_dir = tmp.path().join("node1/runtime");
        let rt = Runtime::open(config(&state_dir)).unwrap();
        Lab { rt, state_dir, _tmp: tmp }
    }

    /// A second runtime on the same state directory: what the node agent gets after a restart.
    fn reopen(&self) -> Runtime {
        Runtime::open(config(&self.state_dir)).unwrap()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for s in self.rt.list_sandboxes().unwrap_or_default() {
            if let Err(e) = self.rt.remove_sandbox(&s.id, Duration::ZERO) {
                eprintln!("cleanup: remove sandbox {}: {e}", s.id);
            }
        }
    }
}

fn config(state_dir: &Path) -> Config {
    Config { state_dir: state_dir.to_path_buf(), podnet_exe: env!("CARGO_BIN_EXE_podnet").into() }
}

fn file(path: &str, contents: &str, mode: u32) -> PodFile {
    PodFile { path: path.into(), contents: contents.as_bytes().to_vec(), mode }
}

fn sandbox_spec(hostname: &str, netns: Option<&TestNs>) -> SandboxSpec {
    SandboxSpec {
        id: unique("uid"),
        namespace: "default".into(),
        name: hostname.into(),
        hostname: hostname.into(),
        netns: netns.map(|t| t.ns.path().to_path_buf()),
        files: vec![
            file("/etc/resolv.conf", RESOLV, 0o644),
            file("/etc/hosts", "127.0.0.1 localhost\n10.244.1.5 web-0\n", 0o644),
            file("/etc/hostname", &format!("{hostname}\n"), 0o644),
            file(&format!("{SA_DIR}/token"), "eyJhbGciOi.token", 0o600),
            file(&format!("{SA_DIR}/ca.crt"), "-----BEGIN CERTIFICATE-----\n", 0o644),
            file(&format!("{SA_DIR}/namespace"), "default", 0o644),
        ],
    }
}

fn container(name: &str, script: &str) -> ContainerSpec {
    ContainerSpec {
        name: name.into(),
        argv: vec!["sh".into(), "-c".into(), script.into()],
        env: vec![],
        working_dir: None,
    }
}

fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn status(rt: &Runtime, sandbox: &str, name: &str) -> ContainerStatus {
    rt.container_status(sandbox, name).unwrap().unwrap_or_else(|| panic!("no container {name}"))
}

/// Waits until the container exited and returns (exit code, signal, reason, message).
fn wait_exited(rt: &Runtime, sandbox: &str, name: &str) -> (i32, Option<i32>, String, String) {
    wait_for(&format!("{name} to exit"), Duration::from_secs(20), || match status(rt, sandbox, name).state {
        ContainerState::Exited { exit_code, signal, reason, message, .. } => Some((exit_code, signal, reason, message)),
        ContainerState::Running { .. } => None,
    })
}

fn running_pid(rt: &Runtime, sandbox: &str, name: &str) -> u32 {
    match status(rt, sandbox, name).state {
        ContainerState::Running { pid, .. } => pid,
        other => panic!("{name} is not running: {other:?}"),
    }
}

fn logs(rt: &Runtime, sandbox: &str, name: &str) -> String {
    let mut out = Vec::new();
    rt.copy_logs(sandbox, name, &mut out, false).unwrap();
    String::from_utf8(out).unwrap()
}

fn wait_log(rt: &Runtime, sandbox: &str, name: &str, needle: &str) -> String {
    wait_for(&format!("{needle:?} in the log of {name}"), Duration::from_secs(20), || {
        let text = logs(rt, sandbox, name);
        text.contains(needle).then_some(text)
    })
}

/// Whether a process is alive (a zombie that nobody reaped is not).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit(')').next().unwrap().split_whitespace().next().unwrap();
            state != "Z" && state != "X"
        }
        Err(_) => false,
    }
}

/// Live processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(needle) && alive(pid) && pid != std::process::id() {
            pids.push(pid);
        }
    }
    pids
}

/// Checks that a removed sandbox left nothing behind.
fn assert_gone(lab: &Lab, sandbox: &SandboxStatus, pids: &[u32]) {
    assert_eq!(lab.rt.sandbox_status(&sandbox.id).unwrap(), None);
    let dir = lab.state_dir.join("sandboxes").join(&sandbox.id);
    assert!(!dir.exists(), "{} still exists", dir.display());
    for pid in pids.iter().copied().chain(sandbox.holder_pid) {
        assert!(!alive(pid), "process {pid} of sandbox {} is still alive", sandbox.id);
    }
    let dir = dir.to_string_lossy().into_owned();
    assert_eq!(processes_mentioning(&dir), Vec::<u32>::new(), "helpers of {dir} still run");
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mountinfo.contains(&dir), "a mount of {dir} is left in the host:\n{mountinfo}");
}

#[test]
fn sandbox_containers_logs_exec_and_removal() {
    if !require_root("sandbox_containers_logs_exec_and_removal") {
        return;
    }
    let host = HostState::capture();
    let ns = TestNs::new();
    let lab = Lab::new();
    let rt = &lab.rt;
    let spec = sandbox_spec("web-0", Some(&ns));
    let sandbox = rt.create_sandbox(&spec).unwrap();
    let id = sandbox.id.clone();
    assert!(sandbox.is_ready(), "{sandbox:?}");
    assert_eq!((sandbox.namespace.as_str(), sandbox.name.as_str()), ("default", "web-0"));
    // Idempotent: the same holder.
    assert_eq!(rt.create_sandbox(&spec).unwrap().holder_pid, sandbox.holder_pid);

    // Container 1 reports what it sees and stays; container 2 too, then exits with 3.
    let script = format!(
        "hostname; readlink /proc/self/ns/net; cat /etc/resolv.conf /etc/hostname /etc/hosts; \
         cat {SA_DIR}/token; echo; stat -c %a {SA_DIR}/token; echo \"FOO=$FOO HOSTNAME=$HOSTNAME\"; pwd; \
         echo to-stderr >&2; echo done; exec sleep 60"
    );
    let mut c1 = container("app", &script);
    c1.env = vec![("FOO".into(), "bar baz".into())];
    c1.working_dir = Some("/tmp".into());
    let s1 = rt.start_container(&id, &c1).unwrap();
    assert_eq!(s1.restart_count, 0);
    assert!(s1.state.is_running(), "{s1:?}");
    let s2 = rt.start_container(&id, &container("side", "readlink /proc/self/ns/net; hostname; exit 3")).unwrap();
    assert_eq!(s2.log_path, rt.log_path(&id, "side"));

    assert_eq!(wait_exited(rt, &id, "side"), (3, None, "Error".to_string(), String::new()));
    let side = logs(rt, &id, "side");
    assert_eq!(side, format!("{}\nweb-0\n", ns.link()));

    let app = wait_log(rt, &id, "app", "done\n");
    let expected_stdout = format!(
        "web-0\n{}\n{RESOLV}web-0\n127.0.0.1 localhost\n10.244.1.5 web-0\neyJhbGciOi.token\n600\n\
         FOO=bar baz HOSTNAME=web-0\n/tmp\n",
        ns.link()
    );
    // stdout and stderr are separate pipes: their lines interleave in any order.
    assert!(app.contains("to-stderr\n"), "{app}");
    let stdout_only = app.replacen("to-stderr\n", "", 1);
    assert!(stdout_only.starts_with(&expected_stdout), "log of app:\n{app}");
    // The file itself is in the CRI format.
    let raw = std::fs::read_to_string(rt.log_path(&id, "app")).unwrap();
    for line in raw.lines() {
        let entry = podnet_runtime::parse_entry(line.as_bytes()).unwrap_or_else(|| panic!("not CRI: {line:?}"));
        assert!(entry.time.len() == 30 && entry.time.ends_with('Z'), "{line}");
        assert!(!entry.partial);
    }
    assert!(raw.lines().any(|l| l.ends_with(" stderr F to-stderr")), "{raw}");
    assert!(raw.lines().any(|l| l.ends_with(" stdout F web-0")), "{raw}");

    // Exec: the sandbox's namespaces, files and hostname.
    let out = rt
        .enter_command(
            &id,
            &["sh".into(), "-c".into(), format!("hostname; readlink /proc/self/ns/net; cat {SA_DIR}/namespace")],
        )
        .unwrap()
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("web-0\n{}\ndefault", ns.link()));
    // /run, where the service-account directory had to be created, still shows the host's
    // entries (here: the namespace file), now next to `secrets`.
    let out = rt
        .enter_command(&id, &["sh".into(), "-c".into(), format!("ls /run; test -e /run/netns/{}", ns.name)])
        .unwrap()
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let pod_run = String::from_utf8_lossy(&out.stdout).into_owned();
    let pod_run: Vec<&str> = pod_run.lines().collect();
    assert!(pod_run.contains(&"secrets") && pod_run.contains(&"netns"), "{pod_run:?}");
    let missing = rt.enter_command(&id, &["/nonexistent/binary".into()]).unwrap().output().unwrap();
    assert_eq!(missing.status.code(), Some(127), "{missing:?}");

    // A command that cannot be executed: StartError, not an error of the call.
    let bad =
        ContainerSpec { name: "bad".into(), argv: vec!["/nonexistent/cmd".into()], env: vec![], working_dir: None };
    let s = rt.start_container(&id, &bad).unwrap();
    match &s.state {
        ContainerState::Exited { exit_code: 128, reason, message, .. } if reason == "StartError" => {
            assert!(message.contains("/nonexistent/cmd"), "{message}")
        }
        other => panic!("expected StartError, got {other:?}"),
    }

    // A restart: the count goes up, the previous run becomes the last state; a running container
    // is not started twice.
    let again = rt.start_container(&id, &container("side", "exit 0")).unwrap();
    assert_eq!(again.restart_count, 1);
    assert!(matches!(again.last_state, Some(ContainerState::Exited { exit_code: 3, .. })), "{again:?}");
    assert_eq!(wait_exited(rt, &id, "side").2, "Completed");
    assert!(matches!(rt.start_container(&id, &c1), Err(Error::ContainerRunning { .. })));

    // The host saw none of it.
    assert_eq!(HostState::capture(), host);

    let listed = rt.list_sandboxes().unwrap();
    assert_eq!(listed.len(), 1);
    let names: Vec<&str> = listed[0].containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["app", "bad", "side"]);

    let app_pid = running_pid(rt, &id, "app");
    let started = Instant::now();
    rt.remove_sandbox(&id, Duration::from_secs(10)).unwrap();
    assert!(started.elapsed() < Duration::from_secs(5), "sleep should end on SIGTERM");
    assert_gone(&lab, &sandbox, &[app_pid]);
    rt.remove_sandbox(&id, Duration::ZERO).unwrap();
    assert!(Netns::exists(&ns.name), "the sandbox must not delete the CNI's namespace");
    assert_eq!(HostState::capture(), host);
}

#[test]
fn graceful_stop_and_agent_restart() {
    if !require_root("graceful_stop_and_agent_restart") {
        return;
    }
    let host = HostState::capture();
    let lab = Lab::new();
    let rt1 = lab.reopen();
    // hostNetwork: the node's (here: the test's) network namespace, its own UTS and mounts.
    let sandbox = rt1.create_sandbox(&sandbox_spec("host-net", None)).unwrap();
    let id = sandbox.id.clone();
    let stubborn = container("stubborn", "trap '' TERM; echo started; exec sleep 60");
    let polite = container("polite", "trap 'echo bye; exit 0' TERM; echo started; while :; do sleep 0.1; done");
    let short = container("short", "echo one; sleep 1; echo two; exit 7");
    let orphan = container("orphan", "echo started; exec sleep 60");
    for c in [&stubborn, &polite, &short, &orphan] {
        rt1.start_container(&id, c).unwrap();
    }
    for name in ["stubborn", "polite", "orphan"] {
        wait_log(&rt1, &id, name, "started\n");
    }
    let pids: Vec<u32> = ["stubborn", "polite", "orphan"].iter().map(|n| running_pid(&rt1, &id, n)).collect();
    let out = rt1.enter_command(&id, &["readlink".into(), "/proc/self/ns/net".into()]).unwrap().output().unwrap();
    let here = std::fs::read_link("/proc/self/ns/net").unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), here.to_string_lossy());
    let out = rt1.enter_command(&id, &["hostname".into()]).unwrap().output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "host-net\n");

    // The agent restarts: the containers keep running and are found again.
    drop(rt1);
    let rt = lab.reopen();
    let listed = rt.list_sandboxes().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].holder_pid, sandbox.holder_pid);
    for (name, pid) in ["stubborn", "polite", "orphan"].iter().zip(&pids) {
        assert_eq!(running_pid(&rt, &id, name), *pid);
    }
    // … and sees the exit of one that ends after the restart; `logs -f` follows it to the end.
    let mut followed = Vec::new();
    rt.copy_logs(&id, "short", &mut followed, true).unwrap();
    assert_eq!(String::from_utf8_lossy(&followed), "one\ntwo\n");
    assert_eq!(wait_exited(&rt, &id, "short"), (7, None, "Error".to_string(), String::new()));

    // SIGTERM handled: exits within the grace period.
    let t = Instant::now();
    rt.stop_container(&id, "polite", Duration::from_secs(10)).unwrap();
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(wait_exited(&rt, &id, "polite"), (0, None, "Completed".to_string(), String::new()));
    let polite_log = logs(&rt, &id, "polite");
    assert!(polite_log.contains("bye\n"), "{polite_log:?}");

    // SIGTERM ignored: SIGKILL after the grace period.
    let t = Instant::now();
    rt.stop_container(&id, "stubborn", Duration::from_millis(1500)).unwrap();
    assert!(t.elapsed() >= Duration::from_millis(1500), "{:?}", t.elapsed());
    assert_eq!(wait_exited(&rt, &id, "stubborn"), (137, Some(9), "Error".to_string(), String::new()));
    assert!(!alive(pids[0]));
    rt.stop_container(&id, "stubborn", Duration::ZERO).unwrap(); // idempotent

    // A shim that dies: the container still runs; once it is gone, its status is unknown.
    let state_file = lab.state_dir.join(format!("sandboxes/{id}/containers/orphan/state.json"));
    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(&state_file).unwrap()).unwrap();
    let shim = state["shim"]["pid"].as_u64().unwrap();
    assert!(std::process::Command::new("kill").args(["-9", &shim.to_string()]).status().unwrap().success());
    wait_for("the shim to die", Duration::from_secs(5), || (!alive(shim as u32)).then_some(()));
    assert_eq!(running_pid(&rt, &id, "orphan"), pids[2]);
    rt.stop_container(&id, "orphan", Duration::ZERO).unwrap();
    let (code, _, reason, _) = wait_exited(&rt, &id, "orphan");
    assert_eq!((code, reason.as_str()), (137, "ContainerStatusUnknown"));

    assert_eq!(HostState::capture(), host);
    rt.remove_sandbox(&id, Duration::ZERO).unwrap();
    assert_gone(&lab, &sandbox, &pids);
    assert_eq!(HostState::capture(), host);
}

#[test]
fn sandbox_of_a_missing_netns_fails_cleanly() {
    if !require_root("sandbox_of_a_missing_netns_fails_cleanly") {
        return;
    }
    let lab = Lab::new();
    let mut spec = sandbox_spec("broken", None);
    spec.netns = Some(format!("/run/netns/{}", unique("pn-rt-missing")).into());
    let err = lab.rt.create_sandbox(&spec).unwrap_err();
    assert!(err.to_string().contains("network namespace"), "{err}");
    assert_eq!(lab.rt.sandbox_status(&spec.id).unwrap(), None);
    assert!(lab.rt.list_sandboxes().unwrap().is_empty());

    // A holder that dies is seen as such; the sandbox can then be created anew.
    let spec = sandbox_spec("phoenix", None);
    let first = lab.rt.create_sandbox(&spec).unwrap();
    let holder = first.holder_pid.unwrap();
    assert!(std::process::Command::new("kill").args(["-9", &holder.to_string()]).status().unwrap().success());
    wait_for("the holder to die", Duration::from_secs(5), || (!alive(holder)).then_some(()));
    assert!(!lab.rt.sandbox_status(&spec.id).unwrap().unwrap().is_ready());
    assert!(matches!(lab.rt.start_container(&spec.id, &container("c", "true")), Err(Error::SandboxNotRunning(_))));
    assert!(matches!(lab.rt.enter_command(&spec.id, &["true".into()]), Err(Error::SandboxNotRunning(_))));
    let second = lab.rt.create_sandbox(&spec).unwrap();
    assert!(second.is_ready());
    assert_ne!(second.holder_pid, Some(holder));
}
