//! `prometheus`: counts every query the chain below answers in CoreDNS's metrics
//! (`coredns_dns_requests_total{server,zone,proto,family,type}`,
//! `coredns_dns_responses_total{server,zone,rcode}`, `coredns_dns_request_duration_seconds`,
//! request and response sizes, the latter told by the server once it has encoded the answer).
//! The registry is served on `:9153/metrics` by the context.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

use super::metrics::{self, Metrics};
use super::response;
use crate::corefile::{names, ServerBlock};
use crate::wire::{self, WireAnswer, WireNext, WireQuery};
use crate::{BoxFuture, Handler, Next, Request, Transport};

/// The `prometheus` plugin of one server block.
pub struct PrometheusPlugin {
    metrics: Arc<Metrics>,
    server: String,
    zones: Vec<String>,
    /// `zones` as names (`None` if one does not parse), to find a query's zone without copies.
    zone_names: Option<Vec<Name>>,
    /// `zones` in lowercased wire form, for the wire path (`None` if one does not parse).
    zone_wires: Option<Vec<Vec<u8>>>,
}

/// The labels of one query.
struct Labels<'a> {
    zone: &'a str,
    qtype: &'static str,
    proto: &'static str,
    family: &'static str,
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
        let zone_wires = block.zones.iter().map(|z| wire::zone_name(z)).collect();
        PrometheusPlugin { metrics, server, zones: block.zones.clone(), zone_names, zone_wires }
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

    /// [`Self::zone`] of a query on the wire path (`name` lowercased wire form).
    fn wire_zone(&self, name: &[u8]) -> &str {
        let Some(zones) = &self.zone_wires else {
            return names::matching_zone(&wire::name_text(name), &self.zones).unwrap_or(".");
        };
        let best = zones.iter().enumerate().filter(|(_, z)| wire::in_zone(z, name)).max_by_key(|(_, z)| z.len());
        best.map_or(".", |(i, _)| self.zones[i].as_str())
    }

    fn labels<'a>(zone: &'a str, qtype: RecordType, transport: Transport, client: IpAddr) -> Labels<'a> {
        Labels {
            zone,
            qtype: response::qtype_label(qtype),
            proto: Self::proto(transport),
            family: match client {
                IpAddr::V4(_) => "1",
                IpAddr::V6(_) => "2",
            },
        }
    }

    fn proto(transport: Transport) -> &'static str {
        match transport {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }

    /// Counts a query as it arrives: its type and the buffer size it offers.
    fn count_request(&self, l: &Labels<'_>, bufsize: u16) {
        let (m, server) = (&self.metrics, self.server.as_str());
        m.inc(
            &metrics::DNS_REQUESTS_TOTAL,
            &[("server", server), ("zone", l.zone), ("proto", l.proto), ("family", l.family), ("type", l.qtype)],
        );
        m.observe(
            &metrics::DNS_REQUEST_SIZE_BYTES,
            &[("server", server), ("zone", l.zone), ("proto", l.proto)],
            f64::from(bufsize),
        );
    }

    /// Counts the answer: its rcode and how long it took.
    fn count_response(&self, l: &Labels<'_>, rcode: ResponseCode, elapsed: Duration) {
        let (m, server) = (&self.metrics, self.server.as_str());
        let rcode = response::rcode_name(rcode);
        m.inc(&metrics::DNS_RESPONSES_TOTAL, &[("server", server), ("zone", l.zone), ("rcode", &rcode)]);
        m.observe(
            &metrics::DNS_REQUEST_DURATION_SECONDS,
            &[("server", server), ("zone", l.zone), ("type", l.qtype)],
            elapsed.as_secs_f64(),
        );
    }

    /// Counts the answer's size once encoded.
    fn count_size(&self, zone: &str, proto: &str, wire_len: usize) {
        let labels = [("server", self.server.as_str()), ("zone", zone), ("proto", proto)];
        self.metrics.observe(&metrics::DNS_RESPONSE_SIZE_BYTES, &labels, wire_len as f64);
    }
}

impl Handler for PrometheusPlugin {
    fn name(&self) -> &'static str {
        "prometheus"
    }

    fn handle<'a>(&'a self, req: &'a Request, next: Next<'a>) -> BoxFuture<'a, Message> {
        Box::pin(async move {
            let start = Instant::now();
            let qtype = req.message.query().map_or(RecordType::Unknown(0), |q| q.query_type());
            let labels = Self::labels(self.zone(req), qtype, req.transport, req.client.ip());
            let bufsize = match req.transport {
                Transport::Tcp => 65535,
                Transport::Udp => req.message.max_payload().max(512),
            };
            self.count_request(&labels, bufsize);
            let resp = next.run(req).await;
            self.count_response(&labels, resp.response_code(), start.elapsed());
            resp
        })
    }

    fn encoded(&self, req: &Request, wire_len: usize) {
        self.count_size(self.zone(req), Self::proto(req.transport), wire_len);
    }

    /// Counts a query answered on the wire path as [`Handler::handle`] and
    /// [`Handler::encoded`] count the others (nothing when the rest of the chain declines).
    fn wire(&self, q: &WireQuery<'_>, next: WireNext<'_>, out: &mut Vec<u8>) -> Option<WireAnswer> {
        let start = Instant::now();
        let answer = next.run(q, out)?;
        let labels = Self::labels(self.wire_zone(q.name()), q.record_type(), q.transport, q.client.ip());
        // The buffer the client offers: what it takes over this transport.
        self.count_request(&labels, u16::try_from(q.max_response()).unwrap_or(u16::MAX));
        self.count_response(&labels, answer.rcode, start.elapsed());
        self.count_size(labels.zone, labels.proto, out.len());
        Some(answer)
    }
}
