#!/usr/bin/env bash
# GET throughput of the KV store unikernel over vhost-user beside the same store as a Linux
# process over vhost-user, one run, same switch and load (issue 11; the paper's KV-in-KVM setup):
#   dpdk-testpmd io between two net_vhost ports, polling on CPU 1 (the switch);
#   the store on one port, on CPU 0: the unikernel (QEMU -M pc, legacy virtio-pci, KVM:
#   scripts/run-kvm.sh NET=vhost-user:SOCK) with each nap length in IDLES (kv.idle=US), or
#   `kvstore --netdev vhost-user:...`;
#   `pktgen kv` (GETs only, 1000 keys, 32-byte values, window 32) on the other port, on CPU 0 too.
# Three pollers on two CPUs: the rate depends on how each gives its CPU back when it has nothing
# to do (the process naps 100 us after 1,000 empty polls; the unikernel halts until its local
# APIC timer fires, kv.idle later). ROUNDS alternating rounds (process, unikernel...), medians.
# Needs root (KVM), qemu-system-x86, dpdk-testpmd; make bench installs them.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${SECONDS_PER_RUN:-4}
ROUNDS=${ROUNDS:-3}
IDLES=${IDLES:-100 250}
swift build -c release --product kvstore >/dev/null
swift build -c release --product pktgen >/dev/null
scripts/build-image.sh kvstore | tail -1
source Benchmarks/lib.sh
vhost_scratch uknet-uk-vhost

# wait_for FILE TEXT SECONDS: until FILE has TEXT; fails after SECONDS.
wait_for() {
  for _ in $(seq $(($3 * 10))); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  return 1
}

# load LABEL: pktgen kv against the store on the switch's other port; prints the summary line
# and appends replies/s to $tmp/LABEL.rates.
load() {
  taskset -c 0 .build/release/pktgen kv --netdev "vhost-user:path=$tmp/gen.sock" --server-ip 198.51.100.2 \
    --server-mac 02:00:00:00:00:02 --ip 198.51.100.3 --mac 02:00:00:00:00:03 --preload --keys 1000 --value-size 32 \
    --get-ratio 1 --window 32 --duration "$SECONDS_PER_RUN" --quiet --json >"$tmp/$1.json" 2>"$tmp/$1.err" || true
  if kv_summary "$tmp/$1.json" "$1"; then
    python3 -c 'import json, sys; print(round(json.load(open(sys.argv[1]))["replies_per_second"]))' "$tmp/$1.json" >>"$tmp/$1.rates"
  else
    echo "  $1: pktgen kv failed:"; sed 's/^/    /' "$tmp/$1.err"; echo 0 >>"$tmp/$1.rates"
  fi
}

process() {
  taskset -c 0 .build/release/kvstore --netdev "vhost-user:path=$tmp/kv.sock" --ip 198.51.100.2/24 \
    --mac 02:00:00:00:00:02 >"$tmp/process.log" 2>&1 &
  local kv=$!
  pids+=("$kv")
  wait_for "$tmp/process.log" "virtio features" 10 || true   # printed once the rings are set up
  load process
  kill -INT "$kv" 2>/dev/null || true; wait "$kv" 2>/dev/null || true
}

unikernel() {
  local idle=$1 label=unikernel-idle$1
  # The store stops itself (kv.seconds) and prints its statistics; run-kvm.sh's timeout backs it up.
  MACHINE=pc NET="vhost-user:$tmp/kv.sock" TIMEOUT=$((SECONDS_PER_RUN + 30)) \
    CMDLINE="netdev.ip=198.51.100.2/24 kv.seconds=$((SECONDS_PER_RUN + 8)) kv.idle=$idle" \
    taskset -c 0 scripts/run-kvm.sh .build-image/kvstore/kvstore.elf >"$tmp/$label.console" 2>&1 &
  local vm=$!
  pids+=("$vm")
  if ! wait_for "$tmp/$label.console" "kvstore: ready on" 20; then
    echo "  $label: the unikernel did not come up:"; tail -20 "$tmp/$label.console" | sed 's/^/    /'
    kill -TERM "$vm" 2>/dev/null || true; wait "$vm" 2>/dev/null || true
    echo 0 >>"$tmp/$label.rates"
    return
  fi
  load "$label"
  wait "$vm" 2>/dev/null || echo "  $label: run-kvm.sh exited $? (see $tmp/$label.console with KEEP=1)"
}

echo "KV GETs over vhost-user: testpmd io between two net_vhost ports (CPU 1); the store and pktgen kv on CPU 0"
backend io kv gen
for round in $(seq "$ROUNDS"); do
  echo "round $round"
  process
  for idle in $IDLES; do unikernel "$idle"; done
done
stop_backend
echo "medians of $ROUNDS rounds:"
base=$(python3 -c 'import statistics, sys; print(round(statistics.median(int(x) for x in open(sys.argv[1]))))' "$tmp/process.rates")
echo "  Linux-process kvstore: $base replies/s"
for idle in $IDLES; do
  r=$(python3 -c 'import statistics, sys; print(round(statistics.median(int(x) for x in open(sys.argv[1]))))' "$tmp/unikernel-idle$idle.rates")
  echo "  unikernel kv.idle=$idle: $r replies/s, $(python3 -c "import sys; print('%.2f' % ($r / $base if $base else 0))")x the process"
done
