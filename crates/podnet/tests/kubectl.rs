//! The real kubectl against `podnet server`: the commands a Kubernetes user types, and the
//! seeds' manifests, unchanged.

mod common;

use common::{eventually, seed_manifests, TestServer};
use std::time::Duration;

#[test]
fn seed_manifests_apply_unchanged_and_update() {
    let s = TestServer::start();
    for f in seed_manifests() {
        let f = f.to_str().unwrap();
        let out = s.ok(&["apply", "-f", f]);
        assert!(out.contains("created"), "{f}: {out}");
        // The second apply finds nothing to change.
        let again = s.ok(&["apply", "-f", f]);
        assert!(again.contains("unchanged"), "{f}: {again}");
    }
    // The update path of apply: change the Deployment's replicas and image.
    let deploy =
        std::fs::read_to_string(seed_manifests().into_iter().find(|p| p.ends_with("deploy-nginx.yaml")).unwrap())
            .unwrap();
    let changed = deploy.replace("replicas: 3", "replicas: 5").replace("nginx:1.14", "nginx:1.25");
    assert_ne!(changed, deploy, "the seed manifest changed shape");
    let out = s.ok_stdin(&["apply", "-f", "-"], &changed);
    assert!(out.contains("configured"), "{out}");
    let got = s.ok(&[
        "get",
        "deploy",
        "webui",
        "-o",
        "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].image} {.metadata.generation}",
    ]);
    assert_eq!(got, "5 nginx:1.25 2");
    // create -f of something that exists is AlreadyExists.
    let err = s.fails(&["create", "-f", seed_manifests()[0].to_str().unwrap()]);
    assert!(err.contains("AlreadyExists") || err.contains("already exists"), "{err}");
}

#[test]
fn get_tables_wide_and_formats() {
    let s = TestServer::start();
    for f in seed_manifests() {
        s.ok(&["create", "-f", f.to_str().unwrap()]);
    }
    let svc = s.ok(&["get", "svc"]);
    let header = svc.lines().next().unwrap();
    for col in ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"] {
        assert!(header.contains(col), "{header}");
    }
    assert!(!header.contains("SELECTOR"));
    assert!(svc.contains("svc-nodeport") && svc.contains("NodePort") && svc.contains("8080:31080/TCP"), "{svc}");
    assert!(svc.contains("kubernetes") && svc.contains("10.96.0.1") && svc.contains("443/TCP"), "{svc}");
    let wide = s.ok(&["get", "svc", "-o", "wide"]);
    assert!(wide.lines().next().unwrap().ends_with("SELECTOR"), "{wide}");
    assert!(wide.contains("app=webui"), "{wide}");

    // Headless service shows None; the fixed ClusterIP of the seed is honoured.
    let headless = s.ok(&["get", "svc", "headless-service", "-o", "jsonpath={.spec.clusterIP}"]);
    assert_eq!(headless, "None");

    let pods = s.ok(&["get", "pods", "-o", "wide"]);
    assert!(pods.lines().next().unwrap().contains("NOMINATED NODE"), "{pods}");
    assert!(pods.contains("pod-pause") && pods.contains("0/2") && pods.contains("Pending"), "{pods}");

    // -o yaml / json carry the full object with server-set fields.
    let yaml = s.ok(&["get", "pod", "pod-src", "-o", "yaml"]);
    for f in ["uid:", "creationTimestamp:", "resourceVersion:", "phase: Pending"] {
        assert!(yaml.contains(f), "{yaml}");
    }
    let json: serde_json::Value = serde_json::from_str(&s.ok(&["get", "svc", "svc-nodeport", "-o", "json"])).unwrap();
    assert_eq!(json["spec"]["ports"][0]["nodePort"], 31080);
    assert_eq!(json["spec"]["sessionAffinity"], "None");

    // Label and field selectors.
    assert_eq!(s.ok(&["get", "svc", "-l", "component=apiserver", "-o", "name"]).trim(), "service/kubernetes");
    let without = s.ok(&["get", "svc", "-l", "!component", "-o", "name"]);
    assert!(!without.contains("service/kubernetes") && without.contains("service/svc-nodeport"), "{without}");
    s.ok(&["label", "svc", "svc-nodeport", "tier=front"]);
    assert_eq!(s.ok(&["get", "svc", "-l", "tier=front", "-o", "name"]).trim(), "service/svc-nodeport");
    assert_eq!(s.ok(&["get", "svc", "-l", "tier in (front,back)", "-o", "name"]).trim(), "service/svc-nodeport");
    let by_field = s.ok(&["get", "pods", "--field-selector", "metadata.name=pod-dest", "-o", "name"]);
    assert_eq!(by_field.trim(), "pod/pod-dest");
    let none = s.ok(&["get", "pods", "--field-selector", "status.phase=Running", "-o", "name"]);
    assert!(none.trim().is_empty(), "{none}");
    let err = s.fails(&["get", "pods", "--field-selector", "spec.bogus=x"]);
    assert!(err.contains("field label not supported: spec.bogus"), "{err}");
    let err = s.fails(&["get", "pods", "-l", "a in (b"]);
    assert!(err.to_lowercase().contains("unable to parse"), "{err}");

    // Across namespaces, and the `all` category.
    let all_ns = s.ok(&["get", "svc", "-A"]);
    assert!(all_ns.lines().next().unwrap().starts_with("NAMESPACE"), "{all_ns}");
    let all = s.ok(&["get", "all"]);
    for kind in ["pod/pod-pause", "service/kubernetes", "deployment.apps/webui", "replicaset.apps/myweb-rs"] {
        assert!(all.contains(kind), "{all}");
    }
    let ep = s.ok(&["get", "ep"]);
    assert!(ep.contains("kubernetes"), "{ep}");
    let ns = s.ok(&["get", "ns"]);
    for n in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(ns.contains(n), "{ns}");
    }
    // Short names resolve through discovery.
    s.ok(&["get", "deploy,rs,ds,ing,netpol,cm,sa,ev,ep,no,ns,po,svc"]);
    let ing = s.ok(&["get", "ing"]);
    assert!(ing.contains("minimal-ingress"), "{ing}");
}

#[test]
fn chunked_lists_see_every_object_across_namespaces() {
    let s = TestServer::start();
    // "pg-b" sorts after "pg" as a namespace but "pg-b/…" before "pg/…" as a string: pages must
    // follow the namespace order.
    for ns in ["pg", "pg-b"] {
        s.ok(&["create", "namespace", ns]);
        for name in ["a", "b", "c"] {
            s.ok(&["create", "configmap", name, "-n", ns]);
        }
    }
    let all = s.ok(&["get", "cm", "-A", "--chunk-size=2", "-o", "name"]);
    assert_eq!(all.lines().count(), 6, "{all}");
    let table = s.ok(&["get", "cm", "-A", "--chunk-size=1"]);
    assert_eq!(table.lines().count(), 7, "{table}");
    let filtered =
        s.ok(&["get", "cm", "-n", "pg-b", "--chunk-size=1", "--field-selector", "metadata.name!=b", "-o", "name"]);
    assert_eq!(filtered.lines().collect::<Vec<_>>(), ["configmap/a", "configmap/c"]);
}

#[test]
fn run_expose_label_annotate_scale_replace_delete() {
    let s = TestServer::start();
    s.ok(&["run", "web", "--image=nginx", "--port=80", "--labels=app=web"]);
    let out = s.ok(&["expose", "pod", "web", "--port=8080", "--target-port=80", "--name=web-svc"]);
    assert!(out.contains("exposed"), "{out}");
    let svc: serde_json::Value = serde_json::from_str(&s.ok(&["get", "svc", "web-svc", "-o", "json"])).unwrap();
    assert_eq!(svc["spec"]["selector"]["app"], "web");
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 80);
    assert!(svc["spec"]["clusterIP"].as_str().unwrap().starts_with("10."));

    s.ok(&["label", "pod", "web", "tier=front"]);
    s.ok(&["annotate", "pod", "web", "note=hello"]);
    let meta = s.ok(&["get", "pod", "web", "-o", "jsonpath={.metadata.labels.tier} {.metadata.annotations.note}"]);
    assert_eq!(meta, "front hello");
    // Overwriting needs --overwrite, as on a real cluster; removing a label works.
    s.fails(&["label", "pod", "web", "tier=back"]);
    s.ok(&["label", "pod", "web", "tier-"]);
    assert_eq!(s.ok(&["get", "pod", "web", "-o", "jsonpath={.metadata.labels.tier}"]), "");

    // Deployments: scale through the scale subresource; expose a deployment.
    let deploy = seed_manifests().into_iter().find(|p| p.ends_with("deploy-nginx.yaml")).unwrap();
    s.ok(&["apply", "-f", deploy.to_str().unwrap()]);
    let out = s.ok(&["scale", "deploy", "webui", "--replicas=7"]);
    assert!(out.contains("scaled"), "{out}");
    assert_eq!(s.ok(&["get", "deploy", "webui", "-o", "jsonpath={.spec.replicas}"]), "7");
    s.ok(&["expose", "deploy", "webui", "--port=80", "--name=webui-exp", "--type=NodePort"]);
    let np = s.ok(&["get", "svc", "webui-exp", "-o", "jsonpath={.spec.ports[0].nodePort}"]);
    let np: u16 = np.parse().unwrap();
    assert!((30000..=32767).contains(&np));

    // replace: PUT of the object as fetched (with its resourceVersion).
    let yaml = s.ok(&["get", "cm", "-n", "default", "--ignore-not-found", "-o", "yaml"]);
    let _ = yaml;
    s.ok(&["create", "configmap", "cfg", "--from-literal=a=1"]);
    let cm = s.ok(&["get", "cm", "cfg", "-o", "yaml"]);
    let replaced = cm.replace("a: \"1\"", "a: \"2\"");
    s.ok_stdin(&["replace", "-f", "-"], &replaced);
    assert_eq!(s.ok(&["get", "cm", "cfg", "-o", "jsonpath={.data.a}"]), "2");
    // Replacing with the stale resourceVersion is a conflict.
    let err = String::from_utf8(s.kubectl_stdin(&["replace", "-f", "-"], Some(&replaced)).stderr).unwrap();
    assert!(err.contains("Conflict") || err.contains("the object has been modified"), "{err}");

    // delete: pods not bound to a node go at once; services free their IP.
    let out = s.ok(&["delete", "pod", "web"]);
    assert!(out.contains("deleted"), "{out}");
    s.fails(&["get", "pod", "web"]);
    s.ok(&["delete", "svc", "web-svc", "webui-exp"]);
    s.ok(&["delete", "-f", deploy.to_str().unwrap()]);
    let err = s.fails(&["get", "deploy", "webui"]);
    assert!(err.contains("NotFound") || err.contains("not found"), "{err}");
}

#[test]
fn describe_pod_svc_deploy() {
    let s = TestServer::start();
    for f in seed_manifests() {
        s.ok(&["create", "-f", f.to_str().unwrap()]);
    }
    let pod = s.ok(&["describe", "pod", "pod-pause"]);
    for f in ["Name:", "pod-pause", "Namespace:", "default", "Containers:", "Status:", "Pending", "QoS Class:"] {
        assert!(pod.contains(f), "{pod}");
    }
    let svc = s.ok(&["describe", "svc", "myweb-svc-ses"]);
    for f in ["Selector:", "app=web", "Type:", "ClusterIP", "Session Affinity:", "ClientIP", "TargetPort:", "8080/TCP"]
    {
        assert!(svc.contains(f), "{svc}");
    }
    let deploy = s.ok(&["describe", "deploy", "webui"]);
    for f in ["Replicas:", "StrategyType:", "RollingUpdate", "Pod Template:", "nginx:1.14"] {
        assert!(deploy.contains(f), "{deploy}");
    }
    let cm = s.ok(&["describe", "ns", "default"]);
    assert!(cm.contains("Active"), "{cm}");
}

#[test]
fn get_watch_streams_changes() {
    let s = TestServer::start();
    let mut cmd = std::process::Command::new("kubectl");
    cmd.arg("--kubeconfig").arg(s.kubeconfig()).args(["get", "cm", "-w", "--request-timeout=0"]);
    let mut watch = cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let stdout = watch.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(700));
    s.ok(&["create", "configmap", "w1", "--from-literal=a=b"]);
    s.ok(&["create", "configmap", "w2", "--from-literal=a=b"]);
    let mut seen = Vec::new();
    let found = eventually(Duration::from_secs(10), || {
        while let Ok(l) = rx.try_recv() {
            seen.push(l);
        }
        (seen.iter().any(|l| l.starts_with("w1")) && seen.iter().any(|l| l.starts_with("w2"))).then_some(())
    });
    let _ = watch.kill();
    let _ = watch.wait();
    assert!(found.is_some(), "watch output: {seen:?}");
    assert!(seen[0].starts_with("NAME"), "the first line is the header: {seen:?}");
}

#[test]
fn errors_are_clear_and_write_nothing() {
    let s = TestServer::start();
    // Invalid objects: 422 naming the field.
    let bad = "apiVersion: v1\nkind: Service\nmetadata:\n  name: Bad_Name\nspec:\n  ports:\n  - port: 80\n";
    let out = s.kubectl_stdin(&["create", "-f", "-"], Some(bad));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("metadata.name"), "{err}");
    // Unknown fields are refused (kubectl validates strictly through the server).
    let unknown = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\nbogus: 1\n";
    let out = s.kubectl_stdin(&["create", "-f", "-"], Some(unknown));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("unknown field") && err.contains("bogus"), "{err}");
    // A taken NodePort is 422 "provided port is already allocated".
    let np = |name: &str| {
        format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  type: NodePort\n  selector:\n    a: b\n  ports:\n  - port: 80\n    nodePort: 30080\n")
    };
    s.ok_stdin(&["create", "-f", "-"], &np("np1"));
    let out = s.kubectl_stdin(&["create", "-f", "-"], Some(&np("np2")));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("provided port is already allocated"), "{err}");
    // A ClusterIP outside the range.
    let ip = "apiVersion: v1\nkind: Service\nmetadata:\n  name: ip\nspec:\n  clusterIP: 192.168.0.10\n  ports:\n  - port: 80\n";
    let err = String::from_utf8_lossy(&s.kubectl_stdin(&["create", "-f", "-"], Some(ip)).stderr).to_string();
    assert!(err.contains("not in the valid range"), "{err}");
    // Objects in a missing namespace are refused.
    let err = s.fails(&["create", "configmap", "x", "-n", "nope"]);
    assert!(err.contains("not found"), "{err}");
    // Malformed bodies through the raw API.
    let out =
        s.kubectl_stdin(&["create", "--raw", "/api/v1/namespaces/default/configmaps", "-f", "-"], Some("{not json"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("BadRequest") || err.contains("not valid"), "{err}");
    // Nothing of the failures was stored.
    let names = s.ok(&["get", "svc,cm", "-o", "name"]);
    assert!(!names.contains("np2") && !names.contains("service/ip") && !names.contains("configmap/c\n"), "{names}");
    // Wrong credentials: 401. A component's token is accepted.
    let kc = std::fs::read_to_string(s.kubeconfig()).unwrap();
    let with_token = |token: &str| -> String {
        kc.lines()
            .filter(|l| !l.contains("client-certificate-data") && !l.contains("client-key-data"))
            .map(|l| if l == "  user:" { format!("  user:\n    token: {token}\n") } else { format!("{l}\n") })
            .collect()
    };
    let bad = s.data_dir.join("bad.kubeconfig");
    std::fs::write(&bad, with_token("not-a-valid-token")).unwrap();
    let out = std::process::Command::new("kubectl").arg("--kubeconfig").arg(&bad).args(["get", "ns"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // kubectl words a 401 by where it met it: "(the server has asked for the client to provide
    // credentials)" during discovery, the Status message ("Unauthorized") when its discovery cache
    // for this address is warm; both start so.
    assert!(!out.status.success() && err.contains("You must be logged in to the server"), "{err}");
    let token = std::fs::read_to_string(s.data_dir.join("pki/tokens/proxy")).unwrap();
    let good = s.data_dir.join("proxy.kubeconfig");
    std::fs::write(&good, with_token(token.trim())).unwrap();
    let out = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&good)
        .args(["get", "ns", "default", "-o", "name"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "namespace/default",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn namespaces_terminate_with_their_content() {
    let s = TestServer::start();
    s.ok(&["create", "namespace", "apps"]);
    s.ok(&["create", "configmap", "c", "-n", "apps", "--from-literal=a=b"]);
    s.ok(&[
        "create",
        "-n",
        "apps",
        "-f",
        seed_manifests().into_iter().find(|p| p.ends_with("myweb-svc.yaml")).unwrap().to_str().unwrap(),
    ]);
    s.ok(&["delete", "namespace", "apps"]);
    assert!(eventually(Duration::from_secs(10), || (!s.kubectl(&["get", "ns", "apps"]).status.success())
        .then_some(()))
    .is_some());
    let err = s.fails(&["get", "cm", "c", "-n", "apps"]);
    assert!(err.contains("not found"), "{err}");
    let err = s.fails(&["delete", "ns", "kube-system"]);
    assert!(err.contains("may not be deleted"), "{err}");
}

#[test]
fn kind_list_documents_are_validated_client_side_and_created() {
    // kubectl validates `kind: List` documents (what `kubectl get -o yaml` prints for several
    // objects) itself, against the protobuf form of /openapi/v2.
    let s = TestServer::start();
    let list = |suffix: &str, extra_cm: &str, extra_port: &str| {
        format!(
            "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: list-cm{suffix}\n{extra_cm}  data:\n    a: b\n- apiVersion: v1\n  kind: Service\n  metadata:\n    name: list-svc{suffix}\n  spec:\n    selector:\n      app: x\n    ports:\n    - port: 80\n      targetPort: http\n{extra_port}"
        )
    };
    let out = s.ok_stdin(&["create", "-f", "-"], &list("", "", ""));
    assert!(out.contains("configmap/list-cm created") && out.contains("service/list-svc created"), "{out}");
    assert_eq!(s.ok(&["get", "cm", "list-cm", "-o", "jsonpath={.data.a}"]), "b");
    assert_eq!(s.ok(&["get", "svc", "list-svc", "-o", "jsonpath={.spec.ports[0].targetPort}"]), "http");
    // Unknown fields, at the top and nested, are refused before anything is sent.
    let out = s.kubectl_stdin(&["create", "-f", "-"], Some(&list("2", "  bogus: 1\n", "      nope: x\n")));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains(r#"unknown field "bogus" in io.k8s.api.core.v1.ConfigMap"#), "{err}");
    assert!(err.contains(r#"unknown field "nope" in io.k8s.api.core.v1.ServicePort"#), "{err}");
    assert!(s.fails(&["get", "cm", "list-cm2"]).contains("not found"));
    // The same List, as `kubectl get -o yaml` prints it, validates too.
    let got = s.ok(&["get", "cm/list-cm", "svc/list-svc", "-o", "yaml"]);
    let out = s.ok_stdin(&["create", "--dry-run=client", "-f", "-"], &got);
    assert!(out.contains("configmap/list-cm created (dry run)"), "{out}");
    // `kubectl explain` from the v2 document follows references into nested fields.
    let explain = s.ok(&["explain", "--output=plaintext-openapiv2", "svc.spec.ports"]);
    assert!(explain.contains("ServicePort contains information"), "{explain}");
    assert!(explain.contains("targetPort") && explain.contains("port\t<integer> -required-"), "{explain}");
}
