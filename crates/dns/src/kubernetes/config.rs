//! The `kubernetes` plugin's settings, as a Corefile block gives them:
//!
//! ```text
//! kubernetes [ZONES...] {
//!     pods disabled|insecure|verified
//!     fallthrough [ZONES...]
//!     ttl SECONDS
//!     endpoint_pod_names
//!     namespaces NAMESPACE...
//!     noendpoints
//!     ignore empty_service
//! }
//! ```
//!
//! Zones are domain names or CIDRs (`10.0.0.0/8` stands for `10.in-addr.arpa.`; a prefix that is
//! not on an octet — or, for IPv6, nibble — boundary expands to every reverse zone it covers, as
//! CoreDNS does).

use std::collections::BTreeSet;
use std::net::IpAddr;

use hickory_proto::rr::Name;
use ipnet::IpNet;

/// How `<a-b-c-d>.<namespace>.pod.<zone>` is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PodMode {
    /// No pod records (NXDOMAIN), CoreDNS's default.
    #[default]
    Disabled,
    /// Any well-formed address in an existing namespace is answered, pod or not (kube-dns's way).
    Insecure,
    /// Only addresses of pods that exist in that namespace (needs a watch on pods).
    Verified,
}

/// A setting the plugin cannot take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid zone {0:?}")]
    Zone(String),
    #[error("unknown kubernetes option {0:?}")]
    UnknownOption(String),
    #[error("kubernetes option {option}: {reason}")]
    Value { option: String, reason: String },
}

/// What the `kubernetes` plugin serves and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubernetesConfig {
    /// The zones answered, lowercase and fully qualified (the first forward zone is the one PTR
    /// targets are written in).
    pub zones: Vec<Name>,
    pub pods: PodMode,
    /// `None`: NXDOMAIN is final. `Some(zones)`: an NXDOMAIN for a name in one of `zones` (all
    /// names when empty) goes to the next plugin instead.
    pub fallthrough: Option<Vec<Name>>,
    /// TTL of every record but `dns-version` (0 to 3600, default 5).
    pub ttl: u32,
    /// Endpoints without a hostname are named after their pod rather than their address.
    pub endpoint_pod_names: bool,
    /// When not empty, only these namespaces are served.
    pub namespaces: BTreeSet<String>,
    /// No endpoint records: headless services and endpoint names are NXDOMAIN.
    pub noendpoints: bool,
    /// `ignore empty_service`: a ClusterIP service without ready endpoints is NXDOMAIN.
    pub ignore_empty_service: bool,
    /// This server's own addresses, for the zone's NS records and `ns.dns.<zone>`.
    pub ns_addresses: Vec<IpAddr>,
}

/// The largest TTL the `ttl` option takes.
pub const MAX_TTL: u32 = 3600;
/// The default TTL.
pub const DEFAULT_TTL: u32 = 5;

impl Default for KubernetesConfig {
    fn default() -> Self {
        KubernetesConfig {
            zones: vec![Name::from_ascii("cluster.local.").expect("static name")],
            pods: PodMode::Disabled,
            fallthrough: None,
            ttl: DEFAULT_TTL,
            endpoint_pod_names: false,
            namespaces: BTreeSet::new(),
            noendpoints: false,
            ignore_empty_service: false,
            ns_addresses: Vec::new(),
        }
    }
}

impl KubernetesConfig {
    /// A configuration for `zones` (names or CIDRs) with every option at its default.
    pub fn new<S: AsRef<str>>(zones: impl IntoIterator<Item = S>) -> Result<Self, ConfigError> {
        let mut zs = Vec::new();
        for z in zones {
            for n in parse_zone(z.as_ref())? {
                if !zs.contains(&n) {
                    zs.push(n);
                }
            }
        }
        if zs.is_empty() {
            return Err(ConfigError::Zone(String::new()));
        }
        Ok(KubernetesConfig { zones: zs, ..KubernetesConfig::default() })
    }

    /// Applies one option line of the plugin's block (`name` and its arguments).
    pub fn set_option(&mut self, name: &str, args: &[&str]) -> Result<(), ConfigError> {
        let bad = |reason: &str| ConfigError::Value { option: name.to_string(), reason: reason.to_string() };
        match name {
            "pods" => {
                let [mode] = args else { return Err(bad("takes one of disabled, insecure, verified")) };
                self.pods = match *mode {
                    "disabled" => PodMode::Disabled,
                    "insecure" => PodMode::Insecure,
                    "verified" => PodMode::Verified,
                    _ => return Err(bad("takes one of disabled, insecure, verified")),
                };
            }
            "fallthrough" => {
                let mut zones = Vec::new();
                for a in args {
                    zones.extend(parse_zone(a)?);
                }
                self.fallthrough = Some(zones);
            }
            "ttl" => {
                let [v] = args else { return Err(bad("takes one number of seconds")) };
                let ttl: u32 = v.parse().map_err(|_| bad("not a number of seconds"))?;
                if ttl > MAX_TTL {
                    return Err(bad("must be at most 3600"));
                }
                self.ttl = ttl;
            }
            "endpoint_pod_names" => {
                if !args.is_empty() {
                    return Err(bad("takes no argument"));
                }
                self.endpoint_pod_names = true;
            }
            "noendpoints" => {
                if !args.is_empty() {
                    return Err(bad("takes no argument"));
                }
                self.noendpoints = true;
            }
            "ignore" => {
                if args != ["empty_service"] {
                    return Err(bad("takes empty_service"));
                }
                self.ignore_empty_service = true;
            }
            "namespaces" => {
                if args.is_empty() {
                    return Err(bad("takes at least one namespace"));
                }
                self.namespaces.extend(args.iter().map(|a| a.to_string()));
            }
            other => return Err(ConfigError::UnknownOption(other.to_string())),
        }
        Ok(())
    }

    /// Whether an NXDOMAIN for `name` goes to the next plugin.
    pub fn falls_through(&self, name: &Name) -> bool {
        match &self.fallthrough {
            None => false,
            Some(zones) if zones.is_empty() => true,
            Some(zones) => zones.iter().any(|z| z.zone_of(name)),
        }
    }

    /// Whether the `namespaces` option lets `ns` be served.
    pub fn namespace_configured(&self, ns: &str) -> bool {
        self.namespaces.is_empty() || self.namespaces.contains(ns)
    }

    /// The zone PTR answers point into: the first zone that is not a reverse zone.
    pub fn primary_zone(&self) -> &Name {
        self.zones.iter().find(|z| !is_reverse_zone(z)).or(self.zones.first()).expect("at least one zone")
    }
}

/// Whether `name` lies under `in-addr.arpa.` or `ip6.arpa.`.
pub fn is_reverse_zone(name: &Name) -> bool {
    let v4 = Name::from_ascii("in-addr.arpa.").expect("static name");
    let v6 = Name::from_ascii("ip6.arpa.").expect("static name");
    v4.zone_of(name) || v6.zone_of(name)
}

/// A zone argument: a domain name, or a CIDR standing for the reverse zones it covers.
pub fn parse_zone(arg: &str) -> Result<Vec<Name>, ConfigError> {
    if arg.contains('/') {
        let net: IpNet = arg.parse().map_err(|_| ConfigError::Zone(arg.to_string()))?;
        return Ok(reverse_zones(net.trunc()));
    }
    let mut n = Name::from_ascii(arg).map_err(|_| ConfigError::Zone(arg.to_string()))?;
    n.set_fqdn(true);
    Ok(vec![n.to_lowercase()])
}

/// The reverse zones covering `net`, widened to octet (IPv4) or nibble (IPv6) boundaries.
fn reverse_zones(net: IpNet) -> Vec<Name> {
    let (step, bits, suffix) = match net {
        IpNet::V4(_) => (8u8, 32u8, "in-addr.arpa."),
        IpNet::V6(_) => (4u8, 128u8, "ip6.arpa."),
    };
    let prefix = net.prefix_len();
    let boundary = prefix.div_ceil(step) * step;
    let subnets: Vec<IpNet> = match net.subnets(boundary.min(bits)) {
        Ok(s) => s.collect(),
        Err(_) => vec![net],
    };
    subnets
        .into_iter()
        .map(|sub| {
            let labels = boundary.min(bits) / step;
            let text = match sub.network() {
                IpAddr::V4(a) => {
                    let o = a.octets();
                    (0..labels as usize).rev().map(|i| o[i].to_string()).collect::<Vec<_>>().join(".")
                }
                IpAddr::V6(a) => {
                    let nibbles: Vec<u8> = a.octets().iter().flat_map(|b| [b >> 4, b & 0xf]).collect();
                    (0..labels as usize).rev().map(|i| format!("{:x}", nibbles[i])).collect::<Vec<_>>().join(".")
                }
            };
            let full = if text.is_empty() { suffix.to_string() } else { format!("{text}.{suffix}") };
            Name::from_ascii(full).expect("reverse zone name")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[Name]) -> Vec<String> {
        v.iter().map(|n| n.to_ascii()).collect()
    }

    #[test]
    fn zones_from_names_and_cidrs() {
        assert_eq!(names(&parse_zone("Cluster.Local").unwrap()), ["cluster.local."]);
        assert_eq!(names(&parse_zone("10.0.0.0/8").unwrap()), ["10.in-addr.arpa."]);
        assert_eq!(names(&parse_zone("10.96.0.0/24").unwrap()), ["0.96.10.in-addr.arpa."]);
        assert_eq!(
            names(&parse_zone("10.96.0.0/22").unwrap()),
            ["0.96.10.in-addr.arpa.", "1.96.10.in-addr.arpa.", "2.96.10.in-addr.arpa.", "3.96.10.in-addr.arpa."]
        );
        assert_eq!(names(&parse_zone("fd00::/8").unwrap()), ["d.f.ip6.arpa."]);
        assert_eq!(names(&parse_zone("fd00::/7").unwrap()), ["c.f.ip6.arpa.", "d.f.ip6.arpa."]);
        assert!(parse_zone("10.0.0.0/33").is_err());
    }

    #[test]
    fn options() {
        let mut c = KubernetesConfig::new(["cluster.local", "in-addr.arpa", "ip6.arpa"]).unwrap();
        c.set_option("pods", &["insecure"]).unwrap();
        c.set_option("fallthrough", &["in-addr.arpa", "ip6.arpa"]).unwrap();
        c.set_option("ttl", &["30"]).unwrap();
        c.set_option("endpoint_pod_names", &[]).unwrap();
        c.set_option("namespaces", &["default", "kube-system"]).unwrap();
        c.set_option("noendpoints", &[]).unwrap();
        c.set_option("ignore", &["empty_service"]).unwrap();
        assert!(c.ignore_empty_service);
        assert_eq!(c.pods, PodMode::Insecure);
        assert_eq!(c.ttl, 30);
        assert!(c.endpoint_pod_names && c.noendpoints);
        assert!(c.namespace_configured("default") && !c.namespace_configured("other"));
        assert!(c.falls_through(&Name::from_ascii("1.0.96.10.in-addr.arpa.").unwrap()));
        assert!(!c.falls_through(&Name::from_ascii("x.default.svc.cluster.local.").unwrap()));
        assert_eq!(c.primary_zone().to_ascii(), "cluster.local.");
        assert!(c.set_option("ttl", &["3601"]).is_err());
        assert!(c.set_option("pods", &["maybe"]).is_err());
        assert!(matches!(c.set_option("upstream", &[]), Err(ConfigError::UnknownOption(_))));
        c.set_option("fallthrough", &[]).unwrap();
        assert!(c.falls_through(&Name::from_ascii("anything.example.").unwrap()));
    }
}
