#!/usr/bin/env bash
# Paired runs of two kvstore binaries on the netdev column's setup (make compare's): what a change
# does to the store's busy time per request, on a host whose speed swings 2x from run to run.
#   Benchmarks/run-busy-ab.sh BEFORE AFTER [PAIRS]
# BEFORE and AFTER: kvstore executables (e.g. `git stash; swift build -c release --product kvstore;
# cp .build/release/kvstore /tmp/kvstore.before`). Each pair runs BEFORE then AFTER, alternating, each
# under the same load: `pktgen kv` over DPDK's net_vhost on CPU 0 (from this tree's release build),
# the store on CPU 1 over vhost-user. Prints every run's `busy:` ns per request and the replies/s,
# then both medians and their ratio. Environment: PAIRS (5), SECONDS_PER_RUN (4), WINDOW (32),
# GET_RATIO (0.9), ECHO=1 (both sides in echo mode), KEEP=1 (keep the scratch folder and logs).
set -euo pipefail
cd "$(dirname "$0")/.."
source Benchmarks/lib.sh
[ $# -ge 2 ] || { sed -n '2,10p' "$0"; exit 2; }
before=$1 after=$2 pairs=${3:-${PAIRS:-5}}
for exe in "$before" "$after"; do [ -x "$exe" ] || { echo "run-busy-ab: $exe is not an executable"; exit 2; }; done
seconds=${SECONDS_PER_RUN:-4} window=${WINDOW:-32}
swift build -c release --product pktgen >/dev/null
pktgen=.build/release/pktgen
echo_flag=()
[ -n "${ECHO:-}" ] && echo_flag=(--echo)

vhost_scratch uknet-busy-ab
declare -A busy rate
# one LABEL EXE ROUND: one run; its figures into busy[LABEL] and rate[LABEL].
one() {
  local label=$1 exe=$2 round=$3 sock=$tmp/kv.sock
  n=$((n + 1))
  rm -f "$sock"
  # The client first: its net_vhost creates the socket (and waits for the store's link).
  timeout $((seconds + 40)) taskset -c 0 "$pktgen" kv --netdev "dpdk:${EAL[*]} -l 0 --file-prefix=uknet-vb-$n --vdev=net_vhost0,iface=$sock" \
    --server-ip 198.51.100.2 --server-mac 02:00:00:00:00:02 --ip 198.51.100.3 --mac 02:00:00:00:00:03 \
    --preload --keys 1000 --value-size 32 --get-ratio "${GET_RATIO:-0.9}" --window "$window" --duration "$seconds" \
    "${echo_flag[@]}" --quiet --json >"$tmp/$label.$round.json" 2>"$tmp/$label.$round.pktgen.log" &
  local client=$!
  pids+=("$client")
  for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
  [ -S "$sock" ] || { echo "run-busy-ab: the client made no socket"; cat "$tmp/$label.$round.pktgen.log"; exit 1; }
  taskset -c 1 "$exe" --netdev "vhost-user:path=$sock" --ip 198.51.100.2/24 --mac 02:00:00:00:00:02 "${echo_flag[@]}" \
    >"$tmp/$label.$round.server.log" 2>&1 &
  local server=$!
  pids+=("$server")
  local status=0
  wait "$client" || status=$?
  # The store ends by itself when its backend goes away; INT if it has not within 10 s.
  for _ in $(seq 100); do kill -0 "$server" 2>/dev/null || break; sleep 0.1; done
  kill -INT "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  rm -rf "/var/run/dpdk/uknet-vb-$n"
  [ "$status" = 0 ] || { echo "run-busy-ab: the load failed (status $status)"; tail -5 "$tmp/$label.$round.pktgen.log"; exit 1; }
  local ns
  ns=$(sed -n 's/^busy: .* \([0-9]*\) ns per request.*/\1/p' "$tmp/$label.$round.server.log" | tail -1)
  [ -n "$ns" ] || { echo "run-busy-ab: no busy line from $exe"; tail -5 "$tmp/$label.$round.server.log"; exit 1; }
  local rps
  rps=$(python3 -c 'import json, sys; print(int(json.load(open(sys.argv[1]))["replies_per_second"]))' "$tmp/$label.$round.json")
  busy[$label]="${busy[$label]:-} $ns"
  rate[$label]="${rate[$label]:-} $rps"
  printf '  pair %d, %-6s: %4d ns per request busy, %d replies/s\n' "$round" "$label" "$ns" "$rps"
}

echo "run-busy-ab: $pairs pairs of $seconds-s runs, window $window${ECHO:+, echo}: before $before, after $after"
for round in $(seq "$pairs"); do
  one before "$before" "$round"
  one after "$after" "$round"
done
# shellcheck disable=SC2086
b=$(median ${busy[before]}) a=$(median ${busy[after]})
echo "busy ns per request, before:${busy[before]} (median $b)"
echo "busy ns per request, after: ${busy[after]} (median $a)"
echo "after / before (medians): $(ratio "$a" "$b")"
