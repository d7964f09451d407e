//! The proxy modes by name, for `--proxy-mode` (and `--scheduler` for the userspace mode).

use crate::userspace::Scheduler;
use crate::{Error, Mode};

/// The modes podnet has, the default first.
pub const MODES: &[&str] = &["nftables", "iptables", "userspace"];

/// A new mode by its name, the userspace mode with its default scheduler (rr).
pub fn new_mode(name: &str) -> Result<Box<dyn Mode>, Error> {
    new_mode_with(name, Scheduler::default())
}

/// A new mode by its name; `scheduler` is the userspace mode's.
pub fn new_mode_with(name: &str, scheduler: Scheduler) -> Result<Box<dyn Mode>, Error> {
    match name {
        "nftables" => Ok(Box::new(crate::nftables::NftablesMode::new())),
        "iptables" => Ok(Box::new(crate::iptables::IptablesMode::new())),
        "userspace" => Ok(Box::new(crate::userspace::UserspaceMode::new(scheduler)?)),
        _ => Err(Error::Other(format!("--proxy-mode {name:?}: unknown mode (known: {})", MODES.join(", ")))),
    }
}

/// Removes the rules of every mode but `keep` (switching modes), best effort.
pub fn cleanup_others(keep: &str) {
    for other in MODES.iter().filter(|m| **m != keep) {
        if let Ok(mut m) = new_mode(other) {
            if let Err(e) = m.cleanup() {
                tracing::warn!(mode = other, error = %e, "cleaning up another mode's rules");
            }
        }
    }
}
