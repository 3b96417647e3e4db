#!/usr/bin/env bash
# `make demo`: the KV store booted as a unikernel (Unikernel/Apps/kvstore, Embedded Swift) in
# QEMU with KVM (TCG when /dev/kvm does not work, saying so) on a TAP in a private network
# namespace, driven by `pktgen kv` on a second TAP, the two joined by a bridge in that namespace
# (scripts/demo-net.sh). Prints the boot time, the generator's replies/s and latency percentiles,
# and the store's statistics, then shuts the store down with a memcached `shutdown` request.
# HOSTED=1: the store as a Linux process on the TAP instead (the hosted `kvstore`).
# Without root (or /dev/net/tun) it runs the same load against the store in-process over an
# in-memory ring pair instead, and says so.
# Env: DURATION (seconds of load, default 10), WINDOW (requests in flight, default 32),
#      MACHINE (microvm, default, or pc), HOSTED.
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
console=$(mktemp /tmp/uknet-demo-console.XXXXXX)
cleanup() {
  if [[ -n $storepid ]]; then kill -INT "$storepid" 2>/dev/null || true; wait "$storepid" 2>/dev/null || true; fi
  scripts/demo-net.sh down "$ns"
  rm -f "$console"
}
trap cleanup EXIT

if [[ -z ${HOSTED:-} ]]; then
  scripts/build-image.sh kvstore | tail -1
  scripts/demo-net.sh up "$ns"
  machine=${MACHINE:-microvm}
  if [[ $machine == microvm ]]; then nic=virtio-net-device; else nic=virtio-net-pci; fi
  echo "demo: namespace $ns: the KV store unikernel ($machine) on TAP kv0 (192.0.2.2), pktgen kv on TAP pg0 (192.0.2.3), bridge br0"
  start=$(date +%s%N)
  # QEMU in the namespace attaches to the persistent TAP kv0; the kernel serves until a shutdown request.
  ip netns exec "$ns" env MACHINE="$machine" MEM=64M TIMEOUT=$((duration + 120)) \
    CMDLINE="netdev.ip=192.0.2.2/24 kv.memory=32 kv.shutdown=1" \
    QEMU_ARGS="-netdev tap,id=n0,ifname=kv0,script=no,downscript=no,vnet_hdr=off -device $nic,netdev=n0,mac=02:00:00:00:00:02" \
    scripts/run-kvm.sh .build-image/kvstore/kvstore.elf >"$console" 2>&1 &
  storepid=$!
  for _ in $(seq 600); do
    grep -q 'kvstore: ready' "$console" && break
    kill -0 "$storepid" 2>/dev/null || break
    sleep 0.05
  done
  if ! grep -q 'kvstore: ready' "$console"; then
    echo "demo: the unikernel did not get ready:"; cat "$console"; exit 1
  fi
  ready=$(date +%s%N)
  grep -E 'run-kvm: (KVM|no KVM|TCG)|boot: ready|pci:|virtio-mmio:|virtio features|kvstore: ready' "$console" | sed 's/^/  /'
  echo "demo: QEMU start to ready to serve: $(( (ready - start) / 1000000 )) ms (as seen from here, console polling included)"
  status=0
  ip netns exec "$ns" "$bin/pktgen" "${load[@]}" --netdev tap:ifname=pg0 --ip 192.0.2.3 --mac 02:00:00:00:00:03 \
    --server-ip 192.0.2.2 || status=$?
  # The shutdown request comes from the namespace's own stack: an address on the bridge for it.
  ip -n "$ns" addr add 192.0.2.9/24 dev br0
  ip netns exec "$ns" python3 -c 'import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"\x00\x01\x00\x00\x00\x01\x00\x00shutdown\r\n", ("192.0.2.2", 11211))'
  kernel=0
  wait "$storepid" || kernel=$?
  storepid=""
  echo
  echo "demo: the store's statistics (its console):"
  grep -E 'kvstore: shutdown|^stats:|^engine:|^exits:|exit: status|run-kvm: status' "$console" | sed 's/^/  /'
  [[ $kernel -eq 0 ]] || { echo "demo: the unikernel ended with status $kernel"; status=1; }
  exit "$status"
fi

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
