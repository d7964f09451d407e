//! The routing table: what the data plane consults for every request, built as one immutable
//! value from a snapshot of the cluster ([`Cluster`] → [`RouteTable`]) and swapped in whole, so a
//! change never shows half-applied and never needs a reload.
//!
//! Building follows the Kubernetes Ingress specification and ingress-nginx's choices where the
//! specification leaves room: only Ingresses of podnet's classes count; rules of every such
//! Ingress are merged per host (a path both define goes to the older Ingress); within a host the
//! longest path wins and `Exact` beats `Prefix` on a tie; a host with no matching path, and a
//! request for no known host, go to the default backend (an Ingress's `defaultBackend`, else
//! 404). Backends are the Service's ready endpoints from its EndpointSlices, not its ClusterIP.
//! Canary Ingresses attach to the main Ingress's route of the same host and path. An invalid
//! Ingress is reported in [`RouteTable::problems`] and left out; the others are unaffected.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend, IngressClass};

use crate::annotations::{self, BackendProtocol, Canary, Settings};
use crate::paths::{HostPattern, PathRule};
use crate::tls::{self, Certificate};

/// The `spec.controller` of podnet's IngressClasses.
pub const CONTROLLER: &str = "podnet.io/ingress-controller";
/// The annotation that makes an IngressClass the default for class-less Ingresses.
pub const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";
/// The deprecated class annotation, still honoured as ingress-nginx does.
pub const CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

/// Everything the table is built from (the reflectors' contents).
#[derive(Debug, Default, Clone)]
pub struct Cluster {
    pub ingresses: Vec<Arc<Ingress>>,
    pub classes: Vec<Arc<IngressClass>>,
    pub services: Vec<Arc<Service>>,
    pub slices: Vec<Arc<EndpointSlice>>,
    pub secrets: Vec<Arc<Secret>>,
}

/// Which Ingresses are podnet's.
#[derive(Debug, Clone)]
pub struct ClassPolicy {
    /// The `spec.controller` value podnet answers for.
    pub controller: String,
    /// Also take Ingresses with no class at all when no class is marked default
    /// (ingress-nginx's `--watch-ingress-without-class`).
    pub watch_without_class: bool,
}

impl Default for ClassPolicy {
    fn default() -> Self {
        ClassPolicy { controller: CONTROLLER.into(), watch_without_class: false }
    }
}

/// `namespace/name` of an Ingress.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IngressRef {
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for IngressRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A Service port's endpoints: where requests for one backend go.
#[derive(Debug)]
pub struct Upstream {
    /// `namespace-service-port`, as ingress-nginx names its upstreams (used in metrics).
    pub name: String,
    pub namespace: String,
    pub service: String,
    /// Ready endpoints, sorted.
    pub endpoints: Vec<SocketAddr>,
    pub protocol: BackendProtocol,
    /// Round-robin position (starts afresh with each table; harmless).
    pub next: AtomicUsize,
}

/// The canary alternative of a route.
#[derive(Debug)]
pub struct CanaryRoute {
    pub ingress: IngressRef,
    pub rule: Canary,
    pub upstream: Arc<Upstream>,
    pub settings: Arc<Settings>,
}

/// One path of one host.
#[derive(Debug)]
pub struct Route {
    pub path: PathRule,
    pub ingress: IngressRef,
    pub settings: Arc<Settings>,
    pub upstream: Arc<Upstream>,
    pub canary: Option<CanaryRoute>,
}

/// A virtual host: the merged rules of every Ingress naming it.
#[derive(Debug, Default)]
pub struct Server {
    /// Routes in precedence order: the first that matches wins.
    pub routes: Vec<Route>,
    /// Whether a TLS section names this host (HTTP is then redirected, per `ssl-redirect`).
    pub tls: bool,
    /// For paths no route matches (an Ingress's `defaultBackend`); `None` → 404.
    pub default_backend: Option<Arc<Upstream>>,
}

impl Server {
    /// The route for `path`, if any.
    pub fn route(&self, path: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.path.matches(path))
    }
}

/// An Ingress left out, or a part of one that could not be served, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub ingress: IngressRef,
    /// Whether the whole Ingress was left out (`Warning` event) or only part of it.
    pub rejected: bool,
    pub message: String,
}

/// The routing table.
#[derive(Debug, Default)]
pub struct RouteTable {
    pub exact: HashMap<String, Server>,
    /// Keyed by the part after `*.`.
    pub wildcard: HashMap<String, Server>,
    /// Rules without a host; also where unknown hosts go.
    pub catch_all: Server,
    /// TLS certificates by host pattern.
    pub certificates: BTreeMap<HostPattern, Arc<Certificate>>,
    /// The Ingresses of podnet's classes that were served (for status updates).
    pub served: Vec<IngressRef>,
    pub problems: Vec<Problem>,
}

impl RouteTable {
    /// The server for a request host (lowercase, no port): exact, then wildcard, then catch-all.
    pub fn server(&self, host: &str) -> &Server {
        if let Some(s) = self.exact.get(host) {
            return s;
        }
        if let Some((_, rest)) = host.split_once('.') {
            if let Some(s) = self.wildcard.get(rest) {
                return s;
            }
        }
        &self.catch_all
    }

    /// The certificate for an SNI name, exact before wildcard.
    pub fn certificate(&self, sni: &str) -> Option<&Arc<Certificate>> {
        let sni = sni.to_ascii_lowercase();
        self.certificates.get(&HostPattern::Exact(sni.clone())).or_else(|| {
            let (_, rest) = sni.split_once('.')?;
            self.certificates.get(&HostPattern::Wildcard(rest.into()))
        })
    }

    /// Whether HTTPS is configured for `host`.
    pub fn has_tls(&self, host: &str) -> bool {
        self.server(host).tls || self.certificate(host).is_some()
    }
}

/// Whether `ing` belongs to podnet under `policy`, given the cluster's classes.
pub fn is_ours(ing: &Ingress, classes: &[Arc<IngressClass>], policy: &ClassPolicy) -> bool {
    let ours = |name: &str| {
        classes.iter().any(|c| {
            c.metadata.name.as_deref() == Some(name)
                && c.spec.as_ref().and_then(|s| s.controller.as_deref()) == Some(policy.controller.as_str())
        })
    };
    if let Some(name) = ing.spec.as_ref().and_then(|s| s.ingress_class_name.as_deref()) {
        return ours(name);
    }
    if let Some(name) = ing.metadata.annotations.as_ref().and_then(|a| a.get(CLASS_ANNOTATION)) {
        return ours(name);
    }
    let default_class = classes.iter().find(|c| {
        c.metadata.annotations.as_ref().and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION)).map(String::as_str)
            == Some("true")
    });
    match default_class {
        Some(c) => c.spec.as_ref().and_then(|s| s.controller.as_deref()) == Some(policy.controller.as_str()),
        None => policy.watch_without_class,
    }
}

/// One Ingress's contribution before merging.
struct Parsed {
    id: IngressRef,
    settings: Arc<Settings>,
    /// (host or None, path rule, backend)
    paths: Vec<(Option<HostPattern>, PathRule, Arc<Upstream>)>,
    default_backend: Option<Arc<Upstream>>,
    tls_hosts: Vec<(HostPattern, Option<String>)>,
}

/// Builds the table from `cluster`.
pub fn build(cluster: &Cluster, policy: &ClassPolicy) -> RouteTable {
    let mut table = RouteTable::default();
    let mut ingresses: Vec<&Arc<Ingress>> =
        cluster.ingresses.iter().filter(|i| is_ours(i, &cluster.classes, policy)).collect();
    // Oldest first: on conflicts the older Ingress keeps the path (as ingress-nginx).
    ingresses.sort_by(|a, b| {
        let key = |i: &Ingress| {
            (i.metadata.creation_timestamp.clone().map(|t| t.0), i.metadata.namespace.clone(), i.metadata.name.clone())
        };
        key(a).cmp(&key(b))
    });
    let endpoints = EndpointIndex::new(&cluster.services, &cluster.slices);
    let mut upstreams: HashMap<(String, String, String), Arc<Upstream>> = HashMap::new();
    let mut mains = Vec::new();
    let mut canaries = Vec::new();
    let mut problems = Vec::new();
    for ing in ingresses {
        let id = IngressRef {
            namespace: ing.metadata.namespace.clone().unwrap_or_default(),
            name: ing.metadata.name.clone().unwrap_or_default(),
        };
        match parse_ingress(ing, &id, &endpoints, &mut upstreams) {
            Ok(p) => {
                table.served.push(id);
                if p.settings.canary.is_some() {
                    canaries.push(p);
                } else {
                    mains.push(p);
                }
            }
            Err(message) => problems.push(Problem { ingress: id, rejected: true, message }),
        }
    }
    for p in &mains {
        for (host, rule, upstream) in &p.paths {
            let server = server_mut(&mut table, host.as_ref());
            if let Some(existing) = server.routes.iter().find(|r| r.path.same_as(rule)) {
                let message = format!(
                    "host {} path {:?} is already served by Ingress {}; this rule is ignored",
                    host.as_ref().map(|h| h.to_string()).unwrap_or_else(|| "*".into()),
                    rule.path,
                    existing.ingress
                );
                problems.push(Problem { ingress: p.id.clone(), rejected: false, message });
                continue;
            }
            server.routes.push(Route {
                path: rule.clone(),
                ingress: p.id.clone(),
                settings: p.settings.clone(),
                upstream: upstream.clone(),
                canary: None,
            });
        }
        if let Some(default) = &p.default_backend {
            let hosts: Vec<Option<HostPattern>> = p.paths.iter().map(|(h, _, _)| h.clone()).collect();
            for host in hosts.into_iter().chain([None]) {
                server_mut(&mut table, host.as_ref()).default_backend.get_or_insert_with(|| default.clone());
            }
        }
    }
    for c in &canaries {
        for (host, rule, upstream) in &c.paths {
            let server = server_mut(&mut table, host.as_ref());
            match server.routes.iter_mut().find(|r| r.path.same_as(rule)) {
                Some(route) if route.canary.is_none() => {
                    route.canary = Some(CanaryRoute {
                        ingress: c.id.clone(),
                        rule: c.settings.canary.clone().unwrap_or_default(),
                        upstream: upstream.clone(),
                        settings: c.settings.clone(),
                    })
                }
                Some(route) => problems.push(Problem {
                    ingress: c.id.clone(),
                    rejected: false,
                    message: format!(
                        "path {:?} already has a canary ({})",
                        rule.path,
                        route.canary.as_ref().map(|c| c.ingress.to_string()).unwrap_or_default()
                    ),
                }),
                None => problems.push(Problem {
                    ingress: c.id.clone(),
                    rejected: false,
                    message: format!("canary path {:?}: no main Ingress serves it; ignored", rule.path),
                }),
            }
        }
    }
    // ingress-nginx renders every path of a host as a regex once one Ingress there uses them.
    for server in table.exact.values_mut().chain(table.wildcard.values_mut()).chain([&mut table.catch_all]) {
        if server.routes.iter().any(|r| r.settings.regex_paths()) {
            for r in &mut server.routes {
                if !r.settings.regex_paths() {
                    if let Ok(rule) = regex_variant(&r.path) {
                        r.path = rule;
                    }
                }
            }
        }
        server.routes.sort_by_key(|r| r.path.precedence());
    }
    // TLS: each host of each tls section, with its Secret (a missing or bad one → the default
    // certificate, and a problem report).
    for p in mains.iter().chain(&canaries) {
        for (host, secret) in &p.tls_hosts {
            if let Some(server) = match host {
                HostPattern::Exact(h) => table.exact.get_mut(h),
                HostPattern::Wildcard(s) => table.wildcard.get_mut(s),
            } {
                server.tls = true;
            }
            let Some(secret_name) = secret else { continue };
            if table.certificates.contains_key(host) {
                continue;
            }
            match load_certificate(&cluster.secrets, &p.id.namespace, secret_name) {
                Ok(cert) => {
                    table.certificates.insert(host.clone(), cert);
                }
                Err(message) => problems.push(Problem { ingress: p.id.clone(), rejected: false, message }),
            }
        }
    }
    table.problems = problems;
    table
}

fn server_mut<'t>(table: &'t mut RouteTable, host: Option<&HostPattern>) -> &'t mut Server {
    match host {
        Some(HostPattern::Exact(h)) => table.exact.entry(h.clone()).or_default(),
        Some(HostPattern::Wildcard(s)) => table.wildcard.entry(s.clone()).or_default(),
        None => &mut table.catch_all,
    }
}

/// The regex form of a non-regex rule, for hosts where ingress-nginx enforces regexes.
fn regex_variant(rule: &PathRule) -> Result<PathRule, crate::paths::PathError> {
    match rule.matcher {
        crate::paths::PathMatch::Prefix(_) => PathRule::new("Prefix", &regex::escape(&rule.path), true).map(|mut r| {
            r.path = rule.path.clone();
            r
        }),
        _ => Ok(rule.clone()),
    }
}

fn parse_ingress(
    ing: &Ingress,
    id: &IngressRef,
    endpoints: &EndpointIndex,
    upstreams: &mut HashMap<(String, String, String), Arc<Upstream>>,
) -> Result<Parsed, String> {
    let settings =
        Arc::new(annotations::parse(&ing.metadata.annotations.clone().unwrap_or_default()).map_err(|e| e.to_string())?);
    let spec = ing.spec.as_ref().ok_or("no spec")?;
    let mut upstream = |b: &IngressBackend| -> Result<Arc<Upstream>, String> {
        let svc = b.service.as_ref().ok_or("resource backends are not supported (only service backends)")?;
        let port = svc.port.as_ref().ok_or_else(|| format!("backend service {}: no port", svc.name))?;
        let port_key = match (&port.name, port.number) {
            (Some(n), _) if !n.is_empty() => n.clone(),
            (_, Some(n)) => n.to_string(),
            _ => return Err(format!("backend service {}: port needs a name or a number", svc.name)),
        };
        let key = (id.namespace.clone(), svc.name.clone(), port_key.clone());
        let protocol = settings.backend_protocol;
        Ok(upstreams
            .entry(key)
            .or_insert_with(|| {
                Arc::new(Upstream {
                    name: format!("{}-{}-{}", id.namespace, svc.name, port_key),
                    namespace: id.namespace.clone(),
                    service: svc.name.clone(),
                    endpoints: endpoints.resolve(&id.namespace, &svc.name, port.name.as_deref(), port.number),
                    protocol,
                    next: AtomicUsize::new(0),
                })
            })
            .clone())
    };
    let default_backend = spec.default_backend.as_ref().map(&mut upstream).transpose()?;
    let mut paths = Vec::new();
    for rule in spec.rules.iter().flatten() {
        let host = match rule.host.as_deref() {
            None | Some("") => None,
            Some(h) => {
                Some(HostPattern::parse(h).ok_or_else(|| format!("host {h:?} is not a valid DNS name or wildcard"))?)
            }
        };
        for p in rule.http.iter().flat_map(|h| &h.paths) {
            let path = p.path.as_deref().unwrap_or("/");
            let rule = PathRule::new(&p.path_type, path, settings.regex_paths()).map_err(|e| e.to_string())?;
            paths.push((host.clone(), rule, upstream(&p.backend)?));
        }
    }
    let mut tls_hosts = Vec::new();
    for t in spec.tls.iter().flatten() {
        for h in t.hosts.iter().flatten() {
            let pattern =
                HostPattern::parse(h).ok_or_else(|| format!("tls host {h:?} is not a valid DNS name or wildcard"))?;
            tls_hosts.push((pattern, t.secret_name.clone().filter(|s| !s.is_empty())));
        }
    }
    if paths.is_empty() && default_backend.is_none() {
        return Err("no rules with paths and no defaultBackend".into());
    }
    Ok(Parsed { id: id.clone(), settings, paths, default_backend, tls_hosts })
}

fn load_certificate(secrets: &[Arc<Secret>], namespace: &str, name: &str) -> Result<Arc<Certificate>, String> {
    let secret = secrets
        .iter()
        .find(|s| s.metadata.namespace.as_deref() == Some(namespace) && s.metadata.name.as_deref() == Some(name))
        .ok_or_else(|| format!("TLS secret {namespace}/{name} not found; the default certificate is used"))?;
    let data = secret.data.as_ref();
    let get = |k: &str| data.and_then(|d| d.get(k)).map(|b| b.0.as_slice());
    let (Some(cert), Some(key)) = (get("tls.crt"), get("tls.key")) else {
        return Err(format!("TLS secret {namespace}/{name} lacks tls.crt or tls.key; the default certificate is used"));
    };
    tls::Certificate::from_pem(&format!("{namespace}/{name}"), cert, key)
        .map(Arc::new)
        .map_err(|e| format!("TLS secret {namespace}/{name}: {e}; the default certificate is used"))
}

/// Services and their ready endpoints, indexed for backend resolution.
struct EndpointIndex<'a> {
    services: HashMap<(&'a str, &'a str), &'a Service>,
    slices: HashMap<(&'a str, &'a str), Vec<&'a EndpointSlice>>,
}

impl<'a> EndpointIndex<'a> {
    fn new(services: &'a [Arc<Service>], slices: &'a [Arc<EndpointSlice>]) -> Self {
        let mut index = EndpointIndex { services: HashMap::new(), slices: HashMap::new() };
        for s in services {
            if let (Some(ns), Some(name)) = (s.metadata.namespace.as_deref(), s.metadata.name.as_deref()) {
                index.services.insert((ns, name), s);
            }
        }
        for s in slices {
            let svc = s.metadata.labels.as_ref().and_then(|l| l.get("kubernetes.io/service-name"));
            if let (Some(ns), Some(svc)) = (s.metadata.namespace.as_deref(), svc) {
                index.slices.entry((ns, svc.as_str())).or_default().push(s);
            }
        }
        index
    }

    /// The ready endpoints of the service port named or numbered so (none when the service or
    /// port is missing: requests get 503).
    fn resolve(&self, ns: &str, svc: &str, port_name: Option<&str>, port_number: Option<i32>) -> Vec<SocketAddr> {
        let Some(service) = self.services.get(&(ns, svc)) else { return Vec::new() };
        let Some(port) = service.spec.iter().flat_map(|s| s.ports.iter().flatten()).find(|p| match port_name {
            Some(n) if !n.is_empty() => p.name.as_deref() == Some(n),
            _ => Some(p.port) == port_number,
        }) else {
            return Vec::new();
        };
        let proto = port.protocol.as_deref().unwrap_or("TCP");
        let mut out = Vec::new();
        for slice in self.slices.get(&(ns, svc)).into_iter().flatten() {
            let Some(target) = slice.ports.iter().flatten().find(|p| {
                p.name.as_deref().unwrap_or("") == port.name.as_deref().unwrap_or("")
                    && p.protocol.as_deref().unwrap_or("TCP") == proto
            }) else {
                continue;
            };
            let Some(number) = target.port.and_then(|p| u16::try_from(p).ok()) else { continue };
            for ep in &slice.endpoints {
                if ep.conditions.as_ref().and_then(|c| c.ready) == Some(false) {
                    continue;
                }
                for a in &ep.addresses {
                    if let Ok(ip) = a.parse::<IpAddr>() {
                        out.push(SocketAddr::new(ip, number));
                    }
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests;
