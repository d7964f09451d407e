//! The crate's one error type: which call or file failed, and why.

use std::path::PathBuf;

use nix::errno::Errno;

/// A failed bpf(2) call, BTF lookup or bpffs operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bpf(2) command the kernel refused.
    #[error("bpf {op}: {errno}")]
    Sys { op: &'static str, errno: Errno },
    /// The verifier refused a program; `log` is its last lines.
    #[error("the kernel refused the eBPF program {name}: {errno}: {log}")]
    Verifier { name: String, errno: Errno, log: String },
    /// A pinned object is not what it should be (another map type, key or value size).
    #[error("{}: {what}", path.display())]
    Mismatch { path: PathBuf, what: String },
    /// The kernel's BTF lacks a type the program needs, or cannot be read.
    #[error("BTF {}: {what}", path.display())]
    Btf { path: PathBuf, what: String },
    /// Attaching the program to a device (netlink).
    #[error("attaching the program: {0}")]
    Attach(String),
    /// A file system operation (reading BTF, creating or mounting the pin directory).
    #[error("{}: {what}: {errno}", path.display())]
    Fs { path: PathBuf, what: &'static str, errno: Errno },
}

impl Error {
    /// The errno of a refused call, if that is what it was.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Error::Sys { errno, .. } | Error::Verifier { errno, .. } | Error::Fs { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
