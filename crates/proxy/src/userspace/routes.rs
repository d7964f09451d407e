//! The addresses the node takes as its own for the userspace proxy: one `local` route per
//! address in the `local` table, on `lo`, of protocol [`RTPROT_PODNET_PROXY`] —
//! `ip route add local 10.96.0.10/32 dev lo table local proto 159`, what the kernel itself adds
//! for an address, without the address. The kernel then delivers packets to it locally (to the
//! proxy's sockets) whatever link they came in on; the protocol marks the routes as the proxy's,
//! so a restarted proxy (or `cleanup` of a fresh mode) finds those an earlier run left.

use std::collections::BTreeSet;
use std::net::IpAddr;

use podnet_netlink::route::RT_TABLE_LOCAL;
use podnet_netlink::{ErrorKind, Handle, IpNet, RouteKind};

use crate::Error;

/// The routing protocol number of the proxy's local routes (the routing agent's is 158).
pub const RTPROT_PODNET_PROXY: u8 = 159;

fn netlink_error(e: podnet_netlink::Error) -> Error {
    Error::Other(format!("userspace proxy: {e}"))
}

fn host_route(ip: IpAddr, lo: u32) -> podnet_netlink::Route {
    let mut route = podnet_netlink::Route::new(IpNet::from(ip)).dev(lo).table(RT_TABLE_LOCAL).kind(RouteKind::Local);
    route.protocol = RTPROT_PODNET_PROXY;
    route
}

/// The local routes of the proxy in the handle's namespace.
pub fn owned(h: &mut Handle) -> Result<BTreeSet<IpAddr>, Error> {
    let routes = h.table_routes(RT_TABLE_LOCAL).map_err(netlink_error)?;
    Ok(routes
        .into_iter()
        .filter(|r| r.protocol == RTPROT_PODNET_PROXY && r.kind == RouteKind::Local)
        .filter(|r| r.dst.prefix_len() == r.dst.max_prefix_len())
        .map(|r| r.dst.addr())
        .collect())
}

/// The index of `lo`.
pub fn loopback(h: &mut Handle) -> Result<u32, Error> {
    h.link_index("lo").map_err(netlink_error)
}

/// Makes `ip` local. `false` when it was local already (an address of the node): then the route
/// is not the proxy's, and stays.
pub fn add(h: &mut Handle, lo: u32, ip: IpAddr) -> Result<bool, Error> {
    match h.add_route(&host_route(ip, lo)) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(netlink_error(e)),
    }
}

/// Deletes the proxy's route of `ip` (gone already is fine).
pub fn delete(h: &mut Handle, lo: u32, ip: IpAddr) -> Result<(), Error> {
    match h.del_route(&host_route(ip, lo)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(netlink_error(e)),
    }
}
