//! podnet's cluster controllers: what makes the objects of the API come alive.
//!
//! Every controller talks to the cluster only through the Kubernetes API (the `kube` crate), so
//! the same code runs in-process in `podnet server` and, as `podnet controllers`, against a real
//! kube-apiserver. Each follows kube-runtime's shape: reflector stores fed by watchers, a
//! level-based, idempotent `reconcile(obj, ctx) -> Result<Action>` and an error policy; the
//! decisions themselves are pure functions, unit-tested without a cluster.
//!
//! - [`endpoints`]: Endpoints and EndpointSlices of every Service with a selector;
//! - [`replicaset`] and [`deployment`]: pods from templates, rolling updates;
//! - [`daemonset`]: one pod per eligible node;
//! - [`scheduler`]: binds pods to Ready nodes;
//! - [`nodeipam`]: a pod CIDR per node;
//! - [`gc`]: cascading deletion through ownerReferences;
//! - [`servicelb`]: load-balancer IPs from a pool for LoadBalancer Services;
//! - [`events`]: the core/v1 Events they record, as `kubectl describe` shows them.
#![forbid(unsafe_code)]

pub mod context;
pub mod daemonset;
pub mod deployment;
pub mod endpoints;
pub mod events;
pub mod gc;
pub mod nodeipam;
pub mod replicaset;
pub mod scheduler;
pub mod servicelb;

use std::sync::Arc;

pub use context::{Config, Context};

/// Errors of the controllers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{kind} {name}: {message}")]
    Invalid { kind: &'static str, name: String, message: String },
    #[error("{0}")]
    Other(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The controllers `podnet controllers` (and `podnet server`) runs, by name.
pub const ALL: &[&str] =
    &["endpoints", "replicaset", "deployment", "daemonset", "scheduler", "nodeipam", "gc", "servicelb"];

/// Runs the controllers named in `config.enabled` until `shutdown` resolves.
pub async fn run(
    client: kube::Client,
    config: Config,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    // Bad configuration fails here, before anything runs, not later inside one controller.
    for name in &config.enabled {
        anyhow::ensure!(ALL.contains(&name.as_str()), "unknown controller {name:?}: known ones are {}", ALL.join(", "));
    }
    if config.enabled.iter().any(|c| c == "nodeipam") {
        nodeipam::validate(&config)?;
    }
    let ctx = Arc::new(Context::new(client, config));
    let mut tasks = tokio::task::JoinSet::new();
    for name in ctx.config.enabled.clone() {
        let ctx = ctx.clone();
        let fut: std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + Send>> = match name.as_str() {
            "endpoints" => Box::pin(endpoints::run(ctx)),
            "replicaset" => Box::pin(replicaset::run(ctx)),
            "deployment" => Box::pin(deployment::run(ctx)),
            "daemonset" => Box::pin(daemonset::run(ctx)),
            "scheduler" => Box::pin(scheduler::run(ctx)),
            "nodeipam" => Box::pin(nodeipam::run(ctx)),
            "gc" => Box::pin(gc::run(ctx)),
            "servicelb" => Box::pin(servicelb::run(ctx)),
            other => anyhow::bail!("unknown controller {other:?}: known ones are {}", ALL.join(", ")),
        };
        tasks.spawn(async move {
            if let Err(e) = fut.await {
                tracing::error!(controller = %name, error = %e, "controller stopped");
            }
        });
    }
    tokio::select! {
        _ = shutdown => {}
        _ = async { while tasks.join_next().await.is_some() {} } => {}
    }
    tasks.shutdown().await;
    Ok(())
}
