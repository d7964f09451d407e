//! Links the `podnet` executable position-dependent (`-no-pie`, as Go links kube-proxy, kubelet
//! and the reference CNI plugins). Every pod start executes the binary several times (the CNI
//! plugin, the sandbox holder, the container shim, built-in images); as a position-independent
//! executable each exec first applied ~65,000 relocations (about 1 ms of CPU, and the pages they
//! touch), which a position-dependent one does not have.

fn main() {
    println!("cargo:rustc-link-arg-bins=-no-pie");
}
