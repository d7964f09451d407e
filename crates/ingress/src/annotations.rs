//! The `nginx.ingress.kubernetes.io/*` annotations podnet understands, parsed into typed
//! [`Settings`] — so that manifests written for ingress-nginx work unchanged. Parsing is pure
//! and strict: a bad value is an [`AnnotationError`] naming the annotation, and the controller
//! skips that Ingress (with an event) instead of guessing. Nothing from an annotation is ever
//! executed: there are no configuration snippets.

use std::collections::BTreeMap;
use std::time::Duration;

use ipnet::IpNet;

/// The annotation prefix ingress-nginx reads (its `--annotations-prefix` default).
pub const PREFIX: &str = "nginx.ingress.kubernetes.io/";

/// A value podnet cannot accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("annotation {PREFIX}{name}: {problem}")]
pub struct AnnotationError {
    pub name: &'static str,
    pub problem: String,
}

/// The protocol spoken to the backends (`backend-protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendProtocol {
    #[default]
    Http,
    Https,
    /// gRPC over cleartext HTTP/2.
    Grpc,
    /// gRPC over TLS.
    Grpcs,
}

/// How a route spreads requests over its endpoints (`load-balance`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LoadBalance {
    #[default]
    RoundRobin,
    /// Peak exponentially weighted moving average of response times (ingress-nginx's `ewma`).
    Ewma,
}

/// Cookie session affinity (`affinity: cookie`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieAffinity {
    /// `session-cookie-name`, default `INGRESSCOOKIE`.
    pub name: String,
    /// `session-cookie-path`; the route's path when unset.
    pub path: Option<String>,
    /// `session-cookie-max-age` in seconds; a session cookie when unset.
    pub max_age: Option<u64>,
}

/// Which requests a canary Ingress takes from the main one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Canary {
    /// `canary-by-header`: the header whose value `always` (or `canary-by-header-value`)
    /// routes to the canary and `never` away from it.
    pub header: Option<String>,
    pub header_value: Option<String>,
    /// `canary-by-cookie`: the cookie whose value `always` / `never` decides.
    pub cookie: Option<String>,
    /// `canary-weight` out of `canary-weight-total` (default 100).
    pub weight: u32,
    pub weight_total: u32,
}

/// CORS answers (`enable-cors` and its `cors-*` companions), with ingress-nginx's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cors {
    pub allow_origin: String,
    pub allow_methods: String,
    pub allow_headers: String,
    pub allow_credentials: bool,
    pub expose_headers: Option<String>,
    pub max_age: u64,
}

impl Default for Cors {
    fn default() -> Self {
        Cors {
            allow_origin: "*".into(),
            allow_methods: "GET, PUT, POST, DELETE, PATCH, OPTIONS".into(),
            allow_headers: "DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,Authorization".into(),
            allow_credentials: true,
            expose_headers: None,
            max_age: 1728000,
        }
    }
}

/// One Ingress's settings, from its annotations (defaults where absent, as ingress-nginx's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `rewrite-target`: the new path, `$1`… replaced by the path regex's capture groups.
    pub rewrite_target: Option<String>,
    /// `use-regex`: paths are case-insensitive regexes anchored at the start.
    pub use_regex: bool,
    /// `ssl-redirect` (default true): HTTP → HTTPS (308) when the host has TLS.
    pub ssl_redirect: bool,
    /// `force-ssl-redirect`: HTTP → HTTPS (308) even without TLS for the host.
    pub force_ssl_redirect: bool,
    pub backend_protocol: BackendProtocol,
    /// `proxy-body-size` in bytes (default 1m); `None` for unlimited (`0`).
    pub proxy_body_size: Option<u64>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub send_timeout: Duration,
    pub affinity: Option<CookieAffinity>,
    /// `whitelist-source-range` (or `allowlist-source-range`): clients outside get 403.
    pub allow_source: Vec<IpNet>,
    /// Set when `canary: "true"`.
    pub canary: Option<Canary>,
    pub cors: Option<Cors>,
    pub load_balance: LoadBalance,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            rewrite_target: None,
            use_regex: false,
            ssl_redirect: true,
            force_ssl_redirect: false,
            backend_protocol: BackendProtocol::Http,
            proxy_body_size: Some(1024 * 1024),
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
            affinity: None,
            allow_source: Vec::new(),
            canary: None,
            cors: None,
            load_balance: LoadBalance::RoundRobin,
        }
    }
}

impl Settings {
    /// Whether the route's paths are matched as regexes (`use-regex`, or a `rewrite-target`,
    /// which makes ingress-nginx render a regex location too).
    pub fn regex_paths(&self) -> bool {
        self.use_regex || self.rewrite_target.is_some()
    }
}

/// Parses the annotations of one Ingress. Annotations outside [`PREFIX`] are ignored, as are
/// ingress-nginx annotations podnet does not implement.
pub fn parse(annotations: &BTreeMap<String, String>) -> Result<Settings, AnnotationError> {
    let get = |name: &str| annotations.get(&format!("{PREFIX}{name}")).map(|v| v.trim());
    let mut s = Settings::default();
    if let Some(v) = get("rewrite-target") {
        if !v.is_empty() {
            s.rewrite_target = Some(v.to_string());
        }
    }
    if let Some(v) = get("use-regex") {
        s.use_regex = boolean("use-regex", v)?;
    }
    if let Some(v) = get("ssl-redirect") {
        s.ssl_redirect = boolean("ssl-redirect", v)?;
    }
    if let Some(v) = get("force-ssl-redirect") {
        s.force_ssl_redirect = boolean("force-ssl-redirect", v)?;
    }
    if let Some(v) = get("backend-protocol") {
        s.backend_protocol = match v.to_ascii_uppercase().as_str() {
            "HTTP" => BackendProtocol::Http,
            "HTTPS" => BackendProtocol::Https,
            "GRPC" => BackendProtocol::Grpc,
            "GRPCS" => BackendProtocol::Grpcs,
            _ => return Err(bad("backend-protocol", format!("{v:?}: expected HTTP, HTTPS, GRPC or GRPCS"))),
        };
    }
    if let Some(v) = get("proxy-body-size") {
        s.proxy_body_size = match size("proxy-body-size", v)? {
            0 => None,
            n => Some(n),
        };
    }
    if let Some(v) = get("proxy-connect-timeout") {
        s.connect_timeout = seconds("proxy-connect-timeout", v)?;
    }
    if let Some(v) = get("proxy-read-timeout") {
        s.read_timeout = seconds("proxy-read-timeout", v)?;
    }
    if let Some(v) = get("proxy-send-timeout") {
        s.send_timeout = seconds("proxy-send-timeout", v)?;
    }
    if let Some(v) = get("affinity") {
        match v {
            "cookie" => {
                let max_age = match get("session-cookie-max-age") {
                    Some(v) => {
                        Some(v.parse().map_err(|_| bad("session-cookie-max-age", format!("{v:?}: expected seconds")))?)
                    }
                    None => None,
                };
                s.affinity = Some(CookieAffinity {
                    name: get("session-cookie-name").filter(|n| !n.is_empty()).unwrap_or("INGRESSCOOKIE").to_string(),
                    path: get("session-cookie-path").map(str::to_string),
                    max_age,
                });
            }
            "" => {}
            _ => return Err(bad("affinity", format!("{v:?}: only \"cookie\" is supported"))),
        }
    }
    let ranges = get("whitelist-source-range").or_else(|| get("allowlist-source-range"));
    if let Some(v) = ranges {
        s.allow_source = v
            .split(',')
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(|r| cidr(r).ok_or_else(|| bad("whitelist-source-range", format!("{r:?} is not a CIDR or address"))))
            .collect::<Result<_, _>>()?;
    }
    if get("canary").map(|v| boolean("canary", v)).transpose()?.unwrap_or(false) {
        let weight = get("canary-weight").map(|v| number("canary-weight", v)).transpose()?.unwrap_or(0);
        let weight_total =
            get("canary-weight-total").map(|v| number("canary-weight-total", v)).transpose()?.unwrap_or(100);
        if weight_total == 0 || weight > weight_total {
            return Err(bad(
                "canary-weight",
                format!("{weight} out of {weight_total}: must be between 0 and the total"),
            ));
        }
        s.canary = Some(Canary {
            header: get("canary-by-header").filter(|h| !h.is_empty()).map(str::to_string),
            header_value: get("canary-by-header-value").filter(|h| !h.is_empty()).map(str::to_string),
            cookie: get("canary-by-cookie").filter(|c| !c.is_empty()).map(str::to_string),
            weight,
            weight_total,
        });
    }
    if get("enable-cors").map(|v| boolean("enable-cors", v)).transpose()?.unwrap_or(false) {
        let mut c = Cors::default();
        if let Some(v) = get("cors-allow-origin") {
            c.allow_origin = v.to_string();
        }
        if let Some(v) = get("cors-allow-methods") {
            c.allow_methods = v.to_string();
        }
        if let Some(v) = get("cors-allow-headers") {
            c.allow_headers = v.to_string();
        }
        if let Some(v) = get("cors-allow-credentials") {
            c.allow_credentials = boolean("cors-allow-credentials", v)?;
        }
        c.expose_headers = get("cors-expose-headers").map(str::to_string);
        if let Some(v) = get("cors-max-age") {
            c.max_age = v.parse().map_err(|_| bad("cors-max-age", format!("{v:?}: expected seconds")))?;
        }
        for (name, value) in [("cors-allow-origin", &c.allow_origin), ("cors-allow-methods", &c.allow_methods)] {
            if value.chars().any(|ch| ch.is_control()) {
                return Err(bad(name, "control characters are not allowed".into()));
            }
        }
        s.cors = Some(c);
    }
    if let Some(v) = get("load-balance") {
        s.load_balance = match v {
            "round_robin" => LoadBalance::RoundRobin,
            "ewma" => LoadBalance::Ewma,
            _ => return Err(bad("load-balance", format!("{v:?}: expected round_robin or ewma"))),
        };
    }
    if let Some(target) = &s.rewrite_target {
        if target.chars().any(|c| c.is_control() || c == ' ') {
            return Err(bad("rewrite-target", format!("{target:?}: spaces and control characters are not allowed")));
        }
    }
    Ok(s)
}

fn bad(name: &'static str, problem: String) -> AnnotationError {
    AnnotationError { name, problem }
}

fn boolean(name: &'static str, v: &str) -> Result<bool, AnnotationError> {
    match v.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(bad(name, format!("{v:?}: expected \"true\" or \"false\""))),
    }
}

fn number(name: &'static str, v: &str) -> Result<u32, AnnotationError> {
    v.parse().map_err(|_| bad(name, format!("{v:?}: expected a whole number")))
}

/// nginx's size syntax: bytes, or a number with k/K, m/M or g/G.
fn size(name: &'static str, v: &str) -> Result<u64, AnnotationError> {
    let (digits, unit) = match v.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&v[..i], c.to_ascii_lowercase()),
        _ => (v, 'b'),
    };
    let n: u64 = digits.parse().map_err(|_| bad(name, format!("{v:?}: expected a size such as 8k, 1m or 0")))?;
    let factor = match unit {
        'b' => 1,
        'k' => 1 << 10,
        'm' => 1 << 20,
        'g' => 1 << 30,
        _ => return Err(bad(name, format!("{v:?}: unknown unit {unit:?} (expected k, m or g)"))),
    };
    n.checked_mul(factor).ok_or_else(|| bad(name, format!("{v:?} is too large")))
}

/// Timeouts are whole seconds, as ingress-nginx takes them (an `s` suffix is tolerated).
fn seconds(name: &'static str, v: &str) -> Result<Duration, AnnotationError> {
    let n: u64 = v.strip_suffix('s').unwrap_or(v).parse().map_err(|_| bad(name, format!("{v:?}: expected seconds")))?;
    if n == 0 {
        return Err(bad(name, "must be at least 1 second".into()));
    }
    Ok(Duration::from_secs(n))
}

fn cidr(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>().ok().or_else(|| s.parse::<std::net::IpAddr>().ok().map(IpNet::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_of(pairs: &[(&str, &str)]) -> Result<Settings, AnnotationError> {
        parse(&pairs.iter().map(|(k, v)| (format!("{PREFIX}{k}"), v.to_string())).collect())
    }

    #[test]
    fn defaults_are_ingress_nginx_defaults() {
        let s = parse_of(&[]).unwrap();
        assert_eq!(s, Settings::default());
        assert!(s.ssl_redirect && !s.force_ssl_redirect && !s.regex_paths());
        assert_eq!(s.proxy_body_size, Some(1 << 20));
        assert_eq!(s.connect_timeout, Duration::from_secs(5));
    }

    #[test]
    fn seed_000_rewrite_target_turns_on_regex_paths() {
        let s = parse_of(&[("rewrite-target", "/")]).unwrap();
        assert_eq!(s.rewrite_target.as_deref(), Some("/"));
        assert!(s.regex_paths());
    }

    #[test]
    fn sizes_timeouts_and_protocols() {
        let s = parse_of(&[
            ("proxy-body-size", "8k"),
            ("proxy-connect-timeout", "2"),
            ("proxy-read-timeout", "120s"),
            ("backend-protocol", "grpc"),
            ("load-balance", "ewma"),
        ])
        .unwrap();
        assert_eq!(s.proxy_body_size, Some(8192));
        assert_eq!(s.connect_timeout, Duration::from_secs(2));
        assert_eq!(s.read_timeout, Duration::from_secs(120));
        assert_eq!(s.backend_protocol, BackendProtocol::Grpc);
        assert_eq!(s.load_balance, LoadBalance::Ewma);
        assert_eq!(parse_of(&[("proxy-body-size", "0")]).unwrap().proxy_body_size, None);
        assert_eq!(parse_of(&[("proxy-body-size", "2M")]).unwrap().proxy_body_size, Some(2 << 20));
    }

    #[test]
    fn canary_affinity_cors_and_ranges() {
        let s = parse_of(&[
            ("canary", "true"),
            ("canary-by-header", "X-Canary"),
            ("canary-weight", "30"),
            ("affinity", "cookie"),
            ("session-cookie-name", "route"),
            ("whitelist-source-range", "10.0.0.0/8, 192.168.1.7"),
            ("enable-cors", "true"),
            ("cors-allow-origin", "https://example.com"),
        ])
        .unwrap();
        let c = s.canary.unwrap();
        assert_eq!((c.header.as_deref(), c.weight, c.weight_total), (Some("X-Canary"), 30, 100));
        assert_eq!(s.affinity.unwrap().name, "route");
        assert_eq!(s.allow_source, vec!["10.0.0.0/8".parse::<IpNet>().unwrap(), "192.168.1.7/32".parse().unwrap()]);
        assert_eq!(s.cors.unwrap().allow_origin, "https://example.com");
        // canary-* without canary: "true" is not a canary
        assert!(parse_of(&[("canary-weight", "50")]).unwrap().canary.is_none());
    }

    #[test]
    fn bad_values_name_the_annotation() {
        for (k, v, says) in [
            ("ssl-redirect", "yes", "ssl-redirect"),
            ("backend-protocol", "FTP", "backend-protocol"),
            ("proxy-body-size", "12x", "unknown unit"),
            ("proxy-read-timeout", "soon", "proxy-read-timeout"),
            ("whitelist-source-range", "10.0.0.0/33", "not a CIDR"),
            ("affinity", "ip", "only \"cookie\""),
            ("rewrite-target", "/a b", "spaces"),
        ] {
            let e = parse_of(&[(k, v)]).unwrap_err().to_string();
            assert!(e.contains(says) && e.contains(PREFIX), "{k}={v}: {e}");
        }
        assert!(parse_of(&[("canary", "true"), ("canary-weight", "101")]).is_err());
    }

    #[test]
    fn other_prefixes_are_ignored() {
        let a = [("kubernetes.io/ingress.class".to_string(), "nginx".to_string())].into();
        assert_eq!(parse(&a).unwrap(), Settings::default());
    }
}
