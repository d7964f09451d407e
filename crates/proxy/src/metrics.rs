//! The proxy's metrics in Prometheus' text format, under kube-proxy's names where they exist
//! (`kubeproxy_sync_proxy_rules_duration_seconds`, `kubeproxy_network_programming_duration_seconds`,
//! `kubeproxy_sync_proxy_rules_last_timestamp_seconds`, …).

use std::fmt::Write;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// Histogram buckets (seconds), kube-proxy's exponential ones from 1 ms.
const BUCKETS: &[f64] =
    &[0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192, 16.384];

#[derive(Default, Clone)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, d: Duration) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS.len()];
        }
        let s = d.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if s <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum += s;
        self.count += 1;
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {}", self.counts.get(i).copied().unwrap_or(0));
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{le=\"+Inf\"}} {}\n{name}_sum {}\n{name}_count {}",
            self.count, self.sum, self.count
        );
    }
}

/// Everything the proxy counts.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    sync_duration: Histogram,
    full_sync_duration: Histogram,
    partial_sync_duration: Histogram,
    programming: Histogram,
    last_sync: Option<SystemTime>,
    last_queued: Option<SystemTime>,
    sync_failures: u64,
    services: usize,
    endpoints: usize,
}

impl Metrics {
    /// Records a successful sync.
    pub fn synced(&self, took: Duration, full: bool, services: usize, endpoints: usize) {
        let mut m = self.inner.lock().expect("metrics");
        m.sync_duration.observe(took);
        if full {
            m.full_sync_duration.observe(took)
        } else {
            m.partial_sync_duration.observe(took)
        }
        m.last_sync = Some(SystemTime::now());
        m.services = services;
        m.endpoints = endpoints;
    }

    pub fn failed(&self) {
        self.inner.lock().expect("metrics").sync_failures += 1;
    }

    pub fn queued(&self) {
        self.inner.lock().expect("metrics").last_queued = Some(SystemTime::now());
    }

    /// Time from an endpoints change (its trigger time) to its rules being in the kernel.
    pub fn programmed(&self, latency: Duration) {
        self.inner.lock().expect("metrics").programming.observe(latency);
    }

    /// The last successful sync.
    pub fn last_sync(&self) -> Option<SystemTime> {
        self.inner.lock().expect("metrics").last_sync
    }

    /// The text exposition.
    pub fn render(&self, mode: &str) -> String {
        let m = self.inner.lock().expect("metrics");
        let mut out = String::new();
        m.sync_duration.render(
            "kubeproxy_sync_proxy_rules_duration_seconds",
            "SyncProxyRules latency in seconds",
            &mut out,
        );
        m.full_sync_duration.render(
            "kubeproxy_sync_full_proxy_rules_duration_seconds",
            "SyncProxyRules latency in seconds for full resyncs",
            &mut out,
        );
        m.partial_sync_duration.render(
            "kubeproxy_sync_partial_proxy_rules_duration_seconds",
            "SyncProxyRules latency in seconds for partial resyncs",
            &mut out,
        );
        m.programming.render(
            "kubeproxy_network_programming_duration_seconds",
            "In Cluster Network Programming Latency in seconds",
            &mut out,
        );
        let ts = |t: Option<SystemTime>| {
            t.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok()).map(|d| d.as_secs_f64()).unwrap_or(0.0)
        };
        let _ = writeln!(out, "# HELP kubeproxy_sync_proxy_rules_last_timestamp_seconds The last time proxy rules were successfully synced\n# TYPE kubeproxy_sync_proxy_rules_last_timestamp_seconds gauge\nkubeproxy_sync_proxy_rules_last_timestamp_seconds {}", ts(m.last_sync));
        let _ = writeln!(out, "# HELP kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds The last time a sync of proxy rules was queued\n# TYPE kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds gauge\nkubeproxy_sync_proxy_rules_last_queued_timestamp_seconds {}", ts(m.last_queued));
        let _ = writeln!(out, "# HELP podnet_proxy_sync_failures_total Syncs that failed\n# TYPE podnet_proxy_sync_failures_total counter\npodnet_proxy_sync_failures_total {}", m.sync_failures);
        let _ = writeln!(out, "# HELP podnet_proxy_service_ports Service ports programmed\n# TYPE podnet_proxy_service_ports gauge\npodnet_proxy_service_ports{{mode=\"{mode}\"}} {}", m.services);
        let _ = writeln!(out, "# HELP podnet_proxy_endpoints Endpoints programmed\n# TYPE podnet_proxy_endpoints gauge\npodnet_proxy_endpoints{{mode=\"{mode}\"}} {}", m.endpoints);
        out
    }
}
