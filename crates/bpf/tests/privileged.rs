//! The redirect program against the running kernel (root): the verifier accepts it, its map and
//! program are pinned once and shared by every opener, and pods are added to the map and the
//! program attached to their device — in a throw-away network namespace and bpffs.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use podnet_bpf::redirect::{LocalRedirect, MAP_PIN, PROG_PIN};
use podnet_netlink::{Handle, Netns, NewLink};

fn privileged(test: &str) -> bool {
    if nix::unistd::Uid::effective().is_root() {
        return true;
    }
    println!("PODNET-PRIVILEGED-TEST-SKIPPED: {test}");
    if std::env::var_os("CI").is_some() {
        panic!("privileged test {test} cannot run without root, and CI must not skip it");
    }
    false
}

/// A network namespace and a bpffs, removed when dropped (also after a failed assertion).
struct World {
    ns_name: String,
    ns: Netns,
    dir: tempfile::TempDir,
}

impl World {
    fn new(tag: &str) -> World {
        let ns_name = format!("pn-bpf-{tag}-{}", std::process::id());
        let ns = Netns::create(&ns_name).expect("netns");
        World { ns_name, ns, dir: tempfile::tempdir().expect("tempdir") }
    }

    fn bpffs(&self) -> PathBuf {
        self.dir.path().join("bpf")
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.bpffs(), nix::mount::MntFlags::MNT_DETACH);
        let _ = Netns::delete(&self.ns_name);
    }
}

#[test]
fn the_program_loads_on_this_kernel() {
    if !privileged("the_program_loads_on_this_kernel") {
        return;
    }
    let w = World::new("load");
    podnet_bpf::ensure_bpffs(&w.bpffs()).expect("mount");
    LocalRedirect::open_or_load(&w.bpffs()).expect("the verifier accepts the redirect program");
}

#[test]
fn pins_are_shared_and_pods_come_and_go() {
    if !privileged("pins_are_shared_and_pods_come_and_go") {
        return;
    }
    let w = World::new("pins");
    let dir = w.bpffs();
    std::fs::create_dir_all(&dir).unwrap();
    let e = LocalRedirect::open_or_load(&dir).unwrap_err().to_string();
    assert!(e.contains("not a bpffs"), "{e}");
    assert!(LocalRedirect::open(&dir).unwrap().is_none());

    podnet_bpf::ensure_bpffs(&dir).expect("mount");
    podnet_bpf::ensure_bpffs(&dir).expect("already mounted is fine");
    let first = LocalRedirect::open_or_load(&dir).expect("load and pin");
    assert!(dir.join(MAP_PIN).exists() && dir.join(PROG_PIN).exists());
    let second = LocalRedirect::open_or_load(&dir).expect("open the pins");

    let ip = Ipv4Addr::new(10, 244, 1, 7);
    let index = podnet_netlink::run_in(&w.ns, || {
        let mut h = Handle::new().unwrap();
        let link = h.create_link(&NewLink::veth("pod0", "pod1").up()).expect("veth");
        first.add_pod(&mut h, ip, link.index).expect("add");
        first.add_pod(&mut h, ip, link.index).expect("adding again is fine");
        link.index
    })
    .unwrap();
    assert_eq!(second.pod(ip).unwrap(), Some(index), "one map for every opener");
    let tc = std::process::Command::new("ip")
        .args(["netns", "exec", &w.ns_name, "tc", "filter", "show", "dev", "pod0", "ingress"])
        .output()
        .unwrap();
    let tc = String::from_utf8_lossy(&tc.stdout);
    let classifiers = tc.lines().filter(|l| l.contains("podnet_redirect")).count();
    assert_eq!(classifiers, 1, "one classifier on the pod's veth:\n{tc}");
    assert!(tc.contains("direct-action"), "{tc}");
    let third = LocalRedirect::open(&dir).unwrap().expect("pinned");
    assert!(third.remove_pod(ip).unwrap());
    assert!(!second.remove_pod(ip).unwrap());
    assert_eq!(first.pod(ip).unwrap(), None);
}
