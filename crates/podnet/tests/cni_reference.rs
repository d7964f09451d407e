//! podnet side by side with the reference plugins (Debian's containernetworking-plugins in
//! /usr/lib/cni: `bridge`, `host-local`, `portmap`) on the same configurations: the results and
//! the state left in the pod and host namespaces are compared; IPAM state written by one is read,
//! continued and released by the other. Each run has its own host and pod namespaces.

mod cni_support;

use cni_support::*;
use serde_json::{json, Value};

/// The reference plugins speak CNI up to 1.0.0.
const VERSION: &str = "1.0.0";

fn conf(t: &str, name: &str, data_dir: &std::path::Path, extra: &Value) -> Value {
    let mut c = json!({"cniVersion": VERSION, "name": name, "type": t, "bridge": "cni0"});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c["ipam"]["dataDir"] = json!(data_dir);
    c
}

/// A result with what legitimately differs between runs (MACs, the random veth name, the
/// namespace path) blanked out.
fn normalized_result(r: &Value) -> Value {
    let mut r = r.clone();
    for (i, iface) in r["interfaces"].as_array_mut().unwrap().iter_mut().enumerate() {
        iface["mac"] = json!("<mac>");
        if i == 1 {
            iface["name"] = json!("<veth>");
        }
        if iface.get("sandbox").is_some() {
            iface["sandbox"] = json!("<netns>");
        }
    }
    r
}

/// The state of a pod's namespace that both plugins should leave alike.
fn pod_state(ns: &Ns) -> Value {
    let Some(eth0) = ns.link("eth0") else { return json!({"eth0": null}) };
    let routes = |fam: &str| -> Vec<Value> {
        let mut v: Vec<Value> = ns
            .ip_json(&[fam, "route", "show", "table", "main"])
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["dst"] != "fe80::/64")
            .map(|r| {
                json!({"dst": r["dst"], "gateway": r["gateway"], "dev": r["dev"], "scope": r["scope"],
                            "protocol": r["protocol"], "metric": r["metric"]})
            })
            .collect();
        v.sort_by_key(|r| r.to_string());
        v
    };
    json!({
        "eth0": {"mtu": eth0["mtu"], "operstate": eth0["operstate"], "kind": eth0["linkinfo"]["info_kind"],
                 "addrs": ns.addrs("eth0")},
        "routes4": routes("-4"), "routes6": routes("-6"),
    })
}

/// The state of the host namespace that both plugins should leave alike.
fn host_state(ns: &Ns) -> Value {
    let bridge = ns.link("cni0");
    let ports: Vec<Value> = ns
        .ip_json(&["-d", "link", "show", "type", "veth"])
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            json!({"master": l["master"], "mtu": l["mtu"], "operstate": l["operstate"],
                        "hairpin": l["linkinfo"]["info_slave_data"]["hairpin"]})
        })
        .collect();
    json!({
        "bridge": bridge.as_ref().map(|b| json!({"mtu": b["mtu"], "operstate": b["operstate"],
            "promisc": b["promiscuity"], "vlan_filtering": b["linkinfo"]["info_data"]["vlan_filtering"],
            "addrs": ns.addrs("cni0")})),
        "ports": ports,
        "ip_forward": ns.sysctl("net.ipv4.ip_forward"),
        "forwarding6": ns.sysctl("net.ipv6.conf.all.forwarding"),
    })
}

/// Configurations run through both plugins, and whether the two pods reach each other.
fn configurations() -> Vec<(&'static str, Value, bool)> {
    vec![
        (
            "gateway, masquerade, MTU, dual-stack, routes",
            json!({"isGateway": true, "isDefaultGateway": true, "ipMasq": true, "mtu": 1400,
                   "ipam": {"type": "host-local",
                            "ranges": [[{"subnet": "10.60.0.0/24"}], [{"subnet": "fd60::/64"}]],
                            "routes": [{"dst": "192.168.60.0/24"}]}}),
            true,
        ),
        (
            "layer 2 bridge, host-local with rangeStart/rangeEnd/gateway and a default route",
            json!({"ipam": {"type": "host-local",
                            "ranges": [[{"subnet": "10.61.0.0/16", "rangeStart": "10.61.5.10",
                                         "rangeEnd": "10.61.5.20", "gateway": "10.61.0.254"}]],
                            "routes": [{"dst": "0.0.0.0/0", "gw": "10.61.0.254"}]}}),
            true,
        ),
        (
            "hairpin, gateway without default route, two ranges in one set",
            json!({"isGateway": true, "hairpinMode": true, "forceAddress": true,
                   "ipam": {"type": "host-local",
                            "ranges": [[{"subnet": "10.62.0.0/30"}, {"subnet": "10.62.1.0/24"}]]}}),
            false,
        ),
        ("promiscuous bridge, no IPAM", json!({"promiscMode": true}), false),
    ]
}

#[test]
fn results_and_state_match_the_reference() {
    let test = "results_and_state_match_the_reference";
    if !privileged(test) || !reference_plugins(test) {
        return;
    }
    let mut differences = Vec::new();
    for (what, extra, ping) in configurations() {
        let mut runs = Vec::new();
        for (t, reference) in [("bridge", true), ("podnet", false)] {
            let mut lab = Lab::new();
            let pods: Vec<usize> = (0..2).map(|_| lab.pod()).collect();
            let c = conf(t, "cmp", &lab.data_dir(), &extra);
            let exe = if reference { lab.reference(t) } else { lab.podnet(t) };
            let mut results = Vec::new();
            let mut raw = Vec::new();
            for (i, &p) in pods.iter().enumerate() {
                let r = lab.cmd(&exe, "ADD", &format!("c{i}"), Some(p), "eth0", &c).ok();
                results.push(normalized_result(&r));
                raw.push(r);
            }
            if ping {
                assert!(
                    lab.pods[pods[0]].ping(lab.pods[pods[1]].addrs("eth0")[0].split('/').next().unwrap()),
                    "{t}: {what}"
                );
            }
            let state = json!({
                "results": results,
                "pod": pod_state(&lab.pods[pods[0]]),
                "host": host_state(&lab.host),
                "store": lab.store("cmp"),
            });
            // CHECK with the ADD result (the reference's CHECK fails for IPAM routes without a
            // gateway, which its ADD installs through the default gateway: only podnet's is
            // asserted), then DEL.
            let check = lab.cmd(&exe, "CHECK", "c0", Some(pods[0]), "eth0", &with_prev(&c, &raw[0]));
            if !reference {
                check.ok();
            }
            for (i, &p) in pods.iter().enumerate() {
                lab.cmd(&exe, "DEL", &format!("c{i}"), Some(p), "eth0", &c).ok();
            }
            let after =
                json!({"pod": pod_state(&lab.pods[pods[0]]), "host": host_state(&lab.host), "store": lab.store("cmp")});
            runs.push((state, after));
        }
        let (reference, podnet) = (&runs[0], &runs[1]);
        if reference.0 != podnet.0 {
            differences.push(format!("{what}: after ADD\n  reference: {}\n  podnet:    {}", reference.0, podnet.0));
        }
        if reference.1 != podnet.1 {
            differences.push(format!("{what}: after DEL\n  reference: {}\n  podnet:    {}", reference.1, podnet.1));
        }
    }
    assert!(differences.is_empty(), "podnet differs from the reference plugins:\n{}", differences.join("\n"));
}

#[test]
fn ipam_state_is_interchangeable_with_host_local() {
    let test = "ipam_state_is_interchangeable_with_host_local";
    if !privileged(test) || !reference_plugins(test) {
        return;
    }
    let mut lab = Lab::new();
    let pods: Vec<usize> = (0..5).map(|_| lab.pod()).collect();
    let extra = json!({"isGateway": true, "ipam": {"type": "host-local", "subnet": "10.63.0.0/24"}});
    let refc = conf("bridge", "xchg", &lab.data_dir(), &extra);
    let pnc = conf("podnet", "xchg", &lab.data_dir(), &extra);
    let (refx, pnx) = (lab.reference("bridge"), lab.podnet("podnet"));
    let addr = |r: &Value| r["ips"][0]["address"].as_str().unwrap().to_string();

    // Allocate alternately: each continues where the other left off (last_reserved_ip.0).
    assert_eq!(addr(&lab.cmd(&refx, "ADD", "r0", Some(pods[0]), "eth0", &refc).ok()), "10.63.0.2/24");
    assert_eq!(addr(&lab.cmd(&pnx, "ADD", "p1", Some(pods[1]), "eth0", &pnc).ok()), "10.63.0.3/24");
    assert_eq!(addr(&lab.cmd(&refx, "ADD", "r2", Some(pods[2]), "eth0", &refc).ok()), "10.63.0.4/24");
    assert_eq!(
        lab.store("xchg"),
        [
            ("10.63.0.2".to_string(), "r0\r\neth0".to_string()),
            ("10.63.0.3".to_string(), "p1\r\neth0".to_string()),
            ("10.63.0.4".to_string(), "r2\r\neth0".to_string())
        ]
    );
    assert!(lab.pods[pods[1]].ping("10.63.0.2"), "pods of both plugins share the bridge");

    // Release with the other plugin.
    lab.cmd(&pnx, "DEL", "r0", Some(pods[0]), "eth0", &pnc).ok();
    lab.cmd(&refx, "DEL", "p1", Some(pods[1]), "eth0", &refc).ok();
    assert_eq!(lab.store("xchg"), [("10.63.0.4".to_string(), "r2\r\neth0".to_string())]);
    assert!(lab.pods[pods[0]].link("eth0").is_none() && lab.pods[pods[1]].link("eth0").is_none());
    assert_eq!(addr(&lab.cmd(&pnx, "ADD", "p3", Some(pods[3]), "eth0", &pnc).ok()), "10.63.0.5/24");
    // A reservation held by the other plugin is not handed out again, nor allocated twice.
    let e = lab.cmd(&pnx, "ADD", "r2", Some(pods[4]), "eth0", &pnc).err();
    assert!(e["msg"].as_str().unwrap().contains("10.63.0.4 has been allocated to r2, duplicate allocation"), "{e}");
    assert!(lab.pods[pods[4]].link("eth0").is_none(), "the failed ADD left nothing");
    lab.cmd(&pnx, "DEL", "r2", Some(pods[2]), "eth0", &pnc).ok();
    lab.cmd(&refx, "DEL", "p3", Some(pods[3]), "eth0", &refc).ok();
    assert!(lab.store("xchg").is_empty());
}

#[test]
fn host_local_results_match_the_reference() {
    let test = "host_local_results_match_the_reference";
    if !privileged(test) || !reference_plugins(test) {
        return;
    }
    let mut lab = Lab::new();
    let p = lab.pod();
    let resolv = lab.dir.path().join("resolv.conf");
    std::fs::write(
        &resolv,
        "nameserver 10.96.0.10\nsearch default.svc.cluster.local svc.cluster.local\noptions ndots:5\n",
    )
    .unwrap();
    let ipam = json!({"type": "host-local", "resolvConf": resolv,
        "ranges": [[{"subnet": "10.64.0.0/24", "rangeStart": "10.64.0.50"}], [{"subnet": "fd64::/120"}]],
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0", "gw": "fd64::1"}]});
    let mut out = Vec::new();
    for (exe, dir) in [(lab.reference("host-local"), "ref"), (lab.podnet("podnet-host-local"), "pn")] {
        let mut c = json!({"cniVersion": VERSION, "name": "hl", "type": "host-local", "ipam": ipam.clone()});
        c["ipam"]["dataDir"] = json!(lab.dir.path().join(dir));
        let a = lab.cmd(&exe, "ADD", "c1", Some(p), "eth0", &c).ok();
        let b = lab.cmd(&exe, "ADD", "c2", Some(p), "eth0", &c).ok();
        let dup = lab.cmd(&exe, "ADD", "c1", Some(p), "eth0", &c).err();
        lab.cmd(&exe, "DEL", "c1", None, "eth0", &c).ok();
        lab.cmd(&exe, "DEL", "c1", None, "eth0", &c).ok();
        let mut files: Vec<String> = std::fs::read_dir(lab.dir.path().join(dir).join("hl"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        out.push((a, b, dup["msg"].as_str().unwrap().to_string(), files));
    }
    assert_eq!(out[0].0, out[1].0, "first ADD");
    assert_eq!(out[0].1, out[1].1, "second ADD");
    assert_eq!(out[0].3, out[1].3, "files left");
    assert!(out[1].2.contains("duplicate allocation is not allowed"), "{}", out[1].2);
}

#[test]
fn portmap_forwards_like_the_reference() {
    let test = "portmap_forwards_like_the_reference";
    if !privileged(test) || !reference_plugins(test) {
        return;
    }
    for (bridge, portmap, reference) in [("bridge", "portmap", true), ("podnet", "podnet-portmap", false)] {
        let mut lab = Lab::new();
        let out = outside(&lab.host);
        let p = lab.pod();
        let list = json!({
            "cniVersion": VERSION, "name": "pmr",
            "plugins": [
                {"type": bridge, "isDefaultGateway": true, "ipMasq": true,
                 "ipam": {"type": "host-local", "subnet": "10.65.0.0/24", "dataDir": lab.data_dir()}},
                {"type": portmap, "capabilities": {"portMappings": true}}
            ],
            "runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}
        });
        let bin = if reference { std::path::PathBuf::from(REFERENCE_DIR) } else { lab.bin() };
        let r = lab.add_list(&bin, &list, "web", p, "eth0").unwrap_or_else(|o| panic!("{bridge}: {o:?}"));
        let server = serve(lab.pods[p].listen("0.0.0.0:80"), 1);
        assert_eq!(out.fetch("192.0.2.1:8080").unwrap_or_else(|e| panic!("{bridge}: {e}")), "192.0.2.2", "{bridge}");
        // The pod reaches the outside masqueraded, with either plugin.
        let srv = serve(out.listen("0.0.0.0:9000"), 1);
        assert_eq!(lab.pods[p].fetch("192.0.2.2:9000").unwrap(), "192.0.2.1", "{bridge}");
        srv.join().unwrap();
        lab.del_list(&bin, &list, "web", Some(p), "eth0", Some(&r));
        assert_eq!(server.join().unwrap().len(), 1);
        assert!(out.fetch("192.0.2.1:8080").is_err(), "{bridge}: the mapping is gone after DEL");
    }
}

#[test]
fn other_ipam_plugins_are_delegated_to() {
    let test = "other_ipam_plugins_are_delegated_to";
    if !privileged(test) || !reference_plugins(test) {
        return;
    }
    let mut lab = Lab::new();
    let p = lab.pod();
    let c = json!({"cniVersion": VERSION, "name": "st", "type": "podnet", "isGateway": true,
        "ipam": {"type": "static", "addresses": [{"address": "10.66.0.5/24", "gateway": "10.66.0.1"}],
                 "routes": [{"dst": "0.0.0.0/0"}]}});
    let exe = lab.podnet("podnet");
    let cni_path = std::path::PathBuf::from(format!("{}:{REFERENCE_DIR}", lab.bin().display()));
    let pod = lab.pods[p].path();
    let env = |cmd: &'static str| {
        vec![("CNI_COMMAND", cmd), ("CNI_CONTAINERID", "s1"), ("CNI_NETNS", pod.as_str()), ("CNI_IFNAME", "eth0")]
    };
    let r = lab.exec_plugin(&exe, &cni_path, &env("ADD"), &c).ok();
    assert_eq!(r["ips"][0]["address"], "10.66.0.5/24");
    assert_eq!(lab.pods[p].addrs("eth0"), ["10.66.0.5/24"]);
    assert!(lab.pods[p].ping("10.66.0.1"));
    // An error of the delegate is passed on with its code.
    let mut bad = c.clone();
    bad["ipam"]["addresses"] = json!([{"address": "not-an-address"}]);
    let q = lab.pod();
    let qpath = lab.pods[q].path();
    let e = lab
        .exec_plugin(
            &exe,
            &cni_path,
            &[("CNI_COMMAND", "ADD"), ("CNI_CONTAINERID", "s2"), ("CNI_NETNS", qpath.as_str()), ("CNI_IFNAME", "eth0")],
            &bad,
        )
        .err();
    assert!(e["msg"].as_str().unwrap().contains("not-an-address"), "{e}");
    assert!(lab.pods[q].link("eth0").is_none(), "the failed ADD left nothing");
    lab.exec_plugin(&exe, &cni_path, &env("DEL"), &c).ok();
    assert!(lab.pods[p].link("eth0").is_none());
}
