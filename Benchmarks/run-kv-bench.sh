#!/usr/bin/env bash
# The KV store under GET load (10-byte keys, 32-byte values, all hits, 64 in flight) beside
# real memcached 1.6.18 (-t 1, UDP on 127.0.0.1) under the same load, in one run:
#   - replies/s: the store on CPU 1 behind a ring pair, client on CPU 0;
#                memcached pinned to CPU 1, client pinned to CPU 0 over loopback UDP;
#   - instructions per GET: callgrind over the server's poll only (one thread, lock step), the
#     preload subtracted;
#   - mallocs per request in the measured loops, and retain/release inside the server's poll.
# Needs: swift, valgrind, memcached (make bench installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
REQUESTS=${REQUESTS:-2000000}
MC_REQUESTS=${MC_REQUESTS:-300000}
CG_REQUESTS=${CG_REQUESTS:-200000}
swift build -c release --product kv-bench >/dev/null
bin=.build/release/kv-bench
tmp=$(mktemp -d)
mcpid=""
cleanup() { [ -n "$mcpid" ] && kill "$mcpid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

source Benchmarks/lib.sh

port=$(( 30000 + $$ % 20000 ))
user=(); [ "$(id -u)" -eq 0 ] && user=(-u root)
taskset -c 1 memcached -U "$port" -p 0 -l 127.0.0.1 -t 1 -m 64 "${user[@]}" &
mcpid=$!
sleep 0.5
mc=$("$bin" memcached "$port" "$MC_REQUESTS")
kill "$mcpid"; wait "$mcpid" 2>/dev/null || true; mcpid=""
ours=$("$bin" ring "$REQUESTS")
echo "$mc"
echo "$ours"
awk -v a="$(field rps "$ours")" -v b="$(field rps "$mc")" 'BEGIN { printf "GET hits, replies/s: UKNet KV store %d, memcached -t 1 %d, ratio %.1f\n", a, b, a / b }'

# Instructions per GET: the server's poll under callgrind, run twice (no GETs, then CG_REQUESTS),
# so the preload and start-up polls cancel out: (total(N) - total(0)) / N.
callgrind '*KVServerV4poll*' "$tmp/cg0" "$bin" single 0
base=$total
callgrind '*KVServerV4poll*' "$tmp/cgN" "$bin" single "$CG_REQUESTS"
echo "instructions per GET hit (server poll: rx, parse, lookup, reply, checksums, tx): $(( (total - base) / CG_REQUESTS ))"
echo "instructions in retain/release/malloc inside the server's poll: $arc"
echo "mallocs in the measured loops: memcached client $(field mallocs "$mc"), store $(field mallocs "$ours")"
