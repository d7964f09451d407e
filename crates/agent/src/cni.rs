//! The agent as a CNI runtime: it wires a pod's network namespace by running podnet's CNI plugin
//! exactly as containerd would (the `CNI_*` environment, the network configuration on stdin, the
//! result or error JSON on stdout). The configuration is the node's: a bridge `cni0` with the
//! node's pod CIDR, host-local IPAM under the agent's state directory, the MTU of the backend,
//! and the same-node redirect when the node has it.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ipnet::IpNet;
use podnet_netlink::{Handle, Netns};
use serde_json::{json, Value};

/// The network configuration the node's pods get.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// The node's pod CIDRs (one per family).
    pub pod_cidrs: Vec<IpNet>,
    /// The pods' MTU (the backend's: 50 less than the underlay's for VXLAN).
    pub mtu: u32,
    /// Where host-local keeps its reservations.
    pub ipam_dir: PathBuf,
    /// The same-node redirect's bpffs, when pods get it.
    pub bpf_pin_dir: Option<PathBuf>,
}

/// The network's name, as in `/etc/cni/net.d`.
pub const NETWORK_NAME: &str = "podnet";
/// The bridge on each node.
pub const BRIDGE: &str = "cni0";
/// The pod's interface.
pub const IFNAME: &str = "eth0";

/// The CNI configuration (spec 1.0.0) for this node's pods.
pub fn network_config(cfg: &NetworkConfig) -> Value {
    let ranges: Vec<Value> = cfg.pod_cidrs.iter().map(|c| json!([{ "subnet": c.to_string() }])).collect();
    let routes: Vec<Value> =
        cfg.pod_cidrs.iter().map(|c| json!({ "dst": if c.addr().is_ipv4() { "0.0.0.0/0" } else { "::/0" } })).collect();
    let mut conf = json!({
        "cniVersion": "1.0.0",
        "name": NETWORK_NAME,
        "type": "podnet",
        "bridge": BRIDGE,
        "isGateway": true,
        "isDefaultGateway": true,
        // Traffic leaving the cluster is masqueraded once per node (podnet-routing), not per pod.
        "ipMasq": false,
        "hairpinMode": true,
        "mtu": cfg.mtu,
        "ipam": { "type": "host-local", "ranges": ranges, "routes": routes, "dataDir": cfg.ipam_dir },
    });
    if let Some(dir) = &cfg.bpf_pin_dir {
        conf["sameNodeRedirect"] = json!(true);
        conf["bpfPinDir"] = json!(dir);
    }
    conf
}

/// A failed plugin run: its error JSON's code and message, or why it could not run.
#[derive(Debug, thiserror::Error)]
pub enum CniError {
    #[error("CNI {command}: the plugin failed with code {code}: {msg}{}", details.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Plugin { command: &'static str, code: i64, msg: String, details: Option<String> },
    #[error("CNI {command}: cannot run {}: {source}", plugin.display())]
    Spawn { command: &'static str, plugin: PathBuf, source: std::io::Error },
    #[error("setting the pod's loopback interface up: {0}")]
    Loopback(String),
    #[error("CNI {command}: unexpected output from the plugin: {0}", .output)]
    Output { command: &'static str, output: String },
}

/// Sets the pod's loopback interface up, the first thing every runtime does to a new network
/// namespace (containerd through its `cni-loopback` network, CRI-O directly, as here).
pub fn loopback_up(netns: &Netns) -> Result<(), CniError> {
    let up = Handle::in_netns(netns).and_then(|mut h| h.set_up("lo"));
    up.map_err(|e| CniError::Loopback(e.to_string()))
}

/// Runs the plugin `plugin` with `command` for a container's interface `ifname`.
pub fn run_plugin(
    plugin: &Path,
    command: &'static str,
    container_id: &str,
    netns: &Path,
    ifname: &str,
    config: &Value,
) -> Result<Value, CniError> {
    let cni_path = plugin.parent().map(|p| p.to_path_buf()).unwrap_or_else(|| PathBuf::from("/"));
    let mut child = Command::new(plugin)
        .env_clear()
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", container_id)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", ifname)
        .env("CNI_PATH", cni_path)
        .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| CniError::Spawn { command, plugin: plugin.to_path_buf(), source })?;
    let body = serde_json::to_vec(config).expect("JSON");
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(&body);
    }
    let out =
        child.wait_with_output().map_err(|source| CniError::Spawn { command, plugin: plugin.to_path_buf(), source })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if out.status.success() {
        if stdout.trim().is_empty() {
            return Ok(Value::Null);
        }
        return serde_json::from_str(&stdout).map_err(|_| CniError::Output { command, output: stdout.into_owned() });
    }
    match serde_json::from_str::<Value>(&stdout) {
        Ok(v) if v.get("code").is_some() => Err(CniError::Plugin {
            command,
            code: v["code"].as_i64().unwrap_or(0),
            msg: v["msg"].as_str().unwrap_or_default().to_string(),
            details: v["details"].as_str().map(str::to_string),
        }),
        _ => Err(CniError::Output {
            command,
            output: format!("{} {}", stdout.trim(), String::from_utf8_lossy(&out.stderr).trim()),
        }),
    }
}

/// The addresses of a CNI result (`ips[].address` without the prefix length), IPv4 first.
pub fn result_ips(result: &Value) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = result["ips"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|ip| ip["address"].as_str()?.parse::<IpNet>().ok())
        .map(|net| net.addr())
        .collect();
    ips.sort_by_key(|ip| ip.is_ipv6());
    ips
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_node_network() {
        let cfg = NetworkConfig {
            pod_cidrs: vec!["10.244.1.0/24".parse().unwrap()],
            mtu: 1450,
            ipam_dir: "/var/lib/podnet/lab/node1/cni".into(),
            bpf_pin_dir: None,
        };
        let v = network_config(&cfg);
        assert_eq!(v["ipam"]["ranges"], json!([[{"subnet": "10.244.1.0/24"}]]));
        assert_eq!(v["ipam"]["routes"], json!([{"dst": "0.0.0.0/0"}]));
        assert_eq!(v["mtu"], 1450);
        assert_eq!(v["ipMasq"], false);
        assert_eq!(v.get("sameNodeRedirect"), None);
        let v = network_config(&NetworkConfig { bpf_pin_dir: Some("/var/lib/podnet/lab/node1/bpf".into()), ..cfg });
        assert_eq!((&v["sameNodeRedirect"], &v["bpfPinDir"]), (&json!(true), &json!("/var/lib/podnet/lab/node1/bpf")));
    }

    #[test]
    fn reads_the_addresses_of_a_result() {
        let r = json!({"ips": [{"address": "fd00::5/64"}, {"address": "10.244.1.5/24", "gateway": "10.244.1.1"}]});
        assert_eq!(result_ips(&r), vec!["10.244.1.5".parse::<IpAddr>().unwrap(), "fd00::5".parse().unwrap()]);
    }
}
