#!/usr/bin/env bash
# `make demo`: the KV store on a TAP in a private network namespace, driven by `pktgen kv` on a
# second TAP, the two joined by a bridge in that namespace (scripts/demo-net.sh). Prints the
# store's statistics and the generator's replies/s and latency percentiles.
# Without root (or /dev/net/tun) it runs the same load against the store in-process over an
# in-memory ring pair instead, and says so.
# Env: DURATION (seconds of load, default 10), WINDOW (requests in flight, default 32).
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${DURATION:-10}
window=${WINDOW:-32}
swift build -c release --product kvstore >/dev/null
swift build -c release --product pktgen >/dev/null
bin=.build/release
load=(kv --preload --keys 10000 --key-size 10 --value-size 32 --get-ratio 0.9 --distribution zipf --zipf 0.99
      --window "$window" --duration "$duration")

if ((EUID != 0)) || [[ ! -w /dev/net/tun ]] || ! command -v ip >/dev/null; then
  echo "demo: no root or no /dev/net/tun: the store runs in-process on an in-memory ring pair instead of a TAP"
  exec "$bin/pktgen" "${load[@]}" --netdev ring
fi

ns=uknet-demo-$$
storepid=""
cleanup() {
  if [[ -n $storepid ]]; then kill -INT "$storepid" 2>/dev/null || true; wait "$storepid" 2>/dev/null || true; fi
  scripts/demo-net.sh down "$ns"
}
trap cleanup EXIT
scripts/demo-net.sh up "$ns"
echo "demo: namespace $ns: kvstore on TAP kv0 (192.0.2.2), pktgen kv on TAP pg0 (192.0.2.3), bridge br0"

# The store prints its statistics when it gets SIGINT at the end.
ip netns exec "$ns" "$bin/kvstore" --netdev tap:ifname=kv0 --ip 192.0.2.2/24 --mac 02:00:00:00:00:02 --memory 64 &
storepid=$!
# pktgen asks for the store's MAC with ARP (every 100 ms, up to 3 s) while the store starts.
status=0
ip netns exec "$ns" "$bin/pktgen" "${load[@]}" --netdev tap:ifname=pg0 --ip 192.0.2.3 --mac 02:00:00:00:00:03 \
  --server-ip 192.0.2.2 || status=$?
echo
echo "demo: the store's statistics:"
kill -INT "$storepid"
wait "$storepid" || true
storepid=""
exit "$status"
