//! The `podnet` plugin proper: a Linux bridge on the host, a veth pair per attachment (host end a
//! port of the bridge, container end `CNI_IFNAME` in the pod's namespace), addresses and routes
//! from IPAM, optionally the gateway address on the bridge, forwarding and masquerading — the
//! reference `bridge` plugin's behaviour, through podnet-netlink and nftables.
//!
//! With podnet's `sameNodeRedirect`, pod-to-pod packets on the node skip the bridge: the pod's
//! addresses go into the node's eBPF map of local pods and the redirect program runs on its
//! host-side veth ([`redirect`]).
//!
//! ADD is all or nothing: every step that succeeded is undone when a later one fails (the veth
//! pair, the IPAM reservation, masquerade rules, a bridge it created that has no port). DEL is
//! idempotent and best effort: a missing namespace, interface or reservation is success. CHECK
//! compares the namespace with `prevResult`. GC frees reservations and rules of attachments not
//! in `cni.dev/valid-attachments`; STATUS reports whether ADD can be served.

pub mod config;
pub mod plan;
mod redirect;

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use podnet_netlink::{AddrOptions, BridgeVlan, Handle, Link, MacAddr, Netns, NewLink};

use crate::delegate;
use crate::env::Env;
use crate::error::{CniError, CniResult};
use crate::ipam::{self, Ipam};
use crate::ipmasq;
use crate::netconf::NetConf;
use crate::nft;
use crate::nftnl;
use crate::sys::{self, nl, not_found};
use crate::types::{AddResult, Interface};
use config::BridgeConf;
use plan::CONTAINER_IFACE;

/// What an ADD has done so far, to undo on failure.
#[derive(Default)]
struct Done {
    bridge_created: Option<String>,
    veth: bool,
    host_local_ips: Vec<IpAddr>,
    delegate_ipam: Option<String>,
    masq_tag: Option<String>,
    /// The same-node redirect's pin directory and the addresses put in its map.
    redirect: Option<(PathBuf, Vec<IpAddr>)>,
}

/// ADD.
pub fn add(nc: &NetConf, env: &Env, stdin: &[u8]) -> CniResult<AddResult> {
    let bc = BridgeConf::parse(nc, &env.args)?;
    let ipam = ipam::parse(nc, &env.args)?;
    if bc.vlan != 0 && bc.is_gateway {
        return Err(CniError::UnsupportedField {
            key: "vlan".into(),
            value: format!("{} together with isGateway (a gateway on a VLAN interface)", bc.vlan),
        });
    }
    let container = sys::open_netns(env.netns.as_deref().unwrap_or_default())?;
    let mut host = Handle::new().map_err(nl)?;
    // The container's socket is opened when the container side is configured (on the thread that
    // writes its sysctls): an interface name already taken there shows when the veth pair is
    // created (see create_veth), and that ADD is undone like any other failure.
    let mut cont = Container { ns: &container, handle: None };
    let mut done = Done::default();
    let result = add_steps(nc, env, stdin, &bc, &ipam, &container, &mut host, &mut cont, &mut done);
    if result.is_err() {
        undo(env, stdin, &ipam, &mut host, &mut cont, done);
    }
    result
}

#[allow(clippy::too_many_arguments)]
fn add_steps(
    nc: &NetConf,
    env: &Env,
    stdin: &[u8],
    bc: &BridgeConf,
    ipam: &Ipam,
    container: &Netns,
    host: &mut Handle,
    cont: &mut Container<'_>,
    done: &mut Done,
) -> CniResult<AddResult> {
    let bridge = ensure_bridge(host, bc, done)?;
    let host_veth = create_veth(host, cont, bc, &bridge, env, container, done)?;

    // IPAM.
    let mut result = match ipam {
        Ipam::None => AddResult::default(),
        Ipam::HostLocal(c) => {
            let r = ipam::add(c, &env.container_id, &env.ifname)?;
            done.host_local_ips = r.ips.iter().map(|i| i.address.addr()).collect();
            r
        }
        Ipam::Delegate(t) => {
            let r = delegate::ipam(t, "ADD", env, stdin)?.unwrap_or_default();
            done.delegate_ipam = Some(t.clone());
            r
        }
    };
    if *ipam != Ipam::None && result.ips.is_empty() {
        return Err(CniError::InvalidConfig("the IPAM plugin returned no IP configuration".into()));
    }
    result.interfaces.clear();
    let gateways = plan::calc_gateways(&mut result, bc);

    // The container side: addresses, link up, routes.
    let cont_link = configure_container(cont, env, bc, &result)?;

    // The host side: gateway addresses on the bridge and forwarding.
    if bc.is_gateway {
        for (family, nets) in [("v4", &gateways.v4), ("v6", &gateways.v6)] {
            for gw in nets.iter() {
                ensure_addr(host, &bridge, *gw, bc.force_address)?;
            }
            if !nets.is_empty() {
                let key = if family == "v4" { "net.ipv4.ip_forward" } else { "net.ipv6.conf.all.forwarding" };
                sys::host_sysctl(key, "1").map_err(|e| e.context("cannot enable forwarding"))?;
            }
        }
    }
    if bc.ip_masq {
        let tag = nft::attachment_tag(&nc.name, &env.container_id, &env.ifname);
        done.masq_tag = Some(tag.clone());
        let addrs: Vec<IpNet> = result.ips.iter().map(|i| i.address).collect();
        ipmasq::add(&tag, &addrs).map_err(|e| e.context("cannot set up ipMasq"))?;
    }
    if let Some(dir) = &bc.same_node_redirect {
        let ips: Vec<IpAddr> =
            result.ips.iter().filter(|i| i.interface == Some(CONTAINER_IFACE)).map(|i| i.address.addr()).collect();
        let added = redirect::add(host, dir, &ips, host_veth.index)?;
        done.redirect = Some((dir.clone(), added.into_iter().map(IpAddr::V4).collect()));
    }

    // The interfaces as they are now: the bridge's MAC may have changed with its first port; the
    // veth ends have the name, MAC and MTU they were read with.
    let bridge = host.get_link(bridge.index).map_err(nl)?;
    let mac = |l: &Link| l.mac.map(|m| m.to_string()).unwrap_or_default();
    result.interfaces = vec![
        Interface { name: bridge.name.clone(), mac: mac(&bridge), mtu: Some(bridge.mtu), ..Default::default() },
        Interface {
            name: host_veth.name.clone(),
            mac: mac(&host_veth),
            mtu: Some(host_veth.mtu),
            ..Default::default()
        },
        Interface {
            name: cont_link.name.clone(),
            mac: mac(&cont_link),
            mtu: Some(cont_link.mtu),
            sandbox: env.netns.clone().unwrap_or_default(),
            ..Default::default()
        },
    ];
    if !nc.dns.is_empty() {
        result.dns = nc.dns.clone();
    }
    Ok(result)
}

/// Undoes what a failed ADD did, in reverse order; errors are ignored (best effort).
fn undo(env: &Env, stdin: &[u8], ipam: &Ipam, host: &mut Handle, cont: &mut Container<'_>, done: Done) {
    if let Some((dir, ips)) = &done.redirect {
        let _ = redirect::del(dir, ips);
    }
    if let Some(tag) = &done.masq_tag {
        let _ = ipmasq::del(tag);
    }
    if let Ipam::HostLocal(c) = ipam {
        if !done.host_local_ips.is_empty() {
            let _ = ipam::release_ips(c, &done.host_local_ips);
        }
    }
    if let Some(t) = &done.delegate_ipam {
        let _ = delegate::ipam(t, "DEL", env, stdin);
    }
    if done.veth {
        if let Ok(h) = cont.handle() {
            let _ = h.del_link(env.ifname.as_str());
        }
    }
    if let Some(name) = &done.bridge_created {
        // Only if no other attachment has started using it meanwhile.
        if let (Ok(br), Ok(links)) = (host.get_link(name.as_str()), host.dump_links()) {
            if !links.iter().any(|l| l.master == Some(br.index)) {
                let _ = host.del_link(br.index);
            }
        }
    }
}

/// The container's namespace and, once opened, a netlink socket in it.
struct Container<'a> {
    ns: &'a Netns,
    handle: Option<Handle>,
}

impl Container<'_> {
    /// The socket, opened (on a thread inside the namespace) if it is not yet.
    fn handle(&mut self) -> CniResult<&mut Handle> {
        if self.handle.is_none() {
            self.handle = Some(Handle::in_netns(self.ns).map_err(nl)?);
        }
        Ok(self.handle.as_mut().expect("just opened"))
    }

    /// Writes `sysctls` (paths under `/proc/sys`, best effort: a kernel without IPv6 has no such
    /// keys) inside the namespace and opens the socket on the same thread: one thread entering
    /// the namespace for both.
    fn open_with(&mut self, sysctls: Vec<(String, &'static str)>) -> CniResult<&mut Handle> {
        let open = self.handle.is_none();
        let handle = podnet_netlink::run_in(self.ns, move || {
            for (key, value) in sysctls {
                let _ = std::fs::write(format!("/proc/sys/{key}"), value);
            }
            open.then(Handle::new)
        })
        .map_err(nl)?;
        if let Some(h) = handle {
            self.handle = Some(h.map_err(nl)?);
        }
        self.handle()
    }
}

/// Finds or creates the bridge, up, with the configured MTU, promiscuous mode and VLAN filtering.
fn ensure_bridge(host: &mut Handle, bc: &BridgeConf, done: &mut Done) -> CniResult<Link> {
    let existing = match host.get_link(bc.bridge.as_str()) {
        Ok(l) => Some(l),
        Err(e) if not_found(&e) => None,
        Err(e) => return Err(nl(e)),
    };
    let br = match existing {
        Some(l) => l,
        None => {
            let mut new = NewLink::bridge(bc.bridge.as_str());
            if let Some(m) = bc.mtu {
                new = new.mtu(m);
            }
            if bc.vlan != 0 {
                new = new.vlan_filtering(true);
            }
            match host.create_link(&new) {
                Ok(l) => {
                    done.bridge_created = Some(l.name.clone());
                    l
                }
                // Another ADD created it meanwhile.
                Err(e) if e.kind() == podnet_netlink::ErrorKind::AlreadyExists => {
                    host.get_link(bc.bridge.as_str()).map_err(nl)?
                }
                Err(e) if bc.vlan != 0 && e.kind() == podnet_netlink::ErrorKind::InvalidArgument => {
                    return Err(nl(e).context(format_args!(
                        "vlan {}: the bridge needs VLAN filtering (does the kernel have CONFIG_BRIDGE_VLAN_FILTERING?)",
                        bc.vlan
                    )))
                }
                Err(e) => return Err(nl(e)),
            }
        }
    };
    if br.kind.as_deref() != Some("bridge") {
        return Err(CniError::InvalidConfig(format!(
            "bridge: {:?} already exists but is not a bridge (it is a {} link)",
            bc.bridge,
            br.kind.as_deref().unwrap_or("physical or loopback")
        )));
    }
    if bc.promisc_mode && !br.is_promisc() {
        host.set_promisc(br.index, true).map_err(nl)?;
    }
    if bc.vlan != 0 && !br.bridge.as_ref().is_some_and(|b| b.vlan_filtering) {
        host.set_vlan_filtering(br.index, true).map_err(nl)?;
    }
    if !br.is_up() {
        host.set_up(br.index).map_err(nl)?;
    }
    Ok(br)
}

/// Creates the veth pair: the host end (a random `vethXXXXXXXX`, a port of the bridge, hairpin
/// and VLAN as configured, up) and the container end `CNI_IFNAME` in the container.
fn create_veth(
    host: &mut Handle,
    cont: &mut Container<'_>,
    bc: &BridgeConf,
    bridge: &Link,
    env: &Env,
    container: &Netns,
    done: &mut Done,
) -> CniResult<Link> {
    let mut last_err = None;
    for _ in 0..4 {
        let name = plan::veth_name(sys::random4());
        let mut new = NewLink::veth(name.as_str(), env.ifname.as_str()).peer_netns(container).master(bridge.index);
        if let Some(m) = bc.mtu {
            new = new.mtu(m);
        }
        if let Some(m) = bc.mac {
            new = new.peer_mac(MacAddr(m));
        }
        // Without a VLAN to set first, the host end is created up (one request less).
        if bc.vlan == 0 {
            new = new.up();
        }
        match host.create_link(&new) {
            Ok(link) => {
                done.veth = true;
                if bc.hairpin_mode {
                    host.set_hairpin(link.index, true).map_err(nl)?;
                }
                if bc.vlan != 0 {
                    host.add_bridge_vlan(link.index, BridgeVlan { vid: bc.vlan, pvid: true, untagged: true })
                        .map_err(nl)?;
                    if !bc.preserve_default_vlan {
                        match host.del_bridge_vlan(link.index, 1) {
                            Ok(()) => {}
                            Err(e) if not_found(&e) => {}
                            Err(e) => return Err(nl(e)),
                        }
                    }
                }
                if bc.vlan != 0 {
                    host.set_up(link.index).map_err(nl)?;
                }
                return Ok(link);
            }
            Err(e) if e.kind() == podnet_netlink::ErrorKind::AlreadyExists => {
                if cont.handle()?.get_link(env.ifname.as_str()).is_ok() {
                    return Err(CniError::InterfaceExists(format!(
                        "interface {:?} already exists in network namespace {}",
                        env.ifname,
                        container.path().display()
                    )));
                }
                // The random host name was taken: try another.
                last_err = Some(e);
            }
            Err(e) => return Err(nl(e)),
        }
    }
    Err(nl(last_err.expect("at least one attempt")))
}

/// Addresses (without duplicate address detection unless `enabledad`), link up, routes.
/// Returns the container interface (as read before it was set up).
fn configure_container(cont: &mut Container<'_>, env: &Env, bc: &BridgeConf, result: &AddResult) -> CniResult<Link> {
    let ifname = env.ifname.as_str();
    // As the reference plugin: duplicate address detection off unless `enabledad` (hairpin mode
    // echoes neighbour solicitations back), gratuitous ARP when the link comes up, and IPv6 on
    // when an IPv6 address is to be added. Best effort: a kernel without IPv6 has no such keys.
    let settings =
        plan::container_sysctls(ifname, bc.enable_dad, result.ips.iter().any(|i| i.address.addr().is_ipv6()));
    let cont = cont.open_with(settings)?;
    for ipc in result.ips.iter().filter(|i| i.interface == Some(CONTAINER_IFACE)) {
        cont.add_addr(ifname, ipc.address).map_err(nl)?;
    }
    let link = cont.get_link(ifname).map_err(nl)?;
    cont.set_up(link.index).map_err(nl)?;
    for r in &result.routes {
        let mut route = podnet_netlink::Route::new(r.dst).dev(link.index);
        if let Some(gw) = plan::route_gateway(result, r) {
            route = route.via(gw);
        }
        if let Some(t) = r.table {
            route = route.table(t);
        }
        if let Some(p) = r.priority {
            route = route.metric(p);
        }
        if let Some(s) = r.scope {
            route = route.scope(s);
        }
        if let Some(m) = r.mtu {
            route = route.mtu(m);
        }
        route.advmss = r.advmss;
        match cont.add_route(&route) {
            Ok(()) => {}
            Err(e) if e.kind() == podnet_netlink::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(CniError::Netlink(format!(
                    "cannot add route {} via {:?} dev {ifname}: {e}",
                    r.dst, route.gateway
                )))
            }
        }
    }
    Ok(link)
}

/// Puts `gw` on the bridge unless it has it; another address of the family (IPv4) or of an
/// overlapping subnet (IPv6) is an error, or replaced with `forceAddress`.
///
/// Every ADD but a network's first finds the gateway there. Listing the bridge's addresses
/// means dumping every address of the namespace (one more per pod: each host veth has an IPv6
/// link-local one), so an IPv4 gateway is first simply added: "exists" (same address, same
/// prefix on this link) is the common answer and needs no listing. When it was not there, it is
/// kept only if nothing conflicts; otherwise it is taken away again and the careful path below
/// (conflicts resolved before the gateway is added) decides.
fn ensure_addr(host: &mut Handle, bridge: &Link, gw: IpNet, force: bool) -> CniResult<()> {
    let opts = AddrOptions { nodad: gw.addr().is_ipv6(), ..Default::default() };
    if gw.addr().is_ipv4() {
        match host.add_addr_with(bridge.index, gw, &opts) {
            Err(e) if e.kind() == podnet_netlink::ErrorKind::AlreadyExists => return Ok(()),
            Err(e) => return Err(CniError::Netlink(format!("cannot add {gw} to bridge {:?}: {e}", bridge.name))),
            Ok(()) => {
                let addrs = host.link_addresses(bridge.index).map_err(nl)?;
                if !addrs.iter().any(|a| a.addr.addr().is_ipv4() && a.addr != gw && a.scope != 253) {
                    return pin_mac(host, bridge);
                }
                host.del_addr(bridge.index, gw).map_err(nl)?;
            }
        }
    }
    let addrs = host.link_addresses(bridge.index).map_err(nl)?;
    for a in addrs.iter().filter(|a| a.addr.addr().is_ipv4() == gw.addr().is_ipv4()) {
        if a.addr == gw {
            return Ok(());
        }
        let conflicts = gw.addr().is_ipv4() || a.addr.contains(&gw.addr()) || gw.contains(&a.addr.addr());
        if conflicts && a.scope != 253 {
            if force {
                host.del_addr(bridge.index, a.addr).map_err(nl)?;
            } else {
                return Err(CniError::InvalidConfig(format!(
                    "bridge {:?} already has IP address {}, different from {gw} (set forceAddress to replace it)",
                    bridge.name, a.addr
                )));
            }
        }
    }
    match host.add_addr_with(bridge.index, gw, &opts) {
        Ok(()) => {}
        Err(e) if e.kind() == podnet_netlink::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(CniError::Netlink(format!("cannot add {gw} to bridge {:?}: {e}", bridge.name))),
    }
    pin_mac(host, bridge)
}

/// As the reference plugin, once the gateway is added: pin the bridge's MAC (set it to itself),
/// so that it no longer follows the lowest MAC of its ports as they come and go. (Done once it
/// has a port: set on a bridge without ports, the kernel leaves its operational state UNKNOWN.)
fn pin_mac(host: &mut Handle, bridge: &Link) -> CniResult<()> {
    let current = host.get_link(bridge.index).map_err(nl)?;
    if let Some(mac) = current.mac {
        host.set_mac(bridge.index, mac).map_err(nl)?;
    }
    Ok(())
}

/// DEL: forgets the pod's addresses in the same-node redirect's map, frees them, deletes the
/// container interface (and with it the host end), and removes masquerade rules. Whatever is
/// already gone is fine.
pub fn del(nc: &NetConf, env: &Env, stdin: &[u8]) -> CniResult<()> {
    let bc = BridgeConf::parse(nc, &env.args)?;
    let ipam = ipam::parse(nc, &env.args)?;
    let mut first_err: Option<CniError> = None;
    let mut keep = |r: CniResult<()>| {
        if let Err(e) = r {
            first_err.get_or_insert(e);
        }
    };
    // The masquerade rules first, and their socket closed last (see ipmasq::del_with): the
    // kernel's grace period for the deleted rules passes while the veth pair is deleted.
    let mut masq_socket = None;
    if bc.ip_masq {
        let tag = nft::attachment_tag(&nc.name, &env.container_id, &env.ifname);
        keep(nftnl::Nft::open().and_then(|mut n| {
            let r = ipmasq::del_with(&mut n, &tag).map(|_| ());
            masq_socket = Some(n);
            r
        }));
    }
    // Before IPAM frees the addresses: an ADD may be handed one of them at once.
    if let Some(dir) = &bc.same_node_redirect {
        let ips = match &ipam {
            Ipam::HostLocal(c) => ipam::held(c, &env.container_id, &env.ifname).unwrap_or_default(),
            _ => nc.prev_result.iter().flat_map(|r| r.ips.iter().map(|i| i.address.addr())).collect(),
        };
        keep(redirect::del(dir, &ips));
    }
    match &ipam {
        Ipam::None => {}
        Ipam::HostLocal(c) => keep(ipam::del(c, &env.container_id, &env.ifname).map(|_| ())),
        Ipam::Delegate(t) => keep(delegate::ipam(t, "DEL", env, stdin).map(|_| ())),
    }
    if let Some(path) = env.netns.as_deref() {
        keep((|| {
            let Some(ns) = sys::open_netns_opt(path)? else { return Ok(()) };
            let mut h = Handle::in_netns(&ns).map_err(nl)?;
            match h.del_link(env.ifname.as_str()) {
                Ok(()) => Ok(()),
                Err(e) if not_found(&e) => Ok(()),
                Err(e) => Err(nl(e)),
            }
        })());
    }
    drop(masq_socket);
    first_err.map_or(Ok(()), Err)
}

/// CHECK: the bridge, the container interface (MAC, MTU), its addresses and routes, the host
/// end of the pair, the IPAM reservation and masquerade rules are as `prevResult` says.
pub fn check(nc: &NetConf, env: &Env, stdin: &[u8]) -> CniResult<()> {
    let bc = BridgeConf::parse(nc, &env.args)?;
    let ipam = ipam::parse(nc, &env.args)?;
    let prev =
        nc.prev_result.as_ref().ok_or_else(|| CniError::InvalidConfig("prevResult: required for CHECK".into()))?;
    match &ipam {
        Ipam::None => {}
        Ipam::HostLocal(c) => {
            let held = ipam::check(c, &env.container_id, &env.ifname)?;
            for ip in prev.ips.iter().filter(|i| i.interface == prev.sandbox_interface(&env.ifname)) {
                if !held.contains(&ip.address.addr()) {
                    return Err(CniError::CheckFailed(format!(
                        "address {} is not reserved for container {} in the IPAM store",
                        ip.address.addr(),
                        env.container_id
                    )));
                }
            }
        }
        Ipam::Delegate(t) => {
            delegate::ipam(t, "CHECK", env, stdin)?;
        }
    }
    let fail = |m: String| Err(CniError::CheckFailed(m));
    let cidx = match prev.sandbox_interface(&env.ifname) {
        Some(i) => i,
        None => return fail(format!("prevResult has no container interface {:?}", env.ifname)),
    };
    let want = &prev.interfaces[cidx];

    // The bridge.
    let mut host = Handle::new().map_err(nl)?;
    let br = match host.get_link(bc.bridge.as_str()) {
        Ok(l) if l.kind.as_deref() == Some("bridge") => l,
        Ok(_) => return fail(format!("{:?} is not a bridge", bc.bridge)),
        Err(e) if not_found(&e) => return fail(format!("bridge {:?} does not exist", bc.bridge)),
        Err(e) => return Err(nl(e)),
    };

    // The container interface.
    let container = sys::open_netns(env.netns.as_deref().unwrap_or_default())?;
    let mut cont = Handle::in_netns(&container).map_err(nl)?;
    let link = match cont.get_link(env.ifname.as_str()) {
        Ok(l) => l,
        Err(e) if not_found(&e) => {
            return fail(format!("interface {:?} does not exist in {}", env.ifname, container.path().display()))
        }
        Err(e) => return Err(nl(e)),
    };
    let mac = link.mac.map(|m| m.to_string()).unwrap_or_default();
    if !want.mac.is_empty() && !want.mac.eq_ignore_ascii_case(&mac) {
        return fail(format!("interface {:?} has MAC {mac}, prevResult says {}", env.ifname, want.mac));
    }
    if let Some(mtu) = want.mtu {
        if mtu != link.mtu {
            return fail(format!("interface {:?} has MTU {}, prevResult says {mtu}", env.ifname, link.mtu));
        }
    }
    if !link.is_up() {
        return fail(format!("interface {:?} is down", env.ifname));
    }
    let addrs = cont.link_addresses(link.index).map_err(nl)?;
    for ip in prev.ips.iter().filter(|i| i.interface == Some(cidx)) {
        if !addrs.iter().any(|a| a.addr == ip.address) {
            return fail(format!("interface {:?} does not have address {}", env.ifname, ip.address));
        }
    }
    let routes = cont.dump_routes().map_err(nl)?;
    for r in &prev.routes {
        let gw = plan::route_gateway(prev, r);
        let table = r.table.unwrap_or(podnet_netlink::route::RT_TABLE_MAIN);
        let found =
            routes.iter().any(|x| x.dst == r.dst.trunc() && x.table == table && (gw.is_none() || x.gateway == gw));
        if !found {
            return fail(format!("route to {} (via {gw:?}) is missing in the container", r.dst));
        }
    }

    // The host end: a port of the bridge, named as in prevResult.
    if let Some(hv) = prev.interfaces.iter().find(|i| i.sandbox.is_empty() && i.name != bc.bridge) {
        match host.get_link(hv.name.as_str()) {
            Ok(l) if l.master == Some(br.index) => {}
            Ok(_) => return fail(format!("host interface {:?} is not a port of bridge {:?}", hv.name, bc.bridge)),
            Err(e) if not_found(&e) => return fail(format!("host interface {:?} does not exist", hv.name)),
            Err(e) => return Err(nl(e)),
        }
    }
    if bc.ip_masq {
        let tag = nft::attachment_tag(&nc.name, &env.container_id, &env.ifname);
        let expected = prev.ips.iter().filter(|i| i.interface == Some(cidx)).count();
        let n = ipmasq::count(&tag)?;
        if n < expected {
            return fail(format!("{n} of {expected} ipMasq rules are in nftables table inet {}", ipmasq::TABLE));
        }
    }
    Ok(())
}

/// The tags of the valid attachments of network `name`.
pub fn valid_tags(name: &str, valid: &HashSet<crate::types::Attachment>) -> HashSet<String> {
    valid.iter().map(|a| nft::attachment_tag(name, &a.container_id, &a.ifname)).collect()
}

/// GC: frees reservations and masquerade rules of attachments not in the valid list.
pub fn gc(nc: &NetConf, env: &Env, stdin: &[u8]) -> CniResult<()> {
    let bc = BridgeConf::parse(nc, &env.args)?;
    let ipam = ipam::parse(nc, &env.args)?;
    let valid: HashSet<_> = nc
        .valid_attachments()?
        .ok_or_else(|| CniError::InvalidConfig("cni.dev/valid-attachments: required for GC".into()))?
        .into_iter()
        .collect();
    match &ipam {
        Ipam::None => {}
        Ipam::HostLocal(c) => {
            ipam::gc(c, &valid)?;
        }
        Ipam::Delegate(t) => {
            delegate::ipam(t, "GC", env, stdin)?;
        }
    }
    if bc.ip_masq {
        ipmasq::gc(&nc.name, &valid_tags(&nc.name, &valid))?;
    }
    Ok(())
}

/// STATUS: IPAM can hand out an address, and nftables is there when ipMasq needs it.
pub fn status(nc: &NetConf, env: &Env, stdin: &[u8]) -> CniResult<()> {
    let bc = BridgeConf::parse(nc, &env.args)?;
    match ipam::parse(nc, &env.args)? {
        Ipam::None => {}
        Ipam::HostLocal(c) => ipam::status(&c)?,
        Ipam::Delegate(t) => {
            delegate::ipam(&t, "STATUS", env, stdin)?;
        }
    }
    if bc.ip_masq && !ipmasq::available() {
        return Err(CniError::NotAvailable("ipMasq needs nftables, and the kernel's nf_tables cannot be used".into()));
    }
    Ok(())
}
