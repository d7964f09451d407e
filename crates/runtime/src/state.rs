//! The state directory: its layout, the records in it, and crash-safe writes.
//!
//! ```text
//! STATE_DIR/sandboxes/ID/              one pod sandbox (ID = the pod's uid)
//!   sandbox.json                       SandboxRecord: the spec without file contents
//!   files/N                            contents of the spec's N-th file (mounted by the holder)
//!   holder.json                        ProcId of the holder, written by it once it is ready
//!   holder.log                         the holder's own stderr
//!   containers/NAME/
//!     container.json                   ContainerRecord: the spec and the restart count
//!     state.json                       StateRecord of the current run, written by the shim
//!     last-state.json                  StateRecord of the run before
//!     log                              the container's stdout+stderr, CRI format
//!     shim.log                         the shim's own stderr
//! ```
//!
//! Every record is written to a temporary file in the same directory and renamed over the old
//! one, relative to an open directory descriptor ([`Dir`]): the shim writes from inside the
//! pod's mount namespace, where the state directory's path may lead elsewhere.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use nix::fcntl::{open, openat, renameat, OFlag};
use nix::sys::stat::Mode;
use nix::unistd::{unlinkat, UnlinkatFlags};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::procs::ProcId;
use crate::types::ContainerSpec;

pub(crate) const SANDBOXES: &str = "sandboxes";
pub(crate) const SANDBOX: &str = "sandbox.json";
pub(crate) const FILES: &str = "files";
pub(crate) const HOLDER: &str = "holder.json";
pub(crate) const HOLDER_LOG: &str = "holder.log";
pub(crate) const CONTAINERS: &str = "containers";
pub(crate) const CONTAINER: &str = "container.json";
pub(crate) const STATE: &str = "state.json";
pub(crate) const LAST_STATE: &str = "last-state.json";
pub(crate) const LOG: &str = "log";
pub(crate) const SHIM_LOG: &str = "shim.log";

/// A sandbox as recorded on disk: its spec without the file contents (those are in `files/N`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SandboxRecord {
    pub id: String,
    pub namespace: String,
    pub name: String,
    pub hostname: String,
    pub netns: Option<PathBuf>,
    pub files: Vec<FileRecord>,
    pub created_at: SystemTime,
}

/// A pod file: where it goes and its mode; its contents are in `files/N`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FileRecord {
    pub path: PathBuf,
    pub mode: u32,
}

/// A container as recorded on disk by the runtime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ContainerRecord {
    pub spec: ContainerSpec,
    pub restart_count: u32,
}

/// A container run as recorded on disk by its shim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub(crate) enum StateRecord {
    Running {
        process: ProcId,
        shim: ProcId,
        started_at: SystemTime,
    },
    Exited {
        exit_code: i32,
        signal: Option<i32>,
        started_at: SystemTime,
        finished_at: SystemTime,
        reason: String,
        message: String,
    },
}

/// The directory of one sandbox.
#[derive(Debug, Clone)]
pub(crate) struct SandboxDir(pub PathBuf);

impl SandboxDir {
    pub fn new(state_dir: &Path, id: &str) -> SandboxDir {
        SandboxDir(state_dir.join(SANDBOXES).join(id))
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub fn file(&self, n: usize) -> PathBuf {
        self.0.join(FILES).join(n.to_string())
    }

    pub fn container(&self, name: &str) -> PathBuf {
        self.0.join(CONTAINERS).join(name)
    }

    /// The sandbox directory of a container directory (`ID/containers/NAME` → `ID`).
    pub fn of_container(container_dir: &Path) -> Option<SandboxDir> {
        Some(SandboxDir(container_dir.parent()?.parent()?.to_path_buf()))
    }
}

/// An open directory in which records are read and written atomically.
pub(crate) struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Dir {
    /// Opens the directory `path`.
    pub fn open(path: &Path) -> Result<Dir> {
        let fd = open(path, OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(Error::sys_at("open directory", path))?;
        Ok(Dir { fd, path: path.to_path_buf() })
    }

    /// Replaces the file `name` with `bytes` (mode `mode`): a temporary file, then a rename, so a
    /// reader sees the old record or the new one, also if the writer dies between. There is no
    /// fsync: the records describe processes, which do not outlive the machine either (as
    /// containerd keeps its runtime state in /run).
    pub fn write_atomic(&self, name: &str, bytes: &[u8], mode: u32) -> Result<()> {
        let tmp = format!(".{name}.tmp-{}-{}", std::process::id(), TMP_COUNTER.fetch_add(1, Ordering::Relaxed));
        let err = |op: &str, e: io::Error| Error::Io { op: op.into(), path: self.path.join(name), source: e };
        let fd = openat(
            &self.fd,
            tmp.as_str(),
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(mode),
        )
        .map_err(|e| err("create", e.into()))?;
        let mut file = File::from(fd);
        let written = (|| {
            // The umask may have taken bits away.
            file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))?;
            file.write_all(bytes)
        })();
        let renamed = written
            .map_err(|e| err("write", e))
            .and_then(|()| renameat(&self.fd, tmp.as_str(), &self.fd, name).map_err(|e| err("rename", e.into())));
        if renamed.is_err() {
            let _ = unlinkat(&self.fd, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
        }
        renamed
    }

    /// The contents of the file `name`, `None` if there is none.
    pub fn read(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let fd = match openat(&self.fd, name, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()) {
            Ok(fd) => fd,
            Err(nix::errno::Errno::ENOENT) => return Ok(None),
            Err(e) => return Err(Error::sys_at("open", self.path.join(name))(e)),
        };
        let mut bytes = Vec::new();
        File::from(fd).read_to_end(&mut bytes).map_err(Error::io("read", self.path.join(name)))?;
        Ok(Some(bytes))
    }

    /// Writes a record as JSON, atomically.
    pub fn write_json<T: Serialize>(&self, name: &str, value: &T) -> Result<()> {
        let mut bytes = serde_json::to_vec_pretty(value).expect("records serialize");
        bytes.push(b'\n');
        self.write_atomic(name, &bytes, 0o644)
    }

    /// Reads a JSON record, `None` if there is none.
    pub fn read_json<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>> {
        match self.read(name)? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| Error::Decode { path: self.path.join(name), source }),
        }
    }

    /// Renames `from` to `to` in this directory; nothing happens if `from` does not exist.
    pub fn rename(&self, from: &str, to: &str) -> Result<()> {
        match renameat(&self.fd, from, &self.fd, to) {
            Ok(()) | Err(nix::errno::Errno::ENOENT) => Ok(()),
            Err(e) => Err(Error::sys_at(format!("rename to {to}"), self.path.join(from))(e)),
        }
    }
}

/// Reads a JSON record at `dir/name`, `None` if the directory or the file does not exist.
pub(crate) fn read_json_at<T: DeserializeOwned>(dir: &Path, name: &str) -> Result<Option<T>> {
    match Dir::open(dir) {
        Ok(d) => d.read_json(name),
        Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn records_round_trip_atomically() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::open(tmp.path()).unwrap();
        assert_eq!(dir.read_json::<ContainerRecord>(CONTAINER).unwrap(), None);
        let rec = ContainerRecord {
            spec: ContainerSpec {
                name: "c".into(),
                argv: vec!["sh".into(), "-c".into(), "echo hi".into()],
                env: vec![("A".into(), "b c".into())],
                working_dir: Some("/tmp".into()),
            },
            restart_count: 2,
        };
        dir.write_json(CONTAINER, &rec).unwrap();
        dir.write_json(CONTAINER, &rec).unwrap();
        assert_eq!(dir.read_json::<ContainerRecord>(CONTAINER).unwrap(), Some(rec));
        // No temporary files are left behind.
        let names: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from(CONTAINER)]);

        dir.write_atomic("f", b"secret", 0o600).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(tmp.path().join("f")).unwrap().permissions().mode() & 0o777, 0o600);
        dir.rename("f", "g").unwrap();
        dir.rename("f", "g").unwrap();
        assert_eq!(dir.read("g").unwrap().unwrap(), b"secret");
    }

    #[test]
    fn state_records_encode_as_tagged_json() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
        let running = StateRecord::Running {
            process: ProcId { pid: 42, start_ticks: 7 },
            shim: ProcId { pid: 41, start_ticks: 6 },
            started_at: t,
        };
        let json = serde_json::to_value(&running).unwrap();
        assert_eq!(json["state"], "running");
        assert_eq!(json["process"]["pid"], 42);
        assert_eq!(serde_json::from_value::<StateRecord>(json).unwrap(), running);
        let exited = StateRecord::Exited {
            exit_code: 137,
            signal: Some(9),
            started_at: t,
            finished_at: t + Duration::from_secs(1),
            reason: "Error".into(),
            message: String::new(),
        };
        let json = serde_json::to_string(&exited).unwrap();
        assert!(json.contains(r#""state":"exited""#), "{json}");
        assert_eq!(serde_json::from_str::<StateRecord>(&json).unwrap(), exited);
        assert!(serde_json::from_str::<StateRecord>(r#"{"state":"paused"}"#).is_err());
    }

    #[test]
    fn missing_directories_read_as_none() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(read_json_at::<ProcId>(&tmp.path().join("nope"), HOLDER).unwrap(), None);
        let layout = SandboxDir::new(tmp.path(), "uid");
        let c = layout.container("web");
        assert_eq!(c, tmp.path().join("sandboxes/uid/containers/web"));
        assert_eq!(SandboxDir::of_container(&c).unwrap().0, layout.0);
        assert_eq!(layout.file(3), tmp.path().join("sandboxes/uid/files/3"));
    }
}
