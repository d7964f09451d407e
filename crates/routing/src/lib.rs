//! Routing between nodes: every node agent programs, in its node's network namespace, a path to
//! every other node's pod CIDR, and masquerades pod traffic that leaves the cluster.
//!
//! - [`plan`] (pure): from this node's [`Config`] and the [`NodeRoute`] of every node, the
//!   [`Plan`] — host-gw routes, or flannel's VXLAN layout (device `flannel.1`, VNI 1, UDP 8472,
//!   one route, one permanent neighbour and one FDB entry per remote node); [`pod_mtu`];
//!   [`vtep_mac`], the VTEP MAC every node derives from a node's name.
//! - [`annotations`] (pure): the flannel annotations a Node carries
//!   ([`annotations::node_annotations`]), and a Kubernetes Node read into a [`NodeRoute`]
//!   ([`annotations::node_route`]).
//! - [`apply()`]: reconciles a network namespace with a plan — adds, replaces and removes only
//!   what differs, deletes only what it owns (routes of protocol [`RTPROT_PODNET`], the VXLAN
//!   device, the nftables tables `podnet_node`), enables forwarding; idempotent.
//! - [`masq`]: the masquerade rules (nftables, written with `nft -f -` atomically).
//!
//! How a node agent uses it, each time the set of Nodes changes (level-based: always the full
//! list), on a blocking thread:
//!
//! ```no_run
//! use podnet_routing::{annotations, apply_current, plan, Backend, Config, NodeRoute};
//! # fn f(nodes: Vec<k8s_openapi::api::core::v1::Node>) -> Result<(), podnet_routing::Error> {
//! let mut config = Config::new(Backend::Vxlan, "node-1", "172.18.0.11".parse().unwrap(), "eth0", 1500);
//! config.pod_cidrs = vec!["10.244.1.0/24".parse().unwrap()];
//! config.cluster_cidrs = vec!["10.244.0.0/16".parse().unwrap()];
//! // Publish annotations::node_annotations(&config) on this Node (once).
//! let routes: Vec<NodeRoute> = nodes.iter().filter_map(annotations::node_route).collect();
//! let plan = plan(&config, &routes);
//! for w in &plan.warnings { eprintln!("routing: {w}"); }
//! let changes = apply_current(&plan)?; // or apply(&netns, &plan) from any thread
//! if !changes.is_empty() { eprintln!("routing: {changes}"); }
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod annotations;
pub mod apply;
pub mod error;
pub mod masq;
pub mod plan;

pub use apply::{apply, apply_current, Action, Changes};
pub use error::Error;
pub use ipnet::IpNet;
pub use plan::{
    plan, pod_mtu, vtep_mac, Backend, Config, Masquerade, NodeRoute, Plan, PlannedFdb, PlannedNeighbour, PlannedRoute,
    VxlanConfig, VxlanDevice, FLANNEL_DEVICE, FLANNEL_PORT, FLANNEL_VNI, RTPROT_PODNET,
};
pub use podnet_netlink::MacAddr;
