//! Finding what a name stands for in a snapshot, as CoreDNS's kubernetes plugin does
//! (`Records`, `findServices`, `findPods`, `serviceRecordForIP`, `nsAddrs`): a list of hosts — an
//! address or, for an ExternalName service, a name — each with a port and the name an SRV
//! record points to; or a name error (NXDOMAIN).
//!
//! - a ClusterIP service: one host per cluster IP and matching port;
//! - a headless service, or an endpoint name (`<endpoint>.<service>...`, any service type): one
//!   host per ready endpoint address and matching port; none ready is a name error;
//! - an ExternalName service: its name (never with an endpoint label);
//! - a namespace alone (`<ns>.svc.<zone>`): nothing, if the namespace exists (NODATA);
//! - `*`/`any` in the service, namespace, endpoint, port or protocol label matches anything.

use std::net::IpAddr;

use hickory_proto::rr::Name;

use super::cluster::{Cluster, PortInfo, ServiceInfo, ServiceKind};
use super::config::{KubernetesConfig, PodMode};
use super::names::{
    self, address_from_reverse, endpoint_hostname, is_reverse, is_wildcard, parse_request, pod_label_address, Kind,
    RecordRequest, ZoneMatch,
};

/// What a name resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Host {
    Ip(IpAddr),
    /// An ExternalName service's target (a CNAME).
    Name(Name),
}

/// One host for a name, with its port (-1: none declared) and the name SRV records point to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    pub host: Host,
    pub port: i32,
    pub target: Option<Name>,
}

/// The name does not exist (NXDOMAIN).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NameError;

/// Lookups in one snapshot, for names in one zone.
pub(crate) struct Lookup<'a> {
    pub cluster: &'a Cluster,
    pub cfg: &'a KubernetesConfig,
    pub zone: ZoneMatch,
}

impl Lookup<'_> {
    /// Whether `ns` exists and the `namespaces` option serves it.
    pub fn namespace_exposed(&self, ns: &str) -> bool {
        self.cfg.namespace_configured(ns) && self.cluster.has_namespace(ns)
    }

    /// The labels of a name (lowercase) below the zone.
    pub fn base<'n>(&self, lname: &'n [String]) -> &'n [String] {
        &lname[..lname.len().saturating_sub(self.zone.labels)]
    }

    /// The hosts `lname` (lowercase labels of a name in the zone) stands for.
    pub fn records(&self, lname: &[String]) -> Result<Vec<Found>, NameError> {
        let r = parse_request(self.base(lname)).map_err(|_| NameError)?;
        let Some(kind) = r.kind else { return Ok(Vec::new()) };
        if is_reverse(lname) {
            return Err(NameError);
        }
        let ns = r.namespace.as_deref().unwrap_or_default();
        if !is_wildcard(ns) && !self.namespace_exposed(ns) {
            return Err(NameError);
        }
        match kind {
            Kind::Pod => self.pods(&r),
            Kind::Svc => self.services(&r),
        }
    }

    fn port_matches(r: &RecordRequest, p: &PortInfo) -> bool {
        r.port.as_deref().is_none_or(|q| names::matches(q, &p.name))
            && r.protocol.as_deref().is_none_or(|q| names::matches(q, &p.protocol))
    }

    fn services(&self, r: &RecordRequest) -> Result<Vec<Found>, NameError> {
        let ns = r.namespace.as_deref().unwrap_or_default();
        let Some(name) = r.service.as_deref() else { return Ok(Vec::new()) };
        // A wildcard service in an existing namespace is NODATA rather than NXDOMAIN.
        let mut exists = is_wildcard(name) && !is_wildcard(ns);
        let candidates: Vec<_> = if is_wildcard(name) || is_wildcard(ns) {
            self.cluster
                .services()
                .filter(|s| names::matches(ns, &s.namespace) && names::matches(name, &s.name))
                .filter(|s| !is_wildcard(ns) || self.namespace_exposed(&s.namespace))
                .collect()
        } else {
            self.cluster.service(ns, name).into_iter().collect()
        };
        let mut out = Vec::new();
        for svc in candidates {
            if self.cfg.ignore_empty_service
                && matches!(svc.kind, ServiceKind::ClusterIp(_))
                && !self.has_ready_endpoints(&svc.namespace, &svc.name)
            {
                continue;
            }
            exists |= match &svc.kind {
                ServiceKind::ExternalName(ext) => r.endpoint.is_none() && Self::external(ext, &mut out),
                ServiceKind::Headless => self.endpoints(svc, r, &mut out),
                ServiceKind::ClusterIp(_) if r.endpoint.is_some() => self.endpoints(svc, r, &mut out),
                ServiceKind::ClusterIp(ips) => self.cluster_ips(svc, ips, r, &mut out),
            };
        }
        if exists {
            Ok(out)
        } else {
            Err(NameError)
        }
    }

    /// An ExternalName service's target, unless it is an address (as CoreDNS, which only
    /// answers names there).
    fn external(ext: &str, out: &mut Vec<Found>) -> bool {
        if ext.parse::<IpAddr>().is_ok() {
            return false;
        }
        let Ok(mut n) = Name::from_ascii(ext) else { return false };
        if n.is_root() {
            return false;
        }
        n.set_fqdn(true);
        out.push(Found { host: Host::Name(n), port: 0, target: None });
        true
    }

    /// The ready endpoints of `svc` matching the request's endpoint, port and protocol.
    fn endpoints(&self, svc: &ServiceInfo, r: &RecordRequest, out: &mut Vec<Found>) -> bool {
        if self.cfg.noendpoints {
            return false;
        }
        let mut any = false;
        for slice in self.cluster.slices(&svc.namespace, &svc.name) {
            for ep in slice.endpoints.iter().filter(|e| e.ready) {
                for &addr in &ep.addresses {
                    let host = endpoint_hostname(ep, addr, self.cfg.endpoint_pod_names);
                    if r.endpoint.as_deref().is_some_and(|e| !names::matches(e, &host)) {
                        continue;
                    }
                    for p in slice.ports.iter().filter(|p| Self::port_matches(r, p)) {
                        let target = names::join(&[&host, &svc.name, &svc.namespace, "svc"], &self.zone.name);
                        out.push(Found { host: Host::Ip(addr), port: p.port, target });
                        any = true;
                    }
                }
            }
        }
        any
    }

    /// The cluster IPs of `svc`, once per port matching the request.
    fn cluster_ips(&self, svc: &ServiceInfo, ips: &[IpAddr], r: &RecordRequest, out: &mut Vec<Found>) -> bool {
        let mut any = false;
        for p in svc.ports.iter().filter(|p| Self::port_matches(r, p)) {
            any = true;
            for &ip in ips {
                let target = names::join(&[&svc.name, &svc.namespace, "svc"], &self.zone.name);
                out.push(Found { host: Host::Ip(ip), port: p.port, target });
            }
        }
        any
    }

    fn has_ready_endpoints(&self, ns: &str, service: &str) -> bool {
        !self.cfg.noendpoints
            && self.cluster.slices(ns, service).any(|s| s.endpoints.iter().any(|e| e.ready && !e.addresses.is_empty()))
    }

    fn pods(&self, r: &RecordRequest) -> Result<Vec<Found>, NameError> {
        if self.cfg.pods == PodMode::Disabled {
            return Err(NameError);
        }
        let ns = r.namespace.as_deref().unwrap_or_default();
        let Some(label) = r.service.as_deref() else { return Ok(Vec::new()) };
        let target = names::join(&[label, ns, "pod"], &self.zone.name);
        let ip = pod_label_address(label);
        if self.cfg.pods == PodMode::Insecure {
            let ip = ip.ok_or(NameError)?;
            return Ok(vec![Found { host: Host::Ip(ip), port: 0, target }]);
        }
        let mut exists = is_wildcard(label) && !is_wildcard(ns);
        let mut out = Vec::new();
        if let Some(ip) = ip {
            for p in self.cluster.pods_by_ip(ip) {
                if is_wildcard(ns) && !self.namespace_exposed(&p.namespace) {
                    continue;
                }
                if names::matches(ns, &p.namespace) {
                    out.push(Found { host: Host::Ip(ip), port: 0, target: target.clone() });
                    exists = true;
                }
            }
        }
        if exists {
            Ok(out)
        } else {
            Err(NameError)
        }
    }

    /// The names a reverse name points to: the first service with that cluster IP, else every
    /// ready endpoint with that address (`<endpoint>.<service>.<ns>.svc.<primary zone>`). A name
    /// that is no complete reverse name is looked up as a forward one.
    pub fn reverse(&self, lname: &[String]) -> Result<Vec<Name>, NameError> {
        let Some(ip) = address_from_reverse(lname) else {
            self.records(lname)?;
            return Ok(Vec::new());
        };
        let zone = self.cfg.primary_zone();
        let filtered = |ns: &str| !self.cfg.namespaces.is_empty() && !self.namespace_exposed(ns);
        if let Some(svc) = self.cluster.services_by_ip(ip).find(|s| !filtered(&s.namespace)) {
            return names::join(&[&svc.name, &svc.namespace, "svc"], zone).map(|n| vec![n]).ok_or(NameError);
        }
        let mut out: Vec<Name> = Vec::new();
        if !self.cfg.noendpoints {
            for slice in self.cluster.slices_by_ip(ip).filter(|s| !filtered(&s.namespace)) {
                for ep in slice.endpoints.iter().filter(|e| e.ready && e.addresses.contains(&ip)) {
                    let host = endpoint_hostname(ep, ip, self.cfg.endpoint_pod_names);
                    if let Some(n) = names::join(&[&host, &slice.service, &slice.namespace, "svc"], zone) {
                        if !out.contains(&n) {
                            out.push(n);
                        }
                    }
                }
            }
        }
        if out.is_empty() {
            Err(NameError)
        } else {
            Ok(out)
        }
    }

    /// This server's names and addresses for NS records: the service whose endpoint it is (its
    /// cluster IP, or for a headless one its endpoints), else `ns.dns.<zone>` with its addresses.
    pub fn ns_addrs(&self) -> Vec<(Name, IpAddr)> {
        let mut out = Vec::new();
        for &local in &self.cfg.ns_addresses {
            for slice in self.cluster.slices_by_ip(local) {
                let Some(svc) = self.cluster.service(&slice.namespace, &slice.service) else { continue };
                let svc_labels = [svc.name.as_str(), svc.namespace.as_str(), "svc"];
                match &svc.kind {
                    ServiceKind::ClusterIp(ips) => {
                        if let (Some(ip), Some(n)) = (ips.first(), names::join(&svc_labels, &self.zone.name)) {
                            out.push((n, *ip));
                        }
                    }
                    ServiceKind::Headless => {
                        for ep in slice.endpoints.iter().filter(|e| e.ready) {
                            for &a in &ep.addresses {
                                let host = endpoint_hostname(ep, a, self.cfg.endpoint_pod_names);
                                let mut labels = vec![host.as_str()];
                                labels.extend(svc_labels);
                                if let Some(n) = names::join(&labels, &self.zone.name) {
                                    out.push((n, a));
                                }
                            }
                        }
                    }
                    ServiceKind::ExternalName(_) => {}
                }
            }
        }
        if out.is_empty() {
            if let Some(n) = self.default_ns_name() {
                out = self.cfg.ns_addresses.iter().map(|a| (n.clone(), *a)).collect();
            }
        }
        out
    }

    /// `ns.dns.<zone>`.
    pub fn default_ns_name(&self) -> Option<Name> {
        names::join(&["ns", "dns"], &self.zone.name)
    }
}
