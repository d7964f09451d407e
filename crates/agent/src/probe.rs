//! Readiness, liveness and startup probes as kubelet runs them: httpGet (a GET whose status is
//! 200–399), tcpSocket (a connection opens), exec (the command exits 0 inside the container's
//! namespaces), each with initialDelaySeconds, periodSeconds, timeoutSeconds, successThreshold
//! and failureThreshold. [`ProbeState`] is the pure bookkeeping; [`run`] does one attempt.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Startup,
    Liveness,
    Readiness,
}

/// The probe's timing, with Kubernetes' defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

impl Timing {
    pub fn of(p: &Probe) -> Timing {
        let secs = |v: Option<i32>, d: i32| Duration::from_secs(v.unwrap_or(d).max(0) as u64);
        Timing {
            initial_delay: secs(p.initial_delay_seconds, 0),
            period: secs(p.period_seconds, 10).max(Duration::from_secs(1)),
            timeout: secs(p.timeout_seconds, 1).max(Duration::from_secs(1)),
            success_threshold: p.success_threshold.unwrap_or(1).max(1) as u32,
            failure_threshold: p.failure_threshold.unwrap_or(3).max(1) as u32,
        }
    }
}

/// The running tally of one probe of one container run.
#[derive(Debug, Clone)]
pub struct ProbeState {
    pub timing: Timing,
    /// The current verdict: readiness starts false, liveness and startup start "not failed".
    pub passing: bool,
    successes: u32,
    failures: u32,
    next: Instant,
}

impl ProbeState {
    /// A probe for a container that started at `started`.
    pub fn new(kind: Kind, timing: Timing, started: Instant) -> ProbeState {
        ProbeState {
            timing,
            passing: kind != Kind::Readiness && kind != Kind::Startup,
            successes: 0,
            failures: 0,
            next: started + timing.initial_delay,
        }
    }

    /// Whether an attempt is due at `now`.
    pub fn due(&self, now: Instant) -> bool {
        now >= self.next
    }

    /// Records an attempt's outcome; returns true when the verdict changed.
    pub fn record(&mut self, ok: bool, now: Instant) -> bool {
        self.next = now + self.timing.period;
        let before = self.passing;
        if ok {
            self.failures = 0;
            self.successes += 1;
            if self.successes >= self.timing.success_threshold {
                self.passing = true;
            }
        } else {
            self.successes = 0;
            self.failures += 1;
            if self.failures >= self.timing.failure_threshold {
                self.passing = false;
            }
        }
        before != self.passing
    }

    /// Whether the probe has failed `failureThreshold` times in a row.
    pub fn failed(&self) -> bool {
        self.failures >= self.timing.failure_threshold
    }
}

/// A container port by number or by name.
fn resolve_port(port: &IntOrString, container: &Container) -> Option<u16> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).ok(),
        IntOrString::String(name) => match name.parse::<u16>() {
            Ok(n) => Some(n),
            Err(_) => container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name))
                .and_then(|p| u16::try_from(p.container_port).ok()),
        },
    }
}

/// One attempt of a network probe (httpGet, tcpSocket) against the pod at `pod_ip`. Exec probes
/// are run by the caller, which knows the container's namespaces: this returns `None` for them.
pub async fn run_network(probe: &Probe, container: &Container, pod_ip: IpAddr) -> Option<Result<(), String>> {
    let timeout = Timing::of(probe).timeout;
    let attempt = async {
        if let Some(h) = &probe.http_get {
            let port = resolve_port(&h.port, container).ok_or_else(|| format!("port {:?} not found", h.port))?;
            let host: IpAddr = h.host.as_deref().and_then(|h| h.parse().ok()).unwrap_or(pod_ip);
            let path = h.path.as_deref().filter(|p| !p.is_empty()).unwrap_or("/");
            if h.scheme.as_deref() == Some("HTTPS") {
                // Without a TLS client here, an HTTPS probe checks that the port accepts.
                TcpStream::connect(SocketAddr::new(host, port)).await.map_err(|e| e.to_string())?;
                return Ok(());
            }
            let mut stream = TcpStream::connect(SocketAddr::new(host, port)).await.map_err(|e| e.to_string())?;
            let mut req = format!("GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/1.33\r\nAccept: */*\r\nConnection: close\r\n");
            for hd in h.http_headers.iter().flatten() {
                req.push_str(&format!("{}: {}\r\n", hd.name, hd.value));
            }
            req.push_str("\r\n");
            stream.write_all(req.as_bytes()).await.map_err(|e| e.to_string())?;
            let mut head = [0u8; 64];
            let n = stream.read(&mut head).await.map_err(|e| e.to_string())?;
            let line = String::from_utf8_lossy(&head[..n]);
            let code: u16 =
                line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).ok_or("not an HTTP response")?;
            return if (200..400).contains(&code) {
                Ok(())
            } else {
                Err(format!("HTTP probe failed with statuscode: {code}"))
            };
        }
        if let Some(t) = &probe.tcp_socket {
            let port = resolve_port(&t.port, container).ok_or_else(|| format!("port {:?} not found", t.port))?;
            let host: IpAddr = t.host.as_deref().and_then(|h| h.parse().ok()).unwrap_or(pod_ip);
            TcpStream::connect(SocketAddr::new(host, port)).await.map_err(|e| e.to_string())?;
            return Ok(());
        }
        Err("grpc probes are not supported by podnet's agent".to_string())
    };
    if probe.exec.is_some() {
        return None;
    }
    Some(match tokio::time::timeout(timeout, attempt).await {
        Ok(r) => r,
        Err(_) => Err(format!("timeout after {timeout:?}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_and_delays() {
        let t0 = Instant::now();
        let timing = Timing {
            initial_delay: Duration::from_secs(5),
            period: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            success_threshold: 2,
            failure_threshold: 2,
        };
        let mut r = ProbeState::new(Kind::Readiness, timing, t0);
        assert!(!r.passing && !r.due(t0) && r.due(t0 + Duration::from_secs(5)));
        assert!(!r.record(true, t0 + Duration::from_secs(5)));
        assert!(r.record(true, t0 + Duration::from_secs(7)), "two successes make it ready");
        assert!(!r.record(false, t0 + Duration::from_secs(9)));
        assert!(r.record(false, t0 + Duration::from_secs(11)) && r.failed());
        let l = ProbeState::new(Kind::Liveness, timing, t0);
        assert!(l.passing && !l.failed());
    }

    #[tokio::test]
    async fn http_and_tcp_attempts() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 512];
                let n = s.read(&mut buf).await.unwrap();
                let ok = String::from_utf8_lossy(&buf[..n]).starts_with("GET /healthz ");
                let line = if ok { "HTTP/1.1 200 OK" } else { "HTTP/1.1 500 Oops" };
                let _ = s.write_all(format!("{line}\r\ncontent-length: 0\r\n\r\n").as_bytes()).await;
            }
        });
        let container: Container = serde_json::from_value(serde_json::json!({"name": "c",
            "ports": [{"name": "web", "containerPort": port}]}))
        .unwrap();
        let probe = |v: serde_json::Value| -> Probe { serde_json::from_value(v).unwrap() };
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let ok = probe(serde_json::json!({"httpGet": {"path": "/healthz", "port": "web"}}));
        assert_eq!(run_network(&ok, &container, ip).await, Some(Ok(())));
        let bad = probe(serde_json::json!({"httpGet": {"path": "/", "port": port}}));
        assert_eq!(run_network(&bad, &container, ip).await, Some(Err("HTTP probe failed with statuscode: 500".into())));
        let tcp = probe(serde_json::json!({"tcpSocket": {"port": port}}));
        assert_eq!(run_network(&tcp, &container, ip).await, Some(Ok(())));
        let closed = probe(serde_json::json!({"tcpSocket": {"port": 1}}));
        assert!(matches!(run_network(&closed, &container, ip).await, Some(Err(_))));
        let exec = probe(serde_json::json!({"exec": {"command": ["true"]}}));
        assert_eq!(run_network(&exec, &container, ip).await, None);
    }
}
