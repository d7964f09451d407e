//! The container shim (`podnet internal runtime shim DIR`): it enters the sandbox's
//! namespaces, starts the container's process in its own process group with its stdout and
//! stderr piped into the CRI log, records it as running, forwards SIGTERM/SIGINT/SIGHUP it gets
//! to the container's group, waits for the process to exit, kills what is left of its group (as
//! the end of a container's PID namespace would), and records the exit status. It runs in its
//! own session, re-parented away from the node agent, so containers survive agent restarts and
//! their exits are still recorded.

use std::fs::{File, OpenOptions};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use nix::sys::signal::{killpg, SigSet, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};

use crate::error::{Error, Result};
use crate::invocation::{report_failure, report_ready};
use crate::log::{format_entry, pump, timestamp, Stream};
use crate::ns::SandboxNamespaces;
use crate::procs::ProcId;
use crate::state::{ContainerRecord, Dir, SandboxDir, SandboxRecord, StateRecord, CONTAINER, LOG, SANDBOX, STATE};

/// The `PATH` of containers that set none (the one of most images).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How long the shim waits for the log pipes to drain after the process exited.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// What the shim needs once it is inside the sandbox.
struct Prepared {
    state: Dir,
    record: ContainerRecord,
    hostname: String,
    log: Arc<Mutex<File>>,
}

/// The shim.
pub(crate) fn run(dir: &Path) -> Result<()> {
    let prepared = match prepare(dir) {
        Ok(p) => p,
        Err(e) => {
            report_failure(&e);
            return Err(e);
        }
    };
    supervise(prepared)
}

/// Everything up to entering the sandbox: files are opened before, as the sandbox's mount
/// namespace may show other things at these paths.
fn prepare(dir: &Path) -> Result<Prepared> {
    let state = Dir::open(dir)?;
    let record: ContainerRecord = state
        .read_json(CONTAINER)?
        .ok_or_else(|| Error::io("read", dir.join(CONTAINER))(std::io::ErrorKind::NotFound.into()))?;
    let sandbox = SandboxDir::of_container(dir)
        .ok_or_else(|| Error::Usage(format!("not a container directory: {}", dir.display())))?;
    let sandbox_record: SandboxRecord = Dir::open(&sandbox.0)?
        .read_json(SANDBOX)?
        .ok_or_else(|| Error::io("read", sandbox.path(SANDBOX))(std::io::ErrorKind::NotFound.into()))?;
    let log_path = dir.join(LOG);
    let log = OpenOptions::new().create(true).append(true).open(&log_path).map_err(Error::io("open", &log_path))?;
    SandboxNamespaces::open(&sandbox.0)?.enter()?;
    Ok(Prepared { state, record, hostname: sandbox_record.hostname, log: Arc::new(Mutex::new(log)) })
}

fn supervise(p: Prepared) -> Result<()> {
    let spec = &p.record.spec;
    let (out_r, out_w) = std::io::pipe().map_err(|e| Error::Sys { op: "create a pipe".into(), source: e })?;
    let (err_r, err_w) = std::io::pipe().map_err(|e| Error::Sys { op: "create a pipe".into(), source: e })?;
    let mut cmd = Command::new(&spec.argv[0]);
    cmd.args(&spec.argv[1..])
        .env_clear()
        .env("PATH", DEFAULT_PATH)
        .env("HOSTNAME", &p.hostname)
        .env("HOME", "/root")
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(spec.working_dir.as_deref().unwrap_or(Path::new("/")))
        .stdin(Stdio::null())
        .stdout(out_w)
        .stderr(err_w)
        .process_group(0);
    let started_at = SystemTime::now();
    let spawned = cmd.spawn();
    // The write ends of the pipes must only be held by the container, or the log never ends.
    drop(cmd);
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => return start_error(&p, started_at, e),
    };
    // Signals are taken with sigwait: blocked here, after the container is spawned (a blocked
    // mask is inherited across fork and exec, and a container with SIGTERM blocked could not be
    // stopped) and before any thread exists, so that every thread of the shim inherits it.
    // Nothing signals the shim before it reports ready; a SIGCHLD that came before the block was
    // discarded, so the container's state is checked once below.
    let mut signals = SigSet::empty();
    for s in [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        signals.add(s);
    }
    signals.thread_block().map_err(Error::sys("block signals"))?;
    let process = ProcId::of(child.id()).ok().flatten().unwrap_or(ProcId { pid: child.id(), start_ticks: 0 });
    let shim = ProcId::current().map_err(Error::io("read", "/proc/self/stat"))?;
    p.state.write_json(STATE, &StateRecord::Running { process, shim, started_at })?;
    let pgid = process.pid();

    let (done_tx, done_rx) = mpsc::channel();
    for (reader, stream) in [(out_r, Stream::Stdout), (err_r, Stream::Stderr)] {
        let log = Arc::clone(&p.log);
        let done = done_tx.clone();
        std::thread::spawn(move || {
            if let Err(e) = pump(reader, stream, &log) {
                eprintln!("shim: copy {stream:?} to the log: {e}");
            }
            let _ = done.send(());
        });
    }
    drop(done_tx);
    // Only now: the runtime returns on `ready` and reads the state just written.
    report_ready()?;

    let peek = WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT | WaitPidFlag::WNOHANG;
    let mut exited_early = !matches!(waitid(Id::Pid(pgid), peek), Ok(WaitStatus::StillAlive));
    let status = loop {
        let signal = if std::mem::take(&mut exited_early) {
            Signal::SIGCHLD
        } else {
            signals.wait().map_err(Error::sys("wait for signals"))?
        };
        match signal {
            Signal::SIGCHLD => {
                // Peek without reaping: while the exited leader is a zombie, its process group id
                // cannot be reused, so what is left of the group can be killed safely.
                match waitid(Id::Pid(pgid), peek) {
                    Ok(WaitStatus::StillAlive) => continue,
                    Ok(_) | Err(_) => {
                        let _ = killpg(pgid, Signal::SIGKILL);
                        break child.wait().map_err(Error::io("wait for", format!("process {pgid}")))?;
                    }
                }
            }
            forwarded => {
                let _ = killpg(pgid, forwarded);
            }
        }
    };
    let finished_at = SystemTime::now();
    // The log pipes end when the last process holding them is gone; do not wait for strays.
    for _ in 0..2 {
        if done_rx.recv_timeout(DRAIN_TIMEOUT).is_err() {
            break;
        }
    }
    let (exit_code, signal) = match (status.code(), status.signal()) {
        (Some(code), _) => (code, None),
        (None, Some(sig)) => (128 + sig, Some(sig)),
        (None, None) => (255, None),
    };
    let reason = if exit_code == 0 { "Completed" } else { "Error" };
    p.state.write_json(
        STATE,
        &StateRecord::Exited {
            exit_code,
            signal,
            started_at,
            finished_at,
            reason: reason.into(),
            message: String::new(),
        },
    )
}

/// Records that the command could not be started (and says why in the log too).
fn start_error(p: &Prepared, at: SystemTime, e: std::io::Error) -> Result<()> {
    let message = format!("exec {:?}: {e}", p.record.spec.argv[0]);
    let entry = format_entry(&timestamp(at), Stream::Stderr, false, message.as_bytes());
    let _ = std::io::Write::write_all(&mut *p.log.lock().unwrap_or_else(|e| e.into_inner()), &entry);
    p.state.write_json(
        STATE,
        &StateRecord::Exited {
            exit_code: 128,
            signal: None,
            started_at: at,
            finished_at: at,
            reason: "StartError".into(),
            message,
        },
    )?;
    report_ready()
}
