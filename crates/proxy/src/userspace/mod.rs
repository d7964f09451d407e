//! The userspace mode: podnet itself proxies TCP and UDP, for hosts without nftables or
//! iptables — kube-proxy's old userspace mode, without iptables for interception, and with the
//! IPVS schedulers (`rr`, `wrr`, `lc`, `dh`, `sh`, `sed`, `nq`, see [`scheduler`]) chosen by
//! `--scheduler`.
//!
//! # How traffic reaches the proxy
//!
//! The proxy listens itself on every address of every Service port ([`plan`]): a TCP listener
//! or a UDP socket on each cluster IP and port, on each node address and node port (and
//! 127.0.0.1, as kube-proxy serves IPv4 node ports on localhost), and on each external and
//! load-balancer IP and port. Node addresses are local already; for the others the node takes
//! the address as its own with a `local` route in the `local` table on `lo` ([`routes`]; what
//! the kernel adds for an address, without the address: `ip route add local 10.96.0.10/32 dev lo
//! table local proto 159`). A pod's packet to a cluster IP goes to its default gateway, the
//! node; the node finds the destination local and delivers it to the proxy's socket, as it
//! does for traffic from other hosts routed to the node and for the node's own. Sockets are
//! bound with `IP_FREEBIND`, so a listener may exist before its route (and IPv6 accepts an
//! address that is routed as local without being configured). Chosen over adding the addresses
//! to a link (`lo`, a dummy): no address shows up in `ip addr` or is picked as a source, and
//! the routes carry the proxy's protocol number, so a restarted proxy finds what an earlier run
//! left; over `IP_TRANSPARENT`, which needs TPROXY rules, that is nftables or iptables. Like
//! any local address, the node answers ARP (IPv6: neighbour solicitation) for these addresses
//! on its links (kube-proxy's IPVS mode has the same with its `kube-ipvs0` addresses).
//!
//! # The data plane
//!
//! The mode owns a tokio runtime whose threads live in the network namespace of the thread that
//! called [`UserspaceMode::new`]: its workers are started by that thread, and every thread the
//! runtime starts later enters that namespace first. Each frontend is a task; per connection
//! the service port's [`balancer::Balancer`] chooses a backend (ClientIP affinity first, then
//! the scheduler), and [`tcp`] or [`udp`] relays. Endpoints follow the traffic policies:
//! cluster IP frontends use [`ServicePort::cluster_endpoints`] (internalTrafficPolicy), the
//! others [`ServicePort::external_endpoints`] (externalTrafficPolicy). Without an endpoint a
//! TCP connection is reset at once and a UDP datagram dropped (the socket exists, so the kernel
//! sends no ICMP port unreachable); loadBalancerSourceRanges are checked per connection.
//!
//! The proxy is a full proxy: backends see the node as the client (the node's address on the
//! link to them), never the client's own address, whatever the traffic policy — as with
//! kube-proxy's userspace mode. SCTP ports are not served.
//!
//! # Syncing
//!
//! [`Mode::sync`] is synchronous: it computes the frontends of the ports, updates the balancers
//! in place (connections in progress keep going, to their backend even if it left the
//! endpoints), closes the frontends no longer wanted (and their UDP sessions), opens the new
//! ones on the runtime and waits until they are bound, and adds and deletes its local routes.
//! It blocks the calling thread meanwhile, whatever the thread (an async context too; the
//! controller calls it from a blocking thread). [`Mode::cleanup`] closes every frontend,
//! connection and session and deletes every local route of the proxy's protocol, also those of
//! an earlier run. Dropping the mode closes the sockets but leaves the routes, as the other
//! modes leave their rules.

pub mod balancer;
pub mod plan;
pub mod routes;
pub mod scheduler;
pub mod sockets;
pub mod tcp;
pub mod udp;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use podnet_netlink::{Handle, Netns, NetnsId};
use tokio::runtime::Runtime;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use balancer::{Balancer, Lease};
pub use plan::{Frontend, Plan, Scope, Target};
pub use scheduler::Scheduler;

use crate::model::{Protocol, ServicePort, ServicePortName};
use crate::{Changed, Error, Mode, NodeContext, SyncStats};

/// How long [`Mode::cleanup`] waits for the connections it ends.
const CLEANUP_WAIT: Duration = Duration::from_secs(5);

/// How long dropping the mode waits for its tasks to end (and their sockets to close).
const DROP_WAIT: Duration = Duration::from_secs(1);

/// Settings of the userspace mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// A UDP session ends after this long without a datagram either way.
    pub udp_idle_timeout: Duration,
    /// The runtime's worker threads.
    pub worker_threads: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options { udp_idle_timeout: Duration::from_secs(30), worker_threads: 2 }
    }
}

/// Where a frontend leads now, with the balancer of its service port.
#[derive(Debug)]
pub struct Binding {
    pub target: Target,
    pub balancer: Arc<Balancer>,
}

/// A frontend's binding, swapped by a sync while the frontend keeps running.
pub type SharedBinding = Arc<RwLock<Arc<Binding>>>;

/// The binding a new connection uses.
fn current(shared: &SharedBinding) -> Arc<Binding> {
    shared.read().unwrap_or_else(PoisonError::into_inner).clone()
}

/// A running frontend.
#[derive(Debug)]
struct Live {
    binding: SharedBinding,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// The userspace proxy mode.
#[derive(Debug)]
pub struct UserspaceMode {
    scheduler: Scheduler,
    options: Options,
    runtime: Option<Runtime>,
    /// rtnetlink, in the mode's namespace.
    netlink: Handle,
    /// Ends every connection and session (cleanup).
    shutdown: CancellationToken,
    /// The TCP connections in progress.
    connections: TaskTracker,
    balancers: BTreeMap<ServicePortName, Arc<Balancer>>,
    frontends: BTreeMap<Frontend, Live>,
    /// The proxy's local routes, as last known.
    routes: BTreeSet<IpAddr>,
    /// Whether `routes` can be trusted (false: read them from the kernel first).
    routes_known: bool,
}

fn io_error(what: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    move |source| Error::Io { what: what.into(), source }
}

/// Makes the calling thread enter `netns` unless it is there already (a runtime thread started
/// by a thread of another namespace).
fn enter(netns: &Netns, id: NetnsId) {
    if Netns::current().and_then(|n| n.id()).ok() == Some(id) {
        return;
    }
    if let Err(e) = nix::sched::setns(netns, nix::sched::CloneFlags::CLONE_NEWNET) {
        tracing::error!(error = %e, "userspace proxy: a runtime thread cannot enter the proxy's network namespace");
    }
}

impl UserspaceMode {
    /// The mode with `scheduler` and the default [`Options`]. Its data plane lives in the
    /// calling thread's network namespace.
    pub fn new(scheduler: Scheduler) -> Result<UserspaceMode, Error> {
        UserspaceMode::with_options(scheduler, Options::default())
    }

    /// The mode with `scheduler` and `options`.
    pub fn with_options(scheduler: Scheduler, options: Options) -> Result<UserspaceMode, Error> {
        let what = "userspace proxy: open the network namespace";
        let netns = Netns::current().map_err(|e| Error::Other(format!("{what}: {e}")))?;
        let id = netns.id().map_err(|e| Error::Other(format!("{what}: {e}")))?;
        let netns = Arc::new(netns);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(options.worker_threads.max(1))
            .thread_name("podnet-userspace")
            .enable_all()
            .on_thread_start(move || enter(&netns, id))
            .build()
            .map_err(io_error("userspace proxy: start the runtime"))?;
        let netlink = Handle::new().map_err(|e| Error::Other(format!("userspace proxy: {e}")))?;
        Ok(UserspaceMode {
            scheduler,
            options,
            runtime: Some(runtime),
            netlink,
            shutdown: CancellationToken::new(),
            connections: TaskTracker::new(),
            balancers: BTreeMap::new(),
            frontends: BTreeMap::new(),
            routes: BTreeSet::new(),
            routes_known: false,
        })
    }

    /// The scheduler.
    pub fn scheduler(&self) -> Scheduler {
        self.scheduler
    }

    /// The frontends open now.
    pub fn frontends(&self) -> Vec<Frontend> {
        self.frontends.keys().copied().collect()
    }

    /// The balancer of a service port (its backends and their load).
    pub fn balancer(&self, id: &ServicePortName) -> Option<Arc<Balancer>> {
        self.balancers.get(id).cloned()
    }

    /// The addresses the proxy made local, as last known.
    pub fn local_ips(&self) -> &BTreeSet<IpAddr> {
        &self.routes
    }

    fn runtime(&self) -> &Runtime {
        self.runtime.as_ref().expect("the runtime lives as long as the mode")
    }

    /// Runs `work` on the runtime and waits for it, blocking the calling thread without entering
    /// a runtime: callers may be anywhere, async contexts included (as `nft` runs of the
    /// nftables mode, a sync blocks its thread for its duration).
    fn wait<T: Send + 'static>(&self, work: impl Future<Output = T> + Send + 'static) -> T {
        let (done, result) = std::sync::mpsc::channel();
        self.runtime().spawn(async move {
            let _ = done.send(work.await);
        });
        result.recv().expect("the runtime runs the mode's work to its end")
    }

    /// Stops frontends and waits until their sockets are closed.
    fn close(&mut self, frontends: &[Frontend]) {
        let mut tasks = Vec::new();
        for f in frontends {
            if let Some(live) = self.frontends.remove(f) {
                live.stop.cancel();
                tasks.push(live.task);
            }
        }
        self.wait(async {
            for task in tasks {
                let _ = task.await;
            }
        });
    }

    /// Opens frontends; each that could not be bound is returned with its error.
    fn open(&mut self, wanted: Vec<(Frontend, Arc<Binding>)>) -> Vec<(Frontend, io::Error)> {
        let (mut pending, mut receivers) = (Vec::new(), Vec::new());
        for (frontend, binding) in wanted {
            let shared: SharedBinding = Arc::new(RwLock::new(binding));
            let stop = CancellationToken::new();
            let (ready, bound) = oneshot::channel::<io::Result<()>>();
            let task = {
                let (shared, stop) = (shared.clone(), stop.clone());
                let (shutdown, tracker) = (self.shutdown.clone(), self.connections.clone());
                let idle = self.options.udp_idle_timeout;
                // Bound on a runtime thread: in the mode's namespace.
                self.runtime().spawn(async move {
                    match frontend.protocol {
                        Protocol::Tcp => match sockets::tcp_listener(frontend.addr) {
                            Ok(listener) => {
                                let _ = ready.send(Ok(()));
                                tcp::serve(listener, shared, stop, shutdown, tracker).await;
                            }
                            Err(e) => drop(ready.send(Err(e))),
                        },
                        Protocol::Udp => match sockets::udp_socket(frontend.addr) {
                            Ok(socket) => {
                                let _ = ready.send(Ok(()));
                                udp::serve(socket, shared, stop, idle).await;
                            }
                            Err(e) => drop(ready.send(Err(e))),
                        },
                        Protocol::Sctp => drop(ready.send(Err(io::Error::other("SCTP is not proxied")))),
                    }
                })
            };
            pending.push((frontend, Live { binding: shared, stop, task }));
            receivers.push(bound);
        }
        let results = self.wait(async {
            let mut results = Vec::new();
            for bound in receivers {
                results.push(bound.await.unwrap_or_else(|_| Err(io::Error::other("the frontend task ended"))));
            }
            results
        });
        let mut failed = Vec::new();
        for ((frontend, live), result) in pending.into_iter().zip(results) {
            match result {
                Ok(()) => {
                    self.frontends.insert(frontend, live);
                }
                Err(e) => failed.push((frontend, e)),
            }
        }
        failed
    }

    /// Makes the local routes exactly `wanted`; the errors.
    fn reconcile_routes(&mut self, wanted: &BTreeSet<IpAddr>, full: bool) -> Result<usize, Vec<Error>> {
        if full || !self.routes_known {
            self.routes = routes::owned(&mut self.netlink).map_err(|e| vec![e])?;
            self.routes_known = true;
        }
        let lo = routes::loopback(&mut self.netlink).map_err(|e| vec![e])?;
        let mut errors = Vec::new();
        let mut written = 0;
        for ip in wanted.difference(&self.routes.clone()) {
            match routes::add(&mut self.netlink, lo, *ip) {
                Ok(true) => {
                    self.routes.insert(*ip);
                    written += 1;
                }
                Ok(false) => {} // a local address already
                Err(e) => errors.push(e),
            }
        }
        let stale: Vec<IpAddr> = self.routes.difference(wanted).copied().collect();
        for ip in stale {
            match routes::delete(&mut self.netlink, lo, ip) {
                Ok(()) => {
                    self.routes.remove(&ip);
                    written += 1;
                }
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(written)
        } else {
            Err(errors)
        }
    }

    fn full_or_partial_sync(
        &mut self,
        ports: &[ServicePort],
        node: &NodeContext,
        full: bool,
    ) -> Result<SyncStats, Error> {
        let start = Instant::now();
        let plan = plan::plan(ports, node);
        for id in &plan.unsupported {
            tracing::debug!(service = %id, "userspace proxy: SCTP is not proxied");
        }
        // Balancers: updated in place, new ones for new ports, gone ones dropped.
        let mut services_written = 0;
        let mut balancers = BTreeMap::new();
        for port in ports.iter().filter(|p| p.id.protocol != Protocol::Sctp) {
            let (balancer, new) = match self.balancers.remove(&port.id) {
                Some(b) => (b, false),
                None => (Balancer::new(self.scheduler), true),
            };
            if balancer.update(port) || new {
                services_written += 1;
            }
            balancers.insert(port.id.clone(), balancer);
        }
        self.balancers = balancers;

        // Frontends: close, rebind, open.
        let gone: Vec<Frontend> = self.frontends.keys().filter(|f| !plan.frontends.contains_key(f)).copied().collect();
        let mut rules_written = gone.len();
        self.close(&gone);
        let mut wanted = Vec::new();
        for (frontend, target) in &plan.frontends {
            let balancer = self.balancers[&target.service].clone();
            match self.frontends.get(frontend) {
                Some(live) => {
                    let now = current(&live.binding);
                    if now.target != *target || !Arc::ptr_eq(&now.balancer, &balancer) {
                        let binding = Arc::new(Binding { target: target.clone(), balancer });
                        *live.binding.write().unwrap_or_else(PoisonError::into_inner) = binding;
                        rules_written += 1;
                    }
                }
                None => wanted.push((*frontend, Arc::new(Binding { target: target.clone(), balancer }))),
            }
        }
        let opening = wanted.len();
        let failed = self.open(wanted);
        rules_written += opening - failed.len();

        // Local routes, once the listeners exist (and after the old ones are gone).
        let mut errors: Vec<Error> = failed
            .into_iter()
            .map(|(f, source)| {
                let service = &plan.frontends[&f].service;
                Error::Io { what: format!("userspace proxy: listen on {f} for {service}"), source }
            })
            .collect();
        match self.reconcile_routes(&plan.local_ips, full) {
            Ok(n) => rules_written += n,
            Err(e) => {
                self.routes_known = false;
                errors.extend(e);
            }
        }
        if let Some(first) = errors.first() {
            for e in &errors[1..] {
                tracing::warn!(error = %e, "userspace proxy sync");
            }
            return Err(Error::Other(format!("{first}{}", more(errors.len()))));
        }
        Ok(SyncStats { services_written, rules_written, apply: start.elapsed() })
    }
}

/// ` (and N more errors)` when there are.
fn more(n: usize) -> String {
    match n {
        0 | 1 => String::new(),
        n => format!(" (and {} more errors)", n - 1),
    }
}

impl Mode for UserspaceMode {
    fn name(&self) -> &'static str {
        "userspace"
    }

    fn sync(&mut self, ports: &[ServicePort], node: &NodeContext, changed: &Changed) -> Result<SyncStats, Error> {
        self.full_or_partial_sync(ports, node, changed.is_none())
    }

    fn cleanup(&mut self) -> Result<(), Error> {
        let all: Vec<Frontend> = self.frontends.keys().copied().collect();
        self.shutdown.cancel();
        self.close(&all);
        self.connections.close();
        let connections = self.connections.clone();
        self.wait(async move {
            let _ = tokio::time::timeout(CLEANUP_WAIT, connections.wait()).await;
        });
        self.shutdown = CancellationToken::new();
        self.connections = TaskTracker::new();
        self.balancers.clear();
        self.reconcile_routes(&BTreeSet::new(), true).map_err(|errors| {
            let n = errors.len();
            let first = errors.into_iter().next().map(|e| e.to_string()).unwrap_or_default();
            Error::Other(format!("{first}{}", more(n)))
        })?;
        Ok(())
    }
}

impl Drop for UserspaceMode {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Waiting (for the tasks to drop their sockets) blocks: not in an async context.
            if tokio::runtime::Handle::try_current().is_ok() {
                runtime.shutdown_background();
            } else {
                runtime.shutdown_timeout(DROP_WAIT);
            }
        }
    }
}
