//! The CNI plugin run exactly as a runtime runs it (environment + stdin, the podnet binary under
//! its plugin names), each test in its own host and pod namespaces: the pod namespace after ADD
//! (addresses, routes, MAC, MTU), pod ↔ pod over the bridge, hairpin, ipMasq towards an outside
//! namespace, portmap, CHECK/GC/STATUS/VERSION, bad input, and concurrent ADDs.

mod cni_support;

use std::collections::HashSet;

use cni_support::*;
use serde_json::{json, Value};

fn bridge_conf(lab: &Lab, name: &str, extra: Value) -> Value {
    let mut c = json!({
        "cniVersion": "1.1.0", "name": name, "type": "podnet", "bridge": "cni0",
        "isDefaultGateway": true,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.88.0.0/24"}]], "dataDir": lab.data_dir()}
    });
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

#[test]
fn add_configures_the_pod_and_del_removes_it() {
    if !privileged("add_configures_the_pod_and_del_removes_it") {
        return;
    }
    let mut lab = Lab::new();
    let p = lab.pod();
    let conf = bridge_conf(
        &lab,
        "ds",
        json!({"mtu": 1400, "ipMasq": true,
               "ipam": {"type": "host-local", "dataDir": lab.data_dir(),
                        "ranges": [[{"subnet": "10.88.0.0/24"}], [{"subnet": "fd88::/64"}]],
                        "routes": [{"dst": "192.168.128.0/24"}]},
               "runtimeConfig": {"mac": "0a:58:0a:58:00:02"}}),
    );
    let exe = lab.podnet("podnet");
    let r = lab.cmd(&exe, "ADD", "c1", Some(p), "eth0", &conf).ok();
    // The result: bridge, host veth, container interface; addresses on interface 2.
    assert_eq!(r["cniVersion"], "1.1.0");
    let ifaces = r["interfaces"].as_array().unwrap();
    assert_eq!(ifaces.len(), 3);
    assert_eq!(ifaces[0]["name"], "cni0");
    assert!(ifaces[1]["name"].as_str().unwrap().starts_with("veth"));
    assert_eq!(
        ifaces[2],
        json!({"name": "eth0", "mac": "0a:58:0a:58:00:02", "mtu": 1400, "sandbox": lab.pods[p].path()})
    );
    assert_eq!(
        r["ips"],
        json!([{"interface": 2, "address": "10.88.0.2/24", "gateway": "10.88.0.1"},
               {"interface": 2, "address": "fd88::2/64", "gateway": "fd88::1"}])
    );
    assert_eq!(
        r["routes"],
        json!([{"dst": "192.168.128.0/24"}, {"dst": "0.0.0.0/0", "gw": "10.88.0.1"}, {"dst": "::/0", "gw": "fd88::1"}])
    );

    // The pod namespace.
    let pod = &lab.pods[p];
    let eth0 = pod.link("eth0").expect("eth0 in the pod");
    assert_eq!(eth0["address"], "0a:58:0a:58:00:02");
    assert_eq!(eth0["mtu"], 1400);
    assert_eq!(eth0["operstate"], "UP");
    assert_eq!(pod.addrs("eth0"), ["10.88.0.2/24", "fd88::2/64"]);
    let routes = pod.ip_json(&["route", "show"]);
    let has = |dst: &str, gw: Option<&str>| {
        routes.as_array().unwrap().iter().any(|r| r["dst"] == dst && gw.is_none_or(|g| r["gateway"] == g))
    };
    assert!(has("default", Some("10.88.0.1")), "{routes}");
    assert!(has("192.168.128.0/24", Some("10.88.0.1")), "{routes}");
    let routes6 = pod.ip_json(&["-6", "route", "show"]);
    assert!(
        routes6.as_array().unwrap().iter().any(|r| r["dst"] == "default" && r["gateway"] == "fd88::1"),
        "{routes6}"
    );

    // The host namespace: the bridge with the gateways, the port, forwarding, masquerading.
    let host = &lab.host;
    assert_eq!(host.addrs("cni0"), ["10.88.0.1/24", "fd88::1/64"]);
    let veth = ifaces[1]["name"].as_str().unwrap();
    let port = host.link(veth).expect("host veth");
    assert_eq!(port["master"], "cni0");
    assert_eq!(port["mtu"], 1400);
    assert_eq!(host.sysctl("net.ipv4.ip_forward"), "1");
    assert_eq!(host.sysctl("net.ipv6.conf.all.forwarding"), "1");
    assert!(host.ruleset().contains("ip saddr 10.88.0.2 ip daddr != 10.88.0.0/24"));
    assert_eq!(
        lab.store("ds"),
        [("10.88.0.2".to_string(), "c1\r\neth0".to_string()), ("fd88::2".to_string(), "c1\r\neth0".to_string())]
    );

    // CHECK passes, and fails once an address is gone.
    let check = with_prev(&conf, &r);
    assert_eq!(lab.cmd(&exe, "CHECK", "c1", Some(p), "eth0", &check).ok(), Value::Null);
    lab.pods[p].ok(&["ip", "addr", "del", "fd88::2/64", "dev", "eth0"]);
    let e = lab.cmd(&exe, "CHECK", "c1", Some(p), "eth0", &check).err();
    assert_eq!(e["code"], 106);
    assert!(e["msg"].as_str().unwrap().contains("fd88::2/64"), "{e}");

    // DEL removes everything of the attachment; twice is fine, and so is a missing namespace.
    lab.cmd(&exe, "DEL", "c1", Some(p), "eth0", &check).ok();
    assert!(lab.pods[p].link("eth0").is_none());
    assert!(lab.host.link(veth).is_none());
    assert!(lab.store("ds").is_empty());
    assert!(!lab.host.ruleset().contains("10.88.0.2"));
    lab.cmd(&exe, "DEL", "c1", Some(p), "eth0", &check).ok();
    lab.cmd(&exe, "DEL", "c1", None, "eth0", &conf).ok();
    let gone = lab.exec_plugin(
        &exe,
        &lab.bin(),
        &[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_NETNS", "/run/netns/pn-cni-gone"),
            ("CNI_IFNAME", "eth0"),
        ],
        &conf,
    );
    gone.ok();
}

#[test]
fn pods_reach_each_other_and_themselves_through_hairpin() {
    if !privileged("pods_reach_each_other_and_themselves_through_hairpin") {
        return;
    }
    let mut lab = Lab::new();
    let (a, b) = (lab.pod(), lab.pod());
    let list = json!({
        "cniVersion": "1.0.0", "name": "hp",
        "plugins": [
            {"type": "podnet", "bridge": "cni0", "isGateway": true, "hairpinMode": true,
             "ipam": {"type": "host-local", "subnet": "10.89.0.0/24", "dataDir": lab.data_dir()}},
            {"type": "podnet-portmap", "capabilities": {"portMappings": true}}
        ],
        "runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}
    });
    let bin = lab.bin();
    let ra = lab.add_list(&bin, &list, "a", a, "eth0").expect("ADD a");
    let mut plain = list.clone();
    plain["plugins"].as_array_mut().unwrap().truncate(1);
    let rb = lab.add_list(&bin, &plain, "b", b, "eth0").expect("ADD b");
    assert_eq!(ra["ips"][0]["address"], "10.89.0.2/24");
    assert_eq!(rb["ips"][0]["address"], "10.89.0.3/24");
    assert!(lab.pods[a].ping("10.89.0.3"));
    assert!(lab.pods[b].ping("10.89.0.2"));
    assert!(lab.pods[a].ping("10.89.0.1"), "the bridge is the gateway");
    let veth = ra["interfaces"][1]["name"].as_str().unwrap();
    assert_eq!(lab.host.link(veth).unwrap()["linkinfo"]["info_slave_data"]["hairpin"], true);

    // Pod a reaches itself through its host port: out of its port and back in (hairpin).
    let server = serve(lab.pods[a].listen("0.0.0.0:80"), 1);
    let seen = lab.pods[a].fetch("10.89.0.1:8080").expect("hairpin connection");
    assert_eq!(server.join().unwrap().len(), 1);
    assert_eq!(seen, "10.89.0.1", "hairpin traffic is masqueraded to the bridge address");
    lab.del_list(&bin, &list, "a", Some(a), "eth0", Some(&ra));
    lab.del_list(&bin, &plain, "b", Some(b), "eth0", Some(&rb));
    assert!(lab.store("hp").is_empty());
    assert!(!lab.host.ruleset().contains("dnat"));
}

/// A bpffs mounted in the test's directory, unmounted when dropped.
struct Bpffs(std::path::PathBuf);

impl Bpffs {
    fn mount(lab: &Lab) -> Bpffs {
        let dir = lab.dir.path().join("bpf");
        podnet_bpf::ensure_bpffs(&dir).expect("mount a bpffs");
        Bpffs(dir)
    }
}

impl Drop for Bpffs {
    fn drop(&mut self) {
        let _ = run("umount", &["-l", &self.0.to_string_lossy()]);
    }
}

/// Packets `dev` has sent (`tx`) or received, as `ip -s link` counts them.
fn packets(ns: &Ns, dev: &str, dir: &str) -> u64 {
    let v = ns.ip_json(&["-s", "link", "show", "dev", dev]);
    v[0]["stats64"][dir]["packets"].as_u64().unwrap_or_else(|| panic!("no {dir} packets for {dev}: {v}"))
}

#[test]
fn same_node_redirect_skips_the_bridge_but_not_service_nat() {
    if !privileged("same_node_redirect_skips_the_bridge_but_not_service_nat") {
        return;
    }
    let mut lab = Lab::new();
    let bpffs = Bpffs::mount(&lab);
    let (a, b) = (lab.pod(), lab.pod());
    let conf = bridge_conf(
        &lab,
        "redir",
        json!({"sameNodeRedirect": true, "bpfPinDir": bpffs.0.join("node"), "hairpinMode": true}),
    );
    let exe = lab.podnet("podnet");
    // The pin directory does not exist yet: ADD makes it on the bpffs.
    let ra = lab.cmd(&exe, "ADD", "a", Some(a), "eth0", &conf).ok();
    let rb = lab.cmd(&exe, "ADD", "b", Some(b), "eth0", &conf).ok();
    let (veth_a, veth_b) =
        (ra["interfaces"][1]["name"].as_str().unwrap(), rb["interfaces"][1]["name"].as_str().unwrap());
    let index = |veth: &str| lab.host.link(veth).unwrap()["ifindex"].as_u64().unwrap() as u32;
    let redirect = podnet_bpf::LocalRedirect::open(&bpffs.0.join("node")).unwrap().expect("pinned by ADD");
    let (ip_a, ip_b) = ("10.88.0.2".parse().unwrap(), "10.88.0.3".parse().unwrap());
    assert_eq!(redirect.pod(ip_a).unwrap(), Some(index(veth_a)));
    assert_eq!(redirect.pod(ip_b).unwrap(), Some(index(veth_b)));

    // a → b: b's eth0 receives the packets, b's host-side veth (the bridge's port) never sends
    // them — they went from a's veth straight into b's.
    let server = serve(lab.pods[b].listen("0.0.0.0:80"), 30);
    assert!(lab.pods[a].ping("10.88.0.3"), "ARP and ICMP take the bridge");
    let (tx_before, rx_before) = (packets(&lab.host, veth_b, "tx"), packets(&lab.pods[b], "eth0", "rx"));
    for _ in 0..20 {
        assert_eq!(lab.pods[a].fetch("10.88.0.3:80").expect("a reaches b"), "10.88.0.2", "source kept");
    }
    let (tx_after, rx_after) = (packets(&lab.host, veth_b, "tx"), packets(&lab.pods[b], "eth0", "rx"));
    assert!(rx_after - rx_before >= 60, "b received the connections' packets: {rx_before} → {rx_after}");
    assert!(tx_after - tx_before < 10, "the bridge sent them to b: {tx_before} → {tx_after} on {veth_b}");

    // a → a Service address DNATed to b: b's replies are NATed, so they take the bridge, where
    // br_netfilter undoes the DNAT — a sees the Service address answer.
    lab.host.ok(&["sysctl", "-w", "net.bridge.bridge-nf-call-iptables=1"]);
    lab.host.ok(&["nft", "add", "table", "ip", "svc"]);
    lab.host.ok(&["nft", "add", "chain", "ip", "svc", "pre", "{ type nat hook prerouting priority dstnat; }"]);
    lab.host.ok(&["nft", "add rule ip svc pre ip daddr 10.96.0.10 tcp dport 8080 dnat to 10.88.0.3:80"]);
    for _ in 0..10 {
        assert_eq!(lab.pods[a].fetch("10.96.0.10:8080").expect("a reaches the Service"), "10.88.0.2");
    }
    drop(server);

    // DEL forgets the pod.
    lab.cmd(&exe, "DEL", "a", Some(a), "eth0", &with_prev(&conf, &ra)).ok();
    assert_eq!(redirect.pod(ip_a).unwrap(), None);
    assert_eq!(redirect.pod(ip_b).unwrap(), Some(index(veth_b)));
    lab.cmd(&exe, "DEL", "b", Some(b), "eth0", &with_prev(&conf, &rb)).ok();
    assert_eq!(redirect.pod(ip_b).unwrap(), None);
}

#[test]
fn ip_masq_reaches_an_outside_namespace() {
    if !privileged("ip_masq_reaches_an_outside_namespace") {
        return;
    }
    let mut lab = Lab::new();
    let out = outside(&lab.host);
    let (p, q) = (lab.pod(), lab.pod());
    let exe = lab.podnet("podnet");
    let masq = bridge_conf(&lab, "mq", json!({"ipMasq": true}));
    lab.cmd(&exe, "ADD", "p", Some(p), "eth0", &masq).ok();
    let server = serve(out.listen("0.0.0.0:9000"), 1);
    let seen = lab.pods[p].fetch("192.0.2.2:9000").expect("masqueraded connection");
    assert_eq!(seen, "192.0.2.1", "the outside sees the host's address");
    server.join().unwrap();

    // Without ipMasq the outside sees the pod's address and has no route back.
    let mut plain = bridge_conf(&lab, "mq", json!({}));
    plain["bridge"] = json!("cni0");
    lab.cmd(&exe, "ADD", "q", Some(q), "eth0", &plain).ok();
    assert!(lab.pods[q].fetch("192.0.2.2:9000").is_err());
    lab.cmd(&exe, "DEL", "p", Some(p), "eth0", &masq).ok();
    assert!(!lab.host.ruleset().contains("masquerade comment"));
}

#[test]
fn portmap_forwards_host_ports() {
    if !privileged("portmap_forwards_host_ports") {
        return;
    }
    let mut lab = Lab::new();
    let out = outside(&lab.host);
    let p = lab.pod();
    let list = json!({
        "cniVersion": "1.1.0", "name": "pm",
        "plugins": [
            {"type": "podnet", "isDefaultGateway": true, "ipMasq": true,
             "ipam": {"type": "host-local", "subnet": "10.90.0.0/24", "dataDir": lab.data_dir()}},
            {"type": "podnet-portmap", "capabilities": {"portMappings": true}, "snat": true}
        ],
        "runtimeConfig": {"portMappings": [
            {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
            {"hostPort": 8081, "containerPort": 80, "protocol": "tcp", "hostIP": "192.0.2.1"}
        ]}
    });
    let bin = lab.bin();
    let r = lab.add_list(&bin, &list, "web", p, "eth0").expect("ADD");
    assert_eq!(r["ips"][0]["address"], "10.90.0.2/24", "portmap passes the result on");
    let server = serve(lab.pods[p].listen("0.0.0.0:80"), 3);
    assert_eq!(out.fetch("192.0.2.1:8080").expect("from outside"), "192.0.2.2");
    assert_eq!(out.fetch("192.0.2.1:8081").expect("hostIP mapping"), "192.0.2.2");
    assert!(lab.host.fetch("127.0.0.1:8080").is_ok(), "localhost:hostPort");
    assert_eq!(server.join().unwrap().len(), 3);

    // CHECK through the chain, then DEL removes the rules.
    for conf in list["plugins"].as_array().unwrap() {
        let c = plugin_conf(&list, conf, Some(&r));
        lab.cmd(&bin.join(conf["type"].as_str().unwrap()), "CHECK", "web", Some(p), "eth0", &c).ok();
    }
    lab.del_list(&bin, &list, "web", Some(p), "eth0", Some(&r));
    let rules = lab.host.ruleset();
    assert!(!rules.contains("dnat to"), "{rules}");
    assert!(out.fetch("192.0.2.1:8080").is_err());
}

#[test]
fn bad_input_is_an_error_json_and_leaves_nothing_behind() {
    if !privileged("bad_input_is_an_error_json_and_leaves_nothing_behind") {
        return;
    }
    let mut lab = Lab::new();
    let p = lab.pod();
    let exe = lab.podnet("podnet");
    let conf = bridge_conf(&lab, "bad", json!({}));
    let code = |o: &Outcome| o.err()["code"].as_u64().unwrap();

    let raw = |stdin: &str, env: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new("ip");
        cmd.args(["netns", "exec", &lab.host.name]).arg(&exe).envs(env.iter().copied());
        let mut child = cmd.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).spawn().unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        let o = child.wait_with_output().unwrap();
        Outcome {
            code: o.status.code().unwrap(),
            stdout: String::from_utf8_lossy(&o.stdout).into(),
            stderr: String::new(),
        }
    };
    let pod_path = lab.pods[p].path();
    let env_ok =
        [("CNI_COMMAND", "ADD"), ("CNI_CONTAINERID", "c1"), ("CNI_NETNS", pod_path.as_str()), ("CNI_IFNAME", "eth0")];
    let e = raw("{\"cniVersion\": ", &env_ok).err();
    assert_eq!(e["code"], 6);
    assert!(e["msg"].as_str().unwrap().contains("malformed JSON"));
    let mut v = conf.clone();
    v["cniVersion"] = json!("0.1.0");
    let e = lab.cmd(&exe, "ADD", "c1", Some(p), "eth0", &v).err();
    assert_eq!(e["code"], 1);
    assert!(e["msg"].as_str().unwrap().contains("0.1.0"));
    let e = raw(&conf.to_string(), &env_ok[..3]).err();
    assert_eq!(e["code"], 4);
    assert!(e["msg"].as_str().unwrap().contains("CNI_IFNAME"));
    let e = lab.cmd(&exe, "ADD", "c1", Some(p), "this-name-is-too-long", &conf).err();
    assert_eq!(e["code"], 4);
    let e = lab.cmd(&exe, "ADD", "bad id!", Some(p), "eth0", &conf).err();
    assert_eq!(e["code"], 4);
    assert!(e["msg"].as_str().unwrap().contains("CNI_CONTAINERID"));
    let e = lab.cmd(&exe, "FROB", "c1", Some(p), "eth0", &conf).err();
    assert_eq!(e["code"], 4);
    let mut v = conf.clone();
    v["ipam"]["ranges"] = json!([[{"subnet": "10.88.0.5/24"}]]);
    let e = lab.cmd(&exe, "ADD", "c1", Some(p), "eth0", &v).err();
    assert_eq!(e["code"], 7);
    assert!(e["msg"].as_str().unwrap().contains("host bits"), "{e}");

    // Nothing of those was created.
    assert!(lab.host.link("cni0").is_none());
    assert!(lab.pods[p].link("eth0").is_none());

    // An interface name already in use in the pod.
    lab.pods[p].ok(&["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p"]);
    let e = lab.cmd(&exe, "ADD", "c1", Some(p), "eth0", &conf).err();
    assert_eq!(e["code"], 102);
    assert!(e["msg"].as_str().unwrap().contains("\"eth0\" already exists"), "{e}");
    assert!(lab.store("bad").is_empty());
    assert!(!lab.host.link_names().iter().any(|n| n.starts_with("veth")));

    // An exhausted range: the second pod gets nothing, and nothing is left half-configured.
    let q = lab.pod();
    let small = bridge_conf(
        &lab,
        "small",
        json!({"ipam": {"type": "host-local", "dataDir": lab.data_dir(),
        "ranges": [[{"subnet": "10.91.0.0/30"}]]}}),
    );
    lab.cmd(&exe, "ADD", "c2", Some(q), "net1", &small).ok();
    let r = lab.pod();
    let e = lab.cmd(&exe, "ADD", "c3", Some(r), "eth0", &small).err();
    assert_eq!(e["code"], 101);
    assert_eq!(e["msg"], "failed to allocate for range 0: no IP addresses available in range set: 10.91.0.1-10.91.0.2");
    assert!(lab.pods[r].link("eth0").is_none(), "no interface left in the pod");
    assert_eq!(lab.host.link_names().iter().filter(|n| n.starts_with("veth")).count(), 1, "only c2's veth");
    assert_eq!(lab.store("small").len(), 1);
    // The spec's STATUS says so too.
    let e = lab.cmd(&exe, "STATUS", "", None, "", &small).err();
    assert_eq!(e["code"], 50);

    // A missing network namespace on ADD: the container is unknown.
    let e = lab.exec_plugin(
        &exe,
        &lab.bin(),
        &[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c4"),
            ("CNI_NETNS", "/run/netns/pn-cni-absent"),
            ("CNI_IFNAME", "eth0"),
        ],
        &conf,
    );
    assert_eq!(code(&e), 3);
}

#[test]
fn concurrent_adds_never_hand_out_an_address_twice() {
    if !privileged("concurrent_adds_never_hand_out_an_address_twice") {
        return;
    }
    let mut lab = Lab::new();
    let pods: Vec<usize> = (0..16).map(|_| lab.pod()).collect();
    let exe = lab.podnet("podnet");
    let conf = bridge_conf(&lab, "many", json!({"isGateway": true}));
    let results: Vec<Value> = std::thread::scope(|s| {
        let handles: Vec<_> = pods
            .iter()
            .map(|&p| {
                let (lab, exe, conf) = (&lab, &exe, &conf);
                s.spawn(move || lab.cmd(exe, "ADD", &format!("c{p}"), Some(p), "eth0", conf).ok())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ips: HashSet<String> = results.iter().map(|r| r["ips"][0]["address"].as_str().unwrap().to_string()).collect();
    assert_eq!(ips.len(), pods.len(), "every pod has its own address");
    assert_eq!(lab.store("many").len(), pods.len());
    assert!(lab.pods[pods[0]].ping(results[15]["ips"][0]["address"].as_str().unwrap().split('/').next().unwrap()));
    // Concurrent DELs of half while the other half is added again under new IDs.
    std::thread::scope(|s| {
        for (i, &p) in pods.iter().enumerate() {
            let (lab, exe, conf) = (&lab, &exe, &conf);
            s.spawn(move || lab.cmd(exe, "DEL", &format!("c{p}"), Some(p), "eth0", conf).ok());
            if i % 2 == 0 {
                s.spawn(move || lab.cmd(exe, "ADD", &format!("d{p}"), Some(p), "eth1", conf).ok());
            }
        }
    });
    let store = lab.store("many");
    assert_eq!(store.len(), pods.len() / 2);
    assert!(store.iter().all(|(_, c)| c.starts_with('d') && c.ends_with("\r\neth1")));
}

#[test]
fn gc_status_version_and_plugin_names() {
    if !privileged("gc_status_version_and_plugin_names") {
        return;
    }
    let mut lab = Lab::new();
    let pods: Vec<usize> = (0..3).map(|_| lab.pod()).collect();
    // Installed as `podnet-cni`: no CNI_COMMAND needed to be the plugin.
    let exe = lab.podnet("podnet-cni");
    let conf = bridge_conf(&lab, "gc", json!({"ipMasq": true}));
    for &p in &pods {
        lab.cmd(&exe, "ADD", &format!("c{p}"), Some(p), "eth0", &conf).ok();
    }
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": format!("c{}", pods[1]), "ifname": "eth0"}]);
    lab.cmd(&exe, "GC", "", None, "", &gc).ok();
    let store = lab.store("gc");
    assert_eq!(store.len(), 1);
    assert_eq!(store[0].1, format!("c{}\r\neth0", pods[1]));
    assert_eq!(lab.host.ruleset().matches("masquerade comment").count(), 1);
    // GC needs 1.1.0.
    let mut old = gc.clone();
    old["cniVersion"] = json!("1.0.0");
    assert_eq!(lab.cmd(&exe, "GC", "", None, "", &old).err()["code"], 1);
    lab.cmd(&exe, "STATUS", "", None, "", &conf).ok();
    let v = lab.cmd(&exe, "VERSION", "", None, "", &json!({"cniVersion": "1.0.0"})).ok();
    assert_eq!(v["cniVersion"], "1.0.0");
    assert!(v["supportedVersions"].as_array().unwrap().contains(&json!("1.1.0")));

    // The loopback plugin, under its podnet name.
    let lo = lab.podnet("podnet-loopback");
    let p = lab.pod();
    lab.pods[p].ok(&["ip", "link", "set", "lo", "down"]);
    let r = lab
        .cmd(&lo, "ADD", "l1", Some(p), "lo", &json!({"cniVersion": "1.0.0", "name": "lo", "type": "loopback"}))
        .ok();
    assert_eq!(r["interfaces"][0]["name"], "lo");
    assert_eq!(r["ips"][0]["address"], "127.0.0.1/8");
    assert!(lab.pods[p].ping("127.0.0.1"));
    lab.cmd(&lo, "DEL", "l1", Some(p), "lo", &json!({"cniVersion": "1.0.0", "name": "lo", "type": "loopback"})).ok();
    assert!(!lab.pods[p].ping("127.0.0.1"));
}
