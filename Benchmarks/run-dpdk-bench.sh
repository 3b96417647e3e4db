#!/usr/bin/env bash
# DPDKNet (issue 12) beside DPDK's own programs, side by side in one run:
#   1. TX of 64-byte frames over one net_null port, one core (CPU 1): dpdk-testpmd txonly (it
#      writes the headers into every mbuf) against `pktgen tx --netdev dpdk:...` from a prefilled
#      pool, with per-packet headers (16 flows: source port and checksums written into every
#      frame), and the same without the UDP checksum (testpmd sends none);
#   2. the KV store over DPDK's net_virtio_user against the same store over our own VirtioNet
#      vhost-user frontend, same testpmd io switch (CPU 1) and the same `pktgen kv` load (CPU 0).
# Medians of ROUNDS alternating runs (ours, theirs, ...): this 2-vCPU VM is noisy.
# Needs: swift, dpdk-testpmd (Debian's dpdk-dev; make bench installs it), root for /var/run/dpdk.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${SECONDS_PER_RUN:-4}
ROUNDS=${ROUNDS:-3}
swift build -c release --product pktgen >/dev/null
swift build -c release --product kvstore >/dev/null
source Benchmarks/lib.sh
vhost_scratch uknet-dpdk-bench


# ours NAME PKTGEN-OPTIONS...: one pktgen tx run on net_null, CPU 1; appends its Mpps to $tmp/NAME.
ours() {
  local name=$1; shift
  n=$((n + 1))
  taskset -c 1 .build/release/pktgen tx --netdev "dpdk:--no-huge -m 512 --no-pci -l 1 --file-prefix=uknet-vb-$n --vdev=net_null0" \
    --size 64 --duration "$SECONDS_PER_RUN" --quiet "$@" 2>/dev/null | mpps_of >>"$tmp/$name"
  rm -rf "/var/run/dpdk/uknet-vb-$n"
}

echo "TX 64 B over one net_null port, one core (median of $ROUNDS runs of $SECONDS_PER_RUN s)"
for _ in $(seq "$ROUNDS"); do
  SECONDS=$SECONDS_PER_RUN Benchmarks/DPDKPeer/testpmd-txonly.sh 2>/dev/null | sed -n 's/.*Mpps=\([0-9.]*\).*/\1/p' >>"$tmp/testpmd"
  ours prefilled
  ours flows --flows 16
  ours flows-nocsum --flows 16 --no-udp-checksum
done
t=$(median $(cat "$tmp/testpmd"))
echo "  testpmd txonly:                                 $t Mpps  (runs: $(tr '\n' ' ' <"$tmp/testpmd"))"
for name in prefilled flows flows-nocsum; do
  o=$(median $(cat "$tmp/$name"))
  case $name in
    prefilled) label="pktgen tx, prefilled pool:" ;;
    flows) label="pktgen tx, headers per packet (16 flows):" ;;
    flows-nocsum) label="the same, no UDP checksum (as testpmd):" ;;
  esac
  printf '  %-47s %s Mpps, %sx testpmd  (runs: %s)\n' "$label" "$o" "$(ratio "$o" "$t")" "$(tr '\n' ' ' <"$tmp/$name")"
done

echo
echo "KV store GETs through testpmd io between two net_vhost ports (CPU 1); store and pktgen kv on CPU 0"
for round in $(seq "$ROUNDS"); do
  for store in virtio_user ours; do
    backend io kv gen
    if [ $store = virtio_user ]; then
      netdev="dpdk:--no-huge -m 512 --no-pci -l 0 --file-prefix=uknet-vb-kv$round --vdev=net_virtio_user0,path=$tmp/kv.sock"
    else
      netdev="vhost-user:path=$tmp/kv.sock"
    fi
    taskset -c 0 .build/release/kvstore --netdev "$netdev" --ip 198.51.100.2/24 --mac 02:00:00:00:00:02 >"$tmp/kvstore.$store.log" 2>&1 &
    kv=$!
    pids+=("$kv")
    for _ in $(seq 100); do grep -q "dpdk: port\|virtio features" "$tmp/kvstore.$store.log" 2>/dev/null && break; sleep 0.1; done
    sleep 1
    taskset -c 0 .build/release/pktgen kv --netdev "vhost-user:path=$tmp/gen.sock" --server-ip 198.51.100.2 \
      --server-mac 02:00:00:00:00:02 --ip 198.51.100.3 --mac 02:00:00:00:00:03 --preload --keys 1000 --value-size 32 \
      --get-ratio 1 --window 32 --duration "$SECONDS_PER_RUN" --quiet --json >"$tmp/kv.$store.json" 2>"$tmp/kv.$store.err" || true
    kill -INT "$kv"; wait "$kv" 2>/dev/null || true
    stop_backend
    rm -rf "/var/run/dpdk/uknet-vb-kv$round"
    if kv_summary "$tmp/kv.$store.json" "$store"; then
      python3 -c 'import json, sys; print(round(json.load(open(sys.argv[1]))["replies_per_second"]))' "$tmp/kv.$store.json" >>"$tmp/kv.$store"
    else
      echo "  pktgen kv ($store) failed:"; sed 's/^/    /' "$tmp/kv.$store.err"; echo 0 >>"$tmp/kv.$store"
    fi
  done
done
d=$(median $(cat "$tmp/kv.virtio_user")) o=$(median $(cat "$tmp/kv.ours"))
echo "  medians: DPDK net_virtio_user $d, our VirtioNet $o replies/s: DPDK/ours $(ratio "$d" "$o") (the paper: DPDK 6.1M vs netdev 6M, 1.02)"
