//! The nft scripts of a sync (pure), as a list of operations ([`Op`]) that render to `nft -f`
//! text and that [`super::netlink`] sends as netlink messages. A full sync recreates the fixed
//! skeleton of both tables (base chains at kube-proxy's priorities, dispatch maps,
//! masquerading), empties the maps and rewrites every service — or, given what the maps hold
//! now, only deletes and adds the elements that differ; a partial sync touches only the service
//! ports that changed, writing the difference between their old and new [`ServiceRules`]. Chains
//! that no longer serve are flushed and left for a later sync to delete (as kube-proxy does:
//! older kernels notice only a moment later that a map element no longer references them).
//! [`Op::Cut`] marks where a transaction too big for one netlink message may be split: between
//! service ports, each of which is always written in one transaction.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use super::family::Family;
use super::names;
use super::rule::{AddrValue, Match, Rule, Stmt, Verdict};
use super::rules::{
    node_port_addresses, Element, ServiceRules, Slots, FIREWALL_IPS, HAIRPIN, MARK_MASQ, NO_ENDPOINT_NODEPORTS,
    NO_ENDPOINT_SERVICES, REJECT, SERVICE_IPS, SERVICE_NODEPORTS,
};
use super::TABLE;
use crate::model::Protocol;
use crate::NodeContext;

/// The mark of packets to masquerade (kube-proxy's default `--masquerade-bit` 14).
pub const MASQ_MARK: &str = "0x00004000";
/// [`MASQ_MARK`] as a number.
pub const MASQ_MARK_BITS: u32 = 0x4000;

/// A base chain's type, hook and priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BaseChain {
    pub kind: &'static str,
    pub hook: &'static str,
    pub priority: i32,
}

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

/// Jumps from base chains: from, only new connections, to.
const JUMPS: [(&str, bool, &str); 8] = [
    ("filter-prerouting", true, "firewall-check"),
    ("filter-input", true, "endpoints-check"),
    ("filter-forward", true, "endpoints-check"),
    ("filter-output", true, "endpoints-check"),
    ("filter-output", true, "firewall-check"),
    ("nat-prerouting", false, "services"),
    ("nat-output", false, "services"),
    ("nat-postrouting", false, "masquerading"),
];

/// Regular chains of the skeleton.
const FIXED_CHAINS: [&str; 6] = ["services", "endpoints-check", "firewall-check", "masquerading", MARK_MASQ, REJECT];

/// The set of node addresses that take NodePorts.
pub const NODEPORT_IPS: &str = "nodeport-ips";

/// The maps keyed on address . protocol . port.
pub const ADDR_MAPS: [&str; 3] = [SERVICE_IPS, NO_ENDPOINT_SERVICES, FIREWALL_IPS];
/// The maps keyed on protocol . port.
pub const PORT_MAPS: [&str; 2] = [SERVICE_NODEPORTS, NO_ENDPOINT_NODEPORTS];

/// What a table holds now (names only), as listed before a full sync.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableState {
    pub chains: BTreeSet<String>,
    pub sets: BTreeSet<String>,
    pub maps: BTreeSet<String>,
}

/// One element of a set or map, as `nft` writes it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Elem {
    /// An address (`nodeport-ips`).
    Addr(IpAddr),
    /// A map element: key (`10.96.0.10 . tcp . 80`) and verdict (`goto service-…`, `drop`).
    Map { key: String, verdict: String },
    /// An endpoint map element: key and endpoint (`65537 : 10.244.1.5 . 8080`).
    Slot { key: u32, to: SocketAddr },
    /// A hairpin element: `10.244.1.5 . 10.244.1.5`.
    Pair(IpAddr),
}

impl Elem {
    /// The element's key as `nft` writes it.
    pub(crate) fn key(&self) -> String {
        match self {
            Elem::Addr(a) => a.to_string(),
            Elem::Map { key, .. } => key.clone(),
            Elem::Slot { key, .. } => key.to_string(),
            Elem::Pair(a) => format!("{a} . {a}"),
        }
    }

    fn item(&self) -> String {
        match self {
            Elem::Map { key, verdict } => format!("{key} : {verdict}"),
            Elem::Slot { key, to } => format!("{key} : {} . {}", to.ip(), to.port()),
            Elem::Addr(_) | Elem::Pair(_) => self.key(),
        }
    }
}

impl From<&Element> for Elem {
    fn from(e: &Element) -> Elem {
        Elem::Map { key: e.key.clone(), verdict: e.verdict.clone() }
    }
}

/// What the kernel's sets and maps hold, per family and name (see [`TableState`]).
pub type Elements = BTreeMap<(Family, String), BTreeSet<Elem>>;

/// The kind of a named set or map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetKind {
    /// A set of addresses (`nodeport-ips`).
    Addrs,
    /// A dynamic set of client addresses with a timeout in seconds (ClientIP affinity).
    Affinity(u64),
    /// A verdict map keyed on `address . protocol . port`.
    AddrMap,
    /// A verdict map keyed on `protocol . port`.
    PortMap,
    /// An endpoint map: numbers (`numgen`) to `address . port` of a protocol.
    EndpointMap(Protocol),
    /// A set of `address . address` pairs ([`HAIRPIN`]).
    Pairs,
}

impl SetKind {
    /// Whether it is a map (`add map`, `flush map`).
    pub fn is_map(self) -> bool {
        matches!(self, SetKind::AddrMap | SetKind::PortMap | SetKind::EndpointMap(_))
    }
}

/// One operation of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Where the transaction may be split (writes nothing).
    Cut,
    AddTable(Family),
    DeleteTable(Family),
    AddChain {
        family: Family,
        name: String,
        base: Option<BaseChain>,
    },
    /// Deletes a chain's rules; `stale` when the chain is no longer used.
    FlushChain {
        family: Family,
        name: String,
        stale: bool,
    },
    DeleteChain {
        family: Family,
        name: String,
    },
    AddRule {
        family: Family,
        chain: String,
        rule: Rule,
    },
    AddSet {
        family: Family,
        name: String,
        kind: SetKind,
    },
    FlushSet {
        family: Family,
        name: String,
        map: bool,
    },
    DeleteSet {
        family: Family,
        name: String,
    },
    AddElements {
        family: Family,
        set: String,
        elems: Vec<Elem>,
    },
    DeleteElements {
        family: Family,
        set: String,
        elems: Vec<Elem>,
    },
}

impl Op {
    /// Appends the operation's `nft` text (a line, or nothing).
    pub fn write_text(&self, out: &mut String) {
        let _ = match self {
            Op::Cut => Ok(()),
            Op::AddTable(f) => writeln!(out, "add table {f} {TABLE}"),
            Op::DeleteTable(f) => writeln!(out, "delete table {f} {TABLE}"),
            Op::AddChain { family: f, name, base: None } => writeln!(out, "add chain {f} {TABLE} {name}"),
            Op::AddChain { family: f, name, base: Some(b) } => writeln!(
                out,
                "add chain {f} {TABLE} {name} {{ type {} hook {} priority {} ; policy accept ; }}",
                b.kind, b.hook, b.priority
            ),
            Op::FlushChain { family: f, name, .. } => writeln!(out, "flush chain {f} {TABLE} {name}"),
            Op::DeleteChain { family: f, name } => writeln!(out, "delete chain {f} {TABLE} {name}"),
            Op::AddRule { family: f, chain, rule } => writeln!(out, "add rule {f} {TABLE} {chain} {rule}"),
            Op::AddSet { family: f, name, kind } => {
                let addr = f.addr_type();
                match kind {
                    SetKind::Addrs => writeln!(out, "add set {f} {TABLE} {name} {{ type {addr} ; }}"),
                    SetKind::Affinity(timeout) => writeln!(
                        out,
                        "add set {f} {TABLE} {name} {{ type {addr} ; flags dynamic,timeout ; timeout {timeout}s ; }}"
                    ),
                    SetKind::AddrMap => writeln!(
                        out,
                        "add map {f} {TABLE} {name} {{ type {addr} . inet_proto . inet_service : verdict ; }}"
                    ),
                    SetKind::PortMap => {
                        writeln!(out, "add map {f} {TABLE} {name} {{ type inet_proto . inet_service : verdict ; }}")
                    }
                    SetKind::EndpointMap(proto) => writeln!(
                        out,
                        "add map {f} {TABLE} {name} {{ typeof numgen random mod {} : {} daddr . {} dport ; }}",
                        names::BLOCK_KEYS,
                        f.nft(),
                        proto.as_lower()
                    ),
                    SetKind::Pairs => {
                        writeln!(out, "add set {f} {TABLE} {name} {{ typeof {0} saddr . {0} daddr ; }}", f.nft())
                    }
                }
            }
            Op::FlushSet { family: f, name, map } => {
                writeln!(out, "flush {} {f} {TABLE} {name}", if *map { "map" } else { "set" })
            }
            Op::DeleteSet { family: f, name } => {
                let kind = if names::endpoint_map_epoch(name).is_some() { "map" } else { "set" };
                writeln!(out, "delete {kind} {f} {TABLE} {name}")
            }
            Op::AddElements { family: f, set, elems } => {
                let items: Vec<String> = elems.iter().map(Elem::item).collect();
                writeln!(out, "add element {f} {TABLE} {set} {{ {} }}", items.join(", "))
            }
            Op::DeleteElements { family: f, set, elems } => {
                let items: Vec<String> = elems.iter().map(Elem::key).collect();
                writeln!(out, "delete element {f} {TABLE} {set} {{ {} }}", items.join(", "))
            }
        };
    }
}

/// The `nft` text of `ops`.
pub fn render(ops: &[Op]) -> String {
    let mut out = String::new();
    for op in ops {
        op.write_text(&mut out);
    }
    out
}

/// A planned transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transaction {
    /// The nft script (the text of `ops`; empty when only the operations were planned).
    pub script: String,
    /// Rules and map elements written.
    pub rules: usize,
    /// Chains flushed because nothing uses them any more, to delete in a later sync.
    pub stale_chains: Vec<(Family, String)>,
    /// The operations.
    pub ops: Vec<Op>,
}

impl Transaction {
    /// Fills in [`Transaction::script`].
    fn rendered(mut self) -> Transaction {
        self.script = render(&self.ops);
        self
    }
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
    fn op(&mut self, op: Op) {
        self.tx.ops.push(op);
    }

    fn chain(&mut self, name: &str) {
        let family = self.family;
        self.op(Op::AddChain { family, name: name.to_string(), base: None });
        self.op(Op::FlushChain { family, name: name.to_string(), stale: false });
    }

    fn rule(&mut self, chain: &str, rule: Rule) {
        let family = self.family;
        self.op(Op::AddRule { family, chain: chain.to_string(), rule });
        self.tx.rules += 1;
    }

    fn set(&mut self, name: &str, kind: SetKind) {
        let family = self.family;
        self.op(Op::AddSet { family, name: name.to_string(), kind });
    }

    fn add_elems(&mut self, set: &str, elems: Vec<Elem>) {
        if !elems.is_empty() {
            self.tx.rules += elems.len();
            let family = self.family;
            self.op(Op::AddElements { family, set: set.to_string(), elems });
        }
    }

    fn delete_elems(&mut self, set: &str, elems: Vec<Elem>) {
        if !elems.is_empty() {
            let family = self.family;
            self.op(Op::DeleteElements { family, set: set.to_string(), elems });
        }
    }

    /// `add element` (or `delete element`) for elements grouped by map.
    fn elements<'e>(&mut self, add: bool, elements: impl IntoIterator<Item = &'e Element>) {
        let mut by_map: BTreeMap<&str, Vec<Elem>> = BTreeMap::new();
        for e in elements {
            by_map.entry(e.map).or_default().push(e.into());
        }
        for (map, elems) in by_map {
            if add {
                self.add_elems(map, elems);
            } else {
                self.delete_elems(map, elems);
            }
        }
    }

    fn stale_chain(&mut self, name: &str) {
        let family = self.family;
        self.op(Op::FlushChain { family, name: name.to_string(), stale: true });
        self.tx.stale_chains.push((family, name.to_string()));
    }

    fn delete_set(&mut self, name: &str) {
        let family = self.family;
        self.op(Op::DeleteSet { family, name: name.to_string() });
    }

    /// Makes a set hold exactly `want`: emptied and filled, or (given what it holds now) only
    /// the elements that differ deleted and added.
    fn fill(&mut self, set: &str, map: bool, want: Vec<Elem>, now: Option<&BTreeSet<Elem>>) {
        match now {
            None => {
                let family = self.family;
                self.op(Op::FlushSet { family, name: set.to_string(), map });
                self.add_elems(set, want);
            }
            Some(now) => {
                let want_set: BTreeSet<&Elem> = want.iter().collect();
                let gone: Vec<Elem> = now.iter().filter(|e| !want_set.contains(e)).cloned().collect();
                let new: Vec<Elem> = want.into_iter().filter(|e| !now.contains(e)).collect();
                self.delete_elems(set, gone);
                self.add_elems(set, new);
            }
        }
    }

    /// The table's fixed part. Without `elements`, its maps are emptied (and filled by the
    /// services); with them, the maps are left for [`Writer::fill`].
    fn skeleton(&mut self, node: &NodeContext, elements: Option<&Elements>) {
        let family = self.family;
        let f = family;
        self.op(Op::AddTable(f));
        for (name, kind, hook, priority) in BASE_CHAINS {
            let base = Some(BaseChain { kind, hook, priority });
            self.op(Op::AddChain { family, name: name.to_string(), base });
            self.op(Op::FlushChain { family, name: name.to_string(), stale: false });
        }
        for name in FIXED_CHAINS {
            self.chain(name);
        }
        self.set(NODEPORT_IPS, SetKind::Addrs);
        let node_ips = node_port_addresses(node, f);
        let now = elements.map(|e| e.get(&(f, NODEPORT_IPS.to_string())).unwrap_or(&EMPTY));
        let want: Vec<Elem> = node_ips.iter().copied().map(Elem::Addr).collect();
        let count = self.tx.rules;
        self.fill(NODEPORT_IPS, false, want, now);
        self.tx.rules = count; // node addresses are not counted as rules
        for map in ADDR_MAPS {
            self.set(map, SetKind::AddrMap);
            if elements.is_none() {
                self.op(Op::FlushSet { family, name: map.to_string(), map: true });
            }
        }
        for map in PORT_MAPS {
            self.set(map, SetKind::PortMap);
            if elements.is_none() {
                self.op(Op::FlushSet { family, name: map.to_string(), map: true });
            }
        }
        self.set(HAIRPIN, SetKind::Pairs);
        for (from, new_only, to) in JUMPS {
            let cond = if new_only { vec![Match::CtStateNew] } else { vec![] };
            self.rule(from, Rule::verdict(cond, Verdict::Jump(to.into())));
        }
        self.rule(MARK_MASQ, Rule::stmt(Stmt::MarkOr(MASQ_MARK_BITS)));
        // Hairpin: an endpoint that reached itself through a service (DNATed: a node talking to
        // its own address, an endpoint of some service, is not one).
        let hairpin = vec![Match::CtStatusDnat, Match::AddrPairIn { family, set: HAIRPIN.into() }];
        self.rule("masquerading", Rule::verdict(hairpin, Verdict::Jump(MARK_MASQ.into())));
        self.rule("masquerading", Rule::verdict(vec![Match::MarkClear(MASQ_MARK_BITS)], Verdict::Return));
        self.rule("masquerading", Rule::stmt(Stmt::MarkXor(MASQ_MARK_BITS)));
        self.rule("masquerading", Rule::stmt(Stmt::MasqueradeFullyRandom));
        self.rule(REJECT, Rule::new(vec![Match::L4proto(Protocol::Tcp)], Stmt::RejectTcpReset));
        self.rule(REJECT, Rule::stmt(Stmt::Reject));
        self.rule("firewall-check", Rule::stmt(Stmt::DispatchAddr { family, map: FIREWALL_IPS.into() }));
        // NodePorts: only to the node's addresses (every local one but loopback if none given).
        let to_node = || {
            let daddr = |negate, value| Match::Addr { family, source: false, negate, value };
            if node_ips.is_empty() {
                let loopback = match family {
                    Family::Ipv4 => AddrValue::Prefix("127.0.0.0/8".parse().expect("a prefix")),
                    Family::Ipv6 => AddrValue::One(std::net::Ipv6Addr::LOCALHOST.into()),
                };
                vec![Match::FibLocal { source: false }, daddr(true, loopback)]
            } else {
                vec![daddr(false, AddrValue::Named(NODEPORT_IPS.into()))]
            }
        };
        for (chain, ips, ports) in [
            ("services", SERVICE_IPS, SERVICE_NODEPORTS),
            ("endpoints-check", NO_ENDPOINT_SERVICES, NO_ENDPOINT_NODEPORTS),
        ] {
            self.rule(chain, Rule::stmt(Stmt::DispatchAddr { family, map: ips.into() }));
            self.rule(chain, Rule::new(to_node(), Stmt::DispatchPort { map: ports.into() }));
        }
    }

    /// One service port's chains (created and emptied), sets and rules, its endpoint-map
    /// elements (those that differ from `old_slots`, deleted first), then (with `elements`) its
    /// dispatch map elements: every chain and map exists before a rule refers to it, and the
    /// rules and endpoint-map elements of a port change in one transaction.
    fn service(&mut self, s: &ServiceRules, old_slots: Option<&BTreeMap<String, Slots>>, elements: bool) {
        self.op(Op::Cut);
        for name in s.chains.keys() {
            self.chain(name);
        }
        for (name, timeout) in &s.sets {
            self.set(name, SetKind::Affinity(*timeout));
        }
        let maps: BTreeMap<&String, Protocol> = s.slots.values().map(|s| (&s.map, s.protocol)).collect();
        for (map, protocol) in maps {
            self.set(map, SetKind::EndpointMap(protocol));
        }
        for (chain, rules) in &s.chains {
            for rule in rules {
                self.rule(chain, rule.clone());
            }
        }
        self.slots(old_slots, Some(&s.slots));
        if elements {
            self.elements(true, &s.elements);
        }
    }

    /// The endpoint-map elements that differ between `old` and `new`: deleted, then added.
    fn slots(&mut self, old: Option<&BTreeMap<String, Slots>>, new: Option<&BTreeMap<String, Slots>>) {
        type ByKey<'s> = BTreeMap<(&'s str, u32), SocketAddr>;
        fn by_key(slots: Option<&BTreeMap<String, Slots>>) -> ByKey<'_> {
            let all = slots.into_iter().flat_map(|s| s.values());
            all.flat_map(|s| s.elements().map(|(k, to)| ((s.map.as_str(), k), to))).collect()
        }
        /// The elements of `a` that `b` does not hold as they are, by map.
        fn missing<'s>(a: &ByKey<'s>, b: &ByKey<'s>) -> BTreeMap<&'s str, Vec<Elem>> {
            let mut out: BTreeMap<&str, Vec<Elem>> = BTreeMap::new();
            for (&(map, key), to) in a.iter().filter(|(k, to)| b.get(*k) != Some(*to)) {
                out.entry(map).or_default().push(Elem::Slot { key, to: *to });
            }
            out
        }
        let (old, new) = (by_key(old), by_key(new));
        let (delete, add) = (missing(&old, &new), missing(&new, &old));
        for (map, elems) in delete {
            self.delete_elems(map, elems);
        }
        for (map, elems) in add {
            self.add_elems(map, elems);
        }
    }
}

static EMPTY: BTreeSet<Elem> = BTreeSet::new();

/// The full transaction for `rulesets` (per family: service ports' rules) on `node`, given what
/// the tables hold now (`existing`; missing families count as empty): chains and affinity sets
/// of the tables that no service uses any more are flushed (chains) or deleted (sets).
pub fn full(rulesets: &Rulesets<'_>, node: &NodeContext, existing: &BTreeMap<Family, TableState>) -> Transaction {
    full_ops(rulesets, node, existing, None, None).rendered()
}

/// Per family, every service port's rules.
pub type Rulesets<'a> = BTreeMap<Family, &'a BTreeMap<crate::ServicePortName, ServiceRules>>;

/// [`full`] without its text. With `elements` (what the sets and maps hold now), the maps are
/// not emptied and refilled: only the elements that differ are deleted and added. With
/// `applied` too (the rules the last sync applied), a service port whose rules are the same and
/// whose chains and sets all exist (`existing`) is not rewritten.
pub fn full_ops(
    rulesets: &Rulesets<'_>,
    node: &NodeContext,
    existing: &BTreeMap<Family, TableState>,
    elements: Option<&Elements>,
    applied: Option<&Rulesets<'_>>,
) -> Transaction {
    let mut tx = Transaction::default();
    for family in Family::ALL {
        let empty = BTreeMap::new();
        let services = rulesets.get(&family).copied().unwrap_or(&empty);
        let before = applied.and_then(|a| a.get(&family).copied());
        let current = existing.get(&family).cloned().unwrap_or_default();
        let mut w = Writer { tx: &mut tx, family };
        w.skeleton(node, elements);
        for (name, s) in services {
            let old = before.and_then(|b| b.get(name));
            let in_place = elements.is_some()
                && old == Some(s)
                && s.chains.keys().all(|c| current.chains.contains(c))
                && s.sets.keys().all(|c| current.sets.contains(c));
            if !in_place {
                w.service(s, old.map(|o| &o.slots), elements.is_none());
            }
        }
        // The endpoint-map elements of ports that are gone (their blocks are free again).
        for (_, gone) in before.into_iter().flatten().filter(|(name, _)| !services.contains_key(*name)) {
            w.op(Op::Cut);
            w.slots(Some(&gone.slots), None);
        }
        let hairpin: Vec<Elem> = services
            .values()
            .flat_map(|s| &s.hairpin)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(|a| Elem::Pair(*a))
            .collect();
        let now = elements.map(|e| e.get(&(family, HAIRPIN.to_string())).unwrap_or(&EMPTY));
        w.op(Op::Cut);
        w.fill(HAIRPIN, false, hairpin, now);
        if let Some(elements) = elements {
            w.op(Op::Cut);
            let mut want: BTreeMap<&str, Vec<Elem>> = BTreeMap::new();
            for s in services.values() {
                for e in &s.elements {
                    want.entry(e.map).or_default().push(e.into());
                }
            }
            for map in ADDR_MAPS.into_iter().chain(PORT_MAPS) {
                let now = elements.get(&(family, map.to_string())).unwrap_or(&EMPTY);
                w.fill(map, true, want.remove(map).unwrap_or_default(), Some(now));
            }
        }
        let active_chains: BTreeSet<&String> = services.values().flat_map(|s| s.chains.keys()).collect();
        let active_sets: BTreeSet<&String> = services.values().flat_map(|s| s.sets.keys()).collect();
        for chain in current.chains.iter().filter(|c| names::is_service_chain(c) && !active_chains.contains(c)) {
            w.stale_chain(chain);
        }
        for set in current.sets.iter().filter(|s| names::is_affinity_set(s) && !active_sets.contains(s)) {
            w.delete_set(set);
        }
        let active_maps: BTreeSet<&String> = services.values().flat_map(|s| s.slots.values().map(|s| &s.map)).collect();
        for map in current.maps.iter().filter(|m| names::endpoint_map_epoch(m).is_some() && !active_maps.contains(m)) {
            w.delete_set(map);
        }
    }
    tx
}

/// What the tables hold after applying `services` (per family, its service ports' rules) with
/// `stale` chains flushed but not deleted yet: the names of the chains, sets and maps, and how
/// many there are — the kernel's `use` count of the table (which leaves anonymous sets out).
/// When the kernel's count is the same, a full sync can take these names instead of listing
/// the table.
pub fn expected_state<'a>(
    services: impl Iterator<Item = &'a ServiceRules>,
    stale: impl Iterator<Item = &'a str>,
) -> (TableState, u32) {
    let mut state = TableState::default();
    state.chains.extend(BASE_CHAINS.iter().map(|(name, ..)| name.to_string()));
    state.chains.extend(FIXED_CHAINS.iter().map(|c| c.to_string()));
    state.chains.extend(stale.map(str::to_string));
    state.sets.insert(NODEPORT_IPS.to_string());
    state.sets.insert(HAIRPIN.to_string());
    state.maps.extend(ADDR_MAPS.into_iter().chain(PORT_MAPS).map(str::to_string));
    for s in services {
        state.chains.extend(s.chains.keys().cloned());
        state.sets.extend(s.sets.keys().cloned());
        state.maps.extend(s.slots.values().map(|s| s.map.clone()));
    }
    let count = state.chains.len() + state.sets.len() + state.maps.len();
    (state, count as u32)
}

/// The partial transaction for `changes`: only the differences of the changed service ports.
/// Unchanged chains and elements are not written; chains whose rules changed are rewritten.
pub fn partial(changes: &[Change<'_>]) -> Transaction {
    partial_ops(changes).rendered()
}

/// [`partial`] without its text.
pub fn partial_ops(changes: &[Change<'_>]) -> Transaction {
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
        w.elements(false, gone);
        // The chains and sets that are new or changed, as a ServiceRules of their own.
        for (o, n) in &changes {
            let written = ServiceRules {
                chains: n.chains.iter().filter(|(k, v)| o.chains.get(*k) != Some(*v)).map(clone2).collect(),
                sets: n.sets.iter().filter(|(k, v)| o.sets.get(*k) != Some(*v)).map(clone2).collect(),
                elements: n.elements.difference(&o.elements).cloned().collect(),
                slots: n.slots.clone(),
                ..ServiceRules::default()
            };
            w.service(&written, Some(&o.slots), true);
        }
        w.op(Op::Cut);
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
pub fn delete_chains(chains: &[(Family, String)]) -> Vec<Op> {
    chains.iter().map(|(family, name)| Op::DeleteChain { family: *family, name: name.clone() }).collect()
}

/// Removes both tables, whether they exist or not (adding an existing table is a no-op).
pub fn cleanup() -> Vec<Op> {
    Family::ALL.into_iter().flat_map(|f| [Op::AddTable(f), Op::DeleteTable(f)]).collect()
}
