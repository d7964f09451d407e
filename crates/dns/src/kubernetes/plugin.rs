//! The `kubernetes` plugin of a server block's chain: answers the names in its zones from the
//! current snapshot — SERVFAIL (with the zone's SOA) until the first sync with the API — and
//! passes the rest on: names outside its zones, and NXDOMAINs in its `fallthrough` zones. The
//! target of an ExternalName CNAME outside its zones is asked of the rest of the chain (the
//! `forward` plugin, typically) and its answers follow the CNAME, as CoreDNS does.

use std::sync::Arc;

use hickory_proto::op::{Message, MessageType, OpCode, Query as WireQuery, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

use super::answer::{answer, soa_record, Answer, Outcome, Query};
use super::cluster::Cluster;
use super::config::KubernetesConfig;
use super::names::match_zone;
use super::shared::SharedCluster;
use crate::{BoxFuture, Handler, Next, Request};

/// The `kubernetes` plugin.
#[derive(Debug, Clone)]
pub struct KubernetesPlugin {
    config: Arc<KubernetesConfig>,
    cluster: Arc<SharedCluster>,
}

impl KubernetesPlugin {
    /// A plugin answering from `cluster` (kept current by [`super::watcher`]).
    pub fn new(config: KubernetesConfig, cluster: Arc<SharedCluster>) -> Self {
        KubernetesPlugin { config: Arc::new(config), cluster }
    }

    /// A plugin answering from a fixed, synced snapshot (tests, benchmarks).
    pub fn with_snapshot(config: KubernetesConfig, cluster: Cluster) -> Self {
        KubernetesPlugin::new(config, SharedCluster::fixed(cluster))
    }

    pub fn config(&self) -> &KubernetesConfig {
        &self.config
    }

    /// The snapshot it answers from.
    pub fn cluster(&self) -> &Arc<SharedCluster> {
        &self.cluster
    }

    /// What it does with `query` now.
    pub fn outcome(&self, query: &Query) -> Outcome {
        answer(&self.cluster.current(), &self.config, query)
    }

    async fn respond<'a>(&'a self, req: &'a Request, q: &WireQuery, a: Answer, next: Next<'a>) -> Message {
        if !self.cluster.synced() {
            let mut m = req.response(ResponseCode::ServFail);
            m.set_authoritative(true);
            if let Some(z) = match_zone(&self.config.zones, q.name()) {
                m.add_name_server(soa_record(&z.name, self.config.ttl, self.cluster.current().serial()));
            }
            return m;
        }
        let mut m = req.response(a.rcode);
        m.set_authoritative(a.rcode != ResponseCode::Refused);
        m.add_answers(a.answers);
        m.add_name_servers(a.authority);
        m.add_additionals(a.additionals);
        for target in a.external {
            let sub = lookup_request(req, target, q.query_type());
            let r = next.run(&sub).await;
            if matches!(r.response_code(), ResponseCode::NoError | ResponseCode::NXDomain) {
                m.add_answers(r.answers().iter().cloned());
                if r.truncated() {
                    m.set_truncated(true);
                }
            }
        }
        m
    }
}

/// A query for `name` on behalf of `req`, for the rest of the chain.
fn lookup_request(req: &Request, name: Name, qtype: RecordType) -> Request {
    let mut m = Message::new();
    m.set_id(req.message.id())
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(WireQuery::query(name, qtype));
    if let Some(e) = req.message.extensions() {
        m.set_edns(e.clone());
    }
    Request { message: m, client: req.client, transport: req.transport }
}

impl Handler for KubernetesPlugin {
    fn name(&self) -> &'static str {
        "kubernetes"
    }

    fn handle<'a>(&'a self, req: &'a Request, next: Next<'a>) -> BoxFuture<'a, Message> {
        Box::pin(async move {
            let Some(q) = req.message.queries().first() else { return next.run(req).await };
            match self.outcome(&Query::new(q.name().clone(), q.query_type())) {
                Outcome::NotInZone | Outcome::FallThrough => next.run(req).await,
                Outcome::Answer(a) => self.respond(req, q, a, next).await,
            }
        })
    }
}
