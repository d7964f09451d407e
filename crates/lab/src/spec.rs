//! What a lab is: its name, nodes, backend, address plan and port maps, and every name and
//! address derived from them. Pure, so the plan can be checked without root.
//!
//! The address plan: the underlay is `172.31.0.0/24` inside the lab's own namespaces (each lab is
//! isolated, so labs may share it): the underlay bridge `.1`, the control plane `.2`, node *i*
//! `.10+i`, load-balancer addresses from `.160/27` (announced by the nodes), and `.200` upwards
//! free for tests' "outside" hosts.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// How pods on different nodes reach each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    Vxlan,
    HostGw,
}

impl std::str::FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "vxlan" => Ok(Backend::Vxlan),
            "host-gw" => Ok(Backend::HostGw),
            other => Err(format!("unknown backend {other:?}: vxlan or host-gw")),
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Vxlan => "vxlan",
            Backend::HostGw => "host-gw",
        })
    }
}

/// A loopback port of the host forwarded to a NodePort of the first node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMap {
    pub host_port: u16,
    pub node_port: u16,
}

impl std::str::FromStr for PortMap {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (h, n) = s.split_once(':').ok_or_else(|| format!("--port-map {s:?}: expected HOSTPORT:NODEPORT"))?;
        let port = |v: &str| v.trim().parse::<u16>().ok().filter(|p| *p > 0);
        match (port(h), port(n)) {
            (Some(host_port), Some(node_port)) => Ok(PortMap { host_port, node_port }),
            _ => Err(format!("--port-map {s:?}: ports must be numbers from 1 to 65535")),
        }
    }
}

/// Everything `podnet up` was asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabSpec {
    pub name: String,
    pub nodes: usize,
    pub node_prefix: String,
    pub backend: Backend,
    pub pod_cidr: Ipv4Net,
    pub service_cidr: Ipv4Net,
    pub port_maps: Vec<PortMap>,
    /// The service proxy's mode (`podnet proxy --proxy-mode`).
    #[serde(default = "default_proxy_mode")]
    pub proxy_mode: String,
}

fn default_proxy_mode() -> String {
    "nftables".into()
}

/// The most nodes a lab can have (the underlay's addresses `.11`–`.110`).
pub const MAX_NODES: usize = 100;

/// Where labs keep their state.
pub const STATE_ROOT: &str = "/var/lib/podnet/labs";

/// Errors in what was asked.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{0}")]
pub struct SpecError(pub String);

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

impl LabSpec {
    /// Checks the spec: names, counts and that the CIDRs fit and do not overlap.
    pub fn validate(&self) -> Result<(), SpecError> {
        let err = |m: String| Err(SpecError(m));
        if !is_dns_label(&self.name) || self.name.len() > 20 {
            return err(format!(
                "--name {:?}: lowercase letters, digits and '-', at most 20 characters, starting and ending with a letter or digit",
                self.name
            ));
        }
        if self.nodes == 0 || self.nodes > MAX_NODES {
            return err(format!("--nodes {}: between 1 and {MAX_NODES}", self.nodes));
        }
        if !is_dns_label(&format!("{}{}", self.node_prefix, self.nodes)) || self.node_prefix.len() > 40 {
            return err(format!(
                "--node-prefix {:?}: node names must be DNS labels (lowercase letters, digits, '-')",
                self.node_prefix
            ));
        }
        if self.pod_cidr.prefix_len() > 22 {
            return err(format!("--pod-cidr {}: too small for a /24 per node (at most /22)", self.pod_cidr));
        }
        let blocks = 1usize << (24 - self.pod_cidr.prefix_len()).min(16);
        if blocks < self.nodes {
            return err(format!("--pod-cidr {}: {blocks} node blocks of /24 for {} nodes", self.pod_cidr, self.nodes));
        }
        let underlay = underlay_net();
        for (flag, net) in [("--pod-cidr", self.pod_cidr), ("--service-cidr", self.service_cidr)] {
            if net.contains(&underlay.network()) || underlay.contains(&net.network()) {
                return err(format!("{flag} {net} overlaps the lab's underlay {underlay}"));
            }
        }
        if self.pod_cidr.contains(&self.service_cidr.network()) || self.service_cidr.contains(&self.pod_cidr.network())
        {
            return err(format!("--pod-cidr {} and --service-cidr {} overlap", self.pod_cidr, self.service_cidr));
        }
        if !podnet_proxy::modes::MODES.contains(&self.proxy_mode.as_str()) {
            return err(format!(
                "--proxy-mode {:?}: one of {}",
                self.proxy_mode,
                podnet_proxy::modes::MODES.join(", ")
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for m in &self.port_maps {
            if !seen.insert(m.host_port) {
                return err(format!("--port-map: host port {} given twice", m.host_port));
            }
        }
        Ok(())
    }

    /// The node names: `<prefix>1` … `<prefix>N`.
    pub fn node_names(&self) -> Vec<String> {
        (1..=self.nodes).map(|i| format!("{}{i}", self.node_prefix)).collect()
    }

    /// The state directory of this lab.
    pub fn state_dir(&self) -> PathBuf {
        state_dir(&self.name)
    }

    /// The cluster DNS Service's address: the tenth of the service range, as kubeadm picks it.
    pub fn cluster_dns(&self) -> Ipv4Addr {
        nth(self.service_cidr, 10)
    }
}

/// The state directory of the lab `name`.
pub fn state_dir(name: &str) -> PathBuf {
    PathBuf::from(STATE_ROOT).join(name)
}

/// The underlay subnet.
pub fn underlay_net() -> Ipv4Net {
    "172.31.0.0/24".parse().expect("a CIDR")
}

fn nth(net: Ipv4Net, i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()) + i)
}

/// The underlay bridge's address (the nodes' default gateway).
pub fn underlay_gateway() -> Ipv4Addr {
    nth(underlay_net(), 1)
}

/// The control plane's address: the API server listens on it (port 6443).
pub fn control_plane_ip() -> Ipv4Addr {
    nth(underlay_net(), 2)
}

/// Node `index` (1-based)'s address on the underlay.
pub fn node_ip(index: usize) -> Ipv4Addr {
    nth(underlay_net(), 10 + index as u32)
}

/// The pool of LoadBalancer Service addresses on the underlay.
pub fn load_balancer_pool() -> Ipv4Net {
    "172.31.0.160/27".parse().expect("a CIDR")
}

/// An "outside" host's address on the underlay (tests add these): `.200 + i`.
pub fn outside_ip(i: u8) -> Ipv4Addr {
    nth(underlay_net(), 200 + u32::from(i))
}

/// The API server's port in the control plane namespace.
pub const API_PORT: u16 = 6443;

/// Network namespace names: every one of a lab starts with `podnet.<lab>.` (dots cannot appear
/// in lab or node names, so one lab's prefix never matches another's).
pub fn netns_prefix(lab: &str) -> String {
    format!("podnet.{lab}.")
}

/// The underlay's namespace.
pub fn underlay_netns(lab: &str) -> String {
    format!("{}underlay", netns_prefix(lab))
}

/// The control plane's namespace.
pub fn control_plane_netns(lab: &str) -> String {
    format!("{}cp", netns_prefix(lab))
}

/// A node's namespace.
pub fn node_netns(lab: &str, node: &str) -> String {
    format!("{}{node}", netns_prefix(lab))
}

/// The prefix of the namespaces of a node's pods (the agent appends the pod's UID).
pub fn pod_netns_prefix(lab: &str, node: &str) -> String {
    format!("{}{node}.", netns_prefix(lab))
}

/// The kubeconfig context (and cluster and user) name of a lab, as kind names its `kind-NAME`.
pub fn context_name(lab: &str) -> String {
    format!("podnet-{lab}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> LabSpec {
        LabSpec {
            name: "lab".into(),
            nodes: 2,
            node_prefix: "node".into(),
            backend: Backend::Vxlan,
            pod_cidr: "10.244.0.0/16".parse().unwrap(),
            service_cidr: "10.96.0.0/12".parse().unwrap(),
            port_maps: vec![],
            proxy_mode: "nftables".into(),
        }
    }

    #[test]
    fn defaults_are_valid_and_named_as_documented() {
        let s = spec();
        s.validate().unwrap();
        assert_eq!(s.node_names(), ["node1", "node2"]);
        assert_eq!(node_netns("lab", "node1"), "podnet.lab.node1");
        assert_eq!(node_ip(1).to_string(), "172.31.0.11");
        assert_eq!(s.cluster_dns().to_string(), "10.96.0.10");
        assert_eq!(context_name("lab"), "podnet-lab");
    }

    #[test]
    fn rejects_what_cannot_work_and_names_it() {
        let bad = |f: &dyn Fn(&mut LabSpec)| {
            let mut s = spec();
            f(&mut s);
            s.validate().unwrap_err().0
        };
        assert!(bad(&|s| s.name = "Lab".into()).starts_with("--name \"Lab\""));
        assert!(bad(&|s| s.name = "a.b".into()).starts_with("--name"));
        assert!(bad(&|s| s.nodes = 0).starts_with("--nodes 0"));
        assert!(bad(&|s| s.node_prefix = "k8s_node".into()).starts_with("--node-prefix"));
        assert!(bad(&|s| s.pod_cidr = "10.244.0.0/23".parse().unwrap()).contains("at most /22"));
        assert!(bad(&|s| {
            s.pod_cidr = "10.244.0.0/22".parse().unwrap();
            s.nodes = 5
        })
        .contains("4 node blocks"));
        assert!(bad(&|s| s.service_cidr = "10.244.0.0/20".parse().unwrap()).contains("overlap"));
        assert!(bad(&|s| s.pod_cidr = "172.31.0.0/16".parse().unwrap()).contains("underlay"));
        assert!(bad(&|s| s.port_maps = vec!["8080:30080".parse().unwrap(), "8080:30081".parse().unwrap()])
            .contains("given twice"));
        assert_eq!("x".parse::<PortMap>().unwrap_err(), "--port-map \"x\": expected HOSTPORT:NODEPORT");
        assert_eq!("8080:30080".parse::<PortMap>().unwrap(), PortMap { host_port: 8080, node_port: 30080 });
        assert_eq!("udp".parse::<Backend>().unwrap_err(), "unknown backend \"udp\": vxlan or host-gw");
    }
}
