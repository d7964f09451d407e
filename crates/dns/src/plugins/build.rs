//! Building a server block's chain from the Corefile: each configured plugin becomes a
//! [`Handler`] in plugin.cfg order; `kubernetes` comes from a factory the caller provides.

use std::sync::Arc;

use arc_swap::ArcSwap;

use thiserror::Error;

use super::cache::CachePlugin;
use super::errors::ErrorsPlugin;
use super::forward::ForwardPlugin;
use super::health::HealthPlugin;
use super::hosts::HostsPlugin;
use super::loadbalance::LoadBalancePlugin;
use super::log::LogPlugin;
use super::loop_detect::LoopPlugin;
use super::prometheus::PrometheusPlugin;
use super::ready::{Readiness, ReadyPlugin};
use super::reload::ReloadPlugin;
use super::ChainContext;
use crate::corefile::{Corefile, CorefileError, KubernetesOptions, PluginConfig, ServerBlock};
use crate::Handler;

/// Any error, as factories return them.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What the kubernetes factory builds: the handler, and its readiness (synced or not) if any.
pub struct KubernetesPlugin {
    pub handler: Arc<dyn Handler>,
    pub readiness: Option<Arc<dyn Readiness>>,
}

/// A chain that cannot be built.
#[derive(Debug, Error)]
pub enum BuildError {
    #[error(transparent)]
    Corefile(#[from] CorefileError),
    /// A plugin failed to start (a resolv.conf missing, the kubernetes factory failing…).
    #[error("{file}:{line}: {plugin}: {message}")]
    Plugin { file: String, line: usize, plugin: &'static str, message: String },
}

/// Builds `block`'s chain. HTTP endpoints and loop probes are registered with `ctx` and begin
/// with [`ChainContext::start`]; `kubernetes` makes the kubernetes plugin from its options.
pub fn build_chain<F>(
    block: &ServerBlock,
    ctx: &ChainContext,
    kubernetes: F,
) -> Result<Vec<Arc<dyn Handler>>, BuildError>
where
    F: Fn(&KubernetesOptions, &ChainContext) -> Result<KubernetesPlugin, BoxError>,
{
    let configured = block.configure()?;
    let server = block.server_label();
    let mut chain: Vec<Arc<dyn Handler>> = Vec::with_capacity(configured.len());
    let mut readiness: Vec<(String, Arc<dyn Readiness>)> = Vec::new();
    let mut ready_at = None;
    let mut cache_at = None;
    let mut loop_plugin = None;
    for p in configured {
        let fail =
            |message: String| BuildError::Plugin { file: block.file.clone(), line: p.line, plugin: p.name, message };
        let handler: Arc<dyn Handler> = match p.config {
            PluginConfig::Reload(_) => Arc::new(ReloadPlugin),
            PluginConfig::Ready(o) => {
                ready_at = Some((chain.len(), o.addr));
                continue;
            }
            PluginConfig::Health(o) => {
                ctx.add_health(o.addr, o.lameduck);
                Arc::new(HealthPlugin)
            }
            PluginConfig::Prometheus(o) => {
                ctx.add_metrics(o.addr);
                Arc::new(PrometheusPlugin::new(block, ctx.metrics().clone()))
            }
            PluginConfig::Errors(o) => Arc::new(ErrorsPlugin::new(o)),
            PluginConfig::Log(o) => Arc::new(LogPlugin::new(o, &block.zones)),
            PluginConfig::LoadBalance(_) => Arc::new(LoadBalancePlugin),
            PluginConfig::Cache(o) => {
                let c = Arc::new(CachePlugin::new(o, &server, ctx.metrics().clone()));
                cache_at = Some((chain.len(), c.clone()));
                c
            }
            PluginConfig::Hosts(o) => Arc::new(HostsPlugin::new(o, ctx.metrics().clone())),
            PluginConfig::Kubernetes(o) => {
                let k = kubernetes(&o, ctx).map_err(|e| fail(e.to_string()))?;
                if let Some(r) = k.readiness {
                    readiness.push(("kubernetes".into(), r));
                }
                k.handler
            }
            PluginConfig::Loop(_) => {
                let l = Arc::new(LoopPlugin::new(&block.zones, ctx.loop_action()));
                loop_plugin = Some(l.clone());
                l
            }
            PluginConfig::Forward(o) => Arc::new(
                ForwardPlugin::new(o, ctx.forward_timeouts(), ctx.metrics().clone())
                    .map_err(|e| fail(e.to_string()))?,
            ),
        };
        chain.push(handler);
    }
    if let Some((at, addr)) = ready_at {
        let ready = Arc::new(ReadyPlugin::new(readiness));
        ctx.add_ready(addr, &ready);
        chain.insert(at, ready);
        if let Some((c, _)) = cache_at.as_mut() {
            if *c >= at {
                *c += 1;
            }
        }
    }
    if let Some((at, cache)) = cache_at {
        cache.attach_rest(chain[at + 1..].to_vec());
    }
    if let Some(l) = loop_plugin {
        ctx.add_loop_probe(l, chain.clone());
    }
    Ok(chain)
}

/// A server block with its chain.
pub struct Server {
    pub block: ServerBlock,
    pub chain: Vec<Arc<dyn Handler>>,
}

/// Builds every block of `corefile` (all or nothing).
pub fn build_servers<F>(corefile: &Corefile, ctx: &ChainContext, kubernetes: F) -> Result<Vec<Server>, BuildError>
where
    F: Fn(&KubernetesOptions, &ChainContext) -> Result<KubernetesPlugin, BoxError>,
{
    corefile
        .servers
        .iter()
        .map(|block| Ok(Server { block: block.clone(), chain: build_chain(block, ctx, &kubernetes)? }))
        .collect()
}

/// A chain that a reload can replace while queries run: each query takes the current one (read
/// twice per query — to run it and to tell it the answer's size — so without a lock).
pub struct SharedChain {
    current: ArcSwap<Vec<Arc<dyn Handler>>>,
}

impl SharedChain {
    pub fn new(chain: Vec<Arc<dyn Handler>>) -> Self {
        SharedChain { current: ArcSwap::from_pointee(chain) }
    }

    /// The chain now, to keep across awaits (run it with `Next::new(&chain)`).
    pub fn load(&self) -> Arc<Vec<Arc<dyn Handler>>> {
        self.current.load_full()
    }

    /// The chain now, for a moment.
    pub fn peek(&self) -> arc_swap::Guard<Arc<Vec<Arc<dyn Handler>>>> {
        self.current.load()
    }

    /// Replaces the chain; queries under way finish on the old one.
    pub fn store(&self, chain: Vec<Arc<dyn Handler>>) {
        self.current.store(Arc::new(chain));
    }
}
