//! What one service port owns in one family's table, as data: its chains with their rules, its
//! affinity sets, its elements in the dispatch maps and its block of keys in an endpoint map —
//! the rules of kube-proxy's nftables mode, from a [`ServicePort`] (pure), except for how an
//! endpoint is chosen: without ClientIP affinity, a balancing chain DNATs with one rule,
//! `dnat to numgen random mod N offset O map @endpoints-…`, whose N endpoints are the elements
//! O … O+N−1 of an endpoint map. An endpoint change is then a change of map elements only: no
//! rule is written, so the kernel does not validate the whole table (what made one change of
//! 10,000 services cost 150 ms with a chain per endpoint). Hairpin traffic (an endpoint reaching
//! itself through the service) is masqueraded by one rule over the set [`HAIRPIN`] of `a . a`
//! pairs of endpoint addresses. With affinity, kube-proxy's chain per endpoint stays (it records
//! the client in the endpoint's set). [`crate::nftables::script`] turns these into text, and
//! a partial sync compares the old and new [`ServiceRules`] of the ports that changed.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use super::family::Family;
use super::names;
use super::rule::{AddrValue, Match, Rule, SetItem, Stmt, Verdict};
use crate::model::{Endpoint, Protocol, ServicePort};
use crate::NodeContext;

/// Map of cluster, external and load-balancer IPs: `addr . proto . port : verdict`.
pub const SERVICE_IPS: &str = "service-ips";
/// Map of node ports: `proto . port : verdict`.
pub const SERVICE_NODEPORTS: &str = "service-nodeports";
/// Map of the addresses of services without (usable) endpoints: reject or drop.
pub const NO_ENDPOINT_SERVICES: &str = "no-endpoint-services";
/// Map of the node ports of services without (usable) endpoints: reject or drop.
pub const NO_ENDPOINT_NODEPORTS: &str = "no-endpoint-nodeports";
/// Map of the load-balancer IPs with loadBalancerSourceRanges.
pub const FIREWALL_IPS: &str = "firewall-ips";
/// The chain that marks a packet for masquerading.
pub const MARK_MASQ: &str = "mark-for-masquerade";
/// The chain that rejects (TCP reset, ICMP port unreachable).
pub const REJECT: &str = "reject-chain";
/// Set of `a . a` for every endpoint address `a` a balancing chain DNATs to: a packet whose
/// source is its (DNATed) destination is masqueraded.
pub const HAIRPIN: &str = "hairpin";

/// A balancing chain's endpoints in an endpoint map: its block of keys, and the endpoints at
/// the block's first keys, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slots {
    /// The endpoint map ([`names::endpoint_map`]) and its protocol.
    pub map: String,
    pub protocol: Protocol,
    /// The block of keys in it ([`names::block_offset`]).
    pub block: u32,
    pub endpoints: Vec<SocketAddr>,
}

impl Slots {
    /// The map's elements: key and endpoint.
    pub fn elements(&self) -> impl Iterator<Item = (u32, SocketAddr)> + '_ {
        let offset = names::block_offset(self.block);
        self.endpoints.iter().enumerate().map(move |(i, e)| (offset + i as u32, *e))
    }
}

/// Where a balancing chain's endpoints go: given the chain's name and protocol, its endpoint map
/// and block.
pub type Blocks<'a> = dyn FnMut(&str, Protocol) -> (String, u32) + 'a;

/// One element of a verdict map.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Element {
    /// The map (one of the constants of this module).
    pub map: &'static str,
    /// The key, as nftables writes it (`10.96.0.10 . tcp . 80`).
    pub key: String,
    /// The verdict (`goto service-…`, `drop`).
    pub verdict: String,
}

/// The addresses of a UDP service port and where it may send them, to find stale conntrack
/// entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UdpFrontends {
    /// Cluster, external and load-balancer IPs with the service port.
    pub addrs: BTreeSet<SocketAddr>,
    /// The node port, served on the node's addresses.
    pub node_port: Option<u16>,
    /// The endpoints traffic may be DNATed to now.
    pub targets: BTreeSet<SocketAddr>,
}

/// Everything one service port owns in one family's table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceRules {
    /// Its chains (all named with a `/`), each with its rules in order.
    pub chains: BTreeMap<String, Vec<Rule>>,
    /// Its affinity sets, with their timeout in seconds.
    pub sets: BTreeMap<String, u64>,
    /// Its elements in the dispatch maps.
    pub elements: BTreeSet<Element>,
    /// Per balancing chain without affinity: where its endpoints are in the endpoint maps.
    pub slots: BTreeMap<String, Slots>,
    /// The endpoint addresses its slots DNAT to (each is `a . a` in [`HAIRPIN`]).
    pub hairpin: BTreeSet<IpAddr>,
    /// For UDP ports: what the conntrack cleanup needs.
    pub udp: Option<UdpFrontends>,
}

impl ServiceRules {
    /// Rules plus elements: what [`crate::SyncStats::rules_written`] counts.
    pub fn size(&self) -> usize {
        let slots: usize = self.slots.values().map(|s| s.endpoints.len()).sum();
        self.chains.values().map(Vec::len).sum::<usize>() + self.elements.len() + slots
    }
}

/// `{ a, b }` for nftables.
pub fn anon_set<T: ToString>(items: impl IntoIterator<Item = T>) -> String {
    let items: Vec<String> = items.into_iter().map(|i| i.to_string()).collect();
    format!("{{ {} }}", items.join(", "))
}

/// The node's addresses of `family` that take NodePorts (loopback never does, as in
/// kube-proxy's nftables mode).
pub fn node_port_addresses(node: &NodeContext, family: Family) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> =
        node.addresses.iter().filter(|a| family.has(a) && !a.is_loopback() && !a.is_unspecified()).copied().collect();
    out.sort();
    out.dedup();
    out
}

/// The cluster's pod CIDRs of `family`.
pub fn cluster_cidrs(node: &NodeContext, family: Family) -> Vec<IpNet> {
    node.cluster_cidrs.iter().filter(|n| family.has_net(n)).map(IpNet::trunc).collect()
}

/// The endpoints that `usable` picks among `eps` (cloning the port to use the model's rules).
fn pick(port: &ServicePort, local_only: bool) -> Vec<Endpoint> {
    let mut p = port.clone();
    p.internal_local = local_only;
    p.cluster_endpoints().into_iter().cloned().collect()
}

/// Builds the rules of `port` in `family`'s table, its balancing chains' endpoints in the
/// endpoint maps and blocks `blocks` gives them; `None` when the port has no cluster IP of that
/// family (the port is then not served in that family at all, as with kube-proxy).
pub fn service_rules(
    port: &ServicePort,
    family: Family,
    node: &NodeContext,
    blocks: &mut Blocks<'_>,
) -> Option<ServiceRules> {
    let cluster_ip = *port.cluster_ips.iter().find(|a| family.has(a))?;
    let id = &port.id;
    let proto = port.id.protocol.as_lower();
    let saddr = |negate: bool, value: AddrValue| Match::Addr { family, source: true, negate, value };
    let mark_masq = || Verdict::Jump(MARK_MASQ.into());
    let key = |addr: &IpAddr| format!("{addr} . {proto} . {}", port.port);
    let cidrs = cluster_cidrs(node, family);

    // Endpoints of this family; then the Cluster and Local candidates (KEP-1669 fallback each).
    let mut fam = port.clone();
    fam.endpoints.retain(|e| family.has(&e.ip));
    let cluster_eps = pick(&fam, false);
    let local_eps = pick(&fam, true);
    let external_ips: Vec<IpAddr> = port.external_ips.iter().filter(|a| family.has(a)).copied().collect();
    let lb_ips: Vec<IpAddr> = port.load_balancer_ips.iter().filter(|a| family.has(a)).copied().collect();
    let externally_accessible = port.node_port.is_some() || !external_ips.is_empty() || !lb_ips.is_empty();

    let has_endpoints = !cluster_eps.is_empty();
    let has_internal = if port.internal_local { !local_eps.is_empty() } else { has_endpoints };
    let has_external = if port.external_local { !local_eps.is_empty() } else { has_endpoints };
    let uses_cluster = has_endpoints && (!port.internal_local || externally_accessible);
    let uses_local = !local_eps.is_empty() && (port.internal_local || (externally_accessible && port.external_local));
    let uses_external = has_endpoints && externally_accessible;

    let [cluster_chain, local_chain, external_chain, firewall_chain] = names::port_chains(id);
    let affinity = port.affinity.map(|t| t.max(std::time::Duration::from_secs(1)));
    // Endpoint chain names (with affinity only), hashed once per endpoint.
    let mut ep_chains: BTreeMap<(IpAddr, u16), String> = BTreeMap::new();
    for ep in cluster_eps.iter().chain(&local_eps).filter(|_| affinity.is_some()) {
        ep_chains.entry((ep.ip, ep.port)).or_insert_with(|| names::endpoint_chain(id, ep));
    }
    let ep_chain = |ep: &Endpoint| ep_chains[&(ep.ip, ep.port)].clone();
    let internal_chain = if port.internal_local { &local_chain } else { &cluster_chain };
    let reject = format!("goto {REJECT}");
    // What traffic gets when it has no endpoint: reject when the service has none at all, drop
    // when a Local policy leaves none on this node.
    let no_endpoint = |has: bool| if !has_endpoints { Some(reject.clone()) } else { (!has).then(|| "drop".into()) };

    let mut out = ServiceRules::default();
    let mut add = |map: &'static str, key: String, verdict: String| {
        // A key twice (an external IP that is also the cluster IP…): the first one wins.
        if !out.elements.iter().any(|e| e.map == map && e.key == key) {
            out.elements.insert(Element { map, key, verdict });
        }
    };

    // Cluster IP.
    match no_endpoint(has_internal) {
        None => add(SERVICE_IPS, key(&cluster_ip), format!("goto {internal_chain}")),
        Some(v) => add(NO_ENDPOINT_SERVICES, key(&cluster_ip), v),
    }
    // External and load-balancer IPs.
    for addr in external_ips.iter().chain(&lb_ips) {
        if uses_external {
            add(SERVICE_IPS, key(addr), format!("goto {external_chain}"));
        }
        if let Some(v) = no_endpoint(has_external) {
            add(NO_ENDPOINT_SERVICES, key(addr), v);
        }
    }
    // Node port.
    if let Some(node_port) = port.node_port {
        let key = format!("{proto} . {node_port}");
        if uses_external {
            add(SERVICE_NODEPORTS, key.clone(), format!("goto {external_chain}"));
        }
        if let Some(v) = no_endpoint(has_external) {
            add(NO_ENDPOINT_NODEPORTS, key, v);
        }
    }
    // loadBalancerSourceRanges: only those sources may use the load-balancer IPs. Ranges given
    // for the other family only leave this family's LB IPs closed.
    if !lb_ips.is_empty() && !port.load_balancer_source_ranges.is_empty() {
        let chain = firewall_chain;
        let ranges: Vec<IpNet> =
            port.load_balancer_source_ranges.iter().filter(|n| family.has_net(n)).map(IpNet::trunc).collect();
        let rule = if ranges.is_empty() {
            Rule::verdict(vec![], Verdict::Drop)
        } else {
            let mut allowed: Vec<SetItem> = ranges.iter().copied().map(SetItem::Net).collect();
            // A node whose own address is allowed reaches an LB IP it holds with that IP as source.
            if node.addresses.iter().any(|a| ranges.iter().any(|r| r.contains(a))) {
                allowed.extend(lb_ips.iter().copied().map(SetItem::Addr));
            }
            Rule::verdict(vec![saddr(true, AddrValue::Set(allowed))], Verdict::Drop)
        };
        out.chains.insert(chain.clone(), vec![rule]);
        for addr in &lb_ips {
            add(FIREWALL_IPS, key(addr), format!("goto {chain}"));
        }
    }

    // Traffic to the cluster IP from outside the cluster CIDRs is masqueraded (it may come back
    // through another node); written in the chain cluster IP traffic goes to.
    let cidr_set = || AddrValue::Set(cidrs.iter().copied().map(SetItem::Net).collect());
    let masq_off_cluster = (!cidrs.is_empty() && has_internal).then(|| {
        Rule::verdict(
            vec![
                Match::Addr { family, source: false, negate: false, value: AddrValue::One(cluster_ip) },
                Match::Dport { proto: port.id.protocol, port: port.port },
                saddr(true, cidr_set()),
            ],
            mark_masq(),
        )
    });
    let mut balance = |chain: &str, eps: &[Endpoint], masq: bool| {
        let mut rules = Vec::new();
        if masq {
            rules.extend(masq_off_cluster.clone());
        }
        if let Some(timeout) = affinity {
            for ep in eps {
                let set = names::affinity_set(id, ep, timeout);
                let to = Verdict::Goto(ep_chain(ep));
                rules.push(Rule::verdict(vec![saddr(false, AddrValue::Named(set))], to));
            }
        }
        if affinity.is_some() {
            // One endpoint of N at random, as iptables' statistic cascade: the i-th rule takes
            // one packet in N−i of those that reach it, and the endpoint's chain records the
            // client. (Not kube-proxy's `numgen random mod N vmap {…}`: each such anonymous map
            // costs the kernel a walk over every set of the table when it is created.)
            for (i, ep) in eps.iter().enumerate() {
                let left = (eps.len() - i) as u32;
                let one_in = if left > 1 { vec![Match::OneIn(left)] } else { Vec::new() };
                rules.push(Rule::verdict(one_in, Verdict::Goto(ep_chain(ep))));
            }
        } else {
            let (map, block) = blocks(chain, port.id.protocol);
            // A block holds 65,536 endpoints; more are left out (a service port with that many
            // endpoints is far beyond what Kubernetes supports).
            let eps = &eps[..eps.len().min(names::BLOCK_KEYS as usize)];
            let endpoints: Vec<SocketAddr> = eps.iter().map(|e| SocketAddr::new(e.ip, e.port)).collect();
            out.hairpin.extend(eps.iter().map(|e| e.ip));
            let random = Stmt::DnatRandom {
                family,
                modulus: endpoints.len() as u32,
                offset: names::block_offset(block),
                map: map.clone(),
            };
            rules.push(Rule::new(vec![Match::L4proto(port.id.protocol)], random));
            out.slots.insert(chain.to_string(), Slots { map, protocol: port.id.protocol, block, endpoints });
        }
        out.chains.insert(chain.to_string(), rules);
    };
    if uses_cluster {
        balance(&cluster_chain, &cluster_eps, !port.internal_local);
    }
    if uses_local {
        balance(&local_chain, &local_eps, port.internal_local);
    }

    if uses_external {
        let mut rules = Vec::new();
        if !port.external_local {
            // Endpoints may be on other nodes: masquerade so that replies come back here.
            rules.push(Rule::verdict(vec![], mark_masq()));
            rules.push(Rule::verdict(vec![], Verdict::Goto(cluster_chain.clone())));
        } else {
            // Client source IP preserved: only local endpoints. Pods and the node itself still
            // reach every endpoint (as if through an external load balancer).
            if !cidrs.is_empty() {
                rules.push(Rule::verdict(vec![saddr(false, cidr_set())], Verdict::Goto(cluster_chain.clone())));
            }
            let local_source = || vec![Match::FibLocal { source: true }];
            rules.push(Rule::verdict(local_source(), mark_masq()));
            rules.push(Rule::verdict(local_source(), Verdict::Goto(cluster_chain.clone())));
            if has_external {
                rules.push(Rule::verdict(vec![], Verdict::Goto(local_chain.clone())));
            }
        }
        out.chains.insert(external_chain, rules);
    }

    // With affinity, one chain per endpoint in use: hairpin masquerade, affinity, DNAT.
    let mut used: Vec<&Endpoint> = Vec::new();
    if uses_cluster {
        used.extend(&cluster_eps);
    }
    if uses_local {
        used.extend(&local_eps);
    }
    used.sort();
    used.dedup_by(|a, b| a.ip == b.ip && a.port == b.port);
    for ep in used.iter().filter(|_| affinity.is_some()) {
        let mut rules = vec![Rule::verdict(vec![saddr(false, AddrValue::One(ep.ip))], mark_masq())];
        if let Some(timeout) = affinity {
            let set = names::affinity_set(id, ep, timeout);
            rules.push(Rule::stmt(Stmt::UpdateSaddr { family, set: set.clone() }));
            out.sets.insert(set, timeout.as_secs());
        }
        let dnat = Stmt::Dnat(SocketAddr::new(ep.ip, ep.port));
        rules.push(Rule::new(vec![Match::L4proto(port.id.protocol)], dnat));
        out.chains.insert(ep_chain(ep), rules);
    }

    if port.id.protocol == Protocol::Udp {
        let addrs = std::iter::once(cluster_ip).chain(external_ips).chain(lb_ips);
        out.udp = Some(UdpFrontends {
            addrs: addrs.map(|a| SocketAddr::new(a, port.port)).collect(),
            node_port: port.node_port,
            targets: used.iter().map(|e| SocketAddr::new(e.ip, e.port)).collect(),
        });
    }
    Some(out)
}
