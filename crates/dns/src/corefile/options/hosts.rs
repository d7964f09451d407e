//! Options of `hosts [FILE [ZONES...]] { [INLINE] ttl SECONDS; no_reverse; reload DURATION;
//! fallthrough [ZONES...] }`. Inline lines are hosts-file lines (`10.0.0.1 example.org`).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{Fallthrough, Reader, Result};
use crate::corefile::names;
use crate::corefile::Directive;

/// The `hosts` plugin's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostsOptions {
    /// The hosts file (`/etc/hosts` by default).
    pub file: PathBuf,
    /// Zones answered (the server block's when none are given).
    pub zones: Vec<String>,
    /// Entries written in the block: an address and its normalized names.
    pub inline: Vec<(IpAddr, Vec<String>)>,
    /// TTL of the answers (default 3600).
    pub ttl: u32,
    /// Whether to leave PTR records out.
    pub no_reverse: bool,
    /// How often the file is re-read when changed (default 5s; zero turns it off).
    pub reload: Duration,
    pub fallthrough: Option<Fallthrough>,
}

pub(crate) fn parse(r: &Reader, d: &Directive, zones: &[String]) -> Result<HostsOptions> {
    let file = PathBuf::from(d.args.first().map_or("/etc/hosts", String::as_str));
    let zones = if d.args.len() > 1 { r.zones(d.line, &d.args[1..])? } else { zones.to_vec() };
    let mut opts = HostsOptions {
        file,
        zones,
        inline: Vec::new(),
        ttl: 3600,
        no_reverse: false,
        reload: Duration::from_secs(5),
        fallthrough: None,
    };
    for o in &d.block {
        r.no_block(o)?;
        match o.name.as_str() {
            "ttl" => {
                r.args(o, 1, 1)?;
                let ttl: u32 = r.number(o.line, &o.args[0], "ttl")?;
                if ttl == 0 || ttl > 65535 {
                    return Err(r.err(o.line, format!("ttl must be in range [1, 65535]: {ttl}")));
                }
                opts.ttl = ttl;
            }
            "no_reverse" => {
                r.max_args(o, 0)?;
                opts.no_reverse = true;
            }
            "reload" => {
                r.args(o, 1, 1)?;
                opts.reload = r.duration(o.line, &o.args[0])?;
            }
            "fallthrough" => opts.fallthrough = Some(r.fallthrough(o)?),
            other => {
                let Ok(ip) = other.parse::<IpAddr>() else {
                    return Err(r.unknown(o));
                };
                if o.args.is_empty() {
                    return Err(r.err(o.line, format!("no names for {ip}")));
                }
                opts.inline.push((ip, o.args.iter().map(|n| names::normalize(n)).collect()));
            }
        }
    }
    Ok(opts)
}
