//! The `kubernetes` plugin: cluster DNS as the Kubernetes DNS-Based Service Discovery
//! specification (1.1.0) defines it and CoreDNS's kubernetes plugin answers it.
//!
//! - [`cluster`]: the snapshot — services, endpoint slices, pods, namespaces as plain structs —
//!   and [`convert`], building it from the API's objects;
//! - [`answer()`]: the pure answer to a question from a snapshot (`lookup` finds what a name
//!   stands for, `names` reads query names);
//! - [`watcher`]: kube reflectors keeping a [`SharedCluster`] current;
//! - [`KubernetesPlugin`]: the [`crate::Handler`] answering its zones from it.

pub mod answer;
pub mod cluster;
pub mod config;
pub mod convert;
mod lookup;
mod names;
pub mod plugin;
pub mod shared;
pub mod watcher;

#[cfg(test)]
mod tests;

pub use answer::{answer, Answer, Outcome, Query, DNS_SCHEMA_VERSION};
pub use cluster::{Cluster, EndpointInfo, EndpointSliceInfo, PodInfo, PortInfo, ServiceInfo, ServiceKind};
pub use config::{ConfigError, KubernetesConfig, PodMode};
pub use plugin::KubernetesPlugin;
pub use shared::SharedCluster;
