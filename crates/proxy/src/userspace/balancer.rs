//! One service port's backends and what choosing among them remembers: the endpoints of each
//! [`Scope`] with their scheduler state, the connections in progress per backend (what `lc`,
//! `sed` and `nq` weigh), and the ClientIP affinity table (client → backend, with the time of
//! its last use; an entry older than the Service's timeout is void). A sync updates a balancer
//! in place, so the listeners and the connections in progress keep theirs.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::plan::Scope;
use super::scheduler::{Backend, SchedState, Scheduler};
use crate::model::{Endpoint, ServicePort};

/// How often expired affinity entries are swept out.
const AFFINITY_SWEEP: Duration = Duration::from_secs(1);

/// The endpoints of one scope and the scheduler's memory of them.
#[derive(Debug, Default)]
struct Pool {
    backends: Vec<SocketAddr>,
    state: SchedState,
}

impl Pool {
    /// Replaces the backends; the scheduler starts over when they changed. Whether they did.
    fn set(&mut self, backends: Vec<SocketAddr>) -> bool {
        if self.backends == backends {
            return false;
        }
        self.backends = backends;
        self.state = SchedState::default();
        true
    }
}

#[derive(Debug)]
struct Inner {
    internal: Pool,
    external: Pool,
    /// Connections in progress per backend (entries at 0 are removed).
    load: HashMap<SocketAddr, u32>,
    /// sessionAffinity ClientIP's timeout.
    affinity: Option<Duration>,
    /// Client → (backend, last use).
    sticky: HashMap<IpAddr, (SocketAddr, Instant)>,
    swept: Instant,
}

impl Inner {
    fn pool(&mut self, scope: Scope) -> &mut Pool {
        match scope {
            Scope::Internal => &mut self.internal,
            Scope::External => &mut self.external,
        }
    }
}

/// The backends of one service port, shared by its frontends and their connections.
#[derive(Debug)]
pub struct Balancer {
    scheduler: Scheduler,
    inner: Mutex<Inner>,
}

fn addresses(endpoints: Vec<&Endpoint>) -> Vec<SocketAddr> {
    endpoints.into_iter().map(|e| SocketAddr::new(e.ip, e.port)).collect()
}

impl Balancer {
    /// A balancer without backends.
    pub fn new(scheduler: Scheduler) -> Arc<Balancer> {
        let inner = Inner {
            internal: Pool::default(),
            external: Pool::default(),
            load: HashMap::new(),
            affinity: None,
            sticky: HashMap::new(),
            swept: Instant::now(),
        };
        Arc::new(Balancer { scheduler, inner: Mutex::new(inner) })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the endpoints and affinity of `port` (the model's choice of endpoints for each
    /// scope: traffic policies, terminating endpoints). Whether anything changed.
    pub fn update(&self, port: &ServicePort) -> bool {
        let mut inner = self.lock();
        let mut changed = inner.internal.set(addresses(port.cluster_endpoints()));
        changed |= inner.external.set(addresses(port.external_endpoints()));
        if inner.affinity != port.affinity {
            inner.affinity = port.affinity;
            inner.sticky.clear();
            changed = true;
        }
        let Inner { internal, external, sticky, .. } = &mut *inner;
        sticky.retain(|_, (b, _)| internal.backends.contains(b) || external.backends.contains(b));
        changed
    }

    /// The backends of `scope`, in order.
    pub fn backends(&self, scope: Scope) -> Vec<SocketAddr> {
        self.lock().pool(scope).backends.clone()
    }

    /// The connections in progress to `backend`.
    pub fn load(&self, backend: SocketAddr) -> u32 {
        self.lock().load.get(&backend).copied().unwrap_or(0)
    }

    /// Chooses the backend for a new connection from `client` to the service address
    /// `service`, among those of `scope` but `exclude` (backends that just failed): the
    /// client's affinity if it has a live one, else the scheduler's choice (then remembered for
    /// affinity). The lease counts the connection until it is dropped. `None`: no backend.
    pub fn pick(
        self: &Arc<Self>,
        scope: Scope,
        client: IpAddr,
        service: IpAddr,
        exclude: &[SocketAddr],
    ) -> Option<Lease> {
        let now = Instant::now();
        let mut guard = self.lock();
        let inner = &mut *guard;
        if let Some(timeout) = inner.affinity {
            if now.duration_since(inner.swept) >= AFFINITY_SWEEP {
                inner.sticky.retain(|_, (_, used)| now.duration_since(*used) < timeout);
                inner.swept = now;
            }
        }
        let sticky = match (inner.affinity, inner.sticky.get(&client)) {
            (Some(timeout), Some((backend, used))) if now.duration_since(*used) < timeout => Some(*backend),
            _ => None,
        };
        let pool = match scope {
            Scope::Internal => &mut inner.internal,
            Scope::External => &mut inner.external,
        };
        let usable = |b: &SocketAddr| !exclude.contains(b);
        let chosen = match sticky.filter(|b| pool.backends.contains(b) && usable(b)) {
            Some(backend) => backend,
            None => {
                let candidates: Vec<SocketAddr> = pool.backends.iter().copied().filter(usable).collect();
                let loads: Vec<Backend> =
                    candidates.iter().map(|b| Backend::new(inner.load.get(b).copied().unwrap_or(0))).collect();
                let i = self.scheduler.pick(&loads, &mut pool.state, client, service)?;
                candidates[i]
            }
        };
        if inner.affinity.is_some() {
            inner.sticky.insert(client, (chosen, now));
        }
        *inner.load.entry(chosen).or_default() += 1;
        Some(Lease { balancer: self.clone(), addr: chosen })
    }

    /// Forgets the affinity of `client` (its backend failed).
    pub fn forget(&self, client: IpAddr) {
        self.lock().sticky.remove(&client);
    }

    fn release(&self, backend: SocketAddr) {
        let mut inner = self.lock();
        if let Some(n) = inner.load.get_mut(&backend) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                inner.load.remove(&backend);
            }
        }
    }
}

/// One connection (or UDP session) to a backend, counted in its load until dropped.
#[derive(Debug)]
pub struct Lease {
    balancer: Arc<Balancer>,
    /// The backend.
    pub addr: SocketAddr,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.balancer.release(self.addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Protocol, ServicePortName};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn ep(last: u8, local: bool) -> Endpoint {
        Endpoint {
            ip: ip(&format!("10.244.0.{last}")),
            port: 8080,
            node_name: None,
            ready: true,
            serving: true,
            terminating: false,
            local,
        }
    }

    fn port(endpoints: Vec<Endpoint>) -> ServicePort {
        ServicePort {
            node_port: Some(30000),
            ..ServicePort::cluster_ip(
                ServicePortName {
                    namespace: "ns".into(),
                    name: "s".into(),
                    port: String::new(),
                    protocol: Protocol::Tcp,
                },
                ip("10.96.0.1"),
                80,
                endpoints,
            )
        }
    }

    fn pick(b: &Arc<Balancer>, scope: Scope, client: &str) -> Option<Lease> {
        b.pick(scope, ip(client), ip("10.96.0.1"), &[])
    }

    #[test]
    fn scopes_follow_the_traffic_policies() {
        let b = Balancer::new(Scheduler::Rr);
        let mut p = port(vec![ep(1, true), ep(2, false)]);
        p.external_local = true;
        assert!(b.update(&p));
        assert_eq!(b.backends(Scope::Internal).len(), 2);
        assert_eq!(b.backends(Scope::External), ["10.244.0.1:8080".parse::<SocketAddr>().unwrap()]);
        assert!(!b.update(&p), "the same port again changes nothing");
        p.internal_local = true;
        p.endpoints[0].local = false;
        assert!(b.update(&p));
        assert!(b.backends(Scope::Internal).is_empty() && b.backends(Scope::External).is_empty());
        assert!(pick(&b, Scope::Internal, "10.0.0.1").is_none());
    }

    #[test]
    fn leases_count_connections_for_least_connection() {
        let b = Balancer::new(Scheduler::Lc);
        b.update(&port(vec![ep(1, true), ep(2, true)]));
        let first = pick(&b, Scope::Internal, "10.0.0.1").unwrap();
        assert_eq!(first.addr.port(), 8080);
        assert_eq!(b.load(first.addr), 1);
        let second = pick(&b, Scope::Internal, "10.0.0.1").unwrap();
        assert_ne!(first.addr, second.addr, "the idle one");
        let (a1, a2) = (first.addr, second.addr);
        drop(second);
        assert_eq!(b.load(a2), 0);
        assert_eq!(pick(&b, Scope::External, "10.0.0.1").unwrap().addr, a2, "counted across scopes");
        drop(first);
        assert_eq!(b.load(a1), 0);
    }

    #[test]
    fn excluded_backends_are_skipped() {
        let b = Balancer::new(Scheduler::Rr);
        b.update(&port(vec![ep(1, true), ep(2, true)]));
        let a = pick(&b, Scope::Internal, "10.0.0.1").unwrap().addr;
        for _ in 0..3 {
            let other = b.pick(Scope::Internal, ip("10.0.0.1"), ip("10.96.0.1"), &[a]).unwrap();
            assert_ne!(other.addr, a);
        }
        let all = b.backends(Scope::Internal);
        assert!(b.pick(Scope::Internal, ip("10.0.0.1"), ip("10.96.0.1"), &all).is_none());
    }

    #[test]
    fn affinity_pins_a_client_until_it_expires_or_fails() {
        let b = Balancer::new(Scheduler::Rr);
        let mut p = port(vec![ep(1, true), ep(2, true), ep(3, true)]);
        p.affinity = Some(Duration::from_millis(200));
        b.update(&p);
        let pinned = pick(&b, Scope::Internal, "10.0.0.1").unwrap().addr;
        for _ in 0..5 {
            assert_eq!(pick(&b, Scope::Internal, "10.0.0.1").unwrap().addr, pinned);
            assert_eq!(pick(&b, Scope::External, "10.0.0.1").unwrap().addr, pinned, "both scopes");
        }
        let other = pick(&b, Scope::Internal, "10.0.0.2").unwrap().addr;
        assert_ne!(other, pinned, "another client goes on round robin");
        // A failed backend is forgotten; the next choice sticks.
        b.forget(ip("10.0.0.1"));
        let next = b.pick(Scope::Internal, ip("10.0.0.1"), ip("10.96.0.1"), &[pinned]).unwrap().addr;
        assert_ne!(next, pinned);
        assert_eq!(pick(&b, Scope::Internal, "10.0.0.1").unwrap().addr, next);
        // Expiry: the scheduler chooses again (round robin moves on).
        std::thread::sleep(Duration::from_millis(250));
        let seen: std::collections::BTreeSet<SocketAddr> = (0..3)
            .map(|_| {
                std::thread::sleep(Duration::from_millis(250));
                pick(&b, Scope::Internal, "10.0.0.1").unwrap().addr
            })
            .collect();
        assert!(seen.len() > 1, "{seen:?}");
        // An endpoint that goes away takes its affinity entries with it; a changed timeout
        // clears the table.
        let now_pinned = pick(&b, Scope::Internal, "10.0.0.1").unwrap().addr;
        p.endpoints.retain(|e| SocketAddr::new(e.ip, e.port) != now_pinned);
        b.update(&p);
        assert_ne!(pick(&b, Scope::Internal, "10.0.0.1").unwrap().addr, now_pinned);
        p.affinity = None;
        assert!(b.update(&p));
    }

    #[test]
    fn an_endpoint_of_the_other_scope_does_not_override_the_policy() {
        let b = Balancer::new(Scheduler::Rr);
        let mut p = port(vec![ep(1, false), ep(2, true)]);
        p.external_local = true;
        p.affinity = Some(Duration::from_secs(60));
        b.update(&p);
        // Pin the client to the remote endpoint through the cluster IP...
        let mut remote = pick(&b, Scope::Internal, "10.0.0.1").unwrap().addr;
        if remote.ip() != ip("10.244.0.1") {
            b.forget(ip("10.0.0.1"));
            remote = b.pick(Scope::Internal, ip("10.0.0.1"), ip("10.96.0.1"), &[remote]).unwrap().addr;
        }
        assert_eq!(remote.ip(), ip("10.244.0.1"));
        // ...then its node port traffic still goes to the local one only.
        assert_eq!(pick(&b, Scope::External, "10.0.0.1").unwrap().addr.ip(), ip("10.244.0.2"));
    }
}
