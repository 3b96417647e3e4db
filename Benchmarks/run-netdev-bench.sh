#!/usr/bin/env bash
# The core benchmark: UKNetdev's burst loops beside the same loops on DPDK's rte_ring and
# rte_mempool (Benchmarks/DPDKPeer), run alternately in one session so noise hits both alike.
#   Mpps: median of ROUNDS runs each (default 3);  instructions/packet: callgrind, repeatable.
# Needs: swift, valgrind, libdpdk-dev, pkg-config (make bench installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
PACKETS=${PACKETS:-50000000}
TWO_CORE_PACKETS=${TWO_CORE_PACKETS:-50000000}
CG_PACKETS=${CG_PACKETS:-2000000}
mkdir -p out
log=out/bench-netdev.txt
: >"$log"

echo "building netdev-bench (release) and the DPDK peer..."
swift build -c release --product netdev-bench >/dev/null
Benchmarks/DPDKPeer/build.sh .build-peer/ring_peer >/dev/null
swiftbin=.build/release/netdev-bench
peerbin=.build-peer/ring_peer

field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$2"; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

declare -A swift_runs peer_runs
for round in $(seq 1 "$ROUNDS"); do
  for mode in single-ring single-null two-core; do
    n=$PACKETS; [ "$mode" = two-core ] && n=$TWO_CORE_PACKETS
    s=$("$swiftbin" "$mode" "$n"); echo "$s" >>"$log"
    p=$("$peerbin" "$mode" "$n"); echo "$p" >>"$log"
    swift_runs[$mode]+="$(field mpps "$s") "
    peer_runs[$mode]+="$(field mpps "$p") "
  done
  for mode in two-core-pool class-per-packet; do
    s=$("$swiftbin" "$mode" "$PACKETS"); echo "$s" >>"$log"
    swift_runs[$mode]+="$(field mpps "$s") "
  done
done

echo
echo "Throughput, median of $ROUNDS runs (Mpps, 64-byte packets, bursts of 32)"
printf "%-18s %12s %14s %8s\n" mode UKNetdev "DPDK rte_ring" ratio
for mode in single-ring single-null two-core; do
  sm=$(tr ' ' '\n' <<<"${swift_runs[$mode]}" | grep . | median)
  pm=$(tr ' ' '\n' <<<"${peer_runs[$mode]}" | grep . | median)
  printf "%-18s %12s %14s %8s\n" "$mode" "$sm" "$pm" "$(ratio "$sm" "$pm")"
done
ring=$(tr ' ' '\n' <<<"${swift_runs[single-ring]}" | grep . | median)
for mode in two-core-pool class-per-packet; do
  sm=$(tr ' ' '\n' <<<"${swift_runs[$mode]}" | grep . | median)
  printf "%-18s %12s %14s %8s\n" "$mode" "$sm" "-" "-"
done
cpp=$(tr ' ' '\n' <<<"${swift_runs[class-per-packet]}" | grep . | median)
echo "class-per-packet (ixy.swift's design) runs at $(ratio "$cpp" "$ring")x the speed of the same loop with pointer-sized NetBufs"

echo
echo "Instructions per packet (callgrind, $CG_PACKETS packets, only the loop function counted)"
printf "%-18s %12s %14s %8s\n" mode UKNetdev "DPDK rte_ring" ratio
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
for mode in single-ring single-null; do
  case $mode in single-ring) sf=swiftSingleRingLoop pf=peer_single_ring_loop;; single-null) sf=swiftSingleNullLoop pf=peer_single_null_loop;; esac
  valgrind --tool=callgrind --callgrind-out-file="$tmp/s.$mode" --toggle-collect="*$sf*" "$swiftbin" "$mode" "$CG_PACKETS" >/dev/null 2>"$tmp/s.err"
  valgrind --tool=callgrind --callgrind-out-file="$tmp/p.$mode" --toggle-collect="$pf" "$peerbin" "$mode" "$CG_PACKETS" >/dev/null 2>"$tmp/p.err"
  si=$(callgrind_annotate --auto=no "$tmp/s.$mode" | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
  pi=$(callgrind_annotate --auto=no "$tmp/p.$mode" | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
  sp=$(awk -v a="$si" -v n="$CG_PACKETS" 'BEGIN {printf "%.1f", a / n}')
  pp=$(awk -v a="$pi" -v n="$CG_PACKETS" 'BEGIN {printf "%.1f", a / n}')
  printf "%-18s %12s %14s %8s\n" "$mode" "$sp" "$pp" "$(ratio "$sp" "$pp")"
done

echo
echo "Allocation and reference counting in the loops"
Benchmarks/check-hotpath.sh
echo
echo "(raw lines in $log)"
