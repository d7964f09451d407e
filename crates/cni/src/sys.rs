//! The plugin's access to the system through podnet-netlink: opening the container's network
//! namespace (a missing one is error code 3), netlink errors as code 104, sysctls, and random
//! bytes for interface names.

use std::io::Read;

use podnet_netlink::{ErrorKind, Netns};

use crate::error::CniError;

/// A netlink error as a CNI error.
pub fn nl(e: podnet_netlink::Error) -> CniError {
    CniError::Netlink(e.to_string())
}

/// Whether a netlink error means "does not exist".
pub fn not_found(e: &podnet_netlink::Error) -> bool {
    e.kind() == ErrorKind::NotFound
}

/// Opens the namespace at `path`; None when it does not exist (or is no longer a namespace).
pub fn open_netns_opt(path: &str) -> Result<Option<Netns>, CniError> {
    match Netns::open(path) {
        Ok(ns) => Ok(Some(ns)),
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::InvalidArgument) => Ok(None),
        Err(e) => Err(nl(e)),
    }
}

/// Opens the namespace at `path`; a missing one is error code 3.
pub fn open_netns(path: &str) -> Result<Netns, CniError> {
    open_netns_opt(path)?
        .ok_or_else(|| CniError::UnknownContainer(format!("network namespace {path:?} does not exist")))
}

/// Writes a `net.*` sysctl in the plugin's own namespace, unless it already has that value (as
/// the reference plugins do). The plugin's thread is in that namespace, so `/proc/sys/net` is
/// written directly, without a thread entering it.
pub fn host_sysctl(key: &str, value: &str) -> Result<(), CniError> {
    let path = podnet_netlink::sysctl::sysctl_path(key).map_err(nl)?;
    if std::fs::read_to_string(&path).is_ok_and(|v| v.trim() == value) {
        return Ok(());
    }
    std::fs::write(&path, value)
        .map_err(|e| CniError::Netlink(format!("sysctl {key}: cannot write {}: {e}", path.display())))
}

/// Four random bytes (for the host veth's name).
pub fn random4() -> [u8; 4] {
    let mut b = [0u8; 4];
    if std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)).is_err() {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        b = (t.subsec_nanos() ^ std::process::id()).to_le_bytes();
    }
    b
}
