//! An upstream's health and the order upstreams are tried in. A query that fails starts health
//! checks of its upstream (`<domain> IN NS` every `health_check` until one succeeds); each failed
//! check counts, and past `max_fails` the upstream is down and skipped.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RecordType};
use rand::seq::SliceRandom;
use rand::Rng;

use super::exchange::exchange;
use crate::corefile::Policy;
use crate::plugins::metrics::{self, Metrics};

/// One upstream server.
#[derive(Debug)]
pub struct Upstream {
    pub addr: SocketAddr,
    fails: AtomicU32,
    checking: AtomicBool,
}

/// How health checks are made.
#[derive(Debug, Clone)]
pub struct HealthCheck {
    pub interval: Duration,
    pub max_fails: u32,
    pub recursion_desired: bool,
    pub domain: String,
    pub tcp: bool,
    pub timeout: Duration,
}

impl Upstream {
    pub fn new(addr: SocketAddr) -> Self {
        Upstream { addr, fails: AtomicU32::new(0), checking: AtomicBool::new(false) }
    }

    /// Failed health checks since the last good one.
    pub fn fails(&self) -> u32 {
        self.fails.load(Ordering::Relaxed)
    }

    /// Whether the upstream is down (more than `max_fails` failed checks; never if 0).
    pub fn down(&self, max_fails: u32) -> bool {
        max_fails != 0 && self.fails() > max_fails
    }

    /// Starts checking the upstream until a check succeeds, unless checks run already.
    pub fn start_health_check(self: &Arc<Self>, hc: &HealthCheck, metrics: &Arc<Metrics>) {
        if hc.max_fails == 0 || self.checking.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            self.checking.store(false, Ordering::Release);
            return;
        };
        let weak = Arc::downgrade(self);
        let (hc, metrics) = (hc.clone(), metrics.clone());
        rt.spawn(async move {
            loop {
                // The plugin is gone (a reload): stop.
                let Some(up) = weak.upgrade() else { return };
                if up.check_once(&hc).await {
                    up.fails.store(0, Ordering::Relaxed);
                    up.checking.store(false, Ordering::Release);
                    return;
                }
                up.fails.fetch_add(1, Ordering::Relaxed);
                let to = up.addr.to_string();
                metrics.inc(&metrics::FORWARD_HEALTHCHECK_FAILURES_TOTAL, &[("to", &to)]);
                drop(up);
                tokio::time::sleep(hc.interval.max(Duration::from_millis(10))).await;
            }
        });
    }

    async fn check_once(&self, hc: &HealthCheck) -> bool {
        let mut m = Message::new();
        m.set_id(rand::rng().random())
            .set_recursion_desired(hc.recursion_desired)
            .add_query(Query::query(Name::from_ascii(&hc.domain).unwrap_or_else(|_| Name::root()), RecordType::NS));
        exchange(self.addr, &m, hc.tcp, hc.timeout).await.is_ok()
    }
}

/// The order to try `n` upstreams in under `policy` (`counter` turns round robin).
pub fn order(policy: Policy, n: usize, counter: &AtomicUsize) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    match policy {
        Policy::Sequential => {}
        Policy::RoundRobin if n > 0 => {
            let start = counter.fetch_add(1, Ordering::Relaxed) % n;
            v.rotate_left(start);
        }
        Policy::RoundRobin => {}
        Policy::Random => v.shuffle(&mut rand::rng()),
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies() {
        let c = AtomicUsize::new(0);
        assert_eq!(order(Policy::Sequential, 3, &c), [0, 1, 2]);
        assert_eq!(order(Policy::RoundRobin, 3, &c), [0, 1, 2]);
        assert_eq!(order(Policy::RoundRobin, 3, &c), [1, 2, 0]);
        assert_eq!(order(Policy::RoundRobin, 3, &c), [2, 0, 1]);
        let mut firsts = std::collections::HashSet::new();
        for _ in 0..100 {
            let o = order(Policy::Random, 3, &c);
            let mut sorted = o.clone();
            sorted.sort();
            assert_eq!(sorted, [0, 1, 2]);
            firsts.insert(o[0]);
        }
        assert_eq!(firsts.len(), 3);
    }

    #[test]
    fn down_after_max_fails() {
        let u = Upstream::new("127.0.0.1:53".parse().unwrap());
        u.fails.store(2, Ordering::Relaxed);
        assert!(!u.down(2));
        assert!(!u.down(0));
        u.fails.store(3, Ordering::Relaxed);
        assert!(u.down(2));
    }
}
