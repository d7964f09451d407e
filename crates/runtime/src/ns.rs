//! Entering a sandbox: the network, UTS and mount namespaces of its holder process.

use std::fs::File;
use std::path::Path;

use nix::sched::{setns, CloneFlags};

use crate::error::{Error, Result};
use crate::procs::ProcId;
use crate::state::{Dir, HOLDER};

/// The namespaces of a sandbox, opened (so they stay valid even if the holder exits meanwhile).
pub(crate) struct SandboxNamespaces {
    net: File,
    uts: File,
    mnt: File,
}

const KINDS: [(&str, CloneFlags); 3] =
    [("net", CloneFlags::CLONE_NEWNET), ("uts", CloneFlags::CLONE_NEWUTS), ("mnt", CloneFlags::CLONE_NEWNS)];

impl SandboxNamespaces {
    /// Opens the namespaces of the holder recorded in the sandbox directory `dir`. Fails with
    /// [`Error::SandboxNotRunning`] if the holder is gone (or its pid now belongs to another
    /// process).
    pub fn open(dir: &Path) -> Result<SandboxNamespaces> {
        let id = || dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let holder: ProcId = Dir::open(dir)?.read_json(HOLDER)?.ok_or_else(|| Error::SandboxNotRunning(id()))?;
        if !holder.is_alive() {
            return Err(Error::SandboxNotRunning(id()));
        }
        let open = |kind: &str| {
            let path = format!("/proc/{}/ns/{kind}", holder.pid);
            File::open(&path).map_err(Error::io("open namespace", &path))
        };
        let ns = SandboxNamespaces { net: open("net")?, uts: open("uts")?, mnt: open("mnt")? };
        // The pid could have been reused between the check and the opens.
        if !holder.is_alive() {
            return Err(Error::SandboxNotRunning(id()));
        }
        Ok(ns)
    }

    /// Moves the calling process into the namespaces. The process must be single-threaded (the
    /// kernel refuses `setns` into a mount namespace otherwise); the working and root directories
    /// become the sandbox's `/`.
    pub fn enter(self) -> Result<()> {
        for ((kind, flag), file) in KINDS.iter().zip([&self.net, &self.uts, &self.mnt]) {
            setns(file, *flag).map_err(Error::sys(format!("enter the sandbox's {kind} namespace (setns)")))?;
        }
        std::env::set_current_dir("/").map_err(Error::io("change directory to", "/"))
    }
}
