#!/usr/bin/env bash
# Cluster DNS benchmark: `podnet dns` (a CoreDNS drop-in) against NSD, Knot and Unbound, with
# dnsperf, side by side in one run, on this machine (issue: ">= 0.8x NSD/Knot, >= 1x Unbound,
# memory < 40 MiB with 10k services"; for scale, CoreDNS's published figure is ~33,700 qps on 2 vCPUs).
#
# Everything runs inside a private network + PID namespace (unshare --net --pid): only `lo` is
# up, nothing can leave the machine, the host's routes/addresses/NAT are never touched, and the
# kernel kills every process of the run when the script ends (an EXIT trap also stops them by PID).
#
#   1. `podnet server --controllers=none` (127.0.0.1, data dir in a temp dir) gets 10 namespaces
#      ns-0..ns-9 and 10,000 ClusterIP Services svc-N in ns-M (N 0..999, kubectl create in
#      parallel chunks); the ClusterIPs are allocated by the server and read back
#      (kubectl get svc -A) into a zone file `cluster.local.` with the same names and addresses.
#   2. (a) cluster records, `svc-N.ns-M.svc.cluster.local A` (200k random picks, seed 42):
#        podnet dns   kubeadm's Corefile (errors, health, ready, kubernetes cluster.local
#                     in-addr.arpa ip6.arpa {pods insecure; fallthrough; ttl 30}, prometheus,
#                     forward . 127.0.0.1:5399, cache 30, loop, reload, loadbalance) on :5353
#        podnet-nocache  the same without `cache` (the kubernetes plugin's own path) on :5354
#        NSD 4        authoritative for the zone file, server-count 2, minimal-responses, :5301
#        Knot 3       authoritative for the zone file, udp-workers 2, :5302
#   3. (b) cached forwarded names, `svc-N.ns-M.example A` (10,000 names, same random picks): an
#      upstream NSD (:5399, 1 process, TTL 3600) is authoritative for `example.`;
#        podnet dns   the same process and Corefile as (a): cache 30 + forward . 127.0.0.1:5399
#        Unbound      num-threads 2, forward-zone "." -> 127.0.0.1@5399, cache-max-ttl 30 (the same
#                     30 s cap as `cache 30`, so both refetch each name once per 30 s), :5303
#      Both caches are warmed (all 10k names) right before each of their runs.
#   4. Per row and round: dnsperf unlimited (no -Q) for DURATION s, then -Q FIXED_QPS with -v
#      (per-query latencies -> p50/p99); CPU of the server, dnsperf and other processes during
#      each run. Memory (RSS, and PSS from /proc/PID/smaps_rollup, summed over each server's
#      processes) after the runs; podnet dns's also right after it loaded the 10k Services.
#      Memory (RSS, PSS) also with the 10k Services' answers cached: after the correctness check
#      has asked every cluster name, before podnet is asked any forwarded name.
#   5. Rounds interleave the rows (podnet, nsd, knot, ... then again), so machine noise hits all
#      of them alike; the tables show the median over rounds and podnet/peer ratios, and a goals
#      line says met/missed from the measured numbers.
# Before measuring: every server must answer all 10k names NOERROR, and a random sample of
# names must give the same address from podnet dns as from NSD/Knot (a) or Unbound (b) (dig).
#
# Usage (root): bash bench/dns.sh
# Environment: ROUNDS=3 DURATION=10 FIXED_QPS=20000 CLIENTS=20 THREADS=2 OUTSTANDING=100
#   QUICK=1 (each row once, 5 s), NOCACHE_ROW=1 (0: skip the podnet-nocache row),
#   CACHE_SUCCESS=32768 (the podnet cache's success capacity; CoreDNS's default 9,984 cannot
#   hold the 10k cluster names plus the 10k forwarded names at once: set 0 for the default),
#   SERVER_THREADS=$(nproc), QUIET_PCT=15 QUIET_MAX=20 OTHER_MAX=10 ATTEMPTS=1 (before a run wait
#   up to QUIET_MAX s for other processes to use <= QUIET_PCT % of a core; repeat a run in which
#   they used > OTHER_MAX %, up to ATTEMPTS times), SKIP_BUILD=1 (use target/release/podnet as is),
#   PODNET_BIN=path, RESULTS_DIR=dir (keep raw outputs there), KEEP_TMP=1, DNS_BENCH_TRACE=1,
#   PODNET_DNS_ENV='VAR=value ...' (extra environment for the podnet dns processes, e.g.
#   MALLOC_ARENA_MAX=2), PERF=1 (after the measured runs, one extra run per podnet part under `perf record -g`; the
#   top of `perf report` goes to RESULTS_DIR/perf-*.txt and is not part of the tables).
# Caveat: dnsperf shares the machine's cores with the server under test, so "qps" is client and
# server together; "qps/core" (qps per core of server CPU) is the server's efficiency.
set -euo pipefail

QUICK=${QUICK:-0}
if [[ "$QUICK" == 1 ]]; then ROUNDS=${ROUNDS:-1}; DURATION=${DURATION:-5}; fi
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
FIXED_QPS=${FIXED_QPS:-20000}
CLIENTS=${CLIENTS:-20}
THREADS=${THREADS:-2}
OUTSTANDING=${OUTSTANDING:-100}
NQUERIES=${NQUERIES:-200000}
NOCACHE_ROW=${NOCACHE_ROW:-1}
CACHE_SUCCESS=${CACHE_SUCCESS:-32768}
SERVER_THREADS=${SERVER_THREADS:-$(nproc)}
QUIET_PCT=${QUIET_PCT:-15}
QUIET_MAX=${QUIET_MAX:-20}
OTHER_MAX=${OTHER_MAX:-10}
ATTEMPTS=${ATTEMPTS:-1}
KEEP_TMP=${KEEP_TMP:-0}
PERF=${PERF:-0}
PODNET_DNS_ENV=${PODNET_DNS_ENV:-}
PODNET_PORT=5353 NOCACHE_PORT=5354 NSD_PORT=5301 KNOT_PORT=5302 UNBOUND_PORT=5303 UPSTREAM_PORT=5399
export QUICK ROUNDS DURATION FIXED_QPS CLIENTS THREADS OUTSTANDING NQUERIES NOCACHE_ROW CACHE_SUCCESS \
       SERVER_THREADS QUIET_PCT QUIET_MAX OTHER_MAX ATTEMPTS KEEP_TMP PERF PODNET_DNS_ENV

log() { printf '[dns-bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ------------------------------------------------------------------ outer part (host namespace)
if [[ "${1:-}" != "--inner" ]]; then
    cd "$(dirname "$0")/.."
    # shellcheck source=scripts/lib/common.sh
    source scripts/lib/common.sh
    [[ $(id -u) -eq 0 ]] || die "bench/dns.sh needs root (network namespace)"
    ensure_packages dnsperf nsd knot unbound bind9-dnsutils curl iproute2 procps util-linux
    ensure_kubectl
    # Debian's packages may start their services (not in containers, where policy-rc.d forbids
    # it); stop only those units, by name, so they do not share the CPUs with the benchmark.
    for svc in nsd knot unbound; do
        if [[ -d /run/systemd/system ]] && systemctl is-active --quiet "$svc"; then
            log "stopping auto-started $svc"; systemctl stop "$svc"
        fi
    done
    if [[ -z "${PODNET_BIN:-}" ]]; then
        if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
            ensure_rust
            cargo build --release --locked -p podnet
        fi
        PODNET_BIN=$PWD/target/release/podnet
    fi
    [[ -x "$PODNET_BIN" ]] || die "no podnet binary at $PODNET_BIN"
    export PODNET_BIN
    [[ -n "${RESULTS_DIR:-}" ]] && mkdir -p "$RESULTS_DIR" && export RESULTS_DIR
    exec unshare --net --pid --fork --kill-child --mount-proc -- \
        bash ${DNS_BENCH_TRACE:+-x} "$PWD/bench/$(basename "${BASH_SOURCE[0]}")" --inner
fi

# ------------------------------------------------------------------ inner part (private namespace)
ip link set lo up
T=$(mktemp -d /tmp/podnet-bench-dns.XXXXXX)
mkdir -p "$T/nsd" "$T/upstream" "$T/knot/db" "$T/unbound" "$T/out" "$T/kcache"
# A private copy: another build replacing target/release/podnet mid-run cannot change what runs.
cp "$PODNET_BIN" "$T/podnet"
PODNET=$T/podnet
STARTED=()   # PIDs of every server this script started

descendants() {  # all descendant PIDs of $1 (by parent PID, never by name)
    local c
    for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do echo "$c"; descendants "$c"; done
}
tree() { echo "$1"; descendants "$1"; }
stop_pid() {
    local p=$1 kids c
    kids=$(descendants "$p")
    kill -TERM "$p" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    for c in $p $kids; do kill -KILL "$c" 2>/dev/null || true; done
    wait "$p" 2>/dev/null || true
}
cleanup() {
    local rc=$? p
    for p in "${STARTED[@]}"; do stop_pid "$p"; done
    STARTED=()
    if [[ -n "${RESULTS_DIR:-}" ]]; then cp -r "$T/out/." "$RESULTS_DIR/" 2>/dev/null || true; fi
    if [[ "$KEEP_TMP" == 1 ]]; then log "kept $T"; else rm -rf "$T"; fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_bg() {  # NAME CMD...: start a foreground-mode server in the background -> LAST_PID
    local name=$1; shift
    "$@" > "$T/$name.log" 2>&1 &
    LAST_PID=$!
    STARTED+=("$LAST_PID")
}
mem_kib() {  # "RSS PSS" in KiB summed over a process tree
    local rss=0 pss=0 p v
    for p in $(tree "$1"); do
        v=$(awk '/^VmRSS:/{print $2}' "/proc/$p/status" 2>/dev/null || echo 0); rss=$((rss + ${v:-0}))
        v=$(awk '/^Pss:/{print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0); pss=$((pss + ${v:-0}))
    done
    echo "$rss $pss"
}
cpu_ticks() {  # utime+stime (clock ticks) summed over a process tree
    local t=0 p v
    for p in $(tree "$1"); do
        v=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12+$13}') || v=0
        t=$((t + ${v:-0}))
    done
    echo "$t"
}
HZ=$(getconf CLK_TCK)
sys_busy() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat; }  # machine-wide busy ticks

# ------------------------------------------------------------------ 1. API server and 10k Services
log "podnet server (API only) in $T/server"
PODNET_LOG=warn start_bg server "$PODNET" server --listen 127.0.0.1:0 --data-dir "$T/server" \
    --service-cidr 10.96.0.0/12 --controllers=none
SERVER_PID=$LAST_PID
addr=""
for _ in $(seq 300); do
    addr=$(sed -n 's|.*listening on https://\([^ ]*\).*|\1|p' "$T/server.log")
    [[ -n "$addr" ]] && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$T/server.log" >&2; die "podnet server exited"; }
    sleep 0.1
done
[[ -n "$addr" ]] || { cat "$T/server.log" >&2; die "podnet server did not start within 30 s"; }
export KUBECONFIG=$T/server/kubeconfig KUBECACHEDIR=$T/kcache
[[ -f "$KUBECONFIG" ]] || die "no kubeconfig at $KUBECONFIG"
log "API server at https://$addr"

awk 'BEGIN { for (m = 0; m < 10; m++) printf "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: ns-%d\n", m }' \
    > "$T/namespaces.yaml"
kubectl create -f "$T/namespaces.yaml" > /dev/null
for m in $(seq 0 9); do
    awk -v m="$m" 'BEGIN { for (n = 0; n < 1000; n++)
        printf "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: svc-%d\n  namespace: ns-%d\nspec:\n  type: ClusterIP\n  selector:\n    app: svc-%d\n  ports:\n  - name: http\n    port: 80\n    protocol: TCP\n", n, m, n }' \
        > "$T/services-$m.yaml"
done
t0=$(date +%s.%N)
# 10 files of 1,000 Services, all at once (each kubectl POSTs its objects in turn).
printf '%s\n' "$T"/services-*.yaml | xargs -P 10 -I{} sh -c 'kubectl create -f "$1" > /dev/null' _ {}
t1=$(date +%s.%N)
kubectl get svc -A -o jsonpath='{range .items[*]}{.metadata.namespace}{" "}{.metadata.name}{" "}{.spec.clusterIP}{"\n"}{end}' |
    awk '$2 ~ /^svc-[0-9]+$/' | sort -k1,1 -k2,2 > "$T/services.txt"
nsvc=$(wc -l < "$T/services.txt")
[[ "$nsvc" == 10000 ]] || die "expected 10000 services, the API lists $nsvc"
awk '$3 !~ /^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$/ { bad++ } END { exit bad > 0 }' "$T/services.txt" ||
    die "some services have no IPv4 ClusterIP"
[[ $(awk '{print $3}' "$T/services.txt" | sort -u | wc -l) == 10000 ]] || die "ClusterIPs are not distinct"
log "10,000 Services created in $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') s (ClusterIPs from the server)"

# ------------------------------------------------------------------ zone files and query files
{
    echo '$ORIGIN cluster.local.'
    echo '$TTL 30'
    echo '@ 30 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 30'
    echo '@ 30 IN NS ns.dns.cluster.local.'
    echo 'ns.dns 30 IN A 10.96.0.10'
    awk '{ printf "%s.%s.svc 30 IN A %s\n", $2, $1, $3 }' "$T/services.txt"
} > "$T/cluster.local.zone"
awk 'BEGIN {
    print "$ORIGIN example."; print "$TTL 3600"
    print "@ 3600 IN SOA ns.example. hostmaster.example. 1 7200 1800 86400 3600"
    print "@ 3600 IN NS ns.example."; print "ns 3600 IN A 127.0.0.1"
    for (i = 0; i < 10000; i++)
        printf "svc-%d.ns-%d 3600 IN A 10.%d.%d.%d\n", i % 1000, int(i / 1000), 128 + int(i / 65536), int(i / 256) % 256, i % 256
}' > "$T/example.zone"
nsd-checkzone cluster.local "$T/cluster.local.zone" >&2
nsd-checkzone example "$T/example.zone" >&2
for z in cluster example; do
    suffix=svc.cluster.local; [[ $z == example ]] && suffix=example
    awk -v s="$suffix" 'BEGIN { for (m = 0; m < 10; m++) for (n = 0; n < 1000; n++) printf "svc-%d.ns-%d.%s A\n", n, m, s }' > "$T/$z.names"
    # Random lookups with a portable LCG (MINSTD, seed 42), as the peers' baseline uses.
    awk -v nq="$NQUERIES" -v s="$suffix" 'BEGIN { x = 42
        for (q = 0; q < nq; q++) { x = (x * 48271) % 2147483647; i = x % 10000
            printf "svc-%d.ns-%d.%s A\n", i % 1000, int(i / 1000), s } }' > "$T/$z.queries"
done

# ------------------------------------------------------------------ configs
nsd_conf() {  # DIR PORT COUNT ZONE FILE
    cat <<EOF
server:
  ip-address: 127.0.0.1@$2
  server-count: $3
  reuseport: yes
  username: ""
  chroot: ""
  database: ""
  zonesdir: "$T"
  zonelistfile: "$1/zone.list"
  xfrdfile: "$1/xfrd.state"
  xfrdir: "$1"
  pidfile: "$1/nsd.pid"
  logfile: "$1/nsd.log"
  verbosity: 1
  # Answer-only responses (no authority NS / additional glue), like CoreDNS and Knot.
  minimal-responses: yes
remote-control:
  control-enable: no
zone:
  name: "$4"
  zonefile: "$5"
EOF
}
nsd_conf "$T/nsd" "$NSD_PORT" "$SERVER_THREADS" cluster.local "$T/cluster.local.zone" > "$T/nsd/nsd.conf"
nsd_conf "$T/upstream" "$UPSTREAM_PORT" 1 example "$T/example.zone" > "$T/upstream/nsd.conf"

cat > "$T/knot/knot.conf" <<EOF
server:
  rundir: "$T/knot"
  pidfile: "$T/knot/knot.pid"
  listen: 127.0.0.1@$KNOT_PORT
  udp-workers: $SERVER_THREADS
  tcp-workers: $SERVER_THREADS
  background-workers: 1
log:
  - target: "$T/knot/knot.log"
    any: info
control:
  listen: "$T/knot/knot.sock"
database:
  storage: "$T/knot/db"
template:
  - id: default
    storage: "$T"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
zone:
  - domain: cluster.local
    file: "$T/cluster.local.zone"
EOF

cat > "$T/unbound/unbound.conf" <<EOF
server:
  interface: 127.0.0.1@$UNBOUND_PORT
  port: $UNBOUND_PORT
  num-threads: $SERVER_THREADS
  so-reuseport: yes
  msg-cache-slabs: $SERVER_THREADS
  rrset-cache-slabs: $SERVER_THREADS
  infra-cache-slabs: $SERVER_THREADS
  key-cache-slabs: $SERVER_THREADS
  msg-cache-size: 64m
  rrset-cache-size: 128m
  # podnet's Corefile says "cache 30": the same 30 s cap here, so both refetch a name every 30 s.
  cache-max-ttl: 30
  username: ""
  chroot: ""
  directory: "$T/unbound"
  pidfile: "$T/unbound/unbound.pid"
  logfile: "$T/unbound/unbound.log"
  use-syslog: no
  verbosity: 1
  do-ip6: no
  access-control: 127.0.0.0/8 allow
  outgoing-interface: 127.0.0.1
  do-not-query-localhost: no
  module-config: "iterator"
  qname-minimisation: no
  domain-insecure: "."
# Everything goes to the upstream NSD inside this namespace, as podnet's "forward ." does.
forward-zone:
  name: "."
  forward-addr: 127.0.0.1@$UPSTREAM_PORT
remote-control:
  control-enable: yes
  control-interface: "$T/unbound/unbound.ctl"
  control-use-cert: no
EOF

cache_block="cache 30"
[[ "$CACHE_SUCCESS" != 0 ]] && cache_block="cache 30 {
        success $CACHE_SUCCESS
    }"
corefile() {  # PORT METRICS_PORT HEALTH_PORT READY_PORT CACHE_BLOCK: kubeadm's Corefile
    cat <<EOF
.:$1 {
    errors
    health 127.0.0.1:$3 {
        lameduck 5s
    }
    ready 127.0.0.1:$4
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }
    prometheus 127.0.0.1:$2
    forward . 127.0.0.1:$UPSTREAM_PORT {
        max_concurrent 1000
    }
    $5
    loop
    reload
    loadbalance
}
EOF
}
corefile "$PODNET_PORT" 9153 8080 8181 "$cache_block" > "$T/Corefile"
corefile "$NOCACHE_PORT" 9154 8082 8183 "" > "$T/Corefile.nocache"
nsd-checkconf "$T/nsd/nsd.conf"
nsd-checkconf "$T/upstream/nsd.conf"
knotc -c "$T/knot/knot.conf" conf-check >&2
unbound-checkconf "$T/unbound/unbound.conf" >&2
cp "$T/Corefile" "$T/Corefile.nocache" "$T/nsd/nsd.conf" "$T/knot/knot.conf" "$T/unbound/unbound.conf" "$T/out/"
cp "$T/upstream/nsd.conf" "$T/out/upstream-nsd.conf"

# ------------------------------------------------------------------ helpers
dp() { dnsperf -s 127.0.0.1 "$@"; }

wait_ready() {  # PORT NAMEFILE: until the first name answers NOERROR (podnet: once synced)
    local port=$1 names=$2
    head -1 "$names" > "$T/one.txt"
    for _ in $(seq 300); do
        if dp -p "$port" -d "$T/one.txt" -n 1 -t 1 2>/dev/null | grep -q 'NOERROR 1 '; then return 0; fi
        sleep 0.2
    done
    die "server on port $port not ready (see $T/*.log)"
}
check_all() {  # PORT NAMEFILE: every one of the 10k names must answer NOERROR
    local port=$1 names=$2 out
    out=$(dp -p "$port" -d "$names" -n 1 -c "$CLIENTS" -T "$THREADS" -Q 20000 2>&1)
    grep -q 'NOERROR 10000 (100.00%)' <<<"$out" || { echo "$out" >&2; die "port $port: not all 10k names of $names NOERROR"; }
}
check_same() {  # NAMEFILE PORT... : a random sample of 200 names gets the same address on every port
    local names=$1 p ref=""; shift
    shuf -n 200 --random-source=<(yes) "$names" | awk '{print $1}' > "$T/sample.txt"
    for p in "$@"; do
        awk -v p="$p" '{ printf "@127.0.0.1 -p %s %s A +short +tries=2 +time=2\n", p, $1 }' "$T/sample.txt" > "$T/sample.dig"
        dig -f "$T/sample.dig" > "$T/sample.$p.raw" 2>&1 || true
        grep -E '^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$' "$T/sample.$p.raw" > "$T/sample.$p" || true
        [[ $(wc -l < "$T/sample.$p") == 200 ]] ||
            { head "$T/sample.$p.raw" >&2; die "port $p: not 200 A answers for the sample"; }
        if [[ -z "$ref" ]]; then ref=$p
        elif ! cmp -s "$T/sample.$ref" "$T/sample.$p"; then
            paste "$T/sample.txt" "$T/sample.$ref" "$T/sample.$p" | awk '$2 != $3' | head >&2
            die "port $p answers differently from port $ref"
        fi
    done
    log "sample of 200 names: same addresses on ports $*"
}
check_zone_ips() {  # PORT (after check_same on cluster names): the answers are the API's ClusterIPs
    local p=$1
    paste -d' ' "$T/sample.txt" "$T/sample.$p" | awk '{ split($1, a, "."); print a[2] "/" a[1], $2 }' | sort > "$T/sample.got"
    awk '{ print $1 "/" $2, $3 }' "$T/services.txt" | sort > "$T/services.keyed"
    join "$T/sample.got" "$T/services.keyed" | awk '$2 != $3 { bad++ } END { exit (NR != 200 || bad) ? 1 : 0 }' ||
        die "port $p: the sample's answers are not the ClusterIPs the API server allocated"
    log "sample of 200 names: podnet's answers are the ClusterIPs the API server allocated"
}

wait_quiet() {  # wait (at most QUIET_MAX s) until other processes use <= QUIET_PCT % of a core
    local waited=0 b0 b1 pct quiet=0
    while :; do
        b0=$(sys_busy); sleep 1; b1=$(sys_busy)
        pct=$(( (b1 - b0) * 100 / HZ ))
        if (( pct <= QUIET_PCT )); then quiet=$((quiet + 1)); else quiet=0; fi
        (( quiet >= 2 )) && return 0
        waited=$((waited + 1))
        if (( waited >= QUIET_MAX )); then log "machine still busy (${pct}% of a core outside the benchmark), going ahead"; return 0; fi
    done
}
child_ticks() {  # user+sys ticks of this shell's reaped children (the dnsperf runs) -> CHILD_TICKS
    times > "$T/times.txt"
    CHILD_TICKS=$(awk -v hz="$HZ" 'NR==2 { t=0; for (i=1;i<=2;i++) { s=$i; m=s; sub(/m.*/,"",m)
        sub(/^[0-9]+m/,"",s); sub(/s$/,"",s); t+=m*60+s } printf "%.0f\n", t*hz }' "$T/times.txt")
}
# run_dp TAG PORT PID QUERYFILE [dnsperf args...]: one measured run, repeated while other
# processes used more than OTHER_MAX % of a core. Sets RUN_SRV RUN_DP RUN_OTHER (% of one core).
run_dp() {
    local tag=$1 port=$2 pid=$3 qf=$4 attempt s0 s1 c0 c1 d0 d1 w0 w1; shift 4
    for attempt in $(seq "$ATTEMPTS"); do
        wait_quiet
        [[ -n "${WARM:-}" ]] && dp -p "$port" -d "$WARM" -n 1 -c "$CLIENTS" -T "$THREADS" -Q 20000 > /dev/null 2>&1
        child_ticks; d0=$CHILD_TICKS; c0=$(cpu_ticks "$pid"); s0=$(sys_busy); w0=$(date +%s.%N)
        dp -p "$port" -d "$qf" -c "$CLIENTS" -T "$THREADS" -q "$OUTSTANDING" -l "$DURATION" "$@" > "$T/$tag.out" 2>&1
        w1=$(date +%s.%N); s1=$(sys_busy); c1=$(cpu_ticks "$pid"); child_ticks; d1=$CHILD_TICKS
        read -r RUN_SRV RUN_DP RUN_OTHER < <(awk -v s=$((s1 - s0)) -v c=$((c1 - c0)) -v d=$((d1 - d0)) \
            -v hz="$HZ" -v w0="$w0" -v w1="$w1" 'BEGIN { o = s - c - d; if (o < 0) o = 0; t = w1 - w0
            printf "%.0f %.0f %.0f\n", 100*c/hz/t, 100*d/hz/t, 100*o/hz/t }')
        log "$tag: CPU (% of one core) server $RUN_SRV, dnsperf $RUN_DP, other $RUN_OTHER"
        (( RUN_OTHER <= OTHER_MAX )) && return 0
        (( attempt < ATTEMPTS )) && log "$tag: other processes used ${RUN_OTHER}% > ${OTHER_MAX}%, repeating"
    done
    log "$tag: keeping a disturbed run (other ${RUN_OTHER}%)"
}
field() { grep -m1 "$2" "$1" | sed "s/.*$2[[:space:]]*//"; }

# bench ROW PORT PID QUERYFILE ROUND: unlimited + fixed-rate run, one line of $T/summary.tsv
bench() {
    local row=$1 port=$2 pid=$3 qf=$4 round=$5 u f pct cu
    log "$row (round $round): unlimited, ${DURATION}s, -c $CLIENTS -T $THREADS -q $OUTSTANDING"
    run_dp "$row.r$round.unlimited" "$port" "$pid" "$qf"
    cu=("$RUN_SRV" "$RUN_DP" "$RUN_OTHER")
    log "$row (round $round): fixed rate -Q $FIXED_QPS -v, ${DURATION}s"
    run_dp "$row.r$round.fixed" "$port" "$pid" "$qf" -Q "$FIXED_QPS" -v
    u=$T/$row.r$round.unlimited.out f=$T/$row.r$round.fixed.out
    pct=$(awk '$1==">" && $2!="T" && $2!="I" {print $NF}' "$f" | sort -g |
        awk '{v[NR]=$1} END { if (NR==0) { print "0 0"; exit }
             printf "%.0f %.0f", v[int(NR*0.50)+0]*1e6, v[int(NR*0.99)+0]*1e6 }')
    grep -v '^> ' "$f" > "$f.txt" || true; rm -f "$f"
    cp "$u" "$f.txt" "$T/out/"
    grep -q 'Queries lost:[[:space:]]*0 ' "$u" || log "$row (round $round): lost queries in the unlimited run: $(field "$u" 'Queries lost:')"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$row" "$round" \
        "$(field "$u" 'Queries per second:' | awk '{printf "%.0f", $1}')" \
        "$(field "$u" 'Average Latency (s):' | awk '{printf "%.0f", $1*1e6}')" \
        "$(field "$f.txt" 'Queries per second:' | awk '{printf "%.0f", $1}')" \
        "$(field "$f.txt" 'Average Latency (s):' | awk '{printf "%.0f", $1*1e6}')" \
        $pct "${cu[@]}" \
        "$(field "$u" 'Queries lost:' | awk '{print $1}')" \
        "$(field "$f.txt" 'Queries lost:' | awk '{print $1}')" \
        "$(field "$u" 'Average packet size:' | sed 's/.*response *//')" >> "$T/summary.tsv"
}
metric() {  # METRICS_PORT NAME: sum of a Prometheus counter over its labels
    curl -s --max-time 5 "http://127.0.0.1:$1/metrics" 2>/dev/null |
        awk -v n="$2" '$1 == n || index($1, n "{") == 1 { s += $NF } END { printf "%.0f\n", s }'
}

# ------------------------------------------------------------------ 2./3. servers
log "starting servers: podnet dns :$PODNET_PORT$([[ $NOCACHE_ROW == 1 ]] && echo ", podnet dns (no cache) :$NOCACHE_PORT"), NSD :$NSD_PORT, Knot :$KNOT_PORT, upstream NSD :$UPSTREAM_PORT, Unbound :$UNBOUND_PORT"
start_bg upstream nsd -d -c "$T/upstream/nsd.conf"; UPSTREAM_PID=$LAST_PID
wait_ready "$UPSTREAM_PORT" "$T/example.names"
t0=$(date +%s.%N)
PODNET_LOG=warn start_bg podnet-dns env $PODNET_DNS_ENV "$PODNET" dns -conf "$T/Corefile" --kubeconfig "$KUBECONFIG"; PODNET_PID=$LAST_PID
wait_ready "$PODNET_PORT" "$T/cluster.names"
t1=$(date +%s.%N)
log "podnet dns answering (10k Services synced) $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') s after start"
if [[ "$NOCACHE_ROW" == 1 ]]; then
    PODNET_LOG=warn start_bg podnet-dns-nocache env $PODNET_DNS_ENV "$PODNET" dns -conf "$T/Corefile.nocache" --kubeconfig "$KUBECONFIG"
    NOCACHE_PID=$LAST_PID
    wait_ready "$NOCACHE_PORT" "$T/cluster.names"
fi
start_bg nsd nsd -d -c "$T/nsd/nsd.conf"; NSD_PID=$LAST_PID
start_bg knot knotd -c "$T/knot/knot.conf"; KNOT_PID=$LAST_PID
start_bg unbound unbound -d -c "$T/unbound/unbound.conf"; UNBOUND_PID=$LAST_PID
wait_ready "$NSD_PORT" "$T/cluster.names"
wait_ready "$KNOT_PORT" "$T/cluster.names"
wait_ready "$UNBOUND_PORT" "$T/example.names"
sleep 2
read -r LOAD_RSS LOAD_PSS < <(mem_kib "$PODNET_PID")
log "podnet dns after loading 10k Services: RSS $((LOAD_RSS / 1024)) MiB, PSS $((LOAD_PSS / 1024)) MiB"

log "correctness: every name NOERROR on every server; 200 random names give the same address everywhere"
ports_a=("$PODNET_PORT" "$NSD_PORT" "$KNOT_PORT"); [[ "$NOCACHE_ROW" == 1 ]] && ports_a+=("$NOCACHE_PORT")
for p in "${ports_a[@]}"; do check_all "$p" "$T/cluster.names"; done
check_same "$T/cluster.names" "${ports_a[@]}"
check_zone_ips "$PODNET_PORT"
# The 10k Services with every one of their answers cached (check_all asked each name), before
# podnet is asked any forwarded name.
sleep 1
read -r CLUSTER_RSS CLUSTER_PSS < <(mem_kib "$PODNET_PID")
log "podnet dns with the 10k Services' answers cached: RSS $((CLUSTER_RSS / 1024)) MiB, PSS $((CLUSTER_PSS / 1024)) MiB"
for p in "$PODNET_PORT" "$UNBOUND_PORT"; do check_all "$p" "$T/example.names"; done
check_same "$T/example.names" "$UPSTREAM_PORT" "$PODNET_PORT" "$UNBOUND_PORT"
for p in "${ports_a[@]}"; do
    dig @127.0.0.1 -p "$p" svc-1.ns-1.svc.cluster.local A +norec > "$T/out/dig-cluster-$p.txt" 2>&1 || true
done
for p in "$PODNET_PORT" "$UNBOUND_PORT"; do
    dig @127.0.0.1 -p "$p" svc-1.ns-1.example A > "$T/out/dig-example-$p.txt" 2>&1 || true
done

# ------------------------------------------------------------------ versions
{
    echo "date_utc: $(date -u +%FT%TZ)"
    echo "kernel: $(uname -r)  cpus: $(nproc)  model: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
    echo "debian: $(cat /etc/debian_version)"
    for p in dnsperf nsd knot unbound; do echo "pkg $p: $(dpkg-query -W -f '${Version}' "$p")"; done
    echo "podnet: $PODNET_BIN ($(stat -c %y "$PODNET_BIN"))"
    echo "params: ROUNDS=$ROUNDS DURATION=$DURATION FIXED_QPS=$FIXED_QPS CLIENTS=$CLIENTS THREADS=$THREADS OUTSTANDING=$OUTSTANDING SERVER_THREADS=$SERVER_THREADS CACHE_SUCCESS=$CACHE_SUCCESS PODNET_DNS_ENV=$PODNET_DNS_ENV"
} > "$T/out/versions.txt"

# ------------------------------------------------------------------ 4. rounds
: > "$T/summary.tsv"
P_HIT0=$(metric 9153 coredns_cache_hits_total); P_MISS0=$(metric 9153 coredns_cache_misses_total)
U_HITS=0 U_MISS=0 PB_HITS=0 PB_MISS=0
for round in $(seq "$ROUNDS"); do
    log "=== round $round/$ROUNDS"
    WARM="" bench podnet "$PODNET_PORT" "$PODNET_PID" "$T/cluster.queries" "$round"
    [[ "$NOCACHE_ROW" == 1 ]] && WARM="" bench podnet-nocache "$NOCACHE_PORT" "$NOCACHE_PID" "$T/cluster.queries" "$round"
    WARM="" bench nsd "$NSD_PORT" "$NSD_PID" "$T/cluster.queries" "$round"
    WARM="" bench knot "$KNOT_PORT" "$KNOT_PID" "$T/cluster.queries" "$round"
    h0=$(metric 9153 coredns_cache_hits_total); m0=$(metric 9153 coredns_cache_misses_total)
    WARM="$T/example.names" bench podnet-fwd "$PODNET_PORT" "$PODNET_PID" "$T/example.queries" "$round"
    h1=$(metric 9153 coredns_cache_hits_total); m1=$(metric 9153 coredns_cache_misses_total)
    PB_HITS=$((PB_HITS + h1 - h0)) PB_MISS=$((PB_MISS + m1 - m0))
    unbound-control -c "$T/unbound/unbound.conf" stats > /dev/null   # resets the counters
    WARM="$T/example.names" bench unbound "$UNBOUND_PORT" "$UNBOUND_PID" "$T/example.queries" "$round"
    unbound-control -c "$T/unbound/unbound.conf" stats_noreset > "$T/out/unbound.r$round.stats.txt"
    U_HITS=$((U_HITS + $(awk -F= '$1=="total.num.cachehits"{print $2}' "$T/out/unbound.r$round.stats.txt")))
    U_MISS=$((U_MISS + $(awk -F= '$1=="total.num.cachemiss"{print $2}' "$T/out/unbound.r$round.stats.txt")))
done

# ------------------------------------------------------------------ optional profile (not measured)
if [[ "$PERF" == 1 ]] && command -v perf > /dev/null; then
    for part in cluster example; do
        log "perf: profiling podnet dns during one unlimited ${DURATION}s run on the $part names"
        dp -p "$PODNET_PORT" -d "$T/$part.names" -n 1 -c "$CLIENTS" -T "$THREADS" -Q 20000 > /dev/null 2>&1
        perf record -q -g -F 999 -o "$T/perf.$part.data" -p "$PODNET_PID" -- sleep "$DURATION" 2> /dev/null &
        perf_pid=$!
        dp -p "$PODNET_PORT" -d "$T/$part.queries" -c "$CLIENTS" -T "$THREADS" -q "$OUTSTANDING" -l "$DURATION" > "$T/out/perf-$part.dnsperf.txt" 2>&1
        wait "$perf_pid" || true
        perf report -i "$T/perf.$part.data" --no-children --stdio --percent-limit 0.7 -g none --sort dso,symbol 2> /dev/null |
            grep -v '^$' | head -80 > "$T/out/perf-$part.txt" || true
        perf report -i "$T/perf.$part.data" --no-children --stdio --percent-limit 1 -g none --sort dso 2> /dev/null |
            grep -v '^$' | head -30 > "$T/out/perf-$part.dso.txt" || true
        perf report -i "$T/perf.$part.data" --children --stdio --percent-limit 3 -g none --sort symbol 2> /dev/null |
            grep -v '^$' | head -80 > "$T/out/perf-$part.children.txt" || true
    done
fi

# ------------------------------------------------------------------ memory after the runs
declare -A RSS PSS
for row in podnet nsd knot unbound upstream $([[ "$NOCACHE_ROW" == 1 ]] && echo podnet-nocache); do
    case $row in
        podnet) pid=$PODNET_PID ;; podnet-nocache) pid=$NOCACHE_PID ;; nsd) pid=$NSD_PID ;;
        knot) pid=$KNOT_PID ;; unbound) pid=$UNBOUND_PID ;; upstream) pid=$UPSTREAM_PID ;;
    esac
    kill -0 "$pid" 2>/dev/null || die "$row (pid $pid) died during the runs (see $T/*.log)"
    read -r r p < <(mem_kib "$pid"); RSS[$row]=$((r / 1024)); PSS[$row]=$((p / 1024))
done
RSS[podnet-fwd]=${RSS[podnet]} PSS[podnet-fwd]=${PSS[podnet]}
curl -s --max-time 5 http://127.0.0.1:9153/metrics > "$T/out/podnet-metrics.txt" 2>/dev/null || true

# ------------------------------------------------------------------ 5. tables
cp "$T/summary.tsv" "$T/out/summary.tsv"
# columns: row round qps_unl avg_unl qps_fix avg_fix p50_fix p99_fix srv_cpu dp_cpu other_cpu lost_unl lost_fix resp
awk -F'\t' -v OFS='\t' '
    { if (!($1 in n)) order[++ns] = $1; k = ++n[$1]; for (i = 3; i <= NF; i++) v[$1, i, k] = $i; nf = NF }
    function med(s, i,   a, j, m, t, c) {
        c = n[s]; for (j = 1; j <= c; j++) a[j] = v[s, i, j] + 0
        for (j = 2; j <= c; j++) { t = a[j]; m = j - 1; while (m > 0 && a[m] > t) { a[m + 1] = a[m]; m-- } a[m + 1] = t }
        lo = a[1]; hi = a[c]
        return (c % 2) ? a[(c + 1) / 2] : (a[c / 2] + a[c / 2 + 1]) / 2 }
    END { for (j = 1; j <= ns; j++) { s = order[j]; printf "%s\t%d", s, n[s]
            for (i = 3; i <= nf; i++) printf "\t%.0f", med(s, i)
            med(s, 3); printf "\t%d\t%d\n", lo, hi } }' "$T/summary.tsv" > "$T/median.tsv"
cp "$T/median.tsv" "$T/out/median.tsv"
get() { awk -F'\t' -v r="$1" -v c="$2" '$1 == r { print $c }' "$T/median.tsv"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "-"; else printf "%.2f", a / b }'; }

table() {  # REF_ROW ROW...: one markdown table, ratios against the podnet row (first) per peer
    local row qps eff
    echo "| server | qps (unlimited) [min-max] | avg µs (unl.) | server / other CPU % | qps/core | avg / p50 / p99 µs at -Q $FIXED_QPS | lost | resp B | RSS / PSS MiB |"
    echo "|---|---|---|---|---|---|---|---|---|"
    for row in "$@"; do
        qps=$(get "$row" 3); eff=$(awk -v q="$qps" -v c="$(get "$row" 9)" 'BEGIN { printf "%.0f", (c > 0 ? q * 100 / c : 0) }')
        printf '| %s | %s [%s-%s] | %s | %s / %s | %s | %s / %s / %s | %s/%s | %s | %s / %s |\n' "$(label "$row")" \
            "$qps" "$(get "$row" 15)" "$(get "$row" 16)" "$(get "$row" 4)" "$(get "$row" 9)" "$(get "$row" 11)" "$eff" \
            "$(get "$row" 6)" "$(get "$row" 7)" "$(get "$row" 8)" "$(get "$row" 12)" "$(get "$row" 13)" \
            "$(get "$row" 14)" "${RSS[$row]}" "${PSS[$row]}"
    done
}
label() {
    case $1 in
        podnet) echo "podnet dns (kubeadm Corefile, cache)" ;;
        podnet-nocache) echo "podnet dns (same, without cache)" ;;
        podnet-fwd) echo "podnet dns (cache 30 + forward)" ;;
        nsd) echo "NSD $(dpkg-query -W -f '${Version}' nsd | cut -d- -f1) (authoritative, $SERVER_THREADS procs)" ;;
        knot) echo "Knot $(dpkg-query -W -f '${Version}' knot | cut -d- -f1) (authoritative, $SERVER_THREADS workers)" ;;
        unbound) echo "Unbound $(dpkg-query -W -f '${Version}' unbound | cut -d- -f1) (cache, $SERVER_THREADS threads)" ;;
    esac
}
eff() { awk -v q="$(get "$1" 3)" -v c="$(get "$1" 9)" 'BEGIN { printf "%.0f", (c > 0 ? q * 100 / c : 0) }'; }
ratios() {  # PODNET_ROW PEER_ROW
    echo "- $1 / $2: qps $(ratio "$(get "$1" 3)" "$(get "$2" 3)")x, qps/core $(ratio "$(eff "$1")" "$(eff "$2")")x, p99 at -Q $FIXED_QPS $(ratio "$(get "$1" 8)" "$(get "$2" 8)")x, avg latency (unl.) $(ratio "$(get "$1" 4)" "$(get "$2" 4)")x"
}

{
echo
echo "## podnet dns vs NSD / Knot / Unbound ($(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1))"
echo
echo "Median of $ROUNDS round(s) x ${DURATION} s per run, rows interleaved; dnsperf -c $CLIENTS -T $THREADS -q $OUTSTANDING"
echo "shares the $(nproc) CPUs with the server (qps = client + server together; qps/core = qps per core of server CPU;"
echo "other CPU = % of a core used by processes outside the benchmark during the unlimited runs: 0-1 on a quiet machine)."
echo "10,000 ClusterIP Services from \`podnet server\`; the peers serve the same names and addresses from a zone file."
[[ -n "$PODNET_DNS_ENV" ]] && echo "podnet dns ran with: $PODNET_DNS_ENV"
echo
echo "### (a) cluster records: svc-N.ns-M.svc.cluster.local A"
echo
table podnet $([[ "$NOCACHE_ROW" == 1 ]] && echo podnet-nocache) nsd knot
echo
echo "Ratios are podnet / peer: for qps and qps/core higher is better (goal >= 0.8), for latency lower is better."
ratios podnet nsd; ratios podnet knot
if [[ "$NOCACHE_ROW" == 1 ]]; then ratios podnet-nocache nsd; ratios podnet-nocache knot; fi
echo
echo "### (b) cached forwarded names: svc-N.ns-M.example A (upstream: NSD on :$UPSTREAM_PORT)"
echo
table podnet-fwd unbound
echo
ratios podnet-fwd unbound
echo "- cache during the measured runs (incl. warm-up passes): podnet hits $PB_HITS misses $PB_MISS; Unbound hits $U_HITS misses $U_MISS"
echo
echo "### memory"
echo
echo "- podnet dns with the 10k Services loaded, before the runs: RSS $((LOAD_RSS / 1024)) MiB, PSS $((LOAD_PSS / 1024)) MiB; with their 10k answers cached (every cluster name asked once, no forwarded name yet): RSS $((CLUSTER_RSS / 1024)) MiB, PSS $((CLUSTER_PSS / 1024)) MiB; after all runs (the 10k forwarded names cached too): RSS ${RSS[podnet]} MiB, PSS ${PSS[podnet]} MiB"
echo "- peers after the runs (RSS / PSS MiB): NSD ${RSS[nsd]} / ${PSS[nsd]}, Knot ${RSS[knot]} / ${PSS[knot]}, Unbound ${RSS[unbound]} / ${PSS[unbound]}, upstream NSD ${RSS[upstream]} / ${PSS[upstream]}"
echo
q_pod=$(get podnet 3); q_nsd=$(get nsd 3); q_knot=$(get knot 3); q_fwd=$(get podnet-fwd 3); q_unb=$(get unbound 3)
goal() { awk -v a="$1" -v b="$2" -v g="$3" 'BEGIN { r = b > 0 ? a / b : 0; printf "%.2fx (goal >= %sx) %s", r, g, (r >= g ? "MET" : "MISSED") }'; }
echo "**Goals** (from this run):"
echo "- (a) podnet / NSD qps: $(goal "$q_pod" "$q_nsd" 0.8); podnet / Knot qps: $(goal "$q_pod" "$q_knot" 0.8)"
echo "- (b) podnet / Unbound qps: $(goal "$q_fwd" "$q_unb" 1)"
echo "- memory with 10k services (their answers cached): RSS $((CLUSTER_RSS / 1024)) MiB (goal < 40 MiB) $( (( CLUSTER_RSS / 1024 < 40 )) && echo MET || echo MISSED); with 10k forwarded names cached as well: RSS ${RSS[podnet]} MiB $( (( RSS[podnet] < 40 )) && echo "(< 40)" || echo "(over 40)")"
echo "- for scale: CoreDNS's published ~33,700 qps on 2 vCPUs; podnet here: $q_pod qps (a), $q_fwd qps (b)"
} | tee "$T/out/report.md"
echo
echo "Every run (row round qps_unl avg_us_unl qps_fix avg_us_fix p50_us p99_us cpu_server cpu_dnsperf cpu_other lost_unl lost_fix resp_bytes):"
column -t -s $'\t' "$T/summary.tsv"
[[ -n "${RESULTS_DIR:-}" ]] && echo "raw outputs: $RESULTS_DIR"
exit 0
