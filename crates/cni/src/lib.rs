//! podnet's CNI plugin: what a container runtime (containerd, CRI-O, podnet's node agent) runs
//! to wire a pod into the network. The `podnet` binary becomes the plugin when it is run as
//! `podnet-cni`, or under any `podnet*` name with `CNI_COMMAND` set (so `/opt/cni/bin/podnet`
//! works as plugin type `podnet`): see [`invoked_as_plugin`] and [`main`].
//!
//! The configuration's `type` picks the plugin (CNI spec 0.3.0 … 1.1.0: ADD, DEL, CHECK,
//! VERSION, GC, STATUS):
//!
//! | `type` | plugin |
//! |---|---|
//! | `podnet` (and anything not below) | [`bridge`]: bridge + veth, compatible with the reference `bridge` plugin |
//! | `portmap`, `podnet-portmap` | [`portmap`]: host ports with nftables, chained |
//! | `loopback`, `podnet-loopback` | [`loopback`] |
//! | `host-local`, `podnet-host-local` | [`ipam`] alone (host-local-compatible) |
//!
//! Layout: [`env`] (the `CNI_*` variables), [`netconf`] (shared configuration fields),
//! [`version`], [`types`] (results), [`error`] (error JSON and codes) are pure; [`ipam`] keeps
//! the on-disk store; [`bridge`], [`loopback`] and [`sys`] act on the system through
//! podnet-netlink; [`ipmasq`] through [`nftnl`] (nftables over netlink, on every ADD and DEL);
//! [`nft`] and [`portmap`] through the `nft` program; [`delegate`] runs other IPAM plugins.

pub mod bridge;
pub mod delegate;
pub mod env;
pub mod error;
pub mod fields;
pub mod ipam;
pub mod ipmasq;
pub mod loopback;
pub mod netconf;
pub mod nft;
pub mod nftnl;
pub mod portmap;
pub mod sys;
pub mod types;
pub mod version;

use std::collections::HashSet;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::path::Path;

use serde_json::Value;

use env::{Command, Env};
use error::{CniError, CniResult};
use netconf::NetConf;
use types::AddResult;

/// The name under which the `podnet` binary is always the CNI plugin.
pub const PLUGIN_NAME: &str = "podnet-cni";

/// Whether a program called `argv0` (with `CNI_COMMAND` set or not) is to act as the plugin:
/// its file name is `podnet-cni`, or starts with `podnet` and `CNI_COMMAND` is set.
pub fn is_plugin_name(argv0: &OsStr, cni_command_set: bool) -> bool {
    let name = Path::new(argv0).file_name().and_then(OsStr::to_str).unwrap_or("");
    name == PLUGIN_NAME || (cni_command_set && name.starts_with("podnet"))
}

/// Whether this process is to act as the plugin (see [`is_plugin_name`]).
pub fn invoked_as_plugin() -> bool {
    let argv0 = std::env::args_os().next().unwrap_or_default();
    is_plugin_name(&argv0, std::env::var_os("CNI_COMMAND").is_some_and(|v| !v.is_empty()))
}

/// The plugin selected by a configuration's `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plugin {
    Bridge,
    Portmap,
    Loopback,
    HostLocal,
}

impl Plugin {
    pub fn for_type(t: &str) -> Plugin {
        match t {
            "portmap" | "podnet-portmap" => Plugin::Portmap,
            "loopback" | "podnet-loopback" => Plugin::Loopback,
            t if ipam::HOST_LOCAL_TYPES.contains(&t) => Plugin::HostLocal,
            _ => Plugin::Bridge,
        }
    }
}

/// Runs the plugin as a runtime does: environment, stdin, stdout; returns the exit code.
pub fn main() -> i32 {
    let env = Env::from_lookup(|k| std::env::var(k).ok());
    let mut stdin = Vec::new();
    let read = std::io::stdin().read_to_end(&mut stdin);
    let (out, code) = match read {
        Ok(_) => run(env, &stdin),
        Err(e) => {
            let err = CniError::Io(format!("cannot read the network configuration from stdin: {e}"));
            (err.to_json(version::CURRENT).to_string(), 1)
        }
    };
    let mut stdout = std::io::stdout().lock();
    if !out.is_empty() {
        let _ = writeln!(stdout, "{out}");
    }
    let _ = stdout.flush();
    code
}

/// One invocation: what to print on stdout and the exit code (0, or 1 with the error JSON).
pub fn run(env: CniResult<Env>, stdin: &[u8]) -> (String, i32) {
    match env.and_then(|env| dispatch(&env, stdin)) {
        Ok(Some(v)) => (v.to_string(), 0),
        Ok(None) => (String::new(), 0),
        Err(e) => (e.to_json(&netconf::error_version(stdin)).to_string(), 1),
    }
}

/// Runs `env.command` with the configuration `stdin`; returns what to print.
pub fn dispatch(env: &Env, stdin: &[u8]) -> CniResult<Option<Value>> {
    if env.command == Command::Version {
        let requested = if stdin.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            netconf::decode(stdin)?.get("cniVersion").and_then(Value::as_str).map(str::to_string)
        };
        return Ok(Some(version::info(requested.as_deref())));
    }
    let nc = NetConf::parse(netconf::decode(stdin)?)?;
    version::check_command(env.command.as_str(), nc.version)?;
    let result: Option<AddResult> = match (Plugin::for_type(&nc.plugin_type), env.command) {
        (_, Command::Version) => unreachable!("handled above"),
        (Plugin::Bridge, Command::Add) => Some(bridge::add(&nc, env, stdin)?),
        (Plugin::Bridge, Command::Del) => none(bridge::del(&nc, env, stdin))?,
        (Plugin::Bridge, Command::Check) => none(bridge::check(&nc, env, stdin))?,
        (Plugin::Bridge, Command::Gc) => none(bridge::gc(&nc, env, stdin))?,
        (Plugin::Bridge, Command::Status) => none(bridge::status(&nc, env, stdin))?,
        (Plugin::Loopback, Command::Add) => Some(loopback::add(&nc, env)?),
        (Plugin::Loopback, Command::Del) => none(loopback::del(env))?,
        (Plugin::Loopback, Command::Check) => none(loopback::check(env))?,
        (Plugin::Loopback, Command::Gc | Command::Status) => None,
        (Plugin::Portmap, cmd) => portmap_command(&nc, env, cmd)?,
        (Plugin::HostLocal, cmd) => host_local_command(&nc, env, cmd)?,
    };
    Ok(result.map(|r| r.to_json(&nc.cni_version, nc.version)))
}

fn none(r: CniResult<()>) -> CniResult<Option<AddResult>> {
    r.map(|()| None)
}

fn valid_set(nc: &NetConf) -> CniResult<HashSet<types::Attachment>> {
    Ok(nc
        .valid_attachments()?
        .ok_or_else(|| CniError::InvalidConfig("cni.dev/valid-attachments: required for GC".into()))?
        .into_iter()
        .collect())
}

/// The portmap plugin.
fn portmap_command(nc: &NetConf, env: &Env, cmd: Command) -> CniResult<Option<AddResult>> {
    let pc = portmap::PortmapConf::parse(nc)?;
    let tag = nft::attachment_tag(&nc.name, &env.container_id, &env.ifname);
    match cmd {
        Command::Add => {
            let prev = nc.prev_result.clone().ok_or_else(|| {
                CniError::InvalidConfig("prevResult: missing: portmap must be called as a chained plugin".into())
            })?;
            if !pc.mappings.is_empty() {
                let ips = portmap::container_ips(&prev, &env.ifname);
                if pc.snat && ips.iter().any(|i| i.is_ipv4()) {
                    // localhost:hostPort leaves through the host interface: let 127.0.0.1 route.
                    if let Some(hostif) = prev.interfaces.iter().find(|i| i.sandbox.is_empty()) {
                        sys::host_sysctl(&format!("net.ipv4.conf.{}.route_localnet", hostif.name), "1")
                            .map_err(|e| e.context("cannot enable route_localnet"))?;
                    }
                }
                portmap::add(&pc, &tag, &ips)?;
            }
            Ok(Some(prev))
        }
        Command::Del => {
            if !pc.mappings.is_empty() {
                portmap::del(&tag)?;
            }
            Ok(None)
        }
        Command::Check => {
            let prev = nc
                .prev_result
                .as_ref()
                .ok_or_else(|| CniError::InvalidConfig("prevResult: required for CHECK".into()))?;
            if !pc.mappings.is_empty() {
                portmap::check(&pc, &tag, &portmap::container_ips(prev, &env.ifname))?;
            }
            Ok(None)
        }
        Command::Gc => {
            portmap::gc(&nc.name, &bridge::valid_tags(&nc.name, &valid_set(nc)?))?;
            Ok(None)
        }
        Command::Status => {
            if !nft::available() {
                return Err(CniError::NotAvailable(format!(
                    "portmap needs nftables: {} cannot be run",
                    nft::nft_program()
                )));
            }
            Ok(None)
        }
        Command::Version => unreachable!("handled by dispatch"),
    }
}

/// host-local on its own (an IPAM plugin's result: addresses, routes, DNS; no interfaces).
fn host_local_command(nc: &NetConf, env: &Env, cmd: Command) -> CniResult<Option<AddResult>> {
    let conf = match ipam::parse(nc, &env.args)? {
        ipam::Ipam::HostLocal(c) => c,
        _ => return Err(CniError::InvalidConfig("ipam: a host-local configuration is required".into())),
    };
    match cmd {
        Command::Add => ipam::add(&conf, &env.container_id, &env.ifname).map(Some),
        Command::Del => ipam::del(&conf, &env.container_id, &env.ifname).map(|_| None),
        Command::Check => ipam::check(&conf, &env.container_id, &env.ifname).map(|_| None),
        Command::Gc => ipam::gc(&conf, &valid_set(nc)?).map(|_| None),
        Command::Status => ipam::status(&conf).map(|()| None),
        Command::Version => unreachable!("handled by dispatch"),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> CniResult<Env> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Env::from_lookup(|k| map.get(k).cloned())
    }

    fn add_env() -> CniResult<Env> {
        env(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_NETNS", "/nonexistent/ns"),
            ("CNI_IFNAME", "eth0"),
        ])
    }

    fn error_of(out: &(String, i32)) -> Value {
        assert_eq!(out.1, 1, "{}", out.0);
        serde_json::from_str(&out.0).unwrap()
    }

    #[test]
    fn names() {
        assert!(is_plugin_name(OsStr::new("/opt/cni/bin/podnet-cni"), false));
        assert!(is_plugin_name(OsStr::new("/opt/cni/bin/podnet"), true));
        assert!(is_plugin_name(OsStr::new("podnet-portmap"), true));
        assert!(!is_plugin_name(OsStr::new("/usr/bin/podnet"), false));
        assert!(!is_plugin_name(OsStr::new("bridge"), true));
        assert_eq!(Plugin::for_type("podnet"), Plugin::Bridge);
        assert_eq!(Plugin::for_type("portmap"), Plugin::Portmap);
        assert_eq!(Plugin::for_type("podnet-loopback"), Plugin::Loopback);
        assert_eq!(Plugin::for_type("host-local"), Plugin::HostLocal);
    }

    #[test]
    fn version_command() {
        let out = run(env(&[("CNI_COMMAND", "VERSION")]), br#"{"cniVersion":"1.0.0"}"#);
        assert_eq!(out.1, 0);
        let v: Value = serde_json::from_str(&out.0).unwrap();
        assert_eq!(v["cniVersion"], "1.0.0");
        assert_eq!(v["supportedVersions"], json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]));
        assert_eq!(run(env(&[("CNI_COMMAND", "VERSION")]), b"").1, 0);
    }

    #[test]
    fn bad_input_gives_error_json() {
        let v = error_of(&run(add_env(), b"{not json"));
        assert_eq!(v["code"], 6);
        assert_eq!(v["cniVersion"], version::CURRENT);
        let v = error_of(&run(add_env(), br#"{"cniVersion":"0.2.0","name":"n","type":"podnet"}"#));
        assert_eq!(v["code"], 1);
        assert!(v["msg"].as_str().unwrap().contains("0.2.0"));
        let v = error_of(&run(env(&[("CNI_COMMAND", "ADD")]), br#"{"cniVersion":"1.0.0","name":"n","type":"podnet"}"#));
        assert_eq!((v["code"].as_u64(), v["cniVersion"].as_str()), (Some(4), Some("1.0.0")));
        assert!(v["msg"].as_str().unwrap().contains("CNI_NETNS"));
        let v = error_of(&run(add_env(), br#"{"cniVersion":"1.0.0","name":"n","type":"podnet","mtu":"x"}"#));
        assert_eq!(v["code"], 7);
        let v = error_of(&run(env(&[("CNI_COMMAND", "GC")]), br#"{"cniVersion":"1.0.0","name":"n","type":"podnet"}"#));
        assert_eq!(v["code"], 1);
        // A missing network namespace is "container unknown".
        let v = error_of(&run(add_env(), br#"{"cniVersion":"1.0.0","name":"n","type":"podnet"}"#));
        assert_eq!(v["code"], 3, "{v}");
        assert!(v["msg"].as_str().unwrap().contains("/nonexistent/ns"));
    }

    #[test]
    fn portmap_needs_prev_result() {
        let v = error_of(&run(add_env(), br#"{"cniVersion":"1.0.0","name":"n","type":"portmap"}"#));
        assert_eq!(v["code"], 7);
        assert!(v["msg"].as_str().unwrap().contains("chained"));
        // Without mappings, the previous result is passed on in the configuration's version.
        let out = run(
            add_env(),
            br#"{"cniVersion":"0.4.0","name":"n","type":"portmap","prevResult":{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24"}]}}"#,
        );
        assert_eq!(out.1, 0, "{}", out.0);
        let v: Value = serde_json::from_str(&out.0).unwrap();
        assert_eq!(v["cniVersion"], "0.4.0");
        assert_eq!(v["ips"][0]["version"], "4");
    }

    #[test]
    fn host_local_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let conf = json!({"cniVersion": "1.1.0", "name": "hl", "type": "host-local",
            "ipam": {"type": "host-local", "subnet": "10.70.0.0/24", "dataDir": tmp.path()}});
        let stdin = conf.to_string();
        let e = |cmd: &str| {
            env(&[("CNI_COMMAND", cmd), ("CNI_CONTAINERID", "c1"), ("CNI_NETNS", "/x"), ("CNI_IFNAME", "eth0")])
        };
        let out = run(e("ADD"), stdin.as_bytes());
        assert_eq!(out.1, 0, "{}", out.0);
        let v: Value = serde_json::from_str(&out.0).unwrap();
        assert_eq!(v["ips"][0]["address"], "10.70.0.2/24");
        assert_eq!(v["ips"][0]["gateway"], "10.70.0.1");
        assert!(v.get("interfaces").is_none());
        assert_eq!(run(e("CHECK"), stdin.as_bytes()).1, 0);
        let mut gc = conf.clone();
        gc["cni.dev/valid-attachments"] = json!([]);
        assert_eq!(run(env(&[("CNI_COMMAND", "GC")]), gc.to_string().as_bytes()).1, 0);
        assert!(!tmp.path().join("hl/10.70.0.2").exists());
        assert_eq!(run(e("DEL"), stdin.as_bytes()).1, 0);
        assert_eq!(run(env(&[("CNI_COMMAND", "STATUS")]), stdin.as_bytes()).1, 0);
    }
}
