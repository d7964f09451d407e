//! The answer to one question from one snapshot — pure, as CoreDNS's kubernetes plugin answers:
//!
//! - A/AAAA: the addresses a name stands for; an ExternalName service gives
//!   a CNAME, followed here when it points into one of the zones, else listed in
//!   [`Answer::external`] for the plugin to resolve through the rest of the chain;
//! - SRV: one record per host and port (`<svc>.<ns>.svc.<zone>` or, for endpoints,
//!   `<endpoint>.<svc>.<ns>.svc.<zone>`), weight `100 / count`, the targets' A/AAAA in Additional;
//! - PTR: service and endpoint addresses in the reverse zones;
//! - TXT: `dns-version.<zone>` is the schema version, `1.1.0`;
//! - CNAME: an ExternalName service's target;
//! - SOA and NS at the zone's apex; AXFR/IXFR are REFUSED;
//! - a name that does not exist is NXDOMAIN, a name that exists without records of the type is
//!   NODATA, both with the zone's SOA in Authority; answers are authoritative.
//!
//! Where CoreDNS answers NXDOMAIN for a name that exists under another type (TXT for the apex
//! or a namespace, anything but TXT for `dns-version`, the `dns.` and `_proto.` empty
//! non-terminals), this answers NODATA, so no NXDOMAIN ever hides names below it (RFC 8020).

use std::collections::HashSet;
use std::net::IpAddr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::cluster::Cluster;
use super::config::KubernetesConfig;
use super::lookup::{Found, Host, Lookup, NameError};
use super::names::{labels_lower, match_zone};

/// The schema version of the Kubernetes DNS specification answered at `dns-version.<zone>`.
pub const DNS_SCHEMA_VERSION: &str = "1.1.0";
/// The TTL of the `dns-version` record.
pub const DNS_VERSION_TTL: u32 = 28800;

/// A question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub name: Name,
    pub qtype: RecordType,
}

impl Query {
    pub fn new(name: Name, qtype: RecordType) -> Self {
        Query { name, qtype }
    }
}

/// What the plugin does with a question.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Not in the plugin's zones: the next plugin answers.
    NotInZone,
    /// NXDOMAIN in a `fallthrough` zone: the next plugin answers.
    FallThrough,
    /// The plugin answers.
    Answer(Answer),
}

/// An authoritative answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub rcode: ResponseCode,
    pub answers: Vec<Record>,
    pub authority: Vec<Record>,
    pub additionals: Vec<Record>,
    /// Targets of CNAMEs in `answers` that are outside the plugin's zones: the plugin asks the
    /// rest of the chain for them (same type) and appends their answers.
    pub external: Vec<Name>,
}

/// Answers `query` from `cluster`.
pub fn answer(cluster: &Cluster, cfg: &KubernetesConfig, query: &Query) -> Outcome {
    let Some(zone) = match_zone(&cfg.zones, &query.name) else { return Outcome::NotInZone };
    let r = Responder { lk: Lookup { cluster, cfg, zone }, owner: &query.name, lname: labels_lower(&query.name) };
    let soa = || vec![r.soa()];
    let negative = |rcode| Answer { rcode, answers: vec![], authority: soa(), additionals: vec![], external: vec![] };
    match r.respond(query.qtype) {
        Err(NameError) if cfg.falls_through(&query.name) => Outcome::FallThrough,
        Err(NameError) => Outcome::Answer(negative(ResponseCode::NXDomain)),
        Ok(None) => Outcome::Answer(Answer {
            rcode: ResponseCode::Refused,
            answers: vec![],
            authority: vec![],
            additionals: vec![],
            external: vec![],
        }),
        Ok(Some(s)) if s.answers.is_empty() && s.external.is_empty() => {
            Outcome::Answer(negative(ResponseCode::NoError))
        }
        Ok(Some(s)) => Outcome::Answer(Answer {
            rcode: ResponseCode::NoError,
            answers: s.answers,
            authority: vec![],
            additionals: s.additionals,
            external: s.external,
        }),
    }
}

/// The SOA record of `zone` (the negative answers' Authority): TTL the smaller of `ttl` and 300,
/// minimum `ttl`.
pub fn soa_record(zone: &Name, ttl: u32, serial: u32) -> Record {
    let at = |prefix: &[&str]| {
        Name::from_labels(prefix.iter().map(|l| l.as_bytes()))
            .and_then(|n| n.append_name(zone))
            .unwrap_or_else(|_| zone.clone())
    };
    let soa = SOA::new(at(&["ns", "dns"]), at(&["hostmaster"]), serial, 7200, 1800, 86400, ttl);
    Record::from_rdata(zone.clone(), ttl.min(300), RData::SOA(soa))
}

#[derive(Default)]
struct Sections {
    answers: Vec<Record>,
    additionals: Vec<Record>,
    external: Vec<Name>,
}

struct Responder<'a> {
    lk: Lookup<'a>,
    owner: &'a Name,
    lname: Vec<String>,
}

/// CNAMEs followed so far: (owner, target), lowercase labels.
type Chain = Vec<(Vec<String>, Vec<String>)>;

fn address_record(owner: &Name, ttl: u32, ip: IpAddr) -> Record {
    let data = match ip {
        IpAddr::V4(a) => RData::A(A(a)),
        IpAddr::V6(a) => RData::AAAA(AAAA(a)),
    };
    Record::from_rdata(owner.clone(), ttl, data)
}

impl Responder<'_> {
    fn ttl(&self) -> u32 {
        self.lk.cfg.ttl
    }

    fn soa(&self) -> Record {
        soa_record(&self.lk.zone.name, self.ttl(), self.lk.cluster.serial())
    }

    /// `Ok(None)`: refused. `Ok(Some(empty))`: NODATA.
    fn respond(&self, qtype: RecordType) -> Result<Option<Sections>, NameError> {
        match self.respond_type(qtype) {
            Err(NameError) if self.srv_empty_non_terminal() => Ok(Some(Sections::default())),
            r => r,
        }
    }

    fn respond_type(&self, qtype: RecordType) -> Result<Option<Sections>, NameError> {
        let mut s = Sections::default();
        let apex = self.lk.base(&self.lname).is_empty();
        match qtype {
            RecordType::A | RecordType::AAAA => {
                address(&self.lk, self.owner, &self.lname, qtype, &mut Chain::new(), &mut s)?;
            }
            RecordType::SRV => self.srv(&mut s)?,
            RecordType::PTR => self.ptr(&mut s)?,
            RecordType::CNAME => self.cname(&mut s)?,
            RecordType::TXT if self.lk.base(&self.lname) == ["dns-version"] => {
                let txt = RData::TXT(TXT::new(vec![DNS_SCHEMA_VERSION.to_string()]));
                s.answers.push(Record::from_rdata(self.owner.clone(), DNS_VERSION_TTL, txt));
            }
            RecordType::SOA if apex => s.answers.push(self.soa()),
            RecordType::NS if apex => self.ns(&mut s),
            RecordType::AXFR | RecordType::IXFR => return Ok(None),
            _ => self.exists()?,
        }
        Ok(Some(s))
    }

    /// NODATA when the name exists, else a name error.
    fn exists(&self) -> Result<(), NameError> {
        if special(&self.lk, self.lk.base(&self.lname)).is_some() || self.lk.records(&self.lname).is_ok() {
            return Ok(());
        }
        Err(NameError)
    }

    /// Whether the name is `_<proto>.<svc>.<ns>.svc.<zone>` with some `_<port>._<proto>` below.
    fn srv_empty_non_terminal(&self) -> bool {
        if !self.lk.base(&self.lname).first().is_some_and(|l| l.starts_with('_')) {
            return false;
        }
        let mut below = vec!["*".to_string()];
        below.extend(self.lname.iter().cloned());
        self.lk.records(&below).is_ok()
    }

    fn found(&self) -> Result<Vec<Found>, NameError> {
        match special(&self.lk, self.lk.base(&self.lname)) {
            Some(_) => Ok(Vec::new()),
            None => self.lk.records(&self.lname),
        }
    }

    fn srv(&self, s: &mut Sections) -> Result<(), NameError> {
        let found: Vec<Found> = self.found()?.into_iter().filter(|f| matches!(f.host, Host::Ip(_))).collect();
        if found.is_empty() {
            return Ok(());
        }
        let weight = u16::try_from(100 / found.len()).unwrap_or(1).max(1);
        let mut seen_srv = HashSet::new();
        let mut seen_addr = HashSet::new();
        for f in &found {
            let (Host::Ip(ip), Some(target), Ok(port)) = (&f.host, &f.target, u16::try_from(f.port)) else {
                continue;
            };
            if seen_srv.insert((target.to_lowercase(), port)) {
                let srv = RData::SRV(SRV::new(0, weight, port, target.clone()));
                s.answers.push(Record::from_rdata(self.owner.clone(), self.ttl(), srv));
            }
            if seen_addr.insert((target.to_lowercase(), *ip)) {
                s.additionals.push(address_record(target, self.ttl(), *ip));
            }
        }
        Ok(())
    }

    fn ptr(&self, s: &mut Sections) -> Result<(), NameError> {
        if special(&self.lk, self.lk.base(&self.lname)).is_some() {
            return Ok(());
        }
        for n in self.lk.reverse(&self.lname)? {
            s.answers.push(Record::from_rdata(self.owner.clone(), self.ttl(), RData::PTR(PTR(n))));
        }
        Ok(())
    }

    fn cname(&self, s: &mut Sections) -> Result<(), NameError> {
        if let Some(Found { host: Host::Name(target), .. }) = self.found()?.into_iter().next() {
            s.answers.push(Record::from_rdata(self.owner.clone(), self.ttl(), RData::CNAME(CNAME(target))));
        }
        Ok(())
    }

    fn ns(&self, s: &mut Sections) {
        let addrs = self.lk.ns_addrs();
        let mut seen = HashSet::new();
        for (name, ip) in &addrs {
            if seen.insert(name.to_lowercase()) {
                let ns = RData::NS(NS(name.clone()));
                s.answers.push(Record::from_rdata(self.owner.clone(), self.ttl(), ns));
            }
            s.additionals.push(address_record(name, self.ttl(), *ip));
        }
        if addrs.is_empty() {
            if let Some(n) = self.lk.default_ns_name() {
                s.answers.push(Record::from_rdata(self.owner.clone(), self.ttl(), RData::NS(NS(n))));
            }
        }
    }
}

/// Names the plugin holds besides services and pods: the apex, `dns-version`, and
/// `ns.dns` (with this server's addresses) under its empty non-terminal `dns`.
fn special(lk: &Lookup<'_>, base: &[String]) -> Option<Vec<Found>> {
    match base {
        [] => Some(Vec::new()),
        [v] if v == "dns-version" || v == "dns" => Some(Vec::new()),
        [a, b] if a == "ns" && b == "dns" => {
            Some(lk.ns_addrs().into_iter().map(|(_, ip)| Found { host: Host::Ip(ip), port: 0, target: None }).collect())
        }
        _ => None,
    }
}

/// A/AAAA records for `owner`, following ExternalName CNAMEs into the plugin's zones (at most
/// 8 deep, never in a loop) and listing the targets outside them.
fn address(
    lk: &Lookup<'_>,
    owner: &Name,
    lname: &[String],
    qtype: RecordType,
    chain: &mut Chain,
    out: &mut Sections,
) -> Result<(), NameError> {
    let found = match special(lk, lk.base(lname)) {
        Some(f) => f,
        None => lk.records(lname)?,
    };
    let ttl = lk.cfg.ttl;
    let mut seen = HashSet::new();
    for f in found {
        match f.host {
            Host::Ip(ip) => {
                let fits = matches!((ip, qtype), (IpAddr::V4(_), RecordType::A) | (IpAddr::V6(_), RecordType::AAAA));
                if fits && seen.insert(ip) {
                    out.answers.push(address_record(owner, ttl, ip));
                }
            }
            Host::Name(target) => {
                let tl = labels_lower(&target);
                // A target at or under the name itself is a loop.
                if tl.ends_with(lname) || chain.len() > 7 || chain.iter().any(|(o, t)| o == lname && t == &tl) {
                    continue;
                }
                let cname = Record::from_rdata(owner.clone(), ttl, RData::CNAME(CNAME(target.clone())));
                let Some(zone) = match_zone(&lk.cfg.zones, &target) else {
                    out.answers.push(cname);
                    out.external.push(target);
                    continue;
                };
                let inner = Lookup { cluster: lk.cluster, cfg: lk.cfg, zone };
                let mut sub = Sections::default();
                chain.push((lname.to_vec(), tl.clone()));
                let r = address(&inner, &target, &tl, qtype, chain, &mut sub);
                chain.pop();
                if r.is_ok() && (!sub.answers.is_empty() || !sub.external.is_empty()) {
                    out.answers.push(cname);
                    out.answers.extend(sub.answers);
                    out.external.extend(sub.external);
                }
            }
        }
    }
    Ok(())
}
