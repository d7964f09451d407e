#!/usr/bin/env bash
# API server benchmark: builds podnet (release) and its `api-bench` example, starts
# `podnet server` (API only: --controllers=none) on a free loopback port with a fresh data
# directory, runs the benchmark against
# its kubeconfig, stops the server and prints the figures with the goals:
#   creates/s with 16 concurrent clients            goal >= 2,000/s
#   write-to-watch-event latency, 100 watchers      goal p99 < 10 ms, no missed event
#   LIST of 10,000 Services (full, JSON and Table)  goal < 250 ms (median of 5)
# What each measure means exactly: the doc at the top of crates/podnet/examples/api-bench.rs.
#
# Usage: bash bench/api.sh [api-bench options...]   e.g. --phases list --services 20000
# Environment: PODNET_LOG (the server's log filter, default warn; `debug` logs every request with
# elapsed_us), PODNET_BENCH_SERVER_LOG (keep the server's log in this file).
#
# The goals are the reference: no kube-apiserver can be installed on this machine (no package
# registry it can reach carries one), so there is no peer run to compare with.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/common.sh

ensure_rust
cargo build --release --locked -p podnet --bins --examples

tmp=$(mktemp -d)
server_pid=""
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$server_pid" 2>/dev/null || true
    fi
    if [ -n "${PODNET_BENCH_SERVER_LOG:-}" ] && [ -f "$tmp/server.log" ]; then
        cp "$tmp/server.log" "$PODNET_BENCH_SERVER_LOG"
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

PODNET_LOG="${PODNET_LOG:-warn}" target/release/podnet server \
    --listen 127.0.0.1:0 --data-dir "$tmp/data" --service-cidr 10.96.0.0/12 --controllers=none \
    >"$tmp/server.out" 2>"$tmp/server.log" &
server_pid=$!

# The server prints "podnet server listening on https://ADDR (kubeconfig: PATH)" when ready.
addr=""
for _ in $(seq 300); do
    addr=$(sed -n 's|.*listening on https://\([^ ]*\).*|\1|p' "$tmp/server.out")
    [ -n "$addr" ] && break
    kill -0 "$server_pid" 2>/dev/null || { echo "error: podnet server exited:" >&2; cat "$tmp/server.log" >&2; exit 1; }
    sleep 0.1
done
[ -n "$addr" ] || { echo "error: podnet server did not start within 30 s" >&2; cat "$tmp/server.log" >&2; exit 1; }

echo "== podnet server at https://$addr (pid $server_pid, data in $tmp/data), $(nproc) CPUs: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
echo "== reference: the goals (no kube-apiserver is installable here to run as a peer)"
echo "== load average before: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine slows every figure; see *.cpu.other)"
out="$tmp/bench.out"
target/release/examples/api-bench "$tmp/data/kubeconfig" --server-pid "$server_pid" "$@" | tee "$out"

echo
echo "== summary (goal = the project's, for this 2-core machine)"
grep -E '^api-bench [^ ]+ .*(PASS|MISS)' "$out" | awk '{printf "  %-34s %10s %-9s goal %-7s %s\n", $2, $3, $4, $6, $7}'
grep -E '^api-bench [^ ]+\.cpu\.other ' "$out" | awk '{printf "  %-34s %10s %-9s (CPU used by other processes)\n", $2, $3, $4}'
echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
if grep -qE '^api-bench .* MISS ' "$out"; then
    echo "== some goals were missed"
else
    echo "== all goals met"
fi
