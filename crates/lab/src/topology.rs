//! The lab's namespaces and links: the underlay (a bridge `br0` in its own namespace), the
//! control plane and one namespace per node, each joined to the underlay by a veth pair whose
//! inside end is `eth0`. Built with podnet-netlink; nothing touches the host's namespace.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use podnet_netlink::{Handle, IpNet, Netns, NewLink, Route};

use crate::spec::{self, LabSpec};

/// Errors building or removing the topology, naming the step.
#[derive(Debug, thiserror::Error)]
#[error("{step}: {source}")]
pub struct TopologyError {
    pub step: String,
    #[source]
    pub source: podnet_netlink::Error,
}

fn step<T>(what: impl Into<String>, r: podnet_netlink::Result<T>) -> Result<T, TopologyError> {
    r.map_err(|source| TopologyError { step: what.into(), source })
}

/// The underlay bridge.
pub const UNDERLAY_BRIDGE: &str = "br0";
/// A namespace's interface on the underlay.
pub const UPLINK: &str = "eth0";

/// Creates the underlay namespace with its bridge (up, with the gateway address).
pub fn create_underlay(lab: &str) -> Result<Netns, TopologyError> {
    let name = spec::underlay_netns(lab);
    let ns = step(format!("creating namespace {name}"), Netns::create(&name))?;
    let mut h = step(format!("opening netlink in {name}"), Handle::in_netns(&ns))?;
    step("setting lo up in the underlay", h.set_up("lo"))?;
    let br = step("creating the underlay bridge", h.create_link(&NewLink::bridge(UNDERLAY_BRIDGE).up()))?;
    let gw = IpNet::new(spec::underlay_gateway().into(), spec::underlay_net().prefix_len()).expect("prefix");
    step("addressing the underlay bridge", h.add_addr(br.index, gw))?;
    Ok(ns)
}

/// Creates namespace `name` attached to the underlay with `ip` on its `eth0`, a default route via
/// the underlay gateway, and `lo` up. `port` names the underlay end.
pub fn create_attached(lab: &str, name: &str, port: &str, ip: std::net::Ipv4Addr) -> Result<Netns, TopologyError> {
    let underlay = step("opening the underlay namespace", Netns::open_named(&spec::underlay_netns(lab)))?;
    let ns = step(format!("creating namespace {name}"), Netns::create(name))?;
    let mut u = step("opening netlink in the underlay", Handle::in_netns(&underlay))?;
    let link = step(
        format!("creating the veth pair {port} (underlay) - {UPLINK} ({name})"),
        u.create_link(&NewLink::veth(port, UPLINK).peer_netns(&ns)),
    )?;
    step(format!("attaching {port} to {UNDERLAY_BRIDGE}"), u.set_master(link.index, UNDERLAY_BRIDGE))?;
    step(format!("setting {port} up"), u.set_up(link.index))?;
    let mut h = step(format!("opening netlink in {name}"), Handle::in_netns(&ns))?;
    step(format!("setting lo up in {name}"), h.set_up("lo"))?;
    let addr = IpNet::new(ip.into(), spec::underlay_net().prefix_len()).expect("prefix");
    step(format!("addressing {UPLINK} in {name}"), h.add_addr(UPLINK, addr))?;
    step(format!("setting {UPLINK} up in {name}"), h.set_up(UPLINK))?;
    step(
        format!("adding the default route in {name}"),
        h.add_route(&Route::default_via(spec::underlay_gateway().into())),
    )?;
    Ok(ns)
}

/// Builds the whole topology of `spec`; on failure removes what it made.
pub fn build(spec: &LabSpec, progress: &mut dyn FnMut(&str)) -> Result<(), TopologyError> {
    let result = (|| {
        progress(&format!(
            "creating the underlay ({}, bridge {UNDERLAY_BRIDGE}, {})",
            spec::underlay_netns(&spec.name),
            spec::underlay_net()
        ));
        create_underlay(&spec.name)?;
        progress(&format!(
            "creating the control plane namespace ({}, {})",
            spec::control_plane_netns(&spec.name),
            spec::control_plane_ip()
        ));
        create_attached(&spec.name, &spec::control_plane_netns(&spec.name), "vcp", spec::control_plane_ip())?;
        for (i, node) in spec.node_names().iter().enumerate() {
            progress(&format!(
                "creating node {node} ({}, {})",
                spec::node_netns(&spec.name, node),
                spec::node_ip(i + 1)
            ));
            create_attached(
                &spec.name,
                &spec::node_netns(&spec.name, node),
                &format!("vn{}", i + 1),
                spec::node_ip(i + 1),
            )?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = destroy(&spec.name);
    }
    result
}

/// The lab's namespaces that exist now (by their name prefix).
pub fn lab_namespaces(lab: &str) -> Vec<String> {
    let prefix = spec::netns_prefix(lab);
    Netns::list().unwrap_or_default().into_iter().filter(|n| n.starts_with(&prefix)).collect()
}

/// The inode of a network namespace file.
fn netns_inode(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.ino())
}

/// Processes whose network namespace is one of `inodes`.
pub fn processes_in(inodes: &[u64]) -> Vec<i32> {
    let Ok(rd) = std::fs::read_dir("/proc") else { return Vec::new() };
    let me = std::process::id() as i32;
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            let link = std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap_or_default();
            let text = link.to_string_lossy();
            let ino = text.strip_prefix("net:[").and_then(|r| r.strip_suffix(']')).and_then(|n| n.parse::<u64>().ok());
            ino.is_some_and(|i| inodes.contains(&i))
        })
        .collect()
}

/// Processes that belong to the lab but may be in no namespace it still has: sandbox holders and
/// shims of finished pods (whose network namespace was released), by the lab's state directory
/// in their command line.
fn processes_of_state(lab: &str) -> Vec<i32> {
    let marker = format!("{}/", spec::state_dir(lab).display());
    let Ok(rd) = std::fs::read_dir("/proc") else { return Vec::new() };
    let me = std::process::id() as i32;
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            String::from_utf8_lossy(&cmdline).contains(&marker)
        })
        .collect()
}

/// Stops every process of the lab — in its namespaces, or running from its state directory:
/// SIGTERM, then SIGKILL after `grace`.
pub fn kill_processes(lab: &str, grace: Duration) -> usize {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let inodes: Vec<u64> =
        lab_namespaces(lab).iter().filter_map(|n| netns_inode(&Path::new("/run/netns").join(n))).collect();
    let remaining = || {
        let mut pids = processes_in(&inodes);
        pids.extend(processes_of_state(lab));
        pids.sort();
        pids.dedup();
        pids
    };
    let first = remaining();
    for pid in &first {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && !remaining().is_empty() {
        std::thread::sleep(Duration::from_millis(50));
    }
    for pid in remaining() {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && !remaining().is_empty() {
        std::thread::sleep(Duration::from_millis(20));
    }
    first.len()
}

/// The mount points at or under `dir` (the nodes' bpffs for the same-node redirect), deepest
/// first, from `/proc/self/mountinfo` (its fifth field, with `\040`-style escapes); a point
/// with mounts stacked on it is listed once per mount.
fn mounts_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut found: Vec<std::path::PathBuf> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| std::path::PathBuf::from(unescape_mount_path(m)))
        .filter(|m| m.starts_with(dir))
        .collect();
    found.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    found
}

fn unescape_mount_path(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal =
            b.get(i + 1..i + 4).and_then(|d| std::str::from_utf8(d).ok()).and_then(|d| u8::from_str_radix(d, 8).ok());
        match (b[i], octal) {
            (b'\\', Some(c)) => {
                out.push(c);
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Detaches every mount at or under `dir`; returns how many there were.
pub fn unmount_under(dir: &Path) -> usize {
    let mounts = mounts_under(dir);
    for m in &mounts {
        let _ = nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH);
    }
    mounts.len()
}

/// Removes every namespace of the lab (their links go with them). Idempotent.
pub fn destroy(lab: &str) -> Result<(), TopologyError> {
    let mut names = lab_namespaces(lab);
    // Pods first, then nodes and the control plane, the underlay last.
    names.sort_by_key(|n| (n.ends_with(".underlay"), std::cmp::Reverse(n.matches('.').count())));
    let mut first_err = None;
    for name in names {
        if let Err(e) = Netns::delete(&name) {
            if !e.is_not_found() && first_err.is_none() {
                first_err = Some(TopologyError { step: format!("deleting namespace {name}"), source: e });
            }
        }
    }
    first_err.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_are_unescaped() {
        assert_eq!(unescape_mount_path("/var/lib/podnet/my\\040lab/bpf"), "/var/lib/podnet/my lab/bpf");
        assert_eq!(unescape_mount_path("/a\\134b"), "/a\\b");
        assert_eq!(unescape_mount_path("/plain"), "/plain");
    }
}
