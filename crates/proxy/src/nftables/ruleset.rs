//! The rules of every service port per family ([`Ruleset`], pure), and the plans of a full and of
//! a partial sync built from it. A map key (address . protocol . port) belongs to one service
//! port only: when two ports claim the same key (two Services with the same external IP and
//! port), the one already holding it keeps it — in a full sync, the first by name.

use std::collections::{BTreeMap, BTreeSet};

use super::family::Family;
use super::rules::{service_rules, ServiceRules};
use super::script::{self, Change, Elements, TableState, Transaction};
use crate::model::{ServicePort, ServicePortName};
use crate::NodeContext;

type Key = (Family, &'static str, String);

/// The rules of every service port, per family, as last applied (or to apply).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ruleset {
    services: BTreeMap<Family, BTreeMap<ServicePortName, ServiceRules>>,
    /// Which port holds each map key.
    owners: BTreeMap<Key, ServicePortName>,
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
    /// The rules of `ports` on `node`.
    pub fn build(ports: &[ServicePort], node: &NodeContext) -> Ruleset {
        let mut set = Ruleset::default();
        for family in Family::ALL {
            for port in ports {
                if let Some(rules) = service_rules(port, family, node) {
                    let rules = set.claim(family, &port.id, rules, &BTreeSet::new(), &mut BTreeMap::new());
                    set.replace(family, &port.id, Some(rules));
                }
            }
        }
        set
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
        if let Some(old) = services.remove(name) {
            for e in &old.elements {
                let key = (family, e.map, e.key.clone());
                if self.owners.get(&key) == Some(name) {
                    self.owners.remove(&key);
                }
            }
        }
        if let Some(rules) = rules {
            for e in &rules.elements {
                self.owners.insert((family, e.map, e.key.clone()), name.clone());
            }
            services.insert(name.clone(), rules);
        }
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
            for name in changed {
                let new = current.get(name).and_then(|p| service_rules(p, family, node));
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
        plan
    }
}
