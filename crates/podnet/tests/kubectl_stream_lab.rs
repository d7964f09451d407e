//! `kubectl logs`, `exec`, `attach` and `run -i` in a two-node lab: the API server proxies the
//! pods' `log`, `exec` and `attach` subresources to the kubelet API of the pod's node agent
//! (WebSocket `v5.channel.k8s.io` for the streams). Covers `logs` with `-c`, `--tail` and `-f`,
//! exec's output, exit codes and piped stdin, attach, and the seed documents'
//! `kubectl run -i --rm --restart=Never test-pod --image=busybox -- cat /etc/resolv.conf`.

mod cni_support;
mod common;
mod lab_support;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use lab_support::{text, Lab};

/// Runs kubectl with `stdin` piped in and a time limit; returns its output.
fn kubectl_with(lab: &Lab, args: &[&str], stdin: &[u8], limit: Duration) -> Output {
    let mut child = Command::new("timeout")
        .arg(limit.as_secs().to_string())
        .arg("kubectl")
        .args(args)
        .env("KUBECONFIG", lab.kubeconfig())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn pods(lab: &Lab) -> String {
    lab.kubectl(&["get", "pods", "-o", "jsonpath={.items[*].metadata.name}"])
}

#[test]
fn kubectl_streams_in_the_lab() {
    if !cni_support::privileged("kubectl_streams_in_the_lab") {
        return;
    }
    let lab = Lab::up(&["--nodes", "2"]);
    lab.apply_yaml(
        "talker.yaml",
        r#"apiVersion: v1
kind: Pod
metadata: {name: talker}
spec:
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "echo one; echo two; echo three; sleep 3600"]
  - name: side
    image: busybox
    command: ["sh", "-c", "echo from-side; sleep 3600"]
"#,
    );
    lab.wait_ready("talker");

    // logs: the container's lines, -c, --tail, -f (which keeps going: stopped by a timeout).
    let all = lab_support::eventually_ok("talker's logs", || {
        let out = lab.kubectl(&["logs", "talker", "-c", "main"]);
        if out.contains("three") {
            Ok(out)
        } else {
            Err(out)
        }
    });
    assert_eq!(all, "one\ntwo\nthree\n");
    assert_eq!(lab.kubectl(&["logs", "talker", "-c", "side"]), "from-side\n");
    assert_eq!(lab.kubectl(&["logs", "talker", "-c", "main", "--tail", "1"]), "three\n");
    let followed = kubectl_with(&lab, &["logs", "-f", "talker", "-c", "main"], b"", Duration::from_secs(3));
    assert_eq!(followed.status.code(), Some(124), "logs -f ended by itself: {}", text(&followed.stderr));
    assert_eq!(text(&followed.stdout), "one\ntwo\nthree\n");
    let bad = kubectl_with(&lab, &["logs", "talker", "-c", "nope"], b"", Duration::from_secs(20));
    assert!(!bad.status.success());
    assert!(text(&bad.stderr).contains("container nope is not valid for pod talker"), "{}", text(&bad.stderr));
    let missing = kubectl_with(&lab, &["logs", "nosuchpod"], b"", Duration::from_secs(20));
    assert!(text(&missing.stderr).contains("not found"), "{}", text(&missing.stderr));

    // exec: output, exit codes, stdin.
    assert_eq!(lab.kubectl(&["exec", "talker", "-c", "main", "--", "hostname"]), "talker\n");
    let failed =
        kubectl_with(&lab, &["exec", "talker", "--", "sh", "-c", "echo out; exit 3"], b"", Duration::from_secs(30));
    assert_eq!(failed.status.code(), Some(3), "{}", text(&failed.stderr));
    assert_eq!(text(&failed.stdout), "out\n");
    let piped = kubectl_with(&lab, &["exec", "-i", "talker", "--", "cat"], b"hi\n", Duration::from_secs(30));
    assert!(piped.status.success(), "{}", text(&piped.stderr));
    assert_eq!(text(&piped.stdout), "hi\n");
    let stderr = kubectl_with(
        &lab,
        &["exec", "talker", "-c", "main", "--", "sh", "-c", "echo err >&2"],
        b"",
        Duration::from_secs(30),
    );
    assert_eq!(text(&stderr.stderr), "err\n");

    // attach: the current run's output from its start, then the stream stays open.
    let attached = kubectl_with(&lab, &["attach", "talker", "-c", "main"], b"", Duration::from_secs(4));
    assert_eq!(attached.status.code(), Some(124));
    assert!(text(&attached.stdout).starts_with("one\ntwo\nthree\n"), "{}", text(&attached.stdout));

    // The seed documents' commands: run -i (attach, or logs when the pod already finished),
    // --rm deletes the pod.
    for (pod, tty) in [("test-pod", "-i"), ("test-pod-tty", "-it")] {
        let args = ["run", tty, "--rm", "--restart=Never", pod, "--image=busybox", "--", "cat", "/etc/resolv.conf"];
        let out = kubectl_with(&lab, &args, b"", Duration::from_secs(90));
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(out.status.success(), "kubectl run {tty}: {stdout}{stderr}");
        assert!(stdout.contains("nameserver 10.96.0.10"), "{stdout}{stderr}");
        assert!(stdout.contains("search default.svc.cluster.local svc.cluster.local cluster.local"), "{stdout}");
        assert!(stdout.contains(&format!("pod \"{pod}\" deleted")), "{stdout}{stderr}");
        // (With -t, kubectl warns that it cannot use a TTY only when it attaches; when the pod
        // has already finished it reads the log instead, so the warning is not checked.)
        assert!(!pods(&lab).split(' ').any(|p| p == pod), "{pod} is still there");
    }
    let out = kubectl_with(
        &lab,
        &["run", "-i", "--rm", "--restart=Never", "lookup", "--image=busybox", "--", "nslookup", "kubernetes.default"],
        b"",
        Duration::from_secs(90),
    );
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("10.96.0.1"), "{}", text(&out.stdout));

    // The kubelet API lets in only the API server (a client certificate of the cluster CA): a
    // pod on the node network is refused before any request is read.
    let (_, node) = lab.wait_ready("talker");
    let node_ip = lab.kubectl(&["get", "node", &node, "-o", "jsonpath={.status.addresses[0].address}"]);
    let url = format!("https://{node_ip}:10250/containerLogs/default/talker/main");
    let out = lab.podnet(&[
        "exec",
        "--name",
        &lab.name,
        "talker",
        "-c",
        "side",
        "--",
        "curl",
        "-sk",
        "--max-time",
        "5",
        &url,
    ]);
    assert!(!out.status.success(), "the kubelet API answered a caller without a certificate: {}", text(&out.stdout));
    assert!(!text(&out.stdout).contains("one"), "{}", text(&out.stdout));
}
