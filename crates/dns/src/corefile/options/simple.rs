//! Options of the small plugins: `errors`, `log`, `loadbalance`, `loop` and `reload`.

use std::time::Duration;

use super::{Reader, Result};
use crate::corefile::Directive;

/// `errors { stacktrace }`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ErrorsOptions {
    pub stacktrace: bool,
}

/// Which responses `log` writes (`class success denial error all`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogClasses {
    pub success: bool,
    pub denial: bool,
    pub error: bool,
}

impl Default for LogClasses {
    fn default() -> Self {
        LogClasses { success: true, denial: true, error: true }
    }
}

/// `log [NAMES...] [FORMAT] { class CLASSES... }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogOptions {
    /// Names logged; empty means the server block's zones.
    pub names: Vec<String>,
    /// The format with CoreDNS's placeholders (`{common}` by default).
    pub format: String,
    pub classes: LogClasses,
}

/// `loadbalance [round_robin]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LoadBalanceOptions;

/// `loop` takes no options.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LoopOptions;

/// `reload [INTERVAL] [JITTER]`: check the Corefile every INTERVAL ± JITTER.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReloadOptions {
    pub interval: Duration,
    pub jitter: Duration,
}

impl Default for ReloadOptions {
    fn default() -> Self {
        ReloadOptions { interval: Duration::from_secs(30), jitter: Duration::from_secs(15) }
    }
}

pub(crate) fn errors(r: &Reader, d: &Directive, _zones: &[String]) -> Result<ErrorsOptions> {
    r.max_args(d, 0)?;
    let mut opts = ErrorsOptions::default();
    for o in &d.block {
        match o.name.as_str() {
            "stacktrace" => {
                r.max_args(o, 0)?;
                opts.stacktrace = true;
            }
            _ => return Err(r.unknown(o)),
        }
    }
    Ok(opts)
}

pub(crate) fn log(r: &Reader, d: &Directive, _zones: &[String]) -> Result<LogOptions> {
    let mut args = d.args.clone();
    let format = match args.last() {
        Some(last) if last.contains('{') => args.pop().expect("last"),
        _ => "{common}".to_string(),
    };
    let names = r.zones(d.line, &args)?;
    let mut classes = LogClasses::default();
    for o in &d.block {
        match o.name.as_str() {
            "class" => {
                r.args(o, 1, 3)?;
                classes = LogClasses { success: false, denial: false, error: false };
                for c in &o.args {
                    match c.as_str() {
                        "all" => classes = LogClasses::default(),
                        "success" => classes.success = true,
                        "denial" => classes.denial = true,
                        "error" => classes.error = true,
                        _ => return Err(r.err(o.line, format!("unknown class {c:?}"))),
                    }
                }
            }
            _ => return Err(r.unknown(o)),
        }
    }
    Ok(LogOptions { names, format, classes })
}

pub(crate) fn loadbalance(r: &Reader, d: &Directive, _zones: &[String]) -> Result<LoadBalanceOptions> {
    r.no_block(d)?;
    r.max_args(d, 1)?;
    match d.args.first().map(String::as_str) {
        None | Some("round_robin") => Ok(LoadBalanceOptions),
        Some(p) => Err(r.err(d.line, format!("unknown policy {p:?}"))),
    }
}

pub(crate) fn loop_detect(r: &Reader, d: &Directive, _zones: &[String]) -> Result<LoopOptions> {
    r.no_block(d)?;
    r.max_args(d, 0)?;
    Ok(LoopOptions)
}

pub(crate) fn reload(r: &Reader, d: &Directive, _zones: &[String]) -> Result<ReloadOptions> {
    r.no_block(d)?;
    r.max_args(d, 2)?;
    let mut opts = ReloadOptions::default();
    if let Some(i) = d.args.first() {
        opts.interval = r.duration(d.line, i)?;
        if opts.interval < Duration::from_secs(2) {
            return Err(r.err(d.line, "interval value must be greater or equal to 2s"));
        }
    }
    if let Some(j) = d.args.get(1) {
        opts.jitter = r.duration(d.line, j)?;
        if opts.jitter < Duration::from_secs(1) {
            return Err(r.err(d.line, "jitter value must be greater or equal to 1s"));
        }
    }
    // CoreDNS caps the jitter at half the interval.
    opts.jitter = opts.jitter.min(opts.interval / 2);
    Ok(opts)
}
