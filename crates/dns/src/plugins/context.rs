//! What the chains of a process share: the metrics registry, the HTTP endpoints the plugins
//! asked for (started by [`ChainContext::start`]), the loop probes waiting for the server to
//! start, and a few knobs the Corefile does not hold (forward timeouts, what a loop does).

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::http::{HttpServer, Routes};
use super::loop_detect::{LoopAction, LoopPlugin};
use super::metrics::{self, Metrics};
use super::ready::{ReadinessRegistry, ReadyPlugin};
use crate::Handler;

/// How long `forward` waits: for one upstream answer, and for the query in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardTimeouts {
    pub read: Duration,
    pub overall: Duration,
}

impl Default for ForwardTimeouts {
    /// CoreDNS's: 2s a read, 5s in all.
    fn default() -> Self {
        ForwardTimeouts { read: Duration::from_secs(2), overall: Duration::from_secs(5) }
    }
}

/// A loop probe waiting for the server to start, with the chain it goes through.
type Probe = (Arc<LoopPlugin>, Vec<Arc<dyn Handler>>);

#[derive(Default)]
struct State {
    routes: BTreeMap<SocketAddr, Arc<Routes>>,
    running: BTreeMap<SocketAddr, HttpServer>,
    lameduck: Duration,
    probes: Vec<Probe>,
}

/// Shared by every chain [`super::build_chain`] builds in a process.
pub struct ChainContext {
    metrics: Arc<Metrics>,
    forward_timeouts: ForwardTimeouts,
    loop_action: LoopAction,
    state: Mutex<State>,
}

impl Default for ChainContext {
    fn default() -> Self {
        Self::new()
    }
}

impl ChainContext {
    pub fn new() -> Self {
        let metrics = Arc::new(Metrics::new());
        metrics.set(
            &metrics::BUILD_INFO,
            &[("version", env!("CARGO_PKG_VERSION")), ("revision", ""), ("goversion", "rust")],
            1.0,
        );
        ChainContext {
            metrics,
            forward_timeouts: ForwardTimeouts::default(),
            loop_action: super::loop_detect::exit_on_loop(),
            state: Mutex::new(State::default()),
        }
    }

    /// Replaces `forward`'s timeouts.
    pub fn with_forward_timeouts(mut self, t: ForwardTimeouts) -> Self {
        self.forward_timeouts = t;
        self
    }

    /// Replaces what `loop` does on a loop (log and exit the process by default).
    pub fn with_loop_action(mut self, action: LoopAction) -> Self {
        self.loop_action = action;
        self
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn forward_timeouts(&self) -> ForwardTimeouts {
        self.forward_timeouts
    }

    pub(crate) fn loop_action(&self) -> LoopAction {
        self.loop_action.clone()
    }

    fn routes(&self, addr: SocketAddr) -> Arc<Routes> {
        let mut state = self.state.lock().expect("context lock");
        state.routes.entry(addr).or_default().clone()
    }

    pub(crate) fn add_health(&self, addr: SocketAddr, lameduck: Duration) {
        self.routes(addr).health.store(true, Ordering::Relaxed);
        let mut state = self.state.lock().expect("context lock");
        state.lameduck = state.lameduck.max(lameduck);
    }

    pub(crate) fn add_ready(&self, addr: SocketAddr, plugin: &Arc<ReadyPlugin>) {
        let routes = self.routes(addr);
        routes.ready.get_or_init(|| Arc::new(ReadinessRegistry::default())).add(plugin);
    }

    pub(crate) fn add_metrics(&self, addr: SocketAddr) {
        let _ = self.routes(addr).metrics.set(self.metrics.clone());
    }

    pub(crate) fn add_loop_probe(&self, plugin: Arc<LoopPlugin>, chain: Vec<Arc<dyn Handler>>) {
        let mut state = self.state.lock().expect("context lock");
        state.probes.push((plugin, chain));
    }

    /// The addresses the plugins asked to serve HTTP on.
    pub fn http_endpoints(&self) -> Vec<SocketAddr> {
        let state = self.state.lock().expect("context lock");
        state.routes.keys().copied().collect()
    }

    /// The address a requested endpoint is bound to, once started (port 0 resolved).
    pub fn bound_addr(&self, requested: SocketAddr) -> Option<SocketAddr> {
        let state = self.state.lock().expect("context lock");
        state.running.get(&requested).map(|s| s.local)
    }

    /// Binds the HTTP endpoints not yet bound and starts the pending loop probes. Call it once
    /// the DNS listeners are up, and again after a reload (it is idempotent).
    pub async fn start(&self) -> io::Result<()> {
        let (todo, probes) = {
            let mut state = self.state.lock().expect("context lock");
            let todo: Vec<(SocketAddr, Arc<Routes>)> = state
                .routes
                .iter()
                .filter(|(a, _)| !state.running.contains_key(a))
                .map(|(a, r)| (*a, r.clone()))
                .collect();
            (todo, std::mem::take(&mut state.probes))
        };
        for (addr, routes) in todo {
            let server = HttpServer::bind(addr, routes).await?;
            tracing::info!(target: "podnet_dns::http", "serving HTTP on {}", server.local);
            self.state.lock().expect("context lock").running.insert(addr, server);
        }
        for (plugin, chain) in probes {
            tokio::spawn(plugin.probe(chain));
        }
        Ok(())
    }

    /// Shuts the HTTP endpoints down after the longest `health` lameduck.
    pub async fn shutdown(&self) {
        let lameduck = self.state.lock().expect("context lock").lameduck;
        if !lameduck.is_zero() {
            tracing::info!(target: "podnet_dns::health", "Going into lameduck mode for {lameduck:?}");
            tokio::time::sleep(lameduck).await;
        }
        let running = std::mem::take(&mut self.state.lock().expect("context lock").running);
        for (_, server) in running {
            server.stop().await;
        }
    }
}
