//! Privileged integration tests of the userspace mode, with real connections. Each test builds
//! a throw-away topology of network namespaces (`pn-us-<pid>-<n>-<role>`, deleted by a guard
//! even when the test fails): a "node" with a bridge `br0` (10.250.0.1/24, fd00:250::1/64) and
//! three "pods" behind veths (10.250.0.10–12, their default route the node), a "client" pod
//! (10.250.0.20) on the same bridge, and an "outside" host (10.250.1.2) on a link of its own
//! (node side 10.250.1.1), which is also the node's default route. Every pod runs tiny TCP and
//! UDP servers answering `<pod name> <peer address>` (TCP: on connecting, then once per line
//! the client sends, until it closes). The mode is created on a thread inside the node
//! namespace, so its runtime's threads live there; syncs and cleanups run there too. The node
//! does not forward: every service packet is delivered to the proxy's own sockets. The host's
//! own namespace is never touched: every test checks its links and local routes are unchanged.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use podnet_netlink::{run_in, write_sysctl, AddrOptions, Handle, IpNet, Netns, NewLink, Route};
use podnet_proxy::userspace::routes::RTPROT_PODNET_PROXY;
use podnet_proxy::userspace::{Scheduler, UserspaceMode};
use podnet_proxy::{Changed, Endpoint, Mode, NodeContext, Protocol, ServicePort, ServicePortName, SyncStats};

const TCP_PORT: u16 = 8080;
const UDP_PORT: u16 = 5353;
const NODE_IP: &str = "10.250.1.1";
const BRIDGE_IP: &str = "10.250.0.1";
const OUTSIDE_IP: &str = "10.250.1.2";

/// Whether the test can run: true as root. Otherwise prints the marker `scripts/test` looks for
/// and, under CI, fails the test; outside CI the test returns early.
fn require_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    // Straight to the file descriptor: the test harness captures `println!` of passing tests,
    // and scripts/test must see the marker.
    let _ = writeln!(std::io::stdout().lock(), "PODNET-PRIVILEGED-TEST-SKIPPED: {test}");
    if std::env::var_os("CI").is_some() {
        panic!("privileged test {test} cannot run without root, and CI must not skip it");
    }
    false
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A throw-away named namespace, deleted when dropped.
struct TestNs {
    name: String,
    ns: Netns,
}

impl TestNs {
    fn new(role: &str) -> TestNs {
        let name = format!("pn-us-{}-{}-{role}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst));
        let ns = Netns::create(&name).unwrap_or_else(|e| panic!("create {name}: {e}"));
        TestNs { name, ns }
    }

    fn handle(&self) -> Handle {
        Handle::in_netns(&self.ns).expect("handle in test namespace")
    }

    /// Runs a command inside the namespace (for checking only); (success, stdout + stderr).
    fn exec(&self, args: &[&str]) -> (bool, String) {
        let out =
            Command::new("ip").args(["netns", "exec", &self.name]).args(args).output().expect("run ip netns exec");
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        if let Err(e) = Netns::delete(&self.name) {
            eprintln!("cleanup: delete namespace {}: {e}", self.name);
        }
    }
}

/// What the host's own namespace looks like: its links and its local routes.
#[derive(Debug, PartialEq, Eq)]
struct HostState {
    links: Vec<String>,
    local_routes: String,
}

impl HostState {
    fn capture() -> HostState {
        let out = Command::new("ip").args(["-o", "link", "show"]).output().expect("run ip link");
        let mut links: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split(':').nth(1).map(|n| n.trim().to_string()))
            .collect();
        links.sort();
        let routes = |family: &str| {
            let out = Command::new("ip").args([family, "route", "show", "table", "local"]).output().expect("run ip");
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        HostState { links, local_routes: routes("-4") + &routes("-6") }
    }

    fn assert_unchanged(&self) {
        let now = HostState::capture();
        assert_eq!(&now, self, "the host's network namespace changed");
    }
}

/// Tiny TCP and UDP servers of one pod; stopped when dropped.
struct Servers {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

/// Answers `<name> <peer>` at once and then once per line, until the client closes.
fn serve_connection(mut stream: TcpStream, peer: SocketAddr, name: &str, stop: &AtomicBool) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
    let answer = format!("{name} {}\n", peer.ip().to_canonical());
    if stream.write_all(answer.as_bytes()).is_err() {
        return;
    }
    let mut buf = [0u8; 256];
    while !stop.load(Ordering::SeqCst) {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                for _ in buf[..n].iter().filter(|b| **b == b'\n') {
                    if stream.write_all(answer.as_bytes()).is_err() {
                        return;
                    }
                }
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

impl Servers {
    fn start(pod: &TestNs, name: &str) -> Servers {
        // Sockets stay in the namespace they were made in: bind there, serve from anywhere.
        let (tcp, udp) = run_in(&pod.ns, || {
            (
                TcpListener::bind(("::", TCP_PORT)).expect("bind tcp"),
                UdpSocket::bind(("::", UDP_PORT)).expect("bind udp"),
            )
        })
        .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        tcp.set_nonblocking(true).unwrap();
        udp.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let (name_tcp, stop_tcp) = (name.to_string(), stop.clone());
        let tcp_thread = std::thread::spawn(move || {
            let mut connections = Vec::new();
            while !stop_tcp.load(Ordering::SeqCst) {
                match tcp.accept() {
                    Ok((stream, peer)) => {
                        let (name, stop) = (name_tcp.clone(), stop_tcp.clone());
                        connections.push(std::thread::spawn(move || serve_connection(stream, peer, &name, &stop)));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            for c in connections {
                let _ = c.join();
            }
        });
        let (name_udp, stop_udp) = (name.to_string(), stop.clone());
        let udp_thread = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !stop_udp.load(Ordering::SeqCst) {
                if let Ok((_, peer)) = udp.recv_from(&mut buf) {
                    let _ = udp.send_to(format!("{name_udp} {}", peer.ip().to_canonical()).as_bytes(), peer);
                }
            }
        });
        Servers { stop, threads: vec![tcp_thread, udp_thread] }
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// An answer of a pod's server.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reply {
    pod: String,
    peer: IpAddr,
}

fn parse_reply(text: &str) -> Reply {
    let mut parts = text.split_whitespace();
    let pod = parts.next().unwrap_or_else(|| panic!("empty reply {text:?}")).to_string();
    let peer = parts.next().and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("bad reply {text:?}"));
    Reply { pod, peer }
}

/// A TCP connection kept open: asks again with [`Held::ask`].
struct Held {
    reader: BufReader<TcpStream>,
    first: Reply,
}

impl Held {
    fn read(&mut self) -> io::Result<Reply> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed"));
        }
        Ok(parse_reply(&line))
    }

    fn ask(&mut self) -> io::Result<Reply> {
        self.reader.get_mut().write_all(b"?\n")?;
        self.read()
    }
}

/// The throw-away topology. Fields drop in order: servers first, then the namespaces.
struct Topology {
    /// Kept for their Drop (stops the servers).
    _servers: Vec<Servers>,
    node: TestNs,
    pods: Vec<TestNs>,
    client: TestNs,
    outside: TestNs,
}

const POD_NAMES: [&str; 3] = ["pod0", "pod1", "pod2"];

impl Topology {
    fn new() -> Topology {
        let node = TestNs::new("node");
        let pods: Vec<TestNs> = POD_NAMES.iter().map(|n| TestNs::new(n)).collect();
        let client = TestNs::new("client");
        let outside = TestNs::new("outside");
        // No duplicate address detection: IPv6 addresses are usable at once.
        for ns in [&node, &client, &outside].into_iter().chain(&pods) {
            write_sysctl(&ns.ns, "net.ipv6.conf.default.accept_dad", "0").unwrap();
        }
        let nodad = AddrOptions { nodad: true, ..AddrOptions::default() };
        let mut h = node.handle();
        h.set_up("lo").unwrap();
        h.create_link(&NewLink::bridge("br0").up()).unwrap();
        h.add_addr("br0", net("10.250.0.1/24")).unwrap();
        h.add_addr_with("br0", net("fd00:250::1/64"), &nodad).unwrap();
        let attach = |h: &mut Handle, pod: &TestNs, host_end: &str, last: u8| {
            h.create_link(&NewLink::veth(host_end, "eth0").peer_netns(&pod.ns)).unwrap();
            h.set_master(host_end, "br0").unwrap();
            h.set_up(host_end).unwrap();
            let mut p = pod.handle();
            p.set_up("lo").unwrap();
            p.add_addr("eth0", net(&format!("10.250.0.{last}/24"))).unwrap();
            p.add_addr_with("eth0", net(&format!("fd00:250::{last}/64")), &nodad).unwrap();
            p.set_up("eth0").unwrap();
            p.add_route(&Route::default_via(ip(BRIDGE_IP))).unwrap();
            p.add_route(&Route::default_via(ip("fd00:250::1"))).unwrap();
        };
        for (i, pod) in pods.iter().enumerate() {
            attach(&mut h, pod, &format!("vp{i}"), 10 + i as u8);
        }
        attach(&mut h, &client, "vc", 20);
        h.create_link(&NewLink::veth("ext0", "eth0").peer_netns(&outside.ns)).unwrap();
        h.add_addr("ext0", net("10.250.1.1/24")).unwrap();
        h.set_up("ext0").unwrap();
        let mut o = outside.handle();
        o.set_up("lo").unwrap();
        o.add_addr("eth0", net("10.250.1.2/24")).unwrap();
        o.set_up("eth0").unwrap();
        o.add_route(&Route::default_via(ip(NODE_IP))).unwrap();
        // Addresses the node does not take go out to the "outside" host, which does not
        // forward: the packets vanish, as they would past a real node.
        h.add_route(&Route::default_via(ip(OUTSIDE_IP))).unwrap();
        let servers = pods.iter().zip(POD_NAMES).map(|(p, n)| Servers::start(p, n)).collect();
        let t = Topology { _servers: servers, node, pods, client, outside };
        // Links get their carrier a moment after they are set up.
        let deadline = Instant::now() + Duration::from_secs(10);
        let checks = [
            (&t.client, "10.250.0.10:8080"),
            (&t.client, "[fd00:250::12]:8080"),
            (&t.pods[0], "10.250.0.11:8080"),
            (&t.pods[2], "10.250.0.10:8080"),
        ];
        for (from, addr) in checks {
            while t.tcp_timeout(from, addr, Duration::from_millis(500)).is_err() {
                assert!(Instant::now() < deadline, "{addr} is not reachable from {}", from.name);
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        // The node itself, from outside: a closed port answers with a reset.
        let node_port_9 = format!("{NODE_IP}:9");
        while !matches!(
            t.tcp_timeout(&t.outside, &node_port_9, Duration::from_millis(500)),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused
        ) {
            assert!(Instant::now() < deadline, "the node is not reachable from outside");
            std::thread::sleep(Duration::from_millis(100));
        }
        t
    }

    fn context(&self) -> NodeContext {
        NodeContext {
            name: "node1".into(),
            addresses: vec![ip(NODE_IP), ip(BRIDGE_IP), ip("fd00:250::1")],
            cluster_cidrs: vec![net("10.250.0.0/24"), net("fd00:250::/64")],
        }
    }

    /// A mode created inside the node namespace (its runtime's threads live there).
    fn mode(&self, scheduler: Scheduler) -> UserspaceMode {
        run_in(&self.node.ns, || UserspaceMode::new(scheduler)).unwrap().expect("create the userspace mode")
    }

    /// Syncs `mode` from a thread inside the node namespace.
    fn sync(&self, mode: &mut UserspaceMode, ports: &[ServicePort], changed: &Changed) -> SyncStats {
        let ctx = self.context();
        run_in(&self.node.ns, || mode.sync(ports, &ctx, changed)).unwrap().unwrap_or_else(|e| panic!("sync: {e}"))
    }

    fn cleanup(&self, mode: &mut UserspaceMode) {
        run_in(&self.node.ns, || mode.cleanup()).unwrap().unwrap_or_else(|e| panic!("cleanup: {e}"))
    }

    /// One TCP request from `from`: the first reply, or the error (refused, reset, timed out).
    fn tcp(&self, from: &TestNs, addr: &str) -> io::Result<Reply> {
        self.tcp_timeout(from, addr, Duration::from_secs(2))
    }

    fn tcp_timeout(&self, from: &TestNs, addr: &str, timeout: Duration) -> io::Result<Reply> {
        self.hold_timeout(from, addr, timeout).map(|h| h.first)
    }

    /// A TCP connection from `from`, with its first reply, kept open.
    fn hold(&self, from: &TestNs, addr: &str) -> Held {
        self.hold_timeout(from, addr, Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("{addr} from {}: {e}", from.name))
    }

    fn hold_timeout(&self, from: &TestNs, addr: &str, timeout: Duration) -> io::Result<Held> {
        let addr = sa(addr);
        run_in(&from.ns, || {
            let s = TcpStream::connect_timeout(&addr, timeout)?;
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            let mut held = Held { reader: BufReader::new(s), first: Reply { pod: String::new(), peer: ip("0.0.0.0") } };
            held.first = held.read()?;
            Ok(held)
        })
        .unwrap()
    }

    /// `n` TCP requests; panics on any failure.
    fn tcp_many(&self, from: &TestNs, addr: &str, n: usize) -> Vec<Reply> {
        (0..n).map(|_| self.tcp(from, addr).unwrap_or_else(|e| panic!("{addr} from {}: {e}", from.name))).collect()
    }

    /// A UDP socket in `from`'s namespace (kept for several requests: same source port).
    fn udp_socket(&self, from: &TestNs, addr: &str) -> UdpSocket {
        let addr = sa(addr);
        let any = if addr.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
        let sock = run_in(&from.ns, || UdpSocket::bind(any)).unwrap().unwrap();
        sock.connect(addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        sock
    }

    /// The proxy's local routes in the node (`ip route show table local proto 159`).
    fn proxy_routes(&self) -> String {
        let proto = RTPROT_PODNET_PROXY.to_string();
        let mut out = String::new();
        for family in ["-4", "-6"] {
            let (ok, text) = self.node.exec(&["ip", family, "route", "show", "table", "local", "proto", &proto]);
            assert!(ok, "{text}");
            out.push_str(&text);
        }
        out
    }

    /// The node's listening TCP and bound UDP sockets (`ss -Hltun`).
    fn sockets(&self) -> String {
        let (ok, text) = self.node.exec(&["ss", "-Hltun"]);
        assert!(ok, "{text}");
        text
    }
}

/// One UDP request on `sock`: the reply, or the error (timed out). A receive interrupted by a
/// signal (a timed socket call is never restarted) waits again.
fn udp_ask(sock: &UdpSocket) -> io::Result<Reply> {
    sock.send(b"?")?;
    let mut buf = [0u8; 512];
    loop {
        match sock.recv(&mut buf) {
            Ok(n) => return Ok(parse_reply(&String::from_utf8_lossy(&buf[..n]))),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

fn pod_ep(i: usize, port: u16, local: bool) -> Endpoint {
    Endpoint {
        ip: ip(&format!("10.250.0.{}", 10 + i)),
        port,
        node_name: Some(if local { "node1" } else { "node2" }.into()),
        ready: true,
        serving: true,
        terminating: false,
        local,
    }
}

fn service(name: &str, protocol: Protocol, cluster_ip: &str, port: u16, endpoints: Vec<Endpoint>) -> ServicePort {
    ServicePort::cluster_ip(
        ServicePortName { namespace: "test".into(), name: name.into(), port: "p".into(), protocol },
        ip(cluster_ip),
        port,
        endpoints,
    )
}

fn tcp_service(name: &str, cluster_ip: &str, pods: &[usize]) -> ServicePort {
    service(name, Protocol::Tcp, cluster_ip, 80, pods.iter().map(|i| pod_ep(*i, TCP_PORT, true)).collect())
}

fn udp_service(name: &str, cluster_ip: &str, pods: &[usize]) -> ServicePort {
    service(name, Protocol::Udp, cluster_ip, 53, pods.iter().map(|i| pod_ep(*i, UDP_PORT, true)).collect())
}

fn pods_of(replies: &[Reply]) -> Vec<&str> {
    let mut pods: Vec<&str> = replies.iter().map(|r| r.pod.as_str()).collect();
    pods.sort();
    pods.dedup();
    pods
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock)
}

/// Waits until `check` holds (the proxy notices a closed connection a moment later).
fn wait_for(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn cluster_ip_round_robin_over_tcp_and_udp() {
    if !require_root("cluster_ip_round_robin_over_tcp_and_udp") {
        return;
    }
    let host = HostState::capture();
    let t = Topology::new();
    let web = tcp_service("web", "10.96.0.10", &[0, 1, 2]);
    let dns = udp_service("dns", "10.96.0.10", &[0, 1, 2]);
    let mut web6 = tcp_service("web6", "fd00:96::10", &[]);
    web6.endpoints =
        (0..3).map(|i| Endpoint { ip: ip(&format!("fd00:250::{}", 10 + i)), ..pod_ep(i, TCP_PORT, true) }).collect();
    let ports = [web, dns, web6];
    let mut mode = t.mode(Scheduler::Rr);
    let stats = t.sync(&mut mode, &ports, &None);
    assert_eq!(stats.services_written, 3);
    assert_eq!(stats.rules_written, 3 + 2, "three listeners, two local routes: {stats:?}");
    let routes = t.proxy_routes();
    assert!(routes.contains("local 10.96.0.10 dev lo") && routes.contains("local fd00:96::10 dev lo"), "{routes}");

    // Round robin visits every endpoint in turn; the backends see the node as the client.
    let replies = t.tcp_many(&t.client, "10.96.0.10:80", 9);
    for pod in POD_NAMES {
        assert_eq!(replies.iter().filter(|r| r.pod == pod).count(), 3, "{replies:?}");
    }
    assert!(replies.iter().all(|r| r.peer == ip(BRIDGE_IP)), "proxied from the node: {replies:?}");
    // Pods, the node itself and hosts routed to the node all reach the cluster IP.
    assert!(t.tcp(&t.pods[1], "10.96.0.10:80").is_ok(), "from a pod (even to itself)");
    assert!(t.tcp(&t.outside, "10.96.0.10:80").is_ok(), "from outside");
    let (ok, out) = t.node.exec(&["bash", "-c", "exec 3<>/dev/tcp/10.96.0.10/80 && head -n1 <&3"]);
    assert!(ok && out.starts_with("pod"), "from the node: {out}");

    // UDP: one session per client address, round robin across sessions.
    let sockets: Vec<UdpSocket> = (0..6).map(|_| t.udp_socket(&t.client, "10.96.0.10:53")).collect();
    let replies: Vec<Reply> = sockets.iter().map(|s| udp_ask(s).expect("udp reply")).collect();
    assert_eq!(pods_of(&replies), POD_NAMES, "{replies:?}");
    for (s, first) in sockets.iter().zip(&replies) {
        assert_eq!(udp_ask(s).unwrap().pod, first.pod, "a session keeps its backend");
    }

    // IPv6.
    let replies = t.tcp_many(&t.client, "[fd00:96::10]:80", 6);
    assert_eq!(pods_of(&replies), POD_NAMES, "{replies:?}");
    assert!(replies.iter().all(|r| r.peer == ip("fd00:250::1")), "{replies:?}");
    drop(mode);
    drop(t);
    host.assert_unchanged();
}

#[test]
fn hashing_and_least_connection_schedulers() {
    if !require_root("hashing_and_least_connection_schedulers") {
        return;
    }
    let host = HostState::capture();
    let t = Topology::new();
    let web = tcp_service("web", "10.96.1.10", &[0, 1, 2]);
    let ports = std::slice::from_ref(&web);

    // sh: each client is pinned to one backend.
    let mut mode = t.mode(Scheduler::Sh);
    t.sync(&mut mode, ports, &None);
    for from in [&t.client, &t.pods[2], &t.outside] {
        let replies = t.tcp_many(from, "10.96.1.10:80", 6);
        assert_eq!(pods_of(&replies).len(), 1, "sh from {}: {replies:?}", from.name);
    }
    t.cleanup(&mut mode);
    drop(mode);

    // dh: every client of one service address gets the same backend.
    let mut mode = t.mode(Scheduler::Dh);
    t.sync(&mut mode, ports, &None);
    let mut replies = Vec::new();
    for from in [&t.client, &t.pods[2], &t.outside] {
        replies.extend(t.tcp_many(from, "10.96.1.10:80", 4));
    }
    assert_eq!(pods_of(&replies).len(), 1, "dh: {replies:?}");
    t.cleanup(&mut mode);
    drop(mode);

    // lc: the idle backend first, then the first of the least loaded.
    let mut mode = t.mode(Scheduler::Lc);
    t.sync(&mut mode, ports, &None);
    let balancer = mode.balancer(&web.id).expect("balancer");
    let backend = |pod: &str| -> SocketAddr {
        let i = POD_NAMES.iter().position(|p| *p == pod).unwrap();
        SocketAddr::new(pod_ep(i, TCP_PORT, true).ip, TCP_PORT)
    };
    let a = t.hold(&t.client, "10.96.1.10:80");
    let b = t.hold(&t.client, "10.96.1.10:80");
    let c = t.hold(&t.client, "10.96.1.10:80");
    assert_eq!([&a.first.pod, &b.first.pod, &c.first.pod], ["pod0", "pod1", "pod2"]);
    assert_eq!(balancer.load(backend("pod1")), 1);
    drop(b);
    wait_for("pod1's connection to end", || balancer.load(backend("pod1")) == 0);
    // Round robin would now take pod0; least connection takes the idle pod1, twice in a row
    // when the first one is closed again.
    assert_eq!(t.tcp(&t.client, "10.96.1.10:80").unwrap().pod, "pod1");
    wait_for("the short connection to end", || balancer.load(backend("pod1")) == 0);
    assert_eq!(t.tcp(&t.client, "10.96.1.10:80").unwrap().pod, "pod1");
    let mut a = a;
    assert_eq!(a.ask().unwrap().pod, "pod0", "held connections keep working");
    drop((a, c));
    t.cleanup(&mut mode);
    drop(mode);
    drop(t);
    host.assert_unchanged();
}

#[test]
fn client_ip_affinity_pins_tcp_and_udp() {
    if !require_root("client_ip_affinity_pins_tcp_and_udp") {
        return;
    }
    let host = HostState::capture();
    let t = Topology::new();
    let mut sticky = tcp_service("sticky", "10.96.2.10", &[0, 1, 2]);
    sticky.affinity = Some(Duration::from_secs(60));
    let mut sticky_udp = udp_service("sticky-udp", "10.96.2.10", &[0, 1, 2]);
    sticky_udp.affinity = Some(Duration::from_secs(60));
    let plain = tcp_service("plain", "10.96.2.11", &[0, 1, 2]);
    let ports = [sticky, sticky_udp, plain];
    let mut mode = t.mode(Scheduler::Rr);
    t.sync(&mut mode, &ports, &None);

    let replies = t.tcp_many(&t.client, "10.96.2.10:80", 8);
    assert_eq!(pods_of(&replies).len(), 1, "affinity: {replies:?}");
    let replies_udp: Vec<Reply> =
        (0..6).map(|_| udp_ask(&t.udp_socket(&t.client, "10.96.2.10:53")).expect("udp reply")).collect();
    assert_eq!(pods_of(&replies_udp).len(), 1, "UDP sessions of one client share a backend: {replies_udp:?}");
    // Another client may get another backend, and keeps it too.
    let other = t.tcp_many(&t.outside, "10.96.2.10:80", 5);
    assert_eq!(pods_of(&other).len(), 1, "{other:?}");
    // A resync keeps the table; a service without affinity spreads.
    t.sync(&mut mode, &ports, &None);
    assert!(t.tcp_many(&t.client, "10.96.2.10:80", 3).iter().all(|r| r.pod == replies[0].pod));
    assert_eq!(pods_of(&t.tcp_many(&t.client, "10.96.2.11:80", 6)).len(), 3);
    drop(mode);
    drop(t);
    host.assert_unchanged();
}

#[test]
fn node_port_external_and_load_balancer_ips_with_traffic_policies() {
    if !require_root("node_port_external_and_load_balancer_ips_with_traffic_policies") {
        return;
    }
    let host = HostState::capture();
    let t = Topology::new();
    let mut np = tcp_service("np", "10.96.3.10", &[0, 1]);
    np.node_port = Some(30080);
    let mut np_udp = udp_service("np-udp", "10.96.3.10", &[2]);
    np_udp.node_port = Some(30053);
    let mut local = tcp_service("local", "10.96.3.11", &[]);
    local.endpoints = vec![pod_ep(0, TCP_PORT, true), pod_ep(1, TCP_PORT, false)];
    local.node_port = Some(30081);
    local.external_local = true;
    let mut internal = tcp_service("internal", "10.96.3.12", &[]);
    internal.endpoints = vec![pod_ep(1, TCP_PORT, false), pod_ep(2, TCP_PORT, true)];
    internal.internal_local = true;
    internal.node_port = Some(30082);
    let mut lb = tcp_service("lb", "10.96.3.13", &[2]);
    lb.load_balancer_ips = vec![ip("10.250.9.1")];
    lb.load_balancer_source_ranges = vec![net("10.250.1.2/32")];
    let mut ext = tcp_service("ext", "10.96.3.14", &[1]);
    ext.external_ips = vec![ip("10.250.9.2"), ip(NODE_IP)];
    let ports = [np, np_udp, local, internal, lb, ext];
    let mut mode = t.mode(Scheduler::Rr);
    t.sync(&mut mode, &ports, &None);

    // NodePort from outside, on every node address, and from the node on localhost.
    for addr in [format!("{NODE_IP}:30080"), format!("{BRIDGE_IP}:30080")] {
        let replies = t.tcp_many(&t.outside, &addr, 4);
        assert_eq!(pods_of(&replies), ["pod0", "pod1"], "{addr}: {replies:?}");
    }
    let (ok, out) = t.node.exec(&["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/30080 && head -n1 <&3"]);
    assert!(ok && (out.starts_with("pod0") || out.starts_with("pod1")), "{out}");
    let sock = t.udp_socket(&t.outside, &format!("{NODE_IP}:30053"));
    assert_eq!(udp_ask(&sock).unwrap().pod, "pod2", "UDP node port, answered from the node address");

    // externalTrafficPolicy Local: only the local endpoint from outside; the cluster IP uses all.
    let replies = t.tcp_many(&t.outside, &format!("{NODE_IP}:30081"), 4);
    assert!(replies.iter().all(|r| r.pod == "pod0"), "{replies:?}");
    assert_eq!(pods_of(&t.tcp_many(&t.client, "10.96.3.11:80", 4)), ["pod0", "pod1"]);
    // internalTrafficPolicy Local: only the local endpoint on the cluster IP; the node port uses all.
    let replies = t.tcp_many(&t.client, "10.96.3.12:80", 4);
    assert!(replies.iter().all(|r| r.pod == "pod2"), "{replies:?}");
    assert_eq!(pods_of(&t.tcp_many(&t.outside, &format!("{NODE_IP}:30082"), 4)), ["pod1", "pod2"]);

    // Load-balancer IP: only the allowed source; the cluster IP is not firewalled.
    assert_eq!(t.tcp(&t.outside, "10.250.9.1:80").expect("allowed source").pod, "pod2");
    let e = t.tcp(&t.client, "10.250.9.1:80").unwrap_err();
    assert!(!is_timeout(&e), "a source outside the ranges is reset: {e}");
    assert_eq!(t.tcp(&t.client, "10.96.3.13:80").unwrap().pod, "pod2");

    // External IPs, one of them the node's own address (local already: no route for it).
    assert_eq!(t.tcp(&t.outside, "10.250.9.2:80").expect("external IP").pod, "pod1");
    assert_eq!(t.tcp(&t.outside, &format!("{NODE_IP}:80")).expect("external IP of the node").pod, "pod1");
    let routes = t.proxy_routes();
    assert!(routes.contains("10.250.9.1") && routes.contains("10.250.9.2"), "{routes}");
    assert!(!routes.contains(NODE_IP), "{routes}");
    drop(mode);
    drop(t);
    host.assert_unchanged();
}

#[test]
fn no_endpoints_fail_at_once() {
    if !require_root("no_endpoints_fail_at_once") {
        return;
    }
    let host = HostState::capture();
    let t = Topology::new();
    let mut empty = tcp_service("empty", "10.96.4.10", &[]);
    empty.node_port = Some(30090);
    empty.external_ips = vec![ip("10.250.9.3")];
    let empty_udp = udp_service("empty-udp", "10.96.4.10", &[]);
    let mut remote_only = tcp_service("remote-only", "10.96.4.11", &[]);
    remote_only.endpoints = vec![pod_ep(1, TCP_PORT, false)];
    remote_only.node_port = Some(30091);
    remote_only.external_local = true;
    let mut mode = t.mode(Scheduler::Rr);
    t.sync(&mut mode, &[empty, empty_udp, remote_only], &None);

    for (from, addr) in [
        (&t.client, "10.96.4.10:80".to_string()),
        (&t.outside, format!("{NODE_IP}:30090")),
        (&t.outside, "10.250.9.3:80".to_string()),
        (&t.outside, format!("{NODE_IP}:30091")),
    ] {
        let start = Instant::now();
        let e = t.tcp_timeout(from, &addr, Duration::from_secs(3)).unwrap_err();
        assert!(
            matches!(e.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionRefused),
            "{addr} from {}: {e}",
            from.name
        );
        assert!(start.elapsed() < Duration::from_secs(1), "{addr}: failed only after {:?}", start.elapsed());
    }
    // Pods still reach the remote endpoint through the cluster IP.
    assert_eq!(t.tcp(&t.client, "10.96.4.11:80").unwrap().pod, "pod1");
    // UDP: nothing comes back.
    let sock = t.udp_socket(&t.client, "10.96.4.10:53");
    let e = udp_ask(&sock).unwrap_err();
    assert!(is_timeout(&e), "{e}");
    drop(mode);
    drop(t);
    host.assert_unchanged();
}

#[test]
fn syncs_keep_established_connections() {
    if !require_root("syncs_keep_established_connections") {
        return;
    }
    let host = HostState::capture();
    let t = Topology::new();
    let a = tcp_service("a", "10.96.5.10", &[0]);
    let b = tcp_service("b", "10.96.5.11", &[2]);
    let dns = udp_service("dns", "10.96.5.10", &[0]);
    let mut mode = t.mode(Scheduler::Rr);
    t.sync(&mut mode, &[a.clone(), b.clone(), dns.clone()], &None);
    let mut held = t.hold(&t.client, "10.96.5.10:80");
    assert_eq!(held.first.pod, "pod0");
    let udp = t.udp_socket(&t.client, "10.96.5.10:53");
    assert_eq!(udp_ask(&udp).unwrap().pod, "pod0");
    let sockets_before = t.sockets();

    // The endpoint moves: a partial sync changes the balancer, not the listeners.
    let mut a2 = a.clone();
    a2.endpoints = vec![pod_ep(1, TCP_PORT, true)];
    let mut dns2 = dns.clone();
    dns2.endpoints = vec![pod_ep(1, UDP_PORT, true)];
    let stats = t.sync(&mut mode, &[a2.clone(), b.clone(), dns2.clone()], &Some([a.id.clone(), dns.id.clone()].into()));
    assert_eq!(stats.services_written, 2, "{stats:?}");
    assert_eq!(stats.rules_written, 0, "no listener or route changed: {stats:?}");
    assert_eq!(t.sockets(), sockets_before);
    assert_eq!(held.ask().unwrap().pod, "pod0", "the established connection goes on");
    assert_eq!(t.tcp(&t.client, "10.96.5.10:80").unwrap().pod, "pod1", "new ones go to the new endpoint");
    assert_eq!(udp_ask(&udp).unwrap().pod, "pod0", "a UDP session keeps its backend while it lives");
    assert_eq!(udp_ask(&t.udp_socket(&t.client, "10.96.5.10:53")).unwrap().pod, "pod1");

    // b goes away: its listener and route go, a's stay; the connection lives on.
    let stats = t.sync(&mut mode, &[a2.clone(), dns2.clone()], &Some([b.id.clone()].into()));
    assert_eq!(stats.rules_written, 2, "b's listener and route: {stats:?}");
    assert!(!t.proxy_routes().contains("10.96.5.11"));
    let e = t.tcp_timeout(&t.client, "10.96.5.11:80", Duration::from_millis(500)).unwrap_err();
    assert!(is_timeout(&e), "the address is no longer the node's: {e}");
    assert_eq!(held.ask().unwrap().pod, "pod0");
    // Even the service of the held connection going away does not cut it.
    t.sync(&mut mode, std::slice::from_ref(&dns2), &None);
    assert_eq!(held.ask().unwrap().pod, "pod0");
    drop(held);
    drop(mode);
    drop(t);
    host.assert_unchanged();
}

#[test]
fn cleanup_removes_every_route_and_socket() {
    if !require_root("cleanup_removes_every_route_and_socket") {
        return;
    }
    let host = HostState::capture();
    let t = Topology::new();
    let mut web = tcp_service("web", "10.96.6.10", &[0, 1]);
    web.node_port = Some(30100);
    web.external_ips = vec![ip("10.250.9.6")];
    web.cluster_ips.push(ip("fd00:96::6:10"));
    let dns = udp_service("dns", "10.96.6.11", &[2]);
    let sctp = service("sig", Protocol::Sctp, "10.96.6.12", 9000, vec![pod_ep(0, 9000, true)]);
    let ports = [web.clone(), dns.clone(), sctp];
    let sockets_before = t.sockets();
    let mut mode = t.mode(Scheduler::Wrr);
    t.sync(&mut mode, &ports, &None);
    let routes = t.proxy_routes();
    for addr in ["10.96.6.10", "10.96.6.11", "10.250.9.6", "fd00:96::6:10"] {
        assert!(routes.contains(addr), "{addr}: {routes}");
    }
    assert!(!routes.contains("10.96.6.12"), "SCTP is not served: {routes}");
    let sockets = t.sockets();
    for addr in ["10.96.6.10:80", "10.96.6.11:53", "10.250.9.6:80", "127.0.0.1:30100", "[fd00:96::6:10]:80"] {
        assert!(sockets.contains(addr), "{addr}: {sockets}");
    }
    assert_eq!(mode.frontends().len(), 8, "{:?}", mode.frontends());
    let mut held = t.hold(&t.client, "10.96.6.10:80");
    let udp = t.udp_socket(&t.client, "10.96.6.11:53");
    assert_eq!(udp_ask(&udp).unwrap().pod, "pod2");

    // Cleanup: no route, no socket, the connection ended; and it may run again.
    t.cleanup(&mut mode);
    assert_eq!(t.proxy_routes(), "");
    assert_eq!(t.sockets(), sockets_before);
    assert!(mode.frontends().is_empty() && mode.local_ips().is_empty());
    assert!(held.ask().is_err(), "the connection was ended");
    let e = t.tcp_timeout(&t.client, "10.96.6.10:80", Duration::from_millis(500)).unwrap_err();
    assert!(is_timeout(&e), "{e}");
    t.cleanup(&mut mode);

    // A sync after it starts over.
    t.sync(&mut mode, &ports, &Some([web.id.clone()].into()));
    assert!(t.tcp(&t.client, "10.96.6.10:80").is_ok());

    // A restarted proxy: the routes the dropped mode left are found by the next one's full
    // sync (those no longer wanted deleted) and by its cleanup.
    drop(mode);
    assert!(t.proxy_routes().contains("10.96.6.11"), "dropping leaves the routes");
    let mut restarted = t.mode(Scheduler::Nq);
    t.sync(&mut restarted, std::slice::from_ref(&web), &None);
    let routes = t.proxy_routes();
    assert!(routes.contains("10.96.6.10") && !routes.contains("10.96.6.11"), "{routes}");
    assert_eq!(t.tcp(&t.client, "10.96.6.10:80").unwrap().peer, ip(BRIDGE_IP));
    drop(restarted);
    // A fresh mode used from an async context (podnet's proxy command runs `--cleanup` there):
    // creating, syncing, cleaning up and dropping it neither panics nor leaves anything.
    let ctx = t.context();
    run_in(&t.node.ns, || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let mut fresh = UserspaceMode::new(Scheduler::Rr).expect("create the userspace mode");
            fresh.sync(std::slice::from_ref(&dns), &ctx, &None).expect("sync in an async context");
            assert_eq!(udp_ask(&t.udp_socket(&t.client, "10.96.6.11:53")).unwrap().pod, "pod2");
            fresh.cleanup().expect("cleanup in an async context");
        })
    })
    .unwrap();
    assert_eq!(t.proxy_routes(), "");
    drop(t);
    host.assert_unchanged();
}
