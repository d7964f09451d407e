//! A small Prometheus registry with CoreDNS's metric names (`coredns_dns_requests_total`, …):
//! counters, gauges and histograms keyed by label values, rendered in the text exposition format.
//! Pure: the `prometheus` plugin serves [`Metrics::render`] over HTTP.
//!
//! Every query updates five series, from every thread that answers: counters and histograms are
//! kept in shards, one per thread (as far as [`SHARDS`] allows), summed when read, so that the
//! threads do not wait on one lock (perf: a third of the server's time went to one contended
//! mutex and the scheduler it woke). Gauges, which are set rather than added to, live in the
//! first shard only.
//!
//! An update finds its family by the address of its static [`Desc`] and its series by a hash
//! of its labels (used as is, not hashed again), and a histogram observation increments one
//! bucket (made cumulative when rendered): the registry is on every query's path.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// What a metric is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MetricKind {
    Counter,
    Gauge,
    /// A histogram with these upper bounds (ascending; `+Inf` is implied).
    Histogram(&'static [f64]),
}

/// A metric's name, help and kind.
#[derive(Debug)]
pub struct Desc {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: MetricKind,
}

/// CoreDNS's duration buckets (0.25ms doubling to ~8s).
pub const TIME_BUCKETS: &[f64] = &[
    0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192,
];
/// CoreDNS's message size buckets.
pub const SIZE_BUCKETS: &[f64] =
    &[0.0, 100.0, 200.0, 300.0, 400.0, 511.0, 1023.0, 2047.0, 4095.0, 8291.0, 16e3, 32e3, 48e3, 64e3];

macro_rules! desc {
    ($id:ident, $name:literal, $kind:expr, $help:literal) => {
        #[doc = $help]
        pub static $id: Desc = Desc { name: $name, help: $help, kind: $kind };
    };
}

use MetricKind::{Counter, Gauge, Histogram};
desc!(
    BUILD_INFO,
    "coredns_build_info",
    Gauge,
    "A metric with a constant '1' value labeled by version, revision, and goversion from which CoreDNS was built."
);
desc!(
    PLUGIN_ENABLED,
    "coredns_plugin_enabled",
    Gauge,
    "A metric that indicates whether a plugin is enabled on per server and zone basis."
);
desc!(
    DNS_REQUESTS_TOTAL,
    "coredns_dns_requests_total",
    Counter,
    "Counter of DNS requests made per zone, protocol and family."
);
desc!(DNS_RESPONSES_TOTAL, "coredns_dns_responses_total", Counter, "Counter of response status codes.");
desc!(
    DNS_REQUEST_DURATION_SECONDS,
    "coredns_dns_request_duration_seconds",
    Histogram(TIME_BUCKETS),
    "Histogram of the time (in seconds) each request took per zone."
);
desc!(
    DNS_REQUEST_SIZE_BYTES,
    "coredns_dns_request_size_bytes",
    Histogram(SIZE_BUCKETS),
    "Size of the EDNS0 UDP buffer in bytes (64K for TCP) per zone and protocol."
);
desc!(
    DNS_RESPONSE_SIZE_BYTES,
    "coredns_dns_response_size_bytes",
    Histogram(SIZE_BUCKETS),
    "Size of the returned response in bytes."
);
desc!(CACHE_ENTRIES, "coredns_cache_entries", Gauge, "The number of elements in the cache.");
desc!(CACHE_REQUESTS_TOTAL, "coredns_cache_requests_total", Counter, "The count of cache requests.");
desc!(CACHE_HITS_TOTAL, "coredns_cache_hits_total", Counter, "The count of cache hits.");
desc!(
    CACHE_MISSES_TOTAL,
    "coredns_cache_misses_total",
    Counter,
    "The count of cache misses. Deprecated, derive misses from cache hits/requests counters."
);
desc!(
    CACHE_PREFETCH_TOTAL,
    "coredns_cache_prefetch_total",
    Counter,
    "The number of times the cache has prefetched a cached item."
);
desc!(
    CACHE_SERVED_STALE_TOTAL,
    "coredns_cache_served_stale_total",
    Counter,
    "The number of requests served from stale cache entries."
);
desc!(CACHE_EVICTIONS_TOTAL, "coredns_cache_evictions_total", Counter, "The count of cache evictions.");
desc!(FORWARD_REQUESTS_TOTAL, "coredns_forward_requests_total", Counter, "Counter of requests made per upstream.");
desc!(
    FORWARD_RESPONSES_TOTAL,
    "coredns_forward_responses_total",
    Counter,
    "Counter of responses received per upstream."
);
desc!(
    FORWARD_REQUEST_DURATION_SECONDS,
    "coredns_forward_request_duration_seconds",
    Histogram(TIME_BUCKETS),
    "Histogram of the time each request took."
);
desc!(
    FORWARD_HEALTHCHECK_FAILURES_TOTAL,
    "coredns_forward_healthcheck_failures_total",
    Counter,
    "Counter of the number of failed healthchecks."
);
desc!(
    FORWARD_HEALTHCHECK_BROKEN_TOTAL,
    "coredns_forward_healthcheck_broken_total",
    Counter,
    "Counter of the number of complete failures of the healthchecks."
);
desc!(
    FORWARD_MAX_CONCURRENT_REJECTS_TOTAL,
    "coredns_forward_max_concurrent_rejects_total",
    Counter,
    "Counter of the number of queries rejected because the concurrent queries were at maximum."
);
desc!(HOSTS_ENTRIES, "coredns_hosts_entries", Gauge, "The combined number of entries in hosts and Corefile.");
desc!(
    HOSTS_RELOAD_TIMESTAMP_SECONDS,
    "coredns_hosts_reload_timestamp_seconds",
    Gauge,
    "The timestamp of the last reload of hosts file."
);
desc!(RELOAD_FAILED_TOTAL, "coredns_reload_failed_total", Counter, "Counter of the number of failed reload attempts.");

type Labels = Vec<(&'static str, String)>;

#[derive(Debug, Clone)]
enum Series {
    Value(f64),
    /// `counts[i]`: observations in bucket `i` alone (at most its bound, above the one before);
    /// the last is `+Inf`'s. Made cumulative when rendered.
    Histogram {
        counts: Vec<u64>,
        sum: f64,
        count: u64,
    },
}

/// A hasher for keys that are hashes already ([`label_hash`]): it passes the `u64` through.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

struct Family {
    desc: &'static Desc,
    /// The series by the hash of their label pairs ([`label_hash`]), so an update finds its series
    /// without building its labels (a bucket holds more than one only on a hash collision).
    series: HashMap<u64, Vec<(Labels, Series)>, BuildHasherDefault<PassThrough>>,
}

impl Family {
    fn iter(&self) -> impl Iterator<Item = (&Labels, &Series)> {
        self.series.values().flatten().map(|(l, s)| (l, s))
    }
}

/// A hash of the label pairs (names and values, each followed by a 0xff byte, which UTF-8 text
/// never holds): foldhash, which takes the bytes eight at a time (FNV, a byte at a time, cost
/// about 60 ns per update).
fn label_hash(pairs: &[(&str, &str)]) -> u64 {
    use std::hash::BuildHasher;
    let mut h = foldhash::fast::FixedState::with_seed(0x9e37_79b9_7f4a_7c15).build_hasher();
    for (k, v) in pairs {
        h.write(k.as_bytes());
        h.write_u8(0xff);
        h.write(v.as_bytes());
        h.write_u8(0xff);
    }
    h.finish()
}

fn same_labels(l: &Labels, pairs: &[(&str, &str)]) -> bool {
    l.len() == pairs.len() && l.iter().zip(pairs).all(|((k, v), (pk, pv))| k == pk && v == pv)
}

/// How many shards counters and histograms are spread over.
pub const SHARDS: usize = 8;

/// The families of one shard (a handful), found by their descriptor's address.
type Shard = Vec<Family>;

fn family<'s>(shard: &'s mut Shard, desc: &'static Desc) -> &'s mut Family {
    match shard.iter().position(|f| std::ptr::eq(f.desc, desc)) {
        Some(i) => &mut shard[i],
        None => {
            shard.push(Family { desc, series: HashMap::default() });
            shard.last_mut().expect("just pushed")
        }
    }
}

/// The shard of the calling thread: threads are numbered as they first record.
fn thread_shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    SHARD.with(|s| *s)
}

/// The registry every plugin of a process records into.
pub struct Metrics {
    shards: [Mutex<Shard>; SHARDS],
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics { shards: std::array::from_fn(|_| Mutex::default()) }
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    fn with(&self, desc: &'static Desc, pairs: &[(&'static str, &str)], f: impl FnOnce(&mut Series)) {
        let shard = if desc.kind == MetricKind::Gauge { 0 } else { thread_shard() };
        let mut families = self.shards[shard].lock().expect("metrics lock");
        let bucket = family(&mut families, desc).series.entry(label_hash(pairs)).or_default();
        let i = match bucket.iter().position(|(l, _)| same_labels(l, pairs)) {
            Some(i) => i,
            None => {
                let new = match desc.kind {
                    MetricKind::Histogram(b) => Series::Histogram { counts: vec![0; b.len() + 1], sum: 0.0, count: 0 },
                    _ => Series::Value(0.0),
                };
                bucket.push((labels(pairs), new));
                bucket.len() - 1
            }
        };
        f(&mut bucket[i].1);
    }

    /// Adds one to a counter.
    pub fn inc(&self, desc: &'static Desc, pairs: &[(&'static str, &str)]) {
        self.add(desc, pairs, 1.0);
    }

    /// Adds `v` to a counter or gauge.
    pub fn add(&self, desc: &'static Desc, pairs: &[(&'static str, &str)], v: f64) {
        self.with(desc, pairs, |s| {
            if let Series::Value(x) = s {
                *x += v;
            }
        });
    }

    /// Sets a gauge.
    pub fn set(&self, desc: &'static Desc, pairs: &[(&'static str, &str)], v: f64) {
        self.with(desc, pairs, |s| {
            if let Series::Value(x) = s {
                *x = v;
            }
        });
    }

    /// Records `v` in a histogram.
    pub fn observe(&self, desc: &'static Desc, pairs: &[(&'static str, &str)], v: f64) {
        let MetricKind::Histogram(bounds) = desc.kind else {
            return;
        };
        let bucket = bounds.partition_point(|b| *b < v);
        self.with(desc, pairs, |s| {
            if let Series::Histogram { counts, sum, count } = s {
                counts[bucket] += 1;
                *sum += v;
                *count += 1;
            }
        });
    }

    /// Every series of the family `name`, summed over the shards, by labels; `None` if none was
    /// recorded.
    fn merged(&self, name: &str) -> Option<(&'static Desc, BTreeMap<Labels, Series>)> {
        let mut desc = None;
        let mut out: BTreeMap<Labels, Series> = BTreeMap::new();
        for shard in &self.shards {
            let families = shard.lock().expect("metrics lock");
            let Some(family) = families.iter().find(|f| f.desc.name == name) else { continue };
            desc = Some(family.desc);
            for (labels, series) in family.iter() {
                match out.get_mut(labels) {
                    None => {
                        out.insert(labels.clone(), series.clone());
                    }
                    Some(Series::Value(total)) => {
                        if let Series::Value(v) = series {
                            *total += v;
                        }
                    }
                    Some(Series::Histogram { counts, sum, count }) => {
                        if let Series::Histogram { counts: c, sum: s, count: n } = series {
                            counts.iter_mut().zip(c).for_each(|(a, b)| *a += b);
                            *sum += s;
                            *count += n;
                        }
                    }
                }
            }
        }
        Some((desc?, out))
    }

    /// A counter's or gauge's value, or a histogram's count; `None` if never recorded.
    pub fn value(&self, name: &str, pairs: &[(&str, &str)]) -> Option<f64> {
        let (_, series) = self.merged(name)?;
        series.iter().find_map(|(l, s)| {
            same_labels(l, pairs).then_some(match s {
                Series::Value(v) => *v,
                Series::Histogram { count, .. } => *count as f64,
            })
        })
    }

    /// The sum of a metric over all its label values.
    pub fn total(&self, name: &str) -> f64 {
        self.merged(name).map_or(0.0, |(_, series)| {
            series
                .values()
                .map(|s| match s {
                    Series::Value(v) => *v,
                    Series::Histogram { count, .. } => *count as f64,
                })
                .sum()
        })
    }

    /// Everything in Prometheus's text format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut names: Vec<&'static str> = Vec::new();
        for shard in &self.shards {
            names.extend(shard.lock().expect("metrics lock").iter().map(|f| f.desc.name));
        }
        names.sort_unstable();
        names.dedup();
        let mut out = String::new();
        for (d, series) in names.into_iter().filter_map(|n| self.merged(n)) {
            let kind = match d.kind {
                MetricKind::Counter => "counter",
                MetricKind::Gauge => "gauge",
                MetricKind::Histogram(_) => "histogram",
            };
            let _ = writeln!(out, "# HELP {} {}", d.name, d.help);
            let _ = writeln!(out, "# TYPE {} {kind}", d.name);
            for (l, s) in &series {
                match s {
                    Series::Value(v) => {
                        let _ = writeln!(out, "{}{} {}", d.name, render_labels(l, None), number(*v));
                    }
                    Series::Histogram { counts, sum, count } => {
                        let MetricKind::Histogram(bounds) = d.kind else { continue };
                        let mut cumulative = 0;
                        for (b, c) in bounds.iter().zip(counts) {
                            cumulative += c;
                            let le = number(*b);
                            let _ = writeln!(out, "{}_bucket{} {cumulative}", d.name, render_labels(l, Some(&le)));
                        }
                        let _ = writeln!(out, "{}_bucket{} {count}", d.name, render_labels(l, Some("+Inf")));
                        let _ = writeln!(out, "{}_sum{} {}", d.name, render_labels(l, None), number(*sum));
                        let _ = writeln!(out, "{}_count{} {count}", d.name, render_labels(l, None));
                    }
                }
            }
        }
        out
    }
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn render_labels(l: &Labels, le: Option<&str>) -> String {
    let mut parts: Vec<String> = l.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_gauges_and_histograms_render() {
        let m = Metrics::new();
        let l = [("server", "dns://:53"), ("zone", ".")];
        m.inc(&DNS_REQUESTS_TOTAL, &l);
        m.inc(&DNS_REQUESTS_TOTAL, &l);
        m.set(&CACHE_ENTRIES, &[("type", "success")], 3.0);
        m.observe(&DNS_REQUEST_DURATION_SECONDS, &[("zone", ".")], 0.003);
        assert_eq!(m.value("coredns_dns_requests_total", &l), Some(2.0));
        assert_eq!(m.value("coredns_dns_requests_total", &[("zone", ".")]), None);
        assert_eq!(m.total("coredns_dns_request_duration_seconds"), 1.0);
        let text = m.render();
        assert!(text.contains("# TYPE coredns_dns_requests_total counter\n"));
        assert!(text.contains("coredns_dns_requests_total{server=\"dns://:53\",zone=\".\"} 2\n"));
        assert!(text.contains("coredns_cache_entries{type=\"success\"} 3\n"));
        assert!(text.contains("coredns_dns_request_duration_seconds_bucket{zone=\".\",le=\"0.002\"} 0\n"));
        assert!(text.contains("coredns_dns_request_duration_seconds_bucket{zone=\".\",le=\"0.004\"} 1\n"));
        assert!(text.contains("coredns_dns_request_duration_seconds_bucket{zone=\".\",le=\"+Inf\"} 1\n"));
        // On a bound, and beyond the last: cumulative counts.
        m.observe(&DNS_REQUEST_DURATION_SECONDS, &[("zone", ".")], 0.004);
        m.observe(&DNS_REQUEST_DURATION_SECONDS, &[("zone", ".")], 10.0);
        let text = m.render();
        assert!(text.contains("coredns_dns_request_duration_seconds_bucket{zone=\".\",le=\"0.004\"} 2\n"), "{text}");
        assert!(text.contains("coredns_dns_request_duration_seconds_bucket{zone=\".\",le=\"8.192\"} 2\n"));
        assert!(text.contains("coredns_dns_request_duration_seconds_bucket{zone=\".\",le=\"+Inf\"} 3\n"));
        assert!(text.contains("coredns_dns_request_duration_seconds_count{zone=\".\"} 3\n"));
    }

    #[test]
    fn series_are_kept_apart_and_rendered_in_order() {
        let m = Metrics::new();
        for (zone, n) in [("b.", 3), ("a.", 2), ("c.", 1)] {
            for _ in 0..n {
                m.inc(&DNS_REQUESTS_TOTAL, &[("zone", zone)]);
            }
        }
        assert_eq!(m.value("coredns_dns_requests_total", &[("zone", "b.")]), Some(3.0));
        assert_eq!(m.value("coredns_dns_requests_total", &[("zone", "a.")]), Some(2.0));
        assert_eq!(m.value("coredns_dns_requests_total", &[("zone", "d.")]), None);
        assert_eq!(m.total("coredns_dns_requests_total"), 6.0);
        let text = m.render();
        let (a, b, c) = (text.find("zone=\"a.\"} 2"), text.find("zone=\"b.\"} 3"), text.find("zone=\"c.\"} 1"));
        assert!(a.is_some() && a < b && b < c, "{text}");
    }

    #[test]
    fn threads_record_into_shards_and_reads_sum_them() {
        let m = std::sync::Arc::new(Metrics::new());
        let threads: Vec<_> = (0..2 * SHARDS)
            .map(|_| {
                let m = m.clone();
                std::thread::spawn(move || {
                    for _ in 0..100 {
                        m.inc(&DNS_REQUESTS_TOTAL, &[("zone", ".")]);
                        m.observe(&DNS_REQUEST_DURATION_SECONDS, &[("zone", ".")], 0.001);
                    }
                    m.set(&CACHE_ENTRIES, &[("type", "success")], 7.0);
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        let total = (200 * SHARDS) as f64;
        assert_eq!(m.value("coredns_dns_requests_total", &[("zone", ".")]), Some(total));
        assert_eq!(m.total("coredns_dns_request_duration_seconds"), total);
        assert_eq!(m.value("coredns_cache_entries", &[("type", "success")]), Some(7.0), "gauges are not summed");
        let text = m.render();
        assert!(text.contains(&format!("coredns_dns_requests_total{{zone=\".\"}} {total}\n")), "{text}");
        assert!(text.contains(&format!("coredns_dns_request_duration_seconds_count{{zone=\".\"}} {total}\n")));
        assert_eq!(text.matches("# TYPE coredns_dns_requests_total counter").count(), 1);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
