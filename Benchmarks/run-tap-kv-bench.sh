#!/usr/bin/env bash
# pktgen kv through the Linux kernel, against our store and against real memcached, in one run:
#   - ours: kvstore on TAP kv0, pktgen kv on TAP pg0, a bridge between them (the demo's network,
#     scripts/demo-net.sh) in a private namespace;
#   - peer: memcached 1.6.18 -t 1 on the kernel side of TAP pg0 (192.0.2.2/24) in another private
#     namespace, pktgen kv on the TAP itself.
# Same load both times (preload of 1000 keys, 90/10 GET/SET, 32 in flight, every reply checked);
# the server pinned to CPU 1, pktgen to CPU 0. Needs root, /dev/net/tun, ip, memcached.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_OF_LOAD=${SECONDS_OF_LOAD:-5}
if ((EUID != 0)) || [[ ! -w /dev/net/tun ]]; then echo "run-tap-kv-bench: needs root and /dev/net/tun; skipped"; exit 0; fi
swift build -c release --product kvstore >/dev/null
swift build -c release --product pktgen >/dev/null
bin=$PWD/.build/release
tmp=$(mktemp -d)
ns1=uknet-tapbench-a-$$ ns2=uknet-tapbench-b-$$
pid=""
cleanup() {
  if [[ -n $pid ]]; then kill -INT "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  scripts/demo-net.sh down "$ns1"
  ip netns del "$ns2" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
load=(kv --preload --keys 1000 --value-size 32 --get-ratio 0.9 --window 32 --duration "$SECONDS_OF_LOAD" --quiet --json
      --ip 192.0.2.3 --mac 02:00:00:00:00:03 --server-ip 192.0.2.2)

scripts/demo-net.sh up "$ns1"
ip netns exec "$ns1" taskset -c 1 "$bin/kvstore" --netdev tap:ifname=kv0 --ip 192.0.2.2/24 --mac 02:00:00:00:00:02 >/dev/null &
pid=$!
ip netns exec "$ns1" taskset -c 0 "$bin/pktgen" "${load[@]}" --netdev tap:ifname=pg0 >"$tmp/ours.json"
kill -INT "$pid"; wait "$pid" || true; pid=""

ip netns add "$ns2"
ip -n "$ns2" link set lo up
ip -n "$ns2" tuntap add dev pg0 mode tap
ip -n "$ns2" addr add 192.0.2.2/24 dev pg0
ip -n "$ns2" link set pg0 up
user=(); [ "$(id -u)" -eq 0 ] && user=(-u root)
ip netns exec "$ns2" taskset -c 1 memcached -U 11211 -p 0 -l 192.0.2.2 -t 1 -m 64 "${user[@]}" &
pid=$!
sleep 0.3
ip netns exec "$ns2" taskset -c 0 "$bin/pktgen" "${load[@]}" --netdev tap:ifname=pg0 >"$tmp/peer.json"
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""

python3 - "$tmp/ours.json" "$tmp/peer.json" <<'PY'
import json, sys
ours, peer = (json.load(open(f)) for f in sys.argv[1:3])
def line(name, r):
    l = r["latency"]
    return (f"{name}: {r['replies_per_second']:.0f} replies/s, p50 {l['p50_us']:.0f} us, p99 {l['p99_us']:.0f} us "
            f"({r['requests']} requests, {r['timeouts']} timeouts, {r['wrong_values']} wrong values)")
print(line("pktgen kv over TAPs -> kvstore (TAP, bridge)", ours))
print(line("pktgen kv over a TAP -> memcached -t 1 (kernel UDP)", peer))
print(f"ratio {ours['replies_per_second'] / peer['replies_per_second']:.2f}")
PY
