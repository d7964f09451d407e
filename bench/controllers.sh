#!/usr/bin/env bash
# Controllers benchmark (the endpoints and EndpointSlice controllers): builds podnet (release) and
# its `controllers-bench` example, starts `podnet server` (API only: --controllers=none) on a free
# loopback port with a fresh data directory, and runs the benchmark against its kubeconfig. The
# benchmark runs `podnet controllers --kubeconfig K` itself, as a separate process that it starts,
# kills (SIGKILL) and starts again. With 1,000 Services x 10 pods:
#   cold      controllers started against the full state (no slices yet): time until every
#             EndpointSlice and Endpoints is correct
#   ready     pods turned Ready at 200/s: status write's response -> EndpointSlice watch event
#             showing the endpoint ready, p50/p99/max          goal p99 < 50 ms, none never seen
#   restart   controllers killed; 1,000 readiness flips, 100 pods deleted, 100 added, 10 Services
#             added while down; started again: time until every slice and Endpoints is correct
# What each measure means exactly: the doc at the top of crates/podnet/examples/controllers-bench.rs.
#
# Usage: bash bench/controllers.sh [controllers-bench options...]
#   e.g. --services 200 --rate 100 --phases ready    (controllers-bench --help lists them)
# Environment: PODNET_LOG (the server's log filter, default warn), PODNET_BENCH_SERVER_LOG (keep
# the server's log in this file), PODNET_BENCH_CONTROLLERS_LOG (keep the controllers' log in this
# file; their filter is --controllers-log-level, default warn, e.g. debug).
#
# The goal is the reference: kube-controller-manager (and a kube-apiserver for it) cannot be
# installed on this machine, so there is no peer run to compare with.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/common.sh
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
    if [ -n "${PODNET_BENCH_CONTROLLERS_LOG:-}" ] && [ -f "$tmp/controllers.log" ]; then
        cp "$tmp/controllers.log" "$PODNET_BENCH_CONTROLLERS_LOG"
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

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
echo "== reference: the goal (no kube-controller-manager is installable here to run as a peer)"
echo "== load average before: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine slows every figure; see *.cpu.other)"
start=$(date +%s)
out="$tmp/bench.out"
target/release/examples/controllers-bench --kubeconfig "$tmp/data/kubeconfig" --server-pid "$server_pid" \
    --podnet target/release/podnet --controllers-log "$tmp/controllers.log" "$@" | tee "$out"

echo
echo "== summary (goal = the issue's, for this 2-core machine)"
grep -E '^controllers-bench [^ ]+ .*(PASS|MISS|info) ' "$out" | grep -vE '\.cpu\.|^controllers-bench run ' |
    awk '{printf "  %-30s %10s %-6s goal %-5s %s\n", $2, $3, $4, $6, $7}'
grep -E '^controllers-bench [^ ]+\.cpu\.other ' "$out" | awk '{printf "  %-30s %10s %-6s (CPU used by other processes)\n", $2, $3, $4}'
echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg); $(($(date +%s) - start)) s"
if [ -s "$tmp/controllers.log" ]; then
    echo "== the controllers logged $(wc -l <"$tmp/controllers.log") lines (warnings and above by default); the last ones:"
    tail -5 "$tmp/controllers.log" | sed 's/^/  /'
fi
if grep -qE '^controllers-bench .* MISS ' "$out"; then
    echo "== some goals were missed"
else
    echo "== all goals met"
fi
