//! Network sysctls (`net.*`), read and written through `/proc/sys` from a thread inside the
//! target namespace.
//!
//! `/proc/sys/net` shows the network namespace of the thread that looks at it, so every access
//! here runs on a dedicated thread that has entered the namespace ([`crate::run_in`]); the calling
//! thread's namespace — and so the host's settings — are never touched by accident. Only `net.*`
//! keys are accepted: the others are not per-namespace, and writing them "in a namespace" would
//! change the whole machine.
//!
//! Keys are written as `sysctl(8)` takes them: dotted (`net.ipv4.conf.eth0.route_localnet`, where
//! a `/` stands for a `.` inside a component, so `net.ipv4.conf.eth0/100.forwarding` is the VLAN
//! interface `eth0.100`) or as a path (`net/ipv4/ip_forward`).

use std::io::Write;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::netns::{run_in, Netns};

/// The `/proc/sys` path of a `net.*` sysctl key.
pub fn sysctl_path(key: &str) -> Result<PathBuf> {
    let op = || format!("sysctl {key}");
    let key = key.strip_prefix("/proc/sys/").unwrap_or(key);
    let slash_form = match (key.find('.'), key.find('/')) {
        (Some(dot), Some(slash)) => slash < dot,
        (None, Some(_)) => true,
        _ => false,
    };
    let components: Vec<String> = if slash_form {
        key.split('/').map(str::to_string).collect()
    } else {
        key.split('.').map(|c| c.replace('/', ".")).collect()
    };
    if components.first().map(String::as_str) != Some("net") {
        return Err(Error::invalid(op(), "only net.* sysctls are per network namespace"));
    }
    if components.len() < 2 || components.iter().any(|c| c.is_empty() || c == "." || c == ".." || c.contains('\0')) {
        return Err(Error::invalid(op(), "malformed sysctl key"));
    }
    let mut path = PathBuf::from("/proc/sys");
    path.extend(components);
    Ok(path)
}

/// Reads a `net.*` sysctl in `netns` (the value without its trailing newline).
pub fn read_sysctl(netns: &Netns, key: &str) -> Result<String> {
    let path = sysctl_path(key)?;
    let op = || format!("read sysctl {key} in {}", netns.path().display());
    let value = run_in(netns, || std::fs::read_to_string(&path).map_err(|e| Error::io(op(), e)))??;
    Ok(value.trim_end_matches('\n').to_string())
}

/// Writes a `net.*` sysctl in `netns`.
pub fn write_sysctl(netns: &Netns, key: &str, value: &str) -> Result<()> {
    write_sysctls(netns, &[(key, value)])
}

/// Writes several `net.*` sysctls in `netns`, in order, from one thread; stops at the first error.
pub fn write_sysctls(netns: &Netns, entries: &[(&str, &str)]) -> Result<()> {
    let paths = entries.iter().map(|(key, _)| sysctl_path(key)).collect::<Result<Vec<_>>>()?;
    run_in(netns, || {
        for ((key, value), path) in entries.iter().zip(&paths) {
            let op = || format!("write sysctl {key}={value} in {}", netns.path().display());
            let mut file = std::fs::OpenOptions::new().write(true).open(path).map_err(|e| Error::io(op(), e))?;
            file.write_all(value.as_bytes()).map_err(|e| Error::io(op(), e))?;
        }
        Ok(())
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_keys() {
        assert_eq!(sysctl_path("net.ipv4.ip_forward").unwrap(), PathBuf::from("/proc/sys/net/ipv4/ip_forward"));
        assert_eq!(
            sysctl_path("net.ipv4.conf.eth0.route_localnet").unwrap(),
            PathBuf::from("/proc/sys/net/ipv4/conf/eth0/route_localnet")
        );
        assert_eq!(
            sysctl_path("net.ipv4.conf.eth0/100.forwarding").unwrap(),
            PathBuf::from("/proc/sys/net/ipv4/conf/eth0.100/forwarding")
        );
        assert_eq!(
            sysctl_path("net.ipv6.conf.all.disable_ipv6").unwrap(),
            PathBuf::from("/proc/sys/net/ipv6/conf/all/disable_ipv6")
        );
    }

    #[test]
    fn path_keys() {
        assert_eq!(sysctl_path("net/ipv4/ip_forward").unwrap(), PathBuf::from("/proc/sys/net/ipv4/ip_forward"));
        assert_eq!(
            sysctl_path("net/ipv4/conf/eth0.100/forwarding").unwrap(),
            PathBuf::from("/proc/sys/net/ipv4/conf/eth0.100/forwarding")
        );
        assert_eq!(
            sysctl_path("/proc/sys/net/ipv4/ip_forward").unwrap(),
            PathBuf::from("/proc/sys/net/ipv4/ip_forward")
        );
    }

    #[test]
    fn rejects_non_net_and_malformed_keys() {
        for bad in ["kernel.hostname", "vm/swappiness", "net", "net..ipv4", "net/../kernel/x", "", "net.ipv4."] {
            let e = sysctl_path(bad).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument, "{bad}");
        }
    }
}
