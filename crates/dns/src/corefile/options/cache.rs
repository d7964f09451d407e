//! Options of `cache [TTL] [ZONES...] { success CAPACITY [TTL] [MINTTL]; denial CAPACITY [TTL]
//! [MINTTL]; prefetch AMOUNT [[DURATION] [PERCENTAGE%]]; serve_stale [DURATION] [immediate|verify];
//! servfail DURATION; disable success|denial [ZONES...]; keepttl }`, with CoreDNS's defaults.

use std::time::Duration;

use super::{Reader, Result};
use crate::corefile::Directive;

/// CoreDNS's default capacity of each cache (256 shards of 39 items).
pub const DEFAULT_CAPACITY: usize = 9984;

/// Limits of one kind of cached response (success or denial).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheClass {
    pub capacity: usize,
    pub max_ttl: Duration,
    pub min_ttl: Duration,
    /// `disable …`: zones where this kind is not cached (`Some(vec![])` disables it everywhere).
    pub disabled: Option<Vec<String>>,
}

/// `prefetch AMOUNT DURATION PERCENTAGE%`: refresh an item seen AMOUNT times with no gap of
/// DURATION once its TTL falls under PERCENTAGE of the original.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefetch {
    pub amount: u32,
    pub duration: Duration,
    pub percentage: u8,
}

/// When a stale item is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RefreshMode {
    /// Serve it at once and refresh it in the background (CoreDNS's default).
    #[default]
    Immediate,
    /// Ask the upstream first; serve it only if that fails.
    Verify,
}

/// `serve_stale [DURATION] [REFRESH_MODE]`: expired items are kept and served for DURATION.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeStale {
    pub duration: Duration,
    pub refresh: RefreshMode,
}

/// The `cache` plugin's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheOptions {
    /// Zones cached (the server block's when none are given).
    pub zones: Vec<String>,
    pub success: CacheClass,
    pub denial: CacheClass,
    pub prefetch: Option<Prefetch>,
    pub serve_stale: Option<ServeStale>,
    /// How long SERVFAIL answers are cached (default 5s, at most 5m; zero: never).
    pub servfail: Duration,
    /// `keepttl`: answer with the original TTLs instead of decrementing them.
    pub keepttl: bool,
}

impl CacheOptions {
    /// `cache` with no arguments in a block serving `zones`.
    pub fn new(zones: Vec<String>) -> Self {
        let class = |max| CacheClass {
            capacity: DEFAULT_CAPACITY,
            max_ttl: Duration::from_secs(max),
            min_ttl: Duration::from_secs(5),
            disabled: None,
        };
        CacheOptions {
            zones,
            success: class(3600),
            denial: class(1800),
            prefetch: None,
            serve_stale: None,
            servfail: Duration::from_secs(5),
            keepttl: false,
        }
    }
}

pub(crate) fn parse(r: &Reader, d: &Directive, zones: &[String]) -> Result<CacheOptions> {
    let mut args = d.args.as_slice();
    let mut ttl = None;
    if let Some(first) = args.first() {
        if let Ok(secs) = first.parse::<i64>() {
            if secs <= 0 {
                return Err(r.err(d.line, "cache TTL can not be zero or negative"));
            }
            ttl = Some(Duration::from_secs(secs as u64));
            args = &args[1..];
        }
    }
    let zones = if args.is_empty() { zones.to_vec() } else { r.zones(d.line, args)? };
    let mut opts = CacheOptions::new(zones);
    if let Some(ttl) = ttl {
        opts.success.max_ttl = ttl;
        opts.denial.max_ttl = ttl;
    }
    for o in &d.block {
        r.no_block(o)?;
        match o.name.as_str() {
            "success" => class(r, o, &mut opts.success)?,
            "denial" => class(r, o, &mut opts.denial)?,
            "prefetch" => opts.prefetch = Some(prefetch(r, o)?),
            "serve_stale" => {
                r.max_args(o, 2)?;
                let duration = match o.args.first() {
                    Some(s) => r.duration(o.line, s)?,
                    None => Duration::from_secs(3600),
                };
                let refresh = match o.args.get(1).map(String::as_str) {
                    None | Some("immediate") => RefreshMode::Immediate,
                    Some("verify") => RefreshMode::Verify,
                    Some(m) => return Err(r.err(o.line, format!("unknown refresh mode {m:?}"))),
                };
                opts.serve_stale = Some(ServeStale { duration, refresh });
            }
            "servfail" => {
                r.args(o, 1, 1)?;
                let d = r.duration(o.line, &o.args[0])?;
                if d > Duration::from_secs(300) {
                    return Err(r.err(o.line, "caching SERVFAIL responses over 5 minutes is not permitted"));
                }
                opts.servfail = d;
            }
            "disable" => {
                r.args(o, 1, usize::MAX)?;
                let zones = r.zones(o.line, &o.args[1..])?;
                let target = match o.args[0].as_str() {
                    "success" => &mut opts.success,
                    "denial" => &mut opts.denial,
                    k => return Err(r.err(o.line, format!("cannot disable unknown type {k:?}"))),
                };
                target.disabled = Some(zones);
            }
            "keepttl" => {
                r.max_args(o, 0)?;
                opts.keepttl = true;
            }
            _ => return Err(r.unknown(o)),
        }
    }
    Ok(opts)
}

fn class(r: &Reader, o: &Directive, c: &mut CacheClass) -> Result<()> {
    r.args(o, 1, 3)?;
    let capacity: usize = r.number(o.line, &o.args[0], "capacity")?;
    if capacity == 0 {
        return Err(r.err(o.line, "capacity must be positive"));
    }
    c.capacity = capacity;
    if let Some(t) = o.args.get(1) {
        let secs: u64 = r.number(o.line, t, "ttl")?;
        if secs == 0 {
            return Err(r.err(o.line, "ttl must be positive"));
        }
        c.max_ttl = Duration::from_secs(secs);
    }
    if let Some(t) = o.args.get(2) {
        c.min_ttl = Duration::from_secs(r.number(o.line, t, "minimum ttl")?);
    }
    if c.min_ttl > c.max_ttl {
        return Err(r.err(o.line, "minimum ttl is larger than the maximum"));
    }
    Ok(())
}

fn prefetch(r: &Reader, o: &Directive) -> Result<Prefetch> {
    r.args(o, 1, 3)?;
    let amount: u32 = r.number(o.line, &o.args[0], "prefetch amount")?;
    if amount == 0 {
        return Err(r.err(o.line, "prefetch amount must be positive"));
    }
    let mut p = Prefetch { amount, duration: Duration::from_secs(60), percentage: 10 };
    for a in &o.args[1..] {
        if let Some(pct) = a.strip_suffix('%') {
            let pct: u8 = r.number(o.line, pct, "prefetch percentage")?;
            if pct > 100 {
                return Err(r.err(o.line, "prefetch percentage must be in range [0, 100]"));
            }
            p.percentage = pct;
        } else {
            p.duration = r.duration(o.line, a)?;
        }
    }
    Ok(p)
}
