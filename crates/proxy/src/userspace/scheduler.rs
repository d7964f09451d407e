//! The IPVS schedulers, as pure functions over a backend list: which backend takes the next
//! connection. Each follows the kernel's `ip_vs_<name>.c`:
//!
//! - `rr` round robin: the next backend after the last one chosen, skipping weight 0;
//! - `wrr` weighted round robin: the LVS sequence (current weight stepping down by the weights'
//!   greatest common divisor from the largest weight; a backend is taken while its weight is at
//!   least the current weight), so weights 3 and 1 give `0 0 0 1`;
//! - `lc` least connections: the lowest overhead `active × 256 + inactive`, the first on a tie;
//! - `dh` destination hashing: the service address hashed into 256 buckets dealt round robin
//!   over the backends; every client of one address gets the same backend;
//! - `sh` source hashing: the client address hashed into 256 buckets dealt over the backends in
//!   runs of their weight; one client always gets the same backend;
//! - `sed` shortest expected delay: the lowest `(active + 1) / weight`;
//! - `nq` never queue: the first idle backend (no active connection), else as `sed`.
//!
//! A backend of weight 0 is never chosen (IPVS's "quiesced" server); the hashing schedulers then
//! choose nothing rather than another backend, as IPVS does without its fallback flag.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::Error;

/// A scheduler, chosen with `--scheduler`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Scheduler {
    /// Round robin (the default, as IPVS's).
    #[default]
    Rr,
    /// Weighted round robin.
    Wrr,
    /// Least connections.
    Lc,
    /// Destination hashing.
    Dh,
    /// Source hashing.
    Sh,
    /// Shortest expected delay.
    Sed,
    /// Never queue.
    Nq,
}

impl Scheduler {
    /// Every scheduler, in the order of the documentation.
    pub const ALL: [Scheduler; 7] =
        [Scheduler::Rr, Scheduler::Wrr, Scheduler::Lc, Scheduler::Dh, Scheduler::Sh, Scheduler::Sed, Scheduler::Nq];

    /// Its name, as IPVS and `--scheduler` write it (`rr`).
    pub fn name(self) -> &'static str {
        match self {
            Scheduler::Rr => "rr",
            Scheduler::Wrr => "wrr",
            Scheduler::Lc => "lc",
            Scheduler::Dh => "dh",
            Scheduler::Sh => "sh",
            Scheduler::Sed => "sed",
            Scheduler::Nq => "nq",
        }
    }

    /// The index in `backends` of the backend that takes a new connection from `client` to the
    /// service address `service`; `None` when no backend may take it. `state` is the scheduler's
    /// memory of one backend list (reset it when the list changes).
    pub fn pick(self, backends: &[Backend], state: &mut SchedState, client: IpAddr, service: IpAddr) -> Option<usize> {
        if backends.is_empty() {
            return None;
        }
        match self {
            Scheduler::Rr => round_robin(backends, state),
            Scheduler::Wrr => weighted_round_robin(backends, state),
            Scheduler::Lc => least_connections(backends),
            Scheduler::Dh => hashed(backends, dh_bucket(service), false),
            Scheduler::Sh => hashed(backends, sh_bucket(client), true),
            Scheduler::Sed => shortest_expected_delay(backends),
            Scheduler::Nq => never_queue(backends),
        }
    }
}

impl fmt::Display for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Scheduler {
    type Err = Error;

    fn from_str(s: &str) -> Result<Scheduler, Error> {
        Scheduler::ALL.into_iter().find(|k| k.name() == s).ok_or_else(|| {
            let known: Vec<&str> = Scheduler::ALL.iter().map(|k| k.name()).collect();
            Error::Other(format!("--scheduler {s:?}: unknown scheduler (known: {})", known.join(", ")))
        })
    }
}

/// What a scheduler knows of one backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backend {
    /// Its weight (1 for every endpoint of an EndpointSlice); 0 takes no new connection.
    pub weight: u32,
    /// Its connections (TCP connections and UDP sessions) in progress.
    pub active: u32,
    /// Its connections that are not active (IPVS counts closing TCP connections here; the
    /// userspace proxy has none, and counts 0).
    pub inactive: u32,
}

impl Backend {
    /// A backend of weight 1 with `active` connections.
    pub fn new(active: u32) -> Backend {
        Backend { weight: 1, active, inactive: 0 }
    }
}

/// What the round-robin schedulers remember between picks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchedState {
    /// `rr`: where the next search starts.
    next: usize,
    /// `wrr`: the last index chosen (`None` before the first pick).
    wrr_index: Option<usize>,
    /// `wrr`: the current weight.
    wrr_weight: u32,
}

fn round_robin(backends: &[Backend], state: &mut SchedState) -> Option<usize> {
    let n = backends.len();
    let start = state.next % n;
    let i = (0..n).map(|k| (start + k) % n).find(|i| backends[*i].weight > 0)?;
    state.next = (i + 1) % n;
    Some(i)
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn weighted_round_robin(backends: &[Backend], state: &mut SchedState) -> Option<usize> {
    let max = backends.iter().map(|b| b.weight).max().unwrap_or(0);
    if max == 0 {
        return None;
    }
    let step = backends.iter().map(|b| b.weight).filter(|w| *w > 0).fold(0, gcd);
    let n = backends.len();
    let mut i = state.wrr_index.map_or(n - 1, |i| i.min(n - 1));
    // At most one full descent of the current weight over every index finds a backend.
    for _ in 0..=(n * (max / step) as usize) {
        i = (i + 1) % n;
        if i == 0 {
            state.wrr_weight = state.wrr_weight.saturating_sub(step);
            if state.wrr_weight == 0 {
                state.wrr_weight = max;
            }
        }
        if backends[i].weight >= state.wrr_weight {
            state.wrr_index = Some(i);
            return Some(i);
        }
    }
    None
}

/// The first usable backend with the least `key`, comparing with `less(candidate, best)`.
fn least(backends: &[Backend], less: impl Fn(&Backend, &Backend) -> bool) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, b) in backends.iter().enumerate().filter(|(_, b)| b.weight > 0) {
        if best.is_none_or(|j| less(b, &backends[j])) {
            best = Some(i);
        }
    }
    best
}

fn least_connections(backends: &[Backend]) -> Option<usize> {
    let overhead = |b: &Backend| u64::from(b.active) * 256 + u64::from(b.inactive);
    least(backends, |a, b| overhead(a) < overhead(b))
}

/// `(a.active + 1) / a.weight < (b.active + 1) / b.weight`, without division.
fn shorter_delay(a: &Backend, b: &Backend) -> bool {
    (u64::from(a.active) + 1) * u64::from(b.weight) < (u64::from(b.active) + 1) * u64::from(a.weight)
}

fn shortest_expected_delay(backends: &[Backend]) -> Option<usize> {
    least(backends, shorter_delay)
}

fn never_queue(backends: &[Backend]) -> Option<usize> {
    backends.iter().position(|b| b.weight > 0 && b.active == 0).or_else(|| shortest_expected_delay(backends))
}

/// The number of hash buckets of `dh` and `sh` (`IP_VS_DH_TAB_SIZE`, `IP_VS_SH_TAB_SIZE`).
pub const HASH_BUCKETS: usize = 256;

/// An address folded to 32 bits, as IPVS does (IPv6: the XOR of its four words).
fn fold(ip: IpAddr) -> u32 {
    match ip {
        IpAddr::V4(a) => u32::from(a),
        IpAddr::V6(a) => {
            let o = a.octets();
            o.chunks(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]])).fold(0, |x, w| x ^ w)
        }
    }
}

/// `ip_vs_dh_hashkey`: the bucket of a destination address.
pub fn dh_bucket(service: IpAddr) -> usize {
    (fold(service).wrapping_mul(2_654_435_761) as usize) & (HASH_BUCKETS - 1)
}

/// `ip_vs_sh_hashkey` (port 0, no offset): the bucket of a source address (`hash_32` of the
/// kernel: the golden-ratio multiply, top 8 bits).
pub fn sh_bucket(client: IpAddr) -> usize {
    (fold(client).wrapping_mul(0x61C8_8647) >> 24) as usize
}

/// The backend owning `bucket` when the buckets are dealt over `backends` in order: one bucket
/// each (`dh`), or runs of each backend's weight, at least one (`sh`). A backend of weight 0
/// owns its buckets but takes nothing.
fn hashed(backends: &[Backend], bucket: usize, by_weight: bool) -> Option<usize> {
    let run = |b: &Backend| if by_weight { b.weight.max(1) as usize } else { 1 };
    let cycle: usize = backends.iter().map(run).sum();
    let mut pos = bucket % cycle;
    for (i, b) in backends.iter().enumerate() {
        if pos < run(b) {
            return (b.weight > 0).then_some(i);
        }
        pos -= run(b);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn idle(n: usize) -> Vec<Backend> {
        vec![Backend::new(0); n]
    }

    fn picks(s: Scheduler, backends: &[Backend], n: usize) -> Vec<usize> {
        let mut state = SchedState::default();
        (0..n).map(|_| s.pick(backends, &mut state, ip("10.0.0.1"), ip("10.96.0.1")).unwrap()).collect()
    }

    #[test]
    fn names_parse_and_print() {
        for s in Scheduler::ALL {
            assert_eq!(s.name().parse::<Scheduler>().unwrap(), s);
            assert_eq!(s.to_string(), s.name());
        }
        let e = "wlc".parse::<Scheduler>().unwrap_err().to_string();
        assert!(e.contains("--scheduler \"wlc\"") && e.contains("rr, wrr, lc, dh, sh, sed, nq"), "{e}");
        assert_eq!(Scheduler::default(), Scheduler::Rr);
    }

    #[test]
    fn nothing_to_choose_from() {
        for s in Scheduler::ALL {
            let mut state = SchedState::default();
            assert_eq!(s.pick(&[], &mut state, ip("10.0.0.1"), ip("10.96.0.1")), None, "{s}");
            let quiesced = [Backend { weight: 0, active: 0, inactive: 0 }; 3];
            assert_eq!(s.pick(&quiesced, &mut state, ip("10.0.0.1"), ip("10.96.0.1")), None, "{s}");
        }
    }

    #[test]
    fn rr_visits_every_backend_in_turn_and_skips_weight_zero() {
        assert_eq!(picks(Scheduler::Rr, &idle(3), 7), [0, 1, 2, 0, 1, 2, 0]);
        let mut b = idle(3);
        b[1].weight = 0;
        assert_eq!(picks(Scheduler::Rr, &b, 4), [0, 2, 0, 2]);
        // Load does not matter.
        b = vec![Backend::new(9), Backend::new(0)];
        assert_eq!(picks(Scheduler::Rr, &b, 4), [0, 1, 0, 1]);
        // A shorter list after a change: the position wraps.
        let mut state = SchedState { next: 5, ..Default::default() };
        assert_eq!(Scheduler::Rr.pick(&idle(2), &mut state, ip("10.0.0.1"), ip("10.96.0.1")), Some(1));
    }

    #[test]
    fn wrr_follows_the_weights() {
        assert_eq!(picks(Scheduler::Wrr, &idle(3), 6), [0, 1, 2, 0, 1, 2], "equal weights: round robin");
        let w = |weights: &[u32]| -> Vec<Backend> {
            weights.iter().map(|w| Backend { weight: *w, active: 0, inactive: 0 }).collect()
        };
        assert_eq!(picks(Scheduler::Wrr, &w(&[3, 1]), 8), [0, 0, 0, 1, 0, 0, 0, 1]);
        assert_eq!(picks(Scheduler::Wrr, &w(&[4, 2, 0]), 6), [0, 0, 1, 0, 0, 1], "gcd 2, weight 0 never");
        assert_eq!(picks(Scheduler::Wrr, &w(&[1, 2, 3]), 6), [2, 1, 2, 0, 1, 2]);
        let chosen = picks(Scheduler::Wrr, &w(&[5, 3, 2]), 100);
        let count = |i| chosen.iter().filter(|c| **c == i).count();
        assert_eq!((count(0), count(1), count(2)), (50, 30, 20));
    }

    #[test]
    fn lc_prefers_the_least_loaded_then_the_first() {
        let b = [Backend::new(2), Backend::new(0), Backend::new(1)];
        assert_eq!(picks(Scheduler::Lc, &b, 2), [1, 1], "no memory: the load decides");
        assert_eq!(picks(Scheduler::Lc, &[Backend::new(1), Backend::new(1)], 1), [0]);
        // Inactive connections weigh 1/256 of an active one.
        let b = [Backend { weight: 1, active: 1, inactive: 0 }, Backend { weight: 1, active: 0, inactive: 255 }];
        assert_eq!(picks(Scheduler::Lc, &b, 1), [1]);
        let b = [Backend { weight: 1, active: 1, inactive: 0 }, Backend { weight: 1, active: 0, inactive: 257 }];
        assert_eq!(picks(Scheduler::Lc, &b, 1), [0]);
        // Weight 0 is skipped even when idle.
        let b = [Backend { weight: 0, active: 0, inactive: 0 }, Backend::new(5)];
        assert_eq!(picks(Scheduler::Lc, &b, 1), [1]);
    }

    #[test]
    fn sed_weighs_the_expected_delay() {
        // (active + 1) / weight: 3/1 = 3, 4/2 = 2, 1/1 = 1.
        let b = [Backend::new(2), Backend { weight: 2, active: 3, inactive: 0 }, Backend::new(0)];
        assert_eq!(picks(Scheduler::Sed, &b, 1), [2]);
        // 3/1 vs 4/2: the heavier one, although busier.
        let b = [Backend::new(2), Backend { weight: 2, active: 3, inactive: 0 }];
        assert_eq!(picks(Scheduler::Sed, &b, 1), [1]);
        // Unlike nq, an idle heavy backend does not beat an idle light one only by being idle:
        // 1/1 vs 2/4.
        let b = [Backend::new(0), Backend { weight: 4, active: 1, inactive: 0 }];
        assert_eq!(picks(Scheduler::Sed, &b, 1), [1]);
        assert_eq!(picks(Scheduler::Sed, &[Backend::new(1), Backend::new(1)], 1), [0], "tie: the first");
    }

    #[test]
    fn nq_takes_an_idle_backend_first() {
        let b = [Backend::new(0), Backend { weight: 4, active: 1, inactive: 0 }];
        assert_eq!(picks(Scheduler::Nq, &b, 1), [0], "idle wins although sed would say otherwise");
        let b = [Backend::new(3), Backend::new(1), Backend::new(0), Backend::new(0)];
        assert_eq!(picks(Scheduler::Nq, &b, 1), [2], "the first idle one");
        let b = [Backend::new(2), Backend { weight: 2, active: 3, inactive: 0 }];
        assert_eq!(picks(Scheduler::Nq, &b, 1), [1], "none idle: shortest expected delay");
    }

    #[test]
    fn dh_pins_a_destination_whoever_the_client() {
        let b = idle(3);
        let mut state = SchedState::default();
        for service in ["10.96.0.10", "10.96.0.11", "fd00:96::10"] {
            let first = Scheduler::Dh.pick(&b, &mut state, ip("10.0.0.1"), ip(service)).unwrap();
            for client in ["10.0.0.2", "10.0.0.3", "192.168.7.7"] {
                assert_eq!(Scheduler::Dh.pick(&b, &mut state, ip(client), ip(service)), Some(first), "{service}");
            }
            assert_eq!(first, dh_bucket(ip(service)) % 3);
        }
        // Different destinations spread over the backends.
        let used: std::collections::BTreeSet<usize> = (0..=255u8)
            .map(|i| Scheduler::Dh.pick(&b, &mut state, ip("10.0.0.1"), ip(&format!("10.96.0.{i}"))).unwrap())
            .collect();
        assert_eq!(used.len(), 3);
        // The bucket's backend quiesced: nothing (no fallback).
        let mut q = idle(3);
        q[dh_bucket(ip("10.96.0.10")) % 3].weight = 0;
        assert_eq!(Scheduler::Dh.pick(&q, &mut state, ip("10.0.0.1"), ip("10.96.0.10")), None);
    }

    #[test]
    fn sh_pins_a_client_whatever_the_destination() {
        let b = idle(3);
        let mut state = SchedState::default();
        for client in ["10.0.0.1", "10.0.0.2", "fd00::1"] {
            let first = Scheduler::Sh.pick(&b, &mut state, ip(client), ip("10.96.0.10")).unwrap();
            for service in ["10.96.0.10", "10.96.0.11", "10.250.1.1"] {
                assert_eq!(Scheduler::Sh.pick(&b, &mut state, ip(client), ip(service)), Some(first), "{client}");
            }
        }
        let used: std::collections::BTreeSet<usize> = (0..=255u8)
            .map(|i| Scheduler::Sh.pick(&b, &mut state, ip(&format!("10.0.0.{i}")), ip("10.96.0.10")).unwrap())
            .collect();
        assert_eq!(used.len(), 3, "clients spread over the backends");
        // Buckets are dealt in runs of the weights: weight 3 then 1 owns 3 of every 4 buckets.
        let w = [Backend { weight: 3, active: 0, inactive: 0 }, Backend::new(0)];
        assert_eq!(hashed(&w, 0, true), Some(0));
        assert_eq!(hashed(&w, 2, true), Some(0));
        assert_eq!(hashed(&w, 3, true), Some(1));
        assert_eq!(hashed(&w, 4, true), Some(0));
        let owned = (0..HASH_BUCKETS).filter(|b| hashed(&w, *b, true) == Some(0)).count();
        assert_eq!(owned, 192);
    }

    #[test]
    fn hash_keys_follow_ipvs() {
        // ip_vs_dh: (ntohl(addr) * 2654435761) & 255.
        assert_eq!(dh_bucket(ip("0.0.0.1")), (2_654_435_761u32 & 255) as usize);
        assert_eq!(dh_bucket(ip("0.0.0.0")), 0);
        // hash_32(addr, 8): (addr * 0x61C88647) >> 24.
        assert_eq!(sh_bucket(ip("0.0.0.1")), 0x61);
        // IPv6 folds its four words.
        assert_eq!(fold(ip("::1")), 1);
        assert_eq!(fold(ip("1::1")), 0x0001_0000 ^ 1);
    }
}
