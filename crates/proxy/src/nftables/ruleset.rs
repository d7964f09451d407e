//! The rules of every service port per family ([`Ruleset`], pure), and the plans of a full and of
//! a partial sync built from it. A map key (address . protocol . port) belongs to one service
//! port only: when two ports claim the same key (two Services with the same external IP and
//! port), the one already holding it keeps it — in a full sync, the first by name.
//!
//! The ruleset also hands out the blocks of endpoint-map keys ([`super::names::endpoint_map`]):
//! a balancing chain keeps its block for as long as it exists; a new one gets the lowest block
//! that no chain of the applied ruleset holds (so that a block is reused only once the elements
//! of its last holder are gone). Maps are named after the ruleset's `epoch`: a ruleset built
//! with no applied one to start from (a restarted proxy, or after a failed sync) takes a new
//! epoch and writes new maps, rather than guess what the kernel's hold.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::family::Family;
use super::names;
use super::rules::{service_rules, ServiceRules, HAIRPIN};
use super::script::{self, Change, Elem, Elements, Op, TableState, Transaction};
use crate::model::{Protocol, ServicePort, ServicePortName};
use crate::NodeContext;

type Key = (Family, &'static str, String);

/// The rules of every service port, per family, as last applied (or to apply).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ruleset {
    services: BTreeMap<Family, BTreeMap<ServicePortName, ServiceRules>>,
    /// Which port holds each map key.
    owners: BTreeMap<Key, ServicePortName>,
    /// The generation of the endpoint maps' names.
    epoch: u32,
    /// Per family, the endpoint-map block of each balancing chain.
    blocks: BTreeMap<Family, BTreeMap<String, u32>>,
    /// Per family, the blocks in use.
    used_blocks: BTreeMap<Family, BTreeSet<u32>>,
    /// Per family, how many ports DNAT to each endpoint address (its `a . a` in [`HAIRPIN`]).
    hairpin: BTreeMap<Family, BTreeMap<IpAddr, u32>>,
}

/// Hands out endpoint-map blocks for one family (see the module's doc).
struct BlockAllocator<'a> {
    epoch: u32,
    /// The applied ruleset's blocks, by chain, and the blocks it uses.
    kept: Option<(&'a BTreeMap<String, u32>, &'a BTreeSet<u32>)>,
    given: BTreeSet<u32>,
    next: u32,
}

impl<'a> BlockAllocator<'a> {
    fn new(epoch: u32, applied: Option<&'a Ruleset>, family: Family) -> Self {
        static NONE: (BTreeMap<String, u32>, BTreeSet<u32>) = (BTreeMap::new(), BTreeSet::new());
        let kept =
            applied.map(|a| (a.blocks.get(&family).unwrap_or(&NONE.0), a.used_blocks.get(&family).unwrap_or(&NONE.1)));
        BlockAllocator { epoch, kept, given: BTreeSet::new(), next: 0 }
    }

    /// The endpoint map and block of `chain`, of `protocol`.
    fn block(&mut self, chain: &str, protocol: Protocol) -> (String, u32) {
        let block = match self.kept.and_then(|(by_chain, _)| by_chain.get(chain)) {
            Some(b) => *b,
            None => {
                while self.given.contains(&self.next) || self.kept.is_some_and(|(_, used)| used.contains(&self.next)) {
                    self.next += 1;
                }
                self.next
            }
        };
        self.given.insert(block);
        (names::endpoint_map(protocol, self.epoch, block), block)
    }
}

/// A planned partial sync: its transaction and the rules to record once it is applied.
#[derive(Debug, Clone, Default)]
pub struct PartialPlan {
    pub tx: Transaction,
    /// (family, port, its new rules or `None` when it is gone), only for ports whose rules
    /// changed.
    pub updates: Vec<(Family, ServicePortName, Option<ServiceRules>)>,
}

impl Ruleset {
    /// The rules of `ports` on `node` (endpoint maps of epoch 1).
    pub fn build(ports: &[ServicePort], node: &NodeContext) -> Ruleset {
        Ruleset::build_over(ports, node, None, 1)
    }

    /// The rules of `ports` on `node`, keeping the endpoint-map blocks of `applied` (and its
    /// epoch); without it, with endpoint maps of `epoch`.
    pub fn build_over(ports: &[ServicePort], node: &NodeContext, applied: Option<&Ruleset>, epoch: u32) -> Ruleset {
        let epoch = applied.map_or(epoch, |a| a.epoch);
        let mut set = Ruleset { epoch, ..Ruleset::default() };
        for family in Family::ALL {
            let mut blocks = BlockAllocator::new(epoch, applied, family);
            for port in ports {
                if let Some(rules) = service_rules(port, family, node, &mut |c, p| blocks.block(c, p)) {
                    let rules = set.claim(family, &port.id, rules, &BTreeSet::new(), &mut BTreeMap::new());
                    set.replace(family, &port.id, Some(rules));
                }
            }
        }
        set
    }

    /// The generation of the endpoint maps' names.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The endpoint maps the ports of `family` use.
    pub fn endpoint_maps(&self, family: Family) -> BTreeSet<String> {
        let rules = self.services.get(&family).into_iter().flat_map(BTreeMap::values);
        rules.flat_map(|r| r.slots.values().map(|s| s.map.clone())).collect()
    }

    /// The rules of every port of `family`.
    pub fn family(&self, family: Family) -> impl Iterator<Item = (&ServicePortName, &ServiceRules)> {
        self.services.get(&family).into_iter().flatten()
    }

    /// The rules of one port in `family`.
    pub fn get(&self, family: Family, name: &ServicePortName) -> Option<&ServiceRules> {
        self.services.get(&family)?.get(name)
    }

    /// The number of service ports (counted once whatever their families).
    pub fn len(&self) -> usize {
        self.services.values().flat_map(|m| m.keys()).collect::<BTreeSet<_>>().len()
    }

    /// Whether there is no service port.
    pub fn is_empty(&self) -> bool {
        self.services.values().all(BTreeMap::is_empty)
    }

    /// Drops from `rules` the elements whose key another port holds: a port outside `changing`
    /// (as recorded), or one of `changing` that claimed it earlier in this batch (`claimed`).
    fn claim(
        &self,
        family: Family,
        name: &ServicePortName,
        mut rules: ServiceRules,
        changing: &BTreeSet<ServicePortName>,
        claimed: &mut BTreeMap<Key, ServicePortName>,
    ) -> ServiceRules {
        rules.elements.retain(|e| {
            let key = (family, e.map, e.key.clone());
            let held = self.owners.get(&key).filter(|o| *o != name && !changing.contains(*o));
            let taken = held.or_else(|| claimed.get(&key).filter(|o| *o != name));
            if taken.is_some() {
                return false;
            }
            claimed.insert(key, name.clone());
            true
        });
        rules
    }

    /// Records `rules` (or their absence) for `name` in `family`.
    pub fn replace(&mut self, family: Family, name: &ServicePortName, rules: Option<ServiceRules>) {
        let services = self.services.entry(family).or_default();
        let (blocks, used) = (self.blocks.entry(family).or_default(), self.used_blocks.entry(family).or_default());
        let hairpin = self.hairpin.entry(family).or_default();
        if let Some(old) = services.remove(name) {
            for e in &old.elements {
                let key = (family, e.map, e.key.clone());
                if self.owners.get(&key) == Some(name) {
                    self.owners.remove(&key);
                }
            }
            for (chain, slots) in &old.slots {
                blocks.remove(chain);
                used.remove(&slots.block);
            }
            for ip in &old.hairpin {
                if let Some(n) = hairpin.get_mut(ip) {
                    *n -= 1;
                    if *n == 0 {
                        hairpin.remove(ip);
                    }
                }
            }
        }
        if let Some(rules) = rules {
            for e in &rules.elements {
                self.owners.insert((family, e.map, e.key.clone()), name.clone());
            }
            for (chain, slots) in &rules.slots {
                blocks.insert(chain.clone(), slots.block);
                used.insert(slots.block);
            }
            for ip in &rules.hairpin {
                *hairpin.entry(*ip).or_default() += 1;
            }
            services.insert(name.clone(), rules);
        }
    }

    /// The endpoint addresses some port of `family` DNATs to.
    pub fn hairpin(&self, family: Family) -> impl Iterator<Item = &IpAddr> {
        self.hairpin.get(&family).into_iter().flat_map(BTreeMap::keys)
    }

    /// Plans a full sync to `self` (built for `node`), given what the tables hold now.
    pub fn full(&self, node: &NodeContext, existing: &BTreeMap<Family, TableState>) -> Transaction {
        let empty = BTreeMap::new();
        let families = Family::ALL.into_iter().map(|f| (f, self.services.get(&f).unwrap_or(&empty))).collect();
        script::full(&families, node, existing)
    }

    /// [`Ruleset::full`] as operations only (no text), changing only the map elements that
    /// differ from `elements` (what the sets and maps hold now) and, given the ruleset the last
    /// sync `applied`, rewriting only the service ports whose rules differ or whose chains or
    /// sets are missing (see [`script::full_ops`]).
    pub fn full_ops(
        &self,
        node: &NodeContext,
        existing: &BTreeMap<Family, TableState>,
        elements: &Elements,
        applied: Option<&Ruleset>,
    ) -> Transaction {
        let empty = BTreeMap::new();
        let families = self.rulesets(&empty);
        let before = applied.map(|a| a.rulesets(&empty));
        script::full_ops(&families, node, existing, Some(elements), before.as_ref())
    }

    fn rulesets<'a>(&'a self, empty: &'a BTreeMap<ServicePortName, ServiceRules>) -> script::Rulesets<'a> {
        Family::ALL.into_iter().map(|f| (f, self.services.get(&f).unwrap_or(empty))).collect()
    }

    /// Plans a partial sync from `self` (what is applied) for the ports named in `changed`,
    /// with `ports` the full current list.
    pub fn partial(
        &self,
        ports: &[ServicePort],
        node: &NodeContext,
        changed: &BTreeSet<ServicePortName>,
    ) -> PartialPlan {
        let mut plan = self.partial_ops(ports, node, changed);
        plan.tx.script = script::render(&plan.tx.ops);
        plan
    }

    /// [`Ruleset::partial`] as operations only (no text).
    pub fn partial_ops(
        &self,
        ports: &[ServicePort],
        node: &NodeContext,
        changed: &BTreeSet<ServicePortName>,
    ) -> PartialPlan {
        let current: BTreeMap<&ServicePortName, &ServicePort> =
            ports.iter().filter(|p| changed.contains(&p.id)).map(|p| (&p.id, p)).collect();
        let mut plan = PartialPlan::default();
        for family in Family::ALL {
            let mut claimed = BTreeMap::new();
            let mut blocks = BlockAllocator::new(self.epoch, Some(self), family);
            for name in changed {
                let new =
                    current.get(name).and_then(|p| service_rules(p, family, node, &mut |c, p| blocks.block(c, p)));
                let new = new.map(|r| self.claim(family, name, r, changed, &mut claimed));
                if new.as_ref() != self.get(family, name) {
                    plan.updates.push((family, name.clone(), new));
                }
            }
        }
        let changes: Vec<Change<'_>> = plan
            .updates
            .iter()
            .map(|(family, name, new)| Change { family: *family, old: self.get(*family, name), new: new.as_ref() })
            .collect();
        plan.tx = script::partial_ops(&changes);
        self.hairpin_changes(&changes, &mut plan.tx);
        plan
    }

    /// The hairpin elements that `changes` add (an address no port DNATed to) or delete (one no
    /// port DNATs to any more).
    fn hairpin_changes(&self, changes: &[Change<'_>], tx: &mut Transaction) {
        for family in Family::ALL {
            let mut delta: BTreeMap<IpAddr, i64> = BTreeMap::new();
            for c in changes.iter().filter(|c| c.family == family) {
                for ip in c.old.into_iter().flat_map(|r| &r.hairpin) {
                    *delta.entry(*ip).or_default() -= 1;
                }
                for ip in c.new.into_iter().flat_map(|r| &r.hairpin) {
                    *delta.entry(*ip).or_default() += 1;
                }
            }
            let counts = self.hairpin.get(&family);
            let (mut add, mut delete) = (Vec::new(), Vec::new());
            for (ip, d) in delta {
                let before = i64::from(counts.and_then(|c| c.get(&ip)).copied().unwrap_or(0));
                match (before > 0, before + d > 0) {
                    (false, true) => add.push(Elem::Pair(ip)),
                    (true, false) => delete.push(Elem::Pair(ip)),
                    _ => {}
                }
            }
            if !delete.is_empty() {
                tx.ops.push(Op::DeleteElements { family, set: HAIRPIN.into(), elems: delete });
            }
            if !add.is_empty() {
                tx.rules += add.len();
                tx.ops.push(Op::AddElements { family, set: HAIRPIN.into(), elems: add });
            }
        }
    }
}
