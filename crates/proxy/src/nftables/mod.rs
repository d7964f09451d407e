//! The nftables mode (the default), modelled on kube-proxy's own nftables mode: tables `podnet`
//! in the `ip` and `ip6` families; packets are dispatched by verdict maps keyed on
//! `daddr . l4proto . dport` (`service-ips`: cluster, external and load-balancer IPs) and
//! `l4proto . dport` (`service-nodeports`, for packets to the node's addresses), so the cost per
//! packet does not grow with the number of services; `numgen random` picks an endpoint (one
//! `dnat … numgen random mod N offset O map @endpoints-…` rule over a block of an endpoint map,
//! so that an endpoint change writes elements and no rule; with ClientIP affinity, a cascade of
//! rules, each taking one packet in N−i, to a chain per endpoint), dynamic sets with a timeout
//! keep ClientIP affinity; services without endpoints are rejected
//! (`no-endpoint-services`, `no-endpoint-nodeports`), loadBalancerSourceRanges are enforced
//! (`firewall-ips`), and masquerading goes through a mark (`mark-for-masquerade`,
//! `masquerading`). See [`rules`] for the chains of one service port.
//!
//! Rendering is pure ([`render_full`], [`render_partial`], [`Ruleset`]): a sync is a list of
//! operations ([`script::Op`]) that render to an `nft` script. [`NftablesMode`] applies them in
//! the calling thread's network namespace over netlink itself ([`netlink`]: a long-lived socket,
//! the messages `nft` would send for the same script, big syncs split into several
//! transactions), or — with [`NftablesMode::with_program`] or `PODNET_NFT` — as one `nft -f -`
//! transaction. It touches only the changed service ports when it can, deletes chains that fell
//! out of use a sync later, and deletes stale UDP conntrack entries over ctnetlink.
//!
//! A full sync over netlink reads what the tables hold (chain and set names — taken from the
//! last sync when the kernel's count of chains and sets agrees — and the elements of the
//! dispatch maps), rewrites the skeleton, deletes and adds only the map elements that differ,
//! flushes chains no port uses, and rewrites every service port's chains — except, when the
//! last sync on this node succeeded, ports whose rules are unchanged and whose chains and sets
//! all exist: a periodic full sync of 10,000 unchanged services writes one transaction. (It
//! does not compare the rules inside existing chains with the kernel's: a chain edited by hand
//! is put right when its port changes, or by a restarted proxy.)

pub mod conntrack;
pub mod ctnetlink;
pub mod family;
pub mod names;
pub mod netlink;
pub mod nft;
pub mod rule;
pub mod rules;
pub mod ruleset;
pub mod script;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

pub use family::Family;
pub use rules::{Element, ServiceRules, UdpFrontends};
pub use ruleset::Ruleset;
pub use script::{Op, TableState, Transaction};

use crate::model::{ServicePort, ServicePortName};
use crate::{Changed, Error, Mode, NodeContext, SyncStats};

/// The name of the proxy's tables (`ip podnet`, `ip6 podnet`).
pub const TABLE: &str = "podnet";

/// How long a flushed chain is kept before it is deleted (kube-proxy's delay: kernels before
/// 6.2 notice a moment late that a deleted map element no longer references a chain).
pub const STALE_CHAIN_DELAY: Duration = Duration::from_secs(1);

/// The full sync's script for `ports` on `node`, for tables that hold nothing else.
pub fn render_full(ports: &[ServicePort], node: &NodeContext) -> String {
    Ruleset::build(ports, node).full(node, &BTreeMap::new()).script
}

/// The partial sync's script from `previous` (what is applied) for the ports named in `changed`
/// (`ports` is the full current list): only their differences.
pub fn render_partial(
    previous: &Ruleset,
    ports: &[ServicePort],
    node: &NodeContext,
    changed: &BTreeSet<ServicePortName>,
) -> String {
    previous.partial(ports, node, changed).tx.script
}

/// What was applied by the last successful sync.
#[derive(Debug, Clone)]
struct Applied {
    node: NodeContext,
    ruleset: Ruleset,
}

/// How the mode talks to the kernel.
#[derive(Debug)]
enum Backend {
    /// The `nft` program, one `nft -f -` per transaction.
    Program(String),
    /// Netlink, on a socket kept while the calling thread stays in the same network namespace.
    Netlink(Option<netlink::Netlink>),
}

/// The nftables proxy mode. Programs nftables (over netlink, or with the `nft` program) and
/// ctnetlink in the calling thread's network namespace.
#[derive(Debug)]
pub struct NftablesMode {
    backend: Backend,
    applied: Option<Applied>,
    /// Chains flushed by an earlier sync, with when, to delete after [`STALE_CHAIN_DELAY`].
    stale: Vec<(Family, String, Instant)>,
}

impl Default for NftablesMode {
    fn default() -> Self {
        NftablesMode::new()
    }
}

impl NftablesMode {
    /// The mode over netlink; with the `nft` program named by `PODNET_NFT` if that is set.
    pub fn new() -> NftablesMode {
        match std::env::var("PODNET_NFT") {
            Ok(p) if !p.is_empty() => NftablesMode::with_program(p),
            _ => NftablesMode { backend: Backend::Netlink(None), applied: None, stale: Vec::new() },
        }
    }

    /// The mode with an `nft` program: each transaction one `nft -f -`.
    pub fn with_program(program: impl Into<String>) -> NftablesMode {
        NftablesMode { backend: Backend::Program(program.into()), applied: None, stale: Vec::new() }
    }

    /// `netlink` or the `nft` program's path.
    pub fn backend(&self) -> String {
        match &self.backend {
            Backend::Program(p) => p.clone(),
            Backend::Netlink(_) => "netlink".into(),
        }
    }

    /// How many kernel transactions the last sync took (netlink; 1 with the program).
    pub fn last_transactions(&self) -> usize {
        match &self.backend {
            Backend::Program(_) => 1,
            Backend::Netlink(nl) => nl.as_ref().map_or(0, |n| n.last_transactions),
        }
    }

    /// The netlink socket for the calling thread's network namespace (opened again when the
    /// thread is in another one).
    fn socket(nl: &mut Option<netlink::Netlink>) -> Result<&mut netlink::Netlink, Error> {
        let here = netlink::current_netns()?;
        if nl.as_ref().is_some_and(|n| n.netns() != here) {
            *nl = None;
        }
        match nl {
            Some(n) => Ok(n),
            None => Ok(nl.insert(netlink::Netlink::open()?)),
        }
    }

    /// Applies a transaction's operations (`script`: their text, if already rendered).
    fn apply(&mut self, ops: &[Op], script: Option<&str>, what: &str) -> Result<(), Error> {
        match &mut self.backend {
            Backend::Program(program) => match script {
                Some(s) => nft::apply(program, s, what),
                None => nft::apply(program, &script::render(ops), what),
            },
            Backend::Netlink(nl) => Self::socket(nl)?.apply(ops, what),
        }
    }

    /// What the last successful sync applied (`None` before it, and after a failed sync).
    pub fn ruleset(&self) -> Option<&Ruleset> {
        self.applied.as_ref().map(|a| &a.ruleset)
    }

    /// What the table of `family` holds now.
    pub fn list(&self, family: Family) -> Result<TableState, Error> {
        match &self.backend {
            Backend::Program(program) => nft::list(program, family),
            Backend::Netlink(_) => netlink::Netlink::open()?.table_state(family),
        }
    }

    /// Deletes the chains flushed at least [`STALE_CHAIN_DELAY`] ago, in a transaction of its
    /// own. Best effort: a chain that cannot go now is found again by the next full sync.
    fn delete_stale_chains(&mut self) {
        let now = Instant::now();
        let (due, young): (Vec<_>, Vec<_>) =
            self.stale.drain(..).partition(|(_, _, t)| now.duration_since(*t) >= STALE_CHAIN_DELAY);
        self.stale = young;
        if !due.is_empty() {
            let chains: Vec<(Family, String)> = due.into_iter().map(|(f, c, _)| (f, c)).collect();
            let _ = self.apply(&script::delete_chains(&chains), None, "delete unused nftables chains");
        }
    }

    /// Records chains just flushed (keeping the time of those already waiting) and forgets
    /// waiting chains that are in use again.
    fn note_stale(&mut self, flushed: Vec<(Family, String)>, in_use: impl Fn(Family, &str) -> bool) {
        let now = Instant::now();
        self.stale.retain(|(f, c, _)| !in_use(*f, c));
        let mut waiting: BTreeSet<(Family, String)> = self.stale.iter().map(|(f, c, _)| (*f, c.clone())).collect();
        for (family, chain) in flushed {
            if waiting.insert((family, chain.clone())) {
                self.stale.push((family, chain, now));
            }
        }
    }

    fn full_sync(&mut self, ports: &[ServicePort], node: &NodeContext) -> Result<SyncStats, Error> {
        let what = "apply the nftables rules of all services";
        let (ruleset, tx, apply) = match &mut self.backend {
            Backend::Program(program) => {
                let mut existing = BTreeMap::new();
                for family in Family::ALL {
                    existing.insert(family, nft::list(program, family)?);
                }
                let previous = self.applied.as_ref().filter(|a| a.node == *node).map(|a| &a.ruleset);
                let (ruleset, _) = build_over(ports, node, previous, &existing);
                let tx = ruleset.full(node, &existing);
                let start = Instant::now();
                nft::apply(program, &tx.script, what)?;
                (ruleset, tx, start.elapsed())
            }
            Backend::Netlink(nl) => {
                let nl = Self::socket(nl)?;
                let mut existing = BTreeMap::new();
                let mut elements = script::Elements::new();
                for family in Family::ALL {
                    // The names of what the table holds: from what was applied when the
                    // kernel's count of chains and sets agrees (listing 100,000 chains takes
                    // about a second), else listed.
                    let known = self.applied.as_ref().filter(|a| a.node == *node).map(|a| {
                        let stale = self.stale.iter().filter(|(f, ..)| *f == family).map(|(_, c, _)| c.as_str());
                        script::expected_state(a.ruleset.family(family).map(|(_, r)| r), stale)
                    });
                    let state = match (known, nl.table_use(family)?) {
                        (Some((state, expected)), Some(count)) if count == expected => state,
                        _ => nl.table_state(family)?,
                    };
                    let proxy_sets = [script::NODEPORT_IPS, rules::HAIRPIN]
                        .into_iter()
                        .chain(script::ADDR_MAPS)
                        .chain(script::PORT_MAPS)
                        .filter(|s| state.sets.contains(*s) || state.maps.contains(*s));
                    for set in proxy_sets {
                        elements.insert((family, set.to_string()), nl.elements(family, set)?);
                    }
                    existing.insert(family, state);
                }
                // What the last sync applied on this node, if it is known: unchanged ports whose
                // chains and sets are all there are left as they are.
                let previous = self.applied.as_ref().filter(|a| a.node == *node).map(|a| &a.ruleset);
                let (ruleset, previous) = build_over(ports, node, previous, &existing);
                let tx = ruleset.full_ops(node, &existing, &elements, previous);
                let start = Instant::now();
                nl.apply(&tx.ops, what)?;
                (ruleset, tx, start.elapsed())
            }
        };
        // UDP frontends: every current one, and those of ports gone since the last sync.
        let mut checks: Vec<(Family, UdpFrontends)> = Vec::new();
        for family in Family::ALL {
            checks.extend(ruleset.family(family).filter_map(|(_, r)| r.udp.clone()).map(|u| (family, u)));
            if let Some(old) = &self.applied {
                let gone = old.ruleset.family(family).filter(|(n, _)| ruleset.get(family, n).is_none());
                checks.extend(gone.filter_map(|(_, r)| r.udp.clone()).map(|u| (family, gone_frontends(u))));
            }
        }
        let stats = SyncStats { services_written: ruleset.len(), rules_written: tx.rules, apply };
        let active: BTreeSet<(Family, &str)> = Family::ALL
            .into_iter()
            .flat_map(|f| ruleset.family(f).flat_map(move |(_, r)| r.chains.keys().map(move |c| (f, c.as_str()))))
            .collect();
        self.note_stale(tx.stale_chains, |f, c| active.contains(&(f, c)));
        drop(active);
        self.applied = Some(Applied { node: node.clone(), ruleset });
        clean_conntrack(&checks, node)?;
        Ok(stats)
    }

    fn partial_sync(
        &mut self,
        ports: &[ServicePort],
        node: &NodeContext,
        changed: &BTreeSet<ServicePortName>,
    ) -> Result<SyncStats, Error> {
        let what = "apply the nftables rules of the changed services";
        let applied = self.applied.as_ref().expect("partial sync after a full one");
        let plan = match self.backend {
            Backend::Program(_) => applied.ruleset.partial(ports, node, changed),
            Backend::Netlink(_) => applied.ruleset.partial_ops(ports, node, changed),
        };
        let start = Instant::now();
        if plan.tx.ops.iter().any(|o| !matches!(o, Op::Cut)) {
            let script = (!plan.tx.script.is_empty()).then_some(plan.tx.script.as_str());
            self.apply(&plan.tx.ops, script, what)?;
        }
        let apply = start.elapsed();
        let applied = self.applied.as_mut().expect("partial sync after a full one");
        let mut checks: Vec<(Family, UdpFrontends)> = Vec::new();
        let mut written = BTreeSet::new();
        let mut rewritten_chains = BTreeSet::new();
        for (family, name, new) in plan.updates {
            written.insert(name.clone());
            match &new {
                Some(rules) => {
                    checks.extend(rules.udp.clone().map(|u| (family, u)));
                    rewritten_chains.extend(rules.chains.keys().map(|c| (family, c.clone())));
                }
                None => {
                    let old = applied.ruleset.get(family, &name).and_then(|r| r.udp.clone());
                    checks.extend(old.map(|u| (family, gone_frontends(u))));
                }
            }
            applied.ruleset.replace(family, &name, new);
        }
        let stats = SyncStats { services_written: written.len(), rules_written: plan.tx.rules, apply };
        self.note_stale(plan.tx.stale_chains, |f, c| rewritten_chains.contains(&(f, c.to_string())));
        clean_conntrack(&checks, node)?;
        Ok(stats)
    }
}

/// The rules of `ports` on `node` for a full sync, over what the last sync `applied` on this
/// node if the kernel still has its endpoint maps (`existing`); else with endpoint maps of a
/// new epoch (one above any in the tables), so that nothing is built on elements it does not
/// know. Returns the rules, and `applied` if they were built over it.
fn build_over<'a>(
    ports: &[ServicePort],
    node: &NodeContext,
    applied: Option<&'a Ruleset>,
    existing: &BTreeMap<Family, TableState>,
) -> (Ruleset, Option<&'a Ruleset>) {
    let maps_exist = |r: &&Ruleset| {
        Family::ALL.into_iter().all(|f| {
            let maps = existing.get(&f).map(|s| &s.maps);
            r.endpoint_maps(f).iter().all(|m| maps.is_some_and(|maps| maps.contains(m)))
        })
    };
    let applied = applied.filter(maps_exist);
    let epochs = existing.values().flat_map(|s| s.maps.iter().filter_map(|m| names::endpoint_map_epoch(m)));
    let epoch = epochs.max().map_or(1, |e| e.wrapping_add(1).max(1));
    (Ruleset::build_over(ports, node, applied, epoch), applied)
}

/// The frontends of a port that is gone: no target is valid any more.
fn gone_frontends(u: UdpFrontends) -> UdpFrontends {
    UdpFrontends { targets: BTreeSet::new(), ..u }
}

/// Deletes the UDP conntrack entries that `checks` make stale (see [`conntrack`]).
fn clean_conntrack(checks: &[(Family, UdpFrontends)], node: &NodeContext) -> Result<usize, Error> {
    let mut deleted = 0;
    let mut socket = None;
    for family in Family::ALL {
        let frontends: Vec<&UdpFrontends> = checks.iter().filter(|(f, _)| *f == family).map(|(_, u)| u).collect();
        if frontends.is_empty() {
            continue;
        }
        let ct = match &mut socket {
            Some(ct) => ct,
            None => socket.insert(ctnetlink::Conntrack::open()?),
        };
        let node_addrs = rules::node_port_addresses(node, family);
        for entry in ct.dump(family)? {
            if conntrack::is_stale(&entry.flow, &frontends, &node_addrs) && ct.delete(&entry)? {
                deleted += 1;
            }
        }
    }
    Ok(deleted)
}

impl Mode for NftablesMode {
    fn name(&self) -> &'static str {
        "nftables"
    }

    fn sync(&mut self, ports: &[ServicePort], node: &NodeContext, changed: &Changed) -> Result<SyncStats, Error> {
        self.delete_stale_chains();
        // A partial sync needs a known starting point on the same node.
        let partial = match (changed, &self.applied) {
            (Some(changed), Some(applied)) if applied.node == *node => Some(changed),
            _ => None,
        };
        let result = match partial {
            Some(changed) => self.partial_sync(ports, node, changed),
            None => self.full_sync(ports, node),
        };
        if result.is_err() {
            self.applied = None;
        }
        result
    }

    fn cleanup(&mut self) -> Result<(), Error> {
        self.apply(&script::cleanup(), None, "delete the nftables tables")?;
        self.applied = None;
        self.stale.clear();
        Ok(())
    }
}
