//! The bpf(2) commands podnet uses, one function each, over `repr(C)` prefixes of the kernel's
//! `union bpf_attr` (the kernel zero-fills what a shorter attribute leaves out). This module is
//! the crate's only unsafe code: the syscall itself, and taking ownership of the descriptors it
//! returns.
//!
//! [`Map`] checks the key and value sizes it was opened with against the kernel's, so a key or
//! value slice handed to the kernel is always as long as the kernel will read.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;

use crate::error::{Error, Result};

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_OBJ_GET: libc::c_long = 7;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;

/// `BPF_MAP_TYPE_HASH`.
pub const MAP_TYPE_HASH: u32 = 1;
/// `BPF_F_NO_PREALLOC`: a hash map's elements are allocated as they are added.
pub const F_NO_PREALLOC: u32 = 1;
/// `BPF_PROG_TYPE_SCHED_CLS`: a tc classifier.
pub const PROG_TYPE_SCHED_CLS: u32 = 3;

/// The attribute layouts: each a prefix of `union bpf_attr` for its commands.
#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
}

#[repr(C)]
struct MapElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
struct ObjAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
}

#[repr(C)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// The head of `struct bpf_map_info`.
#[repr(C)]
#[derive(Default)]
struct MapInfo {
    map_type: u32,
    id: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
}

/// The attribute types above: plain data the kernel may read and write.
trait Attr {}
impl Attr for MapCreateAttr {}
impl Attr for MapElemAttr {}
impl Attr for ProgLoadAttr {}
impl Attr for ObjAttr {}
impl Attr for InfoAttr {}

/// bpf(`cmd`, `attr`): the syscall's non-negative result, or its errno.
fn bpf<A: Attr>(cmd: libc::c_long, attr: &mut A) -> Result<i64, Errno> {
    let size = std::mem::size_of::<A>() as libc::c_uint;
    // SAFETY: `attr` is a `repr(C)` prefix of `union bpf_attr` for `cmd`, valid and exclusively
    // borrowed for the call; every pointer inside it was taken from a buffer the caller keeps
    // alive across this call, and is at least as long as the kernel reads (see the callers).
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut A as *mut libc::c_void, size) };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(r)
    }
}

/// bpf(`cmd`, `attr`) for a command that returns a new descriptor.
fn bpf_fd<A: Attr>(cmd: libc::c_long, attr: &mut A) -> Result<OwnedFd, Errno> {
    let fd = bpf(cmd, attr)?;
    // SAFETY: the kernel returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn name16(name: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (o, b) in out.iter_mut().zip(name.bytes().take(15)) {
        *o = b;
    }
    out
}

fn c_path(path: &Path) -> Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| Error::Fs {
        path: path.to_path_buf(),
        what: "path contains a NUL byte",
        errno: Errno::EINVAL,
    })
}

fn pin(fd: BorrowedFd<'_>, path: &Path) -> Result<()> {
    let c = c_path(path)?;
    let mut attr = ObjAttr { pathname: c.as_ptr() as u64, bpf_fd: fd.as_raw_fd() as u32, file_flags: 0 };
    bpf(BPF_OBJ_PIN, &mut attr).map(|_| ()).map_err(|errno| Error::Fs { path: path.into(), what: "pinning", errno })
}

fn open_pinned(path: &Path) -> Result<OwnedFd> {
    let c = c_path(path)?;
    let mut attr = ObjAttr { pathname: c.as_ptr() as u64, bpf_fd: 0, file_flags: 0 };
    bpf_fd(BPF_OBJ_GET, &mut attr).map_err(|errno| Error::Fs {
        path: path.into(),
        what: "opening the pinned object",
        errno,
    })
}

/// A BPF map with fixed key and value sizes.
#[derive(Debug)]
pub struct Map {
    fd: OwnedFd,
    key_size: usize,
    value_size: usize,
}

impl Map {
    /// Creates a hash map named `name` (at most 15 bytes are kept).
    pub fn create_hash(name: &str, key_size: u32, value_size: u32, max_entries: u32, flags: u32) -> Result<Map> {
        let mut attr = MapCreateAttr {
            map_type: MAP_TYPE_HASH,
            key_size,
            value_size,
            max_entries,
            map_flags: flags,
            map_name: name16(name),
            ..Default::default()
        };
        let fd = bpf_fd(BPF_MAP_CREATE, &mut attr).map_err(|errno| Error::Sys { op: "map create", errno })?;
        Ok(Map { fd, key_size: key_size as usize, value_size: value_size as usize })
    }

    /// Opens the map pinned at `path`, which must be a hash map with these key and value sizes.
    pub fn open_pinned(path: &Path, key_size: u32, value_size: u32) -> Result<Map> {
        let fd = open_pinned(path)?;
        let mut info = MapInfo::default();
        let mut attr = InfoAttr {
            bpf_fd: fd.as_raw_fd() as u32,
            info_len: std::mem::size_of::<MapInfo>() as u32,
            info: &mut info as *mut MapInfo as u64,
        };
        bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr).map_err(|errno| Error::Sys { op: "map info", errno })?;
        if (info.map_type, info.key_size, info.value_size) != (MAP_TYPE_HASH, key_size, value_size) {
            return Err(Error::Mismatch {
                path: path.into(),
                what: format!(
                    "map of type {} with {}-byte keys and {}-byte values, expected a hash map with {key_size} and {value_size}",
                    info.map_type, info.key_size, info.value_size
                ),
            });
        }
        Ok(Map { fd, key_size: key_size as usize, value_size: value_size as usize })
    }

    /// Pins the map at `path` (on a bpffs).
    pub fn pin(&self, path: &Path) -> Result<()> {
        pin(self.fd.as_fd(), path)
    }

    fn elem(&self, key: &[u8], value: u64, flags: u64) -> MapElemAttr {
        assert_eq!(key.len(), self.key_size, "key of the map's size");
        MapElemAttr { map_fd: self.fd.as_raw_fd() as u32, _pad: 0, key: key.as_ptr() as u64, value, flags }
    }

    /// Adds or replaces the element `key`.
    pub fn update(&self, key: &[u8], value: &[u8]) -> Result<()> {
        assert_eq!(value.len(), self.value_size, "value of the map's size");
        let mut attr = self.elem(key, value.as_ptr() as u64, 0);
        bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map(|_| ()).map_err(|errno| Error::Sys { op: "map update", errno })
    }

    /// Removes the element `key`; false if there was none.
    pub fn delete(&self, key: &[u8]) -> Result<bool> {
        let mut attr = self.elem(key, 0, 0);
        match bpf(BPF_MAP_DELETE_ELEM, &mut attr) {
            Ok(_) => Ok(true),
            Err(Errno::ENOENT) => Ok(false),
            Err(errno) => Err(Error::Sys { op: "map delete", errno }),
        }
    }

    /// The value of `key`, if the map has it.
    pub fn lookup(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let mut value = vec![0u8; self.value_size];
        let mut attr = self.elem(key, value.as_mut_ptr() as u64, 0);
        match bpf(BPF_MAP_LOOKUP_ELEM, &mut attr) {
            Ok(_) => Ok(Some(value)),
            Err(Errno::ENOENT) => Ok(None),
            Err(errno) => Err(Error::Sys { op: "map lookup", errno }),
        }
    }

    /// The map's descriptor, for a program's map reference.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A loaded BPF program.
#[derive(Debug)]
pub struct Program {
    fd: OwnedFd,
}

impl Program {
    /// Loads a tc classifier (`BPF_PROG_TYPE_SCHED_CLS`) from encoded instructions. When the
    /// verifier refuses it, the error carries the end of the verifier's log.
    pub fn load_sched_cls(name: &str, insns: &[u8], license: &str) -> Result<Program> {
        assert_eq!(insns.len() % 8, 0, "whole instructions");
        let license = CString::new(license).expect("a license without NUL");
        let mut attr = ProgLoadAttr {
            prog_type: PROG_TYPE_SCHED_CLS,
            insn_cnt: (insns.len() / 8) as u32,
            insns: insns.as_ptr() as u64,
            license: license.as_ptr() as u64,
            prog_name: name16(name),
            ..Default::default()
        };
        match bpf_fd(BPF_PROG_LOAD, &mut attr) {
            Ok(fd) => Ok(Program { fd }),
            Err(Errno::EACCES | Errno::EINVAL | Errno::EPERM | Errno::E2BIG | Errno::ENOENT) => {
                // Again with the verifier's log, to say why.
                let mut log = vec![0u8; 64 * 1024];
                attr.log_level = 1;
                attr.log_size = log.len() as u32;
                attr.log_buf = log.as_mut_ptr() as u64;
                let errno = match bpf_fd(BPF_PROG_LOAD, &mut attr) {
                    Ok(fd) => return Ok(Program { fd }),
                    Err(errno) => errno,
                };
                let text = String::from_utf8_lossy(&log);
                let text = text.trim_end_matches('\0').trim();
                let tail: Vec<&str> = text.lines().rev().take(6).collect();
                let log = tail.into_iter().rev().collect::<Vec<_>>().join(" | ");
                Err(Error::Verifier { name: name.to_string(), errno, log })
            }
            Err(errno) => Err(Error::Sys { op: "program load", errno }),
        }
    }

    /// Opens the program pinned at `path`.
    pub fn open_pinned(path: &Path) -> Result<Program> {
        Ok(Program { fd: open_pinned(path)? })
    }

    /// Pins the program at `path` (on a bpffs).
    pub fn pin(&self, path: &Path) -> Result<()> {
        pin(self.fd.as_fd(), path)
    }

    /// The program's descriptor, to attach it.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
