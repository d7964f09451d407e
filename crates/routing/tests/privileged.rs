//! Privileged integration tests of routing between nodes. Each test builds its own lab in
//! throw-away namespaces (`pn-rt-<pid>-<n>-<role>`, deleted by guards even when the test fails):
//!
//! ```text
//!  pod1 (10.244.1.2)      pod2 (10.244.2.2)      pod3 (10.244.3.2)
//!   | eth0 ↔ vpod          | eth0 ↔ vpod          | eth0 ↔ vpod
//!  n1 (10.244.1.1)        n2 (10.244.2.1)        n3 (10.244.3.1)
//!   | eth0 172.30.0.11     | eth0 172.30.0.12     | eth0 172.30.0.13     outside 172.30.0.100
//!   +------------------ bridge br0 in the "underlay" namespace ----------------+
//! ```
//!
//! runs `apply` in each node namespace, and checks with ping and a tiny TCP "who are you"
//! exchange (sockets opened inside the namespaces with `run_in`) that pods reach each other with
//! their own addresses and reach the outside with their node's. Checks use iproute2 and `nft`
//! through `ip netns exec`; nothing touches the host's namespace, which is checked at the end.

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use common::{require_root, HostState, TestNs};
use podnet_netlink::{run_in, IpNet, NewLink, Route};
use podnet_routing::{apply, plan, Backend, Changes, Config, NodeRoute, Plan};

const CLUSTER_CIDR: &str = "10.244.0.0/16";
const OUTSIDE_IP: &str = "172.30.0.100";

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// One node of the lab: its namespace and the namespace of its one pod.
struct LabNode {
    name: String,
    ip: IpAddr,
    cidr: IpNet,
    pod_ip: IpAddr,
    // Declared before `node`, so the pod namespace goes first.
    pod: TestNs,
    node: TestNs,
}

impl LabNode {
    fn route(&self) -> NodeRoute {
        NodeRoute::new(self.name.clone(), self.ip, vec![self.cidr])
    }

    fn config(&self, backend: Backend) -> Config {
        let mut c = Config::new(backend, self.name.clone(), self.ip, "eth0", 1500);
        c.pod_cidrs = vec![self.cidr];
        c.cluster_cidrs = vec![net(CLUSTER_CIDR)];
        c
    }

    fn routes(&self) -> String {
        self.node.exec(&["ip", "route", "show"])
    }
}

struct Lab {
    nodes: Vec<LabNode>,
    outside: TestNs,
    // Kept for its guard: the bridge lives there.
    #[allow(dead_code)]
    underlay: TestNs,
}

impl Lab {
    fn new(count: u8) -> Lab {
        let underlay = TestNs::new("u");
        let mut hu = underlay.handle();
        hu.set_up("lo").unwrap();
        hu.create_link(&NewLink::bridge("br0").up()).unwrap();
        let attach = |hu: &mut podnet_netlink::Handle, port: &str| {
            hu.set_master(port, "br0").unwrap();
            hu.set_up(port).unwrap();
        };

        let mut nodes = Vec::new();
        for i in 1..=count {
            let node = TestNs::new(&format!("n{i}"));
            let pod = TestNs::new(&format!("p{i}"));
            let node_ip = ip(&format!("172.30.0.{}", 10 + i));
            let cidr = net(&format!("10.244.{i}.0/24"));
            let pod_ip = ip(&format!("10.244.{i}.2"));
            let mut hn = node.handle();
            hn.set_up("lo").unwrap();
            hn.create_link(&NewLink::veth("eth0", format!("u{i}")).peer_netns(&underlay.ns)).unwrap();
            attach(&mut hu, &format!("u{i}"));
            hn.add_addr("eth0", IpNet::new(node_ip, 24).unwrap()).unwrap();
            hn.set_up("eth0").unwrap();
            hn.create_link(&NewLink::veth("vpod", "eth0").peer_netns(&pod.ns)).unwrap();
            hn.add_addr("vpod", net(&format!("10.244.{i}.1/24"))).unwrap();
            hn.set_up("vpod").unwrap();
            let mut hp = pod.handle();
            hp.set_up("lo").unwrap();
            hp.add_addr("eth0", IpNet::new(pod_ip, 24).unwrap()).unwrap();
            hp.set_up("eth0").unwrap();
            hp.add_route(&Route::default_via(ip(&format!("10.244.{i}.1")))).unwrap();
            nodes.push(LabNode { name: format!("n{i}"), ip: node_ip, cidr, pod_ip, pod, node });
        }

        // A host on the underlay that knows no route to any pod.
        let outside = TestNs::new("out");
        let mut ho = outside.handle();
        ho.set_up("lo").unwrap();
        ho.create_link(&NewLink::veth("eth0", "uo").peer_netns(&underlay.ns)).unwrap();
        attach(&mut hu, "uo");
        ho.add_addr("eth0", net(&format!("{OUTSIDE_IP}/24"))).unwrap();
        ho.set_up("eth0").unwrap();
        Lab { nodes, outside, underlay }
    }

    fn routes(&self) -> Vec<NodeRoute> {
        self.nodes.iter().map(LabNode::route).collect()
    }

    /// The plan of node `i` (0-based) given the listed nodes.
    fn plan(&self, i: usize, backend: Backend, nodes: &[NodeRoute]) -> Plan {
        let p = plan(&self.nodes[i].config(backend), nodes);
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        p
    }

    /// Applies the plan of every node given the listed nodes; returns the changes of each.
    fn apply_all(&self, backend: Backend, nodes: &[NodeRoute]) -> Vec<Changes> {
        (0..self.nodes.len())
            .filter(|i| nodes.iter().any(|n| n.name == self.nodes[*i].name))
            .map(|i| {
                let p = self.plan(i, backend, nodes);
                apply(&self.nodes[i].node.ns, &p).unwrap_or_else(|e| panic!("apply on {}: {e}", self.nodes[i].name))
            })
            .collect()
    }

    /// Every pod pings every other pod.
    fn assert_full_mesh(&self) {
        for a in &self.nodes {
            for b in &self.nodes {
                if a.name != b.name {
                    let target = b.pod_ip.to_string();
                    assert!(a.pod.ping(&target), "pod of {} cannot ping pod of {} ({target})", a.name, b.name);
                }
            }
        }
    }
}

/// Connects from namespace `from` to a listener in namespace `to` and returns the address the
/// listener sees the connection coming from (and checks a few bytes make it both ways).
fn peer_seen(from: &TestNs, to: &TestNs, to_ip: IpAddr) -> IpAddr {
    let listener = run_in(&to.ns, || TcpListener::bind(SocketAddr::new(to_ip, 0))).unwrap().unwrap();
    let addr = listener.local_addr().unwrap();
    let mut client = run_in(&from.ns, || TcpStream::connect_timeout(&addr, Duration::from_secs(3)))
        .unwrap()
        .unwrap_or_else(|e| panic!("connect from {} to {addr}: {e}", from.name));
    // The handshake is done: the connection waits in the backlog.
    let (mut server, peer) = listener.accept().unwrap();
    server.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    client.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    client.write_all(b"who am i?").unwrap();
    let mut question = [0u8; 9];
    server.read_exact(&mut question).unwrap();
    server.write_all(peer.ip().to_string().as_bytes()).unwrap();
    drop(server);
    let mut answer = String::new();
    client.read_to_string(&mut answer).unwrap();
    assert_eq!(answer, peer.ip().to_string());
    peer.ip()
}

fn assert_no_changes(all: &[Changes]) {
    for (i, c) in all.iter().enumerate() {
        assert!(c.is_empty(), "second apply on node {} changed: {c}", i + 1);
    }
}

/// The pod of node 1 talks to the pods of the other nodes with its own address, and to the
/// outside with its node's.
fn assert_addresses_seen(lab: &Lab) {
    let n1 = &lab.nodes[0];
    for other in &lab.nodes[1..] {
        assert_eq!(peer_seen(&n1.pod, &other.pod, other.pod_ip), n1.pod_ip, "pod → pod must keep its address");
        assert_eq!(peer_seen(&other.pod, &n1.pod, n1.pod_ip), other.pod_ip, "pod → pod must keep its address");
    }
    assert_eq!(peer_seen(&n1.pod, &lab.outside, ip(OUTSIDE_IP)), n1.ip, "pod → outside must be masqueraded");
    let n2 = &lab.nodes[1];
    assert_eq!(peer_seen(&n2.pod, &lab.outside, ip(OUTSIDE_IP)), n2.ip, "pod → outside must be masqueraded");
}

fn sysctl(ns: &TestNs, key: &str) -> String {
    podnet_netlink::read_sysctl(&ns.ns, key).unwrap()
}

#[test]
fn host_gw_routes_pods_between_nodes() {
    if !require_root("host_gw_routes_pods_between_nodes") {
        return;
    }
    let host = HostState::capture();
    let lab = Lab::new(3);
    let all = lab.routes();
    let n1 = &lab.nodes[0];
    assert!(!n1.pod.ping_once(&lab.nodes[1].pod_ip.to_string()), "no path before apply");
    // A route someone else installed: never touched.
    n1.node.exec(&["ip", "route", "add", "10.99.0.0/24", "via", "172.30.0.13"]);

    let first = lab.apply_all(Backend::HostGw, &all);
    let c = first[0].to_string();
    assert!(c.contains("sysctl net.ipv4.ip_forward=1"), "{c}");
    assert!(c.contains("set route 10.244.2.0/24 via 172.30.0.12 dev eth0"), "{c}");
    assert!(c.contains("set route 10.244.3.0/24 via 172.30.0.13 dev eth0"), "{c}");
    assert!(c.contains("write nftables table ip podnet_node"), "{c}");
    assert!(!c.contains("ip6"), "no IPv6 CIDRs, no ip6 table: {c}");
    let routes = n1.routes();
    assert!(routes.contains("10.244.2.0/24 via 172.30.0.12 dev eth0 proto 158"), "{routes}");
    assert!(routes.contains("10.244.3.0/24 via 172.30.0.13 dev eth0 proto 158"), "{routes}");
    assert!(!routes.contains("10.244.1.0/24 via"), "no route to its own pods: {routes}");
    for node in &lab.nodes {
        assert_eq!(sysctl(&node.node, "net.ipv4.ip_forward"), "1");
        assert!(node.node.exec_status(&["ip", "link", "show", "flannel.1"]).0.eq(&false), "no VXLAN device");
    }
    let table = n1.node.exec(&["nft", "list", "table", "ip", "podnet_node"]);
    assert!(table.contains("ip saddr 10.244.0.0/16 ip daddr 10.244.0.0/16 return"), "{table}");
    assert!(table.contains("ip saddr 10.244.0.0/16 masquerade"), "{table}");

    lab.assert_full_mesh();
    assert_addresses_seen(&lab);

    // Idempotent.
    assert_no_changes(&lab.apply_all(Backend::HostGw, &all));

    // n3 leaves: the others drop their route to it; the foreign route stays.
    let without_n3 = &all[..2];
    let changes = lab.apply_all(Backend::HostGw, without_n3);
    assert_eq!(changes[0].to_string(), "delete route 10.244.3.0/24 via 172.30.0.13");
    let routes = n1.routes();
    assert!(!routes.contains("10.244.3.0/24"), "{routes}");
    assert!(routes.contains("10.99.0.0/24 via 172.30.0.13 dev eth0"), "foreign route deleted: {routes}");
    assert!(!lab.nodes[1].routes().contains("10.244.3.0/24"));
    assert!(!n1.pod.ping_once(&lab.nodes[2].pod_ip.to_string()), "n3's pods are unreachable after it left");
    assert!(n1.pod.ping(&lab.nodes[1].pod_ip.to_string()));
    assert_no_changes(&lab.apply_all(Backend::HostGw, without_n3));

    // n3 joins again.
    let changes = lab.apply_all(Backend::HostGw, &all);
    assert_eq!(changes[0].to_string(), "set route 10.244.3.0/24 via 172.30.0.13 dev eth0");
    lab.assert_full_mesh();
    drop(lab);
    host.assert_unchanged();
}

#[test]
fn vxlan_routes_pods_between_nodes() {
    if !require_root("vxlan_routes_pods_between_nodes") {
        return;
    }
    let host = HostState::capture();
    let lab = Lab::new(3);
    let all = lab.routes();
    let first = lab.apply_all(Backend::Vxlan, &all);
    let c = first[0].to_string();
    assert!(c.contains("create link flannel.1"), "{c}");
    assert!(c.contains("add address 10.244.1.0/32 dev flannel.1"), "{c}");

    let n1 = &lab.nodes[0];
    let link = n1.node.exec(&["ip", "-d", "link", "show", "flannel.1"]);
    let mac2 = podnet_routing::vtep_mac("n2").to_string();
    let mac3 = podnet_routing::vtep_mac("n3").to_string();
    for want in [
        "mtu 1450",
        "vxlan id 1",
        "local 172.30.0.11",
        "dev eth0",
        "dstport 8472",
        "nolearning",
        &podnet_routing::vtep_mac("n1").to_string(),
    ] {
        assert!(link.contains(want), "{want:?} missing: {link}");
    }
    assert!(link.contains("state UNKNOWN") || link.contains(",UP"), "{link}");
    let addrs = n1.node.exec(&["ip", "-4", "addr", "show", "dev", "flannel.1"]);
    assert!(addrs.contains("inet 10.244.1.0/32"), "{addrs}");
    let routes = n1.routes();
    assert!(routes.contains("10.244.2.0/24 via 10.244.2.0 dev flannel.1 proto 158 onlink"), "{routes}");
    assert!(routes.contains("10.244.3.0/24 via 10.244.3.0 dev flannel.1 proto 158 onlink"), "{routes}");
    let neigh = n1.node.exec(&["ip", "neigh", "show", "dev", "flannel.1"]);
    assert!(neigh.contains(&format!("10.244.2.0 lladdr {mac2} PERMANENT")), "{neigh}");
    assert!(neigh.contains(&format!("10.244.3.0 lladdr {mac3} PERMANENT")), "{neigh}");
    let fdb = n1.node.exec(&["bridge", "fdb", "show", "dev", "flannel.1"]);
    assert!(fdb.contains(&format!("{mac2} dst 172.30.0.12 self permanent")), "{fdb}");
    assert!(fdb.contains(&format!("{mac3} dst 172.30.0.13 self permanent")), "{fdb}");

    lab.assert_full_mesh();
    assert_addresses_seen(&lab);
    assert_no_changes(&lab.apply_all(Backend::Vxlan, &all));

    // n2 leaves: its route, neighbour and FDB entry go, n3's stay.
    let without_n2 = vec![all[0].clone(), all[2].clone()];
    let changes = lab.apply_all(Backend::Vxlan, &without_n2);
    let c = changes[0].to_string();
    assert!(c.contains("delete fdb") && c.contains("delete route 10.244.2.0/24"), "{c}");
    let routes = n1.routes();
    assert!(!routes.contains("10.244.2.0/24") && routes.contains("10.244.3.0/24"), "{routes}");
    let neigh = n1.node.exec(&["ip", "neigh", "show", "dev", "flannel.1"]);
    assert!(!neigh.contains(&mac2) && neigh.contains(&mac3), "{neigh}");
    let fdb = n1.node.exec(&["bridge", "fdb", "show", "dev", "flannel.1"]);
    assert!(!fdb.contains(&mac2) && fdb.contains(&mac3), "{fdb}");
    assert!(!n1.pod.ping_once(&lab.nodes[1].pod_ip.to_string()));
    assert!(n1.pod.ping(&lab.nodes[2].pod_ip.to_string()));
    assert_no_changes(&lab.apply_all(Backend::Vxlan, &without_n2));
    drop(lab);
    host.assert_unchanged();
}

#[test]
fn switching_backends_replaces_the_other_backends_state() {
    if !require_root("switching_backends_replaces_the_other_backends_state") {
        return;
    }
    let host = HostState::capture();
    let lab = Lab::new(2);
    let all = lab.routes();
    let n1 = &lab.nodes[0];

    lab.apply_all(Backend::HostGw, &all);
    lab.assert_full_mesh();

    let changes = lab.apply_all(Backend::Vxlan, &all);
    let c = changes[0].to_string();
    assert!(c.contains("create link flannel.1") && c.contains("set route 10.244.2.0/24 via 10.244.2.0"), "{c}");
    assert!(!c.contains("nftables"), "the masquerade rules do not depend on the backend: {c}");
    let routes = n1.node.exec(&["ip", "route", "show", "proto", "158"]);
    assert_eq!(routes.trim(), "10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink", "{routes}");
    lab.assert_full_mesh();
    assert_addresses_seen(&lab);
    assert_no_changes(&lab.apply_all(Backend::Vxlan, &all));

    let changes = lab.apply_all(Backend::HostGw, &all);
    let c = changes[0].to_string();
    assert!(c.contains("delete link flannel.1"), "{c}");
    assert!(!n1.node.exec_status(&["ip", "link", "show", "flannel.1"]).0, "the VXLAN device is gone");
    let routes = n1.node.exec(&["ip", "route", "show", "proto", "158"]);
    assert_eq!(routes.trim(), "10.244.2.0/24 via 172.30.0.12 dev eth0", "{routes}");
    lab.assert_full_mesh();
    assert_addresses_seen(&lab);
    assert_no_changes(&lab.apply_all(Backend::HostGw, &all));
    drop(lab);
    host.assert_unchanged();
}

#[test]
fn apply_repairs_drift() {
    if !require_root("apply_repairs_drift") {
        return;
    }
    let host = HostState::capture();
    let lab = Lab::new(2);
    let all = lab.routes();
    let n1 = &lab.nodes[0];
    lab.apply_all(Backend::Vxlan, &all);

    // Someone breaks things: a route, the neighbour, the MTU, the masquerade table, forwarding.
    n1.node.exec(&["ip", "route", "del", "10.244.2.0/24"]);
    n1.node.exec(&["ip", "neigh", "del", "10.244.2.0", "dev", "flannel.1"]);
    n1.node.exec(&["ip", "link", "set", "flannel.1", "mtu", "1300"]);
    n1.node.exec(&["nft", "delete", "table", "ip", "podnet_node"]);
    n1.node.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=0"]);
    // A stale route of ours (a node long gone).
    n1.node.exec(&[
        "ip",
        "route",
        "add",
        "10.244.77.0/24",
        "via",
        "172.30.0.77",
        "dev",
        "eth0",
        "onlink",
        "proto",
        "158",
    ]);

    let c = apply(&n1.node.ns, &lab.plan(0, Backend::Vxlan, &all)).unwrap().to_string();
    for want in [
        "sysctl net.ipv4.ip_forward=1",
        "set link flannel.1 mtu 1450",
        "set neighbour 10.244.2.0",
        "set route 10.244.2.0/24 via 10.244.2.0 dev flannel.1",
        "delete route 10.244.77.0/24 via 172.30.0.77",
        "write nftables table ip podnet_node",
    ] {
        assert!(c.contains(want), "{want:?} missing: {c}");
    }
    lab.assert_full_mesh();
    assert_addresses_seen(&lab);

    // A hand-edited masquerade table is rewritten whole.
    n1.node.exec(&["nft", "add", "rule", "ip", "podnet_node", "postrouting", "counter"]);
    let c = apply(&n1.node.ns, &lab.plan(0, Backend::Vxlan, &all)).unwrap();
    assert_eq!(c.to_string(), "write nftables table ip podnet_node");
    let table = n1.node.exec(&["nft", "list", "table", "ip", "podnet_node"]);
    assert!(!table.contains("counter"), "{table}");

    // Masquerading turned off: the table goes.
    let mut config = n1.config(Backend::Vxlan);
    config.masquerade = false;
    let c = apply(&n1.node.ns, &plan(&config, &all)).unwrap();
    assert_eq!(c.to_string(), "delete nftables table ip podnet_node");
    assert!(!n1.node.exec_status(&["nft", "list", "table", "ip", "podnet_node"]).0);
    assert!(apply(&n1.node.ns, &plan(&config, &all)).unwrap().is_empty());
    drop(lab);
    host.assert_unchanged();
}

#[test]
fn failures_are_reported_without_stopping_the_rest() {
    if !require_root("failures_are_reported_without_stopping_the_rest") {
        return;
    }
    let host = HostState::capture();
    let lab = Lab::new(2);
    let mut nodes = lab.routes();
    // A node whose address is off the underlay subnet: host-gw cannot route to it.
    nodes.push(NodeRoute::new("far", ip("192.0.2.9"), vec![net("10.244.9.0/24")]));
    let n1 = &lab.nodes[0];
    let p = plan(&n1.config(Backend::HostGw), &nodes);
    match apply(&n1.node.ns, &p) {
        Err(podnet_routing::Error::Incomplete { changes, failures }) => {
            assert_eq!(failures.len(), 1, "{failures:?}");
            let f = failures[0].to_string();
            assert!(f.starts_with("route to node far: "), "{f}");
            assert!(changes.to_string().contains("set route 10.244.2.0/24 via 172.30.0.12"), "{changes}");
        }
        other => panic!("expected a partial failure, got {other:?}"),
    }
    // Once "far" is gone from the list, everything applies.
    lab.apply_all(Backend::HostGw, &lab.routes());
    assert!(n1.pod.ping(&lab.nodes[1].pod_ip.to_string()));
    drop(lab);
    host.assert_unchanged();
}

#[test]
fn vxlan_dual_stack() {
    if !require_root("vxlan_dual_stack") {
        return;
    }
    let host = HostState::capture();
    let lab = Lab::new(2);
    let nodad = podnet_netlink::AddrOptions { nodad: true, ..Default::default() };
    let v6_cidr = |i: usize| net(&format!("fd00:10:244:{i}::/64"));
    let pod6 = |i: usize| ip(&format!("fd00:10:244:{i}::2"));
    let node6 = |i: usize| ip(&format!("fd00:30::{}", 10 + i));
    for (i, n) in lab.nodes.iter().enumerate().map(|(i, n)| (i + 1, n)) {
        let mut hn = n.node.handle();
        hn.add_addr_with("eth0", IpNet::new(node6(i), 64).unwrap(), &nodad).unwrap();
        hn.add_addr_with("vpod", net(&format!("fd00:10:244:{i}::1/64")), &nodad).unwrap();
        let mut hp = n.pod.handle();
        hp.add_addr_with("eth0", IpNet::new(pod6(i), 64).unwrap(), &nodad).unwrap();
        hp.add_route(&Route::default_via(ip(&format!("fd00:10:244:{i}::1")))).unwrap();
    }
    lab.outside.handle().add_addr_with("eth0", net("fd00:30::100/64"), &nodad).unwrap();

    let nodes: Vec<NodeRoute> = lab
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| NodeRoute::new(n.name.clone(), n.ip, vec![n.cidr, v6_cidr(i + 1)]))
        .collect();
    let plan_of = |i: usize| {
        let mut c = lab.nodes[i].config(Backend::Vxlan);
        c.pod_cidrs.push(v6_cidr(i + 1));
        c.cluster_cidrs.push(net("fd00:10:244::/56"));
        let p = plan(&c, &nodes);
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        p
    };
    for i in 0..2 {
        let c = apply(&lab.nodes[i].node.ns, &plan_of(i)).unwrap().to_string();
        assert!(c.contains("sysctl net.ipv6.conf.all.forwarding=1"), "{c}");
        assert!(c.contains("write nftables table ip6 podnet_node"), "{c}");
        assert!(c.contains(&format!("add address fd00:10:244:{}::/128 dev flannel.1", i + 1)), "{c}");
    }
    for i in 0..2 {
        let c = apply(&lab.nodes[i].node.ns, &plan_of(i)).unwrap();
        assert!(c.is_empty(), "second apply on node {} changed: {c}", i + 1);
    }
    let n1 = &lab.nodes[0];
    let routes = n1.node.exec(&["ip", "-6", "route", "show", "proto", "158"]);
    assert!(routes.contains("fd00:10:244:2::/64 via fd00:10:244:2:: dev flannel.1"), "{routes}");
    assert!(n1.pod.ping(&pod6(2).to_string()), "IPv6 pod → pod over the IPv4 VXLAN underlay");
    assert!(n1.pod.ping(&lab.nodes[1].pod_ip.to_string()), "IPv4 pod → pod");
    assert_eq!(peer_seen(&n1.pod, &lab.nodes[1].pod, pod6(2)), pod6(1), "pod → pod keeps its IPv6 address");
    assert_eq!(peer_seen(&n1.pod, &lab.outside, ip("fd00:30::100")), node6(1), "IPv6 pod → outside is masqueraded");
    assert_addresses_seen(&lab);

    // Back to IPv4 only: the ip6 table goes.
    let c = apply(&n1.node.ns, &lab.plan(0, Backend::Vxlan, &lab.routes())).unwrap().to_string();
    assert!(c.contains("delete nftables table ip6 podnet_node"), "{c}");
    assert!(c.contains("delete address fd00:10:244:1::/128 dev flannel.1"), "{c}");
    assert!(c.contains("delete route fd00:10:244:2::/64"), "{c}");
    drop(lab);
    host.assert_unchanged();
}
