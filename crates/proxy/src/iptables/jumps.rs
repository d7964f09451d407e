//! The jumps from the built-in chains into kube-proxy's chains (kube-proxy's
//! `iptablesJumpChains`, plus kubelet's `KUBE-FIREWALL` when node ports are served on
//! localhost). They live in chains podnet does not own, so they are not rewritten by the restore:
//! a full sync inserts (`-I`) the ones an `iptables-save` does not show.

use super::names::{
    KUBE_EXTERNAL_SERVICES, KUBE_FIREWALL, KUBE_FORWARD, KUBE_NODEPORTS, KUBE_POSTROUTING, KUBE_PROXY_FIREWALL,
    KUBE_SERVICES,
};
use super::Family;

/// An iptables table podnet writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Table {
    Filter,
    Nat,
}

impl Table {
    /// `filter`, `nat`.
    pub fn as_str(self) -> &'static str {
        match self {
            Table::Filter => "filter",
            Table::Nat => "nat",
        }
    }
}

/// A rule in a built-in chain jumping to one of our chains.
#[derive(Debug, PartialEq, Eq)]
pub struct Jump {
    pub table: Table,
    /// The built-in chain (`PREROUTING`, `INPUT`, …).
    pub chain: &'static str,
    /// Our chain.
    pub target: &'static str,
    /// The rule's comment ("" for none).
    pub comment: &'static str,
    /// Only for new connections (`-m conntrack --ctstate NEW`).
    pub new_only: bool,
}

const fn jump(table: Table, chain: &'static str, target: &'static str, comment: &'static str, new_only: bool) -> Jump {
    Jump { table, chain, target, comment, new_only }
}

const EXTERNAL: &str = "kubernetes externally-visible service portals";
const PORTALS: &str = "kubernetes service portals";
const LB_FIREWALL: &str = "kubernetes load balancer firewall";

/// kube-proxy's jumps, in its order.
pub const JUMPS: &[Jump] = &[
    jump(Table::Filter, "INPUT", KUBE_EXTERNAL_SERVICES, EXTERNAL, true),
    jump(Table::Filter, "FORWARD", KUBE_EXTERNAL_SERVICES, EXTERNAL, true),
    jump(Table::Filter, "INPUT", KUBE_NODEPORTS, "kubernetes health check service ports", false),
    jump(Table::Filter, "FORWARD", KUBE_SERVICES, PORTALS, true),
    jump(Table::Filter, "OUTPUT", KUBE_SERVICES, PORTALS, true),
    jump(Table::Filter, "FORWARD", KUBE_FORWARD, "kubernetes forwarding rules", false),
    jump(Table::Filter, "INPUT", KUBE_PROXY_FIREWALL, LB_FIREWALL, true),
    jump(Table::Filter, "OUTPUT", KUBE_PROXY_FIREWALL, LB_FIREWALL, true),
    jump(Table::Filter, "FORWARD", KUBE_PROXY_FIREWALL, LB_FIREWALL, true),
    jump(Table::Nat, "OUTPUT", KUBE_SERVICES, PORTALS, false),
    jump(Table::Nat, "PREROUTING", KUBE_SERVICES, PORTALS, false),
    jump(Table::Nat, "POSTROUTING", KUBE_POSTROUTING, "kubernetes postrouting rules", false),
];

/// kubelet's jumps to `KUBE-FIREWALL` (IPv4 with localhost node ports).
pub const KUBELET_JUMPS: &[Jump] =
    &[jump(Table::Filter, "INPUT", KUBE_FIREWALL, "", false), jump(Table::Filter, "OUTPUT", KUBE_FIREWALL, "", false)];

/// The jumps a ruleset of `family` needs.
pub fn needed(family: Family, localhost_node_ports: bool) -> Vec<&'static Jump> {
    let kubelet = family == Family::V4 && localhost_node_ports;
    JUMPS.iter().chain(KUBELET_JUMPS.iter().filter(|_| kubelet)).collect()
}

impl Jump {
    /// The rule's arguments after the chain, as kube-proxy writes them.
    pub fn spec(&self) -> String {
        let mut s = String::new();
        if self.new_only {
            s.push_str("-m conntrack --ctstate NEW ");
        }
        if !self.comment.is_empty() {
            s.push_str(&format!("-m comment --comment \"{}\" ", self.comment));
        }
        s.push_str("-j ");
        s.push_str(self.target);
        s
    }

    /// Whether a saved rule (`chain`, its arguments as `iptables-save` prints them) is this jump.
    pub fn matches(&self, chain: &str, args: &str) -> bool {
        if chain != self.chain || !(args.ends_with(&format!("-j {}", self.target))) {
            return false;
        }
        let comment = self.comment.is_empty() || args.contains(&format!("--comment \"{}\"", self.comment));
        comment && self.new_only == args.contains("--ctstate NEW")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_and_matching_saved_rules() {
        let j = &JUMPS[0];
        assert_eq!(
            j.spec(),
            "-m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES"
        );
        assert!(j.matches("INPUT", &j.spec()));
        assert!(!j.matches("OUTPUT", &j.spec()));
        let pre = JUMPS.iter().find(|j| j.chain == "PREROUTING").unwrap();
        assert!(pre.matches("PREROUTING", "-m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES"));
        assert!(!pre.matches("PREROUTING", "-j KUBE-SERVICES"), "another tool's jump is not ours");
        assert_eq!(KUBELET_JUMPS[0].spec(), "-j KUBE-FIREWALL");
        assert_eq!(needed(Family::V6, true).len(), JUMPS.len());
        assert_eq!(needed(Family::V4, true).len(), JUMPS.len() + 2);
    }
}
