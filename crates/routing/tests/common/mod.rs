//! Helpers of the privileged integration tests (the conventions of podnet-netlink's): the root
//! check that never lets CI skip a test, throw-away namespaces deleted even when a test fails,
//! and a check that the host's own namespace was left alone.
#![allow(dead_code)]

use std::io::Write;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use podnet_netlink::{Handle, Netns};

/// Whether the test can run: true as root. Otherwise prints the marker `scripts/test` looks for
/// and, under CI, fails the test; outside CI the test returns early.
pub fn require_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    // Straight to the file descriptor: the test harness captures `println!` of passing tests,
    // and scripts/test must see the marker.
    let _ = writeln!(std::io::stdout().lock(), "PODNET-PRIVILEGED-TEST-SKIPPED: {test}");
    if std::env::var_os("CI").is_some() {
        panic!("privileged test {test} cannot run without root, and CI must not skip it");
    }
    false
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A throw-away named namespace `pn-rt-<pid>-<n>-<role>`, deleted when dropped.
pub struct TestNs {
    pub name: String,
    pub ns: Netns,
}

impl TestNs {
    pub fn new(role: &str) -> TestNs {
        let name = format!("pn-rt-{}-{}-{role}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst));
        let ns = Netns::create(&name).unwrap_or_else(|e| panic!("create {name}: {e}"));
        TestNs { name, ns }
    }

    /// A netlink handle inside the namespace.
    pub fn handle(&self) -> Handle {
        Handle::in_netns(&self.ns).expect("handle in test namespace")
    }

    /// Runs a command inside the namespace with `ip netns exec` (for checking only) and returns
    /// its standard output; panics if it fails.
    pub fn exec(&self, args: &[&str]) -> String {
        let out = self.exec_status(args);
        assert!(out.0, "ip netns exec {} {args:?} failed: {}", self.name, out.1);
        out.1
    }

    /// Like [`TestNs::exec`], returning (success, stdout + stderr).
    pub fn exec_status(&self, args: &[&str]) -> (bool, String) {
        let out =
            Command::new("ip").args(["netns", "exec", &self.name]).args(args).output().expect("run ip netns exec");
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    }

    /// `ping -c1 -W1 ADDR` from inside the namespace, up to three times: a link that was just
    /// set up gets its carrier a moment later.
    pub fn ping(&self, addr: &str) -> bool {
        (0..3).any(|_| self.exec_status(&["ping", "-c1", "-W1", addr]).0)
    }

    /// `ping -c1 -W1 ADDR` once, for checks that something is unreachable.
    pub fn ping_once(&self, addr: &str) -> bool {
        self.exec_status(&["ping", "-c1", "-W1", addr]).0
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        if let Err(e) = Netns::delete(&self.name) {
            eprintln!("cleanup: delete namespace {}: {e}", self.name);
        }
    }
}

/// What the host's own namespace looks like: its links, IPv4 forwarding, its routes and its
/// nftables tables.
#[derive(Debug, PartialEq, Eq)]
pub struct HostState {
    links: Vec<String>,
    ip_forward: String,
    routes: String,
    tables: String,
}

impl HostState {
    pub fn capture() -> HostState {
        let out = Command::new("ip").args(["-o", "link", "show"]).output().expect("run ip link");
        let mut links: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let mut parts = l.split(':');
                Some(format!("{}:{}", parts.next()?.trim(), parts.next()?.trim()))
            })
            .collect();
        links.sort();
        let ip_forward = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap_or_default();
        let routes = Command::new("ip").args(["route", "show", "proto", "158"]).output().expect("run ip route");
        let tables = Command::new("nft").args(["list", "tables"]).output().map(|o| o.stdout).unwrap_or_default();
        let tables = String::from_utf8_lossy(&tables).lines().filter(|l| l.contains("podnet_node")).collect();
        HostState { links, ip_forward, routes: String::from_utf8_lossy(&routes.stdout).into_owned(), tables }
    }

    /// Panics if the host's namespace changed since `self` was captured.
    pub fn assert_unchanged(&self) {
        assert_eq!(&HostState::capture(), self, "the host's network namespace changed");
    }
}
