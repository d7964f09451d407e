#!/usr/bin/env bash
# Service proxy benchmark: podnet's nftables mode (netlink) against its iptables mode, with
# 1 / 1,000 / 10,000 ClusterIP services x 10 endpoints, in throw-away network namespaces:
#   full sync time of 10,000 services           goal < 2 s
#   one service change (sync of one port)        goal < 50 ms
#   connect latency, 10,000 services vs 1        goal <= 1.1x (nftables)
#   throughput through a ClusterIP vs pod IP     goal >= 95%
# plus, with PROXY_E2E=1 (default), the time from an API write to the rule being in the kernel
# with the real `podnet proxy` against a `podnet server` inside a node namespace.
# What each figure means: the doc at the top of crates/proxy/examples/proxy-bench.rs. The peers'
# figures (kube-proxy's layouts) are in /work/shared/anchors/proxy-scale.md; PEERS=1 also runs
# /work/shared/anchors/proxy-scale.sh side by side (sizes PEER_SIZES, default "1 1000").
#
# Usage: sudo bash bench/proxy.sh [proxy-bench options...]   e.g. --sizes 1,1000 --modes nftables
# Environment: PROXY_E2E=0 (skip the end-to-end part), E2E_SIZES="1000 10000", E2E_CHANGES=20,
#              PEERS=1, PEER_SIZES="1 1000", PROXY_BENCH_JSON=FILE (keep the raw results).
#
# Every namespace is named pxb<pid>-… and deleted on exit (trap), whatever happens; the host's own
# namespace (its links, routes, rules) is never touched.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/common.sh

[ "$(id -u)" = 0 ] || { echo "error: bench/proxy.sh must run as root (network namespaces)" >&2; exit 1; }
ensure_rust
ensure_packages iperf3 nftables iptables gcc

TAG=pxb$$
WORK=$(mktemp -d /tmp/proxy-bench.XXXXXX)
PIDS=()
NAMESPACES=()

cleanup() {
    set +e
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    for ns in "${NAMESPACES[@]}"; do
        # Processes left in our namespaces (listeners), by pid.
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null; done
        ip netns del "$ns" 2>/dev/null
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Options for the example: sizes and modes decide the namespaces.
SIZES=1,1000,10000
MODES=nftables,iptables
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    case "${args[$i]}" in
        --sizes) SIZES=${args[$((i + 1))]} ;;
        --modes) MODES=${args[$((i + 1))]} ;;
    esac
done

echo "== building (release)"
cargo build --release --locked -p podnet-proxy --example proxy-bench
if [ "${PROXY_E2E:-1}" = 1 ]; then
    cargo build --release --locked -p podnet --bins
fi
gcc -O2 -Wall -o "$WORK/connlat" /work/shared/anchors/connlat.c

echo "== machine: $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), kernel $(uname -r)"
echo "== $(nft --version), $(iptables --version)"
echo "== uptime before: $(uptime)"

# --- topology ---------------------------------------------------------------------------------
newns() { ip netns add "$1"; NAMESPACES+=("$1"); ip -n "$1" link set lo up; }
SRV=$TAG-srv
newns "$SRV"
for i in $(seq 1 11); do ip -n "$SRV" addr add "10.244.255.$i/32" dev lo; done

pairs=(floor)
IFS=, read -ra sizes <<<"$SIZES"
IFS=, read -ra modes <<<"$MODES"
for m in "${modes[@]}"; do for s in "${sizes[@]}"; do pairs+=("$m-$s"); done; done
k=0
for p in "${pairs[@]}"; do
    k=$((k + 1))
    node=$TAG-node-$p
    cli=$TAG-cli-$p
    newns "$node"
    newns "$cli"
    # client <-> node: 10.1.k.0/24; node <-> srv: 10.2.k.0/24
    ip -n "$cli" link add eth0 type veth peer name c0 netns "$node"
    ip -n "$cli" addr add "10.1.$k.2/24" dev eth0
    ip -n "$cli" link set eth0 up
    ip -n "$cli" route add default via "10.1.$k.1"
    ip -n "$node" addr add "10.1.$k.1/24" dev c0
    ip -n "$node" link set c0 up
    ip -n "$node" link add s0 type veth peer name "n$k" netns "$SRV"
    ip -n "$node" addr add "10.2.$k.1/24" dev s0
    ip -n "$node" link set s0 up
    ip -n "$node" route add 10.244.0.0/16 via "10.2.$k.2"
    ip netns exec "$node" sysctl -qw net.ipv4.ip_forward=1
    ip -n "$SRV" addr add "10.2.$k.2/24" dev "n$k"
    ip -n "$SRV" link set "n$k" up
    ip -n "$SRV" route add "10.1.$k.0/24" via "10.2.$k.1"
    # many short connections from one client: a wide port range
    ip netns exec "$cli" sysctl -qw net.ipv4.ip_local_port_range="10000 65000"
done

# The "pods": one accept-and-close listener on every endpoint address (the anchors' listener,
# pinned to the second CPU as in proxy-scale.sh), and iperf3.
SRV_CPU=$(( $(nproc) > 1 ? 1 : 0 ))
ip netns exec "$SRV" taskset -c "$SRV_CPU" python3 -u /work/shared/anchors/proxy_scale_server.py 8080 >"$WORK/listener.log" 2>&1 &
PIDS+=($!)
ip netns exec "$SRV" iperf3 -s -p 5201 >"$WORK/iperf3.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do
    ip netns exec "$SRV" ss -Hltn 'sport = :8080' | grep -q . && ip netns exec "$SRV" ss -Hltn 'sport = :5201' | grep -q . && break
    sleep 0.1
done

# --- the measurements -----------------------------------------------------------------------------
json=${PROXY_BENCH_JSON:-$WORK/results.json}
target/release/examples/proxy-bench --tag "$TAG" --connlat "$WORK/connlat" --json "$json" "$@" | tee "$WORK/bench.out"

# --- end to end: a podnet server and the real podnet proxy in a namespace of their own ----------
e2e() {
    local s=$1 ns=$TAG-e2e-$1 data=$WORK/e2e-$1 pid addr=""
    newns "$ns"
    ip netns exec "$ns" env PODNET_LOG=warn target/release/podnet server --listen 127.0.0.1:0 \
        --data-dir "$data" --service-cidr 10.96.0.0/12 --controllers=none >"$WORK/server-$s.out" 2>"$WORK/server-$s.log" &
    pid=$!
    PIDS+=("$pid")
    for _ in $(seq 300); do
        addr=$(sed -n 's|.*listening on https://\([^ ]*\).*|\1|p' "$WORK/server-$s.out")
        [ -n "$addr" ] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$addr" ]; then
        echo "error: podnet server did not start:" >&2
        cat "$WORK/server-$s.log" >&2
        return 1
    fi
    ip netns exec "$ns" target/release/examples/proxy-bench e2e --kubeconfig "$data/kubeconfig" \
        --podnet target/release/podnet --services "$s" --changes "${E2E_CHANGES:-20}"
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null || true
}
if [ "${PROXY_E2E:-1}" = 1 ]; then
    echo
    echo "== end to end: EndpointSlice write -> rule in the kernel (podnet server + podnet proxy, nftables)"
    for s in ${E2E_SIZES:-1000 10000}; do
        e2e "$s" || echo "(end-to-end run with $s services failed)"
    done
fi

if [ "${PEERS:-0}" = 1 ]; then
    echo
    echo "== peers: /work/shared/anchors/proxy-scale.sh ${PEER_SIZES:-1 1000} (kube-proxy's layouts loaded as kube-proxy does)"
    ensure_packages conntrack
    # shellcheck disable=SC2086
    RESULTS="$WORK/peers.json" bash /work/shared/anchors/proxy-scale.sh ${PEER_SIZES:-1 1000} || echo "(peer run failed)"
fi

echo
echo "== uptime after: $(uptime)"
