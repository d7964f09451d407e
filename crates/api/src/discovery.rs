//! Discovery documents: `/version`, `/api`, `/apis`, `/apis/<group>` and the resource list of
//! every group-version, all derived from the resource registry.

use serde_json::{json, Value};

use crate::resources::{self, RESOURCES};
use crate::status::{ApiError, ApiResult};

/// The Kubernetes version podnet's API server speaks.
pub const KUBE_MAJOR: &str = "1";
pub const KUBE_MINOR: &str = "33";

pub fn version() -> Value {
    json!({
        "major": KUBE_MAJOR,
        "minor": KUBE_MINOR,
        "gitVersion": format!("v{KUBE_MAJOR}.{KUBE_MINOR}.0+podnet-{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "n/a (podnet is written in Rust)",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, if std::env::consts::ARCH == "x86_64" { "amd64" } else { std::env::consts::ARCH }),
    })
}

pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_doc(group: &str) -> Value {
    let gv = json!({"groupVersion": format!("{group}/v1"), "version": "v1"});
    json!({"name": group, "versions": [gv.clone()], "preferredVersion": gv})
}

pub fn groups() -> Value {
    let groups: Vec<Value> = resources::groups().into_iter().filter(|g| !g.is_empty()).map(group_doc).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn group(name: &str) -> ApiResult<Value> {
    if name.is_empty() || !resources::groups().contains(&name) {
        return Err(ApiError::NoSuchResource);
    }
    let mut g = group_doc(name);
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    Ok(g)
}

const VERBS: &[&str] = &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

pub fn resource_list(group: &str, version: &str) -> ApiResult<Value> {
    let served: Vec<_> = RESOURCES.iter().filter(|r| r.group == group && r.version == version).collect();
    if served.is_empty() {
        return Err(ApiError::NoSuchResource);
    }
    let mut list = Vec::new();
    for r in served {
        let mut entry = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": VERBS,
            "storageVersionHash": storage_version_hash(r.group, r.version, r.kind),
        });
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            entry["categories"] = json!(r.categories);
        }
        list.push(entry);
        for sub in r.subresources {
            let mut e =
                json!({"name": format!("{}/{}", r.plural, sub.name()), "singularName": "", "namespaced": r.namespaced});
            match sub {
                resources::Subresource::Status => {
                    e["kind"] = json!(r.kind);
                    e["verbs"] = json!(["get", "patch", "update"]);
                }
                resources::Subresource::Scale => {
                    e["group"] = json!("autoscaling");
                    e["version"] = json!("v1");
                    e["kind"] = json!("Scale");
                    e["verbs"] = json!(["get", "patch", "update"]);
                }
                resources::Subresource::Binding => {
                    e["kind"] = json!("Binding");
                    e["verbs"] = json!(["create"]);
                }
                resources::Subresource::Log => {
                    e["kind"] = json!(r.kind);
                    e["verbs"] = json!(["get"]);
                }
                resources::Subresource::Exec => {
                    e["kind"] = json!("PodExecOptions");
                    e["verbs"] = json!(["create", "get"]);
                }
                resources::Subresource::Attach => {
                    e["kind"] = json!("PodAttachOptions");
                    e["verbs"] = json!(["create", "get"]);
                }
            }
            list.push(e);
        }
    }
    let gv = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    Ok(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": list}))
}

/// A stable hash of the storage version, as discovery publishes it (base64 of 8 bytes).
fn storage_version_hash(group: &str, version: &str, kind: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{group}/{version}/{kind}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(&digest[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents() {
        let core = resource_list("", "v1").unwrap();
        let pods = core["resources"].as_array().unwrap().iter().find(|r| r["name"] == "pods").unwrap();
        assert_eq!(pods["shortNames"], json!(["po"]));
        assert_eq!(pods["categories"], json!(["all"]));
        let apps = resource_list("apps", "v1").unwrap();
        assert!(apps["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "deployments/scale" && r["group"] == "autoscaling"));
        assert!(resource_list("apps", "v2").is_err());
        let names: Vec<&str> =
            core["resources"].as_array().unwrap().iter().filter_map(|r| r["name"].as_str()).collect();
        for sub in ["pods/log", "pods/exec", "pods/attach"] {
            assert!(names.contains(&sub), "{sub} in {names:?}");
        }
        assert!(groups()["groups"].as_array().unwrap().iter().any(|g| g["name"] == "networking.k8s.io"));
        assert!(group("nope").is_err());
    }
}
