//! host-local's on-disk store, file for file, so state is interchangeable with the reference
//! plugin: `<dataDir>/<network>/` holds one file per reserved address, named by the address
//! (`10.22.0.5`, `fd00::5`) and containing `<containerID>\r\n<ifname>` (older reference versions
//! wrote only the container ID: those are read too); `last_reserved_ip.<range set index>` holds
//! the last address reserved in that set; every operation holds an exclusive `flock` on the file
//! `lock` in that directory, as the reference does.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::allocator::Store;
use crate::error::{CniError, CniResult};

/// The separator between container ID and interface name in a reservation file.
pub const LINE_BREAK: &str = "\r\n";
/// The prefix of the files recording the last reserved address of each range set.
pub const LAST_IP_PREFIX: &str = "last_reserved_ip.";

/// The store of one network, locked while it is open.
#[derive(Debug)]
pub struct DiskStore {
    dir: PathBuf,
    _lock: File,
}

fn store_err(what: &str, path: &Path, e: std::io::Error) -> CniError {
    CniError::Store(format!("{what} {}: {e}", path.display()))
}

impl DiskStore {
    /// Opens (creating it if needed) `<data_dir>/<network>` and takes its lock, waiting for it.
    pub fn open(data_dir: &Path, network: &str) -> CniResult<DiskStore> {
        let dir = data_dir.join(network);
        fs::create_dir_all(&dir).map_err(|e| store_err("cannot create", &dir, e))?;
        let lock_path = dir.join("lock");
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(&lock_path)
            .map_err(|e| store_err("cannot open", &lock_path, e))?;
        lock.lock().map_err(|e| store_err("cannot lock", &lock_path, e))?;
        Ok(DiskStore { dir, _lock: lock })
    }

    /// The directory of this network's reservations.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reservation files: (address, path, trimmed content). ADD and DEL read them all (as the
    /// reference does), so each costs only open, one read and close.
    fn files(&self) -> Vec<(IpAddr, PathBuf, String)> {
        let Ok(rd) = fs::read_dir(&self.dir) else { return Vec::new() };
        let mut out = Vec::new();
        let mut buf = Vec::with_capacity(256);
        for entry in rd.flatten() {
            let name = entry.file_name();
            let Some(ip) = name.to_str().and_then(|n| n.parse::<IpAddr>().ok()) else { continue };
            let path = entry.path();
            buf.clear();
            if read_small(&path, &mut buf).is_ok() {
                out.push((ip, path, String::from_utf8_lossy(&buf).trim().to_string()));
            }
        }
        out.sort_by_key(|(ip, _, _)| *ip);
        out
    }
}

/// Reads a small file into `buf`: a short read of a regular file is its end, so a reservation
/// file takes one `read` (`fs::read_to_string` also asks its size and reads again to see the end).
fn read_small(path: &Path, buf: &mut Vec<u8>) -> std::io::Result<()> {
    let mut f = File::open(path)?;
    loop {
        if buf.capacity() - buf.len() < 64 {
            buf.reserve(256);
        }
        let room = buf.capacity() - buf.len();
        let start = buf.len();
        buf.resize(start + room, 0);
        let n = f.read(&mut buf[start..])?;
        buf.truncate(start + n);
        if n == 0 || n < room {
            return Ok(());
        }
    }
}

/// Replaces the content of a small file without truncating it to nothing first (`fs::write`
/// opens with `O_TRUNC`): emptying a file frees its block, and on a filesystem mounted with
/// `discard` (without a journal to defer it) the freeing process waits for the disk's discard,
/// about a millisecond per ADD. The new content is written over the old one and the file cut
/// to its length, which keeps the block.
fn overwrite(path: &Path, content: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let f = OpenOptions::new().write(true).create(true).truncate(false).mode(0o644).open(path)?;
    f.write_all_at(content, 0)?;
    f.set_len(content.len() as u64)
}

/// The content of a reservation file for the attachment.
pub fn file_content(id: &str, ifname: &str) -> String {
    format!("{}{LINE_BREAK}{ifname}", id.trim())
}

/// Splits a reservation file's trimmed content into container ID and interface name (empty for
/// files that hold only the container ID).
pub fn parse_content(content: &str) -> (String, String) {
    match content.split_once(LINE_BREAK).or_else(|| content.split_once('\n')) {
        Some((id, ifname)) => (id.trim().to_string(), ifname.trim().to_string()),
        None => (content.trim().to_string(), String::new()),
    }
}

fn matches(content: &str, id: &str, ifname: &str) -> bool {
    let (cid, cif) = parse_content(content);
    cid == id.trim() && (cif == ifname || cif.is_empty())
}

impl Store for DiskStore {
    fn reserve(&mut self, id: &str, ifname: &str, ip: IpAddr, range_id: &str) -> CniResult<bool> {
        let path = self.dir.join(ip.to_string());
        let mut f = match OpenOptions::new().read(true).write(true).create_new(true).mode(0o644).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(store_err("cannot create", &path, e)),
        };
        // Not synced to disk, as the reference does not: after a crash the pods are gone too, and
        // an fdatasync costs from half a millisecond (tmpfs, no journal) to several per ADD.
        if let Err(e) = f.write_all(file_content(id, ifname).as_bytes()) {
            let _ = fs::remove_file(&path);
            return Err(store_err("cannot write", &path, e));
        }
        let last = self.dir.join(format!("{LAST_IP_PREFIX}{range_id}"));
        overwrite(&last, ip.to_string().as_bytes()).map_err(|e| store_err("cannot write", &last, e))?;
        Ok(true)
    }

    fn last_reserved_ip(&self, range_id: &str) -> Option<IpAddr> {
        let s = fs::read_to_string(self.dir.join(format!("{LAST_IP_PREFIX}{range_id}"))).ok()?;
        s.trim().parse().ok()
    }

    fn get_by_id(&self, id: &str, ifname: &str) -> Vec<IpAddr> {
        self.files().into_iter().filter(|(_, _, c)| matches(c, id, ifname)).map(|(ip, _, _)| ip).collect()
    }

    fn release_by_id(&mut self, id: &str, ifname: &str) -> CniResult<Vec<IpAddr>> {
        let files = self.files();
        // Files naming the interface first; older files naming only the container otherwise.
        let exact: Vec<_> = files.iter().filter(|(_, _, c)| *c == file_content(id, ifname)).collect();
        let chosen: Vec<_> =
            if exact.is_empty() { files.iter().filter(|(_, _, c)| *c == id.trim()).collect() } else { exact };
        let mut freed = Vec::new();
        for (ip, path, _) in chosen {
            match fs::remove_file(path) {
                Ok(()) => freed.push(*ip),
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(store_err("cannot remove", path, e)),
            }
        }
        Ok(freed)
    }

    fn entries(&self) -> Vec<(IpAddr, String, String)> {
        self.files()
            .into_iter()
            .map(|(ip, _, c)| {
                let (id, ifname) = parse_content(&c);
                (ip, id, ifname)
            })
            .collect()
    }

    fn release_ip(&mut self, ip: IpAddr) -> CniResult<()> {
        let path = self.dir.join(ip.to_string());
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(store_err("cannot remove", &path, e)),
        }
    }

    fn is_reserved(&self, ip: IpAddr) -> bool {
        self.dir.join(ip.to_string()).exists()
    }
}

#[cfg(test)]
mod tests {
    use super::super::allocator::allocate;
    use super::super::range::{Range, RangeSet};
    use super::*;

    #[test]
    fn on_disk_format_is_host_locals() {
        let tmp = tempfile::tempdir().unwrap();
        let mut st = DiskStore::open(tmp.path(), "net1").unwrap();
        assert!(tmp.path().join("net1/lock").exists());
        let ip4: IpAddr = "10.1.2.5".parse().unwrap();
        let ip6: IpAddr = "fd00::5".parse().unwrap();
        assert!(st.reserve("c1 ", "eth0", ip4, "0").unwrap());
        assert!(st.reserve("c1", "eth0", ip6, "1").unwrap());
        assert!(!st.reserve("c2", "eth0", ip4, "0").unwrap());
        let dir = tmp.path().join("net1");
        assert_eq!(fs::read_to_string(dir.join("10.1.2.5")).unwrap(), "c1\r\neth0");
        assert_eq!(fs::read_to_string(dir.join("fd00::5")).unwrap(), "c1\r\neth0");
        assert_eq!(fs::read_to_string(dir.join("last_reserved_ip.0")).unwrap(), "10.1.2.5");
        assert_eq!(fs::read_to_string(dir.join("last_reserved_ip.1")).unwrap(), "fd00::5");
        assert_eq!(st.last_reserved_ip("0"), Some(ip4));
        assert_eq!(st.get_by_id("c1", "eth0"), vec![ip4, ip6]);
        assert!(st.get_by_id("c1", "eth1").is_empty());
        assert_eq!(st.release_by_id("c1", "eth0").unwrap(), vec![ip4, ip6]);
        assert!(!dir.join("10.1.2.5").exists());
        // Releasing again is fine.
        assert!(st.release_by_id("c1", "eth0").unwrap().is_empty());
    }

    #[test]
    fn last_reserved_ip_is_overwritten_in_place() {
        let tmp = tempfile::tempdir().unwrap();
        let mut st = DiskStore::open(tmp.path(), "net1").unwrap();
        let last = tmp.path().join("net1/last_reserved_ip.0");
        assert!(st.reserve("c1", "eth0", "10.1.2.100".parse().unwrap(), "0").unwrap());
        assert_eq!(fs::read_to_string(&last).unwrap(), "10.1.2.100");
        assert!(st.reserve("c2", "eth0", "10.1.2.9".parse().unwrap(), "0").unwrap());
        assert_eq!(fs::read_to_string(&last).unwrap(), "10.1.2.9");
        assert!(st.reserve("c3", "eth0", "fd00::1:2:3:4".parse().unwrap(), "0").unwrap());
        assert_eq!(fs::read_to_string(&last).unwrap(), "fd00::1:2:3:4");
    }

    #[test]
    fn reads_older_files_with_only_the_container_id() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("net1");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("10.1.2.9"), "oldcontainer\n").unwrap();
        fs::write(dir.join("not-an-ip"), "oldcontainer").unwrap();
        let mut st = DiskStore::open(tmp.path(), "net1").unwrap();
        assert_eq!(st.entries(), vec![("10.1.2.9".parse().unwrap(), "oldcontainer".to_string(), String::new())]);
        assert_eq!(st.get_by_id("oldcontainer", "eth0").len(), 1);
        assert_eq!(st.release_by_id("oldcontainer", "eth0").unwrap().len(), 1);
        assert!(dir.join("not-an-ip").exists());
    }

    #[test]
    fn the_lock_excludes_other_processes_and_threads() {
        let tmp = tempfile::tempdir().unwrap();
        let set = RangeSet::new(vec![Range::new("10.9.0.0/24".parse().unwrap(), None, None, None).unwrap()]).unwrap();
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let dir = tmp.path().to_path_buf();
                let set = set.clone();
                std::thread::spawn(move || {
                    (0..10)
                        .map(|i| {
                            let mut st = DiskStore::open(&dir, "net").unwrap();
                            allocate(&mut st, &set, 0, &format!("c{t}-{i}"), "eth0", None).unwrap().address.addr()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<IpAddr> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n, "an address was handed out twice");
    }
}
