//! The runtime's errors: each names the operation and, where there is one, the path.

use std::io;
use std::path::{Path, PathBuf};

/// Errors of the runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad arguments to an internal entry point.
    #[error("{0}")]
    Usage(String),
    /// A file system or process operation on a path failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: String,
        /// The file or directory it was done to.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A system call without a path failed (setns, unshare, sethostname, kill, …).
    #[error("{op}: {source}")]
    Sys {
        /// What was being done.
        op: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A state file could not be decoded.
    #[error("decode {}: {source}", path.display())]
    Decode {
        /// The state file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// A spec or configuration the runtime cannot use.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// What was invalid (e.g. `container name "a/b"`).
        what: String,
        /// Why.
        reason: String,
    },
    /// No sandbox with this id.
    #[error("sandbox {0} not found")]
    SandboxNotFound(String),
    /// The sandbox exists but its holder process is gone (its namespaces with it).
    #[error("sandbox {0} is not running (its holder process is gone)")]
    SandboxNotRunning(String),
    /// The container is still running.
    #[error("container {name} of sandbox {sandbox} is already running (pid {pid})")]
    ContainerRunning {
        /// The sandbox id.
        sandbox: String,
        /// The container name.
        name: String,
        /// Its process.
        pid: u32,
    },
    /// A sandbox holder or container shim failed to start.
    #[error("start {what}: {message}")]
    Helper {
        /// `sandbox holder` or `container shim`.
        what: String,
        /// What the helper reported, or the end of its log.
        message: String,
    },
    /// Processes did not go away in time.
    #[error("timed out: {0}")]
    Timeout(String),
}

/// A `Result` with the runtime's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A closure mapping an I/O error of `op` on `path` into an [`Error::Io`].
    pub(crate) fn io(op: impl Into<String>, path: impl AsRef<Path>) -> impl FnOnce(io::Error) -> Error {
        let op = op.into();
        let path = path.as_ref().to_path_buf();
        move |source| Error::Io { op, path, source }
    }

    /// A closure mapping a failed system call of `op` into an [`Error::Sys`].
    pub(crate) fn sys(op: impl Into<String>) -> impl FnOnce(nix::Error) -> Error {
        let op = op.into();
        move |errno| Error::Sys { op, source: io::Error::from(errno) }
    }

    /// A closure mapping a failed system call of `op` on `path` into an [`Error::Io`].
    pub(crate) fn sys_at(op: impl Into<String>, path: impl AsRef<Path>) -> impl FnOnce(nix::Error) -> Error {
        let f = Error::io(op, path);
        move |errno| f(io::Error::from(errno))
    }

    pub(crate) fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::Invalid { what: what.into(), reason: reason.into() }
    }
}
