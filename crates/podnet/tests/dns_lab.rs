//! Cluster DNS in the lab, with `dig` and the libc resolver (`getent hosts`, so the pods'
//! search list and ndots:5 are exercised) from pods: seed 000's service and pod lookups in
//! namespace apps, seed 003's headless service (one record per ready pod, NXDOMAIN when none is
//! ready, updates after scaling) and `curl` of a pod's DNS name, SRV with the targets' addresses,
//! PTR, an ExternalName followed through the forwarder to the lab's upstream resolver, and the
//! kube-dns Service as kubeadm creates it; then the Corefile edited through the ConfigMap
//! (reloaded by both replicas) and a broken edit (logged, the running Corefile keeps serving).

mod cni_support;
mod common;
mod lab_support;

use std::collections::BTreeSet;

use std::time::Duration;

use lab_support::{eventually_ok, eventually_within, seed, try_exec, Lab};

fn dig(lab: &Lab, pod: &str, args: &[&str]) -> Result<String, String> {
    dig_at(lab, pod, "10.96.0.10", args)
}

/// `dig +short` from `pod`, asking `server`.
fn dig_at(lab: &Lab, pod: &str, server: &str, args: &[&str]) -> Result<String, String> {
    let mut cmd = vec!["dig".to_string(), "+short".into(), "+time=2".into(), "+tries=2".into(), format!("@{server}")];
    cmd.extend(args.iter().map(|a| a.to_string()));
    try_exec(lab, pod, &cmd)
}

/// A field of every CoreDNS pod (`metadata.name`, `status.podIP`), space-separated.
fn dns_pods(lab: &Lab, field: &str) -> String {
    let jsonpath = format!("jsonpath={{.items[*].{field}}}");
    lab.kubectl(&["get", "pods", "-n", "kube-system", "-l", "k8s-app=kube-dns", "-o", &jsonpath])
}

fn lines(s: &str) -> BTreeSet<String> {
    s.lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect()
}

#[test]
fn cluster_dns_in_the_lab() {
    if !cni_support::privileged("cluster_dns_in_the_lab") {
        return;
    }
    let lab = Lab::up(&["--nodes", "2"]);
    // kube-dns as seed 000's `kubectl get service -n kube-system` shows it.
    let svc = lab.kubectl(&[
        "get",
        "service",
        "-n",
        "kube-system",
        "kube-dns",
        "-o",
        "jsonpath={.spec.clusterIP} {.spec.ports[*].port}/{.spec.ports[*].protocol}",
    ]);
    assert_eq!(svc, "10.96.0.10 53 53 9153/UDP TCP TCP");
    let replicas =
        lab.kubectl(&["get", "deploy", "-n", "kube-system", "coredns", "-o", "jsonpath={.status.readyReplicas}"]);
    assert_eq!(replicas, "2");

    // Seed 000: nginx-service in namespace apps, looked up from a pod in default.
    lab.kubectl(&["create", "namespace", "apps"]);
    lab.kubectl(&["create", "deployment", "nginx", "-n", "apps", "--image=nginx"]);
    lab.kubectl(&["expose", "deployment", "nginx", "-n", "apps", "--name", "nginx-service", "--port", "80"]);
    lab.kubectl(&["run", "client", "--image=busybox", "--command", "--", "sleep", "3600"]);
    lab.wait_ready("client");
    let cip = lab.kubectl(&["get", "svc", "-n", "apps", "nginx-service", "-o", "jsonpath={.spec.clusterIP}"]);
    let a = eventually_ok("nginx-service.apps", || dig(&lab, "client", &["nginx-service.apps.svc.cluster.local"]));
    assert_eq!(a.trim(), cip);
    // The libc resolver with the search list: a short name in the pod's own namespace, then
    // `<svc>.<ns>` across namespaces.
    lab.kubectl(&["expose", "pod", "client", "--name", "client-svc", "--port", "80"]);
    let own = eventually_ok("getent client-svc", || {
        try_exec(&lab, "client", &["getent".into(), "hosts".into(), "client-svc".into()])
    });
    assert!(own.contains("client-svc.default.svc.cluster.local"), "{own}");
    let other = eventually_ok("getent nginx-service.apps", || {
        try_exec(&lab, "client", &["getent".into(), "hosts".into(), "nginx-service.apps".into()])
    });
    assert!(other.starts_with(&cip), "{other}");
    // A pod record: a-b-c-d.apps.pod.cluster.local.
    let pod_ip =
        lab.kubectl(&["get", "pods", "-n", "apps", "-l", "app=nginx", "-o", "jsonpath={.items[0].status.podIP}"]);
    let name = format!("{}.apps.pod.cluster.local", pod_ip.replace('.', "-"));
    assert_eq!(eventually_ok("pod record", || dig(&lab, "client", &[&name])).trim(), pod_ip);
    let page = eventually_ok("curl the pod's DNS name", || {
        try_exec(
            &lab,
            "client",
            &["curl".into(), "-sS".into(), "--max-time".into(), "5".into(), format!("http://{name}/")],
        )
    });
    assert!(page.contains("Welcome to nginx!"));
    // PTR of the service address.
    let ptr = eventually_ok("PTR", || dig(&lab, "client", &["-x", &cip]));
    assert_eq!(ptr.trim(), "nginx-service.apps.svc.cluster.local.");

    // Seed 003: the headless service answers with every ready pod, and follows scaling.
    lab.kubectl(&["apply", "-f", &seed("deploy-nginx.yaml"), "-f", &seed("headless-nginx.yaml")]);
    lab.kubectl(&["rollout", "status", "deployment/webui", "--timeout=60s"]);
    let ips = lines(&lab.kubectl(&[
        "get",
        "pods",
        "-l",
        "app=webui",
        "-o",
        "jsonpath={range .items[*]}{.status.podIP}{\"\\n\"}{end}",
    ]));
    assert_eq!(ips.len(), 3);
    eventually_ok("headless: three records", || {
        let got = lines(&dig(&lab, "client", &["headless-service.default.svc.cluster.local"])?);
        if got == ips {
            Ok(String::new())
        } else {
            Err(format!("{got:?} != {ips:?}"))
        }
    });
    // Answers are cached for up to 30 s (kubeadm's `cache 30`), as with CoreDNS.
    let cached = Duration::from_secs(45);
    lab.kubectl(&["scale", "deployment/webui", "--replicas=1"]);
    eventually_within(cached, "headless: one record after scaling to 1", || {
        let got = lines(&dig(&lab, "client", &["headless-service.default.svc.cluster.local"])?);
        if got.len() == 1 {
            Ok(String::new())
        } else {
            Err(format!("{got:?}"))
        }
    });
    lab.kubectl(&["scale", "deployment/webui", "--replicas=0"]);
    eventually_within(cached, "headless without ready endpoints: NXDOMAIN", || {
        let out = try_exec(
            &lab,
            "client",
            &["dig".into(), "@10.96.0.10".into(), "headless-service.default.svc.cluster.local".into()],
        )?;
        if out.contains("status: NXDOMAIN") {
            Ok(out)
        } else {
            Err(out)
        }
    });

    // SRV of a named port, with the target's address in the Additional section.
    lab.kubectl(&["create", "service", "clusterip", "named", "--tcp=8080:80"]);
    let srv = eventually_ok("SRV", || {
        let out = try_exec(
            &lab,
            "client",
            &["dig".into(), "@10.96.0.10".into(), "SRV".into(), "_8080-80._tcp.named.default.svc.cluster.local".into()],
        )?;
        if out.contains("ANSWER: 1") {
            Ok(out)
        } else {
            Err(out)
        }
    });
    assert!(srv.contains("named.default.svc.cluster.local."), "{srv}");
    assert!(srv.contains("ADDITIONAL SECTION"), "{srv}");

    // ExternalName: a CNAME, followed through the forwarder (the lab's upstream resolver).
    lab.kubectl(&["create", "service", "externalname", "outside", "--external-name", "outside.podnet.lab"]);
    let ext = eventually_ok("ExternalName", || dig(&lab, "client", &["outside.default.svc.cluster.local"]));
    assert_eq!(lines(&ext), BTreeSet::from(["outside.podnet.lab.".to_string(), "172.31.0.200".to_string()]));
    // Names outside the cluster go to the lab's resolver (nothing leaves the machine).
    let out = try_exec(&lab, "client", &["dig".into(), "@10.96.0.10".into(), "example.com".into()]).unwrap();
    assert!(out.contains("status: NXDOMAIN"), "{out}");
    // The dns-version record.
    assert_eq!(dig(&lab, "client", &["TXT", "dns-version.cluster.local"]).unwrap().trim(), "\"1.1.0\"");

    in_pod_credentials_come_first(&lab);
    reload_through_the_configmap(&lab);
}

/// podnet's components in pods use the pod's service account before any kubeconfig: lab pods
/// see the host's files, and a kubeconfig there (the user's ~/.kube/config, which `podnet up`
/// points at the lab's loopback forward) names a server the pod cannot reach. Here CoreDNS gets
/// KUBECONFIG naming such a file, rolls, and still serves the cluster's records.
fn in_pod_credentials_come_first(lab: &Lab) {
    let dir = tempfile::tempdir().expect("tempdir");
    let bogus = dir.path().join("kubeconfig");
    let kubeconfig = "apiVersion: v1\nkind: Config\ncurrent-context: nowhere\n\
        clusters: [{name: nowhere, cluster: {server: 'https://127.0.0.1:1'}}]\n\
        users: [{name: nobody, user: {token: nothing}}]\n\
        contexts: [{name: nowhere, context: {cluster: nowhere, user: nobody}}]\n";
    std::fs::write(&bogus, kubeconfig).unwrap();
    let env = format!("KUBECONFIG={}", bogus.display());
    lab.kubectl(&["set", "env", "-n", "kube-system", "deployment/coredns", &env]);
    lab.kubectl(&["rollout", "status", "-n", "kube-system", "deployment/coredns", "--timeout=90s"]);
    let a = eventually_ok("kubernetes Service after the rollout", || {
        dig(lab, "client", &["kubernetes.default.svc.cluster.local"])
    });
    assert_eq!(a.trim(), "10.96.0.1");
}

/// kubeadm's Corefile has `reload`: an edit of the ConfigMap reaches every replica (through the
/// file each mirrors it into) within the reload interval (30 s + up to 15 s of jitter, as
/// CoreDNS), and a broken Corefile is logged while the running one keeps serving.
fn reload_through_the_configmap(lab: &Lab) {
    let corefile =
        lab.kubectl(&["get", "configmap", "-n", "kube-system", "coredns", "-o", "jsonpath={.data.Corefile}"]);
    let hosts = "    errors\n    hosts {\n        10.1.2.3 reload-check.podnet.test\n        fallthrough\n    }\n";
    let with_hosts = corefile.replacen("    errors\n", hosts, 1);
    assert_ne!(with_hosts, corefile, "kubeadm's Corefile starts with errors: {corefile}");
    let set_corefile = |text: &str| {
        let patch = serde_json::json!({"data": {"Corefile": text}}).to_string();
        lab.kubectl(&["patch", "configmap", "-n", "kube-system", "coredns", "--type", "merge", "-p", &patch]);
    };
    // Each replica, asked at its pod IP, gives the new address (through the Service, a run of
    // answers may all come from one replica while the other still serves the old Corefile), and
    // so does the Service.
    let answered_by_all = || {
        let ips = dns_pods(lab, "status.podIP");
        let ips: Vec<&str> = ips.split_whitespace().collect();
        if ips.len() < 2 {
            return Err(format!("replicas at {ips:?}"));
        }
        for ip in ips {
            let a = dig_at(lab, "client", ip, &["reload-check.podnet.test"])?;
            if a.trim() != "10.1.2.3" {
                return Err(format!("{ip} answers {a:?}"));
            }
        }
        let a = dig(lab, "client", &["reload-check.podnet.test"])?;
        if a.trim() != "10.1.2.3" {
            return Err(format!("the Service answers {a:?}"));
        }
        Ok(String::new())
    };
    set_corefile(&with_hosts);
    eventually_within(Duration::from_secs(100), "the edited Corefile served by both replicas", answered_by_all);

    // A Corefile with an unknown plugin: each replica logs that the reload failed and goes on
    // with the one it has.
    set_corefile(&with_hosts.replacen("    errors\n", "    errors\n    no-such-plugin\n", 1));
    let pods = dns_pods(lab, "metadata.name");
    for pod in pods.split_whitespace() {
        eventually_within(Duration::from_secs(100), &format!("{pod} logs the failed reload"), || {
            let logs = lab.kubectl(&["logs", "-n", "kube-system", pod]);
            if logs.contains("reload failed") && logs.contains("no-such-plugin") {
                Ok(logs)
            } else {
                Err("no failed reload logged yet".into())
            }
        });
    }
    answered_by_all().expect("the running Corefile keeps serving after a bad edit");
}
