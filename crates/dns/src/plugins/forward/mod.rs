//! `forward`: sends queries for FROM (less `except`) to the upstreams, over UDP and again over
//! TCP when the answer is truncated (over TCP at once for TCP clients or `force_tcp`), in the
//! order of the policy, skipping upstreams whose health checks failed. Beyond `max_concurrent`
//! queries in flight it answers REFUSED; when no upstream answers before the timeout, SERVFAIL.

mod exchange;
mod resolvconf;
#[cfg(test)]
mod tests;
mod upstream;

pub use exchange::{exchange, ExchangeError};
pub use resolvconf::nameservers;
pub use upstream::{order, HealthCheck, Upstream};

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use rand::Rng;
use thiserror::Error;
use tokio::time::Instant;

use super::context::ForwardTimeouts;
use super::errors::report_error;
use super::metrics::{self, Metrics};
use super::response;
use crate::corefile::{names, ForwardOptions, UpstreamSpec};
use crate::{BoxFuture, Handler, Next, Request, Transport};

/// Why the plugin cannot be built.
#[derive(Debug, Error)]
pub enum ForwardError {
    #[error("cannot read {path}: {source}")]
    ResolvConf { path: String, source: std::io::Error },
    #[error("no nameservers in {0}")]
    NoNameservers(String),
}

/// The `forward` plugin.
pub struct ForwardPlugin {
    options: ForwardOptions,
    upstreams: Vec<Arc<Upstream>>,
    health: HealthCheck,
    timeouts: ForwardTimeouts,
    metrics: Arc<Metrics>,
    inflight: AtomicUsize,
    turn: AtomicUsize,
}

/// Gives back a slot of `max_concurrent` when dropped.
struct Slot<'a>(&'a AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl ForwardPlugin {
    /// Builds the plugin, reading the resolv.conf files among the upstreams.
    pub fn new(
        options: ForwardOptions,
        timeouts: ForwardTimeouts,
        metrics: Arc<Metrics>,
    ) -> Result<Self, ForwardError> {
        let mut addrs: Vec<SocketAddr> = Vec::new();
        for spec in &options.to {
            match spec {
                UpstreamSpec::Address(a) => addrs.push(*a),
                UpstreamSpec::ResolvConf(path) => {
                    let p = path.display().to_string();
                    let text = std::fs::read_to_string(path)
                        .map_err(|source| ForwardError::ResolvConf { path: p.clone(), source })?;
                    let found = nameservers(&text);
                    if found.is_empty() {
                        return Err(ForwardError::NoNameservers(p));
                    }
                    addrs.extend(found);
                }
            }
        }
        addrs.dedup();
        let health = HealthCheck {
            interval: options.health_check,
            max_fails: options.max_fails,
            recursion_desired: !options.health_check_no_rec,
            domain: options.health_check_domain.clone(),
            tcp: options.force_tcp,
            timeout: timeouts.read.min(Duration::from_secs(1)),
        };
        Ok(ForwardPlugin {
            upstreams: addrs.into_iter().map(|a| Arc::new(Upstream::new(a))).collect(),
            options,
            health,
            timeouts,
            metrics,
            inflight: AtomicUsize::new(0),
            turn: AtomicUsize::new(0),
        })
    }

    /// The upstreams, in the Corefile's order.
    pub fn upstreams(&self) -> &[Arc<Upstream>] {
        &self.upstreams
    }

    fn forwards(&self, req: &Request) -> bool {
        let Some(qname) = response::qname(req) else {
            return false;
        };
        self.options.from.iter().any(|z| names::in_zone(&qname, z))
            && !self.options.except.iter().any(|z| names::in_zone(&qname, z))
    }

    async fn forward(&self, req: &Request) -> Result<Message, String> {
        let o = &self.options;
        let n = self.upstreams.len();
        let deadline = Instant::now() + self.timeouts.overall;
        let list = order(o.policy, n, &self.turn);
        let tcp = o.force_tcp || (req.transport == Transport::Tcp && !o.prefer_udp);
        let mut last_err = String::from("no upstream answered");
        let (mut i, mut down) = (0, 0);
        while Instant::now() < deadline && n > 0 {
            if i >= n {
                // Every upstream failed this round: pause before the next.
                i = 0;
                down = 0;
                let pause = Instant::now() + Duration::from_millis(100);
                tokio::time::sleep_until(pause.min(deadline)).await;
                continue;
            }
            let mut up = &self.upstreams[list[i]];
            i += 1;
            if up.down(o.max_fails) {
                down += 1;
                if down < n {
                    continue;
                }
                // All down: the checks may be broken; try one at random.
                up = &self.upstreams[rand::rng().random_range(0..n)];
                self.metrics.inc(&metrics::FORWARD_HEALTHCHECK_BROKEN_TOTAL, &[]);
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            let timeout = self.timeouts.read.min(remaining);
            let mut query = req.message.clone();
            query.set_id(rand::rng().random());
            let to = up.addr.to_string();
            self.metrics.inc(&metrics::FORWARD_REQUESTS_TOTAL, &[("to", &to)]);
            let start = Instant::now();
            let mut result = exchange(up.addr, &query, tcp, timeout).await;
            if let Ok(m) = &result {
                if m.truncated() && !tcp && !o.prefer_udp {
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    result = exchange(up.addr, &query, true, self.timeouts.read.min(remaining)).await;
                }
            }
            match result {
                Ok(mut m) => {
                    let rcode = response::rcode_name(m.response_code());
                    let labels = [("to", to.as_str()), ("rcode", &*rcode)];
                    self.metrics.inc(&metrics::FORWARD_RESPONSES_TOTAL, &labels);
                    self.metrics.observe(
                        &metrics::FORWARD_REQUEST_DURATION_SECONDS,
                        &labels,
                        start.elapsed().as_secs_f64(),
                    );
                    m.set_id(req.message.id());
                    return Ok(m);
                }
                Err(e) => {
                    last_err = e.to_string();
                    up.start_health_check(&self.health, &self.metrics);
                }
            }
        }
        Err(last_err)
    }
}

impl Handler for ForwardPlugin {
    fn name(&self) -> &'static str {
        "forward"
    }

    fn handle<'a>(&'a self, req: &'a Request, next: Next<'a>) -> BoxFuture<'a, Message> {
        Box::pin(async move {
            if !self.forwards(req) {
                return next.run(req).await;
            }
            let max = self.options.max_concurrent;
            let _slot = if max > 0 {
                let count = self.inflight.fetch_add(1, Ordering::AcqRel) + 1;
                let slot = Slot(&self.inflight);
                if count > max {
                    self.metrics.inc(&metrics::FORWARD_MAX_CONCURRENT_REJECTS_TOTAL, &[]);
                    report_error("forward", format!("concurrent queries exceeded maximum {max}"));
                    return req.response(ResponseCode::Refused);
                }
                Some(slot)
            } else {
                None
            };
            match self.forward(req).await {
                Ok(m) if self.options.next.contains(&m.response_code()) => next.run(req).await,
                Ok(m) => m,
                Err(e) => {
                    report_error("forward", e);
                    req.response(ResponseCode::ServFail)
                }
            }
        })
    }
}
