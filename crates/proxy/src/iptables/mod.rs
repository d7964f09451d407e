//! The iptables mode: kube-proxy's own iptables layout, rule for rule, so that operators' habits
//! and tools keep working (`iptables -t nat -S`, `iptables-save | grep KUBE-SVC`).
//!
//! - [`names`]: the chains (`KUBE-SERVICES`, `KUBE-SVC-*`, `KUBE-SVL-*`, `KUBE-EXT-*`,
//!   `KUBE-FW-*`, `KUBE-SEP-*`, `KUBE-NODEPORTS`, `KUBE-MARK-MASQ`, `KUBE-POSTROUTING`, …) with
//!   kube-proxy's hashed names;
//! - [`render`] (pure): service ports → `iptables-restore` input of one family (filter and nat),
//!   full or partial;
//! - [`jumps`], [`save`]: the jumps from the built-in chains, and what `iptables-save` shows;
//! - [`stale`] (pure) and [`conntrack`]: forgetting UDP flows whose endpoint went away.
//!
//! [`IptablesMode`] applies the rendering with `iptables-restore -w 5 -W 100000 --noflush
//! --counters` (`ip6tables-restore` for IPv6) in the calling thread's network namespace. A full
//! sync reads `iptables-save` first (our jumps missing from the built-in chains, service chains
//! left over); a partial sync rewrites only the changed service ports' chains plus the dispatch
//! chains, and deletes the chains of removed ones. After a sync that touched UDP services, stale
//! UDP conntrack entries are deleted over ctnetlink.

pub mod conntrack;
pub mod endpoints;
mod exec;
pub mod jumps;
pub mod names;
pub mod render;
pub mod save;
pub mod stale;

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Instant;

use crate::model::{Protocol, ServicePort};
use crate::{Changed, Error, Mode, NodeContext, SyncStats};

pub use exec::RESTORE_ARGS;
pub use jumps::Table;
pub use render::{render, render_family, Existing, RenderOptions, Rendered};

/// An address family: one ruleset each (`iptables`, `ip6tables`), as kube-proxy runs one proxier
/// per family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    /// Whether `ip` is of this family.
    pub fn has(self, ip: &IpAddr) -> bool {
        match self {
            Family::V4 => ip.is_ipv4(),
            Family::V6 => ip.is_ipv6(),
        }
    }

    fn index(self) -> usize {
        match self {
            Family::V4 => 0,
            Family::V6 => 1,
        }
    }
}

/// How the mode programs the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// How rules are written. Its `drop_invalid` is overridden by the node's
    /// `nf_conntrack_tcp_be_liberal` (set: no INVALID drop), as kube-proxy does.
    pub render: RenderOptions,
    /// Delete stale UDP conntrack entries after syncs that touched UDP services.
    pub clear_conntrack: bool,
    /// Program IPv6 (`ip6tables`): `None` when the services or the node have IPv6 addresses.
    pub ipv6: Option<bool>,
}

impl Default for Options {
    fn default() -> Self {
        Options { render: RenderOptions::default(), clear_conntrack: true, ipv6: None }
    }
}

/// What the mode remembers of one family between syncs.
#[derive(Debug, Default)]
struct FamilyState {
    /// The service chains after the last successful sync; `None`: unknown (a full sync next).
    chains: Option<BTreeSet<String>>,
}

/// The iptables mode (see the module doc).
#[derive(Debug)]
pub struct IptablesMode {
    options: Options,
    state: [FamilyState; 2],
}

impl Default for IptablesMode {
    fn default() -> Self {
        IptablesMode::new()
    }
}

impl IptablesMode {
    /// The mode with kube-proxy's defaults.
    pub fn new() -> IptablesMode {
        IptablesMode::with_options(Options::default())
    }

    /// The mode with `options`.
    pub fn with_options(options: Options) -> IptablesMode {
        IptablesMode { options, state: Default::default() }
    }

    /// The families to program: IPv4 always, IPv6 when asked, or when anything is IPv6 (or
    /// IPv6 was programmed before and must now be emptied).
    fn families(&self, ports: &[ServicePort], node: &NodeContext) -> Vec<Family> {
        let v6 = self.options.ipv6.unwrap_or_else(|| {
            self.state[Family::V6.index()].chains.is_some()
                || node.addresses.iter().any(IpAddr::is_ipv6)
                || node.cluster_cidrs.iter().any(|c| c.addr().is_ipv6())
                || ports.iter().any(|p| p.cluster_ips.iter().chain(&p.external_ips).any(IpAddr::is_ipv6))
        });
        if v6 {
            vec![Family::V4, Family::V6]
        } else {
            vec![Family::V4]
        }
    }

    /// What a full sync needs to know of the node: the nat chains and our missing jumps.
    fn read_existing(&self, family: Family) -> Result<Existing, Error> {
        let saved = save::parse(&exec::save(family, &["filter", "nat"])?);
        let wanted = jumps::needed(family, self.options.render.localhost_node_ports);
        let mut missing_jumps = save::missing_jumps(saved.get("filter"), Table::Filter, &wanted);
        missing_jumps.extend(save::missing_jumps(saved.get("nat"), Table::Nat, &wanted));
        let nat_chains = saved.get("nat").map(|t| t.chains.clone()).unwrap_or_default();
        Ok(Existing { nat_chains, missing_jumps })
    }

    fn sync_family(
        &mut self,
        family: Family,
        ports: &[ServicePort],
        node: &NodeContext,
        changed: &Changed,
    ) -> Result<(Rendered, std::time::Duration), Error> {
        let known = self.state[family.index()].chains.clone();
        let (existing, changed) = match (known, changed) {
            (Some(nat_chains), Some(_)) => (Existing { nat_chains, missing_jumps: Vec::new() }, changed),
            _ => (self.read_existing(family)?, &None),
        };
        let mut options = self.options.render.clone();
        options.drop_invalid &= !exec::conntrack_tcp_liberal();
        if changed.is_none() && family == Family::V4 && options.localhost_node_ports {
            exec::enable_route_localnet()?;
        }
        let rendered = render_family(family, ports, node, changed, &existing, &options);
        let start = Instant::now();
        exec::restore(family, &rendered.text)?;
        let took = start.elapsed();
        self.state[family.index()].chains = Some(rendered.service_chains.clone());

        let udp_touched = ports
            .iter()
            .filter(|p| p.id.protocol == Protocol::Udp)
            .any(|p| changed.as_ref().is_none_or(|c| c.contains(&p.id)));
        if self.options.clear_conntrack && udp_touched {
            // Best effort, as kube-proxy: the rules are in place whatever happens here.
            if let Err(e) = clear_stale_udp(family, ports) {
                tracing::warn!(?family, error = %e, "iptables mode: clearing stale UDP conntrack entries");
            }
        }
        Ok((rendered, took))
    }
}

/// Deletes the stale UDP conntrack entries of `family` (see [`stale`]); returns how many.
pub fn clear_stale_udp(family: Family, ports: &[ServicePort]) -> Result<usize, Error> {
    let mut ct = conntrack::Conntrack::open()?;
    let flows = ct.dump(family)?;
    let mut deleted = 0;
    for flow in stale::stale(&flows, ports, family) {
        deleted += usize::from(ct.delete(flow)?);
    }
    Ok(deleted)
}

impl Mode for IptablesMode {
    fn name(&self) -> &'static str {
        "iptables"
    }

    fn sync(&mut self, ports: &[ServicePort], node: &NodeContext, changed: &Changed) -> Result<SyncStats, Error> {
        let mut stats = SyncStats::default();
        for family in self.families(ports, node) {
            match self.sync_family(family, ports, node, changed) {
                Ok((rendered, took)) => {
                    stats.services_written = stats.services_written.max(rendered.services_written);
                    stats.rules_written += rendered.rules;
                    stats.apply += took;
                }
                Err(e) => {
                    // The node's state is unknown now: the next sync is a full one.
                    self.state = Default::default();
                    return Err(e);
                }
            }
        }
        Ok(stats)
    }

    fn cleanup(&mut self) -> Result<(), Error> {
        self.state = Default::default();
        for family in [Family::V4, Family::V6] {
            if !exec::available(family) {
                continue;
            }
            let saved = save::parse(&exec::save(family, &["filter", "nat"])?);
            if let Some(input) = save::render_cleanup(&saved) {
                exec::restore(family, &input)?;
            }
        }
        Ok(())
    }
}
