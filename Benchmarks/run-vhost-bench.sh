#!/usr/bin/env bash
# VirtioNet over vhost-user beside DPDK's own virtio driver (net_virtio_user), in one run, both
# against the same backend: dpdk-testpmd with net_vhost (DPDK's vhost-user backend).
#   - TX of 64-byte frames (60 without FCS): `pktgen tx --netdev vhost-user:...` against testpmd
#     net_virtio_user txonly, each into testpmd net_vhost rxonly;
#   - RX of 64-byte frames: testpmd net_vhost txonly into `pktgen rx --netdev vhost-user:...`
#     against into testpmd net_virtio_user rxonly;
#   - TX at 64, 128, 256, 512, 1024, 1500 bytes (fig. 19's sizes): Mpps and Gbit/s, both; and
#     64 bytes with headers written per packet (testpmd txonly writes them into every mbuf);
#   - the KV store over the paper's host-switch setup (testpmd io between two net_vhost ports,
#     kvstore on one, pktgen kv on the other): GET hits beside `kvstore --echo` (if built).
# Every figure is the median of ROUNDS alternating runs (ours, theirs, ours, ...), because this
# 2-vCPU VM is noisy. Pinning: the backend polls on CPU 1, the frontend on CPU 0
# (../shared/notes/platform-facts.md). testpmd counts frames without FCS: our 64-byte frame
# (60 + FCS) is its --txpkts=60.
# Needs: swift, dpdk-testpmd (Debian's dpdk-dev; make bench installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${SECONDS_PER_RUN:-4}
ROUNDS=${ROUNDS:-3}
SIZES=${SIZES:-64 128 256 512 1024 1500}
swift build -c release --product pktgen >/dev/null
swift build -c release --product kvstore >/dev/null
source Benchmarks/lib.sh
vhost_scratch uknet-vhost-bench


# DPDK's virtio driver as the frontend: testpmd net_virtio_user polling on CPU 0 for
# about $SECONDS_PER_RUN s after its start-up (~2 s); prints the median of its steady per-second MODE rate (tx or rx), in Mpps.
virtio_user() {
  local mode=$1 sock=$2 dir=$3
  n=$((n + 1))
  timeout -s INT "$((SECONDS_PER_RUN + 4))" dpdk-testpmd --lcores=0@1,1@0 "${EAL[@]}" --file-prefix=uknet-vb-$n \
    --vdev "net_virtio_user0,path=$sock" -- -a --stats-period 1 --forward-mode="$mode" \
    --total-num-mbufs=32768 --txpkts="${TXPKTS:-60}" >"$tmp/frontend.$n.log" 2>&1 || true
  python3 - "$tmp/frontend.$n.log" "$dir" <<'PY'
import re, sys, statistics
text = open(sys.argv[1], errors="replace").read()
rates = [int(x) for x in re.findall(sys.argv[2] + r"-pps:\s+(\d+)", text)]
rates = [r for r in rates if r > 0]
rates = (rates[1:] if len(rates) > 2 else rates) or [0]   # the first second is partial
print("%.3f" % (statistics.median(rates) / 1e6))
PY
}


# --- TX: 64..1500 bytes, ours and net_virtio_user, into testpmd rxonly --------------------------
echo "TX over vhost-user into testpmd net_vhost rxonly (median of $ROUNDS runs of ${SECONDS_PER_RUN} s each)"
printf '%-6s %12s %12s %14s %14s %7s\n' size "ours Mpps" "DPDK Mpps" "ours Gbit/s" "DPDK Gbit/s" ratio
for size in $SIZES; do
  TXPKTS=$((size - 4)) backend rxonly tx
  ours=() theirs=()
  for _ in $(seq "$ROUNDS"); do
    line=$(taskset -c 0 .build/release/pktgen tx --netdev "vhost-user:path=$tmp/tx.sock" --size "$size" \
           --duration "$SECONDS_PER_RUN" --quiet 2>/dev/null)
    ours+=("$(mpps_of <<<"$line")")
    theirs+=("$(TXPKTS=$((size - 4)) virtio_user txonly "$tmp/tx.sock" Tx)")
  done
  stop_backend
  o=$(median "${ours[@]}") t=$(median "${theirs[@]}")
  # Gbit/s of frames with FCS (fig. 19's unit: the frame size on the x axis).
  og=$(python3 -c "print('%.2f' % ($o * $size * 8 / 1000))") tg=$(python3 -c "print('%.2f' % ($t * $size * 8 / 1000))")
  printf '%-6s %12s %12s %14s %14s %7s\n' "$size" "$o" "$t" "$og" "$tg" "$(ratio "$o" "$t")"
  echo "  runs: ours ${ours[*]}; net_virtio_user ${theirs[*]}"
done

# testpmd txonly writes the headers into every mbuf; our generator sends from a prefilled pool.
# Like for like: 64-byte frames with 16 flows and probes (flow fields, a sequence number, a
# timestamp and the UDP checksum written into every frame).
TXPKTS=60 backend rxonly tx
ours=() theirs=()
for _ in $(seq "$ROUNDS"); do
  line=$(taskset -c 0 .build/release/pktgen tx --netdev "vhost-user:path=$tmp/tx.sock" --size 64 --flows 16 --probe \
         --duration "$SECONDS_PER_RUN" --quiet 2>/dev/null)
  ours+=("$(mpps_of <<<"$line")")
  theirs+=("$(TXPKTS=60 virtio_user txonly "$tmp/tx.sock" Tx)")
done
stop_backend
o=$(median "${ours[@]}") t=$(median "${theirs[@]}")
echo "TX 64 B with per-packet headers (16 flows, probes): ours $o Mpps, net_virtio_user txonly $t Mpps, ratio $(ratio "$o" "$t")  (runs: ${ours[*]} / ${theirs[*]})"

# --- RX: testpmd net_vhost txonly into ours / into net_virtio_user rxonly -----------------------
echo
echo "RX of 64-byte frames from testpmd net_vhost txonly (median of $ROUNDS runs)"
ours=() theirs=()
for _ in $(seq "$ROUNDS"); do
  backend txonly rx
  line=$(taskset -c 0 .build/release/pktgen rx --netdev "vhost-user:path=$tmp/rx.sock" --duration "$SECONDS_PER_RUN" \
         --quiet 2>/dev/null || true)
  ours+=("$(mpps_of <<<"$line")")
  stop_backend
  backend txonly rx
  theirs+=("$(virtio_user rxonly "$tmp/rx.sock" Rx)")
  stop_backend
done
o=$(median "${ours[@]}") t=$(median "${theirs[@]}")
echo "RX 64 B: ours $o Mpps, net_virtio_user $t Mpps, ratio $(ratio "$o" "$t")  (runs: ${ours[*]} / ${theirs[*]})"

# --- The KV store over the host-switch setup, beside the echo mode -------------------------------
echo
if .build/release/kvstore --help 2>&1 | grep -q -- '--echo'; then
  modes="memcached echo"
else
  modes="memcached"
  echo "(kvstore has no --echo in this build: the KV figure stands alone)"
fi
echo "KV store over testpmd io between two net_vhost ports (kvstore CPU 0, pktgen kv CPU 0, testpmd CPU 1)"
for mode in $modes; do
  backend io kv gen
  extra=() client=()
  if [ "$mode" = echo ]; then extra=(--echo); client=(--echo); fi
  taskset -c 0 .build/release/kvstore --netdev "vhost-user:path=$tmp/kv.sock" --ip 198.51.100.2/24 \
    --mac 02:00:00:00:00:02 "${extra[@]}" >"$tmp/kvstore.$mode.log" 2>&1 &
  kv=$!
  pids+=("$kv")
  sleep 1
  taskset -c 0 .build/release/pktgen kv --netdev "vhost-user:path=$tmp/gen.sock" --server-ip 198.51.100.2 \
    --server-mac 02:00:00:00:00:02 --ip 198.51.100.3 --mac 02:00:00:00:00:03 --preload --keys 1000 --value-size 32 \
    --get-ratio 1 --window 32 --duration "$SECONDS_PER_RUN" --quiet --json "${client[@]}" >"$tmp/kv.$mode.json" 2>"$tmp/kv.$mode.err" || true
  kill -INT "$kv"; wait "$kv" 2>/dev/null || true
  stop_backend
  kv_summary "$tmp/kv.$mode.json" "$mode" || { echo "pktgen kv ($mode) failed:"; cat "$tmp/kv.$mode.err"; }
done
