//! Options of the plugins that serve HTTP: `health [ADDRESS] { lameduck DURATION }` (default
//! `:8080`, path `/health`), `ready [ADDRESS]` (default `:8181`, path `/ready`) and
//! `prometheus [ADDRESS]` (default `localhost:9153`, path `/metrics`).

use std::net::SocketAddr;
use std::time::Duration;

use super::{Reader, Result};
use crate::corefile::address::parse_listen;
use crate::corefile::Directive;

/// `health`: liveness on `addr`/health; on shutdown it waits `lameduck` before going away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthOptions {
    pub addr: SocketAddr,
    pub lameduck: Duration,
}

/// `ready`: readiness on `addr`/ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadyOptions {
    pub addr: SocketAddr,
}

/// `prometheus`: metrics on `addr`/metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrometheusOptions {
    pub addr: SocketAddr,
}

fn address(r: &Reader, d: &Directive, default: &str) -> Result<SocketAddr> {
    r.max_args(d, 1)?;
    let text = d.args.first().map_or(default, String::as_str);
    parse_listen(text).map_err(|e| r.err(d.line, e))
}

pub(crate) fn health(r: &Reader, d: &Directive, _zones: &[String]) -> Result<HealthOptions> {
    let addr = address(r, d, ":8080")?;
    let mut lameduck = Duration::ZERO;
    for o in &d.block {
        match o.name.as_str() {
            "lameduck" => {
                r.args(o, 1, 1)?;
                r.no_block(o)?;
                lameduck = r.duration(o.line, &o.args[0])?;
            }
            _ => return Err(r.unknown(o)),
        }
    }
    Ok(HealthOptions { addr, lameduck })
}

pub(crate) fn ready(r: &Reader, d: &Directive, _zones: &[String]) -> Result<ReadyOptions> {
    r.no_block(d)?;
    Ok(ReadyOptions { addr: address(r, d, ":8181")? })
}

pub(crate) fn prometheus(r: &Reader, d: &Directive, _zones: &[String]) -> Result<PrometheusOptions> {
    r.no_block(d)?;
    Ok(PrometheusOptions { addr: address(r, d, "localhost:9153")? })
}
