//! The ruleset (pure): [`ServicePort`]s → `iptables-restore` input for the filter and nat tables
//! of one address family, laid out as kube-proxy's `syncProxyRules` lays it out — the same
//! chains, jumps, matches and comments, in the same order within each chain.
//!
//! A full sync rewrites every chain; a partial sync (a [`Changed`] set) rewrites the top-level
//! chains (`KUBE-SERVICES`, `KUBE-NODEPORTS`, …) and only the service chains of the changed
//! service ports, and deletes the service chains no longer used. Restored with `--noflush`, a
//! `:CHAIN` line creates or flushes a chain; chains not named in the input are left alone.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::model::{Endpoint, ServicePort};
use crate::{Changed, NodeContext};

use super::endpoints::{categorize, externally_accessible, uses_cluster, uses_local};
use super::jumps::{self, Jump, Table};
use super::names::*;
use super::Family;

/// Above this many endpoints (of one family), kube-proxy drops the comments of the per-endpoint
/// rules to keep the ruleset small (its `largeClusterEndpointsThreshold`).
pub const LARGE_CLUSTER_ENDPOINTS: usize = 1000;

/// How to render (kube-proxy's flags of the same meaning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderOptions {
    /// Serve IPv4 node ports on 127.0.0.1 too (`--iptables-localhost-nodeports`, default true);
    /// needs `route_localnet`, and brings kubelet's `KUBE-FIREWALL` martian filter.
    pub localhost_node_ports: bool,
    /// Masquerade all traffic to cluster IPs (`--masquerade-all`).
    pub masquerade_all: bool,
    /// `MASQUERADE --random-fully` (iptables ≥ 1.6.2).
    pub random_fully: bool,
    /// Drop forwarded packets conntrack finds INVALID (unless `nf_conntrack_tcp_be_liberal`).
    pub drop_invalid: bool,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions { localhost_node_ports: true, masquerade_all: false, random_fully: true, drop_invalid: true }
    }
}

/// What is already there, as far as rendering cares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Existing {
    /// nat chains that exist now: the service chains among them that the new ruleset does not
    /// use are deleted.
    pub nat_chains: BTreeSet<String>,
    /// Jumps from built-in chains to insert (`-I`), missing from the node.
    pub missing_jumps: Vec<&'static Jump>,
}

impl Existing {
    /// A node without any of our rules: every jump is missing.
    pub fn fresh(family: Family, options: &RenderOptions) -> Existing {
        Existing { nat_chains: BTreeSet::new(), missing_jumps: jumps::needed(family, options.localhost_node_ports) }
    }
}

/// A rendered ruleset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rendered {
    /// The `iptables-restore` input (`*filter … COMMIT`, `*nat … COMMIT`).
    pub text: String,
    /// Every service chain the ruleset uses (written or kept): what exists after it is applied.
    pub service_chains: BTreeSet<String>,
    /// Rule lines (`-A`, `-I`, `-X`) in the input.
    pub rules: usize,
    /// Service ports whose chains were written.
    pub services_written: usize,
    /// Service chains deleted.
    pub chains_deleted: usize,
}

/// The restore input for IPv4, as a first full sync on a fresh node would send it.
pub fn render(ports: &[ServicePort], node: &NodeContext, changed: &Changed) -> String {
    let options = RenderOptions::default();
    render_family(Family::V4, ports, node, changed, &Existing::fresh(Family::V4, &options), &options).text
}

/// Everything one family's rendering shares.
struct Ctx<'a> {
    family: Family,
    /// The first cluster CIDR of the family: traffic from outside it is "not local".
    local_cidr: Option<IpNet>,
    node_ips: Vec<IpAddr>,
    /// Drop the per-endpoint comments.
    large: bool,
    options: &'a RenderOptions,
}

/// The four buffers of kube-proxy's sync, and the service chains in use.
#[derive(Default)]
struct Out {
    filter_chains: Vec<String>,
    filter_rules: Vec<String>,
    nat_chains: Vec<String>,
    nat_rules: Vec<String>,
    service_chains: BTreeSet<String>,
}

/// The service chains of one service port, written to the output or (partial sync, service
/// unchanged) only recorded as in use.
struct ServiceChains<'o> {
    out: &'o mut Out,
    write: bool,
}

impl ServiceChains<'_> {
    fn chain(&mut self, name: &str) {
        self.out.service_chains.insert(name.to_string());
        if self.write {
            self.out.nat_chains.push(chain_line(name));
        }
    }

    fn rule(&mut self, rule: String) {
        if self.write {
            self.out.nat_rules.push(rule);
        }
    }
}

fn chain_line(name: &str) -> String {
    format!(":{name} - [0:0]")
}

/// `-m comment --comment "text"`.
fn comment(text: &str) -> String {
    format!("-m comment --comment \"{text}\"")
}

/// Renders the ruleset of `family`. `changed` selects a partial sync (see the module doc).
pub fn render_family(
    family: Family,
    ports: &[ServicePort],
    node: &NodeContext,
    changed: &Changed,
    existing: &Existing,
    options: &RenderOptions,
) -> Rendered {
    let ports: Vec<&ServicePort> = ports.iter().filter(|p| p.cluster_ips.iter().any(|ip| family.has(ip))).collect();
    let endpoints: usize = ports.iter().map(|p| p.endpoints.iter().filter(|e| family.has(&e.ip)).count()).sum();
    let ctx = Ctx {
        family,
        local_cidr: node.cluster_cidrs.iter().find(|c| family.has(&c.addr())).map(IpNet::trunc),
        node_ips: node.addresses.iter().filter(|a| family.has(a)).copied().collect(),
        large: endpoints > LARGE_CLUSTER_ENDPOINTS,
        options,
    };
    let mut out = Out::default();
    for chain in [KUBE_SERVICES, KUBE_EXTERNAL_SERVICES, KUBE_FORWARD, KUBE_NODEPORTS, KUBE_PROXY_FIREWALL] {
        out.filter_chains.push(chain_line(chain));
    }
    for chain in [KUBE_SERVICES, KUBE_NODEPORTS, KUBE_POSTROUTING, KUBE_MARK_MASQ] {
        out.nat_chains.push(chain_line(chain));
    }
    postrouting(&mut out, &ctx);

    let mut services_written = 0;
    for sp in &ports {
        let write = changed.as_ref().is_none_or(|c| c.contains(&sp.id));
        services_written += usize::from(write);
        service(&mut out, sp, &ctx, write);
    }

    // Service chains that exist but are no longer used: flush, then delete after every rule.
    let stale: Vec<&String> =
        existing.nat_chains.iter().filter(|c| is_service_chain(c) && !out.service_chains.contains(*c)).collect();
    for chain in &stale {
        out.nat_chains.push(chain_line(chain));
    }

    nodeports_dispatch(&mut out, &ctx);
    forward(&mut out, &ctx);

    let mut text = String::new();
    let mut rules = 0;
    for (table, chains, body) in
        [(Table::Filter, &out.filter_chains, &out.filter_rules), (Table::Nat, &out.nat_chains, &out.nat_rules)]
    {
        text.push_str(&format!("*{}\n", table.as_str()));
        for line in chains {
            text.push_str(line);
            text.push('\n');
        }
        for jump in existing.missing_jumps.iter().filter(|j| j.table == table) {
            text.push_str(&format!("-I {} {}\n", jump.chain, jump.spec()));
            rules += 1;
        }
        for line in body {
            text.push_str(line);
            text.push('\n');
        }
        rules += body.len();
        if table == Table::Nat {
            for chain in &stale {
                text.push_str(&format!("-X {chain}\n"));
            }
            rules += stale.len();
        }
        text.push_str("COMMIT\n");
    }
    Rendered { text, service_chains: out.service_chains, rules, services_written, chains_deleted: stale.len() }
}

/// `KUBE-POSTROUTING` and `KUBE-MARK-MASQ`, and kubelet's localhost filter.
fn postrouting(out: &mut Out, ctx: &Ctx) {
    out.nat_rules.push(format!("-A {KUBE_POSTROUTING} -m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN"));
    // Clear the mark, so that a packet going through the stack again is not masqueraded again.
    out.nat_rules.push(format!("-A {KUBE_POSTROUTING} -j MARK --xor-mark {MASQ_MARK}"));
    let random = if ctx.options.random_fully { " --random-fully" } else { "" };
    out.nat_rules.push(format!(
        "-A {KUBE_POSTROUTING} {} -j MASQUERADE{random}",
        comment("kubernetes service traffic requiring SNAT")
    ));
    out.nat_rules.push(format!("-A {KUBE_MARK_MASQ} -j MARK --or-mark {MASQ_MARK}"));
    if ctx.family == Family::V4 && ctx.options.localhost_node_ports {
        out.filter_chains.push(chain_line(KUBE_FIREWALL));
        out.filter_rules.push(format!(
            "-A {KUBE_FIREWALL} {} -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP",
            comment("block incoming localnet connections")
        ));
    }
}

/// The last rule of nat `KUBE-SERVICES`: local destinations go on to `KUBE-NODEPORTS`.
fn nodeports_dispatch(out: &mut Out, ctx: &Ctx) {
    let not_loopback = match ctx.family {
        Family::V6 => " ! -d ::1/128",
        Family::V4 if !ctx.options.localhost_node_ports => " ! -d 127.0.0.0/8",
        Family::V4 => "",
    };
    out.nat_rules.push(format!(
        "-A {KUBE_SERVICES} {} -m addrtype --dst-type LOCAL{not_loopback} -j {KUBE_NODEPORTS}",
        comment("kubernetes service nodeports; NOTE: this must be the last rule in this chain")
    ));
}

/// filter `KUBE-FORWARD`.
fn forward(out: &mut Out, ctx: &Ctx) {
    if ctx.options.drop_invalid {
        out.filter_rules.push(format!("-A {KUBE_FORWARD} -m conntrack --ctstate INVALID -j DROP"));
    }
    out.filter_rules.push(format!(
        "-A {KUBE_FORWARD} {} -m mark --mark {MASQ_MARK}/{MASQ_MARK} -j ACCEPT",
        comment("kubernetes forwarding rules")
    ));
    out.filter_rules.push(format!(
        "-A {KUBE_FORWARD} {} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        comment("kubernetes forwarding conntrack rule")
    ));
}

/// The rules of one service port: its dispatch in the top-level chains (always written) and its
/// own chains (written when `write`).
fn service(out: &mut Out, sp: &ServicePort, ctx: &Ctx, write: bool) {
    let family = ctx.family;
    let p = sp.id.protocol.as_lower();
    let name = sp.id.to_string();
    let port = sp.port;
    let of_family = |ips: &[IpAddr]| -> Vec<IpAddr> { ips.iter().filter(|ip| family.has(ip)).copied().collect() };
    let cluster_ips = of_family(&sp.cluster_ips);
    let external_ips = of_family(&sp.external_ips);
    let lb_ips = of_family(&sp.load_balancer_ips);
    let ranges: Vec<IpNet> =
        sp.load_balancer_source_ranges.iter().filter(|r| family.has(&r.addr())).map(IpNet::trunc).collect();
    let eps = categorize(sp, family);

    let svc = svc_chain(&sp.id);
    let svl = svl_chain(&sp.id);
    let ext = ext_chain(&sp.id);
    let fw = fw_chain(&sp.id);
    let uses_cluster_chain = !eps.cluster.is_empty() && uses_cluster(sp, family);
    let uses_local_chain = !eps.local.is_empty() && uses_local(sp, family);
    let (internal_chain, has_internal) =
        if sp.internal_local { (&svl, eps.has_any && !eps.local.is_empty()) } else { (&svc, eps.has_any) };
    let (external_policy_chain, has_external) =
        if sp.external_local { (&svl, eps.has_any && !eps.local.is_empty()) } else { (&svc, eps.has_any) };
    let uses_ext_chain = eps.has_any && externally_accessible(sp, family);
    let uses_fw = eps.has_any && !lb_ips.is_empty() && !ranges.is_empty();
    let lb_chain = if uses_fw { &fw } else { &ext };

    // No endpoints at all: REJECT (an immediate refusal). Endpoints, but none local for a Local
    // policy: DROP what is not short-circuited.
    let (internal_filter, external_filter) = if !eps.has_any {
        let c = comment(&format!("{name} has no endpoints"));
        (Some(("REJECT", c.clone())), Some(("REJECT", c)))
    } else {
        let c = comment(&format!("{name} has no local endpoints"));
        ((!has_internal).then_some(("DROP", c.clone())), (!has_external).then_some(("DROP", c)))
    };
    let dst = |ip: &IpAddr| format!("-m {p} -p {p} -d {ip} --dport {port}");

    for ip in &cluster_ips {
        if has_internal {
            let c = comment(&format!("{name} cluster IP"));
            out.nat_rules.push(format!("-A {KUBE_SERVICES} {c} {} -j {internal_chain}", dst(ip)));
        } else if let Some((target, c)) = &internal_filter {
            out.filter_rules.push(format!("-A {KUBE_SERVICES} {c} {} -j {target}", dst(ip)));
        }
    }
    for ip in &external_ips {
        if eps.has_any {
            let c = comment(&format!("{name} external IP"));
            out.nat_rules.push(format!("-A {KUBE_SERVICES} {c} {} -j {ext}", dst(ip)));
        }
        if let Some((target, c)) = &external_filter {
            out.filter_rules.push(format!("-A {KUBE_EXTERNAL_SERVICES} {c} {} -j {target}", dst(ip)));
        }
    }
    for ip in &lb_ips {
        if eps.has_any {
            let c = comment(&format!("{name} loadbalancer IP"));
            out.nat_rules.push(format!("-A {KUBE_SERVICES} {c} {} -j {lb_chain}", dst(ip)));
        }
        if uses_fw {
            let c = comment(&format!("{name} traffic not accepted by {fw}"));
            out.filter_rules.push(format!("-A {KUBE_PROXY_FIREWALL} {c} {} -j DROP", dst(ip)));
        }
    }
    if let Some((target, c)) = &external_filter {
        for ip in &lb_ips {
            out.filter_rules.push(format!("-A {KUBE_EXTERNAL_SERVICES} {c} {} -j {target}", dst(ip)));
        }
    }
    if let Some(node_port) = sp.node_port {
        if eps.has_any {
            out.nat_rules
                .push(format!("-A {KUBE_NODEPORTS} {} -m {p} -p {p} --dport {node_port} -j {ext}", comment(&name)));
        }
        if let Some((target, c)) = &external_filter {
            out.filter_rules.push(format!(
                "-A {KUBE_EXTERNAL_SERVICES} {c} -m addrtype --dst-type LOCAL -m {p} -p {p} --dport {node_port} -j {target}"
            ));
        }
    }
    if let Some(hc) = sp.health_check_node_port {
        let c = comment(&format!("{name} health check node port"));
        out.filter_rules.push(format!("-A {KUBE_NODEPORTS} {c} -m tcp -p tcp --dport {hc} -j ACCEPT"));
    }

    let mut own = ServiceChains { out, write };

    // Masquerade cluster-IP traffic from outside the cluster (it may leave the node again).
    if has_internal {
        let c = comment(&format!("{name} cluster IP"));
        for ip in &cluster_ips {
            if ctx.options.masquerade_all {
                own.rule(format!("-A {internal_chain} {c} {} -j {KUBE_MARK_MASQ}", dst(ip)));
            } else if let Some(cidr) = ctx.local_cidr {
                own.rule(format!("-A {internal_chain} {c} {} ! -s {cidr} -j {KUBE_MARK_MASQ}", dst(ip)));
            }
        }
    }

    if uses_ext_chain {
        own.chain(&ext);
        if !sp.external_local {
            let c = comment(&format!("masquerade traffic for {name} external destinations"));
            own.rule(format!("-A {ext} {c} -j {KUBE_MARK_MASQ}"));
        } else {
            // Local policy keeps the client's address, except for traffic from pods and from
            // the node itself, which goes to any endpoint as if it came back from outside.
            if let Some(cidr) = ctx.local_cidr {
                let c = comment(&format!("pod traffic for {name} external destinations"));
                own.rule(format!("-A {ext} {c} -s {cidr} -j {svc}"));
            }
            let c = comment(&format!("masquerade LOCAL traffic for {name} external destinations"));
            own.rule(format!("-A {ext} {c} -m addrtype --src-type LOCAL -j {KUBE_MARK_MASQ}"));
            let c = comment(&format!("route LOCAL traffic for {name} external destinations"));
            own.rule(format!("-A {ext} {c} -m addrtype --src-type LOCAL -j {svc}"));
        }
        if has_external {
            own.rule(format!("-A {ext} -j {external_policy_chain}"));
        }
    }

    if uses_fw {
        own.chain(&fw);
        let c = comment(&format!("{name} loadbalancer IP"));
        for range in &ranges {
            own.rule(format!("-A {fw} {c} -s {range} -j {ext}"));
        }
        // A load-balancer IP that is also a local address: the node's own requests come back
        // from the load-balancer IP.
        if ranges.iter().any(|r| ctx.node_ips.iter().any(|ip| r.contains(ip))) {
            for ip in &lb_ips {
                own.rule(format!("-A {fw} {c} -s {ip} -j {ext}"));
            }
        }
        let c = comment(&format!("other traffic to {name} will be dropped by {KUBE_PROXY_FIREWALL}"));
        own.rule(format!("-A {fw} {c}"));
    }

    if uses_cluster_chain {
        own.chain(&svc);
        dispatch(&mut own, sp, ctx, &name, &svc, &eps.cluster);
    }
    if uses_local_chain {
        own.chain(&svl);
        dispatch(&mut own, sp, ctx, &name, &svl, &eps.local);
    }

    for ep in &eps.reachable {
        let addr = ep.address();
        let sep = sep_chain(&sp.id, &addr);
        own.chain(&sep);
        let c = if ctx.large { String::new() } else { format!("{} ", comment(&name)) };
        // Hairpin: an endpoint reaching itself through the service must see another source.
        own.rule(format!("-A {sep} {c}-s {} -j {KUBE_MARK_MASQ}", ep.ip));
        let recent = if sp.affinity.is_some() { format!("-m recent --name {sep} --set ") } else { String::new() };
        own.rule(format!("-A {sep} {c}{recent}-m {p} -p {p} -j DNAT --to-destination {addr}"));
    }
}

/// A `KUBE-SVC-*`/`KUBE-SVL-*` chain: affinity checks first, then the random choice — endpoint
/// i of n taken with probability 1/(n−i), the last one always.
fn dispatch(own: &mut ServiceChains, sp: &ServicePort, ctx: &Ctx, name: &str, chain: &str, eps: &[&Endpoint]) {
    let c = |ep: &Endpoint| {
        if ctx.large {
            String::new()
        } else {
            format!("{} ", comment(&format!("{name} -> {}", ep.address())))
        }
    };
    if let Some(timeout) = sp.affinity {
        for ep in eps {
            let sep = sep_chain(&sp.id, &ep.address());
            own.rule(format!(
                "-A {chain} {}-m recent --name {sep} --rcheck --seconds {} --reap -j {sep}",
                c(ep),
                timeout.as_secs()
            ));
        }
    }
    let n = eps.len();
    for (i, ep) in eps.iter().enumerate() {
        let sep = sep_chain(&sp.id, &ep.address());
        let statistic = if i + 1 < n {
            format!("-m statistic --mode random --probability {} ", probability(n - i))
        } else {
            String::new()
        };
        own.rule(format!("-A {chain} {}{statistic}-j {sep}", c(ep)));
    }
}
