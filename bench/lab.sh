#!/usr/bin/env bash
# Lab benchmark (`podnet up`, issue 5): builds podnet and its `lab-bench` example (release) and
# runs it as root with a temporary KUBECONFIG and lab names unique to this run (bench<pid>…).
# Measured, in one run (details at the top of crates/podnet/examples/lab-bench.rs):
#   up      `podnet up --nodes 3`, spawn to exit (every node Ready), 5 runs with `podnet down`
#           in between: median (goal < 5 s) and max; the same for `podnet down`
#   pods    100 nginx pods in a 3-node lab, created through the API at 10/s and then as a burst
#           of 100 at once: create response -> first watch event with phase Running and a
#           podIP, p50/p99/max (goal p99 < 1 s); then all deleted: time until the last is gone
#   iperf   iperf3 TCP, 1 stream, 5 s, median of 3 runs per path, the paths interleaved:
#           pod <-> pod on one node against a bare veth pair between two namespaces (goal >= 0.9),
#           pod <-> pod across nodes with host-gw (>= 0.9) and vxlan (>= 0.6) against
#           node <-> node over the lab's underlay
# Everything stays inside the labs' namespaces and two namespaces this script's benchmark makes
# for the veth pair; the machine's own namespace gets no route, address or rule. Every lab and
# namespace of the run is removed on exit, also on failure or interruption.
#
# Usage: bash bench/lab.sh [lab-bench options...]   e.g. --phases iperf --iperf-runs 5
# Environment: PODNET_LOG (the labs' log filter, default info; `debug` for the agents' steps),
# PODNET_BENCH_LOGS=DIR (copy each lab's logs, /var/lib/podnet/labs/NAME/logs, to DIR before the
# lab is removed).
# Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/common.sh
source scripts/lib/common.sh

if [ "$(id -u)" -ne 0 ]; then
    echo "error: bench/lab.sh needs root (network namespaces)" >&2
    exit 1
fi
ensure_rust
ensure_packages iproute2 nftables iperf3
cargo build --release --locked -p podnet --bins --examples

prefix="bench$$"
tmp=$(mktemp -d)
bench_pid=""
cleanup() {
    local f
    if [ -n "$bench_pid" ] && kill -0 "$bench_pid" 2>/dev/null; then
        kill -TERM "$bench_pid" 2>/dev/null || true
        wait "$bench_pid" 2>/dev/null || true
    fi
    # The labs (idempotent: a lab that is not there is nothing to do) and the veth namespaces.
    for letter in u p x g; do
        if [ -e "/var/lib/podnet/labs/$prefix$letter" ] || ls /run/netns/podnet."$prefix$letter".* >/dev/null 2>&1; then
            KUBECONFIG="$tmp/kubeconfig" target/release/podnet down --name "$prefix$letter" >/dev/null 2>&1 || true
        fi
    done
    for f in /run/netns/"$prefix"-veth-*; do
        [ -e "$f" ] || continue
        ip netns del "${f##*/}" 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

logs=()
if [ -n "${PODNET_BENCH_LOGS:-}" ]; then
    mkdir -p "$PODNET_BENCH_LOGS"
    logs=(--keep-logs "$PODNET_BENCH_LOGS")
fi
addr_before=$(ip -j addr)
route_before=$(ip -j route)

echo "== $(nproc) CPUs: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1); kernel $(uname -r); $(iperf3 --version | head -1)"
echo "== labs ${prefix}u (up runs), ${prefix}p (pods), ${prefix}x (vxlan), ${prefix}g (host-gw); KUBECONFIG $tmp/kubeconfig"
echo "== reference: the issue's goals; the iperf3 peers (bare veth, node <-> node) are measured in the same run"
echo "== load average before: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine slows every figure)"
start=$(date +%s)
KUBECONFIG="$tmp/kubeconfig" target/release/examples/lab-bench \
    --podnet target/release/podnet --prefix "$prefix" --work "$tmp" "${logs[@]}" "$@" \
    > >(tee "$tmp/bench.out") 2>&1 &
bench_pid=$!
status=0
wait "$bench_pid" || status=$?
bench_pid=""
echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg); $(($(date +%s) - start)) s"

# Nothing of the run may be left, and the machine's own namespace must be as it was.
left=""
for letter in u p x g; do
    [ -e "/var/lib/podnet/labs/$prefix$letter" ] && left+=" state of lab $prefix$letter;"
    n=$(find /run/netns -maxdepth 1 -name "podnet.$prefix$letter.*" 2>/dev/null | wc -l)
    [ "$n" -ne 0 ] && left+=" $n namespaces of lab $prefix$letter;"
    if pgrep -f "podnet.$prefix$letter\." >/dev/null 2>&1; then left+=" processes of lab $prefix$letter;"; fi
done
n=$(find /run/netns -maxdepth 1 -name "$prefix-veth-*" 2>/dev/null | wc -l)
[ "$n" -ne 0 ] && left+=" $n veth namespaces;"
[ "$(ip -j addr)" != "$addr_before" ] && left+=" the host's addresses changed;"
[ "$(ip -j route)" != "$route_before" ] && left+=" the host's routes changed;"
if [ -n "$left" ]; then
    echo "== error: left behind:$left" >&2
    status=1
else
    echo "== nothing left behind (labs, namespaces, processes); the host's addresses and routes unchanged"
fi
if [ "$status" -ne 0 ]; then exit "$status"; fi
if grep -qE '^lab-bench .* MISS ' "$tmp/bench.out"; then
    echo "== some goals were missed"
else
    echo "== all goals met"
fi
