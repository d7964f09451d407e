//! podnet's service proxy — the kube-proxy job: every node DNATs a Service's addresses (cluster
//! IPs, node ports, external and load-balancer IPs) to its endpoints.
//!
//! - [`model`] (pure): Services and EndpointSlices → [`model::ServicePort`]s, with the endpoint
//!   choice rules (traffic policies, terminating endpoints);
//! - the modes, each a [`Mode`]: `nftables` (the default), `iptables` (kube-proxy's layout),
//!   `userspace` (podnet proxies the connections itself).
#![forbid(unsafe_code)]

pub mod controller;
pub mod http;
pub mod incremental;
pub mod iptables;
pub mod metrics;
pub mod model;
pub mod modes;
pub mod nftables;
pub mod userspace;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

pub use model::{Endpoint, Protocol, ServicePort, ServicePortName};

/// What a mode knows of the node it programs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeContext {
    /// The node's name.
    pub name: String,
    /// The node's addresses: NodePorts are served on these (and on loopback for IPv4, as
    /// kube-proxy's `--nodeport-addresses` default).
    pub addresses: Vec<IpAddr>,
    /// The cluster's pod CIDRs: traffic to a cluster IP from outside them is masqueraded
    /// (kube-proxy's `--cluster-cidr`).
    pub cluster_cidrs: Vec<IpNet>,
}

/// What one sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Service ports whose rules were (re)written.
    pub services_written: usize,
    /// Rules (or map elements) in the transaction.
    pub rules_written: usize,
    /// How long the kernel transaction took.
    pub apply: Duration,
}

/// The changes since the last sync: `None` means everything (a full sync).
pub type Changed = Option<BTreeSet<ServicePortName>>;

/// A proxy mode: programs the node so that it serves exactly `ports`.
pub trait Mode: Send {
    /// The mode's name (`nftables`, `iptables`, `userspace`).
    fn name(&self) -> &'static str;

    /// Makes the node serve exactly `ports` (the full list, every time). `changed` names the
    /// service ports that changed since the last successful sync (including removed ones); a
    /// mode may use it to touch only those, and must do a full sync when it is `None`. On error
    /// the next call gets `None`.
    fn sync(&mut self, ports: &[ServicePort], node: &NodeContext, changed: &Changed) -> Result<SyncStats, Error>;

    /// Removes everything the mode programmed (switching modes, `--cleanup`). Idempotent.
    fn cleanup(&mut self) -> Result<(), Error>;
}

/// Errors of the proxy, naming the operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A program (`nft`, `iptables-restore`, …) failed.
    #[error("{program}: {message}")]
    Program { program: String, message: String },
    /// A socket or file operation failed.
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("{0}")]
    Other(String),
}
