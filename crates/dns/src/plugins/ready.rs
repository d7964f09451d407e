//! `ready`: an HTTP endpoint (`:8181/ready`) that answers 200 `OK` once every plugin of its
//! server block that reports readiness is ready, and 503 with their names until then. A plugin
//! reports readiness with [`Readiness`] (the `kubernetes` plugin: ready once its caches synced);
//! once ready it is not asked again. Several blocks' `ready` on one address report together.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use hickory_proto::op::Message;

use crate::wire::{WireAnswer, WireNext, WireQuery};
use crate::{BoxFuture, Handler, Next, Request};

/// A plugin that can tell whether it is ready to serve.
pub trait Readiness: Send + Sync {
    fn ready(&self) -> bool;
}

impl<F: Fn() -> bool + Send + Sync> Readiness for F {
    fn ready(&self) -> bool {
        self()
    }
}

struct Source {
    name: String,
    probe: Arc<dyn Readiness>,
    done: AtomicBool,
}

/// The `ready` plugin of one server block: a pass-through in the chain that holds the block's
/// readiness sources.
pub struct ReadyPlugin {
    sources: Vec<Source>,
}

impl ReadyPlugin {
    /// A `ready` reporting on `sources` (plugin name, probe).
    pub fn new(sources: Vec<(String, Arc<dyn Readiness>)>) -> Self {
        ReadyPlugin {
            sources: sources
                .into_iter()
                .map(|(name, probe)| Source { name, probe, done: AtomicBool::new(false) })
                .collect(),
        }
    }

    /// The names of the plugins not ready yet.
    pub fn not_ready(&self) -> Vec<String> {
        self.sources
            .iter()
            .filter(|s| {
                if s.done.load(Ordering::Relaxed) {
                    return false;
                }
                let ready = s.probe.ready();
                if ready {
                    s.done.store(true, Ordering::Relaxed);
                }
                !ready
            })
            .map(|s| s.name.clone())
            .collect()
    }
}

impl Handler for ReadyPlugin {
    fn name(&self) -> &'static str {
        "ready"
    }

    fn handle<'a>(&'a self, req: &'a Request, next: Next<'a>) -> BoxFuture<'a, Message> {
        next.run(req)
    }

    /// Nothing to do for an answer served from stored bytes: passed on.
    fn wire(&self, q: &WireQuery<'_>, next: WireNext<'_>, out: &mut Vec<u8>) -> Option<WireAnswer> {
        next.run(q, out)
    }
}

/// The `ready` plugins answering on one address (weakly held: a replaced chain drops out).
#[derive(Default)]
pub struct ReadinessRegistry {
    plugins: Mutex<Vec<Weak<ReadyPlugin>>>,
}

impl ReadinessRegistry {
    pub fn add(&self, plugin: &Arc<ReadyPlugin>) {
        self.plugins.lock().expect("readiness lock").push(Arc::downgrade(plugin));
    }

    /// `Ok` when everything is ready, else the sorted names of the plugins still waited on.
    pub fn check(&self) -> Result<(), Vec<String>> {
        let mut plugins = self.plugins.lock().expect("readiness lock");
        plugins.retain(|p| p.strong_count() > 0);
        let mut todo: Vec<String> = plugins.iter().filter_map(Weak::upgrade).flat_map(|p| p.not_ready()).collect();
        todo.sort();
        todo.dedup();
        if todo.is_empty() {
            Ok(())
        } else {
            Err(todo)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    #[test]
    fn not_ready_until_every_source_is_then_sticky() {
        let synced = Arc::new(AtomicBool::new(false));
        let s = synced.clone();
        let probe: Arc<dyn Readiness> = Arc::new(move || s.load(Ordering::Relaxed));
        let plugin = Arc::new(ReadyPlugin::new(vec![
            ("kubernetes".into(), probe),
            ("always".into(), Arc::new(|| true) as Arc<dyn Readiness>),
        ]));
        let registry = ReadinessRegistry::default();
        registry.add(&plugin);
        assert_eq!(registry.check(), Err(vec!["kubernetes".to_string()]));
        synced.store(true, Ordering::Relaxed);
        assert_eq!(registry.check(), Ok(()));
        synced.store(false, Ordering::Relaxed);
        assert_eq!(registry.check(), Ok(()), "once ready, not asked again");
        drop(plugin);
        assert_eq!(registry.check(), Ok(()));
    }
}
