//! Privileged integration tests of the iptables mode, on a throw-away topology per test (network
//! namespaces `pn-ipt-<pid>-<n>-<role>`, deleted by a guard even when the test fails):
//!
//! ```text
//!   client 10.250.1.100 ─┐
//!   pod1   10.250.1.11  ─┤ br0 10.250.1.1   [node]   ext0 192.168.77.1 ── outside 192.168.77.2
//!   pod2   10.250.1.12  ─┤
//!   pod3   10.250.1.13  ─┘
//! ```
//!
//! Each pod runs tiny TCP (8080) and UDP (5353) servers answering `<pod> <peer address>`. The
//! mode is applied from a thread inside the node namespace (never the host's), and real
//! connections check what it programmed; `ip netns exec … iptables-save` checks the shape.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use podnet_netlink::{read_sysctl, run_in, write_sysctl, Handle, IpNet, Netns, NewLink, Route};
use podnet_proxy::iptables::{names, IptablesMode};
use podnet_proxy::model::{Endpoint, Protocol, ServicePort, ServicePortName};
use podnet_proxy::{Changed, Mode, NodeContext, SyncStats};

/// Whether the test can run: true as root. Otherwise prints the marker `scripts/test` looks for
/// and, under CI, fails the test; outside CI the test returns early.
fn require_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    let _ = writeln!(std::io::stdout().lock(), "PODNET-PRIVILEGED-TEST-SKIPPED: {test}");
    if std::env::var_os("CI").is_some() {
        panic!("privileged test {test} cannot run without root, and CI must not skip it");
    }
    false
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A named namespace, deleted when dropped.
struct Ns {
    name: String,
    ns: Netns,
}

impl Ns {
    fn new(prefix: &str, role: &str) -> Ns {
        let name = format!("{prefix}-{role}");
        let ns = Netns::create(&name).unwrap_or_else(|e| panic!("create {name}: {e}"));
        Ns { name, ns }
    }

    fn handle(&self) -> Handle {
        Handle::in_netns(&self.ns).expect("netlink handle in test namespace")
    }

    /// Runs a command inside the namespace (`ip netns exec`, for checking only); its stdout.
    fn exec(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("ip").args(["netns", "exec", &self.name]).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?} in {}: {}", self.name, String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        if let Err(e) = Netns::delete(&self.name) {
            eprintln!("cleanup: delete namespace {}: {e}", self.name);
        }
    }
}

const CIDR: &str = "10.250.0.0/16";
const GATEWAY: &str = "10.250.1.1";
const CLIENT: &str = "10.250.1.100";
const NODE_EXT: &str = "192.168.77.1";
const OUTSIDE: &str = "192.168.77.2";
const PODS: [&str; 3] = ["10.250.1.11", "10.250.1.12", "10.250.1.13"];

/// The topology of the module doc. Dropping it stops the servers and deletes every namespace
/// (the node's links go with it).
struct Topology {
    stop: Arc<AtomicBool>,
    servers: Vec<JoinHandle<()>>,
    node: Ns,
    pods: Vec<Ns>,
    client: Ns,
    outside: Ns,
    ctx: NodeContext,
}

impl Drop for Topology {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.servers.drain(..) {
            let _ = t.join();
        }
    }
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Plugs `ns` into the node's bridge with `addr`/24 behind veth `host_if`.
fn attach(node: &mut Handle, ns: &Ns, host_if: &str, addr: &str) {
    node.create_link(&NewLink::veth(host_if, "eth0").peer_netns(&ns.ns)).unwrap();
    node.set_master(host_if, "br0").unwrap();
    // As the CNI bridge plugin's hairpinMode: with br_netfilter, a pod DNATed back to itself
    // is bridged out of the port it came in by.
    node.set_hairpin(host_if, true).unwrap();
    node.set_up(host_if).unwrap();
    let mut h = ns.handle();
    h.add_addr("eth0", net(&format!("{addr}/24"))).unwrap();
    h.set_up("lo").unwrap();
    h.set_up("eth0").unwrap();
    h.add_route(&Route::default_via(ip(GATEWAY))).unwrap();
}

impl Topology {
    fn new() -> Topology {
        let prefix = format!("pn-ipt-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst));
        let node = Ns::new(&prefix, "node");
        let pods: Vec<Ns> = (1..=PODS.len()).map(|i| Ns::new(&prefix, &format!("pod{i}"))).collect();
        let client = Ns::new(&prefix, "client");
        let outside = Ns::new(&prefix, "outside");
        let mut topo = Topology {
            stop: Arc::new(AtomicBool::new(false)),
            servers: Vec::new(),
            node,
            pods,
            client,
            outside,
            ctx: NodeContext {
                name: "node1".into(),
                addresses: vec![ip(NODE_EXT), ip(GATEWAY)],
                cluster_cidrs: vec![net(CIDR)],
            },
        };
        let mut h = topo.node.handle();
        h.set_up("lo").unwrap();
        h.create_link(&NewLink::bridge("br0").up()).unwrap();
        h.add_addr("br0", net(&format!("{GATEWAY}/24"))).unwrap();
        for (i, pod) in topo.pods.iter().enumerate() {
            attach(&mut h, pod, &format!("vpod{}", i + 1), PODS[i]);
        }
        attach(&mut h, &topo.client, "vclient", CLIENT);
        h.create_link(&NewLink::veth("ext0", "eth0").peer_netns(&topo.outside.ns)).unwrap();
        h.add_addr("ext0", net(&format!("{NODE_EXT}/24"))).unwrap();
        h.set_up("ext0").unwrap();
        let mut o = topo.outside.handle();
        o.add_addr("eth0", net(&format!("{OUTSIDE}/24"))).unwrap();
        o.set_up("lo").unwrap();
        o.set_up("eth0").unwrap();
        // The outside reaches cluster IPs through the node, as through a static route.
        o.add_route(&Route::new(net("10.96.0.0/16")).via(ip(NODE_EXT))).unwrap();
        // The node's uplink: without a route, a packet to a cluster IP without endpoints would
        // be refused by routing before the filter table could reject it.
        h.add_route(&Route::default_via(ip(OUTSIDE))).unwrap();
        write_sysctl(&topo.node.ns, "net.ipv4.ip_forward", "1").unwrap();
        for (i, pod) in topo.pods.iter().enumerate() {
            let servers = serve(pod, format!("pod{}", i + 1), topo.stop.clone());
            topo.servers.extend(servers);
        }
        // Links get their carrier a moment after they are set up.
        let deadline = Instant::now() + Duration::from_secs(5);
        while tcp(&topo.client, &format!("{}:8080", PODS[0])).is_err() {
            assert!(Instant::now() < deadline, "the pods cannot be reached directly");
            std::thread::sleep(Duration::from_millis(100));
        }
        topo
    }

    /// Applies `ports` with `mode` from a thread inside the node namespace.
    fn sync(&self, mode: &mut IptablesMode, ports: &[ServicePort], changed: &Changed) -> SyncStats {
        let node_id = self.node.ns.id().unwrap();
        run_in(&self.node.ns, || {
            assert_eq!(Netns::current().unwrap().id().unwrap(), node_id, "must run inside the node namespace");
            mode.sync(ports, &self.ctx, changed)
        })
        .unwrap()
        .unwrap_or_else(|e| panic!("sync: {e}"))
    }

    fn cleanup(&self, mode: &mut IptablesMode) {
        run_in(&self.node.ns, || mode.cleanup()).unwrap().unwrap_or_else(|e| panic!("cleanup: {e}"));
    }

    fn save(&self, table: &str) -> String {
        self.node.exec(&["iptables-save", "-t", table])
    }
}

/// TCP and UDP servers in `pod` answering `<name> <peer address>`, until `stop`.
fn serve(pod: &Ns, name: String, stop: Arc<AtomicBool>) -> Vec<JoinHandle<()>> {
    let tcp = run_in(&pod.ns, || TcpListener::bind("0.0.0.0:8080")).unwrap().unwrap();
    tcp.set_nonblocking(true).unwrap();
    let udp = run_in(&pod.ns, || UdpSocket::bind("0.0.0.0:5353")).unwrap().unwrap();
    udp.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let (tcp_name, tcp_stop) = (name.clone(), stop.clone());
    let t = std::thread::spawn(move || {
        while !tcp_stop.load(Ordering::SeqCst) {
            match tcp.accept() {
                Ok((mut s, peer)) => {
                    let _ = s.set_nonblocking(false);
                    let _ = writeln!(s, "{tcp_name} {}", peer.ip());
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    let u = std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while !stop.load(Ordering::SeqCst) {
            if let Ok((_, peer)) = udp.recv_from(&mut buf) {
                let _ = udp.send_to(format!("{name} {}", peer.ip()).as_bytes(), peer);
            }
        }
    });
    vec![t, u]
}

/// Connects from `ns` to `addr` and reads the answer (`podN peer`).
fn tcp(ns: &Ns, addr: &str) -> std::io::Result<String> {
    let addr: SocketAddr = addr.parse().unwrap();
    run_in(&ns.ns, move || {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out.trim().to_string())
    })
    .unwrap()
}

/// Sends a datagram from `ns` (from `local_port`, 0 for any) to `addr` and reads the answer.
fn udp(ns: &Ns, addr: &str, local_port: u16) -> std::io::Result<String> {
    let addr: SocketAddr = addr.parse().unwrap();
    run_in(&ns.ns, move || {
        // The previous call's socket on the same fixed port may outlive its close for a moment:
        // a child process another test thread forks holds every descriptor until it execs.
        let deadline = Instant::now() + Duration::from_secs(2);
        let s = loop {
            match UdpSocket::bind(("0.0.0.0", local_port)) {
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                bound => break bound?,
            }
        };
        s.set_read_timeout(Some(Duration::from_secs(1)))?;
        s.send_to(b"hi", addr)?;
        let mut buf = [0u8; 64];
        let (n, _) = s.recv_from(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
    })
    .unwrap()
}

/// `(pod, peer)` of an answer.
fn who(answer: &str) -> (String, String) {
    let (pod, peer) = answer.split_once(' ').unwrap_or_else(|| panic!("bad answer {answer:?}"));
    (pod.to_string(), peer.to_string())
}

fn id(name: &str, protocol: Protocol) -> ServicePortName {
    ServicePortName { namespace: "default".into(), name: name.into(), port: String::new(), protocol }
}

fn ep(addr: &str, port: u16, local: bool) -> Endpoint {
    Endpoint {
        ip: ip(addr),
        port,
        node_name: Some(if local { "node1" } else { "node2" }.into()),
        ready: true,
        serving: true,
        terminating: false,
        local,
    }
}

fn service(name: &str, protocol: Protocol, cluster_ip: &str, port: u16, endpoints: Vec<Endpoint>) -> ServicePort {
    ServicePort::cluster_ip(id(name, protocol), ip(cluster_ip), port, endpoints)
}

fn pods_tcp(local: bool) -> Vec<Endpoint> {
    PODS.iter().map(|p| ep(p, 8080, local)).collect()
}

/// The nat rules of the chains whose name starts with one of `prefixes`.
fn chain_rules(saved: &str, chains: &[String]) -> Vec<String> {
    saved.lines().filter(|l| chains.iter().any(|c| l.starts_with(&format!("-A {c} ")))).map(String::from).collect()
}

#[test]
fn cluster_ip_and_node_port_as_kube_proxy() {
    if !require_root("cluster_ip_and_node_port_as_kube_proxy") {
        return;
    }
    let host_localnet = std::fs::read_to_string("/proc/sys/net/ipv4/conf/all/route_localnet").unwrap();
    let t = Topology::new();
    let mut web = service("web", Protocol::Tcp, "10.96.0.10", 80, pods_tcp(true));
    web.node_port = Some(30080);
    let mut mode = IptablesMode::new();
    let stats = t.sync(&mut mode, std::slice::from_ref(&web), &None);
    assert_eq!(stats.services_written, 1);
    assert!(stats.rules_written > 20, "{stats:?}");

    // The cluster IP spreads over the three endpoints; a pod client keeps its address.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..60 {
        let (pod, peer) = who(&tcp(&t.client, "10.96.0.10:80").unwrap());
        assert_eq!(peer, CLIENT, "in-cluster traffic is not masqueraded");
        seen.insert(pod);
    }
    assert_eq!(seen.len(), 3, "60 connections should reach all three endpoints: {seen:?}");

    // From outside the cluster CIDR: masqueraded (the pod sees the node's bridge address).
    let (_, peer) = who(&tcp(&t.outside, "10.96.0.10:80").unwrap());
    assert_eq!(peer, GATEWAY);
    // The node port from outside (Cluster policy: masqueraded too).
    for _ in 0..5 {
        let (_, peer) = who(&tcp(&t.outside, &format!("{NODE_EXT}:30080")).unwrap());
        assert_eq!(peer, GATEWAY);
    }
    // And on the node's loopback, as kube-proxy's default (route_localnet, set in the node's
    // namespace only).
    assert!(tcp(&t.node, "127.0.0.1:30080").is_ok());
    assert_eq!(read_sysctl(&t.node.ns, "net.ipv4.conf.all.route_localnet").unwrap().trim(), "1");
    assert_eq!(std::fs::read_to_string("/proc/sys/net/ipv4/conf/all/route_localnet").unwrap(), host_localnet);

    // What `iptables-save -t nat` shows: kube-proxy's shape (seed 003).
    let nat = t.save("nat");
    let svc = names::svc_chain(&web.id);
    let sep = |ip: &str| names::sep_chain(&web.id, &format!("{ip}:8080"));
    for line in [
        "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES".to_string(),
        "-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES".to_string(),
        "-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING".to_string(),
        "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000".to_string(),
        "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN".to_string(),
        "-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0".to_string(),
        "-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE --random-fully".to_string(),
        format!("-A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m comment --comment \"default/web cluster IP\" -m tcp --dport 80 -j {svc}"),
        "-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS".to_string(),
        format!("-A KUBE-NODEPORTS -p tcp -m comment --comment \"default/web\" -m tcp --dport 30080 -j {}", names::ext_chain(&web.id)),
        format!("-A {svc} ! -s 10.250.0.0/16 -d 10.96.0.10/32 -p tcp -m comment --comment \"default/web cluster IP\" -m tcp --dport 80 -j KUBE-MARK-MASQ"),
        format!("-A {svc} -m comment --comment \"default/web -> 10.250.1.11:8080\" -m statistic --mode random --probability 0.33333333349 -j {}", sep(PODS[0])),
        format!("-A {svc} -m comment --comment \"default/web -> 10.250.1.12:8080\" -m statistic --mode random --probability 0.50000000000 -j {}", sep(PODS[1])),
        format!("-A {svc} -m comment --comment \"default/web -> 10.250.1.13:8080\" -j {}", sep(PODS[2])),
        format!("-A {} -s 10.250.1.11/32 -m comment --comment \"default/web\" -j KUBE-MARK-MASQ", sep(PODS[0])),
        format!("-A {} -p tcp -m comment --comment \"default/web\" -m tcp -j DNAT --to-destination 10.250.1.11:8080", sep(PODS[0])),
    ] {
        assert!(nat.lines().any(|l| l == line), "missing:\n{line}\nin:\n{nat}");
    }
    let filter = t.save("filter");
    assert!(
        filter.contains("-A FORWARD -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD"),
        "{filter}"
    );

    // Another full sync neither duplicates jumps nor changes the service chains.
    t.sync(&mut mode, std::slice::from_ref(&web), &None);
    let again = t.save("nat");
    assert_eq!(again.lines().filter(|l| l.starts_with("-A PREROUTING ") && l.ends_with("-j KUBE-SERVICES")).count(), 1);
    let ours = |s: &str| s.lines().filter(|l| l.starts_with("-A ")).map(String::from).collect::<Vec<_>>();
    assert_eq!(ours(&again), ours(&nat));

    // Cleanup removes every KUBE-* chain and every jump to one; twice is fine.
    t.cleanup(&mut mode);
    t.cleanup(&mut mode);
    for table in ["nat", "filter"] {
        let saved = t.save(table);
        assert!(!saved.contains("KUBE-"), "{table} after cleanup:\n{saved}");
    }
    assert!(tcp(&t.client, "10.96.0.10:80").is_err(), "the service is gone");
    assert!(tcp(&t.client, &format!("{}:8080", PODS[0])).is_ok(), "the pods are still there");
}

#[test]
fn affinity_refusal_and_hairpin() {
    if !require_root("affinity_refusal_and_hairpin") {
        return;
    }
    let t = Topology::new();
    let mut sticky = service("sticky", Protocol::Tcp, "10.96.0.20", 80, pods_tcp(true));
    sticky.affinity = Some(Duration::from_secs(600));
    let empty = service("empty", Protocol::Tcp, "10.96.0.21", 80, vec![]);
    let hairpin = service("self", Protocol::Tcp, "10.96.0.22", 80, vec![ep(PODS[0], 8080, true)]);
    let mut mode = IptablesMode::new();
    t.sync(&mut mode, &[sticky.clone(), empty, hairpin], &None);

    // ClientIP affinity pins the client to one endpoint.
    let (first, _) = who(&tcp(&t.client, "10.96.0.20:80").unwrap());
    for _ in 0..15 {
        assert_eq!(who(&tcp(&t.client, "10.96.0.20:80").unwrap()).0, first, "affinity must pin the client");
    }
    let nat = t.save("nat");
    let sep = names::sep_chain(&sticky.id, &format!("{}:8080", PODS[0]));
    let rcheck = format!(
        "-A {} -m comment --comment \"default/sticky -> 10.250.1.11:8080\" -m recent --rcheck --seconds 600 --reap --name {sep} --mask 255.255.255.255 --rsource -j {sep}",
        names::svc_chain(&sticky.id)
    );
    assert!(nat.lines().any(|l| l == rcheck), "missing:\n{rcheck}\nin:\n{nat}");
    assert!(
        nat.contains(&format!("-m recent --set --name {sep} --mask 255.255.255.255 --rsource -m tcp -j DNAT")),
        "{nat}"
    );

    // No endpoints: REJECT in the filter table, an immediate refusal.
    let start = Instant::now();
    let e = tcp(&t.client, "10.96.0.21:80").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
    assert!(start.elapsed() < Duration::from_secs(1), "refused only after {:?}", start.elapsed());
    let filter = t.save("filter");
    assert!(
        filter.contains("-A KUBE-SERVICES -d 10.96.0.21/32 -p tcp -m comment --comment \"default/empty has no endpoints\" -m tcp --dport 80 -j REJECT --reject-with icmp-port-unreachable"),
        "{filter}"
    );

    // Hairpin: pod1 reaches itself through the service, masqueraded to the node's address.
    assert_eq!(who(&tcp(&t.pods[0], "10.96.0.22:80").unwrap()), ("pod1".to_string(), GATEWAY.to_string()));
    t.cleanup(&mut mode);
}

#[test]
fn local_traffic_policy_keeps_the_source() {
    if !require_root("local_traffic_policy_keeps_the_source") {
        return;
    }
    let t = Topology::new();
    // pod1 is local; 10.250.9.9 is "on another node" (unreachable: choosing it would hang).
    let mut local =
        service("local", Protocol::Tcp, "10.96.0.30", 80, vec![ep(PODS[0], 8080, true), ep("10.250.9.9", 8080, false)]);
    local.node_port = Some(30030);
    local.external_local = true;
    local.health_check_node_port = Some(32030);
    let mut mode = IptablesMode::new();
    t.sync(&mut mode, std::slice::from_ref(&local), &None);
    for _ in 0..10 {
        let answer = tcp(&t.outside, &format!("{NODE_EXT}:30030")).unwrap();
        assert_eq!(
            who(&answer),
            ("pod1".to_string(), OUTSIDE.to_string()),
            "Local policy: local endpoint, source kept"
        );
    }
    let nat = t.save("nat");
    let ext = names::ext_chain(&local.id);
    assert!(nat.contains(&format!("-A {ext} -j {}", names::svl_chain(&local.id))), "{nat}");
    assert!(!nat.contains("masquerade traffic for default/local"), "{nat}");

    // No local endpoint left: external traffic is dropped, not sent elsewhere.
    local.endpoints.retain(|e| !e.local);
    let changed: Changed = Some([local.id.clone()].into());
    t.sync(&mut mode, std::slice::from_ref(&local), &changed);
    let e = tcp(&t.outside, &format!("{NODE_EXT}:30030")).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock), "{e}");
    t.cleanup(&mut mode);
}

#[test]
fn partial_sync_and_stale_udp_flows() {
    if !require_root("partial_sync_and_stale_udp_flows") {
        return;
    }
    let t = Topology::new();
    let a = service("a", Protocol::Tcp, "10.96.0.40", 80, pods_tcp(true));
    let udp_eps = |pods: &[&str]| pods.iter().map(|p| ep(p, 5353, true)).collect::<Vec<_>>();
    let mut b = service("b", Protocol::Udp, "10.96.0.41", 53, udp_eps(&PODS[..2]));
    let mut mode = IptablesMode::new();
    t.sync(&mut mode, &[a.clone(), b.clone()], &None);
    let a_chains: Vec<String> = std::iter::once(names::svc_chain(&a.id))
        .chain(PODS.iter().map(|p| names::sep_chain(&a.id, &format!("{p}:8080"))))
        .collect();
    let a_rules = chain_rules(&t.save("nat"), &a_chains);
    assert_eq!(a_rules.len(), 3 + 3 * 2 + 1);

    // A UDP "connection" from a fixed port sticks to its endpoint through conntrack.
    let (first, _) = who(&udp(&t.client, "10.96.0.41:53", 40000).unwrap());
    let other = if first == "pod1" { PODS[1] } else { PODS[0] };
    let gone = if first == "pod1" { PODS[0] } else { PODS[1] };
    for _ in 0..3 {
        assert_eq!(who(&udp(&t.client, "10.96.0.41:53", 40000).unwrap()).0, first);
    }

    // The endpoint leaves (its server still answers): a partial sync of b only. Its conntrack
    // entry is deleted, so the same client port now reaches the remaining endpoint.
    b.endpoints = udp_eps(&[other]);
    let changed: Changed = Some([b.id.clone()].into());
    let stats = t.sync(&mut mode, &[a.clone(), b.clone()], &changed);
    assert_eq!(stats.services_written, 1);
    let expected = if other == PODS[0] { "pod1" } else { "pod2" };
    for _ in 0..3 {
        assert_eq!(who(&udp(&t.client, "10.96.0.41:53", 40000).unwrap()).0, expected, "stale flow to {gone} kept");
    }
    let nat = t.save("nat");
    assert_eq!(chain_rules(&nat, &a_chains), a_rules, "a partial sync must leave other services intact");
    assert!(!nat.contains(&names::sep_chain(&b.id, &format!("{gone}:5353"))), "{nat}");
    assert!(tcp(&t.client, "10.96.0.40:80").is_ok());

    // Removing a service deletes its chains; the other one keeps working.
    let changed: Changed = Some([a.id.clone()].into());
    t.sync(&mut mode, std::slice::from_ref(&b), &changed);
    let nat = t.save("nat");
    for chain in &a_chains {
        assert!(!nat.contains(chain.as_str()), "{chain} left behind:\n{nat}");
    }
    assert!(udp(&t.client, "10.96.0.41:53", 0).is_ok());
    t.cleanup(&mut mode);
    assert!(!t.save("nat").contains("KUBE-"));
}

#[test]
fn ipv6_rules_are_accepted_by_ip6tables() {
    if !require_root("ipv6_rules_are_accepted_by_ip6tables") {
        return;
    }
    let prefix = format!("pn-ipt-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst));
    let node = Ns::new(&prefix, "node6");
    let ctx = NodeContext {
        name: "node1".into(),
        addresses: vec![ip("fd00:77::1"), ip(NODE_EXT)],
        cluster_cidrs: vec![net("fd00:250::/48"), net(CIDR)],
    };
    let mut dual = service("dual", Protocol::Tcp, "fd00:96::10", 80, vec![ep("fd00:250::11", 8080, true)]);
    dual.cluster_ips.push(ip("10.96.0.50"));
    dual.endpoints.push(ep(PODS[0], 8080, true));
    dual.node_port = Some(30050);
    dual.affinity = Some(Duration::from_secs(30));
    let mut dns = service("dns", Protocol::Udp, "fd00:96::53", 53, vec![]);
    dns.external_ips = vec![ip("fd00:77::53")];
    let mut mode = IptablesMode::new();
    run_in(&node.ns, || mode.sync(&[dual.clone(), dns], &ctx, &None)).unwrap().unwrap_or_else(|e| panic!("sync: {e}"));
    let nat = node.exec(&["ip6tables-save", "-t", "nat"]);
    let svc = names::svc_chain(&dual.id);
    let sep = names::sep_chain(&dual.id, "[fd00:250::11]:8080");
    for line in [
        format!("-A KUBE-SERVICES -d fd00:96::10/128 -p tcp -m comment --comment \"default/dual cluster IP\" -m tcp --dport 80 -j {svc}"),
        format!("-A {sep} -p tcp -m comment --comment \"default/dual\" -m recent --set --name {sep} --mask ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff --rsource -m tcp -j DNAT --to-destination [fd00:250::11]:8080"),
        "-A KUBE-SERVICES ! -d ::1/128 -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS".to_string(),
    ] {
        assert!(nat.lines().any(|l| l == line), "missing:\n{line}\nin:\n{nat}");
    }
    let filter = node.exec(&["ip6tables-save", "-t", "filter"]);
    assert!(
        filter.contains("-d fd00:77::53/128 -p udp -m comment --comment \"default/dns has no endpoints\""),
        "{filter}"
    );
    // The IPv4 half is there too, without any IPv6 address.
    let nat4 = node.exec(&["iptables-save", "-t", "nat"]);
    assert!(nat4.contains("-d 10.96.0.50/32") && !nat4.contains("fd00:"), "{nat4}");
    run_in(&node.ns, || mode.cleanup()).unwrap().unwrap();
    for tool in ["iptables-save", "ip6tables-save"] {
        assert!(!node.exec(&[tool]).contains("KUBE-"), "{tool} after cleanup");
    }
}
