//! What the API server serves, from discovery: the resources the garbage collector watches
//! (every resource that supports list, watch and delete, at its preferred version, except
//! Events, as upstream), and the mapping from an owner reference's apiVersion and kind to a
//! resource and its scope (upstream's REST mapper).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use kube::discovery::{verbs, ApiCapabilities, ApiResource, Scope};

use super::graph::group_of;

/// Resources never watched: Events are numerous and never owners (upstream's defaults).
pub const IGNORED: &[(&str, &str)] = &[("", "events"), ("events.k8s.io", "events")];

/// One served resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub ar: ApiResource,
    pub namespaced: bool,
    /// Supports list, watch and delete.
    pub deletable: bool,
}

impl Resource {
    /// The name of the watch of this resource: `apps/v1/deployments`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.ar.api_version, self.ar.plural)
    }
}

/// The resources of one group-version, as discovery lists them.
#[derive(Debug, Clone)]
pub struct GroupVersionResources {
    /// The version the server prefers for its group.
    pub preferred: bool,
    pub resources: Vec<(ApiResource, ApiCapabilities)>,
}

/// The served resources, by group, version and kind.
#[derive(Debug, Default)]
pub struct Registry {
    by_gvk: HashMap<(String, String, String), Arc<Resource>>,
    /// The preferred version of each group and kind.
    by_gk: HashMap<(String, String), Arc<Resource>>,
    /// What to watch, by key.
    watched: BTreeMap<String, Arc<Resource>>,
}

impl Registry {
    /// Builds the registry from discovery, given in the server's order of preference within
    /// each group.
    pub fn new(mut versions: Vec<GroupVersionResources>) -> Registry {
        // Preferred versions first, so that they win.
        versions.sort_by_key(|v| !v.preferred);
        let mut r = Registry::default();
        let mut watched_gr: HashSet<(String, String)> = HashSet::new();
        for gv in versions {
            for (ar, caps) in gv.resources {
                if ar.plural.contains('/') {
                    continue; // a subresource
                }
                let res = Arc::new(Resource {
                    namespaced: caps.scope == Scope::Namespaced,
                    deletable: [verbs::LIST, verbs::WATCH, verbs::DELETE].iter().all(|v| caps.supports_operation(v)),
                    ar,
                });
                let (group, kind) = (res.ar.group.clone(), res.ar.kind.clone());
                r.by_gvk.entry((group.clone(), res.ar.version.clone(), kind.clone())).or_insert_with(|| res.clone());
                r.by_gk.entry((group.clone(), kind)).or_insert_with(|| res.clone());
                let ignored = IGNORED.iter().any(|(g, p)| *g == group && *p == res.ar.plural);
                if res.deletable && !ignored {
                    let gr = (group, res.ar.plural.clone());
                    if watched_gr.insert(gr) {
                        r.watched.insert(res.key(), res.clone());
                    }
                }
            }
        }
        r
    }

    /// The resource an owner reference's `apiVersion` and `kind` designate: that version if it
    /// is served, else the group's preferred version of the kind.
    pub fn resolve(&self, api_version: &str, kind: &str) -> Option<Arc<Resource>> {
        let group = group_of(api_version);
        let version = api_version.rsplit('/').next().unwrap_or(api_version);
        self.by_gvk
            .get(&(group.to_string(), version.to_string(), kind.to_string()))
            .or_else(|| self.by_gk.get(&(group.to_string(), kind.to_string())))
            .cloned()
    }

    /// The resources to watch, by key.
    pub fn watched(&self) -> &BTreeMap<String, Arc<Resource>> {
        &self.watched
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(namespaced: bool, ops: &[&str]) -> ApiCapabilities {
        ApiCapabilities {
            scope: if namespaced { Scope::Namespaced } else { Scope::Cluster },
            subresources: vec![],
            operations: ops.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn ar(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
        ApiResource {
            group: group.into(),
            version: version.into(),
            api_version: if group.is_empty() { version.into() } else { format!("{group}/{version}") },
            kind: kind.into(),
            plural: plural.into(),
        }
    }

    const ALL: &[&str] = &["create", "delete", "get", "list", "patch", "update", "watch"];

    fn registry() -> Registry {
        Registry::new(vec![
            GroupVersionResources {
                preferred: false,
                resources: vec![
                    (ar("example.com", "v1beta1", "Widget", "widgets"), caps(true, ALL)),
                    (ar("example.com", "v1beta1", "Gadget", "gadgets"), caps(false, ALL)),
                ],
            },
            GroupVersionResources {
                preferred: true,
                resources: vec![
                    (ar("", "v1", "Pod", "pods"), caps(true, ALL)),
                    (ar("", "v1", "Event", "events"), caps(true, ALL)),
                    (ar("", "v1", "Node", "nodes"), caps(false, ALL)),
                    (ar("", "v1", "Binding", "bindings"), caps(true, &["create"])),
                ],
            },
            GroupVersionResources {
                preferred: true,
                resources: vec![(ar("example.com", "v1", "Widget", "widgets"), caps(true, ALL))],
            },
        ])
    }

    #[test]
    fn watches_deletable_resources_at_their_preferred_version() {
        let r = registry();
        let keys: Vec<&String> = r.watched().keys().collect();
        // Events are ignored, bindings cannot be listed; gadgets exist only in v1beta1.
        assert_eq!(keys, ["example.com/v1/widgets", "example.com/v1beta1/gadgets", "v1/nodes", "v1/pods"]);
    }

    #[test]
    fn resolves_references_to_resources_and_scopes() {
        let r = registry();
        let pod = r.resolve("v1", "Pod").unwrap();
        assert!(pod.namespaced && pod.ar.plural == "pods");
        assert!(!r.resolve("v1", "Node").unwrap().namespaced);
        // A served non-preferred version resolves to itself; an unserved one to the preferred.
        assert_eq!(r.resolve("example.com/v1beta1", "Widget").unwrap().ar.version, "v1beta1");
        assert_eq!(r.resolve("example.com/v2", "Widget").unwrap().ar.version, "v1");
        assert!(r.resolve("example.com/v1", "Sprocket").is_none());
        assert!(r.resolve("apps/v1", "Pod").is_none());
        assert_eq!(pod.key(), "v1/pods");
    }
}
