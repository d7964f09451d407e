//! The nftables mode (the default), modelled on kube-proxy's own nftables mode: tables `podnet`
//! in the `ip` and `ip6` families; packets are dispatched by verdict maps keyed on
//! `daddr . l4proto . dport` (`service-ips`: cluster, external and load-balancer IPs) and
//! `l4proto . dport` (`service-nodeports`, for packets to the node's addresses), so the cost per
//! packet does not grow with the number of services; `numgen random mod N` picks an endpoint,
//! dynamic sets with a timeout keep ClientIP affinity; services without endpoints are rejected
//! (`no-endpoint-services`, `no-endpoint-nodeports`), loadBalancerSourceRanges are enforced
//! (`firewall-ips`), and masquerading goes through a mark (`mark-for-masquerade`,
//! `masquerading`). See [`rules`] for the chains of one service port.
//!
//! Rendering is pure ([`render_full`], [`render_partial`], [`Ruleset`]); [`NftablesMode`] runs
//! each sync as one `nft -f -` transaction in the calling thread's network namespace, touches
//! only the changed service ports when it can, deletes chains that fell out of use a sync later,
//! and deletes stale UDP conntrack entries over ctnetlink.

pub mod conntrack;
pub mod ctnetlink;
pub mod family;
pub mod names;
pub mod nft;
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
pub use script::{TableState, Transaction};

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

/// The nftables proxy mode. Runs `nft` and ctnetlink in the calling thread's network namespace.
#[derive(Debug)]
pub struct NftablesMode {
    program: String,
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
    /// The mode with the `nft` program of [`nft::default_program`].
    pub fn new() -> NftablesMode {
        NftablesMode::with_program(nft::default_program())
    }

    /// The mode with another `nft` program.
    pub fn with_program(program: impl Into<String>) -> NftablesMode {
        NftablesMode { program: program.into(), applied: None, stale: Vec::new() }
    }

    /// What the last successful sync applied (`None` before it, and after a failed sync).
    pub fn ruleset(&self) -> Option<&Ruleset> {
        self.applied.as_ref().map(|a| &a.ruleset)
    }

    /// What the table of `family` holds now.
    pub fn list(&self, family: Family) -> Result<TableState, Error> {
        nft::list(&self.program, family)
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
            let _ = nft::apply(&self.program, &script::delete_chains(&chains), "delete unused nftables chains");
        }
    }

    /// Records chains just flushed (keeping the time of those already waiting) and forgets
    /// waiting chains that are in use again.
    fn note_stale(&mut self, flushed: Vec<(Family, String)>, in_use: impl Fn(Family, &str) -> bool) {
        let now = Instant::now();
        self.stale.retain(|(f, c, _)| !in_use(*f, c));
        for (family, chain) in flushed {
            if !self.stale.iter().any(|(f, c, _)| *f == family && *c == chain) {
                self.stale.push((family, chain, now));
            }
        }
    }

    fn full_sync(&mut self, ports: &[ServicePort], node: &NodeContext) -> Result<SyncStats, Error> {
        let mut existing = BTreeMap::new();
        for family in Family::ALL {
            existing.insert(family, nft::list(&self.program, family)?);
        }
        let ruleset = Ruleset::build(ports, node);
        let tx = ruleset.full(node, &existing);
        let start = Instant::now();
        nft::apply(&self.program, &tx.script, "apply the nftables rules of all services")?;
        let apply = start.elapsed();
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
        self.note_stale(tx.stale_chains, |f, c| ruleset.family(f).any(|(_, r)| r.chains.contains_key(c)));
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
        let applied = self.applied.as_mut().expect("partial sync after a full one");
        let plan = applied.ruleset.partial(ports, node, changed);
        let start = Instant::now();
        if !plan.tx.script.is_empty() {
            nft::apply(&self.program, &plan.tx.script, "apply the nftables rules of the changed services")?;
        }
        let apply = start.elapsed();
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
        nft::apply(&self.program, &script::cleanup(), "delete the nftables tables")?;
        self.applied = None;
        self.stale.clear();
        Ok(())
    }
}
