//! `podnet up` end to end, as root, with the real kubectl: the network model of the issue (pod ↔
//! pod on one node and across nodes with the source address kept, node ↔ pod, pod → an outside
//! host masqueraded), the seeds' pod-pause and pod-src → pod-dest, both backends, an agent
//! restart that keeps its pods, pod deletion freeing namespaces and addresses, and up/down
//! cycles that leave nothing behind. Each test has its own lab (a unique name) and its own
//! KUBECONFIG, and removes the lab when it ends, also when it fails.

mod cni_support;
mod common;
mod lab_support;

use std::process::Command;
use std::time::Duration;

use lab_support::{curl, eventually_ok, run_pod, seed, text, try_exec, Lab, Outside};

#[test]
fn network_model_and_seed_pods_over_vxlan() {
    if !cni_support::privileged("network_model_and_seed_pods_over_vxlan") {
        return;
    }
    let lab = Lab::up(&["--nodes", "2", "--node-prefix", "k8s-node"]);
    let nodes = lab.kubectl(&["get", "nodes", "-o", "jsonpath={.items[*].metadata.name}"]);
    assert_eq!(nodes.trim(), "k8s-node1 k8s-node2");

    // Seed 002: pod-pause, two containers in one network namespace; pod-src on node 2 reaches
    // pod-dest on node 1.
    lab.kubectl(&["apply", "-f", &seed("pod-pause.yaml")]);
    lab.kubectl(&["apply", "-f", &seed("pod-src-dest.yaml")]);
    run_pod(&lab, "web1", "nginx", "k8s-node1");
    run_pod(&lab, "client1", "nginx", "k8s-node1");
    run_pod(&lab, "client2", "nginx", "k8s-node2");
    let (pause_ip, pause_node) = lab.wait_ready("pod-pause");
    assert_eq!(pause_node, "k8s-node1");
    let (dest_ip, _) = lab.wait_ready("pod-dest");
    let (_, src_node) = lab.wait_ready("pod-src");
    assert_eq!(src_node, "k8s-node2");
    let (web_ip, _) = lab.wait_ready("web1");
    let (c1_ip, _) = lab.wait_ready("client1");
    let (c2_ip, _) = lab.wait_ready("client2");
    // Node 1's pods are in its same-node redirect's map (pod-to-pod packets skip the bridge).
    let redirect = podnet_bpf::LocalRedirect::open(&lab.state_dir().join("nodes/k8s-node1/bpf"))
        .unwrap()
        .expect("node 1's same-node redirect is pinned");
    for ip in [&web_ip, &c1_ip, &pause_ip] {
        assert!(redirect.pod(ip.parse().unwrap()).unwrap().is_some(), "{ip} is not in node 1's map");
    }

    // The two containers of pod-pause share localhost and one address.
    for port in [8000, 8080] {
        let body = eventually_ok("pod-pause over localhost", || {
            try_exec(&lab, "pod-pause", &curl(&format!("http://127.0.0.1:{port}/")))
        });
        assert!(!body.is_empty(), "port {port} answered nothing");
        let body2 = eventually_ok("pod-pause from another pod", || {
            try_exec(&lab, "client2", &curl(&format!("http://{pause_ip}:{port}/")))
        });
        assert_eq!(body, body2);
    }
    let netns_of =
        |c: &str| lab.ok(&["exec", "--name", &lab.name, "pod-pause", "-c", c, "--", "readlink", "/proc/self/ns/net"]);
    assert_eq!(netns_of("container1"), netns_of("container2"));
    // kubetm/app listens on 8080 whatever the manifest declares.
    eventually_ok("pod-src -> pod-dest", || try_exec(&lab, "pod-src", &curl(&format!("http://{dest_ip}:8080/"))));

    // Pod to pod, same node and across nodes: nginx logs the client's own address.
    eventually_ok("same node", || try_exec(&lab, "client1", &curl(&format!("http://{web_ip}/"))));
    eventually_ok("across nodes", || try_exec(&lab, "client2", &curl(&format!("http://{web_ip}/"))));
    let log = lab.logs("web1");
    assert!(log.contains(&format!("{c1_ip} - -")), "same-node source address not kept:\n{log}");
    assert!(log.contains(&format!("{c2_ip} - -")), "cross-node source address not kept:\n{log}");

    // Node to pod, both ways.
    let welcome = lab.node_exec("k8s-node2", &["curl", "-sS", "--max-time", "5", &format!("http://{web_ip}/")]);
    assert!(welcome.contains("Welcome to nginx!"));
    lab.exec("client1", &["ping", "-c", "1", "-W", "2", "172.31.0.12"]);

    // Pod to an outside host on the underlay: masqueraded to the node's address.
    let (outside, outside_ip) = Outside::start(&lab);
    eventually_ok("pod -> outside", || try_exec(&lab, "client2", &curl(&format!("http://{outside_ip}/"))));
    let log = outside.stop();
    assert!(log.contains("172.31.0.12 - -"), "pod -> outside was not masqueraded to node 2's address:\n{log}");
    assert!(!log.contains(&c2_ip), "the pod's own address reached the outside:\n{log}");

    // Deleting pods frees their namespaces and addresses.
    let ipam = lab.state_dir().join("nodes/k8s-node1/cni/podnet");
    assert!(ipam.join(&web_ip).exists(), "no reservation for {web_ip} in {}", ipam.display());
    let uid = lab.pod("web1")["metadata"]["uid"].as_str().unwrap().to_string();
    assert!(lab.namespaces().iter().any(|n| n.ends_with(&uid)));
    lab.kubectl(&["delete", "pod", "web1", "--wait=true", "--timeout=60s"]);
    assert!(!ipam.join(&web_ip).exists(), "{web_ip} still reserved after the pod's deletion");
    assert!(!lab.namespaces().iter().any(|n| n.ends_with(&uid)), "the pod's namespace is still there");
    assert!(redirect.pod(web_ip.parse().unwrap()).unwrap().is_none(), "{web_ip} is still in node 1's map");
}

#[test]
fn host_gw_routes_and_a_restarted_agent_keeps_its_pods() {
    if !cni_support::privileged("host_gw_routes_and_a_restarted_agent_keeps_its_pods") {
        return;
    }
    let lab = Lab::up(&["--nodes", "2", "--backend", "host-gw"]);
    run_pod(&lab, "a", "nginx", "node1");
    run_pod(&lab, "b", "nginx", "node2");
    let (a_ip, _) = lab.wait_ready("a");
    let (b_ip, _) = lab.wait_ready("b");
    // host-gw: a route per remote pod CIDR via the node's address (seed 001, step 13-1).
    let routes = lab.node_exec("node1", &["ip", "route"]);
    let b_cidr = lab.kubectl(&["get", "node", "node2", "-o", "jsonpath={.spec.podCIDR}"]);
    assert!(routes.contains(&format!("{b_cidr} via 172.31.0.12 dev eth0")), "{routes}");
    eventually_ok("a -> b", || try_exec(&lab, "a", &curl(&format!("http://{b_ip}/"))));
    assert!(lab.logs("b").contains(&format!("{a_ip} - -")));

    // Kill node 1's agent: the supervisor starts a new one, which adopts the running pod.
    let before = lab.pod("a");
    let agent = Command::new("pgrep")
        .args(["-f", &format!("agent .*--node-name=node1 .*--netns-prefix=podnet.{}.", lab.name)])
        .output()
        .unwrap();
    let pid = text(&agent.stdout).lines().next().expect("node1's agent runs").trim().to_string();
    assert!(Command::new("kill").args(["-9", &pid]).status().unwrap().success());
    std::thread::sleep(Duration::from_secs(2));
    run_pod(&lab, "c", "nginx", "node1");
    let (c_ip, _) = lab.wait_ready("c");
    let after = lab.pod("a");
    assert_eq!(after["status"]["podIP"], before["status"]["podIP"]);
    assert_eq!(after["status"]["containerStatuses"][0]["restartCount"], 0);
    assert_eq!(
        after["status"]["containerStatuses"][0]["state"]["running"]["startedAt"],
        before["status"]["containerStatuses"][0]["state"]["running"]["startedAt"],
        "the pod's container was restarted"
    );
    eventually_ok("b -> a after the restart", || try_exec(&lab, "b", &curl(&format!("http://{a_ip}/"))));
    assert_ne!(c_ip, a_ip);
    // The new agent's pod joins the same-node redirect of the pods the old one started.
    eventually_ok("c -> a, same node", || try_exec(&lab, "c", &curl(&format!("http://{a_ip}/"))));
    assert!(lab.logs("a").contains(&format!("{c_ip} - -")));
}

#[test]
fn up_and_down_leave_nothing_behind() {
    if !cni_support::privileged("up_and_down_leave_nothing_behind") {
        return;
    }
    let host = |what: &[&str]| text(&Command::new("ip").args(what).output().unwrap().stdout);
    let before = (host(&["-j", "addr"]), host(&["-j", "route"]));
    for _ in 0..2 {
        let lab = Lab::up(&["--nodes", "2"]);
        run_pod(&lab, "p", "nginx", "node2");
        lab.wait_ready("p");
        // A finished pod gives back its network namespace but keeps its sandbox (for its logs).
        lab.kubectl(&["run", "done", "--image=busybox", "--restart=Never", "--command", "--", "true"]);
        lab.wait_pod("done", "Succeeded", |p| p["status"]["phase"] == "Succeeded");
        let kc = std::fs::read_to_string(lab.kubeconfig()).unwrap();
        assert!(kc.contains(&format!("current-context: podnet-{}", lab.name)));
        let status = lab.ok(&["status", "--name", &lab.name]);
        assert!(status.contains("node2") && status.contains("Running"), "{status}");
        lab.ok(&["down", "--name", &lab.name]);
        assert!(lab.namespaces().is_empty(), "namespaces left: {:?}", lab.namespaces());
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let state = lab.state_dir().display().to_string();
        assert!(!mounts.lines().any(|l| l.contains(&state)), "mounts left under {state}:\n{mounts}");
        assert!(!lab.state_dir().exists());
        let kc = std::fs::read_to_string(lab.kubeconfig()).unwrap();
        assert!(!kc.contains(&format!("podnet-{}", lab.name)), "context left in the kubeconfig:\n{kc}");
        for pattern in [format!("podnet.{}.", lab.name), format!("/var/lib/podnet/labs/{}/", lab.name)] {
            let procs = Command::new("pgrep").args(["-f", &pattern]).output().unwrap();
            assert!(procs.stdout.is_empty(), "processes left: {}", text(&procs.stdout));
        }
    }
    let after = (host(&["-j", "addr"]), host(&["-j", "route"]));
    assert_eq!(before.0, after.0, "the host's addresses changed");
    assert_eq!(before.1, after.1, "the host's routes changed");
}

const LIFECYCLE: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: probed}
spec:
  containers:
  - name: good
    image: nginx
    readinessProbe: {httpGet: {path: /, port: 80}, periodSeconds: 1}
  - name: bad
    image: kubetm/app
    readinessProbe: {httpGet: {path: /missing, port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Pod
metadata: {name: crash}
spec:
  containers:
  - {name: c, image: busybox, command: ["sh", "-c", "echo started; exit 3"]}
---
apiVersion: v1
kind: Pod
metadata: {name: unhealthy}
spec:
  containers:
  - name: c
    image: busybox
    command: ["sleep", "3600"]
    livenessProbe: {exec: {command: ["false"]}, periodSeconds: 1, failureThreshold: 1}
---
apiVersion: v1
kind: Pod
metadata: {name: once, labels: {app: once}}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: busybox
    command: ["sh", "-c", "echo pod=$MY_POD ip=$MY_IP node=$MY_NODE hostname=$(hostname) arg=$(GREETING)"]
    env:
    - {name: MY_POD, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: MY_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    - {name: MY_NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
    - {name: GREETING, value: hello}
---
apiVersion: v1
kind: Pod
metadata: {name: noimage}
spec:
  containers:
  - {name: c, image: example.com/not/in/table}
---
apiVersion: v1
kind: Pod
metadata: {name: stubborn}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - {name: c, image: busybox, command: ["sh", "-c", "trap '' TERM; while true; do sleep 1; done"]}
---
apiVersion: v1
kind: Pod
metadata: {name: hostnet}
spec:
  hostNetwork: true
  containers:
  - {name: c, image: nginx}
"#;

#[test]
fn pod_lifecycle_probes_restarts_and_termination() {
    if !cni_support::privileged("pod_lifecycle_probes_restarts_and_termination") {
        return;
    }
    // A loopback port of the host forwarded to port 80 of the node (the hostNetwork nginx below).
    let host_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let lab = Lab::up(&["--nodes", "1", "--port-map", &format!("{host_port}:80")]);
    lab.apply_yaml("lifecycle.yaml", LIFECYCLE);

    // Readiness: one container's probe fails, so the pod runs but is not Ready.
    let p = lab.wait_pod("probed", "good ready, bad not", |p| {
        let cs = p["status"]["containerStatuses"].as_array().cloned().unwrap_or_default();
        cs.len() == 2 && cs[0]["ready"] == true && cs[1]["state"]["running"].is_object()
    });
    std::thread::sleep(Duration::from_secs(3));
    let p2 = lab.pod("probed");
    assert_eq!(p2["status"]["containerStatuses"][1]["ready"], false, "{}", p2["status"]);
    assert_eq!(p["status"]["phase"], "Running");
    let ready = p2["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Ready").unwrap().clone();
    assert_eq!(ready["status"], "False");

    // A crashing container: restarted once at once, then CrashLoopBackOff with its last exit.
    let p = lab.wait_pod("crash", "CrashLoopBackOff", |p| {
        p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    });
    let c = &p["status"]["containerStatuses"][0];
    assert!(c["restartCount"].as_u64().unwrap() >= 1, "{c}");
    assert_eq!(c["lastState"]["terminated"]["exitCode"], 3);
    assert!(lab.logs("crash").contains("started"));

    // A failing liveness probe restarts the container: SIGTERM reaches it (exit 143, not a
    // SIGKILL after the grace period).
    let p = lab.wait_pod("unhealthy", "a liveness restart", |p| {
        p["status"]["containerStatuses"][0]["restartCount"].as_u64().unwrap_or(0) >= 1
    });
    assert_eq!(p["status"]["containerStatuses"][0]["lastState"]["terminated"]["exitCode"], 143, "{}", p["status"]);

    // restartPolicy Never, exit 0: Succeeded, with the environment kubelet builds.
    let p = lab.wait_pod("once", "Succeeded", |p| p["status"]["phase"] == "Succeeded");
    assert_eq!(p["status"]["containerStatuses"][0]["state"]["terminated"]["reason"], "Completed");
    let ip = p["status"]["podIP"].as_str().unwrap().to_string();
    assert_eq!(lab.logs("once").trim(), format!("pod=once ip={ip} node=node1 hostname=once arg=hello"));

    // An image outside the table, without a command: ErrImagePull naming the table.
    let p = lab.wait_pod("noimage", "ErrImagePull", |p| {
        p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "ErrImagePull"
    });
    let msg = p["status"]["containerStatuses"][0]["state"]["waiting"]["message"].as_str().unwrap().to_string();
    assert!(msg.contains("lab image table"), "{msg}");
    assert_eq!(p["status"]["phase"], "Pending");

    // hostNetwork: the node's address, served in the node's namespace.
    let (ip, _) = lab.wait_ready("hostnet");
    assert_eq!(ip, "172.31.0.11");
    eventually_ok("hostNetwork nginx from the node", || {
        let out = lab.podnet(&[
            "node",
            "exec",
            "--name",
            &lab.name,
            "node1",
            "--",
            "curl",
            "-sS",
            "--max-time",
            "5",
            "http://172.31.0.11/",
        ]);
        if out.status.success() {
            Ok(text(&out.stdout))
        } else {
            Err(text(&out.stderr))
        }
    });

    let via_host = Command::new("curl")
        .args(["-sS", "--max-time", "5", &format!("http://127.0.0.1:{host_port}/")])
        .output()
        .unwrap();
    assert!(text(&via_host.stdout).contains("Welcome to nginx!"), "--port-map: {}", text(&via_host.stderr));

    // A container ignoring SIGTERM is killed after its grace period, and the pod goes away.
    lab.wait_ready("stubborn");
    let uid = lab.pod("stubborn")["metadata"]["uid"].as_str().unwrap().to_string();
    lab.kubectl(&["delete", "pod", "stubborn", "--wait=true", "--timeout=60s"]);
    let left = Command::new("pgrep").args(["-f", "trap '' TERM"]).output().unwrap();
    assert!(text(&left.stdout).trim().is_empty(), "the container outlived its pod");
    assert!(!lab.namespaces().iter().any(|n| n.ends_with(&uid)));
}
