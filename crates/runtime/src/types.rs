//! The runtime's public types: what the node agent asks for (specs) and what it gets back
//! (statuses).

use std::path::PathBuf;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// Where the runtime keeps its state and which binary it runs its helpers with.
#[derive(Debug, Clone)]
pub struct Config {
    /// The runtime's state directory, e.g. `/var/lib/podnet/lab/nodes/node1/runtime`. Must be a
    /// UTF-8 path (it is passed to the helpers as an argument).
    pub state_dir: PathBuf,
    /// The podnet binary, re-executed as `podnet internal runtime …` for sandbox holders, container
    /// shims and [`crate::Runtime::enter_command`].
    pub podnet_exe: PathBuf,
}

/// A pod sandbox to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxSpec {
    /// The sandbox id: the pod's uid. A single path component.
    pub id: String,
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// The pod's hostname (set in the sandbox's own UTS namespace, also for hostNetwork pods).
    pub hostname: String,
    /// The network namespace the CNI plugin wired (e.g. `/run/netns/cni-…`); `None` for a
    /// hostNetwork pod, which stays in the caller's network namespace.
    pub netns: Option<PathBuf>,
    /// Files the pod sees in its mount namespace (resolv.conf, hosts, hostname, the service
    /// account token…). The host's files are never changed.
    pub files: Vec<PodFile>,
}

/// A file of a pod's mount namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodFile {
    /// The absolute path inside the pod, e.g. `/etc/resolv.conf` or
    /// `/var/run/secrets/kubernetes.io/serviceaccount/token`.
    pub path: PathBuf,
    /// The file's contents.
    pub contents: Vec<u8>,
    /// Its permission bits, e.g. `0o644`.
    pub mode: u32,
}

/// A container to start in a sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSpec {
    /// The container's name: a single path component, unique in its pod.
    pub name: String,
    /// The command and its arguments (`command` + `args`, resolved by the agent); `argv[0]` is
    /// looked up in `PATH`.
    pub argv: Vec<String>,
    /// Environment variables, on top of `PATH` (a default one), `HOSTNAME` and `HOME=/root`;
    /// later entries win.
    pub env: Vec<(String, String)>,
    /// The working directory (default `/`).
    pub working_dir: Option<PathBuf>,
}

/// The state of a container's current (or last) run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContainerState {
    /// Its process is running.
    Running {
        /// The process id (also its process group id).
        pid: u32,
        /// When it started.
        started_at: SystemTime,
    },
    /// It exited, was killed, or never started.
    Exited {
        /// The exit code; `128 + signal` when killed by a signal; 128 for `StartError`; 137 for
        /// `ContainerStatusUnknown`.
        exit_code: i32,
        /// The signal that killed it, if one did.
        signal: Option<i32>,
        /// When it started.
        started_at: SystemTime,
        /// When it ended.
        finished_at: SystemTime,
        /// `Completed` (exit code 0), `Error`, `StartError` (the command could not be executed),
        /// or `ContainerStatusUnknown` (its shim vanished, so its exit status is lost).
        reason: String,
        /// Details, e.g. why it could not be started; empty otherwise.
        message: String,
    },
}

impl ContainerState {
    /// Whether the container is running.
    pub fn is_running(&self) -> bool {
        matches!(self, ContainerState::Running { .. })
    }
}

/// A container's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerStatus {
    /// The container's name.
    pub name: String,
    /// Its current (or last) run.
    pub state: ContainerState,
    /// The run before, if it was restarted (the `lastState` of Kubernetes).
    pub last_state: Option<ContainerState>,
    /// How many times it was restarted (0 for its first run).
    pub restart_count: u32,
    /// Its log file (CRI format, all runs appended; see [`crate::log`]).
    pub log_path: PathBuf,
}

/// A sandbox's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxStatus {
    /// The sandbox id (the pod's uid).
    pub id: String,
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// The pod's hostname.
    pub hostname: String,
    /// The network namespace it joined; `None` for hostNetwork.
    pub netns: Option<PathBuf>,
    /// When it was created.
    pub created_at: SystemTime,
    /// The holder process, while it is alive.
    pub holder_pid: Option<u32>,
    /// Its containers, sorted by name.
    pub containers: Vec<ContainerStatus>,
}

impl SandboxStatus {
    /// Whether the sandbox's holder (and so its namespaces) is alive.
    pub fn is_ready(&self) -> bool {
        self.holder_pid.is_some()
    }
}
