//! Options of `forward FROM TO... { except NAMES...; force_tcp; prefer_udp; expire DURATION;
//! max_fails N; policy random|round_robin|sequential; health_check DURATION [no_rec] [domain
//! NAME]; max_concurrent N; next RCODE... }`. TO is an address (`8.8.8.8`, `1.1.1.1:53`,
//! `dns://[::1]:53`) or a resolv.conf file, read when the plugin is built.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use hickory_proto::op::ResponseCode;

use super::{Reader, Result};
use crate::corefile::names;
use crate::corefile::Directive;

/// CoreDNS's limit on upstreams.
pub const MAX_UPSTREAMS: usize = 15;

/// One TO argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamSpec {
    Address(SocketAddr),
    /// A resolv.conf whose `nameserver` lines are the upstreams.
    ResolvConf(PathBuf),
}

/// The order upstreams are tried in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    #[default]
    Random,
    RoundRobin,
    Sequential,
}

/// The `forward` plugin's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardOptions {
    /// The zone forwarded (FROM, as zones: a CIDR stands for several).
    pub from: Vec<String>,
    pub to: Vec<UpstreamSpec>,
    /// Names not forwarded (passed to the next plugin).
    pub except: Vec<String>,
    pub force_tcp: bool,
    pub prefer_udp: bool,
    /// How long an idle upstream connection is kept (default 10s).
    pub expire: Duration,
    /// Failed health checks before an upstream is down (default 2; 0 turns checks off).
    pub max_fails: u32,
    pub policy: Policy,
    /// Interval of the health checks of a failing upstream (default 0.5s).
    pub health_check: Duration,
    /// `health_check … no_rec`: checks without the RD bit.
    pub health_check_no_rec: bool,
    /// `health_check … domain NAME`: the name checked (default `.`).
    pub health_check_domain: String,
    /// Queries in flight beyond which new ones get REFUSED (0: no limit).
    pub max_concurrent: usize,
    /// `next RCODE...`: upstream answers with these codes go to the next plugin instead.
    pub next: Vec<ResponseCode>,
}

impl ForwardOptions {
    /// `forward FROM TO…` with no block.
    pub fn new(from: Vec<String>, to: Vec<UpstreamSpec>) -> Self {
        ForwardOptions {
            from,
            to,
            except: Vec::new(),
            force_tcp: false,
            prefer_udp: false,
            expire: Duration::from_secs(10),
            max_fails: 2,
            policy: Policy::Random,
            health_check: Duration::from_millis(500),
            health_check_no_rec: false,
            health_check_domain: ".".into(),
            max_concurrent: 0,
            next: Vec::new(),
        }
    }
}

/// Parses one TO: an address with an optional `dns://` and port, or else a file.
pub fn parse_upstream(s: &str) -> std::result::Result<UpstreamSpec, String> {
    let rest = match s.split_once("://") {
        Some(("dns", rest)) => rest,
        Some((scheme, _)) => return Err(format!("upstream scheme {scheme}:// is not supported")),
        None => s,
    };
    if let Ok(ip) = rest.parse::<IpAddr>() {
        return Ok(UpstreamSpec::Address(SocketAddr::new(ip, 53)));
    }
    if let Ok(addr) = rest.parse::<SocketAddr>() {
        return Ok(UpstreamSpec::Address(addr));
    }
    if rest != s || rest.is_empty() {
        return Err(format!("not an IP address: {s:?}"));
    }
    Ok(UpstreamSpec::ResolvConf(PathBuf::from(s)))
}

fn rcode(name: &str) -> Option<ResponseCode> {
    Some(match name.to_ascii_uppercase().as_str() {
        "NOERROR" => ResponseCode::NoError,
        "FORMERR" => ResponseCode::FormErr,
        "SERVFAIL" => ResponseCode::ServFail,
        "NXDOMAIN" => ResponseCode::NXDomain,
        "NOTIMP" => ResponseCode::NotImp,
        "REFUSED" => ResponseCode::Refused,
        _ => return None,
    })
}

pub(crate) fn parse(r: &Reader, d: &Directive, _zones: &[String]) -> Result<ForwardOptions> {
    if d.args.len() < 2 {
        return Err(r.err(d.line, "needs FROM and at least one TO"));
    }
    let from = match crate::corefile::address::parse_key(&d.args[0]) {
        Ok((zones, _)) if !d.args[0].contains(':') || d.args[0].contains('/') => zones,
        Ok(_) | Err(_) => return Err(r.err(d.line, format!("bad FROM zone {:?}", d.args[0]))),
    };
    let to = d.args[1..].iter().map(|s| parse_upstream(s).map_err(|e| r.err(d.line, e))).collect::<Result<Vec<_>>>()?;
    if to.len() > MAX_UPSTREAMS {
        return Err(r.err(d.line, format!("more than {MAX_UPSTREAMS} upstreams")));
    }
    let mut opts = ForwardOptions::new(from, to);
    for o in &d.block {
        r.no_block(o)?;
        match o.name.as_str() {
            "except" => {
                r.args(o, 1, usize::MAX)?;
                opts.except = r.zones(o.line, &o.args)?;
            }
            "force_tcp" => {
                r.max_args(o, 0)?;
                opts.force_tcp = true;
            }
            "prefer_udp" => {
                r.max_args(o, 0)?;
                opts.prefer_udp = true;
            }
            "expire" => {
                r.args(o, 1, 1)?;
                opts.expire = r.duration(o.line, &o.args[0])?;
            }
            "max_fails" => {
                r.args(o, 1, 1)?;
                opts.max_fails = r.number(o.line, &o.args[0], "max_fails")?;
            }
            "policy" => {
                r.args(o, 1, 1)?;
                opts.policy = match o.args[0].as_str() {
                    "random" => Policy::Random,
                    "round_robin" => Policy::RoundRobin,
                    "sequential" => Policy::Sequential,
                    p => return Err(r.err(o.line, format!("unknown policy {p:?}"))),
                };
            }
            "health_check" => {
                r.args(o, 1, 4)?;
                opts.health_check = r.duration(o.line, &o.args[0])?;
                let mut rest = o.args[1..].iter();
                while let Some(a) = rest.next() {
                    match a.as_str() {
                        "no_rec" => opts.health_check_no_rec = true,
                        "domain" => {
                            let name = rest.next().ok_or_else(|| r.err(o.line, "health_check domain needs a name"))?;
                            let name = names::normalize(name);
                            names::validate(&name).map_err(|e| r.err(o.line, e))?;
                            opts.health_check_domain = name;
                        }
                        _ => return Err(r.err(o.line, format!("unknown health_check option {a:?}"))),
                    }
                }
            }
            "max_concurrent" => {
                r.args(o, 1, 1)?;
                opts.max_concurrent = r.number(o.line, &o.args[0], "max_concurrent")?;
                if opts.max_concurrent == 0 {
                    return Err(r.err(o.line, "max_concurrent must be positive"));
                }
            }
            "next" => {
                r.args(o, 1, usize::MAX)?;
                opts.next = o
                    .args
                    .iter()
                    .map(|a| rcode(a).ok_or_else(|| r.err(o.line, format!("unknown rcode {a:?}"))))
                    .collect::<Result<_>>()?;
            }
            "tls" | "tls_servername" => return Err(r.err(o.line, format!("option {:?} is not supported", o.name))),
            _ => return Err(r.unknown(o)),
        }
    }
    if opts.force_tcp && opts.prefer_udp {
        return Err(r.err(d.line, "both force_tcp and prefer_udp specified"));
    }
    Ok(opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams() {
        let addr = |s: &str| UpstreamSpec::Address(s.parse().unwrap());
        assert_eq!(parse_upstream("8.8.8.8").unwrap(), addr("8.8.8.8:53"));
        assert_eq!(parse_upstream("1.1.1.1:5353").unwrap(), addr("1.1.1.1:5353"));
        assert_eq!(parse_upstream("dns://[::1]:53").unwrap(), addr("[::1]:53"));
        assert_eq!(parse_upstream("::1").unwrap(), addr("[::1]:53"));
        assert_eq!(parse_upstream("/etc/resolv.conf").unwrap(), UpstreamSpec::ResolvConf("/etc/resolv.conf".into()));
        assert!(parse_upstream("tls://1.1.1.1").is_err());
        assert!(parse_upstream("dns://nonsense").is_err());
    }
}
