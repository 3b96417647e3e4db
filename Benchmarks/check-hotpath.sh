#!/usr/bin/env bash
# Proves, by counting (not timing), that the burst loops (and the KV store's GET and echo loops)
# allocate nothing and do no reference counting per packet:
#   1. mallocs during each measured loop, from the interposed malloc in netdev-bench: must be 0;
#   2. instructions executed inside swift_retain/swift_release/swift_allocObject/malloc while
#      callgrind collects only the loop function: must be 0.
# A negative control (class-per-packet, ixy.swift's design) must trip both checks, so the checks
# are known to be able to fail.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product netdev-bench >/dev/null
bin=.build/release/netdev-bench
out=$(mktemp -d)
# single-dpdk starts DPDK's EAL (its runtime directory is named after the process).
trap 'rm -rf "$out" /var/run/dpdk/uknet-netdev-bench-*' EXIT
status=0

source Benchmarks/lib.sh
mallocs() { field mallocs "$1"; }

# name of the loop function per mode (callgrind toggles collection on it)
declare -A loop=([single-ring]=swiftSingleRingLoop [single-null]=swiftSingleNullLoop [single-virtio]=swiftSingleVirtioLoop
                 [single-dpdk]=swiftSingleDPDKLoop [class-per-packet]=swiftClassPerPacketLoop)
packets=200000

for mode in single-ring single-null single-virtio single-dpdk two-core two-core-pool class-per-packet; do
  line=$("$bin" "$mode" 2000000)
  m=$(mallocs "$line")
  if [ "$mode" = class-per-packet ]; then
    if [ "$m" -gt 0 ]; then echo "control  $mode: $m mallocs in the loop (detected, as it must be)"
    else echo "FAIL: the malloc counter missed the class-per-packet control"; status=1; fi
  elif [ "$m" -eq 0 ]; then echo "ok       $mode: 0 mallocs in 2000000 packets"
  else echo "FAIL: $mode: $m mallocs in the loop"; status=1; fi
done

for mode in single-ring single-null single-virtio single-dpdk class-per-packet; do
  callgrind "*${loop[$mode]}*" "$out/cg.$mode" "$bin" "$mode" "$packets"
  per=$(( total / packets ))
  if [ "$mode" = single-virtio ]; then
    # The emulated device's side (copying each frame TX -> RX) runs in the same loop: count the
    # driver alone (RX with refill, TX with reclaim).
    device=$(callgrind_annotate --inclusive=yes --auto=no "$out/cg.$mode" 2>/dev/null \
             | awk '/EmulatedVirtioNet.swift:.*loopback/ {gsub(",", "", $1); print $1; exit}')
    per=$(( (total - ${device:-0}) / packets ))
  fi
  if [ "$total" -lt $(( packets * 5 )) ]; then
    echo "FAIL: callgrind collected only $total instructions for $mode: the loop was not found"; status=1
  elif [ "$mode" = class-per-packet ]; then
    if [ "$arc" -gt 0 ]; then echo "control  $mode: $arc instructions in retain/release/alloc per run (detected), $per instructions/packet"
    else echo "FAIL: callgrind missed retain/release in the class-per-packet control"; status=1; fi
  elif [ "$arc" -eq 0 ]; then
    echo "ok       $mode: 0 instructions in swift_retain/swift_release/swift_allocObject/malloc/free; $per instructions/packet"
  else
    echo "FAIL: $mode: $arc instructions in retain/release/alloc inside the loop"; grep -E 'swift_|malloc|free' <<<"$report" | head; status=1
  fi
done
# The KV store's request loops, per request: kv_loop MODE LABEL UNIT MIN-INSTRUCTIONS checks
# `kv-bench MODE` for mallocs (1,000,000 requests) and, under callgrind, for retain/release/alloc
# in the server's poll (100,000 requests).
swift build -c release --product kv-bench >/dev/null
kv_loop() {
  local mode=$1 label=$2 unit=$3 least=$4
  line=$(.build/release/kv-bench "$mode" 1000000)
  m=$(mallocs "$line")
  if [ "$m" -eq 0 ]; then echo "ok       $label: 0 mallocs in 1000000 requests"
  else echo "FAIL: $label: $m mallocs in the request loop"; status=1; fi
  callgrind '*KVServerV4poll*' "$out/cg.kv-$mode" .build/release/kv-bench "$mode" 100000
  if [ "${total//[^0-9]/}" = "" ] || [ "$total" -lt "$least" ]; then echo "FAIL: callgrind did not find the server's poll ($label)"; status=1
  elif [ "$arc" -eq 0 ]; then echo "ok       $label: 0 instructions in retain/release/alloc in the server's poll; $(( total / 100000 )) instructions/$unit"
  else echo "FAIL: $label: $arc instructions in retain/release/alloc in the server's poll"; status=1; fi
}
# A lone GET answered from the store (the preload included in the count).
kv_loop single "kv store" GET 10000000
# The same GETs from a source outside the store's prefix: the general path, with the amplification
# guard screening each reply (ratio and byte budget).
kv_loop untrusted "kv store, untrusted source" GET 10000000
# The echo baseline (kvstore --echo): the same GET datagrams, each turned around in its own buffer.
kv_loop echo "kv echo" echo 5000000
# The packet generator's TX loop (prefilled pool, null device), per packet.
swift build -c release --product pktgen-bench >/dev/null
for mode in tx-null tx-null-probe; do
  line=$(.build/release/pktgen-bench "$mode" 2000000)
  m=$(mallocs "$line")
  if [ "$m" -eq 0 ]; then echo "ok       pktgen $mode: 0 mallocs in 2000000 packets"
  else echo "FAIL: pktgen $mode: $m mallocs in the TX loop"; status=1; fi
  callgrind '*txNullLoop*' "$out/cg.pg.$mode" .build/release/pktgen-bench "$mode" 200000
  if [ "$total" -lt 1000000 ]; then echo "FAIL: callgrind did not find pktgen's TX loop ($mode)"; status=1
  elif [ "$arc" -eq 0 ]; then echo "ok       pktgen $mode: 0 instructions in retain/release/alloc; $(( total / (200000 + $(field warmup "$line")) )) instructions/packet"
  else echo "FAIL: pktgen $mode: $arc instructions in retain/release/alloc in the TX loop"; status=1; fi
done
exit $status
