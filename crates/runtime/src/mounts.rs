//! The pod's files, placed in the holder's own mount namespace (already unshared and made a
//! slave of the host's, so nothing done here reaches the host):
//!
//! - a path that exists (after following symlinks) gets the file from the state directory
//!   bind-mounted over it;
//! - a path that does not exist, e.g. `/var/run/secrets/kubernetes.io/serviceaccount/token`,
//!   needs a directory entry the host does not have. Its deepest existing ancestor (here `/run`)
//!   is "shadowed": a tmpfs is mounted over it, and each of the ancestor's entries is put back
//!   (directories and files bind-mounted recursively from the covered original, symlinks
//!   recreated), so the pod still sees everything that was there. The missing directories and
//!   the file are then created in the tmpfs. Later files under the same new directories go into
//!   the same tmpfs.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::{self, DirBuilder, File};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};

use crate::error::{Error, Result};
use crate::validate::validate_path;

/// Places pod files; remembers which directories it created in its tmpfs mounts.
#[derive(Default)]
pub(crate) struct Placer {
    /// Directories that live in one of our tmpfs mounts (and are not put-back host entries).
    ours: HashSet<PathBuf>,
}

impl Placer {
    /// Makes `target` show the file `source` (from the state directory) with `mode`.
    pub fn place(&mut self, target: &Path, source: &Path, mode: u32) -> Result<()> {
        validate_path(target)?;
        match fs::metadata(target) {
            Ok(m) if m.is_dir() => Err(Error::invalid(format!("pod file path {}", target.display()), "is a directory")),
            Ok(_) => bind(source, target, false),
            Err(e) if e.kind() == io::ErrorKind::NotFound => self.create(target, source, mode),
            Err(e) => Err(Error::io("inspect", target)(e)),
        }
    }

    /// Creates `target`, which does not exist, in a tmpfs.
    fn create(&mut self, target: &Path, source: &Path, mode: u32) -> Result<()> {
        let (base, missing) = split_existing(target)?;
        if !self.ours.contains(&base) {
            self.shadow(&base, &missing[0])?;
        }
        let mut dir = base;
        for name in &missing[..missing.len() - 1] {
            dir.push(name);
            DirBuilder::new().mode(0o755).create(&dir).map_err(Error::io("create directory", &dir))?;
            self.ours.insert(dir.clone());
        }
        let file = dir.join(&missing[missing.len() - 1]);
        let contents = fs::read(source).map_err(Error::io("read", source))?;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&file)
            .map_err(Error::io("create", &file))?;
        f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode)).map_err(Error::io("chmod", &file))?;
        io::Write::write_all(&mut f, &contents).map_err(Error::io("write", &file))
    }

    /// Mounts a tmpfs over the directory `dir` and puts its entries back, except `skip` (the entry
    /// about to be created, which may be a dangling symlink).
    fn shadow(&mut self, dir: &Path, skip: &OsString) -> Result<()> {
        if dir.parent().is_none() {
            return Err(Error::invalid(
                format!("pod file under {}", dir.join(skip).display()),
                "its directory would have to be created in /",
            ));
        }
        let meta = fs::metadata(dir).map_err(Error::io("inspect", dir))?;
        // The covered directory stays reachable through this descriptor, in this namespace.
        let covered = File::open(dir).map_err(Error::io("open", dir))?;
        let covered_path = PathBuf::from(format!("/proc/self/fd/{}", covered.as_raw_fd()));
        let mut entries = Vec::new();
        for entry in fs::read_dir(dir).map_err(Error::io("list", dir))? {
            let entry = entry.map_err(Error::io("list", dir))?;
            if entry.file_name() != *skip {
                let kind = entry.file_type().map_err(Error::io("inspect", entry.path()))?;
                entries.push((entry.file_name(), kind));
            }
        }
        let options = format!("mode={:o},uid={},gid={},size=16m", meta.mode() & 0o7777, meta.uid(), meta.gid());
        mount(Some("tmpfs"), dir, Some("tmpfs"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV, Some(options.as_str()))
            .map_err(Error::sys_at("mount a tmpfs on", dir))?;
        for (name, kind) in entries {
            let original = covered_path.join(&name);
            let put_back = dir.join(&name);
            if kind.is_symlink() {
                let link = fs::read_link(&original).map_err(Error::io("read link", dir.join(&name)))?;
                std::os::unix::fs::symlink(&link, &put_back).map_err(Error::io("create symlink", &put_back))?;
            } else if kind.is_dir() {
                fs::create_dir(&put_back).map_err(Error::io("create directory", &put_back))?;
                bind(&original, &put_back, true)?;
            } else {
                File::create(&put_back).map_err(Error::io("create", &put_back))?;
                bind(&original, &put_back, true)?;
            }
        }
        self.ours.insert(dir.to_path_buf());
        Ok(())
    }
}

/// Bind-mounts `source` on `target` (recursively: with the mounts under it).
fn bind(source: &Path, target: &Path, recursive: bool) -> Result<()> {
    let flags = if recursive { MsFlags::MS_BIND | MsFlags::MS_REC } else { MsFlags::MS_BIND };
    mount(Some(source), target, None::<&str>, flags, None::<&str>)
        .map_err(Error::sys_at(format!("bind-mount {} on", source.display()), target))
}

/// Splits a path that does not exist into its deepest existing ancestor (canonical) and the
/// missing components below it.
fn split_existing(target: &Path) -> Result<(PathBuf, Vec<OsString>)> {
    let mut missing = Vec::new();
    let mut cur = target;
    loop {
        missing.push(cur.file_name().expect("a normal absolute path").to_os_string());
        cur = cur.parent().expect("not /");
        match fs::metadata(cur) {
            Ok(m) if m.is_dir() => break,
            Ok(_) => {
                return Err(Error::invalid(
                    format!("pod file path {}", target.display()),
                    format!("{} is not a directory", cur.display()),
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("inspect", cur)(e)),
        }
    }
    missing.reverse();
    let base = fs::canonicalize(cur).map_err(Error::io("resolve", cur))?;
    Ok((base, missing))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_the_deepest_existing_ancestor() {
        let tmp = tempfile::tempdir().unwrap();
        let base = fs::canonicalize(tmp.path()).unwrap();
        fs::create_dir(base.join("a")).unwrap();
        std::os::unix::fs::symlink(base.join("a"), base.join("link")).unwrap();
        let (dir, missing) = split_existing(&base.join("link/b/c/token")).unwrap();
        assert_eq!(dir, base.join("a"));
        assert_eq!(missing, ["b", "c", "token"].map(OsString::from));
        fs::write(base.join("file"), "").unwrap();
        assert!(split_existing(&base.join("file/x")).is_err());
    }
}
