//! Network namespaces: create, open, list, delete, and run code inside one.
//!
//! [`Netns::create`] does exactly what `ip netns add NAME` does, so iproute2 sees podnet's
//! namespaces and podnet sees iproute2's: it makes `/run/netns` a shared mount point (bind-mounting
//! it onto itself first if needed), creates the empty file `/run/netns/NAME`, and bind-mounts a
//! fresh network namespace onto it. The namespace is created by a short-lived thread that calls
//! `unshare(CLONE_NEWNET)` and mounts `/proc/thread-self/ns/net`; the calling thread never changes
//! namespace. [`Netns::delete`] is `ip netns del`: a lazy unmount and an unlink.
//!
//! [`run_in`] runs a closure on a dedicated thread that first enters the namespace with `setns`.
//! Everything that depends on the thread's namespace — a netlink socket (which stays bound to the
//! namespace it was opened in, see [`crate::Handle::in_netns`]), `/proc/sys/net` — works there.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::statfs::{fstatfs, NSFS_MAGIC, PROC_SUPER_MAGIC};

use crate::error::{Error, Result};

/// Where named network namespaces live (as with `ip netns`).
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// An open network namespace: a file descriptor of a namespace file (`/run/netns/NAME`,
/// `/proc/PID/ns/net`, …), which keeps the namespace alive while it is open.
#[derive(Debug)]
pub struct Netns {
    file: File,
    path: PathBuf,
}

/// Identity of a namespace (device and inode of its nsfs file): equal ids are the same namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NetnsId {
    /// Device number of the nsfs file.
    pub dev: u64,
    /// Inode number, as shown by `ls -l /proc/self/ns/net` (`net:[INODE]`).
    pub ino: u64,
}

impl Netns {
    /// Creates the named namespace `/run/netns/NAME`, as `ip netns add NAME` does.
    ///
    /// Fails with [`crate::ErrorKind::AlreadyExists`] if the name is taken.
    pub fn create(name: &str) -> Result<Netns> {
        let op = || format!("create network namespace {name}");
        validate_name(name).map_err(|m| Error::invalid(op(), m))?;
        prepare_run_dir().map_err(|e| Error::io(op(), e))?;
        let path = named_path(name);
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o000)
            .open(&path)
            .map_err(|e| Error::io(format!("{}: create {}", op(), path.display()), e))?;
        let mounted = std::thread::scope(|s| {
            std::thread::Builder::new()
                .name("podnet-netns-add".into())
                .spawn_scoped(s, || -> nix::Result<()> {
                    unshare(CloneFlags::CLONE_NEWNET)?;
                    mount(Some("/proc/thread-self/ns/net"), &path, Some("none"), MsFlags::MS_BIND, None::<&str>)
                })
                .and_then(|h| h.join().map_err(|_| io::Error::other("namespace thread panicked")))
        });
        let mounted = match mounted {
            Ok(Ok(())) => Ok(()),
            Ok(Err(errno)) => Err(io::Error::from(errno)),
            Err(e) => Err(e),
        };
        if let Err(e) = mounted {
            let _ = umount2(&path, MntFlags::MNT_DETACH);
            let _ = std::fs::remove_file(&path);
            return Err(Error::io(op(), e));
        }
        Netns::open(&path)
    }

    /// Opens an existing namespace file: `/run/netns/NAME`, `/proc/PID/ns/net`, or the path a
    /// container runtime passes in `CNI_NETNS`.
    ///
    /// Fails with [`crate::ErrorKind::NotFound`] if the path does not exist, and with
    /// [`crate::ErrorKind::InvalidArgument`] if it is not a namespace (e.g. a leftover file in
    /// `/run/netns` that is no longer mounted).
    pub fn open(path: impl AsRef<Path>) -> Result<Netns> {
        let path = path.as_ref();
        let op = || format!("open network namespace {}", path.display());
        let file = OpenOptions::new().read(true).open(path).map_err(|e| Error::io(op(), e))?;
        let fs = fstatfs(&file).map_err(|e| Error::io(op(), e.into()))?;
        if fs.filesystem_type() != NSFS_MAGIC && fs.filesystem_type() != PROC_SUPER_MAGIC {
            return Err(Error::invalid(op(), "not a namespace file (is it mounted?)"));
        }
        Ok(Netns { file, path: path.to_path_buf() })
    }

    /// Opens the named namespace `/run/netns/NAME`.
    pub fn open_named(name: &str) -> Result<Netns> {
        validate_name(name).map_err(|m| Error::invalid(format!("open network namespace {name}"), m))?;
        Netns::open(named_path(name))
    }

    /// Opens the calling thread's own namespace (`/proc/thread-self/ns/net`).
    pub fn current() -> Result<Netns> {
        Netns::open("/proc/thread-self/ns/net")
    }

    /// Deletes the named namespace, as `ip netns del NAME` does: unmounts `/run/netns/NAME`
    /// (lazily, so open handles keep the namespace alive until they are closed) and removes the
    /// file. Fails with [`crate::ErrorKind::NotFound`] if there is no such namespace.
    pub fn delete(name: &str) -> Result<()> {
        validate_name(name).map_err(|m| Error::invalid(format!("delete network namespace {name}"), m))?;
        Netns::delete_path(named_path(name))
    }

    /// Deletes a bind-mounted namespace file at any path (see [`Netns::delete`]).
    pub fn delete_path(path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let _ = umount2(path, MntFlags::MNT_DETACH);
        std::fs::remove_file(path).map_err(|e| Error::io(format!("delete network namespace {}", path.display()), e))
    }

    /// The names of the namespaces in `/run/netns` (what `ip netns list` lists), sorted.
    pub fn list() -> Result<Vec<String>> {
        let mut names = Vec::new();
        let dir = match std::fs::read_dir(NETNS_RUN_DIR) {
            Ok(dir) => dir,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(names),
            Err(e) => return Err(Error::io(format!("list {NETNS_RUN_DIR}"), e)),
        };
        for entry in dir {
            let entry = entry.map_err(|e| Error::io(format!("list {NETNS_RUN_DIR}"), e))?;
            if let Some(name) = entry.file_name().to_str() {
                names.push(name.to_string());
            }
        }
        names.sort();
        Ok(names)
    }

    /// Whether `/run/netns/NAME` exists.
    pub fn exists(name: &str) -> bool {
        validate_name(name).is_ok() && named_path(name).exists()
    }

    /// The path this namespace was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The name, if this is a namespace under `/run/netns`.
    pub fn name(&self) -> Option<&str> {
        if self.path.parent() == Some(Path::new(NETNS_RUN_DIR)) {
            self.path.file_name().and_then(|n| n.to_str())
        } else {
            None
        }
    }

    /// The identity of the namespace (equal for two handles of the same namespace).
    pub fn id(&self) -> Result<NetnsId> {
        let meta = self.file.metadata().map_err(|e| Error::io(format!("stat {}", self.path.display()), e))?;
        Ok(NetnsId { dev: meta.dev(), ino: meta.ino() })
    }

    /// Another handle of the same namespace (a duplicated file descriptor).
    pub fn try_clone(&self) -> Result<Netns> {
        let file = self.file.try_clone().map_err(|e| Error::io(format!("dup {}", self.path.display()), e))?;
        Ok(Netns { file, path: self.path.clone() })
    }

    /// Runs `f` on a dedicated thread inside this namespace; see [`run_in`].
    pub fn run<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        run_in(self, f)
    }
}

impl AsFd for Netns {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

/// Runs `f` on a new thread that has entered `netns` (with `setns`), waits for it and returns
/// its result. The calling thread's namespace never changes. A panic in `f` is resumed on the
/// calling thread. Fails only if the thread cannot be started or cannot enter the namespace.
pub fn run_in<T, F>(netns: &Netns, f: F) -> Result<T>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    let fd = netns.as_fd();
    let op = || format!("enter network namespace {}", netns.path.display());
    std::thread::scope(|s| {
        let handle = std::thread::Builder::new()
            .name("podnet-netns".into())
            .spawn_scoped(s, move || -> std::result::Result<T, Errno> {
                setns(fd, CloneFlags::CLONE_NEWNET)?;
                Ok(f())
            })
            .map_err(|e| Error::io(op(), e))?;
        match handle.join() {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(errno)) => Err(Error::from_errno(op(), errno)),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// `/run/netns/NAME`.
fn named_path(name: &str) -> PathBuf {
    Path::new(NETNS_RUN_DIR).join(name)
}

/// The rules `ip netns` applies to a name: a single path component.
pub(crate) fn validate_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() {
        return Err("empty namespace name".into());
    }
    if name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(format!("{name:?} is not a valid namespace name"));
    }
    if name.len() > 255 {
        return Err("namespace name longer than 255 bytes".into());
    }
    Ok(())
}

/// Makes `/run/netns` exist and be a shared mount point, as iproute2 does, so that unmounting a
/// namespace in one mount namespace unmounts it in all of them.
fn prepare_run_dir() -> io::Result<()> {
    // Two threads of one process must not both stack a bind mount on the directory.
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    DirBuilder::new().recursive(true).mode(0o755).create(NETNS_RUN_DIR)?;
    let mut made_mount = false;
    loop {
        match mount(None::<&str>, NETNS_RUN_DIR, Some("none"), MsFlags::MS_SHARED | MsFlags::MS_REC, None::<&str>) {
            Ok(()) => return Ok(()),
            Err(Errno::EINVAL) if !made_mount => {
                mount(
                    Some(NETNS_RUN_DIR),
                    NETNS_RUN_DIR,
                    Some("none"),
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None::<&str>,
                )?;
                made_mount = true;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("pod-1").is_ok());
        assert!(validate_name("cni-1234-abcd").is_ok());
        for bad in ["", ".", "..", "a/b", "/abs", "nul\0"] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        assert!(validate_name(&"x".repeat(256)).is_err());
        assert_eq!(named_path("a"), Path::new("/run/netns/a"));
    }
}
