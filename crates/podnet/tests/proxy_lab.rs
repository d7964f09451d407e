//! The service proxy in the lab, per mode, with real clients: the podnet-proxy DaemonSet runs
//! one hostNetwork pod per node; seed 002's pod-src → pod-dest through svc-clusterip and
//! svc-nodeport 31080 (from a pod, a node and an outside host on the underlay); seed 004's
//! myweb Services (spread over the pods, ClientIP affinity pinning one, the named port); a
//! Service without endpoints refusing at once; a LoadBalancer Service reached from outside on
//! its EXTERNAL-IP; the `kubernetes` Service reaching the API server; and in iptables mode the
//! `iptables -t nat -S` shape seed 003 shows.

mod cni_support;
mod common;
mod lab_support;

use std::collections::BTreeSet;
use std::process::Command;

use lab_support::{curl, eventually_ok, outside_curl, seed, text, try_exec, Lab, Outside};

const STEADY: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: steady}
spec:
  replicas: 3
  selector: {matchLabels: {app: steady}}
  template:
    metadata: {labels: {app: steady}}
    spec:
      terminationGracePeriodSeconds: 10
      containers:
      - name: web
        image: nginx
        readinessProbe: {httpGet: {path: /, port: 80}, periodSeconds: 1}
        lifecycle: {preStop: {sleep: {seconds: 2}}}
---
apiVersion: v1
kind: Service
metadata: {name: steady}
spec:
  selector: {app: steady}
  ports: [{port: 80}]
"#;

fn cluster_ip(lab: &Lab, svc: &str) -> String {
    lab.kubectl(&["get", "svc", svc, "-o", "jsonpath={.spec.clusterIP}"])
}

/// Waits until the Service's Endpoints list `n` addresses.
fn wait_endpoints(lab: &Lab, svc: &str, n: usize) {
    eventually_ok(&format!("{n} endpoints of {svc}"), || {
        let ips = lab.kubectl(&["get", "endpoints", svc, "-o", "jsonpath={.subsets[*].addresses[*].ip}"]);
        let count = ips.split_whitespace().count();
        if count == n {
            Ok(ips)
        } else {
            Err(format!("{count} endpoints: {ips}"))
        }
    });
}

fn service_proxy(mode: &str) {
    let lab = Lab::up(&["--nodes", "2", "--node-prefix", "k8s-node", "--proxy-mode", mode]);
    let proxies = lab.kubectl(&[
        "get",
        "pods",
        "-n",
        "kube-system",
        "-l",
        "k8s-app=podnet-proxy",
        "-o",
        "jsonpath={.items[*].spec.nodeName}",
    ]);
    let nodes: BTreeSet<&str> = proxies.split_whitespace().collect();
    assert_eq!(nodes, BTreeSet::from(["k8s-node1", "k8s-node2"]), "one podnet-proxy pod per node");
    let (_outside, _) = Outside::start(&lab);

    // Seed 002: pod-src (node 2) → pod-dest (node 1) through the ClusterIP and the NodePort.
    lab.kubectl(&["apply", "-f", &seed("pod-src-dest.yaml"), "-f", &seed("svc-clusterip-nodeport.yaml")]);
    lab.wait_ready("pod-src");
    lab.wait_ready("pod-dest");
    wait_endpoints(&lab, "svc-clusterip", 1);
    let cip = cluster_ip(&lab, "svc-clusterip");
    let body = eventually_ok("pod-src -> svc-clusterip", || {
        try_exec(&lab, "pod-src", &curl(&format!("http://{cip}:8080/hostname")))
    });
    assert!(body.contains("pod-dest"), "{body}");
    let body = eventually_ok("node -> NodePort", || {
        let out = lab.podnet(&[
            "node",
            "exec",
            "--name",
            &lab.name,
            "k8s-node1",
            "--",
            "curl",
            "-sS",
            "--max-time",
            "5",
            "http://172.31.0.12:31080/hostname",
        ]);
        if out.status.success() {
            Ok(text(&out.stdout))
        } else {
            Err(text(&out.stderr))
        }
    });
    assert!(body.contains("pod-dest"));
    let body = eventually_ok("outside -> NodePort", || outside_curl(&lab, "http://172.31.0.11:31080/hostname"));
    assert!(body.contains("pod-dest"));
    let body =
        eventually_ok("pod-src -> NodePort", || try_exec(&lab, "pod-src", &curl("http://172.31.0.11:31080/hostname")));
    assert!(body.contains("pod-dest"));

    // Seed 004: three go-myweb pods behind myweb-svc, its ClientIP twin and the named port.
    lab.kubectl(&[
        "apply",
        "-f",
        &seed("myweb-rs-named.yaml"),
        "-f",
        &seed("myweb-svc.yaml"),
        "-f",
        &seed("myweb-svc-ses.yaml"),
        "-f",
        &seed("myweb-svc-named.yaml"),
    ]);
    for svc in ["myweb-svc", "myweb-svc-ses", "myweb-svc-named"] {
        wait_endpoints(&lab, svc, 3);
    }
    let hosts = |svc: &str, n: usize| -> BTreeSet<String> {
        let ip = cluster_ip(&lab, svc);
        (0..n)
            .map(|_| {
                let body = eventually_ok(svc, || try_exec(&lab, "pod-src", &curl(&format!("http://{ip}/"))));
                assert!(body.starts_with("Hello World!"), "{body}");
                body.lines().nth(1).unwrap_or_default().to_string()
            })
            .collect()
    };
    assert!(hosts("myweb-svc", 30).len() >= 2, "30 requests all went to one pod");
    assert_eq!(hosts("myweb-svc-ses", 15).len(), 1, "sessionAffinity ClientIP must pin one pod");
    assert!(!hosts("myweb-svc-named", 3).is_empty());

    // No endpoints: refused at once, not a hang.
    lab.kubectl(&["create", "service", "clusterip", "empty", "--tcp=80:8080"]);
    let eip = cluster_ip(&lab, "empty");
    eventually_ok("a refusal from a service without endpoints", || {
        match try_exec(&lab, "pod-src", &curl(&format!("http://{eip}/"))) {
            Ok(body) => Err(format!("answered: {body}")),
            Err(e) if e.contains("Connection refused") || e.contains("Couldn't connect") || e.contains("reset") => {
                Ok(e)
            }
            Err(e) => Err(e),
        }
    });

    // LoadBalancer: an address from the lab's pool, answered on the underlay.
    lab.kubectl(&[
        "expose",
        "pod",
        "pod-dest",
        "--name",
        "dest-lb",
        "--type",
        "LoadBalancer",
        "--port",
        "80",
        "--target-port",
        "8080",
    ]);
    let lb = eventually_ok("an EXTERNAL-IP", || {
        let ip = lab.kubectl(&["get", "svc", "dest-lb", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}"]);
        if ip.is_empty() {
            Err("none yet".into())
        } else {
            Ok(ip)
        }
    });
    assert!(lb.starts_with("172.31.0."), "{lb}");
    let body = eventually_ok("outside -> LoadBalancer", || outside_curl(&lab, &format!("http://{lb}/hostname")));
    assert!(body.contains("pod-dest"));

    // The kubernetes Service reaches the API server (401 without credentials is an answer).
    let api = eventually_ok("the kubernetes Service", || {
        try_exec(
            &lab,
            "pod-src",
            &["curl".into(), "-sk".into(), "--max-time".into(), "5".into(), "https://10.96.0.1/version".into()],
        )
    });
    assert!(api.contains("\"kind\""), "{api}");
    // In-cluster clients: the service-account token and CA, and KUBERNETES_SERVICE_HOST/PORT.
    let script = "curl -sS --max-time 5 --cacert /var/run/secrets/kubernetes.io/serviceaccount/ca.crt \
        -H \"Authorization: Bearer $(cat /var/run/secrets/kubernetes.io/serviceaccount/token)\" \
        https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT/api/v1/namespaces/$(cat /var/run/secrets/kubernetes.io/serviceaccount/namespace)/pods";
    lab.apply_yaml("incluster.yaml", &format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: incluster}}\nspec:\n  restartPolicy: Never\n  containers:\n  - {{name: c, image: busybox, command: [sh, -c, {script:?}]}}\n"
    ));
    lab.wait_pod("incluster", "Succeeded", |p| p["status"]["phase"] == "Succeeded" || p["status"]["phase"] == "Failed");
    let listing = lab.logs("incluster");
    assert!(listing.contains("\"kind\": \"PodList\"") || listing.contains("\"kind\":\"PodList\""), "{listing}");
    assert!(listing.contains("pod-src"), "{listing}");

    // Endpoints change under a steady load: a rolling restart of pods that terminate gracefully
    // (a preStop pause, as operators configure it) fails no request.
    lab.apply_yaml("steady.yaml", STEADY);
    lab.kubectl(&["rollout", "status", "deployment/steady", "--timeout=60s"]);
    wait_endpoints(&lab, "steady", 3);
    let sip = cluster_ip(&lab, "steady");
    let script = format!(
        "for i in $(seq 150); do curl -s -o /dev/null -w '%{{http_code}}\\n' --max-time 3 http://{sip}/ || echo FAIL; sleep 0.05; done"
    );
    let client = Command::new(common::podnet_bin())
        .args(["exec", "--name", &lab.name, "pod-src", "--", "sh", "-c", &script])
        .env("KUBECONFIG", lab.kubeconfig())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    lab.kubectl(&["rollout", "restart", "deployment/steady"]);
    lab.kubectl(&["rollout", "status", "deployment/steady", "--timeout=90s"]);
    let out = client.wait_with_output().unwrap();
    let codes = text(&out.stdout);
    let failed: Vec<&str> = codes.lines().filter(|l| l.trim() != "200").collect();
    assert_eq!(codes.lines().count(), 150, "{codes}");
    assert!(failed.is_empty(), "requests failed during the rollout: {failed:?}");

    if mode == "iptables" {
        // Seed 003's shape: KUBE-SVC-* jumping to KUBE-SEP-* with kube-proxy's probabilities.
        let nat = lab.ok(&["node", "exec", "--name", &lab.name, "k8s-node1", "--", "iptables", "-t", "nat", "-S"]);
        assert!(nat.contains("-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS"), "{nat}");
        let first = nat.lines().find(|l| l.contains("--comment \"default/myweb-svc -> ") && l.contains("-m statistic"));
        let first = first.unwrap_or_else(|| panic!("no KUBE-SVC rule of myweb-svc:\n{nat}"));
        assert!(
            first.starts_with("-A KUBE-SVC-")
                && first.contains("-m statistic --mode random --probability 0.33333333349 -j KUBE-SEP-"),
            "{first}"
        );
        assert!(nat.contains("-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000"), "{nat}");
    }
}

#[test]
fn service_proxy_iptables_mode() {
    if cni_support::privileged("service_proxy_iptables_mode") {
        service_proxy("iptables");
    }
}

#[test]
fn service_proxy_nftables_mode() {
    if cni_support::privileged("service_proxy_nftables_mode") {
        service_proxy("nftables");
    }
}

#[test]
fn service_proxy_userspace_mode() {
    if cni_support::privileged("service_proxy_userspace_mode") {
        service_proxy("userspace");
    }
}
