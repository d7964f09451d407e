//! The CNI environment: `CNI_COMMAND`, `CNI_CONTAINERID`, `CNI_NETNS`, `CNI_IFNAME`, `CNI_ARGS`
//! and `CNI_PATH`, read from any lookup function (so it is tested without touching the process
//! environment) and validated as SPEC.md says: which variables each command needs, the container
//! ID and interface name rules, and `CNI_ARGS` as `KEY=VALUE;…` pairs. Every problem is error
//! code 4 with a message naming the variables.

use std::path::PathBuf;

use crate::error::{CniError, CniResult};

/// A CNI operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Version,
    Gc,
    Status,
}

impl Command {
    /// Parses `CNI_COMMAND`.
    pub fn parse(s: &str) -> Option<Command> {
        Some(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "VERSION" => Command::Version,
            "GC" => Command::Gc,
            "STATUS" => Command::Status,
            _ => return None,
        })
    }

    /// The name as in `CNI_COMMAND`.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Version => "VERSION",
            Command::Gc => "GC",
            Command::Status => "STATUS",
        }
    }

    /// The variables this command cannot do without.
    fn required(self) -> &'static [&'static str] {
        match self {
            Command::Add | Command::Check => &["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"],
            Command::Del => &["CNI_CONTAINERID", "CNI_IFNAME"],
            Command::Version | Command::Gc | Command::Status => &[],
        }
    }
}

/// The validated environment of one invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Env {
    pub command: Command,
    /// `CNI_CONTAINERID` (empty for VERSION, GC and STATUS).
    pub container_id: String,
    /// `CNI_NETNS`, when given (DEL may go without it).
    pub netns: Option<String>,
    /// `CNI_IFNAME` (empty for VERSION, GC and STATUS).
    pub ifname: String,
    /// `CNI_ARGS`, in order.
    pub args: Vec<(String, String)>,
    /// `CNI_PATH`, split on `:`.
    pub path: Vec<PathBuf>,
}

impl Env {
    /// Reads and validates the environment through `get` (e.g. `|k| std::env::var(k).ok()`).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> CniResult<Env> {
        let nonempty = |k: &str| get(k).filter(|v| !v.is_empty());
        let command_str = nonempty("CNI_COMMAND")
            .ok_or_else(|| CniError::InvalidEnv("required environment variable CNI_COMMAND is missing".into()))?;
        let command = Command::parse(&command_str).ok_or_else(|| {
            CniError::InvalidEnv(format!(
                "CNI_COMMAND {command_str:?} is not one of ADD, DEL, CHECK, VERSION, GC, STATUS"
            ))
        })?;
        let missing: Vec<&str> = command.required().iter().copied().filter(|k| nonempty(k).is_none()).collect();
        if !missing.is_empty() {
            let s = if missing.len() == 1 { "" } else { "s" };
            return Err(CniError::InvalidEnv(format!(
                "required environment variable{s} missing for {}: {}",
                command.as_str(),
                missing.join(", ")
            )));
        }
        let container_id = nonempty("CNI_CONTAINERID").unwrap_or_default();
        let ifname = nonempty("CNI_IFNAME").unwrap_or_default();
        if command.required().contains(&"CNI_CONTAINERID") {
            validate_container_id(&container_id)?;
        }
        if command.required().contains(&"CNI_IFNAME") {
            validate_ifname(&ifname).map_err(|e| CniError::InvalidEnv(format!("CNI_IFNAME {ifname:?}: {e}")))?;
        }
        let args = parse_args(&get("CNI_ARGS").unwrap_or_default())?;
        let path =
            get("CNI_PATH").unwrap_or_default().split(':').filter(|p| !p.is_empty()).map(PathBuf::from).collect();
        Ok(Env { command, container_id, netns: nonempty("CNI_NETNS"), ifname, args, path })
    }

    /// The value of `key` in `CNI_ARGS`.
    pub fn arg(&self, key: &str) -> Option<&str> {
        self.args.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// A container ID starts with a letter or digit, followed by letters, digits, `_`, `.` or `-`.
pub fn validate_container_id(id: &str) -> CniResult<()> {
    let mut bytes = id.bytes();
    let ok = matches!(bytes.next(), Some(b) if b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(CniError::InvalidEnv(format!(
            "CNI_CONTAINERID {id:?} is invalid: it must start with a letter or digit, followed by letters, digits, \
             '_', '.' or '-'"
        )))
    }
}

/// Linux interface name rules: not empty, not `.` or `..`, at most 15 bytes, no `/`, `:` or
/// whitespace. Returns what is wrong.
pub fn validate_ifname(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("an interface name must not be empty".into());
    }
    if name == "." || name == ".." {
        return Err("an interface name must not be \".\" or \"..\"".into());
    }
    if name.len() > 15 {
        return Err(format!("an interface name must be at most 15 bytes long (this one has {})", name.len()));
    }
    if name.chars().any(|c| c == '/' || c == ':' || c.is_whitespace()) {
        return Err("an interface name must not contain '/', ':' or whitespace".into());
    }
    Ok(())
}

/// Parses `CNI_ARGS`: `KEY=VALUE` pairs separated by `;` (empty pairs are skipped).
pub fn parse_args(s: &str) -> CniResult<Vec<(String, String)>> {
    let mut out = Vec::new();
    for pair in s.split(';').filter(|p| !p.trim().is_empty()) {
        match pair.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => out.push((k.trim().to_string(), v.trim().to_string())),
            _ => return Err(CniError::InvalidEnv(format!("CNI_ARGS: {pair:?} is not a KEY=VALUE pair"))),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> CniResult<Env> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Env::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn add_needs_id_netns_ifname() {
        let e = env(&[("CNI_COMMAND", "ADD")]).unwrap_err();
        assert_eq!(e.code(), 4);
        assert_eq!(
            e.to_string(),
            "required environment variables missing for ADD: CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME"
        );
        let e = env(&[("CNI_COMMAND", "ADD"), ("CNI_CONTAINERID", "c1"), ("CNI_IFNAME", "eth0")]).unwrap_err();
        assert_eq!(e.to_string(), "required environment variable missing for ADD: CNI_NETNS");
        let ok = env(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_NETNS", "/run/netns/x"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAME=web;IP=10.0.0.9"),
            ("CNI_PATH", "/opt/cni/bin:/usr/lib/cni"),
        ])
        .unwrap();
        assert_eq!(ok.command, Command::Add);
        assert_eq!(ok.arg("IP"), Some("10.0.0.9"));
        assert_eq!(ok.path, vec![PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")]);
    }

    #[test]
    fn del_may_go_without_netns() {
        let e = env(&[("CNI_COMMAND", "DEL"), ("CNI_CONTAINERID", "c1"), ("CNI_IFNAME", "eth0")]).unwrap();
        assert_eq!(e.netns, None);
        assert_eq!(env(&[("CNI_COMMAND", "GC")]).unwrap().command, Command::Gc);
        assert_eq!(env(&[("CNI_COMMAND", "VERSION")]).unwrap().command, Command::Version);
    }

    #[test]
    fn bad_values_are_named() {
        let e = env(&[]).unwrap_err();
        assert!(e.to_string().contains("CNI_COMMAND"));
        let e = env(&[("CNI_COMMAND", "EXPLODE")]).unwrap_err();
        assert!(e.to_string().contains("\"EXPLODE\""));
        let base = [("CNI_COMMAND", "ADD"), ("CNI_NETNS", "/run/netns/x")];
        let e = env(&[base[0], base[1], ("CNI_CONTAINERID", "-bad"), ("CNI_IFNAME", "eth0")]).unwrap_err();
        assert_eq!(e.code(), 4);
        assert!(e.to_string().contains("CNI_CONTAINERID \"-bad\""));
        for bad in ["a-very-long-interface-name", "eth 0", "eth/0", "..", "a:b"] {
            let e = env(&[base[0], base[1], ("CNI_CONTAINERID", "c1"), ("CNI_IFNAME", bad)]).unwrap_err();
            assert_eq!(e.code(), 4, "{bad}");
            assert!(e.to_string().starts_with("CNI_IFNAME"), "{e}");
        }
        let e = env(&[base[0], base[1], ("CNI_CONTAINERID", "c1"), ("CNI_IFNAME", "eth0"), ("CNI_ARGS", "novalue")])
            .unwrap_err();
        assert_eq!(e.code(), 4);
        assert!(e.to_string().contains("CNI_ARGS"));
    }

    #[test]
    fn container_ids() {
        assert!(validate_container_id("3f6940ab5ab4").is_ok());
        assert!(validate_container_id("a_b.c-d").is_ok());
        assert!(validate_container_id("").is_err());
        assert!(validate_container_id("_x").is_err());
        assert!(validate_container_id("x y").is_err());
    }
}
