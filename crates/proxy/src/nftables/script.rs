//! The nft scripts of a sync (pure): a full sync recreates the fixed skeleton of both tables
//! (base chains at kube-proxy's priorities, dispatch maps, masquerading), empties the maps and
//! rewrites every service; a partial sync touches only the service ports that changed, writing
//! the difference between their old and new [`ServiceRules`]. Each script is applied as one
//! `nft -f -` transaction. Chains that no longer serve are flushed and left for a later sync to
//! delete (as kube-proxy does: older kernels notice only a moment later that a map element no
//! longer references them).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::family::Family;
use super::names;
use super::rules::{
    node_port_addresses, Element, ServiceRules, FIREWALL_IPS, MARK_MASQ, NO_ENDPOINT_NODEPORTS, NO_ENDPOINT_SERVICES,
    REJECT, SERVICE_IPS, SERVICE_NODEPORTS,
};
use super::TABLE;
use crate::NodeContext;

/// The mark of packets to masquerade (kube-proxy's default `--masquerade-bit` 14).
pub const MASQ_MARK: &str = "0x00004000";

/// Base chains: name, type, hook, priority. The filter chains run before DNAT (dstnat - 10) so
/// that they see the service addresses.
const BASE_CHAINS: [(&str, &str, &str, i32); 7] = [
    ("filter-prerouting", "filter", "prerouting", -110),
    ("filter-input", "filter", "input", -110),
    ("filter-forward", "filter", "forward", -110),
    ("filter-output", "filter", "output", -110),
    ("nat-prerouting", "nat", "prerouting", -100),
    ("nat-output", "nat", "output", -100),
    ("nat-postrouting", "nat", "postrouting", 100),
];

/// Jumps from base chains: from, condition, to.
const JUMPS: [(&str, &str, &str); 8] = [
    ("filter-prerouting", "ct state new ", "firewall-check"),
    ("filter-input", "ct state new ", "endpoints-check"),
    ("filter-forward", "ct state new ", "endpoints-check"),
    ("filter-output", "ct state new ", "endpoints-check"),
    ("filter-output", "ct state new ", "firewall-check"),
    ("nat-prerouting", "", "services"),
    ("nat-output", "", "services"),
    ("nat-postrouting", "", "masquerading"),
];

/// Regular chains of the skeleton.
const FIXED_CHAINS: [&str; 6] = ["services", "endpoints-check", "firewall-check", "masquerading", MARK_MASQ, REJECT];

/// The set of node addresses that take NodePorts.
const NODEPORT_IPS: &str = "nodeport-ips";

/// What a table holds now (names only), as listed before a full sync.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableState {
    pub chains: BTreeSet<String>,
    pub sets: BTreeSet<String>,
    pub maps: BTreeSet<String>,
}

/// A rendered transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transaction {
    /// The nft script.
    pub script: String,
    /// Rules and map elements written.
    pub rules: usize,
    /// Chains flushed because nothing uses them any more, to delete in a later sync.
    pub stale_chains: Vec<(Family, String)>,
}

/// One service port's change in one family: its rules before and after (`None`: absent).
#[derive(Debug, Clone, Copy)]
pub struct Change<'a> {
    pub family: Family,
    pub old: Option<&'a ServiceRules>,
    pub new: Option<&'a ServiceRules>,
}

struct Writer<'a> {
    tx: &'a mut Transaction,
    family: Family,
}

impl Writer<'_> {
    fn line(&mut self, text: std::fmt::Arguments<'_>) {
        let _ = writeln!(self.tx.script, "{text}");
    }

    fn chain(&mut self, name: &str) {
        let f = self.family;
        self.line(format_args!("add chain {f} {TABLE} {name}"));
        self.line(format_args!("flush chain {f} {TABLE} {name}"));
    }

    fn rule(&mut self, chain: &str, rule: &str) {
        let f = self.family;
        self.line(format_args!("add rule {f} {TABLE} {chain} {rule}"));
        self.tx.rules += 1;
    }

    fn set(&mut self, name: &str, timeout: u64) {
        let (f, t) = (self.family, self.family.addr_type());
        self.line(format_args!(
            "add set {f} {TABLE} {name} {{ type {t} ; flags dynamic,timeout ; timeout {timeout}s ; }}"
        ));
    }

    /// `add element` (or `delete element`, without verdicts) for elements grouped by map.
    fn elements<'e>(&mut self, verb: &str, elements: impl IntoIterator<Item = &'e Element>) {
        let mut by_map: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for e in elements {
            let item = if verb == "add" { format!("{} : {}", e.key, e.verdict) } else { e.key.clone() };
            by_map.entry(e.map).or_default().push(item);
            if verb == "add" {
                self.tx.rules += 1;
            }
        }
        let f = self.family;
        for (map, items) in by_map {
            self.line(format_args!("{verb} element {f} {TABLE} {map} {{ {} }}", items.join(", ")));
        }
    }

    fn stale_chain(&mut self, name: &str) {
        let f = self.family;
        self.line(format_args!("flush chain {f} {TABLE} {name}"));
        self.tx.stale_chains.push((f, name.to_string()));
    }

    fn delete_set(&mut self, name: &str) {
        let f = self.family;
        self.line(format_args!("delete set {f} {TABLE} {name}"));
    }

    /// The table's fixed part, with empty maps.
    fn skeleton(&mut self, node: &NodeContext) {
        let f = self.family;
        let ip = f.nft();
        let addr = f.addr_type();
        self.line(format_args!("add table {f} {TABLE}"));
        for (name, kind, hook, priority) in BASE_CHAINS {
            self.line(format_args!(
                "add chain {f} {TABLE} {name} {{ type {kind} hook {hook} priority {priority} ; policy accept ; }}"
            ));
            self.line(format_args!("flush chain {f} {TABLE} {name}"));
        }
        for name in FIXED_CHAINS {
            self.chain(name);
        }
        self.line(format_args!("add set {f} {TABLE} {NODEPORT_IPS} {{ type {addr} ; }}"));
        self.line(format_args!("flush set {f} {TABLE} {NODEPORT_IPS}"));
        let node_ips = node_port_addresses(node, f);
        if !node_ips.is_empty() {
            let ips: Vec<String> = node_ips.iter().map(ToString::to_string).collect();
            self.line(format_args!("add element {f} {TABLE} {NODEPORT_IPS} {{ {} }}", ips.join(", ")));
        }
        for map in [SERVICE_IPS, NO_ENDPOINT_SERVICES, FIREWALL_IPS] {
            self.line(format_args!(
                "add map {f} {TABLE} {map} {{ type {addr} . inet_proto . inet_service : verdict ; }}"
            ));
            self.line(format_args!("flush map {f} {TABLE} {map}"));
        }
        for map in [SERVICE_NODEPORTS, NO_ENDPOINT_NODEPORTS] {
            self.line(format_args!("add map {f} {TABLE} {map} {{ type inet_proto . inet_service : verdict ; }}"));
            self.line(format_args!("flush map {f} {TABLE} {map}"));
        }
        for (from, condition, to) in JUMPS {
            self.rule(from, &format!("{condition}jump {to}"));
        }
        self.rule(MARK_MASQ, &format!("mark set mark or {MASQ_MARK}"));
        self.rule("masquerading", &format!("mark and {MASQ_MARK} == 0 return"));
        self.rule("masquerading", &format!("mark set mark xor {MASQ_MARK}"));
        self.rule("masquerading", "masquerade fully-random");
        self.rule(REJECT, "meta l4proto tcp reject with tcp reset");
        self.rule(REJECT, "reject");
        self.rule("firewall-check", &format!("{ip} daddr . meta l4proto . th dport vmap @{FIREWALL_IPS}"));
        // NodePorts: only to the node's addresses (every local one but loopback if none given).
        let to_node = if node_ips.is_empty() {
            format!("fib daddr type local {ip} daddr != {}", f.loopback())
        } else {
            format!("{ip} daddr @{NODEPORT_IPS}")
        };
        for (chain, ips, ports) in [
            ("services", SERVICE_IPS, SERVICE_NODEPORTS),
            ("endpoints-check", NO_ENDPOINT_SERVICES, NO_ENDPOINT_NODEPORTS),
        ] {
            self.rule(chain, &format!("{ip} daddr . meta l4proto . th dport vmap @{ips}"));
            self.rule(chain, &format!("{to_node} meta l4proto . th dport vmap @{ports}"));
        }
    }

    /// Chains (created and emptied), sets, rules and elements of several services: every
    /// chain exists before a rule refers to it.
    fn services<'s>(&mut self, services: impl Iterator<Item = &'s ServiceRules> + Clone) {
        for s in services.clone() {
            for name in s.chains.keys() {
                self.chain(name);
            }
        }
        for s in services.clone() {
            for (name, timeout) in &s.sets {
                self.set(name, *timeout);
            }
        }
        for s in services.clone() {
            for (chain, rules) in &s.chains {
                for rule in rules {
                    self.rule(chain, rule);
                }
            }
        }
        for s in services {
            self.elements("add", &s.elements);
        }
    }
}

/// The full transaction for `rulesets` (per family: service ports' rules) on `node`, given what
/// the tables hold now (`existing`; missing families count as empty): chains and affinity sets
/// of the tables that no service uses any more are flushed (chains) or deleted (sets).
pub fn full(
    rulesets: &BTreeMap<Family, &BTreeMap<crate::ServicePortName, ServiceRules>>,
    node: &NodeContext,
    existing: &BTreeMap<Family, TableState>,
) -> Transaction {
    let mut tx = Transaction::default();
    for family in Family::ALL {
        let empty = BTreeMap::new();
        let services = rulesets.get(&family).copied().unwrap_or(&empty);
        let mut w = Writer { tx: &mut tx, family };
        w.skeleton(node);
        w.services(services.values());
        let current = existing.get(&family).cloned().unwrap_or_default();
        let active_chains: BTreeSet<&String> = services.values().flat_map(|s| s.chains.keys()).collect();
        let active_sets: BTreeSet<&String> = services.values().flat_map(|s| s.sets.keys()).collect();
        for chain in current.chains.iter().filter(|c| names::is_service_chain(c) && !active_chains.contains(c)) {
            w.stale_chain(chain);
        }
        for set in current.sets.iter().filter(|s| names::is_affinity_set(s) && !active_sets.contains(s)) {
            w.delete_set(set);
        }
    }
    tx
}

/// The partial transaction for `changes`: only the differences of the changed service ports.
/// Unchanged chains and elements are not written; chains whose rules changed are rewritten.
pub fn partial(changes: &[Change<'_>]) -> Transaction {
    let mut tx = Transaction::default();
    let empty = ServiceRules::default();
    for family in Family::ALL {
        let changes: Vec<(&ServiceRules, &ServiceRules)> = changes
            .iter()
            .filter(|c| c.family == family)
            .map(|c| (c.old.unwrap_or(&empty), c.new.unwrap_or(&empty)))
            .collect();
        if changes.is_empty() {
            continue;
        }
        let mut w = Writer { tx: &mut tx, family };
        let gone: Vec<&Element> = changes.iter().flat_map(|(o, n)| o.elements.difference(&n.elements)).collect();
        w.elements("delete", gone);
        // The chains and sets that are new or changed, as a ServiceRules of their own.
        let written: Vec<ServiceRules> = changes
            .iter()
            .map(|(o, n)| ServiceRules {
                chains: n.chains.iter().filter(|(k, v)| o.chains.get(*k) != Some(*v)).map(clone2).collect(),
                sets: n.sets.iter().filter(|(k, v)| o.sets.get(*k) != Some(*v)).map(clone2).collect(),
                elements: n.elements.difference(&o.elements).cloned().collect(),
                udp: None,
            })
            .collect();
        w.services(written.iter());
        for (o, n) in &changes {
            for chain in o.chains.keys().filter(|c| !n.chains.contains_key(*c)) {
                w.stale_chain(chain);
            }
        }
        for (o, n) in &changes {
            for set in o.sets.keys().filter(|s| !n.sets.contains_key(*s)) {
                w.delete_set(set);
            }
        }
    }
    tx
}

fn clone2<K: Clone, V: Clone>((k, v): (&K, &V)) -> (K, V) {
    (k.clone(), v.clone())
}

/// Deletes chains left over by earlier syncs (already flushed and unreferenced).
pub fn delete_chains(chains: &[(Family, String)]) -> String {
    let mut script = String::new();
    for (family, chain) in chains {
        let _ = writeln!(script, "delete chain {family} {TABLE} {chain}");
    }
    script
}

/// Removes both tables, whether they exist or not (adding an existing table is a no-op).
pub fn cleanup() -> String {
    let mut script = String::new();
    for family in Family::ALL {
        let _ = writeln!(script, "add table {family} {TABLE}\ndelete table {family} {TABLE}");
    }
    script
}
