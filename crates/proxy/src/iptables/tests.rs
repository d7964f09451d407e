//! Unit tests of the rendering against kube-proxy's output for the same services: the exact
//! ruleset of a small cluster, and the rules of each feature (probabilities, affinity, traffic
//! policies, no endpoints, hairpin, firewall, partial syncs, IPv6).

use std::collections::BTreeSet;
use std::time::Duration;

use super::*;
use crate::model::{Endpoint, ServicePortName};

fn id(ns: &str, name: &str, port: &str, protocol: Protocol) -> ServicePortName {
    ServicePortName { namespace: ns.into(), name: name.into(), port: port.into(), protocol }
}

fn ep(ip: &str, port: u16, local: bool) -> Endpoint {
    Endpoint { ip: ip.parse().unwrap(), port, node_name: None, ready: true, serving: true, terminating: false, local }
}

fn port(id: ServicePortName, cluster_ip: &str, port: u16, endpoints: Vec<Endpoint>) -> ServicePort {
    ServicePort::cluster_ip(id, cluster_ip.parse().unwrap(), port, endpoints)
}

fn node() -> NodeContext {
    NodeContext {
        name: "node1".into(),
        addresses: vec!["192.168.0.11".parse().unwrap()],
        cluster_cidrs: vec!["10.32.0.0/12".parse().unwrap()],
    }
}

/// Seed 003's service: `default/clusterip-service`, three endpoints.
fn seed_service() -> ServicePort {
    port(
        id("default", "clusterip-service", "", Protocol::Tcp),
        "10.100.100.100",
        80,
        vec![ep("10.44.0.2", 80, false), ep("10.36.0.1", 80, false), ep("10.44.0.1", 80, true)],
    )
}

fn full(ports: &[ServicePort]) -> String {
    render(ports, &node(), &None)
}

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

fn assert_has(text: &str, line: &str) {
    assert!(text.lines().any(|l| l == line), "missing line:\n{line}\nin:\n{text}");
}

fn assert_lacks(text: &str, needle: &str) {
    assert!(!text.contains(needle), "unexpected {needle:?} in:\n{text}");
}

#[test]
fn a_cluster_ip_and_node_port_service_exactly_as_kube_proxy() {
    let mut sp = seed_service();
    sp.node_port = Some(30080);
    let text = full(&[sp]);
    let expected = r#"*filter
:KUBE-SERVICES - [0:0]
:KUBE-EXTERNAL-SERVICES - [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
:KUBE-FIREWALL - [0:0]
-I INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES
-I FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES
-I INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS
-I FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-I OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-I FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
-I INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
-I OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
-I FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
-I INPUT -j KUBE-FIREWALL
-I OUTPUT -j KUBE-FIREWALL
-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
COMMIT
*nat
:KUBE-SERVICES - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-EXT-KUSV3H3OUX7H3MDQ - [0:0]
:KUBE-SVC-KUSV3H3OUX7H3MDQ - [0:0]
:KUBE-SEP-KPNE4OMUFKEDG6YL - [0:0]
:KUBE-SEP-HRLSFD7UJD73STE6 - [0:0]
:KUBE-SEP-KJJCEWDGN43ZNMPN - [0:0]
-I OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-I PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-I POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
-A KUBE-SERVICES -m comment --comment "default/clusterip-service cluster IP" -m tcp -p tcp -d 10.100.100.100 --dport 80 -j KUBE-SVC-KUSV3H3OUX7H3MDQ
-A KUBE-NODEPORTS -m comment --comment "default/clusterip-service" -m tcp -p tcp --dport 30080 -j KUBE-EXT-KUSV3H3OUX7H3MDQ
-A KUBE-SVC-KUSV3H3OUX7H3MDQ -m comment --comment "default/clusterip-service cluster IP" -m tcp -p tcp -d 10.100.100.100 --dport 80 ! -s 10.32.0.0/12 -j KUBE-MARK-MASQ
-A KUBE-EXT-KUSV3H3OUX7H3MDQ -m comment --comment "masquerade traffic for default/clusterip-service external destinations" -j KUBE-MARK-MASQ
-A KUBE-EXT-KUSV3H3OUX7H3MDQ -j KUBE-SVC-KUSV3H3OUX7H3MDQ
-A KUBE-SVC-KUSV3H3OUX7H3MDQ -m comment --comment "default/clusterip-service -> 10.36.0.1:80" -m statistic --mode random --probability 0.3333333333 -j KUBE-SEP-KPNE4OMUFKEDG6YL
-A KUBE-SVC-KUSV3H3OUX7H3MDQ -m comment --comment "default/clusterip-service -> 10.44.0.1:80" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-HRLSFD7UJD73STE6
-A KUBE-SVC-KUSV3H3OUX7H3MDQ -m comment --comment "default/clusterip-service -> 10.44.0.2:80" -j KUBE-SEP-KJJCEWDGN43ZNMPN
-A KUBE-SEP-KPNE4OMUFKEDG6YL -m comment --comment "default/clusterip-service" -s 10.36.0.1 -j KUBE-MARK-MASQ
-A KUBE-SEP-KPNE4OMUFKEDG6YL -m comment --comment "default/clusterip-service" -m tcp -p tcp -j DNAT --to-destination 10.36.0.1:80
-A KUBE-SEP-HRLSFD7UJD73STE6 -m comment --comment "default/clusterip-service" -s 10.44.0.1 -j KUBE-MARK-MASQ
-A KUBE-SEP-HRLSFD7UJD73STE6 -m comment --comment "default/clusterip-service" -m tcp -p tcp -j DNAT --to-destination 10.44.0.1:80
-A KUBE-SEP-KJJCEWDGN43ZNMPN -m comment --comment "default/clusterip-service" -s 10.44.0.2 -j KUBE-MARK-MASQ
-A KUBE-SEP-KJJCEWDGN43ZNMPN -m comment --comment "default/clusterip-service" -m tcp -p tcp -j DNAT --to-destination 10.44.0.2:80
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
COMMIT
"#;
    assert_eq!(lines(&text), lines(expected));
}

#[test]
fn probabilities_are_one_over_the_remaining_endpoints() {
    let eps = (1..=5).map(|i| ep(&format!("10.244.1.{i}"), 8080, false)).collect();
    let text = full(&[port(id("ns", "web", "http", Protocol::Tcp), "10.96.0.5", 80, eps)]);
    let svc = names::svc_chain(&id("ns", "web", "http", Protocol::Tcp));
    let probabilities: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with(&format!("-A {svc} ")) && l.contains("-> "))
        .map(|l| l.split("--probability ").nth(1).map_or("(last)", |p| p.split(' ').next().unwrap()))
        .collect();
    assert_eq!(probabilities, ["0.2000000000", "0.2500000000", "0.3333333333", "0.5000000000", "(last)"]);
    assert_has(
        &text,
        &format!(
            "-A {svc} -m comment --comment \"ns/web:http -> 10.244.1.5:8080\" -j {}",
            names::sep_chain(&id("ns", "web", "http", Protocol::Tcp), "10.244.1.5:8080")
        ),
    );
}

#[test]
fn client_ip_affinity_checks_recent_lists_first() {
    let mut sp = seed_service();
    sp.affinity = Some(Duration::from_secs(10800));
    let text = full(&[sp]);
    let svc: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("-A KUBE-SVC-KUSV3H3OUX7H3MDQ -m comment --comment \"default/clusterip-service ->"))
        .collect();
    assert_eq!(
        svc,
        [
            "-A KUBE-SVC-KUSV3H3OUX7H3MDQ -m comment --comment \"default/clusterip-service -> 10.36.0.1:80\" -m recent --name KUBE-SEP-KPNE4OMUFKEDG6YL --rcheck --seconds 10800 --reap -j KUBE-SEP-KPNE4OMUFKEDG6YL",
            "-A KUBE-SVC-KUSV3H3OUX7H3MDQ -m comment --comment \"default/clusterip-service -> 10.44.0.1:80\" -m recent --name KUBE-SEP-HRLSFD7UJD73STE6 --rcheck --seconds 10800 --reap -j KUBE-SEP-HRLSFD7UJD73STE6",
            "-A KUBE-SVC-KUSV3H3OUX7H3MDQ -m comment --comment \"default/clusterip-service -> 10.44.0.2:80\" -m recent --name KUBE-SEP-KJJCEWDGN43ZNMPN --rcheck --seconds 10800 --reap -j KUBE-SEP-KJJCEWDGN43ZNMPN",
            "-A KUBE-SVC-KUSV3H3OUX7H3MDQ -m comment --comment \"default/clusterip-service -> 10.36.0.1:80\" -m statistic --mode random --probability 0.3333333333 -j KUBE-SEP-KPNE4OMUFKEDG6YL",
            "-A KUBE-SVC-KUSV3H3OUX7H3MDQ -m comment --comment \"default/clusterip-service -> 10.44.0.1:80\" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-HRLSFD7UJD73STE6",
            "-A KUBE-SVC-KUSV3H3OUX7H3MDQ -m comment --comment \"default/clusterip-service -> 10.44.0.2:80\" -j KUBE-SEP-KJJCEWDGN43ZNMPN",
        ]
    );
    assert_has(&text, "-A KUBE-SEP-HRLSFD7UJD73STE6 -m comment --comment \"default/clusterip-service\" -m recent --name KUBE-SEP-HRLSFD7UJD73STE6 --set -m tcp -p tcp -j DNAT --to-destination 10.44.0.1:80");
}

#[test]
fn hairpin_masquerades_an_endpoint_reaching_itself() {
    let text = full(&[seed_service()]);
    for ip in ["10.36.0.1", "10.44.0.1", "10.44.0.2"] {
        assert!(
            text.lines().any(|l| l.starts_with("-A KUBE-SEP-") && l.ends_with(&format!("-s {ip} -j KUBE-MARK-MASQ"))),
            "{ip}"
        );
    }
}

#[test]
fn external_traffic_policy_local_keeps_the_source() {
    let mut sp = seed_service();
    sp.node_port = Some(30080);
    sp.external_local = true;
    sp.health_check_node_port = Some(32000);
    let text = full(&[sp]);
    let ext = "KUBE-EXT-KUSV3H3OUX7H3MDQ";
    let ext_rules: Vec<&str> = text.lines().filter(|l| l.starts_with(&format!("-A {ext} "))).collect();
    assert_eq!(
        ext_rules,
        [
            "-A KUBE-EXT-KUSV3H3OUX7H3MDQ -m comment --comment \"pod traffic for default/clusterip-service external destinations\" -s 10.32.0.0/12 -j KUBE-SVC-KUSV3H3OUX7H3MDQ",
            "-A KUBE-EXT-KUSV3H3OUX7H3MDQ -m comment --comment \"masquerade LOCAL traffic for default/clusterip-service external destinations\" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ",
            "-A KUBE-EXT-KUSV3H3OUX7H3MDQ -m comment --comment \"route LOCAL traffic for default/clusterip-service external destinations\" -m addrtype --src-type LOCAL -j KUBE-SVC-KUSV3H3OUX7H3MDQ",
            "-A KUBE-EXT-KUSV3H3OUX7H3MDQ -j KUBE-SVL-KUSV3H3OUX7H3MDQ",
        ]
    );
    // The Local chain has only the local endpoint, taken for sure; no masquerade on the way.
    let svl: Vec<&str> = text.lines().filter(|l| l.starts_with("-A KUBE-SVL-KUSV3H3OUX7H3MDQ ")).collect();
    assert_eq!(svl, ["-A KUBE-SVL-KUSV3H3OUX7H3MDQ -m comment --comment \"default/clusterip-service -> 10.44.0.1:80\" -j KUBE-SEP-HRLSFD7UJD73STE6"]);
    assert_lacks(&text, "masquerade traffic for");
    assert_has(&text, "-A KUBE-NODEPORTS -m comment --comment \"default/clusterip-service health check node port\" -m tcp -p tcp --dport 32000 -j ACCEPT");
}

#[test]
fn local_policies_without_local_endpoints_drop() {
    let mut sp = seed_service();
    sp.endpoints.retain(|e| !e.local);
    sp.node_port = Some(30080);
    sp.external_local = true;
    let text = full(&[sp.clone()]);
    assert_has(&text, "-A KUBE-EXTERNAL-SERVICES -m comment --comment \"default/clusterip-service has no local endpoints\" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 30080 -j DROP");
    // The short-circuit rules stay; the final jump to the (empty) Local chain goes.
    assert_has(&text, ":KUBE-EXT-KUSV3H3OUX7H3MDQ - [0:0]");
    assert_lacks(&text, "KUBE-SVL-");
    sp.internal_local = true;
    let text = full(&[sp]);
    assert_has(&text, "-A KUBE-SERVICES -m comment --comment \"default/clusterip-service has no local endpoints\" -m tcp -p tcp -d 10.100.100.100 --dport 80 -j DROP");
}

#[test]
fn no_endpoints_rejects_in_the_filter_table() {
    let mut sp = port(id("default", "empty", "", Protocol::Tcp), "10.96.0.9", 80, vec![]);
    sp.node_port = Some(30090);
    sp.external_ips = vec!["192.0.2.10".parse().unwrap()];
    sp.load_balancer_ips = vec!["198.51.100.10".parse().unwrap()];
    let text = full(&[sp]);
    for line in [
        "-A KUBE-SERVICES -m comment --comment \"default/empty has no endpoints\" -m tcp -p tcp -d 10.96.0.9 --dport 80 -j REJECT",
        "-A KUBE-EXTERNAL-SERVICES -m comment --comment \"default/empty has no endpoints\" -m tcp -p tcp -d 192.0.2.10 --dport 80 -j REJECT",
        "-A KUBE-EXTERNAL-SERVICES -m comment --comment \"default/empty has no endpoints\" -m tcp -p tcp -d 198.51.100.10 --dport 80 -j REJECT",
        "-A KUBE-EXTERNAL-SERVICES -m comment --comment \"default/empty has no endpoints\" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 30090 -j REJECT",
    ] {
        assert_has(&text, line);
    }
    let nat = text.split("*nat").nth(1).unwrap();
    assert_lacks(nat, "default/empty");
}

#[test]
fn terminating_endpoints_only_when_none_is_ready() {
    let mut sp = seed_service();
    for e in &mut sp.endpoints {
        e.ready = e.ip.to_string() == "10.44.0.2";
        e.terminating = !e.ready;
    }
    let text = full(&[sp.clone()]);
    assert_eq!(text.lines().filter(|l| l.starts_with(":KUBE-SEP-")).count(), 1);
    for e in &mut sp.endpoints {
        e.ready = false;
        e.terminating = true;
    }
    let text = full(&[sp]);
    assert_eq!(text.lines().filter(|l| l.starts_with(":KUBE-SEP-")).count(), 3, "all serving while terminating");
}

#[test]
fn load_balancer_source_ranges_use_a_firewall_chain() {
    let mut sp = seed_service();
    sp.load_balancer_ips = vec!["203.0.113.7".parse().unwrap()];
    sp.load_balancer_source_ranges = vec!["198.51.100.0/24".parse().unwrap(), "192.168.0.0/16".parse().unwrap()];
    let text = full(&[sp]);
    for line in [
        "-A KUBE-SERVICES -m comment --comment \"default/clusterip-service loadbalancer IP\" -m tcp -p tcp -d 203.0.113.7 --dport 80 -j KUBE-FW-KUSV3H3OUX7H3MDQ",
        "-A KUBE-FW-KUSV3H3OUX7H3MDQ -m comment --comment \"default/clusterip-service loadbalancer IP\" -s 198.51.100.0/24 -j KUBE-EXT-KUSV3H3OUX7H3MDQ",
        "-A KUBE-FW-KUSV3H3OUX7H3MDQ -m comment --comment \"default/clusterip-service loadbalancer IP\" -s 192.168.0.0/16 -j KUBE-EXT-KUSV3H3OUX7H3MDQ",
        // The node (192.168.0.11) is in a range: its own requests come back from the LB IP.
        "-A KUBE-FW-KUSV3H3OUX7H3MDQ -m comment --comment \"default/clusterip-service loadbalancer IP\" -s 203.0.113.7 -j KUBE-EXT-KUSV3H3OUX7H3MDQ",
        "-A KUBE-FW-KUSV3H3OUX7H3MDQ -m comment --comment \"other traffic to default/clusterip-service will be dropped by KUBE-PROXY-FIREWALL\"",
        "-A KUBE-PROXY-FIREWALL -m comment --comment \"default/clusterip-service traffic not accepted by KUBE-FW-KUSV3H3OUX7H3MDQ\" -m tcp -p tcp -d 203.0.113.7 --dport 80 -j DROP",
    ] {
        assert_has(&text, line);
    }
}

#[test]
fn external_ips_and_multiple_protocols() {
    let mut dns =
        port(id("kube-system", "kube-dns", "dns", Protocol::Udp), "10.96.0.10", 53, vec![ep("10.244.0.3", 53, true)]);
    dns.external_ips = vec!["192.0.2.53".parse().unwrap()];
    let sctp = port(id("default", "sig", "", Protocol::Sctp), "10.96.0.11", 3868, vec![ep("10.244.0.4", 3868, true)]);
    let text = full(&[dns, sctp]);
    assert_has(&text, "-A KUBE-SERVICES -m comment --comment \"kube-system/kube-dns:dns cluster IP\" -m udp -p udp -d 10.96.0.10 --dport 53 -j KUBE-SVC-TCOU7JCQXEZGVUNU");
    assert_has(&text, "-A KUBE-SERVICES -m comment --comment \"kube-system/kube-dns:dns external IP\" -m udp -p udp -d 192.0.2.53 --dport 53 -j KUBE-EXT-TCOU7JCQXEZGVUNU");
    assert!(text.lines().any(|l| l.contains("-m sctp -p sctp -j DNAT --to-destination 10.244.0.4:3868")));
}

#[test]
fn ipv6_ruleset() {
    let mut sp = port(id("default", "v6", "", Protocol::Tcp), "fd00:96::5", 80, vec![ep("fd00:244::5", 8080, true)]);
    sp.cluster_ips.push("10.96.0.5".parse().unwrap());
    sp.endpoints.push(ep("10.244.0.5", 8080, true));
    let node = NodeContext { cluster_cidrs: vec!["fd00:244::/48".parse().unwrap()], ..node() };
    let options = RenderOptions::default();
    let r = render_family(Family::V6, &[sp], &node, &None, &Existing::fresh(Family::V6, &options), &options);
    let text = r.text;
    let svc = names::svc_chain(&id("default", "v6", "", Protocol::Tcp));
    assert_has(&text, &format!("-A KUBE-SERVICES -m comment --comment \"default/v6 cluster IP\" -m tcp -p tcp -d fd00:96::5 --dport 80 -j {svc}"));
    assert!(text.contains("! -s fd00:244::/48 -j KUBE-MARK-MASQ"));
    assert!(text.contains("-j DNAT --to-destination [fd00:244::5]:8080"));
    assert!(text.contains("-m addrtype --dst-type LOCAL ! -d ::1/128 -j KUBE-NODEPORTS"));
    assert_lacks(&text, "10.96.0.5");
    assert_lacks(&text, "KUBE-FIREWALL");
}

#[test]
fn partial_sync_rewrites_only_changed_services() {
    let a = seed_service();
    let b = port(id("default", "b", "", Protocol::Tcp), "10.96.0.12", 80, vec![ep("10.44.0.9", 80, true)]);
    let gone = port(id("default", "gone", "", Protocol::Tcp), "10.96.0.13", 80, vec![ep("10.44.0.8", 80, true)]);
    let options = RenderOptions::default();
    let first = render_family(
        Family::V4,
        &[a.clone(), b.clone(), gone.clone()],
        &node(),
        &None,
        &Existing::fresh(Family::V4, &options),
        &options,
    );
    assert_eq!(first.services_written, 3);

    let mut b2 = b.clone();
    b2.endpoints = vec![ep("10.44.0.10", 80, true)];
    let changed: Changed = Some(BTreeSet::from([b.id.clone(), gone.id.clone()]));
    let existing = Existing { nat_chains: first.service_chains.clone(), missing_jumps: vec![] };
    let second = render_family(Family::V4, &[a.clone(), b2.clone()], &node(), &changed, &existing, &options);
    let text = &second.text;
    assert_eq!(second.services_written, 1);
    // a's chains are kept as they are (not named), but still dispatched to.
    assert_lacks(text, ":KUBE-SVC-KUSV3H3OUX7H3MDQ");
    assert_has(text, "-A KUBE-SERVICES -m comment --comment \"default/clusterip-service cluster IP\" -m tcp -p tcp -d 10.100.100.100 --dport 80 -j KUBE-SVC-KUSV3H3OUX7H3MDQ");
    assert!(second.service_chains.contains("KUBE-SVC-KUSV3H3OUX7H3MDQ"));
    // b's chains are rewritten; its old endpoint chain and every chain of the removed service go.
    let b_svc = names::svc_chain(&b.id);
    assert_has(text, &format!(":{b_svc} - [0:0]"));
    let old_sep = names::sep_chain(&b.id, "10.44.0.9:80");
    assert_has(text, &format!("-X {old_sep}"));
    assert_has(text, &format!("-X {}", names::svc_chain(&gone.id)));
    assert_has(text, &format!("-X {}", names::sep_chain(&gone.id, "10.44.0.8:80")));
    assert_eq!(second.chains_deleted, 3);
    // No jumps are (re)inserted by a partial sync.
    assert_lacks(text, "-I ");
    // -X comes after every rule of the table.
    let nat: Vec<&str> = text.split("*nat\n").nth(1).unwrap().lines().collect();
    let first_x = nat.iter().position(|l| l.starts_with("-X ")).unwrap();
    assert!(nat[first_x..].iter().all(|l| l.starts_with("-X ") || *l == "COMMIT"));
}

#[test]
fn large_clusters_drop_endpoint_comments() {
    let eps: Vec<Endpoint> = (0..1001u32)
        .map(|i| ep(&format!("10.{}.{}.{}", 100 + i / 65536, (i / 256) % 256, i % 256), 80, false))
        .collect();
    let text = full(&[port(id("ns", "big", "", Protocol::Tcp), "10.96.1.1", 80, eps)]);
    assert!(text.lines().filter(|l| l.starts_with("-A KUBE-SEP-")).all(|l| !l.contains("--comment")));
    assert!(text.lines().any(|l| l.starts_with("-A KUBE-SVC-") && l.contains("--probability 0.0009990010 ")));
}

#[test]
fn options_change_masquerading() {
    let options =
        RenderOptions { masquerade_all: true, random_fully: false, localhost_node_ports: false, drop_invalid: false };
    let r = render_family(Family::V4, &[seed_service()], &node(), &None, &Existing::default(), &options);
    assert_has(&r.text, "-A KUBE-SVC-KUSV3H3OUX7H3MDQ -m comment --comment \"default/clusterip-service cluster IP\" -m tcp -p tcp -d 10.100.100.100 --dport 80 -j KUBE-MARK-MASQ");
    assert_has(
        &r.text,
        "-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE",
    );
    assert!(r.text.contains("-m addrtype --dst-type LOCAL ! -d 127.0.0.0/8 -j KUBE-NODEPORTS"));
    assert_lacks(&r.text, "INVALID");
    assert_lacks(&r.text, "KUBE-FIREWALL");
    // No cluster CIDR: no "not local" masquerade (kube-proxy without a local detector).
    let bare = NodeContext { cluster_cidrs: vec![], ..node() };
    let r = render_family(Family::V4, &[seed_service()], &bare, &None, &Existing::default(), &RenderOptions::default());
    assert_lacks(&r.text, "! -s 10.");
}
