//! Reconciling a node's network namespace with a [`Plan`]: read the kernel's state, change only
//! what differs, report what was changed ([`Changes`]; empty when the namespace already matched).
//!
//! What this crate owns, and so may delete:
//! - routes of protocol [`RTPROT_PODNET`] in the main table (every route it installs carries
//!   it; routes of other protocols are never deleted, though a planned route replaces one to the
//!   same destination);
//! - the VXLAN device named in the plan (deleted under host-gw), and the permanent neighbours and
//!   FDB entries on it;
//! - the nftables tables `ip podnet_node` and `ip6 podnet_node` ([`crate::masq`]).
//!
//! Order, as flannel's: sysctls; the VXLAN device (created, fixed or removed); FDB entries and
//! neighbours; routes; masquerade. An operation that fails does not stop the others (one
//! unreachable node must not cut off the rest): failures are collected into
//! [`Error::Incomplete`], and the next apply retries them. The diffs are pure functions
//! ([`diff_routes`], [`diff_neighbours`], [`diff_fdb`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use podnet_netlink::route::RT_TABLE_MAIN;
use podnet_netlink::{
    read_sysctl, run_in, write_sysctl, AddrOptions, FdbEntry, Handle, Link, MacAddr, Neighbour, Netns, NewLink, Route,
    VxlanOptions,
};

use crate::error::Error;
use crate::masq::{self, Family, Outcome};
use crate::plan::{Plan, VxlanDevice, RTPROT_PODNET};

/// One change made to the namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A sysctl was written.
    Sysctl {
        /// The key (`net.ipv4.ip_forward`).
        key: String,
        /// The value written.
        value: String,
    },
    /// A link (the VXLAN device) was created.
    CreateLink {
        /// Its name.
        name: String,
    },
    /// A link was deleted (the VXLAN device under host-gw, or to recreate it with other settings).
    DeleteLink {
        /// Its name.
        name: String,
    },
    /// A link's MAC was set.
    SetLinkMac {
        /// The link.
        name: String,
        /// The MAC.
        mac: MacAddr,
    },
    /// A link's MTU was set.
    SetLinkMtu {
        /// The link.
        name: String,
        /// The MTU.
        mtu: u32,
    },
    /// A link was set up.
    SetLinkUp {
        /// The link.
        name: String,
    },
    /// An address was added to a link.
    AddAddress {
        /// The link.
        dev: String,
        /// The address.
        addr: IpNet,
    },
    /// An address was removed from a link.
    DeleteAddress {
        /// The link.
        dev: String,
        /// The address.
        addr: IpNet,
    },
    /// A route was added or replaced.
    SetRoute {
        /// Its destination.
        dst: IpNet,
        /// Its gateway.
        gateway: IpAddr,
        /// Its device.
        dev: String,
    },
    /// A route was deleted.
    DeleteRoute {
        /// Its destination.
        dst: IpNet,
        /// Its gateway.
        gateway: Option<IpAddr>,
    },
    /// A permanent neighbour was added or replaced.
    SetNeighbour {
        /// The link.
        dev: String,
        /// The IP.
        ip: IpAddr,
        /// The MAC.
        mac: MacAddr,
    },
    /// A neighbour was deleted.
    DeleteNeighbour {
        /// The link.
        dev: String,
        /// The IP.
        ip: IpAddr,
    },
    /// An FDB entry was added or replaced.
    SetFdb {
        /// The link.
        dev: String,
        /// The MAC.
        mac: MacAddr,
        /// The remote VTEP.
        dst: IpAddr,
    },
    /// An FDB entry was deleted.
    DeleteFdb {
        /// The link.
        dev: String,
        /// The MAC.
        mac: MacAddr,
        /// The remote VTEP.
        dst: IpAddr,
    },
    /// The masquerade table of a family was written.
    WriteMasquerade {
        /// The family.
        family: Family,
    },
    /// The masquerade table of a family was deleted.
    DeleteMasquerade {
        /// The family.
        family: Family,
    },
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Sysctl { key, value } => write!(f, "sysctl {key}={value}"),
            Action::CreateLink { name } => write!(f, "create link {name}"),
            Action::DeleteLink { name } => write!(f, "delete link {name}"),
            Action::SetLinkMac { name, mac } => write!(f, "set link {name} address {mac}"),
            Action::SetLinkMtu { name, mtu } => write!(f, "set link {name} mtu {mtu}"),
            Action::SetLinkUp { name } => write!(f, "set link {name} up"),
            Action::AddAddress { dev, addr } => write!(f, "add address {addr} dev {dev}"),
            Action::DeleteAddress { dev, addr } => write!(f, "delete address {addr} dev {dev}"),
            Action::SetRoute { dst, gateway, dev } => write!(f, "set route {dst} via {gateway} dev {dev}"),
            Action::DeleteRoute { dst, gateway: Some(gw) } => write!(f, "delete route {dst} via {gw}"),
            Action::DeleteRoute { dst, gateway: None } => write!(f, "delete route {dst}"),
            Action::SetNeighbour { dev, ip, mac } => write!(f, "set neighbour {ip} lladdr {mac} dev {dev}"),
            Action::DeleteNeighbour { dev, ip } => write!(f, "delete neighbour {ip} dev {dev}"),
            Action::SetFdb { dev, mac, dst } => write!(f, "set fdb {mac} dst {dst} dev {dev}"),
            Action::DeleteFdb { dev, mac, dst } => write!(f, "delete fdb {mac} dst {dst} dev {dev}"),
            Action::WriteMasquerade { family } => write!(f, "write nftables table {family} {}", masq::TABLE),
            Action::DeleteMasquerade { family } => write!(f, "delete nftables table {family} {}", masq::TABLE),
        }
    }
}

/// What an apply changed, in order. Empty when the namespace already matched the plan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// The changes.
    pub actions: Vec<Action>,
}

impl Changes {
    /// Whether nothing was changed.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// How many changes.
    pub fn len(&self) -> usize {
        self.actions.len()
    }
}

impl fmt::Display for Changes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.actions.is_empty() {
            return f.write_str("no changes");
        }
        for (i, a) in self.actions.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{a}")?;
        }
        Ok(())
    }
}

/// Applies `plan` to the network namespace `netns` (use [`apply_current`] from a thread already
/// inside the node's namespace). Idempotent: a second call with the same plan changes nothing
/// and returns empty [`Changes`]. On failure of some operations the others are still done and
/// [`Error::Incomplete`] lists both.
pub fn apply(netns: &Netns, plan: &Plan) -> Result<Changes, Error> {
    let handle = Handle::in_netns(netns).map_err(Error::netlink("open a netlink socket in the node namespace"))?;
    let mut r =
        Reconciler { h: handle, netns, changes: Changes::default(), failures: Vec::new(), links: BTreeMap::new() };
    r.sysctls(plan);
    let vxlan_index = r.vxlan(plan);
    r.fdb(plan, vxlan_index);
    r.neighbours(plan, vxlan_index);
    r.routes(plan);
    r.masquerade(plan);
    if r.failures.is_empty() {
        Ok(r.changes)
    } else {
        Err(Error::Incomplete { changes: r.changes, failures: r.failures })
    }
}

/// [`apply`] to the calling thread's network namespace.
pub fn apply_current(plan: &Plan) -> Result<Changes, Error> {
    let netns = Netns::current().map_err(Error::netlink("open the current network namespace"))?;
    apply(&netns, plan)
}

/// The route a [`crate::plan::PlannedRoute`] becomes, its device resolved to `oif`.
pub fn kernel_route(dst: IpNet, gateway: IpAddr, oif: u32, onlink: bool) -> Route {
    let mut route = Route::new(dst).via(gateway).dev(oif);
    route.protocol = RTPROT_PODNET;
    route.onlink = onlink;
    route
}

/// Whether an installed route is the desired one (destination, gateway, device, on-link flag
/// for IPv4; the kernel does not report the flag of IPv6 routes the same way everywhere).
fn same_route(desired: &Route, current: &Route) -> bool {
    desired.dst == current.dst
        && desired.table == current.table
        && desired.gateway == current.gateway
        && desired.oif == current.oif
        && (desired.onlink == current.onlink || matches!(desired.dst, IpNet::V6(_)))
}

/// The routes to add or replace, and the owned routes to delete: `current` are the installed
/// routes of protocol [`RTPROT_PODNET`]. An owned route whose destination is still planned is
/// not deleted (the planned one replaces it).
pub fn diff_routes<'a>(desired: &'a [Route], current: &'a [Route]) -> (Vec<&'a Route>, Vec<&'a Route>) {
    let set = desired.iter().filter(|d| !current.iter().any(|c| same_route(d, c))).collect();
    let planned: BTreeSet<(u32, IpNet)> = desired.iter().map(|d| (d.table, d.dst)).collect();
    let delete =
        current.iter().filter(|c| c.protocol == RTPROT_PODNET && !planned.contains(&(c.table, c.dst))).collect();
    (set, delete)
}

/// The neighbours to set (IP, MAC) and the IPs whose permanent entry to delete, on one device
/// whose entries are `current`.
pub fn diff_neighbours(desired: &[(IpAddr, MacAddr)], current: &[Neighbour]) -> (Vec<(IpAddr, MacAddr)>, Vec<IpAddr>) {
    let set = desired
        .iter()
        .filter(|(ip, mac)| !current.iter().any(|c| c.ip == *ip && c.mac == Some(*mac) && c.is_permanent()))
        .copied()
        .collect();
    let wanted: BTreeSet<IpAddr> = desired.iter().map(|(ip, _)| *ip).collect();
    let delete = current.iter().filter(|c| c.is_permanent() && !wanted.contains(&c.ip)).map(|c| c.ip).collect();
    (set, delete)
}

/// An FDB entry of a VXLAN device as far as the diff goes: the MAC and its remote VTEP.
pub type FdbKey = (MacAddr, IpAddr);

/// The FDB entries (MAC, remote) to set and to delete on one VXLAN device whose entries with a
/// remote are `current`.
pub fn diff_fdb(desired: &[FdbKey], current: &[FdbEntry]) -> (Vec<FdbKey>, Vec<FdbKey>) {
    let set = desired
        .iter()
        .filter(|(mac, dst)| !current.iter().any(|c| c.mac == *mac && c.dst == Some(*dst) && c.is_permanent()))
        .copied()
        .collect();
    let delete =
        current.iter().filter_map(|c| Some((c.mac, c.dst?))).filter(|entry| !desired.contains(entry)).collect();
    (set, delete)
}

/// Whether an existing link is the planned VXLAN device as far as what cannot be changed in
/// place goes (kind, VNI, local address, port, learning, underlay).
fn vxlan_matches(link: &Link, dev: &VxlanDevice, underlay: u32) -> bool {
    let Some(v) = link.vxlan.as_ref() else { return false };
    link.kind.as_deref() == Some("vxlan")
        && v.vni == dev.vni
        && v.local == Some(dev.local)
        && v.port == Some(dev.port)
        && !v.learning
        && v.underlay == Some(underlay)
        && v.remote.is_none()
}

struct Reconciler<'a> {
    h: Handle,
    netns: &'a Netns,
    changes: Changes,
    failures: Vec<Error>,
    /// Link indices by name (`None`: could not be found; its failure is recorded once).
    links: BTreeMap<String, Option<u32>>,
}

impl Reconciler<'_> {
    fn did(&mut self, action: Action) {
        self.changes.actions.push(action);
    }

    fn fail(&mut self, e: Error) {
        self.failures.push(e);
    }

    /// Runs a netlink step; on failure records it (with `op`) and returns `None`.
    fn step<T>(&mut self, op: impl Into<String>, result: podnet_netlink::Result<T>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.fail(Error::netlink(op)(e));
                None
            }
        }
    }

    fn link_index(&mut self, name: &str) -> Option<u32> {
        if let Some(known) = self.links.get(name) {
            return *known;
        }
        let result = self.h.link_index(name);
        let index = self.step(format!("look up link {name}"), result);
        self.links.insert(name.to_string(), index);
        index
    }

    fn sysctls(&mut self, plan: &Plan) {
        let mut keys = Vec::new();
        if plan.ipv4_forwarding {
            keys.push("net.ipv4.ip_forward");
        }
        if plan.ipv6_forwarding {
            keys.push("net.ipv6.conf.all.forwarding");
        }
        for key in keys {
            let current = read_sysctl(self.netns, key);
            let Some(current) = self.step(format!("enable {key}"), current) else { continue };
            if current.trim() != "1" {
                let written = write_sysctl(self.netns, key, "1");
                if self.step(format!("enable {key}"), written).is_some() {
                    self.did(Action::Sysctl { key: key.to_string(), value: "1".to_string() });
                }
            }
        }
    }

    /// Creates, fixes or removes the VXLAN device; returns its index when planned and present.
    fn vxlan(&mut self, plan: &Plan) -> Option<u32> {
        let Some(dev) = &plan.vxlan else {
            let name = plan.vxlan_device_name.as_str();
            match self.h.get_link(name) {
                Ok(link) if link.kind.as_deref() == Some("vxlan") => {
                    let deleted = self.h.del_link(link.index);
                    if self.step(format!("remove VXLAN device {name} (backend {})", plan.backend), deleted).is_some() {
                        self.did(Action::DeleteLink { name: name.to_string() });
                        self.links.remove(name);
                    }
                }
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => self.fail(Error::netlink(format!("look up link {name}"))(e)),
            }
            return None;
        };
        let op = format!("set up VXLAN device {}", dev.name);
        let underlay = self.link_index(&dev.underlay)?;
        let existing = match self.h.get_link(dev.name.as_str()) {
            Ok(link) => Some(link),
            Err(e) if e.is_not_found() => None,
            Err(e) => {
                self.fail(Error::netlink(op)(e));
                return None;
            }
        };
        let mut link = match existing {
            Some(link) if vxlan_matches(&link, dev, underlay) => link,
            other => {
                if let Some(old) = other {
                    let deleted = self.h.del_link(old.index);
                    self.step(format!("{op}: remove the device of other settings"), deleted)?;
                    self.did(Action::DeleteLink { name: dev.name.clone() });
                }
                let new = NewLink::vxlan(
                    dev.name.clone(),
                    VxlanOptions {
                        vni: dev.vni,
                        local: Some(dev.local),
                        remote: None,
                        port: Some(dev.port),
                        learning: Some(false),
                        underlay: Some(underlay),
                        ttl: None,
                    },
                )
                .mtu(dev.mtu)
                .mac(dev.mac)
                .up();
                let created = self.h.create_link(&new);
                let link = self.step(op.clone(), created)?;
                self.did(Action::CreateLink { name: dev.name.clone() });
                link
            }
        };
        self.links.insert(dev.name.clone(), Some(link.index));
        if link.mac != Some(dev.mac) {
            let r = self.h.set_mac(link.index, dev.mac);
            if self.step(op.clone(), r).is_some() {
                self.did(Action::SetLinkMac { name: dev.name.clone(), mac: dev.mac });
            }
        }
        if link.mtu != dev.mtu {
            let r = self.h.set_mtu(link.index, dev.mtu);
            if self.step(op.clone(), r).is_some() {
                self.did(Action::SetLinkMtu { name: dev.name.clone(), mtu: dev.mtu });
            }
        }
        if !link.is_up() {
            let r = self.h.set_up(link.index);
            if self.step(op.clone(), r).is_some() {
                self.did(Action::SetLinkUp { name: dev.name.clone() });
                link.flags |= podnet_netlink::link::IFF_UP;
            }
        }
        let addrs = self.h.link_addresses(link.index);
        let current: Vec<IpNet> = self
            .step(op.clone(), addrs)
            .unwrap_or_default()
            .into_iter()
            .map(|a| a.addr)
            .filter(|a| !matches!(a, IpNet::V6(n) if n.addr().is_unicast_link_local()))
            .collect();
        for addr in dev.addresses.iter().filter(|a| !current.contains(a)) {
            let options = AddrOptions { nodad: addr.addr().is_ipv6(), ..AddrOptions::default() };
            let r = self.h.add_addr_with(link.index, *addr, &options);
            if self.step(op.clone(), r).is_some() {
                self.did(Action::AddAddress { dev: dev.name.clone(), addr: *addr });
            }
        }
        for addr in current.iter().filter(|a| !dev.addresses.contains(a)) {
            let r = self.h.del_addr(link.index, *addr);
            if self.step(op.clone(), r).is_some() {
                self.did(Action::DeleteAddress { dev: dev.name.clone(), addr: *addr });
            }
        }
        Some(link.index)
    }

    fn fdb(&mut self, plan: &Plan, vxlan: Option<u32>) {
        let Some(index) = vxlan else { return };
        let dev = plan.vxlan_device_name.clone();
        let dump = self.h.dump_fdb();
        let Some(all) = self.step(format!("read the FDB of {dev}"), dump) else { return };
        let current: Vec<FdbEntry> = all.into_iter().filter(|e| e.index == index && e.dst.is_some()).collect();
        let desired: Vec<(MacAddr, IpAddr)> = plan.fdb.iter().map(|f| (f.mac, f.dst)).collect();
        let (set, delete) = diff_fdb(&desired, &current);
        // Deletes first: a MAC moving to another remote is deleted, then added afresh.
        for (mac, dst) in delete {
            let mut entry = FdbEntry::vxlan(mac, dst);
            entry.index = index;
            match self.h.del_fdb(index, &entry) {
                Ok(()) => self.did(Action::DeleteFdb { dev: dev.clone(), mac, dst }),
                Err(e) if e.is_not_found() => {}
                Err(e) => self.fail(Error::netlink(format!("remove FDB entry {mac} dst {dst} of a node gone"))(e)),
            }
        }
        for (mac, dst) in set {
            let node = plan.fdb.iter().find(|f| f.mac == mac).map(|f| f.node.as_str()).unwrap_or_default();
            let r = self.h.replace_fdb(index, &FdbEntry::vxlan(mac, dst));
            if self.step(format!("FDB entry to node {node}"), r).is_some() {
                self.did(Action::SetFdb { dev: dev.clone(), mac, dst });
            }
        }
    }

    fn neighbours(&mut self, plan: &Plan, vxlan: Option<u32>) {
        let Some(index) = vxlan else { return };
        let dev = plan.vxlan_device_name.clone();
        let dump = self.h.dump_neighbours();
        let Some(all) = self.step(format!("read the neighbours of {dev}"), dump) else { return };
        let current: Vec<Neighbour> = all.into_iter().filter(|n| n.index == index).collect();
        let desired: Vec<(IpAddr, MacAddr)> = plan.neighbours.iter().map(|n| (n.ip, n.mac)).collect();
        let (set, delete) = diff_neighbours(&desired, &current);
        for (ip, mac) in set {
            let node = plan.neighbours.iter().find(|n| n.ip == ip).map(|n| n.node.as_str()).unwrap_or_default();
            let r = self.h.replace_neighbour(index, ip, mac, true);
            if self.step(format!("neighbour of node {node}"), r).is_some() {
                self.did(Action::SetNeighbour { dev: dev.clone(), ip, mac });
            }
        }
        for ip in delete {
            match self.h.del_neighbour(index, ip) {
                Ok(()) => self.did(Action::DeleteNeighbour { dev: dev.clone(), ip }),
                Err(e) if e.is_not_found() => {}
                Err(e) => self.fail(Error::netlink(format!("remove neighbour {ip} of a node gone"))(e)),
            }
        }
    }

    fn routes(&mut self, plan: &Plan) {
        let mut desired = Vec::new();
        let mut nodes = Vec::new();
        for p in &plan.routes {
            let Some(oif) = self.link_index(&p.dev) else { continue };
            desired.push(kernel_route(p.dst, p.gateway, oif, p.onlink));
            nodes.push((p.node.as_str(), p.dev.as_str()));
        }
        let dump = self.h.table_routes(RT_TABLE_MAIN);
        let Some(all) = self.step("read the routes", dump) else { return };
        let current: Vec<Route> = all.into_iter().filter(|r| r.protocol == RTPROT_PODNET).collect();
        let (set, delete) = diff_routes(&desired, &current);
        for route in delete {
            let mut r = Route::new(route.dst).table(route.table);
            r.gateway = route.gateway;
            r.oif = route.oif;
            match self.h.del_route(&r) {
                Ok(()) => self.did(Action::DeleteRoute { dst: route.dst, gateway: route.gateway }),
                Err(e) if e.is_not_found() => {}
                Err(e) => self.fail(Error::netlink(format!("remove route {} of a node gone", route.dst))(e)),
            }
        }
        for route in set {
            let i = desired.iter().position(|d| std::ptr::eq(d, route)).expect("from desired");
            let (node, dev) = nodes[i];
            let r = self.h.replace_route(route);
            if self.step(format!("route to node {node}"), r).is_some() {
                let gateway = route.gateway.expect("planned routes have a gateway");
                self.did(Action::SetRoute { dst: route.dst, gateway, dev: dev.to_string() });
            }
        }
    }

    fn masquerade(&mut self, plan: &Plan) {
        let cidrs = plan.masquerade.as_ref().map(|m| m.cluster_cidrs.clone()).unwrap_or_default();
        let outcomes = run_in(self.netns, || Family::ALL.map(|family| (family, masq::apply_family(family, &cidrs))));
        let Some(outcomes) = self.step("enter the node namespace to run nft", outcomes) else { return };
        for (family, outcome) in outcomes {
            match outcome {
                Ok(Outcome::Unchanged) => {}
                Ok(Outcome::Written) => self.did(Action::WriteMasquerade { family }),
                Ok(Outcome::Deleted) => self.did(Action::DeleteMasquerade { family }),
                Err(e) => self.fail(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use podnet_netlink::neigh::{NTF_SELF, NUD_PERMANENT, NUD_REACHABLE};

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn mac(s: &str) -> MacAddr {
        s.parse().unwrap()
    }

    #[test]
    fn routes_diff() {
        let desired = vec![
            kernel_route(net("10.244.2.0/24"), ip("172.18.0.12"), 2, false),
            kernel_route(net("10.244.3.0/24"), ip("172.18.0.13"), 2, false),
        ];
        // Nothing installed: add both.
        let (set, delete) = diff_routes(&desired, &[]);
        assert_eq!((set.len(), delete.len()), (2, 0));
        // All installed (with the kernel's extra fields): nothing to do.
        let mut installed = desired.clone();
        for r in &mut installed {
            r.scope = Some(0);
            r.metric = None;
        }
        let (set, delete) = diff_routes(&desired, &installed);
        assert!(set.is_empty() && delete.is_empty());
        // A node left and one changed its address; one of ours is stale.
        installed.push(kernel_route(net("10.244.4.0/24"), ip("172.18.0.14"), 2, false));
        installed[1].gateway = Some(ip("172.18.0.99"));
        let (set, delete) = diff_routes(&desired, &installed);
        assert_eq!(set.iter().map(|r| r.dst).collect::<Vec<_>>(), [net("10.244.3.0/24")]);
        assert_eq!(delete.iter().map(|r| r.dst).collect::<Vec<_>>(), [net("10.244.4.0/24")]);
        // Backend switch: same destinations through another device are replaced, not deleted.
        let vxlan = vec![kernel_route(net("10.244.2.0/24"), ip("10.244.2.0"), 7, true)];
        let (set, delete) = diff_routes(&vxlan, &desired);
        assert_eq!(set.len(), 1);
        assert_eq!(delete.iter().map(|r| r.dst).collect::<Vec<_>>(), [net("10.244.3.0/24")]);
        // The on-link flag matters (IPv4).
        let mut not_onlink = vxlan.clone();
        not_onlink[0].onlink = false;
        assert_eq!(diff_routes(&vxlan, &not_onlink).0.len(), 1);
    }

    #[test]
    fn foreign_routes_are_never_deleted() {
        let mut foreign = kernel_route(net("10.244.9.0/24"), ip("172.18.0.19"), 2, false);
        foreign.protocol = podnet_netlink::route::RTPROT_BOOT;
        let (set, delete) = diff_routes(&[], std::slice::from_ref(&foreign));
        assert!(set.is_empty() && delete.is_empty());
    }

    fn neighbour(ipa: &str, m: &str, state: u16) -> Neighbour {
        Neighbour { index: 5, ip: ip(ipa), mac: Some(mac(m)), state, flags: 0 }
    }

    #[test]
    fn neighbours_diff() {
        let desired = vec![(ip("10.244.2.0"), mac("02:00:00:00:00:02")), (ip("10.244.3.0"), mac("02:00:00:00:00:03"))];
        let current = vec![
            neighbour("10.244.2.0", "02:00:00:00:00:02", NUD_PERMANENT),
            neighbour("10.244.3.0", "02:00:00:00:00:03", NUD_REACHABLE),
            neighbour("10.244.4.0", "02:00:00:00:00:04", NUD_PERMANENT),
            neighbour("10.244.5.7", "02:00:00:00:00:05", NUD_REACHABLE),
        ];
        let (set, delete) = diff_neighbours(&desired, &current);
        assert_eq!(set, [(ip("10.244.3.0"), mac("02:00:00:00:00:03"))], "a learnt entry is made permanent");
        assert_eq!(delete, [ip("10.244.4.0")], "only stale permanent entries go");
        let (set, _) = diff_neighbours(&[(ip("10.244.2.0"), mac("02:00:00:00:00:09"))], &current);
        assert_eq!(set.len(), 1, "a new MAC is set");
    }

    #[test]
    fn fdb_diff() {
        let entry = |m: &str, dst: &str| FdbEntry { index: 5, ..FdbEntry::vxlan(mac(m), ip(dst)) };
        let desired =
            vec![(mac("02:00:00:00:00:02"), ip("172.18.0.12")), (mac("02:00:00:00:00:03"), ip("172.18.0.13"))];
        let current = vec![
            entry("02:00:00:00:00:02", "172.18.0.12"),
            entry("02:00:00:00:00:03", "172.18.0.99"),
            entry("02:00:00:00:00:04", "172.18.0.14"),
        ];
        let (set, delete) = diff_fdb(&desired, &current);
        assert_eq!(set, [(mac("02:00:00:00:00:03"), ip("172.18.0.13"))]);
        assert_eq!(
            delete,
            [(mac("02:00:00:00:00:03"), ip("172.18.0.99")), (mac("02:00:00:00:00:04"), ip("172.18.0.14"))]
        );
        assert_eq!(current[0].flags, NTF_SELF);
        let (set, delete) = diff_fdb(&desired, &current[..1]);
        assert_eq!((set.len(), delete.len()), (1, 0));
    }

    #[test]
    fn changes_display() {
        let mut c = Changes::default();
        assert_eq!(c.to_string(), "no changes");
        c.actions.push(Action::SetRoute { dst: net("10.244.2.0/24"), gateway: ip("172.18.0.12"), dev: "eth0".into() });
        c.actions.push(Action::WriteMasquerade { family: Family::Ip });
        assert_eq!(
            c.to_string(),
            "set route 10.244.2.0/24 via 172.18.0.12 dev eth0; write nftables table ip podnet_node"
        );
        assert_eq!(c.len(), 2);
    }
}
