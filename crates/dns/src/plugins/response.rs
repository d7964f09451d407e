//! What a response is, as CoreDNS's `response.Typify` and `Classify` tell it, and the names
//! metrics and logs print (rcodes, query types). Pure.

use std::borrow::Cow;

use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::{Name, Record, RecordType};

use crate::corefile::names;
use crate::Request;

/// The type of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseType {
    NoError,
    NameError,
    NoData,
    Delegation,
    ServerError,
    /// Zone transfers and notifies: never cached.
    Meta,
    OtherError,
}

/// The class `log` filters on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseClass {
    Success,
    Denial,
    Error,
}

/// Types `m` as CoreDNS does.
pub fn typify(m: &Message) -> ResponseType {
    if m.op_code() != OpCode::Query {
        return ResponseType::Meta;
    }
    if let Some(q) = m.query() {
        if matches!(q.query_type(), RecordType::AXFR | RecordType::IXFR) {
            return ResponseType::Meta;
        }
    }
    let rcode = m.response_code();
    if !m.answers().is_empty() && rcode == ResponseCode::NoError {
        return ResponseType::NoError;
    }
    let soa = m.name_servers().iter().any(|r| r.record_type() == RecordType::SOA);
    let ns = m.name_servers().iter().any(|r| r.record_type() == RecordType::NS);
    match rcode {
        ResponseCode::NoError if soa => ResponseType::NoData,
        ResponseCode::NXDomain if soa => ResponseType::NameError,
        ResponseCode::ServFail | ResponseCode::NotImp => ResponseType::ServerError,
        ResponseCode::NoError if ns => ResponseType::Delegation,
        ResponseCode::NoError => ResponseType::NoError,
        _ => ResponseType::OtherError,
    }
}

/// Success, denial or error, as CoreDNS's `response.Classify`.
pub fn classify(t: ResponseType) -> ResponseClass {
    match t {
        ResponseType::NoError | ResponseType::Delegation => ResponseClass::Success,
        ResponseType::NameError | ResponseType::NoData => ResponseClass::Denial,
        _ => ResponseClass::Error,
    }
}

/// The rcode as dig and CoreDNS print it (`NOERROR`, `NXDOMAIN`, …).
pub fn rcode_name(code: ResponseCode) -> Cow<'static, str> {
    match code {
        ResponseCode::NoError => Cow::Borrowed("NOERROR"),
        ResponseCode::FormErr => Cow::Borrowed("FORMERR"),
        ResponseCode::ServFail => Cow::Borrowed("SERVFAIL"),
        ResponseCode::NXDomain => Cow::Borrowed("NXDOMAIN"),
        ResponseCode::NotImp => Cow::Borrowed("NOTIMP"),
        ResponseCode::Refused => Cow::Borrowed("REFUSED"),
        ResponseCode::YXDomain => Cow::Borrowed("YXDOMAIN"),
        ResponseCode::YXRRSet => Cow::Borrowed("YXRRSET"),
        ResponseCode::NXRRSet => Cow::Borrowed("NXRRSET"),
        ResponseCode::NotAuth => Cow::Borrowed("NOTAUTH"),
        ResponseCode::NotZone => Cow::Borrowed("NOTZONE"),
        ResponseCode::BADVERS => Cow::Borrowed("BADVERS"),
        other => Cow::Owned(format!("RCODE{}", u16::from(other))),
    }
}

/// The `type` label of metrics: common types by name, the rest `other`.
pub fn qtype_label(t: RecordType) -> &'static str {
    use RecordType::*;
    match t {
        A => "A",
        AAAA => "AAAA",
        ANY => "ANY",
        AXFR => "AXFR",
        CAA => "CAA",
        CNAME => "CNAME",
        DNSKEY => "DNSKEY",
        DS => "DS",
        HINFO => "HINFO",
        HTTPS => "HTTPS",
        IXFR => "IXFR",
        MX => "MX",
        NAPTR => "NAPTR",
        NS => "NS",
        NSEC => "NSEC",
        NSEC3 => "NSEC3",
        PTR => "PTR",
        RRSIG => "RRSIG",
        SOA => "SOA",
        SRV => "SRV",
        SVCB => "SVCB",
        TXT => "TXT",
        _ => "other",
    }
}

/// The normalized name of the request's question (`example.org.`).
pub fn qname(req: &Request) -> Option<String> {
    req.message.query().map(|q| names::normalize(&q.name().to_ascii()))
}

/// Whether `name` is `zone` or below it, labels compared case-insensitively (no copies).
pub fn zone_of(zone: &Name, name: &Name) -> bool {
    zone.num_labels() <= name.num_labels()
        && zone.iter().rev().zip(name.iter().rev()).all(|(z, n)| z.eq_ignore_ascii_case(n))
}

/// Whether the request has the DNSSEC OK bit.
pub fn dnssec_ok(m: &Message) -> bool {
    m.extensions().as_ref().is_some_and(|e| e.flags().dnssec_ok)
}

/// Calls `f` on every record of the answer, authority and additional sections.
pub fn for_each_record_mut(m: &mut Message, mut f: impl FnMut(&mut Record)) {
    m.answers_mut().iter_mut().for_each(&mut f);
    m.name_servers_mut().iter_mut().for_each(&mut f);
    m.additionals_mut().iter_mut().for_each(&mut f);
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::rdata::{A, NS, SOA};
    use hickory_proto::rr::{Name, RData};

    fn msg(code: ResponseCode) -> Message {
        let mut m = Message::new();
        m.add_query(Query::query(Name::from_ascii("example.org.").unwrap(), RecordType::A));
        m.set_response_code(code);
        m
    }

    fn soa() -> Record {
        let n = Name::from_ascii("example.org.").unwrap();
        Record::from_rdata(n.clone(), 60, RData::SOA(SOA::new(n.clone(), n, 1, 1, 1, 1, 30)))
    }

    #[test]
    fn types_like_coredns() {
        let n = Name::from_ascii("example.org.").unwrap();
        let mut ok = msg(ResponseCode::NoError);
        ok.add_answer(Record::from_rdata(n.clone(), 5, RData::A(A::new(1, 2, 3, 4))));
        assert_eq!(typify(&ok), ResponseType::NoError);
        let mut nx = msg(ResponseCode::NXDomain);
        assert_eq!(typify(&nx), ResponseType::OtherError);
        nx.add_name_server(soa());
        assert_eq!(typify(&nx), ResponseType::NameError);
        let mut nodata = msg(ResponseCode::NoError);
        nodata.add_name_server(soa());
        assert_eq!(typify(&nodata), ResponseType::NoData);
        let mut deleg = msg(ResponseCode::NoError);
        deleg.add_name_server(Record::from_rdata(n.clone(), 5, RData::NS(NS(n))));
        assert_eq!(typify(&deleg), ResponseType::Delegation);
        assert_eq!(typify(&msg(ResponseCode::ServFail)), ResponseType::ServerError);
        assert_eq!(typify(&msg(ResponseCode::Refused)), ResponseType::OtherError);
        assert_eq!(classify(ResponseType::NoData), ResponseClass::Denial);
        assert_eq!(rcode_name(ResponseCode::NXDomain), "NXDOMAIN");
        assert_eq!(qtype_label(RecordType::NULL), "other");
    }
}
