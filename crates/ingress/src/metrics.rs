//! The data plane's Prometheus metrics, under ingress-nginx's names so its dashboards and alerts
//! keep working: `nginx_ingress_controller_requests` (counter by ingress, host, rule path,
//! service and status), `nginx_ingress_controller_request_duration_seconds`,
//! `nginx_ingress_controller_request_size` and `nginx_ingress_controller_response_size`
//! (histograms), plus a few podnet gauges and counters about connections and retries.
//!
//! The hot path is cheap: one series per route (namespace, ingress, host, path, service),
//! created the first time the route serves a request and found again through a hash of borrowed
//! strings under a read lock (no allocation); counting is relaxed atomics, statuses are an array
//! indexed by code, and each data-plane worker thread counts in a shard of its own. Label sets are bounded by the Ingresses (hosts are the rules' hosts, not the
//! request's), so a client cannot grow them.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Upper bounds of the duration buckets, in seconds (Prometheus' default buckets, as
/// ingress-nginx uses).
const DURATION_BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Upper bounds of the size buckets, in bytes (ingress-nginx: exponential 10 × 10ⁿ).
const SIZE_BUCKETS: [f64; 7] = [10.0, 100.0, 1e3, 1e4, 1e5, 1e6, 1e7];
/// Statuses counted: 100 ..= 599.
const STATUS_MIN: u16 = 100;
const STATUS_COUNT: usize = 500;

/// The labels of one series. `host` is the rule's host (`*.foo.com` for wildcards, `_` for
/// rules without a host); `ingress` and `path` are empty for requests no rule took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteLabels {
    pub namespace: String,
    pub ingress: String,
    pub host: String,
    pub path: String,
    pub service: String,
}

/// Borrowed labels, for lookups without allocating.
#[derive(Debug, Clone, Copy)]
pub struct LabelsRef<'a> {
    pub namespace: &'a str,
    pub ingress: &'a str,
    /// The rule's host; for a wildcard rule the part after `*.` (with `wildcard` set).
    pub host: &'a str,
    pub wildcard: bool,
    pub path: &'a str,
    pub service: &'a str,
}

impl LabelsRef<'_> {
    fn parts(&self) -> [&str; 5] {
        [self.namespace, self.ingress, self.host, self.path, self.service]
    }

    fn hash(&self) -> u64 {
        let start = fnv1a(FNV_OFFSET, &[u8::from(self.wildcard)]);
        self.parts().iter().fold(start, |h, p| fnv1a(fnv1a(h, p.as_bytes()), &[0xff]))
    }

    fn is(&self, labels: &RouteLabels) -> bool {
        let host = if self.wildcard { labels.host.strip_prefix("*.") } else { Some(labels.host.as_str()) };
        host == Some(self.host)
            && [self.namespace, self.ingress, self.path, self.service]
                == [&*labels.namespace, &*labels.ingress, &*labels.path, &*labels.service]
    }

    fn owned(&self) -> RouteLabels {
        RouteLabels {
            namespace: self.namespace.into(),
            ingress: self.ingress.into(),
            host: if self.wildcard { format!("*.{}", self.host) } else { self.host.into() },
            path: self.path.into(),
            service: self.service.into(),
        }
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a, continued from `hash`: small, fast and stable across processes and releases.
pub(crate) fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// FNV-1a of `bytes` from the standard offset.
pub(crate) fn fnv1a_of(bytes: &[u8]) -> u64 {
    fnv1a(FNV_OFFSET, bytes)
}

/// A fixed-bucket histogram of atomics.
#[derive(Debug)]
struct Histogram<const N: usize> {
    bounds: &'static [f64; N],
    /// Non-cumulative counts per bucket; index N is +Inf.
    buckets: [AtomicU64; N],
    overflow: AtomicU64,
    /// Sum in the unit of `scale` (µs for durations, bytes for sizes).
    sum: AtomicU64,
    count: AtomicU64,
    /// What one unit of `sum` is worth in the exported unit.
    scale: f64,
}

impl<const N: usize> Histogram<N> {
    fn new(bounds: &'static [f64; N], scale: f64) -> Self {
        Histogram {
            bounds,
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            overflow: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            count: AtomicU64::new(0),
            scale,
        }
    }

    /// Records `units` (µs or bytes).
    fn observe(&self, units: u64) {
        let value = units as f64 * self.scale;
        match self.bounds.iter().position(|b| value <= *b) {
            Some(i) => self.buckets[i].fetch_add(1, Ordering::Relaxed),
            None => self.overflow.fetch_add(1, Ordering::Relaxed),
        };
        self.sum.fetch_add(units, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Renders the sum of `parts` (one histogram kept in shards).
    fn render<'a>(parts: impl Iterator<Item = &'a Self> + Clone, out: &mut String, name: &str, labels: &str)
    where
        Self: 'a,
    {
        let total = |f: &dyn Fn(&Self) -> u64| parts.clone().map(f).sum::<u64>();
        let Some(first) = parts.clone().next() else { return };
        let mut cumulative = 0;
        for (i, bound) in first.bounds.iter().enumerate() {
            cumulative += total(&|h| h.buckets[i].load(Ordering::Relaxed));
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
        }
        cumulative += total(&|h| h.overflow.load(Ordering::Relaxed));
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {cumulative}");
        let sum = total(&|h| h.sum.load(Ordering::Relaxed)) as f64 * first.scale;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", total(&|h| h.count.load(Ordering::Relaxed)));
    }
}

/// What one thread counts for a route: a shard of its [`RouteSeries`], on cache lines of its own.
#[derive(Debug)]
#[repr(align(128))]
struct Counters {
    statuses: Box<[AtomicU64]>,
    duration: Histogram<11>,
    request_size: Histogram<7>,
    response_size: Histogram<7>,
}

/// Shards per series: the data plane's worker threads count apart (summed when rendered), so
/// that two cores never contend for the counters of one route on every request.
const SHARDS: usize = 4;

fn shard() -> usize {
    crate::proxy::workers::worker_index() % SHARDS
}

/// The counters of one route.
#[derive(Debug)]
pub struct RouteSeries {
    pub labels: RouteLabels,
    shards: Box<[Counters]>,
}

impl RouteSeries {
    fn new(labels: RouteLabels) -> Self {
        let counters = || Counters {
            statuses: (0..STATUS_COUNT).map(|_| AtomicU64::new(0)).collect(),
            duration: Histogram::new(&DURATION_BUCKETS, 1e-6),
            request_size: Histogram::new(&SIZE_BUCKETS, 1.0),
            response_size: Histogram::new(&SIZE_BUCKETS, 1.0),
        };
        RouteSeries { labels, shards: (0..SHARDS).map(|_| counters()).collect() }
    }

    /// The calling thread's shard.
    fn counters(&self) -> &Counters {
        &self.shards[shard()]
    }

    /// Records a finished request (its response head sent): status, time to the response
    /// head, and the request's size (head estimate plus body bytes read).
    pub fn record(&self, status: u16, elapsed: Duration, request_bytes: u64) {
        let c = self.counters();
        if let Some(slot) = status.checked_sub(STATUS_MIN).and_then(|i| c.statuses.get(usize::from(i))) {
            slot.fetch_add(1, Ordering::Relaxed);
        }
        c.duration.observe(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
        c.request_size.observe(request_bytes);
    }

    /// Records the size of a response body once it is sent (or abandoned).
    pub fn record_response_size(&self, bytes: u64) {
        self.counters().response_size.observe(bytes);
    }

    /// The number of requests answered with `status` so far.
    pub fn requests(&self, status: u16) -> u64 {
        let Some(i) = status.checked_sub(STATUS_MIN).map(usize::from).filter(|i| *i < STATUS_COUNT) else {
            return 0;
        };
        self.shards.iter().map(|c| c.statuses[i].load(Ordering::Relaxed)).sum()
    }

    fn label_text(&self) -> String {
        let l = &self.labels;
        format!(
            "host=\"{}\",ingress=\"{}\",namespace=\"{}\",path=\"{}\",service=\"{}\"",
            escape(&l.host),
            escape(&l.ingress),
            escape(&l.namespace),
            escape(&l.path),
            escape(&l.service)
        )
    }
}

/// Prometheus label-value escaping.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// All metrics of the data plane.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Series by the FNV hash of their labels (collisions share the vector).
    series: RwLock<HashMap<u64, Vec<Arc<RouteSeries>>>>,
    pub connections_total: AtomicU64,
    pub connections_active: AtomicU64,
    /// Open connections parked between requests, holding only their socket (nginx's
    /// "waiting" connections).
    pub connections_parked: AtomicU64,
    /// Upstream attempts repeated on another endpoint after a connect failure.
    pub upstream_retries: AtomicU64,
    /// TLS handshakes that failed (or timed out).
    pub tls_handshake_errors: AtomicU64,
}

impl Metrics {
    pub fn new() -> Self {
        Metrics::default()
    }

    /// The series for `labels`, created on first use.
    pub fn series(&self, labels: LabelsRef<'_>) -> Arc<RouteSeries> {
        let hash = labels.hash();
        if let Some(found) = self.find(hash, &labels) {
            return found;
        }
        let mut map = self.series.write().unwrap_or_else(|e| e.into_inner());
        let bucket = map.entry(hash).or_default();
        if let Some(found) = bucket.iter().find(|s| labels.is(&s.labels)) {
            return found.clone();
        }
        let created = Arc::new(RouteSeries::new(labels.owned()));
        bucket.push(created.clone());
        created
    }

    fn find(&self, hash: u64, labels: &LabelsRef<'_>) -> Option<Arc<RouteSeries>> {
        let map = self.series.read().unwrap_or_else(|e| e.into_inner());
        map.get(&hash)?.iter().find(|s| labels.is(&s.labels)).cloned()
    }

    /// The Prometheus text exposition of everything.
    pub fn render(&self) -> String {
        let mut all: Vec<Arc<RouteSeries>> =
            self.series.read().unwrap_or_else(|e| e.into_inner()).values().flatten().cloned().collect();
        all.sort_by(|a, b| {
            let key = |s: &RouteSeries| {
                let l = &s.labels;
                (l.namespace.clone(), l.ingress.clone(), l.host.clone(), l.path.clone(), l.service.clone())
            };
            key(a).cmp(&key(b))
        });
        let labels: Vec<String> = all.iter().map(|s| s.label_text()).collect();
        let mut out = String::with_capacity(4096 + all.len() * 4096);
        out.push_str("# HELP nginx_ingress_controller_requests The total number of client requests\n");
        out.push_str("# TYPE nginx_ingress_controller_requests counter\n");
        for (s, l) in all.iter().zip(&labels) {
            for i in 0..STATUS_COUNT {
                let n: u64 = s.shards.iter().map(|c| c.statuses[i].load(Ordering::Relaxed)).sum();
                if n > 0 {
                    let status = usize::from(STATUS_MIN) + i;
                    let _ = writeln!(out, "nginx_ingress_controller_requests{{{l},status=\"{status}\"}} {n}");
                }
            }
        }
        let durations = "The request processing time in seconds (to the response head)";
        histogram_family(
            &mut out,
            &all,
            &labels,
            "nginx_ingress_controller_request_duration_seconds",
            durations,
            |c| &c.duration,
        );
        let request = "The request length (including headers and body)";
        histogram_family(&mut out, &all, &labels, "nginx_ingress_controller_request_size", request, |c| {
            &c.request_size
        });
        let response = "The response body length";
        histogram_family(&mut out, &all, &labels, "nginx_ingress_controller_response_size", response, |c| {
            &c.response_size
        });
        let gauges = [
            ("podnet_ingress_connections_total", "counter", "Client connections accepted", &self.connections_total),
            ("podnet_ingress_connections_active", "gauge", "Client connections open", &self.connections_active),
            (
                "podnet_ingress_connections_parked",
                "gauge",
                "Client connections idle between requests, parked without buffers",
                &self.connections_parked,
            ),
            (
                "podnet_ingress_upstream_retries_total",
                "counter",
                "Upstream requests retried on another endpoint after a connect failure",
                &self.upstream_retries,
            ),
            (
                "podnet_ingress_tls_handshake_errors_total",
                "counter",
                "TLS handshakes that failed or timed out",
                &self.tls_handshake_errors,
            ),
        ];
        for (name, kind, help, value) in gauges {
            let _ =
                writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}", value.load(Ordering::Relaxed));
        }
        out
    }
}

/// One histogram metric over all series.
fn histogram_family<const N: usize>(
    out: &mut String,
    all: &[Arc<RouteSeries>],
    labels: &[String],
    name: &str,
    help: &str,
    get: impl Fn(&Counters) -> &Histogram<N>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    for (s, l) in all.iter().zip(labels) {
        Histogram::render(s.shards.iter().map(&get), out, name, l);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels<'a>(path: &'a str) -> LabelsRef<'a> {
        LabelsRef { namespace: "default", ingress: "web", host: "foo.com", wildcard: false, path, service: "web" }
    }

    #[test]
    fn series_are_shared_by_labels_and_rendered_in_ingress_nginx_names() {
        let m = Metrics::new();
        let a = m.series(labels("/"));
        let b = m.series(labels("/"));
        assert!(Arc::ptr_eq(&a, &b));
        let c = m.series(labels("/api"));
        assert!(!Arc::ptr_eq(&a, &c));
        let w = m.series(LabelsRef { wildcard: true, ..labels("/") });
        assert!(!Arc::ptr_eq(&a, &w));
        assert_eq!(w.labels.host, "*.foo.com");
        assert!(Arc::ptr_eq(&w, &m.series(LabelsRef { wildcard: true, ..labels("/") })));
        a.record(200, Duration::from_millis(3), 120);
        a.record(200, Duration::from_millis(30), 120);
        a.record(503, Duration::from_secs(20), 80);
        a.record_response_size(5000);
        assert_eq!(a.requests(200), 2);
        let text = m.render();
        assert!(text.contains(
            "nginx_ingress_controller_requests{host=\"foo.com\",ingress=\"web\",namespace=\"default\",path=\"/\",service=\"web\",status=\"200\"} 2"
        ), "{text}");
        assert!(text.contains("status=\"503\"} 1"));
        assert!(text.contains("nginx_ingress_controller_request_duration_seconds_bucket{host=\"foo.com\",ingress=\"web\",namespace=\"default\",path=\"/\",service=\"web\",le=\"0.005\"} 1"), "{text}");
        assert!(text.contains("le=\"+Inf\"} 3"));
        assert!(text.contains("nginx_ingress_controller_response_size_count{host=\"foo.com\",ingress=\"web\",namespace=\"default\",path=\"/\",service=\"web\"} 1"));
        assert!(text.contains("podnet_ingress_connections_active 0"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
