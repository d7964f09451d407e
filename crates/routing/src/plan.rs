//! The pure half of routing: from this node's [`Config`] and every node's [`NodeRoute`], the
//! [`Plan`] of what the node's network namespace should hold — no I/O here.
//!
//! - host-gw: one route per remote pod CIDR, `<podCIDR> via <node IP> dev <underlay>`, as in a
//!   hand-built two-node pod network. The nodes must share the underlay's L2 segment.
//! - vxlan, flannel's layout: a VXLAN device `flannel.1` (VNI 1, UDP 8472, no learning, MTU of
//!   the underlay − 50) holding `<own podCIDR network>/32`, and per remote node a route
//!   `<podCIDR> via <podCIDR network> dev flannel.1 onlink`, a permanent neighbour
//!   `<podCIDR network> lladdr <its VTEP MAC>` and an FDB entry `<its VTEP MAC> dst <node IP>
//!   self permanent`.
//!
//! A node's VTEP MAC is derived from its name ([`vtep_mac`]): every node computes every other
//! node's without extra API fields. A MAC published in the node's flannel annotation (a node run
//! by real flannel) takes precedence: see [`crate::annotations`].
//!
//! Conflicts never make planning fail: a node whose pod CIDR overlaps one already planned (or
//! this node's), a duplicate VTEP MAC, a family mismatch — each is left out and reported in
//! [`Plan::warnings`], and every other node still gets its path.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use podnet_netlink::MacAddr;
use sha2::{Digest, Sha256};

/// flannel's VXLAN network identifier.
pub const FLANNEL_VNI: u32 = 1;
/// flannel's (and the Linux kernel's default) VXLAN UDP port.
pub const FLANNEL_PORT: u16 = 8472;
/// flannel's VXLAN device name (`flannel.<VNI>`).
pub const FLANNEL_DEVICE: &str = "flannel.1";
/// VXLAN encapsulation overhead over an IPv4 underlay: outer IPv4 (20) + UDP (8) + VXLAN (8) +
/// inner Ethernet (14).
pub const VXLAN_OVERHEAD_V4: u32 = 50;
/// The same over an IPv6 underlay (outer IPv6 header of 40 bytes).
pub const VXLAN_OVERHEAD_V6: u32 = 70;
/// The route protocol (`proto 158` in `ip route`) marking the routes this crate installs: it
/// deletes only routes carrying it. Not in iproute2's `rt_protos` list nor used by the usual
/// routing daemons (zebra 11, bird 12, babel 42, openr 99, FRR 186–192).
pub const RTPROT_PODNET: u8 = 158;

/// How packets reach other nodes' pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Backend {
    /// A route per remote pod CIDR via the remote node's address (nodes on one L2 segment).
    HostGw,
    /// flannel-compatible VXLAN overlay (works across L3 hops too). flannel's default.
    #[default]
    Vxlan,
}

impl Backend {
    /// The name flannel uses (`host-gw`, `vxlan`), as in its `backend-type` annotation.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::HostGw => "host-gw",
            Backend::Vxlan => "vxlan",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing a [`Backend`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown routing backend {0:?}: expected \"host-gw\" or \"vxlan\"")]
pub struct ParseBackendError(pub String);

impl FromStr for Backend {
    type Err = ParseBackendError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "host-gw" | "hostgw" | "host_gw" => Ok(Backend::HostGw),
            "vxlan" => Ok(Backend::Vxlan),
            _ => Err(ParseBackendError(s.to_string())),
        }
    }
}

/// VXLAN settings (flannel's by default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanConfig {
    /// The VNI ([`FLANNEL_VNI`]).
    pub vni: u32,
    /// The UDP port ([`FLANNEL_PORT`]).
    pub port: u16,
    /// The device name ([`FLANNEL_DEVICE`]).
    pub device: String,
}

impl Default for VxlanConfig {
    fn default() -> Self {
        VxlanConfig { vni: FLANNEL_VNI, port: FLANNEL_PORT, device: FLANNEL_DEVICE.to_string() }
    }
}

/// This node's routing settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The backend.
    pub backend: Backend,
    /// This node's name (its own entry in the node list is not routed to).
    pub this_node: String,
    /// This node's address on the underlay (the VTEP's local address).
    pub node_ip: IpAddr,
    /// This node's pod CIDR(s). If empty, those of this node's entry in the node list.
    pub pod_cidrs: Vec<IpNet>,
    /// The cluster's pod CIDR(s) (e.g. `10.244.0.0/16`): traffic from them to elsewhere is
    /// masqueraded. If empty, the pod CIDRs of all nodes stand in for them.
    pub cluster_cidrs: Vec<IpNet>,
    /// This node's interface on the underlay (e.g. `eth0`).
    pub underlay_link: String,
    /// The underlay interface's MTU.
    pub underlay_mtu: u32,
    /// VXLAN settings (used by [`Backend::Vxlan`]).
    pub vxlan: VxlanConfig,
    /// Masquerade traffic from pods to destinations outside the cluster CIDR (flannel's
    /// `--ip-masq`). On by default.
    pub masquerade: bool,
}

impl Config {
    /// A configuration with flannel's VXLAN settings, masquerading on and no CIDRs yet.
    pub fn new(
        backend: Backend,
        this_node: impl Into<String>,
        node_ip: IpAddr,
        underlay_link: impl Into<String>,
        underlay_mtu: u32,
    ) -> Config {
        Config {
            backend,
            this_node: this_node.into(),
            node_ip,
            pod_cidrs: Vec::new(),
            cluster_cidrs: Vec::new(),
            underlay_link: underlay_link.into(),
            underlay_mtu,
            vxlan: VxlanConfig::default(),
            masquerade: true,
        }
    }
}

/// What routing needs to know of a node (this one included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRoute {
    /// The node's name.
    pub name: String,
    /// Its address on the underlay (`InternalIP`, or flannel's `public-ip`).
    pub internal_ip: IpAddr,
    /// Its pod CIDR(s) (`spec.podCIDRs`).
    pub pod_cidrs: Vec<IpNet>,
    /// Its VTEP MAC as published in its annotation; if `None`, [`vtep_mac`] of its name.
    pub vtep_mac: Option<MacAddr>,
}

impl NodeRoute {
    /// A node without a published VTEP MAC.
    pub fn new(name: impl Into<String>, internal_ip: IpAddr, pod_cidrs: Vec<IpNet>) -> NodeRoute {
        NodeRoute { name: name.into(), internal_ip, pod_cidrs, vtep_mac: None }
    }

    /// The VTEP MAC of this node: the published one, else the one derived from its name.
    pub fn effective_vtep_mac(&self) -> MacAddr {
        self.vtep_mac.unwrap_or_else(|| vtep_mac(&self.name))
    }
}

/// The VTEP MAC of a node, derived from its name: the first six bytes of
/// SHA-256(`"podnet-vtep:" + name`), made a locally administered unicast address.
pub fn vtep_mac(node_name: &str) -> MacAddr {
    let digest = Sha256::digest(format!("podnet-vtep:{node_name}").as_bytes());
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&digest[..6]);
    mac[0] = (mac[0] & 0xfc) | 0x02;
    MacAddr(mac)
}

/// The MTU pods get: the underlay's for host-gw, 50 bytes less for VXLAN (over an IPv4 underlay,
/// as flannel; see [`VXLAN_OVERHEAD_V6`] and [`Plan::pod_mtu`] for an IPv6 underlay).
pub fn pod_mtu(backend: Backend, underlay_mtu: u32) -> u32 {
    match backend {
        Backend::HostGw => underlay_mtu,
        Backend::Vxlan => underlay_mtu.saturating_sub(VXLAN_OVERHEAD_V4),
    }
}

/// A route to program (`<dst> via <gateway> dev <dev> [onlink] proto 158`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PlannedRoute {
    /// A remote pod CIDR.
    pub dst: IpNet,
    /// The next hop: the remote node (host-gw), or the remote pod CIDR's network address (vxlan).
    pub gateway: IpAddr,
    /// The output device: the underlay (host-gw) or the VXLAN device.
    pub dev: String,
    /// `onlink` (vxlan: the gateway is in no subnet of the device).
    pub onlink: bool,
    /// The node this route leads to.
    pub node: String,
}

/// A permanent neighbour to program on the VXLAN device (`ip neigh replace <ip> lladdr <mac>
/// dev flannel.1 nud permanent`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PlannedNeighbour {
    /// The device.
    pub dev: String,
    /// A remote pod CIDR's network address.
    pub ip: IpAddr,
    /// The remote VTEP MAC.
    pub mac: MacAddr,
    /// The node.
    pub node: String,
}

/// An FDB entry to program on the VXLAN device (`bridge fdb replace <mac> dev flannel.1 dst
/// <node IP> self permanent`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PlannedFdb {
    /// The device.
    pub dev: String,
    /// The remote VTEP MAC.
    pub mac: MacAddr,
    /// The remote node's address.
    pub dst: IpAddr,
    /// The node.
    pub node: String,
}

/// The VXLAN device this node should have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanDevice {
    /// Its name.
    pub name: String,
    /// The VNI.
    pub vni: u32,
    /// The UDP port.
    pub port: u16,
    /// The local address (this node's IP).
    pub local: IpAddr,
    /// The underlay device's name.
    pub underlay: String,
    /// This node's VTEP MAC.
    pub mac: MacAddr,
    /// Its MTU (the underlay's minus the encapsulation overhead).
    pub mtu: u32,
    /// Its addresses: the network address of each of this node's pod CIDRs, as a host prefix
    /// (`10.244.1.0/32`).
    pub addresses: Vec<IpNet>,
}

/// The masquerade rules of this node: traffic from `cluster_cidrs` to anywhere else (but
/// multicast) leaves with the node's address; within `cluster_cidrs` never.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Masquerade {
    /// The cluster's pod CIDRs, both families mixed.
    pub cluster_cidrs: Vec<IpNet>,
}

/// What this node's network namespace should hold; see [`crate::apply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The backend.
    pub backend: Backend,
    /// The underlay device.
    pub underlay_link: String,
    /// The VXLAN device (vxlan), or `None` (host-gw: a leftover device of that name is removed).
    pub vxlan: Option<VxlanDevice>,
    /// The VXLAN device's name, whichever the backend (to remove it under host-gw).
    pub vxlan_device_name: String,
    /// Routes, sorted by destination.
    pub routes: Vec<PlannedRoute>,
    /// Neighbours (vxlan), sorted.
    pub neighbours: Vec<PlannedNeighbour>,
    /// FDB entries (vxlan), sorted.
    pub fdb: Vec<PlannedFdb>,
    /// Enable `net.ipv4.ip_forward` (always).
    pub ipv4_forwarding: bool,
    /// Enable `net.ipv6.conf.all.forwarding` (when there are IPv6 pod CIDRs).
    pub ipv6_forwarding: bool,
    /// The masquerade rules, or `None` to have none.
    pub masquerade: Option<Masquerade>,
    /// The MTU pods on this node should get.
    pub pod_mtu: u32,
    /// Nodes or CIDRs left out, and why.
    pub warnings: Vec<String>,
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn same_family(a: &IpAddr, b: &IpAddr) -> bool {
    a.is_ipv4() == b.is_ipv4()
}

/// Plans this node's routing from its configuration and the list of nodes (which may include
/// this node; duplicates by name keep the first). The result does not depend on the order of
/// `nodes`, except for which of two conflicting nodes wins: the one whose name sorts first.
pub fn plan(config: &Config, nodes: &[NodeRoute]) -> Plan {
    let mut warnings = Vec::new();
    let mut by_name: BTreeMap<&str, &NodeRoute> = BTreeMap::new();
    for node in nodes {
        if by_name.contains_key(node.name.as_str()) {
            warnings.push(format!("node {} listed twice; using its first entry", node.name));
            continue;
        }
        by_name.insert(node.name.as_str(), node);
    }

    let own_cidrs: Vec<IpNet> = if config.pod_cidrs.is_empty() {
        by_name.get(config.this_node.as_str()).map(|n| n.pod_cidrs.clone()).unwrap_or_default()
    } else {
        config.pod_cidrs.clone()
    };
    let own_cidrs: Vec<IpNet> = own_cidrs.iter().map(IpNet::trunc).collect::<BTreeSet<_>>().into_iter().collect();

    let vxlan_dev = config.vxlan.device.clone();
    let own_mac = vtep_mac(&config.this_node);
    let mut claimed: Vec<(IpNet, String)> = own_cidrs.iter().map(|c| (*c, config.this_node.clone())).collect();
    let mut macs: BTreeMap<MacAddr, String> = BTreeMap::from([(own_mac, config.this_node.clone())]);
    let mut routes = Vec::new();
    let mut neighbours = Vec::new();
    let mut fdb = Vec::new();
    let mut all_cidrs: Vec<IpNet> = own_cidrs.clone();

    for (name, node) in &by_name {
        if *name == config.this_node {
            continue;
        }
        if node.internal_ip == config.node_ip {
            warnings.push(format!("node {name} has this node's address {}; skipped", node.internal_ip));
            continue;
        }
        if config.backend == Backend::Vxlan && !same_family(&node.internal_ip, &config.node_ip) {
            warnings.push(format!(
                "node {name}: its address {} is not of the family of this node's VTEP address {}; skipped",
                node.internal_ip, config.node_ip
            ));
            continue;
        }
        let mac = node.effective_vtep_mac();
        if config.backend == Backend::Vxlan {
            if let Some(other) = macs.get(&mac) {
                warnings.push(format!("node {name}: VTEP MAC {mac} is already node {other}'s; skipped"));
                continue;
            }
        }
        let mut routed = false;
        let cidrs: BTreeSet<IpNet> = node.pod_cidrs.iter().map(IpNet::trunc).collect();
        for cidr in cidrs {
            all_cidrs.push(cidr);
            if let Some((_, owner)) = claimed.iter().find(|(c, _)| overlaps(c, &cidr)) {
                warnings.push(format!("node {name}: pod CIDR {cidr} overlaps one of node {owner}; skipped"));
                continue;
            }
            match config.backend {
                Backend::HostGw => {
                    if !same_family(&cidr.addr(), &node.internal_ip) {
                        warnings.push(format!(
                            "node {name}: pod CIDR {cidr} is not of the family of the node's address {} \
                             (host-gw needs one); skipped",
                            node.internal_ip
                        ));
                        continue;
                    }
                    routes.push(PlannedRoute {
                        dst: cidr,
                        gateway: node.internal_ip,
                        dev: config.underlay_link.clone(),
                        onlink: false,
                        node: name.to_string(),
                    });
                }
                Backend::Vxlan => {
                    // The kernel refuses an on-link IPv4 gateway on a device without an IPv4
                    // address; and without a pod CIDR of that family, no pod here needs the path.
                    if !own_cidrs.iter().any(|own| same_family(&own.addr(), &cidr.addr())) {
                        warnings.push(format!(
                            "node {name}: pod CIDR {cidr} skipped: this node has no pod CIDR of its family \
                             (yet), so the VXLAN device has no address of that family"
                        ));
                        continue;
                    }
                    let gateway = cidr.network();
                    routes.push(PlannedRoute {
                        dst: cidr,
                        gateway,
                        dev: vxlan_dev.clone(),
                        onlink: true,
                        node: name.to_string(),
                    });
                    neighbours.push(PlannedNeighbour {
                        dev: vxlan_dev.clone(),
                        ip: gateway,
                        mac,
                        node: name.to_string(),
                    });
                }
            }
            claimed.push((cidr, name.to_string()));
            routed = true;
        }
        if routed && config.backend == Backend::Vxlan {
            macs.insert(mac, name.to_string());
            fdb.push(PlannedFdb { dev: vxlan_dev.clone(), mac, dst: node.internal_ip, node: name.to_string() });
        }
    }
    routes.sort_by(|a, b| (a.dst, &a.node).cmp(&(b.dst, &b.node)));
    neighbours.sort();
    fdb.sort();

    let overhead = if config.node_ip.is_ipv4() { VXLAN_OVERHEAD_V4 } else { VXLAN_OVERHEAD_V6 };
    let vxlan_mtu = config.underlay_mtu.saturating_sub(overhead);
    let vxlan = (config.backend == Backend::Vxlan).then(|| VxlanDevice {
        name: vxlan_dev.clone(),
        vni: config.vxlan.vni,
        port: config.vxlan.port,
        local: config.node_ip,
        underlay: config.underlay_link.clone(),
        mac: own_mac,
        mtu: vxlan_mtu,
        addresses: own_cidrs
            .iter()
            .map(|c| IpNet::new(c.network(), c.max_prefix_len()).expect("host prefix is valid"))
            .collect(),
    });

    let cluster_cidrs: Vec<IpNet> =
        if config.cluster_cidrs.is_empty() { all_cidrs } else { config.cluster_cidrs.clone() };
    let cluster_cidrs: Vec<IpNet> =
        cluster_cidrs.iter().map(IpNet::trunc).collect::<BTreeSet<_>>().into_iter().collect();
    let ipv6_forwarding = own_cidrs.iter().chain(&cluster_cidrs).any(|c| matches!(c, IpNet::V6(_)))
        || routes.iter().any(|r| matches!(r.dst, IpNet::V6(_)));
    let masquerade = (config.masquerade && !cluster_cidrs.is_empty()).then_some(Masquerade { cluster_cidrs });

    Plan {
        backend: config.backend,
        underlay_link: config.underlay_link.clone(),
        vxlan,
        vxlan_device_name: vxlan_dev,
        routes,
        neighbours,
        fdb,
        ipv4_forwarding: true,
        ipv6_forwarding,
        masquerade,
        pod_mtu: match config.backend {
            Backend::HostGw => config.underlay_mtu,
            Backend::Vxlan => vxlan_mtu,
        },
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn node(name: &str, addr: &str, cidr: &str) -> NodeRoute {
        NodeRoute::new(name, ip(addr), vec![net(cidr)])
    }

    fn cluster() -> Vec<NodeRoute> {
        vec![
            node("n1", "172.18.0.11", "10.244.1.0/24"),
            node("n2", "172.18.0.12", "10.244.2.0/24"),
            node("n3", "172.18.0.13", "10.244.3.0/24"),
        ]
    }

    fn config(backend: Backend) -> Config {
        let mut c = Config::new(backend, "n1", ip("172.18.0.11"), "eth0", 1500);
        c.cluster_cidrs = vec![net("10.244.0.0/16")];
        c
    }

    fn summary(p: &Plan) -> Vec<String> {
        p.routes
            .iter()
            .map(|r| format!("{} via {} dev {}{}", r.dst, r.gateway, r.dev, if r.onlink { " onlink" } else { "" }))
            .collect()
    }

    #[test]
    fn host_gw_routes_every_other_node() {
        let p = plan(&config(Backend::HostGw), &cluster());
        assert_eq!(summary(&p), ["10.244.2.0/24 via 172.18.0.12 dev eth0", "10.244.3.0/24 via 172.18.0.13 dev eth0"]);
        assert_eq!(p.routes[0].node, "n2");
        assert!(p.vxlan.is_none());
        assert_eq!(p.vxlan_device_name, "flannel.1");
        assert!(p.neighbours.is_empty() && p.fdb.is_empty());
        assert!(p.ipv4_forwarding && !p.ipv6_forwarding);
        assert_eq!(p.pod_mtu, 1500);
        assert_eq!(p.masquerade, Some(Masquerade { cluster_cidrs: vec![net("10.244.0.0/16")] }));
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    }

    #[test]
    fn vxlan_is_flannels_layout() {
        let p = plan(&config(Backend::Vxlan), &cluster());
        assert_eq!(
            summary(&p),
            ["10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink", "10.244.3.0/24 via 10.244.3.0 dev flannel.1 onlink"]
        );
        let dev = p.vxlan.as_ref().unwrap();
        assert_eq!((dev.name.as_str(), dev.vni, dev.port), ("flannel.1", 1, 8472));
        assert_eq!((dev.local, dev.underlay.as_str(), dev.mtu), (ip("172.18.0.11"), "eth0", 1450));
        assert_eq!(dev.mac, vtep_mac("n1"));
        assert_eq!(dev.addresses, [net("10.244.1.0/32")]);
        assert_eq!(p.pod_mtu, 1450);
        assert_eq!(
            p.neighbours,
            [
                PlannedNeighbour {
                    dev: "flannel.1".into(),
                    ip: ip("10.244.2.0"),
                    mac: vtep_mac("n2"),
                    node: "n2".into()
                },
                PlannedNeighbour {
                    dev: "flannel.1".into(),
                    ip: ip("10.244.3.0"),
                    mac: vtep_mac("n3"),
                    node: "n3".into()
                },
            ]
        );
        let mut fdb: Vec<_> = p.fdb.iter().map(|f| (f.mac, f.dst)).collect();
        fdb.sort_by_key(|(_, dst)| *dst);
        assert_eq!(fdb, [(vtep_mac("n2"), ip("172.18.0.12")), (vtep_mac("n3"), ip("172.18.0.13"))]);
    }

    #[test]
    fn published_vtep_mac_wins() {
        let mut nodes = cluster();
        let mac: MacAddr = "c6:0b:fa:1a:e4:3a".parse().unwrap();
        nodes[1].vtep_mac = Some(mac);
        let p = plan(&config(Backend::Vxlan), &nodes);
        assert_eq!(p.neighbours[0].mac, mac);
        assert!(p.fdb.iter().any(|f| f.mac == mac && f.dst == ip("172.18.0.12")));
    }

    #[test]
    fn join_and_leave() {
        let c = config(Backend::Vxlan);
        let two = plan(&c, &cluster()[..2]);
        assert_eq!(two.routes.len(), 1);
        let three = plan(&c, &cluster());
        assert_eq!(three.routes.len(), 2);
        assert_eq!((three.neighbours.len(), three.fdb.len()), (2, 2));
        // Leave: n2 goes, n3 stays.
        let nodes: Vec<_> = cluster().into_iter().filter(|n| n.name != "n2").collect();
        let after = plan(&c, &nodes);
        assert_eq!(summary(&after), ["10.244.3.0/24 via 10.244.3.0 dev flannel.1 onlink"]);
        assert_eq!(after.fdb.iter().map(|f| f.node.as_str()).collect::<Vec<_>>(), ["n3"]);
        // Only this node: nothing to route, the device stays.
        let alone = plan(&c, &cluster()[..1]);
        assert!(alone.routes.is_empty() && alone.fdb.is_empty() && alone.vxlan.is_some());
        // Order of the node list does not matter.
        let mut reversed = cluster();
        reversed.reverse();
        assert_eq!(plan(&c, &reversed), three);
    }

    #[test]
    fn own_pod_cidr_from_node_list_or_config() {
        let mut c = config(Backend::Vxlan);
        let p = plan(&c, &cluster());
        assert_eq!(p.vxlan.unwrap().addresses, [net("10.244.1.0/32")]);
        c.pod_cidrs = vec![net("10.244.9.7/24")];
        let p = plan(&c, &cluster());
        assert_eq!(p.vxlan.unwrap().addresses, [net("10.244.9.0/32")]);
    }

    #[test]
    fn conflicts_are_skipped_with_warnings() {
        let mut nodes = cluster();
        nodes.push(node("n0-dup-cidr", "172.18.0.20", "10.244.2.128/25"));
        nodes.push(node("n4-mine", "172.18.0.21", "10.244.1.0/24"));
        nodes.push(node("n5-my-ip", "172.18.0.11", "10.244.5.0/24"));
        nodes.push(node("n6-no-cidr", "172.18.0.22", "10.244.6.0/24"));
        nodes.last_mut().unwrap().pod_cidrs.clear();
        nodes.push(node("n2", "172.18.0.99", "10.244.7.0/24"));
        let p = plan(&config(Backend::HostGw), &nodes);
        // "n0-dup-cidr" sorts before n2, so it wins 10.244.2.128/25 and n2's /24 overlaps it.
        assert_eq!(summary(&p), ["10.244.2.128/25 via 172.18.0.20 dev eth0", "10.244.3.0/24 via 172.18.0.13 dev eth0"]);
        let w = p.warnings.join("\n");
        assert!(w.contains("node n2 listed twice"), "{w}");
        assert!(w.contains("node n2: pod CIDR 10.244.2.0/24 overlaps one of node n0-dup-cidr"), "{w}");
        assert!(w.contains("node n4-mine: pod CIDR 10.244.1.0/24 overlaps one of node n1"), "{w}");
        assert!(w.contains("node n5-my-ip has this node's address"), "{w}");
        assert_eq!(p.warnings.len(), 4, "{w}");
    }

    #[test]
    fn duplicate_vtep_mac_is_skipped() {
        let mut nodes = cluster();
        nodes[2].vtep_mac = Some(vtep_mac("n2"));
        let p = plan(&config(Backend::Vxlan), &nodes);
        assert_eq!(p.fdb.len(), 1);
        assert!(p.warnings[0].contains("VTEP MAC"), "{:?}", p.warnings);
        nodes[2].vtep_mac = Some(vtep_mac("n1"));
        let p = plan(&config(Backend::Vxlan), &nodes);
        assert!(p.warnings[0].contains("already node n1's"), "{:?}", p.warnings);
    }

    #[test]
    fn dual_stack() {
        let mut c = config(Backend::HostGw);
        c.cluster_cidrs.push(net("fd00:10:244::/56"));
        let mut nodes = cluster();
        nodes[1].pod_cidrs.push(net("fd00:10:244:2::/64"));
        let p = plan(&c, &nodes);
        // host-gw cannot reach an IPv6 pod CIDR via an IPv4 node address.
        assert_eq!(p.routes.len(), 2);
        assert!(p.warnings[0].contains("fd00:10:244:2::/64 is not of the family"), "{:?}", p.warnings);
        assert!(p.ipv6_forwarding);
        // VXLAN carries both families over the IPv4 underlay.
        c.backend = Backend::Vxlan;
        c.pod_cidrs = vec![net("10.244.1.0/24"), net("fd00:10:244:1::/64")];
        let p = plan(&c, &nodes);
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        assert!(summary(&p).contains(&"fd00:10:244:2::/64 via fd00:10:244:2:: dev flannel.1 onlink".to_string()));
        assert_eq!(p.vxlan.unwrap().addresses, [net("10.244.1.0/32"), net("fd00:10:244:1::/128")]);
        assert_eq!(p.fdb.len(), 2, "one FDB entry per node, not per CIDR");
        // Without an own IPv6 pod CIDR, remote IPv6 pod CIDRs are not routed over VXLAN.
        c.pod_cidrs = vec![net("10.244.1.0/24")];
        let p = plan(&c, &nodes);
        assert_eq!(p.routes.len(), 2);
        assert!(p.warnings[0].contains("fd00:10:244:2::/64 skipped: this node has no pod CIDR"), "{:?}", p.warnings);
        // Without any pod CIDR yet: the device, no routes (and no FDB entries).
        c.pod_cidrs.clear();
        let p = plan(&c, &nodes[1..]);
        assert!(p.routes.is_empty() && p.fdb.is_empty() && p.vxlan.unwrap().addresses.is_empty());
        // An IPv6 underlay costs 70 bytes.
        let mut v6 = Config::new(Backend::Vxlan, "a", ip("fd00::1"), "eth0", 1500);
        v6.pod_cidrs = vec![net("10.244.1.0/24")];
        let p = plan(&v6, &[NodeRoute::new("b", ip("172.18.0.2"), vec![net("10.244.2.0/24")])]);
        assert_eq!(p.pod_mtu, 1430);
        assert!(p.routes.is_empty() && p.warnings[0].contains("not of the family"), "{:?}", p.warnings);
    }

    #[test]
    fn masquerade_cidrs() {
        let mut c = config(Backend::HostGw);
        c.cluster_cidrs.clear();
        let p = plan(&c, &cluster());
        let expected: Vec<IpNet> = ["10.244.1.0/24", "10.244.2.0/24", "10.244.3.0/24"].map(net).to_vec();
        assert_eq!(p.masquerade.unwrap().cluster_cidrs, expected, "without a cluster CIDR, all pod CIDRs");
        c.masquerade = false;
        assert_eq!(plan(&c, &cluster()).masquerade, None);
        c.masquerade = true;
        assert_eq!(plan(&c, &[]).masquerade, None, "nothing known: nothing to masquerade");
    }

    #[test]
    fn vtep_mac_is_deterministic_local_unicast() {
        let a = vtep_mac("node-a");
        assert_eq!(a, vtep_mac("node-a"));
        assert_ne!(a, vtep_mac("node-b"));
        for name in ["node-a", "node-b", "", "x", "a-very-long-node-name.example.com"] {
            let m = vtep_mac(name);
            assert!(m.is_local() && !m.is_multicast() && !m.is_zero(), "{m}");
        }
        // Pinned: every node (and every version of podnet) must compute the same MAC.
        assert_eq!(vtep_mac("n1").to_string(), "1e:be:1d:87:73:1b");
        assert_eq!(vtep_mac("node-a").to_string(), "be:1b:eb:fe:4e:82");
        assert_eq!(NodeRoute::new("n1", ip("1.2.3.4"), vec![]).effective_vtep_mac(), vtep_mac("n1"));
    }

    #[test]
    fn mtu_and_backend_names() {
        assert_eq!(pod_mtu(Backend::Vxlan, 1500), 1450);
        assert_eq!(pod_mtu(Backend::HostGw, 1500), 1500);
        assert_eq!(pod_mtu(Backend::Vxlan, 9000), 8950);
        assert_eq!(pod_mtu(Backend::Vxlan, 10), 0);
        assert_eq!("host-gw".parse::<Backend>().unwrap(), Backend::HostGw);
        assert_eq!("VXLAN".parse::<Backend>().unwrap(), Backend::Vxlan);
        assert!("udp".parse::<Backend>().is_err());
        assert_eq!(Backend::HostGw.to_string(), "host-gw");
        assert_eq!(Backend::default(), Backend::Vxlan);
    }
}
