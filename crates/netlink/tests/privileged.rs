//! Privileged integration tests of the netlink layer. Each test works only in network namespaces
//! it creates itself (`pn-nl-<pid>-<n>`, deleted by a guard even when the test fails), checks what
//! it configured with iproute2 and ping (`ip netns exec`, checking only), and checks at the end
//! that the host's own namespace was not changed.

mod common;

use std::net::IpAddr;

use common::{require_root, HostState, TestNs};
use podnet_netlink::link::IFF_UP;
use podnet_netlink::neigh::{NTF_SELF, NUD_PERMANENT};
use podnet_netlink::route::{RT_SCOPE_LINK, RT_TABLE_MAIN};
use podnet_netlink::{
    read_sysctl, run_in, write_sysctl, write_sysctls, AddrOptions, BridgeVlan, Errno, ErrorKind, FdbEntry, Handle,
    IpNet, MacAddr, Netns, NewLink, Route, VxlanOptions,
};

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A veth pair `name` ↔ `peer` inside one namespace, both ends up: a link with a carrier, for the
/// tests that need any link (the kernels podnet runs on do not all have the dummy driver).
fn veth_pair(h: &mut Handle, name: &str, peer: &str) -> podnet_netlink::Link {
    h.create_link(&NewLink::veth(name, peer).up()).unwrap();
    h.set_up(peer).unwrap();
    h.get_link(name).unwrap()
}

/// Whether an error says the kernel lacks a feature (a driver not built, an option off).
fn unsupported(e: &podnet_netlink::Error) -> bool {
    e.errno() == Some(Errno::EOPNOTSUPP)
}

#[test]
fn netns_create_list_open_delete() {
    if !require_root("netns_create_list_open_delete") {
        return;
    }
    let host = HostState::capture();
    let t = TestNs::new();
    assert!(Netns::list().unwrap().contains(&t.name));
    assert!(Netns::exists(&t.name));
    let listed = std::process::Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(String::from_utf8_lossy(&listed.stdout).lines().any(|l| l.split_whitespace().next() == Some(&t.name)));
    assert_eq!(t.ns.name(), Some(t.name.as_str()));
    assert_eq!(t.ns.path(), std::path::Path::new("/run/netns").join(&t.name));

    // A real, separate namespace: only a loopback, and another identity than the host's.
    let links = t.exec(&["ip", "-o", "link", "show"]);
    assert_eq!(links.lines().count(), 1, "{links}");
    assert!(links.contains("lo"));
    let here = Netns::current().unwrap();
    assert_ne!(here.id().unwrap(), t.ns.id().unwrap());
    assert_eq!(Netns::open_named(&t.name).unwrap().id().unwrap(), t.ns.id().unwrap());
    assert_eq!(t.ns.try_clone().unwrap().id().unwrap(), t.ns.id().unwrap());

    // Taken names and missing namespaces.
    let e = Netns::create(&t.name).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    assert_eq!(Netns::create("a/b").unwrap_err().kind(), ErrorKind::InvalidArgument);
    let missing = format!("{}-missing", t.name);
    assert_eq!(Netns::open_named(&missing).unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(Netns::delete(&missing).unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(Netns::open("/etc/hostname").unwrap_err().kind(), ErrorKind::InvalidArgument);

    // Deleting: gone from the list and from iproute2's view; the open handle keeps it alive.
    let name = t.name.clone();
    let kept = t.ns.try_clone().unwrap();
    drop(t);
    assert!(!Netns::list().unwrap().contains(&name));
    let listed = std::process::Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&listed.stdout).contains(&name));
    let mut h = Handle::in_netns(&kept).unwrap();
    assert_eq!(h.dump_links().unwrap().len(), 1);
    host.assert_unchanged();
}

#[test]
fn run_in_uses_a_dedicated_thread() {
    if !require_root("run_in_uses_a_dedicated_thread") {
        return;
    }
    let host = HostState::capture();
    let t = TestNs::new();
    let before = Netns::current().unwrap().id().unwrap();
    let inside = run_in(&t.ns, || Netns::current().unwrap().id().unwrap()).unwrap();
    assert_eq!(inside, t.ns.id().unwrap());
    assert_eq!(Netns::current().unwrap().id().unwrap(), before, "the calling thread must not move");
    // Borrowing from the caller works, and a panic comes back to the caller.
    let mut seen = Vec::new();
    t.ns.run(|| seen.push(1)).unwrap();
    assert_eq!(seen, [1]);
    let panicked = std::panic::catch_unwind(|| run_in(&t.ns, || panic!("boom")));
    assert!(panicked.is_err());
    host.assert_unchanged();
}

#[test]
fn veth_pair_across_namespaces_with_ping() {
    if !require_root("veth_pair_across_namespaces_with_ping") {
        return;
    }
    let host = HostState::capture();
    let a = TestNs::new();
    let b = TestNs::new();
    let mut ha = a.handle();
    let mut hb = b.handle();
    let mac_a: MacAddr = "0a:58:0a:c8:00:01".parse().unwrap();
    let mac_b: MacAddr = "0a:58:0a:c8:00:02".parse().unwrap();

    let veth =
        ha.create_link(&NewLink::veth("va0", "vb0").peer_netns(&b.ns).mtu(1400).mac(mac_a).peer_mac(mac_b)).unwrap();
    assert_eq!(veth.name, "va0");
    assert_eq!(veth.kind.as_deref(), Some("veth"));
    assert_eq!(veth.mtu, 1400);
    assert_eq!(veth.mac, Some(mac_a));
    assert!(veth.link_netnsid.is_some(), "the peer is in another namespace");
    assert!(!veth.is_up());
    let peer = hb.get_link("vb0").unwrap();
    assert_eq!((peer.mtu, peer.mac), (1400, Some(mac_b)));
    assert_eq!(veth.parent, Some(peer.index));
    assert!(ha.get_link("vb0").unwrap_err().is_not_found(), "the peer is not in a");

    ha.add_addr("va0", net("10.200.0.1/24")).unwrap();
    hb.add_addr(peer.index, net("10.200.0.2/24")).unwrap();
    for (h, name) in [(&mut ha, "va0"), (&mut hb, "vb0")] {
        h.set_up("lo").unwrap();
        h.set_up(name).unwrap();
        assert!(h.get_link(name).unwrap().flags & IFF_UP != 0);
    }
    assert!(a.ping("10.200.0.2"), "a cannot ping b over the veth pair");
    assert!(b.ping("10.200.0.1"), "b cannot ping a over the veth pair");

    // What iproute2 sees.
    let shown = b.exec(&["ip", "-o", "addr", "show", "dev", "vb0"]);
    assert!(shown.contains("inet 10.200.0.2/24 brd 10.200.0.255"), "{shown}");
    let shown = b.exec(&["ip", "link", "show", "dev", "vb0"]);
    assert!(shown.contains("mtu 1400") && shown.contains("link/ether 0a:58:0a:c8:00:02"), "{shown}");

    // Addresses in the dump, delete, delete again.
    let addrs = hb.link_addresses("vb0").unwrap();
    assert!(addrs
        .iter()
        .any(|a| a.addr == net("10.200.0.2/24") && a.broadcast == Some("10.200.0.255".parse().unwrap())));
    let e = hb.add_addr("vb0", net("10.200.0.2/24")).unwrap_err();
    assert!(e.is_already_exists(), "{e}");
    hb.del_addr("vb0", net("10.200.0.2/24")).unwrap();
    assert!(!hb.dump_addresses().unwrap().iter().any(|a| a.addr == net("10.200.0.2/24")));
    let e = hb.del_addr("vb0", net("10.200.0.2/24")).unwrap_err();
    assert!(e.is_not_found(), "{e}");
    assert!(!a.ping_once("10.200.0.2"));

    // IPv6 without DAD, then MTU, MAC and name changes.
    hb.add_addr_with("vb0", net("fd00:200::2/64"), &AddrOptions { nodad: true, ..AddrOptions::default() }).unwrap();
    let v6 = hb.link_addresses("vb0").unwrap().into_iter().find(|a| a.addr == net("fd00:200::2/64")).unwrap();
    assert!(!v6.is_tentative());
    hb.set_mtu("vb0", 1300).unwrap();
    let new_mac: MacAddr = "0a:58:0a:c8:00:99".parse().unwrap();
    hb.set_mac("vb0", new_mac).unwrap();
    hb.set_down("vb0").unwrap();
    hb.set_name("vb0", "eth0").unwrap();
    let renamed = hb.get_link("eth0").unwrap();
    assert_eq!((renamed.index, renamed.mtu, renamed.mac), (peer.index, 1300, Some(new_mac)));
    assert!(!renamed.is_up());

    // Moving a link between namespaces; deleting one end deletes both.
    ha.create_link(&NewLink::veth("m0", "m1")).unwrap();
    ha.set_netns("m1", &b.ns).unwrap();
    assert!(ha.get_link("m1").unwrap_err().is_not_found());
    let moved = hb.get_link("m1").unwrap();
    assert_eq!(moved.kind.as_deref(), Some("veth"));
    assert_eq!(moved.parent, Some(ha.get_link("m0").unwrap().index));
    ha.del_link("va0").unwrap();
    assert!(hb.get_link("eth0").unwrap_err().is_not_found());
    host.assert_unchanged();
}

#[test]
fn bridge_with_two_ports_hairpin_and_vlans() {
    if !require_root("bridge_with_two_ports_hairpin_and_vlans") {
        return;
    }
    let host = HostState::capture();
    let node = TestNs::new();
    let pod1 = TestNs::new();
    let pod2 = TestNs::new();
    let mut h = node.handle();
    let br = h.create_link(&NewLink::bridge("br0").up()).unwrap();
    assert_eq!(br.kind.as_deref(), Some("bridge"));
    assert!(br.is_up());
    h.add_addr("br0", net("10.201.0.1/24")).unwrap();

    for (i, pod) in [&pod1, &pod2].into_iter().enumerate() {
        let host_end = format!("veth{i}");
        let port = h.create_link(&NewLink::veth(host_end.as_str(), "eth0").peer_netns(&pod.ns)).unwrap();
        h.set_master(port.index, "br0").unwrap();
        h.set_up(port.index).unwrap();
        let mut p = pod.handle();
        p.add_addr("eth0", net(&format!("10.201.0.{}/24", 10 + i))).unwrap();
        p.set_up("eth0").unwrap();
        p.set_up("lo").unwrap();
        p.add_route(&Route::default_via(ip("10.201.0.1"))).unwrap();
        let port = h.get_link(port.index).unwrap();
        assert_eq!(port.master, Some(br.index));
        assert!(port.bridge_port.is_some());
    }
    h.set_hairpin("veth0", true).unwrap();
    assert!(h.get_link("veth0").unwrap().bridge_port.unwrap().hairpin);
    assert!(!h.get_link("veth1").unwrap().bridge_port.unwrap().hairpin);
    let shown = node.exec(&["ip", "-d", "link", "show", "dev", "veth0"]);
    assert!(shown.contains("hairpin on"), "{shown}");
    let shown = node.exec(&["ip", "-d", "link", "show", "dev", "veth1"]);
    assert!(shown.contains("hairpin off"), "{shown}");

    assert!(pod1.ping("10.201.0.11"), "pod1 cannot ping pod2 over the bridge");
    assert!(pod2.ping("10.201.0.10"), "pod2 cannot ping pod1 over the bridge");
    assert!(pod1.ping("10.201.0.1"), "pod1 cannot ping the bridge");

    // Promiscuous mode and learning.
    h.set_promisc("br0", true).unwrap();
    assert!(h.get_link("br0").unwrap().is_promisc());
    assert!(node.exec(&["ip", "link", "show", "dev", "br0"]).contains("PROMISC"));
    h.set_promisc("br0", false).unwrap();
    assert!(!h.get_link("br0").unwrap().is_promisc());
    h.set_learning("veth1", false).unwrap();
    assert!(!h.get_link("veth1").unwrap().bridge_port.unwrap().learning);

    // VLAN filtering: both ports untagged in VLAN 100, as the reference bridge plugin's `vlan`.
    match h.set_vlan_filtering("br0", true) {
        Ok(()) => check_bridge_vlans(&mut h, &node, &pod1),
        Err(e) if unsupported(&e) => {
            // CONFIG_BRIDGE_VLAN_FILTERING is off in this kernel: the error says so.
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
            println!("note: this kernel has no bridge VLAN filtering; checked the error instead");
        }
        Err(e) => panic!("{e}"),
    }

    // Leaving the bridge.
    h.set_nomaster("veth1").unwrap();
    let port = h.get_link("veth1").unwrap();
    assert_eq!(port.master, None);
    assert!(port.bridge_port.is_none());
    host.assert_unchanged();
}

fn check_bridge_vlans(h: &mut Handle, node: &TestNs, pod1: &TestNs) {
    assert!(h.get_link("br0").unwrap().bridge.unwrap().vlan_filtering);
    let vlan = BridgeVlan { vid: 100, pvid: true, untagged: true };
    for port in ["veth0", "veth1"] {
        h.del_bridge_vlan(port, 1).unwrap();
        h.add_bridge_vlan(port, vlan).unwrap();
    }
    let vlans = h.dump_bridge_vlans().unwrap();
    let veth0 = h.get_link("veth0").unwrap().index;
    assert!(vlans.contains(&(veth0, vlan)), "{vlans:?}");
    assert!(!vlans.iter().any(|(i, v)| *i == veth0 && v.vid == 1), "{vlans:?}");
    let shown = node.exec(&["bridge", "vlan", "show", "dev", "veth0"]);
    assert!(shown.contains("100 PVID Egress Untagged"), "{shown}");
    assert!(pod1.ping("10.201.0.11"), "pods in the same VLAN cannot talk");
    h.del_bridge_vlan("veth1", 100).unwrap();
    assert!(!pod1.ping_once("10.201.0.11"), "pods in different VLANs can talk");
    h.set_vlan_filtering("br0", false).unwrap();
    assert!(!h.get_link("br0").unwrap().bridge.unwrap().vlan_filtering);
}

#[test]
fn routes_add_replace_dump_delete() {
    if !require_root("routes_add_replace_dump_delete") {
        return;
    }
    let host = HostState::capture();
    let t = TestNs::new();
    let mut h = t.handle();
    let d0 = veth_pair(&mut h, "d0", "d0p");
    h.add_addr("d0", net("10.202.0.2/24")).unwrap();
    h.add_addr_with("d0", net("fd00:202::2/64"), &AddrOptions { nodad: true, ..AddrOptions::default() }).unwrap();

    let default = Route::default_via(ip("10.202.0.1"));
    h.add_route(&default).unwrap();
    let subnet = Route::new(net("10.203.0.0/16")).dev(d0.index);
    h.add_route(&subnet).unwrap();
    let v6 = Route::default_via(ip("fd00:202::1")).dev(d0.index);
    h.add_route(&v6).unwrap();
    let metric = Route::new(net("10.204.0.0/16")).via(ip("10.202.0.3")).metric(300).mtu(1400);
    h.add_route(&metric).unwrap();
    let other_table = Route::new(net("10.205.0.0/16")).dev(d0.index).table(1000);
    h.add_route(&other_table).unwrap();

    let routes = h.dump_routes().unwrap();
    let find = |dst: &str, table: u32| routes.iter().find(|r| r.dst == net(dst) && r.table == table).cloned();
    let r = find("0.0.0.0/0", RT_TABLE_MAIN).expect("default route");
    assert_eq!((r.gateway, r.oif), (Some(ip("10.202.0.1")), Some(d0.index)));
    let r = find("10.203.0.0/16", RT_TABLE_MAIN).expect("subnet route");
    assert_eq!((r.gateway, r.oif, r.scope), (None, Some(d0.index), Some(RT_SCOPE_LINK)));
    let r = find("::/0", RT_TABLE_MAIN).expect("v6 default route");
    assert_eq!(r.gateway, Some(ip("fd00:202::1")));
    let r = find("10.204.0.0/16", RT_TABLE_MAIN).expect("metric route");
    assert_eq!((r.metric, r.mtu), (Some(300), Some(1400)));
    assert!(find("10.205.0.0/16", 1000).is_some());
    assert!(find("10.202.0.0/24", RT_TABLE_MAIN).is_some(), "the prefix route of the address");
    assert_eq!(h.table_routes(1000).unwrap().len(), 1);

    let shown = t.exec(&["ip", "route", "show"]);
    assert!(shown.contains("default via 10.202.0.1 dev d0"), "{shown}");
    assert!(shown.contains("10.203.0.0/16 dev d0 scope link"), "{shown}");
    assert!(shown.contains("10.204.0.0/16 via 10.202.0.3 dev d0 metric 300 mtu 1400"), "{shown}");
    assert!(t.exec(&["ip", "-6", "route", "show"]).contains("default via fd00:202::1 dev d0"));
    assert!(t.exec(&["ip", "route", "show", "table", "1000"]).contains("10.205.0.0/16 dev d0"));

    // EEXIST, replace, delete, ESRCH.
    let e = h.add_route(&default).unwrap_err();
    assert!(e.is_already_exists(), "{e}");
    assert!(e.to_string().contains("0.0.0.0/0 via 10.202.0.1"), "{e}");
    h.replace_route(&Route::default_via(ip("10.202.0.254"))).unwrap();
    assert!(t.exec(&["ip", "route", "show"]).contains("default via 10.202.0.254 dev d0"));
    h.del_route(&Route::default_via(ip("10.202.0.254"))).unwrap();
    let e = h.del_route(&Route::default_via(ip("10.202.0.254"))).unwrap_err();
    assert!(e.is_not_found(), "{e}");
    assert_eq!(e.errno(), Some(Errno::ESRCH));
    h.del_route(&subnet).unwrap();
    h.del_route(&other_table).unwrap();
    assert!(!t.exec(&["ip", "route", "show"]).contains("10.203.0.0/16"));

    // A gateway outside every subnet needs onlink.
    let e = h.add_route(&Route::new(net("10.206.0.0/16")).via(ip("192.0.2.1")).dev(d0.index)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    h.add_route(&Route::new(net("10.206.0.0/16")).via(ip("192.0.2.1")).dev(d0.index).onlink()).unwrap();
    assert!(t.exec(&["ip", "route", "show"]).contains("10.206.0.0/16 via 192.0.2.1 dev d0 onlink"));
    host.assert_unchanged();
}

#[test]
fn vxlan_neighbours_and_fdb() {
    if !require_root("vxlan_neighbours_and_fdb") {
        return;
    }
    let host = HostState::capture();
    let t = TestNs::new();
    let mut h = t.handle();
    let underlay = veth_pair(&mut h, "ul0", "ul0p");
    h.add_addr("ul0", net("192.0.2.1/24")).unwrap();
    let options = VxlanOptions {
        vni: 42,
        local: Some(ip("192.0.2.1")),
        port: Some(4789),
        learning: Some(false),
        underlay: Some(underlay.index),
        ..VxlanOptions::default()
    };
    let vtep_mac: MacAddr = "0a:58:c0:00:02:01".parse().unwrap();
    let vx = h.create_link(&NewLink::vxlan("vx0", options).mtu(1450).mac(vtep_mac).up()).unwrap();
    assert_eq!(vx.kind.as_deref(), Some("vxlan"));
    assert_eq!((vx.mtu, vx.mac), (1450, Some(vtep_mac)));
    let info = vx.vxlan.clone().unwrap();
    assert_eq!(
        (info.vni, info.local, info.port, info.learning, info.underlay),
        (42, Some(ip("192.0.2.1")), Some(4789), false, Some(underlay.index))
    );
    let shown = t.exec(&["ip", "-d", "link", "show", "dev", "vx0"]);
    assert!(shown.contains("vxlan id 42 local 192.0.2.1 dev ul0") && shown.contains("dstport 4789"), "{shown}");
    assert!(shown.contains("nolearning"), "{shown}");
    h.add_addr("vx0", net("10.244.0.0/32")).unwrap();

    // A remote node's gateway → its VTEP MAC, permanent.
    let remote_mac: MacAddr = "0a:58:c0:00:02:07".parse().unwrap();
    h.add_neighbour("vx0", ip("10.244.1.0"), remote_mac, true).unwrap();
    let n = h.dump_neighbours().unwrap().into_iter().find(|n| n.ip == ip("10.244.1.0")).expect("neighbour");
    assert_eq!((n.index, n.mac, n.state), (vx.index, Some(remote_mac), NUD_PERMANENT));
    assert!(n.is_permanent());
    let shown = t.exec(&["ip", "neigh", "show", "dev", "vx0"]);
    assert!(shown.contains("10.244.1.0 lladdr 0a:58:c0:00:02:07 PERMANENT"), "{shown}");
    let e = h.add_neighbour("vx0", ip("10.244.1.0"), remote_mac, true).unwrap_err();
    assert!(e.is_already_exists(), "{e}");
    let other_mac: MacAddr = "0a:58:c0:00:02:08".parse().unwrap();
    h.replace_neighbour("vx0", ip("10.244.1.0"), other_mac, true).unwrap();
    assert!(t.exec(&["ip", "neigh", "show", "dev", "vx0"]).contains("lladdr 0a:58:c0:00:02:08"));
    h.add_neighbour("vx0", ip("fd00:244::1"), remote_mac, false).unwrap();
    assert!(h.dump_neighbours().unwrap().iter().any(|n| n.ip == ip("fd00:244::1") && !n.is_permanent()));
    h.del_neighbour("vx0", ip("10.244.1.0")).unwrap();
    let e = h.del_neighbour("vx0", ip("10.244.1.0")).unwrap_err();
    assert!(e.is_not_found(), "{e}");

    // Its VTEP MAC → the remote node's address; flooding entries for two remotes.
    h.add_fdb("vx0", &FdbEntry::vxlan(remote_mac, ip("192.0.2.7"))).unwrap();
    let fdb = h.dump_fdb().unwrap();
    let entry = fdb.iter().find(|f| f.mac == remote_mac).expect("fdb entry");
    assert_eq!((entry.index, entry.dst, entry.flags & NTF_SELF), (vx.index, Some(ip("192.0.2.7")), NTF_SELF));
    assert!(entry.is_permanent());
    let shown = t.exec(&["bridge", "fdb", "show", "dev", "vx0"]);
    assert!(shown.contains("0a:58:c0:00:02:07 dst 192.0.2.7 self permanent"), "{shown}");
    let e = h.add_fdb("vx0", &FdbEntry::vxlan(remote_mac, ip("192.0.2.7"))).unwrap_err();
    assert!(e.is_already_exists(), "{e}");
    h.replace_fdb("vx0", &FdbEntry::vxlan(remote_mac, ip("192.0.2.8"))).unwrap();
    assert!(t.exec(&["bridge", "fdb", "show", "dev", "vx0"]).contains("0a:58:c0:00:02:07 dst 192.0.2.8"));
    h.append_fdb("vx0", &FdbEntry::vxlan(MacAddr::ZERO, ip("192.0.2.7"))).unwrap();
    h.append_fdb("vx0", &FdbEntry::vxlan(MacAddr::ZERO, ip("192.0.2.9"))).unwrap();
    let flood: Vec<_> = h.dump_fdb().unwrap().into_iter().filter(|f| f.mac.is_zero()).filter_map(|f| f.dst).collect();
    assert!(flood.contains(&ip("192.0.2.7")) && flood.contains(&ip("192.0.2.9")), "{flood:?}");
    h.del_fdb("vx0", &FdbEntry::vxlan(MacAddr::ZERO, ip("192.0.2.7"))).unwrap();
    let flood: Vec<_> = h.dump_fdb().unwrap().into_iter().filter(|f| f.mac.is_zero()).filter_map(|f| f.dst).collect();
    assert_eq!(flood, vec![ip("192.0.2.9")]);
    h.del_fdb("vx0", &FdbEntry::vxlan(remote_mac, ip("192.0.2.8"))).unwrap();
    let e = h.del_fdb("vx0", &FdbEntry::vxlan(remote_mac, ip("192.0.2.8"))).unwrap_err();
    assert!(e.is_not_found(), "{e}");
    host.assert_unchanged();
}

#[test]
fn sysctls_inside_a_namespace() {
    if !require_root("sysctls_inside_a_namespace") {
        return;
    }
    let host = HostState::capture();
    let t = TestNs::new();
    let mut h = t.handle();
    h.create_link(&NewLink::veth("d0", "d0p")).unwrap();
    assert_eq!(read_sysctl(&t.ns, "net.ipv4.ip_forward").unwrap(), "0");
    write_sysctl(&t.ns, "net.ipv4.ip_forward", "1").unwrap();
    assert_eq!(read_sysctl(&t.ns, "net.ipv4.ip_forward").unwrap(), "1");
    assert_eq!(t.exec(&["cat", "/proc/sys/net/ipv4/ip_forward"]).trim(), "1");
    write_sysctls(&t.ns, &[("net.ipv4.conf.d0.route_localnet", "1"), ("net/ipv6/conf/d0/forwarding", "1")]).unwrap();
    assert_eq!(read_sysctl(&t.ns, "net/ipv4/conf/d0/route_localnet").unwrap(), "1");
    assert_eq!(read_sysctl(&t.ns, "net.ipv6.conf.d0.forwarding").unwrap(), "1");
    assert_eq!(t.exec(&["sysctl", "-n", "net.ipv4.conf.d0.route_localnet"]).trim(), "1");

    let e = read_sysctl(&t.ns, "net.ipv4.conf.nope0.forwarding").unwrap_err();
    assert!(e.is_not_found(), "{e}");
    let e = write_sysctl(&t.ns, "kernel.hostname", "x").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    host.assert_unchanged();
}

#[test]
fn errors_name_the_object_and_the_errno() {
    if !require_root("errors_name_the_object_and_the_errno") {
        return;
    }
    let host = HostState::capture();
    let t = TestNs::new();
    let mut h = t.handle();
    h.create_link(&NewLink::veth("d0", "p0")).unwrap();

    let e = h.create_link(&NewLink::veth("d0", "p1")).unwrap_err();
    assert_eq!(e.errno(), Some(Errno::EEXIST));
    assert_eq!(e.kind(), ErrorKind::AlreadyExists);
    assert!(e.to_string().starts_with("create link d0 (veth): EEXIST"), "{e}");
    assert!(h.get_link("p1").unwrap_err().is_not_found(), "nothing half-made");
    let e = h.create_link(&NewLink::bridge("p0")).unwrap_err();
    assert!(e.is_already_exists(), "{e}");

    let e = h.get_link("nope0").unwrap_err();
    assert_eq!(e.errno(), Some(Errno::ENODEV));
    assert!(e.is_not_found());
    assert!(e.to_string().contains("nope0") && e.to_string().contains("ENODEV"), "{e}");
    assert!(h.get_link(9999).unwrap_err().is_not_found());
    assert!(h.del_link("nope0").unwrap_err().is_not_found());
    assert!(h.set_up("nope0").unwrap_err().is_not_found());
    let e = h.set_master("d0", "nobr0").unwrap_err();
    assert!(e.is_not_found() && e.to_string().contains("nobr0"), "{e}");
    let e = h.add_addr("nope0", net("10.0.0.1/24")).unwrap_err();
    assert!(e.is_not_found() && e.to_string().contains("10.0.0.1/24"), "{e}");

    let e = h.create_link(&NewLink::bridge("much-too-long-name")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    let e = h.set_master("d0", "d0").unwrap_err();
    assert!(!e.is_not_found() && !e.is_already_exists(), "{e}");

    // The dumps see exactly this namespace.
    let mut names: Vec<String> = h.dump_links().unwrap().into_iter().map(|l| l.name).collect();
    names.sort();
    assert_eq!(names, ["d0", "lo", "p0"]);
    h.set_up("lo").unwrap();
    assert!(h.dump_addresses().unwrap().iter().any(|a| a.addr == net("127.0.0.1/8")));
    host.assert_unchanged();
}

#[test]
fn dummy_links_or_a_clear_error() {
    if !require_root("dummy_links_or_a_clear_error") {
        return;
    }
    let host = HostState::capture();
    let t = TestNs::new();
    let mut h = t.handle();
    match h.create_link(&NewLink::dummy("dm0").mtu(1400).up()) {
        Ok(link) => {
            assert_eq!((link.kind.as_deref(), link.mtu, link.is_up()), (Some("dummy"), 1400, true));
            assert!(t.exec(&["ip", "-d", "link", "show", "dev", "dm0"]).contains("dummy"));
            h.del_link("dm0").unwrap();
            assert!(h.get_link("dm0").unwrap_err().is_not_found());
        }
        Err(e) if unsupported(&e) => {
            // This kernel has no dummy driver (CONFIG_DUMMY off): the error says so.
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
            assert!(e.to_string().contains("create link dm0 (dummy): EOPNOTSUPP"), "{e}");
            println!("note: this kernel has no dummy driver; checked the error instead");
        }
        Err(e) => panic!("{e}"),
    }
    host.assert_unchanged();
}
