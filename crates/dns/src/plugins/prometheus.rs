//! `prometheus`: counts every query the chain below answers in CoreDNS's metrics
//! (`coredns_dns_requests_total{server,zone,proto,family,type}`,
//! `coredns_dns_responses_total{server,zone,rcode}`, `coredns_dns_request_duration_seconds`,
//! request and response sizes, the latter told by the server once it has encoded the answer).
//! The registry is served on `:9153/metrics` by the context.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use hickory_proto::op::Message;
use hickory_proto::rr::Name;

use super::metrics::{self, Metrics};
use super::response;
use crate::corefile::{names, ServerBlock};
use crate::{BoxFuture, Handler, Next, Request, Transport};

/// The `prometheus` plugin of one server block.
pub struct PrometheusPlugin {
    metrics: Arc<Metrics>,
    server: String,
    zones: Vec<String>,
    /// `zones` as names (`None` if one does not parse), to find a query's zone without copies.
    zone_names: Option<Vec<Name>>,
}

impl PrometheusPlugin {
    /// Records for `block` into `metrics`, and marks the block's plugins enabled.
    pub fn new(block: &ServerBlock, metrics: Arc<Metrics>) -> Self {
        let server = block.server_label();
        for zone in &block.zones {
            for p in &block.plugins {
                metrics.set(&metrics::PLUGIN_ENABLED, &[("server", &server), ("zone", zone), ("name", &p.name)], 1.0);
            }
        }
        let zone_names = block.zones.iter().map(|z| Name::from_ascii(z).ok().filter(Name::is_fqdn)).collect();
        PrometheusPlugin { metrics, server, zones: block.zones.clone(), zone_names }
    }

    /// The zone label of `req`: the most specific of the block's zones holding its name.
    fn zone(&self, req: &Request) -> &str {
        let Some(q) = req.message.query() else { return "." };
        let Some(zones) = &self.zone_names else {
            let qname = names::normalize(&q.name().to_ascii());
            return names::matching_zone(&qname, &self.zones).unwrap_or(".");
        };
        let best = zones
            .iter()
            .enumerate()
            .filter(|(_, z)| response::zone_of(z, q.name()))
            .max_by_key(|(_, z)| z.num_labels());
        best.map_or(".", |(i, _)| self.zones[i].as_str())
    }

    fn proto(req: &Request) -> &'static str {
        match req.transport {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

impl Handler for PrometheusPlugin {
    fn name(&self) -> &'static str {
        "prometheus"
    }

    fn handle<'a>(&'a self, req: &'a Request, next: Next<'a>) -> BoxFuture<'a, Message> {
        Box::pin(async move {
            let start = Instant::now();
            let zone = self.zone(req);
            let qtype = req.message.query().map_or("other", |q| response::qtype_label(q.query_type()));
            let proto = Self::proto(req);
            let family = match req.client.ip() {
                IpAddr::V4(_) => "1",
                IpAddr::V6(_) => "2",
            };
            let m = &self.metrics;
            let server = self.server.as_str();
            m.inc(
                &metrics::DNS_REQUESTS_TOTAL,
                &[("server", server), ("zone", zone), ("proto", proto), ("family", family), ("type", qtype)],
            );
            let bufsize = match req.transport {
                Transport::Tcp => 65535,
                Transport::Udp => req.message.max_payload().max(512),
            };
            m.observe(
                &metrics::DNS_REQUEST_SIZE_BYTES,
                &[("server", server), ("zone", zone), ("proto", proto)],
                f64::from(bufsize),
            );
            let resp = next.run(req).await;
            let rcode = response::rcode_name(resp.response_code());
            m.inc(&metrics::DNS_RESPONSES_TOTAL, &[("server", server), ("zone", zone), ("rcode", &rcode)]);
            m.observe(
                &metrics::DNS_REQUEST_DURATION_SECONDS,
                &[("server", server), ("zone", zone), ("type", qtype)],
                start.elapsed().as_secs_f64(),
            );
            resp
        })
    }

    fn encoded(&self, req: &Request, wire_len: usize) {
        let labels = [("server", self.server.as_str()), ("zone", self.zone(req)), ("proto", Self::proto(req))];
        self.metrics.observe(&metrics::DNS_RESPONSE_SIZE_BYTES, &labels, wire_len as f64);
    }
}
