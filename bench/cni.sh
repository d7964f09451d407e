#!/usr/bin/env bash
# CNI plugin benchmark: podnet's plugin against the reference `bridge` + `host-local` plugins
# (Debian's containernetworking-plugins, /usr/lib/cni) on the same configuration, in one run.
#
# Builds podnet and its `cni-bench` example (release), makes a throw-away "host" network
# namespace and runs cni-bench inside it (`ip netns exec`): every plugin is a child of it, so
# each bridge, veth, nftables/iptables rule and sysctl they make is in that namespace, never in
# the machine's own (cni-bench refuses to run there). The IPAM dataDir is a temporary directory,
# never /var/lib/cni. Each plugin is exec'd as a runtime does (clean environment with CNI_*,
# configuration on stdin); a latency is spawn to exit. The configuration: spec 1.0.0, its own
# bridge, isGateway, ipMasq true and false, host-local IPAM on a /16. Measured (details at the top
# of crates/podnet/examples/cni-bench.rs):
#   exec        the floor of one plugin run (CNI_COMMAND=VERSION), per binary
#   latency     N (200) sequential ADDs then N DELs per plugin, each into a fresh pod namespace
#               made beforehand (not timed), the two plugins alternating op by op; median, p99,
#               CPU per op, and podnet/reference of the medians (goal <= 0.5)
#   concurrent  100 ADDs started at once (wall time; the 100 addresses must be distinct), then
#               100 DELs, per plugin
#   cycles      10,000 ADD/DEL cycles of podnet and 1,000 of the reference (whose iptables-based
#               ipMasq makes a cycle several times slower), a fresh pod namespace per cycle
# After each phase: no reservation file (besides lock, last_reserved_ip.*), no veth, no pod
# namespace, no nftables/iptables rule may be left; the script also checks that the machine's
# own namespace got no bridge of the benchmark and that its ip_forward did not change.
#
# Usage: bash bench/cni.sh [cni-bench options...]
#   e.g. bash bench/cni.sh --n 500 --phases exec,latency     (cni-bench --help lists them)
# Needs root. Everything the run made is removed on exit, also on failure or interruption.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/common.sh
source scripts/lib/common.sh

if [ "$(id -u)" -ne 0 ]; then
    echo "error: bench/cni.sh needs root (network namespaces)" >&2
    exit 1
fi
ensure_rust
ensure_packages iproute2 nftables iptables containernetworking-plugins
cargo build --release --locked -p podnet --bin podnet --example cni-bench

tag="pnbench-$$"
host="$tag-host"
tmp=$(mktemp -d)
bench_pid=""
cleanup() {
    local f
    if [ -n "$bench_pid" ] && kill -0 "$bench_pid" 2>/dev/null; then
        kill -TERM "$bench_pid" 2>/dev/null || true
        wait "$bench_pid" 2>/dev/null || true
    fi
    # The host namespace (with it its bridges, veths and rules) and any pod namespace an
    # interrupted run left.
    for f in /run/netns/"$tag"-*; do
        [ -e "$f" ] || continue
        ip netns del "${f##*/}" 2>/dev/null || { umount -l "$f" 2>/dev/null || true; rm -f "$f"; }
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

forward_before=$(cat /proc/sys/net/ipv4/ip_forward)
ip netns add "$host"
ip netns exec "$host" ip link set lo up
mkdir "$tmp/bin"
ln -s "$PWD/target/release/podnet" "$tmp/bin/podnet"

ref_version=$(dpkg-query -W -f='${Version}' containernetworking-plugins 2>/dev/null || echo unknown)
echo "== $(nproc) CPUs: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1); kernel $(uname -r)"
echo "== podnet $(git rev-parse --short HEAD 2>/dev/null || echo '?') (release) against containernetworking-plugins $ref_version"
echo "== host namespace $host, work directory $tmp"
echo "== load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
start=$(date +%s)
ip netns exec "$host" target/release/examples/cni-bench \
    --podnet-dir "$tmp/bin" --reference-dir /usr/lib/cni --work "$tmp" --prefix "$tag-pod" \
    --outside-netns "$(readlink /proc/self/ns/net)" "$@" \
    > >(tee "$tmp/bench.out") 2>&1 &
bench_pid=$!
status=0
wait "$bench_pid" || status=$?
bench_pid=""
echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg); $(($(date +%s) - start)) s"

# The machine's own namespace must not have been touched.
touched=""
for br in pnb-masq pnb-nomasq ref-masq ref-nomasq; do
    if ip link show dev "$br" >/dev/null 2>&1; then touched+=" bridge $br;"; fi
done
if [ "$(cat /proc/sys/net/ipv4/ip_forward)" != "$forward_before" ]; then touched+=" net.ipv4.ip_forward changed;"; fi
left=$(find /run/netns -maxdepth 1 -name "$tag-pod-*" 2>/dev/null | wc -l)
if [ "$left" -ne 0 ]; then touched+=" $left pod namespace files under /run/netns;"; fi
if [ -n "$touched" ]; then
    echo "== error: outside the host namespace:$touched" >&2
    status=1
else
    echo "== the machine's namespace is untouched (no benchmark bridge, ip_forward $forward_before, no pod namespace left)"
fi
if [ "$status" -ne 0 ]; then exit "$status"; fi
