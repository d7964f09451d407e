//! `reload`: the Corefile is read again every INTERVAL ± JITTER; when its checksum changed it is
//! parsed and checked, and handed to the binary to rebuild its chains. A bad Corefile is logged
//! (`coredns_reload_failed_total`) and the old chains keep serving. In the chain the plugin only
//! passes queries on.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::Message;
use rand::Rng;

use super::metrics::{self, Metrics};
use super::BoxError;
use crate::corefile::{Corefile, CorefileError, ErrorKind, ReloadOptions};
use crate::wire::{WireAnswer, WireNext, WireQuery};
use crate::{BoxFuture, Handler, Next, Request};

/// The `reload` plugin's place in the chain.
#[derive(Debug, Default)]
pub struct ReloadPlugin;

impl Handler for ReloadPlugin {
    fn name(&self) -> &'static str {
        "reload"
    }

    fn handle<'a>(&'a self, req: &'a Request, next: Next<'a>) -> BoxFuture<'a, Message> {
        next.run(req)
    }

    /// Nothing to do for an answer served from stored bytes: passed on.
    fn wire(&self, q: &WireQuery<'_>, next: WireNext<'_>, out: &mut Vec<u8>) -> Option<WireAnswer> {
        next.run(q, out)
    }
}

fn checksum(text: &str) -> u64 {
    let mut h = DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

/// Watches one Corefile for changes.
#[derive(Debug)]
pub struct Reloader {
    path: PathBuf,
    last: Option<u64>,
}

impl Reloader {
    /// Watches `path`, taking its current content as the one serving.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let last = std::fs::read_to_string(&path).ok().map(|t| checksum(&t));
        Reloader { path, last }
    }

    /// `Ok(Some(corefile))` when the file changed and the new one parses and checks, `Ok(None)`
    /// when it did not change, an error when it changed for the worse (reported once).
    pub fn check(&mut self) -> Result<Option<Corefile>, CorefileError> {
        let file = self.path.display().to_string();
        let text = std::fs::read_to_string(&self.path).map_err(|e| CorefileError {
            file: file.clone(),
            line: 0,
            kind: ErrorKind::Io(e.to_string()),
        })?;
        let sum = checksum(&text);
        if self.last == Some(sum) {
            return Ok(None);
        }
        self.last = Some(sum);
        let corefile = Corefile::parse_with(&text, &file, &|n| std::env::var(n).ok())?;
        corefile.validate()?;
        Ok(Some(corefile))
    }
}

/// What one check of the Corefile did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
    Unchanged,
    /// A new Corefile was applied; its `reload` options (`None`: it has no `reload`).
    Applied(Option<ReloadOptions>),
    /// The Corefile changed but could not be applied: the old chains keep serving.
    Failed(String),
}

/// Checks the Corefile once and applies it if it changed and is good; failures are logged and
/// counted in `coredns_reload_failed_total`.
pub fn reload_once<F>(reloader: &mut Reloader, metrics: Option<&Metrics>, apply: &mut F) -> ReloadOutcome
where
    F: FnMut(Corefile) -> Result<(), BoxError>,
{
    let result = match reloader.check() {
        Ok(None) => return ReloadOutcome::Unchanged,
        Ok(Some(corefile)) => {
            let next = corefile.reload_options();
            apply(corefile).map(|()| next).map_err(|e| e.to_string())
        }
        Err(e) => Err(e.to_string()),
    };
    match result {
        Ok(next) => {
            tracing::info!(target: "podnet_dns::reload", "Reloading complete");
            ReloadOutcome::Applied(next)
        }
        Err(e) => {
            tracing::error!(target: "podnet_dns::reload", "Corefile changed but reload failed: {e}");
            if let Some(m) = metrics {
                m.inc(&metrics::RELOAD_FAILED_TOTAL, &[]);
            }
            ReloadOutcome::Failed(e)
        }
    }
}

/// Checks the Corefile every `options.interval` ± jitter, and calls `apply` with each good new
/// version (rebuild and swap the chains there; an error keeps the old ones). The new Corefile's
/// `reload` options take over; the watch ends when a new Corefile drops `reload`.
pub async fn watch_corefile<F>(
    mut reloader: Reloader,
    mut options: ReloadOptions,
    metrics: Option<Arc<Metrics>>,
    mut apply: F,
) where
    F: FnMut(Corefile) -> Result<(), BoxError>,
{
    loop {
        let jitter = options.jitter.as_millis() as i64;
        let offset = if jitter > 0 { rand::rng().random_range(-jitter..=jitter) } else { 0 };
        let wait = (options.interval.as_millis() as i64 + offset).max(100) as u64;
        tokio::time::sleep(Duration::from_millis(wait)).await;
        match reload_once(&mut reloader, metrics.as_deref(), &mut apply) {
            ReloadOutcome::Applied(Some(next)) => options = next,
            ReloadOutcome::Applied(None) => {
                tracing::info!(target: "podnet_dns::reload", "reload plugin removed; not watching the Corefile any more");
                return;
            }
            ReloadOutcome::Unchanged | ReloadOutcome::Failed(_) => {}
        }
    }
}
