//! The user's kubeconfig: `podnet up` merges the lab's cluster, user and context (all named
//! `podnet-<lab>`) into it and makes the context current, as kind does; `podnet down` removes
//! them again. Other entries are kept as they are.

use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value};

/// The kubeconfig a user's kubectl reads: the first path of `KUBECONFIG`, else `~/.kube/config`.
pub fn user_kubeconfig_path() -> PathBuf {
    if let Some(first) =
        std::env::var_os("KUBECONFIG").and_then(|v| std::env::split_paths(&v).find(|p| !p.as_os_str().is_empty()))
    {
        return first;
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".kube").join("config")
}

/// Errors reading or writing a kubeconfig.
#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}: not a kubeconfig: {detail}", path.display())]
    Parse { path: PathBuf, detail: String },
}

fn entries<'a>(doc: &'a mut Mapping, key: &str) -> &'a mut Vec<Value> {
    let slot = doc.entry(Value::from(key)).or_insert_with(|| Value::Sequence(Vec::new()));
    if !slot.is_sequence() {
        *slot = Value::Sequence(Vec::new());
    }
    slot.as_sequence_mut().expect("a sequence")
}

fn upsert(list: &mut Vec<Value>, name: &str, value: Value) {
    list.retain(|e| e.get("name").and_then(Value::as_str) != Some(name));
    list.push(value);
}

/// Merges the lab's entries (taken from the lab's own kubeconfig `lab`, whose first cluster,
/// user and context are renamed to `name`) into `user` and makes `name` current.
pub fn merge(user: &str, lab: &str, name: &str) -> Result<String, String> {
    let lab: Value = serde_yaml::from_str(lab).map_err(|e| format!("the lab's kubeconfig: {e}"))?;
    let first = |k: &str, inner: &str| lab.get(k).and_then(|l| l.get(0)).and_then(|e| e.get(inner)).cloned();
    let (cluster, user_entry) = match (first("clusters", "cluster"), first("users", "user")) {
        (Some(c), Some(u)) => (c, u),
        _ => return Err("the lab's kubeconfig has no cluster or user".into()),
    };
    let mut doc: Mapping =
        if user.trim().is_empty() { Mapping::new() } else { serde_yaml::from_str(user).map_err(|e| e.to_string())? };
    doc.entry("apiVersion".into()).or_insert("v1".into());
    doc.entry("kind".into()).or_insert("Config".into());
    doc.entry("preferences".into()).or_insert(Value::Mapping(Mapping::new()));
    let named = |inner: &str, v: Value| {
        let mut m = Mapping::new();
        m.insert("name".into(), name.into());
        m.insert(inner.into(), v);
        Value::Mapping(m)
    };
    let mut ctx = Mapping::new();
    ctx.insert("cluster".into(), name.into());
    ctx.insert("user".into(), name.into());
    upsert(entries(&mut doc, "clusters"), name, named("cluster", cluster));
    upsert(entries(&mut doc, "users"), name, named("user", user_entry));
    upsert(entries(&mut doc, "contexts"), name, named("context", Value::Mapping(ctx)));
    doc.insert("current-context".into(), name.into());
    serde_yaml::to_string(&doc).map_err(|e| e.to_string())
}

/// Removes the entries named `name`; clears current-context if it was `name`.
pub fn remove(user: &str, name: &str) -> Result<String, String> {
    let mut doc: Mapping = serde_yaml::from_str(user).map_err(|e| e.to_string())?;
    for key in ["clusters", "users", "contexts"] {
        if let Some(list) = doc.get_mut(key).and_then(Value::as_sequence_mut) {
            list.retain(|e| e.get("name").and_then(Value::as_str) != Some(name));
        }
    }
    if doc.get("current-context").and_then(Value::as_str) == Some(name) {
        doc.insert("current-context".into(), "".into());
    }
    serde_yaml::to_string(&doc).map_err(|e| e.to_string())
}

/// Applies `edit` to the kubeconfig at `path` (created if missing, mode 0600), written atomically.
pub fn edit_file(path: &Path, edit: impl FnOnce(&str) -> Result<String, String>) -> Result<(), KubeconfigError> {
    let io = |source| KubeconfigError::Io { path: path.to_path_buf(), source };
    let current = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(io(e)),
    };
    let next = edit(&current).map_err(|detail| KubeconfigError::Parse { path: path.to_path_buf(), detail })?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("podnet-tmp");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f =
            std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).map_err(io)?;
        f.write_all(next.as_bytes()).map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAB: &str = "apiVersion: v1\nkind: Config\nclusters:\n- name: podnet\n  cluster:\n    server: https://127.0.0.1:40000\n    certificate-authority-data: Q0E=\nusers:\n- name: admin\n  user:\n    client-certificate-data: Qw==\n    client-key-data: Sw==\ncontexts:\n- name: podnet\n  context:\n    cluster: podnet\n    user: admin\ncurrent-context: podnet\n";

    #[test]
    fn merges_into_an_existing_config_and_removes_again() {
        let existing = "apiVersion: v1\nkind: Config\nclusters:\n- name: prod\n  cluster:\n    server: https://prod:6443\ncontexts:\n- name: prod\n  context:\n    cluster: prod\n    user: prod\nusers:\n- name: prod\n  user:\n    token: t\ncurrent-context: prod\n";
        let merged = merge(existing, LAB, "podnet-lab").unwrap();
        let v: Value = serde_yaml::from_str(&merged).unwrap();
        assert_eq!(v["current-context"], "podnet-lab");
        assert_eq!(v["clusters"].as_sequence().unwrap().len(), 2);
        assert_eq!(v["clusters"][1]["cluster"]["server"], "https://127.0.0.1:40000");
        assert_eq!(v["contexts"][1]["context"]["user"], "podnet-lab");
        // Merging twice replaces, never duplicates.
        let twice: Value = serde_yaml::from_str(&merge(&merged, LAB, "podnet-lab").unwrap()).unwrap();
        assert_eq!(twice["users"].as_sequence().unwrap().len(), 2);
        let removed: Value = serde_yaml::from_str(&remove(&merged, "podnet-lab").unwrap()).unwrap();
        assert_eq!(removed["clusters"].as_sequence().unwrap().len(), 1);
        assert_eq!(removed["current-context"], "");
    }

    #[test]
    fn starts_a_new_config_and_rejects_garbage() {
        let v: Value = serde_yaml::from_str(&merge("", LAB, "podnet-x").unwrap()).unwrap();
        assert_eq!(v["kind"], "Config");
        assert!(merge("- not\n- a map", LAB, "podnet-x").is_err());
    }
}
