//! The dependency graph of the garbage collector: every observed object with its owner
//! references, and the reverse edges (owner → dependents), built from the watches of every
//! served resource, as upstream's `GraphBuilder` does.
//!
//! Objects referenced as owners but not (yet) observed are *virtual* nodes: the workers verify
//! them with a live GET, and a verified absence comes back as a virtual delete. Applying an
//! event to the graph returns the [`Work`] it calls for; the graph does no I/O.

use std::collections::{BTreeSet, HashMap, HashSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

/// The finalizer of foreground deletion: the owner waits for its blocking dependents.
pub const FOREGROUND: &str = "foregroundDeletion";
/// The finalizer of orphaning deletion: the owner's dependents lose their reference to it.
pub const ORPHAN: &str = "orphan";

/// Where an object is and which one it is: upstream's `objectReference` (coordinates and UID).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identity {
    pub api_version: String,
    pub kind: String,
    /// Empty for cluster-scoped objects (and, for virtual nodes, a guess: the namespace of the
    /// dependent that referenced it).
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl Identity {
    /// The identity an owner reference from a dependent in `namespace` designates.
    pub fn of_reference(r: &OwnerRef, namespace: &str) -> Identity {
        Identity {
            api_version: r.api_version.clone(),
            kind: r.kind.clone(),
            namespace: namespace.to_string(),
            name: r.name.clone(),
            uid: r.uid.clone(),
        }
    }

    /// The API group, `""` for core.
    pub fn group(&self) -> &str {
        group_of(&self.api_version)
    }

    /// Whether a reference held by a dependent in `dependent_ns` designates this object: same
    /// UID, group, kind and name, and for a namespaced object, the dependent's namespace.
    pub fn matches(&self, r: &OwnerRef, dependent_ns: &str) -> bool {
        r.uid == self.uid
            && group_of(&r.api_version) == self.group()
            && r.kind == self.kind
            && r.name == self.name
            && (self.namespace.is_empty() || self.namespace == dependent_ns)
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ns = if self.namespace.is_empty() { String::new() } else { format!("{}/", self.namespace) };
        write!(f, "{} {}{} (uid {}, {})", self.kind, ns, self.name, self.uid, self.api_version)
    }
}

/// The group of an `apiVersion`: `apps` of `apps/v1`, `""` of `v1`.
pub fn group_of(api_version: &str) -> &str {
    api_version.split_once('/').map(|(g, _)| g).unwrap_or("")
}

/// An owner reference, as the graph keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerRef {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub uid: String,
    pub block_owner_deletion: bool,
}

impl From<&OwnerReference> for OwnerRef {
    fn from(r: &OwnerReference) -> Self {
        OwnerRef {
            api_version: r.api_version.clone(),
            kind: r.kind.clone(),
            name: r.name.clone(),
            uid: r.uid.clone(),
            block_owner_deletion: r.block_owner_deletion == Some(true),
        }
    }
}

/// What a watch reported about one object.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub identity: Identity,
    pub owners: Vec<OwnerRef>,
    /// `metadata.deletionTimestamp` is set.
    pub deleting: bool,
    pub finalizers: Vec<String>,
}

impl Observed {
    /// From the metadata of an object served as `api_version`/`kind`; None without a UID.
    pub fn from_meta(api_version: &str, kind: &str, meta: &ObjectMeta) -> Option<Observed> {
        let uid = meta.uid.clone().filter(|u| !u.is_empty())?;
        Some(Observed {
            identity: Identity {
                api_version: api_version.to_string(),
                kind: kind.to_string(),
                namespace: meta.namespace.clone().unwrap_or_default(),
                name: meta.name.clone().unwrap_or_default(),
                uid,
            },
            owners: meta.owner_references.iter().flatten().map(OwnerRef::from).collect(),
            deleting: meta.deletion_timestamp.is_some(),
            finalizers: meta.finalizers.clone().unwrap_or_default(),
        })
    }

    fn has_finalizer(&self, f: &str) -> bool {
        self.finalizers.iter().any(|x| x == f)
    }
}

/// What a change of the graph asks the workers to do.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Work {
    /// Check whether the object (by UID) should be deleted, or its deletion finished
    /// (upstream's `attemptToDelete`).
    Delete(String),
    /// Remove the owner's references from its dependents, then its `orphan` finalizer.
    Orphan(String),
    /// A dependent refers to an owner that lives in another namespace (an Event is recorded).
    InvalidNamespace { dependent: Identity, owner_uid: String },
}

/// One object of the graph.
#[derive(Debug, Clone)]
pub struct Node {
    pub identity: Identity,
    pub owners: Vec<OwnerRef>,
    /// UIDs of the objects whose owner references name this one.
    pub dependents: BTreeSet<String>,
    /// Seen through a watch (else virtual: only known from references).
    pub observed: bool,
    /// `deletionTimestamp` is set.
    pub being_deleted: bool,
    /// Being deleted with the `foregroundDeletion` finalizer: waits for its dependents.
    pub deleting_dependents: bool,
    /// Being deleted with the `orphan` finalizer.
    pub orphaning: bool,
    /// The watch that observed it, to find objects that vanished while a watch was relisting.
    pub source: Option<String>,
}

impl Node {
    fn virtual_node(identity: Identity) -> Node {
        Node {
            identity,
            owners: Vec::new(),
            dependents: BTreeSet::new(),
            observed: false,
            being_deleted: false,
            deleting_dependents: false,
            orphaning: false,
            source: None,
        }
    }
}

/// The graph: nodes by UID.
#[derive(Debug, Default)]
pub struct Graph {
    nodes: HashMap<String, Node>,
}

impl Graph {
    pub fn get(&self, uid: &str) -> Option<&Node> {
        self.nodes.get(uid)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Applies an added or updated object seen by the watch `source`.
    pub fn observe(&mut self, obj: Observed, source: &str) -> Vec<Work> {
        let mut work = Vec::new();
        let uid = obj.identity.uid.clone();
        let orphaning = obj.deleting && obj.has_finalizer(ORPHAN);
        let deleting_dependents = obj.deleting && obj.has_finalizer(FOREGROUND);

        let (old_owners, was_orphaning, was_deleting_dependents) = match self.nodes.get_mut(&uid) {
            Some(node) => {
                if !node.observed && node.identity != obj.identity {
                    // A virtual node becomes real: dependents that referred to it with other
                    // coordinates (another namespace, kind or name) get verified.
                    let dependents: Vec<String> = node.dependents.iter().cloned().collect();
                    let (_, nonmatching) = partition_dependents(&self.nodes, &dependents, &obj.identity);
                    for dep in nonmatching {
                        if let Some(d) = self.nodes.get(&dep) {
                            if !obj.identity.namespace.is_empty() && d.identity.namespace != obj.identity.namespace {
                                work.push(Work::InvalidNamespace {
                                    dependent: d.identity.clone(),
                                    owner_uid: uid.clone(),
                                });
                            }
                        }
                        work.push(Work::Delete(dep));
                    }
                }
                let node = self.nodes.get_mut(&uid).expect("present");
                node.observed = true;
                node.identity = obj.identity.clone();
                (std::mem::take(&mut node.owners), node.orphaning, node.deleting_dependents)
            }
            None => {
                self.nodes.insert(uid.clone(), Node::virtual_node(obj.identity.clone()));
                let node = self.nodes.get_mut(&uid).expect("inserted");
                node.observed = true;
                (Vec::new(), false, false)
            }
        };
        {
            let node = self.nodes.get_mut(&uid).expect("present");
            node.owners = obj.owners.clone();
            node.being_deleted = obj.deleting;
            node.deleting_dependents = deleting_dependents;
            node.orphaning = orphaning;
            node.source = Some(source.to_string());
        }

        // Owner references that went away, or stopped blocking.
        for old in &old_owners {
            let now = obj.owners.iter().find(|r| r.uid == old.uid);
            match now {
                None => {
                    if let Some(owner) = self.nodes.get(&old.uid) {
                        if owner.deleting_dependents && old.block_owner_deletion {
                            work.push(Work::Delete(old.uid.clone()));
                        }
                    }
                    self.remove_dependent(&old.uid, &uid);
                }
                Some(r) => {
                    if old.block_owner_deletion && !r.block_owner_deletion {
                        if let Some(owner) = self.nodes.get(&old.uid) {
                            if owner.deleting_dependents {
                                work.push(Work::Delete(old.uid.clone()));
                            }
                        }
                    }
                }
            }
        }
        // Owner references that are new.
        let mut verify_self = false;
        for r in obj.owners.iter().filter(|r| !old_owners.iter().any(|o| o.uid == r.uid)) {
            match self.nodes.get_mut(&r.uid) {
                None => {
                    let mut owner = Node::virtual_node(Identity::of_reference(r, &obj.identity.namespace));
                    owner.dependents.insert(uid.clone());
                    self.nodes.insert(r.uid.clone(), owner);
                    work.push(Work::Delete(r.uid.clone()));
                }
                Some(owner) => {
                    owner.dependents.insert(uid.clone());
                    let owner_ns = &owner.identity.namespace;
                    if !owner_ns.is_empty() && *owner_ns != obj.identity.namespace {
                        if owner.observed {
                            work.push(Work::InvalidNamespace {
                                dependent: obj.identity.clone(),
                                owner_uid: r.uid.clone(),
                            });
                        }
                        verify_self = true;
                    } else if !owner.identity.matches(r, &obj.identity.namespace) {
                        verify_self = true;
                    }
                    if owner.deleting_dependents {
                        // Created or adopted while its owner waits for its dependents.
                        verify_self = true;
                    }
                }
            }
        }
        if verify_self {
            work.push(Work::Delete(uid.clone()));
        }

        // Transitions of the object itself.
        if orphaning && !was_orphaning {
            work.push(Work::Orphan(uid.clone()));
        } else if deleting_dependents && !was_deleting_dependents {
            let node = &self.nodes[&uid];
            work.extend(node.dependents.iter().map(|d| Work::Delete(d.clone())));
            work.push(Work::Delete(uid.clone()));
        }
        dedup(work)
    }

    /// Applies the deletion of an object seen by a watch.
    pub fn observe_deleted(&mut self, uid: &str) -> Vec<Work> {
        match self.nodes.get(uid) {
            Some(n) if n.observed => self.remove_node(uid),
            _ => Vec::new(),
        }
    }

    /// Applies a verified absence: a GET of `identity` found nothing with its UID.
    pub fn virtual_delete(&mut self, identity: &Identity) -> Vec<Work> {
        let Some(node) = self.nodes.get(&identity.uid) else { return Vec::new() };
        let dependents: Vec<String> = node.dependents.iter().cloned().collect();
        if node.observed {
            if node.identity == *identity {
                return self.remove_node(&identity.uid);
            }
            // The real object disagrees with the coordinates found absent: only the
            // dependents that used those coordinates are affected.
            let (matching, _) = partition_dependents(&self.nodes, &dependents, identity);
            return matching.into_iter().map(Work::Delete).collect();
        }
        let (matching, nonmatching) = partition_dependents(&self.nodes, &dependents, identity);
        if nonmatching.is_empty() {
            return self.remove_node(&identity.uid);
        }
        // Some dependents refer to this UID with other coordinates: keep the virtual node,
        // and try those coordinates next.
        let mut work: Vec<Work> = matching.into_iter().map(Work::Delete).collect();
        if node.identity == *identity {
            let alternate = nonmatching.iter().find_map(|d| {
                let dep = self.nodes.get(d)?;
                let r = dep.owners.iter().find(|r| r.uid == identity.uid)?;
                let alt = Identity::of_reference(r, &dep.identity.namespace);
                (alt != *identity).then_some(alt)
            });
            if let Some(alt) = alternate {
                self.nodes.get_mut(&identity.uid).expect("present").identity = alt;
                work.push(Work::Delete(identity.uid.clone()));
            }
        }
        work
    }

    /// After a watch of `source` listed its objects again: objects it had reported that were
    /// not in the new list were deleted meanwhile.
    pub fn relisted(&mut self, source: &str, seen: &HashSet<String>) -> Vec<Work> {
        let gone: Vec<String> = self
            .nodes
            .values()
            .filter(|n| n.observed && n.source.as_deref() == Some(source) && !seen.contains(&n.identity.uid))
            .map(|n| n.identity.uid.clone())
            .collect();
        let mut work = Vec::new();
        for uid in gone {
            work.extend(self.remove_node(&uid));
        }
        dedup(work)
    }

    /// The dependents that hold the deletion of `uid` back (foreground deletion): those whose
    /// reference to it has `blockOwnerDeletion: true`. With whether each is itself waiting for
    /// its own dependents.
    pub fn blocking_dependents(&self, uid: &str) -> Vec<(String, bool)> {
        let Some(node) = self.nodes.get(uid) else { return Vec::new() };
        node.dependents
            .iter()
            .filter_map(|d| self.nodes.get(d))
            .filter(|d| {
                d.owners.iter().any(|r| r.block_owner_deletion && node.identity.matches(r, &d.identity.namespace))
            })
            .map(|d| (d.identity.uid.clone(), d.deleting_dependents))
            .collect()
    }

    /// The identities of the dependents of `uid`.
    pub fn dependents(&self, uid: &str) -> Vec<Identity> {
        let Some(node) = self.nodes.get(uid) else { return Vec::new() };
        node.dependents.iter().filter_map(|d| self.nodes.get(d)).map(|d| d.identity.clone()).collect()
    }

    /// Whether one of the dependents of `uid` is waiting for its own dependents (a possible
    /// cycle of foreground deletions).
    pub fn has_dependent_deleting_dependents(&self, uid: &str) -> bool {
        self.nodes
            .get(uid)
            .is_some_and(|n| n.dependents.iter().any(|d| self.nodes.get(d).is_some_and(|d| d.deleting_dependents)))
    }

    /// Work a periodic resync redoes from the graph alone: owners waiting for their
    /// dependents, owners waiting to orphan them, and unverified virtual nodes.
    pub fn resync(&self) -> Vec<Work> {
        let mut work: Vec<Work> = self
            .nodes
            .values()
            .filter_map(|n| {
                if n.orphaning {
                    Some(Work::Orphan(n.identity.uid.clone()))
                } else if n.deleting_dependents || !n.observed {
                    Some(Work::Delete(n.identity.uid.clone()))
                } else {
                    None
                }
            })
            .collect();
        work.sort();
        work
    }

    /// Removes a node: its dependents are checked (their owner is gone), and its owners that
    /// wait for their dependents are checked again.
    fn remove_node(&mut self, uid: &str) -> Vec<Work> {
        let Some(node) = self.nodes.remove(uid) else { return Vec::new() };
        let mut work: Vec<Work> = node.dependents.iter().map(|d| Work::Delete(d.clone())).collect();
        for r in &node.owners {
            if self.nodes.get(&r.uid).is_some_and(|o| o.deleting_dependents) {
                work.push(Work::Delete(r.uid.clone()));
            }
            self.remove_dependent(&r.uid, uid);
        }
        dedup(work)
    }

    /// Drops the edge owner → dependent; a virtual owner with no dependents left goes away.
    fn remove_dependent(&mut self, owner_uid: &str, dependent_uid: &str) {
        if let Some(owner) = self.nodes.get_mut(owner_uid) {
            owner.dependents.remove(dependent_uid);
            if !owner.observed && owner.dependents.is_empty() {
                self.nodes.remove(owner_uid);
            }
        }
    }
}

/// Splits dependents into those whose reference matches `owner` and those that refer to its
/// UID with other coordinates (upstream's `partitionDependents`).
fn partition_dependents(
    nodes: &HashMap<String, Node>,
    dependents: &[String],
    owner: &Identity,
) -> (Vec<String>, Vec<String>) {
    let (mut matching, mut nonmatching) = (Vec::new(), Vec::new());
    for d in dependents {
        let Some(dep) = nodes.get(d) else { continue };
        let refs: Vec<&OwnerRef> = dep.owners.iter().filter(|r| r.uid == owner.uid).collect();
        if refs.iter().any(|r| owner.matches(r, &dep.identity.namespace)) {
            matching.push(d.clone());
        }
        if refs.is_empty() || refs.iter().any(|r| !owner.matches(r, &dep.identity.namespace)) {
            nonmatching.push(d.clone());
        }
    }
    (matching, nonmatching)
}

fn dedup(work: Vec<Work>) -> Vec<Work> {
    let mut seen = HashSet::new();
    work.into_iter().filter(|w| seen.insert(w.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(kind: &str, ns: &str, name: &str, uid: &str) -> Identity {
        let api_version = if kind == "ReplicaSet" || kind == "Deployment" { "apps/v1" } else { "v1" };
        Identity {
            api_version: api_version.into(),
            kind: kind.into(),
            namespace: ns.into(),
            name: name.into(),
            uid: uid.into(),
        }
    }

    fn owner_ref(owner: &Identity, block: bool) -> OwnerRef {
        OwnerRef {
            api_version: owner.api_version.clone(),
            kind: owner.kind.clone(),
            name: owner.name.clone(),
            uid: owner.uid.clone(),
            block_owner_deletion: block,
        }
    }

    fn obj(identity: &Identity, owners: &[(&Identity, bool)]) -> Observed {
        Observed {
            identity: identity.clone(),
            owners: owners.iter().map(|(o, b)| owner_ref(o, *b)).collect(),
            deleting: false,
            finalizers: vec![],
        }
    }

    fn deleting(mut o: Observed, finalizer: &str) -> Observed {
        o.deleting = true;
        o.finalizers = vec![finalizer.to_string()];
        o
    }

    fn del(uid: &str) -> Work {
        Work::Delete(uid.into())
    }

    #[test]
    fn owners_seen_before_dependents_need_no_work() {
        let mut g = Graph::default();
        let rs = id("ReplicaSet", "ns", "rs", "u-rs");
        let pod = id("Pod", "ns", "p", "u-p");
        assert_eq!(g.observe(obj(&rs, &[]), "rs"), vec![]);
        assert_eq!(g.observe(obj(&pod, &[(&rs, true)]), "pods"), vec![]);
        assert_eq!(g.get("u-rs").unwrap().dependents.iter().collect::<Vec<_>>(), ["u-p"]);
        // Updates that change nothing about ownership need nothing either.
        assert_eq!(g.observe(obj(&pod, &[(&rs, true)]), "pods"), vec![]);
    }

    #[test]
    fn unknown_owners_become_virtual_nodes_to_verify() {
        let mut g = Graph::default();
        let rs = id("ReplicaSet", "ns", "rs", "u-rs");
        let pod = id("Pod", "ns", "p", "u-p");
        assert_eq!(g.observe(obj(&pod, &[(&rs, true)]), "pods"), vec![del("u-rs")]);
        assert!(!g.get("u-rs").unwrap().observed);
        // A second dependent of the same virtual owner does not verify it again.
        let pod2 = id("Pod", "ns", "p2", "u-p2");
        assert_eq!(g.observe(obj(&pod2, &[(&rs, true)]), "pods"), vec![]);
        // Observing the owner makes the node real.
        assert_eq!(g.observe(obj(&rs, &[]), "rs"), vec![]);
        assert!(g.get("u-rs").unwrap().observed);
        assert_eq!(g.get("u-rs").unwrap().dependents.len(), 2);
    }

    #[test]
    fn a_verified_absent_owner_sends_its_dependents_to_deletion() {
        let mut g = Graph::default();
        let rs = id("ReplicaSet", "ns", "rs", "u-rs");
        let pod = id("Pod", "ns", "p", "u-p");
        g.observe(obj(&pod, &[(&rs, true)]), "pods");
        let virtual_identity = g.get("u-rs").unwrap().identity.clone();
        assert_eq!(virtual_identity, rs);
        assert_eq!(g.virtual_delete(&virtual_identity), vec![del("u-p")]);
        assert!(g.get("u-rs").is_none());
        // A new reference to the same UID makes a new virtual node, verified again.
        let pod2 = id("Pod", "ns", "p2", "u-p2");
        assert_eq!(g.observe(obj(&pod2, &[(&rs, true)]), "pods"), vec![del("u-rs")]);
        assert_eq!(g.observe_deleted("u-p"), vec![]);
        assert_eq!(g.observe_deleted("u-p2"), vec![]);
        assert!(g.is_empty(), "{g:?}");
    }

    #[test]
    fn deleting_an_owner_checks_its_dependents_and_chains_cascade() {
        let mut g = Graph::default();
        let d = id("Deployment", "ns", "d", "u-d");
        let rs = id("ReplicaSet", "ns", "rs", "u-rs");
        let pod = id("Pod", "ns", "p", "u-p");
        g.observe(obj(&d, &[]), "deployments");
        g.observe(obj(&rs, &[(&d, true)]), "rs");
        g.observe(obj(&pod, &[(&rs, true)]), "pods");
        assert_eq!(g.observe_deleted("u-d"), vec![del("u-rs")]);
        assert_eq!(g.observe_deleted("u-rs"), vec![del("u-p")]);
        assert_eq!(g.observe_deleted("u-p"), vec![]);
        assert!(g.is_empty(), "{g:?}");
    }

    #[test]
    fn foreground_deletion_checks_every_dependent_and_the_owner() {
        let mut g = Graph::default();
        let owner = id("ConfigMap", "ns", "o", "u-o");
        let a = id("ConfigMap", "ns", "a", "u-a");
        let b = id("ConfigMap", "ns", "b", "u-b");
        g.observe(obj(&owner, &[]), "cm");
        g.observe(obj(&a, &[(&owner, true)]), "cm");
        g.observe(obj(&b, &[(&owner, false)]), "cm");
        let w = g.observe(deleting(obj(&owner, &[]), FOREGROUND), "cm");
        assert_eq!(w, vec![del("u-a"), del("u-b"), del("u-o")]);
        assert!(g.get("u-o").unwrap().deleting_dependents);
        // Only `a` blocks.
        assert_eq!(g.blocking_dependents("u-o"), vec![("u-a".to_string(), false)]);
        // The same state again is no transition.
        assert_eq!(g.observe(deleting(obj(&owner, &[]), FOREGROUND), "cm"), vec![]);
        // A blocking dependent that goes away re-checks the owner.
        assert_eq!(g.observe_deleted("u-a"), vec![del("u-o")]);
        assert!(g.blocking_dependents("u-o").is_empty());
        // A non-blocking one too (the owner is waiting).
        assert_eq!(g.observe_deleted("u-b"), vec![del("u-o")]);
    }

    #[test]
    fn dropping_or_unblocking_a_reference_rechecks_a_waiting_owner() {
        let mut g = Graph::default();
        let owner = id("ConfigMap", "ns", "o", "u-o");
        let other = id("ConfigMap", "ns", "x", "u-x");
        let a = id("ConfigMap", "ns", "a", "u-a");
        g.observe(obj(&owner, &[]), "cm");
        g.observe(obj(&other, &[]), "cm");
        g.observe(obj(&a, &[(&owner, true), (&other, true)]), "cm");
        g.observe(deleting(obj(&owner, &[]), FOREGROUND), "cm");
        // The GC removed the reference to the waiting owner (a has another, solid owner).
        assert_eq!(g.observe(obj(&a, &[(&other, true)]), "cm"), vec![del("u-o")]);
        assert!(g.get("u-o").unwrap().dependents.is_empty());
        // Unblocking a reference.
        let b = id("ConfigMap", "ns", "b", "u-b");
        g.observe(obj(&b, &[(&owner, true)]), "cm");
        assert_eq!(g.observe(obj(&b, &[(&owner, false)]), "cm"), vec![del("u-o")]);
        assert!(g.blocking_dependents("u-o").is_empty());
    }

    #[test]
    fn dependents_created_while_the_owner_waits_are_checked() {
        let mut g = Graph::default();
        let owner = id("ReplicaSet", "ns", "o", "u-o");
        g.observe(deleting(obj(&owner, &[]), FOREGROUND), "rs");
        let late = id("Pod", "ns", "late", "u-late");
        assert_eq!(g.observe(obj(&late, &[(&owner, true)]), "pods"), vec![del("u-late")]);
    }

    #[test]
    fn orphan_finalizer_starts_orphaning_once() {
        let mut g = Graph::default();
        let owner = id("ConfigMap", "ns", "o", "u-o");
        let a = id("ConfigMap", "ns", "a", "u-a");
        g.observe(obj(&owner, &[]), "cm");
        g.observe(obj(&a, &[(&owner, true)]), "cm");
        assert_eq!(g.observe(deleting(obj(&owner, &[]), ORPHAN), "cm"), vec![Work::Orphan("u-o".into())]);
        assert_eq!(g.observe(deleting(obj(&owner, &[]), ORPHAN), "cm"), vec![]);
        assert_eq!(g.dependents("u-o"), vec![a.clone()]);
        // Seen for the first time already orphaning (e.g. after a restart): orphan.
        let mut g2 = Graph::default();
        assert_eq!(g2.observe(deleting(obj(&owner, &[]), ORPHAN), "cm"), vec![Work::Orphan("u-o".into())]);
        // A finalizer without a deletionTimestamp is nothing yet.
        let mut g3 = Graph::default();
        let mut o = obj(&owner, &[]);
        o.finalizers = vec![ORPHAN.into()];
        assert_eq!(g3.observe(o, "cm"), vec![]);
    }

    #[test]
    fn a_dependent_with_two_owners_is_checked_when_either_goes() {
        let mut g = Graph::default();
        let o1 = id("ConfigMap", "ns", "o1", "u-1");
        let o2 = id("ConfigMap", "ns", "o2", "u-2");
        let d = id("ConfigMap", "ns", "d", "u-d");
        g.observe(obj(&o1, &[]), "cm");
        g.observe(obj(&o2, &[]), "cm");
        g.observe(obj(&d, &[(&o1, false), (&o2, false)]), "cm");
        assert_eq!(g.observe_deleted("u-1"), vec![del("u-d")]);
        // The GC removes the dangling reference; o2 still owns d.
        assert_eq!(g.observe(obj(&d, &[(&o2, false)]), "cm"), vec![]);
        assert!(g.get("u-1").is_none());
        assert_eq!(g.observe_deleted("u-2"), vec![del("u-d")]);
    }

    #[test]
    fn cross_namespace_references_are_verified_and_reported() {
        let mut g = Graph::default();
        let owner = id("ConfigMap", "b", "o", "u-o");
        // The owner first, then a dependent in another namespace referring to it.
        g.observe(obj(&owner, &[]), "cm");
        let d = id("ConfigMap", "a", "d", "u-d");
        let w = g.observe(obj(&d, &[(&owner, true)]), "cm");
        assert_eq!(w, vec![Work::InvalidNamespace { dependent: d.clone(), owner_uid: "u-o".into() }, del("u-d")]);
        // It does not block the owner's foreground deletion.
        g.observe(deleting(obj(&owner, &[]), FOREGROUND), "cm");
        assert!(g.blocking_dependents("u-o").is_empty());

        // The dependent first: the virtual owner is guessed in the dependent's namespace; when
        // the real owner shows up elsewhere, the dependent is verified.
        let mut g = Graph::default();
        assert_eq!(g.observe(obj(&d, &[(&owner, true)]), "cm"), vec![del("u-o")]);
        assert_eq!(g.get("u-o").unwrap().identity.namespace, "a");
        let w = g.observe(obj(&owner, &[]), "cm");
        assert_eq!(w, vec![Work::InvalidNamespace { dependent: d.clone(), owner_uid: "u-o".into() }, del("u-d")]);
    }

    #[test]
    fn cluster_scoped_owners_match_from_any_namespace() {
        let mut g = Graph::default();
        let owner = id("Node", "", "n1", "u-n");
        let d = id("ConfigMap", "a", "d", "u-d");
        g.observe(obj(&owner, &[]), "nodes");
        assert_eq!(g.observe(obj(&d, &[(&owner, true)]), "cm"), vec![]);
        assert_eq!(g.blocking_dependents("u-n"), vec![("u-d".to_string(), false)]);
        // Dependent first: the guessed namespace is corrected when the node is observed.
        let mut g = Graph::default();
        g.observe(obj(&d, &[(&owner, true)]), "cm");
        assert_eq!(g.observe(obj(&owner, &[]), "nodes"), vec![]);
        assert_eq!(g.get("u-n").unwrap().identity.namespace, "");
    }

    #[test]
    fn a_reference_with_the_right_uid_but_another_name_is_verified() {
        let mut g = Graph::default();
        let owner = id("ConfigMap", "ns", "o", "u-o");
        g.observe(obj(&owner, &[]), "cm");
        let d = id("ConfigMap", "ns", "d", "u-d");
        let mut o = obj(&d, &[(&owner, false)]);
        o.owners[0].name = "not-o".into();
        assert_eq!(g.observe(o, "cm"), vec![del("u-d")]);
    }

    #[test]
    fn virtual_delete_with_disagreeing_dependents_tries_their_coordinates() {
        let mut g = Graph::default();
        let guessed = id("ConfigMap", "a", "o", "u-o");
        let other = id("ConfigMap", "b", "o", "u-o");
        let d1 = id("ConfigMap", "a", "d1", "u-1");
        let d2 = id("ConfigMap", "b", "d2", "u-2");
        g.observe(obj(&d1, &[(&guessed, false)]), "cm");
        g.observe(obj(&d2, &[(&other, false)]), "cm");
        // Absent in namespace a: d1 is checked, the node now tries namespace b.
        assert_eq!(g.virtual_delete(&guessed), vec![del("u-1"), del("u-o")]);
        assert_eq!(g.get("u-o").unwrap().identity, other);
        // d1 is deleted; absent in b too: d2 is checked.
        g.observe_deleted("u-1");
        assert_eq!(g.virtual_delete(&other), vec![del("u-2")]);
    }

    #[test]
    fn a_virtual_delete_of_stale_coordinates_does_not_remove_a_real_node() {
        let mut g = Graph::default();
        let owner = id("ConfigMap", "b", "o", "u-o");
        let d = id("ConfigMap", "a", "d", "u-d");
        g.observe(obj(&owner, &[]), "cm");
        g.observe(obj(&d, &[(&owner, false)]), "cm");
        // Absent in the dependent's namespace: the dependent (which used those coordinates)
        // is checked, the real node stays.
        let wrong = Identity { namespace: "a".into(), ..owner.clone() };
        assert_eq!(g.virtual_delete(&wrong), vec![del("u-d")]);
        assert!(g.get("u-o").unwrap().observed);
        // The right coordinates found absent remove it.
        assert_eq!(g.virtual_delete(&owner), vec![del("u-d")]);
    }

    #[test]
    fn objects_missing_from_a_relist_were_deleted() {
        let mut g = Graph::default();
        let o = id("ConfigMap", "ns", "o", "u-o");
        let d = id("ConfigMap", "ns", "d", "u-d");
        let p = id("Pod", "ns", "p", "u-p");
        g.observe(obj(&o, &[]), "cm");
        g.observe(obj(&d, &[(&o, false)]), "cm");
        g.observe(obj(&p, &[]), "pods");
        let seen: HashSet<String> = ["u-d".to_string()].into();
        assert_eq!(g.relisted("cm", &seen), vec![del("u-d")]);
        assert!(g.get("u-p").is_some(), "another watch's objects are untouched");
        assert!(g.get("u-o").is_none());
    }

    #[test]
    fn resync_redoes_pending_owners() {
        let mut g = Graph::default();
        let a = id("ConfigMap", "ns", "a", "u-a");
        let b = id("ConfigMap", "ns", "b", "u-b");
        let c = id("ConfigMap", "ns", "c", "u-c");
        g.observe(deleting(obj(&a, &[]), FOREGROUND), "cm");
        g.observe(deleting(obj(&b, &[]), ORPHAN), "cm");
        g.observe(obj(&c, &[]), "cm");
        assert_eq!(g.resync(), vec![del("u-a"), Work::Orphan("u-b".into())]);
    }

    #[test]
    fn observed_from_metadata() {
        let meta: ObjectMeta = serde_json::from_value(serde_json::json!({
            "name": "p", "namespace": "ns", "uid": "u", "deletionTimestamp": "2024-01-01T00:00:00Z",
            "finalizers": ["foregroundDeletion"],
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "r", "blockOwnerDeletion": true}],
        }))
        .unwrap();
        let o = Observed::from_meta("v1", "Pod", &meta).unwrap();
        assert_eq!(o.identity, id("Pod", "ns", "p", "u"));
        assert!(o.deleting && o.owners[0].block_owner_deletion);
        assert_eq!(o.owners[0].kind, "ReplicaSet");
        assert!(Observed::from_meta("v1", "Pod", &ObjectMeta::default()).is_none());
        assert_eq!(group_of("apps/v1"), "apps");
        assert_eq!(group_of("v1"), "");
    }
}
