//! What every controller shares: the API client, the configuration and the event recorder.

use crate::events::Recorder;

/// Configuration of the controllers.
#[derive(Debug, Clone)]
pub struct Config {
    /// The controllers to run (names from [`crate::ALL`]).
    pub enabled: Vec<String>,
    /// Node IPAM: the cluster's pod CIDR, split into one block per node.
    pub cluster_cidr: String,
    /// Node IPAM: the prefix length of each node's block.
    pub node_cidr_mask: u8,
    /// servicelb: the pool LoadBalancer Services get addresses from (none: servicelb idles).
    pub load_balancer_pool: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            enabled: crate::ALL.iter().map(|s| s.to_string()).collect(),
            cluster_cidr: "10.244.0.0/16".into(),
            node_cidr_mask: 24,
            load_balancer_pool: None,
        }
    }
}

/// Shared by the controllers' reconcilers.
pub struct Context {
    pub client: kube::Client,
    pub config: Config,
    pub recorder: Recorder,
}

impl Context {
    pub fn new(client: kube::Client, config: Config) -> Self {
        Context { recorder: Recorder::new(client.clone()), client, config }
    }
}
