//! The plugins of a server block's chain, CoreDNS's that the default Kubernetes Corefile uses:
//! `errors`, `log`, `health`, `ready`, `prometheus`, `forward`, `cache`, `loop`, `reload`,
//! `loadbalance` and `hosts` (`kubernetes` is built by a factory the caller gives
//! [`build_chain`]). Each is a [`crate::Handler`]; [`ChainContext`] holds what they share.

mod build;
pub mod cache;
mod context;
pub mod errors;
pub mod forward;
pub mod health;
pub mod hosts;
mod http;
pub mod loadbalance;
pub mod log;
pub mod loop_detect;
pub mod metrics;
pub mod prometheus;
pub mod ready;
pub mod reload;
pub mod response;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod testutil;

pub use build::{build_chain, build_servers, BoxError, BuildError, KubernetesPlugin, Server, SharedChain};
pub use context::{ChainContext, ForwardTimeouts};
pub use errors::report_error;
pub use loop_detect::{LoopAction, LoopDetected};
pub use metrics::Metrics;
pub use ready::{Readiness, ReadinessRegistry};
pub use reload::{reload_once, watch_corefile, ReloadOutcome, Reloader};
