//! [`Runtime`]: sandboxes and containers on top of the state directory, the holders and the
//! shims.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::Signal;

use crate::error::{Error, Result};
use crate::invocation::{self, start_helper, Invocation};
use crate::procs::ProcId;
use crate::state::{
    read_json_at, ContainerRecord, Dir, FileRecord, SandboxDir, SandboxRecord, StateRecord, CONTAINER, CONTAINERS,
    FILES, HOLDER, HOLDER_LOG, LAST_STATE, LOG, SANDBOX, SANDBOXES, SHIM_LOG, STATE,
};
use crate::types::{Config, ContainerSpec, ContainerState, ContainerStatus, SandboxSpec, SandboxStatus};
use crate::validate::{validate_container, validate_name, validate_sandbox};

/// How often the runtime looks whether processes are gone.
const POLL: Duration = Duration::from_millis(20);
/// How long processes get to disappear after SIGKILL.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);

/// The runtime of one node: pod sandboxes and their containers, all state on disk.
///
/// Calls for different sandboxes run concurrently; calls that change one sandbox are serialized.
pub struct Runtime {
    config: Config,
    locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

impl Runtime {
    /// Opens the runtime on its state directory (created if needed), picking up the sandboxes and
    /// containers already there: their holders and shims kept running while no runtime was open.
    /// Sandbox directories a crash left without a record are removed.
    pub fn open(config: Config) -> Result<Runtime> {
        let state_dir = std::path::absolute(&config.state_dir).map_err(Error::io("resolve", &config.state_dir))?;
        let podnet_exe = std::path::absolute(&config.podnet_exe).map_err(Error::io("resolve", &config.podnet_exe))?;
        if state_dir.to_str().is_none() {
            return Err(Error::invalid(format!("state directory {}", state_dir.display()), "not UTF-8"));
        }
        let sandboxes = state_dir.join(SANDBOXES);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&sandboxes)
            .map_err(Error::io("create directory", &sandboxes))?;
        // The sandboxes hold service-account tokens.
        fs::set_permissions(&sandboxes, fs::Permissions::from_mode(0o700)).map_err(Error::io("chmod", &sandboxes))?;
        for entry in fs::read_dir(&sandboxes).map_err(Error::io("list", &sandboxes))? {
            let path = entry.map_err(Error::io("list", &sandboxes))?.path();
            if path.is_dir() && !path.join(SANDBOX).exists() {
                fs::remove_dir_all(&path).map_err(Error::io("remove incomplete sandbox", &path))?;
            }
        }
        Ok(Runtime { config: Config { state_dir, podnet_exe }, locks: Mutex::default() })
    }

    /// The sandboxes on disk, sorted by id.
    pub fn list_sandboxes(&self) -> Result<Vec<SandboxStatus>> {
        let dir = self.config.state_dir.join(SANDBOXES);
        let mut out = Vec::new();
        for id in list_names(&dir)? {
            if let Some(status) = self.sandbox_status(&id)? {
                out.push(status);
            }
        }
        Ok(out)
    }

    /// The status of one sandbox, `None` if there is no such sandbox.
    pub fn sandbox_status(&self, id: &str) -> Result<Option<SandboxStatus>> {
        validate_name("sandbox id", id)?;
        let dir = self.sandbox_dir(id);
        let Some(record) = read_json_at::<SandboxRecord>(&dir.0, SANDBOX)? else {
            return Ok(None);
        };
        let holder = live_holder(&dir)?;
        let mut containers = Vec::new();
        for name in list_names(&dir.0.join(CONTAINERS))? {
            if let Some(status) = self.container_status_in(&dir, &name)? {
                containers.push(status);
            }
        }
        Ok(Some(SandboxStatus {
            id: record.id,
            namespace: record.namespace,
            name: record.name,
            hostname: record.hostname,
            netns: record.netns,
            created_at: record.created_at,
            holder_pid: holder.map(|h| h.pid),
            containers,
        }))
    }

    /// Creates a sandbox and waits until its holder is ready. Idempotent: if a sandbox with this
    /// id is running, it is returned as it is; one whose holder died is removed and created anew.
    pub fn create_sandbox(&self, spec: &SandboxSpec) -> Result<SandboxStatus> {
        validate_sandbox(spec)?;
        let lock = self.lock(&spec.id);
        let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        let dir = self.sandbox_dir(&spec.id);
        if let Some(status) = self.sandbox_status(&spec.id)? {
            if status.is_ready() {
                return Ok(status);
            }
        }
        self.teardown(&dir, Duration::ZERO)?;
        let created = self.write_sandbox(&dir, spec).and_then(|()| {
            let inv = Invocation::Hold { dir: dir.0.clone() };
            start_helper(&self.config.podnet_exe, &inv, "sandbox holder", &dir.path(HOLDER_LOG))
        });
        if let Err(e) = created {
            let _ = self.teardown(&dir, Duration::ZERO);
            return Err(e);
        }
        self.sandbox_status(&spec.id)?.ok_or_else(|| Error::SandboxNotFound(spec.id.clone()))
    }

    fn write_sandbox(&self, dir: &SandboxDir, spec: &SandboxSpec) -> Result<()> {
        let files_dir = dir.0.join(FILES);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&files_dir)
            .map_err(Error::io("create directory", &files_dir))?;
        let files = Dir::open(&files_dir)?;
        for (n, file) in spec.files.iter().enumerate() {
            files.write_atomic(&n.to_string(), &file.contents, file.mode)?;
        }
        let record = SandboxRecord {
            id: spec.id.clone(),
            namespace: spec.namespace.clone(),
            name: spec.name.clone(),
            hostname: spec.hostname.clone(),
            netns: spec.netns.clone(),
            files: spec.files.iter().map(|f| FileRecord { path: f.path.clone(), mode: f.mode }).collect(),
            created_at: SystemTime::now(),
        };
        Dir::open(&dir.0)?.write_json(SANDBOX, &record)
    }

    /// Removes a sandbox: stops its containers (SIGTERM to each container's process group, up
    /// to `grace`, then SIGKILL), kills whatever else still runs in its mount namespace (e.g.
    /// `podnet exec` sessions) and its holder, and removes its state. Its mounts go away with its
    /// mount namespace; the host had none. Nothing happens if there is no such sandbox.
    pub fn remove_sandbox(&self, id: &str, grace: Duration) -> Result<()> {
        validate_name("sandbox id", id)?;
        let lock = self.lock(id);
        {
            let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
            self.teardown(&self.sandbox_dir(id), grace)?;
        }
        // Forget the lock unless another call is waiting for it (it holds a clone).
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        if locks.get(id).is_some_and(|l| Arc::strong_count(l) == 2) {
            locks.remove(id);
        }
        Ok(())
    }

    fn teardown(&self, dir: &SandboxDir, grace: Duration) -> Result<()> {
        if !dir.0.exists() {
            return Ok(());
        }
        let names = list_names(&dir.0.join(CONTAINERS))?;
        self.stop_containers(dir, &names, grace)?;
        if let Some(holder) = live_holder(dir)? {
            kill_namespace_members(&holder);
            holder.signal(Signal::SIGKILL);
            if !wait_until(Instant::now() + KILL_TIMEOUT, || !holder.is_alive()) {
                return Err(Error::Timeout(format!("sandbox holder {} did not exit after SIGKILL", holder.pid)));
            }
        }
        match fs::remove_dir_all(&dir.0) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::io("remove", &dir.0)(e)),
            _ => Ok(()),
        }
    }

    /// Starts a container in a running sandbox, or starts it again after it exited (its restart
    /// count goes up by one, its previous run becomes `last_state`). A command that cannot be
    /// executed is not an error: its status says `StartError`. Fails if it is still running.
    pub fn start_container(&self, sandbox: &str, spec: &ContainerSpec) -> Result<ContainerStatus> {
        validate_name("sandbox id", sandbox)?;
        validate_container(spec)?;
        let lock = self.lock(sandbox);
        let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        let dir = self.sandbox_dir(sandbox);
        if read_json_at::<SandboxRecord>(&dir.0, SANDBOX)?.is_none() {
            return Err(Error::SandboxNotFound(sandbox.into()));
        }
        if live_holder(&dir)?.is_none() {
            return Err(Error::SandboxNotRunning(sandbox.into()));
        }
        let cdir = dir.container(&spec.name);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&cdir)
            .map_err(Error::io("create directory", &cdir))?;
        if let Some(StateRecord::Running { process, .. }) = current_state(&cdir)? {
            return Err(Error::ContainerRunning { sandbox: sandbox.into(), name: spec.name.clone(), pid: process.pid });
        }
        let state = Dir::open(&cdir)?;
        let restart_count = state.read_json::<ContainerRecord>(CONTAINER)?.map_or(0, |r| r.restart_count + 1);
        state.write_json(CONTAINER, &ContainerRecord { spec: spec.clone(), restart_count })?;
        state.rename(STATE, LAST_STATE)?;
        let inv = Invocation::Shim { dir: cdir.clone() };
        start_helper(&self.config.podnet_exe, &inv, "container shim", &cdir.join(SHIM_LOG))?;
        self.container_status_in(&dir, &spec.name)?.ok_or_else(|| Error::SandboxNotFound(sandbox.into()))
    }

    /// A container's status, `None` if the sandbox has no such container.
    pub fn container_status(&self, sandbox: &str, name: &str) -> Result<Option<ContainerStatus>> {
        validate_name("sandbox id", sandbox)?;
        validate_name("container name", name)?;
        self.container_status_in(&self.sandbox_dir(sandbox), name)
    }

    fn container_status_in(&self, dir: &SandboxDir, name: &str) -> Result<Option<ContainerStatus>> {
        let cdir = dir.container(name);
        let Some(record) = read_json_at::<ContainerRecord>(&cdir, CONTAINER)? else {
            return Ok(None);
        };
        let state = current_state(&cdir)?.map(public_state).unwrap_or_else(|| ContainerState::Exited {
            exit_code: 128,
            signal: None,
            started_at: SystemTime::UNIX_EPOCH,
            finished_at: SystemTime::UNIX_EPOCH,
            reason: "StartError".into(),
            message: "the container was not started (its shim did not report)".into(),
        });
        let last_state = read_json_at::<StateRecord>(&cdir, LAST_STATE)?.map(public_state);
        Ok(Some(ContainerStatus {
            name: name.into(),
            state,
            last_state,
            restart_count: record.restart_count,
            log_path: cdir.join(LOG),
        }))
    }

    /// Stops a container: SIGTERM to its process group, SIGKILL after `grace` if it is still
    /// running; returns once its exit is recorded. Nothing happens if it is not running.
    pub fn stop_container(&self, sandbox: &str, name: &str, grace: Duration) -> Result<()> {
        validate_name("sandbox id", sandbox)?;
        validate_name("container name", name)?;
        let lock = self.lock(sandbox);
        let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        self.stop_containers(&self.sandbox_dir(sandbox), &[name.to_string()], grace)
    }

    /// Stops containers of a sandbox together (one grace period for all).
    fn stop_containers(&self, dir: &SandboxDir, names: &[String], grace: Duration) -> Result<()> {
        let mut running = Vec::new();
        for name in names {
            let cdir = dir.container(name);
            if let Some(StateRecord::Running { process, .. }) = current_state(&cdir)? {
                running.push((cdir, process));
            }
        }
        let all_exited = |running: &[(PathBuf, ProcId)]| {
            running.iter().all(|(cdir, _)| !matches!(current_state(cdir), Ok(Some(StateRecord::Running { .. }))))
        };
        for (_, process) in &running {
            process.signal_group(Signal::SIGTERM);
        }
        if wait_until(Instant::now() + grace, || all_exited(&running)) {
            return Ok(());
        }
        for (_, process) in &running {
            process.signal_group(Signal::SIGKILL);
        }
        if wait_until(Instant::now() + KILL_TIMEOUT, || all_exited(&running)) {
            return Ok(());
        }
        Err(Error::Timeout(format!("containers in {} did not exit after SIGKILL", dir.0.display())))
    }

    /// The log file of a container (CRI format, see [`crate::log`]).
    pub fn log_path(&self, sandbox: &str, name: &str) -> PathBuf {
        self.sandbox_dir(sandbox).container(name).join(LOG)
    }

    /// Writes a container's output to `out` (see [`crate::copy_log`]); with `follow`, keeps
    /// writing what it prints until it is no longer running.
    pub fn copy_logs(&self, sandbox: &str, name: &str, out: &mut dyn io::Write, follow: bool) -> Result<()> {
        let mut running =
            || follow && matches!(self.container_status(sandbox, name), Ok(Some(s)) if s.state.is_running());
        crate::log::copy_log(&self.log_path(sandbox, name), out, &mut running)
    }

    /// A command that runs `argv` inside the sandbox's network, UTS and mount namespaces (for
    /// `podnet exec` and exec probes), via `podnet internal runtime enter`, which executes it in
    /// place: the command's pid, stdio and exit status are the returned command's (127 if it
    /// cannot be executed). It runs in `/` with the caller's environment; set what it needs on
    /// the returned command. Fails if the sandbox is not running.
    pub fn enter_command(&self, sandbox: &str, argv: &[String]) -> Result<Command> {
        validate_name("sandbox id", sandbox)?;
        if argv.is_empty() {
            return Err(Error::invalid("command", "empty"));
        }
        let dir = self.sandbox_dir(sandbox);
        if read_json_at::<SandboxRecord>(&dir.0, SANDBOX)?.is_none() {
            return Err(Error::SandboxNotFound(sandbox.into()));
        }
        if live_holder(&dir)?.is_none() {
            return Err(Error::SandboxNotRunning(sandbox.into()));
        }
        Ok(invocation::command(&self.config.podnet_exe, &Invocation::Enter { dir: dir.0, argv: argv.to_vec() }))
    }

    fn sandbox_dir(&self, id: &str) -> SandboxDir {
        SandboxDir::new(&self.config.state_dir, id)
    }

    fn lock(&self, id: &str) -> Arc<Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(locks.entry(id.to_string()).or_default())
    }
}

/// The current run of a container: what its shim recorded, except that a run whose process and
/// shim are both gone without a recorded exit is recorded (and returned) as
/// `ContainerStatusUnknown`. `None` if nothing was recorded.
fn current_state(cdir: &Path) -> Result<Option<StateRecord>> {
    let Some(record) = read_json_at::<StateRecord>(cdir, STATE)? else {
        return Ok(None);
    };
    let StateRecord::Running { process, shim, started_at } = record else {
        return Ok(Some(record));
    };
    if process.is_alive() || shim.is_alive() {
        return Ok(Some(record));
    }
    // The shim may have recorded the exit just before it ended.
    let state = Dir::open(cdir)?;
    match state.read_json::<StateRecord>(STATE)? {
        Some(StateRecord::Running { .. }) | None => {}
        exited => return Ok(exited),
    }
    let lost = StateRecord::Exited {
        exit_code: 137,
        signal: None,
        started_at,
        finished_at: SystemTime::now(),
        reason: "ContainerStatusUnknown".into(),
        message: format!("the container's shim (pid {}) is gone, so its exit status is unknown", shim.pid),
    };
    state.write_json(STATE, &lost)?;
    Ok(Some(lost))
}

fn public_state(record: StateRecord) -> ContainerState {
    match record {
        StateRecord::Running { process, started_at, .. } => ContainerState::Running { pid: process.pid, started_at },
        StateRecord::Exited { exit_code, signal, started_at, finished_at, reason, message } => {
            ContainerState::Exited { exit_code, signal, started_at, finished_at, reason, message }
        }
    }
}

/// The sandbox's holder, if it is alive.
fn live_holder(dir: &SandboxDir) -> Result<Option<ProcId>> {
    Ok(read_json_at::<ProcId>(&dir.0, HOLDER)?.filter(ProcId::is_alive))
}

/// SIGKILLs every process other than the holder in the holder's mount namespace (never the
/// caller's own).
fn kill_namespace_members(holder: &ProcId) {
    let ns_of = |pid: &str| fs::read_link(format!("/proc/{pid}/ns/mnt")).ok();
    let Some(ns) = ns_of(&holder.pid.to_string()) else { return };
    if ns_of("self").as_ref() == Some(&ns) || !holder.is_alive() {
        return;
    }
    let Ok(entries) = fs::read_dir("/proc") else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        if pid != holder.pid && ns_of(&pid.to_string()).as_ref() == Some(&ns) {
            if let Ok(Some(p)) = ProcId::of(pid) {
                p.signal(Signal::SIGKILL);
            }
        }
    }
}

/// Polls `done` until it is true (→ true) or `deadline` passed (→ false).
fn wait_until(deadline: Instant, mut done: impl FnMut() -> bool) -> bool {
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

/// The names of the subdirectories of `dir`, sorted; none if it does not exist.
fn list_names(dir: &Path) -> Result<Vec<String>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("list", dir)(e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(Error::io("list", dir))?;
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            if let Some(name) = entry.file_name().to_str() {
                names.push(name.to_string());
            }
        }
    }
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_is_shared_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Runtime>();
    }

    #[test]
    fn opens_and_lists_an_empty_state_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let state_dir = tmp.path().join("rt");
        fs::create_dir_all(state_dir.join(SANDBOXES).join("half-created")).unwrap();
        let rt = Runtime::open(Config { state_dir: state_dir.clone(), podnet_exe: "/bin/false".into() }).unwrap();
        assert!(rt.list_sandboxes().unwrap().is_empty());
        assert!(!state_dir.join(SANDBOXES).join("half-created").exists());
        let mode = fs::metadata(state_dir.join(SANDBOXES)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        assert_eq!(rt.sandbox_status("nope").unwrap(), None);
        assert_eq!(rt.container_status("nope", "c").unwrap(), None);
        rt.remove_sandbox("nope", Duration::ZERO).unwrap();
        rt.stop_container("nope", "c", Duration::ZERO).unwrap();
        assert!(matches!(rt.enter_command("nope", &["true".into()]), Err(Error::SandboxNotFound(_))));
        let c = ContainerSpec { name: "c".into(), argv: vec!["true".into()], env: vec![], working_dir: None };
        assert!(matches!(rt.start_container("nope", &c), Err(Error::SandboxNotFound(_))));
    }
}
