//! Typed options of each supported plugin, read from its directive with validation errors that
//! name the line. Each submodule is pure: it reads words, it opens no file and no socket.

mod cache;
mod forward;
mod hosts;
mod http;
mod kubernetes;
mod simple;

pub use cache::{CacheClass, CacheOptions, Prefetch, RefreshMode, ServeStale};
pub use forward::{ForwardOptions, Policy, UpstreamSpec};
pub use hosts::HostsOptions;
pub use http::{HealthOptions, PrometheusOptions, ReadyOptions};
pub use kubernetes::{KubernetesOptions, PodsMode};
pub use simple::{ErrorsOptions, LoadBalanceOptions, LogClasses, LogOptions, LoopOptions, ReloadOptions};

pub(crate) use cache::parse as cache;
pub(crate) use forward::parse as forward;
pub(crate) use hosts::parse as hosts;
pub(crate) use http::{health, prometheus, ready};
pub(crate) use kubernetes::parse as kubernetes;
pub(crate) use simple::{errors, loadbalance, log, loop_detect, reload};

use std::str::FromStr;
use std::time::Duration;

use super::error::CorefileError;
use super::names;
use super::Directive;

type Result<T> = std::result::Result<T, CorefileError>;

/// `fallthrough [ZONES...]`: pass queries the plugin cannot answer to the next plugin, for
/// every zone (no zones given) or only for names in `zones`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fallthrough {
    pub zones: Vec<String>,
}

impl Fallthrough {
    /// Whether a query for normalized `qname` falls through.
    pub fn through(&self, qname: &str) -> bool {
        self.zones.is_empty() || self.zones.iter().any(|z| names::in_zone(qname, z))
    }
}

/// Reads one plugin's directive: errors carry the file, the line and the plugin's name.
pub(crate) struct Reader<'a> {
    pub file: &'a str,
    pub plugin: &'static str,
}

impl Reader<'_> {
    pub fn err(&self, line: usize, message: impl Into<String>) -> CorefileError {
        CorefileError::plugin(self.file, line, self.plugin, message)
    }

    /// `unknown option "foo"`.
    pub fn unknown(&self, d: &Directive) -> CorefileError {
        self.err(d.line, format!("unknown option {:?}", d.name))
    }

    /// Fails when `d` has more than `max` arguments.
    pub fn max_args(&self, d: &Directive, max: usize) -> Result<()> {
        if d.args.len() > max {
            return Err(self.err(d.line, format!("too many arguments to {:?}", d.name)));
        }
        Ok(())
    }

    /// Fails unless `d` has between `min` and `max` arguments.
    pub fn args(&self, d: &Directive, min: usize, max: usize) -> Result<()> {
        if d.args.len() < min {
            return Err(self.err(d.line, format!("missing argument to {:?}", d.name)));
        }
        self.max_args(d, max)
    }

    /// Fails when `d` has a block (plugins and options that take none).
    pub fn no_block(&self, d: &Directive) -> Result<()> {
        match d.block.first() {
            Some(inner) => Err(self.err(inner.line, format!("{:?} takes no block", d.name))),
            None => Ok(()),
        }
    }

    pub fn number<T: FromStr>(&self, line: usize, s: &str, what: &str) -> Result<T> {
        s.parse().map_err(|_| self.err(line, format!("bad {what} {s:?}")))
    }

    pub fn duration(&self, line: usize, s: &str) -> Result<Duration> {
        parse_duration(s).map_err(|e| self.err(line, e))
    }

    /// Normalized zones, each validated.
    pub fn zones(&self, line: usize, args: &[String]) -> Result<Vec<String>> {
        args.iter()
            .map(|z| {
                let zone = names::normalize(z);
                names::validate(&zone).map_err(|e| self.err(line, format!("bad zone {z:?}: {e}")))?;
                Ok(zone)
            })
            .collect()
    }

    pub fn fallthrough(&self, d: &Directive) -> Result<Fallthrough> {
        self.no_block(d)?;
        Ok(Fallthrough { zones: self.zones(d.line, &d.args)? })
    }
}

/// Parses a Go duration: `5s`, `1m30s`, `500ms`, `0.5s`, `1h`, or `0`.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let bad = || format!("bad duration {s:?}");
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = s;
    let mut total = 0f64;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
        let value: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    Ok(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("0.5s").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        for bad in ["", "5", "s", "5x", "-1s", "1.2.3s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn fallthrough_zones() {
        let all = Fallthrough::default();
        assert!(all.through("example.org."));
        let some = Fallthrough { zones: vec!["in-addr.arpa.".into()] };
        assert!(some.through("1.0.0.10.in-addr.arpa."));
        assert!(!some.through("example.org."));
    }
}
