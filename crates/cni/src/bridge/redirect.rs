//! The `sameNodeRedirect` extension (podnet-bpf's same-node redirect): ADD puts the pod's IPv4
//! addresses in the node's map of local pods and attaches the redirect program to the pod's
//! host-side veth; DEL takes the addresses out again, before IPAM frees them (so that an ADD
//! handed a freed address meanwhile never loses its entry).

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use podnet_bpf::LocalRedirect;
use podnet_netlink::Handle;

use crate::error::{CniError, CniResult};

fn bpf(e: podnet_bpf::Error) -> CniError {
    CniError::Bpf(format!("sameNodeRedirect: {e}"))
}

/// The IPv4 addresses of `ips`.
fn v4(ips: &[IpAddr]) -> Vec<Ipv4Addr> {
    ips.iter()
        .filter_map(|ip| match ip {
            IpAddr::V4(a) => Some(*a),
            IpAddr::V6(_) => None,
        })
        .collect()
}

/// Makes the pod behind host-side veth `host_ifindex` a local pod with addresses `ips`; returns
/// the addresses added (for an undo).
pub fn add(host: &mut Handle, pin_dir: &Path, ips: &[IpAddr], host_ifindex: u32) -> CniResult<Vec<Ipv4Addr>> {
    let redirect = LocalRedirect::open_or_load(pin_dir).map_err(bpf)?;
    let mut added = Vec::new();
    for ip in v4(ips) {
        if let Err(e) = redirect.add_pod(host, ip, host_ifindex) {
            let _ = remove(pin_dir, &added);
            return Err(bpf(e));
        }
        added.push(ip);
    }
    Ok(added)
}

/// Forgets the local pod addresses `ips` (of any family; only IPv4 ones are in the map).
pub fn del(pin_dir: &Path, ips: &[IpAddr]) -> CniResult<()> {
    remove(pin_dir, &v4(ips))
}

fn remove(pin_dir: &Path, ips: &[Ipv4Addr]) -> CniResult<()> {
    if ips.is_empty() {
        return Ok(());
    }
    let Some(redirect) = LocalRedirect::open(pin_dir).map_err(bpf)? else { return Ok(()) };
    for ip in ips {
        redirect.remove_pod(*ip).map_err(bpf)?;
    }
    Ok(())
}
