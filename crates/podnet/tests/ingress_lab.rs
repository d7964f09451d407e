//! The ingress controller in the lab, driven by real kubectl and reached with real curl: the
//! Deployment and LoadBalancer Service `podnet up` creates (seed 000's node ports 32446 and
//! 30391, brought to the host's loopback with `--port-map`), seed 000's minimal-ingress
//! (`curl http://localhost:32446`), the Ingress's published address from the outside host,
//! host and path rules against the echo server (Prefix element-wise, Exact, 404 from the
//! default backend, 503 without endpoints), rewrite-target with capture groups, load balancing
//! over 10 replicas, X-Forwarded-* headers, TLS by SNI checked with `curl --resolve --cacert`
//! plus the 308 redirect, and an Ingress change plus a rolling restart of the backends under
//! steady load with no failed request.

mod cni_support;
mod common;
mod lab_support;

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lab_support::{eventually_ok, outside_curl, seed, text, Lab, Outside};
use serde_json::Value;

/// `curl` from the host with `args`; the body, or the error with curl's stderr.
fn host_curl(args: &[&str]) -> Result<String, String> {
    let out = Command::new("curl").args(["-sS", "--max-time", "5"]).args(args).output().unwrap();
    if out.status.success() {
        Ok(text(&out.stdout))
    } else {
        Err(text(&out.stderr))
    }
}

/// Status code and body of `GET http://localhost:32446PATH` with `Host: host`.
fn get(host: &str, path: &str) -> (u16, String) {
    let url = format!("http://127.0.0.1:32446{path}");
    let out = host_curl(&["-H", &format!("Host: {host}"), "-w", "\n%{http_code}", &url])
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    let (body, code) = out.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap(), body.to_string())
}

/// The echo server's JSON for a request through the ingress (which must answer 200).
fn echo(host: &str, path: &str) -> Value {
    let (code, body) = get(host, path);
    assert_eq!(code, 200, "{host}{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{host}{path}: {e}: {body}"))
}

/// Waits until `GET host path` answers `code` (the controller applies changes asynchronously).
fn wait_code(host: &str, path: &str, code: u16) {
    eventually_ok(&format!("{host}{path} → {code}"), || {
        let (got, body) = get(host, path);
        if got == code {
            Ok(body)
        } else {
            Err(format!("{got}: {body}"))
        }
    });
}

#[test]
fn ingress_in_the_lab() {
    if !cni_support::privileged("ingress_in_the_lab") {
        return;
    }
    let lab = Lab::up(&["--nodes", "2", "--port-map", "32446:32446", "--port-map", "30391:30391"]);
    // The controller as `podnet up` deploys it.
    let classes = lab.kubectl(&["get", "ingressclass", "-o", "jsonpath={.items[*].metadata.name}"]);
    assert_eq!(
        classes.split_whitespace().collect::<BTreeSet<_>>(),
        BTreeSet::from(["nginx", "nginx-ingress", "podnet"])
    );
    let ports = lab.kubectl(&[
        "get",
        "svc",
        "-n",
        "kube-system",
        "podnet-ingress",
        "-o",
        "jsonpath={.spec.type} {.spec.ports[*].nodePort}",
    ]);
    assert_eq!(ports, "LoadBalancer 32446 30391");

    // Seed 000: a Service web-service and the minimal-ingress manifest, unchanged.
    lab.kubectl(&["create", "deployment", "web", "--image=nginx"]);
    lab.kubectl(&["expose", "deployment", "web", "--name", "web-service", "--port", "80"]);
    lab.kubectl(&["create", "-f", &seed("ingress-resource.yaml")]);
    let page = eventually_ok("curl http://localhost:32446", || host_curl(&["http://localhost:32446"]));
    assert!(page.contains("Welcome to nginx"), "{page}");
    // rewrite-target "/": any path reaches the backend as "/".
    let page = host_curl(&["http://localhost:32446/some/where"]).unwrap();
    assert!(page.contains("Welcome to nginx"), "{page}");
    // The Ingress shows the controller's LoadBalancer address, which answers from outside.
    let address = eventually_ok("the Ingress's address", || {
        let ip =
            lab.kubectl(&["get", "ingress", "minimal-ingress", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}"]);
        if ip.is_empty() {
            Err("none yet".into())
        } else {
            Ok(ip)
        }
    });
    assert!(address.starts_with("172.31.0."), "{address}");
    let (_outside, _) = Outside::start(&lab);
    let page = eventually_ok("outside → the Ingress's address", || outside_curl(&lab, &format!("http://{address}/")));
    assert!(page.contains("Welcome to nginx"), "{page}");

    // Host and path rules against the echo server (10 replicas) and a Service without endpoints.
    lab.kubectl(&["create", "deployment", "echo", "--image=registry.k8s.io/echoserver", "--replicas=10"]);
    lab.kubectl(&["expose", "deployment", "echo", "--port", "80", "--target-port", "8080"]);
    lab.kubectl(&["create", "service", "clusterip", "empty", "--tcp=80:8080"]);
    lab.apply_yaml(
        "rules.yaml",
        r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: rules
spec:
  ingressClassName: podnet
  rules:
  - host: echo.example
    http:
      paths:
      - {path: /foo, pathType: Prefix, backend: {service: {name: echo, port: {number: 80}}}}
      - {path: /exact, pathType: Exact, backend: {service: {name: echo, port: {number: 80}}}}
      - {path: /empty, pathType: Prefix, backend: {service: {name: empty, port: {number: 80}}}}
  - host: "*.wild.example"
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: echo, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: rewrite
  annotations:
    nginx.ingress.kubernetes.io/use-regex: "true"
    nginx.ingress.kubernetes.io/rewrite-target: /$2
spec:
  ingressClassName: podnet
  rules:
  - host: rewrite.example
    http:
      paths:
      - {path: /something(/|$)(.*), pathType: ImplementationSpecific, backend: {service: {name: echo, port: {number: 80}}}}
"#,
    );
    lab.kubectl(&["rollout", "status", "deployment/echo", "--timeout=60s"]);
    wait_code("echo.example", "/foo", 200);
    let e = echo("echo.example", "/foo/bar?x=1");
    assert_eq!(e["path"], "/foo/bar?x=1");
    assert_eq!(e["host"], "echo.example");
    let headers = &e["headers"];
    assert_eq!(headers["X-Forwarded-Host"][0], "echo.example");
    assert_eq!(headers["X-Forwarded-Proto"][0], "http");
    assert!(headers["X-Request-Id"][0].as_str().is_some_and(|id| id.len() == 32), "{headers}");
    assert!(headers["X-Forwarded-For"][0].is_string() && headers["X-Real-Ip"][0].is_string(), "{headers}");
    assert_eq!(get("echo.example", "/foobar").0, 404, "Prefix is element-wise");
    assert_eq!(echo("echo.example", "/exact")["path"], "/exact");
    assert_eq!(get("echo.example", "/exact/").0, 404, "Exact is exact");
    assert_eq!(get("echo.example", "/empty").0, 503, "no endpoints");
    assert_eq!(echo("a.wild.example", "/x")["host"], "a.wild.example");
    assert_eq!(get("a.b.wild.example", "/x").0, 200, "unknown hosts fall to the catch-all (seed 000's rule)");
    // Seed 000's catch-all Ingress answers for unknown hosts; the wildcard covers one label only.
    assert!(get("a.b.wild.example", "/x").1.contains("Welcome to nginx"));
    wait_code("rewrite.example", "/something/new", 200);
    assert_eq!(echo("rewrite.example", "/something/new")["path"], "/new");
    assert_eq!(echo("rewrite.example", "/something")["path"], "/");
    // Load balancing over the 10 replicas (the conformance suite's check): each one answers.
    let pods: BTreeSet<String> =
        (0..50).map(|_| echo("echo.example", "/foo")["pod"].as_str().unwrap().to_string()).collect();
    assert_eq!(pods.len(), 10, "{pods:?}");

    // TLS by SNI: a certificate for secure.example from a kubernetes.io/tls Secret.
    let dir = lab.dir.path();
    let (crt, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    let openssl = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=secure.example"])
        .args(["-addext", "subjectAltName=DNS:secure.example", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .unwrap();
    assert!(openssl.status.success(), "{}", text(&openssl.stderr));
    lab.kubectl(&[
        "create",
        "secret",
        "tls",
        "secure-tls",
        &format!("--cert={}", crt.display()),
        &format!("--key={}", key.display()),
    ]);
    lab.apply_yaml(
        "secure.yaml",
        r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: secure
spec:
  tls:
  - hosts: [secure.example]
    secretName: secure-tls
  rules:
  - host: secure.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: echo, port: {number: 80}}}}
"#,
    );
    let resolve = "secure.example:30391:127.0.0.1";
    let cacert = crt.to_str().unwrap();
    let body = eventually_ok("https://secure.example with its certificate", || {
        host_curl(&["--resolve", resolve, "--cacert", cacert, "https://secure.example:30391/tls"])
    });
    let e: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(e["headers"]["X-Forwarded-Proto"][0], "https");
    // HTTP/2 by ALPN.
    let version = host_curl(&[
        "--resolve",
        resolve,
        "--cacert",
        cacert,
        "--http2",
        "-o",
        "/dev/null",
        "-w",
        "%{http_version}",
        "https://secure.example:30391/",
    ])
    .unwrap();
    assert_eq!(version, "2");
    // Another name gets the default (self-signed) certificate, which curl refuses.
    let other =
        host_curl(&["--resolve", "other.example:30391:127.0.0.1", "--cacert", cacert, "https://other.example:30391/"]);
    assert!(other.is_err(), "{other:?}");
    // ssl-redirect: HTTP for a TLS host is redirected with 308.
    let out = host_curl(&[
        "-H",
        "Host: secure.example",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{redirect_url}",
        "http://127.0.0.1:32446/a?b=1",
    ])
    .unwrap();
    assert_eq!(out, "308 https://secure.example/a?b=1");

    // Changes under steady load: a new path and a rolling restart of the backends, no failure.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut ok, mut failed) = (0, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                // A slow answer is not a failed one: the last --max-time wins, and 20 s allows for
                // retransmitted SYNs (1 s, then 3 s) while the nodes' rules are resynced.
                match host_curl(&[
                    "--max-time",
                    "20",
                    "-H",
                    "Host: echo.example",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    "http://127.0.0.1:32446/foo",
                ]) {
                    Ok(code) if code == "200" => ok += 1,
                    other => failed.push(format!("{other:?}")),
                }
            }
            (ok, failed)
        })
    };
    std::thread::sleep(Duration::from_secs(1));
    lab.kubectl(&["patch", "ingress", "rules", "--type=json", "-p",
        r#"[{"op":"add","path":"/spec/rules/0/http/paths/-","value":{"path":"/new","pathType":"Prefix","backend":{"service":{"name":"echo","port":{"number":80}}}}}]"#]);
    wait_code("echo.example", "/new", 200);
    lab.kubectl(&["rollout", "restart", "deployment/echo"]);
    lab.kubectl(&["rollout", "status", "deployment/echo", "--timeout=120s"]);
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = load.join().unwrap();
    assert!(ok > 20, "only {ok} requests went through");
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {:?}",
        failed.len(),
        ok + failed.len(),
        &failed[..failed.len().min(5)]
    );

    // An invalid Ingress is reported in an event and leaves the others alone.
    lab.apply_yaml(
        "bad.yaml",
        r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: bad
  annotations:
    nginx.ingress.kubernetes.io/proxy-body-size: lots
spec:
  rules:
  - host: bad.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: echo, port: {number: 80}}}}
"#,
    );
    let events = eventually_ok("an event about the bad Ingress", || {
        let list: Value = serde_json::from_str(&lab.kubectl(&["get", "events", "-o", "json"])).unwrap();
        let out: String = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["involvedObject"]["kind"] == "Ingress" && e["involvedObject"]["name"] == "bad")
            .map(|e| format!("{} {}\n", e["reason"], e["message"]))
            .collect();
        if out.contains("proxy-body-size") {
            Ok(out)
        } else {
            Err(out)
        }
    });
    assert!(events.contains("lots"), "{events}");
    assert_eq!(echo("echo.example", "/foo")["path"], "/foo");
}
