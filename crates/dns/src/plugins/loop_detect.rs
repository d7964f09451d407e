//! `loop`: at start, sends `HINFO <random>.<random>.<zone>` through the server's own chain; if
//! that query comes back to this plugin more than twice, the forwarding loops back to this
//! server (a node's resolv.conf pointing at itself), and CoreDNS logs and exits. Two seconds
//! after the probe is answered the plugin stops looking.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use rand::Rng;

use super::response;
use crate::corefile::names;
use crate::{BoxFuture, Handler, Next, Request, Transport};

/// A detected loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopDetected {
    pub zone: String,
    pub qname: String,
    /// Where the looping query last came from.
    pub client: SocketAddr,
}

impl fmt::Display for LoopDetected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Loop ({} -> self) detected for zone {:?}, see https://coredns.io/plugins/loop#troubleshooting. Query: \"HINFO {}\"",
            self.client, self.zone, self.qname
        )
    }
}

/// What to do on a loop.
pub type LoopAction = Arc<dyn Fn(&LoopDetected) + Send + Sync>;

/// CoreDNS's reaction: log and exit with status 1.
pub fn exit_on_loop() -> LoopAction {
    Arc::new(|d: &LoopDetected| {
        tracing::error!(target: "podnet_dns::loop", "{d}");
        std::process::exit(1);
    })
}

/// The `loop` plugin of a server block.
pub struct LoopPlugin {
    zone: String,
    qname: String,
    seen: AtomicU32,
    disabled: AtomicBool,
    detected: AtomicBool,
    action: LoopAction,
}

impl LoopPlugin {
    /// Probes the first of `zones` with a fresh random name.
    pub fn new(zones: &[String], action: LoopAction) -> Self {
        let zone = zones.first().cloned().unwrap_or_else(|| ".".into());
        let mut rng = rand::rng();
        let (a, b): (u64, u64) = (rng.random(), rng.random());
        let qname = if zone == "." { format!("{a}.{b}.") } else { format!("{a}.{b}.{zone}") };
        LoopPlugin {
            zone,
            qname,
            seen: AtomicU32::new(0),
            disabled: AtomicBool::new(false),
            detected: AtomicBool::new(false),
            action,
        }
    }

    /// The probe's name.
    pub fn qname(&self) -> &str {
        &self.qname
    }

    /// How often the probe has been seen.
    pub fn seen(&self) -> u32 {
        self.seen.load(Ordering::Relaxed)
    }

    /// Sends the probe through `chain` (the whole chain of this plugin's block), then stops
    /// looking two seconds after the answer.
    pub async fn probe(self: Arc<Self>, chain: Vec<Arc<dyn Handler>>) {
        let mut m = Message::new();
        m.set_id(rand::rng().random())
            .set_recursion_desired(true)
            .add_query(Query::query(Name::from_ascii(&self.qname).expect("probe name"), RecordType::HINFO));
        let req = Request { message: m, client: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), transport: Transport::Udp };
        let _ = Next::new(&chain).run(&req).await;
        drop(chain);
        tokio::time::sleep(Duration::from_secs(2)).await;
        self.disabled.store(true, Ordering::Relaxed);
    }
}

impl Handler for LoopPlugin {
    fn name(&self) -> &'static str {
        "loop"
    }

    fn handle<'a>(&'a self, req: &'a Request, next: Next<'a>) -> BoxFuture<'a, Message> {
        if self.disabled.load(Ordering::Relaxed) {
            return next.run(req);
        }
        let is_probe = req.message.query().is_some_and(|q| q.query_type() == RecordType::HINFO)
            && response::qname(req).is_some_and(|n| n == self.qname && names::in_zone(&n, &self.zone));
        if is_probe {
            let seen = self.seen.fetch_add(1, Ordering::Relaxed) + 1;
            if seen > 2 {
                if !self.detected.swap(true, Ordering::Relaxed) {
                    (self.action)(&LoopDetected {
                        zone: self.zone.clone(),
                        qname: self.qname.clone(),
                        client: req.client,
                    });
                }
                // Were the process still up, stop feeding the loop.
                return Box::pin(async move { req.response(ResponseCode::ServFail) });
            }
        }
        next.run(req)
    }
}
