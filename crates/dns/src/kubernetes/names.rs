//! Reading query names: which zone a name is in, what a name under a zone asks for (CoreDNS's
//! `parseRequest`: `[_port._proto.|endpoint.]service.namespace.svc|pod`), the address a reverse
//! name stands for, and the name an endpoint goes by. Names are compared lowercased.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::Name;

use super::cluster::EndpointInfo;

/// The zone a query name falls in.
#[derive(Debug, Clone)]
pub(crate) struct ZoneMatch {
    /// How many labels the zone has.
    pub labels: usize,
    /// The zone as the query wrote it (its case kept).
    pub name: Name,
}

/// A name's labels, lowercased, left to right.
pub(crate) fn labels_lower(name: &Name) -> Vec<String> {
    name.iter().map(|l| String::from_utf8_lossy(&l.to_ascii_lowercase()).into_owned()).collect()
}

/// The longest of `zones` that `name` is in.
pub(crate) fn match_zone(zones: &[Name], name: &Name) -> Option<ZoneMatch> {
    let n = zones.iter().filter(|z| z.zone_of(name)).map(|z| z.iter().count()).max()?;
    Some(ZoneMatch { labels: n, name: name.trim_to(n) })
}

/// Whether a query label is a wildcard (`*` or `any`, as CoreDNS before 1.9 took them).
pub(crate) fn is_wildcard(s: &str) -> bool {
    s == "*" || s == "any"
}

/// `a` (from the query, maybe a wildcard) matches `b` (from the cluster), ignoring case.
pub(crate) fn matches(a: &str, b: &str) -> bool {
    is_wildcard(a) || a.eq_ignore_ascii_case(b)
}

/// Whether a name is under `svc` or `pod`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Svc,
    Pod,
}

/// What a name under a zone asks for. Labels are lowercase; `port` and `protocol` lose their `_`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RecordRequest {
    pub kind: Option<Kind>,
    pub namespace: Option<String>,
    pub service: Option<String>,
    pub endpoint: Option<String>,
    pub port: Option<String>,
    pub protocol: Option<String>,
}

/// The name is not one the zone can hold (NXDOMAIN).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Invalid;

/// Reads the labels below the zone (`base`, lowercase): the zone itself, `svc.` and `pod.` ask
/// for nothing (`kind` is `None`); anything not ending in `svc`/`pod`, or longer than
/// `_port._proto.service.namespace.svc`, is [`Invalid`].
pub(crate) fn parse_request(base: &[String]) -> Result<RecordRequest, Invalid> {
    let mut r = RecordRequest::default();
    let Some((last, rest)) = base.split_last() else { return Ok(r) };
    if rest.is_empty() && (last == "svc" || last == "pod") {
        return Ok(r);
    }
    r.kind = Some(match last.as_str() {
        "svc" => Kind::Svc,
        "pod" => Kind::Pod,
        _ => return Err(Invalid),
    });
    let mut it = rest.iter().rev();
    r.namespace = it.next().cloned();
    r.service = it.next().cloned();
    let left: Vec<&String> = it.collect();
    match left.as_slice() {
        [] => {}
        [endpoint] => r.endpoint = Some((*endpoint).clone()),
        [protocol, port] => {
            r.protocol = Some(strip_underscore(protocol));
            r.port = Some(strip_underscore(port));
        }
        _ => return Err(Invalid),
    }
    Ok(r)
}

fn strip_underscore(s: &str) -> String {
    s.strip_prefix('_').unwrap_or(s).to_string()
}

/// The address a complete reverse name (`d.c.b.a.in-addr.arpa.`, 32 nibbles `.ip6.arpa.`)
/// stands for.
pub(crate) fn address_from_reverse(labels: &[String]) -> Option<IpAddr> {
    let n = labels.len();
    if n == 6 && labels[4] == "in-addr" && labels[5] == "arpa" {
        let mut o = [0u8; 4];
        for (i, l) in labels[..4].iter().rev().enumerate() {
            if l.is_empty() || l.len() > 3 || !l.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            o[i] = l.parse().ok()?;
        }
        return Some(IpAddr::V4(Ipv4Addr::from(o)));
    }
    if n == 34 && labels[32] == "ip6" && labels[33] == "arpa" {
        let mut v: u128 = 0;
        for l in labels[..32].iter().rev() {
            let [c] = l.as_bytes() else { return None };
            v = (v << 4) | u128::from((*c as char).to_digit(16)?);
        }
        return Some(IpAddr::V6(Ipv6Addr::from(v)));
    }
    None
}

/// Whether a name (lowercase labels) is under `in-addr.arpa.` or `ip6.arpa.`.
pub(crate) fn is_reverse(labels: &[String]) -> bool {
    matches!(labels, [.., a, b] if (a == "in-addr" || a == "ip6") && b == "arpa")
}

/// The label an endpoint address goes by: its hostname, else (with `endpoint_pod_names`) its
/// pod's name, else its address with `-` for `.` or `:`.
pub(crate) fn endpoint_hostname(ep: &EndpointInfo, addr: IpAddr, pod_names: bool) -> String {
    if let Some(h) = &ep.hostname {
        return h.clone();
    }
    if pod_names {
        if let Some(n) = &ep.target_name {
            return n.clone();
        }
    }
    dashed(addr)
}

/// An address with `-` for `.` (IPv4) or `:` (IPv6): `10-0-0-1`, `fd00--1`.
pub(crate) fn dashed(addr: IpAddr) -> String {
    addr.to_string().replace(['.', ':'], "-")
}

/// The address a pod label stands for (`10-0-0-1`, `fd00--1`), as CoreDNS reads it: three
/// dashes and no `--` is IPv4, anything else IPv6.
pub(crate) fn pod_label_address(label: &str) -> Option<IpAddr> {
    let text = if label.matches('-').count() == 3 && !label.contains("--") {
        label.replace('-', ".")
    } else {
        label.replace('-', ":")
    };
    text.parse().ok()
}

/// `labels` (from the cluster or the query) followed by `zone`, as a name.
pub(crate) fn join(labels: &[&str], zone: &Name) -> Option<Name> {
    Name::from_labels(labels.iter().map(|l| l.as_bytes())).ok()?.append_name(zone).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(s: &str) -> Vec<String> {
        if s.is_empty() {
            return vec![];
        }
        s.split('.').map(str::to_string).collect()
    }

    #[test]
    fn zone_matching_keeps_case() {
        let zones = [Name::from_ascii("cluster.local.").unwrap(), Name::from_ascii("in-addr.arpa.").unwrap()];
        let q = Name::from_ascii("Web.Default.SVC.Cluster.LOCAL.").unwrap();
        let z = match_zone(&zones, &q).unwrap();
        assert_eq!(z.labels, 2);
        assert_eq!(z.name.to_ascii(), "Cluster.LOCAL.");
        assert!(match_zone(&zones, &Name::from_ascii("example.com.").unwrap()).is_none());
        assert!(match_zone(&zones, &Name::from_ascii("local.").unwrap()).is_none());
    }

    #[test]
    fn parses_requests() {
        assert_eq!(parse_request(&l("")), Ok(RecordRequest::default()));
        assert_eq!(parse_request(&l("svc")), Ok(RecordRequest::default()));
        assert_eq!(parse_request(&l("foo")), Err(Invalid));
        let r = parse_request(&l("web.default.svc")).unwrap();
        assert_eq!(
            (r.kind, r.namespace.as_deref(), r.service.as_deref()),
            (Some(Kind::Svc), Some("default"), Some("web"))
        );
        let r = parse_request(&l("default.svc")).unwrap();
        assert_eq!((r.namespace.as_deref(), r.service), (Some("default"), None));
        let r = parse_request(&l("db-0.db.ns.svc")).unwrap();
        assert_eq!(r.endpoint.as_deref(), Some("db-0"));
        let r = parse_request(&l("_http._tcp.web.default.svc")).unwrap();
        assert_eq!((r.port.as_deref(), r.protocol.as_deref()), (Some("http"), Some("tcp")));
        assert_eq!(parse_request(&l("a.b.c.d.e.svc")), Err(Invalid));
        let r = parse_request(&l("10-0-0-1.default.pod")).unwrap();
        assert_eq!((r.kind, r.service.as_deref()), (Some(Kind::Pod), Some("10-0-0-1")));
    }

    #[test]
    fn reverse_names() {
        assert_eq!(address_from_reverse(&l("10.0.96.10.in-addr.arpa")), Some("10.96.0.10".parse().unwrap()));
        assert_eq!(address_from_reverse(&l("96.10.in-addr.arpa")), None);
        assert_eq!(address_from_reverse(&l("300.0.96.10.in-addr.arpa")), None);
        let v6 = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa";
        assert_eq!(address_from_reverse(&l(v6)), Some("fd00::1".parse().unwrap()));
        assert!(is_reverse(&l(v6)) && !is_reverse(&l("a.svc.cluster.local")));
    }

    #[test]
    fn endpoint_and_pod_labels() {
        let ep = EndpointInfo {
            addresses: vec![],
            hostname: None,
            target_name: Some("web-0".into()),
            node_name: None,
            ready: true,
        };
        let a: IpAddr = "10.244.0.5".parse().unwrap();
        assert_eq!(endpoint_hostname(&ep, a, false), "10-244-0-5");
        assert_eq!(endpoint_hostname(&ep, a, true), "web-0");
        assert_eq!(dashed("fd00::1".parse().unwrap()), "fd00--1");
        assert_eq!(pod_label_address("10-244-0-5"), Some(a));
        assert_eq!(pod_label_address("fd00--1"), Some("fd00::1".parse().unwrap()));
        assert_eq!(pod_label_address("nope"), None);
    }
}
