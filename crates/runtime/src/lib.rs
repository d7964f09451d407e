//! podnet's process runtime: pod sandboxes and their containers, as plain processes of the
//! host's file system in their own namespaces (no images).
//!
//! A sandbox is a holder process (`podnet internal runtime hold`) that joins the
//! pod's network namespace (or stays in the node's for hostNetwork), unshares a UTS namespace with
//! the pod's hostname and a mount namespace with the pod's files, and sleeps. A container is a
//! process started by a shim (`podnet internal runtime shim`) inside the holder's
//! namespaces; the shim records its exit status. Holders and shims are detached from the caller
//! (re-parented, own session), so the node agent can restart and pick them up with
//! [`Runtime::open`]: everything is in the state directory:
//!
//! ```text
//! STATE_DIR/sandboxes/ID/              one pod sandbox (ID = the pod's uid)
//!   sandbox.json                       the spec without file contents
//!   files/N                            contents of the spec's N-th file (mounted by the holder)
//!   holder.json                        pid and start time of the holder, once it is ready
//!   holder.log                         the holder's own stderr
//!   containers/NAME/
//!     container.json                   the spec and the restart count
//!     state.json                       the current run (running: pids; exited: status), by the shim
//!     last-state.json                  the run before
//!     log                              the container's stdout+stderr, CRI format (see [`log`])
//!     shim.log                         the shim's own stderr
//! ```
//!
//! Records are replaced atomically (temporary file, rename; no fsync: they describe processes,
//! which do not outlive the machine). Processes are recorded with their start time, so a reused
//! pid is not mistaken for them; a holder or shim that died is seen as such.
//!
//! The API is synchronous; the agent calls it from blocking threads.
#![forbid(unsafe_code)]

mod enter;
mod error;
mod holder;
mod invocation;
pub mod log;
mod mounts;
mod ns;
mod procs;
mod runtime;
mod shim;
mod state;
mod types;
mod validate;

pub use error::{Error, Result};
pub use log::{copy_log, parse_entry, LogEntry};
pub use procs::process_running;
pub use runtime::Runtime;
pub use shim::DEFAULT_PATH;
pub use types::{Config, ContainerSpec, ContainerState, ContainerStatus, PodFile, SandboxSpec, SandboxStatus};

use invocation::Invocation;

/// The entry point of `podnet internal runtime ARGS…` (sandbox holders, container shims, and
/// `enter`). Must run before the process has any other thread: the helpers enter namespaces.
pub fn internal_main(args: &[String]) -> Result<(), Error> {
    match Invocation::parse(args)? {
        Invocation::Hold { dir } => detached(|| holder::run(&dir)),
        Invocation::Shim { dir } => detached(|| shim::run(&dir)),
        Invocation::Enter { dir, argv } => enter::run(&dir, &argv),
    }
}

/// Runs a helper after it detached from its caller; a failure to detach is reported to the
/// runtime like any other.
fn detached(helper: impl FnOnce() -> Result<()>) -> Result<()> {
    if let Err(e) = invocation::detach() {
        invocation::report_failure(&e);
        return Err(e);
    }
    helper()
}
