//! Unit tests of the rendered nft scripts for representative services.

use std::collections::BTreeSet;
use std::time::Duration;

use super::family::Family;
use super::names;
use super::*;
use crate::model::{Endpoint, Protocol, ServicePort, ServicePortName};
use crate::NodeContext;

fn node() -> NodeContext {
    NodeContext {
        name: "node1".into(),
        addresses: vec!["192.168.1.10".parse().unwrap(), "127.0.0.1".parse().unwrap(), "fd00:1::10".parse().unwrap()],
        cluster_cidrs: vec!["10.244.0.0/16".parse().unwrap(), "fd00:244::/56".parse().unwrap()],
    }
}

fn id(name: &str, port: &str, protocol: Protocol) -> ServicePortName {
    ServicePortName { namespace: "default".into(), name: name.into(), port: port.into(), protocol }
}

fn ep(addr: &str, local: bool) -> Endpoint {
    let sa: std::net::SocketAddr = addr.parse().unwrap();
    Endpoint {
        ip: sa.ip(),
        port: sa.port(),
        node_name: Some(if local { "node1" } else { "node2" }.into()),
        ready: true,
        serving: true,
        terminating: false,
        local,
    }
}

fn svc(name: &str, cluster_ip: &str, port: u16, endpoints: Vec<Endpoint>) -> ServicePort {
    ServicePort::cluster_ip(id(name, "http", Protocol::Tcp), cluster_ip.parse().unwrap(), port, endpoints)
}

fn web() -> ServicePort {
    svc("web", "10.96.0.20", 80, vec![ep("10.244.1.5:8080", true), ep("10.244.2.6:8080", false)])
}

/// The lines of `script` that mention `needle`.
fn lines_with<'a>(script: &'a str, needle: &str) -> Vec<&'a str> {
    script.lines().filter(|l| l.contains(needle)).collect()
}

/// The rules of `chain` in `family`, in order.
fn rules_of(script: &str, family: &str, chain: &str) -> Vec<String> {
    let prefix = format!("add rule {family} podnet {chain} ");
    script.lines().filter_map(|l| l.strip_prefix(&prefix)).map(str::to_string).collect()
}

#[test]
fn skeleton_has_base_chains_maps_and_masquerading() {
    let script = render_full(&[], &node());
    for family in ["ip", "ip6"] {
        assert!(script.contains(&format!("add table {family} podnet\n")));
        for (chain, hook, priority) in [
            ("filter-prerouting", "type filter hook prerouting", -110),
            ("filter-forward", "type filter hook forward", -110),
            ("nat-prerouting", "type nat hook prerouting", -100),
            ("nat-output", "type nat hook output", -100),
            ("nat-postrouting", "type nat hook postrouting", 100),
        ] {
            let def = format!("add chain {family} podnet {chain} {{ {hook} priority {priority} ; policy accept ; }}");
            assert!(script.contains(&def), "{def}");
        }
        assert_eq!(rules_of(&script, family, "nat-prerouting"), ["jump services"]);
        assert_eq!(rules_of(&script, family, "filter-forward"), ["ct state new jump endpoints-check"]);
        assert_eq!(
            rules_of(&script, family, "masquerading"),
            [
                format!("ct status dnat {family} saddr . {family} daddr @hairpin jump mark-for-masquerade"),
                "mark and 0x00004000 == 0 return".into(),
                "mark set mark xor 0x00004000".into(),
                "masquerade fully-random".into()
            ]
        );
        assert!(
            script.contains(&format!("add set {family} podnet hairpin {{ typeof {family} saddr . {family} daddr ; }}"))
        );
        assert_eq!(rules_of(&script, family, "mark-for-masquerade"), ["mark set mark or 0x00004000"]);
        assert_eq!(rules_of(&script, family, "reject-chain"), ["meta l4proto tcp reject with tcp reset", "reject"]);
        assert!(script.contains(&format!("flush map {family} podnet service-ips")));
    }
    assert!(script.contains("add map ip podnet service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; }"));
    assert!(script.contains("add map ip6 podnet service-nodeports { type inet_proto . inet_service : verdict ; }"));
    assert_eq!(
        rules_of(&script, "ip", "services"),
        [
            "ip daddr . meta l4proto . th dport vmap @service-ips",
            "ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports"
        ]
    );
    // Loopback never takes NodePorts.
    assert!(script.contains("add element ip podnet nodeport-ips { 192.168.1.10 }\n"));
    assert!(script.contains("add element ip6 podnet nodeport-ips { fd00:1::10 }\n"));
}

#[test]
fn without_node_addresses_node_ports_take_every_local_address() {
    let mut n = node();
    n.addresses.clear();
    let script = render_full(&[], &n);
    assert_eq!(
        rules_of(&script, "ip", "services")[1],
        "fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports"
    );
    assert_eq!(
        rules_of(&script, "ip6", "endpoints-check")[1],
        "fib daddr type local ip6 daddr != ::1 meta l4proto . th dport vmap @no-endpoint-nodeports"
    );
    assert!(lines_with(&script, "add element ip podnet nodeport-ips").is_empty());
}

#[test]
fn cluster_ip_spreads_over_endpoints_and_masquerades_off_cluster_traffic() {
    let port = web();
    let script = render_full(std::slice::from_ref(&port), &node());
    let chain = names::service_chain(&port.id);
    assert!(chain.starts_with("service-") && chain.ends_with("-default/web/tcp/http"));
    assert!(script.contains(&format!("add element ip podnet service-ips {{ 10.96.0.20 . tcp . 80 : goto {chain} }}")));
    assert_eq!(
        rules_of(&script, "ip", &chain),
        [
            "ip daddr 10.96.0.20 tcp dport 80 ip saddr != { 10.244.0.0/16 } jump mark-for-masquerade",
            "meta l4proto tcp dnat ip to numgen random mod 2 map @endpoints-tcp-1-0",
        ]
    );
    // The endpoints are the first keys of the chain's block (block 0) of the endpoint map; no
    // chain per endpoint; both endpoints are hairpin pairs.
    assert!(script.contains("add element ip podnet endpoints-tcp-1-0 { 0 : 10.244.1.5 . 8080, 1 : 10.244.2.6 . 8080 }"));
    assert!(lines_with(&script, "add chain ip podnet endpoint-").is_empty());
    assert!(script.contains("add element ip podnet hairpin { 10.244.1.5 . 10.244.1.5, 10.244.2.6 . 10.244.2.6 }"));
    // The map exists before the rule refers to it.
    let first_rule = script.find(&format!("add rule ip podnet {chain} ")).unwrap();
    assert!(script.find("add map ip podnet endpoints-tcp-1-0 ").unwrap() < first_rule);
    // An IPv4-only service has nothing in the ip6 table.
    assert!(lines_with(&script, "add element ip6 podnet service-ips").is_empty());
    assert!(lines_with(&script, "add chain ip6 podnet service-").is_empty());
    assert!(lines_with(&script, "add element ip6 podnet endpoints-").is_empty());
}

#[test]
fn multi_port_services_get_one_set_of_chains_per_port() {
    let http = web();
    let mut dns = svc("web", "10.96.0.20", 53, vec![ep("10.244.1.5:5353", true)]);
    dns.id = id("web", "dns", Protocol::Udp);
    let mut sctp = svc("web", "10.96.0.20", 9000, vec![ep("10.244.1.5:9000", true)]);
    sctp.id = id("web", "sig", Protocol::Sctp);
    let script = render_full(&[http.clone(), dns.clone(), sctp.clone()], &node());
    for (port, key) in
        [(&http, "10.96.0.20 . tcp . 80"), (&dns, "10.96.0.20 . udp . 53"), (&sctp, "10.96.0.20 . sctp . 9000")]
    {
        let chain = names::service_chain(&port.id);
        assert!(script.contains(&format!("{key} : goto {chain}")), "{key}");
    }
    // A map per protocol, a block per port.
    let dns_chain = names::service_chain(&dns.id);
    assert_eq!(
        rules_of(&script, "ip", &dns_chain)[1],
        "meta l4proto udp dnat ip to numgen random mod 1 offset 65536 map @endpoints-udp-1-0"
    );
    assert!(script.contains("add element ip podnet endpoints-udp-1-0 { 65536 : 10.244.1.5 . 5353 }"));
    let sctp_chain = names::service_chain(&sctp.id);
    assert!(rules_of(&script, "ip", &sctp_chain)[0].starts_with("ip daddr 10.96.0.20 sctp dport 9000 "));
    assert_ne!(names::service_chain(&http.id), names::service_chain(&dns.id));
}

#[test]
fn node_ports_and_external_addresses_go_through_the_external_chain() {
    let mut port = web();
    port.node_port = Some(30080);
    port.external_ips = vec!["192.0.2.7".parse().unwrap(), "2001:db8::7".parse().unwrap()];
    port.load_balancer_ips = vec!["198.51.100.1".parse().unwrap()];
    let script = render_full(std::slice::from_ref(&port), &node());
    let ext = names::external_chain(&port.id);
    let chain = names::service_chain(&port.id);
    assert!(script.contains(&format!("add element ip podnet service-nodeports {{ tcp . 30080 : goto {ext} }}")));
    assert!(script.contains(&format!("192.0.2.7 . tcp . 80 : goto {ext}")));
    assert!(script.contains(&format!("198.51.100.1 . tcp . 80 : goto {ext}")));
    assert!(!script.contains("2001:db8::7"), "an external IP of another family than the service is ignored");
    assert_eq!(rules_of(&script, "ip", &ext), ["jump mark-for-masquerade".to_string(), format!("goto {chain}")]);
    assert!(lines_with(&script, "add element ip podnet firewall-ips").is_empty(), "no source ranges, no firewall");
}

#[test]
fn load_balancer_source_ranges_allow_only_those_sources() {
    let mut port = web();
    port.load_balancer_ips = vec!["198.51.100.1".parse().unwrap(), "198.51.100.2".parse().unwrap()];
    port.load_balancer_source_ranges = vec!["203.0.113.0/24".parse().unwrap(), "10.1.2.3/8".parse().unwrap()];
    let script = render_full(std::slice::from_ref(&port), &node());
    let fw = names::firewall_chain(&port.id);
    assert_eq!(rules_of(&script, "ip", &fw), ["ip saddr != { 203.0.113.0/24, 10.0.0.0/8 } drop"]);
    assert!(script.contains(&format!(
        "add element ip podnet firewall-ips {{ 198.51.100.1 . tcp . 80 : goto {fw}, 198.51.100.2 . tcp . 80 : goto {fw} }}"
    )));
    assert_eq!(rules_of(&script, "ip", "firewall-check"), ["ip daddr . meta l4proto . th dport vmap @firewall-ips"]);
    assert_eq!(rules_of(&script, "ip", "filter-prerouting"), ["ct state new jump firewall-check"]);

    // A range holding a node address lets the node reach the LB IPs it may hold itself.
    port.load_balancer_source_ranges = vec!["192.168.1.0/24".parse().unwrap()];
    let script = render_full(std::slice::from_ref(&port), &node());
    assert_eq!(rules_of(&script, "ip", &fw), ["ip saddr != { 192.168.1.0/24, 198.51.100.1, 198.51.100.2 } drop"]);

    // Ranges only of the other family: nobody of this family may use the LB IPs.
    port.load_balancer_source_ranges = vec!["2001:db8::/64".parse().unwrap()];
    let script = render_full(std::slice::from_ref(&port), &node());
    assert_eq!(rules_of(&script, "ip", &fw), ["drop"]);
}

#[test]
fn client_ip_affinity_uses_dynamic_sets_looked_up_before_numgen() {
    let mut port = web();
    port.affinity = Some(Duration::from_secs(300));
    let script = render_full(std::slice::from_ref(&port), &node());
    let chain = names::service_chain(&port.id);
    let sets: Vec<String> =
        port.endpoints.iter().map(|e| names::affinity_set(&port.id, e, Duration::from_secs(300))).collect();
    let eps: Vec<String> = port.endpoints.iter().map(|e| names::endpoint_chain(&port.id, e)).collect();
    for set in &sets {
        assert!(script.contains(&format!(
            "add set ip podnet {set} {{ type ipv4_addr ; flags dynamic,timeout ; timeout 300s ; }}"
        )));
    }
    let rules = rules_of(&script, "ip", &chain);
    assert_eq!(rules.len(), 5);
    assert_eq!(rules[1], format!("ip saddr @{} goto {}", sets[0], eps[0]));
    assert_eq!(rules[2], format!("ip saddr @{} goto {}", sets[1], eps[1]));
    assert_eq!(rules[3], format!("numgen random mod 2 0 goto {}", eps[0]));
    assert_eq!(rules[4], format!("goto {}", eps[1]));
    assert_eq!(rules_of(&script, "ip", &eps[0])[1], format!("update @{} {{ ip saddr }}", sets[0]));
    assert!(
        script.find(&format!("add set ip podnet {}", sets[0])).unwrap()
            < script.find("add rule ip podnet service-").unwrap()
    );
}

#[test]
fn services_without_endpoints_are_rejected_everywhere() {
    let mut port = svc("empty", "10.96.0.30", 80, vec![]);
    port.node_port = Some(30030);
    port.external_ips = vec!["192.0.2.30".parse().unwrap()];
    port.load_balancer_ips = vec!["198.51.100.30".parse().unwrap()];
    let script = render_full(std::slice::from_ref(&port), &node());
    assert!(script.contains(
        "add element ip podnet no-endpoint-services { 10.96.0.30 . tcp . 80 : goto reject-chain, \
         192.0.2.30 . tcp . 80 : goto reject-chain, 198.51.100.30 . tcp . 80 : goto reject-chain }"
    ));
    assert!(script.contains("add element ip podnet no-endpoint-nodeports { tcp . 30030 : goto reject-chain }"));
    assert!(lines_with(&script, "add chain ip podnet service-").is_empty(), "no NAT chain at all");
    assert!(lines_with(&script, "add element ip podnet service-ips").is_empty());
    assert_eq!(
        rules_of(&script, "ip", "endpoints-check")[0],
        "ip daddr . meta l4proto . th dport vmap @no-endpoint-services"
    );
    assert_eq!(
        rules_of(&script, "ip", "filter-output"),
        ["ct state new jump endpoints-check", "ct state new jump firewall-check"]
    );
}

#[test]
fn terminating_endpoints_only_when_no_ready_one() {
    let mut terminating = ep("10.244.3.3:8080", false);
    terminating.ready = false;
    terminating.terminating = true;
    let mut not_serving = ep("10.244.3.4:8080", false);
    not_serving.ready = false;
    not_serving.serving = false;
    not_serving.terminating = true;
    let port = svc("drain", "10.96.0.40", 80, vec![terminating.clone(), not_serving.clone()]);
    let script = render_full(std::slice::from_ref(&port), &node());
    assert!(script.contains("add element ip podnet endpoints-tcp-1-0 { 0 : 10.244.3.3 . 8080 }"));
    assert!(!script.contains("10.244.3.4 . 8080"));
    let mut with_ready = port.clone();
    with_ready.endpoints.push(ep("10.244.3.5:8080", false));
    let script = render_full(&[with_ready], &node());
    assert!(
        script.contains("add element ip podnet endpoints-tcp-1-0 { 0 : 10.244.3.5 . 8080 }"),
        "a ready endpoint wins"
    );
}

#[test]
fn external_traffic_policy_local_keeps_the_source_and_the_local_endpoints() {
    let mut port = web();
    port.node_port = Some(30080);
    port.external_local = true;
    let script = render_full(std::slice::from_ref(&port), &node());
    let (ext, cluster, local) =
        (names::external_chain(&port.id), names::service_chain(&port.id), names::local_chain(&port.id));
    assert_eq!(
        rules_of(&script, "ip", &ext),
        [
            format!("ip saddr {{ 10.244.0.0/16 }} goto {cluster}"),
            "fib saddr type local jump mark-for-masquerade".to_string(),
            format!("fib saddr type local goto {cluster}"),
            format!("goto {local}"),
        ]
    );
    // The local chain has a block of its own, with the local endpoint only.
    assert_eq!(
        rules_of(&script, "ip", &local),
        ["meta l4proto tcp dnat ip to numgen random mod 1 offset 65536 map @endpoints-tcp-1-0"]
    );
    assert!(script.contains(&format!("65536 : {} . 8080", port.endpoints[0].ip)));
    assert!(lines_with(&script, "add element ip podnet no-endpoint-nodeports").is_empty());

    // No local endpoint: external traffic not from pods or the node is dropped.
    port.endpoints.retain(|e| !e.local);
    let script = render_full(std::slice::from_ref(&port), &node());
    assert!(script.contains("add element ip podnet no-endpoint-nodeports { tcp . 30080 : drop }"));
    assert!(script.contains(&format!("add element ip podnet service-nodeports {{ tcp . 30080 : goto {ext} }}")));
    assert!(!rules_of(&script, "ip", &ext).iter().any(|r| r.contains(&local)));
    assert!(lines_with(&script, &format!("add chain ip podnet {local}")).is_empty());
}

#[test]
fn internal_traffic_policy_local_uses_local_endpoints_or_drops() {
    let mut port = web();
    port.internal_local = true;
    let script = render_full(std::slice::from_ref(&port), &node());
    let local = names::local_chain(&port.id);
    assert!(script.contains(&format!("10.96.0.20 . tcp . 80 : goto {local}")));
    assert!(rules_of(&script, "ip", &local)[0].ends_with("jump mark-for-masquerade"), "off-cluster masquerade");
    assert!(lines_with(&script, &names::service_chain(&port.id)).is_empty(), "no Cluster chain needed");
    port.endpoints.retain(|e| !e.local);
    let script = render_full(std::slice::from_ref(&port), &node());
    assert!(script.contains("add element ip podnet no-endpoint-services { 10.96.0.20 . tcp . 80 : drop }"));
}

#[test]
fn ipv6_and_dual_stack_services() {
    let mut port = svc("v6", "fd00:96::20", 80, vec![ep("[fd00:244::5]:8080", true), ep("10.244.1.5:8080", true)]);
    port.node_port = Some(30081);
    let script = render_full(std::slice::from_ref(&port), &node());
    let chain = names::service_chain(&port.id);
    assert!(script.contains(&format!("add element ip6 podnet service-ips {{ fd00:96::20 . tcp . 80 : goto {chain} }}")));
    assert_eq!(
        rules_of(&script, "ip6", &chain)[1],
        "meta l4proto tcp dnat ip6 to numgen random mod 1 map @endpoints-tcp-1-0"
    );
    assert!(script.contains("add element ip6 podnet endpoints-tcp-1-0 { 0 : fd00:244::5 . 8080 }"));
    assert!(script.contains("add element ip6 podnet hairpin { fd00:244::5 . fd00:244::5 }"));
    assert!(rules_of(&script, "ip6", &chain)[0].contains("ip6 saddr != { fd00:244::/56 }"));
    assert!(!script.contains("10.244.1.5"), "endpoints of the other family are not used");
    assert!(lines_with(&script, "add element ip podnet service-").is_empty());

    port.cluster_ips.push("10.96.0.21".parse().unwrap());
    let script = render_full(std::slice::from_ref(&port), &node());
    assert!(script.contains(&format!("10.96.0.21 . tcp . 80 : goto {chain}")));
    assert!(script.contains("add element ip podnet service-nodeports"));
    assert!(script.contains("add element ip6 podnet service-nodeports"));
    assert!(script.contains("add element ip podnet endpoints-tcp-1-0 { 0 : 10.244.1.5 . 8080 }"));
}

#[test]
fn two_services_claiming_one_address_the_first_keeps_it() {
    let mut a = web();
    a.external_ips = vec!["192.0.2.9".parse().unwrap()];
    let mut b = svc("other", "10.96.0.50", 80, vec![ep("10.244.9.9:80", false)]);
    b.external_ips = a.external_ips.clone();
    let script = render_full(&[a.clone(), b.clone()], &node());
    assert_eq!(lines_with(&script, "192.0.2.9 . tcp . 80").len(), 1);
    assert!(script.contains(&format!("192.0.2.9 . tcp . 80 : goto {}", names::external_chain(&a.id))));
}

fn changed(ports: &[&ServicePort]) -> BTreeSet<ServicePortName> {
    ports.iter().map(|p| p.id.clone()).collect()
}

#[test]
fn partial_sync_touches_only_what_changed() {
    let a = web();
    let b = svc("api", "10.96.0.60", 443, vec![ep("10.244.1.7:8443", true)]);
    let n = node();
    let before = Ruleset::build(&[a.clone(), b.clone()], &n);

    // Nothing changed: nothing to write.
    assert_eq!(render_partial(&before, &[a.clone(), b.clone()], &n, &changed(&[&b])), "");

    // A new endpoint for b: b's balancing rule is rewritten (mod 2) and the endpoint added to
    // its block (block 1: a holds 0); its unchanged endpoint and everything of a are left alone.
    let mut b2 = b.clone();
    b2.endpoints.push(ep("10.244.2.7:8443", false));
    let script = render_partial(&before, &[a.clone(), b2.clone()], &n, &changed(&[&b2]));
    let b_chain = names::service_chain(&b.id);
    assert!(!script.contains("default/web"), "{script}");
    assert!(!script.contains("add table"), "no skeleton: {script}");
    assert!(!script.contains("service-ips"), "the dispatch element did not change: {script}");
    assert!(script.contains(&format!("flush chain ip podnet {b_chain}\n")));
    let b_rules = rules_of(&script, "ip", &b_chain);
    assert_eq!(b_rules[1], "meta l4proto tcp dnat ip to numgen random mod 2 offset 65536 map @endpoints-tcp-1-0");
    assert!(script.contains("add element ip podnet endpoints-tcp-1-0 { 65537 : 10.244.2.7 . 8443 }"), "{script}");
    assert!(!script.contains("10.244.1.7"), "the unchanged endpoint stays: {script}");
    assert!(script.contains("add element ip podnet hairpin { 10.244.2.7 . 10.244.2.7 }"));

    // An endpoint replaced by another (a rolling update): elements only, no rule.
    let mut swapped = b.clone();
    swapped.endpoints[0] = ep("10.244.3.7:8443", true);
    let script = render_partial(&before, &[a.clone(), swapped.clone()], &n, &changed(&[&swapped]));
    assert!(lines_with(&script, "add rule").is_empty() && lines_with(&script, "flush").is_empty(), "{script}");
    assert!(script.contains("delete element ip podnet endpoints-tcp-1-0 { 65536 }\n"));
    assert!(script.contains("add element ip podnet endpoints-tcp-1-0 { 65536 : 10.244.3.7 . 8443 }\n"));
    assert!(script.contains("delete element ip podnet hairpin { 10.244.1.7 . 10.244.1.7 }\n"));
    assert!(script.contains("add element ip podnet hairpin { 10.244.3.7 . 10.244.3.7 }\n"));

    // An endpoint address another port still DNATs to stays a hairpin pair.
    let mut shared = b.clone();
    shared.endpoints = vec![ep("10.244.1.5:8443", true)];
    let script = render_partial(&before, &[a.clone(), shared.clone()], &n, &changed(&[&shared]));
    assert!(script.contains("delete element ip podnet hairpin { 10.244.1.7 . 10.244.1.7 }\n"));
    assert!(!script.contains("add element ip podnet hairpin"), "a's endpoint already is one: {script}");

    // b loses all endpoints: its element moves to the reject map and its chains are flushed.
    let mut b3 = b.clone();
    b3.endpoints.clear();
    let script = render_partial(&before, &[a.clone(), b3.clone()], &n, &changed(&[&b3]));
    assert!(script.contains("delete element ip podnet service-ips { 10.96.0.60 . tcp . 443 }"));
    assert!(
        script.contains("add element ip podnet no-endpoint-services { 10.96.0.60 . tcp . 443 : goto reject-chain }")
    );
    assert!(script.find("delete element").unwrap() < script.find("add element").unwrap());
    assert_eq!(lines_with(&script, "flush chain").len(), 1, "{script}");
    assert!(lines_with(&script, "delete chain").is_empty(), "chains are deleted by a later sync");
    let plan = before.partial(&[a.clone(), b3.clone()], &n, &changed(&[&b3]));
    let stale: BTreeSet<&str> = plan.tx.stale_chains.iter().map(|(_, c)| c.as_str()).collect();
    assert_eq!(stale, [b_chain.as_str()].into());
    assert!(script.contains("delete element ip podnet endpoints-tcp-1-0 { 65536 }\n"));

    // b removed: its elements are deleted.
    let script = render_partial(&before, std::slice::from_ref(&a), &n, &changed(&[&b]));
    assert!(script.contains("delete element ip podnet service-ips { 10.96.0.60 . tcp . 443 }"));
    assert!(!script.contains("add "), "{script}");
}

#[test]
fn partial_sync_replaces_changed_elements_and_affinity_sets() {
    let mut a = web();
    a.affinity = Some(Duration::from_secs(60));
    let n = node();
    let before = Ruleset::build(std::slice::from_ref(&a), &n);
    let mut a2 = a.clone();
    a2.internal_local = true;
    a2.affinity = Some(Duration::from_secs(120));
    let script = render_partial(&before, std::slice::from_ref(&a2), &n, &changed(&[&a2]));
    let local = names::local_chain(&a.id);
    let cluster = names::service_chain(&a.id);
    assert!(script.contains("delete element ip podnet service-ips { 10.96.0.20 . tcp . 80 }"));
    assert!(script.contains(&format!("add element ip podnet service-ips {{ 10.96.0.20 . tcp . 80 : goto {local} }}")));
    let old_set = names::affinity_set(&a.id, &a.endpoints[0], Duration::from_secs(60));
    let new_set = names::affinity_set(&a.id, &a.endpoints[0], Duration::from_secs(120));
    assert!(script.contains(&format!(
        "add set ip podnet {new_set} {{ type ipv4_addr ; flags dynamic,timeout ; timeout 120s ; }}"
    )));
    assert!(script.contains(&format!("delete set ip podnet {old_set}\n")));
    assert!(script.find(&format!("flush chain ip podnet {cluster}\n")).unwrap() < script.find("delete set").unwrap());
}

#[test]
fn full_sync_clears_leftovers_of_earlier_runs() {
    let a = web();
    let ruleset = Ruleset::build(std::slice::from_ref(&a), &node());
    let leftover = TableState {
        chains: ["services".into(), names::service_chain(&a.id), "service-OLDOLDOL-default/gone/tcp/".into()].into(),
        sets: ["nodeport-ips".into(), "affinity-OLDOLDOL-default/gone/tcp/__10.0.0.1/80".into()].into(),
        maps: ["endpoints-tcp-7-0".into(), "endpoints-tcp-1-0".into()].into(),
    };
    let tx = ruleset.full(&node(), &[(Family::Ipv4, leftover)].into());
    assert!(tx.script.contains("flush chain ip podnet service-OLDOLDOL-default/gone/tcp/\n"));
    assert!(tx.script.contains("delete set ip podnet affinity-OLDOLDOL-default/gone/tcp/__10.0.0.1/80\n"));
    assert_eq!(tx.stale_chains, [(Family::Ipv4, "service-OLDOLDOL-default/gone/tcp/".to_string())]);
    assert!(!tx.script.contains("delete set ip podnet nodeport-ips"));
    assert!(tx.script.contains("delete map ip podnet endpoints-tcp-7-0\n"), "an endpoint map of another epoch");
    assert!(!tx.script.contains("delete map ip podnet endpoints-tcp-1-0"));
    assert_eq!(ruleset.len(), 1);
    // Rules, the dispatch element, two endpoint-map elements and two hairpin pairs.
    assert_eq!(tx.rules, tx.script.lines().filter(|l| l.starts_with("add rule")).count() + 5);
}

#[test]
fn udp_frontends_for_conntrack_cleanup() {
    let mut dns = svc("dns", "10.96.0.10", 53, vec![ep("10.244.1.5:5353", true)]);
    dns.id = id("dns", "dns", Protocol::Udp);
    dns.node_port = Some(30053);
    dns.external_ips = vec!["192.0.2.53".parse().unwrap()];
    let rules = rules::service_rules(&dns, Family::Ipv4, &node(), &mut |_, _| ("endpoints-tcp-1-0".into(), 0)).unwrap();
    let udp = rules.udp.unwrap();
    let addrs: Vec<String> = udp.addrs.iter().map(ToString::to_string).collect();
    assert_eq!(addrs, ["10.96.0.20:53".replace("20", "10"), "192.0.2.53:53".to_string()]);
    assert_eq!(udp.node_port, Some(30053));
    assert_eq!(udp.targets.iter().map(ToString::to_string).collect::<Vec<_>>(), ["10.244.1.5:5353"]);
    assert!(rules::service_rules(&web(), Family::Ipv4, &node(), &mut |_, _| ("endpoints-tcp-1-0".into(), 0))
        .unwrap()
        .udp
        .is_none());
}

/// A stand-in `nft` that records the scripts it is given (`<path>.log`, one per `---`), lists
/// empty tables, and fails while `<path>.fail` exists.
struct FakeNft {
    dir: std::path::PathBuf,
    program: std::path::PathBuf,
}

impl FakeNft {
    fn new(test: &str) -> FakeNft {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("podnet-fake-nft-{}-{test}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let program = dir.join("nft");
        let script = "#!/bin/sh\n\
            if [ \"$1\" = \"-f\" ]; then\n\
              [ -e \"$0.fail\" ] && { echo 'Error: Could not process rule' >&2; exit 1; }\n\
              cat >> \"$0.log\"; echo --- >> \"$0.log\"; exit 0\n\
            fi\n\
            echo '{\"nftables\": []}'\n";
        std::fs::write(&program, script).unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        FakeNft { dir, program }
    }

    /// The scripts applied so far.
    fn scripts(&self) -> Vec<String> {
        let log = std::fs::read_to_string(self.program.with_extension("log")).unwrap_or_default();
        log.split("---\n").filter(|s| !s.is_empty()).map(str::to_string).collect()
    }

    fn fail(&self, on: bool) {
        let marker = self.program.with_extension("fail");
        if on {
            std::fs::write(marker, "").unwrap();
        } else {
            let _ = std::fs::remove_file(marker);
        }
    }
}

impl Drop for FakeNft {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn mode_syncs_partially_only_from_a_known_state() {
    let fake = FakeNft::new("partial");
    let mut mode = NftablesMode::with_program(fake.program.to_str().unwrap());
    assert_eq!(mode.name(), "nftables");
    let (a, b) = (web(), svc("api", "10.96.0.60", 443, vec![ep("10.244.1.7:8443", true)]));
    let n = node();

    // The first sync is full, whatever `changed` says.
    let stats = mode.sync(&[a.clone(), b.clone()], &n, &Some(changed(&[&b]))).unwrap();
    assert_eq!(stats.services_written, 2);
    assert!(fake.scripts()[0].starts_with("add table ip podnet\n"));
    // Rules, 2 dispatch elements, 3 endpoint-map elements, 3 hairpin pairs.
    assert_eq!(stats.rules_written, fake.scripts()[0].lines().filter(|l| l.starts_with("add rule")).count() + 8);

    // Then partial: only b.
    let mut b2 = b.clone();
    b2.endpoints.push(ep("10.244.2.7:8443", false));
    let stats = mode.sync(&[a.clone(), b2.clone()], &n, &Some(changed(&[&b2]))).unwrap();
    assert_eq!(stats.services_written, 1);
    let partial = &fake.scripts()[1];
    assert!(!partial.contains("add table") && !partial.contains("default/web"), "{partial}");
    let b_rules = mode.ruleset().unwrap().get(Family::Ipv4, &b.id).unwrap();
    assert_eq!((b_rules.chains.len(), b_rules.slots.values().map(|s| s.endpoints.len()).sum::<usize>()), (1, 2));

    // Nothing changed: no transaction at all.
    mode.sync(&[a.clone(), b2.clone()], &n, &Some(changed(&[&a]))).unwrap();
    assert_eq!(fake.scripts().len(), 2);

    // Another node context: full.
    let mut other = n.clone();
    other.addresses.push("192.168.1.11".parse().unwrap());
    mode.sync(&[a.clone(), b2.clone()], &other, &Some(changed(&[&a]))).unwrap();
    assert!(fake.scripts()[2].contains("add element ip podnet nodeport-ips { 192.168.1.10, 192.168.1.11 }"));

    // A failed sync names the operation, and the next one is full.
    fake.fail(true);
    let err = mode.sync(std::slice::from_ref(&a), &other, &Some(changed(&[&b2]))).unwrap_err().to_string();
    assert!(err.contains("apply the nftables rules of the changed services") && err.contains("Could not process"));
    assert!(mode.ruleset().is_none());
    fake.fail(false);
    mode.sync(std::slice::from_ref(&a), &other, &Some(changed(&[&b2]))).unwrap();
    assert!(fake.scripts()[3].starts_with("add table ip podnet\n"));

    // Cleanup deletes both tables (adding them first, so that it works when they are gone).
    mode.cleanup().unwrap();
    assert_eq!(
        fake.scripts()[4],
        "add table ip podnet\ndelete table ip podnet\nadd table ip6 podnet\ndelete table ip6 podnet\n"
    );
    assert!(mode.ruleset().is_none());
}

#[test]
fn a_missing_nft_program_is_an_error_naming_the_operation() {
    let mut mode = NftablesMode::with_program("/nonexistent/nft");
    let err = mode.sync(&[web()], &node(), &None).unwrap_err().to_string();
    assert!(err.contains("list nftables table ip podnet") && err.contains("/nonexistent/nft"), "{err}");
}

/// Runs `f` on a thread of its own in a new, empty network namespace (gone with the thread).
/// `None` without root.
fn in_new_netns<T: Send>(test: &str, f: impl FnOnce() -> T + Send) -> Option<T> {
    if !nix::unistd::geteuid().is_root() {
        use std::io::Write;
        let _ = writeln!(std::io::stdout().lock(), "PODNET-PRIVILEGED-TEST-SKIPPED: {test}");
        return None;
    }
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare the network namespace");
            f()
        })
        .join()
        .expect("the test thread")
    })
    .into()
}

/// `nft list table` of both families (in the calling thread's namespace).
fn nft_listing() -> String {
    let mut out = String::new();
    for family in ["ip", "ip6"] {
        let o = std::process::Command::new("nft").args(["list", "table", family, "podnet"]).output().expect("run nft");
        out.push_str(&String::from_utf8_lossy(&o.stdout));
        out.push_str(&String::from_utf8_lossy(&o.stderr));
    }
    out
}

/// Services with every feature, in both families.
fn every_feature() -> Vec<ServicePort> {
    let mut all = web();
    all.cluster_ips.push("fd00:96::20".parse().unwrap());
    all.endpoints.push(ep("[fd00:244::5]:8080", true));
    all.node_port = Some(30080);
    all.external_ips = vec!["192.0.2.7".parse().unwrap(), "2001:db8::7".parse().unwrap()];
    all.load_balancer_ips = vec!["198.51.100.1".parse().unwrap(), "198.51.100.2".parse().unwrap()];
    all.load_balancer_source_ranges =
        vec!["203.0.113.0/24".parse().unwrap(), "10.1.2.3/8".parse().unwrap(), "192.168.1.0/24".parse().unwrap()];
    all.affinity = Some(Duration::from_secs(300));
    let mut local = svc("local", "10.96.0.21", 80, vec![ep("10.244.1.5:8080", true), ep("10.244.2.6:8080", false)]);
    local.external_local = true;
    local.node_port = Some(30081);
    local.internal_local = true;
    let mut dns = svc("dns", "10.96.0.10", 53, vec![ep("10.244.1.5:5353", true)]);
    dns.id = id("dns", "dns", Protocol::Udp);
    let mut sctp = svc("sig", "10.96.0.30", 9000, vec![ep("10.244.1.5:9000", true)]);
    sctp.id = id("sig", "sig", Protocol::Sctp);
    let mut empty = svc("empty", "10.96.0.31", 80, vec![]);
    empty.node_port = Some(30082);
    let mut v6 = svc("v6", "fd00:96::31", 80, vec![ep("[fd00:244::6]:80", false)]);
    v6.load_balancer_ips = vec!["2001:db8::9".parse().unwrap()];
    v6.load_balancer_source_ranges = vec!["2001:db8:1::/48".parse().unwrap(), "2001:db8:2::1/128".parse().unwrap()];
    vec![all, local, dns, sctp, empty, v6]
}

#[test]
fn netlink_writes_what_nft_writes_for_the_same_script() {
    let mut n = node();
    // Two cluster CIDRs per family: the off-cluster masquerade needs an interval set.
    n.cluster_cidrs.push("10.250.0.0/20".parse().unwrap());
    n.cluster_cidrs.push("fd00:250::/64".parse().unwrap());
    let ports = every_feature();
    let result = in_new_netns("netlink_writes_what_nft_writes_for_the_same_script", || {
        let ruleset = Ruleset::build(&ports, &n);
        let tx = ruleset.full(&n, &Default::default());
        nft::apply("nft", &tx.script, "load with nft").expect("nft -f");
        let by_nft = nft_listing();
        nft::apply("nft", &script::render(&script::cleanup()), "cleanup").unwrap();
        let mut nl = netlink::Netlink::open().expect("netlink");
        nl.apply(&tx.ops, "load over netlink").expect("netlink apply");
        let by_netlink = nft_listing();
        // The kernel's count of chains and sets is what was applied.
        for f in Family::ALL {
            let (state, count) = script::expected_state(ruleset.family(f).map(|(_, r)| r), std::iter::empty());
            assert_eq!(nl.table_use(f).unwrap(), Some(count), "{f}");
            assert_eq!(nl.table_state(f).unwrap(), state, "{f}");
            assert!(nl.has_chain(f, "services").unwrap() && !nl.has_chain(f, "no-such-chain").unwrap());
        }
        // A partial sync too: `all` loses affinity and an endpoint, `dns` goes.
        let mut changed_ports = ports.clone();
        changed_ports[0].affinity = None;
        changed_ports[0].endpoints.remove(0);
        changed_ports.remove(2);
        let names: BTreeSet<ServicePortName> = [ports[0].id.clone(), ports[2].id.clone()].into();
        let plan = ruleset.partial(&changed_ports, &n, &names);
        nl.apply(&plan.tx.ops, "partial over netlink").expect("partial over netlink");
        let partial_netlink = nft_listing();
        nl.apply(&script::cleanup(), "cleanup").unwrap();
        nft::apply("nft", &tx.script, "load with nft").unwrap();
        nft::apply("nft", &plan.tx.script, "partial with nft").unwrap();
        let partial_nft = nft_listing();
        // And a full sync over what is there, changing only the elements that differ.
        let existing: std::collections::BTreeMap<Family, TableState> =
            Family::ALL.into_iter().map(|f| (f, nl.table_state(f).unwrap())).collect();
        let mut elements = script::Elements::new();
        for f in Family::ALL {
            for set in [
                "nodeport-ips",
                "service-ips",
                "no-endpoint-services",
                "firewall-ips",
                "service-nodeports",
                "no-endpoint-nodeports",
                "hairpin",
            ] {
                elements.insert((f, set.to_string()), nl.elements(f, set).unwrap());
            }
        }
        // With no applied ruleset to start from, endpoint maps of a new epoch (2) are written.
        let (rebuilt, over) = super::build_over(&ports, &n, None, &existing);
        assert!(over.is_none() && rebuilt.epoch() == 2);
        let again = rebuilt.full_ops(&n, &existing, &elements, None);
        nl.apply(&again.ops, "full over netlink").expect("full over netlink");
        let resynced = nft_listing();
        (by_nft, by_netlink, partial_nft, partial_netlink, resynced, elements)
    });
    let Some((by_nft, by_netlink, partial_nft, partial_netlink, resynced, elements)) = result else { return };
    assert!(by_nft.contains("table ip podnet") && by_nft.contains("numgen random mod 2 0 goto"), "{by_nft}");
    assert_eq!(by_netlink, by_nft);
    assert_eq!(partial_netlink, partial_nft);
    // The full sync restored the ruleset of `ports` (the `dns` chains of the partial sync are
    // flushed leftovers, empty, and the stale chains are flushed).
    let strip = |s: &str| -> String { s.lines().filter(|l| !l.trim().is_empty()).collect::<Vec<_>>().join("\n") };
    let resynced = resynced.replace("-2-0", "-1-0");
    for line in strip(&by_nft).lines() {
        assert!(resynced.contains(line), "{line:?} missing after the full sync:\n{resynced}");
    }
    let service_ips = &elements[&(Family::Ipv4, "service-ips".to_string())];
    assert!(service_ips.iter().any(|e| matches!(e, script::Elem::Map { key, .. } if key == "10.96.0.20 . tcp . 80")));
}

#[test]
fn a_full_sync_over_what_it_applied_rewrites_only_what_differs() {
    let n = node();
    let ports = every_feature();
    let ruleset = Ruleset::build(&ports, &n);
    // What the kernel holds: every chain and set of the ruleset, and its elements.
    let mut existing: std::collections::BTreeMap<Family, TableState> = Default::default();
    let mut elements = script::Elements::new();
    for f in Family::ALL {
        let state = existing.entry(f).or_default();
        for (_, r) in ruleset.family(f) {
            state.chains.extend(r.chains.keys().cloned());
            state.sets.extend(r.sets.keys().cloned());
            for e in &r.elements {
                elements.entry((f, e.map.to_string())).or_default().insert(e.into());
            }
        }
        let ips = rules::node_port_addresses(&n, f).into_iter().map(script::Elem::Addr).collect();
        elements.insert((f, "nodeport-ips".to_string()), ips);
        elements.insert((f, "hairpin".to_string()), ruleset.hairpin(f).map(|a| script::Elem::Pair(*a)).collect());
    }
    let service_rules = |tx: &Transaction| {
        tx.ops.iter().filter(|o| matches!(o, Op::AddRule { chain, .. } if names::is_service_chain(chain))).count()
    };
    let elements_written = |tx: &Transaction, endpoint_maps: bool| {
        let written = |set: &str| names::endpoint_map_epoch(set).is_some() == endpoint_maps;
        let ops = tx.ops.iter();
        ops.filter(|o| matches!(o, Op::AddElements { set, .. } | Op::DeleteElements { set, .. } if written(set)))
            .count()
    };
    // Without what was applied: every port is rewritten, with its endpoint-map elements; the
    // other elements are already right.
    let all = ruleset.full_ops(&n, &existing, &elements, None);
    assert!(service_rules(&all) > 10);
    assert_eq!(elements_written(&all, false), 0);
    assert!(elements_written(&all, true) > 0);
    // With it: nothing but the skeleton.
    let none = ruleset.full_ops(&n, &existing, &elements, Some(&ruleset));
    assert_eq!(service_rules(&none), 0, "{}", script::render(&none.ops));
    assert_eq!(elements_written(&none, true) + elements_written(&none, false), 0, "{}", script::render(&none.ops));
    assert!(none.ops.iter().any(|o| matches!(o, Op::AddRule { chain, .. } if chain == "services")));
    // A chain gone from the kernel: its port is written again, only it.
    let web_chain = names::service_chain(&ports[0].id);
    existing.get_mut(&Family::Ipv4).unwrap().chains.remove(&web_chain);
    let one = ruleset.full_ops(&n, &existing, &elements, Some(&ruleset));
    let rewritten: BTreeSet<&str> = one
        .ops
        .iter()
        .filter_map(|o| match o {
            Op::AddRule { chain, .. } if names::is_service_chain(chain) => Some(chain.as_str()),
            _ => None,
        })
        .collect();
    assert!(rewritten.contains(web_chain.as_str()));
    assert!(rewritten.iter().all(|c| c.contains("/web/")), "{rewritten:?}");
    // An element changed behind the proxy's back is put back.
    let key = (Family::Ipv4, "service-ips".to_string());
    let wrong = script::Elem::Map { key: "10.96.0.20 . tcp . 80".into(), verdict: "drop".into() };
    let right: Vec<script::Elem> = elements[&key]
        .iter()
        .filter(|e| matches!(e, script::Elem::Map { key, .. } if key == "10.96.0.20 . tcp . 80"))
        .cloned()
        .collect();
    let set = elements.get_mut(&key).unwrap();
    for e in &right {
        set.remove(e);
    }
    set.insert(wrong.clone());
    let fixed = ruleset.full_ops(&n, &existing, &elements, Some(&ruleset));
    let text = script::render(&fixed.ops);
    assert!(text.contains("delete element ip podnet service-ips { 10.96.0.20 . tcp . 80 }"), "{text}");
    assert!(text.contains("add element ip podnet service-ips { 10.96.0.20 . tcp . 80 : goto service-"), "{text}");
}
